//! The windows: for each watched key, the newest N items of its value, one type per file.
//!
//! | type | window | newest first |
//! | --- | --- | --- |
//! | sorted set ([`ZsetWindow`]) | the N highest (score, member) | highest first |
//! | stream ([`StreamWindow`]) | the N highest entry ids | highest id first |
//! | list ([`ListWindow`]) | the last N items (`LRANGE key -N -1`) | last item first |
//! | hash ([`HashWindow`]) | up to N fields, each with its recent values | most recently changed first |
//! | string ([`StringWindow`]) | the value and its recent values | current value first |
//!
//! Every item a window holds has an [`ItemId`], and every item entering or leaving a window is reported through
//! [`Events`] to the assembler's [`WindowObserver`]. A window also knows whether it is *complete* (it holds all of
//! what Redis holds for the key, so a removal needs no top-up) and, in [`Window`], whether it is *stale* (a command
//! could not be followed exactly; a top-up was requested and the window is best effort until it arrives).

pub mod fast_hash;
pub mod hash;
pub mod json_id;
pub mod list;
pub mod stream;
pub mod string;
pub mod zset;

use std::collections::VecDeque;

pub use hash::HashWindow;
pub use list::ListWindow;
pub use stream::{StreamId, StreamWindow};
pub use string::StringWindow;
pub use zset::{Score, ZsetWindow};

use crate::observe::{Item, ItemId, Payload, WindowObserver};

/// Recent values kept per hash field, besides the current one.
pub const FIELD_HISTORY: usize = 8;
/// Recent values kept per string, besides the current one (fewer if the window is smaller).
pub const STRING_HISTORY: usize = 64;

/// Reports items entering and leaving one key's window, numbering the ones that enter.
pub struct Events<'a> {
    key: &'a [u8],
    observer: &'a mut dyn WindowObserver,
    next_id: &'a mut ItemId,
    reported: usize,
}

impl<'a> Events<'a> {
    pub(crate) fn new(
        key: &'a [u8],
        observer: &'a mut dyn WindowObserver,
        next_id: &'a mut ItemId,
    ) -> Self {
        Events {
            key,
            observer,
            next_id,
            reported: 0,
        }
    }

    /// Reports a new item and returns its id.
    #[inline]
    pub(crate) fn added(&mut self, time_ms: Option<f64>, payload: Payload<'_>) -> ItemId {
        *self.next_id += 1;
        let id = *self.next_id;
        self.reported += 1;
        self.observer.added(
            self.key,
            Item {
                id,
                time_ms,
                payload,
            },
        );
        id
    }

    /// Reports a stream entry entering the window, timed by its id's milliseconds, and returns its item id, through
    /// [`WindowObserver::entry_added`], which gives the observer its whole id. Only with the feature `entry-ids`:
    /// without it, the stream window calls [`Self::added`], as the browser's client always has.
    #[cfg(feature = "entry-ids")]
    #[inline]
    pub(crate) fn entry_added(&mut self, entry: StreamId, fields: &[Vec<u8>]) -> ItemId {
        *self.next_id += 1;
        let id = *self.next_id;
        self.reported += 1;
        self.observer.entry_added(
            self.key,
            entry.ms,
            entry.seq,
            Item {
                id,
                time_ms: Some(entry.ms as f64),
                payload: Payload::Fields(fields),
            },
        );
        id
    }

    #[inline]
    /// Reports an item entering a full window and the item `removed` leaving it to make room, as one
    /// [`WindowObserver::replaced`] call; returns the new item's id.
    pub(crate) fn replaced(
        &mut self,
        time_ms: Option<f64>,
        payload: Payload<'_>,
        removed: ItemId,
    ) -> ItemId {
        *self.next_id += 1;
        let id = *self.next_id;
        self.reported += 2;
        self.observer.replaced(
            self.key,
            Item {
                id,
                time_ms,
                payload,
            },
            removed,
        );
        id
    }

    pub(crate) fn removed(&mut self, id: ItemId) {
        self.reported += 1;
        self.observer.removed(self.key, id);
    }

    /// How many additions, removals and clears were reported.
    pub(crate) fn reported(&self) -> usize {
        self.reported
    }
}

/// The Redis type of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Zset,
    Stream,
    List,
    Hash,
    String,
}

impl Kind {
    /// The name `TYPE` gives.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Zset => "zset",
            Kind::Stream => "stream",
            Kind::List => "list",
            Kind::Hash => "hash",
            Kind::String => "string",
        }
    }
}

/// The typed contents of a window.
#[derive(Debug, Clone)]
pub enum Body {
    Zset(ZsetWindow),
    Stream(StreamWindow),
    List(ListWindow),
    Hash(HashWindow),
    String(StringWindow),
}

/// One key's window: its typed contents, its TTL, whether it is stale, and its home shard.
#[derive(Debug, Clone)]
pub struct Window {
    pub(crate) body: Body,
    pub(crate) stale: bool,
    pub(crate) expires_at_ms: Option<u64>,
    /// The shard whose stream created the window (or last gave a snapshot of it): only that stream changes it.
    pub(crate) shard: u16,
}

/// One item of a window, as the read API gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ItemView<'a> {
    /// A sorted-set member.
    Member {
        id: ItemId,
        member: &'a [u8],
        score: f64,
    },
    /// A stream entry: its id and field/value pairs, alternating.
    Entry {
        id: ItemId,
        entry: StreamId,
        fields: &'a [Vec<u8>],
    },
    /// A list item.
    ListItem { id: ItemId, value: &'a [u8] },
    /// A hash field, its value, and its earlier values, newest first.
    Field {
        id: ItemId,
        field: &'a [u8],
        value: &'a [u8],
        previous: &'a VecDeque<Vec<u8>>,
    },
    /// A string's value and its earlier values, newest first.
    Value {
        id: ItemId,
        value: &'a [u8],
        previous: &'a VecDeque<Vec<u8>>,
    },
}

impl ItemView<'_> {
    pub fn id(&self) -> ItemId {
        match *self {
            ItemView::Member { id, .. }
            | ItemView::Entry { id, .. }
            | ItemView::ListItem { id, .. }
            | ItemView::Field { id, .. }
            | ItemView::Value { id, .. } => id,
        }
    }
}

impl Window {
    /// An empty window of `kind` keeping `capacity` items; `complete` if the key is known not to exist.
    pub(crate) fn new(kind: Kind, capacity: usize, complete: bool) -> Window {
        let body = match kind {
            Kind::Zset => Body::Zset(ZsetWindow::new(capacity, complete)),
            Kind::Stream => Body::Stream(StreamWindow::new(capacity, complete)),
            Kind::List => Body::List(ListWindow::new(capacity, complete)),
            Kind::Hash => Body::Hash(HashWindow::new(capacity, complete)),
            Kind::String => Body::String(StringWindow::new(capacity)),
        };
        Window {
            body,
            stale: false,
            expires_at_ms: None,
            shard: 0,
        }
    }

    pub fn kind(&self) -> Kind {
        match self.body {
            Body::Zset(_) => Kind::Zset,
            Body::Stream(_) => Kind::Stream,
            Body::List(_) => Kind::List,
            Body::Hash(_) => Kind::Hash,
            Body::String(_) => Kind::String,
        }
    }

    pub fn body(&self) -> &Body {
        &self.body
    }

    /// Items held (a string holds one).
    pub fn len(&self) -> usize {
        match &self.body {
            Body::Zset(w) => w.len(),
            Body::Stream(w) => w.len(),
            Body::List(w) => w.len(),
            Body::Hash(w) => w.len(),
            Body::String(_) => 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the window holds everything Redis holds for the key.
    pub fn complete(&self) -> bool {
        match &self.body {
            Body::Zset(w) => w.complete(),
            Body::Stream(w) => w.complete(),
            Body::List(w) => w.complete(),
            Body::Hash(w) => w.complete(),
            Body::String(_) => true,
        }
    }

    /// The bytes of the items' contents: members, list items, entries' fields and values, hash fields with their
    /// values and recent values, a string's value and its recent values. Kept as items enter and leave, so it
    /// costs nothing to read (the relay's state reads it after every batch, for `--state-bytes`).
    pub fn payload_bytes(&self) -> usize {
        match &self.body {
            Body::Zset(w) => w.payload_bytes(),
            Body::Stream(w) => w.payload_bytes(),
            Body::List(w) => w.payload_bytes(),
            Body::Hash(w) => w.payload_bytes(),
            Body::String(w) => w.payload_bytes(),
        }
    }

    /// Whether a command could not be followed exactly: the window is best effort until its top-up arrives.
    pub fn stale(&self) -> bool {
        self.stale
    }

    /// The shard whose stream owns the window (0 for a relay following one Redis): a command of another shard's
    /// stream on the key is not applied, it makes the window stale until a top-up.
    pub fn shard(&self) -> u16 {
        self.shard
    }

    /// When Redis will expire the key, in Unix milliseconds, if it has a TTL.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.expires_at_ms
    }

    /// Whether Redis may hold items that belong in the window but that the window lacks: it lost items and
    /// is not complete.
    pub(crate) fn lacks_items(&self) -> bool {
        let capacity = match &self.body {
            Body::Zset(w) => w.capacity(),
            Body::Stream(w) => w.capacity(),
            Body::List(w) => w.capacity(),
            Body::Hash(w) => w.capacity(),
            Body::String(_) => return false,
        };
        !self.complete() && self.len() < capacity
    }

    /// Whether Redis deleted the key: an empty sorted set, list or hash does not exist (an empty stream does).
    /// A stale window emptied tells nothing: Redis may hold what a withheld write put there, so it stays (empty
    /// and stale) until its top-up says what the key holds.
    pub(crate) fn gone(&self) -> bool {
        matches!(self.body, Body::Zset(_) | Body::List(_) | Body::Hash(_))
            && self.is_empty()
            && self.complete()
            && !self.stale
    }

    /// Items newest first.
    pub fn items_newest_first(&self) -> Box<dyn Iterator<Item = ItemView<'_>> + '_> {
        match &self.body {
            Body::Zset(w) => Box::new(w.items_newest_first()),
            Body::Stream(w) => Box::new(w.items_newest_first()),
            Body::List(w) => Box::new(w.items_newest_first()),
            Body::Hash(w) => Box::new(w.items_newest_first()),
            Body::String(w) => Box::new(std::iter::once(w.item())),
        }
    }

    pub fn as_zset(&self) -> Option<&ZsetWindow> {
        match &self.body {
            Body::Zset(w) => Some(w),
            _ => None,
        }
    }

    pub fn as_stream(&self) -> Option<&StreamWindow> {
        match &self.body {
            Body::Stream(w) => Some(w),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&ListWindow> {
        match &self.body {
            Body::List(w) => Some(w),
            _ => None,
        }
    }

    pub fn as_hash(&self) -> Option<&HashWindow> {
        match &self.body {
            Body::Hash(w) => Some(w),
            _ => None,
        }
    }

    pub fn as_string(&self) -> Option<&StringWindow> {
        match &self.body {
            Body::String(w) => Some(w),
            _ => None,
        }
    }

    /// Gives every item a new id and reports it as added: the window now lives under another key (`RENAME`,
    /// `COPY`), whose follower has never seen these items.
    pub(crate) fn renumber(&mut self, events: &mut Events<'_>) {
        match &mut self.body {
            Body::Zset(w) => w.renumber(events),
            Body::Stream(w) => w.renumber(events),
            Body::List(w) => w.renumber(events),
            Body::Hash(w) => w.renumber(events),
            Body::String(w) => w.renumber(events),
        }
    }
}

/// Pushes `value` at the front of a bounded history, dropping the oldest beyond `limit`; returns the bytes let
/// go (`value`'s own when `limit` is 0), for the window's count of its bytes.
pub(crate) fn remember(history: &mut VecDeque<Vec<u8>>, value: Vec<u8>, limit: usize) -> usize {
    if limit == 0 {
        return value.len();
    }
    history.push_front(value);
    let kept = limit.min(history.len());
    history.drain(kept..).map(|old| old.len()).sum()
}

/// A command whose effect on a window cannot be computed from the window alone: it needs a top-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inexact;
