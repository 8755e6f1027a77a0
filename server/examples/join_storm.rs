//! The join storm of issue 21, driven by `bench/join-storm.sh` (run that; it starts the servers):
//!
//! ```text
//! cargo run --release -p replicast-server --example join_storm -- \
//!     <redis-port> <relay-http> <hosts> <samples> <sessions> <window> [join|reload]
//! ```
//!
//! Fills `hosts` sorted sets `perf:<host>` with `samples` JSON samples each (scored by time, as the collector
//! writes them), then opens `sessions` WebSocket sessions within one second, each subscribing to `perf:*` with
//! windows of `window` (the dashboard's overview), while every host gets a new sample each second. It reports each
//! session's time from its connect to its snapshot (`live`: p50, p99, max), the snapshots the relay answered from
//! its state and from Redis (its `/metrics`), and the commands Redis ran during the storm (`INFO commandstats`
//! deltas), writes left out.
//!
//! `reload`: the reload storm instead. One page joins and keeps its position (`epoch:offset`) as a page with saved
//! views keeps it in IndexedDB; two seconds of writes later, the `sessions` come back within one second with that
//! position (`at=`), as reloaded pages do. Each session's time to its hello, how many resumed (a hello at the
//! position asked, no snapshot), and the same counts of snapshots and Redis commands (target: none).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use replicast_protocol::wire::{self, Message};
use tokio_tungstenite::tungstenite;

/// Commands that are not a join's: the storm's writes, the bench's `INFO`, the relay link's `REPLCONF ACK`s.
const NOT_JOINS: &[&str] = &["zadd", "zremrangebyrank", "info", "replconf"];

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (args, kind) = match args.as_slice() {
        [rest @ .., mode] if mode == "join" || mode == "reload" => (rest, mode.clone()),
        rest => (rest, "join".to_string()),
    };
    let [redis_port, relay, hosts, samples, sessions, window] = args else {
        eprintln!(
            "usage: join_storm <redis-port> <relay-http> <hosts> <samples> <sessions> <window> [join|reload]"
        );
        std::process::exit(2);
    };
    let reload = kind == "reload";
    let parse = |s: &String| s.parse::<usize>().expect("a number");
    let (hosts, samples, sessions, window) =
        (parse(hosts), parse(samples), parse(sessions), parse(window));
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{redis_port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let start_ms = now_ms() - samples as u64 * 1000;
    for sample in 0..samples {
        write_samples(&mut conn, hosts, start_ms + sample as u64 * 1000, samples)
            .await
            .expect("filling Redis");
    }
    // The relay's link has what was written before the storm starts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writer = {
        let mut conn = conn.clone();
        tokio::spawn(async move {
            loop {
                // A write that times out on the busy machine is skipped, like a collector's late sample.
                let _ = write_samples(&mut conn, hosts, now_ms(), samples).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    // Where a page that saved its view stands: it joined, and two seconds of writes passed since.
    let saved_at = match reload {
        true => {
            let at = position(&format!("ws://{relay}/ws"), window)
                .await
                .expect("the first page's join");
            tokio::time::sleep(Duration::from_secs(2)).await;
            Some(at)
        }
        false => None,
    };

    let before = commandstats(&mut conn).await;
    let metrics_before = metrics(relay).await;
    let began = Instant::now();
    let mut joins = Vec::new();
    for i in 0..sessions {
        let at = began + Duration::from_secs(1) * i as u32 / sessions as u32;
        let url = format!("ws://{relay}/ws");
        let saved_at = saved_at.clone();
        joins.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            match &saved_at {
                Some(position) => resume(&url, window, position).await,
                None => join(&url, window).await.map(|live| (live, false)),
            }
        }));
    }
    let mut times = Vec::new();
    let (mut failed, mut resumed) = (0, 0);
    for join in joins {
        match join.await.unwrap() {
            Some((time, continued)) => {
                times.push(time.as_millis() as u64);
                resumed += usize::from(continued);
            }
            None => failed += 1,
        }
    }
    writer.abort();
    let storm = began.elapsed();
    let after = commandstats(&mut conn).await;
    let metrics_after = metrics(relay).await;
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    let ran: BTreeMap<&String, u64> = after
        .iter()
        .filter(|(name, _)| !NOT_JOINS.contains(&name.as_str()))
        .map(|(name, calls)| (name, calls - before.get(name).copied().unwrap_or(0)))
        .filter(|(_, delta)| *delta > 0)
        .collect();
    let total: u64 = ran.values().sum();
    let delta = |name: &str| {
        metrics_after.get(name).copied().unwrap_or(0)
            - metrics_before.get(name).copied().unwrap_or(0)
    };
    if reload {
        println!(
            "reload storm: {sessions} sessions resume over 1 s, {hosts} hosts x {samples} samples, window {window}: \
             hello p50 {} ms, p99 {} ms, max {} ms; {resumed} resumed ({} by the relay's count), {failed} failed",
            pct(0.5),
            pct(0.99),
            times.last().copied().unwrap_or(0),
            delta("replicast_session_resumes_total"),
        );
    } else {
        println!(
            "join storm: {sessions} sessions over 1 s, {hosts} hosts x {samples} samples, window {window}: \
             live p50 {} ms, p99 {} ms, max {} ms ({failed} failed; all live after {:.1} s)",
            pct(0.5),
            pct(0.99),
            times.last().copied().unwrap_or(0),
            storm.as_secs_f64()
        );
    }
    println!(
        "snapshots: {} from the relay's state, {} from Redis; Redis ran {total} commands for them: {ran:?}",
        delta("replicast_state_snapshots_total"),
        delta("replicast_snapshots_total"),
    );
    println!(
        "RESULT {{\"bench\":\"{kind}-storm\",\"sessions\":{sessions},\"p50_ms\":{},\"p99_ms\":{},\"resumed\":{resumed},\"redis_commands\":{total},\"state_snapshots\":{},\"redis_snapshots\":{}}}",
        pct(0.5),
        pct(0.99),
        delta("replicast_state_snapshots_total"),
        delta("replicast_snapshots_total"),
    );
}

/// One sample per host at `t_ms`, each host trimmed to its newest `keep`, as the collector writes them (without
/// its `MULTI`, so that the storm's count of `MULTI`s is the snapshots').
async fn write_samples(
    conn: &mut redis::aio::MultiplexedConnection,
    hosts: usize,
    t_ms: u64,
    keep: usize,
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    for host in 0..hosts {
        let key = format!("perf:host-{host:03}");
        let sample = format!(
            r#"{{"id":"{key}:{t_ms}","t":{t_ms},"host":"host-{host:03}","cpu":{{"total":{}}},"mem":{{"used":{}}},"load":[0.5,0.25,0.1],"procs":[{{"pid":1234,"name":"redis-server","cpu":3.2}}]}}"#,
            (t_ms / 1000 + host as u64) % 100,
            t_ms % 8_000_000_000,
        );
        pipe.cmd("ZADD").arg(&key).arg(t_ms).arg(sample).ignore();
        pipe.cmd("ZREMRANGEBYRANK")
            .arg(&key)
            .arg(0)
            .arg(-(keep as i64) - 1)
            .ignore();
    }
    pipe.query_async(conn).await
}

/// Connects and subscribes; the time until the join's snapshot arrived, `None` if the session failed.
async fn join(url: &str, window: usize) -> Option<Duration> {
    let began = Instant::now();
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.ok()?;
    let subscribe = format!(r#"{{"type":"subscribe","patterns":["perf:*"],"window":{window}}}"#);
    socket
        .send(tungstenite::Message::text(subscribe))
        .await
        .ok()?;
    while let Some(message) = socket.next().await {
        if let tungstenite::Message::Binary(bytes) = message.ok()? {
            if matches!(wire::decode(&bytes), Ok(Message::Snapshot { .. })) {
                let live = began.elapsed();
                let _ = socket.close(None).await;
                return Some(live);
            }
        }
    }
    None
}

/// Joins, and returns the position a page would save once its snapshot is applied: `<epoch>:<offset>`.
async fn position(url: &str, window: usize) -> Option<String> {
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.ok()?;
    let subscribe = format!(r#"{{"type":"subscribe","patterns":["perf:*"],"window":{window}}}"#);
    socket
        .send(tungstenite::Message::text(subscribe))
        .await
        .ok()?;
    let mut epoch = None;
    while let Some(message) = socket.next().await {
        if let tungstenite::Message::Binary(bytes) = message.ok()? {
            match wire::decode(&bytes) {
                Ok(Message::Hello { epoch: e, .. }) => epoch = Some(e.to_string()),
                Ok(Message::Snapshot { offset, .. }) => {
                    let _ = socket.close(None).await;
                    return Some(format!("{}:{offset}", epoch?));
                }
                _ => {}
            }
        }
    }
    None
}

/// Connects with `at=<position>` and subscribes; the time until the hello, and whether it resumed (its offset is
/// the one asked for), `None` if the session failed.
async fn resume(url: &str, window: usize, position: &str) -> Option<(Duration, bool)> {
    let began = Instant::now();
    let asked: u64 = position.rsplit_once(':')?.1.parse().ok()?;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{url}?at={position}"))
        .await
        .ok()?;
    let subscribe = format!(r#"{{"type":"subscribe","patterns":["perf:*"],"window":{window}}}"#);
    socket
        .send(tungstenite::Message::text(subscribe))
        .await
        .ok()?;
    while let Some(message) = socket.next().await {
        if let tungstenite::Message::Binary(bytes) = message.ok()? {
            if let Ok(Message::Hello { offset, .. }) = wire::decode(&bytes) {
                let hello = began.elapsed();
                let _ = socket.close(None).await;
                return Some((hello, offset == asked));
            }
        }
    }
    None
}

/// Calls of each command Redis ran so far.
async fn commandstats(conn: &mut redis::aio::MultiplexedConnection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(":calls=")?;
            Some((name.to_string(), rest.split(',').next()?.parse().ok()?))
        })
        .collect()
}

/// The relay's unlabelled `/metrics` rows.
async fn metrics(relay: &str) -> BTreeMap<String, u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(relay).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_string(), value.parse::<f64>().ok()? as u64))
        })
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
