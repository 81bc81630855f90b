//! The `fleet_events` table (SPEC §8). Events are written in the caller's transaction.

use diesel::prelude::*;
use powernode_domain::events::{EventKind, EventSource, Severity};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;
use crate::schema::fleet_events;

#[derive(Queryable, Selectable, Debug, Clone, PartialEq)]
#[diesel(table_name = fleet_events, check_for_backend(diesel::pg::Pg))]
pub struct FleetEvent {
    pub id: Uuid,
    pub kind: String,
    pub severity: String,
    pub source: String,
    pub peer_id: Option<Uuid>,
    pub payload: Value,
    pub correlation_id: Option<Uuid>,
    pub emitted_at: OffsetDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = fleet_events)]
struct NewEventRow<'a> {
    id: Uuid,
    kind: &'a str,
    severity: &'a str,
    source: &'a str,
    peer_id: Option<Uuid>,
    payload: &'a Value,
    correlation_id: Option<Uuid>,
}

/// An event to record. `payload` must never hold a secret.
pub struct NewEvent<'a> {
    pub kind: EventKind,
    pub severity: Severity,
    pub source: EventSource,
    pub peer_id: Option<Uuid>,
    pub payload: &'a Value,
    pub correlation_id: Option<Uuid>,
}

/// Inserts one event stamped with the database clock.
pub fn insert(conn: &mut PgConnection, event: &NewEvent<'_>) -> Result<FleetEvent, StoreError> {
    let kind = event.kind.to_string();
    Ok(diesel::insert_into(fleet_events::table)
        .values(NewEventRow {
            id: Uuid::now_v7(),
            kind: &kind,
            severity: event.severity.as_ref(),
            source: event.source.as_ref(),
            peer_id: event.peer_id,
            payload: event.payload,
            correlation_id: event.correlation_id,
        })
        .returning(FleetEvent::as_returning())
        .get_result(conn)?)
}

/// Filters for the events query; every field is optional.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub source: Option<String>,
    pub kind: Option<String>,
    pub peer_id: Option<Uuid>,
    pub since: Option<OffsetDateTime>,
    /// Strictly older than this (paging backwards: the last row's `emitted_at`).
    pub before: Option<OffsetDateTime>,
    pub limit: i64,
}

/// The events query for `filter` (newest first), as `list` runs it.
fn list_query(filter: &EventFilter) -> fleet_events::BoxedQuery<'static, diesel::pg::Pg> {
    let mut query = fleet_events::table.into_boxed();
    if let Some(source) = &filter.source {
        query = query.filter(fleet_events::source.eq(source.clone()));
    }
    if let Some(kind) = &filter.kind {
        query = query.filter(fleet_events::kind.eq(kind.clone()));
    }
    if let Some(peer_id) = filter.peer_id {
        query = query.filter(fleet_events::peer_id.eq(peer_id));
    }
    if let Some(since) = filter.since {
        query = query.filter(fleet_events::emitted_at.ge(since));
    }
    if let Some(before) = filter.before {
        query = query.filter(fleet_events::emitted_at.lt(before));
    }
    query
        .order((fleet_events::emitted_at.desc(), fleet_events::id.desc()))
        .limit(filter.limit.max(0))
}

/// Events matching `filter`, newest first.
pub fn list(conn: &mut PgConnection, filter: &EventFilter) -> Result<Vec<FleetEvent>, StoreError> {
    Ok(list_query(filter)
        .select(FleetEvent::as_select())
        .load(conn)?)
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the very statement `list` sends for `filter`: its SQL is
/// prepared as is and executed with the filter's values, so the plan is the one the API gets.
pub fn explain_list(conn: &mut PgConnection, filter: &EventFilter) -> Result<String, StoreError> {
    use diesel::connection::SimpleConnection;
    let statement = list_query(filter).select(FleetEvent::as_select());
    let debug = diesel::debug_query::<diesel::pg::Pg, _>(&statement).to_string();
    let sql = debug.split(" -- binds: ").next().unwrap_or_default();
    let literal = |v: String| format!("'{}'", v.replace('\'', "''"));
    let rfc3339 = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    // In the order `list_query` binds them.
    let params: Vec<String> = [
        filter.source.clone().map(literal),
        filter.kind.clone().map(literal),
        filter.peer_id.map(|p| literal(p.to_string())),
        filter.since.map(|t| literal(rfc3339(t))),
        filter.before.map(|t| literal(rfc3339(t))),
        Some(filter.limit.max(0).to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    conn.batch_execute(&format!("PREPARE powernode_explain_events AS {sql}"))?;
    let plan = diesel::sql_query(format!(
        "EXPLAIN (ANALYZE, BUFFERS) EXECUTE powernode_explain_events({})",
        params.join(", ")
    ))
    .load::<crate::PlanLine>(conn);
    conn.batch_execute("DEALLOCATE powernode_explain_events")?;
    Ok(plan?
        .into_iter()
        .map(|p| p.line)
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Rows one retention statement deletes at most (SPEC §9.2), so it never holds long locks.
pub const RETENTION_BATCH: u32 = 10_000;

/// One retention batch: events older than `days` (`low`/`medium`) or `high_days`
/// (`high`/`critical`; the caller ensures `high_days >= days`), at most `batch` of them. The
/// inner select is a range scan of `fleet_events_emitted_at` (`emitted_at < …`), filtered by
/// severity; the delete itself goes by primary key.
fn retention_sql(days: u32, high_days: u32, batch: u32) -> String {
    format!(
        "DELETE FROM fleet_events WHERE id IN (
             SELECT id FROM fleet_events
              WHERE emitted_at < now() - make_interval(days => {days})
                AND (severity IN ('low', 'medium') OR emitted_at < now() - make_interval(days => {high_days}))
              LIMIT {batch})"
    )
}

/// Deletes one batch of expired events; returns how many went.
pub fn delete_expired_batch(
    conn: &mut PgConnection,
    days: u32,
    high_days: u32,
    batch: u32,
) -> Result<usize, StoreError> {
    Ok(diesel::sql_query(retention_sql(days, high_days, batch)).execute(conn)?)
}

/// The plan of one retention batch (nothing is deleted).
pub fn explain_retention(
    conn: &mut PgConnection,
    days: u32,
    high_days: u32,
) -> Result<String, StoreError> {
    crate::explain(conn, &retention_sql(days, high_days, RETENTION_BATCH))
}
