//! What the relay's state receives of each batch: what a session watching every allowed key of [`STATE_DB`] would
//! ([`Subscription::select`]), found with one pattern match a key for the common batch instead of a verdict on
//! every frame.
//!
//! The state's view watches exactly `--allow`'s patterns and no exact key, so a key it wants is a key `--allow`
//! permits. A batch of `SELECT`s and of writes in [`STATE_DB`] whose keys `--allow` all permits, frame after frame
//! (what a busy stream of samples is, batch after batch), is then received whole, as one run: every frame's verdict
//! would be to receive it. The view's own selection answers every other batch. On the recorded stream of
//! docs/BENCHMARKS.md ("Ingest", round nine) the verdicts cost about 300 instructions a `ZADD`, a tenth of the
//! relay's work on it with the state; the whole batch, about 60.

use crate::backlog::Batch;
use crate::frames::Kind;
use crate::subscription::{Allow, Delivery, Subscription};

use super::db::STATE_DB;

/// The state's view: a session of `--allow`'s patterns in [`STATE_DB`] (see the module's documentation).
pub(super) struct View {
    sub: Subscription,
}

impl View {
    /// The view of the keys `--allow`'s `patterns` permit, with windows of `window` items.
    pub(super) fn new(patterns: &[String], window: usize) -> Self {
        View {
            sub: Subscription {
                db: STATE_DB,
                patterns: patterns
                    .iter()
                    .map(|p| replicast_protocol::pattern::Glob::new(p.as_bytes()))
                    .collect(),
                keys: Default::default(),
                window,
            },
        }
    }

    /// What the state receives of `batch`, in stream order; `allow` is `--allow`, made of the view's own patterns.
    pub(super) fn select(&self, batch: &Batch, allow: &Allow) -> Vec<Delivery> {
        match whole(batch, allow) {
            Some(whole) => vec![whole],
            None => self.sub.select(batch, batch.start, allow),
        }
    }
}

/// The whole of `batch` as one run, if each of its frames is a `SELECT` or a write in [`STATE_DB`] of keys that
/// `allow` all permits, each frame starting where the one before it ended: what [`Subscription::select`] answers
/// for such a batch, to a view whose patterns are `allow`'s.
fn whole(batch: &Batch, allow: &Allow) -> Option<Delivery> {
    let raw = batch.raw();
    let index = &batch.index;
    let (first, last) = (index.frames.first()?, index.frames.last()?);
    if !batch.held {
        return None;
    }
    let mut end = first.at.start;
    for frame in &index.frames {
        if frame.at.start != end {
            return None;
        }
        end = frame.at.end;
        match frame.kind {
            Kind::Select => {}
            Kind::Keyed if frame.db == STATE_DB && frame.target_db == STATE_DB => {
                let keys = index
                    .keys
                    .get(frame.keys.start as usize..frame.keys.end as usize)?;
                if keys.is_empty() {
                    return None;
                }
                for key in keys {
                    if !allow.allows(raw.get(key.start as usize..key.end as usize)?) {
                        return None;
                    }
                }
            }
            _ => return None,
        }
    }
    let bytes = raw.slice(first.at.start as usize..last.at.end as usize);
    Some(Delivery::Commands {
        start: batch.start + u64::from(first.at.start),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use proptest::prelude::*;
    use replicast_protocol::resp::{parse_command, Limits};

    use super::*;
    use crate::command_table::CommandTable;
    use crate::frames::{FrameIndex, Indexer};

    /// `commands` as a batch from offset 1000, indexed with Redis 7.0.15's own table, in database `db` to begin with.
    fn batch(commands: &[Vec<Vec<u8>>], db: u32) -> Batch {
        let reply =
            redis::parse_redis_value(include_bytes!("../../tests/data/redis-7.0.15-command.resp"))
                .unwrap();
        let mut indexer = Indexer::new(Arc::new(CommandTable::from_command_reply(&reply)));
        let mut raw = Vec::new();
        let push = |raw: &mut Vec<u8>, args: &[&[u8]]| crate::link_io::push_command(raw, args);
        // The indexer starts in database 0: a first `SELECT`, not part of the batch, moves it.
        let mut prelude = Vec::new();
        push(&mut prelude, &[b"SELECT", db.to_string().as_bytes()]);
        let limits = Limits::default();
        let command = parse_command(&prelude, 0, &limits).unwrap().unwrap();
        indexer.add(&mut FrameIndex::default(), &prelude, &command, 0);
        for args in commands {
            let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            push(&mut raw, &args);
        }
        let mut index = FrameIndex::default();
        let mut at = 0;
        while let Some(command) = parse_command(&raw[at..], at as u64, &limits).unwrap() {
            indexer.add(&mut index, &raw, &command, at);
            at += command.frame_len();
        }
        Batch::read(1000, Bytes::from(raw), index)
    }

    fn words(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn command() -> impl Strategy<Value = Vec<Vec<u8>>> {
        let other = prop::sample::select(vec![
            words(&["SET", "secret:a", "1"]),
            words(&["SELECT", "0"]),
            words(&["SELECT", "1"]),
            words(&["MULTI"]),
            words(&["EXEC"]),
            words(&["PING"]),
            words(&["MOVE", "perf:host0", "1"]),
            words(&["ZUNIONSTORE", "perf:host1", "2", "perf:host2", "secret:b"]),
            words(&["ZUNIONSTORE", "perf:host1", "2", "perf:host2", "perf:host3"]),
            words(&["DEL", "perf:host0", "secret:a"]),
            words(&["FLUSHDB"]),
            words(&["EVAL", "return 1", "0"]),
        ]);
        prop_oneof![
            4 => (0..4u8).prop_map(|h| words(&["ZADD", &format!("perf:host{h}"), "1", "{\"cpu\":1}"])),
            1 => other,
        ]
    }

    proptest! {
        #[test]
        fn the_whole_batch_is_what_the_views_selection_answers(
            commands in proptest::collection::vec(command(), 1..12),
            db in 0..2u32,
        ) {
            let patterns = vec!["perf:*".to_string()];
            let (view, allow) = (View::new(&patterns, 10), Allow::new(&patterns));
            let batch = batch(&commands, db);
            let selected = view.sub.select(&batch, batch.start, &allow);
            if let Some(whole) = whole(&batch, &allow) {
                prop_assert_eq!(vec![whole], selected);
            }
        }
    }

    #[test]
    fn a_batch_of_allowed_writes_in_the_states_database_is_received_whole() {
        let patterns = vec!["perf:*".to_string()];
        let allow = Allow::new(&patterns);
        let samples = vec![
            words(&["ZADD", "perf:a", "1", "x"]),
            words(&["SELECT", "0"]),
            words(&["ZADD", "perf:b", "2", "y"]),
        ];
        let received = batch(&samples, 0);
        assert_eq!(
            whole(&received, &allow),
            Some(Delivery::Commands {
                start: 1000,
                bytes: received.raw()
            })
        );
        // A key outside --allow, a write in another database, a keyless command: the view's selection answers.
        for other in [
            words(&["SET", "secret:a", "1"]),
            words(&["PING"]),
            words(&["MOVE", "perf:a", "1"]),
        ] {
            let mut commands = samples.clone();
            commands.insert(1, other);
            assert_eq!(whole(&batch(&commands, 0), &allow), None);
        }
        assert_eq!(whole(&batch(&samples, 1), &allow), None);
    }
}
