//! The relay's HTTP side: the page, the wasm package under `/pkg`, the WebSocket stream at `/ws`, and `/healthz`
//! and `/metrics` for operators.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::watch;
use tower_http::services::ServeDir;

use crate::backlog::Backlog;
use crate::metrics::Metrics;
use crate::session::{self, Resume};
use crate::snapshot::Snapshotter;
use crate::subscription::Allow;

/// Largest message a browser may send. Browsers only send small control messages.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

#[derive(Clone)]
pub struct Relay {
    pub backlog: Arc<Backlog>,
    pub metrics: Arc<Metrics>,
    /// Becomes `true` when the relay shuts down.
    pub shutdown: Arc<watch::Sender<bool>>,
    pub snapshots: Arc<Snapshotter>,
    /// Keys that may leave the relay (`--allow`).
    pub allow: Arc<Allow>,
}

pub fn router(relay: Relay, www: &Path, pkg: &Path) -> Router {
    Router::new()
        .route("/ws", get(websocket))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .nest_service("/pkg", ServeDir::new(pkg))
        .fallback_service(ServeDir::new(www))
        .with_state(relay)
}

/// `/ws?epoch=<replid>&offset=<n>`: both or neither; with them, the session resumes inside the backlog if it can.
#[derive(Deserialize)]
struct WsQuery {
    epoch: Option<String>,
    offset: Option<u64>,
}

async fn websocket(
    upgrade: WebSocketUpgrade,
    Query(query): Query<WsQuery>,
    State(relay): State<Relay>,
) -> Response {
    let resume = match (query.epoch, query.offset) {
        (Some(epoch), Some(offset)) => Some(Resume { epoch, offset }),
        (None, None) => None,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "give both epoch and offset to resume, or neither\n",
            )
                .into_response()
        }
    };
    upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| {
            let (sink, stream) = socket.split();
            session::run(sink, stream, relay, resume)
        })
}

async fn healthz(State(relay): State<Relay>) -> Response {
    match relay.backlog.position() {
        Some((stream, offset)) if relay.backlog.is_live() => {
            format!("ok: streaming epoch {} at offset {offset}\n", stream.epoch).into_response()
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable: the replica link is not streaming\n",
        )
            .into_response(),
    }
}

async fn metrics(State(relay): State<Relay>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        relay.metrics.render(&relay.backlog),
    )
        .into_response()
}
