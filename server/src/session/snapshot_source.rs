//! Where a session's snapshot comes from: the relay's state when it can answer (no Redis command at all), else
//! Redis (`MULTI`, the reads, `INFO replication`); counted apart on `/metrics` and timed alike.
//!
//! The state trails the backlog (`state/feed.rs`), so what it answers is at an offset the link has passed: a join's
//! snapshot from it is taken only where the backlog still holds that offset (the session then streams from there),
//! and a top-up for a session already past the state's offset waits, at most [`STATE_WAIT`], for the state to get
//! there, since a snapshot is never placed behind what a session has read; else both read Redis.

use std::time::{Duration, Instant};

use crate::backlog::Backlog;
use crate::metrics::Metrics;
use crate::relay::Relay;
use crate::shard::Shard;
use crate::snapshot::{Snapshot, SnapshotError};
use crate::subscription::Subscription;
use crate::timings::{observe, SNAPSHOT_DURATION};

/// How long a top-up (or a digest) waits for the relay's state to reach the session's cursor before it reads
/// Redis: the state trails by at most its queue (`--state-queue-bytes`), which it applies at a few hundred MB/s, so a
/// second covers a queue of that size; past it, a read of Redis costs less than the wait.
pub const STATE_WAIT: Duration = Duration::from_secs(1);

/// A joining session's snapshot: from the shard's state when it can answer at an offset the backlog still holds
/// (waiting for it, at most [`STATE_WAIT`], when it is not on the backlog's stream yet: a full sync the link has
/// read and the state is still applying), else read from Redis; counted as either.
pub async fn take(
    relay: &Relay,
    shard: &Shard,
    sub: &Subscription,
) -> Result<Snapshot, SnapshotError> {
    let started = Instant::now();
    if let Some(state) = &shard.state {
        let joinable = |epoch: &str, offset: u64| joinable(&shard.backlog, epoch, offset);
        let on_stream = state
            .position()
            .is_some_and(|(epoch, offset)| joinable(&epoch, offset));
        if !on_stream {
            if let Some((stream, end)) = shard.backlog.position() {
                state.reach(&stream.epoch, end, STATE_WAIT).await;
            }
        }
        let answer = state
            .snapshot(sub, &relay.allow)
            .filter(|snapshot| joinable(&snapshot.epoch, snapshot.offset));
        if let Some(snapshot) = answer {
            observe(&SNAPSHOT_DURATION, started.elapsed());
            Metrics::add(&relay.metrics.state_snapshots, 1);
            return Ok(snapshot);
        }
    }
    let snapshot = shard.snapshots.take(sub, &relay.allow).await?;
    Metrics::add(&relay.metrics.snapshots, 1);
    Ok(snapshot)
}

/// Whether a join's snapshot at `offset` of `epoch` lets the session stream on from there: the backlog holds that
/// offset, on the stream it follows now. The state may trail further than the backlog reaches back, or still be on
/// the stream before a full resync the backlog has started; or, after a failover, still be before the rename
/// (`+CONTINUE` under a new replication ID): the backlog lets a browser resume through the previous ID, but a
/// snapshot stamped with it would make the join wait for its catch-up on a stream the backlog has left.
fn joinable(backlog: &Backlog, epoch: &str, offset: u64) -> bool {
    backlog
        .join(Some((epoch, offset)))
        .is_some_and(|(stream, _, resumed)| resumed && stream.epoch == epoch)
}

/// A top-up of `keys` for a session at `cursor` of `epoch`: from the shard's state when it can answer there or
/// after (waiting for it, at most [`STATE_WAIT`], when the session is past it), else read from Redis; counted as
/// either.
pub async fn take_keys(
    relay: &Relay,
    shard: &Shard,
    sub: &Subscription,
    keys: Vec<Vec<u8>>,
    (epoch, cursor): (&str, u64),
) -> Result<Snapshot, SnapshotError> {
    let started = Instant::now();
    if let Some(state) = &shard.state {
        let placeable = |s: &Snapshot| s.epoch == epoch && s.offset >= cursor;
        let mut answer = state.snapshot_keys(sub.db, sub.window, &keys);
        // Behind the session, or not ready yet (a full sync it still applies): worth waiting for. Ready and unable
        // to answer these keys: not.
        let waits = match &answer {
            Some(snapshot) => !placeable(snapshot),
            None => state.position().is_none(),
        };
        if waits && state.reach(epoch, cursor, STATE_WAIT).await {
            answer = state.snapshot_keys(sub.db, sub.window, &keys);
        }
        if let Some(snapshot) = answer.filter(placeable) {
            observe(&SNAPSHOT_DURATION, started.elapsed());
            Metrics::add(&relay.metrics.state_snapshots, 1);
            return Ok(snapshot);
        }
    }
    let snapshot = shard.snapshots.take_keys(sub.db, sub.window, keys).await?;
    Metrics::add(&relay.metrics.snapshots, 1);
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::FrameIndex;

    #[test]
    fn a_state_before_a_failovers_rename_is_not_joinable() {
        let backlog = Backlog::new(1000);
        backlog.restart("A", 100);
        backlog.append(100, b"PING\r\n", FrameIndex::default());
        assert!(joinable(&backlog, "A", 106));
        // A failover: the stream goes on under B. A browser may still resume through A, a join's snapshot may not.
        backlog.resume("B");
        assert!(backlog
            .join(Some(("A", 106)))
            .is_some_and(|(_, _, resumed)| resumed));
        assert!(!joinable(&backlog, "A", 106));
        assert!(joinable(&backlog, "B", 106));
        assert!(!joinable(&backlog, "B", 99));
    }
}
