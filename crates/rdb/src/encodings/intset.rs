//! Intsets: `<encoding u32><length u32>` then `length` sorted integers of `encoding` (2, 4 or 8) bytes each,
//! little-endian.

use super::{int_le, slice, EncodingError};

/// An intset being walked.
pub(crate) struct Intset<'a> {
    buf: &'a [u8],
    width: usize,
    next: usize,
    len: usize,
}

impl<'a> Intset<'a> {
    /// Checks the header against the string's length.
    pub(crate) fn new(buf: &'a [u8]) -> Result<Self, EncodingError> {
        let header = slice(buf, 0, 8, "an intset header")?;
        let width = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if !matches!(width, 2 | 4 | 8) {
            return Err(EncodingError::new(
                0,
                "an intset encoding of 2, 4 or 8",
                width.to_string(),
            ));
        }
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if len.checked_mul(width).and_then(|n| n.checked_add(8)) != Some(buf.len()) {
            return Err(EncodingError::new(
                4,
                "an intset length that fills the string",
                format!("{len} × {width} bytes in {} bytes", buf.len()),
            ));
        }
        Ok(Intset {
            buf,
            width,
            next: 0,
            len,
        })
    }

    /// The next integer, or `None` after the last.
    pub(crate) fn next_int(&mut self) -> Result<Option<i64>, EncodingError> {
        if self.next == self.len {
            return Ok(None);
        }
        let at = 8 + self.next * self.width;
        self.next += 1;
        let v = match self.width {
            2 => int_le::<2>(self.buf, at, "a 16-bit integer")?,
            4 => int_le::<4>(self.buf, at, "a 32-bit integer")?,
            _ => int_le::<8>(self.buf, at, "a 64-bit integer")?,
        };
        Ok(Some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_width() {
        let mut buf = vec![2, 0, 0, 0, 2, 0, 0, 0];
        buf.extend([0xff, 0xff, 0x39, 0x30]);
        let mut it = Intset::new(&buf).unwrap();
        assert_eq!(it.next_int().unwrap(), Some(-1));
        assert_eq!(it.next_int().unwrap(), Some(12345));
        assert_eq!(it.next_int().unwrap(), None);
        assert!(Intset::new(&buf[..11]).is_err());
        let bad = [3, 0, 0, 0, 0, 0, 0, 0];
        assert!(Intset::new(&bad).is_err());
    }
}
