//! An RDB writer for the tests: every version the reader supports (`REDIS0001` to `REDIS0012`) and every encoding
//! of strings, lists, sets, sorted sets, hashes and streams (`stream.rs`) it reads, written from Redis's `rdb.c` and the encodings' own
//! definitions (`encodings.rs`), never from the reader's code. A key is written from its [`Data`] in a chosen
//! [`Layout`]; reading the bytes back must give the same data (`tests/written/main.rs`).
#![allow(dead_code)] // Each test file uses its own share of the writer.

pub mod encodings;
pub mod stream;

use encodings::{canonical_int, crc64, intset, listpack, lzf, ziplist, zipmap};
use replicast_rdb::Flavor;
use stream::{Stream, StreamPart};

/// A key's value, as Redis holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    String(Vec<u8>),
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    ZSet(Vec<(Vec<u8>, f64)>),
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    /// A hash whose fields may expire (`HEXPIRE`, Redis 7.4): field, value, absolute expiry in Unix ms.
    HashWithExpiry(Vec<(Vec<u8>, Vec<u8>, Option<i64>)>),
    Stream(Stream),
    /// A module's value (`MODULE_2`): its type's id and the opcodes it saved.
    Module(u64, Vec<ModuleOp>),
    /// What a reader reports of a module value: the type's id only, the opcodes skipped.
    SkippedModule(u64),
    /// What a reader reports of a stream ([`Stream::parts`]): what a written stream is compared as.
    StreamParts(Vec<StreamPart>),
}

/// How a string is stored: as it is, as an integer (`INT8/16/32`), or LZF-compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringForm {
    Raw,
    Int,
    Lzf,
}

/// How a key's value is laid out: each of `rdb.h`'s value types the reader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    String(StringForm),
    /// Type 1: a length, then the elements.
    ListLinked,
    /// Type 10: one ziplist.
    ListZiplist,
    /// Type 14: ziplists of at most this many elements each.
    Quicklist(usize),
    /// Type 18: packed listpack nodes of at most this many elements each (a node of one long element is plain).
    Quicklist2(usize),
    SetPlain,
    SetIntset,
    SetListpack,
    /// Type 3: scores as text.
    ZSetText,
    /// Type 5: scores as binary doubles.
    ZSetBinary,
    ZSetZiplist,
    ZSetListpack,
    HashPlain,
    HashZipmap,
    HashZiplist,
    HashListpack,
    /// Types 15, 19 and 21: a stream in version 1, 2 or 3.
    Stream(u8),
    /// Type 24: a hash with field expiry, as a table: the least expiry, then each field's relative to it.
    HashMetadata,
    /// Type 25: a hash with field expiry, as a listpack of field, value and absolute expiry triplets.
    HashListpackEx,
    /// Type 22 of `VALKEY` files (Valkey 9): each field, value and absolute expiry (-1: none).
    ValkeyHash,
    /// Type 7: a module's value, as typed opcodes.
    Module,
}

/// One typed value a module saves (`RedisModule_Save*`), as `rdb.h`'s `RDB_MODULE_OPCODE_*` writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum ModuleOp {
    Sint(i64),
    Uint(u64),
    Float(f32),
    Double(f64),
    String(Vec<u8>),
}

/// A module type's id: its 9-character name (6 bits a character) and a 10-bit encoding version.
pub fn module_id(name: &str, encoding_version: u64) -> u64 {
    const CHARSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    assert_eq!(name.len(), 9, "a module type's name has 9 characters");
    let name = name.bytes().fold(0u64, |id, c| {
        (id << 6)
            | CHARSET
                .iter()
                .position(|&x| x == c)
                .expect("a name character") as u64
    });
    (name << 10) | (encoding_version & 1023)
}

impl Layout {
    /// The type byte before the key.
    pub fn type_byte(self) -> u8 {
        match self {
            Layout::String(_) => 0,
            Layout::ListLinked => 1,
            Layout::SetPlain => 2,
            Layout::ZSetText => 3,
            Layout::HashPlain => 4,
            Layout::ZSetBinary => 5,
            Layout::HashZipmap => 9,
            Layout::ListZiplist => 10,
            Layout::SetIntset => 11,
            Layout::ZSetZiplist => 12,
            Layout::HashZiplist => 13,
            Layout::Quicklist(_) => 14,
            Layout::HashListpack => 16,
            Layout::ZSetListpack => 17,
            Layout::Quicklist2(_) => 18,
            Layout::SetListpack => 20,
            Layout::Stream(1) => 15,
            Layout::Stream(2) => 19,
            Layout::Stream(_) => 21,
            Layout::HashMetadata => 24,
            Layout::HashListpackEx => 25,
            Layout::ValkeyHash => 22,
            Layout::Module => 7,
        }
    }

    /// Whether a file of this flavor and version can hold this layout: Redis's from the version whose Redis first
    /// wrote it; Valkey's (a fork of Redis 7.2, RDB 11) those of Redis 7.2 and its own type 22.
    pub fn written_by(self, flavor: Flavor, version: u32) -> bool {
        match (flavor, self) {
            (Flavor::Redis, Layout::ValkeyHash) => false,
            (Flavor::Redis, layout) => layout.since_version() <= version,
            (Flavor::Valkey, Layout::ValkeyHash) => true,
            (Flavor::Valkey, layout) => layout.since_version() <= 11,
        }
    }

    /// The first RDB version whose Redis wrote this layout.
    fn since_version(self) -> u32 {
        match self {
            Layout::String(_)
            | Layout::ListLinked
            | Layout::SetPlain
            | Layout::ZSetText
            | Layout::HashPlain => 1,
            Layout::HashZipmap | Layout::ListZiplist | Layout::SetIntset => 2,
            Layout::ZSetZiplist | Layout::HashZiplist => 3,
            Layout::Quicklist(_) => 7,
            Layout::ZSetBinary => 8,
            Layout::HashListpack | Layout::ZSetListpack | Layout::Quicklist2(_) => 10,
            Layout::SetListpack => 11,
            Layout::Stream(1) => 9,
            Layout::Stream(2) => 10,
            Layout::Stream(_) => 11,
            Layout::HashMetadata | Layout::HashListpackEx => 12,
            Layout::ValkeyHash => u32::MAX,
            Layout::Module => 8,
        }
    }

    /// Whether `data` can be laid out so: an intset holds only integers, a string form only strings, and so on.
    pub fn fits(self, data: &Data) -> bool {
        match (self, data) {
            (Layout::String(StringForm::Int), Data::String(s)) => {
                canonical_int(s).is_some_and(|n| i32::try_from(n).is_ok())
            }
            (Layout::String(StringForm::Lzf), Data::String(s)) => !s.is_empty(),
            (Layout::String(StringForm::Raw), Data::String(_)) => true,
            (
                Layout::ListLinked
                | Layout::ListZiplist
                | Layout::Quicklist(_)
                | Layout::Quicklist2(_),
                Data::List(items),
            ) => !items.is_empty(),
            (Layout::SetIntset, Data::Set(members)) => {
                !members.is_empty() && members.iter().all(|m| canonical_int(m).is_some())
            }
            (Layout::SetPlain | Layout::SetListpack, Data::Set(m)) => !m.is_empty(),
            (
                Layout::ZSetText | Layout::ZSetBinary | Layout::ZSetZiplist | Layout::ZSetListpack,
                Data::ZSet(m),
            ) => !m.is_empty(),
            (Layout::HashZipmap, Data::Hash(pairs)) => !pairs.is_empty() && pairs.len() < 254,
            (Layout::HashPlain | Layout::HashZiplist | Layout::HashListpack, Data::Hash(p)) => {
                !p.is_empty()
            }
            (Layout::Module, Data::Module(..)) => true,
            (Layout::ValkeyHash, Data::HashWithExpiry(fields)) => {
                !fields.is_empty() && fields.iter().all(|(_, _, expiry)| *expiry != Some(-1))
            }
            (Layout::HashMetadata | Layout::HashListpackEx, Data::HashWithExpiry(fields)) => {
                !fields.is_empty()
                    && fields
                        .iter()
                        .all(|(_, _, expiry)| expiry.is_none_or(|ms| ms > 0))
            }
            (Layout::Stream(1..=3), Data::Stream(stream)) => stream
                .entries
                .iter()
                .any(|e| !e.deleted && !e.fields.is_empty()),
            _ => false,
        }
    }
}

/// The `VALKEY` RDB version this writer writes: Valkey 9's.
pub const VALKEY_VERSION: u32 = 80;

/// An RDB being written: the header first, then opcodes and keys in call order, then [`RdbWriter::finish`].
pub struct RdbWriter {
    out: Vec<u8>,
    version: u32,
}

impl RdbWriter {
    /// `REDIS` and `version` in four digits.
    pub fn new(version: u32) -> Self {
        RdbWriter {
            out: format!("REDIS{version:04}").into_bytes(),
            version,
        }
    }

    /// `VALKEY` and its version in three digits (80: Valkey 9).
    pub fn valkey(version: u32) -> Self {
        RdbWriter {
            out: format!("VALKEY{version:03}").into_bytes(),
            version,
        }
    }

    pub fn aux(&mut self, key: &[u8], value: &[u8]) -> &mut Self {
        self.out.push(250);
        self.string(key, StringForm::Raw);
        self.string(value, StringForm::Raw);
        self
    }

    pub fn select_db(&mut self, db: u64) -> &mut Self {
        self.out.push(254);
        self.length(db);
        self
    }

    pub fn resize_db(&mut self, keys: u64, expires: u64) -> &mut Self {
        self.out.push(251);
        self.length(keys);
        self.length(expires);
        self
    }

    /// The next key's expiry, in Unix milliseconds (`EXPIRETIME_MS`).
    pub fn expire_ms(&mut self, ms: i64) -> &mut Self {
        self.out.push(252);
        self.out.extend(ms.to_le_bytes());
        self
    }

    /// The next key's expiry, in Unix seconds (`EXPIRETIME`, the versions before 3).
    pub fn expire_secs(&mut self, secs: i32) -> &mut Self {
        self.out.push(253);
        self.out.extend(secs.to_le_bytes());
        self
    }

    /// A module's aux data (`MODULE_AUX`): its type's id, when it is saved (before or after the keys), its opcodes.
    pub fn module_aux(&mut self, id: u64, when: u64, ops: &[ModuleOp]) -> &mut Self {
        self.out.push(247);
        self.length(id);
        self.length(2);
        self.length(when);
        self.module_ops(ops);
        self
    }

    /// Typed module values, then the module EOF opcode.
    fn module_ops(&mut self, ops: &[ModuleOp]) {
        for op in ops {
            match op {
                ModuleOp::Sint(n) => {
                    self.length(1);
                    self.length(*n as u64);
                }
                ModuleOp::Uint(n) => {
                    self.length(2);
                    self.length(*n);
                }
                ModuleOp::Float(x) => {
                    self.length(3);
                    self.out.extend(x.to_le_bytes());
                }
                ModuleOp::Double(x) => {
                    self.length(4);
                    self.out.extend(x.to_le_bytes());
                }
                ModuleOp::String(s) => {
                    self.length(5);
                    self.auto_string(s);
                }
            }
        }
        self.length(0);
    }

    /// A function library (`FUNCTION2`): its code, `#!lua name=…` first.
    pub fn function(&mut self, code: &[u8]) -> &mut Self {
        self.out.push(245);
        self.string(code, StringForm::Raw);
        self
    }

    /// A key: its type byte, name and value in `layout`, which must fit `data` ([`Layout::fits`]).
    pub fn key(&mut self, name: &[u8], data: &Data, layout: Layout) -> &mut Self {
        assert!(layout.fits(data), "{layout:?} cannot hold {data:?}");
        self.out.push(layout.type_byte());
        self.string(name, StringForm::Raw);
        match (layout, data) {
            (Layout::String(form), Data::String(s)) => self.string(s, form),
            (Layout::ListLinked, Data::List(items)) | (Layout::SetPlain, Data::Set(items)) => {
                self.length(items.len() as u64);
                for item in items {
                    self.auto_string(item);
                }
            }
            (Layout::ListZiplist, Data::List(list)) => self.packed(&ziplist(&items(list))),
            (Layout::Quicklist(per_node), Data::List(list)) => {
                let nodes: Vec<&[Vec<u8>]> = list.chunks(per_node).collect();
                self.length(nodes.len() as u64);
                for node in nodes {
                    self.packed(&ziplist(&items(node)));
                }
            }
            (Layout::Quicklist2(per_node), Data::List(list)) => {
                let nodes: Vec<&[Vec<u8>]> = list.chunks(per_node).collect();
                self.length(nodes.len() as u64);
                for node in nodes {
                    match node {
                        // Redis 7 keeps an element too large for a node as a plain node of its own.
                        [big] if big.len() > 8192 => {
                            self.length(1);
                            self.packed(big);
                        }
                        _ => {
                            self.length(2);
                            self.packed(&listpack(&items(node)));
                        }
                    }
                }
            }
            (Layout::SetIntset, Data::Set(members)) => {
                let ints: Vec<i64> = members.iter().filter_map(|m| canonical_int(m)).collect();
                self.packed(&intset(&ints));
            }
            (Layout::SetListpack, Data::Set(members)) => self.packed(&listpack(&items(members))),
            (Layout::ZSetText | Layout::ZSetBinary, Data::ZSet(members)) => {
                self.length(members.len() as u64);
                for (member, score) in members {
                    self.auto_string(member);
                    if layout == Layout::ZSetBinary {
                        self.out.extend(score.to_le_bytes());
                    } else {
                        self.text_double(*score);
                    }
                }
            }
            (Layout::ZSetZiplist | Layout::ZSetListpack, Data::ZSet(members)) => {
                let flat: Vec<Vec<u8>> = members
                    .iter()
                    .flat_map(|(m, score)| [m.clone(), score_text(*score).into_bytes()])
                    .collect();
                let blob = match layout {
                    Layout::ZSetZiplist => ziplist(&items(&flat)),
                    _ => listpack(&items(&flat)),
                };
                self.packed(&blob);
            }
            (Layout::HashPlain, Data::Hash(pairs)) => {
                self.length(pairs.len() as u64);
                for (field, value) in pairs {
                    self.auto_string(field);
                    self.auto_string(value);
                }
            }
            (Layout::HashZipmap, Data::Hash(pairs)) => {
                let pairs: Vec<(&[u8], &[u8])> = pairs
                    .iter()
                    .map(|(f, v)| (f.as_slice(), v.as_slice()))
                    .collect();
                self.packed(&zipmap(&pairs));
            }
            (Layout::HashZiplist | Layout::HashListpack, Data::Hash(pairs)) => {
                let flat: Vec<Vec<u8>> = pairs
                    .iter()
                    .flat_map(|(f, v)| [f.clone(), v.clone()])
                    .collect();
                let blob = match layout {
                    Layout::HashZiplist => ziplist(&items(&flat)),
                    _ => listpack(&items(&flat)),
                };
                self.packed(&blob);
            }
            (Layout::Stream(version), Data::Stream(stream)) => self.stream(version, stream),
            (Layout::HashMetadata, Data::HashWithExpiry(fields)) => {
                let least = fields.iter().filter_map(|(_, _, e)| *e).min().unwrap_or(0);
                self.out.extend(least.to_le_bytes());
                self.length(fields.len() as u64);
                for (field, value, expiry) in fields {
                    // 0 is no expiry; otherwise the expiry less the least one, plus 1.
                    self.length(expiry.map_or(0, |ms| (ms - least + 1) as u64));
                    self.auto_string(field);
                    self.auto_string(value);
                }
            }
            (Layout::Module, Data::Module(id, ops)) => {
                self.length(*id);
                self.module_ops(ops);
            }
            (Layout::ValkeyHash, Data::HashWithExpiry(fields)) => {
                self.length(fields.len() as u64);
                for (field, value, expiry) in fields {
                    self.auto_string(field);
                    self.auto_string(value);
                    self.out.extend(expiry.unwrap_or(-1).to_le_bytes());
                }
            }
            (Layout::HashListpackEx, Data::HashWithExpiry(fields)) => {
                let least = fields.iter().filter_map(|(_, _, e)| *e).min().unwrap_or(0);
                self.out.extend(least.to_le_bytes());
                let flat: Vec<Vec<u8>> = fields
                    .iter()
                    .flat_map(|(f, v, e)| {
                        [
                            f.clone(),
                            v.clone(),
                            e.unwrap_or(0).to_string().into_bytes(),
                        ]
                    })
                    .collect();
                self.packed(&listpack(&items(&flat)));
            }
            _ => unreachable!("checked by fits"),
        }
        self
    }

    fn stream(&mut self, version: u8, stream: &Stream) {
        let nodes = stream.nodes();
        self.length(nodes.len() as u64);
        for (master, lp) in nodes {
            self.blob(&master);
            self.packed(&lp);
        }
        self.length(stream.entries.iter().filter(|e| !e.deleted).count() as u64);
        self.id(stream.last_id);
        if version >= 2 {
            self.id(stream.first_id);
            self.id(stream.max_deleted_id);
            self.length(stream.entries_added);
        }
        self.length(stream.groups.len() as u64);
        for group in &stream.groups {
            self.blob(&group.name);
            self.id(group.last_id);
            if version >= 2 {
                self.length(group.entries_read);
            }
            self.length(group.pending.len() as u64);
            for &(id, delivery_ms, deliveries) in &group.pending {
                self.raw_id(id);
                self.out.extend(delivery_ms.to_le_bytes());
                self.length(deliveries);
            }
            self.length(group.consumers.len() as u64);
            for consumer in &group.consumers {
                self.blob(&consumer.name);
                self.out.extend(consumer.seen_ms.to_le_bytes());
                if version >= 3 {
                    self.out.extend(consumer.active_ms.to_le_bytes());
                }
                self.length(consumer.pending.len() as u64);
                for &id in &consumer.pending {
                    self.raw_id(id);
                }
            }
        }
    }

    /// A stream ID as two lengths.
    fn id(&mut self, (ms, seq): stream::Id) {
        self.length(ms);
        self.length(seq);
    }

    /// A stream ID as 16 bytes, big-endian (pending entries lists).
    fn raw_id(&mut self, (ms, seq): stream::Id) {
        self.out.extend(ms.to_be_bytes());
        self.out.extend(seq.to_be_bytes());
    }

    /// `EOF`, then (from version 5) the CRC64 of everything before it, or zeros when `checksum` is off (as
    /// `rdbchecksum no` writes).
    pub fn finish(mut self, checksum: bool) -> Vec<u8> {
        self.out.push(255);
        if self.version >= 5 {
            let crc = if checksum { crc64(&self.out) } else { 0 };
            self.out.extend(crc.to_le_bytes());
        }
        self.out
    }

    /// An RDB length: 6 bits, 14 bits, 32 or 64 bits big-endian.
    fn length(&mut self, n: u64) {
        if n < 64 {
            self.out.push(n as u8);
        } else if n < 16384 {
            self.out.extend([0x40 | (n >> 8) as u8, n as u8]);
        } else if let Ok(n) = u32::try_from(n) {
            self.out.push(0x80);
            self.out.extend(n.to_be_bytes());
        } else {
            self.out.push(0x81);
            self.out.extend(n.to_be_bytes());
        }
    }

    /// A string in `form` (which must fit it).
    fn string(&mut self, s: &[u8], form: StringForm) {
        match form {
            StringForm::Raw => self.blob(s),
            StringForm::Int => {
                let n = canonical_int(s).expect("an integer string");
                if let Ok(n) = i8::try_from(n) {
                    self.out.extend([0xc0, n as u8]);
                } else if let Ok(n) = i16::try_from(n) {
                    self.out.push(0xc1);
                    self.out.extend(n.to_le_bytes());
                } else {
                    self.out.push(0xc2);
                    self.out.extend((n as i32).to_le_bytes());
                }
            }
            StringForm::Lzf => {
                let compressed = lzf(s);
                self.out.push(0xc3);
                self.length(compressed.len() as u64);
                self.length(s.len() as u64);
                self.out.extend(compressed);
            }
        }
    }

    /// A string as Redis would store it: an integer when it is one that fits 32 bits, LZF when that is shorter
    /// (Redis compresses strings over 20 bytes), else as it is.
    fn auto_string(&mut self, s: &[u8]) {
        let form = if canonical_int(s).is_some_and(|n| i32::try_from(n).is_ok()) {
            StringForm::Int
        } else if s.len() > 20 && lzf(s).len() + 4 < s.len() {
            StringForm::Lzf
        } else {
            StringForm::Raw
        };
        self.string(s, form);
    }

    fn blob(&mut self, bytes: &[u8]) {
        self.length(bytes.len() as u64);
        self.out.extend_from_slice(bytes);
    }

    /// A compact encoding's string, LZF-compressed when that makes it shorter, as Redis saves any string over 20
    /// bytes with `rdbcompression yes`.
    fn packed(&mut self, bytes: &[u8]) {
        let form = match bytes.len() > 20 && lzf(bytes).len() + 4 < bytes.len() {
            true => StringForm::Lzf,
            false => StringForm::Raw,
        };
        self.string(bytes, form);
    }

    /// A type-3 score: a length byte and its text, or 253, 254, 255 for NaN, +inf, -inf.
    fn text_double(&mut self, score: f64) {
        if score.is_nan() {
            self.out.push(253);
        } else if score == f64::INFINITY {
            self.out.push(254);
        } else if score == f64::NEG_INFINITY {
            self.out.push(255);
        } else {
            let text = score_text(score);
            self.out.push(text.len() as u8);
            self.out.extend(text.as_bytes());
        }
    }
}

/// The elements as slices, for the compact encodings.
fn items(values: &[Vec<u8>]) -> Vec<&[u8]> {
    values.iter().map(Vec::as_slice).collect()
}

/// A score as text that reads back to the same double: an integer as Redis prints one (so that a compact encoding
/// stores it as an integer, as Redis does), else the shortest round-trip form with an exponent (`1e300`, `5e-324`:
/// at most 24 bytes, within a type-3 score's length byte), `inf`, `-inf`.
fn score_text(score: f64) -> String {
    match score {
        f64::INFINITY => "inf".to_string(),
        f64::NEG_INFINITY => "-inf".to_string(),
        _ if score.fract() == 0.0 && score.abs() < 1e15 => format!("{}", score as i64),
        _ => format!("{score:e}"),
    }
}
