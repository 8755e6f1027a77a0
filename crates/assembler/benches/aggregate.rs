//! The aggregation's cost per item: a sample entering a window and the oldest leaving it, read from its JSON,
//! with 3 fields (two gauges and a counter) and the default 1 s / 10 s / 1 min buckets, and the cost of reading
//! every statistic once (what a page does per animation frame).
//!
//! ```text
//! cargo bench -p replicast-assembler --bench aggregate
//! ```

use std::collections::VecDeque;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use replicast_assembler::aggregate::json::{Found, PathSet};
use replicast_assembler::aggregate::{
    Across, AggregateSpec, Aggregator, FieldSpec, Grouping, Scope,
};
use replicast_assembler::observe::{Item, ItemId, Payload, WindowObserver};

/// Distinct sample payloads, cycled through.
const PAYLOADS: usize = 997;

/// A collector's sample, shaped like the monitoring example's (~330 bytes).
fn sample(host: usize, i: usize) -> String {
    let cpu = (i * 7919 % 1000) as f64 / 10.0;
    format!(
        r#"{{"id":"h{host}-{i}","t":{i},"host":"h{host}","cpu":{{"total":{cpu},"user":{u},"sys":{s},"cores":[{cpu},{u},{s},1.5]}},"mem":{{"used":{m},"available":{a}}},"load":[{l},0.4,0.3],"net":{{"eth0":{{"rx":{rx},"tx":{tx}}},"lo":{{"rx":1,"tx":1}}}},"procs":312}}"#,
        u = cpu / 2.0,
        s = cpu / 4.0,
        m = 4_000_000 + i * 13 % 100_000,
        a = 12_000_000 - i * 13 % 100_000,
        l = (i % 300) as f64 / 100.0,
        rx = i * 125_000,
        tx = i * 12_500,
    )
}

fn spec(grouping: Grouping) -> AggregateSpec {
    AggregateSpec::new(
        vec![
            FieldSpec::gauge("cpu.total"),
            FieldSpec::gauge("load.0"),
            FieldSpec::counter("net.eth0.rx"),
        ],
        grouping,
    )
}

/// `keys` windows of `window` samples each, fed one sample at a time round-robin, one per 1000/`keys` ms.
struct Feed {
    agg: Aggregator,
    keys: Vec<Vec<u8>>,
    windows: Vec<VecDeque<ItemId>>,
    payloads: Vec<String>,
    window: usize,
    next_id: ItemId,
    step: usize,
}

impl Feed {
    fn new(grouping: Grouping, keys: usize, window: usize) -> Self {
        let mut feed = Feed {
            agg: Aggregator::new(spec(grouping)).expect("a valid spec"),
            keys: (0..keys)
                .map(|k| format!("perf:h{k}").into_bytes())
                .collect(),
            windows: vec![VecDeque::new(); keys],
            payloads: (0..PAYLOADS).map(|i| sample(i % keys, i)).collect(),
            window,
            next_id: 0,
            step: 0,
        };
        for _ in 0..keys * window {
            feed.next();
        }
        feed
    }

    /// One sample in, and the key's oldest out once its window is full.
    fn next(&mut self) {
        let k = self.step % self.keys.len();
        let time_ms = (self.step * 1000 / self.keys.len()) as f64;
        let payload = self.payloads[self.step % PAYLOADS].as_bytes();
        self.next_id += 1;
        self.step += 1;
        let item = Item {
            id: self.next_id,
            time_ms: Some(time_ms),
            payload: Payload::Value(payload),
        };
        self.agg.added(&self.keys[k], item);
        self.windows[k].push_back(self.next_id);
        if self.windows[k].len() > self.window {
            let oldest = self.windows[k].pop_front().expect("a full window");
            self.agg.removed(&self.keys[k], oldest);
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("aggregate");
    let cases = [
        ("by key, 20 keys × 1000", Grouping::ByKey, 20, 1000),
        (
            "across keys (all items), 20 keys × 1000",
            Grouping::AcrossKeys(Across::AllItems),
            20,
            1000,
        ),
        (
            "fleet (latest per key), 200 keys × 60",
            Grouping::AcrossKeys(Across::LatestPerKey),
            200,
            60,
        ),
    ];
    for (name, grouping, keys, window) in cases {
        let mut feed = Feed::new(grouping, keys, window);
        group.bench_function(format!("add + remove, {name}"), |b| b.iter(|| feed.next()));
        group.bench_function(format!("all summaries, {name}"), |b| {
            b.iter(|| black_box(feed.agg.summaries()))
        });
    }
    let mut fleet = Feed::new(Grouping::AcrossKeys(Across::LatestPerKey), 200, 60);
    group.bench_function("fleet count above 80 % CPU, 200 keys", |b| {
        b.iter(|| black_box(fleet.agg.count_above(b"", 0, Scope::Window, 80.0)))
    });
    let payload = sample(0, 12345);
    let paths = PathSet::new(&["cpu.total", "load.0", "net.eth0.rx"]).expect("valid paths");
    let mut found = vec![Found::Missing; paths.len()];
    group.bench_function(
        format!("read 3 fields from a {}-byte sample", payload.len()),
        |b| b.iter(|| paths.extract(black_box(payload.as_bytes()), &mut found)),
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
