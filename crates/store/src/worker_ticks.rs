//! `worker_ticks`: each scheduled worker call applied once per `<schedule>:<tick>`, whichever
//! replica serves it and however often apalis re-runs the task (SPEC §11 scale-out).

use diesel::prelude::*;
use diesel::sql_types::{Integer, Jsonb, Nullable, Text};

use crate::StoreError;

/// What a tick key already holds when a call presents it.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// New, or its holder's lease lapsed (the replica died mid-call): run it.
    Run,
    /// Another call is applying it now.
    Running,
    /// Applied: its answer (replayed, not re-applied).
    Done(serde_json::Value),
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Nullable<Jsonb>)]
    response: Option<serde_json::Value>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    lapsed: bool,
}

/// Claims `key` for `lease_secs`, or reports what it holds (a replayed answer is counted).
pub fn claim(conn: &mut PgConnection, key: &str, lease_secs: u32) -> Result<Claim, StoreError> {
    conn.transaction(|conn| {
        let inserted = diesel::sql_query(
            "INSERT INTO worker_ticks (key, state, lease_until)
             VALUES ($1, 'running', now() + make_interval(secs => $2))
             ON CONFLICT (key) DO NOTHING",
        )
        .bind::<Text, _>(key)
        .bind::<Integer, _>(i32::try_from(lease_secs).unwrap_or(i32::MAX))
        .execute(conn)?;
        if inserted == 1 {
            return Ok(Claim::Run);
        }
        let row: Row = diesel::sql_query(
            "SELECT state, response, lease_until < now() AS lapsed
               FROM worker_ticks WHERE key = $1 FOR UPDATE",
        )
        .bind::<Text, _>(key)
        .get_result(conn)?;
        match (row.state.as_str(), row.response) {
            ("done", Some(response)) => {
                diesel::sql_query("UPDATE worker_ticks SET replays = replays + 1 WHERE key = $1")
                    .bind::<Text, _>(key)
                    .execute(conn)?;
                Ok(Claim::Done(response))
            }
            _ if row.lapsed => {
                diesel::sql_query(
                    "UPDATE worker_ticks SET started_at = now(),
                            lease_until = now() + make_interval(secs => $2)
                      WHERE key = $1",
                )
                .bind::<Text, _>(key)
                .bind::<Integer, _>(i32::try_from(lease_secs).unwrap_or(i32::MAX))
                .execute(conn)?;
                Ok(Claim::Run)
            }
            _ => Ok(Claim::Running),
        }
    })
}

/// Records the answer of a tick this caller claimed.
pub fn finish(
    conn: &mut PgConnection,
    key: &str,
    response: &serde_json::Value,
) -> Result<(), StoreError> {
    diesel::sql_query(
        "UPDATE worker_ticks SET state = 'done', response = $2, finished_at = now() WHERE key = $1",
    )
    .bind::<Text, _>(key)
    .bind::<Jsonb, _>(response)
    .execute(conn)?;
    Ok(())
}

/// Drops the claim of a tick whose call failed on our side: the worker's retry runs it.
pub fn forget(conn: &mut PgConnection, key: &str) -> Result<(), StoreError> {
    diesel::sql_query("DELETE FROM worker_ticks WHERE key = $1 AND state = 'running'")
        .bind::<Text, _>(key)
        .execute(conn)?;
    Ok(())
}

/// Retention (SPEC §9.2): tick records older than `hours`, at most `batch` per statement.
pub fn delete_older_than(
    conn: &mut PgConnection,
    hours: u32,
    batch: u32,
) -> Result<usize, StoreError> {
    Ok(diesel::sql_query(format!(
        "DELETE FROM worker_ticks WHERE key IN (
             SELECT key FROM worker_ticks
              WHERE started_at < now() - make_interval(hours => {hours}) LIMIT {batch})"
    ))
    .execute(conn)?)
}
