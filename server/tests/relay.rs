//! The relay binary against a real `redis-server`: what a browser receives on the WebSocket, byte for byte.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use replicast_wasm::resp::CommandReader;
use replicast_wasm::wire::{self, Message};
use tokio_tungstenite::tungstenite;

/// A child process killed when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a child and returns it with the first stdout line containing `needle`.
fn start_until(command: &mut Command, needle: &str) -> (Proc, String) {
    let mut child = command.stdout(Stdio::piped()).spawn().expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let proc = Proc(child);
    let line = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}"));
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (proc, line)
}

fn start_redis() -> (Proc, u16) {
    let port = free_port();
    let (proc, _) = start_until(
        Command::new("redis-server").args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--repl-diskless-sync-delay",
            "0",
        ]),
        "Ready to accept connections",
    );
    (proc, port)
}

fn start_relay(redis_port: u16) -> (Proc, String) {
    let (proc, line) = start_until(
        Command::new(env!("CARGO_BIN_EXE_replicast"))
            .args(["serve", "--listen", "127.0.0.1:0", "--redis-url"])
            .arg(format!("redis://127.0.0.1:{redis_port}"))
            .env("RUST_LOG", "warn"),
        "Replicast is live at ",
    );
    let http = line.rsplit(' ').next().unwrap().trim_end_matches('/');
    (proc, http.replace("http://", "ws://") + "/ws")
}

async fn redis_conn(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn master_repl_offset(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("master_repl_offset in INFO")
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_binary(socket: &mut Socket) -> Vec<u8> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("a message within 20 s")
            .expect("socket open")
            .expect("no socket error");
        if let tungstenite::Message::Binary(bytes) = message {
            return bytes.to_vec();
        }
    }
}

#[tokio::test]
async fn browsers_get_a_hello_then_the_raw_commands_with_redis_offsets() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port);
    let mut conn = redis_conn(port).await;

    // The first session may connect before the link finished its full resync: it then waits for the hello.
    let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let hello = next_binary(&mut socket).await;
    let Message::Hello {
        epoch,
        offset: joined_at,
        ..
    } = wire::decode(&hello).unwrap()
    else {
        panic!("first message is not a hello: {hello:?}");
    };
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        info.contains(&format!("master_replid:{epoch}")),
        "epoch is Redis's replid"
    );

    let _: i64 = redis::cmd("ZADD")
        .arg("perf:web-1")
        .arg(1_700_000_000_000u64)
        .arg(r#"{"id":"s1","cpu":12.5}"#)
        .query_async(&mut conn)
        .await
        .unwrap();
    let after_zadd = master_repl_offset(&mut conn).await;

    // Read until the relay has forwarded everything up to Redis's offset after the ZADD.
    let mut reader = CommandReader::new(joined_at);
    let mut commands: Vec<Vec<Vec<u8>>> = Vec::new();
    while reader.offset() < after_zadd {
        let message = next_binary(&mut socket).await;
        let Message::Commands(segments) = wire::decode(&message).unwrap() else {
            panic!("expected commands, got {message:?}");
        };
        for segment in segments {
            let segment = segment.unwrap();
            assert_eq!(
                segment.start,
                reader.offset(),
                "segments are contiguous and never split a command"
            );
            reader
                .push(segment.bytes, |c| {
                    commands.push(c.args.iter().map(|a| a.to_vec()).collect())
                })
                .unwrap();
            assert_eq!(reader.pending_len(), 0);
        }
    }
    assert_eq!(
        reader.offset(),
        after_zadd,
        "the relay's offsets are Redis's replication offsets"
    );
    let zadd: Vec<Vec<u8>> = vec![
        b"ZADD".to_vec(),
        b"perf:web-1".to_vec(),
        b"1700000000000".to_vec(),
        br#"{"id":"s1","cpu":12.5}"#.to_vec(),
    ];
    assert!(
        commands.contains(&zadd),
        "the ZADD arrives raw: {commands:?}"
    );
    assert!(commands.contains(&vec![b"SELECT".to_vec(), b"0".to_vec()]));

    // A second browser joining now starts at the current offset of the same epoch.
    let (mut late, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let late_hello = next_binary(&mut late).await;
    let Message::Hello {
        epoch: late_epoch,
        offset,
        ..
    } = wire::decode(&late_hello).unwrap()
    else {
        panic!("no hello for the second browser");
    };
    assert_eq!(late_epoch, epoch);
    assert!(offset >= after_zadd);
}

/// Reads commands messages until the stream reaches `until`, checking contiguity from `from`; returns the commands.
async fn read_commands_until(socket: &mut Socket, from: u64, until: u64) -> Vec<Vec<Vec<u8>>> {
    let mut reader = CommandReader::new(from);
    let mut commands = Vec::new();
    while reader.offset() < until {
        let message = next_binary(socket).await;
        let Message::Commands(segments) = wire::decode(&message).unwrap() else {
            panic!("expected commands, got {message:?}");
        };
        for segment in segments {
            let segment = segment.unwrap();
            assert_eq!(segment.start, reader.offset(), "no gap, no overlap");
            reader
                .push(segment.bytes, |c| {
                    commands.push(c.args.iter().map(|a| a.to_vec()).collect())
                })
                .unwrap();
        }
    }
    // A batch may carry a little past `until` (e.g. a PING the primary sent meanwhile), never short of it.
    assert!(reader.offset() >= until);
    commands
}

async fn hello(socket: &mut Socket) -> (String, u64) {
    let message = next_binary(socket).await;
    match wire::decode(&message).unwrap() {
        Message::Hello { epoch, offset, .. } => (epoch.to_string(), offset),
        other => panic!("expected a hello, got {other:?}"),
    }
}

async fn set(conn: &mut redis::aio::MultiplexedConnection, key: &str, value: &str) {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(conn)
        .await
        .unwrap();
}

fn has_set(commands: &[Vec<Vec<u8>>], key: &str, value: &str) -> bool {
    commands.contains(&vec![
        b"SET".to_vec(),
        key.as_bytes().to_vec(),
        value.as_bytes().to_vec(),
    ])
}

#[tokio::test]
async fn a_browser_that_reconnects_inside_the_backlog_resumes_where_it_was() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port);
    let mut conn = redis_conn(port).await;

    let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let (epoch, joined) = hello(&mut socket).await;
    set(&mut conn, "k", "before").await;
    let left_at = master_repl_offset(&mut conn).await;
    read_commands_until(&mut socket, joined, left_at).await;
    drop(socket);

    // Written while the browser is away.
    set(&mut conn, "k", "while-away").await;
    let now = master_repl_offset(&mut conn).await;

    let resume_url = format!("{ws_url}?epoch={epoch}&offset={left_at}");
    let (mut socket, _) = tokio_tungstenite::connect_async(&resume_url).await.unwrap();
    assert_eq!(
        hello(&mut socket).await,
        (epoch.clone(), left_at),
        "resumed at its own offset"
    );
    let missed = read_commands_until(&mut socket, left_at, now).await;
    assert!(has_set(&missed, "k", "while-away"), "{missed:?}");

    // A resume point the relay does not hold (here: ahead of the stream) gets a fresh start at the current offset,
    // and so does one in another epoch.
    let ahead = now + 1_000_000;
    let (mut fresh, _) =
        tokio_tungstenite::connect_async(format!("{ws_url}?epoch={epoch}&offset={ahead}"))
            .await
            .unwrap();
    let (fresh_epoch, fresh_offset) = hello(&mut fresh).await;
    assert_eq!(fresh_epoch, epoch);
    assert!((now..ahead).contains(&fresh_offset), "{fresh_offset}");
    let (mut other, _) =
        tokio_tungstenite::connect_async(format!("{ws_url}?epoch=feed&offset={left_at}"))
            .await
            .unwrap();
    assert!(
        hello(&mut other).await.1 >= now,
        "another epoch cannot resume"
    );
}

#[tokio::test]
async fn a_dropped_link_resumes_with_a_partial_resync_and_browsers_do_not_notice() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port);
    let mut conn = redis_conn(port).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let (_, joined) = hello(&mut socket).await;

    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query_async(&mut conn)
        .await
        .unwrap();
    set(&mut conn, "after", "kill").await;
    let now = master_repl_offset(&mut conn).await;

    // The same session keeps receiving, contiguous, with no new hello in between.
    let commands = read_commands_until(&mut socket, joined, now).await;
    assert!(has_set(&commands, "after", "kill"), "{commands:?}");
    let stats: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        stats.contains("sync_partial_ok:1"),
        "Redis saw a partial resync:\n{stats}"
    );
}

/// A plain HTTP/1.0 GET: (status code, body).
async fn http_get(base: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("ws://").trim_end_matches("/ws");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn healthz_and_metrics_report_the_link() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port);
    let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    hello(&mut socket).await;

    let (status, body) = http_get(&ws_url, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ok: streaming epoch "), "{body}");
    let (status, body) = http_get(&ws_url, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "replicast_link_up 1",
        "replicast_sessions 1",
        "replicast_link_full_syncs_total 1",
    ] {
        assert!(body.lines().any(|l| l == line), "no {line:?} in:\n{body}");
    }
    let (status, _) = http_get(&ws_url, "/ws?epoch=only").await;
    assert_eq!(status, 400);
}
