//! `FederationGovernanceJob` (hourly): asks the API for a governance scan (SPEC §9.1). The
//! completion line is exact; the runbook greps for it.

use super::{JobFailed, TickJob};
use crate::schedules::JobKind;
use powernode_client::WorkerClient;

pub async fn run(job: &TickJob, api: &WorkerClient) -> Result<(), JobFailed> {
    let tick = job.tick;
    let report = super::call(job, JobKind::FederationGovernance, || async {
        tracing::info!(tick, "[FederationGovernanceJob] Starting governance scan");
        api.governance_scan().await
    })
    .await?;
    tracing::info!(
        tick,
        report_id = %report.id,
        "[FederationGovernanceJob] scan complete: findings={} high={} new={} resolved={}",
        report.counts.low + report.counts.medium + report.counts.high + report.counts.critical,
        report.counts.high + report.counts.critical,
        report.new,
        report.resolved,
    );
    Ok(())
}
