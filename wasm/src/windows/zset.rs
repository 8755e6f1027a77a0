//! The window of a sorted set: its newest members, "newest" meaning highest score (collectors score samples by
//! time), at most `capacity` of them, ordered as Redis orders them: by score, then member bytes.
//!
//! An incomplete window (Redis holds members below it that it has not seen) stays exact as long as it is full:
//! every unseen member ranks below its lowest one, its *floor*. A member that lands below the floor may be
//! outranked by unseen ones, so it leaves the window, which then lacks an item and asks for a top-up.

use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::collections::BTreeSet;
use std::rc::Rc;

use super::fast_hash::FastMap;
use super::json_id::{json_id, ByIdView, LatestById};
use super::{Events, ItemView};
use crate::observe::{ItemId, Payload};

/// A score with a total order, so it can key a `BTreeSet`. Redis never stores NaN, and neither do we.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The newest `capacity` members of a sorted set.
#[derive(Debug, Clone)]
pub struct ZsetWindow {
    capacity: usize,
    /// Members shared with `members`, so a new member costs one allocation.
    by_score: BTreeSet<(Score, Rc<[u8]>)>,
    members: FastMap<Rc<[u8]>, (Score, ItemId)>,
    complete: bool,
}

impl ZsetWindow {
    /// An empty window; `complete` if Redis holds nothing more for the key.
    pub fn new(capacity: usize, complete: bool) -> Self {
        ZsetWindow {
            capacity,
            by_score: BTreeSet::new(),
            members: FastMap::default(),
            complete,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether the window holds every member Redis holds.
    pub fn complete(&self) -> bool {
        self.complete
    }

    pub(crate) fn set_complete(&mut self, complete: bool) {
        self.complete = complete;
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.members.get(member).map(|(s, _)| s.0)
    }

    /// Whether `(score, member)` ranks below every member of a full window, so that it cannot be in it.
    pub fn below_full_window(&self, member: &[u8], score: f64) -> bool {
        self.members.len() >= self.capacity && self.below_floor(member, Score(score))
    }

    fn below_floor(&self, member: &[u8], score: Score) -> bool {
        match self.by_score.first() {
            Some((s, m)) => (score, member) < (*s, &**m),
            None => false,
        }
    }

    /// Sets `member`'s score as Redis did; returns whether the window changed.
    pub(crate) fn insert(&mut self, member: &[u8], score: f64, events: &mut Events<'_>) -> bool {
        let score = Score(score);
        let below_floor = self.below_floor(member, score);
        let full = self.members.len() >= self.capacity;
        if !(below_floor && full) {
            // The common case, a new sample above the floor: one hash lookup that also inserts.
            let shared: Rc<[u8]> = Rc::from(member);
            match self.members.entry(shared.clone()) {
                Entry::Vacant(slot) => {
                    let id = events.added(Some(score.0), Payload::Value(member));
                    slot.insert((score, id));
                    self.by_score.insert((score, shared));
                    if self.members.len() > self.capacity {
                        self.pop_min(1, events);
                        self.complete = false;
                    }
                    return true;
                }
                Entry::Occupied(_) => {}
            }
        }
        let Some((shared, (old, id))) = self.members.remove_entry(member) else {
            // Not among the newest; if the window held everything, Redis now holds one more.
            self.complete = false;
            return false;
        };
        if old == score {
            self.members.insert(shared, (old, id));
            return false;
        }
        self.by_score.remove(&(old, shared.clone()));
        events.removed(id);
        if below_floor && !self.complete {
            // Unseen members may outrank it now: it leaves, and the window lacks one.
            return true;
        }
        let id = events.added(Some(score.0), Payload::Value(member));
        self.by_score.insert((score, shared.clone()));
        self.members.insert(shared, (score, id));
        true
    }

    /// Removes `member`; returns whether it was in the window.
    pub(crate) fn remove(&mut self, member: &[u8], events: &mut Events<'_>) -> bool {
        match self.members.remove_entry(member) {
            Some((shared, (score, id))) => {
                self.by_score.remove(&(score, shared));
                events.removed(id);
                true
            }
            None => false,
        }
    }

    /// Removes up to `count` of the highest members; returns how many.
    pub(crate) fn pop_max(&mut self, count: usize, events: &mut Events<'_>) -> usize {
        let mut popped = 0;
        while popped < count {
            let Some((_, member)) = self.by_score.pop_last() else {
                break;
            };
            if let Some((_, id)) = self.members.remove(&member) {
                events.removed(id);
            }
            popped += 1;
        }
        popped
    }

    /// Removes up to `count` of the lowest members; returns how many.
    pub(crate) fn pop_min(&mut self, count: usize, events: &mut Events<'_>) -> usize {
        let mut popped = 0;
        while popped < count {
            let Some((_, member)) = self.by_score.pop_first() else {
                break;
            };
            if let Some((_, id)) = self.members.remove(&member) {
                events.removed(id);
            }
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
        let victims: Vec<Rc<[u8]>> = self
            .by_score
            .iter()
            .rev()
            .enumerate()
            .filter(|(rank, (s, m))| doomed(*rank, m, s.0))
            .map(|(_, (_, m))| m.clone())
            .collect();
        for member in &victims {
            self.remove(member, events);
        }
        victims.len()
    }

    /// Members from the highest score down.
    pub fn newest_first(&self) -> impl Iterator<Item = (&[u8], f64)> {
        self.by_score.iter().rev().map(|(s, m)| (&**m, s.0))
    }

    /// Members from the highest score down, with their ids.
    pub fn items_newest_first(&self) -> impl Iterator<Item = ItemView<'_>> {
        self.by_score.iter().rev().map(|(s, m)| ItemView::Member {
            id: self.members.get(&**m).map_or(0, |(_, id)| *id),
            member: m,
            score: s.0,
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
        for (score, member) in self.by_score.iter().rev() {
            let id = events.added(Some(score.0), Payload::Value(member));
            if let Some(entry) = self.members.get_mut(&**member) {
                entry.1 = id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::NoObserver;

    fn members(w: &ZsetWindow) -> Vec<(&str, f64)> {
        w.newest_first()
            .map(|(m, s)| (std::str::from_utf8(m).unwrap(), s))
            .collect()
    }

    #[test]
    fn keeps_the_highest_scores_up_to_capacity() {
        let (mut observer, mut next) = (NoObserver, 0);
        let mut ev = Events::new(b"k", &mut observer, &mut next);
        let mut w = ZsetWindow::new(2, true);
        w.insert(b"a", 1.0, &mut ev);
        w.insert(b"c", 3.0, &mut ev);
        assert!(w.complete());
        w.insert(b"b", 2.0, &mut ev);
        assert_eq!(members(&w), vec![("c", 3.0), ("b", 2.0)]);
        assert!(!w.complete());
        w.insert(b"old", 0.5, &mut ev);
        assert_eq!(members(&w), vec![("c", 3.0), ("b", 2.0)]);
    }

    #[test]
    fn rescoring_moves_a_member_and_ties_order_by_member() {
        let (mut observer, mut next) = (NoObserver, 0);
        let mut ev = Events::new(b"k", &mut observer, &mut next);
        let mut w = ZsetWindow::new(10, true);
        w.insert(b"a", 1.0, &mut ev);
        w.insert(b"b", 1.0, &mut ev);
        w.insert(b"a", 5.0, &mut ev);
        assert_eq!(members(&w), vec![("a", 5.0), ("b", 1.0)]);
        w.insert(b"a", 1.0, &mut ev);
        assert_eq!(members(&w), vec![("b", 1.0), ("a", 1.0)]);
        assert!(w.remove(b"a", &mut ev));
        assert!(!w.remove(b"a", &mut ev));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn an_incomplete_window_lets_go_of_a_member_rescored_below_its_floor() {
        let (mut observer, mut next) = (NoObserver, 0);
        let mut ev = Events::new(b"k", &mut observer, &mut next);
        let mut w = ZsetWindow::new(2, false);
        w.insert(b"a", 5.0, &mut ev);
        w.insert(b"b", 6.0, &mut ev);
        w.insert(b"b", 1.0, &mut ev);
        assert_eq!(members(&w), vec![("a", 5.0)]);
    }
}
