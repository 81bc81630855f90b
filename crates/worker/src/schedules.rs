//! The schedule table: which job runs on which queue how often. Resolution fails at start on
//! an unknown job name or an interval that does not tile the wall clock.

use std::collections::BTreeMap;
use std::str::FromStr;

use powernode_domain::schedule::interval_to_cron;
use serde::{Deserialize, Serialize};

/// Jobs this binary can run, by the name schedules use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    FederationHeartbeat,
    FederationPeerHeartbeat,
    FederationGrantMaintenance,
    SdwanManagerTick,
    FederationGovernance,
    FleetEventRetention,
}

impl JobKind {
    pub const ALL: &'static [JobKind] = &[
        JobKind::FederationHeartbeat,
        JobKind::FederationPeerHeartbeat,
        JobKind::FederationGrantMaintenance,
        JobKind::SdwanManagerTick,
        JobKind::FederationGovernance,
        JobKind::FleetEventRetention,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            JobKind::FederationHeartbeat => "FederationHeartbeatJob",
            JobKind::FederationPeerHeartbeat => "FederationPeerHeartbeatJob",
            JobKind::FederationGrantMaintenance => "FederationGrantMaintenanceJob",
            JobKind::SdwanManagerTick => "SdwanManagerTickJob",
            JobKind::FederationGovernance => "FederationGovernanceJob",
            JobKind::FleetEventRetention => "FleetEventRetentionJob",
        }
    }
}

impl FromStr for JobKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        JobKind::ALL
            .iter()
            .copied()
            .find(|j| j.name() == s)
            .ok_or(())
    }
}

/// One schedule as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleConfig {
    pub job: String,
    pub queue: String,
    pub interval_secs: u32,
}

/// SPEC §11's schedules (the table lives in the domain, which the API's doctor reads too).
pub fn default_schedules() -> BTreeMap<String, ScheduleConfig> {
    powernode_domain::schedule::SCHEDULES
        .iter()
        .map(|s| {
            (
                s.name.to_owned(),
                ScheduleConfig {
                    job: s.job.to_owned(),
                    queue: s.queue.to_owned(),
                    interval_secs: s.interval_secs,
                },
            )
        })
        .collect()
}

/// A schedule ready to run.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub job: JobKind,
    pub queue: String,
    pub interval_secs: u32,
    pub cron: String,
}

impl Schedule {
    /// The Redis queue of this schedule's jobs: `<prefix>:<queue>:<schedule>`.
    pub fn redis_queue(&self, prefix: &str) -> String {
        format!("{prefix}:{}:{}", self.queue, self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "schedule `{schedule}` names unknown job `{job}`; known jobs: {known}",
        known = JobKind::ALL.iter().map(|j| j.name()).collect::<Vec<_>>().join(", ")
    )]
    UnknownJob { schedule: String, job: String },
    #[error("schedule `{schedule}`: {source}")]
    Interval {
        schedule: String,
        source: powernode_domain::schedule::InvalidInterval,
    },
    #[error("schedule `{schedule}`: queue must be a non-empty word without ':' or spaces")]
    Queue { schedule: String },
}

pub fn resolve(configs: &BTreeMap<String, ScheduleConfig>) -> Result<Vec<Schedule>, ScheduleError> {
    configs
        .iter()
        .map(|(name, c)| {
            let job = c.job.parse().map_err(|()| ScheduleError::UnknownJob {
                schedule: name.clone(),
                job: c.job.clone(),
            })?;
            let cron =
                interval_to_cron(c.interval_secs).map_err(|source| ScheduleError::Interval {
                    schedule: name.clone(),
                    source,
                })?;
            if c.queue.is_empty() || c.queue.contains([':', ' ']) {
                return Err(ScheduleError::Queue {
                    schedule: name.clone(),
                });
            }
            Ok(Schedule {
                name: name.clone(),
                job,
                queue: c.queue.clone(),
                interval_secs: c.interval_secs,
                cron,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve_to_the_heartbeat_sweep_every_minute() {
        let s = resolve(&default_schedules()).unwrap();
        let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "federation_governance",
                "federation_grant_maintenance",
                "federation_heartbeat",
                "federation_peer_heartbeat",
                "fleet_event_retention",
                "sdwan_manager_tick"
            ]
        );
        assert_eq!(s[5].job, JobKind::SdwanManagerTick);
        assert_eq!(s[5].cron, "0 * * * * *");
        assert_eq!(s[0].job, JobKind::FederationGovernance);
        assert_eq!(s[0].cron, "0 0 * * * *");
        assert_eq!(s[1].cron, "0 0 * * * *");
        assert_eq!(s[3].job, JobKind::FederationPeerHeartbeat);
        assert_eq!(s[4].job, JobKind::FleetEventRetention);
        assert_eq!(s[4].cron, "0 0 * * * *");
        assert_eq!(s[2].job, JobKind::FederationHeartbeat);
        assert_eq!(s[2].cron, "0 * * * * *");
        assert_eq!(s[2].redis_queue("pn"), "pn:system:federation_heartbeat");
    }

    #[test]
    fn an_unknown_job_is_a_clear_error() {
        let mut c = default_schedules();
        c.insert(
            "nightly".to_owned(),
            ScheduleConfig {
                job: "NoSuchJob".to_owned(),
                queue: "system".to_owned(),
                interval_secs: 60,
            },
        );
        assert_eq!(
            resolve(&c).unwrap_err().to_string(),
            "schedule `nightly` names unknown job `NoSuchJob`; known jobs: FederationHeartbeatJob, FederationPeerHeartbeatJob, FederationGrantMaintenanceJob, SdwanManagerTickJob, FederationGovernanceJob, FleetEventRetentionJob"
        );
    }

    #[test]
    fn an_interval_off_the_clock_is_refused() {
        let mut c = default_schedules();
        if let Some(s) = c.get_mut("federation_heartbeat") {
            s.interval_secs = 45;
        }
        assert!(
            resolve(&c)
                .unwrap_err()
                .to_string()
                .starts_with("schedule `federation_heartbeat`: interval 45s is not allowed")
        );
    }
}
