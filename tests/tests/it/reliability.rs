//! Issue 17's in-process guarantees: each worker tick applied once per `<schedule>:<tick>`
//! whatever re-runs it, and the federation listener's batchers bounded and supervised.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::Duration;

use powernode_tests::federation::{
    instance, instance_with, outbound_identity, pinned_client, propose_and_accept,
};
use powernode_tests::{TestDb, eventually_async, insert_peer, settings, spawn_app};
use serde_json::{Value, json};

const FEDERATION_API: &str = "/api/v1/system/federation_api";
const SWEEP: &str = "/api/v1/system/worker_api/federation/heartbeat_sweep";

async fn sweep_with_tick(app: &powernode_tests::TestApp, tick: &str) -> (u16, Value) {
    let resp = app
        .client
        .post(app.url(SWEEP))
        .header("X-Worker-Token", powernode_tests::WORKER_TOKEN)
        .header("X-Powernode-Tick", tick)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn a_tick_is_applied_once_and_a_repeat_replays_its_answer() {
    let db = TestDb::new();
    let app = spawn_app(settings(&db)).await;
    let mut conn = db.conn();
    let stale = insert_peer(&mut conn, "active", "platform", Some(600));

    let (status, first) = sweep_with_tick(&app, "federation_heartbeat:1790000000").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["data"]["degraded_ids"], json!([stale.to_string()]));
    // apalis re-runs the orphaned task: same answer, nothing applied twice.
    let (status, again) = sweep_with_tick(&app, "federation_heartbeat:1790000000").await;
    assert_eq!((status, &again), (200, &first));
    let events: i64 = diesel::RunQueryDsl::get_result::<Count>(
        diesel::sql_query(
            "SELECT count(*) AS n FROM fleet_events WHERE kind = 'federation.peer.heartbeat_stale'",
        ),
        &mut conn,
    )
    .unwrap()
    .n;
    assert_eq!(events, 1);
    let replays: i32 = diesel::RunQueryDsl::get_result::<Replays>(
        diesel::sql_query(
            "SELECT replays FROM worker_ticks WHERE key = 'federation_heartbeat:1790000000'",
        ),
        &mut conn,
    )
    .unwrap()
    .replays;
    assert_eq!(replays, 1);

    // The next tick is a new key and runs (nothing left to degrade).
    let (status, next) = sweep_with_tick(&app, "federation_heartbeat:1790000060").await;
    assert_eq!(status, 200);
    assert_eq!(next["data"]["swept"], 0);
    // Without the header (the runbook's curl) the sweep simply runs.
    let resp = app.sweep().await;
    assert_eq!(resp.status(), 200);

    // A malformed key is refused before anything runs.
    for bad in [
        "",
        "federation_heartbeat",
        "Sweep:1",
        "federation_heartbeat:soon",
        "a b:1",
    ] {
        let (status, body) = sweep_with_tick(&app, bad).await;
        assert_eq!(status, 422, "{bad:?}: {body}");
        assert_eq!(body["details"]["field"], "X-Powernode-Tick", "{body}");
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Replays {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    replays: i32,
}

#[tokio::test]
async fn a_tick_claimed_by_a_live_call_is_409_and_one_whose_replica_died_is_taken_over() {
    let db = TestDb::new();
    let app = spawn_app(settings(&db)).await;
    let mut conn = db.conn();
    let stale = insert_peer(&mut conn, "active", "platform", Some(600));
    // Another replica is applying this tick right now (its lease runs).
    diesel::RunQueryDsl::execute(
        diesel::sql_query(
            "INSERT INTO worker_ticks (key, state, lease_until)
             VALUES ('federation_heartbeat:1790000120', 'running', now() + interval '5 minutes'),
                    ('federation_heartbeat:1790000180', 'running', now() - interval '1 second')",
        ),
        &mut conn,
    )
    .unwrap();
    let (status, body) = sweep_with_tick(&app, "federation_heartbeat:1790000120").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["error"],
        "tick federation_heartbeat:1790000120 is being applied by another call"
    );
    let (status, _) = sweep_with_tick(&app, "federation_heartbeat:1790000120").await;
    assert_eq!(status, 409);
    // The replica holding the other claim died (its lease lapsed): this call applies the tick.
    let (status, body) = sweep_with_tick(&app, "federation_heartbeat:1790000180").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["degraded_ids"], json!([stale.to_string()]));
}

#[tokio::test]
async fn concurrent_calls_for_one_tick_apply_it_once() {
    let db = TestDb::new();
    let app = spawn_app(settings(&db)).await;
    let mut conn = db.conn();
    for _ in 0..20 {
        insert_peer(&mut conn, "active", "platform", Some(600));
    }
    let calls = (0..8).map(|_| sweep_with_tick(&app, "federation_heartbeat:1790000240"));
    let answers = futures::future::join_all(calls).await;
    let mut degraded = 0;
    for (status, body) in &answers {
        match status {
            // The one that ran, or a replay of its answer.
            200 => degraded = degraded.max(body["data"]["swept"].as_u64().unwrap()),
            409 => {}
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(degraded, 20);
    let applied = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b["data"]["ran_at"].clone())
        .collect::<std::collections::HashSet<_>>();
    assert_eq!(
        applied.len(),
        1,
        "every 200 is the one run's answer: {answers:?}"
    );
    let events: i64 = diesel::RunQueryDsl::get_result::<Count>(
        diesel::sql_query(
            "SELECT count(*) AS n FROM fleet_events WHERE kind = 'federation.peer.heartbeat_stale'",
        ),
        &mut conn,
    )
    .unwrap()
    .n;
    assert_eq!(events, 20);
}

/// B's row for A is active on A's side, and B's heartbeats to A ride A's batcher.
async fn active_pair(
    a_extra: &[(&'static str, String)],
) -> (
    reqwest::Client,
    String,
    powernode_tests::federation::Instance,
    powernode_tests::federation::Instance,
) {
    let a = instance_with(a_extra).await;
    let b = instance().await;
    a.ready().await;
    b.ready().await;
    propose_and_accept(&a, &b, "parent").await;
    b.worker("peer_heartbeats").await;
    let client = pinned_client(&a, Some(outbound_identity(&b)));
    let url = format!("{}{FEDERATION_API}/heartbeat", a.public_url);
    // Enrolled → active takes the full path; from now on heartbeats are batched.
    let resp = client.post(&url).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    (client, url, a, b)
}

async fn heartbeat(client: &reqwest::Client, url: &str) -> (u16, Option<String>, Value) {
    let resp = client.post(url).json(&json!({})).send().await.unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_heartbeat_batcher_is_restarted_and_readyz_reports_it_meanwhile() {
    let (client, url, a, _b) = active_pair(&[]).await;
    assert_eq!(heartbeat(&client, &url).await.0, 200);

    fail::cfg("heartbeat-batcher", "panic").unwrap();
    // Each heartbeat kills the thread again; restarts back off (0.5 s, 1 s, 2 s, …), so
    // readiness is soon seen down. Every answer meanwhile is 503, never 500.
    eventually_async(
        Duration::from_secs(60),
        "readyz reports the batcher down",
        || async {
            let (status, _, body) = heartbeat(&client, &url).await;
            assert_eq!(status, 503, "{body}");
            assert_eq!(body["code"], "SERVICE_UNAVAILABLE", "{body}");
            let (status, ready) = a.app.get("/readyz", "").await;
            (status == 503 && ready["details"]["heartbeat_batcher"] == "down").then_some(ready)
        },
    )
    .await;

    fail::remove("heartbeat-batcher");
    eventually_async(Duration::from_secs(90), "batcher restarted", || async {
        let (status, ready) = a.app.get("/readyz", "").await;
        let (hb, _, _) = heartbeat(&client, &url).await;
        (status == 200 && ready["data"]["checks"]["heartbeat_batcher"] == "ok" && hb == 200)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batcher_queue_answers_busy_with_retry_after_at_once() {
    let (client, url, _a, _b) =
        active_pair(&[("POWERNODE_FEDERATION_BATCH_QUEUE", "2".to_owned())]).await;
    // The batch statement does not come back (as when the database stalls).
    fail::cfg("heartbeat-batcher", "pause").unwrap();
    let calls = (0..12).map(|_| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move { heartbeat(&client, &url).await })
    });
    let answers: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    fail::remove("heartbeat-batcher");
    let busy: Vec<_> = answers
        .iter()
        .filter(|(status, _, body)| *status == 503 && body["details"]["reason"] == "busy")
        .collect();
    assert!(!busy.is_empty(), "{answers:?}");
    for (_, retry, body) in &busy {
        assert_eq!(body["error"], "busy");
        let secs: u64 = retry.as_deref().unwrap().parse().unwrap();
        assert!(secs >= 1, "{secs}");
    }
    // The rest waited their bound and were told the database is unavailable; nothing else.
    for (status, _, body) in &answers {
        assert_eq!(*status, 503, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_peers_cost_a_tick_only_their_connect_timeout_then_back_off_and_connections_are_reused()
 {
    let sim = powernode_tests::peer_sim::PeerSim::start(45, 5).await;
    let a = instance_with(&[("POWERNODE_PEER_CONNECT_TIMEOUT_SECS", "2".to_owned())]).await;
    let ids = sim.seed(&mut a.db.conn(), &a.master_key);
    let api = a.app.worker_api();

    // Pass 1: every live peer heartbeated once; each silent one fails at its connect bound.
    let run = api.peer_heartbeats().await.unwrap();
    assert_eq!(run.sent, 45, "{run:?}");
    assert_eq!(run.failed.len(), 5, "{run:?}");
    assert_eq!(run.backing_off, 0);
    let dead: std::collections::HashSet<_> = ids[45..].iter().collect();
    for f in &run.failed {
        assert!(dead.contains(&f.peer_id), "{f:?}");
    }
    // Pass 2: one failure may be a blip, so the silent peers are tried again.
    let run = api.peer_heartbeats().await.unwrap();
    assert_eq!((run.sent, run.failed.len(), run.backing_off), (45, 5, 0));
    // Pass 3: twice in a row: they are skipped (30 s, doubling up to 5 minutes).
    let run = api.peer_heartbeats().await.unwrap();
    assert_eq!((run.sent, run.failed.len(), run.backing_off), (45, 0, 5));
    for i in 0..45 {
        assert_eq!(sim.heartbeats(i), 3, "live peer {i}");
        // One TLS connection served all three passes (kept alive between ticks).
        assert_eq!(sim.connections(i), 1, "live peer {i}");
    }
    let (_, shown) = a
        .app
        .get(
            &format!("/api/v1/system/federation/peers/{}", ids[47]),
            &a.admin,
        )
        .await;
    let error = shown["data"]["last_outbound_error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("timed out") || error.contains("timeout"),
        "{shown}"
    );
}

/// The PeerClient's own transport (not reqwest's): the pinned CA is its only trust anchor (no
/// system bundle), the host name is checked against the certificate, https only; failures read
/// as transport failures ("error sending request for url (…)") for the doctor and the runbook.
#[tokio::test]
async fn the_peer_transport_trusts_only_the_pinned_ca_and_checks_the_host_name() {
    use powernode_api::peer_clients::{PeerTls, PeerTransport};
    use powernode_client::FederationClient;
    use powernode_client::federation::HeartbeatRequest;
    let sim = powernode_tests::peer_sim::PeerSim::start(1, 0).await;
    let (ca, other) = (
        sim.ca_pem(),
        powernode_tests::peer_sim::PeerSim::unrelated_ca_pem(),
    );
    let call = |pem: &str, url: String| {
        let transport = PeerTransport::new(&PeerTls {
            ca_pem: pem,
            identity: None,
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            idle: Duration::from_secs(90),
        })
        .unwrap();
        async move {
            FederationClient::with_transport(std::sync::Arc::new(transport), &url)
                .heartbeat(&HeartbeatRequest::default())
                .await
        }
    };
    let url = sim.urls[0].clone();
    let ok = call(&ca, url.clone()).await.unwrap();
    assert_eq!(ok.status, "active");
    assert_eq!(sim.heartbeats(0), 1);

    let refused = |e: powernode_client::Error| match e {
        powernode_client::Error::NoAnswer { cause, .. } => cause,
        other => panic!("expected a transport failure, got {other:?}"),
    };
    let wrong_ca = refused(call(&other, url.clone()).await.unwrap_err());
    assert!(
        wrong_ca.starts_with("error sending request for url (")
            && wrong_ca.contains("certificate verify failed")
            && wrong_ca.contains("unable to get local issuer certificate"),
        "{wrong_ca}"
    );
    // The certificate names 127.0.0.1 only.
    let by_name = refused(
        call(&ca, url.replace("127.0.0.1", "localhost"))
            .await
            .unwrap_err(),
    );
    assert!(by_name.contains("hostname mismatch"), "{by_name}");
    let plain = refused(
        call(&ca, url.replace("https://", "http://"))
            .await
            .unwrap_err(),
    );
    assert!(plain.contains("https only"), "{plain}");
    assert!(
        PeerTransport::new(&PeerTls {
            ca_pem: "not a certificate",
            identity: None,
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            idle: Duration::from_secs(90),
        })
        .is_err()
    );
    assert_eq!(sim.heartbeats(0), 1, "no refused call reached the handler");
}

/// Keep-alive between two real instances: A's PeerClient keeps its connection to B's
/// federation listener across ticks — B's listener keeps an idle connection longer than a tick
/// (actix's own default, 5 s, closed it before the next one) and A's pool keeps it 90 s. B is
/// reached through a counting TCP proxy.
#[tokio::test]
async fn a_peer_connection_outlives_the_idle_time_between_ticks() {
    use powernode_tests::federation::{instance, instance_with, propose_and_accept};
    let a = instance().await;
    let port = powernode_tests::free_port();
    let proxy =
        powernode_tests::rr_proxy::RoundRobin::start(0, vec![format!("127.0.0.1:{port}")]).await;
    let public = format!("https://127.0.0.1:{}", proxy.port);
    let mut b = instance_with(&[
        ("POWERNODE_FEDERATION_LISTEN", format!("127.0.0.1:{port}")),
        ("POWERNODE_FEDERATION_PUBLIC_URL", public.clone()),
    ])
    .await;
    b.public_url = public;
    a.ready().await;
    b.ready().await;
    propose_and_accept(&a, &b, "parent").await;
    b.worker("peer_heartbeats").await; // B's handshake: A enrolled
    let before = proxy.served()[0];
    for pass in 0..2 {
        let run = a.worker("peer_heartbeats").await;
        assert_eq!(run["sent"], 1, "{run}");
        if pass == 0 {
            // Idle past actix's default keep-alive (5 s): what a real tick interval would do.
            tokio::time::sleep(Duration::from_secs(6)).await;
        }
    }
    assert_eq!(
        proxy.served()[0] - before,
        1,
        "both heartbeats over one connection"
    );
}
