//! The RDB reader in a real browser (`wasm-pack test --headless --chrome`): a small RDB 11 file built byte by byte
//! (a string, an LZF-compressed string, a listpack hash, a quicklist 2 list, a CRC64 trailer) is fed to `RdbScan`
//! in chunks of every size, and a changed byte fails the checksum; `RdbInspect`, the inspector page's reader, gives
//! the same summary in every chunking.
#![cfg(all(target_arch = "wasm32", feature = "rdb"))]

use replicast_wasm::web::rdb::{RdbInspect, RdbScan};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

fn listpack(entries: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    for e in entries {
        body.push(0x80 | e.len() as u8);
        body.extend_from_slice(e);
        body.push(1 + e.len() as u8);
    }
    let mut lp = ((6 + body.len() + 1) as u32).to_le_bytes().to_vec();
    lp.extend((entries.len() as u16).to_le_bytes());
    lp.extend(body);
    lp.push(0xff);
    lp
}

/// Redis's CRC64 (reflected Jones polynomial), bit by bit: an independent check of the reader's tables.
fn crc64(bytes: &[u8]) -> u64 {
    let mut crc = 0u64;
    for &b in bytes {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x95ac_9329_ac4b_c9b5
            } else {
                crc >> 1
            };
        }
    }
    crc
}

fn rdb() -> Vec<u8> {
    let mut rdb = b"REDIS0011".to_vec();
    rdb.extend([0xfe, 0x00]);
    rdb.push(0);
    string(&mut rdb, b"greeting");
    string(&mut rdb, b"hello");
    // "abcabcabc" as LZF: a 3-byte literal, then a 6-byte back reference at distance 3.
    rdb.push(0);
    string(&mut rdb, b"packed");
    rdb.extend([0xc3, 6, 9, 2, b'a', b'b', b'c', 4 << 5, 2]);
    rdb.push(16);
    string(&mut rdb, b"hash");
    string(&mut rdb, &listpack(&[b"f1", b"v1", b"f2", b"v2"]));
    rdb.push(18);
    string(&mut rdb, b"list");
    rdb.extend([1, 2]);
    string(&mut rdb, &listpack(&[b"a", b"b", b"c"]));
    rdb.push(0xff);
    let crc = crc64(&rdb);
    rdb.extend(crc.to_le_bytes());
    rdb
}

#[wasm_bindgen_test]
fn rdb_scan_reads_every_chunking() {
    let rdb = rdb();
    for chunk in 1..=rdb.len() {
        let mut scan = RdbScan::new();
        for piece in rdb.chunks(chunk) {
            scan.push(piece).unwrap();
        }
        scan.finish().unwrap();
        assert_eq!(scan.keys(), 4.0);
        assert_eq!(scan.keys_of_type("string"), 2.0);
        assert_eq!(scan.keys_of_type("hash"), 1.0);
        assert_eq!(scan.keys_of_type("list"), 1.0);
        assert_eq!(scan.elements(), 2.0 + 2.0 + 3.0);
        assert_eq!(scan.bytes(), rdb.len() as f64);
    }
}

#[wasm_bindgen_test]
fn rdb_scan_fails_on_a_changed_byte_or_a_cut() {
    let mut rdb = rdb();
    let mut cut = RdbScan::new();
    cut.push(&rdb[..rdb.len() - 3]).unwrap();
    assert!(cut.finish().is_err());
    let at = rdb.iter().position(|&b| b == b'h').unwrap();
    rdb[at] = b'j';
    let mut scan = RdbScan::new();
    assert!(scan.push(&rdb).is_err());
}

#[wasm_bindgen_test]
fn rdb_inspect_gives_one_summary_in_every_chunking() {
    let rdb = rdb();
    let mut whole = RdbInspect::new(10, 0.0);
    whole.push(&rdb).unwrap();
    whole.finish().unwrap();
    let summary = whole.summary();
    assert!(summary.contains(r#""checksum":"verified""#), "{summary}");
    assert!(summary.contains(r#""keys":4"#), "{summary}");
    assert!(summary.contains(r#""listpack":{"bytes":"#), "{summary}");
    for chunk in 1..=rdb.len() {
        let mut inspect = RdbInspect::new(10, 0.0);
        for piece in rdb.chunks(chunk) {
            inspect.push(piece).unwrap();
        }
        inspect.finish().unwrap();
        assert_eq!(inspect.summary(), summary);
        assert_eq!(inspect.keys(), 4.0);
        assert_eq!(inspect.bytes(), rdb.len() as f64);
    }
}
