//! SPEC §10: a database that stops answering gives 503 `database unavailable` (a row lock not
//! granted in time: 503 `busy`) with `Retry-After` within `POWERNODE_DATABASE_TIMEOUT_SECS`,
//! never a hang or a 500, and service resumes without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::Duration;

use diesel::prelude::*;
use powernode_tests::stall::StallProxy;
use powernode_tests::{
    TestApp, TestDb, WORKER_TOKEN, admin_token, eventually_async, insert_peer, settings_with,
    spawn_app,
};
use serde_json::{Value, json};

const PEERS: &str = "/api/v1/system/federation/peers";

async fn app_on(database_url: &str, timeout_secs: u64, pool_size: u32) -> TestApp {
    spawn_app(settings_with(
        database_url,
        &[
            ("POWERNODE_DATABASE_TIMEOUT_SECS", timeout_secs.to_string()),
            ("POWERNODE_DATABASE_POOL_SIZE", pool_size.to_string()),
        ],
    ))
    .await
}

/// Status, `Retry-After` and JSON body; a client timeout far beyond any bound under test turns
/// a hang into a failure without timing anything.
async fn send(request: reqwest::RequestBuilder) -> (u16, Option<String>, Value) {
    let response = request
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("an answer, not a hang");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        retry_after,
        response.json().await.expect("JSON body"),
    )
}

fn assert_unavailable(answer: &(u16, Option<String>, Value), reason: &str, message: &str) {
    let (status, retry_after, body) = answer;
    assert_eq!(*status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("2"), "{body}");
    assert_eq!(
        *body,
        json!({"success": false, "error": message, "code": "SERVICE_UNAVAILABLE",
               "details": {"reason": reason, "retry_after_seconds": 2}})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_database_answers_503_within_the_bound_and_service_resumes_without_restart() {
    let db = TestDb::new();
    let admin = admin_token(&mut db.conn());
    let proxy = StallProxy::start(&db.url).await;
    let app = app_on(&proxy.url, 2, 3).await;
    let get = |path: &str| app.client.get(app.url(path)).bearer_auth(&admin);
    let (status, _, body) = send(get(PEERS)).await;
    assert_eq!(status, 200, "{body}");

    proxy.freeze();
    // Four times as many calls as the pool has connections: every one is answered at the
    // bound; none waits for the stall to end (the blocked threads are bounded by the pool).
    let calls = (0..12).map(|i| {
        send(get(if i % 2 == 0 {
            PEERS
        } else {
            "/api/v1/ai/autonomy/approvals"
        }))
    });
    for answer in futures::future::join_all(calls).await {
        assert_unavailable(&answer, "database_unavailable", "database unavailable");
    }
    // The worker's sweep too: 503 (it retries next tick), not the sweep's own 500.
    let sweep = send(
        app.client
            .post(app.url("/api/v1/system/worker_api/federation/heartbeat_sweep"))
            .header("X-Worker-Token", WORKER_TOKEN),
    )
    .await;
    assert_unavailable(&sweep, "database_unavailable", "database unavailable");
    let worker = app.worker_api();
    let refused = [
        worker.heartbeat_sweep().await.unwrap_err(),
        worker.grant_maintenance().await.unwrap_err(),
        worker.peer_heartbeats().await.unwrap_err(),
    ];
    for e in refused {
        assert_eq!(e.status(), Some(503), "{e}");
    }

    proxy.thaw();
    eventually_async(Duration::from_secs(60), "service resumes", || async {
        let (status, _, _) = send(get(PEERS)).await;
        (status == 200).then_some(())
    })
    .await;
    let (status, _, body) = send(get("/api/v1/ai/autonomy/approvals")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_lock_not_granted_in_time_is_503_busy_and_nothing_changes() {
    let db = TestDb::new();
    let admin = admin_token(&mut db.conn());
    let id = insert_peer(&mut db.conn(), "active", "platform", Some(0));
    let app = app_on(&db.url, 2, 4).await;
    let suspend = || {
        app.client
            .post(app.url(&format!("{PEERS}/{id}/suspend")))
            .bearer_auth(&admin)
            .json(&json!({"reason": "maintenance"}))
    };

    let mut holder = db.conn();
    holder
        .transaction(|conn| -> QueryResult<()> {
            diesel::sql_query("SELECT 1 FROM peers WHERE id = $1 FOR UPDATE")
                .bind::<diesel::sql_types::Uuid, _>(id)
                .execute(conn)?;
            // Inside the lock: the suspend waits for it, and `lock_timeout` (half the bound)
            // refuses it. `block_in_place` keeps the runtime serving the API meanwhile.
            let answer = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(send(suspend()))
            });
            assert_unavailable(&answer, "busy", "busy");
            Ok(())
        })
        .unwrap();

    let (status, body) = app.get(&format!("{PEERS}/{id}"), &admin).await;
    assert_eq!(
        (status, body["data"]["status"].as_str()),
        (200, Some("active"))
    );
    // Once the lock is gone the same call goes through.
    let (status, _, body) = send(suspend()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "suspended");
}
