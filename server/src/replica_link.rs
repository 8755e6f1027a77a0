//! The relay's one replication link: it attaches to Redis as a replica and publishes every command frame, raw and
//! with its offsets, to the [`Backlog`].
//!
//! Handshake as a Redis replica does it: `AUTH`, `PING`, `REPLCONF listening-port`, `REPLCONF capa eof capa psync2`,
//! then `PSYNC`: `? -1` the first time, which gets a full resynchronisation (`+FULLRESYNC <replid> <offset>`), its
//! RDB payload, and then the command stream; after a reconnect, `<replid> <offset+1>`, which Redis answers with
//! `+CONTINUE [<new replid>]` while its own backlog still holds what the link missed — then the relay's backlog and
//! every browser's cursor stay valid. The link answers `REPLCONF GETACK` and acknowledges its offset every second,
//! as Redis expects of a replica (a diskless primary starts the stream only after the first ack). When the link
//! fails it reconnects with exponential backoff and jitter, the delay growing while failures follow each other and
//! starting afresh once the link streamed for [`HEALTHY_AFTER`].
//!
//! The stream itself is cut into batches by [`StreamReader`], which accepts whatever Redis propagates: any argument
//! count Redis accepts and bulks up to the primary's `proto-max-bulk-len`, read from it at each attempt. A stream the
//! relay cannot frame (corrupt, or past those limits) would come again, byte for byte, from the same offset: so the
//! next attempt asks for a full resync, which skips it, rather than resuming there forever.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use replicast_protocol::resp::{MAX_ARGS, MAX_BULK_LEN};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::backlog::{Backlog, Batch};
use crate::backoff::Backoff;
use crate::command_table::CommandTable;
use crate::frames::Kind;
use crate::link_error::LinkError;
use crate::link_io::{encode_command, Blocks, LinkIo, LinkStream};
use crate::metrics::{LinkMetrics, Metrics};
use crate::profile::{LinkProfile, WriteProfile};
use crate::reachable;
use crate::sentinel::Sentinels;
use crate::state::feed::{StateEvent, StateFeed};
use crate::stream_reader::{max_held, Output, StreamReader};
use crate::subscription::Allow;
use crate::sync_payload::read_rdb_payload;
use crate::upstream::{RedisTarget, Upstream};

/// How often the link tells Redis its offset (Redis replicas send `REPLCONF ACK` once a second).
const ACK_INTERVAL: Duration = Duration::from_secs(1);
/// After a diskless full sync, Redis holds the command stream back until the replica's first `REPLCONF ACK` that
/// arrives *after* it has noticed its RDB child finished, which it checks every 100 ms or so. The ACK the link sends
/// the moment the payload ends usually comes before that, and is spent; the next, a second later, would release a
/// second of writes at once. So for a while after a full sync the link acknowledges this often.
const EARLY_ACK_INTERVAL: Duration = Duration::from_millis(50);
const EARLY_ACKS_FOR: Duration = Duration::from_secs(2);
/// Default for how long Redis may stay silent before the link is dropped and re-attached: Redis's own
/// `repl-timeout` default.
pub const LINK_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest delay between reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Following Sentinel, attempts stay closer together: Sentinel names the promoted replica (in
/// `get-master-addr-by-name`) about a second before it announces `+switch-master`, and asking is cheap.
const SENTINEL_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// A link that streamed this long without failing is healthy again: its next failure is retried after
/// [`crate::backoff::BACKOFF_FIRST`], not after the last delay doubled.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// Where the link is in the stream, kept across reconnects to ask for a partial resync.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    replid: String,
    offset: u64,
}

/// What one attempt starts from and leaves for the next.
struct Attempt {
    /// Where the stream was left; `None` before the first sync.
    position: Option<Position>,
    /// Ask for a full resync even with a position: the stream could not be followed past it.
    full_resync: bool,
    /// When the attempt began streaming, if it did.
    streaming_since: Option<Instant>,
    /// The blocks the stream is read into: the ring may still hold slices of those of the last attempt.
    blocks: Blocks,
}

/// One replica link: what it follows, where it writes, and what it tells Redis.
pub struct ReplicaLink {
    /// The node to follow; switched by a failover.
    pub upstream: Arc<Upstream>,
    /// With Sentinel: asked for the current primary before every attempt.
    pub sentinels: Option<Arc<Sentinels>>,
    pub backlog: Arc<Backlog>,
    /// The queue to the relay's state, which is built from each full sync's RDB and every batch on a thread of its
    /// own; `None`: no state, and the link asks for no RDB.
    pub state: Option<StateFeed>,
    /// `--allow`: the backlog keeps only what some session could be sent ([`crate::reachable`]); `None`: every
    /// frame (`replicast record`).
    pub allow: Option<Arc<Allow>>,
    pub metrics: Arc<LinkMetrics>,
    /// The port announced with `REPLCONF listening-port`.
    pub listening_port: u16,
    /// How long Redis may stay silent before the link is taken as dead.
    pub timeout: Duration,
    /// The write profile the stream feeds (`/profile`), if any.
    pub profile: Option<Arc<WriteProfile>>,
}

impl ReplicaLink {
    /// Follows the [`Upstream`] forever, reconnecting after every failure; with Sentinel, asks it for the current
    /// primary before every attempt, and re-attaches as soon as the upstream is switched (a failover).
    pub async fn follow(self) {
        let ReplicaLink {
            upstream,
            sentinels,
            backlog,
            state,
            allow,
            metrics,
            listening_port,
            timeout: link_timeout,
            profile,
        } = self;
        let (state, allow) = (state.as_ref(), allow.as_deref());
        let mut attempt = Attempt {
            position: None,
            full_resync: false,
            streaming_since: None,
            blocks: Blocks::new(backlog.capacity()),
        };
        let mut switched = upstream.subscribe();
        let mut backoff = Backoff::new(match sentinels {
            Some(_) => SENTINEL_BACKOFF_MAX,
            None => BACKOFF_MAX,
        });
        loop {
            let err = match &sentinels {
                Some(sentinels) => match sentinels.primary().await {
                    Ok((host, port)) => {
                        upstream.switch_to(&host, port);
                        None
                    }
                    Err(err) => Some(LinkError::Sentinel(err)),
                },
                None => None,
            };
            let target = switched.borrow_and_update().clone();
            let err = match (err, target) {
                (Some(err), _) => err,
                (None, None) => LinkError::Unnamed,
                (None, Some(target)) => tokio::select! {
                    Err(err) = follow_once(&target, Sink { backlog: &backlog, state, allow }, &metrics, profile.as_ref(), listening_port, link_timeout, &mut attempt) => err,
                    to = next_switch(&mut switched) => LinkError::Switched(to),
                },
            };
            // Whatever ended the attempt, a failure mid-transfer or a switch that cancelled it, a full sync it began
            // will not end: what the state built of its RDB is dropped (after a full sync's end, or none, nothing
            // is), so that a `+CONTINUE` next does not leave it loading until the next full sync.
            if let Some(state) = state {
                state.push(StateEvent::AbandonFullSync);
            }
            let healthy = attempt
                .streaming_since
                .take()
                .is_some_and(|since| since.elapsed() >= HEALTHY_AFTER);
            if healthy || matches!(err, LinkError::Switched(_)) {
                backoff.reset();
            }
            backlog.set_offline();
            Metrics::add(&metrics.link_errors, 1);
            let delay = backoff.after_failure();
            Metrics::set(&metrics.link_failures_in_a_row, backoff.failures);
            Metrics::set(&metrics.link_retry_delay_ms, delay.as_millis() as u64);
            let redis = upstream.addr();
            match &err {
                LinkError::Sentinel(_) => tracing::error!(retry_in = ?delay, "replica link: {err}"),
                LinkError::Stream(_) => {
                    // The same bytes would come again from the same offset; a full resync skips them (what they did is
                    // in its snapshot), once, and whatever follows them is read afresh.
                    Metrics::add(&metrics.link_stream_errors, 1);
                    attempt.full_resync = true;
                    tracing::error!(%redis, retry_in = ?delay,
                    "replica link: {err}; the stream cannot be followed past this point, so the next attempt asks \
                     for a full resync, which skips it");
                }
                _ => tracing::warn!(%redis, retry_in = ?delay, "replica link: {err}"),
            }
            // A switch while waiting (Sentinel announced the new primary) cuts the wait short.
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = next_switch(&mut switched) => backoff.reset(),
            }
        }
    }
}

/// The next address the upstream switches to.
async fn next_switch(switched: &mut tokio::sync::watch::Receiver<Option<RedisTarget>>) -> String {
    if switched.changed().await.is_err() {
        // The upstream is never dropped while the link runs; if it were, no switch would ever come.
        std::future::pending::<()>().await;
    }
    switched
        .borrow()
        .as_ref()
        .map_or_else(|| "(none)".into(), RedisTarget::addr)
}

/// Where the link writes what it reads: the backlog, and the queue to the relay's state if it keeps one.
#[derive(Clone, Copy)]
pub struct Sink<'a> {
    pub backlog: &'a Backlog,
    pub state: Option<&'a StateFeed>,
    /// `--allow`, when the backlog keeps only what some session could be sent.
    pub allow: Option<&'a Allow>,
}

async fn follow_once(
    target: &RedisTarget,
    sink: Sink<'_>,
    metrics: &LinkMetrics,
    profile: Option<&Arc<WriteProfile>>,
    listening_port: u16,
    link_timeout: Duration,
    attempt: &mut Attempt,
) -> Result<std::convert::Infallible, LinkError> {
    let table = CommandTable::fetch(&target.client()).await.map_err(|err| {
        match (err.code(), err.detail()) {
            (Some(code), Some(detail)) => explain(LinkError::Refused {
                command: "COMMAND".into(),
                error: format!("{code} {detail}"),
            }),
            _ => LinkError::Protocol(format!("cannot read COMMAND: {err}")),
        }
    })?;
    let table = Arc::new(table);
    let max_bulk_len = match proto_max_bulk_len(&target.client()).await {
        Ok(len) => len,
        Err(why) => {
            tracing::warn!(redis = %target.addr(),
                "replica link: cannot read proto-max-bulk-len ({why}); taking Redis's default of {MAX_BULK_LEN} \
                 bytes as the longest argument it propagates (allow CONFIG GET to follow another setting)");
            MAX_BULK_LEN
        }
    };
    let stream = TcpStream::connect((target.host.as_str(), target.port)).await?;
    stream.set_nodelay(true)?;
    let stream: Box<dyn LinkStream> = match &target.tls {
        Some(tls) => Box::new(
            tls.connect(&target.host, stream)
                .await
                .map_err(|e| LinkError::Tls(format!("{e:#}")))?,
        ),
        None => Box::new(stream),
    };
    let mut io = LinkIo::new(stream, link_timeout, &mut attempt.blocks);

    if let Some(password) = &target.password {
        let auth = match &target.username {
            Some(user) => io.call(&["AUTH", user, password]).await,
            None => io.call(&["AUTH", password]).await,
        };
        auth.map_err(explain)?;
    }
    io.call(&["PING"]).await.map_err(explain)?;
    io.call(&["REPLCONF", "listening-port", &listening_port.to_string()])
        .await
        .map_err(explain)?;
    io.call(&["REPLCONF", "capa", "eof", "capa", "psync2"])
        .await
        .map_err(explain)?;
    if sink.state.is_none() {
        // Without a state the RDB is of no use: ask for one without keys (Redis 7.0's `rdb-filter-only`, meant
        // for `redis-cli --functions-rdb`). A Redis that does not know it sends the whole RDB, which is skipped.
        match io.call(&["REPLCONF", "rdb-filter-only", ""]).await {
            Ok(_) => tracing::debug!("replica link: Redis sends full syncs without keys"),
            Err(LinkError::Refused { error, .. }) => {
                tracing::debug!("replica link: REPLCONF rdb-filter-only refused ({error}): full syncs carry the dataset, skipped")
            }
            Err(err) => return Err(err),
        }
    }

    let backlog = sink.backlog;
    let position = &mut attempt.position;
    let (replid, next) = match position {
        Some(p) if !attempt.full_resync => (p.replid.clone(), (p.offset + 1).to_string()),
        _ => ("?".to_string(), "-1".to_string()),
    };
    tracing::info!(psync = %format!("{replid} {next}"), "replica link: connected, asking to sync (a full sync may wait for Redis's repl-diskless-sync-delay)");
    let reply = io.call(&["PSYNC", &replid, &next]).await.map_err(explain)?;
    let reply = parse_psync_reply(&reply)?;
    let full_sync = matches!(reply, PsyncReply::FullResync { .. });
    let offset = match reply {
        PsyncReply::Continue { new_replid } => {
            let p = position
                .as_mut()
                .filter(|_| replid != "?")
                .ok_or_else(|| LinkError::Protocol("+CONTINUE to PSYNC ? -1".into()))?;
            match new_replid {
                Some(id) if id != p.replid => {
                    tracing::info!(redis = %target.addr(), old_epoch = %p.replid, epoch = %id, offset = p.offset,
                        "replica link: partial resync under a new replication ID (a failover): the stream continues, browsers keep their place");
                    p.replid = id;
                }
                _ => {
                    tracing::info!(redis = %target.addr(), epoch = %p.replid, offset = p.offset, "replica link: partial resync, streaming")
                }
            }
            if let Some(state) = sink.state {
                state.push(StateEvent::Resume(p.replid.clone()));
            }
            backlog.resume(&p.replid);
            Metrics::add(&metrics.link_partial_syncs, 1);
            p.offset
        }
        PsyncReply::FullResync { replid, offset } => {
            let state = sink.state;
            if let Some(state) = state {
                state.push(StateEvent::BeginFullSync {
                    epoch: replid.clone(),
                    offset,
                });
            }
            // Each chunk is copied: the read buffer is read into again at once. The queue's bound holds here too:
            // the next read waits for room.
            let read = read_rdb_payload(
                &mut io,
                |chunk| {
                    if let Some(state) = state {
                        state.push(StateEvent::Load(Bytes::copy_from_slice(chunk)));
                    }
                },
                move || async move {
                    if let Some(state) = state {
                        state.room().await;
                    }
                },
            )
            .await;
            let rdb_bytes = match (read, state) {
                (Ok(bytes), Some(state)) => {
                    state.push(StateEvent::FinishFullSync);
                    bytes
                }
                (Ok(bytes), None) => bytes,
                // The primary went away mid-transfer: what was built of its RDB is dropped (`follow` tells the
                // state after every attempt).
                (Err(err), _) => return Err(err),
            };
            match position.as_ref() {
                Some(old) => {
                    tracing::warn!(redis = %target.addr(), old_epoch = %old.replid, epoch = %replid, offset, rdb_bytes,
                    "replica link: full resync, a new epoch: every browser re-snapshots")
                }
                None => {
                    tracing::info!(redis = %target.addr(), %replid, offset, rdb_bytes, "replica link: full resync done, streaming")
                }
            }
            backlog.restart(&replid, offset);
            Metrics::add(&metrics.link_full_syncs, 1);
            Metrics::set(&metrics.link_rdb_bytes, rdb_bytes);
            *position = Some(Position { replid, offset });
            attempt.full_resync = false;
            offset
        }
    };
    io.send(&["REPLCONF", "ACK", &offset.to_string()]).await?;
    let Some(position) = attempt.position.as_mut() else {
        return Err(LinkError::Protocol("no position after PSYNC".into()));
    };
    attempt.streaming_since = Some(Instant::now());
    let max_held = max_held(backlog.capacity());
    let reader = StreamReader::new(table, offset, max_held, max_bulk_len);
    let profile = profile.map(WriteProfile::link);
    stream_commands(&mut io, sink, metrics, profile, position, reader, full_sync).await
}

/// The longest argument the followed Redis accepts (`proto-max-bulk-len`), so the longest one a command it
/// propagates can carry; the reason when it cannot be read (an ACL user without `CONFIG GET`, say).
async fn proto_max_bulk_len(client: &redis::RedisResult<redis::Client>) -> Result<usize, String> {
    let client = client.as_ref().map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let reply: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("proto-max-bulk-len")
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    match reply.as_slice() {
        [_, value] => value
            .parse()
            .map_err(|_| format!("not a length: {value:?}")),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

/// Turns Redis's refusals during the handshake into errors that say what to do.
fn explain(err: LinkError) -> LinkError {
    let LinkError::Refused { command, error } = err else {
        return err;
    };
    let hint = match error.split(' ').next().unwrap_or("") {
        "NOAUTH" => "Redis requires a password: give it in the URL, redis://:PASSWORD@host:port",
        "WRONGPASS" => "wrong user or password in the Redis URL",
        "LOADING" => "Redis is loading its dataset into memory; the link retries until it is done",
        "NOMASTERLINK" => {
            "the Redis replica being followed has no link to its primary; the link retries"
        }
        "NOPERM" => {
            "the ACL user lacks a permission the relay needs (+psync +replconf +ping +command and the rest \
             listed in docs/SECURITY.md)"
        }
        "ERR" if error.contains("invalid password") => "wrong password in the Redis URL",
        // Managed services (ElastiCache, Memorystore, Redis Cloud, …) rename or remove the replication commands.
        "ERR"
            if error.contains("unknown command")
                && ["PSYNC", "SYNC", "REPLCONF"]
                    .iter()
                    .any(|c| command.eq_ignore_ascii_case(c)) =>
        {
            "this Redis does not let replicas attach (managed services rename or block PSYNC, SYNC and REPLCONF), so \
             the relay cannot follow it: see \"Which Redis can be followed\" in the README"
        }
        "MASTERDOWN" => {
            "the replica being followed lost its primary and serves no stale data; the link retries"
        }
        _ => return LinkError::Refused { command, error },
    };
    LinkError::Explained {
        command,
        error,
        hint,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum PsyncReply {
    FullResync { replid: String, offset: u64 },
    Continue { new_replid: Option<String> },
}

/// `+FULLRESYNC <replid> <offset>` or `+CONTINUE [<replid>]`.
fn parse_psync_reply(reply: &str) -> Result<PsyncReply, LinkError> {
    let mut words = reply.split(' ');
    let id = |w: Option<&str>| w.filter(|id| id.len() == 40).map(str::to_string);
    match words.next() {
        Some("+FULLRESYNC") => {
            if let (Some(replid), Some(Ok(offset))) =
                (id(words.next()), words.next().map(str::parse::<u64>))
            {
                return Ok(PsyncReply::FullResync { replid, offset });
            }
        }
        Some("+CONTINUE") => {
            let new_replid = words.next();
            if new_replid.is_none() || id(new_replid).is_some() {
                return Ok(PsyncReply::Continue {
                    new_replid: id(new_replid),
                });
            }
        }
        _ => {}
    }
    Err(LinkError::Protocol(format!(
        "expected +FULLRESYNC <replid> <offset> or +CONTINUE [<replid>] to PSYNC, got {reply:?}"
    )))
}

/// Reads the stream into the backlog through `reader`, acknowledging as Redis expects.
async fn stream_commands(
    io: &mut LinkIo<'_>,
    sink: Sink<'_>,
    metrics: &LinkMetrics,
    mut profile: Option<LinkProfile>,
    position: &mut Position,
    mut reader: StreamReader,
    full_sync: bool,
) -> Result<std::convert::Infallible, LinkError> {
    let mut ack = tokio::time::interval(ACK_INTERVAL);
    let mut early_acks = tokio::time::interval(EARLY_ACK_INTERVAL);
    let began = Instant::now();
    let early_until = began
        + if full_sync {
            EARLY_ACKS_FOR
        } else {
            Duration::ZERO
        };
    let mut getacks = Vec::new();
    // The backlog keeps slices of the buffers the stream is read into: none of them holds the handshake or the RDB.
    io.fresh_buffer();
    // The first commands may have come in the same read as the PSYNC reply or the RDB payload's end: they are in
    // `io.buf` already, and waiting for more would hold them until Redis next writes (a second or more).
    let mut wait = io.buf.is_empty();
    loop {
        if wait {
            let early = Instant::now() < early_until;
            tokio::select! {
                read = io.fill() => { read?; }
                _ = ack.tick() => {
                    io.send(&["REPLCONF", "ACK", &position.offset.to_string()]).await?;
                    if began.elapsed() >= HEALTHY_AFTER {
                        Metrics::set(&metrics.link_failures_in_a_row, 0);
                    }
                    continue;
                }
                _ = early_acks.tick(), if early => {
                    io.send(&["REPLCONF", "ACK", &position.offset.to_string()]).await?;
                    continue;
                }
            }
        }
        wait = true;
        let read = reader.read(&mut io.buf, &mut |output| {
            apply(output, sink, metrics, profile.as_mut(), &mut getacks)
        });
        position.offset = reader.offset();
        read?;
        for at in getacks.drain(..) {
            io.writer
                .write_all(&encode_command(&["REPLCONF", "ACK", &at.to_string()]))
                .await?;
        }
        // The state trails: the link reads on while the queue to it is within its bound, and waits here when it
        // is not (the state is never dropped for being slow).
        if let Some(state) = sink.state {
            state.room().await;
        }
    }
}

/// Does what the stream reader says: counts it in the write profile, appends to the backlog and queues it to the
/// state, counts and logs what was withheld, and collects the offsets that `REPLCONF GETACK`s ask for.
pub fn apply(
    output: Output,
    sink: Sink<'_>,
    metrics: &LinkMetrics,
    profile: Option<&mut LinkProfile>,
    getacks: &mut Vec<u64>,
) {
    let backlog = sink.backlog;
    // The state's queue takes the very batch the backlog does (shared, not copied): the state trails the backlog
    // by at most the queue (`state/feed.rs`).
    let append = |batch: Batch| {
        if let Some(state) = sink.state {
            state.push(StateEvent::Batch(batch.clone()));
        }
        backlog.append_batch(batch);
    };
    match output {
        Output::Batch {
            start,
            mut raw,
            index,
        } => {
            if let Some(profile) = profile {
                profile.batch(&raw, &index);
            }
            let end = start + raw.len() as u64;
            let Some(allow) = sink.allow else {
                return append(Batch::read(start, raw.freeze(), index));
            };
            if reachable::whole(&raw, &index, allow) {
                return append(Batch::read(start, raw.freeze(), index));
            }
            let pieces = reachable::pieces(start, &raw, &index, allow);
            // The state reads the batch whole, after the commands left out of the pieces are wiped from the read
            // buffer: it gets a copy, taken before.
            if let Some(state) = sink.state {
                state.push(StateEvent::Batch(Batch::new(start, end, &raw, index, true)));
            }
            // The pieces kept may share the read buffer, which must then hold nothing else of the stream.
            reachable::wipe_unkept(&mut raw, &pieces);
            let raw = raw.freeze();
            for piece in pieces {
                backlog.append_batch(match piece.held {
                    Some((bytes, index)) => Batch::read(piece.start, raw.slice(bytes), index),
                    None => Batch::offsets_only(piece.start, piece.end),
                });
            }
        }
        Output::Unheld {
            command,
            names,
            index,
            why,
        } => {
            Metrics::add(&metrics.link_withheld_commands, 1);
            let (offset, bytes, args) = (command.start, command.end - command.start, command.args);
            let why = why.unwrap_or_default();
            match index.frames.first().map(|f| f.kind) {
                Some(Kind::Withheld) => {
                    tracing::warn!(offset, bytes, args, command = %command.name,
                    keys = index.keys.len(),
                    "replica link: a command too large to forward to browsers (more than {} bytes or {MAX_ARGS} \
                     arguments) passed through without being held; sessions watching the keys it may have written \
                     are told they are stale", max_held(backlog.capacity()))
                }
                Some(Kind::WithheldAll) => {
                    tracing::warn!(offset, bytes, args, command = %command.name,
                    "replica link: a command too large to forward to browsers passed through without being held, \
                     and {why}: every window of its database is stale")
                }
                _ => tracing::info!(offset, bytes, args, command = %command.name,
                    "replica link: a command too large to forward to browsers passed through without being held; \
                     it writes no key a session watches ({why})"),
            }
            if let Some(profile) = profile {
                profile.unheld(&command.name, command.end - command.start, &names, &index);
            }
            append(Batch::new(command.start, command.end, &names, index, false));
        }
        Output::GetAck(at) => getacks.push(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psync_replies_are_understood() {
        let id = "a".repeat(40);
        assert_eq!(
            parse_psync_reply(&format!("+FULLRESYNC {id} 1234")).unwrap(),
            PsyncReply::FullResync {
                replid: id.clone(),
                offset: 1234
            }
        );
        assert_eq!(
            parse_psync_reply("+CONTINUE").unwrap(),
            PsyncReply::Continue { new_replid: None }
        );
        assert_eq!(
            parse_psync_reply(&format!("+CONTINUE {id}")).unwrap(),
            PsyncReply::Continue {
                new_replid: Some(id)
            }
        );
        assert!(parse_psync_reply("+FULLRESYNC short 1").is_err());
        assert!(parse_psync_reply("+CONTINUE short").is_err());
        assert!(parse_psync_reply("+OK").is_err());
    }

    #[test]
    fn refusals_say_what_to_do() {
        let refused = |error: &str| LinkError::Refused {
            command: "PING".into(),
            error: error.into(),
        };
        let msg = explain(refused("NOAUTH Authentication required.")).to_string();
        assert!(msg.contains("give it in the URL"), "{msg}");
        let msg = explain(refused("LOADING Redis is loading the dataset in memory")).to_string();
        assert!(msg.contains("retries"), "{msg}");
        assert!(matches!(
            explain(refused("ERR something")),
            LinkError::Refused { .. }
        ));
    }

    #[test]
    fn a_blocked_replication_command_points_at_which_redis_can_be_followed() {
        for command in ["PSYNC", "REPLCONF", "SYNC"] {
            let refused = LinkError::Refused {
                command: command.into(),
                error: format!(
                    "ERR unknown command '{}', with args beginning with: '?' '-1'",
                    command.to_lowercase()
                ),
            };
            let msg = explain(refused).to_string();
            assert!(
                msg.contains("Which Redis can be followed") && msg.contains("cannot follow it"),
                "{msg}"
            );
        }
        // Another command unknown to Redis is not about replication.
        let other = LinkError::Refused {
            command: "PING".into(),
            error: "ERR unknown command 'PING'".into(),
        };
        assert!(matches!(explain(other), LinkError::Refused { .. }));
    }
}
