//! The lines RESP is built from: `<length>\r\n` headers, integer lines, and the text lines of simple replies.
//!
//! Every reader here takes the buffer, the position to read at and the stream offset of `buf[0]`, and returns
//! `Ok(None)` when the line has not fully arrived yet. None of them looks further than its limit, so a line that
//! never ends is an error after a bounded number of bytes, not an endless wait.

use super::error::{limit, unexpected, RespError};
use super::limits::MAX_LENGTH_DIGITS;
use crate::quote::quoted_lossy;

/// Most characters of an integer reply: a sign and the 19 digits of `i64::MIN`.
const MAX_INTEGER_CHARS: usize = 20;

/// Reads the decimal length at `buf[pos]` (`-` allowed, for `-1`) and its `\r\n`; returns the length and the
/// position after the line. `expected` names the length for errors, e.g. "a bulk length".
#[inline(always)]
pub(crate) fn read_length(
    buf: &[u8],
    pos: usize,
    offset: u64,
    expected: &'static str,
) -> Result<Option<(i64, usize)>, RespError> {
    let mut i = pos;
    let negative = buf.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    let digits = i;
    let mut value: i64 = 0;
    let end = loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        if !b.is_ascii_digit() {
            break b;
        }
        if i - digits == MAX_LENGTH_DIGITS {
            // 18 digits exceed every limit, so this is either corrupt or hostile: stop before it can overflow.
            return Err(RespError::Unexpected {
                offset: offset + pos as u64,
                expected,
                found: format!("more than {MAX_LENGTH_DIGITS} digits"),
            });
        }
        value = value * 10 + i64::from(b - b'0');
        i += 1;
    };
    if i == digits {
        return Err(unexpected(offset + i as u64, expected, buf, i));
    }
    if end != b'\r' {
        return Err(unexpected(
            offset + i as u64,
            "\"\\r\\n\" ending a length line",
            buf,
            i,
        ));
    }
    match buf.get(i + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((if negative { -value } else { value }, i + 2))),
        Some(_) => Err(unexpected(
            offset + i as u64 + 1,
            "\"\\r\\n\" ending a length line",
            buf,
            i + 1,
        )),
    }
}

/// Reads the text of a line at `buf[pos]` up to its `\r\n`, which it must not contain, and at most `max_len`
/// bytes long; returns the text and the position after the line.
pub(crate) fn read_line<'a>(
    buf: &'a [u8],
    pos: usize,
    offset: u64,
    max_len: usize,
    what: &'static str,
) -> Result<Option<(&'a [u8], usize)>, RespError> {
    let rest = buf.get(pos..).unwrap_or_default();
    let window = &rest[..rest.len().min(max_len.saturating_add(1))];
    let Some(i) = memchr::memchr2(b'\r', b'\n', window) else {
        if window.len() > max_len {
            return Err(limit(
                offset + pos as u64,
                what,
                window.len() as u64,
                max_len,
            ));
        }
        return Ok(None);
    };
    let at = pos + i;
    if window[i] == b'\n' {
        return Err(unexpected(
            offset + at as u64,
            "\"\\r\\n\" ending a line",
            buf,
            at,
        ));
    }
    match buf.get(at + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((&window[..i], at + 2))),
        Some(_) => Err(unexpected(
            offset + at as u64 + 1,
            "\"\\r\\n\" ending a line",
            buf,
            at + 1,
        )),
    }
}

/// Parses a signed 64-bit integer, as Redis writes it (`-` or `+` sign, digits, nothing else).
pub(crate) fn parse_integer(text: &[u8], offset: u64) -> Result<i64, RespError> {
    let bad = || RespError::Unexpected {
        offset,
        expected: "a 64-bit integer",
        found: quoted_lossy(text),
    };
    if text.len() > MAX_INTEGER_CHARS {
        return Err(bad());
    }
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return Err(bad());
    }
    // Accumulate negatively so that i64::MIN, whose magnitude has no positive i64, parses too.
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(bad());
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_sub(i64::from(d - b'0')))
            .ok_or_else(bad)?;
    }
    if negative {
        Ok(value)
    } else {
        value.checked_neg().ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_need_digits_and_crlf() {
        assert_eq!(read_length(b"12\r\nx", 0, 0, "n"), Ok(Some((12, 4))));
        assert_eq!(read_length(b"-1\r\n", 0, 0, "n"), Ok(Some((-1, 4))));
        assert_eq!(read_length(b"12", 0, 0, "n"), Ok(None));
        assert_eq!(read_length(b"12\r", 0, 0, "n"), Ok(None));
        assert!(read_length(b"\r\n", 0, 0, "n").is_err());
        assert!(read_length(b"1x\r\n", 0, 0, "n").is_err());
        assert!(read_length(b"1\rx", 0, 0, "n").is_err());
        assert!(read_length(b"1234567890123456789", 0, 0, "n").is_err());
    }

    #[test]
    fn lines_end_with_crlf_within_their_limit() {
        assert_eq!(
            read_line(b"+OK\r\n", 1, 0, 10, "l"),
            Ok(Some((&b"OK"[..], 5)))
        );
        assert_eq!(read_line(b"+OK\r", 1, 0, 10, "l"), Ok(None));
        assert!(read_line(b"+O\nK\r\n", 1, 0, 10, "l").is_err());
        assert!(read_line(b"+0123456789A", 1, 0, 10, "l").is_err());
        assert_eq!(read_line(b"+0123456789", 1, 0, 10, "l"), Ok(None));
    }

    #[test]
    fn integers_cover_the_whole_i64_range() {
        assert_eq!(parse_integer(b"-9223372036854775808", 0), Ok(i64::MIN));
        assert_eq!(parse_integer(b"9223372036854775807", 0), Ok(i64::MAX));
        assert_eq!(parse_integer(b"+5", 0), Ok(5));
        assert!(parse_integer(b"9223372036854775808", 0).is_err());
        assert!(parse_integer(b"", 0).is_err());
        assert!(parse_integer(b"-", 0).is_err());
        assert!(parse_integer(b"1.5", 0).is_err());
    }
}
