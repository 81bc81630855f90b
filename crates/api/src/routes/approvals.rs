//! `/api/v1/ai/autonomy/approvals`, `/api/v1/ai/autonomy/policies`, `/api/v1/ai/agents`
//! (SPEC §7): the approval queue, intervention policies with emergency lowering, and the
//! SDWAN Manager's pause switch. Each handler calls one service function.

use actix_web::{HttpResponse, get, post, put, web};
use powernode_domain::ApprovalId;

use crate::auth::{Idempotency, OperatorAuth};
use crate::error::ApiError;
use crate::render::{ok, optional_json};
use crate::services::approvals::queue as service;
use crate::services::idempotency::once;
use crate::startup::AppState;
use powernode_client::approvals::{
    AgentStatusRequest, ApprovalView, ClaimedResultView, DecisionRequest, ListQuery, LowerRequest,
    PolicyUpdate, PolicyView,
};

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
    Ok(ok(service::list(&state, &auth.0, query.into_inner()).await?))
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
    id: web::Path<ApprovalId>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(service::show(&state, &auth.0, *id).await?))
}

async fn decide(
    auth: OperatorAuth,
    idempotency: Idempotency,
    state: web::Data<AppState>,
    id: ApprovalId,
    body: &[u8],
    approving: bool,
) -> Result<HttpResponse, ApiError> {
    let req: DecisionRequest = optional_json(body)?;
    let (op, key) = (&auth.0, idempotency.key());
    let name = if approving {
        "approvals.approve"
    } else {
        "approvals.reject"
    };
    let answer = once(&state, op, key, name, (id, req), |(id, req)| {
        service::decide(&state, op, id, approving, req)
    });
    Ok(ok(answer.await?))
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
    idempotency: Idempotency,
    state: web::Data<AppState>,
    id: web::Path<ApprovalId>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    decide(auth, idempotency, state, *id, &body, true).await
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
    idempotency: Idempotency,
    state: web::Data<AppState>,
    id: web::Path<ApprovalId>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    decide(auth, idempotency, state, *id, &body, false).await
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
    idempotency: Idempotency,
    state: web::Data<AppState>,
    id: web::Path<ApprovalId>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let req: DecisionRequest = optional_json(&body)?;
    let (op, key) = (&auth.0, idempotency.key());
    let answer = once(
        &state,
        op,
        key,
        "approvals.cancel",
        (*id, req),
        |(id, req)| service::cancel(&state, op, id, req),
    );
    Ok(ok(answer.await?))
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
    idempotency: Idempotency,
    state: web::Data<AppState>,
    id: web::Path<ApprovalId>,
) -> Result<HttpResponse, ApiError> {
    let (op, key) = (&auth.0, idempotency.key());
    let answer = once(&state, op, key, "approvals.claim_result", *id, |id| {
        service::claim_result(&state, op, id)
    });
    Ok(ok(answer.await?))
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
    Ok(ok(service::policies(&state, &auth.0).await?))
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
    Ok(ok(
        service::policy(&state, &auth.0, action.into_inner()).await?
    ))
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
    Ok(ok(service::update_policy(
        &state,
        &auth.0,
        action.into_inner(),
        body.into_inner(),
    )
    .await?))
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
    idempotency: Idempotency,
    state: web::Data<AppState>,
    action: web::Path<String>,
    body: web::Json<LowerRequest>,
) -> Result<HttpResponse, ApiError> {
    let (op, key) = (&auth.0, idempotency.key());
    let request = (action.into_inner(), body.into_inner());
    let answer = once(
        &state,
        op,
        key,
        "policies.lower",
        request,
        |(action, req)| service::lower(&state, op, action, req),
    );
    Ok(ok(answer.await?))
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
    idempotency: Idempotency,
    state: web::Data<AppState>,
    action: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (op, key) = (&auth.0, idempotency.key());
    let answer = once(
        &state,
        op,
        key,
        "policies.restore",
        action.into_inner(),
        |action| service::restore(&state, op, action),
    );
    Ok(ok(answer.await?))
}

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
    Ok(ok(service::agents(&state, &auth.0).await?))
}

async fn set_paused(
    auth: OperatorAuth,
    idempotency: Idempotency,
    state: web::Data<AppState>,
    name: String,
    body: &[u8],
    paused: bool,
) -> Result<HttpResponse, ApiError> {
    let req: AgentStatusRequest = optional_json(body)?;
    let (op, key) = (&auth.0, idempotency.key());
    let action = if paused {
        "agents.pause"
    } else {
        "agents.resume"
    };
    let answer = once(&state, op, key, action, (name, req), |(name, req)| {
        service::set_agent_paused(&state, op, name, paused, req)
    });
    Ok(ok(answer.await?))
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
    idempotency: Idempotency,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    set_paused(auth, idempotency, state, name.into_inner(), &body, true).await
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
    idempotency: Idempotency,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    set_paused(auth, idempotency, state, name.into_inner(), &body, false).await
}
