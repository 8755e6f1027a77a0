//! [`RdbReader`]: the push parser. Bytes go in, in chunks of any size; events come out as soon as the bytes of
//! each piece are complete.
//!
//! The reader advances in small atomic steps (the header, one opcode with its arguments, a key's type and name,
//! one element, one compact-encoded string…). A step either completes from the bytes at hand, or stops with
//! "incomplete" and changes nothing, so it can be retried when more bytes arrive. Only the bytes of an incomplete
//! step are kept between pushes, which bounds memory by the largest single element or compact string (see
//! [`Limits`]), never by the size of a key.

use super::crc::Crc64;
use super::cursor::Cursor;
use super::error::{Halt, RdbError};
use super::event::{Checksum, Encoding, Event, Flavor};
use super::module::skip_module_op;
use super::state::{KeyCtx, Sink, State, ValueState};
use super::ReaderOptions;

/// Once an incomplete step has needed a buffer this much bigger than what it holds now, give memory back.
const SHRINK_SLACK: usize = 1 << 20;
/// Bytes first added to an incomplete step's from the next chunk (then doubling until the step completes).
const MIN_TOP_UP: usize = 4096;

/// The streaming RDB parser.
///
/// ```
/// use replicast_rdb::{Event, RdbReader};
/// let mut reader = RdbReader::new();
/// let file = b"REDIS0003\xfe\x00\x00\x01k\x01v\xff";
/// let mut keys = Vec::new();
/// for chunk in file.chunks(3) {
///     reader.push(chunk, |event| {
///         if let Event::KeyStart(key) = event {
///             keys.push(key.key.to_vec());
///         }
///     }).unwrap();
/// }
/// reader.finish().unwrap();
/// assert_eq!(keys, vec![b"k".to_vec()]);
/// ```
///
/// After an error the reader stays failed. [`RdbReader::push`] returns how much of its input it used: all of it,
/// except for the bytes after the end of the RDB, which belong to whoever reads on (the replication stream after
/// a full resync's payload, for instance).
#[derive(Debug)]
pub struct RdbReader {
    pub(crate) options: ReaderOptions,
    pub(crate) state: State,
    pub(crate) value: ValueState,
    pub(crate) key: KeyCtx,
    pub(crate) flavor: Flavor,
    pub(crate) version: u32,
    pub(crate) scratch: [Vec<u8>; 4],
    /// Minimum field expiry of a Redis 7.4 hash with field expiry, which field TTLs are relative to.
    pub(crate) min_expire: i64,
    /// Whether this reads a `DUMP` payload rather than a file.
    dump: bool,
    pending: Vec<u8>,
    /// Stream offset of the first pending byte (or of the next input when none is pending).
    offset: u64,
    crc: Crc64,
    failed: Option<RdbError>,
}

impl Default for RdbReader {
    fn default() -> Self {
        Self::new()
    }
}

impl RdbReader {
    /// A reader for an RDB file or replication payload, with the default options.
    pub fn new() -> Self {
        Self::with_options(ReaderOptions::default())
    }

    /// A reader for an RDB file or replication payload.
    pub fn with_options(options: ReaderOptions) -> Self {
        RdbReader {
            options,
            state: State::Magic,
            value: ValueState::Start,
            key: KeyCtx::default(),
            flavor: Flavor::Redis,
            version: 0,
            scratch: Default::default(),
            min_expire: 0,
            dump: false,
            pending: Vec::new(),
            offset: 0,
            crc: Crc64::new(),
            failed: None,
        }
    }

    /// A reader for one `DUMP` payload (a type byte, the value, the 2-byte RDB version and the CRC64), whose
    /// version — which decides how type ids read — was taken from its trailer. See [`super::decode_dump`].
    pub fn for_dump(
        flavor: Flavor,
        version: u32,
        options: ReaderOptions,
    ) -> Result<Self, RdbError> {
        options.check_version(flavor, version, 0)?;
        let mut reader = Self::with_options(options);
        reader.flavor = flavor;
        reader.version = version;
        reader.state = State::DumpType;
        reader.dump = true;
        Ok(reader)
    }

    /// The RDB version from the header (0 before it is read).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Stream offset just past the bytes used so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes held from an incomplete step.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Whether the end of the RDB (its checksum, when it has one) has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds the next chunk, calling `on_event` for each event it completes, in order. Returns how many bytes of
    /// `input` were used: all of them unless the RDB ended inside this chunk.
    pub fn push(
        &mut self,
        input: &[u8],
        mut on_event: impl FnMut(Event<'_>),
    ) -> Result<usize, RdbError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.state == State::Done {
            return Ok(0);
        }
        let result = self.push_inner(input, &mut on_event);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
            self.pending = Vec::new();
        }
        result
    }

    fn push_inner(&mut self, input: &[u8], on: Sink<'_>) -> Result<usize, RdbError> {
        let mut buf = std::mem::take(&mut self.pending);
        // First finish the step the last push left incomplete. Its bytes are topped up from `input` a little at a
        // time, doubling, so that only about that step's size is copied; the rest of `input` is read in place.
        let mut start = 0;
        if !buf.is_empty() {
            let mut taken = 0;
            // The last `in_buf` bytes of `buf` are `input[taken - in_buf..taken]`.
            let mut in_buf = 0;
            loop {
                let take = (input.len() - taken).min(buf.len().max(MIN_TOP_UP));
                if take == 0 {
                    self.pending = buf;
                    return Ok(input.len());
                }
                buf.extend_from_slice(&input[taken..taken + take]);
                taken += take;
                in_buf += take;
                let old = buf.len() - in_buf;
                let used = self.drain(&buf, on)?;
                self.offset += used as u64;
                if used >= old {
                    // Everything from before this push is used: go on in place.
                    start = taken - in_buf + (used - old);
                    buf.clear();
                    break;
                }
                buf.drain(..used);
            }
            if self.state == State::Done {
                self.keep(buf);
                return Ok(start);
            }
        }
        let used = self.drain(&input[start..], on)?;
        self.offset += used as u64;
        if self.state == State::Done {
            self.keep(buf);
            return Ok(start + used);
        }
        buf.extend_from_slice(&input[start + used..]);
        self.keep(buf);
        Ok(input.len())
    }

    /// Keeps `buf` as the pending bytes, giving back memory an earlier big step needed.
    fn keep(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() > buf.len() + SHRINK_SLACK {
            buf.shrink_to(buf.len().max(MIN_TOP_UP));
        }
        self.pending = buf;
    }

    /// Says whether the input ended where an RDB may end: an error naming what was still expected if not.
    pub fn finish(&self) -> Result<(), RdbError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.state == State::Done {
            return Ok(());
        }
        Err(RdbError::Truncated {
            offset: self.offset + self.pending.len() as u64,
            expected: self.expecting(),
        })
    }

    fn expecting(&self) -> &'static str {
        match self.state {
            State::Magic => "the RDB header",
            State::Top => "an opcode or a key",
            State::ModuleAux => "a module opcode",
            State::DumpType => "a value type",
            State::Value => "the rest of a value",
            State::DumpVersion => "the DUMP payload's RDB version",
            State::Checksum => "the CRC64 trailer",
            State::Done => "nothing",
        }
    }

    /// Runs every step that `buf` completes; returns the bytes they used.
    fn drain(&mut self, buf: &[u8], on: &mut dyn FnMut(Event<'_>)) -> Result<usize, RdbError> {
        let mut pos = 0;
        let mut crc_from = 0;
        while self.state != State::Done {
            if self.state == State::Checksum {
                // The trailer is not part of what it checks.
                self.crc.update(&buf[crc_from..pos]);
                crc_from = pos;
            }
            let mut cur = Cursor::new(buf, pos, self.offset);
            match self.step(&mut cur, on) {
                Ok(()) => pos = cur.pos,
                Err(Halt::Incomplete) => break,
                Err(Halt::Fail(err)) => return Err(err),
            }
        }
        if self.state != State::Done {
            self.crc.update(&buf[crc_from..pos]);
        }
        Ok(pos)
    }

    fn step(&mut self, cur: &mut Cursor<'_>, on: &mut dyn FnMut(Event<'_>)) -> Result<(), Halt> {
        match self.state {
            State::Magic => self.magic_step(cur, on),
            State::Top => self.top_step(cur, on),
            State::ModuleAux => {
                if skip_module_op(cur, &self.options.limits, &mut self.scratch[0])? {
                    self.state = State::Top;
                }
                Ok(())
            }
            State::DumpType => {
                let at = cur.offset();
                let id = cur.u8()?;
                let encoding = self.encoding_of(id, at)?;
                self.begin_key(encoding, at);
                Ok(())
            }
            State::Value => self.value_step(cur, on),
            State::DumpVersion => {
                let at = cur.offset();
                let version = u32::from(u16::from_le_bytes([cur.u8()?, cur.u8()?]));
                if version != self.version {
                    return Err(RdbError::Unexpected {
                        offset: at,
                        expected: "the RDB version the reader was made for",
                        found: version.to_string(),
                    }
                    .into());
                }
                self.state = State::Checksum;
                Ok(())
            }
            State::Checksum => {
                let at = cur.offset();
                let stored = cur.u64_le()?;
                let computed = self.crc.value();
                let checksum = if stored == 0 && !self.dump {
                    Checksum::Disabled
                } else if stored == computed {
                    Checksum::Verified(stored)
                } else {
                    return Err(RdbError::Checksum {
                        offset: at,
                        stored,
                        computed,
                    }
                    .into());
                };
                self.state = State::Done;
                on(Event::Eof { checksum });
                Ok(())
            }
            State::Done => Ok(()),
        }
    }

    pub(crate) fn begin_key(&mut self, encoding: Encoding, at: u64) {
        self.key.encoding = Some(encoding);
        self.key.offset = at;
        self.key.started = false;
        self.value = ValueState::Start;
        self.state = State::Value;
    }

    /// Ends the current key: reports its end, or that it was skipped as empty.
    pub(crate) fn end_key(&mut self, end: u64, on: &mut dyn FnMut(Event<'_>)) {
        let may_be_empty = matches!(
            self.key.encoding.map(Encoding::value_type),
            Some(super::ValueType::String | super::ValueType::Stream | super::ValueType::Module)
        );
        if self.key.started || may_be_empty {
            self.key.start(on);
            on(Event::KeyEnd { offset: end });
        } else {
            on(Event::SkippedEmptyKey { key: &self.key.key });
        }
        self.key.reset();
        self.state = if self.dump {
            State::DumpVersion
        } else {
            State::Top
        };
    }
}
