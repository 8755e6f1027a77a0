//! A sink SIGKILLed and restarted, several times, while history keys are written with every command whose history
//! depends on what the key holds: `ZINCRBY`, `ZADD` with `INCR`/`NX`/`XX`/`GT`/`LT`/`CH`, members removed and added
//! again (`ZREM`, `ZREMRANGEBY*`, `ZPOPMIN`), `ZUNIONSTORE`/`ZINTERSTORE`/`ZRANGESTORE` into a history key, `RENAME`,
//! `DEL`, `PEXPIRE` (TTLs of a few ms, which run out among the restarts and while the sink is away, Redis propagating
//! the key's deletion, and of an hour, which do not), and a stream trimmed (`XADD … MAXLEN`, `XDEL`, `XTRIM`). The
//! history then holds every member and entry the workload wrote, each once, with the score Redis gave it (read from
//! each command's reply): a restarted sink resumes by `(epoch, offset)` without the stopped one's windows, and must
//! neither make up a score (an increment read as the whole score) nor miss one (a `ZADD XX` taken for a no-op).
//!
//! Real parts: redis-server, the relay binary, the sink binary, PostgreSQL from `initdb`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use support::postgres::Postgres;
use support::sink::{
    assert_mirrors_are, committed, postgres_and_a_relay, rows_within, start_relay_on, start_sink,
    stored_scores, Rng, Sets,
};
use support::{
    free_port, master_repl_offset, metric, promote, redis_conn, redis_conn_url, replica_at,
    start_redis, start_redis_with, state_reaches, within, Proc, ANSWER_TIMEOUT,
};

/// Sorted sets the workload writes; `perf:u` is also where the `…STORE` commands store, `perf:r` where `RENAME`
/// moves a set.
const ZSETS: [&str; 4] = ["perf:z0", "perf:z1", "perf:z2", "perf:u"];
const STORE: &str = "perf:u";
const RENAMED: &str = "perf:r";
const STREAM: &str = "ev:s0";
/// Members per set: few enough that every member is written again and again, by every kind of command.
const MEMBERS: u64 = 6;

/// What the workload wrote, by Redis's replies.
#[derive(Default)]
struct Written {
    /// Every (score, member) a sorted set was given, by key.
    zsets: BTreeMap<String, BTreeSet<(u64, String)>>,
    /// Every stream entry: (id, fields as JSON).
    stream: BTreeSet<(String, String)>,
    /// Ids of the stream's entries, for `XDEL`.
    ids: Vec<String>,
    time: u64,
}

impl Written {
    fn zset(&mut self, key: &str, score: f64, member: &str) {
        assert!(
            score.fract() == 0.0 && score >= 0.0,
            "the workload's scores are whole ms: {score}"
        );
        self.zsets
            .entry(key.to_string())
            .or_default()
            .insert((score as u64, member.to_string()));
    }
}

/// Names every set by a `ZINCRBY` (creating those that do not exist), so that each has a window stored with the
/// sink's next position: a key without one (never named by a command whose history depends on its state) is read
/// by a top-up after a restart, when Redis holds what was written while the sink was away (the limit docs/SINK.md
/// gives). A key deleted since, or whose TTL runs out before the kill, keeps its window, as absent.
async fn name_every_set(conn: &mut MultiplexedConnection, written: &mut Written) {
    for key in ZSETS {
        written.time += 1;
        let m = r#"{"m":0}"#;
        let score: f64 = redis::cmd("ZINCRBY")
            .arg(key)
            .arg(written.time)
            .arg(m)
            .query_async(conn)
            .await
            .unwrap();
        written.zset(key, score, m);
    }
}

/// A plain `ZADD`, which deletes no key: written while the sink reads, before it is killed.
async fn write_plain(conn: &mut MultiplexedConnection, rng: &mut Rng, written: &mut Written) {
    written.time += 1 + rng.below(1000);
    let key = ZSETS[rng.below(ZSETS.len() as u64) as usize];
    let m = member(rng);
    let _: () = redis::cmd("ZADD")
        .arg(key)
        .arg(written.time)
        .arg(&m)
        .query_async(conn)
        .await
        .unwrap();
    written.zset(key, written.time as f64, &m);
}

fn member(rng: &mut Rng) -> String {
    format!(r#"{{"m":{}}}"#, rng.below(MEMBERS))
}

/// A score near the workload's clock, above or below it.
fn near(rng: &mut Rng, written: &Written) -> u64 {
    written.time - 3000 + rng.below(6000)
}

/// What a `…STORE` or a `RENAME` left in its destination, and where the stream was just after it.
struct Stored {
    key: String,
    /// Members with their scores.
    members: Vec<(String, f64)>,
    /// Redis's replication offset after the command.
    offset: u64,
}

/// One write; `stores`: whether commands whose rows may come from a top-up (`…STORE`, and `RENAME` of a key the
/// restarted sink may not have read yet) may be sent, the sink being up to read them. Returns what such a command
/// left, to wait for the sink to have read it.
async fn write_one(
    conn: &mut MultiplexedConnection,
    rng: &mut Rng,
    written: &mut Written,
    stores: bool,
) -> Option<Stored> {
    written.time += 1 + rng.below(1000);
    let t = written.time;
    let key = ZSETS[rng.below(ZSETS.len() as u64) as usize];
    let m = member(rng);
    match rng.below(16) {
        0..=2 => {
            let _: () = redis::cmd("ZADD")
                .arg(key)
                .arg(t)
                .arg(&m)
                .query_async(conn)
                .await
                .unwrap();
            written.zset(key, t as f64, &m);
        }
        3 => {
            let score: f64 = redis::cmd("ZINCRBY")
                .arg(key)
                .arg(1 + rng.below(500))
                .arg(&m)
                .query_async(conn)
                .await
                .unwrap();
            written.zset(key, score, &m);
        }
        4 => {
            let score: f64 = redis::cmd("ZADD")
                .arg(key)
                .arg("INCR")
                .arg(1 + rng.below(500))
                .arg(&m)
                .query_async(conn)
                .await
                .unwrap();
            written.zset(key, score, &m);
        }
        5 | 6 => {
            // NX, XX, GT or LT (with CH, so that the reply says whether the member got the score).
            let flag = ["NX", "XX", "GT", "LT"][rng.below(4) as usize];
            let score = near(rng, written);
            let changed: u64 = redis::cmd("ZADD")
                .arg(key)
                .arg(flag)
                .arg("CH")
                .arg(score)
                .arg(&m)
                .query_async(conn)
                .await
                .unwrap();
            if changed == 1 {
                written.zset(key, score as f64, &m);
            }
        }
        7 => {
            let _: u64 = redis::cmd("ZREM")
                .arg(key)
                .arg(&m)
                .query_async(conn)
                .await
                .unwrap();
        }
        8 => {
            let mut cmd;
            match rng.below(3) {
                0 => {
                    cmd = redis::cmd("ZREMRANGEBYRANK");
                    cmd.arg(key).arg(0).arg(-4);
                }
                1 => {
                    cmd = redis::cmd("ZPOPMIN");
                    cmd.arg(key).arg(1 + rng.below(2));
                }
                _ => {
                    cmd = redis::cmd("ZREMRANGEBYSCORE");
                    cmd.arg(key).arg("-inf").arg(near(rng, written));
                }
            }
            let _: redis::Value = cmd.query_async(conn).await.unwrap();
        }
        9 => {
            let _: u64 = if rng.below(2) == 0 {
                redis::cmd("DEL").arg(key).query_async(conn).await.unwrap()
            } else {
                // A TTL (propagated as PEXPIREAT): one of a few ms runs out among the restarts, and Redis
                // propagates the key's deletion (a RENAME carries it to the destination); one of an hour does not.
                let ttl = if rng.below(2) == 0 {
                    1 + rng.below(20)
                } else {
                    3_600_000 + rng.below(20)
                };
                redis::cmd("PEXPIRE")
                    .arg(key)
                    .arg(ttl)
                    .query_async(conn)
                    .await
                    .unwrap()
            };
        }
        10 if stores => {
            let (a, b) = (ZSETS[rng.below(3) as usize], ZSETS[rng.below(3) as usize]);
            let (stop, which) = (-1 - rng.below(3) as i64, rng.below(3) as usize);
            let names = [
                ("ZUNION", "ZUNIONSTORE"),
                ("ZINTER", "ZINTERSTORE"),
                ("ZRANGE", "ZRANGESTORE"),
            ];
            let (mut read, mut stored) = (redis::cmd(names[which].0), redis::cmd(names[which].1));
            stored.arg(STORE);
            for cmd in [&mut read, &mut stored] {
                match which {
                    0 | 1 => cmd.arg(2).arg(a).arg(b),
                    _ => cmd.arg(a).arg(0).arg(stop),
                };
            }
            // An empty result deletes the destination, which no history row shows: only stores that write.
            let result: Vec<String> = read.query_async(conn).await.unwrap();
            if result.is_empty() {
                return None;
            }
            let (_, members): (u64, Vec<(String, f64)>) = redis::pipe()
                .atomic()
                .add_command(stored)
                .cmd("ZRANGE")
                .arg(STORE)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(conn)
                .await
                .unwrap();
            for (m, score) in &members {
                written.zset(STORE, *score, m);
            }
            return Some(Stored {
                key: STORE.to_string(),
                members,
                offset: master_repl_offset(conn).await,
            });
        }
        11 if stores => {
            let src = ZSETS[rng.below(3) as usize];
            let (members, _): (Vec<(String, f64)>, redis::Value) = redis::pipe()
                .atomic()
                .cmd("ZRANGE")
                .arg(src)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .cmd("EVAL")
                .arg("if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('RENAME', KEYS[1], KEYS[2]) end")
                .arg(2)
                .arg(src)
                .arg(RENAMED)
                .query_async(conn)
                .await
                .unwrap();
            for (m, score) in &members {
                written.zset(RENAMED, *score, m);
            }
            if members.is_empty() {
                return None;
            }
            return Some(Stored {
                key: RENAMED.to_string(),
                members,
                offset: master_repl_offset(conn).await,
            });
        }
        12..=13 => {
            let value = rng.below(1000).to_string();
            let id: String = redis::cmd("XADD")
                .arg(STREAM)
                .arg("MAXLEN")
                .arg(5)
                .arg("*")
                .arg("v")
                .arg(&value)
                .query_async(conn)
                .await
                .unwrap();
            written
                .stream
                .insert((id.clone(), serde_json::json!({ "v": value }).to_string()));
            written.ids.push(id);
        }
        14 if !written.ids.is_empty() => {
            let id = &written.ids[rng.below(written.ids.len() as u64) as usize];
            let _: u64 = redis::cmd("XDEL")
                .arg(STREAM)
                .arg(id)
                .query_async(conn)
                .await
                .unwrap();
        }
        15 => {
            let _: u64 = redis::cmd("XTRIM")
                .arg(STREAM)
                .arg("MAXLEN")
                .arg(rng.below(4))
                .query_async(conn)
                .await
                .unwrap();
        }
        _ => {}
    }
    None
}

/// The rows the history holds of `key`: (score, member as JSON text) and how many rows.
async fn zset_rows(pg: &tokio_postgres::Client, key: &str) -> (BTreeSet<(u64, String)>, usize) {
    let rows = pg
        .query(
            "SELECT score, value::text FROM replicast.zset_history WHERE key = $1",
            &[&key],
        )
        .await
        .unwrap();
    let stored = rows
        .iter()
        .map(|r| {
            let value: serde_json::Value = serde_json::from_str(r.get(1)).unwrap();
            (r.get::<_, f64>(0) as u64, value.to_string())
        })
        .collect();
    (stored, rows.len())
}

/// What the history lacks or holds besides what was written, key by key (empty when equal).
async fn history_differences(pg: &tokio_postgres::Client, written: &Written) -> Vec<String> {
    let mut differences = Vec::new();
    for (key, want) in &written.zsets {
        let (have, count) = zset_rows(pg, key).await;
        let want: BTreeSet<(u64, String)> = want
            .iter()
            .map(|(t, m)| {
                let m: serde_json::Value = serde_json::from_str(m).unwrap();
                (*t, m.to_string())
            })
            .collect();
        let missing: Vec<_> = want.difference(&have).take(5).collect();
        let extra: Vec<_> = have.difference(&want).take(5).collect();
        if !missing.is_empty() || !extra.is_empty() || count != have.len() {
            differences.push(format!(
                "{key}: {count} rows for {} written; missing {missing:?}, never written {extra:?}",
                want.len()
            ));
        }
    }
    let rows = pg
        .query(
            "SELECT id, fields::text FROM replicast.stream_history WHERE key = $1",
            &[&STREAM],
        )
        .await
        .unwrap();
    let stored: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| {
            let fields: serde_json::Value = serde_json::from_str(r.get(1)).unwrap();
            (r.get(0), fields.to_string())
        })
        .collect();
    if stored != written.stream || stored.len() != rows.len() {
        differences.push(format!(
            "{STREAM}: {} rows for {} entries written",
            rows.len(),
            written.stream.len()
        ));
    }
    differences
}

/// Whether Redis holds `key` (reading it deletes it if its TTL ran out).
async fn exists(conn: &mut MultiplexedConnection, key: &str) -> bool {
    let n: u64 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap();
    n == 1
}

/// Waits until the sink has read what a `…STORE` or `RENAME` left in its destination: it committed a position at or
/// after the command, with the window it stores for the key known and holding the members (no row: the result was
/// empty, the key does not exist). The window alone would not tell: the one stored before the command may hold the
/// same members (a `ZRANGESTORE` of a source that did not change since the last), and a sink killed before it read
/// the top-up asks it again after the restart, when Redis holds what was written since (the limit docs/SINK.md
/// gives). Nor would the rows: a member of the same score may be in the history already. A key whose TTL ran out
/// since (one a `RENAME` carried over) has no window once the sink read the `DEL` Redis propagated. Until then the
/// workload writes nothing; the rows are compared at the end.
async fn wait_stored(
    pg: &tokio_postgres::Client,
    conn: &mut MultiplexedConnection,
    stored: &Stored,
) {
    let Stored {
        key,
        members,
        offset,
    } = stored;
    // Compared in one order: the window's ties are in its own.
    let ordered = |mut list: Vec<(f64, String)>| {
        list.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        list
    };
    let json = |m: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(m)
            .unwrap()
            .to_string()
    };
    let want = ordered(
        members
            .iter()
            .map(|(m, score)| (*score, json(m.as_bytes())))
            .collect(),
    );
    let offset = *offset as i64;
    let mut stored = None;
    for _ in 0..1200 {
        // One statement, so one snapshot: the window as of the position read with it (no row: the key does not
        // exist).
        let row = pg
            .query_opt(
                "SELECT w.known, w.scores, w.members FROM
                   (SELECT max(\"offset\") >= $2 AS there FROM replicast.position) p
                   LEFT JOIN replicast.history_window w ON w.key = $1
                 WHERE p.there",
                &[key, &offset],
            )
            .await
            .unwrap();
        stored = row.and_then(|r| match r.get::<_, Option<bool>>(0) {
            None => Some(Vec::new()),
            Some(false) => None,
            Some(true) => {
                let scores: Vec<f64> = r.get(1);
                let members: Vec<Vec<u8>> = r.get(2);
                Some(ordered(
                    scores
                        .into_iter()
                        .zip(members.iter().map(|m| json(m)))
                        .collect(),
                ))
            }
        });
        // Expired since: no window, and Redis holds no key.
        if stored.as_ref() == Some(&want)
            || (stored.as_ref().is_some_and(Vec::is_empty) && !exists(conn, key).await)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        stored,
        Some(want),
        "the sink's window of {key}, committed with a position at or after {offset}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_is_exact_after_the_sink_is_killed_among_state_dependent_writes() {
    let mut rng = Rng::from_env("workload and kill points");
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(&[]);
    let mut conn = redis_conn(redis_port).await;
    let db = pg.client().await;
    let mut written = Written {
        time: 1_700_000_000_000,
        ..Default::default()
    };
    let mut sink = start_sink(relay_port, &pg.url(), &[]);
    name_every_set(&mut conn, &mut written).await;
    committed(&db, redis_port).await;
    for round in 0..4 {
        // The sink SIGKILLed at a random point of a burst, while it reads and writes (the last of it plain writes).
        for _ in 0..100 + rng.below(200) {
            if let Some(stored) = write_one(&mut conn, &mut rng, &mut written, true).await {
                wait_stored(&db, &mut conn, &stored).await;
            }
        }
        // Every set has a stored window again (a key deleted or emptied has none), then plain writes, which delete
        // nothing, while the sink reads them.
        name_every_set(&mut conn, &mut written).await;
        committed(&db, redis_port).await;
        for _ in 0..rng.below(40) {
            write_plain(&mut conn, &mut rng, &mut written).await;
        }
        drop(sink);
        // Written while the sink is away: the restarted one resumes before these.
        for _ in 0..rng.below(60) {
            write_one(&mut conn, &mut rng, &mut written, false).await;
        }
        sink = start_sink(relay_port, &pg.url(), &[]);
        eprintln!("round {round}: the sink restarted");
    }
    for _ in 0..200 {
        if let Some(stored) = write_one(&mut conn, &mut rng, &mut written, true).await {
            wait_stored(&db, &mut conn, &stored).await;
        }
    }
    committed(&db, redis_port).await;
    // Rows a top-up brings come after the position: wait for them, then compare.
    let mut differences = Vec::new();
    for _ in 0..200 {
        differences = history_differences(&db, &written).await;
        if differences.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        differences.is_empty(),
        "the history holds every member and entry written, each once:\n{}",
        differences.join("\n")
    );
    // Every key deleted, its stored window says so (kept, as absent: a restarted sink needs no top-up of a key
    // written again).
    let _: u64 = redis::cmd("DEL")
        .arg(&ZSETS)
        .arg(RENAMED)
        .query_async(&mut conn)
        .await
        .unwrap();
    committed(&db, redis_port).await;
    let rows = db
        .query(
            "SELECT key, known AND complete AND cardinality(members) = 0
             FROM replicast.history_window ORDER BY key",
            &[],
        )
        .await
        .unwrap();
    let stored: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let named: Vec<(String, bool)> = ZSETS.iter().map(|k| (k.to_string(), true)).collect();
    assert!(
        stored.iter().all(|(_, absent)| *absent) && named.iter().all(|k| stored.contains(k)),
        "every set the workload named stored as absent, and nothing else: {stored:?}"
    );
    // The workload keeps within the limit: no span of the history where a score may be missing.
    let spans: i64 = db
        .query_one("SELECT count(*) FROM replicast.inexact_span", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(spans, 0, "no span recorded by a workload within the limit");
    drop(sink);
}

/// The value of the counter `name` on the sink's `/metrics` at `addr`.
async fn counter(addr: &str, name: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{response}"))
        .to_string()
}

/// What a restarted sink made of `perf:n`, a key it holds no window of, whose member its catch-up increments twice
/// before the top-up's answer (its rows come from the top-up, answered after the catch-up).
struct CaughtUp {
    /// The scores Redis's replies gave, in order.
    scores: Vec<u64>,
    /// The stream's offsets before the first increment and after the second.
    before: u64,
    after: u64,
    /// The scores of the rows stored, in order.
    stored: Vec<u64>,
    /// The spans recorded: key, shard, from, to, epoch.
    spans: Vec<(String, i32, u64, u64, String)>,
    /// The epoch of the position stored.
    epoch: String,
    /// `replicast_sink_inexact_spans_total`, once the rows are in.
    spans_total: String,
}

impl CaughtUp {
    /// What the restarted sink listening on `listen` made of `perf:n` once it stored `rows` rows of it, with the
    /// increments' `scores`, `before` and `after`; the sink is stopped after.
    async fn read(
        db: &tokio_postgres::Client,
        listen: &str,
        sink: Proc,
        rows: usize,
        scores: Vec<u64>,
        before: u64,
        after: u64,
    ) -> CaughtUp {
        let stored = stored_scores(db, "perf:n", rows).await;
        let spans = spans(db).await;
        let epoch: String = db
            .query_one("SELECT epoch FROM replicast.position", &[])
            .await
            .unwrap()
            .get(0);
        let spans_total = spans_counted(listen, spans.len()).await;
        drop(sink);
        CaughtUp {
            scores,
            before,
            after,
            stored,
            spans,
            epoch,
            spans_total,
        }
    }

    /// Asserts that no span was recorded, none counted: the relay's past writes listed every write (`why`).
    fn no_span(&self, why: &str) {
        assert_eq!(self.spans, [], "no span: {why}");
        assert_eq!(self.spans_total, "0");
    }

    /// Asserts that one span of `perf:n` was recorded and counted, from the first increment (between `before` and
    /// `after`) to the answer (at or after `after`); its epoch.
    fn one_span(&self) -> &str {
        let [(key, shard, from, to, epoch)] = &self.spans[..] else {
            panic!("one span, of perf:n: {:?}", self.spans);
        };
        assert_eq!((key.as_str(), *shard), ("perf:n", 0));
        let (before, after) = (self.before, self.after);
        assert!(
            (before..after).contains(from) && *to >= after,
            "from the first ZINCRBY ({before}..{after}) to the answer (at or after {after}): {from}..{to}"
        );
        assert_eq!(self.spans_total, "1");
        epoch
    }
}

/// The spans `replicast.inexact_span` holds: key, shard, from, to, epoch.
async fn spans(db: &tokio_postgres::Client) -> Vec<(String, i32, u64, u64, String)> {
    db.query(
        "SELECT key, shard, from_offset, to_offset, epoch FROM replicast.inexact_span",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| {
        let (from, to): (i64, i64) = (r.get(2), r.get(3));
        (
            r.get::<_, String>(0),
            r.get::<_, i32>(1),
            from as u64,
            to as u64,
            r.get::<_, String>(4),
        )
    })
    .collect()
}

/// Waits until the sink listening on `listen` counts `spans` inexact spans on its `/metrics` (it counts a batch
/// after its transaction commits, so just after its rows are visible); the test fails, naming the count, if it
/// does not within [`ANSWER_TIMEOUT`].
async fn spans_counted(listen: &str, spans: usize) -> String {
    let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
    loop {
        let counted = counter(listen, "replicast_sink_inexact_spans_total").await;
        if counted == spans.to_string() {
            return counted;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replicast_sink_inexact_spans_total never reached the {spans} spans stored (waited \
             {ANSWER_TIMEOUT:?}): {counted}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sink stopped, `perf:n` incremented twice while it is away, the sink restarted (`--listen`): what it stored
/// once the catch-up and the top-up's answer are in (`rows` of `perf:n`, or a span).
async fn incremented_twice_during_the_catch_up(relay_args: &[&str], rows: usize) -> CaughtUp {
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(relay_args);
    let mut conn = redis_conn(redis_port).await;
    let db = pg.client().await;
    let sink = start_sink(relay_port, &pg.url(), &[]);
    let _: () = redis::cmd("ZADD")
        .arg("perf:other")
        .arg(1_700_000_000_000u64)
        .arg("{}")
        .query_async(&mut conn)
        .await
        .unwrap();
    committed(&db, redis_port).await;
    drop(sink);
    // While the sink is away: `perf:n` is named by no command it read, so it has no window stored.
    let before = master_repl_offset(&mut conn).await;
    let mut scores = Vec::new();
    for by in [1_700_000_000_000u64, 5] {
        let score: f64 = redis::cmd("ZINCRBY")
            .arg("perf:n")
            .arg(by)
            .arg(r#"{"m":0}"#)
            .query_async(&mut conn)
            .await
            .unwrap();
        scores.push(score as u64);
    }
    let after = master_repl_offset(&mut conn).await;
    let listen = format!("127.0.0.1:{}", free_port());
    let sink = start_sink(relay_port, &pg.url(), &["--listen", &listen]);
    committed(&db, redis_port).await;
    // The rows and the span (if any) commit in one transaction, with the answer.
    CaughtUp::read(&db, &listen, sink, rows, scores, before, after).await
}

/// A restarted sink whose catch-up increments a member of a key it holds no window of (its rows come from a
/// top-up, answered after the catch-up) and increments it again before the answer asks the top-up with the
/// offset of the first increment (`since`): the relay's state, whose ring of past writes covers it, lists both
/// scores before the answer. Every score is stored and no span recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_incremented_twice_before_a_restarted_sinks_top_up_is_answered_has_every_score() {
    let caught_up = incremented_twice_during_the_catch_up(&[], 2).await;
    assert_eq!(
        caught_up.stored, caught_up.scores,
        "every score, the one between too"
    );
    caught_up.no_span("the relay listed every write");
}

/// Past the limit, and said so: the same with a relay that keeps no past writes (`--state-history-bytes 0`, as
/// after its ring evicted them) cannot know the score between. The sink records the span of the stream where a
/// score may be missing — one row of `replicast.inexact_span`, from the first increment to the answer, counted on
/// `/metrics` — and stores the answer's score.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_incremented_twice_before_a_restarted_sinks_top_up_is_answered_by_a_relay_without_its_past_records_a_span(
) {
    let caught_up = incremented_twice_during_the_catch_up(&["--state-history-bytes", "0"], 1).await;
    // The offsets are those of the stream the sink follows: the epoch of its stored position.
    assert_eq!(caught_up.one_span(), caught_up.epoch);
    // The answer's score is stored; the one between is what the span says may be missing.
    assert_eq!(caught_up.stored, [caught_up.scores[1]]);
}

/// The sink stopped, `perf:n` (a key it holds no window of) incremented once on the primary, a failover — the
/// replica the relay follows promoted (`REPLICAOF NO ONE`: a new replication ID that continues the old one's offsets,
/// which the relay's link resumes with `+CONTINUE`, its state kept) and the old primary gone — and `perf:n`
/// incremented again on the promoted node; then the sink restarted (`--listen`), which resumes at its position of the
/// old ID, reads the first increment (its top-up pending from there: a span), the continuing hello and the second
/// (the span inexact), and the answer: what it stored (`rows` of `perf:n`, or a span).
async fn incremented_around_a_failover(relay_args: &[&str], rows: usize) -> CaughtUp {
    let pg = Postgres::start();
    let (primary, primary_port) = start_redis();
    let (_replica, replica_port) =
        start_redis_with(&["--replicaof", "127.0.0.1", &primary_port.to_string()]);
    let relay_port = free_port();
    let _relay = start_relay_on(relay_port, replica_port, relay_args);
    let ws_url = format!("ws://127.0.0.1:{relay_port}/ws");
    let mut conn = redis_conn(primary_port).await;
    let db = pg.client().await;
    let sink = start_sink(relay_port, &pg.url(), &[]);
    let _: () = redis::cmd("ZADD")
        .arg("perf:other")
        .arg(1_700_000_000_000u64)
        .arg("{}")
        .query_async(&mut conn)
        .await
        .unwrap();
    replica_at(replica_port, master_repl_offset(&mut conn).await).await;
    committed(&db, replica_port).await;
    drop(sink);
    let member = r#"{"m":0}"#;
    let before = master_repl_offset(&mut conn).await;
    let first: f64 = redis::cmd("ZINCRBY")
        .arg("perf:n")
        .arg(1_700_000_000_000u64)
        .arg(member)
        .query_async(&mut conn)
        .await
        .unwrap();
    replica_at(replica_port, master_repl_offset(&mut conn).await).await;
    let partial_syncs = metric(&ws_url, "replicast_link_partial_syncs_total").await;
    let mut promoted = promote(replica_port).await;
    drop(primary);
    let second: f64 = redis::cmd("ZINCRBY")
        .arg("perf:n")
        .arg(5)
        .arg(member)
        .query_async(&mut promoted)
        .await
        .unwrap();
    let after = master_repl_offset(&mut promoted).await;
    // The relay resumed the promoted node's stream (`+CONTINUE`, not a full sync, which would rebuild its state),
    // and its state holds both increments before the sink asks.
    state_reaches(&ws_url, after).await;
    assert!(
        metric(&ws_url, "replicast_link_partial_syncs_total").await > partial_syncs,
        "the relay resumed the promoted node with a partial resync"
    );
    assert_eq!(metric(&ws_url, "replicast_link_full_syncs_total").await, 1);
    let listen = format!("127.0.0.1:{}", free_port());
    let sink = start_sink(relay_port, &pg.url(), &["--listen", &listen]);
    committed(&db, replica_port).await;
    let scores = vec![first as u64, second as u64];
    CaughtUp::read(&db, &listen, sink, rows, scores, before, after).await
}

/// A failover inside a span ([`incremented_around_a_failover`]): the relay's state kept its ring of past writes
/// across the new replication ID, whose offsets continue the old one's, so the sink's `since`, an offset of the old
/// ID, is answered with both increments' scores. Both are stored, and no span is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_incremented_around_a_failover_before_the_answer_has_every_score() {
    let caught_up = incremented_around_a_failover(&[], 2).await;
    assert_eq!(
        caught_up.stored, caught_up.scores,
        "every score, the one before the failover too"
    );
    caught_up.no_span("the relay listed every write, across the failover");
}

/// The same with a relay that keeps no past writes (`--state-history-bytes 0`): one span recorded, from the first
/// increment (an offset of the old ID's, which the new one continues) to the answer, and the answer's score stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_incremented_around_a_failover_before_a_relay_without_its_past_answers_records_a_span(
) {
    let caught_up = incremented_around_a_failover(&["--state-history-bytes", "0"], 1).await;
    // From an offset of the old ID's, which the new one continues.
    caught_up.one_span();
    assert_eq!(caught_up.stored, [caught_up.scores[1]]);
}

/// A score given below the relay's window of a key (`--state-depth` 20, the key's 20 members all in it) to a member
/// not in it, a `ZADD NX` during a restarted sink's catch-up between two increments of a member in it, enters no
/// window: the relay's past message does not list it, and the key stays covered, so the span is closed, not recorded
/// (docs/SINK.md). The member has no row: below the sink's `--window` 20 newest at the answer too, the limit of any
/// top-up; both increments' scores are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_score_given_below_the_relays_window_is_not_listed_and_the_key_stays_covered() {
    const T: u64 = 1_700_000_000_000;
    let (pg, _redis, redis_port, _relay, relay_port) =
        postgres_and_a_relay(&["--state-depth", "20"]);
    let mut conn = redis_conn(redis_port).await;
    let db = pg.client().await;
    let sink = start_sink(relay_port, &pg.url(), &["--window", "20"]);
    for i in 1..=20u64 {
        let _: () = redis::cmd("ZADD")
            .arg("perf:n")
            .arg(T + i * 1000)
            .arg(format!(r#"{{"m":{i}}}"#))
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    committed(&db, redis_port).await;
    drop(sink);
    // While the sink is away: `perf:n` has no window stored (only plain `ZADD`s named it), so its first increment
    // opens a span, which the second makes inexact.
    let top = r#"{"m":20}"#;
    let (first, second): (f64, f64) = redis::pipe()
        .cmd("ZINCRBY")
        .arg("perf:n")
        .arg(100)
        .arg(top)
        .cmd("ZADD")
        .arg("perf:n")
        .arg("NX")
        .arg(T)
        .arg(r#"{"m":"low"}"#)
        .ignore()
        .cmd("ZINCRBY")
        .arg("perf:n")
        .arg(5)
        .arg(top)
        .query_async(&mut conn)
        .await
        .unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let sink = start_sink(
        relay_port,
        &pg.url(),
        &["--window", "20", "--listen", &listen],
    );
    committed(&db, redis_port).await;
    let stored = stored_scores(&db, "perf:n", 22).await;
    let spans = spans(&db).await;
    let spans_total = spans_counted(&listen, spans.len()).await;
    drop(sink);
    let mut expected: Vec<u64> = (1..=20).map(|i| T + i * 1000).collect();
    expected.extend([first as u64, second as u64]);
    assert_eq!(
        stored, expected,
        "the 20 members, both increments, no row of the member below the window"
    );
    assert_eq!(spans, [], "no span: the key stayed covered");
    assert_eq!(spans_total, "0");
}

/// A `ZADD NX` of a new member below the sink's history window of a key (20 members: the window holds the 16
/// highest, not the whole key), among the key's `--window` newest: the window reports nothing of it (it ends below
/// the window), so the sink asks the key's top-up, whose answer writes the member's row; no span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flagged_zadd_below_the_sinks_history_window_has_its_row() {
    const T: u64 = 1_700_000_000_000;
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(&[]);
    let mut conn = redis_conn(redis_port).await;
    let db = pg.client().await;
    let sink = start_sink(relay_port, &pg.url(), &[]);
    for i in 0..20u64 {
        let _: () = redis::cmd("ZADD")
            .arg("perf:a")
            .arg(T + i * 1000)
            .arg(format!(r#"{{"m":{i}}}"#))
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    committed(&db, redis_port).await;
    // Below the window's floor (`T + 4000`).
    let added: u64 = redis::cmd("ZADD")
        .arg("perf:a")
        .arg("NX")
        .arg(T + 2500)
        .arg(r#"{"m":"new"}"#)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(added, 1);
    committed(&db, redis_port).await;
    let stored = stored_scores(&db, "perf:a", 21).await;
    let spans = spans(&db).await;
    drop(sink);
    let mut expected: Vec<u64> = (0..20).map(|i| T + i * 1000).collect();
    expected.push(T + 2500);
    expected.sort_unstable();
    assert_eq!(
        stored, expected,
        "the 20 members and the one added below the window"
    );
    assert_eq!(spans, []);
}

/// What a restarted sink made of `ev:s`: a stream of 20 entries renamed into it during the sink's catch-up (the sink
/// holds no window of the source: the key is read by a top-up, which opens a span) and trimmed by an
/// `XADD … MAXLEN 5` before the answer (the span inexact), which comes after a later write to another key; with a
/// relay run with `relay_args`. Read once the answer's rows are in (`rows` of `ev:s`).
struct RenamedStream {
    /// The stream's offsets before the `RENAME` and after the trimming `XADD`, and at the answer.
    before: u64,
    trimmed: u64,
    answered: u64,
    /// Each row of `ev:s` (id, fields as JSON), in id order, and how many there are.
    stored: Vec<(String, String)>,
    spans: Vec<(String, i32, u64, u64, String)>,
    spans_total: String,
}

async fn a_stream_renamed_and_trimmed_during_the_catch_up(
    relay_args: &[&str],
    rows: usize,
) -> RenamedStream {
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(relay_args);
    let mut conn = redis_conn(redis_port).await;
    let db = pg.client().await;
    let sink = start_sink(relay_port, &pg.url(), &[]);
    for i in 1..=20u64 {
        let _: String = redis::cmd("XADD")
            .arg("ev:src")
            .arg(format!("{i}-1"))
            .arg("f")
            .arg(i)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    committed(&db, redis_port).await;
    drop(sink);
    let before = master_repl_offset(&mut conn).await;
    let ((), _, info): ((), String, String) = redis::pipe()
        .cmd("RENAME")
        .arg("ev:src")
        .arg("ev:s")
        .cmd("XADD")
        .arg("ev:s")
        .arg("MAXLEN")
        .arg(5)
        .arg("21-1")
        .arg("f")
        .arg(21)
        .cmd("INFO")
        .arg("replication")
        .query_async(&mut conn)
        .await
        .unwrap();
    let trimmed: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .and_then(|o| o.trim().parse().ok())
        .unwrap();
    // The stream moves on before the sink comes back: the answer is past the `XADD`.
    let _: () = redis::cmd("ZADD")
        .arg("perf:other")
        .arg(1_700_000_000_000u64)
        .arg("{}")
        .query_async(&mut conn)
        .await
        .unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let sink = start_sink(relay_port, &pg.url(), &["--listen", &listen]);
    committed(&db, redis_port).await;
    let answered = master_repl_offset(&mut conn).await;
    assert!(answered > trimmed);
    // The answer's rows (and the span, in their transaction) may commit after the position reached the stream's end.
    let stored: Vec<(String, String)> = rows_within(
        &db,
        "SELECT id, fields::text FROM replicast.stream_history WHERE key = 'ev:s'",
        &[],
        rows,
        "ev:s",
        |r| (r.get(0), r.get(1)),
    )
    .await;
    let mut stored: Vec<(String, String)> = stored
        .into_iter()
        .map(|(id, fields)| {
            let fields: serde_json::Value = serde_json::from_str(&fields).unwrap();
            (id, fields.to_string())
        })
        .collect();
    stored.sort_by_key(|(id, _)| {
        id.split_once('-')
            .and_then(|(ms, _)| ms.parse::<u64>().ok())
    });
    let spans = spans(&db).await;
    let spans_total = spans_counted(&listen, spans.len()).await;
    drop(sink);
    RenamedStream {
        before,
        trimmed,
        answered,
        stored,
        spans,
        spans_total,
    }
}

/// The entries `i-1` for each `i` of `ids`, with their field `f` = `i`, as stored.
fn entries(ids: std::ops::RangeInclusive<u64>) -> Vec<(String, String)> {
    ids.map(|i| {
        (
            format!("{i}-1"),
            serde_json::json!({ "f": i.to_string() }).to_string(),
        )
    })
    .collect()
}

/// The relay lists the stream's entries ([`a_stream_renamed_and_trimmed_during_the_catch_up`]): the 20 the `RENAME`
/// put in the key, and the trimming `XADD`'s, each with its whole id, from where its state started. The span is
/// exact: every entry is stored once, those the trim took before the answer too, and no span is recorded
/// (docs/SINK.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_renamed_into_a_pending_key_and_trimmed_before_the_answer_has_every_entry_once() {
    let renamed = a_stream_renamed_and_trimmed_during_the_catch_up(&[], 21).await;
    assert_eq!(
        renamed.stored,
        entries(1..=21),
        "each entry once, the 16 the trim took before the answer too"
    );
    assert_eq!(renamed.spans, [], "no span: the relay listed every entry");
    assert_eq!(renamed.spans_total, "0");
}

/// Past the limit, and said so: the same with a relay that keeps no past writes (`--state-history-bytes 0`) lists
/// nothing, and covers nothing: the span is recorded from the `RENAME` to the answer, and the rows are the answer's
/// five.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_renamed_into_a_pending_key_and_trimmed_before_a_relay_without_its_past_answers_records_a_span(
) {
    let renamed =
        a_stream_renamed_and_trimmed_during_the_catch_up(&["--state-history-bytes", "0"], 5).await;
    let RenamedStream {
        before,
        trimmed,
        answered,
        ..
    } = renamed;
    assert_eq!(renamed.stored, entries(17..=21), "the answer's entries");
    let [(key, shard, from, to, _)] = &renamed.spans[..] else {
        panic!("one span, of ev:s: {:?}", renamed.spans);
    };
    assert_eq!((key.as_str(), *shard), ("ev:s", 0));
    assert!(
        (before..trimmed).contains(from) && *to >= answered,
        "from the RENAME ({before}..{trimmed}) to the answer (at or after {answered}): {from}..{to}"
    );
    assert_eq!(renamed.spans_total, "1");
}

/// How long [`inexact_at_the_position`] pauses Redis: past every wait of the test, which fails (saying what it
/// waited for) before Redis answers again.
const REDIS_PAUSED: Duration = Duration::from_secs(2 * ANSWER_TIMEOUT.as_secs());

/// What a sink restarted while `perf:n`'s span was open and already inexact at its position made of it, answered
/// before any write after the resume, by a relay run with `relay_args` (once the rows are in: `rows` of them, or
/// a span).
///
/// The stopped sink follows a `--stateless` relay, which reads a top-up from Redis: `perf:n` holds 20 members (its
/// history window the 16 highest), and a member below them is incremented twice, which the stopped sink reads (its
/// rows come from a top-up, pending after the first increment, and the second makes the span inexact) while Redis
/// answers no client (`CLIENT PAUSE`): the relay cannot read the top-up, and the sink commits a position past both
/// increments with the key's window stored as unknown and its span inexact. It is killed there, and restarted on a
/// second relay that followed the same Redis all along (same epoch and offsets), which answers from its state.
async fn inexact_at_the_position(relay_args: &[&str], rows: usize) -> CaughtUp {
    let pg = Postgres::start();
    let (_redis, redis_port) = start_redis();
    let (stateless_port, relay_port) = (free_port(), free_port());
    let _stateless = start_relay_on(stateless_port, redis_port, &["--stateless"]);
    let _relay = start_relay_on(relay_port, redis_port, relay_args);
    let mut conn = redis_conn(redis_port).await;
    let db = pg.client().await;
    let sink = start_sink(stateless_port, &pg.url(), &[]);
    let low = r#"{"m":0}"#;
    for i in 0..20u64 {
        let member = if i == 0 {
            low.to_string()
        } else {
            format!(r#"{{"m":{i}}}"#)
        };
        let _: () = redis::cmd("ZADD")
            .arg("perf:n")
            .arg(1_700_000_000_000u64 + i * 1000)
            .arg(member)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    committed(&db, redis_port).await;
    let before = master_repl_offset(&mut conn).await;
    // Both increments and the pause in one round trip: the stopped sink's top-up reaches Redis after the pause,
    // which outlasts every wait of the test. Redis runs no client's command while paused (`ALL`), `CLIENT UNPAUSE`
    // included: the pause is never lifted, and nothing after it asks Redis (the second relay answers from its
    // state; the relay's own read of the top-up times out and is logged); the test's Redis is killed at its end.
    let (first, second, after, ()): (f64, f64, String, ()) = redis::pipe()
        .cmd("ZINCRBY")
        .arg("perf:n")
        .arg(100)
        .arg(low)
        .cmd("ZINCRBY")
        .arg("perf:n")
        .arg(200)
        .arg(low)
        .cmd("INFO")
        .arg("replication")
        .cmd("CLIENT")
        .arg("PAUSE")
        .arg(REDIS_PAUSED.as_millis() as u64)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    let after: u64 = after
        .lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .and_then(|o| o.trim().parse().ok())
        .unwrap();
    // The stopped sink's last position: past both increments, the key unknown, its span from the first and
    // inexact.
    let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
    let (span_from, inexact) = loop {
        let stored = db
            .query_opt(
                "SELECT w.span_from, w.span_inexact FROM replicast.history_window w, replicast.position p
                 WHERE w.key = 'perf:n' AND NOT w.known AND p.\"offset\" >= $1",
                &[&(after as i64)],
            )
            .await
            .unwrap()
            .map(|r| (r.get::<_, Option<i64>>(0), r.get::<_, bool>(1)));
        if let Some(stored) = stored {
            break stored;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stopped sink never committed a position past {after} with perf:n stored as unknown (waited \
             {ANSWER_TIMEOUT:?}, Redis paused)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (Some(span_from), true) = (span_from, inexact) else {
        panic!("perf:n stored as unknown at a position past {after} with no inexact span: {span_from:?}, {inexact}");
    };
    assert!((before..after).contains(&(span_from as u64)), "{span_from}");
    drop(sink);
    // No write after the resume.
    let listen = format!("127.0.0.1:{}", free_port());
    let sink = start_sink(relay_port, &pg.url(), &["--listen", &listen]);
    let scores = vec![first as u64, second as u64];
    CaughtUp::read(&db, &listen, sink, rows, scores, before, after).await
}

/// A sink restarted while a key's span was open and already inexact at its position (both increments before it),
/// the key answered before any write after the resume: it asks the top-up with the span's start as `since`, and
/// the relay's ring lists both scores. Every score is stored (the 20 members' and both increments') and no span
/// recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_inexact_at_the_position_is_closed_by_the_relays_past_writes() {
    let caught_up = inexact_at_the_position(&[], 22).await;
    let [first, second] = caught_up.scores[..] else {
        unreachable!()
    };
    assert!(
        caught_up.stored.contains(&first) && caught_up.stored.contains(&second),
        "both increments' scores ({first}, {second}) stored: {:?}",
        caught_up.stored
    );
    assert_eq!(caught_up.stored.len(), 22);
    caught_up.no_span("the relay listed every write");
}

/// The same with a relay that keeps no past writes (`--state-history-bytes 0`): the span is recorded, from the
/// first increment (before the position: the start stored with the window) to the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_inexact_at_the_position_is_recorded_from_its_start_by_a_relay_without_its_past() {
    let caught_up = inexact_at_the_position(&["--state-history-bytes", "0"], 21).await;
    // From the first increment, before the position, in the epoch of the position.
    assert_eq!(caught_up.one_span(), caught_up.epoch);
    let (stored, scores) = (&caught_up.stored, &caught_up.scores);
    assert!(
        stored.contains(&scores[1]) && !stored.contains(&scores[0]),
        "the answer's score, not the one between: {stored:?}"
    );
}

/// A sink following the relay at `relay_port` into `pg`, its HTTP endpoint on a free port: the endpoint's address
/// and the sink.
fn listening_sink(relay_port: u16, pg: &Postgres) -> (String, Proc) {
    let listen = format!("127.0.0.1:{}", free_port());
    let sink = start_sink(relay_port, &pg.url(), &["--listen", &listen]);
    (listen, sink)
}

/// Runs `words` (a command and its arguments) on `conn`.
async fn run(conn: &mut MultiplexedConnection, words: &[&str]) {
    let mut cmd = redis::cmd(words[0]);
    for w in &words[1..] {
        cmd.arg(*w);
    }
    let _: redis::Value = cmd.query_async(conn).await.unwrap();
}

/// What a sink made of `perf:n` (`m` at a time T) when the relay withheld from it a `MULTI` block that gave `m` T + 5
/// (a `ZUNIONSTORE` reading `secret:x`, outside `--allow`) and deleted a key no top-up can name (`perf:` and 1,100
/// bytes): the block's stale keys cannot all be named, so they come as one stale message for every window, at the
/// `MULTI`'s start. With `written_again`, `ZINCRBY perf:n 1 m` (T + 6) follows in the same pipeline, so Redis runs it
/// before the relay can read the key's top-up. Read once `rows` rows of `perf:n` are stored (the answer's commit
/// holds its span, if any).
async fn withheld_for_every_window(written_again: bool, rows: usize) -> CaughtUp {
    const T: u64 = 1_700_000_000_000;
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(&[]);
    let mut conn = redis_conn(redis_port).await;
    let db = pg.client().await;
    let (listen, sink) = listening_sink(relay_port, &pg);
    let _: () = redis::pipe()
        .cmd("ZADD")
        .arg("secret:x")
        .arg(5)
        .arg("m")
        .cmd("SET")
        .arg("secret:y")
        .arg(1)
        .cmd("ZADD")
        .arg("perf:n")
        .arg(T)
        .arg("m")
        .query_async(&mut conn)
        .await
        .unwrap();
    committed(&db, redis_port).await;
    let before = master_repl_offset(&mut conn).await;
    let unnamable = format!("perf:{}", "x".repeat(1100));
    let mut pipe = redis::pipe();
    pipe.cmd("MULTI")
        .cmd("ZUNIONSTORE")
        .arg("perf:n")
        .arg(2)
        .arg("perf:n")
        .arg("secret:x")
        .cmd("DEL")
        .arg("secret:y")
        .arg(&unnamable)
        .cmd("EXEC");
    if written_again {
        pipe.cmd("ZINCRBY").arg("perf:n").arg(1).arg("m");
    }
    let _: redis::Value = pipe.query_async(&mut conn).await.unwrap();
    let after = master_repl_offset(&mut conn).await;
    let mut scores = vec![T, T + 5];
    if written_again {
        scores.push(T + 6);
    }
    committed(&db, redis_port).await;
    CaughtUp::read(&db, &listen, sink, rows, scores, before, after).await
}

/// The spans of a [`withheld_for_every_window`] of `perf:*` and `ev:*`, the sink's `--history` patterns, recorded
/// at once at the stale message's offset, between `before` and `after`: that offset.
fn patterns_recorded(caught_up: &CaughtUp) -> u64 {
    let marks: Vec<_> = caught_up
        .spans
        .iter()
        .filter(|(key, ..)| key.ends_with('*'))
        .collect();
    let [(a, 0, at, to, _), (b, 0, at_too, _, _)] = marks[..] else {
        panic!("one span per --history pattern: {:?}", caught_up.spans);
    };
    let mut patterns = [a.as_str(), b.as_str()];
    patterns.sort_unstable();
    assert_eq!(patterns, ["ev:*", "perf:*"]);
    assert!(at == to && at == at_too, "{:?}", caught_up.spans);
    assert!((caught_up.before..=caught_up.after).contains(at));
    *at
}

/// Issue 23 item 1 end to end: a member a command withheld for every window gave a score has it stored, read by the
/// top-up of `perf:n` the stale message asks. Nothing of `perf:n` is recorded; the keys the command may have made
/// (which the sink holds no window of) are, as its `--history` patterns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_score_a_command_withheld_for_every_window_gave_is_read_by_a_top_up() {
    let caught_up = withheld_for_every_window(false, 2).await;
    assert_eq!(
        caught_up.stored, caught_up.scores,
        "T, and T + 5 from the answer"
    );
    patterns_recorded(&caught_up);
    assert_eq!(caught_up.spans.len(), 2, "{:?}", caught_up.spans);
    assert_eq!(caught_up.spans_total, "2");
}

/// The same with `m` incremented before the answer: the score the withheld command gave (T + 5) is in neither the
/// stream nor the answer, and the relay's past writes cannot list it (its state, which a command withheld for every
/// window makes unknown, read the top-up from Redis). The span of `perf:n` is recorded, from the stale message to
/// the answer; with the old sink nothing was (the silent case docs/SINK.md named).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_score_a_command_withheld_for_every_window_gave_and_replaced_before_the_answer_records_a_span(
) {
    let caught_up = withheld_for_every_window(true, 2).await;
    let (stored, scores) = (&caught_up.stored, &caught_up.scores);
    assert_eq!(
        stored[..],
        [scores[0], scores[2]],
        "T and the answer's T + 6"
    );
    let spans: Vec<_> = caught_up
        .spans
        .iter()
        .filter(|(key, ..)| key == "perf:n")
        .collect();
    let [(_, 0, from, to, epoch)] = spans[..] else {
        panic!("one span of perf:n: {:?}", caught_up.spans);
    };
    assert_eq!(
        *from,
        patterns_recorded(&caught_up),
        "from the stale message"
    );
    assert!(*to >= caught_up.after, "to the answer: {to}");
    assert_eq!(epoch, &caught_up.epoch);
    assert_eq!(caught_up.spans.len(), 3);
    assert_eq!(caught_up.spans_total, "3");
}

/// Issue 23 item 1 end to end: a `MULTI` block whose withheld command (a `ZUNIONSTORE` reading `secret:x`,
/// outside `--allow`) gives `perf:n`'s `m` T + 5 before the block's visible `ZINCRBY perf:n 1 m` (T + 6). The
/// block's stale keys come before it, at its `MULTI`'s start, so the increment reaches a key already unknown: its
/// row is the answer's T + 6, and the span of `perf:n` (the T + 5 no one can read) is recorded from the block to
/// the answer. With the stale keys after the `EXEC`, the sink stored T + 1, a score Redis never held, and recorded
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_that_increments_what_its_withheld_command_wrote_records_a_span() {
    const T: u64 = 1_700_000_000_000;
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(&[]);
    let mut conn = redis_conn(redis_port).await;
    let db = pg.client().await;
    let (listen, sink) = listening_sink(relay_port, &pg);
    let _: () = redis::pipe()
        .cmd("ZADD")
        .arg("secret:x")
        .arg(5)
        .arg("m")
        .cmd("ZADD")
        .arg("perf:n")
        .arg(T)
        .arg("m")
        .query_async(&mut conn)
        .await
        .unwrap();
    committed(&db, redis_port).await;
    let before = master_repl_offset(&mut conn).await;
    let _: redis::Value = redis::pipe()
        .atomic()
        .cmd("ZUNIONSTORE")
        .arg("perf:n")
        .arg(2)
        .arg("perf:n")
        .arg("secret:x")
        .cmd("ZINCRBY")
        .arg("perf:n")
        .arg(1)
        .arg("m")
        .query_async(&mut conn)
        .await
        .unwrap();
    let after = master_repl_offset(&mut conn).await;
    committed(&db, redis_port).await;
    let caught_up =
        CaughtUp::read(&db, &listen, sink, 2, vec![T, T + 5, T + 6], before, after).await;
    assert_eq!(
        caught_up.stored,
        [T, T + 6],
        "T and the answer's T + 6, never T + 1"
    );
    let [(key, 0, from, to, epoch)] = &caught_up.spans[..] else {
        panic!("one span, of perf:n: {:?}", caught_up.spans);
    };
    assert_eq!(key, "perf:n");
    assert!(
        (before..after).contains(from),
        "from the block's MULTI, at or after {before}: {from}"
    );
    assert!(*to >= after, "to the answer: {to}");
    assert_eq!(epoch, &caught_up.epoch);
    assert_eq!(caught_up.spans_total, "1");
}

/// Issue 23 item 2 end to end: `SWAPDB 0 1` brings `perf:c` and `perf:d` (each with `m` at 7) into the watched
/// database. The first increment after it (of `perf:c`) asks a top-up; with the history waiting for a full snapshot
/// after the swap, that answer ended the wait with every key it did not name taken for absent, and the next
/// increment (of `perf:d`) was stored as the whole score, 1. The swap is now a stale message for every window to the
/// history: `perf:d` is read before its increment, and its row is Redis's 8; the keys the swap may have made are
/// recorded as the `--history` patterns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_increment_after_a_swapdb_stores_the_score_redis_holds() {
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(&[]);
    let mut conn = redis_conn(redis_port).await;
    let mut db1 = redis_conn_url(&format!("redis://127.0.0.1:{redis_port}/1")).await;
    let db = pg.client().await;
    let (_, sink) = listening_sink(relay_port, &pg);
    run(&mut conn, &["ZADD", "perf:a", "1", "m"]).await;
    run(&mut db1, &["ZADD", "perf:c", "7", "m"]).await;
    run(&mut db1, &["ZADD", "perf:d", "7", "m"]).await;
    committed(&db, redis_port).await;
    run(&mut conn, &["SWAPDB", "0", "1"]).await;
    run(&mut conn, &["ZINCRBY", "perf:c", "1", "m"]).await;
    assert_eq!(stored_scores(&db, "perf:c", 1).await, [8]);
    run(&mut conn, &["ZINCRBY", "perf:d", "1", "m"]).await;
    committed(&db, redis_port).await;
    assert_eq!(
        stored_scores(&db, "perf:d", 1).await,
        [8],
        "Redis's score, not the increment"
    );
    let recorded: Vec<String> = spans(&db).await.into_iter().map(|s| s.0).collect();
    assert!(
        recorded.contains(&"perf:*".to_string()),
        "the keys the swap may have made: {recorded:?}"
    );
    drop(sink);
}

/// Issue 23 item 3 end to end: `SWAPDB 0 1` brings `cfg:k` (fields `x`) into the watched database. The first write
/// after it (to `cfg:h`, mirrored before the swap) has `cfg:h` read by a top-up; with the mirror waiting for a full
/// snapshot after the swap, that answer ended the wait with every other key taken for absent, and `HSET cfg:k y 2`
/// was mirrored as the whole hash, `y` alone. Now `cfg:k` is read again before its rows are written: the mirror
/// tables equal Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_equals_redis_after_a_swapdb() {
    async fn fields(db: &tokio_postgres::Client, key: &str, want: usize) -> Vec<String> {
        rows_within(
            db,
            "SELECT field || '=' || value FROM replicast.mirror_hash WHERE key = $1 ORDER BY field",
            &[&key],
            want,
            key,
            |r| r.get::<_, String>(0),
        )
        .await
    }
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(&[]);
    let mut conn = redis_conn(redis_port).await;
    let mut db1 = redis_conn_url(&format!("redis://127.0.0.1:{redis_port}/1")).await;
    let db = pg.client().await;
    let (_, sink) = listening_sink(relay_port, &pg);
    run(&mut conn, &["HSET", "cfg:h", "a", "1"]).await;
    run(&mut db1, &["HSET", "cfg:h", "b", "2"]).await;
    run(&mut db1, &["HSET", "cfg:k", "x", "1"]).await;
    committed(&db, redis_port).await;
    assert_eq!(fields(&db, "cfg:h", 1).await, ["a=1"]);
    run(&mut conn, &["SWAPDB", "0", "1"]).await;
    run(&mut conn, &["HSET", "cfg:h", "c", "3"]).await;
    assert_eq!(fields(&db, "cfg:h", 2).await, ["b=2", "c=3"]);
    run(&mut conn, &["HSET", "cfg:k", "y", "2"]).await;
    committed(&db, redis_port).await;
    assert_eq!(
        fields(&db, "cfg:k", 2).await,
        ["x=1", "y=2"],
        "the hash Redis holds, not the field written"
    );
    drop(sink);
}

/// Whether the position of some stream says its shard's mirror is to be listed again (`position.mirror_relist`).
async fn mirror_relist(db: &tokio_postgres::Client) -> bool {
    db.query_one(
        "SELECT coalesce(bool_or(mirror_relist), false) FROM replicast.position",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// Waits until no stream's position says its mirror is to be listed again: every key listed is read.
async fn listed_keys_read(db: &tokio_postgres::Client) {
    let deadline = tokio::time::Instant::now() + 2 * ANSWER_TIMEOUT;
    while mirror_relist(db).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the keys listed were never all read (position.mirror_relist stays true)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 23 item 1, the mirror's gap: the usual reload, database 1 filled (strings, hashes, lists and sets under
/// `cfg:*`, some keys only there, some in both databases) then `SWAPDB 0 1`, and nothing written after. The mirror
/// read again only the keys it held a window of: every key only database 1 held had no rows, and a key only the old
/// database 0 held, a set, kept its rows. Now the relay lists the shard's mirrored keys and each is read by a top-up:
/// the mirror tables equal Redis's database 0, every string, hash and list exact, every set there and marked
/// inexact (its members are not known to the sink), and none of the old database's sets left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_a_swapdb_brings_in_is_mirrored_with_nothing_written_after() {
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(&[]);
    let mut conn = redis_conn(redis_port).await;
    let mut db1 = redis_conn_url(&format!("redis://127.0.0.1:{redis_port}/1")).await;
    let db = pg.client().await;
    let (_, sink) = listening_sink(relay_port, &pg);
    // Joined before any set is written: a set's members before the sink's join are not known (docs/SINK.md).
    committed(&db, redis_port).await;
    for words in [
        &["HSET", "cfg:both", "a", "1"][..],
        &["SET", "cfg:old", "x"],
        &["RPUSH", "cfg:lboth", "a"],
        &["SADD", "cfg:sboth", "a"],
        &["SADD", "cfg:sold", "x"],
    ] {
        run(&mut conn, words).await;
    }
    for words in [
        &["HSET", "cfg:both", "b", "2"][..],
        &["HSET", "cfg:h1", "f", "v", "g", "w"],
        &["SET", "cfg:v1", "hello"],
        &["RPUSH", "cfg:l1", "a", "b", "c"],
        &["RPUSH", "cfg:lboth", "z"],
        &["SADD", "cfg:s1", "m", "n"],
        &["SADD", "cfg:sboth", "q"],
    ] {
        run(&mut db1, words).await;
    }
    committed(&db, redis_port).await;
    assert_mirrors_are(&db, &mut conn, Sets::Exact).await;
    run(&mut conn, &["SWAPDB", "0", "1"]).await;
    committed(&db, redis_port).await;
    assert_mirrors_are(&db, &mut conn, Sets::Inexact).await;
    listed_keys_read(&db).await;
    drop(sink);
}

/// Issue 23 review, F1 end to end: database 1 holds over 10,000 keys under `cfg:*` (one `EVAL`) and `cfg:s`
/// (`{a,b,c}`), then `SWAPDB 0 1`: the relay refuses the sink's listing (PROTOCOL.md's 10,000 keys), so no set is
/// named. A `SADD cfg:s x` then was mirrored as the whole set, `{x}` and exact, while Redis holds `{a,b,c,x}`. Now
/// the row is marked inexact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_written_after_a_refused_listing_is_inexact() {
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(&[]);
    let mut conn = redis_conn(redis_port).await;
    let mut db1 = redis_conn_url(&format!("redis://127.0.0.1:{redis_port}/1")).await;
    let db = pg.client().await;
    let (_, sink) = listening_sink(relay_port, &pg);
    committed(&db, redis_port).await;
    let fill = "for i = 1, 10001 do redis.call('SET', 'cfg:k' .. i, 'v') end";
    run(&mut db1, &["EVAL", fill, "0"]).await;
    run(&mut db1, &["SADD", "cfg:s", "a", "b", "c"]).await;
    committed(&db, redis_port).await;
    run(&mut conn, &["SWAPDB", "0", "1"]).await;
    run(&mut conn, &["SADD", "cfg:s", "x"]).await;
    committed(&db, redis_port).await;
    let row = db
        .query_one(
            "SELECT exact, (SELECT array_agg(member ORDER BY member) FROM replicast.mirror_set \
             WHERE key = 'cfg:s') FROM replicast.mirror_key WHERE key = 'cfg:s'",
            &[],
        )
        .await
        .unwrap();
    let (exact, members): (bool, Vec<String>) = (row.get(0), row.get(1));
    assert!(
        !exact || members == ["a", "b", "c", "x"],
        "cfg:s mirrored as {members:?}, exact, while Redis holds a, b, c and x"
    );
    drop(sink);
}

/// The same for a command the relay withheld for every window: a `MULTI` block copying keys outside `--allow` into
/// `cfg:h2`, `cfg:l2` and `cfg:v2` (which the sink holds no window of) and deleting a key no top-up can name. Those
/// keys had no rows until written again; now they are listed and read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_a_command_withheld_for_every_window_made_is_mirrored() {
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(&[]);
    let mut conn = redis_conn(redis_port).await;
    let db = pg.client().await;
    let (_, sink) = listening_sink(relay_port, &pg);
    for words in [
        &["HSET", "secret:h", "a", "1", "b", "2"][..],
        &["RPUSH", "secret:l", "x", "y"],
        &["SET", "secret:v", "s"],
        &["SET", "secret:y", "1"],
        &["HSET", "cfg:kept", "a", "1"],
    ] {
        run(&mut conn, words).await;
    }
    committed(&db, redis_port).await;
    let unnamable = format!("cfg:{}", "x".repeat(1100));
    let _: redis::Value = redis::pipe()
        .atomic()
        .cmd("COPY")
        .arg("secret:h")
        .arg("cfg:h2")
        .cmd("COPY")
        .arg("secret:l")
        .arg("cfg:l2")
        .cmd("COPY")
        .arg("secret:v")
        .arg("cfg:v2")
        .cmd("DEL")
        .arg("secret:y")
        .arg(&unnamable)
        .query_async(&mut conn)
        .await
        .unwrap();
    committed(&db, redis_port).await;
    assert_mirrors_are(&db, &mut conn, Sets::Exact).await;
    listed_keys_read(&db).await;
    drop(sink);
}

/// Crash safety: the sink SIGKILLed after it stored its position past a `SWAPDB` that brought in 400 keys and
/// before they were all read (the relay reads a top-up's keys 40 at a time at the sink's window of 1,000 items, each
/// read placed in the stream in turn: seconds in all) (its position says the shard's mirror is to be listed again, in the same transaction),
/// restarted, lists them again and reads each: the mirror tables equal Redis. Without the mark stored, the restarted
/// sink read only the keys the tables held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_killed_before_every_key_a_swapdb_brought_in_is_read_mirrors_them_when_restarted() {
    const KEYS: usize = 400;
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(&[]);
    let mut conn = redis_conn(redis_port).await;
    let mut db1 = redis_conn_url(&format!("redis://127.0.0.1:{redis_port}/1")).await;
    let db = pg.client().await;
    let (_, sink) = listening_sink(relay_port, &pg);
    run(&mut conn, &["HSET", "cfg:h", "a", "1"]).await;
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(100) {
        let mut mset = redis::cmd("MSET");
        for i in chunk {
            mset.arg(format!("cfg:k{i}")).arg(format!("value {i}"));
        }
        let _: () = mset.query_async(&mut db1).await.unwrap();
    }
    run(&mut db1, &["HSET", "cfg:h1", "f", "v"]).await;
    committed(&db, redis_port).await;
    run(&mut conn, &["SWAPDB", "0", "1"]).await;
    let deadline = tokio::time::Instant::now() + 2 * ANSWER_TIMEOUT;
    while !mirror_relist(&db).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the position past the SWAPDB never said the mirror is to be listed again"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(sink);
    let read: i64 = db
        .query_one("SELECT count(*) FROM replicast.mirror_key", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        mirror_relist(&db).await,
        "killed before every key was read ({read} of {} rows)",
        KEYS + 1
    );
    let (_, sink) = listening_sink(relay_port, &pg);
    committed(&db, redis_port).await;
    assert_mirrors_are(&db, &mut conn, Sets::Exact).await;
    listed_keys_read(&db).await;
    drop(sink);
}

/// The mirror's rows as `(key, type, exact)`, a key over 40 bytes cut to its first 40 and its length.
async fn mirror_keys(db: &tokio_postgres::Client) -> Vec<(String, String, bool)> {
    db.query(
        "SELECT CASE WHEN length(key) > 40 THEN left(key, 40) || '… (' || length(key) || ' bytes)' ELSE key END,
                type, exact
           FROM replicast.mirror_key ORDER BY key",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get(0), row.get(1), row.get(2)))
    .collect()
}

/// Issue 23 (review 13a, F2): a `SWAPDB` bringing in a key no top-up can name (over 1,024 bytes), last of the keys
/// in order. The listing asked a top-up of its last key, which the relay refuses by closing the listing: every
/// listing failed, the mark stayed, and `cfg:short` was never read. Now the listing asks only a key a top-up can
/// name; the long key, which the mirror held from before the swap, keeps its row marked inexact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_no_top_up_can_name_last_in_a_listing_leaves_the_others_read() {
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(&[]);
    let mut conn = redis_conn(redis_port).await;
    let mut db1 = redis_conn_url(&format!("redis://127.0.0.1:{redis_port}/1")).await;
    let db = pg.client().await;
    let (_, sink) = listening_sink(relay_port, &pg);
    committed(&db, redis_port).await;
    let long = format!("cfg:{}", "x".repeat(1100));
    run(&mut conn, &["SET", &long, "old"]).await;
    run(&mut db1, &["SET", &long, "new"]).await;
    run(&mut db1, &["SET", "cfg:short", "v"]).await;
    committed(&db, redis_port).await;
    run(&mut conn, &["SWAPDB", "0", "1"]).await;
    committed(&db, redis_port).await;
    // Every key listed is read, in the transaction that clears the mark.
    listed_keys_read(&db).await;
    assert_eq!(
        mirror_keys(&db).await,
        [
            ("cfg:short".to_string(), "string".to_string(), true),
            (
                format!("{}… (1104 bytes)", &long[..40]),
                "string".to_string(),
                false
            ),
        ]
    );
    drop(sink);
}

/// Issue 23 (review 13a, F4): a listing the relay refuses (its `--max-sessions` reached, by a browser here) was
/// tried again only in the sink's next session, and a healthy session lasts: the key the `SWAPDB` brought in had no
/// rows. Now the listing is tried again within the session after a wait, and once the browser leaves it is read,
/// with the sink still in its first session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_the_relay_refused_is_tried_again_in_the_session() {
    let (pg, _redis, redis_port, _relay, relay_port) =
        postgres_and_a_relay(&["--max-sessions", "2"]);
    let relay_ws = format!("ws://127.0.0.1:{relay_port}/ws");
    let mut conn = redis_conn(redis_port).await;
    let mut db1 = redis_conn_url(&format!("redis://127.0.0.1:{redis_port}/1")).await;
    let db = pg.client().await;
    let (listen, sink) = listening_sink(relay_port, &pg);
    run(&mut conn, &["HSET", "cfg:h", "a", "1"]).await;
    run(&mut db1, &["HSET", "cfg:k", "x", "1"]).await;
    committed(&db, redis_port).await;
    // A browser takes the relay's last session.
    let browser = support::connect(&relay_ws, &support::subscribe_message(&["cfg:*"], 1)).await;
    run(&mut conn, &["SWAPDB", "0", "1"]).await;
    within("the relay refusing the listing", async {
        while metric(
            &relay_ws,
            r#"replicast_refusals_total{reason="max_sessions"}"#,
        )
        .await
            == 0
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    drop(browser);
    assert_mirrors_are(&db, &mut conn, Sets::Exact).await;
    listed_keys_read(&db).await;
    assert_eq!(
        counter(&listen, "replicast_sink_sessions_total").await,
        "1",
        "read within the sink's first session"
    );
    drop(sink);
}

/// Issue 23 (review 13a, F3): a `MULTI` block the relay withholds for every window (it reads `secret:y`, outside
/// `--allow`, and deletes a key no top-up can name) deletes the set `cfg:s` and empties `cfg:t`. A stale message for
/// every window did nothing to sets, and the listing names only keys that exist: both kept their rows, marked exact.
/// Now the listing of the only shard deletes the set rows of the keys it does not name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_a_block_withheld_for_every_window_deleted_has_no_rows_once_listed() {
    let (pg, _redis, redis_port, _relay, relay_port) = postgres_and_a_relay(&[]);
    let mut conn = redis_conn(redis_port).await;
    let db = pg.client().await;
    let (_, sink) = listening_sink(relay_port, &pg);
    // Joined before any set is written: a set's members before the sink's join are not known (docs/SINK.md).
    committed(&db, redis_port).await;
    run(&mut conn, &["SADD", "cfg:s", "a", "b"]).await;
    run(&mut conn, &["SADD", "cfg:t", "a", "b"]).await;
    run(&mut conn, &["SADD", "cfg:u", "a"]).await;
    run(&mut conn, &["SET", "cfg:v", "x"]).await;
    run(&mut conn, &["SET", "secret:y", "1"]).await;
    committed(&db, redis_port).await;
    assert_mirrors_are(&db, &mut conn, Sets::Exact).await;
    let unnamable = format!("cfg:{}", "x".repeat(1100));
    let _: redis::Value = redis::pipe()
        .atomic()
        .cmd("DEL")
        .arg("cfg:s")
        .arg("secret:y")
        .arg(&unnamable)
        .cmd("SPOP")
        .arg("cfg:t")
        .arg(2)
        .query_async(&mut conn)
        .await
        .unwrap();
    committed(&db, redis_port).await;
    listed_keys_read(&db).await;
    let sets: Vec<String> = db
        .query(
            "SELECT DISTINCT key FROM replicast.mirror_set UNION SELECT key FROM replicast.mirror_key WHERE type = 'set' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(sets, ["cfg:u"], "the set rows once the listing is applied");
    drop(sink);
}
