//! Top-ups a session was asked for and has not delivered yet. A top-up is a snapshot of a few keys taken
//! mid-stream: keys wait here until the shard's snapshotter reads them at some offset `X` ahead of the session's
//! cursor, and the snapshot waits here until the session's stream reaches `X`, where it is placed.
//!
//! A top-up asked with `since` (the history sink; browsers never send it) is answered with a past message too
//! (`wire::Past`), right before its snapshot: the items that entered each key's window after `since`, from the
//! relay's state, or, when the state did not answer, each key said not covered. Requests merged into one read
//! share the smallest `since`, and every key of the read is listed.

use std::collections::BTreeSet;

use replicast_protocol::wire;

use crate::metrics::Metrics;
use crate::relay::Relay;
use crate::shard::Shard;
use crate::snapshot::MAX_SNAPSHOT_KEYS;
use crate::subscription::Subscription;

/// Times a top-up is read again when it could not be placed in the stream (another epoch, a lagging read).
const TOPUP_ATTEMPTS: u32 = 3;

/// A top-up read and waiting for the stream to reach its offset.
pub(crate) struct ReadyTopup {
    /// The offset the snapshot was read at: a command boundary.
    pub at: u64,
    /// The snapshot message, encoded (or a digest, placed the same way).
    pub snapshot: Vec<u8>,
    /// The past message that goes right before it, for a top-up asked with `since`.
    pub past: Option<Vec<u8>>,
}

#[derive(Default)]
pub(crate) struct Topups {
    keys: BTreeSet<Vec<u8>>,
    /// The smallest `since` of the requests whose keys wait (a past message is sent with their snapshot).
    since: Option<u64>,
    /// Slots that moved to this shard: their watched keys are read with the next top-up.
    slots: BTreeSet<u16>,
    attempts: u32,
    ready: Option<ReadyTopup>,
    /// Keys that did not fit in `keys` and that the session was not told of yet.
    untold: u64,
}

impl Topups {
    /// Keys a join's snapshot had no room for: they follow as top-ups.
    pub fn with_keys(keys: Vec<Vec<u8>>) -> Self {
        let mut topups = Topups::default();
        topups.untold = topups.wait(keys);
        topups
    }

    /// Adds `keys` to those waiting, up to [`MAX_SNAPSHOT_KEYS`] (a key already waiting is taken again at the
    /// limit: it costs nothing); how many did not fit.
    fn wait(&mut self, keys: impl IntoIterator<Item = Vec<u8>>) -> u64 {
        let mut over = 0;
        for key in keys {
            if self.keys.len() < MAX_SNAPSHOT_KEYS || self.keys.contains(&key) {
                self.keys.insert(key);
            } else {
                over += 1;
            }
        }
        over
    }

    /// Takes the keys of a request that this session may top up, up to [`MAX_SNAPSHOT_KEYS`] waiting (what one
    /// snapshot reads); the notice to send about the others, if any: the keys it may not top up by name, the keys
    /// past the limit by count (they are counted in `/metrics` too).
    pub fn ask(
        &mut self,
        relay: &Relay,
        sub: &Subscription,
        keys: Vec<Vec<u8>>,
        since: Option<u64>,
    ) -> Option<String> {
        let (wanted, refused): (Vec<_>, Vec<_>) = keys
            .into_iter()
            .partition(|key| sub.wants(key) && relay.allow.allows(key));
        if !wanted.is_empty() {
            self.since = earliest(self.since, since);
        }
        let over = self.wait(wanted);
        let mut notices = Vec::new();
        if !refused.is_empty() {
            let refused: Vec<_> = refused.iter().map(|k| String::from_utf8_lossy(k)).collect();
            notices.push(format!(
                "top-up refused for keys this session does not watch or the relay does not allow: {}",
                refused.join(", ")
            ));
        }
        notices.extend(not_taken(relay, over));
        (!notices.is_empty()).then(|| notices.join("; "))
    }

    /// Slots that moved to this shard: their watched keys are read with the next top-up.
    pub fn gain_slots(&mut self, slots: BTreeSet<u16>) {
        self.slots.extend(slots);
    }

    /// Reads the waiting keys, if any and if no other top-up waits for the stream; the notice to send when a
    /// top-up failed for good, or when keys it or a snapshot left for later did not fit in those waiting.
    pub async fn read(
        &mut self,
        relay: &Relay,
        shard: &Shard,
        sub: &Subscription,
        epoch: &str,
        cursor: u64,
    ) -> Option<String> {
        let failed = self.read_waiting(relay, shard, sub, epoch, cursor).await;
        let notices: Vec<String> = failed
            .into_iter()
            .chain(not_taken(relay, std::mem::take(&mut self.untold)))
            .collect();
        (!notices.is_empty()).then(|| notices.join("; "))
    }

    async fn read_waiting(
        &mut self,
        relay: &Relay,
        shard: &Shard,
        sub: &Subscription,
        epoch: &str,
        cursor: u64,
    ) -> Option<String> {
        if self.ready.is_some() || (self.keys.is_empty() && self.slots.is_empty()) {
            return None;
        }
        let keys: Vec<Vec<u8>> = std::mem::take(&mut self.keys).into_iter().collect();
        let slots = std::mem::take(&mut self.slots);
        let since = self.since;
        let read = if slots.is_empty() {
            super::snapshot_source::take_keys(
                relay,
                shard,
                sub,
                keys.clone(),
                (epoch, cursor),
                since,
            )
            .await
        } else {
            let read = shard
                .snapshots
                .take_slots(sub, &relay.allow, slots.clone(), keys.clone())
                .await;
            if read.is_ok() {
                super::snapshot_source::counted(
                    relay,
                    shard,
                    super::snapshot_source::Source::Redis,
                );
            }
            read.map(|snapshot| (snapshot, None))
        };
        match read {
            // The snapshot's node is the one the link follows, so its offset is at or past what the link
            // delivered; anything else (a failover, a new epoch) means reading again later.
            Ok((snapshot, past)) if snapshot.epoch == epoch && snapshot.offset >= cursor => {
                let past = since.map(|_| {
                    past.unwrap_or_else(|| not_covered(snapshot.offset, &keys, &snapshot.rest))
                });
                // Keys beyond one part's size wait for the next read, as many as fit: a read after slots moved
                // here holds their watched keys besides the waiting ones, up to twice what may wait.
                self.untold += self.wait(snapshot.rest);
                if self.keys.is_empty() {
                    self.since = None;
                }
                self.attempts = 0;
                self.ready = Some(ReadyTopup {
                    at: snapshot.offset,
                    snapshot: wire::encode_snapshot(snapshot.offset, &snapshot.commands),
                    past,
                });
                None
            }
            Ok(_) if self.attempts + 1 < TOPUP_ATTEMPTS => {
                self.attempts += 1;
                self.untold += self.wait(keys);
                self.slots.extend(slots);
                None
            }
            outcome => {
                self.attempts = 0;
                if self.keys.is_empty() {
                    self.since = None;
                }
                let why = match outcome {
                    Err(err) => err.to_string(),
                    Ok(_) => "it could not be aligned with the stream".into(),
                };
                let text = format!("top-up of {} keys failed: {why}", keys.len());
                tracing::info!("{text}");
                Some(text)
            }
        }
    }

    /// Whether no top-up (nor digest) waits for its place in the stream.
    pub fn place_free(&self) -> bool {
        self.ready.is_none()
    }

    /// A message to place in the stream at offset `at` as a top-up is (a digest of the session's windows there);
    /// the place must be free.
    pub fn place(&mut self, at: u64, message: Vec<u8>) {
        self.ready = Some(ReadyTopup {
            at,
            snapshot: message,
            past: None,
        });
    }

    /// The top-up read, if its place is where `place` says.
    pub fn take_ready_if(&mut self, place: impl FnOnce(u64) -> bool) -> Option<ReadyTopup> {
        self.ready.take_if(|ready| place(ready.at))
    }
}

/// The earlier of two `since`s, either of which may be absent.
pub(crate) fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The past message of a top-up the relay's state did not answer (read from Redis, a cluster's shard, no state):
/// each key read (those asked, less those left for the next read) not covered, at the snapshot's offset `at`.
fn not_covered(at: u64, keys: &[Vec<u8>], rest: &[Vec<u8>]) -> Vec<u8> {
    let rest: BTreeSet<&[u8]> = rest.iter().map(Vec::as_slice).collect();
    let mut out = wire::encode_past(&wire::Past {
        offset: at,
        keys: Vec::new(),
    });
    for key in keys.iter().filter(|k| !rest.contains(k.as_slice())) {
        wire::push_past_key(&mut out, key, at, 0);
    }
    out
}

/// The notice for `over` keys that did not fit in those waiting, if any, counted in `/metrics`.
pub(super) fn not_taken(relay: &Relay, over: u64) -> Option<String> {
    if over == 0 {
        return None;
    }
    Metrics::add(&relay.metrics.topup_keys_refused, over);
    Some(not_taken_text(over))
}

/// The text of the notice for `over` keys not taken.
fn not_taken_text(over: u64) -> String {
    format!(
        "{NOT_TAKEN_START}{over}{NOT_TAKEN_END} at most {MAX_SNAPSHOT_KEYS} keys wait for top-ups in a session; ask \
         for them again once those have come"
    )
}

/// How the notice of top-up keys not taken starts, before their count (docs/PROTOCOL.md).
const NOT_TAKEN_START: &str = "top-up of ";
/// What follows the count in the notice of top-up keys not taken.
const NOT_TAKEN_END: &str = " keys not taken:";

/// Whether a notice's `text` is the one [`not_taken`] makes: the sink asks for the pending top-ups again then.
pub(crate) fn is_not_taken(text: &str) -> bool {
    text.strip_prefix(NOT_TAKEN_START)
        .and_then(|rest| rest.split_once(NOT_TAKEN_END))
        .is_some_and(|(count, _)| !count.is_empty() && count.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sink knows the notice the relay makes, and no other.
    #[test]
    fn the_not_taken_notice_is_known_by_its_text() {
        assert!(is_not_taken(&not_taken_text(2)));
        assert!(is_not_taken(&not_taken_text(12_345)));
        assert!(!is_not_taken("top-up of keys not taken: at most 10 keys"));
        assert!(!is_not_taken(
            "the relay restarts; top-up of 2 keys not taken: later"
        ));
        assert!(!is_not_taken("top-up of 2 keys taken"));
    }

    fn keys(from: usize, to: usize) -> Vec<Vec<u8>> {
        (from..to).map(|i| format!("k{i}").into_bytes()).collect()
    }

    #[test]
    fn keys_left_for_later_wait_up_to_the_limit_and_the_others_are_counted() {
        // A snapshot's rest past the limit (a read after slots moved here: their watched keys and the waiting ones).
        let mut topups = Topups::with_keys(keys(0, MAX_SNAPSHOT_KEYS + 2_500));
        assert_eq!(topups.keys.len(), MAX_SNAPSHOT_KEYS);
        assert_eq!(topups.untold, 2_500);
        // At the limit, more keys do not fit, except those already waiting.
        assert_eq!(topups.wait(keys(0, 10)), 0);
        assert_eq!(
            topups.wait(keys(MAX_SNAPSHOT_KEYS + 2_500, MAX_SNAPSHOT_KEYS + 2_600)),
            100
        );
        assert_eq!(topups.keys.len(), MAX_SNAPSHOT_KEYS);
        // Below it, as many as fit.
        topups.keys = keys(0, 9_000).into_iter().collect();
        assert_eq!(topups.wait(keys(8_000, 12_000)), 2_000);
        assert_eq!(topups.keys.len(), MAX_SNAPSHOT_KEYS);
    }
}
