//! The backlog: the relay's bounded ring of recent replication-stream batches, which every browser session reads
//! at its own cursor — what a Redis primary's replication backlog is to its replicas.
//!
//! The replica link appends each batch of whole commands once, and sessions take shared slices of it. A batch as
//! long as a good part of a read keeps the link's read buffer itself (no copy: at full speed, that is every
//! batch), a shorter one a copy of its own ([`MIN_SHARED_BATCH`]). Memory is bounded by the ring's byte capacity,
//! whatever the number or speed of browsers: a session whose cursor falls behind the ring's start is told to
//! resynchronise. A browser that reconnects with an `(epoch, offset)` still inside the ring resumes where it was,
//! without a snapshot.
//!
//! A command too large to hold is never in the ring: the link appends it as a batch that keeps only its offsets and
//! the names of the keys it may write ([`Backlog::append_unheld`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::Mutex;

use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::watch;

use crate::frames::{FrameIndex, Kind};
use crate::watchers::{Bell, Watchers};

/// Default capacity of the ring, in bytes of raw stream.
pub const DEFAULT_BACKLOG_BYTES: usize = 64 * 1024 * 1024;
/// What a batch of offsets only counts for in the ring's capacity: about its struct, message and index.
const OFFSETS_ONLY_COST: usize = 128;
/// A batch of at least this many bytes keeps the link's read buffer as it is ([`Batch::read`]); a shorter one is
/// copied. A slice keeps its whole buffer alive, and the link reads into buffers of at most a block
/// (`link_io::BLOCK`, 512 KiB) besides one command being read: so what the ring keeps alive is at most four times
/// the bytes it counts, where a buffer could otherwise stay alive for a few bytes of it. At full speed the reads
/// fill a block each, in batches of up to 512 KiB, and the ring keeps alive what it counts.
pub const MIN_SHARED_BATCH: usize = crate::link_io::BLOCK / 4;

/// A run of whole commands, as the link read them.
#[derive(Debug, Clone)]
pub struct Batch {
    pub start: u64,
    pub end: u64,
    /// The commands' bytes when [`Batch::held`] (a slice of the link's read buffer, or a copy: [`Batch::read`]);
    /// else the names of a command too large to hold, or nothing.
    pub raw: Bytes,
    /// Where each command frame and its keys are, for sessions that filter.
    pub index: Arc<FrameIndex>,
    /// Whether the batch holds the stream's bytes from `start` to `end`. A command too large to hold does not:
    /// its one frame is empty, and [`Batch::raw`] holds only the names its keys point into. Nor do commands no
    /// session could be sent anything of ([`Batch::offsets_only`]): no frame, no byte.
    pub held: bool,
    /// When the link appended it, for the delay until sessions send it (`timings::STREAM_DELAY`).
    pub received: Instant,
    /// The keys its frames name and where, made by the first session of exact keys that reads it: the others then
    /// pass a batch without one of their keys, or find the frames that name them, with a lookup per key, not a look
    /// at every frame.
    pub keys: Arc<OnceLock<BatchKeys>>,
}

/// The keys a batch's frames name, as hashes ([`BatchKeys::hash`]), each with the frames that name it: a session
/// of a few exact keys looks up its keys and judges only those frames, not every frame of the batch (a collision
/// only makes it judge a frame more).
#[derive(Debug, Default)]
pub struct BatchKeys {
    /// A frame reaches every session (`SELECT`, a flush, one that may have written any key), or a `MULTI` block
    /// must be judged whole: a session then looks at every frame.
    every_frame: bool,
    /// For each key's hash, the frames (their indexes in the batch) that name it, in stream order.
    frames: HashMap<u64, Vec<u32>, foldhash::fast::RandomState>,
}

/// The hash of key names in [`BatchKeys`], seeded at random once per process.
static KEY_HASHER: LazyLock<foldhash::fast::RandomState> = LazyLock::new(Default::default);

impl BatchKeys {
    fn of(batch: &Batch) -> BatchKeys {
        let raw = batch.raw();
        let mut keys = BatchKeys::default();
        for (at, frame) in batch.index.frames.iter().enumerate() {
            match frame.kind {
                Kind::Select | Kind::AllDbs | Kind::WholeDb | Kind::WithheldAll | Kind::Multi => {
                    keys.every_frame = true
                }
                Kind::Keyed | Kind::Withheld => {
                    let ranges = batch
                        .index
                        .keys
                        .get(frame.keys.start as usize..frame.keys.end as usize)
                        .unwrap_or_default();
                    for range in ranges {
                        if let Some(name) = raw.get(range.start as usize..range.end as usize) {
                            let frames = keys.frames.entry(BatchKeys::hash(name)).or_default();
                            // A frame that names the key twice is judged once.
                            if frames.last() != Some(&(at as u32)) {
                                frames.push(at as u32);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        keys
    }

    pub fn hash(key: &[u8]) -> u64 {
        KEY_HASHER.hash_one(key)
    }
}

impl Batch {
    /// Whole commands that occupied `start..end`, copied; `raw` is their bytes when `held`, else only the names of
    /// a command too large to hold (see [`Backlog::append_unheld`]).
    pub fn new(start: u64, end: u64, raw: &[u8], index: FrameIndex, held: bool) -> Batch {
        Batch::keeping(start, end, Bytes::copy_from_slice(raw), index, held)
    }

    /// Whole commands as the link read them, from `start` on: `raw` kept as it is (a slice of the link's read
    /// buffer) when it is at least [`MIN_SHARED_BATCH`] long, else copied, so that a few bytes never keep a whole
    /// read buffer alive.
    pub fn read(start: u64, raw: Bytes, index: FrameIndex) -> Batch {
        let end = start + raw.len() as u64;
        if raw.len() < MIN_SHARED_BATCH {
            return Batch::new(start, end, &raw, index, true);
        }
        Batch::keeping(start, end, raw, index, true)
    }

    fn keeping(start: u64, end: u64, raw: Bytes, index: FrameIndex, held: bool) -> Batch {
        Batch {
            start,
            end,
            raw,
            index: Arc::new(index),
            held,
            received: Instant::now(),
            keys: Arc::default(),
        }
    }

    /// Commands that occupied `start..end` of which no session could be sent anything (`crate::reachable`): only
    /// their offsets are kept.
    pub fn offsets_only(start: u64, end: u64) -> Batch {
        Batch::new(start, end, b"", FrameIndex::default(), false)
    }

    /// The frames (their indexes, in stream order) that a session watching exactly `keys` may get something of:
    /// those that name one of `keys`; `None` when it must look at every frame (a frame that reaches everyone, or a
    /// `MULTI` block, which goes whole).
    pub fn frames_naming(&self, keys: &HashSet<Vec<u8>>) -> Option<Vec<u32>> {
        let batch = self.keys.get_or_init(|| BatchKeys::of(self));
        if batch.every_frame {
            return None;
        }
        let mut frames: Vec<u32> = keys
            .iter()
            .filter_map(|key| batch.frames.get(&BatchKeys::hash(key)))
            .flatten()
            .copied()
            .collect();
        frames.sort_unstable();
        frames.dedup();
        Some(frames)
    }

    /// Whether it is [`Batch::offsets_only`].
    fn is_offsets_only(&self) -> bool {
        !self.held && self.index.frames.is_empty()
    }

    /// What the batch counts for in the ring's capacity: its bytes, or for one of offsets only, its bookkeeping,
    /// so that however many of them come the ring stays bounded.
    fn cost(&self) -> usize {
        match self.raw().len() {
            0 if !self.held => OFFSETS_ONLY_COST,
            bytes => bytes,
        }
    }

    /// The raw commands (a shared slice).
    pub fn raw(&self) -> Bytes {
        self.raw.clone()
    }

    /// The raw commands from `offset` on; `offset` must be a command boundary inside the batch.
    pub fn raw_from(&self, offset: u64) -> Bytes {
        self.raw()
            .slice(offset.saturating_sub(self.start) as usize..)
    }
}

/// Which stream the ring holds: a replication ID, and a generation that changes with every full resync (even one
/// that keeps the ID), so sessions notice that offsets restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub epoch: String,
    pub generation: u64,
}

/// What a session gets when it asks for what follows its cursor.
#[derive(Debug)]
pub enum Read {
    /// Batches after the cursor, oldest first; the cursor moves to the last one's end.
    Batches(Vec<Batch>),
    /// Nothing new yet: wait for [`Backlog::changed`].
    Wait,
    /// The cursor fell out of the ring.
    Behind { start: u64 },
    /// The ring now holds another stream (a full resync happened): start over.
    Restarted { stream: Stream },
}

/// What a session rung by a bell gets ([`Backlog::read_watched`]).
#[derive(Debug)]
pub enum WatchedRead {
    /// Nothing from the cursor to `to` concerns the session: its cursor moves there. `caught_up`: `to` is the
    /// ring's end, and the session may skip again from there; else the batch at `to` may concern it.
    Skipped {
        to: u64,
        caught_up: bool,
    },
    Read(Read),
}

#[derive(Debug)]
struct Ring {
    stream: Option<Stream>,
    /// The replication ID the stream had before its current one, and the last offset under it: after a failover
    /// the promoted node continues the offsets under a new ID, and a browser at an offset of the old one has
    /// missed nothing (Redis's own `replid2` rule for `PSYNC`).
    previous: Option<(String, u64)>,
    live: bool,
    /// Offset of the first byte still held (= `end` when empty).
    start: u64,
    end: u64,
    batches: VecDeque<Batch>,
    bytes: usize,
    capacity: usize,
}

pub struct Backlog {
    ring: Mutex<Ring>,
    /// Bumped whenever the stream goes on under a new replication ID (a failover), so sessions notice with one
    /// atomic load per read instead of a look at the ring.
    renames: std::sync::atomic::AtomicU64,
    /// The ring's end offset, bumped on every append and restart; sessions wait on it.
    end: watch::Sender<u64>,
    /// The sessions following the ring, rung by the batches that may concern them.
    watchers: Watchers,
}

impl Backlog {
    pub fn new(capacity: usize) -> Self {
        Backlog {
            ring: Mutex::new(Ring {
                stream: None,
                previous: None,
                live: false,
                start: 0,
                end: 0,
                batches: VecDeque::new(),
                bytes: 0,
                capacity,
            }),
            end: watch::channel(0).0,
            renames: Default::default(),
            watchers: Watchers::default(),
        }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A panic while holding the lock leaves the ring consistent (every update is a few assignments).
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver that wakes whenever the ring changes.
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.end.subscribe()
    }

    /// The link finished a full resync: the ring now holds `epoch` from `offset`, and its old contents go.
    pub fn restart(&self, epoch: &str, offset: u64) {
        let rung = {
            let mut ring = self.ring();
            let generation = ring.stream.as_ref().map_or(0, |s| s.generation + 1);
            ring.stream = Some(Stream {
                epoch: epoch.to_string(),
                generation,
            });
            ring.previous = None;
            ring.live = true;
            ring.start = offset;
            ring.end = offset;
            ring.batches.clear();
            ring.bytes = 0;
            self.watchers.ring_all(0)
        };
        Watchers::wake(rung);
        self.end.send_replace(offset);
    }

    /// Bytes the ring holds at most.
    pub fn capacity(&self) -> usize {
        self.ring().capacity
    }

    /// The link resumed the same stream after a reconnect (`+CONTINUE`), possibly under a new replication ID that
    /// continues the old offsets (after a failover): the ring and every cursor stay valid.
    pub fn resume(&self, epoch: &str) {
        let mut ring = self.ring();
        let end = ring.end;
        if let Some(stream) = ring.stream.as_mut() {
            if stream.epoch != epoch {
                let old = std::mem::replace(&mut stream.epoch, epoch.to_string());
                ring.previous = Some((old, end));
                self.renames
                    .fetch_add(1, std::sync::atomic::Ordering::Release);
            }
        }
        ring.live = true;
    }

    /// Appends whole commands that occupied `start..start + raw.len()`; evicts the oldest beyond capacity.
    pub fn append(&self, start: u64, raw: &[u8], index: FrameIndex) {
        self.push(start, start + raw.len() as u64, raw, index, true);
    }

    /// Appends a command too large to hold, which occupied `start..end`: only `names`, which `index`'s one frame's
    /// keys point into, are kept. No session can receive the command; those watching its keys learn they are stale.
    pub fn append_unheld(&self, start: u64, end: u64, names: &[u8], index: FrameIndex) {
        self.push(start, end, names, index, false);
    }

    fn push(&self, start: u64, end: u64, raw: &[u8], index: FrameIndex, held: bool) {
        self.append_batch(Batch::new(start, end, raw, index, held));
    }

    /// Appends a batch made with [`Batch::new`] (the link makes it first when its state reads it too); evicts the
    /// oldest beyond capacity.
    pub fn append_batch(&self, batch: Batch) {
        let end = batch.end;
        let rung = {
            let mut ring = self.ring();
            // Under the ring's lock: a session that takes its bell sees the batch in the ring (watchers.rs).
            let rung = self.watchers.ring(batch.start, &batch.index, &batch.raw());
            debug_assert_eq!(batch.start, ring.end, "batches are contiguous");
            match ring.batches.back_mut() {
                // Offsets after offsets: one run of them, however many batches the link read them in.
                Some(last) if batch.is_offsets_only() && last.is_offsets_only() => last.end = end,
                _ => {
                    ring.bytes += batch.cost();
                    ring.batches.push_back(batch);
                }
            }
            ring.end = end;
            while ring.bytes > ring.capacity {
                let Some(oldest) = ring.batches.pop_front() else {
                    break;
                };
                ring.bytes -= oldest.cost();
                ring.start = oldest.end;
            }
            rung
        };
        Watchers::wake(rung);
        self.end.send_replace(end);
    }

    pub fn set_offline(&self) {
        self.ring().live = false;
    }

    pub fn is_live(&self) -> bool {
        self.ring().live
    }

    /// The stream and offset a new session starts at: where it asked to resume, if that is still held (in the
    /// current epoch, or in the previous one up to where it ended), else the ring's end. `None` until the link has
    /// synced once.
    pub fn join(&self, resume: Option<(&str, u64)>) -> Option<(Stream, u64, bool)> {
        let ring = self.ring();
        let stream = ring.stream.clone()?;
        match resume {
            Some((epoch, offset))
                if (epoch == stream.epoch
                    || ring
                        .previous
                        .as_ref()
                        .is_some_and(|(old, end)| old == epoch && offset <= *end))
                    && (ring.start..=ring.end).contains(&offset) =>
            {
                Some((stream, offset, true))
            }
            _ => Some((stream, ring.end, false)),
        }
    }

    /// How many times the stream went on under a new replication ID; read it, then [`Backlog::position`] for the ID.
    pub fn renames(&self) -> u64 {
        self.renames.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether a browser at `offset` of `epoch` is ahead of the ring: same stream, but the link has not received
    /// that far yet (it follows another node than the relay the browser came from, a moment behind).
    pub fn is_ahead(&self, epoch: &str, offset: u64) -> bool {
        let ring = self.ring();
        ring.stream.as_ref().is_some_and(|s| s.epoch == epoch) && offset > ring.end
    }

    /// Registers a session that watches `keys` exactly, or (`None`) patterns; it leaves when the [`Watch`] drops.
    ///
    /// [`Watch`]: crate::watchers::Watch
    pub fn watch(&self, keys: Option<Vec<Vec<u8>>>) -> crate::watchers::Watch<'_> {
        self.watchers.watch(keys)
    }

    /// What follows `cursor` in `stream`, at most about `budget` bytes of it (always at least one batch). The
    /// first batch may start before the cursor: take it from the cursor on.
    pub fn read(&self, stream: &Stream, cursor: u64, budget: usize) -> Read {
        let ring = self.ring();
        self.read_locked(ring, stream, cursor, budget)
    }

    /// [`Backlog::read`] for a session rung by `bell`. With `caught_up` (its last read found nothing after its
    /// cursor, and it has not moved since), nothing appended before where the bell says concerns the session
    /// (watchers.rs): [`WatchedRead::Skipped`] there, or to the ring's end if the bell is silent, without a look at
    /// the batches, even those the ring has evicted since.
    pub fn read_watched(
        &self,
        stream: &Stream,
        cursor: u64,
        budget: usize,
        bell: &Bell,
        caught_up: bool,
    ) -> WatchedRead {
        let ring = self.ring();
        let rung = bell.take();
        let same_stream = ring
            .stream
            .as_ref()
            .is_some_and(|current| current.generation == stream.generation);
        let to = rung.unwrap_or(ring.end).min(ring.end);
        if caught_up && same_stream && to > cursor {
            return WatchedRead::Skipped {
                to,
                caught_up: to == ring.end,
            };
        }
        WatchedRead::Read(self.read_locked(ring, stream, cursor, budget))
    }

    fn read_locked(
        &self,
        ring: std::sync::MutexGuard<'_, Ring>,
        stream: &Stream,
        cursor: u64,
        budget: usize,
    ) -> Read {
        match &ring.stream {
            Some(current) if current.generation == stream.generation => {}
            Some(current) => {
                return Read::Restarted {
                    stream: current.clone(),
                }
            }
            None => return Read::Wait,
        }
        if cursor < ring.start {
            return Read::Behind { start: ring.start };
        }
        if cursor >= ring.end {
            return Read::Wait;
        }
        let first = ring.batches.partition_point(|b| b.end <= cursor);
        let mut out = Vec::new();
        let mut taken = 0;
        for batch in ring.batches.range(first..) {
            if !out.is_empty() && taken >= budget {
                break;
            }
            taken += (batch.end - batch.start.max(cursor)) as usize;
            out.push(batch.clone());
        }
        drop(ring);
        // Sessions read a batch once and send what they read at once: this is the delay a write waits in the relay.
        for batch in &out {
            crate::timings::observe(&crate::timings::STREAM_DELAY, batch.received.elapsed());
        }
        Read::Batches(out)
    }

    /// (start, end, bytes held) of the ring, for metrics.
    pub fn extent(&self) -> (u64, u64, usize) {
        let ring = self.ring();
        (ring.start, ring.end, ring.bytes)
    }

    /// The stream being followed and the oldest offset the ring holds of it: the earliest a session can join at.
    pub fn oldest(&self) -> Option<(Stream, u64)> {
        let ring = self.ring();
        Some((ring.stream.clone()?, ring.start))
    }

    /// The stream being followed and its newest offset, for health checks.
    pub fn position(&self) -> Option<(Stream, u64)> {
        let ring = self.ring();
        Some((ring.stream.clone()?, ring.end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches(read: Read) -> Vec<(u64, u64)> {
        match read {
            Read::Batches(b) => b.iter().map(|b| (b.start, b.end)).collect(),
            other => panic!("expected batches, got {other:?}"),
        }
    }

    #[test]
    fn sessions_read_at_their_own_cursor() {
        let backlog = Backlog::new(1000);
        assert!(backlog.join(None).is_none());
        backlog.restart("e1", 100);
        let (stream, at, resumed) = backlog.join(None).unwrap();
        assert_eq!((at, resumed), (100, false));
        backlog.append(100, b"PING\r\n", FrameIndex::default());
        backlog.append(106, b"PING\r\nPING\r\n", FrameIndex::default());
        assert_eq!(
            batches(backlog.read(&stream, 100, 1 << 20)),
            vec![(100, 106), (106, 118)]
        );
        assert_eq!(batches(backlog.read(&stream, 100, 1)), vec![(100, 106)]);
        assert!(matches!(backlog.read(&stream, 118, 1 << 20), Read::Wait));
    }

    #[test]
    fn a_resume_inside_a_batch_gets_its_tail() {
        let backlog = Backlog::new(1000);
        backlog.restart("e1", 0);
        backlog.append(0, b"PING\r\nPING\r\n", FrameIndex::default());
        let (stream, at, resumed) = backlog.join(Some(("e1", 6))).unwrap();
        assert_eq!((at, resumed), (6, true));
        let Read::Batches(batches) = backlog.read(&stream, at, 1 << 20) else {
            panic!()
        };
        assert_eq!(
            (batches[0].start, &batches[0].raw_from(at)[..]),
            (0, &b"PING\r\n"[..])
        );
        assert!(!backlog.join(Some(("other", 6))).unwrap().2);
        assert!(!backlog.join(Some(("e1", 99))).unwrap().2);
    }

    #[test]
    fn the_ring_is_bounded_and_slow_cursors_fall_behind() {
        let backlog = Backlog::new(12);
        backlog.restart("e1", 0);
        let (stream, _, _) = backlog.join(None).unwrap();
        for i in 0..5 {
            backlog.append(i * 6, b"PING\r\n", FrameIndex::default());
        }
        assert_eq!(backlog.extent(), (18, 30, 12));
        assert!(matches!(
            backlog.read(&stream, 6, 100),
            Read::Behind { start: 18 }
        ));
        assert_eq!(
            batches(backlog.read(&stream, 18, 100)),
            vec![(18, 24), (24, 30)]
        );
    }

    #[test]
    fn runs_of_offsets_only_cost_one_batch() {
        let backlog = Backlog::new(1000);
        backlog.restart("e1", 0);
        let (stream, _, _) = backlog.join(None).unwrap();
        backlog.append(0, b"PING\r\n", FrameIndex::default());
        for i in 0..100 {
            backlog.append_batch(Batch::offsets_only(6 + i * 10, 16 + i * 10));
        }
        backlog.append(1006, b"PING\r\n", FrameIndex::default());
        assert_eq!(backlog.extent(), (0, 1012, 6 + OFFSETS_ONLY_COST + 6));
        assert_eq!(
            batches(backlog.read(&stream, 0, 1 << 20)),
            vec![(0, 6), (6, 1006), (1006, 1012)]
        );
        let (_, at, resumed) = backlog.join(Some(("e1", 500))).unwrap();
        assert_eq!((at, resumed), (500, true));
    }

    #[test]
    fn a_failover_keeps_the_old_epoch_resumable_up_to_where_it_ended() {
        let backlog = Backlog::new(1000);
        backlog.restart("e1", 0);
        backlog.append(0, b"PING\r\n", FrameIndex::default());
        backlog.resume("e2");
        backlog.append(6, b"PING\r\n", FrameIndex::default());
        let (stream, at, resumed) = backlog.join(Some(("e1", 6))).unwrap();
        assert_eq!((stream.epoch.as_str(), at, resumed), ("e2", 6, true));
        assert!(backlog.join(Some(("e2", 12))).unwrap().2);
        assert!(
            !backlog.join(Some(("e1", 12))).unwrap().2,
            "e1 never reached 12"
        );
        backlog.restart("e3", 0);
        assert!(!backlog.join(Some(("e2", 0))).unwrap().2);
    }

    #[test]
    fn a_full_resync_restarts_every_session() {
        let backlog = Backlog::new(100);
        backlog.restart("e1", 0);
        let (old, _, _) = backlog.join(None).unwrap();
        backlog.restart("e1", 500);
        match backlog.read(&old, 0, 100) {
            Read::Restarted { stream } => {
                assert_eq!((stream.epoch.as_str(), stream.generation), ("e1", 1))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_command_too_large_to_hold_costs_only_its_key_names() {
        let backlog = Backlog::new(100);
        backlog.restart("e1", 0);
        let (stream, _, _) = backlog.join(None).unwrap();
        backlog.append(0, b"PING\r\n", FrameIndex::default());
        let gigabyte = 1 << 30;
        backlog.append_unheld(6, 6 + gigabyte, b"perf:set", FrameIndex::default());
        assert_eq!(backlog.extent(), (0, 6 + gigabyte, 6 + 8));
        let Read::Batches(batches) = backlog.read(&stream, 6, 1 << 20) else {
            panic!("expected the unheld batch")
        };
        assert_eq!(
            (batches[0].held, &batches[0].raw()[..]),
            (false, &b"perf:set"[..])
        );
        // A session's budget counts the offsets it covers: nothing comes with it.
        backlog.append(6 + gigabyte, b"PING\r\n", FrameIndex::default());
        assert_eq!(
            self::batches(backlog.read(&stream, 6, 1 << 20)),
            vec![(6, 6 + gigabyte)]
        );
    }
}
