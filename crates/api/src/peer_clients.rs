//! The PeerClient's mTLS clients, kept between ticks so each peer's keep-alive connection is
//! reused (no TCP + TLS handshake per heartbeat). Bounded (`POWERNODE_PEER_CLIENT_CACHE`,
//! least recently used out) with at most one idle connection per peer, so thousands of peers
//! cannot grow the API's memory without bound. A client is keyed by what it was built from
//! (our certificate, the pinned CA, the URL): a renewal or re-pin builds a new one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use uuid::Uuid;

pub struct PeerClients {
    capacity: usize,
    clients: Mutex<HashMap<Uuid, Entry>>,
}

struct Entry {
    key: String,
    client: reqwest::Client,
    used: Instant,
}

impl PeerClients {
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
        build: impl FnOnce() -> Result<reqwest::Client, E>,
    ) -> Result<reqwest::Client, E> {
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
                    Ok::<_, ()>(reqwest::Client::new())
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
