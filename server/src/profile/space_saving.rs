//! The heaviest hitters of a stream in fixed memory: Metwally, Agrawal and El Abbadi's space-saving summary.
//!
//! It keeps at most `capacity` items with a weight each. An item already kept gains its weight; a new one, when the
//! summary is full, takes the place of the lightest kept item and inherits its weight as `error` (how much of its
//! weight may belong to the items it replaced). So every item whose true weight exceeds `total / capacity` is kept,
//! a kept item's true weight lies in `[weight - error, weight]`, and while no more than `capacity` distinct items
//! arrive, every weight is exact (`error` 0). Memory: `capacity` items, each at most the length its caller allows.
//!
//! Every key the replica link reads goes through four of these in the window being filled (since the start is
//! merged from whole windows, merged_hitters.rs), so the summary is built to cost little per item. The kept items are in a min-heap by weight that knows each item's place, so the lightest
//! is at hand, and an increment moves its item only down the heap: a heavy item sits near the leaves and seldom
//! moves at all. Items are found through a hash table of slot numbers that compares the slots' own bytes, so an
//! item is stored once, and a new one is copied once, into the buffer of the slot it takes (kept from the item it
//! replaces, so a full summary does not allocate). Ties between equally light items go to the lowest slot, so a
//! stream always gives the same summary. The hash is computed once per item by the caller ([`Hashed`]) and shared
//! by every summary the item goes to; it is foldhash, seeded at random once per process: its speed is the reason
//! (SipHash was a sixth of the profile's instructions on a stream of many keys), and the random seed is why it is safe, since whoever writes to
//! Redis chooses the keys and could otherwise choose ones that collide.

use std::hash::{BuildHasher, Hasher};
use std::sync::LazyLock;

use hashbrown::HashTable;

/// Longest key or prefix a summary keeps: a longer key is counted in `long_keys` only, and a longer prefix (of a
/// longer key still) not at all, so a summary's memory stays bounded whatever keys are written.
pub const MAX_PROFILE_KEY: usize = 256;

/// One kept item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hitter {
    pub item: Vec<u8>,
    /// Weight counted for it: an over-estimate by at most `error`.
    pub weight: u64,
    pub error: u64,
}

/// The one hasher of every summary, so that an item hashed once can be looked up in each.
static HASHER: LazyLock<foldhash::fast::RandomState> = LazyLock::new(Default::default);

/// An item with its hash, computed once for every summary it is added to.
#[derive(Debug, Clone, Copy)]
pub struct Hashed<'a> {
    bytes: &'a [u8],
    hash: u64,
}

impl<'a> Hashed<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        // One `write`, without the length prefix `hash_one` would add: foldhash's `write` mixes the length in
        // itself, and the prefix cost a multiplication more for every key of every command.
        let mut hasher = HASHER.build_hasher();
        hasher.write(bytes);
        Hashed {
            bytes,
            hash: hasher.finish(),
        }
    }

    /// `bytes` with the hash [`Hashed::new`] gave them before.
    pub(super) fn with_hash(bytes: &'a [u8], hash: u64) -> Self {
        Hashed { bytes, hash }
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }
}

/// Where a kept item lives: its bytes, their hash, its error, and its place in the heap.
#[derive(Debug)]
struct Slot {
    item: Vec<u8>,
    hash: u64,
    error: u64,
    heap_at: u32,
}

/// A heap entry: the weight is kept here rather than in the slot so that sifting reads the heap alone.
#[derive(Debug, Clone, Copy)]
struct Entry {
    weight: u64,
    slot: u32,
}

impl Entry {
    /// The heap's order: lightest first, ties by slot.
    fn before(&self, other: &Entry) -> bool {
        (self.weight, self.slot) < (other.weight, other.slot)
    }
}

#[derive(Debug)]
pub struct SpaceSaving {
    capacity: usize,
    slots: Vec<Slot>,
    heap: Vec<Entry>,
    /// Slot numbers, by their item's hash.
    index: HashTable<u32>,
    /// Whether an item was replaced: until one is, every weight is exact and an item not kept was never added.
    replaced: bool,
}

impl SpaceSaving {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        SpaceSaving {
            capacity,
            slots: Vec::with_capacity(capacity),
            heap: Vec::with_capacity(capacity),
            // Twice the items: a full table whose removals left tombstones is then rehashed in place, never grown.
            index: HashTable::with_capacity(2 * capacity),
            replaced: false,
        }
    }

    /// Adds `weight` to `item`.
    pub fn add(&mut self, item: &Hashed, weight: u64) {
        let slots = &self.slots;
        if let Some(&slot) = self
            .index
            .find(item.hash, |&s| slots[s as usize].item == item.bytes)
        {
            let at = self.slots[slot as usize].heap_at as usize;
            let entry = &mut self.heap[at];
            entry.weight = entry.weight.saturating_add(weight);
            self.sift_down(at);
            return;
        }
        if self.slots.len() < self.capacity {
            let slot = self.slots.len() as u32;
            let at = self.heap.len();
            self.slots.push(Slot {
                item: item.bytes.to_vec(),
                hash: item.hash,
                error: 0,
                heap_at: at as u32,
            });
            self.heap.push(Entry { weight, slot });
            self.insert_index(item.hash, slot);
            self.sift_up(at);
            return;
        }
        let lightest = self.heap[0];
        let slot = &mut self.slots[lightest.slot as usize];
        if let Ok(entry) = self.index.find_entry(slot.hash, |&s| s == lightest.slot) {
            entry.remove();
        }
        slot.item.clear();
        slot.item.extend_from_slice(item.bytes);
        slot.hash = item.hash;
        slot.error = lightest.weight;
        self.replaced = true;
        self.heap[0].weight = lightest.weight.saturating_add(weight);
        self.insert_index(item.hash, lightest.slot);
        self.sift_down(0);
    }

    fn insert_index(&mut self, hash: u64, slot: u32) {
        let slots = &self.slots;
        self.index
            .insert_unique(hash, slot, |&s| slots[s as usize].hash);
    }

    /// Moves the entry at `at` up while it is lighter than its parent (a new item, lighter than some kept ones).
    fn sift_up(&mut self, mut at: usize) {
        while at > 0 {
            let parent = (at - 1) / 2;
            if !self.heap[at].before(&self.heap[parent]) {
                break;
            }
            self.swap(at, parent);
            at = parent;
        }
    }

    /// Moves the entry at `at` down while a child is lighter (an item that gained weight).
    fn sift_down(&mut self, mut at: usize) {
        let len = self.heap.len();
        loop {
            let left = 2 * at + 1;
            if left >= len {
                break;
            }
            let right = left + 1;
            let child = if right < len && self.heap[right].before(&self.heap[left]) {
                right
            } else {
                left
            };
            if !self.heap[child].before(&self.heap[at]) {
                break;
            }
            self.swap(at, child);
            at = child;
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.slots[self.heap[a].slot as usize].heap_at = a as u32;
        self.slots[self.heap[b].slot as usize].heap_at = b as u32;
    }

    /// The kept items, heaviest first (ties by item).
    pub fn top(&self, n: usize) -> Vec<Hitter> {
        let mut all: Vec<Hitter> = self
            .heap
            .iter()
            .map(|entry| {
                let slot = &self.slots[entry.slot as usize];
                Hitter {
                    item: slot.item.clone(),
                    weight: entry.weight,
                    error: slot.error,
                }
            })
            .collect();
        all.sort_by(|a, b| b.weight.cmp(&a.weight).then_with(|| a.item.cmp(&b.item)));
        all.truncate(n);
        all
    }

    /// The most an item not kept may weigh: the lightest kept weight once an item was replaced, else 0.
    pub fn floor(&self) -> u64 {
        match self.heap.first() {
            Some(lightest) if self.replaced => lightest.weight,
            _ => 0,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn add(s: &mut SpaceSaving, item: &[u8], weight: u64) {
        s.add(&Hashed::new(item), weight);
    }

    #[test]
    fn weights_are_exact_while_items_fit() {
        let mut s = SpaceSaving::new(3);
        for (item, weight) in [(&b"a"[..], 1), (b"b", 5), (b"a", 2), (b"c", 1)] {
            add(&mut s, item, weight);
        }
        let top = s.top(10);
        let got: Vec<(&[u8], u64, u64)> = top
            .iter()
            .map(|h| (h.item.as_slice(), h.weight, h.error))
            .collect();
        assert_eq!(got, [(&b"b"[..], 5, 0), (b"a", 3, 0), (b"c", 1, 0)]);
        // Full, but nothing replaced: an item it does not keep was never added.
        assert_eq!(s.floor(), 0);
    }

    #[test]
    fn a_new_item_replaces_the_lightest_and_inherits_its_weight_as_error() {
        let mut s = SpaceSaving::new(2);
        add(&mut s, b"a", 10);
        add(&mut s, b"b", 2);
        add(&mut s, b"c", 1);
        let top = s.top(2);
        assert_eq!(top[0].item, b"a");
        assert_eq!(
            (top[1].item.as_slice(), top[1].weight, top[1].error),
            (&b"c"[..], 3, 2)
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s.floor(), 3);
        // "b" is gone: adding it again replaces the lightest ("c", 3).
        add(&mut s, b"b", 1);
        assert_eq!(s.top(2)[1].item, b"b");
        assert_eq!(s.top(2)[1].weight, 4);
    }

    #[test]
    fn every_heavy_hitter_is_kept_among_many_distinct_light_items() {
        // 10,000 distinct items once each, and three heavy ones (more than total / capacity) interleaved.
        let mut s = SpaceSaving::new(64);
        let mut total = 0u64;
        for i in 0..10_000u32 {
            add(&mut s, format!("light:{i}").as_bytes(), 1);
            total += 1;
            if i % 10 == 0 {
                for heavy in [&b"heavy:1"[..], b"heavy:2", b"heavy:3"] {
                    add(&mut s, heavy, 1);
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

    /// The summary as the paper states it, with nothing to make it fast: a list of (item, weight, error) in slots,
    /// scanned whole for each item and for the lightest (ties to the lowest slot, as the heap breaks them).
    struct Reference {
        capacity: usize,
        slots: Vec<Hitter>,
    }

    impl Reference {
        fn add(&mut self, item: &[u8], weight: u64) {
            if let Some(kept) = self.slots.iter_mut().find(|h| h.item == item) {
                kept.weight += weight;
            } else if self.slots.len() < self.capacity {
                self.slots.push(Hitter {
                    item: item.to_vec(),
                    weight,
                    error: 0,
                });
            } else {
                let (_, lightest) = self
                    .slots
                    .iter_mut()
                    .enumerate()
                    .min_by_key(|(at, h)| (h.weight, *at))
                    .expect("a full summary has items");
                *lightest = Hitter {
                    item: item.to_vec(),
                    weight: lightest.weight + weight,
                    error: lightest.weight,
                };
            }
        }

        fn top(&self) -> Vec<Hitter> {
            let mut all = self.slots.clone();
            all.sort_by(|a, b| b.weight.cmp(&a.weight).then_with(|| a.item.cmp(&b.item)));
            all
        }
    }

    /// Streams of items from a small alphabet (so items come back after being replaced) with a few heavy ones,
    /// weighted by 1 (counting writes) or by up to 1,000 (counting bytes).
    fn streams() -> impl Strategy<Value = (usize, Vec<(u16, u64)>)> {
        (1usize..40).prop_flat_map(|capacity| {
            let item = prop_oneof![3 => 0u16..8, 7 => 0u16..200];
            let weight = prop_oneof![1 => Just(1u64), 1 => 1u64..1000];
            (
                Just(capacity),
                prop::collection::vec((item, weight), 0..2000),
            )
        })
    }

    proptest! {
        #[test]
        fn the_summary_equals_the_reference_and_keeps_its_bounds((capacity, stream) in streams()) {
            let mut summary = SpaceSaving::new(capacity);
            let mut reference = Reference { capacity, slots: Vec::new() };
            let mut truth: HashMap<Vec<u8>, u64> = HashMap::new();
            let mut total = 0;
            for (item, weight) in stream {
                let item = format!("key:{item}").into_bytes();
                summary.add(&Hashed::new(&item), weight);
                reference.add(&item, weight);
                *truth.entry(item).or_default() += weight;
                total += weight;
            }
            let top = summary.top(usize::MAX);
            prop_assert_eq!(&top, &reference.top());
            for kept in &top {
                let true_weight = truth[&kept.item];
                prop_assert!(kept.weight >= true_weight && kept.weight - kept.error <= true_weight, "{:?}, true weight {}", kept, true_weight);
            }
            for (item, true_weight) in &truth {
                if !top.iter().any(|h| &h.item == item) {
                    prop_assert!(*true_weight <= summary.floor(), "{:?} ({}) is not kept, floor {}", item, true_weight, summary.floor());
                }
                if *true_weight > total / capacity as u64 {
                    prop_assert!(top.iter().any(|h| &h.item == item), "{:?} ({} of {}) is not kept", item, true_weight, total);
                }
            }
        }
    }
}
