//! The `peers` table: row structs, conversions to domain types, queries.

use std::fmt;

use diesel::prelude::*;
use diesel::sql_types::{Double, Text, Uuid as SqlUuid};
use powernode_domain::events::{EventKind, EventSource, Severity};
use powernode_domain::peer::{self, IllegalTransition, PeerEvent, Transition};
use powernode_domain::token::{self, StoredToken, TokenRejection, Verified};
use powernode_domain::{PeerKind, PeerOrigin, PeerStatus, SpawnMode, SpawnRole};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;
use crate::events::{self as fleet, NewEvent};
use crate::schema::peers;

/// Ciphertext that must never be printed, even though it is encrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(pub Vec<u8>);

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealed([REDACTED])")
    }
}

/// A `peers` row exactly as stored.
#[derive(Queryable, Selectable, Clone)]
#[diesel(table_name = peers, check_for_backend(diesel::pg::Pg))]
pub struct PeerRow {
    pub id: Uuid,
    pub origin: String,
    pub remote_instance_url: String,
    pub remote_instance_id: Option<Uuid>,
    pub remote_ca_pem: Option<String>,
    pub remote_ca_sha256: Option<String>,
    pub contract_version_agreed: Option<i32>,
    pub last_outbound_heartbeat_at: Option<OffsetDateTime>,
    pub last_outbound_error: Option<String>,
    pub pending_outbound_key: Option<Vec<u8>>,
    pub peer_kind: String,
    pub spawn_role: Option<String>,
    pub spawn_mode: Option<String>,
    pub remote_prefix_advertisement: Option<String>,
    pub endpoints: Value,
    pub extension_slugs: Value,
    pub capabilities: Value,
    pub sync_cursor: Option<Value>,
    pub metadata: Value,
    pub status: String,
    pub signed_at: Option<OffsetDateTime>,
    pub last_handshake_at: Option<OffsetDateTime>,
    pub last_heartbeat_at: Option<OffsetDateTime>,
    pub acceptance_token_digest: Option<String>,
    pub acceptance_token_expires_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A peer with its enumerations checked against the domain.
#[derive(Debug, Clone)]
pub struct Peer {
    pub id: Uuid,
    pub origin: PeerOrigin,
    pub remote_instance_url: String,
    pub remote_instance_id: Option<Uuid>,
    pub remote_ca_pem: Option<String>,
    pub remote_ca_sha256: Option<String>,
    pub contract_version_agreed: Option<i32>,
    pub last_outbound_heartbeat_at: Option<OffsetDateTime>,
    pub last_outbound_error: Option<String>,
    pub pending_outbound_key: Option<Sealed>,
    pub peer_kind: PeerKind,
    pub spawn_role: Option<SpawnRole>,
    pub spawn_mode: Option<SpawnMode>,
    pub remote_prefix_advertisement: Option<String>,
    pub endpoints: Value,
    pub extension_slugs: Value,
    pub capabilities: Value,
    pub sync_cursor: Option<Value>,
    pub metadata: Value,
    pub status: PeerStatus,
    pub signed_at: Option<OffsetDateTime>,
    pub last_handshake_at: Option<OffsetDateTime>,
    pub last_heartbeat_at: Option<OffsetDateTime>,
    /// Present only to check a token; never serialised to any surface.
    pub acceptance_token_digest: Option<String>,
    pub acceptance_token_expires_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

fn parse_column<T: std::str::FromStr>(column: &'static str, value: &str) -> Result<T, StoreError> {
    value.parse().map_err(|_| StoreError::CorruptRow {
        table: "peers",
        column,
        value: value.to_owned(),
    })
}

fn parse_optional<T: std::str::FromStr>(
    column: &'static str,
    value: Option<&str>,
) -> Result<Option<T>, StoreError> {
    value.map(|v| parse_column(column, v)).transpose()
}

impl TryFrom<PeerRow> for Peer {
    type Error = StoreError;

    fn try_from(row: PeerRow) -> Result<Self, StoreError> {
        Ok(Peer {
            origin: parse_column("origin", &row.origin)?,
            peer_kind: parse_column("peer_kind", &row.peer_kind)?,
            spawn_role: parse_optional("spawn_role", row.spawn_role.as_deref())?,
            spawn_mode: parse_optional("spawn_mode", row.spawn_mode.as_deref())?,
            status: parse_column("status", &row.status)?,
            id: row.id,
            remote_instance_url: row.remote_instance_url,
            remote_instance_id: row.remote_instance_id,
            remote_ca_pem: row.remote_ca_pem,
            remote_ca_sha256: row.remote_ca_sha256,
            contract_version_agreed: row.contract_version_agreed,
            last_outbound_heartbeat_at: row.last_outbound_heartbeat_at,
            last_outbound_error: row.last_outbound_error,
            pending_outbound_key: row.pending_outbound_key.map(Sealed),
            remote_prefix_advertisement: row.remote_prefix_advertisement,
            endpoints: row.endpoints,
            extension_slugs: row.extension_slugs,
            capabilities: row.capabilities,
            sync_cursor: row.sync_cursor,
            metadata: row.metadata,
            signed_at: row.signed_at,
            last_handshake_at: row.last_handshake_at,
            last_heartbeat_at: row.last_heartbeat_at,
            acceptance_token_digest: row.acceptance_token_digest,
            acceptance_token_expires_at: row.acceptance_token_expires_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// Insert struct; typed fields are rendered to their stored text here.
#[derive(Insertable)]
#[diesel(table_name = peers)]
pub struct NewPeer<'a> {
    pub id: Uuid,
    pub origin: &'a str,
    pub remote_instance_url: &'a str,
    pub peer_kind: &'a str,
    pub spawn_role: Option<&'a str>,
    pub spawn_mode: Option<&'a str>,
    pub remote_prefix_advertisement: Option<&'a str>,
    pub status: &'a str,
    pub metadata: Value,
    pub endpoints: Value,
    pub extension_slugs: Value,
    pub capabilities: Value,
    pub last_heartbeat_at: Option<OffsetDateTime>,
    pub acceptance_token_digest: Option<&'a str>,
    pub acceptance_token_expires_at: Option<OffsetDateTime>,
}

/// Inserts a row as is (no event); services use `propose`.
pub fn insert(conn: &mut PgConnection, new: &NewPeer<'_>) -> Result<Peer, StoreError> {
    diesel::insert_into(peers::table)
        .values(new)
        .returning(PeerRow::as_returning())
        .get_result(conn)?
        .try_into()
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<Peer>, StoreError> {
    peers::table
        .find(id)
        .select(PeerRow::as_select())
        .first(conn)
        .optional()?
        .map(Peer::try_from)
        .transpose()
}

/// A peer's status, its row locked `FOR SHARE` until the caller's transaction ends (a
/// concurrent transition waits), or `None` when it does not exist.
pub fn status_for_share(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<PeerStatus>, StoreError> {
    peers::table
        .find(id)
        .select(peers::status)
        .for_share()
        .first::<String>(conn)
        .optional()?
        .map(|s| {
            s.parse::<PeerStatus>().map_err(|_| StoreError::CorruptRow {
                table: "peers",
                column: "status",
                value: s,
            })
        })
        .transpose()
}

pub fn list(conn: &mut PgConnection, status: Option<PeerStatus>) -> Result<Vec<Peer>, StoreError> {
    let mut query = peers::table.select(PeerRow::as_select()).into_boxed();
    if let Some(status) = status {
        query = query.filter(peers::status.eq(status.as_str()));
    }
    query
        .order((peers::created_at.asc(), peers::id.asc()))
        .load(conn)?
        .into_iter()
        .map(Peer::try_from)
        .collect()
}

/// Result of one heartbeat sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepOutcome {
    pub degraded_ids: Vec<Uuid>,
    /// The database clock at the sweep's transaction start.
    pub ran_at: OffsetDateTime,
}

#[derive(QueryableByName)]
struct DegradedId {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// One set-based statement: degrade, record the reason, write one event per degraded peer.
const SWEEP_SQL: &str = "WITH degraded AS (
     UPDATE peers
        SET status = $1,
            metadata = metadata || jsonb_build_object($2::text, $3::text),
            updated_at = now()
      WHERE status = $4
        AND peer_kind = $5
        AND COALESCE(last_heartbeat_at, '-infinity'::timestamptz)
            < now() - make_interval(secs => $6)
  RETURNING id, last_heartbeat_at
 ), recorded AS (
     INSERT INTO fleet_events (id, kind, severity, source, peer_id, payload, emitted_at)
     SELECT gen_random_uuid(), $7, $8, $9, d.id,
            jsonb_build_object('from', $4::text, 'to', $1::text, 'reason', $3::text,
                               'last_heartbeat_at', d.last_heartbeat_at,
                               'stale_after_seconds', $6),
            now()
       FROM degraded d
 )
 SELECT id FROM degraded ORDER BY id";

fn sweep_query(
    prefix: &str,
    stale_after_secs: u32,
    reason: &str,
) -> diesel::query_builder::BoxedSqlQuery<'static, diesel::pg::Pg, diesel::query_builder::SqlQuery>
{
    let from = PeerStatus::Active;
    let Ok(Transition::Move { to, effects, .. }) = peer::apply(from, PeerEvent::HeartbeatStale)
    else {
        unreachable!("SPEC §2: active → degraded is always permitted");
    };
    diesel::sql_query(format!("{prefix}{SWEEP_SQL}"))
        .into_boxed()
        .bind::<Text, _>(to.as_str())
        .bind::<Text, _>(effects.reason_key.unwrap_or(peer::DEGRADED_REASON))
        .bind::<Text, _>(reason.to_owned())
        .bind::<Text, _>(from.as_str())
        .bind::<Text, _>(PeerKind::Platform.as_str())
        .bind::<Double, _>(f64::from(stale_after_secs))
        .bind::<Text, _>(effects.event_kind.to_string())
        .bind::<Text, _>(effects.severity.as_ref().to_owned())
        .bind::<Text, _>(effects.event_source.as_ref().to_owned())
}

/// Degrades every active platform peer whose last heartbeat is missing or older than
/// `stale_after_secs` by the database clock, recording the reason and one event per peer, in one
/// transaction. A concurrent sweep blocks on the same rows, then re-checks `status` and skips
/// them, so each peer is degraded once and gets one event.
pub fn sweep_stale(
    conn: &mut PgConnection,
    stale_after_secs: u32,
    reason: &str,
) -> Result<SweepOutcome, StoreError> {
    conn.transaction(|conn| {
        let ran_at = crate::database_now(conn)?;
        let degraded = sweep_query("", stale_after_secs, reason).load::<DegradedId>(conn)?;
        Ok(SweepOutcome {
            degraded_ids: degraded.into_iter().map(|d| d.id).collect(),
            ran_at,
        })
    })
}

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

/// The planner's plan for the sweep statement (nothing is executed).
pub fn explain_sweep(conn: &mut PgConnection, stale_after_secs: u32) -> Result<String, StoreError> {
    let lines = sweep_query("EXPLAIN ", stale_after_secs, "")
        .load::<PlanLine>(conn)?
        .into_iter()
        .map(|p| p.line)
        .collect::<Vec<_>>();
    Ok(lines.join("\n"))
}

/// A peer after a transition, with the status it left (for metrics and logs). Derefs to the
/// peer.
#[derive(Debug, Clone)]
pub struct Moved {
    pub from: PeerStatus,
    pub peer: Peer,
}

impl std::ops::Deref for Moved {
    type Target = Peer;

    fn deref(&self) -> &Peer {
        &self.peer
    }
}

/// Why a peer operation changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum PeerOpError {
    #[error("peer {0} not found")]
    NotFound(Uuid),
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    /// The peer's status does not allow the operation (not a state-machine move).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Rejected(#[from] TokenRejection),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for PeerOpError {
    fn from(e: diesel::result::Error) -> Self {
        PeerOpError::Store(e.into())
    }
}

fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Peer, PeerOpError> {
    peers::table
        .find(id)
        .select(PeerRow::as_select())
        .for_update()
        .first(conn)
        .optional()?
        .ok_or(PeerOpError::NotFound(id))?
        .try_into()
        .map_err(PeerOpError::Store)
}

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

/// What the other side told us at accept or handshake.
pub struct RemoteFacts<'a> {
    pub remote_instance_id: Option<Uuid>,
    pub remote_ca_pem: Option<&'a str>,
    pub remote_ca_sha256: Option<&'a str>,
    pub contract_version_agreed: Option<i32>,
    pub capabilities: Option<Value>,
    pub extension_slugs: Option<Value>,
    pub endpoints: Option<Value>,
    pub pending_outbound_key: Option<Option<&'a [u8]>>,
}

/// Updates the columns of `facts` that are `Some` (call inside the caller's transaction).
pub fn set_remote_facts(
    conn: &mut PgConnection,
    id: Uuid,
    f: &RemoteFacts<'_>,
) -> Result<(), StoreError> {
    diesel::update(peers::table.find(id))
        .set((
            f.remote_instance_id
                .map(|v| peers::remote_instance_id.eq(v)),
            f.remote_ca_pem.map(|v| peers::remote_ca_pem.eq(v)),
            f.remote_ca_sha256.map(|v| peers::remote_ca_sha256.eq(v)),
            f.contract_version_agreed
                .map(|v| peers::contract_version_agreed.eq(v)),
            f.capabilities.clone().map(|v| peers::capabilities.eq(v)),
            f.extension_slugs
                .clone()
                .map(|v| peers::extension_slugs.eq(v)),
            f.endpoints.clone().map(|v| peers::endpoints.eq(v)),
            f.pending_outbound_key
                .map(|v| peers::pending_outbound_key.eq(v)),
            peers::updated_at.eq(crate::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Whether a non-revoked peer other than `except` is bound to `instance_id`.
pub fn instance_bound_elsewhere(
    conn: &mut PgConnection,
    instance_id: Uuid,
    except: Uuid,
) -> Result<bool, StoreError> {
    Ok(diesel::select(diesel::dsl::exists(
        peers::table
            .filter(peers::remote_instance_id.eq(instance_id))
            .filter(peers::status.ne(PeerStatus::Revoked.as_str()))
            .filter(peers::id.ne(except)),
    ))
    .get_result(conn)?)
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

/// Locks a peer row for the caller's transaction.
pub fn lock_for_update(conn: &mut PgConnection, id: Uuid) -> Result<Peer, PeerOpError> {
    lock(conn, id)
}

/// An authenticated inbound heartbeat: stores what the peer advertised, sets
/// `last_heartbeat_at`, and moves enrolled/degraded → active (routine heartbeats: no event).
pub fn record_heartbeat(
    conn: &mut PgConnection,
    id: Uuid,
    facts: &RemoteFacts<'_>,
    sync_cursor: Option<Value>,
) -> Result<Moved, PeerOpError> {
    conn.transaction(|conn| {
        let peer = lock(conn, id)?;
        set_remote_facts(conn, id, facts)?;
        diesel::update(peers::table.find(id))
            .set((
                peers::last_heartbeat_at.eq(crate::now_nullable()),
                sync_cursor.map(|c| peers::sync_cursor.eq(c)),
            ))
            .execute(conn)?;
        let peer = lock(conn, peer.id)?;
        apply(conn, &peer, PeerEvent::Heartbeat, None, None, Value::Null)
    })
}

diesel::define_sql_function! {
    /// Migration 000010: many active-peer heartbeats as one statement.
    fn federation_heartbeat_active_batch(fingerprints: diesel::sql_types::Array<Text>) -> diesel::sql_types::Jsonb;
}

/// Applies the heartbeats of every fingerprint that is a live certificate we issued to an
/// active peer, in one statement. Returns the database time they were recorded at and the
/// fingerprints that were applied; the others need the full chain.
pub fn heartbeat_active_batch(
    conn: &mut PgConnection,
    fingerprints: &[String],
) -> Result<(OffsetDateTime, Vec<String>), StoreError> {
    let answer: Value =
        diesel::select(federation_heartbeat_active_batch(fingerprints)).get_result(conn)?;
    let corrupt = |v: &Value| StoreError::CorruptRow {
        table: "peers",
        column: "federation_heartbeat_active_batch",
        value: v.to_string(),
    };
    let at = answer["at"]
        .as_str()
        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .ok_or_else(|| corrupt(&answer))?;
    let applied = answer["fingerprints"]
        .as_array()
        .ok_or_else(|| corrupt(&answer))?
        .iter()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect();
    Ok((at, applied))
}

/// Records the outcome of one of our outbound calls (never changes a status).
pub fn record_outbound(
    conn: &mut PgConnection,
    id: Uuid,
    error: Option<&str>,
) -> Result<(), StoreError> {
    diesel::update(peers::table.find(id))
        .set((
            peers::last_outbound_heartbeat_at.eq(crate::now_nullable()),
            peers::last_outbound_error.eq(error),
        ))
        .execute(conn)?;
    Ok(())
}

/// Claims the rows this instance must contact, skipping rows another replica holds
/// (`FOR UPDATE SKIP LOCKED`); the caller keeps the transaction open for the call.
pub fn claim(
    conn: &mut PgConnection,
    statuses: &[PeerStatus],
    origin: Option<PeerOrigin>,
) -> Result<Vec<Peer>, StoreError> {
    let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    // Locking clauses cannot be boxed: both origins or one, as two plain queries.
    let origins: Vec<&str> = match origin {
        Some(o) => vec![o.as_str()],
        None => vec![
            PeerOrigin::ProposedHere.as_str(),
            PeerOrigin::AcceptedHere.as_str(),
        ],
    };
    peers::table
        .filter(peers::status.eq_any(names))
        .filter(peers::peer_kind.eq(PeerKind::Platform.as_str()))
        .filter(peers::origin.eq_any(origins))
        .select(PeerRow::as_select())
        .for_update()
        .skip_locked()
        .load(conn)?
        .into_iter()
        .map(Peer::try_from)
        .collect()
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

#[derive(QueryableByName)]
struct StatusCount {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Number of peers in each status (statuses without peers are absent).
pub fn count_by_status(conn: &mut PgConnection) -> Result<Vec<(PeerStatus, i64)>, StoreError> {
    diesel::sql_query("SELECT status, count(*) AS n FROM peers GROUP BY status")
        .load::<StatusCount>(conn)?
        .into_iter()
        .map(|c| Ok((parse_column("status", &c.status)?, c.n)))
        .collect()
}

#[derive(QueryableByName)]
struct HeartbeatAge {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Double)]
    age: f64,
}

/// Seconds since the last heartbeat of the `limit` longest-silent peers that should be sending
/// them (enrolled, active, degraded), by the database clock.
pub fn heartbeat_ages(conn: &mut PgConnection, limit: i64) -> Result<Vec<(Uuid, f64)>, StoreError> {
    Ok(diesel::sql_query(
        "SELECT id, EXTRACT(EPOCH FROM now() - last_heartbeat_at)::float8 AS age
           FROM peers
          WHERE status IN ('enrolled', 'active', 'degraded') AND last_heartbeat_at IS NOT NULL
          ORDER BY last_heartbeat_at ASC
          LIMIT $1",
    )
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .load::<HeartbeatAge>(conn)?
    .into_iter()
    .map(|h| (h.id, h.age))
    .collect())
}

/// The row if no other transaction holds it (`FOR UPDATE SKIP LOCKED`); hold it by keeping the
/// caller's transaction open.
pub fn claim_one(conn: &mut PgConnection, id: Uuid) -> Result<Option<Peer>, StoreError> {
    peers::table
        .find(id)
        .select(PeerRow::as_select())
        .for_update()
        .skip_locked()
        .first(conn)
        .optional()?
        .map(Peer::try_from)
        .transpose()
}
