//! Where the sink's sessions with the relay go and how they are opened: the main session (`follow.rs`) and a
//! listing's (`listing.rs`) share the relay's address, token, patterns and message limit.

use std::time::Duration;

use ws_client::tungstenite::client::IntoClientRequest;
use ws_client::tungstenite::http::HeaderValue;

/// When a batch is handed to the writer.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Rows and changes.
    pub rows: usize,
    /// Bytes of rows, about.
    pub bytes: usize,
    /// Age of the batch's first change.
    pub age: Duration,
    /// Batches written at once (the writer's connections): a row of one is not sent again by the next ones.
    pub writing: usize,
}

/// Largest message read from the relay: a snapshot part is at most 64 MiB.
const MAX_MESSAGE: usize = 80 << 20;

/// Where and how the sink follows the relay.
pub struct Session {
    /// `ws://host:port/ws`.
    pub relay: String,
    pub token: Option<String>,
    /// The subscription's patterns (history and mirror), database and window.
    pub patterns: Vec<Vec<u8>>,
    /// The mirror's patterns alone: what a listing subscribes to (`listing.rs`).
    pub mirror_patterns: Vec<Vec<u8>>,
    pub db: u32,
    pub window: usize,
    pub limits: BatchLimits,
}

/// A WebSocket to the relay at `url`, with the session's token.
pub async fn connect(
    session: &Session,
    url: &str,
) -> anyhow::Result<ws_client::WebSocketStream<ws_client::MaybeTlsStream<tokio::net::TcpStream>>> {
    let mut request = url.into_client_request()?;
    if let Some(token) = &session.token {
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
    }
    let config = ws_client::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let (socket, _) = ws_client::connect_async_with_config(request, Some(config), false).await?;
    Ok(socket)
}
