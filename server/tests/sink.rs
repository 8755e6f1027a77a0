//! `replicast sink` against the real parts: redis-server (a primary and its replica), the relay binary, the sink
//! binary and PostgreSQL, each on free loopback ports.
//!
//! - A recorded workload (sorted sets trimmed as the collector trims them, a trimmed stream, a hash, a string, a
//!   list, a set) replayed through Redis, with faults injected at seeded random points: the sink SIGKILLed while
//!   it writes, PostgreSQL crashed and restarted, the relay SIGKILLed and restarted, and a failover (the replica
//!   the relay follows promoted, the writes moving to it). At the end the history tables hold the workload's full
//!   write history, every member and entry once (though Redis kept only the newest of each key), and the mirror
//!   tables equal Redis.
//! - A sink SIGKILLed and restarted while every kind of mirrored key is written resumes with its mirror tables
//!   equal to Redis: the keys it mirrors are read again, since the new process has none of the windows.
//! - A sink following a Redis Cluster of two shards keeps a position per shard, and resumes each after a restart;
//!   a member incremented twice on each shard before a restarted sink's top-up is answered has both its scores
//!   stored, from each shard's past writes.
//! - A key whose top-up the sink asks while its slot has no owner (in a three-shard cluster) is asked again in the
//!   same session and answered by the primary the slot is given to.
//! - A sink restarted after the relay's backlog (a tiny `--backlog-bytes`) moved past its position re-snapshots,
//!   and its history has no duplicate and no gap.
//! - The history endpoint answers exactly the stored samples when they fit, the right buckets when they do not,
//!   and refuses bad requests with their reasons; `/metrics` exports the lag; docs/SINK.md's example queries, run
//!   as the doc writes them, give what the samples say; a sink on a database without the schema says what to do.
//! - A schema an older sink made is refused without `--create-schema` and migrated with it, its history kept and
//!   read as before.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use support::postgres::Postgres;
use support::sink::{
    assert_all_mirrors, committed, postgres_and_a_relay, sink_command, start_relay_on, start_sink,
    stored_scores, Rng,
};
use support::{
    free_port, master_repl_offset, promote, redis_conn, start_redis, start_redis_with, start_until,
    wait_healthy,
};

/// Newest members each sorted set keeps, as the collector's `--keep`: Redis forgets the rest.
const KEEP: usize = 30;
/// Entries the stream keeps.
const STREAM_KEEP: usize = 20;
const PERF_KEYS: usize = 4;

/// What the workload wrote, to compare the database with.
#[derive(Default)]
struct Written {
    /// Every (score, member) ever added, by key.
    zsets: BTreeMap<String, BTreeSet<(u64, String)>>,
    /// Every entry ever added: (id, fields as JSON).
    stream: BTreeSet<(String, String)>,
    time: u64,
    /// Whether the set may be written (not while the relay is down: see the fault).
    sets: bool,
}

/// One write of the workload.
async fn write_one(conn: &mut MultiplexedConnection, rng: &mut Rng, written: &mut Written) {
    let pick = rng.below(10);
    written.time += 1 + rng.below(1000);
    let t = written.time;
    match pick {
        0..=4 => {
            let key = format!("perf:h{}", rng.below(PERF_KEYS as u64));
            let member = format!(
                r#"{{"t":{t},"cpu":{{"total":{}}},"load":[{}]}}"#,
                rng.below(100),
                rng.below(8)
            );
            let _: () = redis::pipe()
                .atomic()
                .cmd("ZADD")
                .arg(&key)
                .arg(t)
                .arg(&member)
                .ignore()
                .cmd("ZREMRANGEBYRANK")
                .arg(&key)
                .arg(0)
                .arg(-(KEEP as i64 + 1))
                .ignore()
                .query_async(conn)
                .await
                .unwrap();
            written.zsets.entry(key).or_default().insert((t, member));
        }
        5 => {
            let value = rng.below(1000).to_string();
            let id: String = redis::cmd("XADD")
                .arg("ev:e0")
                .arg("MAXLEN")
                .arg(STREAM_KEEP)
                .arg("*")
                .arg("v")
                .arg(&value)
                .arg("host")
                .arg("web-01")
                .query_async(conn)
                .await
                .unwrap();
            written.stream.insert((
                id,
                serde_json::json!({"v": value, "host": "web-01"}).to_string(),
            ));
        }
        6 => {
            let _: () = redis::cmd("HSET")
                .arg("cfg:hash")
                .arg(format!("f{}", rng.below(10)))
                .arg(format!(r#"{{"n":{}}}"#, rng.below(100)))
                .query_async(conn)
                .await
                .unwrap();
            if rng.below(4) == 0 {
                let _: () = redis::cmd("HDEL")
                    .arg("cfg:hash")
                    .arg(format!("f{}", rng.below(10)))
                    .query_async(conn)
                    .await
                    .unwrap();
            }
        }
        7 => {
            let _: () = redis::cmd("SET")
                .arg("cfg:str")
                .arg(format!("v{}", rng.below(1000)))
                .query_async(conn)
                .await
                .unwrap();
        }
        8 => {
            let _: () = redis::pipe()
                .cmd("RPUSH")
                .arg("cfg:list")
                .arg(format!("i{t}"))
                .ignore()
                .cmd("LTRIM")
                .arg("cfg:list")
                .arg(-10)
                .arg(-1)
                .ignore()
                .query_async(conn)
                .await
                .unwrap();
        }
        _ if written.sets => {
            let member = format!("m{}", rng.below(10));
            let command = if rng.below(3) == 0 { "SREM" } else { "SADD" };
            let _: () = redis::cmd(command)
                .arg("cfg:set")
                .arg(member)
                .query_async(conn)
                .await
                .unwrap();
        }
        _ => {}
    }
}

async fn writes(conn: &mut MultiplexedConnection, rng: &mut Rng, written: &mut Written, n: usize) {
    for _ in 0..n {
        write_one(conn, rng, written).await;
    }
}

/// The database's history and mirrors equal what was written and what Redis holds.
async fn assert_equal(
    pg: &tokio_postgres::Client,
    redis: &mut MultiplexedConnection,
    written: &Written,
) {
    assert_history(pg, written).await;
    assert_mirrors(pg, redis).await;
}

/// The history tables hold every member and entry written, each once.
async fn assert_history(pg: &tokio_postgres::Client, written: &Written) {
    for (key, expected) in &written.zsets {
        let rows = pg
            .query(
                "SELECT score, value::text FROM replicast.zset_history WHERE key = $1",
                &[key],
            )
            .await
            .unwrap();
        let stored: Vec<(u64, serde_json::Value)> = rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, f64>(0) as u64,
                    serde_json::from_str(r.get(1)).unwrap(),
                )
            })
            .collect();
        let want: Vec<(u64, serde_json::Value)> = expected
            .iter()
            .map(|(t, m)| (*t, serde_json::from_str(m).unwrap()))
            .collect();
        let times = |rows: &[(u64, serde_json::Value)]| {
            rows.iter().map(|(t, _)| *t).collect::<BTreeSet<u64>>()
        };
        let (have, need) = (times(&stored), times(&want));
        let missing: Vec<&u64> = need.difference(&have).take(5).collect();
        let extra: Vec<&u64> = have.difference(&need).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty() && stored.len() == want.len(),
            "{key}: {} rows for {} members written; missing {missing:?}…, not written {extra:?}…",
            stored.len(),
            want.len()
        );
        let mut sorted = stored.clone();
        sorted.sort_by_key(|a| a.0);
        assert!(
            sorted == want,
            "{key}: the history holds every member written, each once"
        );
    }
    let rows = pg
        .query(
            "SELECT id, fields::text FROM replicast.stream_history WHERE key = 'ev:e0'",
            &[],
        )
        .await
        .unwrap();
    let stored: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                serde_json::from_str::<serde_json::Value>(r.get(1))
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(stored.len(), rows.len(), "each entry once");
    assert_eq!(
        stored, written.stream,
        "the stream's history holds every entry written"
    );
}

/// The mirror tables equal what Redis holds.
async fn assert_mirrors(pg: &tokio_postgres::Client, redis: &mut MultiplexedConnection) {
    let hash: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg("cfg:hash")
        .query_async(redis)
        .await
        .unwrap();
    let rows = pg
        .query(
            "SELECT field, value FROM replicast.mirror_hash WHERE key = 'cfg:hash'",
            &[],
        )
        .await
        .unwrap();
    let mirrored: BTreeMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(mirrored, hash, "the hash's mirror");
    let value: String = redis::cmd("GET")
        .arg("cfg:str")
        .query_async(redis)
        .await
        .unwrap();
    let row = pg
        .query_one(
            "SELECT value FROM replicast.mirror_string WHERE key = 'cfg:str'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), value, "the string's mirror");
    let list: Vec<String> = redis::cmd("LRANGE")
        .arg("cfg:list")
        .arg(0)
        .arg(-1)
        .query_async(redis)
        .await
        .unwrap();
    let rows = pg
        .query(
            "SELECT item FROM replicast.mirror_list WHERE key = 'cfg:list' ORDER BY position",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.get(0)).collect::<Vec<String>>(),
        list,
        "the list's mirror"
    );
    let set: BTreeSet<String> = redis::cmd("SMEMBERS")
        .arg("cfg:set")
        .query_async(redis)
        .await
        .unwrap();
    let rows = pg
        .query(
            "SELECT member FROM replicast.mirror_set WHERE key = 'cfg:set'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.get(0)).collect::<BTreeSet<String>>(),
        set,
        "the set's mirror"
    );
    let exact: Vec<(String, bool)> = pg
        .query(
            "SELECT key, exact FROM replicast.mirror_key WHERE key <> 'cfg:set' ORDER BY key",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let keys = ["cfg:hash", "cfg:list", "cfg:str"].map(|k| (k.to_string(), true));
    assert_eq!(exact, keys, "every mirrored key is there, exact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_mirrors_survive_faults() {
    let mut rng = Rng::from_env("workload and fault points");
    let mut pg = Postgres::start();
    let (primary, primary_port) = start_redis();
    let (_replica, replica_port) =
        start_redis_with(&["--replicaof", "127.0.0.1", &primary_port.to_string()]);
    let mut writer = redis_conn(primary_port).await;
    let relay_port = free_port();
    // The relay follows the replica; the failover promotes it.
    let mut relay = start_relay_on(relay_port, replica_port, &[]);
    let mut written = Written {
        time: 1_700_000_000_000,
        sets: true,
        ..Default::default()
    };
    // Before the sink: what it must find by its first snapshot (within its window, as Redis keeps it); no set,
    // whose members before the sink's join are not known (docs/SINK.md).
    written.sets = false;
    writes(&mut writer, &mut rng, &mut written, 20).await;
    written.sets = true;
    let mut sink = start_sink(relay_port, &pg.url(), &[]);
    committed(&pg.client().await, replica_port).await;

    // The sink SIGKILLed while it writes, at a random point of a burst.
    let before = 200 + rng.below(400) as usize;
    writes(&mut writer, &mut rng, &mut written, before).await;
    drop(sink);
    writes(&mut writer, &mut rng, &mut written, 100).await;
    sink = start_sink(relay_port, &pg.url(), &[]);

    // PostgreSQL crashed and restarted under the sink.
    let n = 100 + rng.below(300) as usize;
    writes(&mut writer, &mut rng, &mut written, n).await;
    pg.crash_and_restart();
    writes(&mut writer, &mut rng, &mut written, 200).await;

    // The relay SIGKILLed and restarted on its port: it cannot resume the sink from a backlog it lost, so the sink
    // joins afresh with a snapshot, and the rows it already has are skipped. (A set has no snapshot in the relay's
    // protocol: it is not written while the relay is gone; see docs/SINK.md.)
    let n = 100 + rng.below(300) as usize;
    writes(&mut writer, &mut rng, &mut written, n).await;
    committed(&db_after(&pg).await, replica_port).await;
    drop(relay);
    written.sets = false;
    writes(&mut writer, &mut rng, &mut written, 10).await;
    relay = start_relay_on(relay_port, replica_port, &[]);
    writes(&mut writer, &mut rng, &mut written, 10).await;
    committed(&db_after(&pg).await, replica_port).await;
    written.sets = true;

    // A failover: the replica becomes the primary (a new replication ID continuing the old offsets), the writer
    // moves to it, and the old primary goes away.
    let n = 100 + rng.below(300) as usize;
    writes(&mut writer, &mut rng, &mut written, n).await;
    support::replica_at(replica_port, master_repl_offset(&mut writer).await).await;
    let mut promoted = promote(replica_port).await;
    drop(primary);
    writes(&mut promoted, &mut rng, &mut written, 300).await;

    let db = db_after(&pg).await;
    committed(&db, replica_port).await;
    assert_equal(&db, &mut promoted, &written).await;
    for key in written.zsets.keys() {
        let kept: usize = redis::cmd("ZCARD")
            .arg(key)
            .query_async(&mut promoted)
            .await
            .unwrap();
        assert!(
            kept <= KEEP,
            "{key}: Redis forgot all but the newest {kept}, the database has them all"
        );
    }
    let epochs: Vec<String> = db
        .query("SELECT epoch FROM replicast.position", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let replid = support::info_field(&mut promoted, "replication", "master_replid").await;
    assert_eq!(
        epochs,
        [replid],
        "the position follows the promoted node's epoch, the old one retired"
    );
    drop((sink, relay, db));
}

/// A client of `pg` (the one before a restart is gone with it).
async fn db_after(pg: &Postgres) -> tokio_postgres::Client {
    pg.client().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_behind_the_backlog_resnapshots_without_duplicates() {
    let pg = Postgres::start();
    let (_redis, redis_port) = start_redis();
    let relay_port = free_port();
    // 64 KiB of backlog: a few hundred samples.
    let _relay = start_relay_on(relay_port, redis_port, &["--backlog-bytes", "65536"]);
    let mut conn = redis_conn(redis_port).await;
    let mut rng = Rng(7);
    let mut written = Written {
        time: 1_700_000_000_000,
        sets: true,
        ..Default::default()
    };
    let sink = start_sink(relay_port, &pg.url(), &[]);
    let db = pg.client().await;
    // Joined before the set is written: a set's members before the sink's join are not known (docs/SINK.md).
    committed(&db, redis_port).await;
    writes(&mut conn, &mut rng, &mut written, 300).await;
    committed(&db, redis_port).await;
    drop(sink);
    // More than the backlog holds, while the sink is away; fewer per key than Redis keeps, so the snapshot has
    // them all.
    let before: u64 = db
        .query_one("SELECT max(\"offset\") FROM replicast.position", &[])
        .await
        .unwrap()
        .get::<_, i64>(0) as u64;
    for i in 0..(KEEP as u64 - 2) {
        for k in 0..PERF_KEYS {
            written.time += 1;
            let member = format!(r#"{{"t":{},"pad":"{}"}}"#, written.time, "x".repeat(600));
            let key = format!("perf:h{k}");
            support::zadd(&mut conn, &key, written.time, &member).await;
            written
                .zsets
                .entry(key)
                .or_default()
                .insert((written.time, member));
        }
        let _ = i;
    }
    let now = master_repl_offset(&mut conn).await;
    assert!(
        now - before > 65_536,
        "the backlog moved past the sink's position"
    );
    let sink = start_sink(relay_port, &pg.url(), &[]);
    committed(&db, redis_port).await;
    assert_equal(&db, &mut conn, &written).await;
    let (rows, distinct): (i64, i64) = {
        let r = db
            .query_one(
                "SELECT count(*), count(DISTINCT (key, score, value)) FROM replicast.zset_history",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(rows, distinct, "no member twice");
    drop(sink);
}

/// Sink backends of `pg` in a state, besides the test's own `but` (its locking session).
async fn backends(db: &tokio_postgres::Client, but: i32, condition: &str) -> i64 {
    db.query_one(
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
               AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND pid <> $1 AND {condition}"
        ),
        &[&but],
    )
    .await
    .unwrap()
    .get(0)
}

/// The sink writes a batch on one connection while the batch before commits on another; the database's
/// transactions still commit in stream order. The batch before is held (its mirror change waits for a row this
/// test locks) while the next one's rows are in; the sink is SIGKILLed there, between the two commits: neither
/// batch is in the database, the position is the one before them, and the sink restarted writes both, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_killed_between_two_connections_commits_writes_each_batch_once() {
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(&[]);
    let mut conn = redis_conn(redis_port).await;
    let mut rng = Rng(11);
    // Samples of today: they go straight into the day's partition.
    let mut written = Written {
        time: now_ms(),
        sets: true,
        ..Default::default()
    };
    let sink = start_sink(relay_port, &pg.url(), &["--connections", "2"]);
    let db = pg.client().await;
    committed(&db, redis_port).await;
    writes(&mut conn, &mut rng, &mut written, 100).await;
    let _: () = redis::cmd("SET")
        .arg("cfg:str")
        .arg("before")
        .query_async(&mut conn)
        .await
        .unwrap();
    committed(&db, redis_port).await;

    let mut locker = pg.client().await;
    let lock = locker.transaction().await.unwrap();
    let locker_pid: i32 = lock
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    lock.query_one(
        "SELECT value FROM replicast.mirror_string WHERE key = 'cfg:str' FOR UPDATE",
        &[],
    )
    .await
    .unwrap();
    // Batch N: samples and the string, whose mirror change waits for the lock.
    writes(&mut conn, &mut rng, &mut written, 20).await;
    let _: () = redis::cmd("SET")
        .arg("cfg:str")
        .arg("held")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut waiting = 0;
    for _ in 0..200 {
        waiting = backends(&db, locker_pid, "wait_event_type = 'Lock'").await;
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(waiting, 1, "the sink's batch waits for the locked row");
    let position: i64 = db
        .query_one("SELECT max(\"offset\") FROM replicast.position", &[])
        .await
        .unwrap()
        .get(0);
    // Batch N+1 (after the sink's --batch-ms): samples only, of a key of their own.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late = "perf:late";
    for _ in 0..50 {
        written.time += 1;
        let member = format!(r#"{{"t":{},"cpu":{{"total":1}}}}"#, written.time);
        support::zadd(&mut conn, late, written.time, &member).await;
        written
            .zsets
            .entry(late.to_string())
            .or_default()
            .insert((written.time, member));
    }
    let count_late = "SELECT count(*) FROM replicast.zset_history_raw WHERE key = 'perf:late'";
    // Its rows are in the day's partition on the other connection, which waits for its turn to commit (or, were
    // the order not kept, has committed).
    let mut in_transaction = 0;
    for _ in 0..200 {
        in_transaction = backends(
            &db,
            locker_pid,
            "state = 'idle in transaction' AND EXISTS (SELECT 1 FROM pg_locks l
               WHERE l.pid = pg_stat_activity.pid AND l.mode = 'RowExclusiveLock'
                 AND l.relation::regclass::text LIKE 'replicast.zset_history_2%')",
        )
        .await;
        let committed_late: i64 = db.query_one(count_late, &[]).await.unwrap().get(0);
        if in_transaction > 0 || committed_late > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let committed_late: i64 = db.query_one(count_late, &[]).await.unwrap().get(0);
    assert_eq!(
        committed_late, 0,
        "a batch committed before the one before it"
    );
    assert_eq!(
        in_transaction, 1,
        "the next batch is written on the other connection, waiting for its turn to commit"
    );

    drop(sink);
    lock.rollback().await.unwrap();
    for _ in 0..200 {
        if backends(&db, locker_pid, "true").await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let committed_late: i64 = db.query_one(count_late, &[]).await.unwrap().get(0);
    assert_eq!(committed_late, 0, "neither batch is in the database");
    let after: i64 = db
        .query_one("SELECT max(\"offset\") FROM replicast.position", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, position, "the position is the one before them");
    let value: String = db
        .query_one(
            "SELECT value FROM replicast.mirror_string WHERE key = 'cfg:str'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(value, "before");

    let sink = start_sink(relay_port, &pg.url(), &["--connections", "2"]);
    writes(&mut conn, &mut rng, &mut written, 50).await;
    committed(&db, redis_port).await;
    // The history, the string batch N changed, and every other mirror (the hash, the list, the set), which the
    // restarted sink reads again: it resumed without the windows it had.
    assert_history(&db, &written).await;
    assert_all_mirrors(&db, &mut conn).await;
    let value: String = redis::cmd("GET")
        .arg("cfg:str")
        .query_async(&mut conn)
        .await
        .unwrap();
    let stored: String = db
        .query_one(
            "SELECT value FROM replicast.mirror_string WHERE key = 'cfg:str'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, value, "the string's mirror");
    let partitions: Vec<String> = db
        .query(
            "SELECT DISTINCT tableoid::regclass::text FROM replicast.zset_history_raw",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !partitions.is_empty()
            && partitions
                .iter()
                .all(|p| p.starts_with("replicast.zset_history_2")),
        "today's samples are in the day's partition: {partitions:?}"
    );
    drop(sink);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_endpoint_answers_samples_and_buckets_and_refuses_bad_requests() {
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(&[]);
    let listen = free_port();
    let _sink = start_sink(
        relay_port,
        &pg.url(),
        &[
            "--listen",
            &format!("127.0.0.1:{listen}"),
            "--origin",
            "http://page.example",
        ],
    );
    let mut conn = redis_conn(redis_port).await;
    // Joined before anything is written (else its snapshot would hold only what Redis kept).
    committed(&pg.client().await, redis_port).await;
    // 100 samples a second apart, then 50 of them trimmed from Redis: the sink keeps them all.
    let t0: u64 = 1_700_000_000_000;
    let cpu = |i: u64| (i * 37 % 101) as f64 / 4.0;
    for i in 0..100 {
        let member = format!(
            r#"{{"cpu":{{"total":{}}},"load":[{},1],"name":"x"}}"#,
            cpu(i),
            i
        );
        support::zadd(&mut conn, "perf:web-01", t0 + i * 1000, &member).await;
    }
    let _: () = redis::cmd("ZREMRANGEBYRANK")
        .arg("perf:web-01")
        .arg(0)
        .arg(49)
        .query_async(&mut conn)
        .await
        .unwrap();
    // A second host, for the doc's query across hosts.
    let cpu2 = |i: u64| 50.0 + (i * 13 % 29) as f64;
    for i in 0..100 {
        let member = format!(r#"{{"cpu":{{"total":{}}}}}"#, cpu2(i));
        support::zadd(&mut conn, "perf:web-02", t0 + i * 1000, &member).await;
    }
    let db = pg.client().await;
    committed(&db, redis_port).await;

    let get = |query: String| async move {
        let url = format!("http://127.0.0.1:{listen}/history?{query}");
        let addr = format!("127.0.0.1:{listen}");
        http_get(&addr, &url).await
    };
    // Not downsampled: 100 samples asked for in up to 200 points.
    let (status, headers, body) = get(format!(
        "key=perf:web-01&from={t0}&to={}&points=200&fields=cpu.total,load.0,name,none",
        t0 + 99_000
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        headers.contains("access-control-allow-origin: http://page.example"),
        "{headers}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["step_ms"], 0);
    let points = json["points"].as_array().unwrap();
    assert_eq!(
        points.len(),
        100,
        "every stored sample, though Redis holds 50"
    );
    for (i, point) in points.iter().enumerate() {
        let i = i as u64;
        assert_eq!(point[0], serde_json::json!(t0 + i * 1000));
        let c = cpu(i);
        assert_eq!(
            point[1]["cpu.total"],
            serde_json::json!({"avg": c, "min": c, "max": c})
        );
        assert_eq!(
            point[1]["load.0"],
            serde_json::json!({"avg": i as f64, "min": i as f64, "max": i as f64})
        );
        assert!(
            point[1].get("name").is_none() && point[1].get("none").is_none(),
            "no number, no value"
        );
    }
    // Downsampled: 10 points over 100 s are buckets of 10 s from `from`, each the average, minimum and maximum of
    // its 10 samples.
    let (status, _, body) = get(format!(
        "key=perf:web-01&from={t0}&to={}&points=10&fields=cpu.total,name,load.0",
        t0 + 99_999
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["step_ms"], 10_000);
    let points = json["points"].as_array().unwrap();
    assert_eq!(points.len(), 10);
    for (b, point) in points.iter().enumerate() {
        let values: Vec<f64> = (0..10).map(|k| cpu(b as u64 * 10 + k)).collect();
        let avg = values.iter().sum::<f64>() / 10.0;
        let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(point[0], serde_json::json!(t0 + b as u64 * 10_000));
        let got = &point[1]["cpu.total"];
        assert!(
            (got["avg"].as_f64().unwrap() - avg).abs() < 1e-9,
            "bucket {b}: {got} against {avg}"
        );
        assert_eq!(
            (got["min"].as_f64(), got["max"].as_f64()),
            (Some(min), Some(max)),
            "bucket {b}"
        );
        // Each field in its own columns: load.0 is the sample's index.
        let first = b as f64 * 10.0;
        assert_eq!(
            point[1]["load.0"],
            serde_json::json!({"avg": first + 4.5, "min": first, "max": first + 9.0}),
            "bucket {b}"
        );
        assert!(point[1].get("name").is_none(), "no number, no value");
    }
    // Refused, with the reason.
    for (query, reason) in [
        (
            format!("key=secret:x&from={t0}&to={t0}&points=1&fields=a"),
            "key \"secret:x\" is not one this sink serves (--serve)",
        ),
        (
            format!("key=perf:web-01&from={t0}&to=1&points=1&fields=a"),
            "is before from",
        ),
        (
            format!("key=perf:web-01&from={t0}&to={t0}&points=5000&fields=a"),
            "points must be 1 to 2000",
        ),
        (
            format!("key=perf:web-01&from={t0}&to={t0}&points=1&fields=a%27)%3B--"),
            "must be a dotted path",
        ),
        (
            format!("key=perf:web-01&from=0&to={t0}&points=1&fields=a"),
            "at most 34560000000 (400 days)",
        ),
        (
            format!("key=perf:web-01&to={t0}&points=1&fields=a"),
            "from is missing",
        ),
    ] {
        let (status, _, body) = get(query.clone()).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(reason), "{query}: {body}");
    }
    // Another Host than the sink's names (DNS rebinding) is refused like the relay refuses it.
    let addr = format!("127.0.0.1:{listen}");
    let (status, _, _) = http_get_host(&addr, "/history?key=perf:web-01", "evil.example").await;
    assert_eq!(status, 403);

    // The lag and the counters, as Prometheus text.
    let (status, _, metrics) = http_get_host(&addr, "/metrics", &addr).await;
    assert_eq!(status, 200);
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{metrics}"))
    };
    assert!(metric("replicast_sink_rows_total") >= 200.0);
    let target = master_repl_offset(&mut conn).await as f64;
    assert!(metric("replicast_sink_committed_offset") >= target - 1024.0);
    assert!(metric("replicast_sink_lag_bytes") >= 0.0);
    // The pipeline's waits: the writer's for batches (at least for the first), the session's for the writer.
    assert!(
        metric("replicast_sink_writer_idle_seconds_total") > 0.0,
        "the writer waited for its first batch"
    );
    assert!(metric("replicast_sink_session_blocked_seconds_total") >= 0.0);
    let newest_age_s = (now_ms() - (t0 + 99_000)) as f64 / 1000.0;
    assert!(
        (metric("replicast_sink_lag_seconds") - newest_age_s).abs() < 60.0,
        "the newest row committed is {newest_age_s} s old"
    );

    // docs/SINK.md's example queries, run as they are written, on these samples: t0 is 2023-11-14 22:13:20 UTC,
    // so samples 0..40 fall in the minute 22:13 and 40..100 in 22:14.
    let doc = include_str!("../../docs/SINK.md");
    let queries: Vec<&str> = doc
        .split("```sql\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .collect();
    assert_eq!(
        queries.len(),
        4,
        "the one host's day, per minute, p95 across hosts; the spans covering a key (run by \
         schema_6_marks_pattern_spans_and_the_documented_query_finds_them)"
    );
    let day: Vec<f64> = db
        .query(queries[0], &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(1))
        .collect();
    assert_eq!(day, (0..100).map(cpu).collect::<Vec<_>>());
    let minutes = [0..40u64, 40..100];
    let rows = db.query(queries[1], &[]).await.unwrap();
    assert_eq!(rows.len(), 2);
    for (row, minute) in rows.iter().zip(minutes.clone()) {
        let values: Vec<f64> = minute.map(cpu).collect();
        let avg = values.iter().sum::<f64>() / values.len() as f64;
        assert!((row.get::<_, f64>(1) - avg).abs() < 1e-9);
        assert_eq!(
            row.get::<_, f64>(2),
            values.iter().cloned().fold(f64::INFINITY, f64::min)
        );
        assert_eq!(
            row.get::<_, f64>(3),
            values.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        );
    }
    let rows = db.query(queries[2], &[]).await.unwrap();
    assert_eq!(rows.len(), 2);
    for (row, minute) in rows.iter().zip(minutes) {
        let mut values: Vec<f64> = minute.clone().map(cpu).chain(minute.map(cpu2)).collect();
        values.sort_by(f64::total_cmp);
        // percentile_cont: linear between the two values around the 95 % rank.
        let rank = 0.95 * (values.len() - 1) as f64;
        let (low, high) = (values[rank.floor() as usize], values[rank.ceil() as usize]);
        let p95 = low + (high - low) * rank.fract();
        assert!(
            (row.get::<_, f64>(1) - p95).abs() < 1e-9,
            "{} against {p95}",
            row.get::<_, f64>(1)
        );
        assert_eq!(row.get::<_, i64>(2), 2, "two hosts");
    }

    // A sink started on a database without the schema, and without --create-schema, says what to do.
    db.batch_execute("CREATE DATABASE empty").await.unwrap();
    let empty = pg.url().replace("/replicast", "/empty");
    let refused = Command::new(env!("CARGO_BIN_EXE_replicast"))
        .args(["sink", "--database", &empty, "--history", "perf:*"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(
            "the database has no replicast schema: start the sink once with --create-schema"
        ),
        "{stderr}"
    );
}

/// Marks `db`'s schema as a newer sink's (one version past this one's): this sink refuses it, saying so.
async fn a_newer_schema_is_refused(db: &mut tokio_postgres::Client) {
    use replicast_server::sink::schema;

    db.execute(
        "UPDATE replicast.schema_version SET version = $1",
        &[&(schema::VERSION + 1)],
    )
    .await
    .unwrap();
    let refused = schema::prepare(db, true).await.unwrap_err();
    assert_eq!(
        refused.to_string(),
        format!(
            "the database's replicast schema is version {}, this sink writes version {}: a newer sink migrated it; run that one",
            schema::VERSION + 1,
            schema::VERSION
        )
    );
}

/// The migration that gives each stored history window its stream's epoch (`history_window.epoch`): two sinks
/// migrating at once both find it done once; a row an older sink stored keeps no epoch (the resumed sink matches it
/// by its shard's index, as that sink did), one with an epoch reads it back; and a sink older than the schema
/// refuses it, naming both versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_epoch_migration_keeps_older_rows_and_is_refused_by_an_older_sink() {
    use replicast_server::sink::{schema, writer};
    let pg = Postgres::start();
    let mut db = pg.client().await;
    let before = schema::WINDOW_EPOCH_VERSION - 1;
    schema::migrate(&mut db, before).await.unwrap();
    db.execute(
        "INSERT INTO replicast.history_window
           (key, shard, known, complete, scores, members, span_from, span_inexact)
           VALUES ('perf:a', 1, false, false, '{}', '{}', 10, true)",
        &[],
    )
    .await
    .unwrap();

    let (mut one, mut two) = (pg.client().await, pg.client().await);
    let target = schema::WINDOW_EPOCH_VERSION;
    let (a, b) = tokio::join!(
        schema::migrate(&mut one, target),
        schema::migrate(&mut two, target)
    );
    a.unwrap();
    b.unwrap();
    schema::migrate(&mut db, target).await.unwrap();
    let versions: Vec<i32> = db
        .query("SELECT version FROM replicast.schema_version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [target]);

    db.execute(
        "INSERT INTO replicast.history_window (key, shard, known, complete, scores, members, epoch)
           VALUES ('perf:b', 0, true, true, '{5}', ARRAY['\\x6d'::bytea], 'eA')",
        &[],
    )
    .await
    .unwrap();
    let mut windows = writer::load_history_windows(&db).await.unwrap();
    windows.sort_by(|a, b| a.0.cmp(&b.0));
    let read: Vec<String> = windows
        .iter()
        .map(|(k, w)| {
            let key = String::from_utf8_lossy(k);
            let from = w.span.map(|s| s.from);
            format!("{key} shard {} span {from:?} epoch {:?}", w.shard, w.epoch)
        })
        .collect();
    assert_eq!(
        read,
        [
            "perf:a shard 1 span Some(10) epoch None",
            "perf:b shard 0 span None epoch Some(\"eA\")"
        ]
    );
    assert_eq!(windows[1].1.members, [(5.0, b"m".to_vec())]);

    // A schema a newer sink migrated: this one refuses it.
    a_newer_schema_is_refused(&mut db).await;
}

/// A stored history window that the sink did not write (edited by hand) stops the sink at its start, saying what is
/// wrong with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_window_the_sink_did_not_write_is_refused_saying_why() {
    use replicast_server::sink::{schema, writer};
    let pg = Postgres::start();
    let mut db = pg.client().await;
    schema::prepare(&mut db, true).await.unwrap();
    let insert =
        "INSERT INTO replicast.history_window (key, shard, known, complete, scores, members)
                    VALUES ($1, $2, true, true, $3, $4)";
    let (one, two): (&[f64], &[&[u8]]) = (&[1.0], &[b"a", b"b"]);
    db.execute(insert, &[&"perf:a", &0i32, &one, &two])
        .await
        .unwrap();
    let refused = writer::load_history_windows(&db).await.unwrap_err();
    assert_eq!(
        refused.to_string(),
        "replicast.history_window: the row of \"perf:a\" is not one this sink wrote: 1 scores for 2 members"
    );
    db.execute("DELETE FROM replicast.history_window", &[])
        .await
        .unwrap();
    db.execute(insert, &[&"perf:b", &1024i32, &one, &&two[..1]])
        .await
        .unwrap();
    let refused = writer::load_history_windows(&db).await.unwrap_err();
    assert_eq!(
        refused.to_string(),
        "replicast.history_window: the row of \"perf:b\" is not one this sink wrote: shard 1024, not 0 to 1023"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_schema_is_migrated_by_create_schema_keeping_its_history() {
    use replicast_server::sink::{rows, schema};
    let pg = Postgres::start();
    let mut db = pg.client().await;
    // The schema as a version 1 sink left it: samples in a jsonb column, one of them stored.
    schema::migrate(&mut db, 1).await.unwrap();
    let t0: u64 = 1_700_000_000_000;
    let stored = r#"{"cpu":{"total":7.5}}"#;
    let digest = rows::zset_digest(t0 as f64, stored.as_bytes()).to_le_bytes();
    db.execute(
        "INSERT INTO replicast.zset_history (key, time, score, value, digest)
         VALUES ('perf:web-01', to_timestamp($1::float8 / 1000), $1, $2::text::jsonb, $3)",
        &[&(t0 as f64), &stored, &&digest[..]],
    )
    .await
    .unwrap();

    // Without --create-schema a sink refuses it, naming both versions.
    let refused = Command::new(env!("CARGO_BIN_EXE_replicast"))
        .args(["sink", "--database", &pg.url(), "--history", "perf:*"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!(
            "the database's replicast schema is version 1, this sink writes version {}: start the sink with --create-schema to migrate it",
            schema::VERSION
        )),
        "{stderr}"
    );

    // Redis holds the stored member again (a snapshot brings it) and a new one.
    let (_redis, redis_port) = start_redis();
    let mut conn = redis_conn(redis_port).await;
    support::zadd(&mut conn, "perf:web-01", t0, stored).await;
    support::zadd(
        &mut conn,
        "perf:web-01",
        t0 + 1000,
        r#"{"cpu":{"total":8}}"#,
    )
    .await;
    // JSON that json stores and jsonb refuses: the view must still read every row.
    support::zadd(&mut conn, "perf:web-01", t0 + 2000, r#"{"a":"\ud800"}"#).await;
    support::zadd(&mut conn, "perf:web-01", t0 + 3000, r#"{"n":1e-20000}"#).await;
    // Members that look like JSON and are not (the sink leaves that to PostgreSQL, which refuses the batch: it is
    // written again with them as JSON strings), and JSON too deep for the sink's parser (a string too).
    support::zadd(&mut conn, "perf:web-01", t0 + 4000, "{not json").await;
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    support::zadd(&mut conn, "perf:web-01", t0 + 5000, &deep).await;
    let relay_port = free_port();
    let _relay = start_relay_on(relay_port, redis_port, &[]);
    let _sink = start_sink(relay_port, &pg.url(), &[]);
    committed(&db, redis_port).await;

    let version: i32 = db
        .query_one("SELECT version FROM replicast.schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, schema::VERSION);
    let raw_type: String = db
        .query_one(
            "SELECT pg_typeof(value)::text FROM replicast.zset_history_raw LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(raw_type, "json", "samples are stored as json");
    // Read through the view as before: the stored sample once (the snapshot's copy has its digest), the new one.
    let rows = db
        .query(
            "SELECT score, (value #>> '{cpu,total}')::float8, pg_typeof(value)::text
             FROM replicast.zset_history WHERE key = 'perf:web-01' AND score < $1 ORDER BY time",
            &[&((t0 + 2000) as f64)],
        )
        .await
        .unwrap();
    let read: Vec<(f64, f64, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        read,
        [
            (t0 as f64, 7.5, "jsonb".to_string()),
            ((t0 + 1000) as f64, 8.0, "jsonb".to_string())
        ]
    );
    let values: Vec<String> = db
        .query(
            "SELECT value::text FROM replicast.zset_history WHERE key = 'perf:web-01' ORDER BY time",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(values.len(), 6, "{values:?}");
    assert_eq!(values[3], r#"{"n": 0.0}"#, "re-encoded as a double");
    assert_eq!(values[4], r#""{not json""#, "a JSON string");
    assert_eq!(values[5], format!("\"{deep}\""), "a JSON string");
}

/// The spans covering a key, pattern rows included: the query docs/SINK.md gives ("Exactly once"), as written.
fn spans_covering_a_key() -> &'static str {
    let doc = include_str!("../../docs/SINK.md");
    doc.split("```sql\n")
        .filter_map(|block| block.split("```").next())
        .find(|query| query.contains("replicast.inexact_span"))
        .unwrap()
}

/// Schema 6 adds `inexact_span.pattern`: a version 5 schema's rows (each of one key) read `false` once migrated, a
/// second migration changes nothing, a sink refuses a schema newer than its own, and the query SINK.md gives finds
/// the spans covering a key, every pattern row Redis's glob matches it with included (by the pattern's literal
/// prefix: `[^x]`, `\x`, an unclosed `[` and a multi-byte key's `?` are never missed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_6_marks_pattern_spans_and_the_documented_query_finds_them() {
    use replicast_protocol::pattern::glob_match;
    use replicast_server::sink::schema;
    let pg = Postgres::start();
    let mut db = pg.client().await;
    schema::migrate(&mut db, 5).await.unwrap();
    let insert = "INSERT INTO replicast.inexact_span (epoch, key, shard, from_offset, to_offset)
                  VALUES ('e1', $1, 0, $2, $3)";
    db.execute(insert, &[&"perf:a", &10i64, &20i64])
        .await
        .unwrap();
    schema::prepare(&mut db, true).await.unwrap();
    schema::migrate(&mut db, schema::VERSION).await.unwrap();
    let version: i32 = db
        .query_one("SELECT version FROM replicast.schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, schema::VERSION);
    let insert =
        "INSERT INTO replicast.inexact_span (epoch, key, shard, from_offset, to_offset, pattern)
                  VALUES ('e1', $1, 0, $2, $2, true)";
    // Redis's glob: `[^x]` negates, `\x` escapes, an unclosed `[` runs to the end, `?` is one byte (a regular
    // expression made of these misses keys they match, and the unclosed `[` fails every query).
    let patterns = [
        ("perf:*", 30i64),
        ("cpu:?", 40),
        ("perf.x[0-9]", 50),
        ("neg:[^x]*", 60),
        ("esc\\*", 70),
        ("wide:??", 80),
        ("open:[ab", 90),
    ];
    for (pattern, at) in patterns {
        db.execute(insert, &[&pattern, &at]).await.unwrap();
    }
    let covering = |key: &'static str| {
        let db = &db;
        async move {
            db.query(spans_covering_a_key(), &[&key])
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect::<Vec<(String, i64, i64, bool)>>()
        }
    };
    let row = |key: &str, from, to, pattern| (key.to_string(), from, to, pattern);
    assert_eq!(
        covering("perf:a").await,
        [row("perf:a", 10, 20, false), row("perf:*", 30, 30, true)]
    );
    assert_eq!(covering("perf:b").await, [row("perf:*", 30, 30, true)]);
    assert_eq!(covering("cpu:1").await, [row("cpu:?", 40, 40, true)]);
    assert_eq!(
        covering("perf.x5").await,
        [row("perf.x[0-9]", 50, 50, true)]
    );
    assert!(covering("perfxx5").await.is_empty(), "a dot is a dot");
    assert_eq!(covering("neg:a").await, [row("neg:[^x]*", 60, 60, true)]);
    assert_eq!(covering("esc*").await, [row("esc\\*", 70, 70, true)]);
    assert_eq!(covering("wide:é").await, [row("wide:??", 80, 80, true)]);
    assert_eq!(covering("open:a").await, [row("open:[ab", 90, 90, true)]);
    assert!(covering("other").await.is_empty());
    // Never a miss: every pattern Redis matches a key with is listed for it (a pattern it does not match may be).
    let keys = [
        "perf:a", "perf:", "cpu:1", "cpu:12", "perf.x5", "neg:a", "neg:", "esc*", "wide:é",
        "wide:ab", "open:a", "open:b", "open:c", "perfxx5",
    ];
    for key in keys {
        let listed = covering(key).await;
        for (pattern, at) in patterns {
            if glob_match(pattern.as_bytes(), key.as_bytes()) {
                assert!(
                    listed.contains(&row(pattern, at, at, true)),
                    "{pattern} matches {key}: {listed:?}"
                );
            }
        }
    }

    // A sink refuses a schema newer than its own, as a version 5 sink refuses this one.
    a_newer_schema_is_refused(&mut db).await;
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// GET `url` from `addr`: (status, headers lowercased, body).
async fn http_get(addr: &str, url: &str) -> (u16, String, String) {
    let path = &url[url.find("/history").unwrap()..];
    http_get_host(addr, path, addr).await
}

async fn http_get_host(addr: &str, path: &str, host: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nOrigin: http://page.example\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// Waits until the database's position of every primary's stream (its replication ID) reaches its offset.
async fn committed_shards(pg: &tokio_postgres::Client, primaries: &[u16]) {
    for &port in primaries {
        let mut conn = redis_conn(port).await;
        let epoch = support::info_field(&mut conn, "replication", "master_replid").await;
        let target = master_repl_offset(&mut conn).await;
        let mut at = None;
        for _ in 0..1200 {
            at = pg
                .query_opt(
                    "SELECT \"offset\" FROM replicast.position WHERE epoch = $1",
                    &[&epoch],
                )
                .await
                .unwrap()
                .map(|r| r.get::<_, i64>(0) as u64);
            if at.is_some_and(|at| at >= target) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            at.is_some_and(|at| at >= target),
            "shard {port}: the sink committed {at:?} of {epoch}'s {target}"
        );
    }
}

/// A relay on `port` following the cluster through its node on `seed`, with `flags`, once every shard's link
/// streams.
async fn cluster_relay(port: u16, seed: u16, flags: &[&str]) -> support::Proc {
    let mut relay = Command::new(env!("CARGO_BIN_EXE_replicast"));
    relay
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--cluster", &format!("127.0.0.1:{seed}")])
        .args(["--allow", "perf:*"])
        .args(flags)
        .env("RUST_LOG", "warn");
    let relay = start_until(&mut relay, "Replicast is live at ").0;
    // Every shard's link attached before the primaries' replication IDs are read: a primary without replicas
    // takes a new ID when its first one attaches, the one the sink's positions are stored under.
    wait_healthy(&format!("ws://127.0.0.1:{port}/ws")).await;
    relay
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_follows_every_shard_of_a_cluster_and_resumes_each() {
    let pg = Postgres::start();
    let cluster = support::cluster::Cluster::start(2, 0).await;
    let primaries = cluster.primaries().await;
    let relay_port = free_port();
    let _relay = cluster_relay(relay_port, primaries[0], &[]).await;
    // Keys on both shards.
    let keys: Vec<String> = (0..8).map(|i| format!("perf:c{i}")).collect();
    let mut owners = BTreeSet::new();
    for key in &keys {
        owners.insert(cluster.owner(cluster.slot(key.as_bytes())).await);
    }
    assert_eq!(owners.len(), 2, "the keys are on both shards");

    let mut written = Written::default();
    let mut t = 1_700_000_000_000u64;
    let mut write = |written: &mut Written, n: usize| {
        let mut batch = Vec::new();
        for _ in 0..n {
            for key in &keys {
                t += 1;
                let member = format!(r#"{{"t":{t},"cpu":{{"total":{}}}}}"#, t % 100);
                written
                    .zsets
                    .entry(key.clone())
                    .or_default()
                    .insert((t, member.clone()));
                batch.push((key.clone(), t, member));
            }
        }
        batch
    };
    let db = pg.client().await;
    let sink = start_sink(relay_port, &pg.url(), &[]);
    committed_shards(&db, &primaries).await;
    for (key, t, member) in write(&mut written, 20) {
        cluster.zadd(&key, t as f64, &member).await;
    }
    committed_shards(&db, &primaries).await;
    // A stateful key deleted on each shard is stored, as absent, in the keeping of its own shard (whose resume
    // rebuilds it), not both as shard 0's.
    let mut deleted = BTreeMap::new();
    for i in 0.. {
        let key = format!("perf:d{i}");
        deleted
            .entry(cluster.owner(cluster.slot(key.as_bytes())).await)
            .or_insert(key);
        if deleted.len() == 2 {
            break;
        }
    }
    let deleted: Vec<String> = deleted.into_values().collect();
    for key in &deleted {
        let mut conn = cluster.conn_for(key.as_bytes()).await;
        for words in [&["ZINCRBY", key, "5", "m"][..], &["DEL", key]] {
            command(&mut conn, words).await;
        }
    }
    committed_shards(&db, &primaries).await;
    let rows = db
        .query(
            "SELECT shard, known AND complete AND cardinality(members) = 0
             FROM replicast.history_window WHERE key = ANY($1)",
            &[&deleted],
        )
        .await
        .unwrap();
    let stored: BTreeSet<(i32, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        stored,
        BTreeSet::from([(0, true), (1, true)]),
        "each absent in its own shard's keeping"
    );
    // Away while both shards move on, then back: it resumes each shard from the database's position (`at=` with
    // both epochs), so it sees the members Redis trims meanwhile.
    drop(sink);
    for (key, t, member) in write(&mut written, 20) {
        cluster.zadd(&key, t as f64, &member).await;
        let mut conn = cluster.conn_for(key.as_bytes()).await;
        let _: () = redis::cmd("ZREMRANGEBYRANK")
            .arg(&key)
            .arg(0)
            .arg(-6)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let _sink = start_sink(relay_port, &pg.url(), &[]);
    committed_shards(&db, &primaries).await;
    assert_history(&db, &written).await;
    let epochs: i64 = db
        .query_one("SELECT count(*) FROM replicast.position", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(epochs, 2, "a position per shard");
}

/// The rows of `replicast.inexact_span`: epoch, key, from and to offsets.
async fn inexact_spans(db: &tokio_postgres::Client) -> Vec<(String, String, u64, u64)> {
    db.query(
        "SELECT epoch, key, from_offset, to_offset FROM replicast.inexact_span",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, i64>(2) as u64,
            r.get::<_, i64>(3) as u64,
        )
    })
    .collect()
}

/// A 3-shard cluster without replicas, its third primary (`lost`) to be lost with its slots, given to the first
/// (`heir`), and a relay with `flags` following it on `relay_port`; the database the sink writes to.
struct ToLose {
    pg: Postgres,
    cluster: support::cluster::Cluster,
    primaries: Vec<u16>,
    relay_port: u16,
    _relay: support::Proc,
    heir: u16,
    lost: u16,
}

impl ToLose {
    async fn start(flags: &[&str]) -> ToLose {
        let pg = Postgres::start();
        let cluster = support::cluster::Cluster::start(3, 0).await;
        let primaries = cluster.primaries().await;
        let relay_port = free_port();
        let _relay = cluster_relay(relay_port, primaries[0], flags).await;
        let (heir, lost) = (primaries[0], primaries[2]);
        ToLose {
            pg,
            cluster,
            primaries,
            relay_port,
            _relay,
            heir,
            lost,
        }
    }
}

/// The first of `<prefix>0` to `<prefix>63` whose slot the primary on `port` serves.
async fn a_key_on(cluster: &support::cluster::Cluster, port: u16, prefix: &str) -> String {
    for i in 0..64 {
        let key = format!("{prefix}{i}");
        if cluster.owner(cluster.slot(key.as_bytes())).await == port {
            return key;
        }
    }
    panic!("no key on the shard of {port}");
}

/// Waits up to `tries` times 50 ms for the sink to let the position of `epoch` (a lost shard's stream) go: its row
/// deleted.
async fn position_let_go(db: &tokio_postgres::Client, epoch: &str, tries: usize) {
    let mut positions = 1;
    for _ in 0..tries {
        positions = db
            .query_one(
                "SELECT count(*) FROM replicast.position WHERE epoch = $1",
                &[&epoch],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        if positions == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(positions, 0, "the lost shard's position is let go");
}

/// A shard of a 3-shard cluster lost with its slots while a span is open on its stream: its primary, without
/// replicas, is killed and forgotten by every other node, its slots given afresh to another primary. Before, the
/// relay's stream of it just stopped: the span stayed open, not recorded, and the shard's position and the key's
/// window (unknown, with the span) stayed stored for a stream that would never resume. Now the relay ends that stream
/// with an ended message, and the sink records the span (from the first increment to where the stream ended), lets
/// the shard's position go (its epoch's row deleted) and stores the key as absent, without the span, in one
/// transaction; it goes on with the other two shards. The key, incremented again where its slot now lives, is read
/// exactly from its absence; a sink restarted then resumes from the two positions, records nothing more, and every
/// row written, the lost shard's keys' included, is in the history, once (the increments' rows, which the answer was
/// to bring, are the span's).
///
/// The span is kept open as in `sink_restarts.rs`: the relay is `--stateless` (a top-up reads the node), the key
/// holds 20 members (the sink's history window the 16 highest), and its lowest member is incremented twice with the
/// node paused in the same round trip (`CLIENT PAUSE … ALL`): the top-up cannot be read before the node is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_lost_with_its_slots_lets_the_sink_go_on_without_its_position() {
    let ToLose {
        pg,
        mut cluster,
        primaries,
        relay_port,
        _relay,
        heir,
        lost,
    } = ToLose::start(&["--stateless"]).await;
    let keys: Vec<String> = (0..12).map(|i| format!("perf:l{i}")).collect();
    let mut owners = BTreeMap::new();
    for key in &keys {
        let owner = cluster.owner(cluster.slot(key.as_bytes())).await;
        owners.entry(owner).or_insert(key.clone());
    }
    assert_eq!(owners.len(), 3, "the keys are on every shard");
    let stateful = owners[&lost].clone();
    let mut written = Written::default();
    let mut t = 1_700_000_000_000u64;
    let mut write_all = |written: &mut Written| {
        let mut batch = Vec::new();
        for key in &keys {
            t += 1;
            let sample = format!(r#"{{"t":{t}}}"#);
            written
                .zsets
                .entry(key.clone())
                .or_default()
                .insert((t, sample.clone()));
            batch.push((key.clone(), t, sample));
        }
        batch
    };
    let db = pg.client().await;
    let sink = start_sink(relay_port, &pg.url(), &[]);
    committed_shards(&db, &primaries).await;
    for _ in 0..20 {
        for (key, t, sample) in write_all(&mut written) {
            cluster.zadd(&key, t as f64, &sample).await;
        }
    }
    committed_shards(&db, &primaries).await;
    let low = written.zsets[&stateful].first().unwrap().1.clone();
    let (epoch, span_from, after) = incremented_twice_then_paused(&db, lost, &stateful, &low).await;

    cluster.lose_primary(lost, heir).await;
    let kept: Vec<u16> = primaries.iter().copied().filter(|&p| p != lost).collect();
    position_let_go(&db, &epoch, 600).await;
    let recorded = inexact_spans(&db).await;
    assert!(
        matches!(&recorded[..], [(e, k, from, to)] if *e == epoch && *k == stateful && *from == span_from && *to >= after),
        "one span of {stateful}, from {span_from} to at least {after}: {recorded:?}"
    );
    let row = db
        .query_one(
            "SELECT known AND complete AND cardinality(members) = 0, span_from IS NULL
             FROM replicast.history_window WHERE key = $1",
            &[&stateful],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, bool>(0), row.get::<_, bool>(1)),
        (true, true),
        "{stateful} stored as absent, without the span"
    );

    // Its slot lives on the heir now, empty: incremented there, the key's new score is its increment.
    let member = r#"{"n":1}"#;
    let mut conn = cluster.conn_for(stateful.as_bytes()).await;
    command(&mut conn, &["ZINCRBY", &stateful, "7", member]).await;
    written
        .zsets
        .get_mut(&stateful)
        .unwrap()
        .insert((7, member.to_string()));
    committed_shards(&db, &kept).await;
    drop(sink);
    for (key, t, sample) in write_all(&mut written) {
        cluster.zadd(&key, t as f64, &sample).await;
    }
    let _sink = start_sink(relay_port, &pg.url(), &[]);
    committed_shards(&db, &kept).await;
    assert_history(&db, &written).await;
    let epochs: i64 = db
        .query_one("SELECT count(*) FROM replicast.position", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(epochs, 2, "a position per shard left");
    assert_eq!(inexact_spans(&db).await, recorded, "nothing more recorded");
}

/// A sink stopped while a shard of a three-shard cluster is lost with its slots (given to a shard that was there),
/// a span open and inexact on that shard's stream at the stored position. Restarted, it gets no stream of the lost
/// shard (two hellos for three positions) and no ended message; once no hello came for a while, it records the span,
/// from its start to the lost stream's stored position, and reads the key by a top-up (answered by the heir: absent).
/// Before, the window stayed held and the span unrecorded for as long as nothing named the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_stopped_while_a_shard_is_lost_records_its_span_when_restarted() {
    let ToLose {
        pg,
        mut cluster,
        primaries,
        relay_port,
        _relay,
        heir,
        lost,
    } = ToLose::start(&["--stateless"]).await;
    let stateful = a_key_on(&cluster, lost, "perf:l").await;
    let db = pg.client().await;
    let sink = start_sink(relay_port, &pg.url(), &[]);
    committed_shards(&db, &primaries).await;
    // 20 members: the sink's history window holds the 16 highest, so the lowest one's increments wait for a top-up.
    for t in 0..20u64 {
        cluster
            .zadd(
                &stateful,
                (1_700_000_000_000 + t) as f64,
                &format!(r#"{{"t":{t}}}"#),
            )
            .await;
    }
    committed_shards(&db, &primaries).await;
    let (epoch, span_from, after) =
        incremented_twice_then_paused(&db, lost, &stateful, r#"{"t":0}"#).await;
    let stored_at: i64 = db
        .query_one(
            "SELECT \"offset\" FROM replicast.position WHERE epoch = $1",
            &[&epoch],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored_at as u64 >= after, "{stored_at}");
    drop(sink);

    cluster.lose_primary(lost, heir).await;
    // The relay lets the lost shard go (its topology read, once a second): a session opened before would still get
    // its stream, and its ended message.
    let node = format!("127.0.0.1:{lost}");
    let mut health = String::new();
    for _ in 0..600 {
        let addr = format!("127.0.0.1:{relay_port}");
        health = http_get_host(&addr, "/healthz", &addr).await.2;
        if !health.is_empty() && !health.contains(&node) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!health.contains(&node), "{health}");
    let _sink = start_sink(relay_port, &pg.url(), &[]);
    let mut recorded = Vec::new();
    for _ in 0..1200 {
        recorded = inexact_spans(&db).await;
        if !recorded.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        recorded,
        [(epoch, stateful.clone(), span_from, stored_at as u64)],
        "the span, to the lost stream's stored position"
    );
    // Read by a top-up, which the heir answers: the key is not there.
    let mut known = false;
    for _ in 0..600 {
        known = db
            .query_one(
                "SELECT known FROM replicast.history_window WHERE key = $1",
                &[&stateful],
            )
            .await
            .unwrap()
            .get(0);
        if known {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(known, "{stateful} read again");
}

/// Increments `member` of `key` twice on the primary on `port`, pausing it in the same round trip
/// (`CLIENT PAUSE … ALL`: the top-up the increments need cannot be read), and waits until the sink commits a position
/// past both, the key stored as unknown with its span open and inexact, of the primary's epoch. Returns the epoch,
/// where the span starts (at the first increment) and the primary's offset past both.
async fn incremented_twice_then_paused(
    db: &tokio_postgres::Client,
    port: u16,
    key: &str,
    member: &str,
) -> (String, u64, u64) {
    let mut conn = redis_conn(port).await;
    let epoch = support::info_field(&mut conn, "replication", "master_replid").await;
    let before = master_repl_offset(&mut conn).await;
    let (_, _, info, ()): (f64, f64, String, ()) = redis::pipe()
        .cmd("ZINCRBY")
        .arg(key)
        .arg(5)
        .arg(member)
        .cmd("ZINCRBY")
        .arg(key)
        .arg(5)
        .arg(member)
        .cmd("INFO")
        .arg("replication")
        .cmd("CLIENT")
        .arg("PAUSE")
        .arg(600_000)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    let after: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .and_then(|o| o.trim().parse().ok())
        .unwrap();
    let mut span_from = None;
    for _ in 0..600 {
        span_from = db
            .query_opt(
                "SELECT w.span_from FROM replicast.history_window w, replicast.position p
                 WHERE w.key = $1 AND NOT w.known AND w.span_inexact AND w.epoch = $2
                   AND p.epoch = $2 AND p.\"offset\" >= $3",
                &[&key, &epoch, &(after as i64)],
            )
            .await
            .unwrap()
            .and_then(|r| r.get::<_, Option<i64>>(0));
        if span_from.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let span_from =
        span_from.expect("a position past the increments, the key's span open and inexact") as u64;
    assert!((before..after).contains(&span_from), "{span_from}");
    (epoch, span_from, after)
}

/// The value of `name` in the sink's `/metrics` on `listen`.
async fn sink_metric(listen: &str, name: &str) -> u64 {
    let (_, _, body) = http_get_host(listen, "/metrics", listen).await;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the sink's metrics:\n{body}"))
}

/// Asks the relay, from `probe` (a session of the test's own, opened while the cluster was whole), for a top-up of
/// `key` until it answers with the notice of keys no shard serves: the relay's view of the cluster has `key`'s slot
/// without an owner.
async fn until_no_shard_serves(probe: &mut support::Socket, key: &str) {
    use futures_util::SinkExt;
    use replicast_protocol::client_message::Topup;
    use replicast_protocol::wire::{self, Message};
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay still serves the slot of {key}"
        );
        for request in Topup::requests([key.as_bytes()]) {
            probe
                .send(tokio_tungstenite::tungstenite::Message::text(request))
                .await
                .unwrap();
        }
        // Its answer (a snapshot), or a notice: another notice than that one (the read failed: the cluster is
        // down while a slot has no owner) or the join's snapshots ask again.
        loop {
            let message = support::next_binary(probe).await;
            let inner = match wire::decode(&message) {
                Ok(Message::Shard { message, .. }) => *message,
                Ok(other) => other,
                Err(_) => continue,
            };
            match inner {
                Message::Notice { text } if text.contains("no shard serves") => return,
                Message::Notice { .. } | Message::Snapshot { .. } => break,
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A key whose top-up the sink asks while its slot has no owner (for a while, as in a failover or a resharding):
/// the relay says so in a notice, naming the key in its text, and sends no answer. The slot is then given to another
/// primary, which holds none of the keys its last owner kept, so nothing of the relay's own (its top-up of the slots
/// a shard gains reads the keys it finds there) names the key. Before, the key stayed pending and its span open,
/// unrecorded, until the sink's next session asked it again; now the sink asks again, in the same session, a key
/// asked and not answered for a while: the slot's new owner answers (the key absent there), the key is known again
/// and its span, answered by another shard than its own, is recorded (docs/SINK.md). The sink stays in its first
/// session throughout.
///
/// The ask comes while the slot has no owner: the sink is stopped (SIGSTOP) before the increment that makes it ask,
/// and let go once the relay's own answer to a top-up of the key, asked by a session of the test, is that notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_asked_while_its_slot_has_no_owner_is_asked_again_in_the_same_session() {
    let ToLose {
        pg,
        cluster,
        primaries,
        relay_port,
        _relay,
        heir,
        lost,
    } = ToLose::start(&[]).await;
    let key = a_key_on(&cluster, lost, "perf:u").await;
    let slot = cluster.slot(key.as_bytes());
    let db = pg.client().await;
    let listen = format!("127.0.0.1:{}", free_port());
    let sink = start_sink(relay_port, &pg.url(), &["--listen", &listen]);
    committed_shards(&db, &primaries).await;
    // 20 members: the sink's history window holds the 16 highest, so the lowest one's increment asks a top-up.
    for t in 0..20u64 {
        cluster
            .zadd(
                &key,
                (1_700_000_000_000 + t) as f64,
                &format!(r#"{{"t":{t}}}"#),
            )
            .await;
    }
    committed_shards(&db, &primaries).await;

    // The test's own session, opened while every slot has an owner (a join's reads fail while one has none).
    let url = format!("ws://127.0.0.1:{relay_port}/ws");
    let mut probe = support::connect(&url, &support::subscribe_message(&["perf:*"], 20)).await;

    let pid = sink.0.id() as libc::pid_t;
    // SAFETY: kill(2) with a pid of our own child, which Proc has not reaped yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let mut conn = redis_conn(lost).await;
    let epoch = support::info_field(&mut conn, "replication", "master_replid").await;
    let before = master_repl_offset(&mut conn).await;
    command(&mut conn, &["ZINCRBY", &key, "5", r#"{"t":0}"#]).await;
    let after = master_repl_offset(&mut conn).await;
    cluster.unassign_slot(slot).await;
    until_no_shard_serves(&mut probe, &key).await;
    drop(probe);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    // The sink reads the increment and asks the key's top-up (told no shard serves it): the key is stored pending,
    // with its span, at a position past the increment.
    let mut pending = None;
    for _ in 0..1200 {
        pending = db
            .query_opt(
                "SELECT w.span_from FROM replicast.history_window w, replicast.position p
                 WHERE w.key = $1 AND NOT w.known AND p.epoch = $2 AND p.\"offset\" >= $3",
                &[&key, &epoch, &(after as i64)],
            )
            .await
            .unwrap()
            .and_then(|r| r.get::<_, Option<i64>>(0));
        if pending.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let span_from = pending.expect("the key pending, its span open, past the increment") as u64;
    assert!((before..after).contains(&span_from), "{span_from}");

    cluster.assign_slot(slot, heir).await;
    // Asked again (the first time some seconds after the ask), answered by the heir: the key absent, the span
    // recorded (answered by another shard than its own).
    let mut recorded = Vec::new();
    for _ in 0..1200 {
        recorded = inexact_spans(&db).await;
        if !recorded.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        matches!(&recorded[..], [(e, k, from, to)] if *e == epoch && *k == key && *from == span_from && *to >= after),
        "one span of {key}, from {span_from} to at least {after}: {recorded:?}"
    );
    let known: bool = db
        .query_one(
            "SELECT known AND complete AND cardinality(members) = 0
             FROM replicast.history_window WHERE key = $1",
            &[&key],
        )
        .await
        .unwrap()
        .get(0);
    assert!(known, "{key} read again: absent on the heir");
    assert_eq!(
        sink_metric(&listen, "replicast_sink_sessions_total").await,
        1,
        "the sink's first session throughout"
    );
}

/// Mirrored keys of each kind the mirror workload writes.
const MIRROR_KEYS: u64 = 3;

/// A shard of a 3-shard cluster lost with its slots while the sink is behind its stream: the sink is stopped
/// (SIGSTOP) while 24 MiB of samples are written to a key of the shard about to be lost (more than the socket's
/// buffers hold, so the relay's session of the sink falls behind the shard's backlog), the shard is lost, and the
/// sink resumes. Before, the relay dropped the lost shard's stream as soon as the shard left the cluster: the batches
/// its backlog still held past the session's cursor never reached the sink, which then let the shard's position go,
/// those rows lost with no span. Now the stream goes on to where the shard's backlog ended, then ends with an ended
/// message: every row written is in the history, and nothing is recorded as inexact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_behind_a_shard_lost_with_its_slots_gets_the_rest_of_its_stream() {
    let ToLose {
        pg,
        mut cluster,
        primaries,
        relay_port,
        _relay,
        heir,
        lost,
    } = ToLose::start(&[]).await;
    let key = a_key_on(&cluster, lost, "perf:b").await;
    let db = pg.client().await;
    let sink = start_sink(relay_port, &pg.url(), &[]);
    let mut written = Written::default();
    let pad = "x".repeat(4096);
    let mut t = 1_700_000_000_000u64;
    let mut conn = redis_conn(lost).await;
    let mut write = |pipe: &mut redis::Pipeline, written: &mut Written| {
        t += 1;
        let sample = format!(r#"{{"t":{t},"pad":"{pad}"}}"#);
        written
            .zsets
            .entry(key.clone())
            .or_default()
            .insert((t, sample.clone()));
        pipe.cmd("ZADD").arg(&key).arg(t).arg(sample).ignore();
    };
    let mut first = redis::pipe();
    write(&mut first, &mut written);
    let () = first.query_async(&mut conn).await.unwrap();
    committed_shards(&db, &primaries).await;

    let pid = sink.0.id() as libc::pid_t;
    // SAFETY: kill(2) with a pid of our own child, which Proc has not reaped yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    for _ in 0..48 {
        let mut batch = redis::pipe();
        for _ in 0..128 {
            write(&mut batch, &mut written);
        }
        let () = batch.query_async(&mut conn).await.unwrap();
    }
    // Every write in the relay's backlog before the shard is lost: what its one replica (the relay) had not
    // acknowledged is lost with the primary, for any replica (under load the relay's link can trail by a few MiB).
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        acked, 1,
        "the relay acknowledged every write of the shard to lose"
    );
    let epoch = support::info_field(&mut conn, "replication", "master_replid").await;
    cluster.lose_primary(lost, heir).await;
    // The relay reads the topology once a second: the shard is retired by then.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);

    position_let_go(&db, &epoch, 1200).await;
    assert_history(&db, &written).await;
    assert!(inexact_spans(&db).await.is_empty(), "no span: nothing lost");
}

/// One write of the mirror workload: every kind of mirrored key, grown, shrunk and deleted.
async fn mirror_write(conn: &mut MultiplexedConnection, rng: &mut Rng) {
    let n = rng.below(MIRROR_KEYS);
    let v = rng.below(1000);
    let command = match rng.below(12) {
        0..=1 => redis::cmd("HSET")
            .arg(format!("cfg:h{n}"))
            .arg(format!("f{}", rng.below(8)))
            .arg(format!(r#"{{"n":{v}}}"#))
            .clone(),
        2 => redis::cmd("HDEL")
            .arg(format!("cfg:h{n}"))
            .arg(format!("f{}", rng.below(8)))
            .clone(),
        3 => redis::cmd(if rng.below(2) == 0 { "SADD" } else { "SREM" })
            .arg(format!("cfg:s{n}"))
            .arg(format!("m{}", rng.below(8)))
            .clone(),
        4 => redis::cmd("SADD")
            .arg(format!("cfg:s{n}"))
            .arg(format!("m{}", rng.below(8)))
            .clone(),
        5..=6 => redis::cmd(if rng.below(2) == 0 { "RPUSH" } else { "LPUSH" })
            .arg(format!("cfg:l{n}"))
            .arg(format!("i{v}"))
            .clone(),
        7 => redis::cmd(if rng.below(2) == 0 { "RPOP" } else { "LPOP" })
            .arg(format!("cfg:l{n}"))
            .clone(),
        8..=9 => redis::cmd("SET")
            .arg(format!("cfg:v{n}"))
            .arg(format!("v{v}"))
            .clone(),
        _ => {
            let kind = ["h", "s", "l", "v"][rng.below(4) as usize];
            redis::cmd("DEL").arg(format!("cfg:{kind}{n}")).clone()
        }
    };
    let _: redis::Value = command.query_async(conn).await.unwrap();
}

/// On a cluster as on one Redis (`sink_restarts.rs`): a restarted sink's catch-up increments a member of a key it
/// holds no window of, on each of two shards, twice before the top-up's answer; each shard's state lists both scores
/// in its past message, so every score is stored and no span recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_member_incremented_twice_before_a_restarted_sinks_top_up_has_every_score() {
    let pg = Postgres::start();
    let cluster = support::cluster::Cluster::start(2, 0).await;
    let primaries = cluster.primaries().await;
    let relay_port = free_port();
    let _relay = cluster_relay(relay_port, primaries[0], &[]).await;
    let relay_addr = format!("127.0.0.1:{relay_port}");
    // Each shard's state ready, so that its top-ups are answered from it.
    let mut ready = 0;
    for _ in 0..600 {
        let (_, _, body) = http_get_host(&relay_addr, "/metrics", &relay_addr).await;
        ready = body
            .lines()
            .filter(|l| l.starts_with("replicast_state_ready{") && l.ends_with(" 1"))
            .count();
        if ready == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready, 2, "both shards' states ready");
    // A key on each shard.
    let mut keys = BTreeMap::new();
    for i in 0.. {
        let key = format!("perf:n{i}");
        keys.entry(cluster.owner(cluster.slot(key.as_bytes())).await)
            .or_insert(key);
        if keys.len() == 2 {
            break;
        }
    }
    let db = pg.client().await;
    let sink = start_sink(relay_port, &pg.url(), &[]);
    for &port in &primaries {
        let mut i = 0;
        let key = loop {
            let key = format!("perf:other{i}");
            if cluster.owner(cluster.slot(key.as_bytes())).await == port {
                break key;
            }
            i += 1;
        };
        let mut conn = redis_conn(port).await;
        command(&mut conn, &["ZADD", &key, "1700000000000", "{}"]).await;
    }
    committed_shards(&db, &primaries).await;
    drop(sink);
    // While the sink is away: neither key is named by a command it read, so it has no window stored of either.
    let mut scores: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for key in keys.values() {
        let mut conn = cluster.conn_for(key.as_bytes()).await;
        for by in [1_700_000_000_000u64, 5] {
            let score: f64 = redis::cmd("ZINCRBY")
                .arg(key)
                .arg(by)
                .arg(r#"{"m":0}"#)
                .query_async(&mut conn)
                .await
                .unwrap();
            scores.entry(key.clone()).or_default().push(score as u64);
        }
    }
    let _sink = start_sink(relay_port, &pg.url(), &[]);
    committed_shards(&db, &primaries).await;
    for (key, want) in &scores {
        let stored = stored_scores(&db, key, want.len()).await;
        assert_eq!(&stored, want, "{key}: every score, the one between too");
    }
    // The rows and a span (if any) commit in one transaction.
    let spans: Vec<(String, i32)> = db
        .query("SELECT key, shard FROM replicast.inexact_span", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(spans, [], "no span: each shard listed every write");
}

async fn command(conn: &mut MultiplexedConnection, words: &[&str]) {
    let _: redis::Value = redis::cmd(words[0])
        .arg(&words[1..])
        .query_async(conn)
        .await
        .unwrap();
}

/// A sink SIGKILLed and restarted resumes from the database's position in a new process, which has none of the
/// mirror's windows: every key it mirrors (hashes, lists, sets, strings) is read again, and the later writes —
/// fields added and removed, items pushed and popped, members added and removed, keys deleted — reach the mirror
/// tables, which equal Redis after every restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mirror_equals_redis_after_the_sink_is_killed_and_resumed() {
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(&[]);
    let mut conn = redis_conn(redis_port).await;
    let mut rng = Rng(29);
    let db = pg.client().await;
    // Joined before any set is written: a set's members before the sink's join are not known (docs/SINK.md).
    let mut sink = start_sink(relay_port, &pg.url(), &[]);
    committed(&db, redis_port).await;
    for round in 0..3 {
        for _ in 0..150 {
            mirror_write(&mut conn, &mut rng).await;
        }
        // Keys only the commands after the restart change, and only in part.
        command(&mut conn, &["HSET", "cfg:hd", "f1", "x", "f2", "y"]).await;
        command(&mut conn, &["RPUSH", "cfg:ld", "a", "b", "c"]).await;
        command(&mut conn, &["SADD", "cfg:sd", "a", "b"]).await;
        committed(&db, redis_port).await;
        assert_all_mirrors(&db, &mut conn).await;
        drop(sink);
        // Written while the sink is away (but the first time: the sink then resumes to commands that make no
        // window), and after it resumed.
        for _ in 0..50 * round {
            mirror_write(&mut conn, &mut rng).await;
        }
        sink = start_sink(relay_port, &pg.url(), &[]);
        // First only commands that change a key without the whole of it: a field, an item, a member removed
        // (no window is made for them), then added.
        for words in [
            &["HDEL", "cfg:hd", "f1"][..],
            &["LPOP", "cfg:ld"],
            &["SREM", "cfg:sd", "a"],
        ] {
            command(&mut conn, words).await;
        }
        committed(&db, redis_port).await;
        assert_all_mirrors(&db, &mut conn).await;
        for words in [
            &["HSET", "cfg:h0", "new", "1"][..],
            &["RPUSH", "cfg:l0", "new"],
            &["SADD", "cfg:s0", "new"],
            &["SET", "cfg:v0", "new"],
        ] {
            command(&mut conn, words).await;
        }
        committed(&db, redis_port).await;
        assert_all_mirrors(&db, &mut conn).await;
        for _ in 0..150 {
            mirror_write(&mut conn, &mut rng).await;
        }
        committed(&db, redis_port).await;
        assert_all_mirrors(&db, &mut conn).await;
    }
    drop(sink);
}

/// A key Redis holds whose rows the database lacks (here: a key the sink did not mirror before it was restarted
/// with a wider `--mirror`), written after the sink resumed: the restarted sink's window of it holds only what was
/// written since, so the key is read whole before its rows are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_sink_reads_a_key_it_holds_no_rows_of_before_writing_it() {
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(&[]);
    let mut conn = redis_conn(redis_port).await;
    let db = pg.client().await;
    let sink = |mirror: &str| {
        let mut command = sink_command(relay_port, &pg.url());
        command.args(["--mirror", mirror]);
        start_until(&mut command, "Sink following").0
    };
    let first = sink("cfg:a*");
    for words in [
        &["HSET", "cfg:h0", "a", "1", "b", "2"][..],
        &["RPUSH", "cfg:l0", "x", "y"],
        &["SET", "cfg:a0", "mirrored"],
    ] {
        command(&mut conn, words).await;
    }
    committed(&db, redis_port).await;
    drop(first);
    let second = sink("cfg:*");
    for words in [&["HSET", "cfg:h0", "c", "3"][..], &["RPUSH", "cfg:l0", "z"]] {
        command(&mut conn, words).await;
    }
    committed(&db, redis_port).await;
    assert_all_mirrors(&db, &mut conn).await;
    drop(second);
}

/// The ids of every entry `key` holds in Redis.
async fn stream_ids(conn: &mut MultiplexedConnection, key: &str) -> BTreeSet<String> {
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap();
    entries.into_iter().map(|(id, _)| id).collect()
}

/// A stream that appears under a history key by `RENAME`, `COPY`, `MOVE` (from another database) or `RESTORE` has a
/// row for each of its entries under that key, as one written there by `XADD`: Redis 7.0 propagates each command as
/// written, and the sink takes the entries from the window moved with it, or from a top-up of the key when the
/// window does not hold them all (`ev:long`, past the history window's 16 entries) or the source is not followed.
/// A transaction that renames a stream in and trims it (`ev:y`) leaves a row for every entry it moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_renamed_copied_moved_or_restored_into_a_history_key_has_its_rows() {
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(&[]);
    let mut conn = redis_conn(redis_port).await;
    let db = pg.client().await;
    let sink = start_sink(relay_port, &pg.url(), &[]);
    // The sink joined before the writes: what they leave is read from the stream, not from the join's snapshot.
    command(&mut conn, &["SET", "cfg:joined", "1"]).await;
    committed(&db, redis_port).await;
    for (key, n) in [("ev:a", 3), ("ev:long", 30), ("ev:x", 3)] {
        for i in 0..n {
            command(&mut conn, &["XADD", key, "*", "i", &i.to_string()]).await;
        }
    }
    let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for key in ["ev:a", "ev:long", "ev:x"] {
        want.insert(key.to_string(), stream_ids(&mut conn, key).await);
    }
    // In one relay message (a transaction), a stream renamed in and trimmed at once: its rows are read as the
    // `RENAME` left it, every entry it moved.
    want.insert("ev:y".to_string(), stream_ids(&mut conn, "ev:x").await);
    let _: () = redis::pipe()
        .atomic()
        .cmd("RENAME")
        .arg("ev:x")
        .arg("ev:y")
        .ignore()
        .cmd("XTRIM")
        .arg("ev:y")
        .arg("MAXLEN")
        .arg(1)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(stream_ids(&mut conn, "ev:y").await.len(), 1);
    command(&mut conn, &["RENAME", "ev:a", "ev:b"]).await;
    command(&mut conn, &["COPY", "ev:b", "ev:c"]).await;
    command(&mut conn, &["RENAME", "ev:long", "ev:long2"]).await;
    let _: () = redis::pipe()
        .cmd("SELECT")
        .arg(1)
        .ignore()
        .cmd("XADD")
        .arg("ev:m")
        .arg("*")
        .arg("moved")
        .arg("1")
        .ignore()
        .cmd("MOVE")
        .arg("ev:m")
        .arg(0)
        .ignore()
        .cmd("SELECT")
        .arg(0)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let dump: Vec<u8> = redis::cmd("DUMP")
        .arg("ev:c")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("RESTORE")
        .arg("ev:r")
        .arg(0)
        .arg(dump)
        .query_async(&mut conn)
        .await
        .unwrap();
    for key in ["ev:b", "ev:c", "ev:long2", "ev:m", "ev:r"] {
        want.insert(key.to_string(), stream_ids(&mut conn, key).await);
    }
    assert_eq!(want["ev:long2"].len(), 30);
    assert_eq!(want["ev:m"].len(), 1);
    committed(&db, redis_port).await;
    // Rows a top-up brings come after the position.
    let mut stored = BTreeMap::new();
    for _ in 0..200 {
        let rows = db
            .query("SELECT key, id FROM replicast.stream_history", &[])
            .await
            .unwrap();
        stored = BTreeMap::<String, BTreeSet<String>>::new();
        for row in &rows {
            stored
                .entry(row.get(0))
                .or_default()
                .insert(row.get::<_, String>(1));
        }
        if stored == want && rows.len() == want.values().map(BTreeSet::len).sum::<usize>() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored, want, "every entry each key held, once");
    drop(sink);
}
