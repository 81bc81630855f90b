//! `worker_schedule_status`: the last outcome of each schedule, as workers report it.

use diesel::prelude::*;
use diesel::upsert::excluded;
use time::OffsetDateTime;

use crate::StoreError;
use crate::schema::worker_schedule_status as wss;

#[derive(Queryable, Selectable, Debug, Clone, PartialEq)]
#[diesel(table_name = wss, check_for_backend(diesel::pg::Pg))]
pub struct ScheduleStatus {
    pub schedule: String,
    pub job: String,
    pub last_outcome: String,
    pub last_tick: i64,
    pub last_worker: String,
    pub last_success_at: Option<OffsetDateTime>,
    pub last_failure_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub runs: i64,
    pub failures: i64,
    pub updated_at: OffsetDateTime,
    pub interval_secs: Option<i32>,
}

/// One job outcome reported by a worker.
pub struct JobReport<'a> {
    pub schedule: &'a str,
    pub job: &'a str,
    pub succeeded: bool,
    pub tick: i64,
    pub worker: &'a str,
    pub error: Option<&'a str>,
    pub interval_secs: Option<i32>,
}

/// Records a report (database clock), keeping the previous success/failure times.
pub fn record(conn: &mut PgConnection, r: &JobReport<'_>) -> Result<ScheduleStatus, StoreError> {
    let outcome = if r.succeeded { "succeeded" } else { "failed" };
    let now = crate::database_now(conn)?;
    let success_at = r.succeeded.then_some(now);
    let failure_at = (!r.succeeded).then_some(now);
    let failures: i64 = i64::from(!r.succeeded);
    Ok(diesel::insert_into(wss::table)
        .values((
            wss::schedule.eq(r.schedule),
            wss::job.eq(r.job),
            wss::last_outcome.eq(outcome),
            wss::last_tick.eq(r.tick),
            wss::last_worker.eq(r.worker),
            wss::last_success_at.eq(success_at),
            wss::last_failure_at.eq(failure_at),
            wss::last_error.eq(r.error),
            wss::runs.eq(1),
            wss::failures.eq(failures),
            wss::updated_at.eq(now),
            wss::interval_secs.eq(r.interval_secs),
        ))
        .on_conflict(wss::schedule)
        .do_update()
        .set((
            wss::job.eq(excluded(wss::job)),
            wss::last_outcome.eq(excluded(wss::last_outcome)),
            wss::last_tick.eq(excluded(wss::last_tick)),
            wss::last_worker.eq(excluded(wss::last_worker)),
            wss::last_success_at.eq(diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
            >(
                "COALESCE(excluded.last_success_at, worker_schedule_status.last_success_at)",
            )),
            wss::last_failure_at.eq(diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
            >(
                "COALESCE(excluded.last_failure_at, worker_schedule_status.last_failure_at)",
            )),
            wss::last_error.eq(diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Text>>(
                "CASE WHEN excluded.last_outcome = 'failed' THEN excluded.last_error ELSE worker_schedule_status.last_error END",
            )),
            wss::runs.eq(wss::runs + 1),
            wss::failures.eq(wss::failures + excluded(wss::failures)),
            wss::updated_at.eq(excluded(wss::updated_at)),
            wss::interval_secs.eq(diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Integer>>(
                "COALESCE(excluded.interval_secs, worker_schedule_status.interval_secs)",
            )),
        ))
        .returning(ScheduleStatus::as_returning())
        .get_result(conn)?)
}

pub fn list(conn: &mut PgConnection) -> Result<Vec<ScheduleStatus>, StoreError> {
    Ok(wss::table
        .select(ScheduleStatus::as_select())
        .order(wss::schedule.asc())
        .load(conn)?)
}
