//! Top-ups a session was asked for and has not delivered yet. A top-up is a snapshot of a few keys taken
//! mid-stream: keys wait here until the shard's snapshotter reads them at some offset `X` ahead of the session's
//! cursor, and the snapshot waits here until the session's stream reaches `X`, where it is placed.

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
}

#[derive(Default)]
pub(crate) struct Topups {
    keys: BTreeSet<Vec<u8>>,
    /// Slots that moved to this shard: their watched keys are read with the next top-up.
    slots: BTreeSet<u16>,
    attempts: u32,
    ready: Option<ReadyTopup>,
}

impl Topups {
    /// Keys a join's snapshot had no room for: they follow as top-ups.
    pub fn with_keys(keys: Vec<Vec<u8>>) -> Self {
        Topups {
            keys: keys.into_iter().collect(),
            ..Topups::default()
        }
    }

    /// Takes the keys of a request that this session may top up; the notice to send about the others, if any.
    pub fn ask(&mut self, relay: &Relay, sub: &Subscription, keys: Vec<Vec<u8>>) -> Option<String> {
        let mut refused = Vec::new();
        for key in keys {
            if !sub.wants(&key) || !relay.allow.allows(&key) {
                refused.push(String::from_utf8_lossy(&key).into_owned());
            } else if self.keys.len() < MAX_SNAPSHOT_KEYS {
                self.keys.insert(key);
            }
        }
        (!refused.is_empty()).then(|| {
            format!(
                "top-up refused for keys this session does not watch or the relay does not allow: {}",
                refused.join(", ")
            )
        })
    }

    /// Slots that moved to this shard: their watched keys are read with the next top-up.
    pub fn gain_slots(&mut self, slots: BTreeSet<u16>) {
        self.slots.extend(slots);
    }

    /// Reads the waiting keys, if any and if no other top-up waits for the stream; the notice to send when a
    /// top-up failed for good.
    pub async fn read(
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
        let read = if slots.is_empty() {
            super::snapshot_source::take_keys(relay, shard, sub, keys.clone(), (epoch, cursor))
                .await
        } else {
            let read = shard
                .snapshots
                .take_slots(sub, &relay.allow, slots.clone(), keys.clone())
                .await;
            if read.is_ok() {
                Metrics::add(&relay.metrics.snapshots, 1);
            }
            read
        };
        match read {
            // The snapshot's node is the one the link follows, so its offset is at or past what the link
            // delivered; anything else (a failover, a new epoch) means reading again later.
            Ok(snapshot) if snapshot.epoch == epoch && snapshot.offset >= cursor => {
                // Keys beyond one part's size wait for the next read.
                self.keys.extend(snapshot.rest);
                self.attempts = 0;
                self.ready = Some(ReadyTopup {
                    at: snapshot.offset,
                    snapshot: wire::encode_snapshot(snapshot.offset, &snapshot.commands),
                });
                None
            }
            Ok(_) if self.attempts + 1 < TOPUP_ATTEMPTS => {
                self.attempts += 1;
                self.keys.extend(keys);
                self.slots.extend(slots);
                None
            }
            outcome => {
                self.attempts = 0;
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
        });
    }

    /// The top-up read, if its place is where `place` says.
    pub fn take_ready_if(&mut self, place: impl FnOnce(u64) -> bool) -> Option<ReadyTopup> {
        self.ready.take_if(|ready| place(ready.at))
    }
}
