//! The saved view's encoding at the byte level: LEB128 varints (most numbers in a view are small: lengths, counts,
//! offsets' low bits), length-prefixed byte strings and little-endian `f64`s, written into a `Vec` and read back
//! through a cursor that checks every length against the bytes left before taking them, so that a hostile record
//! can never make the reader allocate more than its own size, or read past its end.

use super::SavedViewError;

/// Longest LEB128 encoding of a `u64`.
const MAX_VARINT_BYTES: usize = 10;

pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(super) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub(super) fn put_f64(out: &mut Vec<u8>, value: f64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Reads a saved view front to back; every error names the byte offset where the reading stopped.
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, at: 0 }
    }

    pub(super) fn at(&self) -> usize {
        self.at
    }

    pub(super) fn is_empty(&self) -> bool {
        self.at == self.bytes.len()
    }

    pub(super) fn malformed(&self, expected: &'static str) -> SavedViewError {
        SavedViewError::Malformed {
            at: self.at,
            expected,
        }
    }

    pub(super) fn take(
        &mut self,
        len: usize,
        expected: &'static str,
    ) -> Result<&'a [u8], SavedViewError> {
        if len > self.bytes.len() - self.at {
            return Err(self.malformed(expected));
        }
        let taken = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(taken)
    }

    pub(super) fn byte(&mut self, expected: &'static str) -> Result<u8, SavedViewError> {
        Ok(self.take(1, expected)?[0])
    }

    pub(super) fn varint(&mut self, expected: &'static str) -> Result<u64, SavedViewError> {
        let start = self.at;
        let mut value: u64 = 0;
        for shift in 0..MAX_VARINT_BYTES {
            let byte = self.byte(expected)?;
            let bits = u64::from(byte & 0x7f);
            if shift == MAX_VARINT_BYTES - 1 && bits > 1 {
                break;
            }
            value |= bits << (7 * shift);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        self.at = start;
        Err(self.malformed(expected))
    }

    /// A count of things that each take at least one byte, so it can be no larger than the bytes left, nor than
    /// `limit`.
    pub(super) fn count(
        &mut self,
        limit: usize,
        expected: &'static str,
    ) -> Result<usize, SavedViewError> {
        let start = self.at;
        let count = self.varint(expected)?;
        if count > limit as u64 || count > (self.bytes.len() - self.at) as u64 {
            self.at = start;
            return Err(self.malformed(expected));
        }
        Ok(count as usize)
    }

    pub(super) fn bytes(&mut self, expected: &'static str) -> Result<&'a [u8], SavedViewError> {
        let start = self.at;
        let len = self.varint(expected)?;
        if len > (self.bytes.len() - self.at) as u64 {
            self.at = start;
            return Err(self.malformed(expected));
        }
        self.take(len as usize, expected)
    }

    pub(super) fn f64(&mut self, expected: &'static str) -> Result<f64, SavedViewError> {
        let mut bits = [0u8; 8];
        bits.copy_from_slice(self.take(8, expected)?);
        Ok(f64::from_le_bytes(bits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_refuse_overlong_encodings() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(Cursor::new(&out).varint("n"), Ok(value));
        }
        // Eleven continuation bytes, and a tenth byte carrying more than u64's last bit.
        assert!(Cursor::new(&[0xff; 11]).varint("n").is_err());
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert_eq!(
            Cursor::new(&too_big).varint("n"),
            Err(SavedViewError::Malformed {
                at: 0,
                expected: "n"
            })
        );
    }

    #[test]
    fn a_length_past_the_end_is_refused_where_it_starts() {
        let mut out = Vec::new();
        put_varint(&mut out, 5);
        out.extend_from_slice(b"abc");
        let mut cursor = Cursor::new(&out);
        assert_eq!(
            cursor.bytes("a key"),
            Err(SavedViewError::Malformed {
                at: 0,
                expected: "a key"
            })
        );
        assert_eq!(
            Cursor::new(&[0xff, 0xff, 0xff, 0xff, 0x0f]).count(usize::MAX, "items"),
            Err(SavedViewError::Malformed {
                at: 0,
                expected: "items"
            })
        );
    }
}
