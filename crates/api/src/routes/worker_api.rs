//! Endpoints the worker calls; every state change the worker causes goes through here. Each
//! handler calls one service function.

use actix_web::{HttpResponse, get, post, web};

use crate::auth::{OperatorAuth, Tick, WorkerAuth};
use crate::error::ApiError;
use crate::render::ok;
use crate::services::ticks::once;
use crate::services::worker as service;
use crate::startup::AppState;
use powernode_client::worker::{JobReportRequest, ScheduleStatusView, SweepResponse, TickOutcome};

/// Degrade active peers whose heartbeat is stale (SPEC §5). No body required.
#[utoipa::path(
    tag = "worker",
    params(("X-Powernode-Tick" = Option<String>, Header, description = "`<schedule>:<tick>` of the worker tick making this call: applied once per key, a repeat replays the first answer")),
    responses(
        (status = 409, description = "`tick <key> is being applied by another call`"),
        (status = 422, description = "malformed `X-Powernode-Tick`"),
        (status = 200, body = SweepResponse),
        (status = 401, description = "`Worker token required` / `Invalid or inactive worker token`"),
        (status = 500, description = "`federation_heartbeat_sweep_failed: internal error`")
    ),
    security(("worker_token" = []))
)]
#[post("/federation/heartbeat_sweep")]
pub async fn heartbeat_sweep(
    auth: WorkerAuth,
    tick: Tick,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(once(&state, tick.key(), || {
        service::heartbeat_sweep(&state, &auth.0)
    })
    .await?))
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
    auth: WorkerAuth,
    state: web::Data<AppState>,
    body: web::Json<JobReportRequest>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(
        service::report(&state, &auth.0, body.into_inner()).await?
    ))
}

/// Last success and failure of each worker schedule, as reported by the workers.
#[utoipa::path(
    tag = "worker",
    responses((status = 200, body = Vec<ScheduleStatusView>), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[get("/status")]
pub async fn status(
    auth: OperatorAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(service::status(&state, &auth.0).await?))
}

/// PeerClient pass (SPEC §5): pending handshakes, then heartbeats to every enrolled, active or
/// degraded peer over mTLS. Answers `{sent, failed: [{peer_id, error}], ran_at}`.
#[utoipa::path(
    tag = "worker",
    params(("X-Powernode-Tick" = Option<String>, Header, description = "`<schedule>:<tick>` of the worker tick making this call: applied once per key, a repeat replays the first answer")),
    responses(
        (status = 409, description = "`tick <key> is being applied by another call`"),
        (status = 422, description = "malformed `X-Powernode-Tick`"),(status = 200, description = "`{sent, failed, ran_at}`"), (status = 401)),
    security(("worker_token" = []))
)]
#[post("/federation/peer_heartbeats")]
pub async fn peer_heartbeats(
    auth: WorkerAuth,
    tick: Tick,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(once(&state, tick.key(), || {
        crate::services::federation::run_peer_heartbeats(&state, &auth.0)
    })
    .await?))
}

/// Fast establishment (SPEC §4), the `FederationPeerContactJob`: the handshake when it is ours
/// to do, then a heartbeat, for one peer now. `reason`: `accept` or `handshake`.
#[utoipa::path(
    tag = "worker",
    params(("id" = uuid::Uuid, Path), ("reason" = String, Query)),
    responses(
        (status = 200, body = powernode_client::worker::ContactOutcome),
        (status = 401), (status = 404), (status = 422),
        (status = 502, description = "`contact with peer <id> failed: <error>`")
    ),
    security(("worker_token" = []))
)]
#[post("/federation/peers/{id}/contact")]
pub async fn contact_peer(
    auth: WorkerAuth,
    state: web::Data<AppState>,
    id: web::Path<powernode_domain::PeerId>,
    query: web::Query<ContactQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(crate::services::federation::contact_now(
        &state,
        &auth.0,
        id.into_inner().uuid(),
        &query.reason,
    )
    .await?))
}

#[derive(serde::Deserialize)]
pub struct ContactQuery {
    reason: String,
}

/// Grant maintenance (SPEC §6): renews `auto_renew` grants of live peers 7 days before expiry.
#[utoipa::path(
    tag = "worker",
    params(("X-Powernode-Tick" = Option<String>, Header, description = "`<schedule>:<tick>` of the worker tick making this call: applied once per key, a repeat replays the first answer")),
    responses(
        (status = 409, description = "`tick <key> is being applied by another call`"),
        (status = 422, description = "malformed `X-Powernode-Tick`"),(status = 200, description = "`{renewed, grant_ids, ran_at}`"), (status = 401)),
    security(("worker_token" = []))
)]
#[post("/federation/grant_maintenance")]
pub async fn grant_maintenance(
    auth: WorkerAuth,
    tick: Tick,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(once(&state, tick.key(), || {
        service::grant_maintenance(&state, &auth.0)
    })
    .await?))
}

/// The SDWAN Manager tick (SPEC §7): applies timeout actions to pending requests past expiry
/// and, unless the agent is paused, executes each approved request exactly once.
#[utoipa::path(
    tag = "worker",
    params(("X-Powernode-Tick" = Option<String>, Header, description = "`<schedule>:<tick>` of the worker tick making this call: applied once per key, a repeat replays the first answer")),
    responses(
        (status = 409, description = "`tick <key> is being applied by another call`"),
        (status = 422, description = "malformed `X-Powernode-Tick`"),(status = 200, body = TickOutcome), (status = 401)),
    security(("worker_token" = []))
)]
#[post("/sdwan_manager/tick")]
pub async fn sdwan_manager_tick(
    auth: WorkerAuth,
    tick: Tick,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(once(&state, tick.key(), || {
        crate::services::approvals::tick(&state, &auth.0)
    })
    .await?))
}

/// The `federation_governance` schedule (SPEC §9.1): one governance scan, answered as its report.
#[utoipa::path(
    tag = "worker",
    params(("X-Powernode-Tick" = Option<String>, Header, description = "`<schedule>:<tick>` of the worker tick making this call: applied once per key, a repeat replays the first answer")),
    responses(
        (status = 409, description = "`tick <key> is being applied by another call`"),
        (status = 422, description = "malformed `X-Powernode-Tick`"),(status = 200, body = powernode_client::governance::ReportSummary), (status = 401)),
    security(("worker_token" = []))
)]
#[post("/federation/governance_scan")]
pub async fn governance_scan(
    auth: WorkerAuth,
    tick: Tick,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(once(&state, tick.key(), || {
        crate::services::governance::scheduled_scan(&state, &auth.0)
    })
    .await?))
}

/// The `fleet_event_retention` schedule (SPEC §9.2): expired events in batches of at most
/// 10,000 rows, old governance reports and idempotency keys.
#[utoipa::path(
    tag = "worker",
    params(("X-Powernode-Tick" = Option<String>, Header, description = "`<schedule>:<tick>` of the worker tick making this call: applied once per key, a repeat replays the first answer")),
    responses(
        (status = 409, description = "`tick <key> is being applied by another call`"),
        (status = 422, description = "malformed `X-Powernode-Tick`"),(status = 200, body = powernode_client::governance::RetentionOutcome), (status = 401)),
    security(("worker_token" = []))
)]
#[post("/fleet_events/retention")]
pub async fn event_retention(
    auth: WorkerAuth,
    tick: Tick,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(once(&state, tick.key(), || {
        crate::services::governance::retention(&state, &auth.0)
    })
    .await?))
}
