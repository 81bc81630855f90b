//! `FederationPeerContactJob` (SPEC §4, fast establishment): put on the `system` queue by the
//! API when an accept or a handshake commits; asks the API's PeerClient to contact that one
//! peer now (handshake if ours to do, then a heartbeat), so a new pair is `active` within
//! seconds instead of up to two `federation_peer_heartbeat` ticks.

use std::time::Duration;

use backon::{ConstantBuilder, Retryable};
use powernode_client::worker::ContactJob;
use powernode_client::{Error as CallError, WorkerClient};

/// The accepting side may record its handshake a moment after our first heartbeat arrives;
/// two quick retries cover that, and a later tick covers anything longer.
const ATTEMPTS: usize = 3;
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Runs one contact job; `Err` after its attempts (logged), so the caller can abort the task.
pub async fn run(job: &ContactJob, api: &WorkerClient) -> Result<(), CallError> {
    let name = ContactJob::NAME;
    let peer = job.peer_id;
    let result = (|| api.contact_peer(peer, &job.reason))
        .retry(
            ConstantBuilder::default()
                .with_delay(RETRY_DELAY)
                .with_max_times(ATTEMPTS - 1),
        )
        .when(CallError::is_retryable)
        .notify(|e, wait| {
            tracing::warn!(reason = %job.reason, "[{name}] peer {peer}: {e}; retrying in {:.1}s", wait.as_secs_f64());
        })
        .await;
    match result {
        Ok(done) => {
            tracing::info!(reason = %job.reason, "[{name}] peer {peer}: {} (status {})", done.outcome, done.status);
            Ok(())
        }
        Err(e) => {
            tracing::warn!(reason = %job.reason, "[{name}] peer {peer}: failed: {e}; the next federation_peer_heartbeat tick retries");
            Err(e)
        }
    }
}
