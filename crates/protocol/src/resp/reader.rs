//! Readers for a stream that arrives in chunks: whatever the chunk boundaries, they give the same commands (or
//! replies) with the same offsets as the whole stream would.
//!
//! Complete frames are parsed straight from the chunk they arrived in. Only an incomplete frame at the end of a
//! chunk is copied, into a [`Tail`] bounded by [`Limits::max_command_len`]; the next chunk completes it by
//! resuming the check where it stopped and copying only the bytes the frame still needs, then parsing goes on
//! in that chunk directly.

use std::ops::Range;

use super::command::{read_frame, Command, Frame, Progress};
use super::error::{limit, RespError};
use super::limits::Limits;
use super::value::{parse_value, scan_value, ScanState, Value};
use crate::text;

/// Fewest bytes copied into a tail at a time while its frame's length is still unknown: fewer calls to resume
/// the check, at the cost of copying a little past the frame's end.
const MIN_TAIL_STEP: usize = 512;

/// The bytes of one incomplete frame, held between chunks.
#[derive(Debug, Default)]
struct Tail {
    bytes: Vec<u8>,
}

impl Tail {
    /// Appends from `input` until `check` finds the frame complete; returns the frame's length and how many bytes
    /// of `input` it took, or `None` when all of `input` was appended and the frame is still incomplete.
    fn complete(
        &mut self,
        input: &[u8],
        mut check: impl FnMut(&[u8]) -> Result<Frame, RespError>,
    ) -> Result<Option<(usize, usize)>, RespError> {
        let held = self.bytes.len();
        let mut taken = 0;
        loop {
            match check(&self.bytes)? {
                // The tail held no complete frame, so the frame ends past `held`.
                Frame::Complete(len) => return Ok(Some((len, len.saturating_sub(held)))),
                Frame::Incomplete { needed } => {
                    let rest = &input[taken..];
                    if rest.is_empty() {
                        return Ok(None);
                    }
                    let want = needed.saturating_sub(self.bytes.len()).max(MIN_TAIL_STEP);
                    let take = want.min(rest.len());
                    self.bytes.extend_from_slice(&rest[..take]);
                    taken += take;
                }
            }
        }
    }

    /// Errs if the tail outgrew `limits.max_command_len`.
    fn check_len(&self, offset: u64, limits: &Limits) -> Result<(), RespError> {
        if self.bytes.len() > limits.max_command_len {
            return Err(limit(
                offset,
                text!("incomplete frame length"),
                self.bytes.len() as u64,
                limits.max_command_len,
            ));
        }
        Ok(())
    }
}

/// Splits a replication stream that arrives in chunks into commands, whatever the chunk boundaries.
///
/// After an error the reader stays failed: the stream's framing is lost, so the only way on is a new reader at
/// a known offset.
#[derive(Debug)]
pub struct CommandReader {
    tail: Tail,
    progress: Progress,
    offset: u64,
    limits: Limits,
    failed: Option<RespError>,
}

impl CommandReader {
    /// A reader whose next byte is at replication offset `offset`.
    pub fn new(offset: u64) -> Self {
        Self::with_limits(offset, Limits::default())
    }

    /// A reader with other limits than the defaults.
    pub fn with_limits(offset: u64, limits: Limits) -> Self {
        CommandReader {
            tail: Tail::default(),
            progress: Progress::default(),
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
        self.tail.bytes.len()
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
        let result = self.read(input, &mut on_command);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
            self.tail = Tail::default();
        }
        result
    }

    fn read(
        &mut self,
        mut input: &[u8],
        on_command: &mut impl FnMut(&Command<'_>),
    ) -> Result<(), RespError> {
        let offset = self.offset;
        if !self.tail.bytes.is_empty() {
            let (limits, progress) = (&self.limits, &mut self.progress);
            let done = self.tail.complete(input, |buf| {
                read_frame(buf, offset, limits, progress, &mut ())
            })?;
            let Some((len, taken)) = done else {
                return self.tail.check_len(offset, &self.limits);
            };
            // Checked in pieces; now read once more, whole, for the arguments.
            let mut command = Command {
                args: Vec::new(),
                start: offset,
                end: offset + len as u64,
            };
            let frame = &self.tail.bytes[..len];
            read_frame(
                frame,
                offset,
                limits,
                &mut Progress::default(),
                &mut command.args,
            )?;
            self.offset = command.end;
            on_command(&command);
            self.tail.bytes.clear();
            self.progress = Progress::default();
            input = &input[taken..];
        }
        // One argument list for the whole chunk, so commands cost no allocation of their own.
        let mut command = Command {
            args: Vec::new(),
            start: self.offset,
            end: self.offset,
        };
        let mut pos = 0;
        loop {
            command.args.clear();
            let mut progress = Progress::default();
            let rest = &input[pos..];
            match read_frame(
                rest,
                self.offset,
                &self.limits,
                &mut progress,
                &mut command.args,
            )? {
                Frame::Complete(len) => {
                    command.start = self.offset;
                    command.end = self.offset + len as u64;
                    self.offset = command.end;
                    pos += len;
                    on_command(&command);
                }
                Frame::Incomplete { .. } => {
                    self.tail.bytes.extend_from_slice(rest);
                    self.progress = progress;
                    return self.tail.check_len(self.offset, &self.limits);
                }
            }
        }
    }
}

/// Splits a stream of replies (RESP2 or RESP3) that arrives in chunks into values, whatever the chunk
/// boundaries. Lone `\n` bytes between values, the keepalives a primary sends to a replica while it prepares the
/// RDB payload, are skipped (and counted in the offsets). Like [`CommandReader`], it stays failed after an error.
#[derive(Debug)]
pub struct ValueReader {
    tail: Tail,
    scan: ScanState,
    offset: u64,
    limits: Limits,
    failed: Option<RespError>,
}

impl ValueReader {
    /// A reader whose next byte is at stream offset `offset`.
    pub fn new(offset: u64) -> Self {
        Self::with_limits(offset, Limits::default())
    }

    /// A reader with other limits than the defaults.
    pub fn with_limits(offset: u64, limits: Limits) -> Self {
        ValueReader {
            tail: Tail::default(),
            scan: ScanState::default(),
            offset,
            limits,
            failed: None,
        }
    }

    /// Offset just past the last complete value.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes held from an incomplete value.
    pub fn pending_len(&self) -> usize {
        self.tail.bytes.len()
    }

    /// Feeds the next chunk, calling `on_value` with each value it completes and the offsets it occupied.
    pub fn push(
        &mut self,
        input: &[u8],
        mut on_value: impl FnMut(Value<'_>, Range<u64>),
    ) -> Result<(), RespError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.read(input, &mut on_value);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
            self.tail = Tail::default();
        }
        result
    }

    fn read(
        &mut self,
        mut input: &[u8],
        on_value: &mut impl FnMut(Value<'_>, Range<u64>),
    ) -> Result<(), RespError> {
        let offset = self.offset;
        if !self.tail.bytes.is_empty() {
            let (limits, scan) = (&self.limits, &mut self.scan);
            let done = self
                .tail
                .complete(input, |buf| scan_value(buf, offset, limits, scan))?;
            let Some((len, taken)) = done else {
                return self.tail.check_len(offset, &self.limits);
            };
            let frame = &self.tail.bytes[..len];
            if let Some((value, _)) = parse_value(frame, offset, limits)? {
                self.offset = offset + len as u64;
                on_value(value, offset..self.offset);
            }
            self.tail.bytes.clear();
            self.scan = ScanState::default();
            input = &input[taken..];
        }
        let mut pos = 0;
        while pos < input.len() {
            if input[pos] == b'\n' {
                // A keepalive: no value starts with `\n`, so skipping it cannot hide one.
                pos += 1;
                self.offset += 1;
                continue;
            }
            let rest = &input[pos..];
            match parse_value(rest, self.offset, &self.limits)? {
                Some((value, len)) => {
                    let start = self.offset;
                    self.offset += len as u64;
                    pos += len;
                    on_value(value, start..self.offset);
                }
                None => {
                    self.tail.bytes.extend_from_slice(rest);
                    break;
                }
            }
        }
        self.tail.check_len(self.offset, &self.limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Got = Vec<(Vec<Vec<u8>>, u64, u64)>;

    fn collect(reader: &mut CommandReader, chunk: &[u8], out: &mut Got) {
        reader
            .push(chunk, |c| {
                out.push((c.args.iter().map(|a| a.to_vec()).collect(), c.start, c.end))
            })
            .unwrap();
    }

    #[test]
    fn reader_gives_the_same_commands_for_every_split() {
        let stream: &[u8] =
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*4\r\n$4\r\nZADD\r\n$1\r\nz\r\n$1\r\n1\r\n$3\r\na\r\n\r\nPING\r\n\n*0\r\n";
        let mut whole = Vec::new();
        collect(&mut CommandReader::new(7), stream, &mut whole);
        assert_eq!(whole.len(), 5);
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
    fn byte_by_byte_completes_a_big_bulk_without_copying_ahead() {
        let mut stream = b"*2\r\n$4\r\nECHO\r\n$3000\r\n".to_vec();
        stream.extend(std::iter::repeat_n(b'x', 3000));
        stream.extend_from_slice(b"\r\n*1\r\n$4\r\nPING\r\n");
        let mut reader = CommandReader::new(0);
        let mut got = Vec::new();
        for chunk in stream.chunks(1) {
            collect(&mut reader, chunk, &mut got);
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0[1].len(), 3000);
        assert_eq!(got[1].1, got[0].2);
    }

    #[test]
    fn reader_stays_failed_after_an_error() {
        let mut reader = CommandReader::new(0);
        assert!(reader.push(b"*1\r\n%", |_| {}).is_err());
        assert!(reader.push(b"*1\r\n$1\r\na\r\n", |_| panic!()).is_err());
        let mut reader = CommandReader::new(0);
        reader.push(b"*1\r\n$1", |_| {}).unwrap();
        let err = reader.push(b"x\r\n", |_| {}).unwrap_err();
        assert!(err.to_string().contains("offset 6"), "{err}");
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
                what: text!("incomplete frame length"),
                ..
            }
        ));
    }

    #[test]
    fn value_reader_skips_keepalives_between_values() {
        let mut got = Vec::new();
        let mut reader = ValueReader::new(0);
        for chunk in [&b"+FULLRESYNC abc 0\r\n\n"[..], b"\n", b"\n:1\r\n"] {
            reader
                .push(chunk, |v, at| got.push((format!("{v:?}"), at)))
                .unwrap();
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].1, 22..26);
        assert_eq!(reader.offset(), 26);
    }

    #[test]
    fn value_reader_gives_the_same_values_for_every_split() {
        let stream: &[u8] =
            b"+OK\r\n*2\r\n%1\r\n$1\r\nk\r\n,1.5\r\n|1\r\n+a\r\n:1\r\n~1\r\n#t\r\n$-1\r\n_\r\n";
        let mut whole = Vec::new();
        ValueReader::new(3)
            .push(stream, |v, at| whole.push((format!("{v:?}"), at)))
            .unwrap();
        assert_eq!(whole.len(), 4);
        assert_eq!(whole[3].1.end, 3 + stream.len() as u64);
        for a in 0..stream.len() {
            for b in a..stream.len() {
                let mut reader = ValueReader::new(3);
                let mut got = Vec::new();
                for chunk in [&stream[..a], &stream[a..b], &stream[b..]] {
                    reader
                        .push(chunk, |v, at| got.push((format!("{v:?}"), at)))
                        .unwrap();
                }
                assert_eq!(got, whole, "split at {a},{b}");
                assert_eq!(reader.pending_len(), 0);
            }
        }
    }
}
