//! One session's stream of one shard: after the join, the frames of the shard's backlog that concern the session,
//! from its own cursor on, with the top-ups it asked for placed exactly where they were read, the stale messages of
//! the keys the relay could not follow, a hello when a failover renamed the stream, and a new join when the link
//! had to resync in full.
//!
//! A top-up read at offset `X` is delivered exactly there: the frames before `X`, then the snapshot, then the
//! frames from `X` on, so the browser's windows stay equal to Redis at every offset.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use bytes::Bytes;
use futures_util::Sink;
use replicast_protocol::wire;
use tokio::sync::{mpsc, watch, Mutex};
use tokio::time::Instant;

use crate::backlog::{Batch, Read, Stream as BacklogStream, WatchedRead};
use crate::metrics::Metrics;
use crate::relay::Relay;
use crate::shard::Shard;
use crate::subscription::{Allow, Delivery, Stale, Subscription};
use crate::timings::{observe, JOIN_DURATION};
use crate::watchers::Watch;

use super::join::{join, Resume, Start};
use super::snapshot_source::STATE_WAIT;
use super::socket::{send, Close, CLOSE_TRY_AGAIN};
use super::topups::{ReadyTopup, Topups};

/// Stream bytes a session takes from the backlog per read: enough to batch, small enough to stay fair.
const READ_BUDGET: usize = 1024 * 1024;
/// With nothing for it in the stream, a session still learns how far the stream went this often, so a later
/// resume starts from a recent offset.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Requests a browser may have queued for a shard's stream before the relay stops reading it.
pub(crate) const REQUEST_QUEUE: usize = 16;
/// Digest requests one session may have waiting; more are refused.
const MAX_PENDING_DIGESTS: usize = 16;

/// What the browser's side of a session hands a shard's stream.
pub(crate) enum Inbound {
    /// Keys to top up; with `since`, a past message goes before their snapshot.
    Topup {
        keys: Vec<Vec<u8>>,
        since: Option<u64>,
    },
    /// A message to send as it is: the ack of an event, a notice.
    Forward(Vec<u8>),
    /// Slots that moved to this shard of a cluster: top up the watched keys in them.
    Slots(BTreeSet<u16>),
    /// A digest of the session's windows, from the relay's state, under this request id.
    Digest(String),
}

/// The browser's socket as one shard's stream writes to it: shared by the session's streams, one message at a
/// time, and, in a cluster, each of the shard's hellos, commands, snapshots and stale messages in its envelope.
pub(crate) struct ShardSink<'s, W> {
    pub socket: &'s Mutex<&'s mut W>,
    /// The shard's index in the session's envelopes; `None` for one Redis, whose messages go as they are.
    pub envelope: Option<u16>,
    /// Set once a message of the stream was sent: its hello, which comes first (the join sends nothing before it).
    pub greeted: Arc<AtomicBool>,
}

impl<W: Sink<Message> + Unpin> ShardSink<'_, W> {
    pub(crate) async fn send(&self, metrics: &Metrics, message: Bytes) -> Result<(), Close> {
        let message = match self.envelope {
            Some(index) if wire::is_shard_stream(&message) => {
                Bytes::from(wire::encode_shard(index, &message))
            }
            _ => message,
        };
        let mut socket = self.socket.lock().await;
        send(&mut **socket, metrics, message).await?;
        self.greeted.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// A commands message being built: begun by the first segment pushed into it.
#[derive(Default)]
struct Commands(Vec<u8>);

impl Commands {
    /// Adds the run of frames `bytes` that starts at offset `start` (none: "the stream reached `start`").
    fn push(&mut self, start: u64, bytes: &[u8]) {
        if self.0.is_empty() {
            self.0 = wire::begin_commands();
        }
        wire::push_segment(&mut self.0, start, bytes);
    }

    /// The message built so far, if anything was pushed; the next push begins another.
    fn take(&mut self) -> Option<Bytes> {
        (!self.0.is_empty()).then(|| Bytes::from(std::mem::take(&mut self.0)))
    }
}

pub(crate) struct ShardStream<'a, 's, W> {
    sink: ShardSink<'s, W>,
    relay: &'a Relay,
    shard: &'a Shard,
    sub: &'a Subscription,
    requests: mpsc::Receiver<Inbound>,
    /// The stream followed: its epoch changes with a failover, its generation with a full resync.
    current: BacklogStream,
    /// The offset up to which the session has been sent the stream.
    cursor: u64,
    topups: Topups,
    /// Digest requests not answered yet (their ids): each waits for the top-ups' place in the stream to be free.
    digests: VecDeque<String>,
    /// Wakes when the backlog grows: while a top-up or digest waits for its place in the stream.
    changed: watch::Receiver<u64>,
    /// Rung by the batches that may concern the session: otherwise.
    watch: Watch<'a>,
    /// Whether the last read found nothing after the cursor, and the cursor has not moved since: the bell then
    /// tells how far the session may skip (watchers.rs).
    caught_up: bool,
    /// When a session that nothing concerned looks how far the stream went, for its progress message.
    next_progress: Instant,
    /// The backlog's count of renames when last looked at.
    renames: u64,
    last_sent: Instant,
    /// Set when the shard left the cluster.
    retired: watch::Receiver<bool>,
    /// Where the shard's backlog ended when the shard left the cluster: the stream goes on to there (the batches a
    /// session behind had not been sent, and a top-up read in them), then ends.
    end: Option<u64>,
}

impl<'a, 's, W: Sink<Message> + Unpin> ShardStream<'a, 's, W> {
    /// Joins the shard's stream (resuming at one of `resume` if it can) and streams it until the browser or the
    /// relay goes, or, when the shard leaves the cluster, to where its backlog ended then; returns how the session
    /// should close. With `notices`, the browser is told once which of its keys `--allow` never lets leave (a
    /// session over several shards sends it from one).
    #[allow(clippy::too_many_arguments)]
    pub async fn run(
        sink: ShardSink<'s, W>,
        relay: &'a Relay,
        shard: &'a Shard,
        sub: &'a Subscription,
        resume: &[Resume],
        requests: mpsc::Receiver<Inbound>,
        notices: bool,
        mut retired: watch::Receiver<bool>,
    ) -> Result<(), Close> {
        let joining = std::time::Instant::now();
        let mut changed = shard.backlog.changed();
        // Read before the join, so that a failover after it is noticed.
        let renames = shard.backlog.renames();
        // A shard that leaves before the session joined it has nothing of the session's to finish.
        let joined = tokio::select! {
            joined = join(relay, shard, sub, resume, &mut changed) => joined?,
            _ = retired.wait_for(|gone| *gone) => None,
        };
        let Some((current, start)) = joined else {
            return Ok(());
        };
        // Patterns may match any key: only a session of exact keys is rung by its keys alone.
        let keys = sub
            .patterns
            .is_empty()
            .then(|| sub.keys.iter().cloned().collect());
        let mut stream = ShardStream {
            sink,
            relay,
            shard,
            sub,
            requests,
            current,
            cursor: start.offset,
            topups: Topups::default(),
            digests: VecDeque::new(),
            changed,
            watch: shard.backlog.watch(keys),
            caught_up: false,
            next_progress: Instant::now() + PROGRESS_INTERVAL,
            renames,
            last_sent: Instant::now(),
            retired,
            end: None,
        };
        stream.greet(start, notices).await?;
        observe(&JOIN_DURATION, joining.elapsed());
        stream.follow().await
    }

    /// The hello of a join (continuing the epoch the browser resumed from, if the stream was renamed since), its
    /// snapshot if it did not resume, and the notice of keys never sent.
    async fn greet(&mut self, mut start: Start, notices: bool) -> Result<(), Close> {
        let hello =
            wire::encode_hello_continuing(&self.current.epoch, &start.previous, start.offset);
        self.send(hello).await?;
        if let Some(snapshot) = start.snapshot.take() {
            self.send(snapshot).await?;
        }
        // Sent: the turn goes to the next joining session.
        drop(start.sending.take());
        if notices {
            if let Some(text) = disallowed_notice(self.sub, &self.relay.allow) {
                self.send(wire::encode_notice(&text)).await?;
            }
        }
        self.topups = Topups::with_keys(start.rest);
        Ok(())
    }

    /// Streams from the cursor on until the browser or the relay goes, or the shard left the cluster and the
    /// session was sent its backlog to where it ended then.
    async fn follow(&mut self) -> Result<(), Close> {
        loop {
            while let Ok(inbound) = self.requests.try_recv() {
                self.answer(inbound).await?;
            }
            if self.end.is_none() && *self.retired.borrow() {
                // Nothing more comes from the shard; what its backlog holds past the cursor is the session's still.
                self.end = Some(self.shard.backlog.extent().1);
            }
            // The shard's node is gone: no top-up is read of it any more (one read already is placed below).
            if self.end.is_none() {
                if let Some(text) = self
                    .topups
                    .read(
                        self.relay,
                        self.shard,
                        self.sub,
                        &self.current.epoch,
                        self.cursor,
                    )
                    .await
                {
                    self.send(wire::encode_notice(&text)).await?;
                }
            }
            self.digest().await?;
            // A top-up read at the cursor itself (the stream was idle) goes out at once.
            let cursor = self.cursor;
            if let Some(ready) = self.topups.take_ready_if(|at| at == cursor) {
                self.place_topup(&mut Commands::default(), ready).await?;
                self.last_sent = Instant::now();
            }
            if self.end.is_some_and(|end| self.cursor >= end) {
                // The session is told how far the stream went (a top-up read past it is not due).
                let mut message = Commands::default();
                message.push(self.cursor, &[]);
                if let Some(message) = message.take() {
                    self.send(message).await?;
                }
                return Ok(());
            }
            // Mark the version seen *before* reading, so an append between the read and the wait still wakes us.
            self.changed.borrow_and_update();
            // A top-up or digest waits for the stream to reach its place, which batches that concern no key of the
            // session may be the ones to reach: the session then reads every batch, and wakes with every append.
            let rung_only = self.topups.place_free() && self.digests.is_empty();
            let read = self.shard.backlog.read_watched(
                &self.current,
                self.cursor,
                READ_BUDGET,
                &self.watch.bell,
                self.caught_up && rung_only,
            );
            let read = match read {
                WatchedRead::Skipped { to, caught_up } => {
                    self.cursor = to;
                    self.caught_up = caught_up;
                    // Nothing to send but, when due, how far the stream went, or a failover's new name.
                    self.forward(&[]).await?;
                    continue;
                }
                WatchedRead::Read(read) => read,
            };
            self.caught_up = matches!(read, Read::Wait);
            match read {
                Read::Batches(batches) => self.forward(&batches).await?,
                Read::Wait => {
                    let progress = self.next_progress.max(self.last_sent + PROGRESS_INTERVAL);
                    tokio::select! {
                        moved = self.changed.changed(), if !rung_only => if moved.is_err() {
                            return Ok(());
                        },
                        () = self.watch.bell.rung(), if rung_only => {}
                        () = tokio::time::sleep_until(progress), if rung_only => {
                            self.next_progress = Instant::now() + PROGRESS_INTERVAL;
                        }
                        inbound = self.requests.recv() => match inbound {
                            Some(inbound) => self.answer(inbound).await?,
                            None => return Ok(()),
                        },
                        // Noted at the loop's top.
                        _ = self.retired.changed(), if self.end.is_none() => {}
                    }
                }
                Read::Restarted { stream, .. } => {
                    tracing::debug!(epoch = %stream.epoch, "session rejoins after a full resync of the link");
                    if !self.rejoin().await? {
                        return Ok(());
                    }
                }
                Read::Behind { start } => return Err(self.resync(start).await),
            }
        }
    }

    /// Does what the browser's side handed over: takes a top-up's keys or slots, or sends an event's ack.
    async fn answer(&mut self, inbound: Inbound) -> Result<(), Close> {
        match inbound {
            Inbound::Topup { keys, since } => {
                match self.topups.ask(self.relay, self.sub, keys, since) {
                    Some(text) => self.send(wire::encode_notice(&text)).await,
                    None => Ok(()),
                }
            }
            Inbound::Forward(message) => self.send(message).await,
            Inbound::Slots(slots) => {
                self.topups.gain_slots(slots);
                Ok(())
            }
            Inbound::Digest(id) if self.digests.len() >= MAX_PENDING_DIGESTS => {
                let refused = format!("more than {MAX_PENDING_DIGESTS} digest requests wait");
                self.send(wire::encode_digest(&id, 0, Err(&refused))).await
            }
            Inbound::Digest(id) => {
                self.digests.push_back(id);
                Ok(())
            }
        }
    }

    /// Answers the next digest request, if any and if no top-up waits for its place: the digest of the session's
    /// windows in the relay's state, placed in the stream at the state's offset like a top-up, so that the page
    /// compares it with its own windows exactly there; or why the state cannot answer, at once.
    async fn digest(&mut self) -> Result<(), Close> {
        if !self.topups.place_free() {
            return Ok(());
        }
        let Some(id) = self.digests.pop_front() else {
            return Ok(());
        };
        let state = self.shard.state.as_ref().ok_or_else(|| {
            "the relay keeps no state (--stateless): it has no windows to digest".to_string()
        });
        let mut digest = state
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|state| state.digest(self.sub, &self.relay.allow));
        // The state trails the backlog: a session past its offset waits for it (bounded), as a top-up does.
        if let (Ok(state), Ok(behind)) = (&state, &digest) {
            if behind.epoch == self.current.epoch
                && behind.offset < self.cursor
                && state
                    .reach(&self.current.epoch, self.cursor, STATE_WAIT)
                    .await
            {
                digest = state.digest(self.sub, &self.relay.allow);
            }
        }
        match digest {
            Ok(digest) if digest.epoch == self.current.epoch && digest.offset >= self.cursor => {
                let message = wire::encode_digest(&id, digest.offset, Ok(digest.windows));
                self.topups.place(digest.offset, message);
                Ok(())
            }
            Ok(digest) => {
                let refused = if digest.epoch == self.current.epoch {
                    format!(
                        "the relay's state is at offset {}, behind this session's {} (it trails the stream): try \
                         again",
                        digest.offset, self.cursor
                    )
                } else {
                    format!(
                        "the relay's state is at offset {} of stream {}, this session at {} of {}: try again",
                        digest.offset, digest.epoch, self.cursor, self.current.epoch
                    )
                };
                self.send(wire::encode_digest(&id, 0, Err(&refused))).await
            }
            Err(refused) => self.send(wire::encode_digest(&id, 0, Err(&refused))).await,
        }
    }

    /// Sends what of `batches` concerns the session, in one commands message (cut where a top-up or a stale
    /// message goes between its runs), and the hello of a failover that renamed the stream.
    async fn forward(&mut self, batches: &[Batch]) -> Result<(), Close> {
        let mut message = Commands::default();
        let sub = self.sub;
        for batch in batches {
            for delivery in sub.select(batch, self.cursor, &self.relay.allow) {
                match delivery {
                    Delivery::Commands { start, bytes } => {
                        self.forward_run(&mut message, start, bytes).await?
                    }
                    Delivery::Stale { at, keys } => {
                        self.deliver_stale(&mut message, at, &keys).await?
                    }
                }
            }
            self.cursor = batch.end;
            // The top-up's place was in this batch but between the runs this session receives.
            let cursor = self.cursor;
            if let Some(ready) = self.topups.take_ready_if(|at| at <= cursor) {
                self.place_topup(&mut message, ready).await?;
            }
        }
        let renamed = self.renamed();
        let progress_due = self.last_sent.elapsed() >= PROGRESS_INTERVAL;
        if message.0.is_empty() && !progress_due && renamed.is_none() {
            return Ok(());
        }
        // An empty segment at the cursor: "the stream reached here", for resuming later.
        message.push(self.cursor, &[]);
        if let Some(message) = message.take() {
            self.send(message).await?;
        }
        self.last_sent = Instant::now();
        if let Some(renamed) = renamed {
            self.announce_rename(renamed).await?;
        }
        Ok(())
    }

    /// Adds a run of frames to `message`; a top-up whose place is in or before the run goes there: the frames
    /// before it, the snapshot, then the rest.
    async fn forward_run(
        &mut self,
        message: &mut Commands,
        start: u64,
        bytes: Bytes,
    ) -> Result<(), Close> {
        let end = start + bytes.len() as u64;
        // `at` is a command boundary (an offset Redis reported after EXEC).
        let Some(ready) = self.topups.take_ready_if(|at| end > at) else {
            message.push(start, &bytes);
            return Ok(());
        };
        let at = ready.at;
        let split = at.saturating_sub(start) as usize;
        if split > 0 {
            message.push(start, &bytes[..split]);
        }
        self.place_topup(message, ready).await?;
        let rest = bytes.slice(split.min(bytes.len())..);
        if !rest.is_empty() {
            message.push(start.max(at), &rest);
        }
        Ok(())
    }

    /// Tells the browser that `keys` are stale from `at` on (a command the relay could not follow wrote them),
    /// after the frames before it; a top-up read at or before `at` goes first, as it may be the state before the
    /// command (a block's stale keys are at its `MULTI`'s start).
    async fn deliver_stale(
        &mut self,
        message: &mut Commands,
        at: u64,
        keys: &Stale,
    ) -> Result<(), Close> {
        if let Some(ready) = self.topups.take_ready_if(|ready| ready <= at) {
            self.place_topup(message, ready).await?;
        }
        if let Some(before) = message.take() {
            self.send(before).await?;
        }
        self.send(Delivery::encode_stale(at, keys)).await
    }

    /// Sends `message` up to the top-up's offset, then its past message if it has one, then its snapshot: the state
    /// of its keys there.
    async fn place_topup(
        &mut self,
        message: &mut Commands,
        ready: ReadyTopup,
    ) -> Result<(), Close> {
        message.push(ready.at, &[]);
        if let Some(before) = message.take() {
            self.send(before).await?;
        }
        if let Some(past) = ready.past {
            self.send(past).await?;
        }
        self.send(ready.snapshot).await
    }

    /// The stream's new name, if a failover renamed it since last looked. One atomic load per read; the ring is
    /// looked at only after a rename.
    fn renamed(&mut self) -> Option<BacklogStream> {
        let backlog = &self.shard.backlog;
        let now = backlog.renames();
        if now == self.renames {
            return None;
        }
        self.renames = now;
        let current = &self.current;
        backlog
            .position()
            .map(|(stream, _)| stream)
            .filter(|s| s.generation == current.generation && s.epoch != current.epoch)
    }

    /// A failover: the stream goes on under a new replication ID. The browser is told, at the cursor, so that it
    /// resumes with the new ID later; its windows stay.
    async fn announce_rename(&mut self, renamed: BacklogStream) -> Result<(), Close> {
        let hello = wire::encode_hello_continuing(&renamed.epoch, &self.current.epoch, self.cursor);
        self.send(hello).await?;
        self.current = renamed;
        Ok(())
    }

    /// A full resync of the link: what the browser holds may be stale, so the session joins again, with a
    /// snapshot. `false`: the relay is going away.
    async fn rejoin(&mut self) -> Result<bool, Close> {
        let Some((current, mut start)) =
            join(self.relay, self.shard, self.sub, &[], &mut self.changed).await?
        else {
            return Ok(false);
        };
        self.current = current;
        // The rejoin's snapshot holds every key afresh (in parts: its rest follows as top-ups).
        self.topups = Topups::with_keys(std::mem::take(&mut start.rest));
        self.send(wire::encode_hello(&self.current.epoch, start.offset))
            .await?;
        if let Some(snapshot) = start.snapshot.take() {
            self.send(snapshot).await?;
        }
        // Sent: the turn goes to the next joining session.
        drop(start.sending.take());
        self.cursor = start.offset;
        self.caught_up = false;
        Ok(true)
    }

    /// The session fell out of the backlog: it is told to resync, and closed.
    async fn resync(&mut self, start: u64) -> Close {
        Metrics::add(&self.relay.metrics.resyncs, 1);
        let reason = format!(
            "fell behind the relay's backlog (at offset {}, it starts at {start})",
            self.cursor
        );
        tracing::info!("session {reason}; asking it to resync");
        match self.send(wire::encode_resync(&reason)).await {
            Ok(()) => Close(CLOSE_TRY_AGAIN, "resync".into()),
            Err(close) => close,
        }
    }

    async fn send(&mut self, message: impl Into<Bytes>) -> Result<(), Close> {
        self.sink.send(&self.relay.metrics, message.into()).await
    }
}

/// What to tell a browser that subscribed to keys `--allow` never lets leave: its exact keys, and its patterns
/// without a wildcard (the page's `?keys=` are patterns), that are not allowed. Such a key's frames and snapshot are
/// withheld like any other's; the notice only says why they never come, and names nothing the browser did not send.
fn disallowed_notice(sub: &Subscription, allow: &Allow) -> Option<String> {
    let literal = |p: &&[u8]| !p.iter().any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'));
    let mut refused: Vec<String> = sub
        .keys
        .iter()
        .map(Vec::as_slice)
        .chain(sub.patterns.iter().map(|p| p.as_bytes()).filter(literal))
        .filter(|k| !allow.allows(k))
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    if refused.is_empty() {
        return None;
    }
    refused.sort();
    refused.dedup();
    Some(format!(
        "never sent: the relay's --allow does not let these keys leave: {}",
        refused.join(", ")
    ))
}
