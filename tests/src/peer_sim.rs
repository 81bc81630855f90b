//! A simulator of many peers on loopback ports (issue 17): `live` TLS listeners that answer
//! the federation heartbeat like a peer would, and `dead` ones that accept the connection and
//! never answer (a peer whose process hangs, or a blackholed port behind a proxy). It counts
//! heartbeats and TLS connections per peer, and seeds the instance under test with a peer row
//! and an outbound client certificate for each, so its real PeerClient calls them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helper fails loudly"
)]

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use diesel::PgConnection;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslMethod, SslVerifyMode};
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};
use uuid::Uuid;

pub struct PeerSim {
    /// `https://127.0.0.1:<port>` of each peer, live ones first.
    pub urls: Vec<String>,
    pub live: usize,
    ca: X509,
    ca_key: PKey<Private>,
    heartbeats: Arc<Vec<AtomicU64>>,
    connections: Arc<Vec<AtomicU64>>,
    /// Held open and never answered.
    _dead: tokio::task::JoinHandle<()>,
}

fn ec_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn cert(
    cn: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    serial: u32,
) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(90).unwrap())
        .unwrap();
    match issuer {
        None => {
            b.set_issuer_name(&name).unwrap();
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
            b.sign(key, MessageDigest::sha256()).unwrap();
        }
        Some((ca, ca_key)) => {
            b.set_issuer_name(ca.subject_name()).unwrap();
            let san = SubjectAlternativeName::new()
                .ip("127.0.0.1")
                .build(&b.x509v3_context(Some(ca), None))
                .unwrap();
            b.append_extension(san).unwrap();
            b.sign(ca_key, MessageDigest::sha256()).unwrap();
        }
    }
    b.build()
}

// The body is read (and ignored): actix closes a connection whose request body was left unread.
async fn heartbeat(req: HttpRequest, _body: web::Bytes, sim: web::Data<Counters>) -> HttpResponse {
    let port = req.app_config().local_addr().port();
    if let Some(i) = sim.index(port) {
        sim.heartbeats[i].fetch_add(1, Ordering::Relaxed);
    }
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    HttpResponse::Ok().json(serde_json::json!({
        "success": true, "data": {"status": "active", "last_heartbeat_at": now}
    }))
}

struct Counters {
    first_port: Vec<u16>,
    heartbeats: Arc<Vec<AtomicU64>>,
}

impl Counters {
    fn index(&self, port: u16) -> Option<usize> {
        self.first_port.iter().position(|p| *p == port)
    }
}

impl PeerSim {
    /// Starts `live` answering peers and `dead` silent ones.
    pub async fn start(live: usize, dead: usize) -> PeerSim {
        let ca_key = ec_key();
        let ca = cert("peer-sim CA", &ca_key, None, 1);
        let server_key = ec_key();
        let server = cert("127.0.0.1", &server_key, Some((&ca, &ca_key)), 2);
        let listeners: Vec<TcpListener> = (0..live)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let heartbeats: Arc<Vec<AtomicU64>> =
            Arc::new((0..live).map(|_| AtomicU64::new(0)).collect());
        let connections: Arc<Vec<AtomicU64>> =
            Arc::new((0..live).map(|_| AtomicU64::new(0)).collect());
        let counters = web::Data::new(Counters {
            first_port: ports.clone(),
            heartbeats: heartbeats.clone(),
        });
        let (conn_counts, conn_ports) = (connections.clone(), ports.clone());
        let mut http = HttpServer::new(move || {
            App::new().app_data(counters.clone()).route(
                "/api/v1/system/federation_api/heartbeat",
                web::post().to(heartbeat),
            )
        })
        .workers(2)
        .backlog(1024)
        .keep_alive(std::time::Duration::from_secs(120))
        .on_connect(move |conn, _| {
            let local = conn
                .downcast_ref::<actix_tls::accept::openssl::TlsStream<actix_web::rt::net::TcpStream>>()
                .and_then(|s| s.get_ref().local_addr().ok());
            if let Some(i) = local.and_then(|a| conn_ports.iter().position(|p| *p == a.port())) {
                conn_counts[i].fetch_add(1, Ordering::Relaxed);
            }
        });
        for listener in listeners {
            let mut tls = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
            tls.set_private_key(&server_key).unwrap();
            tls.set_certificate(&server).unwrap();
            // The simulated peers do not check who calls them: the caller is what is measured.
            tls.set_verify(SslVerifyMode::NONE);
            http = http.listen_openssl(listener, tls).unwrap();
        }
        tokio::spawn(http.disable_signals().run());

        let mut dead_listeners = Vec::new();
        for _ in 0..dead {
            dead_listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let dead_ports: Vec<u16> = dead_listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let dead_task = tokio::spawn(async move {
            let mut held = Vec::new();
            let accepts = dead_listeners.into_iter().map(|l| {
                Box::pin(async move {
                    let mut sockets = Vec::new();
                    while let Ok((s, _)) = l.accept().await {
                        sockets.push(s);
                    }
                    sockets
                })
            });
            held.extend(futures::future::join_all(accepts).await);
        });
        let urls: Vec<String> = ports
            .iter()
            .chain(dead_ports.iter())
            .map(|p| format!("https://127.0.0.1:{p}"))
            .collect();
        // Serving before anyone measures: every live listener answers once (then forgotten).
        let probe = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        for url in &urls[..live] {
            crate::eventually_async(std::time::Duration::from_secs(60), "simulated peer", || {
                let (probe, url) = (probe.clone(), url.clone());
                async move { probe.get(url).send().await.ok() }
            })
            .await;
        }
        for c in connections.iter() {
            c.store(0, Ordering::Relaxed);
        }
        PeerSim {
            urls,
            live,
            ca,
            ca_key,
            heartbeats,
            connections,
            _dead: dead_task,
        }
    }

    /// The simulator's CA (what a peer row pins).
    pub fn ca_pem(&self) -> String {
        String::from_utf8(self.ca.to_pem().unwrap()).unwrap()
    }

    /// A CA that issued none of the simulator's certificates.
    pub fn unrelated_ca_pem() -> String {
        String::from_utf8(cert("unrelated CA", &ec_key(), None, 1).to_pem().unwrap()).unwrap()
    }

    /// Heartbeats live peer `i` answered.
    pub fn heartbeats(&self, i: usize) -> u64 {
        self.heartbeats[i].load(Ordering::Relaxed)
    }

    /// TLS connections live peer `i` accepted.
    pub fn connections(&self, i: usize) -> u64 {
        self.connections[i].load(Ordering::Relaxed)
    }

    /// Seeds the instance behind `conn` (its master key at `master_key_file`) with one active
    /// platform peer per simulated peer: pinned to the simulator's CA, with an outbound client
    /// certificate and sealed key. Returns the peer ids in `urls` order.
    pub fn seed(&self, conn: &mut PgConnection, master_key_file: &str) -> Vec<Uuid> {
        use diesel::RunQueryDsl;
        use diesel::sql_types::Text;
        let master =
            powernode_api::crypto::MasterKey::load(std::path::Path::new(master_key_file)).unwrap();
        let ca_pem = String::from_utf8(self.ca.to_pem().unwrap()).unwrap();
        let ca_sha = powernode_api::ca::fingerprint(&self.ca).unwrap();
        let client_key = ec_key();
        let sealed = powernode_store::peers::Sealed(
            master
                .seal(
                    powernode_api::ca::CLIENT_KEY_CONTEXT,
                    &client_key.private_key_to_pem_pkcs8().unwrap(),
                )
                .unwrap(),
        );
        let mut ids = Vec::new();
        for (n, url) in self.urls.iter().enumerate() {
            let id = Uuid::new_v4();
            diesel::sql_query(
                "INSERT INTO peers (id, origin, remote_instance_url, peer_kind, spawn_role, spawn_mode,
                                    status, last_heartbeat_at, remote_ca_pem, remote_ca_sha256)
                 VALUES ($1, 'proposed_here', $2, 'platform', 'symmetric', 'autonomous_peer',
                         'active', now(), $3, $4)",
            )
            .bind::<diesel::sql_types::Uuid, _>(id)
            .bind::<Text, _>(url)
            .bind::<Text, _>(&ca_pem)
            .bind::<Text, _>(&ca_sha)
            .execute(conn)
            .unwrap();
            let serial = u32::try_from(n).unwrap() + 100;
            let client = cert(
                &format!("fed:{id}"),
                &client_key,
                Some((&self.ca, &self.ca_key)),
                serial,
            );
            let (not_before, not_after) = powernode_api::ca::validity(&client);
            powernode_store::certificates::insert(
                conn,
                &powernode_store::certificates::NewCertificate {
                    peer_id: id,
                    direction: powernode_store::certificates::OUTBOUND,
                    serial: &powernode_api::ca::serial_hex(&client).unwrap(),
                    subject: &format!("CN=fed:{id}"),
                    fingerprint_sha256: &powernode_api::ca::fingerprint(&client).unwrap(),
                    cert_pem: std::str::from_utf8(&client.to_pem().unwrap()).unwrap(),
                    key_sealed: Some(&sealed),
                    not_before,
                    not_after,
                },
            )
            .unwrap();
            ids.push(id);
        }
        ids
    }
}
