//! Endpoints the worker calls; every state change the worker causes goes through here.

use actix_web::{HttpResponse, get, post, web};
use powernode_domain::liveness;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::WorkerAuth;
use crate::db;
use crate::error::{ApiError, ok};
use crate::observability;
use crate::startup::AppState;
use powernode_domain::PeerStatus;
use powernode_store::worker_status::{self, JobReport, ScheduleStatus};

#[derive(Serialize, utoipa::ToSchema)]
pub struct SweepResponse {
    /// Number of peers degraded (= `degraded_ids.len()`).
    pub swept: usize,
    pub degraded_ids: Vec<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub ran_at: OffsetDateTime,
}

/// Degrade active peers whose heartbeat is stale (SPEC §5). No body required.
#[utoipa::path(
    tag = "worker",
    responses(
        (status = 200, body = SweepResponse),
        (status = 401, description = "`Worker token required` / `Invalid or inactive worker token`"),
        (status = 500, description = "`federation_heartbeat_sweep_failed: internal error`")
    ),
    security(("worker_token" = []))
)]
#[post("/federation/heartbeat_sweep")]
pub async fn heartbeat_sweep(
    _auth: WorkerAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let stale_after = state.settings.stale_after_secs;
    let reason = liveness::degraded_reason(stale_after);
    let started = std::time::Instant::now();
    let outcome = db::run(&state.pool, move |conn| {
        powernode_store::peers::sweep_stale(conn, stale_after, &reason)
    })
    .await
    .map_err(|e| {
        observability::sweep("failed", started.elapsed(), 0);
        tracing::error!(error = %crate::error::one_line(&e), "federation_heartbeat_sweep_failed");
        ApiError::SweepFailed
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
    Ok(ok(SweepResponse {
        swept: outcome.degraded_ids.len(),
        degraded_ids: outcome.degraded_ids,
        ran_at: outcome.ran_at,
    }))
}

/// One job outcome, sent by the worker after every tick it ran.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobReportRequest {
    /// Schedule name, e.g. `federation_heartbeat`.
    pub schedule: String,
    /// Job name, e.g. `FederationHeartbeatJob`.
    pub job: String,
    /// Scheduled unix second of the tick.
    pub tick: i64,
    /// `succeeded` or `failed`.
    pub outcome: String,
    /// The reporting worker's name (`<name>-<schedule>-<pid>-<boot id>`).
    pub worker: String,
    pub attempts: Option<u32>,
    pub error: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ScheduleStatusView {
    pub schedule: String,
    pub job: String,
    pub last_outcome: String,
    pub last_tick: i64,
    pub last_worker: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_success_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_failure_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub runs: i64,
    pub failures: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<ScheduleStatus> for ScheduleStatusView {
    fn from(s: ScheduleStatus) -> Self {
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
            updated_at: s.updated_at,
        }
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

/// Record a job outcome reported by a worker (feeds `worker status` and `/metrics`).
#[utoipa::path(
    tag = "worker",
    request_body = JobReportRequest,
    responses((status = 200, body = ScheduleStatusView), (status = 401), (status = 422)),
    security(("worker_token" = []))
)]
#[post("/report")]
pub async fn report(
    _auth: WorkerAuth,
    state: web::Data<AppState>,
    body: web::Json<JobReportRequest>,
) -> Result<HttpResponse, ApiError> {
    let r = body.into_inner();
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
    let stored = db::run(&state.pool, move |conn| {
        worker_status::record(
            conn,
            &JobReport {
                schedule: &r.schedule,
                job: &r.job,
                succeeded,
                tick: r.tick,
                worker: &r.worker,
                error: error.as_deref(),
            },
        )
    })
    .await
    .map_err(|e| crate::error::internal("worker report failed", e))?;
    let at = stored.updated_at.unix_timestamp() as f64;
    observability::worker_job(
        &stored.schedule,
        &stored.job,
        if succeeded { "succeeded" } else { "failed" },
        at,
    );
    Ok(ok(ScheduleStatusView::from(stored)))
}

/// Last success and failure of each worker schedule, as reported by the workers.
#[utoipa::path(
    tag = "worker",
    responses((status = 200, body = Vec<ScheduleStatusView>), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[get("/status")]
pub async fn status(
    auth: crate::auth::OperatorAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(powernode_domain::Permission::FederationRead)?;
    let all = db::run(&state.pool, worker_status::list)
        .await
        .map_err(|e| crate::error::internal("worker status failed", e))?;
    Ok(ok(all
        .into_iter()
        .map(ScheduleStatusView::from)
        .collect::<Vec<_>>()))
}

/// PeerClient pass (SPEC §5): pending handshakes, then heartbeats to every enrolled, active or
/// degraded peer over mTLS. Answers `{sent, failed: [{peer_id, error}], ran_at}`.
#[utoipa::path(
    tag = "worker",
    responses((status = 200, description = "`{sent, failed, ran_at}`"), (status = 401)),
    security(("worker_token" = []))
)]
#[post("/federation/peer_heartbeats")]
pub async fn peer_heartbeats(
    _auth: WorkerAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let run = crate::services::federation::run_peer_heartbeats(&state).await?;
    for f in &run.failed {
        tracing::warn!(peer_id = %f["peer_id"], "[PeerClient] call failed: {}", f["error"].as_str().unwrap_or_default());
    }
    Ok(ok(run))
}

/// Grant maintenance (SPEC §6): renews `auto_renew` grants of live peers 7 days before expiry.
#[utoipa::path(
    tag = "worker",
    responses((status = 200, description = "`{renewed, grant_ids, ran_at}`"), (status = 401)),
    security(("worker_token" = []))
)]
#[post("/federation/grant_maintenance")]
pub async fn grant_maintenance(
    _auth: WorkerAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (renewed, ran_at) = db::run(&state.pool, |conn| {
        Ok((
            powernode_store::grants::auto_renew_due(conn, 7, 30)?,
            powernode_store::database_now(conn)?,
        ))
    })
    .await
    .map_err(|e| crate::error::internal("grant maintenance failed", e))?;
    let ids: Vec<Uuid> = renewed.iter().map(|g| g.id).collect();
    if !ids.is_empty() {
        tracing::info!(renewed = ids.len(), grant_ids = ?ids, "auto-renewed grants");
    }
    Ok(ok(serde_json::json!({
        "renewed": ids.len(),
        "grant_ids": ids,
        "ran_at": ran_at.format(&time::format_description::well_known::Rfc3339).ok(),
    })))
}

/// The SDWAN Manager tick (SPEC §7): applies timeout actions to pending requests past expiry
/// and, unless the agent is paused, executes each approved request exactly once.
#[utoipa::path(
    tag = "worker",
    responses((status = 200, body = crate::services::approvals::TickOutcome), (status = 401)),
    security(("worker_token" = []))
)]
#[post("/sdwan_manager/tick")]
pub async fn sdwan_manager_tick(
    _auth: WorkerAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let outcome = crate::services::approvals::tick(&state).await?;
    if outcome.expired + outcome.executed + outcome.failed > 0 {
        tracing::info!(
            expired = outcome.expired,
            executed = outcome.executed,
            failed = outcome.failed,
            paused = outcome.paused,
            "SDWAN Manager tick"
        );
    }
    Ok(ok(outcome))
}
