//! The index of a batch: for every command frame, where it is, which database it applies to, what kind of
//! command it is for routing, and where its keys are. The link computes it once per batch, so a thousand
//! sessions filter by subscription without parsing the stream a thousand times.

use std::ops::Range;
use std::sync::Arc;

use replicast_wasm::resp::Command;

use crate::command_table::CommandTable;

/// What a frame means for routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Touches the keys listed for it.
    Keyed,
    /// `SELECT`: every session gets it, so its assembler knows the database of what follows.
    Select,
    /// `FLUSHALL`, `SWAPDB`: affect every database.
    AllDbs,
    /// `FLUSHDB`: affects its database.
    WholeDb,
    Multi,
    Exec,
    /// PING, REPLCONF GETACK, keyless commands: no session needs them.
    Other,
    /// A command the relay does not forward: one the filter cannot judge, or one too large to forward (see
    /// `stream_reader`). Its keys are the keys to make stale: a session watching any of them that `--allow` lets
    /// leave learns that they are, so its windows get topped up; the command's bytes never leave the relay. One too
    /// large to hold keeps no bytes at all: it is the only frame of a batch that is not `held`, its `at` is empty
    /// (the command ends at the batch's `end`), and its keys point into the batch's names.
    Withheld,
}

/// One command frame of a batch; positions are byte offsets into the batch's raw commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub at: Range<u32>,
    pub db: u32,
    pub kind: Kind,
    /// Indices into [`FrameIndex::keys`].
    pub keys: Range<u32>,
}

/// Every frame of a batch, and the byte ranges of their keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameIndex {
    pub frames: Vec<Frame>,
    pub keys: Vec<Range<u32>>,
}

/// Builds [`FrameIndex`]es as the link reads commands, tracking `SELECT` across batches.
pub struct Indexer {
    table: Arc<CommandTable>,
    db: u32,
}

impl Indexer {
    pub fn new(table: Arc<CommandTable>) -> Self {
        Indexer { table, db: 0 }
    }

    /// The database selected after the last command added.
    pub fn db(&self) -> u32 {
        self.db
    }

    /// Adds a command the link did not hold (too large to forward): an empty frame in the database selected now,
    /// [`Kind::Withheld`] with `keys` (ranges into the batch's names), or [`Kind::Other`] when it has none to name.
    pub fn add_unheld(&self, index: &mut FrameIndex, keys: &[Range<u32>]) {
        let first_key = index.keys.len() as u32;
        index.keys.extend_from_slice(keys);
        index.frames.push(Frame {
            at: 0..0,
            db: self.db,
            kind: if keys.is_empty() {
                Kind::Other
            } else {
                Kind::Withheld
            },
            keys: first_key..index.keys.len() as u32,
        });
    }

    /// Adds `command`, whose bytes start at `base + at` where `base` is the batch's first byte.
    pub fn add(&mut self, index: &mut FrameIndex, batch: &[u8], command: &Command<'_>, at: usize) {
        let kind = if command.args.is_empty() {
            Kind::Other
        } else if command.is("select") {
            if let Some(db) = command
                .args
                .get(1)
                .and_then(|d| std::str::from_utf8(d).ok()?.parse().ok())
            {
                self.db = db;
            }
            Kind::Select
        } else if command.is("flushall") || command.is("swapdb") {
            Kind::AllDbs
        } else if command.is("flushdb") {
            Kind::WholeDb
        } else if command.is("multi") {
            Kind::Multi
        } else if command.is("exec") {
            Kind::Exec
        } else if self.table.is_module(command.args[0]) {
            // Its declared keys may not be all it writes: `--allow` cannot judge it (see command_table).
            Kind::Other
        } else {
            Kind::Keyed
        };
        let first_key = index.keys.len() as u32;
        if kind == Kind::Keyed {
            let base = batch.as_ptr() as usize;
            for i in self.table.key_indices(&command.args) {
                let key = command.args[i];
                let start = key.as_ptr() as usize - base;
                index.keys.push(start as u32..(start + key.len()) as u32);
            }
        }
        let keys = first_key..index.keys.len() as u32;
        let kind = if kind == Kind::Keyed && keys.is_empty() {
            Kind::Other
        } else {
            kind
        };
        index.frames.push(Frame {
            at: at as u32..(at + command.frame_len()) as u32,
            db: self.db,
            kind,
            keys,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;
    use replicast_wasm::resp::{parse_command, Limits};

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    /// A `COMMAND` entry whose one key is its first argument, as Redis 7.0 describes `SET` and RediSearch's `FT.ADD`.
    fn entry(name: &str, flags: &[&str]) -> Value {
        let pairs = |items: Vec<(&str, Value)>| {
            Value::Array(items.into_iter().flat_map(|(k, v)| [bulk(k), v]).collect())
        };
        let spec = pairs(vec![
            ("flags", Value::Array(vec![])),
            (
                "begin_search",
                pairs(vec![
                    ("type", bulk("index")),
                    ("spec", pairs(vec![("index", Value::Int(1))])),
                ]),
            ),
            (
                "find_keys",
                pairs(vec![
                    ("type", bulk("range")),
                    (
                        "spec",
                        pairs(vec![
                            ("lastkey", Value::Int(0)),
                            ("keystep", Value::Int(1)),
                            ("limit", Value::Int(0)),
                        ]),
                    ),
                ]),
            ),
        ]);
        Value::Array(vec![
            bulk(name),
            Value::Int(-2),
            Value::Array(
                flags
                    .iter()
                    .map(|f| Value::SimpleString(f.to_string()))
                    .collect(),
            ),
            Value::Int(1),
            Value::Int(1),
            Value::Int(1),
            Value::Array(vec![]),
            Value::Array(vec![]),
            Value::Array(vec![spec]),
            Value::Array(vec![]),
        ])
    }

    /// The index of `stream` (whole commands) with the table Redis would give with RediSearch loaded.
    fn index(stream: &[u8]) -> (FrameIndex, Vec<Vec<u8>>) {
        let table = CommandTable::from_command_reply(&Value::Array(vec![
            entry("set", &["write", "denyoom"]),
            entry("ft.safeadd", &["write", "denyoom", "module"]),
        ]));
        let mut indexer = Indexer::new(Arc::new(table));
        let mut index = FrameIndex::default();
        let mut at = 0;
        while let Some(command) =
            parse_command(&stream[at..], at as u64, &Limits::default()).unwrap()
        {
            indexer.add(&mut index, stream, &command, at);
            at += command.frame_len();
        }
        assert_eq!(at, stream.len(), "whole commands");
        let keys = index
            .keys
            .iter()
            .map(|r| stream[r.start as usize..r.end as usize].to_vec())
            .collect();
        (index, keys)
    }

    #[test]
    fn module_and_unknown_commands_reach_no_session() {
        // SET, a RediSearch 1.x document add (which writes the hash perf:doc while declaring only the index), and a
        // command the table does not know: only SET is routed by its key.
        let stream = b"*3\r\n$3\r\nSET\r\n$6\r\nperf:a\r\n$1\r\n1\r\n\
            *7\r\n$10\r\nFT.SAFEADD\r\n$3\r\nidx\r\n$8\r\nperf:doc\r\n$3\r\n1.0\r\n$6\r\nFIELDS\r\n$1\r\nt\r\n$1\r\nx\r\n\
            *2\r\n$4\r\nFROB\r\n$6\r\nperf:a\r\n";
        let (index, keys) = index(stream);
        let kinds: Vec<Kind> = index.frames.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [Kind::Keyed, Kind::Other, Kind::Other]);
        assert_eq!(keys, [b"perf:a".to_vec()]);
        assert!(index.frames[1].keys.is_empty() && index.frames[2].keys.is_empty());
        assert_eq!(
            index.frames.last().unwrap().at.end as usize,
            stream.len(),
            "every frame keeps its place in the stream"
        );
    }

    #[test]
    fn non_utf8_and_long_keys_are_indexed_byte_for_byte() {
        let long = "k".repeat(1 << 20);
        let mut stream = Vec::new();
        for key in [&b"perf:\xff\xfe"[..], long.as_bytes()] {
            stream.extend(format!("*3\r\n$3\r\nSET\r\n${}\r\n", key.len()).as_bytes());
            stream.extend(key);
            stream.extend(b"\r\n$1\r\n1\r\n");
        }
        let (index, keys) = index(&stream);
        assert_eq!(index.frames.len(), 2);
        assert_eq!(keys, [b"perf:\xff\xfe".to_vec(), long.into_bytes()]);
    }
}
