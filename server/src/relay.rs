//! What every route and session of the relay shares: the topology it follows (one Redis, or a cluster's shards),
//! its counters, what may leave it (`--allow`), who may open a session (and, with signed tokens, what each may
//! see), what browsers may write, and the signal that it is shutting down; and how the relay starts following what its flags name ([`Source`]).

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::access::{Access, Peers};
use crate::client_address::TrustedProxies;
use crate::cluster::{Cluster, Follow};
use crate::events::Events;
use crate::metrics::Metrics;
use crate::profile::WriteProfile;
use crate::sentinel::Sentinels;
use crate::shard::{LinkSettings, Shard};
use crate::subscription::Allow;
use crate::tokens::{Grant, TokenVerifier};
use crate::topology::Topology;
use crate::upstream::{NodeSettings, RedisTarget, Upstream};

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
    /// Reverse proxies whose forwarded client address the relay believes (`--trusted-proxy`).
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Sessions open per client address.
    pub peers: Arc<Peers>,
    /// What browsers may append to Redis (`--writable`), and the writer that does.
    pub events: Arc<Events>,
    /// What the primary writes, counted from the stream (`/profile`).
    pub profile: Arc<WriteProfile>,
    /// Verifies each session's signed token (`--jwt-secret`, `--jwt-keys`), when the relay requires them.
    pub tokens: Option<Arc<TokenVerifier>>,
}

impl Relay {
    /// The relay as one session with `grant` sees it: `--allow` narrowed to the token's read patterns, so that
    /// every path of the session (its snapshot, top-ups, resumes, every frame, its events) keeps to them. A session
    /// without a token shares the relay's own `--allow`.
    pub fn for_grant(&self, grant: &Grant) -> Relay {
        Relay {
            allow: Arc::new(self.allow.narrowed(&grant.read)),
            ..self.clone()
        }
    }
}

/// What the relay follows, as its flags name it.
pub enum Source {
    /// One Redis at a fixed address (`--redis-url`, or the embedded one).
    Redis(RedisTarget),
    /// The primary Sentinel names, each node reached with `settings`.
    Sentinel {
        sentinels: Arc<Sentinels>,
        settings: NodeSettings,
    },
    /// A Redis Cluster, read from any of `seeds`, each node reached with `settings`.
    Cluster {
        seeds: Vec<(String, u16)>,
        settings: NodeSettings,
        follow: Follow,
    },
}

impl Source {
    /// Starts following: one shard, or in a cluster the topology reader, which follows a shard per primary.
    pub fn follow(self, link: LinkSettings) -> Following {
        match self {
            Source::Redis(target) => {
                let shard = Shard::follow(0, Upstream::at(target), None, None, &link);
                Following {
                    topology: Arc::new(Topology::of_one(shard)),
                    reader: None,
                }
            }
            Source::Sentinel {
                sentinels,
                settings,
            } => {
                tracing::info!(sentinels = ?sentinels.addrs, master = %sentinels.master_name,
                    "following the primary Sentinel names");
                let upstream = Upstream::unnamed(settings);
                let shard = Shard::follow(0, upstream, Some(sentinels), None, &link);
                Following {
                    topology: Arc::new(Topology::of_one(shard)),
                    reader: None,
                }
            }
            Source::Cluster {
                seeds,
                settings,
                follow,
            } => {
                tracing::info!(nodes = ?seeds, ?follow, "following a Redis Cluster");
                // Each shard keeps a state of its own, with the limits of --state-* (shard.rs).
                let topology = Arc::new(Topology::of_cluster());
                let cluster = Cluster::new(seeds, settings, follow, link, topology.clone());
                Following {
                    topology,
                    reader: Some(tokio::spawn(cluster.run())),
                }
            }
        }
    }
}

/// The streams the relay follows, and in a cluster the task that keeps reading its topology.
pub struct Following {
    pub topology: Arc<Topology>,
    reader: Option<JoinHandle<()>>,
}

impl Following {
    /// Stops every link (and the cluster's topology reader): the relay is going away.
    pub fn stop(self) {
        if let Some(reader) = self.reader {
            reader.abort();
        }
        self.topology.stop();
    }
}
