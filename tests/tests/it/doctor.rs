//! The doctor (SPEC §9.3): each check's `warn`/`fail` from a real situation — a stopped worker,
//! a paused manager, a peer that never handshakes, a dead listener, a revoked certificate, a
//! half-deleted certificate row, an approval about to expire — and the healthy pair all `ok`.
//! Also the forced re-mint and `powernodectl doctor` / `governance` as printed.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::process::Output;
use std::time::Duration;

use powernode_client::governance::{CheckStatus, CheckView, DiagnosisView};
use powernode_tests::federation::{Instance, PEERS, federated_pair, instance, propose_and_accept};
use powernode_tests::{
    Process, TestDb, WORKER_TOKEN, WorkerProcess, admin_token, bin, create_operator,
    eventually_async, free_port, insert_peer, master_key_file, redis_prefix, redis_url, settings,
    settings_with, spawn_app,
};
use serde_json::json;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(60);

fn exec(db: &TestDb, sql: &str) {
    use diesel::connection::SimpleConnection;
    db.conn().batch_execute(sql).unwrap();
}

fn find<'a>(d: &'a DiagnosisView, name: &str) -> &'a CheckView {
    d.checks
        .iter()
        .find(|c| c.check == name)
        .unwrap_or_else(|| panic!("no check {name} in {d:#?}"))
}

fn expect(d: &DiagnosisView, name: &str, status: CheckStatus, says: &str) -> CheckView {
    let c = find(d, name);
    assert_eq!(c.status, status, "{name}: {c:#?}");
    assert!(
        c.evidence.contains(says),
        "{name}: {:?} lacks {says:?}",
        c.evidence
    );
    assert!(c.runbook.starts_with("docs/runbook.md#"), "{c:?}");
    if status != CheckStatus::Ok {
        assert!(c.next_step.is_some(), "{name} must say what to run next");
    }
    c.clone()
}

async fn peer_doctor(inst: &Instance, peer: &str) -> DiagnosisView {
    inst.operator()
        .peer_diagnosis(peer.parse::<Uuid>().unwrap().into())
        .await
        .unwrap()
}

async fn peer_id(inst: &Instance) -> String {
    inst.only_peer().await["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn schedules_are_ok_while_a_worker_reports_and_fail_two_intervals_after_it_stops() {
    let db = TestDb::new();
    let token = admin_token(&mut db.conn());
    let app = spawn_app(settings(&db)).await;
    let doctor = || async { app.operator(&token).diagnosis().await.unwrap() };
    // Nobody reported yet, the API just started: a warning, not a failure.
    let early = doctor().await;
    expect(
        &early,
        "schedule.federation_governance",
        CheckStatus::Warn,
        "no worker has reported FederationGovernanceJob yet",
    );

    let mut worker = WorkerProcess::spawn(
        "default",
        &app.address,
        &redis_prefix(),
        &[
            (
                "POWERNODE_SCHEDULES__FEDERATION_GOVERNANCE__INTERVAL_SECS",
                "2",
            ),
            (
                "POWERNODE_SCHEDULES__FLEET_EVENT_RETENTION__INTERVAL_SECS",
                "2",
            ),
        ],
    );
    // The exact log lines of the two new jobs (SPEC §11).
    worker
        .wait_for(DEADLINE, |l| {
            l.contains(
                "[FederationGovernanceJob] scan complete: findings=0 high=0 new=0 resolved=0",
            )
        })
        .await;
    worker
        .wait_for(DEADLINE, |l| {
            l.contains("[FleetEventRetentionJob] deleted=0")
        })
        .await;
    let ok = eventually_async(DEADLINE, "heartbeat schedule ok", || async {
        let d = doctor().await;
        let c = find(&d, "schedule.federation_heartbeat").clone();
        (c.status == CheckStatus::Ok).then_some(c)
    })
    .await;
    assert!(
        ok.evidence
            .starts_with("last FederationHeartbeatJob success")
            && ok.evidence.ends_with("ago (interval 1 s)"),
        "{ok:?}"
    );
    let d = doctor().await;
    expect(
        &d,
        "schedule.federation_governance",
        CheckStatus::Ok,
        "(interval 2 s)",
    );

    worker.signal("TERM");
    worker.child.wait().await.unwrap();
    let failed = eventually_async(DEADLINE, "heartbeat schedule failing", || async {
        let d = doctor().await;
        let c = find(&d, "schedule.federation_heartbeat").clone();
        (c.status == CheckStatus::Fail).then_some(c)
    })
    .await;
    assert!(
        failed
            .evidence
            .contains("more than 2 intervals (interval 1 s)"),
        "{failed:?}"
    );
    assert_eq!(
        failed.next_step.as_deref(),
        Some("journalctl -u powernode-worker@default | grep FederationHeartbeatJob")
    );
    assert_eq!(
        failed.runbook,
        "docs/runbook.md#symptom-a-worker-schedule-does-not-run"
    );
}

#[tokio::test]
async fn a_paused_manager_a_lowered_policy_and_an_approval_about_to_expire_are_warnings() {
    let db = TestDb::gated();
    let admin = admin_token(&mut db.conn());
    let requester = create_operator(
        &mut db.conn(),
        "requester",
        &[
            powernode_domain::Permission::FederationRead,
            powernode_domain::Permission::FederationManage,
        ],
    );
    let app = spawn_app(settings(&db)).await;
    let client = app.operator(&admin);
    let healthy = client.diagnosis().await.unwrap();
    expect(
        &healthy,
        "sdwan_manager",
        CheckStatus::Ok,
        "SDWAN Manager active",
    );
    expect(&healthy, "policies", CheckStatus::Ok, "none lowered");
    expect(&healthy, "approvals", CheckStatus::Ok, "0 pending");
    expect(
        &healthy,
        "postgresql",
        CheckStatus::Ok,
        "answered the diagnosis reads in",
    );
    expect(&healthy, "redis", CheckStatus::Ok, "PING answered in");

    let (status, _) = app
        .post(
            "/api/v1/ai/agents/SDWAN%20Manager/pause",
            &admin,
            json!({"reason": "executions failing"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .post(
            "/api/v1/ai/autonomy/policies/system.federation_peer_propose/lower",
            &admin,
            json!({"to": "notify_and_proceed", "for_seconds": 1800, "reason": "INC-7"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let peer = insert_peer(&mut db.conn(), "active", "platform", Some(5));
    let (status, queued) = app
        .post(
            &format!("{PEERS}/{peer}/revoke"),
            &requester,
            json!({"reason": "compromised"}),
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    let request = queued["data"]["approval_request"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    exec(
        &db,
        &format!(
            "UPDATE approval_requests SET expires_at = now() + interval '9 minutes' WHERE id = '{request}'"
        ),
    );

    let d = client.diagnosis().await.unwrap();
    let paused = expect(
        &d,
        "sdwan_manager",
        CheckStatus::Warn,
        "(executions failing): approved requests wait until it resumes",
    );
    assert_eq!(
        paused.next_step.as_deref(),
        Some("powernodectl agent resume \"SDWAN Manager\"")
    );
    let lowered = expect(
        &d,
        "policies",
        CheckStatus::Warn,
        "system.federation_peer_propose lowered to notify_and_proceed until",
    );
    assert!(lowered.evidence.ends_with(": INC-7"), "{lowered:?}");
    assert_eq!(
        lowered.next_step.as_deref(),
        Some("powernodectl policy restore system.federation_peer_propose")
    );
    let expiring = expect(&d, "approvals", CheckStatus::Warn, &request);
    assert!(
        expiring
            .evidence
            .contains("(system.federation_peer_revoke), in 8 min")
    );

    let on_peer = app
        .operator(&admin)
        .peer_diagnosis(peer.into())
        .await
        .unwrap();
    expect(&on_peer, "peer.approvals", CheckStatus::Warn, &request);
}

#[tokio::test]
async fn an_unreachable_redis_is_a_failing_check() {
    let db = TestDb::new();
    let token = admin_token(&mut db.conn());
    let app = spawn_app(settings_with(
        &db.url,
        &[(
            "POWERNODE_REDIS_URL",
            format!("redis://127.0.0.1:{}/", free_port()),
        )],
    ))
    .await;
    let d = app.operator(&token).diagnosis().await.unwrap();
    let redis = expect(&d, "redis", CheckStatus::Fail, "Redis does not answer");
    assert_eq!(
        redis.runbook,
        "docs/runbook.md#symptom-redis-is-unreachable"
    );
    assert_eq!(d.status, CheckStatus::Fail);
}

#[tokio::test]
async fn an_accepted_peer_names_the_side_that_must_handshake_and_fails_after_an_hour() {
    let a = instance().await;
    let b = instance().await;
    a.ready().await;
    b.ready().await;
    propose_and_accept(&a, &b, "parent").await;
    let (a_peer, b_peer) = (peer_id(&a).await, peer_id(&b).await);
    // B accepted A's token: B's worker must handshake (and has not run).
    let on_b = peer_doctor(&b, &b_peer).await;
    let c = expect(
        &on_b,
        "peer.handshake",
        CheckStatus::Warn,
        "we accepted its token, so our worker sends the handshake: no worker has reported FederationPeerHeartbeatJob; no attempt recorded yet",
    );
    assert_eq!(c.runbook, "docs/runbook.md#symptom-peer-stuck-in-accepted");
    // A waits for B.
    exec(
        &a.db,
        "UPDATE peers SET status_changed_at = now() - interval '2 hours'",
    );
    let on_a = peer_doctor(&a, &a_peer).await;
    let c = expect(
        &on_a,
        "peer.handshake",
        CheckStatus::Fail,
        "accepted 2 h 0 min ago",
    );
    assert!(c.evidence.contains(
        "the other instance accepted our token and must send the handshake: is its worker running?"
    ));
    expect(&on_a, "peer.outbound", CheckStatus::Ok, "we do not call");
    // The proposer's client certificate comes with the handshake: not a partial pair.
    expect(
        &on_a,
        "peer.certificates",
        CheckStatus::Ok,
        "our client certificate arrives with the handshake",
    );
    // B's handshake arrives: both sides say so.
    b.worker("peer_heartbeats").await;
    let on_a = peer_doctor(&a, &a_peer).await;
    expect(
        &on_a,
        "peer.handshake",
        CheckStatus::Ok,
        "handshake completed",
    );
}

#[tokio::test]
async fn a_healthy_pair_is_ok_in_every_check() {
    let (a, b) = federated_pair().await;
    a.worker("peer_heartbeats").await;
    b.worker("peer_heartbeats").await;
    let a_peer = peer_id(&a).await;
    assert_eq!(a.only_peer().await["status"], "active");
    let d = peer_doctor(&a, &a_peer).await;
    for c in &d.checks {
        assert_eq!(c.status, CheckStatus::Ok, "{c:#?}");
    }
    assert_eq!(d.status, CheckStatus::Ok);
    assert_eq!(
        d.checks
            .iter()
            .map(|c| c.check.as_str())
            .collect::<Vec<_>>(),
        [
            "peer.status",
            "peer.handshake",
            "peer.inbound_heartbeat",
            "peer.outbound",
            "peer.certificates",
            "peer.grants",
            "peer.approvals"
        ]
    );
    expect(&d, "peer.outbound", CheckStatus::Ok, "succeeded");
    expect(&d, "peer.certificates", CheckStatus::Ok, "valid until");
    // The instance: every schedule reported by a worker (the report a worker sends after each
    // tick), so every instance check is ok too.
    let worker = a.app.worker_api();
    for s in powernode_domain::schedule::SCHEDULES {
        worker
            .report(&powernode_client::worker::JobReportRequest {
                schedule: s.name.to_owned(),
                job: s.job.to_owned(),
                tick: 0,
                outcome: "succeeded".to_owned(),
                worker: "default-test".to_owned(),
                attempts: None,
                error: None,
                interval_secs: Some(s.interval_secs),
            })
            .await
            .unwrap();
    }
    let instance = a.operator().diagnosis().await.unwrap();
    for c in &instance.checks {
        assert_eq!(c.status, CheckStatus::Ok, "{c:#?}");
    }
    expect(
        &instance,
        "federation_listener",
        CheckStatus::Ok,
        "certificate valid until",
    );
    assert_eq!(
        instance.checks.len(),
        powernode_domain::schedule::SCHEDULES.len() + 6
    );
}

#[tokio::test]
async fn a_revoked_certificate_on_the_other_side_is_named_with_its_401() {
    let (a, b) = federated_pair().await;
    a.worker("peer_heartbeats").await;
    let b_peer = peer_id(&b).await;
    // A revokes the certificate it issued to B (the peer row stays).
    exec(
        &a.db,
        "UPDATE peer_certificates SET revoked_at = now(), revocation_reason = 'test' WHERE direction = 'inbound'",
    );
    let run = b.worker("peer_heartbeats").await;
    assert_eq!(
        run["failed"][0]["error"],
        "401 UNAUTHORIZED: Certificate is revoked"
    );
    let d = peer_doctor(&b, &b_peer).await;
    let c = expect(
        &d,
        "peer.outbound",
        CheckStatus::Fail,
        "refuses our heartbeats since",
    );
    assert!(
        c.evidence.contains(
            ": 401 UNAUTHORIZED: Certificate is revoked (it revoked the certificate it issued us)"
        ),
        "{c:?}"
    );
    assert_eq!(
        c.runbook,
        "docs/runbook.md#symptom-federation-api-returns-401-even-with-a-valid-certificate"
    );
    let since = b.only_peer().await["outbound_failing_since"].clone();
    assert!(since.is_string());
    // A second failure keeps the start of the outage.
    b.worker("peer_heartbeats").await;
    assert_eq!(b.only_peer().await["outbound_failing_since"], since);
}

#[tokio::test]
async fn a_partial_certificate_row_fails_the_certificate_check_and_refuses_the_re_mint() {
    let (a, b) = federated_pair().await;
    let b_peer = peer_id(&b).await;
    let _ = a;
    exec(
        &b.db,
        "UPDATE peer_certificates SET key_sealed = NULL WHERE direction = 'outbound'",
    );
    let message = format!(
        "outbound certificate for peer {b_peer} is partial (cert_pem=true, key_pem=false): revoke and re-propose"
    );
    let d = peer_doctor(&b, &b_peer).await;
    let c = expect(&d, "peer.certificates", CheckStatus::Fail, &message);
    assert_eq!(
        c.runbook,
        "docs/runbook.md#symptom-mtls-partial-config-warning-in-logs"
    );
    assert!(
        c.next_step
            .unwrap()
            .starts_with(&format!("powernodectl peer revoke {b_peer}"))
    );
    let (status, body) = b
        .app
        .post(
            &format!("{PEERS}/{b_peer}/certificates/renew"),
            &b.admin,
            json!(null),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some(message.as_str()))
    );
    // The PeerClient refuses too, and the doctor says why.
    b.worker("peer_heartbeats").await;
    let d = peer_doctor(&b, &b_peer).await;
    expect(
        &d,
        "peer.outbound",
        CheckStatus::Fail,
        "we refuse to call 127.0.0.1 since",
    );
}

#[tokio::test]
async fn the_forced_re_mint_renews_through_the_rotation_path() {
    let (a, b) = federated_pair().await;
    a.worker("peer_heartbeats").await;
    let b_peer = peer_id(&b).await;
    let before = b.only_peer().await;
    let reader = create_operator(
        &mut b.db.conn(),
        "reader",
        &[powernode_domain::Permission::FederationRead],
    );
    let path = format!("{PEERS}/{b_peer}/certificates/renew");
    let (status, body) = b.app.post(&path, &reader, json!(null)).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = b
        .app
        .post(
            &format!("{PEERS}/{}/certificates/renew", Uuid::new_v4()),
            &b.admin,
            json!(null),
        )
        .await;
    assert_eq!(status, 404);

    let renewed = b
        .operator()
        .renew_peer_certificate(b_peer.parse::<Uuid>().unwrap().into())
        .await
        .unwrap();
    assert_ne!(
        json!(renewed.serial),
        before["certificates"]["outbound"]["serial"]
    );
    let shown = b
        .operator()
        .peer(b_peer.parse::<Uuid>().unwrap().into())
        .await
        .unwrap();
    let outbound = shown.certificates.unwrap().outbound.unwrap();
    assert_eq!(outbound.serial, renewed.serial);
    // A issued it and recorded the renewal; the next heartbeat uses it.
    let events = a
        .operator()
        .events(&powernode_client::events::EventsQuery {
            kind: Some("federation.certificate.renewed".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].payload["serial"], json!(renewed.serial));
    let run = b.worker("peer_heartbeats").await;
    assert_eq!(run["sent"], 1, "{run}");
    // Not while the peer is suspended.
    b.operator()
        .suspend(
            b_peer.parse::<Uuid>().unwrap().into(),
            &powernode_client::peers::ReasonRequest {
                reason: "maintenance".to_owned(),
            },
        )
        .await
        .unwrap();
    let (status, body) = b.app.post(&path, &b.admin, json!(null)).await;
    assert_eq!(status, 409);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .ends_with("is suspended: our client certificate is renewed over mTLS only while the peer is enrolled, active or degraded"),
        "{body}"
    );
}

#[tokio::test]
async fn a_grant_denial_is_recorded_on_the_grant_and_shown_by_the_doctor() {
    let (a, b) = federated_pair().await;
    let a_peer = peer_id(&a).await;
    let (status, issued) = a
        .app
        .post(
            &format!("{PEERS}/{a_peer}/grants"),
            &a.admin,
            json!({
                "resource_kind": "sdwan_config", "permission_scopes": ["read"],
                "sdwan_network_ids": ["overlay-1"]
            }),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["data"]["token"].as_str().unwrap().to_owned();
    let grant = issued["data"]["grant"]["id"].as_str().unwrap().to_owned();
    let client = powernode_tests::federation::pinned_client(
        &a,
        Some(powernode_tests::federation::outbound_identity(&b)),
    );
    let resp = client
        .get(format!(
            "{}/api/v1/system/federation_api/resources/sdwan_config/net-1",
            a.public_url
        ))
        .bearer_auth(&token)
        .header("X-Sdwan-Network", "overlay-2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let shown = a
        .operator()
        .grant(grant.parse::<Uuid>().unwrap().into())
        .await
        .unwrap();
    let _ = shown;
    let d = peer_doctor(&a, &a_peer).await;
    let c = expect(
        &d,
        "peer.grants",
        CheckStatus::Warn,
        &format!("grant {grant} denied a call"),
    );
    assert!(
        c.evidence.ends_with(
            "read sdwan_config/net-1: grant scope mismatch: network overlay-2 not allowed"
        ),
        "{c:?}"
    );
    assert!(
        c.next_step
            .unwrap()
            .starts_with(&format!("powernodectl grant explain {grant}"))
    );
}

struct ProcessSide {
    db: TestDb,
    admin: String,
    base: String,
    public_url: String,
    api: Process,
}

/// An instance whose API is a real process (so the test can stop it).
async fn process_instance() -> ProcessSide {
    let db = TestDb::new();
    let admin = admin_token(&mut db.conn());
    let (http, fed) = (free_port(), free_port());
    let public_url = format!("https://127.0.0.1:{fed}");
    let env = vec![
        ("POWERNODE_DATABASE_URL", db.url.clone()),
        ("POWERNODE_REDIS_URL", redis_url()),
        ("POWERNODE_REDIS_PREFIX", redis_prefix()),
        ("POWERNODE_WORKER_TOKEN", WORKER_TOKEN.to_owned()),
        ("POWERNODE_MASTER_KEY_FILE", master_key_file()),
        ("POWERNODE_FEDERATION_PUBLIC_URL", public_url.clone()),
        ("POWERNODE_FEDERATION_LISTEN", format!("127.0.0.1:{fed}")),
        ("POWERNODE_HTTP_LISTEN", format!("127.0.0.1:{http}")),
        ("POWERNODE_ENVIRONMENT", "development".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];
    let api = Process::spawn("powernode-api", &["serve"], &env);
    api.wait_for(DEADLINE, |l| l.contains("federation API listening"))
        .await;
    ProcessSide {
        db,
        admin,
        base: format!("http://127.0.0.1:{http}"),
        public_url,
        api,
    }
}

async fn ctl(base: &str, token: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(bin("powernodectl"))
        .args(args)
        .env_clear()
        .env("POWERNODE_API_URL", base)
        .env("POWERNODE_TOKEN", token)
        .env("HOME", std::env::temp_dir())
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_dead_listener_is_named_by_its_transport_error_and_powernodectl_doctor_exits_1() {
    use powernode_client::Gated;
    use powernode_client::peers::{AcceptRequest, ProposeRequest};
    let a = instance().await;
    a.ready().await;
    let mut b = process_instance().await;
    let b_client = powernode_client::OperatorClient::new(
        reqwest::Client::new(),
        &b.base,
        b.admin.clone().into(),
    );
    let b_worker =
        powernode_client::WorkerClient::new(reqwest::Client::new(), &b.base, WORKER_TOKEN.into());
    let Gated::Done(proposed) = a
        .operator()
        .propose(&ProposeRequest {
            remote_instance_url: b.public_url.clone(),
            spawn_role: Some("parent".to_owned()),
            ..ProposeRequest::default()
        })
        .await
        .unwrap()
    else {
        panic!("queued")
    };
    let Gated::Done(_) = b_client
        .accept(&AcceptRequest {
            acceptance_token: proposed.acceptance_token.unwrap(),
        })
        .await
        .unwrap()
    else {
        panic!("queued")
    };
    b_worker.peer_heartbeats().await.unwrap(); // handshake: both enrolled
    a.worker("peer_heartbeats").await; // A → B heartbeat
    b_worker.peer_heartbeats().await.unwrap(); // B → A heartbeat: A's row active
    let a_peer = peer_id(&a).await;
    assert_eq!(a.only_peer().await["status"], "active");

    // B's API goes away without a goodbye.
    b.api.signal("KILL");
    b.api.child.wait().await.unwrap();
    let run = a.worker("peer_heartbeats").await;
    assert_eq!(run["sent"], 0, "{run}");
    // A notices B's silence: the sweep degrades it once its heartbeat is older than stale_after.
    exec(
        &a.db,
        "UPDATE peers SET last_heartbeat_at = now() - interval '10 minutes'",
    );
    a.worker("heartbeat_sweep").await;
    let d = peer_doctor(&a, &a_peer).await;
    let out = expect(
        &d,
        "peer.outbound",
        CheckStatus::Fail,
        "127.0.0.1's federation listener does not answer (connection refused: nothing listens at that address) since",
    );
    assert!(out.next_step.unwrap().starts_with(&format!(
        "curl -sk -o /dev/null -w '%{{http_code}}\\n' {}",
        b.public_url
    )));
    expect(&d, "peer.status", CheckStatus::Fail, "degraded for");
    expect(
        &d,
        "peer.inbound_heartbeat",
        CheckStatus::Fail,
        "last heartbeat from the peer 10 min",
    );

    // As an operator sees it: one line per check, exit code 1.
    let printed = ctl(&a.app.address, &a.admin, &["doctor", &a_peer]).await;
    let text = String::from_utf8_lossy(&printed.stdout).into_owned();
    println!("{text}");
    assert_eq!(printed.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with(&format!("Doctor for peer {a_peer}: FAIL")),
        "{text}"
    );
    assert!(text.contains("✗ peer.outbound"), "{text}");
    assert!(text.contains("✓ peer.handshake"), "{text}");
    assert!(text.contains("→ curl -sk"), "{text}");
    assert!(
        text.contains("runbook: docs/runbook.md#symptom-peer-flipped-to-degraded"),
        "{text}"
    );
    let json_out = ctl(&a.app.address, &a.admin, &["--json", "doctor", &a_peer]).await;
    let parsed: DiagnosisView = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(parsed.status, CheckStatus::Fail);
    // A governance report with the degraded peer (and more), as printed.
    exec(
        &a.db,
        "UPDATE peers SET extension_slugs = '[\"dns\"]', capabilities = '[]'",
    );
    let (status, _) = a
        .app
        .post(
            &format!("{PEERS}/{a_peer}/grants"),
            &a.admin,
            json!({"resource_kind": "sdwan_config", "permission_scopes": ["read"]}),
        )
        .await;
    assert_eq!(status, 201);
    let printed = ctl(&a.app.address, &a.admin, &["governance", "scan"]).await;
    let text = String::from_utf8_lossy(&printed.stdout).into_owned();
    println!("{text}");
    assert!(printed.status.success(), "{text}");
    assert!(
        text.contains("MEDIUM (2)") && text.contains("peer_heartbeat_stale"),
        "{text}"
    );
    assert!(text.contains("grant_unrestricted"), "{text}");
    assert!(
        text.contains("LOW (1)") && text.contains("peer_capability_drift"),
        "{text}"
    );
    drop(b.db);
}

#[tokio::test]
async fn powernodectl_doctor_prints_an_unreachable_api_as_a_failing_check() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let out = ctl(&closed, "pnop_whatever", &["doctor"]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("✗ api"), "{text}");
    assert!(
        text.contains(&format!("the API at {closed} does not answer")),
        "{text}"
    );
}

#[tokio::test]
async fn powernodectl_doctor_prints_a_stalled_database_as_a_failing_check() {
    let db = TestDb::new();
    let token = admin_token(&mut db.conn());
    let proxy = powernode_tests::stall::StallProxy::start(&db.url).await;
    let app = spawn_app(settings_with(
        &proxy.url,
        &[("POWERNODE_DATABASE_TIMEOUT_SECS", "2".to_owned())],
    ))
    .await;
    let healthy = ctl(&app.address, &token, &["doctor"]).await;
    let text = String::from_utf8_lossy(&healthy.stdout).into_owned();
    assert!(text.contains("✓ postgresql"), "{text}");
    proxy.freeze();
    let out = ctl(&app.address, &token, &["doctor"]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    proxy.thaw();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("✗ postgresql  503 SERVICE_UNAVAILABLE: database unavailable"),
        "{text}"
    );
    assert!(text.contains("→ pg_isready"), "{text}");
}

#[tokio::test]
async fn certificates_warn_when_rotation_is_due_and_fail_once_expired_on_both_listener_and_peer() {
    let (a, b) = federated_pair().await;
    let b_peer = peer_id(&b).await;
    // The listener's certificate past 75 % of its lifetime, then ended.
    exec(
        &a.db,
        "UPDATE server_certificates SET not_before = now() - interval '400 days', not_after = now() + interval '20 days'",
    );
    let d = a.operator().diagnosis().await.unwrap();
    let due = expect(
        &d,
        "federation_listener",
        CheckStatus::Warn,
        "past 75 % of its lifetime",
    );
    assert_eq!(
        due.runbook,
        "docs/runbook.md#symptom-the-federation-listener-is-down-or-its-certificate-expires"
    );
    exec(
        &a.db,
        "UPDATE server_certificates SET not_after = now() - interval '3 days'",
    );
    let d = a.operator().diagnosis().await.unwrap();
    expect(
        &d,
        "federation_listener",
        CheckStatus::Fail,
        "expired 3 d ago",
    );

    // Our client certificate for A, on B: rotation due, then ended.
    exec(
        &b.db,
        "UPDATE peer_certificates SET not_before = now() - interval '300 days', not_after = now() + interval '20 days' WHERE direction = 'outbound'",
    );
    let d = peer_doctor(&b, &b_peer).await;
    let c = expect(
        &d,
        "peer.certificates",
        CheckStatus::Warn,
        "rotation is due",
    );
    assert_eq!(
        c.next_step.as_deref(),
        Some(format!("powernodectl peer cert renew {b_peer}").as_str())
    );
    exec(
        &b.db,
        "UPDATE peer_certificates SET not_after = now() - interval '2 days' WHERE direction = 'outbound'",
    );
    let d = peer_doctor(&b, &b_peer).await;
    expect(
        &d,
        "peer.certificates",
        CheckStatus::Fail,
        "expired 2 d ago",
    );
}

#[tokio::test]
async fn peer_status_says_who_suspended_it_and_why_and_that_a_token_expired() {
    let db = TestDb::new();
    let admin = admin_token(&mut db.conn());
    let app = spawn_app(settings(&db)).await;
    let client = app.operator(&admin);
    let me = client.me().await.unwrap();
    let peer = insert_peer(&mut db.conn(), "active", "platform", Some(5));
    client
        .suspend(
            peer.into(),
            &powernode_client::peers::ReasonRequest {
                reason: "remote platform offline".to_owned(),
            },
        )
        .await
        .unwrap();
    let d = client.peer_diagnosis(peer.into()).await.unwrap();
    let c = expect(
        &d,
        "peer.status",
        CheckStatus::Warn,
        &format!("ago by operator {}: remote platform offline", me.id),
    );
    assert_eq!(
        c.runbook,
        "docs/runbook.md#symptom-a-peer-is-suspended-or-revoked"
    );
    expect(&d, "peer.outbound", CheckStatus::Ok, "we do not call");

    let proposed = insert_peer(&mut db.conn(), "proposed", "platform", None);
    exec(
        &db,
        &format!(
            "UPDATE peers SET acceptance_token_digest = repeat('a', 64), acceptance_token_expires_at = now() - interval '3 hours' WHERE id = '{proposed}'"
        ),
    );
    let d = client.peer_diagnosis(proposed.into()).await.unwrap();
    let c = expect(
        &d,
        "peer.status",
        CheckStatus::Warn,
        "its acceptance token expired 3 h 0 min ago",
    );
    assert_eq!(
        c.next_step.as_deref(),
        Some(format!("powernodectl peer token regenerate {proposed}").as_str())
    );

    // An sdwan_only peer stays accepted: not stuck, and not a governance finding.
    let sdwan = insert_peer(&mut db.conn(), "accepted", "sdwan_only", None);
    exec(
        &db,
        &format!(
            "UPDATE peers SET status_changed_at = now() - interval '3 days' WHERE id = '{sdwan}'"
        ),
    );
    let d = client.peer_diagnosis(sdwan.into()).await.unwrap();
    expect(&d, "peer.handshake", CheckStatus::Ok, "stays accepted");
    // (This fixture has no certificate rows at all, so the one we issue is reported missing;
    // what matters is that our own half is not called partial.)
    let certs = find(&d, "peer.certificates");
    assert_ne!(certs.status, CheckStatus::Fail, "{certs:?}");
    assert!(
        certs
            .evidence
            .contains("no client certificate of ours for a sdwan_only peer"),
        "{certs:?}"
    );
    let report = client.governance_scan().await.unwrap();
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.kind != "stale_accepted_without_handshake"),
        "{:#?}",
        report.findings
    );
}
