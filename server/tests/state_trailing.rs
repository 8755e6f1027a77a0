//! The relay's state on a thread of its own, trailing the backlog (issue 22.1), with redis-server and the relay
//! binary: while the state is held behind the stream, the link acknowledges the end of the stream to Redis, and the
//! state then catches up to the same offset; a session that joins meanwhile, gets ahead of the state and asks for a
//! top-up is answered from the state once it got there (not from Redis, and not behind what the session read), and
//! it and a session re-subscribing after it hold windows equal to Redis's, while the link's queue to the state stays
//! within `--state-queue-bytes` and one read. Offsets and bytes are compared, never times.
//!
//! The state is held by the relay's debug-build hook (`REPLICAST_DEBUG_HOLD_STATE`, `state/feed.rs`): while a file
//! exists its thread applies nothing, so "the state behind the link" does not depend on relative speeds.

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

/// A file whose existence holds the relay's state (`REPLICAST_DEBUG_HOLD_STATE`), in a scratch folder of its own,
/// removed when dropped.
struct Hold(std::path::PathBuf);

impl Hold {
    fn new() -> Hold {
        Hold(scratch_dir("state-hold").join("hold"))
    }

    /// The state's thread applies no further event.
    fn set(&self) {
        std::fs::write(&self.0, b"").unwrap();
    }

    /// It goes on.
    fn release(&self) {
        std::fs::remove_file(&self.0).unwrap();
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The relay following Redis at `port`, with `flags`, its state held while `hold`'s file exists.
fn start_relay_holding(port: u16, hold: &Hold, flags: &[&str]) -> (Proc, String) {
    let (proc, line) = start_until(
        std::process::Command::new(env!("CARGO_BIN_EXE_replicast"))
            .args(["serve", "--listen", "127.0.0.1:0", "--redis-url"])
            .arg(format!("redis://127.0.0.1:{port}"))
            .args(flags)
            .env("REPLICAST_DEBUG_HOLD_STATE", &hold.0)
            .env(
                "RUST_LOG",
                std::env::var("RELAY_LOG").unwrap_or_else(|_| "warn".into()),
            ),
        "Replicast is live at ",
    );
    let http = line.rsplit(' ').next().unwrap().trim_end_matches('/');
    (proc, http.replace("http://", "ws://") + "/ws")
}

/// Waits (within a minute) until the metric `name` is at least `value`, and returns it.
async fn metric_reaches(ws_url: &str, name: &str, value: u64) -> u64 {
    for _ in 0..3000 {
        let now = metric(ws_url, name).await;
        if now >= value {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{name} never reached {value}");
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
    let hold = Hold::new();
    let (_relay, ws_url) = start_relay_holding(port, &hold, &["--allow", "perf:*"]);
    wait_healthy(&ws_url).await;
    burst(&mut conn, 0, 100).await;
    let start = master_repl_offset(&mut conn).await;
    state_reaches(&ws_url, start).await;
    assert_eq!(metric(&ws_url, "replicast_state_ready").await, 1);

    // The state is held; a burst well within its queue follows.
    hold.set();
    burst(&mut conn, 100, 20_000).await;
    // `WAIT` has Redis ask its replica where it is (`REPLCONF GETACK`, after the burst in the stream) and returns
    // once the link acknowledged the end (within a minute, not to hang on a link that waits for the state) ...
    let replicas: u64 = redis::cmd("WAIT")
        .arg(1)
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(replicas, 1);
    let end = master_repl_offset(&mut conn).await;
    assert!(
        acknowledged(&mut conn).await >= end - 64,
        "the ACK is of the GETACK's offset"
    );
    // ... while the state is still before the burst, which waits in its queue.
    let state = metric(&ws_url, "replicast_state_offset").await;
    assert!(
        state < end,
        "the state was at {state} when Redis had the link's ACK of {end}: it did not trail"
    );
    assert!(metric(&ws_url, "replicast_state_behind_bytes").await > 0);
    assert!(metric(&ws_url, "replicast_state_queue_bytes").await > 0);
    // Released, it catches up to the same offset, and its queue empties.
    hold.release();
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
    let hold = Hold::new();
    let (_relay, ws_url) = start_relay_holding(
        port,
        &hold,
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
    // A session that reads the stream without applying it.
    let mut reader = connect(&ws_url, &subscribe_message(&["perf:*"], 50)).await;
    let (_, mut cursor, _) = join(&mut reader).await;

    // The state is held while a few writes go by: the session reads them, and is ahead of the state.
    hold.set();
    burst(&mut conn, 1_000, 200).await;
    let end = master_repl_offset(&mut conn).await;
    while cursor < end {
        if let Some(at) = reached(&next_binary(&mut reader).await) {
            cursor = at;
        }
    }
    let state = metric(&ws_url, "replicast_state_offset").await;
    assert!(
        state < cursor,
        "the state at {state}, the session at {cursor}"
    );
    // A page joining now has its snapshot from the state (inside the ring), and streams on from there.
    let (from_state, from_redis) = (
        metric(&ws_url, "replicast_state_snapshots_total").await,
        metric(&ws_url, "replicast_snapshots_total").await,
    );
    let mut page = Page::open(&ws_url, "perf:*", 0, 50).await;
    metric_reaches(&ws_url, "replicast_state_snapshots_total", from_state + 1).await;
    assert_eq!(
        metric(&ws_url, "replicast_snapshots_total").await,
        from_redis,
        "the join read Redis"
    );
    // A top-up for the session past the state waits for the state to reach the session's cursor ...
    for request in Topup::requests([b"perf:host3".as_slice()]) {
        reader
            .send(tungstenite::Message::text(request))
            .await
            .unwrap();
    }
    metric_reaches(&ws_url, "replicast_state_waits", 1).await;
    assert_eq!(metric(&ws_url, "replicast_state_offset").await, state);
    // ... and, the state released, is answered from it there or after: not from Redis, never behind what the
    // session read.
    hold.release();
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
        from_state + 2,
        "the top-up was not answered from the state"
    );
    assert_eq!(
        metric(&ws_url, "replicast_snapshots_total").await,
        from_redis,
        "the top-up read Redis"
    );
    assert_eq!(metric(&ws_url, "replicast_state_waits").await, 0);

    // Held again under a burst many times its queue: the link fills the queue past its bound, by at most one read
    // (a read's bytes and their index), and waits for the state, however far it could run ahead.
    hold.set();
    burst(&mut conn, 1_200, 100_000).await;
    let end = master_repl_offset(&mut conn).await;
    let queued = metric_reaches(&ws_url, "replicast_state_queue_bytes", QUEUE_BYTES + 1).await;
    assert!(
        queued <= QUEUE_BYTES + (1 << 20),
        "the state's queue held {queued} bytes, bound {QUEUE_BYTES}"
    );
    assert!(
        acknowledged(&mut conn).await < end,
        "the link acknowledged the end past a full queue"
    );
    let queued = metric(&ws_url, "replicast_state_queue_bytes").await;
    assert!(
        queued <= QUEUE_BYTES + (1 << 20),
        "the state's queue held {queued} bytes, bound {QUEUE_BYTES}: the link read on past it"
    );
    hold.release();
    state_reaches(&ws_url, end).await;
    let mut again = Page::open(&ws_url, "perf:*", 0, 50).await;
    let mut conn = redis_db(port, 0).await;
    page.settle(&mut conn).await;
    again.settle(&mut conn).await;
    equals_redis(&page, port).await;
    equals_redis(&again, port).await;
    assert_eq!(page.assembler.keys().count(), HOSTS);
}
