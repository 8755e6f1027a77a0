//! The keys one link wrote lately, each with what the profile may show of it settled once, and its writes and bytes
//! not yet added to the windows.
//!
//! A primary writes the same keys over and over (a collector's series, a user's session), and settling a key —
//! matching it against `--allow`'s globs (and `--profile-prefixes`'), finding its `:`-prefixes, hashing each — cost
//! more than everything else the profile does with it. Here a key written again costs one hash and one lookup; its
//! counts gather in its entry until the link's batch ends, when each key written in the batch goes into the
//! windows' summaries once, with the batch's sum (space-saving's bounds hold whatever the order and grouping of the
//! weights it is given).
//!
//! Memory is fixed: at most [`RECENT_KEYS`] keys of at most `MAX_PROFILE_KEY` bytes, their bytes back to back in one
//! buffer. When it is full, the caller adds what is pending to the windows and the keys are forgotten (a key's
//! decision is settled again the next time it is written: the globs are fixed for the relay's life, so it is the
//! same one). A key is found by its bytes, never by its hash alone, so a collision cannot lend one key another's
//! decision.

use hashbrown::HashTable;

use super::short_bytes::same_bytes;
use super::space_saving::{Hashed, MAX_PROFILE_KEY};

/// Keys a link remembers the decision of (`RecentKeys`): more distinct keys than this, between two flushes, make it
/// start over.
pub const RECENT_KEYS: usize = 1024;

/// What the profile may show of a key, settled once for every time it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shown {
    /// Inside `--allow`: counted by name (when no longer than `MAX_PROFILE_KEY`), else in the hidden totals only.
    pub(super) allowed: bool,
    /// The key's `:`-prefixes that may be shown: their lengths (prefixes of the key) and hashes.
    pub(super) prefixes: [Option<(u16, u64)>; 2],
}

/// One remembered key: where its bytes are, its hash, its decision, and what it gathered since the last flush.
#[derive(Debug)]
pub(super) struct RecentKey {
    at: u32,
    len: u16,
    pub(super) hash: u64,
    pub(super) shown: Shown,
    pub(super) writes: u64,
    pub(super) bytes: u64,
}

#[derive(Debug)]
pub(super) struct RecentKeys {
    /// The keys' bytes, back to back.
    names: Vec<u8>,
    entries: Vec<RecentKey>,
    /// Entry numbers, by their key's hash.
    index: HashTable<u32>,
    /// Entries written since the last flush, in the order of their first write.
    written: Vec<u32>,
}

impl Default for RecentKeys {
    fn default() -> Self {
        RecentKeys {
            names: Vec::with_capacity(RECENT_KEYS * 32),
            entries: Vec::with_capacity(RECENT_KEYS),
            index: HashTable::with_capacity(RECENT_KEYS),
            written: Vec::with_capacity(RECENT_KEYS),
        }
    }
}

impl RecentKeys {
    /// Counts a write of `bytes` to `key` if it is remembered; `false` when the caller must settle it first.
    pub(super) fn written(&mut self, key: &Hashed, bytes: u64) -> bool {
        let (names, entries) = (&self.names, &self.entries);
        let found = self.index.find(key.hash(), |&e| {
            let entry = &entries[e as usize];
            same_bytes(
                &names[entry.at as usize..entry.at as usize + entry.len as usize],
                key.bytes(),
            )
        });
        let Some(&e) = found else {
            return false;
        };
        let entry = &mut self.entries[e as usize];
        if entry.writes == 0 {
            self.written.push(e);
        }
        entry.writes += 1;
        entry.bytes += bytes;
        true
    }

    /// Whether `remember` would take a key: no longer than the longest kept, and room left. When there is none,
    /// the caller flushes and [`clear`](Self::clear)s.
    pub(super) fn has_room(&self) -> bool {
        self.entries.len() < RECENT_KEYS
    }

    /// Remembers `key` (not yet remembered, at most `MAX_PROFILE_KEY` bytes, with room left), with its decision and
    /// its first write.
    pub(super) fn remember(&mut self, key: &Hashed, shown: Shown, bytes: u64) {
        debug_assert!(key.bytes().len() <= MAX_PROFILE_KEY && self.has_room());
        let e = self.entries.len() as u32;
        self.entries.push(RecentKey {
            at: self.names.len() as u32,
            len: key.bytes().len() as u16,
            hash: key.hash(),
            shown,
            writes: 1,
            bytes,
        });
        self.names.extend_from_slice(key.bytes());
        let entries = &self.entries;
        self.index
            .insert_unique(key.hash(), e, |&e| entries[e as usize].hash);
        self.written.push(e);
    }

    /// Hands each key written since the last flush, with what it gathered, to `add`, and zeroes them.
    pub(super) fn flush(&mut self, mut add: impl FnMut(&[u8], &RecentKey)) {
        for e in self.written.drain(..) {
            let entry = &mut self.entries[e as usize];
            let key = &self.names[entry.at as usize..entry.at as usize + entry.len as usize];
            add(key, entry);
            entry.writes = 0;
            entry.bytes = 0;
        }
    }

    /// Forgets every key (after a flush: what they gathered is lost otherwise).
    pub(super) fn clear(&mut self) {
        debug_assert!(self.written.is_empty());
        self.names.clear();
        self.entries.clear();
        self.index.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOWN: Shown = Shown {
        allowed: true,
        prefixes: [None, None],
    };

    fn flushed(recent: &mut RecentKeys) -> Vec<(Vec<u8>, u64, u64)> {
        let mut got = Vec::new();
        recent.flush(|key, entry| got.push((key.to_vec(), entry.writes, entry.bytes)));
        got
    }

    #[test]
    fn a_remembered_key_gathers_its_writes_until_the_flush() {
        let mut recent = RecentKeys::default();
        assert!(!recent.written(&Hashed::new(b"a"), 10));
        recent.remember(&Hashed::new(b"a"), SHOWN, 10);
        assert!(recent.written(&Hashed::new(b"a"), 5));
        recent.remember(&Hashed::new(b"b"), SHOWN, 1);
        assert!(recent.written(&Hashed::new(b"a"), 1));
        assert!(!recent.written(&Hashed::new(b"ab"), 1));
        assert_eq!(
            flushed(&mut recent),
            [(b"a".to_vec(), 3, 16), (b"b".to_vec(), 1, 1)]
        );
        assert_eq!(flushed(&mut recent), []);
        assert!(recent.written(&Hashed::new(b"b"), 2));
        assert_eq!(flushed(&mut recent), [(b"b".to_vec(), 1, 2)]);
    }

    #[test]
    fn it_holds_a_fixed_number_of_keys_and_forgets_them_all_when_cleared() {
        let mut recent = RecentKeys::default();
        let long = "k".repeat(MAX_PROFILE_KEY);
        for i in 0..RECENT_KEYS {
            assert!(recent.has_room());
            let key = format!("{i}{}", &long[i.to_string().len()..]);
            recent.remember(&Hashed::new(key.as_bytes()), SHOWN, 1);
        }
        assert!(!recent.has_room());
        assert_eq!(recent.names.len(), RECENT_KEYS * MAX_PROFILE_KEY);
        assert_eq!(flushed(&mut recent).len(), RECENT_KEYS);
        recent.clear();
        assert!(recent.has_room());
        assert!(!recent.written(&Hashed::new(format!("0{}", &long[1..]).as_bytes()), 1));
    }
}
