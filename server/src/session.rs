//! One browser's WebSocket session: its subscription, then a join (a resume inside the backlog, or an exact
//! snapshot), then the frames of the backlog that concern it, from its own cursor on.
//!
//! Generic over the socket's sink and stream, so tests can drive it without a network. After the subscription,
//! one half sends and the other reads (nothing more is expected yet but close); `select!` ends both when either
//! ends, or when the relay shuts down.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use replicast_wasm::wire;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::backlog::{Backlog, Read, Stream as BacklogStream};
use crate::http::Relay;
use crate::metrics::Metrics;
use crate::subscription::Subscription;

/// Stream bytes a session takes from the backlog per read: enough to batch, small enough to stay fair.
const READ_BUDGET: usize = 1024 * 1024;
/// A browser that accepts nothing for this long is disconnected; its cursor would fall out of the backlog anyway.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long sending the close frame may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a browser has to send its subscription after connecting.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the link may take to reach a snapshot's offset before the snapshot is taken again.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);
/// With nothing for it in the stream, a session still learns how far the stream went this often, so a later
/// resume starts from a recent offset.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// WebSocket close codes (RFC 6455 and its registry).
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
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
struct Close(u16, String);

pub async fn run<W, R, E>(mut sink: W, mut stream: R, relay: Relay, resume: Option<Resume>)
where
    W: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
    E: std::fmt::Display,
{
    let metrics = relay.metrics.clone();
    Metrics::add(&metrics.sessions_total, 1);
    Metrics::add(&metrics.sessions, 1);
    let mut shutdown = relay.shutdown.subscribe();

    let close = match subscription(&mut stream).await {
        Err(close) => Some(close),
        Ok(sub) => {
            let send = serve(&mut sink, &relay, &sub, resume);
            let receive = async {
                while let Some(Ok(message)) = stream.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            };
            tokio::select! {
                result = send => result.err(),
                _ = receive => None,
                _ = shutdown.wait_for(|down| *down) => Some(Close(CLOSE_GOING_AWAY, "relay shutting down".into())),
            }
        }
    };
    if let Some(Close(code, reason)) = close {
        if code == CLOSE_POLICY || code == CLOSE_TOO_BIG {
            Metrics::add(&metrics.refusals, 1);
            tracing::info!("session refused: {reason}");
        }
        // A close reason is at most 123 bytes.
        let reason = truncate(&reason, 123);
        // Bounded: the browser may be the one that stopped reading.
        let close = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(close)).await;
    }
    metrics
        .sessions
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

/// The browser's first message, which must be its subscription.
async fn subscription<R, E>(stream: &mut R) -> Result<Subscription, Close>
where
    R: Stream<Item = Result<Message, E>> + Unpin,
    E: std::fmt::Display,
{
    match tokio::time::timeout(SUBSCRIBE_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => {
            Subscription::parse(text.as_str()).map_err(|e| Close(CLOSE_POLICY, e.to_string()))
        }
        Ok(Some(Ok(_))) => Err(Close(
            CLOSE_POLICY,
            "expected a subscribe message (JSON text) first".into(),
        )),
        // The WebSocket layer refuses messages over its size limit before we see them.
        Ok(Some(Err(err))) if err.to_string().contains("too long") => Err(Close(
            CLOSE_TOO_BIG,
            format!(
                "message too big: at most {} bytes",
                crate::http::MAX_CLIENT_MESSAGE
            ),
        )),
        Ok(_) => Err(Close(CLOSE_POLICY, "closed before subscribing".into())),
        Err(_) => Err(Close(
            CLOSE_POLICY,
            format!("no subscribe message within {SUBSCRIBE_TIMEOUT:?}"),
        )),
    }
}

/// Joins, then streams until the browser or the relay goes; returns how the session should close.
async fn serve<W: Sink<Message> + Unpin>(
    sink: &mut W,
    relay: &Relay,
    sub: &Subscription,
    resume: Option<Resume>,
) -> Result<(), Close> {
    let backlog = &relay.backlog;
    let metrics = &relay.metrics;
    let mut changed = backlog.changed();
    let Some((mut current, mut cursor)) = join(relay, sub, resume, &mut changed).await? else {
        return Ok(());
    };
    send(
        sink,
        metrics,
        Bytes::from(wire::encode_hello(&current.epoch, cursor.offset)),
    )
    .await?;
    if let Some(snapshot) = cursor.snapshot.take() {
        send(sink, metrics, Bytes::from(snapshot)).await?;
    }
    let mut cursor = cursor.offset;
    let mut last_sent = Instant::now();
    loop {
        // Mark the version seen *before* reading, so an append between the read and the wait still wakes us.
        changed.borrow_and_update();
        match backlog.read(&current, cursor, READ_BUDGET) {
            Read::Batches(batches) => {
                let mut message = vec![];
                for batch in &batches {
                    for (start, bytes) in sub.select(batch, cursor, &relay.allow) {
                        if message.is_empty() {
                            message = wire::begin_commands();
                        }
                        wire::push_segment(&mut message, start, &bytes);
                    }
                    cursor = batch.end;
                }
                let progress_due = last_sent.elapsed() >= PROGRESS_INTERVAL;
                if !message.is_empty() || progress_due {
                    if message.is_empty() {
                        message = wire::begin_commands();
                    }
                    // An empty segment at the cursor: "the stream reached here", for resuming later.
                    wire::push_segment(&mut message, cursor, &[]);
                    send(sink, metrics, Bytes::from(message)).await?;
                    last_sent = Instant::now();
                }
            }
            Read::Wait => {
                if changed.changed().await.is_err() {
                    return Ok(());
                }
            }
            Read::Restarted { stream, .. } => {
                // A full resync of the link: what the browser holds may be stale. Join again, with a snapshot.
                let Some(mut rejoin) = join(relay, sub, None, &mut changed).await? else {
                    return Ok(());
                };
                tracing::debug!(epoch = %stream.epoch, "session rejoined after a full resync of the link");
                current = rejoin.0;
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

/// Where a session starts: its offset, and the snapshot message to send first when it did not resume.
struct Start {
    offset: u64,
    snapshot: Option<Vec<u8>>,
}

/// Resumes inside the backlog if asked and possible, else takes a snapshot and waits for the link to reach it.
/// `Ok(None)`: the relay is going away.
async fn join(
    relay: &Relay,
    sub: &Subscription,
    resume: Option<Resume>,
    changed: &mut watch::Receiver<u64>,
) -> Result<Option<(BacklogStream, Start)>, Close> {
    let backlog = &relay.backlog;
    // Wait for the link's first sync.
    let (stream, at, resumed) = loop {
        changed.borrow_and_update();
        if let Some(joined) = backlog.join(resume.as_ref().map(|r| (r.epoch.as_str(), r.offset))) {
            break joined;
        }
        if changed.changed().await.is_err() {
            return Ok(None);
        }
    };
    if resumed {
        Metrics::add(&relay.metrics.resumes, 1);
        return Ok(Some((
            stream,
            Start {
                offset: at,
                snapshot: None,
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
                        snapshot: Some(message),
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
