//! `explain` agrees with the live decision for the same inputs, over random grants and calls,
//! against the real mTLS listener; and no grant token reaches the logs (issue #5).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::io::Write;
use std::sync::{Arc, Mutex};

use powernode_tests::federation::{PEERS, federated_pair, outbound_identity, pinned_client};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

#[derive(Clone)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Case {
    resource_id: Option<&'static str>,
    scopes: Vec<&'static str>,
    networks: Vec<&'static str>,
    cidrs: Vec<&'static str>,
    instance_listed: Option<bool>,
    call_id: &'static str,
    call_write: bool,
    call_network: Option<&'static str>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::option::of(prop::sample::select(vec!["net-1", "net-2"])),
        prop::sample::subsequence(vec!["read", "write"], 1..=2),
        prop::sample::subsequence(vec!["overlay-1", "overlay-2"], 0..=2),
        prop::sample::subsequence(vec!["127.0.0.0/8", "10.0.0.0/8"], 0..=2),
        prop::option::of(any::<bool>()),
        prop::sample::select(vec!["net-1", "net-2"]),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec!["overlay-1", "overlay-2"])),
    )
        .prop_map(
            |(
                resource_id,
                scopes,
                networks,
                cidrs,
                instance_listed,
                call_id,
                call_write,
                call_network,
            )| Case {
                resource_id,
                scopes,
                networks,
                cidrs,
                instance_listed,
                call_id,
                call_write,
                call_network,
            },
        )
}

#[tokio::test]
async fn explain_agrees_with_the_live_decision_over_random_grants() {
    let logs = Captured(Arc::new(Mutex::new(Vec::new())));
    let sink = logs.clone();
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .try_init();
    let (a, b) = federated_pair().await;
    let a_peer = a.only_peer().await;
    let peer_id = a_peer["id"].as_str().unwrap().to_owned();
    let b_instance = a_peer["remote_instance_id"].as_str().unwrap().to_owned();
    for id in ["net-1", "net-2"] {
        let (s, _) = a
            .app
            .call(
                reqwest::Method::PUT,
                &format!("/api/v1/system/federation/resources/sdwan_config/{id}"),
                Some(&a.admin),
                Some(json!({"id": id})),
            )
            .await;
        assert_eq!(s, 200);
    }
    let client = pinned_client(&a, Some(outbound_identity(&b)));
    let mut runner = TestRunner::deterministic();
    let mut tokens = Vec::new();
    for _ in 0..24 {
        let c = case().new_tree(&mut runner).unwrap().current();
        let instances: Vec<String> = match c.instance_listed {
            None => vec![],
            Some(true) => vec![b_instance.clone()],
            Some(false) => vec!["someone-else".to_owned()],
        };
        let (s, issued) = a
            .app
            .post(&format!("{PEERS}/{peer_id}/grants"), &a.admin, json!({
                "resource_kind": "sdwan_config", "resource_id": c.resource_id, "permission_scopes": c.scopes,
                "node_instance_ids": instances, "sdwan_network_ids": c.networks, "source_cidrs": c.cidrs,
            }))
            .await;
        assert_eq!(s, 201, "{issued}");
        let token = issued["data"]["token"].as_str().unwrap().to_owned();
        let grant_id = issued["data"]["grant"]["id"].as_str().unwrap().to_owned();
        let url = format!(
            "{}/api/v1/system/federation_api/resources/sdwan_config/{}",
            a.public_url, c.call_id
        );
        let mut req = if c.call_write {
            client.put(&url).json(&json!({"id": c.call_id}))
        } else {
            client.get(&url)
        };
        req = req.bearer_auth(&token);
        if let Some(n) = c.call_network {
            req = req.header("X-Sdwan-Network", n);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let live: Value = resp.json().await.unwrap();
        let (_, explained) = a
            .app
            .post(
                &format!("/api/v1/system/federation/grants/{grant_id}/explain"),
                &a.admin,
                json!({
                    "resource_kind": "sdwan_config", "resource_id": c.call_id,
                    "scope": if c.call_write { "write" } else { "read" },
                    "instance_id": b_instance, "network": c.call_network, "source_ip": "127.0.0.1",
                }),
            )
            .await;
        let allowed = explained["data"]["allowed"].as_bool().unwrap();
        assert_eq!(
            status == 200,
            allowed,
            "{c:?}: live {status} {live}, explain {explained}"
        );
        if !allowed {
            assert_eq!(status, 403, "{c:?}");
            assert_eq!(
                live["details"]["dimension"], explained["data"]["denial"]["dimension"],
                "{c:?}"
            );
            assert_eq!(live["error"], explained["data"]["denial"]["error"], "{c:?}");
        }
        tokens.push(token);
    }
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("grant denied"), "denials are logged");
    for t in &tokens {
        assert!(!text.contains(t.as_str()), "a grant token reached the logs");
    }
}
