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
//! Most writes do not even need the hash: a stream repeats not only its keys but their order (a fleet of
//! collectors writing host after host, a client writing a key and then its index), so each entry remembers the key
//! written right after it the last time, and a write first compares its key with the one that followed the key
//! written last. Only when that guess is wrong is the key hashed and looked up (and the guess corrected).
//!
//! Memory is fixed: at most [`RECENT_KEYS`] keys of at most `MAX_PROFILE_KEY` bytes, their bytes back to back in one
//! buffer. When it is full, the caller adds what is pending to the windows and the keys are forgotten (a key's
//! decision is settled again the next time it is written: the globs are fixed for the relay's life, so it is the
//! same one). A key is found by its bytes, never by its hash alone, so a collision cannot lend one key another's
//! decision.

use hashbrown::HashTable;

use super::space_saving::{Hashed, MAX_PROFILE_KEY};
use replicast_protocol::short_bytes::same_bytes;

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
    /// The entry written right after this one, the last time this one was written: the guess for the write that
    /// follows its next one.
    next: u32,
}

/// What [`RecentKeys::written`] found of a key.
pub(super) enum Written<'k> {
    /// It is remembered, and the write is counted.
    Counted,
    /// It is not: the caller settles it and [`remember`](RecentKeys::remember)s it, with this hash.
    New(Hashed<'k>),
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
    /// The entry written last, whose `next` is the guess for the next write (none after a `clear`).
    last: Option<u32>,
}

impl Default for RecentKeys {
    fn default() -> Self {
        RecentKeys {
            names: Vec::with_capacity(RECENT_KEYS * 32),
            entries: Vec::with_capacity(RECENT_KEYS),
            index: HashTable::with_capacity(RECENT_KEYS),
            written: Vec::with_capacity(RECENT_KEYS),
            last: None,
        }
    }
}

impl RecentKeys {
    /// Counts a write of `bytes` to `key` if it is remembered; if not, hands back its hash for the caller to settle
    /// it first.
    #[inline]
    pub(super) fn written<'k>(&mut self, key: &'k [u8], bytes: u64) -> Written<'k> {
        let guessed = self.guess().filter(|&next| self.holds(next, key));
        let e = match guessed {
            Some(e) => e,
            None => {
                let hashed = Hashed::new(key);
                let (names, entries) = (&self.names, &self.entries);
                let found = self.index.find(hashed.hash(), |&e| {
                    entries
                        .get(e as usize)
                        .is_some_and(|entry| same_bytes(entry.key(names), key))
                });
                let Some(&e) = found else {
                    return Written::New(hashed);
                };
                self.follows(e);
                e
            }
        };
        self.last = Some(e);
        let Some(entry) = self.entries.get_mut(e as usize) else {
            return Written::Counted;
        };
        if entry.writes == 0 {
            self.written.push(e);
        }
        entry.writes += 1;
        entry.bytes += bytes;
        Written::Counted
    }

    /// The entry the next write is guessed to be: the one written after the last one the last time it was written.
    #[inline(always)]
    fn guess(&self) -> Option<u32> {
        let last = self.last?;
        Some(self.entries.get(last as usize)?.next)
    }

    /// Whether entry `e` is `key`'s.
    #[inline(always)]
    fn holds(&self, e: u32, key: &[u8]) -> bool {
        self.entries
            .get(e as usize)
            .is_some_and(|entry| same_bytes(entry.key(&self.names), key))
    }

    /// Records that entry `e` was written after the last one written, the guess for the next time.
    fn follows(&mut self, e: u32) {
        if let Some(last) = self
            .last
            .and_then(|last| self.entries.get_mut(last as usize))
        {
            last.next = e;
        }
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
        self.follows(e);
        self.last = Some(e);
        self.entries.push(RecentKey {
            at: self.names.len() as u32,
            len: key.bytes().len() as u16,
            hash: key.hash(),
            shown,
            writes: 1,
            bytes,
            next: e,
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
            let Some(entry) = self.entries.get_mut(e as usize) else {
                continue;
            };
            add(entry.key(&self.names), entry);
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
        self.last = None;
    }
}

impl RecentKey {
    /// Its key's bytes, in `names`.
    #[inline(always)]
    fn key<'n>(&self, names: &'n [u8]) -> &'n [u8] {
        names
            .get(self.at as usize..self.at as usize + self.len as usize)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SHOWN: Shown = Shown {
        allowed: true,
        prefixes: [None, None],
    };

    /// Whether a write of `bytes` to `key` was counted (`key` is remembered).
    fn counted(recent: &mut RecentKeys, key: &[u8], bytes: u64) -> bool {
        matches!(recent.written(key, bytes), Written::Counted)
    }

    fn flushed(recent: &mut RecentKeys) -> Vec<(Vec<u8>, u64, u64)> {
        let mut got = Vec::new();
        recent.flush(|key, entry| got.push((key.to_vec(), entry.writes, entry.bytes)));
        got
    }

    #[test]
    fn a_remembered_key_gathers_its_writes_until_the_flush() {
        let mut recent = RecentKeys::default();
        assert!(!counted(&mut recent, b"a", 10));
        recent.remember(&Hashed::new(b"a"), SHOWN, 10);
        assert!(counted(&mut recent, b"a", 5));
        recent.remember(&Hashed::new(b"b"), SHOWN, 1);
        assert!(counted(&mut recent, b"a", 1));
        assert!(!counted(&mut recent, b"ab", 1));
        assert_eq!(
            flushed(&mut recent),
            [(b"a".to_vec(), 3, 16), (b"b".to_vec(), 1, 1)]
        );
        assert_eq!(flushed(&mut recent), []);
        assert!(counted(&mut recent, b"b", 2));
        assert_eq!(flushed(&mut recent), [(b"b".to_vec(), 1, 2)]);
    }

    /// The key the next write is guessed to be.
    fn guessed(recent: &RecentKeys) -> Option<&[u8]> {
        let e = recent.guess()?;
        Some(recent.entries[e as usize].key(&recent.names))
    }

    #[test]
    fn the_next_write_is_guessed_to_be_the_key_that_followed_the_last_one_before() {
        let mut recent = RecentKeys::default();
        assert_eq!(guessed(&recent), None);
        for key in [b"a", b"b", b"c"] {
            assert!(!counted(&mut recent, key, 1));
            recent.remember(&Hashed::new(key), SHOWN, 1);
        }
        // Written in a cycle: each key is the one that followed the last.
        for key in [b"a", b"b", b"c", b"a", b"b"] {
            assert!(counted(&mut recent, key, 1));
        }
        assert_eq!(guessed(&recent), Some(&b"c"[..]));
        // A wrong guess is corrected: after `b` came `a` this time, so `a` is what follows `b` next time.
        assert!(counted(&mut recent, b"a", 1));
        assert_eq!(guessed(&recent), Some(&b"b"[..]));
        assert!(counted(&mut recent, b"b", 1));
        assert_eq!(guessed(&recent), Some(&b"a"[..]));
        // A key written twice in a row guesses itself.
        assert!(counted(&mut recent, b"b", 1));
        assert!(counted(&mut recent, b"b", 1));
        assert_eq!(guessed(&recent), Some(&b"b"[..]));
        assert_eq!(
            flushed(&mut recent),
            [
                (b"a".to_vec(), 4, 4),
                (b"b".to_vec(), 6, 6),
                (b"c".to_vec(), 2, 2)
            ]
        );
        recent.clear();
        assert_eq!(guessed(&recent), None);
    }

    proptest! {
        /// Whatever the order of writes, guessed right or wrong, each key gathers exactly its own writes, flushed
        /// (the end of a batch) or forgotten (a full `RecentKeys`) at any point.
        #[test]
        fn guessed_or_looked_up_each_key_gathers_its_own_writes(
            writes in prop::collection::vec((0u8..6, 1u64..100, prop_oneof![60 => Just(0u8), 1 => Just(1), 1 => Just(2)]), 0..400)
        ) {
            let mut recent = RecentKeys::default();
            let mut truth: Vec<(Vec<u8>, u64, u64)> = Vec::new();
            for (n, bytes, then) in writes {
                let key = format!("k{n}").into_bytes();
                if let Written::New(hashed) = recent.written(&key, bytes) {
                    recent.remember(&hashed, SHOWN, bytes);
                }
                match truth.iter_mut().find(|(k, _, _)| *k == key) {
                    Some(t) => {
                        t.1 += 1;
                        t.2 += bytes;
                    }
                    None => truth.push((key, 1, bytes)),
                }
                if then > 0 {
                    prop_assert_eq!(flushed(&mut recent), std::mem::take(&mut truth));
                }
                if then == 2 {
                    recent.clear();
                }
            }
            prop_assert_eq!(flushed(&mut recent), truth);
        }
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
        assert!(!counted(
            &mut recent,
            format!("0{}", &long[1..]).as_bytes(),
            1
        ));
    }
}
