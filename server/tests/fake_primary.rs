//! The replica link against a fake primary: a small TCP server in the test that answers the handshake as Redis
//! does, then sends a stream the relay cannot follow (corrupt bytes, or a bulk past the `proto-max-bulk-len` it
//! announced). Resuming there would fail again forever; the link asks for one full resync instead, and backs off,
//! ever more slowly, from a primary that sends nothing else. It refuses `REPLCONF rdb-filter-only` as a Redis
//! older than 7.0 does, which a relay without a state must take in its stride.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use replicast_protocol::resp::{parse_command, Limits};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The fake's replication ID.
const REPLID: &str = "0123456789abcdef0123456789abcdef01234567";

/// What the fake sends after the empty RDB payload of its `n`th full resync (from 0).
type Script = dyn Fn(usize) -> Vec<u8> + Send + Sync;

/// What the fake remembers across connections.
#[derive(Default)]
struct History {
    /// The `PSYNC`s it got: their arguments, and when.
    psyncs: Mutex<Vec<(Instant, String)>>,
    /// The stream each full resync sent, for partial resyncs to resend from.
    streams: Mutex<Vec<Vec<u8>>>,
    /// `REPLCONF rdb-filter-only` asked for, and refused as a Redis older than 7.0 refuses it.
    rdb_filters_refused: Mutex<usize>,
}

/// A fake primary on a loopback port.
struct FakePrimary {
    port: u16,
    history: Arc<History>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakePrimary {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakePrimary {
    /// Announcing `proto_max_bulk_len` (refusing `CONFIG GET` without one), streaming what `script` says after each
    /// full resync.
    async fn start(
        proto_max_bulk_len: Option<u64>,
        script: impl Fn(usize) -> Vec<u8> + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let history = Arc::new(History::default());
        let script: Arc<Script> = Arc::new(script);
        let shared = history.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (script, history) = (script.clone(), shared.clone());
                tokio::spawn(serve(socket, proto_max_bulk_len, script, history));
            }
        });
        FakePrimary {
            port,
            history,
            task,
        }
    }

    fn psyncs(&self) -> Vec<(Instant, String)> {
        self.history.psyncs.lock().unwrap().clone()
    }

    /// Waits until the fake got `n` `PSYNC`s (within 30 s).
    async fn wait_psyncs(&self, n: usize) -> Vec<(Instant, String)> {
        for _ in 0..3000 {
            let psyncs = self.psyncs();
            if psyncs.len() >= n {
                return psyncs;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("fewer than {n} PSYNCs: {:?}", self.psyncs());
    }
}

/// One connection: the relay's replica link, its `COMMAND` and `CONFIG GET` reads, or its `INFO` polls.
async fn serve(
    mut socket: TcpStream,
    proto_max_bulk_len: Option<u64>,
    script: Arc<Script>,
    history: Arc<History>,
) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut commands = Vec::new();
        let mut used = 0;
        while let Ok(Some(command)) = parse_command(&buf[used..], 0, &Limits::default()) {
            used += command.frame_len();
            let words: Vec<String> = command
                .args
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            commands.push(words);
        }
        buf.drain(..used);
        for words in commands {
            let name = words
                .first()
                .map(|w| w.to_ascii_lowercase())
                .unwrap_or_default();
            let sub = words
                .get(1)
                .map(|w| w.to_ascii_lowercase())
                .unwrap_or_default();
            let reply = match (name.as_str(), sub.as_str()) {
                ("command", _) => b"*0\r\n".to_vec(),
                ("config", _) => {
                    let Some(value) = proto_max_bulk_len.map(|len| len.to_string()) else {
                        let refusal = "-NOPERM this user has no permissions to run the 'config|get' command\r\n";
                        if socket.write_all(refusal.as_bytes()).await.is_err() {
                            return;
                        }
                        continue;
                    };
                    format!(
                        "*2\r\n$18\r\nproto-max-bulk-len\r\n${}\r\n{value}\r\n",
                        value.len()
                    )
                    .into_bytes()
                }
                ("ping", _) => b"+PONG\r\n".to_vec(),
                // A replica's acknowledgements get no answer.
                ("replconf", "ack") => continue,
                ("replconf", "rdb-filter-only") => {
                    *history.rdb_filters_refused.lock().unwrap() += 1;
                    b"-ERR Unrecognized REPLCONF option: rdb-filter-only\r\n".to_vec()
                }
                ("replconf" | "auth" | "client", _) => b"+OK\r\n".to_vec(),
                ("info", _) => {
                    let info = "# Replication\r\nrole:master\r\nmaster_repl_offset:0\r\n";
                    format!("${}\r\n{info}\r\n", info.len()).into_bytes()
                }
                ("psync", _) => {
                    let asked = words[1..].join(" ");
                    history.psyncs.lock().unwrap().push((Instant::now(), asked));
                    let mut streams = history.streams.lock().unwrap();
                    match words.get(2).and_then(|o| o.parse::<usize>().ok()) {
                        // A partial resync resends the last stream from the offset asked (it began at offset 1).
                        Some(offset) if words[1] == REPLID && !streams.is_empty() => {
                            let last = streams.last().unwrap();
                            let from = (offset - 1).min(last.len());
                            [b"+CONTINUE\r\n".as_slice(), &last[from..]].concat()
                        }
                        _ => {
                            let stream = script(streams.len());
                            streams.push(stream.clone());
                            let full = format!("+FULLRESYNC {REPLID} 0\r\n$0\r\n");
                            [full.as_bytes(), &stream].concat()
                        }
                    }
                }
                _ => b"-ERR unknown command\r\n".to_vec(),
            };
            if socket.write_all(&reply).await.is_err() {
                return;
            }
        }
    }
}

const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

#[tokio::test]
async fn a_stream_it_cannot_follow_costs_one_full_resync_then_the_link_streams_on() {
    let oversized = [
        &b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000\r\n"[..],
        &[b'x'; 2000],
        b"\r\n",
    ]
    .concat();
    // Corrupt bytes; a bulk of 2,000 bytes from a primary that accepts at most 1,000 (the relay reads that); and one
    // past Redis's default of 512 MB from a primary that does not say (the relay then takes the default).
    let past_default = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870913\r\n".to_vec();
    for (bad, proto_max_bulk_len) in [
        (b"*1\r\n:12\r\n".to_vec(), Some(512 << 20)),
        (oversized, Some(1000)),
        (past_default, None),
    ] {
        let first = [PING, &bad].concat();
        let fake = FakePrimary::start(proto_max_bulk_len, move |n| match n {
            0 => first.clone(),
            _ => PING.to_vec(),
        })
        .await;
        let (_relay, ws_url) = start_relay_with(
            &format!("redis://127.0.0.1:{}", fake.port),
            &["--allow", "perf:*"],
        );
        let psyncs = fake.wait_psyncs(2).await;
        let asked: Vec<&str> = psyncs.iter().map(|(_, a)| a.as_str()).collect();
        // Not `PSYNC <id> 15`, which would get the same bytes again.
        assert_eq!(asked, ["? -1", "? -1"], "after {bad:?}");
        wait_healthy(&ws_url).await;
        link_reaches(&ws_url, PING.len() as u64).await;
        for (name, value) in [
            ("link_full_syncs_total", 2),
            ("link_partial_syncs_total", 0),
            ("link_stream_errors_total", 1),
            ("link_errors_total", 1),
        ] {
            assert_eq!(
                metric(&ws_url, &format!("replicast_{name}")).await,
                value,
                "{name} after {bad:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_primary_that_only_sends_corrupt_streams_is_retried_ever_more_slowly() {
    let fake = FakePrimary::start(Some(512 << 20), |_| b"*1\r\n:12\r\n".to_vec()).await;
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{}", fake.port),
        &["--allow", "perf:*"],
    );
    let psyncs = fake.wait_psyncs(6).await;
    assert!(
        psyncs.iter().all(|(_, asked)| asked == "? -1"),
        "{psyncs:?}"
    );
    // The waits double from 100 ms and each is at least half its delay (jitter): at least 50 + 100 + 200 + 400 +
    // 800 ms from the first attempt to the sixth, however slow the machine (which only adds to it). Retrying at once
    // took ~70 ms each.
    let first_to_sixth = psyncs[5].0 - psyncs[0].0;
    assert!(
        first_to_sixth >= Duration::from_millis(1550),
        "six attempts in {first_to_sixth:?}"
    );
    assert!(metric(&ws_url, "replicast_link_failures_in_a_row").await >= 5);
    assert!(metric_value(&ws_url, "replicast_link_retry_delay_seconds").await >= 0.8);
    assert!(metric(&ws_url, "replicast_link_stream_errors_total").await >= 5);
    assert_eq!(http_get(&ws_url, "/healthz").await.0, 503);
}

/// Issue 21 item 6: without a state the relay asks for an RDB without keys, which a Redis older than 7.0 refuses
/// (`-ERR Unrecognized REPLCONF option`, as the fake answers); the link goes on without it, reading past the whole
/// RDB: one full sync, then the stream, with no error and no retry.
#[tokio::test]
async fn a_primary_refusing_rdb_filter_only_is_followed_without_a_state_all_the_same() {
    let fake = FakePrimary::start(Some(512 << 20), |_| PING.repeat(2)).await;
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{}", fake.port),
        &["--allow", "perf:*", "--stateless"],
    );
    wait_healthy(&ws_url).await;
    link_reaches(&ws_url, 2 * PING.len() as u64).await;
    assert_eq!(*fake.history.rdb_filters_refused.lock().unwrap(), 1);
    let asked: Vec<String> = fake.psyncs().into_iter().map(|(_, a)| a).collect();
    assert_eq!(asked, ["? -1"]);
    for (name, value) in [("link_full_syncs_total", 1), ("link_errors_total", 0)] {
        assert_eq!(
            metric(&ws_url, &format!("replicast_{name}")).await,
            value,
            "{name}"
        );
    }
}
