//! Worker schedules (SPEC §11): intervals mapped to wall-clock cron, tick dedup keys.

/// One schedule of SPEC §11's table, with its default interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleSpec {
    pub name: &'static str,
    pub job: &'static str,
    pub queue: &'static str,
    pub interval_secs: u32,
}

/// SPEC §11's schedules: what the worker runs by default and what the doctor expects to hear
/// about (`schedule.<name>` checks).
pub const SCHEDULES: &[ScheduleSpec] = &[
    ScheduleSpec {
        name: "federation_heartbeat",
        job: "FederationHeartbeatJob",
        queue: "system",
        interval_secs: 60,
    },
    ScheduleSpec {
        name: "federation_peer_heartbeat",
        job: "FederationPeerHeartbeatJob",
        queue: "system",
        interval_secs: 60,
    },
    ScheduleSpec {
        name: "sdwan_manager_tick",
        job: "SdwanManagerTickJob",
        queue: "system",
        interval_secs: 60,
    },
    ScheduleSpec {
        name: "federation_grant_maintenance",
        job: "FederationGrantMaintenanceJob",
        queue: "system",
        interval_secs: 3600,
    },
    ScheduleSpec {
        name: "federation_governance",
        job: "FederationGovernanceJob",
        queue: "system",
        interval_secs: 3600,
    },
    ScheduleSpec {
        name: "fleet_event_retention",
        job: "FleetEventRetentionJob",
        queue: "system",
        interval_secs: 3600,
    },
];

/// Why an interval cannot be a schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "interval {0}s is not allowed: use seconds that divide 60 (1..=60) or a multiple of 60 that divides 3600"
)]
pub struct InvalidInterval(pub u32);

/// Maps an interval to a 6-field (seconds first) cron expression aligned to the wall clock,
/// so that every worker process computes the same ticks (60 → `0 * * * * *`).
pub fn interval_to_cron(secs: u32) -> Result<String, InvalidInterval> {
    match secs {
        0 => Err(InvalidInterval(secs)),
        60 => Ok("0 * * * * *".to_owned()),
        3600 => Ok("0 0 * * * *".to_owned()),
        s if s < 60 && 60 % s == 0 => Ok(format!("*/{s} * * * * *")),
        s if s > 60 && s % 60 == 0 && 3600 % s == 0 => Ok(format!("0 */{} * * * *", s / 60)),
        s => Err(InvalidInterval(s)),
    }
}

/// Idempotency key of one tick of one schedule: `<schedule>:<tick>` where `tick` is the
/// scheduled unix second (identical in every process).
pub fn tick_key(schedule: &str, tick_unix_secs: i64) -> String {
    format!("{schedule}:{tick_unix_secs}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_map_to_wall_clock_cron() {
        assert_eq!(interval_to_cron(60).as_deref(), Ok("0 * * * * *"));
        assert_eq!(interval_to_cron(5).as_deref(), Ok("*/5 * * * * *"));
        assert_eq!(interval_to_cron(1).as_deref(), Ok("*/1 * * * * *"));
        assert_eq!(interval_to_cron(300).as_deref(), Ok("0 */5 * * * *"));
        assert_eq!(interval_to_cron(3600).as_deref(), Ok("0 0 * * * *"));
    }

    #[test]
    fn intervals_that_do_not_tile_the_clock_are_refused() {
        for bad in [0, 7, 45, 61, 90, 420, 7200] {
            assert_eq!(interval_to_cron(bad), Err(InvalidInterval(bad)), "{bad}");
        }
    }

    #[test]
    fn tick_key_names_schedule_and_tick() {
        assert_eq!(
            tick_key("federation_heartbeat", 60),
            "federation_heartbeat:60"
        );
    }
}
