use super::*;
use crate::observe::Payload;
use sample::MAX_PATHS;

fn item(id: ItemId, time_ms: f64, json: &str) -> Item<'_> {
    Item {
        id,
        time_ms: Some(time_ms),
        payload: Payload::Value(json.as_bytes()),
    }
}

fn sample(host: &str, t: u64, cpu: f64, rx: u64) -> String {
    format!(
        r#"{{"id":"{host}-{t}","t":{t},"host":"{host}","cpu":{{"total":{cpu},"cores":[{cpu},0]}},"load":[0.5,0.4,0.3],"net":{{"eth0":{{"rx":{rx},"tx":1}}}}}}"#
    )
}

fn perf_spec(grouping: Grouping) -> AggregateSpec {
    AggregateSpec::new(
        vec![
            FieldSpec::gauge("cpu.total"),
            FieldSpec::counter("net.eth0.rx"),
            FieldSpec::gauge("load.0"),
        ],
        grouping,
    )
}

#[test]
fn per_host_window_statistics_latest_and_rate() {
    let mut agg = Aggregator::new(perf_spec(Grouping::ByKey)).unwrap();
    // One sample a second; rx grows 1000 B/s, then the counter resets at t=5 s.
    let rx = [0, 1000, 2000, 3000, 4000, 500, 1500];
    for (i, &rx) in rx.iter().enumerate() {
        let t = 1_000 * i as u64;
        let json = sample("h1", t, 10.0 * (i + 1) as f64, rx);
        agg.added(b"perf:h1", item(i as ItemId, t as f64, &json));
    }
    let summary = agg.summary(b"perf:h1").unwrap();
    assert_eq!(summary.items, 7);
    let cpu = &summary.fields[0];
    assert_eq!(cpu.window.count, 7);
    assert_eq!((cpu.window.min, cpu.window.max), (Some(10.0), Some(70.0)));
    assert_eq!(cpu.window.mean, Some(40.0));
    assert_eq!((cpu.window.p50, cpu.window.p95), (Some(40.0), Some(70.0)));
    assert_eq!(cpu.window.rate, None, "gauges have no rate");
    assert_eq!(
        cpu.latest,
        Some(Latest {
            value: 70.0,
            time_ms: 6_000.0
        })
    );
    // Increases 1000 × 4, then 500 (reset: counted from 0), then 1000; over 6 s.
    let rx = &summary.fields[1];
    assert_eq!(rx.window.rate, Some(5_500.0 / 6.0));
    // Buckets end at the clock (6 s): 1 s holds (5 s, 6 s], 10 s everything.
    assert_eq!(cpu.buckets[0].count, 1);
    assert_eq!(rx.buckets[0].rate, None, "one sample has no rate");
    assert_eq!(cpu.buckets[1], cpu.window);
    assert_eq!(summary.fields[2].window.mean, Some(0.5));

    // The oldest leaves the window.
    agg.removed(b"perf:h1", 0);
    let rx = agg.stats(b"perf:h1", 1, Scope::Window).unwrap();
    assert_eq!(rx.rate, Some(4_500.0 / 5.0));
    assert_eq!(agg.counters().removed, 1);
}

#[test]
fn rolling_buckets_follow_the_clock() {
    let mut agg =
        Aggregator::new(perf_spec(Grouping::ByKey).with_buckets_ms(vec![1_000.0, 10_000.0]))
            .unwrap();
    for i in 0..20u64 {
        let json = sample("h1", i * 500, i as f64, i * 100);
        agg.added(b"perf:h1", item(i, (i * 500) as f64, &json));
    }
    // Clock 9.5 s: the 1 s bucket holds 9.0 and 9.5 s (8.5 s is exactly at the horizon, out).
    let one = agg.stats(b"perf:h1", 0, Scope::Bucket(0)).unwrap();
    assert_eq!((one.count, one.min, one.max), (2, Some(18.0), Some(19.0)));
    assert_eq!(
        agg.stats(b"perf:h1", 1, Scope::Bucket(0)).unwrap().rate,
        Some(200.0)
    );
    // Time passes without samples: the buckets empty, the window does not.
    agg.set_now(19_400.0);
    assert_eq!(agg.stats(b"perf:h1", 0, Scope::Bucket(0)).unwrap().count, 0);
    assert_eq!(agg.stats(b"perf:h1", 0, Scope::Bucket(1)).unwrap().count, 1);
    assert_eq!(agg.stats(b"perf:h1", 0, Scope::Window).unwrap().count, 20);
    assert_eq!(agg.stats(b"perf:h1", 0, Scope::Bucket(2)), None);
    // The clock never goes back.
    agg.set_now(0.0);
    assert_eq!(agg.clock_ms(), Some(19_400.0));
}

#[test]
fn fleet_view_of_each_hosts_latest_sample() {
    let mut agg = Aggregator::new(perf_spec(Grouping::AcrossKeys(Across::LatestPerKey))).unwrap();
    let cpu = agg.field_index("cpu.total").unwrap();
    let mut id = 0;
    for (host, cpus) in [
        ("h1", [10.0, 95.0]),
        ("h2", [20.0, 30.0]),
        ("h3", [99.0, 85.0]),
    ] {
        for (i, c) in cpus.into_iter().enumerate() {
            let key = format!("perf:{host}");
            agg.added(
                key.as_bytes(),
                item(id, 1_000.0 * i as f64, &sample(host, 0, c, 0)),
            );
            id += 1;
        }
    }
    // Current samples: h1 95, h2 30, h3 85.
    let fleet = agg.stats(b"", cpu, Scope::Window).unwrap();
    assert_eq!(
        (fleet.count, fleet.mean, fleet.p95),
        (3, Some(70.0), Some(95.0))
    );
    assert_eq!(agg.count_above(b"", cpu, Scope::Window, 80.0), Some(2));
    assert_eq!(agg.stats(b"", 1, Scope::Window).unwrap().rate, None);
    // h1's newest sample leaves: its previous one (10) is its current sample again.
    agg.removed(b"perf:h1", 1);
    assert_eq!(agg.count_above(b"", cpu, Scope::Window, 80.0), Some(1));
    assert_eq!(agg.quantile(b"", cpu, Scope::Window, 0), Some(10.0));
    // An older sample arriving late does not displace a newer one.
    agg.added(b"perf:h2", item(100, -5.0, &sample("h2", 0, 1.0, 0)));
    assert_eq!(agg.stats(b"", cpu, Scope::Window).unwrap().min, Some(10.0));
    agg.key_cleared(b"perf:h3");
    assert_eq!(agg.summary(b"").unwrap().items, 2);
    agg.key_cleared(b"perf:h1");
    agg.key_cleared(b"perf:h2");
    assert_eq!(agg.summary(b""), None);
    assert_eq!(agg.items(), 0);
}

#[test]
fn grouped_by_a_field_value() {
    let mut agg = Aggregator::new(perf_spec(Grouping::ByField("host".into()))).unwrap();
    agg.added(b"perf:all", item(1, 0.0, &sample("h1", 0, 10.0, 0)));
    agg.added(b"perf:all", item(2, 1.0, &sample("h2", 0, 20.0, 0)));
    agg.added(b"perf:all", item(3, 2.0, &sample("h1", 0, 30.0, 0)));
    agg.added(b"perf:all", item(4, 3.0, r#"{"cpu":{"total":5}}"#));
    agg.added(b"perf:all", item(5, 3.0, r#"{"host":7,"cpu":{"total":5}}"#));
    let names: Vec<Vec<u8>> = agg.summaries().into_iter().map(|s| s.group).collect();
    assert_eq!(names, [b"7".to_vec(), b"h1".to_vec(), b"h2".to_vec()]);
    assert_eq!(agg.stats(b"h1", 0, Scope::Window).unwrap().mean, Some(20.0));
    assert_eq!(agg.counters().no_group, 1);
    agg.key_cleared(b"perf:all");
    assert!(agg.summaries().is_empty());
}

#[test]
fn counts_what_it_cannot_aggregate() {
    let mut agg = Aggregator::new(perf_spec(Grouping::ByKey)).unwrap();
    agg.added(b"k", item(1, 0.0, "not json"));
    agg.added(b"k", item(2, 0.0, "[[[["));
    agg.added(
        b"k",
        item(3, 0.0, r#"{"cpu":{"total":"12"},"load":[1e999]}"#),
    );
    agg.removed(b"k", 1);
    let counters = agg.counters();
    assert_eq!(
        counters,
        Counters {
            added: 1,
            removed: 0,
            not_json: 2,
            no_group: 0,
            missing: 1,
            not_numeric: 2,
            unknown_removals: 1,
        }
    );
    assert_eq!(agg.stats(b"k", 0, Scope::Window).unwrap().count, 0);
    let deep = "[".repeat(1 << 20);
    agg.added(b"k", item(4, 0.0, &deep));
    assert_eq!(agg.counters().not_json, 3);
}

#[test]
fn stream_entries_and_hashes_by_field_with_times() {
    let spec = AggregateSpec::new(
        vec![FieldSpec::gauge("cpu"), FieldSpec::gauge("stats.rx")],
        Grouping::ByKey,
    )
    .with_time_field("t");
    let mut agg = Aggregator::new(spec).unwrap();
    let entry = |cpu: &str, t: &str| -> Vec<Vec<u8>> {
        [
            b"cpu".to_vec(),
            cpu.into(),
            b"stats".to_vec(),
            br#"{"rx":5}"#.to_vec(),
            b"t".to_vec(),
            t.into(),
        ]
        .into()
    };
    let (a, b, c) = (entry("1.5", "100"), entry("2.5", "200"), entry("x", "300"));
    // No window time: the time field.
    agg.added(
        b"h",
        Item {
            id: 1,
            time_ms: None,
            payload: Payload::Fields(&a),
        },
    );
    // A window time wins over the field.
    agg.added(
        b"h",
        Item {
            id: 2,
            time_ms: Some(50.0),
            payload: Payload::Fields(&b),
        },
    );
    agg.added(
        b"h",
        Item {
            id: 3,
            time_ms: Some(60.0),
            payload: Payload::Fields(&c),
        },
    );
    let s = agg.summary(b"h").unwrap();
    assert_eq!(
        s.fields[0].latest,
        Some(Latest {
            value: 1.5,
            time_ms: 100.0
        })
    );
    assert_eq!(s.fields[0].window.count, 2);
    assert_eq!(s.fields[1].window.count, 3);
    assert_eq!(agg.counters().not_numeric, 1);

    // Neither: the caller's now.
    agg.set_now(5_000.0);
    agg.added(
        b"h",
        Item {
            id: 4,
            time_ms: None,
            payload: Payload::Value(b"{}"),
        },
    );
    agg.added(
        b"h",
        Item {
            id: 5,
            time_ms: None,
            payload: Payload::Fields(&[b"cpu".to_vec(), b"9".to_vec()]),
        },
    );
    let latest = agg.summary(b"h").unwrap().fields[0].latest;
    assert_eq!(
        latest,
        Some(Latest {
            value: 9.0,
            time_ms: 5_000.0
        })
    );
}

#[test]
fn refuses_bad_specs() {
    let many = (0..=MAX_FIELDS)
        .map(|i| FieldSpec::gauge(i.to_string()))
        .collect();
    assert_eq!(
        Aggregator::new(AggregateSpec::new(many, Grouping::ByKey)).unwrap_err(),
        SpecError::TooManyFields(MAX_FIELDS + 1)
    );
    let spec = perf_spec(Grouping::ByKey).with_buckets_ms(vec![1.0, 0.0]);
    assert_eq!(
        Aggregator::new(spec).unwrap_err(),
        SpecError::BadBucket(0.0)
    );
    let spec = perf_spec(Grouping::ByField(vec!["a"; 100].join(".")));
    assert!(matches!(Aggregator::new(spec), Err(SpecError::Path(_))));
}

#[test]
fn one_read_shared_by_followers_of_the_same_paths() {
    let spec = |grouping| {
        let spec = perf_spec(grouping).with_time_field("t");
        Aggregator::new(spec).unwrap()
    };
    let by_key = spec(Grouping::ByKey);
    assert_eq!(by_key.paths(), ["cpu.total", "net.eth0.rx", "load.0", "t"]);
    let grouped = spec(Grouping::ByField("host".into()));
    assert_eq!(
        grouped.paths(),
        ["cpu.total", "net.eth0.rx", "load.0", "host", "t"]
    );
    // Each follower reading for itself, and the same three fed one read each.
    let fleet = spec(Grouping::AcrossKeys(Across::LatestPerKey));
    let series = || {
        crate::series::SeriesCache::new(vec![
            "cpu.total".into(),
            "net.eth0.rx".into(),
            "load.0".into(),
        ])
        .unwrap()
    };
    let mut alone = (by_key.clone(), fleet.clone(), series());
    let mut shared = (by_key.clone(), fleet, series());
    let mut reader = SampleReader::new(&by_key.paths()).unwrap();
    let samples = [
        ("perf:h1", sample("h1", 1_000, 10.0, 5)),
        ("perf:h2", sample("h2", 1_500, 30.5, 7)),
        ("perf:h1", "{not json".to_string()),
        ("perf:h1", sample("h1", 2_000, 20.0, 9)),
        (
            "perf:h2",
            r#"{"cpu":{"total":"busy"},"t":2500}"#.to_string(),
        ),
    ];
    for (id, (key, json)) in samples.iter().enumerate() {
        let item = Item {
            id: id as ItemId,
            time_ms: (id % 2 == 0).then_some(1_000.0 * id as f64),
            payload: Payload::Value(json.as_bytes()),
        };
        alone.0.added(key.as_bytes(), item);
        alone.1.added(key.as_bytes(), item);
        alone.2.added(key.as_bytes(), item);
        let mut reads = [Read::Missing; MAX_PATHS];
        let read = reader.read_into(item.payload, &mut reads);
        let read = read.map(|()| &reads[..reader.len()]).map_err(|_| ());
        shared.0.added_reads(key.as_bytes(), item, read);
        shared.1.added_reads(key.as_bytes(), item, read);
        shared.2.added_reads(key.as_bytes(), item, read);
    }
    assert_eq!(shared.0.summaries(), alone.0.summaries());
    assert_eq!(shared.0.counters(), alone.0.counters());
    assert_eq!(shared.0.counters().not_json, 1);
    assert_eq!(shared.0.counters().not_numeric, 1);
    assert_eq!(shared.1.summaries(), alone.1.summaries());
    for key in [&b"perf:h1"[..], b"perf:h2"] {
        let newest = |cache: &crate::series::SeriesCache| {
            cache
                .newest(key)
                .map(|(t, values)| (t, values.map(f64::to_bits).collect::<Vec<_>>()))
        };
        assert_eq!(shared.2.times(key), alone.2.times(key));
        assert_eq!(newest(&shared.2), newest(&alone.2));
    }
    assert_eq!(
        shared.2.times(b"perf:h1"),
        Some(vec![0.0, 2_000.0]),
        "a sample without time is not in a series"
    );
}

#[cfg(not(target_arch = "wasm32"))]
#[path = "reference_tests.rs"]
mod reference;
