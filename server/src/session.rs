//! One browser's WebSocket session: a hello, then every relay message as it is published.
//!
//! Generic over the socket's sink and stream, so tests can drive it without a network. One half sends, the other
//! reads what the browser says (nothing yet but close), and `select!` ends both when either ends.

use std::sync::Arc;

use axum::extract::ws::Message;
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use replicast_wasm::wire;
use tokio::sync::broadcast::error::RecvError;

use crate::hub::Hub;

pub async fn run<W, R, E>(mut sink: W, mut stream: R, hub: Arc<Hub>)
where
    W: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
{
    let mut messages = hub.subscribe();
    let hello = hub.hello();
    let send = async {
        // `None` ends the session: the browser left, or fell behind.
        if let Some(hello) = hello {
            sink.send(Message::Binary(hello)).await.ok()?;
        }
        loop {
            match messages.recv().await {
                Ok(message) => sink.send(Message::Binary(message)).await.ok()?,
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "session fell behind the relay; asking it to resync");
                    let reason = format!("fell {missed} messages behind the relay");
                    let _ = sink
                        .send(Message::Binary(Bytes::from(wire::encode_resync(&reason))))
                        .await;
                    let _ = sink.close().await;
                    return None::<()>;
                }
                Err(RecvError::Closed) => return None,
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
    tokio::select! {
        _ = send => {}
        _ = receive => {}
    }
}
