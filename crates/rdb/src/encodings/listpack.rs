//! Listpacks: `<total bytes u32><count u16>` then entries, then `0xff`. Each entry is an encoding, its data, and
//! a "backlen" of 1 to 5 bytes (the entry's length, for walking backwards). Strings have 6, 12 or 32-bit lengths;
//! integers are 7-bit unsigned, 13-bit, or 16, 24, 32 and 64-bit signed.

use super::{int_le, slice, EncodingError};
use crate::event::Value;

const HEADER_LEN: usize = 6;
const END: u8 = 0xff;

/// A listpack being walked.
pub(crate) struct Listpack<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Listpack<'a> {
    /// Checks the header against the string's length.
    pub(crate) fn new(buf: &'a [u8]) -> Result<Self, EncodingError> {
        let header = slice(buf, 0, HEADER_LEN + 1, "a listpack header and end byte")?;
        let total = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        if total as usize != buf.len() {
            return Err(EncodingError::new(
                0,
                "a listpack size equal to the string's length",
                format!("{total} for {} bytes", buf.len()),
            ));
        }
        if buf[buf.len() - 1] != END {
            return Err(EncodingError::new(
                buf.len() - 1,
                "the listpack end byte 0xff",
                format!("0x{:02x}", buf[buf.len() - 1]),
            ));
        }
        Ok(Listpack {
            buf,
            pos: HEADER_LEN,
        })
    }

    /// Whether the listpack holds no entry.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.get(HEADER_LEN) == Some(&END)
    }

    /// Position of the next entry in the string, for errors.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// The next entry, or `None` at the end byte.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Value<'a>>, EncodingError> {
        let buf = self.buf;
        let start = self.pos;
        let enc = *buf.get(start).ok_or_else(|| {
            EncodingError::new(start, "an entry or the end byte", "the end of the string")
        })?;
        let (value, len) = if enc & 0x80 == 0 {
            (Value::Int(i64::from(enc & 0x7f)), 1)
        } else if enc & 0xc0 == 0x80 {
            let n = usize::from(enc & 0x3f);
            (
                Value::Bytes(slice(buf, start + 1, n, "the entry's string")?),
                1 + n,
            )
        } else if enc & 0xe0 == 0xc0 {
            let low = slice(buf, start + 1, 1, "a 13-bit integer")?[0];
            let raw = (i64::from(enc & 0x1f) << 8) | i64::from(low);
            let v = if raw >= 1 << 12 { raw - (1 << 13) } else { raw };
            (Value::Int(v), 2)
        } else if enc & 0xf0 == 0xe0 {
            let low = slice(buf, start + 1, 1, "a 12-bit string length")?[0];
            let n = (usize::from(enc & 0x0f) << 8) | usize::from(low);
            (
                Value::Bytes(slice(buf, start + 2, n, "the entry's string")?),
                2 + n,
            )
        } else {
            match enc {
                0xf0 => {
                    let b = slice(buf, start + 1, 4, "a 32-bit string length")?;
                    let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
                    (
                        Value::Bytes(slice(buf, start + 5, n, "the entry's string")?),
                        5 + n,
                    )
                }
                0xf1 => (
                    Value::Int(int_le::<2>(buf, start + 1, "a 16-bit integer")?),
                    3,
                ),
                0xf2 => (
                    Value::Int(int_le::<3>(buf, start + 1, "a 24-bit integer")?),
                    4,
                ),
                0xf3 => (
                    Value::Int(int_le::<4>(buf, start + 1, "a 32-bit integer")?),
                    5,
                ),
                0xf4 => (
                    Value::Int(int_le::<8>(buf, start + 1, "a 64-bit integer")?),
                    9,
                ),
                END => {
                    if start != buf.len() - 1 {
                        return Err(EncodingError::new(
                            start,
                            "the end byte at the end of the listpack",
                            "it earlier",
                        ));
                    }
                    return Ok(None);
                }
                _ => {
                    return Err(EncodingError::new(
                        start,
                        "a listpack entry encoding",
                        format!("0x{enc:02x}"),
                    ))
                }
            }
        };
        let end = start + len + backlen_size(len);
        if end >= buf.len() {
            return Err(EncodingError::new(
                start,
                "an entry that ends before the end byte",
                format!("one ending at {end}"),
            ));
        }
        self.pos = end;
        Ok(Some(value))
    }
}

/// Bytes of the backlen that follows an entry of `len` bytes (7 bits of length per byte).
fn backlen_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn listpack(entries: &[&[u8]]) -> Vec<u8> {
        let body: Vec<u8> = entries.concat();
        let total = 6 + body.len() + 1;
        let mut out = Vec::new();
        out.extend_from_slice(&(total as u32).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&body);
        out.push(0xff);
        out
    }

    fn all(lp: &[u8]) -> Vec<Value<'_>> {
        let mut it = Listpack::new(lp).unwrap();
        let mut got = Vec::new();
        while let Some(v) = it.next_entry().unwrap() {
            got.push(v);
        }
        got
    }

    #[test]
    fn strings_and_integers() {
        let lp = listpack(&[
            b"\x82hi\x03",
            b"\x05\x01",
            b"\xdf\xff\x02",
            b"\xf1\x39\x30\x03",
            b"\xf2\xff\xff\xff\x04",
            b"\xf3\x00\x00\x00\x80\x05",
            b"\xf4\x01\x00\x00\x00\x00\x00\x00\x00\x09",
        ]);
        assert_eq!(
            all(&lp),
            vec![
                Value::Bytes(b"hi"),
                Value::Int(5),
                Value::Int(-1),
                Value::Int(12345),
                Value::Int(-1),
                Value::Int(i64::from(i32::MIN)),
                Value::Int(1)
            ]
        );
    }

    #[test]
    fn a_long_string_has_a_two_byte_backlen() {
        let mut entry = vec![0xe0, 200];
        entry.extend(std::iter::repeat_n(b'x', 200));
        entry.extend([0x01, 0x81]);
        let lp = listpack(&[&entry, b"\x07\x01"]);
        let got = all(&lp);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Value::Int(7));
    }

    #[test]
    fn truncated_entries_are_errors() {
        let lp = listpack(&[b"\x85hi\x03"]);
        assert!(Listpack::new(&lp).unwrap().next_entry().is_err());
        assert!(Listpack::new(&lp[1..]).is_err());
    }
}
