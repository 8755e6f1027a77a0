//! The write profile's figures over one span of time (`Window`): commands by name, bytes, key writes, the hidden
//! totals, the heavy-hitter summaries of keys and prefixes, `MULTI` sizes and deleted keys, and their JSON form
//! (docs/PROTOCOL.md, `/profile`).

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hashbrown::HashMap;
use serde_json::{json, Value as Json};

use super::recent_keys::Shown;
use super::space_saving::{Hashed, SpaceSaving, MAX_PROFILE_KEY};

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
    /// Lowercased names as the stream has them; made text only for `/profile`.
    pub(super) commands: HashMap<Box<[u8]>, u64, foldhash::fast::RandomState>,
    pub(super) other_commands: u64,
    pub(super) bytes: u64,
    pub(super) key_writes: u64,
    pub(super) hidden_writes: u64,
    pub(super) hidden_bytes: u64,
    pub(super) long_keys: u64,
    pub(super) keys_by_writes: SpaceSaving,
    pub(super) keys_by_bytes: SpaceSaving,
    pub(super) prefixes_by_writes: SpaceSaving,
    pub(super) prefixes_by_bytes: SpaceSaving,
    pub(super) multi_blocks: u64,
    pub(super) multi_commands: u64,
    pub(super) multi_largest: u64,
    pub(super) multi_sizes: [u64; MULTI_BUCKETS + 1],
    pub(super) deleted_keys: BTreeMap<&'static str, u64>,
}

impl Window {
    pub(super) fn new(started: Instant) -> Self {
        let started_ms = SystemTime::now()
            .checked_sub(started.elapsed())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        Window {
            started,
            started_ms,
            ended: None,
            commands: HashMap::default(),
            other_commands: 0,
            bytes: 0,
            key_writes: 0,
            hidden_writes: 0,
            hidden_bytes: 0,
            long_keys: 0,
            keys_by_writes: SpaceSaving::new(HITTERS),
            keys_by_bytes: SpaceSaving::new(HITTERS),
            prefixes_by_writes: SpaceSaving::new(HITTERS),
            prefixes_by_bytes: SpaceSaving::new(HITTERS),
            multi_blocks: 0,
            multi_commands: 0,
            multi_largest: 0,
            multi_sizes: [0; MULTI_BUCKETS + 1],
            deleted_keys: BTreeMap::new(),
        }
    }

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

    /// Counts `writes` to `key` (whose hash is `hash`, when it is no longer than a summary keeps), of `bytes` in
    /// all, shown as `shown` says.
    pub(super) fn key(&mut self, key: &[u8], hash: u64, shown: &Shown, writes: u64, bytes: u64) {
        self.key_writes += writes;
        if !shown.allowed {
            self.hidden_writes += writes;
            self.hidden_bytes += bytes;
        }
        for &(len, hash) in shown.prefixes.iter().flatten() {
            let prefix = Hashed::with_hash(&key[..len as usize], hash);
            self.prefixes_by_writes.add(&prefix, writes);
            self.prefixes_by_bytes.add(&prefix, bytes);
        }
        if shown.allowed && key.len() <= MAX_PROFILE_KEY {
            let key = Hashed::with_hash(key, hash);
            self.keys_by_writes.add(&key, writes);
            self.keys_by_bytes.add(&key, bytes);
        } else if shown.allowed {
            self.long_keys += writes;
        }
    }

    pub(super) fn multi(&mut self, size: u64) {
        self.multi_blocks += 1;
        self.multi_commands += size;
        self.multi_largest = self.multi_largest.max(size);
        let bucket = (64 - size.saturating_sub(1).leading_zeros()) as usize;
        self.multi_sizes[bucket.min(MULTI_BUCKETS)] += 1;
    }

    pub(super) fn to_json(&self, now: Instant) -> Json {
        let seconds = self
            .ended
            .unwrap_or(now)
            .duration_since(self.started)
            .as_secs_f64();
        let hitters = |s: &SpaceSaving, measure: &str| -> Json {
            s.top(LISTED)
                .into_iter()
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
            "started_ms": self.started_ms,
            "seconds": seconds,
            "commands": commands,
            "other_commands": self.other_commands,
            "bytes": self.bytes,
            "key_writes": self.key_writes,
            "hidden": {"key_writes": self.hidden_writes, "bytes": self.hidden_bytes},
            "long_keys": self.long_keys,
            "keys": {
                "by_writes": hitters(&self.keys_by_writes, "writes"),
                "by_bytes": hitters(&self.keys_by_bytes, "bytes"),
            },
            "prefixes": {
                "by_writes": hitters(&self.prefixes_by_writes, "writes"),
                "by_bytes": hitters(&self.prefixes_by_bytes, "bytes"),
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
