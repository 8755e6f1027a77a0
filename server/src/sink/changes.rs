//! What each relay message changes in the database, without I/O: [`Changes::apply`] takes one binary message of
//! the relay's protocol (docs/PROTOCOL.md) and adds to the [`Batch`] being filled the history rows, mirror states
//! and set operations it implies, and the position it brings the stream to.
//!
//! - History (`--history` keys): every sorted-set member and stream entry written. Plain `ZADD`s and every
//!   `XADD` carry what Redis wrote, so they are read straight from the commands and snapshots; what only the
//!   key's state can tell (`ZINCRBY`, `ZADD` with `NX`/`XX`/`GT`/`LT`/`INCR`, a member renamed or copied in) comes
//!   from a small native assembler whose windows report the members entering them (a stream renamed or copied in
//!   is written from the window moved with it, or a top-up of a key it does not hold whole; a flagged `ZADD` that
//!   leaves its member below a window not holding the whole key, which reports nothing, has the key read by a
//!   top-up). Rows are deduplicated by
//!   identity, here within the batch and by the database's primary key across batches and re-snapshots. The
//!   windows of the keys such commands name ("stateful") go into the batch, to be stored with the position, and
//!   a sink resumed from the database's position starts from them (`windows.rs`); a key without a stored window
//!   that such a command names after the resume is read by a top-up first, its window made since the resume
//!   holding only what the commands since wrote. A key whose top-up is pending after such a command is watched
//!   until the answer: a write after it that may change or remove what it wrote is a span whose rows may miss a
//!   score, recorded with the rows ([`InexactSpan`], docs/SINK.md "Exactly once"). A history key's top-up asks the
//!   relay for its past writes from where its span starts (`since`); the past message that comes before the
//!   answer gives each a row, and the span is exact when they reach back to its start ([`Changes::apply_past`]).
//! - Mirror (`--mirror` keys): strings, hashes and lists from an assembler with windows of `--window` items; a
//!   key's rows are written from its window whenever it changed and is exact (a stale window asks the relay for a
//!   top-up first, as a page does). Sets have no window in the assembler: the set operations are read from the
//!   commands here (`SADD`, `SREM`, `SMOVE`, deletions, `RENAME`, flushes) and applied to the set table.
//! - A Redis Cluster's shard that leaves the cluster ends its stream with an ended message: no answer of it will
//!   come, so its open spans are recorded, its history keys are taken as gone, and its position goes
//!   ([`Changes::end_stream`]).
//!
//! Top-ups the assemblers need are collected for the session to send ([`Changes::take_topups`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use replicast_assembler::observe::{Item, ItemId, Payload, WindowObserver};
use replicast_assembler::windows::Body;
use replicast_assembler::{StreamAssembler, WatchConfig};
use replicast_protocol::client_message::Topup;
use replicast_protocol::resp::{Command, CommandReader};
use replicast_protocol::wire::{self, Message};

use super::asked::{Asked, ASK_AGAIN_FIRST, ASK_AGAIN_LAST};
use super::rows::{
    key_text, seen_id, value_text, zset_digest, Batch, InexactSpan, MirrorState, Refusal, SetOp,
};
use super::windows::{push_snapshot, AbsentKeys, StoredSpan, StoredWindow, ABSENT_KEPT};
use crate::snapshot::MAX_SNAPSHOT_KEYS;
use crate::subscription::Allow;

/// Window of the history assembler: it only has to follow members whose new score depends on the old one, and
/// those outside its window are read again by a top-up.
const HISTORY_WINDOW: usize = 16;

/// Key patterns (Redis globs) of one mode.
pub struct Patterns {
    raw: Vec<Vec<u8>>,
    allow: Allow,
}

impl Patterns {
    pub fn new(patterns: &[String]) -> Self {
        Patterns {
            raw: patterns.iter().map(|p| p.as_bytes().to_vec()).collect(),
            allow: Allow::new(patterns),
        }
    }

    pub fn allows(&self, key: &[u8]) -> bool {
        self.allow.allows(key)
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// What the sink follows, by mode.
pub struct Modes {
    pub history: Patterns,
    pub mirror: Patterns,
    /// The database followed (the subscription's `db`).
    pub db: u32,
    /// Items kept per mirrored key (and read per key by snapshots).
    pub window: usize,
}

/// The relay's protocol version (its hello's) from which a top-up may carry `since` and the relay answers it with a
/// past message: an older relay refuses the field, closing the session, and is asked without it.
const SINCE_VERSION: u8 = 4;

/// Keys whose top-up the session asks in one request, with the offset of their shard's stream from which the relay
/// lists their past writes (`since`; `None`: not asked, for keys without a span to close).
#[derive(Debug, PartialEq)]
pub struct TopupAsk {
    pub since: Option<u64>,
    pub keys: Vec<Vec<u8>>,
}

/// What a message asked of the session besides rows.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    /// The relay dropped the session (`resync`): connect again.
    pub reconnect: Option<String>,
    /// Text of a notice, for the log.
    pub notice: Option<String>,
    /// Why a shard's stream ended (an ended message: the shard left the cluster), for the log.
    pub ended: Option<String>,
    /// The message was a shard's hello.
    pub hello: bool,
}

#[derive(Debug)]
pub enum ChangeError {
    Wire(String),
    Assembler(String),
}

impl std::fmt::Display for ChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeError::Wire(e) => write!(f, "a relay message could not be read: {e}"),
            ChangeError::Assembler(e) => write!(f, "the relay's stream could not be followed: {e}"),
        }
    }
}

/// The history assembler's observer: sorted-set members entering a window, but for those the batch holds already
/// (`batch`, lent while a message is applied): most members are read from the stream first, and copying them again
/// would be most of what the sink does per sample. Those are the batch's rows from `next_row` on, in the order the
/// window reports them, so they are told by their bytes without hashing them again; any other member by its
/// digest in the batch's [`super::rows::Seen`].
#[derive(Default)]
struct Entered {
    members: Vec<(Vec<u8>, f64, Vec<u8>)>,
    batch: Batch,
    next_row: usize,
}

impl WindowObserver for Entered {
    fn added(&mut self, key: &[u8], item: Item<'_>) {
        if let (Some(score), Payload::Value(member)) = (item.time_ms, item.payload) {
            if !self
                .batch
                .holds_next_zset(&mut self.next_row, key, score, member)
                && !self
                    .batch
                    .seen
                    .contains(seen_id(key, zset_digest(score, member)))
            {
                self.members.push((key.to_vec(), score, member.to_vec()));
            }
        }
    }
    fn removed(&mut self, _key: &[u8], _id: ItemId) {}
    fn key_cleared(&mut self, _key: &[u8]) {}
}

/// The mirror assembler's observer: keys whose window changed.
#[derive(Default)]
struct Touched {
    keys: BTreeSet<Vec<u8>>,
}

impl WindowObserver for Touched {
    fn added(&mut self, key: &[u8], _item: Item<'_>) {
        self.touch(key);
    }
    fn removed(&mut self, key: &[u8], _id: ItemId) {
        self.touch(key);
    }
    fn key_cleared(&mut self, key: &[u8]) {
        self.touch(key);
    }
}

impl Touched {
    fn touch(&mut self, key: &[u8]) {
        if !self.keys.contains(key) {
            self.keys.insert(key.to_vec());
        }
    }
}

/// Where one shard's commands stand for the sink's own reading of them.
#[derive(Debug, Default, Clone)]
struct ShardReading {
    /// The database `SELECT`ed last; `None` until the first `SELECT` since the shard's join, which the protocol
    /// says is the watched one.
    selected_db: Option<u32>,
    /// Joined afresh (a hello that does not continue the windows) and its snapshot not read yet: its position is
    /// not one to resume from, nor to store, since a session resumed there would never get that snapshot.
    joining: bool,
    /// Resumed from a position the mirror's windows were not at (a new process resuming from the database's):
    /// no snapshot comes, so a key without a window is not known to be absent, and a window a command makes is
    /// only what the commands since the resume wrote. Each mirrored key is read again before its rows are.
    blind: bool,
    /// A stale message for every window came since the shard's last join afresh: the withheld command may have
    /// made a history key the sink holds no window of, so such a key is not known to be absent, and a command whose
    /// history depends on it has it read first, as on a blind shard ([`Changes::stale_every_window`]).
    stale_all: bool,
    /// The relay said the stream ended (its shard left the cluster): it has no position any more, until a hello
    /// starts another stream under its index (in a later session).
    ended: bool,
}

/// What [`Changes::read_commands`] reads.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reading {
    /// A snapshot's commands (a join's, or a top-up's answer).
    Snapshot,
    /// A segment of the stream; `cut_at_swap`: the reading stops at a `SWAPDB` of the watched database, the message
    /// to be applied around it (not when the message being applied is that `SWAPDB` alone).
    Stream { cut_at_swap: bool },
}

/// The sink's reading of the relay's messages; see the module's comment.
pub struct Changes {
    modes: Modes,
    history: StreamAssembler<Entered>,
    mirror: StreamAssembler<Touched>,
    shards: Vec<ShardReading>,
    /// Mirrored keys whose rows may no longer match Redis after a join that did not continue the stream; each
    /// is topped up unless a snapshot names it first.
    unverified: BTreeSet<Vec<u8>>,
    /// Top-ups asked and not answered yet, so that a key is asked once, then again after a while
    /// ([`Changes::take_topups`]).
    asked: Asked,
    topups: BTreeSet<Vec<u8>>,
    /// History keys whose top-up is pending (asked or to be asked): the shard and the offset of its stream from
    /// which the relay is asked for the key's past writes (`since`): where the key's span starts, or where the key
    /// became pending when none is open (a span opened later starts after it).
    since: HashMap<Vec<u8>, (u16, u64)>,
    /// Keys of `since` that another shard's stream named since they became pending (their slot moved): when the
    /// shard they became pending on leaves the cluster, they live on, and are asked again, not taken as gone.
    since_moved: HashSet<Vec<u8>>,
    /// The protocol version of the relay's last hello.
    relay_version: u8,
    /// Mirrored keys a snapshot named without members: sets (or gone), whose members before are not known.
    unknown_sets: HashSet<Vec<u8>>,
    /// Mirrored keys whose state is known since a shard became blind ([`ShardReading::blind`]): read by a
    /// snapshot, or deleted by a command. Those without a window are bounded: past `mirror_checked_kept` keys they
    /// are dropped ([`Changes::check_mirror`]).
    checked: HashSet<Vec<u8>>,
    /// How many keys `checked` holds before those without a window are dropped from it.
    mirror_checked_kept: usize,
    /// Rows refused, by reason, since the last [`Changes::take_refusals`].
    refusals: Vec<(Refusal, String)>,
    /// The positions the session asked to resume from (`at=`): a hello at one of them is a resume, which no
    /// snapshot follows.
    resuming: Vec<(String, u64)>,
    /// The database's positions (the first session's `resuming`) no hello resumed yet: the streams a held window's
    /// span may be of.
    unresumed: Vec<(String, u64)>,
    /// Spans of held windows that will not be opened again ([`Changes::end_held_span`]), for the batch.
    ended_held: Vec<InexactSpan>,
    /// How many streams the database's positions name (the first session's `resuming`): a session whose shards'
    /// hellos are fewer may not have sent all of them yet ([`Changes::release_unresumed`]).
    stored_streams: usize,
    /// Some window of `stored` has an epoch (not released by [`Changes::release_unresumed`] yet).
    held_epochs: bool,
    /// The shards of the session whose hello came.
    session_hellos: BTreeSet<u16>,
    /// No hello came for a while since the session's last ([`Changes::hellos_settled`]).
    hellos_settled: bool,
    /// History keys whose window is stored with the position: keys a command whose history depends on their
    /// state named, or whose top-up the history assembler asked.
    stateful: HashSet<Vec<u8>>,
    /// Stateful keys only because a stale message for every window asked their top-up (the collector's keys, whose
    /// rows come from the stream): stored unknown while it is pending, so that a restarted sink reads them again,
    /// then stateful no more once known again by any means (the answer, a deletion, a join's snapshot), their row
    /// deleted ([`Changes::store_keys`]), unless a command whose history depends on their state named them
    /// meanwhile. That is safe because the stale message recorded its span of every key a pattern matches (a
    /// `pattern` row): a restarted sink holding no window of the key misses nothing that row does not mark.
    stateful_until_read: HashSet<Vec<u8>>,
    /// The shard whose stream named each stateful key last: a key without a window is stored in its keeping, so
    /// that the resume of that shard, whose stream goes on with the key, rebuilds it.
    homes: HashMap<Vec<u8>, u16>,
    /// The stateful keys known not to exist whose window is stored as absent (the last ones, bounded).
    absent: AbsentKeys,
    /// Stateful keys dropped when the sink started (absent ones past the bound): their rows go with the next
    /// position stored.
    forgotten: Vec<Vec<u8>>,
    /// Stateful keys the message being applied named: their windows go into the batch (all of them after a join,
    /// `restate_all`).
    restated: BTreeSet<Vec<u8>>,
    restate_all: bool,
    /// The keys a joining shard's messages named (those another shard's message names are stored at once, in its
    /// keeping, and again, with every other stateful key, when the join ends): in that shard's keeping then.
    restated_in_join: BTreeSet<Vec<u8>>,
    /// The history assembler waited for a full snapshot at the last message (`needs_resnapshot`).
    swapped: bool,
    /// The relay said (a notice) that it did not take some keys of a top-up, without naming them (the keys a join
    /// left for later wait within the same bound as those asked): every key asked and not answered is asked again
    /// when the next answer comes, which frees room.
    ask_again: bool,
    /// The commands message being applied is a `SWAPDB` of the watched database alone, cut out of its message
    /// ([`Changes::apply_around_swap`]): where it ends, for the history to take it as a stale message for every
    /// window.
    swap_alone: Option<u64>,
    /// A segment of the commands message being applied could not be read (the sink's own reading stopped there).
    unreadable: bool,
    /// Windows the stopped sink stored, rebuilt when their shard resumes from the database's position.
    stored: Vec<(Vec<u8>, StoredWindow)>,
    /// The keys of `stored`: until its shard resumes (or joins afresh), a key's window is not in the history
    /// assembler, and its row stays as the stopped sink stored it (another shard's resume stores every other
    /// stateful key).
    held: HashSet<Vec<u8>>,
    /// History keys whose window (or its absence) is what Redis holds since a shard became blind (or got a stale
    /// message for every window): rebuilt from a stored window, read by a snapshot, deleted by a command, or
    /// forgotten (read by a top-up). Those known absent (no window, not being read) are bounded: past
    /// `checked_kept` keys they are dropped ([`Changes::check_history`]).
    history_checked: HashSet<Vec<u8>>,
    /// How many keys `history_checked` holds before those without a window are dropped from it.
    checked_kept: usize,
    /// History keys a `RENAME` or `COPY` of the message being applied moved a value into, with the stream offset
    /// just past that command: their rows come from the window moved with it, read there, or a top-up
    /// ([`Changes::write_moved_in`]).
    moved_in: Vec<(u64, Vec<u8>)>,
    /// Where the message being applied holds a `MULTI`, left out of what the history assembler is given
    /// ([`Changes::push_in_pieces`]).
    multis: Vec<(u64, u64)>,
    /// History keys whose top-up is pending after a command whose rows it reads, until it is answered (or the key
    /// is known again): what was written since, and whether it may have lost the rows a span.
    spans: HashMap<Vec<u8>, SpanWatch>,
    /// The commands of the message being applied that may open a span or write a key that has one, in order.
    span_events: Vec<SpanEvent>,
    /// The keys of the message's events that may open a span.
    span_keys: HashSet<Vec<u8>>,
    /// Where the history assembler's pieces end so that the sink reads whether a key is pending right after the
    /// command that may open its span (one the message writes again after it).
    span_cuts: Vec<u64>,
    /// Spans that could not be watched, [`MAX_OPEN_SPANS`] being open: recorded inexact at once, with the rows
    /// of the message that opened them.
    span_overflow: Vec<(Vec<u8>, SpanWatch)>,
    /// Spans open that commands opened (not those a resume opened, one per key pending at the position): what
    /// [`MAX_OPEN_SPANS`] bounds.
    opened_spans: usize,
    /// Shards whose mirrored keys are to be listed again ([`Relist`]), at most one entry per shard.
    relists: BTreeMap<u16, Relist>,
    /// The epochs whose mirror the database says is to be listed again (`position.mirror_relist`): wanted again
    /// when their stream resumes from the database's position.
    stored_relists: Vec<String>,
    /// The database may hold a stream marked to be listed again: the next batch writes the marks.
    relists_marked: bool,
    /// Shards whose listing failed ([`Changes::listing_failed`]): when it is tried again, and the wait that led
    /// there. At most one entry per shard of [`Changes::relists`].
    relist_retries: BTreeMap<u16, (Instant, std::time::Duration)>,
    /// The mirrored keys a set command wrote since a stale message for every window while a listing was wanted:
    /// their set rows are the stream's, kept when the listing deletes those of the keys it did not name. At most
    /// [`MAX_SETS_WRITTEN`]; `None` past it, and no set row is deleted then.
    sets_written: Option<HashSet<Vec<u8>>>,
}

/// Most keys [`Changes::sets_written`] holds (each at most a key's length).
const MAX_SETS_WRITTEN: usize = MAX_SNAPSHOT_KEYS;

/// A shard whose mirrored keys are to be listed again: after a `SWAPDB` of the watched database, a stale message
/// for every window or a segment the sink cannot read, [`Changes::mirror_stale_all`] reads again the keys the mirror
/// held a window of, but a key only the swapped-in database holds, or one the withheld command made, is known to no
/// window. The relay can name them (`listing.rs`), and each is then read by a top-up ([`Changes::listed`]).
#[derive(Debug)]
enum Relist {
    /// To be listed; `taken`: the session took it ([`Changes::take_listings`]); a listing that failed is tried
    /// again in the session after a wait ([`Changes::listing_failed`]), or at once in the next session.
    /// Meanwhile the shard's sets are not known: a set a command writes members to is marked inexact
    /// ([`Changes::read_set_command`]), also after a restart the position's mark resumes.
    Wanted { taken: bool },
    /// Listed: the keys whose top-up has not been answered yet. Bounded by the listing
    /// ([`super::listing::MAX_LISTED`]).
    Reading(HashSet<Vec<u8>>),
}

/// What a command wrote of a history key, for [`SpanWatch`].
#[derive(Debug, Clone, PartialEq)]
enum Touch {
    /// These sorted-set members only, by their 64-bit digests ([`member_digest`]).
    Members(Vec<u64>),
    /// Anything of the key (what a trim, a deletion or a `…STORE` writes cannot be told apart without the state).
    Whole,
}

/// A command of the message being applied that may open a span of its key ([`SpanEvent::opens`]: its rows may
/// come from a top-up) or write a key that has one.
#[derive(Debug)]
struct SpanEvent {
    shard: u16,
    start: u64,
    end: u64,
    key: Vec<u8>,
    opens: bool,
    touch: Touch,
    /// The members of a `ZADD` with a flag (but `CH` alone) that opens: one it leaves below the history window,
    /// which reports nothing of it, has its row from a top-up ([`Changes::leaves_below_window`]).
    flagged: Vec<Vec<u8>>,
}

/// A history key whose top-up was pending after a command whose rows the answer reads (`from`, where it starts):
/// what such commands wrote since, and whether a write after one of them may have changed or removed it before
/// the answer (`inexact`). Recorded as an [`InexactSpan`] when the key is known again, if `inexact`.
#[derive(Debug)]
struct SpanWatch {
    shard: u16,
    /// The epoch of the shard's stream where the span starts: its offsets are that stream's.
    epoch: String,
    from: u64,
    /// The digests of the members those commands wrote (at most [`SPAN_MEMBERS`], then the whole key); `None`:
    /// the whole key. (Two members with one digest make a write of one a write of the other: a span recorded
    /// that need not be, never one missed.)
    written: Option<HashSet<u64>>,
    inexact: bool,
    /// The relay's past writes of the key came before an answer (at the first offset), listing every write from the
    /// second on (`covered_from`, or the `since` asked if later): when that answer closes the span, it is exact if
    /// it starts there or after, else only its part before it may miss a score.
    covered: Option<(u64, u64)>,
    /// Written on another shard's stream too, or answered by another shard (the key's slot moved while the top-up
    /// was pending): the past writes of one shard do not list the other's, and the answer of one shard may not hold
    /// what the other wrote, so the span is inexact and no past message covers it.
    elsewhere: bool,
    /// Opened by a resume for a key pending at the position, not by a command: not counted in
    /// [`MAX_OPEN_SPANS`] (there are at most as many as windows stored, which bound them).
    restored: bool,
}

/// Members a [`SpanWatch`] tells apart before it counts the whole key as written.
const SPAN_MEMBERS: usize = 1024;

/// Spans watched at once (each at most [`SPAN_MEMBERS`] digests, 8 bytes each, with its key): past it, a span that
/// would open is recorded inexact at once, to where the stream stands then.
const MAX_OPEN_SPANS: usize = 4096;

/// Puts `span` into `batch`, or widens the one of the same epoch, key, shard and start the batch holds already (a
/// span recorded as its window was stored, then closed within the batch): one row, counted once.
fn record_span(batch: &mut Batch, span: InexactSpan) {
    let same = batch.inexact_spans.iter_mut().find(|s| {
        s.from_offset == span.from_offset
            && s.shard == span.shard
            && s.key == span.key
            && s.epoch == span.epoch
    });
    match same {
        Some(same) => same.to_offset = same.to_offset.max(span.to_offset),
        None => batch.inexact_spans.push(span),
    }
}

/// A member's digest, as a [`SpanWatch`] keeps it.
fn member_digest(member: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(member)
}

impl SpanWatch {
    /// Whether `touch` may change or remove what the watched commands wrote.
    fn touched_by(&self, touch: &Touch) -> bool {
        match (&self.written, touch) {
            (Some(written), Touch::Members(members)) => members.iter().any(|m| written.contains(m)),
            _ => true,
        }
    }

    fn add(&mut self, touch: Touch) {
        match (&mut self.written, touch) {
            (Some(written), Touch::Members(members))
                if written.len() + members.len() <= SPAN_MEMBERS =>
            {
                written.extend(members)
            }
            _ => self.written = None,
        }
    }
}

impl Changes {
    /// `known_mirror_keys`: the mirrored strings, hashes and lists the database holds rows of, read again at the
    /// first join (a snapshot names them, or a top-up reads each); `stored`: the history windows stored with the
    /// database's position, rebuilt when the stream resumes there.
    pub fn new(
        modes: Modes,
        known_mirror_keys: Vec<Vec<u8>>,
        stored: Vec<(Vec<u8>, StoredWindow)>,
    ) -> Self {
        let history = StreamAssembler::with_observer(
            WatchConfig {
                patterns: modes.history.raw.clone(),
                db: modes.db,
                window: HISTORY_WINDOW,
            },
            Entered::default(),
        );
        let mirror = StreamAssembler::with_observer(
            WatchConfig {
                patterns: modes.mirror.raw.clone(),
                db: modes.db,
                window: modes.window,
            },
            Touched::default(),
        );
        let held: HashSet<Vec<u8>> = stored.iter().map(|(key, _)| key.clone()).collect();
        let mut stateful = held.clone();
        let mut homes: HashMap<Vec<u8>, u16> = stored
            .iter()
            .map(|(key, w)| (key.clone(), w.shard))
            .collect();
        let mut absent = AbsentKeys::default();
        let mut forgotten = Vec::new();
        for (key, _) in stored.iter().filter(|(_, w)| w.absent()) {
            if let Some(evicted) = absent.insert(key) {
                stateful.remove(&evicted);
                homes.remove(&evicted);
                forgotten.push(evicted);
            }
        }
        Changes {
            modes,
            history,
            mirror,
            shards: Vec::new(),
            unverified: known_mirror_keys.into_iter().collect(),
            asked: Asked::default(),
            topups: BTreeSet::new(),
            since: HashMap::new(),
            since_moved: HashSet::new(),
            relay_version: 0,
            unknown_sets: HashSet::new(),
            checked: HashSet::new(),
            mirror_checked_kept: ABSENT_KEPT,
            refusals: Vec::new(),
            resuming: Vec::new(),
            unresumed: Vec::new(),
            ended_held: Vec::new(),
            stored_streams: 0,
            held_epochs: stored.iter().any(|(_, w)| w.epoch.is_some()),
            session_hellos: BTreeSet::new(),
            hellos_settled: false,
            stateful,
            stateful_until_read: HashSet::new(),
            homes,
            absent,
            forgotten,
            restated: BTreeSet::new(),
            restate_all: false,
            restated_in_join: BTreeSet::new(),
            swapped: false,
            ask_again: false,
            swap_alone: None,
            unreadable: false,
            stored,
            held,
            history_checked: HashSet::new(),
            checked_kept: ABSENT_KEPT,
            moved_in: Vec::new(),
            multis: Vec::new(),
            spans: HashMap::new(),
            span_events: Vec::new(),
            span_keys: HashSet::new(),
            span_cuts: Vec::new(),
            span_overflow: Vec::new(),
            opened_spans: 0,
            relists: BTreeMap::new(),
            stored_relists: Vec::new(),
            relists_marked: false,
            relist_retries: BTreeMap::new(),
            sets_written: Some(HashSet::new()),
        }
    }

    /// The epochs whose mirror the database says is to be listed again (`writer::load_mirror_relists`): the sink
    /// stopped before it had read every key listed. Each is listed again when its stream resumes.
    pub fn mirror_relists_stored(&mut self, epochs: Vec<String>) {
        self.relists_marked = !epochs.is_empty();
        self.stored_relists = epochs;
    }

    /// Shards whose mirrored keys the session is to have the relay list now, with the epoch of their stream (which
    /// the listing's own session finds the shard by): each once, then again at `now` if it failed and its wait is
    /// over ([`Changes::listing_failed`]).
    pub fn take_listings(&mut self, now: Instant) -> Vec<(u16, String)> {
        if self.relists.is_empty() {
            self.relist_retries.clear();
            return Vec::new();
        }
        let relists = &self.relists;
        self.relist_retries
            .retain(|shard, _| relists.contains_key(shard));
        let streams = self.stream_positions();
        let mut listings = Vec::new();
        for (shard, relist) in &mut self.relists {
            let waits = self
                .relist_retries
                .get(shard)
                .is_some_and(|(at, _)| *at > now);
            if let Relist::Wanted { taken: false } = relist {
                if waits {
                    continue;
                }
                if let Some((_, epoch, _)) = streams.iter().find(|(s, _, _)| s == shard) {
                    *relist = Relist::Wanted { taken: true };
                    listings.push((*shard, epoch.clone()));
                }
            }
        }
        listings
    }

    /// The listing of shard `shard` failed at `now` (the relay refused the session, a network error, a snapshot
    /// error): it is tried again after [`ASK_AGAIN_FIRST`], then twice as long each time, up to [`ASK_AGAIN_LAST`],
    /// as a top-up not answered is asked again ([`super::asked`]).
    pub fn listing_failed(&mut self, shard: u16, now: Instant) {
        let Some(Relist::Wanted { taken }) = self.relists.get_mut(&shard) else {
            return;
        };
        *taken = false;
        let wait = self
            .relist_retries
            .get(&shard)
            .map_or(ASK_AGAIN_FIRST, |(_, wait)| (*wait * 2).min(ASK_AGAIN_LAST));
        self.relist_retries.insert(shard, (now + wait, wait));
    }

    /// When a listing that failed is to be tried again, if one is.
    pub fn lists_again_at(&self) -> Option<Instant> {
        self.relist_retries
            .iter()
            .filter(|(shard, _)| {
                matches!(
                    self.relists.get(shard),
                    Some(Relist::Wanted { taken: false })
                )
            })
            .map(|(_, (at, _))| *at)
            .min()
    }

    /// The keys the relay listed on shard `shard`'s stream (`listing.rs`), at an offset at or after the one the
    /// session has applied: each key is read by a top-up, whose answer, at an offset of this stream, writes its rows
    /// (or deletes them). A set among them (`sets`: named with no window) has no members a top-up can read: its row
    /// is marked inexact, as after a join. Once every key listed is answered the shard is listed no more.
    pub fn listed(
        &mut self,
        shard: u16,
        keys: Vec<Vec<u8>>,
        sets: Vec<Vec<u8>>,
        batch: &mut Batch,
    ) {
        if !matches!(self.relists.get(&shard), Some(Relist::Wanted { .. })) {
            return;
        }
        self.relist_retries.remove(&shard);
        // The only shard: the set rows of the keys it did not name, and that the stream did not write since, are of
        // keys gone (a set the withheld command deleted). With more shards, which shard a set row is of is not kept.
        if self.shards.len() == 1 {
            if let Some(written) = self.sets_written.take() {
                let keep = keys
                    .iter()
                    .chain(&sets)
                    .chain(&written)
                    .filter_map(|key| key_text(key).ok().map(str::to_string))
                    .collect();
                batch.push_set_op(SetOp::KeepSets(keep));
            }
        }
        self.sets_written = Some(HashSet::new());
        for set in sets {
            if let Ok(text) = key_text(&set) {
                batch.push_set_op(SetOp::Add(text.to_string(), Vec::new(), false));
            }
            self.unknown_sets.insert(set);
        }
        let mut reading = HashSet::new();
        for key in keys {
            if Topup::can_name(&key) && self.modes.mirror.allows(&key) {
                self.topups.insert(key.clone());
                reading.insert(key);
            } else {
                tracing::warn!(
                    key = %String::from_utf8_lossy(&key),
                    "a mirrored key no top-up can name (over 1,024 bytes, or not UTF-8) is not read again: its row, \
                     if any, is marked inexact"
                );
                if let Ok(text) = key_text(&key) {
                    batch.push_set_op(SetOp::Unreadable(text.to_string()));
                }
            }
        }
        if reading.is_empty() {
            self.relists.remove(&shard);
        } else {
            self.relists.insert(shard, Relist::Reading(reading));
        }
        self.note_positions(batch);
    }

    /// A join of shard `shard` that does not continue its stream: a join afresh's snapshot reads every key (nothing
    /// to list); a resume from the database's position lists the keys again if the stopped sink had not read all
    /// those listed on the stream it resumes (`epochs`: the hello's and the one it continues).
    fn relist_at_join(&mut self, shard: u16, resumed: bool, epochs: &(String, String)) {
        let (epoch, previous) = epochs;
        let before = self.stored_relists.len();
        self.stored_relists
            .retain(|e| e.is_empty() || (e != epoch && e != previous));
        if !resumed {
            self.relists.remove(&shard);
        } else if self.stored_relists.len() < before && self.follows_mirror() {
            self.relists
                .entry(shard)
                .or_insert(Relist::Wanted { taken: false });
        }
        // Every stream of the database's positions has said its hello: a mark left is of a stream none resumes.
        if self.session_hellos.len() >= self.stored_streams {
            self.stored_relists.clear();
        }
    }

    /// A key a snapshot named is read: no longer awaited by a listing ([`Relist::Reading`]).
    fn relist_read(&mut self, key: &[u8]) {
        self.relists.retain(|_, relist| match relist {
            Relist::Reading(keys) => {
                keys.remove(key);
                !keys.is_empty()
            }
            Relist::Wanted { .. } => true,
        });
    }

    /// Where the streams stand once the batch is written, and which of them the mirror is to be listed again on.
    /// The marks of the streams not resumed yet stay as the database has them.
    fn note_positions(&mut self, batch: &mut Batch) {
        batch.positions = self.positions();
        batch.mirror_relists.clear();
        if self.relists.is_empty() && self.stored_relists.is_empty() {
            // The database's marks are written only when they change: none is left to clear.
            batch.write_relists |= std::mem::take(&mut self.relists_marked);
            return;
        }
        let streams = self.stream_positions();
        batch.mirror_relists = self
            .relists
            .keys()
            .filter_map(|shard| streams.iter().find(|(s, _, _)| s == shard))
            .map(|(_, epoch, _)| epoch.clone())
            .filter(|epoch| batch.positions.iter().any(|(e, _)| e == epoch))
            .chain(self.stored_relists.iter().cloned())
            .collect();
        batch.write_relists = true;
        self.relists_marked = true;
    }

    /// A session asks the relay to resume from `positions`.
    pub fn resuming(&mut self, positions: &[(String, u64)]) {
        // The first session's are the database's, which the held windows' spans are of; a later session's are
        // where this process stands, which names no stream of a shard not resumed since.
        if self.resuming.is_empty() {
            self.unresumed = positions.to_vec();
            self.stored_streams = positions.len();
        }
        self.resuming = positions.to_vec();
        self.session_hellos.clear();
        self.hellos_settled = false;
    }

    /// No hello came for a while ([`super::follow`]'s `HELLOS_SETTLE`) since the session's last: the relay starts
    /// every shard's stream when the session opens, so a shard that said none by then is taken as gone from the
    /// cluster when the database's positions name more streams than the session's hellos
    /// ([`Changes::release_unresumed`], at the next message).
    pub fn hellos_settled(&mut self) {
        self.hellos_settled = true;
        // A stream marked to be listed again that no hello resumed is gone (a cluster that shrank, a relay that
        // restarted): a join afresh reads its keys.
        self.stored_relists.clear();
    }

    /// Every stream's `(epoch, offset)`: what a session resumes from, and what the database stores. A stream
    /// whose join snapshot has not come yet has none: the rows it implies are not read. Nor has one that ended.
    pub fn positions(&self) -> Vec<(String, u64)> {
        self.stream_positions()
            .into_iter()
            .filter(|(shard, _, _)| {
                !self
                    .shards
                    .get(usize::from(*shard))
                    .is_some_and(|s| s.joining || s.ended)
            })
            .map(|(_, epoch, offset)| (epoch, offset))
            .collect()
    }

    fn follows_history(&self) -> bool {
        !self.modes.history.is_empty()
    }

    /// The mirror assembler is fed when there are mirror patterns, or when there is nothing else to follow.
    fn follows_mirror(&self) -> bool {
        !self.modes.mirror.is_empty() || !self.follows_history()
    }

    /// `(shard, epoch, offset)` of every stream, from an assembler that is fed.
    fn stream_positions(&self) -> Vec<(u16, String, u64)> {
        if self.follows_mirror() {
            self.mirror.positions()
        } else {
            self.history.positions()
        }
    }

    /// Keys to ask the relay to read again at `now`, each once until its snapshot comes, or until it is due to be
    /// asked again ([`Asked`]: a relay that will not answer says so in a notice that does not name the keys it can
    /// count, and names in its text only those no shard serves, which the sink does not parse): a history key with
    /// the offset its past writes are asked from (`since`, of its shard's stream), by shard and offset, the others
    /// together. At most [`MAX_SNAPSHOT_KEYS`] wait for their answers, the most a relay takes of a session (it would
    /// say how many it did not take in a notice, and never read them): the others stay to ask, asked as answers
    /// come.
    pub fn take_topups(&mut self, now: Instant) -> Vec<TopupAsk> {
        for key in self
            .history
            .take_topups()
            .into_iter()
            .chain(self.mirror.take_topups())
        {
            self.topups.insert(key);
        }
        let mut asks: BTreeMap<Option<(u16, u64)>, Vec<Vec<u8>>> = BTreeMap::new();
        for key in self.asked.due(now) {
            self.ask(&mut asks, key);
        }
        for key in std::mem::take(&mut self.topups) {
            if Topup::can_name(&key) && !self.asked.contains(&key) {
                if self.asked.len() >= MAX_SNAPSHOT_KEYS {
                    self.topups.insert(key);
                    continue;
                }
                self.asked.insert(key.clone(), now);
                self.ask(&mut asks, key);
            }
        }
        asks.into_iter()
            .map(|(since, keys)| TopupAsk {
                since: since.map(|(_, offset)| offset),
                keys,
            })
            .collect()
    }

    /// Puts `key` among `asks`, under the `since` it is asked with.
    fn ask(&self, asks: &mut BTreeMap<Option<(u16, u64)>, Vec<Vec<u8>>>, key: Vec<u8>) {
        let since = self.since.get(&key).copied();
        asks.entry(since.filter(|_| self.relay_version >= SINCE_VERSION))
            .or_default()
            .push(key);
    }

    /// When a key asked is next due to be asked again ([`Changes::take_topups`]), if any is asked.
    pub fn asks_again_at(&self) -> Option<Instant> {
        self.asked.next_due()
    }

    /// Rows refused since the last call, with the key they were of.
    pub fn take_refusals(&mut self) -> Vec<(Refusal, String)> {
        std::mem::take(&mut self.refusals)
    }

    /// A new session: top-ups asked of the last one will not be answered.
    pub fn reconnected(&mut self) {
        self.topups.extend(self.asked.drain());
        // A listing that failed is tried again.
        for relist in self.relists.values_mut() {
            if let Relist::Wanted { taken } = relist {
                *taken = false;
            }
        }
    }

    /// Applies one relay message, adding what it changes to `batch`.
    pub fn apply(&mut self, message: &[u8], batch: &mut Batch) -> Result<Applied, ChangeError> {
        self.apply_read(message, batch, None)
    }

    /// [`Changes::apply`]; `read`: `message` is the part before a `SWAPDB` of a commands message the sink's own
    /// reading went through up to that `SWAPDB` ([`Changes::apply_around_swap`]), and the first history row that
    /// reading added to `batch`. (Its commands are not read again: what their reading noted is the part's.)
    fn apply_read(
        &mut self,
        message: &[u8],
        batch: &mut Batch,
        read: Option<usize>,
    ) -> Result<Applied, ChangeError> {
        if wire::is_past(message) {
            self.apply_past(message, batch)?;
            return Ok(Applied::default());
        }
        if wire::is_ended(message) {
            return self.end_stream(message, batch);
        }
        let decoded = wire::decode(message).map_err(|e| ChangeError::Wire(e.to_string()))?;
        let (shard, inner) = match decoded {
            Message::Shard { index, message } => (index, *message),
            other => (0, other),
        };
        let mut applied = Applied::default();
        if read.is_none() {
            // What a message that could not be applied (a segment that does not decode, after others were read)
            // left of its own: each is the message's alone.
            self.moved_in.clear();
            self.multis.clear();
            self.span_events.clear();
            self.span_keys.clear();
            self.span_cuts.clear();
        }
        // The sorted-set rows the message's own reading adds start here: the history assembler reports them next.
        let first_row = read.unwrap_or(batch.zsets.len());
        let index = usize::from(shard);
        if self.shards.len() <= index {
            self.shards.resize_with(index + 1, ShardReading::default);
        }
        // Offsets already applied, before the assemblers move them: segments up to there are duplicates.
        let applied_offset = self
            .stream_positions()
            .into_iter()
            .find(|(i, _, _)| *i == shard)
            .map(|(_, _, offset)| offset);
        let mut kind = Kind::Other;
        // A stale message for every window (not a duplicate): its offset and the history keys it makes unknown.
        let mut every_window = None;
        // The keys a stale message of keys names.
        let mut named_stale: Vec<Vec<u8>> = Vec::new();
        // A commands message with a segment the sink cannot read: where it starts and ends.
        let mut unreadable: Option<(u64, u64)> = None;
        let mut resumed = false;
        let mut hello_offset = 0;
        // The hello's epoch and the one it continues (a failover renamed the stream), if any.
        let mut hello_epochs = (String::new(), String::new());
        match &inner {
            Message::Hello {
                version,
                epoch,
                previous,
                offset,
            } => {
                kind = Kind::Hello;
                self.relay_version = *version;
                hello_offset = *offset;
                hello_epochs = (epoch.to_string(), previous.to_string());
                self.session_hellos.insert(shard);
                self.hellos_settled = false;
                applied.hello = true;
                // At a position asked for, under its epoch or (after a failover) one that continues it.
                resumed = self
                    .resuming
                    .iter()
                    .any(|(e, o)| o == offset && (e == epoch || e == previous));
                if resumed {
                    self.unresumed
                        .retain(|(e, o)| !(o == offset && (e == epoch || e == previous)));
                }
                if !previous.is_empty() && previous != epoch {
                    batch.retired_epochs.push(previous.to_string());
                }
            }
            Message::Commands(segments) => {
                kind = Kind::Commands;
                let mut extent: Option<(u64, u64)> = None;
                for segment in segments.clone() {
                    let segment = segment.map_err(|e| ChangeError::Wire(e.to_string()))?;
                    extent = Some((extent.map_or(segment.start, |e| e.0), segment.end()));
                    if read.is_some() || applied_offset.is_some_and(|a| segment.end() <= a) {
                        continue;
                    }
                    let reading = Reading::Stream {
                        cut_at_swap: self.swap_alone.is_none(),
                    };
                    if let Some(swap) =
                        self.read_commands(shard, segment.start, segment.bytes, batch, reading)
                    {
                        return self.apply_around_swap(shard, &inner, swap, first_row, batch);
                    }
                }
                // A segment that cannot be read may have lost commands that wrote any key: the assemblers would
                // wait for a full snapshot. The message is, to them, a stale message for every window at its end.
                if std::mem::take(&mut self.unreadable) {
                    unreadable = extent;
                }
                // A `SWAPDB` of the watched database is, to the history, a stale message for every window at its
                // end (not a duplicate): every key's state may have changed.
                if let Some(end) = self
                    .swap_alone
                    .or(unreadable.map(|(_, end)| end))
                    .filter(|&end| self.follows_history() && applied_offset.is_none_or(|a| a < end))
                {
                    every_window = self.note_stale(shard, end, &wire::StaleKeys::All);
                }
            }
            Message::Snapshot { offset, commands } => {
                kind = Kind::Snapshot;
                self.read_commands(shard, *offset, commands, batch, Reading::Snapshot);
                if std::mem::take(&mut self.ask_again) {
                    self.topups.extend(self.asked.drain());
                }
            }
            Message::Stale { offset, keys } if self.follows_history() => {
                every_window = self.note_stale(shard, *offset, keys);
                if let wire::StaleKeys::Keys(list) = keys {
                    named_stale = list.clone().map(<[u8]>::to_vec).collect();
                }
            }
            Message::Resync { reason } => applied.reconnect = Some(reason.to_string()),
            Message::Notice { text } => {
                // `top-up of N keys not taken: …` (docs/PROTOCOL.md).
                if crate::session::is_topup_not_taken(text) {
                    self.ask_again = true;
                }
                applied.notice = Some(text.to_string());
            }
            _ => {}
        }
        // A stale message for every window, or a `SWAPDB` of the watched database cut out of its message (not a
        // duplicate): to the mirror too, every key of the shard is read again ([`Changes::mirror_stale_all`]).
        let mirror_stale_all = match &inner {
            Message::Stale {
                offset,
                keys: wire::StaleKeys::All,
            } if applied_offset.is_none_or(|a| *offset >= a) => Some(*offset),
            Message::Commands(_) => self
                .swap_alone
                .or(unreadable.map(|(_, end)| end))
                .filter(|&end| applied_offset.is_none_or(|a| a < end)),
            _ => None,
        }
        .filter(|_| self.follows_mirror());
        // An assembler of a mode without patterns would keep nothing, yet read every command of the message
        // again: only the modes in use are fed, and the stream's joins and positions come from the mirror's when
        // it is fed, else from the history's.
        let mut outcome = None;
        if self.follows_history() {
            let entered = self.history.observer_mut();
            std::mem::swap(&mut entered.batch, batch);
            entered.next_row = first_row;
            // Only a commands message is given to the history assembler in pieces.
            if kind == Kind::Commands && !self.span_events.is_empty() {
                self.find_span_cuts();
            }
            let history = if let Some((offset, keys)) = &every_window {
                self.stale_every_window(shard, *offset, keys)
            } else if self.moved_in.is_empty()
                && self.multis.is_empty()
                && self.span_cuts.is_empty()
            {
                self.history
                    .push_message(message)
                    .map_err(|e| ChangeError::Assembler(e.to_string()))
            } else {
                let pushed = self.push_in_pieces(shard, &inner);
                self.moved_in.clear();
                self.multis.clear();
                self.span_cuts.clear();
                pushed
            };
            // A window the stale message made stale is not followed on until its top-up: a command after it (a
            // `MULTI` block's, whose stale keys come before it) would give its members scores from what the
            // withheld command replaced, rows Redis never held. Unknown, the key's rows come from the answer.
            if history.is_ok() {
                for key in &named_stale {
                    if self.history.window(key).is_some_and(|w| w.stale()) {
                        self.forget_history(shard, key);
                    }
                }
            }
            if !self.span_events.is_empty() {
                self.settle_span_events(u64::MAX);
                self.span_keys.clear();
            }
            std::mem::swap(&mut self.history.observer_mut().batch, batch);
            outcome = Some(history?);
            if let Some((offset, _)) = every_window {
                let from = unreadable.map_or(offset, |(from, _)| from);
                self.record_keys_it_may_have_made(shard, from, offset, batch);
            }
        }
        if self.follows_mirror() {
            outcome = Some(match mirror_stale_all {
                Some(at) => self.mirror_stale_all(shard, at)?,
                None => self
                    .mirror
                    .push_message(message)
                    .map_err(|e| ChangeError::Assembler(e.to_string()))?,
            });
        }
        if let Some(replicast_assembler::Outcome::Joined { continuous, .. }) = outcome {
            // Resumed where the database stands, without the windows (a new process): the stream goes on from the
            // rows' position, but the windows start empty and no snapshot fills them.
            let blind = if continuous {
                self.shards[index].blind
            } else {
                resumed
            };
            // The spans of a stream that does not go on end where it stood, and its offsets name nothing now.
            if !continuous && !self.spans.is_empty() {
                self.close_spans(batch, shard, Some(applied_offset.unwrap_or_default()));
            }
            if !continuous {
                self.since.retain(|_, (s, _)| *s != shard);
            }
            self.shards[index] = ShardReading {
                joining: !continuous && !resumed,
                blind,
                stale_all: continuous && self.shards[index].stale_all,
                ..ShardReading::default()
            };
            // The sink follows sets itself, from the position: a resume continues them.
            if !continuous && !resumed {
                batch.push_set_op(SetOp::AllInexact);
            }
            if !continuous {
                self.relist_at_join(shard, resumed, &hello_epochs);
            }
            // The history's windows: cleared by a join that does not continue them, rebuilt from the stored ones
            // by a resume (a join afresh reads every key).
            self.restate_all = true;
            if !continuous {
                // The windows stored with the stream's epoch (or the one it continues), whatever index the stream
                // had then; a row without an epoch (an older sink's) by its index.
                let (epoch, previous) = &hello_epochs;
                let (here, elsewhere) =
                    std::mem::take(&mut self.stored)
                        .into_iter()
                        .partition(|(_, w)| match &w.epoch {
                            Some(e) => !e.is_empty() && (e == epoch || e == previous),
                            None => w.shard == shard,
                        });
                self.stored = elsewhere;
                for (key, _) in &here {
                    self.held.remove(key);
                }
                if !resumed {
                    // A join afresh ends the shard's spans, an inexact one recorded, as in a running sink.
                    for (key, window) in &here {
                        if let Some(span) = window.span.filter(|span| span.inexact) {
                            self.end_held_span(key, window, span);
                        }
                    }
                    self.history_checked.clear();
                    self.checked_kept = ABSENT_KEPT;
                } else if self.follows_history() {
                    self.restore(shard, hello_offset, here)?;
                }
            }
            // Known keys whose rows were written before this join are checked against Redis: by the snapshot
            // that follows, or by a top-up of each key it does not name.
            self.unverified
                .extend(std::mem::take(&mut self.mirror.observer_mut().keys));
            if continuous {
                self.unverified.clear();
            }
            if blind && !continuous && self.follows_mirror() {
                // No snapshot follows a resume: each key is read by a top-up now, its window unknown until then
                // (a command that changes part of it, like `HDEL` or `LPOP`, waits for the top-up).
                for key in std::mem::take(&mut self.unverified) {
                    if self.modes.mirror.allows(&key) {
                        self.mirror.forget(&key);
                    }
                }
                self.mirror.observer_mut().keys.clear();
            }
        }
        if kind == Kind::Snapshot {
            // A join's snapshot (not a top-up's answer) reads every key of the shard: one without a window is
            // absent, whatever a stale message for every window before it made.
            if self.shards[index].joining {
                self.shards[index].stale_all = false;
            }
            self.shards[index].joining = false;
            // The keys the join's snapshot did not name are read by top-ups.
            self.topups.append(&mut self.unverified);
        }
        if kind != Kind::Other && self.held_epochs && self.follows_history() {
            self.release_unresumed(shard);
        }
        for (key, score, member) in std::mem::take(&mut self.history.observer_mut().members) {
            if self.modes.history.allows(&key) {
                if let Err(why) = batch.push_zset(&key, score, &member) {
                    self.refused(why, &key);
                }
            }
        }
        // The windows a stale message for every window or a `SWAPDB` made unknown are not deleted: read again.
        self.write_mirror(
            if mirror_stale_all.is_some() {
                Kind::Other
            } else {
                kind
            },
            batch,
        );
        if self.follows_history() {
            self.store_windows(shard, batch);
        }
        if !self.spans.is_empty() {
            self.close_spans(batch, shard, None);
        }
        for span in std::mem::take(&mut self.ended_held) {
            record_span(batch, span);
        }
        if !self.span_overflow.is_empty() {
            let positions = self.history.positions();
            for (key, watch) in std::mem::take(&mut self.span_overflow) {
                let to = positions
                    .iter()
                    .find(|(s, _, _)| *s == watch.shard)
                    .map_or(watch.from, |(_, _, offset)| *offset);
                if let Ok(text) = key_text(&key) {
                    batch.inexact_spans.push(InexactSpan {
                        epoch: watch.epoch,
                        key: text.to_string(),
                        shard: watch.shard,
                        from_offset: watch.from,
                        to_offset: to.max(watch.from),
                        pattern: false,
                    });
                }
            }
        }
        self.note_positions(batch);
        Ok(applied)
    }

    /// A past message: the writes of the keys of a top-up asked with `since`, right before its answer (at the same
    /// offset; the stream does not move). Each item really was in Redis: it has its row, as a snapshot's members and
    /// entries have (rows already stored are skipped by the primary key). A key's span learns from which offset on
    /// every write is listed (its `covered_from`, or the `since` asked if later): [`Changes::close_spans`] drops the
    /// span when it starts there or after, else records only its part before. The history's windows do not change:
    /// the answer that follows says what the key holds.
    fn apply_past(&mut self, message: &[u8], batch: &mut Batch) -> Result<(), ChangeError> {
        let (shard, past) =
            wire::decode_past(message).map_err(|e| ChangeError::Wire(e.to_string()))?;
        for entry in past.keys {
            let key = entry.key;
            if !self.modes.history.allows(key) {
                continue;
            }
            for item in &entry.items {
                let pushed = match &item.value {
                    wire::PastValue::Member { score, member } => {
                        batch.push_zset(key, *score, member)
                    }
                    wire::PastValue::Entry { ms, seq, fields } => {
                        batch.push_stream(key, format!("{ms}-{seq}").as_bytes(), fields)
                    }
                };
                if let Err(why) = pushed {
                    self.refused(why, key);
                }
            }
            let asked = self.since.get(key).filter(|(s, _)| *s == shard);
            if let (Some(&(_, since)), Some(watch)) = (asked, self.spans.get_mut(key)) {
                if watch.shard == shard {
                    watch.covered = Some((past.offset, entry.covered_from.max(since)));
                }
            }
        }
        Ok(())
    }

    /// Notes a stale message of shard `shard` (the relay withheld a command that wrote `keys`, at `offset`) for
    /// the spans: each history key it names is written whole, which marks its open span inexact, and its rows come
    /// from a top-up, which may open one. For every window (`All`) those keys are every history key of the shard the
    /// sink knows the state of, returned to be made unknown ([`Changes::stale_every_window`]), and the keys of the
    /// other open spans; `None` for a duplicate (an offset before what the history applied), which changes nothing.
    fn note_stale(
        &mut self,
        shard: u16,
        offset: u64,
        keys: &wire::StaleKeys<'_>,
    ) -> Option<(u64, Vec<Vec<u8>>)> {
        let event = |key: Vec<u8>, opens: bool| SpanEvent {
            shard,
            start: offset,
            end: offset,
            key,
            opens,
            touch: Touch::Whole,
            flagged: Vec::new(),
        };
        match keys {
            wire::StaleKeys::All => {
                let applied = self
                    .history
                    .positions()
                    .into_iter()
                    .find(|(s, _, _)| *s == shard)
                    .map(|(_, _, applied)| applied);
                if applied.is_some_and(|applied| offset < applied) {
                    return None;
                }
                // The keys of the shard's windows, and the stateful keys it holds as absent: read again. Those pending
                // already (unknown) are being read, and their span opens here too.
                let mut unknown: BTreeSet<Vec<u8>> = self
                    .history
                    .windows()
                    .filter(|(_, w)| w.shard() == shard)
                    .map(|(k, _)| k.to_vec())
                    .collect();
                for key in &self.stateful {
                    let home = self.homes.get(key).copied().unwrap_or(shard);
                    if home == shard
                        && !self.held.contains(key)
                        && self.history.window(key).is_none()
                        && !self.history.is_unknown(key)
                    {
                        unknown.insert(key.clone());
                    }
                }
                let read_again: Vec<Vec<u8>> = unknown.iter().cloned().collect();
                for key in self.history.unknown_keys() {
                    if self.since.get(key).is_none_or(|(s, _)| *s == shard) {
                        unknown.insert(key.to_vec());
                    }
                }
                let others: Vec<Vec<u8>> = self
                    .spans
                    .keys()
                    .filter(|k| !unknown.contains(*k))
                    .cloned()
                    .collect();
                self.span_events
                    .extend(unknown.into_iter().map(|k| event(k, true)));
                self.span_events
                    .extend(others.into_iter().map(|k| event(k, false)));
                return Some((offset, read_again));
            }
            wire::StaleKeys::Keys(list) => {
                for key in list.clone() {
                    if self.modes.history.allows(key) {
                        self.span_events.push(event(key.to_vec(), true));
                    }
                }
            }
        }
        None
    }

    /// A commands message of shard `shard` holding a `SWAPDB` of the watched database from `start` to `end`, which
    /// the sink's own reading of its commands stopped at ([`Changes::read_commands`]), applied in three: the commands
    /// before it (read already; `first_row`, the first history row that reading added), it alone, and those after it.
    /// The history assembler would take a `SWAPDB` as the start of a wait for a full snapshot, which never comes to
    /// a sink (the first top-up's answer would end it, every key it does not name then taken for absent); the sink
    /// gives it the `SWAPDB` as a stale message for every window instead ([`Changes::stale_every_window`]): each key
    /// it knows the state of is read again, with its span, and the keys it may have made are recorded.
    fn apply_around_swap(
        &mut self,
        shard: u16,
        inner: &Message<'_>,
        (start, end): (u64, u64),
        first_row: usize,
        batch: &mut Batch,
    ) -> Result<Applied, ChangeError> {
        let Message::Commands(segments) = inner else {
            return Ok(Applied::default());
        };
        // The segments' parts before `start`, from `start` to `end`, and after `end`; each part ends where it does
        // (an empty segment there), so that the stream stands at the cut.
        let mut parts = [
            wire::begin_commands(),
            wire::begin_commands(),
            wire::begin_commands(),
        ];
        for segment in segments.clone().flatten() {
            // The empty segment a message ends with, at the relay's cursor.
            let cursor = segment.bytes.is_empty() && segment.start >= end;
            for (i, part) in parts.iter_mut().enumerate() {
                let (from, to) = match i {
                    0 => (segment.start, start.min(segment.end())),
                    1 => (start.max(segment.start), end.min(segment.end())),
                    _ => (end.max(segment.start), segment.end()),
                };
                if to > from || (cursor && i == 2) {
                    let range = (from - segment.start) as usize..(to - segment.start) as usize;
                    wire::push_segment(part, from, &segment.bytes[range]);
                }
            }
        }
        wire::push_segment(&mut parts[0], start, b"");
        wire::push_segment(&mut parts[1], end, b"");
        let wrap = |part: Vec<u8>| {
            if shard == 0 {
                part
            } else {
                wire::encode_shard(shard, &part)
            }
        };
        let [before, swap, after] = parts;
        let mut out = vec![
            (wrap(before), None, Some(first_row)),
            (wrap(swap), Some(end), None),
        ];
        // Only the message's tag: nothing after the `SWAPDB`.
        if after.len() > 1 {
            out.push((wrap(after), None, None));
        }
        let mut applied = Applied::default();
        for (part, swap, read) in out {
            self.swap_alone = swap;
            let result = self.apply_read(&part, batch, read);
            self.swap_alone = None;
            let part = result?;
            applied.reconnect = part.reconnect.or(applied.reconnect);
            applied.notice = part.notice.or(applied.notice);
        }
        Ok(applied)
    }

    /// Gives the history assembler a stale message for every window of shard `shard`'s stream at `offset` as what
    /// it is to the sink. The assembler would drop the shard's windows and take no key's state for known until a
    /// full snapshot, which never comes to a sink (a top-up's answer would end that, every key it does not name
    /// then taken for absent) and would ask no top-up. Instead each key of `keys` (the shard's windows, its stateful
    /// keys held as absent) is made unknown, its top-up asked, so that what the withheld command wrote is read, and
    /// a write before the answer records its span (opened at `offset` by [`Changes::note_stale`]). A key the sink
    /// holds no window of may have been made by the withheld command too: until the shard joins afresh, one that a
    /// command's history depends on is read first ([`ShardReading::stale_all`]), and the rows the withheld command
    /// gave such keys are recorded as possibly missing ([`Changes::record_keys_it_may_have_made`]).
    fn stale_every_window(
        &mut self,
        shard: u16,
        offset: u64,
        keys: &[Vec<u8>],
    ) -> Result<replicast_assembler::Outcome, ChangeError> {
        // The stream goes on from `offset`, as after the stale message.
        let mut message = wire::encode_stale(offset, std::iter::empty::<&[u8]>());
        if shard != 0 {
            message = wire::encode_shard(shard, &message);
        }
        let outcome = self
            .history
            .push_message(&message)
            .map_err(|e| ChangeError::Assembler(e.to_string()))?;
        for key in keys {
            if !self.stateful.contains(key) {
                self.stateful_until_read.insert(key.clone());
            }
            self.forget_history(shard, key);
        }
        // Checked keys without a window may have been made since; those being read are checked.
        self.forget_checked_absent();
        for key in keys {
            self.check_history(key);
        }
        self.shards[usize::from(shard)].stale_all = true;
        Ok(outcome)
    }

    /// Notes that `key`'s window (or its absence) is what Redis holds, on a shard blind or after a stale message for
    /// every window ([`Changes::history_checked`]). The keys known absent that it holds grow with every key a
    /// deletion or a command names (`perf:job-<id>`): past `checked_kept`, they are dropped, each costing one more
    /// top-up if a command whose history depends on it names it again, and the bound becomes what is left (keys
    /// with a window, which the history holds anyway, or being read) again, at least [`ABSENT_KEPT`].
    fn check_history(&mut self, key: &[u8]) {
        if self.history_checked.contains(key) {
            return;
        }
        if self.history_checked.len() >= self.checked_kept {
            self.forget_checked_absent();
        }
        self.history_checked.insert(key.to_vec());
    }

    /// Notes that mirrored `key`'s window (or its absence) is what Redis holds, on a shard blind or after a stale
    /// message for every window ([`Changes::checked`]). The keys without a window grow with every key a deletion
    /// or a snapshot names (`cfg:job-<id>`): past `mirror_checked_kept`, they are dropped, each costing one top-up
    /// if a command makes a window of it again (read before its rows are written), and the bound becomes what is
    /// left (keys with a window, which the mirror holds anyway) again, at least [`ABSENT_KEPT`].
    fn check_mirror(&mut self, key: Vec<u8>) {
        if self.checked.contains(&key) {
            return;
        }
        if self.checked.len() >= self.mirror_checked_kept {
            let mirror = &self.mirror;
            self.checked.retain(|k| mirror.window(k).is_some());
            let left = self.checked.len();
            self.mirror_checked_kept = left + left.max(ABSENT_KEPT);
        }
        self.checked.insert(key);
    }

    /// Drops the keys without a window, not being read, from those checked ([`Changes::check_history`]).
    fn forget_checked_absent(&mut self) {
        let history = &self.history;
        self.history_checked
            .retain(|k| history.window(k).is_some() || history.is_unknown(k));
        let left = self.history_checked.len();
        self.checked_kept = left + left.max(ABSENT_KEPT);
    }

    /// Gives the mirror assembler a stale message for every window of shard `shard`'s stream at `offset` (or a
    /// `SWAPDB` of the watched database ending there) as what it is to the sink. The assembler would drop the shard's
    /// windows and wait for a full snapshot, which never comes to a sink: the first top-up's answer would end the
    /// wait, every key it does not name then taken for absent (a command on one making a window of only what it
    /// wrote, a hash of one field while Redis holds more). Instead each key of the shard's windows is made unknown
    /// and read again by a top-up, its rows kept until the answer, and until the shard joins afresh a window a
    /// command makes of a key without one is read again before its rows are written, as after a resume.
    fn mirror_stale_all(
        &mut self,
        shard: u16,
        offset: u64,
    ) -> Result<replicast_assembler::Outcome, ChangeError> {
        let keys: Vec<Vec<u8>> = self
            .mirror
            .windows()
            .filter(|(_, w)| w.shard() == shard)
            .map(|(k, _)| k.to_vec())
            .collect();
        // The stream goes on from `offset`, as after the stale message.
        let mut message = wire::encode_stale(offset, std::iter::empty::<&[u8]>());
        if shard != 0 {
            message = wire::encode_shard(shard, &message);
        }
        let outcome = self
            .mirror
            .push_message(&message)
            .map_err(|e| ChangeError::Assembler(e.to_string()))?;
        for key in keys {
            self.mirror.forget(&key);
        }
        // Known since a resume, or the last stale message for every window: known no more.
        self.checked.clear();
        self.mirror_checked_kept = ABSENT_KEPT;
        self.shards[usize::from(shard)].stale_all = true;
        // The keys it holds no window of: the relay lists them, at once.
        self.relists.insert(shard, Relist::Wanted { taken: false });
        self.relist_retries.remove(&shard);
        self.sets_written = Some(HashSet::new());
        Ok(outcome)
    }

    /// Records, for a stale message for every window of shard `shard`'s stream at `offset`, that the command the
    /// relay withheld may have written keys the sink holds no window of (it may have made them), whose rows it
    /// cannot read: one span per `--history` pattern, the pattern as its key, from `from` (the start of a message
    /// that could not be read, else `offset`) to `offset`.
    fn record_keys_it_may_have_made(&self, shard: u16, from: u64, offset: u64, batch: &mut Batch) {
        let epoch = history_epoch(&self.history, shard);
        for pattern in &self.modes.history.raw {
            if let Ok(text) = key_text(pattern) {
                record_span(
                    batch,
                    InexactSpan {
                        epoch: epoch.clone(),
                        key: text.to_string(),
                        shard,
                        from_offset: from,
                        to_offset: offset,
                        pattern: true,
                    },
                );
            }
        }
    }

    /// Where the history assembler's pieces must end for the spans: just past each command that may open a span of
    /// its key when the message writes the key again after it (else the key's state at the end of the message is
    /// what the command left).
    fn find_span_cuts(&mut self) {
        let mut later: HashSet<&[u8]> = HashSet::new();
        for event in self.span_events.iter().rev() {
            if event.opens && later.contains(event.key.as_slice()) {
                self.span_cuts.push(event.end);
            }
            later.insert(&event.key);
        }
        self.span_cuts.reverse();
        self.span_cuts.dedup();
    }

    /// Reads the message's span events up to `upto` (where the history assembler stands): a write to a key with a
    /// span that may change or remove what its commands wrote, or any write of it on another shard's stream (its
    /// slot moved: [`SpanWatch::elsewhere`]), makes the span inexact; a command that may open a
    /// span does when its key is pending after it (its rows come from the answer), adding what it wrote.
    fn settle_span_events(&mut self, upto: u64) {
        let split = self.span_events.partition_point(|e| e.end <= upto);
        let events: Vec<SpanEvent> = self.span_events.drain(..split).collect();
        let mut unknown: Option<HashSet<Vec<u8>>> = None;
        for event in events {
            if let Some(watch) = self.spans.get_mut(&event.key) {
                let elsewhere = event.shard != watch.shard;
                let was = (watch.inexact, watch.elsewhere);
                watch.elsewhere |= elsewhere;
                if elsewhere || (!watch.inexact && watch.touched_by(&event.touch)) {
                    watch.inexact = true;
                }
                // Stored with its window (a sink resumed before the answer records it), or, written elsewhere,
                // recorded to where its shard's stream stands ([`Changes::record_spans_beyond_a_restart`]).
                if (watch.inexact, watch.elsewhere) != was && !self.restated.contains(&event.key) {
                    self.restated.insert(event.key.clone());
                }
            }
            if self.leaves_below_window(&event) {
                // Its top-up reads the member (if among the key's `--window` newest) and, the key pending, the span
                // opens here, as for any command whose rows the answer reads.
                self.history.forget(&event.key);
                if let Some(unknown) = &mut unknown {
                    unknown.insert(event.key.clone());
                }
            }
            if event.opens && self.pending(&event.key, &mut unknown) {
                let open = self.spans.contains_key(&event.key);
                // Past the cap, or of a key no top-up can name (its answer never comes): recorded at once.
                if !open && (self.opened_spans >= MAX_OPEN_SPANS || !Topup::can_name(&event.key)) {
                    let watch = SpanWatch {
                        shard: event.shard,
                        epoch: history_epoch(&self.history, event.shard),
                        from: event.start,
                        written: None,
                        inexact: true,
                        covered: None,
                        elsewhere: false,
                        restored: false,
                    };
                    self.span_overflow.push((event.key, watch));
                    continue;
                }
                if !open {
                    self.opened_spans += 1;
                    if !self.restated.contains(&event.key) {
                        self.restated.insert(event.key.clone());
                    }
                }
                let history = &self.history;
                let watch = self.spans.entry(event.key).or_insert_with(|| SpanWatch {
                    shard: event.shard,
                    epoch: history_epoch(history, event.shard),
                    from: event.start,
                    written: Some(HashSet::new()),
                    inexact: false,
                    covered: None,
                    elsewhere: false,
                    restored: false,
                });
                watch.add(event.touch);
            }
        }
    }

    /// Whether `event`, a `ZADD` with `NX`, `XX`, `GT` or `LT` of a history key (read right after it), left one of
    /// its members outside the key's window while the window, known, does not hold the whole key: the member may be
    /// in Redis below the window (the assembler, right for a window, counts that as no change), yet among the
    /// `--window` newest the sink keeps rows of. (A needless top-up, the member not in the key after all, is
    /// harmless; `ZINCRBY` and `INCR` make a window stale already when it does not hold their member.)
    fn leaves_below_window(&self, event: &SpanEvent) -> bool {
        if event.flagged.is_empty() {
            return false;
        }
        let Some(window) = self.history.window(&event.key) else {
            return false;
        };
        match window.body() {
            Body::Zset(zset) if !window.stale() && !zset.complete() => {
                event.flagged.iter().any(|m| zset.score(m).is_none())
            }
            _ => false,
        }
    }

    /// Whether the history's rows of `key` wait for a top-up: its window is stale, or it has none and its state is
    /// not known (asked, or to be asked). `unknown`: the history assembler's unknown keys, read once per call of
    /// the caller.
    fn pending(&self, key: &[u8], unknown: &mut Option<HashSet<Vec<u8>>>) -> bool {
        match self.history.window(key) {
            Some(window) => window.stale(),
            None => {
                self.asked.contains(key)
                    || self.topups.contains(key)
                    || unknown
                        .get_or_insert_with(|| {
                            self.history.unknown_keys().map(<[u8]>::to_vec).collect()
                        })
                        .contains(key)
            }
        }
    }

    /// Ends the spans of the keys a message of shard `shard` made known again (their top-up answered, or deleted),
    /// or, with `ended`, where its stream stood (a join that does not continue it), that shard's spans: an inexact
    /// one goes into `batch`, to its shard's offset. A span whose key another shard's message made known (an
    /// answer from the shard its slot moved to, or from the one it left, which the relay's topology still names)
    /// is inexact, as one written on two shards' streams is: that answer does not follow the span's writes.
    fn close_spans(&mut self, batch: &mut Batch, shard: u16, ended: Option<u64>) {
        let positions = self.history.positions();
        let mut unknown = None;
        let closed: Vec<Vec<u8>> = self
            .spans
            .iter()
            .filter(|(key, watch)| match ended {
                Some(_) => watch.shard == shard,
                None => !self.pending(key, &mut unknown),
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in closed {
            let Some(mut watch) = self.spans.remove(&key) else {
                continue;
            };
            if !watch.restored {
                self.opened_spans = self.opened_spans.saturating_sub(1);
            }
            if watch.shard != shard {
                watch.elsewhere = true;
                watch.inexact = true;
            }
            if !watch.inexact {
                continue;
            }
            let to = match ended {
                Some(offset) => offset,
                None => {
                    let answer = positions
                        .iter()
                        .find(|(s, _, _)| *s == watch.shard)
                        .map_or(watch.from, |(_, _, offset)| *offset);
                    // The relay listed every write of the key from `covered` up to this answer (its past message
                    // came right before it): none is missing after `covered`.
                    match watch
                        .covered
                        .filter(|(at, _)| *at == answer && !watch.elsewhere)
                    {
                        Some((_, covered)) if covered <= watch.from => continue,
                        Some((_, covered)) => covered,
                        None => answer,
                    }
                }
            };
            if let Ok(text) = key_text(&key) {
                record_span(
                    batch,
                    InexactSpan {
                        epoch: watch.epoch,
                        key: text.to_string(),
                        shard: watch.shard,
                        from_offset: watch.from,
                        to_offset: to.max(watch.from),
                        pattern: false,
                    },
                );
            }
        }
    }

    /// Records, to where its shard's stream stands, the span of each key the message named that a restarted sink
    /// could not go on with: one written on another shard's stream or answered by another ([`SpanWatch::elsewhere`]).
    /// Its window stores its start and that it is inexact, not the other shard's writes: resumed, a past message of
    /// its own shard alone could close it exact. Such a span is never closed exact, so its part up to where its
    /// shard's stream stands, which may miss a score, is recorded in the batch storing that position; a running
    /// sink records it again, to the answer, when it closes (the row keeps the furthest end), and a restarted one
    /// reads the stream after the position again (another shard's write or answer making it inexact again). Each
    /// message naming the key records it further, so the row reaches the last write of the key before the
    /// position.
    fn record_spans_beyond_a_restart(&self, batch: &mut Batch) {
        if self.spans.is_empty() || self.restated.is_empty() {
            return;
        }
        let positions = self.history.positions();
        for key in &self.restated {
            let Some(watch) = self.spans.get(key) else {
                continue;
            };
            if !watch.elsewhere {
                continue;
            }
            let Some(to) = positions
                .iter()
                .find(|(s, _, _)| *s == watch.shard)
                .map(|(_, _, offset)| *offset)
            else {
                continue;
            };
            if let Ok(text) = key_text(key) {
                record_span(
                    batch,
                    InexactSpan {
                        epoch: watch.epoch.clone(),
                        key: text.to_string(),
                        shard: watch.shard,
                        from_offset: watch.from,
                        to_offset: to.max(watch.from),
                        pattern: false,
                    },
                );
            }
        }
    }

    /// Notes a command of the watched database (`other_db`: of another one) for the spans: one whose rows may come
    /// from a top-up of `opens` (a history key), and the writes of keys with a span or opened in this message.
    fn note_span_event(
        &mut self,
        shard: u16,
        name: &[u8],
        args: &[&[u8]],
        opens: Option<&[u8]>,
        other_db: bool,
        (start, end): (u64, u64),
    ) {
        let opens = opens.filter(|k| self.modes.history.allows(k));
        let members =
            |list: Vec<&[u8]>| Touch::Members(list.into_iter().map(member_digest).collect());
        let key = args.get(1).copied().unwrap_or_default();
        let mut writes: Vec<(Vec<u8>, Touch)> = Vec::new();
        match name {
            b"flushall" | b"swapdb" => writes.extend(
                self.spans
                    .keys()
                    .chain(&self.span_keys)
                    .map(|k| (k.clone(), Touch::Whole)),
            ),
            _ if other_db => {}
            b"flushdb" => writes.extend(
                self.spans
                    .keys()
                    .chain(&self.span_keys)
                    .map(|k| (k.clone(), Touch::Whole)),
            ),
            b"zadd" => writes.push((key.to_vec(), members(zadd_members(args)))),
            b"zincrby" => writes.push((
                key.to_vec(),
                members(args.get(3).copied().into_iter().collect()),
            )),
            b"zrem" => writes.push((
                key.to_vec(),
                members(args.get(2..).unwrap_or_default().to_vec()),
            )),
            b"xadd" => {
                let trims =
                    args.iter().skip(2).take(3).any(|a| {
                        a.eq_ignore_ascii_case(b"maxlen") || a.eq_ignore_ascii_case(b"minid")
                    });
                if trims {
                    writes.push((key.to_vec(), Touch::Whole));
                }
            }
            b"expire" | b"pexpire" | b"expireat" | b"pexpireat" | b"persist" => {}
            b"copy" => writes.extend(args.get(2).map(|k| (k.to_vec(), Touch::Whole))),
            b"zunionstore" | b"zinterstore" | b"zdiffstore" | b"zrangestore"
            | b"geosearchstore" => writes.push((key.to_vec(), Touch::Whole)),
            _ => writes.extend(args.iter().skip(1).map(|k| (k.to_vec(), Touch::Whole))),
        }
        for (k, touch) in writes {
            let known = self.spans.contains_key(&k) || self.span_keys.contains(&k);
            if opens.is_some_and(|o| o == k.as_slice())
                || !known
                || self
                    .span_events
                    .iter()
                    .rev()
                    .take_while(|e| e.start == start)
                    .any(|e| e.key == k)
            {
                continue;
            }
            self.span_events.push(SpanEvent {
                shard,
                start,
                end,
                key: k,
                opens: false,
                touch,
                flagged: Vec::new(),
            });
        }
        if let Some(k) = opens {
            let (touch, flagged) = match name {
                b"zadd" => {
                    let list = zadd_members(args);
                    let flagged = list.iter().map(|m| m.to_vec()).collect();
                    (members(list), flagged)
                }
                b"zincrby" => (
                    members(args.get(3).copied().into_iter().collect()),
                    Vec::new(),
                ),
                _ => (Touch::Whole, Vec::new()),
            };
            self.span_events.push(SpanEvent {
                shard,
                start,
                end,
                key: k.to_vec(),
                opens: true,
                touch,
                flagged,
            });
            if !self.span_keys.contains(k) {
                self.span_keys.insert(k.to_vec());
            }
        }
    }

    /// Rebuilds the stored windows of shard `shard`'s keys where the stream resumed (`offset`), as a snapshot of
    /// them would; a key whose state was not known there, or whose window a snapshot cannot rebuild, is read
    /// again by a top-up. Their members are stored already.
    fn restore(
        &mut self,
        shard: u16,
        offset: u64,
        windows: Vec<(Vec<u8>, StoredWindow)>,
    ) -> Result<(), ChangeError> {
        let mut commands = Vec::new();
        for (key, window) in &windows {
            if window.restorable(HISTORY_WINDOW) {
                push_snapshot(&mut commands, key, window);
            }
        }
        if !commands.is_empty() {
            let mut message = wire::encode_snapshot(offset, &commands);
            if shard != 0 {
                message = wire::encode_shard(shard, &message);
            }
            self.history
                .push_message(&message)
                .map_err(|e| ChangeError::Assembler(e.to_string()))?;
            self.history.observer_mut().members.clear();
        }
        for (key, window) in windows {
            // In the keeping of the stream's index in this session (a window stored by epoch may have had another).
            self.homes.insert(key.clone(), shard);
            if !window.restorable(HISTORY_WINDOW) {
                self.forget_history(shard, &key);
            }
            // A top-up pending at the position: the stopped sink's span of the key goes on from where it started
            // (inexact if it was), or, without one stored (none open, or a version 4 row), one opens here; the
            // whole key counted as written, so that a write after the resume and before the answer is recorded.
            // The top-up asks the relay for the key's past writes from the span's start. A key no top-up can name
            // (its answer never comes) opens none: a span stored of it is recorded at once, to the position, and
            // each command after the resume whose rows a top-up would read records its own at once, as in a
            // running sink ([`Changes::settle_span_events`]).
            if !window.known {
                let epoch = history_epoch(&self.history, shard);
                let (from, inexact) = window
                    .span
                    .filter(|span| span.from <= offset)
                    .map_or((offset, false), |span| (span.from, span.inexact));
                let nameable = Topup::can_name(&key);
                if nameable || window.span.is_some() {
                    let watch = SpanWatch {
                        shard,
                        epoch,
                        from,
                        written: None,
                        inexact: inexact || !nameable,
                        covered: None,
                        elsewhere: false,
                        restored: true,
                    };
                    if nameable {
                        self.spans.entry(key.clone()).or_insert(watch);
                    } else {
                        self.span_overflow.push((key.clone(), watch));
                    }
                }
            }
            self.check_history(&key);
        }
        Ok(())
    }

    /// Stops holding `key`'s stored window for its shard's resume: what another shard's stream says of the key
    /// replaces it, and its window is stored again from the history assembler's.
    fn release(&mut self, key: &[u8]) {
        self.held.remove(key);
        let mut released = Vec::new();
        self.stored.retain(|(k, w)| {
            if k == key {
                released.push(w.clone());
            }
            k != key
        });
        // Its span (the top-up was pending at the position) is another shard's answer's now, or none's: recorded,
        // as a running sink records a span answered by another shard.
        for window in released {
            if let Some(span) = window.span {
                self.end_held_span(key, &window, span);
            }
        }
    }

    /// Once every shard of the session has joined or resumed (each index up to the highest has had its hello, none
    /// is still reading its join's snapshot, and the hellos are at least as many as the streams the database's
    /// positions name or, fewer, no hello came for a while since the last: [`Changes::hellos_settled`]), releases
    /// each held window stored with an epoch that no stream of the session continued: its stream's shard left the
    /// cluster while the sink was stopped, or its index went to another shard. No answer of that stream will come,
    /// so its span is recorded, exact or not, from its start to that epoch's stored position (as the running sink
    /// records the spans of a stream that ends), and what the key holds now is read by a top-up (its slot is
    /// another shard's, which may hold it or not). A window stored without an epoch (an older sink's row) stays
    /// held as before, until its shard's index resumes or joins, or another shard's stream names its key.
    fn release_unresumed(&mut self, shard: u16) {
        let Some(&last) = self.session_hellos.last() else {
            return;
        };
        let joined = (0..=last).all(|i| {
            self.session_hellos.contains(&i)
                && !self.shards.get(usize::from(i)).is_some_and(|s| s.joining)
        });
        if !joined || (self.session_hellos.len() < self.stored_streams && !self.hellos_settled) {
            return;
        }
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.stored)
            .into_iter()
            .partition(|(_, w)| w.epoch.is_some());
        self.stored = kept;
        self.held_epochs = false;
        for (key, window) in gone {
            self.held.remove(&key);
            if let Some(span) = window.span {
                self.end_held_span(&key, &window, span);
            }
            self.history_checked.remove(&key);
            if self.modes.history.allows(&key) {
                self.forget_history(shard, &key);
            }
        }
    }

    /// Records the span of a held window that will not be opened again (its stream did not resume), from its start
    /// to the position stored of the window's epoch; for a window without one (an older sink's row, which keeps its
    /// shard's index only), or whose epoch has no stored position, to that of each stream not resumed (a span
    /// recorded that need not be, never one lost).
    fn end_held_span(&mut self, key: &[u8], window: &StoredWindow, span: StoredSpan) {
        let Ok(text) = key_text(key) else {
            return;
        };
        let own = window
            .epoch
            .as_ref()
            .filter(|e| self.unresumed.iter().any(|(u, _)| u == *e));
        for (epoch, offset) in self
            .unresumed
            .iter()
            .filter(|(e, o)| *o >= span.from && own.is_none_or(|own| own == e))
        {
            self.ended_held.push(InexactSpan {
                epoch: epoch.clone(),
                key: text.to_string(),
                shard: window.shard,
                from_offset: span.from,
                to_offset: *offset,
                pattern: false,
            });
        }
    }

    /// An ended message: shard `shard`'s stream ended because the shard left the cluster (docs/PROTOCOL.md). Nothing
    /// more of it comes, nor the answer of a top-up asked of it. So each span open on its stream is recorded, exact
    /// or not (the rows of the commands that opened it were to come from that answer), from its start to where the
    /// stream ended; the keys the shard held for the history (windows whose home it is, known, and keys pending on
    /// its stream) are known not to exist any more, as a snapshot of the shard would have them (the cluster lost
    /// them with it: a slot given to another shard is empty there), so that a command writing one on another
    /// shard's stream later is read exactly, not waiting for an answer that will not come; and its position goes,
    /// the epoch's stored row with it, in the batch that records the spans and stores those keys' windows. A key
    /// that moved to another shard before this one left has a window that shard's stream made stale, and keeps the
    /// top-up that shard answers.
    fn end_stream(&mut self, message: &[u8], batch: &mut Batch) -> Result<Applied, ChangeError> {
        let (shard, reason) =
            wire::decode_ended(message).map_err(|e| ChangeError::Wire(e.to_string()))?;
        let applied = Applied {
            ended: Some(reason.to_string()),
            ..Applied::default()
        };
        let index = usize::from(shard);
        let stream = self
            .stream_positions()
            .into_iter()
            .find(|(s, _, _)| *s == shard)
            .map(|(_, epoch, _)| epoch);
        // No hello of the shard came (the relay sends none then), or it ended already: no stream of the sink's ends.
        let (Some(epoch), Some(reading)) = (stream, self.shards.get_mut(index)) else {
            return Ok(applied);
        };
        if reading.ended {
            return Ok(applied);
        }
        // A join it was in will not end: the other shards' windows are stored as usual from here.
        reading.ended = true;
        reading.joining = false;
        batch.retired_epochs.push(epoch);
        if self.follows_history() {
            self.end_history(shard, batch)?;
            self.store_windows(shard, batch);
        }
        if self.follows_mirror() {
            // The sink follows sets itself, and which shard's slots a set row is of is not kept: with the shard's
            // sets gone from Redis, no set row is known exact any more.
            batch.push_set_op(SetOp::AllInexact);
            self.end_mirror(shard, batch)?;
        }
        // The top-ups the relay had routed to that shard (keys of its slots, one whose slot moved to it while
        // pending) went with its stream, and which they were is not known here: every pending one is asked again
        // (a key answered twice is known at the second answer, which changes nothing).
        self.topups.extend(self.asked.drain());
        self.since_moved.retain(|key| self.since.contains_key(key));
        self.relists.remove(&shard);
        self.note_positions(batch);
        Ok(applied)
    }

    /// The history's part of [`Changes::end_stream`]: the spans of shard `shard` are recorded in `batch`, its keys
    /// are known not to exist.
    fn end_history(&mut self, shard: u16, batch: &mut Batch) -> Result<(), ChangeError> {
        let Some(offset) = self
            .history
            .positions()
            .into_iter()
            .find(|(s, _, _)| *s == shard)
            .map(|(_, _, offset)| offset)
        else {
            return Ok(());
        };
        let ended: Vec<Vec<u8>> = self
            .spans
            .iter()
            .filter(|(_, watch)| watch.shard == shard)
            .map(|(key, _)| key.clone())
            .collect();
        for key in ended {
            let Some(watch) = self.spans.remove(&key) else {
                continue;
            };
            if !watch.restored {
                self.opened_spans = self.opened_spans.saturating_sub(1);
            }
            if let Ok(text) = key_text(&key) {
                record_span(
                    batch,
                    InexactSpan {
                        epoch: watch.epoch,
                        key: text.to_string(),
                        shard,
                        from_offset: watch.from,
                        to_offset: offset.max(watch.from),
                        pattern: false,
                    },
                );
            }
        }
        // A key pending on its stream that another shard's stream wrote since lives on there: it is asked again.
        let mut gone: BTreeSet<Vec<u8>> = self
            .since
            .iter()
            .filter(|(key, (s, _))| *s == shard && !self.since_moved.contains(*key))
            .map(|(key, _)| key.clone())
            .collect();
        gone.extend(
            self.history
                .windows()
                .filter(|(_, window)| window.shard() == shard && !window.stale())
                .map(|(key, _)| key.to_vec()),
        );
        if gone.is_empty() {
            return Ok(());
        }
        let mut commands = Vec::new();
        for key in &gone {
            crate::link_io::push_command(&mut commands, &[b"DEL", key]);
        }
        let message = wire::encode_shard(shard, &wire::encode_snapshot(offset, &commands));
        self.history
            .push_message(&message)
            .map_err(|e| ChangeError::Assembler(e.to_string()))?;
        self.history.observer_mut().members.clear();
        for key in gone {
            self.since.remove(&key);
            self.since_moved.remove(&key);
            self.asked.remove(&key);
            self.topups.remove(&key);
            if self.stateful.contains(&key) {
                self.restated.insert(key);
            }
        }
        Ok(())
    }

    /// The mirror's part of [`Changes::end_stream`]: the mirrored keys whose window is shard `shard`'s (known: one
    /// another shard's stream wrote since its slot moved is stale, and that shard's answer reads it) are gone with
    /// it, as a snapshot of the shard deleting them would say, and their rows are deleted in `batch`. A key pending
    /// on its stream is asked again (with every other), and the shard that holds its slot now answers.
    fn end_mirror(&mut self, shard: u16, batch: &mut Batch) -> Result<(), ChangeError> {
        let Some(offset) = self
            .mirror
            .positions()
            .into_iter()
            .find(|(s, _, _)| *s == shard)
            .map(|(_, _, offset)| offset)
        else {
            return Ok(());
        };
        let gone: Vec<Vec<u8>> = self
            .mirror
            .windows()
            .filter(|(_, window)| window.shard() == shard && !window.stale())
            .map(|(key, _)| key.to_vec())
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        let mut commands = Vec::new();
        for key in &gone {
            crate::link_io::push_command(&mut commands, &[b"DEL", key]);
        }
        let message = wire::encode_shard(shard, &wire::encode_snapshot(offset, &commands));
        self.mirror
            .push_message(&message)
            .map_err(|e| ChangeError::Assembler(e.to_string()))?;
        // As a command deleting them would: a key without a window now is deleted from its table.
        self.write_mirror(Kind::Commands, batch);
        Ok(())
    }

    /// Has the history assembler forget `key` and ask its top-up: under its window's shard, or, without a window,
    /// under `shard`, whose stream named it. (The assembler's own `forget` keeps a key without a window as shard
    /// 0's: a flush or a fresh join of shard 0 would then take the key, pending on shard 1, for absent.) A stale
    /// message of the shard at the offset it stands at does that.
    fn forget_history(&mut self, shard: u16, key: &[u8]) {
        let offset = self
            .history
            .positions()
            .into_iter()
            .find(|(s, _, _)| *s == shard)
            .map(|(_, _, offset)| offset);
        let (Some(offset), None) = (offset, self.history.window(key)) else {
            return self.history.forget(key);
        };
        let mut message = wire::encode_stale(offset, [key]);
        if shard != 0 {
            message = wire::encode_shard(shard, &message);
        }
        if self.history.push_message(&message).is_err() {
            self.history.forget(key);
        }
    }

    /// Gives the history assembler a commands message (of shard `shard`) in which a `RENAME` or `COPY` moved a
    /// value into a history key, or that holds a `MULTI`, in pieces that end just past each such `RENAME` or
    /// `COPY`, and writes the rows of what it moved in after its piece: a command after it in the message may trim,
    /// delete or move on what it moved. The assembler would apply a `MULTI` block at its `EXEC`, all at once, so
    /// the `MULTI`s are left out of the pieces (it takes the gap as commands the relay withheld): their commands
    /// apply one by one, the sink reading the windows between them, also when a block goes on in the next message
    /// (the windows stored with a position inside a block are what its commands up to there left: a sink resumed
    /// there gets the rest of the block without its `MULTI`). (The batch is the observer's while the message is
    /// applied.)
    fn push_in_pieces(
        &mut self,
        shard: u16,
        inner: &Message<'_>,
    ) -> Result<replicast_assembler::Outcome, ChangeError> {
        let Message::Commands(segments) = inner else {
            return Ok(replicast_assembler::Outcome::Applied {
                commands: 0,
                changed: false,
            });
        };
        // Where the pieces end (just past a `RENAME` or `COPY` into a history key, or a command that may open a
        // span: `(end, end)`), and the `MULTI`s left out (`(start, end)`).
        let mut bounds: Vec<(u64, u64)> =
            self.moved_in.iter().map(|(end, _)| (*end, *end)).collect();
        bounds.extend(self.span_cuts.iter().map(|&end| (end, end)));
        bounds.extend(self.multis.iter().copied());
        bounds.sort_unstable();
        // A piece is one commands message of the segments' parts between two ends.
        let mut piece = wire::begin_commands();
        let mut applied = (0, false);
        // Where the message's last segment ends, and the pieces' last pushed segment: the relay ends a message with
        // an empty segment at its cursor, past the commands it withheld, and the history assembler must stand there
        // as the mirror's does (a session resumed from the cursor continues both streams, or neither).
        let mut message_end = None;
        let mut pushed_end = None;
        for segment in segments.clone().flatten() {
            let end = segment.end();
            message_end = Some(end);
            let mut from = segment.start;
            for &(to, next) in bounds
                .iter()
                .filter(|&&(c, _)| c >= segment.start && c <= end)
            {
                if to > from {
                    let range = (from - segment.start) as usize..(to - segment.start) as usize;
                    wire::push_segment(&mut piece, from, &segment.bytes[range]);
                    pushed_end = Some(to);
                }
                from = next.max(from);
                if to == next {
                    self.push_piece(shard, &mut piece, &mut applied)?;
                    let mut batch = std::mem::take(&mut self.history.observer_mut().batch);
                    self.write_moved_in(to, &mut batch);
                    self.history.observer_mut().batch = batch;
                    if !self.span_events.is_empty() {
                        self.settle_span_events(to);
                    }
                }
            }
            if end > from {
                wire::push_segment(
                    &mut piece,
                    from,
                    &segment.bytes[(from - segment.start) as usize..],
                );
                pushed_end = Some(end);
            }
        }
        if let Some(end) = message_end.filter(|&end| pushed_end != Some(end)) {
            wire::push_segment(&mut piece, end, b"");
        }
        self.push_piece(shard, &mut piece, &mut applied)?;
        let (commands, changed) = applied;
        Ok(replicast_assembler::Outcome::Applied { commands, changed })
    }

    /// Gives the history assembler `piece` (a commands message of shard `shard`) if it holds a segment, adding to
    /// `applied` the commands it held and whether a window changed; `piece` starts again empty.
    fn push_piece(
        &mut self,
        shard: u16,
        piece: &mut Vec<u8>,
        applied: &mut (usize, bool),
    ) -> Result<(), ChangeError> {
        // Nothing but the message's tag: no segment.
        if piece.len() <= 1 {
            return Ok(());
        }
        let mut message = std::mem::replace(piece, wire::begin_commands());
        if shard != 0 {
            message = wire::encode_shard(shard, &message);
        }
        if let replicast_assembler::Outcome::Applied { commands, changed } = self
            .history
            .push_message(&message)
            .map_err(|e| ChangeError::Assembler(e.to_string()))?
        {
            applied.0 += commands;
            applied.1 |= changed;
        }
        Ok(())
    }

    /// The rows of what a `RENAME` or `COPY` moved into a history key, read just past the command (`upto`, the
    /// stream offset the history assembler stands at): every member and entry the key holds then has its row, as
    /// after a snapshot of it (rows stored already are skipped by the primary key). Redis 7.0 propagates both as
    /// they were written. The history assembler moved the source's window along (a source outside `--history`, or
    /// not known, leaves the destination unknown and topped up, as `MOVE` into the watched database and `RESTORE`
    /// do): a sorted set's members entering it were reported as rows already, a stream's entries are not (the
    /// observer is told their milliseconds, not their ids), so they are written here from the window. A window
    /// that does not hold the whole key (a sorted set past 16 members, a stream past 16 entries) has the key read
    /// again by a top-up, whose answer brings its rows (its `--window` newest).
    fn write_moved_in(&mut self, upto: u64, batch: &mut Batch) {
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.moved_in)
            .into_iter()
            .partition(|(end, _)| *end <= upto);
        self.moved_in = later;
        for (_, key) in now {
            let Some(window) = self.history.window(&key).filter(|w| !w.stale()) else {
                // Unknown (its top-up asked).
                continue;
            };
            let entries: Vec<(String, Vec<Vec<u8>>)> = match window.body() {
                Body::Stream(stream) if stream.complete() => stream
                    .newest_first()
                    .map(|(id, fields)| (id.to_string(), fields.to_vec()))
                    .collect(),
                Body::Stream(_) => {
                    self.history.forget(&key);
                    continue;
                }
                Body::Zset(zset) if !zset.complete() => {
                    self.history.forget(&key);
                    continue;
                }
                _ => continue,
            };
            for (id, fields) in entries.iter().rev() {
                let fields: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
                if let Err(why) = batch.push_stream(&key, id.as_bytes(), &fields) {
                    self.refused(why, &key);
                }
            }
        }
    }

    /// Puts into `batch` the windows of the stateful keys the message named (with the keys whose top-up the
    /// history assembler asked, which become stateful): what a sink resumed at the batch's position starts from.
    fn store_windows(&mut self, shard: u16, batch: &mut Batch) {
        let topups = self.history.take_topups();
        if !topups.is_empty() {
            let offset = self
                .history
                .positions()
                .into_iter()
                .find(|(s, _, _)| *s == shard)
                .map(|(_, _, offset)| offset);
            for key in topups {
                if self.modes.history.allows(&key) {
                    self.stateful.insert(key.clone());
                    self.restated.insert(key.clone());
                    // Past writes from where its span starts, or from here (a span opened later starts after it).
                    let since = match self.spans.get(&key) {
                        Some(watch) => Some((watch.shard, watch.from)),
                        None => offset.map(|offset| (shard, offset)),
                    };
                    if let Some(since) = since.filter(|_| Topup::can_name(&key)) {
                        if !self.since.contains_key(&key) {
                            self.since.insert(key.clone(), since);
                            self.since_moved.remove(&key);
                        }
                    }
                }
                self.topups.insert(key);
            }
        }
        self.record_spans_beyond_a_restart(batch);
        // A shard joining has no position in the batch, and its windows are empty until its snapshot: stored now,
        // they would go with the position the shard had before, as if its keys did not exist there. The other
        // shards' positions go on meanwhile, so the keys a message of one of them named are stored, in its keeping
        // (a span opened or made inexact there is not lost by a sink stopped before the join ends); every key is
        // stored again when the join ends.
        if self.shards.iter().any(|s| s.joining) {
            let named = std::mem::take(&mut self.restated);
            let joining = self
                .shards
                .get(usize::from(shard))
                .is_some_and(|s| s.joining);
            if joining {
                self.restated_in_join.extend(named);
            } else if !named.is_empty() {
                let keys: Vec<Vec<u8>> = named
                    .iter()
                    .filter(|k| self.stateful.contains(*k))
                    .cloned()
                    .collect();
                let swapped = self.history.needs_resnapshot();
                self.store_keys(shard, &keys, &named, swapped, batch);
            }
            return;
        }
        if self.stateful.is_empty() {
            self.restate_all = false;
            return;
        }
        // (Only absent keys past the bound are forgotten, so some are still stateful.)
        for key in std::mem::take(&mut self.forgotten) {
            if let Ok(text) = key_text(&key) {
                batch.windows.insert(text.to_string(), None);
            }
        }
        // A shard's state unknown until a full snapshot (a `SWAPDB`, a segment that could not be read): every key
        // without a window is unknown, not absent.
        // Every window is stored again when that begins and when it ends, not at each message between.
        let swapped = self.history.needs_resnapshot();
        self.restate_all |= swapped != std::mem::replace(&mut self.swapped, swapped);
        // The keys the message named are in its shard's keeping.
        let mut named = std::mem::take(&mut self.restated);
        named.append(&mut self.restated_in_join);
        let keys: Vec<Vec<u8>> = if std::mem::take(&mut self.restate_all) {
            self.stateful.iter().cloned().collect()
        } else {
            let stateful = &self.stateful;
            named
                .iter()
                .filter(|k| stateful.contains(*k))
                .cloned()
                .collect()
        };
        self.store_keys(shard, &keys, &named, swapped, batch);
    }

    /// Puts the windows of `keys` into `batch`: those `named` by the message of shard `shard` in its keeping (or
    /// their span's), the others in their own. While a shard joins, a key that would go into its keeping is left
    /// for the end of the join.
    fn store_keys(
        &mut self,
        shard: u16,
        keys: &[Vec<u8>],
        named: &BTreeSet<Vec<u8>>,
        swapped: bool,
        batch: &mut Batch,
    ) {
        if keys.is_empty() {
            return;
        }
        let unknown: HashSet<&[u8]> = self.history.unknown_keys().collect();
        let epochs: HashMap<u16, String> = self
            .history
            .positions()
            .into_iter()
            .map(|(s, epoch, _)| (s, epoch))
            .collect();
        for key in keys {
            // Evicted from the absent keys by one before it, or held for a shard not resumed yet.
            if !self.stateful.contains(key) || self.held.contains(key) {
                continue;
            }
            let home = match self.homes.get(key) {
                Some(&home) if !named.contains(key) => home,
                _ => shard,
            };
            let mut window = StoredWindow::of(
                self.history.window(key),
                swapped || unknown.contains(key.as_slice()),
                home,
            );
            // Its span, if one is open, so that a resumed sink opens it from where it started: in the keeping of
            // the span's shard, whose stream its offsets are of and whose resume opens it again (a stale window
            // of another shard, whose stream wrote the key before its slot moved, is rebuilt as unknown anyway).
            if !window.known {
                if let Some(watch) = self.spans.get(key) {
                    window.shard = watch.shard;
                    window.span = Some(StoredSpan {
                        from: watch.from,
                        inexact: watch.inexact,
                    });
                    window.epoch = Some(watch.epoch.clone());
                }
            }
            // The epoch of its shard's stream (of its span's), which a resumed sink matches.
            if window.epoch.is_none() {
                window.epoch = epochs.get(&window.shard).cloned();
            }
            window.epoch = window.epoch.filter(|e| !e.is_empty());
            // In the keeping of a shard joining: stored when the join ends, with the shard's position.
            if self
                .shards
                .get(usize::from(window.shard))
                .is_some_and(|s| s.joining)
            {
                continue;
            }
            // A key that is not text cannot be stored.
            let Ok(text) = key_text(key) else {
                self.stateful.remove(key);
                self.homes.remove(key);
                self.stateful_until_read.remove(key);
                continue;
            };
            // Stateful only until a stale message for every window's key is known again, by any means (the
            // answer, a deletion, a join's snapshot; its span, if any, is closed with this message): it is stateful
            // no more and its row goes, in the same transaction. A restarted sink holds no window of it, as before
            // the stale message, whose `pattern` row marks its offset for every key a pattern matches.
            let answered = !swapped
                && !unknown.contains(key.as_slice())
                && self.history.window(key).is_none_or(|w| !w.stale());
            if answered && self.stateful_until_read.remove(key) {
                self.stateful.remove(key);
                self.homes.remove(key);
                self.absent.remove(key);
                batch.windows.insert(text.to_string(), None);
                continue;
            }
            if self.homes.get(key) != Some(&window.shard) {
                self.homes.insert(key.clone(), window.shard);
            }
            // A key known not to exist keeps its window, as absent, while it is among the last ones; the oldest
            // is stateful no more and its row goes, in the same transaction.
            if window.absent() {
                if let Some(evicted) = self.absent.insert(key) {
                    self.stateful.remove(&evicted);
                    self.homes.remove(&evicted);
                    if let Ok(evicted) = key_text(&evicted) {
                        batch.windows.insert(evicted.to_string(), None);
                    }
                }
            } else {
                self.absent.remove(key);
            }
            batch.windows.insert(text.to_string(), Some(window));
        }
    }

    /// What a command of the watched database means for the history's windows. One whose rows depend on what a
    /// key holds (`ZINCRBY`, `ZADD` with a flag but `CH`, `RENAME`/`COPY` of it) or that stores into a key makes
    /// those keys stateful; while the shard is blind, a key it depends on whose window is not known to be
    /// Redis's is forgotten first (the history assembler then asks its top-up instead of taking the commands
    /// since the resume for the whole key). A deletion makes a key's state known. A stateful key named has its
    /// window stored again.
    fn history_command(
        &mut self,
        shard: u16,
        name: &[u8],
        args: &[&[u8]],
        (start, end): (u64, u64),
    ) {
        // A command too short to name its key (from the network, which Redis would have refused) names none.
        let first = args.get(1..2).unwrap_or_default();
        // `opens`: the key whose rows a top-up may read (what it held decides them, or it holds a value whole).
        type Keys<'k, 'a> = &'k [&'a [u8]];
        let (depends, stores, opens): (Keys, Keys, Option<&[u8]>) = match name {
            b"zadd" if zadd_pairs_at(args).is_none() => (first, &[], first.first().copied()),
            b"zincrby" => (first, &[], first.first().copied()),
            b"rename" | b"renamenx" | b"copy" if args.len() >= 3 => {
                let stores = &args[2..3];
                if self.modes.history.allows(stores[0])
                    && (name != b"copy" || copies_into(args, self.modes.db))
                {
                    self.moved_in.push((end, stores[0].to_vec()));
                    (first, stores, Some(stores[0]))
                } else {
                    (first, stores, None)
                }
            }
            b"zunionstore" | b"zinterstore" | b"zdiffstore" | b"zrangestore"
            | b"geosearchstore" => (&[], first, first.first().copied()),
            b"restore" | b"restore-asking" => (&[], &[], first.first().copied()),
            b"sort" | b"sort_ro" | b"georadius" | b"georadiusbymember" => {
                (&[], &[], store_target(args))
            }
            _ => (&[], &[], None),
        };
        if opens.is_some() || !self.spans.is_empty() || !self.span_keys.is_empty() {
            self.note_span_event(shard, name, args, opens, false, (start, end));
        }
        let reading = self.shards.get(usize::from(shard));
        let blind = reading.is_some_and(|s| s.blind);
        // A key without a window is not known to be absent.
        let unread = reading.is_some_and(|s| s.blind || s.stale_all);
        for &k in depends.iter().chain(stores) {
            if !self.modes.history.allows(k) {
                continue;
            }
            if unread && !self.history_checked.contains(k) && depends.contains(&k) {
                self.forget_history(shard, k);
                self.check_history(k);
            }
            if !self.stateful.contains(k) {
                self.stateful.insert(k.to_vec());
            }
            if !self.stateful_until_read.is_empty() {
                self.stateful_until_read.remove(k);
            }
        }
        let named: &[&[u8]] = match name {
            b"del" | b"unlink" | b"getdel" | b"rename" | b"renamenx" | b"copy" => {
                args.get(1..).unwrap_or_default()
            }
            _ => first,
        };
        for &k in named.iter().chain(depends).chain(stores) {
            if self.since.get(k).is_some_and(|(s, _)| *s != shard) && !self.since_moved.contains(k)
            {
                self.since_moved.insert(k.to_vec());
            }
        }
        let deletes = matches!(name, b"del" | b"unlink" | b"getdel");
        if matches!(name, b"flushdb" | b"flushall" | b"swapdb") {
            self.restate_all = true;
        }
        if !unread && self.stateful.is_empty() {
            // The collector's keys: nothing stored, nothing to check (the common case, a command per sample).
            return;
        }
        for &k in named {
            if unread && deletes && self.modes.history.allows(k) {
                self.check_history(k);
            }
            // On the stream of a shard that joined afresh, whose snapshot said what the key holds (its slot is that
            // shard's now), the window held for another shard is moot.
            if !blind && self.held.contains(k) {
                self.release(k);
            }
            if self.stateful.contains(k) {
                self.restated.insert(k.to_vec());
            }
        }
    }

    /// The sink's own reading of commands (a segment of the stream, or a snapshot's): history rows from plain
    /// `ZADD`s and every `XADD`, set operations, and the keys a snapshot names. A stream's reading that cuts at a
    /// `SWAPDB` of the watched database (whatever database is selected: its arguments name the two) stops there
    /// and returns where that `SWAPDB` starts and ends, the commands after it not read
    /// ([`Changes::apply_around_swap`]).
    fn read_commands(
        &mut self,
        shard: u16,
        start: u64,
        bytes: &[u8],
        batch: &mut Batch,
        reading: Reading,
    ) -> Option<(u64, u64)> {
        let index = usize::from(shard);
        let mut selected = self.shards[index].selected_db;
        let watched = self.modes.db;
        let history = self.follows_history();
        let snapshot = reading == Reading::Snapshot;
        let cut_at_swap = reading == Reading::Stream { cut_at_swap: true };
        let mut swap = None;
        let mut named = Vec::new();
        let mut on_command = |command: &Command<'_>| {
            let args = &command.args;
            let Some(name) = args.first().filter(|_| swap.is_none()) else {
                return;
            };
            // Longer than any command's name (`GEORADIUSBYMEMBER_RO`, 20 bytes).
            let mut lower = [0u8; 32];
            let Some(name) = lower.get_mut(..name.len()).map(|buf| {
                buf.copy_from_slice(name);
                buf.make_ascii_lowercase();
                &*buf
            }) else {
                return;
            };
            if cut_at_swap && name == b"swapdb" && swaps(args, watched) {
                swap = Some((command.start, command.end));
                return;
            }
            if history && !snapshot && name == b"multi" {
                self.multis.push((command.start, command.end));
                return;
            }
            if name == b"select" && !snapshot {
                selected = args
                    .get(1)
                    .and_then(|db| std::str::from_utf8(db).ok()?.parse().ok());
                return;
            }
            if !snapshot && selected.is_some_and(|db| db != watched) {
                // `COPY src dst DB <watched>`: a key copied into the watched database.
                let copies_in = name == b"copy" && copies_from_another_db(args, watched);
                if name == b"move" || name == b"swapdb" || name == b"flushall" || copies_in {
                    if history {
                        // A key moved or copied into the watched database holds a value a top-up reads.
                        let opens = if copies_in {
                            args.get(2).copied()
                        } else {
                            let into = name == b"move"
                                && args
                                    .get(2)
                                    .and_then(|d| std::str::from_utf8(d).ok()?.parse().ok())
                                    == Some(watched);
                            args.get(1).copied().filter(|_| into)
                        };
                        self.note_span_event(
                            shard,
                            name,
                            args,
                            opens,
                            true,
                            (command.start, command.end),
                        );
                    }
                    self.read_set_command(shard, name, args, batch);
                    // What they did to the watched database's history keys, the history assembler tells.
                    self.restate_all = true;
                }
                return;
            }
            if snapshot && name == b"del" {
                named.extend(args[1..].iter().map(|k| k.to_vec()));
            }
            if !snapshot && history {
                self.history_command(shard, name, args, (command.start, command.end));
            }
            match name {
                b"zadd" => self.read_zadd(args, batch),
                b"xadd" => self.read_xadd(args, batch),
                _ if !snapshot => self.read_set_command(shard, name, args, batch),
                _ => {}
            }
        };
        // Segments and snapshots hold whole commands; an error loses the rest, which the assemblers report (an
        // error past a `SWAPDB` the reading stopped at is the reading of the part after it).
        if CommandReader::new(start)
            .push(bytes, &mut on_command)
            .is_err()
            && !snapshot
            && swap.is_none()
        {
            self.unreadable = true;
        }
        if !snapshot {
            self.shards[index].selected_db = selected;
        }
        // A key a snapshot names is answered and verified; a mirrored one is written again from what the
        // snapshot left of it, even if it has no window (gone, or a set).
        let unread = self.shards.iter().any(|s| s.blind || s.stale_all);
        for key in named {
            self.asked.remove(&key);
            self.since.remove(&key);
            self.since_moved.remove(&key);
            self.unverified.remove(&key);
            // A snapshot, of any shard, says what the key holds: a window held for a shard not resumed yet is moot.
            if self.held.contains(&key) {
                self.release(&key);
            }
            if self.modes.history.allows(&key) {
                if unread {
                    self.check_history(&key);
                }
                if self.stateful.contains(&key) {
                    self.restated.insert(key.clone());
                }
            }
            if self.modes.mirror.allows(&key) {
                self.mirror.observer_mut().touch(&key);
                if !self.relists.is_empty() {
                    self.relist_read(&key);
                }
                if unread {
                    self.check_mirror(key);
                }
            }
        }
        swap
    }

    /// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member …`: the pairs of a plain `ZADD` (or with `CH`) are
    /// what Redis holds after it; with any other flag the history assembler tells.
    fn read_zadd(&mut self, args: &[&[u8]], batch: &mut Batch) {
        let Some(key) = args.get(1) else {
            return;
        };
        if !self.modes.history.allows(key) {
            return;
        }
        let Some(at) = zadd_pairs_at(args) else {
            return;
        };
        for pair in args[at..].chunks_exact(2) {
            let Some(score) = std::str::from_utf8(pair[0])
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
            else {
                continue;
            };
            if let Err(why) = batch.push_zset(key, score, pair[1]) {
                self.refused(why, key);
            }
        }
    }

    /// `XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] id field value …`: Redis propagates it
    /// with the id it chose.
    fn read_xadd(&mut self, args: &[&[u8]], batch: &mut Batch) {
        let Some(key) = args.get(1) else {
            return;
        };
        if !self.modes.history.allows(key) {
            return;
        }
        let mut at = 2;
        loop {
            let Some(arg) = args.get(at) else {
                return;
            };
            if arg.eq_ignore_ascii_case(b"nomkstream") {
                at += 1;
            } else if arg.eq_ignore_ascii_case(b"maxlen") || arg.eq_ignore_ascii_case(b"minid") {
                at += 1;
                if args.get(at).is_some_and(|a| *a == b"=" || *a == b"~") {
                    at += 1;
                }
                at += 1;
            } else if arg.eq_ignore_ascii_case(b"limit") {
                at += 2;
            } else {
                break;
            }
        }
        let Some(id) = args.get(at) else {
            return;
        };
        let fields = &args[at + 1..];
        if let Err(why) = batch.push_stream(key, id, fields) {
            self.refused(why, key);
        }
    }

    /// The set operations of one command of the watched database, on shard `shard`'s stream.
    fn read_set_command(&mut self, shard: u16, name: &[u8], args: &[&[u8]], batch: &mut Batch) {
        let mirrored = |key: &[u8]| self.modes.mirror.allows(key);
        let text = |key: &[u8]| key_text(key).ok().map(str::to_string);
        let members = |list: &[&[u8]]| list.iter().map(|m| value_text(m)).collect::<Vec<_>>();
        // Since a `SWAPDB` or a stale message for every window dropped the shard's sets, until the relay's listing of
        // them is applied ([`Changes::listed`]) or the shard joins afresh, any key may be a set the sink has no row
        // of: one it writes members to is not known to have held only those. That includes a key a command deleted
        // since: a (bounded) record of such keys would spare only sets deleted and written again before the listing.
        let unlisted = matches!(self.relists.get(&shard), Some(Relist::Wanted { .. }));
        let starts_empty = |key: &[u8]| !unlisted && !self.unknown_sets.contains(key);
        let key = args.get(1).copied().unwrap_or_default();
        let mut ops = Vec::new();
        match name {
            b"sadd" | b"srem" if mirrored(key) && args.len() > 2 => {
                if let Some(k) = text(key) {
                    let list = members(&args[2..]);
                    ops.push(match name {
                        b"sadd" => SetOp::Add(k, list, starts_empty(key)),
                        _ => SetOp::Remove(k, list),
                    });
                }
            }
            b"smove" if args.len() == 4 => {
                let member = members(&args[3..4]);
                if let Some(src) = text(args[1]).filter(|_| mirrored(args[1])) {
                    ops.push(SetOp::Remove(src, member.clone()));
                }
                if let Some(dst) = text(args[2]).filter(|_| mirrored(args[2])) {
                    ops.push(SetOp::Add(dst, member, starts_empty(args[2])));
                }
            }
            b"del" | b"unlink" | b"getdel" => {
                for key in &args[1..] {
                    if let Some(k) = text(key).filter(|_| mirrored(key)) {
                        ops.push(SetOp::Delete(k));
                    }
                }
            }
            b"rename" | b"renamenx" if args.len() == 3 => {
                let (src, dst) = (args[1], args[2]);
                match (
                    text(src).filter(|_| mirrored(src)),
                    text(dst).filter(|_| mirrored(dst)),
                ) {
                    (Some(s), Some(d)) => ops.push(SetOp::Rename(s, d)),
                    (Some(s), None) => ops.push(SetOp::Delete(s)),
                    (None, Some(d)) => {
                        ops.push(SetOp::Delete(d.clone()));
                        ops.push(SetOp::Inexact(d));
                    }
                    (None, None) => {}
                }
            }
            b"move" => {
                if let Some(k) = text(key).filter(|_| mirrored(key)) {
                    // Moved out of the watched database, or (from another one) into it, replacing nothing.
                    ops.push(SetOp::Inexact(k.clone()));
                    ops.push(SetOp::Delete(k));
                }
            }
            b"flushdb" | b"flushall" => ops.push(SetOp::DeleteAll),
            // The watched database's sets are another database's now: the relay lists them ([`Changes::listed`]).
            // A `SWAPDB` of two other databases changes none of them.
            b"swapdb" if swaps(args, self.modes.db) => ops.push(SetOp::DeleteAll),
            b"spop" | b"restore" | b"restore-asking" | b"copy" => {
                let target = if name == b"copy" {
                    args.get(2).copied()
                } else {
                    Some(key)
                };
                if let Some(k) = target.and_then(|t| text(t).filter(|_| mirrored(t))) {
                    ops.push(SetOp::Inexact(k));
                }
            }
            b"sinterstore" | b"sunionstore" | b"sdiffstore" | b"sort" | b"sort_ro" => {
                let dst = match name {
                    b"sort" | b"sort_ro" => args
                        .iter()
                        .position(|a| a.eq_ignore_ascii_case(b"store"))
                        .and_then(|i| args.get(i + 1).copied()),
                    _ => Some(key),
                };
                if let Some(k) = dst.and_then(|d| text(d).filter(|_| mirrored(d))) {
                    ops.push(SetOp::Delete(k.clone()));
                    if name != b"sort" && name != b"sort_ro" {
                        ops.push(SetOp::Inexact(k));
                    }
                }
            }
            _ => {}
        }
        let listing = self
            .relists
            .values()
            .any(|relist| matches!(relist, Relist::Wanted { .. }));
        for op in ops {
            if listing {
                self.set_written(&op);
            }
            match &op {
                SetOp::Delete(k) => {
                    self.unknown_sets.remove(k.as_bytes());
                }
                SetOp::Rename(s, _) => {
                    self.unknown_sets.remove(s.as_bytes());
                }
                SetOp::DeleteAll => self.unknown_sets.clear(),
                _ => {}
            }
            batch.push_set_op(op);
        }
    }

    /// Notes the keys `op` writes while a listing is wanted ([`Changes::sets_written`]).
    fn set_written(&mut self, op: &SetOp) {
        let keys: Vec<&String> = match op {
            SetOp::Add(k, ..) | SetOp::Remove(k, _) | SetOp::Delete(k) | SetOp::Inexact(k) => {
                vec![k]
            }
            SetOp::Rename(s, d) => vec![s, d],
            SetOp::Unreadable(_) | SetOp::KeepSets(_) | SetOp::DeleteAll | SetOp::AllInexact => {
                Vec::new()
            }
        };
        if let Some(written) = &mut self.sets_written {
            written.extend(keys.into_iter().map(|k| k.as_bytes().to_vec()));
            if written.len() > MAX_SETS_WRITTEN {
                tracing::warn!(
                    "more than {MAX_SETS_WRITTEN} sets written while the mirror's keys are listed: the set rows of \
                     keys the listing does not name are kept"
                );
                self.sets_written = None;
            }
        }
    }

    /// Mirror states of the keys whose windows changed in the last message.
    fn write_mirror(&mut self, kind: Kind, batch: &mut Batch) {
        let window = self.modes.window;
        for key in std::mem::take(&mut self.mirror.observer_mut().keys) {
            let Ok(text) = key_text(&key) else {
                self.refused(Refusal::KeyNotText, &key);
                continue;
            };
            let unchecked = kind != Kind::Snapshot
                && !self.checked.contains(&key)
                && self.mirror.window(&key).is_some_and(|w| {
                    !w.stale()
                        && self
                            .shards
                            .get(usize::from(w.shard()))
                            .is_some_and(|s| s.blind || s.stale_all)
                });
            if unchecked {
                // Made by commands since a blind resume: the key may hold more than they wrote. Read it first.
                self.mirror.forget(&key);
                self.mirror.observer_mut().keys.remove(&key);
                continue;
            }
            let state = match self.mirror.window(&key) {
                Some(w) if w.stale() => None,
                Some(w) => {
                    let whole = w.complete();
                    let trusted = whole || w.len() >= window;
                    match w.body() {
                        Body::String(s) => Some(MirrorState::String {
                            value: value_text(s.value()),
                        }),
                        Body::Hash(h) if trusted => Some(MirrorState::Hash {
                            fields: h
                                .newest_first()
                                .map(|(f, v, _)| (value_text(f), value_text(v)))
                                .collect(),
                            complete: whole,
                        }),
                        Body::List(l) if trusted => {
                            let mut items: Vec<String> = l.newest_first().map(value_text).collect();
                            items.reverse();
                            Some(MirrorState::List {
                                items,
                                complete: whole,
                            })
                        }
                        Body::Hash(_) | Body::List(_) => None,
                        // Sorted sets and streams are history's: a mirror pattern that matches one keeps no rows.
                        Body::Zset(_) | Body::Stream(_) => continue,
                    }
                }
                // Gone by a command (or by a snapshot, which is authoritative), not by a join clearing windows.
                None if matches!(kind, Kind::Commands | Kind::Snapshot) => {
                    if self.shards.iter().any(|s| s.blind || s.stale_all) {
                        // Gone, as Redis says: a window made for it again holds all of it.
                        self.check_mirror(key.clone());
                    }
                    if kind == Kind::Snapshot {
                        // A snapshot reads no set's members: a key it names without a window is gone or a set.
                        if let Ok(k) = key_text(&key) {
                            batch.push_set_op(SetOp::Inexact(k.to_string()));
                        }
                        self.unknown_sets.insert(key.clone());
                    }
                    Some(MirrorState::Deleted)
                }
                None => None,
            };
            match state {
                Some(state) => {
                    batch.set_mirror(text.to_string(), state);
                }
                // Not known exactly: its rows stay as they are until the relay reads the key again.
                None => {
                    if kind != Kind::Hello {
                        self.topups.insert(key);
                    }
                }
            }
        }
    }

    fn refused(&mut self, why: Refusal, key: &[u8]) {
        self.refusals
            .push((why, String::from_utf8_lossy(key).into_owned()));
    }
}

/// Where the score/member pairs of `ZADD key [CH] score member …` start; `None` for a `ZADD` with any other flag
/// (`NX`, `XX`, `GT`, `LT`, `INCR`), whose rows depend on what the key holds.
fn zadd_pairs_at(args: &[&[u8]]) -> Option<usize> {
    let mut at = 2;
    while let Some(flag) = args.get(at) {
        if flag.eq_ignore_ascii_case(b"ch") {
            at += 1;
        } else if flag.first().is_some_and(|b| b.is_ascii_alphabetic())
            && !flag.eq_ignore_ascii_case(b"inf")
            && !flag.eq_ignore_ascii_case(b"infinity")
            && !flag.eq_ignore_ascii_case(b"nan")
        {
            return None;
        } else {
            break;
        }
    }
    Some(at)
}

/// Whether `SWAPDB`'s arguments swap database `db` with another (either, when they cannot be read). Its indexes are
/// read as the assembler's `SWAPDB` reads them (Redis's `string2ll`: no `+1`, no spaces).
fn swaps(args: &[&[u8]], db: u32) -> bool {
    let index = |i: usize| args.get(i).and_then(|d| replicast_assembler::db_index(d));
    match (index(1), index(2)) {
        (Some(a), Some(b)) => a != b && (a == db || b == db),
        _ => true,
    }
}

/// Whether `COPY src dst [DB db] [REPLACE]` writes `dst` in the watched database `db` (no `DB`, or `DB` naming it).
fn copies_into(args: &[&[u8]], db: u32) -> bool {
    let mut rest = args.iter().skip(3);
    while let Some(arg) = rest.next() {
        if arg.eq_ignore_ascii_case(b"db") {
            return rest
                .next()
                .and_then(|d| std::str::from_utf8(d).ok()?.parse::<u32>().ok())
                == Some(db);
        }
    }
    true
}

/// The epoch of shard `shard`'s stream as the history assembler follows it (empty before its hello).
fn history_epoch(history: &StreamAssembler<Entered>, shard: u16) -> String {
    history
        .positions()
        .into_iter()
        .find(|(s, _, _)| *s == shard)
        .map(|(_, epoch, _)| epoch)
        .unwrap_or_default()
}

/// Whether `COPY src dst [DB db] [REPLACE]`, sent while another database is selected, writes `dst` in the watched
/// database `db` (its `DB` names it).
fn copies_from_another_db(args: &[&[u8]], db: u32) -> bool {
    args.len() >= 5
        && args.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"db"))
        && copies_into(args, db)
}

/// The members of `ZADD key [flags] score member …`, with any flags.
fn zadd_members<'a>(args: &[&'a [u8]]) -> Vec<&'a [u8]> {
    let mut at = 2;
    while args.get(at).is_some_and(|flag| {
        flag.first().is_some_and(|b| b.is_ascii_alphabetic())
            && !flag.eq_ignore_ascii_case(b"inf")
            && !flag.eq_ignore_ascii_case(b"infinity")
            && !flag.eq_ignore_ascii_case(b"nan")
    }) {
        at += 1;
    }
    args.get(at..)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|pair| pair[1])
        .collect()
}

/// The destination of `SORT … STORE dst` or `GEORADIUS… STORE|STOREDIST dst`.
fn store_target<'a>(args: &[&'a [u8]]) -> Option<&'a [u8]> {
    let at = args
        .iter()
        .rposition(|a| a.eq_ignore_ascii_case(b"store") || a.eq_ignore_ascii_case(b"storedist"))?;
    args.get(at + 1).copied()
}

/// Which kind of message was applied, for what a window's absence means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hello,
    Commands,
    Snapshot,
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SWAPDB`'s indexes are read as Redis (and the assembler) reads them: `+1`, ` 1` or `-1` are no database, so
    /// the watched one may be either.
    #[test]
    fn swaps_reads_database_indexes_as_redis_does() {
        assert!(swaps(&[b"SWAPDB", b"0", b"1"], 0));
        assert!(!swaps(&[b"SWAPDB", b"1", b"2"], 0));
        assert!(!swaps(&[b"SWAPDB", b"0", b"0"], 0));
        assert!(swaps(&[b"SWAPDB", b"+1", b"2"], 0));
        assert!(swaps(&[b"SWAPDB", b"1", b" 2"], 0));
        assert!(swaps(&[b"SWAPDB", b"-1", b"2"], 0));
        assert!(swaps(&[b"SWAPDB", b"1"], 0));
    }

    /// The instant the tests ask their top-ups at, unless one says otherwise: time does not pass for them, so no key
    /// is asked again for having waited ([`Changes::take_topups`]).
    fn now() -> Instant {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *START.get_or_init(Instant::now)
    }

    /// The keys of top-up requests, in order.
    fn keys(asks: Vec<TopupAsk>) -> Vec<Vec<u8>> {
        asks.into_iter().flat_map(|ask| ask.keys).collect()
    }

    /// The pending top-up of `key` asked, and answered empty where the stream stands now: that offset.
    fn answer_empty(changes: &mut Changes, batch: &mut Batch, key: &[u8]) -> u64 {
        assert_eq!(keys(changes.take_topups(now())), [key.to_vec()]);
        answer_now(changes, batch, key, &[])
    }

    /// A top-up of `key` answered with `members` where the stream stands now: that offset.
    fn answer_now(
        changes: &mut Changes,
        batch: &mut Batch,
        key: &[u8],
        members: &[(&str, &[u8])],
    ) -> u64 {
        let at = changes.stream_positions()[0].2;
        changes.apply(&answer(at, key, members), batch).unwrap();
        at
    }

    /// The span of shard 0's `key` in epoch `e1`, from `from` to `to`.
    fn span(key: &str, from: u64, to: u64) -> InexactSpan {
        InexactSpan {
            epoch: "e1".to_string(),
            key: key.to_string(),
            shard: 0,
            from_offset: from,
            to_offset: to,
            pattern: false,
        }
    }

    /// The span of `perf:a` in a cluster, of shard `shard` (in epoch `e0` or `e1`, as [`two_shards`] joins them),
    /// from `from` to `to`.
    fn cluster_span(shard: u16, from: u64, to: u64) -> InexactSpan {
        InexactSpan {
            epoch: format!("e{shard}"),
            shard,
            ..span("perf:a", from, to)
        }
    }

    fn changes() -> Changes {
        let modes = Modes {
            history: Patterns::new(&["perf:*".to_string()]),
            mirror: Patterns::new(&[]),
            db: 0,
            window: 10,
        };
        Changes::new(modes, Vec::new(), Vec::new())
    }

    /// `message` as shard `shard`'s stream sends it, in a cluster.
    fn on(shard: u16, message: Vec<u8>) -> Vec<u8> {
        wire::encode_shard(shard, &message)
    }

    /// Where shard `shard`'s stream stands.
    fn position(changes: &Changes, shard: u16) -> u64 {
        changes
            .stream_positions()
            .into_iter()
            .find(|(s, _, _)| *s == shard)
            .map(|(_, _, offset)| offset)
            .unwrap()
    }

    /// A cluster of two shards, each joined (shard 0 in epoch `e0`, shard 1 in `e1`) with an empty snapshot at
    /// offset 0, and the batch that read it.
    fn two_shards() -> (Changes, Batch) {
        two_shards_of(changes())
    }

    /// The same of `changes`, a new sink.
    fn two_shards_of(mut changes: Changes) -> (Changes, Batch) {
        let mut batch = Batch::default();
        for (shard, epoch) in [(0, "e0"), (1, "e1")] {
            changes
                .apply(&on(shard, wire::encode_hello(epoch, 0)), &mut batch)
                .unwrap();
            changes
                .apply(&on(shard, wire::encode_snapshot(0, b"")), &mut batch)
                .unwrap();
        }
        (changes, batch)
    }

    /// `perf:a`'s top-up answered by shard `shard` with `members`, where its stream stands, after its past writes
    /// covering the key from offset 0 and listing none.
    fn answered_by(
        changes: &mut Changes,
        batch: &mut Batch,
        shard: u16,
        members: &[(&str, &[u8])],
    ) {
        let at = position(changes, shard);
        let listed = past(at, b"perf:a", 0, &[]);
        changes.apply(&on(shard, listed), batch).unwrap();
        changes
            .apply(&on(shard, answer(at, b"perf:a", members)), batch)
            .unwrap();
    }

    /// The scores of the history rows a batch holds, in order.
    fn scores(batch: &Batch) -> Vec<f64> {
        batch.zsets.iter().map(|r| r.score).collect()
    }

    fn commands(start: u64, list: &[&[&[u8]]]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for args in list {
            crate::link_io::push_command(&mut bytes, args);
        }
        wire::encode_commands(start, &bytes)
    }

    /// The one top-up asked: of `key`, from `since`.
    fn one_ask(since: Option<u64>, key: &[u8]) -> [TopupAsk; 1] {
        [TopupAsk {
            since,
            keys: vec![key.to_vec()],
        }]
    }

    /// The windows a batch stores with its position, as a restarted sink reads them back.
    fn stored_windows(batch: &Batch) -> Vec<(Vec<u8>, StoredWindow)> {
        batch
            .windows
            .iter()
            .filter_map(|(k, w)| Some((k.as_bytes().to_vec(), w.clone()?)))
            .collect()
    }

    /// A sink resumed at `(epoch, offset)` with the windows `stored`, the relay's hello read into a new batch.
    fn resumed_at(
        stored: Vec<(Vec<u8>, StoredWindow)>,
        epoch: &str,
        offset: u64,
    ) -> (Changes, Batch) {
        let mut resumed = Changes::new(changes().modes, Vec::new(), stored);
        resumed.resuming(&[(epoch.to_string(), offset)]);
        let mut batch = Batch::default();
        resumed
            .apply(&wire::encode_hello(epoch, offset), &mut batch)
            .unwrap();
        (resumed, batch)
    }

    /// A sink restarted with the windows `stored` at `positions`, shards 0 and 1 (epochs `e0` and `e1`) resuming at
    /// the offsets `at`, their hellos read into a new batch.
    fn resumed_on_two_shards(
        stored: Vec<(Vec<u8>, StoredWindow)>,
        positions: &[(String, u64)],
        at: [u64; 2],
    ) -> (Changes, Batch) {
        let mut resumed = Changes::new(changes().modes, Vec::new(), stored);
        resumed.resuming(positions);
        let mut batch = Batch::default();
        for (shard, epoch, offset) in [(0, "e0", at[0]), (1, "e1", at[1])] {
            resumed
                .apply(&on(shard, wire::encode_hello(epoch, offset)), &mut batch)
                .unwrap();
        }
        (resumed, batch)
    }

    /// A sink that followed `perf:a` (a member at 1000, incremented by 5) and the window it stored with its
    /// batch's position; then one resumed there, with that window or without any, given `ZINCRBY perf:a 7 m`.
    fn resumed_after_an_increment(keep_window: bool) -> (Batch, Changes) {
        let mut first = changes();
        let mut batch = Batch::default();
        first
            .apply(&wire::encode_hello("e1", 0), &mut batch)
            .unwrap();
        first
            .apply(&wire::encode_snapshot(0, b""), &mut batch)
            .unwrap();
        let written = commands(
            0,
            &[
                &[b"ZADD", b"perf:a", b"1000", b"m"],
                &[b"ZINCRBY", b"perf:a", b"5", b"m"],
            ],
        );
        first.apply(&written, &mut batch).unwrap();
        let scores = scores(&batch);
        assert_eq!(scores, [1000.0, 1005.0]);
        let (epoch, offset) = batch.positions[0].clone();
        let stored = if keep_window {
            stored_windows(&batch)
        } else {
            Vec::new()
        };
        assert_eq!(stored.len(), usize::from(keep_window), "perf:a is stateful");

        let (mut second, mut batch) = resumed_at(stored, &epoch, offset);
        let more = commands(offset, &[&[b"ZINCRBY", b"perf:a", b"7", b"m"]]);
        second.apply(&more, &mut batch).unwrap();
        (batch, second)
    }

    #[test]
    fn a_resumed_sink_goes_on_from_the_windows_stored_with_the_position() {
        let (batch, mut resumed) = resumed_after_an_increment(true);
        let scores = scores(&batch);
        assert_eq!(scores, [1012.0], "1000 + 5 + 7, not 7");
        assert!(keys(resumed.take_topups(now())).is_empty());
    }

    /// The `(key, id)` of the stream rows a batch holds, in order.
    fn entries(batch: &Batch) -> Vec<(String, String)> {
        batch
            .streams
            .iter()
            .map(|r| (r.key.clone(), r.id.clone()))
            .collect()
    }

    /// A stream renamed or copied into a history key has a row for each entry under its new key, read from the
    /// window moved with it; one longer than the window is read again by a top-up, whose answer brings the rows.
    #[test]
    fn a_stream_renamed_or_copied_into_a_history_key_has_its_entries_rows() {
        let mut changes = changes();
        let mut batch = Batch::default();
        let offset = joined_and_read(
            &mut changes,
            &mut batch,
            &[
                &[b"XADD", b"perf:s", b"1000-0", b"f", b"a"],
                &[b"XADD", b"perf:s", b"1000-1", b"f", b"b"],
            ],
        );
        let mut batch = Batch::default();
        let moved = commands(
            offset,
            &[
                &[b"RENAME", b"perf:s", b"perf:t"],
                &[b"COPY", b"perf:t", b"perf:u"],
                &[b"COPY", b"perf:t", b"perf:v", b"DB", b"1"],
            ],
        );
        changes.apply(&moved, &mut batch).unwrap();
        let row = |k: &str, id: &str| (k.to_string(), id.to_string());
        assert_eq!(
            entries(&batch),
            [
                row("perf:t", "1000-0"),
                row("perf:t", "1000-1"),
                row("perf:u", "1000-0"),
                row("perf:u", "1000-1"),
            ],
            "perf:v is in another database"
        );
        assert!(keys(changes.take_topups(now())).is_empty());

        // Longer than the history window (16): the window does not hold the whole stream.
        let mut batch = Batch::default();
        let offset = changes.stream_positions()[0].2;
        let ids: Vec<String> = (2..20).map(|i| format!("1000-{i}")).collect();
        let mut list: Vec<Vec<&[u8]>> = ids
            .iter()
            .map(|id| vec![&b"XADD"[..], b"perf:t", id.as_bytes(), b"f", b"c"])
            .collect();
        list.push(vec![b"RENAME", b"perf:t", b"perf:w"]);
        let list: Vec<&[&[u8]]> = list.iter().map(Vec::as_slice).collect();
        changes.apply(&commands(offset, &list), &mut batch).unwrap();
        assert!(entries(&batch).iter().all(|(k, _)| k == "perf:t"));
        assert_eq!(keys(changes.take_topups(now())), [b"perf:w".to_vec()]);
        let mut answer = Vec::new();
        crate::link_io::push_command(&mut answer, &[b"DEL", b"perf:w"]);
        for i in 0..20 {
            let id = format!("1000-{i}");
            crate::link_io::push_command(
                &mut answer,
                &[b"XADD", b"perf:w", id.as_bytes(), b"f", b"c"],
            );
        }
        let mut batch = Batch::default();
        let offset = changes.stream_positions()[0].2;
        changes
            .apply(&wire::encode_snapshot(offset, &answer), &mut batch)
            .unwrap();
        assert_eq!(entries(&batch).len(), 20);
        assert!(entries(&batch).iter().all(|(k, _)| k == "perf:w"));
    }

    /// A stream longer than its window renamed into a history key (its rows come from a top-up: a span opens at the
    /// `RENAME`) and trimmed before the answer (an `XADD … MAXLEN`: the span is inexact). The relay's past message,
    /// covering the span, lists every entry the `RENAME` moved in and the trimming `XADD`'s, with their ids and
    /// fields: each has its row under the new key once (the answer's too), and the span is exact; covered only from
    /// the `XADD`, the span is recorded up to there.
    #[test]
    fn past_entries_of_a_stream_renamed_and_trimmed_store_each_entry_once_and_close_its_span() {
        for covered in [false, true] {
            let mut changes = changes();
            let mut batch = Batch::default();
            let ids: Vec<String> = (0..20).map(|i| format!("1000-{i}")).collect();
            let mut list: Vec<Vec<&[u8]>> = ids
                .iter()
                .map(|id| vec![&b"XADD"[..], b"perf:t", id.as_bytes(), b"f", id.as_bytes()])
                .collect();
            list.push(vec![b"RENAME", b"perf:t", b"perf:w"]);
            let list: Vec<&[&[u8]]> = list.iter().map(Vec::as_slice).collect();
            let renamed = joined_and_read(&mut changes, &mut batch, &list);
            let asks = changes.take_topups(now());
            let since = asks[0].since.expect("asked with since");
            assert_eq!(asks, one_ask(Some(since), b"perf:w"));
            let trim = commands(
                renamed,
                &[&[b"XADD", b"perf:w", b"MAXLEN", b"5", b"2000-0", b"f", b"new"]],
            );
            changes.apply(&trim, &mut batch).unwrap();
            let at = changes.stream_positions()[0].2;
            let fields: Vec<[&[u8]; 2]> = ids.iter().map(|id| [b"f", id.as_bytes()]).collect();
            let mut items: Vec<wire::PastItem<'_>> = fields
                .iter()
                .zip(0..)
                .map(|(fields, seq)| wire::PastItem {
                    offset: renamed,
                    value: wire::PastValue::Entry {
                        ms: 1000,
                        seq,
                        fields: fields.to_vec(),
                    },
                })
                .collect();
            items.push(wire::PastItem {
                offset: at,
                value: wire::PastValue::Entry {
                    ms: 2000,
                    seq: 0,
                    fields: vec![b"f", b"new"],
                },
            });
            // Covered from before the span, or only from the trimming `XADD` (its entries listed alone).
            let covered_from = if covered { 0 } else { renamed };
            if !covered {
                items.drain(..20);
            }
            let past = wire::encode_past(&wire::Past {
                offset: at,
                keys: vec![wire::PastKey {
                    key: b"perf:w",
                    covered_from,
                    items,
                }],
            });
            changes.apply(&past, &mut batch).unwrap();
            let mut answer = Vec::new();
            crate::link_io::push_command(&mut answer, &[b"DEL", b"perf:w"]);
            for id in &ids[16..] {
                crate::link_io::push_command(
                    &mut answer,
                    &[b"XADD", b"perf:w", id.as_bytes(), b"f", id.as_bytes()],
                );
            }
            crate::link_io::push_command(
                &mut answer,
                &[b"XADD", b"perf:w", b"2000-0", b"f", b"new"],
            );
            changes
                .apply(&wire::encode_snapshot(at, &answer), &mut batch)
                .unwrap();
            let stored: Vec<(String, String)> = entries(&batch)
                .into_iter()
                .filter(|(k, _)| k == "perf:w")
                .collect();
            let mut expected: Vec<String> = match covered {
                true => ids.clone(),
                false => ids[16..].to_vec(),
            };
            expected.push("2000-0".to_string());
            let mut ids_stored: Vec<String> = stored.into_iter().map(|(_, id)| id).collect();
            ids_stored.sort_by_key(|id| {
                let (ms, seq) = id.split_once('-').unwrap();
                (ms.parse::<u64>().unwrap(), seq.parse::<u64>().unwrap())
            });
            assert_eq!(ids_stored, expected, "each entry once (covered: {covered})");
            let fields: Vec<&[u8]> = batch
                .streams
                .iter()
                .filter(|r| r.key == "perf:w" && r.id == "1000-3")
                .map(|r| r.fields.as_slice())
                .collect();
            if covered {
                assert_eq!(fields, [&br#"{"f":"1000-3"}"#[..]], "its fields");
            }
            let spans = match covered {
                true => Vec::new(),
                false => vec![span("perf:w", since, renamed)],
            };
            assert_eq!(batch.inexact_spans, spans, "covered: {covered}");
        }
    }

    /// A sorted set renamed into a history key whose window does not hold all its members is read again by a
    /// top-up: the window's members alone would leave the others without a row under the new key.
    #[test]
    fn a_sorted_set_longer_than_its_window_renamed_is_read_again() {
        let mut changes = changes();
        let mut batch = Batch::default();
        let scores: Vec<String> = (0..20).map(|i| format!("{}", 1000 + i)).collect();
        let mut list: Vec<Vec<&[u8]>> = scores
            .iter()
            .map(|s| vec![&b"ZADD"[..], b"perf:a", s.as_bytes(), s.as_bytes()])
            .collect();
        list.push(vec![b"RENAME", b"perf:a", b"perf:b"]);
        let list: Vec<&[&[u8]]> = list.iter().map(Vec::as_slice).collect();
        joined_and_read(&mut changes, &mut batch, &list);
        assert_eq!(keys(changes.take_topups(now())), [b"perf:b".to_vec()]);
    }

    /// What a `RENAME` or `COPY` moved into a history key is read just past it, not at the end of the relay
    /// message (a `MULTI`/`EXEC`): a command after it in the same message that trims, deletes or moves on the key
    /// takes nothing from its rows.
    #[test]
    fn a_stream_moved_in_is_read_before_the_rest_of_its_message_changes_it() {
        let mut changes = changes();
        let mut batch = Batch::default();
        let offset = joined_and_read(
            &mut changes,
            &mut batch,
            &[
                &[b"XADD", b"perf:s", b"1000-0", b"f", b"a"],
                &[b"XADD", b"perf:s", b"1000-1", b"f", b"b"],
                &[b"XADD", b"perf:s", b"1000-2", b"f", b"c"],
            ],
        );
        let mut batch = Batch::default();
        let list: &[&[&[u8]]] = &[
            &[b"RENAME", b"perf:s", b"perf:t"],
            &[b"XTRIM", b"perf:t", b"MAXLEN", b"1"],
            &[b"COPY", b"perf:t", b"perf:u"],
            &[b"XDEL", b"perf:u", b"1000-2"],
            &[b"RENAME", b"perf:t", b"perf:v"],
            &[b"DEL", b"perf:v"],
        ];
        let mut bytes = Vec::new();
        for args in list {
            crate::link_io::push_command(&mut bytes, args);
        }
        changes
            .apply(&wire::encode_commands(offset, &bytes), &mut batch)
            .unwrap();
        let row = |k: &str, id: &str| (k.to_string(), id.to_string());
        assert_eq!(
            entries(&batch),
            [
                row("perf:t", "1000-0"),
                row("perf:t", "1000-1"),
                row("perf:t", "1000-2"),
                row("perf:u", "1000-2"),
                row("perf:v", "1000-2"),
            ]
        );
        assert!(keys(changes.take_topups(now())).is_empty());
        assert_eq!(
            changes.stream_positions()[0].2,
            offset + bytes.len() as u64,
            "the message's pieces move the stream to its end"
        );

        // In a `MULTI` block (which the history assembler would apply at its `EXEC`), one message or two.
        for split in [false, true] {
            let mut changes = self::changes();
            let mut batch = Batch::default();
            let offset = joined_and_read(
                &mut changes,
                &mut batch,
                &[&[b"XADD", b"perf:s", b"1000-0", b"f", b"a"]],
            );
            let list: &[&[&[u8]]] = &[
                &[b"MULTI"],
                &[b"XADD", b"perf:s", b"1000-1", b"f", b"b"],
                &[b"RENAME", b"perf:s", b"perf:t"],
                &[b"XTRIM", b"perf:t", b"MAXLEN", b"0"],
                &[b"EXEC"],
            ];
            let mut batch = Batch::default();
            let (first, second) = list.split_at(if split { 2 } else { list.len() });
            let mut at = offset;
            for part in [first, second] {
                let mut bytes = Vec::new();
                for args in part {
                    crate::link_io::push_command(&mut bytes, args);
                }
                changes
                    .apply(&wire::encode_commands(at, &bytes), &mut batch)
                    .unwrap();
                at += bytes.len() as u64;
            }
            assert_eq!(
                entries(&batch),
                [
                    row("perf:s", "1000-1"),
                    row("perf:t", "1000-0"),
                    row("perf:t", "1000-1"),
                ],
                "split: {split}"
            );
            assert_eq!(changes.stream_positions()[0].2, at);
        }
    }

    /// A sorted set moved in is read just past the command too: its window's members have their rows as they enter
    /// it (a trim after it in the message takes none of them), and one whose window does not hold all its members
    /// is read again by a top-up (the members past the window that a trim removes first have no row under the new
    /// key: the top-up pending over the trim marks the span, see "Exactly once" in docs/SINK.md).
    #[test]
    fn a_sorted_set_moved_in_is_read_before_the_rest_of_its_message_changes_it() {
        let mut changes = changes();
        let mut batch = Batch::default();
        let scores: Vec<String> = (0..17).map(|i| format!("{}", 1000 + i)).collect();
        let mut list: Vec<Vec<&[u8]>> = scores
            .iter()
            .map(|s| vec![&b"ZADD"[..], b"perf:a", s.as_bytes(), s.as_bytes()])
            .collect();
        list.push(vec![b"ZADD", b"perf:c", b"1", b"x", b"2", b"y"]);
        let list: Vec<&[&[u8]]> = list.iter().map(Vec::as_slice).collect();
        let offset = joined_and_read(&mut changes, &mut batch, &list);
        let mut batch = Batch::default();
        let message = commands(
            offset,
            &[
                &[b"RENAME", b"perf:a", b"perf:b"],
                &[b"ZREMRANGEBYRANK", b"perf:b", b"0", b"0"],
                &[b"RENAME", b"perf:c", b"perf:d"],
                &[b"ZREMRANGEBYRANK", b"perf:d", b"0", b"-1"],
            ],
        );
        changes.apply(&message, &mut batch).unwrap();
        assert_eq!(keys(changes.take_topups(now())), [b"perf:b".to_vec()]);
        let rows: Vec<f64> = batch
            .zsets
            .iter()
            .filter(|r| batch.zset_key(r) == b"perf:d")
            .map(|r| r.score)
            .collect();
        assert_eq!(rows, [2.0, 1.0], "perf:d's members, trimmed after");
    }

    /// A member the window reports is passed over unhashed only when a row read from the stream holds the same bytes
    /// as they came: `abc`, not JSON, is stored as the JSON string `"abc"`, which is another member.
    #[test]
    fn a_member_is_told_from_a_row_read_from_the_stream_by_its_own_bytes() {
        let mut changes = changes();
        let mut batch = Batch::default();
        joined_and_read(
            &mut changes,
            &mut batch,
            &[
                &[b"ZADD", b"perf:a", b"1000", b"abc"],
                &[b"ZADD", b"perf:a", b"INCR", b"1000", b"\"abc\""],
                &[b"ZADD", b"perf:a", b"2000", b"{}", b"3000", b"[]"],
            ],
        );
        let values: Vec<&[u8]> = batch.zsets.iter().map(|r| batch.zset_value(r)).collect();
        assert_eq!(
            values,
            [&b"\"abc\""[..], b"{}", b"[]", b"\"abc\""],
            "the INCR's member, reported by the window, is a row of its own"
        );
    }

    #[test]
    fn a_command_too_short_to_name_its_key_names_none() {
        let mut changes = changes();
        let mut batch = Batch::default();
        changes
            .apply(&wire::encode_hello("e1", 0), &mut batch)
            .unwrap();
        changes
            .apply(&wire::encode_snapshot(0, b""), &mut batch)
            .unwrap();
        let names: [&[u8]; 13] = [
            b"ZINCRBY",
            b"ZADD",
            b"RENAME",
            b"RENAMENX",
            b"COPY",
            b"ZUNIONSTORE",
            b"ZINTERSTORE",
            b"ZDIFFSTORE",
            b"ZRANGESTORE",
            b"GEOSEARCHSTORE",
            b"DEL",
            b"UNLINK",
            b"GETDEL",
        ];
        let bare: Vec<[&[u8]; 1]> = names.iter().map(|name| [*name]).collect();
        let list: Vec<&[&[u8]]> = bare.iter().map(|command| &command[..]).collect();
        changes.apply(&commands(0, &list), &mut batch).unwrap();
        assert!(changes.stateful.is_empty() && batch.windows.is_empty());
    }

    /// A new sink that joined (an empty snapshot) and read `list` at offset 0: it, its batch and where its stream
    /// stands after.
    fn joined(list: &[&[&[u8]]]) -> (Changes, Batch, u64) {
        let mut changes = changes();
        let mut batch = Batch::default();
        let offset = joined_and_read(&mut changes, &mut batch, list);
        (changes, batch, offset)
    }

    /// A sink that joined (an empty snapshot) and read `list` at offset 0: where its stream stands after.
    fn joined_and_read(changes: &mut Changes, batch: &mut Batch, list: &[&[&[u8]]]) -> u64 {
        joined_and_applied(changes, batch, &commands(0, list))
    }

    /// A sink that joined (an empty snapshot) and read `message`: where its stream stands after.
    fn joined_and_applied(changes: &mut Changes, batch: &mut Batch, message: &[u8]) -> u64 {
        changes.apply(&wire::encode_hello("e1", 0), batch).unwrap();
        changes
            .apply(&wire::encode_snapshot(0, b""), batch)
            .unwrap();
        changes.apply(message, batch).unwrap();
        changes.stream_positions()[0].2
    }

    /// What the batch stores of each stateful key: its members, `absent`, `unknown`, or `gone` (its row deleted).
    fn stored_states(batch: &Batch) -> Vec<(&str, String)> {
        batch
            .windows
            .iter()
            .map(|(k, w)| {
                let state = match w {
                    None => "gone".to_string(),
                    Some(w) if w.absent() => "absent".to_string(),
                    Some(w) if !w.known => "unknown".to_string(),
                    Some(w) => format!("{} members", w.members.len()),
                };
                (k.as_str(), state)
            })
            .collect()
    }

    #[test]
    fn a_stateful_key_deleted_keeps_its_window_as_absent_the_last_ones_only() {
        let mut changes = changes();
        let mut batch = Batch::default();
        let offset = joined_and_read(
            &mut changes,
            &mut batch,
            &[
                &[b"ZINCRBY", b"perf:a", b"1", b"m"],
                &[b"ZINCRBY", b"perf:b", b"1", b"m"],
                &[b"ZADD", b"perf:c", b"XX", b"1", b"m"],
                &[b"ZINCRBY", b"perf:d", b"1", b"m"],
            ],
        );
        let held = |k| (k, "1 members".to_string());
        let absent = |k| (k, "absent".to_string());
        let expected = [
            held("perf:a"),
            held("perf:b"),
            absent("perf:c"),
            held("perf:d"),
        ];
        assert_eq!(stored_states(&batch), expected, "perf:c does not exist");

        let mut batch = Batch::default();
        let deleted = commands(
            offset,
            &[
                &[b"DEL", b"perf:a"],
                &[b"RENAME", b"perf:b", b"perf:e"],
                &[b"UNLINK", b"perf:e"],
                &[b"ZUNIONSTORE", b"perf:d", b"1", b"perf:none"],
            ],
        );
        changes.apply(&deleted, &mut batch).unwrap();
        let expected = [
            absent("perf:a"),
            absent("perf:b"),
            ("perf:d", "unknown".to_string()),
            absent("perf:e"),
        ];
        assert_eq!(
            stored_states(&batch),
            expected,
            "the store's result is read by a top-up"
        );
        assert_eq!(keys(changes.take_topups(now())), [b"perf:d".to_vec()]);

        // The top-up finds the store's result empty: the key does not exist.
        let mut batch = Batch::default();
        let offset = changes.stream_positions()[0].2;
        let mut answer = Vec::new();
        crate::link_io::push_command(&mut answer, &[b"DEL", b"perf:d"]);
        changes
            .apply(&wire::encode_snapshot(offset, &answer), &mut batch)
            .unwrap();
        assert_eq!(stored_states(&batch), [absent("perf:d")]);
        assert_eq!(changes.stateful.len(), 5);

        // As many other keys deleted: the five that were absent first are stateful no more, their rows gone.
        let mut batch = Batch::default();
        let offset = changes.stream_positions()[0].2;
        let keys: Vec<Vec<u8>> = (0..ABSENT_KEPT)
            .map(|i| format!("perf:k{i}").into_bytes())
            .collect();
        let mut list: Vec<Vec<&[u8]>> = keys
            .iter()
            .map(|k| vec![&b"ZINCRBY"[..], k, b"1", b"m"])
            .collect();
        list.push(
            std::iter::once(&b"DEL"[..])
                .chain(keys.iter().map(Vec::as_slice))
                .collect(),
        );
        let list: Vec<&[&[u8]]> = list.iter().map(Vec::as_slice).collect();
        changes.apply(&commands(offset, &list), &mut batch).unwrap();
        let states = stored_states(&batch);
        let gone: Vec<&str> = states
            .iter()
            .filter(|(_, state)| state == "gone")
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(gone, ["perf:a", "perf:b", "perf:c", "perf:d", "perf:e"]);
        assert_eq!(states.len(), ABSENT_KEPT + 5);
        assert_eq!(changes.stateful.len(), ABSENT_KEPT);
    }

    #[test]
    fn absent_windows_past_the_bound_when_the_sink_starts_are_deleted() {
        let absent = StoredWindow::of(None, false, 0);
        let stored: Vec<(Vec<u8>, StoredWindow)> = (0..=ABSENT_KEPT)
            .map(|i| (format!("perf:k{i:04}").into_bytes(), absent.clone()))
            .collect();
        let mut changes = Changes::new(changes().modes, Vec::new(), stored);
        changes.resuming(&[("e1".to_string(), 0)]);
        let mut batch = Batch::default();
        changes
            .apply(&wire::encode_hello("e1", 0), &mut batch)
            .unwrap();
        let states = stored_states(&batch);
        let gone: Vec<&str> = states
            .iter()
            .filter(|(_, state)| state != "absent")
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(gone, ["perf:k0000"], "the first loaded, past the bound");
        assert_eq!(states.len(), ABSENT_KEPT + 1);
        assert_eq!(changes.stateful.len(), ABSENT_KEPT);
    }

    #[test]
    fn a_sort_or_georadius_storing_into_a_history_key_stores_its_window() {
        let mut changes = changes();
        let mut batch = Batch::default();
        let offset = joined_and_read(
            &mut changes,
            &mut batch,
            &[&[b"ZINCRBY", b"perf:d", b"1", b"m"]],
        );
        let mut batch = Batch::default();
        let stores = commands(
            offset,
            &[
                &[
                    b"GEORADIUS",
                    b"geo",
                    b"0",
                    b"0",
                    b"100",
                    b"km",
                    b"STORE",
                    b"perf:d",
                ],
                &[
                    b"GEORADIUSBYMEMBER",
                    b"geo",
                    b"m",
                    b"100",
                    b"km",
                    b"storedist",
                    b"perf:g",
                ],
                &[b"SORT", b"list", b"BY", b"nosort", b"STORE", b"perf:s"],
            ],
        );
        changes.apply(&stores, &mut batch).unwrap();
        let unknown = |k| (k, "unknown".to_string());
        assert_eq!(
            stored_states(&batch),
            [unknown("perf:d"), unknown("perf:g"), unknown("perf:s")],
            "each store's result is read by a top-up, whose key's window is stored with the position"
        );
        assert!(changes.stateful.contains(&b"perf:s"[..]));
    }

    #[test]
    fn a_resumed_sink_goes_on_from_a_key_stored_as_absent() {
        let mut first = changes();
        let mut batch = Batch::default();
        joined_and_read(
            &mut first,
            &mut batch,
            &[&[b"ZINCRBY", b"perf:a", b"5", b"m"], &[b"DEL", b"perf:a"]],
        );
        let (epoch, offset) = batch.positions[0].clone();
        let stored = stored_windows(&batch);

        let (mut second, mut batch) = resumed_at(stored, &epoch, offset);
        let more = commands(offset, &[&[b"ZINCRBY", b"perf:a", b"7", b"m"]]);
        second.apply(&more, &mut batch).unwrap();
        let scores = scores(&batch);
        assert_eq!(scores, [7.0], "created again by the increment");
        assert!(keys(second.take_topups(now())).is_empty(), "no top-up");
    }

    /// A cluster of two shards resumed from the database: `perf:b`'s window, in shard 1's keeping, is held until
    /// shard 1 resumes. Shard 0's resume stores every other stateful key again; stored then, `perf:b` would be
    /// absent (the history assembler has no window of it yet), and a sink killed before shard 1 resumed would
    /// take the next increment for the whole score.
    #[test]
    fn a_stored_window_is_held_until_its_shard_resumes() {
        let held = StoredWindow {
            shard: 1,
            known: true,
            complete: true,
            members: vec![(5.0, b"m".to_vec())],
            span: None,
            epoch: None,
        };
        let stored = vec![
            (b"perf:a".to_vec(), StoredWindow::of(None, false, 0)),
            (b"perf:b".to_vec(), held.clone()),
        ];
        let mut changes = Changes::new(changes().modes, Vec::new(), stored);
        changes.resuming(&[("e0".to_string(), 10), ("e1".to_string(), 20)]);

        let mut batch = Batch::default();
        changes
            .apply(&on(0, wire::encode_hello("e0", 10)), &mut batch)
            .unwrap();
        let more = commands(10, &[&[b"ZINCRBY", b"perf:a", b"1", b"x"]]);
        changes.apply(&on(0, more), &mut batch).unwrap();
        assert_eq!(
            stored_states(&batch),
            [("perf:a", "1 members".to_string())],
            "perf:b's row stays as stored"
        );
        // Nor is it stored when a command names it on another shard's stream (which Redis Cluster would not send).
        let mut batch = Batch::default();
        let offset = changes.stream_positions()[0].2;
        let more = commands(offset, &[&[b"DEL", b"perf:b"]]);
        changes.apply(&on(0, more), &mut batch).unwrap();
        assert!(batch.windows.is_empty(), "{:?}", batch.windows);

        let mut batch = Batch::default();
        changes
            .apply(&on(1, wire::encode_hello("e1", 20)), &mut batch)
            .unwrap();
        assert_eq!(
            batch.windows["perf:b"],
            Some(StoredWindow {
                epoch: Some("e1".to_string()),
                ..held
            }),
            "stored again as rebuilt, with its stream's epoch"
        );
        let more = commands(20, &[&[b"ZINCRBY", b"perf:b", b"7", b"m"]]);
        changes.apply(&on(1, more), &mut batch).unwrap();
        let scores = scores(&batch);
        assert_eq!(scores, [12.0], "5 + 7");
        assert!(keys(changes.take_topups(now())).is_empty());
    }

    /// A cluster of two shards: `perf:b`, whose slot is shard 1's, deleted on shard 1's stream, is stored as absent
    /// in shard 1's keeping, so that a sink resumed there rebuilds it when shard 1 resumes, whether or not shard 0
    /// has: an increment creating it again is then its whole score, without a top-up. (Stored as shard 0's, it
    /// would be held until shard 0 resumes, and read by a top-up.)
    #[test]
    fn an_absent_key_is_stored_in_the_keeping_of_the_shard_that_deleted_it() {
        let (mut first, mut batch) = two_shards();
        let deleted = commands(
            0,
            &[&[b"ZINCRBY", b"perf:b", b"5", b"m"], &[b"DEL", b"perf:b"]],
        );
        first.apply(&on(1, deleted), &mut batch).unwrap();
        let stored = batch.windows["perf:b"].clone().unwrap();
        assert!(stored.absent());
        assert_eq!(stored.shard, 1);

        let offset = first.stream_positions()[1].2;
        let mut second = Changes::new(
            changes().modes,
            Vec::new(),
            vec![(b"perf:b".to_vec(), stored)],
        );
        second.resuming(&[("e0".to_string(), 0), ("e1".to_string(), offset)]);
        let mut batch = Batch::default();
        second
            .apply(&on(1, wire::encode_hello("e1", offset)), &mut batch)
            .unwrap();
        let more = commands(offset, &[&[b"ZINCRBY", b"perf:b", b"7", b"m"]]);
        second.apply(&on(1, more), &mut batch).unwrap();
        assert_eq!(scores(&batch), [7.0], "created again by the increment");
        assert!(keys(second.take_topups(now())).is_empty(), "no top-up");
    }

    /// A cluster of two shards resumed where `perf:b`, of shard 1, had its top-up pending: shard 1's resume forgets
    /// it, asking the top-up again, in shard 1's keeping, so shard 0 joining afresh before the answer does not take
    /// it for absent (shard 0's keys are cleared by its join): it is stored as unknown, shard 1's.
    #[test]
    fn a_key_forgotten_without_a_window_is_forgotten_in_its_own_shards_keeping() {
        let pending = StoredWindow {
            shard: 1,
            known: false,
            complete: false,
            members: Vec::new(),
            span: None,
            epoch: None,
        };
        let stored = vec![(b"perf:b".to_vec(), pending)];
        let positions = [("e0".to_string(), 10), ("e1".to_string(), 20)];
        let (mut changes, batch) = resumed_on_two_shards(stored, &positions, [10, 20]);
        assert_eq!(keys(changes.take_topups(now())), [b"perf:b".to_vec()]);
        let stored = |batch: &Batch| {
            let w = batch.windows["perf:b"].clone().unwrap();
            (w.known, w.shard)
        };
        assert_eq!(stored(&batch), (false, 1));

        let mut batch = Batch::default();
        changes
            .apply(&on(0, wire::encode_hello("e2", 0)), &mut batch)
            .unwrap();
        changes
            .apply(&on(0, wire::encode_snapshot(0, b"")), &mut batch)
            .unwrap();
        assert_eq!(stored(&batch), (false, 1), "still unknown, shard 1's");
    }

    /// A cluster whose shard 1 does not resume (the sink's position of it is not there, or the cluster lost it): the
    /// windows held for it are released when another shard's stream says what their keys hold: a snapshot naming
    /// the key (`perf:b`, its slot now shard 0's), or a command on the stream of a shard that joined afresh with a
    /// snapshot that did not name it (`perf:c`, which then did not exist there). Each is stored again as shard 0's.
    #[test]
    fn a_held_window_is_released_when_another_shards_stream_says_what_its_key_holds() {
        let held = StoredWindow {
            shard: 1,
            known: true,
            complete: true,
            members: vec![(5.0, b"m".to_vec())],
            span: None,
            epoch: None,
        };
        let stored = vec![
            (b"perf:b".to_vec(), held.clone()),
            (b"perf:c".to_vec(), held.clone()),
            (b"perf:d".to_vec(), held.clone()),
        ];
        let mut changes = Changes::new(changes().modes, Vec::new(), stored);
        changes.resuming(&[("e0".to_string(), 10), ("e1".to_string(), 20)]);
        let mut batch = Batch::default();
        changes
            .apply(&on(0, wire::encode_hello("e9", 0)), &mut batch)
            .unwrap();
        let mut snapshot = Vec::new();
        crate::link_io::push_command(&mut snapshot, &[b"DEL", b"perf:b"]);
        crate::link_io::push_command(&mut snapshot, &[b"ZADD", b"perf:b", b"9", b"x"]);
        changes
            .apply(&on(0, wire::encode_snapshot(0, &snapshot)), &mut batch)
            .unwrap();
        let more = commands(0, &[&[b"ZINCRBY", b"perf:c", b"1", b"m"]]);
        changes.apply(&on(0, more), &mut batch).unwrap();
        let state = |k: &str| {
            batch
                .windows
                .get(k)
                .cloned()
                .flatten()
                .map(|w| (w.shard, w.members))
        };
        assert_eq!(state("perf:b"), Some((0, vec![(9.0, b"x".to_vec())])));
        assert_eq!(state("perf:c"), Some((0, vec![(1.0, b"m".to_vec())])));
        assert_eq!(
            state("perf:d"),
            None,
            "still held: nothing said what it holds"
        );
    }

    /// A window held for shard 1, which has not resumed, and an increment of its key on resumed shard 0's stream
    /// (its slot moved): the key is read by a top-up on shard 0, whose answer releases the held window.
    #[test]
    fn a_held_key_a_resumed_shard_depends_on_is_read_and_released() {
        let held = StoredWindow {
            shard: 1,
            known: true,
            complete: true,
            members: vec![(5.0, b"m".to_vec())],
            span: None,
            epoch: None,
        };
        let stored = vec![(b"perf:b".to_vec(), held)];
        let mut changes = Changes::new(changes().modes, Vec::new(), stored);
        changes.resuming(&[("e0".to_string(), 10), ("e1".to_string(), 20)]);
        let mut batch = Batch::default();
        changes
            .apply(&on(0, wire::encode_hello("e0", 10)), &mut batch)
            .unwrap();
        let more = commands(10, &[&[b"ZINCRBY", b"perf:b", b"7", b"m"]]);
        changes.apply(&on(0, more), &mut batch).unwrap();
        assert!(batch.zsets.is_empty() && !batch.windows.contains_key("perf:b"));
        assert_eq!(keys(changes.take_topups(now())), [b"perf:b".to_vec()]);

        let mut batch = Batch::default();
        let offset = changes.stream_positions()[0].2;
        let mut answer = Vec::new();
        crate::link_io::push_command(&mut answer, &[b"DEL", b"perf:b"]);
        crate::link_io::push_command(&mut answer, &[b"ZADD", b"perf:b", b"12", b"m"]);
        changes
            .apply(&on(0, wire::encode_snapshot(offset, &answer)), &mut batch)
            .unwrap();
        assert_eq!(scores(&batch), [12.0]);
        let stored = batch.windows["perf:b"].clone().unwrap();
        assert_eq!(
            (stored.shard, stored.members),
            (0, vec![(12.0, b"m".to_vec())])
        );
    }

    #[test]
    fn a_stale_message_stores_the_windows_it_makes_unknown_not_every_one() {
        let mut changes = changes();
        let mut batch = Batch::default();
        let mut offset = joined_and_read(
            &mut changes,
            &mut batch,
            &[
                &[b"ZINCRBY", b"perf:a", b"1", b"m"],
                &[b"ZINCRBY", b"perf:b", b"1", b"m"],
            ],
        );
        // A sample a second, each with a command the relay withheld (a MULTI naming a key outside `--allow`).
        for _ in 0..3 {
            let mut batch = Batch::default();
            let sample = commands(offset, &[&[b"ZADD", b"perf:c", b"1", b"m"]]);
            changes.apply(&sample, &mut batch).unwrap();
            offset = changes.stream_positions()[0].2 + 10;
            let stale = wire::encode_stale(offset, [&b"secret:x"[..]]);
            changes.apply(&stale, &mut batch).unwrap();
            assert!(batch.windows.is_empty(), "{:?}", batch.windows.keys());
        }
        // One it makes unknown is stored, unknown.
        let mut batch = Batch::default();
        let stale = wire::encode_stale(offset, [&b"perf:a"[..]]);
        changes.apply(&stale, &mut batch).unwrap();
        let stored: Vec<(&str, bool)> = batch
            .windows
            .iter()
            .map(|(k, w)| (k.as_str(), w.as_ref().is_some_and(|w| w.known)))
            .collect();
        assert_eq!(stored, [("perf:a", false)]);
        // Every window for every window: each stored unknown once (`perf:c`'s too, whose top-up it asks), with its
        // span, not at each message until each is answered.
        let mut batch = Batch::default();
        changes
            .apply(&wire::encode_stale_all(offset), &mut batch)
            .unwrap();
        assert_eq!(batch.windows.len(), 3);
        assert!(batch
            .windows
            .values()
            .flatten()
            .all(|w| !w.known && w.span.is_some_and(|s| s.from == offset)));
        let mut batch = Batch::default();
        let sample = commands(offset, &[&[b"ZADD", b"perf:c", b"2", b"m"]]);
        changes.apply(&sample, &mut batch).unwrap();
        let stored: Vec<&str> = batch.windows.keys().map(String::as_str).collect();
        assert_eq!(
            stored,
            ["perf:c"],
            "only the key written, whose top-up is asked"
        );
    }

    #[test]
    fn no_window_is_stored_while_a_shard_joins_without_its_position() {
        let mut changes = changes();
        let mut batch = Batch::default();
        joined_and_read(
            &mut changes,
            &mut batch,
            &[&[b"ZINCRBY", b"perf:a", b"5", b"m"]],
        );
        assert!(batch.windows["perf:a"].is_some());
        // A join that does not continue the stream (a new epoch): until its snapshot, the batch has no position
        // for the shard and the history assembler no window.
        let mut batch = Batch::default();
        changes
            .apply(&wire::encode_hello("e2", 0), &mut batch)
            .unwrap();
        assert!(batch.positions.is_empty());
        assert!(batch.windows.is_empty(), "{:?}", batch.windows);
        let mut snapshot = Vec::new();
        crate::link_io::push_command(&mut snapshot, &[b"ZADD", b"perf:a", b"5", b"m"]);
        changes
            .apply(&wire::encode_snapshot(0, &snapshot), &mut batch)
            .unwrap();
        assert_eq!(batch.positions, [("e2".to_string(), 0)]);
        let stored = batch.windows["perf:a"].as_ref().map(|w| w.members.clone());
        assert_eq!(stored, Some(vec![(5.0, b"m".to_vec())]));
    }

    #[test]
    fn a_resumed_sink_without_a_keys_window_reads_it_before_a_command_that_depends_on_it() {
        let (batch, mut resumed) = resumed_after_an_increment(false);
        assert!(
            batch.zsets.is_empty(),
            "no score made up from a window of the commands since the resume"
        );
        assert_eq!(keys(resumed.take_topups(now())), [b"perf:a".to_vec()]);
    }

    /// The answer to a top-up of `key` holding `members` (score, member), at `offset`.
    fn answer(offset: u64, key: &[u8], members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut commands = Vec::new();
        crate::link_io::push_command(&mut commands, &[b"DEL", key]);
        for (score, member) in members {
            crate::link_io::push_command(&mut commands, &[b"ZADD", key, score.as_bytes(), member]);
        }
        wire::encode_snapshot(offset, &commands)
    }

    /// A resumed sink's catch-up increments a member of a key it has no window of (its rows come from a top-up)
    /// and, before the answer, the same member again: the score between is lost, and the span of the stream where
    /// it was is recorded, from the first increment to the answer, with the answer's rows.
    #[test]
    fn a_member_written_again_before_its_keys_top_up_is_answered_records_a_span() {
        let (mut batch, mut resumed) = resumed_after_an_increment(false);
        let (epoch, offset) = batch.positions[0].clone();
        assert_eq!(epoch, "e1");
        assert_eq!(keys(resumed.take_topups(now())), [b"perf:a".to_vec()]);
        // Where the resumed sink's first `ZINCRBY` started.
        let from = offset - commands(0, &[&[b"ZINCRBY", b"perf:a", b"7", b"m"]]).len() as u64 + 13;
        let more = commands(offset, &[&[b"ZINCRBY", b"perf:a", b"1", b"m"]]);
        resumed.apply(&more, &mut batch).unwrap();
        let at = resumed.stream_positions()[0].2;
        assert!(batch.inexact_spans.is_empty(), "not before the answer");
        resumed
            .apply(&answer(at, b"perf:a", &[("1013", b"m")]), &mut batch)
            .unwrap();
        assert_eq!(batch.inexact_spans, [span("perf:a", from, at)]);
        // Once: the key is known again.
        let later = commands(at, &[&[b"ZINCRBY", b"perf:a", b"1", b"m"]]);
        resumed.apply(&later, &mut batch).unwrap();
        assert_eq!(batch.inexact_spans.len(), 1);
    }

    /// No span when nothing after the command whose rows the answer reads may have changed what it wrote: another
    /// member written, a TTL set; nor when the window follows the key (two increments in one message).
    #[test]
    fn a_top_up_answered_before_what_it_reads_is_written_again_records_no_span() {
        let (mut batch, mut resumed) = resumed_after_an_increment(false);
        let offset = batch.positions[0].1;
        let more = commands(
            offset,
            &[
                &[b"ZADD", b"perf:a", b"2000", b"other"],
                &[b"ZADD", b"perf:a", b"GT", b"3000", b"third"],
                &[b"ZREM", b"perf:a", b"fourth"],
                &[b"PEXPIRE", b"perf:a", b"100000"],
            ],
        );
        resumed.apply(&more, &mut batch).unwrap();
        let at = resumed.stream_positions()[0].2;
        resumed
            .apply(
                &answer(
                    at,
                    b"perf:a",
                    &[("1012", b"m"), ("2000", b"other"), ("3000", b"third")],
                ),
                &mut batch,
            )
            .unwrap();
        assert!(batch.inexact_spans.is_empty(), "{:?}", batch.inexact_spans);

        let mut changes = changes();
        let mut batch = Batch::default();
        joined_and_read(
            &mut changes,
            &mut batch,
            &[
                &[b"ZADD", b"perf:b", b"1000", b"m"],
                &[b"ZINCRBY", b"perf:b", b"5", b"m"],
                &[b"ZINCRBY", b"perf:b", b"5", b"m"],
                &[b"ZREMRANGEBYRANK", b"perf:b", b"0", b"-1"],
            ],
        );
        assert_eq!(scores(&batch), [1000.0, 1005.0, 1010.0]);
        assert!(keys(changes.take_topups(now())).is_empty());
        assert!(batch.inexact_spans.is_empty() && changes.spans.is_empty());
    }

    /// A key stored into (`ZUNIONSTORE`) is read by a top-up: a trim before the answer may have removed what it
    /// stored, recorded; within one message too, where the trim's command follows the store's (the key is read
    /// as pending right after the store).
    #[test]
    fn a_key_stored_into_and_trimmed_before_its_answer_records_a_span() {
        let mut changes = changes();
        let mut batch = Batch::default();
        let offset = joined_and_read(
            &mut changes,
            &mut batch,
            &[&[b"ZADD", b"perf:a", b"1000", b"m"]],
        );
        let store = commands(
            offset,
            &[
                &[b"ZUNIONSTORE", b"perf:u", b"1", b"perf:a"],
                &[b"ZREMRANGEBYSCORE", b"perf:u", b"0", b"1000"],
            ],
        );
        changes.apply(&store, &mut batch).unwrap();
        let at = answer_empty(&mut changes, &mut batch, b"perf:u");
        assert_eq!(batch.inexact_spans, [span("perf:u", offset, at)]);
    }

    #[test]
    fn a_fresh_joins_position_comes_with_its_snapshot_and_a_resumes_at_once() {
        let snapshot = b"*2\r\n$3\r\nDEL\r\n$6\r\nperf:a\r\n*4\r\n$4\r\nZADD\r\n$6\r\nperf:a\r\n$1\r\n5\r\n$2\r\n{}\r\n";
        let mut fresh = changes();
        let mut batch = Batch::default();
        fresh
            .apply(&wire::encode_hello("e1", 100), &mut batch)
            .unwrap();
        assert!(
            batch.positions.is_empty() && fresh.positions().is_empty(),
            "no position to store or resume from before the join's snapshot"
        );
        fresh
            .apply(&wire::encode_snapshot(100, snapshot), &mut batch)
            .unwrap();
        assert_eq!(batch.positions, [("e1".to_string(), 100)]);
        assert_eq!(batch.zsets.len(), 1, "with the snapshot's member");

        let mut resumed = changes();
        resumed.resuming(&[("e1".to_string(), 100)]);
        let mut batch = Batch::default();
        resumed
            .apply(&wire::encode_hello("e1", 100), &mut batch)
            .unwrap();
        assert_eq!(
            batch.positions,
            [("e1".to_string(), 100)],
            "a resume has no snapshot to wait for"
        );
    }

    /// The relay ends a message with an empty segment at its cursor, past the commands it withheld. With both
    /// modes, a message the history assembler takes in pieces (a `MULTI` block) must leave it at that cursor too:
    /// the position stored and resumed from is the mirror's, and a session resumed there must continue the
    /// history's windows, not start them again as absent.
    #[test]
    fn a_message_in_pieces_leaves_the_history_at_its_trailing_empty_segment() {
        // With both modes (the position stored is the mirror's), and with --history alone (the history's).
        for mirror in [&["mirror:*".to_string()][..], &[]] {
            message_in_pieces_then_reconnect(Modes {
                history: Patterns::new(&["perf:*".to_string()]),
                mirror: Patterns::new(mirror),
                db: 0,
                window: 10,
            });
        }
    }

    fn message_in_pieces_then_reconnect(modes: Modes) {
        let mut changes = Changes::new(modes, Vec::new(), Vec::new());
        let mut batch = Batch::default();
        changes
            .apply(&wire::encode_hello("e1", 0), &mut batch)
            .unwrap();
        changes
            .apply(&wire::encode_snapshot(0, b""), &mut batch)
            .unwrap();
        let mut block = Vec::new();
        for args in [
            &[&b"MULTI"[..]][..],
            &[b"ZADD", b"perf:a", b"1000", b"m"],
            &[b"ZINCRBY", b"perf:a", b"5", b"m"],
            &[b"EXEC"],
        ] {
            crate::link_io::push_command(&mut block, args);
        }
        // Withheld commands between the block and the cursor.
        let cursor = block.len() as u64 + 50;
        let mut message = wire::begin_commands();
        wire::push_segment(&mut message, 0, &block);
        wire::push_segment(&mut message, cursor, b"");
        changes.apply(&message, &mut batch).unwrap();
        assert_eq!(scores(&batch), [1000.0, 1005.0]);
        assert_eq!(changes.positions(), [("e1".to_string(), cursor)]);
        assert_eq!(
            changes.history.positions(),
            [(0, "e1".to_string(), cursor)],
            "the history assembler at the mirror's cursor"
        );

        // A new session resumed from the stored position.
        changes.reconnected();
        let positions = changes.positions();
        changes.resuming(&positions);
        let mut batch = Batch::default();
        changes
            .apply(&wire::encode_hello("e1", cursor), &mut batch)
            .unwrap();
        let more = commands(cursor, &[&[b"ZINCRBY", b"perf:a", b"7", b"m"]]);
        changes.apply(&more, &mut batch).unwrap();
        assert_eq!(scores(&batch), [1012.0], "1000 + 5 + 7, not 7");
        assert!(keys(changes.take_topups(now())).is_empty());
    }

    /// A message whose second segment does not decode is refused after its first was read: what that left (a
    /// stream renamed into a history key, to be read after its piece) must not make the next message, the new
    /// session's hello, go to the history assembler in pieces, which a hello has none of: it would be lost, the
    /// history going on from the old stream's position.
    #[test]
    fn a_message_refused_midway_leaves_nothing_to_the_next() {
        let mut changes = changes();
        let mut batch = Batch::default();
        let offset = joined_and_read(
            &mut changes,
            &mut batch,
            &[&[b"XADD", b"perf:s", b"1000-0", b"f", b"a"]],
        );
        let mut bytes = Vec::new();
        crate::link_io::push_command(&mut bytes, &[b"RENAME", b"perf:s", b"perf:t"]);
        let mut broken = wire::begin_commands();
        wire::push_segment(&mut broken, offset, &bytes);
        // A segment that says it holds 1,000 bytes and holds 3.
        broken.extend_from_slice(&(offset + bytes.len() as u64).to_le_bytes());
        broken.extend_from_slice(&1000u32.to_le_bytes());
        broken.extend_from_slice(b"abc");
        let mut batch = Batch::default();
        assert!(matches!(
            changes.apply(&broken, &mut batch),
            Err(ChangeError::Wire(_))
        ));
        // The next session joins another stream.
        changes.reconnected();
        let mut batch = Batch::default();
        changes
            .apply(&wire::encode_hello("e2", 0), &mut batch)
            .unwrap();
        changes
            .apply(&wire::encode_snapshot(0, b""), &mut batch)
            .unwrap();
        assert_eq!(changes.positions(), [("e2".to_string(), 0)]);
    }

    /// A `GEORADIUS` or `GEORADIUSBYMEMBER` (17 bytes, the longest name the sink reads) storing into a key whose
    /// top-up is pending, before its answer, may change what the first store wrote: recorded, for both names.
    #[test]
    fn a_georadius_or_georadiusbymember_store_before_the_answer_records_a_span() {
        for name in [&b"GEORADIUS"[..], b"GEORADIUSBYMEMBER"] {
            let mut changes = changes();
            let mut batch = Batch::default();
            let offset = joined_and_read(
                &mut changes,
                &mut batch,
                &[&[b"ZADD", b"perf:a", b"1000", b"m"]],
            );
            let store = commands(offset, &[&[b"ZUNIONSTORE", b"perf:u", b"1", b"perf:a"]]);
            changes.apply(&store, &mut batch).unwrap();
            let at = changes.stream_positions()[0].2;
            let geo: &[&[u8]] = if name == b"GEORADIUS" {
                &[name, b"geo", b"0", b"0", b"100", b"km", b"STORE", b"perf:u"]
            } else {
                &[name, b"geo", b"m", b"100", b"km", b"STORE", b"perf:u"]
            };
            changes.apply(&commands(at, &[geo]), &mut batch).unwrap();
            let answered = answer_empty(&mut changes, &mut batch, b"perf:u");
            assert_eq!(
                batch.inexact_spans,
                [InexactSpan {
                    epoch: "e1".to_string(),
                    key: "perf:u".to_string(),
                    shard: 0,
                    from_offset: offset,
                    to_offset: answered,
                    pattern: false,
                }],
                "{}",
                String::from_utf8_lossy(name)
            );
        }
    }

    /// A `COPY … DB 0` sent while another database is selected copies into the watched one: into a key whose
    /// top-up is pending, before its answer, it may change what the first store wrote: recorded.
    #[test]
    fn a_copy_from_another_database_before_the_answer_records_a_span() {
        let mut changes = changes();
        let mut batch = Batch::default();
        let offset = joined_and_read(
            &mut changes,
            &mut batch,
            &[&[b"ZADD", b"perf:a", b"1000", b"m"]],
        );
        let store = commands(offset, &[&[b"ZUNIONSTORE", b"perf:u", b"1", b"perf:a"]]);
        changes.apply(&store, &mut batch).unwrap();
        let at = changes.stream_positions()[0].2;
        let copy = commands(
            at,
            &[
                &[b"SELECT", b"1"],
                &[b"COPY", b"other", b"perf:u", b"DB", b"0", b"REPLACE"],
            ],
        );
        changes.apply(&copy, &mut batch).unwrap();
        let answered = answer_empty(&mut changes, &mut batch, b"perf:u");
        assert_eq!(batch.inexact_spans, [span("perf:u", offset, answered)]);
    }

    /// A command the relay withholds (a `ZUNIONSTORE` reading a key outside `--allow`) comes as a stale message
    /// naming the keys it wrote: each is written whole, so an open span of one is inexact; and one whose top-up it
    /// asks opens a span, made inexact by a write before the answer. A stale message for every window marks every
    /// open span inexact.
    #[test]
    fn a_stale_message_is_a_write_of_its_keys_for_the_spans() {
        for stale_all in [false, true] {
            let mut changes = changes();
            let mut batch = Batch::default();
            let offset = joined_and_read(
                &mut changes,
                &mut batch,
                &[&[b"ZADD", b"perf:a", b"1000", b"m"]],
            );
            let store = commands(offset, &[&[b"ZUNIONSTORE", b"perf:u", b"1", b"perf:a"]]);
            changes.apply(&store, &mut batch).unwrap();
            let at = changes.stream_positions()[0].2 + 30;
            let stale = if stale_all {
                wire::encode_stale_all(at)
            } else {
                wire::encode_stale(at, [&b"perf:u"[..]])
            };
            changes.apply(&stale, &mut batch).unwrap();
            keys(changes.take_topups(now()));
            let answered = answer_now(&mut changes, &mut batch, b"perf:u", &[]);
            // For every window, the keys the withheld command may have made ([`made_by_a_stale_all`]) too.
            let mut expected = made_by_a_stale_all(at);
            expected.truncate(usize::from(stale_all));
            expected.push(span("perf:u", offset, answered));
            assert_eq!(batch.inexact_spans, expected, "stale all: {stale_all}");
        }

        // A span opened by the stale message: the key's top-up asked, written again before the answer.
        let mut changes = changes();
        let mut batch = Batch::default();
        let offset = joined_and_read(
            &mut changes,
            &mut batch,
            &[&[b"ZINCRBY", b"perf:v", b"1", b"m"]],
        );
        let at = offset + 30;
        changes
            .apply(&wire::encode_stale(at, [&b"perf:v"[..]]), &mut batch)
            .unwrap();
        assert_eq!(keys(changes.take_topups(now())), [b"perf:v".to_vec()]);
        changes
            .apply(
                &commands(at, &[&[b"ZINCRBY", b"perf:v", b"1", b"m"]]),
                &mut batch,
            )
            .unwrap();
        let answered = answer_now(&mut changes, &mut batch, b"perf:v", &[("3", b"m")]);
        assert_eq!(batch.inexact_spans, [span("perf:v", at, answered)]);
    }

    /// Issue 23 item 1. A stale message naming a key the sink holds a window of (a `MULTI` block's, before the block,
    /// or a command's, right after it) makes the key unknown, not a stale window that later commands still apply
    /// to: a `ZINCRBY` of a member it held before the answer stores no row from the window (it would be the old
    /// score plus one, which Redis never held, the withheld command having changed the member first); its row is
    /// the answer's, and the span from the stale message to the answer is recorded.
    #[test]
    fn an_increment_of_a_key_a_stale_message_names_is_read_from_the_answer() {
        let (mut changes, mut batch, at) =
            joined(&[&[b"ZADD", b"perf:a", b"1000", b"m", b"1", b"n"]]);
        changes
            .apply(&wire::encode_stale(at, [&b"perf:a"[..]]), &mut batch)
            .unwrap();
        assert!(changes.history.window(b"perf:a").is_none());
        assert!(changes.history.is_unknown(b"perf:a"));
        assert_eq!(keys(changes.take_topups(now())), [b"perf:a".to_vec()]);
        let rows = batch.zsets.len();
        let block = commands(
            at,
            &[
                &[b"MULTI"],
                &[b"ZINCRBY", b"perf:a", b"1", b"m"],
                &[b"EXEC"],
            ],
        );
        changes.apply(&block, &mut batch).unwrap();
        assert_eq!(
            scores(&batch)[rows..],
            [] as [f64; 0],
            "no row from the window"
        );
        let answered = answer_now(
            &mut changes,
            &mut batch,
            b"perf:a",
            &[("1", b"n"), ("1006", b"m")],
        );
        assert_eq!(scores(&batch)[rows..], [1006.0], "the answer's row of m");
        assert_eq!(batch.inexact_spans, [span("perf:a", at, answered)]);
    }

    /// Issue 23 item 4. The relay takes at most 10,000 keys waiting for top-ups in a session (`MAX_SNAPSHOT_KEYS`),
    /// and never reads the others: the sink asks no more than that at once, and the rest as answers come, so that
    /// every key is read. Here 11,000 history keys made unknown by stale messages of 1,000 keys each.
    #[test]
    fn the_sink_never_has_more_top_ups_waiting_than_the_relay_takes() {
        let (mut changes, mut batch, at) = joined(&[&[b"ZADD", b"perf:a", b"1", b"m"]]);
        let names: Vec<Vec<u8>> = (0..11_000)
            .map(|i| format!("perf:k{i:05}").into_bytes())
            .collect();
        for some in names.chunks(1_000) {
            let stale = wire::encode_stale(at, some.iter().map(Vec::as_slice));
            changes.apply(&stale, &mut batch).unwrap();
        }
        let first = keys(changes.take_topups(now()));
        assert_eq!(
            first.len(),
            MAX_SNAPSHOT_KEYS,
            "at most what the relay takes"
        );
        assert!(
            keys(changes.take_topups(now())).is_empty(),
            "none more before an answer"
        );
        // 600 answered (absent): 600 more asked, of those not asked yet.
        let mut answered = Vec::new();
        for key in &first[..600] {
            crate::link_io::push_command(&mut answered, &[b"DEL", key]);
        }
        changes
            .apply(&wire::encode_snapshot(at, &answered), &mut batch)
            .unwrap();
        let second = keys(changes.take_topups(now()));
        assert_eq!(second.len(), 600);
        assert!(second.iter().all(|k| !first.contains(k)));
        // The rest once more are answered: every key asked once.
        let mut answered = Vec::new();
        for key in &first[600..1_000] {
            crate::link_io::push_command(&mut answered, &[b"DEL", key]);
        }
        changes
            .apply(&wire::encode_snapshot(at, &answered), &mut batch)
            .unwrap();
        let third = keys(changes.take_topups(now()));
        let mut all: Vec<Vec<u8>> = [first, second, third].concat();
        all.sort_unstable();
        assert_eq!(all, names, "each key asked, once");
    }

    /// The relay's notice that it did not take some keys of a top-up (the keys a join left for later wait within
    /// the same bound) names none: every key asked and not answered is asked again once the next answer comes.
    #[test]
    fn keys_a_relay_did_not_take_are_asked_again_after_the_next_answer() {
        let (mut changes, mut batch, at) = joined(&[&[b"ZADD", b"perf:a", b"1", b"m"]]);
        let names = [&b"perf:x0"[..], b"perf:x1", b"perf:x2"];
        changes
            .apply(&wire::encode_stale(at, names), &mut batch)
            .unwrap();
        assert_eq!(keys(changes.take_topups(now())).len(), 3);
        let notice = "top-up of 2 keys not taken: at most 10000 keys wait for top-ups in a session; ask for them \
                      again once those have come";
        changes
            .apply(&wire::encode_notice(notice), &mut batch)
            .unwrap();
        assert!(
            keys(changes.take_topups(now())).is_empty(),
            "not before an answer"
        );
        let mut answered = Vec::new();
        crate::link_io::push_command(&mut answered, &[b"DEL", b"perf:x0"]);
        changes
            .apply(&wire::encode_snapshot(at, &answered), &mut batch)
            .unwrap();
        assert_eq!(
            keys(changes.take_topups(now())),
            [b"perf:x1".to_vec(), b"perf:x2".to_vec()],
            "asked again"
        );
        changes
            .apply(&wire::encode_snapshot(at, &answered), &mut batch)
            .unwrap();
        assert!(keys(changes.take_topups(now())).is_empty(), "once");
    }

    /// A key asked while its slot has no owner (a failover or a resharding in progress) gets a notice that names it
    /// in its text, which the sink does not parse (a key may hold `, `), and no answer. Before, it stayed pending, its
    /// span open, until the sink's next session asked it again. Now a key asked and not answered for 5 s is asked
    /// again, with its `since`, then 10 s after that, 20, 40, and every minute after (the same time passed in
    /// `now`), until an answer (here of the shard that holds its slot now) closes its span; a key answered is not
    /// asked again, and a key asked later keeps its own time.
    #[test]
    fn a_key_asked_and_not_answered_is_asked_again_ever_later_until_answered() {
        let (mut changes, mut batch) = two_shards();
        let written = commands(0, &[&[b"ZADD", b"perf:a", b"1000", b"m"]]);
        changes.apply(&on(0, written), &mut batch).unwrap();
        let moved = commands(0, &[&[b"ZINCRBY", b"perf:a", b"5", b"m"]]);
        changes.apply(&on(1, moved), &mut batch).unwrap();
        let start = now();
        let s = |secs: u64| start + std::time::Duration::from_secs(secs);
        assert_eq!(changes.take_topups(start), one_ask(Some(0), b"perf:a"));
        let notice = "top-up of keys no shard serves now (their slots have no owner): perf:a";
        changes
            .apply(&wire::encode_notice(notice), &mut batch)
            .unwrap();
        assert_eq!(changes.asks_again_at(), Some(s(5)));
        assert!(changes.take_topups(s(4)).is_empty(), "not before 5 s");
        // Another key asked meanwhile, answered before its time.
        let stale = wire::encode_stale(position(&changes, 0), [&b"perf:z"[..]]);
        changes.apply(&on(0, stale), &mut batch).unwrap();
        assert_eq!(keys(changes.take_topups(s(4))), [b"perf:z".to_vec()]);
        let mut asked_at = Vec::new();
        for secs in 5..=200 {
            if secs == 8 {
                let mut absent = Vec::new();
                crate::link_io::push_command(&mut absent, &[b"DEL", b"perf:z"]);
                let at = position(&changes, 0);
                let answer = wire::encode_snapshot(at, &absent);
                changes.apply(&on(0, answer), &mut batch).unwrap();
            }
            for ask in changes.take_topups(s(secs)) {
                assert_eq!(ask, one_ask(Some(0), b"perf:a")[0], "at {secs} s");
                asked_at.push(secs);
            }
        }
        assert_eq!(asked_at, [5, 15, 35, 75, 135, 195]);
        assert!(batch.inexact_spans.is_empty());
        answered_by(&mut changes, &mut batch, 0, &[("1005", b"m")]);
        let to = changes.stream_positions()[1].2;
        assert_eq!(batch.inexact_spans, [cluster_span(1, 0, to)], "closed");
        assert_eq!(changes.asks_again_at(), None);
        assert!(changes.take_topups(s(1_000)).is_empty(), "answered");
    }

    /// Issue 23 item 2. A `SWAPDB` of the watched database made the history assembler wait for a full snapshot: the
    /// first top-up's answer (here of `perf:b`, which an increment after the swap asked) ended it, every key it did
    /// not name then taken for absent, and an increment of `perf:a` was stored as the whole score (1). Now it is a
    /// stale message for every window at its end: `perf:a` is read again from there, with its span, and a key
    /// without a window is read before an increment.
    #[test]
    fn a_swapdb_is_a_stale_message_for_every_window_to_the_history() {
        let (mut changes, mut batch, start) =
            joined(&[&[b"ZADD", b"perf:a", b"1000", b"m", b"1", b"n"]]);
        let message = commands(
            start,
            &[
                &[b"ZADD", b"perf:x", b"5", b"y"],
                &[b"SWAPDB", b"1", b"0"],
                &[b"ZINCRBY", b"perf:b", b"1", b"m"],
            ],
        );
        changes.apply(&message, &mut batch).unwrap();
        let swapped = start
            + commands(
                0,
                &[&[b"ZADD", b"perf:x", b"5", b"y"], &[b"SWAPDB", b"1", b"0"]],
            )
            .len() as u64
            - commands(0, &[]).len() as u64;
        assert!(!changes.history.needs_resnapshot());
        let mut asked = keys(changes.take_topups(now()));
        asked.sort_unstable();
        assert_eq!(
            asked,
            [b"perf:a".to_vec(), b"perf:b".to_vec(), b"perf:x".to_vec()],
            "the keys known before the swap, and the one the increment needs"
        );
        assert_eq!(batch.inexact_spans, made_by_a_stale_all(swapped));
        perf_b_answered_then_perf_c_read_before_its_increment(&mut changes, &mut batch);
    }

    /// A `SWAPDB` is found where the sink's own reading of the commands reads each command's name: one of another
    /// pair of databases changes nothing; one of the watched database, while another is selected, is a stale message
    /// for every window at its end, and each command around it is read once, in its database.
    #[test]
    fn a_swapdb_is_found_by_the_sinks_reading_of_the_commands_whatever_database_is_selected() {
        let (mut changes, mut batch, start) = joined(&[&[b"ZADD", b"perf:a", b"1000", b"m"]]);
        let other: &[&[&[u8]]] = &[
            &[b"SWAPDB", b"1", b"2"],
            &[b"ZADD", b"perf:a", b"1001", b"n"],
        ];
        changes.apply(&commands(start, other), &mut batch).unwrap();
        assert!(
            keys(changes.take_topups(now())).is_empty(),
            "not read again"
        );
        assert!(batch.inexact_spans.is_empty());
        let at = changes.stream_positions()[0].2;
        let list: &[&[&[u8]]] = &[
            &[b"ZADD", b"perf:a", b"1002", b"o"],
            &[b"SELECT", b"1"],
            &[b"ZADD", b"perf:a", b"1", b"elsewhere"],
            &[b"SWAPDB", b"1", b"0"],
            &[b"ZADD", b"perf:a", b"2", b"elsewhere"],
            &[b"SELECT", b"0"],
            &[b"ZADD", b"perf:a", b"1003", b"p"],
        ];
        changes.apply(&commands(at, list), &mut batch).unwrap();
        let swapped = at + (commands(0, &list[..4]).len() - commands(0, &[]).len()) as u64;
        assert_eq!(batch.inexact_spans, made_by_a_stale_all(swapped));
        assert_eq!(keys(changes.take_topups(now())), [b"perf:a".to_vec()]);
        assert_eq!(scores(&batch), [1000.0, 1001.0, 1002.0, 1003.0]);
    }

    /// Issue 23 item 3. A stale message for every window (or a `SWAPDB`) made the mirror assembler wait for a full
    /// snapshot: the first top-up's answer (of `cfg:h`, whose window it dropped) ended it, every other key then taken
    /// for absent, and `HSET cfg:k y 2` of a hash Redis holds more of was written as the whole hash. Now `cfg:h` is
    /// read again, and a window a command makes of a key without one is read again before its rows are written.
    #[test]
    fn after_a_stale_message_for_every_window_the_mirror_reads_a_key_again_before_writing_it() {
        for swap in [false, true] {
            let modes = Modes {
                history: Patterns::new(&[]),
                mirror: Patterns::new(&["cfg:*".to_string()]),
                db: 0,
                window: 10,
            };
            let mut changes = Changes::new(modes, Vec::new(), Vec::new());
            let mut batch = Batch::default();
            let at = joined_and_read(
                &mut changes,
                &mut batch,
                &[&[b"HSET", b"cfg:h", b"a", b"1"]],
            );
            let stale = if swap {
                commands(at, &[&[b"SWAPDB", b"0", b"1"]])
            } else {
                wire::encode_stale_all(at)
            };
            changes.apply(&stale, &mut batch).unwrap();
            assert!(
                !batch.mirror.contains_key("cfg:h")
                    || !matches!(batch.mirror["cfg:h"], MirrorState::Deleted),
                "not deleted (swap: {swap})"
            );
            assert_eq!(
                keys(changes.take_topups(now())),
                [b"cfg:h".to_vec()],
                "swap: {swap}"
            );
            let here = changes.stream_positions()[0].2;
            let mut answer = Vec::new();
            crate::link_io::push_command(&mut answer, &[b"DEL", b"cfg:h"]);
            crate::link_io::push_command(&mut answer, &[b"HSET", b"cfg:h", b"b", b"2"]);
            changes
                .apply(&wire::encode_snapshot(here, &answer), &mut batch)
                .unwrap();
            batch.mirror.clear();
            changes
                .apply(
                    &commands(here, &[&[b"HSET", b"cfg:k", b"y", b"2"]]),
                    &mut batch,
                )
                .unwrap();
            assert!(
                !batch.mirror.contains_key("cfg:k"),
                "not the whole hash (swap: {swap}): {:?}",
                batch.mirror
            );
            assert_eq!(
                keys(changes.take_topups(now())),
                [b"cfg:k".to_vec()],
                "swap: {swap}"
            );
        }
    }

    /// A sink following `cfg:*` alone, with windows of 10 items.
    fn mirror_changes() -> Changes {
        let modes = Modes {
            history: Patterns::new(&[]),
            mirror: Patterns::new(&["cfg:*".to_string()]),
            db: 0,
            window: 10,
        };
        Changes::new(modes, Vec::new(), Vec::new())
    }

    /// Issue 23 item 1, the mirror's gap: after a `SWAPDB` or a stale message for every window the mirror read again
    /// only the keys it held a window of (`cfg:h`), so a key only the swapped-in database held (`cfg:n`) had no rows
    /// until written again. Now the shard is to be listed again, and that is stored with the position; the keys the
    /// relay lists are each read by a top-up (a set among them is marked inexact), and once every one is answered
    /// the shard is listed no more.
    #[test]
    fn after_a_swapdb_the_mirror_reads_every_key_the_relay_lists() {
        for event in ["stale", "swap", "unreadable"] {
            let mut changes = mirror_changes();
            let mut batch = Batch::default();
            let at = joined_and_read(
                &mut changes,
                &mut batch,
                &[&[b"HSET", b"cfg:h", b"a", b"1"]],
            );
            assert!(changes.take_listings(now()).is_empty());
            assert!(batch.mirror_relists.is_empty());
            let stale = match event {
                "swap" => commands(at, &[&[b"SWAPDB", b"0", b"1"]]),
                // A segment that cannot be read (a negative bulk length) after a command it can.
                "unreadable" => {
                    let mut bytes = Vec::new();
                    crate::link_io::push_command(&mut bytes, &[b"SET", b"cfg:v", b"1"]);
                    bytes.extend_from_slice(b"*2\r\n$-5\r\n");
                    wire::encode_commands(at, &bytes)
                }
                _ => wire::encode_stale_all(at),
            };
            changes.apply(&stale, &mut batch).unwrap();
            assert_eq!(batch.mirror_relists, ["e1"], "stored ({event})");
            assert_eq!(changes.take_listings(now()), [(0, "e1".to_string())]);
            assert!(changes.take_listings(now()).is_empty(), "once a session");
            assert_eq!(keys(changes.take_topups(now())), [b"cfg:h".to_vec()]);
            changes.listed(
                0,
                vec![b"cfg:h".to_vec(), b"cfg:n".to_vec()],
                vec![b"cfg:s".to_vec()],
                &mut batch,
            );
            assert!(batch
                .sets
                .contains(&SetOp::Add("cfg:s".into(), Vec::new(), false)));
            assert_eq!(
                keys(changes.take_topups(now())),
                [b"cfg:n".to_vec()],
                "cfg:h is asked already ({event})"
            );
            let here = changes.stream_positions()[0].2;
            let mut answer = Vec::new();
            crate::link_io::push_command(&mut answer, &[b"DEL", b"cfg:n"]);
            crate::link_io::push_command(&mut answer, &[b"SET", b"cfg:n", b"v"]);
            changes
                .apply(&wire::encode_snapshot(here, &answer), &mut batch)
                .unwrap();
            assert_eq!(
                batch.mirror.get("cfg:n"),
                Some(&MirrorState::String { value: "v".into() })
            );
            assert_eq!(batch.mirror_relists, ["e1"], "cfg:h is not read yet");
            answer.clear();
            crate::link_io::push_command(&mut answer, &[b"DEL", b"cfg:h"]);
            changes
                .apply(&wire::encode_snapshot(here, &answer), &mut batch)
                .unwrap();
            assert!(batch.mirror_relists.is_empty(), "{event}");
            assert!(batch.write_relists, "the mark cleared is written");
            assert!(changes.take_listings(now()).is_empty());
            let mut next = Batch::default();
            changes
                .apply(&commands(here, &[&[b"SET", b"cfg:v", b"1"]]), &mut next)
                .unwrap();
            assert!(!next.write_relists, "no mark written with every batch");
        }
    }

    /// A sink stopped before every key listed was read (its position says so) lists the shard again when its stream
    /// resumes there; a stream the position does not mark is not listed, and a listing that failed is tried again in
    /// the next session.
    #[test]
    fn a_resumed_sink_lists_again_the_shard_its_position_marks() {
        let mut changes = mirror_changes();
        changes.mirror_relists_stored(vec!["e1".to_string(), "gone".to_string()]);
        changes.resuming(&[("e0".to_string(), 10), ("e1".to_string(), 20)]);
        let mut batch = Batch::default();
        for (shard, epoch, offset) in [(0, "e0", 10), (1, "e1", 20)] {
            changes
                .apply(&on(shard, wire::encode_hello(epoch, offset)), &mut batch)
                .unwrap();
        }
        assert_eq!(changes.take_listings(now()), [(1, "e1".to_string())]);
        assert_eq!(
            batch.mirror_relists,
            ["e1"],
            "a stream no hello resumed is not marked once every stream said its hello"
        );
        assert!(changes.take_listings(now()).is_empty());
        changes.reconnected();
        assert_eq!(
            changes.take_listings(now()),
            [(1, "e1".to_string())],
            "again"
        );
        changes.listed(1, Vec::new(), Vec::new(), &mut batch);
        assert!(batch.mirror_relists.is_empty(), "nothing to read");
    }

    /// `SADD cfg:s x`'s set operation.
    fn sadd_op(exact: bool) -> SetOp {
        SetOp::Add("cfg:s".into(), vec!["x".into()], exact)
    }

    /// Issue 23 review, F1: after a `SWAPDB` (or a stale message for every window) the set rows are deleted and the
    /// relay lists the shard's keys. A listing that failed or was refused (over 10,000 keys) named no set, so a
    /// `SADD` to a set the swap brought in (`{a,b,c}`) was written as the whole set, `exact = true`. Now until a
    /// listing of the shard is applied, a set written is marked inexact; after it, a new set is exact again.
    #[test]
    fn a_set_written_before_the_listing_is_applied_is_inexact() {
        for event in ["swap", "stale"] {
            let mut changes = mirror_changes();
            let mut batch = Batch::default();
            let at = joined_and_read(&mut changes, &mut batch, &[&[b"SET", b"cfg:v", b"1"]]);
            let stale = match event {
                "swap" => commands(at, &[&[b"SWAPDB", b"0", b"1"]]),
                _ => wire::encode_stale_all(at),
            };
            changes.apply(&stale, &mut batch).unwrap();
            assert_eq!(changes.take_listings(now()), [(0, "e1".to_string())]);
            let here = changes.stream_positions()[0].2;
            let mut next = Batch::default();
            changes
                .apply(&commands(here, &[&[b"SADD", b"cfg:s", b"x"]]), &mut next)
                .unwrap();
            assert_eq!(next.sets, [sadd_op(false)], "{event}");
            // The listing failed: the session's next one takes it again, the sets still unknown.
            changes.reconnected();
            assert_eq!(changes.take_listings(now()), [(0, "e1".to_string())]);
            let here = changes.stream_positions()[0].2;
            next = Batch::default();
            changes
                .apply(
                    &commands(here, &[&[b"SMOVE", b"cfg:t", b"cfg:s", b"x"]]),
                    &mut next,
                )
                .unwrap();
            assert_eq!(
                next.sets.last(),
                Some(&sadd_op(false)),
                "SMOVE's destination ({event})"
            );
            changes.listed(0, Vec::new(), Vec::new(), &mut batch);
            let here = changes.stream_positions()[0].2;
            next = Batch::default();
            changes
                .apply(&commands(here, &[&[b"SADD", b"cfg:s", b"x"]]), &mut next)
                .unwrap();
            assert_eq!(next.sets, [sadd_op(true)], "listed: none ({event})");
        }
    }

    /// F1 across a restart: a sink whose position marks the shard to be listed again resumes with its sets unknown,
    /// as the stopped one had them, until the listing is applied.
    #[test]
    fn a_resumed_sink_writes_a_set_inexact_until_its_marked_listing_is_applied() {
        let mut changes = mirror_changes();
        changes.mirror_relists_stored(vec!["e1".to_string()]);
        changes.resuming(&[("e1".to_string(), 20)]);
        let mut batch = Batch::default();
        changes
            .apply(&wire::encode_hello("e1", 20), &mut batch)
            .unwrap();
        assert_eq!(changes.take_listings(now()), [(0, "e1".to_string())]);
        let mut next = Batch::default();
        changes
            .apply(&commands(20, &[&[b"SADD", b"cfg:s", b"x"]]), &mut next)
            .unwrap();
        assert_eq!(next.sets, [sadd_op(false)]);
        changes.listed(0, Vec::new(), Vec::new(), &mut batch);
        let here = changes.stream_positions()[0].2;
        next = Batch::default();
        changes
            .apply(&commands(here, &[&[b"SADD", b"cfg:s", b"x"]]), &mut next)
            .unwrap();
        assert_eq!(next.sets, [sadd_op(true)]);
    }

    /// Issue 23 review, F2: a `SWAPDB` of two databases neither of which is the watched one changed nothing there,
    /// yet marked every set row inexact for good. Now it writes no set operation, whichever database is selected,
    /// and a set written after it is still exact.
    #[test]
    fn a_swapdb_of_two_other_databases_leaves_the_sets_exact() {
        for list in [
            &[&[b"SWAPDB" as &[u8], b"1", b"2"] as &[&[u8]]] as &[&[&[u8]]],
            &[
                &[b"SELECT", b"1"],
                &[b"SWAPDB", b"2", b"1"],
                &[b"SELECT", b"0"],
            ],
        ] {
            let mut changes = mirror_changes();
            let mut batch = Batch::default();
            joined_and_read(&mut changes, &mut batch, &[&[b"SADD", b"cfg:s", b"x"]]);
            assert_eq!(batch.sets.last(), Some(&sadd_op(true)));
            let here = changes.stream_positions()[0].2;
            let mut next = Batch::default();
            changes.apply(&commands(here, list), &mut next).unwrap();
            assert!(next.sets.is_empty(), "{:?}", next.sets);
            assert!(changes.take_listings(now()).is_empty());
        }
    }

    /// Issue 23 (review 13a, F4): a listing that failed (the relay's `--max-sessions` reached, a network error) is
    /// tried again within the session, 5 s after, then twice as long each time up to a minute; a listing that came
    /// ends the waits, and a new stale message for every window is listed at once.
    #[test]
    fn a_listing_that_failed_is_tried_again_in_the_session_after_a_wait() {
        let mut changes = mirror_changes();
        let mut batch = Batch::default();
        let at = joined_and_read(
            &mut changes,
            &mut batch,
            &[&[b"HSET", b"cfg:h", b"a", b"1"]],
        );
        changes
            .apply(&wire::encode_stale_all(at), &mut batch)
            .unwrap();
        let start = now();
        let s = |secs: u64| start + std::time::Duration::from_secs(secs);
        assert_eq!(changes.take_listings(s(0)), [(0, "e1".to_string())]);
        assert_eq!(changes.lists_again_at(), None, "listing");
        let mut at = 0;
        for wait in [5, 10, 20, 40, 60, 60] {
            changes.listing_failed(0, s(at));
            assert_eq!(changes.lists_again_at(), Some(s(at + wait)));
            assert!(
                changes.take_listings(s(at + wait - 1)).is_empty(),
                "not before {wait} s"
            );
            at += wait;
            assert_eq!(
                changes.take_listings(s(at)),
                [(0, "e1".to_string())],
                "after {wait} s"
            );
        }
        changes.listed(0, vec![b"cfg:a".to_vec()], Vec::new(), &mut batch);
        assert_eq!(changes.lists_again_at(), None, "listed");
        changes
            .apply(&wire::encode_stale_all(at), &mut batch)
            .unwrap();
        assert_eq!(
            changes.take_listings(s(at)),
            [(0, "e1".to_string())],
            "at once"
        );
        changes.listing_failed(0, s(at));
        assert_eq!(changes.lists_again_at(), Some(s(at + 5)), "from 5 s again");
    }

    /// Issue 23 (review 13a, F3): the listing of the only shard deletes the set rows of every key it did not name
    /// (a set the withheld command deleted) but those a set command wrote since the stale message for every window,
    /// whose rows are the stream's; past [`MAX_SETS_WRITTEN`] such keys it deletes none.
    #[test]
    fn a_listing_deletes_the_sets_it_did_not_name_but_those_written_since() {
        for (written, keeps) in [(1, true), (MAX_SETS_WRITTEN + 1, false)] {
            let mut changes = mirror_changes();
            let mut batch = Batch::default();
            let at = joined_and_read(&mut changes, &mut batch, &[&[b"SADD", b"cfg:s", b"a"]]);
            changes
                .apply(&wire::encode_stale_all(at), &mut batch)
                .unwrap();
            let adds: Vec<Vec<u8>> = (0..written)
                .map(|i| format!("cfg:w{i}").into_bytes())
                .collect();
            let mut list: Vec<&[&[u8]]> = Vec::new();
            let args: Vec<[&[u8]; 3]> = adds.iter().map(|k| [&b"SADD"[..], k, b"m"]).collect();
            list.extend(args.iter().map(|a| &a[..]));
            changes.apply(&commands(at, &list), &mut batch).unwrap();
            assert_eq!(changes.take_listings(now()), [(0, "e1".to_string())]);
            let mut batch = Batch::default();
            changes.listed(
                0,
                vec![b"cfg:h".to_vec()],
                vec![b"cfg:n".to_vec()],
                &mut batch,
            );
            let kept = batch.sets.iter().find_map(|op| match op {
                SetOp::KeepSets(keys) => Some(keys.iter().cloned().collect::<BTreeSet<_>>()),
                _ => None,
            });
            if keeps {
                let want: BTreeSet<String> = ["cfg:h", "cfg:n", "cfg:w0"]
                    .iter()
                    .map(|k| k.to_string())
                    .collect();
                assert_eq!(kept, Some(want), "cfg:s deleted, cfg:w0 kept");
            } else {
                assert_eq!(
                    kept, None,
                    "past {MAX_SETS_WRITTEN} sets written, none deleted"
                );
            }
        }
    }

    /// Review of issue 23 (fix25b item 2): after a stale message for every window, the mirrored keys a deletion
    /// names are known absent (checked), and so are those a top-up's answer says are gone, but only so many are
    /// kept: answers naming a new key each time (`cfg:job-<id>`) do not grow the sink's memory. One dropped is read
    /// again before a command's rows of it are written, never written as the whole key; one answered last is
    /// written at once.
    #[test]
    fn the_mirrored_keys_known_absent_after_a_stale_message_for_every_window_are_bounded() {
        let modes = Modes {
            history: Patterns::new(&[]),
            mirror: Patterns::new(&["cfg:*".to_string()]),
            db: 0,
            window: 10,
        };
        let mut changes = Changes::new(modes, Vec::new(), Vec::new());
        let mut batch = Batch::default();
        let at = joined_and_read(&mut changes, &mut batch, &[&[b"SET", b"cfg:a", b"1"]]);
        changes
            .apply(&wire::encode_stale_all(at), &mut batch)
            .unwrap();
        assert_eq!(keys(changes.take_topups(now())), [b"cfg:a".to_vec()]);
        let names: Vec<Vec<u8>> = (0..3 * ABSENT_KEPT)
            .map(|i| format!("cfg:job-{i}").into_bytes())
            .collect();
        let mut answer = Vec::new();
        for name in &names {
            crate::link_io::push_command(&mut answer, &[b"DEL", name]);
        }
        changes
            .apply(&wire::encode_snapshot(at, &answer), &mut batch)
            .unwrap();
        assert!(
            changes.checked.len() <= 2 * ABSENT_KEPT,
            "{} keys checked",
            changes.checked.len()
        );
        let here = changes.stream_positions()[0].2;
        batch.mirror.clear();
        let last = format!("cfg:job-{}", 3 * ABSENT_KEPT - 1).into_bytes();
        changes
            .apply(
                &commands(
                    here,
                    &[
                        &[b"HSET", b"cfg:job-0", b"f", b"1"],
                        &[b"HSET", &last, b"f", b"1"],
                    ],
                ),
                &mut batch,
            )
            .unwrap();
        let written: Vec<&str> = batch.mirror.keys().map(String::as_str).collect();
        assert_eq!(written, [format!("cfg:job-{}", 3 * ABSENT_KEPT - 1)]);
        assert_eq!(keys(changes.take_topups(now())), [b"cfg:job-0".to_vec()]);
    }

    /// Issue 23 item 2. A segment that cannot be read (a negative bulk length) made the history assembler wait for a
    /// full snapshot, as a `SWAPDB` did: the first top-up's answer ended it, and an increment of a key without a
    /// window was stored as the whole score. Now the message is a stale message for every window at its end, and
    /// the keys the lost commands may have made are recorded over the message.
    #[test]
    fn a_segment_the_sink_cannot_read_is_a_stale_message_for_every_window() {
        let (mut changes, mut batch, start) =
            joined(&[&[b"ZADD", b"perf:a", b"1000", b"m", b"1", b"n"]]);
        let mut bytes = Vec::new();
        crate::link_io::push_command(&mut bytes, &[b"ZINCRBY", b"perf:b", b"1", b"m"]);
        bytes.extend_from_slice(b"*2\r\n$-5\r\n");
        let end = start + bytes.len() as u64;
        changes
            .apply(&wire::encode_commands(start, &bytes), &mut batch)
            .unwrap();
        assert!(!changes.history.needs_resnapshot());
        let mut asked = keys(changes.take_topups(now()));
        asked.sort_unstable();
        assert_eq!(asked, [b"perf:a".to_vec(), b"perf:b".to_vec()]);
        assert_eq!(
            batch.inexact_spans,
            [InexactSpan {
                to_offset: end,
                pattern: true,
                ..span("perf:*", start, end)
            }]
        );
        perf_b_answered_then_perf_c_read_before_its_increment(&mut changes, &mut batch);
    }

    /// After a stale message for every window that made `perf:b` unknown: its answer (`m` at 8) stores that row, and
    /// a `ZINCRBY` of `perf:c` (which the sink holds no window of) stores no row of 1 but asks its top-up.
    fn perf_b_answered_then_perf_c_read_before_its_increment(
        changes: &mut Changes,
        batch: &mut Batch,
    ) {
        let rows = batch.zsets.len();
        answer_now(changes, batch, b"perf:b", &[("8", b"m")]);
        let more = changes.stream_positions()[0].2;
        changes
            .apply(
                &commands(more, &[&[b"ZINCRBY", b"perf:c", b"1", b"m"]]),
                batch,
            )
            .unwrap();
        assert_eq!(scores(batch)[rows..], [8.0], "no row of 1 for perf:c");
        assert_eq!(keys(changes.take_topups(now())), [b"perf:c".to_vec()]);
    }

    /// What a stale message for every window at `at` records at once of the keys the withheld command may have made
    /// (the sink holds no window of them): a span of the `--history` pattern, `perf:*`, from and to `at`, marked as a
    /// pattern's.
    fn made_by_a_stale_all(at: u64) -> Vec<InexactSpan> {
        vec![InexactSpan {
            pattern: true,
            ..span("perf:*", at, at)
        }]
    }

    /// A new sink that read `list` (as [`joined`]), then a stale message for every window 40 bytes on: it, a batch of
    /// what the stale message alone stored and the stale message's offset.
    fn stale_all_after(list: &[&[&[u8]]]) -> (Changes, Batch, u64) {
        let (mut changes, _, offset) = joined(list);
        let at = offset + 40;
        let mut batch = Batch::default();
        changes
            .apply(&wire::encode_stale_all(at), &mut batch)
            .unwrap();
        (changes, batch, at)
    }

    /// `perf:a` (`m` at 1000, and `n`) followed, then a stale message for every window (the relay withheld a
    /// command, here one that gave `m` 1005, whose keys it could not all name) at `at`: of `resumed` (a sink resumed
    /// with `perf:a`'s window stored, its batch and where it resumed), or of a new one (`None`). The sink, its batch
    /// and `at`.
    fn stale_all_after_perf_a(resumed: Option<(Changes, Batch, u64)>) -> (Changes, Batch, u64) {
        let (mut changes, mut batch, offset) =
            resumed.unwrap_or_else(|| joined(&[&[b"ZADD", b"perf:a", b"1000", b"m", b"1", b"n"]]));
        assert!(changes.history.window(b"perf:a").is_some());
        let at = offset + 40;
        changes
            .apply(&wire::encode_stale_all(at), &mut batch)
            .unwrap();
        (changes, batch, at)
    }

    /// Issue 23 item 1. A stale message for every window makes every key the sink holds a window of unknown: each is
    /// read by a top-up, asked from the stale message's offset, which opens its span there. A `ZINCRBY` of the key
    /// before the answer makes it inexact (the score the withheld command gave is replaced, and nothing the stream
    /// says has it): recorded, from the stale message to the answer. With no write before the answer, the answer
    /// has the withheld command's score and no span of the key is recorded; in both, the span of the keys the
    /// withheld command may have made is recorded at once.
    #[test]
    fn a_stale_message_for_every_window_opens_a_span_of_each_key_it_makes_unknown() {
        for written_again in [true, false] {
            let (mut changes, mut batch, at) = stale_all_after_perf_a(None);
            assert_eq!(changes.take_topups(now()), one_ask(Some(at), b"perf:a"));
            assert_eq!(batch.inexact_spans, made_by_a_stale_all(at));
            let members: &[(&str, &[u8])] = if written_again {
                let increment = commands(at, &[&[b"ZINCRBY", b"perf:a", b"1", b"m"]]);
                changes.apply(&increment, &mut batch).unwrap();
                &[("1", b"n"), ("1006", b"m")]
            } else {
                &[("1", b"n"), ("1005", b"m")]
            };
            let rows = batch.zsets.len();
            let answered = answer_now(&mut changes, &mut batch, b"perf:a", members);
            let mut expected = made_by_a_stale_all(at);
            if written_again {
                expected.push(span("perf:a", at, answered));
            }
            assert_eq!(
                batch.inexact_spans, expected,
                "written again: {written_again}"
            );
            let stored = if written_again { 1006.0 } else { 1005.0 };
            assert_eq!(scores(&batch)[rows..], [stored], "the answer's row of m");
        }
    }

    /// The same for a sink resumed with `perf:a`'s window stored (rebuilt at the resume); and for one stopped after
    /// the stale message and before the answer, which stored the key unknown with its span from the stale message:
    /// resumed there, a `ZINCRBY` before the answer records the span from the stale message, before the position.
    #[test]
    fn a_stale_message_for_every_window_records_a_span_across_a_restart() {
        // A window stored known, from a sink stopped before the stale message.
        let mut first = changes();
        let mut known = Batch::default();
        let before = joined_and_read(
            &mut first,
            &mut known,
            &[
                &[b"ZADD", b"perf:a", b"1000", b"m", b"1", b"n"],
                &[b"ZINCRBY", b"perf:a", b"0", b"n"],
            ],
        );
        let stored = stored_windows(&known);
        assert!(stored[0].1.known);
        let (resumed, batch) = resumed_at(stored, "e1", before);
        let (mut resumed, mut batch, at) = stale_all_after_perf_a(Some((resumed, batch, before)));
        assert_eq!(resumed.take_topups(now()), one_ask(Some(at), b"perf:a"));
        let increment = commands(at, &[&[b"ZINCRBY", b"perf:a", b"1", b"m"]]);
        resumed.apply(&increment, &mut batch).unwrap();
        let answered = answer_now(&mut resumed, &mut batch, b"perf:a", &[("1006", b"m")]);
        let mut expected = made_by_a_stale_all(at);
        expected.push(span("perf:a", at, answered));
        assert_eq!(batch.inexact_spans, expected, "resumed, then stale");

        // Stopped after the stale message: the key stored unknown, its span from the stale message.
        let (_, stopped, at) = stale_all_after_perf_a(None);
        let stored = stored_windows(&stopped);
        let spans: Vec<_> = stored
            .iter()
            .map(|(k, w)| (k.as_slice(), w.known, w.span))
            .collect();
        let from_the_stale = StoredSpan {
            from: at,
            inexact: false,
        };
        assert_eq!(spans, [(&b"perf:a"[..], false, Some(from_the_stale))]);
        assert_eq!(stopped.positions[0].1, at);
        let (mut resumed, mut batch) = resumed_at(stored, "e1", at);
        assert_eq!(resumed.take_topups(now()), one_ask(Some(at), b"perf:a"));
        let increment = commands(at, &[&[b"ZINCRBY", b"perf:a", b"1", b"m"]]);
        resumed.apply(&increment, &mut batch).unwrap();
        let answered = answer_now(&mut resumed, &mut batch, b"perf:a", &[("1006", b"m")]);
        assert_eq!(
            batch.inexact_spans,
            [span("perf:a", at, answered)],
            "stale, then resumed"
        );
    }

    /// After a stale message for every window the sink does not take a key it holds no window of for absent: the
    /// withheld command may have made it. The answer to another key's top-up says nothing of it, so a `ZINCRBY` of it
    /// (or a `ZADD` then a `ZINCRBY`) has it read by a top-up first instead of storing the increment as the whole
    /// score; a key it deletes is known again. A join afresh (its snapshot reads every key) ends that.
    #[test]
    fn after_a_stale_message_for_every_window_a_key_without_a_window_is_read_before_an_increment() {
        let (mut changes, mut batch, at) = stale_all_after_perf_a(None);
        changes.take_topups(now());
        let answered = answer_now(&mut changes, &mut batch, b"perf:a", &[("1005", b"m")]);
        assert_eq!(answered, at);
        let rows = batch.zsets.len();
        let written = commands(
            at,
            &[
                &[b"ZINCRBY", b"perf:c", b"1", b"m"],
                &[b"ZADD", b"perf:d", b"7", b"x"],
                &[b"ZINCRBY", b"perf:d", b"1", b"m"],
                &[b"DEL", b"perf:e"],
                &[b"ZINCRBY", b"perf:e", b"1", b"m"],
            ],
        );
        changes.apply(&written, &mut batch).unwrap();
        assert_eq!(
            scores(&batch)[rows..],
            [7.0, 1.0],
            "the ZADD's row, and perf:e's made anew; no score made up for perf:c or perf:d"
        );
        assert_eq!(
            keys(changes.take_topups(now())),
            [b"perf:c".to_vec(), b"perf:d".to_vec()]
        );

        let mut batch = Batch::default();
        changes
            .apply(&wire::encode_hello("e2", 0), &mut batch)
            .unwrap();
        changes
            .apply(&wire::encode_snapshot(0, b""), &mut batch)
            .unwrap();
        let increment = commands(0, &[&[b"ZINCRBY", b"perf:f", b"1", b"m"]]);
        changes.apply(&increment, &mut batch).unwrap();
        assert_eq!(scores(&batch), [1.0], "known not to exist by the snapshot");
    }

    /// Review of issue 23 item 5: a stale message for every window while the shard joins afresh (after its hello,
    /// before its snapshot) lasts only until the snapshot, which reads every key: a `ZINCRBY` of a key it does not
    /// name then makes the key anew, with no top-up.
    #[test]
    fn a_join_afresh_s_snapshot_ends_a_stale_message_for_every_window_before_it() {
        let mut changes = changes();
        let mut batch = Batch::default();
        changes
            .apply(&wire::encode_hello("e1", 0), &mut batch)
            .unwrap();
        changes
            .apply(&wire::encode_stale_all(0), &mut batch)
            .unwrap();
        assert!(changes.shards[0].stale_all);
        changes
            .apply(&wire::encode_snapshot(0, b""), &mut batch)
            .unwrap();
        let increment = commands(0, &[&[b"ZINCRBY", b"perf:f", b"1", b"m"]]);
        changes.apply(&increment, &mut batch).unwrap();
        assert_eq!(scores(&batch), [1.0], "known not to exist by the snapshot");
        assert!(keys(changes.take_topups(now())).is_empty());
    }

    /// Review of issue 23 item 3: after a stale message for every window, the keys a deletion names are known absent
    /// (checked), but only so many are kept: a workload deleting a new key each time (`perf:job-<id>`) does not grow
    /// the sink's memory. One dropped costs a top-up before an increment of it, never a score made up; one deleted
    /// last makes the key anew at once.
    #[test]
    fn the_keys_known_absent_after_a_stale_message_for_every_window_are_bounded() {
        let (mut changes, mut batch, at) = stale_all_after_perf_a(None);
        changes.take_topups(now());
        answer_now(&mut changes, &mut batch, b"perf:a", &[("1005", b"m")]);
        let names: Vec<Vec<u8>> = (0..3 * ABSENT_KEPT)
            .map(|i| format!("perf:job-{i}").into_bytes())
            .collect();
        let deletions: Vec<[&[u8]; 2]> = names.iter().map(|k| [&b"DEL"[..], k]).collect();
        let list: Vec<&[&[u8]]> = deletions.iter().map(|d| &d[..]).collect();
        changes.apply(&commands(at, &list), &mut batch).unwrap();
        assert!(
            changes.history_checked.len() <= 2 * ABSENT_KEPT,
            "{} keys checked",
            changes.history_checked.len()
        );

        let mut batch = Batch::default();
        let end = changes.stream_positions()[0].2;
        let last = names.last().unwrap().as_slice();
        let increments = commands(
            end,
            &[
                &[b"ZINCRBY", last, b"1", b"m"],
                &[b"ZINCRBY", b"perf:job-0", b"1", b"m"],
            ],
        );
        changes.apply(&increments, &mut batch).unwrap();
        assert_eq!(scores(&batch), [1.0], "the last deleted made anew");
        assert_eq!(keys(changes.take_topups(now())), [b"perf:job-0".to_vec()]);
    }

    /// Review of issue 23's fixes, item 2: a join afresh clears the keys checked, and their bound with them: one
    /// grown by the keys with a window left at a drop would otherwise let the absent keys of the next stale message
    /// for every window grow that far.
    #[test]
    fn a_join_afresh_resets_the_bound_of_the_keys_checked() {
        let (mut changes, mut batch, _) = stale_all_after_perf_a(None);
        // As after a drop that left 2,048 keys with a window (left + left).
        changes.checked_kept = 4 * ABSENT_KEPT;
        changes
            .apply(&wire::encode_hello("e2", 0), &mut batch)
            .unwrap();
        assert!(changes.history_checked.is_empty());
        assert_eq!(changes.checked_kept, ABSENT_KEPT);
    }

    /// Review of issue 23 item 2: a stale message for every window makes the collector's keys stateful (stored
    /// unknown) only until their top-up is answered: then each is stateful no more, its row deleted in the answer's
    /// transaction, and the stream's plain `ZADD`s of it store nothing, as before. A key stateful before it
    /// (`ZINCRBY`), or that such a command names before the answer, stays stateful.
    #[test]
    fn a_key_stateful_only_for_a_stale_message_for_every_window_is_not_once_answered() {
        let (mut changes, mut batch, at) = stale_all_after(&[
            &[b"ZADD", b"perf:a", b"1000", b"m"],
            &[b"ZADD", b"perf:b", b"1", b"x"],
            &[b"ZINCRBY", b"perf:c", b"1", b"m"],
        ]);
        let unknown = |k| (k, "unknown".to_string());
        assert_eq!(
            stored_states(&batch),
            [unknown("perf:a"), unknown("perf:b"), unknown("perf:c")]
        );
        changes.take_topups(now());
        let increment = commands(at, &[&[b"ZINCRBY", b"perf:b", b"1", b"x"]]);
        changes.apply(&increment, &mut batch).unwrap();

        let mut answered = |key: &[u8], members: &[(&str, &[u8])]| {
            let mut batch = Batch::default();
            answer_now(&mut changes, &mut batch, key, members);
            stored_states(&batch)
                .into_iter()
                .map(|(k, s)| (k.to_string(), s))
                .collect::<Vec<_>>()
        };
        let state = |k: &str, s: &str| vec![(k.to_string(), s.to_string())];
        assert_eq!(
            answered(b"perf:a", &[("1005", b"m")]),
            state("perf:a", "gone")
        );
        assert_eq!(
            answered(b"perf:b", &[("2", b"x")]),
            state("perf:b", "1 members")
        );
        assert_eq!(
            answered(b"perf:c", &[("1", b"m")]),
            state("perf:c", "1 members")
        );
        assert!(!changes.stateful.contains(&b"perf:a"[..]));

        let mut batch = Batch::default();
        let at = changes.stream_positions()[0].2;
        let samples = commands(
            at,
            &[
                &[b"ZADD", b"perf:a", b"1010", b"n"],
                &[b"ZADD", b"perf:b", b"3", b"y"],
            ],
        );
        changes.apply(&samples, &mut batch).unwrap();
        assert_eq!(
            stored_states(&batch),
            [("perf:b", "2 members".to_string())],
            "perf:a stores nothing"
        );
    }

    /// A key no top-up can name (over 1,024 bytes) whose window a stale message for every window makes unknown is
    /// never read again: its span is recorded at once. A stale message for every window the history applied already
    /// (a duplicate) changes nothing.
    #[test]
    fn a_stale_message_for_every_window_records_a_key_it_cannot_read_again_at_once() {
        let long = format!("perf:{}", "x".repeat(1100));
        let (mut changes, batch, at) =
            stale_all_after(&[&[b"ZADD", long.as_bytes(), b"1000", b"m"]]);
        let mut expected = made_by_a_stale_all(at);
        expected.push(InexactSpan {
            key: long.clone(),
            ..span("perf:*", at, at)
        });
        assert_eq!(batch.inexact_spans, expected);
        assert!(keys(changes.take_topups(now())).is_empty());

        let mut batch = Batch::default();
        changes
            .apply(&wire::encode_stale_all(at - 40), &mut batch)
            .unwrap();
        assert!(batch.inexact_spans.is_empty() && batch.windows.is_empty());
    }

    /// Review of issue 23 item 1: a key no top-up can name, stored unknown (a stale message for every window made it
    /// so), opens no span when the sink resumes, its answer never coming: two `ZINCRBY`s of it after the resume (the
    /// second may replace the first's score, which no answer reads) are recorded at once, as in a running sink.
    #[test]
    fn a_key_no_top_up_can_name_stored_unknown_is_recorded_at_once_after_a_restart() {
        let long = format!("perf:{}", "x".repeat(1100));
        let (_, batch, at) = stale_all_after(&[&[b"ZADD", long.as_bytes(), b"1000", b"m"]]);
        let stored = stored_windows(&batch);
        let states: Vec<_> = stored.iter().map(|(k, w)| (k.len(), w.known)).collect();
        assert_eq!(states, [(long.len(), false)]);

        let (mut resumed, mut batch) = resumed_at(stored, "e1", at);
        assert!(keys(resumed.take_topups(now())).is_empty());
        let increments = commands(
            at,
            &[
                &[b"ZINCRBY", long.as_bytes(), b"1", b"m"],
                &[b"ZINCRBY", long.as_bytes(), b"1", b"m"],
            ],
        );
        resumed.apply(&increments, &mut batch).unwrap();
        let to = resumed.stream_positions()[0].2;
        let recorded: Vec<_> = batch
            .inexact_spans
            .iter()
            .map(|s| (s.key == long, s.from_offset, s.to_offset))
            .collect();
        // Each from its command (the two are as long) to where the stream stands.
        let second = at + (to - at) / 2;
        assert_eq!(recorded, [(true, at, to), (true, second, to)]);
    }

    /// A sink stopped while a key's top-up was pending after a `…STORE` into it stores its window as unknown, with
    /// where its span starts (the command); the one resumed there opens the span from that offset, the whole key
    /// counted as written: a write after the resume and before the top-up's answer is recorded, from the command.
    #[test]
    fn a_key_pending_at_the_position_opens_a_span_when_the_sink_resumes() {
        let mut first = changes();
        let mut batch = Batch::default();
        let zadd: &[&[u8]] = &[b"ZADD", b"perf:a", b"1000", b"m"];
        joined_and_read(
            &mut first,
            &mut batch,
            &[zadd, &[b"ZUNIONSTORE", b"perf:u", b"1", b"perf:a"]],
        );
        let store_at = {
            let mut bytes = Vec::new();
            crate::link_io::push_command(&mut bytes, zadd);
            bytes.len() as u64
        };
        let (epoch, offset) = batch.positions[0].clone();
        let stored = stored_windows(&batch);
        assert_eq!(stored_states(&batch), [("perf:u", "unknown".to_string())]);
        let from_the_store = StoredSpan {
            from: store_at,
            inexact: false,
        };
        assert_eq!(stored[0].1.span, Some(from_the_store));

        let (mut resumed, mut batch) = resumed_at(stored, &epoch, offset);
        let more = commands(offset, &[&[b"ZADD", b"perf:u", b"5", b"m"]]);
        resumed.apply(&more, &mut batch).unwrap();
        assert_eq!(keys(resumed.take_topups(now())), [b"perf:u".to_vec()]);
        let at = answer_now(&mut resumed, &mut batch, b"perf:u", &[("5", b"m")]);
        assert_eq!(batch.inexact_spans, [span("perf:u", store_at, at)]);
    }

    /// Past [`MAX_OPEN_SPANS`] open spans, one more is not watched: it is recorded inexact at once, to where the
    /// stream stands, and the spans open stay as many.
    #[test]
    fn a_span_past_the_cap_is_recorded_at_once() {
        let mut changes = changes();
        let mut batch = Batch::default();
        let mut offset = joined_and_read(
            &mut changes,
            &mut batch,
            &[&[b"ZADD", b"perf:a", b"1000", b"m"]],
        );
        let keys: Vec<String> = (0..=MAX_OPEN_SPANS).map(|i| format!("perf:u{i}")).collect();
        for chunk in keys.chunks(512) {
            let list: Vec<Vec<&[u8]>> = chunk
                .iter()
                .map(|k| vec![&b"ZUNIONSTORE"[..], k.as_bytes(), b"1", b"perf:a"])
                .collect();
            let list: Vec<&[&[u8]]> = list.iter().map(Vec::as_slice).collect();
            let mut batch = Batch::default();
            changes.apply(&commands(offset, &list), &mut batch).unwrap();
            offset = changes.stream_positions()[0].2;
            if chunk.last() != keys.last() {
                assert!(batch.inexact_spans.is_empty());
            } else {
                let last = keys.last().unwrap();
                let from = offset
                    - commands(0, &[&[b"ZUNIONSTORE", last.as_bytes(), b"1", b"perf:a"]]).len()
                        as u64
                    + 13;
                assert_eq!(
                    batch.inexact_spans,
                    [InexactSpan {
                        epoch: "e1".to_string(),
                        key: last.clone(),
                        shard: 0,
                        from_offset: from,
                        to_offset: offset,
                        pattern: false,
                    }]
                );
            }
        }
        assert_eq!(changes.spans.len(), MAX_OPEN_SPANS);
    }

    /// The spans a resume opens (one per key pending at the position, as many as the windows stored) are not counted
    /// in [`MAX_OPEN_SPANS`]: a command's span opened after a resume with more pending keys than that is watched,
    /// not recorded at once (the review's case: 5,000 keys pending, then an exact `ZUNIONSTORE`).
    #[test]
    fn spans_a_resume_opens_leave_the_cap_to_commands() {
        let pending = MAX_OPEN_SPANS + 904;
        let stored: Vec<(Vec<u8>, StoredWindow)> = (0..pending)
            .map(|i| {
                let window = StoredWindow {
                    shard: 0,
                    known: false,
                    complete: false,
                    members: Vec::new(),
                    span: None,
                    epoch: None,
                };
                (format!("perf:k{i}").into_bytes(), window)
            })
            .collect();
        let mut resumed = Changes::new(changes().modes, Vec::new(), stored);
        resumed.resuming(&[("e1".to_string(), 100)]);
        let mut batch = Batch::default();
        resumed
            .apply(&wire::encode_hello("e1", 100), &mut batch)
            .unwrap();
        assert_eq!(resumed.spans.len(), pending);
        let mut batch = Batch::default();
        let store = commands(100, &[&[b"ZUNIONSTORE", b"perf:u", b"1", b"perf:zz"]]);
        resumed.apply(&store, &mut batch).unwrap();
        assert!(
            batch.inexact_spans.is_empty(),
            "an exact span recorded: {:?}",
            batch.inexact_spans
        );
        assert_eq!(
            resumed.spans.len(),
            pending + 1,
            "the store's span is watched"
        );
    }

    /// Writes that may change what a `…STORE` wrote before its top-up's answer, each recording the span from the
    /// store: a flush (of every database, also from another one), `SWAPDB` (which also records the keys it may have
    /// made, as a stale message for every window), a `RENAME` over the key, a `MOVE` into it from another database, a
    /// `DEL` then the key made again, a `SELECT` inside a block; a TTL set does not.
    #[test]
    fn writes_over_a_pending_store_record_its_span() {
        let cases: [(&str, &[&[&[u8]]]); 8] = [
            ("flushall", &[&[b"FLUSHALL"]]),
            ("flushall from db 1", &[&[b"SELECT", b"1"], &[b"FLUSHALL"]]),
            ("swapdb", &[&[b"SWAPDB", b"0", b"1"]]),
            ("rename over", &[&[b"RENAME", b"perf:x", b"perf:u"]]),
            (
                "move in",
                &[&[b"SELECT", b"1"], &[b"MOVE", b"perf:u", b"0"]],
            ),
            (
                "del then made again",
                &[&[b"DEL", b"perf:u"], &[b"ZADD", b"perf:u", b"1", b"m"]],
            ),
            (
                "select inside a block",
                &[
                    &[b"MULTI"],
                    &[b"SELECT", b"1"],
                    &[b"MOVE", b"perf:u", b"0"],
                    &[b"EXEC"],
                ],
            ),
            ("ttl", &[&[b"PEXPIRE", b"perf:u", b"100"]]),
        ];
        for (case, writes) in cases {
            let (mut changes, mut batch, offset) = joined(&[&[b"ZADD", b"perf:a", b"1000", b"m"]]);
            let store = commands(offset, &[&[b"ZUNIONSTORE", b"perf:u", b"1", b"perf:a"]]);
            changes.apply(&store, &mut batch).unwrap();
            assert_eq!(
                keys(changes.take_topups(now())),
                [b"perf:u".to_vec()],
                "{case}"
            );
            let at = changes.stream_positions()[0].2;
            changes.apply(&commands(at, writes), &mut batch).unwrap();
            keys(changes.take_topups(now()));
            answer_now(&mut changes, &mut batch, b"perf:u", &[]);
            let spans: Vec<(&str, u64)> = batch
                .inexact_spans
                .iter()
                .map(|s| (s.key.as_str(), s.from_offset))
                .collect();
            // A `SWAPDB` is also a stale message for every window at its end: the keys it may have made.
            let swapped = at + commands(0, writes).len() as u64 - commands(0, &[]).len() as u64;
            let expected: &[(&str, u64)] = match case {
                "ttl" => &[],
                "swapdb" => &[("perf:*", swapped), ("perf:u", offset)],
                _ => &[("perf:u", offset)],
            };
            assert_eq!(spans, expected, "{case}");
        }
    }

    /// A past message of one sorted-set key, spelled out: tag 11, the offset of the answer it comes before, then the
    /// key (length, bytes), its `covered_from`, its item count, and each item (offset, kind 0, score as f64 bits,
    /// member's length and bytes), little-endian.
    fn past(offset: u64, key: &[u8], covered_from: u64, items: &[(u64, f64, &[u8])]) -> Vec<u8> {
        let mut message = vec![11];
        message.extend_from_slice(&offset.to_le_bytes());
        message.extend_from_slice(&(key.len() as u32).to_le_bytes());
        message.extend_from_slice(key);
        message.extend_from_slice(&covered_from.to_le_bytes());
        message.extend_from_slice(&(items.len() as u32).to_le_bytes());
        for (at, score, member) in items {
            message.extend_from_slice(&at.to_le_bytes());
            message.push(0);
            message.extend_from_slice(&score.to_bits().to_le_bytes());
            message.extend_from_slice(&(member.len() as u32).to_le_bytes());
            message.extend_from_slice(member);
        }
        message
    }

    /// `perf:u` stored into (`ZUNIONSTORE`, its rows from the top-up: a span opens at the command, `store`) and
    /// written again before the answer (`ZADD perf:u 5 m`: the span is inexact): the sink, the offset where the
    /// top-up was asked from (`since`), and where the answer comes (`at`).
    fn stored_into_and_written_again() -> (Changes, Batch, u64, u64) {
        let (mut changes, mut batch, store) = joined(&[&[b"ZADD", b"perf:a", b"1000", b"m"]]);
        let stored = commands(store, &[&[b"ZUNIONSTORE", b"perf:u", b"1", b"perf:a"]]);
        changes.apply(&stored, &mut batch).unwrap();
        let asks = changes.take_topups(now());
        assert_eq!(
            asks,
            one_ask(Some(store), b"perf:u"),
            "asked from where the span starts"
        );
        let at = changes.stream_positions()[0].2;
        let written = commands(at, &[&[b"ZADD", b"perf:u", b"5", b"m"]]);
        changes.apply(&written, &mut batch).unwrap();
        let at = changes.stream_positions()[0].2;
        (changes, batch, store, at)
    }

    /// The relay's past writes of the key, listing every write from the span's start, come before the answer:
    /// each has its row (the store's result, which the `ZADD` replaced before the answer, too) and the span is
    /// exact.
    #[test]
    fn past_writes_from_a_spans_start_store_the_score_between_and_close_it() {
        let (mut changes, mut batch, store, at) = stored_into_and_written_again();
        let rows = batch.zsets.len();
        // The literal of one item: `perf:u`, covered from 0, the store's result (1000, `m`) at `store + 1`.
        let literal: &[u8] = b"\x0b\x2a\0\0\0\0\0\0\0\x06\0\0\0perf:u\0\0\0\0\0\0\0\0\x01\0\0\0\
              \x29\0\0\0\0\0\0\0\0\0\0\0\0\0\x40\x8f\x40\x01\0\0\0m";
        assert_eq!(literal, past(42, b"perf:u", 0, &[(41, 1000.0, b"m")]));
        let message = past(
            at,
            b"perf:u",
            0,
            &[(store + 1, 1000.0, b"m"), (at, 5.0, b"m")],
        );
        changes.apply(&message, &mut batch).unwrap();
        assert_eq!(
            scores(&batch)[rows..],
            [1000.0],
            "the ZADD's row is stored already"
        );
        assert!(
            batch.positions.last().is_some_and(|(_, o)| *o == at),
            "the stream does not move"
        );
        answer_now(&mut changes, &mut batch, b"perf:u", &[("5", b"m")]);
        assert_eq!(
            batch.inexact_spans,
            [],
            "every write listed: no score missing"
        );
    }

    /// Past writes cover the span up to the answer they come with only: a span closed by a later answer (the one
    /// they came with left the key for later), after writes they could not list, is recorded to there.
    #[test]
    fn past_writes_cover_a_span_up_to_their_answer_only() {
        let (mut changes, mut batch, store, at) = stored_into_and_written_again();
        changes
            .apply(&past(at, b"perf:u", 0, &[(at, 5.0, b"m")]), &mut batch)
            .unwrap();
        let later = commands(at, &[&[b"ZADD", b"perf:u", b"7", b"m"]]);
        changes.apply(&later, &mut batch).unwrap();
        let answered = answer_now(&mut changes, &mut batch, b"perf:u", &[("7", b"m")]);
        assert!(answered > at);
        assert_eq!(batch.inexact_spans, [span("perf:u", store, answered)]);
    }

    /// Past writes listed from after the span's start (the relay's ring evicted the start, or its state holds the
    /// key since then only): the span is recorded to where they start (`covered_from`), not to the answer; when
    /// the relay cannot say (`covered_from` = the answer's offset, no items), to the answer, as without a past
    /// message. A relay that sends none records the span as before.
    #[test]
    fn past_writes_from_after_a_spans_start_leave_the_part_before_recorded() {
        for (covered, listed) in [(Some(1), true), (Some(0), false), (None, false)] {
            let (mut changes, mut batch, store, at) = stored_into_and_written_again();
            let covered_from = covered.map(|c| store + c).unwrap_or(at);
            if covered.is_some() || listed {
                let items: &[(u64, f64, &[u8])] = if listed { &[(at, 5.0, b"m")] } else { &[] };
                changes
                    .apply(&past(at, b"perf:u", covered_from, items), &mut batch)
                    .unwrap();
            }
            answer_now(&mut changes, &mut batch, b"perf:u", &[("5", b"m")]);
            let to = match covered {
                Some(c) if c > 0 => store + c,
                _ => at,
            };
            let expected = if covered == Some(0) {
                vec![]
            } else {
                vec![span("perf:u", store, to)]
            };
            assert_eq!(batch.inexact_spans, expected, "covered from {covered:?}");
        }
    }

    /// [`stored_into_and_written_again`]'s sink stopped at its batch's position, which is where the stream stands:
    /// the windows it stores (`perf:u`'s span, from the store, inexact), its epoch and offset, and the store's offset.
    fn stopped_with_an_inexact_span() -> (Vec<(Vec<u8>, StoredWindow)>, String, u64, u64) {
        let (_, batch, store, at) = stored_into_and_written_again();
        let (epoch, offset) = batch.positions[0].clone();
        assert_eq!(offset, at);
        let stored = stored_windows(&batch);
        let spans: Vec<_> = stored.iter().map(|(k, w)| (k.as_slice(), w.span)).collect();
        let inexact = StoredSpan {
            from: store,
            inexact: true,
        };
        assert_eq!(spans, [(&b"perf:u"[..], Some(inexact))]);
        (stored, epoch, offset, store)
    }

    /// A sink stopped while a span was open and already inexact stores where it started and that it is inexact;
    /// resumed there, it asks the top-up from that offset. Answered before any write after the resume: exact when
    /// the relay's past writes start there, recorded from the start (before the position) when they do not.
    #[test]
    fn a_span_inexact_at_the_position_goes_on_from_its_start_after_a_resume() {
        let (stored, epoch, offset, store) = stopped_with_an_inexact_span();
        for covered_from in [store, offset] {
            let (mut resumed, mut batch) = resumed_at(stored.clone(), &epoch, offset);
            assert_eq!(resumed.take_topups(now()), one_ask(Some(store), b"perf:u"));
            let items: &[(u64, f64, &[u8])] = if covered_from == store {
                &[(store + 1, 1000.0, b"m"), (offset, 5.0, b"m")]
            } else {
                &[]
            };
            resumed
                .apply(&past(offset, b"perf:u", covered_from, items), &mut batch)
                .unwrap();
            answer_now(&mut resumed, &mut batch, b"perf:u", &[("5", b"m")]);
            let expected = if covered_from == store {
                vec![]
            } else {
                vec![span("perf:u", store, offset)]
            };
            assert_eq!(batch.inexact_spans, expected, "covered from {covered_from}");
        }
    }

    /// A relay older than the past message (its hello's protocol version below 4) is asked without `since`, which it
    /// would refuse.
    #[test]
    fn an_older_relay_is_asked_without_since() {
        let mut changes = changes();
        let mut batch = Batch::default();
        let mut hello = wire::encode_hello("e1", 0);
        assert_eq!(hello[1], wire::PROTOCOL_VERSION);
        hello[1] = SINCE_VERSION - 1;
        changes.apply(&hello, &mut batch).unwrap();
        changes
            .apply(&wire::encode_snapshot(0, b""), &mut batch)
            .unwrap();
        let stored = commands(0, &[&[b"ZUNIONSTORE", b"perf:u", b"1", b"perf:a"]]);
        changes.apply(&stored, &mut batch).unwrap();
        assert_eq!(changes.take_topups(now()), one_ask(None, b"perf:u"));
    }

    /// A key made pending where the stream stands (a stale message) is asked from there, and a past message that does not decode is an error naming where, not a panic.
    #[test]
    fn a_stale_key_is_asked_from_the_stale_offset_and_a_bad_past_is_refused() {
        let (mut changes, mut batch, offset) = joined(&[&[b"ZADD", b"perf:a", b"1000", b"m"]]);
        changes
            .apply(&wire::encode_stale(offset, [&b"perf:b"[..]]), &mut batch)
            .unwrap();
        assert_eq!(changes.take_topups(now()), one_ask(Some(offset), b"perf:b"));
        let message = past(offset, b"perf:u", 0, &[(offset, 5.0, b"m")]);
        for cut in [1, 5, 12, 20, message.len() - 1] {
            let error = changes.apply(&message[..cut], &mut batch).unwrap_err();
            assert!(matches!(error, ChangeError::Wire(_)), "{error}");
        }
    }

    /// A sink stopped while a span was open and already inexact (a `…STORE` into the key, written again before the
    /// answer) stores where it started and that it is inexact; the one resumed there, answered before any write
    /// after the resume, records the span from its start (before the position) to the answer.
    #[test]
    fn a_span_inexact_at_the_position_is_recorded_from_its_start_after_a_resume() {
        let (stored, epoch, offset, store) = stopped_with_an_inexact_span();
        let (mut resumed, mut batch) = resumed_at(stored, &epoch, offset);
        assert_eq!(keys(resumed.take_topups(now())), [b"perf:u".to_vec()]);
        let answered = answer_now(&mut resumed, &mut batch, b"perf:u", &[("5", b"m")]);
        assert_eq!(answered, offset);
        assert_eq!(batch.inexact_spans, [span("perf:u", store, offset)]);
    }

    /// A cluster of two shards: `ZINCRBY perf:a` on shard 0 of a member below the history window (its rows from a
    /// top-up: a span of shard 0 opens), then `perf:a`'s slot moves to shard 1, whose stream increments a member of
    /// it (the same one, or another) before the answer. Shard 0's past writes, listing every write of its own from
    /// the span's start, and its answer (its state still owned the slot) know nothing of shard 1's increment: the
    /// span is recorded, to the answer, not closed as exact.
    #[test]
    fn a_span_written_on_another_shards_stream_is_recorded_whatever_one_shards_past_writes_cover() {
        for member in [&b"m0"[..], b"other"] {
            let (mut changes, mut batch) = two_shards();
            changes.apply(&on(0, twenty_members()), &mut batch).unwrap();
            let from = position(&changes, 0);
            let increment = commands(from, &[&[b"ZINCRBY", b"perf:a", b"1", b"m0"]]);
            changes.apply(&on(0, increment), &mut batch).unwrap();
            assert_eq!(changes.take_topups(now()), one_ask(Some(from), b"perf:a"));

            let moved = commands(0, &[&[b"ZINCRBY", b"perf:a", b"5", member]]);
            changes.apply(&on(1, moved), &mut batch).unwrap();
            let at = position(&changes, 0);
            let listed = past(at, b"perf:a", 0, &[(from + 1, 1001.0, b"m0")]);
            changes.apply(&on(0, listed), &mut batch).unwrap();
            changes
                .apply(
                    &on(0, answer(at, b"perf:a", &[("1001", b"m0")])),
                    &mut batch,
                )
                .unwrap();
            let recorded = cluster_span(0, from, at);
            assert_eq!(
                batch.inexact_spans,
                [recorded],
                "shard 1 incremented {}",
                String::from_utf8_lossy(member)
            );
        }
    }

    /// A cluster of two shards: `perf:a`'s window came from shard 0's stream; its slot moved to shard 1, whose stream
    /// increments one of its members: the window, another shard's, goes stale and a span of shard 1 opens. The relay,
    /// whose topology read has not seen the move yet, routes the top-up to shard 0, whose state answers (its past
    /// writes listing none since it is shard 1's `since`) without shard 1's increment: the span is recorded, not
    /// closed as exact. One answered by its own shard is not.
    #[test]
    fn a_span_answered_by_another_shard_than_its_own_is_recorded() {
        for answering in [0, 1] {
            let (mut changes, mut batch) = two_shards();
            let written = commands(0, &[&[b"ZADD", b"perf:a", b"1000", b"m"]]);
            changes.apply(&on(0, written), &mut batch).unwrap();
            let moved = commands(0, &[&[b"ZINCRBY", b"perf:a", b"5", b"m"]]);
            changes.apply(&on(1, moved), &mut batch).unwrap();
            assert_eq!(changes.take_topups(now()), one_ask(Some(0), b"perf:a"));
            let score = if answering == 0 { "1000" } else { "1005" };
            answered_by(&mut changes, &mut batch, answering, &[(score, b"m")]);
            let recorded: Vec<InexactSpan> = if answering == 0 {
                let to = changes.stream_positions()[1].2;
                vec![cluster_span(1, 0, to)]
            } else {
                Vec::new()
            };
            assert_eq!(
                batch.inexact_spans, recorded,
                "answered by shard {answering}"
            );
        }
    }

    /// The same cluster, the sink stopped after shard 1's increment and before the answer: `perf:a`'s window is
    /// stored in shard 0's keeping with its span's start, inexact, but not that shard 1 wrote the key. Before, the
    /// sink restarted there, shard 0's past writes covering its stream from the span's start and its answer, closed
    /// the span exact: shard 1's increment, which shard 0's answer does not hold, was lost with nothing recorded.
    /// Now the stopped sink's last batch records the span, from the increment to where shard 0's stream stands (its
    /// position); the restarted one records nothing more when shard 0 answers, and the span again when shard 1
    /// does.
    #[test]
    fn a_span_touched_on_two_shards_is_recorded_across_a_restart() {
        for answering in [0, 1] {
            let (mut changes, mut batch) = two_shards();
            changes.apply(&on(0, twenty_members()), &mut batch).unwrap();
            let from = position(&changes, 0);
            let increment = commands(from, &[&[b"ZINCRBY", b"perf:a", b"1", b"m0"]]);
            changes.apply(&on(0, increment), &mut batch).unwrap();
            assert_eq!(changes.take_topups(now()), one_ask(Some(from), b"perf:a"));
            assert!(batch.inexact_spans.is_empty(), "shard 0 alone");

            // The sink stops after the batch holding shard 1's increment (rows, windows and position).
            let mut last = Batch::default();
            let moved = commands(0, &[&[b"ZINCRBY", b"perf:a", b"5", b"m0"]]);
            changes.apply(&on(1, moved), &mut last).unwrap();
            let stopped_at = last.positions.clone();
            let (at0, at1) = (position(&changes, 0), position(&changes, 1));
            let shard0_part = cluster_span(0, from, at0);
            assert_eq!(
                last.inexact_spans,
                std::slice::from_ref(&shard0_part),
                "stopped"
            );

            // The window, stale, is shard 0's, with its span (inexact): resumed, a past message of shard 0 alone
            // would close it exact.
            let stored = stored_windows(&last);
            let spans: Vec<_> = stored
                .iter()
                .map(|(k, w)| (k.as_slice(), w.shard, w.span))
                .collect();
            let inexact = StoredSpan {
                from,
                inexact: true,
            };
            assert_eq!(spans, [(&b"perf:a"[..], 0, Some(inexact))]);
            let (mut resumed, mut batch) = resumed_on_two_shards(stored, &stopped_at, [at0, at1]);
            assert_eq!(resumed.take_topups(now()), one_ask(Some(from), b"perf:a"));
            answered_by(&mut resumed, &mut batch, answering, &[("1006", b"m0")]);
            // Shard 0's answer, its past writes covering its stream from the span's start, closes the restored
            // span exact (after the resume, no other shard wrote the key), shard 1's records it again: either way
            // its part to the position is recorded by the stopped sink.
            let recorded: Vec<InexactSpan> = if answering == 0 {
                Vec::new()
            } else {
                vec![shard0_part.clone()]
            };
            assert_eq!(
                batch.inexact_spans, recorded,
                "answered by shard {answering} after the restart"
            );
        }
    }

    /// [`a_span_answered_by_another_shard_than_its_own_is_recorded`]'s cluster, the sink stopped before the answer:
    /// `perf:a`'s window, stale, came from shard 0's stream, its span is shard 1's. The window is stored in shard 1's
    /// keeping with the span's start (before, in shard 0's without it: a resumed sink opened a span of shard 0 at
    /// its position, and shard 1's part was lost unrecorded). Resumed, the top-up is asked of shard 1's stream from
    /// the span's start; answered by shard 1, covered from there, the span is exact; by shard 0, recorded from its
    /// start.
    #[test]
    fn a_span_of_another_shard_than_its_keys_window_goes_on_after_a_restart() {
        for answering in [0, 1] {
            let (mut changes, mut batch) = two_shards();
            let written = commands(0, &[&[b"ZADD", b"perf:a", b"1000", b"m"]]);
            changes.apply(&on(0, written), &mut batch).unwrap();
            let mut last = Batch::default();
            let moved = commands(0, &[&[b"ZINCRBY", b"perf:a", b"5", b"m"]]);
            changes.apply(&on(1, moved), &mut last).unwrap();
            assert_eq!(changes.take_topups(now()), one_ask(Some(0), b"perf:a"));
            assert!(last.inexact_spans.is_empty());
            let stored = stored_windows(&last);
            let spans: Vec<_> = stored
                .iter()
                .map(|(k, w)| (k.as_slice(), w.shard, w.known, w.span))
                .collect();
            let open = StoredSpan {
                from: 0,
                inexact: false,
            };
            assert_eq!(spans, [(&b"perf:a"[..], 1, false, Some(open))]);

            let (at0, at1) = (position(&changes, 0), position(&changes, 1));
            let (mut resumed, mut batch) =
                resumed_on_two_shards(stored, &last.positions, [at0, at1]);
            assert_eq!(resumed.take_topups(now()), one_ask(Some(0), b"perf:a"));
            answered_by(&mut resumed, &mut batch, answering, &[("1005", b"m")]);
            let recorded: Vec<InexactSpan> = if answering == 0 {
                vec![cluster_span(1, 0, at1)]
            } else {
                Vec::new()
            };
            assert_eq!(
                batch.inexact_spans, recorded,
                "answered by shard {answering} after the restart"
            );
        }
    }

    /// A cluster of two shards, shard 1 joining afresh (its snapshot not come): shard 0's position goes on in each
    /// batch, so a span shard 0's stream opens and makes inexact meanwhile is stored with `perf:a`'s window, in
    /// shard 0's keeping (before, no window was stored until the join ended: a sink stopped then resumed shard 0
    /// past the increments with no span, and lost it unrecorded). Resumed, the relay's past writes not reaching the
    /// span's start, it is recorded from there.
    #[test]
    fn a_span_opened_while_another_shard_joins_is_stored_with_its_shards_position() {
        // What the database holds: every batch committed, the last one's position.
        let (mut changes, mut db) = two_shards();
        changes.apply(&on(0, twenty_members()), &mut db).unwrap();
        assert!(db.windows.is_empty(), "plain ZADDs make no key stateful");
        changes
            .apply(&on(1, wire::encode_hello("e1b", 0)), &mut db)
            .unwrap();
        let from = changes.history.positions()[0].2;
        let increment = commands(from, &[&[b"ZINCRBY", b"perf:a", b"1", b"m0"]]);
        changes.apply(&on(0, increment), &mut db).unwrap();
        assert_eq!(changes.take_topups(now()), one_ask(Some(from), b"perf:a"));
        let again = changes.history.positions()[0].2;
        let increment = commands(again, &[&[b"ZINCRBY", b"perf:a", b"1", b"m0"]]);
        changes.apply(&on(0, increment), &mut db).unwrap();
        let at0 = changes.history.positions()[0].2;
        assert_eq!(db.positions, [("e0".to_string(), at0)], "shard 1 joining");
        assert!(db.inexact_spans.is_empty(), "the answer may still come");
        let stored = stored_windows(&db);
        let spans: Vec<_> = stored
            .iter()
            .map(|(k, w)| (k.as_slice(), w.shard, w.known, w.span))
            .collect();
        let inexact = StoredSpan {
            from,
            inexact: true,
        };
        assert_eq!(spans, [(&b"perf:a"[..], 0, false, Some(inexact))]);

        // The sink stops there; resumed, shard 0 asks the top-up from the span's start, and the relay's past
        // writes list the key's writes from the position on only.
        let mut resumed = Changes::new(self::changes().modes, Vec::new(), stored);
        resumed.resuming(&db.positions);
        let mut batch = Batch::default();
        resumed
            .apply(&on(0, wire::encode_hello("e0", at0)), &mut batch)
            .unwrap();
        assert_eq!(resumed.take_topups(now()), one_ask(Some(from), b"perf:a"));
        resumed
            .apply(&on(0, past(at0, b"perf:a", at0, &[])), &mut batch)
            .unwrap();
        let answer = answer(at0, b"perf:a", &[("1002", b"m0")]);
        resumed.apply(&on(0, answer), &mut batch).unwrap();
        let recorded = cluster_span(0, from, at0);
        assert_eq!(batch.inexact_spans, [recorded]);
    }

    /// A restarted sink holds `perf:a`'s window, stored in shard 1's keeping with an inexact span open (its top-up
    /// pending at the position), until shard 1 resumes. Shard 1 does not: shard 0's top-up of the slots it gained
    /// names the key, or shard 1 joins afresh. Either way the span, which no resume opens again, is recorded from its
    /// start to shard 1's stored position (before, the held window was dropped and the span with it, unrecorded).
    #[test]
    fn a_held_span_whose_shard_does_not_resume_is_recorded() {
        let held = StoredWindow {
            shard: 1,
            known: false,
            complete: false,
            members: Vec::new(),
            span: Some(StoredSpan {
                from: 10,
                inexact: true,
            }),
            epoch: None,
        };
        let positions = [("e0".to_string(), 100), ("e1".to_string(), 50)];
        let recorded = cluster_span(1, 10, 50);
        for gained in [true, false] {
            let stored = vec![(b"perf:a".to_vec(), held.clone())];
            let mut resumed = Changes::new(self::changes().modes, Vec::new(), stored);
            resumed.resuming(&positions);
            let mut batch = Batch::default();
            resumed
                .apply(&on(0, wire::encode_hello("e0", 100)), &mut batch)
                .unwrap();
            assert!(batch.inexact_spans.is_empty(), "held for shard 1");
            // A session again (the relay restarted), from where this process stands: shard 1 not among them.
            resumed.reconnected();
            resumed.resuming(&resumed.positions());
            let mut batch = Batch::default();
            if gained {
                let top_up = answer(100, b"perf:a", &[("5", b"m")]);
                resumed.apply(&on(0, top_up), &mut batch).unwrap();
            } else {
                resumed
                    .apply(&on(1, wire::encode_hello("e1b", 0)), &mut batch)
                    .unwrap();
            }
            assert_eq!(
                batch.inexact_spans,
                std::slice::from_ref(&recorded),
                "gained by shard 0: {gained}"
            );
        }
    }

    /// `perf:a`'s window stored as unknown (its top-up pending) with a span open from offset 10 of the stream of
    /// epoch `epoch`, which had shard index `shard` then.
    fn pending_on(shard: u16, epoch: &str) -> Vec<(Vec<u8>, StoredWindow)> {
        pending_with(shard, Some(epoch), false)
    }

    /// `perf:a`'s window stored as unknown (its top-up pending) in the keeping of shard index `shard`, of the stream
    /// of `epoch` (`None`: stored by a sink before windows kept their epoch), with a span open from offset 10,
    /// `inexact` or not.
    fn pending_with(
        shard: u16,
        epoch: Option<&str>,
        inexact: bool,
    ) -> Vec<(Vec<u8>, StoredWindow)> {
        let window = StoredWindow {
            shard,
            known: false,
            complete: false,
            members: Vec::new(),
            span: Some(StoredSpan { from: 10, inexact }),
            epoch: epoch.map(str::to_string),
        };
        vec![(b"perf:a".to_vec(), window)]
    }

    /// A sink resuming at `positions`, holding [`pending_on`] shard index 1 of stream `epoch`, and a new batch.
    fn holding_pending_on_1(epoch: &str, positions: &[(String, u64)]) -> (Changes, Batch) {
        let mut resumed = Changes::new(changes().modes, Vec::new(), pending_on(1, epoch));
        resumed.resuming(positions);
        (resumed, Batch::default())
    }

    /// A window stored in the keeping of shard index 1, of stream `eA`; the new session numbers the shards anew:
    /// `eA` resumes as shard 0, and index 1 is `eB`'s. The span reopens on `eA`'s stream (shard 0), its top-up asked
    /// from where it started, and an answer of `eB`'s stream cannot close it exact: it is recorded, of `eA`. Matched
    /// by index (before the window kept its epoch), it reopened on `eB`'s stream at `eB`'s resume, where `eB`'s past
    /// writes, which are not `eA`'s, closed it exact: a silent loss.
    #[test]
    fn a_held_span_reopens_on_its_epochs_stream_whatever_its_index_now() {
        let positions = [("eB".to_string(), 60), ("eA".to_string(), 50)];
        let (mut resumed, mut batch) = holding_pending_on_1("eA", &positions);
        resumed
            .apply(&on(0, wire::encode_hello("eA", 50)), &mut batch)
            .unwrap();
        let watch = &resumed.spans[&b"perf:a"[..]];
        assert_eq!(
            (watch.shard, watch.epoch.as_str(), watch.from),
            (0, "eA", 10)
        );
        assert_eq!(resumed.take_topups(now()), one_ask(Some(10), b"perf:a"));
        resumed
            .apply(&on(1, wire::encode_hello("eB", 60)), &mut batch)
            .unwrap();
        assert!(batch.inexact_spans.is_empty(), "the answer may still come");
        assert_eq!(
            batch.windows["perf:a"]
                .as_ref()
                .map(|w| (w.shard, w.epoch.as_deref())),
            Some((0, Some("eA"))),
            "stored in the keeping of eA's index now"
        );

        // Answered on eB's stream, which lists no write of the key since 10.
        let mut batch = Batch::default();
        resumed
            .apply(&on(1, past(60, b"perf:a", 10, &[])), &mut batch)
            .unwrap();
        resumed
            .apply(&on(1, answer(60, b"perf:a", &[("5", b"m")])), &mut batch)
            .unwrap();
        assert_eq!(
            batch.inexact_spans,
            [InexactSpan {
                epoch: "eA".to_string(),
                shard: 0,
                ..span("perf:a", 10, 50)
            }]
        );
    }

    /// A window held for stream `eA`, which no stream of the new session continues (its shard left the cluster while
    /// the sink was stopped; index 1 is a new shard's, `eD`, which joins afresh). Once every shard has joined, the
    /// span, exact so far, is recorded from its start to `eA`'s stored position (no answer of `eA` will come), and
    /// the key is read by a top-up. Before, the join afresh of index 1 dropped the span (only an inexact one was
    /// recorded) and nothing read the key: the rows of the commands that opened it were lost, silently.
    #[test]
    fn a_held_span_whose_stream_no_shard_continues_is_recorded_once_all_have_joined() {
        let positions = [("eC".to_string(), 100), ("eA".to_string(), 50)];
        let (mut resumed, mut batch) = holding_pending_on_1("eA", &positions);
        resumed
            .apply(&on(0, wire::encode_hello("eC", 100)), &mut batch)
            .unwrap();
        resumed
            .apply(&on(1, wire::encode_hello("eD", 0)), &mut batch)
            .unwrap();
        assert!(batch.inexact_spans.is_empty(), "eA may still resume");
        assert!(keys(resumed.take_topups(now())).is_empty());
        assert!(!batch.windows.contains_key("perf:a"), "held as stored");

        let mut batch = Batch::default();
        resumed
            .apply(&on(1, wire::encode_snapshot(0, b"")), &mut batch)
            .unwrap();
        assert_eq!(
            batch.inexact_spans,
            [InexactSpan {
                epoch: "eA".to_string(),
                shard: 1,
                ..span("perf:a", 10, 50)
            }]
        );
        assert_eq!(keys(resumed.take_topups(now())), [b"perf:a".to_vec()]);
        assert_eq!(
            batch.windows["perf:a"].as_ref().map(|w| (w.known, w.span)),
            Some((false, None)),
            "stored as unknown, its span recorded"
        );
        let mut batch = Batch::default();
        let more = commands(100, &[&[b"ZADD", b"perf:x", b"1", b"y"]]);
        resumed.apply(&on(0, more), &mut batch).unwrap();
        assert!(batch.inexact_spans.is_empty(), "recorded once");
    }

    /// Three streams stored, two in the new session (the cluster lost `eB`'s shard with its slots, given to a shard
    /// that was there): fewer hellos than positions, so the sink cannot tell `eB` gone from late. Once no hello came
    /// for a while (the follower says so: `hellos_settled`), `eB`'s held span is recorded, at the next message, to
    /// its stored position and the key read by a top-up; a hello after that starts the wait again. Before, the window
    /// stayed held, its span not recorded, until a message of another shard named the key.
    #[test]
    fn a_held_span_of_a_cluster_that_shrank_is_recorded_once_the_hellos_have_settled() {
        let positions = [
            ("eA".to_string(), 50),
            ("eB".to_string(), 60),
            ("eC".to_string(), 70),
        ];
        let (mut resumed, mut batch) = holding_pending_on_1("eB", &positions);
        let hello = resumed
            .apply(&on(0, wire::encode_hello("eA", 50)), &mut batch)
            .unwrap();
        assert!(hello.hello);
        let progress = |shard: u16, at: u64| on(shard, wire::encode_commands(at, b""));
        resumed.apply(&progress(0, 50), &mut batch).unwrap();
        resumed.hellos_settled();
        resumed
            .apply(&on(1, wire::encode_hello("eC", 70)), &mut batch)
            .unwrap();
        resumed.apply(&progress(0, 50), &mut batch).unwrap();
        resumed.apply(&progress(1, 70), &mut batch).unwrap();
        assert!(batch.inexact_spans.is_empty(), "eB may still say hello");
        assert!(keys(resumed.take_topups(now())).is_empty());

        resumed.hellos_settled();
        let mut batch = Batch::default();
        resumed.apply(&progress(1, 70), &mut batch).unwrap();
        assert_eq!(
            batch.inexact_spans,
            [InexactSpan {
                epoch: "eB".to_string(),
                shard: 1,
                ..span("perf:a", 10, 60)
            }]
        );
        assert_eq!(keys(resumed.take_topups(now())), [b"perf:a".to_vec()]);
    }

    /// A cluster of two shards ([`two_shards`]) whose stream `shard` wrote [`twenty_members`], then incremented
    /// `m0`, below `perf:a`'s window: the key is pending, its top-up asked from the increment. The sink, its batch and
    /// where the increment stands.
    fn pending_on_shard(shard: u16) -> (Changes, Batch, u64) {
        let (mut changes, mut batch) = two_shards();
        changes
            .apply(&on(shard, twenty_members()), &mut batch)
            .unwrap();
        let from = position(&changes, shard);
        let increment = commands(from, &[&[b"ZINCRBY", b"perf:a", b"1", b"m0"]]);
        changes.apply(&on(shard, increment), &mut batch).unwrap();
        assert_eq!(changes.take_topups(now()), one_ask(Some(from), b"perf:a"));
        (changes, batch, from)
    }

    /// A cluster of two shards: `perf:a` is written on shard 1's stream, a `ZINCRBY` of a member below its window
    /// opens a span (its top-up pending), inexact when the member is incremented again before the answer. Then shard
    /// 1 leaves the cluster with its slots: the relay says its stream ended, and no answer will come. Before, the
    /// span stayed open, not recorded, for as long as the sink ran (and the window was stored with it, in shard 1's
    /// keeping). Now it is recorded, exact or not (the increments' rows were to come from the answer), from its
    /// start to where shard 1's stream ended, in the batch that lets shard 1's position go (its epoch's row
    /// deleted) and stores `perf:a` as absent, without the span; an ended message again, or for a shard that never
    /// said hello, changes nothing. The key then lives on shard 0 (its slot given to it, empty): shard 0's
    /// `ZINCRBY` is read exactly from the key's absence, with no top-up.
    #[test]
    fn the_spans_of_a_shard_that_leaves_the_cluster_are_recorded_where_its_stream_ended() {
        for written_again in [false, true] {
            let (mut changes, mut batch, from) = pending_on_shard(1);
            if written_again {
                let again = position(&changes, 1);
                let increment = commands(again, &[&[b"ZINCRBY", b"perf:a", b"1", b"m0"]]);
                changes.apply(&on(1, increment), &mut batch).unwrap();
            }
            assert!(batch.inexact_spans.is_empty(), "the answer may still come");
            let (at0, at1) = (position(&changes, 0), position(&changes, 1));

            let mut last = Batch::default();
            let ended = on(1, wire::encode_ended("left"));
            let applied = changes.apply(&ended, &mut last).unwrap();
            assert_eq!(applied.ended.as_deref(), Some("left"));
            assert_eq!(
                last.inexact_spans,
                [cluster_span(1, from, at1)],
                "written again: {written_again}"
            );
            assert_eq!(last.retired_epochs, ["e1"]);
            assert_eq!(last.positions, [("e0".to_string(), at0)]);
            assert_eq!(
                changes.positions(),
                last.positions,
                "shard 1 is not resumed"
            );
            let stored: Vec<_> = stored_windows(&last)
                .into_iter()
                .map(|(k, w)| (k, w.shard, w.absent(), w.span))
                .collect();
            assert_eq!(stored, [(b"perf:a".to_vec(), 1, true, None)]);
            for again in [ended, on(2, wire::encode_ended("never followed"))] {
                let mut batch = Batch::default();
                changes.apply(&again, &mut batch).unwrap();
                assert!(batch.inexact_spans.is_empty() && batch.retired_epochs.is_empty());
            }

            let mut batch = Batch::default();
            let created = commands(at0, &[&[b"ZINCRBY", b"perf:a", b"5", b"m0"]]);
            changes.apply(&on(0, created), &mut batch).unwrap();
            assert_eq!(scores(&batch), [5.0]);
            assert!(changes.take_topups(now()).is_empty());
            assert!(batch.inexact_spans.is_empty());
        }
    }

    /// A restarted sink holds `perf:a`'s window, stored in shard 1's keeping with an inexact span open (its top-up
    /// pending at the position); shard 1 resumes, which opens the span again from its start and asks the top-up, and
    /// then leaves the cluster. Before, the span stayed open, not recorded (and a sink restarted again held the
    /// window with it for a shard that would never resume). Now the ended message records it, from its start to
    /// where shard 1's stream ended, and lets shard 1's position go.
    #[test]
    fn a_held_span_whose_shard_resumes_then_leaves_the_cluster_is_recorded() {
        let stored = pending_with(1, None, true);
        let positions = [("e0".to_string(), 100), ("e1".to_string(), 50)];
        let (mut resumed, batch) = resumed_on_two_shards(stored, &positions, [100, 50]);
        assert!(batch.inexact_spans.is_empty());
        assert_eq!(resumed.take_topups(now()), one_ask(Some(10), b"perf:a"));
        let mut batch = Batch::default();
        resumed
            .apply(&on(1, wire::encode_ended("left")), &mut batch)
            .unwrap();
        assert_eq!(batch.inexact_spans, [cluster_span(1, 10, 50)]);
        assert_eq!(batch.retired_epochs, ["e1"]);
        assert_eq!(batch.positions, [("e0".to_string(), 100)]);
        let stored: Vec<_> = stored_windows(&batch)
            .into_iter()
            .map(|(k, w)| (k, w.absent(), w.span))
            .collect();
        assert_eq!(stored, [(b"perf:a".to_vec(), true, None)]);
    }

    /// A cluster of two shards: `perf:a`'s span is shard 0's (its stream incremented a member below the window), but
    /// the relay routed the top-up to shard 1 (the key's slot moved there), which then leaves the cluster. Which
    /// top-ups went with its stream the sink cannot tell: every pending one is asked again (before, `perf:a`'s was
    /// not until the next session, and its span stayed open), here from the span's start; the span, shard 0's, waits
    /// for that answer, and is exact when it comes with past writes covering it.
    #[test]
    fn the_top_ups_pending_when_a_shard_leaves_are_asked_again() {
        let (mut changes, mut batch, from) = pending_on_shard(0);
        changes
            .apply(&on(1, wire::encode_ended("left")), &mut batch)
            .unwrap();
        assert!(batch.inexact_spans.is_empty(), "shard 0's span waits");
        assert_eq!(changes.take_topups(now()), one_ask(Some(from), b"perf:a"));
        answered_by(&mut changes, &mut batch, 0, &[("1001", b"m0")]);
        assert!(batch.inexact_spans.is_empty());
        assert!(changes.take_topups(now()).is_empty());
    }

    /// A cluster of two shards: `perf:a` (20 members) is pending on shard 1's stream (a `ZINCRBY` of a member below
    /// its window, a span open), then its slot moves to shard 0 with the key, whose stream increments `m1`; then
    /// shard 1 leaves the cluster. The key lives on shard 0: before, the ended message took it for gone (it was
    /// pending on shard 1's stream) and dropped its top-up, and shard 0's next `ZINCRBY perf:a 50 m19` stored 50, the
    /// increment alone, where Redis holds 1069, with no span. Now it is asked again (from where it became pending),
    /// and its rows come from shard 0's answer; its span, written on two shards' streams, is recorded inexact.
    #[test]
    fn a_key_moved_while_pending_is_asked_again_not_taken_for_absent() {
        let (mut changes, mut batch, from) = pending_on_shard(1);
        let at0 = position(&changes, 0);
        let moved = commands(at0, &[&[b"ZINCRBY", b"perf:a", b"1", b"m1"]]);
        changes.apply(&on(0, moved), &mut batch).unwrap();
        let at1 = position(&changes, 1);

        let mut last = Batch::default();
        changes
            .apply(&on(1, wire::encode_ended("left")), &mut last)
            .unwrap();
        assert_eq!(last.inexact_spans, [cluster_span(1, from, at1)]);
        let stored: Vec<_> = stored_windows(&last)
            .into_iter()
            .map(|(k, w)| (k, w.absent()))
            .collect();
        assert!(!stored.contains(&(b"perf:a".to_vec(), true)), "{stored:?}");
        assert_eq!(changes.take_topups(now()), one_ask(Some(from), b"perf:a"));

        // Shard 0 answers with what Redis holds: m0 and m1 incremented.
        let held: Vec<(String, String)> = (0..20)
            .map(|i| (format!("{}", 1000 + i + u32::from(i < 2)), format!("m{i}")))
            .collect();
        let held: Vec<(&str, &[u8])> = held
            .iter()
            .map(|(s, m)| (s.as_str(), m.as_bytes()))
            .collect();
        let mut batch = Batch::default();
        answered_by(&mut changes, &mut batch, 0, &held);
        let mut batch = Batch::default();
        let at0 = position(&changes, 0);
        let again = commands(at0, &[&[b"ZINCRBY", b"perf:a", b"50", b"m19"]]);
        changes.apply(&on(0, again), &mut batch).unwrap();
        assert_eq!(scores(&batch), [1069.0], "the increment on Redis's score");
        assert!(changes.take_topups(now()).is_empty());
    }

    /// A cluster of two shards, mirroring `cfg:*`: `cfg:a` and `cfg:m` are written on shard 1's stream, `cfg:b` on
    /// shard 0's, then `cfg:m`'s slot moves to shard 0 with the key, whose stream writes it. When shard 1 leaves the
    /// cluster, Redis no longer holds `cfg:a`: before, its row stayed in the mirror table; now it is deleted with
    /// shard 1's position, and `cfg:b` and the moved `cfg:m` (read again from shard 0) are left as they are.
    #[test]
    fn the_mirrored_keys_of_a_shard_that_leaves_the_cluster_are_deleted() {
        let modes = Modes {
            history: Patterns::new(&["perf:*".to_string()]),
            mirror: Patterns::new(&["cfg:*".to_string()]),
            db: 0,
            window: 10,
        };
        let (mut changes, mut batch) = two_shards_of(Changes::new(modes, Vec::new(), Vec::new()));
        let set = |key: &'static [u8], value: &'static [u8]| -> [&'static [u8]; 3] {
            [b"SET", key, value]
        };
        let on_1 = commands(0, &[&set(b"cfg:a", b"1"), &set(b"cfg:m", b"1")]);
        changes.apply(&on(1, on_1), &mut batch).unwrap();
        let on_0 = commands(0, &[&set(b"cfg:b", b"2")]);
        changes.apply(&on(0, on_0), &mut batch).unwrap();
        let moved = commands(position(&changes, 0), &[&set(b"cfg:m", b"3")]);
        changes.apply(&on(0, moved), &mut batch).unwrap();
        changes.take_topups(now());

        let mut last = Batch::default();
        changes
            .apply(&on(1, wire::encode_ended("left")), &mut last)
            .unwrap();
        let mirrored: Vec<(&str, &MirrorState)> =
            last.mirror.iter().map(|(k, v)| (k.as_str(), v)).collect();
        assert_eq!(mirrored, [("cfg:a", &MirrorState::Deleted)]);
        assert_eq!(last.retired_epochs, ["e1"]);
    }

    /// Review of issue 23 (fix25b item 3): a set the sink followed on a shard that leaves the cluster is gone from
    /// Redis; before, its `mirror_set` rows stayed marked exact. Now every set row is marked inexact with the lost
    /// shard's position.
    #[test]
    fn the_set_rows_of_a_shard_that_leaves_the_cluster_are_inexact() {
        let modes = Modes {
            history: Patterns::new(&[]),
            mirror: Patterns::new(&["cfg:*".to_string()]),
            db: 0,
            window: 10,
        };
        let mut changes = Changes::new(modes, Vec::new(), Vec::new());
        let mut batch = Batch::default();
        for (shard, epoch) in [(0, "e0"), (1, "e1")] {
            changes
                .apply(&on(shard, wire::encode_hello(epoch, 0)), &mut batch)
                .unwrap();
            changes
                .apply(&on(shard, wire::encode_snapshot(0, b"")), &mut batch)
                .unwrap();
        }
        let on_1 = commands(0, &[&[b"SADD", b"cfg:s", b"x"]]);
        changes.apply(&on(1, on_1), &mut batch).unwrap();
        assert_eq!(
            batch.sets.last(),
            Some(&SetOp::Add(
                "cfg:s".to_string(),
                vec!["x".to_string()],
                true
            ))
        );
        let mut last = Batch::default();
        changes
            .apply(&on(1, wire::encode_ended("left")), &mut last)
            .unwrap();
        assert!(last.sets.contains(&SetOp::AllInexact), "{:?}", last.sets);
        assert_eq!(last.retired_epochs, ["e1"]);
    }

    /// After a shard left, the sink's next session (the relay restarted, or dropped it) numbers the shards anew: the
    /// shard that now has index 1 is another one, which joins afresh under its own epoch. Its position is stored
    /// and resumed from as any other's.
    #[test]
    fn another_shard_under_the_index_of_one_that_left_has_a_position_of_its_own() {
        let (mut changes, mut batch) = two_shards();
        changes
            .apply(&on(1, wire::encode_ended("left")), &mut batch)
            .unwrap();
        changes.reconnected();
        changes.resuming(&changes.positions());
        let mut batch = Batch::default();
        for message in [
            on(0, wire::encode_hello("e0", 0)),
            on(1, wire::encode_hello("e2", 7)),
            on(1, wire::encode_snapshot(7, b"")),
        ] {
            changes.apply(&message, &mut batch).unwrap();
        }
        assert_eq!(
            batch.positions,
            [("e0".to_string(), 0), ("e2".to_string(), 7)]
        );
        assert!(batch.retired_epochs.is_empty());
    }

    /// The `ZADD`s of `perf:a`'s 20 members, `m0` to `m19` scored 1000 to 1019 (the history window holds the 16
    /// highest, from 1004, and not the whole key), a message of the stream at offset 0.
    fn twenty_members() -> Vec<u8> {
        let scores: Vec<String> = (1000..1020).map(|s| s.to_string()).collect();
        let members: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
        let list: Vec<[&[u8]; 4]> = scores
            .iter()
            .zip(&members)
            .map(|(s, m)| [&b"ZADD"[..], b"perf:a", s.as_bytes(), m.as_bytes()])
            .collect();
        let list: Vec<&[&[u8]]> = list.iter().map(|c| &c[..]).collect();
        commands(0, &list)
    }

    /// A sink that joined and read [`twenty_members`]: where the stream stands after.
    fn joined_with_twenty_members(changes: &mut Changes, batch: &mut Batch) -> u64 {
        let at = joined_and_applied(changes, batch, &twenty_members());
        assert_eq!(batch.zsets.len(), 20);
        assert!(keys(changes.take_topups(now())).is_empty());
        at
    }

    /// A `ZADD` with `NX`, `XX`, `GT` or `LT` of a member the history window does not hold, below its floor, on a
    /// key the window does not hold whole: the window is right (the member ends below it) and reports nothing, but
    /// Redis wrote the member among the key's `--window` newest, which the sink promises rows of. The key is read by
    /// a top-up, asked from the command (its span opens there), whose answer writes the member. A flagged `ZADD` of
    /// a member the window holds, or one it takes in, asks nothing.
    #[test]
    fn a_flagged_zadd_below_a_window_not_whole_asks_a_top_up_whose_answer_writes_it() {
        let mut changes = changes();
        let mut batch = Batch::default();
        let at = joined_with_twenty_members(&mut changes, &mut batch);
        let held = commands(
            at,
            &[
                &[b"ZADD", b"perf:a", b"XX", b"1019.5", b"m19"],
                &[b"ZADD", b"perf:a", b"GT", b"2000", b"top"],
            ],
        );
        changes.apply(&held, &mut batch).unwrap();
        assert_eq!(scores(&batch)[20..], [1019.5, 2000.0]);
        assert!(
            keys(changes.take_topups(now())).is_empty(),
            "the window holds both"
        );

        // Redis adds `new`, then rescores it, each time below the window's floor (1004, then 1005).
        for (flag, score) in [
            ("NX", 1002.5),
            ("XX", 1002.25),
            ("GT", 1003.0),
            ("LT", 1001.0),
        ] {
            let mut batch = Batch::default();
            let at = changes.stream_positions()[0].2;
            let text = score.to_string();
            let below = commands(
                at,
                &[&[b"ZADD", b"perf:a", flag.as_bytes(), text.as_bytes(), b"new"]],
            );
            changes.apply(&below, &mut batch).unwrap();
            assert_eq!(
                changes.take_topups(now()),
                one_ask(Some(at), b"perf:a"),
                "ZADD {flag} below the window"
            );
            answer_now(
                &mut changes,
                &mut batch,
                b"perf:a",
                &[("2000", b"top"), (&text, b"new")],
            );
            assert_eq!(scores(&batch), [2000.0, score], "ZADD {flag}");
            assert!(batch.inexact_spans.is_empty());
            // The key as before, its window not whole again.
            let at = changes.stream_positions()[0].2;
            let refill: Vec<String> = (1004..1020).map(|s| s.to_string()).collect();
            let refill: Vec<[&[u8]; 4]> = refill
                .iter()
                .map(|s| [&b"ZADD"[..], b"perf:a", s.as_bytes(), s.as_bytes()])
                .collect();
            let refill: Vec<&[&[u8]]> = refill.iter().map(|c| &c[..]).collect();
            changes.apply(&commands(at, &refill), &mut batch).unwrap();
            assert!(keys(changes.take_topups(now())).is_empty());
        }
    }

    /// The same `ZADD NX` below the window, and the member raised into the window later in the same relay message:
    /// the key is read as it is right after the flagged command (pending), not at the end of the message (where the
    /// window holds the member), so the top-up is asked from there and its span, the member written again before
    /// the answer, is recorded.
    #[test]
    fn a_flagged_zadd_below_the_window_is_judged_right_after_it_within_a_message() {
        let mut changes = changes();
        let mut batch = Batch::default();
        let at = joined_with_twenty_members(&mut changes, &mut batch);
        let message = commands(
            at,
            &[
                &[b"ZADD", b"perf:a", b"NX", b"1002.5", b"new"],
                &[b"ZADD", b"perf:a", b"3000", b"new"],
            ],
        );
        changes.apply(&message, &mut batch).unwrap();
        assert_eq!(changes.take_topups(now()), one_ask(Some(at), b"perf:a"));
        let answered = answer_now(&mut changes, &mut batch, b"perf:a", &[("3000", b"new")]);
        assert_eq!(batch.inexact_spans, [span("perf:a", at, answered)]);
    }
}
