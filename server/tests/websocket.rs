//! The relay's WebSocket layer from outside, with frames written and read by hand over a raw TCP socket, against
//! the relay binary and a real `redis-server`: each protocol error closes with its RFC 6455 code and reason, before
//! and after the subscription; pings before and between the fragments of the subscription are answered and the
//! session joins; a peer that sends pings and never reads is closed once its unread pongs pass the limit,
//! with the relay's memory flat, and then gets what was queued, the close frame and a FIN; and so does a peer that
//! stops reading while the stream moves, after the send timeout. A peer that never subscribes is closed, and one
//! that never answers the close frame is cut off.

mod support;

use std::time::Duration;

use replicast_protocol::wire::{self, Message};
use support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const TEXT: u8 = 0x1;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
const FIN: u8 = 0x80;

/// One client frame: `first` is the first byte (FIN, RSV bits, opcode); masked with a zero key unless `unmasked`.
fn frame(first: u8, payload: &[u8], unmasked: bool) -> Vec<u8> {
    let mask = if unmasked { 0 } else { 0x80 };
    let mut frame = vec![first];
    match payload.len() {
        len @ 0..=125 => frame.push(mask | len as u8),
        len @ 126..=0xffff => {
            frame.push(mask | 126);
            frame.extend((len as u16).to_be_bytes());
        }
        len => {
            frame.push(mask | 127);
            frame.extend((len as u64).to_be_bytes());
        }
    }
    if !unmasked {
        frame.extend([0, 0, 0, 0]);
    }
    frame.extend_from_slice(payload);
    frame
}

fn subscribe() -> String {
    subscribe_message(&["perf:*"], 5)
}

/// A WebSocket upgrade on a fresh connection, by hand; returns the socket after the 101's head.
async fn open(ws_url: &str) -> TcpStream {
    let addr = ws_url.trim_start_matches("ws://").trim_end_matches("/ws");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    within("the head of the relay's answer to the upgrade", async {
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
    })
    .await;
    assert!(
        head.starts_with(b"HTTP/1.1 101 "),
        "{}",
        head.escape_ascii()
    );
    stream
}

/// How a read of the relay's frames ended.
#[derive(Debug, PartialEq)]
enum End {
    /// Zero bytes: the relay ended the connection with a FIN.
    Fin,
    /// An error (a reset).
    Reset(std::io::ErrorKind),
}

/// The next frame the relay sent: (opcode, payload), or how the connection ended; the test fails if none comes
/// within [`ANSWER_TIMEOUT`].
async fn next_frame(stream: &mut (impl AsyncRead + Unpin)) -> Result<(u8, Vec<u8>), End> {
    within("the relay's next frame", read_frame(stream)).await
}

async fn read_frame(stream: &mut (impl AsyncRead + Unpin)) -> Result<(u8, Vec<u8>), End> {
    let mut head = [0u8; 2];
    match stream.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(End::Fin),
        Err(e) => return Err(End::Reset(e.kind())),
    }
    assert_eq!(head[1] & 0x80, 0, "the relay masks nothing");
    let len = match head[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            stream.read_exact(&mut n).await.unwrap();
            u64::from(u16::from_be_bytes(n))
        }
        127 => {
            let mut n = [0u8; 8];
            stream.read_exact(&mut n).await.unwrap();
            u64::from_be_bytes(n)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    stream
        .read_exact(&mut payload)
        .await
        .map_err(|e| End::Reset(e.kind()))?;
    Ok((head[0] & 0x0f, payload))
}

/// Reads frames until the relay's close frame: its code and reason, and the pongs that came before it.
async fn close_of(stream: &mut (impl AsyncRead + Unpin)) -> (u16, String, usize) {
    let mut pongs = 0;
    within("the relay's close frame", async {
        loop {
            match next_frame(stream).await {
                Ok((CLOSE, payload)) => {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    return (
                        code,
                        String::from_utf8_lossy(&payload[2..]).into_owned(),
                        pongs,
                    );
                }
                Ok((PONG, _)) => pongs += 1,
                Ok(_) => {}
                Err(end) => panic!("the connection ended without a close frame: {end:?}"),
            }
        }
    })
    .await
}

/// After the relay's close frame: answers it, and reads until the relay ends the connection.
async fn answer_close(stream: &mut (impl AsyncRead + AsyncWrite + Unpin)) -> End {
    stream
        .write_all(&frame(FIN | CLOSE, &1000u16.to_be_bytes(), false))
        .await
        .unwrap();
    within("the end of the connection after the close frame", async {
        loop {
            if let Err(end) = next_frame(stream).await {
                return end;
            }
        }
    })
    .await
}

#[tokio::test]
async fn protocol_errors_close_with_their_rfc_6455_code_and_reason() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    wait_healthy(&ws_url).await;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "a frame with RSV1 set (no extension was negotiated)",
            frame(FIN | 0x40 | TEXT, b"{}", false),
            1002,
            "protocol error: Reserved bits are non-zero",
        ),
        (
            "an unmasked client frame",
            frame(FIN | TEXT, b"{}", true),
            1002,
            "protocol error: Received an unmasked frame from client",
        ),
        (
            "a ping of 126 bytes",
            frame(FIN | PING, &[b'p'; 126], false),
            1002,
            "protocol error: Control frame too big (payload must be 125 bytes or less)",
        ),
        (
            "a fragmented ping",
            frame(PING, b"p", false),
            1002,
            "protocol error: Fragmented control frame",
        ),
        (
            "an unknown opcode",
            frame(FIN | 0x3, b"x", false),
            1002,
            "protocol error: Encountered invalid opcode: 3",
        ),
        (
            "a continuation with nothing to continue",
            frame(FIN | CONTINUATION, b"x", false),
            1002,
            "protocol error: Continue frame but nothing to continue",
        ),
        (
            "text that is not UTF-8",
            frame(FIN | TEXT, b"\xff\xfe", false),
            1007,
            "a text message must be UTF-8 (JSON)",
        ),
    ];
    for subscribed in [false, true] {
        for (what, bytes, code, reason) in &cases {
            let mut stream = open(&ws_url).await;
            if subscribed {
                stream
                    .write_all(&frame(FIN | TEXT, subscribe().as_bytes(), false))
                    .await
                    .unwrap();
            }
            stream.write_all(bytes).await.unwrap();
            let (got_code, got_reason, _) = close_of(&mut stream).await;
            assert_eq!(
                (got_code, got_reason.as_str()),
                (*code, *reason),
                "{what}, {}",
                if subscribed {
                    "after subscribing"
                } else {
                    "first"
                }
            );
        }
    }
    assert_eq!(http_get(&ws_url, "/healthz").await.0, 200);
}

#[tokio::test]
async fn pings_before_and_between_the_fragments_of_the_subscription_are_answered() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    wait_healthy(&ws_url).await;
    let mut conn = redis_conn(port).await;
    zadd(&mut conn, "perf:web", 1, "a").await;
    // The relay has the write, so its state's snapshot holds it (the stream would bring it otherwise).
    link_reaches(&ws_url, master_repl_offset(&mut conn).await).await;

    let mut stream = open(&ws_url).await;
    let text = subscribe();
    let (first, rest) = text.as_bytes().split_at(text.len() / 2);
    let mut bytes = frame(FIN | PING, b"before", false);
    bytes.extend(frame(TEXT, first, false));
    bytes.extend(frame(FIN | PING, b"between", false));
    bytes.extend(frame(FIN | CONTINUATION, rest, false));
    stream.write_all(&bytes).await.unwrap();

    let mut pongs = Vec::new();
    let mut joined = Vec::new();
    within("the hello and the snapshot", async {
        while joined.len() < 2 {
            let (opcode, payload) = next_frame(&mut stream).await.expect("a frame");
            match opcode {
                PONG => pongs.push(String::from_utf8(payload).unwrap()),
                0x2 => joined.push(payload),
                other => panic!("unexpected opcode {other}: {}", payload.escape_ascii()),
            }
        }
    })
    .await;
    assert_eq!(pongs, ["before", "between"]);
    assert!(matches!(
        wire::decode(&joined[0]),
        Ok(Message::Hello { .. })
    ));
    let Ok(Message::Snapshot { commands, .. }) = wire::decode(&joined[1]) else {
        panic!("expected the snapshot after the hello");
    };
    assert_eq!(parse_all(commands)[0][1], b"perf:web");
}

#[tokio::test]
async fn a_peer_that_pings_and_never_reads_is_closed_with_memory_flat_then_gets_a_close_frame_and_a_fin(
) {
    /// Pings sent at most (about 500 MB of them): enough to show growth that no limit stops.
    const MOST_PINGS: usize = 4_000_000;
    const BATCH: usize = 256;
    let (_redis, port) = start_redis();
    let (relay, ws_url) = start_relay(port, "perf:*");
    wait_healthy(&ws_url).await;
    let refusals =
        || async { metric(&ws_url, r#"replicast_refusals_total{reason="message"}"#).await };
    let refused_before = refusals().await;
    let peak_before = peak_rss_kib(relay.0.id());

    let mut stream = open(&ws_url).await;
    stream
        .write_all(&frame(FIN | TEXT, subscribe().as_bytes(), false))
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // Whole batches of pings, never a partial frame, until the relay refuses the session (or the most is sent).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = tokio::spawn({
        let stop = stop.clone();
        async move {
            let batch = frame(FIN | PING, &[b'p'; 125], false).repeat(BATCH);
            let mut sent = 0;
            while sent < MOST_PINGS && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if writer.write_all(&batch).await.is_err() {
                    break;
                }
                sent += BATCH;
            }
            (writer, sent)
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while refusals().await == refused_before && !flood.is_finished() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never refused the session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Not a memory target: pings held unread would grow the peak by up to the flood's 500 MB, 15 times the bound.
    let grown = peak_rss_kib(relay.0.id()).saturating_sub(peak_before);
    assert!(
        grown < 32 * 1024,
        "the relay's peak memory grew by {grown} KiB for pings never read"
    );
    assert!(
        !flood.is_finished(),
        "the relay let {MOST_PINGS} pings go unread without refusing the session"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // The flood stops at its next whole batch once the relay reads again, which it does as this side reads.
    let read = tokio::spawn(async move {
        let close = close_of(&mut reader).await;
        (reader, close)
    });
    let (writer, sent) = flood.await.unwrap();
    let (reader, (code, reason, pongs)) = read.await.unwrap();
    assert!(sent < MOST_PINGS);
    assert_eq!(
        (code, reason.as_str()),
        (
            1008,
            "stopped reading: sent pings while more than 4096 bytes of pongs waited unread"
        )
    );
    assert!(
        pongs > 0,
        "the pongs queued before the close frame come first"
    );
    // Answered, the relay ends the connection with a FIN: nothing it was sent is left unread to reset it.
    let mut stream = reader.reunite(writer).expect("halves of one socket");
    assert_eq!(answer_close(&mut stream).await, End::Fin);
    assert_eq!(http_get(&ws_url, "/healthz").await.0, 200);
}

/// A peer that subscribes and then reads nothing while the stream moves: once what the relay wrote fills the
/// socket's buffers, its send waits, and after the send timeout (30 s) the session is closed with 1008 `stopped
/// reading`; when the peer reads again it gets what was queued, then the close frame, and after answering it a FIN
/// (issue 16 item 9: such a session used to be dropped with neither).
#[tokio::test]
async fn a_peer_that_stops_reading_is_closed_after_the_send_timeout_with_a_close_frame_and_a_fin() {
    let (_redis, port) = start_redis();
    // A backlog larger than what is written: the session must stall on its socket, not fall out of the backlog.
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "perf:*", "--backlog-bytes", "268435456"],
    );
    wait_healthy(&ws_url).await;
    let refusals =
        || async { metric(&ws_url, r#"replicast_refusals_total{reason="message"}"#).await };
    let refused_before = refusals().await;
    let mut stream = open(&ws_url).await;
    stream
        .write_all(&frame(FIN | TEXT, subscribe().as_bytes(), false))
        .await
        .unwrap();
    // 40 MiB of writes to a watched key, far more than the sockets' buffers hold while nothing is read.
    let mut conn = redis_conn(port).await;
    let value = vec![b'v'; 64 * 1024];
    for _ in 0..640 {
        let () = redis::cmd("SET")
            .arg("perf:blob")
            .arg(&value)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while refusals().await == refused_before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never closed a session that read nothing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut messages = 0;
    let (code, reason) = within("what was queued, then the close frame", async {
        loop {
            match next_frame(&mut stream).await {
                Ok((CLOSE, payload)) => {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    break (code, String::from_utf8_lossy(&payload[2..]).into_owned());
                }
                Ok(_) => messages += 1,
                Err(end) => panic!("the connection ended without a close frame: {end:?}"),
            }
        }
    })
    .await;
    assert_eq!((code, reason.as_str()), (1008, "stopped reading"));
    assert!(messages >= 2, "the hello and what was queued come first");
    assert_eq!(answer_close(&mut stream).await, End::Fin);
    assert_eq!(http_get(&ws_url, "/healthz").await.0, 200);
}

/// A peer that opens the socket and sends no subscription is closed after 10 s with 1008 and the reason; one that
/// then never answers the close frame is disconnected 5 s later, rather than held open.
#[tokio::test]
async fn a_peer_that_never_subscribes_is_closed_and_one_that_never_answers_the_close_is_cut_off() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    wait_healthy(&ws_url).await;
    let mut stream = open(&ws_url).await;
    let (code, reason, _) = close_of(&mut stream).await;
    assert_eq!(
        (code, reason.as_str()),
        (1008, "no subscribe message within 10s")
    );
    // Not answered: the relay ends the connection itself (with a FIN, or a reset if it closes first).
    within(
        "the end of a connection whose close was never answered",
        async { while read_frame(&mut stream).await.is_ok() {} },
    )
    .await;
    assert_eq!(
        metric(&ws_url, r#"replicast_refusals_total{reason="message"}"#).await,
        1
    );
}
