//! Checking the relay's state against Redis (issue 21.5), with redis-server and the relay binary: `replicast verify`
//! passes after a randomized workload over every windowed type, and finds a key whose window the state holds wrong
//! (corrupted through the debug builds' `/verify/corrupt`); the periodic check (`--verify-every`) finds it too,
//! counts it, and heals it, after which `replicast verify` passes again and a page joined from the state equals
//! Redis. `/verify` is refused without the relay's token, and past its limits.

mod support;

use std::time::Duration;

use support::exact::{redis_db, Page};
use support::workload::{dataset, workload};
use support::*;

/// The relay's HTTP address behind its `ws://…/ws` URL.
fn http_of(ws_url: &str) -> String {
    ws_url
        .replace("ws://", "http://")
        .trim_end_matches("/ws")
        .to_string()
}

/// Runs `replicast verify` against the relay and Redis: (exit code, what it printed).
async fn verify(ws_url: &str, port: u16, extra: &[&str]) -> (i32, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_replicast"))
        .args(["verify", "--relay", &http_of(ws_url)])
        .args(["--redis-url", &format!("redis://127.0.0.1:{port}")])
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), printed)
}

/// A plain HTTP/1.0 POST to the relay: (status code, body).
async fn http_post(ws_url: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = ws_url.trim_start_matches("ws://").trim_end_matches("/ws");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Redis with the dataset of every windowed type, a relay following it with `extra` flags, and a randomized workload
/// applied by the relay's link.
async fn relay_after_workload(extra: &[&str]) -> (Proc, u16, Proc, String) {
    let (redis, port) = start_redis();
    let mut conn = redis_conn(port).await;
    dataset(&mut conn).await;
    let mut flags = vec!["--allow", "w:*", "--state-depth", "100"];
    flags.extend(extra);
    let (relay, ws_url) = start_relay_with(&format!("redis://127.0.0.1:{port}"), &flags);
    wait_healthy(&ws_url).await;
    workload(&mut conn, 2105, 3000).await;
    link_reaches(&ws_url, master_repl_offset(&mut conn).await).await;
    assert_eq!(metric(&ws_url, "replicast_state_ready").await, 1);
    (redis, port, relay, ws_url)
}

/// Writes the sorted set `w:zc` (whatever the workload left) and waits for the relay's link to have it.
async fn written_key(ws_url: &str, port: u16) {
    let mut conn = redis_conn(port).await;
    zadd(&mut conn, "w:zc", 1, "a").await;
    zadd(&mut conn, "w:zc", 2, "b").await;
    link_reaches(ws_url, master_repl_offset(&mut conn).await).await;
}

/// The number before "keys compared" in `replicast verify`'s summary.
fn compared(printed: &str) -> usize {
    printed
        .lines()
        .find_map(|l| l.split_once(" keys compared")?.0.parse().ok())
        .unwrap_or_else(|| panic!("no summary in:\n{printed}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_after_a_randomized_workload_and_finds_a_corrupted_key() {
    let (_redis, port, _relay, ws_url) = relay_after_workload(&[]).await;

    let (code, printed) = verify(&ws_url, port, &["--sample", "1000"]).await;
    assert_eq!(code, 0, "{printed}");
    // Every key of the dataset that still exists after the workload (20 at most), compared by digest or absence.
    assert!(compared(&printed) >= 10, "{printed}");
    assert!(printed.contains(", 0 differ"), "{printed}");

    written_key(&ws_url, port).await;
    let (status, body) = http_post(&ws_url, "/verify/corrupt?key=w:zc", "").await;
    assert_eq!(status, 200, "{body}");
    let (code, printed) = verify(&ws_url, port, &["--sample", "1000"]).await;
    assert_eq!(code, 1, "{printed}");
    assert!(printed.contains("differs at offset"), "{printed}");
    assert!(
        printed.contains(": w:zc: relay Window { kind: \"string\""),
        "{printed}"
    );
    assert!(printed.contains(", 1 differ"), "{printed}");
    // Without the periodic check nothing heals it: the command only reports.
    let (code, printed) = verify(&ws_url, port, &["--match", "w:zc"]).await;
    assert_eq!(code, 1, "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_check_counts_a_corrupted_key_and_heals_it() {
    let (_redis, port, _relay, ws_url) =
        relay_after_workload(&["--verify-every", "1s", "--verify-sample", "1000"]).await;
    let mismatches = "replicast_verify_mismatches_total";
    // A first round finds nothing to heal.
    for _ in 0..200 {
        if metric(&ws_url, "replicast_verify_keys_compared_total").await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metric(&ws_url, "replicast_verify_checks_total").await > 0);
    assert_eq!(metric(&ws_url, mismatches).await, 0);

    let refreshed = metric(&ws_url, "replicast_state_refreshed_keys_total").await;
    written_key(&ws_url, port).await;
    let (status, body) = http_post(&ws_url, "/verify/corrupt?key=w:zc", "").await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..200 {
        if metric(&ws_url, mismatches).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&ws_url, mismatches).await, 1);
    // Healed: the key read from Redis again, at its offset, by the state's refresh.
    for _ in 0..200 {
        if metric(&ws_url, "replicast_state_refreshed_keys_total").await > refreshed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metric(&ws_url, "replicast_state_refreshed_keys_total").await > refreshed);
    let (code, printed) = verify(&ws_url, port, &["--sample", "1000"]).await;
    assert_eq!(code, 0, "{printed}");
    assert_eq!(metric(&ws_url, mismatches).await, 1);

    let mut conn = redis_db(port, 0).await;
    let mut page = Page::open(&ws_url, "w:*", 0, 100).await;
    page.settle(&mut conn).await;
    let differences = page.differences(&mut conn).await;
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_is_refused_without_the_token_and_past_its_limits() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "w:*", "--token", "s3cret"],
    );
    wait_healthy(&ws_url).await;
    assert_eq!(http_get(&ws_url, "/verify").await.0, 401);
    assert_eq!(http_post(&ws_url, "/verify", "{}").await.0, 401);
    assert_eq!(
        http_post(&ws_url, "/verify/corrupt?key=w:a", "").await.0,
        401
    );
    let (code, printed) = verify(&ws_url, port, &[]).await;
    assert_eq!(code, 2, "{printed}");
    assert!(printed.contains("401"), "{printed}");

    let (status, body) = http_get(&ws_url, "/verify?token=s3cret").await;
    assert_eq!(status, 200, "{body}");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["allow"], serde_json::json!(["w:*"]));
    let keys: Vec<String> = (0..1001).map(|i| format!("w:{i}")).collect();
    let request =
        serde_json::json!({"epoch": info["epoch"], "offset": info["offset"], "keys": keys});
    let (status, body) = http_post(&ws_url, "/verify?token=s3cret", &request.to_string()).await;
    assert_eq!(
        (status, body.as_str()),
        (400, "a check names at most 1000 keys, got 1001\n")
    );
    let request =
        serde_json::json!({"epoch": "another", "offset": info["offset"], "keys": ["w:a"]});
    let (status, body) = http_post(&ws_url, "/verify?token=s3cret", &request.to_string()).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.ends_with(", not another\n"), "{body}");
    let (status, body) = http_post(&ws_url, "/verify?token=s3cret", "[1]").await;
    assert_eq!(status, 400, "{body}");
    let (code, printed) = verify(&ws_url, port, &["--token", "s3cret"]).await;
    assert_eq!(code, 0, "{printed}");
    assert!(printed.contains("nothing to compare"), "{printed}");
}

/// Writes until `stop`, one round after another: a `SET` of a key outside `--allow` and a `ZADD` of one of the
/// allowed `w:hot:0`…`w:hot:9` in one pipeline, so that the link's offset never rests while a check reads Redis.
async fn write_until(port: u16, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> u64 {
    let mut conn = redis_conn(port).await;
    let mut rounds = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let () = redis::pipe()
            .cmd("SET")
            .arg("other:key")
            .arg(rounds)
            .ignore()
            .cmd("ZADD")
            .arg(format!("w:hot:{}", rounds % 10))
            .arg(rounds)
            .arg(format!("m{rounds}"))
            .ignore()
            .query_async(&mut conn)
            .await
            .unwrap();
        rounds += 1;
    }
    rounds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_check_compares_while_writes_continue_and_never_reports_a_false_difference() {
    let (_redis, port) = start_redis();
    let mut conn = redis_conn(port).await;
    for i in 0..50 {
        zadd(&mut conn, &format!("w:still:{i}"), 1, "a").await;
    }
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &[
            "--allow",
            "w:*",
            "--state-depth",
            "100",
            "--verify-every",
            "1s",
            "--verify-sample",
            "1000",
        ],
    );
    wait_healthy(&ws_url).await;
    link_reaches(&ws_url, master_repl_offset(&mut conn).await).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn(write_until(port, stop.clone()));
    let compared = "replicast_verify_keys_compared_total";
    // Three rounds' worth of the keys the writes leave alone (each check compares them all), while writes go on.
    for _ in 0..600 {
        if metric(&ws_url, compared).await >= 3 * 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = writer.await.unwrap();
    assert!(rounds > 0);
    assert!(
        metric(&ws_url, compared).await >= 3 * 50,
        "{} keys compared",
        metric(&ws_url, compared).await
    );
    // None was given up for the stream moving on: the keys the writes did not touch were compared at once, the
    // written ones read again or counted as skipped.
    assert_eq!(metric(&ws_url, "replicast_verify_missed_total").await, 0);
    assert_eq!(
        metric(&ws_url, "replicast_verify_mismatches_total").await,
        0
    );
}

/// At most 16 checks wait for their offsets at once: of 17 asked together for an offset the link has not reached,
/// one is refused at once with 429 and why, and the 16 others end with 504 when the link does not get there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_16_checks_wait_for_their_offsets() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "w:*");
    wait_healthy(&ws_url).await;
    let (status, body) = http_get(&ws_url, "/verify").await;
    assert_eq!(status, 200, "{body}");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ahead = info["offset"].as_u64().unwrap() + 1_000_000;
    let request =
        serde_json::json!({"epoch": info["epoch"], "offset": ahead, "keys": ["w:a"]}).to_string();
    let checks: Vec<_> = (0..17)
        .map(|_| {
            let (ws_url, request) = (ws_url.clone(), request.clone());
            tokio::spawn(async move {
                within(
                    "the answer to a check",
                    http_post(&ws_url, "/verify", &request),
                )
                .await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for check in checks {
        answers.push(check.await.unwrap());
    }
    let busy: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 429)
        .collect();
    assert_eq!(
        busy,
        [&(
            429,
            "16 checks already wait for their offsets: try again later\n".to_string()
        )],
        "{answers:?}"
    );
    let not_reached = format!(
        "the relay's state did not reach offset {ahead} within 10s, or was rebuilt meanwhile\n"
    );
    assert_eq!(
        answers
            .iter()
            .filter(|answer| **answer == (504, not_reached.clone()))
            .count(),
        16,
        "{answers:?}"
    );
}
