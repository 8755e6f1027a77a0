//! The differential test: a seeded random workload over every command the assembler knows (the list it exports,
//! `replicast_assembler::known_commands`, so a command added there cannot be left out here), with `MULTI`, `SELECT`,
//! `MOVE`, `COPY … DB`, `SWAPDB`, flushes, scripts and functions, short TTLs that Redis expires actively and
//! lazily, in two databases, against a real redis-server and two relay binaries: one lets every key out, the
//! other withholds the workload's `s:*` keys (`--allow`), so that what they feed into watched keys reaches its
//! pages as stale messages and top-ups. Pages (the native assembler on relay sessions) watch `w:*` in both
//! databases at windows from 1 to 1,000, some joining mid-workload; they ask for the top-ups their assembler calls
//! for and join again after a `SWAPDB`, as browsers do. At checkpoints the writes pause and every key each page
//! watches is compared with what Redis answers; each difference names its key, page and how.
//!
//! On a difference, `DIFFERENTIAL_SHOW=w:l1,w:z4` also prints what every page was told of those keys.
//!
//! `cargo test` runs a short workload (one seed, 2,000 steps). A long run is the same test with more:
//! `DIFFERENTIAL_STEPS=100000 DIFFERENTIAL_SEEDS=1,2,3 cargo test --release -p replicast-server --test
//! differential -- --nocapture` (what `bench/differential.sh` runs; its result is in docs/RELIABILITY.md).

mod generators;
#[path = "../support/mod.rs"]
mod support;
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use generators::{ALONG_WITH, GENERATORS};
use redis::aio::MultiplexedConnection;
use support::exact::{redis_db, Page};
use support::*;
use workload::{Step, Workload, CROSSINGS, SHORT_TTL};

/// The relays following the Redis, by their `--allow`. The second withholds every frame naming an `s:*` key, so
/// its pages learn of what such a frame wrote into a watched key (`RENAME s:… w:…`, `ZUNIONSTORE w:… 2 s:… …`,
/// `SORT s:… STORE w:…`, `COPY s:… w:…`) only from a stale message, and top the key up.
const RELAYS: &[&str] = &["*", "w:*,u:*"];
/// The pages: relay (in [`RELAYS`]), database, window, and when each joins (after this share of the workload's
/// steps).
const PAGES: &[(usize, u32, usize, f64)] = &[
    (0, 0, 1, 0.0),
    (0, 0, 3, 0.0),
    (0, 0, 1000, 0.0),
    (0, 1, 1, 0.0),
    (0, 1, 20, 0.0),
    (0, 0, 10, 0.33),
    (0, 1, 1000, 0.33),
    (0, 0, 100, 0.66),
    (0, 1, 2, 0.66),
    (1, 0, 5, 0.0),
    (1, 1, 1000, 0.0),
    (1, 0, 200, 0.5),
    (1, 1, 1, 0.5),
];
/// Where the writes pause, every page settles, and every page is compared with Redis (shares of the steps).
const CHECKPOINTS: &[f64] = &[0.3, 0.55, 0.8, 1.0];
/// Steps that wipe a database, rare among the random draws, so that every run has them too (and the stretch
/// before each checkpoint is long).
const SCHEDULED: &[(f64, &str)] = &[(0.2, "swapdb"), (0.4, "flushdb"), (0.6, "flushall")];
/// Share of the steps drawn for database 1 (the rest are database 0's).
const DB1_PERCENT: u64 = 30;
/// Steps of the workload sent to Redis alone to count what it carried out of each of [`CROSSINGS`].
const CROSSING_STEPS: usize = 8000;

fn settings() -> (usize, Vec<u64>) {
    let steps = std::env::var("DIFFERENTIAL_STEPS")
        .ok()
        .map(|s| s.parse().expect("DIFFERENTIAL_STEPS is a number"))
        .unwrap_or(2000);
    let seeds = std::env::var("DIFFERENTIAL_SEEDS")
        .ok()
        .map(|s| {
            s.split(',')
                .map(|seed| {
                    seed.trim()
                        .parse()
                        .expect("DIFFERENTIAL_SEEDS: numbers, comma-separated")
                })
                .collect()
        })
        .unwrap_or_else(|| vec![1]);
    (steps, seeds)
}

#[test]
fn every_command_the_assembler_knows_is_in_the_workload() {
    let generated: BTreeSet<&str> = GENERATORS
        .iter()
        .map(|g| g.0)
        .chain(ALONG_WITH.iter().map(|a| a.0))
        .collect();
    let missing: Vec<&str> = replicast_assembler::known_commands()
        .filter(|name| !generated.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "the assembler knows commands the differential workload never sends: {missing:?}"
    );
}

/// What Redis carried out (its reply said it wrote) of each of [`CROSSINGS`], by database.
#[derive(Default)]
struct Crossings(BTreeMap<(&'static str, u32), usize>);

impl Crossings {
    /// Counts `form`, drawn for database `db`, if Redis's `reply` says it wrote something.
    fn count(&mut self, form: Option<&'static str>, db: u32, reply: Option<&redis::Value>) {
        let wrote = !matches!(
            reply,
            None | Some(redis::Value::Nil) | Some(redis::Value::Int(0))
        );
        if let Some(form) = form.filter(|_| wrote) {
            *self.0.entry((form, db)).or_default() += 1;
        }
    }

    /// The forms, in each database, that Redis never carried out.
    fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        for db in 0..2 {
            for &form in CROSSINGS {
                if !self.0.contains_key(&(form, db)) {
                    missing.push(format!("{form} in db {db}"));
                }
            }
        }
        missing
    }
}

impl std::fmt::Display for Crossings {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let counts: Vec<String> = self
            .0
            .iter()
            .map(|((form, db), n)| format!("{form} in db {db}: {n}"))
            .collect();
        write!(f, "{}", counts.join("; "))
    }
}

/// The workload must move, copy and sort across databases and from unwatched keys, for the comparison to say
/// anything of them: a source that never exists makes Redis write nothing, and the relay forward nothing.
#[tokio::test]
async fn the_workload_carries_out_every_crossing_form_in_both_databases() {
    let (_redis, port) = start_redis();
    let mut conns = [redis_db(port, 0).await, redis_db(port, 1).await];
    let mut workload = Workload::new(1);
    let mut carried = Crossings::default();
    for _ in 0..CROSSING_STEPS {
        workload.db = u32::from(workload.rng.chance(DB1_PERCENT));
        let (_, step) = workload.step();
        let form = step.crossing(workload.db);
        let reply = perform(step, &mut conns[workload.db as usize]).await;
        carried.count(form, workload.db, reply.as_ref());
    }
    let missing = carried.missing();
    assert!(
        missing.is_empty(),
        "in {CROSSING_STEPS} steps Redis never carried out {missing:?}; it did: {carried}"
    );
    println!("carried out in {CROSSING_STEPS} steps: {carried}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_window_equals_redis_after_a_random_workload() {
    let (steps, seeds) = settings();
    for seed in seeds {
        let report = run(seed, steps).await;
        println!("{report}");
    }
}

/// Runs seed `seed`'s workload of `steps` steps, comparing every page with Redis at each checkpoint; panics
/// listing every difference, or returns a summary.
async fn run(seed: u64, steps: usize) -> String {
    let started = Instant::now();
    let (_redis, port) = start_redis_with(&["--repl-ping-replica-period", "1"]);
    let relays: Vec<_> = RELAYS
        .iter()
        .map(|allow| start_relay(port, allow))
        .collect();
    for (_, url) in &relays {
        wait_healthy(url).await;
    }
    let mut conns = [redis_db(port, 0).await, redis_db(port, 1).await];
    let at = |share: f64| (share * steps as f64) as usize;

    let stop = Arc::new(AtomicBool::new(false));
    let mut following = Vec::new();
    let mut workload = Workload::new(seed);
    let mut sent: BTreeMap<&str, usize> = BTreeMap::new();
    let mut carried = Crossings::default();
    let (mut refused, mut compared) = (0, 0);
    // What was sent, to show with a difference the steps that named its key.
    let mut history: Vec<(usize, u32, String)> = Vec::new();
    for i in 0..steps {
        for &(relay, db, window, share) in PAGES {
            if i == at(share) {
                let page = Page::open(&relays[relay].1, "w:*", db, window).await;
                following.push(tokio::spawn(follow(page, stop.clone())));
            }
        }
        workload.db = u32::from(workload.rng.chance(DB1_PERCENT));
        let mut drawn = vec![workload.step()];
        for &(share, name) in SCHEDULED {
            if i == at(share) {
                drawn.push((name, workload.named(name)));
            }
        }
        for (name, step) in drawn {
            *sent.entry(name).or_default() += 1;
            history.push((i, workload.db, step.describe()));
            let form = step.crossing(workload.db);
            let reply = perform(step, &mut conns[workload.db as usize]).await;
            if reply.is_none() {
                refused += 1;
            }
            carried.count(form, workload.db, reply.as_ref());
        }
        if CHECKPOINTS.iter().any(|&share| i + 1 == at(share)) {
            stop.store(true, Ordering::Relaxed);
            let mut pages = Vec::new();
            for task in following.drain(..) {
                pages.push(task.await.unwrap());
            }
            let differences = checkpoint(&mut pages, &mut conns).await;
            assert!(
                differences.is_empty(),
                "seed {seed}, after {} of {steps} steps: {} differences from Redis:\n{}\n\nthe steps that named \
                 these keys:\n{}",
                i + 1,
                differences.len(),
                differences.join("\n"),
                steps_naming(&history, &differences)
            );
            compared += pages
                .iter()
                .map(|p| p.assembler.keys().count())
                .sum::<usize>();
            stop.store(false, Ordering::Relaxed);
            following = pages
                .into_iter()
                .map(|page| tokio::spawn(follow(page, stop.clone())))
                .collect();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (mut topups, mut joins, mut stale) = (0, 0, 0);
    for task in following {
        let page = task.await.unwrap();
        topups += page.topups;
        joins += page.joins;
        stale += page.stale_messages;
    }
    let never: Vec<&str> = GENERATORS
        .iter()
        .map(|g| g.0)
        .filter(|name| !sent.contains_key(name))
        .collect();
    format!(
        "seed {seed}: {steps} steps ({refused} refused by Redis), {} pages on {} relays, {joins} joins, {stale} \
         stale messages, {topups} keys topped up, {compared} windows equal to Redis over {} checkpoints, in \
         {:.1} s; never drawn: {never:?}; carried out: {carried}",
        PAGES.len(),
        RELAYS.len(),
        CHECKPOINTS.len(),
        started.elapsed().as_secs_f64()
    )
}

/// The last steps (at most 40 per key) whose text names a key of `differences` (lines `db D window W: KEY: …`).
fn steps_naming(history: &[(usize, u32, String)], differences: &[String]) -> String {
    let keys: BTreeSet<&str> = differences
        .iter()
        .filter_map(|d| d.split(": ").nth(1))
        .collect();
    let mut lines = Vec::new();
    for key in keys {
        let named: Vec<String> = history
            .iter()
            .filter(|(_, _, text)| text.split(' ').any(|word| word == key))
            .map(|(i, db, text)| format!("  step {i}, db {db}: {text}"))
            .collect();
        lines.push(format!("{key}:"));
        lines.extend(named.into_iter().rev().take(40).rev());
    }
    lines.join("\n")
}

/// With the writes paused: lets the short TTLs pass and has Redis expire what it has not expired yet (reading
/// every key), settles every page and returns how each differs from Redis.
async fn checkpoint(pages: &mut [Page], conns: &mut [MultiplexedConnection; 2]) -> Vec<String> {
    tokio::time::sleep(SHORT_TTL).await;
    for conn in conns.iter_mut() {
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query_async(conn).await.unwrap();
        for key in keys {
            let _: i64 = redis::cmd("EXISTS")
                .arg(key)
                .query_async(conn)
                .await
                .unwrap();
        }
    }
    let mut differences = Vec::new();
    for page in &mut *pages {
        let conn = &mut conns[page.db as usize];
        page.settle(conn).await;
        differences.extend(page.differences(conn).await);
    }
    if !differences.is_empty() {
        // A key's window can be wrong because of another's (an item moved from a stale list): what each page was
        // told of the keys named here shows it.
        if let Ok(keys) = std::env::var("DIFFERENTIAL_SHOW") {
            for page in pages.iter() {
                for key in keys.split(',') {
                    differences.push(format!(
                        "(shown) db {} window {}: {key}: what the page was told of it, last:\n{}",
                        page.db,
                        page.window,
                        page.told(key.as_bytes())
                    ));
                }
            }
        }
    }
    differences
}

/// Follows the stream with `page` until `stop`, then hands it back (to be settled and compared).
async fn follow(mut page: Page, stop: Arc<AtomicBool>) -> Page {
    // Redis pings every second, so a message comes at least that often to look at `stop`.
    while !stop.load(Ordering::Relaxed) {
        page.step().await;
    }
    page
}

/// Sends one step to Redis; returns its reply (that of its last command), or `None` if Redis refused any of it.
/// Redis refusing a command (a wrong type, a bad score) is part of the workload; losing the connection is not.
async fn perform(step: Step, conn: &mut MultiplexedConnection) -> Option<redis::Value> {
    let outcome = match step {
        Step::Command(args) => query(conn, command(&args)).await,
        Step::Sequence(commands) => {
            let mut all = Ok(redis::Value::Nil);
            for args in commands {
                let reply = query(conn, command(&args)).await;
                all = all.and(reply);
            }
            all
        }
        Step::Transaction(commands) => {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for args in commands {
                pipe.add_command(command(&args));
            }
            pipe.query_async::<redis::Value>(conn).await
        }
        Step::Restore { src, dst, restore } => {
            match redis::cmd("DUMP")
                .arg(src)
                .query_async::<Option<Vec<u8>>>(conn)
                .await
            {
                Ok(Some(payload)) => {
                    let mut cmd = redis::cmd(restore);
                    cmd.arg(dst).arg(0).arg(payload).arg("REPLACE");
                    query(conn, cmd).await
                }
                Ok(None) => Ok(redis::Value::Nil),
                Err(err) => Err(err),
            }
        }
    };
    match outcome {
        Ok(reply) => Some(reply),
        Err(err) if err.is_io_error() || err.is_connection_dropped() || err.is_timeout() => {
            panic!("lost the connection to Redis: {err}")
        }
        Err(_) => None,
    }
}

async fn query(
    conn: &mut MultiplexedConnection,
    cmd: redis::Cmd,
) -> redis::RedisResult<redis::Value> {
    cmd.query_async::<redis::Value>(conn).await
}

fn command(args: &[Vec<u8>]) -> redis::Cmd {
    let mut cmd = redis::cmd(std::str::from_utf8(&args[0]).unwrap_or("?"));
    cmd.arg(&args[1..]);
    cmd
}
