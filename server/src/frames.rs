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

    /// Rewinds the selected database, when added commands are dropped to be parsed again later.
    pub fn set_db(&mut self, db: u32) {
        self.db = db;
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
