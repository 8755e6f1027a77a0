//! The StreamAssembler: turns relay messages into bounded windows of the keys a page watches.
//!
//! It reads the raw replication stream (see [`replicast_protocol::wire`]), tracks `SELECT`, buffers `MULTI` blocks so that
//! they apply as one step, and hands every other command to [`crate::commands`], which applies it to the
//! windows ([`crate::windows`]) of the watched keys kept in a [`Keyspace`]. Every item entering or leaving a
//! window is reported to the assembler's [`WindowObserver`].
//!
//! Offsets make delivery idempotent: a segment that ends at or before what was already applied is skipped, so a
//! batch seen twice (for instance around a hello) changes nothing. Bad input is counted in [`Diagnostics`] and
//! never passes for exact: a RESP error in a segment or a snapshot loses commands that may have written any
//! watched key, so the shard's windows are dropped until a full snapshot ([`StreamAssembler::needs_resnapshot`]),
//! and the stream goes on with the next segment.
//!
//! Windows that cannot follow a command exactly become stale and their keys are offered by
//! [`StreamAssembler::take_topups`]; a snapshot for the key (wire tag 4) makes them exact again. So do the windows
//! of keys that a command the relay withheld may have written (wire tag 8, at the withheld command's place in the
//! stream).
//!
//! A relay following a Redis Cluster multiplexes one stream per shard (wire tag 7). Each shard's stream has its
//! own epoch, offsets, `MULTI` block and `SELECT`ed database ([`ShardStream`]); messages without an envelope are
//! shard 0's. Which shard may change which window is the [`Keyspace`]'s business (a window's home shard).

mod saved_view;

use std::ops::Range;

use thiserror::Error;

use crate::commands;
use crate::diagnostics::{Diagnostics, Problem};
use crate::keyspace::{Applying, Keyspace, Origin};
use crate::observe::{NoObserver, WindowObserver};
pub use crate::watch::WatchConfig;
use crate::windows::Window;
use replicast_protocol::client_message::MAX_WINDOW;
use replicast_protocol::resp::{Command, CommandReader};
use replicast_protocol::text;
use replicast_protocol::wire::{self, Message, StaleKeys, WindowsDigest, WireError, MAX_SHARDS};
pub use saved_view::{SavedViewError, SAVED_VIEW_VERSION};

/// Most bytes of arguments buffered for one `MULTI` block; past it the block applies as it comes.
pub const MAX_TRANSACTION_BYTES: usize = 16 << 20;

#[derive(Debug, Error)]
pub enum AssemblerError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("commands or snapshot message for shard {shard} before its hello")]
    NoHello { shard: u16 },
    #[error("segment {start}..{end} overlaps what was already applied, up to {applied}")]
    Overlap { start: u64, end: u64, applied: u64 },
}

/// What one relay message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Shard `shard`'s stream (re)started; `continuous` when it continues exactly where the shard's windows were
    /// (a resume, or a failover's new epoch naming the old one). Otherwise the shard's windows were cleared.
    Joined {
        shard: u16,
        epoch: String,
        offset: u64,
        continuous: bool,
    },
    /// Commands were applied; `changed` says whether any watched window moved.
    Applied { commands: usize, changed: bool },
    /// The relay dropped this session and will close it: reconnect.
    Resync { reason: String },
    /// The relay refused or could not do something for this session, which goes on.
    Notice { text: String },
    /// The session's signed token expires at `expires` (Unix seconds): send a fresh one before then.
    Expiring { expires: u64 },
    /// The relay's answer to one of this browser's events: the entry id, or why it was refused.
    Ack {
        request: String,
        entry: Result<String, String>,
    },
    /// The relay's digest of this session's windows at `offset` (or why it has none), read in order in the stream,
    /// and this assembler's own digest of its windows right there: equal when both hold the same windows.
    Digest {
        request: String,
        offset: u64,
        relay: Result<WindowsDigest, String>,
        page: WindowsDigest,
    },
}

/// The commands of a `MULTI` block not applied yet, their arguments packed in one buffer.
#[derive(Debug, Default)]
struct Transaction {
    data: Vec<u8>,
    args: Vec<Range<usize>>,
    /// Each command's arguments (a range of `args`) and end offset.
    commands: Vec<(Range<usize>, u64)>,
    /// Past [`MAX_TRANSACTION_BYTES`]: the rest applies as it comes.
    streaming: bool,
}

impl Transaction {
    fn push(&mut self, command: &Command<'_>) {
        let first = self.args.len();
        for arg in &command.args {
            let start = self.data.len();
            self.data.extend_from_slice(arg);
            self.args.push(start..self.data.len());
        }
        self.commands.push((first..self.args.len(), command.end));
    }

    fn apply(self, applying: &mut Applying<'_>) {
        let mut args: Vec<&[u8]> = Vec::new();
        for (range, end) in &self.commands {
            args.clear();
            args.extend(
                self.args[range.clone()]
                    .iter()
                    .map(|r| &self.data[r.clone()]),
            );
            commands::apply(&mut applying.at(*end), &args);
        }
    }
}

/// Where one shard's replication stream stands.
#[derive(Debug)]
struct ShardStream {
    /// The epoch followed, once the shard's hello arrived.
    epoch: Option<String>,
    /// Parses the shard's commands; its offset is how far the stream was applied.
    reader: CommandReader,
    transaction: Option<Transaction>,
    /// `None` until the stream's first `SELECT` after a join (see [`Applying`]'s `selected_db`).
    selected_db: Option<u32>,
}

impl ShardStream {
    fn new() -> Self {
        ShardStream {
            epoch: None,
            reader: CommandReader::new(0),
            transaction: None,
            selected_db: None,
        }
    }
}

/// Windows of the watched keys, kept up to date from the replication stream, reported to an observer `O`.
#[derive(Debug)]
pub struct StreamAssembler<O: WindowObserver = NoObserver> {
    /// By shard index, grown as hellos name shards (one Redis is shard 0 alone, a cluster of one).
    streams: Vec<ShardStream>,
    keyspace: Keyspace,
    observer: O,
}

impl StreamAssembler<NoObserver> {
    pub fn new(watch: WatchConfig) -> Self {
        Self::with_observer(watch, NoObserver)
    }
}

impl<O: WindowObserver> StreamAssembler<O> {
    /// An assembler that reports every item entering or leaving a window to `observer`.
    pub fn with_observer(mut watch: WatchConfig, observer: O) -> Self {
        // The relay refuses larger windows (a subscription past the limit closes the session): ask for one it takes.
        watch.window = watch.window.clamp(1, MAX_WINDOW);
        StreamAssembler {
            streams: Vec::new(),
            keyspace: Keyspace::new(watch),
            observer,
        }
    }

    /// What this assembler watches.
    pub fn watch(&self) -> &WatchConfig {
        &self.keyspace.watch
    }

    /// The epoch being followed (shard 0's, with a relay following a cluster), once a hello arrived.
    pub fn epoch(&self) -> Option<&str> {
        self.streams.first().and_then(|s| s.epoch.as_deref())
    }

    /// Replication offset up to which the stream (shard 0's) has been applied.
    pub fn offset(&self) -> u64 {
        self.streams.first().map_or(0, |s| s.reader.offset())
    }

    /// Every shard whose hello arrived: its index, epoch, and the offset up to which its stream was applied. What
    /// a client resumes from (`at=<epoch>:<offset>,…`).
    pub fn positions(&self) -> Vec<(u16, String, u64)> {
        self.streams
            .iter()
            .enumerate()
            .filter_map(|(index, stream)| {
                let epoch = stream.epoch.clone()?;
                // At most MAX_SHARDS streams: the index fits.
                Some((index as u16, epoch, stream.reader.offset()))
            })
            .collect()
    }

    pub fn observer(&self) -> &O {
        &self.observer
    }

    pub fn observer_mut(&mut self) -> &mut O {
        &mut self.observer
    }

    /// Counters of bad input and inexact commands.
    pub fn diagnostics(&self) -> &Diagnostics {
        &self.keyspace.diagnostics
    }

    /// Watched keys that have a window, in key order.
    pub fn windows(&self) -> impl Iterator<Item = (&[u8], &Window)> {
        self.keyspace.sorted_windows().into_iter()
    }

    /// Watched keys that have a window, in key order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.keyspace.sorted_windows().into_iter().map(|(k, _)| k)
    }

    pub fn window(&self, key: &[u8]) -> Option<&Window> {
        self.keyspace.windows.get(key)
    }

    /// Keys whose windows need a top-up (a snapshot of just them), each once; taking them clears the list.
    pub fn take_topups(&mut self) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = std::mem::take(&mut self.keyspace.topups)
            .into_iter()
            .collect();
        crate::sort::sort(&mut keys);
        keys
    }

    /// Watched keys without a window whose state in Redis is unknown (a top-up is due for each), in key order.
    pub fn unknown_keys(&self) -> impl Iterator<Item = &[u8]> {
        self.keyspace.unknown_keys()
    }

    /// Whether `key` is a watched key without a window whose state is unknown (one of [`Self::unknown_keys`]).
    pub fn is_unknown(&self, key: &[u8]) -> bool {
        self.keyspace.unknown.contains_key(key)
    }

    /// Drops `key`'s window and counts its state as unknown, as if a command had written it in a way the stream
    /// does not tell: for a follower that chooses not to hold the key (the relay's state past its memory budget).
    /// Its top-up is requested like any unknown key's.
    pub fn forget(&mut self, key: &[u8]) {
        let shard = self.keyspace.windows.get(key).map_or(0, Window::shard);
        let origin = Origin {
            shard,
            offset: self.offset(),
            authoritative: true,
        };
        let (mut selected_db, mut changed) = (None, false);
        Applying::new(
            &mut self.keyspace,
            &mut self.observer,
            origin,
            &mut selected_db,
            &mut changed,
        )
        .mark_unknown(key);
    }

    /// Whether the watched database was swapped (`SWAPDB`): no key's state (of that shard) is known, and the
    /// shard's next snapshot replaces all its windows, not only those of the keys it names.
    pub fn needs_resnapshot(&self) -> bool {
        !self.keyspace.swapped.is_empty()
    }

    /// Drops the windows of keys whose TTL passed at `now_ms` (Unix milliseconds), as Redis will; returns how
    /// many. (Redis also propagates a `DEL` when it expires a key; this only makes it visible on time.)
    pub fn tick(&mut self, now_ms: u64) -> usize {
        self.keyspace.expire(&mut self.observer, now_ms)
    }

    /// Applies one binary message from the relay.
    pub fn push_message(&mut self, message: &[u8]) -> Result<Outcome, AssemblerError> {
        let message = match wire::decode(message) {
            Ok(message) => message,
            Err(err) => return Err(self.wire_error(err)),
        };
        match message {
            Message::Shard { index, message } => self.push_shard(index, *message),
            message => self.push_shard(0, message),
        }
    }

    /// Applies whole commands of shard 0's stream that occupied `start..start + commands.len()`: what a commands
    /// message of that one segment does (`wire::encode_commands`), for a follower that holds the stream's bytes
    /// already (the relay's own state, which reads the link's batches) and need not copy them into a message.
    pub fn push_commands(
        &mut self,
        start: u64,
        commands: &[u8],
    ) -> Result<Outcome, AssemblerError> {
        self.following(0)?;
        let mut changed = false;
        let commands = self.apply_segment(0, start, commands, &mut changed)?;
        Ok(Outcome::Applied { commands, changed })
    }

    /// Applies one message of shard `shard`'s stream (messages of no stream, like notices, as they are).
    fn push_shard(&mut self, shard: u16, message: Message<'_>) -> Result<Outcome, AssemblerError> {
        match message {
            Message::Hello {
                epoch,
                offset,
                previous,
                ..
            } => {
                if usize::from(shard) >= MAX_SHARDS {
                    return Err(self.wire_error(WireError {
                        at: 1,
                        expected: text!("a shard index below 1024"),
                    }));
                }
                let continuous = self.join(shard, epoch, offset, previous);
                Ok(Outcome::Joined {
                    shard,
                    epoch: epoch.to_string(),
                    offset,
                    continuous,
                })
            }
            Message::Commands(segments) => {
                self.following(shard)?;
                let mut commands = 0;
                let mut changed = false;
                for segment in segments {
                    let segment = segment.map_err(|err| self.wire_error(err))?;
                    commands +=
                        self.apply_segment(shard, segment.start, segment.bytes, &mut changed)?;
                }
                Ok(Outcome::Applied { commands, changed })
            }
            Message::Snapshot { offset, commands } => {
                self.following(shard)?;
                self.apply_snapshot(shard, offset, commands);
                Ok(Outcome::Applied {
                    commands: 0,
                    changed: true,
                })
            }
            Message::Stale { offset, keys } => {
                self.following(shard)?;
                let changed = self.apply_stale(shard, offset, keys);
                Ok(Outcome::Applied {
                    commands: 0,
                    changed,
                })
            }
            Message::Resync { reason } => Ok(Outcome::Resync {
                reason: reason.to_string(),
            }),
            Message::Notice { text } => Ok(Outcome::Notice {
                text: text.to_string(),
            }),
            Message::Expiring { expires } => Ok(Outcome::Expiring { expires }),
            Message::Digest {
                request,
                offset,
                digest,
            } => Ok(Outcome::Digest {
                request: request.to_string(),
                offset,
                relay: digest.map_err(str::to_string),
                page: crate::digest::windows_digest(self.windows(), self.watch().window),
            }),
            Message::Ack { request, entry } => Ok(Outcome::Ack {
                request: request.to_string(),
                entry: entry.map(str::to_string).map_err(str::to_string),
            }),
            // The decoder refuses these; a message built another way is refused the same.
            Message::Shard { .. } => Err(self.wire_error(WireError {
                at: 3,
                expected: text!("a message that is not another shard envelope"),
            })),
        }
    }

    /// `Ok` if shard `shard`'s hello arrived.
    fn following(&self, shard: u16) -> Result<(), AssemblerError> {
        match self.streams.get(usize::from(shard)) {
            Some(stream) if stream.epoch.is_some() => Ok(()),
            _ => Err(AssemblerError::NoHello { shard }),
        }
    }

    fn wire_error(&mut self, err: WireError) -> AssemblerError {
        let offset = self.offset();
        self.keyspace
            .diagnostics
            .record(Problem::BadMessage, offset, err.to_string());
        err.into()
    }

    /// Applies the commands of one segment of shard `shard`'s stream (which had its hello); returns how many it
    /// held, and sets `changed` if a window changed.
    fn apply_segment(
        &mut self,
        shard: u16,
        start: u64,
        bytes: &[u8],
        changed: &mut bool,
    ) -> Result<usize, AssemblerError> {
        let Self {
            streams,
            keyspace,
            observer,
        } = self;
        let stream = &mut streams[usize::from(shard)];
        let applied = stream.reader.offset();
        let end = start + bytes.len() as u64;
        if end <= applied {
            return Ok(0);
        }
        if start < applied {
            let err = AssemblerError::Overlap {
                start,
                end,
                applied,
            };
            keyspace
                .diagnostics
                .record(Problem::Overlap, start, err.to_string());
            return Err(err);
        }
        if start > applied {
            // Frames the relay filtered out: whole commands, so parsing resumes cleanly here.
            stream.reader = CommandReader::new(start);
        }
        let mut commands = 0;
        let ShardStream {
            reader,
            transaction,
            selected_db,
            ..
        } = stream;
        let origin = Origin {
            shard,
            offset: start,
            authoritative: false,
        };
        let mut applying = Applying::new(keyspace, observer, origin, selected_db, changed);
        let result = reader.push(bytes, |command| {
            commands += 1;
            apply_command(&mut applying, transaction, command);
        });
        if let Err(err) = result {
            applying
                .keyspace
                .diagnostics
                .record(Problem::BadSegment, start, err.to_string());
            // What the rest of the segment wrote is lost: only a full snapshot can say what the keys hold.
            applying.clear(false);
            // Segments hold whole commands: the next one starts cleanly.
            *reader = CommandReader::new(end);
        }
        Ok(commands)
    }

    /// The relay withheld a command of shard `shard`'s stream that ends at `offset` and may have written `keys`:
    /// their windows become stale and a top-up of each is requested (every window, and a fresh snapshot, for
    /// [`StaleKeys::All`]); the stream goes on from `offset`. A stale message for commands already applied past is
    /// a duplicate, and changes nothing. Returns whether it did anything.
    fn apply_stale(&mut self, shard: u16, offset: u64, keys: StaleKeys<'_>) -> bool {
        let Self {
            streams,
            keyspace,
            observer,
        } = self;
        let stream = &mut streams[usize::from(shard)];
        let applied = stream.reader.offset();
        if offset < applied {
            return false;
        }
        let origin = Origin {
            shard,
            offset,
            authoritative: false,
        };
        let mut changed = false;
        let mut applying = Applying::new(
            keyspace,
            observer,
            origin,
            &mut stream.selected_db,
            &mut changed,
        );
        match keys {
            StaleKeys::Keys(keys) => {
                for key in keys {
                    applying.mark_stale(key);
                }
            }
            // Like a swapped database: nothing of the shard's keys is known until its next full snapshot.
            StaleKeys::All => applying.clear(false),
        }
        if offset > applied {
            // The withheld command's bytes: whole commands, so parsing resumes cleanly at `offset`.
            stream.reader = CommandReader::new(offset);
        }
        true
    }

    /// Replaces the windows the snapshot names with their state at `offset` in shard `shard`'s stream, which
    /// continues from there. A snapshot is authoritative: the windows it rebuilds get `shard` as their home.
    fn apply_snapshot(&mut self, shard: u16, offset: u64, commands: &[u8]) {
        let Self {
            streams,
            keyspace,
            observer,
        } = self;
        // The snapshot is read in the watched database; its commands apply there. The stream's own `SELECT`
        // stays what it was: a top-up sits in the middle of the stream, and a join's snapshot says nothing of it.
        let mut selected_db = Some(keyspace.watch.db);
        let origin = Origin {
            shard,
            offset,
            authoritative: true,
        };
        let mut changed = false;
        let mut applying =
            Applying::new(keyspace, observer, origin, &mut selected_db, &mut changed);
        if applying.keyspace.swapped.contains(shard) {
            applying.clear(true);
        }
        let mut rebuilt = Vec::new();
        let result = CommandReader::new(0).push(commands, |command| {
            if command.is("del") {
                rebuilt.extend(command.args[1..].iter().map(|k| k.to_vec()));
            }
            commands::apply(&mut applying, &command.args);
        });
        if let Err(err) = result {
            applying
                .keyspace
                .diagnostics
                .record(Problem::BadSnapshot, offset, err.to_string());
            // The keys after the error were not rebuilt, and which they were is not known.
            applying.clear(false);
            rebuilt.clear();
        }
        for key in &rebuilt {
            applying.snapshot_done(key);
        }
        let stream = &mut streams[usize::from(shard)];
        stream.transaction = None;
        stream.reader = CommandReader::new(offset);
    }

    /// Starts following `epoch` from `offset` in shard `shard`'s stream. The shard's windows survive only when
    /// nothing can have been missed: the same epoch (or the one `epoch` continues, `previous`, after a failover)
    /// and the same offset. Otherwise they start empty, since the stream alone cannot say what changed meanwhile;
    /// other shards' windows stay. Returns whether the stream continued.
    fn join(&mut self, shard: u16, epoch: &str, offset: u64, previous: &str) -> bool {
        let index = usize::from(shard);
        if self.streams.len() <= index {
            self.streams.resize_with(index + 1, ShardStream::new);
        }
        let stream = &mut self.streams[index];
        let same_epoch = stream
            .epoch
            .as_deref()
            .is_some_and(|e| e == epoch || (!previous.is_empty() && e == previous));
        let continuous = same_epoch && stream.reader.offset() == offset;
        if !continuous {
            let origin = Origin {
                shard,
                offset,
                authoritative: false,
            };
            let mut changed = false;
            Applying::new(
                &mut self.keyspace,
                &mut self.observer,
                origin,
                &mut stream.selected_db,
                &mut changed,
            )
            .clear(true);
            stream.selected_db = None;
            stream.transaction = None;
        }
        stream.epoch = Some(epoch.to_string());
        stream.reader = CommandReader::new(offset);
        continuous
    }
}

/// Whether `command` is `name` (lower case, in any case in the stream): its length and first letter tested here,
/// the letters then by [`Command::is`], which the client's opt-level "z" leaves a call, twice for every command
/// (`ZADD` and `EXEC` differ in their first letter). ORed with 0x20, only the letter itself in either case matches.
#[inline(always)]
fn named(command: &Command<'_>, name: &str) -> bool {
    command.args.first().is_some_and(|n| {
        n.len() == name.len() && n.first().map(|&b| b | 0x20) == name.as_bytes().first().copied()
    }) && command.is(name)
}

/// Applies one command of the stream, or buffers it inside a `MULTI` block. Inlined into its one caller, the
/// loop over a segment's commands.
#[inline(always)]
fn apply_command(
    applying: &mut Applying<'_>,
    transaction: &mut Option<Transaction>,
    command: &Command<'_>,
) {
    if named(command, "multi") {
        if let Some(open) = transaction.take() {
            // MULTI inside MULTI: Redis never sends it; keep what the first block had.
            open.apply(applying);
        }
        *transaction = Some(Transaction::default());
        return;
    }
    if named(command, "exec") {
        if let Some(done) = transaction.take() {
            done.apply(applying);
        }
        return;
    }
    if let Some(open) = transaction {
        if !open.streaming {
            let size: usize = command.args.iter().map(|a| a.len()).sum();
            if open.data.len() + size <= MAX_TRANSACTION_BYTES {
                open.push(command);
                return;
            }
            applying.at(command.end).problem(
                Problem::LongTransaction,
                text!("a MULTI block over 16 MiB, applied as it came"),
            );
            std::mem::take(open).apply(applying);
            open.streaming = true;
        }
    }
    // The segment's context, at this command's end: set in place, where `Applying::at` would build a copy of it
    // for each command.
    applying.origin.offset = command.end;
    commands::apply(applying, &command.args);
}
