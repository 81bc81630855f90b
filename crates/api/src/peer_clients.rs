//! The PeerClient's mTLS transport, and the cache that keeps it between ticks.
//!
//! Each peer gets an OpenSSL client context holding only that peer's pinned CA and our client
//! certificate for it, and a hyper-util client over tokio-openssl. Not reqwest's native-tls
//! client: building one reads the system CA bundle twice (OpenSSL's default paths, then
//! native-tls's probe; ~40 ms on the reference machine, every client), which made a pass over
//! 1,000 peers CPU-bound for 30 s. This context builds in about a millisecond, trusts nothing
//! but the pinned CA, and checks the peer's host name as native-tls did.
//!
//! Transports are kept per peer (`POWERNODE_PEER_CLIENT_CACHE`, least recently used out) so a
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
use openssl::pkey::PKey;
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
/// connections are TCP + TLS with the peer's own context.
pub struct PeerTransport {
    client: hyper_util::client::legacy::Client<TlsConnector, reqwest::Body>,
    timeout: Duration,
}

impl PeerTransport {
    pub fn new(tls: &PeerTls<'_>) -> Result<Self, String> {
        let context = context(tls).map_err(|e| format!("TLS context: {e}"))?;
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(tls.connect_timeout));
        let connector = TlsConnector {
            tcp,
            context,
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
            let req =
                http::Request::<reqwest::Body>::try_from(req).map_err(|e| failed(&url, &e))?;
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

/// The peer's client context: TLS 1.2+, the pinned CA as the only trust anchor, our
/// certificate and key, idle connections' buffers released.
fn context(tls: &PeerTls<'_>) -> Result<SslContext, BoxError> {
    let mut b = SslContextBuilder::new(SslMethod::tls_client())?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    b.set_verify(SslVerifyMode::PEER);
    b.set_mode(SslMode::RELEASE_BUFFERS);
    let mut store = X509StoreBuilder::new()?;
    let cas = X509::stack_from_pem(tls.ca_pem.as_bytes())?;
    if cas.is_empty() {
        return Err("no pinned CA certificate".into());
    }
    for ca in cas {
        store.add_cert(ca)?;
    }
    b.set_cert_store(store.build());
    if let Some((cert, key)) = tls.identity {
        let mut chain = X509::stack_from_pem(cert.as_bytes())?.into_iter();
        let leaf = chain.next().ok_or("no client certificate")?;
        b.set_certificate(&leaf)?;
        for extra in chain {
            b.add_extra_chain_cert(extra)?;
        }
        let key = PKey::private_key_from_pem(key)?;
        b.set_private_key(&key)?;
        b.check_private_key()?;
    }
    Ok(b.build())
}

/// TCP (hyper-util's connector: resolution, connect timeout, no Nagle), then the TLS handshake
/// with the peer's context and its host name checked; both within the connect bound.
#[derive(Clone)]
struct TlsConnector {
    tcp: HttpConnector,
    context: SslContext,
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
        let context = self.context.clone();
        let bound = self.connect_timeout;
        Box::pin(async move {
            if uri.scheme() != Some(&http::uri::Scheme::HTTPS) {
                return Err(format!("{uri}: peers are reached over https only").into());
            }
            let host = uri
                .host()
                .ok_or("no host in the peer URL")?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let connecting = async move {
                let stream = tcp.call(uri).await?.into_inner();
                let mut ssl = Ssl::new(&context)?;
                match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => {
                        let param = ssl.param_mut();
                        param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
                        param.set_ip(ip)?;
                    }
                    Err(_) => {
                        ssl.set_hostname(&host)?;
                        let param = ssl.param_mut();
                        param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
                        param.set_host(&host)?;
                    }
                }
                let mut stream = SslStream::new(ssl, stream)?;
                Pin::new(&mut stream).connect().await?;
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

/// Transports (or anything cheap to clone) kept per peer, least recently used out.
pub struct PeerClients<T> {
    capacity: usize,
    clients: Mutex<HashMap<Uuid, Entry<T>>>,
}

struct Entry<T> {
    key: String,
    client: T,
    used: Instant,
}

impl<T: Clone> PeerClients<T> {
    pub fn new(capacity: usize) -> Self {
        PeerClients {
            capacity,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The cached client of `peer` built from `key`, or a new one from `build` (cached).
    pub fn get_or_build<E>(
        &self,
        peer: Uuid,
        key: &str,
        build: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        if self.capacity == 0 {
            return build();
        }
        // A poisoned map only means another thread panicked mid-insert; entries stay valid.
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = clients.get_mut(&peer)
            && entry.key == key
        {
            entry.used = Instant::now();
            return Ok(entry.client.clone());
        }
        let client = build()?;
        if clients.len() >= self.capacity
            && !clients.contains_key(&peer)
            && let Some(oldest) = clients
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(id, _)| *id)
        {
            clients.remove(&oldest);
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

    /// How many clients are kept (the bench and `/metrics` read it).
    pub fn len(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_reused_rebuilt_on_a_new_key_and_the_least_recent_is_evicted() {
        let cache = PeerClients::new(2);
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let builds = std::cell::Cell::new(0);
        let get = |peer, key: &str| {
            cache
                .get_or_build(peer, key, || {
                    builds.set(builds.get() + 1);
                    Ok::<_, ()>(builds.get())
                })
                .unwrap();
        };
        get(a, "1");
        get(a, "1");
        get(b, "1");
        get(a, "2"); // renewed certificate: rebuilt
        get(c, "1"); // full: b (least recently used) goes
        get(a, "2");
        get(b, "1"); // rebuilt
        assert_eq!(builds.get(), 5);
        assert_eq!(cache.len(), 2);
    }
}
