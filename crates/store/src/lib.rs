//! PostgreSQL persistence for Powernode Federation.

pub mod accept_failures;
pub mod approvals;
pub mod certificates;
pub mod diagnosis;
pub mod events;
pub mod governance;
pub mod grants;
pub mod idempotency;
pub mod identity;
pub mod migrate;
pub mod operators;
pub mod peers;
pub mod schema;
pub mod worker_status;
pub mod worker_ticks;

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
/// while PostgreSQL is still coming up. `timeout` is the bound of one database call
/// (`POWERNODE_DATABASE_TIMEOUT_SECS`): it bounds pool checkout and the connect, makes TCP drop a
/// connection whose server stopped acknowledging, and is enforced by the server per statement
/// (see [`Timeouts`]).
pub fn pool(database_url: &str, max_size: u32, timeout: std::time::Duration) -> PgPool {
    let timeouts = Timeouts::for_call(timeout);
    Pool::builder()
        // r2d2 would log every failed connect itself (multi-line); callers log once, on one line.
        .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
        .max_size(max_size)
        // No `SELECT 1` round trip on every checkout: a connection that broke is discarded
        // when it is returned (`has_broken`), so after a PostgreSQL restart each pooled
        // connection fails at most one call, and /readyz reports the outage meanwhile.
        .test_on_check_out(false)
        .connection_timeout(timeout)
        .connection_customizer(Box::new(timeouts))
        .build_unchecked(ConnectionManager::new(
            timeouts.connection_url(database_url),
        ))
}

/// The timeouts derived from the bound of one database call.
///
/// A stopped server (SIGSTOP, a hung host) enforces nothing and its kernel still acknowledges
/// TCP, so the caller's own timer is the real bound (the API's `db` module); these make the
/// server and the socket give up too, so that a slow but living server cancels the statement
/// (`statement_timeout`), a row lock not granted in time fails fast enough to be told apart
/// (`lock_timeout`, half the bound: answered as `busy`), a connect to a dead address fails
/// (`connect_timeout`), and a connection whose peer vanished is dropped (keepalives,
/// `tcp_user_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub call: std::time::Duration,
    pub statement_ms: u128,
    pub lock_ms: u128,
}

impl Timeouts {
    pub fn for_call(call: std::time::Duration) -> Self {
        let ms = call.as_millis().max(1_000);
        Timeouts {
            call,
            // Just under the call bound, so a living server's cancel arrives before the
            // caller's timer and the cause is logged.
            statement_ms: ms * 9 / 10,
            lock_ms: ms / 2,
        }
    }

    /// `url` with libpq's connect and socket timeouts added, unless the operator set them.
    pub fn connection_url(&self, url: &str) -> String {
        let secs = self.call.as_secs().max(2);
        let params = [
            ("connect_timeout", secs.to_string()),
            ("keepalives", "1".to_owned()),
            ("keepalives_idle", secs.to_string()),
            ("keepalives_interval", "1".to_owned()),
            ("keepalives_count", "3".to_owned()),
            ("tcp_user_timeout", (secs * 1000).to_string()),
        ];
        let uri = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let mut out = url.to_owned();
        for (key, value) in params {
            let present = if uri {
                out.split_once('?').is_some_and(|(_, query)| {
                    query.split('&').any(|kv| kv.split('=').next() == Some(key))
                })
            } else {
                out.split_whitespace()
                    .any(|kv| kv.split('=').next().map(str::trim) == Some(key))
            };
            if present {
                continue;
            }
            if uri {
                out.push(if out.contains('?') { '&' } else { '?' });
                out.push_str(&format!("{key}={value}"));
            } else {
                out.push_str(&format!(" {key}={value}"));
            }
        }
        out
    }
}

impl diesel::r2d2::CustomizeConnection<PgConnection, diesel::r2d2::Error> for Timeouts {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        use diesel::connection::SimpleConnection;
        conn.batch_execute(&format!(
            "SET statement_timeout = {}; SET lock_timeout = {}",
            self.statement_ms, self.lock_ms
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Why a database call failed, when the cause is the database's availability rather than the
/// call: the API answers these 503 instead of 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// PostgreSQL did not answer in time, refused the connection, or dropped it.
    Unavailable,
    /// A row lock was not granted within `lock_timeout`.
    Busy,
}

/// Classifies an error message. Diesel keeps PostgreSQL's SQLSTATE private (its
/// `DatabaseErrorKind` has no lock or cancel kinds), so this reads the messages libpq and the
/// server send (PostgreSQL's `lc_messages` must stay English, its default).
pub fn stall_in(message: &str) -> Option<Stall> {
    const BUSY: &[&str] = &[
        "canceling statement due to lock timeout",
        "could not obtain lock on",
    ];
    const UNAVAILABLE: &[&str] = &[
        "canceling statement due to statement timeout",
        "timed out waiting for connection",
        "server closed the connection unexpectedly",
        "no connection to the server",
        "terminating connection",
        "could not connect to server",
        "No route to host",
        "could not receive data from server",
        "could not send data to server",
        "the database system is starting up",
        "the database system is shutting down",
        "the database system is in recovery mode",
        "connection timed out",
        "timeout expired",
        "Connection refused",
        "SSL SYSCALL error",
    ];
    if BUSY.iter().any(|m| message.contains(m)) {
        Some(Stall::Busy)
    } else if UNAVAILABLE.iter().any(|m| message.contains(m)) {
        Some(Stall::Unavailable)
    } else {
        None
    }
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

/// The database's wall clock now (`clock_timestamp()`: advances inside a transaction, unlike
/// `now()`), for a start and an end time within one transaction.
pub fn clock_now(conn: &mut PgConnection) -> Result<time::OffsetDateTime, StoreError> {
    use diesel::RunQueryDsl;
    diesel::define_sql_function! { fn clock_timestamp() -> diesel::sql_types::Timestamptz; }
    Ok(diesel::select(clock_timestamp()).get_result(conn)?)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timeouts_derive_from_the_call_bound() {
        let t = Timeouts::for_call(Duration::from_secs(5));
        assert_eq!((t.statement_ms, t.lock_ms), (4_500, 2_500));
        // A sub-second bound still leaves the server a usable statement timeout.
        let t = Timeouts::for_call(Duration::from_millis(200));
        assert_eq!((t.statement_ms, t.lock_ms), (900, 500));
    }

    #[test]
    fn connection_url_adds_socket_timeouts_without_overriding_the_operator() {
        let t = Timeouts::for_call(Duration::from_secs(5));
        assert_eq!(
            t.connection_url("postgres://app@db/x"),
            "postgres://app@db/x?connect_timeout=5&keepalives=1&keepalives_idle=5\
             &keepalives_interval=1&keepalives_count=3&tcp_user_timeout=5000"
        );
        let url = t.connection_url("postgresql://app@db/x?sslmode=require&connect_timeout=30");
        assert!(url.starts_with("postgresql://app@db/x?sslmode=require&connect_timeout=30&"));
        assert_eq!(url.matches("connect_timeout=").count(), 1);
        let kv = t.connection_url("host=db dbname=x connect_timeout=9");
        assert!(kv.starts_with("host=db dbname=x connect_timeout=9 keepalives=1 "));
        assert_eq!(kv.matches("connect_timeout=").count(), 1);
    }

    #[test]
    fn stalls_are_told_apart_from_other_errors() {
        assert_eq!(
            stall_in("canceling statement due to lock timeout"),
            Some(Stall::Busy)
        );
        assert_eq!(
            stall_in("canceling statement due to statement timeout"),
            Some(Stall::Unavailable)
        );
        assert_eq!(
            stall_in("connection pool: timed out waiting for connection"),
            Some(Stall::Unavailable)
        );
        assert_eq!(
            stall_in("duplicate key value violates unique constraint \"x\""),
            None
        );
    }
}

#[derive(diesel::QueryableByName)]
pub(crate) struct PlanLine {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
    pub(crate) line: String,
}

/// The planner's plan for `sql` (a statement without parameters; nothing is executed).
pub fn explain(conn: &mut PgConnection, sql: &str) -> Result<String, StoreError> {
    use diesel::RunQueryDsl;
    Ok(diesel::sql_query(format!("EXPLAIN {sql}"))
        .load::<PlanLine>(conn)?
        .into_iter()
        .map(|p| p.line)
        .collect::<Vec<_>>()
        .join("\n"))
}
