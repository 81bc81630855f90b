//! Store tests against the real PostgreSQL, a fresh database per test.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use diesel::prelude::*;
use powernode_domain::PeerStatus;
use powernode_store::{migrate, peers};
use powernode_tests::{TestDb, insert_peer, workspace_root};

#[test]
fn migrations_apply_revert_and_reapply_cleanly() {
    let db = TestDb::empty();
    let mut conn = db.conn();
    let applied = migrate::run_pending(&mut conn).unwrap();
    assert!(applied.len() >= 2, "{applied:?}");
    assert!(migrate::pending(&mut conn).unwrap().is_empty());
    migrate::revert_all(&mut conn).unwrap();
    assert_eq!(migrate::pending(&mut conn).unwrap().len(), applied.len());
    let reapplied = migrate::run_pending(&mut conn).unwrap();
    assert_eq!(reapplied, applied);
}

#[test]
fn schema_rs_matches_diesel_print_schema() {
    let db = TestDb::new();
    let diesel = std::env::var("DIESEL_BIN").unwrap_or_else(|_| {
        workspace_root()
            .join(".tools/bin/diesel")
            .to_string_lossy()
            .into_owned()
    });
    let output = std::process::Command::new(&diesel)
        .args(["print-schema", "--database-url", &db.url])
        .current_dir(workspace_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {diesel} ({e}): `scripts/dev tools` installs it"));
    assert!(
        output.status.success(),
        "diesel print-schema failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated = String::from_utf8(output.stdout).unwrap();
    let committed =
        std::fs::read_to_string(workspace_root().join("crates/store/src/schema.rs")).unwrap();
    assert_eq!(
        committed, generated,
        "crates/store/src/schema.rs drifted from the migrations: regenerate it with \
         `.tools/bin/diesel print-schema > crates/store/src/schema.rs`"
    );
}

#[test]
fn peers_round_trip_into_domain_types() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let id = insert_peer(&mut conn, "active", "platform", Some(10));
    let peer = peers::find(&mut conn, id).unwrap().unwrap();
    assert_eq!(peer.status, PeerStatus::Active);
    assert!(peer.last_heartbeat_at.is_some());
    assert!(
        peers::find(&mut conn, uuid::Uuid::new_v4())
            .unwrap()
            .is_none()
    );
    let active = peers::list(&mut conn, Some(PeerStatus::Active)).unwrap();
    assert_eq!(active.len(), 1);
    assert!(
        peers::list(&mut conn, Some(PeerStatus::Revoked))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn the_database_refuses_an_unknown_status_or_a_platform_peer_without_role() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let bad_status = diesel::sql_query(
        "INSERT INTO peers (id, origin, remote_instance_url, peer_kind, spawn_role, status)
         VALUES (gen_random_uuid(), 'proposed_here', 'https://x.example.com', 'platform', 'parent', 'zombie')",
    )
    .execute(&mut conn);
    assert!(bad_status.is_err());
    let no_role = diesel::sql_query(
        "INSERT INTO peers (id, origin, remote_instance_url, peer_kind, status)
         VALUES (gen_random_uuid(), 'proposed_here', 'https://x.example.com', 'platform', 'proposed')",
    )
    .execute(&mut conn);
    assert!(no_role.is_err());
}

#[test]
fn the_idle_sweep_reads_an_index_not_the_table() {
    let db = TestDb::new();
    let mut conn = db.conn();
    diesel::sql_query(
        "INSERT INTO peers (id, origin, remote_instance_url, peer_kind, spawn_role, status, last_heartbeat_at)
         SELECT gen_random_uuid(), 'proposed_here', 'https://p' || g || '.example.com', 'platform',
                'symmetric', CASE WHEN g % 10 = 0 THEN 'active' ELSE 'revoked' END, now()
           FROM generate_series(1, 20000) g",
    )
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query("ANALYZE peers")
        .execute(&mut conn)
        .unwrap();
    let plan = peers::explain_sweep(&mut conn, 300).unwrap();
    assert!(plan.contains("peers_active_heartbeat_age"), "{plan}");
    assert!(!plan.contains("Seq Scan on peers"), "{plan}");
}

#[test]
fn a_heartbeat_batch_applies_only_live_certificates_of_active_peers() {
    use powernode_store::certificates::{self, INBOUND, NewCertificate, OUTBOUND};
    let db = TestDb::new();
    let mut conn = db.conn();
    let now = powernode_store::database_now(&mut conn).unwrap();
    let cert = |conn: &mut PgConnection, peer, direction, fp: &str| {
        certificates::insert(
            conn,
            &NewCertificate {
                peer_id: peer,
                direction,
                serial: &fp[..16],
                subject: "CN=fed:x",
                fingerprint_sha256: fp,
                cert_pem: "-",
                key_sealed: None,
                not_before: now,
                not_after: now + time::Duration::days(90),
            },
        )
        .unwrap();
    };
    let (live, revoked, outbound, suspended) = (
        "a".repeat(64),
        "b".repeat(64),
        "c".repeat(64),
        "d".repeat(64),
    );
    let active = insert_peer(&mut conn, "active", "platform", Some(600));
    cert(&mut conn, active, INBOUND, &live);
    cert(&mut conn, active, INBOUND, &revoked);
    cert(&mut conn, active, OUTBOUND, &outbound);
    diesel::sql_query(format!(
        "UPDATE peer_certificates SET revoked_at = now() WHERE fingerprint_sha256 = '{revoked}'"
    ))
    .execute(&mut conn)
    .unwrap();
    let off = insert_peer(&mut conn, "suspended", "platform", Some(600));
    cert(&mut conn, off, INBOUND, &suspended);

    let batch = [live.clone(), revoked, outbound, suspended, "e".repeat(64)];
    let (at, applied) = peers::heartbeat_active_batch(&mut conn, &batch).unwrap();
    assert_eq!(applied, vec![live]);
    let peer = peers::find(&mut conn, active).unwrap().unwrap();
    assert_eq!(peer.status, PeerStatus::Active);
    assert_eq!(peer.last_heartbeat_at, Some(at));
    let other = peers::find(&mut conn, off).unwrap().unwrap();
    assert!(other.last_heartbeat_at.unwrap() < at);
    // Nothing applied is an empty list, not an error.
    let (_, none) = peers::heartbeat_active_batch(&mut conn, &[]).unwrap();
    assert!(none.is_empty());
}

#[test]
fn a_lookup_batch_answers_each_call_in_order() {
    use powernode_store::certificates::{self, INBOUND, NewCertificate};
    use powernode_store::grants::{self, LookupRequest};
    let db = TestDb::new();
    let mut conn = db.conn();
    let now = powernode_store::database_now(&mut conn).unwrap();
    let peer = insert_peer(&mut conn, "active", "platform", Some(5));
    let fp = "f".repeat(64);
    certificates::insert(
        &mut conn,
        &NewCertificate {
            peer_id: peer,
            direction: INBOUND,
            serial: "01",
            subject: "CN=fed:x",
            fingerprint_sha256: &fp,
            cert_pem: "-",
            key_sealed: None,
            not_before: now,
            not_after: now + time::Duration::days(90),
        },
    )
    .unwrap();
    grants::put_resource(
        &mut conn,
        "sdwan_config",
        "r1",
        &serde_json::json!({"mtu": 1420}),
        None,
    )
    .unwrap();
    let request = |fingerprint: &str, id: Option<&str>| LookupRequest {
        fingerprint: fingerprint.to_owned(),
        grant_digest: Some("0".repeat(64)),
        kind: "sdwan_config".to_owned(),
        resource_id: id.map(str::to_owned),
    };
    let answers = grants::resource_lookup_batch(
        &mut conn,
        &[
            request(&fp, Some("r1")),
            request(&"9".repeat(64), Some("r1")),
            request(&fp, None),
        ],
    )
    .unwrap();
    assert_eq!(answers.len(), 3);
    let first = answers[0].certificate.as_ref().unwrap();
    assert_eq!((first.peer_id, first.revoked), (peer, false));
    assert_eq!(first.peer_status.as_deref(), Some("active"));
    let document: serde_json::Value =
        serde_json::from_str(answers[0].resource.as_ref().unwrap().document.get()).unwrap();
    assert_eq!(document["mtu"], 1420);
    assert!(answers[0].grant.is_none());
    assert!(answers[1].certificate.is_none());
    assert!(answers[2].resource.is_none());
    assert!(
        grants::resource_lookup_batch(&mut conn, &[])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn the_sweeps_events_get_time_ordered_ids_and_the_event_queries_read_indexes() {
    use powernode_store::events::{self, EventFilter};
    let db = TestDb::new();
    let mut conn = db.conn();
    let stale: Vec<_> = (0..3)
        .map(|_| insert_peer(&mut conn, "active", "platform", Some(600)))
        .collect();
    let outcome = peers::sweep_stale(&mut conn, 300, "heartbeat stale (>5 minutes)").unwrap();
    assert_eq!(outcome.degraded_ids.len(), 3);
    let recorded = powernode_tests::sweep_events(&mut conn);
    assert_eq!(recorded.len(), 3);
    for e in &recorded {
        assert!(stale.contains(&e.peer_id.unwrap()));
        // UUIDv7 (RFC 9562): version 7, RFC variant, the event's own millisecond in front.
        assert_eq!(e.id.get_version_num(), 7, "{}", e.id);
        assert_eq!(e.id.get_variant(), uuid::Variant::RFC4122);
        let (secs, nanos) = e.id.get_timestamp().unwrap().to_unix();
        let id_ms = i128::from(secs) * 1000 + i128::from(nanos / 1_000_000);
        assert_eq!(id_ms, e.emitted_at.unix_timestamp_nanos() / 1_000_000);
    }
    // Distinct ids within one millisecond (the random bits).
    let ids: std::collections::HashSet<_> = recorded.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 3);

    // SPEC §8's queries on a history large enough for the planner to choose: each one an
    // index scan, never a scan of the table.
    diesel::sql_query(
        "INSERT INTO fleet_events (id, kind, severity, source, peer_id, payload, emitted_at)
         SELECT powernode_uuid_v7(now() - g * interval '1 minute'),
                CASE WHEN g % 4 = 0 THEN 'federation.peer.suspended' ELSE 'federation.peer.active' END,
                'low', CASE WHEN g % 4 = 0 THEN 'federation_peer' ELSE 'federation_heartbeat' END,
                gen_random_uuid(), '{}', now() - g * interval '1 minute'
           FROM generate_series(1, 20000) g",
    )
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query("ANALYZE fleet_events")
        .execute(&mut conn)
        .unwrap();
    let base = EventFilter {
        limit: 50,
        ..EventFilter::default()
    };
    for (filter, index) in [
        (base.clone(), Some("fleet_events_emitted_at")),
        (
            EventFilter {
                source: Some("federation_peer".to_owned()),
                ..base.clone()
            },
            None,
        ),
        (
            EventFilter {
                kind: Some("federation.peer.suspended".to_owned()),
                ..base.clone()
            },
            None,
        ),
        (
            EventFilter {
                peer_id: Some(stale[0]),
                ..base.clone()
            },
            Some("fleet_events_peer"),
        ),
        (
            EventFilter {
                since: Some(time::OffsetDateTime::now_utc() - time::Duration::hours(1)),
                ..base.clone()
            },
            Some("fleet_events_emitted_at"),
        ),
    ] {
        // A rare value reads its own index; a common one may walk the newest-first index and
        // filter: either way an index, never the table.
        let plan = events::explain_list(&mut conn, &filter).unwrap();
        assert!(
            plan.contains("Index Scan using fleet_events_"),
            "{filter:?}: {plan}"
        );
        assert!(!plan.contains("Seq Scan"), "{filter:?}: {plan}");
        // The index gives the order (emitted_at, id): no rows read only to be sorted away
        // (by peer, the few events of one peer are sorted).
        if filter.peer_id.is_none() {
            assert!(!plan.contains("Sort"), "{filter:?}: {plan}");
        }
        if let Some(index) = index {
            assert!(plan.contains(index), "{filter:?}: {plan}");
        }
    }
    let retention = events::explain_retention(&mut conn, 90, 365).unwrap();
    assert!(retention.contains("fleet_events_emitted_at"), "{retention}");
}
