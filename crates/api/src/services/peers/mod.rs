//! Peers as operators drive them (SPEC §2, §3): propose, list, show, regenerate the token,
//! suspend, resume, revoke, delete, and B's accept. Each function checks the operator's
//! permission, passes the gated actions through the approval gate, and returns the views every
//! surface shows. The executors the gate runs now or later live in [`lifecycle`].

pub mod lifecycle;

use powernode_domain::approval::{
    FEDERATION_PEER_ACCEPT, FEDERATION_PEER_PROPOSE, FEDERATION_PEER_REVOKE,
};
use powernode_domain::{PeerEvent, PeerStatus, Permission};
use powernode_store::operators::Operator;
use powernode_store::peers::Peer;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use self::lifecycle::{ProposeCommand, ProposeRequest, RevokeCommand};
use crate::db;
use crate::error::{ApiError, internal};
use crate::services::approvals::{GateCall, Gated, gate};
use crate::services::{Ctx, require};

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
            (Some(from), Some(to)) => {
                powernode_domain::certificate::due_for_rotation(from, to, now)
            }
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
        let derived = powernode_domain::liveness::derive(
            powernode_domain::liveness::PeerFacts {
                status: peer.status,
                last_heartbeat_at: peer.last_heartbeat_at,
                token_held: peer.acceptance_token_digest.is_some(),
                token_expires_at: peer.acceptance_token_expires_at,
            },
            now,
            stale_after_secs,
        );
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

async fn view(ctx: &Ctx, peer: Peer) -> Result<PeerView, ApiError> {
    let now = lifecycle::database_now(ctx).await?;
    Ok(PeerView::new(peer, now, ctx.settings.stale_after_secs))
}

fn with_token(view: PeerView, token: Option<SecretString>) -> PeerWithToken {
    PeerWithToken {
        acceptance_token_expires_at: view.acceptance_token_expires_at,
        acceptance_token: token.map(|t| t.expose_secret().to_owned()),
        peer: view,
    }
}

/// Proposes a peer (gated): mints its acceptance token, shown once in the answer.
pub async fn propose(
    ctx: &Ctx,
    operator: &Operator,
    req: ProposeRequest,
) -> Result<Gated<PeerWithToken>, ApiError> {
    require(operator, Permission::FederationManage)?;
    let command = ProposeCommand::validate(req, &ctx.settings)?;
    let actor = operator.id;
    let params = serde_json::to_value(&command).map_err(|e| internal("propose params", e))?;
    let call = GateCall {
        action: FEDERATION_PEER_PROPOSE,
        params,
        secret: None,
        actor,
    };
    if let Some(request) = gate(ctx, call).await? {
        return Ok(Gated::queued(request));
    }
    let proposed = lifecycle::propose(ctx, command, actor).await?;
    let view = view(ctx, proposed.peer).await?;
    Ok(Gated::Done(with_token(view, proposed.token)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only peers in this status.
    #[param(value_type = Option<String>)]
    pub status: Option<PeerStatus>,
}

/// Peers, oldest first, optionally by status.
pub async fn list(
    ctx: &Ctx,
    operator: &Operator,
    query: ListQuery,
) -> Result<Vec<PeerView>, ApiError> {
    require(operator, Permission::FederationRead)?;
    let peers = lifecycle::list(ctx, query.status).await?;
    let now = lifecycle::database_now(ctx).await?;
    let stale = ctx.settings.stale_after_secs;
    Ok(peers
        .into_iter()
        .map(|p| PeerView::new(p, now, stale))
        .collect())
}

/// One peer with its current certificates.
pub async fn show(ctx: &Ctx, operator: &Operator, id: Uuid) -> Result<PeerView, ApiError> {
    require(operator, Permission::FederationRead)?;
    let peer = lifecycle::find(ctx, id).await?;
    let mut shown = view(ctx, peer).await?;
    let (inbound, outbound, now) = db::run(&ctx.pool, move |conn| {
        use powernode_store::certificates::{INBOUND, OUTBOUND, for_peer};
        Ok((
            for_peer(conn, id, INBOUND)?,
            for_peer(conn, id, OUTBOUND)?,
            powernode_store::database_now(conn)?,
        ))
    })
    .await
    .map_err(|e| internal("certificate lookup failed", e))?;
    shown.certificates = Some(CertificatesView {
        inbound: inbound.first().map(|c| CertificateFacts::new(c, now)),
        outbound: outbound.first().map(|c| CertificateFacts::new(c, now)),
    });
    Ok(shown)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegenerateRequest {
    pub ttl_seconds: Option<u32>,
}

/// Replaces a proposed peer's acceptance token (the old one stops working at once).
pub async fn regenerate_token(
    ctx: &Ctx,
    operator: &Operator,
    id: Uuid,
    req: RegenerateRequest,
) -> Result<PeerWithToken, ApiError> {
    require(operator, Permission::FederationManage)?;
    let regenerated = lifecycle::regenerate_token(ctx, id, req.ttl_seconds, operator.id).await?;
    let view = view(ctx, regenerated.peer).await?;
    Ok(with_token(view, regenerated.token))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    pub reason: String,
}

/// Suspends a peer, with a reason.
pub async fn suspend(
    ctx: &Ctx,
    operator: &Operator,
    id: Uuid,
    req: ReasonRequest,
) -> Result<PeerView, ApiError> {
    require(operator, Permission::FederationManage)?;
    let reason = lifecycle::reason(&req.reason)?;
    let peer =
        lifecycle::transition(ctx, id, PeerEvent::Suspend, Some(reason), operator.id).await?;
    view(ctx, peer).await
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// Optional note recorded in the event.
    pub reason: Option<String>,
}

/// Resumes a suspended peer (→ accepted; it then re-handshakes).
pub async fn resume(
    ctx: &Ctx,
    operator: &Operator,
    id: Uuid,
    req: ResumeRequest,
) -> Result<PeerView, ApiError> {
    require(operator, Permission::FederationManage)?;
    let reason = req.reason.as_deref().map(lifecycle::reason).transpose()?;
    let peer = lifecycle::transition(ctx, id, PeerEvent::Resume, reason, operator.id).await?;
    view(ctx, peer).await
}

/// Revokes a peer (gated). An unknown or already revoked peer is refused before queuing.
pub async fn revoke(
    ctx: &Ctx,
    operator: &Operator,
    id: Uuid,
    req: ReasonRequest,
) -> Result<Gated<PeerView>, ApiError> {
    require(operator, Permission::FederationManage)?;
    let command = RevokeCommand {
        peer_id: id,
        reason: lifecycle::reason(&req.reason)?,
    };
    let actor = operator.id;
    let peer = lifecycle::find(ctx, command.peer_id).await?;
    powernode_domain::peer::apply(peer.status, PeerEvent::Revoke)?;
    let call = GateCall {
        action: FEDERATION_PEER_REVOKE,
        params: json!({"peer_id": command.peer_id, "reason": command.reason}),
        secret: None,
        actor,
    };
    if let Some(request) = gate(ctx, call).await? {
        return Ok(Gated::queued(request));
    }
    let peer = lifecycle::revoke(ctx, command, actor).await?;
    Ok(Gated::Done(view(ctx, peer).await?))
}

/// Deletes a proposed or revoked peer.
pub async fn delete(ctx: &Ctx, operator: &Operator, id: Uuid) -> Result<PeerView, ApiError> {
    require(operator, Permission::FederationManage)?;
    let peer = lifecycle::delete(ctx, id, operator.id).await?;
    view(ctx, peer).await
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

/// B's operator accept (gated): the token is parsed now (a malformed one is refused at once),
/// carried sealed until execution, and never shown back.
pub async fn accept(
    ctx: &Ctx,
    operator: &Operator,
    req: AcceptRequest,
) -> Result<Gated<PeerView>, ApiError> {
    require(operator, Permission::FederationManage)?;
    let token = SecretString::from(req.acceptance_token);
    let actor = operator.id;
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
    if let Some(request) = gate(ctx, call).await? {
        return Ok(Gated::queued(request));
    }
    let peer = crate::services::federation::accept_remote(ctx, token, actor).await?;
    Ok(Gated::Done(view(ctx, peer).await?))
}
