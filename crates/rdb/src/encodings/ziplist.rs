//! Ziplists: `<zlbytes u32><zltail u32><zllen u16>` then entries, then `0xff`. Each entry is its previous entry's
//! length (1 byte, or `0xfe` and 4 bytes), an encoding, and the data: strings of 6, 14 or 32-bit length, or
//! integers of 8, 16, 24, 32 or 64 bits, or 0 to 12 in the encoding byte itself.

use super::{int_le, slice, EncodingError};
use crate::event::Value;

const HEADER_LEN: usize = 10;
const END: u8 = 0xff;

/// A ziplist being walked.
pub(crate) struct Ziplist<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Ziplist<'a> {
    /// Checks the header against the string's length.
    pub(crate) fn new(buf: &'a [u8]) -> Result<Self, EncodingError> {
        let header = slice(buf, 0, HEADER_LEN + 1, "a ziplist header and end byte")?;
        let zlbytes = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        if zlbytes as usize != buf.len() {
            return Err(EncodingError::new(
                0,
                "a ziplist size equal to the string's length",
                format!("{zlbytes} for {} bytes", buf.len()),
            ));
        }
        if buf[buf.len() - 1] != END {
            return Err(EncodingError::new(
                buf.len() - 1,
                "the ziplist end byte 0xff",
                format!("0x{:02x}", buf[buf.len() - 1]),
            ));
        }
        Ok(Ziplist {
            buf,
            pos: HEADER_LEN,
        })
    }

    /// The next entry, or `None` at the end byte.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Value<'a>>, EncodingError> {
        let buf = self.buf;
        let start = self.pos;
        let first = *buf.get(start).ok_or_else(|| {
            EncodingError::new(start, "an entry or the end byte", "the end of the string")
        })?;
        if first == END {
            if start != buf.len() - 1 {
                return Err(EncodingError::new(
                    start,
                    "the end byte at the end of the ziplist",
                    "it earlier",
                ));
            }
            return Ok(None);
        }
        let mut pos = start + if first == 0xfe { 5 } else { 1 };
        let enc = *slice(buf, pos, 1, "an entry encoding")?
            .first()
            .unwrap_or(&0);
        pos += 1;
        let value = match enc >> 6 {
            0 => {
                let len = usize::from(enc & 0x3f);
                let s = slice(buf, pos, len, "the entry's string")?;
                pos += len;
                Value::Bytes(s)
            }
            1 => {
                let low = slice(buf, pos, 1, "a 14-bit string length")?[0];
                pos += 1;
                let len = (usize::from(enc & 0x3f) << 8) | usize::from(low);
                let s = slice(buf, pos, len, "the entry's string")?;
                pos += len;
                Value::Bytes(s)
            }
            2 => {
                let b = slice(buf, pos, 4, "a 32-bit string length")?;
                pos += 4;
                let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let s = slice(buf, pos, len, "the entry's string")?;
                pos += len;
                Value::Bytes(s)
            }
            _ => {
                let (n, v) = match enc {
                    0xc0 => (2, int_le::<2>(buf, pos, "a 16-bit integer")?),
                    0xd0 => (4, int_le::<4>(buf, pos, "a 32-bit integer")?),
                    0xe0 => (8, int_le::<8>(buf, pos, "a 64-bit integer")?),
                    0xf0 => (3, int_le::<3>(buf, pos, "a 24-bit integer")?),
                    0xfe => (1, int_le::<1>(buf, pos, "an 8-bit integer")?),
                    0xf1..=0xfd => (0, i64::from(enc & 0x0f) - 1),
                    _ => {
                        return Err(EncodingError::new(
                            pos - 1,
                            "a ziplist entry encoding",
                            format!("0x{enc:02x}"),
                        ))
                    }
                };
                pos += n;
                Value::Int(v)
            }
        };
        self.pos = pos;
        Ok(Some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ziplist(entries: &[&[u8]]) -> Vec<u8> {
        let body: Vec<u8> = entries.concat();
        let total = 10 + body.len() + 1;
        let mut out = Vec::new();
        out.extend_from_slice(&(total as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&body);
        out.push(0xff);
        out
    }

    #[test]
    fn strings_and_every_integer_width() {
        let zl = ziplist(&[
            b"\x00\x02hi",
            b"\x04\xf1",
            b"\x02\xfe\x85",
            b"\x03\xc0\x39\x30",
            b"\x04\xf0\xff\xff\xff",
            b"\x05\xd0\x00\x00\x00\x80",
            b"\x06\xe0\x01\x00\x00\x00\x00\x00\x00\x00",
        ]);
        let mut it = Ziplist::new(&zl).unwrap();
        let mut got = Vec::new();
        while let Some(v) = it.next_entry().unwrap() {
            got.push(v);
        }
        assert_eq!(
            got,
            vec![
                Value::Bytes(b"hi"),
                Value::Int(0),
                Value::Int(-123),
                Value::Int(12345),
                Value::Int(-1),
                Value::Int(i64::from(i32::MIN)),
                Value::Int(1)
            ]
        );
    }

    #[test]
    fn bad_sizes_and_encodings_are_errors() {
        let mut zl = ziplist(&[b"\x00\x05hi"]);
        assert!(Ziplist::new(&zl[..zl.len() - 1]).is_err());
        let mut it = Ziplist::new(&zl).unwrap();
        assert!(it.next_entry().is_err());
        zl = ziplist(&[b"\x00\xff"]);
        let mut it = Ziplist::new(&zl).unwrap();
        assert!(it.next_entry().is_err());
    }
}
