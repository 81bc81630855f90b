//! Operator API for peers over real HTTP against real PostgreSQL (issue #3).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use diesel::prelude::*;
use powernode_domain::Permission;
use powernode_domain::token;
use powernode_store::events::{self, EventFilter};
use powernode_store::peers;
use powernode_tests::{
    PUBLIC_URL, TestDb, admin_token, create_operator, insert_peer, settings, spawn_app,
};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

const PEERS: &str = "/api/v1/system/federation/peers";

fn platform_peer(url: &str) -> Value {
    json!({"remote_instance_url": url, "spawn_role": "parent", "spawn_mode": "autonomous_peer"})
}

fn events_of(conn: &mut PgConnection, peer: Uuid) -> Vec<powernode_store::events::FleetEvent> {
    events::list(
        conn,
        &EventFilter {
            peer_id: Some(peer),
            limit: 100,
            ..EventFilter::default()
        },
    )
    .unwrap()
}

fn id_of(v: &Value) -> Uuid {
    v["data"]["peer"]["id"]
        .as_str()
        .or_else(|| v["data"]["id"].as_str())
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn propose_shows_the_token_once_and_show_never_reveals_it() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let admin = admin_token(&mut conn);
    let app = spawn_app(settings(&db)).await;

    let (status, body) = app
        .post(
            PEERS,
            &admin,
            platform_peer("https://platform-b.example.com/"),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let data = &body["data"];
    let token = data["acceptance_token"].as_str().unwrap();
    assert!(token.starts_with("pnfa1_"));
    assert!(data["acceptance_token_expires_at"].is_string());
    let peer = &data["peer"];
    assert_eq!(peer["status"], "proposed");
    assert_eq!(
        peer["remote_instance_url"],
        "https://platform-b.example.com"
    );
    assert_eq!(peer["acceptance_pending"], true);
    assert_eq!(peer["allowed_transitions"], json!(["accepted", "revoked"]));
    let id = id_of(&body);

    let claims = token::parse(token).unwrap();
    assert_eq!(claims.peer_id, id);
    assert_eq!(claims.url, PUBLIC_URL);
    let identity = powernode_store::identity::get(&mut conn).unwrap().unwrap();
    assert_eq!(claims.ca_sha256, identity.ca_sha256);

    let (status, shown) = app.get(&format!("{PEERS}/{id}"), &admin).await;
    assert_eq!(status, 200);
    let text = shown.to_string();
    assert!(!text.contains(token));
    assert!(!text.contains("acceptance_token_digest"));
    assert!(!text.contains(&token::sha256_hex(token.as_bytes())));
    assert_eq!(shown["data"]["acceptance_pending"], true);
    assert_eq!(shown["data"]["heartbeat_stale"], false);
    assert!(shown["data"]["degraded_reason"].is_null());

    let evs = events_of(&mut conn, id);
    assert_eq!(evs.len(), 1);
    assert_eq!(
        (
            evs[0].kind.as_str(),
            evs[0].source.as_str(),
            evs[0].severity.as_str()
        ),
        ("federation.peer.proposed", "federation_peer", "low")
    );
    assert!(evs[0].payload["operator_id"].is_string());

    let (status, listed) = app.get(&format!("{PEERS}?status=proposed"), &admin).await;
    assert_eq!(status, 200);
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let (_, listed) = app.get(&format!("{PEERS}?status=active"), &admin).await;
    assert_eq!(listed["data"], json!([]));
    let (status, bad) = app.get(&format!("{PEERS}?status=zombie"), &admin).await;
    assert_eq!((status, bad["code"].as_str()), (400, Some("BAD_REQUEST")));
}

#[tokio::test]
async fn invalid_proposals_are_422_naming_the_field_and_write_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let admin = admin_token(&mut conn);
    let app = spawn_app(settings(&db)).await;
    let cases = [
        (
            json!({"remote_instance_url": "http://b.example.com", "spawn_role": "parent"}),
            "remote_instance_url",
            "remote_instance_url must be an absolute https URL",
        ),
        (
            json!({"remote_instance_url": format!("https://{}.example.com", "a".repeat(300)),
                   "spawn_role": "parent"}),
            "remote_instance_url",
            "remote_instance_url host labels must be at most 63 characters",
        ),
        (
            json!({"remote_instance_url": format!("https://b.example.com/{}", "p".repeat(60_000)),
                   "spawn_role": "parent"}),
            "remote_instance_url",
            "remote_instance_url must be at most 2048 characters",
        ),
        (
            json!({"remote_instance_url": "https://b.example.com"}),
            "spawn_role",
            "spawn_role is required for platform peers",
        ),
        (
            json!({"remote_instance_url": "https://b.example.com", "spawn_role": "boss"}),
            "spawn_role",
            "spawn_role must be one of: parent, child, symmetric",
        ),
        (
            json!({"remote_instance_url": "https://b.example.com", "spawn_role": "child",
                   "remote_prefix_advertisement": "2001:db8::/48"}),
            "remote_prefix_advertisement",
            "remote_prefix_advertisement must be a /48, /56, or /64 ULA prefix",
        ),
        (
            json!({"remote_instance_url": "https://b.example.com", "spawn_role": "child", "ttl_seconds": 5}),
            "ttl_seconds",
            "ttl_seconds must be between 60 and 2592000",
        ),
        (
            json!({"remote_instance_url": "https://b.example.com", "spawn_role": "child", "drill": true}),
            "drill",
            "drill mode is disabled",
        ),
        (
            json!({"remote_instance_url": "https://b.example.com", "peer_kind": "robot"}),
            "peer_kind",
            "peer_kind must be one of: platform, sdwan_only",
        ),
    ];
    for (body, field, message) in cases {
        let (status, answer) = app.post(PEERS, &admin, body.clone()).await;
        assert_eq!(
            answer,
            json!({"success": false, "error": message, "code": "VALIDATION_FAILED", "details": {"field": field}}),
            "{body}"
        );
        assert_eq!(status, 422);
    }
    let (status, answer) = app
        .post(
            PEERS,
            &admin,
            json!({"remote_instance_url": "https://b.example.com", "spawn_role": "child", "colour": "red"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`")
    );
    assert!(peers::list(&mut conn, None).unwrap().is_empty());
    let all = events::list(
        &mut conn,
        &EventFilter {
            limit: 10,
            ..EventFilter::default()
        },
    )
    .unwrap();
    assert!(all.is_empty());
}

#[tokio::test]
async fn sdwan_only_peers_need_no_spawn_role() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let admin = admin_token(&mut conn);
    let app = spawn_app(settings(&db)).await;
    let (status, body) = app
        .post(
            PEERS,
            &admin,
            json!({"remote_instance_url": "https://edge.example.com", "peer_kind": "sdwan_only",
                   "remote_prefix_advertisement": "fd12:3456:789a::/48", "ttl_seconds": 3600}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["peer"]["peer_kind"], "sdwan_only");
    assert_eq!(
        body["data"]["peer"]["remote_prefix_advertisement"],
        "fd12:3456:789a::/48"
    );
}

#[tokio::test]
async fn the_whole_lifecycle_writes_one_event_per_transition() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let admin = admin_token(&mut conn);
    let app = spawn_app(settings(&db)).await;
    let (_, body) = app
        .post(PEERS, &admin, platform_peer("https://b.example.com"))
        .await;
    let id = id_of(&body);
    let token = body["data"]["acceptance_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A's side of accept (the HTTP endpoint arrives with the trust issue).
    let accepted = peers::accept_with_token(&mut conn, id, Some(&token), false).unwrap();
    assert_eq!(accepted.status.as_str(), "accepted");
    assert!(accepted.acceptance_token_digest.is_none());
    assert!(accepted.acceptance_token_expires_at.is_none());
    assert!(accepted.signed_at.is_some());

    let (status, s) = app
        .post(
            &format!("{PEERS}/{id}/suspend"),
            &admin,
            json!({"reason": "remote platform offline"}),
        )
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["data"]["status"], "suspended");
    assert_eq!(
        s["data"]["metadata"]["suspension_reason"],
        "remote platform offline"
    );

    let (status, r) = app
        .call(
            Method::POST,
            &format!("{PEERS}/{id}/resume"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["data"]["status"], "accepted");
    assert!(r["data"]["metadata"].get("suspension_reason").is_none());

    let (status, v) = app
        .post(
            &format!("{PEERS}/{id}/revoke"),
            &admin,
            json!({"reason": "decommissioned"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["status"], "revoked");
    assert_eq!(v["data"]["allowed_transitions"], json!([]));

    let (status, d) = app
        .call(Method::DELETE, &format!("{PEERS}/{id}"), Some(&admin), None)
        .await;
    assert_eq!(status, 200, "{d}");
    let (status, _) = app.get(&format!("{PEERS}/{id}"), &admin).await;
    assert_eq!(status, 404);

    let mut evs = events_of(&mut conn, id);
    evs.reverse();
    let summary: Vec<_> = evs
        .iter()
        .map(|e| (e.kind.as_str(), e.source.as_str(), e.severity.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("federation.peer.proposed", "federation_peer", "low"),
            ("federation.peer.accepted", "accept_controller", "low"),
            ("federation.peer.suspended", "federation_peer", "medium"),
            ("federation.peer.accepted", "federation_peer", "low"),
            ("federation.peer.revoked", "federation_peer", "high"),
            ("federation.peer.deleted", "federation_peer", "low"),
        ]
    );
    let suspended = &evs[2].payload;
    assert_eq!(suspended["from"], "accepted");
    assert_eq!(suspended["to"], "suspended");
    assert_eq!(suspended["reason"], "remote platform offline");
    assert!(suspended["operator_id"].is_string());
    assert!(evs.iter().all(|e| !e.payload.to_string().contains(&token)));
}

#[tokio::test]
async fn every_illegal_operator_transition_is_409_and_changes_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let admin = admin_token(&mut conn);
    let app = spawn_app(settings(&db)).await;
    let statuses = [
        "proposed",
        "accepted",
        "enrolled",
        "active",
        "degraded",
        "suspended",
        "revoked",
    ];
    let actions = [
        ("suspend", "suspended"),
        ("resume", "accepted"),
        ("revoke", "revoked"),
    ];
    for from in statuses {
        for (action, to) in actions {
            let id = insert_peer(&mut conn, from, "platform", Some(10));
            let legal = from
                .parse::<powernode_domain::PeerStatus>()
                .unwrap()
                .can_transition_to(to.parse().unwrap());
            let (status, body) = app
                .post(
                    &format!("{PEERS}/{id}/{action}"),
                    &admin,
                    json!({"reason": "test"}),
                )
                .await;
            let after = peers::find(&mut conn, id).unwrap().unwrap();
            if legal {
                assert_eq!(status, 200, "{from} {action}: {body}");
                assert_eq!(after.status.as_str(), to);
                assert_eq!(events_of(&mut conn, id).len(), 1);
            } else {
                assert_eq!(status, 409, "{from} {action}: {body}");
                assert_eq!(
                    body,
                    json!({"success": false, "code": "ILLEGAL_TRANSITION",
                           "error": format!("Transition {from} → {to} is not permitted"),
                           "details": {"from": from, "to": to}})
                );
                assert_eq!(after.status.as_str(), from);
                assert_eq!(
                    after.updated_at,
                    peers::find(&mut conn, id).unwrap().unwrap().updated_at
                );
                assert!(events_of(&mut conn, id).is_empty(), "{from} {action}");
            }
        }
    }
}

#[tokio::test]
async fn only_proposed_or_revoked_peers_can_be_deleted() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let admin = admin_token(&mut conn);
    let app = spawn_app(settings(&db)).await;
    for status in ["accepted", "enrolled", "active", "degraded", "suspended"] {
        let id = insert_peer(&mut conn, status, "platform", Some(10));
        let (code, body) = app
            .call(Method::DELETE, &format!("{PEERS}/{id}"), Some(&admin), None)
            .await;
        assert_eq!(
            (code, body["code"].as_str()),
            (409, Some("CONFLICT")),
            "{status}"
        );
        assert!(peers::find(&mut conn, id).unwrap().is_some());
    }
    for status in ["proposed", "revoked"] {
        let id = insert_peer(&mut conn, status, "platform", None);
        let (code, _) = app
            .call(Method::DELETE, &format!("{PEERS}/{id}"), Some(&admin), None)
            .await;
        assert_eq!(code, 200, "{status}");
    }
    let (code, body) = app
        .call(
            Method::DELETE,
            &format!("{PEERS}/{}", Uuid::new_v4()),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((code, body["code"].as_str()), (404, Some("NOT_FOUND")));
}

#[tokio::test]
async fn regenerating_a_token_makes_the_old_one_fail() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let admin = admin_token(&mut conn);
    let app = spawn_app(settings(&db)).await;
    let (_, body) = app
        .post(PEERS, &admin, platform_peer("https://b.example.com"))
        .await;
    let id = id_of(&body);
    let old = body["data"]["acceptance_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, regen) = app
        .post(
            &format!("{PEERS}/{id}/acceptance_token"),
            &admin,
            json!({"ttl_seconds": 3600}),
        )
        .await;
    assert_eq!(status, 200, "{regen}");
    let new = regen["data"]["acceptance_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(old, new);
    let expires: time::OffsetDateTime = time::OffsetDateTime::parse(
        regen["data"]["acceptance_token_expires_at"]
            .as_str()
            .unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_an_hour = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert!((expires - in_an_hour).abs() < time::Duration::minutes(5));

    let err = peers::accept_with_token(&mut conn, id, Some(&old), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "acceptance_token does not match stored digest"
    );
    assert!(peers::accept_with_token(&mut conn, id, Some(&new), false).is_ok());

    let (status, body) = app
        .call(
            Method::POST,
            &format!("{PEERS}/{id}/acceptance_token"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("CONFLICT")),
        "{body}"
    );
    let evs = events_of(&mut conn, id);
    assert!(
        evs.iter()
            .any(|e| e.kind == "federation.peer.token_regenerated")
    );
}

#[tokio::test]
async fn the_token_check_answers_in_spec_order_and_consumes_nothing_on_failure() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let admin = admin_token(&mut conn);
    let app = spawn_app(settings(&db)).await;
    let (_, body) = app
        .post(PEERS, &admin, platform_peer("https://b.example.com"))
        .await;
    let id = id_of(&body);
    let good = body["data"]["acceptance_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let unknown =
        peers::accept_with_token(&mut conn, Uuid::new_v4(), Some(&good), false).unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "acceptance_token not recognized or expired"
    );
    let missing = peers::accept_with_token(&mut conn, id, None, false).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "acceptance_token required (peer has acceptance_token_digest set)"
    );
    let wrong = peers::accept_with_token(&mut conn, id, Some("pnfa1_typo"), false).unwrap_err();
    assert_eq!(
        wrong.to_string(),
        "acceptance_token does not match stored digest"
    );

    diesel::sql_query(
        "UPDATE peers SET acceptance_token_expires_at = '2026-01-02T03:04:05Z' WHERE id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .execute(&mut conn)
    .unwrap();
    let expired = peers::accept_with_token(&mut conn, id, Some(&good), false).unwrap_err();
    assert_eq!(
        expired.to_string(),
        "acceptance_token has expired (expired_at 2026-01-02T03:04:05Z)"
    );
    // Nothing consumed: still proposed, digest kept, only the proposal event.
    let peer = peers::find(&mut conn, id).unwrap().unwrap();
    assert_eq!(peer.status.as_str(), "proposed");
    assert!(peer.acceptance_token_digest.is_some());
    assert_eq!(events_of(&mut conn, id).len(), 1);
}

#[tokio::test]
async fn fifty_concurrent_accepts_of_one_token_have_exactly_one_winner() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let admin = admin_token(&mut conn);
    let app = spawn_app(settings(&db)).await;
    let (_, body) = app
        .post(PEERS, &admin, platform_peer("https://b.example.com"))
        .await;
    let id = id_of(&body);
    let token = body["data"]["acceptance_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let barrier = std::sync::Arc::new(std::sync::Barrier::new(50));
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let (url, token, barrier) = (db.url.clone(), token.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut c = PgConnection::establish(&url).unwrap();
                barrier.wait();
                peers::accept_with_token(&mut c, id, Some(&token), false).map_err(|e| e.to_string())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1);
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r, "acceptance_token does not match stored digest");
    }
    let accepted: Vec<_> = events_of(&mut conn, id)
        .into_iter()
        .filter(|e| e.kind == "federation.peer.accepted")
        .collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].source, "accept_controller");
}

#[tokio::test]
async fn drill_peers_exist_only_with_drill_mode_outside_production() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let admin = admin_token(&mut conn);
    let mut s = settings(&db);
    s.allow_drill_mode = true;
    let app = spawn_app(s).await;
    let mut body = platform_peer("https://sandbox.example.com");
    body["drill"] = json!(true);
    let (status, answer) = app.post(PEERS, &admin, body).await;
    assert_eq!(status, 201, "{answer}");
    assert!(answer["data"]["acceptance_token"].is_null());
    assert_eq!(answer["data"]["peer"]["acceptance_pending"], false);
    let id = id_of(&answer);
    // Drill mode switched off (e.g. in production): the drill peer fails closed.
    assert!(peers::accept_with_token(&mut conn, id, None, false).is_err());
    let peer = peers::accept_with_token(&mut conn, id, None, true).unwrap();
    assert_eq!(peer.status.as_str(), "accepted");
}

#[tokio::test]
async fn peer_show_answers_the_runbooks_degraded_questions() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let reader = create_operator(&mut conn, "reader", &[Permission::FederationRead]);
    let id = insert_peer(&mut conn, "active", "platform", Some(400));
    let app = spawn_app(settings(&db)).await;
    let (_, before) = app.get(&format!("{PEERS}/{id}"), &reader).await;
    assert_eq!(before["data"]["heartbeat_stale"], true);
    assert!(app.sweep().await.status().is_success());
    let (status, after) = app.get(&format!("{PEERS}/{id}"), &reader).await;
    assert_eq!(status, 200);
    assert_eq!(after["data"]["status"], "degraded");
    assert_eq!(
        after["data"]["degraded_reason"],
        "heartbeat stale (>5 minutes)"
    );
    assert_eq!(after["data"]["heartbeat_stale"], true);
    assert!(after["data"]["last_heartbeat_at"].is_string());
    assert_eq!(
        after["data"]["allowed_transitions"],
        json!(["active", "suspended", "revoked"])
    );
}
