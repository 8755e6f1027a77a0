//! Where the replica link meets the browser sessions: the link publishes each batch of commands once, already
//! encoded as a relay message (see `docs/PROTOCOL.md`), and every session forwards the same bytes.
//!
//! The channel is bounded in messages, and each holds at most one read of the link (64 KiB) plus one command, so
//! memory does not grow with the number or slowness of browsers: a session that falls behind the channel's
//! capacity is told to resynchronise instead of being buffered for.

use std::sync::Mutex;

use bytes::Bytes;
use replicast_wasm::wire;
use tokio::sync::broadcast;

/// Relay messages a session may fall behind before it is dropped.
pub const CHANNEL_MESSAGES: usize = 1024;

/// What the link is following right now, for sessions that join.
#[derive(Debug, Default)]
struct LinkState {
    epoch: Option<String>,
    offset: u64,
    live: bool,
}

pub struct Hub {
    messages: broadcast::Sender<Bytes>,
    state: Mutex<LinkState>,
}

impl Hub {
    pub fn new() -> Self {
        Hub {
            messages: broadcast::channel(CHANNEL_MESSAGES).0,
            state: Mutex::new(LinkState::default()),
        }
    }

    /// A receiver of every message published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Bytes> {
        self.messages.subscribe()
    }

    /// The hello a joining session starts with, once the link is streaming. Subscribe first, then ask: a batch
    /// published in between is then received and, being at or before this offset, skipped by the browser.
    pub fn hello(&self) -> Option<Bytes> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let epoch = state.epoch.as_deref().filter(|_| state.live)?;
        Some(Bytes::from(wire::encode_hello(epoch, state.offset)))
    }

    pub fn is_live(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).live
    }

    /// The link finished a full resync: commands from `offset` of `epoch` follow.
    pub fn begin_epoch(&self, epoch: &str, offset: u64) {
        {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            *state = LinkState {
                epoch: Some(epoch.to_string()),
                offset,
                live: true,
            };
        }
        // No receivers is fine: nobody is watching yet.
        let _ = self
            .messages
            .send(Bytes::from(wire::encode_hello(epoch, offset)));
    }

    /// Publishes whole commands that occupied `start..start + batch.len()` of the stream.
    pub fn publish(&self, start: u64, batch: &[u8]) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).offset = start + batch.len() as u64;
        let _ = self
            .messages
            .send(Bytes::from(wire::encode_commands(start, batch)));
    }

    pub fn set_offline(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).live = false;
    }
}
