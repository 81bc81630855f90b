//! The approval gate, decisions, emergency lowering and the SDWAN Manager tick (SPEC §7).
//!
//! Gated actions (propose, revoke, B's operator accept) call [`gate`] with their validated,
//! serialisable command. `Proceed` runs the action now on the caller's path; a queued request
//! is executed later by [`tick`] through the very same service functions.

use powernode_domain::approval::{
    self, ExecutionPlan, FEDERATION_PEER_ACCEPT, FEDERATION_PEER_PROPOSE, FEDERATION_PEER_REVOKE,
    Gate, Policy, SDWAN_MANAGER_AGENT, TimeoutAction,
};
use powernode_store::StoreError;
use powernode_store::approvals::{
    self as store, Agent, ApprovalOpError, ApprovalRequest, NewRequest, Outcome, StoredPolicy,
};
use powernode_store::peers::Sealed;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db;
use crate::error::{ApiError, internal};
use crate::services::peers::{self as peer_service, ProposeCommand, RevokeCommand};
use crate::startup::AppState;

/// Most requests one tick executes; the rest wait for the next tick.
const MAX_EXECUTIONS_PER_TICK: usize = 100;

fn params_context(id: Uuid) -> Vec<u8> {
    format!("approval-params:{id}").into_bytes()
}

fn result_context(id: Uuid) -> Vec<u8> {
    format!("approval-result:{id}").into_bytes()
}

pub fn op_error(e: ApprovalOpError) -> ApiError {
    use powernode_domain::approval::DecisionRefusal as R;
    match e {
        ApprovalOpError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
        ApprovalOpError::Refused(r @ (R::OwnRequest | R::NotRequester)) => {
            ApiError::ForbiddenAction(r.to_string())
        }
        ApprovalOpError::Refused(r) => ApiError::Conflict(r.to_string()),
        ApprovalOpError::Forbidden(m) => ApiError::ForbiddenAction(m),
        ApprovalOpError::Conflict(m) => ApiError::Conflict(m),
        ApprovalOpError::Invalid { field, message } => ApiError::validation(field, message),
        ApprovalOpError::Store(e) => internal("approval operation failed", e),
    }
}

async fn in_transaction<T, F>(state: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut diesel::PgConnection) -> Result<T, ApprovalOpError> + Send + 'static,
{
    db::run(&state.pool, move |conn| {
        use diesel::Connection;
        Ok(conn.transaction(f))
    })
    .await
    .map_err(|e| internal("approval operation failed", e))?
    .map_err(op_error)
}

/// One gated call: what it is, what the approver sees, and the secret it needs (if any).
pub struct GateCall {
    pub action: &'static str,
    /// Shown to approvers; never a secret.
    pub params: Value,
    /// Sealed with the master key until execution (an acceptance token).
    pub secret: Option<SecretString>,
    pub actor: Uuid,
}

/// The gate (SPEC §7): restores ended lowerings, then by the effective policy proceeds (with
/// `approval.notified` for `notify_and_proceed`), queues a request, or refuses.
/// `Ok(None)`: run the action now. `Ok(Some(request))`: answer 202 with it.
pub async fn gate(state: &AppState, call: GateCall) -> Result<Option<ApprovalRequest>, ApiError> {
    let id = Uuid::new_v4();
    let sealed = call
        .secret
        .as_ref()
        .map(|s| {
            state
                .settings
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
    let outcome = in_transaction(state, move |conn| {
        store::restore_ended(conn)?;
        let policy = store::lock_policy(conn, action)?;
        let now = powernode_store::database_now(conn)?;
        match policy.state.gate(now) {
            Gate::Proceed { notify } => {
                if notify {
                    store::notify(conn, action, &params, None, actor)?;
                }
                Ok(Ok(None))
            }
            Gate::Blocked => Ok(Err(())),
            Gate::Pending => Ok(Ok(Some(store::insert_request(
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
        Err(()) => {
            tracing::warn!(action, operator_id = %actor, "action blocked by policy");
            Err(ApiError::validation("action", "blocked by policy")
                .with_message("Action blocked by policy".to_owned()))
        }
        Ok(Some(request)) => {
            tracing::info!(action, approval_request_id = %request.id, operator_id = %actor, expires_at = %request.expires_at, "approval required");
            Ok(Some(request))
        }
        Ok(None) => Ok(None),
    }
}

pub async fn find(state: &AppState, id: Uuid) -> Result<ApprovalRequest, ApiError> {
    db::run(&state.pool, move |conn| store::find_request(conn, id))
        .await
        .map_err(|e| internal("approval lookup failed", e))?
        .ok_or_else(|| ApiError::NotFound(format!("approval request {id} not found")))
}

pub async fn list(
    state: &AppState,
    status: Option<approval::ApprovalStatus>,
    limit: i64,
) -> Result<Vec<ApprovalRequest>, ApiError> {
    db::run(&state.pool, move |conn| {
        store::list_requests(conn, status, limit)
    })
    .await
    .map_err(|e| internal("approval list failed", e))
}

/// Validates optional comments.
pub fn comments(raw: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let trimmed = raw.trim();
    if trimmed.chars().count() > approval::MAX_COMMENTS_LEN {
        return Err(ApiError::validation(
            "comments",
            format!(
                "is too long (maximum {} characters)",
                approval::MAX_COMMENTS_LEN
            ),
        ));
    }
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

pub async fn decide(
    state: &AppState,
    id: Uuid,
    approve: bool,
    decider: Uuid,
    comments: Option<String>,
) -> Result<ApprovalRequest, ApiError> {
    let decided = in_transaction(state, move |conn| {
        store::decide(conn, id, approve, decider, comments.as_deref())
    })
    .await?;
    tracing::info!(approval_request_id = %id, action = %decided.action, status = %decided.status, operator_id = %decider, "approval request decided");
    Ok(decided)
}

pub async fn cancel(
    state: &AppState,
    id: Uuid,
    requester: Uuid,
    comments: Option<String>,
) -> Result<ApprovalRequest, ApiError> {
    let cancelled = in_transaction(state, move |conn| {
        store::cancel(conn, id, requester, comments.as_deref())
    })
    .await?;
    tracing::info!(approval_request_id = %id, operator_id = %requester, "approval request cancelled");
    Ok(cancelled)
}

/// What an executed request produced, handed to its requester once.
pub struct ClaimedResult {
    pub request: ApprovalRequest,
    pub secret: Option<SecretString>,
}

pub async fn claim_result(
    state: &AppState,
    id: Uuid,
    requester: Uuid,
) -> Result<ClaimedResult, ApiError> {
    let request =
        in_transaction(state, move |conn| store::claim_result(conn, id, requester)).await?;
    let secret = request
        .result_sealed
        .as_ref()
        .map(|sealed| {
            state
                .settings
                .master_key
                .open(&result_context(id), &sealed.0)
                .map_err(|e| internal("opening approval result", e))
                .and_then(|plain| {
                    String::from_utf8(plain.expose_secret().clone())
                        .map(SecretString::from)
                        .map_err(|e| internal("approval result", e))
                })
        })
        .transpose()?;
    tracing::info!(approval_request_id = %id, operator_id = %requester, "approval result claimed");
    Ok(ClaimedResult { request, secret })
}

// ---------------------------------------------------------------------------------------------
// The SDWAN Manager tick

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TickOutcome {
    /// Pending requests past expiry that got their timeout action.
    pub expired: usize,
    pub executed: usize,
    pub failed: usize,
    /// The agent is paused: nothing was executed.
    pub paused: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub ran_at: OffsetDateTime,
}

pub async fn tick(state: &AppState) -> Result<TickOutcome, ApiError> {
    let (expired, paused) = in_transaction(state, |conn| {
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
            match execute_next(state).await? {
                None => break,
                Some(true) => executed += 1,
                Some(false) => failed += 1,
            }
        }
    }
    let ran_at = peer_service::database_now(state).await?;
    Ok(TickOutcome {
        expired: expired.len(),
        executed,
        failed,
        paused,
        ran_at,
    })
}

/// Claims the oldest approved, unexecuted request and executes it once, the claim spanning the
/// execution. `None` when there is nothing (left) to execute; otherwise whether it succeeded.
async fn execute_next(state: &AppState) -> Result<Option<bool>, ApiError> {
    let claimed = crate::claim::claim(&state.pool, |conn| -> Result<_, StoreError> {
        let Some(request) = store::claim_executable(conn)? else {
            return Ok(None);
        };
        let started = store::started_attempts(conn, request.id)?;
        Ok(Some((request, started)))
    })
    .await
    .map_err(|e| internal("approval claim failed", e))?;
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
            // Committed before the action runs, so a crash mid-execution is seen next tick.
            let recorded = db::run(&state.pool, move |conn| store::start_attempt(conn, id)).await;
            if let Err(e) = recorded {
                claimed.release().await;
                return Err(internal("recording an execution attempt failed", e));
            }
            if plan == ExecutionPlan::Rerun {
                tracing::warn!(approval_request_id = %id, action = %request.action, "re-running an execution that was interrupted");
            }
            run(state, &request).await
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
        .map_err(|e| internal("recording an execution failed", e))?;
    Ok(Some(succeeded))
}

fn command<T: serde::de::DeserializeOwned>(request: &ApprovalRequest) -> Result<T, String> {
    serde_json::from_value(request.params.clone())
        .map_err(|e| format!("stored params are unreadable: {e}"))
}

/// Runs an approved action through the same service function its route uses.
async fn run(state: &AppState, request: &ApprovalRequest) -> Outcome {
    let actor = request.requested_by;
    let result: Result<(Value, Option<SecretString>), String> = match request.action.as_str() {
        FEDERATION_PEER_PROPOSE => match command::<ProposeCommand>(request) {
            Err(e) => Err(e),
            Ok(cmd) => peer_service::propose(state, cmd, actor)
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
                .map_err(|e| e.to_string()),
        },
        FEDERATION_PEER_REVOKE => match command::<RevokeCommand>(request) {
            Err(e) => Err(e),
            Ok(cmd) => peer_service::revoke(state, cmd, actor)
                .await
                .map(|p| (json!({"peer_id": p.id, "status": p.status}), None))
                .map_err(|e| e.to_string()),
        },
        FEDERATION_PEER_ACCEPT => match open_params(state, request) {
            Err(e) => Err(e),
            Ok(token) => crate::services::federation::accept_remote(state, token, actor)
                .await
                .map(|p| {
                    (
                        json!({"peer_id": p.id, "remote_instance_url": p.remote_instance_url, "status": p.status}),
                        None,
                    )
                })
                .map_err(|e| e.to_string()),
        },
        other => Err(format!("no executor for action {other}")),
    };
    match result {
        Err(e) => Outcome::Failed(e),
        Ok((result, secret)) => {
            let sealed = secret.map(|s| {
                state
                    .settings
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

fn open_params(state: &AppState, request: &ApprovalRequest) -> Result<SecretString, String> {
    let sealed = request
        .params_sealed
        .as_ref()
        .ok_or("the request's sealed params are gone")?;
    let plain = state
        .settings
        .master_key
        .open(&params_context(request.id), &sealed.0)
        .map_err(|e| format!("opening sealed params failed: {e}"))?;
    String::from_utf8(plain.expose_secret().clone())
        .map(SecretString::from)
        .map_err(|_| "sealed params are not text".to_owned())
}

// ---------------------------------------------------------------------------------------------
// Policies and agents

pub async fn policies(state: &AppState) -> Result<(Vec<StoredPolicy>, OffsetDateTime), ApiError> {
    db::run(&state.pool, |conn| {
        Ok((
            store::list_policies(conn)?,
            powernode_store::database_now(conn)?,
        ))
    })
    .await
    .map_err(|e| internal("policy list failed", e))
}

pub async fn policy(
    state: &AppState,
    action: String,
) -> Result<(StoredPolicy, OffsetDateTime), ApiError> {
    let missing = ApiError::NotFound(format!("policy {action} not found"));
    let (found, now) = db::run(&state.pool, move |conn| {
        Ok((
            store::find_policy(conn, &action)?,
            powernode_store::database_now(conn)?,
        ))
    })
    .await
    .map_err(|e| internal("policy lookup failed", e))?;
    Ok((found.ok_or(missing)?, now))
}

/// Emergency lowering for a bounded window (SPEC §7).
pub async fn lower(
    state: &AppState,
    action: String,
    to: Policy,
    for_secs: u32,
    reason: String,
    by: Uuid,
) -> Result<(StoredPolicy, OffsetDateTime), ApiError> {
    let lowered = in_transaction(state, move |conn| {
        store::restore_ended(conn)?;
        let current = store::lock_policy(conn, &action)?;
        let now = powernode_store::database_now(conn)?;
        if let Some(l) = current.state.active_lowering(now) {
            return Err(ApprovalOpError::Conflict(format!(
                "Policy {action} is already lowered to {} until {}; restore it first",
                l.to,
                l.until
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            )));
        }
        current
            .state
            .check_lowering(to, for_secs)
            .map_err(|r| ApprovalOpError::Invalid {
                field: r.field,
                message: r.message,
            })?;
        Ok((
            store::lower(conn, &current, to, for_secs, by, &reason)?,
            now,
        ))
    })
    .await?;
    tracing::warn!(action = %lowered.0.state.action, to = %to, for_secs, operator_id = %by, "policy lowered for an emergency");
    Ok(lowered)
}

pub async fn restore(
    state: &AppState,
    action: String,
    by: Uuid,
) -> Result<(StoredPolicy, OffsetDateTime), ApiError> {
    let restored = in_transaction(state, move |conn| {
        store::restore_ended(conn)?;
        let current = store::lock_policy(conn, &action)?;
        let now = powernode_store::database_now(conn)?;
        if current.state.active_lowering(now).is_none() {
            return Err(ApprovalOpError::Conflict(format!(
                "Policy {action} is not lowered"
            )));
        }
        Ok((store::restore(conn, &current, by)?, now))
    })
    .await?;
    tracing::info!(action = %restored.0.state.action, operator_id = %by, "policy restored by an operator");
    Ok(restored)
}

pub async fn update_policy(
    state: &AppState,
    action: String,
    policy: Policy,
    timeout_secs: u32,
    timeout_action: TimeoutAction,
    by: Uuid,
) -> Result<(StoredPolicy, OffsetDateTime), ApiError> {
    let updated = in_transaction(state, move |conn| {
        let current = store::lock_policy(conn, &action)?;
        current
            .state
            .check_update(policy, timeout_secs, timeout_action)
            .map_err(|r| ApprovalOpError::Invalid {
                field: r.field,
                message: r.message,
            })?;
        let now = powernode_store::database_now(conn)?;
        Ok((
            store::update_policy(conn, &current, policy, timeout_secs, timeout_action, by)?,
            now,
        ))
    })
    .await?;
    tracing::info!(action = %updated.0.state.action, policy = %policy, timeout_secs, operator_id = %by, "policy updated");
    Ok(updated)
}

pub async fn agents(state: &AppState) -> Result<Vec<Agent>, ApiError> {
    db::run(&state.pool, store::list_agents)
        .await
        .map_err(|e| internal("agent list failed", e))
}

pub async fn set_agent_paused(
    state: &AppState,
    name: String,
    paused: bool,
    by: Uuid,
    reason: Option<String>,
) -> Result<Agent, ApiError> {
    let agent = in_transaction(state, move |conn| {
        store::set_agent_paused(conn, &name, paused, by, reason.as_deref())
    })
    .await?;
    tracing::warn!(agent = %agent.name, status = %agent.status, operator_id = %by, "agent status changed");
    Ok(agent)
}

pub async fn pending_count(state: &AppState) -> Result<i64, ApiError> {
    db::run(&state.pool, store::pending_count)
        .await
        .map_err(|e| internal("approval count failed", e))
}

/// `params` shown for a queued revoke.
pub fn revoke_params(command: &RevokeCommand) -> Value {
    json!({"peer_id": command.peer_id, "reason": command.reason})
}

/// Gate, then run now or queue — the shape every gated route shares.
pub enum Gated<T> {
    Done(T),
    Queued(Box<ApprovalRequest>),
}

pub async fn gated_revoke(
    state: &AppState,
    command: RevokeCommand,
    actor: Uuid,
) -> Result<Gated<powernode_store::peers::Peer>, ApiError> {
    // Refuse now what could never run: an unknown or already revoked peer.
    let peer = peer_service::find(state, command.peer_id).await?;
    powernode_domain::peer::apply(peer.status, powernode_domain::PeerEvent::Revoke)?;
    let call = GateCall {
        action: FEDERATION_PEER_REVOKE,
        params: revoke_params(&command),
        secret: None,
        actor,
    };
    match gate(state, call).await? {
        Some(request) => Ok(Gated::Queued(Box::new(request))),
        None => Ok(Gated::Done(
            peer_service::revoke(state, command, actor).await?,
        )),
    }
}

pub async fn gated_propose(
    state: &AppState,
    command: ProposeCommand,
    actor: Uuid,
) -> Result<Gated<peer_service::Proposed>, ApiError> {
    let params = serde_json::to_value(&command).map_err(|e| internal("propose params", e))?;
    let call = GateCall {
        action: FEDERATION_PEER_PROPOSE,
        params,
        secret: None,
        actor,
    };
    match gate(state, call).await? {
        Some(request) => Ok(Gated::Queued(Box::new(request))),
        None => Ok(Gated::Done(
            peer_service::propose(state, command, actor).await?,
        )),
    }
}

/// B's operator accept: the token is parsed now (a malformed one is refused at once), carried
/// sealed until execution, and never shown back.
pub async fn gated_accept(
    state: &AppState,
    token: SecretString,
    actor: Uuid,
) -> Result<Gated<powernode_store::peers::Peer>, ApiError> {
    let claims = powernode_domain::token::parse(token.expose_secret()).map_err(|e| {
        ApiError::validation("acceptance_token", "malformed").with_message(e.to_string())
    })?;
    let call = GateCall {
        action: FEDERATION_PEER_ACCEPT,
        params: json!({
            "remote_instance_url": claims.url,
            "remote_peer_id": claims.peer_id,
            "remote_ca_sha256": claims.ca_sha256,
        }),
        secret: Some(token.clone()),
        actor,
    };
    match gate(state, call).await? {
        Some(request) => Ok(Gated::Queued(Box::new(request))),
        None => Ok(Gated::Done(
            crate::services::federation::accept_remote(state, token, actor).await?,
        )),
    }
}
