//! The heaviest hitters of a stream in fixed memory: Metwally, Agrawal and El Abbadi's space-saving summary.
//!
//! It keeps at most `capacity` items with a weight each. An item already kept gains its weight; a new one, when the
//! summary is full, takes the place of the lightest kept item and inherits its weight as `error` (how much of its
//! weight may belong to the items it replaced). So every item whose true weight exceeds `total / capacity` is kept,
//! a kept item's true weight lies in `[weight - error, weight]`, and while no more than `capacity` distinct items
//! arrive, every weight is exact (`error` 0). Memory: `capacity` items, each at most the length its caller allows.

use std::collections::HashMap;

/// One kept item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hitter {
    pub item: Vec<u8>,
    /// Weight counted for it: an over-estimate by at most `error`.
    pub weight: u64,
    pub error: u64,
}

#[derive(Debug)]
pub struct SpaceSaving {
    capacity: usize,
    kept: Vec<Hitter>,
    index: HashMap<Vec<u8>, usize>,
}

impl SpaceSaving {
    pub fn new(capacity: usize) -> Self {
        SpaceSaving {
            capacity: capacity.max(1),
            kept: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Adds `weight` to `item`.
    pub fn add(&mut self, item: &[u8], weight: u64) {
        if let Some(&at) = self.index.get(item) {
            self.kept[at].weight += weight;
            return;
        }
        if self.kept.len() < self.capacity {
            self.index.insert(item.to_vec(), self.kept.len());
            self.kept.push(Hitter {
                item: item.to_vec(),
                weight,
                error: 0,
            });
            return;
        }
        // A scan for the lightest: capacity is small (a few hundred), and a linear pass over weights is cheaper
        // there than keeping a heap in step with every increment.
        let (at, lightest) = self
            .kept
            .iter()
            .enumerate()
            .min_by_key(|(_, h)| h.weight)
            .map(|(at, h)| (at, h.weight))
            .unwrap_or_default();
        let old = std::mem::replace(
            &mut self.kept[at],
            Hitter {
                item: item.to_vec(),
                weight: lightest + weight,
                error: lightest,
            },
        );
        self.index.remove(&old.item);
        self.index.insert(item.to_vec(), at);
    }

    /// The kept items, heaviest first (ties by item).
    pub fn top(&self, n: usize) -> Vec<Hitter> {
        let mut all = self.kept.clone();
        all.sort_by(|a, b| b.weight.cmp(&a.weight).then_with(|| a.item.cmp(&b.item)));
        all.truncate(n);
        all
    }

    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_exact_while_items_fit() {
        let mut s = SpaceSaving::new(3);
        for (item, weight) in [(&b"a"[..], 1), (b"b", 5), (b"a", 2), (b"c", 1)] {
            s.add(item, weight);
        }
        let top = s.top(10);
        let got: Vec<(&[u8], u64, u64)> = top
            .iter()
            .map(|h| (h.item.as_slice(), h.weight, h.error))
            .collect();
        assert_eq!(got, [(&b"b"[..], 5, 0), (b"a", 3, 0), (b"c", 1, 0)]);
    }

    #[test]
    fn a_new_item_replaces_the_lightest_and_inherits_its_weight_as_error() {
        let mut s = SpaceSaving::new(2);
        s.add(b"a", 10);
        s.add(b"b", 2);
        s.add(b"c", 1);
        let top = s.top(2);
        assert_eq!(top[0].item, b"a");
        assert_eq!(
            (top[1].item.as_slice(), top[1].weight, top[1].error),
            (&b"c"[..], 3, 2)
        );
        assert_eq!(s.len(), 2);
        // "b" is gone: adding it again replaces the lightest ("c", 3).
        s.add(b"b", 1);
        assert_eq!(s.top(2)[1].item, b"b");
        assert_eq!(s.top(2)[1].weight, 4);
    }

    #[test]
    fn every_heavy_hitter_is_kept_among_many_distinct_light_items() {
        // 10,000 distinct items once each, and three heavy ones (more than total / capacity) interleaved.
        let mut s = SpaceSaving::new(64);
        let mut total = 0u64;
        for i in 0..10_000u32 {
            s.add(format!("light:{i}").as_bytes(), 1);
            total += 1;
            if i % 10 == 0 {
                for heavy in [&b"heavy:1"[..], b"heavy:2", b"heavy:3"] {
                    s.add(heavy, 1);
                    total += 1;
                }
            }
        }
        assert!(
            1000 > total / 64,
            "the heavy items are over the guarantee's threshold"
        );
        let top = s.top(3);
        let mut names: Vec<&[u8]> = top.iter().map(|h| h.item.as_slice()).collect();
        names.sort();
        assert_eq!(names, [&b"heavy:1"[..], b"heavy:2", b"heavy:3"]);
        for h in &top {
            // The true weight is 1000: within [weight - error, weight].
            assert!(h.weight >= 1000 && h.weight - h.error <= 1000, "{h:?}");
        }
        assert_eq!(s.len(), 64);
    }
}
