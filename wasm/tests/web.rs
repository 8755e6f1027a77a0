//! Browser tests, run by `wasm-pack test --headless --chrome`: the parser and the table rendering, in wasm, in a
//! real Chromium.
#![cfg(target_arch = "wasm32")]

use replicast_wasm::resp::CommandReader;
use replicast_wasm::web::render_table;
use replicast_wasm::wire::{encode_commands, encode_hello};
use replicast_wasm::{StreamAssembler, WatchConfig};
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
fn table_shows_the_window_newest_first() {
    let document = web_sys::window().unwrap().document().unwrap();
    let tbody = document.create_element("tbody").unwrap();
    document.body().unwrap().append_child(&tbody).unwrap();

    let mut assembler = StreamAssembler::new(WatchConfig {
        patterns: vec![b"perf:*".to_vec()],
        db: 0,
        window: 10,
    });
    assembler.push_message(&encode_hello("e1", 0)).unwrap();
    assembler
        .push_message(&encode_commands(0, &zadds()))
        .unwrap();
    render_table(&document, &tbody, &assembler).unwrap();

    let rows = tbody.query_selector_all("tr").unwrap();
    assert_eq!(rows.length(), 2);
    let first = tbody.query_selector("tr").unwrap().unwrap();
    assert_eq!(
        first.get_attribute("data-member").unwrap(),
        r#"{"id":"a2","cpu":40}"#
    );
    assert_eq!(
        first.text_content().unwrap(),
        r#"perf:demo1700000001000{"id":"a2","cpu":40}"#
    );

    // Rendering again replaces the rows instead of adding to them.
    render_table(&document, &tbody, &assembler).unwrap();
    assert_eq!(tbody.query_selector_all("tr").unwrap().length(), 2);
}
