//! Where a reader is: in the stream ([`State`]), inside a value ([`ValueState`]) and a stream value
//! ([`StreamState`]), and what it knows of the key being read ([`KeyCtx`]). Plain data, kept apart from the code
//! that moves between the states (`reader`, `opcodes`, `value`, `stream`), which all read and write it.

use crate::event::{Encoding, Event, KeyStart, ModuleId};

/// Where the reader is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Magic,
    /// Between keys: an opcode or a type byte comes next.
    Top,
    /// Inside a `MODULE_AUX`'s opcodes.
    ModuleAux,
    /// A `DUMP` payload's type byte.
    DumpType,
    Value,
    /// A `DUMP` payload's 2-byte RDB version.
    DumpVersion,
    Checksum,
    Done,
}

/// Where events go.
pub(crate) type Sink<'s> = &'s mut dyn FnMut(Event<'_>);

/// What the reader knows of the key being read.
#[derive(Debug, Default)]
pub(crate) struct KeyCtx {
    pub key: Vec<u8>,
    pub encoding: Option<Encoding>,
    pub expire_ms: Option<i64>,
    pub idle_secs: Option<u64>,
    pub lfu_freq: Option<u8>,
    pub module: Option<ModuleId>,
    pub offset: u64,
    pub db: u64,
    /// Whether `KeyStart` was reported (it waits for the first element, so that empty keys can be skipped).
    pub started: bool,
}

impl KeyCtx {
    /// Reports the key's start, once.
    pub(crate) fn start(&mut self, on: &mut dyn FnMut(Event<'_>)) {
        if self.started {
            return;
        }
        self.started = true;
        let Some(encoding) = self.encoding else {
            return;
        };
        on(Event::KeyStart(KeyStart {
            db: self.db,
            key: &self.key,
            value_type: encoding.value_type(),
            encoding,
            expire_ms: self.expire_ms,
            idle_secs: self.idle_secs,
            lfu_freq: self.lfu_freq,
            offset: self.offset,
            module: self.module,
        }));
    }

    /// Reports one element, after the key's start if it was not reported yet.
    pub(crate) fn element(
        &mut self,
        on: &mut dyn FnMut(Event<'_>),
        element: super::event::Element<'_>,
    ) {
        self.start(on);
        on(Event::Element(element));
    }

    pub(crate) fn reset(&mut self) {
        self.encoding = None;
        self.expire_ms = None;
        self.idle_secs = None;
        self.lfu_freq = None;
        self.module = None;
        self.started = false;
    }
}

/// Where the reader is inside a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueState {
    /// Right after the key: the value's first part (a string, a count, or a compact string) comes next.
    Start,
    /// `left` more elements of a plain encoding.
    Items {
        left: u64,
    },
    /// `left` more quicklist nodes.
    QuicklistNodes {
        left: u64,
    },
    Stream(StreamState),
    /// A module value's opcodes, up to its EOF opcode.
    ModuleOps,
}

/// Where the reader is inside a stream. Counts of groups and consumers are of those still to read after the
/// current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamState {
    Nodes {
        left: u64,
    },
    Meta,
    Group {
        left: u64,
    },
    GroupPel {
        groups: u64,
        left: u64,
    },
    Consumers {
        groups: u64,
    },
    Consumer {
        groups: u64,
        left: u64,
    },
    ConsumerPel {
        groups: u64,
        consumers: u64,
        left: u64,
    },
}
