//! Endpoints the worker calls; every state change the worker causes goes through here.

use actix_web::{HttpResponse, post, web};
use powernode_domain::liveness;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::WorkerAuth;
use crate::db;
use crate::error::{ApiError, ok};
use crate::startup::AppState;

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
    let outcome = db::run(&state.pool, move |conn| {
        powernode_store::peers::sweep_stale(conn, stale_after, &reason)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "federation_heartbeat_sweep_failed");
        ApiError::SweepFailed
    })?;
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
