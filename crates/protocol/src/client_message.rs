//! The browser → relay messages, specified in `docs/PROTOCOL.md`: one JSON text message each, written by the
//! browser's client and read by the relay with the same types, so the two sides cannot disagree on a field.
//!
//! A session's first message subscribes ([`Subscribe`]); after it the browser may ask for top-ups ([`Topup`])
//! and send events ([`Event`]). The limits a message must keep live here with the types, and the relay checks
//! them when it reads one ([`Subscribe::parse`], [`Request::parse`]): a message past a limit closes the session
//! with an error that names the limit, before anything is kept for it.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::json_text::{push_name, push_string, push_strings};
use crate::pattern::Glob;

/// Largest message a browser may send the relay; the relay closes a session that sends a larger one.
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Patterns one subscription may hold.
pub const MAX_PATTERNS: usize = 64;
/// Explicit keys one subscription may hold.
pub const MAX_KEYS: usize = 1024;
/// Longest key or pattern a browser's subscription or top-up may name; the relay refuses longer ones.
pub const MAX_NAME_LEN: usize = 1024;
/// Most key bytes a subscription pattern's parts between two `*` that hold `?`, `[…]` or `\` may span
/// ([`Glob::wildcard_positions`]): such parts are searched for in every key the session is offered, one 64-bit word
/// per key byte within this limit, so that matching stays linear in the key.
pub const MAX_PATTERN_WILDCARDS: usize = 64;
/// Largest window a browser may ask for.
pub const MAX_WINDOW: usize = 100_000;
/// Most keys one top-up request may name (the relay closes a session that asks for more at once), and so the most
/// a stale message names: more stale keys than one top-up can read are sent as "every window".
pub const MAX_TOPUP_KEYS: usize = 1024;
/// Highest database number (Redis's default `databases` is 16; some run more).
pub const MAX_DB: u32 = 1023;
/// Longest request id a browser's event may carry (the relay refuses longer ones; it echoes the id in its ack).
pub const MAX_REQUEST_ID_LEN: usize = 64;
/// Longest signed token a browser may present, at the upgrade or in a [`TokenRefresh`]; the relay refuses longer
/// ones before decoding them.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// One message from a browser, tagged by its `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientMessage {
    Subscribe(Subscribe),
    Topup(Topup),
    Event(Event),
    Token(TokenRefresh),
    Digest(DigestRequest),
}

/// The first message of a session: watch keys matching `patterns`, and the `keys` named, in database `db`,
/// `window` items each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    #[serde(default)]
    pub db: u32,
    pub window: usize,
}

/// Read these subscribed keys' windows again: removals (or withheld writes) left them other than what Redis
/// holds. The relay answers with a snapshot of them, in order in the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topup {
    pub keys: Vec<String>,
}

/// Append `fields` (in this order) to `key` as one entry, and answer with an ack carrying `id`. The relay decides
/// whether `key` is writable and adds who sent it and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// The browser's id for the request, echoed in the ack: 1..=[`MAX_REQUEST_ID_LEN`] bytes.
    pub id: String,
    pub key: String,
    /// A JSON object of strings, in the browser's order; repeats are kept, for the relay's limits to refuse.
    #[serde(with = "fields_in_order")]
    pub fields: Vec<(String, String)>,
}

/// A fresh signed token for this session, sent before the one it opened with expires: the relay verifies it like
/// the first and, if it grants the same access, keeps the session open until the new `exp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRefresh {
    pub token: String,
}

/// Send the digest of this session's windows as the relay's state holds them, answered under `id` (1..=
/// [`MAX_REQUEST_ID_LEN`] bytes) in order in the stream, where the browser compares it with its own windows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestRequest {
    pub id: String,
}

/// Why the relay refuses a browser's message; the text is the session's close reason.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ClientMessageError {
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
    #[error("a token is at most {MAX_TOKEN_LEN} bytes, got {0}")]
    TokenTooLong(usize),
}

impl ClientMessage {
    /// The message as the browser sends it: what serde_json writes for it, written without serde_json (which
    /// the browser's `.wasm` would otherwise carry for this alone).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(64);
        out.push_str("{\"type\":");
        match self {
            ClientMessage::Subscribe(Subscribe {
                patterns,
                keys,
                db,
                window,
            }) => {
                out.push_str("\"subscribe\"");
                for (name, texts) in [("patterns", patterns), ("keys", keys)] {
                    if !texts.is_empty() {
                        out.push(',');
                        push_name(&mut out, name);
                        push_strings(&mut out, texts);
                    }
                }
                out.push_str(&format!(",\"db\":{db},\"window\":{window}"));
            }
            ClientMessage::Topup(Topup { keys }) => {
                out.push_str("\"topup\",");
                push_name(&mut out, "keys");
                push_strings(&mut out, keys);
            }
            ClientMessage::Event(Event { id, key, fields }) => {
                out.push_str("\"event\",\"id\":");
                push_string(&mut out, id);
                out.push_str(",\"key\":");
                push_string(&mut out, key);
                out.push_str(",\"fields\":{");
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_string(&mut out, name);
                    out.push(':');
                    push_string(&mut out, value);
                }
                out.push('}');
            }
            ClientMessage::Token(TokenRefresh { token }) => {
                out.push_str("\"token\",\"token\":");
                push_string(&mut out, token);
            }
            ClientMessage::Digest(DigestRequest { id }) => {
                out.push_str("\"digest\",\"id\":");
                push_string(&mut out, id);
            }
        }
        out.push('}');
        out
    }
}

impl Subscribe {
    /// Reads a session's first message and checks it against the limits; returns it with its patterns compiled.
    pub fn parse(text: &str) -> Result<(Subscribe, Vec<Glob>), ClientMessageError> {
        let subscribe = match serde_json::from_str(text)
            .map_err(|e| ClientMessageError::Json(e.to_string()))?
        {
            ClientMessage::Subscribe(subscribe) => subscribe,
            ClientMessage::Topup(_) => return Err(ClientMessageError::NotSubscribe("topup")),
            ClientMessage::Event(_) => return Err(ClientMessageError::NotSubscribe("event")),
            ClientMessage::Token(_) => return Err(ClientMessageError::NotSubscribe("token")),
            ClientMessage::Digest(_) => return Err(ClientMessageError::NotSubscribe("digest")),
        };
        for (what, list, limit) in [
            ("patterns", &subscribe.patterns, MAX_PATTERNS),
            ("keys", &subscribe.keys, MAX_KEYS),
        ] {
            if list.len() > limit {
                return Err(ClientMessageError::TooMany {
                    scope: "subscription",
                    what,
                    got: list.len(),
                    limit,
                });
            }
        }
        if let Some(long) = subscribe
            .patterns
            .iter()
            .chain(&subscribe.keys)
            .find(|n| n.len() > MAX_NAME_LEN)
        {
            return Err(ClientMessageError::TooLong(long.len()));
        }
        let patterns = subscribe
            .patterns
            .iter()
            .map(|p| Glob::within(p.as_bytes(), MAX_PATTERN_WILDCARDS))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ClientMessageError::Wildcards)?;
        if !(1..=MAX_WINDOW).contains(&subscribe.window) {
            return Err(ClientMessageError::Window(subscribe.window));
        }
        if subscribe.db > MAX_DB {
            return Err(ClientMessageError::Db(subscribe.db));
        }
        if patterns.is_empty() && subscribe.keys.is_empty() {
            return Err(ClientMessageError::Empty);
        }
        Ok((subscribe, patterns))
    }
}

impl Topup {
    /// Whether a top-up can name `key`: the request is JSON text, so the key must be UTF-8, and the relay takes
    /// names of at most [`MAX_NAME_LEN`] bytes (asking for another would close the session). Such a key's window,
    /// once short, stays short until the page joins afresh with a snapshot.
    pub fn can_name(key: &[u8]) -> bool {
        key.len() <= MAX_NAME_LEN && std::str::from_utf8(key).is_ok()
    }

    /// Top-up messages for any number of keys, as requests the relay takes: each of at most [`MAX_TOPUP_KEYS`]
    /// keys and [`MAX_CLIENT_MESSAGE`] bytes. Only keys for which [`Topup::can_name`] holds arrive as themselves.
    pub fn requests<'k>(keys: impl IntoIterator<Item = &'k [u8]>) -> Vec<String> {
        Topup::requests_within(keys, 0)
    }

    /// [`Topup::requests`], each leaving `extra` bytes of [`MAX_CLIENT_MESSAGE`] free.
    fn requests_within<'k>(keys: impl IntoIterator<Item = &'k [u8]>, extra: usize) -> Vec<String> {
        // `{"type":"topup","keys":[]}`: what a request holds besides its keys, each a quoted name and a comma.
        let frame = ClientMessage::Topup(Topup { keys: Vec::new() })
            .to_json()
            .len()
            + extra;
        let request = |keys: Vec<String>| ClientMessage::Topup(Topup { keys }).to_json();
        let mut requests = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut size = frame;
        for key in keys {
            let name = String::from_utf8_lossy(key).into_owned();
            let mut quoted = String::new();
            push_string(&mut quoted, &name);
            let quoted = quoted.len();
            if !names.is_empty()
                && (names.len() == MAX_TOPUP_KEYS || size + quoted + 1 > MAX_CLIENT_MESSAGE)
            {
                requests.push(request(std::mem::take(&mut names)));
                size = frame;
            }
            size += quoted + 1;
            names.push(name);
        }
        if !names.is_empty() {
            requests.push(request(names));
        }
        requests
    }

    /// [`Topup::requests`] for a client that asks for the items that entered the keys' windows after `since` too
    /// (a past message; the history sink): each request within [`MAX_CLIENT_MESSAGE`] bytes with its `since`.
    pub fn requests_since<'k>(keys: impl IntoIterator<Item = &'k [u8]>, since: u64) -> Vec<String> {
        // Ends the request's object: `,"since":N}` in place of its `}`.
        let field = format!(",\"since\":{since}}}");
        Topup::requests_within(keys, field.len() - 1)
            .into_iter()
            .map(|request| format!("{}{field}", &request[..request.len() - 1]))
            .collect()
    }
}

/// A message as the relay reads it after the subscription: [`ClientMessage`], with a top-up's `since`, which only
/// non-browser clients send. It is not a field of [`Topup`] because that type is compiled into the browser's
/// `.wasm`, which must not grow for what it never sends.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Incoming {
    /// Refused whatever it holds: a session has one subscription.
    Subscribe(serde::de::IgnoredAny),
    Topup(TopupSince),
    Event(Event),
    Token(TokenRefresh),
    Digest(DigestRequest),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopupSince {
    keys: Vec<String>,
    #[serde(default)]
    since: Option<u64>,
}

/// What a browser may send after its subscription, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Read these keys' windows again: removals left the browser's windows shorter than what Redis holds. With
    /// `since` (an offset of the session's stream; only non-browser clients, the history sink, send it), the
    /// relay also sends a past message (`wire::Past`) of the items that entered those windows after it.
    Topup {
        keys: Vec<Vec<u8>>,
        since: Option<u64>,
    },
    /// Append an event; the relay's own limits and `--writable` are checked when it is handled, and answered with
    /// an ack, since the browser can fix them. Only a message that cannot be read at all closes the session.
    Event(Event),
    /// A fresh token, within [`MAX_TOKEN_LEN`]; the relay verifies it.
    Token(String),
    /// A digest of the session's windows, answered under this id.
    Digest(String),
}

impl Request {
    /// Reads and checks a message that follows the subscription.
    pub fn parse(text: &str) -> Result<Self, ClientMessageError> {
        match serde_json::from_str(text).map_err(|e| ClientMessageError::Request(e.to_string()))? {
            Incoming::Subscribe(_) => Err(ClientMessageError::Resubscribe),
            Incoming::Topup(TopupSince { keys, since }) => {
                if keys.len() > MAX_TOPUP_KEYS {
                    return Err(ClientMessageError::TooMany {
                        scope: "top-up",
                        what: "keys",
                        got: keys.len(),
                        limit: MAX_TOPUP_KEYS,
                    });
                }
                if let Some(long) = keys.iter().find(|k| k.len() > MAX_NAME_LEN) {
                    return Err(ClientMessageError::TooLong(long.len()));
                }
                Ok(Request::Topup {
                    keys: keys.into_iter().map(String::into_bytes).collect(),
                    since,
                })
            }
            Incoming::Event(event) => {
                // Without a usable id the browser could not tell which request an ack answers.
                if event.id.is_empty() || event.id.len() > MAX_REQUEST_ID_LEN {
                    return Err(ClientMessageError::RequestId(event.id.len()));
                }
                Ok(Request::Event(event))
            }
            Incoming::Token(TokenRefresh { token }) => {
                if token.len() > MAX_TOKEN_LEN {
                    return Err(ClientMessageError::TokenTooLong(token.len()));
                }
                Ok(Request::Token(token))
            }
            Incoming::Digest(DigestRequest { id }) => {
                if id.is_empty() || id.len() > MAX_REQUEST_ID_LEN {
                    return Err(ClientMessageError::RequestId(id.len()));
                }
                Ok(Request::Digest(id))
            }
        }
    }
}

/// An event's fields as a JSON object of strings, kept as pairs in the order written (a map would sort them and
/// fold repeats).
mod fields_in_order {
    use serde::de::{MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        fields: &[(String, String)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(fields.len()))?;
        for (name, value) in fields {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(String, String)>, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Vec<(String, String)>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of string fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                // Bounded by the message: at most 64 KiB of JSON.
                let mut fields = Vec::new();
                while let Some(field) = map.next_entry::<String, String>()? {
                    fields.push(field);
                }
                Ok(fields)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscribe(patterns: &[String], keys: &[String]) -> String {
        serde_json::json!({"type": "subscribe", "patterns": patterns, "keys": keys, "window": 5})
            .to_string()
    }

    fn refusal(text: &str) -> String {
        Subscribe::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_million_patterns_or_keys_are_refused_by_count() {
        let million: Vec<String> = (0..1_000_000).map(|i| format!("p{i}")).collect();
        assert_eq!(
            refusal(&subscribe(&million, &[])),
            "a subscription holds at most 64 patterns, got 1000000"
        );
        assert_eq!(
            refusal(&subscribe(&[], &million)),
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
            refusal(&subscribe(&[], std::slice::from_ref(&megabyte))),
            "a pattern or key is at most 1024 bytes, got 1048576"
        );
        let topup = serde_json::json!({"type": "topup", "keys": [megabyte]}).to_string();
        assert_eq!(
            Request::parse(&topup).unwrap_err().to_string(),
            "a pattern or key is at most 1024 bytes, got 1048576"
        );
        let longest = "k".repeat(MAX_NAME_LEN);
        assert!(Subscribe::parse(&subscribe(&[], &[longest])).is_ok());
    }

    #[test]
    fn patterns_searching_for_more_than_a_word_of_wildcards_are_refused() {
        let searched = |n: usize| format!("perf:*{}*", "?".repeat(n));
        assert!(Subscribe::parse(&subscribe(&[searched(MAX_PATTERN_WILDCARDS)], &[])).is_ok());
        assert_eq!(
            refusal(&subscribe(&[searched(MAX_PATTERN_WILDCARDS + 1)], &[])),
            "a pattern's parts between two * holding ?, [ or \\ may span at most 64 bytes of a key, got 65"
        );
        // Wildcards checked in place (before the first `*`, after the last) cost one step per byte: no limit.
        let anchored = format!("{}*{}", "?".repeat(500), "?".repeat(500));
        assert!(Subscribe::parse(&subscribe(&[anchored], &[])).is_ok());
    }

    #[test]
    fn invalid_json_is_refused_with_where_it_broke() {
        assert_eq!(
            refusal("{\"type\":\"subscribe\","),
            "invalid subscribe message: EOF while parsing a value at line 1 column 20"
        );
        assert_eq!(
            refusal(r#"{"type":"subscribe","patterns":["a"],"window":5,"extra":1}"#),
            "invalid subscribe message: unknown field `extra`, expected one of `patterns`, `keys`, `db`, `window`"
        );
        assert_eq!(
            Request::parse(r#"{"type":"subscribe","patterns":["a"],"window":5}"#).unwrap_err(),
            ClientMessageError::Resubscribe
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
            Request::Event(Event {
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
            ClientMessageError::RequestId(0)
        );
        let long = format!(
            r#"{{"type":"event","id":"{}","key":"k","fields":{{}}}}"#,
            "i".repeat(65)
        );
        assert_eq!(
            Request::parse(&long).unwrap_err(),
            ClientMessageError::RequestId(65)
        );
        assert_eq!(
            Request::parse(r#"{"type":"event","id":"r","key":"k","fields":{"n":1}}"#)
                .unwrap_err()
                .to_string(),
            "invalid message: invalid type: integer `1`, expected a string"
        );
        assert_eq!(
            Subscribe::parse(r#"{"type":"event","id":"r","key":"k","fields":{}}"#).unwrap_err(),
            ClientMessageError::NotSubscribe("event")
        );
    }

    #[test]
    fn topups_are_cut_into_requests_the_relay_takes() {
        let few = Topup::requests([&b"perf:a"[..], b"q\""]);
        assert_eq!(few, [r#"{"type":"topup","keys":["perf:a","q\""]}"#]);
        assert!(Topup::requests(std::iter::empty()).is_empty());
        let keys: Vec<Vec<u8>> = (0..3000)
            .map(|i| format!("perf:{i}").into_bytes())
            .collect();
        let requests = Topup::requests(keys.iter().map(Vec::as_slice));
        assert_eq!(requests.len(), 3, "1,024 keys at most in each");
        let long: Vec<Vec<u8>> = (0..200)
            .map(|i| vec![b'a' + (i % 26) as u8; MAX_NAME_LEN])
            .collect();
        let requests = Topup::requests(long.iter().map(Vec::as_slice));
        assert!(requests.len() >= 4);
        let mut named = 0;
        for request in &requests {
            assert!(request.len() <= MAX_CLIENT_MESSAGE, "{}", request.len());
            let Ok(Request::Topup { keys, since: None }) = Request::parse(request) else {
                panic!("the relay refuses {request}")
            };
            named += keys.len();
        }
        assert_eq!(named, 200, "every key in one request");
    }

    #[test]
    fn a_topup_may_ask_for_the_past_since_an_offset() {
        assert_eq!(
            Request::parse(r#"{"type":"topup","keys":["perf:a"],"since":123}"#),
            Ok(Request::Topup {
                keys: vec![b"perf:a".to_vec()],
                since: Some(123)
            })
        );
        assert_eq!(
            Request::parse(r#"{"type":"topup","keys":["perf:a"]}"#),
            Ok(Request::Topup {
                keys: vec![b"perf:a".to_vec()],
                since: None
            })
        );
        for bad in [
            r#"{"type":"topup","keys":[],"since":-1}"#,
            r#"{"type":"topup","keys":[],"since":"1"}"#,
            r#"{"type":"topup","keys":[],"since":18446744073709551616}"#,
            r#"{"type":"topup","keys":[],"until":1}"#,
        ] {
            assert!(
                matches!(Request::parse(bad), Err(ClientMessageError::Request(_))),
                "{bad}"
            );
        }
        assert_eq!(
            Topup::requests_since([&b"perf:a"[..]], 7),
            [r#"{"type":"topup","keys":["perf:a"],"since":7}"#]
        );
        // Requests at the limit are cut again so that each still fits with its `since`: 63 keys of 1,024 bytes
        // and one of 800 fill a request to 65,530 bytes.
        let keys: Vec<Vec<u8>> = (0..200)
            .map(|i| vec![b'a' + (i % 26) as u8; if i % 64 == 63 { 800 } else { MAX_NAME_LEN }])
            .collect();
        assert!(Topup::requests(keys.iter().map(Vec::as_slice))
            .iter()
            .any(|r| r.len() > MAX_CLIENT_MESSAGE - 20));
        let requests = Topup::requests_since(keys.iter().map(Vec::as_slice), u64::MAX);
        let mut named = Vec::new();
        for request in &requests {
            assert!(request.len() <= MAX_CLIENT_MESSAGE, "{}", request.len());
            let Ok(Request::Topup {
                keys,
                since: Some(u64::MAX),
            }) = Request::parse(request)
            else {
                panic!("the relay refuses {request}")
            };
            named.extend(keys);
        }
        assert_eq!(named, keys, "every key once, in order");
    }

    #[test]
    fn subscribe_messages_are_json() {
        let message = ClientMessage::Subscribe(Subscribe {
            patterns: vec!["perf:*".into(), "a\"b\\c\n".into()],
            keys: Vec::new(),
            db: 2,
            window: 50,
        });
        assert_eq!(
            message.to_json(),
            r#"{"type":"subscribe","patterns":["perf:*","a\"b\\c\n"],"db":2,"window":50}"#
        );
        let (read, _) = Subscribe::parse(&message.to_json()).unwrap();
        assert_eq!(
            ClientMessage::Subscribe(read),
            message,
            "the relay reads what the browser wrote"
        );
    }

    #[test]
    fn digest_requests_are_json_with_a_bounded_id() {
        let message = ClientMessage::Digest(DigestRequest { id: "d1".into() });
        assert_eq!(message.to_json(), r#"{"type":"digest","id":"d1"}"#);
        assert_eq!(
            Request::parse(&message.to_json()),
            Ok(Request::Digest("d1".into()))
        );
        for id in [String::new(), "i".repeat(MAX_REQUEST_ID_LEN + 1)] {
            let len = id.len();
            let message = ClientMessage::Digest(DigestRequest { id }).to_json();
            assert_eq!(
                Request::parse(&message),
                Err(ClientMessageError::RequestId(len))
            );
        }
        assert_eq!(
            Subscribe::parse(&message.to_json()),
            Err(ClientMessageError::NotSubscribe("digest"))
        );
    }

    #[test]
    fn token_refreshes_are_json_and_bounded() {
        let message = ClientMessage::Token(TokenRefresh {
            token: "a.b.c".into(),
        });
        assert_eq!(message.to_json(), r#"{"type":"token","token":"a.b.c"}"#);
        assert_eq!(
            Request::parse(&message.to_json()),
            Ok(Request::Token("a.b.c".into()))
        );
        let long = ClientMessage::Token(TokenRefresh {
            token: "t".repeat(MAX_TOKEN_LEN + 1),
        });
        assert_eq!(
            Request::parse(&long.to_json()).unwrap_err().to_string(),
            "a token is at most 8192 bytes, got 8193"
        );
        assert_eq!(
            Subscribe::parse(&message.to_json()),
            Err(ClientMessageError::NotSubscribe("token"))
        );
    }

    #[test]
    fn topup_requests_are_json() {
        let message = ClientMessage::Topup(Topup {
            keys: vec!["perf:a".into(), "q\"".into()],
        });
        assert_eq!(
            message.to_json(),
            r#"{"type":"topup","keys":["perf:a","q\""]}"#
        );
    }

    #[test]
    fn events_are_json_with_fields_in_order() {
        let event = Event {
            id: "7".into(),
            key: "annotations:perf".into(),
            fields: vec![
                ("text".into(), "investigating \"db\" — Ana".into()),
                ("host".into(), "web-01".into()),
            ],
        };
        let text = ClientMessage::Event(event.clone()).to_json();
        assert_eq!(
            text,
            r#"{"type":"event","id":"7","key":"annotations:perf","fields":{"text":"investigating \"db\" — Ana","host":"web-01"}}"#
        );
        assert_eq!(Request::parse(&text), Ok(Request::Event(event)));
    }

    #[test]
    fn only_utf8_keys_within_the_relays_limit_can_be_topped_up() {
        assert!(Topup::can_name(b"perf:a"));
        assert!(Topup::can_name("é".repeat(MAX_NAME_LEN / 2).as_bytes()));
        assert!(!Topup::can_name(b"perf:\xff"), "JSON cannot carry it");
        assert!(
            !Topup::can_name(&[b'k'; MAX_NAME_LEN + 1]),
            "the relay refuses it"
        );
        assert!(!Topup::can_name(&vec![b'k'; 1 << 20]));
    }

    // proptest is a native-only dev-dependency.
    #[cfg(not(target_arch = "wasm32"))]
    mod written_as_serde_json_writes {
        use super::*;
        use proptest::prelude::*;

        /// Text with everything JSON escapes (quotes, backslashes, every control character) and non-ASCII.
        fn text() -> impl Strategy<Value = String> {
            "[ -~\\x00-\\x1f\\x7fé€😀]{0,12}"
        }

        fn message() -> impl Strategy<Value = ClientMessage> {
            prop_oneof![
                (
                    prop::collection::vec(text(), 0..3),
                    prop::collection::vec(text(), 0..3),
                    any::<u32>(),
                    any::<usize>()
                )
                    .prop_map(|(patterns, keys, db, window)| {
                        ClientMessage::Subscribe(Subscribe {
                            patterns,
                            keys,
                            db,
                            window,
                        })
                    }),
                prop::collection::vec(text(), 0..4)
                    .prop_map(|keys| ClientMessage::Topup(Topup { keys })),
                (
                    text(),
                    text(),
                    prop::collection::vec((text(), text()), 0..4)
                )
                    .prop_map(|(id, key, fields)| ClientMessage::Event(Event {
                        id,
                        key,
                        fields
                    })),
                text().prop_map(|token| ClientMessage::Token(TokenRefresh { token })),
                text().prop_map(|id| ClientMessage::Digest(DigestRequest { id })),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(5_000))]
            #[test]
            fn to_json_is_serde_jsons_text(message in message()) {
                prop_assert_eq!(message.to_json(), serde_json::to_string(&message).unwrap());
            }
        }
    }
}
