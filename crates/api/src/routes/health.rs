//! Liveness and readiness.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use serde_json::json;

use crate::db;
use crate::error::{ApiError, ok};
use crate::startup::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is up and serving.
#[utoipa::path(tag = "health", responses((status = 200, description = "Serving")))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    ok(json!({ "status": "ok" }))
}

/// Ready when PostgreSQL and Redis both answer; 503 names the one that does not.
#[utoipa::path(tag = "health", responses((status = 200, description = "Ready"), (status = 503, description = "`not ready: postgresql|redis`")))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (database, redis) = tokio::join!(check_database(&state), check_redis(&state));
    let mut down = Vec::new();
    if !database {
        down.push("postgresql");
    }
    if !redis {
        down.push("redis");
    }
    let status = |up: bool| if up { "ok" } else { "down" };
    let details = json!({ "postgresql": status(database), "redis": status(redis) });
    if down.is_empty() {
        Ok(ok(json!({ "status": "ready", "checks": details })))
    } else {
        Err(ApiError::NotReady { down, details })
    }
}

async fn check_database(state: &AppState) -> bool {
    let result = tokio::time::timeout(
        CHECK_TIMEOUT,
        db::run(&state.pool, powernode_store::database_now),
    )
    .await;
    match result {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %crate::error::one_line(&e), "readiness: PostgreSQL check failed");
            false
        }
        Err(_) => {
            tracing::warn!("readiness: PostgreSQL check timed out");
            false
        }
    }
}

async fn check_redis(state: &AppState) -> bool {
    let ping = async {
        let mut conn = state.redis.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: Redis check failed");
            false
        }
        Err(_) => {
            tracing::warn!("readiness: Redis check timed out");
            false
        }
    }
}
