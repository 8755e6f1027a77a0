//! Rates of counters: how fast a monotonically increasing number (bytes received) grows, per second.
//!
//! Over a set of samples, each key's samples are taken in time order and every consecutive pair `(a, b)` adds
//! its increase: `b − a`, or `b` when `b < a`, because a counter that went down was reset (a restarted
//! collector, a wrapped interface counter) and counted up from 0 since. The rate is the sum of those increases
//! over all keys divided by the time between the first and the last sample of the set (any key), in seconds. For
//! one key that is the classic `(last − first) / Δt` with resets bridged; for several (all hosts in one group) it
//! is their combined throughput.
//!
//! [`Increase`] keeps that sum as samples enter and leave anywhere in a key's sequence: the caller finds the
//! neighbours (O(log n) in an ordered set) and the sum changes by the pair terms around the sample, O(1).

use super::sum::CompensatedSum;

/// The increase from counter value `a` to the next value `b`, resets bridged.
pub fn increase(a: f64, b: f64) -> f64 {
    if b >= a {
        b - a
    } else {
        b
    }
}

/// The summed increase over consecutive pairs of each key's samples in a set.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Increase {
    sum: CompensatedSum,
    pairs: u64,
}

impl Increase {
    /// `value` enters between its key's neighbours `before` and `after` (the set's samples of the same key just
    /// before and after it in time).
    pub fn insert(&mut self, before: Option<f64>, value: f64, after: Option<f64>) {
        self.change(before, value, after, true);
    }

    /// `value` leaves from between `before` and `after`.
    pub fn remove(&mut self, before: Option<f64>, value: f64, after: Option<f64>) {
        self.change(before, value, after, false);
    }

    fn change(&mut self, before: Option<f64>, value: f64, after: Option<f64>, entering: bool) {
        let sign = if entering { 1.0 } else { -1.0 };
        // The pair (before, after) is split by `value` entering, or joined by it leaving.
        let bridged = before.zip(after).map(|(a, b)| increase(a, b));
        let around = [
            before.map(|a| increase(a, value)),
            after.map(|b| increase(value, b)),
        ];
        if let Some(inc) = bridged {
            self.sum.add(-sign * inc);
        }
        for inc in around.into_iter().flatten() {
            self.sum.add(sign * inc);
        }
        let pairs = around.iter().flatten().count() as u64 - u64::from(bridged.is_some());
        if entering {
            self.pairs += pairs;
        } else {
            self.pairs -= pairs;
        }
        if self.pairs == 0 {
            // No pair left: drop any rounding residue.
            self.sum.reset();
        }
    }

    /// The summed increase, `None` without any pair of samples.
    pub fn total(&self) -> Option<f64> {
        (self.pairs > 0).then(|| self.sum.value())
    }

    /// The rate per second over `span_ms` (first to last sample); `None` without a pair or a positive span.
    pub fn per_second(&self, span_ms: f64) -> Option<f64> {
        let total = self.total()?;
        (span_ms > 0.0).then(|| total * 1000.0 / span_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decrease_is_a_reset_counted_from_zero() {
        assert_eq!(increase(10.0, 15.0), 5.0);
        assert_eq!(increase(100.0, 7.0), 7.0);
    }

    #[test]
    fn samples_entering_and_leaving_anywhere() {
        let mut inc = Increase::default();
        assert_eq!(inc.total(), None);
        inc.insert(None, 100.0, None);
        assert_eq!(inc.total(), None);
        inc.insert(Some(100.0), 300.0, None); // 100 → 300
        inc.insert(Some(100.0), 50.0, Some(300.0)); // 100 → 50 (reset) → 300
        assert_eq!(inc.total(), Some(50.0 + 250.0));
        assert_eq!(inc.per_second(2_000.0), Some(150.0));
        inc.remove(Some(100.0), 50.0, Some(300.0));
        assert_eq!(inc.total(), Some(200.0));
        inc.remove(None, 100.0, Some(300.0));
        assert_eq!(inc.total(), None);
        assert_eq!(inc.per_second(1_000.0), None);
    }
}
