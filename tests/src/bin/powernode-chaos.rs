//! `scripts/dev chaos [--quick]` (issue 17): real processes under injected faults, one table of
//! outcomes. Instance A runs two API replicas and two workers on one PostgreSQL and one Redis,
//! behind round-robin proxies (operator/worker API and federation listener); B runs one of each.
//! Every process is started and stopped here by pid; PostgreSQL and Redis are the chaos
//! cluster `scripts/dev chaos` started (never the tests' or the bench's). Outcomes are asserted
//! (a failed scenario fails the command); timings are only reported.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a harness fails loudly"
)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use powernode_tests::rr_proxy::RoundRobin;
use powernode_tests::{
    Process, TestDb, WORKER_TOKEN, admin_token, eventually_async, free_port, master_key_file,
};
use serde_json::{Value, json};

const PEERS: &str = "/api/v1/system/federation/peers";
const DEADLINE: Duration = Duration::from_secs(90);
/// Short schedules: a tick every 5 s (intervals must divide 60).
const TICK_SECS: u64 = 5;
/// Far above the tick, so only a real fault degrades a peer.
const STALE_AFTER_SECS: u64 = 30;
/// `POWERNODE_DATABASE_TIMEOUT_SECS` of every API: the bound a stalled database is answered in.
const DB_TIMEOUT_SECS: u64 = 2;

struct Cluster {
    pgdata: String,
    pg_bin: String,
    redis_dir: String,
    redis_port: u16,
}

impl Cluster {
    fn from_env() -> Self {
        let var = |k: &str| {
            std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: run `scripts/dev chaos`"))
        };
        Cluster {
            pgdata: var("CHAOS_PGDATA"),
            pg_bin: var("CHAOS_PG_BIN"),
            redis_dir: var("CHAOS_REDIS_DIR"),
            redis_port: var("CHAOS_REDIS_PORT").parse().unwrap(),
        }
    }

    fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.redis_port)
    }

    /// The postmaster and every backend (what a stalled host freezes).
    fn pg_pids(&self) -> Vec<String> {
        let pidfile = std::fs::read_to_string(format!("{}/postmaster.pid", self.pgdata)).unwrap();
        let postmaster = pidfile.lines().next().unwrap().trim().to_owned();
        let children = std::process::Command::new("pgrep")
            .args(["-P", &postmaster])
            .output()
            .unwrap();
        let mut pids = vec![postmaster];
        pids.extend(
            String::from_utf8_lossy(&children.stdout)
                .lines()
                .map(str::to_owned),
        );
        pids
    }

    fn signal_pg(&self, signal: &str) {
        for pid in self.pg_pids() {
            let _ = std::process::Command::new("kill")
                .args([&format!("-{signal}"), &pid])
                .status();
        }
    }

    fn pg_ctl(&self, args: &[&str]) {
        let mut cmd = if nix_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(format!("{}/pg_ctl", self.pg_bin));
            c
        } else {
            std::process::Command::new(format!("{}/pg_ctl", self.pg_bin))
        };
        // The server it starts must not inherit our pipes (we would wait for their EOF): its
        // log goes to the cluster's log file, as when `scripts/dev` started it.
        let log = std::path::Path::new(&self.pgdata).with_file_name("log");
        cmd.current_dir("/")
            .args(["-D", &self.pgdata, "-l"])
            .arg(log)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let status = cmd.status().unwrap();
        assert!(
            status.success(),
            "pg_ctl {args:?} failed; see the cluster's log"
        );
    }

    fn stop_redis(&self) {
        let pid = std::fs::read_to_string(format!("{}/redis.pid", self.redis_dir)).unwrap();
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }

    async fn start_redis(&self) {
        let status = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.redis_port.to_string(),
                "--bind",
                "127.0.0.1",
                "--dir",
                &self.redis_dir,
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
                "--pidfile",
                &format!("{}/redis.pid", self.redis_dir),
                "--logfile",
                &format!("{}/redis.log", self.redis_dir),
            ])
            .status()
            .unwrap();
        assert!(status.success());
        let url = self.redis_url();
        eventually_async(DEADLINE, "Redis answers", || {
            let url = url.clone();
            async move {
                let client = redis::Client::open(url).ok()?;
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .ok()
            }
        })
        .await;
    }
}

fn nix_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// One API process of an instance.
struct Api {
    name: String,
    env: Vec<(&'static str, String)>,
    http: u16,
    proc: Option<Process>,
    /// Lines of earlier incarnations (killed or restarted).
    past: Vec<String>,
}

impl Api {
    fn start(&mut self, failpoints: Option<&str>) {
        let mut env = self.env.clone();
        if let Some(f) = failpoints {
            env.push(("FAILPOINTS", f.to_owned()));
        }
        self.proc = Some(started(Process::spawn("powernode-api", &["serve"], &env)));
    }

    fn pid(&self) -> Option<u32> {
        self.proc.as_ref().and_then(|p| p.child.id())
    }

    async fn ready(&self) {
        let url = format!("http://127.0.0.1:{}/readyz", self.http);
        eventually_async(DEADLINE, &format!("{} ready", self.name), || {
            let url = url.clone();
            async move { reqwest::get(url).await.ok().filter(|r| r.status() == 200) }
        })
        .await;
    }

    async fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("KILL");
            let _ = p.child.wait().await;
            self.past.extend(p.lines());
        }
    }

    fn lines(&self) -> Vec<String> {
        let mut all = self.past.clone();
        if let Some(p) = &self.proc {
            all.extend(p.lines());
        }
        all
    }

    /// How often the running process has logged `failpoint <point> reached`.
    fn reached(&self, point: &str) -> usize {
        let needle = format!("failpoint {point} reached");
        self.proc.as_ref().map_or(0, |p| {
            p.lines().iter().filter(|l| l.contains(&needle)).count()
        })
    }

    /// Waits until the process reaches `point` once more than `before` times: the call the
    /// harness just sent is paused there (a regular tick may have paused there earlier).
    async fn wait_reached(&self, point: &str, before: usize) {
        let t = Instant::now();
        while self.reached(point) <= before {
            assert!(
                t.elapsed() < DEADLINE,
                "{} never reached fail point {point}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A worker process; the harness restarts it 2 s after it exits, as systemd's
/// `Restart=on-failure` would.
struct Worker {
    name: String,
    env: Vec<(&'static str, String)>,
    proc: Option<Process>,
    past: Vec<String>,
    restarts: usize,
    exited_at: Option<Instant>,
    /// Stopped on purpose: not restarted until released.
    held: bool,
}

impl Worker {
    fn start(&mut self) {
        self.proc = Some(started(Process::spawn(
            "powernode-worker",
            &["--name", &self.name],
            &self.env,
        )));
    }

    /// The supervisor's one step: notices an exit, restarts 2 s later.
    fn supervise(&mut self) {
        if let Some(p) = &mut self.proc
            && let Ok(Some(_)) = p.child.try_wait()
        {
            self.past.extend(p.lines());
            self.proc = None;
            self.exited_at = Some(Instant::now());
        }
        if self.proc.is_none()
            && !self.held
            && self
                .exited_at
                .is_some_and(|t| t.elapsed() >= Duration::from_secs(2))
        {
            self.restarts += 1;
            self.exited_at = None;
            self.start();
        }
    }

    async fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("KILL");
            let _ = p.child.wait().await;
            self.past.extend(p.lines());
            self.exited_at = Some(Instant::now());
        }
    }

    fn lines(&self) -> Vec<String> {
        let mut all = self.past.clone();
        if let Some(p) = &self.proc {
            all.extend(p.lines());
        }
        all
    }
}

struct Outcome {
    scenario: &'static str,
    injected: String,
    expected: &'static str,
    seen: String,
    pass: bool,
}

struct World {
    cluster: Cluster,
    a_db: TestDb,
    b_db: TestDb,
    a_admin: String,
    b_admin: String,
    a: Vec<Api>,
    b: Api,
    workers: Vec<Worker>,
    a_op: RoundRobin,
    _a_fed: RoundRobin,
    client: reqwest::Client,
    /// A third instance (full run): the accept and handshake kills, and "every other peer"
    /// while B is blackholed.
    c: Option<(TestDb, String, Api)>,
}

fn api_env(
    db: &str,
    redis: &str,
    prefix: &str,
    key: &str,
    http: u16,
    fed: u16,
    public: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("POWERNODE_DATABASE_URL", db.to_owned()),
        ("POWERNODE_REDIS_URL", redis.to_owned()),
        ("POWERNODE_REDIS_PREFIX", prefix.to_owned()),
        ("POWERNODE_WORKER_TOKEN", WORKER_TOKEN.to_owned()),
        ("POWERNODE_MASTER_KEY_FILE", key.to_owned()),
        ("POWERNODE_FEDERATION_PUBLIC_URL", public.to_owned()),
        ("POWERNODE_FEDERATION_LISTEN", format!("127.0.0.1:{fed}")),
        ("POWERNODE_HTTP_LISTEN", format!("127.0.0.1:{http}")),
        ("POWERNODE_STALE_AFTER_SECS", STALE_AFTER_SECS.to_string()),
        (
            "POWERNODE_DATABASE_TIMEOUT_SECS",
            DB_TIMEOUT_SECS.to_string(),
        ),
        ("POWERNODE_ENVIRONMENT", "development".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
}

fn worker_env(api: &str, redis: &str, prefix: &str) -> Vec<(&'static str, String)> {
    let tick = TICK_SECS.to_string();
    vec![
        ("POWERNODE_API_URL", api.to_owned()),
        ("POWERNODE_WORKER_TOKEN", WORKER_TOKEN.to_owned()),
        ("POWERNODE_REDIS_URL", redis.to_owned()),
        ("POWERNODE_REDIS_PREFIX", prefix.to_owned()),
        ("POWERNODE_WORKER_POLL_INTERVAL_MS", "200".to_owned()),
        ("POWERNODE_WORKER_METRICS_LISTEN", String::new()),
        (
            "POWERNODE_SCHEDULES__FEDERATION_HEARTBEAT__INTERVAL_SECS",
            tick.clone(),
        ),
        (
            "POWERNODE_SCHEDULES__FEDERATION_PEER_HEARTBEAT__INTERVAL_SECS",
            tick.clone(),
        ),
        (
            "POWERNODE_SCHEDULES__SDWAN_MANAGER_TICK__INTERVAL_SECS",
            tick,
        ),
        ("RUST_LOG", "info".to_owned()),
    ]
}

impl World {
    async fn start() -> World {
        let cluster = Cluster::from_env();
        let redis = cluster.redis_url();
        let (a_db, b_db) = (TestDb::new(), TestDb::new());
        let (a_admin, b_admin) = (admin_token(&mut a_db.conn()), admin_token(&mut b_db.conn()));
        let (a_key, b_key) = (master_key_file(), master_key_file());
        let (a_prefix, b_prefix) = ("chaos-a".to_owned(), "chaos-b".to_owned());

        // A: two replicas behind one operator port and one federation port.
        let (a_http, a_fed) = ([free_port(), free_port()], [free_port(), free_port()]);
        let a_op =
            RoundRobin::start(0, a_http.iter().map(|p| format!("127.0.0.1:{p}")).collect()).await;
        let a_fed_proxy =
            RoundRobin::start(0, a_fed.iter().map(|p| format!("127.0.0.1:{p}")).collect()).await;
        let a_public = format!("https://127.0.0.1:{}", a_fed_proxy.port);
        let mut a = Vec::new();
        for i in 0..2 {
            a.push(Api {
                name: format!("A{}", i + 1),
                env: api_env(
                    &a_db.url, &redis, &a_prefix, &a_key, a_http[i], a_fed[i], &a_public,
                ),
                http: a_http[i],
                proc: None,
                past: Vec::new(),
            });
        }
        let (b_http, b_fed) = (free_port(), free_port());
        let b_public = format!("https://127.0.0.1:{b_fed}");
        let mut b = Api {
            name: "B".to_owned(),
            env: api_env(
                &b_db.url, &redis, &b_prefix, &b_key, b_http, b_fed, &b_public,
            ),
            http: b_http,
            proc: None,
            past: Vec::new(),
        };
        // The first replica creates A's CA; the second reads it from PostgreSQL.
        a[0].start(None);
        a[0].ready().await;
        a[1].start(None);
        a[1].ready().await;
        b.start(None);
        b.ready().await;
        let a_api = format!("http://127.0.0.1:{}", a_op.port);
        let b_api = format!("http://127.0.0.1:{b_http}");
        let mut workers = Vec::new();
        for (name, api, prefix) in [
            ("wa1", &a_api, &a_prefix),
            ("wa2", &a_api, &a_prefix),
            ("wb", &b_api, &b_prefix),
        ] {
            let mut w = Worker {
                name: name.to_owned(),
                env: worker_env(api, &redis, prefix),
                proc: None,
                past: Vec::new(),
                restarts: 0,
                exited_at: None,
                held: false,
            };
            w.start();
            workers.push(w);
        }
        let world = World {
            cluster,
            a_db,
            b_db,
            a_admin,
            b_admin,
            a,
            b,
            workers,
            a_op,
            _a_fed: a_fed_proxy,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            c: None,
        };
        world.federate(&b_public).await;
        world
    }

    fn a_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.a_op.port)
    }

    fn b_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.b.http)
    }

    async fn call(&self, url: String, token: &str, body: Option<Value>) -> (u16, Value) {
        let req = match body {
            Some(b) => self.client.post(url).json(&b),
            None => self.client.get(url),
        };
        match req.bearer_auth(token).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            Err(e) => (0, json!(e.to_string())),
        }
    }

    /// A proposes B, B accepts; fast establishment makes both active.
    async fn federate(&self, b_public: &str) {
        let (_, token) = self.propose(b_public).await;
        let (status, accepted) = self
            .call(
                self.b_url(&format!("{PEERS}/accept")),
                &self.b_admin,
                Some(json!({"acceptance_token": token})),
            )
            .await;
        assert_eq!(status, 201, "{accepted}");
        self.both_active("federation").await;
    }

    /// A's row for B and B's row for A.
    async fn statuses(&self) -> (String, String) {
        let (_, b) = self.call(self.b_url(PEERS), &self.b_admin, None).await;
        let b = b["data"][0]["status"].as_str().unwrap_or("none").to_owned();
        (self.statuses_a_only().await, b)
    }

    async fn both_active(&self, what: &str) {
        eventually_async(DEADLINE, &format!("{what}: both active"), || async {
            (self.statuses().await == ("active".to_owned(), "active".to_owned())).then_some(())
        })
        .await;
    }

    /// Runs the worker supervisor for `d`, polling every 200 ms.
    async fn run_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            for w in &mut self.workers {
                w.supervise();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `worker tick applied` lines per tick key across A's replicas (incarnations included).
    fn applied_on_a(&self) -> HashMap<String, usize> {
        let mut applied = HashMap::new();
        for api in &self.a {
            for line in api.lines() {
                if line.contains("worker tick applied")
                    && let Some(key) = tick_of(&line)
                {
                    *applied.entry(key).or_insert(0) += 1;
                }
            }
        }
        applied
    }

    fn count(&self, db: &TestDb, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(sql)
            .get_result::<N>(&mut db.conn())
            .unwrap()
            .n
    }

    fn stale_events(&self) -> (i64, i64) {
        let sql =
            "SELECT count(*) AS n FROM fleet_events WHERE kind = 'federation.peer.heartbeat_stale'";
        (self.count(&self.a_db, sql), self.count(&self.b_db, sql))
    }

    async fn stop(&mut self) {
        for w in &mut self.workers {
            if let Some(p) = w.proc.take() {
                let mut p = p;
                p.signal("TERM");
                let _ = tokio::time::timeout(Duration::from_secs(10), p.child.wait()).await;
                w.past.extend(p.lines());
            }
        }
        let c = self.c.as_mut().map(|c| &mut c.2);
        for api in self
            .a
            .iter_mut()
            .chain(std::iter::once(&mut self.b))
            .chain(c)
        {
            if let Some(p) = api.proc.take() {
                let mut p = p;
                p.signal("TERM");
                let _ = tokio::time::timeout(Duration::from_secs(10), p.child.wait()).await;
                api.past.extend(p.lines());
            }
        }
    }

    fn write_logs(&self, dir: &std::path::Path) {
        std::fs::create_dir_all(dir).unwrap();
        for api in self.a.iter().chain(std::iter::once(&self.b)) {
            std::fs::write(
                dir.join(format!("{}.log", api.name)),
                api.lines().join("\n"),
            )
            .unwrap();
        }
        for w in &self.workers {
            std::fs::write(dir.join(format!("{}.log", w.name)), w.lines().join("\n")).unwrap();
        }
    }
}

/// `tick=<schedule>:<n>` (the structured field tracing prints).
fn tick_of(line: &str) -> Option<String> {
    let at = line.find("tick=")? + 5;
    let rest = &line[at..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"').to_owned())
}

fn sweep_keys(applied: &HashMap<String, usize>) -> Vec<u64> {
    let mut ticks: Vec<u64> = applied
        .keys()
        .filter_map(|k| k.strip_prefix("federation_heartbeat:"))
        .filter_map(|t| t.parse().ok())
        .collect();
    ticks.sort_unstable();
    ticks
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Steady state: every tick applied once, both replicas serving, no false degradation.
async fn steady(w: &mut World, secs: u64) -> Outcome {
    let (from, served_before) = (now_unix(), w.a_op.served());
    w.run_for(Duration::from_secs(secs)).await;
    let to = now_unix();
    let applied = w.applied_on_a();
    let in_window: Vec<u64> = sweep_keys(&applied)
        .into_iter()
        .filter(|t| *t >= from && *t < to)
        .collect();
    let expected = (to - from) / TICK_SECS;
    let twice: Vec<_> = applied.iter().filter(|(_, n)| **n > 1).collect();
    let manager = applied
        .keys()
        .filter(|k| k.starts_with("sdwan_manager_tick:"))
        .filter(|k| k[19..].parse::<u64>().is_ok_and(|t| t >= from && t < to))
        .count();
    let served: Vec<usize> = w
        .a_op
        .served()
        .iter()
        .zip(served_before)
        .map(|(n, b)| n - b)
        .collect();
    let stale = w.stale_events();
    let statuses = w.statuses().await;
    let pass = in_window.len() as u64 + 1 >= expected
        && in_window.len() as u64 <= expected + 1
        && twice.is_empty()
        && stale == (0, 0)
        && statuses == ("active".to_owned(), "active".to_owned())
        && served.iter().all(|n| *n > 0);
    Outcome {
        scenario: "steady state, two replicas",
        injected: format!("nothing for {secs} s (ticks every {TICK_SECS} s)"),
        expected: "each sweep and manager tick applied once; both replicas serve; no degradation",
        seen: format!(
            "{} sweeps / {} manager ticks for {expected} ticks; {} key(s) applied twice; replicas served {:?} connections; stale events A/B {:?}; A/B {:?}",
            in_window.len(),
            manager,
            twice.len(),
            served,
            stale,
            statuses
        ),
        pass,
    }
}

/// Where a sweep call can be killed, in order; `true` when its writes have committed by then.
const SWEEP_POINTS: [(&str, bool); 5] = [
    ("tick-before-claim.federation_heartbeat", false),
    ("tick-after-claim.federation_heartbeat", false),
    ("heartbeat-sweep-before-commit", false),
    ("tick-before-record.federation_heartbeat", true),
    ("tick-after-record.federation_heartbeat", true),
];

/// kill -9 of the replica applying a sweep, at fail point `point`.
async fn kill_mid_sweep(w: &mut World, point: &'static str, committed: bool) -> Outcome {
    // A1 again, with the fail point armed; the harness sends it the next tick's sweep (as the
    // worker would) and kills it at the point.
    w.a[0].kill9().await;
    w.a[0].start(Some(&format!("{point}=pause")));
    w.a[0].ready().await;
    // Just after a tick boundary, so the regular sweep (on A2) is done with this one.
    while now_unix() % TICK_SECS != 1 {
        w.run_for(Duration::from_millis(100)).await;
    }
    // A peer that must be degraded exactly once (no process answers at its URL).
    let victim = uuid::Uuid::new_v4();
    diesel::sql_query(
        "INSERT INTO peers (id, origin, remote_instance_url, peer_kind, spawn_role, spawn_mode, status, last_heartbeat_at)
         VALUES ($1, 'proposed_here', 'https://127.0.0.1:9', 'platform', 'symmetric', 'autonomous_peer', 'active', now() - interval '1 hour')",
    )
    .bind::<diesel::sql_types::Uuid, _>(victim)
    .execute(&mut w.a_db.conn())
    .unwrap();
    let tick = (now_unix() / TICK_SECS + 1) * TICK_SECS;
    let key = format!("federation_heartbeat:{tick}");
    let url = format!(
        "http://127.0.0.1:{}/api/v1/system/worker_api/federation/heartbeat_sweep",
        w.a[0].http
    );
    let before = w.a[0].reached(point);
    let sweep = {
        let (client, key) = (w.client.clone(), key.clone());
        tokio::spawn(async move {
            client
                .post(url)
                .header("X-Worker-Token", WORKER_TOKEN)
                .header("X-Powernode-Tick", key)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    w.a[0].wait_reached(point, before).await;
    w.a[0].kill9().await;
    let killed_answer = sweep.await.unwrap();
    let degraded_before = w.count(
        &w.a_db,
        &format!("SELECT count(*) AS n FROM fleet_events WHERE kind = 'federation.peer.heartbeat_stale' AND peer_id = '{victim}'"),
    );
    // The other replica serves; a later tick degrades the peer, once.
    let started = Instant::now();
    let victim_sql =
        format!("SELECT count(*) AS n FROM peers WHERE id = '{victim}' AND status = 'degraded'");
    let mut degraded = false;
    while started.elapsed() < DEADLINE {
        w.run_for(Duration::from_millis(500)).await;
        if w.count(&w.a_db, &victim_sql) == 1 {
            degraded = true;
            break;
        }
    }
    let recovered_in = started.elapsed();
    w.run_for(Duration::from_secs(TICK_SECS * 2)).await;
    let events = w.count(
        &w.a_db,
        &format!("SELECT count(*) AS n FROM fleet_events WHERE kind = 'federation.peer.heartbeat_stale' AND peer_id = '{victim}'"),
    );
    let claim: i64 = w.count(
        &w.a_db,
        &format!(
            "SELECT count(*) AS n FROM worker_ticks WHERE key = '{key}' AND state = 'running'"
        ),
    );
    let twice = w.applied_on_a().into_iter().filter(|(_, n)| *n > 1).count();
    // The victim leaves: later scenarios start from the pair alone.
    diesel::sql_query(format!("DELETE FROM peers WHERE id = '{victim}'"))
        .execute(&mut w.a_db.conn())
        .unwrap();
    w.a[0].start(None);
    w.a[0].ready().await;
    let statuses = w.statuses().await;
    let pass = killed_answer.is_err()
        && degraded_before == i64::from(committed)
        && degraded
        && events == 1
        && twice == 0
        && statuses == ("active".to_owned(), "active".to_owned());
    Outcome {
        scenario: "kill -9 of a replica mid-sweep",
        injected: format!("A1 paused at fail point `{point}` of {key}, then SIGKILL"),
        expected: if committed {
            "the killed sweep's commit stands; no tick re-applies it (the stale peer has one event)"
        } else {
            "nothing of the killed sweep committed; a later tick on A2 degrades the stale peer once"
        },
        seen: format!(
            "killed call: {}; events before recovery {degraded_before}; peer degraded {:.1} s after the kill; stale events for the peer {events}; killed tick's claim left running {claim} (lapses in 5 min); keys applied twice {twice}; A/B {statuses:?}",
            match killed_answer {
                Ok(s) => format!("answered {s}"),
                Err(_) => "connection dropped".to_owned(),
            },
            recovered_in.as_secs_f64()
        ),
        pass,
    }
}

/// PostgreSQL frozen (SIGSTOP of the postmaster and every backend).
async fn stalled_postgres(w: &mut World, secs: u64) -> Outcome {
    let pids_before: Vec<Option<u32>> =
        w.a.iter()
            .chain(std::iter::once(&w.b))
            .map(Api::pid)
            .collect();
    w.cluster.signal_pg("STOP");
    let stalled_at = Instant::now();
    // /readyz on every API at once: each answers 503, and how long that one request took.
    let probes = w.a.iter().chain(std::iter::once(&w.b)).map(|api| {
        let (client, url) = (
            w.client.clone(),
            format!("http://127.0.0.1:{}/readyz", api.http),
        );
        async move {
            let t = Instant::now();
            let status = client
                .get(&url)
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            (status, t.elapsed())
        }
    });
    let ready_503: Vec<(u16, Duration)> = futures::future::join_all(probes).await;
    // Operator and worker calls during the stall: each answered 503 within the bound.
    let mut answers = Vec::new();
    let mut worker_calls = Vec::new();
    let sweep_url = w.a_url("/api/v1/system/worker_api/federation/heartbeat_sweep");
    while stalled_at.elapsed() < Duration::from_secs(secs) {
        let t = Instant::now();
        let (status, _) = w.call(w.a_url(PEERS), &w.a_admin, None).await;
        answers.push((status, t.elapsed()));
        let t = Instant::now();
        let status = w
            .client
            .post(&sweep_url)
            .header("X-Worker-Token", WORKER_TOKEN)
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        worker_calls.push((status, t.elapsed()));
        for wk in &mut w.workers {
            wk.supervise();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    w.cluster.signal_pg("CONT");
    let thawed = Instant::now();
    let mut recovered = true;
    for api in w.a.iter().chain(std::iter::once(&w.b)) {
        let url = format!("http://127.0.0.1:{}/readyz", api.http);
        let ok = eventually_ok(&w.client, &url).await;
        recovered &= ok;
    }
    let recovery = thawed.elapsed();
    w.run_for(Duration::from_secs(TICK_SECS * 2)).await;
    let pids_after: Vec<Option<u32>> =
        w.a.iter()
            .chain(std::iter::once(&w.b))
            .map(Api::pid)
            .collect();
    let twice = w.applied_on_a().into_iter().filter(|(_, n)| *n > 1).count();
    let statuses = w.statuses().await;
    let worst = answers
        .iter()
        .chain(&worker_calls)
        .map(|(_, d)| *d)
        .max()
        .unwrap_or_default();
    let all_503 = answers.iter().chain(&worker_calls).all(|(s, _)| *s == 503);
    let retried = w.workers.iter().any(|wk| {
        wk.lines()
            .iter()
            .any(|l| l.contains("503") && l.contains("Job]"))
    });
    let pass = ready_503.iter().all(|(s, _)| *s == 503)
        && all_503
        && !answers.is_empty()
        && recovered
        && pids_before == pids_after
        && twice == 0
        && statuses == ("active".to_owned(), "active".to_owned());
    Outcome {
        scenario: "PostgreSQL stalled",
        injected: format!("SIGSTOP of the postmaster and all backends for {secs} s"),
        expected: "/readyz 503 at once; every call 503 within the bound; recovery without restarts; no tick twice",
        seen: format!(
            "/readyz answered 503 in {} (A1 / A2 / B); {} operator and {} worker-API calls: statuses {:?}, slowest {:.2} s (bound {DB_TIMEOUT_SECS} s); workers logged the 503 and retried: {retried}; ready again {:.1} s after SIGCONT; API pids unchanged: {}; keys applied twice {twice}; A/B {statuses:?}",
            ready_503
                .iter()
                .map(|(s, d)| format!("{s}:{:.2} s", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(" / "),
            answers.len(),
            worker_calls.len(),
            answers
                .iter()
                .chain(&worker_calls)
                .map(|(s, _)| *s)
                .collect::<std::collections::BTreeSet<_>>(),
            worst.as_secs_f64(),
            recovery.as_secs_f64(),
            pids_before == pids_after
        ),
        pass,
    }
}

async fn eventually_ok(client: &reqwest::Client, url: &str) -> bool {
    let t = Instant::now();
    while t.elapsed() < DEADLINE {
        if let Ok(r) = client.get(url).send().await
            && r.status() == 200
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Redis stopped, then started again empty.
async fn redis_stopped(w: &mut World, secs: u64) -> Outcome {
    let restarts_before: usize = w.workers.iter().map(|x| x.restarts).sum();
    w.cluster.stop_redis();
    let stopped = Instant::now();
    let mut operator = Vec::new();
    let mut listener = Vec::new();
    let ca = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let ca_url = format!(
        "https://127.0.0.1:{}/api/v1/system/federation_api/ca",
        w._a_fed.port
    );
    while stopped.elapsed() < Duration::from_secs(secs) {
        operator.push(w.call(w.a_url(PEERS), &w.a_admin, None).await.0);
        listener.push(
            ca.get(&ca_url)
                .send()
                .await
                .map_or(0, |r| r.status().as_u16()),
        );
        w.run_for(Duration::from_millis(500)).await;
    }
    w.cluster.start_redis().await;
    let back = now_unix();
    // Workers reconnect (or are restarted); sweeps resume without a burst.
    let resumed = {
        let t = Instant::now();
        let mut ok = false;
        while t.elapsed() < DEADLINE {
            w.run_for(Duration::from_secs(1)).await;
            if sweep_keys(&w.applied_on_a()).iter().any(|k| *k >= back) {
                ok = true;
                break;
            }
        }
        ok
    };
    w.run_for(Duration::from_secs(TICK_SECS * 4)).await;
    let window = now_unix() - back;
    let after: Vec<u64> = sweep_keys(&w.applied_on_a())
        .into_iter()
        .filter(|k| *k >= back - TICK_SECS * 4)
        .collect();
    let applied_since = after.iter().filter(|k| **k + TICK_SECS >= back).count() as u64;
    let restarts: usize = w.workers.iter().map(|x| x.restarts).sum::<usize>() - restarts_before;
    let statuses = w.statuses().await;
    w.both_active("after Redis").await;
    let twice = w.applied_on_a().into_iter().filter(|(_, n)| *n > 1).count();
    let pass = operator.iter().all(|s| *s == 200)
        && listener.iter().all(|s| *s == 200)
        && resumed
        && applied_since <= window / TICK_SECS + 2
        && twice == 0;
    Outcome {
        scenario: "Redis stopped",
        injected: format!("redis-server stopped for {secs} s, restarted empty"),
        expected: "operator API and federation listener keep answering; workers reconnect; at most one catch-up sweep",
        seen: format!(
            "operator calls {:?}; listener calls {:?}; worker restarts {restarts}; sweeps resumed: {resumed}; {applied_since} sweeps in the {window} s after (≤ {} allowed); keys applied twice {twice}; A/B {statuses:?}",
            operator.iter().collect::<std::collections::BTreeSet<_>>(),
            listener.iter().collect::<std::collections::BTreeSet<_>>(),
            window / TICK_SECS + 2
        ),
        pass,
    }
}

impl World {
    /// Starts instance C (API + worker) unfederated.
    async fn start_c(&mut self) -> String {
        let redis = self.cluster.redis_url();
        let db = TestDb::new();
        let admin = admin_token(&mut db.conn());
        let (http, fed) = (free_port(), free_port());
        let public = format!("https://127.0.0.1:{fed}");
        let mut api = Api {
            name: "C".to_owned(),
            env: api_env(
                &db.url,
                &redis,
                "chaos-c",
                &master_key_file(),
                http,
                fed,
                &public,
            ),
            http,
            proc: None,
            past: Vec::new(),
        };
        api.start(None);
        api.ready().await;
        let mut worker = Worker {
            name: "wc".to_owned(),
            env: worker_env(&format!("http://127.0.0.1:{http}"), &redis, "chaos-c"),
            proc: None,
            past: Vec::new(),
            restarts: 0,
            exited_at: None,
            held: false,
        };
        worker.start();
        self.workers.push(worker);
        self.c = Some((db, admin, api));
        public
    }

    fn c_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.c.as_ref().unwrap().2.http)
    }

    /// A's and C's rows for each other (A's row for C found by its URL).
    async fn a_c_statuses(&self, c_public: &str) -> (String, String) {
        let (_, a) = self.call(self.a_url(PEERS), &self.a_admin, None).await;
        let a_status = a["data"]
            .as_array()
            .and_then(|l| {
                l.iter()
                    .find(|p| p["remote_instance_url"] == c_public && p["status"] != "revoked")
            })
            .and_then(|p| p["status"].as_str())
            .unwrap_or("none")
            .to_owned();
        let c_admin = self.c.as_ref().unwrap().1.clone();
        let (_, c) = self.call(self.c_url(PEERS), &c_admin, None).await;
        let c_status = c["data"]
            .as_array()
            .and_then(|l| l.iter().find(|p| p["status"] != "revoked"))
            .and_then(|p| p["status"].as_str())
            .unwrap_or("none")
            .to_owned();
        (a_status, c_status)
    }
}

/// Which process a kill lands in: A's first replica (the federation proxy pinned to it) or C.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    A1,
    C,
}

/// An accept, from C's operator call to both rows stored: five moments, on both sides.
const ACCEPT_POINTS: [(&str, Side, bool); 5] = [
    // (point, process killed, A's accept committed before the kill)
    ("accept-remote-before-call", Side::C, false),
    ("accept-received", Side::A1, false),
    ("accept-before-commit", Side::A1, false),
    ("accept-after-commit", Side::A1, true),
    ("accept-remote-before-commit", Side::C, true),
];

/// A handshake, from C's contact job taking its lease to C's first heartbeat: five moments.
const HANDSHAKE_POINTS: [(&str, Side); 5] = [
    ("handshake-after-lease", Side::C),
    ("handshake-before-commit", Side::A1),
    ("handshake-after-commit", Side::A1),
    ("handshake-before-record", Side::C),
    ("handshake-after-record", Side::C),
];

impl World {
    fn side(&self, side: Side) -> &Api {
        match side {
            Side::A1 => &self.a[0],
            Side::C => &self.c.as_ref().unwrap().2,
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut Api {
        match side {
            Side::A1 => &mut self.a[0],
            Side::C => &mut self.c.as_mut().unwrap().2,
        }
    }

    /// Restarts the process with `point` armed (pause); for A1, C's calls are pinned to it.
    async fn arm(&mut self, side: Side, point: &str) {
        let api = self.side_mut(side);
        api.kill9().await;
        api.start(Some(&format!("{point}=pause")));
        api.ready().await;
        if side == Side::A1 {
            self._a_fed.pin(Some(0));
        }
    }

    /// Kills the armed process once it is paused at `point` (past `before` earlier pauses),
    /// then starts it again unarmed.
    async fn kill_at(&mut self, side: Side, point: &str, before: usize) {
        self.side(side).wait_reached(point, before).await;
        let api = self.side_mut(side);
        api.kill9().await;
        self._a_fed.pin(None);
        let api = self.side_mut(side);
        api.start(None);
        api.ready().await;
    }

    /// A fresh proposal of C (earlier pairs revoked) with `point` armed on `side`: A's peer id,
    /// the token, and how often `point` was reached before.
    async fn armed_proposal(
        &mut self,
        c_public: &str,
        side: Side,
        point: &str,
    ) -> (String, String, usize) {
        self.unfederate_c(c_public).await;
        let (a_peer, token) = self.propose(c_public).await;
        self.arm(side, point).await;
        let before = self.side(side).reached(point);
        (a_peer, token, before)
    }

    /// A proposes the instance at `public`: A's peer id and the token.
    async fn propose(&self, public: &str) -> (String, String) {
        let (status, proposed) = self
            .call(
                self.a_url(PEERS),
                &self.a_admin,
                Some(json!({"remote_instance_url": public, "spawn_role": "parent", "spawn_mode": "autonomous_peer"})),
            )
            .await;
        assert_eq!(status, 201, "{proposed}");
        (
            proposed["data"]["peer"]["id"].as_str().unwrap().to_owned(),
            proposed["data"]["acceptance_token"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    }

    /// C's operator accepts `token` (in the background: the harness kills a process meanwhile);
    /// the answer's status, 0 when C died with the call.
    fn accept_on_c(&self, token: &str) -> tokio::task::JoinHandle<u16> {
        let (client, url, token, admin) = (
            self.client.clone(),
            self.c_url(&format!("{PEERS}/accept")),
            token.to_owned(),
            self.c.as_ref().unwrap().1.clone(),
        );
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(admin)
                .json(&json!({"acceptance_token": token}))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        })
    }

    /// Revokes every live row between A and C on both sides, so C can accept a new token.
    async fn unfederate_c(&self, c_public: &str) {
        let c_admin = self.c.as_ref().unwrap().1.clone();
        for (url, token, filter) in [
            (self.a_url(PEERS), self.a_admin.clone(), Some(c_public)),
            (self.c_url(PEERS), c_admin, None),
        ] {
            let (_, list) = self.call(url.clone(), &token, None).await;
            for p in list["data"].as_array().cloned().unwrap_or_default() {
                if p["status"] == "revoked" || filter.is_some_and(|f| p["remote_instance_url"] != f)
                {
                    continue;
                }
                let id = p["id"].as_str().unwrap();
                let (status, v) = self
                    .call(
                        format!("{url}/{id}/revoke"),
                        &token,
                        Some(json!({"reason": "chaos: next kill offset"})),
                    )
                    .await;
                assert_eq!(status, 200, "{v}");
            }
        }
    }

    /// Rows between A and C that are not revoked: (A's for C, C's for A).
    fn live_c_rows(&self, c_public: &str) -> (i64, i64) {
        (
            self.count(
                &self.a_db,
                &format!("SELECT count(*) AS n FROM peers WHERE remote_instance_url = '{c_public}' AND status <> 'revoked'"),
            ),
            self.count(
                &self.c.as_ref().unwrap().0,
                "SELECT count(*) AS n FROM peers WHERE status <> 'revoked'",
            ),
        )
    }

    /// Waits (bounded) until A's and C's live rows for each other are both active.
    async fn c_active(&mut self, c_public: &str) -> Option<Duration> {
        let t = Instant::now();
        while t.elapsed() < DEADLINE {
            if self.a_c_statuses(c_public).await == ("active".to_owned(), "active".to_owned()) {
                return Some(t.elapsed());
            }
            self.run_for(Duration::from_millis(250)).await;
        }
        None
    }
}

/// kill -9 mid-accept at one of `ACCEPT_POINTS`: nothing half-written on either side, no
/// duplicate; the accept run again succeeds, or (A committed) fails honestly and revoke +
/// re-propose works (SPEC §7); both end active.
async fn kill_mid_accept(
    w: &mut World,
    c_public: &str,
    point: &'static str,
    side: Side,
    committed: bool,
) -> Outcome {
    let (a_peer, token, before) = w.armed_proposal(c_public, side, point).await;
    let call = w.accept_on_c(&token);
    w.kill_at(side, point, before).await;
    let first = call.await.unwrap();
    let a_status = |status: &str| {
        w.count(
            &w.a_db,
            &format!(
                "SELECT count(*) AS n FROM peers WHERE id = '{a_peer}' AND status = '{status}'"
            ),
        )
    };
    let (a_accepted, a_proposed) = (a_status("accepted"), a_status("proposed"));
    let a_certs = w.count(
        &w.a_db,
        &format!("SELECT count(*) AS n FROM peer_certificates WHERE peer_id = '{a_peer}'"),
    );
    let (_, c_rows) = w.live_c_rows(c_public);
    let again = w.accept_on_c(&token).await.unwrap();
    let mut recovery = format!("the accept run again answered {again}");
    let mut recovered = again == 201;
    if committed && again != 201 {
        // The token was spent by A's commit: revoke A's half and start over (SPEC §7).
        w.unfederate_c(c_public).await;
        let (_, token) = w.propose(c_public).await;
        let fresh = w.accept_on_c(&token).await.unwrap();
        recovery.push_str(&format!("; revoke + re-propose + accept answered {fresh}"));
        recovered = fresh == 201;
    }
    let active = w.c_active(c_public).await;
    let (a_live, c_live) = w.live_c_rows(c_public);
    let pass = (if side == Side::C {
        first == 0
    } else {
        first == 502
    }) && c_rows == 0
        && if committed {
            // The whole accept on A, and the spent token refused honestly on the re-run.
            a_accepted == 1 && a_certs == 1 && (400..500).contains(&again)
        } else {
            // Nothing of it on A: still proposed, no certificate; the re-run succeeds.
            a_proposed == 1 && a_certs == 0 && again == 201
        }
        && recovered
        && active.is_some()
        && (a_live, c_live) == (1, 1);
    Outcome {
        scenario: "kill -9 mid-accept",
        injected: format!(
            "{} paused at `{point}` of C's accept, then SIGKILL",
            if side == Side::C { "C" } else { "A1" }
        ),
        expected: if committed {
            "A keeps its whole accept, C nothing; the re-run fails honestly (4xx), revoke + re-propose succeeds; one live row each side, active"
        } else {
            "nothing stored on either side; the re-run succeeds; one live row each side, active"
        },
        seen: format!(
            "C's accept answered {first}; then A's row {}, A's certificates for C {a_certs}, C's rows {c_rows}; {recovery}; live rows A {a_live} / C {c_live}, both active {}",
            if a_accepted == 1 {
                "accepted"
            } else if a_proposed == 1 {
                "proposed"
            } else {
                "neither proposed nor accepted"
            },
            active.map_or("never".to_owned(), |d| format!(
                "{:.1} s after",
                d.as_secs_f64()
            ))
        ),
        pass,
    }
}

/// kill -9 mid-handshake at one of `HANDSHAKE_POINTS` (C's contact job after its accept): the
/// job's retry or C's next tick completes it; one certificate each way, one event each.
async fn kill_mid_handshake(
    w: &mut World,
    c_public: &str,
    point: &'static str,
    side: Side,
) -> Outcome {
    let (a_peer, token, before) = w.armed_proposal(c_public, side, point).await;
    let accepted = w.accept_on_c(&token).await.unwrap();
    w.kill_at(side, point, before).await;
    let active = w.c_active(c_public).await;
    let a_count = |sql: &str| w.count(&w.a_db, &sql.replace("{id}", &a_peer));
    let a_inbound = a_count(
        "SELECT count(*) AS n FROM peer_certificates WHERE peer_id = '{id}' AND direction = 'inbound'",
    );
    let a_outbound = a_count(
        "SELECT count(*) AS n FROM peer_certificates WHERE peer_id = '{id}' AND direction = 'outbound'",
    );
    let accepted_events = a_count(
        "SELECT count(*) AS n FROM fleet_events WHERE peer_id = '{id}' AND kind = 'federation.peer.accepted'",
    );
    let enrolled_events = a_count(
        "SELECT count(*) AS n FROM fleet_events WHERE peer_id = '{id}' AND kind = 'federation.peer.enrolled'",
    );
    let c_db = &w.c.as_ref().unwrap().0;
    let c_certs = w.count(
        c_db,
        "SELECT count(*) AS n FROM peer_certificates c JOIN peers p ON p.id = c.peer_id WHERE p.status <> 'revoked'",
    );
    let (a_live, c_live) = w.live_c_rows(c_public);
    let pass = accepted == 201
        && active.is_some()
        && (a_inbound, a_outbound, c_certs) == (1, 1, 2)
        && (accepted_events, enrolled_events) == (1, 1)
        && (a_live, c_live) == (1, 1);
    Outcome {
        scenario: "kill -9 mid-handshake",
        injected: format!(
            "{} paused at `{point}` of C's contact job (handshake, then C's first heartbeat), then SIGKILL",
            if side == Side::C { "C" } else { "A1" }
        ),
        expected: "the job's retry (on A2) or C's next tick completes it: both active; one certificate each way on both sides, one accepted and one enrolled event",
        seen: format!(
            "both active {}; A's certificates for C inbound {a_inbound} / outbound {a_outbound}, C's {c_certs}; events accepted {accepted_events}, enrolled {enrolled_events}; live rows A {a_live} / C {c_live}",
            active.map_or("never".to_owned(), |d| format!(
                "{:.1} s after the kill",
                d.as_secs_f64()
            ))
        ),
        pass,
    }
}

/// B vanishes without a goodbye: its worker stopped, its federation port first accepting and
/// never answering, then closed; then it returns.
async fn blackholed_b(w: &mut World, c_public: &str) -> Outcome {
    let b_fed: u16 =
        w.b.env
            .iter()
            .find(|(k, _)| *k == "POWERNODE_FEDERATION_LISTEN")
            .and_then(|(_, v)| v.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap();
    let wb = w.workers.iter().position(|x| x.name == "wb").unwrap();
    w.workers[wb].held = true;
    w.workers[wb].kill9().await;
    w.b.kill9().await;
    let silent = tokio::net::TcpListener::bind(("127.0.0.1", b_fed))
        .await
        .unwrap();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            sockets.push(s);
        }
    });
    let gone = Instant::now();
    // C's view of A: A keeps heartbeating C on schedule (the slowest gap seen).
    // (C's live row: the accept and handshake kills leave revoked ones behind.)
    let worst_gap = |w: &World| {
        w.count(
            &w.c.as_ref().unwrap().0,
            "SELECT COALESCE(max(extract(epoch FROM now() - last_heartbeat_at))::bigint, 9999) AS n FROM peers WHERE status <> 'revoked'",
        )
    };
    let mut gap = 0;
    let mut degraded_after = None;
    while gone.elapsed() < Duration::from_secs(STALE_AFTER_SECS + 30) {
        w.run_for(Duration::from_millis(500)).await;
        gap = gap.max(worst_gap(w));
        if degraded_after.is_none() && w.statuses_a_only().await == "degraded" {
            degraded_after = Some(gone.elapsed());
        }
        if degraded_after.is_some() && gone.elapsed() > Duration::from_secs(STALE_AFTER_SECS + 10) {
            break;
        }
    }
    // Then closed: connections refused for a while.
    held.abort();
    w.run_for(Duration::from_secs(TICK_SECS * 2)).await;
    gap = gap.max(worst_gap(w));
    // B returns.
    w.b.start(None);
    w.b.ready().await;
    w.workers[wb].held = false;
    w.workers[wb].start();
    let back = Instant::now();
    let (mut a_active_after, mut active_after) = (None, None);
    while back.elapsed() < DEADLINE {
        w.run_for(Duration::from_millis(250)).await;
        let (a_sees_b, b_sees_a) = w.statuses().await;
        if a_active_after.is_none() && a_sees_b == "active" {
            a_active_after = Some(back.elapsed());
        }
        if a_sees_b == "active" && b_sees_a == "active" {
            active_after = Some(back.elapsed());
            break;
        }
    }
    let c_status = w.a_c_statuses(c_public).await;
    // B's worker needs a moment to start, then B's first tick (or contact) reaches A.
    let pass = degraded_after.is_some_and(|d| d.as_secs() + 1 >= STALE_AFTER_SECS)
        && gap <= i64::try_from(TICK_SECS * 3).unwrap()
        && a_active_after.is_some_and(|d| d <= Duration::from_secs(TICK_SECS * 2 + 5))
        && active_after.is_some()
        && c_status == ("active".to_owned(), "active".to_owned());
    Outcome {
        scenario: "B blackholed, then back",
        injected: format!(
            "B's worker stopped; B's federation port accepting and never answering for {} s, then closed for {} s; then B restarted",
            degraded_after.map_or(0, |d| d.as_secs()) + 10,
            TICK_SECS * 2
        ),
        expected: "A degrades B after stale_after, not before; A's heartbeats to C keep their schedule; A sees B active within a tick of B's worker starting",
        seen: format!(
            "A degraded B {} after it went silent (stale_after {STALE_AFTER_SECS} s); C's longest wait for A's heartbeat {gap} s (ticks every {TICK_SECS} s); after B's restart A saw it active in {}, both sides active in {}; A/C {c_status:?}",
            degraded_after.map_or("never".to_owned(), |d| format!("{:.0} s", d.as_secs_f64())),
            a_active_after.map_or("never".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
            active_after.map_or("never".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
        ),
        pass,
    }
}

impl World {
    /// A's row for B (found by B's URL).
    async fn statuses_a_only(&self) -> String {
        let b_url = self
            .b
            .env
            .iter()
            .find(|(k, _)| *k == "POWERNODE_FEDERATION_PUBLIC_URL")
            .map(|(_, v)| v.clone())
            .unwrap();
        let (_, a) = self.call(self.a_url(PEERS), &self.a_admin, None).await;
        a["data"]
            .as_array()
            .and_then(|l| l.iter().find(|p| p["remote_instance_url"] == b_url))
            .and_then(|p| p["status"].as_str())
            .unwrap_or("none")
            .to_owned()
    }
}

/// kill -9 of the replica executing an approved proposal, before the action (`after-start`)
/// or after it but before the outcome is recorded (`before-record`).
async fn kill_mid_approval(w: &mut World, point: &'static str) -> Outcome {
    use powernode_domain::Permission;
    let approver = powernode_tests::create_operator(
        &mut w.a_db.conn(),
        &format!("approver-{}", uuid::Uuid::new_v4().simple()),
        &[Permission::FederationRead, Permission::InfraTasksControl],
    );
    let url = format!(
        "https://approval-{}.example.com",
        uuid::Uuid::new_v4().simple()
    );
    // Proposals need approval for this scenario (the seeded policy; the harness's database
    // starts with notify_and_proceed so the set-up can federate freely).
    let set_policy = |w: &World, policy: &str| {
        diesel::sql_query(format!(
            "UPDATE intervention_policies SET policy = '{policy}' WHERE action = 'system.federation_peer_propose'"
        ))
        .execute(&mut w.a_db.conn())
        .unwrap();
    };
    set_policy(w, "require_approval");
    w.a[0].kill9().await;
    w.a[0].start(Some(&format!("{point}=pause")));
    w.a[0].ready().await;
    // Just after a tick boundary: the regular manager tick (on A2) has passed; ours is first.
    while now_unix() % TICK_SECS != 1 {
        w.run_for(Duration::from_millis(100)).await;
    }
    let (status, queued) = w
        .call(
            w.a_url(PEERS),
            &w.a_admin,
            Some(json!({"remote_instance_url": url, "spawn_role": "parent"})),
        )
        .await;
    assert_eq!(status, 202, "the seeded policy gates propose: {queued}");
    let request = queued["data"]["approval_request"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, decided) = w
        .call(
            w.a_url(&format!("/api/v1/ai/autonomy/approvals/{request}/approve")),
            &approver,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{decided}");
    let tick = (now_unix() / TICK_SECS + 1) * TICK_SECS;
    let before = w.a[0].reached(point);
    let call = {
        let (client, url) = (
            w.client.clone(),
            format!(
                "http://127.0.0.1:{}/api/v1/system/worker_api/sdwan_manager/tick",
                w.a[0].http
            ),
        );
        tokio::spawn(async move {
            client
                .post(url)
                .header("X-Worker-Token", WORKER_TOKEN)
                .header("X-Powernode-Tick", format!("sdwan_manager_tick:{tick}"))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    w.a[0].wait_reached(point, before).await;
    w.a[0].kill9().await;
    let killed = call.await.unwrap();
    // A later tick on A2 re-runs the interrupted execution once and records it.
    let t = Instant::now();
    let mut shown = Value::Null;
    while t.elapsed() < DEADLINE {
        w.run_for(Duration::from_millis(500)).await;
        let (_, v) = w
            .call(
                w.a_url(&format!("/api/v1/ai/autonomy/approvals/{request}")),
                &w.a_admin,
                None,
            )
            .await;
        if v["data"]["execution_status"] != "pending" && !v["data"]["execution_status"].is_null() {
            shown = v["data"].clone();
            break;
        }
    }
    w.a[0].start(None);
    w.a[0].ready().await;
    set_policy(w, "notify_and_proceed");
    let peers = w.count(
        &w.a_db,
        &format!("SELECT count(*) AS n FROM peers WHERE remote_instance_url = '{url}'"),
    );
    let proposed_events = w.count(
        &w.a_db,
        &format!(
            "SELECT count(*) AS n FROM fleet_events e JOIN peers p ON p.id = e.peer_id
              WHERE p.remote_instance_url = '{url}' AND e.kind = 'federation.peer.proposed'"
        ),
    );
    let status = shown["execution_status"]
        .as_str()
        .unwrap_or("never recorded")
        .to_owned();
    let error = shown["execution_error"].as_str().unwrap_or("").to_owned();
    // Before the action: the re-run is the one execution. After it: the re-run finds the peer
    // and says so (SPEC §7: an interrupted execution is re-run once, its outcome recorded).
    let pass = killed.is_err()
        && peers == 1
        && proposed_events == 1
        && match point {
            // Killed after the peer was stored, before its outcome: the re-run says so.
            "approval-before-record" => status == "failed" && error.contains("already exists"),
            _ => status == "succeeded",
        };
    Outcome {
        scenario: "kill -9 of a replica mid-approval-execution",
        injected: format!("A1 paused at `{point}` executing an approved propose, then SIGKILL"),
        expected: "one proposed peer, one event; the execution recorded once: succeeded (by A2's re-run, or before the kill), or failed saying the peer exists",
        seen: format!(
            "peers for the URL {peers}; proposed events {proposed_events}; execution {status}{}",
            if error.is_empty() {
                String::new()
            } else {
                format!(": {error}")
            }
        ),
        pass,
    }
}

/// An approved action's execution, from its claim to its outcome recorded: five moments.
const APPROVAL_POINTS: [&str; 5] = [
    "approval-after-claim",
    "approval-after-start",
    "propose-before-insert",
    "approval-before-record",
    "approval-after-record",
];

/// 200 heartbeats/s from 100 peers across both replicas for `secs`, A1 restarted (SIGTERM,
/// drained) in the middle.
async fn load(w: &mut World, secs: u64) -> Outcome {
    const PEERS_N: usize = 100;
    const PER_PEER_PER_SEC: u64 = 2;
    let ids: Vec<(uuid::Uuid, uuid::Uuid)> = (0..PEERS_N)
        .map(|_| (uuid::Uuid::new_v4(), uuid::Uuid::new_v4()))
        .collect();
    let a_key = w.a[0]
        .env
        .iter()
        .find(|(k, _)| *k == "POWERNODE_MASTER_KEY_FILE")
        .map(|(_, v)| v.clone())
        .unwrap();
    // Platform peers, so A's sweep watches them; their URLs refuse at once (A's PeerClient
    // fails fast on them and backs off).
    let identities = powernode_tests::seed_active_peers(&w.a_db.url, &a_key, &ids, |i| {
        format!("https://127.0.0.1:{}", 10_000 + i)
    })
    .await;
    let ca_pem = {
        #[derive(diesel::QueryableByName)]
        struct Ca {
            #[diesel(sql_type = diesel::sql_types::Text)]
            ca_cert_pem: String,
        }
        diesel::sql_query("SELECT ca_cert_pem FROM instance_identity")
            .get_result::<Ca>(&mut w.a_db.conn())
            .unwrap()
            .ca_cert_pem
    };
    let url = format!(
        "https://127.0.0.1:{}/api/v1/system/federation_api/heartbeat",
        w._a_fed.port
    );
    let stop_at = Instant::now() + Duration::from_secs(secs);
    let senders: Vec<_> = identities
        .into_iter()
        .map(|identity| {
            let client = reqwest::Client::builder()
                .identity(identity)
                .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let url = url.clone();
            tokio::spawn(async move {
                let (mut ok, mut errors, mut other) = (0u64, Vec::new(), 0u64);
                let mut tick =
                    tokio::time::interval(Duration::from_millis(1000 / PER_PEER_PER_SEC));
                while Instant::now() < stop_at {
                    tick.tick().await;
                    match client.post(&url).json(&json!({})).send().await {
                        Ok(r) if r.status() == 200 => ok += 1,
                        Ok(r) => {
                            other += 1;
                            errors.push((Instant::now(), format!("HTTP {}", r.status().as_u16())));
                        }
                        Err(e) => {
                            let mut text = e.to_string();
                            let mut source = std::error::Error::source(&e);
                            while let Some(cause) = source {
                                text = format!("{text}): {cause}");
                                source = cause.source();
                            }
                            errors.push((Instant::now(), text));
                        }
                    }
                }
                (ok, errors, other)
            })
        })
        .collect();
    // Halfway: A1 restarted (SIGTERM drains in-flight requests), the other replica serving.
    let half = Instant::now() + Duration::from_secs(secs / 2);
    let ages_sql = format!(
        "SELECT COALESCE(max(extract(epoch FROM now() - last_heartbeat_at))::bigint, 9999) AS n FROM peers WHERE id IN ({})",
        ids.iter()
            .map(|(id, _)| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut worst_age = 0;
    let mut restarted = false;
    let mut restart_window = None;
    // The first seconds ramp up; ages are read once every sender has had a go.
    w.run_for(Duration::from_secs(3)).await;
    while Instant::now() < stop_at {
        w.run_for(Duration::from_secs(1)).await;
        worst_age = worst_age.max(w.count(&w.a_db, &ages_sql));
        if !restarted && Instant::now() >= half {
            restarted = true;
            let from = Instant::now();
            if let Some(mut p) = w.a[0].proc.take() {
                p.signal("TERM");
                let _ = tokio::time::timeout(Duration::from_secs(40), p.child.wait()).await;
                w.a[0].past.extend(p.lines());
            }
            w.a[0].start(None);
            w.a[0].ready().await;
            restart_window = Some((from, Instant::now()));
        }
    }
    let (mut ok, mut errors, mut non_200) = (0, Vec::new(), 0);
    for s in senders {
        let (o, e, n) = s.await.unwrap();
        ok += o;
        errors.extend(e);
        non_200 += n;
    }
    let stale = w.count(
        &w.a_db,
        &format!(
            "SELECT count(*) AS n FROM fleet_events WHERE kind = 'federation.peer.heartbeat_stale' AND peer_id IN ({})",
            ids.iter().map(|(id, _)| format!("'{id}'")).collect::<Vec<_>>().join(",")
        ),
    );
    // What went wrong, without the URL (the cause is at the end of reqwest's chain).
    let mut kinds: Vec<String> = errors
        .iter()
        .map(|(_, e)| {
            e.rsplit("): ")
                .next()
                .unwrap_or(e)
                .chars()
                .take(120)
                .collect()
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    kinds.truncate(3);
    // Every failure falls in the restart (SIGTERM until the replica is ready again, plus the
    // one request each peer may have had in flight then).
    let outside = errors
        .iter()
        .filter(|(at, _)| {
            restart_window.is_none_or(|(from, to): (Instant, Instant)| {
                *at < from || *at > to + Duration::from_secs(11)
            })
        })
        .count();
    let window = restart_window.map_or(0.0, |(from, to)| (to - from).as_secs_f64());
    let rate = ok as f64 / secs as f64;
    // Each peer sends one request at a time: at most one per peer can be cut by the restart
    // (in flight on the stopping replica, or on a connection it closed). Never an error answer.
    let pass = errors.len() <= PEERS_N
        && outside == 0
        && non_200 == 0
        && stale == 0
        && worst_age <= i64::try_from(STALE_AFTER_SECS).unwrap();
    Outcome {
        scenario: "load with a replica restart",
        injected: format!(
            "{PEERS_N} peers × {PER_PEER_PER_SEC} heartbeats/s for {secs} s through the proxy; A1 restarted (SIGTERM) halfway"
        ),
        expected: "no error answers; failures only while the replica restarts, at most one per peer (its request in flight there); no heartbeat age above stale_after",
        seen: format!(
            "{ok} answered 200 ({rate:.0}/s); {} failed, all during the {window:.1} s restart: {} ({non_200} non-200){}; oldest heartbeat seen {worst_age} s (stale_after {STALE_AFTER_SECS} s); stale events {stale}",
            errors.len(),
            outside == 0,
            if kinds.is_empty() {
                String::new()
            } else {
                format!(": {}", kinds.join("; "))
            }
        ),
        pass,
    }
}

/// PostgreSQL restarted (fast shutdown + start): the pools reconnect by themselves.
async fn restarted_postgres(w: &mut World) -> Outcome {
    let pids_before: Vec<Option<u32>> =
        w.a.iter()
            .chain(std::iter::once(&w.b))
            .map(Api::pid)
            .collect();
    let t = Instant::now();
    w.cluster
        .pg_ctl(&["-m", "fast", "-w", "-t", "60", "restart"]);
    let restarted = t.elapsed();
    let mut recovered = true;
    for api in w.a.iter().chain(std::iter::once(&w.b)) {
        recovered &=
            eventually_ok(&w.client, &format!("http://127.0.0.1:{}/readyz", api.http)).await;
    }
    let ready = t.elapsed();
    w.run_for(Duration::from_secs(TICK_SECS * 2)).await;
    let (status, _) = w.call(w.a_url(PEERS), &w.a_admin, None).await;
    let pids_after: Vec<Option<u32>> =
        w.a.iter()
            .chain(std::iter::once(&w.b))
            .map(Api::pid)
            .collect();
    let statuses = w.statuses().await;
    let pass = recovered
        && status == 200
        && pids_before == pids_after
        && statuses == ("active".to_owned(), "active".to_owned());
    Outcome {
        scenario: "PostgreSQL restarted",
        injected: "pg_ctl restart -m fast".to_owned(),
        expected: "pools reconnect; no process restarts",
        seen: format!(
            "restart took {:.1} s; every API ready {:.1} s after it began; operator call {status}; API pids unchanged: {}; A/B {statuses:?}",
            restarted.as_secs_f64(),
            ready.as_secs_f64(),
            pids_before == pids_after
        ),
        pass,
    }
}

/// kill -9 of a worker as it starts a job: the other worker or the next tick applies it once.
/// Where a worker dies mid-job: as it logs the job's start, or while its call to the API is
/// held (sleeping 3 s) at one of the tick's fail points — before the API claims the tick,
/// after, before it records the answer, after.
const WORKER_POINTS: [Option<&str>; 5] = [
    None,
    Some("tick-before-claim"),
    Some("tick-after-claim"),
    Some("tick-before-record"),
    Some("tick-after-record"),
];

/// kill -9 of worker wa1 mid-job; at a fail point, wa2 is held (stopped) so the call held at
/// A1 (the operator proxy pinned to it) is wa1's.
async fn kill_worker_mid_job(w: &mut World, point: Option<&'static str>) -> Outcome {
    let restarts_before = w.workers[0].restarts;
    let seen_before = w.workers[0].lines().len();
    let armed = point.map(|p| format!("{p}.federation_heartbeat"));
    if let Some(armed) = &armed {
        w.workers[1].held = true;
        w.workers[1].kill9().await;
        w.a[0].kill9().await;
        w.a[0].start(Some(&format!("{armed}=sleep(3000)")));
        w.a[0].ready().await;
        w.a_op.pin(Some(0));
        let before = w.a[0].reached(armed);
        w.a[0].wait_reached(armed, before).await;
    } else {
        let t = Instant::now();
        loop {
            w.run_for(Duration::from_millis(50)).await;
            let started = w.workers[0].lines().iter().skip(seen_before).any(|l| {
                l.contains("[FederationHeartbeatJob] Starting heartbeat sweep")
                    || l.contains("[FederationPeerHeartbeatJob] Starting peer heartbeats")
            });
            if started || t.elapsed() > DEADLINE {
                break;
            }
        }
    }
    let from = now_unix();
    w.workers[0].kill9().await;
    w.a_op.pin(None);
    w.run_for(Duration::from_secs(TICK_SECS * 4)).await;
    if armed.is_some() {
        w.workers[1].held = false;
        w.a[0].kill9().await;
        w.a[0].start(None);
        w.a[0].ready().await;
    }
    let applied = w.applied_on_a();
    // Sweeps of ticks that began after the kill (the interrupted one is not counted).
    let after = sweep_keys(&applied)
        .into_iter()
        .filter(|k| *k >= from)
        .count();
    let twice = applied.iter().filter(|(_, n)| **n > 1).count();
    let restarted = w.workers[0].restarts > restarts_before;
    w.both_active("after the worker kill").await;
    let pass = after >= 2 && twice == 0 && restarted;
    Outcome {
        scenario: "kill -9 of a worker mid-job",
        injected: match point {
            None => "SIGKILL of worker wa1 as it logged a job's start line".to_owned(),
            Some(p) => format!(
                "SIGKILL of worker wa1 while its sweep call was held 3 s at A1's `{p}` (wa2 stopped)"
            ),
        },
        expected: "ticks keep being applied (by the other worker, or wa1 restarted), none twice",
        seen: format!(
            "{after} sweeps applied in the {} s after; keys applied twice {twice}; wa1 restarted by the supervisor: {restarted}",
            TICK_SECS * 4
        ),
        pass,
    }
}

fn table(outcomes: &[Outcome]) -> String {
    let mut t =
        String::from("| scenario | injected | expected | seen | result |\n|---|---|---|---|---|\n");
    for o in outcomes {
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            o.scenario,
            o.injected,
            o.expected,
            o.seen.replace('|', "/"),
            if o.pass { "pass" } else { "**FAIL**" }
        ));
    }
    t
}

/// `docs/reliability.md`: how the run was made, its table, what it does not cover yet.
fn report(table: &str, took: Duration, steady_secs: u64) -> String {
    let date = time::OffsetDateTime::now_utc().date();
    format!(
        "# Reliability under faults\n\n\
         Written by `scripts/dev chaos` (the full run) on {date}, on the reference machine (2 cores, \
         24 GiB), debug build, in {:.0} s. `scripts/dev chaos --quick` (run by `scripts/dev test`) \
         repeats the steady state (60 s), the kill inside the sweep transaction, PostgreSQL \
         stalled 10 s and Redis stopped 10 s, asserting outcomes only.\n\n\
         ## Set-up\n\n\
         - Its own PostgreSQL 15 cluster (port 55532) and Redis (56479), never the tests' or the \
           bench's; every process started and stopped by pid.\n\
         - Instance A: two API replicas (`A1`, `A2`) on one database, behind two round-robin TCP \
           proxies (`powernode_tests::rr_proxy`): one for the operator/worker API, one for the \
           federation listener (A's public URL). Two workers (`wa1`, `wa2`) call A through the \
           proxy. Instance B: one API, one worker (`wb`). Instance C (from the accept scenario \
           on): one API, one worker (`wc`). The harness restarts a worker 2 s after it exits, \
           as systemd's `Restart=on-failure` does.\n\
         - Schedules every {TICK_SECS} s (sweep, peer heartbeats, SDWAN Manager tick); \
           `stale_after` {STALE_AFTER_SECS} s; `POWERNODE_DATABASE_TIMEOUT_SECS` {DB_TIMEOUT_SECS}; \
           steady state {steady_secs} s.\n\
         - Kills at an exact moment use fail points (`powernode-api` feature `failpoints`, \
           `FAILPOINTS=<point>=pause`): the harness waits for `failpoint <point> reached` in the \
           process's log, then sends SIGKILL. Five points per operation, spread over it: the \
           sweep (before the tick claim, after it, inside the sweep transaction, before the \
           answer is recorded, after); an accept (C before calling A, A on receipt, inside A's \
           transaction, after A's commit, C after A's answer before its own commit); a \
           handshake (C holding its lease, inside A's transaction, after A's commit, C before \
           recording A's answer, C before its first heartbeat); an approved action's execution \
           (after the claim, after the attempt is recorded, inside the action, before the \
           outcome is recorded, after); a worker job (as it logs its start, and while its call \
           is held 3 s — `sleep` instead of `pause` — at each of the tick's four points).\n\
         - \"Applied once\" is read from the APIs' logs (`worker tick applied tick=<key>`, every \
           incarnation of every replica) and from `worker_ticks`; degradations from \
           `fleet_events`.\n\n\
         ## Results\n\n{table}\n\
         ## Known limits of this run\n\n\
         - A handshake killed while C holds its lease completes when the lease lapses (three \
           peer timeouts, 30 s) and C's next tick runs it; an accept killed after A's commit \
           cannot be re-run with the spent token (422), by design: revoke + re-propose.\n\
         - The proxies are plain TCP round robin without health checks. The load scenario's \
           failures are connections the stopping replica closed or left in its listen backlog \
           during its SIGTERM drain (TLS `unexpected EOF`); a load balancer that drains a replica \
           by its `/readyz` before stopping it would not send them there.\n\n\
         Process logs of the run: `.dev/logs/chaos/`.\n",
        took.as_secs_f64()
    )
}

/// Every process the harness started (pids), so an interrupted run stops them all.
static STARTED: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

fn started(p: Process) -> Process {
    if let Some(pid) = p.child.id() {
        STARTED.lock().unwrap().push(pid);
    }
    p
}

/// Interrupted (Ctrl-C, SIGTERM from a CI timeout): every process started here goes with us.
fn stop_everything_on_signal() {
    tokio::spawn(async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("chaos: interrupted; stopping every process it started");
        for pid in STARTED.lock().unwrap().iter() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        std::process::exit(130);
    });
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    stop_everything_on_signal();
    let started = Instant::now();
    let mut w = World::start().await;
    println!(
        "chaos: A (2 replicas, 2 workers) and B federated in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut outcomes = Vec::new();
    // CHAOS_STEADY_SECS / CHAOS_LOAD_SECS shorten phases and CHAOS_ONLY (comma list of
    // steady, sweep, stall, redis, accept, blackhole, approval, pgrestart, worker, load) picks
    // scenarios, while working on the harness itself; a report is written only by a full run.
    let secs = |var: &str, default: u64| {
        std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let steady_secs = secs("CHAOS_STEADY_SECS", if quick { 60 } else { 600 });
    let only = std::env::var("CHAOS_ONLY").ok();
    let run = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|n| n == name))
    };
    let push = |outcomes: &mut Vec<Outcome>, o: Outcome| {
        println!("chaos: {}: {}", o.scenario, o.seen);
        outcomes.push(o);
    };
    if run("steady") {
        let o = steady(&mut w, steady_secs).await;
        push(&mut outcomes, o);
    }
    if run("sweep") {
        let points: &[(&str, bool)] = if quick {
            &SWEEP_POINTS[2..3]
        } else {
            &SWEEP_POINTS
        };
        for (point, committed) in points {
            let o = kill_mid_sweep(&mut w, point, *committed).await;
            push(&mut outcomes, o);
        }
    }
    if run("stall") {
        let o = stalled_postgres(&mut w, if quick { 10 } else { 30 }).await;
        push(&mut outcomes, o);
    }
    if run("redis") {
        let o = redis_stopped(&mut w, if quick { 10 } else { 60 }).await;
        push(&mut outcomes, o);
    }
    if !quick {
        if run("accept") || run("blackhole") {
            let c_public = w.start_c().await;
            if run("accept") {
                for (point, side, committed) in ACCEPT_POINTS {
                    let o = kill_mid_accept(&mut w, &c_public, point, side, committed).await;
                    push(&mut outcomes, o);
                }
                for (point, side) in HANDSHAKE_POINTS {
                    let o = kill_mid_handshake(&mut w, &c_public, point, side).await;
                    push(&mut outcomes, o);
                }
            } else {
                let (_, token) = w.propose(&c_public).await;
                assert_eq!(w.accept_on_c(&token).await.unwrap(), 201);
                w.c_active(&c_public).await.expect("A and C active");
            }
        }
        if run("blackhole") {
            let c_public =
                w.c.as_ref()
                    .unwrap()
                    .2
                    .env
                    .iter()
                    .find(|(k, _)| *k == "POWERNODE_FEDERATION_PUBLIC_URL")
                    .map(|(_, v)| v.clone())
                    .unwrap();
            let o = blackholed_b(&mut w, &c_public).await;
            push(&mut outcomes, o);
        }
        if run("approval") {
            for point in APPROVAL_POINTS {
                let o = kill_mid_approval(&mut w, point).await;
                push(&mut outcomes, o);
            }
        }
        if run("pgrestart") {
            let o = restarted_postgres(&mut w).await;
            push(&mut outcomes, o);
        }
        if run("worker") {
            for point in WORKER_POINTS {
                let o = kill_worker_mid_job(&mut w, point).await;
                push(&mut outcomes, o);
            }
        }
        if run("load") {
            let o = load(&mut w, secs("CHAOS_LOAD_SECS", 600)).await;
            push(&mut outcomes, o);
        }
    }
    w.stop().await;
    let logs = std::path::PathBuf::from(
        std::env::var("CHAOS_LOG_DIR").unwrap_or_else(|_| "/tmp/powernode-chaos".to_owned()),
    );
    w.write_logs(&logs);
    let t = table(&outcomes);
    println!("\n{t}");
    println!("process logs: {}", logs.display());
    if !quick
        && only.is_none()
        && let Ok(path) = std::env::var("CHAOS_REPORT")
        && !path.is_empty()
    {
        std::fs::write(&path, report(&t, started.elapsed(), steady_secs)).unwrap();
        println!("wrote {path}");
    }
    let failed = outcomes.iter().filter(|o| !o.pass).count();
    if failed > 0 {
        eprintln!("chaos: {failed} scenario(s) failed");
        std::process::exit(1);
    }
}
