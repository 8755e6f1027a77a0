//! Following the primary through Redis Sentinel: a primary, its replica and one sentinel (quorum 1), the relay
//! started with `--sentinel`; the primary is killed, Sentinel promotes the replica, and the relay re-attaches to it
//! (a partial resync, as the promoted replica keeps the old replication ID as its second one) while a browser
//! session keeps its window equal to Redis's.

mod support;

use std::time::{Duration, Instant};

use replicast_assembler::{StreamAssembler, WatchConfig};
use replicast_protocol::wire::{self, Message};
use support::*;

const NAME: &str = "relaymaster";
const WINDOW: usize = 100;

async fn zadds(conn: &mut redis::aio::MultiplexedConnection, from: u64, to: u64) {
    for i in from..to {
        let _: i64 = redis::cmd("ZADD")
            .arg("perf:z")
            .arg(i)
            .arg(format!("m{i}"))
            .query_async(conn)
            .await
            .unwrap();
    }
}

/// The primary's port according to the sentinel.
async fn primary_port(sentinel: &mut redis::aio::MultiplexedConnection) -> u16 {
    let (_, port): (String, u16) = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(NAME)
        .query_async(sentinel)
        .await
        .unwrap();
    port
}

/// The window of `perf:z`, oldest first, as ZRANGE gives it.
fn window(assembler: &StreamAssembler) -> Vec<(String, f64)> {
    let mut got = zset_newest_first(assembler, "perf:z");
    got.reverse();
    got
}

async fn metric(ws_url: &str, name: &str) -> u64 {
    let (_, body) = http_get(ws_url, "/metrics").await;
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            key.ends_with(name).then(|| value.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
}

/// Hellos a session received: those that join (a snapshot follows), by epoch, and those that rename a
/// continuing stream, as (epoch, previous).
#[derive(Default)]
struct Hellos {
    joins: Vec<String>,
    renames: Vec<(String, String)>,
}

impl Hellos {
    fn note(&mut self, message: &[u8]) {
        if let Ok(Message::Hello {
            epoch, previous, ..
        }) = wire::decode(message)
        {
            if previous.is_empty() {
                self.joins.push(epoch.to_string());
            } else {
                self.renames.push((epoch.to_string(), previous.to_string()));
            }
        }
    }
}

/// How many partial resyncs the (new) primary served: the relay's continuation counts here.
async fn partial_ok_now(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    info_field(conn, "stats", "sync_partial_ok")
        .await
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_relay_follows_a_failover_and_the_browser_window_converges() {
    let (primary, primary_port_0) = start_redis();
    let (_replica, replica_port) =
        start_redis_with(&["--replicaof", "127.0.0.1", &primary_port_0.to_string()]);
    let mut replica = redis_conn(replica_port).await;
    while info_field(&mut replica, "replication", "master_link_status").await != "up" {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_sentinel, sentinel_port) = start_sentinel(NAME, primary_port_0);
    let mut sentinel = redis_conn(sentinel_port).await;
    // Sentinel must know the replica before the primary dies, or there is nothing to promote.
    loop {
        let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
            .arg("replicas")
            .arg(NAME)
            .query_async(&mut sentinel)
            .await
            .unwrap();
        if format!("{replicas:?}").contains(&replica_port.to_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut writer = redis_conn(primary_port_0).await;
    zadds(&mut writer, 0, 20).await;
    let (_relay, ws_url) = start_relay_args(&[
        "--sentinel",
        &format!("127.0.0.1:{sentinel_port}"),
        "--master-name",
        NAME,
        "--allow",
        "perf:*",
    ]);
    wait_healthy(&ws_url).await;
    let mut socket = connect(&ws_url, &subscribe_message(&["perf:*"], WINDOW)).await;
    let mut assembler = StreamAssembler::new(WatchConfig {
        patterns: vec![b"perf:*".to_vec()],
        db: 0,
        window: WINDOW,
    });
    let mut hellos = Hellos::default();
    let apply = |assembler: &mut StreamAssembler, message: Vec<u8>, hellos: &mut Hellos| {
        hellos.note(&message);
        assembler.push_message(&message).unwrap();
    };
    apply(&mut assembler, next_binary(&mut socket).await, &mut hellos);
    apply(&mut assembler, next_binary(&mut socket).await, &mut hellos);
    zadds(&mut writer, 20, 40).await;
    let end = master_repl_offset(&mut writer).await;
    while assembler.offset() < end {
        apply(&mut assembler, next_binary(&mut socket).await, &mut hellos);
    }
    assert_eq!(window(&assembler).len(), 40);
    // The replica applied all of it too, so the relay can continue from it.
    while master_repl_offset(&mut replica).await < end {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let killed = Instant::now();
    drop(primary); // SIGKILL
    while primary_port(&mut sentinel).await != replica_port {
        assert!(
            killed.elapsed() < Duration::from_secs(25),
            "no failover within 25 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failover = killed.elapsed();

    // Sentinel closed the replica's client connections as it promoted it: a new one.
    drop(replica);
    let mut writer = redis_conn(replica_port).await;
    zadds(&mut writer, 40, 70).await;
    let end = master_repl_offset(&mut writer).await;
    let want: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg("perf:z")
        .arg(-(WINDOW as i64))
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut writer)
        .await
        .unwrap();
    assert_eq!(want.len(), 70);
    let written = killed.elapsed();
    while assembler.offset() < end || window(&assembler) != want {
        assert!(
            killed.elapsed() < Duration::from_secs(35),
            "the window never converged: {:?} at {} of {end}",
            window(&assembler).len(),
            assembler.offset()
        );
        apply(&mut assembler, next_binary(&mut socket).await, &mut hellos);
    }
    let converged = killed.elapsed();
    if partial_ok_now(&mut writer).await >= 1 {
        // The rename's hello goes out with the first batch the session forwards after the failover: before the
        // new primary's writes or right after them.
        while hellos.renames.is_empty() {
            apply(&mut assembler, next_binary(&mut socket).await, &mut hellos);
        }
    }

    let partial_ok = partial_ok_now(&mut writer).await;
    let (partial, full) = (
        metric(&ws_url, "link_partial_syncs_total").await,
        metric(&ws_url, "link_full_syncs_total").await,
    );
    eprintln!(
        "failover took {failover:?}; writes to the new primary done {written:?} and the window converged \
         {converged:?} after the kill; \
         new primary sync_partial_ok={partial_ok}; relay partial={partial} full={full}; joins={:?}; \
         renames={:?}",
        hellos.joins, hellos.renames
    );
    if partial_ok >= 1 {
        // Continued: the same session, no second join (no second snapshot); one hello renames the stream to the
        // new primary's replication ID, continuing the first.
        assert_eq!((partial, full, hellos.joins.len()), (1, 1, 1));
        assert_eq!(hellos.renames.len(), 1);
        assert_eq!(
            hellos.renames[0].1, hellos.joins[0],
            "the rename continues the joined stream"
        );
        assert_ne!(hellos.renames[0].0, hellos.joins[0]);
    } else {
        // A new epoch: the session rejoined with a snapshot, without reconnecting.
        assert_eq!(full, 2);
        assert_eq!(hellos.joins.len(), 2);
        assert!(hellos.renames.is_empty(), "{:?}", hellos.renames);
    }

    // Issue 21: a page that joins after the failover is answered from the relay's own state, which followed the
    // failover (or was rebuilt by its full sync), with no snapshot read from Redis, and holds what Redis holds.
    let (from_state, from_redis) = (
        metric(&ws_url, "replicast_state_snapshots_total").await,
        metric(&ws_url, "replicast_snapshots_total").await,
    );
    link_reaches(&ws_url, end).await;
    let mut late = connect(&ws_url, &subscribe_message(&["perf:*"], WINDOW)).await;
    let mut late_assembler = StreamAssembler::new(WatchConfig {
        patterns: vec![b"perf:*".to_vec()],
        db: 0,
        window: WINDOW,
    });
    for _ in 0..2 {
        late_assembler
            .push_message(&next_binary(&mut late).await)
            .unwrap();
    }
    assert_eq!(window(&late_assembler), want);
    assert_eq!(
        (
            metric(&ws_url, "replicast_state_snapshots_total").await,
            metric(&ws_url, "replicast_snapshots_total").await,
        ),
        (from_state + 1, from_redis),
        "the join after the failover was not answered from the relay's state"
    );
}

#[tokio::test]
async fn unreachable_sentinels_are_retried() {
    let dead = free_port();
    let (_relay, ws_url) = start_relay_args(&[
        "--sentinel",
        &format!("127.0.0.1:{dead}"),
        "--master-name",
        NAME,
    ]);
    // The relay is up (serving /metrics) and counts its failed attempts, with a backoff between them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let errors = metric(&ws_url, "link_errors_total").await;
    assert!((2..=12).contains(&errors), "{errors} attempts in 1.5 s");
    assert_eq!(metric(&ws_url, "link_up").await, 0);
}
