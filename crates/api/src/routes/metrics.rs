//! `GET /metrics` — Prometheus text on the operator listener.

use actix_web::{HttpResponse, get, web};

use crate::db;
use crate::observability;
use crate::startup::AppState;

/// Prometheus metrics (text exposition format).
#[utoipa::path(tag = "health", responses((status = 200, description = "Prometheus text format")))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let gauges = db::run(&state.pool, |conn| {
        let counts = powernode_store::peers::count_by_status(conn)?;
        let ages =
            powernode_store::peers::heartbeat_ages(conn, observability::HEARTBEAT_AGE_SERIES)?;
        let pending = powernode_store::approvals::pending_count(conn)?;
        Ok((counts, ages, pending))
    })
    .await;
    match gauges {
        Ok((counts, ages, pending)) => {
            observability::set_database_gauges(&counts, &ages);
            observability::approvals_pending(pending);
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: PostgreSQL unavailable; database gauges not refreshed");
            observability::database_down();
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
