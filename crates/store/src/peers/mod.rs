//! The `peers` table: row structs, conversions to domain types, lookups and the steps a
//! service composes in its own transaction (`lock_for_update`, `apply`, `set_remote_facts`, …).
//! Transitions are in [`lifecycle`], heartbeats and the sweep in [`liveness`].

mod lifecycle;
mod liveness;

pub use lifecycle::*;
pub use liveness::*;

use std::fmt;

use diesel::prelude::*;
use powernode_domain::peer::IllegalTransition;
use powernode_domain::token::TokenRejection;
use powernode_domain::{PeerKind, PeerOrigin, PeerStatus, SpawnMode, SpawnRole};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;
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
    pub status_changed_at: OffsetDateTime,
    pub outbound_failing_since: Option<OffsetDateTime>,
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
    /// Set by the database on every status change (migration 000017's trigger).
    pub status_changed_at: OffsetDateTime,
    /// Since when our outbound calls to this peer fail; `None` after a success.
    pub outbound_failing_since: Option<OffsetDateTime>,
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
            status_changed_at: row.status_changed_at,
            outbound_failing_since: row.outbound_failing_since,
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

/// Up to `limit` peers, oldest first, after the peer `(created_at, id)` when given (keyset
/// paging: stable while peers are added or removed).
pub fn page(
    conn: &mut PgConnection,
    status: Option<PeerStatus>,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<Peer>, StoreError> {
    let mut query = peers::table.select(PeerRow::as_select()).into_boxed();
    if let Some(status) = status {
        query = query.filter(peers::status.eq(status.as_str()));
    }
    if let Some((at, id)) = after {
        query = query.filter(
            peers::created_at
                .gt(at)
                .or(peers::created_at.eq(at).and(peers::id.gt(id))),
        );
    }
    query
        .order((peers::created_at.asc(), peers::id.asc()))
        .limit(limit)
        .load(conn)?
        .into_iter()
        .map(Peer::try_from)
        .collect()
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

/// A live (non-revoked) peer already pins the CA with this SHA-256: we are federated with
/// that instance.
pub fn ca_pinned_by_live_peer(
    conn: &mut PgConnection,
    ca_sha256: &str,
) -> Result<bool, StoreError> {
    Ok(diesel::select(diesel::dsl::exists(
        peers::table
            .filter(peers::remote_ca_sha256.eq(ca_sha256))
            .filter(peers::status.ne(PeerStatus::Revoked.as_str())),
    ))
    .get_result(conn)?)
}

/// Locks a peer row for the caller's transaction.
pub fn lock_for_update(conn: &mut PgConnection, id: Uuid) -> Result<Peer, PeerOpError> {
    lock(conn, id)
}

/// Leases the peer for `secs` (SPEC §4): one short statement sets `claimed_until` if no live
/// lease holds the row. Returns the lease's token, or `None` when another caller holds the
/// lease (it is doing the same work). No lock outlives the statement.
///
/// The condition is on the lease column, not `SKIP LOCKED`: a skipped lock cannot be told
/// apart from a competing claim, and the remote side's certificate insert (a `KEY SHARE` lock
/// through the foreign key) or a heartbeat update would make a renewal skip its turn. The
/// update waits for those short writes (bounded by `lock_timeout`) and then re-reads the lease.
pub fn lease(conn: &mut PgConnection, id: Uuid, secs: u32) -> Result<Option<Uuid>, StoreError> {
    let token = Uuid::new_v4();
    let leased = diesel::update(
        peers::table.find(id).filter(
            peers::claimed_until
                .is_null()
                .or(peers::claimed_until.le(crate::now_nullable())),
        ),
    )
    .set((
        peers::claimed_until.eq(crate::now_plus_secs(secs)),
        peers::claim_token.eq(token),
    ))
    .execute(conn)?;
    Ok((leased == 1).then_some(token))
}

/// Ends a lease, if `token` still holds it (an expired lease another caller took is theirs).
pub fn release_lease(conn: &mut PgConnection, id: Uuid, token: Uuid) -> Result<(), StoreError> {
    diesel::update(peers::table.find(id).filter(peers::claim_token.eq(token)))
        .set((
            peers::claimed_until.eq(None::<OffsetDateTime>),
            peers::claim_token.eq(None::<Uuid>),
        ))
        .execute(conn)?;
    Ok(())
}
