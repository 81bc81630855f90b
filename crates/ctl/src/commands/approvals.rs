//! `powernodectl approvals …`, `agent …` and `policy …`.

use powernode_client::OperatorClient;
use powernode_client::approvals::{
    AgentStatusRequest, DecisionRequest, ListQuery, LowerRequest, PolicyUpdate,
};
use powernode_client::client::Decision;

use super::seconds;
use crate::CtlError;
use crate::cli::{AgentCommand, ApprovalsCommand, PolicyCommand};
use crate::output::{Output, text, value};

pub async fn run(
    client: &OperatorClient,
    out: &Output,
    a: ApprovalsCommand,
) -> Result<(), CtlError> {
    let decide = |id, verb, comments| async move {
        client.decide(id, verb, &DecisionRequest { comments }).await
    };
    match a {
        ApprovalsCommand::List { status } => {
            let q = ListQuery {
                status,
                limit: None,
            };
            out.approvals(&value(&client.approvals(&q).await?));
        }
        ApprovalsCommand::Show { id } => out.approval(&value(&client.approval(id).await?)),
        ApprovalsCommand::Approve { id, comment } => {
            out.approval(&value(&decide(id, Decision::Approve, comment).await?));
        }
        ApprovalsCommand::Reject { id, comment } => {
            out.approval(&value(&decide(id, Decision::Reject, comment).await?));
        }
        ApprovalsCommand::Cancel { id, comment } => {
            out.approval(&value(&decide(id, Decision::Cancel, comment).await?));
        }
        ApprovalsCommand::Result { id } => {
            let claimed = client.claim_result(id).await?;
            if out.json {
                out.print_json(&value(&claimed));
                return Ok(());
            }
            let request = value(&claimed.approval_request);
            out.approval(&request);
            match &claimed.acceptance_token {
                Some(token) => {
                    println!(
                        "\nAcceptance token (shown once; expires {}). Hand it to the other instance's operator over a synchronous channel:",
                        text(&request["result"]["acceptance_token_expires_at"])
                    );
                    println!("{token}");
                }
                None => println!("\nNo secret result for this request."),
            }
        }
    }
    Ok(())
}

pub async fn agent(client: &OperatorClient, out: &Output, a: AgentCommand) -> Result<(), CtlError> {
    let (name, paused, reason) = match a {
        AgentCommand::List => {
            out.agents(&value(&client.agents().await?));
            return Ok(());
        }
        AgentCommand::Pause { name, reason } => (name, true, reason),
        AgentCommand::Resume { name, reason } => (name, false, reason),
    };
    let agent = client
        .set_agent_paused(&name, paused, &AgentStatusRequest { reason })
        .await?;
    out.agents(&value(&[agent]));
    Ok(())
}

pub async fn policy(
    client: &OperatorClient,
    out: &Output,
    p: PolicyCommand,
) -> Result<(), CtlError> {
    let data = match p {
        PolicyCommand::Show { action: None } => value(&client.policies().await?),
        PolicyCommand::Show {
            action: Some(action),
        } => value(&[client.policy(&action).await?]),
        PolicyCommand::Lower {
            action,
            to,
            window,
            reason,
        } => {
            let req = LowerRequest {
                to,
                for_seconds: seconds("for", window)?,
                reason,
            };
            value(&[client.lower_policy(&action, &req).await?])
        }
        PolicyCommand::Restore { action } => value(&[client.restore_policy(&action).await?]),
        PolicyCommand::Set {
            action,
            policy,
            timeout,
            timeout_action,
        } => {
            let req = PolicyUpdate {
                policy,
                timeout_seconds: seconds("timeout", timeout)?,
                timeout_action,
            };
            value(&[client.update_policy(&action, &req).await?])
        }
    };
    out.policies(&data);
    Ok(())
}
