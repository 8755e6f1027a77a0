//! The committed fixtures' contents: every layout with a value that exercises its forms, a stream with groups,
//! and what each version's file holds around them.

use replicast_rdb::Flavor;

use crate::spec::{Expiry, KeySpec, Spec};
use crate::writer::stream::{Consumer, Group, Stream, StreamEntry};
use crate::writer::{module_id, Data, Layout, ModuleOp, StringForm};

/// A stream of three nodes of two entries: entries with the master entry's fields and others, one deleted, two
/// consumer groups, one with pending entries and two consumers.
fn sample_stream() -> Stream {
    let t = 1_700_000_000_000u64;
    let fields = |pairs: &[(&str, &str)]| -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(f, v)| (f.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    };
    let entry = |id, pairs: &[(&str, &str)], deleted| StreamEntry {
        id,
        fields: fields(pairs),
        deleted,
    };
    Stream {
        entries: vec![
            entry((t, 0), &[("cpu", "12.5"), ("host", "web-01")], false),
            entry((t, 1), &[("cpu", "13"), ("host", "web-01")], false),
            entry((t + 500, 0), &[("other", "x"), ("n", "-70000")], false),
            entry((t + 1000, 0), &[("cpu", "1"), ("host", "h")], true),
            entry((t + 2000, 7), &[("cpu", "99"), ("host", "web-02")], false),
        ],
        per_node: 2,
        last_id: (t + 2000, 7),
        first_id: (t, 0),
        max_deleted_id: (t + 1000, 0),
        entries_added: 5,
        groups: vec![
            Group {
                name: b"readers".to_vec(),
                last_id: (t + 500, 0),
                entries_read: 3,
                pending: vec![((t, 0), t + 3000, 2), ((t, 1), t + 3001, 1)],
                consumers: vec![
                    Consumer {
                        name: b"alice".to_vec(),
                        seen_ms: t + 4000,
                        active_ms: t + 3500,
                        pending: vec![(t, 0)],
                    },
                    Consumer {
                        name: b"bob".to_vec(),
                        seen_ms: t + 4001,
                        active_ms: t + 3501,
                        pending: vec![(t, 1)],
                    },
                ],
            },
            Group {
                name: b"idle".to_vec(),
                last_id: (0, 0),
                entries_read: 0,
                pending: Vec::new(),
                consumers: Vec::new(),
            },
        ],
    }
}

fn key(name: &str, data: Data, layout: Layout, expiry: Option<Expiry>) -> KeySpec {
    KeySpec {
        name: name.as_bytes().to_vec(),
        data,
        layout,
        expiry,
    }
}

fn strings(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// Every layout, each with a value that exercises its forms: integers of every width an encoding has, strings
/// of each length form, a compressible string, infinite and tiny scores, a zipmap value past 253 bytes.
fn every_layout() -> Vec<KeySpec> {
    let long_list: Vec<Vec<u8>> = [
        "a",
        "7",
        "12",
        "13",
        "-1",
        "127",
        "128",
        "-200",
        "-5000",
        "70000",
        "-9000000",
        "5000000000",
        "x",
        "0012",
        "+5",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .chain([
        b"y".repeat(70),
        b"list ".repeat(1000),
        b"z".repeat(17000),
        vec![0, 255, 10, 13],
    ])
    .collect();
    let zset = vec![
        (b"a".to_vec(), 1.0),
        (b"b".to_vec(), -2.5),
        (b"c".to_vec(), f64::INFINITY),
        (b"d".to_vec(), f64::NEG_INFINITY),
        (b"e".to_vec(), 1e300),
        (b"f".to_vec(), 0.1),
        (b"g".to_vec(), 5e-324),
        (b"70000".to_vec(), 70000.0),
    ];
    let hash = vec![
        (b"f1".to_vec(), b"v1".to_vec()),
        (b"n".to_vec(), b"42".to_vec()),
        (b"big".to_vec(), b"-5000000000".to_vec()),
        (b"long".to_vec(), b"hash value ".repeat(30)),
    ];
    let expiring = vec![
        (b"stays".to_vec(), b"forever".to_vec(), None),
        (b"soon".to_vec(), b"1".to_vec(), Some(1_900_000_000_000)),
        (b"later".to_vec(), b"two".to_vec(), Some(1_900_000_086_400)),
        (b"7".to_vec(), b"-70000".to_vec(), Some(1_900_000_000_001)),
    ];
    let set = strings(&[
        "apple",
        "banana",
        "3",
        "-40000",
        "cherry pie with a long name",
    ]);
    let ints = strings(&["40000", "1", "-2", "5000000000", "-70000"]);
    let small_ints = strings(&["3", "1", "2"]);
    let mid_ints = strings(&["100000", "-3"]);
    vec![
        key(
            "string:raw",
            Data::String(b"hello".to_vec()),
            Layout::String(StringForm::Raw),
            None,
        ),
        key(
            "string:int8",
            Data::String(b"-12".to_vec()),
            Layout::String(StringForm::Int),
            None,
        ),
        key(
            "string:int16",
            Data::String(b"300".to_vec()),
            Layout::String(StringForm::Int),
            None,
        ),
        key(
            "string:int32",
            Data::String(b"-70000".to_vec()),
            Layout::String(StringForm::Int),
            None,
        ),
        key(
            "string:lzf",
            Data::String(b"compress me, compress me, ".repeat(20)),
            Layout::String(StringForm::Lzf),
            Some(Expiry::Millis(1_900_000_000_123)),
        ),
        key(
            "string:empty",
            Data::String(Vec::new()),
            Layout::String(StringForm::Raw),
            None,
        ),
        key(
            "string:expires-in-seconds",
            Data::String(b"old expiry".to_vec()),
            Layout::String(StringForm::Raw),
            Some(Expiry::Secs(1_900_000_000)),
        ),
        key(
            "list:linked",
            Data::List(long_list.clone()),
            Layout::ListLinked,
            None,
        ),
        key(
            "list:ziplist",
            Data::List(long_list.clone()),
            Layout::ListZiplist,
            None,
        ),
        key(
            "list:quicklist",
            Data::List(long_list.clone()),
            Layout::Quicklist(4),
            None,
        ),
        key(
            "list:quicklist2",
            Data::List(long_list.clone()),
            Layout::Quicklist2(4),
            None,
        ),
        key(
            "list:quicklist2-plain-node",
            Data::List(vec![
                b"small".to_vec(),
                b"plain node ".repeat(1000),
                b"after".to_vec(),
            ]),
            Layout::Quicklist2(1),
            None,
        ),
        key("set:plain", Data::Set(set.clone()), Layout::SetPlain, None),
        key(
            "set:intset16",
            Data::Set(small_ints),
            Layout::SetIntset,
            None,
        ),
        key("set:intset32", Data::Set(mid_ints), Layout::SetIntset, None),
        key("set:intset64", Data::Set(ints), Layout::SetIntset, None),
        key("set:listpack", Data::Set(set), Layout::SetListpack, None),
        key(
            "zset:text",
            Data::ZSet(zset.clone()),
            Layout::ZSetText,
            None,
        ),
        key(
            "zset:binary",
            Data::ZSet(zset.clone()),
            Layout::ZSetBinary,
            None,
        ),
        key(
            "zset:ziplist",
            Data::ZSet(zset.clone()),
            Layout::ZSetZiplist,
            None,
        ),
        key(
            "zset:listpack",
            Data::ZSet(zset),
            Layout::ZSetListpack,
            None,
        ),
        key(
            "hash:plain",
            Data::Hash(hash.clone()),
            Layout::HashPlain,
            None,
        ),
        key(
            "hash:zipmap",
            Data::Hash(hash.clone()),
            Layout::HashZipmap,
            None,
        ),
        key(
            "hash:ziplist",
            Data::Hash(hash.clone()),
            Layout::HashZiplist,
            None,
        ),
        key(
            "hash:listpack",
            Data::Hash(hash),
            Layout::HashListpack,
            Some(Expiry::Millis(1)),
        ),
        key(
            "module:value",
            Data::Module(
                module_id("replicast", 3),
                vec![
                    ModuleOp::Sint(-5),
                    ModuleOp::Uint(1 << 40),
                    ModuleOp::Float(1.5),
                    ModuleOp::Double(-2.25),
                    ModuleOp::String(b"module ".repeat(20)),
                ],
            ),
            Layout::Module,
            Some(Expiry::Millis(1_900_000_000_000)),
        ),
        key(
            "hash:valkey-field-expiry",
            Data::HashWithExpiry(expiring.clone()),
            Layout::ValkeyHash,
            None,
        ),
        key(
            "hash:field-expiry-table",
            Data::HashWithExpiry(expiring.clone()),
            Layout::HashMetadata,
            None,
        ),
        key(
            "hash:field-expiry-listpack",
            Data::HashWithExpiry(expiring),
            Layout::HashListpackEx,
            None,
        ),
        key(
            "stream:v1",
            Data::Stream(sample_stream()),
            Layout::Stream(1),
            None,
        ),
        key(
            "stream:v2",
            Data::Stream(sample_stream()),
            Layout::Stream(2),
            None,
        ),
        key(
            "stream:v3",
            Data::Stream(sample_stream()),
            Layout::Stream(3),
            None,
        ),
    ]
}

/// The file of `version`: every layout its Redis wrote, aux fields from version 7 (Redis 3.2), database sizes
/// from version 7, functions from version 10 (Redis 7.0), a key in a second database.
pub fn fixture(flavor: Flavor, version: u32, checksum: bool) -> Spec {
    let keys: Vec<KeySpec> = every_layout()
        .into_iter()
        .filter(|k| k.layout.written_by(flavor, version))
        .collect();
    let aux = match version >= 7 {
        true => vec![
            (b"redis-ver".to_vec(), b"255.255.255".to_vec()),
            (
                b"written-by".to_vec(),
                b"replicast-rdb tests/writer".to_vec(),
            ),
        ],
        false => Vec::new(),
    };
    let functions = match version >= 10 {
        true => vec![
            b"#!lua name=written\nredis.register_function('one', function() return 1 end)".to_vec(),
        ],
        false => Vec::new(),
    };
    // Redis 5 (version 9) saves modules' aux data.
    let module_aux = match version >= 9 {
        true => vec![(
            module_id("replicast", 2),
            2,
            vec![ModuleOp::Uint(7), ModuleOp::String(b"aux data".to_vec())],
        )],
        false => Vec::new(),
    };
    let other_db = vec![key(
        "db3:string",
        Data::String(b"in database 3".to_vec()),
        Layout::String(StringForm::Raw),
        None,
    )];
    Spec {
        flavor,
        version,
        checksum,
        aux,
        functions,
        module_aux,
        dbs: vec![(0, version >= 7, keys), (3, version >= 7, other_db)],
    }
}
