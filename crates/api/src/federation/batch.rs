//! Heartbeat batching: concurrent heartbeats of active peers become one statement.
//!
//! One thread owns the batching: it blocks for the first heartbeat, takes every other one that
//! arrived meanwhile (no timer, so a lone heartbeat is never delayed), applies them with
//! `federation_heartbeat_active_batch`, and answers each caller. Batches run one at a time, so
//! they never wait on each other's row locks. Each certificate's revocation is read in the
//! statement that applies its heartbeat, as before.

use std::collections::HashSet;
use std::sync::mpsc;

use powernode_store::PgPool;
use time::OffsetDateTime;

/// Largest batch; the rest waits for the next statement.
const MAX_BATCH: usize = 512;

/// What one heartbeat learns: `Some(at)` when applied, `None` when the full chain must run.
type Reply = tokio::sync::oneshot::Sender<Result<Option<OffsetDateTime>, String>>;

pub struct HeartbeatBatcher {
    tx: mpsc::Sender<(String, Reply)>,
}

impl HeartbeatBatcher {
    /// Starts the batching thread; it ends when the batcher is dropped.
    pub fn start(pool: PgPool) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<(String, Reply)>();
        std::thread::Builder::new()
            .name("heartbeat-batcher".to_owned())
            .spawn(move || run(&pool, &rx))?;
        Ok(HeartbeatBatcher { tx })
    }

    /// Applies an active peer's heartbeat by its certificate fingerprint.
    pub async fn beat(&self, fingerprint: String) -> Result<Option<OffsetDateTime>, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send((fingerprint, reply))
            .map_err(|_| "heartbeat batcher stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "heartbeat batcher dropped the call".to_owned())?
    }
}

fn run(pool: &PgPool, rx: &mpsc::Receiver<(String, Reply)>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(next) = rx.try_recv()
        {
            batch.push(next);
        }
        let fingerprints: Vec<String> = batch.iter().map(|(f, _)| f.clone()).collect();
        let applied = pool.get().map_err(|e| e.to_string()).and_then(|mut conn| {
            powernode_store::peers::heartbeat_active_batch(&mut conn, &fingerprints)
                .map_err(|e| e.to_string())
        });
        match applied {
            Ok((at, done)) => {
                let done: HashSet<String> = done.into_iter().collect();
                for (fingerprint, reply) in batch {
                    let _ = reply.send(Ok(done.contains(&fingerprint).then_some(at)));
                }
            }
            Err(e) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
