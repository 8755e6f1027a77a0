//! Past writes (issue 23, the relay's side), with redis-server and the relay binary: a top-up asked with `since`
//! gets, right before its snapshot and at its offset, a past message listing the scores each key's members had since
//! then, from the relay's state — a `ZINCRBY`'s result overwritten before the top-up is not lost — with, per key, the
//! offset from which the list is complete: where the state made the key exact again, where its ring of past writes
//! (`--state-history-bytes`) evicted its oldest entries, or the snapshot's own offset when nothing is covered
//! (`--stateless`); and a stream's entries with their whole ids and fields. Offsets are compared, never times.

mod support;

use redis::aio::MultiplexedConnection;
use replicast_protocol::wire::{self, Message, PastValue};
use support::*;

/// A session on `perf:*` that joined; the offset of its hello.
async fn session(ws_url: &str) -> (Socket, u64) {
    let mut socket = connect(ws_url, &subscribe_message(&["perf:*"], 100)).await;
    let (_, offset, _) = join(&mut socket).await;
    (socket, offset)
}

/// Runs `command` alone; the stream's offset before and after it (its end is in between, after the first).
async fn write(conn: &mut MultiplexedConnection, command: &[&str]) -> (u64, u64) {
    let before = master_repl_offset(conn).await;
    let mut cmd = redis::cmd(command[0]);
    for arg in &command[1..] {
        cmd.arg(*arg);
    }
    let _: redis::Value = cmd.query_async(conn).await.unwrap();
    (before, master_repl_offset(conn).await)
}

/// What a past message says of one key: `covered_from`, each member's (offset, score, member), and each stream
/// entry's (offset, id, fields).
struct KeyPast {
    covered_from: u64,
    items: Vec<(u64, f64, String)>,
    entries: Vec<(u64, String, Vec<String>)>,
}

/// Asks for a top-up of `keys` since `since`, and reads until its answer: the past message, whose offset must be
/// the snapshot's right after it; that offset, and what it says of each key in order.
async fn topup_since(socket: &mut Socket, keys: &[&str], since: u64) -> (u64, Vec<KeyPast>) {
    let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    ask_topup_since(socket, keys, since).await;
    let past = loop {
        let message = next_binary(socket).await;
        if wire::is_past(&message) {
            break message;
        }
        assert!(
            !matches!(wire::decode(&message), Ok(Message::Snapshot { .. })),
            "a snapshot came without its past message"
        );
    };
    let (shard, decoded) = wire::decode_past(&past).unwrap();
    assert_eq!(shard, 0);
    let snapshot = next_binary(socket).await;
    let Ok(Message::Snapshot { offset, .. }) = wire::decode(&snapshot) else {
        panic!("the past message is not followed by its snapshot")
    };
    assert_eq!(offset, decoded.offset, "at the snapshot's offset");
    let keys = decoded
        .keys
        .iter()
        .map(|key| {
            let mut past = KeyPast {
                covered_from: key.covered_from,
                items: Vec::new(),
                entries: Vec::new(),
            };
            for item in &key.items {
                match &item.value {
                    PastValue::Member { score, member } => past.items.push((
                        item.offset,
                        *score,
                        String::from_utf8_lossy(member).into_owned(),
                    )),
                    PastValue::Entry { ms, seq, fields } => past.entries.push((
                        item.offset,
                        format!("{ms}-{seq}"),
                        fields
                            .iter()
                            .map(|f| String::from_utf8_lossy(f).into_owned())
                            .collect(),
                    )),
                }
            }
            past
        })
        .collect();
    (offset, keys)
}

#[tokio::test]
async fn each_score_a_member_had_since_is_listed_with_its_offset() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    let mut conn = redis_conn(port).await;
    wait_healthy(&ws_url).await;
    // Something before the session joins, so that its hello (`since`) is not where the state started.
    let (_, first) = write(&mut conn, &["ZADD", "perf:k", "3", "m"]).await;
    state_reaches(&ws_url, first).await;
    let (mut socket, since) = session(&ws_url).await;
    assert!(since >= first);
    let mut spans = Vec::new();
    for command in [
        &["ZINCRBY", "perf:k", "5", "m"][..],
        &["ZINCRBY", "perf:k", "7", "m"],
        &["ZADD", "perf:k", "1", "m"],
    ] {
        spans.push(write(&mut conn, command).await);
    }
    state_reaches(&ws_url, spans[2].1).await;
    let (at, keys) = topup_since(&mut socket, &["perf:k"], since).await;
    assert!(at >= spans[2].1);
    let k = &keys[0];
    assert!(k.covered_from <= since, "{} > {since}", k.covered_from);
    assert!(
        k.covered_from < first,
        "covered from where the state started"
    );
    let scores: Vec<(f64, &str)> = k.items.iter().map(|(_, s, m)| (*s, m.as_str())).collect();
    assert_eq!(scores, [(8.0, "m"), (15.0, "m"), (1.0, "m")]);
    for ((offset, ..), (before, after)) in k.items.iter().zip(&spans) {
        assert!(
            before < offset && offset <= after,
            "{offset} not in ({before}, {after}]"
        );
    }
    // Asked again since the second: only the third is listed.
    let (_, keys) = topup_since(&mut socket, &["perf:k"], k.items[1].0).await;
    assert_eq!(keys[0].items.len(), 1);
    assert_eq!(keys[0].items[0].1, 1.0);
}

/// Stream entries are listed as members are: each with its whole id (two of one millisecond told apart by their
/// sequence number, and the one Redis made for `*`), its fields, at the end of the `XADD` that wrote it; the
/// `XTRIM` that took them from Redis before the top-up does not take them from the list.
#[tokio::test]
async fn each_stream_entry_since_is_listed_with_its_whole_id_and_fields() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    let mut conn = redis_conn(port).await;
    wait_healthy(&ws_url).await;
    let (mut socket, since) = session(&ws_url).await;
    let mut spans = Vec::new();
    for command in [
        &["XADD", "perf:s", "1700000000000-0", "cpu", "1"][..],
        &["XADD", "perf:s", "1700000000000-1", "cpu", "2", "host", "a"],
        &["XADD", "perf:s", "*", "cpu", "3"],
    ] {
        spans.push(write(&mut conn, command).await);
    }
    // The id Redis made for `*`, and its fields.
    let newest: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
        .arg("perf:s")
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (_, trimmed) = write(&mut conn, &["XTRIM", "perf:s", "MAXLEN", "0"]).await;
    state_reaches(&ws_url, trimmed).await;
    let (at, keys) = topup_since(&mut socket, &["perf:s"], since).await;
    assert!(at >= trimmed);
    let s = &keys[0];
    assert!(s.covered_from <= since, "{} > {since}", s.covered_from);
    assert!(s.items.is_empty());
    let listed: Vec<(&str, Vec<&str>)> = s
        .entries
        .iter()
        .map(|(_, id, fields)| (id.as_str(), fields.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        listed,
        [
            ("1700000000000-0", vec!["cpu", "1"]),
            ("1700000000000-1", vec!["cpu", "2", "host", "a"]),
            (newest[0].0.as_str(), vec!["cpu", "3"]),
        ]
    );
    assert_eq!(newest[0].1, ["cpu", "3"]);
    for ((offset, ..), (before, after)) in s.entries.iter().zip(&spans) {
        assert!(
            before < offset && offset <= after,
            "{offset} not in ({before}, {after}]"
        );
    }
}

#[tokio::test]
async fn a_key_the_state_made_exact_after_since_is_covered_from_there() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    let mut conn = redis_conn(port).await;
    write(&mut conn, &["ZADD", "perf:src", "2", "a"]).await;
    wait_healthy(&ws_url).await;
    let (mut socket, since) = session(&ws_url).await;
    write(&mut conn, &["ZADD", "perf:u", "1", "old"]).await;
    // The stream does not say what a ZUNIONSTORE stored: the state reads the key from Redis (once a second).
    let (_, stored) = write(&mut conn, &["ZUNIONSTORE", "perf:u", "1", "perf:src"]).await;
    let refreshed = metric(&ws_url, "replicast_state_refreshed_keys_total").await;
    let mut waited = 0;
    while metric(&ws_url, "replicast_state_refreshed_keys_total").await <= refreshed {
        // The refresh runs once a second: 30 s without one is a relay that never reads the key.
        assert!(
            waited < 1500,
            "the state never read perf:u again after the ZUNIONSTORE (replicast_state_refreshed_keys_total \
             stayed at {refreshed} for 30 s)"
        );
        waited += 1;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (before, after) = write(&mut conn, &["ZADD", "perf:u", "3", "x"]).await;
    state_reaches(&ws_url, after).await;
    let (_, keys) = topup_since(&mut socket, &["perf:u"], since).await;
    let u = &keys[0];
    assert!(
        stored <= u.covered_from && u.covered_from <= before,
        "covered from {}, the ZUNIONSTORE ended at {stored}, the ZADD after it started at {before}",
        u.covered_from
    );
    assert_eq!(u.items.len(), 1, "only what was written after the read");
    assert_eq!((u.items[0].1, u.items[0].2.as_str()), (3.0, "x"));
}

#[tokio::test]
async fn the_rings_eviction_moves_covered_from() {
    let (_redis, port) = start_redis();
    // Each entry counts 64 bytes, and its key's and member's: two of these fit.
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "perf:*", "--state-history-bytes", "150"],
    );
    let mut conn = redis_conn(port).await;
    wait_healthy(&ws_url).await;
    let (mut socket, since) = session(&ws_url).await;
    let mut spans = Vec::new();
    for i in 1..=5 {
        spans.push(write(&mut conn, &["ZADD", "perf:e", &i.to_string(), "m"]).await);
    }
    state_reaches(&ws_url, spans[4].1).await;
    let (_, keys) = topup_since(&mut socket, &["perf:e"], since).await;
    let e = &keys[0];
    assert!(
        spans[2].0 < e.covered_from && e.covered_from <= spans[2].1,
        "covered from {}: the third ZADD, the newest evicted, ended in ({}, {}]",
        e.covered_from,
        spans[2].0,
        spans[2].1
    );
    let scores: Vec<f64> = e.items.iter().map(|(_, s, _)| *s).collect();
    assert_eq!(scores, [4.0, 5.0]);
    assert_eq!(
        metric(&ws_url, "replicast_state_history_bytes").await,
        2 * (64 + 6 + 1),
        "two entries of perf:e and m"
    );
}

#[tokio::test]
async fn a_stateless_relay_covers_nothing() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "perf:*", "--stateless"],
    );
    let mut conn = redis_conn(port).await;
    wait_healthy(&ws_url).await;
    let (mut socket, since) = session(&ws_url).await;
    write(&mut conn, &["ZINCRBY", "perf:k", "5", "m"]).await;
    write(&mut conn, &["ZINCRBY", "perf:k", "7", "m"]).await;
    let (at, keys) = topup_since(&mut socket, &["perf:k", "perf:none"], since).await;
    assert_eq!(keys.len(), 2, "every key of the request");
    for key in &keys {
        assert_eq!(key.covered_from, at);
        assert!(key.items.is_empty());
    }
}
