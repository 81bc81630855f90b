//! PostgreSQL persistence for Powernode Federation.

pub mod approvals;
pub mod certificates;
pub mod events;
pub mod grants;
pub mod identity;
pub mod migrate;
pub mod operators;
pub mod peers;
pub mod schema;
pub mod worker_status;

use diesel::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool};

pub use diesel::Connection;

pub type PgPool = Pool<ConnectionManager<PgConnection>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("database connection failed: {0}")]
    Connection(#[from] diesel::ConnectionError),
    #[error("connection pool: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("corrupt row in {table}: column {column} holds unknown value {value:?}")]
    CorruptRow {
        table: &'static str,
        column: &'static str,
        value: String,
    },
}

/// Builds the pool without connecting: the API starts (and `/readyz` says why it is not ready)
/// while PostgreSQL is still coming up.
pub fn pool(database_url: &str, max_size: u32, connection_timeout: std::time::Duration) -> PgPool {
    Pool::builder()
        // r2d2 would log every failed connect itself (multi-line); callers log once, on one line.
        .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
        .max_size(max_size)
        // No `SELECT 1` round trip on every checkout: a connection that broke is discarded
        // when it is returned (`has_broken`), so after a PostgreSQL restart each pooled
        // connection fails at most one call, and /readyz reports the outage meanwhile.
        .test_on_check_out(false)
        .connection_timeout(connection_timeout)
        .build_unchecked(ConnectionManager::new(database_url))
}

/// One connection outside the pool (migrations, advisory session locks).
pub fn connect(database_url: &str) -> Result<PgConnection, StoreError> {
    Ok(PgConnection::establish(database_url)?)
}

diesel::define_sql_function! {
    /// PostgreSQL's transaction clock, the only clock thresholds use (SPEC §12).
    fn now() -> diesel::sql_types::Timestamptz;
}

/// `now()` for nullable timestamp columns.
pub(crate) fn now_nullable()
-> diesel::expression::SqlLiteral<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>> {
    diesel::dsl::sql("now()")
}

/// `now() + secs` by the database clock, for nullable timestamp columns.
pub(crate) fn now_plus_secs(
    secs: u32,
) -> diesel::expression::SqlLiteral<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>> {
    diesel::dsl::sql(&format!("now() + make_interval(secs => {secs})"))
}

/// The database clock, as one query.
pub fn database_now(conn: &mut PgConnection) -> Result<time::OffsetDateTime, StoreError> {
    use diesel::RunQueryDsl;
    Ok(diesel::select(now()).get_result(conn)?)
}

/// The error is a unique-index violation (a concurrent writer got there first).
pub fn is_unique_violation(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Database(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _
        ))
    )
}

/// `value` as PostgreSQL stores and renders it as `jsonb` (numbers in its own notation), without
/// writing anything: callers check that what they would store can be read back.
pub fn jsonb_text(
    conn: &mut diesel::PgConnection,
    value: &serde_json::Value,
) -> Result<String, StoreError> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Rendered {
        #[diesel(sql_type = diesel::sql_types::Text)]
        text: String,
    }
    Ok(diesel::sql_query("SELECT CAST($1 AS jsonb)::text AS text")
        .bind::<diesel::sql_types::Jsonb, _>(value)
        .get_result::<Rendered>(conn)?
        .text)
}
