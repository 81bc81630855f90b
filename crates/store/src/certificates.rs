//! `peer_certificates` and `server_certificates` (SPEC §4).

use diesel::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;
use crate::peers::Sealed;
use crate::schema::{peer_certificates as pc, server_certificates as sc};

#[derive(Queryable, Selectable, Clone)]
#[diesel(table_name = pc, check_for_backend(diesel::pg::Pg))]
pub struct PeerCertificate {
    pub id: Uuid,
    pub peer_id: Uuid,
    pub direction: String,
    pub serial: String,
    pub subject: String,
    pub fingerprint_sha256: Option<String>,
    pub cert_pem: Option<String>,
    pub key_sealed: Option<Vec<u8>>,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub revocation_reason: Option<String>,
    pub created_at: OffsetDateTime,
    /// When it last authenticated a request to us (stamped at most once a minute).
    pub last_used_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for PeerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerCertificate")
            .field("id", &self.id)
            .field("peer_id", &self.peer_id)
            .field("direction", &self.direction)
            .field("serial", &self.serial)
            .field("fingerprint_sha256", &self.fingerprint_sha256)
            .field(
                "key_sealed",
                &self.key_sealed.as_ref().map(|_| "[REDACTED]"),
            )
            .field("not_after", &self.not_after)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

pub use powernode_domain::certificate::Direction;

pub const INBOUND: &str = Direction::Inbound.as_str();
pub const OUTBOUND: &str = Direction::Outbound.as_str();

/// A certificate to store; `key_sealed` only for outbound rows.
pub struct NewCertificate<'a> {
    pub peer_id: Uuid,
    pub direction: &'a str,
    pub serial: &'a str,
    pub subject: &'a str,
    pub fingerprint_sha256: &'a str,
    pub cert_pem: &'a str,
    pub key_sealed: Option<&'a Sealed>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

pub fn insert(
    conn: &mut PgConnection,
    c: &NewCertificate<'_>,
) -> Result<PeerCertificate, StoreError> {
    Ok(diesel::insert_into(pc::table)
        .values((
            pc::id.eq(Uuid::now_v7()),
            pc::peer_id.eq(c.peer_id),
            pc::direction.eq(c.direction),
            pc::serial.eq(c.serial),
            pc::subject.eq(c.subject),
            pc::fingerprint_sha256.eq(c.fingerprint_sha256),
            pc::cert_pem.eq(c.cert_pem),
            pc::key_sealed.eq(c.key_sealed.map(|k| k.0.as_slice())),
            pc::not_before.eq(c.not_before),
            pc::not_after.eq(c.not_after),
        ))
        .returning(PeerCertificate::as_returning())
        .get_result(conn)?)
}

/// The certificate with this fingerprint, whatever its peer or state.
pub fn by_fingerprint(
    conn: &mut PgConnection,
    fingerprint: &str,
) -> Result<Option<PeerCertificate>, StoreError> {
    Ok(pc::table
        .filter(pc::fingerprint_sha256.eq(fingerprint))
        .select(PeerCertificate::as_select())
        .first(conn)
        .optional()?)
}

/// The newest certificates of a peer in one direction (newest first).
pub fn for_peer(
    conn: &mut PgConnection,
    peer_id: Uuid,
    direction: &str,
) -> Result<Vec<PeerCertificate>, StoreError> {
    Ok(pc::table
        .filter(pc::peer_id.eq(peer_id))
        .filter(pc::direction.eq(direction))
        .order((pc::created_at.desc(), pc::id.desc()))
        .select(PeerCertificate::as_select())
        .load(conn)?)
}

/// How stale `last_used_at` may get before a request stamps it again: the stamp orders a
/// peer's certificates by use, and a write per request would be waste.
pub const LAST_USED_RESOLUTION_SECS: u32 = 60;

/// Records that the certificate with this fingerprint authenticated a request (SPEC §4).
pub fn mark_used(conn: &mut PgConnection, fingerprint: &str) -> Result<(), StoreError> {
    diesel::update(
        pc::table
            .filter(pc::fingerprint_sha256.eq(fingerprint))
            .filter(
                pc::last_used_at
                    .is_null()
                    .or(pc::last_used_at.lt(diesel::dsl::sql(&format!(
                        "now() - make_interval(secs => {LAST_USED_RESOLUTION_SECS})"
                    )))),
            ),
    )
    .set(pc::last_used_at.eq(crate::now_nullable()))
    .execute(conn)?;
    Ok(())
}

/// The certificate to repeat a handshake with (SPEC §4): of the live certificates we issued to
/// the peer, the one it was last seen using, else the one issued at accept (the oldest) — never
/// a renewal it may not have received.
pub fn for_rehandshake(
    conn: &mut PgConnection,
    peer_id: Uuid,
) -> Result<Option<PeerCertificate>, StoreError> {
    Ok(pc::table
        .filter(pc::peer_id.eq(peer_id))
        .filter(pc::direction.eq(INBOUND))
        .filter(pc::revoked_at.is_null())
        .order((
            pc::last_used_at.desc().nulls_last(),
            pc::created_at.asc(),
            pc::id.asc(),
        ))
        .select(PeerCertificate::as_select())
        .first(conn)
        .optional()?)
}

/// Revokes every unrevoked certificate of a peer; returns how many.
pub fn revoke_for_peer(
    conn: &mut PgConnection,
    peer_id: Uuid,
    reason: &str,
) -> Result<usize, StoreError> {
    Ok(diesel::update(
        pc::table
            .filter(pc::peer_id.eq(peer_id))
            .filter(pc::revoked_at.is_null()),
    )
    .set((
        pc::revoked_at.eq(crate::now_nullable()),
        pc::revocation_reason.eq(reason),
    ))
    .execute(conn)?)
}

#[derive(Queryable, Selectable, Clone)]
#[diesel(table_name = sc, check_for_backend(diesel::pg::Pg))]
pub struct ServerCertificate {
    pub id: Uuid,
    pub hosts: String,
    pub cert_pem: String,
    pub key_sealed: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

/// The newest server certificate for exactly these hosts.
pub fn server_certificate(
    conn: &mut PgConnection,
    hosts: &str,
) -> Result<Option<ServerCertificate>, StoreError> {
    Ok(sc::table
        .filter(sc::hosts.eq(hosts))
        .order(sc::not_after.desc())
        .select(ServerCertificate::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert_server_certificate(
    conn: &mut PgConnection,
    hosts: &str,
    cert_pem: &str,
    key_sealed: &[u8],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<ServerCertificate, StoreError> {
    Ok(diesel::insert_into(sc::table)
        .values((
            sc::id.eq(Uuid::now_v7()),
            sc::hosts.eq(hosts),
            sc::cert_pem.eq(cert_pem),
            sc::key_sealed.eq(key_sealed),
            sc::not_before.eq(not_before),
            sc::not_after.eq(not_after),
        ))
        .returning(ServerCertificate::as_returning())
        .get_result(conn)?)
}
