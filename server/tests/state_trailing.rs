//! The relay's state on a thread of its own, trailing the backlog (issue 22.1), with redis-server and the relay
//! binary: under a burst of the collectors' writes the link acknowledges the end of the stream to Redis while the
//! state is still behind it, and the state then catches up to the same offset; a session that joins during the
//! burst, gets ahead of the state and asks for a top-up is answered from the state once it got there (not from
//! Redis, and not behind what the session read), and it and a session re-subscribing after it hold windows equal
//! to Redis's, while the link's queue to the state stays within `--state-queue-bytes` and one read. Offsets and
//! bytes are compared, never times.
//!
//! A burst is what Redis wrote while the relay was stopped (`SIGSTOP`), which the link then finds waiting in its
//! socket and Redis's replica buffer, and reads as fast as it can: a client writing to Redis does not outrun the
//! state.

mod support;

use futures_util::SinkExt;
use redis::aio::MultiplexedConnection;
use replicast_protocol::client_message::Topup;
use replicast_protocol::wire::{self, Message};
use support::exact::{redis_db, Page};
use support::*;
use tokio_tungstenite::tungstenite;

/// Hosts the burst writes to, as the collectors do.
const HOSTS: usize = 16;
/// `--state-queue-bytes` where the state must trail by little.
const QUEUE_BYTES: u64 = 2_000_000;

/// `commands` `ZADD perf:hostN <ms> <~130-byte JSON>` over [`HOSTS`] hosts, pipelined, from `first` on.
async fn burst(conn: &mut MultiplexedConnection, first: usize, commands: usize) {
    for chunk in (first..first + commands).collect::<Vec<_>>().chunks(5_000) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            let json = format!(
                r#"{{"t":{i},"cpu":{{"user":{},"system":{},"idle":{}}},"mem":{{"used":{},"free":{}}},"net":{{"rx":{},"tx":{}}}}}"#,
                i % 97,
                i % 13,
                100 - i % 97,
                i * 7 % 65_536,
                i * 11 % 65_536,
                i * 13,
                i * 17
            );
            pipe.cmd("ZADD")
                .arg(format!("perf:host{}", i % HOSTS))
                .arg(1_700_000_000_000u64 + i as u64)
                .arg(json)
                .ignore();
        }
        let () = pipe.query_async(conn).await.unwrap();
    }
}

/// Stops (`STOP`) or resumes (`CONT`) the relay process.
fn signal(relay: &Proc, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(relay.0.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal}");
}

/// `commands` of [`burst`] written while the relay is stopped: the link finds them all at once when it resumes.
async fn burst_while_stopped(
    relay: &Proc,
    conn: &mut MultiplexedConnection,
    first: usize,
    commands: usize,
) {
    signal(relay, "STOP");
    burst(conn, first, commands).await;
    signal(relay, "CONT");
}

/// The offset Redis last had acknowledged by its one replica, the relay (`INFO replication`'s `slave0`).
async fn acknowledged(conn: &mut MultiplexedConnection) -> u64 {
    let replica = info_field(conn, "replication", "slave0").await;
    replica
        .split(',')
        .find_map(|field| field.strip_prefix("offset="))
        .and_then(|offset| offset.parse().ok())
        .unwrap_or_else(|| panic!("no offset in {replica:?}"))
}

/// Checks that `page`'s windows equal Redis's.
async fn equals_redis(page: &Page, port: u16) {
    let differences = page.differences(&mut redis_db(port, 0).await).await;
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_burst_the_link_acknowledges_ahead_of_the_state_which_catches_up() {
    let (_redis, port) = start_redis();
    let mut conn = redis_conn(port).await;
    let (relay, ws_url) =
        start_relay_with(&format!("redis://127.0.0.1:{port}"), &["--allow", "perf:*"]);
    wait_healthy(&ws_url).await;
    burst(&mut conn, 0, 100).await;
    let start = master_repl_offset(&mut conn).await;
    state_reaches(&ws_url, start).await;
    assert_eq!(metric(&ws_url, "replicast_state_ready").await, 1);

    burst_while_stopped(&relay, &mut conn, 100, 200_000).await;
    // `WAIT` has Redis ask its replica where it is (`REPLCONF GETACK`, after the burst in the stream) and returns
    // once the link acknowledged the end ...
    let replicas: u64 = redis::cmd("WAIT")
        .arg(1)
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(replicas, 1);
    let end = master_repl_offset(&mut conn).await;
    assert!(
        acknowledged(&mut conn).await >= end - 64,
        "the ACK is of the GETACK's offset"
    );
    // ... while the state is still applying what came before it.
    let state = metric(&ws_url, "replicast_state_offset").await;
    assert!(
        state < end,
        "the state was at {state} when Redis had the link's ACK of {end}: it did not trail"
    );
    assert!(metric(&ws_url, "replicast_state_behind_bytes").await > 0);
    // It catches up to the same offset, and its queue empties.
    state_reaches(&ws_url, end).await;
    assert_eq!(metric(&ws_url, "replicast_state_offset").await, end);
    assert_eq!(metric(&ws_url, "replicast_state_behind_bytes").await, 0);
    assert_eq!(metric(&ws_url, "replicast_state_queue_bytes").await, 0);
    assert_eq!(metric(&ws_url, "replicast_state_ready").await, 1);
    // Its windows are Redis's: a join now comes from it and equals Redis.
    let mut page = Page::open(&ws_url, "perf:*", 0, 100).await;
    page.settle(&mut redis_db(port, 0).await).await;
    equals_redis(&page, port).await;
    assert_eq!(metric(&ws_url, "replicast_snapshots_total").await, 0);
}

/// Where the session's stream reached after `message`, if it says (a commands message's last segment).
fn reached(message: &[u8]) -> Option<u64> {
    match wire::decode(message).ok()? {
        Message::Commands(segments) => segments
            .flatten()
            .map(|segment| segment.start + segment.bytes.len() as u64)
            .last(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ahead_of_the_trailing_state_is_topped_up_from_it_and_rejoins_equal_to_redis() {
    let (_redis, port) = start_redis();
    let mut conn = redis_conn(port).await;
    let (relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &[
            "--allow",
            "perf:*",
            "--state-depth",
            "200",
            "--state-queue-bytes",
            &QUEUE_BYTES.to_string(),
        ],
    );
    wait_healthy(&ws_url).await;
    burst(&mut conn, 0, 1_000).await;
    state_reaches(&ws_url, master_repl_offset(&mut conn).await).await;
    // A session that reads the stream without applying it: it gets ahead of the state.
    let mut reader = connect(&ws_url, &subscribe_message(&["perf:*"], 50)).await;
    let (_, mut cursor, _) = join(&mut reader).await;

    // The link takes the burst while that session reads on, a page joins, and a second page subscribes after. The
    // state's queue is small: the link waits for it, and the state trails by at most that.
    burst_while_stopped(&relay, &mut conn, 1_000, 100_000).await;
    let end = master_repl_offset(&mut conn).await;
    // The queue to the state stays within its bound and one read of the link (a read's bytes and their index),
    // however far the link could run ahead: the link waits for the state.
    let sampler = tokio::spawn({
        let ws_url = ws_url.clone();
        async move {
            let mut most = 0;
            while metric(&ws_url, "replicast_state_offset").await < end {
                most = most.max(metric(&ws_url, "replicast_state_queue_bytes").await);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            most
        }
    });
    let mut page = Page::open(&ws_url, "perf:*", 0, 50).await;
    loop {
        if let Some(at) = reached(&next_binary(&mut reader).await) {
            cursor = at;
        }
        let state = metric(&ws_url, "replicast_state_offset").await;
        if cursor > state {
            break;
        }
        assert!(
            state < end,
            "the session never got ahead of the state during the burst"
        );
    }
    let (from_state, from_redis) = (
        metric(&ws_url, "replicast_state_snapshots_total").await,
        metric(&ws_url, "replicast_snapshots_total").await,
    );
    // A top-up for a session past the state waits for the state to reach the session's cursor, and is answered
    // from it there or after: not from Redis, never behind what the session read.
    for request in Topup::requests([b"perf:host3".as_slice()]) {
        reader
            .send(tungstenite::Message::text(request))
            .await
            .unwrap();
    }
    let topup = loop {
        let message = next_binary(&mut reader).await;
        if let Ok(Message::Snapshot { offset, .. }) = wire::decode(&message) {
            break offset;
        }
        cursor = reached(&message).unwrap_or(cursor);
    };
    assert!(
        topup >= cursor,
        "a top-up placed at {topup}, behind the session's {cursor}"
    );
    assert_eq!(
        metric(&ws_url, "replicast_state_snapshots_total").await,
        from_state + 1,
        "the top-up was not answered from the state"
    );
    assert_eq!(
        metric(&ws_url, "replicast_snapshots_total").await,
        from_redis,
        "the top-up read Redis"
    );
    let most = sampler.await.unwrap();
    assert!(
        most > 0 && most <= QUEUE_BYTES + (1 << 20),
        "the state's queue held at most {most} bytes, bound {QUEUE_BYTES}"
    );
    let mut again = Page::open(&ws_url, "perf:*", 0, 50).await;
    let mut conn = redis_db(port, 0).await;
    page.settle(&mut conn).await;
    again.settle(&mut conn).await;
    equals_redis(&page, port).await;
    equals_redis(&again, port).await;
    assert_eq!(page.assembler.keys().count(), HOSTS);
}
