//! Readiness and the database-derived metric gauges.

use std::time::Duration;

use serde_json::{Value, json};

use crate::db;
use crate::error::ApiError;
use crate::observability;
use crate::services::Ctx;

/// Each dependency check's bound: a hung PostgreSQL or Redis makes `/readyz` answer 503 within
/// about a second (both checks run at once), well inside a load balancer's probe timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether each batching thread of the federation listener runs (false while restarting).
#[derive(Debug, Clone, Copy)]
pub struct Batchers {
    pub heartbeats: bool,
    pub lookups: bool,
}

/// Ready when PostgreSQL and Redis both answer (1 s each) and the federation listener serves;
/// 503 names what is not.
pub async fn readiness(
    ctx: &Ctx,
    redis: &redis::Client,
    federation_listener: bool,
    batchers: Batchers,
) -> Result<Value, ApiError> {
    let (database, redis) = tokio::join!(check_database(ctx), check_redis(redis));
    let checks = [
        ("postgresql", database),
        ("redis", redis),
        ("federation_listener", federation_listener),
        ("heartbeat_batcher", batchers.heartbeats),
        ("lookup_batcher", batchers.lookups),
    ];
    let down: Vec<&'static str> = checks
        .iter()
        .filter(|(_, up)| !up)
        .map(|(name, _)| *name)
        .collect();
    let details: serde_json::Map<String, Value> = checks
        .iter()
        .map(|(name, up)| ((*name).to_owned(), json!(if *up { "ok" } else { "down" })))
        .collect();
    let details = Value::Object(details);
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

/// Redis answered PING within 1 s, or why not (one line). Readiness and the doctor share it.
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
