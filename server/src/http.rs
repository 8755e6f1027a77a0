//! The relay's HTTP side: the pages and the wasm packages under `/pkg` and `/pkg-rdb` (`static_files.rs`),
//! the WebSocket stream at `/ws`, and `/healthz` and `/metrics` for operators. Every route first checks the
//! request's `Host` (`access.rs`: against DNS rebinding), and `/ws` the rest of what an upgrade must pass before a
//! session starts.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, Request, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::Router;
use futures_util::StreamExt;
use replicast_protocol::client_message::MAX_CLIENT_MESSAGE;
use serde::Deserialize;

use crate::access::{presented_token, PeerSlot};
use crate::connections::{self, ConnectionLimits, Outbound};
use crate::metrics::Refusal;
use crate::operator_access::operator_access;
use crate::relay::Relay;
use crate::session::{Resume, Session};
use crate::shutdown_signal;
use crate::static_files::StaticFiles;
use crate::tokens::TokenError;

/// Per-session socket buffers. tungstenite's defaults (128 KiB to read, 128 KiB to write) would cost 256 MiB at
/// 1,000 sessions; browsers send a few small messages, and the relay writes whole batches, so small buffers do.
const READ_BUFFER: usize = 4 * 1024;
const WRITE_BUFFER: usize = 0;
/// How long sessions get to send their close (1001, going away) once the relay stops: upgraded WebSockets outlive
/// the HTTP server's stop.
const SESSIONS_CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Refuses, on every route, a request whose `Host` the relay does not answer to (see `access.rs`).
async fn answered_hosts_only(State(relay): State<Relay>, request: Request, next: Next) -> Response {
    match relay.access.check_host(request.headers()) {
        Ok(()) => next.run(request).await,
        Err((status, reason)) => {
            relay.metrics.refuse(Refusal::Host);
            tracing::info!(%status, "request refused: {}", reason.trim_end());
            (status, reason).into_response()
        }
    }
}

/// Serves the relay's routes on `listener` (the page's `files`, if it serves one; the history sink's address for
/// the page) until Ctrl-C or
/// SIGTERM; then sessions close with 1001 (going away), given [`SESSIONS_CLOSE_GRACE`] to send it.
pub async fn serve(
    relay: Relay,
    listener: tokio::net::TcpListener,
    files: Option<Arc<StaticFiles>>,
    history: Option<&str>,
    limits: ConnectionLimits,
) {
    let shutdown = relay.shutdown.clone();
    let metrics = relay.metrics.clone();
    let trusted_proxies = relay.trusted_proxies.clone();
    let app = router(relay, files, history);
    let stop = async move {
        shutdown_signal().await;
        // Sessions close their sockets with 1001 (going away) when they see this.
        shutdown.send_replace(true);
    };
    connections::serve(
        listener,
        app,
        limits,
        metrics.clone(),
        trusted_proxies,
        stop,
    )
    .await;
    let deadline = tokio::time::Instant::now() + SESSIONS_CLOSE_GRACE;
    while metrics.sessions.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `files`: the page's, answering every path no route takes (none: those 404). `history`: the history sink's base
/// URL, answered at `/config.json` for the page (`www/js/history.js`).
pub fn router(relay: Relay, files: Option<Arc<StaticFiles>>, history: Option<&str>) -> Router {
    let mut routes = Router::new();
    if let Some(url) = history {
        let config = serde_json::json!({ "history": url }).to_string();
        routes = routes.route(
            "/config.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], config) }),
        );
    }
    if let Some(files) = files {
        routes = routes.fallback(move |method, uri, headers: HeaderMap| async move {
            files.respond(&method, &uri, &headers)
        });
    }
    routes
        .route("/ws", get(websocket))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/profile", get(profile))
        .merge(crate::verify_endpoint::routes())
        .layer(middleware::from_fn_with_state(
            relay.clone(),
            answered_hosts_only,
        ))
        .with_state(relay)
}

/// `/ws?epoch=<replid>&offset=<n>`: both or neither; with them, the session resumes inside the backlog if it can.
/// `/ws?at=<replid>:<n>,<replid>:<n>…`: the same for several streams (a cluster's shards), each resumed on its own.
/// `token=<t>` when the relay requires one. `ended=1`: the client reads the ended message (a shard's stream ended
/// because the shard left the cluster; the history sink asks for it, a browser's client does not).
#[derive(Deserialize)]
struct WsQuery {
    epoch: Option<String>,
    offset: Option<u64>,
    at: Option<String>,
    token: Option<String>,
    ended: Option<u8>,
}

/// Most streams one `at=` may name: [`replicast_protocol::wire::MAX_SHARDS`].
const MAX_RESUME_STREAMS: usize = replicast_protocol::wire::MAX_SHARDS;
/// Longest epoch a browser may resume from, in `epoch=` and `at=`: epochs are replication IDs (40 bytes), and a
/// session holds the one it resumed from while it runs.
const MAX_RESUME_EPOCH: usize = 64;

fn valid_epoch(epoch: &str) -> bool {
    (1..=MAX_RESUME_EPOCH).contains(&epoch.len())
}

/// The `at=` list: `epoch:offset` pairs, comma-separated.
fn parse_at(at: &str) -> Result<Vec<Resume>, String> {
    let mut out = Vec::new();
    for (i, entry) in at.split(',').filter(|e| !e.is_empty()).enumerate() {
        if i == MAX_RESUME_STREAMS {
            return Err(format!(
                "at= names more than {MAX_RESUME_STREAMS} streams\n"
            ));
        }
        let parsed = entry.rsplit_once(':').and_then(|(epoch, offset)| {
            Some(Resume {
                epoch: valid_epoch(epoch).then(|| epoch.to_string())?,
                offset: offset.parse().ok()?,
            })
        });
        match parsed {
            Some(resume) => out.push(resume),
            None => {
                return Err(format!(
                    "at= entry {} is not <epoch>:<offset> (an epoch of 1 to 64 bytes, a decimal offset)\n",
                    i + 1
                ))
            }
        }
    }
    Ok(out)
}

async fn websocket(
    upgrade: WebSocketUpgrade,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(outbound): Extension<Arc<Outbound>>,
    headers: HeaderMap,
    Query(query): Query<WsQuery>,
    State(relay): State<Relay>,
) -> Response {
    let sessions = relay.metrics.sessions.load(Ordering::Relaxed);
    let client = relay.trusted_proxies.client(peer, &headers);
    let admitted = relay
        .access
        .check(&headers, query.token.as_deref(), sessions)
        .and_then(|()| admit_peer(&relay, client.ip()));
    let slot = match admitted {
        Ok(slot) => slot,
        Err((status, reason)) => {
            relay.metrics.refuse(match status {
                StatusCode::UNAUTHORIZED => Refusal::Token,
                StatusCode::SERVICE_UNAVAILABLE => Refusal::MaxSessions,
                StatusCode::TOO_MANY_REQUESTS => Refusal::SessionsPerAddress,
                // The Host was checked before any route: a 403 here is the page's Origin.
                _ => Refusal::Origin,
            });
            tracing::info!(%status, %peer, %client, "WebSocket upgrade refused: {}", reason.trim_end());
            return (status, reason).into_response();
        }
    };
    // A signed token is checked after everything else, so that a refusal for it is a close frame the page can
    // read (a browser sees nothing of an HTTP refusal), with its reason.
    let grant = relay.tokens.as_ref().map(|tokens| {
        let grant =
            tokens.verify(presented_token(&headers, query.token.as_deref()).unwrap_or(""))?;
        let slot = tokens.admit(&grant)?;
        Ok::<_, TokenError>((Arc::new(grant), slot))
    });
    let mut resume = match (query.epoch, query.offset) {
        (Some(epoch), Some(offset)) if valid_epoch(&epoch) => vec![Resume { epoch, offset }],
        (Some(_), Some(_)) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("epoch= is 1 to {MAX_RESUME_EPOCH} bytes\n"),
            )
                .into_response()
        }
        (None, None) => Vec::new(),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "give both epoch and offset to resume, or neither\n",
            )
                .into_response()
        }
    };
    if let Some(at) = &query.at {
        match parse_at(at) {
            Ok(streams) => resume.extend(streams),
            Err(reason) => return (StatusCode::BAD_REQUEST, reason).into_response(),
        }
    }
    let reads_ended = match query.ended {
        None | Some(0) => false,
        Some(1) => true,
        Some(_) => return (StatusCode::BAD_REQUEST, "ended= is 0 or 1\n").into_response(),
    };
    upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        // A frame is refused from its header, before any of it is buffered: tungstenite's default would reserve
        // and read up to 16 MiB per session before the message limit applies.
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            // The address's slot is held for as long as the session runs.
            let _slot = slot;
            let (sink, stream) = socket.split();
            // The subject's slot too, with a signed token.
            let (relay, grant, _subject_slot) = match grant {
                None => (relay, None, None),
                Some(Ok((grant, slot))) => (relay.for_grant(&grant), Some(grant), Some(slot)),
                Some(Err(refused)) => {
                    relay.metrics.refuse(refused.refusal());
                    tracing::info!(%peer, %client, "session refused: {refused}");
                    let identity = relay.events.identity(client, None);
                    return Session::new(
                        sink,
                        stream,
                        relay,
                        resume,
                        reads_ended,
                        identity,
                        &outbound,
                    )
                    .refuse(refused.to_string())
                    .await;
                }
            };
            let identity = relay.events.identity(client, grant);
            Session::new(
                sink,
                stream,
                relay,
                resume,
                reads_ended,
                identity,
                &outbound,
            )
            .run()
            .await
        })
}

/// A slot for one more session from `ip`, or the refusal that names `--max-sessions-per-address`.
fn admit_peer(relay: &Relay, ip: IpAddr) -> Result<PeerSlot, (StatusCode, String)> {
    let limit = relay.access.max_sessions_per_address;
    relay.peers.admit(ip, limit).map_err(|held| {
        (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{ip} has {held} sessions open, the most one address may hold (see --max-sessions-per-address)\n"
            ),
        )
    })
}

async fn healthz(State(relay): State<Relay>) -> Response {
    match relay.topology.health() {
        (true, text) => text.into_response(),
        (false, text) => (StatusCode::SERVICE_UNAVAILABLE, text).into_response(),
    }
}

/// `/profile?token=<t>`: the write profile (`profile/mod.rs`) as JSON, behind the sessions' token and Origin checks:
/// it names keys, though only keys `--allow` lets leave.
#[derive(Deserialize)]
struct ProfileQuery {
    token: Option<String>,
}

async fn profile(
    headers: HeaderMap,
    Query(query): Query<ProfileQuery>,
    State(relay): State<Relay>,
) -> Response {
    if let Err(refused) = operator_access(
        &relay,
        &headers,
        query.token.as_deref(),
        "the write profile",
    ) {
        return refused.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        relay.profile.to_json().to_string(),
    )
        .into_response()
}

async fn metrics(State(relay): State<Relay>) -> Response {
    let mut text = relay.topology.render_metrics();
    text.push_str(&relay.metrics.render());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_lists_name_epochs_and_offsets() {
        let at = parse_at("e1:10,e2:0").unwrap();
        assert_eq!(
            at,
            vec![
                Resume {
                    epoch: "e1".into(),
                    offset: 10
                },
                Resume {
                    epoch: "e2".into(),
                    offset: 0
                }
            ]
        );
        assert!(parse_at("").unwrap().is_empty());
        assert_eq!(
            parse_at("e1:10,e2").unwrap_err(),
            "at= entry 2 is not <epoch>:<offset> (an epoch of 1 to 64 bytes, a decimal offset)\n"
        );
        assert!(parse_at(":5").is_err());
        assert!(parse_at(&format!("{}:1", "e".repeat(65))).is_err());
        let many = vec!["e:1"; 1025].join(",");
        assert_eq!(
            parse_at(&many).unwrap_err(),
            "at= names more than 1024 streams\n"
        );
    }
}
