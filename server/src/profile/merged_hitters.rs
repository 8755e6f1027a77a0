//! The heaviest hitters since the relay started, merged from the windows' [`SpaceSaving`] summaries
//! ([`MergedHitters`]) rather than counted a second time: each key a link writes then goes through the summaries of
//! one window, not two, and a window's summaries are merged in once, when it ends.
//!
//! A summary here is its items, each with an upper bound on its true weight (`weight`) and a lower one
//! (`weight - error`), and a `floor`: the most an item it does not keep may weigh, no more than any kept item
//! weighs. A space-saving summary is one (its floor is its lightest weight once it has replaced an item, 0
//! before). Two merge by
//! adding each item's bounds, an item missing from one side taking that side's floor as its upper bound and 0 as
//! its lower; the `capacity` heaviest by upper bound are kept, and the floor is the larger of the sides' floors
//! added and the heaviest upper bound dropped. So a kept item's true weight stays between its bounds, an item not
//! kept weighs at most the floor, and the floor stays at most `total / capacity`: of `capacity + 1` items, the
//! upper bounds add up to at most the total plus both floors, each at most its side's `total / capacity`. Every
//! item whose true weight exceeds `total / capacity` is therefore kept, as in one summary of the whole stream; and
//! while no more than `capacity` distinct items were ever added, every weight is exact.

use std::collections::HashMap;

use super::space_saving::{Hitter, SpaceSaving};

/// Heavy hitters merged from whole summaries.
#[derive(Debug)]
pub(super) struct MergedHitters {
    capacity: usize,
    /// Heaviest first (ties by item).
    items: Vec<Hitter>,
    floor: u64,
}

impl MergedHitters {
    pub(super) fn new(capacity: usize) -> Self {
        MergedHitters {
            capacity: capacity.max(1),
            items: Vec::new(),
            floor: 0,
        }
    }

    /// This and `window`'s summary merged.
    pub(super) fn with(&self, window: &SpaceSaving) -> MergedHitters {
        self.merged(&window.top(usize::MAX), window.floor())
    }

    /// Merges `window`'s summary in.
    pub(super) fn add(&mut self, window: &SpaceSaving) {
        *self = self.with(window);
    }

    fn merged(&self, other: &[Hitter], other_floor: u64) -> MergedHitters {
        // Per item: its upper bound, its lower bound, and on which sides it is kept.
        let mut union: HashMap<&[u8], (u64, u64, bool, bool)> =
            HashMap::with_capacity(self.items.len() + other.len());
        for h in &self.items {
            union.insert(&h.item, (h.weight, h.weight - h.error, true, false));
        }
        for h in other {
            let bounds = union.entry(&h.item).or_insert((0, 0, false, false));
            bounds.0 = bounds.0.saturating_add(h.weight);
            bounds.1 = bounds.1.saturating_add(h.weight - h.error);
            bounds.3 = true;
        }
        let mut items: Vec<Hitter> = union
            .into_iter()
            .map(|(item, (mut upper, lower, here, there))| {
                if !here {
                    upper = upper.saturating_add(self.floor);
                }
                if !there {
                    upper = upper.saturating_add(other_floor);
                }
                Hitter {
                    item: item.to_vec(),
                    weight: upper,
                    error: upper - lower,
                }
            })
            .collect();
        items.sort_by(|a, b| b.weight.cmp(&a.weight).then_with(|| a.item.cmp(&b.item)));
        let mut floor = self.floor.saturating_add(other_floor);
        if let Some(heaviest_dropped) = items.get(self.capacity) {
            floor = floor.max(heaviest_dropped.weight);
            items.truncate(self.capacity);
        }
        MergedHitters {
            capacity: self.capacity,
            items,
            floor,
        }
    }

    /// The `n` heaviest, heaviest first (ties by item).
    pub(super) fn top(&self, n: usize) -> Vec<Hitter> {
        self.items.iter().take(n).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::profile::space_saving::Hashed;

    #[test]
    fn an_item_missing_from_a_full_side_takes_its_floor_as_error() {
        let mut window = SpaceSaving::new(2);
        for (item, weight) in [(&b"a"[..], 5), (b"b", 3)] {
            window.add(&Hashed::new(item), weight);
        }
        let mut merged = MergedHitters::new(2);
        merged.add(&window);
        let mut next = SpaceSaving::new(2);
        for (item, weight) in [(&b"a"[..], 1), (b"c", 4), (b"d", 2)] {
            next.add(&Hashed::new(item), weight);
        }
        // `next` replaced "a" (1) by "d" (3 ± 1): its floor is 3, the first window's 0 (it replaced none).
        let since_start = merged.with(&next);
        let got: Vec<(&[u8], u64, u64)> = since_start
            .items
            .iter()
            .map(|h| (h.item.as_slice(), h.weight, h.error))
            .collect();
        // a: 5 and at most 3; b: 3 and at most 3; c: 4 (kept, 4 − 0, dropped with d's 3 ± 1): floor 4.
        assert_eq!(got, [(&b"a"[..], 8, 3), (b"b", 6, 3)]);
        assert_eq!(since_start.floor, 4);
    }

    /// Streams cut into windows, from a small alphabet (items come back, in and across windows) with a few heavy
    /// items, weighted by 1 or by up to 1,000.
    fn windows() -> impl Strategy<Value = (usize, Vec<Vec<(u16, u64)>>)> {
        (1usize..24).prop_flat_map(|capacity| {
            let item = prop_oneof![3 => 0u16..6, 7 => 0u16..120];
            let weight = prop_oneof![1 => Just(1u64), 1 => 1u64..1000];
            let window = prop::collection::vec((item, weight), 0..300);
            (Just(capacity), prop::collection::vec(window, 1..8))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn merged_windows_keep_the_bounds_of_one_summary_of_the_whole_stream((capacity, windows) in windows()) {
            let mut merged = MergedHitters::new(capacity);
            let mut truth: HashMap<Vec<u8>, u64> = HashMap::new();
            let mut total = 0;
            let (current, retired) = windows.split_last().expect("one window at least");
            let summary = |window: &[(u16, u64)]| {
                let mut summary = SpaceSaving::new(capacity);
                for &(item, weight) in window {
                    summary.add(&Hashed::new(format!("key:{item}").as_bytes()), weight);
                }
                summary
            };
            for window in retired {
                merged.add(&summary(window));
            }
            let since_start = merged.with(&summary(current));
            for &(item, weight) in windows.iter().flatten() {
                *truth.entry(format!("key:{item}").into_bytes()).or_default() += weight;
                total += weight;
            }
            prop_assert!(since_start.items.len() <= capacity);
            prop_assert!(since_start.floor <= total / capacity as u64, "floor {} over {} / {}", since_start.floor, total, capacity);
            for kept in &since_start.items {
                let true_weight = truth[&kept.item];
                prop_assert!(kept.weight >= true_weight && kept.weight - kept.error <= true_weight, "{:?}, true weight {}", kept, true_weight);
                prop_assert!(kept.weight >= since_start.floor);
                if truth.len() <= capacity {
                    prop_assert_eq!((kept.weight, kept.error), (true_weight, 0));
                }
            }
            for (item, true_weight) in &truth {
                if !since_start.items.iter().any(|h| &h.item == item) {
                    prop_assert!(*true_weight <= since_start.floor, "{:?} ({}) is not kept, floor {}", item, true_weight, since_start.floor);
                }
            }
        }
    }
}
