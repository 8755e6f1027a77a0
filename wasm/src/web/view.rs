//! What a page reads of the windows (the computations behind [`super::reads`]): where each shard's stream stands, keys, typed arrays of times and numeric fields, the newest item, and whole
//! windows as plain objects. Each read is one call that walks a window in wasm and hands JS one array or object.
//!
//! Series follow the item order of each type, oldest first: sorted-set members by score, stream entries by id,
//! list items from head to tail. For a hash the series is one field's history (its earlier values, then its
//! value; `path` names the field, or the field then a JSON path inside it), for a string its recent values.

use js_sys::Float64Array;
use wasm_bindgen::prelude::*;

use super::follow::Follow;
use super::objects::{array, number_or_null, object, strings};
use replicast_assembler::aggregate::sample::{Read, SampleReader};
use replicast_assembler::assembler::StreamAssembler;
use replicast_assembler::observe::{Payload, WindowObserver};
use replicast_assembler::windows::{ItemView, Window};

/// Where each shard's stream stands, for the page: `{shard, epoch, offset}` each.
pub(super) fn positions(assembler: &StreamAssembler<Follow>) -> JsValue {
    array(
        assembler
            .positions()
            .into_iter()
            .map(|(shard, epoch, offset)| {
                object(&[
                    ("shard", shard.into()),
                    ("epoch", epoch.into()),
                    ("offset", (offset as f64).into()),
                ])
            }),
    )
}

pub fn keys<O: WindowObserver>(assembler: &StreamAssembler<O>) -> Vec<String> {
    assembler.keys().map(text).collect()
}

pub fn len<O: WindowObserver>(assembler: &StreamAssembler<O>, key: &str) -> usize {
    assembler.window(key.as_bytes()).map_or(0, Window::len)
}

/// Item times, oldest first: sorted-set scores, stream entry ids' milliseconds; empty for other types.
pub fn times(assembler: &StreamAssembler<Follow>, key: &str) -> Float64Array {
    if let Some(times) = assembler.observer().cached_times(key.as_bytes()) {
        return Float64Array::from(times.as_slice());
    }
    let mut times: Vec<f64> = Vec::new();
    if let Some(window) = assembler.window(key.as_bytes()) {
        times.reserve(window.len());
        if let Some(zset) = window.as_zset() {
            // Scores alone: no need for the items' ids.
            times.extend(zset.newest_first().map(|(_, score)| score));
            times.reverse();
            return Float64Array::from(times.as_slice());
        }
        for item in window.items_newest_first() {
            match item {
                ItemView::Member { score, .. } => times.push(score),
                ItemView::Entry { entry, .. } => times.push(entry.ms as f64),
                _ => {}
            }
        }
        times.reverse();
    }
    Float64Array::from(times.as_slice())
}

/// One row per key of `keys`, in their order, in one array: the items in its window, its newest item's time,
/// then the newest value of each aggregated field (`aggregate.fields`, then `aggregate.counters`). The row's time
/// and values are NaN where the key has no window, its items carry no time (lists, hashes, strings: see
/// [`times`]) or the item lacks the field; the values are kept as samples arrive, so the read is a copy.
pub fn newest_of(assembler: &StreamAssembler<Follow>, keys: &[String]) -> Float64Array {
    let follow = assembler.observer();
    let stride = 2 + follow.newest_fields();
    let mut rows: Vec<f64> = Vec::with_capacity(keys.len() * stride);
    for key in keys {
        let window = assembler.window(key.as_bytes());
        rows.push(window.map_or(0, Window::len) as f64);
        if window.is_none() || !follow.push_newest(key.as_bytes(), &mut rows) {
            rows.resize(rows.len() + stride - 1, f64::NAN);
        }
    }
    Float64Array::from(rows.as_slice())
}

pub fn series(
    assembler: &StreamAssembler<Follow>,
    key: &str,
    path: &str,
) -> Result<Float64Array, JsError> {
    Ok(Float64Array::from(
        series_values(assembler, key, path)?.as_slice(),
    ))
}

/// The numbers of [`series`], in wasm memory.
pub fn series_values(
    assembler: &StreamAssembler<Follow>,
    key: &str,
    path: &str,
) -> Result<Vec<f64>, JsError> {
    // Aggregated fields of timed items are kept as they change: no item is read again.
    if let Some(values) = assembler.observer().cached_series(key.as_bytes(), path) {
        return Ok(values);
    }
    let mut reader = SampleReader::new(&[path])?;
    let mut values: Vec<f64> = Vec::new();
    let mut read = |payload: Payload<'_>| {
        let mut value = f64::NAN;
        // An item that is not JSON has no numbers to give: NaN, like a missing field.
        let _ = reader.read(payload, |_, read| {
            if let Read::Number(v, _) = read {
                value = v;
            }
        });
        value
    };
    let Some(window) = assembler.window(key.as_bytes()) else {
        return Ok(Vec::new());
    };
    match window.as_hash() {
        // One field's history: `path` is the field, or the field then a path into its JSON value.
        Some(_) => {
            let (field, inner) = path.split_once('.').unwrap_or((path, ""));
            let mut inner = SampleReader::new(&[inner])?;
            let mut number = |value: &[u8]| {
                let mut n = f64::NAN;
                let _ = inner.read(Payload::Value(value), |_, read| {
                    if let Read::Number(v, _) = read {
                        n = v;
                    }
                });
                n
            };
            for item in window.items_newest_first() {
                if let ItemView::Field {
                    field: name,
                    value,
                    previous,
                    ..
                } = item
                {
                    if name == field.as_bytes() {
                        values.push(number(value));
                        values.extend(previous.iter().map(|v| number(v)));
                    }
                }
            }
        }
        None => {
            for item in window.items_newest_first() {
                match item {
                    ItemView::Member { member, .. } => values.push(read(Payload::Value(member))),
                    ItemView::Entry { fields, .. } => values.push(read(Payload::Fields(fields))),
                    ItemView::ListItem { value, .. } => values.push(read(Payload::Value(value))),
                    ItemView::Value {
                        value, previous, ..
                    } => {
                        values.push(read(Payload::Value(value)));
                        values.extend(previous.iter().map(|v| read(Payload::Value(v))));
                    }
                    ItemView::Field { .. } => {}
                }
            }
        }
    }
    values.reverse();
    Ok(values)
}

/// The newest item as JSON: a member, list item or string value parsed; a stream entry as an object of its
/// fields; a hash as an object of its fields. `undefined` without a window or when the value is not JSON.
pub fn latest<O: WindowObserver>(assembler: &StreamAssembler<O>, key: &str) -> JsValue {
    let Some(window) = assembler.window(key.as_bytes()) else {
        return JsValue::UNDEFINED;
    };
    let parse = |bytes: &[u8]| {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|t| js_sys::JSON::parse(t).ok())
            .unwrap_or(JsValue::UNDEFINED)
    };
    if window.as_hash().is_some() {
        let object = js_sys::Object::new();
        for item in window.items_newest_first() {
            if let ItemView::Field { field, value, .. } = item {
                let _ = js_sys::Reflect::set(&object, &text(field).into(), &text(value).into());
            }
        }
        return object.into();
    }
    match window.items_newest_first().next() {
        Some(ItemView::Member { member, .. }) => parse(member),
        Some(ItemView::ListItem { value, .. }) | Some(ItemView::Value { value, .. }) => {
            parse(value)
        }
        Some(ItemView::Entry { fields, .. }) => {
            let object = js_sys::Object::new();
            for pair in fields.chunks_exact(2) {
                let _ =
                    js_sys::Reflect::set(&object, &text(&pair[0]).into(), &text(&pair[1]).into());
            }
            object.into()
        }
        _ => JsValue::UNDEFINED,
    }
}

/// `key`'s window: `{type, complete, stale, expiresAt, items}`, items newest first.
pub fn window<O: WindowObserver>(assembler: &StreamAssembler<O>, key: &str) -> JsValue {
    let Some(window) = assembler.window(key.as_bytes()) else {
        return JsValue::UNDEFINED;
    };
    let items = window.items_newest_first().map(|item| match item {
        ItemView::Member { member, score, .. } => {
            object(&[("member", text(member).into()), ("score", score.into())])
        }
        ItemView::Entry { entry, fields, .. } => object(&[
            ("id", format!("{}-{}", entry.ms, entry.seq).into()),
            (
                "fields",
                array(
                    fields
                        .chunks_exact(2)
                        .map(|p| strings(p.iter().map(|v| text(v)))),
                ),
            ),
        ]),
        ItemView::ListItem { value, .. } => object(&[("value", text(value).into())]),
        ItemView::Field {
            field,
            value,
            previous,
            ..
        } => object(&[
            ("field", text(field).into()),
            ("value", text(value).into()),
            ("previous", strings(previous.iter().map(|v| text(v)))),
        ]),
        ItemView::Value {
            value, previous, ..
        } => object(&[
            ("value", text(value).into()),
            ("previous", strings(previous.iter().map(|v| text(v)))),
        ]),
    });
    object(&[
        ("type", window.kind().name().into()),
        // Whether the window holds all Redis holds for the key.
        ("complete", window.complete().into()),
        // Whether a top-up was asked for and has not arrived.
        ("stale", window.stale().into()),
        (
            "expiresAt",
            number_or_null(window.expires_at_ms().map(|t| t as f64)),
        ),
        ("items", array(items)),
    ])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
