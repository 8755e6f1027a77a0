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

use super::recent_keys::RecentKeys;
use super::space_saving::{Hashed, MAX_PROFILE_KEY};
use super::window::MAX_COMMAND_NAME;
use super::write_profile::{command_name, State, WriteProfile};
use crate::frames::{Frame, FrameIndex, Kind};

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
    /// Commands whose name is longer than a window counts by name.
    unnamed: u64,
    keys: RecentKeys,
}

/// Commands of one name, spelled as the stream spells it (lowercased only when they go into the windows).
struct NameTally {
    name: Vec<u8>,
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
            let name = command_name(bytes).unwrap_or(b"?");
            let keys = written_keys(index, frame);
            let bytes = bytes.len() as u64;
            self.tallies
                .command(&mut state, name, frame.kind, bytes, keys);
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
            self.tallies
                .command(&mut state, name.as_bytes(), frame.kind, bytes, keys);
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

impl Tallies {
    /// Counts a command named `name`, of `bytes` bytes, that may write `keys`, and follows `MULTI` blocks (whose
    /// sizes go into the windows at once: one per block).
    fn command(
        &mut self,
        state: &mut State,
        name: &[u8],
        kind: Kind,
        bytes: u64,
        keys: &[Range<u32>],
    ) {
        match kind {
            Kind::Multi => self.multi = Some(0),
            Kind::Exec => {
                if let Some(size) = self.multi.take() {
                    state.current.multi(size);
                    state.since_start.multi(size);
                }
            }
            _ => {
                if let Some(size) = &mut self.multi {
                    *size += 1;
                }
            }
        }
        self.bytes += bytes;
        if name.len() > MAX_COMMAND_NAME {
            self.unnamed += 1;
            return;
        }
        let at = match self.names.get(self.last_name) {
            Some(tally) if tally.name == name => self.last_name,
            _ => match self.names.iter().position(|tally| tally.name == name) {
                Some(at) => at,
                None => {
                    if self.names.len() == PENDING_NAMES {
                        self.flush_names(state);
                    }
                    self.names.push(NameTally {
                        name: name.to_vec(),
                        commands: 0,
                        keys: 0,
                    });
                    self.names.len() - 1
                }
            },
        };
        self.last_name = at;
        let tally = &mut self.names[at];
        tally.commands += 1;
        tally.keys += keys.len() as u64;
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
        let share = bytes / keys.len().max(1) as u64;
        for range in keys {
            let Some(key) = names.get(range.start as usize..range.end as usize) else {
                continue;
            };
            if key.len() > MAX_PROFILE_KEY {
                // Too long to remember, and written once in a while at most: settled each time.
                let shown = profile.settle(key);
                state.current.key(key, 0, &shown, 1, share);
                state.since_start.key(key, 0, &shown, 1, share);
                continue;
            }
            let hashed = Hashed::new(key);
            if self.keys.written(&hashed, share) {
                continue;
            }
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
        for window in [&mut state.current, &mut state.since_start] {
            window.bytes += self.bytes;
            if self.unnamed > 0 {
                window.commands(None, self.unnamed);
            }
        }
        self.bytes = 0;
        self.unnamed = 0;
    }

    fn flush_names(&mut self, state: &mut State) {
        for tally in self.names.drain(..) {
            let mut lower = [0u8; MAX_COMMAND_NAME];
            let lower = &mut lower[..tally.name.len()];
            lower.copy_from_slice(&tally.name);
            lower.make_ascii_lowercase();
            let deleting = match &*lower {
                b"del" => Some("del"),
                b"unlink" => Some("unlink"),
                _ => None,
            };
            for window in [&mut state.current, &mut state.since_start] {
                window.commands(Some(lower), tally.commands);
                if let Some(deleting) = deleting {
                    *window.deleted_keys.entry(deleting).or_default() += tally.keys;
                }
            }
        }
        self.last_name = 0;
    }

    fn flush_keys(&mut self, state: &mut State) {
        self.keys.flush(|key, tally| {
            for window in [&mut state.current, &mut state.since_start] {
                window.key(key, tally.hash, &tally.shown, tally.writes, tally.bytes);
            }
        });
    }
}
