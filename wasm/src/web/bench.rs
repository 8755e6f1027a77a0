//! The parser benchmarks' entry point in wasm (`bench/resp/`, in Node and in Chromium): the stream is copied
//! into wasm memory once, then parsed as often as the benchmark asks, so that only parsing is timed.

use wasm_bindgen::prelude::*;

use crate::resp::CommandReader;

/// A replication stream held in wasm memory, to be parsed repeatedly.
#[wasm_bindgen]
pub struct RespBench {
    stream: Vec<u8>,
}

#[wasm_bindgen]
impl RespBench {
    /// Copies `stream` into wasm memory.
    #[wasm_bindgen(constructor)]
    pub fn new(stream: &[u8]) -> RespBench {
        RespBench {
            stream: stream.to_vec(),
        }
    }

    /// Bytes held.
    #[wasm_bindgen(getter)]
    pub fn len(&self) -> usize {
        self.stream.len()
    }

    /// Whether the stream is empty.
    #[wasm_bindgen(getter, js_name = isEmpty)]
    pub fn is_empty(&self) -> bool {
        self.stream.is_empty()
    }

    /// Parses the whole stream with a [`CommandReader`] fed `chunk`-byte pieces (0: all at once); returns the
    /// number of commands and arguments seen, as `[commands, arguments]`.
    pub fn parse(&self, chunk: usize) -> Result<Vec<f64>, JsError> {
        let chunk = if chunk == 0 {
            self.stream.len().max(1)
        } else {
            chunk
        };
        let mut reader = CommandReader::new(0);
        let (mut commands, mut args) = (0u64, 0u64);
        for piece in self.stream.chunks(chunk) {
            reader.push(piece, |c| {
                commands += 1;
                args += c.args.len() as u64;
            })?;
        }
        Ok(vec![commands as f64, args as f64])
    }
}
