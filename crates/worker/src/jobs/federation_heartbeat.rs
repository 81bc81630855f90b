//! `FederationHeartbeatJob`: asks the API to sweep stale peers (SPEC §5). Log lines are exact;
//! the runbook greps for them.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use super::{JobFailed, TickJob};
use crate::schedules::JobKind;
use powernode_client::{Error as CallError, WorkerClient};

const MAX_ATTEMPTS: usize = 3;

pub async fn run(job: &TickJob, api: &WorkerClient) -> Result<(), JobFailed> {
    let tick = job.tick;
    let attempt = || async {
        tracing::info!(tick, "[FederationHeartbeatJob] Starting heartbeat sweep");
        api.heartbeat_sweep().await
    };
    let result = attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_secs(1))
                .with_max_delay(Duration::from_secs(10))
                .with_max_times(MAX_ATTEMPTS - 1),
        )
        .when(CallError::is_retryable)
        .notify(|e, wait| {
            crate::metrics::retried(&job.schedule);
            log_failure(tick, e, Some(wait));
        })
        .await;
    match result {
        Ok(data) => {
            let (swept, degraded) = (data.swept, data.degraded_ids.len());
            tracing::info!(
                tick,
                "[FederationHeartbeatJob] sweep complete: swept={swept} degraded_ids={degraded}"
            );
            Ok(())
        }
        Err(e) => {
            log_failure(tick, &e, None);
            Err(JobFailed {
                job: JobKind::FederationHeartbeat.name(),
                tick,
                reason: e.to_string(),
            })
        }
    }
}

fn log_failure(tick: u64, e: &CallError, retry_in: Option<Duration>) {
    let retry = retry_in.map(|d| format!("{:.1}s", d.as_secs_f64()));
    match e {
        // The API answered, but not with success (the runbook's "returned non-success").
        CallError::Api { .. } | CallError::NotJson { .. } | CallError::Unexpected { .. } => {
            tracing::warn!(
                tick,
                retry_in = retry.as_deref(),
                "[FederationHeartbeatJob] sweep API returned non-success: {e}"
            )
        }
        CallError::NoAnswer { .. } => tracing::error!(
            tick,
            retry_in = retry.as_deref(),
            "[FederationHeartbeatJob] sweep failed: {e}"
        ),
    }
}
