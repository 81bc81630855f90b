//! The governance scanner (SPEC §9.1) and event retention (§9.2): each finding from a real
//! situation in PostgreSQL, carried across reports, resolved when fixed.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use diesel::RunQueryDsl;
use powernode_client::governance::{FindingView, ReportView};
use powernode_tests::federation::{PEERS, federated_pair};
use powernode_tests::{
    TestApp, TestDb, admin_token, create_operator, insert_peer, settings, settings_with, spawn_app,
};
use serde_json::json;
use uuid::Uuid;

const SCAN: &str = "/api/v1/system/federation/governance/scan";

/// Runs SQL (several statements allowed) on the test database.
fn exec(db: &TestDb, sql: &str) {
    use diesel::connection::SimpleConnection;
    db.conn().batch_execute(sql).unwrap();
}

async fn scan(app: &TestApp, token: &str) -> ReportView {
    app.operator(token).governance_scan().await.unwrap()
}

fn of_kind<'a>(r: &'a ReportView, kind: &str) -> Vec<&'a FindingView> {
    r.findings.iter().filter(|f| f.kind == kind).collect()
}

/// One finding of `kind` about `subject`: asserts its severity, that its message contains
/// `says`, and that the report calls it new.
fn found<'a>(
    r: &'a ReportView,
    kind: &str,
    subject: &str,
    severity: &str,
    says: &str,
) -> &'a FindingView {
    let f = of_kind(r, kind)
        .into_iter()
        .find(|f| f.subject_id == subject)
        .unwrap_or_else(|| panic!("no {kind} about {subject} in {:#?}", r.findings));
    assert_eq!(f.severity, severity, "{f:?}");
    assert!(f.message.contains(says), "{:?} lacks {says:?}", f.message);
    assert!(r.new.contains(&f.fingerprint), "{kind} should be new");
    f
}

/// The second scan of an unchanged situation: nothing new, `first_seen_at` carried over.
async fn nothing_new(app: &TestApp, token: &str, first: &ReportView) -> ReportView {
    let again = scan(app, token).await;
    assert!(again.new.is_empty(), "new on a rescan: {:?}", again.new);
    assert!(again.resolved.is_empty(), "{:?}", again.resolved);
    for f in &again.findings {
        let before = first
            .findings
            .iter()
            .find(|b| b.fingerprint == f.fingerprint)
            .unwrap();
        assert_eq!(f.first_seen_at, before.first_seen_at, "{}", f.kind);
    }
    again
}

fn resolved(r: &ReportView, f: &FindingView) {
    assert!(
        r.resolved.contains(&f.fingerprint),
        "{} about {} should be resolved: {:?}",
        f.kind,
        f.subject_id,
        r.resolved
    );
    assert!(r.findings.iter().all(|g| g.fingerprint != f.fingerprint));
    assert!(
        r.resolved_findings
            .iter()
            .any(|g| g.fingerprint == f.fingerprint)
    );
}

#[tokio::test]
async fn an_accepted_peer_without_a_handshake_for_an_hour_is_high_and_a_resumed_one_counts() {
    let db = TestDb::new();
    let token = admin_token(&mut db.conn());
    let app = spawn_app(settings(&db)).await;
    let stuck = insert_peer(&mut db.conn(), "accepted", "platform", None);
    let fresh = insert_peer(&mut db.conn(), "accepted", "platform", None);
    exec(
        &db,
        &format!(
            "UPDATE peers SET status_changed_at = now() - interval '3 hours 5 minutes' WHERE id = '{stuck}'"
        ),
    );
    // Resumed through the API: suspended → accepted sets status_changed_at (the trigger).
    let resumed = insert_peer(&mut db.conn(), "suspended", "platform", None);
    exec(
        &db,
        &format!(
            "UPDATE peers SET status_changed_at = now() - interval '2 days' WHERE id = '{resumed}'"
        ),
    );
    let back = app
        .operator(&token)
        .resume(
            resumed.into(),
            &powernode_client::peers::ResumeRequest { reason: None },
        )
        .await
        .unwrap();
    assert_eq!(back.status, powernode_domain::PeerStatus::Accepted);
    let age: f64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::Double>(&format!(
        "(SELECT extract(epoch FROM now() - status_changed_at)::float8 FROM peers WHERE id = '{resumed}')"
    )))
    .get_result(&mut db.conn())
    .unwrap();
    assert!(
        age < 60.0,
        "resume must stamp status_changed_at (age {age} s)"
    );

    let first = scan(&app, &token).await;
    let f = found(
        &first,
        "stale_accepted_without_handshake",
        &stuck.to_string(),
        "high",
        "accepted 3 h ago without a handshake: is the other instance's worker running? (runbook: peer stuck in accepted)",
    );
    assert_eq!(f.subject_type, "peer");
    assert_eq!(f.peer_id, Some(stuck));
    assert_eq!(of_kind(&first, "stale_accepted_without_handshake").len(), 1);
    nothing_new(&app, &token, &first).await;
    // The resumed peer, an hour later, is found too.
    exec(
        &db,
        &format!(
            "UPDATE peers SET status_changed_at = now() - interval '61 minutes' WHERE id = '{resumed}'"
        ),
    );
    let later = scan(&app, &token).await;
    found(
        &later,
        "stale_accepted_without_handshake",
        &resumed.to_string(),
        "high",
        "accepted 61 min ago",
    );
    assert!(
        of_kind(&later, "stale_accepted_without_handshake")
            .iter()
            .all(|f| f.subject_id != fresh.to_string())
    );
    // The handshake arrives: resolved.
    exec(
        &db,
        &format!("UPDATE peers SET status = 'enrolled' WHERE id = '{stuck}'"),
    );
    resolved(&scan(&app, &token).await, f);
}

#[tokio::test]
async fn degraded_is_medium_then_high_after_a_day_and_a_silent_active_peer_is_found() {
    let db = TestDb::new();
    let token = admin_token(&mut db.conn());
    let app = spawn_app(settings(&db)).await;
    let hours = insert_peer(&mut db.conn(), "degraded", "platform", Some(7300));
    let day = insert_peer(&mut db.conn(), "degraded", "platform", Some(90_400));
    let silent = insert_peer(&mut db.conn(), "active", "platform", Some(600));
    let healthy = insert_peer(&mut db.conn(), "active", "platform", Some(5));
    exec(
        &db,
        &format!(
            "UPDATE peers SET status_changed_at = now() - interval '2 hours' WHERE id = '{hours}';
             UPDATE peers SET status_changed_at = now() - interval '25 hours' WHERE id = '{day}'"
        ),
    );
    let first = scan(&app, &token).await;
    found(
        &first,
        "peer_heartbeat_stale",
        &hours.to_string(),
        "medium",
        "degraded for 2 h",
    );
    let f = found(
        &first,
        "peer_heartbeat_stale",
        &day.to_string(),
        "high",
        "degraded for 25 h (last heartbeat 25 h ago)",
    );
    found(
        &first,
        "peer_heartbeat_stale",
        &silent.to_string(),
        "medium",
        "is active but silent for 10 min (stale after 5 min)",
    );
    assert_eq!(
        of_kind(&first, "peer_heartbeat_stale").len(),
        3,
        "{healthy}"
    );
    nothing_new(&app, &token, &first).await;
    exec(
        &db,
        &format!(
            "UPDATE peers SET status = 'active', last_heartbeat_at = now() WHERE id = '{day}'"
        ),
    );
    resolved(&scan(&app, &token).await, f);
}

#[tokio::test]
async fn an_extension_slug_without_its_capability_is_low_drift() {
    let db = TestDb::new();
    let token = admin_token(&mut db.conn());
    let app = spawn_app(settings(&db)).await;
    let drifting = insert_peer(&mut db.conn(), "active", "platform", Some(5));
    let fine = insert_peer(&mut db.conn(), "active", "platform", Some(5));
    exec(
        &db,
        &format!(
            r#"UPDATE peers SET extension_slugs = '["sdwan", "dns", "bgp"]', capabilities = '["sdwan"]' WHERE id = '{drifting}';
               UPDATE peers SET extension_slugs = '["sdwan"]', capabilities = '["sdwan", "x"]' WHERE id = '{fine}'"#
        ),
    );
    let first = scan(&app, &token).await;
    let f = found(
        &first,
        "peer_capability_drift",
        &drifting.to_string(),
        "low",
        "without the matching capability: bgp, dns",
    );
    assert_eq!(f.payload, json!({"missing_slugs": ["bgp", "dns"]}));
    assert_eq!(of_kind(&first, "peer_capability_drift").len(), 1);
    nothing_new(&app, &token, &first).await;
    exec(
        &db,
        &format!(
            r#"UPDATE peers SET capabilities = '["sdwan", "dns", "bgp"]' WHERE id = '{drifting}'"#
        ),
    );
    resolved(&scan(&app, &token).await, f);
}

#[tokio::test]
async fn prefixes_overlap_by_true_cidr_containment_and_with_our_own_prefix() {
    let db = TestDb::new();
    let token = admin_token(&mut db.conn());
    let app = spawn_app(settings_with(
        &db.url,
        &[("POWERNODE_FEDERATION_PREFIX", "fd00:9::/48".to_owned())],
    ))
    .await;
    let with_prefix = |prefix: &str| {
        let id = insert_peer(&mut db.conn(), "active", "platform", Some(5));
        exec(
            &db,
            &format!("UPDATE peers SET remote_prefix_advertisement = '{prefix}' WHERE id = '{id}'"),
        );
        id
    };
    let wide = with_prefix("fd00:1::/48");
    let inside = with_prefix("fd00:1:0:100::/56");
    let disjoint_a = with_prefix("fd00:2::/48");
    let disjoint_b = with_prefix("fd00:3::/48");
    let ours = with_prefix("fd00:9:0:200::/56");
    let revoked = with_prefix("fd00:2:0:100::/56");
    exec(
        &db,
        &format!("UPDATE peers SET status = 'revoked' WHERE id = '{revoked}'"),
    );

    let first = scan(&app, &token).await;
    let overlaps = of_kind(&first, "overlapping_prefix_advertisement");
    assert_eq!(overlaps.len(), 2, "{overlaps:#?}");
    let pair = overlaps
        .iter()
        .find(|f| f.payload.get("other_peer_id").is_some())
        .unwrap();
    let (small, big) = if wide < inside {
        (wide, inside)
    } else {
        (inside, wide)
    };
    assert_eq!(pair.subject_type, "peer_pair");
    assert_eq!(pair.subject_id, small.to_string());
    assert_eq!(pair.payload["other_peer_id"], json!(big));
    assert_eq!(pair.severity, "high");
    assert!(pair.message.contains("advertise overlapping prefixes"));
    let own = overlaps
        .iter()
        .find(|f| f.payload.get("self").is_some())
        .unwrap();
    assert_eq!(own.subject_id, ours.to_string());
    assert_eq!(own.payload["self"], json!(true));
    assert!(own.message.contains("overlaps our own prefix fd00:9::/48"));
    for quiet in [disjoint_a, disjoint_b] {
        assert!(
            overlaps
                .iter()
                .all(|f| f.subject_id != quiet.to_string()
                    && f.payload["other_peer_id"] != json!(quiet)),
            "disjoint /48s must not overlap"
        );
    }
    // Containment is an equi-join on truncated prefixes, never a nested loop over pairs.
    let plan = powernode_store::governance::explain_overlap(&mut db.conn()).unwrap();
    assert!(
        plan.lines()
            .any(|l| (l.contains("Hash Cond") || l.contains("Merge Cond"))
                && l.contains("set_masklen")),
        "{plan}"
    );

    let first_pair = (*pair).clone();
    nothing_new(&app, &token, &first).await;
    exec(
        &db,
        &format!("UPDATE peers SET status = 'revoked' WHERE id = '{inside}'"),
    );
    resolved(&scan(&app, &token).await, &first_pair);
}

fn exec_on(conn: &mut diesel::PgConnection, sql: &str) {
    diesel::sql_query(sql).execute(conn).unwrap();
}

#[tokio::test]
async fn certificates_ending_soon_or_ended_are_found_and_a_renewed_predecessor_is_not() {
    let (a, b) = federated_pair().await;
    let a_peer = a.only_peer().await["id"].as_str().unwrap().to_owned();
    let b_peer = b.only_peer().await["id"].as_str().unwrap().to_owned();
    // Client certificates live 90 days; a 120-day window makes both directions "expiring".
    exec(
        &a.db,
        "UPDATE peer_certificates SET not_after = now() + interval '10 days 1 hour'",
    );
    let first = scan(&a.app, &a.admin).await;
    let expiring = of_kind(&first, "peer_cert_expiring");
    assert_eq!(expiring.len(), 2, "{expiring:#?}");
    let directions: Vec<&str> = expiring
        .iter()
        .map(|f| f.payload["direction"].as_str().unwrap())
        .collect();
    assert!(directions.contains(&"inbound") && directions.contains(&"outbound"));
    let outbound = expiring
        .iter()
        .find(|f| f.payload["direction"] == "outbound")
        .unwrap();
    assert_eq!(outbound.severity, "medium");
    assert_eq!(outbound.subject_type, "certificate");
    assert!(outbound.message.contains(&format!(
        "expires in 10 d: powernodectl peer cert renew {a_peer}"
    )));
    nothing_new(&a.app, &a.admin, &first).await;
    // The certificate we issued ends: expired (high); the expiring one resolved.
    exec(
        &a.db,
        "UPDATE peer_certificates SET not_after = now() - interval '1 hour' WHERE direction = 'inbound'",
    );
    let ended = scan(&a.app, &a.admin).await;
    let expired = of_kind(&ended, "peer_cert_expired");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].severity, "high");
    assert!(expired[0].message.contains("expired"));

    // B renews its client certificate for A; its predecessor then ends: not a finding.
    let renewed = b
        .operator()
        .renew_peer_certificate(b_peer.parse::<Uuid>().unwrap().into())
        .await
        .unwrap();
    exec(
        &b.db,
        &format!(
            "UPDATE peer_certificates SET not_after = now() - interval '1 day'
              WHERE direction = 'outbound' AND serial <> '{}'",
            renewed.serial
        ),
    );
    let on_b = scan(&b.app, &b.admin).await;
    assert!(
        of_kind(&on_b, "peer_cert_expired").is_empty(),
        "{:#?}",
        on_b.findings
    );
}

#[tokio::test]
async fn grants_ending_without_renewal_or_without_allowlists_are_found() {
    let db = TestDb::new();
    let token = admin_token(&mut db.conn());
    let app = spawn_app(settings(&db)).await;
    let peer = insert_peer(&mut db.conn(), "active", "platform", Some(5));
    let issue = |body: serde_json::Value| {
        let app = &app;
        let token = &token;
        async move {
            let (status, issued) = app
                .post(&format!("{PEERS}/{peer}/grants"), token, body)
                .await;
            assert_eq!(status, 201, "{issued}");
            issued["data"]["grant"]["id"].as_str().unwrap().to_owned()
        }
    };
    let short = issue(
        json!({"resource_kind": "sdwan_config", "permission_scopes": ["read"], "ttl_days": 3,
        "auto_renew": false, "source_cidrs": ["10.0.0.0/8"]}),
    )
    .await;
    let renewing = issue(
        json!({"resource_kind": "sdwan_config", "permission_scopes": ["read"], "ttl_days": 3,
        "auto_renew": true, "source_cidrs": ["10.0.0.0/8"]}),
    )
    .await;
    let open = issue(json!({"resource_kind": "sdwan_config", "permission_scopes": ["read"]})).await;

    let first = scan(&app, &token).await;
    let ending = found(
        &first,
        "grant_expiring",
        &short,
        "low",
        "will not auto-renew: powernodectl grant renew",
    );
    assert!(
        of_kind(&first, "grant_expiring")
            .iter()
            .all(|f| f.subject_id != renewing),
        "an auto-renewing grant of a live peer is not a finding"
    );
    let unrestricted = found(
        &first,
        "grant_unrestricted",
        &open,
        "medium",
        "has no instance, network or source allowlist",
    );
    assert_eq!(of_kind(&first, "grant_unrestricted").len(), 1);
    nothing_new(&app, &token, &first).await;

    let client = app.operator(&token);
    client
        .renew_grant(
            short.parse::<Uuid>().unwrap().into(),
            &powernode_client::grants::RenewRequest { ttl_days: Some(30) },
        )
        .await
        .unwrap();
    client
        .revoke_grant(
            open.parse::<Uuid>().unwrap().into(),
            &powernode_client::grants::RevokeRequest {
                reason: "too wide".to_owned(),
            },
        )
        .await
        .unwrap();
    let after = scan(&app, &token).await;
    resolved(&after, ending);
    resolved(&after, unrestricted);
}

#[tokio::test]
async fn an_approval_about_to_expire_and_an_expired_proposal_token_are_found() {
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
            "UPDATE approval_requests SET expires_at = now() + interval '12 minutes' WHERE id = '{request}'"
        ),
    );
    // A proposal whose token ended (inserted like a propose would, then aged).
    let proposed = insert_peer(&mut db.conn(), "proposed", "platform", None);
    exec(
        &db,
        &format!(
            "UPDATE peers SET acceptance_token_digest = repeat('a', 64), acceptance_token_expires_at = now() - interval '2 days' WHERE id = '{proposed}'"
        ),
    );

    let first = scan(&app, &admin).await;
    let approval = found(
        &first,
        "approval_expiring",
        &request,
        "medium",
        "(system.federation_peer_revoke) expires in 11 min, then it is rejected",
    );
    assert_eq!(approval.peer_id, Some(peer));
    assert_eq!(approval.subject_type, "approval_request");
    let token = found(
        &first,
        "proposed_token_expired",
        &proposed.to_string(),
        "low",
        "acceptance token expired 2 d ago: powernodectl peer token regenerate",
    );
    nothing_new(&app, &admin, &first).await;
    let (status, _) = app
        .post(
            &format!("/api/v1/ai/autonomy/approvals/{request}/reject"),
            &admin,
            json!({"comments": "no"}),
        )
        .await;
    assert_eq!(status, 200);
    exec(
        &db,
        &format!(
            "UPDATE peers SET acceptance_token_expires_at = now() + interval '1 day' WHERE id = '{proposed}'"
        ),
    );
    let after = scan(&app, &admin).await;
    resolved(&after, approval);
    resolved(&after, token);
}

#[tokio::test]
async fn reports_persist_with_counts_an_event_and_routes_and_need_the_right_permission() {
    let db = TestDb::new();
    let admin = admin_token(&mut db.conn());
    let reader = create_operator(
        &mut db.conn(),
        "reader",
        &[powernode_domain::Permission::FederationRead],
    );
    let app = spawn_app(settings(&db)).await;
    let (status, body) = app
        .get(
            "/api/v1/system/federation/governance/reports/latest",
            &reader,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("powernodectl governance scan")
    );
    let (status, body) = app.post(SCAN, &reader, json!(null)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["details"]["required_permission"],
        "system.federation.manage"
    );

    let stuck = insert_peer(&mut db.conn(), "accepted", "platform", None);
    exec(
        &db,
        &format!(
            "UPDATE peers SET status_changed_at = now() - interval '2 hours' WHERE id = '{stuck}'"
        ),
    );
    let by_operator = scan(&app, &admin).await;
    assert_eq!(by_operator.trigger, "operator");
    assert_eq!(by_operator.counts.high, 1);
    // The schedule's scan through the worker API.
    let by_schedule = app.worker_api().governance_scan().await.unwrap();
    assert_eq!(by_schedule.trigger, "schedule");
    assert_eq!(by_schedule.requested_by, None);
    assert_eq!(by_schedule.new, 0);
    let reader_client = app.operator(&reader);
    let latest = reader_client.governance_latest().await.unwrap();
    assert_eq!(latest.id, by_schedule.id);
    let one = reader_client
        .governance_report(by_operator.id)
        .await
        .unwrap();
    assert_eq!(one.findings, by_operator.findings);
    let list = reader_client
        .governance_reports(&powernode_client::governance::ReportsQuery { limit: Some(5) })
        .await
        .unwrap();
    assert_eq!(
        list.iter().map(|r| r.id).collect::<Vec<_>>(),
        [by_schedule.id, by_operator.id]
    );
    assert_eq!(list[1].new, 1);
    let (status, body) = app
        .get(
            "/api/v1/system/federation/governance/reports?limit=0",
            &reader,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("limit must be 1-100"))
    );
    let (status, _) = app
        .get(
            &format!(
                "/api/v1/system/federation/governance/reports/{}",
                Uuid::new_v4()
            ),
            &reader,
        )
        .await;
    assert_eq!(status, 404);

    let events = reader_client
        .events(&powernode_client::events::EventsQuery {
            source: Some("governance".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e.kind == "governance.scan_completed" && e.severity == "high")
    );
    assert_eq!(events[1].payload["report_id"], json!(by_operator.id));
    assert_eq!(events[1].payload["counts"]["high"], 1);
}

#[tokio::test]
async fn retention_deletes_exactly_the_old_rows_of_each_class_in_batches() {
    let db = TestDb::new();
    let token = admin_token(&mut db.conn());
    let app = spawn_app(settings(&db)).await;
    // 25,000 old rows: 24,990 low/medium past 90 days and 10 high/critical past 365 days.
    exec(
        &db,
        "INSERT INTO fleet_events (id, kind, severity, source, emitted_at)
         SELECT gen_random_uuid(), 'test.old', CASE WHEN g % 2 = 0 THEN 'low' ELSE 'medium' END, 'test',
                now() - interval '91 days' - g * interval '1 second'
           FROM generate_series(1, 24990) g;
         INSERT INTO fleet_events (id, kind, severity, source, emitted_at)
         SELECT gen_random_uuid(), 'test.old', CASE WHEN g % 2 = 0 THEN 'high' ELSE 'critical' END, 'test',
                now() - interval '366 days'
           FROM generate_series(1, 10) g;
         -- kept: high/critical under a year, anything recent
         INSERT INTO fleet_events (id, kind, severity, source, emitted_at)
         SELECT gen_random_uuid(), 'test.kept', CASE WHEN g % 2 = 0 THEN 'high' ELSE 'critical' END, 'test',
                now() - interval '200 days'
           FROM generate_series(1, 40) g;
         INSERT INTO fleet_events (id, kind, severity, source, emitted_at)
         SELECT gen_random_uuid(), 'test.kept', 'low', 'test', now() - interval '89 days'
           FROM generate_series(1, 30) g;",
    );
    // A report past 30 days, a fresh one; an idempotency key past 24 h, a fresh one.
    scan(&app, &token).await;
    scan(&app, &token).await;
    exec(
        &db,
        "UPDATE governance_reports SET finished_at = now() - interval '31 days'
          WHERE id = (SELECT id FROM governance_reports ORDER BY finished_at LIMIT 1)",
    );
    let client = app.operator(&token).with_idempotency_keys("retention");
    client.governance_scan().await.unwrap();
    client.governance_scan().await.unwrap();
    exec(
        &db,
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours'
          WHERE key = (SELECT key FROM idempotency_keys ORDER BY key LIMIT 1)",
    );

    let outcome = app.worker_api().event_retention().await.unwrap();
    assert_eq!(outcome.deleted, 25_000);
    assert_eq!(outcome.batches, 3);
    assert_eq!(outcome.governance_reports_deleted, 1);
    assert_eq!(outcome.idempotency_keys_deleted, 1);
    let count = |sql: &str| -> i64 {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(sql))
            .get_result(&mut db.conn())
            .unwrap()
    };
    assert_eq!(
        count("(SELECT count(*) FROM fleet_events WHERE kind = 'test.old')"),
        0
    );
    assert_eq!(
        count("(SELECT count(*) FROM fleet_events WHERE kind = 'test.kept')"),
        70
    );
    assert_eq!(count("(SELECT count(*) FROM governance_reports)"), 3);
    assert_eq!(count("(SELECT count(*) FROM idempotency_keys)"), 1);
    // A second run has nothing to do.
    let again = app.worker_api().event_retention().await.unwrap();
    assert_eq!((again.deleted, again.batches), (0, 0));

    // The batch's inner select is a range scan of the emitted_at index (shown with sequential
    // scans off, as on a large table where the old rows are a small tail).
    let mut conn = db.conn();
    exec_on(&mut conn, "SET enable_seqscan = off");
    let plan = powernode_store::events::explain_retention(&mut conn, 90, 365).unwrap();
    assert!(plan.contains("fleet_events_emitted_at"), "{plan}");
    assert!(plan.contains("Index Cond: (emitted_at <"), "{plan}");
}
