//! `FederationPeerHeartbeatJob`: asks the API's PeerClient to perform pending handshakes and
//! heartbeat every enrolled/active/degraded peer over mTLS (SPEC §5, §11).

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use super::{JobFailed, TickJob};
use crate::schedules::JobKind;
use powernode_client::{Error as CallError, WorkerClient};

const MAX_ATTEMPTS: usize = 3;

pub async fn run(job: &TickJob, api: &WorkerClient) -> Result<(), JobFailed> {
    let tick = job.tick;
    let attempt = || async {
        tracing::info!(
            tick,
            "[FederationPeerHeartbeatJob] Starting peer heartbeats"
        );
        api.peer_heartbeats().await
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
            tracing::warn!(tick, retry_in = %format!("{:.1}s", wait.as_secs_f64()), "[FederationPeerHeartbeatJob] failed: {e}");
        })
        .await;
    match result {
        Ok(data) => {
            let (sent, failed) = (data.sent, &data.failed);
            for f in failed {
                tracing::warn!(
                    tick,
                    "[FederationPeerHeartbeatJob] peer {} failed: {}",
                    f.peer_id,
                    f.error
                );
            }
            tracing::info!(
                tick,
                "[FederationPeerHeartbeatJob] complete: sent={sent} failed={}",
                failed.len()
            );
            if data.backing_off > 0 {
                tracing::info!(
                    tick,
                    "[FederationPeerHeartbeatJob] skipped {} peer(s) still backing off after repeated failures",
                    data.backing_off
                );
            }
            Ok(())
        }
        Err(e) => {
            tracing::error!(tick, "[FederationPeerHeartbeatJob] failed: {e}");
            Err(JobFailed {
                job: JobKind::FederationPeerHeartbeat.name(),
                tick,
                reason: e.to_string(),
            })
        }
    }
}
