//! The checks of the relay's state against Redis that run on their own: the periodic check (`--verify-every`) and
//! each part of a check, read from Redis as a join reads it and compared with the state at that offset
//! (`state::verify` says what a check compares and how a difference heals). Apart from `state` so that the state's
//! module imports none of the tasks that read it.

use std::sync::Arc;

use replicast_assembler::{StreamAssembler, WatchConfig};
use replicast_protocol::wire;

use crate::snapshot::{Snapshot, Snapshotter};
use crate::state::verify::{
    compare, Comparison, KeyState, KeyStates, NotAt, VerifySettings, CHECK_WAIT,
};
use crate::state::{RelayState, STATE_DB};

/// How many times a part is read again when the link passed its offset before Redis's reply came back.
const ATTEMPTS: usize = 5;

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
