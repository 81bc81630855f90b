//! Keyed rate limits (governor): per peer certificate on the federation API and per source
//! address on `accept` (SPEC §3, §6). Idle keys are evicted every minute so memory stays
//! bounded whatever the number of callers.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};

use crate::error::ApiError;

type Keyed =
    RateLimiter<String, governor::state::keyed::DefaultKeyedStateStore<String>, DefaultClock>;

#[derive(Clone)]
pub struct Limits {
    pub federation: Arc<Keyed>,
    pub accept: Arc<Keyed>,
}

fn quota(per_minute: u32, burst: u32) -> Quota {
    let per_minute = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(per_minute).allow_burst(burst)
}

impl Limits {
    pub fn new(settings: &crate::settings::Settings) -> Self {
        Limits {
            federation: Arc::new(RateLimiter::keyed(quota(
                settings.federation_rate_per_minute,
                settings.federation_rate_burst,
            ))),
            accept: Arc::new(RateLimiter::keyed(quota(
                settings.accept_rate_per_minute,
                settings.accept_rate_burst,
            ))),
        }
    }

    /// Drops idle keys periodically (spawned once per process).
    pub fn spawn_eviction(&self) {
        let limits = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                for l in [&limits.federation, &limits.accept] {
                    l.retain_recent();
                    l.shrink_to_fit();
                }
            }
        });
    }
}

/// Counts one call for `key`; 429 with the seconds to wait when over the limit.
pub fn check(limiter: &Keyed, key: &str) -> Result<(), ApiError> {
    limiter.check_key(&key.to_owned()).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::RateLimited(wait.as_secs().max(1))
    })
}
