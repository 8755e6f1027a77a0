//! Where the keys of each command are, learned from the Redis being followed (`COMMAND`) at startup, so that
//! multi-key and module commands route to the right browsers without a table of our own going stale.
//!
//! Redis 7 describes key positions with key specifications: a *begin search* (a fixed index, or the argument after
//! a keyword such as `STREAMS`) and a *find keys* step (a range with a step and limit, or a count argument such as
//! `numkeys`). Redis 6 gives only (first, last, step), used when specifications are absent. Subcommands
//! (`OBJECT ENCODING`, `XGROUP CREATE`…) have their own entries.
//!
//! Module commands (flag `module`) are marked as such: the relay sends them to no browser. Their key
//! specifications describe what the module declared, not always what it writes (RediSearch 1.x's `FT.ADD` writes the
//! document's hash but declares only the index), so `--allow` could not judge them; and the assembler follows no
//! module command anyway.

use std::collections::HashMap;

use redis::Value;

mod streamed;
pub use streamed::{StreamedKeys, StreamedKeysFound, MAX_STREAMED_KEYS, MAX_STREAMED_KEY_LEN};

/// How the first key is found.
#[derive(Debug, Clone, PartialEq)]
enum BeginSearch {
    Index(usize),
    /// The argument after `keyword`, searched from `start_from` (negative: from the end, backwards).
    Keyword {
        keyword: Vec<u8>,
        start_from: i64,
    },
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
}

#[derive(Debug, Clone, PartialEq)]
struct KeySpec {
    begin: BeginSearch,
    find: FindKeys,
}

#[derive(Debug, Clone, Default)]
struct Entry {
    specs: Vec<KeySpec>,
    subcommands: HashMap<Vec<u8>, Entry>,
    /// A module's command (flag `module`).
    module: bool,
}

/// Key positions of every command Redis knows.
#[derive(Debug, Clone, Default)]
pub struct CommandTable {
    commands: HashMap<Vec<u8>, Entry>,
}

/// Most keys reported for one command; a command naming more is treated as touching everything (sent to every
/// session whose patterns allow any of the first ones, and to none it cannot judge).
const MAX_KEYS: usize = 4096;

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
        let mut commands = HashMap::new();
        if let Value::Array(entries) = reply {
            for entry in entries {
                if let Some((name, parsed)) = parse_entry(entry) {
                    commands.insert(name, parsed);
                }
            }
        }
        CommandTable { commands }
    }

    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// Whether Redis described no command (then no command has keys, and no keyed frame reaches a browser).
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// Whether `name` is a module's command, as `COMMAND` described it.
    pub fn is_module(&self, name: &[u8]) -> bool {
        self.commands
            .get(&name.to_ascii_lowercase())
            .is_some_and(|entry| entry.module)
    }

    /// Indices into `args` of the command's keys, in order. Commands the table does not know have none.
    pub fn key_indices(&self, args: &[&[u8]]) -> Vec<usize> {
        let Some(name) = args.first() else {
            return Vec::new();
        };
        let Some(mut entry) = self.commands.get(&name.to_ascii_lowercase()) else {
            return Vec::new();
        };
        if let Some(sub) = args
            .get(1)
            .and_then(|s| entry.subcommands.get(&s.to_ascii_lowercase()))
        {
            entry = sub;
        }
        let mut keys = Vec::new();
        for spec in &entry.specs {
            spec.keys(args, &mut keys);
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

impl KeySpec {
    fn keys(&self, args: &[&[u8]], out: &mut Vec<usize>) {
        let argc = args.len() as i64;
        let first = match &self.begin {
            BeginSearch::Index(i) => *i as i64,
            BeginSearch::Keyword {
                keyword,
                start_from,
            } => {
                let found = if *start_from >= 0 {
                    (*start_from..argc).find(|&i| args[i as usize].eq_ignore_ascii_case(keyword))
                } else {
                    (1..=argc + start_from)
                        .rev()
                        .find(|&i| args[i as usize].eq_ignore_ascii_case(keyword))
                };
                match found {
                    Some(i) => i + 1,
                    None => return,
                }
            }
        };
        if first <= 0 || first >= argc {
            return;
        }
        let (last, step) = match self.find {
            FindKeys::Range {
                last_key,
                step,
                limit,
            } => {
                let last = if last_key >= 0 {
                    first + last_key
                } else if limit > 1 {
                    first + (argc - first) / limit as i64 - 1
                } else {
                    argc + last_key
                };
                (last, step.max(1))
            }
            FindKeys::KeyNum {
                count_at,
                first_key,
                step,
            } => {
                let Some(count) = args
                    .get((first as usize) + count_at)
                    .and_then(|c| std::str::from_utf8(c).ok()?.parse::<i64>().ok())
                else {
                    return;
                };
                let start = first + first_key as i64;
                let step = step.max(1);
                // Redis rejected a count that overruns the arguments, but a corrupt stream should not panic.
                return push_range(
                    out,
                    start,
                    start + (count.clamp(0, MAX_KEYS as i64) - 1) * step as i64,
                    step,
                    argc,
                );
            }
        };
        push_range(out, first, last, step, argc);
    }
}

fn push_range(out: &mut Vec<usize>, first: i64, last: i64, step: usize, argc: i64) {
    let last = last.min(argc - 1);
    let mut i = first;
    while i <= last && i > 0 && out.len() < MAX_KEYS {
        out.push(i as usize);
        i += step as i64;
    }
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
    let mut specs: Vec<KeySpec> = match fields.get(8) {
        Some(Value::Array(specs)) => specs.iter().filter_map(parse_key_spec).collect(),
        _ => Vec::new(),
    };
    // Redis 6 has no key specifications: fall back to (first, last, step).
    if fields.len() <= 8 {
        if let (Some(first), Some(last), Some(step)) = (int(3), int(4), int(5)) {
            if first > 0 {
                specs.push(KeySpec {
                    begin: BeginSearch::Index(first as usize),
                    find: FindKeys::Range {
                        last_key: if last < 0 { last } else { last - first },
                        step: step.max(1) as usize,
                        limit: 0,
                    },
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
        _ => HashMap::new(),
    };
    let module = match fields.get(2) {
        Some(Value::Array(flags) | Value::Set(flags)) => flags
            .iter()
            .any(|f| text(f).is_some_and(|f| f.eq_ignore_ascii_case(b"module"))),
        _ => false,
    };
    Some((
        name,
        Entry {
            specs,
            subcommands,
            module,
        },
    ))
}

/// A key spec: `flags …, begin_search {type, spec}, find_keys {type, spec}` as a flat array or a map.
fn parse_key_spec(spec: &Value) -> Option<KeySpec> {
    let fields = pairs(spec)?;
    let begin = pairs(field(&fields, "begin_search")?)?;
    let find = pairs(field(&fields, "find_keys")?)?;
    let begin_spec = pairs(field(&begin, "spec")?)?;
    let find_spec = pairs(field(&find, "spec")?)?;
    let num = |f: &[(Vec<u8>, &Value)], name: &str| match field(f, name) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    };
    let begin = match text(field(&begin, "type")?)?.as_slice() {
        b"index" => BeginSearch::Index(usize::try_from(num(&begin_spec, "index")?).ok()?),
        b"keyword" => BeginSearch::Keyword {
            keyword: text(field(&begin_spec, "keyword")?)?.to_ascii_uppercase(),
            start_from: num(&begin_spec, "startfrom")?,
        },
        _ => return None,
    };
    let find = match text(field(&find, "type")?)?.as_slice() {
        b"range" => FindKeys::Range {
            last_key: num(&find_spec, "lastkey")?,
            step: usize::try_from(num(&find_spec, "keystep")?).ok()?,
            limit: usize::try_from(num(&find_spec, "limit")?).ok()?,
        },
        b"keynum" => FindKeys::KeyNum {
            count_at: usize::try_from(num(&find_spec, "keynumidx")?).ok()?,
            first_key: usize::try_from(num(&find_spec, "firstkey")?).ok()?,
            step: usize::try_from(num(&find_spec, "keystep")?).ok()?,
        },
        _ => return None,
    };
    Some(KeySpec { begin, find })
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

    fn spec(begin: (&str, Value), find: (&str, Value)) -> Value {
        Value::Array(vec![
            bulk("flags"),
            Value::Array(vec![]),
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

    fn entry(name: &str, specs: Vec<Value>) -> Value {
        Value::Array(vec![
            bulk(name),
            Value::Int(-2),
            Value::Array(vec![]),
            Value::Int(0),
            Value::Int(0),
            Value::Int(0),
            Value::Array(vec![]),
            Value::Array(vec![]),
            Value::Array(specs),
            Value::Array(vec![]),
        ])
    }

    /// The shapes Redis 7.0 reports for these commands.
    pub(super) fn table() -> CommandTable {
        let range = |last, step, limit| {
            (
                "range",
                kv(&[("lastkey", last), ("keystep", step), ("limit", limit)]),
            )
        };
        let index = |i| ("index", kv(&[("index", i)]));
        let streams = (
            "keyword",
            Value::Array(vec![
                bulk("keyword"),
                bulk("STREAMS"),
                bulk("startfrom"),
                Value::Int(1),
            ]),
        );
        let keynum = |at, first, step| {
            (
                "keynum",
                kv(&[("keynumidx", at), ("firstkey", first), ("keystep", step)]),
            )
        };
        CommandTable::from_command_reply(&Value::Array(vec![
            entry("zadd", vec![spec(index(1), range(0, 1, 0))]),
            entry("mset", vec![spec(index(1), range(-1, 2, 0))]),
            entry("del", vec![spec(index(1), range(-1, 1, 0))]),
            entry("xread", vec![spec(streams, range(-1, 1, 2))]),
            entry(
                "zunionstore",
                vec![
                    spec(index(1), range(0, 1, 0)),
                    spec(index(2), keynum(0, 1, 1)),
                ],
            ),
            entry("ping", vec![]),
        ]))
    }

    fn keys<'a>(t: &CommandTable, args: &[&'a str]) -> Vec<&'a str> {
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        t.key_indices(&bytes).into_iter().map(|i| args[i]).collect()
    }

    #[test]
    fn key_specs_find_every_key() {
        let t = table();
        assert_eq!(keys(&t, &["ZADD", "z", "1", "m"]), vec!["z"]);
        assert_eq!(keys(&t, &["mset", "a", "1", "b", "2"]), vec!["a", "b"]);
        assert_eq!(keys(&t, &["DEL", "a", "b", "c"]), vec!["a", "b", "c"]);
        assert_eq!(
            keys(
                &t,
                &["XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"]
            ),
            vec!["s1", "s2"]
        );
        assert_eq!(
            keys(
                &t,
                &["ZUNIONSTORE", "dst", "2", "a", "b", "WEIGHTS", "1", "2"]
            ),
            vec!["dst", "a", "b"]
        );
        assert!(keys(&t, &["PING"]).is_empty());
        assert!(keys(&t, &["NOSUCHCOMMAND", "x"]).is_empty());
    }

    #[test]
    fn malformed_arguments_never_panic() {
        let t = table();
        assert!(keys(&t, &["ZUNIONSTORE", "dst", "99999999999", "a"]).len() <= 2);
        assert_eq!(keys(&t, &["ZUNIONSTORE", "dst", "x"]), vec!["dst"]);
        assert!(keys(&t, &["XREAD", "COUNT"]).is_empty());
        assert!(keys(&t, &["ZADD"]).is_empty());
    }
}
