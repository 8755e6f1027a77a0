//! Replication streams recorded from a real `redis-server` by `replicast record` (see
//! `server/tests/recorded_streams.rs`, which also refreshes them): the parser must find in them exactly the
//! commands the workload sent, as Redis propagates them, with contiguous offsets, for any split of the bytes.
//! Runs natively and, with `wasm-pack test`, in wasm in Chromium.

mod recorded;

use replicast_protocol::resp::CommandReader;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const ZADD: &[u8] = include_bytes!("data/zadd.resp");
const ZADD_OFFSET: &str = include_str!("data/zadd.offset");
const MIXED: &[u8] = include_bytes!("data/mixed.resp");
const MIXED_OFFSET: &str = include_str!("data/mixed.offset");

type Parsed = Vec<(Vec<Vec<u8>>, u64, u64)>;

fn parse(pieces: impl Iterator<Item = &'static [u8]>, start: u64) -> Parsed {
    let mut reader = CommandReader::new(start);
    let mut out = Vec::new();
    for piece in pieces {
        reader
            .push(piece, |c| {
                out.push((c.args.iter().map(|a| a.to_vec()).collect(), c.start, c.end))
            })
            .expect("the recorded stream parses");
    }
    assert_eq!(reader.pending_len(), 0, "the recording ends on a command");
    out
}

/// Parses `stream` whole and in pieces of several sizes, checks the offsets, and compares with `steps`.
fn check(stream: &'static [u8], offset: &str, steps: &[recorded::Step]) -> Parsed {
    let start: u64 = offset.trim().parse().expect("a start offset");
    let whole = parse(std::iter::once(stream), start);
    let mut at = start;
    for (_, from, to) in &whole {
        assert_eq!(*from, at, "commands are contiguous");
        at = *to;
    }
    assert_eq!(at, start + stream.len() as u64);
    for size in [1, 2, 3, 5, 13, 100, 1000, 4096] {
        assert_eq!(
            parse(stream.chunks(size), start),
            whole,
            "chunks of {size} bytes"
        );
    }
    let args: Vec<Vec<Vec<u8>>> = whole.iter().map(|(a, _, _)| a.clone()).collect();
    if let Err(diff) = recorded::compare(&args, steps) {
        panic!("{diff}");
    }
    whole
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn recorded_zadd_stream_is_what_was_sent() {
    let commands = check(ZADD, ZADD_OFFSET, &recorded::zadd_workload(250));
    // SELECT 0, then the ZADDs verbatim: the JSON members arrive byte for byte.
    assert_eq!(commands.len(), 251);
    assert_eq!(commands[0].0, [b"SELECT".to_vec(), b"0".to_vec()]);
    assert_eq!(commands[250].0[3], recorded::sample_json(249).into_bytes());
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn recorded_mixed_stream_is_what_was_sent() {
    let commands = check(MIXED, MIXED_OFFSET, &recorded::mixed_workload());
    let selects: Vec<&[u8]> = commands
        .iter()
        .filter(|(a, _, _)| a[0].eq_ignore_ascii_case(b"select"))
        .map(|(a, _, _)| &a[1][..])
        .collect();
    assert_eq!(selects, [&b"0"[..], b"2", b"9", b"0"]);
}
