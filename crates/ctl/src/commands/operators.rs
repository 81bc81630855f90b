//! `powernodectl operator …`, `whoami`, `worker status` and `events`.

use powernode_client::OperatorClient;
use powernode_client::events::EventsQuery;
use powernode_client::operators::CreateOperatorRequest;

use crate::CtlError;
use crate::cli::{EventsArgs, OperatorCommand, WorkerCommand};
use crate::output::{Output, value};

pub async fn run(
    client: &OperatorClient,
    out: &Output,
    c: OperatorCommand,
) -> Result<(), CtlError> {
    match c {
        OperatorCommand::Create { name, permissions } => {
            let req = CreateOperatorRequest { name, permissions };
            out.operator_token(&value(&client.create_operator(&req).await?));
        }
        OperatorCommand::List => out.operators(&value(&client.operators().await?)),
        OperatorCommand::Disable { id } => {
            out.operators(&value(&[client.disable_operator(id).await?]));
        }
    }
    Ok(())
}

pub async fn whoami(client: &OperatorClient, out: &Output) -> Result<(), CtlError> {
    out.operators(&value(&[client.me().await?]));
    Ok(())
}

pub async fn worker(
    client: &OperatorClient,
    out: &Output,
    c: WorkerCommand,
) -> Result<(), CtlError> {
    match c {
        WorkerCommand::Status => out.worker_status(&value(&client.worker_status().await?)),
    }
    Ok(())
}

pub async fn events(client: &OperatorClient, out: &Output, a: EventsArgs) -> Result<(), CtlError> {
    let q = EventsQuery {
        source: a.source,
        kind: a.kind,
        peer_id: a.peer,
        since: a.since,
        before: a.before,
        limit: a.limit.map(i64::from),
    };
    out.events(&value(&client.events(&q).await?));
    Ok(())
}
