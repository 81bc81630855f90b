//! Runs synchronous Diesel work on actix's blocking pool, never on the async executor.

use diesel::PgConnection;
use powernode_store::{PgPool, StoreError};

use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("blocking pool is gone: {0}")]
    Blocking(#[from] actix_web::error::BlockingError),
}

/// Runs `f` on the blocking pool, outside a transaction, with the store's error kept as is
/// (start-up, identity and listener plumbing, readiness).
pub async fn blocking<T, F>(pool: &PgPool, f: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce(&mut PgConnection) -> Result<T, StoreError> + Send + 'static,
{
    let pool = pool.clone();
    let result = actix_web::web::block(move || {
        let mut conn = pool.get().map_err(StoreError::from)?;
        f(&mut conn)
    })
    .await?;
    Ok(result?)
}

/// Runs `f` on the blocking pool (no transaction) for a service: one flat `ApiError`, the
/// store's error and a lost pool both becoming 500 with their cause (see [`Context`]).
pub async fn run<T, E, F>(pool: &PgPool, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
    F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool
            .get()
            .map_err(|e| crate::error::internal("database unavailable", e))?;
        f(&mut conn).map_err(Into::into)
    })
    .await
    .map_err(|e| crate::error::internal("blocking pool is gone", e))?
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
/// refusals pass through (and roll back), a lost pool or connection becomes 500.
pub async fn transaction<T, F>(pool: &PgPool, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut PgConnection) -> Result<T, ApiError> + Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        use diesel::Connection;
        let mut conn = pool
            .get()
            .map_err(|e| crate::error::internal("database unavailable", e))?;
        let conn: &mut PgConnection = &mut conn;
        conn.transaction(f)
    })
    .await
    .map_err(|e| crate::error::internal("blocking pool is gone", e))?
}
