//! One link's feed of the write profile ([`LinkProfile`]): it follows its stream's `MULTI` blocks and counts each
//! batch the link appends to the backlog.
//!
//! This runs on the link's task for every command the primary sends, so a command costs as little as it can: what
//! a batch counts gathers in the link's own tallies — by command name as the stream spells it, and by key in
//! [`RecentKeys`], where a key written before needs no glob match, no prefix search and no hash but its own — and
//! goes into the windows once per batch, each name and each key with the batch's sum, under the lock the batch
//! takes anyway.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use super::recent_keys::{RecentKeys, Written};
use super::space_saving::MAX_PROFILE_KEY;
use super::window::MAX_COMMAND_NAME;
use super::write_profile::{command_name, name_line, State, WriteProfile};
use crate::frames::{Frame, FrameIndex, Kind};
use replicast_protocol::short_bytes::same_bytes;

/// Distinct command names a batch gathers before they go into the windows (a stream mostly repeats a few).
const PENDING_NAMES: usize = 16;

/// One link's feed of the profile.
pub struct LinkProfile {
    profile: Arc<WriteProfile>,
    tallies: Tallies,
}

/// What a link counted of its stream that is not yet in the windows, and the `MULTI` block it is in.
#[derive(Default)]
struct Tallies {
    /// Commands seen since the stream's `MULTI`.
    multi: Option<u64>,
    bytes: u64,
    names: Vec<NameTally>,
    /// The entry of `names` of the last command: the next one most often has the same name.
    last_name: usize,
    /// The first bytes of the last command found by its name line, through that line (`*4\r\n$4\r\nZADD\r\n`),
    /// and its entry of `names`: a command that starts with the same bytes has the same name, told by one
    /// comparison (empty when `names` was flushed).
    head: Vec<u8>,
    head_name: usize,
    /// Commands whose name is longer than a window counts by name.
    unnamed: u64,
    keys: RecentKeys,
}

/// Commands of one name, spelled as the stream spells it (lowercased only when they go into the windows).
struct NameTally {
    /// The name as a RESP bulk string, its length line and all (`$4\r\nZADD\r\n`): what a command's frame has
    /// after its argument count, so that a command of the same name is told by one comparison, its name not read.
    line: Vec<u8>,
    commands: u64,
    /// Keys they may write: for `DEL` and `UNLINK`, the keys removed.
    keys: u64,
}

impl LinkProfile {
    pub(super) fn new(profile: Arc<WriteProfile>) -> Self {
        LinkProfile {
            profile,
            tallies: Tallies::default(),
        }
    }

    /// Counts a batch of whole commands (`raw`, indexed by `index`) as the link appends it to the backlog.
    pub fn batch(&mut self, raw: &[u8], index: &FrameIndex) {
        let mut state = self.profile.state(Instant::now());
        for frame in &index.frames {
            let Some(bytes) = raw.get(frame.at.start as usize..frame.at.end as usize) else {
                continue;
            };
            let keys = written_keys(index, frame);
            let at = self.tallies.name_of_frame(&mut state, bytes);
            let bytes = bytes.len() as u64;
            self.tallies
                .command(&mut state, at, frame.kind, bytes, keys);
            self.tallies
                .keys(&self.profile, &mut state, bytes, raw, keys);
        }
        self.tallies.flush(&mut state);
    }

    /// Counts a command too large to hold: its `name`, its `bytes`, and the keys it may write (`index`'s ranges
    /// into `names`).
    pub fn unheld(&mut self, name: &str, bytes: u64, names: &[u8], index: &FrameIndex) {
        let mut state = self.profile.state(Instant::now());
        for frame in &index.frames {
            let keys = written_keys(index, frame);
            let at = self.tallies.name(&mut state, name.as_bytes());
            self.tallies
                .command(&mut state, at, frame.kind, bytes, keys);
            self.tallies
                .keys(&self.profile, &mut state, bytes, names, keys);
        }
        self.tallies.flush(&mut state);
    }
}

/// The ranges of the keys `frame` may write.
fn written_keys<'a>(index: &'a FrameIndex, frame: &Frame) -> &'a [Range<u32>] {
    let range = frame.written_keys();
    index
        .keys
        .get(range.start as usize..range.end as usize)
        .unwrap_or_default()
}

impl NameTally {
    fn new(name: &[u8]) -> Self {
        let mut line = format!("${}\r\n", name.len()).into_bytes();
        line.extend_from_slice(name);
        line.extend_from_slice(b"\r\n");
        NameTally {
            line,
            commands: 0,
            keys: 0,
        }
    }

    /// The name, as the stream spells it.
    fn name(&self) -> &[u8] {
        let start = self
            .line
            .iter()
            .position(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
        &self.line[start..self.line.len() - 2]
    }
}

impl Tallies {
    /// The entry of `names` for the command in `frame` (`None` for a name longer than a window counts by name):
    /// found by comparing the frame's name line with the ones gathered, the last command's first; read out of the
    /// frame only when it is new to the batch.
    fn name_of_frame(&mut self, state: &mut State, frame: &[u8]) -> Option<usize> {
        if !self.head.is_empty()
            && frame
                .get(..self.head.len())
                .is_some_and(|head| same_bytes(head, &self.head))
        {
            return Some(self.head_name);
        }
        if let Some(line) = name_line(frame) {
            let spells = |tally: &NameTally| {
                line.get(..tally.line.len())
                    .is_some_and(|line| same_bytes(line, &tally.line))
            };
            let found = match self.names.get(self.last_name) {
                Some(last) if spells(last) => Some(self.last_name),
                _ => self.names.iter().position(spells),
            };
            if let Some(at) = found {
                self.last_name = at;
                if let Some(tally) = self.names.get(at) {
                    let head = frame.len() - line.len() + tally.line.len();
                    self.head.clear();
                    self.head
                        .extend_from_slice(frame.get(..head).unwrap_or_default());
                    self.head_name = at;
                }
                return found;
            }
        }
        self.name(state, command_name(frame).unwrap_or(b"?"))
    }

    /// The entry of `names` for commands named `name`, made if there is none (`None` for a name longer than a
    /// window counts by name).
    fn name(&mut self, state: &mut State, name: &[u8]) -> Option<usize> {
        if name.len() > MAX_COMMAND_NAME {
            return None;
        }
        let at = match self.names.iter().position(|tally| tally.name() == name) {
            Some(at) => at,
            None => {
                if self.names.len() == PENDING_NAMES {
                    self.flush_names(state);
                }
                self.names.push(NameTally::new(name));
                self.names.len() - 1
            }
        };
        self.last_name = at;
        Some(at)
    }

    /// Counts a command of `bytes` bytes that may write `keys`, named as the entry `name` of `names` says, and
    /// follows `MULTI` blocks (whose sizes go into the windows at once: one per block).
    fn command(
        &mut self,
        state: &mut State,
        name: Option<usize>,
        kind: Kind,
        bytes: u64,
        keys: &[Range<u32>],
    ) {
        match kind {
            Kind::Multi => self.multi = Some(0),
            Kind::Exec => {
                if let Some(size) = self.multi.take() {
                    state.current.counts.multi(size);
                }
            }
            _ => {
                if let Some(size) = &mut self.multi {
                    *size += 1;
                }
            }
        }
        self.bytes += bytes;
        match name.and_then(|at| self.names.get_mut(at)) {
            Some(tally) => {
                tally.commands += 1;
                tally.keys += keys.len() as u64;
            }
            None => self.unnamed += 1,
        }
    }

    /// Counts a write to each of `keys` (ranges into `names`), the command's `bytes` shared evenly among them.
    fn keys(
        &mut self,
        profile: &WriteProfile,
        state: &mut State,
        bytes: u64,
        names: &[u8],
        keys: &[Range<u32>],
    ) {
        let share = match keys.len() {
            0 => return,
            1 => bytes,
            n => bytes / n as u64,
        };
        for range in keys {
            let Some(key) = names.get(range.start as usize..range.end as usize) else {
                continue;
            };
            if key.len() > MAX_PROFILE_KEY {
                // Too long to remember, and written once in a while at most: settled each time.
                state.current.key(key, 0, &profile.settle(key), 1, share);
                continue;
            }
            let Written::New(hashed) = self.keys.written(key, share) else {
                continue;
            };
            if !self.keys.has_room() {
                self.flush_keys(state);
                self.keys.clear();
            }
            self.keys.remember(&hashed, profile.settle(key), share);
        }
    }

    /// Adds everything counted since the last flush to the windows.
    fn flush(&mut self, state: &mut State) {
        self.flush_names(state);
        self.flush_keys(state);
        let counts = &mut state.current.counts;
        counts.bytes += self.bytes;
        if self.unnamed > 0 {
            counts.commands(None, self.unnamed);
        }
        self.bytes = 0;
        self.unnamed = 0;
    }

    fn flush_names(&mut self, state: &mut State) {
        for tally in self.names.drain(..) {
            let name = tally.name();
            let mut lower = [0u8; MAX_COMMAND_NAME];
            let lower = &mut lower[..name.len()];
            lower.copy_from_slice(name);
            lower.make_ascii_lowercase();
            let deleting = match &*lower {
                b"del" => Some("del"),
                b"unlink" => Some("unlink"),
                _ => None,
            };
            let counts = &mut state.current.counts;
            counts.commands(Some(lower), tally.commands);
            if let Some(deleting) = deleting {
                *counts.deleted_keys.entry(deleting).or_default() += tally.keys;
            }
        }
        self.last_name = 0;
        self.head.clear();
    }

    fn flush_keys(&mut self, state: &mut State) {
        let window = &mut state.current;
        self.keys.flush(|key, tally| {
            window.key(key, tally.hash, &tally.shown, tally.writes, tally.bytes);
        });
    }
}
