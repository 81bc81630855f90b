//! The approval gate, decisions, emergency lowering and the SDWAN Manager tick (SPEC §7).
//!
//! Gated actions (propose, revoke, B's operator accept) call [`gate`] with their validated,
//! serialisable command. `Proceed` runs the action now on the caller's path; a queued request
//! is executed later by [`tick`] through the very same service functions.

use powernode_domain::approval::{self, ExecutionPlan, Gate, GatedAction, SDWAN_MANAGER_AGENT};
use powernode_store::StoreError;
use powernode_store::approvals::{
    self as store, ApprovalOpError, ApprovalRequest, NewRequest, Outcome,
};
use powernode_store::peers::Sealed;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::db::{self, Context as _};
use crate::error::{ApiError, internal};
use crate::services::Ctx;
use crate::services::peers::lifecycle::{self as peer_service, ProposeCommand, RevokeCommand};

pub mod queue;

pub use powernode_client::approvals::ApprovalView;
pub use powernode_client::worker::TickOutcome;

/// A gated action's answer: done now, or queued for approval (the caller answers 202).
/// Serialisable so an `Idempotency-Key` can replay it.
#[derive(serde::Serialize, serde::Deserialize)]
pub enum Gated<T> {
    Done(T),
    Queued(Box<ApprovalView>),
}

impl<T> Gated<T> {
    pub fn queued(request: ApprovalRequest) -> Self {
        Gated::Queued(Box::new(queue::approval_view(request)))
    }
}

/// Most requests one tick executes; the rest wait for the next tick.
const MAX_EXECUTIONS_PER_TICK: usize = 100;

fn params_context(id: Uuid) -> Vec<u8> {
    format!("approval-params:{id}").into_bytes()
}

fn result_context(id: Uuid) -> Vec<u8> {
    format!("approval-result:{id}").into_bytes()
}

async fn in_transaction<T, F>(ctx: &Ctx, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut diesel::PgConnection) -> Result<T, ApprovalOpError> + Send + 'static,
{
    db::transaction(&ctx.db, move |conn| Ok(f(conn)?)).await
}

/// One gated call: what it is, what the approver sees, and the secret it needs (if any).
pub struct GateCall {
    pub action: GatedAction,
    /// Shown to approvers; never a secret.
    pub params: Value,
    /// Sealed with the master key until execution (an acceptance token).
    pub secret: Option<SecretString>,
    pub actor: Uuid,
}

/// The gate (SPEC §7): restores ended lowerings, then by the effective policy proceeds (with
/// `approval.notified` for `notify_and_proceed`), queues a request, or refuses.
/// `Ok(None)`: run the action now. `Ok(Some(request))`: answer 202 with it.
pub async fn gate(ctx: &Ctx, call: GateCall) -> Result<Option<ApprovalRequest>, ApiError> {
    let id = Uuid::new_v4();
    let sealed = call
        .secret
        .as_ref()
        .map(|s| {
            ctx.settings
                .master_key
                .seal(&params_context(id), s.expose_secret().as_bytes())
                .map(Sealed)
        })
        .transpose()
        .map_err(|e| internal("sealing approval params", e))?;
    let GateCall {
        action,
        params,
        actor,
        ..
    } = call;
    let action = action.as_str();
    let outcome = in_transaction(ctx, move |conn| {
        store::restore_ended(conn)?;
        let policy = store::lock_policy(conn, action)?;
        let now = powernode_store::database_now(conn)?;
        match policy.state.gate(now) {
            Gate::Proceed { notify } => {
                if notify {
                    store::notify(conn, action, &params, None, actor)?;
                }
                Ok(GateOutcome::Proceed)
            }
            // Committed, not rolled back: an ended lowering's restoration stands.
            Gate::Blocked => Ok(GateOutcome::Blocked),
            Gate::Pending => Ok(GateOutcome::Queued(Box::new(store::insert_request(
                conn,
                &NewRequest {
                    id,
                    action,
                    params: &params,
                    params_sealed: sealed.as_ref(),
                    requested_by: actor,
                    timeout_secs: policy.state.timeout_secs,
                },
            )?))),
        }
    })
    .await?;
    match outcome {
        GateOutcome::Blocked => {
            tracing::warn!(action, operator_id = %actor, "action blocked by policy");
            Err(ApiError::validation("action", "blocked by policy")
                .with_message("Action blocked by policy".to_owned()))
        }
        GateOutcome::Queued(request) => {
            tracing::info!(action, approval_request_id = %request.id, operator_id = %actor, expires_at = %request.expires_at, "approval required");
            Ok(Some(*request))
        }
        GateOutcome::Proceed => Ok(None),
    }
}

/// What the gate's transaction decided.
enum GateOutcome {
    Proceed,
    Blocked,
    Queued(Box<ApprovalRequest>),
}

// ---------------------------------------------------------------------------------------------
// The SDWAN Manager tick

pub async fn tick(ctx: &Ctx, _worker: &super::Worker) -> Result<TickOutcome, ApiError> {
    let (expired, paused) = in_transaction(ctx, |conn| {
        let restored = store::restore_ended(conn)?;
        for action in &restored {
            tracing::info!(action, "policy restored: lowering window ended");
        }
        let expired = store::expire_due(conn)?;
        let paused = store::find_agent(conn, SDWAN_MANAGER_AGENT)?.is_some_and(|a| a.paused());
        Ok((expired, paused))
    })
    .await?;
    for r in &expired {
        tracing::info!(approval_request_id = %r.id, action = %r.action, status = %r.status, "approval request timed out");
    }
    let (mut executed, mut failed) = (0, 0);
    if paused {
        tracing::info!("SDWAN Manager is paused: approved requests wait");
    } else {
        for _ in 0..MAX_EXECUTIONS_PER_TICK {
            match execute_next(ctx).await? {
                None => break,
                Some(true) => executed += 1,
                Some(false) => failed += 1,
            }
        }
    }
    let ran_at = peer_service::database_now(ctx).await?;
    let outcome = TickOutcome {
        expired: expired.len(),
        executed,
        failed,
        paused,
        ran_at,
    };
    if outcome.expired + outcome.executed + outcome.failed > 0 {
        tracing::info!(
            expired = outcome.expired,
            executed = outcome.executed,
            failed = outcome.failed,
            paused = outcome.paused,
            "SDWAN Manager tick"
        );
    }
    Ok(outcome)
}

/// Claims the oldest approved, unexecuted request and executes it once, the claim spanning the
/// execution. `None` when there is nothing (left) to execute; otherwise whether it succeeded.
async fn execute_next(ctx: &Ctx) -> Result<Option<bool>, ApiError> {
    let claimed = crate::claim::claim(&ctx.db, |conn| -> Result<_, StoreError> {
        let Some(request) = store::claim_executable(conn)? else {
            return Ok(None);
        };
        let started = store::started_attempts(conn, request.id)?;
        Ok(Some((request, started)))
    })
    .await
    .context("approval claim failed")?;
    let Some(claimed) = claimed else {
        return Ok(None);
    };
    let (request, started) = claimed.value.clone();
    let id = request.id;
    let outcome = match approval::execution_plan(started) {
        ExecutionPlan::GiveUp => {
            tracing::error!(approval_request_id = %id, action = %request.action, "execution was interrupted twice; not run again");
            Outcome::Failed(
                "execution was interrupted twice; not run again (revoke and re-propose to recover)"
                    .to_owned(),
            )
        }
        plan => {
            crate::failpoint::point("approval-after-claim");
            // Committed before the action runs, so a crash mid-execution is seen next tick.
            let recorded = db::run(&ctx.db, move |conn| store::start_attempt(conn, id)).await;
            if let Err(e) = recorded {
                claimed.release().await;
                return Err(e).context("recording an execution attempt failed");
            }
            if plan == ExecutionPlan::Rerun {
                tracing::warn!(approval_request_id = %id, action = %request.action, "re-running an execution that was interrupted");
            }
            // The chaos harness kills a replica before the action, and after it but before
            // the outcome is recorded.
            crate::failpoint::point("approval-after-start");
            let outcome = run(ctx, &request).await;
            crate::failpoint::point("approval-before-record");
            outcome
        }
    };
    let succeeded = matches!(outcome, Outcome::Succeeded { .. });
    crate::observability::approval_execution(if succeeded { "succeeded" } else { "failed" });
    if let Outcome::Failed(e) = &outcome {
        tracing::warn!(approval_request_id = %id, action = %request.action, error = %e, "approved action failed");
    } else {
        tracing::info!(approval_request_id = %id, action = %request.action, "approved action executed");
    }
    claimed
        .finish(Box::new(move |conn| {
            store::record_execution(conn, id, outcome, started + 1).map(|_| ())
        }))
        .await
        .context("recording an execution failed")?;
    crate::failpoint::point("approval-after-record");
    Ok(Some(succeeded))
}

fn command<T: serde::de::DeserializeOwned>(request: &ApprovalRequest) -> Result<T, String> {
    serde_json::from_value(request.params.clone())
        .map_err(|e| format!("stored params are unreadable: {e}"))
}

/// Runs an approved action through the same service function its route uses.
async fn run(ctx: &Ctx, request: &ApprovalRequest) -> Outcome {
    let actor = request.requested_by;
    let action = request.action.parse::<GatedAction>();
    let result: Result<(Value, Option<SecretString>), String> = match action {
        Ok(GatedAction::FederationPeerPropose) => match command::<ProposeCommand>(request) {
            Err(e) => Err(e),
            Ok(cmd) => peer_service::propose(ctx, cmd, actor)
                .await
                .map(|p| {
                    (
                        json!({
                            "peer_id": p.peer.id,
                            "remote_instance_url": p.peer.remote_instance_url,
                            "acceptance_token_expires_at": p.peer.acceptance_token_expires_at
                                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
                        }),
                        p.token,
                    )
                })
                .map_err(|e| e.report_line()),
        },
        Ok(GatedAction::FederationPeerRevoke) => match command::<RevokeCommand>(request) {
            Err(e) => Err(e),
            Ok(cmd) => peer_service::revoke(ctx, cmd, actor)
                .await
                .map(|p| (json!({"peer_id": p.id, "status": p.status}), None))
                .map_err(|e| e.report_line()),
        },
        Ok(GatedAction::FederationPeerAccept) => match open_params(ctx, request) {
            Err(e) => Err(e),
            Ok(token) => crate::services::federation::accept_remote(ctx, token, actor)
                .await
                .map(|p| {
                    (
                        json!({"peer_id": p.id, "remote_instance_url": p.remote_instance_url, "status": p.status}),
                        None,
                    )
                })
                .map_err(|e| e.report_line()),
        },
        Err(_) => Err(format!("no executor for action {}", request.action)),
    };
    match result {
        Err(e) => Outcome::Failed(e),
        Ok((result, secret)) => {
            let sealed = secret.map(|s| {
                ctx.settings
                    .master_key
                    .seal(&result_context(request.id), s.expose_secret().as_bytes())
                    .map(Sealed)
            });
            match sealed.transpose() {
                Ok(result_sealed) => Outcome::Succeeded {
                    result,
                    result_sealed,
                },
                Err(e) => Outcome::Failed(format!("sealing the result failed: {e}")),
            }
        }
    }
}

fn open_params(ctx: &Ctx, request: &ApprovalRequest) -> Result<SecretString, String> {
    let sealed = request
        .params_sealed
        .as_ref()
        .ok_or("the request's sealed params are gone")?;
    let plain = ctx
        .settings
        .master_key
        .open(&params_context(request.id), &sealed.0)
        .map_err(|e| format!("opening sealed params failed: {e}"))?;
    String::from_utf8(plain.expose_secret().clone())
        .map(SecretString::from)
        .map_err(|_| "sealed params are not text".to_owned())
}
