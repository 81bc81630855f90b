//! `powernodectl grant …`.

use powernode_client::OperatorClient;
use powernode_client::grants::{
    ExplainRequest, IssueRequest, ListQuery, RenewRequest, RevokeRequest,
};

use powernode_domain::PeerId;

use crate::CtlError;
use crate::cli::GrantCommand;
use crate::output::{Output, table, text, value};

pub async fn run(client: &OperatorClient, out: &Output, g: GrantCommand) -> Result<(), CtlError> {
    let data = match g {
        GrantCommand::Issue {
            peer,
            kind,
            resource_id,
            scopes,
            instances,
            networks,
            cidrs,
            ttl_days,
            auto_renew,
        } => {
            let req = IssueRequest {
                resource_kind: kind,
                resource_id,
                permission_scopes: scopes,
                node_instance_ids: instances,
                sdwan_network_ids: networks,
                source_cidrs: cidrs,
                ttl_days,
                auto_renew,
            };
            let issued = client.issue_grant(peer, &req).await?;
            if !out.json {
                out.grants(&value(&[&issued.grant]));
                println!("\nBearer token (shown once; hand it to the peer's operator):");
                println!("{}", issued.token);
                return Ok(());
            }
            value(&issued)
        }
        GrantCommand::List { peer, lifecycle } => {
            let q = ListQuery {
                peer_id: peer.map(PeerId::uuid),
                lifecycle,
            };
            out.grants(&value(&client.grants(&q).await?));
            return Ok(());
        }
        GrantCommand::Show { id } => value(&client.grant(id).await?),
        GrantCommand::Revoke { id, reason } => {
            value(&client.revoke_grant(id, &RevokeRequest { reason }).await?)
        }
        GrantCommand::Renew { id, ttl_days } => {
            value(&client.renew_grant(id, &RenewRequest { ttl_days }).await?)
        }
        GrantCommand::Explain {
            id,
            kind,
            resource_id,
            scope,
            instance,
            network,
            source_ip,
        } => {
            let req = ExplainRequest {
                resource_kind: kind,
                resource_id,
                scope,
                instance_id: instance,
                network,
                source_ip,
            };
            let e = client.explain_grant(id, &req).await?;
            if !out.json {
                let mut t = table(&["check", "result", "why"]);
                for c in &e.checks {
                    let result = if c.ok { "ok" } else { "FAILED" };
                    t.add_row([c.dimension.to_string(), result.to_owned(), c.why.clone()]);
                }
                println!("{t}");
                println!(
                    "\n{}",
                    if e.allowed {
                        "allowed".to_owned()
                    } else {
                        e.denial
                            .as_ref()
                            .map_or_else(|| "-".to_owned(), |d| text(&d["error"]))
                    }
                );
                return Ok(());
            }
            value(&e)
        }
    };
    if out.json {
        out.print_json(&data);
    } else {
        out.grants(&serde_json::Value::Array(vec![data]));
    }
    Ok(())
}
