//! The profile since the relay started ([`SinceStart`]): the windows that ended, added up — their counts summed,
//! their summaries merged ([`MergedHitters`]) — and read together with the window being filled. So a key a link
//! writes goes through the summaries of one window, not through a second set counting since the start, and
//! since-start's lists keep the bounds of one summary of the whole stream (merged_hitters.rs says why).

use std::time::Instant;

use serde_json::Value as Json;

use super::merged_hitters::MergedHitters;
use super::window::{unix_ms, Counts, Listed, Window, HITTERS, LISTED};

/// The windows that ended, added up.
pub(super) struct SinceStart {
    started: Instant,
    started_ms: u64,
    counts: Counts,
    keys_by_writes: MergedHitters,
    keys_by_bytes: MergedHitters,
    prefixes_by_writes: MergedHitters,
    prefixes_by_bytes: MergedHitters,
}

impl SinceStart {
    pub(super) fn new(started: Instant) -> Self {
        SinceStart {
            started,
            started_ms: unix_ms(started),
            counts: Counts::default(),
            keys_by_writes: MergedHitters::new(HITTERS),
            keys_by_bytes: MergedHitters::new(HITTERS),
            prefixes_by_writes: MergedHitters::new(HITTERS),
            prefixes_by_bytes: MergedHitters::new(HITTERS),
        }
    }

    /// Adds `window`, which ended.
    pub(super) fn retire(&mut self, window: &Window) {
        self.counts.add(&window.counts);
        let h = &window.hitters;
        self.keys_by_writes.add(&h.keys_by_writes);
        self.keys_by_bytes.add(&h.keys_by_bytes);
        self.prefixes_by_writes.add(&h.prefixes_by_writes);
        self.prefixes_by_bytes.add(&h.prefixes_by_bytes);
    }

    /// What was counted since the start: the windows that ended and `current`.
    pub(super) fn counts(&self, current: &Window) -> Counts {
        let mut counts = self.counts.clone();
        counts.add(&current.counts);
        counts
    }

    /// Since-start's JSON, `current` (the window being filled) included.
    pub(super) fn to_json(&self, current: &Window, now: Instant) -> Json {
        let h = &current.hitters;
        let listed = Listed {
            keys_by_writes: self.keys_by_writes.with(&h.keys_by_writes).top(LISTED),
            keys_by_bytes: self.keys_by_bytes.with(&h.keys_by_bytes).top(LISTED),
            prefixes_by_writes: self
                .prefixes_by_writes
                .with(&h.prefixes_by_writes)
                .top(LISTED),
            prefixes_by_bytes: self
                .prefixes_by_bytes
                .with(&h.prefixes_by_bytes)
                .top(LISTED),
        };
        let seconds = now.duration_since(self.started).as_secs_f64();
        self.counts(current)
            .to_json(self.started_ms, seconds, &listed)
    }
}
