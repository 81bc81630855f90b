//! deploy/: systemd units verified by systemd itself, and the environment file example.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use powernode_domain::config::render_env;
use powernode_tests::{bin, workspace_root};

/// SPEC §11: `systemd-analyze verify` on copies whose ExecStart points at the built binaries,
/// using the instance `powernode-worker@default.service`, not the bare template.
#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let units = workspace_root().join("deploy/systemd");
    let dir = std::env::temp_dir().join(format!("pn-units-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin_dir = bin("powernode-api")
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for (source, target) in [
        ("powernode-migrate.service", "powernode-migrate.service"),
        ("powernode-api.service", "powernode-api.service"),
        ("powernode-worker@.service", "powernode-worker@.service"),
        (
            "powernode-worker@.service",
            "powernode-worker@default.service",
        ),
    ] {
        let text = std::fs::read_to_string(units.join(source)).unwrap();
        assert!(text.contains("ExecStart=/usr/local/bin/"), "{source}");
        std::fs::write(
            dir.join(target),
            text.replace("/usr/local/bin/", &format!("{bin_dir}/")),
        )
        .unwrap();
    }
    let out = std::process::Command::new("systemd-analyze")
        .args([
            "verify",
            "--man=no",
            "powernode-migrate.service",
            "powernode-api.service",
            "powernode-worker@default.service",
        ])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("systemd-analyze not runnable ({e}); `scripts/dev test` installs systemd")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warned:\n{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn units_are_hardened_ordered_and_share_one_environment_file() {
    let units = workspace_root().join("deploy/systemd");
    for unit in [
        "powernode-migrate.service",
        "powernode-api.service",
        "powernode-worker@.service",
    ] {
        let text = std::fs::read_to_string(units.join(unit)).unwrap();
        for line in [
            "EnvironmentFile=/etc/powernode/powernode.env",
            "User=powernode",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "CapabilityBoundingSet=",
        ] {
            assert!(text.lines().any(|l| l == line), "{unit} lacks {line}");
        }
        if unit != "powernode-migrate.service" {
            assert!(
                text.contains("Requires=powernode-migrate.service"),
                "{unit}"
            );
            assert!(text.contains("After=powernode-migrate.service"), "{unit}");
            assert!(text.contains("Restart=on-failure"), "{unit}");
            assert!(
                text.contains("StateDirectory=powernode")
                    && text.contains("LogsDirectory=powernode")
            );
        }
    }
}

#[test]
fn the_environment_example_lists_every_setting() {
    let example =
        std::fs::read_to_string(workspace_root().join("deploy/powernode.env.example")).unwrap();
    assert!(example.contains(&render_env(
        "powernode-api",
        powernode_api::settings::REFERENCE,
        &[]
    )));
    assert!(
        example.contains(&render_env(
            "powernode-worker (shares the variables above with the API)",
            powernode_worker::settings::REFERENCE,
            powernode_worker::settings::SHARED_WITH_API
        )),
        "deploy/powernode.env.example is out of date: run `scripts/dev docs`"
    );
    for shared in powernode_worker::settings::SHARED_WITH_API {
        assert!(
            powernode_api::settings::REFERENCE
                .iter()
                .any(|d| d.key == *shared),
            "{shared} is listed as shared but the API has no such setting"
        );
    }
}
