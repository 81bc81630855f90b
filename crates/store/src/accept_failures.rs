//! Failed accept attempts per (source address, peer_id) (SPEC §3), shared by API replicas.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use uuid::Uuid;

use crate::StoreError;

/// The failure limit and its sliding window.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub limit: u32,
    pub window_secs: u32,
}

#[derive(QueryableByName)]
struct Lock {
    #[diesel(sql_type = BigInt)]
    failures: i64,
    #[diesel(sql_type = Nullable<Integer>)]
    retry_after: Option<i32>,
}

/// `Some(seconds)` when the pair has reached the limit within the window: how long until the
/// oldest failure leaves it (at least 1).
pub fn locked_for(
    conn: &mut PgConnection,
    source: &str,
    peer_id: Uuid,
    policy: Policy,
) -> Result<Option<u64>, StoreError> {
    let lock: Lock = diesel::sql_query(
        "SELECT count(*) AS failures,
                ceil(extract(epoch FROM min(failed_at) + make_interval(secs => $3) - now()))::int
                    AS retry_after
           FROM accept_failures
          WHERE source = $1 AND peer_id = $2
            AND failed_at > now() - make_interval(secs => $3)",
    )
    .bind::<Text, _>(source)
    .bind::<diesel::sql_types::Uuid, _>(peer_id)
    .bind::<Integer, _>(i32::try_from(policy.window_secs).unwrap_or(i32::MAX))
    .get_result(conn)?;
    Ok((lock.failures >= i64::from(policy.limit)).then(|| {
        lock.retry_after
            .map_or(1, |s| u64::try_from(s.max(1)).unwrap_or(1))
    }))
}

/// Records a failed attempt unless the peer was already accepted (a loser of a concurrent
/// accept, or a repeat after success, is not guessing anything), and prunes failures older
/// than the window.
pub fn record(
    conn: &mut PgConnection,
    source: &str,
    peer_id: Uuid,
    policy: Policy,
) -> Result<(), StoreError> {
    let window = i32::try_from(policy.window_secs).unwrap_or(i32::MAX);
    conn.transaction(|conn| {
        diesel::sql_query(
            "INSERT INTO accept_failures (source, peer_id)
             SELECT $1, $2
              WHERE NOT EXISTS (SELECT 1 FROM peers WHERE id = $2 AND status <> 'proposed')",
        )
        .bind::<Text, _>(source)
        .bind::<diesel::sql_types::Uuid, _>(peer_id)
        .execute(conn)?;
        diesel::sql_query(
            "DELETE FROM accept_failures WHERE failed_at < now() - make_interval(secs => $1)",
        )
        .bind::<Integer, _>(window)
        .execute(conn)?;
        Ok(())
    })
}
