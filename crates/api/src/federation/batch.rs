//! Batching for the federation listener's hot paths: concurrent calls become one statement.
//!
//! One thread per batcher blocks for the first call, takes every other one that arrived
//! meanwhile (no timer, so a lone call is never delayed), runs one statement for all of them,
//! and answers each caller. A batcher's statements run one at a time, so heartbeat batches never
//! wait on each other's row locks. Each call's certificate is read in the statement that serves
//! it, so a revocation takes effect on the next call.

use std::collections::HashSet;
use std::sync::mpsc;

use diesel::PgConnection;
use powernode_store::grants::{LookupRequest, ResourceLookup};
use powernode_store::{PgPool, StoreError};
use time::OffsetDateTime;

/// Largest batch; the rest waits for the next statement.
const MAX_BATCH: usize = 512;

type Reply<A> = tokio::sync::oneshot::Sender<Result<A, String>>;

pub struct Batcher<Q, A> {
    tx: mpsc::Sender<(Q, Reply<A>)>,
}

impl<Q: Send + 'static, A: Send + 'static> Batcher<Q, A> {
    /// Starts the batching thread; it ends when the batcher is dropped. `apply` answers a
    /// batch in request order.
    pub fn start<F>(name: &str, pool: PgPool, apply: F) -> std::io::Result<Self>
    where
        F: Fn(&mut PgConnection, &[Q]) -> Result<Vec<A>, StoreError> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<(Q, Reply<A>)>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run(&pool, &rx, &apply))?;
        Ok(Batcher { tx })
    }

    pub async fn call(&self, request: Q) -> Result<A, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send((request, reply))
            .map_err(|_| "batcher stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "batcher dropped the call".to_owned())?
    }
}

fn run<Q, A, F>(pool: &PgPool, rx: &mpsc::Receiver<(Q, Reply<A>)>, apply: &F)
where
    F: Fn(&mut PgConnection, &[Q]) -> Result<Vec<A>, StoreError>,
{
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(next) = rx.try_recv()
        {
            batch.push(next);
        }
        let (requests, replies): (Vec<Q>, Vec<Reply<A>>) = batch.into_iter().unzip();
        let answered = pool
            .get()
            .map_err(|e| e.to_string())
            .and_then(|mut conn| apply(&mut conn, &requests).map_err(|e| e.to_string()));
        match answered {
            Ok(answers) if answers.len() == replies.len() => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Ok(_) => {
                for reply in replies {
                    let _ = reply.send(Err("batch answered the wrong number of calls".to_owned()));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Active peers' plain heartbeats by certificate fingerprint: `Some(at)` when applied, `None`
/// when the full chain must run.
pub type HeartbeatBatcher = Batcher<String, Option<OffsetDateTime>>;

pub fn heartbeats(pool: PgPool) -> std::io::Result<HeartbeatBatcher> {
    Batcher::start(
        "heartbeat-batcher",
        pool,
        |conn, fingerprints: &[String]| {
            let (at, applied) = powernode_store::peers::heartbeat_active_batch(conn, fingerprints)?;
            let applied: HashSet<&String> = applied.iter().collect();
            Ok(fingerprints
                .iter()
                .map(|f| applied.contains(f).then_some(at))
                .collect())
        },
    )
}

/// Resource calls' lookups (certificate, grant, clock, resource).
pub type LookupBatcher = Batcher<LookupRequest, ResourceLookup>;

pub fn lookups(pool: PgPool) -> std::io::Result<LookupBatcher> {
    Batcher::start(
        "lookup-batcher",
        pool,
        powernode_store::grants::resource_lookup_batch,
    )
}
