//! Checking the relay's state against Redis: what `replicast verify` and the periodic check (`--verify-every`) do.
//!
//! A check reads a sample of keys from Redis the way a join does (`snapshot.rs`: the reads and `INFO replication`
//! in one `MULTI`, so they are Redis's keys at exactly `master_repl_offset`), builds their windows from that read
//! with the same assembler the state runs, and asks the state for the same keys at that same offset: the state
//! answers when its link reaches the offset, between the commands before it and those after it
//! ([`RelayState::state_at`]), so the two sides are compared at one point of the stream. Each key is compared by
//! its window's digest (`replicast_assembler::digest`), or known absent on both sides; a key either side cannot
//! say exactly (not held past `--state-bytes`, stale, lost track of) is skipped, not compared.
//!
//! The link does not wait for a check: a stream that goes on being written can pass the offset of Redis's read
//! before the state is asked for it. So a check first has the state note where the stream writes its keys from
//! then on ([`Writes`]): a key the stream has not written since the read's offset holds now what it held then, and
//! is compared at once; a key written since is read again, and after [`ATTEMPTS`] reads counted as skipped
//! (`replicast_verify_keys_skipped_total`), never compared against a later state of itself.
//!
//! A key that differs is logged (which key, both digests, the offset), counted, and healed: the state forgets it,
//! so that its windows are read from Redis again by the state's refresh (`state::refresh`), placed at their offset
//! like a top-up, and joins that watch it read Redis until then. Healing the keys that differ, not the whole state:
//! a full sync would ship the whole dataset again and send every join to Redis meanwhile, for a fault a sample
//! found in a few keys; a key that differs again is found and healed again by a later check.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use replicast_assembler::digest::window_digest;
use replicast_assembler::Window;
use replicast_protocol::wire::WindowsDigest;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::oneshot;

/// Most keys one check may name (one `replicast verify` request, one `--verify-sample`).
pub const MAX_VERIFY_KEYS: usize = 1000;
/// Checks waiting at once for the state to reach their offset; more are refused until some are answered.
pub const MAX_PENDING_CHECKS: usize = 16;
/// How long a check waits for the relay's state (which trails the link on a thread of its own) to reach its offset.
pub const CHECK_WAIT: Duration = Duration::from_secs(10);
/// Times a check reads keys the stream wrote again since its last read, before it counts them as skipped.
pub const ATTEMPTS: usize = 5;
/// Most keys whose writes the state notes for running checks at once: a check is refused past it.
pub const MAX_TRACKED_KEYS: usize = MAX_PENDING_CHECKS * MAX_VERIFY_KEYS;

/// One key as one side of a check holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum KeyState {
    /// A window: its Redis type, the items its digest covers, and the digest (16 hex digits).
    Window {
        kind: String,
        items: usize,
        digest: String,
    },
    /// Known not to exist.
    Absent,
    /// This side cannot say exactly (not held, stale, lost track of, or outside `--allow`): not compared.
    Unknown,
}

impl KeyState {
    pub fn of_window(key: &[u8], window: &Window, depth: usize) -> KeyState {
        let digest = window_digest(key, window, depth);
        KeyState::Window {
            kind: digest.kind.name().to_string(),
            items: digest.items,
            digest: format!("{:016x}", digest.hash),
        }
    }
}

/// The keys of one check, as one side holds them at `offset`.
pub type KeyStates = Vec<(Vec<u8>, KeyState)>;

/// Why the state cannot answer for an offset.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NotAt {
    #[error(
        "the relay keeps no state, or it is not built (yet): it is rebuilt from the next full sync"
    )]
    NotReady,
    #[error("the relay follows stream {ours}, not {asked}")]
    OtherEpoch { ours: String, asked: String },
    #[error("the relay's state is already at offset {now}, past {asked}: read again")]
    Past { now: u64, asked: u64 },
    #[error("{MAX_PENDING_CHECKS} checks already wait for their offsets: try again later")]
    Busy,
    #[error("a check names at most {MAX_VERIFY_KEYS} keys, got {0}")]
    TooManyKeys(usize),
    #[error("the relay's state did not reach offset {0} within {CHECK_WAIT:?}, or was rebuilt meanwhile")]
    NotReached(u64),
    #[error("the writes of {MAX_TRACKED_KEYS} keys are already noted for running checks: try again later")]
    TooManyTracked,
}

/// Where the stream wrote the keys of running checks, since each began to be noted: what tells a check which of
/// its keys hold now what they held at an offset the state has passed.
#[derive(Default)]
pub(super) struct Writes {
    keys: HashMap<Vec<u8>, Tracked>,
    /// The last offset of a command that may have written keys it does not name (`FLUSHDB`, `FLUSHALL`, `SWAPDB`,
    /// a script withheld whole).
    everything: u64,
}

struct Tracked {
    /// Checks that noted it.
    checks: usize,
    /// The state's offset when it began to be noted: nothing is known of its writes before.
    since: u64,
    /// The end offset of the last command that wrote it since, or `since`.
    written: u64,
}

impl Writes {
    /// Begins (or goes on) noting the writes of `keys` from `offset`; `false` past [`MAX_TRACKED_KEYS`].
    pub(super) fn track(&mut self, keys: &[Vec<u8>], offset: u64) -> bool {
        let new = keys.iter().filter(|k| !self.keys.contains_key(*k)).count();
        if self.keys.len() + new > MAX_TRACKED_KEYS {
            return false;
        }
        for key in keys {
            self.keys
                .entry(key.clone())
                .or_insert(Tracked {
                    checks: 0,
                    since: offset,
                    written: offset,
                })
                .checks += 1;
        }
        true
    }

    /// A check that noted `keys` is done with them.
    pub(super) fn untrack(&mut self, keys: &[Vec<u8>]) {
        for key in keys {
            if let Some(tracked) = self.keys.get_mut(key) {
                tracked.checks -= 1;
                if tracked.checks == 0 {
                    self.keys.remove(key);
                }
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// A command ending at `end` wrote `key`.
    pub(super) fn wrote(&mut self, key: &[u8], end: u64) {
        if let Some(tracked) = self.keys.get_mut(key) {
            tracked.written = tracked.written.max(end);
        }
    }

    /// A command ending at `end` may have written any key.
    pub(super) fn wrote_everything(&mut self, end: u64) {
        self.everything = self.everything.max(end);
    }

    /// Whether `key` holds now what it held at `offset`: noted since then at the latest, and not written after.
    pub(super) fn unwritten_since(&self, key: &[u8], offset: u64) -> bool {
        self.everything <= offset
            && self
                .keys
                .get(key)
                .is_some_and(|t| t.since <= offset && t.written <= offset)
    }
}

/// A check waiting for the state to reach its offset.
pub(super) struct PendingCheck {
    pub(super) offset: u64,
    pub(super) keys: Vec<Vec<u8>>,
    pub(super) reply: oneshot::Sender<KeyStates>,
}

/// The digest of a session's windows in the state, at `offset` of `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDigest {
    pub epoch: String,
    pub offset: u64,
    pub windows: WindowsDigest,
}

/// One key that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub key: Vec<u8>,
    pub relay: KeyState,
    pub redis: KeyState,
}

/// What a check found: keys compared (both sides knew them), and those that differ.
#[derive(Debug, Default)]
pub struct Comparison {
    pub compared: usize,
    pub skipped: usize,
    pub mismatches: Vec<Mismatch>,
}

/// Compares the relay's states of keys with Redis's.
pub fn compare(relay: &KeyStates, redis: &KeyStates) -> Comparison {
    let redis: BTreeMap<&[u8], &KeyState> = redis.iter().map(|(k, s)| (k.as_slice(), s)).collect();
    let mut out = Comparison::default();
    for (key, ours) in relay {
        let Some(theirs) = redis.get(key.as_slice()) else {
            out.skipped += 1;
            continue;
        };
        if *ours == KeyState::Unknown || **theirs == KeyState::Unknown {
            out.skipped += 1;
            continue;
        }
        out.compared += 1;
        if ours != *theirs {
            out.mismatches.push(Mismatch {
                key: key.clone(),
                relay: ours.clone(),
                redis: (*theirs).clone(),
            });
        }
    }
    out
}

/// What the periodic check does (`--verify-every`, `--verify-sample`).
#[derive(Debug, Clone, Copy)]
pub struct VerifySettings {
    pub every: Duration,
    pub sample: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backlog::Batch;
    use crate::frames::{Frame, FrameIndex, Kind};
    use crate::state::{RelayState, StateSettings};

    /// A state of `k:*` built from an empty RDB at offset 100 of stream `e`.
    fn ready_state() -> RelayState {
        let state = RelayState::new(StateSettings {
            depth: 10,
            bytes: 1 << 20,
            allow: vec!["k:*".into()],
            history_bytes: 0,
        });
        state.begin_full_sync("e", 100);
        let mut rdb = b"REDIS0009".to_vec();
        rdb.push(0xFF);
        rdb.extend([0; 8]);
        state.load(&rdb);
        state.finish_full_sync();
        assert_eq!(state.position(), Some(("e".into(), 100)));
        state
    }

    /// One batch from offset 100 of `ZADD k:z <score> <member>` commands, each a frame writing `k:z`.
    fn zadds(members: &[(&str, &str)]) -> Batch {
        let mut raw = Vec::new();
        let mut index = FrameIndex::default();
        for (score, member) in members {
            let start = raw.len() as u32;
            raw.extend(b"*4\r\n$4\r\nZADD\r\n$3\r\n");
            let key = raw.len() as u32;
            raw.extend(b"k:z\r\n");
            for arg in [score, member] {
                raw.extend(format!("${}\r\n{arg}\r\n", arg.len()).bytes());
            }
            index.keys.push(key..key + 3);
            let keys = index.keys.len() as u32 - 1..index.keys.len() as u32;
            index.frames.push(Frame {
                at: start..raw.len() as u32,
                db: 0,
                target_db: 0,
                kind: Kind::Keyed,
                keys,
                written: 1,
            });
        }
        Batch::new(100, 100 + raw.len() as u64, &raw, index, true)
    }

    #[test]
    fn a_check_inside_a_batch_sees_the_state_between_the_commands_before_and_after_its_offset() {
        let state = ready_state();
        let batch = zadds(&[("1", "a"), ("2", "b")]);
        let first_end = 100 + batch.index.frames[0].at.end as u64;
        let mut at_first = state
            .state_at("e", first_end, vec![b"k:z".to_vec()])
            .unwrap();
        let mut at_end = state
            .state_at("e", batch.end, vec![b"k:z".to_vec()])
            .unwrap();
        assert!(
            at_first.try_recv().is_err(),
            "answered before the link got there"
        );
        state.apply(&batch);
        let items = |states: KeyStates| match &states[0].1 {
            KeyState::Window { items, .. } => *items,
            other => panic!("{other:?}"),
        };
        assert_eq!(items(at_first.try_recv().unwrap()), 1);
        assert_eq!(items(at_end.try_recv().unwrap()), 2);
        assert_eq!(
            state.state_at("e", first_end, vec![]).unwrap_err(),
            NotAt::Past {
                now: batch.end,
                asked: first_end
            }
        );
        assert!(matches!(
            state.state_at("f", batch.end, vec![]),
            Err(NotAt::OtherEpoch { .. })
        ));
        assert_eq!(
            state
                .state_at("e", batch.end, vec![b"k:z".to_vec(); MAX_VERIFY_KEYS + 1])
                .unwrap_err(),
            NotAt::TooManyKeys(MAX_VERIFY_KEYS + 1)
        );
    }

    #[test]
    fn past_its_offset_the_state_answers_for_the_keys_not_written_since() {
        let state = ready_state();
        let tracked = vec![b"k:z".to_vec(), b"k:y".to_vec()];
        state.track_writes(&tracked).unwrap();
        let batch = zadds(&[("1", "a"), ("2", "b")]);
        let first_end = 100 + batch.index.frames[0].at.end as u64;
        state.apply(&batch);
        let asked = vec![b"k:z".to_vec(), b"k:y".to_vec(), b"k:x".to_vec()];
        // k:z was written after the first command's end; k:y never; k:x's writes were not noted.
        let (states, written) = state.state_since("e", first_end, asked.clone()).unwrap();
        assert_eq!(states, vec![(b"k:y".to_vec(), KeyState::Absent)]);
        assert_eq!(written, vec![b"k:z".to_vec(), b"k:x".to_vec()]);
        let (states, written) = state.state_since("e", batch.end, asked.clone()).unwrap();
        assert_eq!(states.len(), 2);
        assert!(matches!(states[0].1, KeyState::Window { items: 2, .. }));
        assert_eq!(written, vec![b"k:x".to_vec()]);
        // Not past an offset the link has not reached, nor for keys no longer noted.
        let (states, _) = state
            .state_since("e", batch.end + 1, asked.clone())
            .unwrap();
        assert!(states.is_empty());
        state.untrack_writes(&tracked);
        let (states, written) = state.state_since("e", batch.end, asked.clone()).unwrap();
        assert!(states.is_empty() && written == asked);
    }

    fn window(digest: &str) -> KeyState {
        KeyState::Window {
            kind: "zset".into(),
            items: 2,
            digest: digest.into(),
        }
    }

    #[test]
    fn keys_either_side_cannot_say_are_skipped_and_the_rest_compared() {
        let relay = vec![
            (b"a".to_vec(), window("01")),
            (b"b".to_vec(), window("02")),
            (b"c".to_vec(), KeyState::Unknown),
            (b"d".to_vec(), KeyState::Absent),
            (b"e".to_vec(), KeyState::Absent),
        ];
        let redis = vec![
            (b"e".to_vec(), window("05")),
            (b"d".to_vec(), KeyState::Absent),
            (b"c".to_vec(), window("03")),
            (b"b".to_vec(), window("ff")),
            (b"a".to_vec(), window("01")),
        ];
        let found = compare(&relay, &redis);
        assert_eq!((found.compared, found.skipped), (4, 1));
        let keys: Vec<&[u8]> = found.mismatches.iter().map(|m| m.key.as_slice()).collect();
        assert_eq!(keys, [b"b".as_slice(), b"e"]);
    }

    #[test]
    fn key_states_read_as_the_json_the_relay_answers_with() {
        let json = r#"{"state":"window","kind":"zset","items":2,"digest":"00ff"}"#;
        assert_eq!(
            serde_json::from_str::<KeyState>(json).unwrap(),
            window("00ff")
        );
        assert_eq!(
            serde_json::to_string(&KeyState::Absent).unwrap(),
            r#"{"state":"absent"}"#
        );
    }
}
