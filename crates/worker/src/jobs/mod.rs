//! Jobs, one module each, dispatched from one function.

pub mod federation_governance;
pub mod federation_grant_maintenance;
pub mod federation_heartbeat;
pub mod federation_peer_contact;
pub mod federation_peer_heartbeat;
pub mod fleet_event_retention;
pub mod sdwan_manager_tick;

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde::{Deserialize, Serialize};

use crate::schedules::JobKind;
use powernode_client::{Error as CallError, WorkerClient};

/// The payload of every scheduled job: which schedule, which tick (scheduled unix second).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TickJob {
    pub schedule: String,
    pub tick: u64,
}

/// Runs one job; `Err` means the tick failed after its retries.
pub async fn run(kind: JobKind, job: &TickJob, api: &WorkerClient) -> Result<(), JobFailed> {
    match kind {
        JobKind::FederationHeartbeat => federation_heartbeat::run(job, api).await,
        JobKind::FederationPeerHeartbeat => federation_peer_heartbeat::run(job, api).await,
        JobKind::FederationGrantMaintenance => federation_grant_maintenance::run(job, api).await,
        JobKind::SdwanManagerTick => sdwan_manager_tick::run(job, api).await,
        JobKind::FederationGovernance => federation_governance::run(job, api).await,
        JobKind::FleetEventRetention => fleet_event_retention::run(job, api).await,
    }
}

/// One worker-API call of a tick: at most 3 attempts (only on no answer or a 5xx), each retry
/// logged as `[<Job>] failed: …` with its delay, the final failure as an error.
pub async fn call<T, F, Fut>(job: &TickJob, kind: JobKind, call: F) -> Result<T, JobFailed>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
{
    let (tick, name) = (job.tick, kind.name());
    let result = call
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_secs(1))
                .with_max_delay(Duration::from_secs(10))
                .with_max_times(2),
        )
        .when(CallError::is_retryable)
        .notify(|e, wait| {
            crate::metrics::retried(&job.schedule);
            tracing::warn!(tick, retry_in = %format!("{:.1}s", wait.as_secs_f64()), "[{name}] failed: {e}");
        })
        .await;
    result.map_err(|e| {
        tracing::error!(tick, "[{name}] failed: {e}");
        JobFailed {
            job: name,
            tick,
            reason: e.to_string(),
        }
    })
}

#[derive(Debug, thiserror::Error)]
#[error("{job} failed for tick {tick}: {reason}")]
pub struct JobFailed {
    pub job: &'static str,
    pub tick: u64,
    pub reason: String,
}
