//! `/metrics` on the operator listener (its own test binary: the recorder is process-wide).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use powernode_tests::{TestDb, insert_peer, settings, spawn_app};

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_after_a_sweep_count_it_and_show_peers_by_status() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let deleted = insert_peer(&mut conn, "active", "platform", Some(900));
    insert_peer(&mut conn, "active", "platform", None);
    insert_peer(&mut conn, "active", "platform", Some(30));
    insert_peer(&mut conn, "suspended", "platform", Some(900));
    let app = spawn_app(settings(&db)).await;
    assert!(app.sweep().await.status().is_success());

    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    let expect = [
        (
            r#"powernode_heartbeat_sweep_runs_total{outcome="succeeded"}"#,
            1.0,
        ),
        (
            r#"powernode_heartbeat_sweep_runs_total{outcome="failed"}"#,
            0.0,
        ),
        ("powernode_heartbeat_sweep_degraded_total", 2.0),
        ("powernode_heartbeat_sweep_duration_seconds_count", 1.0),
        (
            r#"powernode_peer_transitions_total{from="active",to="degraded"}"#,
            2.0,
        ),
        (r#"powernode_peers{status="degraded"}"#, 2.0),
        (r#"powernode_peers{status="active"}"#, 1.0),
        (r#"powernode_peers{status="suspended"}"#, 1.0),
        (r#"powernode_peers{status="proposed"}"#, 0.0),
        ("powernode_heartbeats_received_total", 0.0),
        ("powernode_database_up", 1.0),
    ];
    for (series, want) in expect {
        assert_eq!(value(&text, series), Some(want), "{series} in:\n{text}");
    }
    // Heartbeat age: one series per silent peer (2 degraded with a heartbeat time, 1 active).
    let ages = text
        .lines()
        .filter(|l| l.starts_with("powernode_peer_heartbeat_age_seconds{"))
        .count();
    assert_eq!(ages, 2, "{text}");
    assert!(text.contains(&format!("peer_id=\"{deleted}\"")), "{text}");

    // A deleted peer's series is gone at the next scrape.
    use diesel::RunQueryDsl;
    diesel::sql_query(format!(
        "DELETE FROM fleet_events WHERE peer_id = '{deleted}'"
    ))
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query(format!("DELETE FROM peers WHERE id = '{deleted}'"))
        .execute(&mut conn)
        .unwrap();
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains(&deleted.to_string()), "{text}");
    assert_eq!(
        text.matches("# TYPE powernode_peer_heartbeat_age_seconds gauge")
            .count(),
        1,
        "{text}"
    );
}
