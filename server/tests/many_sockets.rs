//! Many sockets from one address against the relay binary: 10,000 connections from 127.0.0.1 get
//! `--max-sessions-per-address` sessions and a clear 429 each past it, while `/healthz` answers and other addresses
//! still join; connections past `--max-connections-per-address` get a 429 before their request is read; sockets
//! that trickle their headers (slowloris) or send none are closed after `--header-read-timeout`; and a relay out of
//! file descriptors (`accept` failing with `EMFILE`) keeps serving without spinning. Past `--max-sessions`, from
//! any address, an upgrade gets a 503 until a session ends.

mod support;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use replicast_protocol::wire;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::{tungstenite, MaybeTlsStream, WebSocketStream};

const SOCKETS: usize = 10_000;
const PER_ADDRESS: usize = 100;

/// This test process's own soft limit on open files, raised to the hard limit; it must hold `needed`.
fn raise_own_limit(needed: u64) {
    let raised = replicast_server::open_files::raise_to_hard_limit().unwrap();
    assert!(
        raised.after >= needed,
        "this test holds {needed} sockets, but the hard open-file limit is {} (raise it with ulimit -Hn)",
        raised.after
    );
}

/// What a WebSocket upgrade request on a fresh connection got.
enum Upgrade {
    Accepted(Box<WebSocketStream<TcpStream>>),
    Refused { status: u16, body: String },
}

/// A WebSocket upgrade on `stream`, by hand, so that a refusal's whole body is read (by its Content-Length).
async fn upgrade(mut stream: TcpStream, host: &str) -> Upgrade {
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    within("the relay's answer to the upgrade", async {
        let mut head = Vec::new();
        let end = loop {
            let mut byte = [0u8; 1];
            assert_eq!(
                stream.read(&mut byte).await.unwrap(),
                1,
                "the relay hung up mid-response"
            );
            head.push(byte[0]);
            if head.ends_with(b"\r\n\r\n") {
                break head.len();
            }
        };
        let head = String::from_utf8(head[..end].to_vec()).unwrap();
        let status: u16 = head[9..12].parse().unwrap();
        if status == 101 {
            let socket = WebSocketStream::from_raw_socket(stream, Role::Client, None).await;
            return Upgrade::Accepted(Box::new(socket));
        }
        let length = content_length(&head).expect("a refusal with a Content-Length");
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await.unwrap();
        Upgrade::Refused {
            status,
            body: String::from_utf8(body).unwrap(),
        }
    })
    .await
}

/// A session from `source` (any loopback address), subscribed to `perf:*`.
async fn session_from(source: &str, ws_url: &str) -> Socket {
    let addr: std::net::SocketAddr = ws_url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .parse()
        .unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut socket, _) = within(
        "the relay's answer to a WebSocket upgrade",
        tokio_tungstenite::client_async(ws_url, MaybeTlsStream::Plain(stream)),
    )
    .await
    .unwrap_or_else(|e| panic!("a session from {source}: {e}"));
    socket
        .send(tungstenite::Message::text(subscribe_message(
            &["perf:*"],
            5,
        )))
        .await
        .unwrap();
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sockets_from_one_address_get_clear_refusals_past_the_cap() {
    raise_own_limit(SOCKETS as u64 + 500);
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &[
            "--allow",
            "perf:*",
            "--max-sessions-per-address",
            &PER_ADDRESS.to_string(),
            // This test is about sessions: every socket may connect, and wait for its turn to upgrade.
            "--max-connections-per-address",
            &(SOCKETS * 2).to_string(),
            "--header-read-timeout",
            "600",
        ],
    );
    wait_healthy(&ws_url).await;
    let host = ws_url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_string();

    // Every connection is open at once before any upgrade is asked for: the relay holds 10,000 sockets.
    let streams: Vec<TcpStream> = futures_util::stream::iter(0..SOCKETS)
        .map(|_| TcpStream::connect(host.as_str()))
        .buffer_unordered(200)
        .map(|s| s.expect("connect"))
        .collect()
        .await;
    assert_eq!(streams.len(), SOCKETS);

    let outcomes: Vec<Upgrade> = futures_util::stream::iter(streams)
        .map(|stream| upgrade(stream, &host))
        .buffer_unordered(200)
        .collect()
        .await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    let want = format!(
        "127.0.0.1 has {PER_ADDRESS} sessions open, the most one address may hold (see --max-sessions-per-address)\n"
    );
    for outcome in outcomes {
        match outcome {
            Upgrade::Accepted(socket) => accepted.push(socket),
            Upgrade::Refused { status, body } => {
                assert_eq!((status, body.as_str()), (429, want.as_str()));
                refused += 1;
            }
        }
    }
    assert_eq!(
        (accepted.len(), refused),
        (PER_ADDRESS, SOCKETS - PER_ADDRESS)
    );

    // The sessions admitted are real ones: each subscribes and gets its hello.
    for socket in &mut accepted {
        socket
            .send(tungstenite::Message::text(subscribe_message(
                &["perf:*"],
                5,
            )))
            .await
            .unwrap();
    }
    for socket in &mut accepted {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("a hello within 30 s")
            .unwrap()
            .unwrap();
        assert!(
            matches!(&message, tungstenite::Message::Binary(b)
                if matches!(wire::decode(b), Ok(wire::Message::Hello { .. }))),
            "{message:?}"
        );
    }

    let (status, body) = http_get(&ws_url, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (_, metrics) = http_get(&ws_url, "/metrics").await;
    let refusals = format!(
        "replicast_refusals_total{{reason=\"sessions_per_address\"}} {}",
        SOCKETS - PER_ADDRESS
    );
    assert!(
        metrics.lines().any(|l| l == refusals),
        "no {refusals:?} in:\n{metrics}"
    );

    // Another address is not held back by this one's cap.
    let mut other = session_from("127.0.0.2", &ws_url).await;
    join(&mut other).await;

    // Once this address's sessions end, it may open sessions again.
    drop(accepted);
    let mut attempts = 0;
    loop {
        let addr = host.as_str();
        let stream = TcpStream::connect(addr).await.unwrap();
        match upgrade(stream, addr).await {
            Upgrade::Accepted(_) => break,
            Upgrade::Refused { status, .. } => {
                assert_eq!(status, 429);
                attempts += 1;
                assert!(
                    attempts < 100,
                    "127.0.0.1 stayed at its cap after its sessions closed"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let mut again = session_from("127.0.0.1", &ws_url).await;
    join(&mut again).await;
}

#[tokio::test]
async fn a_relay_out_of_file_descriptors_keeps_serving_without_spinning() {
    const LIMIT: u64 = 128;
    let (_redis, port) = start_redis();
    let log = scratch_dir("emfile").join("relay.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_replicast"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--allow", "perf:*"])
        .arg("--redis-url")
        .arg(format!("redis://127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    // SAFETY: setrlimit is async-signal-safe, and only the child's own limit changes.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (mut relay, line) = start_until(&mut command, "Replicast is live at ");
    let ws_url = line
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .replace("http://", "ws://")
        + "/ws";
    wait_healthy(&ws_url).await;
    let addr = ws_url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_string();

    // More connections than the relay has descriptors: the kernel completes them all (the listen backlog, 128
    // deep, holds the ones the relay cannot accept), and the relay's accept fails with EMFILE.
    let mut held = Vec::new();
    for _ in 0..LIMIT + 64 {
        held.push(TcpStream::connect(addr.as_str()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_ticks(relay.0.id());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = cpu_ticks(relay.0.id()) - before;
    assert!(
        relay.0.try_wait().unwrap().is_none(),
        "the relay died out of descriptors"
    );
    // A spinning accept loop would use about 300 ticks (3 s) here; one that waits uses none. The bound is CPU time
    // the relay used, not wall-clock time, so a loaded machine does not move it, and it sits far from both.
    assert!(
        used < 60,
        "the relay used {used} ticks of CPU in 3 s out of descriptors"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("accept error: Too many open files"),
        "the relay's log does not say why it cannot accept:\n{text}"
    );

    // Descriptors freed, it serves again: health, and a whole session.
    drop(held);
    wait_healthy(&ws_url).await;
    let mut socket = connect(&ws_url, &subscribe_message(&["perf:*"], 5)).await;
    join(&mut socket).await;
    let _ = std::fs::remove_dir_all(log.parent().unwrap());
}

/// A GET of `path` on a fresh connection from `source`: the whole answer, as text, until the relay closes it.
async fn get_from(source: &str, addr: &str, path: &str) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    // A refusal may be followed by a reset (the relay closes without reading the request); what came is kept.
    let _ = within(
        &format!("the relay's whole answer to GET {path}"),
        stream.read_to_end(&mut answer),
    )
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn connections_past_the_per_address_cap_get_a_429_before_their_request_is_read() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &[
            "--allow",
            "perf:*",
            "--max-sessions-per-address",
            "5",
            "--max-connections-per-address",
            "5",
        ],
    );
    wait_healthy(&ws_url).await;
    let addr = ws_url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_string();
    // Five sessions: five connections that stay open, whatever the header timeout.
    let mut sessions = Vec::new();
    for _ in 0..5 {
        let mut session = session_from("127.0.0.1", &ws_url).await;
        join(&mut session).await;
        sessions.push(session);
    }
    let answer = get_from("127.0.0.1", &addr, "/healthz").await;
    assert!(
        answer.starts_with("HTTP/1.1 429 ")
            && answer.ends_with(
                "127.0.0.1 has 5 connections open, the most one address may hold (see --max-connections-per-address)\n"
            ),
        "a sixth connection got:\n{answer}"
    );
    // Other addresses are served; 127.0.0.1 is again once its sessions close.
    assert!(get_from("127.0.0.2", &addr, "/healthz")
        .await
        .starts_with("HTTP/1.1 200 "));
    drop(sessions);
    let mut answer = String::new();
    for _ in 0..100 {
        answer = get_from("127.0.0.1", &addr, "/healthz").await;
        if answer.starts_with("HTTP/1.1 200 ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        answer.starts_with("HTTP/1.1 200 "),
        "after its sessions closed:\n{answer}"
    );

    // Fewer connections than sessions per address is refused at startup, with both flags named.
    let output = Command::new(env!("CARGO_BIN_EXE_replicast"))
        .args(["serve", "--listen", "127.0.0.1:0", "--redis-url"])
        .arg(format!("redis://127.0.0.1:{port}"))
        .args([
            "--max-sessions-per-address",
            "10",
            "--max-connections-per-address",
            "9",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains("--max-connections-per-address (9) is below --max-sessions-per-address (10)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sockets_that_trickle_their_headers_or_send_none_are_closed_after_the_header_timeout() {
    const TRICKLING: usize = 50;
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "perf:*", "--header-read-timeout", "2"],
    );
    wait_healthy(&ws_url).await;
    let addr = ws_url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_string();
    let mut sockets = Vec::new();
    for i in 0..TRICKLING {
        let mut stream = TcpStream::connect(addr.as_str()).await.unwrap();
        // Every other one starts a request; the others send nothing at all.
        if i % 2 == 0 {
            stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        }
        sockets.push(stream);
    }
    // One header line a second, for as long as the relay keeps the socket: it must close each within a minute
    // (the timeout is 2 s), having answered nothing.
    let closed = futures_util::future::join_all(sockets.into_iter().enumerate().map(
        |(i, mut stream)| async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let mut answer = Vec::new();
            loop {
                let mut buf = [0u8; 1024];
                tokio::select! {
                    read = stream.read(&mut buf) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                    },
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {
                        if i % 2 == 0 && stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
                            break;
                        }
                    }
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(format!("socket {i} still open after 60 s"));
                }
            }
            Ok((i, String::from_utf8_lossy(&answer).into_owned()))
        },
    ))
    .await;
    for outcome in closed {
        let (i, answer) = outcome.unwrap();
        assert_eq!(answer, "", "socket {i}");
    }
    // The relay serves as before.
    assert_eq!(http_get(&ws_url, "/healthz").await.0, 200);
}

/// `--max-sessions` caps the sessions of every address together: past it, an upgrade gets a 503 that names the
/// limit, counted under `reason="max_sessions"`; a session that ends gives its place back.
#[tokio::test]
async fn sessions_past_max_sessions_get_a_503_naming_the_limit_until_one_ends() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "perf:*", "--max-sessions", "3"],
    );
    wait_healthy(&ws_url).await;
    let addr = ws_url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_string();
    // Three addresses, one session each: far from --max-sessions-per-address.
    let mut open = Vec::new();
    for source in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        let mut socket = session_from(source, &ws_url).await;
        join(&mut socket).await;
        open.push(socket);
    }
    let from_fourth = || async {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.4:0".parse().unwrap()).unwrap();
        let stream = socket.connect(addr.parse().unwrap()).await.unwrap();
        upgrade(stream, &addr).await
    };
    match from_fourth().await {
        Upgrade::Refused { status, body } => assert_eq!(
            (status, body.as_str()),
            (
                503,
                "the relay serves at most 3 sessions (see --max-sessions)\n"
            )
        ),
        Upgrade::Accepted(_) => panic!("a fourth session was accepted past --max-sessions 3"),
    }
    assert_eq!(
        metric(
            &ws_url,
            r#"replicast_refusals_total{reason="max_sessions"}"#
        )
        .await,
        1
    );

    // One leaves: once the relay counts it gone, a new session is accepted.
    drop(open.pop());
    within("the relay counting the session that left", async {
        while metric(&ws_url, "replicast_sessions").await != 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(matches!(from_fourth().await, Upgrade::Accepted(_)));
}
