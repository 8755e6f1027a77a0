//! The browser's side of a relay session, without any I/O: its status, when to reconnect, and when a silent
//! socket counts as dead. The npm package's WebSocket glue (`wasm/src/web`) drives it with the clock and events.
//!
//! Statuses: `connecting` (a socket is opening, or open without a hello yet), `live` (windows follow the stream),
//! `resyncing` (the relay restarted this session's stream: a hello that did not continue where the windows were,
//! or a resync message, until the snapshot after it is applied), `offline` (no socket; a reconnect is due).
//!
//! Reconnects back off exponentially from 1 s to 30 s with jitter (each delay drawn between half and all of the
//! current step), so a thousand browsers that lost the same relay do not come back in one burst. The step resets
//! once a session has been live for a while. A socket that brought nothing for `idle_timeout_ms` is treated as
//! dead: the relay sends progress at least every second while Redis's stream moves, and Redis pings its replicas
//! every 10 s by default, so 30 s of silence means a half-open connection.
//!
//! A page may name other relays serving the same data ([`Relays`]): a connection that fails or drops moves to the
//! next one, round robin, and the session resumes there from where its windows are ([`resume_at`]).
//!
//! What the page sent and waits for an answer to (its events, its digest requests) is filed in [`Pending`].

mod pending;

pub use pending::{Pending, MAX_WAITING};

use crate::shard_set::ShardSet;
use replicast_protocol::wire::MAX_SHARDS;

/// First reconnect step, in milliseconds.
pub const RETRY_FIRST_MS: f64 = 1_000.0;
/// Largest reconnect step.
pub const RETRY_MAX_MS: f64 = 30_000.0;
/// Silence after which an open socket is considered dead.
pub const IDLE_TIMEOUT_MS: f64 = 30_000.0;
/// Time live after which the reconnect step starts from [`RETRY_FIRST_MS`] again.
const STABLE_AFTER_MS: f64 = 10_000.0;

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Connecting,
    Live,
    Resyncing,
    Offline,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Live => "live",
            Status::Resyncing => "resyncing",
            Status::Offline => "offline",
        }
    }
}

/// Exponential backoff with jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    step_ms: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            step_ms: RETRY_FIRST_MS,
        }
    }
}

impl Backoff {
    /// The next delay, given a uniform random number in `[0, 1)`; doubles the step for the time after.
    pub fn next_delay(&mut self, random: f64) -> f64 {
        let delay = self.step_ms * (0.5 + 0.5 * random.clamp(0.0, 1.0));
        self.step_ms = (self.step_ms * 2.0).min(RETRY_MAX_MS);
        delay
    }

    pub fn reset(&mut self) {
        self.step_ms = RETRY_FIRST_MS;
    }
}

/// A session's status and timers; all times are milliseconds on one clock (`performance.now()` in a page).
#[derive(Debug, Clone)]
pub struct Link {
    status: Status,
    backoff: Backoff,
    idle_timeout_ms: f64,
    last_message_ms: f64,
    live_since_ms: Option<f64>,
    /// Shards (of a relay following a Redis Cluster; a single Redis is shard 0) that said hello since the windows
    /// were last emptied, and those among them waiting for the snapshot their hello announced.
    joined: ShardSet,
    awaiting: ShardSet,
}

impl Link {
    pub fn new(idle_timeout_ms: f64) -> Self {
        Link {
            status: Status::Offline,
            backoff: Backoff::default(),
            idle_timeout_ms: if idle_timeout_ms > 0.0 {
                idle_timeout_ms
            } else {
                IDLE_TIMEOUT_MS
            },
            last_message_ms: 0.0,
            live_since_ms: None,
            joined: ShardSet::new(),
            awaiting: ShardSet::new(),
        }
    }

    /// Shard `shard`'s stream said hello. The session is live once no shard waits for its snapshot: a resumed
    /// shard waits for none; a shard new to these windows (the first hello, or a shard that joined the cluster)
    /// waits without disturbing the others; a shard whose stream restarted under its windows makes the session
    /// resync until its snapshot.
    pub fn shard_hello(&mut self, shard: u16, continuous: bool, now_ms: f64) {
        let known = !self.joined.insert(shard);
        if continuous {
            self.awaiting.remove(shard);
            if self.awaiting.is_empty() {
                self.hello(true, now_ms);
            }
        } else {
            self.awaiting.insert(shard);
            if known {
                self.hello(false, now_ms);
            }
        }
    }

    /// A snapshot of shard `shard` was applied (after its hello, or a top-up).
    pub fn shard_snapshot(&mut self, shard: u16, now_ms: f64) {
        self.awaiting.remove(shard);
        if self.awaiting.is_empty() {
            self.snapshot(now_ms);
        }
    }

    /// The windows were emptied (another window length, a new assembler): every shard starts afresh.
    pub fn forget_shards(&mut self) {
        self.joined.clear();
        self.awaiting.clear();
    }

    pub fn status(&self) -> Status {
        self.status
    }

    /// A socket is opening.
    pub fn connecting(&mut self, now_ms: f64) {
        self.last_message_ms = now_ms;
        self.live_since_ms = None;
        if self.status != Status::Resyncing {
            self.status = Status::Connecting;
        }
    }

    /// Any message arrived.
    pub fn message(&mut self, now_ms: f64) {
        self.last_message_ms = now_ms;
        if let Some(since) = self.live_since_ms {
            if now_ms - since >= STABLE_AFTER_MS {
                self.backoff.reset();
            }
        }
    }

    /// A hello arrived; `continuous` when it continues exactly where the windows were (a resume).
    pub fn hello(&mut self, continuous: bool, now_ms: f64) {
        if continuous {
            self.go_live(now_ms);
        } else if self.status == Status::Live || self.status == Status::Resyncing {
            // Windows existed and the stream restarted under them: they are rebuilt by the snapshot that follows.
            self.status = Status::Resyncing;
        }
    }

    /// A snapshot was applied: the windows are whole again.
    pub fn snapshot(&mut self, now_ms: f64) {
        if self.status != Status::Live {
            self.go_live(now_ms);
        }
    }

    /// The relay said this session fell behind; it closes the socket next.
    pub fn resync(&mut self) {
        self.status = Status::Resyncing;
    }

    /// The socket closed (or is being closed): returns the delay before reconnecting, given a uniform random
    /// number in `[0, 1)`. A session that was resyncing stays so until it is live again.
    pub fn closed(&mut self, random: f64) -> f64 {
        if self.status != Status::Resyncing {
            self.status = Status::Offline;
        }
        self.live_since_ms = None;
        self.backoff.next_delay(random)
    }

    /// Whether an open socket has been silent too long and should be dropped.
    pub fn idle(&self, now_ms: f64) -> bool {
        self.status != Status::Offline && now_ms - self.last_message_ms >= self.idle_timeout_ms
    }

    fn go_live(&mut self, now_ms: f64) {
        self.status = Status::Live;
        self.live_since_ms.get_or_insert(now_ms);
    }
}

/// The relays a client may use, all serving the same data: the page's URL first, then its alternates.
#[derive(Debug, Clone)]
pub struct Relays {
    urls: Vec<String>,
    current: usize,
}

impl Relays {
    pub fn new(url: &str, alternates: &[String]) -> Self {
        let mut urls = vec![url.to_string()];
        urls.extend(alternates.iter().cloned());
        Relays { urls, current: 0 }
    }

    /// The relay in use, or the next to connect to.
    pub fn current(&self) -> &str {
        &self.urls[self.current]
    }

    /// The connection to the current relay failed or dropped: the next one, round robin.
    pub fn advance(&mut self) {
        self.current = (self.current + 1) % self.urls.len();
    }
}

/// The value of the `at` query parameter a client resumes with (before URL-encoding): `<epoch>:<offset>` for each
/// shard whose hello arrived (`positions` as [`crate::StreamAssembler::positions`] gives them), comma separated,
/// at most [`MAX_SHARDS`] of them; `None` before any hello.
pub fn resume_at(positions: &[(u16, String, u64)]) -> Option<String> {
    let at: Vec<String> = positions
        .iter()
        .take(MAX_SHARDS)
        .map(|(_, epoch, offset)| format!("{epoch}:{offset}"))
        .collect();
    (!at.is_empty()).then(|| at.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_session_is_live_once_every_shard_that_joined_has_its_snapshot() {
        let mut link = Link::new(0.0);
        link.connecting(0.0);
        link.shard_hello(0, false, 1.0);
        link.shard_hello(1, false, 2.0);
        link.shard_snapshot(1, 3.0);
        assert_eq!(
            link.status(),
            Status::Connecting,
            "shard 0's snapshot is missing"
        );
        link.shard_snapshot(0, 4.0);
        assert_eq!(link.status(), Status::Live);
        // A shard joining the cluster later waits for its snapshot without disturbing the others.
        link.shard_hello(2, false, 5.0);
        assert_eq!(link.status(), Status::Live);
        link.shard_snapshot(2, 6.0);
        // A shard whose stream restarts under its windows: resyncing until its snapshot.
        link.shard_hello(1, false, 7.0);
        assert_eq!(link.status(), Status::Resyncing);
        link.shard_snapshot(1, 8.0);
        assert_eq!(link.status(), Status::Live);
        // A reconnect that resumes shard 0 and must snapshot shard 1 is live after that snapshot only.
        link.closed(0.5);
        link.connecting(9.0);
        link.shard_hello(0, true, 10.0);
        assert_eq!(link.status(), Status::Live, "shard 0 resumed");
        link.shard_hello(1, false, 11.0);
        assert_eq!(link.status(), Status::Resyncing, "shard 1 restarted");
        link.shard_snapshot(1, 11.5);
        assert_eq!(link.status(), Status::Live);
        link.forget_shards();
        link.closed(0.5);
        link.connecting(12.0);
        link.shard_hello(1, true, 13.0);
        link.shard_hello(0, false, 14.0);
        assert_eq!(link.status(), Status::Live);
    }

    #[test]
    fn backoff_doubles_from_one_to_thirty_seconds_with_jitter() {
        let mut b = Backoff::default();
        let highs: Vec<f64> = (0..7).map(|_| b.next_delay(0.999_999)).collect();
        assert_eq!(
            highs.iter().map(|d| d.round()).collect::<Vec<_>>(),
            vec![1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 30000.0, 30000.0]
        );
        b.reset();
        assert_eq!(b.next_delay(0.0), 500.0, "at least half the step");
        assert_eq!(b.next_delay(0.5), 1500.0);
    }

    #[test]
    fn statuses_follow_a_session_through_a_fresh_join_a_resync_and_a_resume() {
        let mut link = Link::new(0.0);
        assert_eq!(link.status(), Status::Offline);
        link.connecting(0.0);
        assert_eq!(link.status(), Status::Connecting);
        link.hello(false, 10.0);
        assert_eq!(
            link.status(),
            Status::Connecting,
            "live once the snapshot is in"
        );
        link.snapshot(20.0);
        assert_eq!(link.status(), Status::Live);

        link.resync();
        assert_eq!(link.status(), Status::Resyncing);
        link.closed(0.5);
        assert_eq!(link.status(), Status::Resyncing, "still rebuilding");
        link.connecting(2_000.0);
        link.hello(false, 2_010.0);
        assert_eq!(link.status(), Status::Resyncing);
        link.snapshot(2_020.0);
        assert_eq!(link.status(), Status::Live);

        link.closed(0.5);
        assert_eq!(link.status(), Status::Offline);
        link.connecting(5_000.0);
        link.hello(true, 5_010.0);
        assert_eq!(link.status(), Status::Live, "a resume needs no snapshot");
    }

    #[test]
    fn relays_rotate_round_robin_and_resume_with_every_shards_position() {
        let mut relays = Relays::new(
            "ws://a/ws",
            &["ws://b/ws".to_string(), "ws://c/ws".to_string()],
        );
        let mut seen = vec![relays.current().to_string()];
        for _ in 0..3 {
            relays.advance();
            seen.push(relays.current().to_string());
        }
        assert_eq!(seen, ["ws://a/ws", "ws://b/ws", "ws://c/ws", "ws://a/ws"]);
        let mut alone = Relays::new("ws://a/ws", &[]);
        alone.advance();
        assert_eq!(alone.current(), "ws://a/ws");

        assert_eq!(resume_at(&[]), None);
        assert_eq!(
            resume_at(&[(0, "8f3a".to_string(), 42), (3, "77b0".to_string(), 9)]).as_deref(),
            Some("8f3a:42,77b0:9")
        );
    }

    #[test]
    fn a_silent_socket_is_idle_and_the_backoff_resets_after_a_stable_session() {
        let mut link = Link::new(30_000.0);
        link.connecting(0.0);
        assert!(!link.idle(29_999.0));
        assert!(link.idle(30_000.0));
        link.message(25_000.0);
        assert!(!link.idle(50_000.0));
        assert!(!Link::new(1.0).idle(1e12), "offline is never idle");

        for _ in 0..4 {
            link.closed(0.999);
        }
        link.connecting(100_000.0);
        link.hello(true, 100_000.0);
        link.message(105_000.0);
        assert!(
            link.closed(0.999) > 8_000.0,
            "not stable yet: the step kept growing"
        );
        link.connecting(200_000.0);
        link.hello(true, 200_000.0);
        link.message(211_000.0);
        assert!(link.closed(0.999) < 1_001.0, "stable for 10 s: back to 1 s");
    }
}
