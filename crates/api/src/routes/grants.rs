//! Grants (SPEC §6) on the operator API: issue, list, show, revoke, renew, explain; and the
//! shared resources peers read and write under them. Each handler calls one service.

use actix_web::{HttpResponse, delete, get, post, put, web};
use powernode_domain::{GrantId, PeerId};
use serde_json::Value;

use crate::auth::{Idempotency, OperatorAuth};
use crate::error::ApiError;
use crate::render::{created, ok, optional_json};
use crate::services::grants as service;
use crate::services::idempotency::once;
use crate::startup::AppState;
use powernode_client::grants::{
    ExplainRequest, Explanation, GrantView, IssueRequest, IssuedGrant, ListQuery, RenewRequest,
    RevokeRequest,
};

/// Issue a grant to a peer; the bearer token is shown once.
#[utoipa::path(
    tag = "grants",
    params(("id" = Uuid, Path, description = "peer id")),
    request_body = IssueRequest,
    responses((status = 201, body = IssuedGrant), (status = 404), (status = 409), (status = 422), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[post("/peers/{id}/grants")]
pub async fn issue(
    auth: OperatorAuth,
    idempotency: Idempotency,
    state: web::Data<AppState>,
    id: web::Path<PeerId>,
    body: web::Json<IssueRequest>,
) -> Result<HttpResponse, ApiError> {
    let (op, key) = (&auth.0, idempotency.key());
    let request = (*id, body.into_inner());
    let answer = once(&state, op, key, "grants.issue", request, |(id, req)| {
        service::issue(&state, op, id, req)
    });
    Ok(created(answer.await?))
}

/// List grants, newest first.
#[utoipa::path(tag = "grants", params(ListQuery), responses((status = 200, body = Vec<GrantView>)), security(("operator_token" = [])))]
#[get("/grants")]
pub async fn list(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(service::list(&state, &auth.0, query.into_inner()).await?))
}

/// Show a grant (never its token).
#[utoipa::path(tag = "grants", params(("id" = Uuid, Path)), responses((status = 200, body = GrantView), (status = 404)), security(("operator_token" = [])))]
#[get("/grants/{id}")]
pub async fn show(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    id: web::Path<GrantId>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(service::show(&state, &auth.0, *id).await?))
}

/// Revoke a grant (a second revoke is 409); calls with its token are refused at once.
#[utoipa::path(tag = "grants", params(("id" = Uuid, Path)), request_body = RevokeRequest, responses((status = 200, body = GrantView), (status = 404), (status = 409)), security(("operator_token" = [])))]
#[post("/grants/{id}/revoke")]
pub async fn revoke(
    auth: OperatorAuth,
    idempotency: Idempotency,
    state: web::Data<AppState>,
    id: web::Path<GrantId>,
    body: web::Json<RevokeRequest>,
) -> Result<HttpResponse, ApiError> {
    let (op, key) = (&auth.0, idempotency.key());
    let request = (*id, body.into_inner());
    let answer = once(&state, op, key, "grants.revoke", request, |(id, req)| {
        service::revoke(&state, op, id, req)
    });
    Ok(ok(answer.await?))
}

/// Renew a live grant: its expiry becomes `ttl_days` (default 30) from now.
#[utoipa::path(tag = "grants", params(("id" = Uuid, Path)), request_body(content = RenewRequest, description = "optional"), responses((status = 200, body = GrantView), (status = 404), (status = 409)), security(("operator_token" = [])))]
#[post("/grants/{id}/renew")]
pub async fn renew(
    auth: OperatorAuth,
    idempotency: Idempotency,
    state: web::Data<AppState>,
    id: web::Path<GrantId>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let req: RenewRequest = optional_json(&body)?;
    let (op, key) = (&auth.0, idempotency.key());
    let answer = once(&state, op, key, "grants.renew", (*id, req), |(id, req)| {
        service::renew(&state, op, id, req)
    });
    Ok(ok(answer.await?))
}

/// Every check of the grant against a calling context, with ok/failed and why (the
/// runbook's `applies_to?`), evaluated exactly as the live decision.
#[utoipa::path(tag = "grants", params(("id" = Uuid, Path)), request_body = ExplainRequest, responses((status = 200, body = Explanation), (status = 404), (status = 422)), security(("operator_token" = [])))]
#[post("/grants/{id}/explain")]
pub async fn explain(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    id: web::Path<GrantId>,
    body: web::Json<ExplainRequest>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(service::explain(
        &state,
        &auth.0,
        *id,
        body.into_inner(),
    )
    .await?))
}

/// Read a shared resource (operator).
#[utoipa::path(tag = "resources", params(("kind" = String, Path), ("id" = String, Path)), responses((status = 200), (status = 404), (status = 422)), security(("operator_token" = [])))]
#[get("/resources/{kind}/{id}")]
pub async fn get_resource(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (kind, id) = path.into_inner();
    Ok(ok(service::get_resource(&state, &auth.0, kind, id).await?))
}

/// Publish (create or replace) a shared resource (JSON ≤ 64 KiB).
#[utoipa::path(tag = "resources", params(("kind" = String, Path), ("id" = String, Path)), request_body = Object, responses((status = 200), (status = 422)), security(("operator_token" = [])))]
#[put("/resources/{kind}/{id}")]
pub async fn put_resource(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (kind, id) = path.into_inner();
    Ok(ok(service::put_resource(
        &state,
        &auth.0,
        kind,
        id,
        body.into_inner(),
    )
    .await?))
}

/// Delete a shared resource.
#[utoipa::path(tag = "resources", params(("kind" = String, Path), ("id" = String, Path)), responses((status = 200), (status = 404)), security(("operator_token" = [])))]
#[delete("/resources/{kind}/{id}")]
pub async fn delete_resource(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (kind, id) = path.into_inner();
    Ok(ok(
        service::delete_resource(&state, &auth.0, kind, id).await?
    ))
}
