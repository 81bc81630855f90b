//! Each scheduled worker call applied once per tick (SPEC §11 scale-out). The worker sends
//! `X-Powernode-Tick: <schedule>:<tick>` with every call a tick makes; apalis may re-run an
//! orphaned task, and with several workers a tick may be offered twice when its Redis key
//! lapsed, so the API — not Redis — is where "once" is decided. Without the header (an
//! operator's curl from the runbook) the call simply runs.
//!
//! The first call claims the key in PostgreSQL (shared by every replica) with a lease, runs,
//! and stores its answer; a repeat gets that answer back (logged, counted in `replays`), a
//! concurrent one 409. A failed call drops its claim so the worker's retry runs it again, and a
//! claim whose replica died lapses with its lease.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::db::{self, Context as _};
use crate::error::ApiError;
use crate::services::Ctx;
use powernode_store::worker_ticks::{self, Claim};

/// The header the worker sends.
pub const HEADER: &str = "X-Powernode-Tick";
/// Longer than any worker call runs (each is bounded by the database and peer timeouts), so a
/// live call never loses its claim; short enough that a dead replica's claim lapses before the
/// next hourly tick.
const LEASE_SECS: u32 = 300;

/// `<schedule>:<tick>`: a schedule name (lower-case letters, digits, `_`) and a unix second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickKey(String);

impl TickKey {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let valid = raw.split_once(':').is_some_and(|(schedule, tick)| {
            (1..=64).contains(&schedule.len())
                && schedule
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && (1..=20).contains(&tick.len())
                && tick.parse::<u64>().is_ok()
        });
        if valid {
            Ok(TickKey(raw.to_owned()))
        } else {
            Err(ApiError::validation(
                HEADER,
                "must be <schedule>:<unix second>",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Runs `action` at most once per tick key (see the module documentation).
pub async fn once<T, F, Fut>(ctx: &Ctx, tick: Option<&TickKey>, action: F) -> Result<T, ApiError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let Some(key) = tick else {
        return action().await;
    };
    // Fail points per schedule (`tick-before-claim.federation_heartbeat`, …): the chaos harness
    // aims at one schedule's calls.
    let schedule = key.0.split(':').next().unwrap_or_default();
    let point = |at: &str| crate::failpoint::point(&format!("{at}.{schedule}"));
    point("tick-before-claim");
    let k = key.0.clone();
    let claim = db::run(&ctx.db, move |conn| {
        worker_ticks::claim(conn, &k, LEASE_SECS)
    })
    .await
    .context("worker tick claim")?;
    match claim {
        Claim::Done(answer) => {
            tracing::info!(tick = %key.0, "worker tick already applied; its answer replayed");
            serde_json::from_value(answer)
                .map_err(|e| crate::error::internal("worker tick replay", e))
        }
        Claim::Running => Err(ApiError::Conflict(format!(
            "tick {} is being applied by another call",
            key.0
        ))),
        Claim::Run => {
            point("tick-after-claim");
            let outcome = action().await;
            point("tick-before-record");
            let k = key.0.clone();
            let answer = outcome
                .as_ref()
                .ok()
                .and_then(|a| serde_json::to_value(a).ok());
            let recorded = db::run(&ctx.db, move |conn| match answer {
                Some(answer) => worker_ticks::finish(conn, &k, &answer),
                None => worker_ticks::forget(conn, &k),
            })
            .await
            .context("recording a worker tick");
            if let Err(e) = recorded {
                // The claim lapses with its lease; the call's own outcome still stands.
                e.report();
            }
            if outcome.is_ok() {
                tracing::info!(tick = %key.0, "worker tick applied");
            }
            point("tick-after-record");
            outcome
        }
    }
}
