//! `SdwanManagerTickJob` (every 60 s): asks the API to apply timeouts to pending approval
//! requests and execute approved ones (SPEC §7). Executions are claimed row by row in the API,
//! so a retried or overlapping tick never runs an action twice.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use super::{JobFailed, TickJob};
use crate::schedules::JobKind;
use powernode_client::{Error as CallError, WorkerClient};

pub async fn run(job: &TickJob, api: &WorkerClient) -> Result<(), JobFailed> {
    let tick = job.tick;
    let attempt = || async {
        tracing::info!(tick, "[SdwanManagerTickJob] Starting tick");
        api.sdwan_manager_tick().await
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
            tracing::info!(
                tick,
                "[SdwanManagerTickJob] complete: expired={} executed={} failed={} paused={}",
                data.expired,
                data.executed,
                data.failed,
                data.paused,
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
