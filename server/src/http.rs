//! The relay's HTTP side: the page, the wasm package under `/pkg`, the WebSocket stream at `/ws`, and `/healthz`
//! and `/metrics` for operators.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Query, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::watch;
use tower_http::services::ServeDir;

use crate::backlog::Backlog;
use crate::events::Events;
use crate::metrics::Metrics;
use crate::session::{self, Resume};
use crate::snapshot::Snapshotter;
use crate::subscription::Allow;

/// Largest message a browser may send. Browsers only send small control messages and events.
pub const MAX_CLIENT_MESSAGE: usize = replicast_wasm::wire::MAX_CLIENT_MESSAGE;
/// Per-session socket buffers. tungstenite's defaults (128 KiB to read, 128 KiB to write) would cost 256 MiB at
/// 1,000 sessions; browsers send a few small messages, and the relay writes whole batches, so small buffers do.
const READ_BUFFER: usize = 4 * 1024;
const WRITE_BUFFER: usize = 0;

#[derive(Clone)]
pub struct Relay {
    pub backlog: Arc<Backlog>,
    pub metrics: Arc<Metrics>,
    /// Becomes `true` when the relay shuts down.
    pub shutdown: Arc<watch::Sender<bool>>,
    pub snapshots: Arc<Snapshotter>,
    /// Keys that may leave the relay (`--allow`).
    pub allow: Arc<Allow>,
    pub access: Arc<Access>,
    /// Sessions open per peer address.
    pub peers: Arc<Peers>,
    /// What browsers may append to Redis (`--writable`), and the writer that does.
    pub events: Arc<Events>,
    /// Following a Redis Cluster (`--cluster`): its shards, each with its own backlog and snapshots, which
    /// sessions use instead of `backlog` and `snapshots`.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// Who may open a session.
#[derive(Debug, Default)]
pub struct Access {
    /// A bearer token every session must present (`Authorization: Bearer …`, or `?token=` from browsers, whose
    /// WebSocket API cannot set headers).
    pub token: Option<String>,
    /// Origins a browser page may connect from; empty means the relay's own origin only. `*` allows any.
    pub origins: Vec<String>,
    pub max_sessions: u64,
    /// Most sessions one peer address may hold at once (`--max-sessions-per-address`).
    pub max_sessions_per_address: u64,
}

/// Default of `--max-sessions-per-address`: a tenth of the default `--max-sessions`, so that one host cannot take
/// every session, yet a thousand browsers behind one NAT, or a benchmark's thousand clients, fit.
pub const DEFAULT_MAX_SESSIONS_PER_ADDRESS: u64 = 1000;

/// The sessions each peer address holds now, for `--max-sessions-per-address`.
#[derive(Debug, Default)]
pub struct Peers {
    open: Mutex<HashMap<IpAddr, u64>>,
}

/// One session's place in its address's count, given back when dropped (when the session ends, or when the
/// upgrade it was taken for never completes).
#[derive(Debug)]
pub struct PeerSlot {
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl Peers {
    /// A slot for one more session from `ip` if it holds fewer than `limit`; else how many it holds.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, limit: u64) -> Result<PeerSlot, u64> {
        // `::ffff:127.0.0.1` and `127.0.0.1` are one peer.
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let held = open.entry(ip).or_default();
        if *held >= limit {
            return Err(*held);
        }
        *held += 1;
        Ok(PeerSlot {
            peers: self.clone(),
            ip,
        })
    }

    /// Sessions `ip` holds now.
    pub fn held(&self, ip: IpAddr) -> u64 {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&ip.to_canonical()).copied().unwrap_or(0)
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.peers.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = open.get_mut(&self.ip) {
            *held -= 1;
            if *held == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl Access {
    /// Why the upgrade request must be refused, if it must: the token, the page's origin, the session cap.
    pub fn check(
        &self,
        headers: &HeaderMap,
        token: Option<&str>,
        sessions: u64,
    ) -> Result<(), (StatusCode, String)> {
        if let Some(want) = &self.token {
            let bearer = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let given = bearer.or(token).unwrap_or("");
            if !constant_time_eq(given.as_bytes(), want.as_bytes()) {
                return Err((StatusCode::UNAUTHORIZED, "missing or wrong token\n".into()));
            }
        }
        if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let same_origin = origin
                .split_once("://")
                .is_some_and(|(_, rest)| rest == host);
            let listed = self.origins.iter().any(|o| o == "*" || o == origin);
            if !same_origin && !listed {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!("origin {origin} is not allowed (see --origin)\n"),
                ));
            }
        }
        if sessions >= self.max_sessions {
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the relay serves at most {} sessions (see --max-sessions)\n",
                    self.max_sessions
                ),
            ));
        }
        Ok(())
    }
}

/// Compares without stopping at the first difference, so response times do not leak how much of a token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
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
/// `/ws?at=<replid>:<n>,<replid>:<n>…`: the same for several streams (a cluster's shards), each resumed on its own.
/// `token=<t>` when the relay requires one.
#[derive(Deserialize)]
struct WsQuery {
    epoch: Option<String>,
    offset: Option<u64>,
    at: Option<String>,
    token: Option<String>,
}

/// Most streams one `at=` may name: [`replicast_wasm::wire::MAX_SHARDS`].
const MAX_RESUME_STREAMS: usize = replicast_wasm::wire::MAX_SHARDS;

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
            let valid = !epoch.is_empty() && epoch.len() <= 64;
            Some(Resume {
                epoch: valid.then(|| epoch.to_string())?,
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
    headers: HeaderMap,
    Query(query): Query<WsQuery>,
    State(relay): State<Relay>,
) -> Response {
    let sessions = relay
        .metrics
        .sessions
        .load(std::sync::atomic::Ordering::Relaxed);
    let admitted = relay
        .access
        .check(&headers, query.token.as_deref(), sessions)
        .and_then(|()| admit_peer(&relay, peer.ip()));
    let slot = match admitted {
        Ok(slot) => slot,
        Err((status, reason)) => {
            crate::metrics::Metrics::add(&relay.metrics.refusals, 1);
            tracing::info!(%status, %peer, "WebSocket upgrade refused: {}", reason.trim_end());
            return (status, reason).into_response();
        }
    };
    let mut resume = match (query.epoch, query.offset) {
        (Some(epoch), Some(offset)) => vec![Resume { epoch, offset }],
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
            let identity = relay.events.identity(peer);
            let (sink, stream) = socket.split();
            session::run(sink, stream, relay, resume, identity).await
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
    if let Some(cluster) = &relay.cluster {
        return cluster_health(cluster);
    }
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
    let mut text = relay.metrics.render(&relay.backlog);
    if let Some(cluster) = &relay.cluster {
        text.push_str(&crate::metrics::render_shards(&cluster.view().shards));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Healthy when every shard's link streams; the text names each shard's node, epoch and offset.
fn cluster_health(cluster: &crate::cluster::Cluster) -> Response {
    let view = cluster.view();
    let mut lines = Vec::new();
    let mut live = !view.shards.is_empty();
    for shard in &view.shards {
        let node = shard.upstream.current().addr();
        match shard.backlog.position() {
            Some((stream, offset)) if shard.backlog.is_live() => lines.push(format!(
                "shard {} ({node}): epoch {} at offset {offset}",
                shard.number, stream.epoch
            )),
            _ => {
                live = false;
                lines.push(format!("shard {} ({node}): not streaming", shard.number));
            }
        }
    }
    let text = format!(
        "{}: {} cluster shards\n{}\n",
        if live { "ok" } else { "unavailable" },
        view.shards.len(),
        lines.join("\n")
    );
    match live {
        true => text.into_response(),
        false => (StatusCode::SERVICE_UNAVAILABLE, text).into_response(),
    }
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

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn tokens_origins_and_caps_are_checked() {
        let access = Access {
            token: Some("s3cret".into()),
            origins: vec!["https://dash.example".into()],
            max_sessions: 2,
            max_sessions_per_address: 1,
        };
        let page =
            |origin: &str| headers(&[(header::HOST, "relay:8080"), (header::ORIGIN, origin)]);
        let ok = page("http://relay:8080");
        assert!(access.check(&ok, Some("s3cret"), 0).is_ok());
        assert_eq!(
            access.check(&ok, None, 0).unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            access.check(&ok, Some("s3cre"), 0).unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
        let bearer = headers(&[(header::AUTHORIZATION, "Bearer s3cret")]);
        assert!(
            access.check(&bearer, None, 0).is_ok(),
            "non-browser clients use the header and send no Origin"
        );
        assert!(access
            .check(&page("https://dash.example"), Some("s3cret"), 0)
            .is_ok());
        assert_eq!(
            access
                .check(&page("https://evil.example"), Some("s3cret"), 0)
                .unwrap_err()
                .0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            access.check(&ok, Some("s3cret"), 2).unwrap_err().0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn each_address_holds_at_most_its_share_of_sessions() {
        let peers = Arc::new(Peers::default());
        let home: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let first = peers.admit(home, 2).unwrap();
        let second = peers.admit(mapped, 2).unwrap();
        assert_eq!(
            peers.admit(home, 2).unwrap_err(),
            2,
            "one peer, however written"
        );
        let elsewhere = peers.admit(other, 2).unwrap();
        assert_eq!((peers.held(home), peers.held(other)), (2, 1));
        drop(first);
        let third = peers.admit(home, 2).unwrap();
        drop((second, third, elsewhere));
        assert_eq!((peers.held(home), peers.held(other)), (0, 0));
        assert!(
            peers.open.lock().unwrap().is_empty(),
            "no entry outlives its sessions"
        );
    }
}
