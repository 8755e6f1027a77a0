//! Top-ups against a real `redis-server`: a browser whose window shrank below what Redis holds asks for the key
//! again, and gets a snapshot of it placed exactly in its stream, so its window equals Redis before and after,
//! even while other writes go on; the relay's state answers them, with no command to Redis. Keys it does not watch
//! are refused with a notice; a malformed request closes it.

mod support;

use futures_util::SinkExt;
use replicast_assembler::{StreamAssembler, WatchConfig};
use replicast_protocol::client_message::Topup;
use replicast_protocol::wire::{self, Message};
use support::*;
use tokio_tungstenite::tungstenite;

#[tokio::test]
async fn a_topup_refills_a_shrunken_window_in_stream_order() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    let mut conn = redis_conn(port).await;
    for i in 1..=5 {
        zadd(&mut conn, "perf:a", i, &format!("m{i}")).await;
    }
    let mut assembler = StreamAssembler::new(WatchConfig {
        patterns: vec![b"perf:*".to_vec()],
        db: 0,
        window: 3,
    });
    // The join's snapshot comes from the relay's state at the relay's offset: let it hold the five first.
    link_reaches(&ws_url, master_repl_offset(&mut conn).await).await;
    let mut socket = connect(&ws_url, &subscribe_message(&["perf:*"], 3)).await;
    for _ in 0..2 {
        let message = next_binary(&mut socket).await;
        assembler.push_message(&message).unwrap();
    }
    assert_eq!(
        zset_newest_first(&assembler, "perf:a"),
        newest(&mut conn, "perf:a", 3).await
    );

    // Removing the two newest leaves the browser one member while Redis still holds three.
    let _: i64 = redis::cmd("ZREM")
        .arg("perf:a")
        .arg("m5")
        .arg("m4")
        .query_async(&mut conn)
        .await
        .unwrap();
    let offset = master_repl_offset(&mut conn).await;
    apply_until(&mut socket, &mut assembler, offset).await;
    assert_eq!(zset_newest_first(&assembler, "perf:a").len(), 1);

    socket
        .send(tungstenite::Message::text(
            Topup::requests([&b"perf:a"[..]]).remove(0),
        ))
        .await
        .unwrap();
    // Writes go on while the top-up is read: each must land on the right side of it.
    for i in 6..=40 {
        zadd(&mut conn, "perf:a", i, &format!("m{i}")).await;
        if i == 6 {
            let _: i64 = redis::cmd("ZREM")
                .arg("perf:a")
                .arg("m6")
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
    // The top-up may be read after the last write: then it comes after `offset`, with no write behind it.
    let offset = master_repl_offset(&mut conn).await;
    let mut snapshots = apply_until(&mut socket, &mut assembler, offset).await;
    while snapshots == 0 {
        let message = next_binary(&mut socket).await;
        if matches!(wire::decode(&message), Ok(Message::Snapshot { .. })) {
            snapshots += 1;
        }
        assembler.push_message(&message).unwrap();
    }
    snapshots += apply_until(&mut socket, &mut assembler, offset).await;
    assert_eq!(snapshots, 1, "one snapshot answers the top-up");
    assert_eq!(
        zset_newest_first(&assembler, "perf:a"),
        newest(&mut conn, "perf:a", 3).await
    );

    // A top-up while nothing is written is delivered at once, at the stream's current offset.
    let _: i64 = redis::cmd("ZREM")
        .arg("perf:a")
        .arg("m40")
        .arg("m39")
        .query_async(&mut conn)
        .await
        .unwrap();
    let offset = master_repl_offset(&mut conn).await;
    apply_until(&mut socket, &mut assembler, offset).await;
    socket
        .send(tungstenite::Message::text(
            Topup::requests([&b"perf:a"[..]]).remove(0),
        ))
        .await
        .unwrap();
    loop {
        let message = next_binary(&mut socket).await;
        let is_snapshot = matches!(wire::decode(&message), Ok(Message::Snapshot { .. }));
        assembler.push_message(&message).unwrap();
        if is_snapshot {
            break;
        }
    }
    assert_eq!(
        zset_newest_first(&assembler, "perf:a"),
        newest(&mut conn, "perf:a", 3).await
    );
    // The join and both top-ups came from the relay's state: Redis ran no snapshot for any of them.
    assert_eq!(metric(&ws_url, "replicast_state_snapshots_total").await, 3);
    assert_eq!(metric(&ws_url, "replicast_snapshots_total").await, 0);
}

#[tokio::test]
async fn topups_of_keys_not_watched_get_a_notice_and_bad_requests_close() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    let mut socket = connect(&ws_url, &subscribe_message(&["perf:a"], 3)).await;
    join(&mut socket).await;
    socket
        .send(tungstenite::Message::text(
            Topup::requests([&b"perf:b"[..], b"secret"]).remove(0),
        ))
        .await
        .unwrap();
    let notice = loop {
        let message = next_binary(&mut socket).await;
        if let Ok(Message::Notice { text }) = wire::decode(&message) {
            break text.to_string();
        }
    };
    assert!(
        notice.contains("perf:b") && notice.contains("secret") && notice.contains("does not watch"),
        "{notice}"
    );

    socket
        .send(tungstenite::Message::text(r#"{"type":"topup","keys":"#))
        .await
        .unwrap();
    let close = loop {
        if let tungstenite::Message::Close(frame) = next_message(&mut socket).await {
            break frame.expect("a close frame with a reason");
        }
    };
    assert_eq!(u16::from(close.code), 1008);
    assert!(
        close
            .reason
            .starts_with("invalid message: EOF while parsing"),
        "{}",
        close.reason
    );
}

#[tokio::test]
async fn a_snapshot_too_big_for_one_part_comes_in_parts_and_every_window_equals_redis() {
    let (_redis, port) = start_redis();
    // Parts are how a snapshot read from Redis stays bounded: without a state, every join reads Redis.
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "perf:*", "--stateless"],
    );
    let mut conn = redis_conn(port).await;
    // 60 keys × a window of 1,000 = 60,000 items: more than one part holds (40,000), so two parts or more.
    let (keys, window) = (60, 1000);
    let mut fill = redis::pipe();
    for k in 0..keys {
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(format!("perf:host-{k:02}"));
        for i in 0..window {
            zadd.arg(i).arg(format!("m{i}"));
        }
        fill.add_command(zadd).ignore();
    }
    let () = fill.query_async(&mut conn).await.unwrap();
    let mut assembler = StreamAssembler::new(WatchConfig {
        patterns: vec![b"perf:*".to_vec()],
        db: 0,
        window,
    });
    let mut socket = connect(&ws_url, &subscribe_message(&["perf:*"], window)).await;
    // Writes to every key go on while the parts are read; each lands on the right side of its key's part.
    let writer = tokio::spawn(async move {
        for i in window..window + 200 {
            for k in (0..keys).step_by(7) {
                zadd(
                    &mut conn,
                    &format!("perf:host-{k:02}"),
                    i as u64,
                    &format!("m{i}"),
                )
                .await;
            }
        }
        conn
    });
    let mut snapshots = 0;
    let mut first_keys = None;
    while snapshots == 0 || !writer.is_finished() || !windows_full(&assembler, keys, window) {
        let message = next_binary(&mut socket).await;
        if let Ok(Message::Snapshot { .. }) = wire::decode(&message) {
            snapshots += 1;
        }
        assembler.push_message(&message).unwrap();
        if snapshots == 1 && first_keys.is_none() {
            first_keys = Some(assembler.keys().count());
        }
    }
    let mut conn = writer.await.unwrap();
    let offset = master_repl_offset(&mut conn).await;
    apply_until(&mut socket, &mut assembler, offset).await;
    assert!(snapshots >= 2, "{snapshots} snapshot part(s)");
    assert!(
        first_keys.unwrap() < keys,
        "the first part holds {first_keys:?} of {keys} keys"
    );
    for k in 0..keys {
        let key = format!("perf:host-{k:02}");
        assert_eq!(
            zset_newest_first(&assembler, &key),
            newest(&mut conn, &key, window).await,
            "{key}"
        );
    }
}

/// A session's top-ups hold at most 10,000 keys waiting (what one snapshot reads): keys asked for past that are
/// not taken, and the session is told how many in a notice, which `/metrics` counts too; it goes on streaming.
#[tokio::test]
async fn keys_asked_past_what_top_ups_hold_waiting_are_told_and_counted() {
    const PREFIX: &str = "top-up of ";
    const SUFFIX: &str =
        " keys not taken: at most 10000 keys wait for top-ups in a session; ask for them again \
                          once those have come";
    let (_redis, port) = start_redis();
    // Without a state every top-up is read from Redis, which the test pauses so that requests pile up.
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "perf:*", "--stateless"],
    );
    wait_healthy(&ws_url).await;
    let mut socket = connect(&ws_url, &subscribe_message(&["perf:*"], 3)).await;
    join(&mut socket).await;
    assert_eq!(
        metric(&ws_url, "replicast_topup_keys_refused_total").await,
        0
    );

    // 20 requests of 1,024 keys while Redis reads nothing: the session reads the keys it took first and waits on
    // Redis, the others wait for it. However they are split between that read and the next, one side holds more
    // than 10,000 keys (20,480 in all).
    let mut conn = redis_conn(port).await;
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(5000)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    let keys: Vec<String> = (0..20 * 1024).map(|i| format!("perf:k{i:05}")).collect();
    let requests = Topup::requests(keys.iter().map(String::as_bytes));
    assert_eq!(requests.len(), 20);
    for request in requests {
        socket
            .send(tungstenite::Message::text(request))
            .await
            .unwrap();
    }

    // Every key not taken is told, and counted: the notices' counts add up to the counter's (read after each
    // notice, which the relay sends after counting its keys).
    let told = within(
        "notices of keys not taken adding up to the counter",
        async {
            let mut told = 0;
            loop {
                let message = next_binary(&mut socket).await;
                let Ok(Message::Notice { text }) = wire::decode(&message) else {
                    continue;
                };
                let count = text
                    .strip_prefix(PREFIX)
                    .and_then(|rest| rest.strip_suffix(SUFFIX))
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("not a notice of keys not taken: {text}"));
                told += count;
                let counted = metric(&ws_url, "replicast_topup_keys_refused_total").await;
                assert!(counted >= told, "{told} keys told, {counted} counted");
                if counted == told {
                    return told;
                }
            }
        },
    )
    .await;
    assert!(told > 0);
    eprintln!("{told} of the 20,480 keys asked for were not taken, told and counted");

    // The session goes on.
    zadd(&mut conn, "perf:after", 1, "a").await;
    within("the ZADD of perf:after", async {
        loop {
            let message = next_binary(&mut socket).await;
            if let Ok(Message::Commands(segments)) = wire::decode(&message) {
                if segments.map(|s| s.unwrap()).any(|s| {
                    parse_all(s.bytes)
                        .iter()
                        .any(|c| c.get(1).is_some_and(|k| k == b"perf:after"))
                }) {
                    return;
                }
            }
        }
    })
    .await;
}

/// Whether every key's window holds `window` members.
fn windows_full(assembler: &StreamAssembler, keys: usize, window: usize) -> bool {
    (0..keys).all(|k| zset_newest_first(assembler, &format!("perf:host-{k:02}")).len() == window)
}
