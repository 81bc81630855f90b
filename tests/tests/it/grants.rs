//! Grants and the federation resource API over real mTLS (issue #5, in progress).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use powernode_tests::columns_containing;
use powernode_tests::federation::{PEERS, federated_pair, outbound_identity, pinned_client};
use serde_json::{Value, json};

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client.request(method, url);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn grant_checks_answer_in_spec_order_from_a_real_client_certificate() {
    let (a, b) = federated_pair().await;
    let a_peer = a.only_peer().await;
    let b_instance = a_peer["remote_instance_id"].as_str().unwrap().to_owned();
    let a_peer_id = a_peer["id"].as_str().unwrap().to_owned();
    // A publishes a document and grants B read on it, from B's instance, on overlay-1, from loopback.
    let (status, _) = a
        .app
        .call(
            reqwest::Method::PUT,
            "/api/v1/system/federation/resources/sdwan_config/net-1",
            Some(&a.admin),
            Some(json!({"v": 1})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, issued) = a
        .app
        .post(&format!("{PEERS}/{a_peer_id}/grants"), &a.admin, json!({
            "resource_kind": "sdwan_config", "resource_id": "net-1", "permission_scopes": ["read"],
            "node_instance_ids": [b_instance], "sdwan_network_ids": ["overlay-1"], "source_cidrs": ["127.0.0.0/8"]
        }))
        .await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["data"]["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("fg-"));
    let grant_id = issued["data"]["grant"]["id"].as_str().unwrap().to_owned();

    let client = pinned_client(&a, Some(outbound_identity(&b)));
    let url = |kind: &str, id: &str| {
        format!(
            "{}/api/v1/system/federation_api/resources/{kind}/{id}",
            a.public_url
        )
    };
    let net = [("X-Sdwan-Network", "overlay-1")];
    let get = reqwest::Method::GET;

    let (s, r) = call(
        &client,
        get.clone(),
        &url("sdwan_config", "net-1"),
        None,
        &net,
        None,
    )
    .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (401, Some("Bearer grant token required"))
    );
    let (s, r) = call(
        &client,
        get.clone(),
        &url("sdwan_config", "net-1"),
        Some("fg-not-a-uuid"),
        &net,
        None,
    )
    .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (401, Some("Grant token does not resolve"))
    );
    let (s, r) = call(
        &client,
        get.clone(),
        &url("sdwan_config", "net-1"),
        Some(&format!("fg-{}", uuid::Uuid::new_v4())),
        &net,
        None,
    )
    .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (401, Some("Grant token does not resolve"))
    );

    // Another peer's grant (C, proposed on A) presented by B.
    let (_, c) = a
        .app
        .post(
            PEERS,
            &a.admin,
            json!({"remote_instance_url": "https://c.example.com", "spawn_role": "child"}),
        )
        .await;
    let c_id = c["data"]["peer"]["id"].as_str().unwrap().to_owned();
    let (_, c_grant) = a
        .app
        .post(
            &format!("{PEERS}/{c_id}/grants"),
            &a.admin,
            json!({"resource_kind": "sdwan_config", "permission_scopes": ["read"]}),
        )
        .await;
    let (s, r) = call(
        &client,
        get.clone(),
        &url("sdwan_config", "net-1"),
        c_grant["data"]["token"].as_str(),
        &net,
        None,
    )
    .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (401, Some("Grant belongs to a different federation peer"))
    );

    let (s, r) = call(
        &client,
        get.clone(),
        &url("nope", "net-1"),
        Some(&token),
        &net,
        None,
    )
    .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (422, Some("unknown resource kind nope"))
    );

    let (s, r) = call(
        &client,
        get.clone(),
        &url("sdwan_config", "net-1"),
        Some(&token),
        &net,
        None,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["data"]["document"], json!({"v": 1}));

    let expect_403 = |r: &Value, dimension: &str, error: &str| {
        assert_eq!(r["code"], "GRANT_SCOPE_MISMATCH", "{r}");
        assert_eq!(r["details"]["dimension"], dimension, "{r}");
        assert_eq!(r["error"], error, "{r}");
    };
    let (s, r) = call(
        &client,
        get.clone(),
        &url("sdwan_config", "net-2"),
        Some(&token),
        &net,
        None,
    )
    .await;
    assert_eq!(s, 403);
    expect_403(
        &r,
        "resource_id",
        "grant scope mismatch: resource_id net-2 not allowed",
    );
    let (s, r) = call(
        &client,
        get.clone(),
        &url("sdwan_config", "net-1"),
        Some(&token),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 403);
    expect_403(
        &r,
        "network",
        "grant scope mismatch: network (none) not allowed",
    );
    // X-Forwarded-For from an untrusted address is ignored.
    let (_, spoof) = a
        .app
        .post(&format!("{PEERS}/{a_peer_id}/grants"), &a.admin, json!({"resource_kind": "sdwan_config", "permission_scopes": ["read"], "source_cidrs": ["10.0.0.0/8"]}))
        .await;
    let (s, r) = call(
        &client,
        get.clone(),
        &url("sdwan_config", "net-1"),
        spoof["data"]["token"].as_str(),
        &[("X-Forwarded-For", "10.9.9.9")],
        None,
    )
    .await;
    assert_eq!(s, 403);
    expect_403(
        &r,
        "source_ip",
        "grant scope mismatch: source_ip 127.0.0.1 not allowed",
    );

    // A read grant cannot write; the document is unchanged.
    let (s, r) = call(
        &client,
        reqwest::Method::PUT,
        &url("sdwan_config", "net-1"),
        Some(&token),
        &net,
        Some(json!({"v": 2})),
    )
    .await;
    assert_eq!(s, 403);
    expect_403(
        &r,
        "permission",
        "grant scope mismatch: permission write not allowed",
    );
    let (_, doc) = a
        .app
        .get(
            "/api/v1/system/federation/resources/sdwan_config/net-1",
            &a.admin,
        )
        .await;
    assert_eq!(
        (
            doc["data"]["document"].clone(),
            doc["data"]["version"].clone()
        ),
        (json!({"v": 1}), json!(1))
    );

    // explain agrees with the live decisions above.
    for (network, allowed) in [(Some("overlay-1"), true), (None, false)] {
        let (_, e) = a
            .app
            .post(
                &format!("/api/v1/system/federation/grants/{grant_id}/explain"),
                &a.admin,
                json!({
                    "resource_kind": "sdwan_config", "resource_id": "net-1", "scope": "read",
                    "instance_id": b_instance, "network": network, "source_ip": "127.0.0.1"
                }),
            )
            .await;
        assert_eq!(e["data"]["allowed"], allowed, "{e}");
        assert_eq!(e["data"]["checks"].as_array().unwrap().len(), 8);
    }

    // A missing resource is 404 only once every check passed.
    let (_, wide) = a
        .app
        .post(
            &format!("{PEERS}/{a_peer_id}/grants"),
            &a.admin,
            json!({"resource_kind": "sdwan_config", "permission_scopes": ["read", "write"]}),
        )
        .await;
    let wide_token = wide["data"]["token"].as_str().unwrap().to_owned();
    let (s, _) = call(
        &client,
        get.clone(),
        &url("sdwan_config", "missing"),
        Some(&wide_token),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, r) = call(
        &client,
        reqwest::Method::PUT,
        &url("sdwan_config", "net-1"),
        Some(&wide_token),
        &[],
        Some(json!({"v": 3})),
    )
    .await;
    assert_eq!((s, &r["data"]["version"]), (200, &json!(2)), "{r}");
    // A peer's id is validated as the operator's is: 422, nothing stored.
    let long = "x".repeat(65);
    let (s, r) = call(
        &client,
        reqwest::Method::PUT,
        &url("sdwan_config", &long),
        Some(&wide_token),
        &[],
        Some(json!({"v": 4})),
    )
    .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (422, Some("id items must be 1-64 characters")),
        "{r}"
    );

    // Revoke, then the very next call is refused.
    let (s, _) = a
        .app
        .post(
            &format!("/api/v1/system/federation/grants/{grant_id}/revoke"),
            &a.admin,
            json!({"reason": "rotation"}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, r) = call(
        &client,
        get.clone(),
        &url("sdwan_config", "net-1"),
        Some(&token),
        &net,
        None,
    )
    .await;
    assert_eq!(s, 403);
    expect_403(&r, "revoked", "grant scope mismatch: revoked");
    let (s, _) = a
        .app
        .post(
            &format!("/api/v1/system/federation/grants/{grant_id}/revoke"),
            &a.admin,
            json!({"reason": "again"}),
        )
        .await;
    assert_eq!(s, 409);

    // Grant tokens never reach a text column.
    for t in [&token, &wide_token] {
        assert_eq!(
            columns_containing(&mut a.db.conn(), t),
            Vec::<String>::new()
        );
    }
}

#[tokio::test]
async fn auto_renewal_renews_only_live_peers_auto_renew_grants_near_expiry() {
    use diesel::RunQueryDsl;
    let db = powernode_tests::TestDb::new();
    let mut conn = db.conn();
    let admin = powernode_tests::admin_token(&mut conn);
    let app = powernode_tests::spawn_app(powernode_tests::settings(&db)).await;
    let active = powernode_tests::insert_peer(&mut conn, "active", "platform", Some(5));
    let suspended = powernode_tests::insert_peer(&mut conn, "suspended", "platform", Some(5));
    let issue = |peer: uuid::Uuid, auto: bool| {
        let (app, admin) = (&app, &admin);
        async move {
            let (s, g) = app
                .post(&format!("{PEERS}/{peer}/grants"), admin, json!({"resource_kind": "sdwan_config", "permission_scopes": ["read"], "auto_renew": auto}))
                .await;
            assert_eq!(s, 201);
            g["data"]["grant"]["id"]
                .as_str()
                .unwrap()
                .parse::<uuid::Uuid>()
                .unwrap()
        }
    };
    let due = issue(active, true).await;
    let not_auto = issue(active, false).await;
    let not_due = issue(active, true).await;
    let suspended_grant = issue(suspended, true).await;
    // Already expired: auto-renewal keeps live grants alive, it does not revive dead ones.
    let expired = issue(active, true).await;
    for (id, days) in [
        (due, 3),
        (not_auto, 3),
        (not_due, 20),
        (suspended_grant, 3),
        (expired, -1),
    ] {
        diesel::sql_query(format!(
            "UPDATE grants SET expires_at = now() + interval '{days} days' WHERE id = $1"
        ))
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(&mut conn)
        .unwrap();
    }
    let resp = app
        .client
        .post(app.url("/api/v1/system/worker_api/federation/grant_maintenance"))
        .header("X-Worker-Token", powernode_tests::WORKER_TOKEN)
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["renewed"], 1, "{body}");
    assert_eq!(body["data"]["grant_ids"], json!([due.to_string()]));
    let renewed = powernode_store::grants::find(&mut conn, due)
        .unwrap()
        .unwrap();
    assert!(renewed.expires_at > time::OffsetDateTime::now_utc() + time::Duration::days(29));
    for id in [not_auto, suspended_grant, expired] {
        let g = powernode_store::grants::find(&mut conn, id)
            .unwrap()
            .unwrap();
        assert!(g.expires_at < time::OffsetDateTime::now_utc() + time::Duration::days(4));
    }
    let events = powernode_store::events::list(
        &mut conn,
        &powernode_store::events::EventFilter {
            kind: Some("federation.grant.renewed".to_owned()),
            limit: 10,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].source.as_str(),
            events[0].payload["grant_id"].as_str()
        ),
        ("federation_grant", Some(due.to_string().as_str()))
    );
}

#[tokio::test]
async fn the_federation_api_rate_limits_per_certificate_then_recovers() {
    use powernode_tests::federation::instance_with;
    let a = instance_with(&[
        ("POWERNODE_FEDERATION_RATE_PER_MINUTE", "60".to_owned()),
        ("POWERNODE_FEDERATION_RATE_BURST", "2".to_owned()),
    ])
    .await;
    let b = powernode_tests::federation::instance().await;
    a.ready().await;
    b.ready().await;
    powernode_tests::federation::propose_and_accept(&a, &b, "parent").await;
    b.worker("peer_heartbeats").await; // the handshake spends one call
    let client = pinned_client(&a, Some(outbound_identity(&b)));
    let url = format!("{}/api/v1/system/federation_api/heartbeat", a.public_url);
    let mut limited = None;
    for _ in 0..5 {
        let resp = client.post(&url).json(&json!({})).send().await.unwrap();
        if resp.status().as_u16() == 429 {
            let retry = resp.headers()["retry-after"].to_str().unwrap().to_owned();
            limited = Some((retry, resp.json::<Value>().await.unwrap()));
            break;
        }
    }
    let (retry, body) = limited.expect("the burst of 2 is exceeded within 5 calls");
    assert!(retry.parse::<u64>().unwrap() >= 1);
    assert_eq!(body["code"], "RATE_LIMITED");
    assert_eq!(body["success"], false);
    // Recovery: within a few seconds the bucket refills (polled, not slept).
    powernode_tests::eventually_async(
        std::time::Duration::from_secs(60),
        "rate limit recovery",
        || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let s = client
                    .post(url)
                    .json(&json!({}))
                    .send()
                    .await
                    .ok()?
                    .status();
                (s == 200).then_some(())
            }
        },
    )
    .await;
}

/// `source_cidrs` is `cidr[]`: PostgreSQL refuses an entry that is not a network, entries are
/// stored as networks, and a stored allowlist that still cannot be read denies every source
/// (403 `source_ip`) instead of widening to "any source".
#[tokio::test]
async fn source_allowlists_are_networks_and_an_unreadable_one_denies() {
    use diesel::RunQueryDsl;
    let (a, b) = federated_pair().await;
    let a_peer_id = a.only_peer().await["id"].as_str().unwrap().to_owned();
    let (status, _) = a
        .app
        .call(
            reqwest::Method::PUT,
            "/api/v1/system/federation/resources/sdwan_config/net-9",
            Some(&a.admin),
            Some(json!({"v": 9})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, issued) = a
        .app
        .post(
            &format!("{PEERS}/{a_peer_id}/grants"),
            &a.admin,
            json!({
                "resource_kind": "sdwan_config", "permission_scopes": ["read"],
                "source_cidrs": ["127.0.0.1/8", "::1"]
            }),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    // Stored (and shown) as the networks they always matched as.
    assert_eq!(
        issued["data"]["grant"]["source_cidrs"],
        json!(["127.0.0.0/8", "::1/128"])
    );
    let token = issued["data"]["token"].as_str().unwrap().to_owned();
    let grant_id = issued["data"]["grant"]["id"].as_str().unwrap().to_owned();
    let client = pinned_client(&a, Some(outbound_identity(&b)));
    let url = format!(
        "{}/api/v1/system/federation_api/resources/sdwan_config/net-9",
        a.public_url
    );
    let get = reqwest::Method::GET;
    let (s, r) = call(&client, get.clone(), &url, Some(&token), &[], None).await;
    assert_eq!(s, 200, "{r}");

    let mut conn = a.db.conn();
    let refused = diesel::sql_query(format!(
        "UPDATE grants SET source_cidrs = '{{not-a-network}}' WHERE id = '{grant_id}'"
    ))
    .execute(&mut conn);
    assert!(
        refused.is_err(),
        "PostgreSQL must refuse a non-network entry"
    );

    // An allowlist that still cannot be read (here: a NULL entry, once the CHECK is gone).
    diesel::sql_query("ALTER TABLE grants DROP CONSTRAINT grants_source_cidrs_check")
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query(format!(
        "UPDATE grants SET source_cidrs = ARRAY[NULL]::cidr[] WHERE id = '{grant_id}'"
    ))
    .execute(&mut conn)
    .unwrap();
    let (s, r) = call(&client, get.clone(), &url, Some(&token), &[], None).await;
    assert_eq!(
        (s, r["code"].as_str(), r["details"]["dimension"].as_str()),
        (403, Some("GRANT_SCOPE_MISMATCH"), Some("source_ip")),
        "{r}"
    );
    let (status, explained) = a
        .app
        .post(
            &format!("/api/v1/system/federation/grants/{grant_id}/explain"),
            &a.admin,
            json!({"resource_kind": "sdwan_config", "resource_id": "net-9", "scope": "read",
                   "source_ip": "127.0.0.1"}),
        )
        .await;
    assert_eq!(status, 200, "{explained}");
    assert_eq!(explained["data"]["allowed"], false);
    let source = explained["data"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["dimension"] == "source_ip")
        .unwrap()
        .clone();
    assert_eq!(
        source,
        json!({"dimension": "source_ip", "ok": false,
               "why": "source_cidrs unreadable; no source address is allowed"})
    );
    let (_, shown) = a
        .app
        .get(
            &format!("/api/v1/system/federation/grants/{grant_id}"),
            &a.admin,
        )
        .await;
    assert_eq!(shown["data"]["source_cidrs"], json!(["(unreadable)"]));
}

/// A number PostgreSQL would render unreadably (a 309-digit integer) is refused before the
/// document is stored, by operators and by peers; the resource is not poisoned.
#[tokio::test]
async fn documents_whose_numbers_do_not_read_back_are_refused_and_not_stored() {
    let (a, b) = federated_pair().await;
    let a_peer_id = a.only_peer().await["id"].as_str().unwrap().to_owned();
    let huge = json!({"a": 1.797_693_134_862_315_7e308});
    let (status, answer) = a
        .app
        .call(
            reqwest::Method::PUT,
            "/api/v1/system/federation/resources/sdwan_config/poison",
            Some(&a.admin),
            Some(huge.clone()),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (
            422,
            Some("document contains a number outside the supported range")
        ),
        "{answer}"
    );
    let (status, _) = a
        .app
        .get(
            "/api/v1/system/federation/resources/sdwan_config/poison",
            &a.admin,
        )
        .await;
    assert_eq!(status, 404);
    let (_, wide) = a
        .app
        .post(
            &format!("{PEERS}/{a_peer_id}/grants"),
            &a.admin,
            json!({"resource_kind": "sdwan_config", "permission_scopes": ["read", "write"]}),
        )
        .await;
    let token = wide["data"]["token"].as_str().unwrap().to_owned();
    let client = pinned_client(&a, Some(outbound_identity(&b)));
    let url = format!(
        "{}/api/v1/system/federation_api/resources/sdwan_config/poison",
        a.public_url
    );
    let (s, r) = call(
        &client,
        reqwest::Method::PUT,
        &url,
        Some(&token),
        &[],
        Some(huge),
    )
    .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (
            422,
            Some("document contains a number outside the supported range")
        ),
        "{r}"
    );
    let (s, _) = call(&client, reqwest::Method::GET, &url, Some(&token), &[], None).await;
    assert_eq!(s, 404);
    // A heartbeat's sync_cursor likewise; the peer row stays readable.
    let heartbeat = format!("{}/api/v1/system/federation_api/heartbeat", a.public_url);
    let (s, r) = call(
        &client,
        reqwest::Method::POST,
        &heartbeat,
        None,
        &[],
        Some(json!({"sync_cursor": {"n": 1.797_693_134_862_315_7e308}})),
    )
    .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (
            422,
            Some("sync_cursor contains a number outside the supported range")
        ),
        "{r}"
    );
    let (status, _) = a.app.get(PEERS, &a.admin).await;
    assert_eq!(status, 200);
    // NUL characters from a peer are refused on the listener too.
    let (s, r) = call(
        &client,
        reqwest::Method::PUT,
        &url,
        Some(&token),
        &[],
        Some(json!({"a": "x\u{0}y"})),
    )
    .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (422, Some("document must not contain NUL characters")),
        "{r}"
    );
    let (s, r) = call(
        &client,
        reqwest::Method::POST,
        &heartbeat,
        None,
        &[],
        Some(json!({"capabilities": ["c\u{0}"]})),
    )
    .await;
    assert_eq!(
        (s, r["error"].as_str()),
        (422, Some("capabilities must not contain NUL characters")),
        "{r}"
    );
}

#[tokio::test]
async fn a_row_that_cannot_be_read_fails_only_its_own_calls_in_a_lookup_batch() {
    let (a, b) = federated_pair().await;
    let a_peer_id = a.only_peer().await["id"].as_str().unwrap().to_owned();
    let (status, _) = a
        .app
        .call(
            reqwest::Method::PUT,
            "/api/v1/system/federation/resources/sdwan_config/healthy",
            Some(&a.admin),
            Some(json!({"a": 1})),
        )
        .await;
    assert_eq!(status, 200);
    // A document written before writes refused such numbers (the API no longer stores one):
    // a peer's read passes the stored text through untouched.
    use diesel::RunQueryDsl;
    diesel::sql_query(
        "INSERT INTO shared_resources (kind, id, document, version, updated_at) \
         VALUES ('sdwan_config', 'legacy', '{\"a\": 1.7976931348623157e308}', 1, now())",
    )
    .execute(&mut a.db.conn())
    .unwrap();
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let (_, grant) = a
            .app
            .post(
                &format!("{PEERS}/{a_peer_id}/grants"),
                &a.admin,
                json!({"resource_kind": "sdwan_config", "permission_scopes": ["read"]}),
            )
            .await;
        tokens.push(grant["data"]["token"].as_str().unwrap().to_owned());
    }
    // A grant row the API cannot read (an expiry no timestamp type of ours holds, as a hand
    // edit could leave): its calls fail, and only its calls.
    diesel::sql_query(
        "UPDATE grants SET expires_at = 'infinity' \
          WHERE id = (SELECT id FROM grants ORDER BY created_at DESC, id DESC LIMIT 1)",
    )
    .execute(&mut a.db.conn())
    .unwrap();
    let (healthy, unreadable) = (tokens[0].clone(), tokens[1].clone());
    let client = pinned_client(&a, Some(outbound_identity(&b)));
    let url = |id: &str| {
        format!(
            "{}/api/v1/system/federation_api/resources/sdwan_config/{id}",
            a.public_url
        )
    };
    // Valid JSON (RFC 8259 sets no range on numbers), as PostgreSQL prints it; a peer needs an
    // arbitrary-precision parser for it, as it would have for the original.
    let legacy = client
        .get(url("legacy"))
        .bearer_auth(&healthy)
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 200);
    let text = legacy.text().await.unwrap();
    assert!(
        text.contains(r#""document":{"a": 179769313486231570000"#),
        "{text}"
    );
    // Many reads at once, so the batcher serves readable and unreadable rows together.
    let reads = (0..32).map(|i| {
        let client = client.clone();
        let (which, token) = if i % 2 == 0 {
            ("readable", healthy.clone())
        } else {
            ("unreadable", unreadable.clone())
        };
        let url = url("healthy");
        async move {
            let (status, _) =
                call(&client, reqwest::Method::GET, &url, Some(&token), &[], None).await;
            (which, status)
        }
    });
    for (which, status) in futures::future::join_all(reads).await {
        match which {
            "readable" => assert_eq!(status, 200, "a healthy read failed with the batch"),
            _ => assert_eq!(status, 500, "the unreadable row is an internal error"),
        }
    }
}
