//! The RESP parsers over arbitrary bytes, cut into arbitrary chunks.
//!
//! The first two bytes choose the chunk sizes and the limits; the rest is the stream. Besides never panicking or
//! hanging, every chunking must give what the whole input gives: the same commands (or replies) with the same
//! offsets, then the same error or the same incomplete tail. The first command is also read the two other ways the
//! relay's link reads one: checked in chunks by a `CommandCheck`, which must find the same end, and streamed piece
//! by piece by a `StreamedCommand`, whose pieces must rebuild the same arguments, with the same error, while it
//! leaves no more than a length line unconsumed.
//!
//! Run: `cargo +nightly fuzz run resp -- -max_total_time=600` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use replicast_protocol::resp::{
    parse_command, Checked, CommandCheck, CommandReader, Limits, Piece, RespError, StreamedCommand,
    ValueReader,
};

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

/// What reading the first command gives: its arguments and end, or the error; `None` while incomplete.
type First = Option<Result<(Vec<Vec<u8>>, u64), RespError>>;

fn first_whole(stream: &[u8], limits: &Limits) -> First {
    match parse_command(stream, 1000, limits) {
        Ok(Some(command)) => Some(Ok((
            command.args.iter().map(|a| a.to_vec()).collect(),
            command.end,
        ))),
        Ok(None) => None,
        Err(err) => Some(Err(err)),
    }
}

/// The first command's end, checked in chunks.
fn first_checked<'a>(
    pieces: impl Iterator<Item = &'a [u8]>,
    limits: &Limits,
) -> Option<Result<u64, RespError>> {
    let mut check = CommandCheck::default();
    let mut held = Vec::new();
    for piece in pieces {
        held.extend_from_slice(piece);
        match check.check(&held, 1000, limits) {
            Ok(Checked::Complete(len)) => return Some(Ok(1000 + len as u64)),
            Ok(Checked::Incomplete { at_least }) => assert!(at_least > held.len()),
            Err(err) => return Some(Err(err)),
        }
    }
    None
}

/// The first command streamed in chunks, keeping only what is not consumed.
fn first_streamed<'a>(pieces: impl Iterator<Item = &'a [u8]>, limits: &Limits) -> First {
    let mut command = StreamedCommand::new(1000, limits);
    let mut args: Vec<Vec<u8>> = Vec::new();
    let mut pending = Vec::new();
    for piece in pieces {
        pending.extend_from_slice(piece);
        let pushed = command.push(&pending, |p| match p {
            Piece::Count(n) => assert!(n as usize <= limits.max_args),
            Piece::ArgStart { index, len } => {
                assert_eq!(index as usize, args.len());
                assert!(len as usize <= limits.max_bulk_len);
                args.push(Vec::new());
            }
            Piece::ArgBytes(bytes) => args.last_mut().unwrap().extend_from_slice(bytes),
            Piece::ArgEnd => {}
        });
        match pushed {
            Ok(used) => drop(pending.drain(..used)),
            Err(err) => return Some(Err(err)),
        }
        if command.is_done() {
            return Some(Ok((args, command.offset())));
        }
        // A length line waits for its end: at most a sign, 18 digits and "\r" (more is an error).
        assert!(
            pending.len() <= 21,
            "{} bytes left unconsumed",
            pending.len()
        );
    }
    None
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

    let first = first_whole(stream, &limits);
    let end = |f: &First| f.clone().map(|r| r.map(|(_, end)| end));
    assert_eq!(
        first_checked(chunks(stream, *chunk_seed), &limits),
        end(&first)
    );
    if stream.first() == Some(&b'*') {
        assert_eq!(first_streamed(chunks(stream, *chunk_seed), &limits), first);
    }

    let whole = values(std::iter::once(stream), limits);
    assert_eq!(values(chunks(stream, *chunk_seed), limits), whole);
});
