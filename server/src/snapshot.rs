//! Exact snapshots for joining browsers: the newest window of each subscribed key, read atomically with the
//! replication offset it corresponds to.
//!
//! One `MULTI` holds the bounded reads (`ZRANGE key -N -1 WITHSCORES`, `LRANGE key -N -1`, `XREVRANGE key + -
//! COUNT N`, `HGETALL`, `GET`) and `INFO replication`, on the node the link follows; `EXEC` runs them with no write
//! in between, so the snapshot is Redis's state at exactly `master_repl_offset`, and the browser continues with the
//! frames after that offset. The snapshot travels as RESP commands (`DEL key` then `ZADD`/`RPUSH`/`HSET`/`SET`/`XADD`)
//! that rebuild each window, so the browser applies it with the same code as the stream.
//!
//! Keys of a *pattern* are listed with `SCAN` before the `MULTI`, so a key created in between would be in neither
//! the snapshot nor the stream after it: the keys are listed again after `EXEC`, and the snapshot is read again
//! with any new ones (up to [`RELISTS`] times; keys still appearing after that follow as top-ups). Sets are not
//! windowed by Redis in any order, so a set key's snapshot is empty and it fills from the stream. A stream whose
//! entries are all gone still exists, and is given as `XTRIM key MAXLEN 0`.

use std::collections::BTreeSet;
use std::sync::Arc;

use redis::Value;
use thiserror::Error;
use tokio::sync::Semaphore;

use crate::link_io::push_command;
use crate::subscription::{Allow, Subscription};
use crate::upstream::Upstream;

/// Most keys one snapshot reads.
pub const MAX_SNAPSHOT_KEYS: usize = 10_000;
/// Largest snapshot part, in bytes of its RESP encoding.
pub const MAX_SNAPSHOT_BYTES: usize = 64 * 1024 * 1024;
/// Window items one snapshot part reads at most (keys × window): ~36 MB of 900-byte perf samples. A subscription
/// with more (1,000 hosts × 120 samples, 200 hosts × 600) is read in parts, one `MULTI`…`EXEC` each, so neither
/// Redis's reply nor the relay's memory holds it all at once.
const PART_ITEMS: usize = 40_000;
/// Snapshots read at once; the others wait, so a thousand joining browsers do not open a thousand connections.
const CONCURRENT_SNAPSHOTS: usize = 8;
/// Times a snapshot is read again when a key changed type between `TYPE` and `EXEC`.
const ATTEMPTS: usize = 3;
/// How long one reply may take. A snapshot's `EXEC` can carry tens of megabytes (1,000 hosts × 120 samples is
/// ~31 MB), far past the `redis` crate's default of 500 ms on a busy machine.
const RESPONSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Times a snapshot is read again when keys of its patterns appeared while it was read.
const RELISTS: usize = 3;
/// Pause before reading again when a cluster key was not on this node.
const RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(300);

/// A cluster shard's snapshot in one atomic step. `MULTI` cannot do it there: Redis Cluster refuses a transaction
/// whose keys are in several slots, even on one node. A script flagged `allow-cross-slot-keys` (Redis 7.0+) and
/// `no-writes` (so it runs on a replica) reads each key's type and window, then `INFO replication`, with nothing in
/// between. `ARGV` is the window, then the keys (undeclared: Redis checks each one's ACL as it is read). Returns
/// `info, type, window, type, window, …`; a key of another type returns its type as its window.
const READ_SCRIPT: &str = "#!lua flags=no-writes,allow-cross-slot-keys
local n = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV do
  local key = ARGV[i]
  local kind = redis.call('TYPE', key).ok
  local value = kind
  if kind == 'zset' then value = redis.call('ZRANGE', key, -n, -1, 'WITHSCORES')
  elseif kind == 'list' then value = redis.call('LRANGE', key, -n, -1)
  elseif kind == 'stream' then value = redis.call('XREVRANGE', key, '+', '-', 'COUNT', n)
  elseif kind == 'hash' then value = redis.call('HGETALL', key)
  elseif kind == 'string' then value = redis.call('GET', key)
  end
  out[2 * i - 2] = kind
  out[2 * i - 1] = value
end
out[1] = redis.call('INFO', 'replication')
return out
";

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("snapshot read failed: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the subscription matches more than {MAX_SNAPSHOT_KEYS} keys; narrow its patterns")]
    TooManyKeys,
    #[error(
        "one key's window exceeds {MAX_SNAPSHOT_BYTES} bytes; ask for a smaller window or fewer keys"
    )]
    TooLarge,
    #[error("unexpected reply while reading the snapshot: {0}")]
    Reply(String),
    #[error("keys kept changing type (or, in a cluster, shard) while the snapshot was read")]
    Unstable,
    /// The node refused the cluster read script (an ACL without `EVAL`, a Redis before 7.0).
    #[error("the read script was refused: {0}")]
    NoScript(String),
}

/// A snapshot: RESP commands rebuilding the windows, valid at replication `offset` of stream `epoch`.
#[derive(Debug)]
pub struct Snapshot {
    pub epoch: String,
    pub offset: u64,
    /// Shared, not copied, by the sessions a snapshot of the relay's state serves.
    pub commands: bytes::Bytes,
    pub keys: usize,
    /// Keys left for later parts: the caller reads them as top-ups, each placed at its own offset.
    pub rest: Vec<Vec<u8>>,
}

/// Whether a key lives on the node a snapshotter reads (in a cluster: whether its slot is the shard's now).
pub type KeyFilter = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

pub struct Snapshotter {
    /// The node the link follows now: it changes with a failover, and snapshots follow it.
    upstream: Arc<Upstream>,
    permits: Semaphore,
    /// Following one shard of a cluster: the keys this shard owns now; reads go to it with `READONLY` (its node
    /// may be a replica).
    shard: Option<KeyFilter>,
}

impl Snapshotter {
    /// Reads from the node `upstream` follows now; in a cluster shard, only the keys `owns` says are the shard's.
    pub fn new(upstream: Arc<Upstream>, owns: Option<KeyFilter>) -> Self {
        Snapshotter {
            upstream,
            permits: Semaphore::new(CONCURRENT_SNAPSHOTS),
            shard: owns,
        }
    }

    /// The windows of every key the subscription watches (and `allow` allows), for a joining session.
    pub async fn take(&self, sub: &Subscription, allow: &Allow) -> Result<Snapshot, SnapshotError> {
        self.read(sub.db, sub.window, Keys::Watched(sub, allow))
            .await
    }

    /// The windows of these keys only, for a session's top-up; the caller checked they are wanted and allowed.
    pub async fn take_keys(
        &self,
        db: u32,
        window: usize,
        keys: Vec<Vec<u8>>,
    ) -> Result<Snapshot, SnapshotError> {
        if keys.len() > MAX_SNAPSHOT_KEYS {
            return Err(SnapshotError::TooManyKeys);
        }
        self.read(db, window, Keys::Given(keys)).await
    }

    /// A top-up after slots moved to this shard: the keys the subscription watches in `slots`, found on this
    /// node now, and `keys`.
    pub async fn take_slots(
        &self,
        sub: &Subscription,
        allow: &Allow,
        slots: BTreeSet<u16>,
        keys: Vec<Vec<u8>>,
    ) -> Result<Snapshot, SnapshotError> {
        self.read(sub.db, sub.window, Keys::InSlots(sub, allow, slots, keys))
            .await
    }

    async fn read(
        &self,
        db: u32,
        window: usize,
        which: Keys<'_>,
    ) -> Result<Snapshot, SnapshotError> {
        let started = std::time::Instant::now();
        let read = self.read_now(db, window, which).await;
        crate::timings::observe(&crate::timings::SNAPSHOT_DURATION, started.elapsed());
        read
    }

    async fn read_now(
        &self,
        db: u32,
        window: usize,
        which: Keys<'_>,
    ) -> Result<Snapshot, SnapshotError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| SnapshotError::Reply(e.to_string()))?;
        // A connection of its own: SELECT must not leak into anyone else's reads.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let mut conn = self
            .upstream
            .client()?
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        if self.shard.is_some() {
            // The shard's node may be a replica: without READONLY it redirects every read to its primary.
            redis::cmd("READONLY").query_async::<()>(&mut conn).await?;
        }
        redis::cmd("SELECT")
            .arg(db)
            .query_async::<()>(&mut conn)
            .await?;
        let mut keys = self.list(&mut conn, &which).await?;
        // Keys listed by pattern: a key created after its `SCAN` and before the `MULTI` is in neither the snapshot
        // nor the stream after it. So they are listed again once the snapshot is read, and if new ones are found
        // the snapshot is read again with them (a few times at most; past that, they follow as top-ups).
        let mut listed: Option<BTreeSet<Vec<u8>>> =
            (!matches!(which, Keys::Given(_))).then(|| keys.iter().cloned().collect());
        let mut relists = 0;
        let mut part = (PART_ITEMS / window.max(1)).max(1);
        let mut attempts = 0;
        // In a cluster, one MULTI may only touch one slot: a script reads across slots, or, where scripts are not
        // allowed, each part holds the keys of one slot.
        let mut by_slot = false;
        loop {
            if by_slot {
                keys.sort_by_key(|k| crate::hash_slot::slot(k));
                let slot = keys.first().map(|k| crate::hash_slot::slot(k));
                part = part.min(
                    keys.iter()
                        .take_while(|k| Some(crate::hash_slot::slot(k)) == slot)
                        .count()
                        .max(1),
                );
            }
            let rest = keys.split_off(part.min(keys.len()));
            let read = match self.shard.is_some() && !by_slot {
                true => read_by_script(&mut conn, &keys, window).await,
                false => read_once(&mut conn, &keys, window).await,
            };
            match read {
                Ok(Some(mut snapshot)) => {
                    let mut new = Vec::new();
                    if let Some(listed) = &mut listed {
                        new = self.list(&mut conn, &which).await?;
                        new.retain(|k| !listed.contains(k));
                        listed.extend(new.iter().cloned());
                    }
                    if new.is_empty() || relists == RELISTS {
                        snapshot.rest = rest;
                        snapshot.rest.extend(new);
                        return Ok(snapshot);
                    }
                    relists += 1;
                    keys.extend(new);
                }
                // Larger items than the estimate: fewer keys in this part.
                Err(SnapshotError::TooLarge) if keys.len() > 1 => part = keys.len() / 2,
                Err(SnapshotError::NoScript(why)) => {
                    tracing::debug!("cluster snapshots read one slot per MULTI: the read script is refused ({why})");
                    by_slot = true;
                }
                Err(err) => return Err(err),
                Ok(None) => {
                    attempts += 1;
                    if attempts == ATTEMPTS {
                        return Err(SnapshotError::Unstable);
                    }
                    // In a cluster: a key whose slot left this node a moment before the view said so.
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
            keys.extend(rest);
        }
    }
}

impl Snapshotter {
    /// The keys `which` names now (a pattern's by `SCAN`), those this shard owns only.
    async fn list(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        which: &Keys<'_>,
    ) -> Result<Vec<Vec<u8>>, SnapshotError> {
        let mut keys = match which {
            Keys::Watched(sub, allow) => list_keys(conn, sub, allow).await?,
            Keys::Given(keys) => keys.clone(),
            Keys::InSlots(sub, allow, slots, given) => {
                let mut keys = list_keys(conn, sub, allow).await?;
                keys.retain(|k| slots.contains(&crate::hash_slot::slot(k)));
                keys.extend(given.iter().cloned());
                keys.sort_unstable();
                keys.dedup();
                keys
            }
        };
        if let Some(owns) = &self.shard {
            // A cluster node answers MOVED for a key it does not hold, which would fail the whole read.
            keys.retain(|k| owns(k));
        }
        Ok(keys)
    }
}

/// Which keys a snapshot reads.
enum Keys<'a> {
    /// Every key a subscription watches now, that the relay allows.
    Watched(&'a Subscription, &'a Allow),
    Given(Vec<Vec<u8>>),
    /// The watched keys in these slots, and the given keys.
    InSlots(&'a Subscription, &'a Allow, BTreeSet<u16>, Vec<Vec<u8>>),
}

/// The subscription's explicit keys and the keys its patterns match now, allowed ones only.
async fn list_keys(
    conn: &mut redis::aio::MultiplexedConnection,
    sub: &Subscription,
    allow: &Allow,
) -> Result<Vec<Vec<u8>>, SnapshotError> {
    let mut keys: BTreeSet<Vec<u8>> = sub
        .keys
        .iter()
        .filter(|k| allow.allows(k))
        .cloned()
        .collect();
    for pattern in &sub.patterns {
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern.as_bytes())
                .arg("COUNT")
                .arg(1000)
                .query_async(conn)
                .await?;
            keys.extend(batch.into_iter().filter(|k| allow.allows(k)));
            if keys.len() > MAX_SNAPSHOT_KEYS {
                return Err(SnapshotError::TooManyKeys);
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(keys.into_iter().collect())
}

/// One attempt with [`READ_SCRIPT`]; `None` when a key is not on this node (its slot just moved).
async fn read_by_script(
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &[Vec<u8>],
    window: usize,
) -> Result<Option<Snapshot>, SnapshotError> {
    // The keys go as arguments: Redis Cluster refuses declared keys of several slots before the script runs.
    let mut eval = redis::cmd("EVAL");
    eval.arg(READ_SCRIPT).arg(0).arg(window);
    for key in keys {
        eval.arg(key);
    }
    let reply: Value = match eval.query_async(conn).await {
        Ok(reply) => reply,
        Err(err) if err.to_string().contains("non local key") || err.redirect_node().is_some() => {
            return Ok(None)
        }
        Err(err)
            if err.code() == Some("NOPERM")
                || err.code() == Some("NOSCRIPT")
                || err.to_string().contains("shebang")
                || err.to_string().contains("Error compiling script") =>
        {
            return Err(SnapshotError::NoScript(err.to_string()))
        }
        Err(err) => return Err(err.into()),
    };
    let Value::Array(items) = reply else {
        return Err(SnapshotError::Reply(
            "the read script returned no array".into(),
        ));
    };
    let Some((info, reads)) = items.split_first() else {
        return Err(SnapshotError::Reply(
            "the read script returned nothing".into(),
        ));
    };
    if reads.len() != 2 * keys.len() {
        return Err(SnapshotError::Reply(format!(
            "the read script returned {} values for {} keys",
            reads.len(),
            keys.len()
        )));
    }
    let mut kinds = Vec::with_capacity(keys.len());
    for read in reads.chunks_exact(2) {
        kinds.push(
            text(&read[0]).ok_or_else(|| SnapshotError::Reply("a type that is not text".into()))?,
        );
    }
    // A missing key is type "none", rebuilt as its DEL alone.
    let windows = reads.chunks_exact(2).map(|read| &read[1]);
    snapshot_of(keys, &kinds, windows, info)
}

/// The snapshot of `keys` from each one's type and window, read at once with `INFO replication`; `None` when a
/// window does not fit its type (the key changed type between `TYPE` and the read).
fn snapshot_of<'v>(
    keys: &[Vec<u8>],
    kinds: &[impl AsRef<str>],
    windows: impl Iterator<Item = &'v Value>,
    info: &Value,
) -> Result<Option<Snapshot>, SnapshotError> {
    let (epoch, offset) = replication(info)?;
    let mut commands = Vec::new();
    for ((key, kind), window) in keys.iter().zip(kinds).zip(windows) {
        if !rebuild(&mut commands, key, kind.as_ref(), window) {
            return Ok(None);
        }
        if commands.len() > MAX_SNAPSHOT_BYTES {
            return Err(SnapshotError::TooLarge);
        }
    }
    Ok(Some(Snapshot {
        epoch,
        offset,
        commands: commands.into(),
        keys: keys.len(),
        rest: Vec::new(),
    }))
}

/// The replication ID and offset in an `INFO replication` reply.
fn replication(info: &Value) -> Result<(String, u64), SnapshotError> {
    let info =
        text(info).ok_or_else(|| SnapshotError::Reply("INFO replication is not text".into()))?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .ok_or_else(|| SnapshotError::Reply(format!("INFO replication has no {name}")))
    };
    let epoch = field("master_replid:")?;
    let offset = field("master_repl_offset:")?
        .parse()
        .map_err(|_| SnapshotError::Reply("master_repl_offset is not a number".into()))?;
    Ok((epoch, offset))
}

/// One attempt; `None` when a key's type changed between `TYPE` and `EXEC` (a read then failed).
async fn read_once(
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &[Vec<u8>],
    window: usize,
) -> Result<Option<Snapshot>, SnapshotError> {
    let mut types = redis::pipe();
    for key in keys {
        types.cmd("TYPE").arg(key);
    }
    let types: Vec<String> = if keys.is_empty() {
        Vec::new()
    } else {
        types.query_async(conn).await?
    };

    let newest = -(window as i64);
    let mut reads = redis::pipe();
    reads.atomic();
    for (key, kind) in keys.iter().zip(&types) {
        match kind.as_str() {
            "zset" => reads
                .cmd("ZRANGE")
                .arg(key)
                .arg(newest)
                .arg(-1)
                .arg("WITHSCORES"),
            "list" => reads.cmd("LRANGE").arg(key).arg(newest).arg(-1),
            "stream" => reads
                .cmd("XREVRANGE")
                .arg(key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(window),
            "hash" => reads.cmd("HGETALL").arg(key),
            "string" => reads.cmd("GET").arg(key),
            // Sets and module types: only confirm the type, so a change is still noticed.
            _ => reads.cmd("TYPE").arg(key),
        };
    }
    reads.cmd("INFO").arg("replication");
    let replies: Vec<Value> = match reads.query_async(conn).await {
        Ok(replies) => replies,
        Err(err) if wrong_type(&err) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let Some((info, values)) = replies.split_last() else {
        return Err(SnapshotError::Reply("empty EXEC reply".into()));
    };
    snapshot_of(keys, &types, values.iter(), info)
}

/// Whether a read failed because its key changed type after `TYPE`: Redis's WRONGTYPE, which the `redis` crate
/// reports from a transaction's replies as one of a pipeline's failures.
fn wrong_type(err: &redis::RedisError) -> bool {
    err.code() == Some("WRONGTYPE")
        || err
            .clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == "WRONGTYPE"))
}

/// Appends the commands that rebuild `key`'s window from its read; `false` if the read does not fit the type.
fn rebuild(out: &mut Vec<u8>, key: &[u8], kind: &str, value: &Value) -> bool {
    push_command(out, &[b"DEL", key]);
    fn items(value: &Value) -> Option<Vec<&[u8]>> {
        match value {
            Value::Array(items) => items.iter().map(bytes).collect(),
            _ => None,
        }
    }
    let mut command: Vec<&[u8]> = Vec::new();
    match kind {
        "zset" => {
            let Some(flat) = items(value) else {
                return false;
            };
            command.extend([&b"ZADD"[..], key]);
            // WITHSCORES gives member, score pairs; ZADD wants score, member.
            for pair in flat.chunks_exact(2) {
                command.extend([pair[1], pair[0]]);
            }
        }
        "list" => {
            let Some(list) = items(value) else {
                return false;
            };
            command.extend([&b"RPUSH"[..], key]);
            command.extend(list);
        }
        "hash" => {
            let Some(flat) = items(value) else {
                return false;
            };
            command.extend([&b"HSET"[..], key]);
            command.extend(flat);
        }
        "string" => match value {
            Value::BulkString(v) => command.extend([&b"SET"[..], key, v.as_slice()]),
            Value::Nil => return true,
            _ => return false,
        },
        "stream" => {
            let Value::Array(entries) = value else {
                return false;
            };
            if entries.is_empty() {
                // A stream whose entries are all gone still exists.
                push_command(out, &[b"XTRIM", key, b"MAXLEN", b"0"]);
            }
            // XREVRANGE is newest first; rebuild oldest first.
            for entry in entries.iter().rev() {
                let Value::Array(parts) = entry else {
                    return false;
                };
                let (Some(id), Some(fields)) =
                    (parts.first().and_then(bytes), parts.get(1).and_then(items))
                else {
                    return false;
                };
                let mut xadd: Vec<&[u8]> = vec![b"XADD", key, id];
                xadd.extend(fields);
                push_command(out, &xadd);
            }
            return true;
        }
        _ => return text(value).is_some_and(|t| t == kind),
    }
    if command.len() > 2 {
        push_command(out, &command);
    }
    true
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn text(value: &Value) -> Option<&str> {
    match value {
        Value::Okay => Some("OK"),
        other => std::str::from_utf8(bytes(other)?).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn windows_are_rebuilt_as_commands() {
        let mut out = Vec::new();
        let zrange = Value::Array(vec![bulk("a"), bulk("1.5"), bulk("b"), bulk("2")]);
        assert!(rebuild(&mut out, b"z", "zset", &zrange));
        assert_eq!(
            out,
            b"*2\r\n$3\r\nDEL\r\n$1\r\nz\r\n*6\r\n$4\r\nZADD\r\n$1\r\nz\r\n$3\r\n1.5\r\n$1\r\na\r\n$1\r\n2\r\n$1\r\nb\r\n"
        );
        let mut out = Vec::new();
        let xrevrange = Value::Array(vec![
            Value::Array(vec![
                bulk("2-0"),
                Value::Array(vec![bulk("f"), bulk("new")]),
            ]),
            Value::Array(vec![
                bulk("1-0"),
                Value::Array(vec![bulk("f"), bulk("old")]),
            ]),
        ]);
        assert!(rebuild(&mut out, b"s", "stream", &xrevrange));
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.find("1-0").unwrap() < text.find("2-0").unwrap(),
            "oldest first: {text}"
        );
        // A stream without entries exists all the same: trimmed to nothing.
        let mut out = Vec::new();
        assert!(rebuild(&mut out, b"e", "stream", &Value::Array(vec![])));
        assert_eq!(
            out,
            b"*2\r\n$3\r\nDEL\r\n$1\r\ne\r\n*4\r\n$5\r\nXTRIM\r\n$1\r\ne\r\n$6\r\nMAXLEN\r\n$1\r\n0\r\n"
        );
    }

    #[test]
    fn a_read_that_does_not_fit_its_type_asks_for_a_retry() {
        assert!(!rebuild(
            &mut Vec::new(),
            b"k",
            "zset",
            &bulk("not an array")
        ));
        assert!(rebuild(&mut Vec::new(), b"k", "string", &Value::Nil));
        assert!(!rebuild(&mut Vec::new(), b"k", "set", &bulk("zset")));
    }
}
