//! The StreamAssembler over arbitrary relay messages and arbitrary command sequences.
//!
//! Half the inputs are raw relay messages (length-prefixed), which exercise the wire decoder and the RESP parser
//! inside segments; the other half are commands drawn from every command the assembler knows (`known_commands`),
//! with keys from a small set and arguments from the input, so that the windows' own logic is reached; those go to
//! three shards' streams (as from a relay following a Redis Cluster), so that a key's commands and snapshots come
//! from several shards and the home-shard rule is reached too; and now and then the stale message of a command the
//! relay withheld, naming keys or every window. Besides never panicking or hanging: no window ever holds more than
//! its capacity, an observer that mirrors every add and removal always agrees with the windows, and each window's
//! count of its bytes (which the relay's state budgets by) is what walking its items counts.
//!
//! Run: `cargo +nightly fuzz run assembler -- -max_total_time=600` from the repository root.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use replicast_assembler::observe::{Item, ItemId, WindowObserver};
use replicast_protocol::wire::{
    encode_commands, encode_hello, encode_shard, encode_snapshot, encode_stale, encode_stale_all,
};
use replicast_assembler::{ItemView, StreamAssembler, WatchConfig, Window};

/// Every command the assembler knows (its own table, so a new one is fuzzed too), and one it does not.
fn vocabulary() -> &'static [&'static str] {
    static VOCABULARY: OnceLock<Vec<&'static str>> = OnceLock::new();
    VOCABULARY.get_or_init(|| {
        replicast_assembler::known_commands()
            .chain(["UNKNOWN"])
            .collect()
    })
}
const WORDS: &[&str] = &[
    "perf:a", "perf:b", "other", "0", "1", "-1", "2", "10", "NX", "XX", "GT", "LT", "CH", "INCR", "MAXLEN", "MINID",
    "~", "=", "*", "1-0", "2-0", "+", "-", "(1", "[a", "inf", "-inf", "LEFT", "RIGHT", "BEFORE", "AFTER", "REPLACE",
    "DB", "KEEPTTL", "PXAT", "{\"id\":\"x\",\"cpu\":1}", "{\"id\":\"x\",\"cpu\":2}", "\u{ff}", "",
    "0x10", "-0", "0x1p-3", " 5", "1e400", "CREATE", "MKSTREAM", "$", "007-1",
];

#[derive(Default)]
struct Mirror {
    live: BTreeMap<Vec<u8>, BTreeSet<ItemId>>,
}

impl WindowObserver for Mirror {
    fn added(&mut self, key: &[u8], item: Item<'_>) {
        assert!(self.live.entry(key.to_vec()).or_default().insert(item.id), "an id added twice");
    }
    fn removed(&mut self, key: &[u8], id: ItemId) {
        let ids = self.live.get_mut(key).expect("a removal from a key with no items");
        assert!(ids.remove(&id), "a removal of an id not added");
    }
    fn key_cleared(&mut self, key: &[u8]) {
        self.live.remove(key);
    }
}

fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The bytes of a window's items, counted by walking them.
fn walked_bytes(window: &Window) -> usize {
    let history = |previous: &std::collections::VecDeque<Vec<u8>>| previous.iter().map(Vec::len).sum::<usize>();
    window
        .items_newest_first()
        .map(|item| match item {
            ItemView::Member { member, .. } => member.len(),
            ItemView::ListItem { value, .. } => value.len(),
            ItemView::Entry { fields, .. } => fields.iter().map(Vec::len).sum(),
            ItemView::Field { field, value, previous, .. } => field.len() + value.len() + history(previous),
            ItemView::Value { value, previous, .. } => value.len() + history(previous),
        })
        .sum()
}

fn check(a: &StreamAssembler<Mirror>) {
    let capacity = a.watch().window;
    for (key, window) in a.windows() {
        assert!(window.len() <= capacity, "a window of {} items, capacity {capacity}", window.len());
        let ids: BTreeSet<ItemId> = window.items_newest_first().map(|i| i.id()).collect();
        let mirrored = a.observer().live.get(key).cloned().unwrap_or_default();
        assert_eq!(ids, mirrored, "the observer's items differ from the window's");
        assert_eq!(window.payload_bytes(), walked_bytes(window), "the window's count of its bytes is off");
    }
    for (key, ids) in &a.observer().live {
        if !ids.is_empty() {
            assert!(a.window(key).is_some(), "items observed for a key with no window");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let window = usize::from(mode >> 1) % 8 + 1;
    let watch = WatchConfig {
        patterns: vec![b"perf:*".to_vec()],
        db: 0,
        window,
    };
    let mut a = StreamAssembler::with_observer(watch, Mirror::default());
    let _ = a.push_message(&encode_hello("fuzz", 0));
    if mode & 1 == 0 {
        // Raw messages: a length byte, then that many bytes.
        let mut rest = rest;
        while let Some((&len, tail)) = rest.split_first() {
            let (message, tail) = tail.split_at(usize::from(len).min(tail.len()));
            let _ = a.push_message(message);
            check(&a);
            rest = tail;
        }
        return;
    }
    // Commands from the vocabulary: a byte for the command and the argument count, then a byte per argument
    // (a word, or the next few input bytes as a raw argument). Each batch goes to one of three shards (shard 0
    // without an envelope, as a single Redis's stream).
    for shard in 1..3u16 {
        let _ = a.push_message(&encode_shard(shard, &encode_hello("fuzz", 0)));
    }
    let wrap = |shard: usize, message: Vec<u8>| match shard {
        0 => message,
        s => encode_shard(s as u16, &message),
    };
    let (mut stream, mut offsets, mut rest) = (Vec::new(), [0u64; 3], rest);
    while let Some((&c, tail)) = rest.split_first() {
        let commands = vocabulary();
        let name = commands[usize::from(c) % commands.len()];
        let count = usize::from(c >> 5) + 1;
        let mut args: Vec<Vec<u8>> = vec![name.as_bytes().to_vec()];
        rest = tail;
        for _ in 0..count {
            let Some((&w, tail)) = rest.split_first() else {
                break;
            };
            rest = tail;
            if w < 0xf0 {
                args.push(WORDS[usize::from(w) % WORDS.len()].as_bytes().to_vec());
            } else {
                let (raw, tail) = rest.split_at(usize::from(w & 0x0f).min(rest.len()));
                args.push(raw.to_vec());
                rest = tail;
            }
        }
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        stream.extend_from_slice(&resp(&refs));
        // Send every few commands, and now and then a snapshot of the watched keys as the relay writes one.
        let shard = usize::from(c / 3) % 3;
        if c % 3 == 0 || rest.is_empty() {
            let _ = a.push_message(&wrap(shard, encode_commands(offsets[shard], &stream)));
            offsets[shard] += stream.len() as u64;
            stream.clear();
            check(&a);
        }
        if c == 0xfc || c == 0xf9 {
            // Just sent (c % 3 == 0): the relay withheld the next 9 bytes of the stream, which may have written
            // these keys, or any key.
            offsets[shard] += 9;
            let stale = if c == 0xfc {
                encode_stale(offsets[shard], [&b"perf:a"[..], b"perf:b", b"other"])
            } else {
                encode_stale_all(offsets[shard])
            };
            let _ = a.push_message(&wrap(shard, stale));
            check(&a);
        }
        if c >= 0xfd {
            let snapshot = [
                resp(&[b"DEL", b"perf:a"]),
                resp(&[b"ZADD", b"perf:a", b"1", b"m", b"2", b"n"]),
            ]
            .concat();
            let _ = a.push_message(&wrap(shard, encode_snapshot(offsets[shard], &snapshot)));
            check(&a);
        }
    }
    let _ = a.tick(u64::MAX);
    check(&a);
});
