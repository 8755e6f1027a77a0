//! One browser's WebSocket session: its subscription, then the stream of every shard of the topology the relay
//! follows (`shards.rs`), each joined and followed by a [`ShardStream`](shard_stream::ShardStream).
//!
//! Generic over the socket's sink and stream, so tests can drive it without a network. After the subscription,
//! one half sends and the other reads the browser's requests and hands the sender what to do over a small channel:
//! top-ups to read, and the acks of the browser's events, which the reading half appends itself (`events.rs`), one
//! at a time, so a browser's next message waits in its socket while Redis answers. `select!` ends both halves when
//! either ends, or when the relay shuts down. A session opened with a signed token also ends at its token's `exp`,
//! unless the browser sends a fresh one first (`lifetime.rs`).
//!
//! The reading half also bounds what a browser can make the relay queue without reading: the WebSocket layer
//! answers each ping with a pong, buffered while the socket is full, so pings from a peer that does not read count
//! against [`MAX_UNREAD_PONGS`]. A frame the WebSocket layer refuses closes the session with the code RFC 6455
//! gives it (1002 for a protocol error, 1007 for text that is not UTF-8, 1009 for a message too big). However a
//! session ends, the browser gets a close frame, after everything already queued for it, and the relay reads
//! until the browser answers it or [`CLOSE_TIMEOUT`] passes, so that the socket ends with a FIN, not a reset.

mod join;
mod lifetime;
mod shard_stream;
mod shards;
mod snapshot_source;
mod socket;
mod topups;

pub use join::Resume;
pub(crate) use topups::is_not_taken as is_topup_not_taken;

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use replicast_protocol::wire;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::connections::Outbound;
use crate::events::{EventGate, Identity};
use crate::metrics::Metrics;
use crate::relay::Relay;
use crate::subscription::Subscription;
use replicast_protocol::client_message::{Event, Request, MAX_CLIENT_MESSAGE};

use lifetime::TokenLifetime;
use shard_stream::{Inbound, REQUEST_QUEUE};
use shards::ShardStreams;
use socket::{
    Close, CLOSE_GOING_AWAY, CLOSE_NOT_UTF8, CLOSE_POLICY, CLOSE_PROTOCOL, CLOSE_TOO_BIG,
};

/// How long sending the close frame and reading the browser's answer to it may take: a session closed because its
/// browser stopped reading gets this long to read what was queued and the close frame.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pong bytes a browser may leave unread: pongs the WebSocket layer queued while what the relay wrote waits for the
/// browser to read it (a full socket). About 32 pings of the most a ping may carry; browsers send none.
pub(crate) const MAX_UNREAD_PONGS: usize = 4096;
/// How long a browser has to send its subscription after connecting.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// One browser's session, from its subscription to its close.
pub struct Session<'a, W, R> {
    sink: W,
    stream: R,
    relay: Relay,
    /// Where the browser asked to resume (`/ws?epoch=…&offset=…` or `at=…`).
    resume: Vec<Resume>,
    /// Whether the client reads the ended message (`/ws?ended=1`: the history sink).
    reads_ended: bool,
    /// What the relay adds to the browser's events.
    identity: Identity,
    pongs: UnreadPongs<'a>,
}

impl<'a, W, R, E> Session<'a, W, R>
where
    W: Sink<Message> + Unpin + Send,
    R: Stream<Item = Result<Message, E>> + Unpin,
    E: std::error::Error + 'static,
{
    /// A session on the socket split into `sink` and `stream`; `outbound` says whether what the relay wrote to it
    /// waits for the browser to read it.
    pub fn new(
        sink: W,
        stream: R,
        relay: Relay,
        resume: Vec<Resume>,
        reads_ended: bool,
        identity: Identity,
        outbound: &'a Outbound,
    ) -> Self {
        Session {
            sink,
            stream,
            relay,
            resume,
            reads_ended,
            identity,
            pongs: UnreadPongs { outbound, bytes: 0 },
        }
    }

    /// Runs the session until the browser or the relay leaves.
    pub async fn run(mut self) {
        let metrics = self.relay.metrics.clone();
        Metrics::add(&metrics.sessions_total, 1);
        Metrics::add(&metrics.sessions, 1);
        let close = match self.subscribe().await {
            Err(close) => close,
            Ok(sub) => match &self.identity.grant {
                Some(grant) if !grant.may_watch_db(sub.db) => Some(Close(
                    CLOSE_POLICY,
                    format!("database {} is not among this token's replicast.db", sub.db),
                )),
                _ => self.serve(&sub).await,
            },
        };
        self.close(close).await;
        metrics
            .sessions
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The browser's first message, which must be its subscription; pings may come before it, or between its
    /// fragments (RFC 6455 allows control frames there). `Err(None)`: the browser left first, no close frame to
    /// send.
    async fn subscribe(&mut self) -> Result<Subscription, Option<Close>> {
        let deadline = Instant::now() + SUBSCRIBE_TIMEOUT;
        loop {
            let Ok(next) = tokio::time::timeout_at(deadline, self.stream.next()).await else {
                return Err(Some(Close(
                    CLOSE_POLICY,
                    format!("no subscribe message within {SUBSCRIBE_TIMEOUT:?}"),
                )));
            };
            return match next {
                Some(Ok(Message::Text(text))) => Subscription::parse(text.as_str())
                    .map_err(|e| Some(Close(CLOSE_POLICY, e.to_string()))),
                Some(Ok(Message::Ping(payload))) => {
                    self.pongs.ping(payload.len()).map_err(Some)?;
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

    /// Streams every shard to the browser while reading its requests, until either ends or the relay shuts down;
    /// how the session should close (`None`: the browser left, or its socket failed).
    async fn serve(&mut self, sub: &Subscription) -> Option<Close> {
        let Session {
            sink,
            stream,
            relay,
            resume,
            reads_ended,
            identity,
            pongs,
        } = self;
        let mut shutdown = relay.shutdown.subscribe();
        let (requests, mut queued) = mpsc::channel(REQUEST_QUEUE);
        let send = ShardStreams::run(sink, relay, sub, resume, *reads_ended, &mut queued);
        let (lifetime, expiry) = TokenLifetime::new(relay, identity, requests.clone());
        let gate = EventGate::new(&relay.events, &relay.allow, identity, sub.db);
        let receive = read_requests(stream, requests, gate, &relay.metrics, pongs, &lifetime);
        tokio::select! {
            result = send => result.err(),
            close = receive => close,
            close = expiry => Some(close),
            _ = shutdown.wait_for(|down| *down) => Some(Close(CLOSE_GOING_AWAY, "relay shutting down".into())),
        }
    }

    /// Turns the browser away before its session starts (its token was refused): a close frame with the reason.
    pub async fn refuse(self, reason: String) {
        self.send_close(CLOSE_POLICY, reason).await;
    }

    /// Ends the session: with a close frame saying why, after everything already queued, and waits (bounded) for
    /// the browser's answer, so that the socket ends with a FIN, not a reset.
    async fn close(mut self, close: Option<Close>) {
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        let Some(Close(code, reason)) = close else {
            // The browser closed (the WebSocket layer queued the answer: send it), or its socket failed.
            let _ = tokio::time::timeout_at(deadline, self.sink.close()).await;
            return;
        };
        if matches!(
            code,
            CLOSE_PROTOCOL | CLOSE_NOT_UTF8 | CLOSE_POLICY | CLOSE_TOO_BIG
        ) {
            Metrics::add(&self.relay.metrics.refusals, 1);
            tracing::info!("session refused: {reason}");
        }
        self.send_close(code, reason).await;
    }

    /// Sends a close frame after everything already queued, and waits (bounded) for the browser's answer.
    async fn send_close(mut self, code: u16, reason: String) {
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        // A close reason is at most 123 bytes.
        let reason = truncate(&reason, 123);
        // Queued after what the browser has not read yet, so that it arrives whole, after the last message;
        // bounded, as the browser may be the one that stopped reading.
        let close = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = tokio::time::timeout_at(deadline, self.sink.send(close)).await;
        // Until the browser answers: closing the socket with its bytes unread would reset the connection (and
        // drop what the browser has not read yet) instead of ending it with a FIN.
        let stream = &mut self.stream;
        let answered = async {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout_at(deadline, answered).await;
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
async fn read_requests<R, E>(
    stream: &mut R,
    requests: mpsc::Sender<Inbound>,
    mut gate: EventGate<'_>,
    metrics: &Metrics,
    pongs: &mut UnreadPongs<'_>,
    lifetime: &TokenLifetime<'_>,
) -> Option<Close>
where
    R: Stream<Item = Result<Message, E>> + Unpin,
    E: std::error::Error + 'static,
{
    while let Some(message) = stream.next().await {
        let inbound = match message {
            Ok(Message::Text(text)) => match Request::parse(text.as_str()) {
                Ok(Request::Topup { keys, since }) => Inbound::Topup { keys, since },
                Ok(Request::Digest(id)) => Inbound::Digest(id),
                Ok(Request::Event(event)) => {
                    Inbound::Forward(answer_event(&mut gate, event, metrics).await)
                }
                Ok(Request::Token(token)) => match lifetime.refresh(&token) {
                    Ok(None) => continue,
                    Ok(Some(notice)) => Inbound::Forward(wire::encode_notice(&notice)),
                    Err(close) => return Some(close),
                },
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

/// Appends a browser's event if the limits let it; the ack that says with which id, or why not.
async fn answer_event(gate: &mut EventGate<'_>, event: Event, metrics: &Metrics) -> Vec<u8> {
    let id = event.id.clone();
    match gate.handle(event).await {
        Ok(entry) => {
            Metrics::add(&metrics.events_appended, 1);
            wire::encode_ack(&id, Ok(&entry))
        }
        Err(err) => {
            Metrics::add(&metrics.events_refused, 1);
            tracing::debug!(session = %gate.identity.session, "event refused: {err}");
            wire::encode_ack(&id, Err(&err.to_string()))
        }
    }
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
            format!("message too big: at most {} bytes", MAX_CLIENT_MESSAGE),
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

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
