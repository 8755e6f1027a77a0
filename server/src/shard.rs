//! One replication stream the relay follows: a single Redis, the primary Sentinel names, or one shard of a Redis
//! Cluster, each the same thing here. A shard has the node it follows now ([`Upstream`]), a replica link
//! streaming into its [`Backlog`], a [`Snapshotter`] reading that same node, its link's counters, and the tasks
//! that keep them going. A session follows each shard of the topology with one `ShardStream`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backlog::Backlog;
use crate::hash_slot::{slot, SlotSet};
use crate::metrics::{LinkMetrics, ShardLink};
use crate::profile::WriteProfile;
use crate::replica_link::ReplicaLink;
use crate::sentinel::{self, Sentinels};
use crate::snapshot::{KeyFilter, Snapshotter};
use crate::state::feed::StateFeed;
use crate::state::verify::VerifySettings;
use crate::state::{Generation, RelayState, ShardKeys, StateSettings};
use crate::subscription::Allow;
use crate::upstream::Upstream;

/// A cluster shard's keys: those whose slots it owns now, and the slots it gained while the relay followed it.
///
/// Its state answers (joins, top-ups, past writes) only for keys whose slot it owns now and has owned since the
/// relay started following it: its stream is the node's, which held none of a gained slot's keys before the move
/// (they came with `RESTORE-ASKING`, which the state cannot apply, or were written on the old owner), and its past
/// writes would claim a key covered across the move. The state trails the node, so an offset it answers at may be
/// before the node took the slot. A gained slot's keys are read from the node for as long as the relay runs.
#[derive(Clone)]
pub struct ClusterSlots {
    pub owns: KeyFilter,
    pub gained: Arc<SlotSet>,
    /// The topology's generation: it changes with every view published, so whenever `owns` or `gained` may.
    pub generation: Generation,
}

/// What every replica link of the relay is started with.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// The port the link announces to Redis (`REPLCONF listening-port`): the relay's HTTP port.
    pub listening_port: u16,
    /// How long Redis may stay silent before the link is dropped and re-attached (`--link-timeout`).
    pub timeout: Duration,
    /// Capacity of each backlog (`--backlog-bytes`).
    pub backlog_bytes: usize,
    /// The write profile every link feeds (`/profile`).
    pub profile: Option<Arc<WriteProfile>>,
    /// What may leave the relay (`--allow`): the backlogs keep only what some session could be sent of it.
    pub allow: Arc<Allow>,
    /// What the relay's state keeps (each shard's, in a cluster); `None` (`--stateless`): no state, and the link
    /// asks Redis for an empty RDB on a full sync.
    pub state: Option<StateSettings>,
    /// Bytes the link may queue to the state's thread before it waits for the state (`--state-queue-bytes`).
    pub state_queue_bytes: usize,
    /// The periodic check of the state against Redis (`--verify-every`); `None`: off.
    pub verify: Option<VerifySettings>,
}

pub struct Shard {
    /// The relay's number for this shard, unique for its run (a single Redis is shard 0).
    pub number: u32,
    pub upstream: Arc<Upstream>,
    pub backlog: Arc<Backlog>,
    pub snapshots: Snapshotter,
    /// The windows the relay keeps itself, which answer snapshots without Redis when they can.
    pub state: Option<Arc<RelayState>>,
    /// In a cluster, the slots this shard gained while the relay followed it: its state does not answer for them.
    pub gained: Option<Arc<SlotSet>>,
    /// The link's own counters and the followed node's offset.
    pub link: Arc<LinkMetrics>,
    /// The followed Redis's `databases` setting, when a session asked past it lately (`session/join.rs`): asked
    /// once a minute at most, by one session at a time.
    pub databases: tokio::sync::Mutex<Option<(tokio::time::Instant, Option<u32>)>>,
    /// Set when the shard left the cluster: its sessions stop following it.
    retired: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Shard {
    /// Starts following `upstream`: a replica link into a new backlog, the poller of the node's offset, and with
    /// `sentinels` their failover announcements, which switch the upstream. `cluster`, in a cluster, says which
    /// keys the shard holds now: snapshots (the state's refreshes and checks too) read only those, with `READONLY`,
    /// and its state answers only for those of the slots it did not gain ([`ClusterSlots`]).
    pub fn follow(
        number: u32,
        upstream: Upstream,
        sentinels: Option<Arc<Sentinels>>,
        cluster: Option<ClusterSlots>,
        settings: &LinkSettings,
    ) -> Arc<Shard> {
        let upstream = Arc::new(upstream);
        let backlog = Arc::new(Backlog::new(settings.backlog_bytes));
        let link = Arc::new(LinkMetrics::default());
        let owns = cluster.as_ref().map(|c| c.owns.clone());
        let gained = cluster.as_ref().map(|c| c.gained.clone());
        let keys = cluster.map(
            |ClusterSlots {
                 owns,
                 gained,
                 generation,
             }| ShardKeys {
                owns: owns.clone(),
                answers: Arc::new(move |key: &[u8]| owns(key) && !gained.contains(slot(key))),
                generation,
            },
        );
        let state = settings
            .state
            .clone()
            .map(|state| Arc::new(RelayState::for_shard(state, keys)));
        // The state is applied on a thread of its own, trailing the backlog (state/feed.rs).
        let (state, feed) = match state {
            Some(state) => match StateFeed::start(state.clone(), settings.state_queue_bytes) {
                Ok(feed) => (Some(state), Some(feed)),
                Err(err) => {
                    tracing::error!(
                        "relay state: cannot start its thread ({err}); joins read Redis"
                    );
                    (None, None)
                }
            },
            None => (None, None),
        };
        let mut tasks = vec![
            tokio::spawn(
                ReplicaLink {
                    upstream: upstream.clone(),
                    sentinels: sentinels.clone(),
                    backlog: backlog.clone(),
                    state: feed,
                    allow: Some(settings.allow.clone()),
                    metrics: link.clone(),
                    listening_port: settings.listening_port,
                    timeout: settings.timeout,
                    profile: settings.profile.clone(),
                }
                .follow(),
            ),
            tokio::spawn({
                let (link, upstream) = (link.clone(), upstream.clone());
                async move { link.poll_upstream(upstream).await }
            }),
        ];
        if let Some(state) = &state {
            // The state's own reads of keys it lost track of, with a snapshotter of their own: sessions' joins do
            // not wait behind them.
            let snapshots = Snapshotter::new(upstream.clone(), owns.clone());
            tasks.push(tokio::spawn(crate::state::refresh(
                state.clone(),
                snapshots,
            )));
            if let Some(verify) = settings.verify {
                // Its own snapshotter too: a check's reads never wait behind joins.
                let snapshots = Snapshotter::new(upstream.clone(), owns.clone());
                tasks.push(tokio::spawn(crate::state_checks::every(
                    state.clone(),
                    snapshots,
                    verify,
                )));
            }
        }
        if let Some(sentinels) = sentinels {
            tasks.push(tokio::spawn(sentinel::watch_switches(
                sentinels,
                upstream.clone(),
            )));
        }
        Arc::new(Shard {
            number,
            snapshots: Snapshotter::new(upstream.clone(), owns),
            state,
            gained,
            upstream,
            backlog,
            link,
            databases: tokio::sync::Mutex::new(None),
            retired: watch::channel(false).0,
            tasks,
        })
    }

    /// The shard left the cluster: its sessions stop following it, and its link stops once they let it go.
    pub fn retire(&self) {
        self.retired.send_replace(true);
    }

    /// A receiver that wakes when the shard is retired.
    pub fn retired(&self) -> watch::Receiver<bool> {
        self.retired.subscribe()
    }

    pub fn is_retired(&self) -> bool {
        *self.retired.borrow()
    }

    /// Stops the shard's tasks now: the relay is going away.
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }

    /// The shard's link as `/metrics` labels it.
    pub fn link_row(&self) -> ShardLink<'_> {
        ShardLink {
            number: self.number,
            node: self.upstream.addr(),
            backlog: &self.backlog,
            metrics: &self.link,
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        self.stop();
    }
}
