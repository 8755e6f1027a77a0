//! What an operator runs the relay with, against real processes: logs as JSON lines, `/metrics` as promtool (from
//! Debian's prometheus package) accepts it with the build, process and histogram rows, and the relay behind
//! Debian's nginx, where `--trusted-proxy` makes each client count at its own address.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use replicast_protocol::client_message::{ClientMessage, Event};
use replicast_protocol::wire::{self, Message};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use futures_util::SinkExt;
use support::*;

/// The relay with `flags` and `RUST_LOG=info`, its stderr lines collected as they come: (relay, ws URL, lines).
fn start_relay_logging(flags: &[&str]) -> (Proc, String, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_replicast"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(flags)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_to, lines) = std::sync::mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = lines_to.send(line);
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let proc = Proc::new(child);
    let live = stdout
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("Replicast is live at "))
        .expect("the relay goes live");
    std::thread::spawn(move || stdout.for_each(drop));
    let http = live.rsplit(' ').next().unwrap().trim_end_matches('/');
    (proc, http.replace("http://", "ws://") + "/ws", lines)
}

/// Log lines until one contains `needle` (within 20 s), that one included.
fn lines_until(lines: &std::sync::mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no log line with {needle:?} in:\n{}", seen.join("\n")));
        let done = line.contains(needle);
        seen.push(line);
        if done {
            return seen;
        }
    }
}

#[tokio::test]
async fn with_log_format_json_every_log_line_is_an_object_with_level_message_and_target() {
    let (_redis, port) = start_redis();
    let url = format!("redis://127.0.0.1:{port}");
    let (_relay, _, lines) = start_relay_logging(&["--redis-url", &url, "--log-format", "json"]);
    let lines = lines_until(&lines, "streaming");
    assert!(lines.len() >= 2, "{lines:?}");
    for line in &lines {
        let object: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("not a JSON line ({err}): {line}"));
        assert!(
            matches!(object["level"].as_str(), Some("INFO" | "WARN" | "ERROR")),
            "{line}"
        );
        assert!(object["fields"]["message"].is_string(), "{line}");
        assert!(
            object["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("replicast_server")),
            "{line}"
        );
        assert!(object["timestamp"].is_string(), "{line}");
    }
    // A log line's fields stay fields, not words of the message.
    assert!(
        lines.iter().any(|l| l.contains(r#""psync":"? -1""#)),
        "{lines:?}"
    );

    // The default stays text for people, without a terminal's colour codes when stderr is not one.
    let (_relay, _, lines) = start_relay_logging(&["--redis-url", &url]);
    let lines = lines_until(&lines, "streaming");
    assert!(
        lines.iter().all(|l| serde_json::from_str::<serde_json::Value>(l).is_err()
            && !l.contains('\u{1b}')),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" INFO replicast_server::replica_link: replica link:")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn metrics_pass_promtool_with_build_process_histogram_and_refusal_rows() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    wait_healthy(&ws_url).await;
    // A session joins (a snapshot) and is sent a write (a batch's delay); a request names a host the relay does not
    // answer to (a refusal).
    let mut socket = connect(&ws_url, &subscribe_message(&["perf:*"], 5)).await;
    let (_, offset, _) = join(&mut socket).await;
    let mut conn = redis_conn(port).await;
    zadd(&mut conn, "perf:a", 1, "one").await;
    read_commands_until(&mut socket, offset, offset + 1).await;
    let addr = ws_url.trim_start_matches("ws://").trim_end_matches("/ws");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut refused = String::new();
    stream.read_to_string(&mut refused).await.unwrap();
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");

    let (status, metrics) = http_get(&ws_url, "/metrics").await;
    assert_eq!(status, 200);
    promtool_check(&metrics);

    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
    };
    let version = format!(
        r#"replicast_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&version), 1.0);
    // The relay's sockets, the embedded-free link and the session among them.
    assert!(value("process_open_fds") >= 5.0);
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("replicast_snapshot_duration_seconds_count") >= 1.0);
    assert!(value("replicast_snapshot_duration_seconds_sum") > 0.0);
    assert!(value("replicast_join_duration_seconds_count") >= 1.0);
    assert!(value("replicast_join_duration_seconds_sum") > 0.0);
    assert!(value("replicast_stream_delay_seconds_count") >= 1.0);
    assert_eq!(
        value(r#"replicast_stream_delay_seconds_bucket{le="+Inf"}"#),
        value("replicast_stream_delay_seconds_count")
    );
    assert_eq!(value(r#"replicast_refusals_total{reason="host"}"#), 1.0);
    assert_eq!(value(r#"replicast_refusals_total{reason="token"}"#), 0.0);
    assert!(value("replicast_link_retry_delay_seconds") >= 0.0);
}

/// A WebSocket to `addr` from the local address `from` (any of 127.0.0.0/8), with `forwarded_for` as its
/// X-Forwarded-For if given: the session's socket, or the refusal's status and body.
async fn session_from(
    from: &str,
    addr: SocketAddr,
    forwarded_for: Option<&str>,
) -> Result<Socket, (u16, String)> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    if let Some(value) = forwarded_for {
        request
            .headers_mut()
            .insert("x-forwarded-for", value.parse().unwrap());
    }
    match tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
        .await
    {
        Ok((mut socket, _)) => {
            socket
                .send(tungstenite::Message::text(subscribe_message(
                    &["events:*"],
                    5,
                )))
                .await
                .unwrap();
            join(&mut socket).await;
            Ok(socket)
        }
        Err(tungstenite::Error::Http(response)) => Err((
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        )),
        Err(other) => panic!("{other}"),
    }
}

/// Appends an event from `socket` and returns the `_peer` the relay stamped on it.
async fn stamped_peer(
    socket: &mut Socket,
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> String {
    socket
        .send(tungstenite::Message::text(
            ClientMessage::Event(Event {
                id: "e1".into(),
                key: key.into(),
                fields: vec![("a".into(), "b".into())],
            })
            .to_json(),
        ))
        .await
        .unwrap();
    loop {
        if let Message::Ack { entry, .. } = wire::decode(&next_binary(socket).await).unwrap() {
            entry.expect("the event is appended");
            break;
        }
    }
    let held: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap();
    let fields = &held[0].1;
    let at = fields
        .iter()
        .position(|f| f == "_peer")
        .expect("a _peer field");
    fields[at + 1].clone()
}

#[tokio::test]
async fn behind_a_trusted_nginx_each_client_is_limited_and_stamped_at_its_own_address() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &[
            "--allow",
            "events:*",
            "--writable",
            "events:*",
            "--max-sessions-per-address",
            "1",
            "--max-connections-per-address",
            "1",
            "--trusted-proxy",
            "127.0.0.1/32",
        ],
    );
    wait_healthy(&ws_url).await;
    let relay_addr: SocketAddr = ws_url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .parse()
        .unwrap();
    let (_nginx, nginx_port) = start_nginx(&relay_addr.to_string());
    let nginx: SocketAddr = format!("127.0.0.1:{nginx_port}").parse().unwrap();
    let mut conn = redis_conn(port).await;

    // Through nginx, every connection comes from 127.0.0.1, which holds more than the one connection an address may
    // (a trusted proxy has no cap); the clients are 127.0.0.2 and 127.0.0.3.
    let mut first = session_from("127.0.0.2", nginx, None).await.unwrap();
    assert_eq!(
        stamped_peer(&mut first, &mut conn, "events:first").await,
        "127.0.0.2"
    );
    // The same client again is over its one session, whatever it claims to be.
    let (status, body) = session_from("127.0.0.2", nginx, Some("203.0.113.9"))
        .await
        .unwrap_err();
    assert_eq!(status, 429);
    assert!(body.starts_with("127.0.0.2 has 1 sessions open"), "{body}");
    // Another client has its own.
    let mut second = session_from("127.0.0.3", nginx, Some("203.0.113.9"))
        .await
        .unwrap();
    assert_eq!(
        stamped_peer(&mut second, &mut conn, "events:second").await,
        "127.0.0.3"
    );

    // Straight to the relay, a peer that is not a trusted proxy is itself, whatever it forwards: 127.0.0.4 has
    // its session, and a second one claiming to come for another client is refused, at its one connection.
    let mut direct = session_from("127.0.0.4", relay_addr, Some("203.0.113.9"))
        .await
        .unwrap();
    assert!(stamped_peer(&mut direct, &mut conn, "events:direct")
        .await
        .starts_with("127.0.0.4:"));
    let (status, body) = session_from("127.0.0.4", relay_addr, Some("203.0.113.10"))
        .await
        .unwrap_err();
    assert_eq!(status, 429);
    assert!(
        body.starts_with("127.0.0.4 has 1 connections open"),
        "{body}"
    );
}
