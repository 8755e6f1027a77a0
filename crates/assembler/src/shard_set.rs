//! A set of shard indexes (`0..MAX_SHARDS`, the wire's limit) as a fixed bitset: which shards joined, which
//! snapshots a session awaits, which shards' databases were swapped. Shard indexes are small and bounded, so a
//! bitset is both the smallest code in the browser's `.wasm` and O(1) for every operation, where a `BTreeSet`
//! would bring its whole tree code for a handful of numbers.

use replicast_protocol::wire::MAX_SHARDS;

const WORDS: usize = MAX_SHARDS / 64;

/// Shard indexes below [`MAX_SHARDS`]; larger ones are never members (the wire refuses them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSet {
    words: [u64; WORDS],
}

impl Default for ShardSet {
    fn default() -> Self {
        ShardSet { words: [0; WORDS] }
    }
}

impl ShardSet {
    pub fn new() -> Self {
        Self::default()
    }

    fn place(shard: u16) -> Option<(usize, u64)> {
        let shard = usize::from(shard);
        (shard < MAX_SHARDS).then(|| (shard / 64, 1u64 << (shard % 64)))
    }

    /// Adds `shard`; returns whether it was new (a shard beyond the wire's limit is never added).
    pub fn insert(&mut self, shard: u16) -> bool {
        let Some((word, bit)) = Self::place(shard) else {
            return false;
        };
        let Some(w) = self.words.get_mut(word) else {
            return false;
        };
        let new = *w & bit == 0;
        *w |= bit;
        new
    }

    /// Removes `shard`; returns whether it was there.
    pub fn remove(&mut self, shard: u16) -> bool {
        let Some((word, bit)) = Self::place(shard) else {
            return false;
        };
        let Some(w) = self.words.get_mut(word) else {
            return false;
        };
        let was = *w & bit != 0;
        *w &= !bit;
        was
    }

    pub fn contains(&self, shard: u16) -> bool {
        Self::place(shard)
            .and_then(|(word, bit)| self.words.get(word).map(|w| w & bit != 0))
            .unwrap_or(false)
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    pub fn clear(&mut self) {
        self.words = [0; WORDS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_every_index_the_wire_allows_and_none_beyond() {
        let mut set = ShardSet::new();
        assert!(set.is_empty());
        for shard in [0, 1, 63, 64, 511, 1023] {
            assert!(set.insert(shard));
            assert!(!set.insert(shard));
            assert!(set.contains(shard));
        }
        assert!(!set.contains(2));
        assert!(!set.insert(1024));
        assert!(!set.contains(1024));
        assert!(set.remove(64));
        assert!(!set.remove(64));
        assert!(!set.contains(64));
        assert!(set.contains(63) && set.contains(511));
        set.clear();
        assert!(set.is_empty());
    }
}
