//! Why an RDB stream could not be read: every error names the byte offset in the stream (or DUMP payload) and what
//! was expected there.

use thiserror::Error;

/// Why an RDB file, replication payload or `DUMP` payload could not be read.
///
/// Offsets count bytes from the start of the stream given to the reader. Inside a compact encoding (ziplist,
/// listpack, intset, zipmap), which may have been LZF-compressed, the error names the offset of the encoded string
/// and the position inside its decoded bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RdbError {
    /// A byte or value that the format does not allow at this place.
    #[error("RDB offset {offset}: expected {expected}, found {found}")]
    Unexpected {
        offset: u64,
        expected: &'static str,
        found: String,
    },
    /// Malformed data inside a compact encoding.
    #[error("RDB offset {offset}: {encoding} string, at its byte {at}: expected {expected}, found {found}")]
    Encoding {
        offset: u64,
        encoding: &'static str,
        at: usize,
        expected: &'static str,
        found: String,
    },
    /// A length beyond one of the reader's [`Limits`](super::Limits), refused before allocating.
    #[error("RDB offset {offset}: {what} of {len} bytes exceeds the limit of {limit}")]
    Limit {
        offset: u64,
        what: &'static str,
        len: u64,
        limit: u64,
    },
    /// A version newer than this reader knows, without the best-effort option.
    #[error(
        "RDB offset {offset}: {flavor} RDB version {version} is newer than the newest this reader knows \
         ({newest}); opt into best-effort reading to try anyway"
    )]
    UnsupportedVersion {
        offset: u64,
        flavor: &'static str,
        version: u32,
        newest: u32,
    },
    /// The CRC64 trailer does not match the bytes.
    #[error("RDB offset {offset}: checksum mismatch: the trailer says {stored:016x}, the bytes give {computed:016x}")]
    Checksum {
        offset: u64,
        stored: u64,
        computed: u64,
    },
    /// The input ended before the RDB did.
    #[error("RDB offset {offset}: the input ended while expecting {expected}")]
    Truncated { offset: u64, expected: &'static str },
    /// Bytes after the end of a `DUMP` payload or after the end of the RDB, where nothing may follow.
    #[error("RDB offset {offset}: expected the end of the input, found {extra} more bytes")]
    Trailing { offset: u64, extra: u64 },
}

/// Why one parsing step stopped: the normal "not enough bytes yet", or a real error.
#[derive(Debug)]
pub(crate) enum Halt {
    Incomplete,
    Fail(RdbError),
}

impl From<RdbError> for Halt {
    fn from(err: RdbError) -> Self {
        Halt::Fail(err)
    }
}

/// Formats a byte for an error message.
pub(crate) fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}' (0x{b:02x})", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}
