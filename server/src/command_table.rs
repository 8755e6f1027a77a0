//! Where the keys of each command are, learned from the Redis being followed (`COMMAND`) at startup, so that
//! multi-key and module commands route to the right browsers without a table of our own going stale.
//!
//! Redis 7 describes key positions with key specifications: a *begin search* (a fixed index, or the argument after
//! a keyword such as `STREAMS`) and a *find keys* step (a range with a step and limit, or a count argument such as
//! `numkeys`), with flags that say whether the keys are only read (`RO`) or written. Redis 6 gives only (first,
//! last, step), used when specifications are absent. Subcommands (`OBJECT ENCODING`, `XGROUP CREATE`…) have their
//! own entries.
//!
//! Every key of a command is found, however many (Redis's own limits bound the count), in time linear in the
//! arguments, and reported once with whether the command may write it. A command whose keys cannot all be found
//! is [`CommandKeys::Unresolved`]: never passed to a browser, whatever its arguments. That covers specifications
//! Redis itself calls `unknown` or `incomplete`, counts past the arguments and anything else malformed. A few
//! commands are read by their own grammar instead of their specifications, as Redis does (its `getkeys` procs):
//! `SORT`/`SORT_RO` (the `STORE` destination is a key; `BY`/`GET` patterns name keys derived from the values
//! sorted, which cannot be judged before Redis runs the command), `GEORADIUS…` (every `STORE`/`STOREDIST`, the
//! last of which Redis writes, where the specification finds the first), `MIGRATE` (withheld always: it names a
//! host and may carry a password) and scripts (`EVAL`, `FCALL`…: a script may write keys its arguments never
//! name). docs/SECURITY.md lists the decision for each.
//!
//! Module commands (flag `module`) name no key here: the relay sends them to no browser. Their key specifications
//! describe what the module declared, not always what it writes (RediSearch 1.x's `FT.ADD` writes the document's
//! hash but declares only the index), so `--allow` could not judge them; and the assembler follows no module
//! command anyway. Commands whose only "keys" are flagged `not_key` (`SPUBLISH`'s shard channel) name no key of
//! the keyspace either: they write nothing a window holds, and reach no browser.

use redis::Value;

/// The table's maps: command names as Redis listed them, looked up (never inserted) with each command the stream
/// carries. foldhash is several times cheaper than SipHash on these short names, and randomly seeded per process,
/// so a stream cannot aim for collisions either (nor could it grow the map).
type NameMap<V> = foldhash::HashMap<Vec<u8>, V>;

/// Room on the stack for a command name lowercased before its lookup: longer than any name Redis defines (the
/// longest, `georadiusbymember_ro`, has 20 bytes); a longer one, a module's perhaps, is lowercased on the heap.
const NAME_ROOM: usize = 64;

pub mod streamed;

/// How the first key is found.
#[derive(Debug, Clone, PartialEq)]
enum BeginSearch {
    Index(usize),
    /// The argument after `keyword`, searched from `start_from` (negative: from the end, backwards).
    Keyword {
        keyword: Vec<u8>,
        start_from: i64,
    },
    /// A search Redis describes as `unknown` (or one this relay does not know): the keys cannot be found.
    Unknown,
}

/// How the keys after the first are found.
#[derive(Debug, Clone, PartialEq)]
enum FindKeys {
    /// `last_key` relative to the first (negative: from the end), every `step`, or, with `limit` > 1 and
    /// `last_key` -1, a `1/limit` share of the remaining arguments.
    Range {
        last_key: i64,
        step: usize,
        limit: usize,
    },
    /// A count at `first + count_at`, keys from `first + first_key`, every `step`.
    KeyNum {
        count_at: usize,
        first_key: usize,
        step: usize,
    },
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
struct KeySpec {
    begin: BeginSearch,
    find: FindKeys,
    /// Whether the command may write these keys: every key not flagged `RO` (read only).
    written: bool,
    /// Flag `not_key`: the arguments are not keys of the keyspace (a shard channel).
    not_key: bool,
    /// Flag `incomplete`: the specification may not find every key.
    incomplete: bool,
}

/// Commands read by their own grammar rather than by their key specifications.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Grammar {
    Sort,
    /// `GEORADIUS` (options from argument 6) and `GEORADIUSBYMEMBER` (from 5).
    GeoRadius {
        options_from: usize,
    },
    Migrate,
    /// `EVAL`, `EVALSHA`, `FCALL` (`writes`) and their `_RO` forms.
    Script {
        writes: bool,
    },
}

impl Grammar {
    fn of(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"sort" | b"sort_ro" => Grammar::Sort,
            b"georadius" => Grammar::GeoRadius { options_from: 6 },
            b"georadiusbymember" => Grammar::GeoRadius { options_from: 5 },
            b"migrate" => Grammar::Migrate,
            b"eval" | b"evalsha" | b"fcall" => Grammar::Script { writes: true },
            b"eval_ro" | b"evalsha_ro" | b"fcall_ro" => Grammar::Script { writes: false },
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Default)]
struct Entry {
    specs: Vec<KeySpec>,
    subcommands: NameMap<Entry>,
    /// A module's command (flag `module`).
    module: bool,
    /// Flag `movablekeys`: the keys' positions depend on the arguments. Without key specifications (Redis 6) and
    /// without a grammar of the relay's own, such a command's keys cannot be found.
    movable: bool,
    /// `specs` are Redis 6's (first, last, step), not key specifications.
    legacy: bool,
    grammar: Option<Grammar>,
    /// Set when its keys are always the one argument at a fixed place, whatever the others: what
    /// [`KeyRoom`] remembers.
    one_key: Option<OneKey>,
}

impl Entry {
    /// The one key of a command with a single key specification that begins at a fixed index and ends there, no
    /// grammar of its own, no subcommands and no movable keys (`ZADD`, `SET`, `HSET`…). With at least `index + 1`
    /// arguments, [`resolve`] finds exactly that key; with fewer, the command is refused, and resolved as usual.
    fn one_key(&self) -> Option<OneKey> {
        if self.module || self.movable || self.grammar.is_some() || !self.subcommands.is_empty() {
            return None;
        }
        match self.specs.as_slice() {
            [KeySpec {
                begin: BeginSearch::Index(index),
                find: FindKeys::Range {
                    last_key: 0, step, ..
                },
                written,
                not_key: false,
                incomplete: false,
            }] if *index > 0 && *step > 0 => Some(OneKey {
                index: *index,
                written: *written,
            }),
            _ => None,
        }
    }
}

/// Key positions of every command Redis knows.
#[derive(Debug, Clone, Default)]
pub struct CommandTable {
    commands: NameMap<Entry>,
    /// This table's own number, for [`KeyRoom`].
    id: u64,
}

/// What [`CommandTable::find_keys`] keeps between commands, so that finding the keys of one allocates nothing: the
/// link finds them for every command it reads.
#[derive(Debug, Default)]
pub struct KeyRoom {
    roles: Vec<Role>,
    keys: Vec<Key>,
    /// The last command looked up whose one key is at a fixed place: a replication stream repeats a few commands
    /// (a collector's `ZADD`s), and comparing a name with the last one's costs a few instructions where hashing and
    /// looking it up costs tens, on every command the link reads.
    last: Option<LastCommand>,
}

/// Longest command name [`KeyRoom`] remembers: every name Redis defines fits.
const LAST_NAME_ROOM: usize = 24;

/// A command [`KeyRoom`] remembers, and the table it was found in.
#[derive(Debug, Clone, Copy)]
struct LastCommand {
    table: u64,
    name: [u8; LAST_NAME_ROOM],
    len: usize,
    key: OneKey,
}

/// The one key of a command whose key is always the argument at `index` (when it has that many arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OneKey {
    index: usize,
    written: bool,
}

/// Tells tables apart, so a [`KeyRoom`] remembers a command for the table that described it only.
static TABLE_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// [`CommandKeys`], with the known keys left in a [`KeyRoom`].
#[derive(Debug, PartialEq, Eq)]
pub enum FoundKeys<'r> {
    None,
    Known(&'r [Key]),
    Unresolved {
        written: Option<Vec<usize>>,
        why: &'static str,
    },
}

/// The entry `name` looks up in `map`, whatever its case.
fn lookup<'m, V>(map: &'m NameMap<V>, name: &[u8]) -> Option<&'m V> {
    // Most commands have no subcommands: their second argument (a key) need not be hashed.
    if map.is_empty() {
        return None;
    }
    let mut room = [0u8; NAME_ROOM];
    match room.get_mut(..name.len()) {
        Some(lower) => {
            lower.copy_from_slice(name);
            lower.make_ascii_lowercase();
            map.get(&*lower)
        }
        None => map.get(&name.to_ascii_lowercase()),
    }
}

/// One key of a command: its index among the arguments, and whether the command may write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub index: usize,
    pub written: bool,
}

/// What the filter needs to know about a command's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandKeys {
    /// It names no key of the keyspace, so it changes no window and no browser needs it: a keyless command
    /// (`PING`, `PUBLISH`, `FUNCTION LOAD`), a shard channel (`SPUBLISH`), a module's command, or a command the
    /// table does not know.
    None,
    /// Every key it names, in argument order: each argument that is a key once (a name given twice, twice).
    Known(Vec<Key>),
    /// Not every key it names can be found or judged: it must be withheld. `written` are the keys it may have
    /// written (arguments that are keys, never other arguments, whose text must not leave), or `None` when they
    /// cannot be told: a script (`EVAL`, `FCALL`) may write keys it names nowhere, a specification that cannot be
    /// followed may hide written keys anywhere. Then no window of its database can be trusted after it.
    Unresolved {
        written: Option<Vec<usize>>,
        why: &'static str,
    },
}

impl CommandTable {
    /// Asks Redis for its commands. Routing depends on the answer: without it a multi-key command could be judged
    /// by one of its keys only (`MSET perf:a 1 secret:b 2` by `perf:a`), so a link that cannot read `COMMAND` (an
    /// ACL user without it) does not stream at all, and retries.
    pub async fn fetch(client: &redis::RedisResult<redis::Client>) -> redis::RedisResult<Self> {
        let client = client.as_ref().map_err(Clone::clone)?;
        // `COMMAND`'s reply is a few hundred kilobytes: more than the default 500 ms on a loaded primary.
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(std::time::Duration::from_secs(10)));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let reply = redis::cmd("COMMAND")
            .query_async::<Value>(&mut conn)
            .await?;
        let table = Self::from_command_reply(&reply);
        tracing::debug!(commands = table.len(), "command table loaded");
        Ok(table)
    }

    /// Builds the table from the reply to `COMMAND`.
    pub fn from_command_reply(reply: &Value) -> Self {
        let mut commands = NameMap::default();
        if let Value::Array(entries) = reply {
            for entry in entries {
                if let Some((name, mut parsed)) = parse_entry(entry) {
                    parsed.grammar = Grammar::of(&name);
                    parsed.one_key = parsed.one_key();
                    commands.insert(name, parsed);
                }
            }
        }
        CommandTable {
            commands,
            id: TABLE_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// Whether Redis described no command (then no command has keys, and no keyed frame reaches a browser).
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// Whether `args` is a module's command or one this table does not know: what it writes cannot be told.
    pub fn unfollowed(&self, args: &[&[u8]]) -> bool {
        args.first()
            .is_some_and(|name| lookup(&self.commands, name).is_none_or(|entry| entry.module))
    }

    /// The keys of the command `args` (`args[0]` its name), for judging it against `--allow`.
    pub fn keys(&self, args: &[&[u8]]) -> CommandKeys {
        match self.find_keys(args, &mut KeyRoom::default()) {
            FoundKeys::None => CommandKeys::None,
            FoundKeys::Known(keys) => CommandKeys::Known(keys.to_vec()),
            FoundKeys::Unresolved { written, why } => CommandKeys::Unresolved { written, why },
        }
    }

    /// The one key of the command named `name` (its argument index, and whether the command writes it), when the
    /// table says it is always that argument whatever the others (`ZADD`, `SET`, `HSET`…; see `Entry::one_key`):
    /// what the link's framing fast path indexes a command of that name by, without looking it up again.
    pub fn one_key(&self, name: &[u8]) -> Option<(usize, bool)> {
        let entry = lookup(&self.commands, name)?;
        entry
            .one_key
            .filter(|_| !entry.module)
            .map(|key| (key.index, key.written))
    }

    /// [`CommandTable::keys`], the known keys left in `room`: no allocation for a command its key specifications
    /// resolve (all but the few read by their own grammar, and those withheld).
    pub fn find_keys<'r>(&self, args: &[&[u8]], room: &'r mut KeyRoom) -> FoundKeys<'r> {
        let Some(name) = args.first() else {
            return FoundKeys::None;
        };
        if let Some(last) = room.last.filter(|last| {
            last.table == self.id
                && last.key.index < args.len()
                && name.eq_ignore_ascii_case(&last.name[..last.len])
        }) {
            room.keys.clear();
            room.keys.push(Key {
                index: last.key.index,
                written: last.key.written,
            });
            return FoundKeys::Known(&room.keys);
        }
        let Some(mut entry) = lookup(&self.commands, name) else {
            return FoundKeys::None;
        };
        if entry.module {
            return FoundKeys::None;
        }
        if let Some(key) = entry.one_key.filter(|_| name.len() <= LAST_NAME_ROOM) {
            let mut last = LastCommand {
                table: self.id,
                name: [0; LAST_NAME_ROOM],
                len: name.len(),
                key,
            };
            last.name[..name.len()].copy_from_slice(name);
            room.last = Some(last);
        }
        if let Some(sub) = args.get(1).and_then(|s| lookup(&entry.subcommands, s)) {
            entry = sub;
        }
        let by_grammar = match entry.grammar {
            Some(Grammar::Sort) => sort_keys(args),
            Some(Grammar::GeoRadius { options_from }) => georadius_keys(args, options_from),
            Some(Grammar::Migrate) => migrate_keys(args),
            Some(Grammar::Script { writes }) => CommandKeys::Unresolved {
                written: (!writes).then(Vec::new),
                why: "a script may touch keys it does not declare, and its arguments may name them",
            },
            None if entry.movable && (entry.legacy || entry.specs.is_empty()) => {
                CommandKeys::Unresolved {
                    written: None,
                    why: "movable keys without a key specification",
                }
            }
            None if !entry.specs.is_empty() && entry.specs.iter().all(|s| s.not_key) => {
                CommandKeys::None
            }
            None => return resolve(&entry.specs, args, room),
        };
        match by_grammar {
            CommandKeys::None => FoundKeys::None,
            CommandKeys::Known(keys) => {
                room.keys = keys;
                FoundKeys::Known(&room.keys)
            }
            CommandKeys::Unresolved { written, why } => FoundKeys::Unresolved { written, why },
        }
    }
}

/// What one argument is to a command, as its specifications found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Argument,
    Read,
    Written,
}

/// Why a specification's keys were not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unfound {
    /// The arguments do not fit it (a count that is not a number, keys past the arguments…): Redis refuses such a
    /// command, which then wrote nothing.
    Refused(&'static str),
    /// The specification cannot be followed (Redis calls it `unknown`, or `incomplete`): its keys may be anywhere.
    Unknown(&'static str),
}

/// The keys `specs` find in `args`, every one of them, in time linear in the arguments.
fn resolve<'r>(specs: &[KeySpec], args: &[&[u8]], room: &'r mut KeyRoom) -> FoundKeys<'r> {
    let roles = &mut room.roles;
    roles.clear();
    roles.resize(args.len(), Role::Argument);
    let mut why = None;
    // Whether a specification that may write keys could not be followed: which keys it wrote is then not known.
    let mut hidden_writes = false;
    for spec in specs {
        let role = if spec.written {
            Role::Written
        } else {
            Role::Read
        };
        let found = spec.positions(args).and_then(|positions| {
            for i in positions {
                roles[i] = roles[i].max(role);
            }
            if spec.incomplete {
                Err(Unfound::Unknown("an incomplete key specification"))
            } else {
                Ok(())
            }
        });
        match found {
            Ok(()) => {}
            Err(Unfound::Refused(reason)) => why = why.or(Some(reason)),
            Err(Unfound::Unknown(reason)) => {
                why = why.or(Some(reason));
                hidden_writes |= spec.written;
            }
        }
    }
    let Some(why) = why else {
        room.keys.clear();
        room.keys.extend(
            roles
                .iter()
                .enumerate()
                .filter(|(_, r)| **r != Role::Argument)
                .map(|(index, r)| Key {
                    index,
                    written: *r == Role::Written,
                }),
        );
        return FoundKeys::Known(&room.keys);
    };
    let written = (!hidden_writes).then(|| {
        roles
            .iter()
            .enumerate()
            .filter(|(_, r)| **r == Role::Written)
            .map(|(i, _)| i)
            .collect()
    });
    FoundKeys::Unresolved { written, why }
}

impl KeySpec {
    /// The positions of this specification's keys in `args`, as Redis finds them (`getKeysUsingKeySpecs`), or why
    /// they cannot be found. A keyword that is absent means no key: the keyword is optional.
    fn positions(
        &self,
        args: &[&[u8]],
    ) -> Result<std::iter::StepBy<std::ops::Range<usize>>, Unfound> {
        let argc = args.len();
        let none = Ok((0..0).step_by(1));
        let first = match &self.begin {
            BeginSearch::Index(i) => *i,
            BeginSearch::Keyword {
                keyword,
                start_from,
            } => {
                // Redis searches from `start_from` up to the argument before the last, or from `argc + start_from`
                // down to the second argument.
                let found = if *start_from > 0 {
                    (*start_from as usize..argc.saturating_sub(1))
                        .find(|&i| args[i].eq_ignore_ascii_case(keyword))
                } else {
                    let from = argc as i64 + start_from;
                    (2..=from.min(argc as i64 - 1))
                        .rev()
                        .find(|&i| args[i as usize].eq_ignore_ascii_case(keyword))
                        .map(|i| i as usize)
                };
                match found {
                    Some(i) => i + 1,
                    None => return none,
                }
            }
            BeginSearch::Unknown => {
                return Err(Unfound::Unknown("a key specification Redis calls unknown"))
            }
        };
        if first == 0 || first >= argc {
            return Err(Unfound::Refused("a key position past the arguments"));
        }
        let (first, last, step) = match self.find {
            FindKeys::Range {
                last_key,
                step,
                limit,
            } => {
                let last = if last_key >= 0 {
                    first as i64 + last_key
                } else if limit > 1 {
                    let rest = argc - first;
                    if !rest.is_multiple_of(limit) {
                        return Err(Unfound::Refused(
                            "keys and their arguments that do not pair up",
                        ));
                    }
                    (first + rest / limit) as i64 + last_key
                } else {
                    argc as i64 + last_key
                };
                (first, last, step)
            }
            FindKeys::KeyNum {
                count_at,
                first_key,
                step,
            } => {
                let count = args
                    .get(first + count_at)
                    .and_then(|c| std::str::from_utf8(c).ok()?.parse::<u64>().ok())
                    .ok_or(Unfound::Refused("a key count that is not a number"))?;
                let start = first + first_key;
                if count == 0 {
                    return none;
                }
                // Within the arguments, so the arithmetic below cannot overflow.
                let span = count
                    .checked_sub(1)
                    .and_then(|c| c.checked_mul(step.max(1) as u64))
                    .filter(|&s| s < argc as u64)
                    .ok_or(Unfound::Refused("a key count past the arguments"))?;
                (start, (start as u64 + span) as i64, step)
            }
            FindKeys::Unknown => {
                return Err(Unfound::Unknown("a key specification Redis calls unknown"))
            }
        };
        if step == 0 {
            return Err(Unfound::Unknown("a key step of 0"));
        }
        if last < first as i64 || last >= argc as i64 || first >= argc {
            return Err(Unfound::Refused("a key position past the arguments"));
        }
        Ok((first..last as usize + 1).step_by(step))
    }
}

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// `SORT key [BY pattern] [LIMIT offset count] [GET pattern …] [ASC|DESC] [ALPHA] [STORE destination]`, read as
/// Redis's `sortCommand` reads it. A `BY` or `GET` pattern (other than `GET #`, the element itself) makes Redis
/// read keys named after the values it sorts: they cannot be judged, so the command is withheld and only its
/// destination, the one key it writes, is made stale. Every `STORE` argument is judged; Redis writes the last.
fn sort_keys(args: &[&[u8]]) -> CommandKeys {
    let argc = args.len();
    if argc < 2 {
        return refused(&[], "SORT without a key");
    }
    let mut keys = vec![Key {
        index: 1,
        written: false,
    }];
    let mut patterns = false;
    let mut j = 2;
    while j < argc {
        let left = argc - j - 1;
        let arg = args[j];
        if is(arg, "asc") || is(arg, "desc") || is(arg, "alpha") {
        } else if is(arg, "limit") && left >= 2 {
            let number = |a: &[u8]| std::str::from_utf8(a).is_ok_and(|a| a.parse::<i64>().is_ok());
            if !number(args[j + 1]) || !number(args[j + 2]) {
                return refused(&keys, "SORT … LIMIT without two numbers");
            }
            j += 2;
        } else if is(arg, "store") && left >= 1 {
            keys.push(Key {
                index: j + 1,
                written: true,
            });
            j += 1;
        } else if (is(arg, "by") || is(arg, "get")) && left >= 1 {
            patterns |= !(is(arg, "get") && args[j + 1] == b"#");
            j += 1;
        } else {
            return refused(&keys, "SORT with an option Redis would refuse");
        }
        j += 1;
    }
    if patterns {
        return CommandKeys::Unresolved {
            written: Some(keys.iter().filter(|k| k.written).map(|k| k.index).collect()),
            why: "SORT … BY/GET patterns name keys derived from the values sorted",
        };
    }
    CommandKeys::Known(keys)
}

/// A command Redis would have refused, so it wrote nothing; withheld all the same, with the keys found before the
/// refusal made stale, should Redis read it otherwise.
fn refused(keys: &[Key], why: &'static str) -> CommandKeys {
    CommandKeys::Unresolved {
        written: Some(keys.iter().filter(|k| k.written).map(|k| k.index).collect()),
        why,
    }
}

/// `MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH password | AUTH2 user password] [KEYS key …]`, read
/// as Redis's `migrateCommand` reads it: always withheld (it names a host and may carry a password, which must
/// not leave), its keys (which it deletes, without `COPY`) made stale. Redis propagates the deletions, not
/// `MIGRATE`.
fn migrate_keys(args: &[&[u8]]) -> CommandKeys {
    let argc = args.len();
    let unknown = CommandKeys::Unresolved {
        written: None,
        why: "a MIGRATE Redis would refuse",
    };
    if argc < 6 {
        return unknown;
    }
    let mut keys = 3..4;
    let mut j = 6;
    while j < argc {
        let more = argc - 1 - j;
        let arg = args[j];
        if is(arg, "copy") || is(arg, "replace") {
        } else if is(arg, "auth") && more >= 1 {
            j += 1;
        } else if is(arg, "auth2") && more >= 2 {
            j += 2;
        } else if is(arg, "keys") && args[3].is_empty() {
            keys = j + 1..argc;
            break;
        } else {
            return unknown;
        }
        j += 1;
    }
    CommandKeys::Unresolved {
        written: Some(keys.collect()),
        why: "MIGRATE names a host and may carry a password",
    }
}

/// `GEORADIUS key longitude latitude radius unit [options]` (`GEORADIUSBYMEMBER key member radius unit …`), read
/// as Redis's `georadiusGeneric` reads its options: every `STORE`/`STOREDIST` argument is a key it may write (Redis
/// writes the last; its key specification finds only the first).
fn georadius_keys(args: &[&[u8]], options_from: usize) -> CommandKeys {
    let argc = args.len();
    if argc < options_from {
        return refused(&[], "GEORADIUS with too few arguments");
    }
    let mut keys = vec![Key {
        index: 1,
        written: false,
    }];
    let mut i = options_from;
    while i < argc {
        let arg = args[i];
        let takes_value = i + 1 < argc;
        if ["withdist", "withhash", "withcoord", "any", "asc", "desc"]
            .iter()
            .any(|w| is(arg, w))
        {
        } else if is(arg, "count") && takes_value {
            i += 1;
        } else if (is(arg, "store") || is(arg, "storedist")) && takes_value {
            keys.push(Key {
                index: i + 1,
                written: true,
            });
            i += 1;
        } else {
            return refused(&keys, "GEORADIUS with an option Redis would refuse");
        }
        i += 1;
    }
    CommandKeys::Known(keys)
}

fn parse_entry(entry: &Value) -> Option<(Vec<u8>, Entry)> {
    let Value::Array(fields) = entry else {
        return None;
    };
    let name = text(fields.first()?)?.to_ascii_lowercase();
    let int = |i: usize| match fields.get(i) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    };
    let flags: Vec<Vec<u8>> = match fields.get(2) {
        Some(Value::Array(flags) | Value::Set(flags)) => flags.iter().filter_map(text).collect(),
        _ => Vec::new(),
    };
    let flag = |name: &str| flags.iter().any(|f| is(f, name));
    let mut specs: Vec<KeySpec> = match fields.get(8) {
        Some(Value::Array(specs)) => specs.iter().map(parse_key_spec).collect(),
        _ => Vec::new(),
    };
    // Redis 6 has no key specifications: fall back to (first, last, step), and to the command's flags.
    let legacy = fields.len() <= 8;
    if legacy {
        if let (Some(first), Some(last), Some(step)) = (int(3), int(4), int(5)) {
            if first > 0 {
                specs.push(KeySpec {
                    begin: BeginSearch::Index(first as usize),
                    find: FindKeys::Range {
                        last_key: if last < 0 { last } else { last - first },
                        step: step.max(1) as usize,
                        limit: 0,
                    },
                    written: !flag("readonly"),
                    not_key: false,
                    incomplete: false,
                });
            }
        }
    }
    let subcommands = match fields.get(9) {
        Some(Value::Array(subs)) => subs
            .iter()
            .filter_map(parse_entry)
            .map(|(full, entry)| {
                // Subcommands are named `parent|sub`.
                let sub = full.rsplit(|&b| b == b'|').next().unwrap_or(&full).to_vec();
                (sub, entry)
            })
            .collect(),
        _ => NameMap::default(),
    };
    Some((
        name,
        Entry {
            specs,
            subcommands,
            module: flag("module"),
            movable: flag("movablekeys"),
            legacy,
            grammar: None,
            one_key: None,
        },
    ))
}

/// A key spec: `flags …, begin_search {type, spec}, find_keys {type, spec}` as a flat array or a map. A spec this
/// relay cannot read is kept as unknown, so that the command is withheld rather than judged without it.
fn parse_key_spec(spec: &Value) -> KeySpec {
    let unknown = KeySpec {
        begin: BeginSearch::Unknown,
        find: FindKeys::Unknown,
        written: true,
        not_key: false,
        incomplete: false,
    };
    let Some(fields) = pairs(spec) else {
        return unknown;
    };
    let flags: Vec<Vec<u8>> = match field(&fields, "flags") {
        Some(Value::Array(flags) | Value::Set(flags)) => flags.iter().filter_map(text).collect(),
        _ => Vec::new(),
    };
    let flag = |name: &str| flags.iter().any(|f| is(f, name));
    KeySpec {
        begin: parse_begin(&fields).unwrap_or(BeginSearch::Unknown),
        find: parse_find(&fields).unwrap_or(FindKeys::Unknown),
        written: !flag("RO"),
        not_key: flag("not_key"),
        incomplete: flag("incomplete"),
    }
}

fn number(f: &[(Vec<u8>, &Value)], name: &str) -> Option<i64> {
    match field(f, name) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    }
}

fn parse_begin(fields: &[(Vec<u8>, &Value)]) -> Option<BeginSearch> {
    let begin = pairs(field(fields, "begin_search")?)?;
    let spec = pairs(field(&begin, "spec")?)?;
    Some(match text(field(&begin, "type")?)?.as_slice() {
        b"index" => BeginSearch::Index(usize::try_from(number(&spec, "index")?).ok()?),
        b"keyword" => BeginSearch::Keyword {
            keyword: text(field(&spec, "keyword")?)?.to_ascii_uppercase(),
            start_from: number(&spec, "startfrom")?,
        },
        _ => return None,
    })
}

fn parse_find(fields: &[(Vec<u8>, &Value)]) -> Option<FindKeys> {
    let find = pairs(field(fields, "find_keys")?)?;
    let spec = pairs(field(&find, "spec")?)?;
    Some(match text(field(&find, "type")?)?.as_slice() {
        b"range" => FindKeys::Range {
            last_key: number(&spec, "lastkey")?,
            step: usize::try_from(number(&spec, "keystep")?).ok()?,
            limit: usize::try_from(number(&spec, "limit")?).ok()?,
        },
        b"keynum" => FindKeys::KeyNum {
            count_at: usize::try_from(number(&spec, "keynumidx")?).ok()?,
            first_key: usize::try_from(number(&spec, "firstkey")?).ok()?,
            step: usize::try_from(number(&spec, "keystep")?).ok()?,
        },
        _ => return None,
    })
}

fn text(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

/// A RESP2 flat array of name/value pairs, or a RESP3 map, as (name, value) pairs.
fn pairs(value: &Value) -> Option<Vec<(Vec<u8>, &Value)>> {
    match value {
        Value::Array(items) => items
            .chunks_exact(2)
            .map(|kv| Some((text(&kv[0])?, &kv[1])))
            .collect(),
        Value::Map(items) => items.iter().map(|(k, v)| Some((text(k)?, v))).collect(),
        _ => None,
    }
}

fn field<'a>(pairs: &[(Vec<u8>, &'a Value)], name: &str) -> Option<&'a Value> {
    pairs
        .iter()
        .find(|(k, _)| k == name.as_bytes())
        .map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn spec(flags: &[&str], begin: (&str, Value), find: (&str, Value)) -> Value {
        Value::Array(vec![
            bulk("flags"),
            Value::Array(
                flags
                    .iter()
                    .map(|f| Value::SimpleString(f.to_string()))
                    .collect(),
            ),
            bulk("begin_search"),
            Value::Array(vec![bulk("type"), bulk(begin.0), bulk("spec"), begin.1]),
            bulk("find_keys"),
            Value::Array(vec![bulk("type"), bulk(find.0), bulk("spec"), find.1]),
        ])
    }

    fn kv(items: &[(&str, i64)]) -> Value {
        Value::Array(
            items
                .iter()
                .flat_map(|(k, v)| [bulk(k), Value::Int(*v)])
                .collect(),
        )
    }

    fn entry(name: &str, flags: &[&str], specs: Vec<Value>) -> Value {
        Value::Array(vec![
            bulk(name),
            Value::Int(-2),
            Value::Array(
                flags
                    .iter()
                    .map(|f| Value::SimpleString(f.to_string()))
                    .collect(),
            ),
            Value::Int(0),
            Value::Int(0),
            Value::Int(0),
            Value::Array(vec![]),
            Value::Array(vec![]),
            Value::Array(specs),
            Value::Array(vec![]),
        ])
    }

    fn range(last: i64, step: i64, limit: i64) -> (&'static str, Value) {
        (
            "range",
            kv(&[("lastkey", last), ("keystep", step), ("limit", limit)]),
        )
    }

    fn index(i: i64) -> (&'static str, Value) {
        ("index", kv(&[("index", i)]))
    }

    fn keyword(word: &str, from: i64) -> (&'static str, Value) {
        (
            "keyword",
            Value::Array(vec![
                bulk("keyword"),
                bulk(word),
                bulk("startfrom"),
                Value::Int(from),
            ]),
        )
    }

    fn keynum(at: i64, first: i64, step: i64) -> (&'static str, Value) {
        (
            "keynum",
            kv(&[("keynumidx", at), ("firstkey", first), ("keystep", step)]),
        )
    }

    fn unknown() -> (&'static str, Value) {
        ("unknown", Value::Array(vec![]))
    }

    /// The shapes Redis 7.0.15 reports for these commands (`COMMAND INFO …`).
    fn table() -> CommandTable {
        CommandTable::from_command_reply(&Value::Array(vec![
            entry(
                "zadd",
                &["write"],
                vec![spec(&["RW"], index(1), range(0, 1, 0))],
            ),
            entry(
                "mset",
                &["write"],
                vec![spec(&["OW"], index(1), range(-1, 2, 0))],
            ),
            entry(
                "del",
                &["write"],
                vec![spec(&["RM"], index(1), range(-1, 1, 0))],
            ),
            entry(
                "rename",
                &["write"],
                vec![
                    spec(&["RW", "access", "delete"], index(1), range(0, 1, 0)),
                    spec(&["OW", "update"], index(2), range(0, 1, 0)),
                ],
            ),
            entry(
                "xread",
                &["readonly", "movablekeys"],
                vec![spec(&["RO"], keyword("STREAMS", 1), range(-1, 1, 2))],
            ),
            entry(
                "zunionstore",
                &["write", "movablekeys"],
                vec![
                    spec(&["OW"], index(1), range(0, 1, 0)),
                    spec(&["RO"], index(2), keynum(0, 1, 1)),
                ],
            ),
            entry(
                "sort",
                &["write", "movablekeys"],
                vec![
                    spec(&["RO"], index(1), range(0, 1, 0)),
                    spec(&["RO"], unknown(), unknown()),
                    spec(&["OW"], unknown(), unknown()),
                ],
            ),
            entry(
                "georadius",
                &["write", "movablekeys"],
                vec![
                    spec(&["RO"], index(1), range(0, 1, 0)),
                    spec(&["OW"], keyword("STORE", 6), range(0, 1, 0)),
                    spec(&["OW"], keyword("STOREDIST", 6), range(0, 1, 0)),
                ],
            ),
            entry(
                "migrate",
                &["write", "movablekeys"],
                vec![
                    spec(&["RW"], index(3), range(0, 1, 0)),
                    spec(&["RW", "incomplete"], keyword("KEYS", -2), range(-1, 1, 0)),
                ],
            ),
            entry(
                "eval",
                &["noscript", "movablekeys"],
                vec![spec(&["RW"], index(2), keynum(0, 1, 1))],
            ),
            entry(
                "spublish",
                &["pubsub"],
                vec![spec(&["not_key"], index(1), range(0, 1, 0))],
            ),
            entry(
                "frob",
                &["write"],
                vec![
                    spec(&["RO"], index(1), range(0, 1, 0)),
                    spec(&["OW"], unknown(), unknown()),
                ],
            ),
            entry(
                "peek",
                &["readonly"],
                vec![
                    spec(&["OW"], index(1), range(0, 1, 0)),
                    spec(&["RO"], unknown(), unknown()),
                ],
            ),
            entry("ping", &["fast"], vec![]),
        ]))
    }

    fn args<'a>(words: &[&'a str]) -> Vec<&'a [u8]> {
        words.iter().map(|a| a.as_bytes()).collect()
    }

    /// The keys `t` finds, as (key, written).
    fn keys<'a>(t: &CommandTable, words: &[&'a str]) -> Vec<(&'a str, bool)> {
        match t.keys(&args(words)) {
            CommandKeys::Known(keys) => keys.iter().map(|k| (words[k.index], k.written)).collect(),
            other => panic!("{words:?}: {other:?}"),
        }
    }

    /// What `t` makes of a command it must withhold: the keys it may have written.
    fn withheld<'a>(t: &CommandTable, words: &[&'a str]) -> Vec<&'a str> {
        match t.keys(&args(words)) {
            CommandKeys::Unresolved {
                written: Some(written),
                ..
            } => written.iter().map(|&i| words[i]).collect(),
            other => panic!("{words:?} was not withheld with its written keys: {other:?}"),
        }
    }

    /// Whether `t` withholds a command that may have written any key.
    fn withheld_writing_anything(t: &CommandTable, words: &[&str]) -> bool {
        matches!(
            t.keys(&args(words)),
            CommandKeys::Unresolved { written: None, .. }
        )
    }

    #[test]
    fn key_specs_find_every_key_and_whether_it_is_written() {
        let t = table();
        assert_eq!(keys(&t, &["ZADD", "z", "1", "m"]), [("z", true)]);
        assert_eq!(
            keys(&t, &["mset", "a", "1", "b", "2"]),
            [("a", true), ("b", true)]
        );
        assert_eq!(
            keys(&t, &["RENAME", "secret:x", "perf:y"]),
            [("secret:x", true), ("perf:y", true)]
        );
        assert_eq!(
            keys(
                &t,
                &["XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"]
            ),
            [("s1", false), ("s2", false)]
        );
        assert_eq!(
            keys(
                &t,
                &["ZUNIONSTORE", "dst", "2", "a", "b", "WEIGHTS", "1", "2"]
            ),
            [("dst", true), ("a", false), ("b", false)]
        );
        assert_eq!(
            keys(&t, &["ZUNIONSTORE", "a", "1", "a"]),
            [("a", true), ("a", false)],
            "each place a key is named"
        );
        assert_eq!(t.keys(&args(&["PING"])), CommandKeys::Known(vec![]));
        assert_eq!(t.keys(&args(&["NOSUCHCOMMAND", "x"])), CommandKeys::None);
    }

    #[test]
    fn every_key_is_found_however_many() {
        let t = table();
        let mut mset = vec!["MSET".to_string()];
        for i in 0..5000 {
            mset.push(format!("perf:k{i}"));
            mset.push("v".into());
        }
        mset.push("secret:big".into());
        mset.push("SECRETBIG".into());
        let words: Vec<&str> = mset.iter().map(String::as_str).collect();
        let found = keys(&t, &words);
        assert_eq!(found.len(), 5001);
        assert_eq!(found.last(), Some(&("secret:big", true)));
        let mut zunion = vec!["ZUNIONSTORE", "perf:z", "4097"];
        zunion.extend(std::iter::repeat_n("perf:a", 4096));
        zunion.push("secret:w");
        let found = keys(&t, &zunion);
        assert_eq!(found.len(), 4098);
        assert_eq!(found[4097], ("secret:w", false));
    }

    #[test]
    fn sort_is_read_by_its_own_grammar() {
        let t = table();
        assert_eq!(
            keys(&t, &["SORT", "u:src", "ALPHA", "STORE", "w:sorted"]),
            [("u:src", false), ("w:sorted", true)]
        );
        assert_eq!(
            keys(
                &t,
                &["SORT", "l", "LIMIT", "0", "5", "GET", "#", "DESC", "STORE", "a", "STORE", "b"]
            ),
            [("l", false), ("a", true), ("b", true)],
            "every STORE is judged"
        );
        assert_eq!(
            withheld(
                &t,
                &[
                    "SORT",
                    "perf:list",
                    "BY",
                    "secret:w_*",
                    "GET",
                    "secret:o_*",
                    "STORE",
                    "perf:sorted"
                ]
            ),
            ["perf:sorted"],
            "patterns name keys derived from the values: withheld, the destination stale"
        );
        assert_eq!(
            withheld(&t, &["SORT", "perf:list", "BY", "nosort"]),
            Vec::<&str>::new()
        );
        assert_eq!(
            withheld(&t, &["SORT", "l", "STORE", "d", "STORE"]),
            ["d"],
            "refused by Redis: withheld, the keys found made stale"
        );
        assert!(withheld(&t, &["SORT", "l", "LIMIT", "x", "1"]).is_empty());
        assert!(withheld(&t, &["SORT"]).is_empty());
    }

    #[test]
    fn georadius_judges_every_store_where_its_specification_finds_the_first() {
        let t = table();
        let words = [
            "GEORADIUS",
            "perf:geo",
            "0",
            "0",
            "1",
            "km",
            "STORE",
            "perf:a",
            "COUNT",
            "3",
            "STOREDIST",
            "secret:b",
        ];
        assert_eq!(
            keys(&t, &words),
            [("perf:geo", false), ("perf:a", true), ("secret:b", true)]
        );
        assert_eq!(
            withheld(
                &t,
                &[
                    "GEORADIUS",
                    "perf:geo",
                    "0",
                    "0",
                    "1",
                    "km",
                    "STORE",
                    "a",
                    "FROB"
                ]
            ),
            ["a"]
        );
    }

    #[test]
    fn migrate_scripts_and_shard_channels() {
        let t = table();
        let migrate = [
            "MIGRATE", "h", "1", "", "0", "5", "COPY", "AUTH", "perf:pw", "KEYS", "perf:a",
            "perf:b",
        ];
        assert_eq!(
            withheld(&t, &migrate),
            ["perf:a", "perf:b"],
            "its keys, never its password"
        );
        assert_eq!(
            withheld(
                &t,
                &["MIGRATE", "h", "1", "perf:k", "0", "5", "AUTH2", "u", "p"]
            ),
            ["perf:k"]
        );
        assert!(withheld_writing_anything(
            &t,
            &["MIGRATE", "h", "1", "k", "0", "5", "KEYS", "a"]
        ));
        assert!(withheld_writing_anything(
            &t,
            &["EVAL", "return 1", "1", "perf:a", "secret:b"]
        ));
        assert_eq!(
            t.keys(&args(&["SPUBLISH", "perf:chan", "hello"])),
            CommandKeys::None
        );
    }

    #[test]
    fn keys_that_cannot_all_be_found_withhold_the_command() {
        let t = table();
        // A count past the arguments, or not a number: the keys it could not find are only read, so the
        // destination is all it wrote.
        assert_eq!(
            withheld(&t, &["ZUNIONSTORE", "dst", "99999999999", "a"]),
            ["dst"]
        );
        assert_eq!(withheld(&t, &["ZUNIONSTORE", "dst", "x"]), ["dst"]);
        // Streams and ids that do not pair up; keys past the arguments.
        assert_eq!(
            withheld(&t, &["XREAD", "STREAMS", "a", "b", "0"]),
            Vec::<&str>::new(),
            "read only: it wrote nothing"
        );
        assert_eq!(withheld(&t, &["ZADD"]), Vec::<&str>::new());
        // An unknown specification that may write: which keys it wrote is not known.
        assert!(withheld_writing_anything(&t, &["FROB", "a", "b"]));
        // An unknown specification of keys only read: the keys found are all it wrote.
        assert_eq!(withheld(&t, &["PEEK", "a", "b"]), ["a"]);
        assert_eq!(t.keys(&[]), CommandKeys::None);
    }

    #[test]
    fn redis_6_tables_use_first_last_step_and_withhold_movable_keys() {
        let legacy = |name: &str, flags: &[&str], first, last, step| {
            Value::Array(vec![
                bulk(name),
                Value::Int(-2),
                Value::Array(
                    flags
                        .iter()
                        .map(|f| Value::SimpleString(f.to_string()))
                        .collect(),
                ),
                Value::Int(first),
                Value::Int(last),
                Value::Int(step),
                Value::Array(vec![]),
            ])
        };
        let t = CommandTable::from_command_reply(&Value::Array(vec![
            legacy("mset", &["write"], 1, -1, 2),
            legacy("get", &["readonly"], 1, 1, 1),
            legacy("zunionstore", &["write", "movablekeys"], 0, 0, 0),
            legacy("frob", &["write", "movablekeys"], 1, 1, 1),
        ]));
        assert_eq!(
            keys(&t, &["MSET", "a", "1", "b", "2"]),
            [("a", true), ("b", true)]
        );
        assert_eq!(keys(&t, &["GET", "a"]), [("a", false)]);
        assert!(withheld_writing_anything(
            &t,
            &["ZUNIONSTORE", "d", "1", "s"]
        ));
        assert!(withheld_writing_anything(&t, &["FROB", "a", "b"]));
    }
}
