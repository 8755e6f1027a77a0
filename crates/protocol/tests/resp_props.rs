//! Property tests of the RESP parsers: random commands and replies with random binary payloads (`\r\n` inside
//! bulks included), cut into random chunks, must come out exactly as they went in, with the same offsets as the
//! whole stream gives; and random bytes must give the same result, or the same error, for every chunking.
#![cfg(not(target_arch = "wasm32"))]

use proptest::collection::vec;
use proptest::prelude::*;
use replicast_protocol::resp::{CommandReader, Limits, RespError, Value, ValueReader};

/// One frame of a replication stream, as a test writes it.
#[derive(Debug, Clone)]
enum Frame {
    Multibulk(Vec<Vec<u8>>),
    Inline(Vec<Vec<u8>>),
    Keepalive,
    Empty,
}

impl Frame {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Frame::Multibulk(args) => {
                out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
                for arg in args {
                    out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                    out.extend_from_slice(arg);
                    out.extend_from_slice(b"\r\n");
                }
            }
            Frame::Inline(words) => {
                out.extend_from_slice(&words.join(&b' '));
                out.extend_from_slice(b"\r\n");
            }
            Frame::Keepalive => out.push(b'\n'),
            Frame::Empty => out.extend_from_slice(b"*0\r\n"),
        }
    }

    fn args(&self) -> Vec<Vec<u8>> {
        match self {
            Frame::Multibulk(args) | Frame::Inline(args) => args.clone(),
            Frame::Keepalive | Frame::Empty => Vec::new(),
        }
    }
}

/// Binary payloads that often hold the bytes RESP cares about.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => any::<u8>(),
        1 => Just(b'\r'),
        1 => Just(b'\n'),
        1 => Just(b'$'),
        1 => Just(b'*'),
    ];
    prop_oneof![
        8 => vec(byte.clone(), 0..40),
        1 => vec(byte, 200..1500),
        1 => Just(b"\r\n".to_vec()),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    let word = "[A-Za-z][A-Za-z0-9:_-]{0,12}".prop_map(String::into_bytes);
    prop_oneof![
        6 => vec(payload(), 1..6).prop_map(Frame::Multibulk),
        1 => vec(word, 1..5).prop_map(Frame::Inline),
        1 => Just(Frame::Keepalive),
        1 => Just(Frame::Empty),
    ]
}

/// Cuts `stream` at the given fractions of its length.
fn split<'a>(stream: &'a [u8], cuts: &[f64]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|f| (f * stream.len() as f64) as usize)
        .collect();
    points.push(0);
    points.push(stream.len());
    points.sort_unstable();
    points.windows(2).map(|w| &stream[w[0]..w[1]]).collect()
}

type Commands = Vec<(Vec<Vec<u8>>, u64, u64)>;

fn read_commands(pieces: &[&[u8]], start: u64, limits: Limits) -> (Commands, Option<RespError>) {
    let mut reader = CommandReader::with_limits(start, limits);
    let mut got = Vec::new();
    for piece in pieces {
        let pushed = reader.push(piece, |c| {
            got.push((c.args.iter().map(|a| a.to_vec()).collect(), c.start, c.end))
        });
        if let Err(err) = pushed {
            return (got, Some(err));
        }
    }
    (got, None)
}

/// A reply value as a test writes it (doubles are finite, so that equality holds).
#[derive(Debug, Clone, PartialEq)]
enum Owned {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    BlobError(Vec<u8>),
    Integer(i64),
    Bulk(Vec<u8>),
    NullBulk,
    NullArray,
    Null,
    Double(f64),
    Boolean(bool),
    BigNumber(Vec<u8>),
    Verbatim(Vec<u8>, Vec<u8>),
    Array(Vec<Owned>),
    Map(Vec<(Owned, Owned)>),
    Set(Vec<Owned>),
    Push(Vec<Owned>),
    Attribute(Vec<(Owned, Owned)>, Box<Owned>),
}

fn own(value: &Value<'_>) -> Owned {
    let all = |items: &[Value<'_>]| items.iter().map(own).collect();
    let pairs =
        |pairs: &[(Value<'_>, Value<'_>)]| pairs.iter().map(|(k, v)| (own(k), own(v))).collect();
    match value {
        Value::Simple(s) => Owned::Simple(s.to_vec()),
        Value::Error(s) => Owned::Error(s.to_vec()),
        Value::BlobError(s) => Owned::BlobError(s.to_vec()),
        Value::Integer(n) => Owned::Integer(*n),
        Value::Bulk(s) => Owned::Bulk(s.to_vec()),
        Value::NullBulk => Owned::NullBulk,
        Value::NullArray => Owned::NullArray,
        Value::Null => Owned::Null,
        Value::Double(d) => Owned::Double(*d),
        Value::Boolean(b) => Owned::Boolean(*b),
        Value::BigNumber(s) => Owned::BigNumber(s.to_vec()),
        Value::Verbatim { format, text } => Owned::Verbatim(format.to_vec(), text.to_vec()),
        Value::Array(items) => Owned::Array(all(items)),
        Value::Map(items) => Owned::Map(pairs(items)),
        Value::Set(items) => Owned::Set(all(items)),
        Value::Push(items) => Owned::Push(all(items)),
        Value::Attribute { attributes, value } => {
            Owned::Attribute(pairs(attributes), Box::new(own(value)))
        }
    }
}

fn encode(value: &Owned, out: &mut Vec<u8>) {
    let blob = |marker: char, bytes: &[u8], out: &mut Vec<u8>| {
        out.extend_from_slice(format!("{marker}{}\r\n", bytes.len()).as_bytes());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    };
    let line = |marker: char, text: &[u8], out: &mut Vec<u8>| {
        out.extend_from_slice(marker.to_string().as_bytes());
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    };
    match value {
        Owned::Simple(s) => line('+', s, out),
        Owned::Error(s) => line('-', s, out),
        Owned::BlobError(s) => blob('!', s, out),
        Owned::Integer(n) => line(':', n.to_string().as_bytes(), out),
        Owned::Bulk(s) => blob('$', s, out),
        Owned::NullBulk => out.extend_from_slice(b"$-1\r\n"),
        Owned::NullArray => out.extend_from_slice(b"*-1\r\n"),
        Owned::Null => out.extend_from_slice(b"_\r\n"),
        Owned::Double(d) => line(',', d.to_string().as_bytes(), out),
        Owned::Boolean(b) => line('#', if *b { b"t" } else { b"f" }, out),
        Owned::BigNumber(s) => line('(', s, out),
        Owned::Verbatim(format, text) => blob('=', &[&format[..], b":", text].concat(), out),
        Owned::Array(items) | Owned::Set(items) | Owned::Push(items) => {
            let marker = match value {
                Owned::Array(_) => '*',
                Owned::Set(_) => '~',
                _ => '>',
            };
            out.extend_from_slice(format!("{marker}{}\r\n", items.len()).as_bytes());
            items.iter().for_each(|item| encode(item, out));
        }
        Owned::Map(pairs) | Owned::Attribute(pairs, _) => {
            let marker = if matches!(value, Owned::Map(_)) {
                '%'
            } else {
                '|'
            };
            out.extend_from_slice(format!("{marker}{}\r\n", pairs.len()).as_bytes());
            for (k, v) in pairs {
                encode(k, out);
                encode(v, out);
            }
            if let Owned::Attribute(_, described) = value {
                encode(described, out);
            }
        }
    }
}

fn owned_value() -> impl Strategy<Value = Owned> {
    let text = "[ -~]{0,20}".prop_map(String::into_bytes);
    let leaf = prop_oneof![
        text.clone().prop_map(Owned::Simple),
        text.clone().prop_map(Owned::Error),
        payload().prop_map(Owned::BlobError),
        any::<i64>().prop_map(Owned::Integer),
        payload().prop_map(Owned::Bulk),
        Just(Owned::NullBulk),
        Just(Owned::NullArray),
        Just(Owned::Null),
        (-1_000_000_000i64..1_000_000_000).prop_map(|n| Owned::Double(n as f64 / 1000.0)),
        any::<bool>().prop_map(Owned::Boolean),
        "-?[0-9]{1,60}".prop_map(|s| Owned::BigNumber(s.into_bytes())),
        ("[a-z]{3}", payload()).prop_map(|(f, t)| Owned::Verbatim(f.into_bytes(), t)),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Owned::Array),
            vec((inner.clone(), inner.clone()), 0..4).prop_map(Owned::Map),
            vec(inner.clone(), 0..6).prop_map(Owned::Set),
            vec(inner.clone(), 0..6).prop_map(Owned::Push),
            (vec((inner.clone(), inner.clone()), 0..3), inner)
                .prop_map(|(attrs, v)| Owned::Attribute(attrs, Box::new(v))),
        ]
    })
}

type Values = Vec<(Owned, u64, u64)>;

fn read_values(pieces: &[&[u8]], start: u64, limits: Limits) -> (Values, Option<RespError>) {
    let mut reader = ValueReader::with_limits(start, limits);
    let mut got = Vec::new();
    for piece in pieces {
        if let Err(err) = reader.push(piece, |v, at| got.push((own(&v), at.start, at.end))) {
            return (got, Some(err));
        }
    }
    (got, None)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn commands_survive_any_chunking(
        frames in vec(frame(), 0..24),
        cuts in vec(0.0..1.0f64, 0..12),
        start in 0u64..1 << 40,
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for frame in &frames {
            let at = start + stream.len() as u64;
            frame.encode(&mut stream);
            expected.push((frame.args(), at, start + stream.len() as u64));
        }
        let pieces = split(&stream, &cuts);
        let (got, err) = read_commands(&pieces, start, Limits::default());
        prop_assert_eq!(err, None);
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn replies_survive_any_chunking(
        values in vec(owned_value(), 0..8),
        cuts in vec(0.0..1.0f64, 0..12),
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for value in &values {
            let at = stream.len() as u64;
            encode(value, &mut stream);
            expected.push((value.clone(), at, stream.len() as u64));
        }
        let (got, err) = read_values(&split(&stream, &cuts), 0, Limits::default());
        prop_assert_eq!(err, None);
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn any_bytes_give_the_same_result_for_any_chunking(
        bytes in vec(prop_oneof![any::<u8>(), Just(b'\r'), Just(b'\n'), Just(b'*'), Just(b'$'), Just(b'1')], 0..300),
        cuts in vec(0.0..1.0f64, 0..12),
    ) {
        let limits = Limits { max_bulk_len: 100, max_args: 10, max_inline_len: 40, max_aggregate_len: 10, max_depth: 4, ..Limits::default() };
        let pieces = split(&bytes, &cuts);
        prop_assert_eq!(read_commands(&pieces, 5, limits), read_commands(&[&bytes], 5, limits));
        prop_assert_eq!(read_values(&pieces, 5, limits), read_values(&[&bytes], 5, limits));
    }
}
