//! What a browser sends the relay, over arbitrary bytes: its subscription, top-up (with `since`, and the past message
//! that answers it, round-tripped; the ended message of a shard's stream too), event and digest messages (as raw text,
//! and as JSON built from the input so that every limit is approached from both sides), the checks an event passes
//! before anything is written (writable keys, field names and count, size, the rate limit), the WebSocket upgrade's
//! access check (Host, token, origin, session cap), the per-address slots, the client address read from a trusted
//! proxy's `X-Forwarded-For` or `Forwarded`, and key patterns matched against keys.
//!
//! Besides never panicking or hanging: a subscription or top-up is accepted exactly when it is within every limit
//! (a model of the limits decides, independently of the parser), whatever is accepted respects them, an upgrade is
//! admitted only for a Host the relay answers to, with the right token and an allowed origin under the cap, no
//! address ever holds more slots than its limit, nor any once they are all given back, an untrusted peer is its own
//! client whatever it forwards (a trusted one's client is an address its header names), and a pattern matches a key
//! exactly when a plain backtracking reading of Redis's rules says so, in work linear in the two.
//!
//! Run: `cargo +nightly fuzz run client_message -- -max_total_time=600` from the repository root.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use replicast_protocol::client_message::{
    Request, MAX_DB, MAX_KEYS, MAX_NAME_LEN, MAX_PATTERNS, MAX_PATTERN_WILDCARDS,
    MAX_REQUEST_ID_LEN, MAX_TOKEN_LEN, MAX_TOPUP_KEYS, MAX_WINDOW,
};
use replicast_protocol::pattern::Glob;
use replicast_protocol::wire::{self, WindowsDigest};
use replicast_server::access::{Access, Peers};
use replicast_server::client_address::{ClientAddress, ForwardingHeader, TrustedProxies};
use replicast_server::events::{
    Append, EventLimits, Identity, RateLimit, Writable, PEER_FIELD, SESSION_FIELD, TIME_FIELD,
};
use replicast_server::subscription::{Allow, Subscription};
use serde_json::{json, Value};

/// Reads numbers and strings off the front of the input; past its end, zeros and empty strings.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
        self.0 = rest;
        first
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// A count near `limit` as often as far from it.
    fn count(&mut self, limit: usize) -> usize {
        match self.byte() % 4 {
            0 => usize::from(self.byte() % 4),
            1 => limit - 2 + usize::from(self.byte() % 4),
            _ => usize::from(self.u16()) % (limit + limit / 4),
        }
    }

    /// A name from the input's next bytes, stretched to a length near `MAX_NAME_LEN` now and then.
    fn name(&mut self) -> String {
        // Past the input's end (zeros), names are empty, so that a count read there costs little.
        let len = match self.byte() % 8 {
            7 => MAX_NAME_LEN - 1 + usize::from(self.byte() % 3),
            _ => usize::from(self.byte() % 24),
        };
        let seed = self.byte();
        let alphabet = b"perf:*?[]^\\-ab\"\x7f";
        (0..len)
            .map(|i| alphabet[(usize::from(seed) + i * 7) % alphabet.len()] as char)
            .collect()
    }

    fn names(&mut self, limit: usize) -> Vec<String> {
        let n = self.count(limit);
        (0..n).map(|_| self.name()).collect()
    }
}

fn within(names: &[String], limit: usize) -> bool {
    names.len() <= limit && names.iter().all(|n| n.len() <= MAX_NAME_LEN)
}

fn check_subscription(sub: &Subscription, input: &mut Input<'_>) {
    assert!(sub.patterns.len() <= MAX_PATTERNS && sub.keys.len() <= MAX_KEYS);
    assert!(sub
        .patterns
        .iter()
        .map(Glob::as_bytes)
        .chain(sub.keys.iter().map(Vec::as_slice))
        .all(|n| n.len() <= MAX_NAME_LEN));
    assert!(sub
        .patterns
        .iter()
        .all(|p| p.wildcard_positions() <= MAX_PATTERN_WILDCARDS));
    assert!((1..=MAX_WINDOW).contains(&sub.window) && sub.db <= MAX_DB);
    assert!(!sub.patterns.is_empty() || !sub.keys.is_empty());
    // Matching keys of any shape against the accepted patterns and an allow-list from the input.
    let allow = Allow::new(&[input.name(), input.name()]);
    for _ in 0..4 {
        let key = input.name();
        let _ = sub.wants(key.as_bytes()) && allow.allows(key.as_bytes());
    }
}

/// A subscribe message near every limit; the model says whether the relay must take it.
fn structured_subscription(input: &mut Input<'_>) {
    let patterns = input.names(MAX_PATTERNS);
    let keys = input.names(MAX_KEYS);
    let window = match input.byte() % 4 {
        0 => 0,
        1 => MAX_WINDOW as u64 + u64::from(input.byte() % 2),
        _ => u64::from(input.u32()) % (MAX_WINDOW as u64 * 2),
    };
    let db = match input.byte() % 3 {
        0 => MAX_DB + u32::from(input.byte() % 2),
        _ => u32::from(input.u16()) % 2048,
    };
    let flags = input.byte();
    let mut message = json!({"type": "subscribe", "window": window});
    if flags & 1 == 0 || !patterns.is_empty() {
        message["patterns"] = json!(patterns);
    }
    if flags & 2 == 0 || !keys.is_empty() {
        message["keys"] = json!(keys);
    }
    if flags & 4 == 0 {
        message["db"] = json!(db);
    }
    let unknown_field = flags & 0x18 == 0x18;
    if unknown_field {
        message["extra"] = Value::Bool(true);
    }
    let db = if flags & 4 == 0 { db } else { 0 };
    // Patterns too long are refused before they are read as patterns.
    let narrow = within(&patterns, MAX_PATTERNS)
        && patterns
            .iter()
            .all(|p| Glob::new(p.as_bytes()).wildcard_positions() <= MAX_PATTERN_WILDCARDS);
    let valid = !unknown_field
        && narrow
        && within(&patterns, MAX_PATTERNS)
        && within(&keys, MAX_KEYS)
        && (1..=MAX_WINDOW as u64).contains(&window)
        && db <= MAX_DB
        && !(patterns.is_empty() && keys.is_empty());
    let parsed = Subscription::parse(&message.to_string());
    assert_eq!(parsed.is_ok(), valid, "{parsed:?}");
    if let Ok(sub) = parsed {
        assert_eq!((sub.window as u64, sub.db), (window, db));
        check_subscription(&sub, input);
    }
    assert!(
        Request::parse(&message.to_string()).is_err(),
        "a second subscribe"
    );
}

/// A top-up request near its limits, with or without `since`.
fn structured_topup(input: &mut Input<'_>) {
    let keys = input.names(MAX_TOPUP_KEYS);
    let since = match input.byte() % 3 {
        0 => None,
        1 => Some(u64::MAX - u64::from(input.byte() % 2)),
        _ => Some(u64::from(input.u32())),
    };
    let mut message = json!({"type": "topup", "keys": keys});
    if let Some(since) = since {
        message["since"] = json!(since);
    }
    let message = message.to_string();
    let parsed = Request::parse(&message);
    assert_eq!(parsed.is_ok(), within(&keys, MAX_TOPUP_KEYS), "{parsed:?}");
    if let Ok(Request::Topup {
        keys: asked,
        since: read,
    }) = parsed
    {
        assert!(asked.len() <= MAX_TOPUP_KEYS && asked.iter().all(|k| k.len() <= MAX_NAME_LEN));
        assert_eq!(read, since);
    }
    past_message(input);
    ended_message(input);
    assert!(
        Subscription::parse(&message).is_err(),
        "a top-up is no subscription"
    );
}

/// An ended message of a shard from the input decodes back to its shard and reason; a browser's decoder refuses it;
/// the same bytes cut anywhere, or with a byte changed, are refused or decoded, never a panic.
fn ended_message(input: &mut Input<'_>) {
    let reason = input.name();
    let shard = input.u16() % wire::MAX_SHARDS as u16;
    let message = wire::encode_shard(shard, &wire::encode_ended(&reason));
    assert_eq!(wire::decode_ended(&message), Ok((shard, reason.as_str())));
    assert!(wire::decode(&message).is_err(), "a browser never reads it");
    let cut = usize::from(input.u16()) % (message.len() + 1);
    let _ = wire::decode_ended(&message[..cut]);
    let mut changed = message.clone();
    if let Some(byte) = changed.get_mut(usize::from(input.u16()) % message.len()) {
        *byte ^= input.byte() | 1;
    }
    let _ = wire::decode_ended(&changed);
}

/// A past message built from the input decodes back to itself, alone and in a shard's envelope; the same bytes
/// cut anywhere, or with a byte changed, are refused or decoded, never a panic.
fn past_message(input: &mut Input<'_>) {
    let offset = u64::from(input.u32());
    let names: Vec<String> = (0..input.byte() % 4).map(|_| input.name()).collect();
    let mut fields: Vec<Vec<u8>> = Vec::new();
    for _ in 0..input.byte() % 4 {
        fields.push(input.name().into_bytes());
    }
    let mut keys = Vec::new();
    for name in &names {
        let covered_from = offset.saturating_sub(u64::from(input.u16()));
        let mut at = covered_from;
        let mut items = Vec::new();
        for _ in 0..input.byte() % 4 {
            at = (at + 1 + u64::from(input.byte() % 3)).min(offset);
            if at <= covered_from {
                break;
            }
            let value = match input.byte() % 2 {
                0 => wire::PastValue::Member {
                    score: f64::from(input.u32()) - 1e6,
                    member: name.as_bytes(),
                },
                _ => wire::PastValue::Entry {
                    ms: u64::from(input.u32()),
                    seq: u64::from(input.byte()),
                    fields: fields[..fields.len() / 2 * 2]
                        .iter()
                        .map(Vec::as_slice)
                        .collect(),
                },
            };
            items.push(wire::PastItem { offset: at, value });
        }
        keys.push(wire::PastKey {
            key: name.as_bytes(),
            covered_from,
            items,
        });
    }
    let past = wire::Past { offset, keys };
    let message = wire::encode_past(&past);
    assert_eq!(wire::decode_past(&message), Ok((0, past.clone())));
    let shard = input.u16() % wire::MAX_SHARDS as u16;
    assert_eq!(
        wire::decode_past(&wire::encode_shard(shard, &message)),
        Ok((shard, past))
    );
    let cut = usize::from(input.u16()) % (message.len() + 1);
    let _ = wire::decode_past(&message[..cut]);
    let mut changed = message.clone();
    if let Some(byte) = changed.get_mut(usize::from(input.u16()) % message.len()) {
        *byte ^= input.byte() | 1;
    }
    let _ = wire::decode_past(&changed);
}

/// Raw text, as a first message and as a later one.
fn raw_text(bytes: &[u8]) {
    let _ = wire::decode_past(bytes);
    let _ = wire::decode_ended(bytes);
    let text = String::from_utf8_lossy(bytes);
    if let Ok(sub) = Subscription::parse(&text) {
        check_subscription(&sub, &mut Input(bytes));
    }
    match Request::parse(&text) {
        Ok(Request::Topup { keys, .. }) => {
            assert!(keys.len() <= MAX_TOPUP_KEYS && keys.iter().all(|k| k.len() <= MAX_NAME_LEN));
        }
        Ok(Request::Event(event)) => assert!((1..=64).contains(&event.id.len())),
        Ok(Request::Token(token)) => assert!(token.len() <= MAX_TOKEN_LEN),
        Ok(Request::Digest(id)) => assert!((1..=MAX_REQUEST_ID_LEN).contains(&id.len())),
        Err(_) => {}
    }
}

/// A digest request with an id near its limits: accepted exactly when the id has 1 to 64 bytes, and answered by a
/// digest message that decodes back to the same id, offset and digest.
fn structured_digest(input: &mut Input<'_>) {
    let id = input.name();
    let message = json!({"type": "digest", "id": id}).to_string();
    let parsed = Request::parse(&message);
    assert_eq!(
        parsed.is_ok(),
        (1..=MAX_REQUEST_ID_LEN).contains(&id.len()),
        "{parsed:?}"
    );
    let Ok(Request::Digest(id)) = parsed else {
        return;
    };
    let digest = WindowsDigest {
        hash: u64::from(input.u16()) << 40 | u64::from(input.byte()),
        keys: u32::from(input.u16()),
        items: u64::from(input.u16()),
    };
    let offset = u64::from(input.u16());
    let answer = wire::encode_digest(&id, offset, Ok(digest));
    assert_eq!(
        wire::decode(&answer),
        Ok(wire::Message::Digest {
            request: &id,
            offset,
            digest: Ok(digest)
        })
    );
    let reason = input.name();
    let refused = wire::encode_digest(&id, 0, Err(&reason));
    assert!(matches!(
        wire::decode(&refused),
        Ok(wire::Message::Digest { digest: Err(r), .. }) if r == reason
    ));
    assert!(
        Subscription::parse(&message).is_err(),
        "a digest request is no subscription"
    );
}

/// An event near its limits, read as the relay reads it, then checked and built into its one append: whatever is
/// built is an XADD or ZADD to a writable, allowed key, within the limits, with the relay's own fields last.
fn structured_event(input: &mut Input<'_>) {
    let limits = EventLimits {
        rate: f64::from(input.byte()) / 16.0,
        burst: u32::from(input.byte() % 8),
        max_bytes: usize::from(input.u16() % 8192),
        max_fields: usize::from(input.byte() % 20),
        maxlen: u64::from(input.u16()),
    };
    let allow = Allow::new(&[input.name()]);
    let (streams, sets) = (vec![input.name()], vec![input.name()]);
    let Ok(writable) = Writable::new(&streams, &sets, &allow) else {
        return;
    };
    let key = input.name();
    let n = input.count(limits.max_fields.max(2));
    let fields: Vec<(String, String)> = (0..n).map(|_| (input.name(), input.name())).collect();
    let mut object = serde_json::Map::new();
    for (name, value) in &fields {
        object.insert(name.clone(), Value::String(value.clone()));
    }
    let id = "x".repeat(usize::from(input.byte() % 70));
    let message = json!({"type": "event", "id": id, "key": key, "fields": object}).to_string();
    let Ok(Request::Event(event)) = Request::parse(&message) else {
        assert!(
            id.is_empty() || id.len() > 64,
            "a well-formed event was refused: {message}"
        );
        return;
    };
    assert!((1..=64).contains(&event.id.len()));
    let identity = Identity {
        session: "s-1".into(),
        peer: ClientAddress::Peer("127.0.0.1:9".parse().unwrap()),
        grant: None,
    };
    let asked = event.fields.len();
    let Ok(append) = Append::prepare(event, &writable, &allow, &limits, &identity, 7) else {
        return;
    };
    assert!(allow.allows(key.as_bytes()) && writable.sink(&key).is_ok());
    assert!((1..=limits.max_fields).contains(&asked));
    let own = [SESSION_FIELD, PEER_FIELD, TIME_FIELD];
    match append {
        Append::Stream {
            key: to, fields, ..
        } => {
            assert_eq!(to, key);
            assert_eq!(fields.len(), asked + 3);
            let (theirs, ours) = fields.split_at(asked);
            assert!(theirs
                .iter()
                .all(|(n, _)| !n.starts_with('_') && !n.is_empty()));
            assert!(ours.iter().map(|(n, _)| n.as_str()).eq(own));
            let size: usize = theirs.iter().map(|(n, v)| n.len() + v.len()).sum();
            assert!(key.len() + size <= limits.max_bytes);
        }
        Append::SortedSet {
            key: to,
            score,
            member,
        } => {
            assert_eq!((to.as_str(), score), (key.as_str(), 7));
            let member: serde_json::Map<String, Value> = serde_json::from_str(&member).unwrap();
            assert_eq!(member.len(), asked + 3);
            assert!(own.iter().all(|f| member.contains_key(*f)));
        }
    }
}

/// A session's token bucket under events at times from the input: never more than the burst plus what the rate
/// refilled, and never a panic, whatever the rate.
fn rate_limit(input: &mut Input<'_>) {
    let rate = match input.byte() % 4 {
        0 => 0.0,
        1 => f64::from(input.u32()) * 1e-30,
        _ => f64::from(input.u16()) / 64.0,
    };
    let burst = u32::from(input.byte() % 16);
    let start = tokio::time::Instant::now();
    let mut bucket = RateLimit::new(rate, burst, start);
    let (mut at, mut taken) = (std::time::Duration::ZERO, 0u64);
    for _ in 0..64 {
        at += std::time::Duration::from_millis(u64::from(input.u16()));
        match bucket.take(start + at) {
            Ok(()) => taken += 1,
            Err(wait) => assert!(wait > std::time::Duration::ZERO),
        }
        let most = f64::from(burst) + rate * at.as_secs_f64();
        assert!(
            taken as f64 <= most + 1e-6,
            "{taken} events by {at:?} at {rate}/s, burst {burst}"
        );
    }
}

/// The upgrade's access check with headers from the input.
fn access(input: &mut Input<'_>) {
    let token = (input.byte() % 2 == 0).then(|| input.name());
    let access = Access {
        token: token.clone(),
        origins: vec![input.name()],
        public_hosts: vec!["relay.example".into(), ".corp.example".into()],
        max_sessions: u64::from(input.byte() % 4),
        max_sessions_per_address: 1,
    };
    let mut headers = HeaderMap::new();
    let hosts = [
        "127.0.0.1:8080",
        "[::1]:8080",
        "localhost:8080",
        "relay.example",
        "a.corp.example",
        "evil.example:8080",
    ];
    for name in [
        header::HOST,
        header::ORIGIN,
        header::ORIGIN,
        header::AUTHORIZATION,
    ] {
        let raw = match input.byte() % 5 {
            0 => continue,
            1 => input.name().into_bytes(),
            2 => {
                let n = usize::from(input.byte() % 32);
                (0..n).map(|_| input.byte()).collect()
            }
            // The places that matter: the relay's own names, its origins over any scheme, and a rebound name.
            _ => {
                let host = hosts[usize::from(input.byte()) % hosts.len()];
                match (name == header::ORIGIN, input.byte() % 3) {
                    (true, 0) => format!("http://{host}"),
                    (true, 1) => format!("https://{host}"),
                    (true, _) => format!("evil://{host}"),
                    (false, _) => host.to_string(),
                }
                .into_bytes()
            }
        };
        if let Ok(value) = HeaderValue::from_bytes(&raw) {
            headers.append(name, value);
        }
    }
    let query_token = (input.byte() % 2 == 0).then(|| input.name());
    let sessions = u64::from(input.byte() % 4);
    if access
        .check(&headers, query_token.as_deref(), sessions)
        .is_ok()
    {
        assert!(sessions < access.max_sessions);
        if let Some(want) = &token {
            let bearer = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            assert_eq!(bearer.or(query_token.as_deref()).unwrap_or(""), want);
        }
        // A Host, when there is one, names the relay: an IP address, localhost, or a public name.
        let host = headers.get(header::HOST).map(|h| {
            let host = h
                .to_str()
                .expect("an accepted Host is ASCII")
                .to_ascii_lowercase();
            let name = match host.rsplit_once(':') {
                Some((name, port))
                    if !name.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    name
                }
                _ => host.as_str(),
            }
            .to_string();
            let ip = name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok();
            let public = name == "relay.example"
                || name == "corp.example"
                || name.ends_with(".corp.example");
            assert!(
                ip || public || name == "localhost" || name.ends_with(".localhost"),
                "Host {host:?} was answered"
            );
            (host, public)
        });
        // Whatever its bytes, an Origin is checked: one only, listed, or the relay's own over http (https for a
        // public name), at the Host's name.
        let origins: Vec<_> = headers.get_all(header::ORIGIN).iter().collect();
        if let Some(origin) = origins.first() {
            assert_eq!(origins.len(), 1);
            let listed = access
                .origins
                .iter()
                .any(|o| o == "*" || o.as_bytes() == origin.as_bytes());
            if !listed {
                let origin = origin.to_str().expect("an accepted Origin is ASCII");
                let (host, public) = host.expect("the relay's own origin needs a Host");
                let (scheme, rest) = origin.split_once("://").expect("scheme://");
                assert!(
                    scheme == "http" || (scheme == "https" && public),
                    "{origin}"
                );
                let name = |a: &str| {
                    match a.strip_prefix('[') {
                        Some(v6) => v6.split(']').next().unwrap_or(v6),
                        None => a.rsplit_once(':').map_or(a, |(n, _)| n),
                    }
                    .to_ascii_lowercase()
                };
                assert_eq!(name(rest), name(&host), "{origin} for Host {host}");
            }
        }
    }
}

/// `stringmatchlen` read plainly: recursive, every length tried for each `*` (runs of them as one), bytes compared
/// as signed chars in ranges; with `KEYS`'s special case, `*` alone matches everything.
fn reference_match(pattern: &[u8], text: &[u8]) -> bool {
    fn from(p: &[u8], t: &[u8]) -> bool {
        let Some((&first, rest)) = p.split_first() else {
            return t.is_empty();
        };
        if first == b'*' {
            let rest = &p[p.iter().take_while(|&&b| b == b'*').count()..];
            return (0..=t.len()).any(|k| from(rest, &t[k..]));
        }
        let Some((&byte, t_rest)) = t.split_first() else {
            return false;
        };
        let (matched, p_rest) = match first {
            b'?' => (true, rest),
            b'\\' if !rest.is_empty() => (rest[0] == byte, &rest[1..]),
            b'[' => {
                let mut i = 0;
                let negated = rest.first() == Some(&b'^');
                if negated {
                    i = 1;
                }
                let mut matched = false;
                while i < rest.len() {
                    if rest[i] == b'\\' && rest.len() - i >= 2 {
                        matched |= rest[i + 1] == byte;
                        i += 2;
                    } else if rest[i] == b']' {
                        i += 1;
                        break;
                    } else if rest.len() - i >= 3 && rest[i + 1] == b'-' {
                        let (a, b) = (rest[i] as i8, rest[i + 2] as i8);
                        matched |= (a.min(b)..=a.max(b)).contains(&(byte as i8));
                        i += 3;
                    } else {
                        matched |= rest[i] == byte;
                        i += 1;
                    }
                }
                (matched != negated, &rest[i.min(rest.len())..])
            }
            literal => (literal == byte, rest),
        };
        matched && from(p_rest, t_rest)
    }
    if pattern == b"*" {
        return true;
    }
    if text.is_empty() {
        return pattern.is_empty();
    }
    from(pattern, text)
}

/// A pattern and a key from the input: the matcher agrees with the reference (on inputs small enough for its
/// exponential worst case), and its work stays linear.
fn patterns(data: &[u8]) {
    let Some(split) = data.first().map(|&b| usize::from(b)) else {
        return;
    };
    let rest = &data[1..];
    let (pattern, text) = rest.split_at(split.min(rest.len()));
    let glob = Glob::new(pattern);
    let (matched, work) = glob.matches_counting(text);
    if glob.wildcard_positions() <= MAX_PATTERN_WILDCARDS {
        assert!(
            work <= 3 * (pattern.len() + text.len()) + 8,
            "work {work} for {} bytes of pattern and {} of key",
            pattern.len(),
            text.len()
        );
    }
    assert_eq!(
        Glob::within(pattern, MAX_PATTERN_WILDCARDS).is_ok(),
        glob.wildcard_positions() <= MAX_PATTERN_WILDCARDS
    );
    if pattern.iter().filter(|&&b| b == b'*').count() <= 4 && text.len() <= 32 {
        assert_eq!(
            matched,
            reference_match(pattern, text),
            "{} ~ {}",
            pattern.escape_ascii(),
            text.escape_ascii()
        );
    }
}

/// Sessions from a few addresses opening and closing in the input's order.
fn peer_slots(input: &mut Input<'_>) {
    let peers = Arc::new(Peers::default());
    let limit = u64::from(input.byte() % 5);
    let mut held = Vec::new();
    for _ in 0..64 {
        let op = input.byte();
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, op % 3));
        if op & 0x80 == 0 {
            let before = peers.held(ip);
            match peers.admit(ip, limit) {
                Ok(slot) => {
                    assert!(before < limit);
                    held.push(slot);
                }
                Err(open) => assert!(open >= limit && open == before),
            }
            assert!(peers.held(ip) <= limit);
        } else if !held.is_empty() {
            held.swap_remove(usize::from(op) % held.len());
        }
    }
    drop(held);
    for last in 0..3 {
        assert_eq!(peers.held(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))), 0);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut input = Input(rest);
    match mode % 10 {
        0 => raw_text(rest),
        1 => structured_subscription(&mut input),
        2 => structured_topup(&mut input),
        3 => access(&mut input),
        4 => structured_event(&mut input),
        5 => rate_limit(&mut input),
        6 => patterns(rest),
        7 => peer_slots(&mut input),
        8 => structured_digest(&mut input),
        _ => client_address(&mut input),
    }
});

/// The client behind a peer, trusted or not, from forwarding headers of the input's bytes.
fn client_address(input: &mut Input<'_>) {
    let header = match input.byte() % 2 {
        0 => ForwardingHeader::XForwardedFor,
        _ => ForwardingHeader::Forwarded,
    };
    let trusted =
        TrustedProxies::new(&["10.0.0.0/8".into(), "::1".into()], header).expect("valid CIDRs");
    let peer: SocketAddr = match input.byte() % 3 {
        0 => "10.0.0.2:4000",
        1 => "[::1]:4000",
        _ => "192.0.2.1:4000",
    }
    .parse()
    .expect("a socket address");
    let mut headers = HeaderMap::new();
    for _ in 0..input.byte() % 4 {
        let name = match input.byte() % 2 {
            0 => "x-forwarded-for",
            _ => "forwarded",
        };
        let n = usize::from(input.byte() % 64);
        let raw: Vec<u8> = (0..n).map(|_| input.byte()).collect();
        if let Ok(value) = HeaderValue::from_bytes(&raw) {
            headers.append(name, value);
        }
    }
    let client = trusted.client(peer, &headers);
    if !trusted.trusts(peer.ip()) {
        assert_eq!(client, ClientAddress::Peer(peer));
    }
    // A forwarded address comes from the one header the relay reads, never the other.
    if let ClientAddress::Forwarded(ip) = client {
        let read = match header {
            ForwardingHeader::XForwardedFor => "x-forwarded-for",
            ForwardingHeader::Forwarded => "forwarded",
        };
        assert!(headers.contains_key(read), "{ip} without a {read} header");
    }
}
