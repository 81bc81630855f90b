//! Fast establishment (SPEC §4): B's accept and A's handshake each put a
//! `FederationPeerContactJob` on the worker queue, so with workers running both sides are
//! `active` within seconds — not after up to two `federation_peer_heartbeat` ticks.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::{Duration, Instant};

use powernode_client::peers::ListQuery;
use powernode_domain::PeerStatus;
use powernode_tests::federation::{instance_with, propose_and_accept};
use powernode_tests::{WorkerProcess, eventually_async, redis_prefix};

/// The peer-heartbeat tick at the top of the hour only: whatever happens within the test is the
/// contact jobs' doing.
const NO_TICK: (&str, &str) = (
    "POWERNODE_SCHEDULES__FEDERATION_PEER_HEARTBEAT__INTERVAL_SECS",
    "3600",
);

async fn status_of(inst: &powernode_tests::federation::Instance) -> Option<PeerStatus> {
    inst.operator()
        .peers(&ListQuery::default())
        .await
        .ok()?
        .first()
        .map(|p| p.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_workers_both_sides_are_active_within_seconds_of_the_accept() {
    let (pa, pb) = (redis_prefix(), redis_prefix());
    let a = instance_with(&[("POWERNODE_REDIS_PREFIX", pa.clone())]).await;
    let b = instance_with(&[("POWERNODE_REDIS_PREFIX", pb.clone())]).await;
    a.ready().await;
    b.ready().await;
    let wa = WorkerProcess::spawn("a", &a.app.address, &pa, &[NO_TICK]);
    let wb = WorkerProcess::spawn("b", &b.app.address, &pb, &[NO_TICK]);
    for w in [&wa, &wb] {
        w.wait_for(Duration::from_secs(60), |l| {
            l.contains("contact jobs consumed")
        })
        .await;
    }

    let accepted_at = Instant::now();
    propose_and_accept(&a, &b, "parent").await;
    // A generous deadline (a loaded machine); the time itself is a bench figure, not asserted.
    eventually_async(Duration::from_secs(60), "both sides active", || async {
        (status_of(&a).await == Some(PeerStatus::Active)
            && status_of(&b).await == Some(PeerStatus::Active))
        .then_some(())
    })
    .await;
    println!(
        "accept → both active: {:.2} s",
        accepted_at.elapsed().as_secs_f64()
    );

    let b_id = b.only_peer().await["id"].as_str().unwrap().to_owned();
    let a_id = a.only_peer().await["id"].as_str().unwrap().to_owned();
    let line = wb
        .wait_for(Duration::from_secs(30), |l| {
            l.contains(&format!(
                "[FederationPeerContactJob] peer {b_id}: handshake completed, heartbeat sent"
            ))
        })
        .await;
    assert!(
        line.contains("status active") || line.contains("status enrolled"),
        "{line}"
    );
    wa.wait_for(Duration::from_secs(30), |l| {
        l.contains(&format!(
            "[FederationPeerContactJob] peer {a_id}: heartbeat sent"
        ))
    })
    .await;
    // Neither worker's tick ran: the contact jobs did it all.
    for w in [&wa, &wb] {
        assert!(
            !w.output().contains("Starting peer heartbeats"),
            "{}",
            w.output()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_worker_both_sides_stay_accepted_and_redis_down_does_not_stop_an_accept() {
    // B's Redis is a closed port: the accept commits, the job is only logged as not enqueued.
    let dead_redis = format!("redis://127.0.0.1:{}/", powernode_tests::free_port());
    let a = instance_with(&[]).await;
    let b = instance_with(&[("POWERNODE_REDIS_URL", dead_redis)]).await;
    a.ready().await;
    b.ready().await;
    let started = Instant::now();
    propose_and_accept(&a, &b, "parent").await;
    let took = started.elapsed();
    assert_eq!(status_of(&b).await, Some(PeerStatus::Accepted));
    assert_eq!(status_of(&a).await, Some(PeerStatus::Accepted));
    // No worker runs: both stay accepted (the runbook's symptom) until a tick catches up.
    println!("accept with Redis down took {:.2} s", took.as_secs_f64());
    // The tick catches up: handshake and heartbeats as before.
    b.worker("peer_heartbeats").await;
    a.worker("peer_heartbeats").await;
    b.worker("peer_heartbeats").await;
    assert_eq!(status_of(&a).await, Some(PeerStatus::Active));
    assert_eq!(status_of(&b).await, Some(PeerStatus::Active));
}

#[tokio::test]
async fn the_contact_endpoint_refuses_what_it_cannot_serve() {
    let a = instance_with(&[]).await;
    let api = a.app.worker_api();
    let missing = uuid::Uuid::new_v4();
    let e = api.contact_peer(missing, "accept").await.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    let e = api.contact_peer(missing, "whim").await.unwrap_err();
    assert_eq!(e.status(), Some(422), "{e}");
    // Without the worker token: 401.
    let (status, body) = a
        .app
        .post(
            &format!("/api/v1/system/worker_api/federation/peers/{missing}/contact?reason=accept"),
            "",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 401, "{body}");
}
