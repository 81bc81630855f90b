//! The federation listener (SPEC §4): a second actix-web server with OpenSSL TLS. Its server
//! certificate comes from our CA (SANs = the host of `POWERNODE_FEDERATION_PUBLIC_URL`); client
//! certificates are verified against our CA only and are optional at the TLS layer, so `ca` and
//! `accept` work without one; `PeerAuth` enforces them everywhere else.

pub mod auth;
pub mod batch;
pub mod routes;

use std::net::TcpListener;

use actix_web::dev::{Extensions, ServerHandle};
use actix_web::middleware::ErrorHandlers;
use actix_web::{App, web};
use openssl::pkey::PKey;
use openssl::ssl::{SslAcceptor, SslMethod, SslVerifyMode};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use powernode_store::{StoreError, certificates};
use secrecy::ExposeSecret;
use tracing_actix_web::TracingLogger;
use utoipa_actix_web::AppExt;

use crate::ca::{self, OpenCa, SERVER_KEY_CONTEXT};
use crate::db;
use crate::error;
use crate::startup::AppState;

/// What the TLS layer learned about the client certificate, per connection.
#[derive(Debug, Clone)]
pub struct PeerCert {
    pub fingerprint_sha256: String,
    /// The `powernode://instance/<id>` URI SAN, read once per connection (we put it there when
    /// we issued the certificate, and the fingerprint ties the presented one to our row).
    pub instance_id: Option<String>,
}

type Tls = actix_tls::accept::openssl::TlsStream<actix_web::rt::net::TcpStream>;

/// Reads the client certificate once per connection (after the TLS handshake).
fn on_connect(tls: &Tls, ext: &mut Extensions) {
    if let Some(cert) = tls.ssl().peer_certificate()
        && let Ok(fingerprint_sha256) = ca::fingerprint(&cert)
    {
        let instance_id = cert.subject_alt_names().and_then(|names| {
            names.iter().find_map(|n| {
                n.uri()
                    .and_then(|u| u.strip_prefix("powernode://instance/"))
                    .map(str::to_owned)
            })
        });
        ext.insert(PeerCert {
            fingerprint_sha256,
            instance_id,
        });
    }
}

/// The host the listener certificate must name.
pub fn public_host(settings: &crate::settings::Settings) -> String {
    url::Url::parse(settings.federation_public_url.as_str())
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Our current server certificate for `host`, issuing one when missing or past 75 % of its
/// lifetime. Returns (certificate PEM, sealed key).
async fn server_certificate(
    state: &AppState,
    open: &OpenCa,
    host: &str,
) -> anyhow::Result<(String, Vec<u8>)> {
    let h = host.to_owned();
    let (existing, now) = db::run(&state.db, move |conn| -> Result<_, StoreError> {
        Ok((
            certificates::server_certificate(conn, &h)?,
            powernode_store::database_now(conn)?,
        ))
    })
    .await
    .map_err(|e| anyhow::anyhow!("listener certificate lookup: {}", e.detail()))?;
    if let Some(c) = existing {
        let percent = state.settings.cert_rotation_percent;
        if !powernode_domain::certificate::due_for_rotation(c.not_before, c.not_after, now, percent)
        {
            return Ok((c.cert_pem, c.key_sealed));
        }
        tracing::info!(host, not_after = %c.not_after, "listener certificate past {percent} % of its lifetime; re-issuing");
    }
    let (issued, sealed) = open.issue_server(
        host,
        now,
        state.settings.listener_cert_days,
        &state.settings.master_key,
    )?;
    let h = host.to_owned();
    let (pem, key) = (issued.pem.clone(), sealed.clone());
    db::run(&state.db, move |conn| {
        certificates::insert_server_certificate(
            conn,
            &h,
            &pem,
            &key,
            issued.not_before,
            issued.not_after,
        )
    })
    .await
    .map_err(|e| anyhow::anyhow!("listener certificate insert: {}", e.detail()))?;
    tracing::info!(host, serial = %issued.serial_hex, "listener certificate issued by the internal CA");
    Ok((issued.pem, sealed))
}

/// Builds the TLS acceptor: our server certificate, client certificates verified against our
/// CA only (no system roots), optional at the handshake.
pub fn acceptor(
    ca_cert: &X509,
    cert_pem: &str,
    key_pem: &[u8],
) -> anyhow::Result<openssl::ssl::SslAcceptorBuilder> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())?;
    let cert = X509::from_pem(cert_pem.as_bytes())?;
    b.set_certificate(&cert)?;
    b.add_extra_chain_cert(ca_cert.clone())?;
    let key = PKey::private_key_from_pem(key_pem)?;
    b.set_private_key(&key)?;
    b.check_private_key()?;
    let mut store = X509StoreBuilder::new()?;
    store.add_cert(ca_cert.clone())?;
    b.set_verify_cert_store(store.build())?;
    let mut names = openssl::stack::Stack::new()?;
    names.push(ca_cert.subject_name().to_owned()?)?;
    b.set_client_ca_list(names);
    b.set_verify(SslVerifyMode::PEER);
    Ok(b)
}

/// Starts the federation listener once its prerequisites exist (PostgreSQL reachable, no
/// pending migrations, the instance identity and CA, the listener certificate), retrying every
/// few seconds until they do, then serves until the process stops. Until then the socket is
/// bound but not listening, so connections are refused at once (peers fail fast instead of
/// hanging in the backlog, or being accepted and dropped) and
/// `/readyz` answers 503 `not ready: federation_listener`. The handle lets
/// `run_until_stopped` drain it, and readiness see that it runs.
pub async fn supervise(
    state: web::Data<AppState>,
    socket: socket2::Socket,
    handle_tx: tokio::sync::watch::Sender<Option<ServerHandle>>,
) {
    let mut delay = RETRY_MIN;
    let mut last_reason = String::new();
    let acceptor = loop {
        match prerequisites(&state).await {
            Ok(acceptor) => break acceptor,
            Err(e) => {
                if let Some(fatal) = e.downcast_ref::<FatalConfig>() {
                    // SPEC §4: a configured certificate that does not chain to our CA stops
                    // the API.
                    tracing::error!("{}", fatal.0);
                    std::process::exit(2);
                }
                let reason = error::one_line(&format!("{e:#}"));
                // Logged when the reason changes, not on every retry.
                if reason != last_reason {
                    tracing::warn!(
                        "federation listener not started: {reason}; retrying every {} s until it can",
                        RETRY_MAX.as_secs()
                    );
                    last_reason = reason;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    };
    let listener = match socket.listen(LISTEN_BACKLOG) {
        Ok(()) => TcpListener::from(socket),
        Err(e) => {
            tracing::error!("federation listener cannot start: {e}");
            return;
        }
    };
    if let Err(e) = serve(state, listener, acceptor, handle_tx).await {
        tracing::error!(
            "federation listener stopped: {}",
            error::one_line(&format!("{e:#}"))
        );
    }
}

/// How long an idle peer connection stays open (actix's default is 5 s). A peer calls once a
/// tick (60 s) and keeps its connection up to 90 s (`PEER_IDLE_SECS` on its side); longer than
/// both, so the next tick reuses it and the client, not us, closes an idle one first (no
/// connection closed under a request being sent).
const KEEP_ALIVE_SECS: u64 = 120;

const RETRY_MIN: std::time::Duration = std::time::Duration::from_millis(500);
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(5);
/// The federation listener's accept backlog (actix's own default).
pub const LISTEN_BACKLOG: i32 = 2048;

/// Binds the federation address without listening yet: a taken port fails the start at once,
/// and until the listener can serve the kernel refuses connections (a peer, or a load
/// balancer in front of several replicas, fails over at once — nothing is accepted and then
/// dropped). [`supervise`] starts listening when the prerequisites are there.
pub fn bind(address: &str) -> std::io::Result<socket2::Socket> {
    let address: std::net::SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(address)?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // As std's bind does on Unix: a restart does not wait for TIME_WAIT connections.
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    Ok(socket)
}

/// What the listener needs before it can serve: a migrated schema, the identity and CA, and
/// the TLS acceptor with the listener certificate.
async fn prerequisites(state: &AppState) -> anyhow::Result<openssl::ssl::SslAcceptorBuilder> {
    let pending = db::run(&state.db, powernode_store::migrate::pending)
        .await
        .map_err(|e| anyhow::anyhow!("PostgreSQL: {}", e.detail()))?;
    if !pending.is_empty() {
        anyhow::bail!(
            "migrations are pending ({}): run `powernode-api migrate`",
            pending.join(", ")
        );
    }
    let identity = ca::ensure_identity(&state.db, &state.settings.master_key).await?;
    tracing::info!(instance_id = %identity.instance_id, ca_sha256 = %identity.ca_sha256, "instance identity ready");
    let open = OpenCa::open(&identity, &state.settings.master_key)?;
    let host = public_host(&state.settings);
    let acceptor = match &state.settings.federation_tls_files {
        Some((cert_file, key_file)) => {
            let cert_pem = std::fs::read_to_string(cert_file)?;
            let key_pem = std::fs::read(key_file)?;
            check_chains_to(open.cert(), &cert_pem).map_err(|reason| {
                FatalConfig(format!(
                    "POWERNODE_FEDERATION_TLS_CERT_FILE {} does not chain to this instance's CA ({reason}); refusing to start",
                    cert_file.display()
                ))
            })?;
            acceptor(open.cert(), &cert_pem, &key_pem)?
        }
        None => {
            let (cert_pem, sealed) = server_certificate(state, &open, &host).await?;
            let key = state
                .settings
                .master_key
                .open(SERVER_KEY_CONTEXT, &sealed)?;
            acceptor(open.cert(), &cert_pem, key.expose_secret())?
        }
    };
    Ok(acceptor)
}

/// Serves the federation API on `listener` until the process stops.
async fn serve(
    state: web::Data<AppState>,
    listener: TcpListener,
    acceptor: openssl::ssl::SslAcceptorBuilder,
    handle_tx: tokio::sync::watch::Sender<Option<ServerHandle>>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let app_state = state.clone();
    let server = server(&state.settings, listener, acceptor, move || {
        app(app_state.clone())
    })?;
    let _ = handle_tx.send(Some(server.handle()));
    tracing::info!(
        "federation API listening on https://{addr} as {}",
        state.settings.federation_public_url
    );
    server.await?;
    Ok(())
}

/// The federation listener around any application: actix-server → per-source gate → TLS →
/// HTTP (keep-alive, disconnect timeout, client certificate read once per connection) → the
/// App. The API serves [`app`] through it; the bench's bare mTLS baseline serves one fixed
/// route through exactly the same pipeline.
///
/// Assembled from actix-web's parts rather than `HttpServer`, so that a connection over the
/// per-source cap is closed before its TLS handshake: idle connections from one address cannot
/// exhaust the process's descriptors and starve legitimate peers or the operator listener.
pub fn server<F, I, S, B>(
    settings: &crate::settings::Settings,
    listener: TcpListener,
    acceptor: openssl::ssl::SslAcceptorBuilder,
    app: F,
) -> anyhow::Result<actix_server::Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: actix_service::IntoServiceFactory<S, actix_http::Request>,
    S: actix_service::ServiceFactory<
            actix_http::Request,
            Config = actix_web::dev::AppConfig,
            Error = actix_web::Error,
        > + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<actix_http::Response<B>> + 'static,
    <S::Service as actix_service::Service<actix_http::Request>>::Future: 'static,
    S::Service: 'static,
    B: actix_web::body::MessageBody + 'static,
{
    use actix_service::{ServiceFactory, ServiceFactoryExt, fn_factory, fn_service, map_config};
    use actix_web::dev::AppConfig;
    type Tcp = actix_web::rt::net::TcpStream;

    let addr = listener.local_addr()?;
    let acceptor = acceptor.build();
    let gate = PerSource::new(settings.federation_max_connections_per_source);
    Ok(actix_server::Server::build()
        .shutdown_timeout(settings.shutdown_grace.as_secs())
        .listen("federation", listener, move || {
            // HttpServer's defaults where actix-http's differ: a closing connection gets 1 s
            // to flush its last answer (0 would reset it under the client's read).
            let http = actix_http::HttpService::build()
                .keep_alive(std::time::Duration::from_secs(KEEP_ALIVE_SECS))
                .client_disconnect_timeout(std::time::Duration::from_secs(1))
                .secure()
                .local_addr(addr)
                .on_connect_ext(|io: &Tls, ext: &mut Extensions| on_connect(io, ext))
                .finish(map_config(
                    app()
                        .into_factory()
                        .map_err(|e: actix_web::Error| e.error_response()),
                    |_| AppConfig::default(),
                ))
                .openssl(acceptor.clone());
            let gate = gate.clone();
            fn_factory(move || {
                let http = http.new_service(());
                let gate = gate.clone();
                async move {
                    let http = std::rc::Rc::new(http.await?);
                    Ok::<_, ()>(fn_service(move |stream: Tcp| {
                        let slot = stream.peer_addr().ok().and_then(|a| gate.admit(a.ip()));
                        let http = http.clone();
                        async move {
                            // Over the cap: dropped unanswered, before TLS.
                            let Some(_slot) = slot else {
                                return Ok(());
                            };
                            actix_service::Service::call(&*http, stream).await
                        }
                    }))
                }
            })
        })?
        .run())
}

/// The federation listener's application: its routes, the NUL guard, the envelope for bare
/// errors, security headers and request logging.
fn app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let (app, _) = App::new()
        .wrap(actix_web::middleware::from_fn(crate::nul::refuse_nul))
        .wrap(ErrorHandlers::new().default_handler(error::envelope_bare_errors))
        .wrap(
            actix_web::middleware::DefaultHeaders::new()
                .add(("X-Content-Type-Options", "nosniff"))
                .add(("Cache-Control", "no-store"))
                .add(("Strict-Transport-Security", "max-age=31536000")),
        )
        .wrap(TracingLogger::default())
        .app_data(state)
        .app_data(
            web::JsonConfig::default()
                .limit(error::MAX_BODY_BYTES)
                .error_handler(error::json_error),
        )
        .into_utoipa_app()
        .configure(routes::configure)
        .split_for_parts();
    app.default_service(web::to(routes::not_found))
}

/// Open federation connections per source address, capped
/// (`POWERNODE_FEDERATION_MAX_CONNECTIONS_PER_SOURCE`).
#[derive(Clone)]
struct PerSource {
    cap: u32,
    open: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, u32>>>,
}

impl PerSource {
    fn new(cap: u32) -> Self {
        PerSource {
            cap,
            open: std::sync::Arc::default(),
        }
    }

    /// A slot for one more connection from `ip`, or `None` at the cap. The slot is given back
    /// when the connection ends (dropped).
    fn admit(&self, ip: std::net::IpAddr) -> Option<SourceSlot> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(ip).or_default();
        if *n >= self.cap {
            tracing::warn!(source = %ip, cap = self.cap, "federation connection refused: too many open from this address");
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            ip,
            open: self.open.clone(),
        })
    }
}

struct SourceSlot {
    ip: std::net::IpAddr,
    open: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, u32>>>,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A configuration the API must not run with.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct FatalConfig(String);

/// Whether `cert_pem` was issued by `ca` (issuer name and signature).
fn check_chains_to(ca: &X509, cert_pem: &str) -> Result<(), String> {
    let cert =
        X509::from_pem(cert_pem.as_bytes()).map_err(|_| "not a PEM certificate".to_owned())?;
    let ca_key = ca.public_key().map_err(|e| e.to_string())?;
    if cert.issuer_name_hash() != ca.subject_name_hash() || !cert.verify(&ca_key).unwrap_or(false) {
        return Err("issued by another CA".to_owned());
    }
    Ok(())
}
