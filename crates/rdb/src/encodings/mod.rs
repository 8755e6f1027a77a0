//! The compact encodings Redis stores small collections in, each a single RDB string: [`ziplist`] (lists, hashes
//! and sorted sets before 7.0), [`listpack`] (their 7.0 successor, and stream nodes), [`intset`] (sets of
//! integers) and [`zipmap`] (hashes before 2.6).
//!
//! Each decoder walks its bytes once, bounds-checking every read, and yields the elements borrowed from them.

pub(crate) mod intset;
pub(crate) mod listpack;
pub(crate) mod ziplist;
pub(crate) mod zipmap;

use super::error::RdbError;

/// Malformed data at byte `at` of an encoded string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodingError {
    pub at: usize,
    pub expected: &'static str,
    pub found: String,
}

impl EncodingError {
    pub(crate) fn new(at: usize, expected: &'static str, found: impl Into<String>) -> Self {
        EncodingError {
            at,
            expected,
            found: found.into(),
        }
    }

    /// The error for the encoded string of kind `encoding` that starts at stream offset `offset`.
    pub(crate) fn at_offset(self, offset: u64, encoding: &'static str) -> RdbError {
        RdbError::Encoding {
            offset,
            encoding,
            at: self.at,
            expected: self.expected,
            found: self.found,
        }
    }
}

/// `n` bytes of `buf` from `pos`, or an error naming what they were to hold.
pub(crate) fn slice<'a>(
    buf: &'a [u8],
    pos: usize,
    n: usize,
    what: &'static str,
) -> Result<&'a [u8], EncodingError> {
    pos.checked_add(n)
        .and_then(|end| buf.get(pos..end))
        .ok_or_else(|| {
            EncodingError::new(
                pos,
                what,
                format!("the end of the string ({} bytes)", buf.len()),
            )
        })
}

/// A little-endian integer of `N` bytes at `pos`, sign-extended from its width.
pub(crate) fn int_le<const N: usize>(
    buf: &[u8],
    pos: usize,
    what: &'static str,
) -> Result<i64, EncodingError> {
    let bytes = slice(buf, pos, N, what)?;
    let mut wide = [0u8; 8];
    wide[..N].copy_from_slice(bytes);
    let shift = 64 - 8 * N as u32;
    Ok((i64::from_le_bytes(wide) << shift) >> shift)
}
