//! The PeerClient's mTLS transport, and the cache that keeps it between ticks.
//!
//! Each peer gets a hyper-util client over tokio-openssl whose connections start from one
//! shared OpenSSL client context (TLS 1.2+, peer verification, no trust anchors of its own) and
//! are given, per connection, the peer's pinned CA as the only trust anchor and our client
//! certificate for it; the peer's host name is checked as native-tls does. Not reqwest's
//! native-tls client: building one reads the system CA bundle twice (OpenSSL's default paths,
//! then native-tls's probe; ~40 ms on the reference machine, every client), which made a pass
//! over 1,000 peers CPU-bound for 30 s. And one shared context rather than one per peer: an
//! OpenSSL 3 context costs tens of kilobytes, which 1,000 kept peers would multiply.
//!
//! Transports are kept per peer (`POWERNODE_PEER_CLIENT_CACHE`, see [`PeerClients`]) so a
//! peer's keep-alive connection is reused by the next tick (no TCP + TLS handshake per
//! heartbeat); one idle connection each, its TLS buffers released while idle, so thousands of
//! peers cannot grow the API's memory without bound. A transport is keyed by what it was built
//! from (our certificate, the pinned CA, the URL): a renewal or re-pin builds a new one.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslMode, SslVerifyMode, SslVersion,
};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509CheckFlags;
use powernode_client::client::{Sending, Transport};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;
use uuid::Uuid;

/// A peer's answer larger than this is refused (ours are a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How a peer is reached: its pinned CA, our client identity (certificate PEM, PKCS#8 key PEM;
/// none only on the partial-config plaintext fallback) and the bounds on a call.
pub struct PeerTls<'a> {
    pub ca_pem: &'a str,
    pub identity: Option<(&'a str, &'a [u8])>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub idle: Duration,
}

/// One peer's transport: a pooled HTTP/1.1 client (one idle keep-alive connection) whose
/// connections are TCP + TLS on the shared context, given the peer's pinned CA and our identity.
pub struct PeerTransport {
    client: hyper_util::client::legacy::Client<TlsConnector, reqwest::Body>,
    timeout: Duration,
}

impl PeerTransport {
    pub fn new(tls: &PeerTls<'_>) -> Result<Self, String> {
        let base = BASE.as_ref().map_err(Clone::clone)?.clone();
        let peer = PeerIdentity::read(tls).map_err(|e| format!("TLS identity: {e}"))?;
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(tls.connect_timeout));
        let connector = TlsConnector {
            tcp,
            base,
            peer: std::sync::Arc::new(peer),
            connect_timeout: tls.connect_timeout,
        };
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(tls.idle)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(PeerTransport {
            client,
            timeout: tls.timeout,
        })
    }
}

impl Transport for PeerTransport {
    fn execute(&self, req: reqwest::Request) -> Sending<'_> {
        Box::pin(async move {
            // Failures read like reqwest's ("error sending request for url (…): cause"), which
            // the doctor and the runbook recognise as transport failures.
            let failed = |url: &str, e: &(dyn std::error::Error + 'static)| {
                format!("error sending request for url ({url}): {}", chain(e))
            };
            let url = req.url().to_string();
            let req = http::Request::<reqwest::Body>::try_from(req)
                .map_err(|e| format!("request for {url} could not be built: {}", chain(&e)))?;
            let answer = async {
                let resp = self
                    .client
                    .request(req)
                    .await
                    .map_err(|e| failed(&url, &e))?;
                let (parts, body) = resp.into_parts();
                let body = http_body_util::Limited::new(body, MAX_ANSWER_BYTES)
                    .collect()
                    .await
                    .map_err(|e| failed(&url, &*e))?
                    .to_bytes();
                Ok(reqwest::Response::from(http::Response::from_parts(
                    parts, body,
                )))
            };
            tokio::time::timeout(self.timeout, answer)
                .await
                .map_err(|_| {
                    format!("error sending request for url ({url}): operation timed out")
                })?
        })
    }
}

/// An error and its causes on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The client context every peer connection starts from, built once: TLS 1.2+, the server's
/// certificate must verify (against the trust anchor each connection is given), no default
/// verify paths, TLS buffers released while a connection is idle.
static BASE: std::sync::LazyLock<Result<SslContext, String>> = std::sync::LazyLock::new(|| {
    let build = || -> Result<SslContext, openssl::error::ErrorStack> {
        let mut b = SslContextBuilder::new(SslMethod::tls_client())?;
        b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
        b.set_verify(SslVerifyMode::PEER);
        b.set_mode(SslMode::RELEASE_BUFFERS);
        Ok(b.build())
    };
    build().map_err(|e| format!("TLS client context: {e}"))
});

/// What one peer's connections are given: its pinned CA(s), our certificate (and chain) and
/// key for it.
struct PeerIdentity {
    cas: Vec<X509>,
    ours: Option<(X509, Vec<X509>, PKey<Private>)>,
}

impl PeerIdentity {
    fn read(tls: &PeerTls<'_>) -> Result<Self, BoxError> {
        let cas = X509::stack_from_pem(tls.ca_pem.as_bytes())?;
        if cas.is_empty() {
            return Err("no pinned CA certificate".into());
        }
        let ours = match tls.identity {
            None => None,
            Some((cert, key)) => {
                let mut chain = X509::stack_from_pem(cert.as_bytes())?.into_iter();
                let leaf = chain.next().ok_or("no client certificate")?;
                let key = PKey::private_key_from_pem(key)?;
                if !leaf.public_key()?.public_eq(&key) {
                    return Err("the client key does not match the certificate".into());
                }
                Some((leaf, chain.collect(), key))
            }
        };
        Ok(PeerIdentity { cas, ours })
    }

    /// A new TLS session for `host`: the pinned CA as the only trust anchor, our identity,
    /// SNI and host-name verification (an IP address is matched against the IP SANs).
    fn session(&self, base: &SslContext, host: &str) -> Result<Ssl, BoxError> {
        let mut ssl = Ssl::new(base)?;
        let mut store = X509StoreBuilder::new()?;
        for ca in &self.cas {
            store.add_cert(ca.clone())?;
        }
        ssl.set_verify_cert_store(store.build())?;
        if let Some((cert, chain, key)) = &self.ours {
            ssl.set_certificate(cert)?;
            for c in chain {
                ssl.add_chain_cert(c.clone())?;
            }
            ssl.set_private_key(key)?;
        }
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) => {
                let param = ssl.param_mut();
                param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
                param.set_ip(ip)?;
            }
            Err(_) => {
                ssl.set_hostname(host)?;
                let param = ssl.param_mut();
                param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
                param.set_host(host)?;
            }
        }
        Ok(ssl)
    }
}

/// TCP (hyper-util's connector: resolution, connect timeout, no Nagle), then the TLS handshake
/// with the peer's context and its host name checked; both within the connect bound.
#[derive(Clone)]
struct TlsConnector {
    tcp: HttpConnector,
    base: SslContext,
    peer: std::sync::Arc<PeerIdentity>,
    connect_timeout: Duration,
}

impl tower_service::Service<http::Uri> for TlsConnector {
    type Response = TokioIo<PeerStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        tower_service::Service::<http::Uri>::poll_ready(&mut self.tcp, cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let mut tcp = self.tcp.clone();
        let (base, peer) = (self.base.clone(), self.peer.clone());
        let bound = self.connect_timeout;
        Box::pin(async move {
            if uri.scheme() != Some(&http::uri::Scheme::HTTPS) {
                return Err(format!("{uri}: peers are reached over https only").into());
            }
            let host = uri
                .host()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            // Never an empty name: it would leave the certificate's host unchecked.
            if host.is_empty() {
                return Err(format!("{uri}: no host in the peer URL").into());
            }
            let connecting = async move {
                let stream = tcp.call(uri).await?.into_inner();
                let ssl = peer.session(&base, &host)?;
                let mut stream = SslStream::new(ssl, stream)?;
                if let Err(e) = Pin::new(&mut stream).connect().await {
                    // OpenSSL says only "certificate verify failed"; the reason (not our
                    // pinned CA, a host name the certificate does not name, expired) is the
                    // verify result.
                    let verify = stream.ssl().verify_result();
                    if verify != openssl::x509::X509VerifyResult::OK {
                        return Err(format!("{e} ({})", verify.error_string()).into());
                    }
                    return Err(e.into());
                }
                Ok::<_, BoxError>(stream)
            };
            let stream = tokio::time::timeout(bound, connecting)
                .await
                .map_err(|_| "operation timed out")??;
            Ok(TokioIo::new(PeerStream(stream)))
        })
    }
}

/// The TLS stream hyper-util pools (it needs `Connection`, which tokio-openssl's stream does
/// not implement).
struct PeerStream(SslStream<TcpStream>);

impl Connection for PeerStream {
    fn connected(&self) -> Connected {
        self.0.get_ref().connected()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Transports (or anything cheap to clone) kept per peer.
///
/// When full, a new one replaces an entry unused for longer than `idle` (its connection is
/// closed by then anyway); if there is none, the new one is used for this call only and the
/// kept set stays as it is. Not least-recently-used: a tick visits every peer in turn, and with
/// more peers than room LRU would evict each peer just before its turn comes again, so no
/// connection would ever be reused.
pub struct PeerClients<T> {
    capacity: usize,
    idle: Duration,
    clients: Mutex<HashMap<Uuid, Entry<T>>>,
}

struct Entry<T> {
    key: String,
    client: T,
    used: Instant,
}

impl<T: Clone> PeerClients<T> {
    pub fn new(capacity: usize, idle: Duration) -> Self {
        PeerClients {
            capacity,
            idle,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The kept client of `peer` built from `key`, or a new one from `build` (kept if there
    /// is room).
    pub fn get_or_build<E>(
        &self,
        peer: Uuid,
        key: &str,
        build: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        if self.capacity == 0 {
            return build();
        }
        if let Some(entry) = self.lock().get_mut(&peer)
            && entry.key == key
        {
            entry.used = Instant::now();
            return Ok(entry.client.clone());
        }
        // Built outside the lock: other peers' lookups need not wait for it.
        let client = build()?;
        let mut clients = self.lock();
        if clients.len() >= self.capacity && !clients.contains_key(&peer) {
            let expired = clients
                .iter()
                .filter(|(_, e)| e.used.elapsed() > self.idle)
                .min_by_key(|(_, e)| e.used)
                .map(|(id, _)| *id);
            match expired {
                Some(id) => {
                    clients.remove(&id);
                }
                None => return Ok(client),
            }
        }
        clients.insert(
            peer,
            Entry {
                key: key.to_owned(),
                client: client.clone(),
                used: Instant::now(),
            },
        );
        Ok(client)
    }

    /// Drops `peer`'s entry (its calls failed): a peer that does not answer keeps no slot, and
    /// its next call starts from a new connection.
    pub fn forget(&self, peer: Uuid) {
        self.lock().remove(&peer);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry<T>>> {
        // A poisoned map only means another thread panicked mid-insert; entries stay valid.
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many clients are kept (the bench and `/metrics` read it).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_reused_rebuilt_on_a_new_key_and_a_full_cache_keeps_its_set() {
        let cache = PeerClients::new(2, Duration::from_secs(3600));
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let builds = std::cell::Cell::new(0);
        let get = |peer, key: &str| {
            cache
                .get_or_build(peer, key, || {
                    builds.set(builds.get() + 1);
                    Ok::<_, ()>(builds.get())
                })
                .unwrap()
        };
        assert_eq!(get(a, "1"), 1);
        assert_eq!(get(a, "1"), 1); // kept
        assert_eq!(get(b, "1"), 2);
        assert_eq!(get(a, "2"), 3); // renewed certificate: rebuilt, replaces a's entry
        assert_eq!(get(c, "1"), 4); // full, nothing idle: used once, not kept
        assert_eq!(get(c, "1"), 5);
        assert_eq!((get(a, "2"), get(b, "1")), (3, 2)); // the kept set survived
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_full_cache_replaces_an_entry_idle_past_the_connection_lifetime() {
        let cache = PeerClients::new(2, Duration::ZERO);
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        for (peer, n) in [(a, 1), (b, 2), (c, 3)] {
            cache.get_or_build(peer, "k", || Ok::<_, ()>(n)).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        // a, the longest idle, made room for c; a forgotten entry frees its slot.
        assert_eq!(cache.get_or_build(c, "k", || Ok::<_, ()>(0)), Ok(3));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get_or_build(a, "k", || Ok::<_, ()>(9)), Ok(9));
        cache.forget(a);
        assert_eq!(cache.len(), 1);
    }
}
