//! Renders the API's answers as tables (or `--json`). Answers arrive typed from
//! `powernode-client`; tables read them by field name from their JSON form, so a column shows
//! exactly what the API sent.

use comfy_table::{Table, presets::NOTHING};
use serde::Serialize;
use serde_json::Value;

/// Renders API data as tables or JSON.
pub struct Output {
    pub json: bool,
}

/// A typed answer as the JSON the API sent.
pub fn value<T: Serialize>(answer: &T) -> Value {
    serde_json::to_value(answer).unwrap_or(Value::Null)
}

pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(NOTHING);
    t.set_header(header.iter().map(|h| h.to_uppercase()));
    t
}

impl Output {
    pub fn print_json(&self, v: &Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
        );
    }

    pub fn peers(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        let mut t = table(&[
            "id",
            "status",
            "kind",
            "role",
            "remote_instance_url",
            "last_heartbeat_at",
            "stale",
        ]);
        for p in data.as_array().into_iter().flatten() {
            t.add_row(
                [
                    "id",
                    "status",
                    "peer_kind",
                    "spawn_role",
                    "remote_instance_url",
                    "last_heartbeat_at",
                    "heartbeat_stale",
                ]
                .map(|k| text(&p[k])),
            );
        }
        println!("{t}");
    }

    pub fn peer(&self, p: &Value) {
        if self.json {
            return self.print_json(p);
        }
        let keys = [
            "id",
            "status",
            "status_changed_at",
            "allowed_transitions",
            "origin",
            "remote_instance_url",
            "remote_instance_id",
            "peer_kind",
            "spawn_role",
            "spawn_mode",
            "remote_prefix_advertisement",
            "last_heartbeat_at",
            "heartbeat_stale",
            "degraded_reason",
            "acceptance_pending",
            "acceptance_token_expires_at",
            "signed_at",
            "last_handshake_at",
            "last_outbound_heartbeat_at",
            "last_outbound_error",
            "outbound_failing_since",
            "remote_ca_sha256",
            "contract_version_agreed",
            "endpoints",
            "extension_slugs",
            "capabilities",
            "metadata",
            "certificates",
            "created_at",
            "updated_at",
        ];
        let mut t = Table::new();
        t.load_style(NOTHING);
        for k in keys {
            t.add_row([k.to_owned(), text(&p[k])]);
        }
        println!("{t}");
    }

    pub fn with_token(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        self.peer(&data["peer"]);
        match data["acceptance_token"].as_str() {
            Some(token) => {
                println!();
                println!(
                    "Acceptance token (shown once; expires {}). Hand it to the other instance's operator over a synchronous channel:",
                    text(&data["acceptance_token_expires_at"])
                );
                println!("{token}");
            }
            None => println!("\nDrill peer: no acceptance token."),
        }
    }

    pub fn events(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        let mut t = table(&[
            "emitted_at",
            "kind",
            "severity",
            "source",
            "peer_id",
            "payload",
        ]);
        for e in data.as_array().into_iter().flatten() {
            t.add_row(
                [
                    "emitted_at",
                    "kind",
                    "severity",
                    "source",
                    "peer_id",
                    "payload",
                ]
                .map(|k| text(&e[k])),
            );
        }
        println!("{t}");
    }

    pub fn operators(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        let mut t = table(&["id", "name", "permissions", "disabled_at", "last_used_at"]);
        for o in data.as_array().into_iter().flatten() {
            let perms = o["permissions"]
                .as_array()
                .map(|a| a.iter().map(text).collect::<Vec<_>>().join(","))
                .unwrap_or_default();
            t.add_row([
                text(&o["id"]),
                text(&o["name"]),
                perms,
                text(&o["disabled_at"]),
                text(&o["last_used_at"]),
            ]);
        }
        println!("{t}");
    }

    pub fn operator_token(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        self.operators(&Value::Array(vec![data["operator"].clone()]));
        println!("\nToken (shown once):");
        println!("{}", text(&data["token"]));
    }

    pub fn worker_status(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        let keys = [
            "schedule",
            "job",
            "interval_secs",
            "last_outcome",
            "last_success_at",
            "last_failure_at",
            "last_error",
            "runs",
            "failures",
            "last_worker",
        ];
        let mut t = table(&keys);
        for s in data.as_array().into_iter().flatten() {
            t.add_row(keys.map(|k| text(&s[k])));
        }
        println!("{t}");
    }

    pub fn grants(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        let keys = [
            "id",
            "peer_id",
            "resource_kind",
            "resource_id",
            "permission_scopes",
            "expires_at",
            "auto_renew",
            "revoked_at",
        ];
        let mut t = table(&keys);
        for g in data.as_array().into_iter().flatten() {
            t.add_row(keys.map(|k| text(&g[k])));
        }
        println!("{t}");
    }

    /// A gated call answered 202: print the queued request and return true.
    pub fn queued(&self, data: &Value) -> bool {
        if data.get("approval_request").is_none() {
            return false;
        }
        if self.json {
            self.print_json(data);
            return true;
        }
        println!("{}", text(&data["message"]));
        self.approval(&data["approval_request"]);
        println!(
            "\nQueued until an operator with system.infra_tasks.control approves it \
             (`powernodectl approvals approve {}`) before {}; the SDWAN Manager runs it on its next tick.",
            text(&data["approval_request"]["id"]),
            text(&data["approval_request"]["expires_at"])
        );
        true
    }

    pub fn approvals(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        let keys = [
            "id",
            "action",
            "status",
            "requested_by",
            "expires_at",
            "decided_by",
            "execution_status",
        ];
        let mut t = table(&keys);
        for r in data.as_array().into_iter().flatten() {
            t.add_row(keys.map(|k| text(&r[k])));
        }
        println!("{t}");
    }

    pub fn approval(&self, r: &Value) {
        if self.json {
            return self.print_json(r);
        }
        let keys = [
            "id",
            "action",
            "params",
            "status",
            "requested_by",
            "created_at",
            "expires_at",
            "decided_by",
            "decided_at",
            "comments",
            "execution_status",
            "execution_error",
            "executed_at",
            "result",
            "result_claimable",
        ];
        let mut t = Table::new();
        t.load_style(NOTHING);
        for k in keys {
            t.add_row([k.to_owned(), text(&r[k])]);
        }
        println!("{t}");
    }

    pub fn agents(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        let keys = [
            "name",
            "status",
            "interval_secs",
            "status_reason",
            "updated_at",
        ];
        let mut t = table(&keys);
        for a in data.as_array().into_iter().flatten() {
            t.add_row(keys.map(|k| text(&a[k])));
        }
        println!("{t}");
    }

    pub fn policies(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        let keys = [
            "action",
            "policy",
            "effective_policy",
            "timeout_seconds",
            "timeout_action",
            "lowered_until",
            "lowered_reason",
        ];
        let mut t = table(&keys);
        for p in data.as_array().into_iter().flatten() {
            t.add_row([
                text(&p["action"]),
                text(&p["policy"]),
                text(&p["effective_policy"]),
                text(&p["timeout_seconds"]),
                text(&p["timeout_action"]),
                text(&p["lowered"]["until"]),
                text(&p["lowered"]["reason"]),
            ]);
        }
        println!("{t}");
    }

    pub fn done(&self, data: &Value, message: &str) {
        if self.json {
            return self.print_json(data);
        }
        println!("{message}");
    }

    /// A governance report: a summary line, then the findings grouped by severity (worst
    /// first), then what resolved since the previous report.
    pub fn report(&self, r: &Value) {
        if self.json {
            return self.print_json(r);
        }
        let c = &r["counts"];
        let findings = r["findings"].as_array().cloned().unwrap_or_default();
        let new: Vec<&str> = r["new"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let resolved = r["resolved_findings"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        println!(
            "Governance report {} (trigger {}, finished {})",
            text(&r["id"]),
            text(&r["trigger"]),
            text(&r["finished_at"])
        );
        println!(
            "{} finding(s): critical {}, high {}, medium {}, low {}; {} new, {} resolved since the previous report",
            findings.len(),
            text(&c["critical"]),
            text(&c["high"]),
            text(&c["medium"]),
            text(&c["low"]),
            new.len(),
            resolved.len()
        );
        for severity in ["critical", "high", "medium", "low"] {
            let group: Vec<&Value> = findings
                .iter()
                .filter(|f| f["severity"] == severity)
                .collect();
            if group.is_empty() {
                continue;
            }
            println!("\n{} ({})", severity.to_uppercase(), group.len());
            let mut t = table(&["kind", "subject", "first seen", "", "message"]);
            for f in group {
                let fresh = f["fingerprint"]
                    .as_str()
                    .is_some_and(|fp| new.contains(&fp));
                t.add_row([
                    text(&f["kind"]),
                    format!("{} {}", text(&f["subject_type"]), text(&f["subject_id"])),
                    text(&f["first_seen_at"]),
                    if fresh {
                        "NEW".to_owned()
                    } else {
                        String::new()
                    },
                    text(&f["message"]),
                ]);
            }
            println!("{t}");
        }
        if !resolved.is_empty() {
            println!("\nRESOLVED ({})", resolved.len());
            let mut t = table(&["kind", "subject", "severity", "message"]);
            for f in &resolved {
                t.add_row([
                    text(&f["kind"]),
                    format!("{} {}", text(&f["subject_type"]), text(&f["subject_id"])),
                    text(&f["severity"]),
                    text(&f["message"]),
                ]);
            }
            println!("{t}");
        }
        if findings.is_empty() && resolved.is_empty() {
            println!("\nNo findings: nothing to do.");
        }
    }

    pub fn reports(&self, data: &Value) {
        if self.json {
            return self.print_json(data);
        }
        let mut t = table(&[
            "id",
            "trigger",
            "finished_at",
            "high",
            "medium",
            "low",
            "new",
            "resolved",
        ]);
        for r in data.as_array().into_iter().flatten() {
            t.add_row([
                text(&r["id"]),
                text(&r["trigger"]),
                text(&r["finished_at"]),
                text(&r["counts"]["high"]),
                text(&r["counts"]["medium"]),
                text(&r["counts"]["low"]),
                text(&r["new"]),
                text(&r["resolved"]),
            ]);
        }
        println!("{t}");
    }

    /// The doctor: one line per check (✓ ok, ! warn, ✗ fail) with its evidence; a check that
    /// is not ok adds its next step and runbook section.
    pub fn diagnosis(&self, d: &Value) {
        if self.json {
            return self.print_json(d);
        }
        let subject = match d["peer_id"].as_str() {
            Some(id) => format!("peer {id}"),
            None => "this instance".to_owned(),
        };
        println!(
            "Doctor for {subject}: {} (at {})",
            text(&d["status"]).to_uppercase(),
            text(&d["ran_at"])
        );
        let checks = d["checks"].as_array().cloned().unwrap_or_default();
        let width = checks
            .iter()
            .filter_map(|c| c["check"].as_str())
            .map(str::len)
            .max()
            .unwrap_or(0);
        for c in &checks {
            let mark = match c["status"].as_str() {
                Some("ok") => "✓",
                Some("warn") => "!",
                _ => "✗",
            };
            println!(
                "{mark} {:<width$}  {}",
                text(&c["check"]),
                text(&c["evidence"])
            );
            if c["status"] != "ok" {
                if let Some(next) = c["next_step"].as_str() {
                    println!("  {:<width$}  → {next}", "");
                }
                println!("  {:<width$}  runbook: {}", "", text(&c["runbook"]));
            }
        }
    }
}
