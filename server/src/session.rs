//! One browser's WebSocket session: a hello, then the backlog from the session's cursor on.
//!
//! Generic over the socket's sink and stream, so tests can drive it without a network. One half sends, the other
//! reads what the browser says (nothing yet but close), and `select!` ends both when either ends.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use replicast_wasm::wire;
use tokio::sync::watch;

use crate::backlog::{Backlog, Read};
use crate::metrics::Metrics;

/// Stream bytes a session takes from the backlog per read: enough to batch, small enough to stay fair.
const READ_BUDGET: usize = 1024 * 1024;
/// A browser that accepts nothing for this long is disconnected; its cursor would fall out of the backlog anyway.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// WebSocket close code for "try again later" (RFC 6455 registry: 1013), sent with a resync.
const CLOSE_TRY_AGAIN: u16 = 1013;
/// WebSocket close code for "going away", sent when the relay shuts down.
const CLOSE_GOING_AWAY: u16 = 1001;

/// Where a browser asks to resume: the epoch and offset its windows are at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub epoch: String,
    pub offset: u64,
}

pub async fn run<W, R, E>(
    mut sink: W,
    mut stream: R,
    backlog: Arc<Backlog>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
    resume: Option<Resume>,
) where
    W: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
{
    Metrics::add(&metrics.sessions_total, 1);
    Metrics::add(&metrics.sessions, 1);
    let send = async {
        let mut changed = backlog.changed();
        let (mut current, mut cursor) = loop {
            changed.borrow_and_update();
            if let Some((stream, at, resumed)) =
                backlog.join(resume.as_ref().map(|r| (r.epoch.as_str(), r.offset)))
            {
                if resumed {
                    Metrics::add(&metrics.resumes, 1);
                }
                break (stream, at);
            }
            changed.changed().await.ok()?;
        };
        send(
            &mut sink,
            &metrics,
            Bytes::from(wire::encode_hello(&current.epoch, cursor)),
        )
        .await?;
        loop {
            // Mark the version seen *before* reading, so an append between the read and the wait still wakes us.
            changed.borrow_and_update();
            match backlog.read(&current, cursor, READ_BUDGET) {
                Read::Batches(batches) => {
                    for batch in batches {
                        cursor = batch.end;
                        send(&mut sink, &metrics, batch.message).await?;
                    }
                }
                Read::Wait => changed.changed().await.ok()?,
                Read::Restarted { stream, offset } => {
                    current = stream;
                    cursor = offset;
                    send(
                        &mut sink,
                        &metrics,
                        Bytes::from(wire::encode_hello(&current.epoch, cursor)),
                    )
                    .await?;
                }
                Read::Behind { start } => {
                    Metrics::add(&metrics.resyncs, 1);
                    let reason = format!("fell behind the relay's backlog (at offset {cursor}, backlog starts at {start})");
                    tracing::info!("session {reason}; asking it to resync");
                    send(
                        &mut sink,
                        &metrics,
                        Bytes::from(wire::encode_resync(&reason)),
                    )
                    .await?;
                    let close = CloseFrame {
                        code: CLOSE_TRY_AGAIN,
                        reason: "resync".into(),
                    };
                    let _ = sink.send(Message::Close(Some(close))).await;
                    return None::<()>;
                }
            }
        }
    };
    let receive = async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let shut = tokio::select! {
        _ = send => false,
        _ = receive => false,
        _ = shutdown.wait_for(|down| *down) => true,
    };
    if shut {
        let close = CloseFrame {
            code: CLOSE_GOING_AWAY,
            reason: "relay shutting down".into(),
        };
        let _ = sink.send(Message::Close(Some(close))).await;
    }
    metrics
        .sessions
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

/// Sends one binary message; `None` ends the session (the browser left, or stopped reading).
async fn send<W: Sink<Message> + Unpin>(
    sink: &mut W,
    metrics: &Metrics,
    message: Bytes,
) -> Option<()> {
    let len = message.len() as u64;
    match tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Binary(message))).await {
        Ok(Ok(())) => {
            Metrics::add(&metrics.messages_sent, 1);
            Metrics::add(&metrics.bytes_sent, len);
            Some(())
        }
        Ok(Err(_)) => None,
        Err(_) => {
            tracing::info!("session accepted nothing for {SEND_TIMEOUT:?}; closing it");
            None
        }
    }
}
