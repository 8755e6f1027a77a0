//! The relay's TCP side: accepting connections, at most `--max-connections-per-address` open per peer address, a
//! complete request's headers within `--header-read-timeout`, HTTP/1.1 with the WebSocket upgrade, and a graceful
//! stop. (It replaces `axum::serve`, which sets neither a header timeout nor any cap on connections.)
//!
//! Each accepted socket is wrapped in a [`Connection`] that holds its address's slot for as long as the socket
//! lives, through the WebSocket upgrade, which outlives the HTTP exchange; and that records in [`Outbound`] whether
//! what the relay wrote is waiting for the peer to read it, which sessions use to bound what a peer that never
//! reads can make the relay queue (`session.rs`). Requests carry the peer's address (axum's `ConnectInfo`) and the
//! connection's `Outbound` as extensions.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::access::{PeerSlot, Peers};
use crate::client_address::TrustedProxies;
use crate::metrics::{Metrics, Refusal};

/// Default of `--header-read-timeout`: the time a client has to send a complete request's headers, from when the
/// relay starts waiting for them (a new connection, or the end of the previous response on a kept-alive one); past
/// it the connection is closed. Browsers and proxies send headers in one packet; a client trickling them
/// (slowloris) no longer holds a socket for ever.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of `--max-connections-per-address` beyond `--max-sessions-per-address`: each session is a connection,
/// and a page's loads, `/healthz` and `/metrics` need a few more.
pub const CONNECTIONS_BEYOND_SESSIONS: u64 = 100;
/// How long a stop waits for requests in flight (not WebSocket sessions, which end on their own).
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Whether bytes the relay wrote to a connection wait for the peer to read them: set when the socket refuses a
/// write (its buffers are full), cleared when a flush found everything written.
#[derive(Debug, Default)]
pub struct Outbound {
    waiting: AtomicBool,
}

impl Outbound {
    /// Whether the last write found the socket full, and nothing flushed it since.
    pub fn waiting(&self) -> bool {
        self.waiting.load(Ordering::Relaxed)
    }
}

/// An accepted socket with its address's slot and its [`Outbound`] state.
pub struct Connection {
    stream: TcpStream,
    outbound: Arc<Outbound>,
    _slot: PeerSlot,
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if written.is_pending() {
            self.outbound.waiting.store(true, Ordering::Relaxed);
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if written.is_pending() {
            self.outbound.waiting.store(true, Ordering::Relaxed);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writers flush after their last write went through (tungstenite: after its whole buffer).
        let flushed = Pin::new(&mut self.stream).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) {
            self.outbound.waiting.store(false, Ordering::Relaxed);
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// What one peer address may hold, and for how long an incomplete request.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// `--max-connections-per-address`.
    pub per_address: u64,
    /// `--header-read-timeout`.
    pub header_read_timeout: Duration,
}

/// Connections the kernel queues before the relay accepts them (it caps this at `net.core.somaxconn`). The usual
/// 128 overflows when hundreds of browsers reconnect at once after a relay restart, and each overflowed
/// connection then waits a second or more for the retransmitted SYN.
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with room for [`LISTEN_BACKLOG`] connections not yet accepted.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `router` on `listener` until `stop` resolves, then waits up to [`STOP_GRACE`] for requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    trusted_proxies: Arc<TrustedProxies>,
    stop: impl Future<Output = ()>,
) {
    let peers = Arc::new(Peers::default());
    // Each connection's task holds a receiver: the stop waits until all of them are dropped.
    let (stopping, stopped) = watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // A trusted proxy carries many clients' connections: its clients are limited by their sessions, each
        // counted at the address it forwards.
        let limit = match trusted_proxies.trusts(peer.ip()) {
            true => u64::MAX,
            false => limits.per_address,
        };
        let slot = match peers.admit(peer.ip(), limit) {
            Ok(slot) => slot,
            Err(held) => {
                metrics.refuse(Refusal::ConnectionsPerAddress);
                refuse(&stream, peer, held);
                continue;
            }
        };
        let outbound = Arc::new(Outbound::default());
        let io = TokioIo::new(Connection {
            stream,
            outbound: outbound.clone(),
            _slot: slot,
        });
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(outbound.clone());
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let mut connection =
                std::pin::pin!(builder.serve_connection(io, service).with_upgrades());
            tokio::select! {
                served = connection.as_mut() => return log_end(served, peer),
                _ = stopped.wait_for(|stopped| *stopped) => connection.as_mut().graceful_shutdown(),
            }
            log_end(connection.await, peer);
        });
    }
    drop(listener);
    stopping.send_replace(true);
    drop(stopped);
    let _ = tokio::time::timeout(STOP_GRACE, stopping.closed()).await;
}

fn log_end(served: Result<(), hyper::Error>, peer: SocketAddr) {
    if let Err(err) = served {
        // A header timeout, a malformed request, a peer that left: the peer's business, not the operator's.
        tracing::debug!(%peer, "connection ended: {err}");
    }
}

/// Answers a connection over its address's cap with a 429 that says why, written without reading the request
/// (a fresh socket's buffer takes it whole), and closes it.
fn refuse(stream: &TcpStream, peer: SocketAddr, held: u64) {
    let ip = peer.ip().to_canonical();
    let body = format!(
        "{ip} has {held} connections open, the most one address may hold (see --max-connections-per-address)\n"
    );
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(response.as_bytes());
    tracing::debug!(%peer, "connection refused: {}", body.trim_end());
}

/// After a failed `accept`: at once for errors of that one connection; else (out of file descriptors, say) the
/// error is logged and accepting waits a second, rather than spin on an error that persists.
async fn accept_failed(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept error: {err}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
