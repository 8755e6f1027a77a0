//! RDB files built byte by byte, for what neither the fixture corpus nor the local Redis 7.0 writes: every opcode
//! (module aux data, pre-GA and GA functions, slot info, LRU/LFU, expiry in seconds), module values skipped with
//! their module's name, the hash field expiry types of the Redis 7.4 release candidates, and a list far bigger
//! than the reader may hold.
//!
//! Memory stays bounded by one step, not by a key: a list of 32 MB (as Redis 7 writes it: quicklist 2 nodes of
//! ~8 KB listpacks) is pushed in 64 KiB chunks, and the bytes the reader holds between pushes never exceed one node
//! plus one chunk. Elements come out as their node completes, in order.
#![cfg(not(target_arch = "wasm32"))]

use replicast_rdb::{Checksum, Element, Encoding, Event, ModuleId, RdbReader, Value};

/// An RDB length (6, 14 or 32-bit form).
fn length(out: &mut Vec<u8>, n: usize) {
    if n < 64 {
        out.push(n as u8);
    } else if n < 16384 {
        out.extend([0x40 | (n >> 8) as u8, n as u8]);
    } else {
        out.push(0x80);
        out.extend((n as u32).to_be_bytes());
    }
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    length(out, s.len());
    out.extend_from_slice(s);
}

/// A listpack of string entries shorter than 64 bytes.
fn listpack(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    for e in entries {
        body.push(0x80 | e.len() as u8);
        body.extend_from_slice(e);
        body.push(1 + e.len() as u8);
    }
    let mut lp = Vec::new();
    lp.extend(((6 + body.len() + 1) as u32).to_le_bytes());
    lp.extend((entries.len() as u16).to_le_bytes());
    lp.extend(body);
    lp.push(0xff);
    lp
}

/// `REDIS0011`, one list of `nodes` × `per_node` 60-byte elements, EOF and a zero (disabled) checksum.
fn big_list(nodes: usize, per_node: usize) -> Vec<u8> {
    let mut rdb = b"REDIS0011".to_vec();
    rdb.extend([0xfe, 0x00, 18]);
    string(&mut rdb, b"biglist");
    length(&mut rdb, nodes);
    for n in 0..nodes {
        let entries: Vec<Vec<u8>> = (0..per_node)
            .map(|i| format!("{:060}", n * per_node + i).into_bytes())
            .collect();
        length(&mut rdb, 2);
        string(&mut rdb, &listpack(&entries));
    }
    rdb.push(0xff);
    rdb.extend([0u8; 8]);
    rdb
}

#[test]
fn a_big_list_streams_through_a_bounded_buffer() {
    const PER_NODE: usize = 130; // ~8 KB listpacks, like list-max-listpack-size -2
    const NODES: usize = 4 * 1024; // 4 Ki nodes × 8 KB = 32 MB of elements
    const CHUNK: usize = 64 * 1024;
    let rdb = big_list(NODES, PER_NODE);
    assert!(rdb.len() > 32_000_000);
    let node_len = 6 + PER_NODE * 62 + 1 + 3;

    let mut reader = RdbReader::new();
    let mut seen = 0usize;
    let mut most_held = 0;
    let mut end = None;
    for chunk in rdb.chunks(CHUNK) {
        reader
            .push(chunk, |e| match e {
                Event::Element(Element::ListItem(Value::Bytes(b))) => {
                    assert_eq!(b, format!("{seen:060}").as_bytes());
                    seen += 1;
                }
                Event::Eof { checksum } => end = Some(checksum),
                _ => {}
            })
            .unwrap();
        most_held = most_held.max(reader.pending_len());
    }
    reader.finish().unwrap();
    assert_eq!(seen, NODES * PER_NODE);
    assert_eq!(end, Some(Checksum::Disabled));
    assert!(
        most_held <= node_len + CHUNK,
        "held {most_held} bytes between pushes, more than a node ({node_len}) and a chunk"
    );
}

/// A listpack entry: a short string, or an integer (7-bit or 64-bit form).
enum Entry<'a> {
    Str(&'a [u8]),
    Int(i64),
}

fn listpack_of(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for e in entries {
        let start = body.len();
        match e {
            Entry::Str(s) => {
                body.push(0x80 | s.len() as u8);
                body.extend_from_slice(s);
            }
            Entry::Int(i) if (0..128).contains(i) => body.push(*i as u8),
            Entry::Int(i) => {
                body.push(0xf4);
                body.extend(i.to_le_bytes());
            }
        }
        body.push((body.len() - start) as u8);
    }
    let mut lp = Vec::new();
    lp.extend(((6 + body.len() + 1) as u32).to_le_bytes());
    lp.extend((entries.len() as u16).to_le_bytes());
    lp.extend(body);
    lp.push(0xff);
    lp
}

/// A module type id: a 9-character name of 6-bit characters, then a 10-bit encoding version.
fn module_id(name: &str, encver: u64) -> u64 {
    const CHARSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut id = 0u64;
    for c in name.bytes() {
        id = (id << 6) | CHARSET.iter().position(|&x| x == c).unwrap() as u64;
    }
    (id << 10) | encver
}

/// Module opcodes of every kind, then the module EOF opcode.
fn module_ops(out: &mut Vec<u8>) {
    out.extend([2, 5]); // UINT 5
    out.extend([1, 7]); // SINT 7
    out.push(3); // FLOAT
    out.extend(1.5f32.to_le_bytes());
    out.push(4); // DOUBLE
    out.extend(2.5f64.to_le_bytes());
    out.push(5); // STRING
    string(out, b"module data");
    out.push(0); // EOF
}

#[test]
fn every_opcode_and_the_rarer_types() {
    let id = module_id("mymodule1", 3);
    let mut rdb = b"REDIS0012".to_vec();
    rdb.push(250);
    string(&mut rdb, b"redis-ver");
    string(&mut rdb, b"7.4.0");
    rdb.push(247); // MODULE_AUX: id, when opcode (UINT), when, then module opcodes
    rdb.push(0x81);
    rdb.extend(id.to_be_bytes());
    rdb.extend([2, 2]);
    module_ops(&mut rdb);
    rdb.push(246); // FUNCTION_PRE_GA: name, engine, has description, description, code
    string(&mut rdb, b"oldlib");
    string(&mut rdb, b"LUA");
    rdb.push(1);
    string(&mut rdb, b"a description");
    string(&mut rdb, b"return 1");
    rdb.push(245);
    string(
        &mut rdb,
        b"#!lua name=newlib\nredis.register_function('f', function() return 1 end)",
    );
    rdb.extend([254, 5]); // SELECTDB 5
    rdb.extend([251, 3, 1]); // RESIZEDB 3 keys, 1 with expiry
    rdb.extend([244, 0x40 | 0x30, 0x39, 3, 1]); // SLOT_INFO slot 12345, 3 keys, 1 with expiry
    rdb.extend([248, 50]); // IDLE 50 s
    rdb.push(253); // EXPIRETIME in seconds
    rdb.extend(1_700_000_000u32.to_le_bytes());
    rdb.push(0);
    string(&mut rdb, b"k1");
    string(&mut rdb, b"v1");
    rdb.extend([249, 7]); // FREQ 7
    rdb.push(252); // EXPIRETIME_MS
    rdb.extend(1_700_000_000_123i64.to_le_bytes());
    rdb.push(7); // MODULE_2 value: module id, then its opcodes
    string(&mut rdb, b"m");
    rdb.push(0x81);
    rdb.extend(id.to_be_bytes());
    module_ops(&mut rdb);
    rdb.push(22); // HASH_METADATA_PRE_GA: count, then absolute expiry (0: none), field, value
    string(&mut rdb, b"h");
    rdb.push(2);
    rdb.push(0);
    string(&mut rdb, b"f1");
    string(&mut rdb, b"v1");
    rdb.push(0x81);
    rdb.extend(1_800_000_000_000u64.to_be_bytes());
    string(&mut rdb, b"f2");
    string(&mut rdb, b"v2");
    rdb.push(23); // HASH_LISTPACK_EX_PRE_GA: field, value, expiry triplets
    string(&mut rdb, b"hl");
    let lp = listpack_of(&[
        Entry::Str(b"f"),
        Entry::Str(b"v"),
        Entry::Int(0),
        Entry::Str(b"g"),
        Entry::Int(42),
        Entry::Int(1_800_000_000_001),
    ]);
    string(&mut rdb, &lp);
    rdb.push(255);
    rdb.extend([0u8; 8]);

    let mut log = Vec::new();
    let mut reader = RdbReader::new();
    for chunk in rdb.chunks(5) {
        reader
            .push(chunk, |e| {
                log.push(match e {
                    Event::Aux { key, value } => format!("aux {key}={value}"),
                    Event::ModuleAux { module, when } => {
                        format!(
                            "module aux {} v{} when {when}",
                            module.name(),
                            module.encoding_version()
                        )
                    }
                    Event::FunctionPreGa {
                        name,
                        engine,
                        description,
                        code,
                    } => format!(
                        "function {name} {engine} {:?} {code}",
                        description.map(|d| d.to_string())
                    ),
                    Event::Function { code } => format!("library {}", code.to_string().len()),
                    Event::SelectDb { db } => format!("db {db}"),
                    Event::ResizeDb { keys, expires } => format!("resize {keys} {expires}"),
                    Event::SlotInfo {
                        slot,
                        size,
                        expires,
                    } => format!("slot {slot} {size} {expires}"),
                    Event::KeyStart(k) => format!(
                        "key {} {:?} db {} expire {:?} idle {:?} freq {:?} module {:?}",
                        String::from_utf8_lossy(k.key),
                        k.encoding,
                        k.db,
                        k.expire_ms,
                        k.idle_secs,
                        k.lfu_freq,
                        k.module.map(|m| m.name())
                    ),
                    Event::Element(Element::String(v)) => format!("string {v}"),
                    Event::Element(Element::HashField {
                        field,
                        value,
                        expire_ms,
                    }) => {
                        format!("field {field}={value} {expire_ms:?}")
                    }
                    Event::Element(other) => format!("{other:?}"),
                    Event::KeyEnd { .. } => "end".to_string(),
                    Event::Eof { checksum } => format!("eof {checksum:?}"),
                    other => format!("{other:?}"),
                })
            })
            .unwrap();
    }
    reader.finish().unwrap();
    assert_eq!(
        log,
        [
            "Header { flavor: Redis, version: 12 }",
            "aux redis-ver=7.4.0",
            "module aux mymodule1 v3 when 2",
            "function oldlib LUA Some(\"a description\") return 1",
            "library 71",
            "db 5",
            "resize 3 1",
            "slot 12345 3 1",
            "key k1 String db 5 expire Some(1700000000000) idle Some(50) freq None module None",
            "string v1",
            "end",
            "key m Module2 db 5 expire Some(1700000000123) idle None freq Some(7) module Some(\"mymodule1\")",
            "end",
            "key h HashMetadataPreGa db 5 expire None idle None freq None module None",
            "field f1=v1 None",
            "field f2=v2 Some(1800000000000)",
            "end",
            "key hl HashListpackExPreGa db 5 expire None idle None freq None module None",
            "field f=v None",
            "field g=42 Some(1800000000001)",
            "end",
            "eof Disabled",
        ]
    );
    assert_eq!(ModuleId(id).name(), "mymodule1");
    assert_eq!(
        Encoding::from_id(22, replicast_rdb::Flavor::Valkey),
        Some(Encoding::ValkeyHash2)
    );
}

#[test]
fn a_pre_ga_module_value_is_a_clear_error() {
    let mut rdb = b"REDIS0008".to_vec();
    rdb.extend([254, 0, 6]);
    string(&mut rdb, b"m");
    rdb.extend([0x81, 0, 0, 0, 0, 0, 0, 4, 1]);
    let err = RdbReader::new().push(&rdb, |_| {}).unwrap_err();
    assert!(err.to_string().contains("MODULE_2 format"), "{err}");
}

#[test]
fn bytes_after_the_end_are_left_to_the_caller() {
    // A full resync's payload is followed by the replication stream: push says where the RDB ended.
    let mut rdb = b"REDIS0009".to_vec();
    rdb.extend([0xfe, 0x00, 0x00]);
    string(&mut rdb, b"k");
    string(&mut rdb, b"v");
    rdb.push(0xff);
    rdb.extend([0u8; 8]);
    let commands = b"*1\r\n$4\r\nPING\r\n";
    for split in 0..rdb.len() {
        let mut stream = rdb.clone();
        stream.extend_from_slice(commands);
        let mut reader = RdbReader::new();
        assert_eq!(reader.push(&stream[..split], |_| {}).unwrap(), split);
        let used = reader.push(&stream[split..], |_| {}).unwrap();
        assert_eq!(split + used, rdb.len(), "split at {split}");
        assert!(reader.is_done());
        assert_eq!(reader.push(commands, |_| {}).unwrap(), 0);
        reader.finish().unwrap();
    }
}
