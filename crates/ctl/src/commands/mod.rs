//! One module per command group; each command is one typed client call and one rendering.

mod approvals;
mod governance;
mod grants;
mod operators;
mod peers;

use powernode_client::OperatorClient;

use crate::CtlError;
use crate::cli::Command;
use crate::output::Output;

pub async fn run(client: &OperatorClient, out: &Output, command: Command) -> Result<(), CtlError> {
    match command {
        Command::Peer(c) => peers::run(client, out, c).await,
        Command::Federation(c) => peers::federation(client, out, c).await,
        Command::Events(a) => operators::events(client, out, a).await,
        Command::Operator(c) => operators::run(client, out, c).await,
        Command::Whoami => operators::whoami(client, out).await,
        Command::Worker(c) => operators::worker(client, out, c).await,
        Command::Grant(c) => grants::run(client, out, c).await,
        Command::Approvals(c) => approvals::run(client, out, c).await,
        Command::Agent(c) => approvals::agent(client, out, c).await,
        Command::Policy(c) => approvals::policy(client, out, c).await,
        Command::Governance(c) => governance::run(client, out, c).await,
        Command::Doctor { peer } => governance::doctor(client, out, peer).await,
    }
}

/// A whole number of seconds the API takes as `u32`.
fn seconds(field: &str, value: u64) -> Result<u32, CtlError> {
    u32::try_from(value).map_err(|_| CtlError::Usage(format!("--{field} is too long")))
}
