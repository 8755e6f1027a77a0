//! The RESP parsers over arbitrary bytes, cut into arbitrary chunks.
//!
//! The first two bytes choose the chunk sizes and the limits; the rest is the stream. Besides never panicking or
//! hanging, every chunking must give what the whole input gives: the same commands (or replies) with the same
//! offsets, then the same error or the same incomplete tail.
//!
//! Run: `cargo +nightly fuzz run resp -- -max_total_time=600` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use replicast_wasm::resp::{CommandReader, Limits, RespError, ValueReader};

/// Small limits, so that short inputs reach them too.
fn limits(seed: u8) -> Limits {
    Limits {
        max_bulk_len: 64 + usize::from(seed & 0x3f),
        max_args: 8 + usize::from(seed >> 4),
        max_inline_len: 32 + usize::from(seed & 0x1f),
        max_aggregate_len: 8 + usize::from(seed >> 4),
        max_depth: 1 + usize::from(seed & 0x07),
        ..Limits::default()
    }
}

/// Chunk lengths from a seed: a cycle of lengths from 1 to 32 bytes.
fn chunks(stream: &[u8], seed: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = stream;
    let mut state = u32::from(seed) | 1;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let len = (1 + (state >> 16) as usize % 32).min(rest.len());
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        Some(chunk)
    })
}

type Outcome<T> = (Vec<T>, Option<RespError>, u64);

fn commands<'a>(
    pieces: impl Iterator<Item = &'a [u8]>,
    limits: Limits,
) -> Outcome<(Vec<Vec<u8>>, u64, u64)> {
    let mut reader = CommandReader::with_limits(1000, limits);
    let mut out = Vec::new();
    for piece in pieces {
        let pushed = reader.push(piece, |c| {
            assert!(c.start < c.end);
            out.push((c.args.iter().map(|a| a.to_vec()).collect(), c.start, c.end));
        });
        if let Err(err) = pushed {
            return (out, Some(err), reader.offset());
        }
    }
    (out, None, reader.offset())
}

fn values<'a>(
    pieces: impl Iterator<Item = &'a [u8]>,
    limits: Limits,
) -> Outcome<(String, u64, u64)> {
    let mut reader = ValueReader::with_limits(1000, limits);
    let mut out = Vec::new();
    for piece in pieces {
        let pushed = reader.push(piece, |v, at| {
            out.push((format!("{v:?}"), at.start, at.end))
        });
        if let Err(err) = pushed {
            return (out, Some(err), reader.offset());
        }
    }
    (out, None, reader.offset())
}

fuzz_target!(|data: &[u8]| {
    let [chunk_seed, limit_seed, stream @ ..] = data else {
        return;
    };
    let limits = limits(*limit_seed);

    let whole = commands(std::iter::once(stream), limits);
    let mut end = 1000;
    for (_, start, stop) in &whole.0 {
        assert_eq!(*start, end, "commands are contiguous");
        end = *stop;
    }
    assert_eq!(whole.2, end);
    assert_eq!(commands(chunks(stream, *chunk_seed), limits), whole);

    let whole = values(std::iter::once(stream), limits);
    assert_eq!(values(chunks(stream, *chunk_seed), limits), whole);
});
