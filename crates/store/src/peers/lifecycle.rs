//! Peer transitions as store steps: propose, the operator moves, A's accept (token checks on
//! the locked row), B's accepted row, the handshake, token regeneration, delete. Each persists
//! through [`apply`]: the domain decides, one conditional update, one event.

use diesel::prelude::*;
use powernode_domain::events::{EventKind, EventSource, Severity};
use powernode_domain::peer::{self, PeerEvent, Transition};
use powernode_domain::token::{self, StoredToken, TokenRejection, Verified};
use powernode_domain::{PeerOrigin, PeerStatus};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;
use crate::StoreError;
use crate::events::{self as fleet, NewEvent};
use crate::schema::peers;

/// A proposed peer and the event recording it, in one transaction. The acceptance token's
/// expiry is `ttl_secs` after the database clock; `digest` is `None` only for drill peers.
pub fn propose(
    conn: &mut PgConnection,
    new: &NewPeer<'_>,
    token_ttl_secs: Option<u32>,
    actor: Option<Uuid>,
) -> Result<Peer, StoreError> {
    conn.transaction(|conn| {
        let now = crate::database_now(conn)?;
        let expires_at = token_ttl_secs.map(|ttl| now + time::Duration::seconds(i64::from(ttl)));
        let peer = insert(
            conn,
            &NewPeer {
                acceptance_token_expires_at: expires_at,
                metadata: new.metadata.clone(),
                endpoints: new.endpoints.clone(),
                extension_slugs: new.extension_slugs.clone(),
                capabilities: new.capabilities.clone(),
                ..*new
            },
        )?;
        let payload = serde_json::json!({
            "to": PeerStatus::Proposed,
            "operator_id": actor,
            "remote_instance_url": peer.remote_instance_url,
            "peer_kind": peer.peer_kind,
            "drill": new.acceptance_token_digest.is_none(),
        });
        fleet::insert(
            conn,
            &NewEvent {
                kind: EventKind::PeerStatus(PeerStatus::Proposed),
                severity: Severity::Low,
                source: EventSource::FederationPeer,
                peer_id: Some(peer.id),
                payload: &payload,
                correlation_id: None,
            },
        )?;
        Ok(peer)
    })
}

/// Applies `event` through the domain's table: a locked read, a conditional update on the
/// status read and one event, in one transaction. Illegal → nothing written.
pub fn transition(
    conn: &mut PgConnection,
    id: Uuid,
    event: PeerEvent,
    reason: Option<&str>,
    actor: Option<Uuid>,
) -> Result<Moved, PeerOpError> {
    conn.transaction(|conn| {
        let peer = lock(conn, id)?;
        apply(conn, &peer, event, reason, actor, serde_json::json!({}))
    })
}

/// Persists a transition on a row already locked in this transaction.
/// Persists `event` on a row the caller locked in its transaction: the domain decides the
/// move, then one conditional update and one event (`extra_payload` joins it).
pub fn apply(
    conn: &mut PgConnection,
    peer: &Peer,
    event: PeerEvent,
    reason: Option<&str>,
    actor: Option<Uuid>,
    extra_payload: Value,
) -> Result<Moved, PeerOpError> {
    let (from, to, effects) = match peer::apply(peer.status, event)? {
        Transition::Move { from, to, effects } => (from, to, effects),
        Transition::Stay(status) => {
            return Ok(Moved {
                from: status,
                peer: peer.clone(),
            });
        }
    };
    let mut metadata = match &peer.metadata {
        Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    for key in effects.clear_keys {
        metadata.remove(*key);
    }
    if let (Some(key), Some(reason)) = (effects.reason_key, reason) {
        metadata.insert(key.to_owned(), Value::String(reason.to_owned()));
    }
    let target = peers::table
        .filter(peers::id.eq(peer.id))
        .filter(peers::status.eq(from.as_str()));
    // One conditional update; optional columns are written only when the effect asks.
    let row: Option<PeerRow> = diesel::update(target)
        .set((
            peers::status.eq(to.as_str()),
            peers::metadata.eq(Value::Object(metadata)),
            peers::updated_at.eq(crate::now()),
            effects.clear_acceptance_token.then(|| {
                (
                    peers::acceptance_token_digest.eq(None::<String>),
                    peers::acceptance_token_expires_at.eq(None::<OffsetDateTime>),
                )
            }),
            effects
                .set_signed_at
                .then(|| peers::signed_at.eq(crate::now_nullable())),
        ))
        .returning(PeerRow::as_returning())
        .get_result(conn)
        .optional()?;
    // The row is locked, so the status cannot have moved; a miss means it vanished.
    let updated: Peer = row.ok_or(PeerOpError::NotFound(peer.id))?.try_into()?;
    if effects.revoke_certificates {
        let n = crate::certificates::revoke_for_peer(conn, peer.id, "peer revoked")?;
        if n > 0 {
            let payload = serde_json::json!({ "reason": "peer revoked", "certificates": n });
            fleet::insert(
                conn,
                &NewEvent {
                    kind: EventKind::CertificateRevoked,
                    severity: Severity::Medium,
                    source: EventSource::InternalCa,
                    peer_id: Some(peer.id),
                    payload: &payload,
                    correlation_id: None,
                },
            )?;
        }
    }
    let mut payload = serde_json::json!({
        "from": from,
        "to": to,
        "reason": reason,
        "operator_id": actor,
    });
    if let (Value::Object(p), Value::Object(extra)) = (&mut payload, extra_payload) {
        p.extend(extra);
    }
    fleet::insert(
        conn,
        &NewEvent {
            kind: effects.event_kind,
            severity: effects.severity,
            source: effects.event_source,
            peer_id: Some(peer.id),
            payload: &payload,
            correlation_id: None,
        },
    )?;
    Ok(Moved {
        from,
        peer: updated,
    })
}

/// Step one of A's side of accept (call inside the caller's transaction): locks the row and
/// verifies `presented` against it in SPEC §3 order by the database clock. An unknown peer is
/// `not recognized`. Nothing is written; the caller persists with [`apply`].
pub fn lock_verified(
    conn: &mut PgConnection,
    id: Uuid,
    presented: Option<&str>,
    drill_allowed: bool,
) -> Result<(Peer, OffsetDateTime, Verified), PeerOpError> {
    let peer = match lock(conn, id) {
        Err(PeerOpError::NotFound(_)) => return Err(TokenRejection::NotRecognized.into()),
        other => other?,
    };
    let now = crate::database_now(conn)?;
    let stored = StoredToken {
        status: peer.status,
        digest: peer.acceptance_token_digest.as_deref(),
        expires_at: peer.acceptance_token_expires_at,
    };
    let verified = token::verify(&stored, presented, now, drill_allowed)?;
    Ok((peer, now, verified))
}

/// A's side of accept in one transaction, with nothing else to record: the token checks,
/// then proposed → accepted clearing the digest and expiry in the same conditional update
/// (single use). A refusal writes nothing.
pub fn accept_with_token(
    conn: &mut PgConnection,
    id: Uuid,
    presented: Option<&str>,
    drill_allowed: bool,
) -> Result<Moved, PeerOpError> {
    conn.transaction(|conn| {
        let (peer, _, verified) = lock_verified(conn, id, presented, drill_allowed)?;
        let payload = serde_json::json!({ "drill": verified == Verified::Drill });
        apply(conn, &peer, PeerEvent::Accept, None, None, payload)
    })
}

/// B's own row for A, recorded directly as `accepted` with the accept event (source
/// `accept_controller`), inside the caller's transaction.
pub fn insert_accepted_here(
    conn: &mut PgConnection,
    new: &NewPeer<'_>,
    facts: &RemoteFacts<'_>,
) -> Result<Peer, StoreError> {
    let peer = insert(conn, new)?;
    set_remote_facts(conn, peer.id, facts)?;
    diesel::update(peers::table.find(peer.id))
        .set(peers::signed_at.eq(crate::now_nullable()))
        .execute(conn)?;
    let payload = serde_json::json!({
        "to": PeerStatus::Accepted,
        "origin": PeerOrigin::AcceptedHere,
        "remote_instance_url": peer.remote_instance_url,
    });
    fleet::insert(
        conn,
        &NewEvent {
            kind: EventKind::PeerStatus(PeerStatus::Accepted),
            severity: Severity::Low,
            source: EventSource::AcceptController,
            peer_id: Some(peer.id),
            payload: &payload,
            correlation_id: None,
        },
    )?;
    find(conn, peer.id)?.ok_or(StoreError::Database(diesel::result::Error::NotFound))
}

/// Completes a handshake on a locked row: accepted → enrolled (event `federation_handshake`)
/// and the handshake/heartbeat times; a peer already past it changes nothing.
pub fn handshake_locked(conn: &mut PgConnection, peer: &Peer) -> Result<Moved, PeerOpError> {
    if peer.status != PeerStatus::Accepted {
        return Ok(Moved {
            from: peer.status,
            peer: peer.clone(),
        });
    }
    let moved = apply(conn, peer, PeerEvent::Handshake, None, None, Value::Null)?;
    let row: PeerRow = diesel::update(peers::table.find(peer.id))
        .set((
            peers::last_handshake_at.eq(crate::now_nullable()),
            peers::last_heartbeat_at.eq(crate::now_nullable()),
        ))
        .returning(PeerRow::as_returning())
        .get_result(conn)?;
    Ok(Moved {
        from: moved.from,
        peer: row.try_into()?,
    })
}

/// Replaces the acceptance token of a `proposed` peer (the old one stops working at once).
pub fn regenerate_token(
    conn: &mut PgConnection,
    id: Uuid,
    digest: &str,
    ttl_secs: u32,
    actor: Option<Uuid>,
) -> Result<Peer, PeerOpError> {
    conn.transaction(|conn| {
        let peer = lock(conn, id)?;
        if peer.status != PeerStatus::Proposed {
            return Err(PeerOpError::Conflict(format!(
                "acceptance token can only be regenerated while proposed (peer is {})",
                peer.status
            )));
        }
        let row: PeerRow = diesel::update(peers::table.find(id))
            .set((
                peers::acceptance_token_digest.eq(digest),
                peers::acceptance_token_expires_at.eq(crate::now_plus_secs(ttl_secs)),
                peers::updated_at.eq(crate::now()),
            ))
            .returning(PeerRow::as_returning())
            .get_result(conn)?;
        let updated: Peer = row.try_into()?;
        let payload = serde_json::json!({
            "operator_id": actor,
            "expires_at": updated.acceptance_token_expires_at.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
        });
        fleet::insert(
            conn,
            &NewEvent {
                kind: EventKind::PeerTokenRegenerated,
                severity: Severity::Low,
                source: EventSource::FederationPeer,
                peer_id: Some(id),
                payload: &payload,
                correlation_id: None,
            },
        )?;
        Ok(updated)
    })
}

/// Deletes a `proposed` or `revoked` peer and records `federation.peer.deleted`.
pub fn delete(conn: &mut PgConnection, id: Uuid, actor: Option<Uuid>) -> Result<Peer, PeerOpError> {
    conn.transaction(|conn| {
        let peer = lock(conn, id)?;
        if !matches!(peer.status, PeerStatus::Proposed | PeerStatus::Revoked) {
            return Err(PeerOpError::Conflict(format!(
                "only proposed or revoked peers can be deleted (peer is {}); revoke it first",
                peer.status
            )));
        }
        diesel::delete(peers::table.find(id)).execute(conn)?;
        let payload = serde_json::json!({
            "from": peer.status,
            "operator_id": actor,
            "remote_instance_url": peer.remote_instance_url,
        });
        fleet::insert(
            conn,
            &NewEvent {
                kind: EventKind::PeerDeleted,
                severity: Severity::Low,
                source: EventSource::FederationPeer,
                peer_id: Some(id),
                payload: &payload,
                correlation_id: None,
            },
        )?;
        Ok(peer)
    })
}
