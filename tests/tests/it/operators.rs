//! Operator tokens, permissions, events API, OpenAPI and secrets hygiene (issue #3).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::Duration;

use powernode_domain::Permission;
use powernode_tests::{
    PUBLIC_URL, Process, TestDb, WORKER_TOKEN, admin_token, columns_containing, create_operator,
    free_port, insert_peer, master_key_file, redis_url, settings, spawn_app,
};
use reqwest::Method;
use serde_json::{Value, json};

const PEERS: &str = "/api/v1/system/federation/peers";
const OPERATORS: &str = "/api/v1/system/operators";

#[tokio::test]
async fn operator_routes_need_a_valid_bearer_token() {
    let db = TestDb::new();
    let app = spawn_app(settings(&db)).await;
    let (status, body) = app.call(Method::GET, PEERS, None, None).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"success": false, "error": "Operator token required", "code": "UNAUTHORIZED", "details": {}})
        )
    );
    let (status, body) = app.get(PEERS, "pnop_not-a-real-token").await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"success": false, "error": "Invalid or disabled operator token", "code": "UNAUTHORIZED", "details": {}})
        )
    );
}

#[tokio::test]
async fn a_read_only_operator_can_read_but_not_propose() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let reader = create_operator(&mut conn, "reader", &[Permission::FederationRead]);
    let app = spawn_app(settings(&db)).await;
    let (status, _) = app.get(PEERS, &reader).await;
    assert_eq!(status, 200);
    let (status, body) = app
        .post(
            PEERS,
            &reader,
            json!({"remote_instance_url": "https://b.example.com", "spawn_role": "child"}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({"success": false, "error": "Forbidden", "code": "FORBIDDEN",
                   "details": {"required_permission": "system.federation.manage"}})
        )
    );
    assert!(
        powernode_store::peers::list(&mut conn, None)
            .unwrap()
            .is_empty()
    );
    let id = insert_peer(&mut conn, "active", "platform", Some(1));
    let (status, _) = app
        .post(
            &format!("{PEERS}/{id}/revoke"),
            &reader,
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app.get(OPERATORS, &reader).await;
    assert_eq!(status, 403);
    let (status, me) = app.get(&format!("{OPERATORS}/me"), &reader).await;
    assert_eq!(status, 200);
    assert_eq!(me["data"]["permissions"], json!(["system.federation.read"]));
    // A manager without read cannot list: no permission implies another.
    let manager = create_operator(&mut conn, "manager", &[Permission::FederationManage]);
    let (status, _) = app.get(PEERS, &manager).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn admins_create_list_and_disable_operators() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let admin = admin_token(&mut conn);
    let app = spawn_app(settings(&db)).await;
    let (status, created) = app
        .post(
            OPERATORS,
            &admin,
            json!({"name": "alice", "permissions": ["system.federation.read", "system.federation.manage"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let token = created["data"]["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("pnop_"));
    assert!(token.len() >= 5 + 43, "256 random bits, base64url");
    let id = created["data"]["operator"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.get(PEERS, &token).await.0, 200);

    let (status, dup) = app
        .post(
            OPERATORS,
            &admin,
            json!({"name": "alice", "permissions": ["system.federation.read"]}),
        )
        .await;
    assert_eq!((status, dup["code"].as_str()), (409, Some("CONFLICT")));
    let (status, bad) = app
        .post(
            OPERATORS,
            &admin,
            json!({"name": "bob", "permissions": ["system.everything"]}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(bad["details"]["field"], "permissions");

    let (_, listed) = app.get(OPERATORS, &admin).await;
    let names: Vec<_> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["admin", "alice"]);
    assert!(!listed.to_string().contains("digest"));

    let (status, disabled) = app
        .call(
            Method::POST,
            &format!("{OPERATORS}/{id}/disable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{disabled}");
    assert!(disabled["data"]["disabled_at"].is_string());
    let (status, body) = app.get(PEERS, &token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("Invalid or disabled operator token"))
    );
    let (status, _) = app
        .call(
            Method::POST,
            &format!("{OPERATORS}/{id}/disable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn events_are_filtered_newest_first_and_bad_since_is_400() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let admin = admin_token(&mut conn);
    let app = spawn_app(settings(&db)).await;
    let stale = insert_peer(&mut conn, "active", "platform", Some(3600));
    let (_, p) = app
        .post(
            PEERS,
            &admin,
            json!({"remote_instance_url": "https://b.example.com", "spawn_role": "child"}),
        )
        .await;
    let proposed = p["data"]["peer"]["id"].as_str().unwrap().to_owned();
    assert!(app.sweep().await.status().is_success());

    let (status, all) = app.get("/api/v1/system/fleet/events", &admin).await;
    assert_eq!(status, 200);
    let kinds: Vec<_> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].clone())
        .collect();
    // The propose proceeded under `notify_and_proceed` (TestDb::new), hence `approval.notified`.
    assert_eq!(
        kinds,
        [
            json!("federation.peer.heartbeat_stale"),
            json!("federation.peer.proposed"),
            json!("approval.notified")
        ]
    );

    let (_, by_source) = app
        .get(
            "/api/v1/system/fleet/events?source=federation_heartbeat_sweep",
            &admin,
        )
        .await;
    assert_eq!(by_source["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_source["data"][0]["peer_id"], stale.to_string());
    let (_, by_peer) = app
        .get(
            &format!(
                "/api/v1/system/fleet/events?peer_id={proposed}&kind=federation.peer.proposed"
            ),
            &admin,
        )
        .await;
    assert_eq!(by_peer["data"].as_array().unwrap().len(), 1);
    let (_, limited) = app.get("/api/v1/system/fleet/events?limit=1", &admin).await;
    assert_eq!(limited["data"].as_array().unwrap().len(), 1);
    let (_, future) = app
        .get(
            "/api/v1/system/fleet/events?since=2999-01-01T00:00:00Z",
            &admin,
        )
        .await;
    assert_eq!(future["data"], json!([]));

    let (status, bad) = app
        .get("/api/v1/system/fleet/events?since=yesterday", &admin)
        .await;
    assert_eq!(status, 400);
    assert_eq!(bad["code"], "BAD_REQUEST");
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .starts_with("since must be an ISO 8601 timestamp")
    );
    let (status, _) = app.get("/api/v1/system/fleet/events?limit=0", &admin).await;
    assert_eq!(status, 400);
    let (status, _) = app
        .get("/api/v1/system/fleet/events?peer_id=nope", &admin)
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document_and_every_documented_route_answers() {
    let db = TestDb::new();
    let app = spawn_app(settings(&db)).await;
    let resp = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("post", "/api/v1/system/worker_api/report"),
        (
            "post",
            "/api/v1/system/worker_api/federation/peer_heartbeats",
        ),
        (
            "post",
            "/api/v1/system/worker_api/federation/grant_maintenance",
        ),
        ("post", "/api/v1/system/federation/peers/accept"),
        ("post", "/api/v1/system/federation/peers/{id}/grants"),
        ("get", "/api/v1/system/federation/grants"),
        ("get", "/api/v1/system/federation/grants/{id}"),
        ("post", "/api/v1/system/federation/grants/{id}/revoke"),
        ("post", "/api/v1/system/federation/grants/{id}/renew"),
        ("post", "/api/v1/system/federation/grants/{id}/explain"),
        ("get", "/api/v1/system/federation/resources/{kind}/{id}"),
        ("put", "/api/v1/system/federation/resources/{kind}/{id}"),
        ("delete", "/api/v1/system/federation/resources/{kind}/{id}"),
        ("get", "/api/v1/system/worker/status"),
        ("get", "/api/v1/openapi.json"),
        (
            "post",
            "/api/v1/system/worker_api/federation/heartbeat_sweep",
        ),
        ("post", "/api/v1/system/federation/peers"),
        ("get", "/api/v1/system/federation/peers"),
        ("get", "/api/v1/system/federation/peers/{id}"),
        ("delete", "/api/v1/system/federation/peers/{id}"),
        (
            "post",
            "/api/v1/system/federation/peers/{id}/acceptance_token",
        ),
        ("post", "/api/v1/system/federation/peers/{id}/suspend"),
        ("post", "/api/v1/system/federation/peers/{id}/resume"),
        ("post", "/api/v1/system/federation/peers/{id}/revoke"),
        ("get", "/api/v1/system/fleet/events"),
        ("post", "/api/v1/system/operators"),
        ("get", "/api/v1/system/operators"),
        ("get", "/api/v1/system/operators/me"),
        ("post", "/api/v1/system/operators/{id}/disable"),
        ("post", "/api/v1/system/worker_api/sdwan_manager/tick"),
        ("get", "/api/v1/ai/autonomy/approvals"),
        ("get", "/api/v1/ai/autonomy/approvals/{id}"),
        ("post", "/api/v1/ai/autonomy/approvals/{id}/approve"),
        ("post", "/api/v1/ai/autonomy/approvals/{id}/reject"),
        ("post", "/api/v1/ai/autonomy/approvals/{id}/cancel"),
        ("post", "/api/v1/ai/autonomy/approvals/{id}/claim_result"),
        ("get", "/api/v1/ai/autonomy/policies"),
        ("get", "/api/v1/ai/autonomy/policies/{action}"),
        ("put", "/api/v1/ai/autonomy/policies/{action}"),
        ("post", "/api/v1/ai/autonomy/policies/{action}/lower"),
        ("post", "/api/v1/ai/autonomy/policies/{action}/restore"),
        ("get", "/api/v1/ai/agents"),
        ("post", "/api/v1/ai/agents/{name}/pause"),
        ("post", "/api/v1/ai/agents/{name}/resume"),
        ("post", "/api/v1/system/federation/governance/scan"),
        ("get", "/api/v1/system/federation/governance/reports"),
        ("get", "/api/v1/system/federation/governance/reports/latest"),
        ("get", "/api/v1/system/federation/governance/reports/{id}"),
        ("get", "/api/v1/system/federation/diagnosis"),
        ("get", "/api/v1/system/federation/peers/{id}/diagnosis"),
        (
            "post",
            "/api/v1/system/federation/peers/{id}/certificates/renew",
        ),
        (
            "post",
            "/api/v1/system/worker_api/federation/governance_scan",
        ),
        ("post", "/api/v1/system/worker_api/fleet_events/retention"),
        (
            "post",
            "/api/v1/system/worker_api/federation/peers/{id}/contact",
        ),
    ];
    for (method, path) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    // The federation listener's routes are in the same document.
    for (method, path) in [
        ("get", "/api/v1/system/federation_api/ca"),
        ("post", "/api/v1/system/federation_api/accept"),
        ("post", "/api/v1/system/federation_api/handshake"),
        ("post", "/api/v1/system/federation_api/heartbeat"),
        ("post", "/api/v1/system/federation_api/certificates/renew"),
        ("get", "/api/v1/system/federation_api/resources/{kind}/{id}"),
        ("put", "/api/v1/system/federation_api/resources/{kind}/{id}"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    let tls = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    powernode_tests::eventually_async(
        std::time::Duration::from_secs(60),
        "federation listener",
        || {
            let (tls, url) = (
                tls.clone(),
                format!("{}/api/v1/system/federation_api/ca", app.federation_address),
            );
            async move { tls.get(url).send().await.ok().filter(|r| r.status() == 200) }
        },
    )
    .await;
    // The other direction: each documented operation is served (anything but 404/405), on the
    // listener it belongs to.
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", "00000000-0000-4000-8000-000000000000")
            .replace("{kind}", "sdwan_config")
            .replace("{action}", "system.federation_peer_revoke")
            .replace("{name}", "SDWAN%20Manager");
        for method in ["get", "post", "delete", "put", "patch"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (client, base) = if path.starts_with("/api/v1/system/federation_api/") {
                (&tls, app.federation_address.as_str())
            } else {
                (&app.client, app.address.as_str())
            };
            let status = client
                .request(m, format!("{base}{concrete}"))
                .send()
                .await
                .unwrap()
                .status();
            assert!(
                status != 404 && status != 405,
                "{method} {path} is documented but answered {status}"
            );
        }
    }
    assert_eq!(operations, expected.len() + 7);
}

/// Runs the real API binary with its logs captured, performs every secret-bearing operation,
/// then checks neither the operator tokens nor the acceptance tokens reached a log line or a
/// text column.
#[tokio::test]
async fn secrets_never_reach_logs_or_plaintext_columns() {
    let db = TestDb::new();
    let port = free_port();
    let env = vec![
        ("POWERNODE_DATABASE_URL", db.url.clone()),
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
        ("RUST_LOG", "debug".to_owned()),
    ];
    let bootstrap = std::process::Command::new(powernode_tests::bin("powernode-api"))
        .args(["bootstrap", "--name", "root"])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        bootstrap.status.success(),
        "{}",
        String::from_utf8_lossy(&bootstrap.stderr)
    );
    let stdout = String::from_utf8(bootstrap.stdout).unwrap();
    let admin = stdout.lines().last().unwrap().trim().to_owned();
    assert!(admin.starts_with("pnop_"), "{stdout}");
    // A second bootstrap refuses; --force is the explicit way around.
    let again = std::process::Command::new(powernode_tests::bin("powernode-api"))
        .args(["bootstrap", "--name", "root2"])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("an enabled admin operator already exists")
            || String::from_utf8_lossy(&again.stderr)
                .contains("an enabled admin operator already exists")
    );

    let api = Process::spawn("powernode-api", &["serve"], &env);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    powernode_tests::eventually_async(Duration::from_secs(60), "API ready", || {
        let client = client.clone();
        let url = format!("{base}/readyz");
        async move {
            client
                .get(url)
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
        }
    })
    .await;
    let call = |method: Method, path: String, body: Option<Value>| {
        let mut req = client
            .request(method, format!("{base}{path}"))
            .bearer_auth(&admin);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, created) = call(
        Method::POST,
        OPERATORS.to_owned(),
        Some(json!({"name": "ops", "permissions": ["system.federation.read"]})),
    )
    .await;
    assert_eq!(status, 201);
    let ops_token = created["data"]["token"].as_str().unwrap().to_owned();
    let (status, proposed) = call(
        Method::POST,
        PEERS.to_owned(),
        Some(json!({"remote_instance_url": "https://b.example.com", "spawn_role": "child"})),
    )
    .await;
    assert_eq!(status, 201);
    let first = proposed["data"]["acceptance_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = proposed["data"]["peer"]["id"].as_str().unwrap().to_owned();
    let (status, regen) = call(Method::POST, format!("{PEERS}/{id}/acceptance_token"), None).await;
    assert_eq!(status, 200);
    let second = regen["data"]["acceptance_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = call(Method::GET, format!("{PEERS}/{id}"), None).await;
    assert_eq!(status, 200);
    // MCP: a token in a tool's result (propose) and in a tool's arguments (accept) at debug level.
    let mcp = |tool: &str, args: Value| {
        let req = client
            .post(format!("{base}/mcp"))
            .bearer_auth(&admin)
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2025-06-18")
            .json(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                          "params": {"name": tool, "arguments": args}}));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let by_mcp = mcp(
        "system_sdwan_propose_federation_peer",
        json!({"remote_instance_url": "https://c.example.com", "spawn_role": "child"}),
    )
    .await;
    let third = by_mcp["result"]["structuredContent"]["acceptance_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{by_mcp}"))
        .to_owned();
    // The accept fails (nothing answers at the token's URL), after the token went through.
    let refused = mcp(
        "system_sdwan_accept_federation_peer",
        json!({"acceptance_token": third}),
    )
    .await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");

    let mut conn = db.conn();
    let uuid: uuid::Uuid = id.parse().unwrap();
    powernode_store::peers::accept_with_token(&mut conn, uuid, Some(&first), false).unwrap_err();
    powernode_store::peers::accept_with_token(&mut conn, uuid, Some(&second), false).unwrap();

    let logs = api.output();
    assert!(
        logs.contains("peer proposed"),
        "the API's logs were captured:\n{logs}"
    );
    assert!(logs.contains("/mcp"), "the MCP calls were logged:\n{logs}");
    for secret in [&admin, &ops_token, &first, &second, &third] {
        let leaked: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(secret.as_str()))
            .collect();
        assert!(leaked.is_empty(), "a token reached the logs: {leaked:#?}");
        assert_eq!(columns_containing(&mut conn, secret), Vec::<String>::new());
    }
    // The secret part of the acceptance token on its own does not appear either.
    let claims = powernode_domain::token::parse(&second).unwrap();
    assert!(!logs.contains(&claims.secret));
    assert_eq!(
        columns_containing(&mut conn, &claims.secret),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn events_page_backwards_with_before() {
    use diesel::connection::SimpleConnection;
    let db = TestDb::new();
    let admin = admin_token(&mut db.conn());
    let app = spawn_app(settings(&db)).await;
    db.conn()
        .batch_execute(
            "INSERT INTO fleet_events (id, kind, severity, source, emitted_at) VALUES
               (gen_random_uuid(), 'test.one', 'low', 'test', '2026-11-29T10:00:00Z'),
               (gen_random_uuid(), 'test.two', 'low', 'test', '2026-11-29T11:00:00Z'),
               (gen_random_uuid(), 'test.three', 'low', 'test', '2026-11-29T12:00:00Z')",
        )
        .unwrap();
    let (status, body) = app
        .get(
            "/api/v1/system/fleet/events?source=test&before=2026-11-29T12:00:00Z",
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let kinds: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["test.two", "test.one"]);
    let (status, body) = app
        .get("/api/v1/system/fleet/events?before=noon", &admin)
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("before must be an ISO 8601 timestamp")
    );
}
