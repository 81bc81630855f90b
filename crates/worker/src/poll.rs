//! How a consumer wakes up to fetch due tasks.
//!
//! apalis-core 1.0.0's `IntervalStrategy::poll_drive` replaces a fired timer with a new one it
//! never polls, so no waker is registered for it. When the Redis fetch then completes within
//! the same poll (an empty batch), nothing but the worker heartbeat (30 s) wakes the consumer
//! again: ticks pile up in `<queue>:scheduled` (every push lands there) and start late, several
//! at once. `Rearming` polls its timer until it is pending again, so a wake-up is always
//! armed (the `PollStrategy` contract).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_core::backend::ext::poll_strategy::{PollSnapshot, PollStrategy};
use apalis_core::timer::Delay;

/// Fetch every `period`, with the next wake-up always armed.
pub struct Rearming {
    period: Duration,
    delay: Delay,
}

impl Rearming {
    pub fn new(period: Duration) -> Self {
        Rearming {
            period,
            delay: Delay::new(period),
        }
    }
}

impl PollStrategy for Rearming {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        let mut fired = false;
        // Ends on Pending, i.e. with `cx`'s waker registered on the fresh timer.
        while Pin::new(&mut self.delay).poll(cx).is_ready() {
            self.delay = Delay::new(self.period);
            fired = true;
        }
        if fired {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use super::*;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// After firing, the strategy has already registered the waker on the next timer: with
    /// nothing else polling it, the waker is still called when the period ends.
    #[test]
    fn after_firing_the_next_wake_up_is_armed() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut strategy = Rearming::new(Duration::from_millis(20));
        let snapshot = PollSnapshot::default();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while strategy.poll_drive(&mut cx, &snapshot).is_pending() {
            assert!(
                std::time::Instant::now() < deadline,
                "the first period never ended"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Fired: now nobody polls. The armed timer must wake us by itself.
        let before = count.0.load(Ordering::SeqCst);
        while count.0.load(Ordering::SeqCst) == before {
            assert!(
                std::time::Instant::now() < deadline,
                "no wake-up after firing: the timer was not armed"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
