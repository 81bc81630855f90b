//! The configuration reference cannot drift from the settings structs (issue #7).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use powernode_domain::config::{drift, render_markdown};
use powernode_tests::workspace_root;

#[test]
fn every_setting_is_documented_with_its_real_default() {
    let api = drift(
        &powernode_api::settings::defaults_json(),
        powernode_api::settings::REFERENCE,
        &[],
    );
    assert!(api.is_empty(), "powernode-api reference drifted: {api:#?}");
    let worker_docs: Vec<_> = powernode_worker::settings::REFERENCE
        .iter()
        .copied()
        .filter(|d| !d.key.starts_with("schedules__"))
        .collect();
    let worker = drift(
        &powernode_worker::settings::defaults_json(),
        &worker_docs,
        &[],
    );
    assert!(
        worker.is_empty(),
        "powernode-worker reference drifted: {worker:#?}"
    );
}

#[test]
fn docs_configuration_md_is_the_generated_reference() {
    let doc = std::fs::read_to_string(workspace_root().join("docs/configuration.md")).unwrap();
    for (title, table) in [
        ("powernode-api", powernode_api::settings::REFERENCE),
        ("powernode-worker", powernode_worker::settings::REFERENCE),
    ] {
        assert!(
            doc.contains(&render_markdown(title, table)),
            "docs/configuration.md is out of date for {title}: run `scripts/dev docs`"
        );
    }
}

#[test]
fn config_prints_the_effective_settings_with_secrets_redacted() {
    let out = std::process::Command::new(powernode_tests::bin("powernode-api"))
        .arg("config")
        .env_clear()
        .env(
            "POWERNODE_DATABASE_URL",
            "postgres://app:hunter2@db.example.com:5432/pn",
        )
        .env("POWERNODE_WORKER_TOKEN", "w".repeat(40))
        .env("POWERNODE_STALE_AFTER_SECS", "600")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("POWERNODE_STALE_AFTER_SECS=600"), "{text}");
    assert!(text.contains("POWERNODE_WORKER_TOKEN=[REDACTED]"), "{text}");
    assert!(
        text.contains("POWERNODE_DATABASE_URL=postgres://app:REDACTED@db.example.com:5432/pn"),
        "{text}"
    );
    assert!(text.contains("POWERNODE_REDIS_URL=(not set)"), "{text}");
    assert!(!text.contains("hunter2") && !text.contains(&"w".repeat(40)));
    // Incomplete configuration: printed anyway, and the exit code says it will not start.
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("this configuration will not start: POWERNODE_REDIS_URL is not set")
    );
}
