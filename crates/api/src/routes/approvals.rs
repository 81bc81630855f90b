//! `/api/v1/ai/autonomy/approvals`, `/api/v1/ai/autonomy/policies`, `/api/v1/ai/agents`
//! (SPEC §7): the approval queue, intervention policies with emergency lowering, and the
//! SDWAN Manager's pause switch.

use actix_web::{HttpResponse, get, post, put, web};
use powernode_domain::Permission;
use powernode_domain::approval::{ApprovalStatus, ExecutionStatus, Policy, TimeoutAction};
use powernode_store::approvals::{Agent, ApprovalRequest, StoredPolicy};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::OperatorAuth;
use crate::error::{ApiError, ok};
use crate::routes::optional_json;
use crate::services::approvals as service;
use crate::startup::AppState;

const MAX_LIST: i64 = 500;

/// An approval request as operators see it; sealed params and results never appear.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApprovalView {
    pub id: Uuid,
    pub action: String,
    /// What the action will do (secrets such as an acceptance token are held sealed instead).
    #[schema(value_type = Object)]
    pub params: Value,
    pub requested_by: Uuid,
    #[schema(value_type = String, example = "pending")]
    pub status: ApprovalStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// An operator id, or `sdwan_manager` for a timeout.
    pub decided_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    pub comments: Option<String>,
    #[schema(value_type = String, example = "pending")]
    pub execution_status: ExecutionStatus,
    pub execution_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub executed_at: Option<OffsetDateTime>,
    /// What the execution produced that may be shown (e.g. the new peer's id).
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// A secret result (a minted acceptance token) waits for `claim_result`.
    pub result_claimable: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub result_claimed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<ApprovalRequest> for ApprovalView {
    fn from(r: ApprovalRequest) -> Self {
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
}

/// The 202 a gated call answers (SPEC §7).
pub fn approval_required(request: ApprovalRequest) -> HttpResponse {
    let message = format!("Approval required: {}", request.action);
    HttpResponse::Accepted().json(json!({
        "success": true,
        "data": { "message": message, "approval_request": ApprovalView::from(request) },
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `pending` (default), `approved`, `rejected`, `expired`, `cancelled` or `all`.
    pub status: Option<String>,
    /// At most this many, newest first (1–500, default 100).
    pub limit: Option<i64>,
}

/// List approval requests, newest first; pending ones by default.
#[utoipa::path(
    tag = "approvals",
    params(ListQuery),
    responses((status = 200, body = Vec<ApprovalView>), (status = 400), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[get("/approvals")]
pub async fn list(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationRead)?;
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
    let requests = service::list(&state, status, limit).await?;
    Ok(ok(requests
        .into_iter()
        .map(ApprovalView::from)
        .collect::<Vec<_>>()))
}

/// Show one approval request.
#[utoipa::path(
    tag = "approvals",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ApprovalView), (status = 404), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[get("/approvals/{id}")]
pub async fn show(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationRead)?;
    Ok(ok(ApprovalView::from(service::find(&state, *id).await?)))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// Recorded on the request and in its event (at most 2000 characters).
    pub comments: Option<String>,
}

async fn decide(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    id: Uuid,
    body: &[u8],
    approving: bool,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::InfraTasksControl)?;
    let req: DecisionRequest = optional_json(body)?;
    let comments = service::comments(req.comments)?;
    let decided = service::decide(&state, id, approving, auth.id(), comments).await?;
    Ok(ok(ApprovalView::from(decided)))
}

/// Approve a pending request; the SDWAN Manager executes it on its next tick.
#[utoipa::path(
    tag = "approvals",
    params(("id" = Uuid, Path)),
    request_body(content = DecisionRequest, description = "optional"),
    responses((status = 200, body = ApprovalView),
              (status = 403, description = "Missing `system.infra_tasks.control`, or `You cannot decide your own approval request`"),
              (status = 409, description = "`Approval request has expired` / `Approval request already <status>`"),
              (status = 404), (status = 401)),
    security(("operator_token" = []))
)]
#[post("/approvals/{id}/approve")]
pub async fn approve(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    decide(auth, state, *id, &body, true).await
}

/// Reject a pending request; nothing is executed.
#[utoipa::path(
    tag = "approvals",
    params(("id" = Uuid, Path)),
    request_body(content = DecisionRequest, description = "optional"),
    responses((status = 200, body = ApprovalView),
              (status = 403, description = "Missing `system.infra_tasks.control`, or `You cannot decide your own approval request`"),
              (status = 409, description = "`Approval request has expired` / `Approval request already <status>`"),
              (status = 404), (status = 401)),
    security(("operator_token" = []))
)]
#[post("/approvals/{id}/reject")]
pub async fn reject(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    decide(auth, state, *id, &body, false).await
}

/// Withdraw your own pending request.
#[utoipa::path(
    tag = "approvals",
    params(("id" = Uuid, Path)),
    request_body(content = DecisionRequest, description = "optional"),
    responses((status = 200, body = ApprovalView),
              (status = 403, description = "`Only the requester can cancel an approval request`"),
              (status = 409), (status = 404), (status = 401)),
    security(("operator_token" = []))
)]
#[post("/approvals/{id}/cancel")]
pub async fn cancel(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let req: DecisionRequest = optional_json(&body)?;
    let comments = service::comments(req.comments)?;
    let cancelled = service::cancel(&state, *id, auth.id(), comments).await?;
    Ok(ok(ApprovalView::from(cancelled)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ClaimedResultView {
    pub approval_request: ApprovalView,
    /// The acceptance token an approved propose minted (`pnfa1_…`); shown this once.
    pub acceptance_token: Option<String>,
}

/// Hand the requester what an executed request produced (the acceptance token an approved
/// propose minted), exactly once; it is wiped afterwards.
#[utoipa::path(
    tag = "approvals",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ClaimedResultView),
              (status = 403, description = "`Only the requester can claim the result`"),
              (status = 409, description = "`result already claimed` / `result not available: execution <status>`"),
              (status = 404), (status = 401)),
    security(("operator_token" = []))
)]
#[post("/approvals/{id}/claim_result")]
pub async fn claim_result(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let claimed = service::claim_result(&state, *id, auth.id()).await?;
    let mut view = ApprovalView::from(claimed.request);
    view.result_claimable = false;
    Ok(ok(ClaimedResultView {
        approval_request: view,
        acceptance_token: claimed.secret.map(|s| s.expose_secret().to_owned()),
    }))
}

// ---------------------------------------------------------------------------------------------
// Policies

#[derive(Serialize, utoipa::ToSchema)]
pub struct LoweringView {
    #[schema(value_type = String)]
    pub to: Policy,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    pub lowered_by: Option<Uuid>,
    pub reason: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PolicyView {
    pub action: String,
    /// The stored policy.
    #[schema(value_type = String, example = "require_approval")]
    pub policy: Policy,
    /// What the gate applies now (the lowering while its window lasts).
    #[schema(value_type = String, example = "require_approval")]
    pub effective_policy: Policy,
    pub timeout_seconds: u32,
    #[schema(value_type = String, example = "reject")]
    pub timeout_action: TimeoutAction,
    pub auto_approve_allowed: bool,
    pub timeout_approve_allowed: bool,
    pub lowered: Option<LoweringView>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl PolicyView {
    fn new(p: StoredPolicy, now: OffsetDateTime) -> Self {
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

/// Intervention policies of every gated action.
#[utoipa::path(
    tag = "approvals",
    responses((status = 200, body = Vec<PolicyView>), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[get("/policies")]
pub async fn policies(
    auth: OperatorAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationRead)?;
    let (all, now) = service::policies(&state).await?;
    Ok(ok(all
        .into_iter()
        .map(|p| PolicyView::new(p, now))
        .collect::<Vec<_>>()))
}

/// One action's policy.
#[utoipa::path(
    tag = "approvals",
    params(("action" = String, Path, example = "system.federation_peer_revoke")),
    responses((status = 200, body = PolicyView), (status = 404), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[get("/policies/{action}")]
pub async fn policy(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    action: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationRead)?;
    let (p, now) = service::policy(&state, action.into_inner()).await?;
    Ok(ok(PolicyView::new(p, now)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyUpdate {
    #[schema(value_type = String, example = "require_approval")]
    pub policy: String,
    pub timeout_seconds: u32,
    #[schema(value_type = String, example = "reject")]
    pub timeout_action: String,
}

fn parse_policy(field: &str, raw: &str) -> Result<Policy, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::validation(
            field,
            "must be auto_approve, notify_and_proceed, require_approval or blocked",
        )
    })
}

/// Change an action's policy permanently (applies from the next gate evaluation and tick).
#[utoipa::path(
    tag = "approvals",
    params(("action" = String, Path)),
    request_body = PolicyUpdate,
    responses((status = 200, body = PolicyView),
              (status = 422, description = "e.g. `policy auto_approve is not allowed for system.federation_peer_revoke`"),
              (status = 404), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[put("/policies/{action}")]
pub async fn update_policy(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    action: web::Path<String>,
    body: web::Json<PolicyUpdate>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::InfraTasksControl)?;
    let new_policy = parse_policy("policy", &body.policy)?;
    let timeout_action: TimeoutAction = body
        .timeout_action
        .parse()
        .map_err(|_| ApiError::validation("timeout_action", "must be reject or approve"))?;
    let (p, now) = service::update_policy(
        &state,
        action.into_inner(),
        new_policy,
        body.timeout_seconds,
        timeout_action,
        auth.id(),
    )
    .await?;
    Ok(ok(PolicyView::new(p, now)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LowerRequest {
    /// A less strict policy, e.g. `notify_and_proceed`.
    #[schema(value_type = String, example = "notify_and_proceed")]
    pub to: String,
    /// Window length (1 s – 24 h); the policy restores itself when it ends.
    pub for_seconds: u32,
    pub reason: String,
}

/// Emergency lowering of an action's policy for a bounded window (SPEC §7).
#[utoipa::path(
    tag = "approvals",
    params(("action" = String, Path)),
    request_body = LowerRequest,
    responses((status = 200, body = PolicyView),
              (status = 409, description = "Already lowered"),
              (status = 422), (status = 404), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[post("/policies/{action}/lower")]
pub async fn lower(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    action: web::Path<String>,
    body: web::Json<LowerRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::InfraTasksControl)?;
    let to = parse_policy("to", &body.to)?;
    let reason = crate::services::peers::reason(&body.reason)?;
    let (p, now) = service::lower(
        &state,
        action.into_inner(),
        to,
        body.for_seconds,
        reason,
        auth.id(),
    )
    .await?;
    Ok(ok(PolicyView::new(p, now)))
}

/// End an emergency lowering now.
#[utoipa::path(
    tag = "approvals",
    params(("action" = String, Path)),
    responses((status = 200, body = PolicyView), (status = 409, description = "`Policy <action> is not lowered`"),
              (status = 404), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[post("/policies/{action}/restore")]
pub async fn restore(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    action: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::InfraTasksControl)?;
    let (p, now) = service::restore(&state, action.into_inner(), auth.id()).await?;
    Ok(ok(PolicyView::new(p, now)))
}

// ---------------------------------------------------------------------------------------------
// Agents

/// Agents (the SDWAN Manager) and whether they are paused.
#[utoipa::path(
    tag = "approvals",
    responses((status = 200, body = Vec<Object>), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[get("/agents")]
pub async fn agents(
    auth: OperatorAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationRead)?;
    Ok(ok(service::agents(&state).await?))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentStatusRequest {
    pub reason: Option<String>,
}

async fn set_paused(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    name: String,
    body: &[u8],
    paused: bool,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::InfraTasksControl)?;
    let req: AgentStatusRequest = optional_json(body)?;
    let reason = req
        .reason
        .as_deref()
        .map(crate::services::peers::reason)
        .transpose()?;
    let agent: Agent = service::set_agent_paused(&state, name, paused, auth.id(), reason).await?;
    Ok(ok(agent))
}

/// Pause an agent: approved requests wait (they stay decidable); timeouts still apply.
#[utoipa::path(
    tag = "approvals",
    params(("name" = String, Path, example = "SDWAN Manager")),
    request_body(content = AgentStatusRequest, description = "optional"),
    responses((status = 200), (status = 409, description = "Already paused"), (status = 404), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[post("/agents/{name}/pause")]
pub async fn pause(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    set_paused(auth, state, name.into_inner(), &body, true).await
}

/// Resume an agent; it executes approved requests from its next tick.
#[utoipa::path(
    tag = "approvals",
    params(("name" = String, Path, example = "SDWAN Manager")),
    request_body(content = AgentStatusRequest, description = "optional"),
    responses((status = 200), (status = 409, description = "Already active"), (status = 404), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[post("/agents/{name}/resume")]
pub async fn resume(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    set_paused(auth, state, name.into_inner(), &body, false).await
}
