//! The relay's own state: the windows of the keys `--allow` permits, kept by the same assembler a browser runs, so
//! that a joining session's snapshot (and its top-ups) can come from the relay instead of Redis.
//!
//! It is built from the full sync's RDB payload, read as it streams by (`load.rs`), then kept up to date with every
//! batch the link reads, on a thread of its own that trails the backlog ([`feed`]): the link hands it the same
//! batches the backlog takes, through a queue bounded by `--state-queue-bytes`, and goes on reading, acknowledging
//! and serving sessions without waiting for the windows (only for room in the queue). The state is a session of its
//! own, watching every allowed key of database [`STATE_DB`] with windows of `--state-depth` items: it receives what
//! such a session would ([`Subscription::select`]), withheld frames as stale keys included.
//!
//! So the state is exact at an offset behind the link's by at most the queue, never ahead of it, and a snapshot from
//! it is placed in the stream exactly like one read from Redis, under these rules (`session/snapshot_source.rs`):
//! - a join's snapshot from the state is at the state's offset, which the session then streams on from: taken only
//!   while the backlog still holds that offset on the stream (and replication ID) it follows now; else the join
//!   waits, at most a second, until it does (the state back inside the ring, a full sync the link has read and
//!   the state is still applying, a failover's rename the state has not applied yet), not while the link still
//!   reads a full sync's RDB; then reads Redis;
//! - a top-up (or a page's digest) is placed at its offset, which must not be behind what the session has read:
//!   for a session past the state's offset it waits, at most a second ([`RelayState::reach`], a watch on the
//!   offset the state applied), until the state gets there, else reads Redis;
//! - a read of Redis (a refresh of keys it lost track of, a check's) is at an offset ahead of the state: it is
//!   placed when the state's thread gets there, as before.
//!
//! A join's snapshot carries the keys it holds exactly, for a window no deeper than the state's, in its own
//! database; the keys of the subscription it cannot answer (unknown: a command the stream does not tell, a key not
//! held; or stale) follow as top-ups read from Redis, like a big snapshot's later parts (PROTOCOL.md). A
//! subscription of which it holds no key, or that it cannot answer at all, reads Redis as before (`snapshot.rs`);
//! `session/snapshot_source.rs` chooses and counts. A top-up is answered whole or read from Redis. Keys past
//! `--state-bytes` are not held (their state is unknown, so joins that watch them have them from Redis); past
//! [`MAX_NOT_HELD`] of them the state gives up until the next full sync. A full sync rebuilds it (from the moment the
//! link queues one the state answers nothing, even under the same replication ID); a
//! payload that ends early (the primary gone mid-transfer) or cannot be read leaves no state until the next one; a
//! partial resync keeps it. A key the state lost track of (a command the assembler cannot follow exactly, a withheld
//! write) is read from Redis once a second ([`refresh`]) and placed at its offset like a top-up; a swapped database,
//! a write whose keys cannot all be named or a module's command drops the state until the next full sync. In a
//! cluster each shard has a state of its own, following its stream, which answers only for the keys a predicate
//! names ([`RelayState::for_shard`]: those whose slot the shard owns now and did not gain while followed).
//!
//! It keeps its past writes too ([`past`], `--state-history-bytes`): the sorted-set members and stream entries that
//! entered its windows, with their scores or ids and fields and the end offsets of the commands that wrote them (a
//! batch of `ZADD`s is then applied a run at a time, each member placed by where its bytes are, [`Run`]; any other
//! batch a command at a time), and for each key from which offset that list is complete. A top-up asked with `since`
//! and answered from the state carries them in a past message ([`RelayState::snapshot_keys`]). The ring starts again
//! with the state (a full sync), and is kept across a failover's new epoch, whose offsets continue the old one's.

mod db;
pub mod feed;
mod load;
pub mod past;
mod rebuild;
pub mod verify;
mod view;

use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use replicast_assembler::digest::windows_digest;
use replicast_assembler::observe::{Item, ItemId, Payload, WindowObserver};
use replicast_assembler::{StreamAssembler, WatchConfig, Window};
use replicast_protocol::client_message::MAX_WINDOW;
use replicast_protocol::pattern::Glob;
use replicast_protocol::wire;

use crate::backlog::Batch;
use crate::frames::Kind;
use crate::metrics::Metrics;
use crate::snapshot::{KeyFilter, Snapshot, Snapshotter, MAX_SNAPSHOT_BYTES, MAX_SNAPSHOT_KEYS};
use crate::subscription::{Allow, Delivery, Subscription};

pub use db::STATE_DB;
use load::RdbLoad;
use past::{PastWrites, MAX_PAST_BYTES};
use verify::{
    KeyState, KeyStates, NotAt, PendingCheck, StateDigest, Writes, MAX_PENDING_CHECKS,
    MAX_VERIFY_KEYS,
};
use view::View;

/// Default `--state-depth`: the largest window a session may ask for, so the state answers any subscription.
pub const DEFAULT_STATE_DEPTH: usize = MAX_WINDOW;
/// Default `--state-bytes`: the demo's hosts (`perf:*`, an hour of samples each for a few dozen hosts) with room.
pub const DEFAULT_STATE_BYTES: usize = 256 * 1024 * 1024;
/// How often the state reads the keys it lost track of from Redis, and how many at most each time.
const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
const REFRESH_KEYS: usize = 1000;
/// Keys not held (past `--state-bytes`) whose names the state keeps, to know it cannot answer for them; past it,
/// the state is dropped until the next full sync, so its memory stays bounded whatever the dataset.
pub const MAX_NOT_HELD: usize = 100_000;

/// A cluster shard's keys, as its state sees them.
pub struct ShardKeys {
    /// Whose slot the shard owns now: a join's snapshot lists no other key, as one read from the node does not.
    pub owns: KeyFilter,
    /// Those the state may answer for; the others of the shard's keys are read from Redis.
    pub answers: KeyFilter,
    /// The topology's generation, which changes whenever `owns` or `answers` may (the shard's slots moved, or it
    /// gained one): a join's cached snapshot holds for one generation.
    pub generation: Generation,
}

/// A counter read when asked: in a cluster, the topology's generation ([`ShardKeys::generation`]).
pub type Generation = Arc<dyn Fn() -> u64 + Send + Sync>;

/// What the state keeps (`--state-depth`, `--state-bytes`) and of which keys (`--allow`).
#[derive(Debug, Clone)]
pub struct StateSettings {
    pub depth: usize,
    pub bytes: usize,
    pub allow: Vec<String>,
    /// `--state-history-bytes`: the ring of past writes ([`past`]); 0 keeps none.
    pub history_bytes: usize,
}

/// Where the state stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    #[default]
    /// No state: before the first full sync, after one that failed, or past its limits.
    Empty,
    /// The full sync's payload is being read.
    Loading,
    /// Exact at `offset` of `epoch`.
    Ready,
}

/// The relay's state of one Redis; see the module's documentation.
pub struct RelayState {
    settings: StateSettings,
    allow: Allow,
    /// In a cluster, the keys of the shard now and those the state may answer for (`shard.rs`, `ClusterSlots`);
    /// `None`: every key.
    cluster: Option<ShardKeys>,
    inner: Mutex<Inner>,
    /// Keys held, their bytes, and keys not held, for `/metrics`.
    keys: AtomicU64,
    bytes: AtomicU64,
    not_held: AtomicU64,
    /// Bytes the ring of past writes holds ([`past`]).
    history_bytes: AtomicU64,
    ready: AtomicU64,
    /// Keys read from Redis because the state lost track of them.
    refreshed: AtomicU64,
    /// Checks against Redis (`verify.rs`): made, keys compared, keys that differed, keys not compared, checks not
    /// placed.
    verify_checks: AtomicU64,
    verify_keys: AtomicU64,
    verify_mismatches: AtomicU64,
    verify_skipped: AtomicU64,
    verify_missed: AtomicU64,
    /// Where the state stands, for sessions waiting for it to reach their cursor ([`RelayState::reach`]).
    moved: watch::Sender<Reached>,
    /// The link's queue to the state ([`feed`]): the offset of the last event queued, of the last applied, and
    /// the bytes queued.
    fed: AtomicU64,
    applied: AtomicU64,
    queued: AtomicU64,
    /// Full syncs queued whose beginning the state has not applied yet: an empty state with one coming is worth
    /// waiting for.
    syncs_queued: AtomicU64,
    /// Joins, top-ups and digests waiting for the state now ([`RelayState::reach`]).
    waiting: AtomicU64,
    /// Test only: the next batch applied panics, as a bug in the assembler would.
    #[cfg(test)]
    panics: std::sync::atomic::AtomicBool,
}

/// The phase, stream and offset the state last published.
#[derive(Default)]
struct Reached {
    phase: Phase,
    epoch: String,
    offset: u64,
}

struct Inner {
    phase: Phase,
    assembler: StreamAssembler<Changed>,
    /// The session the state is: every allowed key of [`STATE_DB`], windows of the state's depth.
    view: View,
    epoch: String,
    offset: u64,
    load: Option<RdbLoad>,
    /// Bytes of each key's window, and their sum.
    sizes: HashMap<Vec<u8>, usize>,
    bytes: usize,
    not_held: BTreeSet<Vec<u8>>,
    /// The last join's snapshot, for the next session joining with the same subscription at the same offset (and,
    /// in a cluster, the same topology).
    cached: Option<Cached>,
    /// A read of keys the state lost track of, waiting for the stream to reach its offset.
    refresh: Option<Refresh>,
    /// Checks against Redis waiting for the stream to reach their offsets (at most
    /// [`verify::MAX_PENDING_CHECKS`]).
    checks: Vec<PendingCheck>,
    /// Where the stream wrote the keys of running checks.
    writes: Writes,
}

/// What the state does at an offset inside a batch, between the commands before it and those after it.
enum Stop {
    Refresh(Refresh),
    Check(PendingCheck),
}

/// One step of applying a batch: whole commands of the stream (slices of the batch, applied as they are, not
/// copied into a message), a message to apply, or a check to answer where it stands.
enum Step {
    Commands {
        start: u64,
        bytes: Bytes,
    },
    /// A stale message, at its offset.
    Stale {
        at: u64,
        message: Bytes,
    },
    Refresh(Refresh),
    Check(PendingCheck),
}

impl Stop {
    fn offset(&self) -> u64 {
        match self {
            Stop::Refresh(refresh) => refresh.offset,
            Stop::Check(check) => check.offset,
        }
    }

    fn step(self) -> Step {
        match self {
            Stop::Refresh(refresh) => Step::Refresh(refresh),
            Stop::Check(check) => Step::Check(check),
        }
    }
}

/// Keys read from Redis at `offset`, as snapshot commands.
struct Refresh {
    offset: u64,
    commands: Bytes,
    /// The keys it was asked for: those it made exact are covered from its offset on ([`past`]).
    keys: Vec<Vec<u8>>,
}

impl Refresh {
    fn message(&self) -> Vec<u8> {
        wire::encode_snapshot(self.offset, &self.commands)
    }
}

/// A join's snapshot kept for the next session with the same subscription, while the state stays at its offset
/// (and, in a cluster, the topology stays as it was).
#[derive(Clone)]
struct Cached {
    signature: Vec<u8>,
    offset: u64,
    epoch: String,
    /// The topology's generation it was built in ([`ShardKeys::generation`]; 0 outside a cluster).
    generation: u64,
    commands: Bytes,
    keys: usize,
    rest: Vec<Vec<u8>>,
}

/// What makes two sessions' snapshots the same: database, window, patterns, keys, and what the session's token lets out.
fn signature(sub: &Subscription, allow: &Allow) -> Vec<u8> {
    let mut names: Vec<&[u8]> = sub.patterns.iter().map(Glob::as_bytes).collect();
    names.sort_unstable();
    let mut keys: Vec<&[u8]> = sub.keys.iter().map(Vec::as_slice).collect();
    keys.sort_unstable();
    // The session's own --allow (a token narrows it) is part of it: a snapshot built for one tenant is never
    // another's.
    let mut out = allow.narrowing();
    out.extend_from_slice(format!(" {} {} {} ", sub.db, sub.window, names.len()).as_bytes());
    for name in names.into_iter().chain(keys) {
        out.extend_from_slice(format!("{}:", name.len()).as_bytes());
        out.extend_from_slice(name);
    }
    out
}

/// Notes the keys whose windows changed, whose bytes are then counted again once per batch. Every command the
/// stream carries lands here, most as an item added and another evicted from the same key's window: the key noted
/// last is compared first, so such a command hashes its key at most once, and with foldhash (randomly seeded per
/// process; the keys come from the stream), not SipHash. While `recording`, the members and stream entries that
/// enter a window go to the ring of past writes, at `at`, the end offset of the command being applied.
struct Changed {
    keys: foldhash::HashSet<Vec<u8>>,
    /// The key noted last, in `keys` already while `keys` is not empty (an empty key is a key too).
    last: Vec<u8>,
    past: PastWrites,
    at: u64,
    recording: bool,
    /// While a run of `ZADD`s is applied in one push: where each member's command ends.
    run: Run,
}

/// A run of whole `ZADD`s (and `SELECT`s) applied in one push while the ring of past writes records
/// ([`RelayState::apply`]): a `ZADD`'s members are its own arguments, slices of the run's bytes, so where a member's
/// bytes are tells which command added it, and the end offsets of the run's commands tell where that command ends.
/// One push a run instead of one a command saves the assembler's set-up and argument list each command (about 270
/// instructions a `ZADD`: docs/BENCHMARKS.md, "Ingest", round eleven).
#[derive(Default)]
struct Run {
    /// Whether a run is being applied; otherwise each command is pushed on its own, at [`Changed::at`].
    active: bool,
    /// The run's bytes in memory (their addresses), and the stream offset of the first.
    from: usize,
    to: usize,
    start: u64,
    /// The end offsets of the batch's commands, in order, and the first that may end after the next member.
    ends: Vec<u64>,
    next: usize,
}

impl Run {
    /// The end offset of the command whose arguments hold `member`; `None` if `member` is not in the run's bytes.
    fn end_of(&mut self, member: &[u8]) -> Option<u64> {
        let at = member.as_ptr() as usize;
        if at < self.from || at >= self.to {
            return None;
        }
        let offset = self.start + (at - self.from) as u64;
        // Members come in stream order, most commands adding one: the cursor moves on by a command or two (a
        // search from the start if a member came before the last one's command).
        if self.next > 0 && self.ends[self.next - 1] > offset {
            self.next = self.ends.partition_point(|&end| end <= offset);
        }
        while self.ends.get(self.next).is_some_and(|&end| end <= offset) {
            self.next += 1;
        }
        self.ends.get(self.next).copied()
    }
}

impl Changed {
    fn new(history_bytes: usize) -> Self {
        Changed {
            keys: foldhash::HashSet::default(),
            last: Vec::new(),
            past: PastWrites::new(history_bytes, 0),
            at: 0,
            recording: false,
            run: Run::default(),
        }
    }

    fn note(&mut self, key: &[u8]) {
        if self.last == key && !self.keys.is_empty() {
            return;
        }
        if !self.keys.contains(key) {
            self.keys.insert(key.to_vec());
        }
        self.last.clear();
        self.last.extend_from_slice(key);
    }

    /// The keys noted since the last call.
    fn take(&mut self) -> foldhash::HashSet<Vec<u8>> {
        self.last.clear();
        std::mem::take(&mut self.keys)
    }
}

impl WindowObserver for Changed {
    fn added(&mut self, key: &[u8], item: Item<'_>) {
        self.note(key);
        if self.recording {
            match (item.time_ms, item.payload) {
                (Some(score), Payload::Value(member)) => {
                    let at = match self.run.active {
                        true => self.run.end_of(member),
                        false => Some(self.at),
                    };
                    match at {
                        Some(at) => self.past.added(at, key, score, member),
                        // Not a member of the run's commands (none is, of a run of `ZADD`s): where it entered is
                        // not known, so its key is not covered up to the run's end, which is exact.
                        None => self.past.uncovered(self.at, key),
                    }
                }
                // A stream entry comes through `entry_added`, with its id; one without it is not listed, so the
                // key is not covered before it.
                (Some(_), Payload::Fields(_)) => self.past.uncovered(self.at, key),
                // Lists, hashes, strings: no history.
                (None, _) => {}
            }
        }
    }
    fn entry_added(&mut self, key: &[u8], ms: u64, seq: u64, item: Item<'_>) {
        self.note(key);
        if self.recording {
            match item.payload {
                Payload::Fields(fields) => self.past.entry_added(self.at, key, ms, seq, fields),
                Payload::Value(_) => self.past.uncovered(self.at, key),
            }
        }
    }
    fn removed(&mut self, key: &[u8], _id: ItemId) {
        self.note(key);
    }
    fn key_cleared(&mut self, key: &[u8]) {
        self.note(key);
    }
    /// A key not exact for a while within the batch (its top-up, which `settle` takes, withdrawn by a `DEL`): not
    /// covered before it. Noted as changed too, so that `settle` looks whether it is exact by the batch's end, and
    /// covers it from there.
    fn topup_withdrawn(&mut self, key: &[u8]) {
        self.note(key);
        if self.recording {
            self.past.inexact(key);
        }
    }
}

impl RelayState {
    pub fn new(settings: StateSettings) -> Self {
        Self::for_shard(settings, None)
    }

    /// The state of a cluster shard's stream, which answers joins and top-ups only for the keys `cluster` says it
    /// answers for when asked; a join's snapshot lists only the shard's keys, the others read from Redis.
    pub fn for_shard(settings: StateSettings, cluster: Option<ShardKeys>) -> Self {
        let allow = Allow::new(&settings.allow);
        let inner = Inner::new(&settings);
        RelayState {
            settings,
            allow,
            cluster,
            inner: Mutex::new(inner),
            keys: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            not_held: AtomicU64::new(0),
            history_bytes: AtomicU64::new(0),
            ready: AtomicU64::new(0),
            refreshed: AtomicU64::new(0),
            verify_checks: AtomicU64::new(0),
            verify_keys: AtomicU64::new(0),
            verify_mismatches: AtomicU64::new(0),
            verify_skipped: AtomicU64::new(0),
            verify_missed: AtomicU64::new(0),
            moved: watch::Sender::new(Reached::default()),
            fed: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            syncs_queued: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            #[cfg(test)]
            panics: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The link queued the beginning of a full sync ([`feed`]).
    pub(crate) fn sync_queued(&self) {
        self.syncs_queued.fetch_add(1, Ordering::AcqRel);
    }

    /// A full sync's beginning left the queue: applied, or dropped with it.
    fn sync_dropped(&self) {
        let _ = self
            .syncs_queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// `n` full syncs' beginnings were dropped with the queue (the link went, [`feed`]): sessions waiting for an
    /// empty state to be built ([`RelayState::reach`]) are told at once that it will not be.
    pub(crate) fn syncs_dropped(&self, n: usize) {
        for _ in 0..n {
            self.sync_dropped();
        }
        self.moved.send_modify(|_| {});
    }

    /// No full sync is queued to the state: what it holds is of the stream the link follows, not of a generation
    /// the link has left (a full resync may keep the replication ID, and start at an offset the state has passed:
    /// the epoch and offset alone would not tell).
    fn current(&self) -> bool {
        self.syncs_queued.load(Ordering::Acquire) == 0
    }

    /// The link queued an event ([`feed`]): `bytes` are queued now, and the stream reached `end` if it moves.
    pub(crate) fn queued(&self, bytes: usize, end: Option<u64>) {
        Metrics::set(&self.queued, bytes as u64);
        if let Some(end) = end {
            Metrics::set(&self.fed, end);
        }
    }

    /// The state's thread applied an event ([`feed`]): `bytes` are queued now, and the state reached `end` if it
    /// moves.
    pub(crate) fn dequeued(&self, bytes: usize, end: Option<u64>) {
        Metrics::set(&self.queued, bytes as u64);
        if let Some(end) = end {
            Metrics::set(&self.applied, end);
        }
    }

    /// Waits, at most `within`, until the state is ready at `offset` of `epoch` or past it: `false` when it is
    /// not by then, or holds nothing and no full sync is queued to it. A session already past the state's offset
    /// calls it before asking the state for a top-up, which could not be placed behind what it has read.
    pub async fn reach(&self, epoch: &str, offset: u64, within: std::time::Duration) -> bool {
        /// Counts a wait while it lasts, however it ends (its session may go meanwhile).
        struct Waiting<'a>(&'a AtomicU64);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        let mut moved = self.moved.subscribe();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            {
                let at = moved.borrow_and_update();
                match at.phase {
                    Phase::Empty if self.syncs_queued.load(Ordering::Acquire) == 0 => return false,
                    Phase::Empty => {}
                    Phase::Ready if at.epoch == epoch && at.offset >= offset && self.current() => {
                        return true
                    }
                    Phase::Ready | Phase::Loading => {}
                }
            }
            if tokio::time::timeout_at(deadline, moved.changed())
                .await
                .is_err()
            {
                return false;
            }
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a state that may be half-applied: drop it.
        self.inner.lock().unwrap_or_else(|poisoned| {
            let mut inner = poisoned.into_inner();
            inner.phase = Phase::Empty;
            inner
        })
    }

    /// The state's thread caught a panic applying an event ([`feed`]): what the state holds may be half-applied, so
    /// it is dropped until the next full sync (joins read Redis), and its lock is made usable again.
    pub(crate) fn drop_after_panic(&self) {
        let mut inner = self.inner();
        inner.clear(&self.settings);
        self.inner.clear_poison();
        self.publish(&inner);
    }

    /// A full sync of `epoch` at `offset` begins: the state starts over, and is built from the payload that follows.
    pub fn begin_full_sync(&self, epoch: &str, offset: u64) {
        self.sync_dropped();
        let mut inner = self.inner();
        *inner = Inner::new(&self.settings);
        let hello = wire::encode_hello(epoch, offset);
        if inner.assembler.push_message(&hello).is_err() {
            return;
        }
        inner.epoch = epoch.to_string();
        inner.offset = offset;
        inner.assembler.observer_mut().past = PastWrites::new(self.settings.history_bytes, offset);
        inner.phase = Phase::Loading;
        inner.load = Some(RdbLoad::new(STATE_DB, now_ms()));
        self.publish(&inner);
    }

    /// The next piece of the full sync's payload.
    pub fn load(&self, chunk: &[u8]) {
        let mut inner = self.inner();
        if inner.phase != Phase::Loading {
            return;
        }
        let Some(mut load) = inner.load.take() else {
            return;
        };
        let read = load.push(chunk, &self.allow, |load| {
            inner.apply_loaded(load, &self.settings)
        });
        match read {
            Ok(()) => inner.load = Some(load),
            Err(err) => {
                tracing::warn!(
                    "relay state: the full sync's RDB cannot be read ({err}); joins read Redis until the next \
                     full sync"
                );
                inner.clear(&self.settings);
            }
        }
        self.publish(&inner);
    }

    /// The payload ended: the state is ready if the RDB was read to its end.
    pub fn finish_full_sync(&self) {
        let mut inner = self.inner();
        let Some(mut load) = inner.load.take() else {
            return;
        };
        inner.apply_loaded(&mut load, &self.settings);
        if inner.phase == Phase::Loading && load.is_done() {
            inner.phase = Phase::Ready;
            // The windows the RDB built are where the ring starts: from now on, what enters them is noted.
            let observer = inner.assembler.observer_mut();
            observer.recording = observer.past.enabled();
            if observer.recording {
                inner.mark_inexact();
            }
            tracing::info!(
                keys = inner.sizes.len(),
                bytes = inner.bytes,
                not_held = inner.not_held.len(),
                "relay state: built from the full sync's RDB"
            );
        } else if inner.phase == Phase::Loading {
            tracing::warn!("relay state: the full sync's RDB ended early; joins read Redis until the next full sync");
            inner.clear(&self.settings);
        }
        self.publish(&inner);
    }

    /// The link failed before the payload's end: what was built of it is dropped.
    pub fn abandon_full_sync(&self) {
        let mut inner = self.inner();
        if inner.phase == Phase::Loading {
            inner.clear(&self.settings);
            self.publish(&inner);
        }
    }

    /// The link resumed the stream (`+CONTINUE`), perhaps under a new replication ID that continues the offsets.
    pub fn resume(&self, epoch: &str) {
        let mut inner = self.inner();
        if inner.phase == Phase::Ready && inner.epoch != epoch {
            let hello = wire::encode_hello_continuing(epoch, &inner.epoch, inner.offset);
            match inner.assembler.push_message(&hello) {
                // The ring of past writes is kept, and which keys are not exact: the new ID continues the old one's
                // offsets (`PSYNC <old ID> <offset + 1>` answered `+CONTINUE <new ID>`: Redis's `replid2`), so its
                // entries are writes at those offsets of the new stream too, and a client's `since` from before the
                // failover (a session whose hello continues the old ID) is an offset of the same count.
                Ok(_) => inner.epoch = epoch.to_string(),
                Err(_) => inner.clear(&self.settings),
            }
            self.publish(&inner);
        }
    }

    /// Applies a batch the link read, before it enters the backlog.
    pub fn apply(&self, batch: &Batch) {
        let mut inner = self.inner();
        #[cfg(test)]
        if self.panics.swap(false, Ordering::AcqRel) {
            panic!("a test's panic applying the batch at {}", batch.start);
        }
        if inner.phase != Phase::Ready {
            return;
        }
        let unfollowed = batch
            .index
            .frames
            .iter()
            .any(|f| f.kind == Kind::Unfollowed && f.db == STATE_DB);
        if unfollowed {
            tracing::warn!(
                offset = batch.start,
                "relay state: a module's command (or one Redis's COMMAND table does not list) may have written keys \
                 it does not name; the state is dropped until the next full sync, and joins read Redis"
            );
            inner.clear(&self.settings);
            self.publish(&inner);
            return;
        }
        // A refresh read at an offset inside this batch goes exactly there: the runs before it, the refresh, the
        // rest (Redis reports offsets after whole commands, never inside a MULTI block); a check is answered there.
        let mut stops: Vec<Stop> = Vec::new();
        stops.extend(
            inner
                .refresh
                .take_if(|r| r.offset <= batch.end)
                .map(Stop::Refresh),
        );
        let (due, later) = std::mem::take(&mut inner.checks)
            .into_iter()
            .partition(|c| c.offset <= batch.end);
        inner.checks = later;
        stops.extend(due.into_iter().map(Stop::Check));
        stops.sort_by_key(Stop::offset);
        let mut stops = std::collections::VecDeque::from(stops);
        let mut steps = Vec::new();
        for delivery in inner.view.select(batch, &self.allow) {
            match delivery {
                Delivery::Commands { start, bytes } => {
                    let end = start + bytes.len() as u64;
                    let mut done = 0;
                    while let Some(stop) = next_stop(&mut stops, end) {
                        let split = (stop.offset().saturating_sub(start) as usize).max(done);
                        if split > done {
                            steps.push(Step::Commands {
                                start: start + done as u64,
                                bytes: bytes.slice(done..split),
                            });
                            done = split;
                        }
                        steps.push(stop.step());
                    }
                    if done < bytes.len() {
                        steps.push(Step::Commands {
                            start: start + done as u64,
                            bytes: bytes.slice(done..),
                        });
                    }
                }
                Delivery::Stale { at, keys } => {
                    // A stop at `at` too: a block's stale keys are at its `MULTI`'s start, and a read there is
                    // the state before the block.
                    while let Some(stop) = next_stop(&mut stops, at.saturating_add(1)) {
                        steps.push(stop.step());
                    }
                    steps.push(Step::Stale {
                        at,
                        message: Delivery::encode_stale(at, &keys).into(),
                    });
                }
            }
        }
        steps.extend(stops.into_iter().map(Stop::step));
        // With the ring of past writes, the members a command adds are noted at its own end offset (where the
        // batch's index says it ends): a batch of `ZADD`s is applied a run at a time, each member placed by where
        // its bytes are ([`Run`]); any other batch a command at a time.
        let recording = inner.assembler.observer().recording;
        let mut ends = std::mem::take(&mut inner.assembler.observer_mut().run.ends);
        ends.clear();
        if recording {
            ends.extend(
                batch
                    .index
                    .frames
                    .iter()
                    .filter(|f| !f.at.is_empty())
                    .map(|f| batch.start + u64::from(f.at.end)),
            );
        }
        let runs = recording && only_zadds(batch);
        inner.assembler.observer_mut().run.ends = ends;
        for step in steps {
            let applied = match step {
                Step::Commands { start, bytes } if runs => {
                    push_run(&mut inner.assembler, start, &bytes)
                }
                Step::Commands { start, bytes } => {
                    let observer = inner.assembler.observer_mut();
                    let ends = std::mem::take(&mut observer.run.ends);
                    let applied = push_each(&mut inner.assembler, start, &bytes, &ends);
                    inner.assembler.observer_mut().run.ends = ends;
                    applied
                }
                Step::Stale { at, message } => {
                    inner.assembler.observer_mut().at = at;
                    inner.assembler.push_message(&message)
                }
                Step::Refresh(refresh) => inner.apply_refresh(refresh),
                Step::Check(check) => {
                    check.answer(&inner, self);
                    continue;
                }
            };
            if let Err(err) = applied {
                tracing::warn!(
                    "relay state: a batch could not be applied ({err}); joins read Redis until the next full sync"
                );
                inner.clear(&self.settings);
                self.publish(&inner);
                return;
            }
        }
        if !inner.writes.is_empty() {
            inner.note_writes(batch);
        }
        inner.offset = batch.end;
        if inner.assembler.needs_resnapshot() {
            tracing::warn!(
                offset = batch.end,
                "relay state: database {STATE_DB} was swapped, or written where the keys cannot all be named; the \
                 state is dropped until the next full sync, and joins read Redis"
            );
            inner.clear(&self.settings);
        } else {
            inner.settle(&self.settings);
        }
        self.publish(&inner);
    }

    /// Keys the state lost track of (unknown to it, or a stale window), besides those it chose not to hold: what a
    /// read of Redis can make exact again. `None` while a refresh waits for its place, or none is due.
    fn lost(&self) -> Option<(String, Vec<Vec<u8>>)> {
        let inner = self.inner();
        if inner.phase != Phase::Ready
            || inner.assembler.needs_resnapshot()
            || inner.refresh.is_some()
        {
            return None;
        }
        let held = |key: &&[u8]| !inner.not_held.contains(*key);
        let mut keys: Vec<Vec<u8>> = inner
            .assembler
            .unknown_keys()
            .filter(held)
            .take(REFRESH_KEYS)
            .map(<[u8]>::to_vec)
            .collect();
        let stale = inner
            .assembler
            .windows()
            .filter(|(_, w)| w.stale())
            .map(|(k, _)| k);
        keys.extend(
            stale
                .filter(held)
                .take(REFRESH_KEYS - keys.len())
                .map(<[u8]>::to_vec),
        );
        (!keys.is_empty()).then(|| (inner.epoch.clone(), keys))
    }

    /// A read of keys the state lost track of, at its offset: applied now, or when the stream reaches it; dropped
    /// when the state is already past it (the next round reads again).
    fn place(&self, snapshot: Snapshot, keys: Vec<Vec<u8>>) {
        let mut inner = self.inner();
        if inner.phase != Phase::Ready
            || snapshot.epoch != inner.epoch
            || snapshot.offset < inner.offset
        {
            return;
        }
        self.refreshed
            .fetch_add(snapshot.keys as u64, Ordering::Relaxed);
        let refresh = Refresh {
            offset: snapshot.offset,
            commands: snapshot.commands,
            keys,
        };
        if refresh.offset > inner.offset {
            inner.refresh = Some(refresh);
            return;
        }
        if inner.apply_refresh(refresh).is_err() {
            inner.clear(&self.settings);
        } else {
            inner.settle(&self.settings);
        }
        self.publish(&inner);
    }

    /// A joining session's snapshot of the keys the state holds exactly, the others in its `rest` (see the module's
    /// documentation); `None` when it holds none of them or cannot answer at all. Sessions that join with the same
    /// subscription while the state stays at one offset (a storm of pages opening the same dashboard) share one
    /// building of it.
    pub fn snapshot(&self, sub: &Subscription, allow: &Allow) -> Option<Snapshot> {
        let mut inner = self.inner();
        if !self.current() || !inner.answers(sub.db, sub.window, self.settings.depth) {
            return None;
        }
        let signature = signature(sub, allow);
        // In a cluster the keys it may answer for change with the topology too, not only with the offset. Read
        // before the snapshot is built: one built across a change is cached under the generation before it, and
        // the next join builds its own.
        let generation = self.cluster.as_ref().map_or(0, |c| (c.generation)());
        let cached = match &inner.cached {
            Some(cached)
                if cached.signature == signature
                    && cached.offset == inner.offset
                    && cached.epoch == inner.epoch
                    && cached.generation == generation =>
            {
                cached.clone()
            }
            _ => {
                let owns = |k: &[u8]| self.cluster.as_ref().is_none_or(|c| (c.owns)(k));
                let wanted = |key: &[u8]| sub.wants(key) && allow.allows(key) && owns(key);
                let mut keys: BTreeSet<&[u8]> =
                    inner.assembler.keys().filter(|k| wanted(k)).collect();
                keys.extend(
                    sub.keys
                        .iter()
                        .map(Vec::as_slice)
                        .filter(|k| allow.allows(k) && owns(k)),
                );
                // Keys the state cannot answer exactly (not held past --state-bytes, lost track of, stale) follow
                // as top-ups read from Redis, like a big snapshot's later parts: the keys it holds need not wait
                // for a read of the others, nor for the link to reach the offset Redis is at (a dashboard of
                // 10,000 hosts whose windows pass --state-bytes waited for both before its first frame).
                let mut later: BTreeSet<&[u8]> = inner
                    .assembler
                    .unknown_keys()
                    .filter(|k| wanted(k))
                    .collect();
                let answerable = |k: &[u8]| self.cluster.as_ref().is_none_or(|c| (c.answers)(k));
                keys.retain(|k| {
                    let exact = inner.assembler.window(k).is_none_or(rebuild::answers);
                    let answered = exact && answerable(k) && !later.contains(k);
                    if !answered {
                        later.insert(k);
                    }
                    answered
                });
                // Nothing the state holds: Redis reads the snapshot, in parts if it must, as without a state.
                if keys.is_empty() && !later.is_empty() {
                    return None;
                }
                if keys.len() + later.len() > MAX_SNAPSHOT_KEYS {
                    return None;
                }
                let mut snapshot = inner.snapshot_of(keys, sub.window)?;
                snapshot.rest.extend(later.into_iter().map(<[u8]>::to_vec));
                let cached = Cached {
                    signature,
                    offset: snapshot.offset,
                    epoch: snapshot.epoch,
                    generation,
                    commands: snapshot.commands,
                    keys: snapshot.keys,
                    rest: snapshot.rest,
                };
                inner.cached = Some(cached.clone());
                cached
            }
        };
        drop(inner);
        Some(Snapshot {
            epoch: cached.epoch,
            offset: cached.offset,
            commands: cached.commands,
            keys: cached.keys,
            rest: cached.rest,
        })
    }

    /// A top-up of `keys` (wanted and allowed, the caller checked), if the state can answer it; with `since`, and
    /// its past message ([`past`]): the members that entered each key's window after `since`, up to the snapshot.
    pub fn snapshot_keys(
        &self,
        db: u32,
        window: usize,
        keys: &[Vec<u8>],
        since: Option<u64>,
    ) -> Option<(Snapshot, Option<Vec<u8>>)> {
        let inner = self.inner();
        if !self.current() || !inner.answers(db, window, self.settings.depth) {
            return None;
        }
        if keys.iter().any(|k| inner.assembler.is_unknown(k)) {
            return None;
        }
        if let Some(cluster) = &self.cluster {
            if !keys.iter().all(|k| (cluster.answers)(k)) {
                return None;
            }
        }
        let snapshot = inner.snapshot_of(keys.iter().map(Vec::as_slice).collect(), window)?;
        let past = since.map(|since| inner.past_message(keys, &snapshot, since));
        Some((snapshot, past))
    }

    fn publish(&self, inner: &Inner) {
        Metrics::set(&self.keys, inner.sizes.len() as u64);
        Metrics::set(&self.bytes, inner.bytes as u64);
        Metrics::set(&self.not_held, inner.not_held.len() as u64);
        Metrics::set(
            &self.history_bytes,
            inner.assembler.observer().past.bytes() as u64,
        );
        Metrics::set(&self.ready, u64::from(inner.phase == Phase::Ready));
        self.moved.send_if_modified(|at| {
            let moved =
                at.phase != inner.phase || at.offset != inner.offset || at.epoch != inner.epoch;
            if moved {
                at.phase = inner.phase;
                at.offset = inner.offset;
                if at.epoch != inner.epoch {
                    at.epoch.clone_from(&inner.epoch);
                }
            }
            moved
        });
    }

    /// The state's rows of `/metrics`.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        crate::metrics::render_rows([
            (
                "state_ready",
                "gauge",
                "1 while the relay's state is exact and answers snapshots.",
                get(&self.ready),
            ),
            (
                "state_offset",
                "gauge",
                "The stream offset the relay's state has applied up to (its thread trails the link's offset).",
                get(&self.applied),
            ),
            (
                "state_behind_bytes",
                "gauge",
                "Stream bytes the relay's state trails the link by: queued to its thread, not applied yet.",
                get(&self.fed).saturating_sub(get(&self.applied)),
            ),
            (
                "state_queue_bytes",
                "gauge",
                "Bytes the link's queue to the relay's state holds (at most --state-queue-bytes and one read).",
                get(&self.queued),
            ),
            (
                "state_history_bytes",
                "gauge",
                "Bytes of past writes the relay's state keeps for top-ups asked with since (at most --state-history-bytes).",
                get(&self.history_bytes),
            ),
            (
                "state_waits",
                "gauge",
                "Joins, top-ups and digests waiting now, each at most a second, for the relay's state to reach them.",
                get(&self.waiting),
            ),
            (
                "state_keys",
                "gauge",
                "Keys whose windows the relay's state holds.",
                get(&self.keys),
            ),
            (
                "state_bytes",
                "gauge",
                "Bytes the relay's state holds (about), within --state-bytes.",
                get(&self.bytes),
            ),
            (
                "state_keys_not_held",
                "gauge",
                "Allowed keys the relay's state does not hold, past --state-bytes: sessions watching them read Redis.",
                get(&self.not_held),
            ),
            (
                "state_refreshed_keys_total",
                "counter",
                "Keys the relay's state read from Redis after losing track of them (a command it could not follow).",
                get(&self.refreshed),
            ),
            (
                "verify_checks_total",
                "counter",
                "Checks of the relay's state against Redis (replicast verify, --verify-every), by parts read.",
                get(&self.verify_checks),
            ),
            (
                "verify_keys_compared_total",
                "counter",
                "Keys those checks compared (both the state and Redis could say exactly what they hold).",
                get(&self.verify_keys),
            ),
            (
                "verify_mismatches_total",
                "counter",
                "Keys whose window in the relay's state differed from Redis's at the same offset; each is read again.",
                get(&self.verify_mismatches),
            ),
            (
                "verify_keys_skipped_total",
                "counter",
                "Keys those checks did not compare: not exact on one side (not held, stale, lost track of), or written \
                 again each time they were read.",
                get(&self.verify_skipped),
            ),
            (
                "verify_missed_total",
                "counter",
                "Checks that could not be placed at their offset (the state not ready, rebuilt, or always past it).",
                get(&self.verify_missed),
            ),
        ])
    }
}

impl Inner {
    fn new(settings: &StateSettings) -> Self {
        let watch = WatchConfig {
            patterns: settings
                .allow
                .iter()
                .map(|p| p.as_bytes().to_vec())
                .collect(),
            db: STATE_DB,
            window: settings.depth,
        };
        Inner {
            phase: Phase::Empty,
            assembler: StreamAssembler::with_observer(watch, Changed::new(settings.history_bytes)),
            view: View::new(&settings.allow, settings.depth),
            epoch: String::new(),
            offset: 0,
            load: None,
            sizes: HashMap::new(),
            bytes: 0,
            not_held: BTreeSet::new(),
            cached: None,
            refresh: None,
            checks: Vec::new(),
            writes: Writes::default(),
        }
    }

    /// Drops the state until the next full sync, and the memory it held.
    fn clear(&mut self, settings: &StateSettings) {
        *self = Inner::new(settings);
    }

    /// Applies the snapshot commands the payload's reading gathered, and counts the keys they built.
    fn apply_loaded(&mut self, load: &mut RdbLoad, settings: &StateSettings) {
        if load.commands.is_empty() || self.phase != Phase::Loading {
            return;
        }
        let message = wire::encode_snapshot(self.offset, &load.commands);
        load.commands.clear();
        load.keys.clear();
        if self.assembler.push_message(&message).is_err() {
            self.clear(settings);
            return;
        }
        self.settle(settings);
    }

    /// After commands were applied: reads again the bytes of the windows that changed (each window keeps its count,
    /// so this is a few reads per key changed, whatever the windows' depth), and lets go of keys past the budget, the
    /// largest first.
    fn settle(&mut self, settings: &StateSettings) {
        // The state asks Redis for nothing: a key whose state is unknown stays so until the stream says what it
        // holds (a `DEL`, a `SET`), and the snapshots that watch it read Redis (or its refresh, once a second).
        // Such keys are not covered by the ring of past writes until their windows are exact again.
        let inexact = self.assembler.take_topups();
        let recording = self.assembler.observer().recording;
        if recording {
            let past = &mut self.assembler.observer_mut().past;
            for key in &inexact {
                past.inexact(key);
            }
        }
        let changed = self.assembler.observer_mut().take();
        let mut grown = Vec::new();
        for key in changed {
            if recording && self.assembler.observer().past.is_inexact(&key) && self.exact(&key) {
                let offset = self.offset;
                self.assembler.observer_mut().past.exact_at(&key, offset);
            }
            let now = self
                .assembler
                .window(&key)
                .map_or(0, |w| rebuild::window_bytes(&key, w));
            let before = match now {
                0 => self.sizes.remove(&key).unwrap_or(0),
                _ => self.sizes.insert(key.clone(), now).unwrap_or(0),
            };
            self.bytes = self.bytes + now - before;
            if now > before {
                grown.push((now, key));
            }
        }
        if recording {
            self.sweep_inexact();
        }
        if self.bytes <= settings.bytes {
            return;
        }
        grown.sort_unstable_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
        for (_, key) in grown {
            if self.bytes <= settings.bytes {
                break;
            }
            if let Some(size) = self.sizes.remove(&key) {
                self.bytes -= size;
            }
            self.assembler.forget(&key);
            self.assembler.observer_mut().past.inexact(&key);
            self.not_held.insert(key);
        }
        self.assembler.observer_mut().take();
        self.assembler.take_topups();
        if self.not_held.len() > MAX_NOT_HELD {
            tracing::warn!(
                "relay state: more than {MAX_NOT_HELD} allowed keys do not fit in --state-bytes ({} bytes); the \
                 state is dropped until the next full sync, and joins read Redis",
                settings.bytes
            );
            self.clear(settings);
        }
    }

    /// Whether the state can answer snapshots of database `db` with windows of `window` items at all.
    fn answers(&self, db: u32, window: usize, depth: usize) -> bool {
        self.phase == Phase::Ready
            && !self.assembler.needs_resnapshot()
            && db == STATE_DB
            && window <= depth
    }

    /// The snapshot of `keys` (in key order), if every one of them is exact here.
    fn snapshot_of(&self, keys: BTreeSet<&[u8]>, window: usize) -> Option<Snapshot> {
        if keys.len() > MAX_SNAPSHOT_KEYS {
            return None;
        }
        if keys
            .iter()
            .filter_map(|k| self.assembler.window(k))
            .any(|w| !rebuild::answers(w))
        {
            return None;
        }
        let mut commands = Vec::new();
        let mut rest = Vec::new();
        let mut count = 0;
        for key in keys {
            if commands.len() > MAX_SNAPSHOT_BYTES {
                rest.push(key.to_vec());
                continue;
            }
            rebuild::rebuild(&mut commands, key, self.assembler.window(key), window);
            count += 1;
        }
        Some(Snapshot {
            epoch: self.epoch.clone(),
            offset: self.offset,
            commands: commands.into(),
            keys: count,
            rest,
        })
    }
}

/// Reads from Redis, every [`REFRESH_EVERY`], the keys `state` lost track of (a command the stream does not tell
/// exactly, a withheld write), and hands them to it to place at their offset: so such a key is answered from the
/// state again instead of sending every join that watches it to Redis.
pub async fn refresh(state: Arc<RelayState>, snapshots: Snapshotter) {
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    loop {
        tick.tick().await;
        let Some((epoch, keys)) = state.lost() else {
            continue;
        };
        match snapshots
            .take_keys(STATE_DB, state.settings.depth, keys.clone())
            .await
        {
            Ok(snapshot) if snapshot.epoch == epoch => state.place(snapshot, keys),
            Ok(_) => {}
            Err(err) => {
                tracing::debug!("relay state: reading the keys it lost track of failed: {err}")
            }
        }
    }
}

/// Applies whole commands that start at `start`, one at a time where `ends` (the batch's command ends, in order)
/// says they end, each with the ring's offset set to its end.
fn push_each(
    assembler: &mut StreamAssembler<Changed>,
    start: u64,
    bytes: &[u8],
    ends: &[u64],
) -> Result<replicast_assembler::Outcome, replicast_assembler::assembler::AssemblerError> {
    let end = start + bytes.len() as u64;
    let mut from = start;
    let first = ends.partition_point(|&at| at <= start);
    for &at in ends[first..].iter().take_while(|&&at| at < end) {
        assembler.observer_mut().at = at;
        assembler.push_commands(from, &bytes[(from - start) as usize..(at - start) as usize])?;
        from = at;
    }
    assembler.observer_mut().at = end;
    assembler.push_commands(from, &bytes[(from - start) as usize..])
}

/// Applies `bytes`, whole commands from `start`, in one push, each member noted at its own command's end
/// ([`Run`]): only for commands whose members are their own arguments ([`only_zadds`]).
fn push_run(
    assembler: &mut StreamAssembler<Changed>,
    start: u64,
    bytes: &[u8],
) -> Result<replicast_assembler::Outcome, replicast_assembler::assembler::AssemblerError> {
    let observer = assembler.observer_mut();
    observer.at = start + bytes.len() as u64;
    let run = &mut observer.run;
    run.active = true;
    run.from = bytes.as_ptr() as usize;
    run.to = run.from + bytes.len();
    run.start = start;
    run.next = 0;
    let applied = assembler.push_commands(start, bytes);
    assembler.observer_mut().run.active = false;
    applied
}

/// Whether every command of `batch` is a `ZADD` or a `SELECT`, held whole: the members a `ZADD` adds to a window
/// are its own arguments, which [`push_run`] places by their bytes.
fn only_zadds(batch: &Batch) -> bool {
    let raw = batch.raw();
    batch.held
        && batch.index.frames.iter().all(|frame| match frame.kind {
            Kind::Select => true,
            Kind::Keyed => raw
                .get(frame.at.start as usize..frame.at.end as usize)
                .is_some_and(names_zadd),
            _ => false,
        })
}

/// Whether `command` (a RESP array of bulk strings, as the stream carries it) is a `ZADD`, in any case.
fn names_zadd(command: &[u8]) -> bool {
    // `*<count>\r\n`: a count of one digit (a ZADD of up to four pairs) is the common case, read in place.
    let name = match command {
        [b'*', _, b'\r', b'\n', rest @ ..] => rest,
        [b'*', count @ ..] => match count.iter().take(24).position(|&b| b == b'\n') {
            Some(line) => &count[line + 1..],
            None => return false,
        },
        _ => return false,
    };
    // `$4\r\nZADD\r\n`, the name in any case: OR-ing 0x20 into a byte makes `z`, `a` or `d` only of that letter in
    // either case, so one compare of the four bytes tells it.
    match name {
        [b'$', b'4', b'\r', b'\n', a, b, c, d, b'\r', b'\n', ..] => {
            u32::from_le_bytes([*a, *b, *c, *d]) | 0x2020_2020 == u32::from_le_bytes(*b"zadd")
        }
        _ => false,
    }
}

/// The next of `stops` (in offset order) if it is before `offset`.
fn next_stop(stops: &mut std::collections::VecDeque<Stop>, offset: u64) -> Option<Stop> {
    match stops.front() {
        Some(stop) if stop.offset() < offset => stops.pop_front(),
        _ => None,
    }
}

/// The time now, in Unix milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl PendingCheck {
    /// Answers with the keys as the state holds them now, which is at the check's offset.
    pub(super) fn answer(self, inner: &Inner, state: &RelayState) {
        let states = self
            .keys
            .into_iter()
            .map(|key| {
                let held = inner.key_state(&key, state);
                (key, held)
            })
            .collect();
        let _ = self.reply.send(states);
    }
}

impl Inner {
    /// Whether the state knows exactly what `key` holds now (a window it answers from, or no key at all).
    fn exact(&self, key: &[u8]) -> bool {
        !self.not_held.contains(key)
            && match self.assembler.window(key) {
                Some(window) => rebuild::answers(window),
                None => !self.assembler.is_unknown(key),
            }
    }

    /// Applies a read of keys the state lost track of, at its offset: what it rebuilds is not a write (the ring of
    /// past writes does not note it), and the keys it made exact are covered from its offset on.
    fn apply_refresh(
        &mut self,
        refresh: Refresh,
    ) -> Result<replicast_assembler::Outcome, replicast_assembler::assembler::AssemblerError> {
        let recording = self.assembler.observer().recording;
        self.assembler.observer_mut().recording = false;
        let applied = self.assembler.push_message(&refresh.message());
        self.assembler.observer_mut().recording = recording;
        if recording {
            for key in &refresh.keys {
                if self.exact(key) {
                    self.assembler
                        .observer_mut()
                        .past
                        .exact_at(key, refresh.offset);
                }
            }
        }
        applied
    }

    /// Notes in the ring every key whose window is not exact now (unknown, stale, not held), as the ring starts
    /// recording: settle noted none while it did not record, and such a key must stay not covered until the state
    /// makes it exact again, whatever the write that does.
    fn mark_inexact(&mut self) {
        let mut inexact: Vec<Vec<u8>> = self
            .assembler
            .windows()
            .filter(|(_, window)| !rebuild::answers(window))
            .map(|(key, _)| key.to_vec())
            .collect();
        inexact.extend(self.assembler.unknown_keys().map(<[u8]>::to_vec));
        inexact.extend(self.not_held.iter().cloned());
        let past = &mut self.assembler.observer_mut().past;
        for key in inexact {
            past.inexact(&key);
        }
        past.swept();
    }

    /// Looks again at the keys the ring holds as inexact once they pass twice what they were at the last look
    /// (so a look costs O(1) per change, amortized): a key can become exact without its window changing (an
    /// unknown key deleted), and would otherwise stay there. Those exact now are covered from now on.
    fn sweep_inexact(&mut self) {
        let past = &self.assembler.observer().past;
        if !past.sweep_due() {
            return;
        }
        let exact: Vec<Vec<u8>> = past
            .inexact_keys()
            .filter(|key| self.exact(key))
            .map(<[u8]>::to_vec)
            .collect();
        let offset = self.offset;
        let past = &mut self.assembler.observer_mut().past;
        for key in exact {
            past.exact_at(&key, offset);
        }
        past.swept();
    }

    /// The past message of a top-up the state answers with `snapshot` (at the state's offset), for a request
    /// `since` that offset: every key it read, with its `covered_from` and the members that entered its window
    /// since, within [`MAX_PAST_BYTES`] (keys past it are not covered).
    fn past_message(&self, keys: &[Vec<u8>], snapshot: &Snapshot, since: u64) -> Vec<u8> {
        let at = snapshot.offset;
        let rest: BTreeSet<&[u8]> = snapshot.rest.iter().map(Vec::as_slice).collect();
        let mut out = wire::encode_past(&wire::Past {
            offset: at,
            keys: Vec::new(),
        });
        let past = &self.assembler.observer().past;
        // Half the budget for members: the keys' own parts (at most 10,000 of about a KiB) take the rest.
        for key in keys.iter().filter(|k| !rest.contains(k.as_slice())) {
            let listed =
                self.exact(key) && past.push_key(&mut out, key, since, at, MAX_PAST_BYTES / 2);
            if !listed {
                wire::push_past_key(&mut out, key, at, 0);
            }
        }
        out
    }

    /// Whether the state can answer for `epoch` now: built and exact, and of that replication ID.
    fn answers_for(&self, epoch: &str) -> Result<(), NotAt> {
        if self.phase != Phase::Ready || self.assembler.needs_resnapshot() {
            return Err(NotAt::NotReady);
        }
        if self.epoch != epoch {
            return Err(NotAt::OtherEpoch {
                ours: self.epoch.clone(),
                asked: epoch.to_string(),
            });
        }
        Ok(())
    }

    /// Notes where `batch` wrote the keys of running checks (a command too large to hold ends at the batch's end).
    fn note_writes(&mut self, batch: &Batch) {
        let raw = batch.raw();
        for frame in &batch.index.frames {
            let end = match frame.at.is_empty() {
                true => batch.end,
                false => batch.start + u64::from(frame.at.end),
            };
            match frame.kind {
                Kind::Keyed | Kind::Withheld => {
                    for i in frame.written_keys() {
                        let at = &batch.index.keys[i as usize];
                        if let Some(key) = raw.get(at.start as usize..at.end as usize) {
                            self.writes.wrote(key, end);
                        }
                    }
                }
                Kind::WithheldAll | Kind::AllDbs | Kind::WholeDb | Kind::Unfollowed => {
                    self.writes.wrote_everything(end)
                }
                Kind::Select | Kind::Multi | Kind::Exec | Kind::Other => {}
            }
        }
    }

    fn key_state(&self, key: &[u8], state: &RelayState) -> KeyState {
        if !state.allow.allows(key) || self.not_held.contains(key) {
            return KeyState::Unknown;
        }
        match self.assembler.window(key) {
            Some(window) if rebuild::answers(window) => {
                KeyState::of_window(key, window, state.settings.depth)
            }
            Some(_) => KeyState::Unknown,
            None if self.assembler.unknown_keys().any(|k| k == key) => KeyState::Unknown,
            None => KeyState::Absent,
        }
    }
}

impl RelayState {
    /// The state of `keys` at `offset` of `epoch`: now if the state is there, else once its link reaches it
    /// (within the batch that crosses it). Refused when the state is past it, or not ready.
    pub fn state_at(
        &self,
        epoch: &str,
        offset: u64,
        keys: Vec<Vec<u8>>,
    ) -> Result<oneshot::Receiver<KeyStates>, NotAt> {
        if keys.len() > MAX_VERIFY_KEYS {
            return Err(NotAt::TooManyKeys(keys.len()));
        }
        let mut inner = self.inner();
        inner.answers_for(epoch)?;
        if offset < inner.offset {
            return Err(NotAt::Past {
                now: inner.offset,
                asked: offset,
            });
        }
        let (reply, answer) = oneshot::channel();
        let check = PendingCheck {
            offset,
            keys,
            reply,
        };
        if offset == inner.offset {
            check.answer(&inner, self);
            return Ok(answer);
        }
        inner.checks.retain(|c| !c.reply.is_closed());
        if inner.checks.len() >= MAX_PENDING_CHECKS {
            return Err(NotAt::Busy);
        }
        inner.checks.push(check);
        Ok(answer)
    }

    /// The state's epoch, and up to `n` of the keys it holds, drawn anew each call: the keys whose hashes under a
    /// fresh seed are the `n` smallest.
    pub fn sample(&self, n: usize) -> Option<(String, Vec<Vec<u8>>)> {
        let inner = self.inner();
        if inner.phase != Phase::Ready || n == 0 {
            return None;
        }
        let seed = now_ms() as u64 ^ self.verify_checks.load(Ordering::Relaxed);
        let mut smallest: BinaryHeap<(u64, &[u8])> = BinaryHeap::new();
        for key in inner.sizes.keys() {
            let rank = xxhash_rust::xxh3::xxh3_64_with_seed(key, seed);
            if smallest.len() < n {
                smallest.push((rank, key));
            } else if smallest.peek().is_some_and(|(top, _)| rank < *top) {
                smallest.pop();
                smallest.push((rank, key));
            }
        }
        let keys: Vec<Vec<u8>> = smallest.into_iter().map(|(_, k)| k.to_vec()).collect();
        (!keys.is_empty()).then(|| (inner.epoch.clone(), keys))
    }

    /// The keys a check found different: the state forgets them, and its refresh reads them from Redis again.
    pub fn heal(&self, keys: &[Vec<u8>]) {
        let mut inner = self.inner();
        if inner.phase != Phase::Ready {
            return;
        }
        for key in keys {
            inner.assembler.forget(key);
        }
        inner.settle(&self.settings);
        self.publish(&inner);
    }

    /// Counts a check: keys compared, keys that differed, keys not compared; `missed` when it could not be placed
    /// at its offset.
    pub fn count_check(&self, compared: usize, mismatches: usize, skipped: usize, missed: bool) {
        Metrics::add(&self.verify_checks, 1);
        Metrics::add(&self.verify_keys, compared as u64);
        Metrics::add(&self.verify_mismatches, mismatches as u64);
        Metrics::add(&self.verify_skipped, skipped as u64);
        Metrics::add(&self.verify_missed, u64::from(missed));
    }

    /// The digest of the windows a session with `sub` (and its `allow`, narrowed by its token) would hold, at the
    /// state's offset: what a page compares its own windows with. `Err` says why the state cannot answer (not
    /// ready, another database, a window deeper than the state's, a watched key not held, stale or lost track of).
    pub fn digest(&self, sub: &Subscription, allow: &Allow) -> Result<StateDigest, String> {
        let inner = self.inner();
        if !inner.answers(sub.db, sub.window, self.settings.depth) {
            return Err(format!(
                "the relay's state cannot answer this subscription: it holds database {STATE_DB} with windows \
                 of {} items, once built",
                self.settings.depth
            ));
        }
        let wanted = |key: &[u8]| sub.wants(key) && allow.allows(key);
        if inner.assembler.unknown_keys().any(wanted)
            || inner.not_held.iter().any(|key| wanted(key))
        {
            return Err("a key this session watches is not held by the relay's state".into());
        }
        let windows: Vec<(&[u8], &Window)> = inner
            .assembler
            .windows()
            .filter(|(key, _)| wanted(key))
            .collect();
        if windows.iter().any(|(_, window)| !rebuild::answers(window)) {
            return Err("a window this session watches is stale in the relay's state".into());
        }
        Ok(StateDigest {
            epoch: inner.epoch.clone(),
            offset: inner.offset,
            windows: windows_digest(windows, sub.window),
        })
    }

    /// Begins noting where the stream writes `keys`, for a check about to read them from Redis: so that the state,
    /// if its link passes the read's offset first, can still say which of them hold what they held there
    /// ([`RelayState::state_since`]). The check calls [`RelayState::untrack_writes`] when done with them.
    pub fn track_writes(&self, keys: &[Vec<u8>]) -> Result<(), NotAt> {
        let mut inner = self.inner();
        if inner.phase != Phase::Ready {
            return Err(NotAt::NotReady);
        }
        let offset = inner.offset;
        match inner.writes.track(keys, offset) {
            true => Ok(()),
            false => Err(NotAt::TooManyTracked),
        }
    }

    /// A check that tracked `keys` is done with them.
    pub fn untrack_writes(&self, keys: &[Vec<u8>]) {
        self.inner().writes.untrack(keys);
    }

    /// The state of `keys` at `offset` of `epoch`, which the state has passed: the keys the stream did not write
    /// since (their state now), and those it did, or whose writes were not noted from `offset` on (to read again).
    pub fn state_since(
        &self,
        epoch: &str,
        offset: u64,
        keys: Vec<Vec<u8>>,
    ) -> Result<(KeyStates, Vec<Vec<u8>>), NotAt> {
        let inner = self.inner();
        inner.answers_for(epoch)?;
        // Before the state's offset only: a key the link has not reached `offset` for may yet be written before it.
        let passed = offset <= inner.offset;
        let (unwritten, written): (Vec<Vec<u8>>, Vec<Vec<u8>>) = keys
            .into_iter()
            .partition(|key| passed && inner.writes.unwritten_since(key, offset));
        let states = unwritten
            .into_iter()
            .map(|key| {
                let held = inner.key_state(&key, self);
                (key, held)
            })
            .collect();
        Ok((states, written))
    }

    /// The stream and offset the state is at, when it is ready and no full sync is queued to it.
    pub fn position(&self) -> Option<(String, u64)> {
        let inner = self.inner();
        (inner.phase == Phase::Ready && self.current()).then(|| (inner.epoch.clone(), inner.offset))
    }

    /// The window depth the state keeps (`--state-depth`): a check reads Redis this deep.
    pub fn depth(&self) -> usize {
        self.settings.depth
    }

    /// The state's key patterns (`--allow`).
    pub fn patterns(&self) -> &[String] {
        &self.settings.allow
    }

    /// Corrupts `key`'s window in place (it becomes the string `corrupted`) without moving the offset: only for
    /// the tests of the checks, in debug builds.
    #[cfg(debug_assertions)]
    pub fn corrupt(&self, key: &[u8]) -> bool {
        let mut inner = self.inner();
        if inner.phase != Phase::Ready {
            return false;
        }
        let mut commands = Vec::new();
        crate::link_io::push_command(&mut commands, &[b"DEL", key]);
        crate::link_io::push_command(&mut commands, &[b"SET", key, b"corrupted"]);
        let message = wire::encode_snapshot(inner.offset, &commands);
        let applied = inner.assembler.push_message(&message).is_ok();
        inner.settle(&self.settings);
        self.publish(&inner);
        applied
    }
}

/// For unit tests: a state of every key with windows of 10, and an empty RDB of version 9 (a checksum of zero is not
/// checked) to build it from.
#[cfg(test)]
pub(crate) mod for_tests {
    use super::{RelayState, StateSettings};
    use crate::backlog::Batch;
    use crate::frames::{Frame, FrameIndex, Kind};

    pub const EMPTY_RDB: &[u8] = b"REDIS0009\xFF\0\0\0\0\0\0\0\0";

    pub fn state() -> RelayState {
        RelayState::new(StateSettings {
            depth: 10,
            bytes: 1 << 20,
            allow: vec!["*".into()],
            history_bytes: 1 << 20,
        })
    }

    /// One batch from `start` of `commands`, each a frame writing its first argument (a `RENAME` or `COPY`, its first
    /// two; a `FLUSHDB`, none); an `EVAL` of one key is withheld (a frame the state gets a stale message of, for that
    /// key); the end of each.
    pub fn batch(start: u64, commands: &[&[&str]]) -> (Batch, Vec<u64>) {
        let (mut raw, mut index, mut ends) = (Vec::new(), FrameIndex::default(), Vec::new());
        for args in commands {
            let at = raw.len() as u32;
            raw.extend(format!("*{}\r\n", args.len()).bytes());
            let first = index.keys.len() as u32;
            let named = match args[0] {
                "RENAME" | "COPY" => 1..=2,
                "EVAL" => 3..=3,
                _ => 1..=1,
            };
            for (i, arg) in args.iter().enumerate() {
                raw.extend(format!("${}\r\n", arg.len()).bytes());
                if named.contains(&i) {
                    index
                        .keys
                        .push(raw.len() as u32..raw.len() as u32 + arg.len() as u32);
                }
                raw.extend(format!("{arg}\r\n").bytes());
            }
            let keys = first..index.keys.len() as u32;
            index.frames.push(match args[0] {
                "EVAL" => Frame::withheld(at..raw.len() as u32, 0, keys),
                _ => Frame {
                    at: at..raw.len() as u32,
                    db: 0,
                    target_db: 0,
                    kind: match args[0] {
                        "FLUSHDB" => Kind::WholeDb,
                        _ => Kind::Keyed,
                    },
                    keys,
                    written: 1,
                },
            });
            ends.push(start + raw.len() as u64);
        }
        (
            Batch::new(start, start + raw.len() as u64, &raw, index, true),
            ends,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use super::for_tests::{batch, EMPTY_RDB};
    use super::{RelayState, ShardKeys, StateSettings};
    use crate::subscription::{Allow, Subscription};

    /// A cluster shard's state caches a join's snapshot for the next session with the same subscription while the
    /// topology stays as it was: a second join shares the first one's building. Once the view changes (here the
    /// shard lost `b`'s slot), the next join builds its own, without `b`, which the one after shares.
    #[test]
    fn a_shards_cached_join_holds_until_the_topology_changes() {
        let owned = Arc::new(Mutex::new(vec![b"a".to_vec(), b"b".to_vec()]));
        let generation = Arc::new(AtomicU64::new(1));
        let owns = {
            let owned = owned.clone();
            Arc::new(move |key: &[u8]| owned.lock().unwrap().iter().any(|k| k == key))
        };
        let keys = ShardKeys {
            owns: owns.clone(),
            answers: owns,
            generation: {
                let generation = generation.clone();
                Arc::new(move || generation.load(Ordering::SeqCst))
            },
        };
        let state = RelayState::for_shard(
            StateSettings {
                depth: 10,
                bytes: 1 << 20,
                allow: vec!["*".into()],
                history_bytes: 0,
            },
            Some(keys),
        );
        state.begin_full_sync("e", 100);
        state.load(EMPTY_RDB);
        state.finish_full_sync();
        state.apply(&batch(100, &[&["ZADD", "a", "1", "x"], &["ZADD", "b", "2", "y"]]).0);
        let sub = Subscription::parse(r#"{"type":"subscribe","patterns":["*"],"db":0,"window":5}"#)
            .unwrap();
        let allow = Allow::new(&["*".to_string()]);
        let join = || {
            state
                .snapshot(&sub, &allow)
                .expect("answered from the state")
        };

        let first = join();
        let second = join();
        assert_eq!((first.keys, second.keys), (2, 2));
        assert_eq!(
            first.commands.as_ptr(),
            second.commands.as_ptr(),
            "one building shared"
        );

        owned.lock().unwrap().retain(|k| k != b"b");
        generation.fetch_add(1, Ordering::SeqCst);
        let third = join();
        assert_eq!(third.keys, 1, "b's slot is another shard's now");
        assert_eq!(third.offset, first.offset, "the state did not move");
        assert_ne!(third.commands.as_ptr(), first.commands.as_ptr());
        let fourth = join();
        assert_eq!(fourth.commands.as_ptr(), third.commands.as_ptr());
    }

    /// A complete window a withheld write made stale, then emptied of the members the state knows: Redis may hold
    /// what the withheld write put there, so the state does not answer the key with `DEL`. It is read from Redis
    /// (the state's refresh lists it), and answered from the state once that read is placed.
    #[test]
    fn a_stale_window_emptied_is_read_from_redis_not_answered_deleted() {
        let state = super::for_tests::state();
        state.begin_full_sync("e", 100);
        state.load(EMPTY_RDB);
        state.finish_full_sync();
        let (filled, _) = batch(100, &[&["ZADD", "k", "1", "a", "2", "b"]]);
        state.apply(&filled);
        let (withheld, _) = batch(
            filled.end,
            &[
                &[
                    "EVAL",
                    "return redis.call('ZADD', KEYS[1], 3, 'secret')",
                    "1",
                    "k",
                ],
                &["ZREM", "k", "a", "b"],
            ],
        );
        state.apply(&withheld);
        assert!(
            state
                .snapshot_keys(0, 10, &[b"k".to_vec()], Some(0))
                .is_none(),
            "not answered from the state (it answered DEL k)"
        );
        let (epoch, lost) = state.lost().expect("a refresh is due");
        assert_eq!((epoch.as_str(), lost), ("e", vec![b"k".to_vec()]));
        // Redis's answer, placed at the state's offset.
        let mut commands = Vec::new();
        crate::link_io::push_command(&mut commands, &[b"DEL", b"k"]);
        crate::link_io::push_command(&mut commands, &[b"ZADD", b"k", b"3", b"secret"]);
        state.place(
            crate::snapshot::Snapshot {
                epoch,
                offset: withheld.end,
                commands: commands.into(),
                keys: 1,
                rest: Vec::new(),
            },
            vec![b"k".to_vec()],
        );
        let (snapshot, _) = state
            .snapshot_keys(0, 10, &[b"k".to_vec()], None)
            .expect("answered from the state once read");
        let mut expected = Vec::new();
        crate::link_io::push_command(&mut expected, &[b"DEL", b"k"]);
        crate::link_io::push_command(&mut expected, &[b"ZADD", b"k", b"3", b"secret"]);
        assert_eq!(snapshot.commands, expected);
    }
}

/// A batch of `ZADD`s applied a run at a time ([`Run`]), on batches indexed as the link indexes them.
#[cfg(test)]
mod zadd_runs {
    use std::sync::Arc;

    use replicast_protocol::resp::{parse_command, Limits};
    use replicast_protocol::wire::PastValue;

    use super::for_tests::{self, EMPTY_RDB};
    use super::*;
    use crate::command_table::CommandTable;
    use crate::frames::{FrameIndex, Indexer};

    /// `commands` as one batch from offset `start`, indexed with Redis 7.0.15's own table, and each command's end.
    fn batch(start: u64, commands: &[&[&str]]) -> (Batch, Vec<u64>) {
        let reply =
            redis::parse_redis_value(include_bytes!("../../tests/data/redis-7.0.15-command.resp"))
                .unwrap();
        let mut indexer = Indexer::new(Arc::new(CommandTable::from_command_reply(&reply)));
        let mut raw = Vec::new();
        let mut ends = Vec::new();
        for args in commands {
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            crate::link_io::push_command(&mut raw, &args);
            ends.push(start + raw.len() as u64);
        }
        let (mut index, mut at, limits) = (FrameIndex::default(), 0, Limits::default());
        while let Some(command) = parse_command(&raw[at..], at as u64, &limits).unwrap() {
            indexer.add(&mut index, &raw, &command, at);
            at += command.frame_len();
        }
        (Batch::read(start, Bytes::from(raw), index), ends)
    }

    /// A state with its ring of past writes, built at offset 100.
    fn built() -> RelayState {
        let state = for_tests::state();
        state.begin_full_sync(&"a".repeat(40), 100);
        state.load(EMPTY_RDB);
        state.finish_full_sync();
        state
    }

    /// What the ring lists of `key` since the state started: each member's offset, score and bytes.
    fn past(state: &RelayState, key: &str) -> Vec<(u64, f64, String)> {
        let inner = state.inner();
        let mut out = wire::encode_past(&wire::Past {
            offset: inner.offset,
            keys: Vec::new(),
        });
        let ring = &inner.assembler.observer().past;
        assert!(ring.push_key(&mut out, key.as_bytes(), 100, inner.offset, usize::MAX));
        let (_, decoded) = wire::decode_past(&out).unwrap();
        assert_eq!(decoded.keys[0].covered_from, 100, "{key} is covered");
        decoded.keys[0]
            .items
            .iter()
            .map(|item| match item.value {
                PastValue::Member { score, member } => (
                    item.offset,
                    score,
                    String::from_utf8(member.to_vec()).unwrap(),
                ),
                _ => panic!("{key}: not a member"),
            })
            .collect()
    }

    #[test]
    fn a_batch_of_zadds_notes_each_member_at_its_own_commands_end() {
        let state = built();
        let (zadds, ends) = batch(
            100,
            &[
                &["ZADD", "perf:a", "1", "x"],
                &["SELECT", "0"],
                &["zadd", "perf:b", "2", "y", "3", "z"],
                &["ZADD", "perf:a", "4", "w"],
                // Re-scored: the member leaves and enters again, noted at this command's end.
                &["ZADD", "perf:a", "5", "x"],
                // Already there with that score: nothing enters.
                &["ZADD", "perf:b", "2", "y"],
                &["ZADD", "perf:b", "INCR", "1", "z"],
            ],
        );
        assert!(only_zadds(&zadds));
        state.apply(&zadds);
        assert_eq!(
            past(&state, "perf:a"),
            [
                (ends[0], 1.0, "x".into()),
                (ends[3], 4.0, "w".into()),
                (ends[4], 5.0, "x".into())
            ]
        );
        assert_eq!(
            past(&state, "perf:b"),
            [
                (ends[2], 2.0, "y".into()),
                (ends[2], 3.0, "z".into()),
                (ends[6], 4.0, "z".into())
            ]
        );
        // Another command among them: the batch is applied a command at a time, each noted at its end as well.
        let from = *ends.last().unwrap();
        let (mixed, ends) = batch(
            from,
            &[
                &["ZADD", "perf:c", "1", "x"],
                &["ZINCRBY", "perf:c", "2", "x"],
                &["ZADD", "perf:c", "7", "y"],
            ],
        );
        assert!(!only_zadds(&mixed));
        state.apply(&mixed);
        assert_eq!(
            past(&state, "perf:c"),
            [
                (ends[0], 1.0, "x".into()),
                (ends[1], 3.0, "x".into()),
                (ends[2], 7.0, "y".into())
            ]
        );
    }

    #[test]
    fn zadd_is_told_by_its_name_in_any_case() {
        let command = |args: &[&str]| {
            let mut raw = Vec::new();
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            crate::link_io::push_command(&mut raw, &args);
            raw
        };
        for name in ["ZADD", "zadd", "ZaDd"] {
            assert!(names_zadd(&command(&[name, "k", "1", "m"])), "{name}");
        }
        // Bytes that OR 0x20 into another byte, shorter and longer names.
        for name in [
            "ZADDX", "ZAD", "ZINCRBY", "SELECT", "Z\0DD", "Z\u{1}DD", "ZA\u{4}D", "zad\u{4}",
            "ZA@D",
        ] {
            assert!(!names_zadd(&command(&[name, "k", "1", "m"])), "{name}");
        }
        // A count of several digits.
        let many: Vec<String> = (0..12).map(|i| i.to_string()).collect();
        let mut args = vec!["zAdd", "k"];
        args.extend(many.iter().map(String::as_str));
        assert!(names_zadd(&command(&args)));
        assert!(!names_zadd(b"*1\r\n$4\r\nZADD"));
        assert!(!names_zadd(b"*12\r\n$4\r\nZADD"));
        assert!(!names_zadd(b"PING\r\n"));
        assert!(!names_zadd(b""));
    }
}
