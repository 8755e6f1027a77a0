//! Many relays on one primary: relays that follow different replicas of the same primary see the same replication
//! ID and offsets (PSYNC2 replicas keep their primary's), so a browser whose relay goes away resumes on another
//! relay from the same `(epoch, offset)`, with no snapshot, and its windows stay equal to Redis.

mod support;

use replicast_assembler::{StreamAssembler, WatchConfig};
use support::*;

const WINDOW: usize = 20;

#[tokio::test]
async fn a_browser_resumes_on_a_relay_that_follows_another_replica_without_a_snapshot() {
    let (_primary, port) = start_redis();
    let replica_of = ["--replicaof", "127.0.0.1", &port.to_string()].map(String::from);
    let replica_args: Vec<&str> = replica_of.iter().map(String::as_str).collect();
    let (_r1, r1) = start_redis_with(&replica_args);
    let (_r2, r2) = start_redis_with(&replica_args);
    let mut conn = redis_conn(port).await;
    for i in 0..30 {
        zadd(&mut conn, "perf:a", i, &format!("m{i}")).await;
    }
    let offset = master_repl_offset(&mut conn).await;
    replica_at(r1, offset).await;
    replica_at(r2, offset).await;
    let (relay_a, ws_a) = start_relay(r1, "perf:*");
    let (_relay_b, ws_b) = start_relay(r2, "perf:*");
    wait_healthy(&ws_a).await;
    wait_healthy(&ws_b).await;

    let subscribe = subscribe_message(&["perf:*"], WINDOW);
    let mut assembler = StreamAssembler::new(WatchConfig {
        patterns: vec![b"perf:*".to_vec()],
        db: 0,
        window: WINDOW,
    });
    let mut socket = connect(&ws_a, &subscribe).await;
    // A join: the hello, then the snapshot at its offset.
    for _ in 0..2 {
        assembler
            .push_message(&next_binary(&mut socket).await)
            .unwrap();
    }
    assert!(assembler.offset() >= offset);
    assert_eq!(
        zset_newest_first(&assembler, "perf:a"),
        newest(&mut conn, "perf:a", WINDOW).await
    );
    for i in 30..60 {
        zadd(&mut conn, "perf:a", i, &format!("m{i}")).await;
    }
    let offset = master_repl_offset(&mut conn).await;
    apply_until(&mut socket, &mut assembler, offset).await;
    let epoch = info_field(&mut conn, "replication", "master_replid").await;
    assert_eq!(
        assembler.epoch(),
        Some(epoch.as_str()),
        "a relay on a replica streams the primary's replication ID"
    );
    assert_eq!(
        zset_newest_first(&assembler, "perf:a"),
        newest(&mut conn, "perf:a", WINDOW).await
    );

    // Relay A goes away; writes go on; the browser moves to relay B with where it was.
    drop(socket);
    drop(relay_a);
    for i in 60..90 {
        zadd(&mut conn, "perf:a", i, &format!("m{i}")).await;
    }
    let left_at = assembler.offset();
    let mut socket = connect(
        &format!("{ws_b}?epoch={epoch}&offset={left_at}"),
        &subscribe,
    )
    .await;
    assert_eq!(
        hello(&mut socket).await,
        (epoch.clone(), left_at),
        "relay B holds the same stream at the same offsets: a resume, not a new join"
    );
    let offset = master_repl_offset(&mut conn).await;
    let snapshots = apply_until(&mut socket, &mut assembler, offset).await;
    assert_eq!(snapshots, 0, "resumed without a snapshot");
    assert_eq!(
        zset_newest_first(&assembler, "perf:a"),
        newest(&mut conn, "perf:a", WINDOW).await
    );
    assert_eq!(
        http_get(&ws_b, "/metrics")
            .await
            .1
            .lines()
            .find(|l| l.starts_with("replicast_session_resumes_total "))
            .map(str::to_string),
        Some("replicast_session_resumes_total 1".to_string())
    );
}
