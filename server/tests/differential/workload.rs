//! The differential test's workload: seeded random steps drawn by weight from the generators
//! ([`super::generators`]), and the pools their arguments come from: small, so that commands meet each other's
//! keys, types and members, with the forms Redis accepts in odd ways (hexadecimal and `-0` scores, `inf`, leading
//! zeros in ids) mixed in.
//!
//! TTLs are either short (at most [`SHORT_TTL`]), so that they pass during the run, or a day, so that none passes
//! while the windows are being compared with Redis.

use std::collections::BTreeMap;

use crate::generators::GENERATORS;

/// The longest of the short TTLs (`SET … PX`, `PSETEX`, `PEXPIRE`, `PEXPIREAT`).
pub const SHORT_TTL: std::time::Duration = std::time::Duration::from_millis(300);

/// A small, fast, seeded generator (SplitMix64): the same seed gives the same workload.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next() % (high - low + 1) as u64) as i64
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One step of the workload, in the database it was drawn for.
pub enum Step {
    /// One command.
    Command(Vec<Vec<u8>>),
    /// Commands one after the other.
    Sequence(Vec<Vec<Vec<u8>>>),
    /// Commands in one `MULTI` … `EXEC`.
    Transaction(Vec<Vec<Vec<u8>>>),
    /// `DUMP src`, then `<restore> dst 0 <payload> REPLACE` if `src` exists.
    Restore {
        src: Vec<u8>,
        dst: Vec<u8>,
        restore: &'static str,
    },
}

impl Step {
    /// The step as text: its commands' words, `;` between commands, a transaction in `MULTI` … `EXEC`.
    pub fn describe(&self) -> String {
        let words = |c: &Vec<Vec<u8>>| -> String {
            c.iter()
                .map(|w| {
                    let text = String::from_utf8_lossy(w);
                    match text.char_indices().nth(40) {
                        Some((cut, _)) => format!("{}…", &text[..cut]),
                        None => text.into_owned(),
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        match self {
            Step::Command(c) => words(c),
            Step::Sequence(cs) => cs.iter().map(words).collect::<Vec<_>>().join(" ; "),
            Step::Transaction(cs) => format!(
                "MULTI ; {} ; EXEC",
                cs.iter().map(words).collect::<Vec<_>>().join(" ; ")
            ),
            Step::Restore { src, dst, restore } => format!(
                "DUMP {} ; {restore} {} …",
                String::from_utf8_lossy(src),
                String::from_utf8_lossy(dst)
            ),
        }
    }
}

/// Forms of command that cross databases, or bring what unwatched keys hold into watched ones: the comparison
/// must meet each, in both databases, as Redis carried it out (see [`Step::crossing`]).
pub const CROSSINGS: &[&str] = &[
    "MOVE",
    "COPY … DB into the other database",
    "COPY … DB into its own database",
    "SORT … STORE from an unwatched key",
    "a command naming a withheld key (s:*) and a watched one",
    "a command naming an allowed unwatched key (u:*) and a watched one",
];

impl Step {
    /// Which of [`CROSSINGS`] the step is, drawn for database `db`: only a single command is told apart (a
    /// transaction's or a sequence's commands are not).
    pub fn crossing(&self, db: u32) -> Option<&'static str> {
        let Step::Command(args) = self else {
            return None;
        };
        let name = args.first()?.to_ascii_uppercase();
        let named = |prefix: &[u8]| args[1..].iter().any(|a| a.starts_with(prefix));
        let keyword = |word: &[u8]| args.iter().position(|a| a.eq_ignore_ascii_case(word));
        match name.as_slice() {
            b"MOVE" => return Some(CROSSINGS[0]),
            b"COPY" => {
                if let Some(at) = keyword(b"DB") {
                    let own = args.get(at + 1)? == db.to_string().as_bytes();
                    return Some(CROSSINGS[if own { 2 } else { 1 }]);
                }
            }
            b"SORT" if keyword(b"STORE").is_some() && !args.get(1)?.starts_with(b"w:") => {
                return Some(CROSSINGS[3])
            }
            _ => {}
        }
        if !named(b"w:") {
            None
        } else if named(b"s:") {
            Some(CROSSINGS[4])
        } else if named(b"u:") {
            Some(CROSSINGS[5])
        } else {
            None
        }
    }
}

pub fn command(words: &[&[u8]]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.to_vec()).collect()
}

/// Builds a command from anything that reads as bytes.
#[macro_export]
macro_rules! cmd {
    ($($word:expr),+ $(,)?) => {
        command(&[$(AsRef::<[u8]>::as_ref(&$word)),+])
    };
}

/// Where the workload stands: its generator, and the next explicit stream id of each stream key.
pub struct Workload {
    pub rng: Rng,
    /// The database the step being drawn runs in.
    pub db: u32,
    next_ids: BTreeMap<(u32, Vec<u8>), u64>,
}

/// Scores as Redis's `string2d` accepts them, the odd forms included.
const SCORES: &[&str] = &[
    "0", "1", "2", "3", "5", "10", "-1", "-0", "0.5", "1.5", "-2.5", "0x10", "0x1p3", "0x1p-2",
    "-0x8", ".5", "5.", "1e3", "2.5e-1", "inf", "-inf", "+inf", "007", "100", "1e300", "-1e300",
    "0.1", "1e-310", "+3",
];
const VALUES: &[&str] = &[
    "a",
    "b",
    "hello",
    "10",
    "-5",
    "007",
    "1e3",
    "0",
    "9223372036854775807",
    "x y",
    "",
    "3.5",
];

impl Workload {
    pub fn new(seed: u64) -> Self {
        Workload {
            rng: Rng::new(seed),
            db: 0,
            next_ids: BTreeMap::new(),
        }
    }

    /// A watched key, usually of the type `kind` (`z`, `l`, `h`, `x`, `s`, `p` for HyperLogLogs, `t` for sets),
    /// sometimes of any type (so Redis refuses some commands as WRONGTYPE, and types change); now and then an
    /// unwatched one, so that the sources of copies, moves and renames into watched keys exist.
    pub fn key(&mut self, kind: char) -> Vec<u8> {
        if self.rng.chance(10) {
            return self.unwatched(kind);
        }
        let kind = if self.rng.chance(8) {
            *self.rng.pick(&['z', 'l', 'h', 'x', 's', 'p', 't'])
        } else {
            kind
        };
        let count = match kind {
            'z' | 's' => 6,
            'p' | 't' => 2,
            _ => 4,
        };
        format!("w:{kind}{}", self.rng.below(count)).into_bytes()
    }

    /// A key the pages do not watch (a source for copies, moves and renames into watched keys): `u:…`, which
    /// every relay of the test allows, or `s:…`, which one withholds, so that its pages learn of what such a
    /// source wrote into a watched key only from stale messages.
    pub fn unwatched(&mut self, kind: char) -> Vec<u8> {
        let prefix = if self.rng.chance(50) { "u" } else { "s" };
        format!("{prefix}:{kind}{}", self.rng.below(2)).into_bytes()
    }

    /// A watched key most of the time, an unwatched one otherwise.
    pub fn any_key(&mut self, kind: char) -> Vec<u8> {
        if self.rng.chance(20) {
            self.unwatched(kind)
        } else {
            self.key(kind)
        }
    }

    pub fn member(&mut self) -> Vec<u8> {
        if self.rng.chance(2) {
            // Past zset-max-listpack-value: the set turns into a skiplist.
            format!("long-member-{}-{}", self.rng.below(4), "x".repeat(60)).into_bytes()
        } else {
            format!("m{}", self.rng.below(60)).into_bytes()
        }
    }

    pub fn score(&mut self) -> Vec<u8> {
        if self.rng.chance(40) {
            self.rng.between(0, 2000).to_string().into_bytes()
        } else {
            self.rng.pick(SCORES).as_bytes().to_vec()
        }
    }

    pub fn value(&mut self) -> Vec<u8> {
        if self.rng.chance(30) {
            format!("v{}", self.rng.below(1000)).into_bytes()
        } else {
            self.rng.pick(VALUES).as_bytes().to_vec()
        }
    }

    pub fn field(&mut self) -> Vec<u8> {
        format!("f{}", self.rng.below(30)).into_bytes()
    }

    pub fn small(&mut self, low: i64, high: i64) -> Vec<u8> {
        self.rng.between(low, high).to_string().into_bytes()
    }

    pub fn side(&mut self) -> &'static str {
        const SIDES: [&str; 2] = ["LEFT", "RIGHT"];
        SIDES[self.rng.below(2)]
    }

    pub fn other_db(&self) -> Vec<u8> {
        (1 - self.db).to_string().into_bytes()
    }

    /// The database of a `COPY … DB`: usually the other one, sometimes its own (which Redis accepts, and which a
    /// page that does not know the stream's database cannot tell from the other).
    pub fn copy_db(&mut self) -> Vec<u8> {
        if self.rng.chance(40) {
            self.db.to_string().into_bytes()
        } else {
            self.other_db()
        }
    }

    /// How many items a push or an add writes: a few, or now and then hundreds, so that keys outgrow windows
    /// and Redis's compact encodings.
    pub fn batch(&mut self) -> usize {
        if self.rng.chance(4) {
            self.rng.between(100, 400) as usize
        } else {
            self.rng.between(1, 4) as usize
        }
    }

    /// An explicit stream id above the ones this workload gave `key` before, in one of the forms Redis reads.
    pub fn stream_id(&mut self, key: &[u8]) -> Vec<u8> {
        let next = self.next_ids.entry((self.db, key.to_vec())).or_insert(0);
        *next += 1 + self.rng.below(3) as u64;
        let ms = 2_000_000_000_000 + *next;
        match self.rng.below(10) {
            0 => format!("{ms}").into_bytes(),
            1 => format!("0{ms}-0{}", self.rng.below(3)).into_bytes(),
            2 => format!("{ms}-*").into_bytes(),
            _ => format!("{ms}-{}", self.rng.below(3)).into_bytes(),
        }
    }

    /// An id this workload may have given `key`.
    pub fn old_stream_id(&mut self, key: &[u8]) -> Vec<u8> {
        let next = self
            .next_ids
            .get(&(self.db, key.to_vec()))
            .copied()
            .unwrap_or(1);
        let ms = 2_000_000_000_000 + self.rng.between(0, next as i64) as u64;
        format!("{ms}-{}", self.rng.below(3)).into_bytes()
    }

    pub fn trim(&mut self, key: &[u8]) -> Vec<Vec<u8>> {
        let exact = self.rng.pick(&["=", "~", ""]);
        let mut words = if self.rng.chance(60) {
            vec![b"MAXLEN".to_vec(), self.small(0, 30)]
        } else {
            vec![b"MINID".to_vec(), self.old_stream_id(key)]
        };
        if !exact.is_empty() {
            words.insert(1, exact.as_bytes().to_vec());
        }
        if *exact == "~" && self.rng.chance(30) {
            words.extend([b"LIMIT".to_vec(), self.small(1, 50)]);
        }
        words
    }

    /// A write drawn like any step, for transactions and `SELECT` blocks (no nested transactions, no flushes).
    pub fn write(&mut self) -> Vec<Vec<Vec<u8>>> {
        loop {
            let (name, step) = self.step();
            // No transaction in a transaction, no flush, nothing that waits on the relay.
            if matches!(
                name,
                "multi" | "select" | "flushall" | "flushdb" | "swapdb" | "replconf" | "function"
            ) {
                continue;
            }
            match step {
                Step::Command(c) => return vec![c],
                Step::Sequence(c) => return c,
                _ => continue,
            }
        }
    }

    /// The step of generator `name`.
    pub fn named(&mut self, name: &str) -> Step {
        match GENERATORS.iter().find(|g| g.0 == name) {
            Some(&(_, _, generate)) => generate(self),
            None => panic!("no generator {name}"),
        }
    }

    /// Draws the next step by the generators' weights.
    pub fn step(&mut self) -> (&'static str, Step) {
        let total: u32 = GENERATORS.iter().map(|g| g.1).sum();
        let mut at = (self.rng.next() % u64::from(total)) as u32;
        for &(name, weight, generate) in GENERATORS {
            if at < weight {
                return (name, generate(self));
            }
            at -= weight;
        }
        unreachable!("the weights add up to `total`")
    }
}

/// The time now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
