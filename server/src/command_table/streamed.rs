//! The keys a command too large to hold may have written, found as its arguments stream by, by the same rules
//! [`CommandTable::keys`] follows for a command held whole.
//!
//! The relay never forwards such a command; it tells the sessions watching the keys it may have written that those
//! are stale. So only the arguments that say where those keys are (the name, a subcommand, a keyword, a count) and
//! the keys themselves are kept, each bounded, and at most [`MAX_STREAMED_KEYS`] keys of at most
//! [`MAX_STREAMED_KEY_LEN`] bytes. Keys it only reads change nothing, and are not looked for. A command whose
//! written keys cannot all be named within those bounds, or not while it streams by (a keyword searched for from
//! the end, a command read by its own grammar), is reported as such ([`StreamedKeysFound::Unnamed`]): every
//! window of its database is then stale.

use std::ops::Range;
use std::sync::Arc;

use super::{BeginSearch, CommandTable, Entry, FindKeys, Grammar, KeySpec};

/// Most keys named for one streamed command.
pub const MAX_STREAMED_KEYS: usize = 4096;
/// Longest key named: the longest a browser can ask to top up, so the longest whose window can be brought up to
/// date.
pub const MAX_STREAMED_KEY_LEN: usize = replicast_protocol::client_message::MAX_NAME_LEN;
/// Longest command or subcommand name looked up (Redis's are under 40 bytes).
const MAX_COMMAND_NAME_LEN: u64 = 64;
/// Longest count argument (`numkeys`) read: 20 characters hold every `u64`.
const MAX_COUNT_LEN: u64 = 20;

/// What the keys a streamed command may have written came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamedKeysFound {
    /// Every key it may have written, in argument order: their names one after the other, and where each is.
    Written {
        names: Vec<u8>,
        ranges: Vec<Range<u32>>,
    },
    /// It writes no key of the keyspace, for this reason (a keyless or read-only command, a module's, one the table
    /// does not know): the same command held whole reaches no session either, and changes no window.
    NoneWritten(&'static str),
    /// The keys it may have written cannot all be named, for this reason.
    Unnamed(String),
}

/// Where one key specification's keys are, as arguments go by.
#[derive(Debug, Clone, PartialEq)]
enum Seek {
    /// The first argument equal to `keyword` from `from` to the one before the last; the keys start after it.
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

/// Finds the keys a streamed command may have written: tell it where each argument starts and ends (with its
/// bytes when it asked for them), then [`StreamedKeys::finish`].
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
            match seek.need(index, len, self.argc) {
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
        if let Stage::Subcommand { name } = &self.stage {
            // No argument 1 came: the command's own specifications, which find nothing in its name alone.
            let name = name.clone();
            self.begin(&name, None, self.argc);
        }
        match std::mem::replace(&mut self.stage, Stage::Specs) {
            Stage::Over(found) => found,
            Stage::Name => StreamedKeysFound::NoneWritten("an empty command"),
            _ if self.ranges.is_empty() => {
                StreamedKeysFound::NoneWritten("its key specifications find no key it writes")
            }
            _ => StreamedKeysFound::Written {
                names: self.names,
                ranges: self.ranges,
            },
        }
    }

    /// Argument 0 went by: looks the command up, as [`CommandTable::keys`] does.
    fn named(&mut self, content: Option<&[u8]>) {
        let table = self.table.clone();
        let Some(name) = content.map(<[u8]>::to_ascii_lowercase) else {
            return self.none_written("a command the table does not know");
        };
        let Some(entry) = table.commands.get(&name) else {
            return self.none_written("a command the table does not know");
        };
        if entry.module {
            return self.none_written("a module's command");
        }
        match entry.grammar {
            Some(Grammar::Script { writes: false }) => {
                return self.none_written("a read-only script")
            }
            Some(Grammar::Script { writes: true }) => {
                return self.unnamed("a script may write keys it does not name".into())
            }
            Some(_) => {
                return self
                    .unnamed("its keys follow its own grammar, not a key specification".into())
            }
            None => {}
        }
        if entry.subcommands.is_empty() {
            self.begin(&name, None, 1);
        } else {
            self.stage = Stage::Subcommand { name };
        }
    }

    /// Starts following the specifications of command `name` (of its subcommand `sub`, if that names one), whose
    /// arguments before `next` went by already.
    fn begin(&mut self, name: &[u8], sub: Option<&[u8]>, next: u64) {
        let table = self.table.clone();
        let Some(mut entry) = table.commands.get(name) else {
            return self.none_written("a command the table does not know");
        };
        if let Some(sub) = sub.and_then(|s| entry.subcommands.get(&s.to_ascii_lowercase())) {
            entry = sub;
        }
        self.stage = Stage::Specs;
        if let Err(why) = self.follow(entry, next) {
            self.unnamed(why.into());
        }
    }

    fn follow(&mut self, entry: &Entry, next: u64) -> Result<(), &'static str> {
        if entry.movable && (entry.legacy || entry.specs.is_empty()) {
            return Err("movable keys without a key specification");
        }
        if !entry.specs.is_empty() && entry.specs.iter().all(|s| s.not_key) {
            return Ok(());
        }
        for spec in entry.specs.iter().filter(|s| s.written) {
            if spec.incomplete {
                return Err("an incomplete key specification that may write");
            }
            self.seeks.push(Seek::begin(spec, next, self.argc)?);
        }
        Ok(())
    }

    /// Follows every specification past argument `index`, taking it if it is a key.
    fn take(&mut self, index: u64, content: Option<&[u8]>) {
        let argc = self.argc;
        let mut is_key = false;
        let mut failed = None;
        for seek in &mut self.seeks {
            match seek.take(index, content, argc) {
                Ok(key) => is_key |= key,
                Err(why) => failed = Some(why),
            }
        }
        if let Some(why) = failed {
            return self.unnamed(why.into());
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
            return self.unnamed(format!("it may write more than {MAX_STREAMED_KEYS} keys"));
        }
        let start = self.names.len() as u32;
        self.names.extend_from_slice(key);
        self.ranges.push(start..self.names.len() as u32);
    }

    fn none_written(&mut self, why: &'static str) {
        self.stage = Stage::Over(StreamedKeysFound::NoneWritten(why));
        self.seeks.clear();
    }

    fn unnamed(&mut self, why: String) {
        self.stage = Stage::Over(StreamedKeysFound::Unnamed(why));
        self.seeks.clear();
        self.names = Vec::new();
        self.ranges = Vec::new();
    }
}

impl Seek {
    /// Where `spec`'s keys are, when the arguments before `next` went by already.
    fn begin(spec: &KeySpec, next: u64, argc: u64) -> Result<Seek, &'static str> {
        match &spec.begin {
            BeginSearch::Index(first) => Seek::keys_from(*first as u64, &spec.find, argc),
            BeginSearch::Keyword {
                keyword,
                start_from,
            } if *start_from > 0 && *start_from as u64 >= next => Ok(Seek::Keyword {
                keyword: keyword.clone(),
                from: *start_from as u64,
                find: spec.find.clone(),
            }),
            BeginSearch::Keyword { .. } => {
                Err("its keys follow a keyword searched for from its end or its name")
            }
            BeginSearch::Unknown => Err("a key specification Redis calls unknown"),
        }
    }

    /// The keys that start at argument `first`, as [`KeySpec`]'s `positions` finds them. Arguments that do not
    /// fit the specification are a command Redis refuses: it wrote nothing, and the specification names no key.
    fn keys_from(first: u64, find: &FindKeys, argc: u64) -> Result<Seek, &'static str> {
        if first == 0 || first >= argc {
            return Ok(Seek::Done);
        }
        match *find {
            FindKeys::Range {
                last_key,
                step,
                limit,
            } => {
                let last = if last_key >= 0 {
                    first as i64 + last_key
                } else if limit > 1 {
                    let rest = argc - first;
                    if !rest.is_multiple_of(limit as u64) {
                        return Ok(Seek::Done);
                    }
                    (first + rest / limit as u64) as i64 + last_key
                } else {
                    argc as i64 + last_key
                };
                Seek::keys(first, last, step as u64, argc)
            }
            FindKeys::KeyNum {
                count_at,
                first_key,
                step,
            } => {
                if count_at >= first_key {
                    return Err("its key count comes after its keys");
                }
                if step == 0 {
                    return Err("a key step of 0");
                }
                Ok(Seek::Count {
                    at: first + count_at as u64,
                    first: first + first_key as u64,
                    step: step as u64,
                })
            }
            FindKeys::Unknown => Err("a key specification Redis calls unknown"),
        }
    }

    /// Keys from `first` to `last`, every `step`, all within the arguments (else none: Redis refuses the command).
    fn keys(first: u64, last: i64, step: u64, argc: u64) -> Result<Seek, &'static str> {
        if step == 0 {
            return Err("a key step of 0");
        }
        if last < first as i64 || last >= argc as i64 {
            return Ok(Seek::Done);
        }
        Ok(Seek::Keys {
            next: first,
            last: last as u64,
            step,
        })
    }

    fn need(&self, index: u64, len: u64, argc: u64) -> Need {
        match self {
            Seek::Keyword { keyword, from, .. }
                if index >= *from && index + 1 < argc && len == keyword.len() as u64 =>
            {
                Need::Content
            }
            Seek::Count { at, .. } if index == *at && len <= MAX_COUNT_LEN => Need::Content,
            Seek::Keys { next, .. } if index == *next => Need::Key,
            _ => Need::Nothing,
        }
    }

    /// Moves past argument `index`; returns whether it is a key.
    fn take(
        &mut self,
        index: u64,
        content: Option<&[u8]>,
        argc: u64,
    ) -> Result<bool, &'static str> {
        match self {
            Seek::Keyword {
                keyword,
                from,
                find,
            } if index >= *from
                && index + 1 < argc
                && content.is_some_and(|c| c.eq_ignore_ascii_case(keyword)) =>
            {
                // Searching forwards, as Redis does: the first match decides.
                *self = Seek::keys_from(index + 1, find, argc)?;
                Ok(false)
            }
            Seek::Count { at, first, step } if index == *at => {
                // As for a command held whole: a count that is not a number, or runs past the arguments, is a
                // command Redis refused.
                let count = content.and_then(|c| std::str::from_utf8(c).ok()?.parse::<u64>().ok());
                let span = count
                    .filter(|&count| count > 0)
                    .and_then(|count| (count - 1).checked_mul(*step))
                    .filter(|&span| span < argc);
                *self = match span {
                    Some(span) => Seek::keys(*first, (*first + span) as i64, *step, argc)?,
                    None => Seek::Done,
                };
                Ok(false)
            }
            Seek::Keys { next, last, step } if index == *next => {
                *next += *step;
                if *next > *last {
                    *self = Seek::Done;
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CommandKeys, CommandTable};
    use super::*;

    /// Redis 7.0.15's own table, as the filter's tests record it.
    fn redis_table() -> Arc<CommandTable> {
        let reply =
            redis::parse_redis_value(include_bytes!("../../tests/data/redis-7.0.15-command.resp"))
                .expect("the recorded COMMAND reply");
        Arc::new(CommandTable::from_command_reply(&reply))
    }

    /// Streams `args` through the finder, keeping what it asks for.
    fn streamed(table: &Arc<CommandTable>, args: &[&[u8]]) -> StreamedKeysFound {
        let mut keys = StreamedKeys::new(table.clone(), args.len() as u64);
        for (index, arg) in args.iter().enumerate() {
            let keep = keys.arg_start(index as u64, arg.len() as u64);
            keys.arg_end(index as u64, keep.then_some(*arg));
        }
        keys.finish()
    }

    fn written(found: &StreamedKeysFound) -> Vec<&[u8]> {
        match found {
            StreamedKeysFound::Written { names, ranges } => ranges
                .iter()
                .map(|r| &names[r.start as usize..r.end as usize])
                .collect(),
            _ => Vec::new(),
        }
    }

    /// What the table says of `args` held whole: the keys the command may have written, or `None` when they cannot
    /// be told.
    fn held_written<'a>(table: &CommandTable, args: &[&'a [u8]]) -> Option<Vec<&'a [u8]>> {
        match table.keys(args) {
            CommandKeys::None => Some(Vec::new()),
            CommandKeys::Known(keys) => Some(
                keys.iter()
                    .filter(|k| k.written)
                    .map(|k| args[k.index])
                    .collect(),
            ),
            CommandKeys::Unresolved { written, .. } => {
                written.map(|w| w.into_iter().map(|i| args[i]).collect())
            }
        }
    }

    #[test]
    fn streamed_commands_may_write_the_keys_of_the_same_commands_held_whole() {
        let table = redis_table();
        for line in [
            "ZADD z 1 m",
            "SADD s a b c",
            "MSET a 1 b 2",
            "DEL a b c",
            "RENAME src dst",
            "ZUNIONSTORE dst 2 a b WEIGHTS 1 2",
            "ZUNIONSTORE dst 2 dst b",
            "ZUNIONSTORE dst 99 a b",
            "ZUNIONSTORE dst x a",
            "LMPOP 2 a b LEFT COUNT 2",
            "XADD s * f v",
            "XGROUP CREATE s g $",
            "OBJECT ENCODING k",
            "SET k v EX 10",
            "COPY a b DB 1 REPLACE",
            "GEOADD g 1 2 m",
            "SINTERSTORE dst a b",
            "FUNCTION LOAD code",
            "PUBLISH ch m",
            "SPUBLISH perf:ch m",
            "NOSUCH a b",
            "XREAD STREAMS a b 0 0",
        ] {
            let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            let streamed = streamed(&table, &args);
            match held_written(&table, &args) {
                Some(held) => assert_eq!(written(&streamed), held, "{line}: {streamed:?}"),
                None => assert!(
                    matches!(streamed, StreamedKeysFound::Unnamed(_)),
                    "{line}: {streamed:?}"
                ),
            }
        }
    }

    #[test]
    fn what_cannot_be_named_while_it_streams_by_says_why() {
        let table = redis_table();
        let found = |line: &str| {
            let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            streamed(&table, &args)
        };
        for (line, why) in [
            (
                "SORT src BY w_* STORE dst",
                "its keys follow its own grammar, not a key specification",
            ),
            (
                "EVAL script 1 k",
                "a script may write keys it does not name",
            ),
            (
                "MIGRATE h 1 \"\" 0 5 KEYS a b",
                "its keys follow its own grammar, not a key specification",
            ),
        ] {
            assert_eq!(
                found(line),
                StreamedKeysFound::Unnamed(why.into()),
                "{line}"
            );
        }
        assert_eq!(
            found("PING"),
            StreamedKeysFound::NoneWritten("its key specifications find no key it writes")
        );
        assert_eq!(
            found("NOSUCH a"),
            StreamedKeysFound::NoneWritten("a command the table does not know")
        );
        assert_eq!(
            found("EVAL_RO script 1 k"),
            StreamedKeysFound::NoneWritten("a read-only script")
        );
    }

    #[test]
    fn a_million_keys_or_a_long_one_cannot_be_named_but_a_million_members_can() {
        let table = redis_table();
        let mut keys = StreamedKeys::new(table.clone(), 1_048_577);
        for index in 0..1_048_577u64 {
            let arg: &[u8] = match index {
                0 => b"SADD",
                1 => b"perf:set",
                _ => b"member",
            };
            let keep = keys.arg_start(index, arg.len() as u64);
            assert!(keep || index > 1, "argument {index}");
            keys.arg_end(index, keep.then_some(arg));
        }
        let found = keys.finish();
        assert_eq!(written(&found), [b"perf:set"]);

        let mut keys = StreamedKeys::new(table.clone(), 2_000_001);
        for index in 0..2_000_001u64 {
            let arg: &[u8] = if index == 0 { b"MSET" } else { b"k" };
            let keep = keys.arg_start(index, arg.len() as u64);
            keys.arg_end(index, keep.then_some(arg));
        }
        assert_eq!(
            keys.finish(),
            StreamedKeysFound::Unnamed(format!("it may write more than {MAX_STREAMED_KEYS} keys"))
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
