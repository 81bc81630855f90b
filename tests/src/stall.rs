//! A TCP relay in front of PostgreSQL (started when a test says so) that can stop answering, the way a SIGSTOPped server
//! does: connections are still accepted and bytes still acknowledged by the kernel, but nothing
//! comes back until it is thawed. Stopping the shared test cluster itself would stall every
//! other test.
#![allow(clippy::unwrap_used, reason = "test helper fails loudly")]

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct StallProxy {
    /// `url` with its host and port replaced by the relay's.
    pub url: String,
    frozen: watch::Sender<bool>,
}

impl StallProxy {
    /// Relays to the host and port of `url` (a `postgres://user@host:port/db` URL).
    pub async fn start(url: &str) -> Self {
        Self::start_on(0, url).await
    }

    /// As `start`, listening on `port` (0 = any free port): a database that appears at an
    /// address the API was already given.
    pub async fn start_on(port: u16, url: &str) -> Self {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (userinfo, rest) = rest.split_once('@').unwrap();
        let (upstream, path) = rest.split_once('/').unwrap();
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (frozen, watcher) = watch::channel(false);
        let upstream = upstream.to_owned();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, watcher) = (upstream.clone(), watcher.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::spawn(pump(client_read, server_write, watcher.clone()));
                    tokio::spawn(pump(server_read, client_write, watcher));
                });
            }
        });
        StallProxy {
            url: format!("{scheme}://{userinfo}@127.0.0.1:{port}/{path}"),
            frozen,
        }
    }

    /// From now on nothing is relayed (bytes already read are held).
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Relays again, held bytes first.
    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Read while thawed, but the relay may have frozen meanwhile: hold the bytes.
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
