//! The collector's Redis writer: samples queue in memory, a task writes them, and losing Redis only makes the
//! queue grow, up to a bound.
//!
//! Each sample is one transaction, `MULTI`, `ZADD <key> <t> <json>`, `ZREMRANGEBYRANK <key> 0 -(keep+1)`, `EXEC`,
//! so the sorted set never holds more than `keep` members, even for a moment; a whole interval's transactions (every
//! host) go in one pipeline, one round trip. While Redis is unreachable the writer reconnects with exponential
//! backoff and jitter; samples keep queueing, the oldest are dropped (and counted) past the bound, and on reconnect
//! the backlog is written in order. Redis errors are logged, never fatal.
//!
//! To a Redis Cluster (`--cluster`), each sample goes to the primary that owns its key's slot: one pipeline per
//! primary, the slot map read from the cluster (`CLUSTER SHARDS`) at the start and again whenever a node answers
//! `MOVED`, `ASK` or `CLUSTERDOWN` (a failover, a resharding), after which the samples it refused are sent again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use tokio::sync::Notify;

use crate::backoff::jitter;
use crate::upstream::{NodeSettings, RedisTarget};

/// Backoff between connection attempts: doubles from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A connection attempt that takes longer has failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A pipeline that gets no answer in this long has failed, and the connection is replaced.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most samples in one pipeline: a backlog flushed after an outage goes in pieces of about a megabyte.
const MAX_PIPELINE: usize = 1000;

/// One sample to write: `ZADD key score member`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub score: u64,
    pub member: String,
}

/// Samples not yet written, oldest first, each with a sequence number so the writer can remove exactly what it
/// wrote even if the sampler dropped some meanwhile.
#[derive(Default)]
struct Queue {
    entries: VecDeque<(u64, Entry)>,
    next: u64,
    bound: usize,
    /// Dropped since the last report.
    dropped: u64,
}

impl Queue {
    fn push(&mut self, entries: Vec<Entry>) -> u64 {
        let mut dropped = 0;
        for entry in entries {
            self.entries.push_back((self.next, entry));
            self.next += 1;
            if self.entries.len() > self.bound {
                self.entries.pop_front();
                dropped += 1;
            }
        }
        self.dropped += dropped;
        dropped
    }

    /// The oldest entries, at most `n`, and the sequence number of the last.
    fn front(&self, n: usize) -> (Vec<Entry>, Option<u64>) {
        let batch: Vec<Entry> = self
            .entries
            .iter()
            .take(n)
            .map(|(_, e)| e.clone())
            .collect();
        let last = batch
            .len()
            .checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .map(|(seq, _)| *seq);
        (batch, last)
    }

    /// Removes every entry up to sequence number `last`.
    fn remove_through(&mut self, last: u64) {
        while self.entries.front().is_some_and(|(seq, _)| *seq <= last) {
            self.entries.pop_front();
        }
    }
}

/// Where samples are written: one Redis, or every primary of a Redis Cluster.
#[derive(Debug, Clone)]
pub enum Destination {
    Single(RedisTarget),
    /// Nodes to ask for the slot map (any of the cluster's), and the credentials and TLS settings of every node.
    Cluster {
        seeds: Vec<(String, u16)>,
        settings: NodeSettings,
    },
}

impl Destination {
    /// For logs: the node, or the cluster's first seed.
    pub fn address(&self) -> String {
        match self {
            Destination::Single(target) => target.addr(),
            Destination::Cluster { seeds, .. } => seeds
                .first()
                .map_or_else(|| "(no node)".into(), |(h, p)| format!("cluster {h}:{p}")),
        }
    }
}

/// Connections to where samples go, made as needed: one to a single Redis, or one per cluster primary, with the
/// slot map that says which primary owns a key.
struct Connections {
    destination: Destination,
    by_node: HashMap<String, MultiplexedConnection>,
    /// The primary (`host:port`) owning each slot; `None` until read, and after a redirection.
    owners: Option<Vec<Option<String>>>,
}

impl Connections {
    fn new(destination: Destination) -> Self {
        Connections {
            destination,
            by_node: HashMap::new(),
            owners: None,
        }
    }

    async fn connection(&mut self, node: &str) -> redis::RedisResult<MultiplexedConnection> {
        if let Some(conn) = self.by_node.get(node) {
            return Ok(conn.clone());
        }
        let target = match &self.destination {
            Destination::Single(target) => target.clone(),
            Destination::Cluster { settings, .. } => {
                let (host, port) = node
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h, p.parse().ok()?)))
                    .ok_or_else(|| {
                        redis::RedisError::from(std::io::Error::other(format!(
                            "not host:port: {node}"
                        )))
                    })?;
                settings.at(host, port)
            }
        };
        let conn = connect(&target).await?;
        self.by_node.insert(node.to_string(), conn.clone());
        Ok(conn)
    }

    /// Reads the cluster's slot map.
    async fn read_owners(&mut self) -> redis::RedisResult<()> {
        let Destination::Cluster { seeds, settings } = &self.destination else {
            return Ok(());
        };
        let shards = crate::cluster::discover(seeds, settings)
            .await
            .map_err(|e| redis::RedisError::from(std::io::Error::other(e.to_string())))?;
        let mut owners = vec![None; crate::hash_slot::SLOTS];
        for shard in &shards {
            let Some(primary) = shard.nodes.iter().find(|n| n.primary) else {
                continue;
            };
            for &(start, end) in &shard.slots {
                for slot in start..=end {
                    owners[usize::from(slot)] = Some(format!("{}:{}", primary.host, primary.port));
                }
            }
        }
        self.owners = Some(owners);
        Ok(())
    }

    /// Writes `entries`; returns how many Redis refused. `Err`: a connection failed (it is made again next time).
    async fn write(&mut self, entries: &[Entry], keep: usize) -> redis::RedisResult<usize> {
        if let Destination::Single(target) = &self.destination {
            let node = target.addr();
            let mut conn = self.connection(&node).await?;
            let result = write(&mut conn, entries, keep).await;
            return self.settle(&node, result).map(|refused| refused.len());
        }
        let mut pending: Vec<Entry> = entries.to_vec();
        let mut failed = 0;
        // Once with the map known, and once more with a fresh map for what was redirected.
        for attempt in 0..2 {
            if self.owners.is_none() {
                self.read_owners().await?;
            }
            let owners = self.owners.clone().unwrap_or_default();
            let mut by_node: HashMap<String, Vec<Entry>> = HashMap::new();
            for entry in pending.drain(..) {
                match owners.get(usize::from(crate::hash_slot::slot(entry.key.as_bytes()))) {
                    Some(Some(node)) => by_node.entry(node.clone()).or_default().push(entry),
                    _ => {
                        tracing::warn!(key = %entry.key, "collector: no cluster node serves this key's slot");
                        failed += 1;
                    }
                }
            }
            for (node, group) in &by_node {
                let mut conn = self.connection(node).await?;
                let result = write(&mut conn, group, keep).await;
                for (i, problem) in self.settle(node, result)? {
                    let moved = ["MOVED ", "ASK ", "CLUSTERDOWN", "TRYAGAIN"]
                        .iter()
                        .any(|code| problem.starts_with(code));
                    if moved && attempt == 0 {
                        // Sent again once the map is read anew.
                        pending.push(group[i].clone());
                    } else {
                        failed += 1;
                    }
                }
            }
            if pending.is_empty() {
                break;
            }
            tracing::info!(
                samples = pending.len(),
                "collector: the cluster redirected samples; reading its slots again"
            );
            self.owners = None;
        }
        Ok(failed + pending.len())
    }

    /// Keeps or drops `node`'s connection after a pipeline: a failed connection is made again next time.
    fn settle(
        &mut self,
        node: &str,
        result: redis::RedisResult<Vec<(usize, String)>>,
    ) -> redis::RedisResult<Vec<(usize, String)>> {
        if result.is_err() {
            self.by_node.remove(node);
            // A node gone may mean a failover: read the map again.
            self.owners = None;
        }
        result
    }
}

/// Where samples go: push them, and the writer task takes them to Redis.
#[derive(Clone)]
pub struct Sink {
    queue: Arc<Mutex<Queue>>,
    wake: Arc<Notify>,
}

impl Sink {
    /// Starts the writer for `target`; at most `bound` samples wait in memory while Redis is away.
    pub fn start(
        target: Destination,
        keep: usize,
        bound: usize,
    ) -> (Sink, tokio::task::JoinHandle<()>) {
        let sink = Sink {
            queue: Arc::new(Mutex::new(Queue {
                bound: bound.max(1),
                ..Queue::default()
            })),
            wake: Arc::new(Notify::new()),
        };
        let writer = tokio::spawn(sink.clone().write_forever(target, keep));
        (sink, writer)
    }

    /// Queues one interval's samples, dropping the oldest past the bound.
    pub fn push(&self, entries: Vec<Entry>) {
        let (dropped, queued) = {
            let mut queue = lock(&self.queue);
            let dropped = queue.push(entries);
            (dropped, queue.entries.len())
        };
        if dropped > 0 {
            tracing::debug!(
                dropped,
                queued,
                "collector: queue full, dropped the oldest samples"
            );
        }
        self.wake.notify_one();
    }

    /// Samples waiting to be written.
    pub fn queued(&self) -> usize {
        lock(&self.queue).entries.len()
    }

    async fn write_forever(self, target: Destination, keep: usize) {
        let address = target.address();
        let mut backoff = BACKOFF_FIRST;
        let mut connections = Connections::new(target);
        let mut connected = false;
        loop {
            let (batch, last) = lock(&self.queue).front(MAX_PIPELINE);
            let Some(last) = last else {
                self.wake.notified().await;
                continue;
            };
            let started = std::time::Instant::now();
            match connections.write(&batch, keep).await {
                Ok(failed) => {
                    if !connected {
                        connected = true;
                        backoff = BACKOFF_FIRST;
                        let (queued, dropped) = {
                            let mut queue = lock(&self.queue);
                            (queue.entries.len(), std::mem::take(&mut queue.dropped))
                        };
                        tracing::info!(redis = %address, queued, dropped, "collector: connected to Redis");
                    }
                    tracing::debug!(samples = batch.len(), took = ?started.elapsed(), "collector: wrote");
                    if failed > 0 {
                        tracing::warn!(
                            failed,
                            "collector: Redis refused some samples (see its error above)"
                        );
                    }
                    lock(&self.queue).remove_through(last);
                }
                Err(err) => {
                    let delay = jitter(backoff);
                    let (queued, dropped) = {
                        let queue = lock(&self.queue);
                        (queue.entries.len(), queue.dropped)
                    };
                    match connected {
                        true => tracing::warn!(
                            redis = %address, queued,
                            "collector: lost Redis ({err}); queueing samples and reconnecting"
                        ),
                        false => tracing::warn!(
                            redis = %address, retry_in = ?delay, queued, dropped,
                            "collector: cannot connect to Redis: {err}"
                        ),
                    }
                    connected = false;
                    tokio::time::sleep(delay).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// Writes `entries` once, for `--once`: connects, sends one pipeline per [`MAX_PIPELINE`] samples, and fails on
/// any error.
pub async fn write_now(target: &Destination, entries: &[Entry], keep: usize) -> anyhow::Result<()> {
    let mut connections = Connections::new(target.clone());
    for chunk in entries.chunks(MAX_PIPELINE) {
        let failed = connections.write(chunk, keep).await?;
        anyhow::ensure!(failed == 0, "Redis refused {failed} samples");
    }
    Ok(())
}

async fn connect(target: &RedisTarget) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    target
        .client()?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Sends one transaction per entry in one pipeline; returns the transactions Redis refused (their index and why;
/// the first is logged). `Err` means the connection failed and nothing is known about what was written.
async fn write(
    conn: &mut MultiplexedConnection,
    entries: &[Entry],
    keep: usize,
) -> redis::RedisResult<Vec<(usize, String)>> {
    let trim_to = -(i64::try_from(keep).unwrap_or(i64::MAX - 1) + 1);
    let mut pipe = redis::pipe();
    // Per-command results instead of failing the whole pipeline on one refused transaction (WRONGTYPE, OOM…).
    pipe.ignore_errors();
    for entry in entries {
        pipe.cmd("MULTI")
            .cmd("ZADD")
            .arg(&entry.key)
            .arg(entry.score)
            .arg(&entry.member)
            .cmd("ZREMRANGEBYRANK")
            .arg(&entry.key)
            .arg(0)
            .arg(trim_to)
            .cmd("EXEC");
    }
    let replies: Vec<Value> = pipe.query_async(conn).await?;
    let mut refused = Vec::new();
    for (i, (entry, replies)) in entries.iter().zip(replies.chunks(4)).enumerate() {
        if let Some(problem) = refusal(replies) {
            if refused.is_empty() {
                tracing::warn!(key = %entry.key, "collector: Redis refused a sample: {problem}");
            }
            refused.push((i, problem));
        }
    }
    Ok(refused)
}

/// What went wrong with one transaction's four replies (`OK`, `QUEUED`, `QUEUED`, the `EXEC` array), if anything,
/// as Redis said it (`MOVED 1234 127.0.0.1:7001`).
fn refusal(replies: &[Value]) -> Option<String> {
    let said = |err: &redis::ServerError| match err.details() {
        Some(details) => format!("{} {details}", err.code()),
        None => err.code().to_string(),
    };
    let exec = match replies {
        [_, _, _, exec] => exec,
        _ => return Some("missing replies".into()),
    };
    if let Some(Value::ServerError(err)) =
        replies.iter().find(|r| matches!(r, Value::ServerError(_)))
    {
        return Some(said(err));
    }
    match exec {
        Value::Array(results) => results.iter().find_map(|r| match r {
            Value::ServerError(err) => Some(said(err)),
            _ => None,
        }),
        Value::Nil => Some("transaction aborted".into()),
        other => Some(format!("unexpected EXEC reply {other:?}")),
    }
}

/// The queue's lock; a panic elsewhere while holding it cannot leave it inconsistent (each push or removal is
/// complete), so a poisoned lock is used as is.
fn lock(queue: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    queue
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(score: u64) -> Entry {
        Entry {
            key: "perf:h".into(),
            score,
            member: format!("{{\"t\":{score}}}"),
        }
    }

    #[test]
    fn the_queue_drops_the_oldest_past_its_bound() {
        let mut queue = Queue {
            bound: 3,
            ..Queue::default()
        };
        assert_eq!(queue.push((1..=2).map(entry).collect()), 0);
        assert_eq!(queue.push((3..=5).map(entry).collect()), 2);
        let (batch, last) = queue.front(10);
        assert_eq!(batch, (3..=5).map(entry).collect::<Vec<_>>());
        assert_eq!(queue.dropped, 2);
        // The sampler drops the batch being written (3, 4) meanwhile: removing it must not remove 5.
        let (_, first_two) = queue.front(2);
        queue.push((6..=7).map(entry).collect());
        queue.remove_through(first_two.unwrap());
        assert_eq!(queue.front(10).0, (5..=7).map(entry).collect::<Vec<_>>());
        let (_, through_six) = queue.front(2);
        queue.remove_through(through_six.unwrap());
        assert_eq!(queue.front(10).0, vec![entry(7)]);
        assert!(last.is_some());
    }

    #[test]
    fn refusals() {
        let ok = || Value::Okay;
        let queued = || Value::SimpleString("QUEUED".into());
        let exec = Value::Array(vec![Value::Int(1), Value::Int(0)]);
        assert_eq!(refusal(&[ok(), queued(), queued(), exec]), None);
        assert_eq!(
            refusal(&[ok(), queued(), queued(), Value::Nil]).as_deref(),
            Some("transaction aborted")
        );
        assert!(refusal(&[ok(), queued()]).is_some());
        // As Redis sends it, through the crate's parser.
        let moved = redis::parse_redis_value(b"-MOVED 1234 127.0.0.1:7001\r\n").unwrap();
        assert_eq!(
            refusal(&[moved, queued(), queued(), Value::Nil]).as_deref(),
            Some("MOVED 1234 127.0.0.1:7001")
        );
    }
}
