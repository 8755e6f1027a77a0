//! A command read piece by piece as its bytes arrive, never held whole: how the relay passes on a command larger than
//! it keeps (a 500 MB value, a million members), holding only what it chooses to copy out of the pieces.
//!
//! [`StreamedCommand::push`] takes the stream's next bytes and hands out the command's [`Piece`]s: its argument
//! count, then for each argument its length, its bytes in as many slices as they arrived in, and its end. It
//! consumes everything it has handed out; only a length line that has not fully arrived (at most a few dozen bytes)
//! is left for the next call. It reads exactly what [`super::parse_command`] reads with the same limits, with the same
//! errors at the same offsets, whatever the chunking (the `resp` fuzz target checks both).

use super::error::{limit, unexpected, RespError};
use super::limits::Limits;
use super::line::read_length;
use crate::text;

/// Part of a command, in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// The number of arguments, from the command's `*<n>` header.
    Count(u64),
    /// Argument `index` begins; it is `len` bytes long.
    ArgStart { index: u64, len: u64 },
    /// The next bytes of the argument begun last (none for an empty one).
    ArgBytes(&'a [u8]),
    /// The argument begun last is complete.
    ArgEnd,
}

/// Where reading is inside the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting `*<n>\r\n`.
    Header,
    /// Expecting the next argument's `$<len>\r\n`, or the end when none remain.
    ArgHeader,
    /// Inside an argument's bytes, `left` still to come.
    ArgBytes {
        left: u64,
    },
    /// Expecting the `\r\n` after an argument.
    ArgEnd,
    Done,
}

/// One command of the stream (`*<n>` and `n` bulk strings), read as it streams by. After an error it is of no
/// further use: the stream's framing is lost.
#[derive(Debug, Clone)]
pub struct StreamedCommand {
    start: u64,
    /// Bytes consumed so far.
    read: u64,
    state: State,
    /// Arguments not yet complete, once the header is read.
    remaining: u64,
    /// Index of the next argument to begin.
    next_arg: u64,
    max_args: u64,
    max_bulk_len: u64,
}

impl StreamedCommand {
    /// A command whose first byte is at stream offset `start`, read within `limits` (its argument count and bulk
    /// length; nothing else of the command is held, so the other limits do not apply).
    pub fn new(start: u64, limits: &Limits) -> Self {
        StreamedCommand {
            start,
            read: 0,
            state: State::Header,
            remaining: 0,
            next_arg: 0,
            max_args: limits.max_args as u64,
            max_bulk_len: limits.max_bulk_len as u64,
        }
    }

    /// Stream offset of the command's first byte.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Stream offset of the next byte to push: the command's end once [`StreamedCommand::is_done`].
    pub fn offset(&self) -> u64 {
        self.start + self.read
    }

    /// Whether the whole command has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Reads from `input`, the stream from [`StreamedCommand::offset`] on, handing each piece to `on_piece`; returns
    /// how many bytes of `input` it consumed, which stops at the command's end or before a length line that has not
    /// fully arrived.
    pub fn push(
        &mut self,
        input: &[u8],
        mut on_piece: impl FnMut(Piece<'_>),
    ) -> Result<usize, RespError> {
        let base = self.offset();
        let mut pos = 0;
        loop {
            match self.state {
                State::Done => break,
                State::Header => {
                    match input.first() {
                        None => break,
                        Some(b'*') => {}
                        Some(_) => {
                            return Err(unexpected(base, "'*' (a command's header)", input, 0))
                        }
                    }
                    let Some((count, next)) =
                        read_length(input, 1, base, text!("an array length"))?
                    else {
                        break;
                    };
                    pos = next;
                    if count <= 0 {
                        // Like `*0` for the parser of whole commands: an empty command, whose bytes count.
                        on_piece(Piece::Count(0));
                        self.state = State::Done;
                        continue;
                    }
                    if count as u64 > self.max_args {
                        return Err(limit(
                            self.start,
                            text!("argument count"),
                            count as u64,
                            self.max_args as usize,
                        ));
                    }
                    on_piece(Piece::Count(count as u64));
                    self.remaining = count as u64;
                    self.state = State::ArgHeader;
                }
                State::ArgHeader => {
                    if self.remaining == 0 {
                        self.state = State::Done;
                        continue;
                    }
                    match input.get(pos) {
                        None => break,
                        Some(b'$') => {}
                        Some(_) => {
                            return Err(unexpected(
                                base + pos as u64,
                                text!("'$' (a bulk string argument)"),
                                input,
                                pos,
                            ))
                        }
                    }
                    let Some((len, next)) =
                        read_length(input, pos + 1, base, text!("a bulk length"))?
                    else {
                        break;
                    };
                    if len < 0 {
                        return Err(RespError::Unexpected {
                            offset: base + pos as u64 + 1,
                            expected: text!("a bulk length of 0 or more"),
                            found: len.to_string(),
                        });
                    }
                    if len as u64 > self.max_bulk_len {
                        return Err(limit(
                            base + pos as u64,
                            text!("bulk length"),
                            len as u64,
                            self.max_bulk_len as usize,
                        ));
                    }
                    pos = next;
                    on_piece(Piece::ArgStart {
                        index: self.next_arg,
                        len: len as u64,
                    });
                    self.next_arg += 1;
                    self.state = State::ArgBytes { left: len as u64 };
                }
                State::ArgBytes { left } => {
                    let rest = &input[pos..];
                    if left == 0 {
                        on_piece(Piece::ArgBytes(&[]));
                        self.state = State::ArgEnd;
                        continue;
                    }
                    if rest.is_empty() {
                        break;
                    }
                    let take = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    on_piece(Piece::ArgBytes(&rest[..take]));
                    pos += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::ArgEnd
                    } else {
                        State::ArgBytes { left }
                    };
                }
                State::ArgEnd => {
                    let Some(terminator) = input.get(pos..pos + 2) else {
                        break;
                    };
                    if terminator != b"\r\n" {
                        let at = if terminator[0] == b'\r' { pos + 1 } else { pos };
                        return Err(unexpected(
                            base + at as u64,
                            "\"\\r\\n\" after a bulk string",
                            input,
                            at,
                        ));
                    }
                    pos += 2;
                    on_piece(Piece::ArgEnd);
                    self.remaining -= 1;
                    self.state = State::ArgHeader;
                }
            }
        }
        self.read += pos as u64;
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::super::command::parse_command;
    use super::*;

    /// Pushes `stream` in pieces of `chunk` bytes, keeping what is not consumed; returns the arguments rebuilt from
    /// the pieces and the command's end, or the error.
    fn stream_in(
        stream: &[u8],
        chunk: usize,
        limits: &Limits,
    ) -> Result<(Vec<Vec<u8>>, u64), RespError> {
        let mut command = StreamedCommand::new(100, limits);
        let mut args: Vec<Vec<u8>> = Vec::new();
        let mut count = None;
        let mut pending = Vec::new();
        for piece in stream.chunks(chunk) {
            pending.extend_from_slice(piece);
            let used = command.push(&pending, |p| match p {
                Piece::Count(n) => count = Some(n),
                Piece::ArgStart { index, len } => {
                    assert_eq!(index as usize, args.len());
                    args.push(Vec::with_capacity(len as usize));
                }
                Piece::ArgBytes(bytes) => args.last_mut().unwrap().extend_from_slice(bytes),
                Piece::ArgEnd => {}
            })?;
            pending.drain(..used);
            assert!(pending.len() <= 64, "only a length line is left unconsumed");
            if command.is_done() {
                break;
            }
        }
        assert!(command.is_done(), "the whole command was pushed");
        assert_eq!(count, Some(args.len() as u64));
        Ok((args, command.offset()))
    }

    #[test]
    fn pieces_rebuild_what_the_whole_command_parser_reads_for_every_chunking() {
        let stream = b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$12\r\nhello\r\nworld\r\n";
        let whole = parse_command(stream, 100, &Limits::default())
            .unwrap()
            .unwrap();
        for chunk in 1..=stream.len() {
            let (args, end) = stream_in(stream, chunk, &Limits::default()).unwrap();
            assert_eq!(args, whole.args, "chunks of {chunk}");
            assert_eq!(end, whole.end);
        }
    }

    #[test]
    fn it_stops_at_the_commands_end() {
        let mut command = StreamedCommand::new(0, &Limits::default());
        let used = command.push(b"*1\r\n$4\r\nPING\r\n*1\r\n", |_| {}).unwrap();
        assert_eq!((used, command.is_done(), command.offset()), (14, true, 14));
        assert_eq!(command.push(b"more", |_| {}).unwrap(), 0);
        let mut empty = StreamedCommand::new(0, &Limits::default());
        assert_eq!(empty.push(b"*0\r\n", |_| {}).unwrap(), 4);
        assert!(empty.is_done());
    }

    // A bulk of 2^40 bytes only has a length a 64-bit `usize` can hold.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_big_bulk_is_handed_out_as_it_arrives_without_being_held() {
        let limits = Limits {
            max_bulk_len: 1 << 40,
            ..Limits::default()
        };
        let mut command = StreamedCommand::new(0, &limits);
        let mut seen = 0u64;
        let header = b"*2\r\n$3\r\nSET\r\n$1099511627776\r\n";
        assert_eq!(command.push(header, |_| {}).unwrap(), header.len());
        let chunk = vec![b'x'; 1 << 16];
        for _ in 0..16 {
            let used = command
                .push(&chunk, |p| {
                    if let Piece::ArgBytes(b) = p {
                        seen += b.len() as u64
                    }
                })
                .unwrap();
            assert_eq!(used, chunk.len());
        }
        assert_eq!(seen, 16 << 16);
        assert!(!command.is_done());
    }

    #[test]
    fn errors_and_limits_match_the_whole_command_parser() {
        let tight = Limits {
            max_args: 2,
            max_bulk_len: 3,
            ..Limits::default()
        };
        for (stream, expected) in [
            (
                &b"*3\r\n"[..],
                "replication stream offset 100: argument count 3 exceeds the limit of 2",
            ),
            (
                b"*1\r\n$4\r\n",
                "replication stream offset 104: bulk length 4 exceeds the limit of 3",
            ),
            (
                b"*1\r\n:1\r\n",
                "replication stream offset 104: expected '$' (a bulk string argument), found ':'",
            ),
            (
                b"*1\r\n$1\r\naXY",
                "replication stream offset 109: expected \"\\r\\n\" after a bulk string, found 'X'",
            ),
            (
                b"*1\r\n$1\r\na\rY",
                "replication stream offset 110: expected \"\\r\\n\" after a bulk string, found 'Y'",
            ),
            (
                b"*1\r\n$-2\r\n",
                "replication stream offset 105: expected a bulk length of 0 or more, found -2",
            ),
            (
                b"*x\r\n",
                "replication stream offset 101: expected an array length, found 'x'",
            ),
        ] {
            let whole = parse_command(stream, 100, &tight).unwrap_err();
            assert_eq!(whole.to_string(), expected);
            for chunk in 1..=stream.len() {
                let mut command = StreamedCommand::new(100, &tight);
                let mut pending = Vec::new();
                let mut error = None;
                for piece in stream.chunks(chunk) {
                    pending.extend_from_slice(piece);
                    match command.push(&pending, |_| {}) {
                        Ok(used) => drop(pending.drain(..used)),
                        Err(err) => {
                            error = Some(err);
                            break;
                        }
                    }
                }
                assert_eq!(error.as_ref(), Some(&whole), "chunks of {chunk}");
            }
        }
        let err = StreamedCommand::new(7, &tight)
            .push(b"SET k v\r\n", |_| {})
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "replication stream offset 7: expected '*' (a command's header), found 'S'"
        );
    }
}
