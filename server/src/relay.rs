//! What every route and session of the relay shares: the topology it follows (one Redis, or a cluster's shards),
//! its counters, what may leave it (`--allow`), who may open a session, what browsers may write, and the signal
//! that it is shutting down.

use std::sync::Arc;

use tokio::sync::watch;

use crate::access::{Access, Peers};
use crate::events::Events;
use crate::metrics::Metrics;
use crate::subscription::Allow;
use crate::topology::Topology;

#[derive(Clone)]
pub struct Relay {
    /// The shards followed, each with its backlog and snapshots.
    pub topology: Arc<Topology>,
    pub metrics: Arc<Metrics>,
    /// Becomes `true` when the relay shuts down.
    pub shutdown: Arc<watch::Sender<bool>>,
    /// Keys that may leave the relay (`--allow`).
    pub allow: Arc<Allow>,
    pub access: Arc<Access>,
    /// Sessions open per peer address.
    pub peers: Arc<Peers>,
    /// What browsers may append to Redis (`--writable`), and the writer that does.
    pub events: Arc<Events>,
}
