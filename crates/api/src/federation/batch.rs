//! Batching for the federation listener's hot paths: concurrent calls become one statement.
//!
//! Each batcher's queue is bounded (`POWERNODE_FEDERATION_BATCH_QUEUE`): beyond it a call is
//! refused at once with 503 `busy` and `Retry-After`, so a stalled database costs bounded
//! memory. A supervisor thread restarts the batching thread if it dies (a panic), with
//! backoff, and `/readyz` reports the batcher down meanwhile.
//!
//! A batching thread blocks for the first call, takes every other one that arrived meanwhile
//! (no timer, so a lone call is never delayed), runs one statement for all of them, and answers
//! each caller. The heartbeat batcher has one thread, so its statements run one at a time and
//! heartbeat batches never wait on each other's row locks; the lookup batcher only reads, and
//! runs `LOOKUP_THREADS` so one batch is gathered and sent while another is in PostgreSQL.
//! Each call's certificate is read in the statement that serves it, so a revocation takes
//! effect on the next call.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use diesel::PgConnection;
use powernode_store::grants::{LookupRequest, ResourceLookup};
use powernode_store::{PgPool, Stall, StoreError};
use time::OffsetDateTime;

use crate::db::Database;
use crate::error::ApiError;

/// Largest batch; the rest waits for the next statement.
const MAX_BATCH: usize = 512;

/// A call's answer, or why it failed as one line (`Database::classify` reads it on the caller's
/// side: errors are not `Clone`, and one failure may answer a whole batch).
type Reply<A> = tokio::sync::oneshot::Sender<Result<A, String>>;

pub struct Batcher<Q, A> {
    name: &'static str,
    tx: mpsc::SyncSender<(Q, Reply<A>)>,
    db: Database,
    /// Batching threads being restarted after they died (`/readyz` reports the batcher down
    /// while any is).
    down: Arc<AtomicUsize>,
}

/// Threads of the lookup batcher. The profile of resource reads (issue 18) showed the machine
/// partly idle while one batch at a time made the round trip to PostgreSQL; a second thread
/// gathers the next batch meanwhile.
pub const LOOKUP_THREADS: usize = 2;

/// The first restart waits this long; each consecutive one twice as long, up to `MAX_RESTART_DELAY`.
const RESTART_DELAY: Duration = Duration::from_millis(500);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);

impl<Q: Send + 'static, A: Send + 'static> Batcher<Q, A> {
    /// Starts `threads` batching threads, each under a supervisor that restarts it if it dies
    /// (a panic in `apply`); all end when the batcher is dropped. `apply` answers a batch in
    /// request order. At most `capacity` calls wait; more are refused at once as busy.
    pub fn start<F>(
        name: &'static str,
        db: &Database,
        capacity: usize,
        threads: usize,
        apply: F,
    ) -> std::io::Result<Self>
    where
        F: Fn(&mut PgConnection, &[Q]) -> Result<Vec<A>, StoreError> + Send + Sync + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<(Q, Reply<A>)>(capacity.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let (pool, checkout) = (db.pool().clone(), db.timeout());
        let apply = Arc::new(apply);
        let down = Arc::new(AtomicUsize::new(0));
        let spawn = {
            let (rx, pool, apply) = (rx.clone(), pool.clone(), apply.clone());
            move || {
                let (rx, pool, apply) = (rx.clone(), pool.clone(), apply.clone());
                std::thread::Builder::new()
                    .name(name.to_owned())
                    .spawn(move || run(name, &pool, checkout, &rx, &*apply))
            }
        };
        for _ in 0..threads.max(1) {
            let mut worker = spawn()?;
            let (spawn, watched) = (spawn.clone(), down.clone());
            std::thread::Builder::new()
                .name(format!("{name}-supervisor"))
                .spawn(move || {
                    let mut delay = RESTART_DELAY;
                    loop {
                        if worker.join().is_ok() {
                            // The queue closed: the batcher was dropped.
                            return;
                        }
                        watched.fetch_add(1, Ordering::SeqCst);
                        tracing::error!(
                            batcher = name,
                            "batcher thread died; restarting it in {} ms (readiness reports it down meanwhile)",
                            delay.as_millis()
                        );
                        std::thread::sleep(delay);
                        delay = (delay * 2).min(MAX_RESTART_DELAY);
                        match spawn() {
                            Ok(next) => {
                                worker = next;
                                watched.fetch_sub(1, Ordering::SeqCst);
                                tracing::info!(batcher = name, "batcher thread restarted");
                            }
                            Err(e) => {
                                tracing::error!(batcher = name, "cannot restart the batcher thread: {e}");
                                return;
                            }
                        }
                    }
                })?;
        }
        Ok(Batcher {
            name,
            tx,
            db: db.clone(),
            down,
        })
    }

    /// Whether every batching thread is running (false while one is being restarted).
    pub fn is_up(&self) -> bool {
        self.down.load(Ordering::SeqCst) == 0
    }

    /// Answers one call within the bound of one database call: a full queue is 503 `busy`, a
    /// batch that does not finish in time (a stalled database) or a thread that died with the
    /// call 503 `database unavailable`.
    pub async fn call(&self, request: Q) -> Result<A, ApiError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx.try_send((request, reply)).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => {
                tracing::warn!(batcher = self.name, "queue full; call refused as busy");
                self.db.unavailable(Stall::Busy)
            }
            mpsc::TrySendError::Disconnected(_) => {
                tracing::error!(batcher = self.name, "batcher stopped; call refused");
                self.db.unavailable(Stall::Unavailable)
            }
        })?;
        match tokio::time::timeout(self.db.timeout(), answer).await {
            Ok(Ok(Ok(answer))) => Ok(answer),
            Ok(Ok(Err(e))) => Err(self.db.classify(crate::error::internal(self.name, e))),
            Ok(Err(_)) => {
                tracing::warn!(
                    batcher = self.name,
                    "batcher thread died with this call; answered 503 (the supervisor restarts it)"
                );
                Err(self.db.unavailable(Stall::Unavailable))
            }
            Err(_) => {
                tracing::warn!(
                    batcher = self.name,
                    "database unavailable (no answer within POWERNODE_DATABASE_TIMEOUT_SECS)"
                );
                Err(self.db.unavailable(Stall::Unavailable))
            }
        }
    }
}

fn run<Q, A, F>(
    name: &'static str,
    pool: &PgPool,
    checkout: Duration,
    rx: &Mutex<mpsc::Receiver<(Q, Reply<A>)>>,
    apply: &F,
) where
    F: Fn(&mut PgConnection, &[Q]) -> Result<Vec<A>, StoreError>,
{
    loop {
        // The queue is held only while a batch is gathered: the batcher's other threads gather
        // theirs while this one's statement runs. A thread that died holding the lock
        // poisoned it; the queue itself is intact.
        let mut batch = {
            let rx = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Ok(first) = rx.recv() else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH
                && let Ok(next) = rx.try_recv()
            {
                batch.push(next);
            }
            batch
        };
        // Callers that gave up (timed out during a stall) are not served late.
        batch.retain(|(_, reply)| !reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        // Tests and `scripts/dev chaos` make the thread die (`panic`) or stall (`pause`) here.
        crate::failpoint::point(name);
        let (requests, replies): (Vec<Q>, Vec<Reply<A>>) = batch.into_iter().unzip();
        // calls / statements = the mean batch size (what the batching buys).
        metrics::counter!("powernode_batch_statements_total", "batcher" => name).increment(1);
        metrics::counter!("powernode_batch_calls_total", "batcher" => name)
            .increment(requests.len() as u64);
        let mut conn = match pool.get_timeout(checkout) {
            Ok(conn) => conn,
            Err(e) => {
                let failure = crate::error::one_line(&StoreError::from(e));
                for reply in replies {
                    let _ = reply.send(Err(failure.clone()));
                }
                continue;
            }
        };
        match answer(&mut conn, &requests, apply) {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(failure) if requests.len() > 1 && powernode_store::stall_in(&failure).is_none() => {
                // One bad row must fail only its own call: serve each call on its own (not
                // when the database itself stalled: each call would wait again).
                for (request, reply) in requests.iter().zip(replies) {
                    let single = answer(&mut conn, std::slice::from_ref(request), apply)
                        .map(|mut answers| answers.remove(0));
                    let _ = reply.send(single);
                }
            }
            Err(failure) => {
                for reply in replies {
                    let _ = reply.send(Err(failure.clone()));
                }
            }
        }
    }
}

/// `apply` with its answer count checked.
fn answer<Q, A, F>(conn: &mut PgConnection, requests: &[Q], apply: &F) -> Result<Vec<A>, String>
where
    F: Fn(&mut PgConnection, &[Q]) -> Result<Vec<A>, StoreError>,
{
    let answers = apply(conn, requests).map_err(|e| crate::error::one_line(&e))?;
    if answers.len() == requests.len() {
        Ok(answers)
    } else {
        Err("batch answered the wrong number of calls".to_owned())
    }
}

/// Active peers' plain heartbeats by certificate fingerprint: `Some(at)` when applied, `None`
/// when the full chain must run.
pub type HeartbeatBatcher = Batcher<String, Option<OffsetDateTime>>;

pub fn heartbeats(db: &Database, capacity: usize) -> std::io::Result<HeartbeatBatcher> {
    Batcher::start(
        "heartbeat-batcher",
        db,
        capacity,
        1,
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

pub fn lookups(db: &Database, capacity: usize) -> std::io::Result<LookupBatcher> {
    Batcher::start(
        "lookup-batcher",
        db,
        capacity,
        LOOKUP_THREADS,
        powernode_store::grants::resource_lookup_batch,
    )
}
