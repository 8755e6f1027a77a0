//! The RDB's primitive encodings read from a buffer that may end anywhere: lengths (6, 14, 32 and 64-bit),
//! strings (raw, `INT8/16/32`, LZF), doubles (as text and binary), millisecond times and stream IDs.
//!
//! Every read either succeeds, or stops with [`Halt::Incomplete`] when the buffer ends first (the reader then
//! waits for more bytes and retries the whole step), or fails with an error naming the offset.

use super::error::{show_byte, Halt, RdbError};
use super::event::{StreamId, Value};
use super::lzf;
use super::Limits;

/// A length, or the special string encoding that the same first byte may announce instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Length {
    Len(u64),
    /// `11xxxxxx`: 0 = INT8, 1 = INT16, 2 = INT32, 3 = LZF.
    Special(u8),
}

const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// A read position in a buffer whose first byte is at stream offset `base`.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pub(crate) pos: usize,
    base: u64,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], pos: usize, base: u64) -> Self {
        Cursor { buf, pos, base }
    }

    /// Stream offset of the next byte.
    pub(crate) fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Halt> {
        let end = self.pos.checked_add(n).ok_or(Halt::Incomplete)?;
        let bytes = self.buf.get(self.pos..end).ok_or(Halt::Incomplete)?;
        self.pos = end;
        Ok(bytes)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Halt> {
        let b = *self.buf.get(self.pos).ok_or(Halt::Incomplete)?;
        self.pos += 1;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Halt> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u32_le(&mut self) -> Result<u32, Halt> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64_le(&mut self) -> Result<u64, Halt> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A millisecond time (`rdbLoadMillisecondTime`): 8 bytes, little-endian. Before version 9 Redis wrote it in
    /// the host's byte order; every platform Redis ships on is little-endian, so this reads those too.
    pub(crate) fn millis(&mut self) -> Result<i64, Halt> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A stream ID stored raw: 16 bytes, milliseconds then sequence, big-endian.
    pub(crate) fn raw_stream_id(&mut self) -> Result<StreamId, Halt> {
        let bytes: [u8; 16] = self.array()?;
        Ok(stream_id_from_bytes(&bytes))
    }

    /// A length or the announcement of a specially encoded string.
    pub(crate) fn length(&mut self) -> Result<Length, Halt> {
        let at = self.offset();
        let first = self.u8()?;
        Ok(match first >> 6 {
            0 => Length::Len(u64::from(first & 0x3f)),
            1 => Length::Len((u64::from(first & 0x3f) << 8) | u64::from(self.u8()?)),
            2 => match first {
                0x80 => Length::Len(u64::from(u32::from_be_bytes(self.array()?))),
                0x81 => Length::Len(u64::from_be_bytes(self.array()?)),
                _ => {
                    return Err(RdbError::Unexpected {
                        offset: at,
                        expected: "a length (0x80 or 0x81 after the 10 prefix)",
                        found: show_byte(first),
                    }
                    .into())
                }
            },
            _ => Length::Special(first & 0x3f),
        })
    }

    /// A plain length; `what` says what it counts, for the error if it is a string encoding instead.
    pub(crate) fn len(&mut self, what: &'static str) -> Result<u64, Halt> {
        let at = self.offset();
        match self.length()? {
            Length::Len(n) => Ok(n),
            Length::Special(kind) => Err(RdbError::Unexpected {
                offset: at,
                expected: what,
                found: format!("string encoding {kind}"),
            }
            .into()),
        }
    }

    /// A string, decompressing LZF into `scratch` when needed. `what` names it for errors and limits.
    pub(crate) fn string<'s>(
        &mut self,
        what: &'static str,
        limits: &Limits,
        scratch: &'s mut Vec<u8>,
    ) -> Result<Value<'s>, Halt>
    where
        'a: 's,
    {
        self.raw_string(what, limits)?.decode(scratch)
    }

    /// A string whose LZF form, if it has one, is not decompressed yet: see [`RawString`].
    pub(crate) fn raw_string(
        &mut self,
        what: &'static str,
        limits: &Limits,
    ) -> Result<RawString<'a>, Halt> {
        let at = self.offset();
        match self.length()? {
            Length::Len(n) => {
                check_limit(at, what, n, limits.max_string_len)?;
                Ok(RawString::Ready(Value::Bytes(self.take(n as usize)?)))
            }
            Length::Special(ENC_INT8) => {
                Ok(RawString::Ready(Value::Int(i64::from(self.u8()? as i8))))
            }
            Length::Special(ENC_INT16) => Ok(RawString::Ready(Value::Int(i64::from(
                i16::from_le_bytes(self.array()?),
            )))),
            Length::Special(ENC_INT32) => Ok(RawString::Ready(Value::Int(i64::from(
                i32::from_le_bytes(self.array()?),
            )))),
            Length::Special(ENC_LZF) => {
                Ok(RawString::Lzf(self.lzf(at, what, limits.max_string_len)?))
            }
            Length::Special(kind) => Err(RdbError::Unexpected {
                offset: at,
                expected: "a string encoding (0 to 3 after the 11 prefix)",
                found: format!("encoding {kind}"),
            }
            .into()),
        }
    }

    /// A string holding a compact encoding (ziplist, listpack, intset, zipmap), bounded by
    /// [`Limits::max_encoded_len`]. Integer encodings are not allowed here.
    pub(crate) fn blob<'s>(
        &mut self,
        what: &'static str,
        limits: &Limits,
        scratch: &'s mut Vec<u8>,
    ) -> Result<&'s [u8], Halt>
    where
        'a: 's,
    {
        let at = self.offset();
        match self.length()? {
            Length::Len(n) => {
                check_limit(at, what, n, limits.max_encoded_len)?;
                self.take(n as usize)
            }
            Length::Special(ENC_LZF) => {
                self.lzf(at, what, limits.max_encoded_len)?.inflate(scratch)
            }
            Length::Special(kind) => Err(RdbError::Unexpected {
                offset: at,
                expected: what,
                found: format!("string encoding {kind}, not raw or LZF bytes"),
            }
            .into()),
        }
    }

    fn lzf(&mut self, at: u64, what: &'static str, limit: usize) -> Result<Compressed<'a>, Halt> {
        let clen = self.len("an LZF compressed length")?;
        let ulen = self.len("an LZF uncompressed length")?;
        check_limit(at, what, ulen, limit)?;
        check_limit(at, what, clen, limit)?;
        let data_at = self.offset();
        let data = self.take(clen as usize)?;
        Ok(Compressed {
            data,
            ulen: ulen as usize,
            data_at,
        })
    }

    /// A double as text (`ZSET` version 1 scores): a length byte (253 NaN, 254 +inf, 255 -inf) and ASCII.
    pub(crate) fn text_double(&mut self) -> Result<f64, Halt> {
        let at = self.offset();
        let len = self.u8()?;
        match len {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let text = self.take(n as usize)?;
                parse_double(text).ok_or_else(|| {
                    Halt::Fail(RdbError::Unexpected {
                        offset: at + 1,
                        expected: "a score as decimal text",
                        found: format!("{:?}", String::from_utf8_lossy(text)),
                    })
                })
            }
        }
    }

    /// A binary double, little-endian (`ZSET_2` scores, module doubles).
    pub(crate) fn binary_double(&mut self) -> Result<f64, Halt> {
        Ok(f64::from_le_bytes(self.array()?))
    }
}

/// A string read from the buffer but, if LZF-compressed, not decompressed yet. A step that reads several strings
/// decompresses them only once all are present: retried while a later, big string is still arriving, it never
/// decompresses the earlier ones again and again.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RawString<'a> {
    Ready(Value<'a>),
    Lzf(Compressed<'a>),
}

impl<'a> RawString<'a> {
    /// The string, decompressed into `scratch` if needed.
    pub(crate) fn decode<'s>(self, scratch: &'s mut Vec<u8>) -> Result<Value<'s>, Halt>
    where
        'a: 's,
    {
        match self {
            RawString::Ready(v) => Ok(v),
            RawString::Lzf(c) => Ok(Value::Bytes(c.inflate(scratch)?)),
        }
    }
}

/// LZF-compressed bytes, their uncompressed length (checked against the limits) and their stream offset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Compressed<'a> {
    data: &'a [u8],
    ulen: usize,
    data_at: u64,
}

impl<'a> Compressed<'a> {
    fn inflate<'s>(self, scratch: &'s mut Vec<u8>) -> Result<&'s [u8], Halt>
    where
        'a: 's,
    {
        lzf::decompress(self.data, self.ulen, scratch).map_err(|e| {
            RdbError::Unexpected {
                offset: self.data_at + e.at as u64,
                expected: e.expected,
                found: "LZF data that does not decompress".to_string(),
            }
            .into()
        })
    }
}

/// A stream ID from its 16-byte big-endian form.
pub(crate) fn stream_id_from_bytes(bytes: &[u8; 16]) -> StreamId {
    let mut ms = [0u8; 8];
    let mut seq = [0u8; 8];
    ms.copy_from_slice(&bytes[..8]);
    seq.copy_from_slice(&bytes[8..]);
    StreamId {
        ms: u64::from_be_bytes(ms),
        seq: u64::from_be_bytes(seq),
    }
}

/// A double as Redis prints it (`%.17g`, `inf`, `-inf`, `nan`).
pub(crate) fn parse_double(text: &[u8]) -> Option<f64> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}

pub(crate) fn check_limit(
    offset: u64,
    what: &'static str,
    len: u64,
    limit: usize,
) -> Result<(), Halt> {
    if len > limit as u64 {
        return Err(RdbError::Limit {
            offset,
            what,
            len,
            limit: limit as u64,
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(buf: &[u8]) -> Cursor<'_> {
        Cursor::new(buf, 0, 100)
    }

    #[test]
    fn lengths_of_every_width() {
        assert_eq!(cur(&[0x05]).length().unwrap(), Length::Len(5));
        assert_eq!(cur(&[0x41, 0x02]).length().unwrap(), Length::Len(258));
        assert_eq!(
            cur(&[0x80, 0, 1, 0, 0]).length().unwrap(),
            Length::Len(65536)
        );
        assert_eq!(
            cur(&[0x81, 0, 0, 0, 1, 0, 0, 0, 0]).length().unwrap(),
            Length::Len(1 << 32)
        );
        assert_eq!(cur(&[0xc3]).length().unwrap(), Length::Special(3));
        assert!(matches!(cur(&[0x41]).length(), Err(Halt::Incomplete)));
        assert!(matches!(cur(&[0x82]).length(), Err(Halt::Fail(_))));
    }

    #[test]
    fn integer_and_lzf_strings() {
        let limits = Limits::default();
        let mut scratch = Vec::new();
        assert_eq!(
            cur(&[0xc0, 0xfe])
                .string("s", &limits, &mut scratch)
                .unwrap(),
            Value::Int(-2)
        );
        assert_eq!(
            cur(&[0xc1, 0x39, 0x30])
                .string("s", &limits, &mut scratch)
                .unwrap(),
            Value::Int(12345)
        );
        assert_eq!(
            cur(&[0xc2, 0, 0, 0, 0x80])
                .string("s", &limits, &mut scratch)
                .unwrap(),
            Value::Int(i64::from(i32::MIN))
        );
        let lzf = [0xc3, 6, 9, 2, b'a', b'b', b'c', 4 << 5, 2];
        assert_eq!(
            cur(&lzf).string("s", &limits, &mut scratch).unwrap(),
            Value::Bytes(b"abcabcabc")
        );
    }

    #[test]
    fn limits_are_checked_before_reading_the_bytes() {
        let limits = Limits {
            max_string_len: 10,
            ..Limits::default()
        };
        let mut scratch = Vec::new();
        let err = cur(&[0x0b]).string("a key", &limits, &mut scratch);
        match err {
            Err(Halt::Fail(e)) => assert_eq!(
                e.to_string(),
                "RDB offset 100: a key of 11 bytes exceeds the limit of 10"
            ),
            _ => panic!("expected a limit error"),
        }
    }

    #[test]
    fn text_doubles() {
        assert_eq!(cur(b"\x031.5").text_double().unwrap(), 1.5);
        assert_eq!(cur(&[254]).text_double().unwrap(), f64::INFINITY);
        assert!(cur(&[253]).text_double().unwrap().is_nan());
        assert!(matches!(cur(b"\x02x1").text_double(), Err(Halt::Fail(_))));
    }
}
