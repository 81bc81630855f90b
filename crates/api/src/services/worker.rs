//! What the worker's ticks do, behind the worker API (the worker never touches PostgreSQL):
//! the heartbeat sweep (SPEC §5), grant maintenance (SPEC §6), job reports and their status.

use powernode_client::worker::{
    GrantMaintenance, JobReportRequest, ScheduleStatusView, SweepResponse,
};
use powernode_domain::{PeerStatus, Permission, liveness};
use powernode_store::operators::Operator;
use powernode_store::worker_status::{self, JobReport, ScheduleStatus};
use uuid::Uuid;

use crate::db::{self, Context as _};
use crate::error::ApiError;
use crate::observability;
use crate::services::{Ctx, Worker, require};

/// Degrades active peers whose heartbeat is older than `stale_after`, one event each.
pub async fn heartbeat_sweep(ctx: &Ctx, _worker: &Worker) -> Result<SweepResponse, ApiError> {
    let stale_after = ctx.settings.stale_after_secs;
    let reason = liveness::degraded_reason(stale_after);
    let started = std::time::Instant::now();
    let outcome = db::run(&ctx.db, move |conn| {
        use powernode_store::Connection as _;
        conn.transaction(|conn| {
            let outcome = powernode_store::peers::sweep_stale(conn, stale_after, &reason)?;
            // The chaos harness kills a replica here: the sweep's writes must roll back whole.
            crate::failpoint::point("heartbeat-sweep-before-commit");
            Ok::<_, powernode_store::StoreError>(outcome)
        })
    })
    .await
    .map_err(|e| {
        observability::sweep("failed", started.elapsed(), 0);
        let cause = match &e {
            ApiError::Internal { cause, .. } => cause.clone(),
            other => other.to_string(),
        };
        tracing::error!(error = %cause, "federation_heartbeat_sweep_failed");
        match e {
            // A stalled database is the 503 SPEC §10 names (the worker retries next tick);
            // anything else is the sweep's own 500.
            unavailable @ ApiError::Unavailable { .. } => unavailable,
            _ => ApiError::SweepFailed,
        }
    })?;
    let degraded = outcome.degraded_ids.len();
    observability::sweep("succeeded", started.elapsed(), degraded);
    observability::transition(PeerStatus::Active, PeerStatus::Degraded, degraded as u64);
    if outcome.degraded_ids.is_empty() {
        tracing::debug!("heartbeat sweep: no stale peers");
    } else {
        tracing::info!(
            swept = outcome.degraded_ids.len(),
            degraded_ids = ?outcome.degraded_ids,
            "heartbeat sweep degraded stale peers"
        );
    }
    Ok(SweepResponse {
        swept: outcome.degraded_ids.len(),
        degraded_ids: outcome.degraded_ids,
        ran_at: outcome.ran_at,
    })
}

pub fn schedule_view(s: ScheduleStatus) -> ScheduleStatusView {
    ScheduleStatusView {
        schedule: s.schedule,
        job: s.job,
        last_outcome: s.last_outcome,
        last_tick: s.last_tick,
        last_worker: s.last_worker,
        last_success_at: s.last_success_at,
        last_failure_at: s.last_failure_at,
        last_error: s.last_error,
        runs: s.runs,
        failures: s.failures,
        interval_secs: s.interval_secs.and_then(|i| u32::try_from(i).ok()),
        updated_at: s.updated_at,
    }
}

fn short(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(ApiError::validation(
            field,
            format!("must be 1-{max} characters"),
        ));
    }
    Ok(())
}

/// Records a job outcome reported by a worker (feeds `worker status` and `/metrics`).
pub async fn report(
    ctx: &Ctx,
    _worker: &Worker,
    r: JobReportRequest,
) -> Result<ScheduleStatusView, ApiError> {
    let succeeded = match r.outcome.as_str() {
        "succeeded" => true,
        "failed" => false,
        _ => {
            return Err(ApiError::validation(
                "outcome",
                "must be succeeded or failed",
            ));
        }
    };
    if !r
        .schedule
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(ApiError::validation(
            "schedule",
            "must be lower-case letters, digits and _",
        ));
    }
    short("schedule", &r.schedule, 64)?;
    short("job", &r.job, 64)?;
    short("worker", &r.worker, 200)?;
    let error = r.error.map(|e| e.chars().take(2000).collect::<String>());
    let interval_secs = match r.interval_secs {
        None => None,
        Some(i) => Some(
            i32::try_from(i)
                .ok()
                .filter(|i| (1..=86_400).contains(i))
                .ok_or_else(|| ApiError::validation("interval_secs", "must be 1-86400"))?,
        ),
    };
    let stored = db::run(&ctx.db, move |conn| {
        worker_status::record(
            conn,
            &JobReport {
                schedule: &r.schedule,
                job: &r.job,
                succeeded,
                tick: r.tick,
                worker: &r.worker,
                error: error.as_deref(),
                interval_secs,
            },
        )
    })
    .await
    .context("worker report failed")?;
    let at = stored.updated_at.unix_timestamp() as f64;
    observability::worker_job(
        &stored.schedule,
        &stored.job,
        if succeeded { "succeeded" } else { "failed" },
        at,
    );
    Ok(schedule_view(stored))
}

/// Last success and failure of each worker schedule, as reported by the workers.
pub async fn status(ctx: &Ctx, operator: &Operator) -> Result<Vec<ScheduleStatusView>, ApiError> {
    require(operator, Permission::FederationRead)?;
    let all = db::run(&ctx.db, worker_status::list)
        .await
        .context("worker status failed")?;
    Ok(all.into_iter().map(schedule_view).collect())
}

/// Renews `auto_renew` grants of live peers once they expire within the renewal window
/// (`POWERNODE_GRANT_RENEW_WINDOW_DAYS`), to the default lifetime.
pub async fn grant_maintenance(ctx: &Ctx, _worker: &Worker) -> Result<GrantMaintenance, ApiError> {
    let lifetimes = ctx.settings.grant_lifetimes;
    let (renewed, ran_at) = db::run(
        &ctx.db,
        move |conn| -> Result<_, powernode_store::StoreError> {
            Ok((
                powernode_store::grants::auto_renew_due(
                    conn,
                    lifetimes.renew_window_days,
                    lifetimes.default_days,
                )?,
                powernode_store::database_now(conn)?,
            ))
        },
    )
    .await
    .context("grant maintenance failed")?;
    let ids: Vec<Uuid> = renewed.iter().map(|g| g.id).collect();
    if !ids.is_empty() {
        tracing::info!(renewed = ids.len(), grant_ids = ?ids, "auto-renewed grants");
    }
    Ok(GrantMaintenance {
        renewed: ids.len(),
        grant_ids: ids,
        ran_at,
    })
}
