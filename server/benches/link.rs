//! The relay's replica link cutting a recorded replication stream into indexed batches (`StreamReader`): the
//! 200,000 `ZADD perf:hostN <ms> <~130-byte JSON>` of bench/resp, in the link's 64 KiB reads, with a 20 MiB
//! command too large to hold in the middle or not, and with the write profile counting every batch (`/profile`)
//! or not. The ingest path before the backlog, without the socket.
//!
//! Record the stream first, then run:
//!
//! ```text
//! cargo build -p replicast-server && node bench/resp/record.mjs
//! cargo bench -p replicast-server --bench link
//! ```
//!
//! `REPLICAST_BENCH_STREAM` points at another recording.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use redis::Value;
use replicast_server::command_table::CommandTable;
use replicast_server::profile::{LinkProfile, ProfileSettings, WriteProfile};
use replicast_server::stream_reader::{Output, StreamReader, MAX_HELD_COMMAND};
use replicast_server::subscription::Allow;

/// The relay reads the replica link 64 KiB at a time.
const LINK_READ: usize = 64 * 1024;

fn stream() -> Vec<u8> {
    let path = std::env::var_os("REPLICAST_BENCH_STREAM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-resp/zadd-200k.resp")
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

/// `ZADD`, `SET` and what Redis sends besides, in Redis 6's shape (first key, last key, step).
fn table() -> Arc<CommandTable> {
    let entry = |name: &str, first: i64| {
        Value::Array(vec![
            Value::BulkString(name.as_bytes().to_vec()),
            Value::Int(-2),
            Value::Array(vec![]),
            Value::Int(first),
            Value::Int(first),
            Value::Int(1),
        ])
    };
    Arc::new(CommandTable::from_command_reply(&Value::Array(vec![
        entry("zadd", 1),
        entry("set", 1),
        entry("select", 0),
        entry("ping", 0),
        entry("replconf", 0),
    ])))
}

/// Reads `stream` in the link's reads; returns the frames indexed (held or not).
fn read(table: &Arc<CommandTable>, stream: &[u8]) -> usize {
    read_profiled(table, stream, None)
}

/// The same, each batch counted by `profile` as the link counts it before the backlog.
fn read_profiled(
    table: &Arc<CommandTable>,
    stream: &[u8],
    mut profile: Option<&mut LinkProfile>,
) -> usize {
    let mut reader = StreamReader::new(table.clone(), 0, MAX_HELD_COMMAND, 512 << 20);
    let mut buf = BytesMut::with_capacity(LINK_READ);
    let mut frames = 0;
    for piece in stream.chunks(LINK_READ) {
        buf.extend_from_slice(piece);
        reader
            .read(&mut buf, &mut |output| match output {
                Output::Batch { raw, index, .. } => {
                    if let Some(profile) = profile.as_deref_mut() {
                        profile.batch(&raw, &index);
                    }
                    frames += index.frames.len()
                }
                Output::Unheld { index, .. } => frames += index.frames.len(),
                Output::GetAck(_) => {}
            })
            .expect("the recorded stream reads");
    }
    frames
}

fn bench(c: &mut Criterion) {
    let table = table();
    let stream = stream();
    let commands = read(&table, &stream);
    // The same stream with a 20 MiB value half way, at a command boundary.
    let half = {
        let mut at = 0;
        let mut reader = StreamReader::new(table.clone(), 0, MAX_HELD_COMMAND, 512 << 20);
        let mut buf = BytesMut::from(&stream[..stream.len() / 2]);
        reader
            .read(&mut buf, &mut |o| {
                if let Output::Batch { start, raw, .. } = o {
                    at = start as usize + raw.len();
                }
            })
            .unwrap();
        at
    };
    let mut with_large = stream[..half].to_vec();
    with_large.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$7\r\nperf:20\r\n$20971520\r\n");
    with_large.resize(with_large.len() + (20 << 20), b'x');
    with_large.extend_from_slice(b"\r\n");
    with_large.extend_from_slice(&stream[half..]);
    assert_eq!(read(&table, &with_large), commands + 1);
    println!("stream: {} bytes, {commands} commands", stream.len());

    let mut group = c.benchmark_group("replica link");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("StreamReader, 64 KiB reads", |b| {
        b.iter(|| read(&table, &stream))
    });
    // Half the keys allowed, so both the named and the hidden paths are taken.
    let profile = WriteProfile::new(
        Arc::new(Allow::new(&["perf:host1*".to_string()])),
        ProfileSettings {
            window: Duration::from_secs(10),
            hidden_prefixes: Vec::new(),
        },
    );
    let mut link = profile.link();
    group.bench_function("StreamReader, 64 KiB reads, with the write profile", |b| {
        b.iter(|| read_profiled(&table, &stream, Some(&mut link)))
    });
    group.throughput(Throughput::Bytes(with_large.len() as u64));
    group.bench_function("StreamReader, 64 KiB reads, a 20 MiB value half way", |b| {
        b.iter(|| read(&table, &with_large))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
