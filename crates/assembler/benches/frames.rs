//! A dashboard's frame at 1,000 hosts, natively: each frame one commands message of 1,000
//! `ZADD perf:hostN <ms> <~130-byte JSON>` (one new sample per host) applied to windows of 120 with aggregation on
//! as the browser API follows it (per key and across keys' newest items, 3 fields, the series of those fields),
//! the same path as `bench/assembler/frames.mjs` in Chromium, without the boundary.
//!
//! ```text
//! cargo bench -p replicast-assembler --bench frames
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use replicast_assembler::aggregate::sample::{Read, SampleReader, MAX_PATHS};
use replicast_assembler::aggregate::{Across, AggregateSpec, Aggregator, FieldSpec, Grouping};
use replicast_assembler::observe::{Item, ItemId, WindowObserver};
use replicast_assembler::series::SeriesCache;
use replicast_assembler::{StreamAssembler, WatchConfig};
use replicast_protocol::wire::{begin_commands, encode_hello, push_segment};

const HOSTS: u64 = 1_000;
const WINDOW: usize = 120;
/// Frames applied before the timed ones: every window full.
const FILL: u64 = WINDOW as u64;
const FRAMES: u64 = 20;
const FIELDS: [&str; 3] = ["cpu.user", "cpu.sys", "load"];
const START_MS: u64 = 1_700_000_000_000;

/// What the browser API follows (wasm/src/web/follow.rs): the per-key and the fleet aggregators and the series.
struct PageFollow {
    reader: SampleReader,
    by_key: Aggregator,
    fleet: Aggregator,
    series: SeriesCache,
}

impl PageFollow {
    fn new() -> Self {
        let spec = |grouping| {
            let fields = FIELDS.iter().map(|f| FieldSpec::gauge(*f)).collect();
            Aggregator::new(AggregateSpec::new(fields, grouping)).expect("a valid spec")
        };
        let by_key = spec(Grouping::ByKey);
        PageFollow {
            reader: SampleReader::new(&by_key.paths()).expect("valid paths"),
            by_key,
            fleet: spec(Grouping::AcrossKeys(Across::LatestPerKey)),
            series: SeriesCache::new(FIELDS.iter().map(|f| f.to_string()).collect())
                .expect("valid paths"),
        }
    }
}

impl WindowObserver for PageFollow {
    fn added(&mut self, key: &[u8], item: Item<'_>) {
        let mut reads = [Read::Missing; MAX_PATHS];
        let paths = self.reader.len();
        let read = self.reader.read_into(item.payload, &mut reads);
        let read = read.map(|()| &reads[..paths]).map_err(|_| ());
        self.by_key.added_reads(key, item, read);
        self.fleet.added_reads(key, item, read);
        self.series.added_reads(key, item, read);
    }

    fn removed(&mut self, key: &[u8], id: ItemId) {
        self.by_key.removed(key, id);
        self.fleet.removed(key, id);
        self.series.removed(key, id);
    }

    fn key_cleared(&mut self, key: &[u8]) {
        self.by_key.key_cleared(key);
        self.fleet.key_cleared(key);
        self.series.key_cleared(key);
    }
}

fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The samples of `bench/resp/record.mjs` (its PRNG, its fields, a sample every 250 ms across the fleet), one
/// message per frame of one sample per host; and each frame's clock, a second after its newest sample.
fn frames() -> Vec<(f64, Vec<u8>)> {
    let mut seed: u64 = 42;
    let mut rand = move || {
        seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
        seed as f64 / 2_147_483_648.0
    };
    let mut frames = Vec::new();
    let mut offset = 0u64;
    for frame in 0..FILL + FRAMES {
        let mut segment = Vec::new();
        let mut newest = 0.0f64;
        for host in 0..HOSTS {
            let i = frame * HOSTS + host;
            let key = format!("perf:host{host}");
            let ms = START_MS + i * 250 + (rand() * 100.0) as u64;
            newest = newest.max(ms as f64);
            let user = (rand() * 60.0 * 100.0).round() / 100.0;
            let sys = (rand() * 20.0 * 100.0).round() / 100.0;
            let member = format!(
                r#"{{"id":"s{i}","host":"host{host}","cpu":{{"user":{user},"sys":{sys},"idle":{}}},"mem":{},"net":{{"rx":{},"tx":{}}},"load":{}}}"#,
                ((100.0 - user - sys) * 100.0).round() / 100.0,
                (rand() * 16e9) as u64,
                (rand() * 1e7) as u64,
                (rand() * 1e7) as u64,
                (rand() * 8.0 * 100.0).round() / 100.0,
            );
            segment.extend_from_slice(&resp(&[
                b"ZADD",
                key.as_bytes(),
                ms.to_string().as_bytes(),
                member.as_bytes(),
            ]));
        }
        let mut message = begin_commands();
        push_segment(&mut message, offset, &segment);
        offset += segment.len() as u64;
        frames.push((newest + 1000.0, message));
    }
    frames
}

/// Windows full: the first `FILL` frames applied.
fn filled(frames: &[(f64, Vec<u8>)]) -> StreamAssembler<PageFollow> {
    let watch = WatchConfig {
        patterns: vec![b"perf:*".to_vec()],
        db: 0,
        window: WINDOW,
    };
    let mut a = StreamAssembler::with_observer(watch, PageFollow::new());
    a.push_message(&encode_hello("bench", 0)).expect("a hello");
    for (now, message) in &frames[..FILL as usize] {
        apply_frame(&mut a, *now, message);
    }
    a
}

/// One frame's message, applied as `Assembler.push` applies it.
#[inline(never)]
fn apply_frame(a: &mut StreamAssembler<PageFollow>, now: f64, message: &[u8]) {
    let page = a.observer_mut();
    page.by_key.set_now(now);
    page.fleet.set_now(now);
    black_box(a.push_message(message).expect("a commands message"));
}

/// The timed frames, each a host's new sample for every host; returns how many were applied. Its own code (not
/// the fill's loop, which the linker would fold into it) so that `callgrind --toggle-collect='*apply_frames*'`
/// counts the timed frames alone.
#[inline(never)]
fn apply_frames(a: &mut StreamAssembler<PageFollow>, frames: &[(f64, Vec<u8>)]) -> usize {
    let mut applied = 0;
    for (now, message) in frames {
        apply_frame(a, *now, message);
        applied += 1;
    }
    applied
}

fn bench(c: &mut Criterion) {
    let frames = frames();
    let mut group = c.benchmark_group("frames");
    group.throughput(Throughput::Elements(HOSTS * FRAMES));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("zadd_1000_hosts_window_120_aggregated", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut a = filled(&frames);
                let start = Instant::now();
                black_box(apply_frames(&mut a, &frames[FILL as usize..]));
                total += start.elapsed();
                assert_eq!(a.windows().count(), HOSTS as usize);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
