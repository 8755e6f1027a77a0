//! The link's queue to the relay's state: the state is applied on a thread of its own, trailing the backlog, so
//! that the link, its `REPLCONF ACK`, the backlog and every session's delivery run at the stream's pace and not at
//! the state's (its windows take several times longer per byte than the link's reading and filtering: round ten of
//! docs/BENCHMARKS.md, "Ingest").
//!
//! The link hands over every event the state needs, in stream order ([`StateEvent`]): the batches (the same
//! [`Batch`] the backlog holds, shared, not copied), the full sync's beginning, its RDB chunks and its end or
//! abandonment, and a partial resync. One consumer thread calls the [`RelayState`] method of each, in that order.
//! The queue is bounded in bytes (`--state-queue-bytes`): an event is always taken, and the link then waits
//! ([`StateFeed::room`]) until the queue is back under its bound, so the state is never dropped for being slow and
//! the queue holds at most the bound and one read of the link.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::backlog::Batch;
use crate::frames::{Frame, FrameIndex};

use super::RelayState;

/// Bytes an event counts for besides its stream bytes and its index: its place in the queue and its bookkeeping, so
/// that however many small ones come the queue stays bounded.
const EVENT_COST: usize = 128;

/// What the link hands the state, in stream order.
pub enum StateEvent {
    /// A batch of the stream, as the backlog holds it (or, where the backlog keeps only pieces of it, a copy of it
    /// whole, taken before the pieces left out are wiped).
    Batch(Batch),
    /// A full sync of `epoch` at `offset` begins.
    BeginFullSync { epoch: String, offset: u64 },
    /// The next piece of the full sync's RDB payload.
    Load(Bytes),
    /// The full sync's payload ended.
    FinishFullSync,
    /// An attempt of the link ended (it failed, or a switch of primary cancelled it): a payload it did not end
    /// never will.
    AbandonFullSync,
    /// The link resumed the stream (`+CONTINUE`) under this replication ID.
    Resume(String),
}

impl StateEvent {
    /// What the event counts for in the queue's bound: the memory it holds.
    fn cost(&self) -> usize {
        EVENT_COST
            + match self {
                StateEvent::Batch(batch) => batch.raw.len() + index_bytes(&batch.index),
                StateEvent::Load(chunk) => chunk.len(),
                StateEvent::BeginFullSync { epoch, .. } | StateEvent::Resume(epoch) => epoch.len(),
                StateEvent::FinishFullSync | StateEvent::AbandonFullSync => 0,
            }
    }

    /// The event's name, for the log.
    fn name(&self) -> &'static str {
        match self {
            StateEvent::Batch(_) => "a batch",
            StateEvent::BeginFullSync { .. } => "a full sync's beginning",
            StateEvent::Load(_) => "a piece of a full sync's RDB",
            StateEvent::FinishFullSync => "a full sync's end",
            StateEvent::AbandonFullSync => "a full sync's abandonment",
            StateEvent::Resume(_) => "a partial resync",
        }
    }

    /// The stream offset the state is at once it applied the event, if the event moves it.
    fn end(&self) -> Option<u64> {
        match self {
            StateEvent::Batch(batch) => Some(batch.end),
            StateEvent::BeginFullSync { offset, .. } => Some(*offset),
            _ => None,
        }
    }
}

fn index_bytes(index: &FrameIndex) -> usize {
    index.frames.len() * std::mem::size_of::<Frame>()
        + index.keys.len() * std::mem::size_of::<std::ops::Range<u32>>()
}

struct Queue {
    events: VecDeque<StateEvent>,
    /// What the events queued, and the one being applied, count for.
    bytes: usize,
    /// Set when the link goes: the consumer applies what is queued if `drain`, else drops it, and ends.
    closed: bool,
    drain: bool,
}

/// Debug builds only: while the file this names exists, the state's thread applies no event, so that a test can
/// hold the state behind the link without depending on relative speeds (`server/tests/state_trailing.rs`). Read
/// when the thread starts; release builds do not look.
#[cfg(debug_assertions)]
pub const HOLD_ENV: &str = "REPLICAST_DEBUG_HOLD_STATE";

struct Shared {
    state: Arc<RelayState>,
    /// The file of [`HOLD_ENV`], if set.
    #[cfg(debug_assertions)]
    hold: Option<std::path::PathBuf>,
    queue: Mutex<Queue>,
    /// Wakes the consumer when an event comes.
    queued: Condvar,
    /// Wakes the link when the queue went back under its bound.
    room: Notify,
    bound: usize,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // The queue's own code does not panic while holding it; the events it holds stay valid either way.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The link's end of the state's queue, and the thread that applies it. Dropped, the thread drops what is queued
/// and ends; [`StateFeed::finish`] waits for it to apply everything first.
pub struct StateFeed {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl StateFeed {
    /// Starts the thread that applies `state`'s events, queued up to `bound` bytes (see [`StateFeed::room`]).
    pub fn start(state: Arc<RelayState>, bound: usize) -> std::io::Result<StateFeed> {
        let shared = Arc::new(Shared {
            state,
            #[cfg(debug_assertions)]
            hold: std::env::var_os(HOLD_ENV).map(Into::into),
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                bytes: 0,
                closed: false,
                drain: false,
            }),
            queued: Condvar::new(),
            room: Notify::new(),
            bound: bound.max(1),
        });
        let thread = std::thread::Builder::new()
            .name("relay-state".into())
            .spawn({
                let shared = shared.clone();
                move || apply_events(&shared)
            })?;
        Ok(StateFeed {
            shared,
            thread: Some(thread),
        })
    }

    /// The state the events go to.
    pub fn state(&self) -> &RelayState {
        &self.shared.state
    }

    /// Queues `event` whatever the queue holds: the link calls [`StateFeed::room`] after each read, so the queue
    /// passes its bound by at most one read's events. No allocation but the queue's own growth, which stops at the
    /// most events it ever held.
    pub fn push(&self, event: StateEvent) {
        let (cost, end) = (event.cost(), event.end());
        if matches!(event, StateEvent::BeginFullSync { .. }) {
            self.shared.state.sync_queued();
        }
        let mut queue = self.shared.queue();
        queue.bytes += cost;
        queue.events.push_back(event);
        let bytes = queue.bytes;
        drop(queue);
        self.shared.state.queued(bytes, end);
        self.shared.queued.notify_one();
    }

    /// Waits until the queue is within its bound: the link's backpressure, so that memory stays bounded while the
    /// state is slower than the stream.
    pub async fn room(&self) {
        loop {
            let notified = self.shared.room.notified();
            if self.shared.queue().bytes <= self.shared.bound {
                return;
            }
            notified.await;
        }
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queue().bytes
    }

    /// Waits until the thread applied every event queued, and ends it.
    pub fn finish(mut self) {
        self.close(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn close(&self, drain: bool) {
        let mut queue = self.shared.queue();
        queue.closed = true;
        queue.drain = drain;
        if !drain {
            // Dropped here, not by the thread (which may be applying an event): a full sync's beginning that will
            // never be applied is no longer awaited.
            let dropped = std::mem::take(&mut queue.events);
            let mut syncs = 0;
            for event in &dropped {
                queue.bytes -= event.cost();
                syncs += usize::from(matches!(event, StateEvent::BeginFullSync { .. }));
            }
            self.shared.state.dequeued(queue.bytes, None);
            if syncs > 0 {
                self.shared.state.syncs_dropped(syncs);
            }
        }
        drop(queue);
        self.shared.queued.notify_one();
    }
}

impl Drop for StateFeed {
    fn drop(&mut self) {
        // The link went (the relay stops, or the shard left the cluster): what is queued is of no use to anyone.
        if self.thread.is_some() {
            self.close(false);
        }
    }
}

/// The consumer thread: each event in order, to the end.
fn apply_events(shared: &Shared) {
    loop {
        let mut queue = shared.queue();
        let event = loop {
            if queue.closed && (!queue.drain || queue.events.is_empty()) {
                return;
            }
            if let Some(event) = queue.events.pop_front() {
                break event;
            }
            queue = shared
                .queued
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        };
        drop(queue);
        #[cfg(debug_assertions)]
        if let Some(hold) = &shared.hold {
            while hold.exists() {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        // Counted until applied: what the state holds of it is in memory until then.
        let (cost, end, name) = (event.cost(), event.end(), event.name());
        let state = &shared.state;
        // A bug applying one event must not stop the thread: the queue would only grow, and the link, waiting for
        // room, would stop reading and acknowledging, saying nothing. The state is dropped instead (what it holds
        // may be half-applied), joins read Redis, and the next full sync builds it again.
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match event {
            StateEvent::Batch(batch) => state.apply(&batch),
            StateEvent::BeginFullSync { epoch, offset } => state.begin_full_sync(&epoch, offset),
            StateEvent::Load(chunk) => state.load(&chunk),
            StateEvent::FinishFullSync => state.finish_full_sync(),
            StateEvent::AbandonFullSync => state.abandon_full_sync(),
            StateEvent::Resume(epoch) => state.resume(&epoch),
        }));
        if applied.is_err() {
            tracing::error!(
                "relay state: applying {name} panicked; the state is dropped until the next full sync, and joins \
                 read Redis"
            );
            state.drop_after_panic();
        }
        let mut queue = shared.queue();
        queue.bytes -= cost;
        let bytes = queue.bytes;
        drop(queue);
        state.dequeued(bytes, end);
        if bytes <= shared.bound {
            shared.room.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::state::for_tests::{self, EMPTY_RDB};

    fn batch(start: u64, raw: &[u8]) -> Batch {
        Batch::new(
            start,
            start + raw.len() as u64,
            raw,
            FrameIndex::default(),
            true,
        )
    }

    #[test]
    fn a_panic_applying_an_event_drops_the_state_and_the_thread_goes_on() {
        let state = Arc::new(for_tests::state());
        let feed = StateFeed::start(state.clone(), 1 << 20).unwrap();
        feed.push(StateEvent::BeginFullSync {
            epoch: "a".repeat(40),
            offset: 100,
        });
        feed.push(StateEvent::Load(Bytes::from_static(EMPTY_RDB)));
        feed.push(StateEvent::FinishFullSync);
        state.panics.store(true, Ordering::Release);
        feed.push(StateEvent::Batch(batch(100, b"PING\r\n")));
        // After the panic, the thread still applies what follows: a full sync builds the state again.
        feed.push(StateEvent::BeginFullSync {
            epoch: "b".repeat(40),
            offset: 200,
        });
        feed.push(StateEvent::Load(Bytes::from_static(EMPTY_RDB)));
        feed.push(StateEvent::FinishFullSync);
        feed.push(StateEvent::Batch(batch(200, b"PING\r\n")));
        feed.finish();
        assert!(
            !state.panics.load(Ordering::Acquire),
            "the batch was applied"
        );
        assert_eq!(state.position(), Some(("b".repeat(40), 206)));
        assert_eq!(state.queued.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_full_sync_dropped_with_the_queue_is_no_longer_awaited() {
        let state = Arc::new(for_tests::state());
        let feed = StateFeed::start(state.clone(), 1 << 20).unwrap();
        // The thread blocks on the state's lock with the first event: the full sync's beginning stays queued.
        let held = state.inner();
        feed.push(StateEvent::Batch(batch(100, b"PING\r\n")));
        feed.push(StateEvent::BeginFullSync {
            epoch: "a".repeat(40),
            offset: 100,
        });
        assert_eq!(state.syncs_queued.load(Ordering::Acquire), 1);
        // A session waiting for the state, empty with a full sync coming, ...
        let waiting = state.reach("b", 0, std::time::Duration::from_secs(3600));
        let mut waiting = std::pin::pin!(waiting);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        fn poll_once<F: std::future::Future>(
            runtime: &tokio::runtime::Runtime,
            future: &mut std::pin::Pin<&mut F>,
        ) -> Option<F::Output> {
            runtime.block_on(async {
                tokio::select! {
                    biased;
                    out = future.as_mut() => Some(out),
                    () = std::future::ready(()) => None,
                }
            })
        }
        assert_eq!(poll_once(&runtime, &mut waiting), None);
        drop(feed);
        assert_eq!(state.syncs_queued.load(Ordering::Acquire), 0);
        // ... is told at once that none is.
        assert_eq!(poll_once(&runtime, &mut waiting), Some(false));
        drop(held);
    }

    #[test]
    fn a_state_with_a_full_sync_queued_has_no_position() {
        let state = for_tests::state();
        state.begin_full_sync(&"a".repeat(40), 100);
        state.load(EMPTY_RDB);
        state.finish_full_sync();
        assert_eq!(state.position(), Some(("a".repeat(40), 100)));
        // A full resync under the same replication ID, queued: the state is of the generation before it.
        state.sync_queued();
        assert_eq!(state.position(), None);
        state.begin_full_sync(&"a".repeat(40), 50);
        state.load(EMPTY_RDB);
        state.finish_full_sync();
        assert_eq!(state.position(), Some(("a".repeat(40), 50)));
    }
}
