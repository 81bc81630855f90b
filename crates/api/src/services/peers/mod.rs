//! Peers as operators drive them (SPEC §2, §3): propose, list, show, regenerate the token,
//! suspend, resume, revoke, delete, and B's accept. Each function checks the operator's
//! permission, passes the gated actions through the approval gate, and returns the views every
//! surface shows. The executors the gate runs now or later live in [`lifecycle`].

pub mod lifecycle;

use powernode_client::peers::{
    AcceptRequest, CertificateFacts, CertificatesView, ListQuery, PeerView, PeerWithToken,
    ProposeRequest, ReasonRequest, RegenerateRequest, ResumeRequest,
};
use powernode_domain::approval::GatedAction;
use powernode_domain::{PeerEvent, Permission};
use powernode_store::operators::Operator;
use powernode_store::peers::Peer;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use time::OffsetDateTime;

use powernode_domain::PeerId;

use self::lifecycle::{ProposeCommand, RevokeCommand};
use crate::db::{self, Context as _};
use crate::error::{ApiError, internal};
use crate::services::approvals::{GateCall, Gated, gate};
use crate::services::{Ctx, require};

fn certificate_facts(
    c: &powernode_store::certificates::PeerCertificate,
    now: OffsetDateTime,
    rotation_percent: u8,
) -> CertificateFacts {
    {
        let due = match (c.not_before, c.not_after) {
            (Some(from), Some(to)) => {
                powernode_domain::certificate::due_for_rotation(from, to, now, rotation_percent)
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

pub fn peer_view(peer: Peer, now: OffsetDateTime, stale_after_secs: u32) -> PeerView {
    {
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
            outbound_failing_since: peer.outbound_failing_since,
            status_changed_at: peer.status_changed_at,
            created_at: peer.created_at,
            updated_at: peer.updated_at,
            certificates: None,
        }
    }
}

async fn view(ctx: &Ctx, peer: Peer) -> Result<PeerView, ApiError> {
    let now = lifecycle::database_now(ctx).await?;
    Ok(peer_view(peer, now, ctx.settings.stale_after_secs))
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
        action: GatedAction::FederationPeerPropose,
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

/// Peers, oldest first, optionally by status.
pub async fn list(
    ctx: &Ctx,
    operator: &Operator,
    query: ListQuery,
) -> Result<powernode_client::mcp::PeerPage, ApiError> {
    require(operator, Permission::FederationRead)?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::validation("limit", "must be 1-500"));
    }
    let after = query.cursor.as_deref().map(cursor::decode).transpose()?;
    let status = query.status;
    // One row beyond the page says whether another page follows.
    let (mut peers, now) = db::run(
        &ctx.db,
        move |conn| -> Result<_, powernode_store::StoreError> {
            Ok((
                powernode_store::peers::page(conn, status, after, limit + 1)?,
                powernode_store::database_now(conn)?,
            ))
        },
    )
    .await
    .context("peer list failed")?;
    let more = peers.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    peers.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = more
        .then(|| peers.last().map(|p| cursor::encode(p.created_at, p.id)))
        .flatten();
    let stale = ctx.settings.stale_after_secs;
    Ok(powernode_client::mcp::PeerPage {
        peers: peers
            .into_iter()
            .map(|p| peer_view(p, now, stale))
            .collect(),
        next_cursor,
    })
}

const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 500;

/// Page cursors: the last peer's `(created_at, id)`, opaque to callers.
mod cursor {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use time::OffsetDateTime;
    use uuid::Uuid;

    use crate::error::ApiError;

    pub fn encode(at: OffsetDateTime, id: Uuid) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{id}", at.unix_timestamp_nanos()))
    }

    pub fn decode(raw: &str) -> Result<(OffsetDateTime, Uuid), ApiError> {
        let invalid = || ApiError::validation("cursor", "is not a cursor this API issued");
        let text = URL_SAFE_NO_PAD
            .decode(raw.as_bytes())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(invalid)?;
        let (nanos, id) = text.split_once(':').ok_or_else(invalid)?;
        let at = nanos
            .parse::<i128>()
            .ok()
            .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(n).ok())
            .ok_or_else(invalid)?;
        Ok((at, Uuid::parse_str(id).map_err(|_| invalid())?))
    }
}

/// One peer with its current certificates.
pub async fn show(ctx: &Ctx, operator: &Operator, id: PeerId) -> Result<PeerView, ApiError> {
    let id = id.uuid();
    require(operator, Permission::FederationRead)?;
    let peer = lifecycle::find(ctx, id).await?;
    let mut shown = view(ctx, peer).await?;
    let (inbound, outbound, now) = db::run(
        &ctx.db,
        move |conn| -> Result<_, powernode_store::StoreError> {
            use powernode_store::certificates::{INBOUND, OUTBOUND, for_peer};
            Ok((
                for_peer(conn, id, INBOUND)?,
                for_peer(conn, id, OUTBOUND)?,
                powernode_store::database_now(conn)?,
            ))
        },
    )
    .await
    .context("certificate lookup failed")?;
    shown.certificates = Some(CertificatesView {
        inbound: inbound
            .first()
            .map(|c| certificate_facts(c, now, ctx.settings.cert_rotation_percent)),
        outbound: outbound
            .first()
            .map(|c| certificate_facts(c, now, ctx.settings.cert_rotation_percent)),
    });
    Ok(shown)
}

/// Replaces a proposed peer's acceptance token (the old one stops working at once).
pub async fn regenerate_token(
    ctx: &Ctx,
    operator: &Operator,
    id: PeerId,
    req: RegenerateRequest,
) -> Result<PeerWithToken, ApiError> {
    let id = id.uuid();
    require(operator, Permission::FederationManage)?;
    let regenerated = lifecycle::regenerate_token(ctx, id, req.ttl_seconds, operator.id).await?;
    let view = view(ctx, regenerated.peer).await?;
    Ok(with_token(view, regenerated.token))
}

/// Suspends a peer, with a reason.
pub async fn suspend(
    ctx: &Ctx,
    operator: &Operator,
    id: PeerId,
    req: ReasonRequest,
) -> Result<PeerView, ApiError> {
    let id = id.uuid();
    require(operator, Permission::FederationManage)?;
    let reason = lifecycle::reason(&req.reason)?;
    let peer =
        lifecycle::transition(ctx, id, PeerEvent::Suspend, Some(reason), operator.id).await?;
    view(ctx, peer).await
}

/// Resumes a suspended peer (→ accepted; it then re-handshakes).
pub async fn resume(
    ctx: &Ctx,
    operator: &Operator,
    id: PeerId,
    req: ResumeRequest,
) -> Result<PeerView, ApiError> {
    let id = id.uuid();
    require(operator, Permission::FederationManage)?;
    let reason = req.reason.as_deref().map(lifecycle::reason).transpose()?;
    let peer = lifecycle::transition(ctx, id, PeerEvent::Resume, reason, operator.id).await?;
    view(ctx, peer).await
}

/// Revokes a peer (gated). An unknown or already revoked peer is refused before queuing.
pub async fn revoke(
    ctx: &Ctx,
    operator: &Operator,
    id: PeerId,
    req: ReasonRequest,
) -> Result<Gated<PeerView>, ApiError> {
    let id = id.uuid();
    require(operator, Permission::FederationManage)?;
    let command = RevokeCommand {
        peer_id: id,
        reason: lifecycle::reason(&req.reason)?,
    };
    let actor = operator.id;
    let peer = lifecycle::find(ctx, command.peer_id).await?;
    powernode_domain::peer::apply(peer.status, PeerEvent::Revoke)?;
    let call = GateCall {
        action: GatedAction::FederationPeerRevoke,
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
pub async fn delete(ctx: &Ctx, operator: &Operator, id: PeerId) -> Result<PeerView, ApiError> {
    let id = id.uuid();
    require(operator, Permission::FederationManage)?;
    let peer = lifecycle::delete(ctx, id, operator.id).await?;
    view(ctx, peer).await
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
    // SPEC §3: A's CA is fetched and its fingerprint checked when the request is made, also
    // when it is only queued for approval (a wrong token is refused now, not after approval).
    let (claims, _, _) = crate::services::federation::pin_remote_ca(ctx, &token).await?;
    let call = GateCall {
        action: GatedAction::FederationPeerAccept,
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

/// The federation health banner of every signed-in UI page (SPEC §10): degraded peers and the
/// oldest heartbeat among them. `None` while no peer is degraded.
pub async fn health_banner(ctx: &Ctx, operator: &Operator) -> Result<Option<String>, ApiError> {
    require(operator, Permission::FederationRead)?;
    let (n, oldest) = db::run(&ctx.db, powernode_store::peers::degraded_summary)
        .await
        .context("health summary failed")?;
    Ok((n > 0).then(|| {
        let oldest = oldest
            .map(|s| powernode_domain::governance::human_duration(s as i64))
            .map_or_else(|| "never".to_owned(), |age| format!("{age} ago"));
        format!("Federation health: {n} peer(s) degraded — oldest heartbeat {oldest}")
    }))
}
