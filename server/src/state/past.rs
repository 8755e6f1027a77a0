//! The state's **past writes**: a ring, bounded in bytes (`--state-history-bytes`), of the sorted-set members that
//! entered a window of the state, each with its score and the end offset of the command that wrote it, so that a
//! top-up answered from the state can list, for a client that asks with `since` (the history sink), every score a
//! key held between `since` and the top-up's offset ([`wire::Past`]): a `ZINCRBY` whose result existed nowhere but
//! in Redis, overwritten before the top-up's answer, is not lost.
//!
//! For each key the ring knows from where its list is complete (`covered_from`): the later of the ring's horizon
//! (the offset of the newest entry evicted, or where the state started) and the offset at which the state last made
//! the key's window exact (a read of Redis, a write that made it known again). A key whose window is not exact
//! (unknown, stale, not held, written past `--state-depth`) is covered from nowhere until it is exact again. A
//! stream entry that enters a window moves its key's `covered_from` past it: the state's windows do not tell an
//! entry's whole id to their observer, so a stream's past is never listed, only said not to be covered.
//!
//! A key's `covered_from` mark lives in the ring too (one entry per key, moved to the ring's end when the mark moves
//! and evicted like the members: past the horizon it says nothing more), so what the ring keeps is bounded by its
//! bytes whatever the keys. Lookups go through each key's positions in the ring, never the whole ring; one answer
//! is bounded by [`MAX_PAST_BYTES`], past which the keys left are answered as not covered.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use replicast_protocol::wire::{self, PastItem, PastValue};

use crate::snapshot::MAX_SNAPSHOT_BYTES;

/// Most bytes one past message holds: what one snapshot part may (a past message goes with one). Keys past it are
/// answered as not covered.
pub const MAX_PAST_BYTES: usize = MAX_SNAPSHOT_BYTES;

/// What an entry counts for besides its key's and member's bytes: its place in the ring, its key's position, and
/// the allocations' bookkeeping.
const ENTRY_COST: usize = 64;

/// One entry of the ring: a member that entered a key's window, or the key's mark.
struct Entry {
    offset: u64,
    /// The key's name, shared by its entries (one allocation a key, not one an entry).
    key: Arc<[u8]>,
    /// `None` for the key's `covered_from` mark.
    member: Option<Member>,
}

/// A member's score, and where its bytes are in the ring's byte arena (after the previous member's): members are
/// copied there, not allocated one by one, and leave it from the front as the ring evicts them.
#[derive(Clone, Copy)]
struct Member {
    score: f64,
    at: u64,
    len: u32,
}

impl Entry {
    fn cost(&self) -> usize {
        ENTRY_COST + self.key.len() + self.member.map_or(0, |m| m.len as usize)
    }
}

/// A key's name, positions (sequence numbers) of its members in the ring, oldest first, and its mark: the offset
/// from which its list is complete, if after the horizon.
struct KeyPast {
    key: Arc<[u8]>,
    members: VecDeque<u64>,
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
    /// The members' bytes, in the entries' order, and the arena position of `members[0]`.
    members: VecDeque<u8>,
    members_from: u64,
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
            members: VecDeque::new(),
            members_from: 0,
            keys: HashMap::new(),
            horizon: offset,
            inexact: HashSet::new(),
            sweep_at: SWEEP_AT_LEAST,
            #[cfg(test)]
            looked_at: std::cell::Cell::new(0),
        }
    }

    /// The ring starts again at `offset` (a new replication ID: a client's `since` is of the stream it follows),
    /// empty, but its inexact keys stay so: nothing the new stream writes makes them covered until the state makes
    /// their windows exact again.
    pub fn restart(&mut self, offset: u64) {
        let inexact = std::mem::take(&mut self.inexact);
        *self = PastWrites::new(self.bound, offset);
        self.inexact = inexact;
        self.swept();
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

    /// Bytes the ring holds (at most its bound).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// `member` entered `key`'s window with `score`, written by the command ending at `offset`.
    pub fn added(&mut self, offset: u64, key: &[u8], score: f64, member: &[u8]) {
        if self.enabled() {
            self.push(offset, key, Some((score, member)));
        }
    }

    /// Something entered `key`'s window that the ring does not keep (a stream entry) at `offset`: the key is not
    /// covered before it.
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
    /// the members that entered its window after both, oldest first. `false`, with nothing appended, when the part
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
        // The key's part without its items, then each item's offset, score, member's length and bytes: counted
        // as they are collected, so a key past the limit costs no more than the entries that fit.
        let mut size = out.len() + 4 + key.len() + 12;
        if size > limit {
            return false;
        }
        let mut listed: Vec<&Entry> = Vec::new();
        if let Some(past) = self.keys.get(key).filter(|_| covered_from < at) {
            // Newest first, up to the first at or before `after`: the positions are in offset order.
            let newer = past
                .members
                .iter()
                .rev()
                .map(|seq| &self.entries[(seq - self.first) as usize])
                .take_while(|entry| entry.offset > after)
                .filter(|entry| entry.offset <= at);
            for entry in newer {
                #[cfg(test)]
                self.looked_at.set(self.looked_at.get() + 1);
                size += 21 + entry.member.map_or(0, |m| m.len as usize);
                if size > limit {
                    return false;
                }
                listed.push(entry);
            }
            listed.reverse();
        }
        wire::push_past_key(out, key, covered_from, listed.len());
        for entry in listed {
            if let Some(member) = entry.member {
                wire::push_past_item(
                    out,
                    &PastItem {
                        offset: entry.offset,
                        value: PastValue::Member {
                            score: member.score,
                            member: &self.member_bytes(member),
                        },
                    },
                );
            }
        }
        true
    }

    /// A member's bytes, out of the arena (copied only where they wrap around its end).
    fn member_bytes(&self, member: Member) -> Cow<'_, [u8]> {
        let from = (member.at - self.members_from) as usize;
        let to = from + member.len as usize;
        let (front, back) = self.members.as_slices();
        if to <= front.len() {
            Cow::Borrowed(&front[from..to])
        } else if from >= front.len() {
            Cow::Borrowed(&back[from - front.len()..to - front.len()])
        } else {
            Cow::Owned([&front[from..], &back[..to - front.len()]].concat())
        }
    }

    /// Appends an entry for `key` at `offset`: a member, or its mark; evicts the oldest to make room.
    fn push(&mut self, offset: u64, key: &[u8], member: Option<(f64, &[u8])>) {
        let cost = ENTRY_COST + key.len() + member.map_or(0, |(_, m)| m.len());
        if cost > self.bound {
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
                    members: VecDeque::new(),
                    mark: None,
                })
            }
        };
        let member = member.map(|(score, bytes)| {
            let at = self.members_from + self.members.len() as u64;
            self.members.extend(bytes);
            // Members are Redis strings within what the state holds: far below 4 GiB.
            Member {
                score,
                at,
                len: bytes.len() as u32,
            }
        });
        match member {
            Some(_) => past.members.push_back(seq),
            None => past.mark = Some(offset),
        }
        let key = past.key.clone();
        self.bytes += cost;
        self.entries.push_back(Entry {
            offset,
            key,
            member,
        });
    }

    fn evict(&mut self) {
        let Some(entry) = self.entries.pop_front() else {
            return;
        };
        self.first += 1;
        self.bytes -= entry.cost();
        self.horizon = self.horizon.max(entry.offset);
        if let Some(member) = entry.member {
            self.members.drain(..member.len as usize);
            self.members_from += u64::from(member.len);
        }
        let Some(past) = self.keys.get_mut(&entry.key) else {
            return;
        };
        let requeue = match entry.member {
            // The key's oldest member is the ring's oldest entry.
            Some(_) => {
                past.members.pop_front();
                None
            }
            None => past.mark.take().filter(|mark| *mark > self.horizon),
        };
        if past.members.is_empty() && past.mark.is_none() && requeue.is_none() {
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
        assert!(ring.members.is_empty());
        assert_eq!(past(&ring, b"k", 0, 400).covered_from, 350);
        assert!(ring.keys.is_empty());
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

    /// The state's answer to a top-up of `key` since `since`: `covered_from` and the (offset, score) listed.
    fn answer(state: &RelayState, key: &[u8], since: u64) -> (u64, u64, Vec<(u64, f64)>) {
        let (snapshot, past) = state
            .snapshot_keys(0, 10, &[key.to_vec()], Some(since))
            .expect("answered from the state");
        let past = past.expect("a past message");
        let (_, decoded) = wire::decode_past(&past).unwrap();
        assert_eq!(decoded.offset, snapshot.offset);
        let key = &decoded.keys[0];
        let items = key
            .items
            .iter()
            .map(|item| match item.value {
                PastValue::Member { score, .. } => (item.offset, score),
                PastValue::Entry { .. } => panic!("an entry"),
            })
            .collect();
        (decoded.offset, key.covered_from, items)
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

    #[test]
    fn a_stream_written_is_not_covered_before_its_entry() {
        let state = ready();
        let (xadd, ends) = batch(100, &[&["XADD", "s", "1-1", "f", "v"]]);
        state.apply(&xadd);
        let (_, covered_from, items) = answer(&state, b"s", 100);
        assert_eq!(covered_from, ends[0]);
        assert!(items.is_empty());
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
