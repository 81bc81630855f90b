//! Runs synchronous Diesel work on actix's blocking pool, never on the async executor, each call
//! bounded by `POWERNODE_DATABASE_TIMEOUT_SECS` (SPEC §10).
//!
//! A stopped PostgreSQL (SIGSTOP, a hung host) enforces no `statement_timeout` and its kernel
//! still acknowledges TCP, so a blocking call can wait for as long as the stall lasts. The
//! caller therefore stops waiting at the bound and answers 503 `database unavailable`; the
//! blocking thread itself cannot be interrupted, so every call first takes one of as many
//! permits as the pool has connections (less the batchers' two) and keeps it until the thread really returns: however
//! long the stall, at most that many blocking threads wait on the database, and new requests
//! are refused at the bound instead of piling up threads. When PostgreSQL answers again the
//! stuck calls finish, their permits return, and service resumes without a restart.

use std::sync::Arc;
use std::time::Duration;

use diesel::PgConnection;
use powernode_store::{PgPool, Stall, StoreError};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::error::ApiError;

/// Connections kept for the federation batchers (`federation::batch`, one thread each).
pub const BATCHER_CONNECTIONS: usize = 2;

/// The pool with its bound: what services reach the database through.
#[derive(Clone)]
pub struct Database {
    pool: PgPool,
    permits: Arc<Semaphore>,
    timeout: Duration,
}

impl Database {
    /// `pool` was built with the same `timeout` ([`powernode_store::pool`]).
    pub fn new(pool: PgPool, timeout: Duration) -> Self {
        // Two connections stay out of reach of these calls: the federation listener's two
        // batcher threads (one connection each) must not wait behind a burst of other work —
        // a PeerClient pass over many peers once starved heartbeat ingest into 503s.
        let permits = Arc::new(Semaphore::new(
            (pool.max_size() as usize)
                .saturating_sub(BATCHER_CONNECTIONS)
                .max(1),
        ));
        Database {
            pool,
            permits,
            timeout,
        }
    }

    /// The bound of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The pool, for the federation batchers' own threads (they bound their callers' wait
    /// themselves).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// One of the permits every blocking database call holds (see the module comment).
    pub async fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| crate::error::internal("database permits closed", e))
    }

    /// `Retry-After` of a 503: one bound, at least a second.
    pub fn retry_after(&self) -> u64 {
        self.timeout.as_secs().max(1)
    }

    /// 503 for a stall of this kind.
    pub fn unavailable(&self, stall: Stall) -> ApiError {
        ApiError::Unavailable {
            busy: stall == Stall::Busy,
            retry_after: self.retry_after(),
        }
    }

    /// Turns an internal error whose cause is the database's availability (a statement or
    /// lock timeout, a dropped connection, no connection in time) into its 503, logging the
    /// cause once; anything else passes through.
    pub fn classify(&self, error: ApiError) -> ApiError {
        match &error {
            ApiError::Internal { context, cause } => match powernode_store::stall_in(cause) {
                Some(stall) => {
                    tracing::warn!(error = %cause, "{context}: database unavailable");
                    self.unavailable(stall)
                }
                None => error,
            },
            _ => error,
        }
    }

    /// Runs `f` with a pooled connection on the blocking pool, within the bound (permit,
    /// checkout and work together).
    async fn bounded<T, F>(&self, what: &'static str, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection) -> Result<T, ApiError> + Send + 'static,
    {
        let deadline = Instant::now() + self.timeout;
        let pool = self.pool.clone();
        let permit = self.permit();
        let call = async move {
            let permit = permit.await?;
            let checkout = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            actix_web::web::block(move || {
                // Released only when this thread is done with the database.
                let _permit = permit;
                let mut conn = pool
                    .get_timeout(checkout)
                    .map_err(|e| crate::error::internal(what, StoreError::from(e)))?;
                f(&mut conn)
            })
            .await
            .map_err(|e| crate::error::internal("blocking pool is gone", e))?
        };
        match tokio::time::timeout_at(deadline, call).await {
            Ok(result) => result.map_err(|e| self.classify(e)),
            Err(_) => {
                tracing::warn!(
                    timeout_secs = self.timeout.as_secs_f32(),
                    "{what}: database unavailable (no answer within POWERNODE_DATABASE_TIMEOUT_SECS)"
                );
                Err(self.unavailable(Stall::Unavailable))
            }
        }
    }
}

/// Runs `f` on the blocking pool (no transaction) for a service: one flat `ApiError`, the
/// store's error and a lost pool both becoming 500 with their cause (see [`Context`]), a
/// stalled database 503.
pub async fn run<T, E, F>(db: &Database, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
    F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
{
    db.bounded("database call", move |conn| f(conn).map_err(Into::into))
        .await
}

/// Names what failed in an internal error's log line (`peer lookup failed: …`); refusals pass
/// through unchanged.
pub trait Context<T> {
    fn context(self, context: &str) -> Result<T, ApiError>;
}

impl<T> Context<T> for Result<T, ApiError> {
    fn context(self, context: &str) -> Result<T, ApiError> {
        self.map_err(|e| match e {
            ApiError::Internal { cause, .. } => ApiError::Internal {
                context: context.to_owned(),
                cause,
            },
            other => other,
        })
    }
}

/// Runs `f` in one transaction on the blocking pool, with one flat error: the service's own
/// refusals pass through (and roll back), a lost pool or connection becomes 500, a stalled
/// database 503.
pub async fn transaction<T, F>(db: &Database, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut PgConnection) -> Result<T, ApiError> + Send + 'static,
{
    db.bounded("database transaction", move |conn| {
        use diesel::Connection;
        conn.transaction(f)
    })
    .await
}
