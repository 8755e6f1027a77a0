//! The benchmarks' entry points in wasm (`bench/resp/` and `bench/assembler/`, in Node and in Chromium): the
//! stream is copied into wasm memory once, then parsed or applied as often as the benchmark asks, so that only
//! that is timed.

use wasm_bindgen::prelude::*;

use replicast_assembler::assembler::{Outcome, StreamAssembler, WatchConfig};
use replicast_protocol::resp::CommandReader;
use replicast_protocol::wire;

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

/// The assembler benchmark (`bench/assembler/`): a recorded stream cut into relay messages once, then applied
/// by a fresh [`StreamAssembler`] as often as the benchmark asks, so that decoding, parsing and applying are timed
/// and nothing else.
#[wasm_bindgen]
pub struct AssemblerBench {
    messages: Vec<Vec<u8>>,
    start: u64,
    commands: usize,
}

#[wasm_bindgen]
impl AssemblerBench {
    /// Cuts `stream`, which starts at replication offset `start`, into commands messages of about
    /// `message_bytes` each (whole commands, as the relay batches them).
    #[wasm_bindgen(constructor)]
    pub fn new(stream: &[u8], start: f64, message_bytes: usize) -> Result<AssemblerBench, JsError> {
        let start = start as u64;
        let mut ends = Vec::new();
        CommandReader::new(start).push(stream, |c| ends.push(c.end))?;
        let (mut messages, mut from) = (Vec::new(), start);
        for (i, end) in ends.iter().enumerate() {
            if end - from >= message_bytes as u64 || i + 1 == ends.len() {
                let bytes = &stream[(from - start) as usize..(end - start) as usize];
                messages.push(wire::encode_commands(from, bytes));
                from = *end;
            }
        }
        Ok(AssemblerBench {
            messages,
            start,
            commands: ends.len(),
        })
    }

    /// Commands in the stream.
    #[wasm_bindgen(getter)]
    pub fn commands(&self) -> usize {
        self.commands
    }

    /// Reads the same messages as [`AssemblerBench::apply`] without applying them: decodes each and parses its
    /// segments' commands with a [`CommandReader`], as the assembler does before it applies a command. The floor
    /// under the apply's time; returns `[commands, arguments]`.
    pub fn parse(&self) -> Result<Vec<f64>, JsError> {
        let mut reader = CommandReader::new(self.start);
        let (mut commands, mut args) = (0u64, 0u64);
        for message in &self.messages {
            let wire::Message::Commands(segments) = wire::decode(message)? else {
                return Err(JsError::new("not a commands message"));
            };
            for segment in segments {
                reader.push(segment?.bytes, |c| {
                    commands += 1;
                    args += c.args.len() as u64;
                })?;
            }
        }
        Ok(vec![commands as f64, args as f64])
    }

    /// Applies the whole stream to a fresh assembler watching `perf:*` with windows of `window`; returns
    /// `[commands applied, keys with a window, members held]`.
    pub fn apply(&self, window: usize) -> Result<Vec<f64>, JsError> {
        let mut assembler = StreamAssembler::new(WatchConfig {
            patterns: vec![b"perf:*".to_vec()],
            db: 0,
            window,
        });
        assembler.push_message(&wire::encode_hello("bench", self.start))?;
        let mut commands = 0;
        for message in &self.messages {
            if let Outcome::Applied { commands: n, .. } = assembler.push_message(message)? {
                commands += n;
            }
        }
        let (keys, members) = assembler
            .windows()
            .fold((0, 0), |(k, m), (_, w)| (k + 1, m + w.len()));
        Ok(vec![commands as f64, keys as f64, members as f64])
    }
}
