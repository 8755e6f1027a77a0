//! The write profile's figures over one span of time (`Window`): what it counts exactly ([`Counts`]: commands by
//! name, bytes, key writes, the hidden totals, `MULTI` sizes and deleted keys), the heavy-hitter summaries of keys
//! and prefixes ([`Hitters`]), and their JSON form (docs/PROTOCOL.md, `/profile`).

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hashbrown::HashMap;
use serde_json::{json, Value as Json};

use super::recent_keys::Shown;
use super::space_saving::{Hashed, Hitter, SpaceSaving, MAX_PROFILE_KEY};

/// Items each heavy-hitter summary keeps; every key written more than 1/`HITTERS` of the window's writes is kept.
pub const HITTERS: usize = 256;
/// Items of each summary `/profile` lists.
pub const LISTED: usize = 20;
/// Most distinct command names counted by name; past it (a module's many commands) they count as `other`.
pub const MAX_COMMAND_NAMES: usize = 256;

/// Longest command name counted by name.
pub(super) const MAX_COMMAND_NAME: usize = 64;
/// `MULTI` sizes are counted in buckets of powers of two: 1, 2, 3–4, 5–8 … up to 2^(n-1), and more.
const MULTI_BUCKETS: usize = 12;

/// Figures of one span of time.
pub(super) struct Window {
    pub(super) started: Instant,
    pub(super) started_ms: u64,
    /// Until when, for a window that ended.
    pub(super) ended: Option<Instant>,
    pub(super) counts: Counts,
    pub(super) hitters: Hitters,
}

/// What a span of time counts exactly, so that spans add up.
#[derive(Clone, Default)]
pub(super) struct Counts {
    /// Lowercased names as the stream has them; made text only for `/profile`.
    pub(super) commands: HashMap<Box<[u8]>, u64, foldhash::fast::RandomState>,
    pub(super) other_commands: u64,
    pub(super) bytes: u64,
    pub(super) key_writes: u64,
    pub(super) hidden_writes: u64,
    pub(super) hidden_bytes: u64,
    pub(super) long_keys: u64,
    pub(super) multi_blocks: u64,
    pub(super) multi_commands: u64,
    pub(super) multi_largest: u64,
    pub(super) multi_sizes: [u64; MULTI_BUCKETS + 1],
    pub(super) deleted_keys: BTreeMap<&'static str, u64>,
}

/// The keys and prefixes a span of time wrote most, by writes and by bytes.
pub(super) struct Hitters {
    pub(super) keys_by_writes: SpaceSaving,
    pub(super) keys_by_bytes: SpaceSaving,
    pub(super) prefixes_by_writes: SpaceSaving,
    pub(super) prefixes_by_bytes: SpaceSaving,
}

/// The heaviest of each list `/profile` shows, heaviest first.
pub(super) struct Listed {
    pub(super) keys_by_writes: Vec<Hitter>,
    pub(super) keys_by_bytes: Vec<Hitter>,
    pub(super) prefixes_by_writes: Vec<Hitter>,
    pub(super) prefixes_by_bytes: Vec<Hitter>,
}

/// `started` as Unix milliseconds, by the clock now.
pub(super) fn unix_ms(started: Instant) -> u64 {
    SystemTime::now()
        .checked_sub(started.elapsed())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

impl Window {
    pub(super) fn new(started: Instant) -> Self {
        Window {
            started,
            started_ms: unix_ms(started),
            ended: None,
            counts: Counts::default(),
            hitters: Hitters {
                keys_by_writes: SpaceSaving::new(HITTERS),
                keys_by_bytes: SpaceSaving::new(HITTERS),
                prefixes_by_writes: SpaceSaving::new(HITTERS),
                prefixes_by_bytes: SpaceSaving::new(HITTERS),
            },
        }
    }

    /// Counts `writes` to `key` (whose hash is `hash`, when it is no longer than a summary keeps), of `bytes` in
    /// all, shown as `shown` says.
    pub(super) fn key(&mut self, key: &[u8], hash: u64, shown: &Shown, writes: u64, bytes: u64) {
        let counts = &mut self.counts;
        counts.key_writes += writes;
        if !shown.allowed {
            counts.hidden_writes += writes;
            counts.hidden_bytes += bytes;
        }
        let hitters = &mut self.hitters;
        for &(len, hash) in shown.prefixes.iter().flatten() {
            let prefix = Hashed::with_hash(&key[..len as usize], hash);
            hitters.prefixes_by_writes.add(&prefix, writes);
            hitters.prefixes_by_bytes.add(&prefix, bytes);
        }
        if shown.allowed && key.len() <= MAX_PROFILE_KEY {
            let key = Hashed::with_hash(key, hash);
            hitters.keys_by_writes.add(&key, writes);
            hitters.keys_by_bytes.add(&key, bytes);
        } else if shown.allowed {
            counts.long_keys += writes;
        }
    }

    pub(super) fn to_json(&self, now: Instant) -> Json {
        let h = &self.hitters;
        let listed = Listed {
            keys_by_writes: h.keys_by_writes.top(LISTED),
            keys_by_bytes: h.keys_by_bytes.top(LISTED),
            prefixes_by_writes: h.prefixes_by_writes.top(LISTED),
            prefixes_by_bytes: h.prefixes_by_bytes.top(LISTED),
        };
        let seconds = self.ended.unwrap_or(now).duration_since(self.started);
        self.counts
            .to_json(self.started_ms, seconds.as_secs_f64(), &listed)
    }
}

impl Counts {
    /// Counts `n` commands by their lowercased name, or as `other` when their name was too long.
    pub(super) fn commands(&mut self, lowercase_name: Option<&[u8]>, n: u64) {
        let Some(name) = lowercase_name else {
            self.other_commands += n;
            return;
        };
        if let Some(count) = self.commands.get_mut(name) {
            *count += n;
        } else if self.commands.len() < MAX_COMMAND_NAMES {
            self.commands.insert(name.into(), n);
        } else {
            self.other_commands += n;
        }
    }

    /// Adds what `other` counted (a later span): names new to this one count by name while there is room.
    pub(super) fn add(&mut self, other: &Counts) {
        let mut names: Vec<(&[u8], u64)> = other
            .commands
            .iter()
            .map(|(name, &n)| (&**name, n))
            .collect();
        // In a fixed order, so that which names past the limit count as `other` does not depend on the hasher.
        names.sort();
        for (name, n) in names {
            self.commands(Some(name), n);
        }
        self.other_commands += other.other_commands;
        self.bytes += other.bytes;
        self.key_writes += other.key_writes;
        self.hidden_writes += other.hidden_writes;
        self.hidden_bytes += other.hidden_bytes;
        self.long_keys += other.long_keys;
        self.multi_blocks += other.multi_blocks;
        self.multi_commands += other.multi_commands;
        self.multi_largest = self.multi_largest.max(other.multi_largest);
        for (sum, n) in self.multi_sizes.iter_mut().zip(other.multi_sizes) {
            *sum += n;
        }
        for (&how, &n) in &other.deleted_keys {
            *self.deleted_keys.entry(how).or_default() += n;
        }
    }

    pub(super) fn multi(&mut self, size: u64) {
        self.multi_blocks += 1;
        self.multi_commands += size;
        self.multi_largest = self.multi_largest.max(size);
        let bucket = (64 - size.saturating_sub(1).leading_zeros()) as usize;
        self.multi_sizes[bucket.min(MULTI_BUCKETS)] += 1;
    }

    /// A window's JSON: these counts, over `seconds` from `started_ms`, and the lists.
    pub(super) fn to_json(&self, started_ms: u64, seconds: f64, listed: &Listed) -> Json {
        let hitters = |list: &[Hitter], measure: &str| -> Json {
            list.iter()
                .map(|h| {
                    json!({
                        "name": String::from_utf8_lossy(&h.item),
                        measure: h.weight,
                        "error": h.error,
                    })
                })
                .collect()
        };
        let mut commands = BTreeMap::<String, u64>::new();
        for (name, n) in &self.commands {
            *commands
                .entry(String::from_utf8_lossy(name).into_owned())
                .or_default() += n;
        }
        let sizes: Vec<Json> = self
            .multi_sizes
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(bucket, n)| {
                let (low, high) = match bucket {
                    0 => (1, Some(1)),
                    b if b == MULTI_BUCKETS => ((1u64 << (b - 1)) + 1, None),
                    b => ((1u64 << (b - 1)) + 1, Some(1u64 << b)),
                };
                json!({"from": low, "to": high, "blocks": n})
            })
            .collect();
        json!({
            "started_ms": started_ms,
            "seconds": seconds,
            "commands": commands,
            "other_commands": self.other_commands,
            "bytes": self.bytes,
            "key_writes": self.key_writes,
            "hidden": {"key_writes": self.hidden_writes, "bytes": self.hidden_bytes},
            "long_keys": self.long_keys,
            "keys": {
                "by_writes": hitters(&listed.keys_by_writes, "writes"),
                "by_bytes": hitters(&listed.keys_by_bytes, "bytes"),
            },
            "prefixes": {
                "by_writes": hitters(&listed.prefixes_by_writes, "writes"),
                "by_bytes": hitters(&listed.prefixes_by_bytes, "bytes"),
            },
            "multi": {
                "blocks": self.multi_blocks,
                "commands": self.multi_commands,
                "largest": self.multi_largest,
                "sizes": sizes,
            },
            "deleted_keys": self.deleted_keys,
        })
    }
}
