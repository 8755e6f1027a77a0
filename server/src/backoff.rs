//! Delays between reconnection attempts, for every connection the relay keeps to Redis (the replica link, the
//! Sentinel subscription, the collector's writer): exponential, with jitter, so that relays restarted together do
//! not reconnect in lockstep.

use std::time::Duration;

/// The first delay after a failure; each failure that follows doubles it.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(100);

/// Delays between attempts: from [`BACKOFF_FIRST`], doubling up to a maximum while failures follow each other.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    /// Failures since the connection was last healthy.
    pub failures: u64,
}

impl Backoff {
    pub fn new(max: Duration) -> Self {
        Backoff {
            next: BACKOFF_FIRST,
            max,
            failures: 0,
        }
    }

    /// After a connection that was healthy (or one that is re-made on purpose): the next delay is the first.
    pub fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
        self.failures = 0;
    }

    /// The delay before the next attempt, with jitter; the one after is twice as long.
    pub fn after_failure(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(self.max);
        self.failures += 1;
        jitter(delay)
    }
}

/// Between half and all of `delay`, so relays restarted together do not reconnect in lockstep.
pub fn jitter(delay: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    delay.mul_f64(0.5 + (random % 1000) as f64 / 2000.0)
}
