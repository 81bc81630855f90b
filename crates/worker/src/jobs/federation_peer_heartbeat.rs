//! `FederationPeerHeartbeatJob`: asks the API's PeerClient to perform pending handshakes and
//! heartbeat every enrolled/active/degraded peer over mTLS (SPEC §5, §11).

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde_json::Value;

use super::{JobFailed, TickJob};
use crate::api_client::{ApiClient, CallError};
use crate::schedules::JobKind;

pub const PATH: &str = "/api/v1/system/worker_api/federation/peer_heartbeats";
const MAX_ATTEMPTS: usize = 3;

pub async fn run(job: &TickJob, api: &ApiClient) -> Result<(), JobFailed> {
    let tick = job.tick;
    let attempt = || async {
        tracing::info!(
            tick,
            "[FederationPeerHeartbeatJob] Starting peer heartbeats"
        );
        api.post(PATH).await
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
            let sent = data.get("sent").and_then(Value::as_u64).unwrap_or(0);
            let failed = data
                .get("failed")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for f in &failed {
                tracing::warn!(
                    tick,
                    "[FederationPeerHeartbeatJob] peer {} failed: {}",
                    f.get("peer_id")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("?"),
                    f.get("error")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("?")
                );
            }
            tracing::info!(
                tick,
                "[FederationPeerHeartbeatJob] complete: sent={sent} failed={}",
                failed.len()
            );
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
