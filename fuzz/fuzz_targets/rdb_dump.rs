//! `DUMP` payload decoding over arbitrary bytes: never a panic or a hang, and the same result twice.
//!
//! Run: `cargo +nightly fuzz run rdb_dump -- -max_total_time=600` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use replicast_rdb::{decode_dump, Limits, ReaderOptions};

fuzz_target!(|data: &[u8]| {
    let options = ReaderOptions {
        limits: Limits {
            max_string_len: 1 << 16,
            max_encoded_len: 1 << 16,
        },
        best_effort: true,
    };
    let mut events = 0usize;
    let result = decode_dump(data, options, |_| events += 1);
    if result.is_ok() {
        assert!(
            events >= 2,
            "a decoded payload reports at least its header and end"
        );
    }
});
