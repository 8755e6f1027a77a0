//! What a test file holds ([`Spec`]: its keys, each in a layout, and the opcodes around them) and what reading
//! it back gives ([`ReadBack`], owned), so that the two can be compared whole.

use replicast_rdb::{Checksum, Element, Encoding, Event, Flavor, RdbReader, ValueType};

use crate::writer::stream::StreamPart;
use crate::writer::{Data, Layout, ModuleOp, RdbWriter};

/// When a key expires, in the form the file gives it.
#[derive(Debug, Clone, Copy)]
pub enum Expiry {
    Millis(i64),
    Secs(i32),
}

#[derive(Debug, Clone)]
pub struct KeySpec {
    pub name: Vec<u8>,
    pub data: Data,
    pub layout: Layout,
    pub expiry: Option<Expiry>,
}

/// What a file holds, to write it and to know what reading it must give.
#[derive(Debug, Clone)]
pub struct Spec {
    pub flavor: Flavor,
    pub version: u32,
    pub checksum: bool,
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    pub functions: Vec<Vec<u8>>,
    /// Module aux data: each module type's id, when, and opcodes.
    pub module_aux: Vec<(u64, u64, Vec<ModuleOp>)>,
    /// Each database with its keys, and whether its size is written (`RESIZEDB`).
    pub dbs: Vec<(u64, bool, Vec<KeySpec>)>,
}

impl Spec {
    pub fn write(&self) -> Vec<u8> {
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
    pub fn expected(&self, file: &[u8]) -> ReadBack {
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
pub struct ReadKey {
    pub db: u64,
    pub name: Vec<u8>,
    pub encoding: Option<Encoding>,
    pub expire_ms: Option<i64>,
    pub data: Data,
}

/// What a reader reported, owned.
#[derive(Debug, PartialEq, Default)]
pub struct ReadBack {
    pub flavor: Option<Flavor>,
    pub version: u32,
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    pub functions: Vec<Vec<u8>>,
    pub module_aux: Vec<(u64, u64)>,
    pub dbs: Vec<u64>,
    pub sizes: Vec<(u64, u64)>,
    pub keys: Vec<ReadKey>,
    pub checksum: Option<Checksum>,
}

/// Reads `file` pushed in chunks of `chunk` bytes.
pub fn read_back(file: &[u8], chunk: usize) -> ReadBack {
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
pub fn stream_part(element: Element<'_>) -> StreamPart {
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

/// An intset holds its members sorted: what reading gives back, in the order it gives it.
pub fn as_read(mut spec: Spec) -> Spec {
    for (_, _, keys) in &mut spec.dbs {
        for key in keys {
            if let (Layout::SetIntset, Data::Set(members)) = (key.layout, &mut key.data) {
                members.sort_by_key(|m| crate::writer::encodings::canonical_int(m));
            }
        }
    }
    spec
}
