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
    let window = assembler.window("perf:demo").unwrap();
    let kind = js_sys::Reflect::get(&window, &"type".into()).unwrap();
    assert_eq!(kind.as_string().as_deref(), Some("zset"));
}
