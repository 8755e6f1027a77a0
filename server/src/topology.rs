//! The streams the relay follows and which one holds each key. One Redis is a topology of one shard, which holds
//! every key (its node given by `--redis-url`, or the primary Sentinel names); a Redis Cluster is a topology of a
//! shard per primary, which `cluster.rs` reads from the cluster and keeps up to date. Sessions, `/healthz`,
//! `/metrics` and browser events all see the relay through this, in one code path: only the edges differ by
//! [`Shape`] (a cluster's messages come in shard envelopes, its metrics are labelled by shard, and it has only
//! database 0).

use std::sync::Arc;

use tokio::sync::watch;

use crate::backlog::Backlog;
use crate::hash_slot::{slot, SLOTS};
use crate::metrics::LinkMetrics;
use crate::shard::Shard;
use crate::subscription::Subscription;

/// What the relay follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One Redis (or the primary Sentinel names): one shard, shard 0, which holds every key.
    OneRedis,
    /// A Redis Cluster: a shard per primary, each holding the keys of its slots.
    Cluster,
}

/// Which shard holds each key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owners {
    /// One shard holds every key.
    All(u32),
    /// The shard owning each hash slot, if any.
    BySlot(Vec<Option<u32>>),
}

/// The topology as sessions see it at one moment: the shards followed, and which one holds each key.
pub struct View {
    /// Bumped with every change.
    pub version: u64,
    pub shards: Vec<Arc<Shard>>,
    pub owners: Owners,
}

impl View {
    /// The shard holding `key` now.
    pub fn owner_of(&self, key: &[u8]) -> Option<u32> {
        match &self.owners {
            Owners::All(shard) => Some(*shard),
            Owners::BySlot(owners) => owners[usize::from(slot(key))],
        }
    }

    /// The slots `shard` owns here and did not own in `before` (none where one shard holds every key).
    pub fn gained(&self, before: &View, shard: u32) -> Vec<u16> {
        let (Owners::BySlot(now), Owners::BySlot(then)) = (&self.owners, &before.owners) else {
            return Vec::new();
        };
        (0..SLOTS)
            .filter(|&s| now[s] == Some(shard) && then[s] != Some(shard))
            .map(|s| s as u16)
            .collect()
    }

    pub fn shard(&self, number: u32) -> Option<&Arc<Shard>> {
        self.shards.iter().find(|s| s.number == number)
    }
}

pub struct Topology {
    shape: Shape,
    view: watch::Sender<Arc<View>>,
}

impl Topology {
    /// One Redis: `shard` holds every key, for the relay's whole run.
    pub fn of_one(shard: Arc<Shard>) -> Self {
        let owners = Owners::All(shard.number);
        Topology {
            shape: Shape::OneRedis,
            view: watch::channel(Arc::new(View {
                version: 0,
                shards: vec![shard],
                owners,
            }))
            .0,
        }
    }

    /// A Redis Cluster: no shard until the cluster's topology is first read and published.
    pub fn of_cluster() -> Self {
        Topology {
            shape: Shape::Cluster,
            view: watch::channel(Arc::new(View {
                version: 0,
                shards: Vec::new(),
                owners: Owners::BySlot(vec![None; SLOTS]),
            }))
            .0,
        }
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The topology now.
    pub fn view(&self) -> Arc<View> {
        self.view.borrow().clone()
    }

    /// A receiver that wakes when the topology changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<View>> {
        self.view.subscribe()
    }

    /// Publishes a new view of a cluster (a shard added or gone, slots moved).
    pub fn publish(&self, shards: Vec<Arc<Shard>>, owners: Owners) {
        self.view.send_modify(|view| {
            *view = Arc::new(View {
                version: view.version + 1,
                shards,
                owners,
            })
        });
    }

    /// Why a session with this subscription cannot be served, if it cannot.
    pub fn refusal(&self, sub: &Subscription) -> Option<&'static str> {
        (self.shape == Shape::Cluster && sub.db != 0)
            .then_some("a Redis Cluster has only database 0: subscribe with db 0")
    }

    /// Whether every shard's link streams, and a line for `/healthz` saying where each is.
    pub fn health(&self) -> (bool, String) {
        let view = self.view();
        if self.shape == Shape::OneRedis {
            return match view.shards.first().and_then(|s| live_position(s)) {
                Some((epoch, offset)) => (
                    true,
                    format!("ok: streaming epoch {epoch} at offset {offset}\n"),
                ),
                None => (
                    false,
                    "unavailable: the replica link is not streaming\n".into(),
                ),
            };
        }
        let mut lines = Vec::new();
        let mut live = !view.shards.is_empty();
        for shard in &view.shards {
            let node = shard.upstream.addr();
            match live_position(shard) {
                Some((epoch, offset)) => lines.push(format!(
                    "shard {} ({node}): epoch {epoch} at offset {offset}",
                    shard.number
                )),
                None => {
                    live = false;
                    lines.push(format!("shard {} ({node}): not streaming", shard.number));
                }
            }
        }
        let text = format!(
            "{}: {} cluster shards\n{}\n",
            if live { "ok" } else { "unavailable" },
            view.shards.len(),
            lines.join("\n")
        );
        (live, text)
    }

    /// The links' (and states') rows of `/metrics`: one Redis's unlabelled, with all its counters; a cluster's
    /// labelled by shard and node.
    pub fn render_metrics(&self) -> String {
        let view = self.view();
        match self.shape {
            Shape::OneRedis => view
                .shards
                .iter()
                .map(|shard| {
                    let state = shard.state.as_ref().map(|s| s.render());
                    shard.link.render(&shard.backlog) + &state.unwrap_or_default()
                })
                .collect(),
            Shape::Cluster => {
                // The relay-wide rows, which describe no link of a relay following a cluster: zeros.
                let mut text = LinkMetrics::default().render(&Backlog::new(0));
                let rows: Vec<_> = view.shards.iter().map(|s| s.link_row()).collect();
                text.push_str(&crate::metrics::render_shards(&rows));
                // Each shard's state, its rows labelled like its link's.
                let states: Vec<_> = view
                    .shards
                    .iter()
                    .filter_map(|s| Some((s.number, s.upstream.addr(), s.state.as_ref()?.render())))
                    .collect();
                text.push_str(&crate::metrics::label_shard_rows(&states));
                text
            }
        }
    }

    /// Stops every shard's tasks: the relay is going away.
    pub fn stop(&self) {
        for shard in &self.view().shards {
            shard.stop();
        }
    }
}

/// The epoch and offset a shard's link streams at, if it streams.
fn live_position(shard: &Shard) -> Option<(String, u64)> {
    match shard.backlog.position() {
        Some((stream, offset)) if shard.backlog.is_live() => Some((stream.epoch, offset)),
        _ => None,
    }
}
