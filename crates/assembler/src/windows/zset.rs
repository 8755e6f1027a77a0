//! The window of a sorted set: its newest members, "newest" meaning highest score (collectors score samples by
//! time), at most `capacity` of them, ordered as Redis orders them: by score, then member bytes.
//!
//! An incomplete window (Redis holds members below it that it has not seen) stays exact as long as it is full:
//! every unseen member ranks below its lowest one, its *floor*. A member that lands below the floor may be
//! outranked by unseen ones, so it leaves the window, which then lacks an item and asks for a top-up.
//!
//! # Storage
//!
//! A full window under a stream of new samples evicts its lowest member for every member it adds, so that is
//! what the layout makes cheap:
//!
//! - Members live in an arena of [`Slot`]s (member bytes, score, item id, hash), never more than `capacity`.
//!   A slot freed by an eviction is reused by the next new member, *buffer included*: once warm, a `ZADD`
//!   copies its member into an existing allocation and neither allocates nor frees (wasm's allocator is much
//!   slower than glibc's, so this matters most in the browser).
//! - `index`, a [`HashTable`] of slot numbers, finds a member by its bytes. Each slot keeps its hash, so the
//!   table never hashes a member twice, and evicting a slot finds its entry by (hash, slot number): no
//!   re-hash, no byte comparison. Members are hashed by their ends ([`sampled_hash`]: 32 bytes of a 130-byte
//!   sample) until a lookup compares more than [`CROWDED`] members that share a hash (members that differ only
//!   in their middle); the window then hashes whole members ([`hash_bytes`]) from there on, so that no stream
//!   makes its lookups slow.
//! - `order` keeps `(score, slot)` entries in Redis's order, in runs that make the top and the bottom cheap
//!   ([`order`]).

mod order;

use std::cmp::Ordering;

use hashbrown::HashTable;

use order::{Entry, Order};

use super::fast_hash::{hash_bytes, same_bytes, sampled_hash};
use super::json_id::{json_id, ByIdView, LatestById};
use super::{Events, ItemView};
use crate::observe::{ItemId, Payload};

/// A score with the order Redis's skiplist gives scores: `<` and `==` on doubles, so `-0` and `0` are one score
/// (members tied on it order by their bytes). Redis never stores NaN, and neither do we.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f64);

impl Score {
    /// The score Redis holds for `value`: `-0` is `0`. (A small set, listpack-encoded, stores its scores as text
    /// and writes `-0` as `0`; only a set in a skiplist keeps the sign, which no comparison sees.)
    fn stored(value: f64) -> Score {
        Score(value + 0.0)
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        // No NaN reaches a window; if one did, it would sort as `total_cmp` puts it rather than break the order.
        self.0
            .partial_cmp(&other.0)
            .unwrap_or_else(|| self.0.total_cmp(&other.0))
    }
}

/// Members compared in one lookup, all sharing its hash but not its bytes, past which a window that hashes
/// members by their ends turns to hashing them whole. Members with distinct hashes are compared only when 7 bits
/// of their hashes match (hashbrown's tags): a handful in a row does not happen by chance.
const CROWDED: u32 = 8;

/// The number of a [`Slot`] in the arena.
type SlotId = u32;

/// One member of the window, or a free slot keeping its buffer for the next member.
#[derive(Debug, Clone)]
struct Slot {
    member: Vec<u8>,
    score: Score,
    id: ItemId,
    /// The window's hash of `member` ([`ZsetWindow::hash`]).
    hash: u64,
}

/// How the index rehashes its entries as it grows: by each slot's stored hash. One function for every insert,
/// so that the table's growth is compiled once (each closure would be a copy of it, in the browser's `.wasm` too).
fn stored_hash(slots: &[Slot]) -> impl Fn(&SlotId) -> u64 + '_ {
    move |&s| slots[s as usize].hash
}

/// Finds the index's entry for `slot` (by its stored hash): one function for every removal, as [`stored_hash`].
fn is_slot(slot: SlotId) -> impl FnMut(&SlotId) -> bool {
    move |&s| s == slot
}

/// [`hash_bytes`], out of line: few windows hash their members whole.
#[inline(never)]
fn whole_hash(member: &[u8]) -> u64 {
    hash_bytes(member)
}

/// The newest `capacity` members of a sorted set.
#[derive(Debug, Clone)]
pub struct ZsetWindow {
    capacity: usize,
    slots: Vec<Slot>,
    /// Slots that hold no member, their buffers kept for reuse.
    free: Vec<SlotId>,
    index: HashTable<SlotId>,
    order: Order,
    /// Whether members are hashed whole ([`hash_bytes`]), not by their ends ([`sampled_hash`]).
    whole_hash: bool,
    complete: bool,
    /// The bytes of the members held, kept as they enter and leave, so the relay's state knows a window's size
    /// without walking it.
    member_bytes: usize,
}

impl ZsetWindow {
    /// An empty window; `complete` if Redis holds nothing more for the key.
    pub fn new(capacity: usize, complete: bool) -> Self {
        ZsetWindow {
            capacity,
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            order: Order::default(),
            whole_hash: false,
            complete,
            member_bytes: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether the window holds every member Redis holds.
    pub fn complete(&self) -> bool {
        self.complete
    }

    /// The bytes of the members held.
    pub fn payload_bytes(&self) -> usize {
        self.member_bytes
    }

    pub(crate) fn set_complete(&mut self, complete: bool) {
        self.complete = complete;
    }

    fn slot(&self, slot: SlotId) -> &Slot {
        &self.slots[slot as usize]
    }

    /// The window's hash of `member`.
    #[inline]
    fn hash(&self, member: &[u8]) -> u64 {
        if self.whole_hash {
            whole_hash(member)
        } else {
            sampled_hash(member)
        }
    }

    /// The slot holding `member`, whose hash is `hash`, and how many other members sharing its hash were
    /// compared on the way.
    #[inline(always)]
    fn find_counting(&self, hash: u64, member: &[u8]) -> (Option<SlotId>, u32) {
        let slots = &self.slots;
        let mut others = 0;
        let found = self.index.find(hash, |&s| {
            let same = same_bytes(&slots[s as usize].member, member);
            others += u32::from(!same);
            same
        });
        (found.copied(), others)
    }

    /// The slot holding `member`. A lookup that compared too many members sharing its hash turns the window to
    /// whole hashes first.
    #[inline(always)]
    fn find_mut(&mut self, member: &[u8]) -> (Option<SlotId>, u64) {
        let hash = self.hash(member);
        let (found, others) = self.find_counting(hash, member);
        if others < CROWDED || self.whole_hash {
            return (found, hash);
        }
        self.hash_whole();
        let hash = self.hash(member);
        (self.find_counting(hash, member).0, hash)
    }

    /// Turns the window to hashing members whole: every member held rehashed and indexed again.
    #[cold]
    #[inline(never)]
    fn hash_whole(&mut self) {
        self.whole_hash = true;
        // Free slots too: their hash is set again when they are taken.
        for entry in &mut self.slots {
            entry.hash = whole_hash(&entry.member);
        }
        let held = std::mem::take(&mut self.index);
        let slots = &self.slots;
        for &slot in held.iter() {
            self.index
                .insert_unique(slots[slot as usize].hash, slot, stored_hash(slots));
        }
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.find_counting(self.hash(member), member)
            .0
            .map(|s| self.slot(s).score.0)
    }

    /// Whether `(score, member)` ranks below every member of a full window, so that it cannot be in it.
    pub fn below_full_window(&self, member: &[u8], score: f64) -> bool {
        self.len() >= self.capacity && self.below_floor(member, Score(score))
    }

    #[inline]
    fn below_floor(&self, member: &[u8], score: Score) -> bool {
        self.order
            .first()
            .is_some_and(|floor| self.below(member, score, floor))
    }

    /// Whether `(score, member)` ranks below `entry`.
    #[inline]
    fn below(&self, member: &[u8], score: Score, entry: Entry) -> bool {
        match score.cmp(&entry.score) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => member < &self.slot(entry.slot).member[..],
        }
    }

    /// Sets `member`'s score as Redis did; returns whether the window changed.
    pub(crate) fn insert(&mut self, member: &[u8], score: f64, events: &mut Events<'_>) -> bool {
        let score = Score::stored(score);
        if self.len() >= self.capacity {
            if let Some(floor) = self.order.first() {
                if !self.below(member, score, floor) {
                    // The common case, a sample above the floor of a full window: the floor leaves, and its slot
                    // takes the new member, unless the member is held already.
                    match self.replace_floor(floor, member, score, events) {
                        None => return true,
                        Some(slot) => return self.rescore(slot, member, score, events),
                    }
                }
            }
        }
        let (found, hash) = self.find_mut(member);
        let Some(slot) = found else {
            if self.len() >= self.capacity && self.below_floor(member, score) {
                // Not among the newest; if the window held everything, Redis now holds one more.
                self.complete = false;
                return false;
            }
            // A window with room (or of capacity 0, with no floor to evict: the member takes a slot of its own).
            let id = events.added(Some(score.0), Payload::Value(member));
            let slot = self.occupy(member, score, id, hash);
            self.link(score, slot);
            return true;
        };
        self.rescore(slot, member, score, events)
    }

    /// Sets the score of `member`, held in `slot`, as Redis did; returns whether the window changed.
    fn rescore(
        &mut self,
        slot: SlotId,
        member: &[u8],
        score: Score,
        events: &mut Events<'_>,
    ) -> bool {
        let old = self.slot(slot).score;
        if old == score {
            return false;
        }
        let below_floor = self.below_floor(member, score);
        self.unlink(old, slot);
        events.removed(self.slot(slot).id);
        if below_floor && !self.complete {
            // Unseen members may outrank it now: it leaves, and the window lacks one.
            self.release(slot);
            return true;
        }
        let id = events.added(Some(score.0), Payload::Value(member));
        let entry = &mut self.slots[slot as usize];
        entry.score = score;
        entry.id = id;
        self.link(score, slot);
        true
    }

    /// In a full window, puts `member`, which ranks above `floor` (the lowest member), in the floor's slot, and
    /// the floor out; returns `None`, or the slot of `member` if it is held already (nothing changed then).
    ///
    /// One probe of the index does both the lookup and the insert: the floor's entry is taken out first, so that
    /// the lookup of `member` finds where its entry goes; if `member` is held after all, the floor's entry is put
    /// back. The slot (the least recently filled, as samples come in time order) is warm from the eviction when
    /// the member is copied in.
    #[inline]
    fn replace_floor(
        &mut self,
        floor: Entry,
        member: &[u8],
        score: Score,
        events: &mut Events<'_>,
    ) -> Option<SlotId> {
        let slot = floor.slot;
        let hash = self.hash(member);
        let old = &self.slots[slot as usize];
        let old_hash = old.hash;
        if old_hash == hash && same_bytes(&old.member, member) {
            // The floor itself, rescored.
            return Some(slot);
        }
        if let Ok(indexed) = self.index.find_entry(old_hash, is_slot(slot)) {
            indexed.remove();
        }
        let slots = &self.slots;
        let mut others = 0;
        let held = match self.index.entry(
            hash,
            |&s| {
                let same = same_bytes(&slots[s as usize].member, member);
                others += u32::from(!same);
                same
            },
            stored_hash(slots),
        ) {
            hashbrown::hash_table::Entry::Occupied(found) => Some(*found.get()),
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert(slot);
                None
            }
        };
        if let Some(held) = held {
            self.index.insert_unique(old_hash, slot, stored_hash(slots));
            if others >= CROWDED && !self.whole_hash {
                self.hash_whole();
            }
            return Some(held);
        }
        self.order.pop_first();
        let entry = &mut self.slots[slot as usize];
        let id = events.replaced(Some(score.0), Payload::Value(member), entry.id);
        self.member_bytes = self.member_bytes - entry.member.len() + member.len();
        entry.member.clear();
        entry.member.extend_from_slice(member);
        entry.score = score;
        entry.id = id;
        entry.hash = hash;
        self.complete = false;
        self.link(score, slot);
        if others >= CROWDED && !self.whole_hash {
            self.hash_whole();
        }
        None
    }

    /// Puts a new member in a free slot (or a new one) and indexes it.
    fn occupy(&mut self, member: &[u8], score: Score, id: ItemId, hash: u64) -> SlotId {
        self.member_bytes += member.len();
        let slot = match self.free.pop() {
            Some(slot) => {
                let entry = &mut self.slots[slot as usize];
                entry.member.clear();
                entry.member.extend_from_slice(member);
                entry.score = score;
                entry.id = id;
                entry.hash = hash;
                slot
            }
            None => {
                // Room to spare: the members that will reuse this buffer (samples of one series) differ in
                // length by a few bytes, and each growth would be a reallocation.
                let mut buffer = Vec::with_capacity(member.len() + member.len() / 8 + 8);
                buffer.extend_from_slice(member);
                self.slots.push(Slot {
                    member: buffer,
                    score,
                    id,
                    hash,
                });
                (self.slots.len() - 1) as SlotId
            }
        };
        let slots = &self.slots;
        self.index.insert_unique(hash, slot, stored_hash(slots));
        slot
    }

    /// Takes `slot`, already out of the order, out of the index, and frees it.
    fn release(&mut self, slot: SlotId) {
        let entry = self.slot(slot);
        let hash = entry.hash;
        self.member_bytes -= entry.member.len();
        if let Ok(entry) = self.index.find_entry(hash, is_slot(slot)) {
            entry.remove();
        }
        self.free.push(slot);
    }

    /// Adds `slot`, holding its member already, to the order at `score`.
    #[inline]
    fn link(&mut self, score: Score, slot: SlotId) {
        self.order.insert(&self.slots, Entry { score, slot });
    }

    /// Removes `slot` from the order, where it is at `score`.
    fn unlink(&mut self, score: Score, slot: SlotId) {
        self.order.remove(&self.slots, Entry { score, slot });
    }

    /// Removes `member`; returns whether it was in the window.
    pub(crate) fn remove(&mut self, member: &[u8], events: &mut Events<'_>) -> bool {
        match self.find_mut(member).0 {
            Some(slot) => {
                self.remove_slot(slot, events);
                true
            }
            None => false,
        }
    }

    fn remove_slot(&mut self, slot: SlotId, events: &mut Events<'_>) {
        let Slot { score, id, .. } = *self.slot(slot);
        self.unlink(score, slot);
        self.release(slot);
        events.removed(id);
    }

    /// Removes up to `count` of the highest members (`highest`) or of the lowest; returns how many. One loop for
    /// both ends: `ZPOPMAX` and `ZPOPMIN` are rare in a stream, and each loop was a copy in the browser's `.wasm`.
    pub(crate) fn pop(&mut self, count: usize, highest: bool, events: &mut Events<'_>) -> usize {
        let mut popped = 0;
        while popped < count {
            let end = if highest {
                self.order.pop_last()
            } else {
                self.order.pop_first()
            };
            let Some(entry) = end else {
                break;
            };
            self.release(entry.slot);
            events.removed(self.slot(entry.slot).id);
            popped += 1;
        }
        popped
    }

    /// Removes the members for which `doomed(rank_from_top, member, score)` holds; returns how many.
    pub(crate) fn remove_where(
        &mut self,
        mut doomed: impl FnMut(usize, &[u8], f64) -> bool,
        events: &mut Events<'_>,
    ) -> usize {
        let victims: Vec<SlotId> = self
            .slots_newest_first()
            .enumerate()
            .filter(|&(rank, slot)| {
                let entry = self.slot(slot);
                doomed(rank, &entry.member, entry.score.0)
            })
            .map(|(_, slot)| slot)
            .collect();
        for &slot in &victims {
            self.remove_slot(slot, events);
        }
        victims.len()
    }

    /// The occupied slots from the highest score down.
    fn slots_newest_first(&self) -> impl Iterator<Item = SlotId> + '_ {
        self.order.iter_rev().map(|entry| entry.slot)
    }

    /// Members from the highest score down.
    pub fn newest_first(&self) -> impl Iterator<Item = (&[u8], f64)> {
        self.slots_newest_first().map(|slot| {
            let entry = self.slot(slot);
            (&entry.member[..], entry.score.0)
        })
    }

    /// Members from the highest score down, with their ids.
    pub fn items_newest_first(&self) -> impl Iterator<Item = ItemView<'_>> {
        self.slots_newest_first().map(|slot| {
            let entry = self.slot(slot);
            ItemView::Member {
                id: entry.id,
                member: &entry.member,
                score: entry.score.0,
            }
        })
    }

    /// For members that are JSON objects with an `"id"`: the newest member of each id, newest first. The
    /// window itself keeps every member; this is a view of it.
    pub fn latest_by_id(&self) -> LatestById<'_> {
        let mut view = LatestById::default();
        let mut seen = std::collections::HashSet::new();
        for (member, score) in self.newest_first() {
            match json_id(member) {
                Ok(id) => {
                    if seen.insert(id.clone()) {
                        view.items.push(ByIdView { id, member, score });
                    }
                }
                Err(problem) => view.count(problem),
            }
        }
        view
    }

    pub(crate) fn renumber(&mut self, events: &mut Events<'_>) {
        let order: Vec<SlotId> = self.slots_newest_first().collect();
        for slot in order {
            let entry = &mut self.slots[slot as usize];
            entry.id = events.added(Some(entry.score.0), Payload::Value(&entry.member));
        }
    }
}

#[cfg(test)]
mod tests;
