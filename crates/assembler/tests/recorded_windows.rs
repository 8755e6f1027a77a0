//! The `types-*` recordings (`crates/protocol/tests/data/`, recorded from a real `redis-server` by
//! `server/tests/recorded_streams.rs`, which documents how to refresh them): replayed through a StreamAssembler
//! in messages of several sizes, every window must equal Redis's own answer at the end of the recording, after
//! the top-ups the windows asked for. Runs natively and, with `wasm-pack test`, in wasm in Chromium.

mod assembled;
#[path = "../../protocol/tests/recorded/mod.rs"]
mod recorded;

use recorded::types::{PATTERN, WINDOW};

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Replays one recording in several message shapes; returns the top-ups of the first replay.
fn check(stream: &[u8], offset: &str, expected: &[u8]) -> assembled::replay::Replayed {
    let start: u64 = offset.trim().parse().expect("a start offset");
    let first = assembled::replay::replay(stream, start, expected, PATTERN, WINDOW, 1, 1);
    for (per_segment, per_message) in [(2, 3), (7, 1), (100_000, 1)] {
        let again = assembled::replay::replay(
            stream,
            start,
            expected,
            PATTERN,
            WINDOW,
            per_segment,
            per_message,
        );
        assert_eq!(
            again.topups, first.topups,
            "the top-ups do not depend on message shapes"
        );
    }
    first
}

macro_rules! recording {
    ($name:literal) => {
        check(
            include_bytes!(concat!("../../protocol/tests/data/", $name, ".resp")),
            include_str!(concat!("../../protocol/tests/data/", $name, ".offset")),
            include_bytes!(concat!("../../protocol/tests/data/", $name, ".expected")),
        )
    };
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn sorted_sets_equal_redis() {
    let replayed = recording!("types-zset");
    assert!(
        replayed.topups.contains(&"t:z3".to_string()),
        "{replayed:?}"
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn streams_equal_redis() {
    recording!("types-stream");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn lists_equal_redis() {
    recording!("types-list");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn hashes_equal_redis() {
    recording!("types-hash");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn strings_equal_redis() {
    let replayed = recording!("types-string");
    assert!(!replayed.resnapshot);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn whole_key_commands_equal_redis() {
    let replayed = recording!("types-keys");
    assert!(
        replayed.resnapshot,
        "the workload swaps the watched database"
    );
}
