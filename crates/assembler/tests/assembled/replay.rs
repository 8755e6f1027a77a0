//! Replaying a recorded replication stream through an assembler and comparing its windows with what Redis
//! answered for every watched key at the end of the recording, given as a snapshot (`DEL key`, then `ZADD`,
//! `RPUSH`, `HSET`, `SET` or `XADD`s of the newest N items per key). Windows that asked for a top-up get the
//! snapshot of their key first, as the relay would send it; after a `SWAPDB`, the whole snapshot.

use std::collections::BTreeMap;

use replicast_assembler::{StreamAssembler, WatchConfig};
use replicast_protocol::resp::CommandReader;
use replicast_protocol::wire::{begin_commands, encode_hello, encode_snapshot, push_segment};

use super::{canon, check_mirror, Mirror};

/// Every command of `stream` with its start and end offsets.
fn frames(stream: &[u8], start: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    CommandReader::new(start)
        .push(stream, |c| out.push((c.start, c.end)))
        .expect("the recording parses");
    out
}

/// The expected snapshot's commands, grouped by key.
fn by_key(expected: &[u8]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut keys: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut at = 0usize;
    CommandReader::new(0)
        .push(expected, |c| {
            let bytes = &expected[at..at + c.frame_len()];
            at += c.frame_len();
            keys.entry(c.args[1].to_vec())
                .or_default()
                .extend_from_slice(bytes);
        })
        .expect("the expected answers parse");
    keys
}

/// What a replay did: how many top-ups the windows asked for and whether a full snapshot was needed.
#[derive(Debug, Default)]
pub struct Replayed {
    pub topups: Vec<String>,
    pub resnapshot: bool,
}

/// Feeds `stream` (starting at offset `start`) in messages of `per_segment` commands and `per_message`
/// segments, applies the top-ups from `expected`, and checks every window against `expected`.
pub fn replay(
    stream: &[u8],
    start: u64,
    expected: &[u8],
    pattern: &str,
    window: usize,
    per_segment: usize,
    per_message: usize,
) -> Replayed {
    let watch = WatchConfig {
        patterns: vec![pattern.as_bytes().to_vec()],
        db: 0,
        window,
    };
    let mut a = StreamAssembler::with_observer(watch.clone(), Mirror::default());
    a.push_message(&encode_hello("rec", start)).unwrap();
    let frames = frames(stream, start);
    let at = |offset: u64| (offset - start) as usize;
    for message in frames.chunks(per_segment * per_message) {
        let mut out = begin_commands();
        for segment in message.chunks(per_segment) {
            let (from, to) = (segment[0].0, segment[segment.len() - 1].1);
            push_segment(&mut out, from, &stream[at(from)..at(to)]);
        }
        a.push_message(&out).unwrap();
        check_mirror(&a);
    }
    assert_eq!(a.offset(), start + stream.len() as u64);
    let d = a.diagnostics();
    assert_eq!(
        (
            d.bad_segments,
            d.unknown_commands,
            d.bad_arguments,
            d.wrong_type
        ),
        (0, 0, 0, 0),
        "{d:?}"
    );

    let keys = by_key(expected);
    let mut replayed = Replayed {
        resnapshot: a.needs_resnapshot(),
        ..Replayed::default()
    };
    let topups = a.take_topups();
    let snapshot: Vec<u8> = if replayed.resnapshot {
        expected.to_vec()
    } else {
        topups
            .iter()
            .flat_map(|k| {
                let mut del = super::resp(&[&b"DEL"[..], k]);
                if let Some(data) = keys.get(k) {
                    // The key's own DEL is already in `data`.
                    del = data.clone();
                }
                del
            })
            .collect()
    };
    replayed.topups = topups
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    if replayed.resnapshot || !topups.is_empty() {
        a.push_message(&encode_snapshot(a.offset(), &snapshot))
            .unwrap();
        check_mirror(&a);
    }
    assert!(a.take_topups().is_empty());

    let mut redis = StreamAssembler::new(watch);
    redis.push_message(&encode_hello("rec", 0)).unwrap();
    redis.push_message(&encode_snapshot(0, expected)).unwrap();
    let name = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
    let ours: Vec<String> = a.keys().map(name).collect();
    let theirs: Vec<String> = redis.keys().map(name).collect();
    assert_eq!(ours, theirs, "the keys with windows");
    for (key, w) in a.windows() {
        assert!(!w.stale(), "{} is still stale", name(key));
        let want = redis.window(key).unwrap();
        if let (Some(ours), Some(_)) = (w.as_hash(), want.as_hash()) {
            // Redis gave every field; the window holds the most recently changed ones, up to its size.
            let all = hash_fields(&keys[key]);
            assert_eq!(ours.len(), all.len().min(window), "{} fields", name(key));
            for (field, value, _) in ours.newest_first() {
                assert_eq!(
                    all.get(field).map(Vec::as_slice),
                    Some(value),
                    "{}",
                    name(key)
                );
            }
            continue;
        }
        assert_eq!(canon(w), canon(want), "the window of {}", name(key));
    }
    replayed
}

/// The fields of a hash from its `HSET` in the expected answers.
fn hash_fields(commands: &[u8]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut fields = BTreeMap::new();
    CommandReader::new(0)
        .push(commands, |c| {
            if c.is("hset") {
                for pair in c.args[2..].chunks_exact(2) {
                    fields.insert(pair[0].to_vec(), pair[1].to_vec());
                }
            }
        })
        .unwrap();
    fields
}
