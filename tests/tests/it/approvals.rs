//! Approval queue, intervention policies, emergency lowering and the SDWAN Manager tick
//! (SPEC §7) against a real API, PostgreSQL and (for the worker test) Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::Duration;

use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Text};
use powernode_domain::Permission::{FederationManage, FederationRead, InfraTasksControl};
use powernode_tests::federation::{self, PEERS};
use powernode_tests::{
    Process, TestApp, TestDb, WorkerProcess, admin_token, columns_containing, create_operator,
    eventually_async, insert_peer, redis_prefix, settings, spawn_app,
};
use serde_json::{Value, json};
use uuid::Uuid;

const APPROVALS: &str = "/api/v1/ai/autonomy/approvals";
const POLICIES: &str = "/api/v1/ai/autonomy/policies";
const REVOKE: &str = "system.federation_peer_revoke";

/// An API on a database with the seeded (gated) policies and three operators: a requester
/// (who also holds infra_tasks.control, to show that is not enough for their own requests),
/// an approver, and a reader.
struct Gated {
    db: TestDb,
    app: TestApp,
    requester: String,
    requester_id: String,
    approver: String,
    approver_id: String,
    reader: String,
}

async fn gated() -> Gated {
    let db = TestDb::gated();
    let mut conn = db.conn();
    let requester = create_operator(
        &mut conn,
        "requester",
        &[FederationRead, FederationManage, InfraTasksControl],
    );
    let approver = create_operator(&mut conn, "approver", &[FederationRead, InfraTasksControl]);
    let reader = create_operator(&mut conn, "reader", &[FederationRead]);
    let app = spawn_app(settings(&db)).await;
    let me = |t: String| {
        let app = &app;
        async move {
            let (_, me) = app.get("/api/v1/system/operators/me", &t).await;
            me["data"]["id"].as_str().unwrap().to_owned()
        }
    };
    let requester_id = me(requester.clone()).await;
    let approver_id = me(approver.clone()).await;
    Gated {
        db,
        app,
        requester,
        requester_id,
        approver,
        approver_id,
        reader,
    }
}

async fn tick(app: &TestApp) -> Value {
    app.sdwan_tick().await
}

fn count(db: &TestDb, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<N>(&mut db.conn())
        .unwrap()
        .n
}

fn events(db: &TestDb, kind: &str) -> i64 {
    // Kinds are catalogue names (letters, dots, underscores): safe to inline.
    assert!(
        kind.chars()
            .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')
    );
    count(
        db,
        &format!("SELECT count(*) AS n FROM fleet_events WHERE kind = '{kind}'"),
    )
}

fn peer_status(db: &TestDb, id: Uuid) -> String {
    #[derive(diesel::QueryableByName)]
    struct S {
        #[diesel(sql_type = Text)]
        status: String,
    }
    diesel::sql_query(format!("SELECT status FROM peers WHERE id = '{id}'"))
        .get_result::<S>(&mut db.conn())
        .unwrap()
        .status
}

impl Gated {
    /// Queues a revoke of `peer` and returns the approval request.
    async fn queue_revoke(&self, peer: Uuid) -> Value {
        let (status, body) = self
            .app
            .post(
                &format!("{PEERS}/{peer}/revoke"),
                &self.requester,
                json!({"reason": "compromised host"}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(
            body["data"]["message"],
            "Approval required: system.federation_peer_revoke"
        );
        body["data"]["approval_request"].clone()
    }

    async fn decide(&self, token: &str, id: &str, verb: &str, comments: &str) -> (u16, Value) {
        self.app
            .post(
                &format!("{APPROVALS}/{id}/{verb}"),
                token,
                json!({ "comments": comments }),
            )
            .await
    }

    async fn set_policy(&self, action: &str, policy: &str, timeout: u32) -> (u16, Value) {
        self.app
            .call(
                reqwest::Method::PUT,
                &format!("{POLICIES}/{action}"),
                Some(&self.approver),
                Some(json!({"policy": policy, "timeout_seconds": timeout, "timeout_action": "reject"})),
            )
            .await
    }
}

#[tokio::test]
async fn gated_revoke_is_approved_then_executed_exactly_once_by_concurrent_ticks() {
    let g = gated().await;
    let peer = insert_peer(&mut g.db.conn(), "active", "platform", Some(5));
    let request = g.queue_revoke(peer).await;
    let id = request["id"].as_str().unwrap();
    assert_eq!(request["status"], "pending");
    assert_eq!(request["execution_status"], "pending");
    assert_eq!(request["action"], REVOKE);
    assert_eq!(request["params"]["peer_id"], peer.to_string());
    assert_eq!(request["requested_by"], g.requester_id);
    let created = time::OffsetDateTime::parse(
        request["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expires = time::OffsetDateTime::parse(
        request["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!((expires - created).whole_seconds(), 4 * 3600);
    assert_eq!(peer_status(&g.db, peer), "active");
    assert_eq!(events(&g.db, "approval.requested"), 1);

    // Listed among pending requests.
    let (_, pending) = g.app.get(APPROVALS, &g.reader).await;
    assert_eq!(pending["data"].as_array().unwrap().len(), 1);
    let metrics = g
        .app
        .client
        .get(g.app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "powernode_approvals_pending 1"),
        "{metrics}"
    );

    // Self-approval and a missing permission are refused.
    let (status, own) = g.decide(&g.requester, id, "approve", "mine").await;
    assert_eq!(status, 403);
    assert_eq!(own["error"], "You cannot decide your own approval request");
    let (status, denied) = g.decide(&g.reader, id, "approve", "").await;
    assert_eq!(status, 403);
    assert_eq!(
        denied["details"]["required_permission"],
        "system.infra_tasks.control"
    );

    let (status, approved) = g
        .decide(&g.approver, id, "approve", "confirmed by on-call")
        .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["data"]["status"], "approved");
    assert_eq!(approved["data"]["decided_by"], g.approver_id);
    assert_eq!(approved["data"]["comments"], "confirmed by on-call");
    // Approval alone executes nothing: the SDWAN Manager does, on its tick.
    assert_eq!(peer_status(&g.db, peer), "active");

    let (first, second) = tokio::join!(tick(&g.app), tick(&g.app));
    assert_eq!(
        first["executed"].as_u64().unwrap() + second["executed"].as_u64().unwrap(),
        1,
        "{first} {second}"
    );
    assert_eq!(first["failed"], 0);
    assert_eq!(second["failed"], 0);
    assert_eq!(first["paused"], false);
    assert_eq!(peer_status(&g.db, peer), "revoked");
    assert_eq!(tick(&g.app).await["executed"], 0);
    assert_eq!(events(&g.db, "approval.executed"), 1);
    assert_eq!(events(&g.db, "federation.peer.revoked"), 1);
    assert_eq!(
        count(
            &g.db,
            "SELECT count(*) AS n FROM fleet_events WHERE kind = 'approval.executed' AND source = 'sdwan_manager'"
        ),
        1
    );

    let (_, shown) = g.app.get(&format!("{APPROVALS}/{id}"), &g.reader).await;
    assert_eq!(shown["data"]["execution_status"], "succeeded");
    assert!(shown["data"]["executed_at"].is_string());
    assert_eq!(shown["data"]["result"]["status"], "revoked");
    let (status, again) = g.decide(&g.approver, id, "reject", "").await;
    assert_eq!(status, 409);
    assert_eq!(again["error"], "Approval request already approved");
}

#[tokio::test]
async fn a_rejected_request_changes_nothing_and_a_cancelled_one_neither() {
    let g = gated().await;
    let peer = insert_peer(&mut g.db.conn(), "active", "platform", Some(5));
    let request = g.queue_revoke(peer).await;
    let id = request["id"].as_str().unwrap();
    let (status, rejected) = g
        .decide(&g.approver, id, "reject", "not during the freeze")
        .await;
    assert_eq!(status, 200);
    assert_eq!(rejected["data"]["status"], "rejected");
    let t = tick(&g.app).await;
    assert_eq!(
        (t["executed"].as_u64(), t["failed"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(peer_status(&g.db, peer), "active");
    let (_, shown) = g.app.get(&format!("{APPROVALS}/{id}"), &g.reader).await;
    assert_eq!(shown["data"]["execution_status"], "pending");
    let (status, late) = g.decide(&g.approver, id, "approve", "").await;
    assert_eq!(status, 409);
    assert_eq!(late["error"], "Approval request already rejected");
    assert_eq!(events(&g.db, "approval.rejected"), 1);

    // Cancel: only the requester, only while pending.
    let second = g.queue_revoke(peer).await;
    let sid = second["id"].as_str().unwrap();
    let (status, body) = g
        .app
        .post(&format!("{APPROVALS}/{sid}/cancel"), &g.approver, json!({}))
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        body["error"],
        "Only the requester can cancel an approval request"
    );
    let (status, body) = g
        .app
        .post(
            &format!("{APPROVALS}/{sid}/cancel"),
            &g.requester,
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["status"], "cancelled");
    assert_eq!(tick(&g.app).await["executed"], 0);
    assert_eq!(peer_status(&g.db, peer), "active");
    let (status, _) = g.decide(&g.approver, sid, "approve", "").await;
    assert_eq!(status, 409);
    let (_, all) = g
        .app
        .get(&format!("{APPROVALS}?status=all"), &g.reader)
        .await;
    assert_eq!(all["data"].as_array().unwrap().len(), 2);
    let (status, _) = g
        .app
        .get(&format!("{APPROVALS}?status=nope"), &g.reader)
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_paused_agent_holds_approved_requests_until_resumed() {
    let g = gated().await;
    let peer = insert_peer(&mut g.db.conn(), "active", "platform", Some(5));
    let agent = "/api/v1/ai/agents/SDWAN%20Manager";
    let (status, _) = g
        .app
        .post(&format!("{agent}/pause"), &g.reader, json!({}))
        .await;
    assert_eq!(status, 403);
    let (status, paused) = g
        .app
        .post(
            &format!("{agent}/pause"),
            &g.approver,
            json!({"reason": "reconciliations making things worse"}),
        )
        .await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["data"]["status"], "paused");
    let (status, again) = g
        .app
        .post(&format!("{agent}/pause"), &g.approver, json!({}))
        .await;
    assert_eq!(status, 409);
    assert_eq!(again["error"], "Agent SDWAN Manager is already paused");
    assert_eq!(events(&g.db, "agent.paused"), 1);

    // Requests stay decidable while paused.
    let request = g.queue_revoke(peer).await;
    let id = request["id"].as_str().unwrap();
    let (status, _) = g.decide(&g.approver, id, "approve", "").await;
    assert_eq!(status, 200);
    let t = tick(&g.app).await;
    assert_eq!(t["paused"], true);
    assert_eq!(t["executed"], 0);
    assert_eq!(peer_status(&g.db, peer), "active");

    let (status, _) = g
        .app
        .post(&format!("{agent}/resume"), &g.approver, json!({}))
        .await;
    assert_eq!(status, 200);
    let (_, agents) = g.app.get("/api/v1/ai/agents", &g.reader).await;
    assert_eq!(agents["data"][0]["name"], "SDWAN Manager");
    assert_eq!(agents["data"][0]["status"], "active");
    assert_eq!(agents["data"][0]["interval_secs"], 60);
    let t = tick(&g.app).await;
    assert_eq!(t["paused"], false);
    assert_eq!(t["executed"], 1);
    assert_eq!(peer_status(&g.db, peer), "revoked");
    assert_eq!(events(&g.db, "agent.resumed"), 1);
}

#[tokio::test]
async fn a_timed_out_request_is_expired_by_the_tick_and_cannot_be_approved() {
    let g = gated().await;
    // The seeded actions allow neither auto-approval nor approval on timeout.
    let (status, body) = g.set_policy(REVOKE, "auto_approve", 60).await;
    assert_eq!(status, 422);
    assert_eq!(
        body["error"],
        "policy auto_approve is not allowed for system.federation_peer_revoke"
    );
    let (status, body) = g
        .app
        .call(
            reqwest::Method::PUT,
            &format!("{POLICIES}/{REVOKE}"),
            Some(&g.approver),
            Some(json!({"policy": "require_approval", "timeout_seconds": 60, "timeout_action": "approve"})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        body["error"],
        "timeout_action approve is not allowed for system.federation_peer_revoke"
    );
    let (status, body) = g.set_policy(REVOKE, "require_approval", 1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["timeout_seconds"], 1);
    assert_eq!(events(&g.db, "policy.updated"), 1);

    let peer = insert_peer(&mut g.db.conn(), "active", "platform", Some(5));
    let request = g.queue_revoke(peer).await;
    let id = request["id"].as_str().unwrap().to_owned();
    let db = &g.db;
    eventually_async(Duration::from_secs(30), "request past expiry", || async {
        (count(
            db,
            &format!("SELECT count(*) AS n FROM approval_requests WHERE id = '{id}' AND expires_at < now()"),
        ) == 1)
            .then_some(())
    })
    .await;
    // Past expiry, before any tick: still refused as expired.
    let (status, body) = g.decide(&g.approver, &id, "approve", "").await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], "Approval request has expired");

    let t = tick(&g.app).await;
    assert_eq!(t["expired"], 1);
    assert_eq!(t["executed"], 0);
    let (_, shown) = g.app.get(&format!("{APPROVALS}/{id}"), &g.reader).await;
    assert_eq!(shown["data"]["status"], "expired");
    assert_eq!(shown["data"]["decided_by"], "sdwan_manager");
    assert_eq!(
        shown["data"]["comments"],
        "No decision within 1s; rejected by the SDWAN Manager (timeout action: reject)"
    );
    let (status, body) = g.decide(&g.approver, &id, "approve", "").await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], "Approval request has expired");
    assert_eq!(peer_status(&g.db, peer), "active");
    assert_eq!(
        count(
            &g.db,
            "SELECT count(*) AS n FROM fleet_events WHERE kind = 'approval.expired' AND source = 'sdwan_manager'"
        ),
        1
    );
    assert_eq!(tick(&g.app).await["expired"], 0);
}

#[tokio::test]
async fn fifty_concurrent_decisions_have_exactly_one_winner() {
    let g = gated().await;
    let second = create_operator(&mut g.db.conn(), "second approver", &[InfraTasksControl]);
    let peer = insert_peer(&mut g.db.conn(), "active", "platform", Some(5));
    let request = g.queue_revoke(peer).await;
    let id = request["id"].as_str().unwrap().to_owned();
    let calls = (0..50).map(|i| {
        let (token, verb) = if i % 2 == 0 {
            (g.approver.clone(), "approve")
        } else {
            (second.clone(), "reject")
        };
        let (app, id) = (&g.app, id.clone());
        async move {
            app.post(
                &format!("{APPROVALS}/{id}/{verb}"),
                &token,
                json!({"comments": "race"}),
            )
            .await
        }
    });
    let results = futures::future::join_all(calls).await;
    let winners: Vec<_> = results.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let outcome = winners[0].1["data"]["status"].as_str().unwrap();
    for (status, body) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 409);
        assert_eq!(body["error"], format!("Approval request already {outcome}"));
    }
    assert_eq!(
        events(&g.db, "approval.approved") + events(&g.db, "approval.rejected"),
        1
    );
}

#[tokio::test]
async fn emergency_lowering_lets_a_revoke_proceed_and_restores_itself() {
    let g = gated().await;
    let lower = |body: Value| {
        let app = &g.app;
        let token = g.approver.clone();
        async move {
            app.post(&format!("{POLICIES}/{REVOKE}/lower"), &token, body)
                .await
        }
    };
    let (status, body) =
        lower(json!({"to": "auto_approve", "for_seconds": 60, "reason": "x"})).await;
    assert_eq!(status, 422);
    assert_eq!(
        body["error"],
        "to auto_approve is not allowed for system.federation_peer_revoke"
    );
    let (status, _) = g
        .app
        .post(
            &format!("{POLICIES}/{REVOKE}/lower"),
            &g.reader,
            json!({"to": "notify_and_proceed", "for_seconds": 60, "reason": "x"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = lower(
        json!({"to": "notify_and_proceed", "for_seconds": 3, "reason": "active incident INC-42"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["policy"], "require_approval");
    assert_eq!(body["data"]["effective_policy"], "notify_and_proceed");
    assert_eq!(body["data"]["lowered"]["reason"], "active incident INC-42");
    assert_eq!(events(&g.db, "policy.lowered"), 1);
    let (status, body) =
        lower(json!({"to": "notify_and_proceed", "for_seconds": 3, "reason": "again"})).await;
    assert_eq!(status, 409, "{body}");

    // Within the window the revoke proceeds at once, with a notification.
    let first = insert_peer(&mut g.db.conn(), "active", "platform", Some(5));
    let (status, body) = g
        .app
        .post(
            &format!("{PEERS}/{first}/revoke"),
            &g.requester,
            json!({"reason": "compromised"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(peer_status(&g.db, first), "revoked");
    assert_eq!(events(&g.db, "approval.notified"), 1);

    // After the window the policy is back (shown at once, stored at the next gate evaluation).
    let (app, reader) = (&g.app, g.reader.clone());
    eventually_async(Duration::from_secs(30), "lowering window to end", || {
        let reader = reader.clone();
        async move {
            let (_, p) = app.get(&format!("{POLICIES}/{REVOKE}"), &reader).await;
            (p["data"]["effective_policy"] == "require_approval").then_some(())
        }
    })
    .await;
    let second = insert_peer(&mut g.db.conn(), "active", "platform", Some(5));
    g.queue_revoke(second).await;
    assert_eq!(peer_status(&g.db, second), "active");
    assert_eq!(events(&g.db, "policy.restored"), 1);
    tick(&g.app).await;
    assert_eq!(events(&g.db, "policy.restored"), 1);
    let (_, p) = g.app.get(&format!("{POLICIES}/{REVOKE}"), &g.reader).await;
    assert!(p["data"]["lowered"].is_null());

    // An operator may end a window early; restoring an unlowered policy is a conflict.
    let (status, _) =
        lower(json!({"to": "notify_and_proceed", "for_seconds": 1800, "reason": "drill"})).await;
    assert_eq!(status, 200);
    let (status, body) = g
        .app
        .post(
            &format!("{POLICIES}/{REVOKE}/restore"),
            &g.approver,
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["effective_policy"], "require_approval");
    assert_eq!(events(&g.db, "policy.restored"), 2);
    let (status, body) = g
        .app
        .post(
            &format!("{POLICIES}/{REVOKE}/restore"),
            &g.approver,
            json!({}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        body["error"],
        "Policy system.federation_peer_revoke is not lowered"
    );
}

#[tokio::test]
async fn a_blocked_action_is_refused_and_writes_nothing() {
    let g = gated().await;
    let (status, _) = g.set_policy(REVOKE, "blocked", 3600).await;
    assert_eq!(status, 200);
    let peer = insert_peer(&mut g.db.conn(), "active", "platform", Some(5));
    let (status, body) = g
        .app
        .post(
            &format!("{PEERS}/{peer}/revoke"),
            &g.requester,
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"], "Action blocked by policy");
    assert_eq!(body["code"], "VALIDATION_FAILED");
    assert_eq!(peer_status(&g.db, peer), "active");
    assert_eq!(
        count(&g.db, "SELECT count(*) AS n FROM approval_requests"),
        0
    );
    // A revoke that could never run is refused before it is queued.
    let (status, _) = g
        .app
        .post(
            &format!("{PEERS}/{}/revoke", Uuid::new_v4()),
            &g.requester,
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_approved_propose_hands_its_token_to_the_requester_exactly_once() {
    let g = gated().await;
    let (status, body) = g
        .app
        .post(
            PEERS,
            &g.requester,
            json!({"remote_instance_url": "https://b.example.com", "spawn_role": "child"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["data"]["message"],
        "Approval required: system.federation_peer_propose"
    );
    let id = body["data"]["approval_request"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        body["data"]["approval_request"]["params"]["remote_instance_url"],
        "https://b.example.com"
    );
    assert_eq!(count(&g.db, "SELECT count(*) AS n FROM peers"), 0);
    let (status, _) = g.decide(&g.approver, &id, "approve", "").await;
    assert_eq!(status, 200);
    let (status, body) = g
        .app
        .post(
            &format!("{APPROVALS}/{id}/claim_result"),
            &g.requester,
            json!({}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], "result not available: execution pending");
    assert_eq!(tick(&g.app).await["executed"], 1);

    let (_, shown) = g.app.get(&format!("{APPROVALS}/{id}"), &g.reader).await;
    assert_eq!(shown["data"]["result_claimable"], true);
    let peer_id = shown["data"]["result"]["peer_id"].as_str().unwrap();
    let (_, peer) = g.app.get(&format!("{PEERS}/{peer_id}"), &g.reader).await;
    assert_eq!(peer["data"]["status"], "proposed");
    assert_eq!(peer["data"]["acceptance_pending"], true);

    let (status, body) = g
        .app
        .post(
            &format!("{APPROVALS}/{id}/claim_result"),
            &g.approver,
            json!({}),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "Only the requester can claim the result");
    let (status, body) = g
        .app
        .post(
            &format!("{APPROVALS}/{id}/claim_result"),
            &g.requester,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["data"]["acceptance_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(token.starts_with("pnfa1_"), "{token}");
    let (status, body) = g
        .app
        .post(
            &format!("{APPROVALS}/{id}/claim_result"),
            &g.requester,
            json!({}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], "result already claimed");
    // The token is nowhere at rest: not in a column, not in an event.
    let secret = powernode_domain::token::parse(&token).unwrap().secret;
    assert!(columns_containing(&mut g.db.conn(), &token).is_empty());
    assert!(columns_containing(&mut g.db.conn(), &secret).is_empty());
    assert_eq!(
        count(
            &g.db,
            "SELECT count(*) AS n FROM approval_requests WHERE result_sealed IS NOT NULL"
        ),
        0
    );
}

#[tokio::test]
async fn a_propose_rerun_after_a_crash_past_its_action_creates_no_second_peer() {
    let g = gated().await;
    let (status, body) = g
        .app
        .post(
            PEERS,
            &g.requester,
            json!({"remote_instance_url": "https://b.example.com", "spawn_role": "child"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let request = &body["data"]["approval_request"];
    let id = request["id"].as_str().unwrap().to_owned();
    // The peer's id is fixed when the proposal is queued.
    let peer_id = request["params"]["peer_id"].as_str().unwrap().to_owned();
    g.decide(&g.approver, &id, "approve", "").await;
    assert_eq!(tick(&g.app).await["executed"], 1);
    // The replica that ran it died after the peer was created and before the outcome was
    // recorded: the attempt stays started, the request unexecuted (what a crash leaves).
    diesel::sql_query(format!(
        "UPDATE approval_requests SET execution_status = 'pending', executed_at = NULL,
                result = NULL, result_sealed = NULL WHERE id = '{id}'"
    ))
    .execute(&mut g.db.conn())
    .unwrap();
    let t = tick(&g.app).await;
    assert_eq!(
        (t["executed"].as_u64(), t["failed"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(count(&g.db, "SELECT count(*) AS n FROM peers"), 1);
    assert_eq!(
        count(
            &g.db,
            &format!("SELECT count(*) AS n FROM peers WHERE id = '{peer_id}'")
        ),
        1
    );
    let (_, shown) = g.app.get(&format!("{APPROVALS}/{id}"), &g.reader).await;
    assert_eq!(shown["data"]["execution_status"], "failed");
    assert_eq!(
        shown["data"]["execution_error"],
        format!(
            "409 CONFLICT: peer {peer_id} already exists: this proposal already ran before its execution was interrupted; its token was not recorded, mint a new one with `powernodectl peer token regenerate {peer_id}`"
        )
    );
}

#[tokio::test]
async fn an_interrupted_execution_is_rerun_once_then_given_up() {
    let g = gated().await;
    let peer = insert_peer(&mut g.db.conn(), "active", "platform", Some(5));
    let first = g.queue_revoke(peer).await;
    let id = first["id"].as_str().unwrap().to_owned();
    g.decide(&g.approver, &id, "approve", "").await;
    // A previous tick started this execution and crashed before recording it.
    diesel::sql_query(format!(
        "INSERT INTO approval_execution_attempts (request_id) VALUES ('{id}')"
    ))
    .execute(&mut g.db.conn())
    .unwrap();
    assert_eq!(tick(&g.app).await["executed"], 1);
    assert_eq!(peer_status(&g.db, peer), "revoked");
    assert_eq!(
        count(
            &g.db,
            "SELECT count(*) AS n FROM fleet_events WHERE kind = 'approval.executed' AND payload->>'attempt' = '2'"
        ),
        1
    );

    let other = insert_peer(&mut g.db.conn(), "active", "platform", Some(5));
    let second = g.queue_revoke(other).await;
    let sid = second["id"].as_str().unwrap().to_owned();
    g.decide(&g.approver, &sid, "approve", "").await;
    diesel::sql_query(format!(
        "INSERT INTO approval_execution_attempts (request_id) VALUES ('{sid}'), ('{sid}')"
    ))
    .execute(&mut g.db.conn())
    .unwrap();
    let t = tick(&g.app).await;
    assert_eq!(
        (t["executed"].as_u64(), t["failed"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(peer_status(&g.db, other), "active");
    let (_, shown) = g.app.get(&format!("{APPROVALS}/{sid}"), &g.reader).await;
    assert_eq!(shown["data"]["execution_status"], "failed");
    assert!(
        shown["data"]["execution_error"]
            .as_str()
            .unwrap()
            .starts_with("execution was interrupted twice"),
        "{shown}"
    );
    assert_eq!(
        count(
            &g.db,
            "SELECT count(*) AS n FROM fleet_events WHERE kind = 'approval.execution_failed' AND severity = 'high'"
        ),
        1
    );
}

#[tokio::test]
async fn a_gated_accept_keeps_its_token_sealed_until_the_approved_execution() {
    let a = federation::instance().await;
    let b = federation::instance().await;
    a.ready().await;
    b.ready().await;
    // B: the seeded policy for its operator accept (TestDb::new relaxed it for other tests).
    let b_approver = create_operator(&mut b.db.conn(), "b approver", &[InfraTasksControl]);
    let (status, _) = b
        .app
        .call(
            reqwest::Method::PUT,
            &format!("{POLICIES}/system.federation_peer_accept"),
            Some(&b_approver),
            Some(json!({"policy": "require_approval", "timeout_seconds": 14400, "timeout_action": "reject"})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, proposed) = a
        .app
        .post(
            PEERS,
            &a.admin,
            json!({"remote_instance_url": b.public_url, "spawn_role": "parent"}),
        )
        .await;
    let token = proposed["data"]["acceptance_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A malformed token is refused at once; nothing is queued.
    let (status, _) = b
        .app
        .post(
            &format!("{PEERS}/accept"),
            &b.admin,
            json!({"acceptance_token": "pnfa1_garbage"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        count(&b.db, "SELECT count(*) AS n FROM approval_requests"),
        0
    );

    let (status, body) = b
        .app
        .post(
            &format!("{PEERS}/accept"),
            &b.admin,
            json!({"acceptance_token": token}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["data"]["message"],
        "Approval required: system.federation_peer_accept"
    );
    let request = &body["data"]["approval_request"];
    assert_eq!(request["params"]["remote_instance_url"], a.public_url);
    let secret = powernode_domain::token::parse(&token).unwrap().secret;
    assert!(!body.to_string().contains(&secret));
    assert!(columns_containing(&mut b.db.conn(), &secret).is_empty());
    assert!(columns_containing(&mut b.db.conn(), &token).is_empty());
    assert_eq!(
        count(
            &b.db,
            "SELECT count(*) AS n FROM approval_requests WHERE params_sealed IS NOT NULL"
        ),
        1
    );
    let id = request["id"].as_str().unwrap();
    let (_, shown) = b.app.get(&format!("{APPROVALS}/{id}"), &b.admin).await;
    assert!(!shown.to_string().contains(&secret));
    assert_eq!(count(&b.db, "SELECT count(*) AS n FROM peers"), 0);

    let (status, _) = b
        .app
        .post(&format!("{APPROVALS}/{id}/approve"), &b_approver, json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(tick(&b.app).await["executed"], 1);
    let peer = b.only_peer().await;
    assert_eq!(peer["status"], "accepted");
    assert_eq!(
        count(
            &b.db,
            "SELECT count(*) AS n FROM approval_requests WHERE params_sealed IS NOT NULL"
        ),
        0
    );
    let (_, shown) = b.app.get(&format!("{APPROVALS}/{id}"), &b.admin).await;
    assert_eq!(shown["data"]["execution_status"], "succeeded");
    assert_eq!(shown["data"]["result"]["peer_id"], peer["id"]);
}

#[tokio::test]
async fn the_worker_executes_an_approved_request_on_its_own_tick() {
    let db = TestDb::gated();
    let admin = admin_token(&mut db.conn());
    let approver = create_operator(&mut db.conn(), "approver", &[InfraTasksControl]);
    let app = spawn_app(settings(&db)).await;
    let peer = insert_peer(&mut db.conn(), "active", "platform", Some(5));
    let (status, body) = app
        .post(
            &format!("{PEERS}/{peer}/revoke"),
            &admin,
            json!({"reason": "decommissioned"}),
        )
        .await;
    assert_eq!(status, 202);
    let id = body["data"]["approval_request"]["id"].as_str().unwrap();
    let (status, _) = app
        .post(&format!("{APPROVALS}/{id}/approve"), &approver, json!({}))
        .await;
    assert_eq!(status, 200);
    let worker: Process = WorkerProcess::spawn(
        "approvals",
        &app.address,
        &redis_prefix(),
        &[(
            "POWERNODE_SCHEDULES__SDWAN_MANAGER_TICK__INTERVAL_SECS",
            "1",
        )],
    );
    worker
        .wait_for(Duration::from_secs(90), |l| {
            l.contains("[SdwanManagerTickJob] complete: expired=0 executed=1")
        })
        .await;
    assert_eq!(peer_status(&db, peer), "revoked");
    assert_eq!(events(&db, "approval.executed"), 1);
}

/// A gated accept whose execution A refuses records A's answer as `<status> <CODE>: <error>`
/// (SPEC §7), and `powernodectl approvals show` prints it.
#[tokio::test]
async fn a_failed_gated_accept_records_the_refusal_as_status_code_and_message() {
    let a = federation::instance().await;
    let b = federation::instance().await;
    a.ready().await;
    b.ready().await;
    let b_approver = create_operator(&mut b.db.conn(), "b approver", &[InfraTasksControl]);
    let (status, _) = b
        .app
        .call(
            reqwest::Method::PUT,
            &format!("{POLICIES}/system.federation_peer_accept"),
            Some(&b_approver),
            Some(json!({"policy": "require_approval", "timeout_seconds": 14400, "timeout_action": "reject"})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, proposed) = a
        .app
        .post(
            PEERS,
            &a.admin,
            json!({"remote_instance_url": b.public_url, "spawn_role": "parent"}),
        )
        .await;
    let a_peer = proposed["data"]["peer"]["id"].as_str().unwrap().to_owned();
    let token = proposed["data"]["acceptance_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = b
        .app
        .post(
            &format!("{PEERS}/accept"),
            &b.admin,
            json!({"acceptance_token": token}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["data"]["approval_request"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Meanwhile A deletes the proposal: its accept will not recognise the token.
    let (status, _) = a
        .app
        .call(
            reqwest::Method::DELETE,
            &format!("{PEERS}/{a_peer}"),
            Some(&a.admin),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = b
        .app
        .post(&format!("{APPROVALS}/{id}/approve"), &b_approver, json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(tick(&b.app).await["failed"], 1);
    let (_, shown) = b.app.get(&format!("{APPROVALS}/{id}"), &b.admin).await;
    assert_eq!(shown["data"]["execution_status"], "failed");
    assert_eq!(
        shown["data"]["execution_error"],
        "401 UNAUTHORIZED: acceptance_token not recognized or expired"
    );
    let out = tokio::process::Command::new(powernode_tests::bin("powernodectl"))
        .args(["approvals", "show", &id])
        .env("POWERNODE_API_URL", &b.app.address)
        .env("POWERNODE_TOKEN", &b.admin)
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("401 UNAUTHORIZED: acceptance_token not recognized or expired"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// SPEC §3: B fetches A's CA and checks the token's fingerprint when the accept is requested,
/// also when the accept is then queued for approval: a token naming another CA is refused at
/// once (422), nothing is queued.
#[tokio::test]
async fn a_gated_accept_checks_the_ca_fingerprint_before_queuing() {
    let a = federation::instance().await;
    let b = federation::instance().await;
    a.ready().await;
    b.ready().await;
    let b_approver = create_operator(&mut b.db.conn(), "b approver", &[InfraTasksControl]);
    let (status, _) = b
        .app
        .call(
            reqwest::Method::PUT,
            &format!("{POLICIES}/system.federation_peer_accept"),
            Some(&b_approver),
            Some(json!({"policy": "require_approval", "timeout_seconds": 14400, "timeout_action": "reject"})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, proposed) = a
        .app
        .post(
            PEERS,
            &a.admin,
            json!({"remote_instance_url": b.public_url, "spawn_role": "parent"}),
        )
        .await;
    let real =
        powernode_domain::token::parse(proposed["data"]["acceptance_token"].as_str().unwrap())
            .unwrap();
    let wrong = "0".repeat(64);
    let forged = powernode_domain::token::mint(real.peer_id, &real.url, &wrong, &[7u8; 32]).token;
    let (status, answer) = b
        .app
        .post(
            &format!("{PEERS}/accept"),
            &b.admin,
            json!({"acceptance_token": forged}),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with(&format!("CA fingerprint mismatch: expected {wrong}, got ")),
        "{answer}"
    );
    assert_eq!(
        count(&b.db, "SELECT count(*) AS n FROM approval_requests"),
        0
    );
}
