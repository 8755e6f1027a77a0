//! The sink's tests' shared parts (server/tests/sink*.rs): the relay and the sink binaries started as those tests
//! start them, the workloads' seeded randomness, and the waits for the sink to commit what Redis holds and to store
//! the rows a test expects.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::postgres::Postgres;
use super::{
    free_port, master_repl_offset, redis_conn, start_redis, start_until, Proc, ANSWER_TIMEOUT,
};

/// What most sink tests start first: PostgreSQL, a Redis, and a relay on a free port following it (given
/// `relay_args`), as `(pg, redis, redis_port, relay, relay_port)`. Each process lives as long as its value.
pub fn postgres_and_a_relay(relay_args: &[&str]) -> (Postgres, Proc, u16, Proc, u16) {
    let pg = Postgres::start();
    let (redis, redis_port) = start_redis();
    let relay_port = free_port();
    let relay = start_relay_on(relay_port, redis_port, relay_args);
    (pg, redis, redis_port, relay, relay_port)
}

/// The relay on a fixed `port` (so a restarted one is where the sink looks), following the Redis on `redis_port`.
pub fn start_relay_on(port: u16, redis_port: u16, extra: &[&str]) -> Proc {
    let mut command = Command::new(env!("CARGO_BIN_EXE_replicast"));
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--redis-url", &format!("redis://127.0.0.1:{redis_port}")])
        .args(["--allow", "perf:*,ev:*,cfg:*"])
        .args(extra)
        .env("RUST_LOG", "warn");
    start_until(&mut command, "Replicast is live at ").0
}

/// The sink following the relay on `relay_port` into `database` (creating its schema), batches of 50 ms, its log as
/// `SINK_LOG` says (warnings by default): the patterns are the caller's to add.
pub fn sink_command(relay_port: u16, database: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_replicast"));
    command
        .args([
            "sink",
            "--relay",
            &format!("ws://127.0.0.1:{relay_port}/ws"),
        ])
        .args(["--database", database, "--create-schema"])
        .args(["--batch-ms", "50"])
        .env(
            "RUST_LOG",
            std::env::var("SINK_LOG").unwrap_or_else(|_| "warn".into()),
        );
    command
}

/// [`sink_command`] with the tests' patterns (history `perf:*,ev:*`, mirror `cfg:*`) and `extra`, started.
pub fn start_sink(relay_port: u16, database: &str, extra: &[&str]) -> Proc {
    let mut command = sink_command(relay_port, database);
    command
        .args(["--history", "perf:*,ev:*", "--mirror", "cfg:*"])
        .args(extra);
    start_until(&mut command, "Sink following").0
}

/// SplitMix64: the workload's and the faults' randomness, the same for a seed.
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from `SINK_SEED` (23 when unset), which it prints, saying what the seed picks (`what`), so a failing
    /// run can be repeated.
    pub fn from_env(what: &str) -> Rng {
        let seed = std::env::var("SINK_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(23);
        eprintln!("{what} from seed {seed} (SINK_SEED)");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Waits until the sink has committed the stream up to what the node on `port` has (its replication offset).
pub async fn committed(pg: &tokio_postgres::Client, port: u16) {
    let mut conn = redis_conn(port).await;
    let target = master_repl_offset(&mut conn).await;
    for _ in 0..1200 {
        let at: Option<i64> = pg
            .query_one("SELECT max(\"offset\") FROM replicast.position", &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(None);
        if at.is_some_and(|at| at as u64 >= target) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the sink never committed offset {target}");
}

/// The rows `sql` selects with `params`, each read by `row`, once there are `want` of them (a top-up's answer may
/// commit after the sink's position reached the stream's end); the test fails, naming `what` and what was selected,
/// if they do not come within [`ANSWER_TIMEOUT`].
pub async fn rows_within<T: std::fmt::Debug>(
    db: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    want: usize,
    what: &str,
    row: impl Fn(&tokio_postgres::Row) -> T,
) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
    loop {
        let rows: Vec<T> = db
            .query(sql, params)
            .await
            .unwrap()
            .iter()
            .map(&row)
            .collect();
        if rows.len() >= want {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{want} rows of {what} never stored (waited {ANSWER_TIMEOUT:?}): {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The scores of `key`'s rows of `replicast.zset_history`, lowest first, once there are `want` of them
/// ([`rows_within`]).
pub async fn stored_scores(db: &tokio_postgres::Client, key: &str, want: usize) -> Vec<u64> {
    rows_within(
        db,
        "SELECT score FROM replicast.zset_history WHERE key = $1 ORDER BY score",
        &[&key],
        want,
        key,
        |r| r.get::<_, f64>(0) as u64,
    )
    .await
}

/// Every mirror table equals what Redis holds under `cfg:*`, key by key, each key exact: once the top-ups the
/// sink asked for are written (they come after the position the sink committed, within seconds).
pub async fn assert_all_mirrors(pg: &tokio_postgres::Client, redis: &mut MultiplexedConnection) {
    assert_mirrors_are(pg, redis, Sets::Exact).await;
}

/// What the mirror must hold of a set.
#[derive(Clone, Copy, PartialEq)]
pub enum Sets {
    /// Its members, exact.
    Exact,
    /// Its row, marked inexact (`exact = false`), whatever members: the sink could not know them (a set a `SWAPDB`
    /// brought in, docs/SINK.md).
    Inexact,
}

/// Every mirror table equals what Redis holds under `cfg:*`, each set as `sets` says, every other key exact: once
/// the top-ups the sink asked for are written (waiting up to twice [`ANSWER_TIMEOUT`]).
pub async fn assert_mirrors_are(
    pg: &tokio_postgres::Client,
    redis: &mut MultiplexedConnection,
    sets: Sets,
) {
    let deadline = tokio::time::Instant::now() + 2 * ANSWER_TIMEOUT;
    loop {
        let differ = mirror_differences(pg, redis, sets).await;
        if differ.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "every mirrored key equals Redis (kind, exact, value), {} differ:\n{}",
            differ.len(),
            differ
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The mirrored keys whose rows differ from what Redis holds (no writes meanwhile), one line each.
async fn mirror_differences(
    pg: &tokio_postgres::Client,
    redis: &mut MultiplexedConnection,
    sets: Sets,
) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("cfg:*")
        .query_async(redis)
        .await
        .unwrap();
    keys.sort();
    let mut want: BTreeMap<String, (String, bool, String)> = BTreeMap::new();
    for key in &keys {
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(redis)
            .await
            .unwrap();
        let value = match kind.as_str() {
            "hash" => {
                let v: BTreeMap<String, String> = redis::cmd("HGETALL")
                    .arg(key)
                    .query_async(redis)
                    .await
                    .unwrap();
                format!("{v:?}")
            }
            "set" if sets == Sets::Inexact => {
                want.insert(key.clone(), (kind, false, String::new()));
                continue;
            }
            "set" => {
                let v: BTreeSet<String> = redis::cmd("SMEMBERS")
                    .arg(key)
                    .query_async(redis)
                    .await
                    .unwrap();
                format!("{v:?}")
            }
            "list" => {
                let v: Vec<String> = redis::cmd("LRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .query_async(redis)
                    .await
                    .unwrap();
                format!("{v:?}")
            }
            _ => {
                let v: String = redis::cmd("GET").arg(key).query_async(redis).await.unwrap();
                format!("{v:?}")
            }
        };
        want.insert(key.clone(), (kind, true, value));
    }
    let mut have: BTreeMap<String, (String, bool, String)> = BTreeMap::new();
    for row in pg
        .query("SELECT key, type, exact FROM replicast.mirror_key", &[])
        .await
        .unwrap()
    {
        let (key, kind, exact): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
        let value = match kind.as_str() {
            "hash" => {
                let v: BTreeMap<String, String> = pg
                    .query(
                        "SELECT field, value FROM replicast.mirror_hash WHERE key = $1",
                        &[&key],
                    )
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                format!("{v:?}")
            }
            "set" if sets == Sets::Inexact => String::new(),
            "set" => {
                let v: BTreeSet<String> = pg
                    .query(
                        "SELECT member FROM replicast.mirror_set WHERE key = $1",
                        &[&key],
                    )
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                format!("{v:?}")
            }
            "list" => {
                let v: Vec<String> = pg
                    .query(
                        "SELECT item FROM replicast.mirror_list WHERE key = $1 ORDER BY position",
                        &[&key],
                    )
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                format!("{v:?}")
            }
            _ => {
                // Read apart from the key's row: a write between the two may have removed it.
                let v: Option<String> = pg
                    .query_opt(
                        "SELECT value FROM replicast.mirror_string WHERE key = $1",
                        &[&key],
                    )
                    .await
                    .unwrap()
                    .map(|r| r.get(0));
                format!("{:?}", v.unwrap_or_default())
            }
        };
        have.insert(key, (kind, exact, value));
    }
    want.keys()
        .chain(have.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|key| want.get(*key) != have.get(*key))
        .map(|key| {
            format!(
                "{key}: Redis {:?}, mirror {:?}",
                want.get(key),
                have.get(key)
            )
        })
        .collect()
}
