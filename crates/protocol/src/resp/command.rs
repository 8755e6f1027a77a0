//! One command of the replication stream: a RESP array of bulk strings, an inline line, or a blank keepalive.
//!
//! [`parse_command`] reads the command at the front of a buffer in one pass, with its arguments borrowed from the
//! buffer. Underneath, [`read_frame`] can also resume checking a frame where an earlier call ran out of bytes
//! ([`Progress`]), which is how [`super::CommandReader`] completes a command split across chunks without
//! reading its start again.

use super::error::{limit, unexpected, RespError};
use super::limits::Limits;
use super::line::read_length;
use crate::text;

/// One command of the stream. An empty `args` is a frame that carries no command (a blank keepalive line or
/// `*0`): it still occupies `start..end` of the offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    /// The name and arguments, borrowed from the input, binary-safe.
    pub args: Vec<&'a [u8]>,
    /// Stream offset of the command's first byte.
    pub start: u64,
    /// Stream offset just past its last byte, as Redis reports it after applying the command.
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

/// Reads the command at the front of `buf`, whose first byte is at stream offset `offset`.
///
/// Returns `Ok(None)` while `buf` holds only part of a command.
pub fn parse_command<'a>(
    buf: &'a [u8],
    offset: u64,
    limits: &Limits,
) -> Result<Option<Command<'a>>, RespError> {
    let mut command = Command {
        args: Vec::new(),
        start: offset,
        end: offset,
    };
    Ok(parse_command_into(buf, offset, limits, &mut command)?.then_some(command))
}

/// Like [`parse_command`], but fills `command`, reusing its `args` allocation: the way to read many commands
/// without allocating per command. Returns `Ok(false)` while `buf` holds only part of a command, and then leaves
/// `command` in an unspecified state.
pub fn parse_command_into<'a>(
    buf: &'a [u8],
    offset: u64,
    limits: &Limits,
    command: &mut Command<'a>,
) -> Result<bool, RespError> {
    command.args.clear();
    match read_frame(
        buf,
        offset,
        limits,
        &mut Progress::default(),
        &mut command.args,
    )? {
        Frame::Complete(len) => {
            command.start = offset;
            command.end = offset + len as u64;
            Ok(true)
        }
        Frame::Incomplete { .. } => Ok(false),
    }
}

/// Checks whether the command at the front of a buffer is complete, without keeping its arguments, resuming where
/// the last call ran out of bytes: a command that arrives over many reads is looked at about once per byte, not
/// once per read. Give it the same buffer start each time, with more bytes behind it.
#[derive(Debug, Clone, Default)]
pub struct CommandCheck {
    progress: Progress,
}

/// What [`CommandCheck::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// The command is complete and this many bytes long.
    Complete(usize),
    /// More bytes are needed: the command is at least this many bytes long.
    Incomplete { at_least: usize },
}

impl CommandCheck {
    /// Checks the command at the front of `buf` (stream offset `offset`). After a complete command or an error the
    /// check starts afresh.
    pub fn check(
        &mut self,
        buf: &[u8],
        offset: u64,
        limits: &Limits,
    ) -> Result<Checked, RespError> {
        match read_frame(buf, offset, limits, &mut self.progress, &mut ()) {
            Ok(Frame::Incomplete { needed }) => Ok(Checked::Incomplete { at_least: needed }),
            done => {
                self.progress = Progress::default();
                done.map(|frame| match frame {
                    Frame::Complete(len) => Checked::Complete(len),
                    Frame::Incomplete { needed } => Checked::Incomplete { at_least: needed },
                })
            }
        }
    }

    /// Whether an earlier call stopped inside a command (then checking resumes there).
    pub fn is_resuming(&self) -> bool {
        self.progress != Progress::default()
    }
}

/// Whether a frame is all there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    /// The frame is complete and `.0` bytes long.
    Complete(usize),
    /// More bytes are needed; the frame is at least `needed` bytes long.
    Incomplete { needed: usize },
}

/// How far checking an incomplete frame got, so that a later call with more bytes resumes there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Bytes of the frame already checked: the start of the first element not yet complete.
    pos: usize,
    /// Arguments still to come, once the `*<n>` header has been read.
    remaining: Option<usize>,
}

/// Where the arguments of a frame go: a `Vec` to keep them, `()` to only check the frame.
pub(crate) trait ArgSink<'a> {
    fn arg(&mut self, arg: &'a [u8]);

    /// How many arguments the sink holds, for [`ArgSink::truncate`].
    fn mark(&self) -> usize;

    /// Forgets the arguments given since [`ArgSink::mark`] returned `mark`.
    fn truncate(&mut self, mark: usize);
}

impl<'a> ArgSink<'a> for Vec<&'a [u8]> {
    #[inline(always)]
    fn arg(&mut self, arg: &'a [u8]) {
        self.push(arg);
    }

    #[inline(always)]
    fn mark(&self) -> usize {
        self.len()
    }

    #[inline(always)]
    fn truncate(&mut self, mark: usize) {
        Vec::truncate(self, mark);
    }
}

impl<'a> ArgSink<'a> for () {
    #[inline(always)]
    fn arg(&mut self, _: &'a [u8]) {}

    #[inline(always)]
    fn mark(&self) -> usize {
        0
    }

    #[inline(always)]
    fn truncate(&mut self, _: usize) {}
}

/// Most arguments of a command read by [`read_short_multibulk`]; wider ones take the general path.
const SHORT_ARGS: usize = 8;
/// Most digits of a length [`short_length`] reads: 9 fit a `u32`, so a `usize` on every target.
const SHORT_LENGTH_DIGITS: usize = 9;

/// Checks the frame at the front of `buf` (stream offset `offset`), from where `progress` says an earlier call
/// stopped, giving each argument found from there on to `sink`.
#[inline]
pub(crate) fn read_frame<'a>(
    buf: &'a [u8],
    offset: u64,
    limits: &Limits,
    progress: &mut Progress,
    sink: &mut impl ArgSink<'a>,
) -> Result<Frame, RespError> {
    match buf.first() {
        None => Ok(Frame::Incomplete { needed: 1 }),
        Some(b'*') => read_multibulk(buf, offset, limits, progress, sink),
        Some(_) => read_inline(buf, offset, limits, progress, sink),
    }
}

/// The digits of a short length at `buf[pos]` and its `\r\n`: the length and the position after the line, or
/// `None` for anything else (no digits, a sign, more than [`SHORT_LENGTH_DIGITS`] digits, a bad or missing line
/// ending), which the general path then reads, or reports, exactly.
#[inline(always)]
fn short_length(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    let digits = buf.get(pos..)?;
    let mut value = 0usize;
    let mut len = 0;
    for &b in digits.iter().take(SHORT_LENGTH_DIGITS + 1) {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        value = value * 10 + usize::from(digit);
        len += 1;
    }
    if len == 0 || len > SHORT_LENGTH_DIGITS {
        return None;
    }
    let end = pos + len;
    (buf.get(end..end + 2)? == b"\r\n").then_some((value, end + 2))
}

/// A whole command of at most [`SHORT_ARGS`] arguments at the front of `buf`, read in one pass without the
/// bookkeeping that resuming and errors need: its length, its arguments given to `sink`; or `None` for anything
/// else (an incomplete or malformed frame, a wider command, a length at a limit), which the general path then
/// reads, after the caller took back from `sink` what this gave it. Replication streams are made of such
/// commands, so this is the path nearly every command takes.
#[inline(always)]
fn read_short_multibulk<'a>(
    buf: &'a [u8],
    limits: &Limits,
    sink: &mut impl ArgSink<'a>,
) -> Option<usize> {
    let (count, mut pos) = short_length(buf, 1)?;
    if count == 0 || count > SHORT_ARGS || count > limits.max_args {
        return None;
    }
    for _ in 0..count {
        if buf.get(pos) != Some(&b'$') {
            return None;
        }
        let (len, data) = short_length(buf, pos + 1)?;
        if len > limits.max_bulk_len {
            return None;
        }
        let end = data.checked_add(len)?;
        if buf.get(end..end.checked_add(2)?)? != b"\r\n" {
            return None;
        }
        sink.arg(&buf[data..end]);
        pos = end + 2;
    }
    Some(pos)
}

fn read_multibulk<'a>(
    buf: &'a [u8],
    offset: u64,
    limits: &Limits,
    progress: &mut Progress,
    sink: &mut impl ArgSink<'a>,
) -> Result<Frame, RespError> {
    if progress.remaining.is_none() {
        let mark = sink.mark();
        if let Some(len) = read_short_multibulk(buf, limits, sink) {
            return Ok(Frame::Complete(len));
        }
        sink.truncate(mark);
    }
    let incomplete = |needed: usize| Ok(Frame::Incomplete { needed });
    let (mut pos, mut remaining) = match progress.remaining {
        Some(remaining) => (progress.pos, remaining),
        None => {
            let Some((count, pos)) = read_length(buf, 1, offset, text!("an array length"))? else {
                return incomplete(buf.len() + 1);
            };
            if count <= 0 {
                // Redis skips `*0` and `*-1` without running anything; they still count towards the offset.
                return Ok(Frame::Complete(pos));
            }
            if count as u64 > limits.max_args as u64 {
                return Err(limit(
                    offset,
                    text!("argument count"),
                    count as u64,
                    limits.max_args,
                ));
            }
            (pos, count as usize)
        }
    };
    // Where to resume: the start of the argument not complete yet (stored only when stopping there).
    let suspend = |progress: &mut Progress, pos, remaining, needed| {
        *progress = Progress {
            pos,
            remaining: Some(remaining),
        };
        Ok(Frame::Incomplete { needed })
    };
    while remaining > 0 {
        match buf.get(pos) {
            Some(b'$') => {}
            Some(_) => {
                return Err(unexpected(
                    offset + pos as u64,
                    text!("'$' (a bulk string argument)"),
                    buf,
                    pos,
                ))
            }
            None => return suspend(progress, pos, remaining, pos + 1),
        }
        let Some((len, data)) = read_length(buf, pos + 1, offset, text!("a bulk length"))? else {
            return suspend(progress, pos, remaining, buf.len() + 1);
        };
        if len < 0 {
            return Err(RespError::Unexpected {
                offset: offset + pos as u64 + 1,
                expected: text!("a bulk length of 0 or more"),
                found: len.to_string(),
            });
        }
        if len as u64 > limits.max_bulk_len as u64 {
            return Err(limit(
                offset + pos as u64,
                text!("bulk length"),
                len as u64,
                limits.max_bulk_len,
            ));
        }
        // Saturating: with a limit near usize::MAX (on wasm32, 4 GiB) the sum could overflow.
        let end = data.saturating_add(len as usize);
        let stop = end.saturating_add(2);
        let Some(terminator) = buf.get(end..stop) else {
            return suspend(progress, pos, remaining, stop);
        };
        if terminator != b"\r\n" {
            let at = if terminator[0] == b'\r' { end + 1 } else { end };
            return Err(unexpected(
                offset + at as u64,
                "\"\\r\\n\" after a bulk string",
                buf,
                at,
            ));
        }
        sink.arg(&buf[data..end]);
        pos = stop;
        remaining -= 1;
    }
    Ok(Frame::Complete(pos))
}

/// An inline command: one line of words separated by spaces, as `redis-cli` in a telnet session would send. A
/// blank line is a keepalive. Like Redis, a `\r` before the `\n` is part of the line ending, not of the command.
/// Quotes are not interpreted (Redis would unquote `"a b"` into one argument): a primary never propagates
/// inline commands, so only keepalives and hand-typed commands reach this.
fn read_inline<'a>(
    buf: &'a [u8],
    offset: u64,
    limits: &Limits,
    progress: &mut Progress,
    sink: &mut impl ArgSink<'a>,
) -> Result<Frame, RespError> {
    let window = &buf[..buf.len().min(limits.max_inline_len.saturating_add(1))];
    let from = progress.pos.min(window.len());
    let Some(newline) = memchr::memchr(b'\n', &window[from..]).map(|i| from + i) else {
        if window.len() > limits.max_inline_len {
            // Reported as the window, not the whole buffer, so the error is the same for any chunking.
            return Err(limit(
                offset,
                text!("inline command length"),
                window.len() as u64,
                limits.max_inline_len,
            ));
        }
        progress.pos = window.len();
        return Ok(Frame::Incomplete {
            needed: buf.len() + 1,
        });
    };
    let line = &buf[..newline];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    for word in line.split(|&b| b == b' ' || (b'\t'..=b'\r').contains(&b)) {
        if !word.is_empty() {
            sink.arg(word);
        }
    }
    Ok(Frame::Complete(newline + 1))
}

#[cfg(test)]
mod tests {
    use super::super::limits::MAX_INLINE_LEN;
    use super::*;

    fn parse(buf: &[u8]) -> Result<Option<Command<'_>>, RespError> {
        parse_command(buf, 100, &Limits::default())
    }

    #[test]
    fn multibulk_command_borrows_args_and_counts_offsets() {
        let buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\nrest";
        let cmd = parse(buf).unwrap().unwrap();
        assert_eq!(cmd.args, vec![&b"SET"[..], b"k", b"v1"]);
        assert_eq!((cmd.start, cmd.end), (100, 100 + 28));
        assert!(cmd.is("set"));
        assert_eq!(cmd.frame_len(), 28);
    }

    #[test]
    fn bulk_payload_may_hold_crlf_and_any_byte() {
        let buf = b"*2\r\n$4\r\nECHO\r\n$4\r\n\r\n\x00\xff\r\n";
        let cmd = parse(buf).unwrap().unwrap();
        assert_eq!(cmd.args[1], b"\r\n\x00\xff");
        let cmd = parse(b"*1\r\n$0\r\n\r\n").unwrap().unwrap();
        assert_eq!(cmd.args, vec![&b""[..]]);
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
    fn resuming_gives_the_same_frame_as_one_pass() {
        let buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n";
        for cut in 0..buf.len() {
            let (mut progress, limits) = (Progress::default(), Limits::default());
            let first = read_frame(&buf[..cut], 0, &limits, &mut progress, &mut ()).unwrap();
            let Frame::Incomplete { needed } = first else {
                panic!("cut at {cut} is complete");
            };
            assert!(
                needed > cut && needed <= buf.len(),
                "cut {cut} needs {needed}"
            );
            let mut args = Vec::new();
            let done = read_frame(buf, 0, &limits, &mut progress, &mut args).unwrap();
            assert_eq!(done, Frame::Complete(buf.len()));
            let all = [&b"SET"[..], b"k", b"v1"];
            assert_eq!(args, all[all.len() - args.len()..], "cut at {cut}");
        }
    }

    #[test]
    fn inline_commands_and_keepalives() {
        let cmd = parse(b"PING\r\n").unwrap().unwrap();
        assert_eq!((cmd.args, cmd.end), (vec![&b"PING"[..]], 106));
        let cmd = parse(b"SET  k\tv\n").unwrap().unwrap();
        assert_eq!(cmd.args, vec![&b"SET"[..], b"k", b"v"]);
        let cmd = parse(b"\n*1\r\n").unwrap().unwrap();
        assert!(cmd.args.is_empty());
        assert_eq!(cmd.frame_len(), 1);
        let cmd = parse(b"*0\r\n").unwrap().unwrap();
        assert!(cmd.args.is_empty());
        assert_eq!(cmd.frame_len(), 4);
        let cmd = parse(b"*-1\r\n").unwrap().unwrap();
        assert_eq!(cmd.frame_len(), 5);
        assert_eq!(parse(b"PIN"), Ok(None));
    }

    #[test]
    fn errors_name_offset_and_expectation() {
        let err = parse(b"*1\r\n:12\r\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "replication stream offset 104: expected '$' (a bulk string argument), found ':'"
        );
        let err = parse(b"*1\r\n$3\r\nabcXY").unwrap_err();
        assert_eq!(
            err.to_string(),
            "replication stream offset 111: expected \"\\r\\n\" after a bulk string, found 'X'"
        );
        let err = parse(b"*1\r\n$3\r\nabc\rY").unwrap_err();
        assert!(err.to_string().contains("offset 112"), "{err}");
        let err = parse(b"*x\r\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "replication stream offset 101: expected an array length, found 'x'"
        );
        let err = parse(b"*99999999999999999999\r\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "replication stream offset 101: expected an array length, found more than 18 digits"
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
        assert_eq!(parse(&long[..MAX_INLINE_LEN]), Ok(None));
    }

    #[test]
    fn the_short_path_and_the_general_one_agree() {
        fn general(buf: &[u8]) -> (Result<Frame, RespError>, Vec<&[u8]>) {
            let mut args = Vec::new();
            let frame = read_multibulk(
                buf,
                0,
                &Limits::default(),
                &mut Progress {
                    pos: 0,
                    remaining: None,
                },
                &mut args,
            );
            (frame, args)
        }
        let cases: &[&[u8]] = &[
            b"*1\r\n$03\r\nabc\r\n",
            b"*01\r\n$3\r\nabc\r\n",
            b"*1\r\n$000000003\r\nabc\r\n",
            b"*1\r\n$0000000003\r\nabc\r\n",
            b"*8\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n$1\r\nf\r\n$1\r\ng\r\n$1\r\nh\r\n",
            b"*9\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n$1\r\nf\r\n$1\r\ng\r\n$1\r\nh\r\n$1\r\ni\r\n",
        ];
        for &buf in cases {
            let mut short_args = Vec::new();
            let short = read_short_multibulk(buf, &Limits::default(), &mut short_args);
            let (frame, args) = general(buf);
            let Frame::Complete(len) = frame.unwrap() else {
                panic!("incomplete: {buf:?}");
            };
            if let Some(short_len) = short {
                assert_eq!((short_len, &short_args[..]), (len, &args[..]));
            }
            assert_eq!(parse(buf).unwrap().unwrap().args, args);
        }
        // Limits hold on the short path too.
        let tight = Limits {
            max_bulk_len: 2,
            max_args: 1,
            ..Limits::default()
        };
        let mut args = Vec::new();
        assert_eq!(
            read_short_multibulk(b"*1\r\n$3\r\nabc\r\n", &tight, &mut args),
            None
        );
        assert_eq!(
            read_short_multibulk(b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", &tight, &mut args),
            None
        );
    }

    #[test]
    fn a_resumed_check_finds_the_same_end_as_one_pass() {
        let buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n";
        let limits = Limits::default();
        for cut in 0..buf.len() {
            let mut check = CommandCheck::default();
            let first = check.check(&buf[..cut], 0, &limits).unwrap();
            let Checked::Incomplete { at_least } = first else {
                panic!("cut at {cut} is complete");
            };
            assert!(at_least > cut && at_least <= buf.len(), "cut {cut}");
            assert_eq!(
                check.check(buf, 0, &limits).unwrap(),
                Checked::Complete(buf.len())
            );
            assert!(
                !check.is_resuming(),
                "a complete command starts the next check afresh"
            );
        }
    }

    #[test]
    fn parse_into_reuses_the_args() {
        let buf = b"*2\r\n$1\r\na\r\n$1\r\nb\r\n*1\r\n$1\r\nc\r\n";
        let limits = Limits::default();
        let mut command = Command {
            args: Vec::new(),
            start: 0,
            end: 0,
        };
        assert!(parse_command_into(buf, 0, &limits, &mut command).unwrap());
        assert_eq!((command.args.len(), command.end), (2, 18));
        let rest = &buf[command.frame_len()..];
        assert!(parse_command_into(rest, 18, &limits, &mut command).unwrap());
        assert_eq!(command.args, vec![&b"c"[..]]);
        assert_eq!((command.start, command.end), (18, 29));
    }
}
