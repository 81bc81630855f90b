//! `SdwanManagerTickJob` (every 60 s): asks the API to apply timeouts to pending approval
//! requests and execute approved ones (SPEC §7). Executions are claimed row by row in the API,
//! so a retried or overlapping tick never runs an action twice.

use super::{JobFailed, TickJob};
use crate::schedules::JobKind;
use powernode_client::WorkerClient;

pub async fn run(job: &TickJob, api: &WorkerClient) -> Result<(), JobFailed> {
    let tick = job.tick;
    let data = super::call(job, JobKind::SdwanManagerTick, || async {
        tracing::info!(tick, "[SdwanManagerTickJob] Starting tick");
        api.sdwan_manager_tick().await
    })
    .await?;
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
