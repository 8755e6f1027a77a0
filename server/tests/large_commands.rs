//! Commands as large as Redis accepts, through the relay's replica link with a real redis-server: a `SADD` of
//! 1,048,575 members (1,048,577 arguments), a 520 MiB value (past the 512 MB default, under the primary's own
//! `proto-max-bulk-len`), an `MSET` of a million keys. The link passes each through without holding it and keeps
//! streaming without a resync; `/healthz` stays 200, sessions go on receiving, the ones watching a key such a
//! command wrote are told it is stale (every window, when its keys are too many to name), and nothing outside
//! `--allow` leaves the relay.

mod support;

use std::time::Duration;

use replicast_protocol::wire::{self, Message, StaleKeys};
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};

/// An argument of a command written to Redis: bytes, or `len` copies of one byte, written a megabyte at a time.
#[derive(Clone)]
enum Arg {
    Bytes(Vec<u8>),
    Repeat(u8, usize),
}

fn bytes(text: &str) -> Arg {
    Arg::Bytes(text.as_bytes().to_vec())
}

/// Writes one command to the Redis on `port` as RESP, never holding a large argument whole; returns Redis's reply
/// line.
async fn write_command(port: u16, args: &[Arg]) -> String {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (reader, writer) = stream.into_split();
    let mut out = BufWriter::with_capacity(1 << 20, writer);
    out.write_all(format!("*{}\r\n", args.len()).as_bytes())
        .await
        .unwrap();
    let chunk = vec![0u8; 1 << 20];
    for arg in args {
        match arg {
            Arg::Bytes(bytes) => {
                out.write_all(format!("${}\r\n", bytes.len()).as_bytes())
                    .await
                    .unwrap();
                out.write_all(bytes).await.unwrap();
            }
            Arg::Repeat(byte, len) => {
                out.write_all(format!("${len}\r\n").as_bytes())
                    .await
                    .unwrap();
                let chunk: Vec<u8> = chunk.iter().map(|_| *byte).collect();
                let mut left = *len;
                while left > 0 {
                    let n = left.min(chunk.len());
                    out.write_all(&chunk[..n]).await.unwrap();
                    left -= n;
                }
            }
        }
        out.write_all(b"\r\n").await.unwrap();
    }
    out.flush().await.unwrap();
    let mut line = String::new();
    BufReader::new(reader).read_line(&mut line).await.unwrap();
    line
}

/// A connection that waits for Redis as long as a command of hundreds of megabytes keeps it busy.
async fn patient_conn(port: u16) -> redis::aio::MultiplexedConnection {
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(60)));
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

/// The link's counters that say it followed the stream without a resync or an error, and withheld `withheld`
/// commands.
async fn assert_streamed_through(ws_url: &str, withheld: u64) {
    assert_eq!(http_get(ws_url, "/healthz").await.0, 200);
    for (name, value) in [
        ("link_full_syncs_total", 1),
        ("link_partial_syncs_total", 0),
        ("link_errors_total", 0),
        ("link_stream_errors_total", 0),
        ("link_withheld_commands_total", withheld),
    ] {
        assert_eq!(
            metric(ws_url, &format!("replicast_{name}")).await,
            value,
            "{name}"
        );
    }
}

/// A Redis whose replication backlog holds what a relay that failed on a command would ask for again, as a
/// primary's often does: it then resumes the relay at that command, over and over, instead of a full resync.
fn start_redis_keeping_64_mb() -> (Proc, u16) {
    start_redis_with(&["--repl-backlog-size", "64mb"])
}

/// What a session received until the stream reached `until`: the commands, and each stale message (its offset,
/// and its keys, none for every window); checks that segments never overlap and that nothing of `secret` came.
async fn received_until(
    socket: &mut Socket,
    from: u64,
    until: u64,
) -> (Vec<Args>, Vec<(u64, Vec<Vec<u8>>)>) {
    let (mut applied, mut commands, mut stale) = (from, Vec::new(), Vec::new());
    while applied < until {
        let message = next_binary(socket).await;
        assert!(
            !message.windows(6).any(|w| w == b"secret"),
            "a key outside --allow left the relay"
        );
        match wire::decode(&message).unwrap() {
            Message::Commands(segments) => {
                for segment in segments {
                    let segment = segment.unwrap();
                    assert!(
                        segment.start >= applied,
                        "segment at {} overlaps {applied}",
                        segment.start
                    );
                    commands.extend(parse_all(segment.bytes));
                    applied = segment.end();
                }
            }
            Message::Stale { offset, keys } => {
                let keys = match keys {
                    StaleKeys::Keys(keys) => keys.map(<[u8]>::to_vec).collect(),
                    StaleKeys::All => Vec::new(),
                };
                stale.push((offset, keys));
                applied = applied.max(offset);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    commands.retain(|c| c[0] != b"SELECT");
    (commands, stale)
}

#[tokio::test]
async fn a_sadd_of_a_million_members_passes_through_and_its_key_is_made_stale() {
    let (_redis, port) = start_redis_keeping_64_mb();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    wait_healthy(&ws_url).await;
    let mut conn = redis_conn(port).await;
    let mut socket = connect(&ws_url, &subscribe_message(&["perf:other", "perf:set"], 10)).await;
    let (_, joined, _) = join(&mut socket).await;
    zadd(&mut conn, "perf:other", 1, "before").await;

    let mut sadd = vec![bytes("SADD"), bytes("perf:set")];
    sadd.extend((0..1_048_575).map(|i| Arg::Bytes(format!("m{i}").into_bytes())));
    assert_eq!(sadd.len(), 1_048_577);
    assert_eq!(write_command(port, &sadd).await, ":1048575\r\n");
    let sadd_end = master_repl_offset(&mut conn).await;
    zadd(&mut conn, "perf:other", 2, "after").await;

    let until = master_repl_offset(&mut conn).await;
    let (commands, stale) = received_until(&mut socket, joined, until).await;
    assert_eq!(
        commands,
        [
            args(&["ZADD", "perf:other", "1", "before"]),
            args(&["ZADD", "perf:other", "2", "after"])
        ]
    );
    // Not the command: the key it wrote, at its end, for the browser to read again.
    assert_eq!(stale, [(sadd_end, vec![b"perf:set".to_vec()])]);
    assert_streamed_through(&ws_url, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_520_mib_value_streams_through_in_bounded_memory_while_sessions_go_on() {
    // Past Redis's default proto-max-bulk-len of 512 MB: the relay follows the primary's own setting. A replica's
    // output buffer is unlimited here, as Redis would otherwise drop any replica, the relay included, behind by
    // more than 256 MB.
    let (_redis, port) = start_redis_with(&[
        "--proto-max-bulk-len",
        "600mb",
        "--client-output-buffer-limit",
        "replica 0 0 0",
    ]);
    let (relay, ws_url) = start_relay(port, "perf:*");
    wait_healthy(&ws_url).await;
    let mut conn = patient_conn(port).await;
    let mut socket = connect(&ws_url, &subscribe_message(&["perf:*"], 1000)).await;
    let (_, joined, _) = join(&mut socket).await;

    let value_len = 520 << 20;
    let set = [
        bytes("SET"),
        bytes("secret:big"),
        Arg::Repeat(b'x', value_len),
    ];
    let big = tokio::spawn(async move { write_command(port, &set).await });
    // A sample every 50 ms and a health check, while the value goes to Redis and through the link.
    let mut ticks = 0;
    let mut big_end = None;
    loop {
        zadd(&mut conn, "perf:tick", ticks, &format!("t{ticks}")).await;
        ticks += 1;
        assert_eq!(http_get(&ws_url, "/healthz").await.0, 200, "tick {ticks}");
        if big_end.is_none() && big.is_finished() {
            big_end = Some(master_repl_offset(&mut conn).await);
        }
        if let Some(end) = big_end {
            if metric(&ws_url, "replicast_link_offset").await >= end {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(big.await.unwrap(), "+OK\r\n");
    let strlen: usize = redis::cmd("STRLEN")
        .arg("secret:big")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(strlen, value_len);

    // Every sample reached the session, in order, and nothing of the value.
    let until = master_repl_offset(&mut conn).await;
    let mut received = read_commands_until(&mut socket, joined, until).await;
    received.retain(|c| c[0] != b"SELECT");
    let expected: Vec<Args> = (0..ticks)
        .map(|i| args(&["ZADD", "perf:tick", &i.to_string(), &format!("t{i}")]))
        .collect();
    assert_eq!(received, expected);
    assert_streamed_through(&ws_url, 1).await;
    // Resident memory at its highest, all along: a fraction of the value.
    let peak = peak_rss_kib(relay.0.id());
    assert!(
        peak < 64 * 1024,
        "the relay's peak memory was {peak} KiB while {value_len} bytes went through"
    );
}

#[tokio::test]
async fn an_mset_of_a_million_keys_makes_every_window_stale_and_leaks_nothing() {
    let (_redis, port) = start_redis_keeping_64_mb();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    wait_healthy(&ws_url).await;
    let mut conn = redis_conn(port).await;
    let mut socket = connect(&ws_url, &subscribe_message(&["perf:*"], 10)).await;
    let (_, joined, snapshot) = join(&mut socket).await;
    assert!(snapshot.is_empty());

    // Eleven keys the session may see, among a million it may not: too many keys to name, so the relay cannot
    // tell the session which of its keys the command wrote.
    let mut mset = vec![bytes("MSET")];
    let mut visible = Vec::new();
    for i in 0..1_000_000 {
        let (key, value) = if i % 100_000 == 0 || i == 999_999 {
            visible.push(args(&["SET", &format!("perf:m{i}"), &format!("v{i}")]));
            (format!("perf:m{i}"), format!("v{i}"))
        } else {
            (format!("secret:m{i}"), format!("s{i}"))
        };
        mset.extend([Arg::Bytes(key.into_bytes()), Arg::Bytes(value.into_bytes())]);
    }
    assert_eq!(write_command(port, &mset).await, "+OK\r\n");
    let mset_end = master_repl_offset(&mut conn).await;

    // Every window is stale after it: the browser joins afresh, and its snapshot holds the keys as Redis does.
    let (commands, stale) = received_until(&mut socket, joined, mset_end).await;
    assert!(commands.is_empty(), "{commands:?}");
    assert_eq!(stale, [(mset_end, Vec::new())]);
    let mut fresh = connect(&ws_url, &subscribe_message(&["perf:*"], 10)).await;
    let (_, _, snapshot) = join(&mut fresh).await;
    for want in &visible {
        assert!(snapshot.contains(want), "no {want:?} in {snapshot:?}");
    }
    assert!(!snapshot.iter().flatten().any(|a| a.starts_with(b"secret")));
    assert_streamed_through(&ws_url, 1).await;
}
