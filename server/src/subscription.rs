//! What a browser watches, what the relay allows, and which parts of a batch a session therefore receives.
//!
//! A browser subscribes with one JSON text message right after it connects:
//! `{"type":"subscribe","patterns":["perf:*"],"keys":["cfg"],"db":0,"window":100}`. A frame reaches it when it is in
//! the subscribed database and names at least one wanted key, and every key it names is allowed by `--allow`:
//! nothing outside the allow-list ever leaves the relay, not even a key name. `SELECT`, `FLUSHALL`, `SWAPDB` and the
//! subscribed database's `FLUSHDB` reach everyone; a `MULTI`…`EXEC` block is sent as one block, holding the frames
//! of it the session may see.

use std::collections::HashSet;
use std::ops::Range;

use bytes::Bytes;
use replicast_wasm::pattern::Glob;
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
/// Most keys one top-up request may name.
pub const MAX_TOPUP_KEYS: usize = 1024;
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

    fn receives(&self, frame: &Frame, raw: &[u8], keys: &[Range<u32>], allow: &Allow) -> bool {
        match frame.kind {
            Kind::Select | Kind::AllDbs => true,
            Kind::WholeDb => frame.db == self.db,
            Kind::Keyed => {
                let mut names = keys[frame.keys.start as usize..frame.keys.end as usize]
                    .iter()
                    .map(|r| &raw[r.start as usize..r.end as usize]);
                frame.db == self.db
                    && names.clone().all(|k| allow.allows(k))
                    && names.any(|k| self.wants(k))
            }
            Kind::Multi | Kind::Exec | Kind::Other => false,
        }
    }

    /// The segments of `batch` from offset `from` on that this session receives: (start offset, bytes), each a
    /// run of whole commands.
    pub fn select(&self, batch: &Batch, from: u64, allow: &Allow) -> Vec<(u64, Bytes)> {
        let raw = batch.raw();
        let mut runs: Vec<Range<u32>> = Vec::new();
        let mut emit = |at: &Range<u32>| match runs.last_mut() {
            Some(last) if last.end == at.start => last.end = at.end,
            _ => runs.push(at.clone()),
        };
        // Inside MULTI: the MULTI frame and the frames of the block this session may see.
        let mut block: Option<(Range<u32>, Vec<Range<u32>>)> = None;
        for frame in &batch.index.frames {
            if batch.start + u64::from(frame.at.start) < from {
                continue;
            }
            match (frame.kind, &mut block) {
                (Kind::Multi, _) => block = Some((frame.at.clone(), Vec::new())),
                (Kind::Exec, Some(_)) => {
                    if let Some((multi, inside)) = block.take() {
                        if !inside.is_empty() {
                            emit(&multi);
                            inside.iter().for_each(&mut emit);
                            emit(&frame.at);
                        }
                    }
                }
                (_, Some((_, inside))) => {
                    if self.receives(frame, &raw, &batch.index.keys, allow) {
                        inside.push(frame.at.clone());
                    }
                }
                (_, None) => {
                    if self.receives(frame, &raw, &batch.index.keys, allow) {
                        emit(&frame.at);
                    }
                }
            }
        }
        // A block still open here was cut by the link's size cap: send what it held as plain frames.
        if let Some((_, inside)) = block {
            inside.iter().for_each(&mut emit);
        }
        runs.into_iter()
            .map(|r| {
                (
                    batch.start + u64::from(r.start),
                    raw.slice(r.start as usize..r.end as usize),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
