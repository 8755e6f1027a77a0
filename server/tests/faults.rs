//! Faults with real processes: the primary killed (SIGKILL) during the relay's RDB transfer and during the stream,
//! the relay frozen (SIGSTOP) past the primary's `repl-timeout`, and a thousand browser sessions coming and going.
//! Every test ends the same way: each session's windows, kept by a native `StreamAssembler` fed the relay's
//! messages, equal what Redis itself answers (`ZRANGE … WITHSCORES`), within a bounded wait.
//!
//! Run with `cargo test -p replicast-server --test faults`; `RELAY_LOG=info` shows the relay's view.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use replicast_assembler::{Outcome, StreamAssembler, WatchConfig};
use replicast_protocol::wire::{self, Message};
use support::*;
use tokio_tungstenite::tungstenite;

/// Items per window of the sessions that check convergence.
const WINDOW: usize = 50;
/// Keys the writer updates that sessions watch; it also writes `secret:s`, which the relay must never send.
const KEYS: [&str; 2] = ["perf:a", "perf:b"];
/// How long a test waits for what it sets up before the fault (the writer's first writes acknowledged, sessions
/// caught up, a transfer under way): a second or two alone, many more on a machine busy with parallel builds.
const SETUP: Duration = Duration::from_secs(30);

/// A browser: its session's socket and the assembler its messages feed, with what kinds of messages came.
struct Browser {
    socket: Socket,
    assembler: StreamAssembler,
    hellos: usize,
    snapshots: usize,
}

impl Browser {
    /// Opens a session watching `perf:*` with a window of `window`; nothing is read yet.
    async fn open(ws_url: &str, window: usize) -> Browser {
        Browser {
            socket: connect(ws_url, &subscribe_message(&["perf:*"], window)).await,
            assembler: StreamAssembler::new(WatchConfig {
                patterns: vec![b"perf:*".to_vec()],
                db: 0,
                window,
            }),
            hellos: 0,
            snapshots: 0,
        }
    }

    /// Applies the next binary message; `false` if none came before `deadline`. The relay closing the session,
    /// or telling it to resync, fails the test: every fault here must be absorbed without losing the session.
    async fn apply_next(&mut self, deadline: Instant) -> bool {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = match tokio::time::timeout(left, self.socket.next()).await {
                Err(_) => return false,
                Ok(Some(Ok(tungstenite::Message::Binary(bytes)))) => bytes,
                Ok(Some(Ok(tungstenite::Message::Close(frame)))) => {
                    panic!("the relay closed the session: {frame:?}")
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(err))) => panic!("session socket error: {err}"),
                Ok(None) => panic!("the session's socket ended"),
            };
            assert!(
                !message.windows(8).any(|w| w == b"secret:s"),
                "the relay sent a key --allow does not allow"
            );
            if matches!(wire::decode(&message), Ok(Message::Snapshot { .. })) {
                self.snapshots += 1;
            }
            match self.assembler.push_message(&message) {
                Ok(Outcome::Joined { .. }) => self.hellos += 1,
                Ok(Outcome::Applied { .. }) => {}
                Ok(Outcome::Resync { reason }) => panic!("the relay asked for a resync: {reason}"),
                Ok(Outcome::Notice { text }) => panic!("unexpected notice: {text}"),
                Ok(Outcome::Ack { request, .. }) => panic!("unexpected ack of {request}"),
                Ok(Outcome::Expiring { expires }) => panic!("unexpected token expiry {expires}"),
                Ok(Outcome::Digest { request, .. }) => panic!("unexpected digest of {request}"),
                Err(err) => panic!("the assembler refused a message: {err}"),
            }
            return true;
        }
    }

    /// Applies messages until the stream is applied up to `offset` (of the epoch it follows), by `deadline`.
    async fn catch_up(&mut self, offset: u64, deadline: Instant) {
        while self.assembler.offset() < offset {
            assert!(
                self.apply_next(deadline).await,
                "the session reached offset {} of {offset} only",
                self.assembler.offset()
            );
        }
    }

    /// Waits, until `deadline`, for the windows of [`KEYS`] to equal Redis's, at Redis's epoch and offset. Writes
    /// must have stopped: Redis's answer is read once, first.
    async fn converge(&mut self, conn: &mut MultiplexedConnection, deadline: Instant) {
        let epoch = info_field(conn, "replication", "master_replid").await;
        let end = master_repl_offset(conn).await;
        let window = self.assembler.watch().window;
        let mut want = Vec::new();
        for key in KEYS {
            want.push(newest(conn, key, window).await);
        }
        assert!(
            want.iter().all(|w| !w.is_empty()),
            "Redis holds nothing to compare with"
        );
        loop {
            let got: Vec<_> = KEYS
                .iter()
                .map(|key| zset_newest_first(&self.assembler, key))
                .collect();
            if self.assembler.epoch() == Some(epoch.as_str())
                && self.assembler.offset() >= end
                && got == want
            {
                return;
            }
            if !self.apply_next(deadline).await {
                panic!(
                    "the session never converged: epoch {:?} at offset {} (Redis: {epoch} at {end}); \
                     windows {:?} vs Redis {:?}",
                    self.assembler.epoch(),
                    self.assembler.offset(),
                    got.iter().map(|w| w.first()).collect::<Vec<_>>(),
                    want.iter().map(|w| w.first()).collect::<Vec<_>>(),
                );
            }
        }
    }
}

/// Writes in the background until stopped: `ZADD perf:a i m<i>` every time, `perf:b` every third, `secret:s` (a
/// key no browser may see) every fifth, one round trip every `pause`. While the primary is down it reconnects, so
/// the writes go on across a restart.
struct Writer {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(port: u16, pause: Duration) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (stop, written) = (stop.clone(), written.clone());
            async move {
                let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
                let mut conn = None;
                let mut i = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let Some(c) = conn.as_mut() else {
                        let connect = client.get_multiplexed_async_connection();
                        conn = tokio::time::timeout(Duration::from_secs(2), connect)
                            .await
                            .ok()
                            .and_then(Result::ok);
                        if conn.is_none() {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        continue;
                    };
                    let mut pipe = redis::pipe();
                    pipe.cmd("ZADD").arg("perf:a").arg(i).arg(format!("m{i}"));
                    if i.is_multiple_of(3) {
                        pipe.cmd("ZADD").arg("perf:b").arg(i).arg(format!("m{i}"));
                    }
                    if i.is_multiple_of(5) {
                        pipe.cmd("ZADD").arg("secret:s").arg(i).arg(format!("m{i}"));
                    }
                    let write = pipe.query_async::<()>(c);
                    match tokio::time::timeout(Duration::from_secs(2), write).await {
                        Ok(Ok(())) => {
                            written.fetch_add(1, Ordering::Release);
                        }
                        // The primary is down (or restarting): connect again.
                        _ => conn = None,
                    }
                    i += 1;
                    tokio::time::sleep(pause).await;
                }
            }
        });
        Writer {
            stop,
            written,
            task,
        }
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Waits, until `deadline`, for `n` more acknowledged writes than `from`.
    async fn wait_for(&self, from: u64, n: u64, deadline: Instant) {
        while self.written() < from + n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} writes were acknowledged",
                self.written() - from
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Release);
        self.task.await.unwrap();
    }
}

/// The relay's HTTP port (which it also gives Redis as its `listening-port`).
fn relay_port(ws_url: &str) -> u16 {
    ws_url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

async fn metric(ws_url: &str, name: &str) -> u64 {
    let (_, body) = http_get(ws_url, "/metrics").await;
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            key.ends_with(name).then(|| value.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
}

async fn stat(conn: &mut MultiplexedConnection, field: &str) -> u64 {
    info_field(conn, "stats", field).await.parse().unwrap()
}

/// The `state=` of the replica listening on `port` in the primary's `INFO replication`, if it is listed.
async fn replica_state(conn: &mut MultiplexedConnection, port: u16) -> Option<String> {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(conn)
        .await
        .unwrap();
    let port = format!(",port={port},");
    info.lines()
        .filter(|l| l.starts_with("slave") && l.contains(&port))
        .find_map(|l| l.split(',').find_map(|f| f.strip_prefix("state=")))
        .map(str::to_string)
}

fn signal(proc: &Proc, signal: libc::c_int) {
    let pid = proc.0.id() as libc::pid_t;
    // SAFETY: kill(2) with a pid of our own child, which Proc has not reaped yet.
    let sent = unsafe { libc::kill(pid, signal) };
    assert_eq!(sent, 0, "kill({pid}, {signal})");
}

/// Waits until the primary counts the relay (listening on `relay_port`) as an online replica, by `deadline`.
/// Only then are its replication ID and offset the ones the relay follows: a primary takes a new ID when its
/// first replica attaches.
async fn wait_attached(conn: &mut MultiplexedConnection, relay_port: u16, deadline: Instant) {
    loop {
        let state = replica_state(conn, relay_port).await;
        if state.as_deref() == Some("online") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the relay never attached to the primary: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The primary is killed while the relay's first full sync is under way, and comes back on the same port with the
/// data it had. `diskless`: the RDB streams from the fork child to the relay as it is produced, so the kill cuts
/// the payload itself (the test waits until payload bytes went out); disk-based: the kill comes while the child
/// still writes the RDB file and the relay waits for its `$<length>` header.
///
/// The restarted primary loads its data from its `--dir`: from the AOF (`appendfsync always`) in the diskless run,
/// from an RDB written by `SAVE` in the disk-based one (the replication BGSAVE would replace `dump.rdb` only when
/// it completes, which the kill prevents). Not empty, so that what the session finally shows must come from a
/// new, complete sync of data the relay never finished receiving: 20,000 keys it filters out, and the windows.
async fn kill_during_rdb_transfer(diskless: bool) {
    let started = Instant::now();
    let dir = scratch_dir("faults-primary");
    let dir_arg = dir.to_string_lossy().into_owned();
    let mut flags = vec!["--dir", &dir_arg];
    if diskless {
        flags.extend(["--repl-diskless-sync", "yes", "--appendonly", "yes"]);
        flags.extend(["--appendfsync", "always"]);
    } else {
        flags.extend(["--repl-diskless-sync", "no"]);
    }
    let port = free_port();
    let primary = start_redis_on(port, &flags);
    let mut conn = redis_conn(port).await;
    let mut fill = redis::pipe();
    for i in 0..20_000 {
        fill.cmd("SET").arg(format!("filler:{i}")).arg(i).ignore();
    }
    for i in 0..100 {
        fill.cmd("ZADD")
            .arg(KEYS[i % 2])
            .arg(i)
            .arg(format!("m{i}"))
            .ignore();
    }
    let () = fill.query_async(&mut conn).await.unwrap();
    if !diskless {
        let () = redis::cmd("SAVE").query_async(&mut conn).await.unwrap();
    }
    // ~4 s to produce the RDB: a window to kill in, and never a sync that completes first.
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("rdb-key-save-delay")
        .arg(200)
        .query_async(&mut conn)
        .await
        .unwrap();

    let (relay, ws_url) = start_relay(port, "perf:*");
    // A browser that joins before the first sync waits for it.
    let mut browser = Browser::open(&ws_url, WINDOW).await;
    let relay_port = relay_port(&ws_url);
    let deadline = Instant::now() + SETUP;
    loop {
        let state = replica_state(&mut conn, relay_port).await;
        let saving = info_field(&mut conn, "persistence", "rdb_bgsave_in_progress").await == "1";
        // Past the `$EOF:<mark>` line and the first 16 KiB buffer: payload went to the relay.
        let sent = stat(&mut conn, "total_net_repl_output_bytes").await;
        if state.as_deref() == Some("wait_bgsave") && saving && (!diskless || sent > 16 * 1024) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the transfer never got under way: state {state:?}, saving {saving}, {sent} bytes sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        http_get(&ws_url, "/healthz").await.0,
        503,
        "the first sync cannot have completed"
    );
    drop(conn);
    let killed = Instant::now();
    drop(primary); // SIGKILL

    let _primary = start_redis_on(port, &flags);
    let mut conn = redis_conn(port).await;
    let keys: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(keys, 20_002, "the restarted primary has its data back");
    for i in 100..160 {
        zadd(&mut conn, KEYS[i % 2], i as u64, &format!("m{i}")).await;
    }
    let deadline = killed + Duration::from_secs(20);
    wait_attached(&mut conn, relay_port, deadline).await;
    browser.converge(&mut conn, deadline).await;
    let converged = killed.elapsed();

    // The cut sync never reached the backlog: the browser's only hello is of the new primary's stream.
    assert_eq!((browser.hellos, browser.snapshots), (1, 1));
    assert_eq!(metric(&ws_url, "link_full_syncs_total").await, 1);
    assert!(metric(&ws_url, "link_errors_total").await >= 1);
    eprintln!(
        "{} sync cut by the kill; the session converged {converged:?} after it ({:?} in all)",
        if diskless { "diskless" } else { "disk-based" },
        started.elapsed()
    );
    drop(relay);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn primary_killed_during_a_diskless_rdb_transfer() {
    kill_during_rdb_transfer(true).await;
}

#[tokio::test]
async fn primary_killed_while_preparing_a_disk_based_rdb() {
    kill_during_rdb_transfer(false).await;
}

/// The primary is killed while writes stream through the relay to three sessions with different windows, and
/// restarts empty on the same port: a new replication ID, offsets from zero, none of the old data. Empty on
/// purpose: a session that kept its old windows instead of re-snapshotting would then differ from Redis.
#[tokio::test]
async fn primary_killed_mid_stream_and_restarted_empty() {
    let (primary, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    wait_healthy(&ws_url).await;
    let mut browsers = Vec::new();
    for window in [5, WINDOW, 500] {
        browsers.push(Browser::open(&ws_url, window).await);
    }
    let writer = Writer::start(port, Duration::from_millis(2));
    let deadline = Instant::now() + SETUP;
    writer.wait_for(0, 200, deadline).await;
    let mut conn = redis_conn(port).await;
    let old_epoch = info_field(&mut conn, "replication", "master_replid").await;
    let offset = master_repl_offset(&mut conn).await;
    drop(conn);
    for browser in &mut browsers {
        browser.catch_up(offset, deadline).await;
        assert_eq!(browser.assembler.epoch(), Some(old_epoch.as_str()));
    }

    let before = writer.written();
    let from_state = metric(&ws_url, "replicast_state_snapshots_total").await;
    let from_redis = metric(&ws_url, "replicast_snapshots_total").await;
    let killed = Instant::now();
    drop(primary); // SIGKILL, with writes under way
    let _primary = start_redis_on(port, &[]);
    let deadline = killed + Duration::from_secs(20);
    writer.wait_for(before, 200, deadline).await;
    writer.stop().await;
    let mut conn = redis_conn(port).await;
    wait_attached(&mut conn, relay_port(&ws_url), deadline).await;
    for browser in &mut browsers {
        browser.converge(&mut conn, deadline).await;
        assert_ne!(browser.assembler.epoch(), Some(old_epoch.as_str()));
        assert_eq!((browser.hellos, browser.snapshots), (2, 2));
    }
    eprintln!(
        "after the kill, every session converged in {:?}",
        killed.elapsed()
    );
    assert_eq!(metric(&ws_url, "link_full_syncs_total").await, 2);
    assert_eq!(metric(&ws_url, "link_partial_syncs_total").await, 0);
    // Issue 21: the relay's state was built again from the new primary's RDB, and every session's new snapshot
    // came from it, none read from Redis.
    assert_eq!(
        (
            metric(&ws_url, "replicast_state_snapshots_total").await,
            metric(&ws_url, "replicast_snapshots_total").await,
        ),
        (from_state + browsers.len() as u64, from_redis),
        "the snapshots after the new epoch were not all answered from the relay's state"
    );
}

/// The relay is frozen (SIGSTOP) while writes go on, until the primary, with `repl-timeout 2`, drops its link for
/// not acknowledging; the session's socket is frozen with it. After SIGCONT the relay reconnects and, as Redis's
/// backlog (1 MB) still holds the ~100 KB it missed, continues with a partial resync: the same stream, so the
/// session keeps its place, with no new hello or snapshot, and converges.
#[tokio::test]
async fn relay_frozen_past_the_primarys_repl_timeout() {
    let (_primary, port) = start_redis_with(&["--repl-timeout", "2"]);
    let (relay, ws_url) = start_relay(port, "perf:*");
    wait_healthy(&ws_url).await;
    let mut browser = Browser::open(&ws_url, WINDOW).await;
    let writer = Writer::start(port, Duration::from_millis(5));
    let deadline = Instant::now() + SETUP;
    writer.wait_for(0, 100, deadline).await;
    let mut conn = redis_conn(port).await;
    let offset = master_repl_offset(&mut conn).await;
    browser.catch_up(offset, deadline).await;
    assert_eq!(
        info_field(&mut conn, "replication", "connected_slaves").await,
        "1"
    );

    signal(&relay, libc::SIGSTOP);
    let stopped = Instant::now();
    while info_field(&mut conn, "replication", "connected_slaves").await != "0" {
        if stopped.elapsed() > Duration::from_secs(15) {
            signal(&relay, libc::SIGCONT);
            panic!("the primary never dropped the frozen relay");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dropped = stopped.elapsed();
    // Writes the relay has to get from Redis's backlog, not from its socket.
    writer
        .wait_for(writer.written(), 50, stopped + Duration::from_secs(20))
        .await;
    signal(&relay, libc::SIGCONT);
    let resumed = Instant::now();

    let deadline = resumed + Duration::from_secs(15);
    wait_attached(&mut conn, relay_port(&ws_url), deadline).await;
    writer.wait_for(writer.written(), 50, deadline).await;
    writer.stop().await;
    browser.converge(&mut conn, deadline).await;
    let converged = resumed.elapsed();

    let (partial_ok, full) = (
        stat(&mut conn, "sync_partial_ok").await,
        stat(&mut conn, "sync_full").await,
    );
    let (relay_partial, relay_full) = (
        metric(&ws_url, "link_partial_syncs_total").await,
        metric(&ws_url, "link_full_syncs_total").await,
    );
    eprintln!(
        "the primary dropped the frozen relay after {dropped:?}; after SIGCONT the session converged in \
         {converged:?}; Redis sync_partial_ok={partial_ok} sync_full={full}; relay partial={relay_partial} \
         full={relay_full}"
    );
    assert!(
        partial_ok >= 1,
        "Redis's backlog held what the relay missed"
    );
    assert_eq!((full, relay_full), (1, 1), "no full resync after the first");
    assert_eq!(relay_partial, partial_ok);
    assert_eq!(
        (browser.hellos, browser.snapshots),
        (1, 1),
        "the session continued"
    );
}

/// Sessions of a churn wave that join and stay, sessions that leave before their join is done, and waves: 1,000
/// sessions open at the peak.
const STAYING: usize = 250;
const LEAVING: usize = 50;
const WAVES: usize = 4;
const PEAK: usize = STAYING * WAVES;

/// Raises this process's soft limit on open files to its hard limit, for the test's own thousand sockets; returns
/// the new soft limit.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a valid pointer to a local rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    limit.rlim_cur
}

/// The relay started with a soft limit of 1,024 open files (`sh -c 'ulimit -S -n 1024; exec …'`), too few for a
/// thousand sessions: it must raise its own soft limit to the hard one at startup. All sessions come from one
/// address here, so the per-address cap is raised past the churn's peak.
fn start_relay_with_fd_limit(redis_port: u16) -> (Proc, String) {
    let url = format!("redis://127.0.0.1:{redis_port}");
    let (proc, line) = start_until(
        std::process::Command::new("sh")
            .args([
                "-c",
                r#"ulimit -S -n 1024 && exec "$@""#,
                "sh",
                env!("CARGO_BIN_EXE_replicast"),
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--redis-url",
                &url,
                "--allow",
                "perf:*",
                "--max-sessions-per-address",
                "5000",
            ])
            .env(
                "RUST_LOG",
                std::env::var("RELAY_LOG").unwrap_or_else(|_| "warn".into()),
            ),
        "Replicast is live at ",
    );
    let http = line.rsplit(' ').next().unwrap().trim_end_matches('/');
    (proc, http.replace("http://", "ws://") + "/ws")
}

/// Open file descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// A field of `/proc/<pid>/status` or `/proc/<pid>/limits` line starting with `prefix`, as its first number.
fn proc_number(pid: u32, file: &str, prefix: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in /proc/{pid}/{file}"))
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    proc_number(pid, "status", "VmRSS:")
}

/// How a churned session leaves.
#[derive(Clone, Copy, Debug)]
enum Leave {
    /// A close frame, then the relay's answer, as a browser closing a tab does.
    CloseFrame,
    /// The socket closed without a close frame (a FIN, or a RST if relay messages were unread).
    Drop,
    /// A TCP reset without a close frame, as from a browser that crashed or lost its network.
    Reset,
}

async fn leave(mut socket: Socket, how: Leave) {
    match how {
        Leave::CloseFrame => {
            socket.close(None).await.unwrap();
            let drain = async { while let Some(Ok(_)) = socket.next().await {} };
            let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
        }
        Leave::Drop => drop(socket),
        Leave::Reset => {
            if let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = socket.get_ref() {
                tcp.set_zero_linger().unwrap();
            }
            drop(socket);
        }
    }
}

/// Polls `/metrics` until the relay counts `n` sessions, by `deadline`.
async fn wait_sessions(ws_url: &str, n: u64, deadline: Instant) {
    loop {
        let sessions = metric(ws_url, "replicast_sessions").await;
        if sessions == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the relay counts {sessions} sessions, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Descriptors the relay may hold beyond its baseline once every session left: a Redis connection of the metrics
/// poller or of a snapshot may be open at one moment and not the other.
const FD_SLACK: usize = 2;

/// One round of churn: four waves of 300 sessions connecting at once. In each wave 50 leave with a reset right after
/// subscribing, before their join is done; the 250 others join (hello and snapshot) and stay, so 1,000 are open
/// at the peak. Then those leave at once, a third each with a close frame, a plain close and a reset. Waits until the
/// relay counts no session and holds at most `fds_before` + [`FD_SLACK`] descriptors; returns (descriptors, RSS)
/// at the peak.
async fn churn(ws_url: &str, pid: u32, fds_before: usize) -> (usize, u64) {
    let started = Instant::now();
    let mut open = Vec::new();
    for _ in 0..WAVES {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..STAYING + LEAVING {
            let url = ws_url.to_string();
            tasks.spawn(async move {
                let mut socket = connect(&url, &subscribe_message(&["perf:*"], 10)).await;
                if i % ((STAYING + LEAVING) / LEAVING) == 0 {
                    leave(socket, Leave::Reset).await;
                    return None;
                }
                join(&mut socket).await;
                Some(socket)
            });
        }
        while let Some(socket) = tasks.join_next().await {
            open.extend(socket.unwrap());
        }
    }
    assert_eq!(open.len(), PEAK);
    let deadline = Instant::now() + SETUP;
    wait_sessions(ws_url, PEAK as u64, deadline).await;
    let (fds_peak, rss_peak) = (open_fds(pid), rss_kib(pid));
    assert!(
        fds_peak + FD_SLACK >= fds_before + open.len(),
        "{fds_peak} descriptors for {} sessions",
        open.len()
    );
    let joined = started.elapsed();

    let mut tasks = tokio::task::JoinSet::new();
    for (i, socket) in open.into_iter().enumerate() {
        let how = [Leave::CloseFrame, Leave::Drop, Leave::Reset][i % 3];
        tasks.spawn(leave(socket, how));
    }
    while let Some(left) = tasks.join_next().await {
        left.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    wait_sessions(ws_url, 0, deadline).await;
    loop {
        let fds = open_fds(pid);
        if fds <= fds_before + FD_SLACK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relay holds {fds} descriptors, {fds_before} before the churn"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "churn: {PEAK} sessions joined in {joined:?}, all gone {:?} after the start",
        started.elapsed()
    );
    (fds_peak, rss_peak)
}

/// Two rounds of [`churn`] while writes go on, 1,200 sessions each. After each, the relay holds no more file
/// descriptors than before, give or take [`FD_SLACK`]: a session that is gone but not let go of keeps its socket.
/// Resident memory cannot return to its first baseline: the allocator keeps freed pages for reuse (RSS stays at
/// the first round's peak, ~13 MiB above the baseline). So the bound is on the second round, which must reuse the
/// first one's memory: it may add at most half of what the first round added. Retaining the per-session memory
/// would add about as much again; the margin of half that absorbs allocator noise. Then a fresh session still
/// equals Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sessions_come_and_go_twice_and_the_relay_lets_go_of_them() {
    let started = Instant::now();
    let limit = raise_fd_limit();
    assert!(
        limit > PEAK as u64 + 200,
        "the hard limit on open files, {limit}, leaves no room for {} sockets",
        PEAK
    );
    let (_redis, port) = start_redis();
    let (relay, ws_url) = start_relay_with_fd_limit(port);
    let pid = relay.0.id();
    let relay_limit = proc_number(pid, "limits", "Max open files");
    assert!(relay_limit > PEAK as u64 + 200, "{relay_limit}");
    wait_healthy(&ws_url).await;
    let writer = Writer::start(port, Duration::from_millis(50));
    let deadline = Instant::now() + SETUP;
    writer.wait_for(0, 5, deadline).await;

    // Warm up: one session joined and gone, so the baseline includes what the first session allocates for good.
    let mut warm = connect(&ws_url, &subscribe_message(&["perf:*"], 10)).await;
    join(&mut warm).await;
    leave(warm, Leave::CloseFrame).await;
    wait_sessions(&ws_url, 0, deadline).await;
    let (fds_before, rss_before) = (open_fds(pid), rss_kib(pid));

    let (fds_peak, rss_peak) = churn(&ws_url, pid, fds_before).await;
    let rss_first = rss_kib(pid);
    let (_, rss_peak_2) = churn(&ws_url, pid, fds_before).await;
    let rss_second = rss_kib(pid);
    eprintln!(
        "descriptors {fds_before} before, {fds_peak} at the peak, {} after; RSS {rss_before} KiB before,          {rss_peak} / {rss_peak_2} at the peaks, {rss_first} / {rss_second} after each round",
        open_fds(pid)
    );
    let first_growth = rss_first.saturating_sub(rss_before);
    assert!(
        rss_second <= rss_first + first_growth / 2,
        "the second round added {} KiB of RSS, the first {first_growth} KiB",
        rss_second.saturating_sub(rss_first)
    );

    let mut browser = Browser::open(&ws_url, WINDOW).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    writer.wait_for(writer.written(), 5, deadline).await;
    writer.stop().await;
    let mut conn = redis_conn(port).await;
    browser.converge(&mut conn, deadline).await;
    assert_eq!((browser.hellos, browser.snapshots), (1, 1));
    eprintln!(
        "two rounds of churn and a fresh session in {:?}",
        started.elapsed()
    );
}

/// The primary is frozen (SIGSTOP): its socket stays open and says nothing, as after a network partition or a
/// paused VM. The relay, with `--link-timeout 2`, drops the link for its silence instead of waiting minutes for
/// TCP to give up, and retries; after SIGCONT it re-attaches with a partial resync (same stream: the session keeps
/// its place) and the session converges.
#[tokio::test]
async fn primary_frozen_the_link_times_out_and_reattaches() {
    let (primary, port) = start_redis();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "perf:*", "--link-timeout", "2"],
    );
    wait_healthy(&ws_url).await;
    let mut browser = Browser::open(&ws_url, WINDOW).await;
    let writer = Writer::start(port, Duration::from_millis(5));
    let deadline = Instant::now() + SETUP;
    writer.wait_for(0, 100, deadline).await;
    let mut conn = redis_conn(port).await;
    let offset = master_repl_offset(&mut conn).await;
    browser.catch_up(offset, deadline).await;
    assert_eq!(metric(&ws_url, "link_up").await, 1);

    signal(&primary, libc::SIGSTOP);
    let stopped = Instant::now();
    while metric(&ws_url, "link_up").await != 0 {
        if stopped.elapsed() > Duration::from_secs(10) {
            signal(&primary, libc::SIGCONT);
            panic!("the link to the frozen primary was never dropped");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dropped = stopped.elapsed();
    // Long enough for an attempt or two to time out in the handshake too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal(&primary, libc::SIGCONT);
    let resumed = Instant::now();

    let deadline = resumed + Duration::from_secs(20);
    let mut conn = redis_conn(port).await;
    wait_attached(&mut conn, relay_port(&ws_url), deadline).await;
    writer.wait_for(writer.written(), 50, deadline).await;
    writer.stop().await;
    browser.converge(&mut conn, deadline).await;
    eprintln!(
        "the relay dropped the silent link after {dropped:?}; after SIGCONT the session converged in {:?}",
        resumed.elapsed()
    );
    assert!(metric(&ws_url, "link_errors_total").await >= 1);
    assert_eq!(metric(&ws_url, "link_full_syncs_total").await, 1);
    assert!(metric(&ws_url, "link_partial_syncs_total").await >= 1);
    assert_eq!(
        (browser.hellos, browser.snapshots),
        (1, 1),
        "the session continued"
    );
}
