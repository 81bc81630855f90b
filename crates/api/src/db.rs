//! Runs synchronous Diesel work on actix's blocking pool, never on the async executor.

use diesel::PgConnection;
use powernode_store::{PgPool, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("blocking pool is gone: {0}")]
    Blocking(#[from] actix_web::error::BlockingError),
}

pub async fn run<T, F>(pool: &PgPool, f: F) -> Result<T, DbError>
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

/// Runs `f` in one transaction on the blocking pool, with one flat error: the service's own
/// refusals pass through, a lost pool or connection becomes 500 (cause logged once).
pub async fn transaction<T, F>(pool: &PgPool, f: F) -> Result<T, crate::error::ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut PgConnection) -> Result<T, crate::error::ApiError> + Send + 'static,
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
