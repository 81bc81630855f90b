//! A certificate row without its key: the exact warning lines, and the call refused (issue #4).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::io::Write;
use std::sync::{Arc, Mutex};

use diesel::RunQueryDsl;
use powernode_tests::{TestDb, WORKER_TOKEN, admin_token, free_port, settings_from, spawn_app};
use serde_json::{Value, json};

#[derive(Clone)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process's log, captured once: a global subscriber can be installed only once per
/// process, and under plain `cargo test` both tests share one. Each test reads only the lines
/// naming its own peer.
fn captured() -> Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured(Arc::new(Mutex::new(Vec::new())));
        let writer = logs.clone();
        // Installed before the app's own (which then keeps this one).
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        logs
    })
    .clone()
}

/// Captured lines that name `peer`.
fn lines_about(logs: &Captured, peer: &str) -> String {
    String::from_utf8(logs.0.lock().unwrap().clone())
        .unwrap()
        .lines()
        .filter(|l| l.contains(peer))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn instance(fallback: bool) -> (TestDb, powernode_tests::TestApp, String, String) {
    let db = TestDb::new();
    let admin = admin_token(&mut db.conn());
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let app = spawn_app(settings_from(&[
        ("POWERNODE_DATABASE_URL", db.url.clone()),
        ("POWERNODE_REDIS_URL", powernode_tests::redis_url()),
        ("POWERNODE_WORKER_TOKEN", WORKER_TOKEN.to_owned()),
        ("POWERNODE_HTTP_LISTEN", "127.0.0.1:0".to_owned()),
        ("POWERNODE_FEDERATION_LISTEN", format!("127.0.0.1:{port}")),
        ("POWERNODE_FEDERATION_PUBLIC_URL", url.clone()),
        ("POWERNODE_ENVIRONMENT", "development".to_owned()),
        ("POWERNODE_ALLOW_PLAINTEXT_FALLBACK", fallback.to_string()),
    ]))
    .await;
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    powernode_tests::eventually_async(
        std::time::Duration::from_secs(60),
        "federation listener",
        || {
            let (client, u) = (
                client.clone(),
                format!("{url}/api/v1/system/federation_api/ca"),
            );
            async move {
                client
                    .get(u)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status() == 200)
            }
        },
    )
    .await;
    (db, app, admin, url)
}

#[tokio::test]
async fn a_certificate_without_its_key_logs_the_partial_config_warning_and_refuses_the_call() {
    let logs = captured();
    let (adb, a, a_admin, _) = instance(false).await;
    let (bdb, b, b_admin, b_url) = instance(false).await;
    let (_, proposed) = a
        .post(
            "/api/v1/system/federation/peers",
            &a_admin,
            json!({"remote_instance_url": b_url, "spawn_role": "parent"}),
        )
        .await;
    let token = proposed["data"]["acceptance_token"].as_str().unwrap();
    let (status, accepted) = b
        .post(
            "/api/v1/system/federation/peers/accept",
            &b_admin,
            json!({"acceptance_token": token}),
        )
        .await;
    assert_eq!(status, 201, "{accepted}");
    let b_peer = accepted["data"]["id"].as_str().unwrap().to_owned();

    // Lose the key half of B's client certificate for A.
    diesel::sql_query(
        "UPDATE peer_certificates SET key_sealed = NULL WHERE direction = 'outbound'",
    )
    .execute(&mut bdb.conn())
    .unwrap();
    let resp = b
        .client
        .post(b.url("/api/v1/system/worker_api/federation/peer_heartbeats"))
        .header("X-Worker-Token", WORKER_TOKEN)
        .send()
        .await
        .unwrap();
    let run: Value = resp.json().await.unwrap();
    assert_eq!(run["data"]["sent"], 0, "{run}");
    assert_eq!(
        run["data"]["failed"],
        json!([{"peer_id": b_peer, "error": "partial mTLS config (cert_pem=true, key_pem=false); plaintext fallback disabled"}])
    );
    let text = lines_about(&logs, &b_peer);
    assert!(
        text.contains("[PeerClient] partial mTLS config — cert_pem=true, key_pem=false; falling back to plaintext"),
        "{text}"
    );
    assert!(text.contains(&format!(
        "[PeerClient] plaintext fallback disabled; call to peer {b_peer} refused"
    )));
    // The call never happened: A's row for B is still accepted (no handshake).
    let a_peers = powernode_store::peers::list(&mut adb.conn(), None).unwrap();
    assert_eq!(a_peers[0].status.as_str(), "accepted");
    // Nothing about this peer says a handshake happened (the line the API logs when one does).
    assert!(!text.contains("handshake completed"), "{text}");
    drop(a);
}

#[tokio::test]
async fn with_the_fallback_enabled_outside_production_the_call_goes_out_without_a_certificate() {
    let logs = captured();
    let (_adb, a, a_admin, _) = instance(false).await;
    let (bdb, b, b_admin, b_url) = instance(true).await;
    let (_, proposed) = a
        .post(
            "/api/v1/system/federation/peers",
            &a_admin,
            json!({"remote_instance_url": b_url, "spawn_role": "parent"}),
        )
        .await;
    let token = proposed["data"]["acceptance_token"].as_str().unwrap();
    let (_, accepted) = b
        .post(
            "/api/v1/system/federation/peers/accept",
            &b_admin,
            json!({"acceptance_token": token}),
        )
        .await;
    let b_peer = accepted["data"]["id"].as_str().unwrap().to_owned();
    diesel::sql_query(
        "UPDATE peer_certificates SET key_sealed = NULL WHERE direction = 'outbound'",
    )
    .execute(&mut bdb.conn())
    .unwrap();
    let resp = b
        .client
        .post(b.url("/api/v1/system/worker_api/federation/peer_heartbeats"))
        .header("X-Worker-Token", WORKER_TOKEN)
        .send()
        .await
        .unwrap();
    let run: Value = resp.json().await.unwrap();
    // A enforces client certificates: the plaintext call is refused there.
    assert_eq!(
        run["data"]["failed"],
        json!([{"peer_id": b_peer, "error": "401 UNAUTHORIZED: mTLS client certificate required"}])
    );
    let text = lines_about(&logs, &b_peer);
    assert!(text.contains(
        "[PeerClient] partial mTLS config — cert_pem=true, key_pem=false; falling back to plaintext"
    ));
    assert!(!text.contains("plaintext fallback disabled"));
    drop(a);
}
