//! The top-ups the sink asked and the relay has not answered yet, each with when to ask it again.
//!
//! A relay answers a top-up with a snapshot, or says in a notice that it will not: keys it did not take (past the
//! 10,000 that wait, counted, not named) and, in a Redis Cluster, keys whose slot no shard serves at that moment (a
//! failover or a resharding in progress), named in the notice's text, which the sink does not parse (a key may hold
//! `, `). A key asked and not answered for a while is asked again: naming again a key that still waits costs the
//! relay nothing (docs/PROTOCOL.md), and a key whose slot has an owner again is answered by it. The first time after
//! [`ASK_AGAIN_FIRST`], then after twice as long each time, up to [`ASK_AGAIN_LAST`], so that a key no one answers
//! for long (its slot without an owner) costs a request that often, not one per message.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a key asked waits for its answer before it is asked again the first time: longer than a top-up takes
/// when it waits behind others (one is read at a time per session), so that a key being read is seldom asked twice.
pub const ASK_AGAIN_FIRST: Duration = Duration::from_secs(5);
/// The longest wait between two asks of a key that is not answered.
pub const ASK_AGAIN_LAST: Duration = Duration::from_secs(60);

/// When a key asked is asked again.
#[derive(Debug, Clone, Copy)]
struct Wait {
    at: Instant,
    /// The wait that led to `at`: the next one is twice as long, up to [`ASK_AGAIN_LAST`].
    wait: Duration,
}

/// Keys asked and not answered. Bounded by the caller: at most `crate::snapshot::MAX_SNAPSHOT_KEYS` (10,000) keys
/// of at most 1,024 bytes each (`Topup::can_name`), what a relay takes of a session at once.
#[derive(Debug, Default)]
pub struct Asked {
    keys: HashMap<Vec<u8>, Wait>,
    /// The earliest `at` of `keys`, or earlier: no key is due before it.
    next: Option<Instant>,
}

impl Asked {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.keys.contains_key(key)
    }

    /// `key` asked at `now`.
    pub fn insert(&mut self, key: Vec<u8>, now: Instant) {
        let at = now + ASK_AGAIN_FIRST;
        self.keys.insert(
            key,
            Wait {
                at,
                wait: ASK_AGAIN_FIRST,
            },
        );
        self.next = Some(self.next.map_or(at, |next| next.min(at)));
    }

    /// `key` answered.
    pub fn remove(&mut self, key: &[u8]) {
        self.keys.remove(key);
    }

    /// Every key, to be asked again as new (a new session, or a notice of keys not taken).
    pub fn drain(&mut self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.next = None;
        self.keys.drain().map(|(key, _)| key)
    }

    /// When the next key is due to be asked again, if any is asked.
    pub fn next_due(&self) -> Option<Instant> {
        self.next.filter(|_| !self.keys.is_empty())
    }

    /// The keys due at `now`, each asked again then: its next ask after twice its last wait, up to
    /// [`ASK_AGAIN_LAST`].
    pub fn due(&mut self, now: Instant) -> Vec<Vec<u8>> {
        if self.next.is_none_or(|next| now < next) {
            return Vec::new();
        }
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for (key, wait) in &mut self.keys {
            if wait.at <= now {
                wait.wait = (wait.wait * 2).min(ASK_AGAIN_LAST);
                wait.at = now + wait.wait;
                due.push(key.clone());
            }
            next = Some(next.map_or(wait.at, |n| n.min(wait.at)));
        }
        self.next = next;
        due.sort_unstable();
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key not answered is asked again after 5 s, then 10, 20, 40 and 60 s (the cap), and no more once answered;
    /// a key asked later keeps its own time.
    #[test]
    fn a_key_not_answered_is_asked_again_ever_later_up_to_the_cap() {
        let start = Instant::now();
        let s = |secs: u64| start + Duration::from_secs(secs);
        let mut asked = Asked::default();
        asked.insert(b"a".to_vec(), start);
        assert_eq!(asked.next_due(), Some(s(5)));
        assert!(asked.due(s(4)).is_empty());
        asked.insert(b"b".to_vec(), s(4));
        let mut asks = Vec::new();
        for secs in 0..=200 {
            for key in asked.due(s(secs)) {
                asks.push((secs, key));
            }
        }
        let at = |key: &[u8]| -> Vec<u64> {
            asks.iter()
                .filter(|(_, k)| k == key)
                .map(|(secs, _)| *secs)
                .collect()
        };
        assert_eq!(at(b"a"), [5, 15, 35, 75, 135, 195]);
        assert_eq!(at(b"b"), [9, 19, 39, 79, 139, 199]);
        asked.remove(b"a");
        asked.remove(b"b");
        assert_eq!(asked.next_due(), None);
        assert!(asked.due(s(1_000)).is_empty());
    }
}
