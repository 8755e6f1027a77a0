//! The index of a batch: for every command frame, where it is, which database it applies to, what kind of
//! command it is for routing, and where its keys are. The link computes it once per batch, so a thousand
//! sessions filter by subscription without parsing the stream a thousand times.

use std::ops::Range;
use std::sync::Arc;

use replicast_protocol::resp::Command;

use crate::command_table::{CommandTable, FoundKeys, KeyRoom};

/// What a frame means for routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Touches the keys listed for it, every one of them found: a session receives it when every key is allowed
    /// and one is wanted.
    Keyed,
    /// Reaches no session, because its keys cannot all be judged (or, from the link, because it is too large to
    /// hold): its keys are the ones it may have written, which sessions that may see them must learn are stale.
    /// One too large to hold keeps no bytes at all: it is the only frame of a batch that is not `held`, its `at` is
    /// empty (the command ends at the batch's `end`), and its keys point into the batch's names.
    Withheld,
    /// Withheld, and it may have written any key of its database (a script, or keys that cannot be found): every
    /// window of the database is stale.
    WithheldAll,
    /// `SELECT`: every session gets it, so its assembler knows the database of what follows.
    Select,
    /// `FLUSHALL`, `SWAPDB`: affect every database.
    AllDbs,
    /// `FLUSHDB`: affects its database.
    WholeDb,
    Multi,
    Exec,
    /// PING, REPLCONF GETACK, keyless commands: no session needs them.
    Other,
    /// A module's command, or one the followed Redis's table does not know: no session gets it (as [`Kind::Other`]),
    /// but it may have written keys no one can name (RediSearch's `FT.SAFEADD` writes a hash it does not declare),
    /// which the relay's state, holding every allowed key, cannot follow.
    Unfollowed,
}

/// One command frame of a batch; positions are byte offsets into the batch's raw commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub at: Range<u32>,
    /// The database it was written in.
    pub db: u32,
    /// The database it writes its keys in: another than `db` for `MOVE key db` and `COPY src dst DB db`.
    pub target_db: u32,
    pub kind: Kind,
    /// Indices into [`FrameIndex::keys`]: those it may write first, then those it only reads.
    pub keys: Range<u32>,
    /// How many of `keys`, from the first, it may write.
    pub written: u32,
}

impl Frame {
    /// A frame that reaches no session; `keys` (indices into [`FrameIndex::keys`]) are the keys it may have
    /// written, which become stale for the sessions that may see them.
    pub fn withheld(at: Range<u32>, db: u32, keys: Range<u32>) -> Self {
        Frame {
            at,
            db,
            target_db: db,
            kind: Kind::Withheld,
            written: keys.len() as u32,
            keys,
        }
    }

    /// Whether it concerns database `db`: it was written there, or writes a key there.
    pub fn in_db(&self, db: u32) -> bool {
        self.db == db || self.target_db == db
    }

    /// Its keys (indices into [`FrameIndex::keys`]) that it may write.
    pub fn written_keys(&self) -> Range<u32> {
        self.keys.start..self.keys.start + self.written
    }
}

/// Every frame of a batch, and the byte ranges of their keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameIndex {
    pub frames: Vec<Frame>,
    pub keys: Vec<Range<u32>>,
}

/// Builds [`FrameIndex`]es as the link reads commands, tracking `SELECT` across batches.
pub struct Indexer {
    table: Arc<CommandTable>,
    db: u32,
    room: KeyRoom,
}

impl Indexer {
    pub fn new(table: Arc<CommandTable>) -> Self {
        Indexer {
            table,
            db: 0,
            room: KeyRoom::default(),
        }
    }

    /// The database selected after the last command added.
    pub fn db(&self) -> u32 {
        self.db
    }

    /// Adds a command the link did not hold (too large to forward), which no session receives: an empty frame in
    /// the database selected now, [`Kind::Withheld`] with the keys it may have written (`written`, ranges into the
    /// batch's names), [`Kind::WithheldAll`] when they cannot all be named (`None`), [`Kind::Other`] when it writes
    /// none.
    pub fn add_unheld(&self, index: &mut FrameIndex, written: Option<&[Range<u32>]>) {
        let first_key = index.keys.len() as u32;
        let kind = match written {
            Some([]) => Kind::Other,
            Some(keys) => {
                index.keys.extend_from_slice(keys);
                Kind::Withheld
            }
            None => Kind::WithheldAll,
        };
        let keys = first_key..index.keys.len() as u32;
        index.frames.push(Frame {
            at: 0..0,
            db: self.db,
            target_db: self.db,
            kind,
            written: keys.len() as u32,
            keys,
        });
    }

    /// Adds `command`, whose bytes start at `base + at` where `base` is the batch's first byte.
    pub fn add(&mut self, index: &mut FrameIndex, batch: &[u8], command: &Command<'_>, at: usize) {
        let first_key = index.keys.len() as u32;
        let base = batch.as_ptr() as usize;
        let mut push = |i: usize| {
            let key = command.args[i];
            let start = key.as_ptr() as usize - base;
            index.keys.push(start as u32..(start + key.len()) as u32);
        };
        let mut written = 0;
        let kind = if command.args.is_empty() {
            Kind::Other
        } else if command.is("select") {
            if let Some(db) = command
                .args
                .get(1)
                .and_then(|d| std::str::from_utf8(d).ok()?.parse().ok())
            {
                self.db = db;
            }
            Kind::Select
        } else if command.is("flushall") || command.is("swapdb") {
            Kind::AllDbs
        } else if command.is("flushdb") {
            Kind::WholeDb
        } else if command.is("multi") {
            Kind::Multi
        } else if command.is("exec") {
            Kind::Exec
        } else {
            match self.table.find_keys(&command.args, &mut self.room) {
                FoundKeys::None if self.table.unfollowed(&command.args) => Kind::Unfollowed,
                FoundKeys::None => Kind::Other,
                FoundKeys::Known([]) => Kind::Other,
                FoundKeys::Known(keys) => {
                    // Those it may write first: they are what a session that may not see the frame learns is stale.
                    for key in keys.iter().filter(|k| k.written) {
                        push(key.index);
                        written += 1;
                    }
                    for key in keys.iter().filter(|k| !k.written) {
                        push(key.index);
                    }
                    Kind::Keyed
                }
                FoundKeys::Unresolved { written: keys, why } => {
                    tracing::debug!(
                        command = %String::from_utf8_lossy(command.args[0]),
                        offset = command.start,
                        "withheld from every session: {why}"
                    );
                    match keys {
                        Some(keys) => {
                            for &i in &keys {
                                push(i);
                            }
                            written = keys.len() as u32;
                            Kind::Withheld
                        }
                        None => Kind::WithheldAll,
                    }
                }
            }
        };
        let keys = first_key..index.keys.len() as u32;
        let (kind, target_db) = match target_db(command) {
            Some(Ok(target)) => (kind, target),
            // A database Redis would have refused: the command did nothing, but it is not passed either.
            Some(Err(())) if kind == Kind::Keyed => (Kind::Withheld, self.db),
            _ => (kind, self.db),
        };
        index.frames.push(Frame {
            at: at as u32..(at + command.frame_len()) as u32,
            db: self.db,
            target_db,
            kind,
            keys,
            written,
        });
    }
}

/// The database `MOVE key db` and `COPY src dst DB db` write in (the last `DB` wins, as in Redis); `None` for
/// other commands, `Err` for a database that is not a number.
fn target_db(command: &Command<'_>) -> Option<Result<u32, ()>> {
    let number = |d: &[u8]| {
        std::str::from_utf8(d)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or(())
    };
    if command.is("move") {
        return Some(command.args.get(2).ok_or(()).and_then(|d| number(d)));
    }
    if !command.is("copy") {
        return None;
    }
    let mut target = None;
    let mut rest = command.args.iter().skip(3);
    while let Some(arg) = rest.next() {
        if arg.eq_ignore_ascii_case(b"db") {
            target = Some(rest.next().ok_or(()).and_then(|d| number(d)));
        }
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;
    use replicast_protocol::resp::{parse_command, Limits};

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    /// A `COMMAND` entry whose one key is its first argument, as Redis 7.0 describes `SET` and RediSearch's `FT.ADD`.
    fn entry(name: &str, flags: &[&str]) -> Value {
        let pairs = |items: Vec<(&str, Value)>| {
            Value::Array(items.into_iter().flat_map(|(k, v)| [bulk(k), v]).collect())
        };
        let spec = pairs(vec![
            ("flags", Value::Array(vec![])),
            (
                "begin_search",
                pairs(vec![
                    ("type", bulk("index")),
                    ("spec", pairs(vec![("index", Value::Int(1))])),
                ]),
            ),
            (
                "find_keys",
                pairs(vec![
                    ("type", bulk("range")),
                    (
                        "spec",
                        pairs(vec![
                            ("lastkey", Value::Int(0)),
                            ("keystep", Value::Int(1)),
                            ("limit", Value::Int(0)),
                        ]),
                    ),
                ]),
            ),
        ]);
        Value::Array(vec![
            bulk(name),
            Value::Int(-2),
            Value::Array(
                flags
                    .iter()
                    .map(|f| Value::SimpleString(f.to_string()))
                    .collect(),
            ),
            Value::Int(1),
            Value::Int(1),
            Value::Int(1),
            Value::Array(vec![]),
            Value::Array(vec![]),
            Value::Array(vec![spec]),
            Value::Array(vec![]),
        ])
    }

    /// The index of `stream` (whole commands) with the table Redis would give with RediSearch loaded.
    fn index(stream: &[u8]) -> (FrameIndex, Vec<Vec<u8>>) {
        let table = CommandTable::from_command_reply(&Value::Array(vec![
            entry("set", &["write", "denyoom"]),
            entry("ft.safeadd", &["write", "denyoom", "module"]),
        ]));
        let mut indexer = Indexer::new(Arc::new(table));
        let mut index = FrameIndex::default();
        let mut at = 0;
        while let Some(command) =
            parse_command(&stream[at..], at as u64, &Limits::default()).unwrap()
        {
            indexer.add(&mut index, stream, &command, at);
            at += command.frame_len();
        }
        assert_eq!(at, stream.len(), "whole commands");
        let keys = index
            .keys
            .iter()
            .map(|r| stream[r.start as usize..r.end as usize].to_vec())
            .collect();
        (index, keys)
    }

    #[test]
    fn module_and_unknown_commands_reach_no_session() {
        // SET, a RediSearch 1.x document add (which writes the hash perf:doc while declaring only the index), and a
        // command the table does not know: only SET is routed by its key; the other two reach no session, and are
        // marked as what the relay's state cannot follow.
        let stream = b"*3\r\n$3\r\nSET\r\n$6\r\nperf:a\r\n$1\r\n1\r\n\
            *7\r\n$10\r\nFT.SAFEADD\r\n$3\r\nidx\r\n$8\r\nperf:doc\r\n$3\r\n1.0\r\n$6\r\nFIELDS\r\n$1\r\nt\r\n$1\r\nx\r\n\
            *2\r\n$4\r\nFROB\r\n$6\r\nperf:a\r\n";
        let (index, keys) = index(stream);
        let kinds: Vec<Kind> = index.frames.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [Kind::Keyed, Kind::Unfollowed, Kind::Unfollowed]);
        assert_eq!(keys, [b"perf:a".to_vec()]);
        assert!(index.frames[1].keys.is_empty() && index.frames[2].keys.is_empty());
        assert_eq!(
            index.frames.last().unwrap().at.end as usize,
            stream.len(),
            "every frame keeps its place in the stream"
        );
    }

    /// The index of `commands` with Redis 7.0.15's own table (recorded by scripts/record-command-table.sh).
    fn index_with_redis_table(commands: &[&[&str]]) -> (Vec<Frame>, Vec<Vec<String>>) {
        let reply =
            redis::parse_redis_value(include_bytes!("../tests/data/redis-7.0.15-command.resp"))
                .unwrap();
        let mut indexer = Indexer::new(Arc::new(CommandTable::from_command_reply(&reply)));
        let mut stream = Vec::new();
        for args in commands {
            stream.extend(format!("*{}\r\n", args.len()).as_bytes());
            for arg in *args {
                stream.extend(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
            }
        }
        let mut index = FrameIndex::default();
        let mut at = 0;
        while let Some(command) =
            parse_command(&stream[at..], at as u64, &Limits::default()).unwrap()
        {
            indexer.add(&mut index, &stream, &command, at);
            at += command.frame_len();
        }
        let keys = index
            .frames
            .iter()
            .map(|f| {
                index.keys[f.keys.start as usize..f.keys.end as usize]
                    .iter()
                    .map(|r| {
                        String::from_utf8_lossy(&stream[r.start as usize..r.end as usize])
                            .into_owned()
                    })
                    .collect()
            })
            .collect();
        (index.frames, keys)
    }

    #[test]
    fn keys_are_judged_all_and_those_written_come_first() {
        let (frames, keys) = index_with_redis_table(&[
            &["ZUNIONSTORE", "perf:z", "2", "perf:a", "secret:w"],
            &["RENAME", "secret:x", "perf:y"],
            &["SORT", "u:src", "ALPHA", "STORE", "w:sorted"],
            &[
                "SORT",
                "perf:list",
                "BY",
                "secret:w_*",
                "GET",
                "secret:o_*",
                "STORE",
                "perf:sorted",
            ],
            &["EVAL", "return 1", "0"],
            &["SPUBLISH", "perf:chan", "hello"],
        ]);
        let kinds: Vec<(Kind, u32)> = frames.iter().map(|f| (f.kind, f.written)).collect();
        assert_eq!(
            kinds,
            [
                (Kind::Keyed, 1),
                (Kind::Keyed, 2),
                (Kind::Keyed, 1),
                (Kind::Withheld, 1),
                (Kind::WithheldAll, 0),
                (Kind::Other, 0)
            ]
        );
        assert_eq!(keys[0], ["perf:z", "perf:a", "secret:w"]);
        assert_eq!(keys[2], ["w:sorted", "u:src"], "written first");
        assert_eq!(
            keys[3],
            ["perf:sorted"],
            "a withheld frame's keys are the ones to make stale"
        );
    }

    #[test]
    fn move_and_copy_name_the_database_they_write_in() {
        let (frames, _) = index_with_redis_table(&[
            &["SELECT", "1"],
            &["MOVE", "w:mv", "0"],
            &["COPY", "w:cp", "w:cp", "DB", "0", "REPLACE"],
            &["COPY", "w:a", "w:b", "DB", "5", "DB", "2"],
            &["COPY", "w:a", "w:b"],
            &["COPY", "w:a", "w:b", "DB", "x"],
            &["SET", "w:s", "1"],
        ]);
        let routes: Vec<(Kind, u32, u32)> =
            frames.iter().map(|f| (f.kind, f.db, f.target_db)).collect();
        assert_eq!(
            routes,
            [
                (Kind::Select, 1, 1),
                (Kind::Keyed, 1, 0),
                (Kind::Keyed, 1, 0),
                (Kind::Keyed, 1, 2),
                (Kind::Keyed, 1, 1),
                (Kind::Withheld, 1, 1),
                (Kind::Keyed, 1, 1),
            ]
        );
        assert!(frames[1].in_db(0) && frames[1].in_db(1) && !frames[1].in_db(2));
    }

    #[test]
    fn non_utf8_and_long_keys_are_indexed_byte_for_byte() {
        let long = "k".repeat(1 << 20);
        let mut stream = Vec::new();
        for key in [&b"perf:\xff\xfe"[..], long.as_bytes()] {
            stream.extend(format!("*3\r\n$3\r\nSET\r\n${}\r\n", key.len()).as_bytes());
            stream.extend(key);
            stream.extend(b"\r\n$1\r\n1\r\n");
        }
        let (index, keys) = index(&stream);
        assert_eq!(index.frames.len(), 2);
        assert_eq!(keys, [b"perf:\xff\xfe".to_vec(), long.into_bytes()]);
    }
}
