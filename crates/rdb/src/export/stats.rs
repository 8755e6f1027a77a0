//! `replicast rdb --stats`: keys, RDB bytes and elements per database and type, and the biggest keys.

use std::collections::{BTreeMap, BinaryHeap};
use std::io::{self, Write};

use crate::{Element, Event};

use super::filter::Filter;
use super::json_lines::write_bytes;

/// Keys and RDB bytes of one database and type.
#[derive(Default, Clone, Copy)]
pub(super) struct Tally {
    keys: u64,
    bytes: u64,
    elements: u64,
}

/// One of the biggest keys, ordered smallest first so the heap drops the smallest.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Big {
    neg_bytes: std::cmp::Reverse<u64>,
    db: u64,
    key: Vec<u8>,
    value_type: &'static str,
    elements: u64,
}

pub struct Stats {
    per: BTreeMap<(u64, &'static str), Tally>,
    biggest: BinaryHeap<Big>,
    top: usize,
    pub all_keys: u64,
    skipped_empty: u64,
    aux: Vec<(String, String)>,
    functions: u64,
    /// The key being read, if it passes the filter: its name (a buffer reused from key to key) and start.
    current: Option<Current>,
    key: Vec<u8>,
    version: u32,
}

pub(super) struct Current {
    db: u64,
    value_type: &'static str,
    offset: u64,
    elements: u64,
}

impl Stats {
    pub fn new(top: usize) -> Self {
        Stats {
            per: BTreeMap::new(),
            biggest: BinaryHeap::new(),
            top,
            all_keys: 0,
            skipped_empty: 0,
            aux: Vec::new(),
            functions: 0,
            current: None,
            key: Vec::new(),
            version: 0,
        }
    }

    pub fn on_event(&mut self, event: &Event<'_>, filter: &Filter) {
        match event {
            Event::Header { version, .. } => self.version = *version,
            Event::Aux { key, value } => self.aux.push((key.to_string(), value.to_string())),
            Event::Function { .. } | Event::FunctionPreGa { .. } => self.functions += 1,
            Event::SkippedEmptyKey { .. } => self.skipped_empty += 1,
            Event::KeyStart(key) => {
                self.all_keys += 1;
                self.current = filter.accepts(key).then(|| {
                    self.key.clear();
                    self.key.extend_from_slice(key.key);
                    Current {
                        db: key.db,
                        value_type: key.value_type.name(),
                        offset: key.offset,
                        elements: 0,
                    }
                });
            }
            Event::Element(
                Element::String(_)
                | Element::ListItem(_)
                | Element::SetMember(_)
                | Element::ZSetMember { .. }
                | Element::HashField { .. }
                | Element::StreamEntry { .. },
            ) => {
                if let Some(current) = &mut self.current {
                    current.elements += 1;
                }
            }
            Event::KeyEnd { offset } => {
                if let Some(current) = self.current.take() {
                    let bytes = offset.saturating_sub(current.offset);
                    let tally = self
                        .per
                        .entry((current.db, current.value_type))
                        .or_default();
                    tally.keys += 1;
                    tally.bytes += bytes;
                    tally.elements += current.elements;
                    let smallest = self.biggest.peek().map_or(0, |b| b.neg_bytes.0);
                    if self.biggest.len() < self.top || bytes > smallest {
                        self.biggest.push(Big {
                            neg_bytes: std::cmp::Reverse(bytes),
                            db: current.db,
                            key: self.key.clone(),
                            value_type: current.value_type,
                            elements: current.elements,
                        });
                        if self.biggest.len() > self.top {
                            self.biggest.pop();
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The summary as one JSON document.
    pub fn write(&mut self, out: &mut impl Write, total_bytes: u64) -> io::Result<()> {
        let mut dbs: BTreeMap<String, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
        for ((db, value_type), t) in &self.per {
            dbs.entry(db.to_string()).or_default().insert(
                value_type.to_string(),
                serde_json::json!({"keys": t.keys, "bytes": t.bytes, "elements": t.elements}),
            );
        }
        let mut biggest: Vec<Big> = std::mem::take(&mut self.biggest).into_vec();
        biggest.sort();
        let biggest: Vec<serde_json::Value> = biggest
            .iter()
            .map(|b| {
                let mut key = Vec::new();
                let _ = write_bytes(&mut key, &b.key);
                serde_json::json!({
                    "db": b.db,
                    "key": serde_json::from_slice::<serde_json::Value>(&key).unwrap_or_default(),
                    "type": b.value_type,
                    "bytes": b.neg_bytes.0,
                    "elements": b.elements,
                })
            })
            .collect();
        let aux: serde_json::Map<String, serde_json::Value> = self
            .aux
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        let summary = serde_json::json!({
            "rdb_version": self.version,
            "bytes": total_bytes,
            "keys": self.all_keys,
            "skipped_empty_keys": self.skipped_empty,
            "functions": self.functions,
            "aux": aux,
            "dbs": dbs,
            "biggest_keys": biggest,
        });
        serde_json::to_writer_pretty(&mut *out, &summary)?;
        out.write_all(b"\n")?;
        Ok(())
    }
}
