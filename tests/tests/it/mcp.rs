//! MCP at `/mcp` (SPEC §10) over real JSON-RPC on HTTP: the tools and their schemas, each
//! tool's success and refusal, permissions, the approval gate, authentication and the Host
//! allowlist. The official Python SDK client's run is `mcp_python_client_*` below.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use powernode_domain::Permission;
use powernode_tests::federation::{PEERS, instance, instance_with};
use powernode_tests::{
    TestApp, TestDb, admin_token, create_operator, insert_peer, settings, settings_with, spawn_app,
};
use serde_json::{Value, json};

/// One JSON-RPC call to `/mcp`: status and the parsed body.
async fn rpc(app: &TestApp, token: Option<&str>, method: &str, params: Value) -> (u16, Value) {
    rpc_with_host(app, token, method, params, None).await
}

async fn rpc_with_host(
    app: &TestApp,
    token: Option<&str>,
    method: &str,
    params: Value,
    host: Option<&str>,
) -> (u16, Value) {
    let mut req = app
        .client
        .post(app.url("/mcp"))
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(h) = host {
        req = req.header("Host", h);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// `tools/call`: the result object (`structuredContent`, `content`, `isError`).
async fn call(app: &TestApp, token: &str, tool: &str, args: Value) -> Value {
    let (status, body) = rpc(
        app,
        Some(token),
        "tools/call",
        json!({"name": tool, "arguments": args}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["result"].clone()
}

fn ok(result: &Value) -> &Value {
    assert_ne!(result["isError"], json!(true), "{result:#}");
    &result["structuredContent"]
}

/// A refusal: `isError`, the text `<status> <CODE>: <error>`, the error body as structured content.
fn refused<'a>(result: &'a Value, text: &str) -> &'a Value {
    assert_eq!(result["isError"], json!(true), "{result:#}");
    assert_eq!(result["content"][0]["text"], json!(text), "{result:#}");
    let body = &result["structuredContent"];
    assert_eq!(body["success"], json!(false));
    body
}

const TOOLS: [&str; 11] = [
    "system_sdwan_propose_federation_peer",
    "system_sdwan_accept_federation_peer",
    "system_sdwan_revoke_federation_peer",
    "system_sdwan_list_federation_peers",
    "system_sdwan_get_federation_peer",
    "system_sdwan_federation_scan",
    "system_sdwan_diagnose_federation",
    "system_sdwan_list_approvals",
    "system_sdwan_get_approval",
    "system_sdwan_claim_approval_result",
    "platform_recent_events",
];

#[tokio::test]
async fn initialize_and_list_the_eleven_tools_with_described_inputs_and_output_schemas() {
    let db = TestDb::new();
    let token = admin_token(&mut db.conn());
    let app = spawn_app(settings(&db)).await;
    let (status, init) = rpc(
        &app,
        Some(&token),
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "test", "version": "1"}}),
    )
    .await;
    assert_eq!(status, 200, "{init}");
    let instructions = init["result"]["instructions"].as_str().unwrap();
    assert!(
        instructions.contains("system_sdwan_accept_federation_peer"),
        "{instructions}"
    );
    assert!(instructions.contains("system_sdwan_claim_approval_result"));
    assert_eq!(init["result"]["serverInfo"]["name"], "powernode-federation");

    let (status, list) = rpc(&app, Some(&token), "tools/list", json!({})).await;
    assert_eq!(status, 200, "{list}");
    let tools = list["result"]["tools"].as_array().unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    let mut expected = TOOLS.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    for t in tools {
        assert!(t["description"].as_str().unwrap().len() > 40, "{t}");
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert!(
            t["outputSchema"].is_object(),
            "{} has no output schema",
            t["name"]
        );
    }
    let accept = tools
        .iter()
        .find(|t| t["name"] == "system_sdwan_accept_federation_peer")
        .unwrap();
    assert_eq!(
        accept["inputSchema"]["required"],
        json!(["acceptance_token"])
    );
    assert!(
        accept["inputSchema"]["properties"]["acceptance_token"]["description"]
            .as_str()
            .unwrap()
            .contains("pnfa1_")
    );
    let propose = tools
        .iter()
        .find(|t| t["name"] == "system_sdwan_propose_federation_peer")
        .unwrap();
    assert!(propose["inputSchema"]["properties"].get("drill").is_none());
    assert!(
        propose["inputSchema"]["properties"]
            .get("idempotency_key")
            .is_some()
    );
    assert!(
        propose["outputSchema"]["properties"]
            .get("acceptance_token")
            .is_some()
    );
}

#[tokio::test]
async fn a_missing_or_bad_token_is_http_401_with_json_rpc_minus_32001_and_a_foreign_host_is_refused()
 {
    let db = TestDb::new();
    let token = admin_token(&mut db.conn());
    let app = spawn_app(settings(&db)).await;
    let resp = app
        .client
        .post(app.url("/mcp"))
        .header("Accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"].to_str().unwrap(),
        "Bearer realm=\"mcp\""
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32001);
    assert_eq!(body["error"]["message"], "Operator token required");
    let (status, body) = rpc(&app, Some("pnop_wrong"), "tools/list", json!({})).await;
    assert_eq!(status, 401);
    assert_eq!(
        (
            body["error"]["code"].as_i64(),
            body["error"]["message"].as_str()
        ),
        (Some(-32001), Some("Invalid or disabled operator token"))
    );
    // DNS-rebinding protection: only the allowed Host headers.
    let (status, _) = rpc_with_host(
        &app,
        Some(&token),
        "tools/list",
        json!({}),
        Some("evil.example.com"),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = rpc_with_host(
        &app,
        Some(&token),
        "tools/list",
        json!({}),
        Some(&format!("localhost:{}", app.port)),
    )
    .await;
    assert_eq!(status, 200);
    // A configured list replaces the default.
    let db2 = TestDb::new();
    let token2 = admin_token(&mut db2.conn());
    let app2 = spawn_app(settings_with(
        &db2.url,
        &[("POWERNODE_MCP_ALLOWED_HOSTS", "ops.example.com".to_owned())],
    ))
    .await;
    let (status, _) = rpc(&app2, Some(&token2), "tools/list", json!({})).await;
    assert_eq!(status, 403, "127.0.0.1 is no longer allowed");
    let (status, _) = rpc_with_host(
        &app2,
        Some(&token2),
        "tools/list",
        json!({}),
        Some("ops.example.com"),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn read_tools_answer_like_their_routes_and_refuse_like_them() {
    let db = TestDb::new();
    let admin = admin_token(&mut db.conn());
    let reader = create_operator(&mut db.conn(), "reader", &[Permission::FederationRead]);
    let nobody = create_operator(&mut db.conn(), "nobody", &[Permission::OperatorsAdmin]);
    let app = spawn_app(settings(&db)).await;
    let ids: Vec<_> = (0..3)
        .map(|_| insert_peer(&mut db.conn(), "active", "platform", Some(5)))
        .collect();
    let degraded = insert_peer(&mut db.conn(), "degraded", "platform", Some(900));

    // Paging, mirrored by REST.
    let first = call(
        &app,
        &reader,
        "system_sdwan_list_federation_peers",
        json!({"limit": 2}),
    )
    .await;
    let page = ok(&first);
    assert_eq!(page["peers"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let second = call(
        &app,
        &reader,
        "system_sdwan_list_federation_peers",
        json!({"limit": 2, "cursor": cursor}),
    )
    .await;
    let page2 = ok(&second);
    assert_eq!(page2["peers"].as_array().unwrap().len(), 2);
    assert!(page2["next_cursor"].is_null());
    let mut seen: Vec<Value> = page["peers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["peers"].as_array().unwrap())
        .map(|p| p["id"].clone())
        .collect();
    seen.dedup();
    assert_eq!(seen.len(), 4);
    let resp = app
        .client
        .get(app.url(&format!("{PEERS}?limit=2")))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["x-next-cursor"].to_str().unwrap(),
        page["next_cursor"].as_str().unwrap()
    );
    let r = call(
        &app,
        &reader,
        "system_sdwan_list_federation_peers",
        json!({"status": "degraded"}),
    )
    .await;
    let only = &ok(&r)["peers"];
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_eq!(only[0]["degraded_reason"], json!(null));
    assert_eq!(only[0]["heartbeat_stale"], true);
    let r = call(
        &app,
        &reader,
        "system_sdwan_list_federation_peers",
        json!({"cursor": "nope"}),
    )
    .await;
    refused(
        &r,
        "422 VALIDATION_FAILED: cursor is not a cursor this API issued",
    );
    let r = call(
        &app,
        &reader,
        "system_sdwan_list_federation_peers",
        json!({"limit": 0}),
    )
    .await;
    refused(&r, "422 VALIDATION_FAILED: limit must be 1-500");

    let r = call(
        &app,
        &reader,
        "system_sdwan_get_federation_peer",
        json!({"peer_id": ids[0]}),
    )
    .await;
    assert_eq!(ok(&r)["id"], json!(ids[0]));
    let missing = uuid::Uuid::new_v4();
    let r = call(
        &app,
        &reader,
        "system_sdwan_get_federation_peer",
        json!({"peer_id": missing}),
    )
    .await;
    refused(&r, &format!("404 NOT_FOUND: peer {missing} not found"));
    // Permissions: the same 403 as REST, with the required permission.
    let r = call(
        &app,
        &nobody,
        "system_sdwan_get_federation_peer",
        json!({"peer_id": ids[0]}),
    )
    .await;
    let body = refused(&r, "403 FORBIDDEN: Forbidden");
    assert_eq!(
        body["details"]["required_permission"],
        "system.federation.read"
    );
    let r = call(&app, &reader, "system_sdwan_federation_scan", json!({})).await;
    let body = refused(&r, "403 FORBIDDEN: Forbidden");
    assert_eq!(
        body["details"]["required_permission"],
        "system.federation.manage"
    );

    // Scan (trigger mcp), diagnose (instance and peer), events.
    let r = call(&app, &admin, "system_sdwan_federation_scan", json!({})).await;
    let report = ok(&r);
    assert_eq!(report["trigger"], "mcp");
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "peer_heartbeat_stale" && f["peer_id"] == json!(degraded))
    );
    let r = call(&app, &reader, "system_sdwan_diagnose_federation", json!({})).await;
    let checks = ok(&r)["checks"].as_array().unwrap().clone();
    assert!(checks.iter().any(|c| c["check"] == "redis"));
    let r = call(
        &app,
        &reader,
        "system_sdwan_diagnose_federation",
        json!({"peer_id": degraded}),
    )
    .await;
    assert_eq!(ok(&r)["peer_id"], json!(degraded));
    let r = call(
        &app,
        &reader,
        "platform_recent_events",
        json!({"source": "governance", "since": "2026-01-01T00:00:00Z"}),
    )
    .await;
    let events = ok(&r)["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"], "governance.scan_completed");
    let r = call(
        &app,
        &reader,
        "platform_recent_events",
        json!({"since": "yesterday"}),
    )
    .await;
    assert!(
        r["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("400 BAD_REQUEST: since must be an ISO 8601 timestamp")
    );
    // Every other tool's refusal is the REST answer's.
    let r = call(
        &app,
        &reader,
        "system_sdwan_diagnose_federation",
        json!({"peer_id": missing}),
    )
    .await;
    refused(&r, &format!("404 NOT_FOUND: peer {missing} not found"));
    let r = call(
        &app,
        &reader,
        "system_sdwan_list_approvals",
        json!({"status": "maybe"}),
    )
    .await;
    assert!(
        r["content"][0]["text"].as_str().unwrap().starts_with(
            "400 BAD_REQUEST: status must be pending, approved, rejected, expired, cancelled or all"
        ),
        "{r}"
    );
    let r = call(
        &app,
        &reader,
        "system_sdwan_get_approval",
        json!({"approval_request_id": missing}),
    )
    .await;
    refused(
        &r,
        &format!("404 NOT_FOUND: approval request {missing} not found"),
    );
    let r = call(
        &app,
        &admin,
        "system_sdwan_claim_approval_result",
        json!({"approval_request_id": missing}),
    )
    .await;
    refused(
        &r,
        &format!("404 NOT_FOUND: approval request {missing} not found"),
    );
    let r = call(
        &app,
        &admin,
        "system_sdwan_accept_federation_peer",
        json!({"acceptance_token": "not-a-token"}),
    )
    .await;
    refused(&r, "422 VALIDATION_FAILED: acceptance_token malformed");
    let r = call(
        &app,
        &reader,
        "system_sdwan_accept_federation_peer",
        json!({"acceptance_token": "not-a-token"}),
    )
    .await;
    refused(&r, "403 FORBIDDEN: Forbidden");
    let r = call(
        &app,
        &reader,
        "system_sdwan_revoke_federation_peer",
        json!({"peer_id": ids[0], "reason": "x"}),
    )
    .await;
    refused(&r, "403 FORBIDDEN: Forbidden");
    let r = call(
        &app,
        &reader,
        "system_sdwan_propose_federation_peer",
        json!({"remote_instance_url": "https://x.example.com", "spawn_role": "parent"}),
    )
    .await;
    refused(&r, "403 FORBIDDEN: Forbidden");
    // Unknown arguments are refused by the schema's own rule (deny_unknown_fields).
    let (_, body) = rpc(
        &app,
        Some(&reader),
        "tools/call",
        json!({"name": "system_sdwan_get_federation_peer", "arguments": {"peer_id": ids[0], "extra": 1}}),
    )
    .await;
    assert!(
        body.get("error").is_some() || body["result"]["isError"] == json!(true),
        "{body}"
    );
}

#[tokio::test]
async fn the_gate_queues_propose_and_revoke_and_the_requester_claims_the_token_once() {
    let db = TestDb::gated();
    let requester = create_operator(
        &mut db.conn(),
        "requester",
        &[Permission::FederationRead, Permission::FederationManage],
    );
    let approver = create_operator(
        &mut db.conn(),
        "approver",
        &[Permission::FederationRead, Permission::InfraTasksControl],
    );
    let app = spawn_app(settings(&db)).await;
    let r = call(
        &app,
        &requester,
        "system_sdwan_propose_federation_peer",
        json!({"remote_instance_url": "https://platform-b.example.com", "spawn_role": "parent",
               "idempotency_key": "agent-propose-1"}),
    )
    .await;
    let queued = ok(&r);
    assert_eq!(queued["approval_required"], true);
    assert_eq!(
        queued["message"],
        "Approval required: system.federation_peer_propose"
    );
    assert!(queued["acceptance_token"].is_null());
    let request = queued["approval_request"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The same key and arguments: the first answer, not a second request.
    let again = call(
        &app,
        &requester,
        "system_sdwan_propose_federation_peer",
        json!({"remote_instance_url": "https://platform-b.example.com", "spawn_role": "parent",
               "idempotency_key": "agent-propose-1"}),
    )
    .await;
    assert_eq!(ok(&again)["approval_request"]["id"], json!(request));
    let r = call(&app, &requester, "system_sdwan_list_approvals", json!({})).await;
    assert_eq!(ok(&r)["approvals"].as_array().unwrap().len(), 1);
    let r = call(
        &app,
        &requester,
        "system_sdwan_claim_approval_result",
        json!({"approval_request_id": request}),
    )
    .await;
    refused(&r, "409 CONFLICT: result not available: execution pending");
    // A human approves; the SDWAN Manager executes; the requester collects the token once.
    let (status, body) = app
        .post(
            &format!("/api/v1/ai/autonomy/approvals/{request}/approve"),
            &approver,
            json!({"comments": "ok"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.sdwan_tick().await["executed"], 1);
    let r = call(
        &app,
        &requester,
        "system_sdwan_get_approval",
        json!({"approval_request_id": request}),
    )
    .await;
    assert_eq!(ok(&r)["execution_status"], "succeeded");
    let r = call(
        &app,
        &approver,
        "system_sdwan_claim_approval_result",
        json!({"approval_request_id": request}),
    )
    .await;
    refused(&r, "403 FORBIDDEN: Only the requester can claim the result");
    let r = call(
        &app,
        &requester,
        "system_sdwan_claim_approval_result",
        json!({"approval_request_id": request}),
    )
    .await;
    let claimed = ok(&r);
    let token = claimed["acceptance_token"].as_str().unwrap();
    assert!(token.starts_with("pnfa1_"), "{claimed}");
    let r = call(
        &app,
        &requester,
        "system_sdwan_claim_approval_result",
        json!({"approval_request_id": request}),
    )
    .await;
    refused(&r, "409 CONFLICT: result already claimed");

    // Revoke is gated too; the approved revoke runs on the next tick.
    let peer = insert_peer(&mut db.conn(), "active", "platform", Some(5));
    let r = call(
        &app,
        &requester,
        "system_sdwan_revoke_federation_peer",
        json!({"peer_id": peer, "reason": "compromised"}),
    )
    .await;
    let queued = ok(&r);
    assert_eq!(queued["approval_required"], true);
    assert_eq!(
        queued["message"],
        "Approval required: system.federation_peer_revoke"
    );
    let request = queued["approval_request"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = app
        .post(
            &format!("/api/v1/ai/autonomy/approvals/{request}/approve"),
            &approver,
            json!({"comments": "confirmed"}),
        )
        .await;
    assert_eq!(status, 200);
    app.sdwan_tick().await;
    let r = call(
        &app,
        &requester,
        "system_sdwan_get_federation_peer",
        json!({"peer_id": peer}),
    )
    .await;
    assert_eq!(ok(&r)["status"], "revoked");
    // Validation: the REST messages.
    let r = call(
        &app,
        &requester,
        "system_sdwan_revoke_federation_peer",
        json!({"peer_id": peer, "reason": " "}),
    )
    .await;
    refused(&r, "422 VALIDATION_FAILED: reason can't be blank");
    let r = call(
        &app,
        &requester,
        "system_sdwan_propose_federation_peer",
        json!({"remote_instance_url": "http://plain.example.com", "spawn_role": "parent"}),
    )
    .await;
    refused(
        &r,
        "422 VALIDATION_FAILED: remote_instance_url must be an absolute https URL",
    );
    let r = call(
        &app,
        &requester,
        "system_sdwan_propose_federation_peer",
        json!({"remote_instance_url": "https://x.example.com", "spawn_role": "parent", "idempotency_key": ""}),
    )
    .await;
    refused(
        &r,
        "422 VALIDATION_FAILED: Idempotency-Key must be 1-255 visible ASCII characters",
    );
}

#[tokio::test]
async fn propose_on_a_and_accept_on_b_through_mcp_and_a_relayed_refusal_is_a_tool_error() {
    let a = instance().await;
    let b = instance_with(&[]).await;
    a.ready().await;
    b.ready().await;
    let r = call(
        &a.app,
        &a.admin,
        "system_sdwan_propose_federation_peer",
        json!({"remote_instance_url": b.public_url, "spawn_role": "parent"}),
    )
    .await;
    let proposed = ok(&r);
    assert_eq!(proposed["approval_required"], false);
    let replaced = proposed["acceptance_token"].as_str().unwrap().to_owned();
    // A regenerated the token: the old one is A's 422, relayed by B as a tool error with A's
    // status and code.
    let peer_on_a = proposed["peer"]["id"].as_str().unwrap().to_owned();
    let token = a
        .operator()
        .regenerate_token(
            peer_on_a.parse::<uuid::Uuid>().unwrap().into(),
            &powernode_client::peers::RegenerateRequest::default(),
        )
        .await
        .unwrap()
        .acceptance_token
        .unwrap();
    let bad = replaced;
    let r = call(
        &b.app,
        &b.admin,
        "system_sdwan_accept_federation_peer",
        json!({"acceptance_token": bad}),
    )
    .await;
    let body = refused(
        &r,
        "422 VALIDATION_FAILED: acceptance_token does not match stored digest",
    );
    assert_eq!(body["details"]["from"], "peer");
    let r = call(
        &b.app,
        &b.admin,
        "system_sdwan_accept_federation_peer",
        json!({"acceptance_token": token}),
    )
    .await;
    let accepted = ok(&r);
    assert_eq!(accepted["approval_required"], false);
    assert_eq!(accepted["peer"]["status"], "accepted");
    b.worker("peer_heartbeats").await;
    a.worker("peer_heartbeats").await;
    b.worker("peer_heartbeats").await;
    let r = call(
        &a.app,
        &a.admin,
        "system_sdwan_list_federation_peers",
        json!({}),
    )
    .await;
    assert_eq!(ok(&r)["peers"][0]["status"], "active");
}

/// One instance as real processes: its API and a worker with a 1-second peer-heartbeat schedule
/// (the SDWAN Manager's tick is parked: the story runs it through the worker API itself).
struct Side {
    db: TestDb,
    base: String,
    public_url: String,
    _api: powernode_tests::Process,
    _worker: powernode_tests::Process,
}

async fn side(db: TestDb) -> Side {
    use powernode_tests::{
        Process, WORKER_TOKEN, free_port, master_key_file, redis_prefix, redis_url,
    };
    let (http, fed) = (free_port(), free_port());
    let prefix = redis_prefix();
    let public_url = format!("https://127.0.0.1:{fed}");
    let base = format!("http://127.0.0.1:{http}");
    let api = Process::spawn(
        "powernode-api",
        &["serve"],
        &[
            ("POWERNODE_DATABASE_URL", db.url.clone()),
            ("POWERNODE_REDIS_URL", redis_url()),
            ("POWERNODE_REDIS_PREFIX", prefix.clone()),
            ("POWERNODE_WORKER_TOKEN", WORKER_TOKEN.to_owned()),
            ("POWERNODE_MASTER_KEY_FILE", master_key_file()),
            ("POWERNODE_FEDERATION_PUBLIC_URL", public_url.clone()),
            ("POWERNODE_FEDERATION_LISTEN", format!("127.0.0.1:{fed}")),
            ("POWERNODE_HTTP_LISTEN", format!("127.0.0.1:{http}")),
            ("POWERNODE_ENVIRONMENT", "development".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ],
    );
    api.wait_for(std::time::Duration::from_secs(120), |l| {
        l.contains("federation API listening")
    })
    .await;
    let worker = Process::spawn(
        "powernode-worker",
        &["--name", "story"],
        &[
            ("POWERNODE_API_URL", base.clone()),
            ("POWERNODE_WORKER_TOKEN", WORKER_TOKEN.to_owned()),
            ("POWERNODE_REDIS_URL", redis_url()),
            ("POWERNODE_REDIS_PREFIX", prefix),
            ("POWERNODE_WORKER_POLL_INTERVAL_MS", "100".to_owned()),
            ("POWERNODE_WORKER_METRICS_LISTEN", String::new()),
            (
                "POWERNODE_SCHEDULES__FEDERATION_PEER_HEARTBEAT__INTERVAL_SECS",
                "1".to_owned(),
            ),
            (
                "POWERNODE_SCHEDULES__SDWAN_MANAGER_TICK__QUEUE",
                "parked".to_owned(),
            ),
            ("POWERNODE_WORKER_QUEUES", "system".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ],
    );
    Side {
        db,
        base,
        public_url,
        _api: api,
        _worker: worker,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_python_client_drives_the_story_on_two_instances() {
    use diesel::connection::SimpleConnection;
    let python = std::env::var("POWERNODE_MCP_PYTHON").expect(
        "POWERNODE_MCP_PYTHON names the MCP SDK's Python (scripts/dev test installs it into .tools/mcp)",
    );
    // Seeded policies on both; A's propose and B's accept relaxed for the first steps (the
    // story gates propose again itself), revoke stays gated.
    let a_db = TestDb::gated();
    a_db.conn()
        .batch_execute(
            "UPDATE intervention_policies SET policy = 'notify_and_proceed'
              WHERE action = 'system.federation_peer_propose'",
        )
        .unwrap();
    let b_db = TestDb::gated();
    b_db.conn()
        .batch_execute(
            "UPDATE intervention_policies SET policy = 'notify_and_proceed'
              WHERE action = 'system.federation_peer_accept'",
        )
        .unwrap();
    let a_token = admin_token(&mut a_db.conn());
    let a_approver = create_operator(
        &mut a_db.conn(),
        "approver",
        &[Permission::FederationRead, Permission::InfraTasksControl],
    );
    let b_token = admin_token(&mut b_db.conn());
    let a = side(a_db).await;
    let b = side(b_db).await;
    let script = powernode_tests::workspace_root().join("tests/mcp/federation_story.py");
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        tokio::process::Command::new(python)
            .arg(script)
            .env("A_URL", &a.base)
            .env("A_TOKEN", &a_token)
            .env("A_APPROVER", &a_approver)
            .env("B_URL", &b.base)
            .env("B_TOKEN", &b_token)
            .env("B_PUBLIC_URL", &b.public_url)
            .env("WORKER_TOKEN", powernode_tests::WORKER_TOKEN)
            .output(),
    )
    .await
    .expect("the Python client finished within 5 minutes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    println!("{stdout}");
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for line in [
        "[legacy] connected: protocol 2025-",
        "[auto] connected: protocol ",
        "wrong token: MCPError -32001: Invalid or disabled operator token",
        "accept on B: isError=False approval_required=False",
        "both active: A sees active, B sees active",
        "recent events on A (accept_controller since",
        "scan on A: report",
        "revoke on A: Approval required: system.federation_peer_revoke",
        "after approve + tick: request succeeded, peer revoked",
        "gated propose: Approval required: system.federation_peer_propose; claimed pnfa1_… once; again: isError 409 CONFLICT: result already claimed",
        "ALL OK",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    drop((a.db, b.db));
}
