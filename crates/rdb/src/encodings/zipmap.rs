//! Zipmaps (hashes before Redis 2.6): `<count u8>` then `<len><key><len><free u8><value><free bytes>` pairs, then
//! `0xff`. A length is one byte below 254, or `0xfe` and 4 bytes.

use super::{slice, EncodingError};

const END: u8 = 0xff;
const BIG_LEN: u8 = 0xfe;

/// A field and its value.
type Pair<'a> = (&'a [u8], &'a [u8]);

/// A zipmap being walked.
pub(crate) struct Zipmap<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Zipmap<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Result<Self, EncodingError> {
        slice(buf, 0, 2, "a zipmap count and end byte")?;
        Ok(Zipmap { buf, pos: 1 })
    }

    fn length(&mut self) -> Result<usize, EncodingError> {
        let b = slice(self.buf, self.pos, 1, "a zipmap length")?[0];
        if b == BIG_LEN {
            let w = slice(self.buf, self.pos + 1, 4, "a 32-bit zipmap length")?;
            self.pos += 5;
            return Ok(u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as usize);
        }
        self.pos += 1;
        Ok(usize::from(b))
    }

    /// The next field and value, or `None` at the end byte.
    pub(crate) fn next_pair(&mut self) -> Result<Option<Pair<'a>>, EncodingError> {
        let first = slice(self.buf, self.pos, 1, "a field or the end byte")?[0];
        if first == END {
            if self.pos != self.buf.len() - 1 {
                return Err(EncodingError::new(
                    self.pos,
                    "the end byte at the end of the zipmap",
                    "it earlier",
                ));
            }
            return Ok(None);
        }
        let key_len = self.length()?;
        let key = slice(self.buf, self.pos, key_len, "the field")?;
        self.pos += key_len;
        let value_len = self.length()?;
        let free = usize::from(slice(self.buf, self.pos, 1, "the free byte count")?[0]);
        self.pos += 1;
        let value = slice(self.buf, self.pos, value_len, "the value")?;
        self.pos += value_len;
        slice(self.buf, self.pos, free, "the free bytes")?;
        self.pos += free;
        Ok(Some((key, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_with_free_bytes_and_big_lengths() {
        let mut zm = vec![2, 1, b'a', 2, 1, b'x', b'y', 0];
        zm.extend([1, b'b', 0xfe, 3, 0, 0, 0, 0, b'1', b'2', b'3', 0xff]);
        let mut it = Zipmap::new(&zm).unwrap();
        assert_eq!(it.next_pair().unwrap(), Some((&b"a"[..], &b"xy"[..])));
        assert_eq!(it.next_pair().unwrap(), Some((&b"b"[..], &b"123"[..])));
        assert_eq!(it.next_pair().unwrap(), None);
        let mut cut = Zipmap::new(&zm[..9]).unwrap();
        assert!(cut.next_pair().unwrap().is_some());
        assert!(cut.next_pair().is_err());
    }
}
