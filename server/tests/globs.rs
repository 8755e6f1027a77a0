//! The relay's key patterns against the Redis it follows: every pattern of up to three bytes over the bytes that
//! mean something in a glob (and a few longer ones), asked of a real `redis-server` with `KEYS` and `SCAN MATCH`
//! over keys chosen to sit on every edge (the empty key, `]`, `-`, `\`, bytes from 0x80 that Redis compares as
//! negative in ranges), must list exactly the keys `Glob::matches` says.

mod support;

use std::collections::BTreeSet;

use replicast_protocol::pattern::Glob;
use support::*;

const KEYS: &[&[u8]] = &[
    b"",
    b"a",
    b"b",
    b"]",
    b"-",
    b"^",
    b"\\",
    b"[",
    b"*",
    b"?",
    b"\x80",
    b"\xff",
    b"\x00",
    b"ab",
    b"ba",
    b"aa",
    b"a]",
    b"a-",
    b"-a",
    b"a\\",
    b"a*b",
    b"abc",
    b"a\x80",
    b"\xffa",
    b"perf:",
    b"perf:web-1",
    b"perf:web-12",
];

/// Patterns of up to three bytes over the glob's own bytes, and longer ones for ranges, escapes and open classes.
fn patterns() -> Vec<Vec<u8>> {
    let alphabet: &[u8] = b"ab*?[]^-\\\x80\xff";
    let mut patterns = vec![Vec::new()];
    let mut shorter = vec![Vec::new()];
    for _ in 0..3 {
        let longer: Vec<Vec<u8>> = shorter
            .iter()
            .flat_map(|p: &Vec<u8>| alphabet.iter().map(move |&b| [p.as_slice(), &[b]].concat()))
            .collect();
        patterns.extend(longer.iter().cloned());
        shorter = longer;
    }
    let more: &[&[u8]] = &[
        b"[a-]",
        b"[a-]*",
        b"[^a-]",
        b"[\\]]",
        b"[\\",
        b"[a-\\",
        b"[a-\xff]",
        b"[\xff-a]",
        b"[\x80-a]",
        b"[^\x80-a]",
        b"[\x00-\x7f]",
        b"*[a-b]*",
        b"*\\**",
        b"a*b*c",
        b"perf:*",
        b"perf:web-?",
        b"perf:*-1*",
        b"perf:*[0-9]",
        b"*[^a]*",
        b"[]a]",
        b"[^]a]",
        b"\\",
        b"a\\",
        b"[a",
        b"[^a",
    ];
    patterns.extend(more.iter().map(|p| p.to_vec()));
    patterns
}

fn expected(pattern: &[u8]) -> BTreeSet<Vec<u8>> {
    let glob = Glob::new(pattern);
    KEYS.iter()
        .filter(|k| glob.matches(k))
        .map(|k| k.to_vec())
        .collect()
}

#[tokio::test]
async fn patterns_match_the_keys_redis_lists_for_them() {
    let (_redis, port) = start_redis();
    let mut conn = redis_conn(port).await;
    let mut set = redis::pipe();
    for key in KEYS {
        set.cmd("SET").arg(*key).arg(1).ignore();
    }
    let () = set.query_async(&mut conn).await.unwrap();

    let patterns = patterns();
    assert!(patterns.len() > 1400);
    let mut keys = redis::pipe();
    for pattern in &patterns {
        keys.cmd("KEYS").arg(pattern.as_slice());
    }
    let listed: Vec<Vec<Vec<u8>>> = keys.query_async(&mut conn).await.unwrap();
    let mut differ = Vec::new();
    for (pattern, listed) in patterns.iter().zip(listed) {
        let listed: BTreeSet<Vec<u8>> = listed.into_iter().collect();
        if listed != expected(pattern) {
            differ.push(format!(
                "{:?}: Redis lists {:?}, the relay matches {:?}",
                pattern.escape_ascii().to_string(),
                listed
                    .iter()
                    .map(|k| k.escape_ascii().to_string())
                    .collect::<Vec<_>>(),
                expected(pattern)
                    .iter()
                    .map(|k| k.escape_ascii().to_string())
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} patterns differ:\n{}",
        differ.len(),
        patterns.len(),
        differ.join("\n")
    );

    // SCAN MATCH, which snapshots use, lists the same keys.
    for pattern in [&b"*"[..], b"**", b"[a-]", b"[\x80-a]", b"perf:*", b"?"] {
        let mut cursor = 0u64;
        let mut scanned = BTreeSet::new();
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .unwrap();
            scanned.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(scanned, expected(pattern), "{}", pattern.escape_ascii());
    }
}
