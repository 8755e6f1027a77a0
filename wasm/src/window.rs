//! A bounded window of one sorted set: its newest members, "newest" meaning highest score (collectors score
//! samples by time), at most `capacity` of them.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

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

/// The newest `capacity` members of a sorted set, ordered as Redis orders them: by score, then member bytes.
#[derive(Debug, Clone)]
pub struct ZsetWindow {
    capacity: usize,
    by_score: BTreeSet<(Score, Vec<u8>)>,
    scores: HashMap<Vec<u8>, Score>,
}

impl ZsetWindow {
    pub fn new(capacity: usize) -> Self {
        ZsetWindow {
            capacity,
            by_score: BTreeSet::new(),
            scores: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).map(|s| s.0)
    }

    /// Sets `member`'s score, then drops the lowest-scored members beyond the capacity.
    pub fn insert(&mut self, member: &[u8], score: f64) {
        let score = Score(score);
        match self.scores.get_mut(member) {
            Some(old) if *old == score => return,
            Some(old) => {
                self.by_score.remove(&(*old, member.to_vec()));
                *old = score;
            }
            None => {
                self.scores.insert(member.to_vec(), score);
            }
        }
        self.by_score.insert((score, member.to_vec()));
        while self.scores.len() > self.capacity {
            let Some((_, oldest)) = self.by_score.pop_first() else {
                break;
            };
            self.scores.remove(&oldest);
        }
    }

    /// Removes `member`; returns whether it was in the window.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove(member) {
            Some(score) => self.by_score.remove(&(score, member.to_vec())),
            None => false,
        }
    }

    /// Members from the highest score down.
    pub fn newest_first(&self) -> impl Iterator<Item = (&[u8], f64)> {
        self.by_score.iter().rev().map(|(s, m)| (m.as_slice(), s.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(w: &ZsetWindow) -> Vec<(&str, f64)> {
        w.newest_first()
            .map(|(m, s)| (std::str::from_utf8(m).unwrap(), s))
            .collect()
    }

    #[test]
    fn keeps_the_highest_scores_up_to_capacity() {
        let mut w = ZsetWindow::new(2);
        w.insert(b"a", 1.0);
        w.insert(b"c", 3.0);
        w.insert(b"b", 2.0);
        assert_eq!(members(&w), vec![("c", 3.0), ("b", 2.0)]);
        w.insert(b"old", 0.5);
        assert_eq!(members(&w), vec![("c", 3.0), ("b", 2.0)]);
    }

    #[test]
    fn rescoring_moves_a_member_and_ties_order_by_member() {
        let mut w = ZsetWindow::new(10);
        w.insert(b"a", 1.0);
        w.insert(b"b", 1.0);
        w.insert(b"a", 5.0);
        assert_eq!(members(&w), vec![("a", 5.0), ("b", 1.0)]);
        w.insert(b"a", 1.0);
        assert_eq!(members(&w), vec![("b", 1.0), ("a", 1.0)]);
        assert!(w.remove(b"a"));
        assert!(!w.remove(b"a"));
        assert_eq!(w.len(), 1);
    }
}
