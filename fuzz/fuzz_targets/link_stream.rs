//! The relay's replica link cutting a replication stream into batches (`StreamReader`), over arbitrary bytes cut
//! into arbitrary reads.
//!
//! The first two bytes choose the reads' sizes and how large a command the link holds (small, so that short
//! inputs stream commands too large to hold); the rest is the stream, read with a command table in Redis 7's
//! shapes (fixed positions, a keyword, a key count, a module's command, one read by its own grammar). Besides never
//! panicking or hanging: every chunking gives the same frames (offsets, kinds, databases, keys), the same `GETACK`
//! answers and the same error as the whole; what is output is contiguous from the start; a held frame is the
//! stream's own bytes, and one not held is withheld from every session, naming only keys of at most 1,024 bytes;
//! and, outside a `MULTI` block, the link holds no more than one command of the size it holds (or an inline line,
//! at most 64 KiB) between reads.
//!
//! Run: `cargo +nightly fuzz run link_stream -- -max_total_time=600` from the repository root.
#![no_main]

use std::sync::Arc;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use redis::Value;
use replicast_server::command_table::streamed::MAX_STREAMED_KEY_LEN;
use replicast_server::command_table::CommandTable;
use replicast_server::frames::Kind;
use replicast_server::stream_reader::{Output, StreamReader};
use replicast_protocol::resp::{RespError, MAX_INLINE_LEN};

fn bulk(text: &str) -> Value {
    Value::BulkString(text.as_bytes().to_vec())
}

fn pairs(items: Vec<(&str, Value)>) -> Value {
    Value::Array(items.into_iter().flat_map(|(k, v)| [bulk(k), v]).collect())
}

/// A `COMMAND` entry with these key specifications (begin search, find keys) and flags.
fn entry(name: &str, flags: &[&str], specs: Vec<(Value, Value)>) -> Value {
    let specs = specs
        .into_iter()
        .map(|(begin, find)| {
            pairs(vec![
                ("flags", Value::Array(vec![])),
                ("begin_search", begin),
                ("find_keys", find),
            ])
        })
        .collect();
    Value::Array(vec![
        bulk(name),
        Value::Int(-1),
        Value::Array(flags.iter().map(|f| bulk(f)).collect()),
        Value::Int(0),
        Value::Int(0),
        Value::Int(0),
        Value::Array(vec![]),
        Value::Array(vec![]),
        Value::Array(specs),
        Value::Array(vec![]),
    ])
}

/// Built once: the table is read-only.
fn table() -> Arc<CommandTable> {
    static TABLE: std::sync::OnceLock<Arc<CommandTable>> = std::sync::OnceLock::new();
    TABLE.get_or_init(build_table).clone()
}

fn build_table() -> Arc<CommandTable> {
    let index = |i| {
        pairs(vec![
            ("type", bulk("index")),
            ("spec", pairs(vec![("index", Value::Int(i))])),
        ])
    };
    let keyword = |word: &str| {
        pairs(vec![
            ("type", bulk("keyword")),
            (
                "spec",
                pairs(vec![("keyword", bulk(word)), ("startfrom", Value::Int(1))]),
            ),
        ])
    };
    let range = |last, step, limit| {
        pairs(vec![
            ("type", bulk("range")),
            (
                "spec",
                pairs(vec![
                    ("lastkey", Value::Int(last)),
                    ("keystep", Value::Int(step)),
                    ("limit", Value::Int(limit)),
                ]),
            ),
        ])
    };
    let keynum = |at, first, step| {
        pairs(vec![
            ("type", bulk("keynum")),
            (
                "spec",
                pairs(vec![
                    ("keynumidx", Value::Int(at)),
                    ("firstkey", Value::Int(first)),
                    ("keystep", Value::Int(step)),
                ]),
            ),
        ])
    };
    Arc::new(CommandTable::from_command_reply(&Value::Array(vec![
        entry("set", &["write"], vec![(index(1), range(0, 1, 0))]),
        entry("mset", &["write"], vec![(index(1), range(-1, 2, 0))]),
        entry("del", &["write"], vec![(index(1), range(-1, 1, 0))]),
        entry("xread", &[], vec![(keyword("STREAMS"), range(-1, 1, 2))]),
        entry(
            "zunionstore",
            &["write"],
            vec![(index(1), range(0, 1, 0)), (index(2), keynum(0, 1, 1))],
        ),
        entry(
            "ft.add",
            &["write", "module"],
            vec![(index(1), range(0, 1, 0))],
        ),
        entry(
            "sort",
            &["write", "movablekeys"],
            vec![(index(1), range(0, 1, 0))],
        ),
        entry("select", &[], vec![]),
        entry("multi", &[], vec![]),
        entry("exec", &[], vec![]),
        entry("replconf", &[], vec![]),
    ])))
}

/// One frame as sessions see it, whatever batch it came in.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    start: u64,
    end: u64,
    db: u32,
    kind: Kind,
    keys: Vec<Vec<u8>>,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    frames: Vec<Seen>,
    acks: Vec<u64>,
    error: Option<RespError>,
}

const START: u64 = 1000;

fn read<'a>(
    stream: &[u8],
    reads: impl Iterator<Item = &'a [u8]>,
    max_held: usize,
    max_bulk_len: usize,
) -> Outcome {
    let blocks = stream.windows(5).any(|w| w.eq_ignore_ascii_case(b"multi"));
    let mut reader = StreamReader::new(table(), START, max_held, max_bulk_len);
    let mut buf = BytesMut::new();
    let mut got = Outcome::default();
    let mut end = START;
    for piece in reads {
        buf.extend_from_slice(piece);
        let result = reader.read(&mut buf, &mut |output| match output {
            Output::Batch { start, raw, index } => {
                assert_eq!(start, end, "contiguous");
                end = start + raw.len() as u64;
                let at = (start - START) as usize;
                assert_eq!(
                    &raw[..],
                    &stream[at..at + raw.len()],
                    "a batch is the stream's bytes"
                );
                for frame in &index.frames {
                    assert!(frame.at.start < frame.at.end && frame.at.end as usize <= raw.len());
                    got.frames.push(Seen {
                        start: start + u64::from(frame.at.start),
                        end: start + u64::from(frame.at.end),
                        db: frame.db,
                        kind: frame.kind,
                        keys: index.keys[frame.keys.start as usize..frame.keys.end as usize]
                            .iter()
                            .map(|r| raw[r.start as usize..r.end as usize].to_vec())
                            .collect(),
                    });
                }
            }
            Output::Unheld {
                command,
                names,
                index,
                ..
            } => {
                assert_eq!(command.start, end, "contiguous");
                assert!(command.end > command.start);
                end = command.end;
                assert_eq!(index.frames.len(), 1);
                let frame = &index.frames[0];
                assert_eq!(frame.at, 0..0, "nothing of it is held");
                let keys: Vec<Vec<u8>> = index
                    .keys
                    .iter()
                    .map(|r| names[r.start as usize..r.end as usize].to_vec())
                    .collect();
                assert!(keys.iter().all(|k| k.len() <= MAX_STREAMED_KEY_LEN));
                match frame.kind {
                    Kind::Withheld => assert!(!keys.is_empty()),
                    Kind::WithheldAll | Kind::Other => assert!(keys.is_empty()),
                    kind => panic!("an unheld frame of kind {kind:?}"),
                }
                got.frames.push(Seen {
                    start: command.start,
                    end: command.end,
                    db: frame.db,
                    kind: frame.kind,
                    keys,
                });
            }
            Output::GetAck(at) => got.acks.push(at),
        });
        assert_eq!(reader.offset(), end);
        if let Err(err) = result {
            got.error = Some(err);
            break;
        }
        if !blocks {
            assert!(
                buf.len() <= max_held.max(MAX_INLINE_LEN + 2),
                "{} bytes held",
                buf.len()
            );
        }
    }
    got
}

/// Read lengths from a seed: a cycle of lengths from 1 to 64 bytes.
fn reads(stream: &[u8], seed: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = stream;
    let mut state = u32::from(seed) | 1;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let len = (1 + (state >> 16) as usize % 64).min(rest.len());
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        Some(chunk)
    })
}

fuzz_target!(|data: &[u8]| {
    let [read_seed, size_seed, stream @ ..] = data else {
        return;
    };
    let max_held = 16 + usize::from(size_seed & 0x3f);
    let max_bulk_len = 8 + usize::from(size_seed >> 2);
    let whole = read(stream, std::iter::once(stream), max_held, max_bulk_len);
    assert_eq!(
        read(stream, reads(stream, *read_seed), max_held, max_bulk_len),
        whole
    );
});
