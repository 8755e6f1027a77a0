//! The checks of the relay's state against Redis that run on their own: the periodic check (`--verify-every`) and
//! each part of a check, read from Redis as a join reads it and compared with the state at that offset
//! (`state::verify` says what a check compares and how a difference heals). Apart from `state` so that the state's
//! module imports none of the tasks that read it.

use std::sync::Arc;

use replicast_assembler::{StreamAssembler, WatchConfig};
use replicast_protocol::wire;

use crate::snapshot::{Snapshot, Snapshotter};
use crate::state::verify::{
    compare, Comparison, KeyState, KeyStates, NotAt, VerifySettings, ATTEMPTS, CHECK_WAIT,
};
use crate::state::{RelayState, STATE_DB};

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

/// Reads `keys` from Redis (in parts, as a join does) and compares each part with the state at its offset;
/// what differs is logged, counted and healed. Keys the stream wrote between Redis's read and the state's answer
/// are read again, [`ATTEMPTS`] times at most, then skipped. Returns the keys compared and those that differed.
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
        let tracked = TrackedWrites::begin(state, &left).map_err(|err| {
            state.count_check(0, 0, 0, true);
            err.to_string()
        })?;
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
        let ours = match state.state_at(epoch, snapshot.offset, part.clone()) {
            Ok(answer) => tokio::time::timeout(CHECK_WAIT, answer)
                .await
                .ok()
                .and_then(Result::ok)
                .map(|ours| (ours, Vec::new()))
                .ok_or(NotAt::NotReached(snapshot.offset)),
            // The link read past the offset before the read's reply came back: the keys it did not write since
            // are compared now.
            Err(NotAt::Past { .. }) => state.state_since(epoch, snapshot.offset, part),
            Err(err) => Err(err),
        };
        drop(tracked);
        let (ours, written) = match ours {
            Ok(answer) => answer,
            Err(err) => {
                state.count_check(0, 0, 0, true);
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
        let again = !written.is_empty() && attempts + 1 < ATTEMPTS;
        let given_up = if again { 0 } else { written.len() };
        state.count_check(
            found.compared,
            found.mismatches.len(),
            found.skipped + given_up,
            false,
        );
        total.compared += found.compared;
        total.skipped += found.skipped + given_up;
        total.mismatches.extend(found.mismatches);
        left = snapshot.rest;
        if again {
            left.extend(written);
            attempts += 1;
        } else {
            attempts = 0;
        }
    }
    Ok(total)
}

/// The keys of a check whose writes the state notes while the check reads them ([`RelayState::track_writes`]),
/// until dropped.
struct TrackedWrites<'a> {
    state: &'a RelayState,
    keys: &'a [Vec<u8>],
}

impl<'a> TrackedWrites<'a> {
    fn begin(state: &'a RelayState, keys: &'a [Vec<u8>]) -> Result<Self, NotAt> {
        state.track_writes(keys)?;
        Ok(TrackedWrites { state, keys })
    }
}

impl Drop for TrackedWrites<'_> {
    fn drop(&mut self) {
        self.state.untrack_writes(self.keys);
    }
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
