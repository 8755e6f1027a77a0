//! Browser tests, run by `wasm-pack test --headless --chrome`: the parser and the table rendering, in wasm, in a
//! real Chromium.
#![cfg(target_arch = "wasm32")]

use replicast_protocol::resp::CommandReader;
use replicast_protocol::wire::{encode_commands, encode_hello};
use replicast_wasm::web::Assembler;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// A stream like the one Redis sends for `SELECT 0` and two ZADDs from a collector.
fn zadds() -> Vec<u8> {
    let commands: [&[&str]; 3] = [
        &["SELECT", "0"],
        &[
            "ZADD",
            "perf:demo",
            "1700000000000",
            r#"{"id":"a1","cpu":12.5}"#,
        ],
        &[
            "ZADD",
            "perf:demo",
            "1700000001000",
            r#"{"id":"a2","cpu":40}"#,
        ],
    ];
    let mut out = Vec::new();
    for args in commands {
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
    }
    out
}

#[wasm_bindgen_test]
fn resp_reader_gives_the_same_commands_for_any_split_in_wasm() {
    let stream = zadds();
    let mut whole = Vec::new();
    CommandReader::new(0)
        .push(&stream, |c| whole.push((c.args.len(), c.start, c.end)))
        .unwrap();
    assert_eq!(whole.len(), 3);
    assert_eq!(whole[2].2, stream.len() as u64);
    for cut in 0..stream.len() {
        let mut reader = CommandReader::new(0);
        let mut got = Vec::new();
        reader
            .push(&stream[..cut], |c| got.push((c.args.len(), c.start, c.end)))
            .unwrap();
        reader
            .push(&stream[cut..], |c| got.push((c.args.len(), c.start, c.end)))
            .unwrap();
        assert_eq!(got, whole, "split at {cut}");
    }
}

#[wasm_bindgen_test]
fn the_assembler_export_reads_series_times_and_stats_in_one_call_each() {
    let options = js_sys::JSON::parse(
        r#"{"patterns":["perf:*"],"window":10,"aggregate":{"fields":["cpu"]}}"#,
    )
    .unwrap();
    let mut assembler = Assembler::new(options.unchecked_into()).unwrap();
    assert!(assembler.push(&encode_hello("e1", 0)).unwrap());
    assert!(assembler.push(&encode_commands(0, &zadds())).unwrap());
    assert_eq!(assembler.take_changed(), vec!["perf:demo".to_string()]);
    assert!(assembler.take_changed().is_empty(), "taken once");

    let series = assembler.series("perf:demo", "cpu").unwrap().to_vec();
    assert_eq!(series, vec![12.5, 40.0], "oldest first");
    let times = assembler.times("perf:demo").to_vec();
    assert_eq!(times, vec![1_700_000_000_000.0, 1_700_000_001_000.0]);
    let latest = assembler.latest("perf:demo");
    let id = js_sys::Reflect::get(&latest, &"id".into()).unwrap();
    assert_eq!(id.as_string().as_deref(), Some("a2"));
    let stats = assembler.stats("perf:demo", "cpu").unwrap();
    let mean = js_sys::Reflect::get(&stats, &"mean".into()).unwrap();
    assert_eq!(mean.as_f64(), Some(26.25));
    assert!(
        assembler.stats("perf:demo", "mem").is_err(),
        "not an aggregated field"
    );
    let window = assembler.window("perf:demo");
    let kind = js_sys::Reflect::get(&window, &"type".into()).unwrap();
    assert_eq!(kind.as_string().as_deref(), Some("zset"));
}

#[wasm_bindgen_test]
fn a_sample_that_evicts_another_is_followed_as_one_in_one_out() {
    // A window of 1: the second sample evicts the first, one in and one out for the page's observer.
    let mut assembler =
        assembler(r#"{"patterns":["perf:*"],"window":1,"aggregate":{"fields":["cpu"]}}"#).unwrap();
    assembler.push(&encode_hello("e1", 0)).unwrap();
    assembler.push(&encode_commands(0, &zadds())).unwrap();
    assert_eq!(assembler.take_changed(), vec!["perf:demo".to_string()]);
    assert_eq!(
        assembler.series("perf:demo", "cpu").unwrap().to_vec(),
        vec![40.0]
    );
    let stats = assembler.stats("perf:demo", "cpu").unwrap();
    let count = js_sys::Reflect::get(&stats, &"count".into()).unwrap();
    assert_eq!(
        count.as_f64(),
        Some(1.0),
        "the evicted sample left the statistics"
    );
    let fleet = assembler.fleet("cpu").unwrap();
    let mean = js_sys::Reflect::get(&fleet, &"mean".into()).unwrap();
    assert_eq!(mean.as_f64(), Some(40.0));
}

#[wasm_bindgen_test]
fn newest_of_reads_every_keys_newest_sample_in_one_array() {
    let mut aggregated =
        assembler(r#"{"patterns":["perf:*"],"window":10,"aggregate":{"fields":["cpu","mem"]}}"#)
            .unwrap();
    aggregated.push(&encode_hello("e1", 0)).unwrap();
    aggregated.push(&encode_commands(0, &zadds())).unwrap();
    let keys = vec!["perf:none".to_string(), "perf:demo".to_string()];
    let rows = aggregated.newest_of(keys).to_vec();
    // A row per key, in the order asked: its item count, newest time, then `cpu` and `mem` (NaN: missing).
    assert_eq!(rows.len(), 2 * 4);
    assert_eq!(rows[0], 0.0, "no window");
    assert!(rows[1..4].iter().all(|v| v.is_nan()));
    assert_eq!(&rows[4..7], &[2.0, 1_700_000_001_000.0, 40.0]);
    assert!(rows[7].is_nan(), "the newest sample has no `mem`");
    let times = aggregated.times("perf:demo").to_vec();
    let cpu = aggregated.series("perf:demo", "cpu").unwrap().to_vec();
    assert_eq!(rows[5], *times.last().unwrap(), "the last of `times`");
    assert_eq!(rows[6], *cpu.last().unwrap(), "the last of `series`");

    let mut plain = assembler(r#"{"patterns":["perf:*"],"window":10}"#).unwrap();
    plain.push(&encode_hello("e1", 0)).unwrap();
    plain.push(&encode_commands(0, &zadds())).unwrap();
    let rows = plain.newest_of(vec!["perf:demo".to_string()]).to_vec();
    assert_eq!(rows.len(), 2, "without `aggregate`, the count and the time");
    assert_eq!(rows[0], 2.0);
    assert!(rows[1].is_nan(), "no time kept without aggregation");
}

#[wasm_bindgen_test]
fn changes_give_the_tracked_keys_that_changed_with_their_kept_series() {
    // `time` sits between the aggregated field and the kept ones among the paths read; `cpu` is kept once.
    let mut client = assembler(
        r#"{"patterns":["perf:*"],"window":2,"aggregate":{"fields":["cpu"],"time":"ts","series":["cpu","mem"]}}"#,
    )
    .unwrap();
    client.push(&encode_hello("e1", 0)).unwrap();
    let stream = zadds();
    client.push(&encode_commands(0, &stream)).unwrap();
    let handles = [client.track("perf:none"), client.track("perf:demo")];
    assert_eq!(handles, [Some(0), Some(1)]);
    // A row of 4 + 2 numbers: handle, items, appended (-1: read it whole), newest time, `cpu`, `mem`.
    let rows = client.changes().to_vec();
    assert_eq!(rows.len(), 6, "the key with a window, once: {rows:?}");
    assert_eq!(&rows[..5], &[1.0, 2.0, -1.0, 1_700_000_001_000.0, 40.0]);
    assert!(rows[5].is_nan(), "no `mem` in the newest sample");
    assert_eq!(client.changes().length(), 0, "nothing since");

    let more = b"*4\r\n$4\r\nZADD\r\n$9\r\nperf:demo\r\n$13\r\n1700000002000\r\n$18\r\n{\"cpu\":50,\"mem\":7}\r\n";
    client
        .push(&encode_commands(stream.len() as u64, more))
        .unwrap();
    // The window of 2 lost its oldest: one appended, the count the same.
    let rows = client.changes().to_vec();
    assert_eq!(rows, vec![1.0, 2.0, 1.0, 1_700_000_002_000.0, 50.0, 7.0]);
    let mem = client.series("perf:demo", "mem").unwrap().to_vec();
    assert!(
        mem[0].is_nan() && mem[1] == 7.0,
        "a kept field's series: {mem:?}"
    );
    assert_eq!(client.track("perf:demo"), Some(1), "the same handle");

    let plain = assembler(r#"{"patterns":["perf:*"],"window":2}"#).unwrap();
    assert_eq!(
        plain.track("perf:demo"),
        None,
        "nothing without aggregation"
    );
    assert_eq!(plain.changes().length(), 0);
    assert!(
        assembler(r#"{"patterns":["perf:*"],"aggregate":{"series":"mem"}}"#).is_err(),
        "`series` is an array of strings"
    );
}

/// `value` as JSON text, the shape a page sees.
fn json(value: &wasm_bindgen::JsValue) -> String {
    js_sys::JSON::stringify(value).unwrap().as_string().unwrap()
}

fn assembler(options: &str) -> Result<Assembler, wasm_bindgen::JsValue> {
    Assembler::new(js_sys::JSON::parse(options).unwrap().unchecked_into())
}

#[wasm_bindgen_test]
fn the_assembler_export_hands_out_the_shapes_types_d_ts_declares() {
    let mut assembler =
        assembler(r#"{"patterns":["perf:*"],"window":10,"aggregate":{"fields":["cpu"]}}"#).unwrap();
    assembler.push(&encode_hello("e1", 0)).unwrap();
    assembler.push(&encode_commands(0, &zadds())).unwrap();
    assert_eq!(
        json(&assembler.window("perf:demo")),
        concat!(
            r#"{"type":"zset","complete":true,"stale":false,"expiresAt":null,"items":["#,
            r#"{"member":"{\"id\":\"a2\",\"cpu\":40}","score":1700000001000},"#,
            r#"{"member":"{\"id\":\"a1\",\"cpu\":12.5}","score":1700000000000}]}"#
        ),
        "expiresAt is null without a TTL, as `number | null` says"
    );
    assert!(assembler.window("perf:none").is_undefined());
    let offset = zadds().len();
    assert_eq!(
        json(&assembler.positions()),
        format!(r#"[{{"shard":0,"epoch":"e1","offset":{offset}}}]"#)
    );
    let diagnostics = json(&assembler.diagnostics());
    assert!(
        diagnostics.starts_with(r#"{"badMessages":0,"badSegments":0,"#)
            && diagnostics.ends_with(r#""missingFields":0,"lastError":null}"#),
        "{diagnostics}"
    );
    // The statistics' numbers are written as text and parsed: each must come back as the same double.
    let stats = json(&assembler.stats("perf:demo", "cpu").unwrap());
    assert!(
        stats.starts_with(r#"{"count":2,"min":12.5,"max":40,"mean":26.25,"#),
        "{stats}"
    );
}

#[wasm_bindgen_test]
fn options_the_assembler_does_not_know_or_of_the_wrong_type_are_refused_by_name() {
    let refusal = |options: &str| {
        let error = assembler(options).err().expect(options);
        let field = |name: &str| js_sys::Reflect::get(&error, &name.into()).unwrap();
        assert_eq!(field("code").as_string().as_deref(), Some("invalidOptions"));
        field("message").as_string().unwrap()
    };
    let message = refusal(r#"{"patterns":["perf:*"],"windw":10}"#);
    assert!(
        message.contains("unknown field `windw`") && message.contains("`window`"),
        "{message}"
    );
    let message = refusal(r#"{"patterns":"perf:*"}"#);
    assert!(
        message.contains("`patterns` must be an array of strings"),
        "{message}"
    );
    let message = refusal(r#"{"patterns":["perf:*"],"db":1.5}"#);
    assert!(message.contains("`db` must be a whole number"), "{message}");
    let message = refusal(r#"{"patterns":["perf:*"],"aggregate":{"fields":["cpu"],"bucket":[1]}}"#);
    assert!(message.contains("unknown field `bucket`"), "{message}");
    let message = refusal(r#"{"patterns":["perf:*"],"aggregate":{"bucketsMs":["1s"]}}"#);
    assert!(
        message.contains("`bucketsMs` must be an array of numbers"),
        "{message}"
    );
    let message = refusal(r#"["perf:*"]"#);
    assert!(message.contains("expected an object"), "{message}");
    // Absent, undefined and null options take their defaults.
    let mut watching = assembler(r#"{"keys":["perf:demo"],"idleTimeoutMs":null}"#).unwrap();
    watching.push(&encode_hello("e1", 0)).unwrap();
    assert!(watching.push(&encode_commands(0, &zadds())).unwrap());
    assert_eq!(watching.len("perf:demo"), 2);
}
