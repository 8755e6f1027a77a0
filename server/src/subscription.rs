//! What a browser watches, what the relay allows, and which parts of a batch a session therefore receives.
//!
//! A browser subscribes with one JSON text message right after it connects:
//! `{"type":"subscribe","patterns":["perf:*"],"keys":["cfg"],"db":0,"window":100}`. A frame reaches it when it is in
//! the subscribed database (or writes a key there: `MOVE`, `COPY … DB`) and names at least one wanted key, and every
//! key it names is allowed by `--allow`: nothing outside the allow-list ever leaves the relay, not even a key name.
//! A frame withheld (a key outside `--allow`, or keys that cannot all be judged) that may have written keys the
//! session wants and may see becomes a stale message naming those keys, at the frame's place, so that the browser
//! tops them up instead of keeping windows that differ from Redis. `SELECT`, `FLUSHALL`, `SWAPDB` and the
//! subscribed database's `FLUSHDB` reach everyone; a `MULTI`…`EXEC` block is sent as one block, holding the frames
//! of it the session may see, its stale keys after its `EXEC`.

use std::collections::{BTreeSet, HashSet};
use std::ops::Range;

use bytes::Bytes;
use replicast_wasm::pattern::Glob;
use replicast_wasm::wire;
use serde::Deserialize;
use thiserror::Error;

use crate::backlog::Batch;
use crate::frames::{Frame, Kind};

/// Patterns one subscription may hold.
pub const MAX_PATTERNS: usize = 64;
/// Explicit keys one subscription may hold.
pub const MAX_KEYS: usize = 1024;
/// Longest pattern or key in a subscription or top-up (shared with the browser, which asks only for such keys).
pub const MAX_NAME_LEN: usize = replicast_wasm::wire::MAX_NAME_LEN;
/// Most key bytes a subscription pattern's parts between two `*` that hold `?`, `[…]` or `\` may span
/// ([`Glob::wildcard_positions`]): such parts are searched for in every key the session is offered, one 64-bit word
/// per key byte within this limit, so that matching stays linear in the key.
pub const MAX_PATTERN_WILDCARDS: usize = 64;
/// Largest window a browser may ask for.
pub const MAX_WINDOW: usize = 100_000;
/// Most keys one top-up request may name (shared with the browser, which asks for no more at once, and with the
/// stale message, which names no more).
pub const MAX_TOPUP_KEYS: usize = replicast_wasm::wire::MAX_TOPUP_KEYS;
/// Highest database number (Redis's default `databases` is 16; some run more).
pub const MAX_DB: u32 = 1023;
/// Longest request id of an event (shared with the browser, which echoes it in the ack).
pub const MAX_REQUEST_ID_LEN: usize = replicast_wasm::wire::MAX_REQUEST_ID_LEN;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SubscribeError {
    #[error("invalid subscribe message: {0}")]
    Json(String),
    /// A later message (a top-up, an event) that is not valid JSON of a known shape.
    #[error("invalid message: {0}")]
    Request(String),
    #[error("a {scope} holds at most {limit} {what}, got {got}")]
    TooMany {
        scope: &'static str,
        what: &'static str,
        got: usize,
        limit: usize,
    },
    #[error("a pattern or key is at most {MAX_NAME_LEN} bytes, got {0}")]
    TooLong(usize),
    #[error("a pattern's parts between two * holding ?, [ or \\ may span at most {MAX_PATTERN_WILDCARDS} bytes of a key, got {0}")]
    Wildcards(usize),
    #[error("window must be 1..={MAX_WINDOW}, got {0}")]
    Window(usize),
    #[error("db must be 0..={MAX_DB}, got {0}")]
    Db(u32),
    #[error("the subscription watches nothing: give patterns or keys")]
    Empty,
    #[error("expected a subscribe message first, got {0}")]
    NotSubscribe(&'static str),
    #[error("already subscribed: a session has one subscription")]
    Resubscribe,
    #[error("an event's id must be 1..={MAX_REQUEST_ID_LEN} bytes, got {0}")]
    RequestId(usize),
}

/// Key patterns the relay may send (`--allow`); a key must match one.
#[derive(Debug, Clone)]
pub struct Allow {
    patterns: Vec<Glob>,
}

impl Allow {
    pub fn new(patterns: &[String]) -> Self {
        Allow {
            patterns: patterns.iter().map(|p| Glob::new(p.as_bytes())).collect(),
        }
    }

    pub fn allows(&self, key: &[u8]) -> bool {
        self.patterns.iter().any(|p| p.matches(key))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub db: u32,
    pub patterns: Vec<Glob>,
    pub keys: HashSet<Vec<u8>>,
    pub window: usize,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum ClientMessage {
    Subscribe {
        #[serde(default)]
        patterns: Vec<String>,
        #[serde(default)]
        keys: Vec<String>,
        #[serde(default)]
        db: u32,
        window: usize,
    },
    Topup {
        keys: Vec<String>,
    },
    Event {
        id: String,
        key: String,
        fields: EventFields,
    },
}

/// An event's fields as the browser wrote them, in its order: a JSON object of strings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventFields(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for EventFields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = EventFields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of string fields")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<EventFields, A::Error> {
                // Bounded by the message: at most 64 KiB of JSON.
                let mut fields = Vec::new();
                while let Some(field) = map.next_entry::<String, String>()? {
                    fields.push(field);
                }
                Ok(EventFields(fields))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// What a browser may send after its subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Read these keys' windows again: removals left the browser's windows shorter than what Redis holds.
    Topup(Vec<Vec<u8>>),
    /// Append an event to `key`; the limits and `--writable` are checked when it is handled, and answered with an
    /// ack, since the browser can fix them. Only a message that cannot be read at all closes the session.
    Event(EventRequest),
}

/// A browser's event, read but not yet checked against the relay's limits (see `events.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRequest {
    /// The browser's id for the request, echoed in the ack: 1..=64 bytes.
    pub id: String,
    pub key: String,
    pub fields: Vec<(String, String)>,
}

impl Request {
    /// Parses and checks a message that follows the subscription.
    pub fn parse(message: &str) -> Result<Self, SubscribeError> {
        match serde_json::from_str(message).map_err(|e| SubscribeError::Request(e.to_string()))? {
            ClientMessage::Subscribe { .. } => Err(SubscribeError::Resubscribe),
            ClientMessage::Topup { keys } => {
                if keys.len() > MAX_TOPUP_KEYS {
                    return Err(SubscribeError::TooMany {
                        scope: "top-up",
                        what: "keys",
                        got: keys.len(),
                        limit: MAX_TOPUP_KEYS,
                    });
                }
                if let Some(long) = keys.iter().find(|k| k.len() > MAX_NAME_LEN) {
                    return Err(SubscribeError::TooLong(long.len()));
                }
                Ok(Request::Topup(
                    keys.into_iter().map(String::into_bytes).collect(),
                ))
            }
            ClientMessage::Event { id, key, fields } => {
                // Without a usable id the browser could not tell which request an ack answers.
                if id.is_empty() || id.len() > MAX_REQUEST_ID_LEN {
                    return Err(SubscribeError::RequestId(id.len()));
                }
                Ok(Request::Event(EventRequest {
                    id,
                    key,
                    fields: fields.0,
                }))
            }
        }
    }
}

impl Subscription {
    /// Parses and checks a subscribe message.
    pub fn parse(message: &str) -> Result<Self, SubscribeError> {
        let (patterns, keys, db, window) =
            match serde_json::from_str(message).map_err(|e| SubscribeError::Json(e.to_string()))? {
                ClientMessage::Subscribe {
                    patterns,
                    keys,
                    db,
                    window,
                } => (patterns, keys, db, window),
                ClientMessage::Topup { .. } => return Err(SubscribeError::NotSubscribe("topup")),
                ClientMessage::Event { .. } => return Err(SubscribeError::NotSubscribe("event")),
            };
        for (what, list, limit) in [
            ("patterns", &patterns, MAX_PATTERNS),
            ("keys", &keys, MAX_KEYS),
        ] {
            if list.len() > limit {
                return Err(SubscribeError::TooMany {
                    scope: "subscription",
                    what,
                    got: list.len(),
                    limit,
                });
            }
        }
        if let Some(long) = patterns
            .iter()
            .chain(&keys)
            .find(|n| n.len() > MAX_NAME_LEN)
        {
            return Err(SubscribeError::TooLong(long.len()));
        }
        let patterns = patterns
            .iter()
            .map(|p| Glob::within(p.as_bytes(), MAX_PATTERN_WILDCARDS))
            .collect::<Result<Vec<_>, _>>()
            .map_err(SubscribeError::Wildcards)?;
        if !(1..=MAX_WINDOW).contains(&window) {
            return Err(SubscribeError::Window(window));
        }
        if db > MAX_DB {
            return Err(SubscribeError::Db(db));
        }
        if patterns.is_empty() && keys.is_empty() {
            return Err(SubscribeError::Empty);
        }
        Ok(Subscription {
            db,
            patterns,
            keys: keys.into_iter().map(String::into_bytes).collect(),
            window,
        })
    }

    pub fn wants(&self, key: &[u8]) -> bool {
        self.keys.contains(key) || self.patterns.iter().any(|p| p.matches(key))
    }

    /// What this session makes of `frame`.
    fn verdict(&self, frame: &Frame, raw: &[u8], keys: &[Range<u32>], allow: &Allow) -> Verdict {
        let names = |range: Range<u32>| {
            keys[range.start as usize..range.end as usize]
                .iter()
                .map(|r| &raw[r.start as usize..r.end as usize])
        };
        match frame.kind {
            Kind::Select | Kind::AllDbs => Verdict::Receive,
            Kind::WholeDb if frame.db == self.db => Verdict::Receive,
            Kind::Keyed if frame.in_db(self.db) => {
                if names(frame.keys.clone()).all(|k| allow.allows(k)) {
                    if names(frame.keys.clone()).any(|k| self.wants(k)) {
                        Verdict::Receive
                    } else {
                        Verdict::Skip
                    }
                } else {
                    // A key outside `--allow`: the frame is withheld, and the keys it may have written that this
                    // session may see are stale.
                    self.stale(names(frame.written_keys()), allow)
                }
            }
            Kind::Withheld if frame.in_db(self.db) => self.stale(names(frame.keys.clone()), allow),
            Kind::WithheldAll if frame.in_db(self.db) => Verdict::Stale(Stale::All),
            _ => Verdict::Skip,
        }
    }

    /// The keys of a withheld frame this session must learn are stale: those it wants and `--allow` permits.
    fn stale<'k>(&self, keys: impl Iterator<Item = &'k [u8]>, allow: &Allow) -> Verdict {
        let mut stale = Stale::default();
        for key in keys {
            if self.wants(key) && allow.allows(key) {
                stale.add(key);
            }
        }
        if stale.is_empty() {
            Verdict::Skip
        } else {
            Verdict::Stale(stale)
        }
    }

    /// What this session receives of `batch` from offset `from` on, in stream order: runs of whole commands, and
    /// where a withheld frame may have changed keys it sees, the stale keys. Inside a `MULTI` block the frames it
    /// may see go as one block, and the block's stale keys right after its `EXEC`, so the block stays whole.
    pub fn select(&self, batch: &Batch, from: u64, allow: &Allow) -> Vec<Delivery> {
        let raw = batch.raw();
        let mut out: Vec<Piece> = Vec::new();
        let emit = |out: &mut Vec<Piece>, at: &Range<u32>| match out.last_mut() {
            Some(Piece::Run(last)) if last.end == at.start => last.end = at.end,
            _ => out.push(Piece::Run(at.clone())),
        };
        // Inside MULTI: the MULTI frame, the frames of the block this session may see, and the block's stale keys.
        let mut block: Option<(Range<u32>, Vec<Range<u32>>, Stale)> = None;
        // End of the last frame of an open block.
        let mut block_end = 0;
        for frame in &batch.index.frames {
            if batch.start + u64::from(frame.at.start) < from {
                continue;
            }
            match (frame.kind, &mut block) {
                (Kind::Multi, _) => block = Some((frame.at.clone(), Vec::new(), Stale::default())),
                (Kind::Exec, Some(_)) => {
                    if let Some((multi, inside, stale)) = block.take() {
                        if !inside.is_empty() {
                            emit(&mut out, &multi);
                            inside.iter().for_each(|at| emit(&mut out, at));
                            emit(&mut out, &frame.at);
                        }
                        if !stale.is_empty() {
                            out.push(Piece::Stale(frame.at.end, stale));
                        }
                    }
                }
                (_, Some((_, inside, stale))) => {
                    block_end = frame.at.end;
                    match self.verdict(frame, &raw, &batch.index.keys, allow) {
                        Verdict::Receive => inside.push(frame.at.clone()),
                        Verdict::Stale(keys) => stale.extend(keys),
                        Verdict::Skip => {}
                    }
                }
                (_, None) => match self.verdict(frame, &raw, &batch.index.keys, allow) {
                    Verdict::Receive => emit(&mut out, &frame.at),
                    Verdict::Stale(keys) => out.push(Piece::Stale(frame.at.end, keys)),
                    Verdict::Skip => {}
                },
            }
        }
        // A block still open here was cut by the link's size cap: send what it held as plain frames.
        if let Some((_, inside, stale)) = block {
            inside.iter().for_each(|at| emit(&mut out, at));
            if !stale.is_empty() {
                out.push(Piece::Stale(block_end, stale));
            }
        }
        out.into_iter()
            .map(|piece| match piece {
                Piece::Run(r) => Delivery::Commands {
                    start: batch.start + u64::from(r.start),
                    bytes: raw.slice(r.start as usize..r.end as usize),
                },
                Piece::Stale(end, keys) => Delivery::Stale {
                    // A command too large to hold is an empty frame: it ends where its batch does.
                    at: if batch.held {
                        batch.start + u64::from(end)
                    } else {
                        batch.end
                    },
                    keys,
                },
            })
            .collect()
    }
}

/// What a session makes of one frame.
enum Verdict {
    Receive,
    Stale(Stale),
    Skip,
}

/// A part of [`Subscription::select`]'s answer, by position in the batch.
enum Piece {
    Run(Range<u32>),
    Stale(u32, Stale),
}

/// What a session receives of a batch, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Whole commands that occupied `start..start + bytes.len()` of the stream.
    Commands { start: u64, bytes: Bytes },
    /// Frames ending at offset `at` were withheld, and may have changed these keys the session sees.
    Stale { at: u64, keys: Stale },
}

impl Delivery {
    /// The stale message for a [`Delivery::Stale`].
    pub fn encode_stale(at: u64, keys: &Stale) -> Vec<u8> {
        match keys {
            Stale::Keys(keys) => wire::encode_stale(at, keys.iter().map(Vec::as_slice)),
            Stale::All => wire::encode_stale_all(at),
        }
    }
}

/// Keys a session must learn are stale, bounded by what one top-up can read: past [`MAX_TOPUP_KEYS`] keys, or a
/// key a top-up cannot name (not UTF-8, longer than [`MAX_NAME_LEN`]), every window of the database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    Keys(BTreeSet<Vec<u8>>),
    All,
}

impl Default for Stale {
    fn default() -> Self {
        Stale::Keys(BTreeSet::new())
    }
}

impl Stale {
    fn add(&mut self, key: &[u8]) {
        let Stale::Keys(keys) = self else {
            return;
        };
        if keys.contains(key) {
            return;
        }
        if keys.len() >= MAX_TOPUP_KEYS || !wire::topup_can_name(key) {
            *self = Stale::All;
        } else {
            keys.insert(key.to_vec());
        }
    }

    fn extend(&mut self, other: Stale) {
        match other {
            Stale::All => *self = Stale::All,
            Stale::Keys(keys) => keys.iter().for_each(|k| self.add(k)),
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Stale::Keys(keys) if keys.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command_table::CommandTable;
    use crate::frames::{FrameIndex, Indexer};
    use std::sync::Arc;

    /// `commands` as a batch starting at offset 100, indexed with Redis 7.0.15's own table.
    fn batch(commands: &[Vec<Vec<u8>>]) -> Batch {
        let reply =
            redis::parse_redis_value(include_bytes!("../tests/data/redis-7.0.15-command.resp"))
                .unwrap();
        let mut indexer = Indexer::new(Arc::new(CommandTable::from_command_reply(&reply)));
        let mut stream = Vec::new();
        for args in commands {
            stream.extend(format!("*{}\r\n", args.len()).as_bytes());
            for arg in args {
                stream.extend(format!("${}\r\n", arg.len()).as_bytes());
                stream.extend(arg);
                stream.extend(b"\r\n");
            }
        }
        let mut index = FrameIndex::default();
        let limits = replicast_wasm::resp::Limits::default();
        let mut at = 0;
        while let Some(command) =
            replicast_wasm::resp::parse_command(&stream[at..], at as u64, &limits).unwrap()
        {
            indexer.add(&mut index, &stream, &command, at);
            at += command.frame_len();
        }
        Batch {
            start: 100,
            end: 100 + stream.len() as u64,
            message: Bytes::from(wire::encode_commands(100, &stream)),
            index: Arc::new(index),
            held: true,
            received: std::time::Instant::now(),
        }
    }

    fn words(commands: &[&[&str]]) -> Vec<Vec<Vec<u8>>> {
        commands
            .iter()
            .map(|c| c.iter().map(|w| w.as_bytes().to_vec()).collect())
            .collect()
    }

    fn watching(patterns: &str, db: u32) -> Subscription {
        Subscription::parse(&format!(
            r#"{{"type":"subscribe","patterns":[{patterns}],"db":{db},"window":5}}"#
        ))
        .unwrap()
    }

    /// What `sub` receives of `batch`: each run of commands as the commands' names and keys, each stale message
    /// as `stale@offset` and its keys.
    fn received(sub: &Subscription, batch: &Batch, allow: &[&str]) -> Vec<String> {
        let allow = Allow::new(&allow.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        sub.select(batch, batch.start, &allow)
            .into_iter()
            .map(|d| match d {
                Delivery::Commands { bytes, .. } => {
                    let mut commands = Vec::new();
                    replicast_wasm::resp::CommandReader::new(0)
                        .push(&bytes, |c| {
                            let args: Vec<String> = c
                                .args
                                .iter()
                                .take(3)
                                .map(|a| String::from_utf8_lossy(a).into_owned())
                                .collect();
                            commands.push(args.join(" "))
                        })
                        .unwrap();
                    commands.join(" | ")
                }
                Delivery::Stale {
                    at,
                    keys: Stale::Keys(keys),
                } => {
                    let keys: Vec<String> = keys
                        .iter()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .collect();
                    format!("stale@{at} {}", keys.join(" "))
                }
                Delivery::Stale {
                    at,
                    keys: Stale::All,
                } => format!("stale@{at} every window"),
            })
            .collect()
    }

    #[test]
    fn a_withheld_frame_tells_the_session_which_of_its_keys_went_stale_and_nothing_else() {
        let batch = batch(&words(&[
            &["ZADD", "perf:a", "1", "x"],
            &["RENAME", "secret:x", "perf:y"],
            &["ZUNIONSTORE", "perf:z", "2", "perf:a", "secret:w"],
            &["ZUNIONSTORE", "perf:q", "2", "perf:a", "perf:b"],
            &[
                "SORT",
                "perf:list",
                "BY",
                "secret:w_*",
                "STORE",
                "perf:sorted",
            ],
            &["RENAME", "secret:x", "other:y"],
            &["SET", "perf:b", "1"],
        ]));
        let ends: Vec<u64> = batch
            .index
            .frames
            .iter()
            .map(|f| 100 + u64::from(f.at.end))
            .collect();
        assert_eq!(
            received(&watching(r#""perf:*""#, 0), &batch, &["perf:*", "other:*"]),
            [
                "ZADD perf:a 1".to_string(),
                format!("stale@{} perf:y", ends[1]),
                format!("stale@{} perf:z", ends[2]),
                "ZUNIONSTORE perf:q 2".into(),
                format!("stale@{} perf:sorted", ends[4]),
                "SET perf:b 1".into(),
            ]
        );
        assert_eq!(
            received(&watching(r#""perf:q""#, 0), &batch, &["perf:*"]),
            ["ZUNIONSTORE perf:q 2"],
            "stale keys only of what the session watches"
        );
        assert!(received(&watching(r#""perf:*""#, 1), &batch, &["perf:*"]).is_empty());
    }

    #[test]
    fn a_blocks_stale_keys_come_after_its_exec_so_the_block_stays_whole() {
        let batch = batch(&words(&[
            &["MULTI"],
            &["ZADD", "perf:a", "1", "x"],
            &["RENAME", "secret:x", "perf:y"],
            &["DEL", "perf:y"],
            &["EXEC"],
            &["MULTI"],
            &["COPY", "secret:s", "perf:c"],
            &["EXEC"],
        ]));
        let exec: Vec<u64> = batch
            .index
            .frames
            .iter()
            .filter(|f| f.kind == Kind::Exec)
            .map(|f| 100 + u64::from(f.at.end))
            .collect();
        assert_eq!(
            received(&watching(r#""perf:*""#, 0), &batch, &["perf:*"]),
            [
                // Two runs around the withheld frame, sent as segments of one message.
                "MULTI | ZADD perf:a 1".to_string(),
                "DEL perf:y | EXEC".into(),
                format!("stale@{} perf:y", exec[0]),
                format!("stale@{} perf:c", exec[1]),
            ]
        );
    }

    #[test]
    fn more_stale_keys_than_a_topup_holds_make_every_window_stale() {
        let mut mset = vec![b"MSET".to_vec()];
        for i in 0..4096 {
            mset.push(format!("perf:k{i}").into_bytes());
            mset.push(b"v".to_vec());
        }
        mset.extend([b"secret:big".to_vec(), b"SECRETBIG4097".to_vec()]);
        let unnamable = words(&[&["RENAME", "secret:x", "perf:\u{1}"]]);
        let mut commands = vec![mset];
        commands.push(vec![
            b"RENAME".to_vec(),
            b"secret:x".to_vec(),
            b"perf:\xff".to_vec(),
        ]);
        commands.extend(unnamable);
        let batch = batch(&commands);
        let ends: Vec<u64> = batch
            .index
            .frames
            .iter()
            .map(|f| 100 + u64::from(f.at.end))
            .collect();
        assert_eq!(
            received(&watching(r#""perf:*""#, 0), &batch, &["perf:*"]),
            [
                format!("stale@{} every window", ends[0]),
                format!("stale@{} every window", ends[1]),
                format!("stale@{} perf:\u{1}", ends[2]),
            ],
            "4,096 keys, and a key a top-up cannot name (not UTF-8)"
        );
        let some = watching(r#""perf:k1""#, 0);
        assert_eq!(
            received(&some, &batch, &["perf:*"]),
            [format!("stale@{} perf:k1", ends[0])]
        );
    }

    #[test]
    fn move_and_copy_reach_the_sessions_of_the_database_they_write_in() {
        let batch = batch(&words(&[
            &["SELECT", "1"],
            &["MOVE", "w:mv", "0"],
            &["COPY", "w:cp", "w:cp", "DB", "0", "REPLACE"],
            &["COPY", "secret:s", "w:d", "DB", "0"],
            &["SET", "w:one", "1"],
        ]));
        let ends: Vec<u64> = batch
            .index
            .frames
            .iter()
            .map(|f| 100 + u64::from(f.at.end))
            .collect();
        assert_eq!(
            received(&watching(r#""w:*""#, 0), &batch, &["w:*"]),
            [
                "SELECT 1 | MOVE w:mv 0 | COPY w:cp w:cp".to_string(),
                format!("stale@{} w:d", ends[3])
            ]
        );
        assert_eq!(
            received(&watching(r#""w:*""#, 2), &batch, &["w:*"]),
            ["SELECT 1"]
        );
    }

    fn subscribe(patterns: &[String], keys: &[String]) -> String {
        serde_json::json!({"type": "subscribe", "patterns": patterns, "keys": keys, "window": 5})
            .to_string()
    }

    #[test]
    fn a_million_patterns_or_keys_are_refused_by_count() {
        let million: Vec<String> = (0..1_000_000).map(|i| format!("p{i}")).collect();
        assert_eq!(
            Subscription::parse(&subscribe(&million, &[]))
                .unwrap_err()
                .to_string(),
            "a subscription holds at most 64 patterns, got 1000000"
        );
        assert_eq!(
            Subscription::parse(&subscribe(&[], &million))
                .unwrap_err()
                .to_string(),
            "a subscription holds at most 1024 keys, got 1000000"
        );
        let topup = serde_json::json!({"type": "topup", "keys": million}).to_string();
        assert_eq!(
            Request::parse(&topup).unwrap_err().to_string(),
            "a top-up holds at most 1024 keys, got 1000000"
        );
    }

    #[test]
    fn names_past_the_limit_are_refused_with_their_length() {
        let megabyte = "k".repeat(1 << 20);
        assert_eq!(
            Subscription::parse(&subscribe(&[], std::slice::from_ref(&megabyte)))
                .unwrap_err()
                .to_string(),
            "a pattern or key is at most 1024 bytes, got 1048576"
        );
        let topup = serde_json::json!({"type": "topup", "keys": [megabyte]}).to_string();
        assert_eq!(
            Request::parse(&topup).unwrap_err().to_string(),
            "a pattern or key is at most 1024 bytes, got 1048576"
        );
        let longest = "k".repeat(MAX_NAME_LEN);
        assert!(Subscription::parse(&subscribe(&[], &[longest])).is_ok());
    }

    #[test]
    fn patterns_searching_for_more_than_a_word_of_wildcards_are_refused() {
        let searched = |n: usize| format!("perf:*{}*", "?".repeat(n));
        assert!(Subscription::parse(&subscribe(&[searched(MAX_PATTERN_WILDCARDS)], &[])).is_ok());
        assert_eq!(
            Subscription::parse(&subscribe(&[searched(MAX_PATTERN_WILDCARDS + 1)], &[]))
                .unwrap_err()
                .to_string(),
            "a pattern's parts between two * holding ?, [ or \\ may span at most 64 bytes of a key, got 65"
        );
        // Wildcards checked in place (before the first `*`, after the last) cost one step per byte: no limit.
        let anchored = format!("{}*{}", "?".repeat(500), "?".repeat(500));
        assert!(Subscription::parse(&subscribe(&[anchored], &[])).is_ok());
    }

    #[test]
    fn invalid_json_is_refused_with_where_it_broke() {
        assert_eq!(
            Subscription::parse("{\"type\":\"subscribe\",")
                .unwrap_err()
                .to_string(),
            "invalid subscribe message: EOF while parsing a value at line 1 column 20"
        );
        assert_eq!(
            Subscription::parse(r#"{"type":"subscribe","patterns":["a"],"window":5,"extra":1}"#)
                .unwrap_err()
                .to_string(),
            "invalid subscribe message: unknown field `extra`, expected one of `patterns`, `keys`, `db`, `window`"
        );
        assert_eq!(
            Request::parse(r#"{"type":"subscribe","patterns":["a"],"window":5}"#).unwrap_err(),
            SubscribeError::Resubscribe
        );
    }

    #[test]
    fn events_keep_their_fields_in_order_and_need_an_id() {
        let event = Request::parse(
            r#"{"type":"event","id":"r1","key":"notes","fields":{"z":"1","a":"2","z":"3"}}"#,
        )
        .unwrap();
        assert_eq!(
            event,
            Request::Event(EventRequest {
                id: "r1".into(),
                key: "notes".into(),
                fields: vec![
                    ("z".into(), "1".into()),
                    ("a".into(), "2".into()),
                    ("z".into(), "3".into())
                ],
            }),
            "in order, repeats kept for the limits to refuse"
        );
        assert_eq!(
            Request::parse(r#"{"type":"event","id":"","key":"k","fields":{}}"#).unwrap_err(),
            SubscribeError::RequestId(0)
        );
        let long = format!(
            r#"{{"type":"event","id":"{}","key":"k","fields":{{}}}}"#,
            "i".repeat(65)
        );
        assert_eq!(
            Request::parse(&long).unwrap_err(),
            SubscribeError::RequestId(65)
        );
        assert_eq!(
            Request::parse(r#"{"type":"event","id":"r","key":"k","fields":{"n":1}}"#)
                .unwrap_err()
                .to_string(),
            "invalid message: invalid type: integer `1`, expected a string"
        );
        assert_eq!(
            Subscription::parse(r#"{"type":"event","id":"r","key":"k","fields":{}}"#).unwrap_err(),
            SubscribeError::NotSubscribe("event")
        );
    }
}
