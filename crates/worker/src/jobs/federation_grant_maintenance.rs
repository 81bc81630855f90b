//! `FederationGrantMaintenanceJob` (hourly): asks the API to renew `auto_renew` grants of live
//! peers 7 days before they expire (SPEC §6, §11).

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use super::{JobFailed, TickJob};
use crate::schedules::JobKind;
use powernode_client::{Error as CallError, WorkerClient};

pub async fn run(job: &TickJob, api: &WorkerClient) -> Result<(), JobFailed> {
    let tick = job.tick;
    let attempt = || async {
        tracing::info!(
            tick,
            "[FederationGrantMaintenanceJob] Starting grant maintenance"
        );
        api.grant_maintenance().await
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
            tracing::warn!(tick, retry_in = %format!("{:.1}s", wait.as_secs_f64()), "[FederationGrantMaintenanceJob] failed: {e}");
        })
        .await;
    match result {
        Ok(data) => {
            let renewed = data.renewed;
            tracing::info!(
                tick,
                "[FederationGrantMaintenanceJob] complete: renewed={renewed}"
            );
            Ok(())
        }
        Err(e) => {
            tracing::error!(tick, "[FederationGrantMaintenanceJob] failed: {e}");
            Err(JobFailed {
                job: JobKind::FederationGrantMaintenance.name(),
                tick,
                reason: e.to_string(),
            })
        }
    }
}
