//! The StreamAssembler: turns relay messages into bounded windows of the keys a page watches.
//!
//! It reads the raw replication stream (see [`crate::wire`]), tracks `SELECT`, and applies the commands that touch
//! watched keys to their windows. Offsets make delivery idempotent: a segment that ends at or before what was
//! already applied is skipped, so a batch seen twice (for instance around a hello) changes nothing.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::pattern::glob_match;
use crate::resp::{Command, CommandReader, RespError};
use crate::window::ZsetWindow;
use crate::wire::{self, Message, WireError};

/// Largest window a page may ask for; larger requests are clamped to it.
pub const MAX_WINDOW: usize = 100_000;

/// What to watch: keys matching any of `patterns` (Redis globs) in database `db`, `window` members each.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    pub patterns: Vec<Vec<u8>>,
    pub db: u32,
    pub window: usize,
}

#[derive(Debug, Error)]
pub enum AssemblerError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Resp(#[from] RespError),
    #[error("commands or snapshot message before any hello")]
    NoHello,
    #[error("snapshot: {0}")]
    Snapshot(RespError),
    #[error("segment {start}..{end} overlaps what was already applied, up to {applied}")]
    Overlap { start: u64, end: u64, applied: u64 },
}

/// What one relay message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The stream (re)started: windows were cleared if anything could have been missed.
    Joined { epoch: String, offset: u64 },
    /// Commands were applied; `changed` says whether any watched window moved.
    Applied { commands: usize, changed: bool },
    /// The relay dropped this session and will close it: reconnect.
    Resync { reason: String },
    /// The relay refused or could not do something for this session, which goes on.
    Notice { text: String },
}

/// Windows of the watched keys, kept up to date from the replication stream.
#[derive(Debug)]
pub struct StreamAssembler {
    watch: WatchConfig,
    epoch: Option<String>,
    reader: CommandReader,
    selected_db: u32,
    windows: BTreeMap<Vec<u8>, ZsetWindow>,
}

impl StreamAssembler {
    pub fn new(mut watch: WatchConfig) -> Self {
        watch.window = watch.window.clamp(1, MAX_WINDOW);
        StreamAssembler {
            watch,
            epoch: None,
            reader: CommandReader::new(0),
            selected_db: 0,
            windows: BTreeMap::new(),
        }
    }

    /// What this assembler watches.
    pub fn watch(&self) -> &WatchConfig {
        &self.watch
    }

    /// The epoch being followed, once a hello arrived.
    pub fn epoch(&self) -> Option<&str> {
        self.epoch.as_deref()
    }

    /// Replication offset up to which the stream has been applied.
    pub fn offset(&self) -> u64 {
        self.reader.offset()
    }

    /// Watched keys that have a window, in key order.
    pub fn windows(&self) -> impl Iterator<Item = (&[u8], &ZsetWindow)> {
        self.windows.iter().map(|(k, w)| (k.as_slice(), w))
    }

    pub fn window(&self, key: &[u8]) -> Option<&ZsetWindow> {
        self.windows.get(key)
    }

    /// Applies one binary message from the relay.
    pub fn push_message(&mut self, message: &[u8]) -> Result<Outcome, AssemblerError> {
        match wire::decode(message)? {
            Message::Hello { epoch, offset, .. } => {
                self.join(epoch, offset);
                Ok(Outcome::Joined {
                    epoch: epoch.to_string(),
                    offset,
                })
            }
            Message::Commands(segments) => {
                if self.epoch.is_none() {
                    return Err(AssemblerError::NoHello);
                }
                let (mut commands, mut changed) = (0, false);
                for segment in segments {
                    let segment = segment?;
                    let applied = self.reader.offset();
                    if segment.end() <= applied {
                        continue;
                    }
                    if segment.start < applied {
                        return Err(AssemblerError::Overlap {
                            start: segment.start,
                            end: segment.end(),
                            applied,
                        });
                    }
                    if segment.start > applied {
                        // Frames the relay filtered out: whole commands, so parsing resumes cleanly here.
                        self.reader = CommandReader::new(segment.start);
                    }
                    let Self {
                        reader,
                        watch,
                        selected_db,
                        windows,
                        ..
                    } = self;
                    reader.push(segment.bytes, |command| {
                        commands += 1;
                        changed |= apply(watch, selected_db, windows, command);
                    })?;
                }
                Ok(Outcome::Applied { commands, changed })
            }
            Message::Snapshot { offset, commands } => {
                if self.epoch.is_none() {
                    return Err(AssemblerError::NoHello);
                }
                self.apply_snapshot(offset, commands)?;
                Ok(Outcome::Applied {
                    commands: 0,
                    changed: true,
                })
            }
            Message::Resync { reason } => Ok(Outcome::Resync {
                reason: reason.to_string(),
            }),
            Message::Notice { text } => Ok(Outcome::Notice {
                text: text.to_string(),
            }),
        }
    }

    /// Replaces the windows the snapshot names with their state at `offset`, and continues the stream from there.
    fn apply_snapshot(&mut self, offset: u64, commands: &[u8]) -> Result<(), AssemblerError> {
        let Self { watch, windows, .. } = self;
        // The snapshot is read in the watched database; its commands apply there.
        let mut db = watch.db;
        CommandReader::new(0)
            .push(commands, |command| {
                apply(watch, &mut db, windows, command);
            })
            .map_err(AssemblerError::Snapshot)?;
        self.selected_db = watch.db;
        self.reader = CommandReader::new(offset);
        Ok(())
    }

    /// Starts following `epoch` from `offset`. Windows survive only when nothing can have been missed: same
    /// epoch, same offset. Otherwise they start empty, since the stream alone cannot say what changed meanwhile.
    fn join(&mut self, epoch: &str, offset: u64) {
        let continuous = self.epoch.as_deref() == Some(epoch) && self.reader.offset() == offset;
        if !continuous {
            self.windows.clear();
            self.selected_db = 0;
        }
        self.epoch = Some(epoch.to_string());
        self.reader = CommandReader::new(offset);
    }
}

/// Applies one command; returns whether a watched window changed.
fn apply(
    watch: &WatchConfig,
    selected_db: &mut u32,
    windows: &mut BTreeMap<Vec<u8>, ZsetWindow>,
    command: &Command<'_>,
) -> bool {
    let args = &command.args;
    if command.is("select") {
        if let Some(db) = args.get(1).and_then(|d| parse_ascii::<u32>(d)) {
            *selected_db = db;
        }
        return false;
    }
    if command.is("flushall") || (command.is("flushdb") && *selected_db == watch.db) {
        let changed = !windows.is_empty();
        windows.clear();
        return changed;
    }
    if *selected_db != watch.db || args.len() < 2 {
        return false;
    }
    let key = args[1];
    let watched = |key: &[u8]| watch.patterns.iter().any(|p| glob_match(p, key));
    if command.is("zadd") && watched(key) {
        let window = windows
            .entry(key.to_vec())
            .or_insert_with(|| ZsetWindow::new(watch.window));
        return zadd(window, &args[2..]);
    }
    if command.is("zrem") {
        return match windows.get_mut(key) {
            Some(window) => args[2..].iter().fold(false, |c, m| window.remove(m) | c),
            None => false,
        };
    }
    if command.is("del") || command.is("unlink") {
        return args[1..]
            .iter()
            .fold(false, |c, k| windows.remove(*k).is_some() | c);
    }
    false
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]` on a window; returns whether it changed.
fn zadd(window: &mut ZsetWindow, args: &[&[u8]]) -> bool {
    let (mut nx, mut xx, mut gt, mut lt, mut incr) = (false, false, false, false, false);
    let mut rest = args;
    while let Some((flag, tail)) = rest.split_first() {
        match flag.to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            b"ch" => {}
            b"incr" => incr = true,
            _ => break,
        }
        rest = tail;
    }
    // Redis rejected anything malformed before replicating it; this only guards against a corrupt stream.
    if rest.is_empty() || rest.len() % 2 != 0 {
        return false;
    }
    let mut changed = false;
    for pair in rest.chunks_exact(2) {
        let (Some(score), member) = (parse_score(pair[0]), pair[1]) else {
            return changed;
        };
        let old = window.score(member);
        if (nx && old.is_some()) || (xx && old.is_none()) {
            continue;
        }
        let new = match (incr, old) {
            (true, Some(old)) => old + score,
            _ => score,
        };
        if let Some(old) = old {
            if (gt && new <= old) || (lt && new >= old) {
                continue;
            }
        }
        window.insert(member, new);
        changed = true;
    }
    changed
}

/// A score as Redis writes it: a decimal or `inf`/`+inf`/`-inf`; never NaN.
fn parse_score(bytes: &[u8]) -> Option<f64> {
    parse_ascii::<f64>(bytes).filter(|s| !s.is_nan())
}

fn parse_ascii<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode_commands, encode_hello, encode_resync};

    fn resp(args: &[&str]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        out
    }

    fn stream(commands: &[&[&str]]) -> Vec<u8> {
        commands.iter().flat_map(|c| resp(c)).collect()
    }

    fn assembler(window: usize) -> StreamAssembler {
        let mut a = StreamAssembler::new(WatchConfig {
            patterns: vec![b"perf:*".to_vec()],
            db: 0,
            window,
        });
        a.push_message(&encode_hello("e1", 0)).unwrap();
        a
    }

    fn rows(a: &StreamAssembler, key: &str) -> Vec<(String, f64)> {
        a.window(key.as_bytes())
            .map(|w| {
                w.newest_first()
                    .map(|(m, s)| (String::from_utf8_lossy(m).into_owned(), s))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn zadd_fills_the_window_of_watched_keys_only() {
        let mut a = assembler(2);
        let s = stream(&[
            &["SELECT", "0"],
            &["ZADD", "perf:a", "1", "x", "2", "y", "3", "z"],
            &["ZADD", "other", "1", "x"],
        ]);
        let outcome = a.push_message(&encode_commands(0, &s)).unwrap();
        assert_eq!(
            outcome,
            Outcome::Applied {
                commands: 3,
                changed: true
            }
        );
        assert_eq!(
            rows(&a, "perf:a"),
            vec![("z".into(), 3.0), ("y".into(), 2.0)]
        );
        assert!(a.window(b"other").is_none());
        assert_eq!(a.offset(), s.len() as u64);
    }

    #[test]
    fn zadd_flags_follow_redis() {
        let mut a = assembler(10);
        let s = stream(&[
            &["ZADD", "perf:a", "5", "m"],
            &["ZADD", "perf:a", "NX", "9", "m", "1", "n"],
            &["ZADD", "perf:a", "XX", "7", "q"],
            &["ZADD", "perf:a", "GT", "CH", "4", "m"],
            &["ZADD", "perf:a", "INCR", "2.5", "n"],
        ]);
        a.push_message(&encode_commands(0, &s)).unwrap();
        assert_eq!(
            rows(&a, "perf:a"),
            vec![("m".into(), 5.0), ("n".into(), 3.5)]
        );
    }

    #[test]
    fn other_databases_are_ignored_until_selected_back() {
        let mut a = assembler(10);
        let s = stream(&[
            &["SELECT", "3"],
            &["ZADD", "perf:a", "1", "x"],
            &["SELECT", "0"],
            &["ZADD", "perf:a", "2", "y"],
        ]);
        a.push_message(&encode_commands(0, &s)).unwrap();
        assert_eq!(rows(&a, "perf:a"), vec![("y".into(), 2.0)]);
    }

    #[test]
    fn removals_and_flushes_empty_windows() {
        let mut a = assembler(10);
        let s = stream(&[
            &["ZADD", "perf:a", "1", "x", "2", "y"],
            &["ZADD", "perf:b", "1", "x"],
            &["ZREM", "perf:a", "x"],
            &["DEL", "perf:b"],
        ]);
        a.push_message(&encode_commands(0, &s)).unwrap();
        assert_eq!(rows(&a, "perf:a"), vec![("y".into(), 2.0)]);
        assert!(a.window(b"perf:b").is_none());
        let s2 = stream(&[&["FLUSHALL"]]);
        a.push_message(&encode_commands(s.len() as u64, &s2))
            .unwrap();
        assert_eq!(a.windows().count(), 0);
    }

    #[test]
    fn segments_already_applied_are_skipped() {
        let mut a = assembler(10);
        let s = stream(&[&["ZADD", "perf:a", "1", "x"]]);
        let msg = encode_commands(0, &s);
        a.push_message(&msg).unwrap();
        assert_eq!(
            a.push_message(&msg).unwrap(),
            Outcome::Applied {
                commands: 0,
                changed: false
            }
        );
        assert_eq!(rows(&a, "perf:a").len(), 1);
    }

    #[test]
    fn a_hello_that_could_hide_a_gap_clears_windows() {
        let mut a = assembler(10);
        let s = stream(&[&["ZADD", "perf:a", "1", "x"]]);
        a.push_message(&encode_commands(0, &s)).unwrap();
        a.push_message(&encode_hello("e1", s.len() as u64)).unwrap();
        assert_eq!(
            rows(&a, "perf:a").len(),
            1,
            "same epoch and offset: nothing missed"
        );
        a.push_message(&encode_hello("e1", 999)).unwrap();
        assert!(rows(&a, "perf:a").is_empty());
        assert_eq!(a.offset(), 999);
    }

    #[test]
    fn a_snapshot_replaces_windows_and_the_stream_continues_after_it() {
        let mut a = assembler(10);
        a.push_message(&encode_commands(
            0,
            &stream(&[&["ZADD", "perf:a", "1", "stale"]]),
        ))
        .unwrap();
        let snapshot = stream(&[&["DEL", "perf:a"], &["ZADD", "perf:a", "5", "x", "6", "y"]]);
        a.push_message(&crate::wire::encode_snapshot(500, &snapshot))
            .unwrap();
        assert_eq!(
            rows(&a, "perf:a"),
            vec![("y".into(), 6.0), ("x".into(), 5.0)]
        );
        assert_eq!(a.offset(), 500);
        let next = stream(&[&["ZADD", "perf:a", "7", "z"]]);
        a.push_message(&encode_commands(500, &next)).unwrap();
        assert_eq!(rows(&a, "perf:a")[0], ("z".into(), 7.0));
    }

    #[test]
    fn bad_input_gets_errors_not_panics() {
        let mut fresh = StreamAssembler::new(WatchConfig {
            patterns: vec![b"*".to_vec()],
            db: 0,
            window: 0,
        });
        assert!(matches!(
            fresh.push_message(&encode_commands(0, b"PING\r\n")),
            Err(AssemblerError::NoHello)
        ));
        let mut a = assembler(10);
        let err = a
            .push_message(&encode_commands(0, b"*1\r\n:1\r\n"))
            .unwrap_err();
        assert!(err.to_string().contains("offset 4"), "{err}");
        let mut a = assembler(10);
        a.push_message(&encode_commands(0, b"PING\r\n")).unwrap();
        assert!(matches!(
            a.push_message(&encode_commands(3, b"PING\r\nPING\r\n")),
            Err(AssemblerError::Overlap { .. })
        ));
        assert_eq!(
            a.push_message(&encode_resync("too slow")).unwrap(),
            Outcome::Resync {
                reason: "too slow".into()
            }
        );
    }
}
