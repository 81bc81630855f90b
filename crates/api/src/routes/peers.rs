//! `/api/v1/system/federation/peers` — the operator's view of peers. Each handler calls one
//! service function; gated actions answer 202 with the queued request.

use actix_web::{HttpResponse, delete, get, post, web};
use powernode_domain::PeerId;
use serde::Serialize;

use crate::auth::{Idempotency, OperatorAuth};
use crate::error::ApiError;
use crate::render::{approval_required, created, ok, optional_json};
use crate::services::approvals::Gated;
use crate::services::idempotency::once;
use crate::services::peers as service;
use crate::startup::AppState;
use powernode_client::peers::{
    AcceptRequest, ListQuery, PeerView, PeerWithToken, ProposeRequest, ReasonRequest,
    RegenerateRequest, ResumeRequest,
};

/// Done → `render` (200 or 201); queued → 202 `Approval required: <action>`.
fn gated<T: Serialize>(
    outcome: Gated<T>,
    render: fn(T) -> HttpResponse,
) -> Result<HttpResponse, ApiError> {
    Ok(match outcome {
        Gated::Done(value) => render(value),
        Gated::Queued(request) => approval_required(*request),
    })
}

/// Propose a peer; mints its acceptance token and shows it once.
#[utoipa::path(
    tag = "peers",
    request_body = ProposeRequest,
    responses(
        (status = 201, description = "Proposed; the token is in data.acceptance_token", body = PeerWithToken),
        (status = 202, description = "`Approval required: system.federation_peer_propose` with data.approval_request; once executed, the token is handed out by `claim_result`"),
        (status = 422, description = "Validation failed (`<field> <message>`)"),
        (status = 401), (status = 403)
    ),
    security(("operator_token" = []))
)]
#[post("/peers")]
pub async fn propose(
    auth: OperatorAuth,
    idempotency: Idempotency,
    state: web::Data<AppState>,
    body: web::Json<ProposeRequest>,
) -> Result<HttpResponse, ApiError> {
    let (op, key) = (&auth.0, idempotency.key());
    let answer = once(&state, op, key, "peers.propose", body.into_inner(), |req| {
        service::propose(&state, op, req)
    });
    gated(answer.await?, created)
}

/// List peers, oldest first, optionally by status, a page at a time (`limit`, default 100;
/// `X-Next-Cursor` carries the next page's `cursor` when there is one).
#[utoipa::path(
    tag = "peers",
    params(ListQuery),
    responses(
        (status = 200, body = Vec<PeerView>, headers(("X-Next-Cursor" = String, description = "cursor of the next page, absent on the last"))),
        (status = 422, description = "`limit must be 1-500` · `cursor is not a cursor this API issued`"),
        (status = 401), (status = 403)
    ),
    security(("operator_token" = []))
)]
#[get("/peers")]
pub async fn list(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = service::list(&state, &auth.0, query.into_inner()).await?;
    let mut response = ok(page.peers);
    if let Some(next) = page.next_cursor
        && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&next)
    {
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("x-next-cursor"),
            value,
        );
    }
    Ok(response)
}

/// Show one peer with `allowed_transitions`, `heartbeat_stale`, `degraded_reason`,
/// `acceptance_pending` (never the token digest).
#[utoipa::path(
    tag = "peers",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PeerView), (status = 404), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[get("/peers/{id}")]
pub async fn show(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    id: web::Path<PeerId>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(service::show(&state, &auth.0, *id).await?))
}

/// Regenerate the acceptance token of a proposed peer (the old one stops working).
#[utoipa::path(
    tag = "peers",
    params(("id" = Uuid, Path)),
    request_body(content = RegenerateRequest, description = "optional"),
    responses((status = 200, body = PeerWithToken), (status = 409, description = "Not proposed"),
              (status = 404), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[post("/peers/{id}/acceptance_token")]
pub async fn regenerate_token(
    auth: OperatorAuth,
    idempotency: Idempotency,
    state: web::Data<AppState>,
    id: web::Path<PeerId>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let req: RegenerateRequest = optional_json(&body)?;
    let (op, key) = (&auth.0, idempotency.key());
    let answer = once(
        &state,
        op,
        key,
        "peers.regenerate_token",
        (*id, req),
        |(id, req)| service::regenerate_token(&state, op, id, req),
    );
    Ok(ok(answer.await?))
}

/// Suspend (accepted/enrolled/active/degraded → suspended), with a reason.
#[utoipa::path(
    tag = "peers",
    params(("id" = Uuid, Path)),
    request_body = ReasonRequest,
    responses((status = 200, body = PeerView), (status = 409, description = "ILLEGAL_TRANSITION"),
              (status = 422), (status = 404), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[post("/peers/{id}/suspend")]
pub async fn suspend(
    auth: OperatorAuth,
    idempotency: Idempotency,
    state: web::Data<AppState>,
    id: web::Path<PeerId>,
    body: web::Json<ReasonRequest>,
) -> Result<HttpResponse, ApiError> {
    let (op, key) = (&auth.0, idempotency.key());
    let request = (*id, body.into_inner());
    let answer = once(&state, op, key, "peers.suspend", request, |(id, req)| {
        service::suspend(&state, op, id, req)
    });
    Ok(ok(answer.await?))
}

/// Resume (suspended → accepted); the peer then re-handshakes.
#[utoipa::path(
    tag = "peers",
    params(("id" = Uuid, Path)),
    request_body(content = ResumeRequest, description = "optional"),
    responses((status = 200, body = PeerView), (status = 409, description = "ILLEGAL_TRANSITION"),
              (status = 404), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[post("/peers/{id}/resume")]
pub async fn resume(
    auth: OperatorAuth,
    idempotency: Idempotency,
    state: web::Data<AppState>,
    id: web::Path<PeerId>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let req: ResumeRequest = optional_json(&body)?;
    let (op, key) = (&auth.0, idempotency.key());
    let answer = once(&state, op, key, "peers.resume", (*id, req), |(id, req)| {
        service::resume(&state, op, id, req)
    });
    Ok(ok(answer.await?))
}

/// Revoke (any non-revoked status → revoked, terminal), with a reason.
#[utoipa::path(
    tag = "peers",
    params(("id" = Uuid, Path)),
    request_body = ReasonRequest,
    responses((status = 200, body = PeerView),
              (status = 202, description = "`Approval required: system.federation_peer_revoke` with data.approval_request"),
              (status = 409, description = "ILLEGAL_TRANSITION"),
              (status = 422, description = "`reason …`, or `Action blocked by policy`"), (status = 404), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[post("/peers/{id}/revoke")]
pub async fn revoke(
    auth: OperatorAuth,
    idempotency: Idempotency,
    state: web::Data<AppState>,
    id: web::Path<PeerId>,
    body: web::Json<ReasonRequest>,
) -> Result<HttpResponse, ApiError> {
    let (op, key) = (&auth.0, idempotency.key());
    let request = (*id, body.into_inner());
    let answer = once(&state, op, key, "peers.revoke", request, |(id, req)| {
        service::revoke(&state, op, id, req)
    });
    gated(answer.await?, ok)
}

/// Delete a proposed or revoked peer.
#[utoipa::path(
    tag = "peers",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PeerView), (status = 409, description = "Not proposed or revoked"),
              (status = 404), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[delete("/peers/{id}")]
pub async fn remove(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    id: web::Path<PeerId>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(service::delete(&state, &auth.0, *id).await?))
}

/// Accept another instance's acceptance token (B's side): pins its CA by the token's
/// fingerprint, exchanges certificates, records the peer as `accepted`.
#[utoipa::path(
    tag = "peers",
    request_body = AcceptRequest,
    responses((status = 201, body = PeerView),
              (status = 202, description = "`Approval required: system.federation_peer_accept` with data.approval_request (the token is held sealed until execution)"),
              (status = 422, description = "`acceptance_token malformed`, `CA fingerprint mismatch: …`, or the peer's own 4xx passed through"),
              (status = 502, description = "PEER_UNREACHABLE"), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[post("/peers/accept")]
pub async fn accept(
    auth: OperatorAuth,
    idempotency: Idempotency,
    state: web::Data<AppState>,
    body: web::Json<AcceptRequest>,
) -> Result<HttpResponse, ApiError> {
    let (op, key) = (&auth.0, idempotency.key());
    let answer = once(&state, op, key, "peers.accept", body.into_inner(), |req| {
        service::accept(&state, op, req)
    });
    gated(answer.await?, created)
}
