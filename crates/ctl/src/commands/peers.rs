//! `powernodectl peer …` and `powernodectl federation accept`.

use powernode_client::peers::{
    AcceptRequest, ListQuery, ProposeRequest, ReasonRequest, RegenerateRequest, ResumeRequest,
};
use powernode_client::{Gated, OperatorClient};
use powernode_domain::PeerStatus;

use super::seconds;
use crate::CtlError;
use crate::cli::{CertCommand, FederationCommand, PeerCommand, TokenCommand};
use crate::output::{Output, value};

/// Prints a gated call's outcome: the queued request, or what `done` renders.
fn gated<T: serde::Serialize>(out: &Output, outcome: Gated<T>, done: impl FnOnce(&Output, T)) {
    match outcome {
        Gated::Queued(queued) => {
            out.queued(&value(&queued));
        }
        Gated::Done(answer) => done(out, answer),
    }
}

pub async fn run(client: &OperatorClient, out: &Output, c: PeerCommand) -> Result<(), CtlError> {
    match c {
        PeerCommand::List {
            status,
            limit,
            cursor,
        } => {
            let status = status
                .map(|s| {
                    s.parse::<PeerStatus>().map_err(|_| {
                        CtlError::Usage(format!(
                            "--status must be proposed, accepted, enrolled, active, degraded, suspended or revoked (got {s:?})"
                        ))
                    })
                })
                .transpose()?;
            let page = client
                .peer_page(&ListQuery {
                    status,
                    limit,
                    cursor,
                })
                .await?;
            out.peers(&value(&page.peers));
            if let Some(next) = page.next_cursor {
                eprintln!("more: powernodectl peer list --cursor {next}");
            }
        }
        PeerCommand::Show { id } => out.peer(&value(&client.peer(id).await?)),
        PeerCommand::Propose(a) => {
            let req = ProposeRequest {
                remote_instance_url: a.remote_url,
                peer_kind: Some(a.kind),
                spawn_role: a.role,
                spawn_mode: a.mode,
                remote_prefix_advertisement: a.prefix,
                endpoints: None,
                extension_slugs: None,
                capabilities: None,
                ttl_seconds: a.ttl.map(|t| seconds("ttl", t)).transpose()?,
                drill: Some(a.drill),
            };
            gated(out, client.propose(&req).await?, |out, p| {
                out.with_token(&value(&p));
            });
        }
        PeerCommand::Token(TokenCommand::Regenerate { id, ttl }) => {
            let req = RegenerateRequest {
                ttl_seconds: ttl.map(|t| seconds("ttl", t)).transpose()?,
            };
            out.with_token(&value(&client.regenerate_token(id, &req).await?));
        }
        PeerCommand::Cert(CertCommand::Renew { id }) => {
            super::governance::renew_certificate(client, out, id).await?;
        }
        PeerCommand::Suspend { id, reason } => {
            out.peer(&value(
                &client.suspend(id, &ReasonRequest { reason }).await?,
            ));
        }
        PeerCommand::Resume { id, reason } => {
            out.peer(&value(&client.resume(id, &ResumeRequest { reason }).await?));
        }
        PeerCommand::Revoke { id, reason } => {
            gated(
                out,
                client.revoke(id, &ReasonRequest { reason }).await?,
                |out, p| {
                    out.peer(&value(&p));
                },
            );
        }
        PeerCommand::Delete { id } => {
            out.done(
                &value(&client.delete_peer(id).await?),
                &format!("deleted peer {id}"),
            );
        }
    }
    Ok(())
}

pub async fn federation(
    client: &OperatorClient,
    out: &Output,
    c: FederationCommand,
) -> Result<(), CtlError> {
    match c {
        FederationCommand::Accept { token } => {
            let req = AcceptRequest {
                acceptance_token: token,
            };
            gated(out, client.accept(&req).await?, |out, p| {
                out.peer(&value(&p))
            });
        }
    }
    Ok(())
}
