//! Readiness and the database-derived metric gauges.

use std::time::Duration;

use serde_json::{Value, json};

use crate::db;
use crate::error::ApiError;
use crate::observability;
use crate::services::Ctx;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Ready when PostgreSQL and Redis both answer (2 s each) and the federation listener serves;
/// 503 names what is not.
pub async fn readiness(
    ctx: &Ctx,
    redis: &redis::Client,
    federation_listener: bool,
) -> Result<Value, ApiError> {
    let (database, redis) = tokio::join!(check_database(ctx), check_redis(redis));
    let mut down = Vec::new();
    if !database {
        down.push("postgresql");
    }
    if !redis {
        down.push("redis");
    }
    if !federation_listener {
        down.push("federation_listener");
    }
    let status = |up: bool| if up { "ok" } else { "down" };
    let details = json!({
        "postgresql": status(database),
        "redis": status(redis),
        "federation_listener": status(federation_listener),
    });
    if down.is_empty() {
        Ok(json!({ "status": "ready", "checks": details }))
    } else {
        Err(ApiError::NotReady { down, details })
    }
}

/// `/metrics`: the recorder's series after refreshing the gauges every replica reports from
/// the shared database (peers by status, pending approvals), plus the per-peer heartbeat ages
/// read for this scrape only.
pub async fn metrics_text(
    ctx: &Ctx,
    recorder: &metrics_exporter_prometheus::PrometheusHandle,
) -> String {
    let ages = refresh_gauges(ctx).await;
    let mut text = recorder.render();
    text.push_str(&observability::render_heartbeat_ages(&ages));
    text
}

/// Refreshes the database gauges and returns the heartbeat ages; marks the database down when
/// PostgreSQL does not answer.
async fn refresh_gauges(ctx: &Ctx) -> Vec<(uuid::Uuid, f64)> {
    let gauges = db::run(&ctx.db, |conn| -> Result<_, powernode_store::StoreError> {
        let counts = powernode_store::peers::count_by_status(conn)?;
        let ages =
            powernode_store::peers::heartbeat_ages(conn, observability::HEARTBEAT_AGE_SERIES)?;
        let pending = powernode_store::approvals::pending_count(conn)?;
        Ok((counts, ages, pending))
    })
    .await;
    match gauges {
        Ok((counts, ages, pending)) => {
            observability::set_database_gauges(&counts);
            observability::approvals_pending(pending);
            ages
        }
        Err(e) => {
            tracing::warn!(error = %e.detail(), "metrics: PostgreSQL unavailable; database gauges not refreshed");
            observability::database_down();
            Vec::new()
        }
    }
}

async fn check_database(ctx: &Ctx) -> bool {
    let result = tokio::time::timeout(
        CHECK_TIMEOUT,
        db::run(&ctx.db, powernode_store::database_now),
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

/// Redis answered PING within 2 s, or why not (one line). Readiness and the doctor share it.
pub async fn ping_redis(redis: &redis::Client) -> Result<(), String> {
    let ping = async {
        let mut conn = redis.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(crate::error::one_line(&e)),
        Err(_) => Err(format!(
            "no answer to PING within {} s",
            CHECK_TIMEOUT.as_secs()
        )),
    }
}

async fn check_redis(redis: &redis::Client) -> bool {
    match ping_redis(redis).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "readiness: Redis check failed");
            false
        }
    }
}
