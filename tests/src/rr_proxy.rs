//! A round-robin TCP proxy (issue 17's chaos harness): one listening port in front of several
//! replicas' listeners, so peers, operators and workers reach either replica, as a load balancer
//! would. Each new connection goes to the next upstream that accepts it (a killed replica is
//! skipped); bytes are relayed untouched (TLS passes through end to end).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helper fails loudly"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};

pub struct RoundRobin {
    pub port: u16,
    /// `usize::MAX`, or the one upstream new connections go to (a scenario aiming at a replica).
    pinned: Arc<AtomicUsize>,
    /// Connections relayed to each upstream, in `upstreams` order.
    served: Arc<Vec<AtomicUsize>>,
    task: tokio::task::JoinHandle<()>,
}

impl RoundRobin {
    /// Listens on `127.0.0.1:<port>` (0 = any) in front of `upstreams` (`host:port`).
    pub async fn start(port: u16, upstreams: Vec<String>) -> RoundRobin {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let served: Arc<Vec<AtomicUsize>> =
            Arc::new(upstreams.iter().map(|_| AtomicUsize::new(0)).collect());
        let next = Arc::new(AtomicUsize::new(0));
        let pinned = Arc::new(AtomicUsize::new(usize::MAX));
        let upstreams = Arc::new(upstreams);
        let counts = served.clone();
        let pin = pinned.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (upstreams, next, counts) = (upstreams.clone(), next.clone(), counts.clone());
                let pinned = pin.load(Ordering::Relaxed);
                tokio::spawn(async move {
                    let n = upstreams.len();
                    let first = if pinned < n {
                        pinned
                    } else {
                        next.fetch_add(1, Ordering::Relaxed)
                    };
                    for k in 0..n {
                        let i = (first + k) % n;
                        if let Ok(mut server) = TcpStream::connect(&upstreams[i]).await {
                            counts[i].fetch_add(1, Ordering::Relaxed);
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            return;
                        }
                    }
                    // No upstream accepts: the client sees its connection closed.
                });
            }
        });
        RoundRobin {
            port,
            pinned,
            served,
            task,
        }
    }

    /// New connections go to upstream `i` first (`None`: round robin again). A pinned upstream
    /// that refuses is still skipped.
    pub fn pin(&self, i: Option<usize>) {
        self.pinned
            .store(i.unwrap_or(usize::MAX), Ordering::Relaxed);
    }

    /// Connections relayed to each upstream so far.
    pub fn served(&self) -> Vec<usize> {
        self.served
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
