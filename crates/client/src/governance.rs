//! Governance reports (SPEC §9.1), event retention (§9.2) and the doctor (§9.3).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// One finding of a scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct FindingView {
    /// e.g. `stale_accepted_without_handshake`, `peer_capability_drift`,
    /// `overlapping_prefix_advertisement` (SPEC §9.1's table).
    pub kind: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// `peer`, `peer_pair`, `certificate`, `grant` or `approval_request`.
    pub subject_type: String,
    pub subject_id: String,
    pub peer_id: Option<Uuid>,
    /// One sentence an operator can act on.
    pub message: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    #[cfg_attr(feature = "schemars", schemars(with = "serde_json::Value"))]
    pub payload: Value,
    /// SHA-256 of the kind and subject ids: the same finding in every report.
    pub fingerprint: String,
    /// When a report first saw it (carried across reports while it persists).
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub first_seen_at: OffsetDateTime,
}

/// Findings by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct SeverityCounts {
    pub low: u64,
    pub medium: u64,
    pub high: u64,
    pub critical: u64,
}

/// A governance report.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct ReportView {
    pub id: Uuid,
    /// `schedule`, `operator` or `mcp`.
    pub trigger: String,
    /// The operator who asked (absent for the schedule).
    pub requested_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub finished_at: OffsetDateTime,
    pub counts: SeverityCounts,
    /// Worst first.
    pub findings: Vec<FindingView>,
    /// Fingerprints of findings the previous report did not have.
    pub new: Vec<String>,
    /// Fingerprints of the previous report's findings that are gone.
    pub resolved: Vec<String>,
    /// Those resolved findings as the previous report had them.
    pub resolved_findings: Vec<FindingView>,
}

/// A report without its findings (the list).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct ReportSummary {
    pub id: Uuid,
    pub trigger: String,
    pub requested_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub finished_at: OffsetDateTime,
    pub counts: SeverityCounts,
    /// How many findings are new / resolved since the report before.
    pub new: usize,
    pub resolved: usize,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ReportsQuery {
    /// 1–100, default 20.
    pub limit: Option<i64>,
}

/// What one retention run deleted (SPEC §9.2).
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct RetentionOutcome {
    /// Fleet events deleted.
    pub deleted: usize,
    /// Delete statements that removed events (each at most 10,000 rows).
    pub batches: usize,
    pub governance_reports_deleted: usize,
    pub idempotency_keys_deleted: usize,
    /// Worker tick records (`X-Powernode-Tick`) older than 24 h.
    #[serde(default)]
    pub worker_ticks_deleted: usize,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub ran_at: OffsetDateTime,
}

/// `ok`, `warn` or `fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    Warn,
    Fail,
}

/// One diagnostic step of the runbook, run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct CheckView {
    /// e.g. `schedule.federation_heartbeat`, `peer.outbound`.
    pub check: String,
    pub status: CheckStatus,
    /// What was observed, with numbers and times.
    pub evidence: String,
    /// Anchor of the runbook section (`docs/runbook.md#…`).
    pub runbook: String,
    /// The command that fixes or narrows it (absent when nothing is to be done).
    pub next_step: Option<String>,
}

/// The doctor's answer for the instance or one peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct DiagnosisView {
    /// Absent for the instance diagnosis.
    pub peer_id: Option<Uuid>,
    /// The worst check's status.
    pub status: CheckStatus,
    pub checks: Vec<CheckView>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub ran_at: OffsetDateTime,
}

/// Our outbound client certificate for a peer, renewed now.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct RenewedCertificateView {
    pub peer_id: Uuid,
    pub serial: String,
    pub fingerprint_sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub not_after: OffsetDateTime,
}
