//! Benchmarks of the relay, driven by `bench/relay.sh` (run that; it starts the servers):
//!
//! ```text
//! cargo run --release -p replicast-server --example relay_bench -- lag <primary> <replica> <relay-http> <requests>
//! cargo run --release -p replicast-server --example relay_bench -- fanout <redis> <relay-ws> <relay-pid> <clients> <rate> <seconds> [<hosts> [<keys-per-client> [<source-addresses>]]]
//! ```
//!
//! `lag`: runs `redis-benchmark` ZADD load on the primary at its full rate and samples, every 20 ms, how many bytes
//! a real replica and the relay are behind the primary; then how long each takes to reach zero after the load.
//! `fanout`: connects `clients` WebSocket sessions, each subscribed to `keys-per-client` of `hosts` keys
//! (`perf:hostN`; by default one each, its own), from `source-addresses` loopback addresses (127.0.0.1 and up, for
//! more sessions than one address has ports), writes `rate` ZADDs per second spread over the hosts, each carrying
//! its send time, and measures delivered commands/s, write-to-client latency percentiles and the relay's RSS.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use replicast_protocol::resp::CommandReader;
use replicast_protocol::wire::{self, Message};
use tokio_tungstenite::tungstenite;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("lag") => lag(&args[1..]).await,
        Some("fanout") => fanout(&args[1..]).await,
        _ => eprintln!("usage: relay_bench lag|fanout … (see bench/relay.sh)"),
    }
}

/// `field` of `INFO replication`; `None` when the read failed.
async fn offset(conn: &mut redis::aio::MultiplexedConnection, field: &str) -> Option<u64> {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(conn)
        .await
        .ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().parse().ok())
}

async fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

/// The relay's link offset from its metrics; `None` when the read failed (such a sample is left out and counted,
/// never taken as offset 0).
async fn relay_offset(addr: &str) -> Option<u64> {
    http_get(addr, "/metrics")
        .await
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("replicast_link_offset "))
        .and_then(|v| v.trim().parse().ok())
}

/// The relay's `replicast_messages_sent_total`, or 0 when it cannot be read.
async fn relay_messages(addr: &str) -> f64 {
    http_get(addr, "/metrics")
        .await
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("replicast_messages_sent_total "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// The seconds of the load (from `started_us`) whose writes' p99 latency passed `limit_us`, with that p99 in ms:
/// whether a tail is spread over the run or one stall.
fn slow_seconds(pairs: &[(u64, u64)], started_us: u64, limit_us: u64) -> Vec<(u64, u64)> {
    let mut by_second = std::collections::BTreeMap::<u64, Vec<u64>>::new();
    for &(sent, latency) in pairs {
        by_second
            .entry(sent.saturating_sub(started_us) / 1_000_000)
            .or_default()
            .push(latency);
    }
    by_second
        .into_iter()
        .filter_map(|(second, mut latencies)| {
            latencies.sort_unstable();
            let p99 = percentile(&latencies, 0.99);
            (p99 > limit_us).then_some((second, p99 / 1000))
        })
        .collect()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn connect(port: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn lag(args: &[String]) {
    let [primary, replica, relay, requests] = args else {
        panic!("lag <primary-port> <replica-port> <relay-host:port> <requests>");
    };
    let (mut p, mut r) = (connect(primary).await, connect(replica).await);
    let mut load = tokio::process::Command::new("redis-benchmark")
        .args([
            "-p", primary, "-t", "zadd", "-n", requests, "-c", "50", "-P", "16", "-r", "100000",
            "-q",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-benchmark");
    let started = Instant::now();
    let (mut replica_lag, mut relay_lag) = (Vec::new(), Vec::new());
    let mut load_done: Option<(Instant, u64)> = None;
    let (mut replica_zero, mut relay_zero) = (None, None);
    let mut failed_samples = 0;
    loop {
        let (Some(top), Some(at_replica), Some(at_relay)) = (
            offset(&mut p, "master_repl_offset:").await,
            offset(&mut r, "slave_repl_offset:").await,
            relay_offset(relay).await,
        ) else {
            // A failed read is no offset 0: leave the sample out, and say how many were.
            failed_samples += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if load_done.is_none() {
            replica_lag.push(top.saturating_sub(at_replica));
            relay_lag.push(top.saturating_sub(at_relay));
            if let Ok(Some(_)) = load.try_wait() {
                load_done = Some((Instant::now(), top));
            }
        }
        if let Some((done, final_offset)) = load_done {
            if replica_zero.is_none() && at_replica >= final_offset {
                replica_zero = Some(done.elapsed());
            }
            if relay_zero.is_none() && at_relay >= final_offset {
                relay_zero = Some(done.elapsed());
            }
            if (replica_zero.is_some() && relay_zero.is_some())
                || done.elapsed() > Duration::from_secs(10)
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let output = load.wait_with_output().await.unwrap();
    // redis-benchmark redraws its progress with \r; the summary is the last line.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rate = stdout
        .split(['\r', '\n'])
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("");
    let bytes = offset(&mut p, "master_repl_offset:").await.unwrap_or(0);
    replica_lag.sort_unstable();
    relay_lag.sort_unstable();
    println!(
        "load: {rate} ({bytes} bytes of stream in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    let mut result = serde_json::json!({
        "bench": "relay-lag",
        "load": rate,
        "stream_bytes": bytes,
        "seconds": started.elapsed().as_secs_f64(),
        "failed_samples": failed_samples,
    });
    if failed_samples > 0 {
        println!("{failed_samples} sample(s) left out: an offset could not be read");
    }
    for (name, lags, zero) in [
        ("replica", &replica_lag, replica_zero),
        ("relay", &relay_lag, relay_zero),
    ] {
        result[name] = serde_json::json!({
            "p50_bytes": percentile(lags, 0.5),
            "p99_bytes": percentile(lags, 0.99),
            "max_bytes": lags.last().copied().unwrap_or(0),
            "samples": lags.len(),
            "back_to_zero_ms": zero.map(|d| d.as_millis() as u64),
        });
        println!(
            "{name}: lag p50 {} B, p99 {} B, max {} B over {} samples; back to 0 in {}",
            percentile(lags, 0.5),
            percentile(lags, 0.99),
            lags.last().copied().unwrap_or(0),
            lags.len(),
            zero.map_or("(not within 10 s)".to_string(), |d| format!(
                "{} ms",
                d.as_millis()
            ))
        );
    }
    // Issue 22's target: the relay no further behind than the real replica beside it (≤ 1×).
    let ratio = |p: f64| {
        let (replica, relay) = (percentile(&replica_lag, p), percentile(&relay_lag, p));
        (replica > 0).then(|| relay as f64 / replica as f64)
    };
    let (p99, max) = (ratio(0.99), ratio(1.0));
    result["relay_to_replica"] = serde_json::json!({ "p99": p99, "max": max });
    let shown = |r: Option<f64>| r.map_or("(replica at 0)".to_string(), |r| format!("{r:.2}×"));
    println!(
        "relay lag / replica lag: p99 {}, max {}",
        shown(p99),
        shown(max)
    );
    // The machine-readable line bench/run.mjs collects.
    println!("RESULT {result}");
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn rss_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) process `pid` ("self" for this one) has used so far.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces: utime and stime are the
    // 14th and 15th fields of the line, the 12th and 13th after `(name) `.
    let ticks: Vec<f64> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| {
            rest.split(' ')
                .skip(11)
                .take(2)
                .filter_map(|t| t.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks.iter().sum::<f64>() / per_second
}

/// Redis's own process id, for its CPU time.
async fn redis_pid(conn: &mut redis::aio::MultiplexedConnection) -> Option<String> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(conn)
        .await
        .ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .map(|v| v.trim().to_string())
}

/// One session's WebSocket from the loopback address `source` (several of them when one address's ports run out).
async fn open_session(
    ws_url: &str,
    source: std::net::Ipv4Addr,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let relay: std::net::SocketAddr = ws_url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("the relay's URL is ws://<ip>:<port>/…");
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind((source, 0).into())
        .unwrap_or_else(|e| panic!("bind {source}: {e}"));
    let stream = socket
        .connect(relay)
        .await
        .unwrap_or_else(|e| panic!("connect from {source}: {e}"));
    tokio_tungstenite::client_async(ws_url, stream)
        .await
        .expect("the WebSocket handshake")
        .0
}

async fn fanout(args: &[String]) {
    const USAGE: &str =
        "fanout <redis-port> <relay-ws-url> <relay-pid> <clients> <rate> <seconds> \
[<hosts> [<keys-per-client> [<source-addresses>]]]";
    let [redis_port, ws_url, relay_pid, ..] = args else {
        panic!("{USAGE}");
    };
    let number = |at: usize| -> Option<usize> {
        args.get(at)
            .map(|a| a.parse().unwrap_or_else(|_| panic!("{USAGE}")))
    };
    let (clients, rate, seconds) = match (number(3), number(4), number(5)) {
        (Some(c), Some(r), Some(s)) => (c, r as u64, s as u64),
        _ => panic!("{USAGE}"),
    };
    let hosts = number(6).unwrap_or(clients).max(1);
    let keys_per_client = number(7).unwrap_or(1).clamp(1, hosts);
    let sources = number(8).unwrap_or(1).clamp(1, 254);
    // (send time, latency) of every delivery, in µs: the latency percentiles, and the seconds of the load in which
    // the slowest deliveries were written (a tail spread over the run, or one stall).
    let latencies = Arc::new(Mutex::new(Vec::<(u64, u64)>::new()));
    let delivered = Arc::new(AtomicU64::new(0));
    // Sessions that got their first message (the join's hello): the relay has joined them.
    let greeted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    // Sessions join 64 at a time: one at a time, 10,000 joins would take longer than the load.
    let started_joins = Instant::now();
    let mut joins = futures_util::stream::iter(0..clients)
        .map(|i| {
            let source = std::net::Ipv4Addr::new(127, 0, 0, 1 + (i % sources) as u8);
            let ws_url = ws_url.clone();
            async move {
                let mut socket = open_session(&ws_url, source).await;
                let keys: Vec<String> = (0..keys_per_client)
                    .map(|k| format!("perf:host{}", (i * keys_per_client + k) % hosts))
                    .collect();
                let subscribe =
                    serde_json::json!({"type": "subscribe", "keys": keys, "window": 10});
                socket
                    .send(tungstenite::Message::text(subscribe.to_string()))
                    .await
                    .unwrap();
                socket
            }
        })
        .buffer_unordered(64);
    let mut joined = 0;
    while let Some(mut socket) = joins.next().await {
        let (latencies, delivered) = (latencies.clone(), delivered.clone());
        let greeted = greeted.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut first = true;
            while let Some(Ok(message)) = socket.next().await {
                if std::mem::take(&mut first) {
                    greeted.fetch_add(1, Ordering::Relaxed);
                }
                let tungstenite::Message::Binary(bytes) = message else {
                    continue;
                };
                let Ok(Message::Commands(segments)) = wire::decode(&bytes) else {
                    continue;
                };
                let received = now_us();
                for segment in segments.flatten() {
                    let _ = CommandReader::new(segment.start).push(segment.bytes, |c| {
                        if c.is("zadd") {
                            if let Some(sent) = c
                                .args
                                .get(3)
                                .and_then(|m| std::str::from_utf8(m).ok()?.parse::<u64>().ok())
                            {
                                mine.push((sent, received.saturating_sub(sent)));
                                delivered.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    });
                }
                latencies.lock().unwrap().append(&mut mine);
            }
            latencies.lock().unwrap().append(&mut mine);
        }));
        joined += 1;
    }
    // Every session joined (its hello, then its snapshot, sent) before the load, or a minute passed.
    while greeted.load(Ordering::Relaxed) < joined as u64
        && started_joins.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let join_time = started_joins.elapsed();
    let greeted = greeted.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = rss_kib(relay_pid, "VmRSS:");
    let mut conn = connect(redis_port).await;
    let redis_pid = redis_pid(&mut conn).await.unwrap_or_default();
    // CPU of the relay, Redis and this client over the load: they share the machine's cores.
    // An unknown pid (Redis's could not be read) reads as 0 s.
    let cpu = cpu_seconds;
    let cpu_before = [cpu(relay_pid), cpu(&redis_pid), cpu("self")];
    let relay_http = ws_url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let messages_before = relay_messages(&relay_http).await;
    let written = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let started_us = now_us();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = (rate / 100).max(1);
    let mut seq = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let mut pipe = redis::pipe();
        for _ in 0..per_tick {
            seq += 1;
            let key = format!("perf:host{}", seq % hosts as u64);
            pipe.cmd("ZADD").arg(&key).arg(seq).arg(now_us()).ignore();
        }
        let _: () = pipe.query_async(&mut conn).await.unwrap();
        written.fetch_add(per_tick, Ordering::Relaxed);
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Cores used over the load and the 2 s after it that let the last writes arrive.
    let busy = elapsed.as_secs_f64() + 2.0;
    let cpu_after = [cpu(relay_pid), cpu(&redis_pid), cpu("self")];
    let [relay_cpu, redis_cpu, client_cpu] =
        [0, 1, 2].map(|i| (cpu_after[i] - cpu_before[i]) / busy);
    let rss = rss_kib(relay_pid, "VmRSS:");
    let hwm = rss_kib(relay_pid, "VmHWM:");
    let messages = relay_messages(&relay_http).await - messages_before;
    for task in &tasks {
        task.abort();
    }
    let pairs = std::mem::take(&mut *latencies.lock().unwrap());
    let seconds_over = slow_seconds(&pairs, started_us, 100_000);
    let mut all: Vec<u64> = pairs.iter().map(|&(_, latency)| latency).collect();
    all.sort_unstable();
    let written = written.load(Ordering::Relaxed);
    let delivered = delivered.load(Ordering::Relaxed);
    // Each write reaches the sessions watching its host.
    let expected = written as f64 * (clients * keys_per_client) as f64 / hosts as f64;
    println!(
        "fanout: {joined} clients connected, {greeted} joined in {:.1} s, each watching {keys_per_client} of {hosts} hosts, from {sources} \
address(es); {written} ZADDs in {:.1} s ({:.0}/s written), {delivered} of {expected:.0} delivered ({:.0}/s), \
latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; relay RSS {} MiB before load, {} MiB after, peak {} MiB; \
cores used: relay {relay_cpu:.2}, redis {redis_cpu:.2}, this client {client_cpu:.2}; {messages:.0} messages sent by the \
relay ({:.2} per delivery), relay CPU {:.2} µs per delivery, client {:.2} µs; seconds of the load (from its start) \
whose writes' p99 passed 100 ms: {seconds_over:?}",
        join_time.as_secs_f64(),
        elapsed.as_secs_f64(),
        written as f64 / elapsed.as_secs_f64(),
        delivered as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.5) as f64 / 1000.0,
        percentile(&all, 0.99) as f64 / 1000.0,
        all.last().copied().unwrap_or(0) as f64 / 1000.0,
        rss_before / 1024,
        rss / 1024,
        hwm / 1024,
        messages / delivered.max(1) as f64,
        relay_cpu * busy * 1e6 / delivered.max(1) as f64,
        client_cpu * busy * 1e6 / delivered.max(1) as f64,
    );
    let result = serde_json::json!({
        "bench": "relay-fanout",
        "clients": joined,
        "greeted": greeted,
        "hosts": hosts,
        "keys_per_client": keys_per_client,
        "join_seconds": join_time.as_secs_f64(),
        "rate": rate,
        "seconds": elapsed.as_secs_f64(),
        "written": written,
        "delivered": delivered,
        "expected": expected,
        "latency_ms": {
            "p50": percentile(&all, 0.5) as f64 / 1000.0,
            "p99": percentile(&all, 0.99) as f64 / 1000.0,
            "max": all.last().copied().unwrap_or(0) as f64 / 1000.0,
        },
        "rss_mib": { "before": rss_before / 1024, "after": rss / 1024, "peak": hwm / 1024 },
        "cores": { "relay": relay_cpu, "redis": redis_cpu, "client": client_cpu },
        "relay_messages": messages,
        "cpu_us_per_delivery": {
            "relay": relay_cpu * busy * 1e6 / delivered.max(1) as f64,
            "client": client_cpu * busy * 1e6 / delivered.max(1) as f64,
        },
        "seconds_over_100ms": seconds_over,
    });
    println!("RESULT {result}");
}
