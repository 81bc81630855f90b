//! Running like a service: worker reports, SIGTERM drains, start-up before PostgreSQL (issue #7).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::Duration;

use diesel::prelude::*;
use powernode_domain::Permission;
use powernode_tests::{
    PUBLIC_URL, Process, TestDb, WORKER_TOKEN, WorkerProcess, admin_url, create_operator,
    eventually_async, free_port, insert_peer, master_key_file, redis_prefix, redis_url, settings,
    spawn_app,
};

const DEADLINE: Duration = Duration::from_secs(90);

fn api_env(db_url: &str, port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("POWERNODE_DATABASE_URL", db_url.to_owned()),
        ("POWERNODE_REDIS_URL", redis_url()),
        ("POWERNODE_WORKER_TOKEN", WORKER_TOKEN.to_owned()),
        ("POWERNODE_MASTER_KEY_FILE", master_key_file()),
        (
            "POWERNODE_UI_SESSION_KEY_FILE",
            powernode_tests::ui_session_key_file(),
        ),
        ("POWERNODE_FEDERATION_PUBLIC_URL", PUBLIC_URL.to_owned()),
        ("POWERNODE_HTTP_LISTEN", format!("127.0.0.1:{port}")),
        ("POWERNODE_FEDERATION_LISTEN", "127.0.0.1:0".to_owned()),
        ("POWERNODE_DATABASE_TIMEOUT_SECS", "1".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
}

async fn status_of(client: &reqwest::Client, url: &str) -> Option<u16> {
    client
        .get(url)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test]
async fn workers_report_each_tick_and_operators_see_it() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let reader = create_operator(&mut conn, "reader", &[Permission::FederationRead]);
    let app = spawn_app(settings(&db)).await;
    let metrics_port = free_port();
    let worker = WorkerProcess::spawn(
        "default",
        &app.address,
        &redis_prefix(),
        &[(
            "POWERNODE_WORKER_METRICS_LISTEN",
            &format!("127.0.0.1:{metrics_port}"),
        )],
    );
    worker
        .wait_for(DEADLINE, |l| l.contains("sweep complete"))
        .await;
    let status = eventually_async(DEADLINE, "a reported schedule", || async {
        let (code, body) = app.get("/api/v1/system/worker/status", &reader).await;
        (code == 200 && body["data"].as_array().is_some_and(|a| !a.is_empty())).then_some(body)
    })
    .await;
    let row = &status["data"][0];
    assert_eq!(row["schedule"], "federation_heartbeat");
    assert_eq!(row["job"], "FederationHeartbeatJob");
    assert_eq!(row["last_outcome"], "succeeded");
    assert!(row["last_success_at"].is_string());
    assert!(
        row["last_worker"]
            .as_str()
            .unwrap()
            .starts_with("default-federation_heartbeat-")
    );

    let api_metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(api_metrics.lines().any(|l| l.starts_with(
        r#"powernode_worker_jobs_total{schedule="federation_heartbeat",job="FederationHeartbeatJob",outcome="succeeded"}"#
    )), "{api_metrics}");
    let worker_metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "powernode_worker_jobs_total{",
        "powernode_worker_job_retries_total{",
        "powernode_worker_job_last_success_timestamp_seconds{",
    ] {
        assert!(
            worker_metrics.contains(series),
            "{series} missing:\n{worker_metrics}"
        );
    }
    let (code, _) = app.get("/api/v1/system/worker/status", "pnop_wrong").await;
    assert_eq!(code, 401);
}

/// A sweep blocked on a row lock is in flight when SIGTERM arrives: the API stops accepting,
/// still answers it once the lock goes, and exits 0.
#[tokio::test]
async fn sigterm_during_a_slow_request_still_answers_it_and_exits_0() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let stale = insert_peer(&mut conn, "active", "platform", Some(900));
    let port = free_port();
    let mut api = Process::spawn("powernode-api", &["serve"], &api_env(&db.url, port));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    eventually_async(DEADLINE, "API ready", || async {
        (status_of(&client, &format!("{base}/readyz")).await == Some(200)).then_some(())
    })
    .await;

    // Hold the stale peer's row so the sweep has to wait for us.
    let mut locker = db.conn();
    diesel::sql_query("BEGIN").execute(&mut locker).unwrap();
    diesel::sql_query("SELECT id FROM peers WHERE id = $1 FOR UPDATE")
        .bind::<diesel::sql_types::Uuid, _>(stale)
        .execute(&mut locker)
        .unwrap();
    let sweep = tokio::spawn({
        let url = format!("{base}/api/v1/system/worker_api/federation/heartbeat_sweep");
        let client = client.clone();
        async move {
            let resp = client
                .post(url)
                .header("X-Worker-Token", WORKER_TOKEN)
                .send()
                .await
                .unwrap();
            (
                resp.status().as_u16(),
                resp.json::<serde_json::Value>().await.unwrap(),
            )
        }
    });
    // The sweep is in flight once PostgreSQL shows it waiting on our lock.
    powernode_tests::wait_for_lock_waiter(&db, DEADLINE).await;

    api.signal("TERM");
    // It stops accepting new connections while the request is still running.
    eventually_async(DEADLINE, "the listener to close", || async {
        status_of(&client, &format!("{base}/healthz"))
            .await
            .is_none()
            .then_some(())
    })
    .await;
    assert!(!sweep.is_finished());
    diesel::sql_query("COMMIT").execute(&mut locker).unwrap();

    let (code, body) = tokio::time::timeout(DEADLINE, sweep)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["data"]["degraded_ids"],
        serde_json::json!([stale.to_string()])
    );
    let exit = tokio::time::timeout(DEADLINE, api.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.code(), Some(0), "{}", api.output());
}

#[tokio::test]
async fn an_api_started_before_postgresql_waits_then_becomes_ready() {
    let db = TestDb::new();
    let pg_port = free_port();
    let db_name = db.url.rsplit('/').next().unwrap().to_owned();
    let user = admin_url()
        .split("://")
        .nth(1)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_owned();
    let late_url = format!("postgres://{user}@127.0.0.1:{pg_port}/{db_name}");
    let port = free_port();
    let api = Process::spawn("powernode-api", &["serve"], &api_env(&late_url, port));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    let line = api
        .wait_for(DEADLINE, |l| l.contains("waiting for PostgreSQL at"))
        .await;
    assert!(line.contains(&format!("127.0.0.1:{pg_port}")), "{line}");
    assert!(line.contains("retrying in"), "{line}");
    let readyz = eventually_async(DEADLINE, "a 503 from /readyz", || async {
        let resp = client.get(format!("{base}/readyz")).send().await.ok()?;
        (resp.status() == 503).then_some(())?;
        resp.json::<serde_json::Value>().await.ok()
    })
    .await;
    assert_eq!(
        readyz["error"],
        "not ready: postgresql, federation_listener"
    );
    assert_eq!(
        status_of(&client, &format!("{base}/healthz")).await,
        Some(200)
    );

    // PostgreSQL appears at the address the API was given.
    let _postgres = powernode_tests::stall::StallProxy::start_on(pg_port, &admin_url()).await;
    eventually_async(
        DEADLINE,
        "/readyz 200 once PostgreSQL is reachable",
        || async {
            (status_of(&client, &format!("{base}/readyz")).await == Some(200)).then_some(())
        },
    )
    .await;
    api.wait_for(DEADLINE, |l| l.contains("PostgreSQL reachable"))
        .await;
}

/// SIGTERM while a job is running: the worker lets it finish (bounded), then exits 0.
#[tokio::test]
async fn sigterm_lets_the_running_job_finish_then_the_worker_exits_0() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let stale = insert_peer(&mut conn, "active", "platform", Some(900));
    let app = spawn_app(settings(&db)).await;
    let mut locker = db.conn();
    diesel::sql_query("BEGIN").execute(&mut locker).unwrap();
    diesel::sql_query("SELECT id FROM peers WHERE id = $1 FOR UPDATE")
        .bind::<diesel::sql_types::Uuid, _>(stale)
        .execute(&mut locker)
        .unwrap();
    let mut worker = WorkerProcess::spawn("default", &app.address, &redis_prefix(), &[]);
    worker
        .wait_for(DEADLINE, |l| l.contains("Starting heartbeat sweep"))
        .await;
    powernode_tests::wait_for_lock_waiter(&db, DEADLINE).await;
    worker.signal("TERM");
    worker
        .wait_for(DEADLINE, |l| l.contains("shutdown requested"))
        .await;
    diesel::sql_query("COMMIT").execute(&mut locker).unwrap();
    worker
        .wait_for(DEADLINE, |l| {
            l.contains("sweep complete: swept=1 degraded_ids=1")
        })
        .await;
    let exit = tokio::time::timeout(DEADLINE, worker.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.code(), Some(0), "{}", worker.output());
}

#[tokio::test]
async fn json_logs_are_one_json_object_per_line() {
    let db = TestDb::new();
    let port = free_port();
    let mut env = api_env(&db.url, port);
    env.push(("POWERNODE_LOG_FORMAT", "json".to_owned()));
    let api = Process::spawn("powernode-api", &["serve"], &env);
    let line = api
        .wait_for(DEADLINE, |l| l.contains("powernode-api listening on"))
        .await;
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["level"], "INFO");
    assert!(
        event["fields"]["message"]
            .as_str()
            .unwrap()
            .starts_with("powernode-api listening on")
    );
    api.wait_for(DEADLINE, |l| l.contains("schema up to date"))
        .await;
    for l in api.lines() {
        serde_json::from_str::<serde_json::Value>(&l).unwrap_or_else(|_| panic!("not JSON: {l}"));
    }
}

#[tokio::test]
async fn configured_listener_certificates_must_chain_to_the_instance_ca() {
    let db = TestDb::new();
    let dir = std::env::temp_dir().join(format!("pn-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut env = api_env(&db.url, free_port());
    let key_file = env
        .iter()
        .find(|(k, _)| *k == "POWERNODE_MASTER_KEY_FILE")
        .unwrap()
        .1
        .clone();

    // Files from another CA: the API stops at start with a message.
    let (key, csr) = powernode_api::ca::key_and_csr().unwrap();
    let master = powernode_api::crypto::MasterKey::load(std::path::Path::new(&key_file)).unwrap();
    let (other_pem, other_sha, other_sealed) =
        powernode_api::ca::generate(uuid::Uuid::new_v4(), &master).unwrap();
    let other = powernode_api::ca::OpenCa::open(
        &powernode_store::identity::InstanceIdentity {
            instance_id: uuid::Uuid::new_v4(),
            ca_cert_pem: other_pem,
            ca_sha256: other_sha,
            ca_key_sealed: other_sealed,
            created_at: time::OffsetDateTime::now_utc(),
        },
        &master,
    )
    .unwrap();
    let foreign = other
        .sign_client_csr(
            &csr,
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
            time::OffsetDateTime::now_utc(),
            30,
        )
        .unwrap();
    std::fs::write(dir.join("foreign.pem"), &foreign.pem).unwrap();
    std::fs::write(
        dir.join("foreign.key"),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    env.push((
        "POWERNODE_FEDERATION_TLS_CERT_FILE",
        dir.join("foreign.pem").to_string_lossy().into_owned(),
    ));
    env.push((
        "POWERNODE_FEDERATION_TLS_KEY_FILE",
        dir.join("foreign.key").to_string_lossy().into_owned(),
    ));
    let mut api = Process::spawn("powernode-api", &["serve"], &env);
    let exit = tokio::time::timeout(DEADLINE, api.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.code(), Some(2), "{}", api.output());
    assert!(
        api.output().contains(
            "does not chain to this instance's CA (issued by another CA); refusing to start"
        ),
        "{}",
        api.output()
    );

    // Files issued by the instance's own CA (created by that first start): served.
    let identity = powernode_store::identity::get(&mut db.conn())
        .unwrap()
        .unwrap();
    let own = powernode_api::ca::OpenCa::open(&identity, &master).unwrap();
    let (issued, sealed) = own
        .issue_server("127.0.0.1", time::OffsetDateTime::now_utc(), 30, &master)
        .unwrap();
    let server_key = master
        .open(powernode_api::ca::SERVER_KEY_CONTEXT, &sealed)
        .unwrap();
    std::fs::write(dir.join("own.pem"), &issued.pem).unwrap();
    std::fs::write(
        dir.join("own.key"),
        secrecy::ExposeSecret::expose_secret(&server_key),
    )
    .unwrap();
    env.retain(|(k, _)| !k.starts_with("POWERNODE_FEDERATION_TLS_"));
    env.push((
        "POWERNODE_FEDERATION_TLS_CERT_FILE",
        dir.join("own.pem").to_string_lossy().into_owned(),
    ));
    env.push((
        "POWERNODE_FEDERATION_TLS_KEY_FILE",
        dir.join("own.key").to_string_lossy().into_owned(),
    ));
    let api = Process::spawn("powernode-api", &["serve"], &env);
    api.wait_for(DEADLINE, |l| l.contains("federation API listening"))
        .await;
    let _ = std::fs::remove_dir_all(&dir);
}
