//! Lengths no Redis would write, in the RESP parser: 2^63 and more, negative, and arrays nested 10,000 deep. Each
//! is refused before anything is allocated for it, with the offset and the limit in the error, or read as Redis
//! itself reads it. (The RDB reader's are in `crates/rdb/tests/bad_input.rs`.)
#![cfg(not(target_arch = "wasm32"))]

use replicast_protocol::resp::{parse_command, parse_value, CommandReader, Limits};

fn command_error(input: &[u8]) -> String {
    parse_command(input, 0, &Limits::default())
        .unwrap_err()
        .to_string()
}

fn reply_error(input: &[u8]) -> String {
    parse_value(input, 0, &Limits::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn resp_lengths_of_2_to_the_63_are_refused_by_their_digits_or_their_limit() {
    // 2^63 has 19 digits: past what any limit allows, so the parser stops counting at 18.
    assert_eq!(
        command_error(b"*1\r\n$9223372036854775808\r\n"),
        "replication stream offset 5: expected a bulk length, found more than 18 digits"
    );
    assert_eq!(
        command_error(b"*9223372036854775807\r\n"),
        "replication stream offset 1: expected an array length, found more than 18 digits"
    );
    assert_eq!(
        reply_error(b"$9223372036854775808\r\n"),
        "replication stream offset 1: expected a bulk length, found more than 18 digits"
    );
    // 18 digits parse, and meet the limit before any allocation.
    assert_eq!(
        command_error(b"*1\r\n$999999999999999999\r\n"),
        "replication stream offset 4: bulk length 999999999999999999 exceeds the limit of 536870912"
    );
    assert_eq!(
        command_error(b"*999999999999999999\r\n"),
        "replication stream offset 0: argument count 999999999999999999 exceeds the limit of 1048576"
    );
    assert_eq!(
        reply_error(b"*999999999999999999\r\n"),
        "replication stream offset 0: aggregate length 999999999999999999 exceeds the limit of 16777216"
    );
}

#[test]
fn negative_resp_lengths_are_refused_except_where_redis_reads_them() {
    assert_eq!(
        command_error(b"*1\r\n$-5\r\n"),
        "replication stream offset 5: expected a bulk length of 0 or more, found -5"
    );
    assert_eq!(
        command_error(b"*1\r\n$-1\r\n"),
        "replication stream offset 5: expected a bulk length of 0 or more, found -1",
        "a null bulk is no command argument"
    );
    for (input, found) in [
        (
            &b"$-2\r\n"[..],
            "expected a bulk length of 0 or more, found -2",
        ),
        (
            b"*-2\r\n",
            "expected an aggregate length of 0 or more, found -2",
        ),
        (
            b"%-1\r\n",
            "expected an aggregate length of 0 or more, found -1",
        ),
        (
            b"~-5\r\n",
            "expected an aggregate length of 0 or more, found -5",
        ),
    ] {
        assert_eq!(
            reply_error(input),
            format!("replication stream offset 1: {found}")
        );
    }
    // Redis's own replica reads a multibulk count of 0 or less as an empty command, and counts its bytes.
    let empty = parse_command(b"*-2\r\n", 40, &Limits::default())
        .unwrap()
        .unwrap();
    assert!(empty.args.is_empty());
    assert_eq!((empty.start, empty.end), (40, 45));
}

#[test]
fn arrays_nested_10_000_deep_stop_at_the_first_level_a_command_cannot_have() {
    let deep = b"*1\r\n".repeat(10_000);
    // A command is an array of bulk strings: the second array is already wrong.
    let mut reader = CommandReader::new(0);
    let err = reader.push(&deep, |_| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        "replication stream offset 4: expected '$' (a bulk string argument), found '*'"
    );
    // Replies nest, up to 128 levels (`nesting_and_lengths_are_bounded` in src/resp/value.rs); arriving a few
    // bytes at a time, the 10,000 levels fail just the same, holding no more than what arrived.
    let mut reader = replicast_protocol::resp::ValueReader::new(0);
    let mut failed = None;
    for chunk in deep.chunks(7) {
        if let Err(err) = reader.push(chunk, |_, _| {}) {
            failed = Some(err.to_string());
            break;
        }
        assert!(reader.pending_len() <= 129 * 4);
    }
    assert_eq!(
        failed.as_deref(),
        Some("replication stream offset 512: nesting depth 129 exceeds the limit of 128")
    );
}
