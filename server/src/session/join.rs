//! How a session starts on one shard's stream: it resumes inside the backlog where the browser left off, if it
//! asks to and can, or it takes an exact snapshot and waits for the link to reach the snapshot's offset.

use tokio::sync::{watch, Semaphore, SemaphorePermit};
use tokio::time::{Duration, Instant};

use replicast_protocol::wire;

use crate::backlog::{Backlog, Stream as BacklogStream};
use crate::metrics::Metrics;
use crate::relay::Relay;
use crate::shard::Shard;
use crate::subscription::Subscription;

use super::socket::{Close, CLOSE_INTERNAL, CLOSE_POLICY, CLOSE_TRY_AGAIN};

/// How long the link may take to reach a snapshot's offset before the snapshot is taken again.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// KiB of snapshot messages the relay sends at once, all sessions together. A snapshot from the relay's state is
/// ready at once for every joining browser, and each session's message is its own copy until the socket took it:
/// without this, a thousand browsers joining together would hold a thousand snapshots in memory. The others wait
/// for their turn (a browser that stops reading gives its turn back within the send timeout).
pub(crate) const SNAPSHOTS_IN_FLIGHT_KIB: u32 = 256 * 1024;
static SNAPSHOTS_IN_FLIGHT: Semaphore = Semaphore::const_new(SNAPSHOTS_IN_FLIGHT_KIB as usize);

/// A turn to send a snapshot of `bytes`: its share of [`SNAPSHOTS_IN_FLIGHT_KIB`] (at most all of it).
async fn turn_to_send(bytes: usize) -> Result<SemaphorePermit<'static>, Close> {
    let kib = u32::try_from(bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, SNAPSHOTS_IN_FLIGHT_KIB);
    SNAPSHOTS_IN_FLIGHT
        .acquire_many(kib)
        .await
        .map_err(|_| Close(CLOSE_INTERNAL, "the relay is stopping".into()))
}

/// How long the followed Redis's `databases` setting (or that it would not say) is kept: it cannot change while
/// Redis runs, but a failover may bring a primary set up otherwise.
const DATABASES_KEPT: Duration = Duration::from_secs(60);

/// How a failed snapshot closes its session: 1011, as the relay's own failure, unless the subscription's database
/// is past those Redis has (its `databases` setting), which is refused as what the browser may not ask for. Redis is
/// asked its `databases` only then, only for a database past 0, by one session of the shard at a time, and at most
/// once a minute ([`DATABASES_KEPT`]): sessions asking for such databases over and over cost Redis no more than
/// their snapshots' `SELECT`. When `CONFIG` is renamed or refused, the close stays 1011 with `SELECT`'s error.
async fn snapshot_failed(shard: &Shard, db: u32, err: &crate::snapshot::SnapshotError) -> Close {
    if db > 0 {
        if let Some(databases) = databases(shard).await.filter(|&n| db >= n) {
            return Close(
                CLOSE_POLICY,
                format!(
                    "db {db} is past this Redis's {databases} databases (its databases setting)"
                ),
            );
        }
    }
    Close(CLOSE_INTERNAL, err.to_string())
}

/// How many databases the shard's Redis has, as it said within [`DATABASES_KEPT`]; `None` if it does not say.
async fn databases(shard: &Shard) -> Option<u32> {
    let mut kept = shard.databases.lock().await;
    if let Some((at, databases)) = *kept {
        if at.elapsed() < DATABASES_KEPT {
            return databases;
        }
    }
    let databases = ask_databases(shard).await;
    *kept = Some((Instant::now(), databases));
    databases
}

/// `CONFIG GET databases` on the shard's Redis, each step within 5 s.
async fn ask_databases(shard: &Shard) -> Option<u32> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    let mut conn = shard
        .upstream
        .client()
        .ok()?
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .ok()?;
    let reply: std::collections::HashMap<String, u32> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("databases")
        .query_async(&mut conn)
        .await
        .map_err(|err| tracing::debug!("CONFIG GET databases: {err}"))
        .ok()?;
    reply.get("databases").copied()
}

/// Where a browser asks to resume: the epoch and offset its windows are at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub epoch: String,
    pub offset: u64,
}

/// Where a session starts: its offset, and the snapshot message to send first when it did not resume.
pub(crate) struct Start {
    pub offset: u64,
    /// The epoch the browser resumed from, when the stream continues it under a new one; else empty.
    pub previous: String,
    pub snapshot: Option<Vec<u8>>,
    /// The snapshot's turn among those being sent, given back when the session has sent it and drops its start.
    pub sending: Option<SemaphorePermit<'static>>,
    /// Keys too many for the first snapshot part: they follow as top-ups.
    pub rest: Vec<Vec<u8>>,
}

/// Resumes inside the backlog if asked and possible, else takes a snapshot and waits for the link to reach it.
/// `Ok(None)`: the relay is going away.
/// `resume` may name several streams (a cluster's shards): the one this backlog holds is used.
pub(crate) async fn join(
    relay: &Relay,
    shard: &Shard,
    sub: &Subscription,
    resume: &[Resume],
    changed: &mut watch::Receiver<u64>,
) -> Result<Option<(BacklogStream, Start)>, Close> {
    let backlog = &shard.backlog;
    // Wait for the link's first sync.
    let mut waited = false;
    let joined = loop {
        changed.borrow_and_update();
        let resumed = resume.iter().find_map(|r| {
            backlog
                .join(Some((&r.epoch, r.offset)))
                .filter(|(_, _, resumed)| *resumed)
                .map(|joined| (joined, r.epoch.clone()))
        });
        if let Some(joined) = resumed {
            break Some(joined);
        }
        if let Some(ahead) = resume.iter().find(|r| backlog.is_ahead(&r.epoch, r.offset)) {
            // The browser comes from a relay whose node was a moment ahead of ours: wait for the link to get
            // there rather than snapshot (once; a link that does not catch up in time means a snapshot).
            if !waited {
                waited = true;
                caught_up(backlog, changed, &ahead.epoch, ahead.offset).await;
                continue;
            }
        }
        if backlog.join(None).is_some() {
            break None;
        }
        if changed.changed().await.is_err() {
            return Ok(None);
        }
    };
    if let Some(((stream, at, _), epoch)) = joined {
        Metrics::add(&relay.metrics.resumes, 1);
        let previous = if epoch == stream.epoch {
            String::new()
        } else {
            epoch
        };
        return Ok(Some((
            stream,
            Start {
                offset: at,
                previous,
                snapshot: None,
                sending: None,
                rest: Vec::new(),
            },
        )));
    }
    for _ in 0..3 {
        let started = Instant::now();
        let snapshot = match super::snapshot_source::take(relay, shard, sub).await {
            Ok(snapshot) => snapshot,
            Err(err) => return Err(snapshot_failed(shard, sub.db, &err).await),
        };
        let read = started.elapsed();
        let sending = turn_to_send(snapshot.commands.len()).await?;
        let turn = started.elapsed();
        if caught_up(backlog, changed, &snapshot.epoch, snapshot.offset).await {
            if let Some((stream, _, true)) = backlog.join(Some((&snapshot.epoch, snapshot.offset)))
            {
                let message = wire::encode_snapshot(snapshot.offset, &snapshot.commands);
                // Where a slow join's time went, as times since the snapshot was asked for.
                tracing::debug!(
                    keys = snapshot.keys,
                    bytes = snapshot.commands.len(),
                    offset = snapshot.offset,
                    ?read,
                    ?turn,
                    encoded = ?started.elapsed(),
                    "snapshot ready to send"
                );
                return Ok(Some((
                    stream,
                    Start {
                        offset: snapshot.offset,
                        previous: String::new(),
                        snapshot: Some(message),
                        sending: Some(sending),
                        rest: snapshot.rest,
                    },
                )));
            }
        }
        // The link restarted, lags far behind, or moved past the snapshot already: take another.
    }
    Err(Close(
        CLOSE_TRY_AGAIN,
        "could not align a snapshot with the stream; try again".into(),
    ))
}

/// Waits until the backlog holds `epoch` up to at least `offset`; `false` on timeout or another epoch.
async fn caught_up(
    backlog: &Backlog,
    changed: &mut watch::Receiver<u64>,
    epoch: &str,
    offset: u64,
) -> bool {
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        changed.borrow_and_update();
        match backlog.position() {
            Some((stream, end)) if stream.epoch == epoch && end >= offset => return true,
            Some((stream, end)) if stream.epoch != epoch && end > 0 && backlog.is_live() => {
                tracing::debug!(snapshot_epoch = epoch, link_epoch = %stream.epoch, "snapshot from another epoch");
            }
            _ => {}
        }
        if tokio::time::timeout_at(deadline, changed.changed())
            .await
            .is_err()
        {
            return false;
        }
    }
}
