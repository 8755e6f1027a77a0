//! Key patterns against keys: the attack of issue 16.5 (63 patterns of `*`, 998 `a` and `b` against one
//! 4,070-byte key, which a session's subscription and one browser event can make the relay match), the patterns
//! that cost this matcher the most within the relay's limits, and the everyday `perf:*`.
//!
//! ```text
//! cargo bench -p replicast-protocol --bench glob
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use replicast_protocol::pattern::Glob;

fn key() -> Vec<u8> {
    [b"notes:".as_slice(), &[b'a'; 4064]].concat()
}

/// One session's worth of a pattern: 63 copies, as in the issue.
fn session(pattern: &[u8]) -> Vec<Glob> {
    (0..63).map(|_| Glob::new(pattern)).collect()
}

fn bench(c: &mut Criterion) {
    let key = key();
    let cases: [(&str, Vec<u8>); 4] = [
        (
            "issue 16.5: 63 × (* + 998 a + b) vs a 4,070-byte key",
            [b"*".as_slice(), &[b'a'; 998], b"b"].concat(),
        ),
        (
            "63 × (* + 998 a + b + *): a plain part searched for",
            [b"*".as_slice(), &[b'a'; 998], b"b*"].concat(),
        ),
        (
            "63 × (* + 62 a + ?b + *): a 64-position wildcard part scanned",
            [b"*".as_slice(), &[b'a'; 62], b"?b*"].concat(),
        ),
        (
            "63 × (*a repeated 500 times): 499 parts searched for",
            b"*a".repeat(500),
        ),
    ];
    for (name, pattern) in cases {
        let globs = session(&pattern);
        c.bench_function(name, |b| {
            b.iter(|| globs.iter().filter(|g| g.matches(black_box(&key))).count())
        });
    }
    let everyday = Glob::new(b"perf:*");
    c.bench_function("perf:* vs perf:web-01", |b| {
        b.iter(|| everyday.matches(black_box(b"perf:web-01")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
