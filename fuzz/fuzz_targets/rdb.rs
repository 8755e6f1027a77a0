//! The RDB reader over arbitrary bytes, cut into arbitrary chunks.
//!
//! The whole input is the RDB (so the fixture files make a good seed corpus); the chunk sizes come from a small
//! generator seeded by the input's length and last byte, and small limits let short inputs reach them. Besides
//! never panicking or hanging, every chunking must give what the whole input gives: the same events, then the
//! same error or the same end, the same summary (`replicast rdb --stats`, the inspector page's figures) and the
//! same JSON Lines (`replicast rdb`), each of whose complete lines is JSON.
//!
//! Run: `cargo +nightly fuzz run rdb <corpus dir> <fixture dirs…> -- -max_total_time=600` from the repository
//! root.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use replicast_rdb::export::{Filter, JsonLines, JsonOutput, Stats};
use replicast_rdb::{Limits, RdbError, RdbReader, ReaderOptions};

fn options(seed: u8) -> ReaderOptions {
    ReaderOptions {
        limits: Limits {
            max_string_len: 4096 + usize::from(seed) * 64,
            max_encoded_len: 4096 + usize::from(seed) * 64,
        },
        best_effort: seed & 1 == 1,
    }
}

/// Everything the reader reports for `input` cut by `next_len`.
fn run(
    input: &[u8],
    options: ReaderOptions,
    mut next_len: impl FnMut() -> usize,
) -> (Vec<String>, Result<(), RdbError>, String, Vec<u8>) {
    let mut reader = RdbReader::with_options(options);
    let mut events = Vec::new();
    let mut stats = Stats::with_clock(3, 1_700_000_000_000);
    let mut json = Vec::new();
    let mut lines = JsonLines::default();
    let mut out = JsonOutput::with_capacity(0, &mut json);
    let filter = Filter::default();
    let mut rest = input;
    while !rest.is_empty() {
        let n = next_len().min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let pushed = reader.push(chunk, |e| {
            stats.on_event(&e, &filter);
            lines
                .on_event(&e, &filter, &mut out)
                .expect("writing to a Vec");
            events.push(format!("{e:?}"));
        });
        match pushed {
            Ok(used) if used < chunk.len() => break,
            Ok(_) => {}
            Err(e) => {
                out.flush().expect("writing to a Vec");
                drop(out);
                return (events, Err(e), stats.summary(0).to_string(), json);
            }
        }
    }
    let end = reader.finish();
    out.flush().expect("writing to a Vec");
    drop(out);
    (events, end, stats.summary(0).to_string(), json)
}

fuzz_target!(|data: &[u8]| {
    let seed = data.last().copied().unwrap_or(0);
    let options = options(seed);
    let whole = run(data, options, || usize::MAX);
    for line in whole.3.split_inclusive(|&b| b == b'\n') {
        if line.ends_with(b"\n") {
            serde_json::from_slice::<serde_json::Value>(line).expect("each complete line is JSON");
        }
    }
    let mut state = (data.len() as u32).wrapping_mul(2654435761) | u32::from(seed) | 1;
    let chunked = run(data, options, || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        1 + (state % 64) as usize
    });
    assert_eq!(whole, chunked);
});
