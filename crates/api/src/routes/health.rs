//! Liveness and readiness.

use actix_web::{HttpResponse, get, web};
use serde_json::json;

use crate::error::ApiError;
use crate::render::ok;
use crate::services::health as service;
use crate::startup::AppState;

/// The process is up and serving.
#[utoipa::path(tag = "health", responses((status = 200, description = "Serving")))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    ok(json!({ "status": "ok" }))
}

/// Ready when PostgreSQL and Redis both answer and the federation listener serves; 503 names
/// what is not.
#[utoipa::path(tag = "health", responses((status = 200, description = "Ready"), (status = 503, description = "`not ready: <postgresql|redis|federation_listener|heartbeat_batcher|lookup_batcher, …>`; `details` has each check as `ok` or `down`")))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(ok(service::readiness(
        &state,
        &state.redis,
        state.federation_listener_up(),
        crate::services::health::Batchers {
            heartbeats: state.heartbeats.is_up(),
            lookups: state.lookups.is_up(),
        },
    )
    .await?))
}
