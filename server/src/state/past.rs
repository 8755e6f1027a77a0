//! The state's **past writes**: a ring, bounded in bytes (`--state-history-bytes`), of the sorted-set members and
//! stream entries that entered a window of the state, each with its score (a member) or its whole id and fields (an
//! entry) and the end offset of the command that wrote it, so that a top-up answered from the state can list, for a
//! client that asks with `since` (the history sink), every item a key held between `since` and the top-up's offset
//! ([`wire::Past`]): a `ZINCRBY`'s result that existed nowhere but in Redis, overwritten before the top-up's answer,
//! or a stream's entries renamed into a key and trimmed before it, are not lost.
//!
//! For each key the ring knows from where its list is complete (`covered_from`): the later of the ring's horizon
//! (the offset of the newest entry evicted, or where the state started) and the offset at which the state last made
//! the key's window exact (a read of Redis, a write that made it known again). A key whose window is not exact
//! (unknown, stale, not held, written past `--state-depth`) is covered from nowhere until it is exact again, even one
//! made exact again by a later command of the same batch (`ZUNIONSTORE k …; DEL k`): the state learns of it from the
//! assembler's observer (`WindowObserver::topup_withdrawn`), not from the top-ups it takes after the batch, which the
//! `DEL` withdrew, and covers it from the batch's end. An item
//! the ring does not keep (a stream entry with more fields than a past message carries, or one the state's windows
//! report without its id) moves its key's `covered_from` past it.
//!
//! A key's `covered_from` mark lives in the ring too (one entry per key, moved to the ring's end when the mark moves
//! and evicted like the items: past the horizon it says nothing more), so what the ring keeps is bounded by its
//! bytes whatever the keys. Those bytes are counted, not the heap they take: the ring's buffers grow by doubling and
//! keep their size (an arena sized for large members stays so when small ones follow), and a key's name, table slot
//! and positions cost more than its entries count for (the keys' table, grown under churn, keeps up to 32/7 slots of
//! 81 bytes a key, whose one entry counts 64 bytes and its name). So the heap is about 1.3 to 2 times the bound with
//! one key's members, and up to 6.8 times measured, 8 at most, with many keys of a few bytes churning through the
//! ring (`server/tests/past_heap.rs` measures it with a counting allocator over a sweep of bounds and key sizes).
//! Lookups go through each key's positions in the ring, never the whole ring; one answer is bounded by
//! [`MAX_PAST_BYTES`], past which the keys left are answered as not covered.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use replicast_protocol::wire::{self, PastItem, PastValue, MAX_PAST_FIELDS};

use crate::snapshot::MAX_SNAPSHOT_BYTES;

/// Most bytes one past message holds: what one snapshot part may (a past message goes with one). Keys past it are
/// answered as not covered.
pub const MAX_PAST_BYTES: usize = MAX_SNAPSHOT_BYTES;

/// What an entry counts for besides its key's and item's bytes: its place in the ring, its key's position, and
/// the allocations' bookkeeping.
const ENTRY_COST: usize = 64;

/// One entry of the ring: an item that entered a key's window, or the key's mark.
struct Entry {
    offset: u64,
    /// The key's name, shared by its entries (one allocation a key, not one an entry).
    key: Arc<[u8]>,
    /// `None` for the key's `covered_from` mark.
    item: Option<Stored>,
}

/// An item of the ring: what it is, and where its bytes are in the ring's byte arena (after the previous item's):
/// items are copied there, not allocated one by one, and leave it from the front as the ring evicts them.
#[derive(Clone, Copy)]
struct Stored {
    what: What,
    at: u64,
    len: u32,
}

/// What an item of the ring is; its bytes in the arena hold the rest.
#[derive(Clone, Copy)]
enum What {
    /// A sorted-set member with its score; its bytes are the member's.
    Member(f64),
    /// A stream entry with its id's milliseconds; its bytes are its id's sequence number (8 bytes) and its fields
    /// as a past message carries them: their count (4 bytes), then each one's length (4 bytes) and bytes.
    Entry(u64),
}

/// An item entering the ring.
#[derive(Clone, Copy)]
enum Incoming<'a> {
    Member {
        score: f64,
        member: &'a [u8],
    },
    Entry {
        ms: u64,
        seq: u64,
        fields: &'a [Vec<u8>],
    },
}

impl Incoming<'_> {
    /// Its bytes in the arena.
    fn len(&self) -> usize {
        match self {
            Incoming::Member { member, .. } => member.len(),
            Incoming::Entry { fields, .. } => {
                12 + fields.iter().map(|f| 4 + f.len()).sum::<usize>()
            }
        }
    }

    /// Appends its bytes to the arena (its `len`, each field within `u32` as [`PastWrites::entry_added`] checked).
    fn write(&self, arena: &mut VecDeque<u8>) -> What {
        match *self {
            Incoming::Member { score, member } => {
                arena.extend(member);
                What::Member(score)
            }
            Incoming::Entry { ms, seq, fields } => {
                write_entry(arena, seq, fields);
                What::Entry(ms)
            }
        }
    }
}

/// A stream entry's bytes into the arena (see [`What::Entry`]). Out of line, and copying its fields by another
/// `extend` than a member's, so that the member's copy, on the path of every sorted-set write the state applies, is
/// the one call of its `extend` and stays inlined (called from two places, it was not: +29 instructions a member).
#[inline(never)]
fn write_entry(arena: &mut VecDeque<u8>, seq: u64, fields: &[Vec<u8>]) {
    arena.extend(seq.to_le_bytes());
    arena.extend((fields.len() as u32).to_le_bytes());
    for field in fields {
        arena.extend((field.len() as u32).to_le_bytes());
        arena.extend(field.iter().copied());
    }
}

impl Entry {
    fn cost(&self) -> usize {
        ENTRY_COST + self.key.len() + self.item.map_or(0, |m| m.len as usize)
    }
}

/// A stream entry's sequence number and fields, out of its bytes in the arena (as [`Incoming::write`] put them). A
/// length past the bytes left (which only a bug of the ring would write) ends the fields there, without a panic.
fn entry_parts(bytes: &[u8]) -> (u64, Vec<&[u8]>) {
    let mut fields = Vec::new();
    let Some((seq, rest)) = bytes.split_first_chunk::<8>() else {
        return (0, fields);
    };
    let Some((_count, mut rest)) = rest.split_first_chunk::<4>() else {
        return (u64::from_le_bytes(*seq), fields);
    };
    while let Some((len, after)) = rest.split_first_chunk::<4>() {
        let len = u32::from_le_bytes(*len) as usize;
        let (Some(field), Some(after)) = (after.get(..len), after.get(len..)) else {
            break;
        };
        fields.push(field);
        rest = after;
    }
    (u64::from_le_bytes(*seq), fields)
}

/// A key's name, positions (sequence numbers) of its items in the ring, oldest first, and its mark: the offset
/// from which its list is complete, if after the horizon.
struct KeyPast {
    key: Arc<[u8]>,
    items: VecDeque<u64>,
    mark: Option<u64>,
}

/// The ring of past writes; see the module's documentation.
pub struct PastWrites {
    /// `--state-history-bytes`; 0 keeps nothing.
    bound: usize,
    bytes: usize,
    entries: VecDeque<Entry>,
    /// The sequence number of `entries[0]`: entry `n` is at `entries[n - first]`.
    first: u64,
    /// The items' bytes, in the entries' order, and the arena position of `arena[0]`.
    arena: VecDeque<u8>,
    arena_from: u64,
    keys: HashMap<Arc<[u8]>, KeyPast>,
    /// The end offset of the newest entry evicted, or where the state started: nothing before it is listed.
    horizon: u64,
    /// Keys whose windows are not exact now: not covered at all.
    inexact: HashSet<Box<[u8]>>,
    /// How many `inexact` keys make the state look at them all again ([`PastWrites::sweep_due`]).
    sweep_at: usize,
    /// Entries an answer looked at, for the tests of what an answer past its limit costs.
    #[cfg(test)]
    looked_at: std::cell::Cell<usize>,
}

/// The fewest inexact keys the state looks at again at once.
const SWEEP_AT_LEAST: usize = 1024;

impl PastWrites {
    /// An empty ring for a state that starts at `offset`, keeping at most `bound` bytes.
    pub fn new(bound: usize, offset: u64) -> Self {
        PastWrites {
            bound,
            bytes: 0,
            entries: VecDeque::new(),
            first: 0,
            arena: VecDeque::new(),
            arena_from: 0,
            keys: HashMap::new(),
            horizon: offset,
            inexact: HashSet::new(),
            sweep_at: SWEEP_AT_LEAST,
            #[cfg(test)]
            looked_at: std::cell::Cell::new(0),
        }
    }

    /// Whether the inexact keys passed twice what they were at the last look: the state looks whether they are
    /// exact again (some become so without their windows changing: an unknown key deleted).
    pub fn sweep_due(&self) -> bool {
        self.inexact.len() > self.sweep_at
    }

    /// The state looked at every inexact key.
    pub fn swept(&mut self) {
        self.sweep_at = SWEEP_AT_LEAST.max(2 * self.inexact.len());
    }

    pub fn enabled(&self) -> bool {
        self.bound > 0
    }

    /// Bytes the ring counts (at most its bound; its heap is more: see the module's documentation).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// `member` entered `key`'s window with `score`, written by the command ending at `offset`.
    pub fn added(&mut self, offset: u64, key: &[u8], score: f64, member: &[u8]) {
        if self.enabled() {
            self.push(offset, key, Some(Incoming::Member { score, member }));
        }
    }

    /// The stream entry `ms-seq` entered `key`'s window with `fields` (names and values, alternating), written by
    /// the command ending at `offset`. One with more fields than a past message carries, or a field past 4 GiB, is
    /// not kept: the key is not covered before it.
    pub fn entry_added(&mut self, offset: u64, key: &[u8], ms: u64, seq: u64, fields: &[Vec<u8>]) {
        if !self.enabled() {
            return;
        }
        if fields.len() > MAX_PAST_FIELDS || fields.iter().any(|f| u32::try_from(f.len()).is_err())
        {
            self.mark(key, offset);
            return;
        }
        self.push(offset, key, Some(Incoming::Entry { ms, seq, fields }));
    }

    /// Something entered `key`'s window that the ring does not keep at `offset`: the key is not covered before it.
    pub fn uncovered(&mut self, offset: u64, key: &[u8]) {
        if self.enabled() {
            self.mark(key, offset);
        }
    }

    /// `key`'s window is not exact (stale, unknown, not held): it is not covered until [`Self::exact_at`].
    pub fn inexact(&mut self, key: &[u8]) {
        if self.enabled() && !self.inexact.contains(key) {
            self.inexact.insert(key.into());
        }
    }

    /// Whether `key` was made inexact and not exact since.
    pub fn is_inexact(&self, key: &[u8]) -> bool {
        self.inexact.contains(key)
    }

    /// Keys made inexact and not exact since, for the state to look at again.
    pub fn inexact_keys(&self) -> impl Iterator<Item = &[u8]> {
        self.inexact.iter().map(|k| &**k)
    }

    /// `key`'s window is exact from `offset` on: its list is complete after it.
    pub fn exact_at(&mut self, key: &[u8], offset: u64) {
        if self.enabled() {
            self.inexact.remove(key);
            self.mark(key, offset);
        }
    }

    /// Nothing of `key` before `offset` is covered.
    fn mark(&mut self, key: &[u8], offset: u64) {
        if offset <= self.horizon {
            return;
        }
        match self.keys.get_mut(key) {
            Some(KeyPast {
                mark: Some(mark), ..
            }) => {
                // The key's mark entry stays where it is; when it is evicted, it goes to the ring's end again.
                *mark = (*mark).max(offset);
            }
            _ => self.push(offset, key, None),
        }
    }

    /// From what offset `key`'s list is complete, for an answer at `at`: `at` itself when nothing is covered.
    pub fn covered_from(&self, key: &[u8], at: u64) -> u64 {
        if !self.enabled() || self.inexact.contains(key) {
            return at;
        }
        let mark = self.keys.get(key).and_then(|k| k.mark).unwrap_or(0);
        self.horizon.max(mark).min(at)
    }

    /// Appends `key`'s part of a past message at `at` for a request `since` that offset: its `covered_from` and
    /// the items that entered its window after both, oldest first. `false`, with nothing appended, when the part
    /// would take `out` past `limit` bytes.
    pub fn push_key(
        &self,
        out: &mut Vec<u8>,
        key: &[u8],
        since: u64,
        at: u64,
        limit: usize,
    ) -> bool {
        let covered_from = self.covered_from(key, at);
        let after = since.max(covered_from);
        // The key's part without its items, then each item's offset and kind, and a member's score, length and
        // bytes or an entry's milliseconds and the rest of its bytes as the arena holds them: counted as they are
        // collected, so a key past the limit costs no more than the entries that fit.
        let mut size = out.len() + 4 + key.len() + 12;
        if size > limit {
            return false;
        }
        let mut listed: Vec<&Entry> = Vec::new();
        if let Some(past) = self.keys.get(key).filter(|_| covered_from < at) {
            // Newest first, up to the first at or before `after`: the positions are in offset order.
            let newer = past
                .items
                .iter()
                .rev()
                .map(|seq| &self.entries[(seq - self.first) as usize])
                .take_while(|entry| entry.offset > after)
                .filter(|entry| entry.offset <= at);
            for entry in newer {
                #[cfg(test)]
                self.looked_at.set(self.looked_at.get() + 1);
                size += match entry.item {
                    Some(Stored {
                        what: What::Member(_),
                        len,
                        ..
                    }) => 21 + len as usize,
                    Some(Stored { len, .. }) => 17 + len as usize,
                    None => 0,
                };
                if size > limit {
                    return false;
                }
                listed.push(entry);
            }
            listed.reverse();
        }
        wire::push_past_key(out, key, covered_from, listed.len());
        for entry in listed {
            let Some(item) = entry.item else {
                continue;
            };
            let bytes = self.item_bytes(item);
            let value = match item.what {
                What::Member(score) => PastValue::Member {
                    score,
                    member: &bytes,
                },
                What::Entry(ms) => {
                    let (seq, fields) = entry_parts(&bytes);
                    PastValue::Entry { ms, seq, fields }
                }
            };
            wire::push_past_item(
                out,
                &PastItem {
                    offset: entry.offset,
                    value,
                },
            );
        }
        true
    }

    /// An item's bytes, out of the arena (copied only where they wrap around its end).
    fn item_bytes(&self, item: Stored) -> Cow<'_, [u8]> {
        let from = (item.at - self.arena_from) as usize;
        let to = from + item.len as usize;
        let (front, back) = self.arena.as_slices();
        if to <= front.len() {
            Cow::Borrowed(&front[from..to])
        } else if from >= front.len() {
            Cow::Borrowed(&back[from - front.len()..to - front.len()])
        } else {
            Cow::Owned([&front[from..], &back[..to - front.len()]].concat())
        }
    }

    /// Appends an entry for `key` at `offset`: an item, or its mark; evicts the oldest to make room.
    fn push(&mut self, offset: u64, key: &[u8], item: Option<Incoming<'_>>) {
        let len = item.map_or(0, |item| item.len());
        let cost = ENTRY_COST + key.len() + len;
        if cost > self.bound || u32::try_from(len).is_err() {
            // An entry the ring could never hold: nothing before it is covered, for any key.
            while !self.entries.is_empty() {
                self.evict();
            }
            self.horizon = self.horizon.max(offset);
            return;
        }
        while self.bytes + cost > self.bound && !self.entries.is_empty() {
            self.evict();
        }
        let seq = self.first + self.entries.len() as u64;
        let past = match self.keys.get_mut(key) {
            Some(past) => past,
            None => {
                let key: Arc<[u8]> = key.into();
                self.keys.entry(key.clone()).or_insert(KeyPast {
                    key,
                    items: VecDeque::new(),
                    mark: None,
                })
            }
        };
        let item = item.map(|item| {
            let at = self.arena_from + self.arena.len() as u64;
            let what = item.write(&mut self.arena);
            // Within `u32`, checked above.
            Stored {
                what,
                at,
                len: len as u32,
            }
        });
        match item {
            Some(_) => past.items.push_back(seq),
            None => past.mark = Some(offset),
        }
        let key = past.key.clone();
        self.bytes += cost;
        self.entries.push_back(Entry { offset, key, item });
    }

    fn evict(&mut self) {
        let Some(entry) = self.entries.pop_front() else {
            return;
        };
        self.first += 1;
        self.bytes -= entry.cost();
        self.horizon = self.horizon.max(entry.offset);
        if let Some(item) = entry.item {
            self.arena.drain(..item.len as usize);
            self.arena_from += u64::from(item.len);
        }
        let Some(past) = self.keys.get_mut(&entry.key) else {
            return;
        };
        let requeue = match entry.item {
            // The key's oldest item is the ring's oldest entry.
            Some(_) => {
                past.items.pop_front();
                None
            }
            None => past.mark.take().filter(|mark| *mark > self.horizon),
        };
        if past.items.is_empty() && past.mark.is_none() && requeue.is_none() {
            self.keys.remove(&entry.key);
        }
        if let Some(mark) = requeue {
            self.push(mark, &entry.key, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn past(ring: &PastWrites, key: &[u8], since: u64, at: u64) -> wire::PastKey<'static> {
        let mut out = wire::encode_past(&wire::Past {
            offset: at,
            keys: Vec::new(),
        });
        assert!(ring.push_key(&mut out, key, since, at, usize::MAX));
        let out: &'static [u8] = Box::leak(out.into_boxed_slice());
        let (_, mut decoded) = wire::decode_past(out).unwrap();
        decoded.keys.remove(0)
    }

    fn scores(key: &wire::PastKey<'_>) -> Vec<(u64, f64)> {
        key.items
            .iter()
            .map(|item| match item.value {
                PastValue::Member { score, .. } => (item.offset, score),
                PastValue::Entry { .. } => panic!("an entry"),
            })
            .collect()
    }

    #[test]
    fn a_keys_members_after_since_are_listed_in_order() {
        let mut ring = PastWrites::new(1 << 20, 100);
        ring.added(110, b"k", 5.0, b"m");
        ring.added(120, b"other", 1.0, b"m");
        ring.added(130, b"k", 12.0, b"m");
        ring.added(140, b"k", 1.0, b"m");
        let k = past(&ring, b"k", 100, 150);
        assert_eq!(k.covered_from, 100);
        assert_eq!(scores(&k), [(110, 5.0), (130, 12.0), (140, 1.0)]);
        assert_eq!(scores(&past(&ring, b"k", 130, 150)), [(140, 1.0)]);
        // Only what the answer's offset covers.
        assert_eq!(
            scores(&past(&ring, b"k", 0, 135)),
            [(110, 5.0), (130, 12.0)]
        );
        assert!(scores(&past(&ring, b"none", 0, 150)).is_empty());
    }

    #[test]
    fn the_ring_keeps_its_bound_and_its_horizon_moves_covered_from() {
        let member = [b'm'; 36];
        // Each entry costs 64 + 1 + 36 bytes: the ring holds three.
        let cost = ENTRY_COST + 1 + member.len();
        let mut ring = PastWrites::new(3 * cost + 10, 100);
        // Of 30 to 36 bytes, so that some sit across the end of the arena's buffer.
        let member_of = |i: u64| {
            let mut m = member[..30 + (i % 7) as usize].to_vec();
            m[..8].copy_from_slice(&i.to_le_bytes());
            m
        };
        for i in 0..10u64 {
            ring.added(110 + i, b"k", i as f64, &member_of(i));
            assert!(ring.bytes() <= 3 * cost + 10);
        }
        assert_eq!(ring.entries.len(), 3);
        let k = past(&ring, b"k", 0, 200);
        assert_eq!(k.covered_from, 116, "the newest evicted entry's offset");
        assert_eq!(scores(&k), [(117, 7.0), (118, 8.0), (119, 9.0)]);
        // The members' bytes, wherever they sit in the ring's arena (wrapped around its end or not).
        for (item, i) in k.items.iter().zip(7..) {
            let PastValue::Member { member, .. } = item.value else {
                panic!("an entry")
            };
            assert_eq!(member, member_of(i));
        }
        for i in 10..200u64 {
            ring.added(110 + i, b"k", i as f64, &member_of(i));
            let k = past(&ring, b"k", 0, 400);
            let PastValue::Member { member, .. } = k.items[2].value else {
                panic!("an entry")
            };
            assert_eq!(member, member_of(i));
        }
        // An entry larger than the whole ring empties it: nothing before it is covered.
        ring.added(350, b"k", 0.0, &[b'x'; 400]);
        assert_eq!((ring.bytes(), ring.entries.len()), (0, 0));
        assert!(ring.arena.is_empty());
        assert_eq!(past(&ring, b"k", 0, 400).covered_from, 350);
        assert!(ring.keys.is_empty());
    }

    /// (offset, id, fields) of each stream entry listed.
    fn entries(key: &wire::PastKey<'_>) -> Vec<(u64, String, Vec<Vec<u8>>)> {
        key.items
            .iter()
            .map(|item| match &item.value {
                PastValue::Entry { ms, seq, fields } => (
                    item.offset,
                    format!("{ms}-{seq}"),
                    fields.iter().map(|f| f.to_vec()).collect(),
                ),
                PastValue::Member { .. } => panic!("a member"),
            })
            .collect()
    }

    fn fields(pairs: &[&str]) -> Vec<Vec<u8>> {
        pairs.iter().map(|f| f.as_bytes().to_vec()).collect()
    }

    #[test]
    fn a_streams_entries_are_listed_with_their_ids_and_fields_in_order() {
        // Room for an entry of 2^20 empty fields (4 MiB of lengths).
        let mut ring = PastWrites::new(1 << 24, 100);
        ring.entry_added(110, b"s", 5, 0, &fields(&["f", "v", "g", ""]));
        ring.added(115, b"k", 1.0, b"m");
        // Two entries of one command (a `RENAME` into the key), the second of the same millisecond.
        ring.entry_added(120, b"s", 7, 0, &fields(&["f", "w"]));
        ring.entry_added(120, b"s", 7, u64::MAX, &[]);
        let s = past(&ring, b"s", 100, 150);
        assert_eq!(s.covered_from, 100, "covered as a sorted set is");
        assert_eq!(
            entries(&s),
            [
                (110, "5-0".to_string(), fields(&["f", "v", "g", ""])),
                (120, "7-0".to_string(), fields(&["f", "w"])),
                (120, format!("7-{}", u64::MAX), Vec::new()),
            ]
        );
        assert_eq!(entries(&past(&ring, b"s", 110, 150)).len(), 2);
        assert_eq!(scores(&past(&ring, b"k", 100, 150)), [(115, 1.0)]);
        // One with more fields than a past message carries (which its reader would refuse) is not kept: the key is
        // not covered before it, and the rest of the ring stays.
        let many = vec![Vec::new(); MAX_PAST_FIELDS + 2];
        ring.entry_added(130, b"s", 8, 0, &many);
        let s = past(&ring, b"s", 100, 150);
        assert_eq!((s.covered_from, s.items.len()), (130, 0));
        assert_eq!(scores(&past(&ring, b"k", 100, 150)), [(115, 1.0)]);
    }

    #[test]
    fn entries_keep_the_rings_bound_and_their_eviction_moves_covered_from() {
        let value = [b'v'; 40];
        // Each entry costs 64 + 1 + 8 (seq) + 4 (count) + 2 × 4 + 1 + 30..=36 bytes: the ring holds three.
        let most = ENTRY_COST + 1 + 12 + 8 + 1 + 36;
        let mut ring = PastWrites::new(3 * most + 10, 100);
        // Values of 30 to 36 bytes, so that some sit across the end of the arena's buffer.
        let fields_of = |i: u64| {
            let mut v = value[..30 + (i % 7) as usize].to_vec();
            v[..8].copy_from_slice(&i.to_le_bytes());
            vec![b"f".to_vec(), v]
        };
        for i in 0..200u64 {
            ring.entry_added(110 + i, b"s", 1000 + i, i, &fields_of(i));
            assert!(ring.bytes() <= 3 * most + 10);
            if i >= 3 {
                let s = past(&ring, b"s", 0, 400);
                assert_eq!(
                    s.covered_from,
                    110 + i - 3,
                    "the newest evicted entry's offset"
                );
                let listed = entries(&s);
                assert_eq!(listed.len(), 3);
                for (j, (offset, id, fields)) in (i - 2..=i).zip(listed) {
                    assert_eq!(
                        (offset, id, fields),
                        (110 + j, format!("{}-{j}", 1000 + j), fields_of(j))
                    );
                }
            }
        }
        // The answer's size is counted as it is written: one entry of `most` bytes fits its exact limit.
        let mut out = Vec::new();
        let one = 4 + 1 + 12 + 8 + 1 + 8 + 8 + 4 + 2 * 4 + 1 + fields_of(199)[1].len();
        assert!(!ring.push_key(&mut out, b"s", 308, 400, one - 1));
        assert!(out.is_empty());
        assert!(ring.push_key(&mut out, b"s", 308, 400, one));
        assert_eq!(out.len(), one);
    }

    #[test]
    fn an_entrys_bytes_cut_short_give_the_fields_before_the_cut() {
        let mut arena = std::collections::VecDeque::new();
        write_entry(&mut arena, 7, &fields(&["f", "value"]));
        let bytes: Vec<u8> = arena.into_iter().collect();
        assert_eq!(entry_parts(&bytes), (7, vec![&b"f"[..], b"value"]));
        // The second field's length says 5 bytes, of which 4 are left: the fields end before it.
        assert_eq!(entry_parts(&bytes[..bytes.len() - 1]), (7, vec![&b"f"[..]]));
        assert_eq!(entry_parts(&bytes[..3]), (0, Vec::new()));
    }

    #[test]
    fn an_inexact_key_is_not_covered_until_exact_again() {
        let mut ring = PastWrites::new(1 << 20, 100);
        ring.added(110, b"k", 5.0, b"m");
        ring.inexact(b"k");
        assert_eq!(ring.covered_from(b"k", 150), 150);
        assert!(past(&ring, b"k", 0, 150).items.is_empty());
        ring.exact_at(b"k", 140);
        ring.added(145, b"k", 6.0, b"m");
        let k = past(&ring, b"k", 0, 150);
        assert_eq!(k.covered_from, 140);
        assert_eq!(scores(&k), [(145, 6.0)]);
        // A later mark moves it again; a stream entry too, which does not make an inexact key exact.
        ring.uncovered(147, b"k");
        assert_eq!(ring.covered_from(b"k", 150), 147);
        ring.inexact(b"k");
        ring.uncovered(148, b"k");
        assert_eq!(ring.covered_from(b"k", 150), 150);
        assert_eq!(ring.covered_from(b"other", 150), 100);
    }

    #[test]
    fn marks_are_bounded_with_the_members_and_outlive_nothing() {
        let cost = ENTRY_COST + 4;
        let mut ring = PastWrites::new(4 * cost, 0);
        // Many keys marked: the ring keeps the newest marks only, and the horizon says the rest.
        for i in 0..100u32 {
            ring.exact_at(&i.to_le_bytes(), 10 + u64::from(i));
            assert!(ring.bytes() <= 4 * cost);
        }
        assert_eq!(ring.keys.len(), 4);
        assert_eq!(ring.covered_from(&0u32.to_le_bytes(), 500), 105);
        assert_eq!(ring.covered_from(&99u32.to_le_bytes(), 500), 109);
        // A mark moved in place goes to the ring's end when its entry is evicted.
        ring.exact_at(&96u32.to_le_bytes(), 300);
        ring.exact_at(&200u32.to_le_bytes(), 301);
        assert_eq!(ring.covered_from(&96u32.to_le_bytes(), 500), 300);
        assert_eq!(ring.covered_from(&97u32.to_le_bytes(), 500), 107);
    }

    #[test]
    fn an_answer_past_its_limit_appends_nothing() {
        let mut ring = PastWrites::new(1 << 20, 0);
        ring.added(10, b"k", 1.0, &[b'm'; 100]);
        let mut out = Vec::new();
        assert!(!ring.push_key(&mut out, b"k", 0, 20, 120));
        assert!(out.is_empty());
        assert!(ring.push_key(&mut out, b"k", 0, 20, 4 + 1 + 12 + 21 + 100));
        let off = PastWrites::new(0, 0);
        assert_eq!(off.covered_from(b"k", 20), 20);
    }

    /// An answer stops at its limit: a key with many entries, over it, costs the entries that fit, not all of them
    /// (under the state's lock, any session may ask since 0 again and again).
    #[test]
    fn an_answer_over_its_limit_stops_at_it() {
        let mut ring = PastWrites::new(1 << 24, 0);
        for i in 1..=10_000u64 {
            ring.added(i, b"k", i as f64, b"m");
        }
        let mut out = Vec::new();
        // The key's part and ten items of 22 bytes.
        let limit = 4 + 1 + 12 + 10 * 22;
        assert!(!ring.push_key(&mut out, b"k", 0, 20_000, limit));
        assert!(out.is_empty());
        assert_eq!(
            ring.looked_at.get(),
            11,
            "the entries that fit and the one past"
        );
        // Since an offset that leaves ten: all fit.
        assert!(ring.push_key(&mut out, b"k", 9_990, 20_000, limit));
        assert_eq!(out.len(), limit);
    }
}

/// The ring as the state keeps it: fed by the state's windows, answered with its top-ups.
#[cfg(test)]
mod state_tests {
    use replicast_protocol::wire::{self, PastValue};

    use crate::state::for_tests::{self, batch, EMPTY_RDB};
    use crate::state::RelayState;

    fn ready() -> RelayState {
        let state = for_tests::state();
        state.begin_full_sync("e", 100);
        state.load(EMPTY_RDB);
        state.finish_full_sync();
        state
    }

    /// The state's answer to a top-up of `key` since `since`: its offset, `covered_from` and the items listed.
    fn answer_items(state: &RelayState, key: &[u8], since: u64) -> (u64, u64, Vec<(u64, Item)>) {
        let (snapshot, past) = state
            .snapshot_keys(0, 10, &[key.to_vec()], Some(since))
            .unwrap_or_else(|| panic!("{} answered from the state", String::from_utf8_lossy(key)));
        let past = past.expect("a past message");
        let (_, decoded) = wire::decode_past(&past).unwrap();
        assert_eq!(decoded.offset, snapshot.offset);
        let key = &decoded.keys[0];
        let items = key
            .items
            .iter()
            .map(|item| {
                let listed = match &item.value {
                    PastValue::Member { score, .. } => Item::Member(*score),
                    PastValue::Entry { ms, seq, fields } => Item::Entry(
                        format!("{ms}-{seq}"),
                        fields
                            .iter()
                            .map(|f| String::from_utf8_lossy(f).into_owned())
                            .collect(),
                    ),
                };
                (item.offset, listed)
            })
            .collect();
        (decoded.offset, key.covered_from, items)
    }

    /// An item of a past message: a member's score, or an entry's id and fields.
    #[derive(Debug, PartialEq)]
    enum Item {
        Member(f64),
        Entry(String, Vec<String>),
    }

    /// The state's answer to a top-up of `key` since `since`: `covered_from` and the (offset, score) listed.
    fn answer(state: &RelayState, key: &[u8], since: u64) -> (u64, u64, Vec<(u64, f64)>) {
        let (at, covered_from, items) = answer_items(state, key, since);
        let scores = items
            .into_iter()
            .map(|(offset, item)| match item {
                Item::Member(score) => (offset, score),
                Item::Entry(..) => panic!("an entry"),
            })
            .collect();
        (at, covered_from, scores)
    }

    #[test]
    fn each_score_a_member_had_is_listed_at_its_commands_end() {
        let state = ready();
        let (zincrbys, ends) = batch(
            100,
            &[
                &["ZINCRBY", "k", "5", "m"],
                &["ZINCRBY", "k", "7", "m"],
                &["ZADD", "k", "1", "m"],
            ],
        );
        state.apply(&zincrbys);
        let (at, covered_from, items) = answer(&state, b"k", 100);
        assert_eq!((at, covered_from), (zincrbys.end, 100));
        assert_eq!(items, [(ends[0], 5.0), (ends[1], 12.0), (ends[2], 1.0)]);
        assert_eq!(answer(&state, b"k", ends[1]).2, [(ends[2], 1.0)]);
        // A `since` past what was sent, or from nowhere, lists nothing and breaks nothing.
        assert!(answer(&state, b"k", u64::MAX).2.is_empty());
        // Without `since`, no past message.
        let (_, past) = state.snapshot_keys(0, 10, &[b"k".to_vec()], None).unwrap();
        assert!(past.is_none());
    }

    /// A stream's entries are listed with their whole ids and fields, each at the end of the command that put it in
    /// the key's window: an `XADD`, and a `RENAME` into the key, trimmed before the answer.
    #[test]
    fn a_streams_entries_are_listed_with_their_ids() {
        let state = ready();
        let (writes, ends) = batch(
            100,
            &[
                &["XADD", "src", "5-1", "f", "a"],
                &["XADD", "src", "5-2", "f", "b", "g", "c"],
                &["RENAME", "src", "s"],
                &["XADD", "s", "MAXLEN", "1", "6-0", "f", "d"],
            ],
        );
        state.apply(&writes);
        let (at, covered_from, items) = answer_items(&state, b"s", 100);
        assert_eq!((at, covered_from), (writes.end, 100));
        let entry = |id: &str, fields: &[&str]| {
            Item::Entry(id.into(), fields.iter().map(|f| f.to_string()).collect())
        };
        assert_eq!(
            items,
            [
                (ends[2], entry("5-1", &["f", "a"])),
                (ends[2], entry("5-2", &["f", "b", "g", "c"])),
                (ends[3], entry("6-0", &["f", "d"])),
            ]
        );
        assert_eq!(answer_items(&state, b"s", ends[2]).2.len(), 1);
    }

    #[test]
    fn a_window_that_was_not_exact_is_covered_only_from_when_it_is_again() {
        let state = ready();
        let (first, _) = batch(100, &[&["ZADD", "k", "1", "m"]]);
        state.apply(&first);
        // ZUNIONSTORE's result is not in the stream: the key is unknown, and the state does not answer it.
        let (store, _) = batch(first.end, &[&["ZUNIONSTORE", "k", "1", "other"]]);
        state.apply(&store);
        assert!(state
            .snapshot_keys(0, 10, &[b"k".to_vec()], Some(0))
            .is_none());
        // A write that says what it holds whole makes it exact again, there.
        let (del, _) = batch(store.end, &[&["DEL", "k"], &["ZADD", "k", "2", "n"]]);
        state.apply(&del);
        let (_, covered_from, items) = answer(&state, b"k", 0);
        assert_eq!(covered_from, del.end);
        assert!(
            items.is_empty(),
            "the ZADD in the batch that made it exact is not covered"
        );
        let (more, ends) = batch(del.end, &[&["ZADD", "k", "3", "n"]]);
        state.apply(&more);
        assert_eq!(answer(&state, b"k", 0).2, [(ends[0], 3.0)]);
    }

    /// A key whose window stops being exact and is made exact again by a write of the same batch (whose top-up
    /// request that write withdraws: a `DEL`, a `SET`, a `RENAME` or `COPY` onto it, a `FLUSHDB`) is covered only from
    /// that batch's end: what it held in between (a `ZUNIONSTORE`'s result, a `RESTORE`d stream or one moved in by
    /// `RESTORE-ASKING`, a score below the window, a withheld write's) is in no past message.
    #[test]
    fn a_key_not_exact_and_exact_again_in_one_batch_is_covered_from_its_end() {
        let state = ready();
        let mut zadd: Vec<String> = ["ZADD", "z"].map(String::from).to_vec();
        for i in 0..11 {
            zadd.extend([(20 - i).to_string(), format!("m{i}")]);
        }
        let zadd: Vec<&str> = zadd.iter().map(String::as_str).collect();
        let (first, _) = batch(
            100,
            &[
                &["ZADD", "k", "1", "m"],
                &["XADD", "s", "5-1", "f", "a"],
                &zadd,
                &["ZADD", "a", "1", "m"],
                &["ZADD", "w", "1", "m"],
                &["ZADD", "t", "1", "m"],
                &["ZADD", "r", "1", "m"],
                &["ZADD", "c", "1", "m"],
                &["ZADD", "src", "1", "m"],
                &["ZADD", "src2", "1", "m"],
                &["ZADD", "f", "1", "m"],
            ],
        );
        state.apply(&first);
        let (writes, _) = batch(
            first.end,
            &[
                // An unknown result, then deleted.
                &["ZUNIONSTORE", "k", "1", "other"],
                &["DEL", "k"],
                &["ZADD", "k", "2", "n"],
                &["RESTORE", "s", "0", "payload", "REPLACE"],
                &["DEL", "s"],
                &["XADD", "s", "6-0", "f", "b"],
                // m10 is below the window of 10: the window goes stale.
                &["ZINCRBY", "z", "110", "m10"],
                &["DEL", "z"],
                &["ZADD", "z", "2", "n"],
                &["RESTORE-ASKING", "a", "0", "payload", "REPLACE"],
                &["DEL", "a"],
                &["ZADD", "a", "2", "n"],
                // Withheld: the window is stale.
                &[
                    "EVAL",
                    "return redis.call('ZADD', KEYS[1], 3, 'x')",
                    "1",
                    "w",
                ],
                &["DEL", "w"],
                &["ZADD", "w", "2", "n"],
                // Made known by a write of its whole value, of another type (`drop_unknown`).
                &["ZUNIONSTORE", "t", "1", "other"],
                &["SET", "t", "x"],
                // Replaced by a `RENAME` or a `COPY` onto it (`put`, through `remove_key`).
                &["ZUNIONSTORE", "r", "1", "other"],
                &["RENAME", "src", "r"],
                &["ZADD", "r", "2", "n"],
                &["ZUNIONSTORE", "c", "1", "other"],
                &["COPY", "src2", "c", "REPLACE"],
                &["ZADD", "c", "2", "n"],
            ],
        );
        state.apply(&writes);
        let covered = |keys: &[&'static str]| -> Vec<(&'static str, u64, usize)> {
            keys.iter()
                .map(|key| {
                    let (_, covered_from, items) = answer_items(&state, key.as_bytes(), 100);
                    (*key, covered_from, items.len())
                })
                .collect()
        };
        let keys = ["k", "s", "z", "a", "w", "t", "r", "c"];
        assert_eq!(
            covered(&keys),
            keys.map(|key| (key, writes.end, 0)),
            "covered only from the end of the batch that made each exact, with nothing listed before"
        );
        // Emptied with the whole database (`clear`), in a batch of its own: a `FLUSHDB` withdraws every top-up.
        let (flush, _) = batch(
            writes.end,
            &[
                &["ZUNIONSTORE", "f", "1", "other"],
                &["FLUSHDB"],
                &["ZADD", "f", "2", "n"],
            ],
        );
        state.apply(&flush);
        assert_eq!(covered(&["f"]), [("f", flush.end, 0)]);
    }

    /// A window made stale (a ZINCRBY of a member below a full window), for the tests of what keeps it inexact.
    fn stale(state: &RelayState, start: u64) -> u64 {
        let members: Vec<String> = (0..11).map(|i| format!("m{i}")).collect();
        let scores: Vec<String> = (0..11).map(|i| (20 - i).to_string()).collect();
        let mut zadd: Vec<&str> = vec!["ZADD", "k"];
        for (score, member) in scores.iter().zip(&members) {
            zadd.extend([score.as_str(), member.as_str()]);
        }
        let (filled, _) = batch(start, &[&zadd]);
        state.apply(&filled);
        // m10 is below the window of 10: its score after the ZINCRBY is not known here.
        let (incr, _) = batch(filled.end, &[&["ZINCRBY", "k", "110", "m10"]]);
        state.apply(&incr);
        assert!(
            state
                .snapshot_keys(0, 10, &[b"k".to_vec()], Some(0))
                .is_none(),
            "the window is stale: the state does not answer it"
        );
        incr.end
    }

    /// Past a failover (a new replication ID that continues the offsets: `+CONTINUE <new ID>`), the ring is kept:
    /// what it lists before the failover are writes at those offsets of the new stream too, so a `since` from before
    /// it (a client whose stream continues the old ID) is answered with every score since, covered from where the
    /// state started.
    #[test]
    fn the_ring_is_kept_across_a_new_replication_id_that_continues_the_offsets() {
        let state = ready();
        let (before, before_ends) = batch(100, &[&["ZINCRBY", "k", "5", "m"]]);
        state.apply(&before);
        state.resume("e2");
        let (after, after_ends) = batch(before.end, &[&["ZINCRBY", "k", "7", "m"]]);
        state.apply(&after);
        let (at, covered_from, items) = answer(&state, b"k", 100);
        assert_eq!((at, covered_from), (after.end, 100));
        assert_eq!(items, [(before_ends[0], 5.0), (after_ends[0], 12.0)]);
        // A `+CONTINUE` of the same ID changes nothing either.
        state.resume("e2");
        assert_eq!(answer(&state, b"k", 100).2.len(), 2);
    }

    /// Past a failover (a new replication ID that continues the offsets), a key whose window was stale stays not
    /// covered until the state makes it exact again, whatever the writes that make it so.
    #[test]
    fn a_stale_window_stays_inexact_across_a_new_replication_id() {
        let state = ready();
        let at = stale(&state, 100);
        state.resume("e2");
        let (writes, _) = batch(
            at,
            &[
                &["ZINCRBY", "k", "5", "m10"],
                &["DEL", "k"],
                &["ZADD", "k", "2", "n"],
            ],
        );
        state.apply(&writes);
        let (_, covered_from, items) = answer(&state, b"k", at);
        assert_eq!(
            covered_from, writes.end,
            "covered only from where the DEL made it exact (items {items:?})"
        );
        assert!(items.is_empty(), "{items:?}");
        let (more, more_ends) = batch(writes.end, &[&["ZADD", "k", "3", "n"]]);
        state.apply(&more);
        assert_eq!(answer(&state, b"k", at).2, [(more_ends[0], 3.0)]);
    }

    /// A key whose window the full sync left not exact is not covered once the ring starts recording, whatever the
    /// writes that make it exact again.
    #[test]
    fn a_window_not_exact_when_the_ring_starts_stays_inexact() {
        let state = for_tests::state();
        state.begin_full_sync("e", 100);
        state.load(EMPTY_RDB);
        {
            // What the payload's reading gathered (as the RDB's keys are): a window of 10 and a member below it,
            // changed by a ZINCRBY, which leaves the window stale; then a write that is not told exactly.
            let mut inner = state.inner();
            let mut load = inner.load.take().expect("loading");
            let mut zadd = vec!["ZADD".to_string(), "k".to_string()];
            for i in 0..11 {
                zadd.extend([(20 - i).to_string(), format!("m{i}")]);
            }
            for args in [
                zadd,
                ["ZINCRBY", "k", "110", "m10"].map(String::from).to_vec(),
                ["ZADD", "u", "1", "a"].map(String::from).to_vec(),
                ["ZUNIONSTORE", "u", "1", "k"].map(String::from).to_vec(),
            ] {
                load.commands.extend(format!("*{}\r\n", args.len()).bytes());
                for arg in args {
                    load.commands
                        .extend(format!("${}\r\n{arg}\r\n", arg.len()).bytes());
                }
            }
            let settings = state.settings.clone();
            inner.apply_loaded(&mut load, &settings);
            inner.load = Some(load);
        }
        state.finish_full_sync();
        let (writes, _) = batch(
            100,
            &[
                &["ZINCRBY", "k", "5", "m10"],
                &["DEL", "k"],
                &["ZADD", "k", "2", "n"],
                &["DEL", "u"],
                &["ZADD", "u", "2", "n"],
            ],
        );
        state.apply(&writes);
        for key in [&b"k"[..], b"u"] {
            let (_, covered_from, items) = answer(&state, key, 100);
            assert_eq!(
                covered_from,
                writes.end,
                "{} covered only from where the DEL made it exact (items {items:?})",
                String::from_utf8_lossy(key)
            );
            assert!(items.is_empty(), "{items:?}");
        }
    }
}
