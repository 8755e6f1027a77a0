//! The relay's HTTP side: the page, the wasm package under `/pkg`, the WebSocket stream at `/ws`, and `/healthz`
//! and `/metrics` for operators.
//!
//! Against DNS rebinding (a page whose domain name comes to resolve to the relay's address, so that its requests
//! are same-origin to the browser), every route answers only requests whose `Host` is one the relay answers to:
//! an IP address, `localhost` (or a name under `.localhost`), or a `--public-host` name, as dev servers' allowed
//! hosts do; a rebinding page's requests carry its own domain name. A WebSocket page's `Origin` must then be the
//! relay's own (`http://` and the `Host`, or `https://` too for a `--public-host`, which a TLS proxy serves) or
//! listed with `--origin`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Query, Request, State, WebSocketUpgrade};
use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::Router;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::watch;
use tower_http::services::ServeDir;

use crate::backlog::Backlog;
use crate::connections::Outbound;
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
    /// Origins a browser page may connect from besides the relay's own (`--origin`). `*` allows any.
    pub origins: Vec<String>,
    /// Names the relay answers to besides IP addresses and `localhost` (`--public-host`), lowercase: exact, or,
    /// starting with a dot, that name and every name under it.
    pub public_hosts: Vec<String>,
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
    /// Why the upgrade request must be refused, if it must: the Host, the token, the page's origin, the session cap.
    pub fn check(
        &self,
        headers: &HeaderMap,
        token: Option<&str>,
        sessions: u64,
    ) -> Result<(), (StatusCode, String)> {
        self.check_host(headers)?;
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
        // Browsers always send one Origin; a request without is not a browser page's, and the token is its check.
        let mut origins = headers.get_all(header::ORIGIN).iter();
        if let Some(origin) = origins.next() {
            let host = headers.get(header::HOST);
            let allowed = origins.next().is_none()
                && (self.is_own_origin(origin, host)
                    || self
                        .origins
                        .iter()
                        .any(|o| o == "*" || o.as_bytes() == origin.as_bytes()));
            if !allowed {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!(
                        "origin {} is not allowed: not this relay's own, nor listed with --origin\n",
                        origin.as_bytes().escape_ascii()
                    ),
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

    /// Refuses a request whose `Host` the relay does not answer to; a request without one (HTTP/1.0, which no
    /// browser sends) is not a rebinding page's.
    pub fn check_host(&self, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
        let mut hosts = headers.get_all(header::HOST).iter();
        match (hosts.next(), hosts.next()) {
            (None, _) => Ok(()),
            (Some(host), None) if self.answers_to(host) => Ok(()),
            (Some(host), _) => Err((
                StatusCode::FORBIDDEN,
                format!(
                    "host {} is not one this relay answers to: an IP address, localhost, or a --public-host\n",
                    host.as_bytes().escape_ascii()
                ),
            )),
        }
    }

    /// Whether `host` (a `Host` header) names this relay.
    fn answers_to(&self, host: &HeaderValue) -> bool {
        let Some(name) = host_name(host.as_bytes()) else {
            return false;
        };
        is_ip_literal(&name)
            || name == "localhost"
            || name.ends_with(".localhost")
            || self.is_public_host(&name)
    }

    fn is_public_host(&self, name: &str) -> bool {
        self.public_hosts
            .iter()
            .any(|allowed| match allowed.strip_prefix('.') {
                Some(domain) => {
                    name == domain
                        || name
                            .strip_suffix(domain)
                            .is_some_and(|sub| sub.ends_with('.'))
                }
                None => name == allowed,
            })
    }

    /// Whether `origin` is the relay's own for a request with `host`: the same name and port, over `http` (the
    /// relay's own scheme), or `https` for a `--public-host` (a TLS proxy in front).
    fn is_own_origin(&self, origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
        let Some(host) = host.filter(|h| self.answers_to(h)) else {
            return false;
        };
        let Some((scheme, authority)) = origin.to_str().ok().and_then(|o| o.split_once("://"))
        else {
            return false;
        };
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return false,
        };
        let (Some(origin), Some(host)) = (
            authority_of(authority.as_bytes()),
            authority_of(host.as_bytes()),
        ) else {
            return false;
        };
        let name = host.host().to_ascii_lowercase();
        let same_place = origin.host().eq_ignore_ascii_case(&name)
            && origin.port_u16().unwrap_or(default_port) == host.port_u16().unwrap_or(default_port);
        same_place && (scheme == "http" || self.is_public_host(&name))
    }
}

/// A `Host` header's (or an origin's) `host[:port]`, with no user part: `None` if it is not one.
fn authority_of(value: &[u8]) -> Option<Authority> {
    if value.is_empty() || value.contains(&b'@') {
        return None;
    }
    Authority::try_from(value).ok()
}

/// A `Host` header's name, lowercase, without its port: `None` if the header is not a host.
fn host_name(host: &[u8]) -> Option<String> {
    authority_of(host).map(|a| a.host().to_ascii_lowercase())
}

/// Whether a host name is an IP address (`127.0.0.1`, `[::1]`): no DNS answer can make one point elsewhere.
fn is_ip_literal(name: &str) -> bool {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    bare.parse::<IpAddr>().is_ok()
}

/// Refuses, on every route, a request whose `Host` the relay does not answer to (see the module's comment).
async fn answered_hosts_only(State(relay): State<Relay>, request: Request, next: Next) -> Response {
    match relay.access.check_host(request.headers()) {
        Ok(()) => next.run(request).await,
        Err((status, reason)) => {
            Metrics::add(&relay.metrics.refusals, 1);
            tracing::info!(%status, "request refused: {}", reason.trim_end());
            (status, reason).into_response()
        }
    }
}

/// Compares without stopping at the first difference, so response times do not leak how much of a token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `history`: the history sink's base URL, answered at `/config.json` for the page (`www/js/history.js`).
pub fn router(relay: Relay, www: &Path, pkg: &Path, history: Option<&str>) -> Router {
    let mut routes = Router::new();
    if let Some(url) = history {
        let config = serde_json::json!({ "history": url }).to_string();
        routes = routes.route(
            "/config.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], config) }),
        );
    }
    routes
        .route("/ws", get(websocket))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .nest_service("/pkg", ServeDir::new(pkg))
        .fallback_service(ServeDir::new(www))
        .layer(middleware::from_fn_with_state(
            relay.clone(),
            answered_hosts_only,
        ))
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
    Extension(outbound): Extension<Arc<Outbound>>,
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
            session::run(sink, stream, relay, resume, identity, &outbound).await
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
            public_hosts: vec!["relay".into()],
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
    fn hosts_and_origins_resist_dns_rebinding() {
        let access = Access {
            token: None,
            origins: vec!["https://dash.example".into()],
            public_hosts: vec!["relay.example".into(), ".corp.example".into()],
            max_sessions: 10,
            max_sessions_per_address: 10,
        };
        let request = |host: Option<&[u8]>, origin: Option<&[u8]>| {
            let mut headers = HeaderMap::new();
            if let Some(host) = host {
                headers.insert(header::HOST, HeaderValue::from_bytes(host).unwrap());
            }
            if let Some(origin) = origin {
                headers.insert(header::ORIGIN, HeaderValue::from_bytes(origin).unwrap());
            }
            access
                .check(&headers, None, 0)
                .map_err(|(status, _)| status)
        };
        let forbidden = Err(StatusCode::FORBIDDEN);
        // The relay's own pages, addressed directly or through a public name.
        assert_eq!(
            request(Some(b"127.0.0.1:8080"), Some(b"http://127.0.0.1:8080")),
            Ok(())
        );
        assert_eq!(
            request(Some(b"[::1]:8080"), Some(b"http://[::1]:8080")),
            Ok(())
        );
        assert_eq!(
            request(Some(b"localhost:8080"), Some(b"http://localhost:8080")),
            Ok(())
        );
        assert_eq!(
            request(Some(b"LocalHost:8080"), Some(b"http://localhost:8080")),
            Ok(())
        );
        assert_eq!(
            request(Some(b"relay.example"), Some(b"https://relay.example")),
            Ok(())
        );
        assert_eq!(
            request(Some(b"relay.example:443"), Some(b"https://relay.example")),
            Ok(())
        );
        assert_eq!(
            request(Some(b"relay.example"), Some(b"http://relay.example")),
            Ok(())
        );
        assert_eq!(
            request(Some(b"a.corp.example"), Some(b"https://a.corp.example")),
            Ok(())
        );
        assert_eq!(
            request(Some(b"corp.example"), Some(b"https://corp.example")),
            Ok(())
        );
        // Listed origins, and clients that send none.
        assert_eq!(
            request(Some(b"127.0.0.1:8080"), Some(b"https://dash.example")),
            Ok(())
        );
        assert_eq!(request(Some(b"127.0.0.1:8080"), None), Ok(()));
        assert_eq!(request(None, None), Ok(()));
        // DNS rebinding: the page's own name as Host, with its origin or any other.
        assert_eq!(
            request(
                Some(b"evil.example:8080"),
                Some(b"http://evil.example:8080")
            ),
            forbidden
        );
        assert_eq!(request(Some(b"evil.example:8080"), None), forbidden);
        assert_eq!(
            request(Some(b"evil.example:8080"), Some(b"https://dash.example")),
            forbidden
        );
        assert_eq!(request(Some(b"xcorp.example"), None), forbidden);
        assert_eq!(request(Some(b"relay.example.evil"), None), forbidden);
        assert_eq!(request(Some(b"user@127.0.0.1"), None), forbidden);
        assert_eq!(request(Some(b""), None), forbidden);
        assert_eq!(request(Some(b"\xffhost"), None), forbidden);
        // Origins that are not the relay's own: another scheme, port or name, or no origin at all.
        assert_eq!(
            request(Some(b"127.0.0.1:8080"), Some(b"https://127.0.0.1:8080")),
            forbidden
        );
        assert_eq!(
            request(Some(b"127.0.0.1:8080"), Some(b"evil://127.0.0.1:8080")),
            forbidden
        );
        assert_eq!(
            request(Some(b"127.0.0.1:8080"), Some(b"http://127.0.0.1:8081")),
            forbidden
        );
        assert_eq!(
            request(Some(b"127.0.0.1:8080"), Some(b"http://127.0.0.1")),
            forbidden
        );
        assert_eq!(
            request(Some(b"127.0.0.1:8080"), Some(b"http://127.0.0.2:8080")),
            forbidden
        );
        assert_eq!(
            request(Some(b"127.0.0.1:8080"), Some(b"http://127.0.0.1:8080/x")),
            forbidden
        );
        assert_eq!(request(Some(b"127.0.0.1:8080"), Some(b"null")), forbidden);
        assert_eq!(request(Some(b"127.0.0.1:8080"), Some(b"")), forbidden);
        assert_eq!(
            request(Some(b"127.0.0.1:8080"), Some(b"http://127.0.0.1:8080\xff")),
            forbidden,
            "an origin that is not ASCII is checked too"
        );
        let mut two = HeaderMap::new();
        two.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        two.append(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        two.append(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert_eq!(
            access.check(&two, None, 0).unwrap_err().0,
            StatusCode::FORBIDDEN
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
