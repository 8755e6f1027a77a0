//! The order of a sorted-set window: its members as `(score, slot)` entries, sorted as Redis sorts them (by
//! score, then member bytes), in runs of at most [`RUN`] entries.
//!
//! Why runs: the usual traffic is a sample scored by time entering at the top while the lowest member leaves at
//! the bottom. Runs make both O(1) (a push on the last run, a step past the first run's lowest entry), with no
//! comparisons but one and no allocation once warm (an emptied run is kept for the next one). A B-tree would pay
//! a descent and shifts within its nodes for each; one sorted deque would make an insert in the middle of a
//! 100,000-member window move half of it. With runs, an entry in the middle costs a binary search over the runs'
//! last entries, then over one run, and moves at most a run.
//!
//! A run is a `Vec` with room for [`RUN`] entries: a push at the top is a store and a length, with none of a
//! ring's wrapping. The lowest entry leaves by moving the first run's start (`popped`), not its entries; the run
//! is recycled once all its entries have left.

use std::cmp::Ordering;
use std::collections::VecDeque;

use super::{Score, Slot, SlotId};

/// Most entries in a run (those popped from the first run's front included): a run is split in two when an
/// insert makes it longer.
const RUN: usize = 128;

/// One member's place in the order: its score, and the slot holding its bytes (compared for equal scores).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Entry {
    pub(super) score: Score,
    pub(super) slot: SlotId,
}

/// The entries of a window, in Redis's order, in runs; no run is empty (the first one past `popped`).
#[derive(Debug, Clone, Default)]
pub(super) struct Order {
    runs: VecDeque<Vec<Entry>>,
    /// Entries at the front of the first run that have left the order.
    popped: usize,
    /// The last run emptied, kept for the next run needed.
    spare: Option<Vec<Entry>>,
}

/// Whether `a` ranks below `b`: by score, then by member bytes.
#[inline]
fn below(slots: &[Slot], a: Entry, b: Entry) -> bool {
    match a.score.cmp(&b.score) {
        Ordering::Less => true,
        Ordering::Greater => false,
        Ordering::Equal => slots[a.slot as usize].member < slots[b.slot as usize].member,
    }
}

impl Order {
    /// The lowest entry.
    #[inline(always)]
    pub(super) fn first(&self) -> Option<Entry> {
        self.runs
            .front()
            .and_then(|run| run.get(self.popped).copied())
    }

    /// Removes and returns the lowest entry.
    #[inline(always)]
    pub(super) fn pop_first(&mut self) -> Option<Entry> {
        let run = self.runs.front()?;
        let entry = *run.get(self.popped)?;
        self.popped += 1;
        if self.popped == run.len() {
            self.drop_run(0);
        }
        Some(entry)
    }

    /// Removes and returns the highest entry.
    pub(super) fn pop_last(&mut self) -> Option<Entry> {
        let last = self.runs.len().checked_sub(1)?;
        let start = self.start(last);
        let run = &mut self.runs[last];
        let entry = run.pop();
        if run.len() <= start {
            self.drop_run(last);
        }
        entry
    }

    /// Where run `i`'s entries start.
    #[inline]
    fn start(&self, i: usize) -> usize {
        if i == 0 {
            self.popped
        } else {
            0
        }
    }

    /// Takes run `i`, whose entries have all left, out of the order, keeping it for the next run needed.
    fn drop_run(&mut self, i: usize) {
        if let Some(mut run) = self.runs.remove(i) {
            run.clear();
            self.spare = Some(run);
        }
        if i == 0 {
            self.popped = 0;
        }
    }

    fn new_run(&mut self) -> Vec<Entry> {
        self.spare.take().unwrap_or_else(|| Vec::with_capacity(RUN))
    }

    /// Adds `entry`, whose slot holds its member already and which is not in the order yet.
    #[inline(always)]
    pub(super) fn insert(&mut self, slots: &[Slot], entry: Entry) {
        // The usual case, inlined: a new highest entry, with room in the last run.
        if let Some(run) = self.runs.back_mut() {
            // A higher score, the usual case, compared here: `below` is a call at the client's opt-level "z".
            if run.len() < RUN
                && run
                    .last()
                    .is_some_and(|&top| top.score.0 < entry.score.0 || below(slots, top, entry))
            {
                run.push(entry);
                return;
            }
        }
        self.insert_other(slots, entry);
    }

    /// [`Order::insert`] of an entry that ranks below the highest one, or that needs a new run. Out of line, so
    /// that the push at the top inlines.
    #[inline(never)]
    fn insert_other(&mut self, slots: &[Slot], entry: Entry) {
        match self.runs.back().and_then(|run| run.last()) {
            Some(&top) if !below(slots, top, entry) => self.insert_within(slots, entry),
            _ => {
                let mut run = self.new_run();
                run.push(entry);
                self.runs.push_back(run);
            }
        }
    }

    /// Adds an entry that ranks below the highest one.
    fn insert_within(&mut self, slots: &[Slot], entry: Entry) {
        // The first run whose highest entry is above `entry`: there is one, the last run.
        let i = self
            .runs
            .partition_point(|run| run.last().is_some_and(|&e| below(slots, e, entry)));
        if i == 0 && self.popped > 0 {
            // The entries that left the first run go for good: the run is about to move its entries anyway.
            self.runs[0].drain(..self.popped);
            self.popped = 0;
        }
        let run = &mut self.runs[i];
        let at = run.partition_point(|&e| below(slots, e, entry));
        run.insert(at, entry);
        if run.len() > RUN {
            let half = run.len() / 2;
            let mut upper = self.spare.take().unwrap_or_default();
            let run = &mut self.runs[i];
            upper.extend_from_slice(&run[half..]);
            run.truncate(half);
            self.runs.insert(i + 1, upper);
        }
    }

    /// Removes `entry`; returns whether it was there.
    pub(super) fn remove(&mut self, slots: &[Slot], entry: Entry) -> bool {
        let i = self
            .runs
            .partition_point(|run| run.last().is_some_and(|&e| below(slots, e, entry)));
        let start = self.start(i);
        let Some(run) = self.runs.get_mut(i) else {
            return false;
        };
        let at = start + run[start..].partition_point(|&e| below(slots, e, entry));
        if run.get(at).is_none_or(|e| e.slot != entry.slot) {
            return false;
        }
        run.remove(at);
        if run.len() <= start {
            self.drop_run(i);
        }
        true
    }

    /// Entries from the highest down.
    pub(super) fn iter_rev(&self) -> IterRev<'_> {
        IterRev {
            order: self,
            runs: self.runs.len(),
            at: self.runs.back().map_or(0, Vec::len),
        }
    }
}

/// [`Order::iter_rev`]: one small `next` where adapters (`flat_map` over the runs) were compiled into each of the
/// window's many readers.
pub(super) struct IterRev<'a> {
    order: &'a Order,
    /// Runs not finished yet: the one being read is `runs - 1`.
    runs: usize,
    /// Entries of that run not read yet, from its start.
    at: usize,
}

impl Iterator for IterRev<'_> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        loop {
            let i = self.runs.checked_sub(1)?;
            if self.at > self.order.start(i) {
                self.at -= 1;
                return self.order.runs[i].get(self.at).copied();
            }
            self.runs = i;
            self.at = i
                .checked_sub(1)
                .map_or(0, |below| self.order.runs[below].len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(members: &[&str]) -> Vec<Slot> {
        members
            .iter()
            .map(|m| Slot {
                member: m.as_bytes().to_vec(),
                score: Score(0.0),
                id: 0,
                hash: 0,
            })
            .collect()
    }

    #[test]
    fn keeps_order_across_runs_whatever_the_insertion_order() {
        let n = RUN * 5 + 3;
        let names: Vec<String> = (0..n).map(|i| format!("m{i:05}")).collect();
        let all = slots(&names.iter().map(String::as_str).collect::<Vec<_>>());
        // Scores in a scrambled order, a few of them tied (then ordered by member).
        let score = |i: usize| Score(((i * 7919) % n / 3) as f64);
        let mut order = Order::default();
        for i in 0..n {
            order.insert(
                &all,
                Entry {
                    score: score(i),
                    slot: i as SlotId,
                },
            );
        }
        let mut expected: Vec<usize> = (0..n).collect();
        expected.sort_by(|&a, &b| score(a).cmp(&score(b)).then(names[a].cmp(&names[b])));
        let got: Vec<usize> = order.iter_rev().map(|e| e.slot as usize).collect();
        assert_eq!(got, expected.iter().rev().copied().collect::<Vec<_>>());
        assert!(order.runs.iter().all(|r| !r.is_empty() && r.len() <= RUN));
        assert_eq!(order.popped, 0);
        // Remove every third, then pop the rest from both ends.
        for &i in expected.iter().step_by(3) {
            assert!(order.remove(
                &all,
                Entry {
                    score: score(i),
                    slot: i as SlotId
                }
            ));
        }
        assert!(!order.remove(
            &all,
            Entry {
                score: score(expected[0]),
                slot: expected[0] as SlotId
            }
        ));
        let rest: Vec<usize> = expected
            .iter()
            .copied()
            .enumerate()
            .filter(|(k, _)| k % 3 != 0)
            .map(|(_, i)| i)
            .collect();
        assert_eq!(
            order.first().map(|e| e.slot as usize),
            rest.first().copied()
        );
        assert_eq!(
            order.iter_rev().next().map(|e| e.slot as usize),
            rest.last().copied()
        );
        let mut popped = Vec::new();
        while let Some(e) = order.pop_first() {
            popped.push(e.slot as usize);
            if let Some(e) = order.pop_last() {
                popped.push(e.slot as usize);
            }
        }
        popped.sort_by_key(|&i| rest.iter().position(|&r| r == i));
        assert_eq!(popped, rest);
        assert!(order.runs.is_empty());
    }

    #[test]
    fn matches_a_sorted_list_under_mixed_operations() {
        let n = RUN * 6;
        let names: Vec<String> = (0..n).map(|i| format!("m{i:05}")).collect();
        let all = slots(&names.iter().map(String::as_str).collect::<Vec<_>>());
        let mut order = Order::default();
        let mut expected: Vec<Entry> = Vec::new();
        let sort = |list: &mut Vec<Entry>| {
            list.sort_by(|a, b| {
                a.score
                    .cmp(&b.score)
                    .then(names[a.slot as usize].cmp(&names[b.slot as usize]))
            })
        };
        // A small linear congruential generator: the same operations on every run.
        let mut state = 12345u64;
        let mut next = |bound: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % bound
        };
        let mut top = 0.0;
        for _ in 0..20_000 {
            let absent: Vec<usize> = (0..n)
                .filter(|&i| expected.iter().all(|e| e.slot as usize != i))
                .collect();
            match next(10) {
                // Mostly new highest entries and pops at the bottom, as samples come; sometimes anything else.
                0..=3 if !absent.is_empty() => {
                    top += 1.0;
                    let slot = absent[next(absent.len() as u64) as usize] as SlotId;
                    let entry = Entry {
                        score: Score(top),
                        slot,
                    };
                    order.insert(&all, entry);
                    expected.push(entry);
                }
                4 if !absent.is_empty() => {
                    let slot = absent[next(absent.len() as u64) as usize] as SlotId;
                    let entry = Entry {
                        score: Score(next(top as u64 + 1) as f64),
                        slot,
                    };
                    order.insert(&all, entry);
                    expected.push(entry);
                }
                5..=7 => {
                    sort(&mut expected);
                    let want = (!expected.is_empty()).then(|| expected.remove(0));
                    assert_eq!(order.pop_first(), want);
                }
                8 if !expected.is_empty() => {
                    let at = next(expected.len() as u64) as usize;
                    let entry = expected.remove(at);
                    assert!(order.remove(&all, entry));
                    assert!(!order.remove(&all, entry));
                }
                _ => {
                    sort(&mut expected);
                    assert_eq!(order.pop_last(), expected.pop());
                }
            }
            sort(&mut expected);
            assert_eq!(order.first(), expected.first().copied());
        }
        let got: Vec<Entry> = order.iter_rev().collect();
        assert_eq!(got, expected.iter().rev().copied().collect::<Vec<_>>());
        assert!(order.runs.iter().all(|r| r.len() <= RUN));
    }
}
