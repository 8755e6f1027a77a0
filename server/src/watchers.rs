//! Which sessions a batch of the stream may concern, so that the link wakes those and not every session: with
//! 10,000 sessions each watching one host, waking every session for every batch cost 10,000 task wake-ups and
//! reads of the ring per batch, most of them finding nothing to send (docs/BENCHMARKS.md, "Fan-out").
//!
//! A session that watches exact keys only rings under each of them; one that watches patterns is rung by every
//! batch that names a key. A batch rings the sessions under each key its frames name (those they receive, and
//! those a withheld frame may have written, which become stale), and every session when it holds a frame that
//! reaches everyone (`SELECT`, `FLUSHALL`, `SWAPDB`, `FLUSHDB`, a frame that may have written any key). A ring
//! is a superset of what [`Subscription::select`](crate::subscription::Subscription::select) gives the session:
//! the database and `--allow` are judged by the session when it reads. A batch that rings nobody (offsets only,
//! keyless frames) costs the link nothing per session.
//!
//! A bell holds where the first batch that rang it starts. The backlog rings while it holds its ring's lock, and a
//! session takes its bell under the same lock, so that a session that saw the ring's end knows, when it next takes
//! its bell, that nothing between that end and where the bell says concerns it (the ring's end, if silent): it
//! moves its cursor there without reading those batches
//! ([`Backlog::read_watched`](crate::backlog::Backlog::read_watched)). A session filters only the batches that
//! rang it, and one that watches a quiet key is never told to resync because the stream went past it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::frames::{Frame, FrameIndex, Kind};

/// The bell of a session that was not rung since it last took it.
const SILENT: u64 = u64::MAX;

/// What one session is rung with.
pub struct Bell {
    /// The start of the first batch that may concern the session, appended since the session last took the bell;
    /// [`SILENT`] when none was.
    from: AtomicU64,
    wake: Notify,
}

impl Default for Bell {
    fn default() -> Self {
        Bell {
            from: AtomicU64::new(SILENT),
            wake: Notify::new(),
        }
    }
}

impl Bell {
    /// Where the first batch that may concern the session starts, if one was appended since the bell was last
    /// taken; clears it. Taken under the ring's lock (see the module's doc).
    pub(crate) fn take(&self) -> Option<u64> {
        Some(self.from.swap(SILENT, Ordering::AcqRel)).filter(|&from| from != SILENT)
    }

    /// Marks a batch that may concern the session, starting at `from`; whether the session must be woken (the
    /// bell was silent: a bell already rung has its wake-up pending).
    fn mark(&self, from: u64) -> bool {
        self.from.fetch_min(from, Ordering::AcqRel) == SILENT
    }

    /// Resolves once the bell rings (at once if it rang since the last wait).
    pub async fn rung(&self) {
        self.wake.notified().await;
    }
}

/// The sessions of one shard's backlog and the keys they watch.
#[derive(Default)]
pub struct Watchers {
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    /// Sessions watching exact keys only, under each key.
    by_key: HashMap<Vec<u8>, HashMap<u64, Arc<Bell>>>,
    /// Sessions watching patterns: rung by every batch that names a key.
    every_key: HashMap<u64, Arc<Bell>>,
}

impl Registry {
    fn all(&self) -> impl Iterator<Item = &Arc<Bell>> {
        self.by_key
            .values()
            .flat_map(HashMap::values)
            .chain(self.every_key.values())
    }
}

/// A session's place among the [`Watchers`]; leaves them when dropped.
pub struct Watch<'w> {
    watchers: &'w Watchers,
    id: u64,
    /// The keys it is rung under; `None`: every key.
    keys: Option<Vec<Vec<u8>>>,
    pub bell: Arc<Bell>,
}

impl Watchers {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // Every update is a map insert or removal: a panic elsewhere leaves the registry consistent.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a session that watches `keys` exactly, or (`None`) patterns: any key.
    pub fn watch(&self, keys: Option<Vec<Vec<u8>>>) -> Watch<'_> {
        let bell = Arc::new(Bell::default());
        let mut registry = self.registry();
        let id = registry.next_id;
        registry.next_id += 1;
        match &keys {
            Some(keys) => {
                for key in keys {
                    registry
                        .by_key
                        .entry(key.clone())
                        .or_default()
                        .insert(id, bell.clone());
                }
            }
            None => {
                registry.every_key.insert(id, bell.clone());
            }
        }
        Watch {
            watchers: self,
            id,
            keys,
            bell,
        }
    }

    /// Marks the bells of the sessions a batch may concern (the batch starting at `start`, its frames `index` over
    /// its commands `raw`); returns them, to be woken once the ring's lock is released. Called under the ring's
    /// lock.
    pub(crate) fn ring(&self, start: u64, index: &FrameIndex, raw: &[u8]) -> Vec<Arc<Bell>> {
        let registry = self.registry();
        let mut rung = Vec::new();
        let mut mark = |bell: &Arc<Bell>| {
            if bell.mark(start) {
                rung.push(bell.clone());
            }
        };
        let frames = &index.frames;
        let reaches_all = frames.iter().any(|f| {
            matches!(
                f.kind,
                Kind::Select | Kind::AllDbs | Kind::WholeDb | Kind::WithheldAll
            )
        });
        if reaches_all {
            registry.all().for_each(mark);
            return rung;
        }
        let keyed = |f: &&Frame| matches!(f.kind, Kind::Keyed | Kind::Withheld);
        if !frames.iter().any(|f| keyed(&f)) {
            return rung;
        }
        registry.every_key.values().for_each(&mut mark);
        if !registry.by_key.is_empty() {
            for frame in frames.iter().filter(keyed) {
                let keys = index
                    .keys
                    .get(frame.keys.start as usize..frame.keys.end as usize)
                    .unwrap_or_default();
                for key in keys {
                    let Some(name) = raw.get(key.start as usize..key.end as usize) else {
                        continue;
                    };
                    if let Some(bells) = registry.by_key.get(name) {
                        bells.values().for_each(&mut mark);
                    }
                }
            }
        }
        rung
    }

    /// Marks every session's bell from offset `from` on (a full resync: every session joins again); returns them,
    /// to be woken once the ring's lock is released. Called under the ring's lock.
    pub(crate) fn ring_all(&self, from: u64) -> Vec<Arc<Bell>> {
        let registry = self.registry();
        registry
            .all()
            .filter(|bell| bell.mark(from))
            .cloned()
            .collect()
    }

    /// Wakes the sessions of bells marked by [`Watchers::ring`].
    pub(crate) fn wake(rung: Vec<Arc<Bell>>) {
        for bell in rung {
            bell.wake.notify_one();
        }
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let mut registry = self.watchers.registry();
        match &self.keys {
            Some(keys) => {
                for key in keys {
                    if let Some(bells) = registry.by_key.get_mut(key) {
                        bells.remove(&self.id);
                        if bells.is_empty() {
                            registry.by_key.remove(key);
                        }
                    }
                }
            }
            None => {
                registry.every_key.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use crate::backlog::{Backlog, Read, WatchedRead};
    use crate::frames::{Frame, FrameIndex, Kind};

    /// `DEL key` as one batch's raw commands, and its index: one keyed frame.
    fn del(key: &str) -> (Vec<u8>, FrameIndex) {
        let raw = format!("*2\r\n$3\r\nDEL\r\n${}\r\n{key}\r\n", key.len()).into_bytes();
        let name = (raw.len() - 2 - key.len()) as u32..(raw.len() - 2) as u32;
        let index = FrameIndex {
            frames: vec![Frame {
                at: 0..raw.len() as u32,
                db: 0,
                target_db: 0,
                kind: Kind::Keyed,
                keys: 0..1,
                written: 1,
            }],
            keys: vec![name],
        };
        (raw, index)
    }

    /// Appends `DEL key` at the ring's end; its start.
    fn append_del(backlog: &Backlog, key: &str) -> u64 {
        let (_, end, _) = backlog.extent();
        let (raw, index) = del(key);
        backlog.append(end, &raw, index);
        end
    }

    #[test]
    fn a_session_of_one_key_skips_the_batches_of_other_keys_without_reading_them() {
        let backlog = Backlog::new(1 << 20);
        backlog.restart("e1", 0);
        let (stream, at, _) = backlog.join(None).unwrap();
        let watch = backlog.watch(Some(vec![b"perf:a".to_vec()]));
        let read = backlog.read_watched(&stream, at, 1 << 20, &watch.bell, false);
        assert!(matches!(read, WatchedRead::Read(Read::Wait)));
        for _ in 0..1000 {
            append_del(&backlog, "perf:b");
        }
        assert!(
            watch.bell.rung().now_or_never().is_none(),
            "1,000 batches of another key woke the session"
        );
        let (_, end, _) = backlog.extent();
        match backlog.read_watched(&stream, at, 1 << 20, &watch.bell, true) {
            WatchedRead::Skipped { to, caught_up } => assert_eq!((to, caught_up), (end, true)),
            other => panic!("expected a skip to {end}, got {other:?}"),
        }
        append_del(&backlog, "perf:b");
        let mine = append_del(&backlog, "perf:a");
        append_del(&backlog, "perf:b");
        assert!(watch.bell.rung().now_or_never().is_some());
        match backlog.read_watched(&stream, end, 1 << 20, &watch.bell, true) {
            WatchedRead::Skipped { to, caught_up } => assert_eq!((to, caught_up), (mine, false)),
            other => panic!("expected a skip to {mine}, got {other:?}"),
        }
        match backlog.read_watched(&stream, mine, 1 << 20, &watch.bell, false) {
            WatchedRead::Read(Read::Batches(batches)) => {
                assert_eq!(batches[0].raw_from(mine), del("perf:a").0)
            }
            other => panic!("expected the batch of perf:a, got {other:?}"),
        }
    }

    #[test]
    fn a_quiet_session_is_not_behind_when_the_ring_evicts_what_did_not_concern_it() {
        let backlog = Backlog::new(200);
        backlog.restart("e1", 0);
        let (stream, at, _) = backlog.join(None).unwrap();
        let watch = backlog.watch(Some(vec![b"perf:a".to_vec()]));
        backlog.read_watched(&stream, at, 1 << 20, &watch.bell, false);
        for _ in 0..100 {
            append_del(&backlog, "perf:b");
        }
        assert!(matches!(
            backlog.read(&stream, at, 1 << 20),
            Read::Behind { .. }
        ));
        let (_, end, _) = backlog.extent();
        assert!(matches!(
            backlog.read_watched(&stream, at, 1 << 20, &watch.bell, true),
            WatchedRead::Skipped { to, caught_up: true } if to == end
        ));
        // Evicted batches that concerned it: it is behind.
        let (_, start, _) = backlog.extent();
        append_del(&backlog, "perf:a");
        for _ in 0..100 {
            append_del(&backlog, "perf:b");
        }
        assert!(matches!(
            backlog.read_watched(&stream, start, 1 << 20, &watch.bell, true),
            WatchedRead::Read(Read::Behind { .. })
        ));
    }

    #[test]
    fn patterns_are_rung_by_every_key_and_everyone_by_select_and_a_resync() {
        let backlog = Backlog::new(1 << 20);
        backlog.restart("e1", 0);
        let patterns = backlog.watch(None);
        let keys = backlog.watch(Some(vec![b"perf:a".to_vec()]));
        append_del(&backlog, "other:x");
        assert!(patterns.bell.take().is_some());
        assert!(keys.bell.take().is_none());
        let (_, end, _) = backlog.extent();
        let select = b"*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n";
        let index = FrameIndex {
            frames: vec![Frame {
                at: 0..select.len() as u32,
                db: 1,
                target_db: 1,
                kind: Kind::Select,
                keys: 0..0,
                written: 0,
            }],
            keys: Vec::new(),
        };
        backlog.append(end, select, index);
        assert_eq!(keys.bell.take(), Some(end), "SELECT reaches every session");
        backlog.append(
            end + select.len() as u64,
            b"*1\r\n$4\r\nPING\r\n",
            FrameIndex::default(),
        );
        assert!(patterns.bell.take().is_some(), "from the SELECT");
        assert!(
            patterns.bell.take().is_none(),
            "a keyless batch rings no one"
        );
        backlog.restart("e1", 0);
        assert_eq!((keys.bell.take(), patterns.bell.take()), (Some(0), Some(0)));
    }

    #[test]
    fn a_dropped_watch_leaves() {
        let watchers = super::Watchers::default();
        let keys = watchers.watch(Some(vec![b"perf:a".to_vec(), b"perf:b".to_vec()]));
        let patterns = watchers.watch(None);
        drop((keys, patterns));
        let registry = watchers.registry();
        assert!(registry.by_key.is_empty() && registry.every_key.is_empty());
    }
}
