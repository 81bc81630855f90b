//! The approval queue as operators use it (SPEC §7): list, show, decide, cancel, claim a
//! result; intervention policies with emergency lowering; the agents' pause switch. Every
//! function checks the operator's permission and returns what every surface shows.

use powernode_client::approvals::{
    AgentStatusRequest, AgentView, ApprovalView, ClaimedResultView, DecisionRequest, ListQuery,
    LowerRequest, LoweringView, PolicyUpdate, PolicyView,
};
use powernode_domain::Permission;
use powernode_domain::approval::{self, ApprovalStatus, ExecutionStatus, Policy, TimeoutAction};
use powernode_store::approvals::{
    self as store, Agent, ApprovalOpError, ApprovalRequest, StoredPolicy,
};
use powernode_store::operators::Operator;
use secrecy::ExposeSecret;
use time::OffsetDateTime;

use powernode_domain::ApprovalId;

use super::{in_transaction, result_context};
use crate::db::{self, Context as _};
use crate::error::{ApiError, internal};
use crate::services::{Ctx, require};

pub(crate) const MAX_LIST: i64 = 500;

pub fn approval_view(r: ApprovalRequest) -> ApprovalView {
    ApprovalView {
        result_claimable: r.execution_status == ExecutionStatus::Succeeded
            && r.result_claimed_at.is_none(),
        id: r.id,
        action: r.action,
        params: r.params,
        requested_by: r.requested_by,
        status: r.status,
        expires_at: r.expires_at,
        decided_by: r.decided_by,
        decided_at: r.decided_at,
        comments: r.comments,
        execution_status: r.execution_status,
        execution_error: r.execution_error,
        executed_at: r.executed_at,
        result: r.result,
        result_claimed_at: r.result_claimed_at,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

pub fn policy_view(p: StoredPolicy, now: OffsetDateTime) -> PolicyView {
    {
        let lowered = p.state.active_lowering(now).map(|l| LoweringView {
            to: l.to,
            until: l.until,
            lowered_by: p.lowered_by,
            reason: p.lowered_reason.clone(),
        });
        PolicyView {
            effective_policy: p.state.effective(now),
            policy: p.state.policy,
            timeout_seconds: p.state.timeout_secs,
            timeout_action: p.state.timeout_action,
            auto_approve_allowed: p.state.auto_approve_allowed,
            timeout_approve_allowed: p.state.timeout_approve_allowed,
            action: p.state.action,
            lowered,
            updated_at: p.updated_at,
        }
    }
}

fn parse_policy(field: &str, raw: &str) -> Result<Policy, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::validation(
            field,
            "must be auto_approve, notify_and_proceed, require_approval or blocked",
        )
    })
}

/// One approval request.
pub async fn show(
    ctx: &Ctx,
    operator: &Operator,
    id: ApprovalId,
) -> Result<ApprovalView, ApiError> {
    let id = id.uuid();
    require(operator, Permission::FederationRead)?;
    db::run(&ctx.db, move |conn| store::find_request(conn, id))
        .await
        .context("approval lookup failed")?
        .map(approval_view)
        .ok_or_else(|| ApiError::NotFound(format!("approval request {id} not found")))
}

/// Approval requests, newest first; pending ones by default.
pub async fn list(
    ctx: &Ctx,
    operator: &Operator,
    query: ListQuery,
) -> Result<Vec<ApprovalView>, ApiError> {
    require(operator, Permission::FederationRead)?;
    let status = match query.status.as_deref() {
        None => Some(ApprovalStatus::Pending),
        Some("all") => None,
        Some(s) => Some(s.parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "status must be pending, approved, rejected, expired, cancelled or all (got {s:?})"
            ))
        })?),
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIST}"
        )));
    }
    let requests = db::run(&ctx.db, move |conn| {
        store::list_requests(conn, status, limit)
    })
    .await
    .context("approval list failed")?;
    Ok(requests.into_iter().map(approval_view).collect())
}

/// Validates optional comments.
fn comments(raw: Option<String>) -> Result<Option<String>, ApiError> {
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

/// Approve (`approve = true`) or reject a pending request; one of N concurrent decisions wins.
pub async fn decide(
    ctx: &Ctx,
    operator: &Operator,
    id: ApprovalId,
    approve: bool,
    req: DecisionRequest,
) -> Result<ApprovalView, ApiError> {
    let id = id.uuid();
    require(operator, Permission::InfraTasksControl)?;
    let comments = comments(req.comments)?;
    let decider = operator.id;
    let decided = in_transaction(ctx, move |conn| {
        store::decide(conn, id, approve, decider, comments.as_deref())
    })
    .await?;
    tracing::info!(approval_request_id = %id, action = %decided.action, status = %decided.status, operator_id = %decider, "approval request decided");
    Ok(approval_view(decided))
}

/// The requester withdraws their own pending request.
pub async fn cancel(
    ctx: &Ctx,
    operator: &Operator,
    id: ApprovalId,
    req: DecisionRequest,
) -> Result<ApprovalView, ApiError> {
    let id = id.uuid();
    let comments = comments(req.comments)?;
    let requester = operator.id;
    let cancelled = in_transaction(ctx, move |conn| {
        store::cancel(conn, id, requester, comments.as_deref())
    })
    .await?;
    tracing::info!(approval_request_id = %id, operator_id = %requester, "approval request cancelled");
    Ok(approval_view(cancelled))
}

/// Hands the requester what an executed request produced (the acceptance token an approved
/// propose minted), exactly once; it is wiped afterwards.
pub async fn claim_result(
    ctx: &Ctx,
    operator: &Operator,
    id: ApprovalId,
) -> Result<ClaimedResultView, ApiError> {
    let id = id.uuid();
    let requester = operator.id;
    let request = in_transaction(ctx, move |conn| store::claim_result(conn, id, requester)).await?;
    let secret = request
        .result_sealed
        .as_ref()
        .map(|sealed| {
            ctx.settings
                .master_key
                .open(&result_context(id), &sealed.0)
                .map_err(|e| internal("opening approval result", e))
                .and_then(|plain| {
                    String::from_utf8(plain.expose_secret().clone())
                        .map_err(|e| internal("approval result", e))
                })
        })
        .transpose()?;
    tracing::info!(approval_request_id = %id, operator_id = %requester, "approval result claimed");
    let mut view = approval_view(request);
    view.result_claimable = false;
    Ok(ClaimedResultView {
        approval_request: view,
        acceptance_token: secret,
    })
}

/// Intervention policies of every gated action.
pub async fn policies(ctx: &Ctx, operator: &Operator) -> Result<Vec<PolicyView>, ApiError> {
    require(operator, Permission::FederationRead)?;
    let (all, now) = db::run(&ctx.db, |conn| -> Result<_, powernode_store::StoreError> {
        Ok((
            store::list_policies(conn)?,
            powernode_store::database_now(conn)?,
        ))
    })
    .await
    .context("policy list failed")?;
    Ok(all.into_iter().map(|p| policy_view(p, now)).collect())
}

/// One action's policy.
pub async fn policy(
    ctx: &Ctx,
    operator: &Operator,
    action: String,
) -> Result<PolicyView, ApiError> {
    require(operator, Permission::FederationRead)?;
    let missing = ApiError::NotFound(format!("policy {action} not found"));
    let (found, now) = db::run(
        &ctx.db,
        move |conn| -> Result<_, powernode_store::StoreError> {
            Ok((
                store::find_policy(conn, &action)?,
                powernode_store::database_now(conn)?,
            ))
        },
    )
    .await
    .context("policy lookup failed")?;
    Ok(policy_view(found.ok_or(missing)?, now))
}

/// Emergency lowering for a bounded window (SPEC §7).
pub async fn lower(
    ctx: &Ctx,
    operator: &Operator,
    action: String,
    req: LowerRequest,
) -> Result<PolicyView, ApiError> {
    require(operator, Permission::InfraTasksControl)?;
    let to = parse_policy("to", &req.to)?;
    let reason = crate::services::peers::lifecycle::reason(&req.reason)?;
    let (for_secs, by) = (req.for_seconds, operator.id);
    let lowered = in_transaction(ctx, move |conn| {
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
    Ok(policy_view(lowered.0, lowered.1))
}

/// Ends an emergency lowering now.
pub async fn restore(
    ctx: &Ctx,
    operator: &Operator,
    action: String,
) -> Result<PolicyView, ApiError> {
    require(operator, Permission::InfraTasksControl)?;
    let by = operator.id;
    let restored = in_transaction(ctx, move |conn| {
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
    Ok(policy_view(restored.0, restored.1))
}

/// Changes an action's policy permanently (from the next gate evaluation and tick).
pub async fn update_policy(
    ctx: &Ctx,
    operator: &Operator,
    action: String,
    req: PolicyUpdate,
) -> Result<PolicyView, ApiError> {
    require(operator, Permission::InfraTasksControl)?;
    let policy = parse_policy("policy", &req.policy)?;
    let timeout_action: TimeoutAction = req
        .timeout_action
        .parse()
        .map_err(|_| ApiError::validation("timeout_action", "must be reject or approve"))?;
    let (timeout_secs, by) = (req.timeout_seconds, operator.id);
    let updated = in_transaction(ctx, move |conn| {
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
    Ok(policy_view(updated.0, updated.1))
}

/// Agents (the SDWAN Manager) and whether they are paused.
pub async fn agents(ctx: &Ctx, operator: &Operator) -> Result<Vec<AgentView>, ApiError> {
    require(operator, Permission::FederationRead)?;
    let all = db::run(&ctx.db, store::list_agents)
        .await
        .context("agent list failed")?;
    Ok(all.into_iter().map(agent_view).collect())
}

fn agent_view(a: Agent) -> AgentView {
    AgentView {
        id: a.id,
        name: a.name,
        status: a.status,
        interval_secs: a.interval_secs,
        status_reason: a.status_reason,
        status_changed_by: a.status_changed_by,
        updated_at: a.updated_at,
    }
}

/// Pauses (`paused = true`) or resumes an agent.
pub async fn set_agent_paused(
    ctx: &Ctx,
    operator: &Operator,
    name: String,
    paused: bool,
    req: AgentStatusRequest,
) -> Result<AgentView, ApiError> {
    require(operator, Permission::InfraTasksControl)?;
    let reason = req
        .reason
        .as_deref()
        .map(crate::services::peers::lifecycle::reason)
        .transpose()?;
    let by = operator.id;
    let agent = in_transaction(ctx, move |conn| {
        store::set_agent_paused(conn, &name, paused, by, reason.as_deref())
    })
    .await?;
    tracing::warn!(agent = %agent.name, status = %agent.status, operator_id = %by, "agent status changed");
    Ok(agent_view(agent))
}
