//! The demo story (issue #4) with real processes: two API servers, two workers, two databases,
//! one PostgreSQL and one Redis (separate prefixes), short intervals. `scripts/dev demo` runs
//! this test with its output shown; each step prints both sides' status.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::Duration;

use powernode_domain::Permission;
use powernode_tests::{
    Process, TestDb, WORKER_TOKEN, columns_containing, create_operator, eventually_async,
    free_port, master_key_file, redis_prefix, redis_url,
};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(120);
const PEERS: &str = "/api/v1/system/federation/peers";

struct Side {
    name: &'static str,
    db: TestDb,
    admin: String,
    api_env: Vec<(&'static str, String)>,
    worker_env: Vec<(&'static str, String)>,
    base: String,
    public_url: String,
    api: Option<Process>,
    worker: Option<Process>,
    logs: Vec<String>,
}

impl Side {
    fn new(name: &'static str) -> Self {
        let db = TestDb::new();
        let admin = create_operator(
            &mut db.conn(),
            "admin",
            &[Permission::FederationRead, Permission::FederationManage],
        );
        let (http, fed) = (free_port(), free_port());
        let prefix = redis_prefix();
        let public_url = format!("https://127.0.0.1:{fed}");
        let api_env = vec![
            ("POWERNODE_DATABASE_URL", db.url.clone()),
            ("POWERNODE_REDIS_URL", redis_url()),
            ("POWERNODE_REDIS_PREFIX", prefix.clone()),
            ("POWERNODE_WORKER_TOKEN", WORKER_TOKEN.to_owned()),
            ("POWERNODE_MASTER_KEY_FILE", master_key_file()),
            ("POWERNODE_FEDERATION_PUBLIC_URL", public_url.clone()),
            ("POWERNODE_FEDERATION_LISTEN", format!("127.0.0.1:{fed}")),
            ("POWERNODE_HTTP_LISTEN", format!("127.0.0.1:{http}")),
            ("POWERNODE_STALE_AFTER_SECS", "10".to_owned()),
            ("POWERNODE_ENVIRONMENT", "development".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ];
        let worker_env = vec![
            ("POWERNODE_API_URL", format!("http://127.0.0.1:{http}")),
            ("POWERNODE_WORKER_TOKEN", WORKER_TOKEN.to_owned()),
            ("POWERNODE_REDIS_URL", redis_url()),
            ("POWERNODE_REDIS_PREFIX", prefix),
            ("POWERNODE_WORKER_POLL_INTERVAL_MS", "100".to_owned()),
            ("POWERNODE_WORKER_METRICS_LISTEN", String::new()),
            (
                "POWERNODE_SCHEDULES__FEDERATION_HEARTBEAT__INTERVAL_SECS",
                "2".to_owned(),
            ),
            (
                "POWERNODE_SCHEDULES__FEDERATION_PEER_HEARTBEAT__INTERVAL_SECS",
                "2".to_owned(),
            ),
            ("RUST_LOG", "info".to_owned()),
        ];
        Side {
            name,
            db,
            admin,
            api_env,
            worker_env,
            base: format!("http://127.0.0.1:{http}"),
            public_url,
            api: None,
            worker: None,
            logs: Vec::new(),
        }
    }

    async fn start(&mut self) {
        self.api = Some(Process::spawn("powernode-api", &["serve"], &self.api_env));
        let client = reqwest::Client::new();
        let url = format!("{}/readyz", self.base);
        eventually_async(DEADLINE, "API ready", || {
            let (c, u) = (client.clone(), url.clone());
            async move { c.get(u).send().await.ok().filter(|r| r.status() == 200) }
        })
        .await;
        self.api
            .as_ref()
            .unwrap()
            .wait_for(DEADLINE, |l| l.contains("federation API listening"))
            .await;
        self.worker = Some(Process::spawn(
            "powernode-worker",
            &["--name", self.name],
            &self.worker_env,
        ));
    }

    async fn stop(&mut self) {
        for p in [self.worker.take(), self.api.take()].into_iter().flatten() {
            let mut p = p;
            p.signal("TERM");
            let status = tokio::time::timeout(DEADLINE, p.child.wait())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(status.code(), Some(0), "{}", p.output());
            self.logs.extend(p.lines());
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn status(&self) -> String {
        let (_, body) = self.call(reqwest::Method::GET, PEERS, None).await;
        body["data"][0]["status"]
            .as_str()
            .unwrap_or("none")
            .to_owned()
    }
}

async fn both(a: &Side, b: &Side, step: &str, want_a: &str, want_b: &str) {
    eventually_async(DEADLINE, step, || async {
        let (sa, sb) = (a.status().await, b.status().await);
        (sa == want_a && sb == want_b).then_some(())
    })
    .await;
    println!("demo: {step:<40} A sees B: {want_a:<9} B sees A: {want_b}");
}

#[tokio::test]
async fn demo_two_instances_federate_degrade_and_recover() {
    let mut a = Side::new("a");
    let mut b = Side::new("b");
    a.start().await;
    b.start().await;

    let (status, proposed) = a
        .call(reqwest::Method::POST, PEERS, Some(json!({"remote_instance_url": b.public_url, "spawn_role": "parent", "spawn_mode": "autonomous_peer"})))
        .await;
    assert_eq!(status, 201, "{proposed}");
    let token = proposed["data"]["acceptance_token"]
        .as_str()
        .unwrap()
        .to_owned();
    println!(
        "demo: proposed on A; token handed to B ({} characters)",
        token.len()
    );
    let (status, accepted) = b
        .call(
            reqwest::Method::POST,
            &format!("{PEERS}/accept"),
            Some(json!({"acceptance_token": token})),
        )
        .await;
    assert_eq!(status, 201, "{accepted}");
    println!("demo: accepted on B");

    // The workers' ticks do the rest: handshake (enrolled), heartbeats both ways (active).
    both(&a, &b, "worker ticks: both active", "active", "active").await;

    b.stop().await;
    println!("demo: B's API and worker stopped");
    eventually_async(DEADLINE, "A's sweep degrades B", || async {
        (a.status().await == "degraded").then_some(())
    })
    .await;
    println!(
        "demo: {:<40} A sees B: degraded  B: down",
        "A's sweep degrades B"
    );
    let (_, shown) = a.call(reqwest::Method::GET, PEERS, None).await;
    assert_eq!(
        shown["data"][0]["degraded_reason"],
        "heartbeat stale (>10 seconds)"
    );

    b.start().await;
    println!("demo: B restarted");
    both(
        &a,
        &b,
        "B heartbeats again: both active",
        "active",
        "active",
    )
    .await;
    a.stop().await;
    b.stop().await;

    // No acceptance token, private key or worker token in any log line or text column.
    for side in [&a, &b] {
        for secret in [
            token.as_str(),
            WORKER_TOKEN,
            "PRIVATE KEY",
            a.admin.as_str(),
            b.admin.as_str(),
        ] {
            assert!(
                side.logs.iter().all(|l| !l.contains(secret)),
                "{} logged a secret",
                side.name
            );
            assert_eq!(
                columns_containing(&mut side.db.conn(), secret),
                Vec::<String>::new(),
                "{}",
                side.name
            );
        }
    }
}
