//! The project's own RDB files: `writer/` writes every RDB version (`REDIS0001` to `REDIS0012`, and `VALKEY080`)
//! with every string, list, set, sorted set and hash encoding each version's Redis wrote (hashes with field expiry
//! in version 12 and Valkey's), streams of versions 1 to 3, module values and aux data, aux fields, expiries in
//! seconds and milliseconds, several databases with their sizes, function libraries, and the checksum on and off.
//! The files are committed under `tests/fixtures/` and must be what the writer writes today
//! (`REPLICAST_WRITE_RDB_FIXTURES=1 cargo test -p replicast-rdb --test written` writes them again); each must read
//! back, pushed whole and in chunks of 1 and 7 bytes, as exactly what was written; and random values in random
//! layouts must too (proptest). Real dumps of Redis 7.0 are read in `server/tests/rdb_redis`.
#![cfg(not(target_arch = "wasm32"))]

mod writer;

use std::path::PathBuf;

use proptest::prelude::*;
use replicast_rdb::{Checksum, Element, Encoding, Event, Flavor, RdbReader, ValueType};
use writer::stream::{Consumer, Group, Stream, StreamEntry, StreamPart};
use writer::{module_id, Data, Layout, ModuleOp, RdbWriter, StringForm, VALKEY_VERSION};

/// When a key expires, in the form the file gives it.
#[derive(Debug, Clone, Copy)]
enum Expiry {
    Millis(i64),
    Secs(i32),
}

#[derive(Debug, Clone)]
struct KeySpec {
    name: Vec<u8>,
    data: Data,
    layout: Layout,
    expiry: Option<Expiry>,
}

/// What a file holds, to write it and to know what reading it must give.
#[derive(Debug, Clone)]
struct Spec {
    flavor: Flavor,
    version: u32,
    checksum: bool,
    aux: Vec<(Vec<u8>, Vec<u8>)>,
    functions: Vec<Vec<u8>>,
    /// Module aux data: each module type's id, when, and opcodes.
    module_aux: Vec<(u64, u64, Vec<ModuleOp>)>,
    /// Each database with its keys, and whether its size is written (`RESIZEDB`).
    dbs: Vec<(u64, bool, Vec<KeySpec>)>,
}

impl Spec {
    fn write(&self) -> Vec<u8> {
        let mut rdb = match self.flavor {
            Flavor::Redis => RdbWriter::new(self.version),
            Flavor::Valkey => RdbWriter::valkey(self.version),
        };
        for (key, value) in &self.aux {
            rdb.aux(key, value);
        }
        for code in &self.functions {
            rdb.function(code);
        }
        for (id, when, ops) in &self.module_aux {
            rdb.module_aux(*id, *when, ops);
        }
        for (db, resize, keys) in &self.dbs {
            rdb.select_db(*db);
            if *resize {
                let expires = keys.iter().filter(|k| k.expiry.is_some()).count();
                rdb.resize_db(keys.len() as u64, expires as u64);
            }
            for key in keys {
                match key.expiry {
                    Some(Expiry::Millis(ms)) => rdb.expire_ms(ms),
                    Some(Expiry::Secs(secs)) => rdb.expire_secs(secs),
                    None => &mut rdb,
                };
                rdb.key(&key.name, &key.data, key.layout);
            }
        }
        rdb.finish(self.checksum)
    }

    /// What a reader must report of the file.
    fn expected(&self, file: &[u8]) -> ReadBack {
        let checksum = match (self.version >= 5, self.checksum) {
            (false, _) => Checksum::Absent,
            (true, false) => Checksum::Disabled,
            (true, true) => Checksum::Verified(u64::from_le_bytes(
                file[file.len() - 8..].try_into().unwrap(),
            )),
        };
        ReadBack {
            flavor: Some(self.flavor),
            version: self.version,
            aux: self.aux.clone(),
            functions: self.functions.clone(),
            module_aux: self
                .module_aux
                .iter()
                .map(|(id, when, _)| (*id, *when))
                .collect(),
            dbs: self.dbs.iter().map(|(db, _, _)| *db).collect(),
            sizes: self
                .dbs
                .iter()
                .filter(|(_, resize, _)| *resize)
                .map(|(_, _, keys)| {
                    let expires = keys.iter().filter(|k| k.expiry.is_some()).count();
                    (keys.len() as u64, expires as u64)
                })
                .collect(),
            keys: self
                .dbs
                .iter()
                .flat_map(|(db, _, keys)| {
                    keys.iter().map(|key| ReadKey {
                        db: *db,
                        name: key.name.clone(),
                        encoding: Encoding::from_id(key.layout.type_byte(), self.flavor),
                        expire_ms: key.expiry.map(|e| match e {
                            Expiry::Millis(ms) => ms,
                            Expiry::Secs(secs) => i64::from(secs) * 1000,
                        }),
                        data: match (&key.data, key.layout) {
                            (Data::Stream(stream), Layout::Stream(version)) => {
                                Data::StreamParts(stream.parts(version))
                            }
                            (Data::Module(id, _), _) => Data::SkippedModule(*id),
                            (data, _) => data.clone(),
                        },
                    })
                })
                .collect(),
            checksum: Some(checksum),
        }
    }
}

#[derive(Debug, PartialEq)]
struct ReadKey {
    db: u64,
    name: Vec<u8>,
    encoding: Option<Encoding>,
    expire_ms: Option<i64>,
    data: Data,
}

/// What a reader reported, owned.
#[derive(Debug, PartialEq, Default)]
struct ReadBack {
    flavor: Option<Flavor>,
    version: u32,
    aux: Vec<(Vec<u8>, Vec<u8>)>,
    functions: Vec<Vec<u8>>,
    module_aux: Vec<(u64, u64)>,
    dbs: Vec<u64>,
    sizes: Vec<(u64, u64)>,
    keys: Vec<ReadKey>,
    checksum: Option<Checksum>,
}

/// Reads `file` pushed in chunks of `chunk` bytes.
fn read_back(file: &[u8], chunk: usize) -> ReadBack {
    let mut read = ReadBack::default();
    let mut reader = RdbReader::new();
    for part in file.chunks(chunk) {
        reader
            .push(part, |event| match event {
                Event::Header { flavor, version } => {
                    read.flavor = Some(flavor);
                    read.version = version;
                }
                Event::Aux { key, value } => read.aux.push((key.to_vec(), value.to_vec())),
                Event::Function { code } => read.functions.push(code.to_vec()),
                Event::ModuleAux { module, when } => read.module_aux.push((module.0, when)),
                Event::SelectDb { db } => read.dbs.push(db),
                Event::ResizeDb { keys, expires } => read.sizes.push((keys, expires)),
                Event::KeyStart(start) => read.keys.push(ReadKey {
                    db: start.db,
                    name: start.key.to_vec(),
                    encoding: Some(start.encoding),
                    expire_ms: start.expire_ms,
                    data: match start.value_type {
                        ValueType::String => Data::String(Vec::new()),
                        ValueType::List => Data::List(Vec::new()),
                        ValueType::Set => Data::Set(Vec::new()),
                        ValueType::ZSet => Data::ZSet(Vec::new()),
                        ValueType::Hash
                            if matches!(
                                start.encoding,
                                Encoding::HashMetadata
                                    | Encoding::HashListpackEx
                                    | Encoding::ValkeyHash2
                            ) =>
                        {
                            Data::HashWithExpiry(Vec::new())
                        }
                        ValueType::Hash => Data::Hash(Vec::new()),
                        ValueType::Stream => Data::StreamParts(Vec::new()),
                        ValueType::Module => {
                            Data::SkippedModule(start.module.expect("a module value's type").0)
                        }
                    },
                }),
                Event::Element(element) => {
                    let data = &mut read.keys.last_mut().expect("an element of a key").data;
                    match (data, element) {
                        (Data::String(s), Element::String(v)) => *s = v.to_vec(),
                        (Data::List(items), Element::ListItem(v)) => items.push(v.to_vec()),
                        (Data::Set(members), Element::SetMember(v)) => members.push(v.to_vec()),
                        (Data::ZSet(members), Element::ZSetMember { member, score }) => {
                            members.push((member.to_vec(), score))
                        }
                        (
                            Data::Hash(pairs),
                            Element::HashField {
                                field,
                                value,
                                expire_ms: None,
                            },
                        ) => pairs.push((field.to_vec(), value.to_vec())),
                        (
                            Data::HashWithExpiry(fields),
                            Element::HashField {
                                field,
                                value,
                                expire_ms,
                            },
                        ) => fields.push((field.to_vec(), value.to_vec(), expire_ms)),
                        (Data::StreamParts(parts), element) => parts.push(stream_part(element)),
                        (data, element) => panic!("{element:?} in {data:?}"),
                    }
                }
                Event::Eof { checksum } => read.checksum = Some(checksum),
                Event::KeyEnd { .. } => {}
                other => panic!("the writer writes no {other:?}"),
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }
    reader.finish().unwrap();
    read
}

/// A stream's element, owned.
fn stream_part(element: Element<'_>) -> StreamPart {
    let id = |id: replicast_rdb::StreamId| (id.ms, id.seq);
    match element {
        Element::StreamEntry { id: entry, fields } => StreamPart::Entry(
            id(entry),
            fields
                .iter()
                .map(|(f, v)| (f.to_vec(), v.to_vec()))
                .collect(),
        ),
        Element::StreamMeta(meta) => StreamPart::Meta {
            length: meta.length,
            last_id: id(meta.last_id),
            first_id: meta.first_id.map(id),
            max_deleted_id: meta.max_deleted_id.map(id),
            entries_added: meta.entries_added,
            groups: meta.groups,
        },
        Element::StreamGroup {
            name,
            last_id,
            entries_read,
            pending,
        } => StreamPart::Group {
            name: name.to_vec(),
            last_id: id(last_id),
            entries_read,
            pending,
        },
        Element::StreamGroupPending {
            id: entry,
            delivery_time_ms,
            delivery_count,
        } => StreamPart::GroupPending(id(entry), delivery_time_ms, delivery_count),
        Element::StreamConsumer {
            name,
            seen_time_ms,
            active_time_ms,
            pending,
        } => StreamPart::Consumer {
            name: name.to_vec(),
            seen_ms: seen_time_ms,
            active_ms: active_time_ms,
            pending,
        },
        Element::StreamConsumerPending { id: entry } => StreamPart::ConsumerPending(id(entry)),
        other => panic!("{other:?} in a stream"),
    }
}

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

/// An intset holds its members sorted: what reading gives back, in the order it gives it.
fn as_read(mut spec: Spec) -> Spec {
    for (_, _, keys) in &mut spec.dbs {
        for key in keys {
            if let (Layout::SetIntset, Data::Set(members)) = (key.layout, &mut key.data) {
                members.sort_by_key(|m| writer::encodings::canonical_int(m));
            }
        }
    }
    spec
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
fn fixture(flavor: Flavor, version: u32, checksum: bool) -> Spec {
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

/// Every committed fixture: its file name and what it holds.
fn fixtures() -> Vec<(String, Spec)> {
    let mut all: Vec<(String, Spec)> = (1..=12)
        .map(|v| {
            (
                format!("redis-v{v:02}.rdb"),
                fixture(Flavor::Redis, v, true),
            )
        })
        .collect();
    all.push((
        "redis-v12-checksum-off.rdb".to_string(),
        fixture(Flavor::Redis, 12, false),
    ));
    all.push((
        format!("valkey-v{VALKEY_VERSION}.rdb"),
        fixture(Flavor::Valkey, VALKEY_VERSION, true),
    ));
    all
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn committed_fixtures_are_what_the_writer_writes() {
    let dir = fixtures_dir();
    let rewrite = std::env::var_os("REPLICAST_WRITE_RDB_FIXTURES").is_some();
    let mut names = Vec::new();
    for (name, spec) in fixtures() {
        let written = spec.write();
        if rewrite {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(&name), &written).unwrap();
        }
        let committed = std::fs::read(dir.join(&name)).unwrap_or_else(|e| {
            panic!("tests/fixtures/{name}: {e} (REPLICAST_WRITE_RDB_FIXTURES=1 writes it)")
        });
        assert!(
            committed == written,
            "tests/fixtures/{name} is not what the writer writes now (REPLICAST_WRITE_RDB_FIXTURES=1 writes it again)"
        );
        names.push(name);
    }
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    names.sort();
    assert_eq!(
        present, names,
        "tests/fixtures holds exactly the writer's files"
    );
}

#[test]
fn every_fixture_reads_back_as_written() {
    for (name, spec) in fixtures() {
        let file = std::fs::read(fixtures_dir().join(&name)).unwrap();
        let expected = as_read(spec).expected(&file);
        assert!(
            expected.keys.len() >= 8,
            "{name}: {} keys",
            expected.keys.len()
        );
        for chunk in [file.len(), 1, 7] {
            assert_eq!(
                read_back(&file, chunk),
                expected,
                "{name} in chunks of {chunk}"
            );
        }
    }
}

#[test]
fn a_flipped_byte_in_a_checksummed_fixture_is_a_checksum_error() {
    let mut file = std::fs::read(fixtures_dir().join("redis-v12.rdb")).unwrap();
    // The first aux value's last byte: the file still parses, and only the checksum can tell.
    let at = file.windows(11).position(|w| w == b"255.255.255").unwrap() + 10;
    file[at] = b'6';
    let mut reader = RdbReader::new();
    let error = reader.push(&file, |_| {}).unwrap_err().to_string();
    assert!(error.contains("checksum mismatch"), "{error}");
    let mut off = std::fs::read(fixtures_dir().join("redis-v12-checksum-off.rdb")).unwrap();
    let at = off.windows(11).position(|w| w == b"255.255.255").unwrap() + 10;
    off[at] = b'6';
    let read = read_back(&off, off.len());
    assert_eq!(read.checksum, Some(Checksum::Disabled));
    assert_eq!(read.aux[0].1, b"255.255.256");
}

/// Element strings: integers of every width, short and long strings, repetitive ones (LZF), any bytes.
fn element() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<i8>().prop_map(|n| n.to_string().into_bytes()),
        any::<i32>().prop_map(|n| n.to_string().into_bytes()),
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..80),
        ("[a-c]{1,4}", 1..300usize).prop_map(|(s, n)| s.repeat(n).into_bytes()),
    ]
}

fn module_op() -> impl Strategy<Value = ModuleOp> {
    prop_oneof![
        any::<i64>().prop_map(ModuleOp::Sint),
        any::<u64>().prop_map(ModuleOp::Uint),
        any::<f32>().prop_map(ModuleOp::Float),
        any::<f64>().prop_map(ModuleOp::Double),
        element().prop_map(ModuleOp::String),
    ]
}

fn score() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("Redis refuses NaN scores", |s| !s.is_nan()),
        any::<i32>().prop_map(f64::from),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
    ]
}

/// Unique by their first part, as members and fields are.
fn unique<T>(mut pairs: Vec<(Vec<u8>, T)>) -> Vec<(Vec<u8>, T)> {
    let mut seen = std::collections::HashSet::new();
    pairs.retain(|(k, _)| seen.insert(k.clone()));
    pairs
}

fn data() -> impl Strategy<Value = Data> {
    let items = || proptest::collection::vec(element(), 1..40);
    prop_oneof![
        element().prop_map(Data::String),
        items().prop_map(Data::List),
        items().prop_map(|m| Data::Set(
            unique(m.into_iter().map(|m| (m, ())).collect())
                .into_iter()
                .map(|(m, ())| m)
                .collect()
        )),
        proptest::collection::vec((element(), score()), 1..40).prop_map(|m| Data::ZSet(unique(m))),
        proptest::collection::vec((element(), element()), 1..40)
            .prop_map(|p| Data::Hash(unique(p))),
        proptest::collection::vec(
            (element(), element(), proptest::option::of(1i64..1 << 47)),
            1..20
        )
        .prop_map(|fields| Data::HashWithExpiry(
            unique(fields.into_iter().map(|(f, v, e)| (f, (v, e))).collect())
                .into_iter()
                .map(|(f, (v, e))| (f, v, e))
                .collect()
        )),
        stream(),
        (any::<u64>(), proptest::collection::vec(module_op(), 0..6))
            .prop_map(|(id, ops)| Data::Module(id, ops)),
    ]
}

/// A stream of 1 to 12 entries in increasing IDs, some deleted, some sharing the first entry's fields, and up to
/// two groups whose pending entries are among them.
fn stream() -> impl Strategy<Value = Data> {
    let entry = (
        0u64..3_000,
        0u64..3,
        proptest::collection::vec((element(), element()), 1..4),
        any::<bool>(),
        proptest::bool::weighted(0.2),
    );
    (
        proptest::collection::vec(entry, 1..12),
        1usize..5,
        proptest::collection::vec((element(), 0usize..4, any::<u32>()), 0..3),
    )
        .prop_map(|(raw, per_node, groups)| {
            let mut entries: Vec<StreamEntry> = Vec::new();
            let (mut ms, mut seq) = (1_700_000_000_000u64, 0u64);
            for (ms_step, seq_step, fields, same, deleted) in raw {
                if ms_step == 0 {
                    seq += 1 + seq_step;
                } else {
                    (ms, seq) = (ms + ms_step, seq_step);
                }
                let fields = match (same, entries.first()) {
                    (true, Some(first)) => first
                        .fields
                        .iter()
                        .zip(fields.iter().cycle())
                        .map(|((f, _), (_, v))| (f.clone(), v.clone()))
                        .collect(),
                    _ => fields,
                };
                entries.push(StreamEntry {
                    id: (ms, seq),
                    fields,
                    deleted,
                });
            }
            entries[0].deleted = false;
            let live: Vec<(u64, u64)> = entries
                .iter()
                .filter(|e| !e.deleted)
                .map(|e| e.id)
                .collect();
            let groups = unique(
                groups
                    .into_iter()
                    .map(|(name, n, time)| (name, (n, time)))
                    .collect(),
            )
            .into_iter()
            .map(|(name, (n, time))| {
                let pending: Vec<_> = live
                    .iter()
                    .take(n)
                    .map(|&id| (id, u64::from(time), 1 + n as u64))
                    .collect();
                Group {
                    name,
                    last_id: live[0],
                    entries_read: n as u64,
                    consumers: vec![Consumer {
                        name: b"c".to_vec(),
                        seen_ms: u64::from(time),
                        active_ms: u64::from(time) / 2,
                        pending: pending.iter().map(|(id, _, _)| *id).collect(),
                    }],
                    pending,
                }
            })
            .collect();
            let last = entries.last().map(|e| e.id).unwrap_or_default();
            Data::Stream(Stream {
                per_node,
                last_id: last,
                first_id: live[0],
                max_deleted_id: entries
                    .iter()
                    .filter(|e| e.deleted)
                    .map(|e| e.id)
                    .max()
                    .unwrap_or_default(),
                entries_added: entries.len() as u64,
                groups,
                entries,
            })
        })
}

const LAYOUTS: [Layout; 27] = [
    Layout::String(StringForm::Raw),
    Layout::String(StringForm::Int),
    Layout::String(StringForm::Lzf),
    Layout::ListLinked,
    Layout::ListZiplist,
    Layout::Quicklist(1),
    Layout::Quicklist(5),
    Layout::Quicklist2(1),
    Layout::Quicklist2(5),
    Layout::SetPlain,
    Layout::SetIntset,
    Layout::SetListpack,
    Layout::ZSetText,
    Layout::ZSetBinary,
    Layout::ZSetZiplist,
    Layout::ZSetListpack,
    Layout::HashPlain,
    Layout::HashZipmap,
    Layout::HashZiplist,
    Layout::HashListpack,
    Layout::Stream(1),
    Layout::Stream(2),
    Layout::Stream(3),
    Layout::HashMetadata,
    Layout::HashListpackEx,
    Layout::ValkeyHash,
    Layout::Module,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random values in random layouts of a random version read back as written, whatever the chunking.
    #[test]
    fn random_values_read_back_as_written(
        (flavor, version) in prop_oneof![
            (1u32..=12).prop_map(|v| (Flavor::Redis, v)),
            Just((Flavor::Valkey, VALKEY_VERSION)),
        ],
        checksum in any::<bool>(),
        values in proptest::collection::vec((data(), any::<prop::sample::Index>(), any::<Option<i64>>()), 1..8),
        chunk in 1usize..64,
    ) {
        // A value with no layout in the version (a stream before 9) is left out.
        let keys: Vec<KeySpec> = values
            .into_iter()
            .enumerate()
            .filter_map(|(i, (data, pick, expire))| {
                let fitting: Vec<Layout> = LAYOUTS
                    .into_iter()
                    .filter(|l| l.written_by(flavor, version) && l.fits(&data))
                    .collect();
                (!fitting.is_empty()).then(|| KeySpec {
                    name: format!("key:{i}").into_bytes(),
                    layout: *pick.get(&fitting),
                    data,
                    expiry: expire.map(Expiry::Millis),
                })
            })
            .collect();
        let spec = as_read(Spec { flavor, version, checksum, aux: Vec::new(), functions: Vec::new(), module_aux: Vec::new(), dbs: vec![(0, true, keys)] });
        let file = spec.write();
        prop_assert_eq!(read_back(&file, chunk), spec.expected(&file));
    }
}
