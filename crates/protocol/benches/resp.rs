//! Parsing a recorded replication stream: 200,000 `ZADD perf:hostN <ms> <~130-byte JSON>` as Redis sent them to
//! a replica, by our parser (whole, in the relay's 64 KiB reads, and one command at a time) and by the `redis`
//! crate's parser on the same bytes.
//!
//! Record the stream first, then run:
//!
//! ```text
//! cargo build -p replicast-server && node bench/resp/record.mjs
//! cargo bench -p replicast-protocol --bench resp
//! ```
//!
//! `REPLICAST_BENCH_STREAM` points at another recording.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use replicast_protocol::resp::{parse_command_into, Command, CommandReader, Limits};

/// The relay reads the replica link 64 KiB at a time.
const RELAY_READ: usize = 64 * 1024;

fn stream() -> Vec<u8> {
    let path = std::env::var_os("REPLICAST_BENCH_STREAM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-resp/zadd-200k.resp")
        });
    match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) => {
            eprintln!(
                "cannot read {} ({err}): record it with `node bench/resp/record.mjs`",
                path.display()
            );
            std::process::exit(1);
        }
    }
}

/// Our reader over `chunk`-sized pieces; returns the number of commands, checked against the whole.
fn read_in_chunks(stream: &[u8], chunk: usize) -> usize {
    let mut reader = CommandReader::new(0);
    let mut commands = 0;
    for piece in stream.chunks(chunk) {
        reader
            .push(piece, |c| commands += c.args.len().min(1))
            .expect("the recorded stream parses");
    }
    commands
}

fn one_at_a_time(stream: &[u8]) -> usize {
    let limits = Limits::default();
    let mut command = Command {
        args: Vec::new(),
        start: 0,
        end: 0,
    };
    let (mut pos, mut commands) = (0, 0);
    while parse_command_into(&stream[pos..], pos as u64, &limits, &mut command)
        .expect("the recorded stream parses")
    {
        pos += command.frame_len();
        commands += 1;
    }
    commands
}

/// The `redis` crate's parser, value after value, from the same bytes.
fn redis_crate(stream: &[u8], commands: usize) -> usize {
    let mut parser = redis::Parser::new();
    let mut reader = stream;
    for _ in 0..commands {
        let value = parser
            .parse_value(&mut reader)
            .expect("the redis crate parses the recorded stream");
        std::hint::black_box(value);
    }
    commands
}

fn bench(c: &mut Criterion) {
    let stream = stream();
    let commands = one_at_a_time(&stream);
    assert_eq!(read_in_chunks(&stream, RELAY_READ), commands);
    println!(
        "stream: {} bytes, {commands} commands ({:.1} bytes per command)",
        stream.len(),
        stream.len() as f64 / commands as f64
    );
    let mut group = c.benchmark_group("replication stream");
    group
        .throughput(Throughput::Bytes(stream.len() as u64))
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("replicast CommandReader, whole", |b| {
        b.iter(|| read_in_chunks(&stream, stream.len()))
    });
    group.bench_with_input(
        BenchmarkId::new("replicast CommandReader, chunks", RELAY_READ),
        &RELAY_READ,
        |b, &chunk| b.iter(|| read_in_chunks(&stream, chunk)),
    );
    group.bench_function("replicast parse_command_into", |b| {
        b.iter(|| one_at_a_time(&stream))
    });
    group.bench_function("redis crate Parser::parse_value", |b| {
        b.iter(|| redis_crate(&stream, commands))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
