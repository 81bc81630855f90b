//! Two real instances on one machine (two API servers, two databases) federate end to end over
//! real mTLS with certificates from their own CAs (issue #4).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use powernode_tests::federation::{Instance, PEERS, federated_pair, instance, pinned_client, post};
use serde_json::{Value, json};

#[tokio::test]
async fn two_instances_federate_from_propose_to_active_both_ways() {
    let a = instance().await;
    let b = instance().await;
    a.ready().await;
    b.ready().await;

    let (status, proposed) = a
        .app
        .post(PEERS, &a.admin, json!({"remote_instance_url": b.public_url, "spawn_role": "parent", "spawn_mode": "autonomous_peer"}))
        .await;
    assert_eq!(status, 201, "{proposed}");
    let token = proposed["data"]["acceptance_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, accepted) = b
        .app
        .post(
            &format!("{PEERS}/accept"),
            &b.admin,
            json!({"acceptance_token": token}),
        )
        .await;
    assert_eq!(status, 201, "{accepted}");
    assert_eq!(accepted["data"]["status"], "accepted");
    assert_eq!(accepted["data"]["origin"], "accepted_here");
    assert_eq!(
        accepted["data"]["spawn_role"], "child",
        "B mirrors A's role"
    );
    assert_eq!(a.only_peer().await["status"], "accepted");

    // The same token again: B already pins A's CA, so it refuses before calling A (A's
    // single-use refusal is covered by the accept tests on A's listener).
    let (status, again) = b
        .app
        .post(
            &format!("{PEERS}/accept"),
            &b.admin,
            json!({"acceptance_token": token}),
        )
        .await;
    assert_eq!(
        (status, again["error"].as_str()),
        (
            409,
            Some(format!("instance at {} is already federated", a.public_url).as_str())
        ),
        "{again}"
    );
    assert_eq!(a.only_peer().await["status"], "accepted");

    // B's worker tick: handshake → both enrolled.
    let run = b.worker("peer_heartbeats").await;
    assert_eq!(run["failed"], json!([]), "{run}");
    assert_eq!(b.only_peer().await["status"], "enrolled");
    assert_eq!(a.only_peer().await["status"], "enrolled");

    // A heartbeats B (B → active), B heartbeats A (A → active).
    let run = a.worker("peer_heartbeats").await;
    assert_eq!(
        (run["sent"].as_u64(), &run["failed"]),
        (Some(1), &json!([])),
        "{run}"
    );
    assert_eq!(b.only_peer().await["status"], "active");
    let run = b.worker("peer_heartbeats").await;
    assert_eq!(
        (run["sent"].as_u64(), &run["failed"]),
        (Some(1), &json!([])),
        "{run}"
    );
    assert_eq!(a.only_peer().await["status"], "active");

    // Revoking on A: B's next call fails with the SPEC message.
    let id = a.only_peer().await["id"].as_str().unwrap().to_owned();
    let (status, _) = a
        .app
        .post(
            &format!("{PEERS}/{id}/revoke"),
            &a.admin,
            json!({"reason": "test"}),
        )
        .await;
    assert_eq!(status, 200);
    let run = b.worker("peer_heartbeats").await;
    assert_eq!(run["sent"], 0);
    assert!(
        run["failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("Certificate is revoked"),
        "{run}"
    );
    drop((a.db, b.db));
}

fn csr() -> String {
    powernode_api::ca::key_and_csr().unwrap().1
}

fn a_ca_pem() -> String {
    // Any valid self-signed CA serves as "B's CA" for A's checks.
    let key = powernode_api::crypto::MasterKey::load(std::path::Path::new(
        &powernode_tests::master_key_file(),
    ))
    .unwrap();
    powernode_api::ca::generate(uuid::Uuid::new_v4(), &key)
        .unwrap()
        .0
}

#[tokio::test]
async fn accept_answers_each_spec_error_in_order_and_writes_nothing() {
    let a = instance().await;
    a.ready().await;
    let (_, proposed) = a
        .app
        .post(
            PEERS,
            &a.admin,
            json!({"remote_instance_url": "https://b.example.com", "spawn_role": "parent"}),
        )
        .await;
    let peer_id = proposed["data"]["peer"]["id"].as_str().unwrap().to_owned();
    let token = proposed["data"]["acceptance_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = pinned_client(&a, None);
    let url = format!("{}/api/v1/system/federation_api/accept", a.public_url);
    let body = |peer: &str,
                token: Option<&str>,
                version: i64,
                instance_url: &str,
                instance_id: uuid::Uuid,
                csr: &str,
                ca: &str| {
        json!({"peer_id": peer, "acceptance_token": token, "contract_version": version,
               "instance": {"instance_id": instance_id, "url": instance_url},
               "csr_pem": csr, "ca_pem": ca, "unknown_field": "ignored"})
    };
    let b_id = uuid::Uuid::new_v4();
    let (csr, ca) = (csr(), a_ca_pem());
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            body(
                &peer_id,
                Some(&token),
                2,
                "https://b.example.com",
                b_id,
                &csr,
                &ca,
            ),
            422,
            "Unsupported contract_version 2; supported: [1]",
        ),
        (
            body(
                &uuid::Uuid::new_v4().to_string(),
                Some(&token),
                1,
                "https://b.example.com",
                b_id,
                &csr,
                &ca,
            ),
            401,
            "acceptance_token not recognized or expired",
        ),
        (
            body(&peer_id, None, 1, "https://b.example.com", b_id, &csr, &ca),
            422,
            "acceptance_token required (peer has acceptance_token_digest set)",
        ),
        (
            body(
                &peer_id,
                Some("pnfa1_wrong"),
                1,
                "https://b.example.com",
                b_id,
                &csr,
                &ca,
            ),
            422,
            "acceptance_token does not match stored digest",
        ),
        (
            body(
                &peer_id,
                Some(&token),
                1,
                "https://evil.example.com",
                b_id,
                &csr,
                &ca,
            ),
            422,
            "instance url does not match proposed peer",
        ),
        (
            body(
                &peer_id,
                Some(&token),
                1,
                "https://b.example.com",
                b_id,
                "garbage",
                &ca,
            ),
            422,
            "malformed CSR PEM: not a PEM certificate request",
        ),
        (
            // Two requests in one PEM: refused whole, and the token is not consumed (the
            // same token is accepted with a good CSR below).
            body(
                &peer_id,
                Some(&token),
                1,
                "https://b.example.com",
                b_id,
                &format!("{csr}{csr}"),
                &ca,
            ),
            422,
            "malformed CSR PEM: expected exactly one CERTIFICATE REQUEST block",
        ),
        (
            body(
                &peer_id,
                Some(&token),
                1,
                "https://b.example.com",
                b_id,
                &csr,
                "not a pem",
            ),
            422,
            "invalid CA certificate: not PEM",
        ),
    ];
    for (request, status, error) in cases {
        let (got, answer) = post(&client, &url, &request).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(error)),
            "{answer}"
        );
    }
    // A 1 MiB body is refused before anything else.
    let huge = json!({"peer_id": peer_id, "csr_pem": "A".repeat(1024 * 1024)});
    let (got, answer) = post(&client, &url, &huge).await;
    assert_eq!(
        (got, answer["code"].as_str()),
        (413, Some("PAYLOAD_TOO_LARGE"))
    );
    // Nothing written: still proposed with its digest, no certificate issued.
    let mut conn = a.db.conn();
    let peer = powernode_store::peers::find(&mut conn, peer_id.parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(peer.status.as_str(), "proposed");
    assert!(peer.acceptance_token_digest.is_some());
    assert!(
        powernode_store::certificates::for_peer(&mut conn, peer.id, "inbound")
            .unwrap()
            .is_empty()
    );

    // Another live peer already bound to this instance id → 409.
    let (_, other) = a
        .app
        .post(
            PEERS,
            &a.admin,
            json!({"remote_instance_url": "https://c.example.com", "spawn_role": "parent"}),
        )
        .await;
    let (other_id, other_token) = (
        other["data"]["peer"]["id"].as_str().unwrap().to_owned(),
        other["data"]["acceptance_token"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let (got, _) = post(
        &client,
        &url,
        &body(
            &peer_id,
            Some(&token),
            1,
            "https://b.example.com",
            b_id,
            &csr,
            &ca,
        ),
    )
    .await;
    assert_eq!(got, 200);
    let (got, answer) = post(
        &client,
        &url,
        &body(
            &other_id,
            Some(&other_token),
            1,
            "https://c.example.com",
            b_id,
            &csr,
            &ca,
        ),
    )
    .await;
    assert_eq!(
        (got, answer["error"].as_str()),
        (
            409,
            Some(format!("instance {b_id} is already federated").as_str())
        )
    );

    // Expired token.
    let (_, third) = a
        .app
        .post(
            PEERS,
            &a.admin,
            json!({"remote_instance_url": "https://d.example.com", "spawn_role": "parent"}),
        )
        .await;
    let third_id = third["data"]["peer"]["id"].as_str().unwrap().to_owned();
    use diesel::RunQueryDsl;
    diesel::sql_query(
        "UPDATE peers SET acceptance_token_expires_at = '2026-01-02T03:04:05Z' WHERE id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(third_id.parse::<uuid::Uuid>().unwrap())
    .execute(&mut conn)
    .unwrap();
    let (got, answer) = post(
        &client,
        &url,
        &body(
            &third_id,
            third["data"]["acceptance_token"].as_str(),
            1,
            "https://d.example.com",
            uuid::Uuid::new_v4(),
            &csr,
            &ca,
        ),
    )
    .await;
    assert_eq!(
        (got, answer["error"].as_str()),
        (
            422,
            Some("acceptance_token has expired (expired_at 2026-01-02T03:04:05Z)")
        )
    );
}

#[tokio::test]
async fn fifty_concurrent_http_accepts_of_one_token_have_one_winner() {
    let a = instance().await;
    a.ready().await;
    let (_, proposed) = a
        .app
        .post(
            PEERS,
            &a.admin,
            json!({"remote_instance_url": "https://b.example.com", "spawn_role": "child"}),
        )
        .await;
    let peer_id = proposed["data"]["peer"]["id"].as_str().unwrap().to_owned();
    let token = proposed["data"]["acceptance_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = pinned_client(&a, None);
    let url = format!("{}/api/v1/system/federation_api/accept", a.public_url);
    let (csr, ca) = (csr(), a_ca_pem());
    let calls = (0..50).map(|_| {
        let body = json!({"peer_id": peer_id, "acceptance_token": token, "contract_version": 1,
                          "instance": {"instance_id": uuid::Uuid::new_v4(), "url": "https://b.example.com"},
                          "csr_pem": csr, "ca_pem": ca});
        let (client, url) = (client.clone(), url.clone());
        async move { post(&client, &url, &body).await }
    });
    let results = futures::future::join_all(calls).await;
    assert_eq!(results.iter().filter(|(s, _)| *s == 200).count(), 1);
    for (s, body) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(
            (*s, body["error"].as_str()),
            (422, Some("acceptance_token does not match stored digest"))
        );
    }
    let mut conn = a.db.conn();
    let evs = powernode_store::events::list(
        &mut conn,
        &powernode_store::events::EventFilter {
            kind: Some("federation.peer.accepted".to_owned()),
            limit: 100,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(evs.len(), 1);
}

#[tokio::test]
async fn a_token_whose_ca_fingerprint_does_not_match_is_refused_and_nothing_is_stored() {
    let a = instance().await;
    let b = instance().await;
    a.ready().await;
    let (_, proposed) = a
        .app
        .post(
            PEERS,
            &a.admin,
            json!({"remote_instance_url": b.public_url, "spawn_role": "parent"}),
        )
        .await;
    let token = proposed["data"]["acceptance_token"].as_str().unwrap();
    let mut claims = powernode_domain::token::parse(token).unwrap();
    let real = claims.ca_sha256.clone();
    claims.ca_sha256 = "0".repeat(64);
    let json_bytes = serde_json::to_vec(&claims).unwrap();
    use base64::Engine;
    let forged = format!(
        "pnfa1_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json_bytes)
    );
    let (status, answer) = b
        .app
        .post(
            &format!("{PEERS}/accept"),
            &b.admin,
            json!({"acceptance_token": forged}),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(
        answer["error"],
        format!(
            "CA fingerprint mismatch: expected {}, got {real}",
            "0".repeat(64)
        )
    );
    let (status, answer) = b
        .app
        .post(
            &format!("{PEERS}/accept"),
            &b.admin,
            json!({"acceptance_token": "nonsense"}),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (422, Some("acceptance_token malformed"))
    );
    assert!(
        powernode_store::peers::list(&mut b.db.conn(), None)
            .unwrap()
            .is_empty()
    );
    assert_eq!(a.only_peer().await["status"], "proposed");
}

#[tokio::test]
async fn the_mtls_chain_refuses_each_bad_caller_with_its_message() {
    let (a, b) = federated_pair().await;
    let heartbeat = format!("{}/api/v1/system/federation_api/heartbeat", a.public_url);

    // No client certificate.
    let (status, answer) = post(&pinned_client(&a, None), &heartbeat, &json!({})).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("mTLS client certificate required"))
    );

    // B's real client certificate for A (issued by A's CA).
    let b_peer = b.only_peer().await;
    let mut bconn = b.db.conn();
    let out = powernode_store::certificates::for_peer(
        &mut bconn,
        b_peer["id"].as_str().unwrap().parse().unwrap(),
        "outbound",
    )
    .unwrap();
    let cert_pem = out[0].cert_pem.clone().unwrap();
    let key = {
        let master =
            powernode_api::crypto::MasterKey::load(std::path::Path::new(&b.master_key)).unwrap();
        let k = master
            .open(
                powernode_api::ca::CLIENT_KEY_CONTEXT,
                out[0].key_sealed.as_ref().unwrap(),
            )
            .unwrap();
        secrecy::ExposeSecret::expose_secret(&k).clone()
    };
    let good = pinned_client(
        &a,
        Some(reqwest::Identity::from_pkcs8_pem(cert_pem.as_bytes(), &key).unwrap()),
    );
    let (status, answer) = post(&good, &heartbeat, &json!({})).await;
    assert_eq!(status, 200, "{answer}");

    // A self-signed certificate copying the subject: refused in the TLS handshake.
    let (forged_cert, forged_key) = self_signed_copy(&cert_pem);
    let forged = pinned_client(
        &a,
        Some(reqwest::Identity::from_pkcs8_pem(forged_cert.as_bytes(), &forged_key).unwrap()),
    );
    assert!(
        forged
            .post(&heartbeat)
            .json(&json!({}))
            .send()
            .await
            .is_err(),
        "TLS must refuse a certificate not from A's CA"
    );

    // Suspended peer, then resumed (accepted), then revoked.
    let a_peer_id = a.only_peer().await["id"].as_str().unwrap().to_owned();
    a.app
        .post(
            &format!("{PEERS}/{a_peer_id}/suspend"),
            &a.admin,
            json!({"reason": "maintenance"}),
        )
        .await;
    let (status, answer) = post(&good, &heartbeat, &json!({})).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (
            401,
            Some("FederationPeer is not in a reachable status (suspended)")
        )
    );
    // The refusal carries the status machine-readably; callers react to it, not to the text.
    assert_eq!(
        answer["details"],
        json!({"peer_status": "suspended"}),
        "{answer}"
    );
    a.app
        .call(
            reqwest::Method::POST,
            &format!("{PEERS}/{a_peer_id}/resume"),
            Some(&a.admin),
            None,
        )
        .await;
    let (status, answer) = post(&good, &heartbeat, &json!({})).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (
            401,
            Some("FederationPeer is not in a reachable status (accepted)")
        )
    );
    assert_eq!(
        answer["details"],
        json!({"peer_status": "accepted"}),
        "{answer}"
    );
    // B's PeerClient repeats the handshake; A is enrolled again.
    let run = b.worker("peer_heartbeats").await;
    assert_eq!(run["failed"], json!([]), "{run}");
    assert_eq!(a.only_peer().await["status"], "enrolled");
    a.app
        .post(
            &format!("{PEERS}/{a_peer_id}/revoke"),
            &a.admin,
            json!({"reason": "gone"}),
        )
        .await;
    let (status, answer) = post(&good, &heartbeat, &json!({})).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("Certificate is revoked"))
    );
}

fn self_signed_copy(cert_pem: &str) -> (String, Vec<u8>) {
    use openssl::{
        asn1::Asn1Time,
        ec::{EcGroup, EcKey},
        hash::MessageDigest,
        nid::Nid,
        pkey::PKey,
        x509::X509,
    };
    let original = X509::from_pem(cert_pem.as_bytes()).unwrap();
    let key = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
    )
    .unwrap();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(original.subject_name()).unwrap();
    b.set_issuer_name(original.issuer_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (
        String::from_utf8(b.build().to_pem().unwrap()).unwrap(),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
}

fn open_ca(inst: &Instance) -> powernode_api::ca::OpenCa {
    let identity = powernode_store::identity::get(&mut inst.db.conn())
        .unwrap()
        .unwrap();
    let master =
        powernode_api::crypto::MasterKey::load(std::path::Path::new(&inst.master_key)).unwrap();
    powernode_api::ca::OpenCa::open(&identity, &master).unwrap()
}

fn identity_for(
    issued_pem: &str,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
) -> reqwest::Identity {
    reqwest::Identity::from_pkcs8_pem(
        issued_pem.as_bytes(),
        &key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn forged_expired_and_unreachable_cases_are_refused() {
    let (a, b) = federated_pair().await;
    a.worker("peer_heartbeats").await;
    let a_row = b.only_peer().await; // B's row for A
    let a_instance: uuid::Uuid = a_row["remote_instance_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let b_row_id: uuid::Uuid = a_row["id"].as_str().unwrap().parse().unwrap();

    // B mints, with its own CA, a certificate claiming to be A, and presents it to B's API.
    let (key, csr) = powernode_api::ca::key_and_csr().unwrap();
    let forged = open_ca(&b)
        .sign_client_csr(
            &csr,
            b_row_id,
            a_instance,
            time::OffsetDateTime::now_utc(),
            90,
        )
        .unwrap();
    let client = pinned_client(&b, Some(identity_for(&forged.pem, &key)));
    let (status, answer) = post(
        &client,
        &format!("{}/api/v1/system/federation_api/heartbeat", b.public_url),
        &json!({}),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("Certificate not found for mTLS subject"))
    );

    // A certificate from A's own CA that has expired: refused in the TLS handshake.
    let (key, csr) = powernode_api::ca::key_and_csr().unwrap();
    let long_ago = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    let expired = open_ca(&a)
        .sign_client_csr(
            &csr,
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
            long_ago,
            1,
        )
        .unwrap();
    let client = pinned_client(&a, Some(identity_for(&expired.pem, &key)));
    let result = client
        .post(format!(
            "{}/api/v1/system/federation_api/heartbeat",
            a.public_url
        ))
        .json(&json!({}))
        .send()
        .await;
    assert!(
        result.is_err(),
        "an expired client certificate must fail the TLS handshake"
    );

    // B's peer show carries the certificate facts.
    let (_, shown) = b.app.get(&format!("{PEERS}/{b_row_id}"), &b.admin).await;
    let outbound = &shown["data"]["certificates"]["outbound"];
    assert_eq!(outbound["due_for_rotation"], false);
    assert!(
        outbound["serial"].is_string()
            && outbound["fingerprint_sha256"].is_string()
            && outbound["not_after"].is_string()
    );

    // Accepting a token whose instance is unreachable: 502 PEER_UNREACHABLE, nothing stored.
    let c = instance().await;
    let closed = powernode_tests::free_port();
    let (_, p) = c
        .app
        .post(
            PEERS,
            &c.admin,
            json!({"remote_instance_url": "https://x.example.com", "spawn_role": "parent"}),
        )
        .await;
    let mut claims =
        powernode_domain::token::parse(p["data"]["acceptance_token"].as_str().unwrap()).unwrap();
    claims.url = format!("https://127.0.0.1:{closed}");
    use base64::Engine;
    let moved = format!(
        "pnfa1_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&claims).unwrap())
    );
    let (status, answer) = b
        .app
        .post(
            &format!("{PEERS}/accept"),
            &b.admin,
            json!({"acceptance_token": moved}),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (502, Some("PEER_UNREACHABLE")),
        "{answer}"
    );
    assert_eq!(
        powernode_store::peers::list(&mut b.db.conn(), None)
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn client_certificates_are_renewed_at_75_percent_over_mtls() {
    let (a, b) = federated_pair().await;
    a.worker("peer_heartbeats").await;
    // Make B's client certificate for A look 80 % through its life.
    use diesel::RunQueryDsl;
    diesel::sql_query(
        "UPDATE peer_certificates SET not_before = now() - interval '80 days', not_after = now() + interval '10 days' WHERE direction = 'outbound'",
    )
    .execute(&mut b.db.conn())
    .unwrap();
    let b_row = b.only_peer().await["id"].as_str().unwrap().to_owned();
    let (_, shown) = b.app.get(&format!("{PEERS}/{b_row}"), &b.admin).await;
    assert_eq!(
        shown["data"]["certificates"]["outbound"]["due_for_rotation"],
        true
    );

    let run = b.worker("peer_heartbeats").await;
    assert_eq!(
        (run["sent"].as_u64(), &run["failed"]),
        (Some(1), &json!([])),
        "{run}"
    );
    let outbound = powernode_store::certificates::for_peer(
        &mut b.db.conn(),
        b_row.parse().unwrap(),
        "outbound",
    )
    .unwrap();
    assert_eq!(
        outbound.len(),
        2,
        "a new client certificate is stored beside the old one"
    );
    let a_row: uuid::Uuid = a.only_peer().await["id"].as_str().unwrap().parse().unwrap();
    let inbound =
        powernode_store::certificates::for_peer(&mut a.db.conn(), a_row, "inbound").unwrap();
    assert_eq!(inbound.len(), 2);
    let renewed = powernode_store::events::list(
        &mut a.db.conn(),
        &powernode_store::events::EventFilter {
            kind: Some("federation.certificate.renewed".to_owned()),
            limit: 10,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        (renewed.len(), renewed[0].source.as_str()),
        (1, "internal_ca")
    );
    let (_, shown) = b.app.get(&format!("{PEERS}/{b_row}"), &b.admin).await;
    assert_eq!(
        shown["data"]["certificates"]["outbound"]["due_for_rotation"],
        false
    );
    // The next run uses the new certificate and needs no renewal.
    let run = b.worker("peer_heartbeats").await;
    assert_eq!(
        (run["sent"].as_u64(), &run["failed"]),
        (Some(1), &json!([])),
        "{run}"
    );
    assert_eq!(
        powernode_store::certificates::for_peer(
            &mut b.db.conn(),
            b_row.parse().unwrap(),
            "outbound"
        )
        .unwrap()
        .len(),
        2
    );
}

#[tokio::test]
async fn concurrent_peer_runs_handshake_once_without_deadlock() {
    let a = instance().await;
    let b = instance().await;
    a.ready().await;
    b.ready().await;
    powernode_tests::federation::propose_and_accept(&a, &b, "symmetric").await;
    let (r1, r2) = tokio::join!(b.worker("peer_heartbeats"), b.worker("peer_heartbeats"));
    assert_eq!(
        (&r1["failed"], &r2["failed"]),
        (&json!([]), &json!([])),
        "{r1} {r2}"
    );
    assert_eq!(b.only_peer().await["status"], "enrolled");
    assert_eq!(a.only_peer().await["status"], "enrolled");
    for inst in [&a, &b] {
        let enrolled = powernode_store::events::list(
            &mut inst.db.conn(),
            &powernode_store::events::EventFilter {
                kind: Some("federation.peer.enrolled".to_owned()),
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(enrolled.len(), 1);
        assert_eq!(enrolled[0].source, "federation_handshake");
    }
}

/// Concurrent accepts that bind the same remote instance id: one wins, the others are 409
/// `instance <id> is already federated` (the unique index's verdict), never a 500.
#[tokio::test]
async fn concurrent_accepts_binding_one_instance_give_one_winner_and_409s() {
    let a = instance().await;
    a.ready().await;
    let client = pinned_client(&a, None);
    let url = format!("{}/api/v1/system/federation_api/accept", a.public_url);
    let remote = uuid::Uuid::new_v4();
    let ca = a_ca_pem();
    let mut bodies = Vec::new();
    for n in 0..6 {
        let host = format!("https://b{n}.example.com");
        let (status, proposed) = a
            .app
            .post(
                PEERS,
                &a.admin,
                json!({"remote_instance_url": host, "spawn_role": "parent"}),
            )
            .await;
        assert_eq!(status, 201, "{proposed}");
        bodies.push(json!({
            "peer_id": proposed["data"]["peer"]["id"],
            "acceptance_token": proposed["data"]["acceptance_token"],
            "contract_version": 1,
            "instance": {"instance_id": remote, "url": host},
            "csr_pem": csr(), "ca_pem": ca,
        }));
    }
    let answers = futures::future::join_all(bodies.iter().map(|b| post(&client, &url, b))).await;
    let winners = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(winners, 1, "{answers:?}");
    for (status, answer) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(
            (*status, answer["error"].as_str()),
            (
                409,
                Some(format!("instance {remote} is already federated").as_str())
            ),
            "{answer}"
        );
    }
}

/// B already federated with A refuses a second token from A before calling A, so A's second
/// peer is not left `accepted` with nobody on the other side (409, nothing changes on A).
#[tokio::test]
async fn a_second_token_from_an_instance_already_federated_is_refused_before_calling_it() {
    let (a, b) = federated_pair().await;
    let (status, proposed) = a
        .app
        .post(
            PEERS,
            &a.admin,
            json!({"remote_instance_url": b.public_url, "spawn_role": "parent"}),
        )
        .await;
    assert_eq!(status, 201, "{proposed}");
    let second = proposed["data"]["peer"]["id"].as_str().unwrap().to_owned();
    let token = proposed["data"]["acceptance_token"].as_str().unwrap();
    let (status, answer) = b
        .app
        .post(
            &format!("{PEERS}/accept"),
            &b.admin,
            json!({"acceptance_token": token}),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (
            409,
            Some(format!("instance at {} is already federated", a.public_url).as_str())
        ),
        "{answer}"
    );
    let (_, shown) = a.app.get(&format!("{PEERS}/{second}"), &a.admin).await;
    assert_eq!(shown["data"]["status"], "proposed");
    assert_eq!(shown["data"]["acceptance_pending"], true);
    let (_, listed) = b.app.get(PEERS, &b.admin).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
}

/// A's 5xx is not relayed as B's own 5xx: B answers 502 `PEER_UNREACHABLE` with A's status and
/// message in `details` (SPEC §10), and stores nothing.
#[tokio::test]
async fn a_peers_server_error_is_a_502_with_its_status_and_message() {
    use diesel::RunQueryDsl;
    let a = instance().await;
    let b = instance().await;
    a.ready().await;
    b.ready().await;
    let (_, proposed) = a
        .app
        .post(
            PEERS,
            &a.admin,
            json!({"remote_instance_url": b.public_url, "spawn_role": "parent"}),
        )
        .await;
    let token = proposed["data"]["acceptance_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Break A's accept: the certificate it would issue has nowhere to go.
    diesel::sql_query("ALTER TABLE peer_certificates RENAME TO peer_certificates_gone")
        .execute(&mut a.db.conn())
        .unwrap();
    let (status, answer) = b
        .app
        .post(
            &format!("{PEERS}/accept"),
            &b.admin,
            json!({"acceptance_token": token}),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (502, Some("PEER_UNREACHABLE")),
        "{answer}"
    );
    assert_eq!(
        answer["details"],
        json!({"peer_http_status": 500, "peer_error": "internal error"})
    );
    assert_eq!(
        answer["error"],
        format!("peer at {} answered 500: internal error", a.public_url)
    );
    let (_, listed) = b.app.get(PEERS, &b.admin).await;
    assert_eq!(listed["data"], json!([]));
}

const FEDERATION_API: &str = "/api/v1/system/federation_api";

/// The certificates `inst` holds for its only peer in `direction`, newest first.
fn certificates(
    inst: &Instance,
    direction: &str,
) -> Vec<powernode_store::certificates::PeerCertificate> {
    let mut conn = inst.db.conn();
    let peer = powernode_store::peers::list(&mut conn, None).unwrap()[0].id;
    powernode_store::certificates::for_peer(&mut conn, peer, direction).unwrap()
}

fn ca_pem(inst: &Instance) -> String {
    powernode_store::identity::get(&mut inst.db.conn())
        .unwrap()
        .unwrap()
        .ca_cert_pem
}

/// A renews its client certificate at B but the answer never reaches A: B holds a certificate
/// for A that A never stored. Returns its PEM.
async fn lost_renewal(a: &Instance, b: &Instance) -> String {
    let (_key, csr) = powernode_api::ca::key_and_csr().unwrap();
    let client = pinned_client(b, Some(powernode_tests::federation::outbound_identity(a)));
    let (status, answer) = post(
        &client,
        &format!("{}{FEDERATION_API}/certificates/renew", b.public_url),
        &json!({"csr_pem": csr}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer["data"]["client_cert_pem"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_handshake_requires_the_pinned_ca_and_a_repeat_a_certificate_of_this_federation() {
    let (a, b) = federated_pair().await;
    let url = format!("{}{FEDERATION_API}/handshake", a.public_url);
    let b_to_a = pinned_client(&a, Some(powernode_tests::federation::outbound_identity(&b)));
    // What B delivered at the first handshake: A's outbound certificate.
    let delivered = certificates(&a, "outbound")[0].cert_pem.clone().unwrap();

    let (status, body) = post(&b_to_a, &url, &json!({"client_cert_pem": delivered})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("BAD_REQUEST")),
        "{body}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("ca_chain_pem"),
        "{body}"
    );

    let (status, body) = post(
        &b_to_a,
        &url,
        &json!({"client_cert_pem": delivered, "ca_chain_pem": ca_pem(&a)}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        (body["error"].as_str(), &body["details"]),
        (
            Some("handshake certificate rejected: ca_chain_pem is not the CA pinned for this peer"),
            &json!({"field": "ca_chain_pem"})
        )
    );

    // The same certificate again while enrolled: 200, nothing changes.
    let (status, body) = post(
        &b_to_a,
        &url,
        &json!({"client_cert_pem": delivered, "ca_chain_pem": ca_pem(&b)}),
    )
    .await;
    assert_eq!(
        (status, body["data"]["status"].as_str()),
        (200, Some("enrolled")),
        "{body}"
    );

    // A certificate from B's CA that is not the one A holds: refused, nothing stored.
    let other = lost_renewal(&a, &b).await;
    let (status, body) = post(
        &b_to_a,
        &url,
        &json!({"client_cert_pem": other, "ca_chain_pem": ca_pem(&b)}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"],
        "handshake certificate rejected: not a certificate of this federation"
    );
    assert_eq!(certificates(&a, "outbound").len(), 1);
}

#[tokio::test]
async fn a_renewal_whose_answer_was_lost_does_not_strand_the_pair_after_a_resume() {
    let (a, b) = federated_pair().await;
    // A heartbeats B with its certificate: B records it as in use.
    let run = a.worker("peer_heartbeats").await;
    assert_eq!(run["failed"], json!([]), "{run}");
    let used = certificates(&b, "inbound");
    assert_eq!(used.len(), 1);
    assert!(used[0].last_used_at.is_some(), "{used:?}");

    lost_renewal(&a, &b).await;
    assert_eq!(certificates(&b, "inbound").len(), 2);
    assert_eq!(certificates(&a, "outbound").len(), 1);

    // A suspends and resumes B: A's row is back to accepted, and B must repeat the handshake.
    let a_row = a.only_peer().await["id"].as_str().unwrap().to_owned();
    for action in ["suspend", "resume"] {
        let (status, body) = a
            .app
            .post(
                &format!("{PEERS}/{a_row}/{action}"),
                &a.admin,
                json!({"reason": "maintenance"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(a.only_peer().await["status"], "accepted");

    // B's heartbeat is refused (accepted), B re-handshakes with the certificate A was seen
    // using, not the newest one, and A is enrolled again.
    let run = b.worker("peer_heartbeats").await;
    assert_eq!(run["failed"], json!([]), "{run}");
    assert_eq!(a.only_peer().await["status"], "enrolled");
    let run = b.worker("peer_heartbeats").await;
    assert_eq!(run["failed"], json!([]), "{run}");
    assert_eq!(a.only_peer().await["status"], "active");
}

#[tokio::test]
async fn both_sides_renewing_at_once_do_not_block_each_other() {
    let (a, b) = federated_pair().await;
    a.worker("peer_heartbeats").await;
    // Certificates issued in the same accept come due together.
    use diesel::RunQueryDsl;
    for inst in [&a, &b] {
        diesel::sql_query(
            "UPDATE peer_certificates SET not_before = now() - interval '80 days', \
             not_after = now() + interval '10 days' WHERE direction = 'outbound'",
        )
        .execute(&mut inst.db.conn())
        .unwrap();
    }
    let (ra, rb) = tokio::join!(a.worker("peer_heartbeats"), b.worker("peer_heartbeats"));
    assert_eq!(
        (&ra["failed"], &rb["failed"]),
        (&json!([]), &json!([])),
        "{ra} {rb}"
    );
    for inst in [&a, &b] {
        assert_eq!(certificates(inst, "outbound").len(), 2, "renewed");
        assert_eq!(
            certificates(inst, "inbound").len(),
            2,
            "issued to the other side"
        );
        let leased: Vec<Option<uuid::Uuid>> = diesel::sql_query("SELECT claim_token FROM peers")
            .load::<Lease>(&mut inst.db.conn())
            .unwrap()
            .into_iter()
            .map(|l| l.claim_token)
            .collect();
        assert_eq!(leased, vec![None], "the lease is released");
    }
}

#[derive(diesel::QueryableByName)]
struct Lease {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    claim_token: Option<uuid::Uuid>,
}

#[tokio::test]
async fn failed_accepts_per_source_and_peer_are_limited_across_replicas() {
    let a = powernode_tests::federation::instance_with(&[
        ("POWERNODE_ACCEPT_RATE_BURST", "1000".to_owned()),
        ("POWERNODE_ACCEPT_FAILURE_LIMIT", "5".to_owned()),
    ])
    .await;
    a.ready().await;
    let propose = |host: &str| {
        a.app.post(
            PEERS,
            &a.admin,
            json!({"remote_instance_url": format!("https://{host}"), "spawn_role": "parent"}),
        )
    };
    let (_, proposed) = propose("b.example.com").await;
    let peer_id = proposed["data"]["peer"]["id"].as_str().unwrap().to_owned();
    let token = proposed["data"]["acceptance_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, other) = propose("c.example.com").await;
    let other_id = other["data"]["peer"]["id"].as_str().unwrap().to_owned();
    let (csr, ca) = (csr(), a_ca_pem());
    let body = |peer: &str, token: &str| {
        json!({"peer_id": peer, "acceptance_token": token, "contract_version": 1,
               "instance": {"instance_id": uuid::Uuid::new_v4(), "url": "https://b.example.com"},
               "csr_pem": csr, "ca_pem": ca})
    };
    let client = pinned_client(&a, None);
    let url = format!("{}{FEDERATION_API}/accept", a.public_url);
    for _ in 0..5 {
        let (status, answer) = post(&client, &url, &body(&peer_id, "pnfa1_wrong")).await;
        assert_eq!(status, 422, "{answer}");
    }
    // The sixth attempt for that pair is refused before it is checked, even with the right
    // token, until the window passes.
    let response = client
        .post(&url)
        .json(&body(&peer_id, &token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["code"], "RATE_LIMITED");
    let (_, shown) = a.app.get(&format!("{PEERS}/{peer_id}"), &a.admin).await;
    assert_eq!(shown["data"]["status"], "proposed", "nothing was accepted");

    // Another peer from the same address is not affected.
    let (status, answer) = post(&client, &url, &body(&other_id, "pnfa1_wrong")).await;
    assert_eq!(status, 422, "{answer}");

    // A second API process on the same database counts the same failures.
    let replica = powernode_tests::spawn_app(powernode_tests::settings_with(
        &a.db.url,
        &[
            ("POWERNODE_MASTER_KEY_FILE", a.master_key.clone()),
            ("POWERNODE_FEDERATION_PUBLIC_URL", a.public_url.clone()),
        ],
    ))
    .await;
    let replica_url = format!("{}{FEDERATION_API}/accept", replica.federation_address);
    let replica_client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let answer = powernode_tests::eventually_async(
        std::time::Duration::from_secs(60),
        "the replica's federation listener",
        || async {
            let r = replica_client
                .post(&replica_url)
                .json(&body(&peer_id, &token))
                .send()
                .await
                .ok()?;
            Some((r.status().as_u16(), r.json::<Value>().await.ok()?))
        },
    )
    .await;
    assert_eq!(
        (answer.0, answer.1["code"].as_str()),
        (429, Some("RATE_LIMITED")),
        "{answer:?}"
    );
}

#[tokio::test]
async fn certificate_lifetimes_rotation_point_and_grant_lifetimes_are_settings() {
    use diesel::RunQueryDsl;
    let common = [
        ("POWERNODE_ACCEPT_RATE_BURST", "1000".to_owned()),
        ("POWERNODE_ACCEPT_FAILURE_LIMIT", "1000".to_owned()),
    ];
    let a = powernode_tests::federation::instance_with(
        &[
            ("POWERNODE_CLIENT_CERT_DAYS", "20".to_owned()),
            ("POWERNODE_LISTENER_CERT_DAYS", "30".to_owned()),
            ("POWERNODE_GRANT_TTL_DAYS_DEFAULT", "5".to_owned()),
            ("POWERNODE_GRANT_TTL_DAYS_MAX", "10".to_owned()),
            // The renewal window must fit in the default lifetime.
            ("POWERNODE_GRANT_RENEW_WINDOW_DAYS", "2".to_owned()),
        ]
        .into_iter()
        .chain(common.clone())
        .collect::<Vec<_>>(),
    )
    .await;
    let b = powernode_tests::federation::instance_with(
        &[("POWERNODE_CERT_ROTATION_PERCENT", "50".to_owned())]
            .into_iter()
            .chain(common)
            .collect::<Vec<_>>(),
    )
    .await;
    a.ready().await;
    b.ready().await;
    powernode_tests::federation::propose_and_accept(&a, &b, "parent").await;
    b.worker("peer_heartbeats").await;

    // A issued B's client certificate for 20 days, and its own listener certificate for 30.
    let issued = &certificates(&b, "outbound")[0];
    let lifetime = issued.not_after.unwrap() - issued.not_before.unwrap();
    assert_eq!(lifetime.whole_days(), 20, "{lifetime}");
    #[derive(diesel::QueryableByName)]
    struct Days {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        days: i32,
    }
    let listener: Days = diesel::sql_query(
        "SELECT extract(day FROM not_after - not_before)::int AS days FROM server_certificates",
    )
    .get_result(&mut a.db.conn())
    .unwrap();
    assert_eq!(listener.days, 30);

    // B rotates at 50 %: 11 of 20 days is past it (the default 75 % would not be).
    diesel::sql_query(
        "UPDATE peer_certificates SET not_before = now() - interval '11 days', \
         not_after = now() + interval '9 days' WHERE direction = 'outbound'",
    )
    .execute(&mut b.db.conn())
    .unwrap();
    let b_row = b.only_peer().await["id"].as_str().unwrap().to_owned();
    let (_, shown) = b.app.get(&format!("{PEERS}/{b_row}"), &b.admin).await;
    assert_eq!(
        shown["data"]["certificates"]["outbound"]["due_for_rotation"],
        true
    );

    // A's grants: 5 days unless asked, at most 10.
    let a_row = a.only_peer().await["id"].as_str().unwrap().to_owned();
    let grants = format!("{PEERS}/{a_row}/grants");
    let (status, grant) = a
        .app
        .post(
            &grants,
            &a.admin,
            json!({"resource_kind": "sdwan_config", "permission_scopes": ["read"]}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    let at = |field: &str| {
        time::OffsetDateTime::parse(
            grant["data"]["grant"][field].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert_eq!((at("expires_at") - at("created_at")).whole_days(), 5);
    let (status, refused) = a
        .app
        .post(
            &grants,
            &a.admin,
            json!({"resource_kind": "sdwan_config", "permission_scopes": ["read"], "ttl_days": 11}),
        )
        .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (422, Some("ttl_days must be between 1 and 10")),
        "{refused}"
    );
}

/// Opens a TLS connection to `addr` and sends a request head whose body never comes: the
/// connection stays open (the handler waits for the body) until it is dropped.
fn held_connection(addr: &str) -> openssl::ssl::SslStream<std::net::TcpStream> {
    use std::io::Write;
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    let mut connector =
        openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).unwrap();
    connector.set_verify(openssl::ssl::SslVerifyMode::NONE);
    let mut tls = connector.build().connect("localhost", tcp).unwrap();
    tls.write_all(
        b"POST /api/v1/system/federation_api/accept HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .unwrap();
    tls.flush().unwrap();
    tls
}

#[tokio::test]
async fn connections_per_source_address_are_capped_before_tls() {
    let a = powernode_tests::federation::instance_with(&[(
        "POWERNODE_FEDERATION_MAX_CONNECTIONS_PER_SOURCE",
        "4".to_owned(),
    )])
    .await;
    a.ready().await;
    let addr = a.public_url.trim_start_matches("https://").to_owned();
    let ca_from = |source: &str| {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .local_address(source.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap();
        let url = format!("{}{FEDERATION_API}/ca", a.public_url);
        async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
    };
    // 127.0.0.1 fills its share with connections that stay open.
    let held = tokio::task::spawn_blocking(move || {
        (0..4).map(|_| held_connection(&addr)).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    // One more from that address is closed before TLS; another address is served.
    assert!(ca_from("127.0.0.1").await.is_err(), "over the cap");
    assert_eq!(ca_from("127.0.0.2").await.unwrap(), 200);
    // The operator listener of the same process answers too.
    let (status, _) = a.app.get(PEERS, &a.admin).await;
    assert_eq!(status, 200);
    // Closing them gives the slots back.
    drop(held);
    powernode_tests::eventually_async(std::time::Duration::from_secs(60), "a slot again", || {
        let call = ca_from("127.0.0.1");
        async move { (call.await.ok() == Some(200)).then_some(()) }
    })
    .await;
}
