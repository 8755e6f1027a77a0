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
//! A key that differs is logged (which key, both digests, the offset), counted, and healed: the state forgets it,
//! so that its windows are read from Redis again by the state's refresh (`state::refresh`), placed at their offset
//! like a top-up, and joins that watch it read Redis until then. Healing the keys that differ, not the whole state:
//! a full sync would ship the whole dataset again and send every join to Redis meanwhile, for a fault a sample
//! found in a few keys; a key that differs again is found and healed again by a later check.

use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use replicast_assembler::digest::{window_digest, windows_digest};
use replicast_assembler::{StreamAssembler, WatchConfig, Window};
use replicast_protocol::wire::{self, WindowsDigest};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::oneshot;

use crate::metrics::Metrics;
use crate::snapshot::{Snapshot, Snapshotter};
use crate::subscription::{Allow, Subscription};

use super::{rebuild, Inner, Phase, RelayState, STATE_DB};

/// Most keys one check may name (one `replicast verify` request, one `--verify-sample`).
pub const MAX_VERIFY_KEYS: usize = 1000;
/// Checks waiting at once for the link to reach their offset; more are refused until some are answered.
pub const MAX_PENDING_CHECKS: usize = 16;
/// How long a check waits for the link to reach its offset.
pub const CHECK_WAIT: Duration = Duration::from_secs(10);
/// Times a sample's read from Redis is taken again when the state was already past its offset.
const ATTEMPTS: usize = 5;

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
    fn of_window(key: &[u8], window: &Window, depth: usize) -> KeyState {
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
    #[error("the link did not reach offset {0} within {CHECK_WAIT:?}, or the state was rebuilt meanwhile")]
    NotReached(u64),
}

/// A check waiting for the state to reach its offset.
pub(super) struct PendingCheck {
    pub(super) offset: u64,
    keys: Vec<Vec<u8>>,
    reply: oneshot::Sender<KeyStates>,
}

impl PendingCheck {
    /// Answers with the keys as the state holds them now, which is at the check's offset.
    pub(super) fn answer(self, inner: &Inner, state: &RelayState) {
        let states = self
            .keys
            .into_iter()
            .map(|key| {
                let held = inner.key_state(&key, state);
                (key, held)
            })
            .collect();
        let _ = self.reply.send(states);
    }
}

impl Inner {
    fn key_state(&self, key: &[u8], state: &RelayState) -> KeyState {
        if !state.allow.allows(key) || self.not_held.contains(key) {
            return KeyState::Unknown;
        }
        match self.assembler.window(key) {
            Some(window) if rebuild::answers(window) => {
                KeyState::of_window(key, window, state.settings.depth)
            }
            Some(_) => KeyState::Unknown,
            None if self.assembler.unknown_keys().any(|k| k == key) => KeyState::Unknown,
            None => KeyState::Absent,
        }
    }
}

impl RelayState {
    /// The state of `keys` at `offset` of `epoch`: now if the state is there, else once its link reaches it
    /// (within the batch that crosses it). Refused when the state is past it, or not ready.
    pub fn state_at(
        &self,
        epoch: &str,
        offset: u64,
        keys: Vec<Vec<u8>>,
    ) -> Result<oneshot::Receiver<KeyStates>, NotAt> {
        if keys.len() > MAX_VERIFY_KEYS {
            return Err(NotAt::TooManyKeys(keys.len()));
        }
        let mut inner = self.inner();
        if inner.phase != Phase::Ready || inner.assembler.needs_resnapshot() {
            return Err(NotAt::NotReady);
        }
        if inner.epoch != epoch {
            return Err(NotAt::OtherEpoch {
                ours: inner.epoch.clone(),
                asked: epoch.to_string(),
            });
        }
        if offset < inner.offset {
            return Err(NotAt::Past {
                now: inner.offset,
                asked: offset,
            });
        }
        let (reply, answer) = oneshot::channel();
        let check = PendingCheck {
            offset,
            keys,
            reply,
        };
        if offset == inner.offset {
            check.answer(&inner, self);
            return Ok(answer);
        }
        inner.checks.retain(|c| !c.reply.is_closed());
        if inner.checks.len() >= MAX_PENDING_CHECKS {
            return Err(NotAt::Busy);
        }
        inner.checks.push(check);
        Ok(answer)
    }

    /// The state's epoch, and up to `n` of the keys it holds, drawn anew each call: the keys whose hashes under a
    /// fresh seed are the `n` smallest.
    pub fn sample(&self, n: usize) -> Option<(String, Vec<Vec<u8>>)> {
        let inner = self.inner();
        if inner.phase != Phase::Ready || n == 0 {
            return None;
        }
        let seed = super::now_ms() as u64 ^ self.verify_checks.load(Ordering::Relaxed);
        let mut smallest: BinaryHeap<(u64, &[u8])> = BinaryHeap::new();
        for key in inner.sizes.keys() {
            let rank = xxhash_rust::xxh3::xxh3_64_with_seed(key, seed);
            if smallest.len() < n {
                smallest.push((rank, key));
            } else if smallest.peek().is_some_and(|(top, _)| rank < *top) {
                smallest.pop();
                smallest.push((rank, key));
            }
        }
        let keys: Vec<Vec<u8>> = smallest.into_iter().map(|(_, k)| k.to_vec()).collect();
        (!keys.is_empty()).then(|| (inner.epoch.clone(), keys))
    }

    /// The keys a check found different: the state forgets them, and its refresh reads them from Redis again.
    pub fn heal(&self, keys: &[Vec<u8>]) {
        let mut inner = self.inner();
        if inner.phase != Phase::Ready {
            return;
        }
        for key in keys {
            inner.assembler.forget(key);
        }
        inner.settle(&self.settings);
        self.publish(&inner);
    }

    /// Counts a check: keys compared, keys that differed; `missed` when it could not be placed at its offset.
    pub fn count_check(&self, compared: usize, mismatches: usize, missed: bool) {
        Metrics::add(&self.verify_checks, 1);
        Metrics::add(&self.verify_keys, compared as u64);
        Metrics::add(&self.verify_mismatches, mismatches as u64);
        Metrics::add(&self.verify_missed, u64::from(missed));
    }

    /// The digest of the windows a session with `sub` (and its `allow`, narrowed by its token) would hold, at the
    /// state's offset: what a page compares its own windows with. `Err` says why the state cannot answer (not
    /// ready, another database, a window deeper than the state's, a watched key not held, stale or lost track of).
    pub fn digest(&self, sub: &Subscription, allow: &Allow) -> Result<StateDigest, String> {
        let inner = self.inner();
        if !inner.answers(sub.db, sub.window, self.settings.depth) {
            return Err(format!(
                "the relay's state cannot answer this subscription: it holds database {STATE_DB} with windows \
                 of {} items, once built",
                self.settings.depth
            ));
        }
        let wanted = |key: &[u8]| sub.wants(key) && allow.allows(key);
        if inner.assembler.unknown_keys().any(wanted)
            || inner.not_held.iter().any(|key| wanted(key))
        {
            return Err("a key this session watches is not held by the relay's state".into());
        }
        let windows: Vec<(&[u8], &Window)> = inner
            .assembler
            .windows()
            .filter(|(key, _)| wanted(key))
            .collect();
        if windows.iter().any(|(_, window)| !rebuild::answers(window)) {
            return Err("a window this session watches is stale in the relay's state".into());
        }
        Ok(StateDigest {
            epoch: inner.epoch.clone(),
            offset: inner.offset,
            windows: windows_digest(windows, sub.window),
        })
    }

    /// The stream and offset the state is at, when it is ready.
    pub fn position(&self) -> Option<(String, u64)> {
        let inner = self.inner();
        (inner.phase == Phase::Ready).then(|| (inner.epoch.clone(), inner.offset))
    }

    /// The window depth the state keeps (`--state-depth`): a check reads Redis this deep.
    pub fn depth(&self) -> usize {
        self.settings.depth
    }

    /// The state's key patterns (`--allow`).
    pub fn patterns(&self) -> &[String] {
        &self.settings.allow
    }

    /// Corrupts `key`'s window in place (it becomes the string `corrupted`) without moving the offset: only for
    /// the tests of the checks, in debug builds.
    #[cfg(debug_assertions)]
    pub fn corrupt(&self, key: &[u8]) -> bool {
        let mut inner = self.inner();
        if inner.phase != Phase::Ready {
            return false;
        }
        let mut commands = Vec::new();
        crate::link_io::push_command(&mut commands, &[b"DEL", key]);
        crate::link_io::push_command(&mut commands, &[b"SET", key, b"corrupted"]);
        let message = wire::encode_snapshot(inner.offset, &commands);
        let applied = inner.assembler.push_message(&message).is_ok();
        inner.settle(&self.settings);
        self.publish(&inner);
        applied
    }
}

/// The windows Redis's read `snapshot` gives its keys (`keys`: those it holds, not its `rest`), built by the
/// assembler the state runs, with the state's depth and patterns.
pub fn redis_states(
    snapshot: &Snapshot,
    keys: &[Vec<u8>],
    patterns: &[String],
    depth: usize,
) -> Result<KeyStates, String> {
    let mut assembler = StreamAssembler::new(WatchConfig {
        patterns: patterns.iter().map(|p| p.as_bytes().to_vec()).collect(),
        db: STATE_DB,
        window: depth,
    });
    assembler
        .push_message(&wire::encode_hello(&snapshot.epoch, snapshot.offset))
        .and_then(|_| {
            assembler.push_message(&wire::encode_snapshot(snapshot.offset, &snapshot.commands))
        })
        .map_err(|e| format!("Redis's read could not be applied: {e}"))?;
    Ok(keys
        .iter()
        .map(|key| {
            let state = match assembler.window(key) {
                Some(window) => KeyState::of_window(key, window, depth),
                None if assembler.unknown_keys().any(|k| k == key) => KeyState::Unknown,
                None => KeyState::Absent,
            };
            (key.clone(), state)
        })
        .collect())
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

/// Reads `keys` from Redis (in parts, as a join does) and compares each part with the state at its offset;
/// what differs is logged, counted and healed. Returns the keys compared and those that differed.
pub async fn check(
    state: &RelayState,
    snapshots: &Snapshotter,
    epoch: &str,
    keys: Vec<Vec<u8>>,
) -> Result<Comparison, String> {
    let mut total = Comparison::default();
    let mut left = keys;
    let mut attempts = 0;
    while !left.is_empty() {
        let snapshot = snapshots
            .take_keys(STATE_DB, state.depth(), left.clone())
            .await
            .map_err(|e| e.to_string())?;
        if snapshot.epoch != epoch {
            return Err(format!(
                "Redis is at stream {}, the relay's state at {epoch}",
                snapshot.epoch
            ));
        }
        let part: Vec<Vec<u8>> = left
            .iter()
            .filter(|k| !snapshot.rest.contains(k))
            .cloned()
            .collect();
        let redis = redis_states(&snapshot, &part, state.patterns(), state.depth())?;
        let ours = match state.state_at(epoch, snapshot.offset, part) {
            Ok(answer) => tokio::time::timeout(CHECK_WAIT, answer)
                .await
                .ok()
                .and_then(Result::ok)
                .ok_or(NotAt::NotReached(snapshot.offset)),
            Err(err) => Err(err),
        };
        let ours = match ours {
            Ok(ours) => ours,
            Err(NotAt::Past { .. }) if attempts + 1 < ATTEMPTS => {
                // The link read past the offset before the read's reply came back: read the part again.
                attempts += 1;
                continue;
            }
            Err(err) => {
                state.count_check(0, 0, true);
                return Err(err.to_string());
            }
        };
        let found = compare(&ours, &redis);
        for mismatch in &found.mismatches {
            tracing::warn!(
                key = %String::from_utf8_lossy(&mismatch.key),
                offset = snapshot.offset,
                relay = ?mismatch.relay,
                redis = ?mismatch.redis,
                "verify: the relay's state differs from Redis; the key is read from Redis again"
            );
        }
        let differing: Vec<Vec<u8>> = found.mismatches.iter().map(|m| m.key.clone()).collect();
        state.heal(&differing);
        state.count_check(found.compared, found.mismatches.len(), false);
        total.compared += found.compared;
        total.skipped += found.skipped;
        total.mismatches.extend(found.mismatches);
        left = snapshot.rest;
        attempts = 0;
    }
    Ok(total)
}

/// What the periodic check does (`--verify-every`, `--verify-sample`).
#[derive(Debug, Clone, Copy)]
pub struct VerifySettings {
    pub every: Duration,
    pub sample: usize,
}

/// Every `settings.every`, checks a fresh sample of the keys the state holds against Redis.
pub async fn every(state: Arc<RelayState>, snapshots: Snapshotter, settings: VerifySettings) {
    let mut tick = tokio::time::interval(settings.every);
    // The first tick is at once: the state is not built yet then.
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some((epoch, keys)) = state.sample(settings.sample) else {
            continue;
        };
        match check(&state, &snapshots, &epoch, keys).await {
            Ok(found) => tracing::debug!(
                compared = found.compared,
                skipped = found.skipped,
                mismatches = found.mismatches.len(),
                "verify: checked a sample of the relay's state against Redis"
            ),
            Err(err) => tracing::info!("verify: no check this round: {err}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backlog::Batch;
    use crate::frames::{Frame, FrameIndex, Kind};
    use crate::state::StateSettings;

    /// A state of `k:*` built from an empty RDB at offset 100 of stream `e`.
    fn ready_state() -> RelayState {
        let state = RelayState::new(StateSettings {
            depth: 10,
            bytes: 1 << 20,
            allow: vec!["k:*".into()],
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
