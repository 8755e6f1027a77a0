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
use crate::state::RelayState;
use crate::subscription::Subscription;
use crate::timings::{observe, SNAPSHOT_DURATION};

/// How long a top-up (or a digest) waits for the relay's state to reach the session's cursor before it reads
/// Redis: the state trails by at most its queue (`--state-queue-bytes`), which it applies at a few hundred MB/s, so a
/// second covers a queue of that size; past it, a read of Redis costs less than the wait.
pub const STATE_WAIT: Duration = Duration::from_secs(1);

/// A joining session's snapshot: from the shard's state when it can answer at an offset the backlog still holds
/// (waiting for it, at most [`STATE_WAIT`], when it is not there yet: a state trailing further than the ring, a
/// full sync the link has read and the state is still applying; not while the link reads a full sync's RDB), else
/// read from Redis; counted as either.
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
        // During a full sync's RDB transfer (the backlog not live) the state cannot get onto the backlog's stream
        // before the transfer ends: not worth waiting for.
        if !on_stream && shard.backlog.is_live() {
            back_in_the_ring(state, &shard.backlog).await;
        }
        let answer = state
            .snapshot(sub, &relay.allow)
            .filter(|snapshot| joinable(&snapshot.epoch, snapshot.offset));
        if let Some(snapshot) = answer {
            observe(&SNAPSHOT_DURATION, started.elapsed());
            counted(relay, shard, Source::State);
            return Ok(snapshot);
        }
    }
    let snapshot = shard.snapshots.take(sub, &relay.allow).await?;
    counted(relay, shard, Source::Redis);
    Ok(snapshot)
}

/// Waits, at most [`STATE_WAIT`], until the state is at an offset the backlog holds on its stream (the ring's
/// oldest offset moves on while the state does), not until the ring's end: a join needs no more.
async fn back_in_the_ring(state: &RelayState, backlog: &Backlog) {
    let deadline = tokio::time::Instant::now() + STATE_WAIT;
    let mut target = None;
    while let Some((stream, start)) = backlog.oldest() {
        // Reached where the ring started and still not joinable: unless the ring moved on since, it will not be.
        let at = (stream.epoch.clone(), stream.generation, start);
        if target.as_ref() == Some(&at) {
            return;
        }
        target = Some(at);
        let within = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !state.reach(&stream.epoch, start, within).await {
            return;
        }
        if state
            .position()
            .is_some_and(|(epoch, offset)| joinable(backlog, &epoch, offset))
        {
            return;
        }
    }
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
/// either. With `since`, the state's answer comes with its past message (`state/past.rs`); a read of Redis has none.
pub async fn take_keys(
    relay: &Relay,
    shard: &Shard,
    sub: &Subscription,
    keys: Vec<Vec<u8>>,
    (epoch, cursor): (&str, u64),
    since: Option<u64>,
) -> Result<(Snapshot, Option<Vec<u8>>), SnapshotError> {
    let started = Instant::now();
    if let Some(state) = &shard.state {
        let placeable = |(s, _): &(Snapshot, _)| s.epoch == epoch && s.offset >= cursor;
        let mut answer = state.snapshot_keys(sub.db, sub.window, &keys, since);
        // Behind the session, or not ready yet (a full sync it still applies): worth waiting for. Ready and unable
        // to answer these keys: not.
        let waits = match &answer {
            Some(answer) => !placeable(answer),
            None => state.position().is_none(),
        };
        if waits && state.reach(epoch, cursor, STATE_WAIT).await {
            answer = state.snapshot_keys(sub.db, sub.window, &keys, since);
        }
        if let Some(answer) = answer.filter(placeable) {
            observe(&SNAPSHOT_DURATION, started.elapsed());
            counted(relay, shard, Source::State);
            return Ok(answer);
        }
    }
    let snapshot = shard.snapshots.take_keys(sub.db, sub.window, keys).await?;
    counted(relay, shard, Source::Redis);
    Ok((snapshot, None))
}

/// Where a snapshot or top-up came from.
pub enum Source {
    State,
    Redis,
}

/// Counts a snapshot or top-up of `shard` taken from `source`, relay-wide and on the shard's link.
pub fn counted(relay: &Relay, shard: &Shard, source: Source) {
    let (all, own) = match source {
        Source::State => (&relay.metrics.state_snapshots, &shard.link.state_snapshots),
        Source::Redis => (&relay.metrics.snapshots, &shard.link.snapshots),
    };
    Metrics::add(all, 1);
    Metrics::add(own, 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backlog::Batch;
    use crate::frames::FrameIndex;
    use crate::state::for_tests::{self, EMPTY_RDB};

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

    /// Whether `wait` is done at its first poll.
    async fn done_at_once(
        wait: &mut std::pin::Pin<Box<impl std::future::Future<Output = ()>>>,
    ) -> bool {
        tokio::select! {
            biased;
            () = wait.as_mut() => true,
            () = std::future::ready(()) => false,
        }
    }

    #[tokio::test]
    async fn a_join_waits_for_the_state_only_until_the_ring_holds_its_offset() {
        // Three batches of six bytes.
        let backlog = Backlog::new(18);
        backlog.restart("A", 100);
        let ping =
            |start: u64| Batch::new(start, start + 6, b"PING\r\n", FrameIndex::default(), true);
        for i in 0..10 {
            backlog.append_batch(ping(100 + 6 * i));
        }
        let (start, end, _) = backlog.extent();
        assert!(start > 100 && start < end, "the ring holds {start}..{end}");
        let state = for_tests::state();
        state.begin_full_sync("A", 100);
        state.load(EMPTY_RDB);
        state.finish_full_sync();
        // The state trails further than the ring reaches back: a join waits for it ...
        let mut wait = Box::pin(back_in_the_ring(&state, &backlog));
        assert!(!done_at_once(&mut wait).await);
        let mut offset = 100;
        while offset + 6 < start {
            state.apply(&ping(offset));
            offset += 6;
            assert!(!done_at_once(&mut wait).await, "done at {offset}");
        }
        // ... until the ring holds its offset, not until the ring's end.
        state.apply(&ping(offset));
        assert!(state
            .position()
            .is_some_and(|(_, at)| at >= start && at < end));
        assert!(done_at_once(&mut wait).await);
    }
}
