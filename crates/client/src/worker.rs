//! The worker API (`/api/v1/system/worker_api`) and worker status.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct SweepResponse {
    /// Number of peers degraded (= `degraded_ids.len()`).
    pub swept: usize,
    pub degraded_ids: Vec<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub ran_at: OffsetDateTime,
}

/// One job outcome, sent by the worker after every tick it ran.
#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct JobReportRequest {
    /// Schedule name, e.g. `federation_heartbeat`.
    pub schedule: String,
    /// Job name, e.g. `FederationHeartbeatJob`.
    pub job: String,
    /// Scheduled unix second of the tick.
    pub tick: i64,
    /// `succeeded` or `failed`.
    pub outcome: String,
    /// The reporting worker's name (`<name>-<schedule>-<pid>-<boot id>`).
    pub worker: String,
    pub attempts: Option<u32>,
    pub error: Option<String>,
    /// The schedule's interval (the doctor's "within 2 intervals").
    pub interval_secs: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct ScheduleStatusView {
    pub schedule: String,
    pub job: String,
    pub last_outcome: String,
    pub last_tick: i64,
    pub last_worker: String,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub last_success_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub last_failure_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub runs: i64,
    pub failures: i64,
    /// As the worker last reported it.
    pub interval_secs: Option<u32>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct TickOutcome {
    /// Pending requests past expiry that got their timeout action.
    pub expired: usize,
    pub executed: usize,
    pub failed: usize,
    /// The agent is paused: nothing was executed.
    pub paused: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub ran_at: OffsetDateTime,
}

/// One peer the PeerClient could not reach or that refused.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct PeerCallFailure {
    pub peer_id: Uuid,
    pub error: String,
}

/// The outcome of one PeerClient run (handshakes, heartbeats, renewals).
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct PeerRun {
    pub sent: usize,
    pub failed: Vec<PeerCallFailure>,
    /// Peers skipped this pass: still backing off after repeated failures (or their
    /// `Retry-After`).
    #[serde(default)]
    pub backing_off: usize,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub ran_at: OffsetDateTime,
}

/// The outcome of one grant-maintenance run.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct GrantMaintenance {
    pub renewed: usize,
    pub grant_ids: Vec<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub ran_at: OffsetDateTime,
}

/// Fast establishment (SPEC §4): the job the API puts on the worker queue when an accept or a
/// handshake commits, so the pair does not wait for the next `federation_peer_heartbeat` tick.
/// The worker runs it by POSTing `…/worker_api/federation/peers/{peer_id}/contact`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactJob {
    pub peer_id: Uuid,
    /// Why it was enqueued: `accept` (B: handshake, then first heartbeat) or `handshake` (A:
    /// first heartbeat to B).
    pub reason: String,
}

impl ContactJob {
    /// The job's name in logs (`[FederationPeerContactJob] peer <id>: <outcome>`).
    pub const NAME: &'static str = "FederationPeerContactJob";
    /// The schedule-like name of its Redis queue (`<prefix>:system:federation_peer_contact`).
    pub const QUEUE_NAME: &'static str = "federation_peer_contact";

    /// The Redis queue every worker consuming `system` polls for contact jobs.
    pub fn redis_queue(prefix: &str) -> String {
        format!("{prefix}:system:{}", Self::QUEUE_NAME)
    }

    /// The idempotency key: one contact per peer and reason while the key lives (1 h).
    pub fn idempotency_key(&self) -> String {
        format!("contact:{}:{}", self.peer_id, self.reason)
    }
}

/// What one contact did: the peer's status on our side afterwards and one line for the log.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct ContactOutcome {
    pub peer_id: Uuid,
    /// Our row's status after the contact.
    pub status: String,
    /// e.g. `handshake completed, heartbeat sent` or `nothing to do (suspended)`.
    pub outcome: String,
}
