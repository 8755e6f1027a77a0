//! The relay's HTTP side: the page, the wasm package under `/pkg`, and the WebSocket stream at `/ws`.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use tower_http::services::ServeDir;

use crate::hub::Hub;
use crate::session;

/// Largest message a browser may send. Browsers only send small control messages.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

pub fn router(hub: Arc<Hub>, www: &Path, pkg: &Path) -> Router {
    Router::new()
        .route("/ws", get(websocket))
        .nest_service("/pkg", ServeDir::new(pkg))
        .fallback_service(ServeDir::new(www))
        .with_state(hub)
}

async fn websocket(upgrade: WebSocketUpgrade, State(hub): State<Arc<Hub>>) -> Response {
    upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| {
            let (sink, stream) = socket.split();
            session::run(sink, stream, hub)
        })
}
