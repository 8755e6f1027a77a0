//! What a page reads of the windows: keys, typed arrays of times and numeric fields, the newest item, and whole
//! windows as plain objects. Each read is one call that walks a window in wasm and hands JS one array or object.

use js_sys::Float64Array;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::aggregate::json::{parse_number, Found, PathSet};
use crate::assembler::StreamAssembler;

pub fn keys(assembler: &StreamAssembler) -> Vec<String> {
    assembler
        .windows()
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .collect()
}

pub fn len(assembler: &StreamAssembler, key: &str) -> usize {
    assembler.window(key.as_bytes()).map_or(0, |w| w.len())
}

pub fn times(assembler: &StreamAssembler, key: &str) -> Float64Array {
    let mut times: Vec<f64> = assembler
        .window(key.as_bytes())
        .map(|w| w.newest_first().map(|(_, s)| s).collect())
        .unwrap_or_default();
    times.reverse();
    Float64Array::from(times.as_slice())
}

pub fn series(assembler: &StreamAssembler, key: &str, path: &str) -> Result<Float64Array, JsError> {
    let paths = PathSet::new(&[path])?;
    let mut found = [Found::Missing];
    let mut values: Vec<f64> = Vec::new();
    if let Some(window) = assembler.window(key.as_bytes()) {
        values.reserve(window.len());
        for (member, _) in window.newest_first() {
            let value = match paths.extract(member, &mut found) {
                Ok(()) => match &found[0] {
                    Found::Number(range) => {
                        parse_number(&member[range.clone()]).unwrap_or(f64::NAN)
                    }
                    _ => f64::NAN,
                },
                Err(_) => f64::NAN,
            };
            values.push(value);
        }
        values.reverse();
    }
    Ok(Float64Array::from(values.as_slice()))
}

pub fn latest(assembler: &StreamAssembler, key: &str) -> JsValue {
    assembler
        .window(key.as_bytes())
        .and_then(|w| w.newest_first().next())
        .and_then(|(member, _)| std::str::from_utf8(member).ok())
        .and_then(|text| js_sys::JSON::parse(text).ok())
        .unwrap_or(JsValue::UNDEFINED)
}

#[derive(Serialize)]
struct ZsetItem {
    member: String,
    score: f64,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Window {
    Zset { items: Vec<ZsetItem> },
}

pub fn window(assembler: &StreamAssembler, key: &str) -> Result<JsValue, JsError> {
    let Some(window) = assembler.window(key.as_bytes()) else {
        return Ok(JsValue::UNDEFINED);
    };
    let window = Window::Zset {
        items: window
            .newest_first()
            .map(|(m, score)| ZsetItem {
                member: String::from_utf8_lossy(m).into_owned(),
                score,
            })
            .collect(),
    };
    serde_wasm_bindgen::to_value(&window).map_err(|e| JsError::new(&e.to_string()))
}
