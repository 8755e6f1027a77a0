//! One browser's WebSocket session: its subscription, then a join (a resume inside the backlog, or an exact
//! snapshot), then the frames of the backlog that concern it, from its own cursor on.
//!
//! Generic over the socket's sink and stream, so tests can drive it without a network. After the subscription,
//! one half sends and the other reads the browser's requests and hands the sender what to do over a small channel:
//! top-ups to read, and the acks of the browser's events, which the reading half appends itself (`events.rs`), one
//! at a time, so a browser's next message waits in its socket while Redis answers. `select!` ends both halves when
//! either ends, or when the relay shuts down.
//!
//! The reading half also bounds what a browser can make the relay queue without reading: the WebSocket layer
//! answers each ping with a pong, buffered while the socket is full, so pings from a peer that does not read count
//! against [`MAX_UNREAD_PONGS`]. A frame the WebSocket layer refuses closes the session with the code RFC 6455
//! gives it (1002 for a protocol error, 1007 for text that is not UTF-8, 1009 for a message too big). However a
//! session ends, the browser gets a close frame, after everything already queued for it, and the relay reads
//! until the browser answers it or [`CLOSE_TIMEOUT`] passes, so that the socket ends with a FIN, not a reset.
//!
//! A top-up is a snapshot of a few keys taken mid-stream. It is read at some offset `X` ahead of the session's
//! cursor and delivered exactly there: the frames before `X`, then the snapshot, then the frames from `X` on, so
//! the browser's windows stay equal to Redis at every offset.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use replicast_protocol::client_message::Request;
use replicast_protocol::wire;
use std::collections::BTreeSet;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::backlog::{Backlog, Read, Stream as BacklogStream};
use crate::connections::Outbound;
use crate::events::{EventGate, Identity};
use crate::http::Relay;
use crate::metrics::Metrics;
use crate::snapshot::MAX_SNAPSHOT_KEYS;
use crate::subscription::{Delivery, Subscription};

/// Stream bytes a session takes from the backlog per read: enough to batch, small enough to stay fair.
const READ_BUDGET: usize = 1024 * 1024;
/// A browser that accepts nothing for this long is disconnected; its cursor would fall out of the backlog anyway.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long sending the close frame and reading the browser's answer to it may take: a session closed because its
/// browser stopped reading gets this long to read what was queued and the close frame.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pong bytes a browser may leave unread: pongs the WebSocket layer queued while what the relay wrote waits for the
/// browser to read it (a full socket). About 32 pings of the most a ping may carry; browsers send none.
pub(crate) const MAX_UNREAD_PONGS: usize = 4096;
/// How long a browser has to send its subscription after connecting.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the link may take to reach a snapshot's offset before the snapshot is taken again.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);
/// With nothing for it in the stream, a session still learns how far the stream went this often, so a later
/// resume starts from a recent offset.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Requests a browser may have queued for its sender before the relay stops reading it.
pub(crate) const REQUEST_QUEUE: usize = 16;
/// Times a top-up is read again when it could not be placed in the stream (another epoch, a lagging read).
const TOPUP_ATTEMPTS: u32 = 3;

/// WebSocket close codes (RFC 6455 and its registry).
pub(crate) const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_PROTOCOL: u16 = 1002;
const CLOSE_NOT_UTF8: u16 = 1007;
pub(crate) const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_INTERNAL: u16 = 1011;
const CLOSE_TRY_AGAIN: u16 = 1013;

/// Where a browser asks to resume: the epoch and offset its windows are at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub epoch: String,
    pub offset: u64,
}

/// Why a session ended early, with the close code and reason the browser gets.
pub(crate) struct Close(pub(crate) u16, pub(crate) String);

/// What the reading half hands the sending half.
pub(crate) enum Inbound {
    /// Keys to top up.
    Topup(Vec<Vec<u8>>),
    /// The ack of an event, encoded, to send as it is.
    Ack(Vec<u8>),
    /// Slots that moved to this shard of a cluster: top up the watched keys in them.
    Slots(BTreeSet<u16>),
}

/// Runs one browser's session until it or the relay leaves. `identity` is what the relay adds to its events;
/// `outbound` says whether what the relay wrote to the socket waits for the browser to read it.
pub async fn run<W, R, E>(
    mut sink: W,
    mut stream: R,
    relay: Relay,
    resume: Vec<Resume>,
    identity: Identity,
    outbound: &Outbound,
) where
    W: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
    E: std::error::Error + 'static,
{
    let metrics = relay.metrics.clone();
    Metrics::add(&metrics.sessions_total, 1);
    Metrics::add(&metrics.sessions, 1);
    let mut shutdown = relay.shutdown.subscribe();
    let mut pongs = UnreadPongs { outbound, bytes: 0 };

    let close = match subscription(&mut stream, &mut pongs).await {
        Err(close) => close,
        Ok(sub) => {
            let (requests, mut queued) = mpsc::channel(REQUEST_QUEUE);
            let send = async {
                match &relay.cluster {
                    Some(cluster) => {
                        crate::cluster_session::serve(
                            &mut sink,
                            &relay,
                            cluster,
                            &sub,
                            resume,
                            &mut queued,
                        )
                        .await
                    }
                    None => serve(&mut sink, &relay, &sub, &resume, &mut queued, true).await,
                }
            };
            let gate = EventGate::new(&relay.events, &relay.allow, &identity, sub.db);
            let receive = receive_requests(&mut stream, requests, gate, &relay.metrics, &mut pongs);
            tokio::select! {
                result = send => result.err(),
                close = receive => close,
                _ = shutdown.wait_for(|down| *down) => Some(Close(CLOSE_GOING_AWAY, "relay shutting down".into())),
            }
        }
    };
    let deadline = Instant::now() + CLOSE_TIMEOUT;
    match close {
        Some(Close(code, reason)) => {
            if matches!(
                code,
                CLOSE_PROTOCOL | CLOSE_NOT_UTF8 | CLOSE_POLICY | CLOSE_TOO_BIG
            ) {
                Metrics::add(&metrics.refusals, 1);
                tracing::info!("session refused: {reason}");
            }
            // A close reason is at most 123 bytes.
            let reason = truncate(&reason, 123);
            // Queued after what the browser has not read yet, so that it arrives whole, after the last message;
            // bounded, as the browser may be the one that stopped reading.
            let close = Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }));
            let _ = tokio::time::timeout_at(deadline, sink.send(close)).await;
            // Until the browser answers: closing the socket with its bytes unread would reset the connection (and
            // drop what the browser has not read yet) instead of ending it with a FIN.
            let answered = async {
                while let Some(Ok(message)) = stream.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout_at(deadline, answered).await;
        }
        // The browser closed (the WebSocket layer queued the answer: send it), or its socket failed.
        None => {
            let _ = tokio::time::timeout_at(deadline, sink.close()).await;
        }
    }
    metrics
        .sessions
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

/// The browser's first message, which must be its subscription; pings may come before it, or between its
/// fragments (RFC 6455 allows control frames there). `Err(None)`: the browser left first, no close frame to send.
async fn subscription<R, E>(
    stream: &mut R,
    pongs: &mut UnreadPongs<'_>,
) -> Result<Subscription, Option<Close>>
where
    R: Stream<Item = Result<Message, E>> + Unpin,
    E: std::error::Error + 'static,
{
    let deadline = Instant::now() + SUBSCRIBE_TIMEOUT;
    loop {
        let Ok(next) = tokio::time::timeout_at(deadline, stream.next()).await else {
            return Err(Some(Close(
                CLOSE_POLICY,
                format!("no subscribe message within {SUBSCRIBE_TIMEOUT:?}"),
            )));
        };
        return match next {
            Some(Ok(Message::Text(text))) => Subscription::parse(text.as_str())
                .map_err(|e| Some(Close(CLOSE_POLICY, e.to_string()))),
            Some(Ok(Message::Ping(payload))) => {
                pongs.ping(payload.len()).map_err(Some)?;
                continue;
            }
            Some(Ok(Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_))) | None => Err(None),
            Some(Ok(Message::Binary(_))) => Err(Some(Close(
                CLOSE_POLICY,
                "expected a subscribe message (JSON text) first".into(),
            ))),
            Some(Err(err)) => Err(unreadable(&err)),
        };
    }
}

/// Pongs the WebSocket layer queued for a browser that does not read them (see [`MAX_UNREAD_PONGS`]).
struct UnreadPongs<'a> {
    outbound: &'a Outbound,
    bytes: usize,
}

impl UnreadPongs<'_> {
    /// Counts the pong a ping of `payload` bytes gets; closes the session past the limit.
    fn ping(&mut self, payload: usize) -> Result<(), Close> {
        if !self.outbound.waiting() {
            // The socket took everything queued: the pongs before this one went out.
            self.bytes = 0;
        }
        // A pong's frame: two bytes of header and the ping's payload (at most 125 bytes).
        self.bytes += 2 + payload;
        if self.bytes > MAX_UNREAD_PONGS {
            return Err(Close(
                CLOSE_POLICY,
                format!(
                    "stopped reading: sent pings while more than {MAX_UNREAD_PONGS} bytes of pongs waited unread"
                ),
            ));
        }
        Ok(())
    }
}

/// Reads the browser's requests after its subscription until it leaves; a malformed one closes the session. Events
/// are appended here, one at a time, and answered through the sender; an event the limits refuse is answered with
/// the reason, and the session goes on.
async fn receive_requests<R, E>(
    stream: &mut R,
    requests: mpsc::Sender<Inbound>,
    mut gate: EventGate<'_>,
    metrics: &Metrics,
    pongs: &mut UnreadPongs<'_>,
) -> Option<Close>
where
    R: Stream<Item = Result<Message, E>> + Unpin,
    E: std::error::Error + 'static,
{
    while let Some(message) = stream.next().await {
        let inbound = match message {
            Ok(Message::Text(text)) => match Request::parse(text.as_str()) {
                Ok(Request::Topup(keys)) => Inbound::Topup(keys),
                Ok(Request::Event(event)) => {
                    let id = event.id.clone();
                    let appended = gate.handle(event).await;
                    Inbound::Ack(match appended {
                        Ok(entry) => {
                            Metrics::add(&metrics.events_appended, 1);
                            wire::encode_ack(&id, Ok(&entry))
                        }
                        Err(err) => {
                            Metrics::add(&metrics.events_refused, 1);
                            tracing::debug!(session = %gate.identity.session, "event refused: {err}");
                            wire::encode_ack(&id, Err(&err.to_string()))
                        }
                    })
                }
                Err(err) => return Some(Close(CLOSE_POLICY, err.to_string())),
            },
            Ok(Message::Binary(_)) => {
                return Some(Close(
                    CLOSE_POLICY,
                    "the relay reads only JSON text messages".into(),
                ))
            }
            Ok(Message::Close(_)) => return None,
            Ok(Message::Ping(payload)) => match pongs.ping(payload.len()) {
                Ok(()) => continue,
                Err(close) => return Some(close),
            },
            Ok(Message::Pong(_)) => continue,
            Err(err) => return unreadable(&err),
        };
        // Waits while the sender is busy: the browser's requests queue in its socket, not here.
        if requests.send(inbound).await.is_err() {
            return None;
        }
    }
    None
}

/// How a frame the WebSocket layer refused to read closes the session, with the code RFC 6455 gives it; `None`
/// when the socket itself failed or the browser left.
fn unreadable(err: &(dyn std::error::Error + 'static)) -> Option<Close> {
    use tungstenite::error::{Error as WsError, ProtocolError};
    // axum wraps tungstenite's error: find it in the chain.
    let ws = std::iter::successors(Some(err), |e| e.source())
        .find_map(|e| e.downcast_ref::<WsError>())?;
    match ws {
        // Over the size limit, refused from the frame's header, before its payload is read.
        WsError::Capacity(_) => Some(Close(
            CLOSE_TOO_BIG,
            format!(
                "message too big: at most {} bytes",
                crate::http::MAX_CLIENT_MESSAGE
            ),
        )),
        WsError::Utf8(_) => Some(Close(
            CLOSE_NOT_UTF8,
            "a text message must be UTF-8 (JSON)".into(),
        )),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        // RSV bits set, an unmasked frame, a fragmented or oversized control frame, an unknown opcode, a
        // continuation out of place, a malformed close frame: tungstenite's words say which.
        WsError::Protocol(protocol) => {
            Some(Close(CLOSE_PROTOCOL, format!("protocol error: {protocol}")))
        }
        _ => None,
    }
}

/// Top-ups asked for and not yet delivered: keys waiting to be read, and a snapshot read and waiting for the
/// stream to reach its offset.
#[derive(Default)]
struct Topups {
    keys: BTreeSet<Vec<u8>>,
    /// Slots that moved to this shard: their watched keys are read with the next top-up.
    slots: BTreeSet<u16>,
    attempts: u32,
    ready: Option<(u64, Vec<u8>)>,
}

impl Topups {
    /// Takes the keys of a request that this session may top up; tells the browser about the others.
    async fn ask<W: Sink<Message> + Unpin>(
        &mut self,
        sink: &mut W,
        relay: &Relay,
        sub: &Subscription,
        keys: Vec<Vec<u8>>,
    ) -> Result<(), Close> {
        let mut refused = Vec::new();
        for key in keys {
            if !sub.wants(&key) || !relay.allow.allows(&key) {
                refused.push(String::from_utf8_lossy(&key).into_owned());
            } else if self.keys.len() < MAX_SNAPSHOT_KEYS {
                self.keys.insert(key);
            }
        }
        if !refused.is_empty() {
            let text = format!(
                "top-up refused for keys this session does not watch or the relay does not allow: {}",
                refused.join(", ")
            );
            send(
                sink,
                &relay.metrics,
                Bytes::from(wire::encode_notice(&text)),
            )
            .await?;
        }
        Ok(())
    }

    /// Reads the waiting keys, if any and if no other top-up waits for the stream.
    async fn read<W: Sink<Message> + Unpin>(
        &mut self,
        sink: &mut W,
        relay: &Relay,
        sub: &Subscription,
        epoch: &str,
        cursor: u64,
    ) -> Result<(), Close> {
        if self.ready.is_some() || (self.keys.is_empty() && self.slots.is_empty()) {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = std::mem::take(&mut self.keys).into_iter().collect();
        let slots = std::mem::take(&mut self.slots);
        let read = if slots.is_empty() {
            relay
                .snapshots
                .take_keys(sub.db, sub.window, keys.clone())
                .await
        } else {
            relay
                .snapshots
                .take_slots(sub, &relay.allow, slots.clone(), keys.clone())
                .await
        };
        match read {
            // The snapshot's node is the one the link follows, so its offset is at or past what the link
            // delivered; anything else (a failover, a new epoch) means reading again later.
            Ok(snapshot) if snapshot.epoch == epoch && snapshot.offset >= cursor => {
                Metrics::add(&relay.metrics.snapshots, 1);
                // Keys beyond one part's size wait for the next read.
                self.keys.extend(snapshot.rest);
                self.attempts = 0;
                self.ready = Some((
                    snapshot.offset,
                    wire::encode_snapshot(snapshot.offset, &snapshot.commands),
                ));
                Ok(())
            }
            Ok(_) if self.attempts + 1 < TOPUP_ATTEMPTS => {
                self.attempts += 1;
                self.keys.extend(keys);
                self.slots.extend(slots);
                Ok(())
            }
            outcome => {
                self.attempts = 0;
                let why = match outcome {
                    Err(err) => err.to_string(),
                    Ok(_) => "it could not be aligned with the stream".into(),
                };
                let text = format!("top-up of {} keys failed: {why}", keys.len());
                tracing::info!("{text}");
                send(
                    sink,
                    &relay.metrics,
                    Bytes::from(wire::encode_notice(&text)),
                )
                .await
            }
        }
    }
}

/// Joins, then streams until the browser or the relay goes; returns how the session should close.
/// `relay.backlog` and `relay.snapshots` are the stream's (one shard's, in a cluster); `notices` sends the
/// notice of keys `--allow` never lets leave (once per session).
pub(crate) async fn serve<W: Sink<Message> + Unpin>(
    sink: &mut W,
    relay: &Relay,
    sub: &Subscription,
    resume: &[Resume],
    requests: &mut mpsc::Receiver<Inbound>,
    notices: bool,
) -> Result<(), Close> {
    let backlog = &relay.backlog;
    let metrics = &relay.metrics;
    let mut changed = backlog.changed();
    // Read before the join, so that a failover after it is noticed.
    let mut renames = backlog.renames();
    let Some((mut current, mut cursor)) = join(relay, sub, resume, &mut changed).await? else {
        return Ok(());
    };
    send(
        sink,
        metrics,
        Bytes::from(wire::encode_hello_continuing(
            &current.epoch,
            &cursor.previous,
            cursor.offset,
        )),
    )
    .await?;
    if let Some(snapshot) = cursor.snapshot.take() {
        send(sink, metrics, Bytes::from(snapshot)).await?;
    }
    if let Some(text) = disallowed_notice(sub, &relay.allow).filter(|_| notices) {
        send(sink, metrics, Bytes::from(wire::encode_notice(&text))).await?;
    }
    let mut topups = Topups::default();
    topups.keys.extend(cursor.rest);
    let mut cursor = cursor.offset;
    let mut last_sent = Instant::now();
    loop {
        while let Ok(inbound) = requests.try_recv() {
            take(sink, relay, sub, &mut topups, inbound).await?;
        }
        topups
            .read(sink, relay, sub, &current.epoch, cursor)
            .await?;
        // A top-up read at the cursor itself (the stream was idle) goes out at once.
        if let Some((at, snapshot)) = topups.ready.take_if(|(at, _)| *at == cursor) {
            let mut message = wire::begin_commands();
            wire::push_segment(&mut message, at, &[]);
            send(sink, metrics, Bytes::from(message)).await?;
            send(sink, metrics, Bytes::from(snapshot)).await?;
            last_sent = Instant::now();
        }
        // Mark the version seen *before* reading, so an append between the read and the wait still wakes us.
        changed.borrow_and_update();
        match backlog.read(&current, cursor, READ_BUDGET) {
            Read::Batches(batches) => {
                let mut message = vec![];
                for batch in &batches {
                    for delivery in sub.select(batch, cursor, &relay.allow) {
                        let (start, bytes) = match delivery {
                            Delivery::Commands { start, bytes } => (start, bytes),
                            Delivery::Stale { at, keys } => {
                                // A top-up read before the withheld command goes first: it is the state before it.
                                if let Some((ready, snapshot)) =
                                    topups.ready.take_if(|(ready, _)| *ready < at)
                                {
                                    if message.is_empty() {
                                        message = wire::begin_commands();
                                    }
                                    wire::push_segment(&mut message, ready, &[]);
                                    send(sink, metrics, Bytes::from(std::mem::take(&mut message)))
                                        .await?;
                                    send(sink, metrics, Bytes::from(snapshot)).await?;
                                }
                                if !message.is_empty() {
                                    send(sink, metrics, Bytes::from(std::mem::take(&mut message)))
                                        .await?;
                                }
                                let stale = Delivery::encode_stale(at, &keys);
                                send(sink, metrics, Bytes::from(stale)).await?;
                                continue;
                            }
                        };
                        let ready_at = topups.ready.as_ref().map(|(at, _)| *at);
                        if let Some(at) = ready_at.filter(|at| start + bytes.len() as u64 > *at) {
                            // The top-up's place is in or before this run: the frames before it, the snapshot,
                            // then the rest. `at` is a command boundary (an offset Redis reported after EXEC).
                            let split = at.saturating_sub(start) as usize;
                            if let Some((_, snapshot)) = topups.ready.take() {
                                if message.is_empty() {
                                    message = wire::begin_commands();
                                }
                                if split > 0 {
                                    wire::push_segment(&mut message, start, &bytes[..split]);
                                }
                                wire::push_segment(&mut message, at, &[]);
                                send(sink, metrics, Bytes::from(std::mem::take(&mut message)))
                                    .await?;
                                send(sink, metrics, Bytes::from(snapshot)).await?;
                            }
                            let rest = bytes.slice(split.min(bytes.len())..);
                            if !rest.is_empty() {
                                if message.is_empty() {
                                    message = wire::begin_commands();
                                }
                                wire::push_segment(&mut message, start.max(at), &rest);
                            }
                            continue;
                        }
                        if message.is_empty() {
                            message = wire::begin_commands();
                        }
                        wire::push_segment(&mut message, start, &bytes);
                    }
                    cursor = batch.end;
                    // The top-up's place was in this batch but between the runs this session receives.
                    if let Some((at, snapshot)) = topups.ready.take_if(|(at, _)| *at <= cursor) {
                        if message.is_empty() {
                            message = wire::begin_commands();
                        }
                        wire::push_segment(&mut message, at, &[]);
                        send(sink, metrics, Bytes::from(std::mem::take(&mut message))).await?;
                        send(sink, metrics, Bytes::from(snapshot)).await?;
                    }
                }
                // One atomic load per read; the ring is looked at only after a failover renamed the stream.
                let renamed = match backlog.renames() {
                    seen if seen == renames => None,
                    now => {
                        renames = now;
                        backlog.position().map(|(stream, _)| stream).filter(|s| {
                            s.generation == current.generation && s.epoch != current.epoch
                        })
                    }
                };
                let progress_due = last_sent.elapsed() >= PROGRESS_INTERVAL;
                if !message.is_empty() || progress_due || renamed.is_some() {
                    if message.is_empty() {
                        message = wire::begin_commands();
                    }
                    // An empty segment at the cursor: "the stream reached here", for resuming later.
                    wire::push_segment(&mut message, cursor, &[]);
                    send(sink, metrics, Bytes::from(message)).await?;
                    last_sent = Instant::now();
                }
                if let Some(renamed) = renamed {
                    // A failover: the stream goes on under a new replication ID. Tell the browser, at the cursor,
                    // so that it resumes with the new ID later; its windows stay.
                    let hello =
                        wire::encode_hello_continuing(&renamed.epoch, &current.epoch, cursor);
                    send(sink, metrics, Bytes::from(hello)).await?;
                    current = renamed;
                }
            }
            Read::Wait => {
                tokio::select! {
                    moved = changed.changed() => if moved.is_err() {
                        return Ok(());
                    },
                    inbound = requests.recv() => match inbound {
                        Some(inbound) => take(sink, relay, sub, &mut topups, inbound).await?,
                        None => return Ok(()),
                    },
                }
            }
            Read::Restarted { stream, .. } => {
                // A full resync of the link: what the browser holds may be stale. Join again, with a snapshot.
                let Some(mut rejoin) = join(relay, sub, &[], &mut changed).await? else {
                    return Ok(());
                };
                tracing::debug!(epoch = %stream.epoch, "session rejoined after a full resync of the link");
                current = rejoin.0;
                // The rejoin's snapshot holds every key afresh (in parts: its rest follows as top-ups).
                topups = Topups::default();
                topups.keys.extend(std::mem::take(&mut rejoin.1.rest));
                send(
                    sink,
                    metrics,
                    Bytes::from(wire::encode_hello(&current.epoch, rejoin.1.offset)),
                )
                .await?;
                if let Some(snapshot) = rejoin.1.snapshot.take() {
                    send(sink, metrics, Bytes::from(snapshot)).await?;
                }
                cursor = rejoin.1.offset;
            }
            Read::Behind { start } => {
                Metrics::add(&metrics.resyncs, 1);
                let reason = format!(
                    "fell behind the relay's backlog (at offset {cursor}, it starts at {start})"
                );
                tracing::info!("session {reason}; asking it to resync");
                send(sink, metrics, Bytes::from(wire::encode_resync(&reason))).await?;
                return Err(Close(CLOSE_TRY_AGAIN, "resync".into()));
            }
        }
    }
}

/// Does what the reading half handed over: takes a top-up's keys, or sends an ack.
async fn take<W: Sink<Message> + Unpin>(
    sink: &mut W,
    relay: &Relay,
    sub: &Subscription,
    topups: &mut Topups,
    inbound: Inbound,
) -> Result<(), Close> {
    match inbound {
        Inbound::Topup(keys) => topups.ask(sink, relay, sub, keys).await,
        Inbound::Ack(ack) => send(sink, &relay.metrics, Bytes::from(ack)).await,
        Inbound::Slots(slots) => {
            topups.slots.extend(slots);
            Ok(())
        }
    }
}

/// What to tell a browser that subscribed to keys `--allow` never lets leave: its exact keys, and its patterns
/// without a wildcard (the page's `?keys=` are patterns), that are not allowed. Such a key's frames and snapshot are
/// withheld like any other's; the notice only says why they never come, and names nothing the browser did not send.
fn disallowed_notice(sub: &Subscription, allow: &crate::subscription::Allow) -> Option<String> {
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

/// Where a session starts: its offset, and the snapshot message to send first when it did not resume.
struct Start {
    offset: u64,
    /// The epoch the browser resumed from, when the stream continues it under a new one; else empty.
    previous: String,
    snapshot: Option<Vec<u8>>,
    /// Keys too many for the first snapshot part: they follow as top-ups.
    rest: Vec<Vec<u8>>,
}

/// Resumes inside the backlog if asked and possible, else takes a snapshot and waits for the link to reach it.
/// `Ok(None)`: the relay is going away.
/// `resume` may name several streams (a cluster's shards): the one this backlog holds is used.
async fn join(
    relay: &Relay,
    sub: &Subscription,
    resume: &[Resume],
    changed: &mut watch::Receiver<u64>,
) -> Result<Option<(BacklogStream, Start)>, Close> {
    let backlog = &relay.backlog;
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
                rest: Vec::new(),
            },
        )));
    }
    for _ in 0..3 {
        let snapshot = relay
            .snapshots
            .take(sub, &relay.allow)
            .await
            .map_err(|e| Close(CLOSE_INTERNAL, e.to_string()))?;
        Metrics::add(&relay.metrics.snapshots, 1);
        tracing::debug!(
            keys = snapshot.keys,
            bytes = snapshot.commands.len(),
            offset = snapshot.offset,
            "snapshot read"
        );
        if caught_up(backlog, changed, &snapshot.epoch, snapshot.offset).await {
            if let Some((stream, _, true)) = backlog.join(Some((&snapshot.epoch, snapshot.offset)))
            {
                let message = wire::encode_snapshot(snapshot.offset, &snapshot.commands);
                return Ok(Some((
                    stream,
                    Start {
                        offset: snapshot.offset,
                        previous: String::new(),
                        snapshot: Some(message),
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

/// Sends one binary message; an error ends the session (the browser left, or stopped reading).
async fn send<W: Sink<Message> + Unpin>(
    sink: &mut W,
    metrics: &Metrics,
    message: Bytes,
) -> Result<(), Close> {
    let len = message.len() as u64;
    match tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Binary(message))).await {
        Ok(Ok(())) => {
            Metrics::add(&metrics.messages_sent, 1);
            Metrics::add(&metrics.bytes_sent, len);
            Ok(())
        }
        Ok(Err(_)) => Err(Close(CLOSE_GOING_AWAY, "send failed".into())),
        Err(_) => {
            tracing::info!("session accepted nothing for {SEND_TIMEOUT:?}; closing it");
            Err(Close(CLOSE_POLICY, "stopped reading".into()))
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
