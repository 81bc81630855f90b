//! Liveness (SPEC §5): the heartbeat sweep, inbound heartbeats (one by one and batched),
//! what the PeerClient saw, and the gauges read at scrape time.

use diesel::prelude::*;
use diesel::sql_types::{Double, Text, Uuid as SqlUuid};
use powernode_domain::peer::{self, PeerEvent, Transition};
use powernode_domain::{PeerKind, PeerStatus};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;
use crate::StoreError;
use crate::schema::{peer_backoff, peers};

/// Result of one heartbeat sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepOutcome {
    pub degraded_ids: Vec<Uuid>,
    /// The database clock at the sweep's transaction start.
    pub ran_at: OffsetDateTime,
}

/// One set-based statement: degrade, record the reason, write one event per degraded peer.
/// Event ids are time-ordered (migration 000021), as the API's own are: the inserts append to
/// the primary key's right edge instead of dirtying random pages of it.
const SWEEP_SQL: &str = "WITH degraded AS (
     UPDATE peers
        SET status = $1,
            metadata = metadata || jsonb_build_object($2::text, $3::text),
            updated_at = now()
      WHERE status = $4
        AND peer_kind = $5
        -- The index range (10-second buckets, migration 000023), then the exact time.
        AND heartbeat_bucket < now() - make_interval(secs => $6)
        AND COALESCE(last_heartbeat_at, '-infinity'::timestamptz)
            < now() - make_interval(secs => $6)
  RETURNING id, last_heartbeat_at
 ), recorded AS (
     INSERT INTO fleet_events (id, kind, severity, source, peer_id, payload, emitted_at)
     SELECT powernode_uuid_v7(now()), $7, $8, $9, d.id,
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

/// The planner's plan for the sweep statement (nothing is executed).
pub fn explain_sweep(conn: &mut PgConnection, stale_after_secs: u32) -> Result<String, StoreError> {
    let lines = sweep_query("EXPLAIN ", stale_after_secs, "")
        .load::<crate::PlanLine>(conn)?
        .into_iter()
        .map(|p| p.line)
        .collect::<Vec<_>>();
    Ok(lines.join("\n"))
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of one real sweep (timings and buffers of its update and its
/// event inserts), rolled back: nothing it degraded or recorded is kept.
pub fn explain_analyze_sweep(
    conn: &mut PgConnection,
    stale_after_secs: u32,
) -> Result<String, StoreError> {
    let mut lines = Vec::new();
    let rolled_back = conn.transaction::<(), diesel::result::Error, _>(|conn| {
        lines = sweep_query("EXPLAIN (ANALYZE, BUFFERS) ", stale_after_secs, "explain")
            .load::<crate::PlanLine>(conn)?
            .into_iter()
            .map(|p| p.line)
            .collect();
        Err(diesel::result::Error::RollbackTransaction)
    });
    match rolled_back {
        Ok(()) | Err(diesel::result::Error::RollbackTransaction) => Ok(lines.join("\n")),
        Err(e) => Err(e.into()),
    }
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
        let moved = apply(conn, &peer, PeerEvent::Heartbeat, None, None, Value::Null)?;
        if moved.from != moved.status {
            // It came back: our PeerClient stops backing off and calls it on the next pass.
            diesel::delete(peer_backoff::table.find(id)).execute(conn)?;
        }
        Ok(moved)
    })
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

/// Records one outbound call's result: its time, the error (or none), since when calls fail,
/// and the backoff (SPEC §5 liveness rules in `powernode_domain::liveness`): consecutive
/// failures and until when the PeerClient skips the peer. `retry_after`: what the peer asked for
/// (429, 503 `busy`).
pub fn record_outbound(
    conn: &mut PgConnection,
    id: Uuid,
    error: Option<&str>,
    retry_after: Option<u32>,
) -> Result<(), StoreError> {
    let failing_since = diesel::dsl::sql::<
        diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
    >(if error.is_some() {
        "COALESCE(outbound_failing_since, now())"
    } else {
        "NULL"
    });
    conn.transaction(|conn| {
        diesel::update(peers::table.find(id))
            .set((
                peers::last_outbound_heartbeat_at.eq(crate::now_nullable()),
                peers::last_outbound_error.eq(error),
                peers::outbound_failing_since.eq(failing_since),
            ))
            .execute(conn)?;
        if error.is_none() {
            diesel::delete(peer_backoff::table.find(id)).execute(conn)?;
            return Ok(());
        }
        let failures: i32 = diesel::insert_into(peer_backoff::table)
            .values((peer_backoff::peer_id.eq(id), peer_backoff::failures.eq(1)))
            .on_conflict(peer_backoff::peer_id)
            .do_update()
            .set(peer_backoff::failures.eq(peer_backoff::failures + 1))
            .returning(peer_backoff::failures)
            .get_result(conn)?;
        let secs = powernode_domain::liveness::outbound_backoff_secs(
            u32::try_from(failures).unwrap_or(0),
            retry_after,
        );
        if secs > 0 {
            diesel::update(peer_backoff::table.find(id))
                .set(peer_backoff::retry_at.eq(crate::now_plus_secs(secs)))
                .execute(conn)?;
        } else {
            diesel::update(peer_backoff::table.find(id))
                .set(peer_backoff::retry_at.eq(None::<OffsetDateTime>))
                .execute(conn)?;
        }
        Ok(())
    })
}

/// Peers the PeerClient skips this pass (their backoff has not run out), by the database clock.
pub fn backing_off(conn: &mut PgConnection) -> Result<Vec<Uuid>, StoreError> {
    Ok(peer_backoff::table
        .filter(peer_backoff::retry_at.gt(crate::now_nullable()))
        .select(peer_backoff::peer_id)
        .load(conn)?)
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

#[derive(QueryableByName)]
struct DegradedId {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

diesel::define_sql_function! {
    /// Migration 000010: many active-peer heartbeats as one statement.
    fn federation_heartbeat_active_batch(fingerprints: diesel::sql_types::Array<Text>) -> diesel::sql_types::Jsonb;
}

#[derive(QueryableByName)]
struct HeartbeatAge {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Double)]
    age: f64,
}

#[derive(QueryableByName)]
struct DegradedSummary {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<Double>)]
    oldest_secs: Option<f64>,
}

/// How many peers are degraded and how long ago the oldest of their last heartbeats was
/// (seconds, database clock) — the web UI's health banner.
pub fn degraded_summary(conn: &mut PgConnection) -> Result<(i64, Option<f64>), StoreError> {
    let s = diesel::sql_query(
        "SELECT count(*) AS n,
                EXTRACT(EPOCH FROM now() - min(last_heartbeat_at))::float8 AS oldest_secs
           FROM peers WHERE status = 'degraded'",
    )
    .get_result::<DegradedSummary>(conn)?;
    Ok((s.n, s.oldest_secs))
}
