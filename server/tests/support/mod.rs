//! Real processes and a WebSocket client for the relay's integration tests: redis-server and the relay binary on
//! free loopback ports, killed when the test ends, however it ends.
#![allow(dead_code)] // Each test file uses its own share of these helpers.

pub mod cluster;
pub mod exact;
mod ports;
pub mod postgres;
pub mod sink;
pub mod workload;

pub use ports::free_port;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use replicast_protocol::resp::CommandReader;
use replicast_protocol::wire::{self, Message};
use tokio_tungstenite::tungstenite;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
pub type Args = Vec<Vec<u8>>;

/// A child process killed when dropped, with the scratch folder it worked in, if any.
pub struct Proc(pub Child, Option<std::path::PathBuf>);

impl Proc {
    /// A child of the test's own making, killed when dropped.
    pub fn new(child: Child) -> Self {
        Proc(child, None)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if let Some(dir) = &self.1 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A fresh scratch folder under the system's temporary folder.
pub fn scratch_dir(what: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "replicast-test-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts a child and returns it with the first stdout line containing `needle`.
pub fn start_until(command: &mut Command, needle: &str) -> (Proc, String) {
    let mut child = command.stdout(Stdio::piped()).spawn().expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let proc = Proc(child, None);
    let line = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}"));
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (proc, line)
}

pub fn start_redis() -> (Proc, u16) {
    start_redis_with(&[])
}

/// A redis-server on a free port with extra configuration, e.g. `["--repl-diskless-sync", "no"]`.
pub fn start_redis_with(extra: &[&str]) -> (Proc, u16) {
    let port = free_port();
    (start_redis_on(port, extra), port)
}

/// A redis-server on `port`, in a scratch folder of its own: a disk-based sync writes its RDB file there, and a
/// Redis started later must not load it.
pub fn start_redis_on(port: u16, extra: &[&str]) -> Proc {
    let dir = scratch_dir("redis");
    let port = port.to_string();
    let mut args = vec![
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ];
    args.extend(["--repl-diskless-sync-delay", "0"]);
    args.extend(extra);
    let mut command = Command::new("redis-server");
    command.args(args).current_dir(&dir);
    let mut proc = start_until(&mut command, "Ready to accept connections").0;
    proc.1 = Some(dir);
    proc
}

/// A Redis Sentinel on a free port monitoring the primary on `primary_port` as `name`, quorum 1, quick to fail over
/// (down after 1 s); in a scratch folder with the writable config file Sentinel rewrites. Returns it and its port.
pub fn start_sentinel(name: &str, primary_port: u16) -> (Proc, u16) {
    let port = free_port();
    let dir = scratch_dir("sentinel");
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {dir}\nsentinel resolve-hostnames no\n\
             sentinel monitor {name} 127.0.0.1 {primary_port} 1\n\
             sentinel down-after-milliseconds {name} 1000\n\
             sentinel failover-timeout {name} 5000\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    let mut command = Command::new("redis-server");
    command.arg(&conf).arg("--sentinel").current_dir(&dir);
    let mut proc = start_until(&mut command, "+monitor master").0;
    proc.1 = Some(dir);
    (proc, port)
}

/// Debian's nginx on a free loopback port, in the foreground, proxying everything (WebSocket upgrades included) to
/// `upstream` (`host:port`) with the client's address appended to `X-Forwarded-For`; in a scratch prefix folder.
/// Returns it and its port once it accepts connections.
pub fn start_nginx(upstream: &str) -> (Proc, u16) {
    let port = free_port();
    let dir = scratch_dir("nginx");
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;\n\
               fastcgi_temp_path {dir}/fastcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 location / {{\n\
                   proxy_pass http://{upstream};\n\
                   proxy_http_version 1.1;\n\
                   proxy_set_header Upgrade $http_upgrade;\n\
                   proxy_set_header Connection \"upgrade\";\n\
                   proxy_set_header Host $host;\n\
                   proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                 }}\n\
               }}\n\
             }}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdout(Stdio::null())
        .spawn()
        .expect("nginx (Debian's nginx-light; scripts/setup.sh installs it)");
    let proc = Proc(child, Some(dir));
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (proc, port);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nginx never listened on {port}");
}

/// The relay following the Redis on `redis_port`, sending keys matching `allow`; returns its `ws://…/ws` URL.
pub fn start_relay(redis_port: u16, allow: &str) -> (Proc, String) {
    start_relay_with(
        &format!("redis://127.0.0.1:{redis_port}"),
        &["--allow", allow],
    )
}

pub fn start_relay_with(redis_url: &str, extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["--redis-url", redis_url];
    args.extend(extra);
    start_relay_args(&args)
}

/// The relay with these `serve` flags besides `--listen`; returns its `ws://…/ws` URL.
pub fn start_relay_args(flags: &[&str]) -> (Proc, String) {
    let (proc, line) = start_until(
        Command::new(env!("CARGO_BIN_EXE_replicast"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(flags)
            .env(
                "RUST_LOG",
                std::env::var("RELAY_LOG").unwrap_or_else(|_| "warn".into()),
            ),
        "Replicast is live at ",
    );
    let http = line.rsplit(' ').next().unwrap().trim_end_matches('/');
    (proc, http.replace("http://", "ws://") + "/ws")
}

/// Waits until the relay's `/healthz` answers 200: its first full sync is done. Within a minute: the sync of a
/// test's dataset takes a fraction of a second alone, but many seconds on a machine busy with parallel builds.
pub async fn wait_healthy(ws_url: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while http_get(ws_url, "/healthz").await.0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the relay never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long a test's Redis client waits for a connection and for a reply. Not the crate's defaults (1 s and
/// 500 ms): on a machine busy with parallel builds a pipeline of 20,000 writes with `appendfsync always`, a `SAVE`
/// or a `MIGRATE` takes longer, and the test failed with "timed out" where Redis was merely slow.
pub fn patient() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(60)))
}

/// A connection to the Redis at `url` (`redis://…`, with a user, a password or a database), [`patient`].
pub async fn redis_conn_url(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection_with_config(&patient())
        .await
        .unwrap()
}

pub async fn redis_conn(port: u16) -> redis::aio::MultiplexedConnection {
    redis_conn_url(&format!("redis://127.0.0.1:{port}")).await
}

pub async fn info_field(
    conn: &mut redis::aio::MultiplexedConnection,
    section: &str,
    field: &str,
) -> String {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
}

pub async fn master_repl_offset(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    info_field(conn, "replication", "master_repl_offset")
        .await
        .parse()
        .unwrap()
}

/// How long a test waits on one answer of the relay before it fails, saying what it waited for: a liveness bound,
/// so that a test fails instead of hanging, not a speed claim (the relay answers in milliseconds).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// `future`'s output; if it takes longer than [`ANSWER_TIMEOUT`], the test fails naming `what` it waited for.
pub async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(ANSWER_TIMEOUT, future).await {
        Ok(output) => output,
        Err(_) => panic!("waited {ANSWER_TIMEOUT:?} for {what}"),
    }
}

/// Opens a session at `url` and sends `subscribe` (a JSON text message).
pub async fn connect(url: &str, subscribe: &str) -> Socket {
    connect_with_config(url, subscribe, None).await
}

/// A session at `url` subscribed with `subscribe`, its WebSocket limits set by `config` (tungstenite's defaults if
/// `None`).
pub async fn connect_with_config(
    url: &str,
    subscribe: &str,
    config: Option<tungstenite::protocol::WebSocketConfig>,
) -> Socket {
    let (mut socket, _) = within(
        "the relay's answer to a WebSocket upgrade",
        tokio_tungstenite::connect_async_with_config(url, config, false),
    )
    .await
    .unwrap();
    socket
        .send(tungstenite::Message::text(subscribe))
        .await
        .unwrap();
    socket
}

/// The subscribe message for `patterns` in db 0 with `window`.
pub fn subscribe_message(patterns: &[&str], window: usize) -> String {
    let patterns: Vec<String> = patterns.iter().map(|p| format!("{p:?}")).collect();
    format!(
        r#"{{"type":"subscribe","patterns":[{}],"db":0,"window":{window}}}"#,
        patterns.join(",")
    )
}

/// The next message of any kind, within 20 s.
pub async fn next_message(socket: &mut Socket) -> tungstenite::Message {
    tokio::time::timeout(Duration::from_secs(20), socket.next())
        .await
        .expect("a message within 20 s")
        .expect("socket open")
        .expect("no socket error")
}

pub async fn next_binary(socket: &mut Socket) -> Vec<u8> {
    loop {
        if let tungstenite::Message::Binary(bytes) = next_message(socket).await {
            return bytes.to_vec();
        }
    }
}

pub async fn hello(socket: &mut Socket) -> (String, u64) {
    let message = next_binary(socket).await;
    match wire::decode(&message).unwrap() {
        Message::Hello { epoch, offset, .. } => (epoch.to_string(), offset),
        other => panic!("expected a hello, got {other:?}"),
    }
}

/// A fresh join: the hello, then the snapshot's commands, which must be valid at the hello's offset.
pub async fn join(socket: &mut Socket) -> (String, u64, Vec<Args>) {
    let (epoch, offset) = hello(socket).await;
    let message = next_binary(socket).await;
    let Message::Snapshot {
        offset: at,
        commands,
    } = wire::decode(&message).unwrap()
    else {
        panic!("expected a snapshot after the hello of a fresh join");
    };
    assert_eq!(
        at, offset,
        "the snapshot is valid where the stream continues"
    );
    (epoch, offset, parse_all(commands))
}

pub fn parse_all(bytes: &[u8]) -> Vec<Args> {
    let mut commands = Vec::new();
    CommandReader::new(0)
        .push(bytes, |c| {
            if !c.args.is_empty() {
                commands.push(c.args.iter().map(|a| a.to_vec()).collect())
            }
        })
        .unwrap();
    commands
}

/// Reads commands messages until the stream reached `until`: segments never overlap and never split a command;
/// gaps are frames filtered out for this session.
pub async fn read_commands_until(socket: &mut Socket, from: u64, until: u64) -> Vec<Args> {
    let mut applied = from;
    let mut commands = Vec::new();
    while applied < until {
        let message = next_binary(socket).await;
        let Message::Commands(segments) = wire::decode(&message).unwrap() else {
            panic!("expected commands, got {message:?}");
        };
        for segment in segments {
            let segment = segment.unwrap();
            assert!(
                segment.start >= applied,
                "segment at {} overlaps {applied}",
                segment.start
            );
            let mut reader = CommandReader::new(segment.start);
            reader
                .push(segment.bytes, |c| {
                    commands.push(c.args.iter().map(|a| a.to_vec()).collect())
                })
                .unwrap();
            assert_eq!(reader.pending_len(), 0, "a segment holds whole commands");
            applied = segment.end();
        }
    }
    commands
}

pub fn args(words: &[&str]) -> Args {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

/// A plain HTTP/1.0 GET to the relay behind `ws_url`: (status code, body).
pub async fn http_get(ws_url: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = ws_url.trim_start_matches("ws://").trim_end_matches("/ws");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    within(
        &format!("the relay's whole answer to GET {path}"),
        stream.read_to_string(&mut response),
    )
    .await
    .unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The Content-Length an HTTP response's `head` (its status line and headers) gives, if it gives one.
pub fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

/// `ZADD key score member` on `conn`.
pub async fn zadd(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    score: u64,
    member: &str,
) {
    let _: i64 = redis::cmd("ZADD")
        .arg(key)
        .arg(score)
        .arg(member)
        .query_async(conn)
        .await
        .unwrap();
}

/// `key`'s sorted-set window in `assembler`, newest first, members as text.
pub fn zset_newest_first(
    assembler: &replicast_assembler::StreamAssembler,
    key: &str,
) -> Vec<(String, f64)> {
    assembler
        .window(key.as_bytes())
        .and_then(|w| w.as_zset())
        .map(|w| {
            w.newest_first()
                .map(|(m, s)| (String::from_utf8_lossy(m).into_owned(), s))
                .collect()
        })
        .unwrap_or_default()
}

/// The newest `n` members of `key` with their scores, newest first, as Redis holds them (`ZRANGE key -n -1
/// WITHSCORES`, reversed): what a window of `n` must equal.
pub async fn newest(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    n: usize,
) -> Vec<(String, f64)> {
    let flat: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(key)
        .arg(-(n as i64))
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(conn)
        .await
        .unwrap();
    flat.into_iter().rev().collect()
}

/// Feeds messages to `assembler` until it applied the stream up to `until`; returns how many snapshots came.
pub async fn apply_until(
    socket: &mut Socket,
    assembler: &mut replicast_assembler::StreamAssembler,
    until: u64,
) -> usize {
    let mut snapshots = 0;
    while assembler.offset() < until {
        let message = next_binary(socket).await;
        if matches!(wire::decode(&message), Ok(Message::Snapshot { .. })) {
            snapshots += 1;
        }
        assembler.push_message(&message).unwrap();
    }
    snapshots
}

/// Promotes the replica on `port` to a primary (`REPLICAOF NO ONE`: a new replication ID that continues the old
/// one's offsets); a connection to it.
pub async fn promote(port: u16) -> redis::aio::MultiplexedConnection {
    let mut promoted = redis_conn(port).await;
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut promoted)
        .await
        .unwrap();
    promoted
}

/// Sends the top-up requests of `keys` with `since` (as many as their length needs), answered by a past message
/// right before the snapshot.
pub async fn ask_topup_since<'k>(
    socket: &mut Socket,
    keys: impl IntoIterator<Item = &'k [u8]>,
    since: u64,
) {
    use replicast_protocol::client_message::Topup;
    for request in Topup::requests_since(keys, since) {
        socket
            .send(tungstenite::Message::text(request))
            .await
            .unwrap();
    }
}

/// Fails the test unless `promtool check metrics` (Debian's prometheus package) passes the text of a `/metrics`
/// with nothing to say.
pub fn promtool_check(metrics: &str) {
    use std::io::Write;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/setup.sh installs it)");
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
}

/// The value of the counter or gauge `name` on the relay's `/metrics`.
pub async fn metric(ws_url: &str, name: &str) -> u64 {
    let value = metric_value(ws_url, name).await;
    assert!(value.fract() == 0.0, "{name} is {value}, not a count");
    value as u64
}

/// The value of the unlabelled row `name` of the relay's `/metrics`, which may be fractional (seconds).
pub async fn metric_value(ws_url: &str, name: &str) -> f64 {
    let (_, body) = http_get(ws_url, "/metrics").await;
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key == name).then(|| value.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
}

/// The highest resident memory of process `pid` so far, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// CPU time the process `pid` used so far, in clock ticks (user + system; 100 a second on Linux).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at field 3; utime and stime are 14 and 15.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Waits until the replica on `port` has applied the primary's stream up to `offset` (within half a minute: a
/// loaded machine may hold replication back for seconds).
pub async fn replica_at(port: u16, offset: u64) {
    let mut conn = redis_conn(port).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let at: u64 = info_field(&mut conn, "replication", "slave_repl_offset")
            .await
            .parse()
            .unwrap_or(0);
        if at >= offset {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica on {port} never reached offset {offset} (it is at {at})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the relay's link has received the stream up to `offset` (within a minute), and its state, if it keeps
/// a ready one, has applied it: the state trails the link on a thread of its own, and a join's snapshot from it is
/// at the state's offset, not the link's.
///
/// A state still loading the full sync (`replicast_state_ready 0`) is waited for up to 10 s: it becomes ready at an
/// offset behind the link's, and a join right after would get its snapshot from there.
pub async fn link_reaches(ws_url: &str, offset: u64) {
    for _ in 0..3000 {
        if metric(ws_url, "replicast_link_offset").await >= offset {
            for _ in 0..500 {
                let (_, body) = http_get(ws_url, "/metrics").await;
                if body.lines().any(|l| l == "replicast_state_ready 1") {
                    state_reaches(ws_url, offset).await;
                    return;
                }
                if !body.lines().any(|l| l == "replicast_state_ready 0") {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the relay's link never reached offset {offset}");
}

/// Waits until the relay's state has applied the stream up to `offset` (within a minute): it trails the link on a
/// thread of its own.
pub async fn state_reaches(ws_url: &str, offset: u64) {
    for _ in 0..3000 {
        if metric(ws_url, "replicast_state_offset").await >= offset {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the relay's state never reached offset {offset}");
}
