//! The RDB reader for JavaScript: [`RdbScan`] takes an RDB file (or a full-resync payload) in chunks of any size
//! and counts what it holds, per type; it is what the RDB benchmark runs in Node (`bench/rdb/wasm.mjs`).
//! [`RdbInspect`] reads the same way into the summary of `replicast rdb --stats` (the rdb crate's `Stats`, one
//! implementation for both), which the inspector page (`www/inspect.html`) draws. Bytes cross into wasm once per
//! chunk, and the summary out once, as JSON.

use wasm_bindgen::prelude::*;

use replicast_rdb::export::{Filter, Stats};
use replicast_rdb::{Element, Event, RdbReader, ValueType};

/// Counts the keys and elements of an RDB stream, per type.
#[wasm_bindgen]
pub struct RdbScan {
    reader: RdbReader,
    keys: [f64; 7],
    elements: f64,
    bytes: f64,
}

fn slot(t: ValueType) -> usize {
    match t {
        ValueType::String => 0,
        ValueType::List => 1,
        ValueType::Set => 2,
        ValueType::ZSet => 3,
        ValueType::Hash => 4,
        ValueType::Stream => 5,
        ValueType::Module => 6,
    }
}

#[wasm_bindgen]
impl RdbScan {
    #[wasm_bindgen(constructor)]
    pub fn new() -> RdbScan {
        RdbScan {
            reader: RdbReader::new(),
            keys: [0.0; 7],
            elements: 0.0,
            bytes: 0.0,
        }
    }

    /// Feeds the next chunk. Throws with the reader's message (offset and expectation) on a malformed stream.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), JsError> {
        let keys = &mut self.keys;
        let elements = &mut self.elements;
        self.reader.push(chunk, |event| match event {
            Event::KeyStart(k) => keys[slot(k.value_type)] += 1.0,
            Event::Element(
                Element::String(_)
                | Element::ListItem(_)
                | Element::SetMember(_)
                | Element::ZSetMember { .. }
                | Element::HashField { .. }
                | Element::StreamEntry { .. },
            ) => *elements += 1.0,
            _ => {}
        })?;
        self.bytes += chunk.len() as f64;
        Ok(())
    }

    /// Throws unless the stream ended where an RDB may end.
    pub fn finish(&self) -> Result<(), JsError> {
        Ok(self.reader.finish()?)
    }

    /// Keys seen so far.
    #[wasm_bindgen(getter)]
    pub fn keys(&self) -> f64 {
        self.keys.iter().sum()
    }

    /// Keys of one type (`string`, `list`, `set`, `zset`, `hash`, `stream`, `module`).
    #[wasm_bindgen(js_name = keysOfType)]
    pub fn keys_of_type(&self, name: &str) -> f64 {
        ValueType::from_name(name).map_or(0.0, |t| self.keys[slot(t)])
    }

    /// Elements seen so far (a string's value counts as one).
    #[wasm_bindgen(getter)]
    pub fn elements(&self) -> f64 {
        self.elements
    }

    /// Bytes pushed so far.
    #[wasm_bindgen(getter)]
    pub fn bytes(&self) -> f64 {
        self.bytes
    }
}

impl Default for RdbScan {
    fn default() -> Self {
        Self::new()
    }
}

/// The summary of an RDB stream, as `replicast rdb --stats` prints it (docs/RDB.md), for the inspector page.
#[wasm_bindgen]
pub struct RdbInspect {
    reader: RdbReader,
    stats: Stats,
    filter: Filter,
    bytes: u64,
}

#[wasm_bindgen]
impl RdbInspect {
    /// Lists the `top` biggest keys; expiries are measured from the file's `ctime`, else from `now_ms`.
    #[wasm_bindgen(constructor)]
    pub fn new(top: usize, now_ms: f64) -> RdbInspect {
        RdbInspect {
            reader: RdbReader::new(),
            stats: Stats::with_clock(top, now_ms as i64),
            filter: Filter::default(),
            bytes: 0,
        }
    }

    /// Feeds the next chunk. Throws with the reader's message (offset and expectation) on a malformed stream.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), JsError> {
        let (stats, filter) = (&mut self.stats, &self.filter);
        self.reader
            .push(chunk, |event| stats.on_event(&event, filter))?;
        self.bytes += chunk.len() as u64;
        Ok(())
    }

    /// Throws unless the stream ended where an RDB may end.
    pub fn finish(&self) -> Result<(), JsError> {
        Ok(self.reader.finish()?)
    }

    /// Bytes pushed so far.
    #[wasm_bindgen(getter)]
    pub fn bytes(&self) -> f64 {
        self.bytes as f64
    }

    /// Keys seen so far.
    #[wasm_bindgen(getter)]
    pub fn keys(&self) -> f64 {
        self.stats.all_keys as f64
    }

    /// The summary so far, as JSON text: the document `replicast rdb --stats` prints.
    pub fn summary(&self) -> String {
        self.stats.summary(self.bytes).to_string()
    }
}
