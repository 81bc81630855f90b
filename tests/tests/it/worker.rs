//! The real worker binary against real Redis and the real API.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::collections::BTreeMap;
use std::time::Duration;

use powernode_store::peers;
use powernode_tests::{
    Process, TestDb, WorkerProcess, bin, insert_peer, redis_prefix, settings, spawn_app,
};

/// Generous: a loaded CI machine may be slow to start processes; polls are short.
const DEADLINE: Duration = Duration::from_secs(90);

fn tick_of(line: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("tick="))
        .and_then(|t| t.parse().ok())
}

#[tokio::test]
async fn one_worker_tick_degrades_the_stale_peer_and_logs_the_runbook_lines() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let stale = insert_peer(&mut conn, "active", "platform", Some(6 * 60));
    let app = spawn_app(settings(&db)).await;
    let worker = WorkerProcess::spawn("default", &app.address, &redis_prefix(), &[]);

    let done = worker
        .wait_for(DEADLINE, |l| {
            l.contains("[FederationHeartbeatJob] sweep complete: swept=1 degraded_ids=1")
        })
        .await;
    // Ticks may overlap on a loaded machine: the tick that degraded the peer logged its start.
    let tick = tick_of(&done);
    assert!(
        worker.lines().iter().any(|l| {
            l.contains("[FederationHeartbeatJob] Starting heartbeat sweep") && tick_of(l) == tick
        }),
        "{}",
        worker.output()
    );
    let peer = peers::find(&mut conn, stale).unwrap().unwrap();
    assert_eq!(peer.status.as_str(), "degraded");
    assert_eq!(
        peer.metadata["degraded_reason"],
        "heartbeat stale (>5 minutes)"
    );
    assert_eq!(powernode_tests::sweep_events(&mut conn).len(), 1);
    // Logs are plain text when not on a terminal (journald, pipes).
    assert!(worker.lines().iter().all(|l| !l.contains('\u{1b}')));
}

#[tokio::test]
async fn two_workers_on_one_redis_run_each_tick_once() {
    let db = TestDb::new();
    let app = spawn_app(settings(&db)).await;
    let prefix = redis_prefix();
    let a = WorkerProcess::spawn("default", &app.address, &prefix, &[]);
    let b = WorkerProcess::spawn("system", &app.address, &prefix, &[]);
    let completed = |w: &Process| -> Vec<u64> {
        w.lines()
            .iter()
            .filter(|l| l.contains("[FederationHeartbeatJob] sweep complete"))
            .filter_map(|l| tick_of(l))
            .collect()
    };
    // Wait until both processes are up and at least 6 distinct ticks have completed.
    powernode_tests::eventually(DEADLINE, "6 completed ticks", || {
        let mut ticks = completed(&a);
        ticks.extend(completed(&b));
        ticks.sort_unstable();
        ticks.dedup();
        (ticks.len() >= 6).then_some(())
    })
    .await;
    let mut per_tick: BTreeMap<u64, usize> = BTreeMap::new();
    for w in [&a, &b] {
        for line in w.lines() {
            if line.contains("[FederationHeartbeatJob] Starting heartbeat sweep") {
                *per_tick.entry(tick_of(&line).unwrap()).or_default() += 1;
            }
        }
    }
    assert!(
        per_tick.values().all(|n| *n == 1),
        "a tick ran more than once: {per_tick:?}"
    );
    // Both processes ran their cron producers: each logged its schedule registration.
    for w in [&a, &b] {
        assert!(w.lines().iter().any(|l| l.contains("schedule registered")));
    }
}

#[tokio::test]
async fn failed_sweeps_log_the_warn_line_and_stop_after_three_attempts() {
    let db = TestDb::new();
    let app = spawn_app(settings(&db)).await;
    let worker = WorkerProcess::spawn(
        "default",
        &app.address,
        &redis_prefix(),
        &[(
            "POWERNODE_WORKER_TOKEN",
            "a-wrong-token-that-is-long-enough-0123456789",
        )],
    );
    let line = worker
        .wait_for(DEADLINE, |l| {
            l.contains("[FederationHeartbeatJob] sweep API returned non-success:")
        })
        .await;
    assert!(
        line.contains("HTTP 401: Invalid or inactive worker token"),
        "{line}"
    );
    assert!(line.contains("WARN"), "{line}");
    // A 401 is not retried: one attempt for that tick.
    let tick = tick_of(&line).unwrap();
    let attempts = worker
        .lines()
        .iter()
        .filter(|l| l.contains("Starting heartbeat sweep") && tick_of(l) == Some(tick))
        .count();
    assert_eq!(attempts, 1);
}

#[tokio::test]
async fn an_unreachable_api_logs_the_error_line_and_retries_at_most_three_times() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let worker = WorkerProcess::spawn(
        "default",
        &format!("http://127.0.0.1:{closed}"),
        &redis_prefix(),
        &[],
    );
    let first = worker
        .wait_for(DEADLINE, |l| {
            l.contains("[FederationHeartbeatJob] sweep failed:")
        })
        .await;
    assert!(first.contains("ERROR"), "{first}");
    let tick = tick_of(&first).unwrap();
    // The tick's last failure is logged without a retry delay; count its attempts then.
    worker
        .wait_for(DEADLINE, |l| {
            l.contains("sweep failed:") && tick_of(l) == Some(tick) && !l.contains("retry_in")
        })
        .await;
    let attempts = worker
        .lines()
        .iter()
        .filter(|l| l.contains("Starting heartbeat sweep") && tick_of(l) == Some(tick))
        .count();
    assert_eq!(attempts, 3);
}

#[tokio::test]
async fn sigterm_stops_the_worker_with_exit_code_0() {
    let db = TestDb::new();
    let app = spawn_app(settings(&db)).await;
    let mut worker = WorkerProcess::spawn("default", &app.address, &redis_prefix(), &[]);
    worker
        .wait_for(DEADLINE, |l| l.contains("sweep complete"))
        .await;
    worker.signal("TERM");
    let status = tokio::time::timeout(DEADLINE, worker.child.wait())
        .await
        .expect("worker exits after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0), "{}", worker.lines().join("\n"));
    worker
        .wait_for(DEADLINE, |l| l.contains("powernode-worker stopped"))
        .await;
}

#[test]
fn a_schedule_naming_an_unknown_job_stops_the_worker_at_start() {
    let out = std::process::Command::new(bin("powernode-worker"))
        .args(["--name", "default"])
        .env_clear()
        .env("POWERNODE_WORKER_TOKEN", powernode_tests::WORKER_TOKEN)
        .env("POWERNODE_REDIS_URL", powernode_tests::redis_url())
        .env("POWERNODE_SCHEDULES__NIGHTLY__JOB", "NoSuchJob")
        .env("POWERNODE_SCHEDULES__NIGHTLY__QUEUE", "system")
        .env("POWERNODE_SCHEDULES__NIGHTLY__INTERVAL_SECS", "60")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(
            "schedule `nightly` names unknown job `NoSuchJob`; known jobs: FederationHeartbeatJob, FederationPeerHeartbeatJob, FederationGrantMaintenanceJob, SdwanManagerTickJob"
        ),
        "{text}"
    );
}

#[test]
fn schedules_prints_each_schedule_with_job_queue_and_interval() {
    let out = std::process::Command::new(bin("powernode-worker"))
        .arg("schedules")
        .env_clear()
        .env("POWERNODE_WORKER_TOKEN", powernode_tests::WORKER_TOKEN)
        .env("POWERNODE_REDIS_URL", "redis://127.0.0.1:1/")
        .env("POWERNODE_REDIS_PREFIX", "pn-a")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("federation_heartbeat "))
        .unwrap_or_else(|| panic!("{text}"));
    let cols: Vec<_> = row.split_whitespace().collect();
    assert_eq!(
        cols,
        [
            "federation_heartbeat",
            "FederationHeartbeatJob",
            "system",
            "60s",
            "0",
            "*",
            "*",
            "*",
            "*",
            "*",
            "pn-a:system:federation_heartbeat"
        ]
    );
    // The fast-establishment job is listed too, with the queue the API pushes it to.
    let contact = text
        .lines()
        .find(|l| l.contains("FederationPeerContactJob"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        contact.ends_with("pn-a:system:federation_peer_contact"),
        "{contact}"
    );
}

/// Unix seconds now.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Ticks the worker started a job for, and ticks it skipped as superseded, from its log.
fn started_and_superseded(worker: &Process) -> (BTreeMap<u64, usize>, Vec<u64>) {
    started_and_superseded_in(&worker.lines())
}

fn started_and_superseded_in(lines: &[String]) -> (BTreeMap<u64, usize>, Vec<u64>) {
    let mut started: BTreeMap<u64, usize> = BTreeMap::new();
    let mut superseded = Vec::new();
    for line in lines {
        if line.contains("[FederationHeartbeatJob] Starting heartbeat sweep") {
            *started.entry(tick_of(line).unwrap()).or_default() += 1;
        } else if line.contains("tick superseded by a newer one") {
            superseded.push(tick_of(line).unwrap());
        }
    }
    (started, superseded)
}

/// Stops `pid` with SIGSTOP for a few seconds of ticks, then resumes it; returns the unix
/// seconds of the stop and of the resume.
async fn pause(pid: u32, ticks: u64) -> (u64, u64) {
    let kill = |signal: &str| {
        assert!(
            std::process::Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .status()
                .unwrap()
                .success()
        );
    };
    kill("STOP");
    let stopped = unix_now();
    // Waiting for wall-clock ticks to be missed is the point here, not a timing assertion.
    powernode_tests::eventually(DEADLINE, "ticks missed", || {
        (unix_now() >= stopped + ticks).then_some(())
    })
    .await;
    kill("CONT");
    (stopped, unix_now())
}

/// After a pause, the ticks missed during it ran at most once between them (one catch-up
/// run), never as a burst.
fn assert_coalesced(worker: &Process, stopped: u64, resumed: u64, what: &str) {
    assert_coalesced_lines(&worker.lines(), stopped, resumed, what);
}

fn assert_coalesced_lines(lines: &[String], stopped: u64, resumed: u64, what: &str) {
    let (started, _) = started_and_superseded_in(lines);
    let missed: Vec<u64> = started
        .keys()
        .copied()
        .filter(|t| *t > stopped && *t + 1 < resumed)
        .collect();
    assert!(
        missed.len() <= 1,
        "ticks missed while {what} was stopped ran as a burst: {missed:?}\n{}",
        lines.join("\n")
    );
    assert!(
        started.values().all(|n| *n == 1),
        "a tick ran twice: {started:?}"
    );
}

#[tokio::test]
async fn a_one_second_schedule_runs_every_tick_once_and_coalesces_missed_ticks() {
    let db = TestDb::new();
    let app = spawn_app(settings(&db)).await;
    // A Redis of its own, so this test may stop it.
    let redis_port = powernode_tests::free_port();
    let redis_dir = std::env::temp_dir().join(format!("pn-redis-{}", uuid_like()));
    std::fs::create_dir_all(&redis_dir).unwrap();
    let mut redis = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            &redis_port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(&redis_dir)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server");
    let redis_url = format!("redis://127.0.0.1:{redis_port}/");
    let prefix = redis_prefix();
    let worker = WorkerProcess::spawn(
        "default",
        &app.address,
        &prefix,
        &[("POWERNODE_REDIS_URL", &redis_url)],
    );

    // 120 ticks of the 1-s schedule while the worker runs.
    let first = worker
        .wait_for(DEADLINE, |l| l.contains("Starting heartbeat sweep"))
        .await;
    let first = tick_of(&first).unwrap();
    powernode_tests::eventually(Duration::from_secs(400), "120 ticks", || {
        let (started, _) = started_and_superseded(&worker);
        (started.range(first..first + 120).count() >= 120).then_some(())
    })
    .await;
    let (started, superseded) = started_and_superseded(&worker);
    let window: Vec<(u64, usize)> = started
        .range(first..first + 120)
        .map(|(t, n)| (*t, *n))
        .collect();
    assert_eq!(window.len(), 120, "a tick was skipped: {started:?}");
    assert!(
        window.iter().all(|(_, n)| *n == 1),
        "a tick ran twice: {window:?}"
    );
    assert!(
        superseded.iter().all(|t| *t >= first + 120),
        "a tick was skipped while the worker ran: {superseded:?}"
    );

    // The worker stopped for 6 s: its missed ticks do not run as a burst afterwards.
    let (stopped, resumed) = pause(worker.child.id().unwrap(), 6).await;
    worker
        .wait_for(DEADLINE, |l| {
            l.contains("Starting heartbeat sweep") && tick_of(l).is_some_and(|t| t >= resumed + 2)
        })
        .await;
    assert_coalesced(&worker, stopped, resumed, "the worker");

    // Redis stopped for 6 s: the worker's consumers lose their polls and the process exits
    // for its supervisor to restart it (systemd `Restart=`), which this test does in its
    // place. The ticks missed meanwhile do not run as a burst afterwards either.
    let (stopped, resumed) = pause(redis.id().unwrap(), 6).await;
    let mut worker = worker;
    let resumed_tick = |l: &str| {
        l.contains("Starting heartbeat sweep") && tick_of(l).is_some_and(|t| t >= resumed + 2)
    };
    let exited = powernode_tests::eventually(DEADLINE, "the worker exits or ticks again", || {
        if worker.child.try_wait().unwrap().is_some() {
            return Some(true);
        }
        worker
            .lines()
            .iter()
            .any(|l| resumed_tick(l))
            .then_some(false)
    })
    .await;
    let mut lines = worker.lines();
    if exited {
        let again = WorkerProcess::spawn(
            "default",
            &app.address,
            &prefix,
            &[("POWERNODE_REDIS_URL", &redis_url)],
        );
        again.wait_for(DEADLINE, resumed_tick).await;
        lines.extend(again.lines());
    }
    assert_coalesced_lines(&lines, stopped, resumed, "Redis");
    redis.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&redis_dir);
}

fn uuid_like() -> String {
    format!("{}-{}", std::process::id(), unix_now())
}
