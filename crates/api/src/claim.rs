//! A row held `FOR UPDATE SKIP LOCKED` across async work (a remote call, an approved action):
//! the lock lives in a transaction on a blocking thread, and what follows the work is written
//! in that same transaction, so two concurrent callers never act on the same row twice.

use std::time::Duration;

use diesel::{Connection, PgConnection};
use powernode_store::StoreError;

use crate::db::Database;
use crate::error::{ApiError, internal};

/// Runs in the claiming transaction, then it commits.
pub type Finisher<E> = Box<dyn FnOnce(&mut PgConnection) -> Result<(), E> + Send>;

/// Upper bound on holding a claim; the work itself is bounded tighter (the 10 s peer timeout).
const CLAIM_HOLD: Duration = Duration::from_secs(60);

pub struct Claim<T, E> {
    pub value: T,
    finish_tx: std::sync::mpsc::Sender<Finisher<E>>,
    done: tokio::task::JoinHandle<Result<(), E>>,
    db: Database,
}

/// Opens a transaction, runs `lock` (which should select `FOR UPDATE SKIP LOCKED`) and, if it
/// found a row, keeps the transaction open until the claim is finished or released. Taking the
/// claim is bounded like any database call (503 when PostgreSQL does not answer); the
/// connection counts against the same permits.
pub async fn claim<T, E, L>(db: &Database, lock: L) -> Result<Option<Claim<T, E>>, ApiError>
where
    T: Send + 'static,
    E: From<StoreError> + From<diesel::result::Error> + std::fmt::Display + Send + 'static,
    L: FnOnce(&mut PgConnection) -> Result<Option<T>, E> + Send + 'static,
{
    let (claimed_tx, claimed_rx) = tokio::sync::oneshot::channel::<Option<T>>();
    let (finish_tx, finish_rx) = std::sync::mpsc::channel::<Finisher<E>>();
    // Taking the claim (permit, checkout, the locking statement) has one deadline, as any call.
    let deadline = tokio::time::Instant::now() + db.timeout();
    let stalled = || db.unavailable(powernode_store::Stall::Unavailable);
    let permit = tokio::time::timeout_at(deadline, db.permit())
        .await
        .map_err(|_| stalled())??;
    let checkout = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .max(Duration::from_millis(1));
    let pool = db.pool().clone();
    let done = tokio::task::spawn_blocking(move || -> Result<(), E> {
        let _permit = permit;
        let mut conn = pool.get_timeout(checkout).map_err(StoreError::from)?;
        conn.transaction(|conn| {
            let held = lock(conn)?;
            let found = held.is_some();
            let _ = claimed_tx.send(held);
            // A dropped sender (the work failed) ends the wait at once: nothing to write.
            if found && let Ok(finish) = finish_rx.recv_timeout(CLAIM_HOLD) {
                finish(conn)?;
            }
            Ok(())
        })
    });
    let failed = |e: String| db.classify(internal("claim failed", e));
    match tokio::time::timeout_at(deadline, claimed_rx).await {
        Ok(Ok(Some(value))) => Ok(Some(Claim {
            value,
            finish_tx,
            done,
            db: db.clone(),
        })),
        Ok(Ok(None)) => {
            let _ = done.await;
            Ok(None)
        }
        Ok(Err(_)) => Err(failed(match done.await {
            Ok(Err(e)) => e.to_string(),
            _ => "claim failed".to_owned(),
        })),
        // The blocking thread ends when PostgreSQL answers; its permit bounds how many wait.
        Err(_) => Err(stalled()),
    }
}

impl<T, E: std::fmt::Display> Claim<T, E> {
    /// Runs `finish` in the claiming transaction and commits.
    pub async fn finish(self, finish: Finisher<E>) -> Result<(), ApiError> {
        let db = self.db;
        let failed = |e: String| db.classify(internal("claim failed", e));
        self.finish_tx
            .send(finish)
            .map_err(|_| failed("claim lost".to_owned()))?;
        drop(self.finish_tx);
        self.done
            .await
            .map_err(|e| failed(e.to_string()))?
            .map_err(|e| failed(e.to_string()))
    }

    /// Releases the row without writing.
    pub async fn release(self) {
        drop(self.finish_tx);
        let _ = self.done.await;
    }
}
