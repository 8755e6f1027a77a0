//! What goes wrong in a RESP stream, with the offset where it went wrong and what was expected there.

use thiserror::Error;

use crate::text;

/// Why a stream could not be parsed. Offsets are stream offsets: for the replication stream, Redis's replication
/// offsets; for replies, bytes since the reader's start.
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

/// An [`RespError::Unexpected`] for the byte at `buf[pos]`, at stream offset `offset` (which is `pos`'s).
pub(crate) fn unexpected(offset: u64, expected: &'static str, buf: &[u8], pos: usize) -> RespError {
    let found = match buf.get(pos) {
        Some(b) if b.is_ascii_graphic() => format!("'{}'", *b as char),
        Some(b) => format!("byte 0x{b:02x}"),
        None => text!("the end of the input").to_string(),
    };
    RespError::Unexpected {
        offset,
        expected,
        found,
    }
}

/// An [`RespError::Limit`] for `len` past `limit`.
pub(crate) fn limit(offset: u64, what: &'static str, len: u64, limit: usize) -> RespError {
    RespError::Limit {
        offset,
        what,
        len,
        limit: limit as u64,
    }
}
