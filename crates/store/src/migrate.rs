//! Embedded migrations, applied under an advisory lock (diesel_migrations takes none).

use diesel::PgConnection;
use diesel::RunQueryDsl;
use diesel::sql_types::BigInt;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::StoreError;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Arbitrary constant shared by every replica: "powernode migrations".
const MIGRATION_LOCK_KEY: i64 = 0x706f_7765_726e_6f64;

/// Applies pending migrations and returns the versions applied. Holds a session advisory lock
/// on this dedicated connection for the duration, so replicas started together wait in turn.
pub fn run_pending(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(conn)?;
    let result = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| StoreError::Migration(e.to_string()));
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(conn)?;
    result
}

/// Reverts every applied migration (tests prove each `down.sql` undoes its `up.sql`).
pub fn revert_all(conn: &mut PgConnection) -> Result<(), StoreError> {
    conn.revert_all_migrations(MIGRATIONS)
        .map(|_| ())
        .map_err(|e| StoreError::Migration(e.to_string()))
}

/// Migrations known to this binary but not yet applied.
pub fn pending(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    conn.pending_migrations(MIGRATIONS)
        .map(|m| m.iter().map(|m| m.name().to_string()).collect())
        .map_err(|e| StoreError::Migration(e.to_string()))
}
