//! Jobs, one module each, dispatched from one function.

pub mod federation_grant_maintenance;
pub mod federation_heartbeat;
pub mod federation_peer_heartbeat;
pub mod sdwan_manager_tick;

use serde::{Deserialize, Serialize};

use crate::schedules::JobKind;
use powernode_client::WorkerClient;

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
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{job} failed for tick {tick}: {reason}")]
pub struct JobFailed {
    pub job: &'static str,
    pub tick: u64,
    pub reason: String,
}
