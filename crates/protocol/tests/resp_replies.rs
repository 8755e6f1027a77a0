//! The reply parser on every RESP2 and RESP3 type, whole and in every two-piece split, natively and (with
//! `wasm-pack test`) in wasm in Chromium.

use replicast_protocol::resp::{Limits, RespError, Value, ValueReader};

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// One reply of each type, as Redis 7 writes them with `HELLO 3`.
const REPLIES: &[u8] =
    b"+OK\r\n-ERR unknown\r\n:-7\r\n$5\r\na\r\nb\0\r\n$-1\r\n*-1\r\n_\r\n,3.25\r\n#f\r\n\
(123456789012345678901234567890\r\n=9\r\ntxt:hello\r\n!4\r\nOOPS\r\n\
*2\r\n$1\r\nx\r\n%1\r\n+k\r\n~2\r\n:1\r\n:2\r\n\
>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nhi!\r\n\
|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*1\r\n:2039\r\n";

fn read(pieces: &[&[u8]]) -> Vec<(String, u64, u64)> {
    let mut reader = ValueReader::new(0);
    let mut out = Vec::new();
    for piece in pieces {
        reader
            .push(piece, |v, at| {
                out.push((format!("{v:?}"), at.start, at.end))
            })
            .expect("valid replies");
    }
    assert_eq!(reader.pending_len(), 0);
    out
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn every_type_parses_whatever_the_split() {
    let whole = read(&[REPLIES]);
    assert_eq!(whole.len(), 15);
    assert_eq!(whole.last().map(|v| v.2), Some(REPLIES.len() as u64));
    for cut in 0..REPLIES.len() {
        assert_eq!(
            read(&[&REPLIES[..cut], &REPLIES[cut..]]),
            whole,
            "cut at {cut}"
        );
    }
    let mut reader = ValueReader::new(0);
    let mut values = Vec::new();
    reader
        .push(REPLIES, |v, _| {
            if let Value::Attribute { value, .. } = v {
                values.push(format!("{value:?}"));
            }
        })
        .unwrap();
    assert_eq!(
        values,
        [format!("{:?}", Value::Array(vec![Value::Integer(2039)]))]
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = b"*1\r\n".repeat(100_000);
    let mut reader = ValueReader::new(0);
    let err = reader.push(&deep, |_, _| {}).unwrap_err();
    assert_eq!(
        err,
        RespError::Limit {
            offset: 512,
            what: "nesting depth",
            len: 129,
            limit: 128
        }
    );
    // The deepest the default allows parses, without recursion.
    let mut deepest = b"*1\r\n".repeat(128);
    deepest.extend_from_slice(b":1\r\n");
    let mut depth = 0;
    ValueReader::new(0)
        .push(&deepest, |v, _| {
            let mut v = &v;
            while let Value::Array(items) = v {
                depth += 1;
                v = &items[0];
            }
        })
        .unwrap();
    assert_eq!(depth, 128);
    let limits = Limits {
        max_depth: 2,
        ..Limits::default()
    };
    let mut reader = ValueReader::with_limits(0, limits);
    assert!(reader.push(b"*1\r\n*1\r\n*1\r\n", |_, _| {}).is_err());
}
