//! What an operator runs the relay with, against real processes: logs as JSON lines, `/metrics` as promtool (from
//! Debian's prometheus package) accepts it with the build, process and histogram rows.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::*;

/// The relay with `flags` and `RUST_LOG=info`, its stderr lines collected as they come: (relay, ws URL, lines).
fn start_relay_logging(flags: &[&str]) -> (Proc, String, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_replicast"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(flags)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_to, lines) = std::sync::mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = lines_to.send(line);
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let proc = Proc::new(child);
    let live = stdout
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("Replicast is live at "))
        .expect("the relay goes live");
    std::thread::spawn(move || stdout.for_each(drop));
    let http = live.rsplit(' ').next().unwrap().trim_end_matches('/');
    (proc, http.replace("http://", "ws://") + "/ws", lines)
}

/// Log lines until one contains `needle` (within 20 s), that one included.
fn lines_until(lines: &std::sync::mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no log line with {needle:?} in:\n{}", seen.join("\n")));
        let done = line.contains(needle);
        seen.push(line);
        if done {
            return seen;
        }
    }
}

#[tokio::test]
async fn with_log_format_json_every_log_line_is_an_object_with_level_message_and_target() {
    let (_redis, port) = start_redis();
    let url = format!("redis://127.0.0.1:{port}");
    let (_relay, _, lines) = start_relay_logging(&["--redis-url", &url, "--log-format", "json"]);
    let lines = lines_until(&lines, "streaming");
    assert!(lines.len() >= 2, "{lines:?}");
    for line in &lines {
        let object: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("not a JSON line ({err}): {line}"));
        assert!(
            matches!(object["level"].as_str(), Some("INFO" | "WARN" | "ERROR")),
            "{line}"
        );
        assert!(object["fields"]["message"].is_string(), "{line}");
        assert!(
            object["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("replicast_server")),
            "{line}"
        );
        assert!(object["timestamp"].is_string(), "{line}");
    }
    // A log line's fields stay fields, not words of the message.
    assert!(
        lines.iter().any(|l| l.contains(r#""psync":"? -1""#)),
        "{lines:?}"
    );

    // The default stays text for people, without a terminal's colour codes when stderr is not one.
    let (_relay, _, lines) = start_relay_logging(&["--redis-url", &url]);
    let lines = lines_until(&lines, "streaming");
    assert!(
        lines.iter().all(|l| serde_json::from_str::<serde_json::Value>(l).is_err()
            && !l.contains('\u{1b}')),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" INFO replicast_server::replica_link: replica link:")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn metrics_pass_promtool_with_build_process_histogram_and_refusal_rows() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    wait_healthy(&ws_url).await;
    // A session joins (a snapshot) and is sent a write (a batch's delay); a request names a host the relay does not
    // answer to (a refusal).
    let mut socket = connect(&ws_url, &subscribe_message(&["perf:*"], 5)).await;
    let (_, offset, _) = join(&mut socket).await;
    let mut conn = redis_conn(port).await;
    zadd(&mut conn, "perf:a", 1, "one").await;
    read_commands_until(&mut socket, offset, offset + 1).await;
    let addr = ws_url.trim_start_matches("ws://").trim_end_matches("/ws");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut refused = String::new();
    stream.read_to_string(&mut refused).await.unwrap();
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");

    let (status, metrics) = http_get(&ws_url, "/metrics").await;
    assert_eq!(status, 200);
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/setup.sh installs it)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&checked.stdout) + String::from_utf8_lossy(&checked.stderr);
    assert!(
        checked.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n{metrics}"
    );

    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
    };
    let version = format!(
        r#"replicast_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&version), 1.0);
    // The relay's sockets, the embedded-free link and the session among them.
    assert!(value("process_open_fds") >= 5.0);
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("replicast_snapshot_duration_seconds_count") >= 1.0);
    assert!(value("replicast_snapshot_duration_seconds_sum") > 0.0);
    assert!(value("replicast_stream_delay_seconds_count") >= 1.0);
    assert_eq!(
        value(r#"replicast_stream_delay_seconds_bucket{le="+Inf"}"#),
        value("replicast_stream_delay_seconds_count")
    );
    assert_eq!(value(r#"replicast_refusals_total{reason="host"}"#), 1.0);
    assert_eq!(value(r#"replicast_refusals_total{reason="token"}"#), 0.0);
    assert!(value("replicast_link_retry_delay_seconds") >= 0.0);
}
