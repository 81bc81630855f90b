//! Peer lifecycle on this instance (SPEC §2, §3 A's side).
//!
//! Commands that an approval gate will sit in front of (propose, revoke, accept) are validated
//! into serialisable `*Command` values when the request is made and executed separately, so the
//! gate can store a command and run it later without these functions changing.

use powernode_client::peers::ProposeRequest;
use powernode_domain::token::{self, MintedToken};
use powernode_domain::{
    InstanceUrl, PeerEvent, PeerKind, PeerStatus, SpawnMode, SpawnRole, UlaPrefix,
};
use powernode_store::peers::{self, NewPeer, Peer};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ca;
use crate::crypto::random_bytes;
use crate::db::{self, Context as _};
use crate::error::{ApiError, internal};
use crate::observability;
use crate::services::Ctx;
use crate::settings::Settings;

const MAX_LIST_ITEMS: usize = 64;
const MAX_ITEM_LEN: usize = 200;
pub const MAX_REASON_LEN: usize = 500;

/// A validated proposal, ready to execute now or after approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProposeCommand {
    pub remote_instance_url: InstanceUrl,
    pub peer_kind: PeerKind,
    pub spawn_role: Option<SpawnRole>,
    pub spawn_mode: Option<SpawnMode>,
    pub remote_prefix_advertisement: Option<String>,
    pub endpoints: Vec<String>,
    pub extension_slugs: Vec<String>,
    pub capabilities: Vec<String>,
    pub ttl_seconds: u32,
    pub drill: bool,
    /// The id the peer will have, fixed when the proposal is validated: an approved proposal
    /// whose execution was interrupted and is re-run (SPEC §7) cannot create a second peer.
    /// Absent in requests queued before it existed (a fresh id then).
    #[serde(default)]
    pub peer_id: Option<Uuid>,
}

fn parse_field<T>(
    field: &str,
    value: Option<&str>,
    parse: impl Fn(&str) -> Result<T, powernode_domain::InvalidValue>,
) -> Result<Option<T>, ApiError> {
    value
        .map(|v| parse(v).map_err(|e| ApiError::validation(field, e.to_string())))
        .transpose()
}

fn string_list(field: &str, value: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    let list = value.unwrap_or_default();
    if list.len() > MAX_LIST_ITEMS {
        return Err(ApiError::validation(
            field,
            format!("has too many items (maximum {MAX_LIST_ITEMS})"),
        ));
    }
    if list
        .iter()
        .any(|v| v.trim().is_empty() || v.len() > MAX_ITEM_LEN)
    {
        return Err(ApiError::validation(
            field,
            format!("items must be non-empty and at most {MAX_ITEM_LEN} characters"),
        ));
    }
    Ok(list)
}

/// Validates a token TTL against the configured bounds.
pub fn token_ttl(settings: &Settings, requested: Option<u32>) -> Result<u32, ApiError> {
    let bounds = settings.acceptance_token_ttl;
    let ttl = requested.unwrap_or(bounds.default_secs);
    if !(bounds.min_secs..=bounds.max_secs).contains(&ttl) {
        return Err(ApiError::validation(
            "ttl_seconds",
            format!(
                "must be between {} and {}",
                bounds.min_secs, bounds.max_secs
            ),
        ));
    }
    Ok(ttl)
}

impl ProposeCommand {
    /// SPEC §2 validation; every refusal is a 422 naming its field. Nothing is written.
    pub fn validate(req: ProposeRequest, settings: &Settings) -> Result<Self, ApiError> {
        let remote_instance_url = InstanceUrl::parse(&req.remote_instance_url)
            .map_err(|e| ApiError::validation("remote_instance_url", e.to_string()))?;
        let peer_kind = parse_field("peer_kind", req.peer_kind.as_deref(), PeerKind::parse)?
            .unwrap_or(PeerKind::Platform);
        let spawn_role = parse_field("spawn_role", req.spawn_role.as_deref(), SpawnRole::parse)?;
        if peer_kind == PeerKind::Platform && spawn_role.is_none() {
            return Err(ApiError::validation(
                "spawn_role",
                "is required for platform peers",
            ));
        }
        let spawn_mode = parse_field("spawn_mode", req.spawn_mode.as_deref(), SpawnMode::parse)?;
        let prefix = parse_field(
            "remote_prefix_advertisement",
            req.remote_prefix_advertisement.as_deref(),
            UlaPrefix::parse,
        )?;
        let drill = req.drill.unwrap_or(false);
        if drill && !settings.drill_allowed() {
            return Err(ApiError::validation("drill", "mode is disabled"));
        }
        Ok(ProposeCommand {
            remote_instance_url,
            peer_kind,
            spawn_role,
            spawn_mode,
            remote_prefix_advertisement: prefix.map(|p| p.to_string()),
            endpoints: string_list("endpoints", req.endpoints)?,
            extension_slugs: string_list("extension_slugs", req.extension_slugs)?,
            capabilities: string_list("capabilities", req.capabilities)?,
            ttl_seconds: token_ttl(settings, req.ttl_seconds)?,
            drill,
            peer_id: Some(Uuid::new_v4()),
        })
    }
}

/// A proposed peer with its acceptance token, shown exactly once.
pub struct Proposed {
    pub peer: Peer,
    pub token: Option<SecretString>,
}

fn mint_for(ctx: &Ctx, peer_id: Uuid, ca_sha256: &str) -> Result<MintedToken, ApiError> {
    let secret = random_bytes::<32>().map_err(|e| internal("acceptance token", e))?;
    Ok(token::mint(
        peer_id,
        ctx.settings.federation_public_url.as_str(),
        ca_sha256,
        &secret,
    ))
}

pub async fn propose(
    ctx: &Ctx,
    command: ProposeCommand,
    actor: Uuid,
) -> Result<Proposed, ApiError> {
    let identity = ca::ensure_identity(&ctx.db, &ctx.settings.master_key)
        .await
        .map_err(|e| e.into_api("instance identity unavailable"))?;
    let id = command.peer_id.unwrap_or_else(Uuid::new_v4);
    let minted = if command.drill {
        None
    } else {
        Some(mint_for(ctx, id, &identity.ca_sha256)?)
    };
    let digest = minted.as_ref().map(|m| m.digest.clone());
    // Token minted, nothing stored (the chaos harness kills an approved proposal here).
    crate::failpoint::point("propose-before-insert");
    let peer = db::run(&ctx.db, move |conn| {
        let to_json = |v: &Vec<String>| Value::from(v.clone());
        peers::propose(
            conn,
            &NewPeer {
                id,
                origin: powernode_domain::PeerOrigin::ProposedHere.as_str(),
                remote_instance_url: command.remote_instance_url.as_str(),
                peer_kind: command.peer_kind.as_str(),
                spawn_role: command.spawn_role.map(SpawnRole::as_str),
                spawn_mode: command.spawn_mode.map(SpawnMode::as_str),
                remote_prefix_advertisement: command.remote_prefix_advertisement.as_deref(),
                status: PeerStatus::Proposed.as_str(),
                metadata: Value::Object(serde_json::Map::new()),
                endpoints: to_json(&command.endpoints),
                extension_slugs: to_json(&command.extension_slugs),
                capabilities: to_json(&command.capabilities),
                last_heartbeat_at: None,
                acceptance_token_digest: digest.as_deref(),
                acceptance_token_expires_at: None,
            },
            digest.as_ref().map(|_| command.ttl_seconds),
            Some(actor),
        )
        .map_err(|e| {
            // Only a re-run of this very proposal can collide with its own id.
            if powernode_store::is_unique_violation(&e) {
                ApiError::Conflict(format!(
                    "peer {id} already exists: this proposal already ran before its execution was interrupted; its token was not recorded, mint a new one with `powernodectl peer token regenerate {id}`"
                ))
            } else {
                ApiError::from(e)
            }
        })
    })
    .await
    .context("propose failed")?;
    tracing::info!(peer_id = %peer.id, url = %peer.remote_instance_url, operator_id = %actor, "peer proposed");
    Ok(Proposed {
        peer,
        token: minted.map(|m| m.token.into()),
    })
}

pub async fn find(ctx: &Ctx, id: Uuid) -> Result<Peer, ApiError> {
    db::run(&ctx.db, move |conn| peers::find(conn, id))
        .await
        .context("peer lookup failed")?
        .ok_or_else(|| ApiError::NotFound(format!("peer {id} not found")))
}

pub async fn list(ctx: &Ctx, status: Option<PeerStatus>) -> Result<Vec<Peer>, ApiError> {
    db::run(&ctx.db, move |conn| peers::list(conn, status))
        .await
        .context("peer list failed")
}

/// Validates an operator's reason (suspend, revoke).
pub fn reason(raw: &str) -> Result<String, ApiError> {
    let reason = raw.trim();
    if reason.is_empty() {
        return Err(ApiError::validation("reason", "can't be blank"));
    }
    if reason.chars().count() > MAX_REASON_LEN {
        return Err(ApiError::validation(
            "reason",
            format!("is too long (maximum {MAX_REASON_LEN} characters)"),
        ));
    }
    Ok(reason.to_owned())
}

/// Suspend, resume or revoke (operator transitions of SPEC §2).
pub async fn transition(
    ctx: &Ctx,
    id: Uuid,
    event: PeerEvent,
    reason: Option<String>,
    actor: Uuid,
) -> Result<Peer, ApiError> {
    let peer = db::run(&ctx.db, move |conn| {
        peers::transition(conn, id, event, reason.as_deref(), Some(actor))
    })
    .await
    .context("peer transition failed")?;
    observability::transition(peer.from, peer.status, 1);
    tracing::info!(peer_id = %id, from = %peer.from, status = %peer.status, operator_id = %actor, "peer {event}");
    Ok(peer.peer)
}

/// A validated revocation, ready to execute now or after approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokeCommand {
    pub peer_id: Uuid,
    pub reason: String,
}

pub async fn revoke(ctx: &Ctx, command: RevokeCommand, actor: Uuid) -> Result<Peer, ApiError> {
    transition(
        ctx,
        command.peer_id,
        PeerEvent::Revoke,
        Some(command.reason),
        actor,
    )
    .await
}

/// Replaces the token of a proposed peer; the old one stops working at once.
pub async fn regenerate_token(
    ctx: &Ctx,
    id: Uuid,
    ttl_seconds: Option<u32>,
    actor: Uuid,
) -> Result<Proposed, ApiError> {
    let ttl = token_ttl(&ctx.settings, ttl_seconds)?;
    let identity = ca::ensure_identity(&ctx.db, &ctx.settings.master_key)
        .await
        .map_err(|e| e.into_api("instance identity unavailable"))?;
    let minted = mint_for(ctx, id, &identity.ca_sha256)?;
    let digest = minted.digest.clone();
    let peer = db::run(&ctx.db, move |conn| {
        peers::regenerate_token(conn, id, &digest, ttl, Some(actor))
    })
    .await
    .context("token regeneration failed")?;
    tracing::info!(peer_id = %id, operator_id = %actor, "acceptance token regenerated");
    Ok(Proposed {
        peer,
        token: Some(minted.token.into()),
    })
}

pub async fn delete(ctx: &Ctx, id: Uuid, actor: Uuid) -> Result<Peer, ApiError> {
    let peer = db::run(&ctx.db, move |conn| peers::delete(conn, id, Some(actor)))
        .await
        .context("peer delete failed")?;
    tracing::info!(peer_id = %id, operator_id = %actor, "peer deleted");
    Ok(peer)
}

pub async fn database_now(ctx: &Ctx) -> Result<OffsetDateTime, ApiError> {
    db::run(&ctx.db, powernode_store::database_now)
        .await
        .context("database clock unavailable")
}
