//! `FleetEventRetentionJob` (hourly): asks the API to delete expired fleet events, old
//! governance reports and idempotency keys (SPEC §9.2). The completion line is exact.

use super::{JobFailed, TickJob};
use crate::schedules::JobKind;
use powernode_client::WorkerClient;

pub async fn run(job: &TickJob, api: &WorkerClient) -> Result<(), JobFailed> {
    let tick = job.tick;
    let outcome = super::call(job, JobKind::FleetEventRetention, || async {
        tracing::info!(tick, "[FleetEventRetentionJob] Starting retention");
        api.event_retention().await
    })
    .await?;
    tracing::info!(
        tick,
        batches = outcome.batches,
        governance_reports_deleted = outcome.governance_reports_deleted,
        idempotency_keys_deleted = outcome.idempotency_keys_deleted,
        "[FleetEventRetentionJob] deleted={}",
        outcome.deleted,
    );
    Ok(())
}
