//! What one transaction of the sink writes: history rows (sorted-set members and stream entries, each with the
//! identity it is deduplicated by), mirror changes (a key's whole window, or its deletion), set operations, and
//! the stream position the rows bring the database to. A [`Batch`] is filled by the relay session
//! (`follow.rs`) and written whole by the writer (`writer.rs`), in one transaction.
//!
//! Values go to PostgreSQL as text it accepts whatever Redis held: a member that is JSON goes into `jsonb` as it
//! is (a member that is not becomes a JSON string), keys and mirror values must be text without NUL. Rows that
//! cannot be stored (a key that is not UTF-8, a score that is no time) are refused here, with the reason, and
//! counted; they never reach the database, where one bad row would fail its whole batch again and again.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use xxhash_rust::xxh3::{xxh3_128, Xxh3Default};

use super::windows::StoredWindow;

/// Latest time a history row may carry: the first instant of the year 10000, in Unix ms (PostgreSQL's
/// `timestamptz` goes further, but no sample of a monitored host is dated past it).
pub const MAX_TIME_MS: f64 = 253_402_300_800_000.0;

/// A sorted-set member of a history key: `score` is its time in Unix ms. Its key and JSON text are bytes of the
/// batch's [`Batch::zset_text`] ([`Batch::zset_key`], [`Batch::zset_value`]): one buffer a batch rather than two
/// allocations a row, which the sink's profile showed among its largest costs per sample.
#[derive(Debug, Clone, PartialEq)]
pub struct ZsetRow {
    pub score: f64,
    /// The key, UTF-8 without NUL (checked by [`key_text`]).
    key: Range<usize>,
    /// The member as JSON text (the member itself when it is JSON; the strict re-encoding, [`json_text_strict`],
    /// starts from it).
    value: Range<usize>,
    /// The row's identity within its key and time: a hash of the score and the member's bytes.
    pub digest: [u8; 16],
    /// Whether the sink parsed the member's JSON itself; if not, `value` is the member's bytes, left to
    /// PostgreSQL's `json` input to check ([`json_text_into`]).
    pub parsed: bool,
}

/// A stream entry of a history key.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRow {
    pub key: String,
    /// The entry id's milliseconds.
    pub ms: u64,
    /// The whole id, `<ms>-<seq>`.
    pub id: String,
    /// The fields as a JSON object of strings.
    pub fields: Vec<u8>,
    pub digest: [u8; 16],
}

/// The state a mirrored key's rows must have after the transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum MirrorState {
    /// The key is gone.
    Deleted,
    /// A string.
    String { value: String },
    /// A hash's fields (the window's: all of them when `complete`).
    Hash {
        fields: Vec<(String, String)>,
        complete: bool,
    },
    /// A list's items, first to last (all of them when `complete`, else its last ones).
    List { items: Vec<String>, complete: bool },
}

/// One change to the set mirror, in stream order (sets have no window: the sink follows them itself).
#[derive(Debug, Clone, PartialEq)]
pub enum SetOp {
    /// Members added; `exact`: whether a set the key did not hold yet is known to start empty (false for a key a
    /// snapshot named without its members).
    Add(String, Vec<String>, bool),
    Remove(String, Vec<String>),
    /// The key was deleted (or overwritten by a value of another type).
    Delete(String),
    /// `RENAME src dst`: dst's members are src's, src is gone.
    Rename(String, String),
    /// What the key holds can no longer be told from the stream: its rows stay, marked inexact.
    Inexact(String),
    /// A mirrored key the sink cannot read again, of any type (a listing named it, but no top-up can: over 1,024
    /// bytes): its row, if any, stays, marked inexact.
    Unreadable(String),
    /// The set rows of every key but these are deleted: after a listing of the only shard, the keys it named and
    /// those the stream wrote since the stale message for every window ([`super::changes::Changes::listed`]).
    KeepSets(Vec<String>),
    /// Every mirrored key is gone (`FLUSHDB`, `FLUSHALL`).
    DeleteAll,
    /// The stream continues from a point the mirror cannot vouch for: every set becomes inexact.
    AllInexact,
}

/// Why a row was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// A key that is not UTF-8, or holds a NUL byte (PostgreSQL's `text` takes neither).
    KeyNotText,
    /// A sorted-set score that is not a time between 1970 and the year 10000 in Unix ms.
    ScoreNotTime,
    /// A stream id whose milliseconds are past the year 10000.
    IdNotTime,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::KeyNotText => "key_not_text",
            Refusal::ScoreNotTime => "score_not_time",
            Refusal::IdNotTime => "id_not_time",
        }
    }
}

/// A span of shard `shard`'s stream (of epoch `epoch`), `from_offset` (where a command whose rows depend on what the key held
/// starts) to `to_offset` (where the top-up's answer that gave its rows is), in which `key` was written again in a
/// way that may have changed or removed what that command wrote before the answer read it: the key's rows may miss
/// a score it had in between (docs/SINK.md, "Exactly once").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InexactSpan {
    /// The epoch of the shard's stream: the offsets are that stream's.
    pub epoch: String,
    pub key: String,
    pub shard: u16,
    pub from_offset: u64,
    pub to_offset: u64,
    /// `key` is a `--history` pattern: the span is of every key it matches (a stale message for every window).
    pub pattern: bool,
}

/// Everything one transaction writes.
#[derive(Debug, Default)]
pub struct Batch {
    pub zsets: Vec<ZsetRow>,
    /// The sorted-set rows' keys and values, one after the other.
    zset_text: Vec<u8>,
    pub streams: Vec<StreamRow>,
    /// Mirrored keys' final states, by key: only the last state of a key within the batch is written.
    pub mirror: BTreeMap<String, MirrorState>,
    pub sets: Vec<SetOp>,
    /// History windows of stateful keys that changed, by key: stored with the position (`windows.rs`); `None`
    /// for a key stateful no more (known not to exist, and not among the last such kept), whose stored window is
    /// deleted.
    pub windows: BTreeMap<String, Option<StoredWindow>>,
    /// Where the stream of each epoch stands once the batch is written: `(epoch, offset)`.
    pub positions: Vec<(String, u64)>,
    /// Epochs no longer followed (a failover's `previous`, continued by a new epoch): their rows go.
    pub retired_epochs: Vec<String>,
    /// Epochs of `positions` whose shard's mirror is to be listed again (`position.mirror_relist`): a `SWAPDB`, a
    /// stale message for every window or a segment the sink cannot read came, and not every key the relay listed
    /// since has been read again (`Changes::listed`).
    pub mirror_relists: Vec<String>,
    /// `mirror_relists` is written with the position: it may differ from what the database holds.
    pub write_relists: bool,
    /// Spans of a history key's stream whose rows may miss a score (`replicast.inexact_span`).
    pub inexact_spans: Vec<InexactSpan>,
    /// Rows seen in this batch and the ones before it that may still be being written ([`Seen`]), so that a row
    /// the stream and the window both report is sent once. The history assembler's observer borrows it while a
    /// message is applied, to skip those rows unread.
    pub seen: Seen,
    /// Bytes held, about: what the batch limits count.
    pub bytes: usize,
    /// The newest history time (Unix ms) in the batch, for the lag metric.
    pub newest_ms: Option<f64>,
}

impl Batch {
    /// Rows and changes held (positions aside).
    pub fn len(&self) -> usize {
        self.zsets.len()
            + self.streams.len()
            + self.mirror.len()
            + self.sets.len()
            + self.windows.len()
            + self.inexact_spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a sorted-set member of a history key; `Err` says why it cannot be stored.
    pub fn push_zset(&mut self, key: &[u8], score: f64, member: &[u8]) -> Result<(), Refusal> {
        let key = key_text(key)?;
        if !(0.0..MAX_TIME_MS).contains(&score) {
            return Err(Refusal::ScoreNotTime);
        }
        let digest = zset_digest(score, member);
        if !self.seen.insert(seen_id(key.as_bytes(), digest)) {
            return Ok(());
        }
        let start = self.zset_text.len();
        self.zset_text.extend_from_slice(key.as_bytes());
        let key = start..self.zset_text.len();
        let parsed = json_text_into(member, &mut self.zset_text, false);
        let value = key.end..self.zset_text.len();
        self.bytes += self.zset_text.len() - start + 64;
        self.newest_ms = Some(self.newest_ms.map_or(score, |n| n.max(score)));
        self.zsets.push(ZsetRow {
            score,
            key,
            value,
            digest: digest.to_le_bytes(),
            parsed,
        });
        Ok(())
    }

    /// Whether `member` of `key` at `score`, which the history assembler reports entering a window, is one of the
    /// next few sorted-set rows from `*next` on, as read from the stream's plain `ZADD`s before the assembler applied
    /// them (in the same order): if so, `*next` moves past it. Compared by bytes against a row holding the member
    /// as it came (not parsed), so a row that matches is this member's, held already, without hashing it a second
    /// time; one that does not match is looked up by its digest in [`Batch::seen`].
    pub fn holds_next_zset(&self, next: &mut usize, key: &[u8], score: f64, member: &[u8]) -> bool {
        // A row the assembler does not report (a member below a full window, or one it held at that score) is
        // passed over by the next match within a few rows.
        const LOOKAHEAD: usize = 4;
        let rows = self.zsets.get(*next..).unwrap_or_default();
        let found = rows.iter().take(LOOKAHEAD).position(|row| {
            !row.parsed
                && row.score.to_bits() == score.to_bits()
                && self.zset_value(row) == member
                && self.zset_key(row) == key
        });
        if let Some(at) = found {
            *next += at + 1;
        }
        found.is_some()
    }

    /// A sorted-set row's key: UTF-8 without NUL, as [`key_text`] checked it.
    pub fn zset_key(&self, row: &ZsetRow) -> &[u8] {
        &self.zset_text[row.key.clone()]
    }

    /// A sorted-set row's value: JSON text.
    pub fn zset_value(&self, row: &ZsetRow) -> &[u8] {
        &self.zset_text[row.value.clone()]
    }

    /// Bytes of the sorted-set rows' keys and values together.
    pub fn zset_text_len(&self) -> usize {
        self.zset_text.len()
    }

    /// Adds a stream entry of a history key: `id` as the stream carries it (`ms-seq`), `fields` alternating names
    /// and values.
    pub fn push_stream(&mut self, key: &[u8], id: &[u8], fields: &[&[u8]]) -> Result<(), Refusal> {
        let key = key_text(key)?;
        let (ms, seq) = parse_stream_id(id).ok_or(Refusal::IdNotTime)?;
        if ms as f64 >= MAX_TIME_MS {
            return Err(Refusal::IdNotTime);
        }
        let mut identity = Vec::new();
        identity.extend_from_slice(&ms.to_le_bytes());
        identity.extend_from_slice(&seq.to_le_bytes());
        for field in fields {
            identity.extend_from_slice(&(field.len() as u64).to_le_bytes());
            identity.extend_from_slice(field);
        }
        let digest = xxh3_128(&identity);
        if !self.seen.insert(seen_id(key.as_bytes(), digest)) {
            return Ok(());
        }
        let object = fields_object(fields);
        self.bytes += key.len() + object.len() + 64;
        self.newest_ms = Some(self.newest_ms.map_or(ms as f64, |n| n.max(ms as f64)));
        self.streams.push(StreamRow {
            key: key.to_string(),
            ms,
            id: format!("{ms}-{seq}"),
            fields: object,
            digest: digest.to_le_bytes(),
        });
        Ok(())
    }

    /// Sets a mirrored key's state after this batch.
    pub fn set_mirror(&mut self, key: String, state: MirrorState) {
        self.bytes += key.len()
            + match &state {
                MirrorState::Deleted => 0,
                MirrorState::String { value } => value.len(),
                MirrorState::Hash { fields, .. } => {
                    fields.iter().map(|(f, v)| f.len() + v.len() + 16).sum()
                }
                MirrorState::List { items, .. } => items.iter().map(|i| i.len() + 8).sum(),
            };
        self.mirror.insert(key, state);
    }

    pub fn push_set_op(&mut self, op: SetOp) {
        self.bytes += match &op {
            SetOp::Add(k, m, _) | SetOp::Remove(k, m) => {
                k.len() + m.iter().map(|m| m.len() + 8).sum::<usize>()
            }
            SetOp::Delete(k) | SetOp::Inexact(k) | SetOp::Unreadable(k) => k.len(),
            SetOp::Rename(a, b) => a.len() + b.len(),
            SetOp::KeepSets(keys) => keys.iter().map(|k| k.len() + 8).sum(),
            SetOp::DeleteAll | SetOp::AllInexact => 0,
        };
        self.sets.push(op);
    }
}

/// The rows ([`seen_id`]) of a batch and of the batches before it that may be written at the same time on other
/// connections (`writer.rs`): a row one of them holds is not added again. Besides sending a row once, this keeps
/// transactions written together from holding the same row: PostgreSQL would make the later one's insert wait for
/// the earlier one's transaction, which in turn waits for the later one's turn to commit if it came second.
///
/// The sets hash with foldhash under a per-process random seed rather than the standard library's SipHash: a
/// row's id is already a hash, and every sample is looked up in each set and added to one.
#[derive(Debug, Default)]
pub struct Seen {
    current: Ids,
    /// The batches before, newest first.
    before: VecDeque<Ids>,
}

type Ids = HashSet<u128, foldhash::fast::RandomState>;

impl Seen {
    pub fn contains(&self, id: u128) -> bool {
        self.current.contains(&id) || self.before.iter().any(|b| b.contains(&id))
    }

    /// Adds a row; `false` if a batch held it already.
    pub fn insert(&mut self, id: u128) -> bool {
        !self.before.iter().any(|b| b.contains(&id)) && self.current.insert(id)
    }

    /// The rows seen by the next batch to start with: this batch's and those of the `keep - 1` before it.
    pub fn next(&mut self, keep: usize) -> Seen {
        let mut before = std::mem::take(&mut self.before);
        // The next batch holds about as many rows as this one: its set is made that size once, not grown.
        let rows = self.current.len();
        before.push_front(std::mem::take(&mut self.current));
        before.truncate(keep);
        Seen {
            current: Ids::with_capacity_and_hasher(rows, Default::default()),
            before,
        }
    }
}

/// A sorted-set member's identity within its key: a hash of the score and the member's bytes (the primary key's
/// `digest`).
pub fn zset_digest(score: f64, member: &[u8]) -> u128 {
    let mut hasher = Xxh3Default::new();
    hasher.update(&score.to_bits().to_le_bytes());
    hasher.update(member);
    hasher.digest128()
}

/// A row's identity within a batch: its digest and its key.
pub fn seen_id(key: &[u8], digest: u128) -> u128 {
    digest ^ xxh3_128(key)
}

/// A key as PostgreSQL `text`: UTF-8 without NUL.
pub fn key_text(key: &[u8]) -> Result<&str, Refusal> {
    match std::str::from_utf8(key) {
        Ok(text) if !text.contains('\0') => Ok(text),
        _ => Err(Refusal::KeyNotText),
    }
}

/// A value as PostgreSQL `text`: bytes that are not UTF-8 become U+FFFD, and so does NUL (which `text` cannot
/// hold). The mirror stores values this way; see docs/SINK.md.
pub fn value_text(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.into_owned()
    }
}

/// `<ms>-<seq>`, both decimal `u64`s, as Redis writes a stream id.
pub fn parse_stream_id(id: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(id).ok()?;
    let (ms, seq) = text.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(ms) || !digits(seq) {
        return None;
    }
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// A time in Unix ms (within `0..MAX_TIME_MS`) as a `SystemTime`, to microseconds as PostgreSQL keeps it.
pub fn time_of_ms(ms: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros((ms * 1000.0).round() as u64)
}

/// Appends to `out` the member as JSON for the `json` column read as `jsonb`: itself when it is JSON that `jsonb`
/// takes (NUL escapes, which `jsonb` refuses, count as not), its strict re-encoding when `jsonb` might refuse it
/// otherwise ([`jsonb_may_refuse`]), else the member as a JSON string. PostgreSQL only checks the `json` it stores;
/// the `jsonb` view parses it when read, where a value it refused would fail every query that reads its row.
///
/// Without `parse`, a member that looks like JSON (with at most [`MAX_UNPARSED_NESTING`] opening brackets) is appended as
/// it is, unparsed: PostgreSQL's `json` input checks the same syntax, and refuses the batch if it is not JSON, which
/// the writer then writes again with each such member parsed here ([`super::copy::JsonCheck::Parsed`]) — what the
/// sink's profile showed as its largest cost per sample of its own, paid only then. Returns whether the member
/// was parsed (or needed no parsing: a JSON string made of it).
pub fn json_text_into(member: &[u8], out: &mut Vec<u8>, parse: bool) -> bool {
    let looks_json = matches!(
        member.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n')
    );
    if looks_json && memchr::memmem::find(member, b"\\u0000").is_none() {
        if !parse && !jsonb_may_refuse(member) && shallow(member) {
            out.extend_from_slice(member);
            return false;
        }
        // Skipping a value (`IgnoredAny`) follows nesting without a limit; building one stops at 128 levels.
        let json = if shallow(member) {
            serde_json::from_slice::<serde::de::IgnoredAny>(member).is_ok()
        } else {
            serde_json::from_slice::<serde_json::Value>(member).is_ok()
        };
        if json {
            if jsonb_may_refuse(member) {
                out.extend_from_slice(&json_text_strict(member));
            } else {
                out.extend_from_slice(member);
            }
            return true;
        }
    }
    out.extend_from_slice(&json_string(&value_text(member)));
    true
}

/// Opening brackets past which a member is parsed by the sink before it is written, whatever the batch, into a
/// `serde_json::Value`, which refuses JSON nested 128 deep (the sink stores it as a string): PostgreSQL's `json`
/// input would fail on its stack depth for deep enough nesting — an error of the server, not of the data, that the
/// writer would retry for ever.
pub const MAX_UNPARSED_NESTING: usize = 64;

/// Whether `json` holds at most [`MAX_UNPARSED_NESTING`] opening brackets (in strings too), so nests no deeper.
fn shallow(json: &[u8]) -> bool {
    json.len() <= MAX_UNPARSED_NESTING
        || memchr::memchr2_iter(b'[', b'{', json)
            .nth(MAX_UNPARSED_NESTING)
            .is_none()
}

/// [`json_text_into`] a new buffer, parsed.
#[cfg(test)]
fn json_text(member: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    json_text_into(member, &mut out, true);
    out
}

/// Whether JSON text (valid, without NUL escapes) might hold what `jsonb` refuses and `json` stores: a `\uD…`
/// escape (a surrogate half, which `jsonb` refuses unpaired), or a number `numeric` cannot hold (more than
/// 131,072 digits before the point or 16,383 after, exponent included). Errs on the side of yes —
/// [`json_text_strict`] keeps what such a member means — and looks only at bytes, cheaply: a run of 1,000
/// digits, or an exponent of 4 digits or more.
fn jsonb_may_refuse(json: &[u8]) -> bool {
    // Searched with memchr rather than byte by byte: every sample goes through here.
    let surrogate = memchr::memchr_iter(b'\\', json)
        .any(|at| json.get(at + 1) == Some(&b'u') && matches!(json.get(at + 2), Some(b'd' | b'D')));
    let long_exponent = memchr::memchr2_iter(b'e', b'E', json).any(|at| {
        let after_number = at > 0 && (json[at - 1].is_ascii_digit() || json[at - 1] == b'.');
        let rest = &json[at + 1..];
        let rest = rest
            .strip_prefix(b"+")
            .or_else(|| rest.strip_prefix(b"-"))
            .unwrap_or(rest);
        after_number && rest.iter().take_while(|b| b.is_ascii_digit()).count() >= 4
    });
    let long_digits = json.len() >= MAX_PLAIN_DIGITS
        && json
            .split(|b| !b.is_ascii_digit())
            .any(|run| run.len() >= MAX_PLAIN_DIGITS);
    surrogate || long_exponent || long_digits
}

/// Digits in a row from which a JSON number is re-encoded before `jsonb` sees it (`numeric` keeps 131,072
/// before the point and 16,383 after: far more, but no sample needs a thousand).
const MAX_PLAIN_DIGITS: usize = 1000;

/// The member as JSON PostgreSQL always takes: parsed and written again, numbers as `f64`s (so within what
/// `numeric` reads), NUL characters replaced. The writer falls back to it for a batch PostgreSQL refused,
/// re-encoding [`json_text_into`]'s output: a member that was not JSON stays the JSON string it became.
pub fn json_text_strict(member: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(member) {
        Ok(mut value) => {
            scrub_nul(&mut value);
            serde_json::to_vec(&value).unwrap_or_else(|_| json_string(&value_text(member)))
        }
        Err(_) => json_string(&value_text(member)),
    }
}

fn scrub_nul(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        Value::Array(items) => items.iter_mut().for_each(scrub_nul),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (name, mut v) in entries {
                scrub_nul(&mut v);
                map.insert(name.replace('\0', "\u{FFFD}"), v);
            }
        }
        _ => {}
    }
}

fn json_string(text: &str) -> Vec<u8> {
    // Serializing a str cannot fail.
    serde_json::to_vec(text).unwrap_or_else(|_| b"\"\"".to_vec())
}

/// A stream entry's fields as a JSON object of strings (a name given twice keeps its last value, as a client
/// reading the entry into a map would).
fn fields_object(fields: &[&[u8]]) -> Vec<u8> {
    let mut object = serde_json::Map::new();
    for pair in fields.chunks(2) {
        let value = pair.get(1).map_or_else(String::new, |v| value_text(v));
        object.insert(value_text(pair[0]), serde_json::Value::String(value));
    }
    serde_json::to_vec(&object).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_of_a_batch_written_alongside_is_not_added_again() {
        let mut batch = Batch::default();
        batch.push_zset(b"perf:a", 1.7e12, b"{}").unwrap();
        let mut next = Batch {
            seen: batch.seen.next(1),
            ..Batch::default()
        };
        next.push_zset(b"perf:a", 1.7e12, b"{}").unwrap();
        next.push_zset(b"perf:a", 1.7e12 + 1.0, b"{}").unwrap();
        assert_eq!(next.zsets.len(), 1, "the batch before holds the first");
        let mut third = Batch {
            seen: next.seen.next(1),
            ..Batch::default()
        };
        third.push_zset(b"perf:a", 1.7e12, b"{}").unwrap();
        third.push_zset(b"perf:a", 1.7e12 + 1.0, b"{}").unwrap();
        assert_eq!(
            third.zsets.len(),
            1,
            "two batches back is committed: the database's key skips it"
        );
        let mut alone = Batch {
            seen: third.seen.next(0),
            ..Batch::default()
        };
        alone.push_zset(b"perf:a", 1.7e12 + 1.0, b"{}").unwrap();
        assert_eq!(alone.zsets.len(), 1, "one connection: no batch alongside");
    }

    #[test]
    fn members_that_are_json_go_as_they_are_and_others_as_strings() {
        assert_eq!(
            json_text(br#"{"cpu":{"total":12.5}}"#),
            br#"{"cpu":{"total":12.5}}"#
        );
        assert_eq!(json_text(b"12"), b"12");
        assert_eq!(json_text(b"web-01"), br#""web-01""#);
        assert_eq!(json_text(b"{not json"), br#""{not json""#);
        assert_eq!(json_text(br#"{"a":"\u0000"}"#), br#""{\"a\":\"\\u0000\"}""#);
        assert_eq!(json_text(b"\xff\x00"), "\"\u{FFFD}\u{FFFD}\"".as_bytes());
        assert_eq!(
            json_text_strict(br#"{"a":"x\u0000","n":1e-20000}"#),
            "{\"a\":\"x\u{FFFD}\",\"n\":0.0}".as_bytes()
        );
        for member in [
            &b"web-01"[..],
            b"{not json",
            b"\xff\x00",
            br#"{"a":"\u0000"}"#,
        ] {
            assert_eq!(json_text_strict(&json_text(member)), json_text(member));
        }
    }

    #[test]
    fn json_that_jsonb_would_refuse_is_re_encoded() {
        // A lone surrogate half, numbers numeric cannot hold: json stores them, jsonb (the view) refuses them.
        assert_eq!(json_text(br#"{"n":1e-20000}"#), br#"{"n":0.0}"#);
        assert_eq!(
            json_text(br#"[1E+5000]"#),
            br#""[1E+5000]""#,
            "past f64: a string"
        );
        assert_eq!(json_text(&[b'7'; 1000]), json_string(&"7".repeat(1000)));
        let lone = br#"{"a":"\ud800"}"#;
        assert!(jsonb_may_refuse(lone));
        assert_eq!(json_text(lone), br#""{\"a\":\"\\ud800\"}""#, "a string");
        // What jsonb takes goes as it is.
        for member in [
            &br#"{"cpu":{"total":12.5e3,"cores":[1,2]},"t":1700000000000}"#[..],
            br#"{"e":"1e100","f":-0.5E-99}"#,
            br#""\u00e9\u20ac""#,
        ] {
            assert!(!jsonb_may_refuse(member));
            assert_eq!(json_text(member), member);
        }
    }

    #[test]
    fn a_members_digest_is_the_hash_of_its_score_and_bytes() {
        // The digests stored by earlier sinks: a member written again must be found by its primary key.
        let mut identity = 1.7e12f64.to_bits().to_le_bytes().to_vec();
        identity.extend_from_slice(br#"{"cpu":{"total":12.5}}"#);
        assert_eq!(
            zset_digest(1.7e12, br#"{"cpu":{"total":12.5}}"#),
            xxh3_128(&identity)
        );
    }

    #[test]
    fn rows_are_refused_with_their_reason_and_sent_once() {
        let mut batch = Batch::default();
        assert_eq!(batch.push_zset(b"perf:a", 1.7e12, b"{}"), Ok(()));
        assert_eq!(batch.push_zset(b"perf:a", 1.7e12, b"{}"), Ok(()));
        assert_eq!(batch.push_zset(b"perf:b", 1.7e12, b"{}"), Ok(()));
        assert_eq!(
            batch.zsets.len(),
            2,
            "the same member twice is one row, per key"
        );
        assert_eq!(batch.push_zset(b"perf:c", 1.7e12, b"web-01"), Ok(()));
        let read: Vec<(&[u8], &[u8])> = batch
            .zsets
            .iter()
            .map(|row| (batch.zset_key(row), batch.zset_value(row)))
            .collect();
        assert_eq!(
            read,
            [
                (&b"perf:a"[..], &b"{}"[..]),
                (b"perf:b", b"{}"),
                (b"perf:c", br#""web-01""#)
            ],
            "each row's key and JSON text, from the batch's one buffer"
        );
        assert_eq!(
            batch.push_zset(b"perf:\xff", 1.0, b"x"),
            Err(Refusal::KeyNotText)
        );
        assert_eq!(
            batch.push_zset(b"perf:\0", 1.0, b"x"),
            Err(Refusal::KeyNotText)
        );
        assert_eq!(
            batch.push_zset(b"perf:a", -1.0, b"x"),
            Err(Refusal::ScoreNotTime)
        );
        assert_eq!(
            batch.push_zset(b"perf:a", f64::NAN, b"x"),
            Err(Refusal::ScoreNotTime)
        );
        assert_eq!(
            batch.push_zset(b"perf:a", f64::INFINITY, b"x"),
            Err(Refusal::ScoreNotTime)
        );
        assert_eq!(
            batch.push_stream(b"ev", b"1-0", &[b"a", b"1", b"a", b"2"]),
            Ok(())
        );
        assert_eq!(batch.streams[0].fields, br#"{"a":"2"}"#);
        assert_eq!(batch.streams[0].id, "1-0");
        assert_eq!(
            batch.push_stream(b"ev", b"99999999999999999-0", &[]),
            Err(Refusal::IdNotTime)
        );
        assert_eq!(
            batch.push_stream(b"ev", b"1-x", &[]),
            Err(Refusal::IdNotTime)
        );
        assert_eq!(batch.newest_ms, Some(1.7e12));
        assert_eq!(batch.len(), 4);
    }
}
