//! Following a Redis Cluster: one replica link per shard, and the slot map that says which shard holds a key.
//!
//! `--cluster host:port` names any node (or several). The relay asks it for the shards (`CLUSTER SHARDS`, or
//! `CLUSTER SLOTS` on a Redis without it), and follows each as a [`Shard`], the same as a single Redis: its node
//! (the shard's primary, or one of its replicas with `--cluster-follow replica`), a replica link, a backlog, and a
//! snapshotter that reads only the keys whose slots the shard owns. Every shard's stream keeps its own replication
//! ID and offsets; a session sends each in its own envelope.
//!
//! The topology is read again every [`REFRESH_INTERVAL`]: a failover inside a shard switches that shard's upstream
//! (the link re-attaches with `PSYNC`, which the promoted node continues), a new shard gets a link, a shard that
//! left the cluster is retired, and slots that moved are published in a new view of the [`Topology`], so sessions
//! top up their keys in those slots from the new owner.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Value;
use thiserror::Error;

use crate::hash_slot::{SlotSet, SLOTS};
use crate::shard::{ClusterSlots, LinkSettings, Shard};
use crate::topology::{Owners, Topology};
use crate::upstream::{NodeSettings, RedisTarget, Upstream};

/// How often the topology is read again.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// How long one topology read may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// `host:port` of a cluster node, as `--cluster` takes it (`[::1]:7000` for IPv6).
pub fn parse_node(node: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = node
        .trim()
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--cluster {node:?}: expected host:port"))?;
    let port = port
        .parse()
        .map_err(|_| anyhow::anyhow!("--cluster {node:?}: the port is not a number"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// Which node of each shard the relay follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Follow {
    Primary,
    Replica,
}

/// One node as the cluster describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub host: String,
    pub port: u16,
    pub primary: bool,
    /// `false` for a node the cluster marks failed (or still loading).
    pub healthy: bool,
}

/// One shard: its slot ranges and nodes (the primary first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub slots: Vec<(u16, u16)>,
    pub nodes: Vec<Node>,
}

impl ShardInfo {
    /// The node to follow: the healthy primary, or with `Follow::Replica` a healthy replica (the one with the
    /// smallest id, so that a relay keeps its choice), else the primary.
    pub fn choose(&self, follow: Follow) -> Option<&Node> {
        let primary = self.nodes.iter().find(|n| n.primary && n.healthy);
        match follow {
            Follow::Primary => primary,
            Follow::Replica => self
                .nodes
                .iter()
                .filter(|n| !n.primary && n.healthy)
                .min_by(|a, b| a.id.cmp(&b.id))
                .or(primary),
        }
    }
}

#[derive(Debug, Error)]
pub enum TopologyError {
    #[error("cannot ask {node} for the cluster's shards: {error}")]
    Redis { node: String, error: String },
    #[error("{node} answered {command} with something unexpected: {what}")]
    Reply {
        node: String,
        command: &'static str,
        what: String,
    },
    #[error("{node} is not part of a Redis Cluster (cluster_enabled:0): follow it with --redis-url instead")]
    NotCluster { node: String },
}

/// Reads the shards from the first of `seeds` that answers.
pub async fn discover(
    seeds: &[(String, u16)],
    settings: &NodeSettings,
) -> Result<Vec<ShardInfo>, TopologyError> {
    let mut last = None;
    for (host, port) in seeds {
        match discover_at(&settings.at(host, *port)).await {
            Ok(shards) => return Ok(shards),
            Err(err @ TopologyError::NotCluster { .. }) => return Err(err),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or(TopologyError::Redis {
        node: "(none)".into(),
        error: "no --cluster node given".into(),
    }))
}

async fn discover_at(target: &RedisTarget) -> Result<Vec<ShardInfo>, TopologyError> {
    let node = target.addr();
    let redis_err = |err: redis::RedisError| TopologyError::Redis {
        node: node.clone(),
        error: err.to_string(),
    };
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(QUERY_TIMEOUT))
        .set_response_timeout(Some(QUERY_TIMEOUT));
    let mut conn = target
        .client()
        .map_err(redis_err)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(redis_err)?;
    match redis::cmd("CLUSTER")
        .arg("SHARDS")
        .query_async::<Value>(&mut conn)
        .await
    {
        Ok(reply) => parse_shards(&reply).map_err(|what| TopologyError::Reply {
            node: node.clone(),
            command: "CLUSTER SHARDS",
            what,
        }),
        Err(err) if err.to_string().contains("cluster support disabled") => {
            Err(TopologyError::NotCluster { node })
        }
        // Redis before 7.0 has no CLUSTER SHARDS.
        Err(_) => {
            let reply = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async::<Value>(&mut conn)
                .await
                .map_err(|err| {
                    if err.to_string().contains("cluster support disabled") {
                        TopologyError::NotCluster { node: node.clone() }
                    } else {
                        redis_err(err)
                    }
                })?;
            parse_slots(&reply).map_err(|what| TopologyError::Reply {
                node,
                command: "CLUSTER SLOTS",
                what,
            })
        }
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

/// A RESP2 flat map (`[name, value, …]`) or a RESP3 map, as pairs.
fn pairs(value: &Value) -> Option<Vec<(String, &Value)>> {
    match value {
        Value::Array(items) => items
            .chunks_exact(2)
            .map(|pair| Some((text(&pair[0])?, &pair[1])))
            .collect(),
        Value::Map(items) => items.iter().map(|(k, v)| Some((text(k)?, v))).collect(),
        _ => None,
    }
}

fn slot_number(value: &Value) -> Option<u16> {
    int(value)
        .and_then(|s| u16::try_from(s).ok())
        .filter(|&s| usize::from(s) < SLOTS)
}

/// `CLUSTER SHARDS` (Redis 7.0+): per shard, `slots` (start, end, start, end, …) and `nodes` (maps of `id`, `ip`,
/// `endpoint`, `port`, `role`, `health`, …).
pub fn parse_shards(reply: &Value) -> Result<Vec<ShardInfo>, String> {
    let Value::Array(shards) = reply else {
        return Err("not an array of shards".into());
    };
    let mut out = Vec::new();
    for shard in shards {
        let fields = pairs(shard).ok_or("a shard that is not a map")?;
        let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        let Some(Value::Array(slots)) = get("slots") else {
            return Err("a shard without slots".into());
        };
        let slots = slots
            .chunks_exact(2)
            .map(|r| Some((slot_number(&r[0])?, slot_number(&r[1])?)))
            .collect::<Option<Vec<_>>>()
            .ok_or("a slot range that is not two slot numbers")?;
        let Some(Value::Array(nodes)) = get("nodes") else {
            return Err("a shard without nodes".into());
        };
        let mut parsed = Vec::new();
        for node in nodes {
            let fields = pairs(node).ok_or("a node that is not a map")?;
            let get = |name: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .and_then(|(_, v)| text(v).or_else(|| int(v).map(|i| i.to_string())))
            };
            let host = get("ip")
                .filter(|h| !h.is_empty() && h != "?")
                .or_else(|| get("endpoint"))
                .ok_or("a node without an ip")?;
            let port = get("port")
                .and_then(|p| p.parse().ok())
                .ok_or("a node without a port")?;
            parsed.push(Node {
                id: get("id").ok_or("a node without an id")?,
                host,
                port,
                primary: get("role").as_deref() == Some("master"),
                healthy: get("health").is_none_or(|h| h == "online"),
            });
        }
        parsed.sort_by_key(|n| !n.primary);
        out.push(ShardInfo {
            slots,
            nodes: parsed,
        });
    }
    Ok(out)
}

/// `CLUSTER SLOTS`: per slot range, `[start, end, [ip, port, id], [replica ip, port, id], …]`; ranges of one
/// primary make one shard. Primaries without slots are not listed.
pub fn parse_slots(reply: &Value) -> Result<Vec<ShardInfo>, String> {
    let Value::Array(ranges) = reply else {
        return Err("not an array of slot ranges".into());
    };
    let mut by_primary: BTreeMap<String, ShardInfo> = BTreeMap::new();
    for range in ranges {
        let Value::Array(parts) = range else {
            return Err("a slot range that is not an array".into());
        };
        let (Some(start), Some(end)) = (
            parts.first().and_then(slot_number),
            parts.get(1).and_then(slot_number),
        ) else {
            return Err("a slot range without its start and end".into());
        };
        let mut nodes = Vec::new();
        for (i, node) in parts.iter().skip(2).enumerate() {
            let Value::Array(node) = node else {
                return Err("a node that is not an array".into());
            };
            let host = node.first().and_then(text).ok_or("a node without an ip")?;
            let port = node
                .get(1)
                .and_then(int)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or("a node without a port")?;
            let id = node
                .get(2)
                .and_then(text)
                .unwrap_or_else(|| format!("{host}:{port}"));
            nodes.push(Node {
                id,
                host,
                port,
                primary: i == 0,
                healthy: true,
            });
        }
        let Some(primary) = nodes.first() else {
            return Err("a slot range without nodes".into());
        };
        by_primary
            .entry(primary.id.clone())
            .or_insert_with(|| ShardInfo {
                slots: Vec::new(),
                nodes: nodes.clone(),
            })
            .slots
            .push((start, end));
    }
    Ok(by_primary.into_values().collect())
}

/// Everything the relay needs to follow a cluster, and the node ids it has seen in each shard followed.
pub struct Cluster {
    seeds: Vec<(String, u16)>,
    /// Credentials, database and TLS for every node.
    settings: NodeSettings,
    follow: Follow,
    link: LinkSettings,
    /// Where the shards are published for sessions.
    topology: Arc<Topology>,
    /// Every node id seen in each shard followed, by shard number: a failover or a restart keeps a shard
    /// recognisable.
    known: Mutex<HashMap<u32, BTreeSet<String>>>,
    next_number: AtomicU32,
}

impl Cluster {
    pub fn new(
        seeds: Vec<(String, u16)>,
        settings: NodeSettings,
        follow: Follow,
        link: LinkSettings,
        topology: Arc<Topology>,
    ) -> Self {
        Cluster {
            seeds,
            settings,
            follow,
            link,
            topology,
            known: Mutex::default(),
            next_number: AtomicU32::default(),
        }
    }

    /// Reads the topology every [`REFRESH_INTERVAL`] and applies it, forever.
    pub async fn run(self) {
        let mut tick = tokio::time::interval(REFRESH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match discover(&self.known_nodes(), &self.settings).await {
                Ok(shards) => self.apply(shards),
                Err(err) => tracing::warn!("cluster topology: {err}"),
            }
        }
    }

    /// The seeds, then every node of the shards followed: any of them can answer after the seeds are gone.
    fn known_nodes(&self) -> Vec<(String, u16)> {
        let mut nodes = self.seeds.clone();
        for shard in &self.topology.view().shards {
            let Some(target) = shard.upstream.current() else {
                continue;
            };
            let node = (target.host.clone(), target.port);
            if !nodes.contains(&node) {
                nodes.push(node);
            }
        }
        nodes
    }

    /// Follows `shards`: matches each to a shard followed (by any node id in common), switches upstreams, starts
    /// links for new shards, retires the ones gone, and publishes a new view if anything changed.
    pub fn apply(&self, shards: Vec<ShardInfo>) {
        tracing::trace!(?shards, "cluster topology read");
        let before = self.topology.view();
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let mut followed: Vec<Arc<Shard>> = Vec::new();
        let mut owners = vec![None; SLOTS];
        let mut changed = false;
        // Shards started by this read: the slots they have now are in their first full sync.
        let mut started = Vec::new();
        // Shards with a node to follow first: during a failover a node may list the failed primary and its heir as
        // two shards for a moment, and the one that can be followed must keep the shard (and its stream).
        let (live, stranded): (Vec<&ShardInfo>, Vec<&ShardInfo>) = shards
            .iter()
            .partition(|info| info.choose(self.follow).is_some());
        for info in live.into_iter().chain(stranded) {
            let ids: BTreeSet<String> = info.nodes.iter().map(|n| n.id.clone()).collect();
            let knows = |s: &&Arc<Shard>| {
                known
                    .get(&s.number)
                    .is_some_and(|seen| !seen.is_disjoint(&ids))
            };
            let taken = |s: &&Arc<Shard>| followed.iter().any(|f| f.number == s.number);
            let existing = before.shards.iter().find(|s| !taken(s) && knows(s));
            let Some(node) = info.choose(self.follow) else {
                // Nothing to follow (its nodes failed): its slots stay with the shard that knows its nodes.
                tracing::warn!(slots = ?info.slots, "cluster shard with no healthy node to follow");
                let Some(shard) = existing.or_else(|| before.shards.iter().find(knows)) else {
                    continue;
                };
                for &(start, end) in &info.slots {
                    for s in start..=end {
                        owners[usize::from(s)].get_or_insert(shard.number);
                    }
                }
                if !taken(&shard) {
                    followed.push(shard.clone());
                }
                continue;
            };
            if existing.is_none() && info.slots.is_empty() {
                // A primary without slots: a node just added (followed once it gets slots), or, during a failover,
                // the old primary before it turns replica.
                continue;
            }
            let shard = match existing {
                Some(shard) => {
                    let shard = shard.clone();
                    known.entry(shard.number).or_default().extend(ids);
                    if shard.upstream.switch_to(&node.host, node.port) {
                        tracing::info!(shard = shard.number, node = %format!("{}:{}", node.host, node.port),
                            "cluster shard: following another node (a failover or a node gone)");
                    }
                    shard
                }
                None => {
                    changed = true;
                    let shard = self.start_shard(node);
                    started.push(shard.number);
                    known.insert(shard.number, ids);
                    shard
                }
            };
            for &(start, end) in &info.slots {
                for s in start..=end {
                    owners[usize::from(s)] = Some(shard.number);
                }
            }
            followed.push(shard);
        }
        for gone in before
            .shards
            .iter()
            .filter(|s| !followed.iter().any(|f| f.number == s.number))
        {
            tracing::info!(
                shard = gone.number,
                node = %gone.upstream.addr(),
                "cluster shard left the cluster: no longer followed"
            );
            gone.retire();
            known.remove(&gone.number);
            changed = true;
        }
        // A slot that moved to a shard followed before is noted as gained before the view that says so is
        // published: its state, whose past (and its offset, which trails the node's) may be from before the move,
        // never answers for its keys, which are read from the node (see `ClusterSlots`).
        let before_owners = match &before.owners {
            Owners::BySlot(then) => Some(then),
            Owners::All(_) => None,
        };
        for shard in followed.iter().filter(|s| !started.contains(&s.number)) {
            let Some(gained) = &shard.gained else {
                continue;
            };
            for (s, owner) in owners.iter().enumerate() {
                let then = before_owners.and_then(|then| then[s]);
                if *owner == Some(shard.number) && then != Some(shard.number) {
                    gained.insert(s as u16);
                }
            }
        }
        let owners = Owners::BySlot(owners);
        if owners != before.owners {
            changed = true;
        }
        if changed {
            followed.sort_by_key(|s| s.number);
            self.topology.publish(followed, owners);
        }
    }

    fn start_shard(&self, node: &Node) -> Arc<Shard> {
        let number = self.next_number.fetch_add(1, Ordering::Relaxed);
        tracing::info!(shard = number, node = %format!("{}:{}", node.host, node.port), "cluster shard: following");
        let view = self.topology.subscribe();
        let owns = move |key: &[u8]| view.borrow().owner_of(key) == Some(number);
        // The view's version: a slot gained is noted before the view that says so is published (`apply`).
        let view = self.topology.subscribe();
        let generation = move || view.borrow().version;
        Shard::follow(
            number,
            Upstream::at(self.settings.at(&node.host, node.port)),
            None,
            Some(ClusterSlots {
                owns: Arc::new(owns),
                gained: Arc::new(SlotSet::default()),
                generation: Arc::new(generation),
            }),
            &self.link,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn nodes_are_host_and_port() {
        assert_eq!(
            parse_node(" 127.0.0.1:7000").unwrap(),
            ("127.0.0.1".into(), 7000)
        );
        assert_eq!(parse_node("[::1]:7000").unwrap(), ("::1".into(), 7000));
        assert!(parse_node("h")
            .unwrap_err()
            .to_string()
            .contains("expected host:port"));
        assert!(parse_node("h:x")
            .unwrap_err()
            .to_string()
            .contains("not a number"));
    }

    fn node(id: &str, port: i64, role: &str, health: &str) -> Value {
        Value::Array(vec![
            bulk("id"),
            bulk(id),
            bulk("port"),
            Value::Int(port),
            bulk("ip"),
            bulk("127.0.0.1"),
            bulk("endpoint"),
            bulk("127.0.0.1"),
            bulk("role"),
            bulk(role),
            bulk("replication-offset"),
            Value::Int(100),
            bulk("health"),
            bulk(health),
        ])
    }

    #[test]
    fn cluster_shards_replies_give_slots_and_nodes_primary_first() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("slots"),
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                Value::Int(6000),
                Value::Int(6001),
            ]),
            bulk("nodes"),
            Value::Array(vec![
                node("b", 7003, "replica", "online"),
                node("a", 7000, "master", "online"),
            ]),
        ])]);
        let shards = parse_shards(&reply).unwrap();
        assert_eq!(shards[0].slots, vec![(0, 5460), (6000, 6001)]);
        assert_eq!(shards[0].nodes[0].id, "a");
        assert_eq!(shards[0].choose(Follow::Primary).unwrap().port, 7000);
        assert_eq!(shards[0].choose(Follow::Replica).unwrap().port, 7003);
        let mut failed = shards[0].clone();
        failed.nodes[1].healthy = false;
        assert_eq!(failed.choose(Follow::Replica).unwrap().port, 7000);
        assert!(parse_shards(&bulk("no")).is_err());
        let bad = Value::Array(vec![Value::Array(vec![
            bulk("slots"),
            Value::Array(vec![Value::Int(0), Value::Int(99999)]),
            bulk("nodes"),
            Value::Array(vec![]),
        ])]);
        assert_eq!(
            parse_shards(&bad).unwrap_err(),
            "a slot range that is not two slot numbers"
        );
    }

    #[test]
    fn cluster_slots_replies_group_ranges_by_primary() {
        let range = |start, end, primary: (&str, i64), replica: (&str, i64)| {
            Value::Array(vec![
                Value::Int(start),
                Value::Int(end),
                Value::Array(vec![
                    bulk("127.0.0.1"),
                    Value::Int(primary.1),
                    bulk(primary.0),
                ]),
                Value::Array(vec![
                    bulk("127.0.0.1"),
                    Value::Int(replica.1),
                    bulk(replica.0),
                ]),
            ])
        };
        let reply = Value::Array(vec![
            range(0, 100, ("a", 7000), ("b", 7003)),
            range(101, 200, ("c", 7001), ("d", 7004)),
            range(201, 300, ("a", 7000), ("b", 7003)),
        ]);
        let shards = parse_slots(&reply).unwrap();
        assert_eq!(shards.len(), 2);
        assert_eq!(shards[0].slots, vec![(0, 100), (201, 300)]);
        assert!(shards[0].nodes[0].primary && !shards[0].nodes[1].primary);
        assert!(parse_slots(&Value::Array(vec![Value::Array(vec![Value::Int(0)])])).is_err());
    }
}
