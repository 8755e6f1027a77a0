//! What a browser watches, what the relay allows, and which parts of a batch a session therefore receives.
//!
//! A browser subscribes with one JSON text message right after it connects:
//! `{"type":"subscribe","patterns":["perf:*"],"keys":["cfg"],"db":0,"window":100}`. A frame reaches it when it is in
//! the subscribed database (or writes a key there: `MOVE`, `COPY … DB`) and names at least one wanted key, and every
//! key it names is allowed by `--allow`: nothing outside the allow-list ever leaves the relay, not even a key name.
//! A frame withheld (a key outside `--allow`, or keys that cannot all be judged) that may have written keys the
//! session wants and may see becomes a stale message naming those keys, at the frame's place, so that the browser
//! tops them up instead of keeping windows that differ from Redis. `SELECT`, `FLUSHALL`, `SWAPDB` and the
//! subscribed database's `FLUSHDB` reach everyone; a `MULTI`…`EXEC` block is sent as one block, holding the frames
//! of it the session may see, its stale keys before its `MULTI`.

use std::collections::{BTreeSet, HashSet};
use std::ops::Range;

use bytes::Bytes;
use replicast_protocol::client_message::{ClientMessageError, Subscribe, Topup, MAX_TOPUP_KEYS};
use replicast_protocol::pattern::Glob;
use replicast_protocol::wire;

use crate::backlog::Batch;
use crate::frames::{Frame, Kind};

/// Key patterns the relay may send (`--allow`); a key must match one. A session with a signed token has its own,
/// [narrowed](Allow::narrowed) to the token's read patterns: a key must then match one of each list.
#[derive(Debug, Clone)]
pub struct Allow {
    patterns: Vec<Glob>,
    /// A token's `replicast.read` patterns, for a session that has one.
    within: Option<Vec<Glob>>,
}

impl Allow {
    pub fn new(patterns: &[String]) -> Self {
        Allow {
            patterns: patterns.iter().map(|p| Glob::new(p.as_bytes())).collect(),
            within: None,
        }
    }

    /// What one session may see: keys this allows that also match one of `read`. The operator's `--allow` always
    /// applies; a token only narrows it.
    pub fn narrowed(&self, read: &[Glob]) -> Allow {
        Allow {
            patterns: self.patterns.clone(),
            within: Some(read.to_vec()),
        }
    }

    /// What a token narrowed this `--allow` to, as bytes that differ whenever the keys it lets out may: sessions
    /// share something built for their subscription (a snapshot from the relay's state) only when this is equal.
    pub fn narrowing(&self) -> Vec<u8> {
        let Some(read) = &self.within else {
            return Vec::new();
        };
        let mut patterns: Vec<&[u8]> = read.iter().map(Glob::as_bytes).collect();
        patterns.sort_unstable();
        let mut out = format!("{} ", patterns.len()).into_bytes();
        for pattern in patterns {
            out.extend_from_slice(format!("{}:", pattern.len()).as_bytes());
            out.extend_from_slice(pattern);
        }
        out
    }

    pub fn allows(&self, key: &[u8]) -> bool {
        self.patterns.iter().any(|p| p.matches(key))
            && self
                .within
                .as_ref()
                .is_none_or(|read| read.iter().any(|p| p.matches(key)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub db: u32,
    pub patterns: Vec<Glob>,
    pub keys: HashSet<Vec<u8>>,
    pub window: usize,
}

impl Subscription {
    /// Parses and checks a subscribe message (its limits are the protocol's).
    pub fn parse(message: &str) -> Result<Self, ClientMessageError> {
        let (subscribe, patterns) = Subscribe::parse(message)?;
        Ok(Subscription {
            db: subscribe.db,
            patterns,
            keys: subscribe.keys.into_iter().map(String::into_bytes).collect(),
            window: subscribe.window,
        })
    }

    pub fn wants(&self, key: &[u8]) -> bool {
        self.keys.contains(key) || self.patterns.iter().any(|p| p.matches(key))
    }

    /// What this session makes of `frame`.
    fn verdict(&self, frame: &Frame, raw: &[u8], keys: &[Range<u32>], allow: &Allow) -> Verdict {
        let names = |range: Range<u32>| {
            keys[range.start as usize..range.end as usize]
                .iter()
                .map(|r| &raw[r.start as usize..r.end as usize])
        };
        match frame.kind {
            Kind::Select | Kind::AllDbs => Verdict::Receive,
            Kind::WholeDb if frame.db == self.db => Verdict::Receive,
            // A frame that names no key the session wants is nothing to it, received or withheld (a stale key is
            // one it wants): decided with a lookup per key, before any key is matched against `--allow`, which is
            // what most frames of a busy stream are to a session of a few keys.
            Kind::Keyed | Kind::Withheld if !names(frame.keys.clone()).any(|k| self.wants(k)) => {
                Verdict::Skip
            }
            // It names a key the session wants (the arm above): received whole when `--allow` permits every key.
            Kind::Keyed if frame.in_db(self.db) => {
                if names(frame.keys.clone()).all(|k| allow.allows(k)) {
                    Verdict::Receive
                } else {
                    // A key outside `--allow`: the frame is withheld, and the keys it may have written that this
                    // session may see are stale.
                    self.stale(names(frame.written_keys()), allow)
                }
            }
            Kind::Withheld if frame.in_db(self.db) => self.stale(names(frame.keys.clone()), allow),
            Kind::WithheldAll if frame.in_db(self.db) => Verdict::Stale(Stale::All),
            _ => Verdict::Skip,
        }
    }

    /// The keys of a withheld frame this session must learn are stale: those it wants and `--allow` permits.
    fn stale<'k>(&self, keys: impl Iterator<Item = &'k [u8]>, allow: &Allow) -> Verdict {
        let mut stale = Stale::default();
        for key in keys {
            if self.wants(key) && allow.allows(key) {
                stale.add(key);
            }
        }
        if stale.is_empty() {
            Verdict::Skip
        } else {
            Verdict::Stale(stale)
        }
    }

    /// What this session receives of `batch` from offset `from` on, in stream order: runs of whole commands, and
    /// where a withheld frame may have changed keys it sees, the stale keys. Inside a `MULTI` block the frames it
    /// may see go as one block, and the block's stale keys right before it, at its `MULTI`'s start offset: the block
    /// stays whole, and none of its commands is applied to a window its withheld frames may have changed.
    pub fn select(&self, batch: &Batch, from: u64, allow: &Allow) -> Vec<Delivery> {
        // A session of a few exact keys judges only the frames that name one of them (a lookup per key, not a look
        // at every frame): any other frame is nothing to it. A batch of fewer keys than the session's is looked at
        // whole.
        let named = (self.patterns.is_empty() && self.keys.len() <= batch.index.keys.len())
            .then(|| batch.frames_naming(&self.keys))
            .flatten();
        if named.as_ref().is_some_and(Vec::is_empty) {
            return Vec::new();
        }
        let (mut some, mut every);
        let frames: &mut dyn Iterator<Item = &Frame> = match named {
            Some(named) => {
                some = named
                    .into_iter()
                    .filter_map(|at| batch.index.frames.get(at as usize));
                &mut some
            }
            None => {
                every = batch.index.frames.iter();
                &mut every
            }
        };
        let raw = batch.raw();
        let mut out: Vec<Piece> = Vec::new();
        let emit = |out: &mut Vec<Piece>, at: &Range<u32>| match out.last_mut() {
            Some(Piece::Run(last)) if last.end == at.start => last.end = at.end,
            _ => out.push(Piece::Run(at.clone())),
        };
        // Inside MULTI: the MULTI frame, the frames of the block this session may see, and the block's stale keys.
        let mut block: Option<(Range<u32>, Vec<Range<u32>>, Stale)> = None;
        for frame in frames {
            if batch.start + u64::from(frame.at.start) < from {
                continue;
            }
            match (frame.kind, &mut block) {
                (Kind::Multi, _) => block = Some((frame.at.clone(), Vec::new(), Stale::default())),
                (Kind::Exec, Some(_)) => {
                    if let Some((multi, inside, stale)) = block.take() {
                        // The block's stale keys before it, at its `MULTI`'s start: they are stale from there (a
                        // superset of where its withheld frames wrote them), so a command of the block on a key a
                        // withheld one wrote before it reaches a stale window, not the window as it was before.
                        if !stale.is_empty() {
                            out.push(Piece::Stale(multi.start, stale));
                        }
                        if !inside.is_empty() {
                            emit(&mut out, &multi);
                            inside.iter().for_each(|at| emit(&mut out, at));
                            emit(&mut out, &frame.at);
                        }
                    }
                }
                (_, Some((_, inside, stale))) => {
                    match self.verdict(frame, &raw, &batch.index.keys, allow) {
                        Verdict::Receive => inside.push(frame.at.clone()),
                        Verdict::Stale(keys) => stale.extend(keys),
                        Verdict::Skip => {}
                    }
                }
                (_, None) => match self.verdict(frame, &raw, &batch.index.keys, allow) {
                    Verdict::Receive => emit(&mut out, &frame.at),
                    Verdict::Stale(keys) => out.push(Piece::Stale(frame.at.end, keys)),
                    Verdict::Skip => {}
                },
            }
        }
        // A block still open here was cut by the link's size cap: send what it held as plain frames, after its
        // stale keys.
        if let Some((multi, inside, stale)) = block {
            if !stale.is_empty() {
                out.push(Piece::Stale(multi.start, stale));
            }
            inside.iter().for_each(|at| emit(&mut out, at));
        }
        out.into_iter()
            .map(|piece| match piece {
                Piece::Run(r) => Delivery::Commands {
                    start: batch.start + u64::from(r.start),
                    bytes: raw.slice(r.start as usize..r.end as usize),
                },
                Piece::Stale(end, keys) => Delivery::Stale {
                    // A command too large to hold is an empty frame: it ends where its batch does.
                    at: if batch.held {
                        batch.start + u64::from(end)
                    } else {
                        batch.end
                    },
                    keys,
                },
            })
            .collect()
    }
}

/// What a session makes of one frame.
enum Verdict {
    Receive,
    Stale(Stale),
    Skip,
}

/// A part of [`Subscription::select`]'s answer, by position in the batch.
enum Piece {
    Run(Range<u32>),
    Stale(u32, Stale),
}

/// What a session receives of a batch, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Whole commands that occupied `start..start + bytes.len()` of the stream.
    Commands { start: u64, bytes: Bytes },
    /// Frames withheld may have changed these keys the session sees from offset `at` on: the end of a withheld
    /// frame, or the start of a `MULTI` block holding withheld frames (a state read at `at` may not hold what
    /// they wrote).
    Stale { at: u64, keys: Stale },
}

impl Delivery {
    /// The stale message for a [`Delivery::Stale`].
    pub fn encode_stale(at: u64, keys: &Stale) -> Vec<u8> {
        match keys {
            Stale::Keys(keys) => wire::encode_stale(at, keys.iter().map(Vec::as_slice)),
            Stale::All => wire::encode_stale_all(at),
        }
    }
}

/// Keys a session must learn are stale, bounded by what one top-up can read: past [`MAX_TOPUP_KEYS`] keys, or a
/// key a top-up cannot name (not UTF-8, longer than [`MAX_NAME_LEN`]), every window of the database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    Keys(BTreeSet<Vec<u8>>),
    All,
}

impl Default for Stale {
    fn default() -> Self {
        Stale::Keys(BTreeSet::new())
    }
}

impl Stale {
    fn add(&mut self, key: &[u8]) {
        let Stale::Keys(keys) = self else {
            return;
        };
        if keys.contains(key) {
            return;
        }
        if keys.len() >= MAX_TOPUP_KEYS || !Topup::can_name(key) {
            *self = Stale::All;
        } else {
            keys.insert(key.to_vec());
        }
    }

    fn extend(&mut self, other: Stale) {
        match other {
            Stale::All => *self = Stale::All,
            Stale::Keys(keys) => keys.iter().for_each(|k| self.add(k)),
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Stale::Keys(keys) if keys.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command_table::CommandTable;
    use crate::frames::{FrameIndex, Indexer};
    use std::sync::Arc;

    /// `commands` as a batch starting at offset 100, indexed with Redis 7.0.15's own table.
    fn batch(commands: &[Vec<Vec<u8>>]) -> Batch {
        let reply =
            redis::parse_redis_value(include_bytes!("../tests/data/redis-7.0.15-command.resp"))
                .unwrap();
        let mut indexer = Indexer::new(Arc::new(CommandTable::from_command_reply(&reply)));
        let mut stream = Vec::new();
        for args in commands {
            stream.extend(format!("*{}\r\n", args.len()).as_bytes());
            for arg in args {
                stream.extend(format!("${}\r\n", arg.len()).as_bytes());
                stream.extend(arg);
                stream.extend(b"\r\n");
            }
        }
        let mut index = FrameIndex::default();
        let limits = replicast_protocol::resp::Limits::default();
        let mut at = 0;
        while let Some(command) =
            replicast_protocol::resp::parse_command(&stream[at..], at as u64, &limits).unwrap()
        {
            indexer.add(&mut index, &stream, &command, at);
            at += command.frame_len();
        }
        Batch {
            start: 100,
            end: 100 + stream.len() as u64,
            raw: Bytes::from(stream),
            index: Arc::new(index),
            held: true,
            received: std::time::Instant::now(),
            keys: Arc::default(),
        }
    }

    fn words(commands: &[&[&str]]) -> Vec<Vec<Vec<u8>>> {
        commands
            .iter()
            .map(|c| c.iter().map(|w| w.as_bytes().to_vec()).collect())
            .collect()
    }

    fn watching(patterns: &str, db: u32) -> Subscription {
        Subscription::parse(&format!(
            r#"{{"type":"subscribe","patterns":[{patterns}],"db":{db},"window":5}}"#
        ))
        .unwrap()
    }

    /// What `sub` receives of `batch`: each run of commands as the commands' names and keys, each stale message
    /// as `stale@offset` and its keys.
    fn received(sub: &Subscription, batch: &Batch, allow: &[&str]) -> Vec<String> {
        let allow = Allow::new(&allow.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        sub.select(batch, batch.start, &allow)
            .into_iter()
            .map(|d| match d {
                Delivery::Commands { bytes, .. } => {
                    let mut commands = Vec::new();
                    replicast_protocol::resp::CommandReader::new(0)
                        .push(&bytes, |c| {
                            let args: Vec<String> = c
                                .args
                                .iter()
                                .take(3)
                                .map(|a| String::from_utf8_lossy(a).into_owned())
                                .collect();
                            commands.push(args.join(" "))
                        })
                        .unwrap();
                    commands.join(" | ")
                }
                Delivery::Stale {
                    at,
                    keys: Stale::Keys(keys),
                } => {
                    let keys: Vec<String> = keys
                        .iter()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .collect();
                    format!("stale@{at} {}", keys.join(" "))
                }
                Delivery::Stale {
                    at,
                    keys: Stale::All,
                } => format!("stale@{at} every window"),
            })
            .collect()
    }

    #[test]
    fn a_withheld_frame_tells_the_session_which_of_its_keys_went_stale_and_nothing_else() {
        let batch = batch(&words(&[
            &["ZADD", "perf:a", "1", "x"],
            &["RENAME", "secret:x", "perf:y"],
            &["ZUNIONSTORE", "perf:z", "2", "perf:a", "secret:w"],
            &["ZUNIONSTORE", "perf:q", "2", "perf:a", "perf:b"],
            &[
                "SORT",
                "perf:list",
                "BY",
                "secret:w_*",
                "STORE",
                "perf:sorted",
            ],
            &["RENAME", "secret:x", "other:y"],
            &["SET", "perf:b", "1"],
        ]));
        let ends: Vec<u64> = batch
            .index
            .frames
            .iter()
            .map(|f| 100 + u64::from(f.at.end))
            .collect();
        assert_eq!(
            received(&watching(r#""perf:*""#, 0), &batch, &["perf:*", "other:*"]),
            [
                "ZADD perf:a 1".to_string(),
                format!("stale@{} perf:y", ends[1]),
                format!("stale@{} perf:z", ends[2]),
                "ZUNIONSTORE perf:q 2".into(),
                format!("stale@{} perf:sorted", ends[4]),
                "SET perf:b 1".into(),
            ]
        );
        assert_eq!(
            received(&watching(r#""perf:q""#, 0), &batch, &["perf:*"]),
            ["ZUNIONSTORE perf:q 2"],
            "stale keys only of what the session watches"
        );
        assert!(received(&watching(r#""perf:*""#, 1), &batch, &["perf:*"]).is_empty());
    }

    #[test]
    fn a_blocks_stale_keys_come_before_its_multi_so_the_block_stays_whole() {
        let batch = batch(&words(&[
            &["MULTI"],
            &["ZADD", "perf:a", "1", "x"],
            &["RENAME", "secret:x", "perf:y"],
            &["ZINCRBY", "perf:y", "1", "m"],
            &["EXEC"],
            &["MULTI"],
            &["COPY", "secret:s", "perf:c"],
            &["EXEC"],
        ]));
        let multi: Vec<u64> = batch
            .index
            .frames
            .iter()
            .filter(|f| f.kind == Kind::Multi)
            .map(|f| 100 + u64::from(f.at.start))
            .collect();
        assert_eq!(
            received(&watching(r#""perf:*""#, 0), &batch, &["perf:*"]),
            [
                // Before the block: the ZINCRBY reaches a stale window of perf:y, not the one before the RENAME.
                format!("stale@{} perf:y", multi[0]),
                // Two runs around the withheld frame, sent as segments of one message.
                "MULTI | ZADD perf:a 1".into(),
                "ZINCRBY perf:y 1 | EXEC".into(),
                format!("stale@{} perf:c", multi[1]),
            ]
        );
    }

    /// A block cut by the link's size cap (its `EXEC` in a later batch) is sent as plain frames, its stale keys
    /// before them too.
    #[test]
    fn a_cut_blocks_stale_keys_come_before_its_frames() {
        let batch = batch(&words(&[
            &["ZADD", "perf:a", "1", "x"],
            &["MULTI"],
            &["RENAME", "secret:x", "perf:y"],
            &["ZINCRBY", "perf:y", "1", "m"],
        ]));
        let multi = 100 + u64::from(batch.index.frames[1].at.start);
        assert_eq!(
            received(&watching(r#""perf:*""#, 0), &batch, &["perf:*"]),
            [
                "ZADD perf:a 1".to_string(),
                format!("stale@{multi} perf:y"),
                "ZINCRBY perf:y 1".into(),
            ]
        );
    }

    #[test]
    fn more_stale_keys_than_a_topup_holds_make_every_window_stale() {
        let mut mset = vec![b"MSET".to_vec()];
        for i in 0..4096 {
            mset.push(format!("perf:k{i}").into_bytes());
            mset.push(b"v".to_vec());
        }
        mset.extend([b"secret:big".to_vec(), b"SECRETBIG4097".to_vec()]);
        let unnamable = words(&[&["RENAME", "secret:x", "perf:\u{1}"]]);
        let mut commands = vec![mset];
        commands.push(vec![
            b"RENAME".to_vec(),
            b"secret:x".to_vec(),
            b"perf:\xff".to_vec(),
        ]);
        commands.extend(unnamable);
        let batch = batch(&commands);
        let ends: Vec<u64> = batch
            .index
            .frames
            .iter()
            .map(|f| 100 + u64::from(f.at.end))
            .collect();
        assert_eq!(
            received(&watching(r#""perf:*""#, 0), &batch, &["perf:*"]),
            [
                format!("stale@{} every window", ends[0]),
                format!("stale@{} every window", ends[1]),
                format!("stale@{} perf:\u{1}", ends[2]),
            ],
            "4,096 keys, and a key a top-up cannot name (not UTF-8)"
        );
        let some = watching(r#""perf:k1""#, 0);
        assert_eq!(
            received(&some, &batch, &["perf:*"]),
            [format!("stale@{} perf:k1", ends[0])]
        );
    }

    #[test]
    fn a_batch_concerns_a_session_of_exact_keys_only_by_its_keys_or_a_frame_for_everyone() {
        let keys = |k: &[&str]| {
            k.iter()
                .map(|k| k.as_bytes().to_vec())
                .collect::<HashSet<_>>()
        };
        let others = batch(&words(&[&["ZADD", "perf:b", "1", "x"], &["DEL", "perf:c"]]));
        assert_eq!(others.frames_naming(&keys(&["perf:a"])), Some(vec![]));
        assert_eq!(
            others.frames_naming(&keys(&["perf:a", "perf:c"])),
            Some(vec![1])
        );
        let select = batch(&words(&[&["SELECT", "1"], &["DEL", "perf:c"]]));
        assert_eq!(
            select.frames_naming(&keys(&["perf:a"])),
            None,
            "SELECT reaches everyone"
        );
        let sub = watching(r#""perf:a""#, 0);
        let sub = Subscription {
            patterns: Vec::new(),
            keys: keys(&["perf:a"]),
            ..sub
        };
        assert!(received(&sub, &others, &["perf:*"]).is_empty());
        assert_eq!(received(&sub, &select, &["perf:*"]), ["SELECT 1"]);
    }

    /// A session of exact keys judges only the frames that name them (`Batch::frames_naming`): what it receives,
    /// from any offset of the batch, is what a session watching the same keys as patterns, which judges every
    /// frame, receives.
    #[test]
    fn a_session_of_exact_keys_receives_what_the_same_keys_as_patterns_receive() {
        let plain = words(&[
            &["ZADD", "perf:a", "1", "x"],
            &["ZADD", "perf:b", "1", "x"],
            &["DEL", "perf:a", "perf:a"],
            &["RENAME", "secret:x", "perf:a"],
            &["ZUNIONSTORE", "perf:z", "2", "perf:a", "secret:w"],
            &["MSET", "perf:b", "1", "perf:a", "2"],
            &["PING"],
            &["ZADD", "perf:c", "1", "x"],
        ]);
        let mut in_block = plain.clone();
        in_block.insert(2, words(&[&["MULTI"]]).remove(0));
        in_block.insert(6, words(&[&["EXEC"]]).remove(0));
        let mut after_select = plain.clone();
        after_select.insert(4, words(&[&["SELECT", "0"]]).remove(0));
        let allow = Allow::new(&["perf:*".to_string()]);
        for commands in [plain, in_block, after_select] {
            let batch = batch(&commands);
            let starts: Vec<u64> = batch
                .index
                .frames
                .iter()
                .map(|f| batch.start + u64::from(f.at.start))
                .collect();
            for keys in [
                &["perf:a"][..],
                &["perf:b"],
                &["perf:z"],
                &["perf:c", "perf:a"],
                &["perf:none"],
            ] {
                let patterns: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
                let as_patterns = watching(&patterns.join(","), 0);
                let exact = Subscription {
                    patterns: Vec::new(),
                    keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
                    ..as_patterns.clone()
                };
                for &from in &starts {
                    assert_eq!(
                        exact.select(&batch, from, &allow),
                        as_patterns.select(&batch, from, &allow),
                        "keys {keys:?} from {from} of {commands:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn move_and_copy_reach_the_sessions_of_the_database_they_write_in() {
        let batch = batch(&words(&[
            &["SELECT", "1"],
            &["MOVE", "w:mv", "0"],
            &["COPY", "w:cp", "w:cp", "DB", "0", "REPLACE"],
            &["COPY", "secret:s", "w:d", "DB", "0"],
            &["SET", "w:one", "1"],
        ]));
        let ends: Vec<u64> = batch
            .index
            .frames
            .iter()
            .map(|f| 100 + u64::from(f.at.end))
            .collect();
        assert_eq!(
            received(&watching(r#""w:*""#, 0), &batch, &["w:*"]),
            [
                "SELECT 1 | MOVE w:mv 0 | COPY w:cp w:cp".to_string(),
                format!("stale@{} w:d", ends[3])
            ]
        );
        assert_eq!(
            received(&watching(r#""w:*""#, 2), &batch, &["w:*"]),
            ["SELECT 1"]
        );
    }
}
