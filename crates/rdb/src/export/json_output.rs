//! The output buffer of `replicast rdb`'s JSON Lines. The export writes a great many pieces of a few bytes
//! (punctuation, short keys and members, numbers) and, for the binary values that make up most dumps, base64 text:
//! all of it goes into one buffer, allocated and zeroed once, that is handed to the writer (standard output) when
//! full; base64 is encoded straight into its free part, with no intermediate copy (std's `BufWriter` would need
//! the text encoded elsewhere first, into a buffer zeroed for every value).

use std::io::{self, Write};

/// Smallest buffer: room for the largest piece written at once (see [`JsonOutput::room`]).
pub const MIN_JSON_BUFFER: usize = 64 * 1024;

/// A write buffer of fixed size in front of `W`. What is still buffered is written out on [`Write::flush`], and
/// on drop (errors then ignored, as `BufWriter` does), so that a failing export still prints the keys it read.
pub struct JsonOutput<W: Write> {
    buf: Box<[u8]>,
    used: usize,
    inner: W,
}

impl<W: Write> JsonOutput<W> {
    /// A buffer of `capacity` bytes (at least [`MIN_JSON_BUFFER`]) in front of `inner`.
    pub fn with_capacity(capacity: usize, inner: W) -> Self {
        JsonOutput {
            buf: vec![0; capacity.max(MIN_JSON_BUFFER)].into_boxed_slice(),
            used: 0,
            inner,
        }
    }

    /// Appends `bytes`, handing the buffer to the writer first when they do not fit.
    #[inline]
    pub(super) fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.buf.get_mut(self.used..self.used + bytes.len()) {
            Some(free) => {
                free.copy_from_slice(bytes);
                self.used += bytes.len();
                Ok(())
            }
            None => self.put_slow(bytes),
        }
    }

    #[cold]
    fn put_slow(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_buffered()?;
        if bytes.len() > self.buf.len() {
            return self.inner.write_all(bytes);
        }
        self.buf[..bytes.len()].copy_from_slice(bytes);
        self.used = bytes.len();
        Ok(())
    }

    /// The buffer's free part, at least `len` bytes of it (`len` at most [`MIN_JSON_BUFFER`]), to write into
    /// directly; [`JsonOutput::advance`] then says how much was written.
    #[inline]
    pub(super) fn room(&mut self, len: usize) -> io::Result<&mut [u8]> {
        debug_assert!(len <= MIN_JSON_BUFFER);
        if self.buf.len() - self.used < len {
            self.write_buffered()?;
        }
        Ok(&mut self.buf[self.used..])
    }

    /// Counts `len` bytes written into [`JsonOutput::room`] as buffered.
    #[inline]
    pub(super) fn advance(&mut self, len: usize) {
        self.used = (self.used + len).min(self.buf.len());
    }

    fn write_buffered(&mut self) -> io::Result<()> {
        let used = std::mem::take(&mut self.used);
        self.inner.write_all(&self.buf[..used])
    }
}

impl<W: Write> Write for JsonOutput<W> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.put(bytes)?;
        Ok(bytes.len())
    }

    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.put(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_buffered()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for JsonOutput<W> {
    fn drop(&mut self) {
        let _ = self.write_buffered();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_larger_than_the_buffer_and_across_its_end_arrive_in_order() {
        let mut written = Vec::new();
        let mut expected = Vec::new();
        {
            let mut out = JsonOutput::with_capacity(0, &mut written);
            let big: Vec<u8> = (0..3 * MIN_JSON_BUFFER).map(|i| (i % 251) as u8).collect();
            for piece in [
                &b"head"[..],
                &big,
                &big[..MIN_JSON_BUFFER - 1],
                b"x",
                &big[..7],
            ] {
                out.put(piece).unwrap();
                expected.extend_from_slice(piece);
            }
            let room = out.room(100).unwrap();
            room[..3].copy_from_slice(b"abc");
            out.advance(3);
            expected.extend_from_slice(b"abc");
            out.flush().unwrap();
        }
        assert_eq!(written, expected);
    }

    #[test]
    fn what_is_buffered_is_written_on_drop() {
        let mut written = Vec::new();
        JsonOutput::with_capacity(0, &mut written)
            .put(b"{}\n")
            .unwrap();
        assert_eq!(written, b"{}\n");
    }
}
