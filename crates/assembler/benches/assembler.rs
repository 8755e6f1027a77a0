//! Applying ZADDs to windows: 200,000 `ZADD perf:hostN <ms> <~130-byte JSON>` over 20 keys, window 1,000, fed
//! as the relay sends them (commands messages of 64 KiB segments), into a StreamAssembler with no observer.
//!
//! ```text
//! cargo bench -p replicast-assembler --bench assembler
//! ```

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use replicast_assembler::{StreamAssembler, WatchConfig};
use replicast_protocol::wire::{begin_commands, encode_hello, push_segment};

const ZADDS: u64 = 200_000;
const KEYS: u64 = 20;

fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The stream as messages of whole commands, about 64 KiB each.
fn messages() -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let (mut segment, mut start, mut offset) = (Vec::new(), 0u64, 0u64);
    for i in 0..ZADDS {
        let key = format!("perf:host{}", i % KEYS);
        let score = (1_700_000_000_000 + i * 50).to_string();
        let member = format!(
            r#"{{"id":"s{i}","host":"host{}","cpu":{{"user":{}.5,"sys":3.25}},"mem":{},"net":{{"rx":{},"tx":{}}}}}"#,
            i % KEYS,
            i % 97,
            4_000_000_000 + i * 7,
            i * 977,
            i * 613
        );
        let command = resp(&[b"ZADD", key.as_bytes(), score.as_bytes(), member.as_bytes()]);
        offset += command.len() as u64;
        segment.extend_from_slice(&command);
        if segment.len() >= 64 * 1024 || i + 1 == ZADDS {
            let mut message = begin_commands();
            push_segment(&mut message, start, &segment);
            messages.push(message);
            segment.clear();
            start = offset;
        }
    }
    messages
}

fn apply_zadds(c: &mut Criterion) {
    let messages = messages();
    let mut group = c.benchmark_group("assembler");
    group.throughput(Throughput::Elements(ZADDS));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("zadd_200k_20_keys_window_1000", |b| {
        b.iter(|| {
            let mut a = StreamAssembler::new(WatchConfig {
                patterns: vec![b"perf:*".to_vec()],
                db: 0,
                window: 1000,
            });
            a.push_message(&encode_hello("bench", 0)).unwrap();
            for message in &messages {
                a.push_message(message).unwrap();
            }
            assert_eq!(a.windows().count(), KEYS as usize);
        })
    });
    group.finish();
}

criterion_group!(benches, apply_zadds);
criterion_main!(benches);
