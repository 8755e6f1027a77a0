//! Where a session's snapshot comes from: the relay's state when it can answer (no Redis command at all), else
//! Redis (`MULTI`, the reads, `INFO replication`); counted apart on `/metrics` and timed alike.

use std::time::Instant;

use crate::metrics::Metrics;
use crate::relay::Relay;
use crate::shard::Shard;
use crate::snapshot::{Snapshot, SnapshotError};
use crate::subscription::Subscription;
use crate::timings::{observe, SNAPSHOT_DURATION};

/// A joining session's snapshot: from the shard's state when it can answer, else read from Redis; counted as
/// either.
pub async fn take(
    relay: &Relay,
    shard: &Shard,
    sub: &Subscription,
) -> Result<Snapshot, SnapshotError> {
    let started = Instant::now();
    if let Some(snapshot) = shard
        .state
        .as_ref()
        .and_then(|s| s.snapshot(sub, &relay.allow))
    {
        observe(&SNAPSHOT_DURATION, started.elapsed());
        Metrics::add(&relay.metrics.state_snapshots, 1);
        return Ok(snapshot);
    }
    let snapshot = shard.snapshots.take(sub, &relay.allow).await?;
    Metrics::add(&relay.metrics.snapshots, 1);
    Ok(snapshot)
}

/// A top-up of `keys`: from the shard's state when it can answer, else read from Redis; counted as either.
pub async fn take_keys(
    relay: &Relay,
    shard: &Shard,
    sub: &Subscription,
    keys: Vec<Vec<u8>>,
) -> Result<Snapshot, SnapshotError> {
    let started = Instant::now();
    if let Some(snapshot) = shard
        .state
        .as_ref()
        .and_then(|s| s.snapshot_keys(sub.db, sub.window, &keys))
    {
        observe(&SNAPSHOT_DURATION, started.elapsed());
        Metrics::add(&relay.metrics.state_snapshots, 1);
        return Ok(snapshot);
    }
    let snapshot = shard.snapshots.take_keys(sub.db, sub.window, keys).await?;
    Metrics::add(&relay.metrics.snapshots, 1);
    Ok(snapshot)
}
