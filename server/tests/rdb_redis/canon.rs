//! A key's value in a form that what Redis answers, what the reader reports and what `replicast rdb` prints can
//! all be brought to: unordered collections sorted, scores as the bits of their doubles.

use std::collections::BTreeMap;

use base64::Engine;
use replicast_rdb::{Element, Event};
use serde_json::Value as Json;

/// A key's value in a form both sides can be brought to: unordered collections sorted, scores as bits.
#[derive(Debug, Clone, PartialEq)]
pub enum Canon {
    String(Vec<u8>),
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    ZSet(Vec<(Vec<u8>, u64)>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    Stream(StreamCanon),
}

/// A stream entry's field/value pairs, in order.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamCanon {
    pub entries: Vec<(String, Fields)>,
    pub length: u64,
    pub last_id: String,
    pub max_deleted_id: String,
    pub entries_added: u64,
    pub groups: Vec<GroupCanon>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupCanon {
    pub name: Vec<u8>,
    pub last_id: String,
    pub entries_read: Option<u64>,
    /// Pending entries: ID, consumer, delivery count.
    pub pending: Vec<(String, Vec<u8>, u64)>,
    pub consumers: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeyCanon {
    pub db: u64,
    pub key: Vec<u8>,
    pub kind: String,
    pub expire_ms: Option<i64>,
    pub value: Canon,
}

pub fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

pub fn sorted_groups(mut groups: Vec<GroupCanon>) -> Vec<GroupCanon> {
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    for g in &mut groups {
        g.pending.sort();
    }
    groups
}

// ---- What the reader reports ---------------------------------------------------------------------------------

/// Builds canonical keys from reader events, as a library user would.
#[derive(Default)]
pub struct EventModel {
    pub keys: Vec<KeyCanon>,
    pub encodings: std::collections::BTreeSet<String>,
    pub functions: Vec<Vec<u8>>,
    /// Group PEL entries (ID, delivery count) waiting for their consumer, by ID.
    pub group_pel: BTreeMap<String, u64>,
    pub consumer: Vec<u8>,
}

impl EventModel {
    pub fn on(&mut self, event: Event<'_>) {
        match event {
            Event::Function { code } => self.functions.push(code.to_vec()),
            Event::KeyStart(k) => {
                self.encodings.insert(format!("{:?}", k.encoding));
                let value = match k.value_type.name() {
                    "string" => Canon::String(Vec::new()),
                    "list" => Canon::List(Vec::new()),
                    "set" => Canon::Set(Vec::new()),
                    "zset" => Canon::ZSet(Vec::new()),
                    "hash" => Canon::Hash(BTreeMap::new()),
                    "stream" => Canon::Stream(StreamCanon::default()),
                    other => panic!("unexpected type {other}"),
                };
                self.keys.push(KeyCanon {
                    db: k.db,
                    key: k.key.to_vec(),
                    kind: k.value_type.name().to_string(),
                    expire_ms: k.expire_ms,
                    value,
                });
            }
            Event::Element(e) => {
                let key = self.keys.last_mut().unwrap();
                match (&mut key.value, e) {
                    (Canon::String(s), Element::String(v)) => *s = v.to_vec(),
                    (Canon::List(l), Element::ListItem(v))
                    | (Canon::Set(l), Element::SetMember(v)) => l.push(v.to_vec()),
                    (Canon::ZSet(z), Element::ZSetMember { member, score }) => {
                        z.push((member.to_vec(), score.to_bits()))
                    }
                    (Canon::Hash(h), Element::HashField { field, value, .. }) => {
                        h.insert(field.to_vec(), value.to_vec());
                    }
                    (Canon::Stream(s), Element::StreamEntry { id, fields }) => {
                        s.entries.push((
                            id.to_string(),
                            fields
                                .iter()
                                .map(|(f, v)| (f.to_vec(), v.to_vec()))
                                .collect(),
                        ));
                    }
                    (Canon::Stream(s), Element::StreamMeta(m)) => {
                        s.length = m.length;
                        s.last_id = m.last_id.to_string();
                        s.max_deleted_id = m.max_deleted_id.unwrap().to_string();
                        s.entries_added = m.entries_added.unwrap();
                    }
                    (
                        Canon::Stream(s),
                        Element::StreamGroup {
                            name,
                            last_id,
                            entries_read,
                            ..
                        },
                    ) => {
                        s.groups.push(GroupCanon {
                            name: name.to_vec(),
                            last_id: last_id.to_string(),
                            entries_read,
                            ..GroupCanon::default()
                        });
                        self.group_pel.clear();
                    }
                    (
                        Canon::Stream(_),
                        Element::StreamGroupPending {
                            id, delivery_count, ..
                        },
                    ) => {
                        self.group_pel.insert(id.to_string(), delivery_count);
                    }
                    (Canon::Stream(s), Element::StreamConsumer { name, .. }) => {
                        self.consumer = name.to_vec();
                        s.groups.last_mut().unwrap().consumers.push(name.to_vec());
                    }
                    (Canon::Stream(s), Element::StreamConsumerPending { id }) => {
                        let id = id.to_string();
                        let count = self.group_pel[&id];
                        s.groups.last_mut().unwrap().pending.push((
                            id,
                            self.consumer.clone(),
                            count,
                        ));
                    }
                    (value, e) => panic!("element {e:?} in {value:?}"),
                }
            }
            Event::KeyEnd { .. } => {
                let key = self.keys.last_mut().unwrap();
                key.value = normalize(std::mem::replace(&mut key.value, Canon::String(Vec::new())));
            }
            _ => {}
        }
    }
}

pub fn normalize(value: Canon) -> Canon {
    match value {
        Canon::Set(s) => Canon::Set(sorted(s)),
        Canon::ZSet(z) => Canon::ZSet(sorted(z)),
        Canon::Stream(mut s) => {
            for g in &mut s.groups {
                g.consumers.sort();
            }
            s.groups = sorted_groups(s.groups);
            Canon::Stream(s)
        }
        other => other,
    }
}

// ---- What `replicast rdb` prints -----------------------------------------------------------------------------

pub fn json_bytes(j: &Json) -> Vec<u8> {
    match j {
        Json::String(s) => s.as_bytes().to_vec(),
        Json::Object(o) => base64::engine::general_purpose::STANDARD
            .decode(o["base64"].as_str().unwrap())
            .unwrap(),
        other => panic!("expected a string, got {other}"),
    }
}

pub fn json_score(j: &Json) -> u64 {
    match j {
        Json::String(s) => s.parse::<f64>().unwrap().to_bits(),
        n => n.as_f64().unwrap().to_bits(),
    }
}

pub fn json_key(line: &Json) -> KeyCanon {
    let v = &line["value"];
    let list = |v: &Json| {
        v.as_array()
            .unwrap()
            .iter()
            .map(json_bytes)
            .collect::<Vec<_>>()
    };
    let kind = line["type"].as_str().unwrap().to_string();
    let value = match kind.as_str() {
        "string" => Canon::String(json_bytes(v)),
        "list" => Canon::List(list(v)),
        "set" => Canon::Set(sorted(list(v))),
        "zset" => Canon::ZSet(sorted(
            v.as_array()
                .unwrap()
                .iter()
                .map(|p| (json_bytes(&p[0]), json_score(&p[1])))
                .collect(),
        )),
        "hash" => Canon::Hash(
            v.as_array()
                .unwrap()
                .iter()
                .map(|p| (json_bytes(&p[0]), json_bytes(&p[1])))
                .collect(),
        ),
        "stream" => {
            let id = |j: &Json| j.as_str().unwrap().to_string();
            let groups = v["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| {
                    let counts: BTreeMap<String, u64> = g["pending"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| (id(&p["id"]), p["delivery_count"].as_u64().unwrap()))
                        .collect();
                    let mut pending = Vec::new();
                    let mut consumers = Vec::new();
                    for c in g["consumers"].as_array().unwrap() {
                        let name = json_bytes(&c["name"]);
                        for p in c["pending"].as_array().unwrap() {
                            pending.push((id(p), name.clone(), counts[&id(p)]));
                        }
                        consumers.push(name);
                    }
                    GroupCanon {
                        name: json_bytes(&g["name"]),
                        last_id: id(&g["last_id"]),
                        entries_read: g["entries_read"].as_u64(),
                        pending,
                        consumers: sorted(consumers),
                    }
                })
                .collect();
            Canon::Stream(StreamCanon {
                entries: v["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        let f = e["fields"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|p| (json_bytes(&p[0]), json_bytes(&p[1])))
                            .collect();
                        (id(&e["id"]), f)
                    })
                    .collect(),
                length: v["length"].as_u64().unwrap(),
                last_id: id(&v["last_id"]),
                max_deleted_id: id(&v["max_deleted_id"]),
                entries_added: v["entries_added"].as_u64().unwrap(),
                groups: sorted_groups(groups),
            })
        }
        other => panic!("unexpected type {other}"),
    };
    KeyCanon {
        db: line["db"].as_u64().unwrap(),
        key: json_bytes(&line["key"]),
        kind,
        expire_ms: line["expire_ms"].as_i64(),
        value,
    }
}
