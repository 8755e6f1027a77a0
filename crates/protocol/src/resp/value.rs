//! Replies: every RESP2 and RESP3 value, read from a buffer with strings borrowed from it.
//!
//! [`parse_value`] reads one whole value in a single pass. [`scan_value`] only checks that a value is complete,
//! and can resume where an earlier call ran out of bytes ([`ScanState`]); [`super::ValueReader`] uses it to
//! complete a value split across chunks without reading its start again. Neither recurses: open aggregates are
//! an explicit stack, at most [`Limits::max_depth`] deep.

use super::command::Frame;
use super::error::{limit, unexpected, RespError};
use super::limits::Limits;
use super::line::{parse_integer, read_length, read_line};
use crate::quote::quoted_lossy;
use crate::text;

/// One reply value. Strings are borrowed from the input and binary-safe where RESP allows binary.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// `+<text>`: a simple string, such as `OK`.
    Simple(&'a [u8]),
    /// `-<text>`: an error, such as `ERR unknown command`.
    Error(&'a [u8]),
    /// `!<len>`: a RESP3 blob error.
    BlobError(&'a [u8]),
    /// `:<n>`: a signed 64-bit integer.
    Integer(i64),
    /// `$<len>`: a bulk string.
    Bulk(&'a [u8]),
    /// `$-1`: RESP2's null bulk string.
    NullBulk,
    /// `*-1`: RESP2's null array.
    NullArray,
    /// `_`: RESP3's null.
    Null,
    /// `,<float>`: a RESP3 double, including `inf`, `-inf` and `nan`.
    Double(f64),
    /// `#t` or `#f`: a RESP3 boolean.
    Boolean(bool),
    /// `(<digits>`: a RESP3 big number, as its decimal text (an optional `-`, then digits).
    BigNumber(&'a [u8]),
    /// `=<len>`: a RESP3 verbatim string: a 3-byte format such as `txt` or `mkd`, and the text.
    Verbatim { format: &'a [u8], text: &'a [u8] },
    /// `*<n>`: an array.
    Array(Vec<Value<'a>>),
    /// `%<n>`: a RESP3 map, its pairs in the order sent.
    Map(Vec<(Value<'a>, Value<'a>)>),
    /// `~<n>`: a RESP3 set, its members in the order sent.
    Set(Vec<Value<'a>>),
    /// `><n>`: a RESP3 push (out-of-band data such as pub/sub messages).
    Push(Vec<Value<'a>>),
    /// `|<n>`: RESP3 attributes and the value they describe, which follows them on the wire.
    Attribute {
        attributes: Vec<(Value<'a>, Value<'a>)>,
        value: Box<Value<'a>>,
    },
}

/// Reads the value at the front of `buf`, whose first byte is at stream offset `offset`; returns it and its
/// length in bytes, or `Ok(None)` while `buf` holds only part of it.
pub fn parse_value<'a>(
    buf: &'a [u8],
    offset: u64,
    limits: &Limits,
) -> Result<Option<(Value<'a>, usize)>, RespError> {
    let mut open: Vec<Partial<'a>> = Vec::new();
    let mut pos = 0;
    loop {
        let (head, next) = match read_head(buf, pos, offset, limits)? {
            Read::Done(head, next) => (head, next),
            Read::Need(_) => return Ok(None),
        };
        let mut value = match head {
            Head::Scalar(value) => value,
            Head::Aggregate { kind, elements: 0 } => kind.finish(Vec::new()),
            Head::Aggregate { kind, elements } => {
                check_depth(open.len(), offset + pos as u64, limits)?;
                // `elements` is within the limit but still the input's word: each element takes at least 3
                // bytes, so reserve only what the bytes at hand could hold.
                let room = (buf.len() - next) / 3 + 1;
                open.push(Partial {
                    kind,
                    remaining: elements,
                    items: Vec::with_capacity(elements.min(room)),
                });
                pos = next;
                continue;
            }
        };
        pos = next;
        // A complete element: add it to its aggregate, and close every aggregate it completes.
        loop {
            let Some(top) = open.last_mut() else {
                return Ok(Some((value, pos)));
            };
            top.items.push(value);
            top.remaining -= 1;
            if top.remaining > 0 {
                break;
            }
            let Some(done) = open.pop() else { break };
            value = done.kind.finish(done.items);
        }
    }
}

/// How far checking an incomplete value got: the start of the first element not yet complete, and how many
/// elements each open aggregate still expects, outermost first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ScanState {
    pos: usize,
    open: Vec<usize>,
}

/// Checks whether the value at the front of `buf` is complete, resuming from `state`.
pub(crate) fn scan_value(
    buf: &[u8],
    offset: u64,
    limits: &Limits,
    state: &mut ScanState,
) -> Result<Frame, RespError> {
    loop {
        let (head, next) = match read_head(buf, state.pos, offset, limits)? {
            Read::Done(head, next) => (head, next),
            Read::Need(needed) => return Ok(Frame::Incomplete { needed }),
        };
        if let Head::Aggregate { elements, .. } = head {
            if elements > 0 {
                check_depth(state.open.len(), offset + state.pos as u64, limits)?;
                state.open.push(elements);
                state.pos = next;
                continue;
            }
        }
        state.pos = next;
        loop {
            let Some(remaining) = state.open.last_mut() else {
                return Ok(Frame::Complete(state.pos));
            };
            *remaining -= 1;
            if *remaining > 0 {
                break;
            }
            state.open.pop();
        }
    }
}

fn check_depth(open: usize, offset: u64, limits: &Limits) -> Result<(), RespError> {
    if open >= limits.max_depth {
        return Err(limit(
            offset,
            "nesting depth",
            open as u64 + 1,
            limits.max_depth,
        ));
    }
    Ok(())
}

/// The kinds of aggregate values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Array,
    Map,
    Set,
    Push,
    Attribute,
}

impl Kind {
    /// The aggregate made of `items`, which holds exactly the elements its header announced.
    fn finish(self, mut items: Vec<Value<'_>>) -> Value<'_> {
        match self {
            Kind::Array => Value::Array(items),
            Kind::Set => Value::Set(items),
            Kind::Push => Value::Push(items),
            Kind::Map => Value::Map(pairs(items)),
            Kind::Attribute => {
                // The described value came last; an empty `items` cannot happen (an attribute has 2n + 1).
                let value = items.pop().unwrap_or(Value::Null);
                Value::Attribute {
                    attributes: pairs(items),
                    value: Box::new(value),
                }
            }
        }
    }
}

fn pairs(items: Vec<Value<'_>>) -> Vec<(Value<'_>, Value<'_>)> {
    let mut pairs = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(key), Some(value)) = (items.next(), items.next()) {
        pairs.push((key, value));
    }
    pairs
}

/// An aggregate being built.
struct Partial<'a> {
    kind: Kind,
    remaining: usize,
    items: Vec<Value<'a>>,
}

/// The start of one value: a whole scalar, or an aggregate's header.
enum Head<'a> {
    Scalar(Value<'a>),
    /// An aggregate of `elements` values on the wire (a map of n pairs has 2n, attributes of n pairs 2n + 1).
    Aggregate {
        kind: Kind,
        elements: usize,
    },
}

enum Read<'a> {
    /// The head and the position after it.
    Done(Head<'a>, usize),
    /// Incomplete; the buffer must hold at least this many bytes to go on.
    Need(usize),
}

/// Reads the head of the value at `buf[pos]`.
fn read_head<'a>(
    buf: &'a [u8],
    pos: usize,
    offset: u64,
    limits: &Limits,
) -> Result<Read<'a>, RespError> {
    let Some(&marker) = buf.get(pos) else {
        return Ok(Read::Need(pos + 1));
    };
    let at = offset + pos as u64;
    let need_more = Ok(Read::Need(buf.len() + 1));
    match marker {
        b'$' | b'!' | b'=' => {
            let Some((len, data)) = read_length(buf, pos + 1, offset, text!("a bulk length"))?
            else {
                return need_more;
            };
            if len == -1 && marker == b'$' {
                return Ok(Read::Done(Head::Scalar(Value::NullBulk), data));
            }
            if len < 0 {
                return Err(RespError::Unexpected {
                    offset: at + 1,
                    expected: text!("a bulk length of 0 or more"),
                    found: len.to_string(),
                });
            }
            if len as u64 > limits.max_bulk_len as u64 {
                return Err(limit(
                    at,
                    text!("bulk length"),
                    len as u64,
                    limits.max_bulk_len,
                ));
            }
            // Saturating: with a limit near usize::MAX (on wasm32, 4 GiB) the sum could overflow.
            let end = data.saturating_add(len as usize);
            let stop = end.saturating_add(2);
            let Some(terminator) = buf.get(end..stop) else {
                return Ok(Read::Need(stop));
            };
            if terminator != b"\r\n" {
                let bad = if terminator[0] == b'\r' { end + 1 } else { end };
                return Err(unexpected(
                    offset + bad as u64,
                    "\"\\r\\n\" after a bulk string",
                    buf,
                    bad,
                ));
            }
            let bytes = &buf[data..end];
            let value = match marker {
                b'$' => Value::Bulk(bytes),
                b'!' => Value::BlobError(bytes),
                _ => match bytes {
                    [_, _, _, b':', ..] => Value::Verbatim {
                        format: &bytes[..3],
                        text: &bytes[4..],
                    },
                    _ => {
                        return Err(RespError::Unexpected {
                            offset: offset + data as u64,
                            expected: "a verbatim string: a 3-byte format, ':', then the text",
                            found: quoted_lossy(&bytes[..bytes.len().min(8)]),
                        })
                    }
                },
            };
            Ok(Read::Done(Head::Scalar(value), stop))
        }
        b'*' | b'%' | b'~' | b'>' | b'|' => {
            let Some((len, next)) = read_length(buf, pos + 1, offset, "an aggregate length")?
            else {
                return need_more;
            };
            if len == -1 && marker == b'*' {
                return Ok(Read::Done(Head::Scalar(Value::NullArray), next));
            }
            if len < 0 {
                return Err(RespError::Unexpected {
                    offset: at + 1,
                    expected: "an aggregate length of 0 or more",
                    found: len.to_string(),
                });
            }
            if len as u64 > limits.max_aggregate_len as u64 {
                return Err(limit(
                    at,
                    "aggregate length",
                    len as u64,
                    limits.max_aggregate_len,
                ));
            }
            let len = len as usize;
            let (kind, elements) = match marker {
                b'*' => (Kind::Array, len),
                b'~' => (Kind::Set, len),
                b'>' => (Kind::Push, len),
                b'%' => (Kind::Map, len.saturating_mul(2)),
                _ => (Kind::Attribute, len.saturating_mul(2).saturating_add(1)),
            };
            Ok(Read::Done(Head::Aggregate { kind, elements }, next))
        }
        b'+' | b'-' | b':' | b',' | b'#' | b'(' | b'_' => {
            let Some((text, next)) = read_line(
                buf,
                pos + 1,
                offset,
                limits.max_inline_len,
                "simple line length",
            )?
            else {
                return need_more;
            };
            let text_at = at + 1;
            let value = match marker {
                b'+' => Value::Simple(text),
                b'-' => Value::Error(text),
                b':' => Value::Integer(parse_integer(text, text_at)?),
                b',' => Value::Double(parse_double(text, text_at)?),
                b'#' => match text {
                    b"t" => Value::Boolean(true),
                    b"f" => Value::Boolean(false),
                    _ => return Err(bad_text(text_at, "a boolean: t or f", text)),
                },
                b'(' => {
                    let digits = text.strip_prefix(b"-").unwrap_or(text);
                    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                        return Err(bad_text(
                            text_at,
                            "a big number: an optional '-', then digits",
                            text,
                        ));
                    }
                    Value::BigNumber(text)
                }
                _ => {
                    if !text.is_empty() {
                        return Err(bad_text(
                            text_at,
                            "\"\\r\\n\" right after '_' (a null)",
                            text,
                        ));
                    }
                    Value::Null
                }
            };
            Ok(Read::Done(Head::Scalar(value), next))
        }
        _ => Err(unexpected(
            at,
            "a RESP type byte (one of + - : $ * % ~ , # ( = ! > | _)",
            buf,
            pos,
        )),
    }
}

/// A RESP3 double: decimal with optional exponent, or `inf`, `-inf`, `nan`.
fn parse_double(text: &[u8], offset: u64) -> Result<f64, RespError> {
    let expected = "a double: decimal digits with an optional exponent, inf, -inf or nan";
    let valid = !text.is_empty()
        && text.len() <= 64
        && text
            .iter()
            .all(|b| b.is_ascii_digit() || b".+-eEinfaINFA".contains(b));
    let parsed = valid.then(|| crate::decimal::parse_f64(text)).flatten();
    parsed.ok_or_else(|| bad_text(offset, expected, text))
}

fn bad_text(offset: u64, expected: &'static str, text: &[u8]) -> RespError {
    RespError::Unexpected {
        offset,
        expected,
        found: quoted_lossy(&text[..text.len().min(32)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> Result<Option<(Value<'_>, usize)>, RespError> {
        parse_value(buf, 0, &Limits::default())
    }

    fn one(buf: &[u8]) -> Value<'_> {
        let (value, len) = parse(buf).unwrap().unwrap();
        assert_eq!(len, buf.len(), "the whole of {buf:?}");
        value
    }

    #[test]
    fn resp2_types() {
        assert_eq!(one(b"+OK\r\n"), Value::Simple(b"OK"));
        assert_eq!(one(b"-ERR no\r\n"), Value::Error(b"ERR no"));
        assert_eq!(one(b":-42\r\n"), Value::Integer(-42));
        assert_eq!(one(b"$5\r\na\r\nb\0\r\n"), Value::Bulk(b"a\r\nb\0"));
        assert_eq!(one(b"$0\r\n\r\n"), Value::Bulk(b""));
        assert_eq!(one(b"$-1\r\n"), Value::NullBulk);
        assert_eq!(one(b"*-1\r\n"), Value::NullArray);
        assert_eq!(one(b"*0\r\n"), Value::Array(vec![]));
        assert_eq!(
            one(b"*2\r\n:1\r\n*1\r\n+x\r\n"),
            Value::Array(vec![
                Value::Integer(1),
                Value::Array(vec![Value::Simple(b"x")])
            ])
        );
    }

    #[test]
    fn resp3_types() {
        assert_eq!(one(b"_\r\n"), Value::Null);
        assert_eq!(one(b",1.5\r\n"), Value::Double(1.5));
        assert_eq!(one(b",-inf\r\n"), Value::Double(f64::NEG_INFINITY));
        assert!(matches!(one(b",nan\r\n"), Value::Double(d) if d.is_nan()));
        assert_eq!(one(b",1e3\r\n"), Value::Double(1000.0));
        assert_eq!(one(b"#t\r\n"), Value::Boolean(true));
        assert_eq!(one(b"#f\r\n"), Value::Boolean(false));
        assert_eq!(
            one(b"(-3492890328409238509324850943850943825024385\r\n"),
            Value::BigNumber(b"-3492890328409238509324850943850943825024385")
        );
        assert_eq!(
            one(b"=15\r\ntxt:Some string\r\n"),
            Value::Verbatim {
                format: b"txt",
                text: b"Some string"
            }
        );
        assert_eq!(one(b"!5\r\nERR x\r\n"), Value::BlobError(b"ERR x"));
        assert_eq!(
            one(b"%2\r\n+a\r\n:1\r\n+b\r\n_\r\n"),
            Value::Map(vec![
                (Value::Simple(b"a"), Value::Integer(1)),
                (Value::Simple(b"b"), Value::Null)
            ])
        );
        assert_eq!(
            one(b"~2\r\n+a\r\n#t\r\n"),
            Value::Set(vec![Value::Simple(b"a"), Value::Boolean(true)])
        );
        assert_eq!(
            one(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"),
            Value::Push(vec![
                Value::Bulk(b"message"),
                Value::Bulk(b"ch"),
                Value::Bulk(b"hi")
            ])
        );
        assert_eq!(
            one(b"|1\r\n+ttl\r\n:3\r\n*1\r\n:7\r\n"),
            Value::Attribute {
                attributes: vec![(Value::Simple(b"ttl"), Value::Integer(3))],
                value: Box::new(Value::Array(vec![Value::Integer(7)]))
            }
        );
        assert_eq!(one(b"%0\r\n"), Value::Map(vec![]));
    }

    #[test]
    fn every_prefix_is_incomplete_and_scanning_resumes() {
        let buf =
            b"*3\r\n%1\r\n+k\r\n|1\r\n+a\r\n,2.5\r\n$3\r\nv\r\n\r\n~1\r\n(12\r\n=7\r\nmkd:abc\r\n";
        let limits = Limits::default();
        for cut in 0..buf.len() {
            assert_eq!(parse(&buf[..cut]), Ok(None), "cut at {cut}");
            let mut state = ScanState::default();
            let first = scan_value(&buf[..cut], 0, &limits, &mut state).unwrap();
            assert!(
                matches!(first, Frame::Incomplete { needed } if needed > cut && needed <= buf.len())
            );
            let done = scan_value(buf, 0, &limits, &mut state).unwrap();
            assert_eq!(done, Frame::Complete(buf.len()), "cut at {cut}");
        }
        one(buf);
    }

    #[test]
    fn errors_name_offset_and_expectation() {
        let err = parse(b"*2\r\n:1\r\n?\r\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "replication stream offset 8: expected a RESP type byte (one of + - : $ * % ~ , # ( = ! > | _), found '?'"
        );
        let err = parse(b":12a\r\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("replication stream offset 1: expected a 64-bit integer"),
            "{err}"
        );
        assert!(parse(b"#x\r\n").is_err());
        assert!(parse(b",1.2.x\r\n").is_err());
        assert!(parse(b"(12a\r\n").is_err());
        assert!(parse(b"_x\r\n").is_err());
        assert!(parse(b"=3\r\ntxt\r\n").is_err());
        assert!(parse(b"$-2\r\n").is_err());
        assert!(parse(b"%-1\r\n").is_err());
        assert!(parse(b"+a\nb\r\n").is_err());
    }

    #[test]
    fn nesting_and_lengths_are_bounded() {
        let limits = Limits {
            max_depth: 3,
            ..Limits::default()
        };
        assert!(parse_value(b"*1\r\n*1\r\n*1\r\n:1\r\n", 0, &limits)
            .unwrap()
            .is_some());
        let err = parse_value(b"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", 0, &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "replication stream offset 12: nesting depth 4 exceeds the limit of 3"
        );
        let err = scan_value(
            b"*1\r\n*1\r\n*1\r\n*1\r\n",
            0,
            &limits,
            &mut ScanState::default(),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            RespError::Limit {
                what: "nesting depth",
                ..
            }
        ));
        // 10,000 levels stop at the 129th, 512 bytes in, before anything is built.
        let deep = b"*1\r\n".repeat(10_000);
        assert_eq!(
            parse(&deep).unwrap_err().to_string(),
            "replication stream offset 512: nesting depth 129 exceeds the limit of 128"
        );
        let err = parse(b"*99999999999\r\n").unwrap_err();
        assert!(matches!(
            err,
            RespError::Limit {
                what: "aggregate length",
                ..
            }
        ));
        let err = parse(b"$999999999999\r\n").unwrap_err();
        assert!(matches!(
            err,
            RespError::Limit {
                what: "bulk length",
                ..
            }
        ));
        // A huge announced aggregate reserves no more than the bytes at hand.
        assert_eq!(parse(b"*16000000\r\n:1\r\n"), Ok(None));
    }
}
