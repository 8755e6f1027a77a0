//! `replicast rdb --stats` and the inspector page's figures: keys, RDB bytes and elements per database, type and
//! encoding, by key prefix ([`PrefixTree`]) and by time to expiry, the biggest keys, the functions and modules
//! present, the version and the checksum. One implementation serves the CLI and the page (through the wasm
//! build's `RdbInspect`), so their numbers agree by construction.
//!
//! A key's size is the bytes its value takes in the RDB (from its type byte to its end): what reports call its
//! estimated memory. Compact encodings (listpack, intset) take about as much in memory; hash tables and skip lists
//! take more, by their pointers. Everything held is bounded: the biggest keys by `--top`, the prefix tree by its
//! own bounds, the module and function names and the aux fields listed by [`MAX_LISTED_NAMES`], the databases by
//! [`MAX_LISTED_DBS`].

use std::collections::{BTreeMap, BinaryHeap};
use std::io::{self, Write};

use serde_json::{json, Value as Json};

use crate::{Checksum, Element, Event, Flavor};

use super::filter::Filter;
use super::prefix_tree::{bytes_json, PrefixTree};

/// Most distinct module and function library names listed (a file could name millions); past it they are counted
/// as `other`.
pub const MAX_LISTED_NAMES: usize = 256;

/// Most databases listed one by one: a file may name any database number, one per key (Redis's default is 16).
/// The keys of the others are counted together, as the database [`UNLISTED_DBS`].
pub const MAX_LISTED_DBS: usize = 256;
/// The name, among the databases of the summary, of those past [`MAX_LISTED_DBS`].
pub const UNLISTED_DBS: &str = "unlisted";

/// The expiry buckets, by time left after the reference time: (name, upper bound in ms, exclusive).
const TTL_BUCKETS: [(&str, i64); 5] = [
    ("under_1h", 3_600_000),
    ("under_1d", 86_400_000),
    ("under_7d", 7 * 86_400_000),
    ("under_30d", 30 * 86_400_000),
    ("later", i64::MAX),
];

/// Keys, RDB bytes and elements of one group of keys.
#[derive(Default, Clone, Copy)]
pub(super) struct Tally {
    keys: u64,
    bytes: u64,
    elements: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64, elements: u64) {
        self.keys += 1;
        self.bytes += bytes;
        self.elements += elements;
    }

    fn to_json(self) -> Json {
        json!({"keys": self.keys, "bytes": self.bytes, "elements": self.elements})
    }
}

/// One of the biggest keys, ordered smallest first so the heap drops the smallest.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Big {
    neg_bytes: std::cmp::Reverse<u64>,
    db: u64,
    key: Vec<u8>,
    value_type: &'static str,
    encoding: &'static str,
    elements: u64,
    expire_ms: Option<i64>,
}

/// Names counted up to [`MAX_LISTED_NAMES`], the rest as one `other` count.
#[derive(Default)]
struct NameCounts {
    named: BTreeMap<String, u64>,
    other: u64,
}

impl NameCounts {
    fn add(&mut self, name: String) {
        if let Some(n) = self.named.get_mut(&name) {
            *n += 1;
        } else if self.named.len() < MAX_LISTED_NAMES {
            self.named.insert(name, 1);
        } else {
            self.other += 1;
        }
    }
}

pub struct Stats {
    /// By database (at most [`MAX_LISTED_DBS`]), then by type.
    per: BTreeMap<u64, BTreeMap<&'static str, Tally>>,
    /// By type, the keys of the databases past [`MAX_LISTED_DBS`].
    unlisted_dbs: BTreeMap<&'static str, Tally>,
    encodings: BTreeMap<(&'static str, &'static str), Tally>,
    /// Keys without expiry, already expired at the reference time, then by [`TTL_BUCKETS`].
    ttl: [Tally; 2 + TTL_BUCKETS.len()],
    prefixes: PrefixTree,
    biggest: BinaryHeap<Big>,
    top: usize,
    pub all_keys: u64,
    skipped_empty: u64,
    /// The aux fields by name (the last value of a name read twice), at most [`MAX_LISTED_NAMES`].
    aux: BTreeMap<String, String>,
    aux_unlisted: u64,
    functions: u64,
    libraries: NameCounts,
    module_keys: NameCounts,
    module_aux: NameCounts,
    /// The key being read, if it passes the filter: its name (a buffer reused from key to key) and start.
    current: Option<Current>,
    key: Vec<u8>,
    version: u32,
    flavor: Option<Flavor>,
    checksum: Option<Checksum>,
    /// When expiries are measured from: the file's `ctime` once read, else the clock given.
    now_ms: Option<i64>,
    ctime_ms: Option<i64>,
}

pub(super) struct Current {
    db: u64,
    value_type: &'static str,
    encoding: &'static str,
    offset: u64,
    elements: u64,
    expire_ms: Option<i64>,
}

impl Stats {
    /// Expiries are measured from the file's `ctime` (when it was saved); a file without one has its keys with
    /// expiry counted as `unknown` (see [`Stats::with_clock`]).
    pub fn new(top: usize) -> Self {
        Stats {
            per: BTreeMap::new(),
            unlisted_dbs: BTreeMap::new(),
            encodings: BTreeMap::new(),
            ttl: Default::default(),
            prefixes: PrefixTree::default(),
            biggest: BinaryHeap::new(),
            top,
            all_keys: 0,
            skipped_empty: 0,
            aux: BTreeMap::new(),
            aux_unlisted: 0,
            functions: 0,
            libraries: NameCounts::default(),
            module_keys: NameCounts::default(),
            module_aux: NameCounts::default(),
            current: None,
            key: Vec::new(),
            version: 0,
            flavor: None,
            checksum: None,
            now_ms: None,
            ctime_ms: None,
        }
    }

    /// As [`Stats::new`], measuring expiries from `now_ms` (Unix ms) when the file has no `ctime`.
    pub fn with_clock(top: usize, now_ms: i64) -> Self {
        Stats {
            now_ms: Some(now_ms),
            ..Stats::new(top)
        }
    }

    pub fn on_event(&mut self, event: &Event<'_>, filter: &Filter) {
        match event {
            Event::Header { flavor, version } => {
                self.version = *version;
                self.flavor = Some(*flavor);
            }
            Event::Aux { key, value } => {
                if key.to_string() == "ctime" {
                    self.ctime_ms = value.as_int().and_then(|s| s.checked_mul(1000));
                }
                let name = key.to_string();
                if self.aux.len() < MAX_LISTED_NAMES || self.aux.contains_key(&name) {
                    self.aux.insert(name, value.to_string());
                } else {
                    self.aux_unlisted += 1;
                }
            }
            Event::Function { code } => {
                self.functions += 1;
                self.libraries.add(library_name(code));
            }
            Event::FunctionPreGa { name, .. } => {
                self.functions += 1;
                self.libraries.add(name.to_string());
            }
            Event::ModuleAux { module, .. } => self.module_aux.add(module.name()),
            Event::SkippedEmptyKey { .. } => self.skipped_empty += 1,
            Event::Eof { checksum } => self.checksum = Some(*checksum),
            Event::KeyStart(key) => {
                self.all_keys += 1;
                self.current = filter.accepts(key).then(|| {
                    self.key.clear();
                    self.key.extend_from_slice(key.key);
                    if let Some(module) = key.module {
                        self.module_keys.add(module.name());
                    }
                    Current {
                        db: key.db,
                        value_type: key.value_type.name(),
                        encoding: key.encoding.name(),
                        offset: key.offset,
                        elements: 0,
                        expire_ms: key.expire_ms,
                    }
                });
            }
            Event::Element(
                Element::String(_)
                | Element::ListItem(_)
                | Element::SetMember(_)
                | Element::ZSetMember { .. }
                | Element::HashField { .. }
                | Element::StreamEntry { .. },
            ) => {
                if let Some(current) = &mut self.current {
                    current.elements += 1;
                }
            }
            Event::KeyEnd { offset } => {
                if let Some(current) = self.current.take() {
                    let bytes = offset.saturating_sub(current.offset);
                    self.count_key(current, bytes);
                }
            }
            _ => {}
        }
    }

    fn count_key(&mut self, current: Current, bytes: u64) {
        let elements = current.elements;
        let by_type = if self.per.len() < MAX_LISTED_DBS || self.per.contains_key(&current.db) {
            self.per.entry(current.db).or_default()
        } else {
            &mut self.unlisted_dbs
        };
        by_type
            .entry(current.value_type)
            .or_default()
            .add(bytes, elements);
        self.encodings
            .entry((current.value_type, current.encoding))
            .or_default()
            .add(bytes, elements);
        self.ttl[self.ttl_slot(current.expire_ms)].add(bytes, elements);
        self.prefixes.add(&self.key, bytes);
        let smallest = self.biggest.peek().map_or(0, |b| b.neg_bytes.0);
        if self.biggest.len() < self.top || bytes > smallest {
            self.biggest.push(Big {
                neg_bytes: std::cmp::Reverse(bytes),
                db: current.db,
                key: self.key.clone(),
                value_type: current.value_type,
                encoding: current.encoding,
                elements,
                expire_ms: current.expire_ms,
            });
            if self.biggest.len() > self.top {
                self.biggest.pop();
            }
        }
    }

    /// The time expiries are measured from, if any.
    fn reference_ms(&self) -> Option<i64> {
        self.ctime_ms.or(self.now_ms)
    }

    /// Index in `ttl`: 0 no expiry, 1 expired, 2.. the buckets; with no reference time, the last (`unknown`).
    fn ttl_slot(&self, expire_ms: Option<i64>) -> usize {
        let Some(expire_ms) = expire_ms else { return 0 };
        let Some(now) = self.reference_ms() else {
            return self.ttl.len() - 1;
        };
        let left = expire_ms.saturating_sub(now);
        if left <= 0 {
            return 1;
        }
        2 + TTL_BUCKETS
            .iter()
            .position(|&(_, below)| left < below)
            .unwrap_or(TTL_BUCKETS.len() - 1)
    }

    /// The summary as JSON (docs/RDB.md, `--stats`); `total_bytes` is the length of the input read.
    pub fn summary(&self, total_bytes: u64) -> Json {
        let by_type = |tallies: &BTreeMap<&str, Tally>| -> serde_json::Map<String, Json> {
            tallies
                .iter()
                .map(|(value_type, t)| (value_type.to_string(), t.to_json()))
                .collect()
        };
        let mut dbs: BTreeMap<String, serde_json::Map<String, Json>> = self
            .per
            .iter()
            .map(|(db, tallies)| (db.to_string(), by_type(tallies)))
            .collect();
        if !self.unlisted_dbs.is_empty() {
            dbs.insert(UNLISTED_DBS.to_string(), by_type(&self.unlisted_dbs));
        }
        let mut encodings: BTreeMap<&str, serde_json::Map<String, Json>> = BTreeMap::new();
        for ((value_type, encoding), t) in &self.encodings {
            encodings
                .entry(value_type)
                .or_default()
                .insert(encoding.to_string(), t.to_json());
        }
        let mut ttl = serde_json::Map::new();
        ttl.insert("none".into(), self.ttl[0].to_json());
        ttl.insert("expired".into(), self.ttl[1].to_json());
        for (i, (name, _)) in TTL_BUCKETS.iter().enumerate() {
            ttl.insert(name.to_string(), self.ttl[2 + i].to_json());
        }
        if self.reference_ms().is_none() {
            // Without a reference every key with expiry was counted in the last slot: say so by its name.
            let unknown = ttl.remove("later").unwrap_or_default();
            ttl.insert("unknown".into(), unknown);
        }
        let mut biggest: Vec<&Big> = self.biggest.iter().collect();
        biggest.sort();
        let biggest: Vec<Json> = biggest
            .iter()
            .map(|b| {
                json!({
                    "db": b.db,
                    "key": bytes_json(&b.key),
                    "type": b.value_type,
                    "encoding": b.encoding,
                    "bytes": b.neg_bytes.0,
                    "elements": b.elements,
                    "expire_ms": b.expire_ms,
                })
            })
            .collect();
        let aux: serde_json::Map<String, Json> = self
            .aux
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        let mut modules: BTreeMap<&str, Json> = BTreeMap::new();
        for (name, keys) in &self.module_keys.named {
            modules.insert(name, json!({"keys": keys, "aux": 0}));
        }
        for (name, aux) in &self.module_aux.named {
            let entry = modules
                .entry(name)
                .or_insert_with(|| json!({"keys": 0, "aux": 0}));
            entry["aux"] = json!(aux);
        }
        json!({
            "flavor": self.flavor.map(Flavor::name),
            "rdb_version": self.version,
            "checksum": match self.checksum {
                Some(Checksum::Verified(_)) => "verified",
                Some(Checksum::Disabled) => "disabled",
                Some(Checksum::Absent) => "absent",
                None => "unread",
            },
            "bytes": total_bytes,
            "keys": self.all_keys,
            "skipped_empty_keys": self.skipped_empty,
            "functions": self.functions,
            "function_libraries": self.libraries.named,
            "function_libraries_unlisted": self.libraries.other,
            "modules": modules,
            "modules_unlisted": self.module_keys.other + self.module_aux.other,
            "aux": aux,
            "aux_unlisted": self.aux_unlisted,
            "dbs": dbs,
            "encodings": encodings,
            "ttl_reference_ms": self.reference_ms(),
            "ttl": ttl,
            "prefixes": self.prefixes.to_json(),
            "biggest_keys": biggest,
        })
    }

    /// The summary as one JSON document.
    pub fn write(&mut self, out: &mut impl Write, total_bytes: u64) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, &self.summary(total_bytes))?;
        out.write_all(b"\n")?;
        Ok(())
    }
}

/// A function library's name, from its code's shebang (`#!lua name=mylib`), or `?` when it has none.
fn library_name(code: &crate::Value<'_>) -> String {
    let crate::Value::Bytes(code) = code else {
        return "?".into();
    };
    let first_line = code.split(|&b| b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(first_line)
        .split_whitespace()
        .find_map(|word| word.strip_prefix("name="))
        .map_or_else(|| "?".into(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RdbReader;

    /// A version 9 file, checksum disabled: `ctime` 1000 s, then in db 0 `a:1` (string, no expiry), `a:2`
    /// (string, expired at 999 s), `b` (string, 2 h left); in db 1 a list of two ziplist-free items (`l:x`,
    /// linked-list encoding) expiring in 40 days; a function library.
    fn file() -> Vec<u8> {
        let mut rdb = b"REDIS0009".to_vec();
        rdb.extend([0xfa, 5]);
        rdb.extend(b"ctime");
        rdb.extend([0xc1]);
        rdb.extend(1000u16.to_le_bytes());
        rdb.extend([0xf5, 20]);
        rdb.extend(b"#!lua name=mylib\nx=1");
        rdb.extend([0xfe, 0]);
        rdb.extend([0, 3]);
        rdb.extend(b"a:1");
        rdb.extend([1, b'v']);
        rdb.push(0xfc);
        rdb.extend(999_000u64.to_le_bytes());
        rdb.extend([0, 3]);
        rdb.extend(b"a:2");
        rdb.extend([1, b'v']);
        rdb.push(0xfc);
        rdb.extend((1_000_000u64 + 7_200_000).to_le_bytes());
        rdb.extend([0, 1, b'b', 4]);
        rdb.extend(b"vvvv");
        rdb.extend([0xfe, 1]);
        rdb.push(0xfc);
        rdb.extend((1_000_000u64 + 40 * 86_400_000).to_le_bytes());
        rdb.extend([1, 3]);
        rdb.extend(b"l:x");
        rdb.extend([2, 1, b'p', 1, b'q']);
        rdb.push(0xff);
        rdb.extend([0u8; 8]);
        rdb
    }

    fn summary_of(rdb: &[u8], stats: &mut Stats) -> Json {
        let mut reader = RdbReader::new();
        reader
            .push(rdb, |event| stats.on_event(&event, &Filter::default()))
            .unwrap();
        reader.finish().unwrap();
        stats.summary(rdb.len() as u64)
    }

    #[test]
    fn the_summary_counts_types_encodings_expiries_prefixes_and_functions() {
        let rdb = file();
        let s = summary_of(&rdb, &mut Stats::with_clock(2, 5));
        assert_eq!(s["flavor"], "Redis");
        assert_eq!(s["rdb_version"], 9);
        assert_eq!(s["checksum"], "disabled");
        assert_eq!(s["keys"], 4);
        assert_eq!(s["dbs"]["0"]["string"]["keys"], 3);
        assert_eq!(s["dbs"]["1"]["list"]["elements"], 2);
        assert_eq!(s["encodings"]["list"]["linkedlist"]["keys"], 1);
        assert_eq!(s["encodings"]["string"]["string"]["keys"], 3);
        // The file's ctime, not the clock given, is the reference.
        assert_eq!(s["ttl_reference_ms"], 1_000_000);
        assert_eq!(s["ttl"]["none"]["keys"], 1);
        assert_eq!(s["ttl"]["expired"]["keys"], 1);
        assert_eq!(s["ttl"]["under_1d"]["keys"], 1);
        assert_eq!(s["ttl"]["later"]["keys"], 1);
        assert_eq!(s["ttl"]["under_1h"]["keys"], 0);
        assert_eq!(s["functions"], 1);
        assert_eq!(s["function_libraries"]["mylib"], 1);
        let prefixes = &s["prefixes"];
        assert_eq!(prefixes["keys"], 4);
        assert_eq!(prefixes["children"][0]["prefix"], "a:");
        assert_eq!(prefixes["children"][0]["keys"], 2);
        // Bytes add up: every key's RDB bytes are in the root, the databases and the encodings alike.
        let db_bytes: u64 = ["0", "1"]
            .iter()
            .flat_map(|db| s["dbs"][db].as_object().unwrap().values())
            .map(|t| t["bytes"].as_u64().unwrap())
            .sum();
        assert_eq!(prefixes["bytes"].as_u64().unwrap(), db_bytes);
        // Two biggest, most first: the list, then `b`.
        assert_eq!(s["biggest_keys"][0]["key"], "l:x");
        assert_eq!(s["biggest_keys"][0]["encoding"], "linkedlist");
        assert_eq!(s["biggest_keys"][1]["key"], "b");
        assert_eq!(s["biggest_keys"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn without_ctime_expiries_are_measured_from_the_clock_or_unknown() {
        // The same file without its aux field (`0xfa`, 5-byte name, 3-byte integer).
        let rdb = file();
        let without: Vec<u8> = rdb[..9].iter().chain(&rdb[9 + 10..]).copied().collect();
        let s = summary_of(&without, &mut Stats::with_clock(1, 0));
        assert_eq!(s["ttl_reference_ms"], 0);
        assert_eq!(s["ttl"]["expired"]["keys"], 0);
        assert_eq!(s["ttl"]["later"]["keys"], 1);
        let s = summary_of(&without, &mut Stats::new(1));
        assert_eq!(s["ttl_reference_ms"], Json::Null);
        assert_eq!(s["ttl"]["unknown"]["keys"], 3);
        assert!(s["ttl"].get("later").is_none());
    }

    #[test]
    fn library_names_come_from_the_shebang() {
        assert_eq!(
            library_name(&crate::Value::Bytes(b"#!lua name=lib1\nreturn")),
            "lib1"
        );
        assert_eq!(library_name(&crate::Value::Bytes(b"return 1")), "?");
    }

    /// A 14-bit RDB length (`01` prefix), enough for every count these tests write.
    fn length(n: usize) -> [u8; 2] {
        [0x40 | (n >> 8) as u8, n as u8]
    }

    #[test]
    fn aux_fields_listed_are_bounded() {
        // A file may hold any number of aux fields: past the bound they are counted, not held.
        let mut rdb = b"REDIS0009".to_vec();
        for i in 0..MAX_LISTED_NAMES + 10 {
            let name = format!("field-{i}");
            rdb.push(0xfa);
            rdb.extend(length(name.len()));
            rdb.extend(name.as_bytes());
            rdb.extend([1, b'v']);
        }
        // A name already listed is still read again (its last value wins), however many came after it.
        rdb.extend([0xfa, 7]);
        rdb.extend(b"field-0");
        rdb.extend([1, b'w']);
        rdb.push(0xff);
        rdb.extend([0u8; 8]);
        let s = summary_of(&rdb, &mut Stats::new(1));
        assert_eq!(s["aux"].as_object().unwrap().len(), MAX_LISTED_NAMES);
        assert_eq!(s["aux"]["field-0"], "w");
        assert_eq!(s["aux_unlisted"], 10);
    }

    #[test]
    fn databases_listed_are_bounded() {
        // One key in each of more databases than are listed: the rest are counted together, so the figures by
        // database still add up to every key.
        let mut rdb = b"REDIS0009".to_vec();
        for db in 0..MAX_LISTED_DBS + 10 {
            rdb.push(0xfe);
            rdb.extend(length(db));
            rdb.extend([0, 1, b'k', 1, b'v']);
        }
        rdb.push(0xff);
        rdb.extend([0u8; 8]);
        let s = summary_of(&rdb, &mut Stats::new(1));
        let dbs = s["dbs"].as_object().unwrap();
        assert_eq!(dbs.len(), MAX_LISTED_DBS + 1);
        assert_eq!(dbs["0"]["string"]["keys"], 1);
        assert_eq!(dbs[UNLISTED_DBS]["string"]["keys"], 10);
        let keys: u64 = dbs
            .values()
            .map(|db| db["string"]["keys"].as_u64().unwrap())
            .sum();
        assert_eq!(keys, (MAX_LISTED_DBS + 10) as u64);
    }

    #[test]
    fn listed_names_are_bounded() {
        let mut names = NameCounts::default();
        for i in 0..(MAX_LISTED_NAMES + 10) {
            names.add(i.to_string());
        }
        names.add("0".into());
        assert_eq!(names.named.len(), MAX_LISTED_NAMES);
        assert_eq!(names.other, 10);
        assert_eq!(names.named["0"], 2);
    }
}
