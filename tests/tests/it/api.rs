//! The API booted on port 0 against real PostgreSQL and Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::Duration;

use diesel::prelude::*;
use powernode_store::events::{self, EventFilter};
use powernode_store::peers;
use powernode_tests::{TestDb, WORKER_TOKEN, insert_peer, settings, settings_from, spawn_app};
use serde_json::{Value, json};

const SWEEP: &str = "/api/v1/system/worker_api/federation/heartbeat_sweep";

async fn body(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, json)
}

#[tokio::test]
async fn sweep_without_a_token_is_401_worker_token_required() {
    let db = TestDb::new();
    let app = spawn_app(settings(&db)).await;
    let resp = app.client.post(app.url(SWEEP)).send().await.unwrap();
    assert_eq!(
        body(resp).await,
        (
            401,
            json!({"success": false, "error": "Worker token required", "code": "UNAUTHORIZED", "details": {}})
        )
    );
}

#[tokio::test]
async fn sweep_with_a_wrong_token_is_401_invalid_or_inactive() {
    let db = TestDb::new();
    let app = spawn_app(settings(&db)).await;
    for header in [("X-Worker-Token", "nope"), ("Authorization", "Bearer nope")] {
        let resp = app
            .client
            .post(app.url(SWEEP))
            .header(header.0, header.1)
            .send()
            .await
            .unwrap();
        assert_eq!(
            body(resp).await,
            (
                401,
                json!({"success": false, "error": "Invalid or inactive worker token", "code": "UNAUTHORIZED", "details": {}})
            )
        );
    }
}

#[tokio::test]
async fn sweep_with_the_token_answers_the_exact_body_shape() {
    let db = TestDb::new();
    let app = spawn_app(settings(&db)).await;
    let resp = app
        .client
        .post(app.url(SWEEP))
        .header("Authorization", format!("Bearer {WORKER_TOKEN}"))
        .send()
        .await
        .unwrap();
    let (status, json) = body(resp).await;
    assert_eq!(status, 200);
    assert_eq!(json["success"], true);
    let data = json["data"].as_object().unwrap();
    let mut keys: Vec<_> = data.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["degraded_ids", "ran_at", "swept"]);
    assert_eq!(data["swept"], 0);
    assert_eq!(data["degraded_ids"], json!([]));
    let ran_at = data["ran_at"].as_str().unwrap();
    time::OffsetDateTime::parse(ran_at, &time::format_description::well_known::Rfc3339).unwrap();
}

#[tokio::test]
async fn sweep_degrades_only_active_platform_peers_silent_past_stale_after() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let stale = insert_peer(&mut conn, "active", "platform", Some(6 * 60));
    let never = insert_peer(&mut conn, "active", "platform", None);
    let fresh = insert_peer(&mut conn, "active", "platform", Some(4 * 60));
    let untouched: Vec<_> = [
        ("enrolled", "platform"),
        ("degraded", "platform"),
        ("suspended", "platform"),
        ("active", "sdwan_only"),
    ]
    .into_iter()
    .map(|(s, k)| (s, insert_peer(&mut conn, s, k, Some(6 * 60))))
    .collect();
    let app = spawn_app(settings(&db)).await;

    let (status, json) = body(app.sweep().await).await;
    assert_eq!(status, 200);
    assert_eq!(json["data"]["swept"], 2);
    let mut expected = vec![stale.to_string(), never.to_string()];
    expected.sort();
    let mut got: Vec<String> = json["data"]["degraded_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, expected);

    for id in [stale, never] {
        let peer = peers::find(&mut conn, id).unwrap().unwrap();
        assert_eq!(peer.status.as_str(), "degraded");
        assert_eq!(
            peer.metadata["degraded_reason"],
            "heartbeat stale (>5 minutes)"
        );
        let evs = events::list(
            &mut conn,
            &EventFilter {
                peer_id: Some(id),
                limit: 10,
                ..EventFilter::default()
            },
        )
        .unwrap();
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].kind, "federation.peer.heartbeat_stale");
        assert_eq!(evs[0].severity, "medium");
        assert_eq!(evs[0].source, "federation_heartbeat_sweep");
        assert_eq!(evs[0].payload["from"], "active");
        assert_eq!(evs[0].payload["to"], "degraded");
        assert_eq!(evs[0].payload["reason"], "heartbeat stale (>5 minutes)");
    }
    assert_eq!(
        peers::find(&mut conn, fresh)
            .unwrap()
            .unwrap()
            .status
            .as_str(),
        "active"
    );
    for (status, id) in &untouched {
        let peer = peers::find(&mut conn, *id).unwrap().unwrap();
        assert_eq!(peer.status.as_str(), *status);
        assert!(peer.metadata.get("degraded_reason").is_none());
    }

    let (status, json) = body(app.sweep().await).await;
    assert_eq!((status, &json["data"]["swept"]), (200, &json!(0)));
    let all = events::list(
        &mut conn,
        &EventFilter {
            limit: 100,
            ..EventFilter::default()
        },
    )
    .unwrap();
    assert_eq!(all.len(), 2, "a second sweep writes nothing");
}

#[tokio::test]
async fn the_degraded_reason_is_rendered_from_the_setting() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let id = insert_peer(&mut conn, "active", "platform", Some(61));
    let mut s = settings(&db);
    s.stale_after_secs = 60;
    let app = spawn_app(s).await;
    let (_, json) = body(app.sweep().await).await;
    assert_eq!(json["data"]["swept"], 1);
    let peer = peers::find(&mut conn, id).unwrap().unwrap();
    assert_eq!(
        peer.metadata["degraded_reason"],
        "heartbeat stale (>1 minute)"
    );
}

#[tokio::test]
async fn two_concurrent_sweeps_degrade_each_of_100_peers_once_with_one_event_each() {
    let db = TestDb::new();
    let mut conn = db.conn();
    diesel::sql_query(
        "INSERT INTO peers (id, origin, remote_instance_url, peer_kind, spawn_role, status, last_heartbeat_at)
         SELECT gen_random_uuid(), 'proposed_here', 'https://p' || g || '.example.com', 'platform',
                'child', 'active', now() - interval '10 minutes'
           FROM generate_series(1, 100) g",
    )
    .execute(&mut conn)
    .unwrap();
    let app = spawn_app(settings(&db)).await;
    let (a, b) = tokio::join!(app.sweep(), app.sweep());
    let (sa, ja) = body(a).await;
    let (sb, jb) = body(b).await;
    assert_eq!((sa, sb), (200, 200));
    let total = ja["data"]["swept"].as_u64().unwrap() + jb["data"]["swept"].as_u64().unwrap();
    assert_eq!(total, 100);
    let degraded = peers::list(&mut conn, Some(powernode_domain::PeerStatus::Degraded)).unwrap();
    assert_eq!(degraded.len(), 100);
    let evs = events::list(
        &mut conn,
        &EventFilter {
            kind: Some("federation.peer.heartbeat_stale".to_owned()),
            limit: 1000,
            ..EventFilter::default()
        },
    )
    .unwrap();
    assert_eq!(evs.len(), 100);
    let mut peers_with_events: Vec<_> = evs.iter().filter_map(|e| e.peer_id).collect();
    peers_with_events.sort();
    peers_with_events.dedup();
    assert_eq!(peers_with_events.len(), 100);
}

#[tokio::test]
async fn sweep_answers_500_with_the_spec_message_when_its_statement_fails() {
    let db = TestDb::new();
    let app = spawn_app(settings(&db)).await;
    // A schema the sweep cannot run against: its own failure, not the database's availability.
    diesel::sql_query("ALTER TABLE peers RENAME COLUMN last_heartbeat_at TO last_heartbeat_gone")
        .execute(&mut db.conn())
        .unwrap();
    let (status, json) = body(app.sweep().await).await;
    assert_eq!(status, 500);
    assert_eq!(
        json,
        json!({"success": false, "error": "federation_heartbeat_sweep_failed: internal error", "code": "INTERNAL_ERROR", "details": {}})
    );
}

#[tokio::test]
async fn without_a_database_the_sweep_is_503_and_readyz_names_postgresql() {
    let db = TestDb::new();
    let mut s = settings(&db);
    s.database_url = format!("{}_does_not_exist", db.url).into();
    s.database_timeout = Duration::from_secs(1);
    let app = spawn_app(s).await;
    let (status, json) = body(app.sweep().await).await;
    assert_eq!(status, 503);
    assert_eq!(
        json,
        json!({"success": false, "error": "database unavailable", "code": "SERVICE_UNAVAILABLE",
               "details": {"reason": "database_unavailable", "retry_after_seconds": 1}})
    );
    let (status, json) = body(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, 503);
    assert_eq!(json["error"], "not ready: postgresql, federation_listener");
    assert_eq!(
        json["details"],
        json!({"postgresql": "down", "redis": "ok", "federation_listener": "down", "heartbeat_batcher": "ok", "lookup_batcher": "ok"})
    );
}

#[tokio::test]
async fn healthz_and_readyz_answer_when_both_dependencies_are_up() {
    let db = TestDb::new();
    let app = spawn_app(settings(&db)).await;
    let (status, json) = body(app.client.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(
        (status, json),
        (200, json!({"success": true, "data": {"status": "ok"}}))
    );
    // The federation listener starts once the CA exists (milliseconds after start).
    let json = powernode_tests::eventually_async(Duration::from_secs(60), "ready", || async {
        let (status, json) = body(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
        (status == 200).then_some(json)
    })
    .await;
    assert_eq!(
        json["data"]["checks"],
        json!({"postgresql": "ok", "redis": "ok", "federation_listener": "ok", "heartbeat_batcher": "ok", "lookup_batcher": "ok"})
    );
}

#[tokio::test]
async fn with_migrations_pending_the_federation_listener_waits_and_starts_once_they_are_applied() {
    let db = TestDb::empty();
    let app = spawn_app(settings(&db)).await;
    let (status, json) = body(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(
        (status, json),
        (
            503,
            json!({"success": false, "error": "not ready: federation_listener", "code": "SERVICE_UNAVAILABLE",
                   "details": {"postgresql": "ok", "redis": "ok", "federation_listener": "down", "heartbeat_batcher": "ok", "lookup_batcher": "ok"}})
        )
    );
    // Its address is bound (the port is ours) but nothing listens yet: a peer, or a load
    // balancer, is refused at once — no hang, no connection accepted and then dropped.
    let federation = app
        .federation_address
        .trim_start_matches("https://")
        .to_owned();
    let refused = tokio::net::TcpStream::connect(&federation)
        .await
        .expect_err("nothing listens before the listener is ready");
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{refused}"
    );

    powernode_store::migrate::run_pending(&mut db.conn()).unwrap();
    let json = powernode_tests::eventually_async(Duration::from_secs(60), "ready", || async {
        let (status, json) = body(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
        (status == 200).then_some(json)
    })
    .await;
    assert_eq!(json["data"]["checks"]["federation_listener"], "ok");
    let ca = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .get(format!(
            "{}/api/v1/system/federation_api/ca",
            app.federation_address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ca.status(), 200);
}

#[tokio::test]
async fn readyz_is_503_and_names_the_dependency_that_is_down() {
    let db = TestDb::new();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = settings_from(&[
        ("POWERNODE_DATABASE_URL", db.url.clone()),
        (
            "POWERNODE_REDIS_URL",
            format!("redis://127.0.0.1:{closed_port}/"),
        ),
        ("POWERNODE_WORKER_TOKEN", WORKER_TOKEN.to_owned()),
        ("POWERNODE_HTTP_LISTEN", "127.0.0.1:0".to_owned()),
    ]);
    let app = spawn_app(s).await;
    let json =
        powernode_tests::eventually_async(Duration::from_secs(60), "listener up", || async {
            let (status, json) =
                body(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
            (json["details"]["federation_listener"] == "ok").then_some((status, json))
        })
        .await;
    assert_eq!(
        json,
        (
            503,
            json!({"success": false, "error": "not ready: redis", "code": "SERVICE_UNAVAILABLE",
                   "details": {"postgresql": "ok", "redis": "down", "federation_listener": "ok", "heartbeat_batcher": "ok", "lookup_batcher": "ok"}})
        )
    );
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_with_the_envelope() {
    let db = TestDb::new();
    let app = spawn_app(settings(&db)).await;
    let (status, json) = body(app.client.get(app.url("/nope")).send().await.unwrap()).await;
    assert_eq!(
        (status, json),
        (
            404,
            json!({"success": false, "error": "no route for GET /nope", "code": "NOT_FOUND", "details": {}})
        )
    );
    let resp = app.client.get(app.url(SWEEP)).send().await.unwrap();
    assert_eq!(resp.headers()["allow"], "POST");
    let (status, json) = body(resp).await;
    assert_eq!(status, 405);
    assert_eq!(json["code"], "METHOD_NOT_ALLOWED");
    assert_eq!(json["success"], false);
    let resp = app
        .client
        .delete(app.url("/api/v1/system/federation/grants"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET");
}

/// Every operator answer is `nosniff` and never cached (some carry once-only tokens); the
/// federation listener also sends HSTS.
#[tokio::test]
async fn security_headers_on_both_listeners() {
    use powernode_tests::federation::{instance, pinned_client};
    let a = instance().await;
    a.ready().await;
    for path in ["/healthz", "/api/v1/system/federation/peers", "/nope"] {
        let resp = a.app.client.get(a.app.url(path)).send().await.unwrap();
        assert_eq!(
            resp.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
        assert_eq!(resp.headers()["cache-control"], "no-store", "{path}");
    }
    let client = pinned_client(&a, None);
    let resp = client
        .post(format!(
            "{}/api/v1/system/federation_api/heartbeat",
            a.public_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let h = resp.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["strict-transport-security"], "max-age=31536000");
}

#[test]
fn the_api_refuses_to_start_without_a_worker_token_and_says_which_variable() {
    let out = std::process::Command::new(powernode_tests::bin("powernode-api"))
        .arg("serve")
        .env_clear()
        .env("POWERNODE_DATABASE_URL", "postgres://127.0.0.1:1/x")
        .env("POWERNODE_REDIS_URL", "redis://127.0.0.1:1/")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("POWERNODE_WORKER_TOKEN is not set"),
        "{stderr}"
    );

    let out = std::process::Command::new(powernode_tests::bin("powernode-api"))
        .arg("serve")
        .env_clear()
        .env("POWERNODE_DATABASE_URL", "postgres://127.0.0.1:1/x")
        .env("POWERNODE_REDIS_URL", "redis://127.0.0.1:1/")
        .env(
            "POWERNODE_MASTER_KEY_FILE",
            powernode_tests::master_key_file(),
        )
        .env(
            "POWERNODE_FEDERATION_PUBLIC_URL",
            powernode_tests::PUBLIC_URL,
        )
        .env("POWERNODE_WORKER_TOKEN", "short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("POWERNODE_WORKER_TOKEN is too short (5 characters)"),
        "{stderr}"
    );
}

/// The OpenAPI document describes the error envelope, and every error response refers to it.
#[tokio::test]
async fn every_error_response_in_the_openapi_document_is_the_error_body() {
    let db = TestDb::new();
    let app = spawn_app(settings(&db)).await;
    let doc: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let body = &doc["components"]["schemas"]["ErrorBody"];
    for key in ["success", "error", "code", "details"] {
        assert!(body["properties"].get(key).is_some(), "{body}");
    }
    let mut errors = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        // The federation listener's operations name their own server.
        if path.contains("/federation_api/") {
            assert_eq!(
                item["servers"][0]["url"],
                powernode_tests::PUBLIC_URL,
                "{path}"
            );
        }
        for (method, op) in item.as_object().unwrap() {
            if method == "servers" {
                continue;
            }
            for (status, response) in op["responses"].as_object().unwrap() {
                // Success bodies are the envelope around `data`.
                if let Some(schema) = response.pointer("/content/application~1json/schema")
                    && status.starts_with('2')
                    && path != "/api/v1/openapi.json"
                {
                    assert_eq!(
                        schema["required"],
                        json!(["success", "data"]),
                        "{method} {path} {status}"
                    );
                }
                if status.starts_with('4') || status.starts_with('5') {
                    errors += 1;
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    assert!(errors > 50, "only {errors} error responses documented");
}

/// NUL characters never reach PostgreSQL: 422 `<field> must not contain NUL characters` for
/// JSON bodies, 400 for paths and query strings, on every route (one guard), nothing written.
#[tokio::test]
async fn nul_characters_are_refused_before_any_handler() {
    let db = TestDb::new();
    let admin = powernode_tests::admin_token(&mut db.conn());
    let app = spawn_app(settings(&db)).await;
    let peer = insert_peer(&mut db.conn(), "active", "platform", Some(5));
    let bodies = [
        (
            reqwest::Method::PUT,
            "/api/v1/system/federation/resources/sdwan_config/x".to_owned(),
            json!({"a": "x\u{0}y"}),
            "document must not contain NUL characters",
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/system/federation/peers/{peer}/revoke"),
            json!({"reason": "gone\u{0}"}),
            "reason must not contain NUL characters",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/system/federation/peers".to_owned(),
            json!({"remote_instance_url": "https://b.example.com", "spawn_role": "parent",
                   "endpoints": ["ok", "a\u{0}"]}),
            "endpoints must not contain NUL characters",
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/system/federation/peers/{peer}/grants"),
            json!({"resource_kind": "sdwan_config", "permission_scopes": ["read"],
                   "node_instance_ids": ["n\u{0}"]}),
            "node_instance_ids must not contain NUL characters",
        ),
    ];
    for (method, path, body, error) in bodies {
        let (status, answer) = app.call(method, &path, Some(&admin), Some(body)).await;
        assert_eq!(
            (status, answer["error"].as_str(), answer["code"].as_str()),
            (422, Some(error), Some("VALIDATION_FAILED")),
            "{path}: {answer}"
        );
    }
    let resp = app
        .client
        .post(app.url("/api/v1/system/worker_api/report"))
        .header("X-Worker-Token", WORKER_TOKEN)
        .json(&json!({"schedule": "s", "job": "J\u{0}", "tick": 1, "outcome": "failed", "worker": "w"}))
        .send()
        .await
        .unwrap();
    let (status, answer) = body(resp).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (422, Some("job must not contain NUL characters"))
    );
    for path in [
        "/api/v1/system/fleet/events?source=a%00b",
        "/api/v1/system/federation/resources/sdwan_config/a%00b",
        "/api/v1/ai/autonomy/policies/a%00b",
    ] {
        let (status, answer) = app.get(path, &admin).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("BAD_REQUEST")),
            "{path}: {answer}"
        );
    }
    let (status, answer) = app
        .post("/api/v1/ai/agents/a%00b/pause", &admin, json!({}))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("path must not contain NUL characters"))
    );
    // Nothing was written, and the peer is untouched.
    let (_, shown) = app
        .get(&format!("/api/v1/system/federation/peers/{peer}"), &admin)
        .await;
    assert_eq!(shown["data"]["status"], "active");
}

/// Sends `request` as raw bytes (over TLS without verification when `tls`) and returns the
/// whole answer as text.
fn raw_exchange(addr: &str, tls: bool, request: Vec<u8>) -> String {
    use std::io::{Read, Write};
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut answer = Vec::new();
    if tls {
        let mut connector =
            openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).unwrap();
        connector.set_verify(openssl::ssl::SslVerifyMode::NONE);
        let mut stream = connector.build().connect("localhost", tcp).unwrap();
        let _ = stream.write_all(&request);
        let _ = stream.read_to_end(&mut answer);
    } else {
        let mut stream = tcp;
        let _ = stream.write_all(&request);
        let _ = stream.read_to_end(&mut answer);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Refusals actix-http's HTTP/1 parser makes before any application code runs (SPEC §10 asks
/// for the envelope wherever the framework allows; these it does not): their status, an empty
/// body, and a closed connection — on both listeners. `docs/errors.md` lists them.
#[tokio::test]
async fn protocol_level_refusals_answer_400_or_431_before_any_handler() {
    let db = TestDb::new();
    let app = spawn_app(settings(&db)).await;
    powernode_tests::eventually_async(Duration::from_secs(60), "federation listener", || async {
        let (status, json) = body(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
        (status == 200 || json["details"]["federation_listener"] == "ok").then_some(())
    })
    .await;
    let many_headers: Vec<u8> = (0..200)
        .flat_map(|i| format!("X-H{i}: v\r\n").into_bytes())
        .collect();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            [b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec(), vec![b'a'; 1 << 20], b"\r\n\r\n".to_vec()].concat(),
            "431 Request Header Fields Too Large",
        ),
        (
            [b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec(), many_headers, b"\r\n".to_vec()].concat(),
            "431 Request Header Fields Too Large",
        ),
        (
            b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec(),
            "400 Bad Request",
        ),
        (
            b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello".to_vec(),
            "400 Bad Request",
        ),
    ];
    let operator = app.address.trim_start_matches("http://").to_owned();
    let federation = app
        .federation_address
        .trim_start_matches("https://")
        .to_owned();
    for (request, status) in cases {
        for (addr, tls) in [(operator.clone(), false), (federation.clone(), true)] {
            // The server answers and closes before reading all of an oversized request; the
            // unread bytes make the kernel reset the connection, which can discard the answer
            // before the client reads it. That is TCP, not the server: try again.
            let mut answer = String::new();
            for _ in 0..5 {
                let (addr, request) = (addr.clone(), request.clone());
                answer = tokio::task::spawn_blocking(move || raw_exchange(&addr, tls, request))
                    .await
                    .unwrap();
                if !answer.is_empty() {
                    break;
                }
            }
            let head = answer.lines().next().unwrap_or_default().to_owned();
            assert_eq!(head, format!("HTTP/1.1 {status}"), "{answer}");
            let lower = answer.to_lowercase();
            assert!(lower.contains("content-length: 0"), "{answer}");
            assert!(lower.contains("connection: close"), "{answer}");
        }
    }
}

/// The OpenAPI document is true of the API: Schemathesis generates requests for every operator
/// and worker operation from it and checks each answer's status, content type and body against
/// it (SPEC §10). The federation listener's operations are documented with their own server and
/// excluded by tag; B's accept would call out to whatever URL a generated token names;
/// disabling an operator could disable the one this run uses.
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_the_openapi_document_true() {
    let st = std::env::var("POWERNODE_SCHEMATHESIS").expect(
        "POWERNODE_SCHEMATHESIS names the Schemathesis binary (scripts/dev test installs it into .tools/)",
    );
    let db = TestDb::new();
    let admin = powernode_tests::admin_token(&mut db.conn());
    let app = spawn_app(settings(&db)).await;
    let output = tokio::process::Command::new(st)
        .args([
            "--no-color",
            "run",
            &app.url("/api/v1/openapi.json"),
            "--url",
            &app.address,
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--exclude-tag",
            "federation",
            "--exclude-path",
            "/api/v1/system/federation/peers/accept",
            "--exclude-path",
            "/api/v1/system/operators/{id}/disable",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "20",
            "--generation-deterministic",
            "--output-truncate",
            "false",
        ])
        .arg("-H")
        .arg(format!("Authorization: Bearer {admin}"))
        .arg("-H")
        .arg(format!("X-Worker-Token: {WORKER_TOKEN}"))
        // Its caches go to a scratch directory, not the checkout.
        .current_dir(std::env::temp_dir())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(1200), output)
        .await
        .expect("Schemathesis finishes")
        .expect("Schemathesis runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "Schemathesis found failures:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("Tested: "), "{text}");
    // The summary (operations tested, cases generated) for the test log.
    let summary: Vec<&str> = text.lines().rev().take(20).collect();
    eprintln!(
        "{}",
        summary.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}
