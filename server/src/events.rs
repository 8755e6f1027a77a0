//! Browser events: the one way a browser makes the relay write to Redis. A session's `event` message becomes one
//! append, `XADD key MAXLEN ~ n * field value …` to a stream or `ZADD key <server ms> <json>` to a sorted set, on
//! the node that holds the key; the browser gets an ack with the new entry's id or the reason it was refused, and
//! the entry itself reaches every browser that watches the key, the sender too, through the replication stream like
//! any other write. There is no side channel.
//!
//! What a browser can make the relay send is closed by construction: [`Append`] has exactly two variants, each
//! builds exactly one command, and [`EventWriter::append`] takes nothing else. Before an append is built, an event
//! passes, in this order: the session's rate limit ([`RateLimit`]), the key (`--writable` or `--writable-zset`, and
//! `--allow`), then the field count, the field names and the size. Each refusal is an [`EventError`] whose text
//! names the limit and the flag that sets it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use replicast_protocol::client_message::Event;
use replicast_protocol::pattern::Glob;
use thiserror::Error;
use tokio::time::Instant;

use crate::client_address::ClientAddress;
use crate::subscription::Allow;
use crate::tokens::Grant;
use crate::topology::Topology;
use crate::upstream::RedisTarget;

/// Default of `--event-rate`: events a second one session may send, on average.
pub const DEFAULT_RATE: f64 = 5.0;
/// Default of `--event-burst`: events one session may send at once before the rate applies.
pub const DEFAULT_BURST: u32 = 10;
/// Default of `--event-max-bytes`: key, field names and values of one event together.
pub const DEFAULT_MAX_BYTES: usize = 4096;
/// Default of `--event-max-fields`.
pub const DEFAULT_MAX_FIELDS: usize = 16;
/// Default of `--event-maxlen`: a stream sink is trimmed to about this many entries (`MAXLEN ~`).
pub const DEFAULT_MAXLEN: u64 = 10_000;
/// Longest field name; longer ones are refused.
pub const MAX_FIELD_NAME: usize = 64;
/// The fields the relay adds to every event: who sent it (the relay's id for the session, and the peer address)
/// and when (the relay's clock, Unix ms). Browsers may not use names starting with `_`.
pub const SESSION_FIELD: &str = "_session";
pub const PEER_FIELD: &str = "_peer";
pub const TIME_FIELD: &str = "_time";
/// The verified subject (`sub`) of the token the session holds, when the relay verifies tokens.
pub const SUBJECT_FIELD: &str = "_sub";

/// How long connecting to Redis, and one append's reply, may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an event was not appended: the ack's text.
#[derive(Debug, Error, PartialEq)]
pub enum EventError {
    #[error("rate limit: a session may send {rate} events a second, in bursts of up to {burst} (--event-rate, --event-burst); try again in {retry_ms} ms")]
    RateLimited {
        rate: f64,
        burst: u32,
        retry_ms: u64,
    },
    #[error("no key is writable: the relay was started without --writable or --writable-zset")]
    NothingWritable,
    #[error("key {0:?} is not writable: it matches no --writable or --writable-zset pattern")]
    NotWritable(String),
    #[error("key {0:?} matches both --writable (a stream) and --writable-zset (a sorted set): the relay cannot tell which to append to")]
    Ambiguous(String),
    #[error("key {0:?} is not allowed by --allow: no browser could see the event")]
    NotAllowed(String),
    #[error("key {0:?} is not writable with this token: it matches none of its replicast.write patterns")]
    NotGranted(String),
    #[error("an event needs at least one field")]
    NoFields,
    #[error("too many fields: {got}, at most {limit} (--event-max-fields)")]
    TooManyFields { got: usize, limit: usize },
    #[error("field name {0:?} is invalid: 1 to {MAX_FIELD_NAME} letters, digits or _ - . :, not starting with _ (the relay's own fields do)")]
    FieldName(String),
    #[error("field {0:?} is given twice")]
    DuplicateField(String),
    #[error("event too large: {got} bytes of key, field names and values, at most {limit} (--event-max-bytes)")]
    TooLarge { got: usize, limit: usize },
    #[error("the relay follows a read-only replica ({0}): events are written to the node the relay follows, which must be a primary (point --redis-url at the primary, or use --sentinel)")]
    ReadOnly(String),
    #[error("Redis refused the append: {0}")]
    Redis(String),
    #[error("Redis could not be reached to append the event: {0}")]
    Unreachable(String),
}

/// How a writable key takes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// `--writable`: a stream, `XADD`.
    Stream,
    /// `--writable-zset`: a sorted set scored by the relay's clock, `ZADD`.
    SortedSet,
}

/// The keys browsers may append to (`--writable`, `--writable-zset`); none unless the operator names some.
#[derive(Debug, Clone, Default)]
pub struct Writable {
    streams: Vec<Glob>,
    sorted_sets: Vec<Glob>,
}

impl Writable {
    /// Checks the patterns against `--allow`: each must itself be matched by an `--allow` pattern (taken as a
    /// key), or keys written through it could never reach a browser. A pattern may not be in both lists.
    pub fn new(streams: &[String], sorted_sets: &[String], allow: &Allow) -> Result<Self, String> {
        for pattern in streams.iter().chain(sorted_sets) {
            if !allow.allows(pattern.as_bytes()) {
                return Err(format!(
                    "writable pattern {pattern:?} is not within --allow: events written there could reach no browser; add it to --allow"
                ));
            }
        }
        if let Some(both) = streams.iter().find(|p| sorted_sets.contains(p)) {
            return Err(format!(
                "{both:?} is given to both --writable and --writable-zset; a key takes one kind of event"
            ));
        }
        let bytes = |list: &[String]| list.iter().map(|p| Glob::new(p.as_bytes())).collect();
        Ok(Writable {
            streams: bytes(streams),
            sorted_sets: bytes(sorted_sets),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty() && self.sorted_sets.is_empty()
    }

    /// How `key` takes events, or why it takes none.
    pub fn sink(&self, key: &str) -> Result<SinkKind, EventError> {
        if self.is_empty() {
            return Err(EventError::NothingWritable);
        }
        let matches = |patterns: &[Glob]| patterns.iter().any(|p| p.matches(key.as_bytes()));
        match (matches(&self.streams), matches(&self.sorted_sets)) {
            (true, false) => Ok(SinkKind::Stream),
            (false, true) => Ok(SinkKind::SortedSet),
            (true, true) => Err(EventError::Ambiguous(key.to_string())),
            (false, false) => Err(EventError::NotWritable(key.to_string())),
        }
    }
}

/// The limits on one session's events.
#[derive(Debug, Clone)]
pub struct EventLimits {
    pub rate: f64,
    pub burst: u32,
    pub max_bytes: usize,
    pub max_fields: usize,
    pub maxlen: u64,
}

impl Default for EventLimits {
    fn default() -> Self {
        EventLimits {
            rate: DEFAULT_RATE,
            burst: DEFAULT_BURST,
            max_bytes: DEFAULT_MAX_BYTES,
            max_fields: DEFAULT_MAX_FIELDS,
            maxlen: DEFAULT_MAXLEN,
        }
    }
}

/// A token bucket: `burst` events at once, then `rate` a second.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    pub fn new(rate: f64, burst: u32, now: Instant) -> Self {
        RateLimit {
            rate,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            at: now,
        }
    }

    /// Takes one event's token, or says how long until there is one.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if self.rate <= 0.0 {
            return Err(Duration::MAX);
        }
        // A rate so small that the wait overflows a Duration waits "for ever", as a rate of 0 does.
        Err(Duration::try_from_secs_f64((1.0 - self.tokens) / self.rate).unwrap_or(Duration::MAX))
    }
}

/// Who sent an event: the relay's id for the session and the browser's address as the relay saw it (the peer's
/// `ip:port`, or the address a trusted proxy forwarded), and, for a session with a signed token, what it grants:
/// its verified subject is written into each event, and its write patterns narrow `--writable`.
#[derive(Debug, Clone)]
pub struct Identity {
    pub session: String,
    pub peer: ClientAddress,
    pub grant: Option<Arc<Grant>>,
}

/// The only commands the relay ever sends on a browser's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Append {
    /// `XADD key MAXLEN ~ maxlen * field value …`.
    Stream {
        key: String,
        maxlen: u64,
        fields: Vec<(String, String)>,
    },
    /// `ZADD key score member`.
    SortedSet {
        key: String,
        score: u64,
        member: String,
    },
}

impl Append {
    /// Checks `event` against the limits and `writable`, and builds its append with the sender's identity and the
    /// relay's time (`now_ms`) added.
    pub fn prepare(
        event: Event,
        writable: &Writable,
        allow: &Allow,
        limits: &EventLimits,
        identity: &Identity,
        now_ms: u64,
    ) -> Result<Append, EventError> {
        let kind = writable.sink(&event.key)?;
        if let Some(grant) = &identity.grant {
            if !grant.may_write(event.key.as_bytes()) {
                return Err(EventError::NotGranted(event.key));
            }
        }
        if !allow.allows(event.key.as_bytes()) {
            return Err(EventError::NotAllowed(event.key));
        }
        check_fields(&event, limits)?;
        let own = [
            (SESSION_FIELD.to_string(), identity.session.clone()),
            (PEER_FIELD.to_string(), identity.peer.to_string()),
            (TIME_FIELD.to_string(), now_ms.to_string()),
        ];
        let mut fields = event.fields;
        fields.extend(own);
        if let Some(grant) = &identity.grant {
            fields.push((SUBJECT_FIELD.to_string(), grant.subject.clone()));
        }
        Ok(match kind {
            SinkKind::Stream => Append::Stream {
                key: event.key,
                maxlen: limits.maxlen,
                fields,
            },
            SinkKind::SortedSet => {
                let member: serde_json::Map<String, serde_json::Value> = fields
                    .into_iter()
                    .map(|(name, value)| (name, serde_json::Value::String(value)))
                    .collect();
                Append::SortedSet {
                    key: event.key,
                    score: now_ms,
                    member: serde_json::Value::Object(member).to_string(),
                }
            }
        })
    }

    /// The one command this append is.
    /// The key appended to.
    pub fn key(&self) -> &[u8] {
        match self {
            Append::Stream { key, .. } | Append::SortedSet { key, .. } => key.as_bytes(),
        }
    }

    fn command(&self) -> redis::Cmd {
        match self {
            Append::Stream {
                key,
                maxlen,
                fields,
            } => {
                let mut cmd = redis::cmd("XADD");
                cmd.arg(key).arg("MAXLEN").arg("~").arg(*maxlen).arg("*");
                for (name, value) in fields {
                    cmd.arg(name).arg(value);
                }
                cmd
            }
            Append::SortedSet { key, score, member } => {
                let mut cmd = redis::cmd("ZADD");
                cmd.arg(key).arg(*score).arg(member);
                cmd
            }
        }
    }
}

/// Field count, names (unique, of the allowed characters, none of the relay's own) and size.
fn check_fields(event: &Event, limits: &EventLimits) -> Result<(), EventError> {
    if event.fields.is_empty() {
        return Err(EventError::NoFields);
    }
    if event.fields.len() > limits.max_fields {
        return Err(EventError::TooManyFields {
            got: event.fields.len(),
            limit: limits.max_fields,
        });
    }
    let mut seen = HashSet::new();
    for (name, _) in &event.fields {
        if !valid_field_name(name) {
            return Err(EventError::FieldName(name.clone()));
        }
        if !seen.insert(name.as_str()) {
            return Err(EventError::DuplicateField(name.clone()));
        }
    }
    let size = event.key.len()
        + event
            .fields
            .iter()
            .map(|(n, v)| n.len() + v.len())
            .sum::<usize>();
    if size > limits.max_bytes {
        return Err(EventError::TooLarge {
            got: size,
            limit: limits.max_bytes,
        });
    }
    Ok(())
}

fn valid_field_name(name: &str) -> bool {
    (1..=MAX_FIELD_NAME).contains(&name.len())
        && !name.starts_with('_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// Writes appends to the node a link follows now (the link of the shard that holds the key), one connection per
/// database in use, made again after a failover or a connection error. The connections carry nothing but
/// [`Append`]s (and the `redis` crate's own handshake: `AUTH`, `SELECT`, `CLIENT SETINFO`; in a cluster, `ASKING`
/// before an append redirected by `ASK`).
///
/// In a Redis Cluster the node followed may not own the key (it is a replica, or the slot moved since the topology
/// was read): its `MOVED` (or `ASK`) answer names the node that does, where the append is sent again (at most
/// [`MAX_REDIRECTS`] times); the owner learned for a slot is asked first next time. Connections are then one per
/// node the appends went to.
pub struct EventWriter {
    topology: Arc<Topology>,
    /// (database, node address) → a connection to it.
    connections: tokio::sync::Mutex<HashMap<(u32, String), redis::aio::MultiplexedConnection>>,
    /// Cluster slot → the node that answered for it last (learned from `MOVED`).
    owners: std::sync::Mutex<HashMap<u16, String>>,
}

/// Redirections one append follows (a slot mid-migration takes two: `MOVED` to its owner, `ASK` to the target).
const MAX_REDIRECTS: usize = 3;

impl EventWriter {
    pub fn new(topology: Arc<Topology>) -> Self {
        EventWriter {
            topology,
            connections: Default::default(),
            owners: Default::default(),
        }
    }

    /// Appends in database `db`; returns the new entry's id: the stream entry id Redis chose, or for a sorted set
    /// the score (the relay's time in ms).
    pub async fn append(&self, db: u32, append: &Append) -> Result<String, EventError> {
        let slot = crate::hash_slot::slot(append.key());
        let learned = self
            .owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&slot)
            .cloned();
        let followed = self.followed(append.key())?;
        let mut node = learned.unwrap_or_else(|| followed.addr());
        let mut asking = false;
        let mut redirects = 0;
        let reply = loop {
            let mut conn = self.connection(db, &node, &followed).await?;
            let reply = if asking {
                // The slot is migrating and the key is already on its target: ask there, once.
                let mut pipe = redis::pipe();
                pipe.cmd("ASKING").ignore().add_command(append.command());
                tokio::time::timeout(
                    WRITE_TIMEOUT,
                    pipe.query_async::<Vec<redis::Value>>(&mut conn),
                )
                .await
                .map(|replies| replies.map(|mut r| r.pop().unwrap_or(redis::Value::Nil)))
            } else {
                tokio::time::timeout(
                    WRITE_TIMEOUT,
                    append.command().query_async::<redis::Value>(&mut conn),
                )
                .await
            };
            match reply {
                Ok(Ok(reply)) => break reply,
                Ok(Err(err)) => {
                    let Some(to) = err
                        .redirect_node()
                        .map(|(to, _)| to.to_string())
                        .filter(|_| redirects < MAX_REDIRECTS)
                    else {
                        return Err(self.failed(db, &node, err).await);
                    };
                    asking = err.code() == Some("ASK");
                    if !asking {
                        self.owners
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(slot, to.clone());
                    }
                    node = to;
                    redirects += 1;
                }
                Err(_) => return Err(self.timed_out(db, &node).await),
            }
        };
        match (append, reply) {
            (Append::Stream { .. }, redis::Value::BulkString(id)) => {
                Ok(String::from_utf8_lossy(&id).into_owned())
            }
            (Append::SortedSet { score, .. }, redis::Value::Int(_)) => Ok(score.to_string()),
            (_, other) => Err(EventError::Redis(format!("unexpected reply {other:?}"))),
        }
    }

    /// The error of an append that got no reply in time; its connection is made again next time.
    async fn timed_out(&self, db: u32, node: &str) -> EventError {
        self.connections
            .lock()
            .await
            .remove(&(db, node.to_string()));
        EventError::Unreachable(format!("no reply within {WRITE_TIMEOUT:?}"))
    }

    /// The node followed now by the shard that holds `key` (with the credentials for any node).
    fn followed(&self, key: &[u8]) -> Result<RedisTarget, EventError> {
        let view = self.topology.view();
        view.owner_of(key)
            .and_then(|number| view.shard(number))
            .or_else(|| view.shards.first())
            .and_then(|shard| shard.upstream.current())
            .ok_or_else(|| EventError::Unreachable("no Redis node is followed yet".into()))
    }

    /// A connection to `node` (`host:port`: the node followed now, or the one a cluster redirected to), in
    /// database `db`, reached with `followed`'s credentials. Connections to a node no longer followed are dropped
    /// first.
    async fn connection(
        &self,
        db: u32,
        node: &str,
        followed: &RedisTarget,
    ) -> Result<redis::aio::MultiplexedConnection, EventError> {
        let addr = node.to_string();
        let mut connections = self.connections.lock().await;
        if let Some(conn) = connections.get(&(db, addr.clone())) {
            return Ok(conn.clone());
        }
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse().ok()?)))
            .ok_or_else(|| EventError::Unreachable(format!("not host:port: {addr}")))?;
        let target = followed.at(host, port).in_db(db);
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(WRITE_TIMEOUT))
            .set_response_timeout(Some(WRITE_TIMEOUT));
        let conn = target
            .client()
            .map_err(|e| EventError::Unreachable(e.to_string()))?
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| EventError::Unreachable(format!("{addr}: {e}")))?;
        // Bounded: one connection per database and node in use, and the nodes are those followed or named by the
        // cluster's redirects; a failover's old node is forgotten here.
        let followed: Vec<String> = self
            .topology
            .view()
            .shards
            .iter()
            .map(|shard| shard.upstream.addr())
            .collect();
        connections.retain(|(_, at), _| {
            followed.contains(at)
                || self
                    .owners
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .any(|owner| owner == at)
        });
        connections.insert((db, addr), conn.clone());
        Ok(conn)
    }

    /// What a failed append tells the browser; a broken connection is dropped, to be made again next time.
    async fn failed(&self, db: u32, node: &str, err: redis::RedisError) -> EventError {
        if err.code() == Some("READONLY") {
            return EventError::ReadOnly(node.to_string());
        }
        if err.is_io_error() || err.is_connection_dropped() || err.is_timeout() {
            self.connections
                .lock()
                .await
                .remove(&(db, node.to_string()));
            // A cluster node that went away: ask the node followed again next time.
            self.owners
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, owner| owner != node);
            return EventError::Unreachable(err.to_string());
        }
        EventError::Redis(err.to_string())
    }
}

/// What the relay needs to take events: the writable keys, the limits, the writer, and session ids.
pub struct Events {
    pub writable: Writable,
    pub limits: EventLimits,
    pub writer: EventWriter,
    /// This run of the relay (its start, Unix ms, base 36), so session ids differ across restarts.
    run: String,
    sessions: AtomicU64,
    /// The rate limits of the subjects of signed tokens with a session open: one bucket per subject, however many
    /// sessions it opens. An entry goes with its subject's last session (the next one to come looks it up).
    subject_rates: std::sync::Mutex<HashMap<String, std::sync::Weak<std::sync::Mutex<RateLimit>>>>,
}

impl Events {
    pub fn new(writable: Writable, limits: EventLimits, topology: Arc<Topology>) -> Self {
        Events {
            writable,
            limits,
            writer: EventWriter::new(topology),
            run: base36(unix_ms()),
            sessions: AtomicU64::new(0),
            subject_rates: std::sync::Mutex::default(),
        }
    }

    /// The rate limit every session of `subject` shares.
    fn subject_rate(&self, subject: &str) -> Arc<std::sync::Mutex<RateLimit>> {
        let mut rates = self.subject_rates.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rate) = rates.get(subject).and_then(std::sync::Weak::upgrade) {
            return rate;
        }
        // Bounded by the sessions open: drop the subjects that have none left.
        rates.retain(|_, rate| rate.strong_count() > 0);
        let limits = &self.limits;
        let rate = Arc::new(std::sync::Mutex::new(RateLimit::new(
            limits.rate,
            limits.burst,
            Instant::now(),
        )));
        rates.insert(subject.to_string(), Arc::downgrade(&rate));
        rate
    }

    /// A new session's identity: `<run>-<n>`, unique for this relay's run and unlike any earlier run's.
    pub fn identity(&self, peer: ClientAddress, grant: Option<Arc<Grant>>) -> Identity {
        let n = self.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        Identity {
            session: format!("{}-{n}", self.run),
            peer,
            grant,
        }
    }
}

/// One session's side of the events: its identity and rate limit, and what it needs to append.
pub struct EventGate<'a> {
    pub events: &'a Events,
    pub allow: &'a Allow,
    pub identity: &'a Identity,
    /// The session's database, where its events are written.
    pub db: u32,
    rate: SessionRate,
}

/// A session's rate limit: its own, or, with a signed token, its subject's, shared by all its sessions.
enum SessionRate {
    Own(RateLimit),
    Subject(Arc<std::sync::Mutex<RateLimit>>),
}

impl<'a> EventGate<'a> {
    pub fn new(events: &'a Events, allow: &'a Allow, identity: &'a Identity, db: u32) -> Self {
        let limits = &events.limits;
        EventGate {
            events,
            allow,
            identity,
            db,
            rate: match &identity.grant {
                Some(grant) => SessionRate::Subject(events.subject_rate(&grant.subject)),
                None => SessionRate::Own(RateLimit::new(limits.rate, limits.burst, Instant::now())),
            },
        }
    }

    /// Checks and appends one event; the entry id or why not.
    pub async fn handle(&mut self, event: Event) -> Result<String, EventError> {
        let limits = &self.events.limits;
        // Every event counts, refused or not, so a flood of bad ones costs Redis nothing either.
        let taken = match &mut self.rate {
            SessionRate::Own(rate) => rate.take(Instant::now()),
            SessionRate::Subject(rate) => rate
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(Instant::now()),
        };
        taken.map_err(|wait| EventError::RateLimited {
            rate: limits.rate,
            burst: limits.burst,
            retry_ms: wait.as_millis().min(u128::from(u64::MAX)) as u64,
        })?;
        let append = Append::prepare(
            event,
            &self.events.writable,
            self.allow,
            limits,
            self.identity,
            unix_ms(),
        )?;
        self.events.writer.append(self.db, &append).await
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn base36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(key: &str, fields: &[(&str, &str)]) -> Event {
        Event {
            id: "r1".into(),
            key: key.into(),
            fields: fields
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn identity() -> Identity {
        Identity {
            session: "abc-1".into(),
            peer: ClientAddress::Peer("127.0.0.1:5000".parse().unwrap()),
            grant: None,
        }
    }

    #[test]
    fn a_token_narrows_the_writable_keys_and_signs_its_events_with_its_subject() {
        let allow = Allow::new(&["notes:*".into()]);
        let writable = Writable::new(&["notes:*".into()], &[], &allow).unwrap();
        let grant = crate::tokens::Grant::from_payload(
            br#"{"sub":"alice","exp":1,"replicast":{"read":["notes:*"],"write":["notes:a"]}}"#,
        )
        .unwrap();
        let identity = Identity {
            grant: Some(Arc::new(grant)),
            ..identity()
        };
        let prepare = |key: &str| {
            Append::prepare(
                event(key, &[("text", "hi")]),
                &writable,
                &allow,
                &EventLimits::default(),
                &identity,
                7,
            )
        };
        assert_eq!(
            prepare("notes:b").unwrap_err().to_string(),
            "key \"notes:b\" is not writable with this token: it matches none of its replicast.write patterns"
        );
        let Append::Stream { fields, .. } = prepare("notes:a").unwrap() else {
            panic!("notes:* is a stream");
        };
        assert_eq!(
            fields.last(),
            Some(&(SUBJECT_FIELD.to_string(), "alice".to_string()))
        );
    }

    fn prepare(writable: &Writable, event: Event) -> Result<Append, EventError> {
        let allow = Allow::new(&["notes:*".into(), "marks".into()]);
        Append::prepare(
            event,
            writable,
            &allow,
            &EventLimits::default(),
            &identity(),
            1_700_000_000_000,
        )
    }

    #[test]
    fn a_stream_event_is_one_xadd_with_who_and_when() {
        let allow = Allow::new(&["notes:*".into(), "marks".into()]);
        let writable = Writable::new(&["notes:*".into()], &["marks".into()], &allow).unwrap();
        let append = prepare(&writable, event("notes:a", &[("host", "web-01")])).unwrap();
        let packed = String::from_utf8(append.command().get_packed_command()).unwrap();
        let args: Vec<&str> = packed.split("\r\n").skip(2).step_by(2).collect();
        assert_eq!(
            args,
            [
                "XADD",
                "notes:a",
                "MAXLEN",
                "~",
                "10000",
                "*",
                "host",
                "web-01",
                "_session",
                "abc-1",
                "_peer",
                "127.0.0.1:5000",
                "_time",
                "1700000000000",
            ]
        );
        let Append::SortedSet { score, member, .. } =
            prepare(&writable, event("marks", &[("text", "a \"b\"")])).unwrap()
        else {
            panic!("a sorted-set sink")
        };
        assert_eq!(score, 1_700_000_000_000);
        assert_eq!(
            member,
            r#"{"_peer":"127.0.0.1:5000","_session":"abc-1","_time":"1700000000000","text":"a \"b\""}"#,
            "a JSON object of strings, names in byte order"
        );
    }

    #[test]
    fn each_limit_is_refused_naming_its_flag() {
        let allow = Allow::new(&["notes:*".into(), "secret:*".into()]);
        let writable = Writable::new(&["notes:*".into(), "secret:*".into()], &[], &allow).unwrap();
        let refuse = |e: Event| prepare(&writable, e).unwrap_err().to_string();
        assert_eq!(
            refuse(event("perf:a", &[("a", "b")])),
            "key \"perf:a\" is not writable: it matches no --writable or --writable-zset pattern"
        );
        assert_eq!(
            refuse(event("secret:a", &[("a", "b")])),
            "key \"secret:a\" is not allowed by --allow: no browser could see the event"
        );
        let many: Vec<(String, String)> = (0..17).map(|i| (format!("f{i}"), "v".into())).collect();
        let mut too_many = event("notes:a", &[]);
        too_many.fields = many;
        assert_eq!(
            refuse(too_many),
            "too many fields: 17, at most 16 (--event-max-fields)"
        );
        let big = "x".repeat(4096);
        assert_eq!(
            refuse(event("notes:a", &[("text", &big)])),
            "event too large: 4107 bytes of key, field names and values, at most 4096 (--event-max-bytes)"
        );
        for bad in ["_session", "", "a b", "é", &"n".repeat(65)] {
            assert!(
                refuse(event("notes:a", &[(bad, "v")])).starts_with("field name"),
                "{bad:?}"
            );
        }
        assert_eq!(
            refuse(event("notes:a", &[("a", "1"), ("a", "2")])),
            "field \"a\" is given twice"
        );
        assert_eq!(
            refuse(event("notes:a", &[])),
            "an event needs at least one field"
        );
        assert_eq!(
            prepare(&Writable::default(), event("notes:a", &[("a", "b")]))
                .unwrap_err()
                .to_string(),
            "no key is writable: the relay was started without --writable or --writable-zset"
        );
    }

    #[test]
    fn writable_patterns_must_be_within_allow_and_of_one_kind() {
        let allow = Allow::new(&["perf:*".into(), "notes:*".into()]);
        assert!(Writable::new(&["notes:*".into()], &[], &allow).is_ok());
        assert!(Writable::new(&["notes:a".into()], &[], &allow).is_ok());
        let outside = Writable::new(&["other".into()], &[], &allow).unwrap_err();
        assert!(outside.contains("not within --allow"), "{outside}");
        let both = Writable::new(&["notes:*".into()], &["notes:*".into()], &allow).unwrap_err();
        assert!(
            both.contains("both --writable and --writable-zset"),
            "{both}"
        );
        let overlapping = Writable::new(&["notes:*".into()], &["notes:z*".into()], &allow).unwrap();
        assert_eq!(
            overlapping.sink("notes:zz"),
            Err(EventError::Ambiguous("notes:zz".into()))
        );
        assert_eq!(overlapping.sink("notes:a"), Ok(SinkKind::Stream));
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut rate = RateLimit::new(2.0, 3, start);
        for _ in 0..3 {
            assert_eq!(rate.take(start), Ok(()));
        }
        assert_eq!(rate.take(start), Err(Duration::from_millis(500)));
        let later = start + Duration::from_millis(500);
        assert_eq!(rate.take(later), Ok(()));
        assert!(rate.take(later).is_err());
        // Idle for long: the bucket fills up to the burst, no further.
        let idle = later + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(rate.take(idle), Ok(()));
        }
        assert!(rate.take(idle).is_err());
    }

    #[test]
    fn a_rate_too_small_for_a_duration_waits_for_ever_instead_of_panicking() {
        // `--event-rate 1e-30`: the wait for the next token, 10^30 s, is past what a Duration holds.
        let start = Instant::now();
        let mut rate = RateLimit::new(1e-30, 0, start);
        assert_eq!(rate.take(start), Err(Duration::MAX));
        assert_eq!(
            RateLimit::new(0.0, 0, start).take(start),
            Err(Duration::MAX)
        );
    }
}
