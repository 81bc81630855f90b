//! Prometheus metrics of the API (`GET /metrics`). Counters and histograms are recorded where
//! things happen; database-derived gauges (peers by status, heartbeat age) are refreshed at
//! scrape time so every replica reports the shared truth.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use powernode_domain::PeerStatus;
use strum::IntoEnumIterator;

/// Per-peer heartbeat-age series kept at most (the longest-silent peers).
pub const HEARTBEAT_AGE_SERIES: i64 = 200;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("duration_seconds".to_owned()),
            &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0],
        )?
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_ok() {
        describe();
    }
    Ok(HANDLE.get_or_init(|| handle).clone())
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("powernode_peers", "Peers by status");
    describe_counter!(
        "powernode_peer_transitions_total",
        "Peer status transitions by from/to"
    );
    describe_counter!(
        "powernode_heartbeats_received_total",
        "Authenticated inbound heartbeats from peers"
    );
    describe_counter!(
        "powernode_batch_statements_total",
        "Statements run by a batcher (heartbeat-batcher, lookup-batcher)"
    );
    describe_counter!(
        "powernode_batch_calls_total",
        "Calls served by a batcher's statements (calls / statements = mean batch size)"
    );
    describe_counter!(
        "powernode_heartbeat_sweep_runs_total",
        "Heartbeat sweeps by outcome"
    );
    describe_histogram!(
        "powernode_heartbeat_sweep_duration_seconds",
        "Wall time of one heartbeat sweep"
    );
    describe_counter!(
        "powernode_heartbeat_sweep_degraded_total",
        "Peers degraded by sweeps"
    );
    describe_counter!(
        "powernode_acceptance_token_checks_total",
        "Acceptance token checks by outcome"
    );
    describe_counter!(
        "powernode_worker_jobs_total",
        "Worker job outcomes reported to the API"
    );
    describe_gauge!(
        "powernode_worker_job_last_success_timestamp_seconds",
        "Unix time of each schedule's last reported success"
    );
    describe_gauge!(
        "powernode_approvals_pending",
        "Approval requests waiting for a decision"
    );
    describe_counter!(
        "powernode_approval_executions_total",
        "Approved requests the SDWAN Manager executed, by outcome"
    );
    describe_gauge!(
        "powernode_database_up",
        "1 when the last scrape reached PostgreSQL"
    );
    // Series that exist from the start, so dashboards and alerts see zeros, not gaps.
    counter!("powernode_heartbeats_received_total").absolute(0);
    for outcome in ["succeeded", "failed"] {
        counter!("powernode_heartbeat_sweep_runs_total", "outcome" => outcome).absolute(0);
        counter!("powernode_approval_executions_total", "outcome" => outcome).absolute(0);
    }
}

pub fn transition(from: PeerStatus, to: PeerStatus, n: u64) {
    counter!("powernode_peer_transitions_total", "from" => from.as_str(), "to" => to.as_str())
        .increment(n);
}

pub fn sweep(outcome: &'static str, duration: Duration, degraded: usize) {
    counter!("powernode_heartbeat_sweep_runs_total", "outcome" => outcome).increment(1);
    histogram!("powernode_heartbeat_sweep_duration_seconds").record(duration.as_secs_f64());
    counter!("powernode_heartbeat_sweep_degraded_total").increment(degraded as u64);
}

pub fn token_check(outcome: &'static str) {
    counter!("powernode_acceptance_token_checks_total", "outcome" => outcome).increment(1);
}

pub fn worker_job(schedule: &str, job: &str, outcome: &'static str, at_unix: f64) {
    counter!(
        "powernode_worker_jobs_total",
        "schedule" => schedule.to_owned(), "job" => job.to_owned(), "outcome" => outcome
    )
    .increment(1);
    if outcome == "succeeded" {
        gauge!("powernode_worker_job_last_success_timestamp_seconds", "schedule" => schedule.to_owned())
            .set(at_unix);
    }
}

/// Refreshes the database-derived gauges.
pub fn set_database_gauges(counts: &[(PeerStatus, i64)]) {
    for status in PeerStatus::iter() {
        let n = counts
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n);
        #[expect(clippy::cast_precision_loss, reason = "peer counts are far below 2^52")]
        gauge!("powernode_peers", "status" => status.as_str()).set(n as f64);
    }
    gauge!("powernode_database_up").set(1.0);
}

#[expect(
    clippy::cast_precision_loss,
    reason = "request counts are far below 2^52"
)]
pub fn approvals_pending(n: i64) {
    gauge!("powernode_approvals_pending").set(n as f64);
}

pub fn approval_execution(outcome: &'static str) {
    counter!("powernode_approval_executions_total", "outcome" => outcome).increment(1);
}

/// The per-peer heartbeat ages as Prometheus text, rendered from the rows read for this scrape
/// (not kept in the recorder, whose series outlive their peer): a deleted or revoked peer's
/// series is gone at the next scrape.
pub fn render_heartbeat_ages(ages: &[(uuid::Uuid, f64)]) -> String {
    let mut out = String::new();
    if ages.is_empty() {
        return out;
    }
    out.push_str(
        "# HELP powernode_peer_heartbeat_age_seconds Seconds since each peer's last heartbeat (the longest-silent 200)\n\
         # TYPE powernode_peer_heartbeat_age_seconds gauge\n",
    );
    for (id, age) in ages {
        out.push_str(&format!(
            "powernode_peer_heartbeat_age_seconds{{peer_id=\"{id}\"}} {age}\n"
        ));
    }
    out
}

pub fn database_down() {
    gauge!("powernode_database_up").set(0.0);
}
