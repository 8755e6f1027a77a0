//! Random commands from Redis's own description of its commands: the replies of redis-server 7.0.15 to `COMMAND`
//! (key specifications, which the relay's filter reads) and `COMMAND DOCS` (each command's argument grammar,
//! written by hand in Redis's sources and independent of the key specifications), recorded in `../data` by
//! `scripts/record-command-table.sh`.
//!
//! Every command and subcommand with an argument grammar can be generated: keys where the grammar has a key (each
//! marked with whether its key specification writes it), `BY`/`GET` patterns where it has a pattern, and values
//! elsewhere, with repeated arguments now and then past 4,096 and `numkeys` counts that match. Keys, patterns and
//! shard channels come from [`Names`]; values never contain the word `secret`, so a test can tell whether anything
//! it must not see got through by looking for that word. Shared by `server/tests/filter.rs` (a property test) and
//! `fuzz/fuzz_targets/filter.rs`, which include this file.
#![allow(dead_code)] // Each includer uses its share.

use redis::Value;

pub const COMMAND_REPLY: &[u8] = include_bytes!("../data/redis-7.0.15-command.resp");
pub const COMMAND_DOCS_REPLY: &[u8] = include_bytes!("../data/redis-7.0.15-command-docs.resp");

/// Where the generator's choices come from: a seeded generator, or a fuzzer's input.
pub trait Choices {
    /// A number below `n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize;

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// A small xorshift generator, seeded by a property test.
pub struct Seeded(pub u64);

impl Choices for Seeded {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        if n == 0 {
            0
        } else {
            (self.0 % n as u64) as usize
        }
    }
}

/// Choices read off a fuzzer's input; past its end, zeros.
pub struct FromBytes<'a>(pub &'a [u8]);

impl Choices for FromBytes<'_> {
    fn below(&mut self, n: usize) -> usize {
        let (first, rest) = match self.0 {
            [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
            [a] => (usize::from(*a), &[][..]),
            [] => (0, &[][..]),
        };
        self.0 = rest;
        if n == 0 {
            0
        } else {
            first % n
        }
    }
}

/// What the generated arguments are drawn from.
pub struct Names {
    pub keys: Vec<Vec<u8>>,
    /// Keys the session wants and may see: what a long run of keys holds, before its last few.
    pub quiet: Vec<Vec<u8>>,
    pub patterns: Vec<Vec<u8>>,
    pub numbers: Vec<Vec<u8>>,
    pub values: Vec<Vec<u8>>,
}

impl Names {
    /// Keys a session watching `perf:*` and `secret:*` under `--allow perf:* u:*` wants and may see (`perf:`),
    /// may see but does not want (`u:`), and wants but may not see (`secret:`); patterns that reference keys of
    /// both kinds; numbers where the grammar wants one, as Redis would take them; values that look like keywords,
    /// numbers and allowed keys, never like a secret.
    pub fn standard() -> Self {
        let words = |w: &[&str]| w.iter().map(|w| w.as_bytes().to_vec()).collect();
        Names {
            keys: words(&[
                "perf:a", "perf:b", "perf:c", "u:src", "u:dst", "secret:a", "secret:b", "secret:w",
            ]),
            quiet: words(&["perf:a", "perf:b", "perf:c"]),
            patterns: words(&[
                "perf:w_*",
                "secret:w_*",
                "secret:o_*->f",
                "#",
                "nosort",
                "perf:h_*->f",
                "secret:x",
            ]),
            numbers: words(&["0", "1", "-1", "2", "10", "1.5", "1700000000"]),
            values: words(&[
                "0", "1", "-1", "2", "10", "1.5", "STORE", "BY", "GET", "KEYS", "STREAMS", "DB",
                "LIMIT", "#", "*", "", "hello", "perf:a", "$", "0-1",
            ]),
        }
    }
}

/// One argument of a command's grammar (`COMMAND DOCS`).
#[derive(Debug, Clone)]
struct Arg {
    name: String,
    kind: ArgKind,
    token: Option<Vec<u8>>,
    optional: bool,
    multiple: bool,
    multiple_token: bool,
}

#[derive(Debug, Clone)]
enum ArgKind {
    /// A key, and whether its key specification (`COMMAND`'s, by `key_spec_index`) may write it.
    Key {
        written: bool,
    },
    Pattern,
    /// A count of the keys that follow (`numkeys`).
    KeyCount,
    /// An integer or a time: a whole number.
    Integer,
    /// A double.
    Number,
    Value,
    PureToken,
    OneOf(Vec<Arg>),
    Block(Vec<Arg>),
}

/// A command (or subcommand) and its grammar.
#[derive(Debug, Clone)]
pub struct Syntax {
    /// `["ZADD"]`, `["OBJECT", "ENCODING"]`.
    pub name: Vec<Vec<u8>>,
    args: Vec<Arg>,
    /// Whether its grammar has a key anywhere.
    pub has_keys: bool,
}

/// A generated command: its arguments, and which of them are keys (index, written by its key specification).
#[derive(Debug, Clone)]
pub struct Generated {
    pub args: Vec<Vec<u8>>,
    pub keys: Vec<(usize, bool)>,
}

/// Every command and subcommand of the recorded `COMMAND DOCS`, with the write flags of `COMMAND`'s key
/// specifications.
pub fn catalog() -> Vec<Syntax> {
    let docs = redis::parse_redis_value(COMMAND_DOCS_REPLY).expect("the recorded COMMAND DOCS");
    let info = redis::parse_redis_value(COMMAND_REPLY).expect("the recorded COMMAND");
    let mut written = std::collections::HashMap::new();
    if let Value::Array(entries) = &info {
        for entry in entries {
            spec_flags(entry, &mut written);
        }
    }
    let mut out = Vec::new();
    for (name, doc) in pairs(&docs) {
        syntaxes(&name, doc, &written, &mut out);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// For each command (`name` or `parent|sub`), whether each of its key specifications may write (not `RO`).
fn spec_flags(entry: &Value, out: &mut std::collections::HashMap<String, Vec<bool>>) {
    let Value::Array(fields) = entry else { return };
    let Some(name) = fields.first().and_then(text) else {
        return;
    };
    let specs = match fields.get(8) {
        Some(Value::Array(specs)) => specs
            .iter()
            .map(|spec| {
                let flags = pairs(spec)
                    .into_iter()
                    .find(|(k, _)| k == "flags")
                    .map(|(_, v)| strings(v))
                    .unwrap_or_default();
                !flags.iter().any(|f| f == "RO")
            })
            .collect(),
        _ => Vec::new(),
    };
    out.insert(name.to_lowercase(), specs);
    if let Some(Value::Array(subs)) = fields.get(9) {
        for sub in subs {
            spec_flags(sub, out);
        }
    }
}

fn syntaxes(
    name: &str,
    doc: &Value,
    written: &std::collections::HashMap<String, Vec<bool>>,
    out: &mut Vec<Syntax>,
) {
    let fields = pairs(doc);
    let specs = written
        .get(&name.to_lowercase())
        .cloned()
        .unwrap_or_default();
    if let Some((_, subs)) = fields.iter().find(|(k, _)| k == "subcommands") {
        for (sub, doc) in pairs(subs) {
            syntaxes(&sub, doc, written, out);
        }
        return;
    }
    let args = match fields.iter().find(|(k, _)| k == "arguments") {
        Some((_, Value::Array(args))) => args.iter().map(|a| arg(a, &specs)).collect(),
        _ => Vec::new(),
    };
    let has_keys = args.iter().any(has_key);
    out.push(Syntax {
        name: name
            .split('|')
            .map(|w| w.to_uppercase().into_bytes())
            .collect(),
        args,
        has_keys,
    });
}

fn has_key(arg: &Arg) -> bool {
    match &arg.kind {
        ArgKind::Key { .. } => true,
        ArgKind::OneOf(args) | ArgKind::Block(args) => args.iter().any(has_key),
        _ => false,
    }
}

fn arg(value: &Value, specs: &[bool]) -> Arg {
    let fields = pairs(value);
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    let name = get("name").and_then(text).unwrap_or_default();
    let flags = get("flags").map(strings).unwrap_or_default();
    let subs = || match get("arguments") {
        Some(Value::Array(args)) => args.iter().map(|a| arg(a, specs)).collect(),
        _ => Vec::new(),
    };
    let kind = match get("type").and_then(text).as_deref() {
        Some("key") => {
            let spec = match get("key_spec_index") {
                Some(Value::Int(i)) => *i as usize,
                _ => 0,
            };
            ArgKind::Key {
                // A key whose specification is missing is taken as written: the stricter check.
                written: specs.get(spec).copied().unwrap_or(true),
            }
        }
        // A pattern that names keys (`SORT … BY`/`GET`), not one that matches fields or members (`HSCAN … MATCH`).
        Some("pattern") if get("key_spec_index").is_some() => ArgKind::Pattern,
        Some("integer") if name == "numkeys" => ArgKind::KeyCount,
        Some("integer" | "unix-time") => ArgKind::Integer,
        Some("double") => ArgKind::Number,
        Some("pure-token") => ArgKind::PureToken,
        Some("oneof") => ArgKind::OneOf(subs()),
        Some("block") => ArgKind::Block(subs()),
        // A shard channel is a name too: drawn from the keys, so that a secret one is looked for.
        Some("string") if name.contains("channel") => ArgKind::Pattern,
        _ => ArgKind::Value,
    };
    Arg {
        token: get("token").and_then(text).map(String::into_bytes),
        optional: flags.iter().any(|f| f == "optional"),
        multiple: flags.iter().any(|f| f == "multiple"),
        multiple_token: flags.iter().any(|f| f == "multiple_token"),
        name,
        kind,
    }
}

impl Syntax {
    /// A command of this syntax.
    pub fn generate(&self, names: &Names, choices: &mut impl Choices) -> Generated {
        let mut out = Generated {
            args: self.name.clone(),
            keys: Vec::new(),
        };
        let mut counts = Vec::new();
        generate_all(&self.args, names, choices, &mut out, &mut counts, false);
        out
    }
}

/// Where `numkeys` arguments wait for the count of the keys after them: (argument index, keys before it).
type KeyCounts = Vec<(usize, usize)>;

fn generate_all(
    args: &[Arg],
    names: &Names,
    choices: &mut impl Choices,
    out: &mut Generated,
    counts: &mut KeyCounts,
    quiet: bool,
) {
    // A block of keys then as many ids (`XREAD … STREAMS key … id …`) pairs its repeats.
    let mut repeats_of_last_keys = None;
    for arg in args {
        if arg.optional && choices.one_in(2) {
            continue;
        }
        let repeats = if !arg.multiple {
            1
        } else if let (Some(n), ArgKind::Value) = (repeats_of_last_keys, &arg.kind) {
            n
        } else {
            repeats(choices)
        };
        // A pure token is its token, once.
        let pure = matches!(arg.kind, ArgKind::PureToken);
        if arg.token.is_some() && !arg.multiple_token && !pure {
            out.args.push(arg.token.clone().unwrap_or_default());
        }
        for i in 0..repeats {
            if arg.multiple_token && !pure {
                out.args.push(arg.token.clone().unwrap_or_default());
            }
            // Past 4,096 repeats, what could leave comes last: a filter that judges only the first keys lets it out.
            let quiet = quiet || (repeats > 4096 && i + 3 < repeats);
            generate_one(arg, names, choices, out, counts, quiet);
        }
        repeats_of_last_keys =
            matches!(arg.kind, ArgKind::Key { .. } if arg.multiple).then_some(repeats);
        // `numkeys` counts the keys of the argument after it.
        if matches!(arg.kind, ArgKind::Key { .. }) {
            if let Some((at, before)) = counts.pop() {
                out.args[at] = (out.keys.len() - before).to_string().into_bytes();
            }
        }
    }
    // A `numkeys` with nothing after it (the keys were optional): none.
    for (at, before) in counts.drain(..) {
        out.args[at] = (out.keys.len() - before).to_string().into_bytes();
    }
}

/// How many times a repeated argument comes: mostly a few, now and then past 4,096.
fn repeats(choices: &mut impl Choices) -> usize {
    match choices.below(16) {
        0 => 4097 + choices.below(8),
        1..=4 => 1,
        _ => 1 + choices.below(4),
    }
}

fn generate_one(
    arg: &Arg,
    names: &Names,
    choices: &mut impl Choices,
    out: &mut Generated,
    counts: &mut KeyCounts,
    quiet: bool,
) {
    let pick = |pool: &[Vec<u8>], choices: &mut dyn FnMut(usize) -> usize| {
        pool[choices(pool.len())].clone()
    };
    let mut below = |n| choices.below(n);
    match &arg.kind {
        ArgKind::Key { written } => {
            out.keys.push((out.args.len(), *written));
            let pool = if quiet { &names.quiet } else { &names.keys };
            out.args.push(pick(pool, &mut below));
        }
        ArgKind::Pattern => {
            // Patterns and channels: a pattern, or a key name.
            let pool = if below(2) == 0 {
                &names.patterns
            } else {
                &names.keys
            };
            out.args.push(pick(pool, &mut below));
        }
        ArgKind::KeyCount => {
            counts.push((out.args.len(), out.keys.len()));
            out.args.push(b"0".to_vec());
        }
        ArgKind::Integer => {
            let whole: Vec<&Vec<u8>> = names
                .numbers
                .iter()
                .filter(|n| !n.contains(&b'.'))
                .collect();
            out.args.push(whole[below(whole.len())].clone());
        }
        ArgKind::Number => out.args.push(pick(&names.numbers, &mut below)),
        ArgKind::Value => out.args.push(pick(&names.values, &mut below)),
        ArgKind::PureToken => out.args.push(arg.token.clone().unwrap_or_default()),
        ArgKind::OneOf(args) => {
            if !args.is_empty() {
                let chosen = &args[choices.below(args.len())];
                generate_all(
                    std::slice::from_ref(chosen),
                    names,
                    choices,
                    out,
                    counts,
                    quiet,
                );
            }
        }
        ArgKind::Block(args) => generate_all(args, names, choices, out, counts, quiet),
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) | Value::Set(items) => items.iter().filter_map(text).collect(),
        _ => Vec::new(),
    }
}

/// A RESP2 flat array of name/value pairs (or a RESP3 map) as pairs.
fn pairs(value: &Value) -> Vec<(String, &Value)> {
    match value {
        Value::Array(items) => items
            .chunks_exact(2)
            .filter_map(|kv| Some((text(&kv[0])?, &kv[1])))
            .collect(),
        Value::Map(items) => items
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, v)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The relay's filter, set up as [`Names::standard`] describes: `--allow perf:* u:*`, a session on database 0
/// watching `perf:*` and `secret:*`.
pub struct Filter {
    table: std::sync::Arc<replicast_server::command_table::CommandTable>,
    allow: replicast_server::subscription::Allow,
    sub: replicast_server::subscription::Subscription,
}

/// How a generated command is placed in the stream.
#[derive(Debug, Clone, Copy)]
pub enum Placing {
    Alone,
    /// After `SELECT 0` and a frame the session receives.
    AfterOthers,
    /// Inside `MULTI` … `EXEC`, between frames the session receives.
    InBlock,
}

impl Filter {
    pub fn standard() -> Self {
        let reply = redis::parse_redis_value(COMMAND_REPLY).expect("the recorded COMMAND");
        Filter {
            table: std::sync::Arc::new(
                replicast_server::command_table::CommandTable::from_command_reply(&reply),
            ),
            allow: replicast_server::subscription::Allow::new(&["perf:*".into(), "u:*".into()]),
            sub: replicast_server::subscription::Subscription::parse(
                r#"{"type":"subscribe","patterns":["perf:*","secret:*"],"db":0,"window":10}"#,
            )
            .expect("a valid subscription"),
        }
    }

    /// Sends `generated` through the filter, placed as `placing` says, and checks what leaves: no byte of a
    /// secret name (a key, a pattern or a channel outside `--allow`), stale keys only the session wants and may
    /// see, and, if the command is withheld, every key it may have written that the session wants and may see
    /// among them (or every window). Panics with the command otherwise.
    pub fn check(&self, generated: &Generated, placing: Placing) {
        use replicast_server::subscription::{Delivery, Stale};
        let (start, spans, ours, deliveries) = self.run(&generated.args, placing);
        self.check_stale_keys(&deliveries);

        let shown = || {
            let text = String::from_utf8_lossy(&generated.args.join(&b' ')).into_owned();
            let mut cut = text.len().min(400);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{} ({} arguments)", &text[..cut], generated.args.len())
        };
        let ours = &spans[ours];
        let (ours_start, ours_end) = (start + ours.start, start + ours.end);
        let mut delivered = false;
        let mut sent_any = false;
        let mut stale: Option<Stale> = None;
        for delivery in &deliveries {
            match delivery {
                Delivery::Commands { start: at, bytes } => {
                    assert!(
                        !bytes.windows(6).any(|w| w == b"secret"),
                        "a secret name left the relay in {}",
                        shown()
                    );
                    delivered |= *at <= ours_start && at + bytes.len() as u64 >= ours_end;
                    sent_any = true;
                }
                Delivery::Stale { at, keys } => {
                    if let Placing::InBlock = placing {
                        assert_eq!(
                            *at,
                            start + spans[0].start,
                            "a block's stale keys come at its MULTI's start: {}",
                            shown()
                        );
                        assert!(
                            !sent_any,
                            "a block's stale keys come before its commands: {}",
                            shown()
                        );
                    } else {
                        assert_eq!(
                            *at,
                            ours_end,
                            "stale keys at the withheld command's end: {}",
                            shown()
                        );
                    }
                    assert!(stale.is_none(), "one stale message per withheld command");
                    stale = Some(keys.clone());
                }
            }
        }
        if let (true, Placing::InBlock) = (delivered, placing) {
            let whole = deliveries.iter().any(|d| {
                matches!(d, Delivery::Commands { start: at, bytes }
                    if *at <= start + spans[0].start && at + bytes.len() as u64 >= start + spans[spans.len() - 1].end)
            });
            assert!(whole, "a block goes whole, MULTI to EXEC: {}", shown());
        }
        if delivered {
            return;
        }
        for &(index, written) in &generated.keys {
            let key = &generated.args[index];
            if !written || !self.allow.allows(key) || !self.sub.wants(key) {
                continue;
            }
            let known = match &stale {
                Some(Stale::All) => true,
                Some(Stale::Keys(keys)) => keys.contains(key),
                None => false,
            };
            assert!(
                known,
                "withheld, and the session was not told that {:?} may have changed: {}",
                String::from_utf8_lossy(key),
                shown()
            );
        }
    }

    /// Sends any arguments through the filter (a grammar's, or a fuzzer's mangling of them) and checks only what
    /// holds whatever they are: the filter does not panic, and names no stale key the session may not see.
    pub fn check_any(&self, args: &[Vec<u8>], placing: Placing) {
        let (_, _, _, deliveries) = self.run(args, placing);
        self.check_stale_keys(&deliveries);
    }

    fn check_stale_keys(&self, deliveries: &[replicast_server::subscription::Delivery]) {
        use replicast_server::subscription::{Delivery, Stale};
        for delivery in deliveries {
            if let Delivery::Stale {
                keys: Stale::Keys(keys),
                ..
            } = delivery
            {
                for key in keys {
                    assert!(
                        self.allow.allows(key) && self.sub.wants(key),
                        "stale key {:?} the session may not see or does not want",
                        String::from_utf8_lossy(key)
                    );
                }
            }
        }
    }

    /// The batch of `args` placed as `placing` says, at offset 1000, and what the session receives of it: (the
    /// batch's start, each command's span in it, which of them is `args`, the deliveries).
    fn run(
        &self,
        args: &[Vec<u8>],
        placing: Placing,
    ) -> (
        u64,
        Vec<std::ops::Range<u64>>,
        usize,
        Vec<replicast_server::subscription::Delivery>,
    ) {
        let context: [&[u8]; 3] = [b"SET", b"perf:ctx", b"1"];
        let mut stream = Vec::new();
        let mut commands: Vec<Vec<&[u8]>> = Vec::new();
        match placing {
            Placing::Alone => {}
            Placing::AfterOthers => {
                commands.push(vec![b"SELECT", b"0"]);
                commands.push(context.to_vec());
            }
            Placing::InBlock => {
                commands.push(vec![b"MULTI"]);
                commands.push(context.to_vec());
            }
        }
        let ours = commands.len();
        commands.push(args.iter().map(Vec::as_slice).collect());
        if let Placing::InBlock = placing {
            commands.push(context.to_vec());
            commands.push(vec![b"EXEC"]);
        }
        let mut spans = Vec::new();
        for command in &commands {
            let start = stream.len();
            stream.extend(format!("*{}\r\n", command.len()).as_bytes());
            for arg in command {
                stream.extend(format!("${}\r\n", arg.len()).as_bytes());
                stream.extend_from_slice(arg);
                stream.extend(b"\r\n");
            }
            spans.push(start as u64..stream.len() as u64);
        }
        let mut indexer = replicast_server::frames::Indexer::new(self.table.clone());
        let mut index = replicast_server::frames::FrameIndex::default();
        let limits = replicast_protocol::resp::Limits::default();
        let mut at = 0;
        while let Some(command) =
            replicast_protocol::resp::parse_command(&stream[at..], at as u64, &limits)
                .expect("RESP")
        {
            indexer.add(&mut index, &stream, &command, at);
            at += command.frame_len();
        }
        assert_eq!(at, stream.len(), "whole commands");
        let start = 1000;
        let batch = replicast_server::backlog::Batch {
            start,
            end: start + stream.len() as u64,
            raw: bytes::Bytes::from(stream),
            index: std::sync::Arc::new(index),
            held: true,
            received: std::time::Instant::now(),
            keys: Default::default(),
        };
        let deliveries = self.sub.select(&batch, start, &self.allow);
        (start, spans, ours, deliveries)
    }
}
