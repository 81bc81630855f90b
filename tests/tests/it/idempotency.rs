//! SPEC §10 `Idempotency-Key` on mutating operator calls: replay, a different request, a call
//! still running, scope per operator, sealed storage, expiry.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::Duration;

use diesel::prelude::*;
use powernode_domain::Permission;
use powernode_tests::{
    TestApp, TestDb, admin_token, columns_containing, create_operator, insert_peer, settings_with,
    spawn_app,
};
use serde_json::{Value, json};

const PEERS: &str = "/api/v1/system/federation/peers";

async fn post(app: &TestApp, token: &str, key: &str, path: &str, body: Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&body)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn peer_count(db: &TestDb) -> i64 {
    use powernode_store::schema::peers::dsl::peers;
    peers.count().get_result(&mut db.conn()).unwrap()
}

#[tokio::test]
async fn the_same_key_replays_the_first_answer_to_its_operator_only() {
    let db = TestDb::new();
    let admin = admin_token(&mut db.conn());
    let other = create_operator(
        &mut db.conn(),
        "other",
        &[Permission::FederationRead, Permission::FederationManage],
    );
    let app = spawn_app(settings_with(&db.url, &[])).await;
    let propose = json!({"remote_instance_url": "https://b.example.com", "spawn_role": "child"});

    let (status, first) = post(&app, &admin, "k-1", PEERS, propose.clone()).await;
    assert_eq!(status, 201, "{first}");
    let token = first["data"]["acceptance_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A repeat answers exactly the same, the once-only token included; nothing runs again.
    let (status, again) = post(&app, &admin, "k-1", PEERS, propose.clone()).await;
    assert_eq!((status, &again), (201, &first));
    assert_eq!(peer_count(&db), 1);
    // The stored answer is sealed: the token is in no column in plain text.
    assert_eq!(
        columns_containing(&mut db.conn(), &token),
        Vec::<String>::new()
    );

    // The same key with another request is refused, and nothing runs.
    let other_body = json!({"remote_instance_url": "https://c.example.com", "spawn_role": "child"});
    let (status, refused) = post(&app, &admin, "k-1", PEERS, other_body.clone()).await;
    assert_eq!(
        (status, refused["error"].as_str(), refused["code"].as_str()),
        (
            422,
            Some("Idempotency-Key reused with a different request"),
            Some("VALIDATION_FAILED")
        ),
        "{refused}"
    );
    assert_eq!(peer_count(&db), 1);

    // Keys are per operator: another operator's same key is a new call, never the first
    // operator's answer.
    let (status, theirs) = post(&app, &other, "k-1", PEERS, propose.clone()).await;
    assert_eq!(status, 201, "{theirs}");
    assert_ne!(theirs["data"]["peer"]["id"], first["data"]["peer"]["id"]);
    assert_ne!(
        theirs["data"]["acceptance_token"],
        first["data"]["acceptance_token"]
    );
    assert_eq!(peer_count(&db), 2);

    // A refusal (4xx) is the first answer too, and is replayed.
    let id = first["data"]["peer"]["id"].as_str().unwrap().to_owned();
    let suspend = format!("{PEERS}/{id}/suspend");
    let (status, refusal) = post(&app, &admin, "k-2", &suspend, json!({"reason": ""})).await;
    assert_eq!(status, 422, "{refusal}");
    let (status, replay) = post(&app, &admin, "k-2", &suspend, json!({"reason": ""})).await;
    assert_eq!((status, &replay), (422, &refusal));

    // A malformed key is refused before anything runs.
    let (status, bad) = post(&app, &admin, "has space", PEERS, other_body.clone()).await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (
            422,
            Some("Idempotency-Key must be 1-255 visible ASCII characters")
        )
    );

    // After 24 h a key is forgotten: the same key runs a new request.
    diesel::sql_query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
        .execute(&mut db.conn())
        .unwrap();
    let (status, later) = post(&app, &admin, "k-1", PEERS, other_body).await;
    assert_eq!(status, 201, "{later}");
    assert_eq!(peer_count(&db), 3, "the malformed key ran nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeat_while_the_first_call_runs_is_409_and_then_replays() {
    let db = TestDb::new();
    let admin = admin_token(&mut db.conn());
    let id = insert_peer(&mut db.conn(), "active", "platform", Some(0));
    // A long database bound, so the held row lock below is not refused as busy first.
    let app = spawn_app(settings_with(
        &db.url,
        &[("POWERNODE_DATABASE_TIMEOUT_SECS", "60".to_owned())],
    ))
    .await;
    let suspend = format!("{PEERS}/{id}/suspend");
    let body = json!({"reason": "maintenance"});

    let mut holder = db.conn();
    let first = holder
        .transaction(|conn| -> QueryResult<_> {
            diesel::sql_query("SELECT 1 FROM peers WHERE id = $1 FOR UPDATE")
                .bind::<diesel::sql_types::Uuid, _>(id)
                .execute(conn)?;
            let runtime = tokio::runtime::Handle::current();
            // The first call waits on the lock this transaction holds.
            let first = runtime.spawn({
                let (url, admin, body) = (app.url(&suspend), admin.clone(), body.clone());
                let client = app.client.clone();
                async move {
                    let response = client
                        .post(url)
                        .bearer_auth(&admin)
                        .header("Idempotency-Key", "k-running")
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    (
                        response.status().as_u16(),
                        response.json::<Value>().await.unwrap(),
                    )
                }
            });
            tokio::task::block_in_place(|| {
                runtime.block_on(powernode_tests::wait_for_lock_waiter(
                    &db,
                    Duration::from_secs(90),
                ));
                // Meanwhile the same key answers 409 and runs nothing.
                let (status, busy) =
                    runtime.block_on(post(&app, &admin, "k-running", &suspend, body.clone()));
                assert_eq!(
                    (status, busy["error"].as_str()),
                    (
                        409,
                        Some("request with this Idempotency-Key is in progress")
                    ),
                    "{busy}"
                );
            });
            Ok(first)
        })
        .unwrap();
    let (status, first) = first.await.unwrap();
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["data"]["status"], "suspended");
    // Once it finished, the key replays its answer.
    let (status, replay) = post(&app, &admin, "k-running", &suspend, body).await;
    assert_eq!((status, &replay), (200, &first));
}
