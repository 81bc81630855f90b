//! `GET /metrics` — Prometheus text on the operator listener.

use actix_web::{HttpResponse, get, web};

use crate::services::health;
use crate::startup::AppState;

/// Prometheus metrics (text exposition format).
#[utoipa::path(tag = "health", responses((status = 200, description = "Prometheus text format")))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let text = health::metrics_text(&state, &state.metrics).await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}
