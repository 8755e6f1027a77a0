//! An ordered set of small `Copy` entries for the aggregation's time orders (items by time, per key and per
//! group), kept in sorted runs of at most [`RUN`] entries instead of a `BTreeSet`.
//!
//! Why: samples arrive in time order, so nearly every insert is at the top and nearly every removal (an item
//! leaving its window) at the bottom; in runs both touch one short run, and a lookup is two binary searches.
//! And size: the browser's `.wasm` carried the B-tree's code once per entry type, several times over, while
//! this is a few small functions per type.

use std::ops::Bound;

/// Most entries in a run: a longer run is split in two.
const RUN: usize = 64;

/// Entries in ascending order, in runs; no run is empty.
#[derive(Debug, Clone)]
pub(crate) struct OrderedSet<T> {
    runs: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for OrderedSet<T> {
    fn default() -> Self {
        OrderedSet {
            runs: Vec::new(),
            len: 0,
        }
    }
}

/// A place in the runs: a run, and an entry in it.
type Place = (usize, usize);

impl<T: Ord + Copy> OrderedSet<T> {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first place whose entry is not `below` the probe (the end when none is).
    fn partition(&self, below: impl Fn(&T) -> bool) -> Place {
        let run = self.runs.partition_point(|r| r.last().is_some_and(&below));
        match self.runs.get(run) {
            Some(entries) => (run, entries.partition_point(&below)),
            None => (run, 0),
        }
    }

    /// Adds `entry`; returns whether it was new.
    pub(crate) fn insert(&mut self, entry: T) -> bool {
        // The usual case: a new greatest entry, on the last run.
        if let Some(last) = self.runs.last_mut() {
            if last.last().is_some_and(|&top| top < entry) && last.len() < RUN {
                last.push(entry);
                self.len += 1;
                return true;
            }
        }
        let (run, at) = self.partition(|e| *e < entry);
        match self.runs.get_mut(run) {
            Some(entries) => {
                if entries.get(at) == Some(&entry) {
                    return false;
                }
                entries.insert(at, entry);
                if entries.len() > RUN {
                    let upper = entries.split_off(entries.len() / 2);
                    self.runs.insert(run + 1, upper);
                }
            }
            None => {
                let mut entries = Vec::with_capacity(RUN);
                entries.push(entry);
                self.runs.push(entries);
            }
        }
        self.len += 1;
        true
    }

    /// Removes `entry`; returns whether it was there.
    pub(crate) fn remove(&mut self, entry: &T) -> bool {
        let (run, at) = self.partition(|e| e < entry);
        let Some(entries) = self.runs.get_mut(run) else {
            return false;
        };
        if entries.get(at) != Some(entry) {
            return false;
        }
        entries.remove(at);
        if entries.is_empty() {
            self.runs.remove(run);
        }
        self.len -= 1;
        true
    }

    /// The greatest entry.
    pub(crate) fn last(&self) -> Option<&T> {
        self.runs.last().and_then(|r| r.last())
    }

    /// Every entry, in ascending order (reversible).
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + '_ {
        self.runs.iter().flatten()
    }

    /// The entries within `(from, to)`, in ascending order (reversible).
    pub(crate) fn range(
        &self,
        from: Bound<T>,
        to: Bound<T>,
    ) -> impl DoubleEndedIterator<Item = &T> + '_ {
        let start = match from {
            Bound::Included(x) => self.partition(|e| *e < x),
            Bound::Excluded(x) => self.partition(|e| *e <= x),
            Bound::Unbounded => (0, 0),
        };
        let end = match to {
            Bound::Included(x) => self.partition(|e| *e <= x),
            Bound::Excluded(x) => self.partition(|e| *e < x),
            Bound::Unbounded => (self.runs.len(), 0),
        };
        // The runs from the start's to the end's (which may be one past the last run).
        let through = (end.0 + 1).min(self.runs.len()).max(start.0);
        let runs = self.runs.get(start.0..through).unwrap_or(&[]);
        runs.iter().enumerate().flat_map(move |(i, entries)| {
            let run = start.0 + i;
            let from = if run == start.0 { start.1 } else { 0 };
            let to = if run == end.0 { end.1 } else { entries.len() };
            entries.get(from..to.max(from)).unwrap_or(&[])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// A scrambled sequence with repeats, to insert and remove.
    fn scrambled(n: u32) -> impl Iterator<Item = u32> {
        (0..n).map(move |i| (i.wrapping_mul(7919) % n) / 2)
    }

    #[test]
    fn keeps_the_order_and_ranges_of_a_btreeset() {
        let n = RUN as u32 * 7 + 5;
        let mut set = OrderedSet::new();
        let mut reference = BTreeSet::new();
        for x in scrambled(n) {
            assert_eq!(set.insert(x), reference.insert(x), "insert {x}");
        }
        // Then mostly new greatest entries, as samples arrive.
        for x in n..n + RUN as u32 * 3 {
            assert_eq!(set.insert(x), reference.insert(x));
        }
        let check = |set: &OrderedSet<u32>, reference: &BTreeSet<u32>| {
            assert_eq!(set.len(), reference.len());
            assert!(set.iter().eq(reference.iter()));
            assert!(set.iter().rev().eq(reference.iter().rev()));
            assert_eq!(set.last(), reference.last());
            assert!(set.runs.iter().all(|r| !r.is_empty() && r.len() <= RUN));
            let edges = [0, 1, 63, 64, 65, 200, n / 2, n, n + 50, n * 9];
            for &a in &edges {
                for &b in &edges {
                    let bounds = [Bound::Included(a), Bound::Excluded(a), Bound::Unbounded];
                    for from in bounds {
                        for to in [Bound::Included(b), Bound::Excluded(b), Bound::Unbounded] {
                            if matches!((from, to), (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) if x > y)
                                || matches!((from, to), (Bound::Excluded(x), Bound::Excluded(y)) if x == y)
                            {
                                continue; // a range BTreeSet refuses (it panics)
                            }
                            let got: Vec<u32> = set.range(from, to).copied().collect();
                            let want: Vec<u32> = reference.range((from, to)).copied().collect();
                            assert_eq!(got, want, "{from:?}..{to:?}");
                            assert!(set
                                .range(from, to)
                                .rev()
                                .eq(reference.range((from, to)).rev()));
                        }
                    }
                }
            }
        };
        check(&set, &reference);
        for x in scrambled(n).step_by(3).chain([n + 1, n * 5]) {
            assert_eq!(set.remove(&x), reference.remove(&x), "remove {x}");
        }
        check(&set, &reference);
        for x in scrambled(n * 2) {
            assert_eq!(set.remove(&x), reference.remove(&x));
        }
        check(&set, &reference);
        assert_eq!(
            set.range(Bound::Unbounded, Bound::Unbounded).count(),
            set.len()
        );
    }
}
