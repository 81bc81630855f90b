//! `idempotency_keys` (SPEC §10): the first outcome of a mutating call per (operator, key).

use diesel::prelude::*;
use uuid::Uuid;

use crate::StoreError;
use crate::schema::idempotency_keys as ik;

/// How long a key is remembered.
pub const TTL_HOURS: u32 = 24;
/// A `running` row older than this was abandoned (the process died mid-call; every call is
/// bounded far below it) and may be taken over.
pub const ABANDONED_AFTER_SECS: u32 = 600;

/// What a key already holds when a call presents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// New (or expired, or abandoned): the caller runs the action and then `finish`es or
    /// `forget`s the key.
    Run,
    /// The same request is still running elsewhere.
    InProgress,
    /// The key was used for another request.
    Mismatch,
    /// Done: the first outcome, sealed.
    Done(Vec<u8>),
}

/// Claims `key` for `operator` and this request, or reports what it already holds. Expired
/// keys (and this operator's other expired keys) are pruned first.
pub fn begin(
    conn: &mut PgConnection,
    operator: Uuid,
    key: &str,
    request_sha256: &str,
) -> Result<Begun, StoreError> {
    conn.transaction(|conn| {
        diesel::delete(
            ik::table
                .filter(ik::operator_id.eq(operator))
                .filter(ik::created_at.lt(diesel::dsl::sql(&format!(
                    "now() - make_interval(hours => {TTL_HOURS})"
                )))),
        )
        .execute(conn)?;
        let inserted = diesel::insert_into(ik::table)
            .values((
                ik::operator_id.eq(operator),
                ik::key.eq(key),
                ik::request_sha256.eq(request_sha256),
                ik::state.eq("running"),
            ))
            .on_conflict_do_nothing()
            .execute(conn)?;
        if inserted == 1 {
            return Ok(Begun::Run);
        }
        let (digest, state, sealed, abandoned): (String, String, Option<Vec<u8>>, bool) = ik::table
            .find((operator, key))
            .select((
                ik::request_sha256,
                ik::state,
                ik::response_sealed,
                diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
                    "created_at < now() - make_interval(secs => {ABANDONED_AFTER_SECS})"
                )),
            ))
            .for_update()
            .first(conn)?;
        if digest != request_sha256 {
            return Ok(Begun::Mismatch);
        }
        match (state.as_str(), sealed) {
            ("done", Some(sealed)) => Ok(Begun::Done(sealed)),
            _ if abandoned => {
                diesel::update(ik::table.find((operator, key)))
                    .set(ik::created_at.eq(crate::now()))
                    .execute(conn)?;
                Ok(Begun::Run)
            }
            _ => Ok(Begun::InProgress),
        }
    })
}

/// Records the first outcome (sealed) of a key this caller `begin`-ed.
pub fn finish(
    conn: &mut PgConnection,
    operator: Uuid,
    key: &str,
    sealed: &[u8],
) -> Result<(), StoreError> {
    diesel::update(ik::table.find((operator, key)))
        .set((ik::state.eq("done"), ik::response_sealed.eq(sealed)))
        .execute(conn)?;
    Ok(())
}

/// Drops a key whose call failed on our side (5xx): a retry with it runs the action again.
pub fn forget(conn: &mut PgConnection, operator: Uuid, key: &str) -> Result<(), StoreError> {
    diesel::delete(ik::table.find((operator, key))).execute(conn)?;
    Ok(())
}

/// Retention (SPEC §9.2): keys older than `hours`, at most `batch` per statement.
pub fn delete_older_than(
    conn: &mut PgConnection,
    hours: u32,
    batch: u32,
) -> Result<usize, StoreError> {
    Ok(diesel::sql_query(format!(
        "DELETE FROM idempotency_keys WHERE (operator_id, key) IN (
             SELECT operator_id, key FROM idempotency_keys
              WHERE created_at < now() - make_interval(hours => {hours}) LIMIT {batch})"
    ))
    .execute(conn)?)
}
