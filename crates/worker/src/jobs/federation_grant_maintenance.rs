//! `FederationGrantMaintenanceJob` (hourly): asks the API to renew `auto_renew` grants of live
//! peers 7 days before they expire (SPEC §6, §11).

use super::{JobFailed, TickJob};
use crate::schedules::JobKind;
use powernode_client::WorkerClient;

pub async fn run(job: &TickJob, api: &WorkerClient) -> Result<(), JobFailed> {
    let tick = job.tick;
    let data = super::call(job, JobKind::FederationGrantMaintenance, || async {
        tracing::info!(
            tick,
            "[FederationGrantMaintenanceJob] Starting grant maintenance"
        );
        api.grant_maintenance().await
    })
    .await?;
    tracing::info!(
        tick,
        "[FederationGrantMaintenanceJob] complete: renewed={}",
        data.renewed
    );
    Ok(())
}
