//! The worker's own Prometheus `/metrics` on a local port: jobs run, failed, retried, and the
//! last success time per schedule.

use std::net::SocketAddr;

use metrics::{counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::PrometheusBuilder;

use crate::schedules::Schedule;

/// Serves `/metrics` on `listen` (from a background task); fails if the address is unusable.
pub fn serve(listen: &str, schedules: &[Schedule]) -> anyhow::Result<()> {
    let addr: SocketAddr = listen.parse().map_err(|e| {
        anyhow::anyhow!("POWERNODE_WORKER_METRICS_LISTEN {listen:?} is not host:port: {e}")
    })?;
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot serve metrics on {listen} ({e}): give each worker its own POWERNODE_WORKER_METRICS_LISTEN, or set it empty to disable"
            )
        })?;
    describe_counter!("powernode_worker_jobs_total", "Jobs run by outcome");
    describe_counter!(
        "powernode_worker_job_retries_total",
        "Retried attempts within a tick"
    );
    describe_gauge!(
        "powernode_worker_job_last_success_timestamp_seconds",
        "Unix time of the last successful job per schedule"
    );
    describe_counter!(
        "powernode_worker_reports_failed_total",
        "Job outcomes that could not be reported to the API"
    );
    for s in schedules {
        for outcome in ["succeeded", "failed"] {
            counter!("powernode_worker_jobs_total", "schedule" => s.name.clone(), "job" => s.job.name(), "outcome" => outcome)
                .absolute(0);
        }
        counter!("powernode_worker_job_retries_total", "schedule" => s.name.clone()).absolute(0);
    }
    counter!("powernode_worker_reports_failed_total").absolute(0);
    Ok(())
}

pub fn job(schedule: &str, job: &'static str, succeeded: bool) {
    let outcome = if succeeded { "succeeded" } else { "failed" };
    counter!("powernode_worker_jobs_total", "schedule" => schedule.to_owned(), "job" => job, "outcome" => outcome)
        .increment(1);
    if succeeded {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        gauge!("powernode_worker_job_last_success_timestamp_seconds", "schedule" => schedule.to_owned())
            .set(now);
    }
}

pub fn retried(schedule: &str) {
    counter!("powernode_worker_job_retries_total", "schedule" => schedule.to_owned()).increment(1);
}

pub fn report_failed() {
    counter!("powernode_worker_reports_failed_total").increment(1);
}
