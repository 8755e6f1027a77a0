//! The keys of a command too large to hold, found as its arguments stream by, by the same key specifications
//! [`CommandTable::key_indices`] follows for a command held whole.
//!
//! The relay never forwards such a command; it tells the sessions watching its keys that those keys are stale. So
//! only the arguments that say where the keys are (the name, a subcommand, a keyword, a count) and the keys
//! themselves are kept, each bounded, and at most [`MAX_STREAMED_KEYS`] keys of at most [`MAX_STREAMED_KEY_LEN`]
//! bytes. A command whose keys cannot all be named within those bounds is reported as such
//! ([`StreamedKeysFound::Unnamed`]), and the relay then starts every session over with a snapshot.

use std::ops::Range;
use std::sync::Arc;

use super::{BeginSearch, CommandTable, FindKeys, KeySpec};

/// Most keys named for one streamed command.
pub const MAX_STREAMED_KEYS: usize = 4096;
/// Longest key named: the longest a browser can ask to top up, so the longest whose window can be brought up to
/// date.
pub const MAX_STREAMED_KEY_LEN: usize = replicast_wasm::wire::MAX_NAME_LEN;
/// Longest command or subcommand name looked up (Redis's are under 40 bytes).
const MAX_COMMAND_NAME_LEN: u64 = 64;
/// Longest count argument (`numkeys`) read: 20 characters hold every `i64`.
const MAX_COUNT_LEN: u64 = 20;
/// Commands every session must see, routed by their name rather than their keys (see `frames::Indexer`). Redis
/// never propagates one that is large; a stream that does cannot be followed key by key.
const ROUTED_BY_NAME: [&[u8]; 6] = [
    b"select",
    b"flushall",
    b"flushdb",
    b"swapdb",
    b"multi",
    b"exec",
];

/// What the keys of a streamed command came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamedKeysFound {
    /// Every key, in argument order: their names one after the other, and where each is in them.
    Keys {
        names: Vec<u8>,
        ranges: Vec<Range<u32>>,
    },
    /// No key to name, for this reason: a module's command, a command the table does not know, or one whose key
    /// specifications find none. The same command held whole reaches no session either.
    NotKeyed(&'static str),
    /// The keys cannot all be named within the bounds, for this reason.
    Unnamed(String),
}

/// Where one key specification is, as arguments go by.
#[derive(Debug, Clone, PartialEq)]
enum Seek {
    /// The first argument equal to `keyword` at `from` or after; the keys start after it.
    Keyword {
        keyword: Vec<u8>,
        from: u64,
        find: FindKeys,
    },
    /// The count at argument `at`; then `count` keys from `first`, every `step`.
    Count {
        at: u64,
        first: u64,
        step: u64,
    },
    /// Keys at `next`, `next + step`, … up to `last`.
    Keys {
        next: u64,
        last: u64,
        step: u64,
    },
    Done,
}

/// What [`Seek::need`] wants of an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Nothing,
    /// Its bytes, to compare or parse.
    Content,
    /// It is a key.
    Key,
}

#[derive(Debug)]
enum Stage {
    /// Waiting for argument 0.
    Name,
    /// The command has subcommands: argument 1 may name one.
    Subcommand {
        name: Vec<u8>,
    },
    /// Following the key specifications.
    Specs,
    Over(StreamedKeysFound),
}

/// Finds a streamed command's keys: tell it where each argument starts and ends (with its bytes when it asked for
/// them), then [`StreamedKeys::finish`].
#[derive(Debug)]
pub struct StreamedKeys {
    table: Arc<CommandTable>,
    argc: u64,
    stage: Stage,
    seeks: Vec<Seek>,
    names: Vec<u8>,
    ranges: Vec<Range<u32>>,
    /// Index of the last key taken: two specifications naming the same argument name one key.
    last_key: Option<u64>,
}

impl StreamedKeys {
    /// For a command of `argc` arguments.
    pub fn new(table: Arc<CommandTable>, argc: u64) -> Self {
        StreamedKeys {
            table,
            argc,
            stage: Stage::Name,
            seeks: Vec::new(),
            names: Vec::new(),
            ranges: Vec::new(),
            last_key: None,
        }
    }

    /// Argument `index`, `len` bytes long, begins; returns whether to keep its bytes for [`StreamedKeys::arg_end`]
    /// (then they are at most [`MAX_STREAMED_KEY_LEN`] bytes).
    pub fn arg_start(&mut self, index: u64, len: u64) -> bool {
        match &self.stage {
            Stage::Over(_) => return false,
            Stage::Name => return len <= MAX_COMMAND_NAME_LEN,
            Stage::Subcommand { .. } if len <= MAX_STREAMED_KEY_LEN as u64 => return true,
            Stage::Subcommand { name } => {
                // Too long to name a subcommand: the command's own specifications apply from here.
                let name = name.clone();
                self.begin(&name, None, index);
            }
            Stage::Specs => {}
        }
        let mut keep = false;
        for seek in &self.seeks {
            match seek.need(index, len) {
                Need::Nothing => {}
                Need::Content => keep = true,
                Need::Key if len > MAX_STREAMED_KEY_LEN as u64 => {
                    self.unnamed(format!(
                        "its key at argument {index} is {len} bytes, longer than the {MAX_STREAMED_KEY_LEN} a \
                         top-up can name"
                    ));
                    return false;
                }
                Need::Key => keep = true,
            }
        }
        keep
    }

    /// Argument `index` is complete; `content` holds its bytes if [`StreamedKeys::arg_start`] asked for them.
    pub fn arg_end(&mut self, index: u64, content: Option<&[u8]>) {
        match &self.stage {
            Stage::Over(_) => {}
            Stage::Name => self.named(content),
            Stage::Subcommand { name } => {
                let name = name.clone();
                self.begin(&name, content, index);
                self.take(index, content);
            }
            Stage::Specs => self.take(index, content),
        }
    }

    /// What the keys came to, once every argument went by.
    pub fn finish(mut self) -> StreamedKeysFound {
        match std::mem::replace(&mut self.stage, Stage::Specs) {
            Stage::Over(found) => found,
            Stage::Name => StreamedKeysFound::NotKeyed("an empty command"),
            Stage::Subcommand { .. } | Stage::Specs if self.ranges.is_empty() => {
                StreamedKeysFound::NotKeyed("its key specifications find no key")
            }
            Stage::Subcommand { .. } | Stage::Specs => StreamedKeysFound::Keys {
                names: self.names,
                ranges: self.ranges,
            },
        }
    }

    /// Argument 0 went by: looks the command up.
    fn named(&mut self, content: Option<&[u8]>) {
        let Some(name) = content.map(<[u8]>::to_ascii_lowercase) else {
            self.stage = Stage::Over(StreamedKeysFound::NotKeyed(
                "a command the table does not know",
            ));
            return;
        };
        if ROUTED_BY_NAME.contains(&name.as_slice()) {
            return self.unnamed(format!(
                "{} concerns every session, which cannot follow it key by key",
                String::from_utf8_lossy(&name).to_uppercase()
            ));
        }
        let table = self.table.clone();
        let Some(entry) = table.commands.get(&name) else {
            self.stage = Stage::Over(StreamedKeysFound::NotKeyed(
                "a command the table does not know",
            ));
            return;
        };
        if entry.module {
            self.stage = Stage::Over(StreamedKeysFound::NotKeyed("a module's command"));
        } else if entry.subcommands.is_empty() || self.argc < 2 {
            self.begin(&name, None, 1);
        } else {
            self.stage = Stage::Subcommand { name };
        }
    }

    /// Starts following the specifications of command `name` (its subcommand `sub`, if it is one), from argument
    /// `next` on.
    fn begin(&mut self, name: &[u8], sub: Option<&[u8]>, next: u64) {
        let table = self.table.clone();
        let Some(mut entry) = table.commands.get(name) else {
            return;
        };
        if let Some(sub) = sub.and_then(|s| entry.subcommands.get(&s.to_ascii_lowercase())) {
            entry = sub;
        }
        self.stage = Stage::Specs;
        for spec in &entry.specs {
            match Seek::begin(spec, next, self.argc) {
                Ok(seek) => self.seeks.push(seek),
                Err(why) => return self.unnamed(why.into()),
            }
        }
    }

    /// Follows every specification past argument `index`, taking it if it is a key.
    fn take(&mut self, index: u64, content: Option<&[u8]>) {
        let argc = self.argc;
        let mut is_key = false;
        for seek in &mut self.seeks {
            is_key |= seek.take(index, content, argc);
        }
        self.seeks.retain(|seek| *seek != Seek::Done);
        if !is_key || self.last_key == Some(index) {
            return;
        }
        self.last_key = Some(index);
        let Some(key) = content else {
            return self.unnamed(format!("its key at argument {index} was not kept"));
        };
        if self.ranges.len() == MAX_STREAMED_KEYS {
            return self.unnamed(format!("it names more than {MAX_STREAMED_KEYS} keys"));
        }
        let start = self.names.len() as u32;
        self.names.extend_from_slice(key);
        self.ranges.push(start..self.names.len() as u32);
    }

    fn unnamed(&mut self, why: String) {
        self.stage = Stage::Over(StreamedKeysFound::Unnamed(why));
        self.seeks.clear();
        self.names = Vec::new();
        self.ranges = Vec::new();
    }
}

impl Seek {
    /// Where `spec`'s keys are, when arguments before `next` have gone by already.
    fn begin(spec: &KeySpec, next: u64, argc: u64) -> Result<Seek, &'static str> {
        match &spec.begin {
            BeginSearch::Index(first) => Seek::keys_from(*first as i64, &spec.find, argc),
            BeginSearch::Keyword {
                keyword,
                start_from,
            } if *start_from >= next as i64 => Ok(Seek::Keyword {
                keyword: keyword.clone(),
                from: *start_from as u64,
                find: spec.find.clone(),
            }),
            BeginSearch::Keyword { .. } => {
                Err("its keys follow a keyword searched for from its end or its name")
            }
        }
    }

    /// The keys that start at argument `first`, as [`KeySpec`]'s `keys` finds them.
    fn keys_from(first: i64, find: &FindKeys, argc: u64) -> Result<Seek, &'static str> {
        let argc = argc as i64;
        if first <= 0 || first >= argc {
            return Ok(Seek::Done);
        }
        match *find {
            FindKeys::Range {
                last_key,
                step,
                limit,
            } => {
                let last = if last_key >= 0 {
                    first.saturating_add(last_key)
                } else if limit > 1 {
                    first + (argc - first) / limit as i64 - 1
                } else {
                    argc + last_key
                };
                Ok(Seek::keys(first, last, step as i64, argc))
            }
            FindKeys::KeyNum {
                count_at,
                first_key,
                step,
            } => {
                if count_at >= first_key {
                    return Err("its key count comes after its keys");
                }
                Ok(Seek::Count {
                    at: (first as u64).saturating_add(count_at as u64),
                    first: (first as u64).saturating_add(first_key as u64),
                    step: step.max(1) as u64,
                })
            }
        }
    }

    /// Keys from `first` to `last` (at most the last argument), every `step`.
    fn keys(first: i64, last: i64, step: i64, argc: i64) -> Seek {
        let last = last.min(argc - 1);
        if first <= 0 || last < first {
            return Seek::Done;
        }
        Seek::Keys {
            next: first as u64,
            last: last as u64,
            step: step.max(1) as u64,
        }
    }

    fn need(&self, index: u64, len: u64) -> Need {
        match self {
            Seek::Keyword { keyword, from, .. }
                if index >= *from && len == keyword.len() as u64 =>
            {
                Need::Content
            }
            Seek::Count { at, .. } if index == *at && len <= MAX_COUNT_LEN => Need::Content,
            Seek::Keys { next, .. } if index == *next => Need::Key,
            _ => Need::Nothing,
        }
    }

    /// Moves past argument `index`; returns whether it is a key.
    fn take(&mut self, index: u64, content: Option<&[u8]>, argc: u64) -> bool {
        match self {
            Seek::Keyword {
                keyword,
                from,
                find,
            } if index >= *from && content.is_some_and(|c| c.eq_ignore_ascii_case(keyword)) => {
                // Searching forwards: the first match decides (a later one is an argument, not the keyword).
                *self = Seek::keys_from(index as i64 + 1, find, argc).unwrap_or(Seek::Done);
                false
            }
            Seek::Count { at, first, step } if index == *at => {
                // As for a command held whole: a count that is not a number finds no keys.
                let count = content
                    .and_then(|c| std::str::from_utf8(c).ok()?.parse::<i64>().ok())
                    .unwrap_or(0);
                let (first, step) = (*first as i64, *step as i64);
                let last = first.saturating_add(count.saturating_sub(1).saturating_mul(step));
                *self = if count <= 0 {
                    Seek::Done
                } else {
                    Seek::keys(first, last, step, argc as i64)
                };
                false
            }
            Seek::Keys { next, last, step } if index == *next => {
                *next += *step;
                if *next > *last {
                    *self = Seek::Done;
                }
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::table;
    use super::*;

    /// Streams `args` through the finder, keeping what it asks for.
    fn streamed(table: &Arc<CommandTable>, args: &[&[u8]]) -> StreamedKeysFound {
        let mut keys = StreamedKeys::new(table.clone(), args.len() as u64);
        for (index, arg) in args.iter().enumerate() {
            let keep = keys.arg_start(index as u64, arg.len() as u64);
            keys.arg_end(index as u64, keep.then_some(*arg));
        }
        keys.finish()
    }

    fn names(found: &StreamedKeysFound) -> Vec<&[u8]> {
        match found {
            StreamedKeysFound::Keys { names, ranges } => ranges
                .iter()
                .map(|r| &names[r.start as usize..r.end as usize])
                .collect(),
            other => panic!("no keys: {other:?}"),
        }
    }

    #[test]
    fn streamed_keys_are_those_of_the_command_held_whole() {
        let table = Arc::new(table());
        for args in [
            &["ZADD", "z", "1", "m"][..],
            &["mset", "a", "1", "b", "2"],
            &["DEL", "a", "b", "c"],
            &["XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"],
            &["XREAD", "STREAMS", "STREAMS", "STREAMS", "0", "0"],
            &["ZUNIONSTORE", "dst", "2", "a", "b", "WEIGHTS", "1", "2"],
            &["ZUNIONSTORE", "dst", "2", "dst", "b"],
            &["ZUNIONSTORE", "dst", "99", "a", "b"],
        ] {
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            let held: Vec<&[u8]> = table.key_indices(&args).iter().map(|&i| args[i]).collect();
            assert_eq!(names(&streamed(&table, &args)), held, "{args:?}");
        }
    }

    #[test]
    fn commands_without_keys_to_name_say_why() {
        let table = Arc::new(table());
        let found = |args: &[&str]| {
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            streamed(&table, &args)
        };
        assert_eq!(
            found(&["PING", "x"]),
            StreamedKeysFound::NotKeyed("its key specifications find no key")
        );
        assert_eq!(
            found(&["NOSUCH", "x"]),
            StreamedKeysFound::NotKeyed("a command the table does not know")
        );
        assert_eq!(found(&["ZUNIONSTORE", "dst", "x", "a"]), names_of(&["dst"]));
        assert!(matches!(
            found(&["SELECT", "1"]),
            StreamedKeysFound::Unnamed(why) if why.starts_with("SELECT concerns every session")
        ));
    }

    fn names_of(keys: &[&str]) -> StreamedKeysFound {
        let mut names = Vec::new();
        let mut ranges = Vec::new();
        for key in keys {
            let start = names.len() as u32;
            names.extend_from_slice(key.as_bytes());
            ranges.push(start..names.len() as u32);
        }
        StreamedKeysFound::Keys { names, ranges }
    }

    #[test]
    fn a_million_keys_or_a_long_one_cannot_be_named_but_a_million_members_can() {
        let table = Arc::new(table());
        // SADD's shape is ZADD's: one key, then members.
        let mut keys = StreamedKeys::new(table.clone(), 1_048_577);
        for index in 0..1_048_577u64 {
            let arg: &[u8] = match index {
                0 => b"ZADD",
                1 => b"perf:set",
                _ => b"member",
            };
            let keep = keys.arg_start(index, arg.len() as u64);
            assert!(keep || index > 1, "argument {index}");
            keys.arg_end(index, keep.then_some(arg));
        }
        assert_eq!(keys.finish(), names_of(&["perf:set"]));

        let mut keys = StreamedKeys::new(table.clone(), 2_000_001);
        for index in 0..2_000_001u64 {
            let arg: &[u8] = if index == 0 { b"MSET" } else { b"k" };
            let keep = keys.arg_start(index, arg.len() as u64);
            keys.arg_end(index, keep.then_some(arg));
        }
        assert_eq!(
            keys.finish(),
            StreamedKeysFound::Unnamed(format!("it names more than {MAX_STREAMED_KEYS} keys"))
        );

        let mut keys = StreamedKeys::new(table, 3);
        assert!(keys.arg_start(0, 3));
        keys.arg_end(0, Some(b"DEL"));
        assert!(!keys.arg_start(1, 2000));
        assert!(matches!(
            keys.finish(),
            StreamedKeysFound::Unnamed(why) if why.contains("argument 1 is 2000 bytes")
        ));
    }
}
