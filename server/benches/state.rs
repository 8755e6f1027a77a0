//! The relay's state taking the collectors' stream (issue 22.1's hotspot): 200,000 `ZADD perf:hostN <ms>
//! <~130-byte JSON>` over 16 hosts, in the link's 64 KiB reads, through the link's `apply` into a state with the
//! default `--state-depth` and `--state-bytes` (windows that grow to 12,500 members each) and the backlog. After
//! each batch the state accounts for the bytes of the windows it changed; this measures the whole path, so the
//! accounting's share shows as the difference from the same run without a state.
//!
//! ```text
//! cargo bench -p replicast-server --bench state
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use replicast_server::backlog::{Backlog, DEFAULT_BACKLOG_BYTES};
use replicast_server::command_table::CommandTable;
use replicast_server::link_io::push_command as command;
use replicast_server::metrics::LinkMetrics;
use replicast_server::replica_link::{apply, Sink};
use replicast_server::state::feed::StateFeed;
use replicast_server::state::{
    RelayState, StateSettings, DEFAULT_STATE_BYTES, DEFAULT_STATE_DEPTH,
};
use replicast_server::stream_reader::{StreamReader, MAX_HELD_COMMAND};
use replicast_server::subscription::Allow;

/// The relay reads the replica link 64 KiB at a time.
const LINK_READ: usize = 64 * 1024;
const COMMANDS: usize = 200_000;
const HOSTS: usize = 16;
const EPOCH: &str = "0123456789abcdef0123456789abcdef01234567";

/// `SELECT 0` and the collectors' samples, as Redis propagates them.
fn stream() -> Vec<u8> {
    let mut out = Vec::new();
    command(&mut out, &[b"SELECT", b"0"]);
    for i in 0..COMMANDS {
        let host = format!("perf:host{}", i % HOSTS);
        let ms = (1_700_000_000_000 + i * 250).to_string();
        let json = format!(
            r#"{{"id":"s{i}","host":"host{}","cpu":{{"user":{}.25,"sys":3.5,"idle":80.25}},"mem":{},"net":{{"rx":{},"tx":4096}},"load":1.5}}"#,
            i % HOSTS,
            i % 60,
            i * 7919,
            i * 31
        );
        command(
            &mut out,
            &[b"ZADD", host.as_bytes(), ms.as_bytes(), json.as_bytes()],
        );
    }
    out
}

/// Redis 7.0.15's own command table.
fn table() -> Arc<CommandTable> {
    let reply = redis::parse_redis_value(include_bytes!("../tests/data/redis-7.0.15-command.resp"))
        .expect("the recorded COMMAND reply");
    Arc::new(CommandTable::from_command_reply(&reply))
}

/// A state after the full sync of an empty dataset: ready for the stream.
fn ready_state() -> RelayState {
    let state = RelayState::new(StateSettings {
        depth: DEFAULT_STATE_DEPTH,
        bytes: DEFAULT_STATE_BYTES,
        allow: vec!["perf:*".to_string()],
        history_bytes: DEFAULT_BACKLOG_BYTES,
    });
    state.begin_full_sync(EPOCH, 0);
    let mut rdb = b"REDIS0009".to_vec();
    rdb.push(0xFF);
    rdb.extend([0; 8]);
    state.load(&rdb);
    state.finish_full_sync();
    state
}

/// Feeds `stream` through the link's reader into the backlog, and the state if there is one (on its thread, as the
/// relay does, waited for to the end).
fn ingest(table: &Arc<CommandTable>, stream: &[u8], state: Option<Arc<RelayState>>) -> u64 {
    let state = state.map(|state| StateFeed::start(state, usize::MAX).expect("the state's thread"));
    let backlog = Backlog::new(1 << 30);
    backlog.restart(EPOCH, 0);
    let allow = Allow::new(&["perf:*".to_string()]);
    let sink = Sink {
        backlog: &backlog,
        state: state.as_ref(),
        allow: Some(&allow),
    };
    let metrics = LinkMetrics::default();
    let mut reader = StreamReader::new(table.clone(), 0, MAX_HELD_COMMAND, 512 << 20);
    let mut buf = BytesMut::with_capacity(LINK_READ);
    let mut getacks = Vec::new();
    for read in stream.chunks(LINK_READ) {
        buf.extend_from_slice(read);
        reader
            .read(&mut buf, &mut |output| {
                apply(output, sink, &metrics, None, &mut getacks)
            })
            .expect("the stream reads");
    }
    if let Some(state) = state {
        state.finish();
    }
    reader.offset()
}

fn bench(c: &mut Criterion) {
    let table = table();
    let stream = stream();
    println!(
        "stream: {} bytes, {COMMANDS} ZADDs over {HOSTS} hosts",
        stream.len()
    );
    let mut group = c.benchmark_group("state ingest");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("link and backlog, with the state", |b| {
        b.iter_with_large_drop(|| {
            let state = Arc::new(ready_state());
            ingest(&table, &stream, Some(state.clone()));
            state
        })
    });
    group.bench_function("link and backlog, stateless", |b| {
        b.iter(|| ingest(&table, &stream, None))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
