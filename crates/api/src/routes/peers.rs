//! `/api/v1/system/federation/peers` — the operator's view of peers.

use actix_web::{HttpResponse, delete, get, post, web};
use powernode_domain::{PeerEvent, PeerStatus};
use powernode_store::peers::Peer;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::OperatorAuth;
use crate::error::{ApiError, created, ok};
use crate::routes::approvals::approval_required;
use crate::routes::optional_json;
use crate::services::approvals::{self, Gated};
use crate::services::peers::{self as service, ProposeCommand, ProposeRequest, RevokeCommand};
use crate::startup::AppState;
use powernode_domain::Permission;

/// A peer as operators see it: every stored field except the token digest and sealed keys,
/// plus what the runbook asks (`heartbeat_stale`, `degraded_reason`, …).
#[derive(Serialize, utoipa::ToSchema)]
pub struct PeerView {
    pub id: Uuid,
    #[schema(value_type = String, example = "active")]
    pub status: PeerStatus,
    #[schema(value_type = Vec<String>)]
    pub allowed_transitions: Vec<PeerStatus>,
    #[schema(value_type = String, example = "proposed_here")]
    pub origin: String,
    pub remote_instance_url: String,
    pub remote_instance_id: Option<Uuid>,
    pub remote_ca_sha256: Option<String>,
    pub remote_ca_pem: Option<String>,
    pub contract_version_agreed: Option<i32>,
    pub peer_kind: String,
    pub spawn_role: Option<String>,
    pub spawn_mode: Option<String>,
    pub remote_prefix_advertisement: Option<String>,
    #[schema(value_type = Object)]
    pub endpoints: Value,
    #[schema(value_type = Object)]
    pub extension_slugs: Value,
    #[schema(value_type = Object)]
    pub capabilities: Value,
    #[schema(value_type = Option<Object>)]
    pub sync_cursor: Option<Value>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub degraded_reason: Option<String>,
    pub heartbeat_stale: bool,
    pub acceptance_pending: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub acceptance_token_expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub signed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_handshake_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_heartbeat_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_outbound_heartbeat_at: Option<OffsetDateTime>,
    pub last_outbound_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Current certificates (peer show only): `inbound` = issued by us to the peer,
    /// `outbound` = our client certificate for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificatesView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CertificatesView {
    pub inbound: Option<CertificateFacts>,
    pub outbound: Option<CertificateFacts>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CertificateFacts {
    pub serial: String,
    pub fingerprint_sha256: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    /// Past 75 % of its lifetime (by the database clock): renewal is due.
    pub due_for_rotation: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl CertificateFacts {
    fn new(c: &powernode_store::certificates::PeerCertificate, now: OffsetDateTime) -> Self {
        let due = match (c.not_before, c.not_after) {
            (Some(from), Some(to)) => now >= from + (to - from) * 0.75,
            _ => false,
        };
        CertificateFacts {
            serial: c.serial.clone(),
            fingerprint_sha256: c.fingerprint_sha256.clone(),
            not_after: c.not_after,
            due_for_rotation: due,
            revoked_at: c.revoked_at,
        }
    }
}

impl PeerView {
    pub fn new(peer: Peer, now: OffsetDateTime, stale_after_secs: u32) -> Self {
        let derived = service::derive(&peer, now, stale_after_secs);
        let degraded_reason = peer
            .metadata
            .get(powernode_domain::peer::DEGRADED_REASON)
            .and_then(Value::as_str)
            .map(str::to_owned);
        PeerView {
            id: peer.id,
            status: peer.status,
            allowed_transitions: peer.status.allowed_transitions().to_vec(),
            origin: peer.origin.as_str().to_owned(),
            remote_instance_url: peer.remote_instance_url,
            remote_instance_id: peer.remote_instance_id,
            remote_ca_sha256: peer.remote_ca_sha256,
            remote_ca_pem: peer.remote_ca_pem,
            contract_version_agreed: peer.contract_version_agreed,
            peer_kind: peer.peer_kind.as_str().to_owned(),
            spawn_role: peer.spawn_role.map(|r| r.as_str().to_owned()),
            spawn_mode: peer.spawn_mode.map(|m| m.as_str().to_owned()),
            remote_prefix_advertisement: peer.remote_prefix_advertisement,
            endpoints: peer.endpoints,
            extension_slugs: peer.extension_slugs,
            capabilities: peer.capabilities,
            sync_cursor: peer.sync_cursor,
            metadata: peer.metadata,
            degraded_reason,
            heartbeat_stale: derived.heartbeat_stale,
            acceptance_pending: derived.acceptance_pending,
            acceptance_token_expires_at: peer.acceptance_token_expires_at,
            signed_at: peer.signed_at,
            last_handshake_at: peer.last_handshake_at,
            last_heartbeat_at: peer.last_heartbeat_at,
            last_outbound_heartbeat_at: peer.last_outbound_heartbeat_at,
            last_outbound_error: peer.last_outbound_error,
            created_at: peer.created_at,
            updated_at: peer.updated_at,
            certificates: None,
        }
    }
}

/// A peer with its acceptance token: returned once, by propose and regenerate.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PeerWithToken {
    pub peer: PeerView,
    /// `pnfa1_…`; null for a drill peer. Never shown again.
    pub acceptance_token: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub acceptance_token_expires_at: Option<OffsetDateTime>,
}

async fn view(state: &AppState, peer: Peer) -> Result<PeerView, ApiError> {
    let now = service::database_now(state).await?;
    Ok(PeerView::new(peer, now, state.settings.stale_after_secs))
}

fn with_token(view: PeerView, token: Option<secrecy::SecretString>) -> PeerWithToken {
    PeerWithToken {
        acceptance_token_expires_at: view.acceptance_token_expires_at,
        acceptance_token: token.map(|t| t.expose_secret().to_owned()),
        peer: view,
    }
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
    state: web::Data<AppState>,
    body: web::Json<ProposeRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationManage)?;
    let command = ProposeCommand::validate(body.into_inner(), &state.settings)?;
    match approvals::gated_propose(&state, command, auth.id()).await? {
        Gated::Queued(request) => Ok(approval_required(*request)),
        Gated::Done(proposed) => {
            let view = view(&state, proposed.peer).await?;
            Ok(created(with_token(view, proposed.token)))
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only peers in this status.
    #[param(value_type = Option<String>)]
    pub status: Option<PeerStatus>,
}

/// List peers, oldest first, optionally by status.
#[utoipa::path(
    tag = "peers",
    params(ListQuery),
    responses((status = 200, body = Vec<PeerView>), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[get("/peers")]
pub async fn list(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationRead)?;
    let peers = service::list(&state, query.status).await?;
    let now = service::database_now(&state).await?;
    let stale = state.settings.stale_after_secs;
    let views: Vec<_> = peers
        .into_iter()
        .map(|p| PeerView::new(p, now, stale))
        .collect();
    Ok(ok(views))
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
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationRead)?;
    let peer = service::find(&state, *id).await?;
    let mut shown = view(&state, peer).await?;
    let peer_id = *id;
    let (inbound, outbound, now) = crate::db::run(&state.pool, move |conn| {
        use powernode_store::certificates::{INBOUND, OUTBOUND, for_peer};
        Ok((
            for_peer(conn, peer_id, INBOUND)?,
            for_peer(conn, peer_id, OUTBOUND)?,
            powernode_store::database_now(conn)?,
        ))
    })
    .await
    .map_err(|e| crate::error::internal("certificate lookup failed", e))?;
    shown.certificates = Some(CertificatesView {
        inbound: inbound.first().map(|c| CertificateFacts::new(c, now)),
        outbound: outbound.first().map(|c| CertificateFacts::new(c, now)),
    });
    Ok(ok(shown))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegenerateRequest {
    pub ttl_seconds: Option<u32>,
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
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationManage)?;
    let req: RegenerateRequest = optional_json(&body)?;
    let regenerated = service::regenerate_token(&state, *id, req.ttl_seconds, auth.id()).await?;
    let view = view(&state, regenerated.peer).await?;
    Ok(ok(with_token(view, regenerated.token)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    pub reason: String,
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
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<ReasonRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationManage)?;
    let reason = service::reason(&body.reason)?;
    let peer =
        service::transition(&state, *id, PeerEvent::Suspend, Some(reason), auth.id()).await?;
    Ok(ok(view(&state, peer).await?))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// Optional note recorded in the event.
    pub reason: Option<String>,
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
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationManage)?;
    let req: ResumeRequest = optional_json(&body)?;
    let reason = req.reason.as_deref().map(service::reason).transpose()?;
    let peer = service::transition(&state, *id, PeerEvent::Resume, reason, auth.id()).await?;
    Ok(ok(view(&state, peer).await?))
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
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<ReasonRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationManage)?;
    let command = RevokeCommand {
        peer_id: *id,
        reason: service::reason(&body.reason)?,
    };
    match approvals::gated_revoke(&state, command, auth.id()).await? {
        Gated::Queued(request) => Ok(approval_required(*request)),
        Gated::Done(peer) => Ok(ok(view(&state, peer).await?)),
    }
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
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationManage)?;
    let peer = service::delete(&state, *id, auth.id()).await?;
    Ok(ok(view(&state, peer).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    /// The `pnfa1_…` token the other instance's operator handed over.
    pub acceptance_token: String,
}

impl std::fmt::Debug for AcceptRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AcceptRequest { acceptance_token: [REDACTED] }")
    }
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
    state: web::Data<AppState>,
    body: web::Json<AcceptRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationManage)?;
    let token = secrecy::SecretString::from(body.into_inner().acceptance_token);
    match approvals::gated_accept(&state, token, auth.id()).await? {
        Gated::Queued(request) => Ok(approval_required(*request)),
        Gated::Done(peer) => Ok(created(view(&state, peer).await?)),
    }
}
