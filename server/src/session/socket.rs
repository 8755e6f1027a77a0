//! What a session writes to its browser, one binary message at a time, and how it ends: [`Close`], with the code
//! RFC 6455 (or its registry) gives the reason. A browser that accepts nothing for [`SEND_TIMEOUT`] is closed.

use std::time::Duration;

use axum::extract::ws::Message;
use bytes::Bytes;
use futures_util::{Sink, SinkExt};

use crate::metrics::Metrics;

/// A browser that accepts nothing for this long is disconnected; its cursor would fall out of the backlog anyway.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// WebSocket close codes (RFC 6455 and its registry).
pub(crate) const CLOSE_GOING_AWAY: u16 = 1001;
pub(crate) const CLOSE_PROTOCOL: u16 = 1002;
pub(crate) const CLOSE_NOT_UTF8: u16 = 1007;
pub(crate) const CLOSE_POLICY: u16 = 1008;
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;
pub(crate) const CLOSE_INTERNAL: u16 = 1011;
pub(crate) const CLOSE_TRY_AGAIN: u16 = 1013;
/// An application code (RFC 6455 leaves 4000–4999 to applications): the session's signed token expired.
pub(crate) const CLOSE_TOKEN_EXPIRED: u16 = 4001;

/// Why a session ended early, with the close code and reason the browser gets.
pub(crate) struct Close(pub(crate) u16, pub(crate) String);

/// Sends one binary message; an error ends the session (the browser left, or stopped reading).
pub(crate) async fn send<W: Sink<Message> + Unpin>(
    sink: &mut W,
    metrics: &Metrics,
    message: Bytes,
) -> Result<(), Close> {
    let len = message.len() as u64;
    deliver(sink, Message::Binary(message)).await?;
    Metrics::add(&metrics.messages_sent, 1);
    Metrics::add(&metrics.bytes_sent, len);
    Ok(())
}

/// Writes `message` to the socket as it is (a shard's message is counted where it was made).
pub(crate) async fn deliver<W: Sink<Message> + Unpin>(
    sink: &mut W,
    message: Message,
) -> Result<(), Close> {
    match tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Close(CLOSE_GOING_AWAY, "send failed".into())),
        Err(_) => {
            tracing::info!("session accepted nothing for {SEND_TIMEOUT:?}; closing it");
            Err(Close(CLOSE_POLICY, "stopped reading".into()))
        }
    }
}
