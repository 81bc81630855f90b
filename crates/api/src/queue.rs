//! The API's one producer on the worker queue: fast establishment's `FederationPeerContactJob`
//! (SPEC §4). Everything else the worker does comes from its own cron producers.
//!
//! Enqueueing never holds up or undoes what triggered it: the accept or handshake has
//! committed before the job is offered, the push runs in the background with a short bound, and
//! a failure (Redis down or stalled) is logged — the next `federation_peer_heartbeat` tick does
//! the same work.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_redis::{Config as RedisConfig, RedisStorage};
use powernode_client::worker::ContactJob;
use redis::aio::ConnectionManager;
use secrecy::{ExposeSecret, SecretString};

/// The same key lifetime as the worker's tick keys (SPEC §11: 1 h).
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(3600);
/// A push (connect included) that takes longer than this is abandoned and logged.
const PUSH_BOUND: Duration = Duration::from_secs(2);

pub struct JobQueue {
    url: SecretString,
    prefix: String,
    /// Connected on first use (the API starts without Redis); the manager reconnects itself.
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
}

impl JobQueue {
    pub fn new(url: SecretString, prefix: String) -> Arc<Self> {
        Arc::new(JobQueue {
            url,
            prefix,
            conn: tokio::sync::Mutex::new(None),
        })
    }

    /// Offers a contact job for `peer_id` in the background; the outcome is logged.
    pub fn contact(self: &Arc<Self>, peer_id: uuid::Uuid, reason: &'static str) {
        let queue = self.clone();
        let job = ContactJob {
            peer_id,
            reason: reason.to_owned(),
        };
        tokio::spawn(async move {
            let key = job.idempotency_key();
            match tokio::time::timeout(PUSH_BOUND, queue.push(job)).await {
                Ok(Ok(())) => {
                    tracing::info!(peer_id = %peer_id, key = %key, "{} enqueued", ContactJob::NAME);
                }
                Ok(Err(e)) => tracing::warn!(
                    peer_id = %peer_id,
                    "{} not enqueued ({e}); the next federation_peer_heartbeat tick catches up",
                    ContactJob::NAME
                ),
                Err(_) => tracing::warn!(
                    peer_id = %peer_id,
                    "{} not enqueued (Redis did not answer within {} s); the next federation_peer_heartbeat tick catches up",
                    ContactJob::NAME,
                    PUSH_BOUND.as_secs()
                ),
            }
        });
    }

    async fn push(&self, job: ContactJob) -> Result<(), String> {
        let conn = self.connection().await?;
        let config = RedisConfig::default()
            .queue(ContactJob::redis_queue(&self.prefix))
            .idempotency_ttl(Some(IDEMPOTENCY_TTL));
        let mut storage = RedisStorage::<ContactJob>::new(conn).with_config(config);
        let key = job.idempotency_key();
        let task = TaskBuilder::new(job).idempotency_key(&key).build();
        storage.push_task(task).await.map_err(|e| e.to_string())
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let conn = apalis_redis::connect(self.url.expose_secret())
            .await
            .map_err(|e| format!("Redis is unreachable: {e}"))?;
        *slot = Some(conn.clone());
        Ok(conn)
    }
}
