//! What the round-trip proptest draws: element strings, scores, module opcodes, values of every type (streams
//! with deleted entries and groups among them), and the layouts to write them in.

use proptest::prelude::*;

use crate::writer::stream::{Consumer, Group, Stream, StreamEntry};
use crate::writer::{Data, Layout, ModuleOp, StringForm};

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

pub fn data() -> impl Strategy<Value = Data> {
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

/// Every layout the writer writes, for the proptest to pick from those that fit a value and a version.
pub const LAYOUTS: [Layout; 27] = [
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
