//! The replication stream after `PSYNC`, cut into the backlog's batches: whole commands with their index, a
//! `MULTI`…`EXEC` block kept in one batch up to [`MAX_BLOCK_BYTES`], and commands too large to hold passed
//! through piece by piece.
//!
//! A command is held until it is complete when the relay can forward it to browsers: at most `max_held` bytes
//! ([`MAX_HELD_COMMAND`], or a quarter of a smaller backlog) and within the browser parser's limits (at most
//! [`MAX_ARGS`] arguments). A larger one, which Redis accepts up to [`REDIS_MAX_ARGS`] arguments and bulks of its
//! `proto-max-bulk-len`, is read as a [`StreamedCommand`]: its bytes are dropped as they arrive, [`StreamedKeys`]
//! keeps the names of the keys it may write, and it reaches the backlog as an empty frame that no session receives
//! ([`Output::Unheld`]): withheld, those keys stale for the sessions watching them, or every window of its database
//! stale when they cannot all be named within bounds. So the link holds at most a block, one command of `max_held`
//! bytes and a read, whatever the stream carries.
//!
//! It does no I/O: bytes in, [`Output`]s out, so tests and the `link_stream` fuzz target drive it directly.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use replicast_protocol::resp::{
    parse_command_into, Checked, Command, CommandCheck, Limits, Piece, RespError, StreamedCommand,
    MAX_ARGS, REDIS_MAX_ARGS,
};

use crate::command_table::streamed::{StreamedKeys, StreamedKeysFound, MAX_STREAMED_KEY_LEN};
use crate::command_table::CommandTable;
use crate::frames::{Frame, FrameIndex, Indexer, Kind};
use replicast_protocol::short_bytes::same_bytes;

/// Largest command the relay holds and forwards to browsers; larger ones are withheld, their keys made stale.
pub const MAX_HELD_COMMAND: usize = 16 * 1024 * 1024;
/// A `MULTI`…`EXEC` block is kept in one batch, so no browser sees half a transaction, up to this size; a larger
/// block is cut like any other stream (Redis's own transactions are rarely near it), and so is one holding a
/// command too large to hold.
pub const MAX_BLOCK_BYTES: usize = 16 * 1024 * 1024;
/// Longest part of a streamed command's name kept for the logs.
const LOGGED_NAME_LEN: usize = 64;
/// Commands that change which database the stream, or a key, is in: the relay follows them by their arguments, so
/// one too large to hold (Redis never propagates such a `SELECT`, `FLUSH…`, `SWAPDB`, `MULTI` or `EXEC`; a
/// `MOVE` or `COPY` of a key over 16 MiB) cannot be followed while it streams by.
const ROUTED_BY_DATABASE: [&[u8]; 8] = [
    b"select",
    b"flushall",
    b"flushdb",
    b"swapdb",
    b"multi",
    b"exec",
    b"move",
    b"copy",
];

/// The largest command held for a backlog of `capacity` bytes: a batch that is a large share of the ring would
/// push every session out of it.
pub fn max_held(capacity: usize) -> usize {
    MAX_HELD_COMMAND.min(capacity / 4)
}

/// A command the link read without holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeCommand {
    /// Its offsets in the stream.
    pub start: u64,
    pub end: u64,
    /// Its number of arguments.
    pub args: u64,
    /// Its name, for the logs (at most 64 bytes of it, as text).
    pub name: String,
}

/// What the link does with what it read, in stream order.
#[derive(Debug)]
pub enum Output {
    /// Whole commands that occupied `start..start + raw.len()`: `Backlog::append`. `raw` is the read buffer's own
    /// part (no copy), still writable, so what of it no session may get can be wiped before the rest is shared.
    Batch {
        start: u64,
        raw: BytesMut,
        index: FrameIndex,
    },
    /// A command too large to hold, with the names its one empty frame's keys point into: `Backlog::append_unheld`.
    /// The frame is [`Kind::Withheld`] with the keys it may have written, [`Kind::WithheldAll`] when they cannot
    /// all be named, or [`Kind::Other`] when it writes none; `why` says why for the last two.
    Unheld {
        command: LargeCommand,
        names: Vec<u8>,
        index: FrameIndex,
        why: Option<String>,
    },
    /// A `REPLCONF GETACK` that came after what was output so far: answer `REPLCONF ACK <offset>`, the offset
    /// before it, as Redis's replicas do.
    GetAck(u64),
}

/// Where the buffer can be cut: after the last command outside a `MULTI` block.
#[derive(Debug, Clone, Copy, Default)]
struct Cut {
    len: usize,
    frames: usize,
    keys: usize,
}

/// A command too large to hold, being read.
struct Large {
    command: StreamedCommand,
    kept: Kept,
    /// The commands of an open `MULTI` block read before it.
    aside: Option<Aside>,
}

/// The commands of an open `MULTI` block read before a command too large to hold, set aside until that command
/// proves to be one: if it turns out corrupt, they are not output, just as when it arrives whole and fails to parse
/// before any of the block is output. (Once it is read, they go out before it: it cuts the block.)
struct Aside {
    raw: BytesMut,
    index: FrameIndex,
    /// The offsets `REPLCONF GETACK`s among them ask for.
    getacks: Vec<u64>,
}

/// What is kept of a command too large to hold.
#[derive(Default)]
struct Kept {
    /// Created once its argument count is known.
    keys: Option<StreamedKeys>,
    args: u64,
    /// The argument being read, whether its bytes are kept, and they.
    arg: u64,
    keep: bool,
    content: Vec<u8>,
    name: Vec<u8>,
    /// Its name is one of [`ROUTED_BY_DATABASE`].
    by_database: bool,
}

impl Kept {
    fn take(&mut self, piece: Piece<'_>, table: &Arc<CommandTable>) {
        match piece {
            Piece::Count(n) => {
                self.args = n;
                self.keys = Some(StreamedKeys::new(table.clone(), n));
            }
            Piece::ArgStart { index, len } => {
                self.arg = index;
                self.keep = self
                    .keys
                    .as_mut()
                    .is_some_and(|keys| keys.arg_start(index, len));
                self.content.clear();
            }
            Piece::ArgBytes(bytes) => {
                if self.keep {
                    // Bounded by what StreamedKeys asks to keep.
                    let room = MAX_STREAMED_KEY_LEN.saturating_sub(self.content.len());
                    self.content
                        .extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
                if self.arg == 0 {
                    let room = LOGGED_NAME_LEN.saturating_sub(self.name.len());
                    self.name.extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
            }
            Piece::ArgEnd => {
                if self.arg == 0 {
                    let name = self.name.to_ascii_lowercase();
                    self.by_database = ROUTED_BY_DATABASE.contains(&name.as_slice());
                }
                if let Some(keys) = self.keys.as_mut() {
                    keys.arg_end(self.arg, self.keep.then_some(self.content.as_slice()));
                }
            }
        }
    }
}

/// Reads the stream that follows a `PSYNC` reply into [`Output`]s.
pub struct StreamReader {
    indexer: Indexer,
    table: Arc<CommandTable>,
    /// What a held command must stay within: the browser parser's limits, bulks up to `max_held` (and what Redis
    /// accepts).
    held: Limits,
    /// What Redis propagates: any argument count it accepts, bulks up to its `proto-max-bulk-len`.
    link: Limits,
    max_held: usize,
    /// Stream offset of the first byte not yet output (while a large command is read: its own first byte, or that
    /// of the block's commands set aside before it).
    start: u64,
    /// Bytes of the buffer read into `index` (the buffer starts at `start`, or, while a large command is read,
    /// where its reading got to).
    parsed: usize,
    index: FrameIndex,
    cut: Cut,
    in_block: bool,
    /// How far the check of an incomplete command at `parsed` got.
    check: CommandCheck,
    /// `REPLCONF GETACK`s read: their place in the buffer, and the offset to answer.
    getacks: Vec<(usize, u64)>,
    large: Option<Large>,
    /// The commands the fast path frames (see [`HotCommands`]); `None`: every command takes the general path.
    hot: Option<HotCommands>,
}

impl StreamReader {
    /// A reader of the stream from `offset` on, routing by `table`, holding commands of at most `max_held` bytes,
    /// and accepting bulks of up to `max_bulk_len` bytes (the primary's `proto-max-bulk-len`).
    pub fn new(
        table: Arc<CommandTable>,
        offset: u64,
        max_held: usize,
        max_bulk_len: usize,
    ) -> Self {
        StreamReader {
            indexer: Indexer::new(table.clone()),
            table,
            held: Limits {
                max_args: MAX_ARGS,
                max_bulk_len: max_held.min(max_bulk_len),
                ..Limits::default()
            },
            link: Limits {
                max_args: REDIS_MAX_ARGS,
                max_bulk_len,
                ..Limits::default()
            },
            max_held,
            start: offset,
            parsed: 0,
            index: FrameIndex::default(),
            cut: Cut::default(),
            in_block: false,
            check: CommandCheck::default(),
            getacks: Vec::new(),
            large: None,
            hot: Some(HotCommands::default()),
        }
    }

    /// The same reader without the framing fast path: every command parsed and looked up in full. What the fast
    /// path is held to in tests, and the reference its benchmark compares with.
    pub fn without_fast_path(mut self) -> Self {
        self.hot = None;
        self
    }

    /// The offset up to which everything read has been output: where the link stands in the stream.
    pub fn offset(&self) -> u64 {
        self.start
    }

    /// Reads what `buf` holds, which continues what it held before (minus what this consumed), handing `out` what
    /// to do, in stream order; consumes from `buf` whatever it output or passed through. An error is the stream's
    /// own (its framing is lost, or it exceeds what Redis accepts): the reader is then of no further use.
    pub fn read(
        &mut self,
        buf: &mut BytesMut,
        out: &mut impl FnMut(Output),
    ) -> Result<(), RespError> {
        loop {
            if let Some(large) = self.large.as_mut() {
                let (table, kept) = (&self.table, &mut large.kept);
                let used = large.command.push(buf, |piece| kept.take(piece, table))?;
                // Never held, and the buffer may live on in the batches shared before it: wiped as it goes by.
                buf[..used].fill(0);
                buf.advance(used);
                if large.kept.by_database {
                    return Err(RespError::Unexpected {
                        offset: large.command.start(),
                        expected: "a command that can be followed while it streams by (a SELECT, FLUSHALL, FLUSHDB, \
                                   SWAPDB, MOVE, COPY, MULTI or EXEC too large to hold cannot)",
                        found: format!(
                            "{} of {} arguments",
                            String::from_utf8_lossy(&large.kept.name).to_uppercase(),
                            large.kept.args
                        ),
                    });
                }
                if !large.command.is_done() {
                    return Ok(());
                }
                self.finish_large(out);
                continue;
            }
            let large_next = match self.parse_held(buf) {
                Ok(large_next) => large_next,
                Err(err) => {
                    // What came before is the stream as Redis sent it.
                    self.emit(buf, out);
                    return Err(err);
                }
            };
            self.emit(buf, out);
            if !large_next {
                return Ok(());
            }
            let aside = (self.parsed > 0).then(|| {
                let raw = buf.split_to(self.parsed);
                self.parsed = 0;
                Aside {
                    raw,
                    index: std::mem::take(&mut self.index),
                    getacks: self.getacks.drain(..).map(|(_, at)| at).collect(),
                }
            });
            let start = self.start + aside.as_ref().map_or(0, |a| a.raw.len() as u64);
            // Its check so far is of no further use: it is read from its start again, piece by piece.
            self.check = CommandCheck::default();
            self.large = Some(Large {
                command: StreamedCommand::new(start, &self.link),
                kept: Kept::default(),
                aside,
            });
        }
    }

    /// Reads the complete commands at `buf[parsed..]` into the index; returns whether the next one is too large to
    /// hold. (Only a RESP array can be: an inline command is at most 64 KiB, and Redis propagates none but the
    /// blank keepalive line.)
    fn parse_held(&mut self, buf: &[u8]) -> Result<bool, RespError> {
        // One argument list for the whole read: commands cost no allocation of their own.
        let mut command = Command {
            args: Vec::new(),
            start: 0,
            end: 0,
        };
        loop {
            if !self.in_block && !self.check.is_resuming() {
                self.hot_run(buf);
            }
            let rest = &buf[self.parsed..];
            if rest.is_empty() {
                return Ok(false);
            }
            let offset = self.start + self.parsed as u64;
            // A command that arrived in pieces is checked from where the last read stopped, then parsed once.
            let window = if self.check.is_resuming() {
                match self.check.check(rest, offset, &self.held) {
                    Ok(Checked::Complete(len)) => &rest[..len],
                    Ok(Checked::Incomplete { at_least }) => {
                        return Ok(self.too_large(rest, at_least))
                    }
                    Err(err) => return large_or_error(err),
                }
            } else {
                rest
            };
            match parse_command_into(window, offset, &self.held, &mut command) {
                Ok(true) => {}
                Ok(false) => {
                    return match self.check.check(rest, offset, &self.held) {
                        Ok(Checked::Incomplete { at_least }) => Ok(self.too_large(rest, at_least)),
                        Ok(Checked::Complete(_)) => Ok(false),
                        Err(err) => large_or_error(err),
                    };
                }
                Err(err) => return large_or_error(err),
            }
            let len = command.frame_len();
            if len > self.max_held && rest.first() == Some(&b'*') {
                return Ok(true);
            }
            if command.is("replconf")
                && command
                    .args
                    .get(1)
                    .is_some_and(|a| a.eq_ignore_ascii_case(b"getack"))
            {
                self.getacks.push((self.parsed, offset));
            }
            self.indexer
                .add(&mut self.index, buf, &command, self.parsed);
            if let (Some(hot), Some(frame)) = (self.hot.as_mut(), self.index.frames.last()) {
                if frame.kind == Kind::Keyed && frame.keys.len() == 1 {
                    hot.learn(&self.table, &buf[self.parsed..self.parsed + len], &command);
                }
            }
            self.parsed += len;
            match self.index.frames.last().map(|f| f.kind) {
                Some(Kind::Multi) => self.in_block = true,
                Some(Kind::Exec) => self.in_block = false,
                _ => {}
            }
            if !self.in_block || self.parsed - self.cut.len > MAX_BLOCK_BYTES {
                self.cut = Cut {
                    len: self.parsed,
                    frames: self.index.frames.len(),
                    keys: self.index.keys.len(),
                };
            }
        }
    }

    /// Indexes the run of whole commands at `buf[parsed..]` that the fast path frames (outside a `MULTI` block, not
    /// resuming a command split across reads), and moves the cut past them.
    fn hot_run(&mut self, buf: &[u8]) {
        let Some(hot) = self.hot.as_mut() else {
            return;
        };
        let db = self.indexer.db();
        let max_bulk = self.held.max_bulk_len;
        let mut at = self.parsed;
        while let Some(framed) = buf
            .get(at..)
            .and_then(|rest| hot.frame(rest, self.max_held, max_bulk))
        {
            let first = self.index.keys.len() as u32;
            self.index
                .keys
                .push((at + framed.key.start) as u32..(at + framed.key.end) as u32);
            self.index.frames.push(Frame {
                at: at as u32..(at + framed.len) as u32,
                db,
                target_db: db,
                kind: Kind::Keyed,
                keys: first..first + 1,
                written: framed.written as u32,
            });
            at += framed.len;
        }
        if at > self.parsed {
            self.parsed = at;
            self.cut = Cut {
                len: at,
                frames: self.index.frames.len(),
                keys: self.index.keys.len(),
            };
        }
    }

    /// Whether the incomplete command that is all of `rest`, at least `at_least` bytes long, is too large to hold.
    fn too_large(&self, rest: &[u8], at_least: usize) -> bool {
        rest.first() == Some(&b'*') && (at_least > self.max_held || rest.len() > self.max_held)
    }

    /// Outputs the buffer up to the cut as a batch, then the GETACKs in it. The frames after the cut (a `MULTI`
    /// block waiting for its `EXEC`) stay, placed relative to the buffer's new start.
    fn emit(&mut self, buf: &mut BytesMut, out: &mut impl FnMut(Output)) {
        let cut = std::mem::take(&mut self.cut);
        if cut.len == 0 {
            return;
        }
        let raw = buf.split_to(cut.len);
        let (frames, keys) = (self.index.frames.len(), self.index.keys.len());
        let mut index = std::mem::replace(
            &mut self.index,
            FrameIndex {
                // Sized like this batch, so the next does not grow its lists step by step.
                frames: Vec::with_capacity(frames),
                keys: Vec::with_capacity(keys),
            },
        );
        let shift = cut.len as u32;
        for mut frame in index.frames.drain(cut.frames..) {
            frame.at = frame.at.start - shift..frame.at.end - shift;
            frame.keys = frame.keys.start - cut.keys as u32..frame.keys.end - cut.keys as u32;
            self.index.frames.push(frame);
        }
        for key in index.keys.drain(cut.keys..) {
            self.index.keys.push(key.start - shift..key.end - shift);
        }
        out(Output::Batch {
            start: self.start,
            raw,
            index,
        });
        for (_, at) in self.getacks.iter().filter(|(pos, _)| *pos < cut.len) {
            out(Output::GetAck(*at));
        }
        self.getacks.retain(|(pos, _)| *pos >= cut.len);
        for (pos, _) in &mut self.getacks {
            *pos -= cut.len;
        }
        self.start += cut.len as u64;
        self.parsed -= cut.len;
    }

    /// Outputs the large command just read, after the block's commands set aside before it.
    fn finish_large(&mut self, out: &mut impl FnMut(Output)) {
        let Some(large) = self.large.take() else {
            return;
        };
        if let Some(aside) = large.aside {
            let len = aside.raw.len() as u64;
            out(Output::Batch {
                start: self.start,
                raw: aside.raw,
                index: aside.index,
            });
            for at in aside.getacks {
                out(Output::GetAck(at));
            }
            self.start += len;
        }
        let end = large.command.offset();
        let command = LargeCommand {
            start: large.command.start(),
            end,
            args: large.kept.args,
            name: String::from_utf8_lossy(&large.kept.name).into_owned(),
        };
        let found = large.kept.keys.map_or(
            StreamedKeysFound::NoneWritten("an empty command"),
            StreamedKeys::finish,
        );
        self.start = end;
        let mut index = FrameIndex::default();
        let (names, why) = match found {
            StreamedKeysFound::Written { names, ranges } => {
                self.indexer.add_unheld(&mut index, Some(&ranges));
                (names, None)
            }
            StreamedKeysFound::NoneWritten(why) => {
                self.indexer.add_unheld(&mut index, Some(&[]));
                (Vec::new(), Some(why.to_string()))
            }
            StreamedKeysFound::Unnamed(why) => {
                self.indexer.add_unheld(&mut index, None);
                (Vec::new(), Some(why))
            }
        };
        out(Output::Unheld {
            command,
            names,
            index,
            why,
        });
    }
}

/// How many command names the fast path knows at once: a replication stream repeats a few (a collector's `ZADD`,
/// an `EXPIRE` beside a `SET`).
const HOT_COMMANDS: usize = 4;
/// Longest name line (`$4\r\nZADD\r\n`) the fast path knows.
const HOT_LINE_ROOM: usize = 32;
/// Names the reader treats by name before the command table, besides [`ROUTED_BY_DATABASE`] (which the indexer
/// follows by their arguments): none of them is framed by the fast path.
const NOT_HOT: [&[u8]; 2] = [b"replconf", b"ping"];

/// The framing fast path. For the commands whose one key is always the argument at a fixed place (the command
/// table's `one_key`: `ZADD`, `SET`, `HSET`…), learned from the general path as the stream spells their names, a
/// command is framed by reading its `*<n>` and `$<len>` headers and skipping each bulk by its length: no check of
/// a payload's bytes, no argument list, no lookup; its name is told by comparing its name line with the ones
/// learned, and its frame is the one the general path would index (one key, written or not, in the database
/// selected). Whatever it does not frame exactly so (another name, fewer arguments than the key's index, a header
/// that is not plain digits, a bulk past the held limits, a command not whole in the buffer) goes to the general
/// path, which then reads, refuses or waits for it as before.
#[derive(Default)]
struct HotCommands {
    names: [Option<HotCommand>; HOT_COMMANDS],
    /// The entry the last command matched, tried first; where the next one learned goes.
    last: usize,
    next: usize,
}

#[derive(Clone, Copy)]
struct HotCommand {
    /// The name as a bulk string with its length line, as the stream spells it: `$4\r\nZADD\r\n`.
    line: [u8; HOT_LINE_ROOM],
    len: usize,
    /// The key's argument index (at least 1), and whether the command writes it.
    key: usize,
    written: bool,
}

/// A command the fast path framed, at the start of what it was given.
struct Framed {
    len: usize,
    key: std::ops::Range<usize>,
    written: bool,
}

impl HotCommands {
    /// Learns the command the general path just indexed as one key (`frame`, its bytes), when the table says its
    /// key is always at one place.
    fn learn(&mut self, table: &CommandTable, frame: &[u8], command: &Command<'_>) {
        let Some(&name) = command.args.first() else {
            return;
        };
        if ROUTED_BY_DATABASE
            .iter()
            .chain(&NOT_HOT)
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            return;
        }
        // The name line: from the end of `*<n>\r\n` to the end of the name's `\r\n`.
        let Some(from) = frame.iter().position(|&b| b == b'\n').map(|at| at + 1) else {
            return;
        };
        let to = name.as_ptr() as usize - frame.as_ptr() as usize + name.len() + 2;
        if to <= from || to - from > HOT_LINE_ROOM || frame.get(from) != Some(&b'$') {
            return;
        }
        let line = &frame[from..to];
        if self.names.iter().flatten().any(|hot| hot.line() == line) {
            return;
        }
        let Some((key, written)) = table.one_key(name) else {
            return;
        };
        if key == 0 {
            return;
        }
        let mut hot = HotCommand {
            line: [0; HOT_LINE_ROOM],
            len: line.len(),
            key,
            written,
        };
        hot.line[..line.len()].copy_from_slice(line);
        self.names[self.next] = Some(hot);
        self.last = self.next;
        self.next = (self.next + 1) % HOT_COMMANDS;
    }

    /// Frames the command at the start of `rest` if it is a whole command of a name learned, at most `max_len`
    /// bytes, with bulks of at most `max_bulk` bytes.
    #[inline]
    fn frame(&mut self, rest: &[u8], max_len: usize, max_bulk: usize) -> Option<Framed> {
        let (args, mut at) = header(rest, b'*', 0)?;
        let name = rest.get(at..)?;
        let spells = |hot: &Option<HotCommand>| {
            hot.as_ref().is_some_and(|hot| {
                name.get(..hot.len)
                    .is_some_and(|line| same_bytes(line, hot.line()))
            })
        };
        if !spells(&self.names[self.last]) {
            self.last = self.names.iter().position(spells)?;
        }
        let hot = self.names[self.last]?;
        if args <= hot.key || args > MAX_ARGS {
            return None;
        }
        at += hot.len;
        let mut key = 0..0;
        for arg in 1..args {
            let (len, body) = header(rest, b'$', at)?;
            if len > max_bulk {
                return None;
            }
            let end = body + len;
            if rest.get(end..end + 2)? != b"\r\n" {
                return None;
            }
            if arg == hot.key {
                key = body..end;
            }
            at = end + 2;
            if at > max_len {
                return None;
            }
        }
        Some(Framed {
            len: at,
            key,
            written: hot.written,
        })
    }
}

impl HotCommand {
    fn line(&self) -> &[u8] {
        &self.line[..self.len]
    }
}

/// Reads the header `<sigil><digits>\r\n` at `rest[at..]`: its number and where the bytes after it start. Only
/// plain digits without a leading zero (or a lone `0`), at most 10 of them; anything else is the general path's.
#[inline(always)]
fn header(rest: &[u8], sigil: u8, at: usize) -> Option<(usize, usize)> {
    let line = rest.get(at..)?;
    if *line.first()? != sigil {
        return None;
    }
    let first = *line.get(1)?;
    if !first.is_ascii_digit() {
        return None;
    }
    let mut n = usize::from(first - b'0');
    let mut i = 2;
    loop {
        let b = *line.get(i)?;
        if b == b'\r' {
            break;
        }
        if !b.is_ascii_digit() || n == 0 || i > 10 {
            return None;
        }
        n = n * 10 + usize::from(b - b'0');
        i += 1;
    }
    if *line.get(i + 1)? != b'\n' {
        return None;
    }
    Some((n, at + i + 2))
}

/// A held command's error: past the held limits on its size (then it is read as a large command, within Redis's
/// own limits), or the stream's.
fn large_or_error(err: RespError) -> Result<bool, RespError> {
    match err {
        RespError::Limit {
            what: "argument count" | "bulk length",
            ..
        } => Ok(true),
        err => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command_table::streamed::MAX_STREAMED_KEYS;
    use proptest::prelude::*;
    use redis::Value;

    /// A table in Redis 6's shape (first key, last key, step), which is all these commands need.
    fn table() -> Arc<CommandTable> {
        let entry = |name: &str, first: i64, last: i64, step: i64| {
            Value::Array(vec![
                Value::BulkString(name.as_bytes().to_vec()),
                Value::Int(-2),
                Value::Array(vec![]),
                Value::Int(first),
                Value::Int(last),
                Value::Int(step),
            ])
        };
        Arc::new(CommandTable::from_command_reply(&Value::Array(vec![
            entry("set", 1, 1, 1),
            entry("sadd", 1, 1, 1),
            entry("zadd", 1, 1, 1),
            entry("mset", 1, -1, 2),
            entry("del", 1, -1, 1),
            entry("ping", 0, 0, 0),
            entry("select", 0, 0, 0),
            entry("multi", 0, 0, 0),
            entry("exec", 0, 0, 0),
            entry("replconf", 0, 0, 0),
        ])))
    }

    fn command(args: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// One frame as sessions see it, whatever batch it came in.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Seen {
        start: u64,
        end: u64,
        db: u32,
        kind: Kind,
        keys: Vec<Vec<u8>>,
        held: bool,
    }

    /// What reading `stream` in `chunk`-byte reads outputs: the frames and the GETACK answers; checks on the way
    /// that outputs are contiguous and that the buffer stays within `bound` bytes.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct Read {
        frames: Vec<Seen>,
        acks: Vec<u64>,
        error: Option<RespError>,
        offset: u64,
    }

    fn read(stream: &[u8], chunk: usize, max_held: usize, bound: usize) -> Read {
        let mut reader = StreamReader::new(table(), 100, max_held, 1 << 30);
        let mut buf = BytesMut::new();
        let mut got = Read::default();
        let mut end = 100;
        for piece in stream.chunks(chunk) {
            buf.extend_from_slice(piece);
            let result = reader.read(&mut buf, &mut |output| match output {
                Output::Batch { start, raw, index } => {
                    assert_eq!(start, end, "contiguous");
                    end = start + raw.len() as u64;
                    for frame in &index.frames {
                        let keys = index.keys[frame.keys.start as usize..frame.keys.end as usize]
                            .iter()
                            .map(|r| raw[r.start as usize..r.end as usize].to_vec())
                            .collect();
                        got.frames.push(Seen {
                            start: start + u64::from(frame.at.start),
                            end: start + u64::from(frame.at.end),
                            db: frame.db,
                            kind: frame.kind,
                            keys,
                            held: true,
                        });
                    }
                }
                Output::Unheld {
                    command,
                    names,
                    index,
                    ..
                } => {
                    assert_eq!((command.start, index.frames.len()), (end, 1));
                    end = command.end;
                    let frame = &index.frames[0];
                    assert_eq!(frame.at, 0..0, "nothing of it is held");
                    got.frames.push(Seen {
                        start: command.start,
                        end: command.end,
                        db: frame.db,
                        kind: frame.kind,
                        keys: index
                            .keys
                            .iter()
                            .map(|r| names[r.start as usize..r.end as usize].to_vec())
                            .collect(),
                        held: false,
                    });
                }
                Output::GetAck(at) => got.acks.push(at),
            });
            assert!(buf.len() <= bound, "{} bytes held", buf.len());
            assert_eq!(reader.offset(), end);
            if let Err(err) = result {
                got.error = Some(err);
                break;
            }
        }
        got.offset = reader.offset();
        got
    }

    #[test]
    fn every_chunking_gives_the_same_frames_and_large_commands_are_never_held() {
        let big = vec![b'v'; 5000];
        let members: Vec<Vec<u8>> = (0..300).map(|i| format!("m{i}").into_bytes()).collect();
        let mut sadd: Vec<&[u8]> = vec![b"SADD", b"perf:set"];
        sadd.extend(members.iter().map(Vec::as_slice));
        let keys: Vec<Vec<u8>> = (0..=MAX_STREAMED_KEYS)
            .map(|i| format!("k{i}").into_bytes())
            .collect();
        let mut mset_args: Vec<&[u8]> = vec![b"MSET"];
        for key in &keys {
            mset_args.extend([key.as_slice(), b"1"]);
        }
        let mut stream = Vec::new();
        for part in [
            command(&[b"SELECT", b"2"]),
            command(&[b"SET", b"perf:a", b"1"]),
            b"\n".to_vec(),
            command(&[b"MULTI"]),
            command(&[b"SET", b"perf:b", b"2"]),
            command(&[b"EXEC"]),
            command(&[b"SET", b"secret:big", &big]),
            command(&sadd),
            command(&[b"REPLCONF", b"GETACK", b"*"]),
            command(&[b"MULTI"]),
            command(&[b"SET", b"perf:c", b"3"]),
            command(&[b"SET", b"perf:d", &big]),
            command(&[b"EXEC"]),
            command(&mset_args),
            command(&[b"PING"]),
        ] {
            stream.extend(part);
        }
        let whole = read(&stream, stream.len(), 1024, usize::MAX);
        assert_eq!(whole.error, None);
        assert_eq!(whole.offset, 100 + stream.len() as u64);
        let kinds: Vec<(Kind, bool)> = whole.frames.iter().map(|f| (f.kind, f.held)).collect();
        use Kind::*;
        assert_eq!(
            kinds,
            [
                (Select, true),
                (Keyed, true),
                (Other, true),
                (Multi, true),
                (Keyed, true),
                (Exec, true),
                (Withheld, false),
                (Withheld, false),
                (Other, true),
                (Multi, true),
                (Keyed, true),
                (Withheld, false),
                (Exec, true),
                (WithheldAll, false),
                (Other, true),
            ]
        );
        let withheld: Vec<(&[Vec<u8>], u32)> = whole
            .frames
            .iter()
            .filter(|f| f.kind == Withheld)
            .map(|f| (f.keys.as_slice(), f.db))
            .collect();
        assert_eq!(
            withheld,
            [
                (&[b"secret:big".to_vec()][..], 2),
                (&[b"perf:set".to_vec()][..], 2),
                (&[b"perf:d".to_vec()][..], 2)
            ]
        );
        // Too many keys to name: every window of its database is stale.
        let mset = &whole.frames[13];
        assert_eq!(
            (mset.end - mset.start, mset.db, mset.keys.len()),
            (command(&mset_args).len() as u64, 2, 0)
        );
        let getack = &whole.frames[8];
        assert_eq!(whole.acks, [getack.start]);
        for chunk in [1, 2, 3, 7, 64, 100, 1000, 4096] {
            // At most a command of 1 KiB and a few small ones of a MULTI block, whatever the reads.
            let got = read(&stream, chunk, 1024, 1024 + 256);
            assert_eq!(got, whole, "reads of {chunk} bytes");
        }
    }

    #[test]
    fn what_it_cannot_frame_is_an_error_at_its_offset_after_what_came_before() {
        let set = command(&[b"SET", b"perf:a", b"1"]);
        for (bad, expected) in [
            (&b"*1\r\n:12\r\n"[..], "replication stream offset 136: expected '$' (a bulk string argument), found ':'"),
            // Past what the primary accepts: bulks of 1 GiB here (its proto-max-bulk-len), INT_MAX arguments.
            (b"*2\r\n$3\r\nSET\r\n$1073741825\r\n", "replication stream offset 145: bulk length 1073741825 exceeds the limit of 1073741824"),
            (b"*2147483648\r\n", "replication stream offset 132: argument count 2147483648 exceeds the limit of 2147483647"),
            (b"PING\r\n*2\r\n$1\r\n", ""),
        ] {
            let stream = [set.as_slice(), bad].concat();
            for chunk in [1, 5, stream.len()] {
                let got = read(&stream, chunk, 1024, usize::MAX);
                assert_eq!(got.frames.len(), 1 + usize::from(expected.is_empty()), "{bad:?}");
                assert_eq!(got.frames[0].keys, [b"perf:a".to_vec()]);
                match &got.error {
                    Some(err) => {
                        assert_eq!(err.to_string(), expected);
                        assert_eq!(got.offset, 132, "the link stands before what failed");
                    }
                    None => assert!(expected.is_empty(), "{bad:?} in reads of {chunk}"),
                }
            }
        }
    }

    #[test]
    fn a_multi_block_is_kept_in_one_batch_up_to_16_mib_then_cut() {
        let value = vec![b'v'; 1 << 20];
        let set = command(&[b"SET", b"perf:a", &value]);
        for sets in [15, 17] {
            let mut reader = StreamReader::new(table(), 0, MAX_HELD_COMMAND, 512 << 20);
            let mut buf = BytesMut::from(&command(&[b"MULTI"])[..]);
            let mut batches = Vec::new();
            for _ in 0..sets {
                buf.extend_from_slice(&set);
                reader
                    .read(&mut buf, &mut |o| {
                        if let Output::Batch { index, .. } = o {
                            batches.push(index.frames.len());
                        }
                    })
                    .unwrap();
            }
            buf.extend_from_slice(&command(&[b"EXEC"]));
            reader
                .read(&mut buf, &mut |o| {
                    if let Output::Batch { index, .. } = o {
                        batches.push(index.frames.len());
                    }
                })
                .unwrap();
            match sets {
                // MULTI, the SETs and EXEC together.
                15 => assert_eq!(batches, [17]),
                // Cut once the block passed 16 MiB: MULTI and 16 SETs, then the rest.
                _ => assert_eq!(batches, [17, 2]),
            }
        }
    }

    #[test]
    fn inline_lines_are_read_whole_within_their_own_limit() {
        let line = [b"PING ".as_slice(), &[b'a'; 200], b"\r\n"].concat();
        for chunk in [1, 7, line.len()] {
            let got = read(&line, chunk, 16, 256);
            assert_eq!((got.error, got.frames.len()), (None, 1), "reads of {chunk}");
            assert_eq!(
                (got.frames[0].kind, got.frames[0].held),
                (Kind::Other, true)
            );
        }
    }

    #[test]
    fn a_block_before_a_corrupt_command_is_output_the_same_whether_it_comes_whole_or_not() {
        let big = vec![b'v'; 1000];
        let stream = [
            command(&[b"SET", b"perf:a", b"1"]),
            command(&[b"MULTI"]),
            command(&[b"SET", b"perf:b", b"2"]),
            // Larger than the 1 KiB held before its error shows: in pieces it is read as too large to hold.
            b"*3\r\n$3\r\nSET\r\n$1000\r\n".to_vec(),
            big,
            b"\r\n$1x\r\n".to_vec(),
        ]
        .concat();
        let whole = read(&stream, stream.len(), 1024, usize::MAX);
        assert_eq!(whole.frames.len(), 1, "the block waits for its EXEC");
        assert!(whole.error.is_some());
        for chunk in [1, 64, 1000] {
            assert_eq!(
                read(&stream, chunk, 1024, usize::MAX),
                whole,
                "reads of {chunk}"
            );
        }
    }

    #[test]
    fn a_command_routed_by_its_database_too_large_to_hold_is_an_error_at_its_start() {
        let copy = command(&[b"COPY", &[b'k'; 2000], b"dst", b"DB", b"1"]);
        let stream = [command(&[b"SET", b"perf:a", b"1"]), copy].concat();
        for chunk in [1, 100, stream.len()] {
            let got = read(&stream, chunk, 1024, usize::MAX);
            assert_eq!(
                got.error.map(|e| e.to_string()).as_deref(),
                Some(
                    "replication stream offset 132: expected a command that can be followed while it streams by \
                     (a SELECT, FLUSHALL, FLUSHDB, SWAPDB, MOVE, COPY, MULTI or EXEC too large to hold cannot), \
                     found COPY of 5 arguments"
                ),
                "reads of {chunk}"
            );
            assert_eq!((got.frames.len(), got.offset), (1, 132));
        }
    }

    #[test]
    fn a_sessions_stale_keys_come_at_the_end_of_a_command_too_large_to_hold() {
        use crate::backlog::{Backlog, Read as BacklogRead};
        use crate::subscription::{Allow, Delivery, Stale, Subscription};
        let backlog = Backlog::new(1 << 20);
        backlog.restart("e1", 100);
        let (stream, _, _) = backlog.join(None).unwrap();
        let members: Vec<Vec<u8>> = (0..300).map(|i| format!("m{i}").into_bytes()).collect();
        let mut sadd: Vec<&[u8]> = vec![b"SADD", b"perf:set"];
        sadd.extend(members.iter().map(Vec::as_slice));
        let sadd = command(&sadd);
        let mut reader = StreamReader::new(table(), 100, 1024, 1 << 20);
        let mut buf = BytesMut::from(&sadd[..]);
        reader
            .read(&mut buf, &mut |output| match output {
                Output::Unheld {
                    command,
                    names,
                    index,
                    ..
                } => backlog.append_unheld(command.start, command.end, &names, index),
                other => panic!("{other:?}"),
            })
            .unwrap();
        let BacklogRead::Batches(batches) = backlog.read(&stream, 100, 1 << 20) else {
            panic!("the withheld command's batch")
        };
        let sub =
            Subscription::parse(r#"{"type":"subscribe","patterns":["perf:*"],"db":0,"window":10}"#)
                .unwrap();
        let end = 100 + sadd.len() as u64;
        assert_eq!(
            sub.select(&batches[0], 100, &Allow::new(&["perf:*".into()])),
            [Delivery::Stale {
                at: end,
                keys: Stale::Keys([b"perf:set".to_vec()].into())
            }]
        );
        assert!(sub
            .select(&batches[0], 100, &Allow::new(&["other:*".into()]))
            .is_empty());
    }

    #[test]
    fn a_bulk_past_the_primarys_proto_max_bulk_len_is_an_error_however_small() {
        let mut reader = StreamReader::new(table(), 0, MAX_HELD_COMMAND, 1000);
        let mut buf = BytesMut::from(&command(&[b"SET", b"k", &[b'x'; 1001]])[..]);
        let err = reader.read(&mut buf, &mut |_| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            "replication stream offset 20: bulk length 1001 exceeds the limit of 1000"
        );
    }

    #[test]
    fn a_value_of_a_hundred_megabytes_streams_through_in_the_links_reads() {
        let header = b"*3\r\n$3\r\nSET\r\n$10\r\nsecret:big\r\n$104857600\r\n";
        let mut reader = StreamReader::new(table(), 0, MAX_HELD_COMMAND, 512 << 20);
        let mut buf = BytesMut::from(&header[..]);
        let mut outputs = Vec::new();
        let read = 64 * 1024;
        let value = vec![b'x'; read];
        for _ in 0..(100 << 20) / read {
            reader.read(&mut buf, &mut |o| outputs.push(o)).unwrap();
            assert!(buf.len() <= read, "{} bytes held", buf.len());
            buf.extend_from_slice(&value);
        }
        buf.extend_from_slice(b"\r\n*1\r\n$4\r\nPING\r\n");
        reader.read(&mut buf, &mut |o| outputs.push(o)).unwrap();
        assert!(buf.is_empty());
        let [Output::Unheld { command, names, .. }, Output::Batch { start, .. }] = &outputs[..]
        else {
            panic!("{outputs:?}");
        };
        assert_eq!(
            (command.start, command.args, command.name.as_str()),
            (0, 3, "SET")
        );
        assert_eq!(
            (names.as_slice(), *start),
            (&b"secret:big"[..], command.end)
        );
        assert_eq!(command.end, header.len() as u64 + (100 << 20) + 2);
    }

    /// Redis 7.0.15's own table, whose `one_key` commands the fast path learns.
    fn redis_table() -> Arc<CommandTable> {
        let reply =
            redis::parse_redis_value(include_bytes!("../tests/data/redis-7.0.15-command.resp"))
                .unwrap();
        Arc::new(CommandTable::from_command_reply(&reply))
    }

    /// Every output of reading `stream` cut into reads at `splits` (lengths, repeated), as the backlog and the
    /// write profile get them: batches with their bytes, offsets and index, unheld commands, GETACK answers; then
    /// the error if any, and the offset reached.
    fn outputs(stream: &[u8], splits: &[usize], max_held: usize, fast: bool) -> String {
        let mut reader = StreamReader::new(redis_table(), 7, max_held, 1 << 20);
        if !fast {
            reader = reader.without_fast_path();
        }
        let mut buf = BytesMut::new();
        let mut got = String::new();
        let mut at = 0;
        for split in splits.iter().cycle() {
            if at == stream.len() {
                break;
            }
            let end = (at + split).min(stream.len());
            buf.extend_from_slice(&stream[at..end]);
            at = end;
            let result = reader.read(&mut buf, &mut |output| match output {
                Output::Batch { start, raw, index } => {
                    got += &format!("batch {start} {:?} {index:?}\n", &raw[..])
                }
                other => got += &format!("{other:?}\n"),
            });
            if let Err(err) = result {
                got += &format!("error {err}\n");
                break;
            }
        }
        got + &format!("offset {}", reader.offset())
    }

    /// One command of a stream: mostly the few names a collector repeats, spelled in more than one case, with
    /// fewer arguments than their key's place, between `SELECT`s, `MULTI` blocks, `GETACK`s, keepalive lines,
    /// other commands, headers the fast path leaves to the general one, commands too large to hold and corrupt
    /// ones.
    fn stream_command() -> impl Strategy<Value = Vec<u8>> {
        let value = proptest::collection::vec(any::<u8>(), 0..40);
        prop_oneof![
            8 => (0u8..20, 0u64..1 << 40, value.clone()).prop_map(|(host, ms, json)| command(&[
                b"ZADD",
                format!("perf:host{host}").as_bytes(),
                ms.to_string().as_bytes(),
                &json
            ])),
            2 => (0u8..4, value.clone()).prop_map(|(k, v)| command(&[b"SET", format!("k{k}").as_bytes(), &v])),
            1 => (0u8..4, value.clone()).prop_map(|(k, v)| command(&[b"zadd", format!("k{k}").as_bytes(), b"1", &v])),
            1 => (0u8..4).prop_map(|k| command(&[b"EXPIRE", format!("k{k}").as_bytes(), b"10"])),
            1 => (0u8..4).prop_map(|k| command(&[b"HSET", format!("h{k}").as_bytes(), b"f", b"v"])),
            // One key it only reads (Redis propagates none, but the table has them).
            1 => (0u8..4).prop_map(|k| command(&[b"GET", format!("k{k}").as_bytes()])),
            1 => Just(command(&[b"ZADD"])),
            1 => Just(command(&[b"SET"])),
            1 => (0u8..16).prop_map(|db| command(&[b"SELECT", db.to_string().as_bytes()])),
            1 => Just(command(&[b"MULTI"])),
            1 => Just(command(&[b"EXEC"])),
            1 => Just(command(&[b"REPLCONF", b"GETACK", b"*"])),
            1 => Just(command(&[b"PING"])),
            1 => Just(b"\n".to_vec()),
            1 => (0u8..4).prop_map(|k| command(&[b"MOVE", format!("k{k}").as_bytes(), b"3"])),
            1 => (0u8..4).prop_map(|k| command(&[b"DEL", format!("k{k}").as_bytes(), b"x"])),
            1 => Just(b"*3\r\n$3\r\nSET\r\n$02\r\nk1\r\n$1\r\nv\r\n".to_vec()),
            1 => Just(b"*03\r\n$3\r\nSET\r\n$2\r\nk1\r\n$1\r\nv\r\n".to_vec()),
            1 => Just(command(&[b"SET", b"secret:big", &[b'v'; 300]])),
            1 => Just(b"*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n$1\r\nvv\r\n".to_vec()),
        ]
    }

    #[test]
    fn headers_of_every_length_are_read() {
        for n in [
            0usize,
            1,
            9,
            10,
            99,
            130,
            1000,
            65_535,
            1_234_567,
            9_999_999,
            10_000_000,
            16 << 20,
        ] {
            for tail in [&b""[..], b"x", b"payload..."] {
                let mut rest = format!("${n}\r\n").into_bytes();
                rest.extend_from_slice(tail);
                let len = n.to_string().len();
                assert_eq!(
                    header(&rest, b'$', 0),
                    Some((n, len + 3)),
                    "{n} then {tail:?}"
                );
            }
        }
        assert_eq!(header(b"$01\r\nxxxxxxx", b'$', 0), None);
        assert_eq!(header(b"$1\r\rxxxxxxx", b'$', 0), None);
        assert_eq!(header(b"*3\r\nxxxxxxx", b'$', 0), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn the_fast_path_outputs_what_the_general_path_does(
            commands in proptest::collection::vec(stream_command(), 0..60),
            splits in proptest::collection::vec(1usize..400, 1..8),
        ) {
            let stream = commands.concat();
            let general = outputs(&stream, &splits, 256, false);
            let fast = outputs(&stream, &splits, 256, true);
            proptest::prop_assert_eq!(fast, general);
        }
    }
}
