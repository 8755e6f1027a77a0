//! Windows compared with Redis's own answers, for the exactness tests: a page (the native assembler on a relay
//! session) that applies the stream, asks for the top-ups it calls for and joins again when its database was
//! swapped, and a comparison of every key it watches with what Redis answers (`TYPE`, then `ZRANGE … WITHSCORES`,
//! `LRANGE`, `HGETALL`, `XREVRANGE`, `GET`) that names each key that differs and how.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::{c_char, c_int, CStr};

use futures_util::SinkExt;
use redis::aio::MultiplexedConnection;
use replicast_assembler::{StreamAssembler, WatchConfig, Window};
use replicast_protocol::client_message::Topup;
use replicast_protocol::wire::{self, Message, StaleKeys};
use tokio_tungstenite::tungstenite;

use super::{connect, master_repl_offset, next_message, parse_all, Socket};

/// One browser's session, its windows kept by the native assembler.
pub struct Page {
    url: String,
    pub pattern: String,
    pub db: u32,
    pub window: usize,
    socket: Socket,
    pub assembler: StreamAssembler,
    /// Keys asked for in top-ups whose snapshot has not come yet.
    awaiting: BTreeSet<Vec<u8>>,
    /// Joined, but the join's snapshot has not come yet.
    joining: bool,
    /// Joins, the first one included (a `SWAPDB` of the watched database makes the page join again).
    pub joins: usize,
    /// Keys asked for in top-ups, over the page's life.
    pub topups: usize,
    /// Stale messages received (frames the relay withheld from the page), over the page's life.
    pub stale_messages: usize,
    /// The newest messages received, as text, to show with a difference what the page was told of its key.
    received: VecDeque<String>,
}

/// Messages a page keeps as text.
const RECEIVED: usize = 20_000;

impl Page {
    /// Opens a session at `url` watching `pattern` in database `db` with windows of `window`.
    pub async fn open(url: &str, pattern: &str, db: u32, window: usize) -> Page {
        let watch = WatchConfig {
            patterns: vec![pattern.as_bytes().to_vec()],
            db,
            window,
        };
        let subscribe = subscribe(pattern, db, window);
        Page {
            url: url.to_string(),
            pattern: pattern.to_string(),
            db,
            window,
            socket: connect(url, &subscribe).await,
            assembler: StreamAssembler::new(watch),
            awaiting: BTreeSet::new(),
            joining: true,
            joins: 1,
            topups: 0,
            stale_messages: 0,
            received: VecDeque::new(),
        }
    }

    /// Reads and applies the relay's next message, then asks for the top-ups the assembler calls for, or joins
    /// again if the watched database was swapped (as the browser client does).
    pub async fn step(&mut self) {
        let message = loop {
            match next_message(&mut self.socket).await {
                tungstenite::Message::Binary(bytes) => break bytes.to_vec(),
                tungstenite::Message::Close(frame) => panic!(
                    "db {} window {}: the relay closed the session: {frame:?}",
                    self.db, self.window
                ),
                _ => {}
            }
        };
        match wire::decode(&message) {
            Ok(Message::Snapshot { commands, .. }) => {
                self.joining = false;
                for command in parse_all(commands) {
                    if command[0].eq_ignore_ascii_case(b"del") {
                        self.awaiting.remove(&command[1]);
                    }
                }
            }
            Ok(Message::Stale { .. }) => self.stale_messages += 1,
            _ => {}
        }
        self.remember(&message);
        self.assembler
            .push_message(&message)
            .unwrap_or_else(|err| panic!("db {} window {}: {err}", self.db, self.window));
        if self.assembler.needs_resnapshot() {
            self.rejoin().await;
            return;
        }
        let topups = self.assembler.take_topups();
        if !topups.is_empty() {
            self.topups += topups.len();
            for request in Topup::requests(topups.iter().map(Vec::as_slice)) {
                self.socket
                    .send(tungstenite::Message::text(request))
                    .await
                    .unwrap();
            }
            self.awaiting.extend(topups);
        }
    }

    /// Asks the relay for a top-up of `keys`, as a browser does when its assembler calls for one; the snapshot is
    /// applied by [`Page::step`] when it comes.
    pub async fn ask_topup(&mut self, keys: &[&[u8]]) {
        for request in Topup::requests(keys.iter().copied()) {
            self.socket
                .send(tungstenite::Message::text(request))
                .await
                .unwrap();
        }
        self.awaiting.extend(keys.iter().map(|k| k.to_vec()));
    }

    fn remember(&mut self, message: &[u8]) {
        let text = |args: &[Vec<u8>]| args.iter().map(|a| show(a)).collect::<Vec<_>>().join(" ");
        let lines: Vec<String> = match wire::decode(message) {
            Ok(Message::Hello { epoch, offset, .. }) => vec![format!("hello {epoch} at {offset}")],
            Ok(Message::Snapshot { offset, commands }) => parse_all(commands)
                .iter()
                .map(|c| format!("snapshot at {offset}: {}", text(c)))
                .collect(),
            Ok(Message::Commands(segments)) => segments
                .flatten()
                .flat_map(|segment| {
                    parse_all(segment.bytes)
                        .iter()
                        .map(|c| format!("stream at {}: {}", segment.start, text(c)))
                        .collect::<Vec<_>>()
                })
                .collect(),
            Ok(Message::Stale { offset, keys }) => vec![match keys {
                StaleKeys::Keys(keys) => format!(
                    "stale at {offset}: {}",
                    keys.map(show).collect::<Vec<_>>().join(" ")
                ),
                StaleKeys::All => format!("stale at {offset}: every window"),
            }],
            other => vec![format!("{other:?}")],
        };
        for line in lines {
            if self.received.len() == RECEIVED {
                self.received.pop_front();
            }
            self.received.push_back(line);
        }
    }

    /// What the page was last told of `key` (at most 30 lines), as text.
    pub fn told(&self, key: &[u8]) -> String {
        let key = show(key);
        let told: Vec<&String> = self
            .received
            .iter()
            .filter(|line| {
                line.starts_with("hello")
                    || line.starts_with("joining")
                    || line.ends_with("every window")
                    || line.split(' ').any(|word| word == key)
            })
            .collect();
        let start = told.len().saturating_sub(30);
        told[start..]
            .iter()
            .map(|line| format!("    {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn rejoin(&mut self) {
        let why = format!(
            "joining again at {}: {:?}",
            self.assembler.offset(),
            self.assembler.diagnostics()
        );
        self.received.push_back(why);
        let _ = self.socket.close(None).await;
        let watch = self.assembler.watch().clone();
        self.socket = connect(&self.url, &subscribe(&self.pattern, self.db, self.window)).await;
        self.assembler = StreamAssembler::new(watch);
        self.awaiting.clear();
        self.joining = true;
        self.joins += 1;
    }

    /// Applies the stream up to where Redis is now (the relay following it), with every top-up it asked for
    /// answered.
    pub async fn settle(&mut self, conn: &mut MultiplexedConnection) {
        loop {
            let offset = master_repl_offset(conn).await;
            while self.joining || self.assembler.offset() < offset || !self.awaiting.is_empty() {
                self.step().await;
            }
            // A join's snapshot may leave keys to later parts, which the relay sends as top-ups the page did not
            // ask for (a snapshot too big for one part, the keys the relay's state does not hold): a key Redis
            // has and the page has no window of waits for its part.
            let missing = self.missing(conn).await;
            if !missing.is_empty() {
                self.awaiting.extend(missing);
                continue;
            }
            if master_repl_offset(conn).await == offset {
                return;
            }
        }
    }

    /// Keys of the page's pattern that Redis holds a window of and the page does not.
    async fn missing(&self, conn: &mut MultiplexedConnection) -> Vec<Vec<u8>> {
        let mut missing = Vec::new();
        for key in self.redis_keys(conn).await {
            if self.assembler.window(&key).is_some() {
                continue;
            }
            let redis = RedisValue::read(conn, &key, self.window).await;
            if compare(None, &redis, self.window).is_err() {
                missing.push(key);
            }
        }
        missing
    }

    /// The keys of the page's pattern in Redis now. `KEYS`, not `SCAN`: the suites' datasets are small, and a join's
    /// own reads are told apart from the page's by `SCAN` (state.rs counts them).
    async fn redis_keys(&self, conn: &mut MultiplexedConnection) -> BTreeSet<Vec<u8>> {
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
            .arg(&self.pattern)
            .query_async(conn)
            .await
            .unwrap();
        keys.into_iter().collect()
    }

    /// Every way the page's windows differ from what Redis holds in its database, one line per key (empty when
    /// they are equal). `conn` must have the page's database selected.
    pub async fn differences(&self, conn: &mut MultiplexedConnection) -> Vec<String> {
        let mut keys: BTreeSet<Vec<u8>> = self.assembler.keys().map(<[u8]>::to_vec).collect();
        keys.extend(self.redis_keys(conn).await);
        let mut differences = Vec::new();
        for key in keys {
            let redis = RedisValue::read(conn, &key, self.window).await;
            if let Err(how) = compare(self.assembler.window(&key), &redis, self.window) {
                differences.push(format!(
                    "db {} window {}: {}: {how}\n  what the page was told of it, last:\n{}",
                    self.db,
                    self.window,
                    show(&key),
                    self.told(&key)
                ));
            }
        }
        differences
    }
}

/// The subscribe message for `pattern` in `db` with `window`.
fn subscribe(pattern: &str, db: u32, window: usize) -> String {
    format!(r#"{{"type":"subscribe","patterns":[{pattern:?}],"db":{db},"window":{window}}}"#)
}

/// A connection to the Redis on `port` with database `db` selected.
pub async fn redis_db(port: u16, db: u32) -> MultiplexedConnection {
    super::redis_conn_url(&format!("redis://127.0.0.1:{port}/{db}")).await
}

/// What Redis answers for a key, read as a window of `n` would hold it.
#[derive(Debug)]
enum RedisValue {
    /// `none`, or a type without windows (`set`).
    NoWindow(String),
    /// The newest `n` members, newest first, each with its score as Redis prints it; and `ZCARD`.
    Zset(Vec<(Vec<u8>, String)>, usize),
    /// The last `n` items, last first; and `LLEN`.
    List(Vec<Vec<u8>>, usize),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    /// The newest `n` entries, newest first; and `XLEN`.
    Stream(Vec<(String, Vec<Vec<u8>>)>, usize),
    String(Vec<u8>),
}

impl RedisValue {
    async fn read(conn: &mut MultiplexedConnection, key: &[u8], n: usize) -> RedisValue {
        let kind: String = redis::cmd("TYPE").arg(key).query_async(conn).await.unwrap();
        let newest = -(n as i64);
        match kind.as_str() {
            "zset" => {
                let flat: Vec<Vec<u8>> = query(
                    conn,
                    &["ZRANGE"],
                    key,
                    &[&newest.to_string(), "-1", "WITHSCORES"],
                )
                .await;
                let mut members: Vec<(Vec<u8>, String)> = flat
                    .chunks_exact(2)
                    .map(|pair| (pair[0].clone(), show(&pair[1])))
                    .collect();
                members.reverse();
                let card: usize = redis::cmd("ZCARD")
                    .arg(key)
                    .query_async(conn)
                    .await
                    .unwrap();
                RedisValue::Zset(members, card)
            }
            "list" => {
                let mut items: Vec<Vec<u8>> =
                    query(conn, &["LRANGE"], key, &[&newest.to_string(), "-1"]).await;
                items.reverse();
                let len: usize = redis::cmd("LLEN").arg(key).query_async(conn).await.unwrap();
                RedisValue::List(items, len)
            }
            "hash" => {
                let flat: Vec<Vec<u8>> = query(conn, &["HGETALL"], key, &[]).await;
                RedisValue::Hash(
                    flat.chunks_exact(2)
                        .map(|pair| (pair[0].clone(), pair[1].clone()))
                        .collect(),
                )
            }
            "stream" => {
                let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XREVRANGE")
                    .arg(key)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(n)
                    .query_async(conn)
                    .await
                    .unwrap();
                let len: usize = redis::cmd("XLEN").arg(key).query_async(conn).await.unwrap();
                RedisValue::Stream(entries, len)
            }
            "string" => {
                let value: Vec<u8> = redis::cmd("GET").arg(key).query_async(conn).await.unwrap();
                RedisValue::String(value)
            }
            _ => RedisValue::NoWindow(kind),
        }
    }
}

async fn query(
    conn: &mut MultiplexedConnection,
    command: &[&str],
    key: &[u8],
    rest: &[&str],
) -> Vec<Vec<u8>> {
    let mut cmd = redis::cmd(command[0]);
    cmd.arg(key).arg(rest);
    cmd.query_async(conn).await.unwrap()
}

/// How a window differs from what Redis holds, if it does.
fn compare(window: Option<&Window>, redis: &RedisValue, n: usize) -> Result<(), String> {
    let Some(window) = window else {
        return match redis {
            RedisValue::NoWindow(_) => Ok(()),
            other => Err(format!("no window, Redis holds {}", describe(other))),
        };
    };
    if window.stale() {
        return Err("the window is still stale after every top-up was answered".into());
    }
    match (redis, window.body()) {
        (RedisValue::Zset(members, card), replicast_assembler::windows::Body::Zset(w)) => {
            let ours: Vec<(Vec<u8>, String)> = w
                .newest_first()
                .map(|(m, s)| (m.to_vec(), redis_double(s)))
                .collect();
            let same = ours.len() == members.len()
                && ours
                    .iter()
                    .zip(members)
                    .all(|(a, b)| a.0 == b.0 && same_score(&b.1, &a.1));
            if !same {
                return Err(format!(
                    "zset: window {} vs Redis {}",
                    show_pairs(&ours),
                    show_pairs(members)
                ));
            }
            complete_as_redis(w.complete(), w.len(), *card)
        }
        (RedisValue::List(items, len), replicast_assembler::windows::Body::List(w)) => {
            let ours: Vec<Vec<u8>> = w.newest_first().map(<[u8]>::to_vec).collect();
            if &ours != items {
                return Err(format!(
                    "list (last first): window {} vs Redis {}",
                    show_items(&ours),
                    show_items(items)
                ));
            }
            complete_as_redis(w.complete(), w.len(), *len)
        }
        (RedisValue::Hash(fields), replicast_assembler::windows::Body::Hash(w)) => {
            let ours: BTreeMap<Vec<u8>, Vec<u8>> = w
                .newest_first()
                .map(|(f, v, _)| (f.to_vec(), v.to_vec()))
                .collect();
            let wrong: Vec<String> = ours
                .iter()
                .filter(|(f, v)| fields.get(*f) != Some(*v))
                .map(|(f, v)| {
                    format!(
                        "{}={} (Redis: {:?})",
                        show(f),
                        show(v),
                        fields.get(f).map(|v| show(v))
                    )
                })
                .collect();
            if !wrong.is_empty() {
                return Err(format!(
                    "hash: fields not as Redis holds them: {}",
                    wrong.join(", ")
                ));
            }
            if ours.len() != fields.len().min(n) {
                return Err(format!(
                    "hash: window holds {} fields, Redis {} (window {n})",
                    ours.len(),
                    fields.len()
                ));
            }
            complete_as_redis(w.complete(), w.len(), fields.len())
        }
        (RedisValue::Stream(entries, len), replicast_assembler::windows::Body::Stream(w)) => {
            let ours: Vec<(String, Vec<Vec<u8>>)> = w
                .newest_first()
                .map(|(id, fields)| (id.to_string(), fields.to_vec()))
                .collect();
            if &ours != entries {
                return Err(format!(
                    "stream: window {:?} vs Redis {:?}",
                    ours.iter().map(|e| &e.0).collect::<Vec<_>>(),
                    entries.iter().map(|e| &e.0).collect::<Vec<_>>()
                ));
            }
            complete_as_redis(w.complete(), w.len(), *len)
        }
        (RedisValue::String(value), replicast_assembler::windows::Body::String(w)) => {
            if w.value() != value.as_slice() {
                return Err(format!(
                    "string: window {} vs Redis {}",
                    show(w.value()),
                    show(value)
                ));
            }
            Ok(())
        }
        (other, _) => Err(format!(
            "a {} window, Redis holds {}",
            window.kind().name(),
            describe(other)
        )),
    }
}

/// A window that says it holds everything must hold as many items as Redis.
fn complete_as_redis(complete: bool, len: usize, redis_len: usize) -> Result<(), String> {
    if complete && len != redis_len {
        return Err(format!(
            "the window says it is complete with {len} items; Redis holds {redis_len}"
        ));
    }
    Ok(())
}

/// Redis prints a score `-0` only from a sorted set in a skiplist (a listpack stores it as `0`); the window holds
/// the score as the listpack does (see `crates/assembler/src/windows/zset.rs`). Equal scores for Redis either way.
fn same_score(redis: &str, window: &str) -> bool {
    redis == window || (redis == "-0" && window == "0")
}

extern "C" {
    fn snprintf(buffer: *mut c_char, size: usize, format: *const c_char, ...) -> c_int;
}

/// A score as Redis 7.0 prints it to a RESP2 client: `inf`, `-inf`, or C's `%.17g`.
pub fn redis_double(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    let mut buffer = [0 as c_char; 64];
    // SAFETY: the buffer's size is given; `%.17g` of a double needs at most 25 bytes and snprintf terminates it.
    unsafe {
        snprintf(buffer.as_mut_ptr(), buffer.len(), c"%.17g".as_ptr(), value);
        CStr::from_ptr(buffer.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

fn describe(value: &RedisValue) -> String {
    match value {
        RedisValue::NoWindow(kind) => format!("a key of type {kind}"),
        RedisValue::Zset(members, card) => format!("a zset of {card}: {}", show_pairs(members)),
        RedisValue::List(items, len) => format!("a list of {len}: {}", show_items(items)),
        RedisValue::Hash(fields) => format!("a hash of {} fields", fields.len()),
        RedisValue::Stream(_, len) => format!("a stream of {len}"),
        RedisValue::String(value) => format!("the string {}", show(value)),
    }
}

/// Bytes as readable text (escaped where not printable ASCII), shortened past 60 bytes.
pub fn show(bytes: &[u8]) -> String {
    let text: String = bytes
        .iter()
        .take(60)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if bytes.len() > 60 {
        format!("{text}…({} bytes)", bytes.len())
    } else {
        text
    }
}

fn show_pairs(pairs: &[(Vec<u8>, String)]) -> String {
    let shown: Vec<String> = pairs
        .iter()
        .take(12)
        .map(|(m, s)| format!("{}:{s}", show(m)))
        .collect();
    format!(
        "[{}{}]",
        shown.join(" "),
        if pairs.len() > 12 { " …" } else { "" }
    )
}

fn show_items(items: &[Vec<u8>]) -> String {
    let shown: Vec<String> = items.iter().take(12).map(|i| show(i)).collect();
    format!(
        "[{}{}]",
        shown.join(" "),
        if items.len() > 12 { " …" } else { "" }
    )
}
