//! The history windows a restarted sink starts from. What a `ZINCRBY`, a `ZADD` with `NX`/`XX`/`GT`/`LT`/`INCR` or a
//! `RENAME` writes to the history depends on what the key held, which the history assembler's window of the key
//! knows ([`super::changes`]). A sink restarted from the database's position has no windows, and the stream after
//! the position says what changed, not what a key held: taken as empty, an increment would be stored as the whole
//! score and a `ZADD XX` as a no-op. So the window of each key whose history depends on its state ("stateful": a
//! key such a command named, or one the assembler asked a top-up of) is stored with the position, in the same
//! transaction (`replicast.history_window`), and a resumed sink rebuilds those windows as they were at the
//! position it resumes from — as a snapshot would, before the stream after it. A key whose state was not known
//! there (a top-up pending) is read again at once. A key known not to exist keeps its window, as absent, while it
//! is among the last [`ABSENT_KEPT`] such ([`AbsentKeys`]).

use std::collections::{BTreeMap, HashMap};

use replicast_assembler::windows::{Body, Window};

use crate::link_io::push_command;

/// One key's window as stored with the position.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWindow {
    /// The shard whose stream the key is in (its window's home).
    pub shard: u16,
    /// The key's state was known: not while a top-up of it was pending, nor for a window of another type than a
    /// sorted set's (whose history needs no state).
    pub known: bool,
    /// The window held every member Redis held (known, without members: the key did not exist).
    pub complete: bool,
    /// The members, highest score first, with their scores.
    pub members: Vec<(f64, Vec<u8>)>,
    /// Unknown, with a span open (a command whose rows the pending top-up reads): where the span starts, and
    /// whether a write since may have changed or removed what it wrote. A resumed sink opens the span from there
    /// and asks the top-up with that `since` (`super::changes`).
    pub span: Option<StoredSpan>,
    /// The epoch of the stream its shard's index named at the position (of the span's, with one): what a resumed
    /// sink matches to the stream that continues it, whatever index that stream has in the new session. `None`: a
    /// row a sink before schema 7 stored, matched by its shard's index.
    pub epoch: Option<String>,
}

/// The span a window stored as unknown had open at the position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredSpan {
    /// Where the first command whose rows the top-up reads starts, in the stream of the window's shard.
    pub from: u64,
    /// A write after it may have changed or removed what it wrote (before the position).
    pub inexact: bool,
}

impl StoredWindow {
    /// What the history assembler knows of a key: its `window`, if any; without one, whether its state is
    /// `unknown` (a top-up pending) or it does not exist, in the keeping of shard `home` (whose stream named it
    /// last: the one whose resume rebuilds it).
    pub fn of(window: Option<&Window>, unknown: bool, home: u16) -> Self {
        match window.map(|w| (w, w.body())) {
            Some((w, Body::Zset(zset))) if !w.stale() => StoredWindow {
                shard: w.shard(),
                known: true,
                complete: zset.complete(),
                members: zset
                    .newest_first()
                    .map(|(member, score)| (score, member.to_vec()))
                    .collect(),
                span: None,
                epoch: None,
            },
            Some((w, _)) => StoredWindow {
                shard: w.shard(),
                known: false,
                complete: false,
                members: Vec::new(),
                span: None,
                epoch: None,
            },
            None => StoredWindow {
                shard: home,
                known: !unknown,
                complete: !unknown,
                members: Vec::new(),
                span: None,
                epoch: None,
            },
        }
    }

    /// The key is known not to exist.
    pub fn absent(&self) -> bool {
        self.known && self.complete && self.members.is_empty()
    }

    /// Whether a snapshot of the members rebuilds the window as it was. A snapshot's window is complete when it
    /// holds fewer members than `capacity` (Redis gave all it had), so an incomplete window holding fewer (a
    /// member rescored below it left it short) is read again instead.
    pub fn restorable(&self, capacity: usize) -> bool {
        self.known && (self.complete || self.members.len() >= capacity)
    }
}

/// Stateful keys known not to exist whose window is still stored, as absent: the [`ABSENT_KEPT`] that became so
/// last. A restarted sink rebuilds them as absent, so a command whose history depends on one's state (a
/// `ZINCRBY` creating it again) needs no top-up; one evicted is stateful no more, its row deleted, and read by a
/// top-up after a restart like a key never named before.
#[derive(Debug, Default)]
pub struct AbsentKeys {
    /// Each key's turn, by which the oldest is evicted.
    turns: HashMap<Vec<u8>, u64>,
    by_turn: BTreeMap<u64, Vec<u8>>,
    next: u64,
}

/// How many stateful keys known not to exist keep a stored window: enough for the keys a workload deletes and
/// writes again (a counter reset each day), bounded for one that makes a new key each time (their rows and the
/// sink's memory would otherwise grow with every key ever deleted).
pub const ABSENT_KEPT: usize = 1024;

impl AbsentKeys {
    /// `key` is known not to exist (again: it keeps its turn). Returns the key evicted to make room, if any.
    pub fn insert(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        if self.turns.contains_key(key) {
            return None;
        }
        self.turns.insert(key.to_vec(), self.next);
        self.by_turn.insert(self.next, key.to_vec());
        self.next += 1;
        if self.turns.len() <= ABSENT_KEPT {
            return None;
        }
        let (_, oldest) = self.by_turn.pop_first()?;
        self.turns.remove(&oldest);
        Some(oldest)
    }

    /// `key` exists again.
    pub fn remove(&mut self, key: &[u8]) {
        if let Some(turn) = self.turns.remove(key) {
            self.by_turn.remove(&turn);
        }
    }
}

/// The commands of a snapshot that rebuilds `key`'s window from `window` (restorable), as the relay's snapshot
/// of the key would: `DEL key`, then `ZADD key score member …` if it has members.
pub fn push_snapshot(out: &mut Vec<u8>, key: &[u8], window: &StoredWindow) {
    push_command(out, &[b"DEL", key]);
    if window.members.is_empty() {
        return;
    }
    // A float's `Display` is the shortest decimal that reads back as the same float (`inf` for infinity, which
    // Redis's and the assembler's score readers take).
    let scores: Vec<String> = window.members.iter().map(|(s, _)| s.to_string()).collect();
    let mut args: Vec<&[u8]> = vec![b"ZADD", key];
    for ((_, member), score) in window.members.iter().zip(&scores) {
        args.push(score.as_bytes());
        args.push(member);
    }
    push_command(out, &args);
}

#[cfg(test)]
mod tests {
    use super::*;
    use replicast_assembler::{StreamAssembler, WatchConfig};
    use replicast_protocol::wire;

    fn assembler() -> StreamAssembler {
        StreamAssembler::new(WatchConfig {
            patterns: vec![b"z*".to_vec()],
            db: 0,
            window: 4,
        })
    }

    #[test]
    fn a_stored_window_is_rebuilt_as_it_was() {
        let mut commands = Vec::new();
        push_command(&mut commands, &[b"ZADD", b"z1", b"1.5", b"a", b"0.1", b"b"]);
        push_command(&mut commands, &[b"ZADD", b"z2", b"-inf", b"x"]);
        for i in 0..6 {
            let score = format!("{}", (f64::from(i) + 1.0) / 3.0 * 1e-5);
            push_command(&mut commands, &[b"ZADD", b"z3", score.as_bytes(), b"m"]);
            push_command(&mut commands, &[b"ZADD", b"z3", score.as_bytes(), &[i]]);
        }
        let mut first = assembler();
        first.push_message(&wire::encode_hello("e", 0)).unwrap();
        first
            .push_message(&wire::encode_commands(0, &commands))
            .unwrap();
        let stored: Vec<(Vec<u8>, StoredWindow)> = [&b"z1"[..], b"z2", b"z3", b"z4"]
            .iter()
            .map(|k| (k.to_vec(), StoredWindow::of(first.window(k), false, 0)))
            .collect();
        assert!(!stored[2].1.complete && stored[2].1.restorable(4));
        assert!(stored[3].1.known && stored[3].1.members.is_empty());

        let mut snapshot = Vec::new();
        for (key, window) in &stored {
            push_snapshot(&mut snapshot, key, window);
        }
        let mut second = assembler();
        second.push_message(&wire::encode_hello("e", 0)).unwrap();
        second
            .push_message(&wire::encode_snapshot(0, &snapshot))
            .unwrap();
        for (key, window) in &stored {
            assert_eq!(
                &StoredWindow::of(second.window(key), false, 0),
                window,
                "{}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn absent_keys_past_the_bound_evict_the_oldest() {
        let mut absent = AbsentKeys::default();
        let key = |i: usize| format!("k{i}").into_bytes();
        for i in 0..ABSENT_KEPT {
            assert_eq!(absent.insert(&key(i)), None);
        }
        assert_eq!(absent.insert(&key(0)), None, "known absent again");
        absent.remove(&key(1));
        assert_eq!(absent.insert(&key(ABSENT_KEPT)), None, "k1 made room");
        assert_eq!(absent.insert(&key(ABSENT_KEPT + 1)), Some(key(0)));
        assert!(!absent.turns.contains_key(&key(0)) && absent.turns.contains_key(&key(2)));
        assert_eq!(absent.turns.len(), ABSENT_KEPT);
        assert_eq!(absent.by_turn.len(), ABSENT_KEPT);
    }

    #[test]
    fn a_window_short_of_members_it_lacks_or_unknown_is_read_again() {
        let short = StoredWindow {
            shard: 0,
            known: true,
            complete: false,
            members: vec![(1.0, b"a".to_vec())],
            span: None,
            epoch: None,
        };
        assert!(!short.restorable(4));
        assert!(!StoredWindow::of(None, true, 0).restorable(4));
    }
}
