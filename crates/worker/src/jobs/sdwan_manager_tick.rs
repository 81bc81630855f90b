//! `SdwanManagerTickJob` (every 60 s): asks the API to apply timeouts to pending approval
//! requests and execute approved ones (SPEC §7). Executions are claimed row by row in the API,
//! so a retried or overlapping tick never runs an action twice.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use super::{JobFailed, TickJob};
use crate::api_client::{ApiClient, CallError};
use crate::schedules::JobKind;

pub const PATH: &str = "/api/v1/system/worker_api/sdwan_manager/tick";

fn count(data: &serde_json::Value, key: &str) -> u64 {
    data.get(key)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

pub async fn run(job: &TickJob, api: &ApiClient) -> Result<(), JobFailed> {
    let tick = job.tick;
    let attempt = || async {
        tracing::info!(tick, "[SdwanManagerTickJob] Starting tick");
        api.post(PATH).await
    };
    let result = attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_secs(1))
                .with_max_delay(Duration::from_secs(10))
                .with_max_times(2),
        )
        .when(CallError::is_retryable)
        .notify(|e, wait| {
            crate::metrics::retried(&job.schedule);
            tracing::warn!(tick, retry_in = %format!("{:.1}s", wait.as_secs_f64()), "[SdwanManagerTickJob] failed: {e}");
        })
        .await;
    match result {
        Ok(data) => {
            let paused = data
                .get("paused")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false);
            tracing::info!(
                tick,
                "[SdwanManagerTickJob] complete: expired={} executed={} failed={} paused={paused}",
                count(&data, "expired"),
                count(&data, "executed"),
                count(&data, "failed"),
            );
            Ok(())
        }
        Err(e) => {
            tracing::error!(tick, "[SdwanManagerTickJob] failed: {e}");
            Err(JobFailed {
                job: JobKind::SdwanManagerTick.name(),
                tick,
                reason: e.to_string(),
            })
        }
    }
}
