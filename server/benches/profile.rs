//! The write profile's cost per command (`LinkProfile::batch`), on a stream shaped like a busy primary's rather
//! than the link bench's 16 keys: 200,000 writes in batches of 500, half of them to a hot set of 32 keys, a third to
//! 20,000 session keys of three `:`-parts, and the rest to keys written once (about a fifth of those 300 bytes
//! long, past the longest key a summary keeps), with a fifth of all keys outside `--allow`. The summaries are full
//! after the first few batches, so most new keys replace the lightest.
//!
//! ```text
//! cargo bench -p replicast-server --bench profile
//! ```

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use replicast_server::frames::{Frame, FrameIndex, Kind};
use replicast_server::profile::{ProfileSettings, WriteProfile};
use replicast_server::subscription::Allow;

const COMMANDS: usize = 200_000;
const BATCH: usize = 500;

/// The keys written, in order: deterministic (a small xorshift), so every run counts the same stream.
fn keys() -> Vec<String> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..COMMANDS)
        .map(|i| {
            let r = next();
            match r % 6 {
                0..=2 => format!("perf:host{}", r % 32),
                3 | 4 => format!("session:u{}:cart", (r >> 8) % 20_000),
                _ if r % 5 == 0 => format!("event:{i}:{}", "x".repeat(290)),
                _ if r % 7 == 0 => format!("secret:{i}:token"),
                _ => format!("event:{i}:{}", r >> 40),
            }
        })
        .collect()
}

/// `ZADD key <score> <~130-byte member>` for each key, cut into indexed batches as the link hands them over.
fn batches(keys: &[String]) -> Vec<(Vec<u8>, FrameIndex)> {
    let member = "m".repeat(130);
    keys.chunks(BATCH)
        .map(|chunk| {
            let mut raw = Vec::new();
            let mut index = FrameIndex::default();
            for key in chunk {
                let start = raw.len() as u32;
                raw.extend_from_slice(b"*4\r\n$4\r\nZADD\r\n");
                raw.extend_from_slice(format!("${}\r\n", key.len()).as_bytes());
                let key_at = raw.len() as u32;
                raw.extend_from_slice(key.as_bytes());
                let key_end = raw.len() as u32;
                raw.extend_from_slice(
                    format!("\r\n$13\r\n1700000000000\r\n$130\r\n{member}\r\n").as_bytes(),
                );
                let first_key = index.keys.len() as u32;
                index.keys.push(key_at..key_end);
                index.frames.push(Frame {
                    at: start..raw.len() as u32,
                    db: 0,
                    target_db: 0,
                    kind: Kind::Keyed,
                    keys: first_key..first_key + 1,
                    written: 1,
                });
            }
            (raw, index)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let batches = batches(&keys());
    let profile = WriteProfile::new(
        Arc::new(Allow::new(&[
            "perf:*".to_string(),
            "session:*".to_string(),
            "event:*".to_string(),
        ])),
        ProfileSettings {
            window: Duration::from_secs(10),
            hidden_prefixes: Vec::new(),
        },
    );
    let mut link = profile.link();
    let mut group = c.benchmark_group("write profile");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(COMMANDS as u64));
    group.bench_function("200,000 ZADDs, hot set, sessions, new and long keys", |b| {
        b.iter(|| {
            for (raw, index) in &batches {
                link.batch(raw, index);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
