//! Lengths no Redis would write, in the RDB reader: 2^63 and more. Each is refused before anything is allocated
//! for it, with the offset and the limit in the error, or costs nothing until its elements come. (The RESP
//! parser's are in `crates/protocol/tests/bad_input.rs`.)
#![cfg(not(target_arch = "wasm32"))]

use replicast_rdb::{Event, RdbError, RdbReader};

/// `REDIS0011`, `SELECT 0`, then `rest`.
fn rdb(rest: &[u8]) -> Vec<u8> {
    let mut rdb = b"REDIS0011".to_vec();
    rdb.extend([0xfe, 0x00]);
    rdb.extend(rest);
    rdb
}

#[test]
fn rdb_lengths_of_2_to_the_63_and_more_are_refused_or_cost_nothing() {
    // A key announced as 2^63 (or 2^64 - 1) bytes: refused at its length, before any allocation.
    for (len, text) in [
        (1u64 << 63, "9223372036854775808"),
        (u64::MAX, "18446744073709551615"),
    ] {
        let mut input = vec![0x00, 0x81];
        input.extend(len.to_be_bytes());
        let err = RdbReader::new().push(&rdb(&input), |_| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("RDB offset 12: a key of {text} bytes exceeds the limit of 536870912")
        );
    }
    // A list announced with 2^63 elements: elements are reported as they come, nothing is reserved for the
    // count, and the input's end is a clear error.
    let mut input = vec![0x01, 1, b'l', 0x81];
    input.extend((1u64 << 63).to_be_bytes());
    input.extend([1, b'a']);
    let mut reader = RdbReader::new();
    let mut elements = 0;
    reader
        .push(&rdb(&input), |e| {
            if matches!(e, Event::Element(_)) {
                elements += 1;
            }
        })
        .unwrap();
    assert_eq!((elements, reader.pending_len()), (1, 0));
    let err = reader.finish().unwrap_err();
    assert!(matches!(err, RdbError::Truncated { offset: 25, .. }));
    assert_eq!(
        err.to_string(),
        "RDB offset 25: the input ended while expecting the rest of a value"
    );
}
