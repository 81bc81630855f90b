//! Two real instances on one machine (two API servers, two databases) federate end to end over
//! real mTLS with certificates from their own CAs (issue #4).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use powernode_tests::{
    TestApp, TestDb, WORKER_TOKEN, admin_token, free_port, settings_from, spawn_app,
};
use serde_json::{Value, json};

const PEERS: &str = "/api/v1/system/federation/peers";

struct Instance {
    db: TestDb,
    app: TestApp,
    admin: String,
    public_url: String,
}

async fn instance() -> Instance {
    let db = TestDb::new();
    let admin = admin_token(&mut db.conn());
    let port = free_port();
    let public_url = format!("https://127.0.0.1:{port}");
    let settings = settings_from(&[
        ("POWERNODE_DATABASE_URL", db.url.clone()),
        ("POWERNODE_REDIS_URL", powernode_tests::redis_url()),
        ("POWERNODE_WORKER_TOKEN", WORKER_TOKEN.to_owned()),
        ("POWERNODE_HTTP_LISTEN", "127.0.0.1:0".to_owned()),
        ("POWERNODE_FEDERATION_LISTEN", format!("127.0.0.1:{port}")),
        ("POWERNODE_FEDERATION_PUBLIC_URL", public_url.clone()),
        ("POWERNODE_ENVIRONMENT", "development".to_owned()),
    ]);
    let app = spawn_app(settings).await;
    Instance {
        db,
        app,
        admin,
        public_url,
    }
}

impl Instance {
    async fn worker(&self, path: &str) -> Value {
        let resp = self
            .app
            .client
            .post(
                self.app
                    .url(&format!("/api/v1/system/worker_api/federation/{path}")),
            )
            .header("X-Worker-Token", WORKER_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        resp.json::<Value>().await.unwrap()["data"].clone()
    }

    async fn only_peer(&self) -> Value {
        let (status, body) = self.app.get(PEERS, &self.admin).await;
        assert_eq!(status, 200);
        let peers = body["data"].as_array().unwrap();
        assert_eq!(peers.len(), 1, "{body}");
        peers[0].clone()
    }

    async fn ready(&self) {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let url = format!("{}/api/v1/system/federation_api/ca", self.public_url);
        powernode_tests::eventually_async(
            std::time::Duration::from_secs(60),
            "federation listener",
            || {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    client
                        .get(url)
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status() == 200)
                }
            },
        )
        .await;
    }
}

#[tokio::test]
async fn two_instances_federate_from_propose_to_active_both_ways() {
    let a = instance().await;
    let b = instance().await;
    a.ready().await;
    b.ready().await;

    let (status, proposed) = a
        .app
        .post(PEERS, &a.admin, json!({"remote_instance_url": b.public_url, "spawn_role": "parent", "spawn_mode": "autonomous_peer"}))
        .await;
    assert_eq!(status, 201, "{proposed}");
    let token = proposed["data"]["acceptance_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, accepted) = b
        .app
        .post(
            &format!("{PEERS}/accept"),
            &b.admin,
            json!({"acceptance_token": token}),
        )
        .await;
    assert_eq!(status, 201, "{accepted}");
    assert_eq!(accepted["data"]["status"], "accepted");
    assert_eq!(accepted["data"]["origin"], "accepted_here");
    assert_eq!(
        accepted["data"]["spawn_role"], "child",
        "B mirrors A's role"
    );
    assert_eq!(a.only_peer().await["status"], "accepted");

    // The same token again: single use, A's message passed through by B.
    let (status, again) = b
        .app
        .post(
            &format!("{PEERS}/accept"),
            &b.admin,
            json!({"acceptance_token": token}),
        )
        .await;
    assert_eq!(
        (status, again["error"].as_str()),
        (422, Some("acceptance_token does not match stored digest")),
        "{again}"
    );

    // B's worker tick: handshake → both enrolled.
    let run = b.worker("peer_heartbeats").await;
    assert_eq!(run["failed"], json!([]), "{run}");
    assert_eq!(b.only_peer().await["status"], "enrolled");
    assert_eq!(a.only_peer().await["status"], "enrolled");

    // A heartbeats B (B → active), B heartbeats A (A → active).
    let run = a.worker("peer_heartbeats").await;
    assert_eq!(
        (run["sent"].as_u64(), &run["failed"]),
        (Some(1), &json!([])),
        "{run}"
    );
    assert_eq!(b.only_peer().await["status"], "active");
    let run = b.worker("peer_heartbeats").await;
    assert_eq!(
        (run["sent"].as_u64(), &run["failed"]),
        (Some(1), &json!([])),
        "{run}"
    );
    assert_eq!(a.only_peer().await["status"], "active");

    // Revoking on A: B's next call fails with the SPEC message.
    let id = a.only_peer().await["id"].as_str().unwrap().to_owned();
    let (status, _) = a
        .app
        .post(
            &format!("{PEERS}/{id}/revoke"),
            &a.admin,
            json!({"reason": "test"}),
        )
        .await;
    assert_eq!(status, 200);
    let run = b.worker("peer_heartbeats").await;
    assert_eq!(run["sent"], 0);
    assert!(
        run["failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("Certificate is revoked"),
        "{run}"
    );
    drop((a.db, b.db));
}
