//! Helpers for the assembler tests: RESP encoding, a [`Mirror`] observer that must always agree with the
//! windows (and each window's count of its bytes with a count made by walking it), and a canonical text form of a
//! window to compare with what Redis holds.
#![allow(dead_code)]

pub mod replay;

use std::collections::BTreeMap;

use replicast_assembler::observe::{Item, ItemId, Payload, WindowObserver};
use replicast_assembler::{ItemView, Outcome, StreamAssembler, WatchConfig, Window};
use replicast_protocol::wire::{encode_commands, encode_hello, encode_snapshot};

/// One command as RESP.
pub fn resp<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Commands as RESP, one after the other.
pub fn stream(commands: &[&[&str]]) -> Vec<u8> {
    commands.iter().flat_map(|c| resp(c)).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An observer that keeps, per key, the items the windows reported live, and notes any inconsistency.
#[derive(Debug, Default)]
pub struct Mirror {
    pub live: BTreeMap<Vec<u8>, BTreeMap<ItemId, String>>,
    pub errors: Vec<String>,
    pub events: usize,
    /// [`WindowObserver::replaced`] calls, each also checked as an addition and a removal.
    pub replacements: usize,
}

fn payload_text(payload: &Payload<'_>) -> String {
    match payload {
        Payload::Value(v) => text(v),
        Payload::Fields(f) => f.iter().map(|x| text(x)).collect::<Vec<_>>().join("="),
    }
}

impl WindowObserver for Mirror {
    fn added(&mut self, key: &[u8], item: Item<'_>) {
        self.events += 1;
        let live = self.live.entry(key.to_vec()).or_default();
        if live.insert(item.id, payload_text(&item.payload)).is_some() {
            self.errors
                .push(format!("{}: id {} added twice", text(key), item.id));
        }
        if self
            .live
            .iter()
            .filter(|(_, items)| items.contains_key(&item.id))
            .count()
            > 1
        {
            self.errors
                .push(format!("id {} live under two keys", item.id));
        }
    }

    fn removed(&mut self, key: &[u8], id: ItemId) {
        self.events += 1;
        if self
            .live
            .get_mut(key)
            .and_then(|items| items.remove(&id))
            .is_none()
        {
            self.errors
                .push(format!("{}: id {id} removed but not live", text(key)));
        }
    }

    fn replaced(&mut self, key: &[u8], item: Item<'_>, removed: ItemId) {
        self.replacements += 1;
        self.added(key, item);
        self.removed(key, removed);
    }

    fn key_cleared(&mut self, key: &[u8]) {
        self.events += 1;
        self.live.remove(key);
    }
}

/// The text the mirror holds for an item.
fn view_text(item: &ItemView<'_>) -> String {
    match *item {
        ItemView::Member { member, .. } => text(member),
        ItemView::Entry { fields, .. } => {
            fields.iter().map(|x| text(x)).collect::<Vec<_>>().join("=")
        }
        ItemView::ListItem { value, .. } | ItemView::Value { value, .. } => text(value),
        ItemView::Field { field, value, .. } => format!("{}={}", text(field), text(value)),
    }
}

/// The bytes of a window's items, counted by walking them: what [`Window::payload_bytes`] keeps as they change.
pub fn walked_payload_bytes(window: &Window) -> usize {
    let history = |previous: &std::collections::VecDeque<Vec<u8>>| -> usize {
        previous.iter().map(Vec::len).sum()
    };
    window
        .items_newest_first()
        .map(|item| match item {
            ItemView::Member { member, .. } => member.len(),
            ItemView::ListItem { value, .. } => value.len(),
            ItemView::Entry { fields, .. } => fields.iter().map(Vec::len).sum(),
            ItemView::Field {
                field,
                value,
                previous,
                ..
            } => field.len() + value.len() + history(previous),
            ItemView::Value {
                value, previous, ..
            } => value.len() + history(previous),
        })
        .sum()
}

/// Panics unless the mirror's live items are exactly the windows' items, and each window's count of its bytes is
/// what walking it counts.
pub fn check_mirror(a: &StreamAssembler<Mirror>) {
    let mirror = a.observer();
    assert!(mirror.errors.is_empty(), "observer saw {:?}", mirror.errors);
    for (key, window) in a.windows() {
        assert_eq!(
            window.payload_bytes(),
            walked_payload_bytes(window),
            "bytes of {}'s window",
            text(key)
        );
        let ids: BTreeMap<ItemId, String> = window
            .items_newest_first()
            .map(|i| (i.id(), view_text(&i)))
            .collect();
        let empty = BTreeMap::new();
        let live = mirror.live.get(key).unwrap_or(&empty);
        assert_eq!(&ids, live, "observer's view of {}", text(key));
    }
    for (key, live) in &mirror.live {
        if a.window(key).is_none() {
            assert!(
                live.is_empty(),
                "{} has no window but live items",
                text(key)
            );
        }
    }
}

/// A window as comparable text: its type, then its items newest first (a hash's fields sorted by name, since
/// Redis's order is not the window's).
pub fn canon(window: &Window) -> Vec<String> {
    let mut items: Vec<String> = window
        .items_newest_first()
        .map(|item| match item {
            ItemView::Member { member, score, .. } => format!("{} {score}", text(member)),
            ItemView::Entry { entry, fields, .. } => format!(
                "{entry} {}",
                fields.iter().map(|x| text(x)).collect::<Vec<_>>().join(" ")
            ),
            ItemView::ListItem { value, .. } | ItemView::Value { value, .. } => text(value),
            ItemView::Field { field, value, .. } => format!("{}={}", text(field), text(value)),
        })
        .collect();
    if window.kind() == replicast_assembler::Kind::Hash {
        items.sort();
    }
    items.insert(0, window.kind().name().to_string());
    items
}

/// An assembler with a [`Mirror`] fed in messages, checked after each.
pub struct Harness {
    pub a: StreamAssembler<Mirror>,
    pub offset: u64,
}

impl Harness {
    pub fn new(patterns: &[&str], window: usize) -> Harness {
        Harness::in_db(patterns, window, 0)
    }

    /// A harness watching database `db`.
    pub fn in_db(patterns: &[&str], window: usize, db: u32) -> Harness {
        let mut a = StreamAssembler::with_observer(
            WatchConfig {
                patterns: patterns.iter().map(|p| p.as_bytes().to_vec()).collect(),
                db,
                window,
            },
            Mirror::default(),
        );
        a.push_message(&encode_hello("e1", 0)).unwrap();
        Harness { a, offset: 0 }
    }

    /// Applies raw stream bytes as one commands message.
    pub fn raw(&mut self, bytes: &[u8]) -> Outcome {
        let outcome = self
            .a
            .push_message(&encode_commands(self.offset, bytes))
            .unwrap();
        self.offset += bytes.len() as u64;
        check_mirror(&self.a);
        outcome
    }

    pub fn run(&mut self, commands: &[&[&str]]) -> Outcome {
        self.raw(&stream(commands))
    }

    /// Applies a snapshot at the current offset.
    pub fn snapshot(&mut self, commands: &[&[&str]]) {
        self.a
            .push_message(&encode_snapshot(self.offset, &stream(commands)))
            .unwrap();
        check_mirror(&self.a);
    }

    /// The window of `key` as text (empty without a window), without its type.
    pub fn rows(&self, key: &str) -> Vec<String> {
        self.a
            .window(key.as_bytes())
            .map(|w| canon(w)[1..].to_vec())
            .unwrap_or_default()
    }

    pub fn topups(&mut self) -> Vec<String> {
        self.a.take_topups().iter().map(|k| text(k)).collect()
    }

    pub fn stale(&self, key: &str) -> bool {
        self.a.window(key.as_bytes()).is_some_and(|w| w.stale())
    }
}
