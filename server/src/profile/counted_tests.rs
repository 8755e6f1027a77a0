//! The profile's figures against the stream counted the plain way, one command at a time: whatever the batches, the
//! repeats and the keys' fates (allowed, hidden with a shown prefix, hidden, too long, more distinct keys than a link
//! remembers), the totals are exact, a listed key or prefix has its true count within its error, every one is exact
//! while a summary holds them all, and no hidden key is named — in the window being filled and since the start,
//! whether the stream fell in one window or in many (since-start then merged from them).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::Value as Json;

use super::*;
use crate::frames::{Frame, FrameIndex, Kind};
use crate::subscription::Allow;

/// A key of one of five fates, by number.
fn key(fate: u8, n: u16) -> String {
    match fate % 5 {
        0 => format!("perf:host{n}"),
        1 => format!("perf:{n}:cpu"),
        2 => format!("session:u{n}:cart"),
        3 => format!("secret:{n}:token"),
        _ => format!("perf:{n}:{}", "x".repeat(MAX_PROFILE_KEY)),
    }
}

/// One command: its name and the keys it writes.
type Command = (&'static str, Vec<String>);

/// More names than a link gathers between flushes, spelled in more than one case, and one too long to count by name.
const NAMES: [&str; 20] = [
    "SET",
    "set",
    "ZADD",
    "zadd",
    "DEL",
    "del",
    "UNLINK",
    "HSET",
    "hset",
    "SADD",
    "LPUSH",
    "RPUSH",
    "XADD",
    "INCR",
    "INCRBY",
    "EXPIRE",
    "PEXPIRE",
    "GETDEL",
    "SETEX",
    "A-MODULE-COMMAND-WITH-A-NAME-LONGER-THAN-ANY-THAT-THE-PROFILE-COUNTS-BY-NAME",
];

fn batch(commands: &[Command]) -> (Vec<u8>, FrameIndex) {
    let mut raw = Vec::new();
    let mut index = FrameIndex::default();
    for (name, keys) in commands {
        let start = raw.len() as u32;
        let first_key = index.keys.len() as u32;
        raw.extend(format!("*{}\r\n${}\r\n{name}\r\n", keys.len() + 2, name.len()).bytes());
        for key in keys {
            raw.extend(format!("${}\r\n", key.len()).bytes());
            index
                .keys
                .push(raw.len() as u32..(raw.len() + key.len()) as u32);
            raw.extend(key.bytes());
            raw.extend(b"\r\n");
        }
        raw.extend(b"$5\r\nvalue\r\n");
        index.frames.push(Frame {
            at: start..raw.len() as u32,
            db: 0,
            target_db: 0,
            kind: Kind::Keyed,
            keys: first_key..index.keys.len() as u32,
            written: keys.len() as u32,
        });
    }
    (raw, index)
}

/// What one window must show, counted command by command.
#[derive(Default)]
struct Counted {
    commands: BTreeMap<String, u64>,
    other_commands: u64,
    bytes: u64,
    key_writes: u64,
    hidden_writes: u64,
    hidden_bytes: u64,
    long_keys: u64,
    deleted: BTreeMap<String, u64>,
    /// Writes and bytes by key and by prefix that may be named.
    keys: HashMap<String, (u64, u64)>,
    prefixes: HashMap<String, (u64, u64)>,
}

impl Counted {
    fn command(&mut self, name: &str, keys: &[String], bytes: u64) {
        let lower = name.to_ascii_lowercase();
        if name.len() > 64 {
            self.other_commands += 1;
        } else {
            *self.commands.entry(lower.clone()).or_default() += 1;
        }
        if lower == "del" || lower == "unlink" {
            *self.deleted.entry(lower).or_default() += keys.len() as u64;
        }
        self.bytes += bytes;
        let share = bytes / keys.len().max(1) as u64;
        for key in keys {
            self.key_writes += 1;
            let allowed = key.starts_with("perf:");
            if !allowed {
                self.hidden_writes += 1;
                self.hidden_bytes += share;
            }
            let parts: Vec<usize> = key.match_indices(':').map(|(i, _)| i + 1).collect();
            for &end in parts.iter().take(2).filter(|&&end| end < key.len()) {
                let prefix = &key[..end];
                if prefix.len() <= MAX_PROFILE_KEY && (allowed || prefix == "session:") {
                    let counts = self.prefixes.entry(prefix.to_string()).or_default();
                    *counts = (counts.0 + 1, counts.1 + share);
                }
            }
            if allowed && key.len() <= MAX_PROFILE_KEY {
                let counts = self.keys.entry(key.clone()).or_default();
                *counts = (counts.0 + 1, counts.1 + share);
            } else if allowed {
                self.long_keys += 1;
            }
        }
    }

    /// Checks `window` (its JSON) against these counts.
    fn check(&self, window: &Json) -> Result<(), TestCaseError> {
        let commands: BTreeMap<String, u64> = serde_json::from_value(window["commands"].clone())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&commands, &self.commands);
        let deleted: BTreeMap<String, u64> = serde_json::from_value(window["deleted_keys"].clone())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&deleted, &self.deleted);
        prop_assert_eq!(&window["other_commands"], self.other_commands);
        prop_assert_eq!(&window["bytes"], self.bytes);
        prop_assert_eq!(&window["key_writes"], self.key_writes);
        prop_assert_eq!(&window["hidden"]["key_writes"], self.hidden_writes);
        prop_assert_eq!(&window["hidden"]["bytes"], self.hidden_bytes);
        prop_assert_eq!(&window["long_keys"], self.long_keys);
        for (listed, counted) in [
            (&window["keys"], &self.keys),
            (&window["prefixes"], &self.prefixes),
        ] {
            for (list, measure, pick) in [("by_writes", "writes", 0), ("by_bytes", "bytes", 1)] {
                let hitters = listed[list].as_array().expect("a list");
                prop_assert_eq!(hitters.len(), counted.len().min(LISTED));
                for hitter in hitters {
                    let name = hitter["name"].as_str().expect("a name");
                    let Some(&counts) = counted.get(name) else {
                        return Err(TestCaseError::fail(format!(
                            "{name} is listed, never shown"
                        )));
                    };
                    let truth = if pick == 0 { counts.0 } else { counts.1 };
                    let figure = hitter[measure].as_u64().expect("a figure");
                    let error = hitter["error"].as_u64().expect("an error");
                    prop_assert!(
                        figure >= truth && figure - error <= truth,
                        "{} {} {} ± {}, truly {}",
                        list,
                        name,
                        figure,
                        error,
                        truth
                    );
                    if counted.len() <= HITTERS {
                        prop_assert_eq!((figure, error), (truth, 0), "{} {}", list, name);
                    }
                }
            }
        }
        Ok(())
    }
}

fn commands() -> impl Strategy<Value = Vec<Vec<Command>>> {
    let name = prop_oneof![
        8 => Just("SET"),
        2 => Just("DEL"),
        1 => prop::sample::select(&NAMES[..]),
    ];
    // Few numbers (keys come back, in and across batches) or many (more keys than a summary, or a link, holds).
    let keys = prop_oneof![
        3 => prop::collection::vec((0u8..5, 0u16..12), 0..4),
        1 => prop::collection::vec((0u8..5, 0u16..3000), 1..4),
    ];
    let command = (name, keys).prop_map(|(name, keys)| {
        (
            name,
            keys.into_iter().map(|(fate, n)| key(fate, n)).collect(),
        )
    });
    prop::collection::vec(prop::collection::vec(command, 1..300), 1..12)
}

/// Feeds `batches` through one link and checks the current window and since the start against the stream counted
/// one command at a time; with `rotating`, each batch is a window of its own (the windows after the first are
/// begun by asking for the state at their start), so since-start is the earlier windows merged and the last.
fn check(batches: &[Vec<Command>], rotating: bool) -> Result<(), TestCaseError> {
    let window = Duration::from_secs(3600);
    let profile = WriteProfile::new(
        Arc::new(Allow::new(&["perf:*".to_string()])),
        ProfileSettings {
            window,
            hidden_prefixes: vec!["session:".to_string()],
        },
    );
    let start = profile.state(Instant::now()).current.started;
    let mut link = profile.link();
    let mut current = Counted::default();
    let mut since_start = Counted::default();
    for (n, commands) in batches.iter().enumerate() {
        if rotating && n > 0 {
            // The link's next batch, at an earlier instant than this window's start, stays in it.
            drop(profile.state(start + window * n as u32));
            current = Counted::default();
        }
        let (raw, index) = batch(commands);
        link.batch(&raw, &index);
        for ((name, keys), frame) in commands.iter().zip(&index.frames) {
            let bytes = u64::from(frame.at.end - frame.at.start);
            current.command(name, keys, bytes);
            since_start.command(name, keys, bytes);
        }
    }
    let json = profile.to_json();
    current.check(&json["current"])?;
    since_start.check(&json["since_start"])?;
    let text = json.to_string();
    prop_assert!(
        !text.contains("secret") && !text.contains("cart"),
        "a hidden key is named"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn the_figures_are_the_streams_counted_one_command_at_a_time(batches in commands()) {
        check(&batches, false)?;
    }

    #[test]
    fn since_the_start_is_every_window_counted_one_command_at_a_time(batches in commands()) {
        check(&batches, true)?;
    }
}

#[test]
fn keys_past_what_a_link_remembers_within_one_batch_are_counted_all_the_same() {
    // Three times the keys a link remembers, in each of two batches, each after a write to one hot key.
    let commands: Vec<Command> = (0..3 * RECENT_KEYS as u16)
        .flat_map(|n| [("ZADD", vec![key(0, 0)]), ("SET", vec![key(n as u8, n)])])
        .collect();
    check(&[commands.clone(), commands], false).expect("the figures are the stream's");
}
