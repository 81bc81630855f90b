//! Two-instance helpers for federation tests.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use serde_json::Value;

use crate::{TestApp, TestDb, WORKER_TOKEN, admin_token, free_port, settings_from, spawn_app};

pub const PEERS: &str = "/api/v1/system/federation/peers";

pub struct Instance {
    pub db: TestDb,
    pub app: TestApp,
    pub admin: String,
    pub public_url: String,
    pub master_key: String,
}

/// One instance with its own database, admin operator and federation listener.
pub async fn instance() -> Instance {
    instance_with(&[
        // Tests call accept in bursts (50 at once) from one address, and walk through every
        // refusal of one peer (the failed-accept limit has its own test).
        ("POWERNODE_ACCEPT_RATE_BURST", "1000".to_owned()),
        ("POWERNODE_ACCEPT_FAILURE_LIMIT", "1000".to_owned()),
    ])
    .await
}

/// As `instance`, with extra settings.
pub async fn instance_with(extra: &[(&'static str, String)]) -> Instance {
    let db = TestDb::new();
    let admin = admin_token(&mut db.conn());
    let port = free_port();
    let public_url = format!("https://127.0.0.1:{port}");
    let master_key = crate::master_key_file();
    let mut vars: Vec<(&str, String)> = [
        ("POWERNODE_MASTER_KEY_FILE", master_key.clone()),
        ("POWERNODE_DATABASE_URL", db.url.clone()),
        ("POWERNODE_REDIS_URL", crate::redis_url()),
        ("POWERNODE_WORKER_TOKEN", WORKER_TOKEN.to_owned()),
        ("POWERNODE_HTTP_LISTEN", "127.0.0.1:0".to_owned()),
        ("POWERNODE_FEDERATION_LISTEN", format!("127.0.0.1:{port}")),
        ("POWERNODE_FEDERATION_PUBLIC_URL", public_url.clone()),
        ("POWERNODE_ENVIRONMENT", "development".to_owned()),
    ]
    .into_iter()
    .collect();
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push((k, v.clone()));
    }
    let app = spawn_app(settings_from(&vars)).await;
    Instance {
        db,
        app,
        admin,
        public_url,
        master_key,
    }
}

impl Instance {
    /// Runs one worker endpoint (`peer_heartbeats`, `grant_maintenance`, `heartbeat_sweep`)
    /// through the typed worker client; its answer as JSON.
    pub async fn worker(&self, path: &str) -> Value {
        let api = self.app.worker_api();
        let answer = match path {
            "peer_heartbeats" => serde_json::to_value(api.peer_heartbeats().await.unwrap()),
            "grant_maintenance" => serde_json::to_value(api.grant_maintenance().await.unwrap()),
            "heartbeat_sweep" => serde_json::to_value(api.heartbeat_sweep().await.unwrap()),
            other => panic!("no worker endpoint {other}"),
        };
        answer.unwrap()
    }

    /// The typed operator client with this instance's admin token.
    pub fn operator(&self) -> powernode_client::OperatorClient {
        self.app.operator(&self.admin)
    }

    pub async fn only_peer(&self) -> Value {
        let peers = self
            .operator()
            .peers(&powernode_client::peers::ListQuery::default())
            .await
            .unwrap();
        assert_eq!(peers.len(), 1, "{peers:?}");
        serde_json::to_value(&peers[0]).unwrap()
    }

    pub async fn ready(&self) {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let url = format!("{}/api/v1/system/federation_api/ca", self.public_url);
        crate::eventually_async(
            std::time::Duration::from_secs(60),
            "federation listener",
            || {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    client
                        .get(url)
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status() == 200)
                }
            },
        )
        .await;
    }
}

/// A client that trusts `inst`'s CA (pinned, no system roots), optionally with a client identity.
pub fn pinned_client(inst: &Instance, identity: Option<reqwest::Identity>) -> reqwest::Client {
    let ca = powernode_store::identity::get(&mut inst.db.conn())
        .unwrap()
        .unwrap()
        .ca_cert_pem;
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()]);
    if let Some(id) = identity {
        b = b.identity(id);
    }
    b.build().unwrap()
}

pub async fn post(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let resp = client.post(url).json(body).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// `inst`'s client identity for its (only) peer: its outbound certificate and opened key.
pub fn outbound_identity(inst: &Instance) -> reqwest::Identity {
    let mut conn = inst.db.conn();
    let peer = powernode_store::peers::list(&mut conn, None).unwrap()[0].id;
    let out = powernode_store::certificates::for_peer(&mut conn, peer, "outbound").unwrap();
    let master =
        powernode_api::crypto::MasterKey::load(std::path::Path::new(&inst.master_key)).unwrap();
    let key = master
        .open(
            powernode_api::ca::CLIENT_KEY_CONTEXT,
            out[0].key_sealed.as_ref().unwrap(),
        )
        .unwrap();
    reqwest::Identity::from_pkcs8_pem(
        out[0].cert_pem.as_ref().unwrap().as_bytes(),
        secrecy::ExposeSecret::expose_secret(&key),
    )
    .unwrap()
}

/// A proposes B (with `spawn_role`), B accepts the token: both `accepted`. Returns the token.
pub async fn propose_and_accept(a: &Instance, b: &Instance, spawn_role: &str) -> String {
    use powernode_client::Gated;
    use powernode_client::peers::{AcceptRequest, ProposeRequest};
    let propose = ProposeRequest {
        remote_instance_url: b.public_url.clone(),
        spawn_role: Some(spawn_role.to_owned()),
        ..ProposeRequest::default()
    };
    let Gated::Done(proposed) = a.operator().propose(&propose).await.unwrap() else {
        panic!("propose was queued for approval");
    };
    let token = proposed.acceptance_token.expect("a token");
    let accept = AcceptRequest {
        acceptance_token: token.clone(),
    };
    let Gated::Done(accepted) = b.operator().accept(&accept).await.unwrap() else {
        panic!("accept was queued for approval");
    };
    assert_eq!(accepted.status, powernode_domain::PeerStatus::Accepted);
    token
}

/// A proposes B, B accepts, B's PeerClient handshakes: both enrolled.
pub async fn federated_pair() -> (Instance, Instance) {
    let a = instance().await;
    let b = instance().await;
    a.ready().await;
    b.ready().await;
    propose_and_accept(&a, &b, "parent").await;
    b.worker("peer_heartbeats").await;
    (a, b)
}
