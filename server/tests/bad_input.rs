//! Bad input at the relay's two edges, against the relay binary and a real `redis-server`: what browsers send (a
//! 100 MB message, text that is not UTF-8, a million patterns, keys outside `--allow`) and what the replication
//! stream carries (keys that are not UTF-8 or a megabyte long, a module's commands). Each gets a clear refusal or
//! is carried byte for byte, and the relay goes on serving.

mod support;

use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use replicast_assembler::{StreamAssembler, WatchConfig};
use replicast_protocol::client_message::Topup;
use replicast_protocol::wire::{self, Message};
use support::*;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::{self, protocol::CloseFrame};

/// The next close frame, skipping binary messages; `None` if the connection ended without one.
async fn close_frame(socket: &mut Socket) -> Option<CloseFrame> {
    // One bound for the whole read: a relay that kept sending binary messages and never closed would otherwise
    // keep this loop going.
    within("a close frame, or the end of the connection", async {
        loop {
            match within("the relay's next message", socket.next()).await {
                Some(Ok(tungstenite::Message::Close(frame))) => return frame,
                Some(Ok(tungstenite::Message::Binary(_))) => {}
                Some(Ok(other)) => panic!("expected a close, got {other:?}"),
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
}

/// Writes one masked client frame's header announcing `len` payload bytes of `opcode`, then `payload` masked
/// with a zero key (so it goes as it is), under the WebSocket layer.
async fn write_raw_frame(socket: &mut Socket, opcode: u8, len: u64, payload: &[u8]) {
    let mut frame = vec![0x80 | opcode];
    match len {
        0..=125 => frame.push(0x80 | len as u8),
        126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend((len as u16).to_be_bytes());
        }
        _ => {
            frame.push(0x80 | 127);
            frame.extend(len.to_be_bytes());
        }
    }
    frame.extend([0, 0, 0, 0]);
    frame.extend(payload);
    let tungstenite_stream = socket.get_mut();
    tungstenite_stream.write_all(&frame).await.unwrap();
    tungstenite_stream.flush().await.unwrap();
}

/// The highest resident memory of process `pid` so far, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[tokio::test]
async fn a_100_mb_client_message_is_refused_from_its_header() {
    let (_redis, port) = start_redis();
    let (relay, ws_url) = start_relay(port, "perf:*");
    wait_healthy(&ws_url).await;
    let mut fine = connect(&ws_url, &subscribe_message(&["perf:*"], 5)).await;
    join(&mut fine).await;
    let before = peak_rss_kib(relay.0.id());

    // The header alone announces 100 MB: the relay refuses it there, with the limit, before any payload.
    let (mut socket, _) = within(
        "the relay's answer to a WebSocket upgrade",
        tokio_tungstenite::connect_async(ws_url.as_str()),
    )
    .await
    .unwrap();
    write_raw_frame(&mut socket, 0x1, 100 << 20, &[]).await;
    let frame = close_frame(&mut socket).await.expect("a close frame");
    assert_eq!(
        (u16::from(frame.code), frame.reason.as_str()),
        (1009, "message too big: at most 65536 bytes")
    );

    // The same after a subscription, and with the whole 100 MB on its way: the connection ends (with that close
    // frame, or reset, as the relay does not read the rest), and none of it is held.
    let mut socket = connect(&ws_url, &subscribe_message(&["perf:*"], 5)).await;
    join(&mut socket).await;
    let (mut sink, mut stream) = socket.split();
    let sender = tokio::spawn(async move {
        let huge = "x".repeat(100 << 20);
        let _ = sink.send(tungstenite::Message::text(huge)).await;
    });
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.next().await {
                Some(Ok(tungstenite::Message::Close(Some(frame)))) => break Some(frame),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break None,
            }
        }
    })
    .await
    .expect("the relay ends a session sending 100 MB");
    if let Some(frame) = ended {
        assert_eq!(u16::from(frame.code), 1009, "{}", frame.reason);
    }
    sender.abort();
    // Not a memory target: the message held would grow the peak by 100 MB, 25 times the bound.
    let grown = peak_rss_kib(relay.0.id()).saturating_sub(before);
    assert!(
        grown < 4096,
        "the relay's peak memory grew by {grown} KiB for refused messages"
    );

    // It goes on serving: health, the session that was there, and new ones.
    assert_eq!(http_get(&ws_url, "/healthz").await.0, 200);
    let mut conn = redis_conn(port).await;
    zadd(&mut conn, "perf:after", 1, "a").await;
    // The join's snapshot comes from the relay's state, which trails the link on its own thread: it holds the ZADD
    // once it reached Redis's offset (joined before, the ZADD would follow the snapshot in the stream instead).
    state_reaches(&ws_url, master_repl_offset(&mut conn).await).await;
    let mut again = connect(&ws_url, &subscribe_message(&["perf:*"], 5)).await;
    let (_, _, snapshot) = join(&mut again).await;
    assert!(snapshot.contains(&args(&["ZADD", "perf:after", "1", "a"])));
    within(
        "the ZADD of perf:after on the session that was there",
        async {
            let mut seen = false;
            while !seen {
                let message = next_binary(&mut fine).await;
                if let Ok(Message::Commands(segments)) = wire::decode(&message) {
                    for segment in segments {
                        seen |= segment
                            .unwrap()
                            .bytes
                            .windows(10)
                            .any(|w| w == b"perf:after");
                    }
                }
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_text_message_that_is_not_utf8_is_refused() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    wait_healthy(&ws_url).await;
    // As the subscription…
    let (mut socket, _) = within(
        "the relay's answer to a WebSocket upgrade",
        tokio_tungstenite::connect_async(ws_url.as_str()),
    )
    .await
    .unwrap();
    write_raw_frame(&mut socket, 0x1, 4, b"{\xff\xfe}").await;
    let frame = close_frame(&mut socket).await.expect("a close frame");
    assert_eq!(
        (u16::from(frame.code), frame.reason.as_str()),
        (1007, "a text message must be UTF-8 (JSON)")
    );
    // …and after it.
    let mut socket = connect(&ws_url, &subscribe_message(&["perf:*"], 5)).await;
    join(&mut socket).await;
    write_raw_frame(&mut socket, 0x1, 2, b"\xc3\x28").await;
    let frame = close_frame(&mut socket).await.expect("a close frame");
    assert_eq!(
        (u16::from(frame.code), frame.reason.as_str()),
        (1007, "a text message must be UTF-8 (JSON)")
    );
    let (_, metrics) = http_get(&ws_url, "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"replicast_refusals_total{reason="message"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_million_patterns_are_refused_by_the_message_size() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    wait_healthy(&ws_url).await;
    let patterns: Vec<String> = (0..1_000_000).map(|i| format!("p{i}")).collect();
    let message =
        serde_json::json!({"type": "subscribe", "patterns": patterns, "window": 5}).to_string();
    let announced = message.len() as u64;
    // The relay judges the message by its frame header (about 10 MB), before parsing any of it; the parser's own
    // count limit is tested in subscription.rs.
    let (mut socket, _) = within(
        "the relay's answer to a WebSocket upgrade",
        tokio_tungstenite::connect_async(ws_url.as_str()),
    )
    .await
    .unwrap();
    write_raw_frame(&mut socket, 0x1, announced, &message.as_bytes()[..4096]).await;
    let frame = close_frame(&mut socket).await.expect("a close frame");
    assert_eq!(
        (u16::from(frame.code), frame.reason.as_str()),
        (1009, "message too big: at most 65536 bytes")
    );
    // Just under the size limit, a message can name about 8,000 patterns: the count limit answers.
    let patterns: Vec<String> = (0..8_000).map(|i| format!("p{i}")).collect();
    let message =
        serde_json::json!({"type": "subscribe", "patterns": patterns, "window": 5}).to_string();
    assert!(message.len() < 65536);
    let mut socket = connect(&ws_url, &message).await;
    let frame = close_frame(&mut socket).await.expect("a close frame");
    assert_eq!(
        (u16::from(frame.code), frame.reason.as_str()),
        (1008, "a subscription holds at most 64 patterns, got 8000")
    );
    assert_eq!(http_get(&ws_url, "/healthz").await.0, 200);
}

#[tokio::test]
async fn a_subscription_to_keys_outside_allow_gets_a_notice_and_nothing_of_them() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    let mut conn = redis_conn(port).await;
    for key in ["secret:a", "secret:b", "perf:a"] {
        zadd(&mut conn, key, 1, "before").await;
    }
    // The relay has the writes, so its state's snapshot holds them (the stream would bring them otherwise).
    link_reaches(&ws_url, master_repl_offset(&mut conn).await).await;
    let message = serde_json::json!({
        "type": "subscribe",
        "keys": ["secret:a", "perf:a"],
        "patterns": ["secret:b", "secret:*"],
        "window": 5,
    })
    .to_string();
    let mut socket = connect(&ws_url, &message).await;
    let (_, joined, snapshot) = join(&mut socket).await;
    assert_eq!(
        snapshot,
        vec![
            args(&["DEL", "perf:a"]),
            args(&["ZADD", "perf:a", "1", "before"])
        ]
    );
    let notice = next_binary(&mut socket).await;
    let Ok(Message::Notice { text }) = wire::decode(&notice) else {
        panic!("expected a notice after the snapshot");
    };
    // Exact names are named; a pattern cannot be judged, and is only filtered.
    assert_eq!(
        text,
        "never sent: the relay's --allow does not let these keys leave: secret:a, secret:b"
    );
    for key in ["secret:a", "secret:b", "secret:c", "perf:a"] {
        zadd(&mut conn, key, 2, "after").await;
    }
    let offset = master_repl_offset(&mut conn).await;
    let commands = read_commands_until(&mut socket, joined, offset).await;
    assert!(commands.contains(&args(&["ZADD", "perf:a", "2", "after"])));
    let flat: Vec<u8> = commands.iter().flatten().flatten().copied().collect();
    assert!(
        !flat.windows(6).any(|w| w == b"secret"),
        "leaked: {commands:?}"
    );
}

/// `key`'s sorted-set window in `assembler`, newest first.
fn window_of(assembler: &StreamAssembler, key: &[u8]) -> Vec<(Vec<u8>, f64)> {
    assembler
        .window(key)
        .and_then(|w| w.as_zset())
        .map(|w| w.newest_first().map(|(m, s)| (m.to_vec(), s)).collect())
        .unwrap_or_default()
}

async fn newest_in_redis(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &[u8],
    n: i64,
) -> Vec<(Vec<u8>, f64)> {
    let flat: Vec<(Vec<u8>, f64)> = redis::cmd("ZRANGE")
        .arg(key)
        .arg(-n)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(conn)
        .await
        .unwrap();
    flat.into_iter().rev().collect()
}

#[tokio::test]
async fn keys_not_utf8_or_a_megabyte_long_are_windowed_as_redis_holds_them() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    let mut conn = redis_conn(port).await;
    let binary = b"perf:\xff\xfe\x00k".to_vec();
    let long = [b"perf:".to_vec(), vec![b'k'; 1 << 20]].concat();
    for key in [&binary, &long] {
        for i in 1..=4u64 {
            let _: i64 = redis::cmd("ZADD")
                .arg(key.as_slice())
                .arg(i)
                .arg(format!("m{i}"))
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
    // The relay has the writes, so its state's snapshot holds them (the stream would bring them otherwise).
    link_reaches(&ws_url, master_repl_offset(&mut conn).await).await;
    let mut socket = connect(&ws_url, &subscribe_message(&["perf:*"], 3)).await;
    let mut assembler = StreamAssembler::new(WatchConfig {
        patterns: vec![b"perf:*".to_vec()],
        db: 0,
        window: 3,
    });
    for _ in 0..2 {
        assembler
            .push_message(&next_binary(&mut socket).await)
            .unwrap();
    }
    for key in [&binary, &long] {
        assert_eq!(
            window_of(&assembler, key),
            newest_in_redis(&mut conn, key, 3).await,
            "the snapshot carries the key byte for byte"
        );
    }

    // Writes, then removals that leave the windows shorter than Redis's sets.
    for key in [&binary, &long] {
        let _: i64 = redis::cmd("ZADD")
            .arg(key.as_slice())
            .arg(5)
            .arg(&b"m\xff5"[..])
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: i64 = redis::cmd("ZREM")
            .arg(key.as_slice())
            .arg(&b"m\xff5"[..])
            .arg("m4")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let offset = master_repl_offset(&mut conn).await;
    within(&format!("the stream up to offset {offset}"), async {
        while assembler.offset() < offset {
            assembler
                .push_message(&next_binary(&mut socket).await)
                .unwrap();
        }
    })
    .await;
    for key in [&binary, &long] {
        let held = window_of(&assembler, key);
        let redis = newest_in_redis(&mut conn, key, 3).await;
        assert_eq!(
            held[..],
            redis[..held.len()],
            "the stream carries the key byte for byte"
        );
    }
    // Both windows are short now and ask for a top-up, which no request can name: what is lost.
    let mut topups = assembler.take_topups();
    topups.sort();
    let mut want = vec![binary.clone(), long.clone()];
    want.sort();
    // Compared without printing: one key is a megabyte.
    assert!(topups == want, "top-ups asked for {} keys", topups.len());
    assert!(topups.iter().all(|k| !Topup::can_name(k)));
    assert_eq!(assembler.diagnostics().last_error, None);
}

/// The RediSearch module's file, from its Debian package.
fn redisearch_module() -> String {
    let out = Command::new("dpkg-query")
        .args(["-L", "redis-redisearch"])
        .output()
        .expect("dpkg-query");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.ends_with("/redisearch.so"))
        .map(str::to_string)
        .expect("the RediSearch module: the Debian package redis-redisearch (scripts/setup.sh installs it)")
}

#[tokio::test]
async fn a_modules_commands_reach_no_browser() {
    let module = redisearch_module();
    let (_redis, port) = start_redis_with(&["--loadmodule", &module]);
    // The index's name is allowed and watched, so only the module rule keeps its commands in.
    let (_relay, ws_url) = start_relay(port, "perf:*,idx");
    let mut conn = redis_conn(port).await;
    let mut by_key = connect(&ws_url, &subscribe_message(&["perf:*"], 5)).await;
    let (_, from_key, _) = join(&mut by_key).await;
    let mut by_index = connect(&ws_url, &subscribe_message(&["idx"], 5)).await;
    let (_, from_index, _) = join(&mut by_index).await;

    // RediSearch 1.x propagates FT.CREATE and FT.SAFEADD verbatim; FT.SAFEADD writes the hash perf:doc but
    // declares only the index as its key.
    for command in [
        &["FT.CREATE", "idx", "SCHEMA", "title", "TEXT"][..],
        &[
            "FT.ADD", "idx", "perf:doc", "1.0", "FIELDS", "title", "hello",
        ],
    ] {
        let _: redis::Value = redis::cmd(command[0])
            .arg(&command[1..])
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    zadd(&mut conn, "perf:z", 1, "a").await;
    let offset = master_repl_offset(&mut conn).await;

    let seen_by_key = read_commands_until(&mut by_key, from_key, offset).await;
    assert!(seen_by_key.contains(&args(&["ZADD", "perf:z", "1", "a"])));
    let seen_by_index = read_commands_until(&mut by_index, from_index, offset).await;
    for commands in [&seen_by_key, &seen_by_index] {
        assert!(
            !commands.iter().any(|c| c[0].starts_with(b"FT.")),
            "a module command left the relay: {commands:?}"
        );
    }
    // The hash it wrote reaches browsers through a snapshot only.
    let mut later = connect(&ws_url, &subscribe_message(&["perf:*"], 5)).await;
    let (_, _, snapshot) = join(&mut later).await;
    assert!(
        snapshot.contains(&args(&["HSET", "perf:doc", "title", "hello"])),
        "{snapshot:?}"
    );

    // The assembler, handed such a command anyway (a relay before this rule, a recording), counts it, asks for a
    // top-up of every watched key it names (it cannot tell which it wrote), and goes on.
    let mut assembler = StreamAssembler::new(WatchConfig {
        patterns: vec![b"*".to_vec()],
        db: 0,
        window: 5,
    });
    assembler.push_message(&wire::encode_hello("e", 0)).unwrap();
    let stream = b"*7\r\n$10\r\nFT.SAFEADD\r\n$3\r\nidx\r\n$8\r\nperf:doc\r\n$3\r\n1.0\r\n$6\r\nFIELDS\r\n$1\r\nt\r\n$1\r\nx\r\n\
                   *4\r\n$4\r\nZADD\r\n$6\r\nperf:z\r\n$1\r\n1\r\n$1\r\na\r\n";
    assembler
        .push_message(&wire::encode_commands(0, stream))
        .unwrap();
    let diagnostics = assembler.diagnostics();
    assert_eq!(diagnostics.unknown_commands, 1);
    assert_eq!(
        diagnostics.last_error.as_ref().map(|e| e.message.as_str()),
        Some("unknown command FT.SAFEADD: the watched keys it names are topped up")
    );
    assert!(assembler.take_topups().contains(&b"perf:doc".to_vec()));
    assert_eq!(window_of(&assembler, b"perf:z"), vec![(b"a".to_vec(), 1.0)]);
}

/// A subscription whose patterns match more keys than one snapshot reads (10,000) is closed with 1011 and the
/// limit, though the relay's state holds every one of them; one key fewer joins, with all of them.
#[tokio::test]
async fn a_subscription_matching_more_keys_than_a_snapshot_reads_is_closed_with_the_limit() {
    let (_redis, port) = start_redis();
    let mut conn = redis_conn(port).await;
    let mut pipe = redis::pipe();
    for i in 0..10_001 {
        pipe.cmd("SET")
            .arg(format!("perf:many:{i}"))
            .arg(i)
            .ignore();
    }
    let () = pipe.query_async(&mut conn).await.unwrap();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    wait_healthy(&ws_url).await;
    link_reaches(&ws_url, master_repl_offset(&mut conn).await).await;

    let mut socket = connect(&ws_url, &subscribe_message(&["perf:many:*"], 5)).await;
    // The hello, then the close frame: never a snapshot (after one, the session would go on with the stream).
    let frame = within("the close frame after the hello", async {
        loop {
            match next_message(&mut socket).await {
                tungstenite::Message::Close(frame) => {
                    break frame.expect("a close frame with a reason")
                }
                tungstenite::Message::Binary(message) => assert!(
                    !matches!(wire::decode(&message), Ok(Message::Snapshot { .. })),
                    "a snapshot of more than 10,000 keys was sent"
                ),
                other => panic!("expected a close, got {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(
        (u16::from(frame.code), frame.reason.as_str()),
        (
            1011,
            "the subscription matches more than 10000 keys; narrow its patterns"
        )
    );

    let _: i64 = redis::cmd("DEL")
        .arg("perf:many:0")
        .query_async(&mut conn)
        .await
        .unwrap();
    // The state answers once it holds the DEL; a join before that finds it over the limit and reads Redis, in
    // parts (8,000 keys of window 5, the rest as top-ups), as a CI run under load once did. The state trails the
    // link (on its own thread): its offset is the one to wait for.
    state_reaches(&ws_url, master_repl_offset(&mut conn).await).await;
    let mut socket = connect(&ws_url, &subscribe_message(&["perf:many:*"], 5)).await;
    let (_, _, snapshot) = join(&mut socket).await;
    let set = snapshot
        .iter()
        .filter(|c| c[0].eq_ignore_ascii_case(b"set"))
        .count();
    assert_eq!(set, 10_000);
}
