//! The relay's own state (issue 21) with redis-server and the relay binary: a join's snapshot served from the state
//! built from the full sync's RDB and a randomized workload over every windowed type equals Redis, and costs Redis
//! no command (`INFO commandstats`); a key the state lost track of is read again and served from it; a key past
//! `--state-bytes` follows a join's snapshot of the keys held as a top-up read from Redis; a primary killed
//! mid-RDB leaves
//! no half-built state, and the next sync of the restarted, empty primary rebuilds it; `--stateless` asks Redis for
//! an RDB without keys and reads every join from Redis.

mod support;

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use replicast_protocol::wire;
use support::exact::{redis_db, Page};
use support::workload::{dataset, workload};
use support::*;

/// Commands a snapshot read from Redis runs; a join from the state runs none of them.
const SNAPSHOT_COMMANDS: &[&str] = &[
    "multi",
    "exec",
    "scan",
    "type",
    "zrange",
    "lrange",
    "hgetall",
    "xrevrange",
    "get",
    "eval",
];

/// How many times Redis ran each of [`SNAPSHOT_COMMANDS`].
async fn snapshot_commands(conn: &mut MultiplexedConnection) -> Vec<(String, u64)> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    SNAPSHOT_COMMANDS
        .iter()
        .map(|name| {
            let calls = info
                .lines()
                .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
                .and_then(|rest| rest.split(',').next()?.parse().ok())
                .unwrap_or(0);
            (name.to_string(), calls)
        })
        .collect()
}

/// Opens a page on `pattern` with windows of `window` and lets it settle (the stream applied up to Redis's offset,
/// its top-ups answered).
async fn settled_page(ws_url: &str, port: u16, pattern: &str, window: usize) -> Page {
    let mut conn = redis_db(port, 0).await;
    let mut page = Page::open(ws_url, pattern, 0, window).await;
    page.settle(&mut conn).await;
    page
}

/// Checks that `page`'s windows equal Redis's.
async fn equals_redis(page: &Page, port: u16) {
    let differences = page.differences(&mut redis_db(port, 0).await).await;
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// Opens a page on `pattern` with windows of `window`, lets it settle, and checks its windows equal Redis's.
async fn page_equals_redis(ws_url: &str, port: u16, pattern: &str, window: usize) -> Page {
    let page = settled_page(ws_url, port, pattern, window).await;
    equals_redis(&page, port).await;
    page
}

/// Waits until the relay's state is ready: it loads the full sync on a thread of its own, after the link is healthy.
async fn state_ready(ws_url: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(ws_url, "replicast_state_ready").await != 1 {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_from_the_state_equals_redis_and_costs_redis_no_command() {
    let (_redis, port) = start_redis();
    let mut conn = redis_conn(port).await;
    dataset(&mut conn).await;
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "w:*", "--state-depth", "100"],
    );
    wait_healthy(&ws_url).await;
    workload(&mut conn, 21, 3000).await;
    link_reaches(&ws_url, master_repl_offset(&mut conn).await).await;
    assert_eq!(metric(&ws_url, "replicast_state_ready").await, 1);

    for window in [1, 20, 100] {
        let before = snapshot_commands(&mut conn).await;
        let page = settled_page(&ws_url, port, "w:*", window).await;
        assert_eq!(
            snapshot_commands(&mut conn).await,
            before,
            "window {window}: Redis ran snapshot commands for a join the state could answer"
        );
        equals_redis(&page, port).await;
        assert!(page.assembler.keys().count() >= 15, "window {window}");
    }
    assert_eq!(metric(&ws_url, "replicast_snapshots_total").await, 0);
    assert!(metric(&ws_url, "replicast_state_snapshots_total").await >= 3);

    // Deeper than the state: read from Redis, equal all the same.
    page_equals_redis(&ws_url, port, "w:*", 101).await;
    assert!(metric(&ws_url, "replicast_snapshots_total").await >= 1);
}

/// `ZUNIONSTORE` writes its destination in a way the stream does not tell: the state loses track of the key, reads
/// it from Redis once a second, places the read at its offset, and joins come from the state again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_state_lost_track_of_is_read_again_and_joins_come_from_the_state() {
    let (_redis, port) = start_redis();
    let mut conn = redis_conn(port).await;
    dataset(&mut conn).await;
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "w:*", "--state-depth", "100"],
    );
    wait_healthy(&ws_url).await;
    workload(&mut conn, 5, 300).await;
    let _: u64 = redis::cmd("ZUNIONSTORE")
        .arg("w:z0")
        .arg(2)
        .arg("w:z1")
        .arg("w:z2")
        .query_async(&mut conn)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&ws_url, "replicast_state_refreshed_keys_total").await == 0 {
        assert!(
            Instant::now() < deadline,
            "the state never read the key again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    link_reaches(&ws_url, master_repl_offset(&mut conn).await).await;
    page_equals_redis(&ws_url, port, "w:*", 50).await;
    assert_eq!(metric(&ws_url, "replicast_state_snapshots_total").await, 1);
    assert_eq!(metric(&ws_url, "replicast_snapshots_total").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_past_the_state_budget_follows_the_keys_held_as_a_top_up_from_redis() {
    let (_redis, port) = start_redis();
    let mut conn = redis_conn(port).await;
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.cmd("ZADD")
            .arg("w:big")
            .arg(i)
            .arg(format!("{i:04}{}", "x".repeat(1000)))
            .ignore();
    }
    pipe.cmd("ZADD").arg("w:small").arg(1).arg("a").ignore();
    let () = pipe.query_async(&mut conn).await.unwrap();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "w:*", "--state-bytes", "50000"],
    );
    wait_healthy(&ws_url).await;
    // The link is healthy before the state has loaded the full sync (on its own thread): its counts come then.
    state_ready(&ws_url, "the state never loaded the full sync").await;
    assert_eq!(metric(&ws_url, "replicast_state_keys_not_held").await, 1);
    assert_eq!(metric(&ws_url, "replicast_state_keys").await, 1);

    page_equals_redis(&ws_url, port, "w:small", 10).await;
    assert_eq!(metric(&ws_url, "replicast_state_snapshots_total").await, 1);
    assert_eq!(metric(&ws_url, "replicast_snapshots_total").await, 0);

    // The big key is not held: a join that watches both has the small one from the state at once, and the big one
    // follows as a top-up read from Redis, kept exact as it changes.
    zadd(&mut conn, "w:big", 500, "newest").await;
    let mut socket = connect(&ws_url, &subscribe_message(&["w:*"], 50)).await;
    let first = loop {
        if let Ok(wire::Message::Snapshot { commands, .. }) =
            wire::decode(&next_binary(&mut socket).await)
        {
            break parse_all(commands);
        }
    };
    assert_eq!(
        first,
        [
            vec![b"DEL".to_vec(), b"w:small".to_vec()],
            vec![
                b"ZADD".to_vec(),
                b"w:small".to_vec(),
                b"1".to_vec(),
                b"a".to_vec()
            ],
        ],
        "the join's snapshot holds what the state holds, and only that"
    );
    let then = loop {
        if let Ok(wire::Message::Snapshot { commands, .. }) =
            wire::decode(&next_binary(&mut socket).await)
        {
            break parse_all(commands);
        }
    };
    assert_eq!(then[0], [b"DEL".to_vec(), b"w:big".to_vec()]);
    assert_eq!(then.len(), 2, "the big key's part holds it alone");
    assert_eq!(metric(&ws_url, "replicast_state_snapshots_total").await, 2);
    assert_eq!(metric(&ws_url, "replicast_snapshots_total").await, 1);
    // The state applies `newest` on its own thread: a join before that has it from the stream, ahead of the big
    // key's part, which the page did not ask for and so does not wait for.
    state_reaches(&ws_url, master_repl_offset(&mut conn).await).await;
    let page = page_equals_redis(&ws_url, port, "w:*", 50).await;
    assert_eq!(page.assembler.window(b"w:big").map(|w| w.len()), Some(50));
    assert_eq!(metric(&ws_url, "replicast_state_snapshots_total").await, 3);
    assert_eq!(metric(&ws_url, "replicast_snapshots_total").await, 2);
}

/// The primary is killed while it streams its RDB to the relay: the half-built state is dropped (nothing held, not
/// ready); the primary comes back empty, is written again, and the relay's next full sync rebuilds the state, whose
/// joins equal Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_mid_rdb_leaves_no_state_and_the_next_sync_rebuilds_it() {
    let port = free_port();
    let primary = start_redis_on(port, &["--repl-diskless-sync", "yes"]);
    let mut conn = redis_conn(port).await;
    let mut fill = redis::pipe();
    for i in 0..20_000 {
        fill.cmd("SET").arg(format!("w:old{i}")).arg(i).ignore();
    }
    let () = fill.query_async(&mut conn).await.unwrap();
    // ~4 s to produce the RDB: a window to kill in.
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("rdb-key-save-delay")
        .arg(200)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (_relay, ws_url) = start_relay(port, "w:*");
    let deadline = Instant::now() + Duration::from_secs(10);
    // Keys of the RDB reached the state: the transfer is under way.
    while metric(&ws_url, "replicast_state_keys").await == 0 {
        assert!(
            Instant::now() < deadline,
            "no key of the RDB reached the state"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&ws_url, "replicast_state_ready").await, 0);
    drop(conn);
    drop(primary); // SIGKILL
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&ws_url, "replicast_state_keys").await != 0 {
        assert!(Instant::now() < deadline, "the half-built state was kept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&ws_url, "replicast_state_ready").await, 0);

    let _primary = start_redis_on(port, &[]);
    let mut conn = redis_conn(port).await;
    dataset(&mut conn).await;
    state_ready(&ws_url, "the state was never rebuilt").await;
    workload(&mut conn, 7, 500).await;
    // The page joins once the relay followed the whole workload: joined earlier, it would follow the workload's
    // removals from its windows and be topped up from the state, one more snapshot of the state's.
    link_reaches(&ws_url, master_repl_offset(&mut conn).await).await;
    let page = page_equals_redis(&ws_url, port, "w:*", 30).await;
    assert!(page.assembler.keys().all(|k| !k.starts_with(b"w:old")));
    assert_eq!(metric(&ws_url, "replicast_state_snapshots_total").await, 1);
    assert_eq!(metric(&ws_url, "replicast_snapshots_total").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_asks_for_an_rdb_without_keys_and_joins_read_redis() {
    let (_redis, port) = start_redis();
    let mut conn = redis_conn(port).await;
    let mut fill = redis::pipe();
    for i in 0..2_000 {
        fill.cmd("SET")
            .arg(format!("filler:{i}"))
            .arg("x".repeat(1000))
            .ignore();
    }
    let () = fill.query_async(&mut conn).await.unwrap();
    dataset(&mut conn).await;
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "w:*", "--stateless"],
    );
    wait_healthy(&ws_url).await;
    let rdb = metric(&ws_url, "replicast_link_rdb_bytes").await;
    assert!(
        rdb < 10_000,
        "a full sync's RDB of {rdb} bytes: the 2 MB dataset (LZF-compressed) came with it"
    );
    workload(&mut conn, 3, 500).await;
    // Joined before the relay followed the whole workload, the page would be topped up: more than one snapshot.
    link_reaches(&ws_url, master_repl_offset(&mut conn).await).await;
    page_equals_redis(&ws_url, port, "w:*", 20).await;
    assert_eq!(metric(&ws_url, "replicast_snapshots_total").await, 1);
    assert!(!http_get(&ws_url, "/metrics")
        .await
        .1
        .contains("replicast_state_ready"));
}
