//! The relay binary against a real `redis-server`: what a browser receives on the WebSocket, byte for byte —
//! hellos, snapshots valid at their offset, raw commands with Redis's own offsets, resumes and partial resyncs.

mod support;

use replicast_assembler::{StreamAssembler, WatchConfig};
use replicast_protocol::wire::{self, Message, StaleKeys};
use support::*;

async fn set(conn: &mut redis::aio::MultiplexedConnection, key: &str, value: &str) {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_browser_gets_a_hello_a_snapshot_then_raw_commands_with_redis_offsets() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "*");
    let mut conn = redis_conn(port).await;
    let _: i64 = redis::cmd("ZADD")
        .arg("perf:web-1")
        .arg(1)
        .arg("old")
        .query_async(&mut conn)
        .await
        .unwrap();

    let mut socket = connect(&ws_url, &subscribe_message(&["perf:*"], 10)).await;
    let (epoch, joined, snapshot) = join(&mut socket).await;
    assert_eq!(
        info_field(&mut conn, "replication", "master_replid").await,
        epoch,
        "epoch is Redis's replid"
    );
    assert_eq!(
        snapshot,
        vec![
            args(&["DEL", "perf:web-1"]),
            args(&["ZADD", "perf:web-1", "1", "old"])
        ],
        "the snapshot rebuilds the window"
    );

    // A write in database 1 first, so that Redis's stream selects database 0 again before the next ZADD: the
    // first ZADD's SELECT 0 came before the join when the replica link attached before it was written.
    let mut elsewhere = redis_conn(port).await;
    let _: () = redis::cmd("SELECT")
        .arg(1)
        .query_async(&mut elsewhere)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("perf:db1")
        .arg("x")
        .query_async(&mut elsewhere)
        .await
        .unwrap();
    let _: i64 = redis::cmd("ZADD")
        .arg("perf:web-1")
        .arg(1_700_000_000_000u64)
        .arg(r#"{"id":"s1","cpu":12.5}"#)
        .query_async(&mut conn)
        .await
        .unwrap();
    let after_zadd = master_repl_offset(&mut conn).await;
    let commands = read_commands_until(&mut socket, joined, after_zadd).await;
    assert!(commands.contains(&args(&["SELECT", "0"])), "{commands:?}");
    assert!(
        commands.contains(&args(&[
            "ZADD",
            "perf:web-1",
            "1700000000000",
            r#"{"id":"s1","cpu":12.5}"#
        ])),
        "the ZADD arrives raw: {commands:?}"
    );
}

#[tokio::test]
async fn a_browser_that_reconnects_inside_the_backlog_resumes_where_it_was() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "*");
    let mut conn = redis_conn(port).await;
    let subscribe = subscribe_message(&["*"], 10);

    let mut socket = connect(&ws_url, &subscribe).await;
    let (epoch, joined, _) = join(&mut socket).await;
    set(&mut conn, "k", "before").await;
    let left_at = master_repl_offset(&mut conn).await;
    read_commands_until(&mut socket, joined, left_at).await;
    drop(socket);

    set(&mut conn, "k", "while-away").await;
    let now = master_repl_offset(&mut conn).await;

    let mut socket = connect(
        &format!("{ws_url}?epoch={epoch}&offset={left_at}"),
        &subscribe,
    )
    .await;
    assert_eq!(
        hello(&mut socket).await,
        (epoch.clone(), left_at),
        "resumed at its own offset, no snapshot"
    );
    let missed = read_commands_until(&mut socket, left_at, now).await;
    assert!(
        missed.contains(&args(&["SET", "k", "while-away"])),
        "{missed:?}"
    );

    // A resume point the relay does not hold (ahead of the stream), or of another epoch, joins afresh.
    let ahead = now + 1_000_000;
    let mut fresh = connect(
        &format!("{ws_url}?epoch={epoch}&offset={ahead}"),
        &subscribe,
    )
    .await;
    let (_, fresh_offset, snapshot) = join(&mut fresh).await;
    assert!((now..ahead).contains(&fresh_offset), "{fresh_offset}");
    assert!(
        snapshot.contains(&args(&["SET", "k", "while-away"])),
        "{snapshot:?}"
    );
    let mut other = connect(&format!("{ws_url}?epoch=feed&offset={left_at}"), &subscribe).await;
    assert!(
        join(&mut other).await.1 >= now,
        "another epoch cannot resume"
    );
}

#[tokio::test]
async fn a_dropped_link_resumes_with_a_partial_resync_and_browsers_do_not_notice() {
    // Redis pings its replicas once an hour here, so nothing follows the write below on the link: the catch-up
    // must arrive on its own.
    let (_redis, port) = start_redis_with(&["--repl-ping-replica-period", "3600"]);
    let (_relay, ws_url) = start_relay(port, "*");
    let mut conn = redis_conn(port).await;
    let mut socket = connect(&ws_url, &subscribe_message(&["*"], 10)).await;
    let (_, joined, _) = join(&mut socket).await;

    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query_async(&mut conn)
        .await
        .unwrap();
    set(&mut conn, "while", "disconnected").await;
    let now = master_repl_offset(&mut conn).await;

    // The same session keeps receiving, with no new hello in between (read_commands_until would panic on one).
    // What Redis sends with its +CONTINUE arrives with no further write or ping to push it out (none comes: the
    // read fails after next_message's 20 s).
    let commands = read_commands_until(&mut socket, joined, now).await;
    assert!(
        commands.contains(&args(&["SET", "while", "disconnected"])),
        "{commands:?}"
    );
    assert_eq!(
        info_field(&mut conn, "stats", "sync_partial_ok").await,
        "1",
        "Redis saw a partial resync"
    );
}

#[tokio::test]
async fn nothing_outside_allow_leaves_the_relay() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    let mut conn = redis_conn(port).await;
    set(&mut conn, "secret:a", "hidden").await;
    set(&mut conn, "perf:a", "visible").await;

    // The browser asks for everything; it gets only what --allow permits, snapshot included.
    let mut socket = connect(&ws_url, &subscribe_message(&["*"], 10)).await;
    let (_, joined, snapshot) = join(&mut socket).await;
    assert_eq!(
        snapshot,
        vec![
            args(&["DEL", "perf:a"]),
            args(&["SET", "perf:a", "visible"])
        ]
    );

    set(&mut conn, "secret:b", "hidden").await;
    let _: () = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("perf:t")
        .arg("in-multi")
        .cmd("SET")
        .arg("secret:t")
        .arg("hidden")
        .query_async(&mut conn)
        .await
        .unwrap();
    // A multi-key command naming a disallowed key is withheld whole: not even the key name may leave.
    let _: () = redis::cmd("MSET")
        .arg("perf:m")
        .arg("1")
        .arg("secret:m")
        .arg("2")
        .query_async(&mut conn)
        .await
        .unwrap();
    set(&mut conn, "perf:last", "visible").await;
    let now = master_repl_offset(&mut conn).await;

    // The withheld MSET wrote perf:m, which the browser watches: it learns that key is stale, and nothing else.
    let (mut commands, mut stale, mut applied) = (Vec::new(), Vec::new(), joined);
    while applied < now {
        let message = next_binary(&mut socket).await;
        assert!(!message.windows(6).any(|w| w == b"secret"), "leaked");
        match wire::decode(&message).unwrap() {
            Message::Stale {
                offset,
                keys: StaleKeys::Keys(keys),
            } => {
                stale.extend(keys.map(<[u8]>::to_vec));
                applied = offset;
            }
            Message::Commands(segments) => {
                for segment in segments {
                    let segment = segment.unwrap();
                    commands.extend(parse_all(segment.bytes));
                    applied = segment.end();
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(stale, [b"perf:m".to_vec()]);
    let flat: Vec<u8> = commands.iter().flatten().flatten().copied().collect();
    assert!(
        !flat.windows(6).any(|w| w == b"secret"),
        "leaked: {commands:?}"
    );
    let t = commands
        .iter()
        .position(|c| c == &args(&["SET", "perf:t", "in-multi"]))
        .expect("perf:t");
    assert_eq!(commands[t - 1], args(&["MULTI"]));
    assert_eq!(
        commands[t + 1],
        args(&["EXEC"]),
        "the block keeps its frames, minus the disallowed ones"
    );
    assert!(commands.contains(&args(&["SET", "perf:last", "visible"])));
}

#[tokio::test]
async fn every_joining_session_ends_equal_to_redis_under_concurrent_writes() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    let writer = tokio::spawn(async move {
        let mut conn = redis_conn(port).await;
        // 40 members at most, under the window of 100, so every window must equal the whole set.
        for i in 0..3000u64 {
            let member = format!("m{}", i % 40);
            let query = match i % 5 {
                0..=2 => redis::cmd("ZADD").arg("perf:z").arg(i).arg(&member).clone(),
                3 => redis::cmd("ZADD")
                    .arg("perf:z")
                    .arg("INCR")
                    .arg(1)
                    .arg(&member)
                    .clone(),
                _ => redis::cmd("ZREM").arg("perf:z").arg(&member).clone(),
            };
            let _: redis::Value = query.query_async(&mut conn).await.unwrap();
        }
        conn
    });
    // Browsers join while the writes go on.
    let mut sessions = Vec::new();
    for _ in 0..4 {
        let mut socket = connect(&ws_url, &subscribe_message(&["perf:*"], 100)).await;
        let mut assembler = StreamAssembler::new(WatchConfig {
            patterns: vec![b"perf:*".to_vec()],
            db: 0,
            window: 100,
        });
        let (epoch, offset, _) = hello_and_snapshot_into(&mut socket, &mut assembler).await;
        sessions.push((socket, assembler, epoch, offset));
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    let mut conn = writer.await.unwrap();
    let end = master_repl_offset(&mut conn).await;
    let want: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg("perf:z")
        .arg(-100)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .unwrap();
    for (socket, assembler, _, _) in &mut sessions {
        while assembler.offset() < end {
            assembler.push_message(&next_binary(socket).await).unwrap();
        }
        let mut got = zset_newest_first(assembler, "perf:z");
        got.reverse();
        assert_eq!(
            got, want,
            "the window equals ZRANGE perf:z -100 -1 WITHSCORES"
        );
    }
}

/// Feeds the hello and the snapshot to `assembler`; returns the epoch and offset.
async fn hello_and_snapshot_into(
    socket: &mut Socket,
    assembler: &mut StreamAssembler,
) -> (String, u64, ()) {
    let hello = next_binary(socket).await;
    let Message::Hello { epoch, offset, .. } = wire::decode(&hello).unwrap() else {
        panic!("no hello");
    };
    let (epoch, offset) = (epoch.to_string(), offset);
    assembler.push_message(&hello).unwrap();
    let snapshot = next_binary(socket).await;
    assert!(matches!(
        wire::decode(&snapshot),
        Ok(Message::Snapshot { .. })
    ));
    assembler.push_message(&snapshot).unwrap();
    (epoch, offset, ())
}

#[tokio::test]
async fn bad_subscriptions_are_refused_with_a_reason() {
    use tokio_tungstenite::tungstenite::Message as Ws;
    // As many databases as a subscription may name.
    let (_redis, port) = start_redis_with(&["--databases", "1024"]);
    let (_relay, ws_url) = start_relay(port, "perf:*");
    wait_healthy(&ws_url).await;
    let cases = [
        ("not json", "invalid subscribe message"),
        (
            r#"{"type":"subscribe","patterns":["x"],"window":0}"#,
            "window must be",
        ),
        (
            r#"{"type":"subscribe","patterns":["x"],"window":100001}"#,
            "window must be 1..=100000, got 100001",
        ),
        (
            r#"{"type":"subscribe","patterns":["x"],"db":1024,"window":5}"#,
            "db must be 0..=1023, got 1024",
        ),
        (r#"{"type":"subscribe","window":5}"#, "watches nothing"),
        (
            r#"{"type":"launch","window":5}"#,
            "invalid subscribe message",
        ),
    ];
    for (message, reason) in cases {
        let mut socket = connect(&ws_url, message).await;
        match next_message(&mut socket).await {
            Ws::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), 1008, "{message}");
                assert!(frame.reason.contains(reason), "{message}: {}", frame.reason);
            }
            other => panic!("{message}: expected a close, got {other:?}"),
        }
    }
    let too_many: Vec<String> = (0..65).map(|i| format!("\"p{i}\"")).collect();
    let message = format!(
        r#"{{"type":"subscribe","patterns":[{}],"window":5}}"#,
        too_many.join(",")
    );
    let mut socket = connect(&ws_url, &message).await;
    assert!(
        matches!(next_message(&mut socket).await, Ws::Close(Some(f)) if f.reason.contains("at most 64 patterns"))
    );
    // The limits themselves are accepted.
    let mut socket = connect(
        &ws_url,
        r#"{"type":"subscribe","patterns":["x"],"db":1023,"window":100000}"#,
    )
    .await;
    join(&mut socket).await;
    // The relay stays healthy.
    assert_eq!(http_get(&ws_url, "/healthz").await.0, 200);
}

#[tokio::test]
async fn a_database_past_what_redis_has_is_refused_with_the_limit() {
    use tokio_tungstenite::tungstenite::Message as Ws;
    let subscribe =
        |db: u32| format!(r#"{{"type":"subscribe","patterns":["x"],"db":{db},"window":5}}"#);
    // A Redis of 4 databases; the relay learns it when SELECT fails.
    let (_redis, port) = start_redis_with(&["--databases", "4"]);
    let (_relay, ws_url) = start_relay(port, "*");
    wait_healthy(&ws_url).await;
    join(&mut connect(&ws_url, &subscribe(3)).await).await;
    // How many CONFIG GETs Redis ran (the link asks its own at the handshake).
    let mut conn = redis_conn(port).await;
    let mut config_calls = async || -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_config|get:calls="))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse().unwrap())
    };
    let calls_before = config_calls().await;
    for db in [4, 20, 1023] {
        let mut socket = connect(&ws_url, &subscribe(db)).await;
        match next_message(&mut socket).await {
            Ws::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), 1008, "db {db}");
                assert!(
                    frame
                        .reason
                        .starts_with(&format!("db {db} is past this Redis's 4 databases")),
                    "{}",
                    frame.reason
                );
            }
            other => panic!("db {db}: expected a close frame, got {other:?}"),
        }
    }
    // Redis was asked its databases once for the three sessions, not once each.
    assert_eq!(config_calls().await - calls_before, 1);
    // A Redis whose CONFIG is renamed away does not say: SELECT's failure closes the session, as before.
    let (_redis, port) = start_redis_with(&["--databases", "4", "--rename-command", "CONFIG", ""]);
    let (_relay, ws_url) = start_relay(port, "*");
    wait_healthy(&ws_url).await;
    let mut socket = connect(&ws_url, &subscribe(4)).await;
    match next_message(&mut socket).await {
        Ws::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 1011);
            assert!(
                frame.reason.contains("DB index is out of range"),
                "{}",
                frame.reason
            );
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert_eq!(http_get(&ws_url, "/healthz").await.0, 200);
}

#[tokio::test]
async fn healthz_and_metrics_report_the_link() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "*");
    let mut socket = connect(&ws_url, &subscribe_message(&["*"], 10)).await;
    join(&mut socket).await;

    let (status, body) = http_get(&ws_url, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ok: streaming epoch "), "{body}");
    let (status, body) = http_get(&ws_url, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "replicast_link_up 1",
        "replicast_sessions 1",
        "replicast_link_full_syncs_total 1",
        // The join's snapshot came from the relay's state, not from Redis.
        "replicast_state_snapshots_total 1",
        "replicast_snapshots_total 0",
    ] {
        assert!(body.lines().any(|l| l == line), "no {line:?} in:\n{body}");
    }
    assert_eq!(http_get(&ws_url, "/ws?epoch=only").await.0, 400);
    // An epoch past 64 bytes (they are 40) is refused, as in `at=`, not held by the session it would start.
    let long_epoch = format!("{ws_url}?epoch={}&offset=0", "e".repeat(65));
    match tokio_tungstenite::connect_async(long_epoch.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400)
        }
        other => panic!("expected 400 for a 65-byte epoch, got {other:?}"),
    }
    // `ended=` is 0 or 1: a client that reads the ended message (of a cluster's shard leaving; one Redis's stream
    // never ends) asks with 1, and joins as any other.
    match tokio_tungstenite::connect_async(format!("{ws_url}?ended=2").as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400)
        }
        other => panic!("expected 400 for ended=2, got {other:?}"),
    }
    let mut reader = connect(&format!("{ws_url}?ended=1"), &subscribe_message(&["*"], 10)).await;
    join(&mut reader).await;
    // The lag gauge appears once the followed node has been polled after a write.
    let mut conn = redis_conn(port).await;
    set(&mut conn, "perf:lag", "1").await;
    for _ in 0..100 {
        let (_, body) = http_get(&ws_url, "/metrics").await;
        if body.lines().any(|l| {
            l.starts_with("replicast_upstream_offset ") && l != "replicast_upstream_offset 0"
        }) {
            assert!(
                body.lines()
                    .any(|l| l.starts_with("replicast_link_lag_bytes ")),
                "{body}"
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the followed node's offset was never polled");
}

/// Applies commands to `conn` as a replica would, minus the transaction wrapping (the block runs in order).
async fn replay(conn: &mut redis::aio::MultiplexedConnection, commands: &[Args]) {
    for command in commands {
        let name = String::from_utf8_lossy(&command[0]).to_ascii_uppercase();
        if matches!(name.as_str(), "SELECT" | "MULTI" | "EXEC") {
            continue;
        }
        let mut cmd = redis::cmd(&name);
        for arg in &command[1..] {
            cmd.arg(arg.as_slice());
        }
        let _: redis::Value = cmd.query_async(conn).await.unwrap();
    }
}

#[tokio::test]
async fn what_each_joining_session_receives_rebuilds_redis_exactly_under_load() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    let writer = tokio::spawn(async move {
        let mut conn = redis_conn(port).await;
        for i in 0..4000u64 {
            let member = format!("m{}", i % 60);
            let query = match i % 7 {
                0..=2 => redis::cmd("ZADD").arg("perf:z").arg(i).arg(&member).clone(),
                3 => redis::cmd("ZINCRBY")
                    .arg("perf:z")
                    .arg(2.5)
                    .arg(&member)
                    .clone(),
                4 => redis::cmd("ZREM").arg("perf:z").arg(&member).clone(),
                5 => redis::cmd("ZREMRANGEBYRANK")
                    .arg("perf:z")
                    .arg(0)
                    .arg(1)
                    .clone(),
                _ => redis::cmd("SET").arg(format!("other:{i}")).arg(i).clone(),
            };
            let _: redis::Value = query.query_async(&mut conn).await.unwrap();
        }
        conn
    });
    let mut sessions = Vec::new();
    for _ in 0..4 {
        let mut socket = connect(&ws_url, &subscribe_message(&["perf:*"], 1000)).await;
        let (_, offset, snapshot) = join(&mut socket).await;
        sessions.push((socket, offset, snapshot));
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
    let mut primary = writer.await.unwrap();
    let end = master_repl_offset(&mut primary).await;
    let want: Vec<(String, String)> = redis::cmd("ZRANGE")
        .arg("perf:z")
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut primary)
        .await
        .unwrap();
    for (socket, offset, snapshot) in &mut sessions {
        let commands = read_commands_until(socket, *offset, end).await;
        let (_scratch, scratch_port) = start_redis();
        let mut scratch = redis_conn(scratch_port).await;
        replay(&mut scratch, snapshot).await;
        replay(&mut scratch, &commands).await;
        let got: Vec<(String, String)> = redis::cmd("ZRANGE")
            .arg("perf:z")
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut scratch)
            .await
            .unwrap();
        assert_eq!(
            got, want,
            "snapshot at {offset} + the stream after it = Redis"
        );
    }
}

#[tokio::test]
async fn an_oversized_client_message_is_refused_and_the_relay_stays_healthy() {
    use tokio_tungstenite::tungstenite::Message as Ws;
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    let huge = format!(
        r#"{{"type":"subscribe","patterns":["{}"],"window":5}}"#,
        "x".repeat(100_000)
    );
    let mut socket = connect(&ws_url, &huge).await;
    match tokio::time::timeout(
        std::time::Duration::from_secs(20),
        futures_util::StreamExt::next(&mut socket),
    )
    .await
    {
        Ok(Some(Ok(Ws::Close(Some(frame))))) => assert_eq!(
            (u16::from(frame.code), frame.reason.as_str()),
            (1009, "message too big: at most 65536 bytes")
        ),
        Ok(Some(Ok(other))) => panic!("expected a close, got {other:?}"),
        // The relay may drop the connection right after its close frame.
        Ok(Some(Err(_)) | None) => {}
        Err(_) => panic!("no answer to an oversized message"),
    }
    wait_healthy(&ws_url).await;
    let mut fine = connect(&ws_url, &subscribe_message(&["perf:*"], 5)).await;
    join(&mut fine).await;
}

#[tokio::test]
async fn sigterm_closes_sessions_with_going_away() {
    use tokio_tungstenite::tungstenite::Message as Ws;
    let (_redis, port) = start_redis();
    let (relay, ws_url) = start_relay(port, "perf:*");
    let mut socket = connect(&ws_url, &subscribe_message(&["perf:*"], 5)).await;
    join(&mut socket).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &relay.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    loop {
        match next_message(&mut socket).await {
            Ws::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), 1001);
                assert_eq!(frame.reason.as_str(), "relay shutting down");
                break;
            }
            Ws::Binary(_) => {}
            other => panic!("expected a close, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_relay_with_a_token_refuses_sessions_without_it() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "perf:*", "--token", "s3cret"],
    );
    for url in [ws_url.clone(), format!("{ws_url}?token=wrong")] {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401, "{url}")
            }
            other => panic!("{url}: expected 401, got {other:?}"),
        }
    }
    let mut socket = connect(
        &format!("{ws_url}?token=s3cret"),
        &subscribe_message(&["perf:*"], 5),
    )
    .await;
    join(&mut socket).await;
}

/// `--help` names the variables secrets come from, never their values (operators are told to put secrets there):
/// every variable any subcommand's help names is set, and those that hold a secret (a URL, which may carry a
/// password, a token, a password) must not show. A flag added later with a secret variable is checked too.
#[test]
fn help_shows_no_secret_from_the_environment() {
    let help = |subcommand: &str, env: &[(String, String)]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_replicast"))
            .args([subcommand, "--help"])
            .envs(env.iter().cloned())
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let is_secret = |name: &str| {
        ["URL", "TOKEN", "PASSWORD", "SECRET", "DATABASE"]
            .iter()
            .any(|s| name.contains(s))
    };
    for subcommand in ["serve", "record", "collect", "rdb", "sink"] {
        let variables: std::collections::BTreeSet<String> = help(subcommand, &[])
            .split("[env: ")
            .skip(1)
            .filter_map(|rest| rest.split(['=', ']']).next().map(str::to_string))
            .collect();
        let secrets: Vec<&String> = variables.iter().filter(|v| is_secret(v)).collect();
        if !matches!(subcommand, "rdb" | "sink") {
            assert!(
                variables.contains("REDIS_URL"),
                "{subcommand} --help names no REDIS_URL: {variables:?}"
            );
        }
        // Values a flag would accept, so that clap shows them where it shows any.
        let env: Vec<(String, String)> = variables
            .iter()
            .map(|v| (v.clone(), format!("redis://u:Xq7-{v}@127.0.0.1:6379")))
            .collect();
        let shown = help(subcommand, &env);
        for secret in &secrets {
            assert!(
                !shown.contains(&format!("Xq7-{secret}")),
                "{subcommand} --help shows {secret}'s value:\n{shown}"
            );
        }
        if subcommand == "serve" {
            for expected in [
                "REDIS_URL",
                "REPLICAST_TOKEN",
                "REPLICAST_JWT_SECRET",
                "REPLICAST_SENTINEL_PASSWORD",
            ] {
                assert!(secrets.iter().any(|s| *s == expected), "{secrets:?}");
            }
            // Not secret: shown, which proves the check above would see a value clap prints.
            assert!(shown.contains("Xq7-REPLICAST_LISTEN"), "{shown}");
        }
    }
}
