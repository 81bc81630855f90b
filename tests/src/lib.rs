//! Helpers for end-to-end tests: real PostgreSQL (a database per test), real Redis (a prefix
//! per test), the real API on port 0 and the real worker binary.
#![expect(
    clippy::expect_used,
    reason = "test helpers fail loudly with a message"
)]

pub mod browser;
pub mod federation;
pub mod peer_sim;
pub mod rr_proxy;
pub mod stall;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use powernode_api::settings::Settings;
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

pub const WORKER_TOKEN: &str = "test-worker-token-0123456789abcdef-0123456789";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through `scripts/dev test`, which starts PostgreSQL and Redis")
    })
}

/// The cluster's admin URL (database `postgres`).
pub fn admin_url() -> String {
    required_env("POWERNODE_TEST_DATABASE_URL")
}

pub fn redis_url() -> String {
    required_env("POWERNODE_TEST_REDIS_URL")
}

fn url_for(db: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{db}")
}

/// Template name derived from the migrations' content, so an edited migration gets a new
/// template instead of a stale one.
fn template_name() -> String {
    let mut files: Vec<PathBuf> = Vec::new();
    let dir = workspace_root().join("migrations");
    for entry in std::fs::read_dir(&dir).expect("migrations/ readable") {
        let path = entry.expect("dir entry").path();
        for f in ["up.sql", "down.sql"] {
            files.push(path.join(f));
        }
    }
    files.sort();
    let mut h = DefaultHasher::new();
    for f in files {
        f.file_name().hash(&mut h);
        f.parent().map(|p| p.file_name()).hash(&mut h);
        std::fs::read(&f).unwrap_or_default().hash(&mut h);
    }
    format!("pn_tmpl_{:016x}", h.finish())
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Creates the migrated template once per migration set. nextest runs each test in its own
/// process, so a PostgreSQL advisory lock (not a `Once`) guards creation.
fn ensure_template(admin: &mut PgConnection) -> String {
    let name = template_name();
    diesel::sql_query("SELECT pg_advisory_lock(4242)")
        .execute(admin)
        .expect("advisory lock");
    let ready: i64 = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_database d
          WHERE d.datname = $1 AND shobj_description(d.oid, 'pg_database') = 'ready'",
    )
    .bind::<Text, _>(&name)
    .get_result::<Count>(admin)
    .expect("template lookup")
    .n;
    if ready == 0 {
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(admin)
            .expect("drop half-built template");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(admin)
            .expect("create template");
        {
            let mut conn = PgConnection::establish(&url_for(&name)).expect("connect template");
            powernode_store::migrate::run_pending(&mut conn).expect("migrate template");
        }
        diesel::sql_query(format!("COMMENT ON DATABASE {name} IS 'ready'"))
            .execute(admin)
            .expect("mark template ready");
    }
    diesel::sql_query("SELECT pg_advisory_unlock(4242)")
        .execute(admin)
        .expect("advisory unlock");
    name
}

/// A fresh, migrated database for one test, dropped when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// A migrated database whose gated federation actions proceed with a notification
    /// (`notify_and_proceed`, what `PUT /api/v1/ai/autonomy/policies/{action}` can set), so tests
    /// about other parts are not held in the approval queue. Approval tests use [`TestDb::gated`].
    pub fn new() -> Self {
        let db = Self::gated();
        diesel::sql_query(
            "UPDATE intervention_policies SET policy = 'notify_and_proceed' \
             WHERE action LIKE 'system.federation_peer_%'",
        )
        .execute(&mut db.conn())
        .expect("relax approval policies");
        db
    }

    /// A migrated database with the seeded policies: propose, accept and revoke need approval.
    pub fn gated() -> Self {
        let mut admin = PgConnection::establish(&admin_url()).expect("connect to test cluster");
        let template = ensure_template(&mut admin);
        let name = format!("pn_t_{}", Uuid::new_v4().simple());
        diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .execute(&mut admin)
            .expect("clone template");
        TestDb {
            url: url_for(&name),
            name,
        }
    }

    /// An empty database without migrations (for migration tests).
    pub fn empty() -> Self {
        let mut admin = PgConnection::establish(&admin_url()).expect("connect to test cluster");
        let name = format!("pn_e_{}", Uuid::new_v4().simple());
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .expect("create database");
        TestDb {
            url: url_for(&name),
            name,
        }
    }

    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).expect("connect to test database")
    }
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&admin_url()) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin);
        }
    }
}

/// A Redis key prefix no other test uses.
pub fn redis_prefix() -> String {
    format!("pntest-{}", Uuid::new_v4().simple())
}

/// Settings for an API on port 0 against `db`.
pub fn settings(db: &TestDb) -> Settings {
    settings_with(&db.url, &[])
}

/// Settings for an API on port 0 against the database at `url` (a relay in front of a test
/// database, another process's database), with `extra` variables added or overriding.
pub fn settings_with(url: &str, extra: &[(&str, String)]) -> Settings {
    let mut vars = vec![
        ("POWERNODE_DATABASE_URL", url.to_owned()),
        ("POWERNODE_REDIS_URL", redis_url()),
        ("POWERNODE_WORKER_TOKEN", WORKER_TOKEN.to_owned()),
        ("POWERNODE_HTTP_LISTEN", "127.0.0.1:0".to_owned()),
        ("POWERNODE_ENVIRONMENT", "development".to_owned()),
        ("POWERNODE_FEDERATION_LISTEN", "127.0.0.1:0".to_owned()),
    ];
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push((k, v.clone()));
    }
    settings_from(&vars)
}

pub const PUBLIC_URL: &str = "https://127.0.0.1:9443";

/// A fresh master key file (64 hex characters, mode 0600) for one test.
pub fn master_key_file() -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::temp_dir().join(format!("pn-master-{}.key", Uuid::new_v4()));
    let key: String = (0..32)
        .map(|i| format!("{:02x}", (i * 37 + 11) % 256))
        .collect();
    std::fs::write(&path, key).expect("write master key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    path.to_string_lossy().into_owned()
}

/// A web UI session key file (128 hex characters, mode 0600), as production requires.
pub fn ui_session_key_file() -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::temp_dir().join(format!("pn-ui-{}.key", Uuid::new_v4()));
    let key: String = (0..64)
        .map(|i| format!("{:02x}", (i * 53 + 7) % 256))
        .collect();
    std::fs::write(&path, key).expect("write UI session key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    path.to_string_lossy().into_owned()
}

/// Builds settings from explicit variables only (via a TOML file; the process environment is
/// ignored so a developer's POWERNODE_* variables cannot point a test at a real database).
pub fn settings_from(vars: &[(&str, String)]) -> Settings {
    let mut vars = vars.to_vec();
    for (k, v) in [
        ("POWERNODE_MASTER_KEY_FILE", master_key_file()),
        ("POWERNODE_UI_SESSION_KEY_FILE", ui_session_key_file()),
        ("POWERNODE_FEDERATION_PUBLIC_URL", PUBLIC_URL.to_owned()),
        ("POWERNODE_FEDERATION_LISTEN", "127.0.0.1:0".to_owned()),
        // Each API its own queue namespace: the contact jobs it offers (SPEC §4) must reach
        // only a worker started for it.
        ("POWERNODE_REDIS_PREFIX", redis_prefix()),
    ] {
        if !vars.iter().any(|(name, _)| *name == k) {
            vars.push((k, v));
        }
    }
    let mut toml = String::new();
    for (k, v) in &vars {
        let key = k.trim_start_matches("POWERNODE_").to_lowercase();
        // Like the environment: booleans and numbers are typed, everything else a string.
        if v.parse::<bool>().is_ok() || v.parse::<u64>().is_ok() {
            toml.push_str(&format!("{key} = {v}\n"));
        } else {
            toml.push_str(&format!("{key} = {v:?}\n"));
        }
    }
    let path = std::env::temp_dir().join(format!("pn-settings-{}.toml", Uuid::new_v4()));
    std::fs::write(&path, toml).expect("write settings file");
    let settings = Settings::load_from(Some(&path), false).expect("valid test settings");
    let _ = std::fs::remove_file(&path);
    settings
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    /// `https://127.0.0.1:<federation port>` (answers once the CA is ready).
    pub federation_address: String,
    pub client: reqwest::Client,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Sends `method path` with an optional bearer token and JSON body; returns status + JSON.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{status} body is not JSON: {text:?}"));
        (status, json)
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    /// The typed operator API client with `token`.
    pub fn operator(&self, token: &str) -> powernode_client::OperatorClient {
        powernode_client::OperatorClient::new(
            self.client.clone(),
            &self.address,
            token.to_owned().into(),
        )
    }

    /// The typed worker API client with the tests' worker token.
    pub fn worker_api(&self) -> powernode_client::WorkerClient {
        powernode_client::WorkerClient::new(
            self.client.clone(),
            &self.address,
            WORKER_TOKEN.to_owned().into(),
        )
    }

    /// One SDWAN Manager tick through the worker endpoint; its answer as JSON
    /// (`{expired, executed, …}`).
    pub async fn sdwan_tick(&self) -> serde_json::Value {
        let outcome = self.worker_api().sdwan_manager_tick().await.expect("tick");
        serde_json::to_value(outcome).expect("tick answer")
    }

    pub async fn sweep(&self) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/system/worker_api/federation/heartbeat_sweep"))
            .header("X-Worker-Token", WORKER_TOKEN)
            .send()
            .await
            .expect("sweep request")
    }
}

/// Boots the real API in this process on a free port.
pub async fn spawn_app(settings: Settings) -> TestApp {
    powernode_api::telemetry::init(settings.log_format);
    let app = powernode_api::Application::build(settings).expect("build app");
    let port = app.port();
    let federation_address = format!("https://127.0.0.1:{}", app.federation_port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        federation_address,
        client: reqwest::Client::new(),
    }
}

/// Where the workspace's binaries were built.
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("POWERNODE_BIN_DIR").map_or_else(
        || {
            // target/debug/deps/<test> → target/debug
            let exe = std::env::current_exe().expect("current exe");
            exe.parent()
                .and_then(Path::parent)
                .expect("target dir")
                .to_path_buf()
        },
        PathBuf::from,
    );
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first (`cargo build --workspace --bins`)",
        path.display()
    );
    path
}

/// A running `powernode-worker` (a `Process`) on a 1-second schedule.
pub struct WorkerProcess;

impl WorkerProcess {
    pub fn spawn(name: &str, api_address: &str, prefix: &str, extra: &[(&str, &str)]) -> Process {
        let mut env: Vec<(&str, String)> = vec![
            ("POWERNODE_API_URL", api_address.to_owned()),
            ("POWERNODE_WORKER_TOKEN", WORKER_TOKEN.to_owned()),
            ("POWERNODE_REDIS_URL", redis_url()),
            ("POWERNODE_REDIS_PREFIX", prefix.to_owned()),
            ("POWERNODE_WORKER_POLL_INTERVAL_MS", "100".to_owned()),
            (
                "POWERNODE_SCHEDULES__FEDERATION_HEARTBEAT__INTERVAL_SECS",
                "1".to_owned(),
            ),
            ("RUST_LOG", "info".to_owned()),
            // Each worker its own metrics port: two workers cannot share one.
            (
                "POWERNODE_WORKER_METRICS_LISTEN",
                format!("127.0.0.1:{}", free_port()),
            ),
        ];
        for (k, v) in extra {
            env.retain(|(name, _)| name != k);
            env.push((k, (*v).to_owned()));
        }
        Process::spawn("powernode-worker", &["--name", name], &env)
    }
}

fn collect<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    reader: R,
    lines: Arc<Mutex<Vec<String>>>,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if let Ok(mut l) = lines.lock() {
                l.push(line);
            }
        }
    });
}

/// Polls `check` every 50 ms until it returns `Some`, failing after `deadline`.
pub async fn eventually<T>(
    deadline: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the async `check` every 50 ms until it returns `Some`, failing after `deadline`.
pub async fn eventually_async<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The heartbeat sweep's events (source `federation_heartbeat_sweep`), newest first, at most 10.
pub fn sweep_events(conn: &mut PgConnection) -> Vec<powernode_store::events::FleetEvent> {
    use powernode_store::events::{self, EventFilter};
    events::list(
        conn,
        &EventFilter {
            source: Some("federation_heartbeat_sweep".to_owned()),
            limit: 10,
            ..EventFilter::default()
        },
    )
    .expect("sweep events")
}

/// Inserts a platform peer in `status` whose last heartbeat was `age_secs` ago by the
/// database clock (`None` = never).
pub fn insert_peer(
    conn: &mut PgConnection,
    status: &str,
    kind: &str,
    age_secs: Option<i64>,
) -> Uuid {
    let id = Uuid::new_v4();
    let heartbeat = match age_secs {
        Some(s) => format!("now() - interval '{s} seconds'"),
        None => "NULL".to_owned(),
    };
    let role = if kind == "platform" {
        "'symmetric'"
    } else {
        "NULL"
    };
    diesel::sql_query(format!(
        "INSERT INTO peers (id, origin, remote_instance_url, peer_kind, spawn_role, spawn_mode, status, last_heartbeat_at)
         VALUES ($1, 'proposed_here', 'https://peer-' || $1 || '.example.com', $2, {role}, 'autonomous_peer', $3, {heartbeat})"
    ))
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<Text, _>(kind)
    .bind::<Text, _>(status)
    .execute(conn)
    .expect("insert peer");
    id
}

/// Creates an enabled operator directly in the database and returns its token.
pub fn create_operator(
    conn: &mut PgConnection,
    name: &str,
    permissions: &[powernode_domain::Permission],
) -> String {
    let token = format!("pnop_test{}", Uuid::new_v4().simple());
    powernode_store::operators::insert(
        conn,
        &powernode_store::operators::NewOperator {
            name,
            token_digest: &powernode_domain::token::sha256_hex(token.as_bytes()),
            permissions,
            created_by: None,
        },
    )
    .expect("insert operator");
    token
}

/// An operator holding every permission.
pub fn admin_token(conn: &mut PgConnection) -> String {
    use powernode_domain::Permission::*;
    create_operator(
        conn,
        "admin",
        &[
            FederationRead,
            FederationManage,
            InfraTasksControl,
            OperatorsAdmin,
        ],
    )
}

/// A running binary whose stdout and stderr are collected line by line.
pub struct Process {
    pub child: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Process {
    pub fn spawn(binary: &str, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut cmd = tokio::process::Command::new(bin(binary));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().expect("stdout"), lines.clone());
        collect(child.stderr.take().expect("stderr"), lines.clone());
        Process { child, lines }
    }

    pub fn output(&self) -> String {
        self.lines().join("\n")
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines lock").clone()
    }

    /// Waits (polling every 50 ms, up to `deadline`) until some line satisfies `pred`.
    pub async fn wait_for(&self, deadline: Duration, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| pred(l)) {
                return line;
            }
            assert!(
                start.elapsed() < deadline,
                "no matching log line within {deadline:?}; output so far:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("process still running");
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }
}

/// A free loopback port (bound then released; the caller binds it right away).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Every text or jsonb cell of every table that contains `needle`, as `table.column`.
pub fn columns_containing(conn: &mut PgConnection, needle: &str) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Col {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        column_name: String,
    }
    let cols: Vec<Col> = diesel::sql_query(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
          WHERE table_schema = 'public' AND data_type IN ('text', 'jsonb', 'ARRAY', 'character varying')",
    )
    .load(conn)
    .expect("list columns");
    let mut hits = Vec::new();
    for c in cols {
        let n = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM {} WHERE strpos({}::text, $1) > 0",
            c.table_name, c.column_name
        ))
        .bind::<Text, _>(needle)
        .get_result::<Count>(conn)
        .expect("scan column")
        .n;
        if n > 0 {
            hits.push(format!("{}.{}", c.table_name, c.column_name));
        }
    }
    hits
}

/// Waits until some session of `db` is blocked on a lock (a request held up by a row lock the
/// test owns): the deterministic way to know a slow request is in flight.
pub async fn wait_for_lock_waiter(db: &TestDb, deadline: Duration) {
    let mut watcher = db.conn();
    eventually(deadline, "a session waiting on a lock", || {
        let n = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity
              WHERE wait_event_type = 'Lock' AND datname = current_database()",
        )
        .get_result::<Count>(&mut watcher)
        .expect("pg_stat_activity")
        .n;
        (n > 0).then_some(())
    })
    .await;
}

/// Active platform peers in the database at `db_url`, each with a real client certificate
/// issued by that instance's CA (its master key at `master_key`) and the key to use it: what a
/// fleet of peers needs to heartbeat the instance (the bench, the chaos harness's load).
/// `ids`: (peer id, remote instance id) pairs; `url(i)`: the i-th peer's URL.
pub async fn seed_active_peers(
    db_url: &str,
    master_key: &str,
    ids: &[(Uuid, Uuid)],
    url: impl Fn(usize) -> String,
) -> Vec<reqwest::Identity> {
    let master = powernode_api::crypto::MasterKey::load(Path::new(master_key)).expect("master key");
    let pool = powernode_store::pool(db_url, 4, Duration::from_secs(10));
    let pool = powernode_api::db::Database::new(pool, Duration::from_secs(10));
    let identity = powernode_api::ca::ensure_identity(&pool, &master)
        .await
        .expect("instance identity");
    let ca = powernode_api::ca::OpenCa::open(&identity, &master).expect("open CA");
    let mut conn = PgConnection::establish(db_url).expect("connect");
    let now = powernode_store::database_now(&mut conn).expect("clock");
    let mut identities = Vec::with_capacity(ids.len());
    for (i, (id, instance)) in ids.iter().enumerate() {
        diesel::sql_query(
            "INSERT INTO peers (id, origin, remote_instance_url, remote_instance_id, peer_kind, \
             spawn_role, spawn_mode, status, last_heartbeat_at) VALUES ($1, 'proposed_here', $2, $3, \
             'platform', 'symmetric', 'autonomous_peer', 'active', now())",
        )
        .bind::<diesel::sql_types::Uuid, _>(id)
        .bind::<Text, _>(url(i))
        .bind::<diesel::sql_types::Uuid, _>(instance)
        .execute(&mut conn)
        .expect("insert peer");
        let (key, csr) = powernode_api::ca::key_and_csr().expect("key");
        let issued = ca
            .sign_client_csr(&csr, *id, *instance, now, 90)
            .expect("sign");
        powernode_api::ca::record_issued(&mut conn, *id, &issued).expect("record");
        let key_pem = key.private_key_to_pem_pkcs8().expect("key pem");
        identities.push(
            reqwest::Identity::from_pkcs8_pem(issued.pem.as_bytes(), &key_pem).expect("identity"),
        );
    }
    identities
}
