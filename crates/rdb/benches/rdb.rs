//! Parsing a mixed RDB dump written by redis-server (every type, compact and plain encodings, TTLs, streams),
//! natively, in the relay's 64 KiB reads and in the CLI's 256 KiB reads.
//!
//! Write the dump first, then run:
//!
//! ```text
//! bash bench/rdb/make-dumps.sh mixed
//! cargo bench -p replicast-rdb --bench rdb
//! ```
//!
//! `REPLICAST_RDB_BENCH_FILE` points at another dump. `bench/rdb/run.mjs` measures the whole `replicast rdb`
//! command and the wasm build in Node, with peak RSS.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use replicast_rdb::{Event, RdbReader};

fn dump() -> Vec<u8> {
    let path = std::env::var_os("REPLICAST_RDB_BENCH_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/rdb-bench/mixed.rdb")
        });
    match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) => {
            eprintln!(
                "cannot read {} ({err}): write it with `bash bench/rdb/make-dumps.sh mixed`",
                path.display()
            );
            std::process::exit(1);
        }
    }
}

/// Parses `dump` in `chunk`-sized pieces; returns the number of keys.
fn parse(dump: &[u8], chunk: usize) -> u64 {
    let mut reader = RdbReader::new();
    let mut keys = 0;
    for piece in dump.chunks(chunk) {
        reader
            .push(piece, |e| {
                if let Event::KeyStart(_) = e {
                    keys += 1;
                }
            })
            .expect("the dump parses");
    }
    reader.finish().expect("the dump ends");
    keys
}

fn bench(c: &mut Criterion) {
    let dump = dump();
    let mut group = c.benchmark_group("rdb");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Bytes(dump.len() as u64));
    for chunk in [64 * 1024, 256 * 1024] {
        group.bench_with_input(BenchmarkId::new("reader", chunk), &chunk, |b, &chunk| {
            b.iter(|| parse(&dump, chunk))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
