//! `powernodectl`, the real binary, against a real API and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::process::Output;

use powernode_tests::{TestApp, TestDb, admin_token, bin, settings, spawn_app};
use serde_json::Value;

async fn ctl(app: &TestApp, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(bin("powernodectl"));
    cmd.args(args)
        .env_clear()
        .env("POWERNODE_API_URL", &app.address)
        .env("HOME", std::env::temp_dir());
    if let Some(t) = token {
        cmd.env("POWERNODE_TOKEN", t);
    }
    cmd.output().await.unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn powernodectl_manages_a_peer_end_to_end() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let admin = admin_token(&mut conn);
    let app = spawn_app(settings(&db)).await;
    let t = Some(admin.as_str());

    let out = ctl(
        &app,
        t,
        &[
            "peer",
            "propose",
            "--remote-url",
            "https://platform-b.example.com",
            "--role",
            "parent",
            "--ttl",
            "1h",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let token = text.lines().last().unwrap().trim().to_owned();
    assert!(token.starts_with("pnfa1_"), "{text}");
    assert!(text.contains("Acceptance token (shown once"));

    let out = ctl(&app, t, &["--json", "peer", "list", "--status", "proposed"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let id = list[0]["id"].as_str().unwrap().to_owned();

    let out = ctl(&app, t, &["peer", "show", &id]).await;
    assert!(out.status.success());
    let shown = stdout(&out);
    for field in [
        "heartbeat_stale",
        "degraded_reason",
        "last_heartbeat_at",
        "acceptance_pending",
    ] {
        assert!(shown.contains(field), "{field} missing from:\n{shown}");
    }
    assert!(!shown.contains(&token));

    let out = ctl(
        &app,
        t,
        &["peer", "token", "regenerate", &id, "--ttl", "30m"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let new_token = stdout(&out).lines().last().unwrap().trim().to_owned();
    assert!(new_token.starts_with("pnfa1_") && new_token != token);

    // An illegal transition: non-zero exit and the API's message.
    let out = ctl(
        &app,
        t,
        &["peer", "suspend", &id, "--reason", "maintenance"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "powernodectl: 409 ILLEGAL_TRANSITION: Transition proposed → suspended is not permitted"
    );
    // Every POST carried its own Idempotency-Key (`<invocation uuid>-<n>`): a fresh one per
    // invocation, so repeating a command runs it again.
    #[derive(diesel::QueryableByName)]
    struct Key {
        #[diesel(sql_type = diesel::sql_types::Text)]
        key: String,
    }
    use diesel::RunQueryDsl;
    let keys: Vec<String> = diesel::sql_query("SELECT key FROM idempotency_keys")
        .load::<Key>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|k| k.key)
        .collect();
    assert!(keys.len() >= 3, "{keys:?}");
    let invocations: std::collections::HashSet<&str> = keys
        .iter()
        .filter_map(|k| k.rsplit_once('-').map(|(p, _)| p))
        .collect();
    assert_eq!(
        invocations.len(),
        keys.len(),
        "one invocation, one prefix: {keys:?}"
    );

    let out = ctl(
        &app,
        t,
        &["--json", "peer", "revoke", &id, "--reason", "typo in URL"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let revoked: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["acceptance_pending"], false);
    let peer = powernode_store::peers::find(&mut conn, id.parse().unwrap())
        .unwrap()
        .unwrap();
    assert!(
        peer.acceptance_token_digest.is_none(),
        "a revoked peer keeps no token digest"
    );

    let out = ctl(
        &app,
        t,
        &[
            "--json",
            "events",
            "--peer",
            &id,
            "--source",
            "federation_peer",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let events: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let kinds: Vec<_> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "federation.peer.revoked",
            "federation.peer.token_regenerated",
            "federation.peer.proposed"
        ]
    );
    let out = ctl(&app, t, &["events", "--since", "last tuesday"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("400 BAD_REQUEST: since must be an ISO 8601 timestamp"));

    let out = ctl(&app, t, &["peer", "delete", &id]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), format!("deleted peer {id}"));
}

#[tokio::test]
async fn powernodectl_manages_operators_and_says_what_is_missing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let admin = admin_token(&mut conn);
    let app = spawn_app(settings(&db)).await;

    let out = ctl(&app, None, &["peer", "list"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no operator token: set POWERNODE_TOKEN"));

    let out = ctl(
        &app,
        Some(&admin),
        &[
            "operator",
            "create",
            "--name",
            "viewer",
            "--permission",
            "system.federation.read",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let viewer = stdout(&out).lines().last().unwrap().trim().to_owned();
    assert!(viewer.starts_with("pnop_"));

    let out = ctl(&app, Some(&viewer), &["whoami"]).await;
    assert!(stdout(&out).contains("viewer"));
    let out = ctl(
        &app,
        Some(&viewer),
        &[
            "peer",
            "propose",
            "--remote-url",
            "https://x.example.com",
            "--role",
            "child",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "powernodectl: 403 FORBIDDEN: Forbidden"
    );

    let out = ctl(&app, Some(&admin), &["--json", "operator", "list"]).await;
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let viewer_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "viewer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = ctl(&app, Some(&admin), &["operator", "disable", &viewer_id]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ctl(&app, Some(&viewer), &["peer", "list"]).await;
    assert_eq!(
        stderr(&out).trim(),
        "powernodectl: 401 UNAUTHORIZED: Invalid or disabled operator token"
    );

    let out = ctl(
        &app,
        Some(&admin),
        &["--url", "http://127.0.0.1:1", "peer", "list"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot reach the API at http://127.0.0.1:1"));
}

#[tokio::test]
async fn powernodectl_issues_explains_and_revokes_grants() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let admin = admin_token(&mut conn);
    let peer = powernode_tests::insert_peer(&mut conn, "active", "platform", Some(5)).to_string();
    let app = spawn_app(settings(&db)).await;
    let t = Some(admin.as_str());
    let out = ctl(
        &app,
        t,
        &[
            "grant",
            "issue",
            &peer,
            "--kind",
            "sdwan_config",
            "--scope",
            "read",
            "--network",
            "overlay-1",
            "--cidr",
            "10.0.0.0/8",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).lines().last().unwrap().trim().to_owned();
    assert!(token.starts_with("fg-"), "{}", stdout(&out));
    let out = ctl(
        &app,
        t,
        &[
            "--json",
            "grant",
            "list",
            "--peer",
            &peer,
            "--lifecycle",
            "active",
        ],
    )
    .await;
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert!(!stdout(&out).contains(&token));

    let out = ctl(
        &app,
        t,
        &[
            "grant",
            "explain",
            &id,
            "--kind",
            "sdwan_config",
            "--resource-id",
            "net-1",
            "--network",
            "overlay-2",
            "--source-ip",
            "10.1.1.1",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("FAILED") && text.contains("network overlay-2 not in the allowlist"),
        "{text}"
    );
    assert!(
        text.trim_end()
            .ends_with("grant scope mismatch: network overlay-2 not allowed"),
        "{text}"
    );

    let out = ctl(&app, t, &["grant", "revoke", &id, "--reason", "rotation"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ctl(&app, t, &["grant", "revoke", &id, "--reason", "again"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("409 CONFLICT"), "{}", stderr(&out));
}

#[tokio::test]
async fn powernodectl_drives_the_approval_queue_policies_and_the_agent() {
    use powernode_domain::Permission::{FederationManage, FederationRead, InfraTasksControl};
    let db = TestDb::gated();
    let mut conn = db.conn();
    let requester = powernode_tests::create_operator(
        &mut conn,
        "requester",
        &[FederationRead, FederationManage, InfraTasksControl],
    );
    let approver = powernode_tests::create_operator(
        &mut conn,
        "approver",
        &[FederationRead, InfraTasksControl],
    );
    let peer = powernode_tests::insert_peer(&mut conn, "active", "platform", Some(5));
    let app = spawn_app(settings(&db)).await;
    let (r, a) = (Some(requester.as_str()), Some(approver.as_str()));
    let tick = || app.sdwan_tick();

    // A gated propose: queued; once approved and executed, `approvals result` shows the token once.
    let out = ctl(
        &app,
        r,
        &[
            "peer",
            "propose",
            "--remote-url",
            "https://platform-b.example.com",
            "--role",
            "parent",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("Approval required: system.federation_peer_propose"),
        "{text}"
    );
    let out = ctl(&app, a, &["--json", "approvals", "list"]).await;
    let pending: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let propose_id = pending[0]["id"].as_str().unwrap().to_owned();
    let out = ctl(
        &app,
        r,
        &["approvals", "approve", &propose_id, "--comment", "mine"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("403 FORBIDDEN: You cannot decide your own approval request"),
        "{}",
        stderr(&out)
    );
    let out = ctl(
        &app,
        a,
        &["approvals", "approve", &propose_id, "--comment", "ok"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("approved"));
    tick().await;
    let out = ctl(&app, r, &["approvals", "result", &propose_id]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).lines().last().unwrap().trim().to_owned();
    assert!(token.starts_with("pnfa1_"), "{}", stdout(&out));
    let out = ctl(&app, r, &["approvals", "result", &propose_id]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("409 CONFLICT: result already claimed"));

    // Emergency lowering: revoke proceeds at once; restore puts the gate back.
    let out = ctl(
        &app,
        a,
        &[
            "policy",
            "lower",
            "system.federation_peer_revoke",
            "--to",
            "notify_and_proceed",
            "--for",
            "30m",
            "--reason",
            "INC-7 compromised peer",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("notify_and_proceed"));
    let out = ctl(
        &app,
        a,
        &["policy", "restore", "system.federation_peer_revoke"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ctl(
        &app,
        a,
        &["--json", "policy", "show", "system.federation_peer_revoke"],
    )
    .await;
    let shown: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(shown[0]["effective_policy"], "require_approval");

    // Pause the agent: an approved revoke waits; resume and it runs.
    let out = ctl(
        &app,
        a,
        &["agent", "pause", "SDWAN Manager", "--reason", "noisy"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("paused"));
    let id = peer.to_string();
    let out = ctl(
        &app,
        r,
        &["peer", "revoke", &id, "--reason", "decommissioned"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Approval required: system.federation_peer_revoke"));
    let out = ctl(&app, a, &["--json", "approvals", "list"]).await;
    let pending: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let revoke_id = pending[0]["id"].as_str().unwrap().to_owned();
    let out = ctl(&app, a, &["approvals", "approve", &revoke_id]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    tick().await;
    let out = ctl(&app, a, &["--json", "approvals", "show", &revoke_id]).await;
    let shown: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(shown["execution_status"], "pending");
    let out = ctl(&app, a, &["agent", "resume", "SDWAN Manager"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    tick().await;
    let out = ctl(&app, a, &["--json", "approvals", "show", &revoke_id]).await;
    let shown: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(shown["execution_status"], "succeeded");
    let out = ctl(&app, a, &["agent", "list"]).await;
    assert!(stdout(&out).contains("SDWAN Manager"));
}
