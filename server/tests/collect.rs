//! `replicast collect` against a real redis-server: the samples' keys, scores and JSON, the trim to `--keep`, and
//! surviving a Redis that is killed and restarted on the same port.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use support::*;

const SIMULATED: [&str; 3] = ["web-01", "db-01", "cache-01"];

fn local_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// Starts the collector with `args`; returns it and its log (stderr), collected as it comes.
fn start_collector(args: &[&str]) -> (Proc, Arc<Mutex<String>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_replicast"))
        .arg("collect")
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn replicast collect");
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn({
        let log = log.clone();
        move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
    (Proc::new(child), log)
}

/// The members of `key` with their scores, oldest first.
async fn samples(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> Vec<(serde_json::Value, u64)> {
    let members: Vec<(String, u64)> = conn.zrange_withscores(key, 0, -1).await.unwrap();
    members
        .into_iter()
        .map(|(json, score)| (serde_json::from_str(&json).expect("valid JSON"), score))
        .collect()
}

fn check_sample(sample: &serde_json::Value, score: u64, host: &str) {
    assert_eq!(
        sample["t"].as_u64(),
        Some(score),
        "the score is t: {sample}"
    );
    assert_eq!(sample["host"], host);
    assert_eq!(sample["id"], format!("{host}:{score}"));
    let cores = sample["cpu"]["cores"].as_array().expect("cpu.cores");
    assert!(!cores.is_empty());
    let total = sample["cpu"]["total"].as_f64().expect("cpu.total");
    assert!((0.0..=100.0).contains(&total));
    for field in [
        "total",
        "used",
        "available",
        "cached",
        "swap_total",
        "swap_used",
    ] {
        assert!(sample["mem"][field].is_u64(), "mem.{field} in {sample}");
    }
    assert!(sample["mem"]["total"].as_u64().unwrap() > 0);
    assert_eq!(sample["load"].as_array().map(Vec::len), Some(3));
    assert!(sample["net"]["rx"].is_u64() && sample["net"]["tx"].is_u64());
    assert!(sample["net"]["ifaces"].is_object());
    assert!(sample["disk"]["read"].is_u64() && sample["disk"]["write"].is_u64());
    assert!(sample["tcp"]["ESTABLISHED"].is_u64() && sample["tcp"]["LISTEN"].is_u64());
    let procs = sample["procs"].as_array().expect("procs");
    assert!(!procs.is_empty() && procs.len() <= 5);
    for process in procs {
        assert!(process["pid"].is_u64() && process["name"].is_string());
        assert!(process["cpu"].is_number() && process["mem"].is_u64());
    }
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn writes_every_host_and_survives_a_redis_restart() {
    let (redis, port) = start_redis();
    let url = format!("redis://127.0.0.1:{port}");
    let (mut collector, log) = start_collector(&[
        "--redis-url",
        &url,
        "--simulate",
        "3",
        "--interval",
        "200ms",
        "--keep",
        "5",
    ]);
    let local = local_host();
    let hosts: Vec<&str> = std::iter::once(local.as_str()).chain(SIMULATED).collect();

    let mut conn = redis_conn(port).await;
    // Past --keep: after 7 intervals, each key must hold exactly the newest 5.
    wait_for(
        "5 intervals of samples",
        Duration::from_secs(30),
        async || {
            let cardinality: usize = conn.zcard(format!("perf:{local}")).await.unwrap();
            cardinality == 5
        },
    )
    .await;
    // Two intervals more, past --keep.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for host in &hosts {
        let samples = samples(&mut conn, &format!("perf:{host}")).await;
        assert_eq!(samples.len(), 5, "perf:{host} is trimmed to --keep");
        for (sample, score) in &samples {
            check_sample(sample, *score, host);
        }
    }
    let mut keys: Vec<String> = conn.keys("*").await.unwrap();
    keys.sort();
    let mut expected: Vec<String> = hosts.iter().map(|h| format!("perf:{h}")).collect();
    expected.sort();
    assert_eq!(keys, expected);

    // Redis dies without a word; the collector queues and reconnects to the new one on the same port.
    drop(conn);
    drop(redis);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        collector.0.try_wait().unwrap().is_none(),
        "still running without Redis"
    );
    let restarted = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let _redis = start_redis_on(port, &[]);
    let mut conn = redis_conn(port).await;
    wait_for(
        "samples in the new Redis",
        Duration::from_secs(30),
        async || {
            let newest: Vec<(String, u64)> = conn
                .zrange_withscores(format!("perf:{local}"), -1, -1)
                .await
                .unwrap();
            newest.first().is_some_and(|(_, t)| *t > restarted)
        },
    )
    .await;
    assert!(collector.0.try_wait().unwrap().is_none(), "still running");
    for host in &hosts {
        let samples = samples(&mut conn, &format!("perf:{host}")).await;
        assert!(!samples.is_empty() && samples.len() <= 5, "perf:{host}");
        for (sample, score) in &samples {
            check_sample(sample, *score, host);
        }
    }
    let log = log.lock().unwrap().clone();
    assert!(
        log.contains("lost Redis"),
        "the disconnect is logged:\n{log}"
    );
    let reconnect = log
        .lines()
        .filter(|l| l.contains("connected to Redis"))
        .nth(1)
        .unwrap_or_else(|| panic!("the reconnect is logged:\n{log}"));
    // What was sampled while Redis was away was queued and written on reconnect.
    assert!(
        reconnect.contains("queued=") && !reconnect.contains("queued=0 "),
        "{reconnect}"
    );
}

#[tokio::test]
async fn once_writes_one_sample_per_host_and_fails_without_redis() {
    let (_redis, port) = start_redis();
    let url = format!("redis://127.0.0.1:{port}");
    let status = Command::new(env!("CARGO_BIN_EXE_replicast"))
        .args(["collect", "--redis-url", &url, "--once", "--no-local"])
        .args(["--simulate", "20", "--prefix", "host:"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let mut conn = redis_conn(port).await;
    let keys: Vec<String> = conn.keys("host:*").await.unwrap();
    assert_eq!(keys.len(), 20);
    let samples = samples(&mut conn, "host:db-01").await;
    assert_eq!(samples.len(), 1);
    check_sample(&samples[0].0, samples[0].1, "db-01");

    let nobody = format!("redis://127.0.0.1:{}", free_port());
    let status = Command::new(env!("CARGO_BIN_EXE_replicast"))
        .args([
            "collect",
            "--redis-url",
            &nobody,
            "--once",
            "--no-local",
            "--simulate",
            "1",
        ])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(
        !status.success(),
        "--once reports that Redis could not take the samples"
    );
}

/// Every flag of the collector can come from the environment, like the relay's; and an error writing to Redis
/// names its address, never the URL's password.
#[tokio::test]
async fn flags_come_from_the_environment_and_errors_hide_the_password() {
    let (_redis, port) = start_redis_with(&["--requirepass", "Xq7-right"]);
    let collect = |password: &str| {
        Command::new(env!("CARGO_BIN_EXE_replicast"))
            .args(["collect", "--once"])
            .env("REDIS_URL", format!("redis://:{password}@127.0.0.1:{port}"))
            .env("REPLICAST_COLLECT_NO_LOCAL", "true")
            .env("REPLICAST_COLLECT_SIMULATE", "3")
            .env("REPLICAST_COLLECT_PREFIX", "env:")
            .env("REPLICAST_COLLECT_KEEP", "5")
            .output()
            .unwrap()
    };
    let output = collect("Xq7-right");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut conn = redis_conn_url(&format!("redis://:Xq7-right@127.0.0.1:{port}")).await;
    let mut keys: Vec<String> = conn.keys("env:*").await.unwrap();
    keys.sort();
    assert_eq!(keys, ["env:cache-01", "env:db-01", "env:web-01"]);

    let output = collect("Xq7-wrong");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot write to Redis at 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(!stderr.contains("Xq7"), "the password is printed: {stderr}");
}
