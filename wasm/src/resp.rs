//! Reading commands out of a Redis replication stream.
//!
//! After the RDB payload, a primary sends its replicas a plain sequence of commands: RESP arrays of bulk strings,
//! exceptionally inline commands, and Redis counts its replication offset in bytes of that sequence.
//! [`parse_command`] reads one command from the front of a buffer, with its arguments borrowed from the buffer and
//! its start and end offsets; "not enough bytes yet" is `Ok(None)`, a normal state. [`CommandReader`] keeps the
//! incomplete tail between chunks, so any split of the input gives the same commands and offsets as the whole.
//!
//! Every length is checked against a [`Limits`] before it is used, so bad input gets an error naming the stream
//! offset and what was expected, never a panic or an allocation sized by the input.

use thiserror::Error;

/// Longest bulk string accepted: Redis's default `proto-max-bulk-len`.
pub const MAX_BULK_LEN: usize = 512 * 1024 * 1024;
/// Most arguments in one command. Redis has no fixed cap, but a command this wide is already a ~4 MB frame.
pub const MAX_ARGS: usize = 1024 * 1024;
/// Longest inline command line: Redis's `PROTO_INLINE_MAX_SIZE`.
pub const MAX_INLINE_LEN: usize = 64 * 1024;
/// Largest whole command held while it is incomplete: Redis's default `client-query-buffer-limit`.
pub const MAX_COMMAND_LEN: usize = 1024 * 1024 * 1024;
/// Longest `*<n>` or `$<n>` header line: a sign and 19 digits fit with room to spare.
const MAX_HEADER_LEN: usize = 32;

/// The limits a parser enforces; [`Limits::default`] gives the named defaults above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bulk_len: usize,
    pub max_args: usize,
    pub max_inline_len: usize,
    pub max_command_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: MAX_BULK_LEN,
            max_args: MAX_ARGS,
            max_inline_len: MAX_INLINE_LEN,
            max_command_len: MAX_COMMAND_LEN,
        }
    }
}

/// Why a stream could not be parsed. Offsets are replication offsets: bytes since the stream's start.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RespError {
    #[error("replication stream offset {offset}: expected {expected}, found {found}")]
    Unexpected {
        offset: u64,
        expected: &'static str,
        found: String,
    },
    #[error("replication stream offset {offset}: {what} {len} exceeds the limit of {limit}")]
    Limit {
        offset: u64,
        what: &'static str,
        len: u64,
        limit: u64,
    },
}

/// One command of the stream. An empty `args` is a frame that carries no command (a blank keepalive line or
/// `*0`): it still occupies `start..end` of the offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    pub args: Vec<&'a [u8]>,
    /// Replication offset of the command's first byte.
    pub start: u64,
    /// Replication offset just past its last byte, as Redis reports it after applying the command.
    pub end: u64,
}

impl Command<'_> {
    /// Whether the command's name is `name` (ASCII, any case).
    pub fn is(&self, name: &str) -> bool {
        self.args
            .first()
            .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// Length of the command's frame in bytes.
    pub fn frame_len(&self) -> usize {
        (self.end - self.start) as usize
    }
}

/// Reads the command at the front of `buf`, whose first byte is at replication offset `offset`.
///
/// Returns `Ok(None)` while `buf` holds only part of a command.
pub fn parse_command<'a>(
    buf: &'a [u8],
    offset: u64,
    limits: &Limits,
) -> Result<Option<Command<'a>>, RespError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_multibulk(buf, offset, limits),
        Some(_) => parse_inline(buf, offset, limits),
    }
}

fn parse_multibulk<'a>(
    buf: &'a [u8],
    offset: u64,
    limits: &Limits,
) -> Result<Option<Command<'a>>, RespError> {
    let Some((line, mut pos)) = header_line(buf, 0, offset)? else {
        return Ok(None);
    };
    let count = parse_length(&line[1..], offset + 1, "an array length")?;
    if count <= 0 {
        // Redis skips `*0` and `*-1` without running anything; they still count towards the offset.
        return Ok(Some(Command {
            args: Vec::new(),
            start: offset,
            end: offset + pos as u64,
        }));
    }
    if count as u64 > limits.max_args as u64 {
        return Err(RespError::Limit {
            offset,
            what: "argument count",
            len: count as u64,
            limit: limits.max_args as u64,
        });
    }
    // The count is checked, but still sized by the input: grow as arguments actually arrive.
    let mut args = Vec::with_capacity((count as usize).min(16));
    for _ in 0..count {
        let Some(&marker) = buf.get(pos) else {
            return Ok(None);
        };
        if marker != b'$' {
            return Err(unexpected(
                offset + pos as u64,
                "'$' (a bulk string argument)",
                buf,
                pos,
            ));
        }
        let Some((line, data)) = header_line(buf, pos, offset)? else {
            return Ok(None);
        };
        let len = parse_length(&line[1..], offset + pos as u64 + 1, "a bulk length")?;
        if len < 0 {
            return Err(RespError::Unexpected {
                offset: offset + pos as u64 + 1,
                expected: "a bulk length of 0 or more",
                found: len.to_string(),
            });
        }
        if len as u64 > limits.max_bulk_len as u64 {
            return Err(RespError::Limit {
                offset: offset + pos as u64,
                what: "bulk length",
                len: len as u64,
                limit: limits.max_bulk_len as u64,
            });
        }
        let end = data + len as usize;
        let Some(terminator) = buf.get(end..end + 2) else {
            return Ok(None);
        };
        if terminator != b"\r\n" {
            return Err(unexpected(
                offset + end as u64,
                "\"\\r\\n\" after a bulk string",
                buf,
                end,
            ));
        }
        args.push(&buf[data..end]);
        pos = end + 2;
    }
    Ok(Some(Command {
        args,
        start: offset,
        end: offset + pos as u64,
    }))
}

/// An inline command: one line of space-separated words, as `redis-cli` in a telnet session would send.
fn parse_inline<'a>(
    buf: &'a [u8],
    offset: u64,
    limits: &Limits,
) -> Result<Option<Command<'a>>, RespError> {
    let window = &buf[..buf.len().min(limits.max_inline_len + 1)];
    let Some(newline) = window.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.max_inline_len {
            return Err(RespError::Limit {
                offset,
                what: "inline command length",
                len: buf.len() as u64,
                limit: limits.max_inline_len as u64,
            });
        }
        return Ok(None);
    };
    let line = buf[..newline]
        .strip_suffix(b"\r")
        .unwrap_or(&buf[..newline]);
    let args = line
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|word| !word.is_empty())
        .collect();
    Ok(Some(Command {
        args,
        start: offset,
        end: offset + newline as u64 + 1,
    }))
}

/// The `*<n>`/`$<n>` line starting at `pos`, without its `\r\n`, and the position after it.
fn header_line(buf: &[u8], pos: usize, offset: u64) -> Result<Option<(&[u8], usize)>, RespError> {
    let window = &buf[pos..buf.len().min(pos + MAX_HEADER_LEN)];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && window[i - 1] == b'\r' => Ok(Some((&window[..i - 1], pos + i + 1))),
        Some(i) => Err(unexpected(
            offset + (pos + i) as u64,
            "\"\\r\\n\" ending a length line",
            buf,
            pos + i,
        )),
        None if window.len() == MAX_HEADER_LEN => Err(RespError::Unexpected {
            offset: offset + pos as u64,
            expected: "a length line of at most 32 bytes",
            found: format!("{} bytes without \"\\r\\n\"", window.len()),
        }),
        None => Ok(None),
    }
}

/// A decimal length, optionally negative, that fits an `i64`.
fn parse_length(digits: &[u8], offset: u64, expected: &'static str) -> Result<i64, RespError> {
    let bad = || RespError::Unexpected {
        offset,
        expected,
        found: format!("{:?}", String::from_utf8_lossy(digits)),
    };
    let (negative, magnitude) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if magnitude.is_empty() {
        return Err(bad());
    }
    let mut value: i64 = 0;
    for &d in magnitude {
        if !d.is_ascii_digit() {
            return Err(bad());
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(d - b'0')))
            .ok_or_else(bad)?;
    }
    Ok(if negative { -value } else { value })
}

fn unexpected(offset: u64, expected: &'static str, buf: &[u8], pos: usize) -> RespError {
    let found = match buf.get(pos) {
        Some(b) if b.is_ascii_graphic() => format!("'{}'", *b as char),
        Some(b) => format!("byte 0x{b:02x}"),
        None => "the end of the input".to_string(),
    };
    RespError::Unexpected {
        offset,
        expected,
        found,
    }
}

/// Splits a stream that arrives in chunks into commands, whatever the chunk boundaries.
///
/// Complete commands are parsed straight from the chunk they arrived in; only an incomplete tail is copied and
/// kept, and it is bounded by [`Limits::max_command_len`]. After an error the reader stays failed: the stream's
/// framing is lost, so the only way on is a new reader at a known offset.
#[derive(Debug)]
pub struct CommandReader {
    pending: Vec<u8>,
    offset: u64,
    limits: Limits,
    failed: Option<RespError>,
}

impl CommandReader {
    /// A reader whose next byte is at replication offset `offset`.
    pub fn new(offset: u64) -> Self {
        Self::with_limits(offset, Limits::default())
    }

    pub fn with_limits(offset: u64, limits: Limits) -> Self {
        CommandReader {
            pending: Vec::new(),
            offset,
            limits,
            failed: None,
        }
    }

    /// Offset just past the last complete command; the start of whatever is pending.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes held from an incomplete command.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Feeds the next chunk of the stream, calling `on_command` for each command it completes, in order.
    pub fn push(
        &mut self,
        input: &[u8],
        mut on_command: impl FnMut(&Command<'_>),
    ) -> Result<(), RespError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = if self.pending.is_empty() {
            let used = drain(input, &mut self.offset, &self.limits, &mut on_command);
            used.map(|used| self.pending.extend_from_slice(&input[used..]))
        } else {
            self.pending.extend_from_slice(input);
            let used = drain(
                &self.pending,
                &mut self.offset,
                &self.limits,
                &mut on_command,
            );
            used.map(|used| {
                self.pending.drain(..used);
            })
        };
        let result = result.and_then(|()| {
            if self.pending.len() > self.limits.max_command_len {
                return Err(RespError::Limit {
                    offset: self.offset,
                    what: "incomplete command length",
                    len: self.pending.len() as u64,
                    limit: self.limits.max_command_len as u64,
                });
            }
            Ok(())
        });
        if let Err(err) = &result {
            self.failed = Some(err.clone());
            self.pending = Vec::new();
        }
        result
    }
}

/// Parses every complete command at the front of `buf`; returns how many bytes they took.
fn drain(
    buf: &[u8],
    offset: &mut u64,
    limits: &Limits,
    on_command: &mut impl FnMut(&Command<'_>),
) -> Result<usize, RespError> {
    let mut pos = 0;
    while let Some(command) = parse_command(&buf[pos..], *offset, limits)? {
        pos += command.frame_len();
        *offset = command.end;
        on_command(&command);
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> Result<Option<Command<'_>>, RespError> {
        parse_command(buf, 100, &Limits::default())
    }

    fn collect(reader: &mut CommandReader, chunk: &[u8], out: &mut Vec<(Vec<Vec<u8>>, u64, u64)>) {
        reader
            .push(chunk, |c| {
                out.push((c.args.iter().map(|a| a.to_vec()).collect(), c.start, c.end))
            })
            .unwrap();
    }

    #[test]
    fn multibulk_command_borrows_args_and_counts_offsets() {
        let buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\nrest";
        let cmd = parse(buf).unwrap().unwrap();
        assert_eq!(cmd.args, vec![&b"SET"[..], b"k", b"v1"]);
        assert_eq!((cmd.start, cmd.end), (100, 100 + 28));
        assert!(cmd.is("set"));
    }

    #[test]
    fn bulk_payload_may_hold_crlf_and_any_byte() {
        let buf = b"*2\r\n$4\r\nECHO\r\n$4\r\n\r\n\x00\xff\r\n";
        let cmd = parse(buf).unwrap().unwrap();
        assert_eq!(cmd.args[1], b"\r\n\x00\xff");
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let buf = b"*2\r\n$4\r\nPING\r\n$5\r\nhello\r\n";
        for cut in 0..buf.len() {
            assert_eq!(parse(&buf[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse(buf).unwrap().is_some());
    }

    #[test]
    fn inline_commands_and_keepalives() {
        let cmd = parse(b"PING\r\n").unwrap().unwrap();
        assert_eq!((cmd.args, cmd.end), (vec![&b"PING"[..]], 106));
        let cmd = parse(b"\n*1\r\n").unwrap().unwrap();
        assert!(cmd.args.is_empty());
        assert_eq!(cmd.frame_len(), 1);
        let cmd = parse(b"*0\r\n").unwrap().unwrap();
        assert!(cmd.args.is_empty());
        assert_eq!(cmd.frame_len(), 4);
    }

    #[test]
    fn errors_name_offset_and_expectation() {
        let err = parse(b"*1\r\n:12\r\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "replication stream offset 104: expected '$' (a bulk string argument), found ':'"
        );
        let err = parse(b"*1\r\n$3\r\nabcXY").unwrap_err();
        assert!(err.to_string().contains("offset 111"), "{err}");
        let err = parse(b"*x\r\n").unwrap_err();
        assert!(
            err.to_string().contains("expected an array length"),
            "{err}"
        );
        let err = parse(b"*99999999999999999999\r\n").unwrap_err();
        assert!(
            err.to_string().contains("expected an array length"),
            "{err}"
        );
        let err = parse(b"*1\r\n$-5\r\n").unwrap_err();
        assert!(
            err.to_string().contains("a bulk length of 0 or more"),
            "{err}"
        );
        let err = parse(b"*1\n").unwrap_err();
        assert!(err.to_string().contains("ending a length line"), "{err}");
    }

    #[test]
    fn limits_are_checked_before_reading() {
        let err = parse(b"*2000000\r\n").unwrap_err();
        assert!(
            matches!(
                err,
                RespError::Limit {
                    what: "argument count",
                    ..
                }
            ),
            "{err}"
        );
        let err = parse(b"*1\r\n$536870913\r\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "replication stream offset 104: bulk length 536870913 exceeds the limit of 536870912"
        );
        let long = vec![b'a'; MAX_INLINE_LEN + 1];
        assert!(matches!(parse(&long), Err(RespError::Limit { .. })));
        let err = parse(&[b'*'; 40]).unwrap_err();
        assert!(err.to_string().contains("at most 32 bytes"), "{err}");
    }

    #[test]
    fn reader_gives_the_same_commands_for_every_split() {
        let stream: &[u8] =
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*4\r\n$4\r\nZADD\r\n$1\r\nz\r\n$1\r\n1\r\n$3\r\na\r\n\r\nPING\r\n";
        let mut whole = Vec::new();
        collect(&mut CommandReader::new(7), stream, &mut whole);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole.last().unwrap().2, 7 + stream.len() as u64);
        for a in 0..stream.len() {
            for b in a..stream.len() {
                let mut reader = CommandReader::new(7);
                let mut got = Vec::new();
                for chunk in [&stream[..a], &stream[a..b], &stream[b..]] {
                    collect(&mut reader, chunk, &mut got);
                }
                assert_eq!(got, whole, "split at {a},{b}");
                assert_eq!(reader.pending_len(), 0);
            }
        }
    }

    #[test]
    fn reader_stays_failed_after_an_error() {
        let mut reader = CommandReader::new(0);
        assert!(reader.push(b"*1\r\n%", |_| {}).is_err());
        assert!(reader.push(b"*1\r\n$1\r\na\r\n", |_| panic!()).is_err());
    }

    #[test]
    fn reader_bounds_what_it_holds() {
        let limits = Limits {
            max_command_len: 64,
            ..Limits::default()
        };
        let mut reader = CommandReader::with_limits(0, limits);
        reader.push(b"*1\r\n$100\r\n", |_| {}).unwrap();
        let err = reader.push(&[b'x'; 80], |_| {}).unwrap_err();
        assert!(matches!(
            err,
            RespError::Limit {
                what: "incomplete command length",
                ..
            }
        ));
    }
}
