//! A local Redis Cluster for the integration tests: one redis-server per node on free loopback ports, each in a
//! scratch folder of its own (its `nodes.conf` and its log), joined with `redis-cli --cluster create`, and the
//! operations the cluster tests need: routed writes and reads, a manual failover, a slot migration with keys in
//! it, a node added or removed, a node killed and restarted. Every operation returns once the whole cluster agrees
//! again. Dropping the [`Cluster`] kills every node and removes the folders.
//!
//! The nodes log to a file in their folder, not to the test's output; a wait that times out panics with the tail
//! of every log.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{ErrorKind, ServerErrorKind, Value};

use super::{free_port, scratch_dir, Proc};

/// How long any wait for the cluster to settle may take before the test fails.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause between two looks at the cluster while waiting.
const POLL: Duration = Duration::from_millis(50);
/// The node timeout of every node: failure detection and manual failovers take a few of these at most.
const NODE_TIMEOUT_MS: &str = "2000";

/// Redis Cluster's number of hash slots.
pub const SLOTS: u16 = 16384;

/// The hash slot of `key`: the relay's own (`replicast_server::hash_slot::slot`), which
/// `cluster_support.rs` checks against `CLUSTER KEYSLOT`.
pub fn key_slot(key: &[u8]) -> u16 {
    replicast_server::hash_slot::slot(key)
}

/// One node: its port, its folder (kept across a kill so that a restart finds its `nodes.conf`), its process
/// while it runs.
struct Node {
    port: u16,
    bus_port: u16,
    dir: PathBuf,
    proc: Option<Proc>,
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct NodeEntry {
    pub id: String,
    pub port: u16,
    /// The primary's node ID for a replica, `None` for a primary.
    pub primary_id: Option<String>,
    /// Marked `fail` or `fail?` by the node asked.
    pub failing: bool,
    pub handshake: bool,
}

/// A slot range of `CLUSTER SLOTS` and the port of the primary serving it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
    pub primary: u16,
}

/// A local Redis Cluster of real redis-server processes; see the module's documentation.
pub struct Cluster {
    nodes: Vec<Node>,
}

impl Cluster {
    /// Starts `primaries` primaries with `replicas_per_primary` replicas each, creates the cluster (the slots split
    /// evenly), and returns once every node reports `cluster_state:ok`, every node has the same slot map and every
    /// replica's link to its primary is up.
    pub async fn start(primaries: usize, replicas_per_primary: usize) -> Cluster {
        assert!(primaries >= 1, "a cluster needs a primary");
        let count = primaries * (1 + replicas_per_primary);
        let mut cluster = Cluster { nodes: Vec::new() };
        for _ in 0..count {
            cluster
                .nodes
                .push(spawn_node(free_port(), free_port(), scratch_dir("cluster")));
        }
        for node in &cluster.nodes {
            cluster.wait_ping(node.port).await;
        }
        if primaries >= 3 {
            let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
            args.extend(
                cluster
                    .nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.port)),
            );
            args.extend([
                "--cluster-replicas".into(),
                replicas_per_primary.to_string(),
                "--cluster-yes".into(),
            ]);
            cluster.redis_cli(&args).await;
        } else {
            cluster
                .create_by_hand(primaries, replicas_per_primary)
                .await;
        }
        cluster.wait_settled().await;
        cluster
    }

    /// What `redis-cli --cluster create` does, for the one or two primaries it refuses: the slots split evenly
    /// over the first `primaries` nodes, every node met, each replica attached to its primary.
    async fn create_by_hand(&self, primaries: usize, replicas_per_primary: usize) {
        let first = &self.nodes[0];
        for (i, node) in self.nodes.iter().enumerate() {
            let mut conn = super::redis_conn(node.port).await;
            if i < primaries {
                let from = usize::from(SLOTS) * i / primaries;
                let to = usize::from(SLOTS) * (i + 1) / primaries - 1;
                let _: () = redis::cmd("CLUSTER")
                    .arg("ADDSLOTSRANGE")
                    .arg(from)
                    .arg(to)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
            if i > 0 {
                let _: () = redis::cmd("CLUSTER")
                    .arg("MEET")
                    .arg("127.0.0.1")
                    .arg(first.port)
                    .arg(first.bus_port)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }
        for (i, node) in self.nodes.iter().enumerate().skip(primaries) {
            let primary = self.nodes[(i - primaries) / replicas_per_primary].port;
            let primary_id = node_id(&mut super::redis_conn(primary).await).await;
            // The replica knows its primary only once the meeting has gossiped its way around.
            self.wait_for(&format!("{} to replicate {primary}", node.port), || async {
                let mut conn = try_conn(node.port).await?;
                redis::cmd("CLUSTER")
                    .arg("REPLICATE")
                    .arg(&primary_id)
                    .query_async::<()>(&mut conn)
                    .await
                    .ok()
            })
            .await;
        }
    }

    /// The ports of the running nodes, primaries and replicas.
    pub fn ports(&self) -> Vec<u16> {
        self.running().collect()
    }

    /// The ports of the primaries, in the order of the first slot each serves (those without slots last, by
    /// port), as a running node sees them now.
    pub async fn primaries(&self) -> Vec<u16> {
        let map = self.slot_map().await;
        let mut ports: Vec<u16> = Vec::new();
        for range in &map {
            if !ports.contains(&range.primary) {
                ports.push(range.primary);
            }
        }
        let mut empty: Vec<u16> = self
            .nodes_view()
            .await
            .into_iter()
            .filter(|e| e.primary_id.is_none() && !e.failing && !ports.contains(&e.port))
            .map(|e| e.port)
            .collect();
        empty.sort_unstable();
        ports.extend(empty);
        ports
    }

    /// The ports of the replicas of the primary on `primary_port`, by port.
    pub async fn replicas_of(&self, primary_port: u16) -> Vec<u16> {
        let view = self.nodes_view().await;
        let Some(primary) = view.iter().find(|e| e.port == primary_port) else {
            panic!("no node on port {primary_port} in the cluster");
        };
        let mut ports: Vec<u16> = view
            .iter()
            .filter(|e| !e.failing && e.primary_id.as_deref() == Some(primary.id.as_str()))
            .map(|e| e.port)
            .collect();
        ports.sort_unstable();
        ports
    }

    /// The hash slot of `key` (see [`key_slot`]).
    pub fn slot(&self, key: &[u8]) -> u16 {
        key_slot(key)
    }

    /// The port of the primary serving `slot`, from `CLUSTER SLOTS` now.
    pub async fn owner(&self, slot: u16) -> u16 {
        self.slot_map()
            .await
            .into_iter()
            .find(|r| r.start <= slot && slot <= r.end)
            .unwrap_or_else(|| panic!("no node serves slot {slot}"))
            .primary
    }

    /// A connection to the primary serving `key`'s slot.
    pub async fn conn_for(&self, key: &[u8]) -> MultiplexedConnection {
        super::redis_conn(self.owner(key_slot(key)).await).await
    }

    /// `ZADD key score member` on the primary serving `key`, following one `MOVED` or `ASK` redirection.
    pub async fn zadd(&self, key: &str, score: f64, member: &str) {
        let mut command = redis::cmd("ZADD");
        command.arg(key).arg(score).arg(member);
        let _: i64 = self.routed(key, &command).await;
    }

    /// The newest `n` members of `key` with their scores, newest first (`ZRANGE key -n -1 WITHSCORES` reversed),
    /// read from the primary serving `key`, following one `MOVED` or `ASK` redirection.
    pub async fn zrange_withscores_newest(&self, key: &str, n: usize) -> Vec<(String, f64)> {
        let mut command = redis::cmd("ZRANGE");
        command.arg(key).arg(-(n as i64)).arg(-1).arg("WITHSCORES");
        let flat: Vec<(String, f64)> = self.routed(key, &command).await;
        flat.into_iter().rev().collect()
    }

    /// Runs `command` on the owner of `key`'s slot as this cluster's map says; on `MOVED` runs it once more on
    /// the node named, on `ASK` once more there after `ASKING` (the slot is being migrated).
    async fn routed<T: redis::FromRedisValue>(&self, key: &str, command: &redis::Cmd) -> T {
        let mut conn = self.conn_for(key.as_bytes()).await;
        let err = match command.query_async(&mut conn).await {
            Ok(value) => return value,
            Err(err) => err,
        };
        let port = redirect_port(&err).unwrap_or_else(|| panic!("{key}: {err}"));
        let mut conn = super::redis_conn(port).await;
        if err.kind() == ErrorKind::Server(ServerErrorKind::Ask) {
            let (value,): (T,) = redis::pipe()
                .cmd("ASKING")
                .ignore()
                .add_command(command.clone())
                .query_async(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{key} after ASK to {port}: {e}"));
            value
        } else {
            command
                .query_async(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{key} after MOVED to {port}: {e}"))
        }
    }

    /// A manual failover: `CLUSTER FAILOVER` on the replica on `replica_port`; returns once it reports
    /// `role:master`, every running node's slot map names it, and the cluster is settled again (the old primary
    /// replicating from it).
    pub async fn failover(&self, replica_port: u16) {
        let mut conn = super::redis_conn(replica_port).await;
        let _: () = redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .query_async(&mut conn)
            .await
            .unwrap();
        self.wait_for(&format!("{replica_port} to become a primary"), || async {
            let mut conn = try_conn(replica_port).await?;
            if super::info_field(&mut conn, "replication", "role").await != "master" {
                return None;
            }
            for port in self.running() {
                if !self
                    .slot_map_of(port)
                    .await?
                    .iter()
                    .any(|r| r.primary == replica_port)
                {
                    return None;
                }
            }
            Some(())
        })
        .await;
        self.wait_settled().await;
    }

    /// Moves `slot` and its keys from the primary on `from_port` to the one on `to_port`, the way `redis-cli
    /// --cluster reshard` does: `IMPORTING` on the target, `MIGRATING` on the source, `MIGRATE` its keys 100 at a
    /// time, then `SETSLOT … NODE` on the target, the source and every other primary. Returns once every node's
    /// slot map names the target.
    pub async fn migrate_slot(&self, slot: u16, from_port: u16, to_port: u16) {
        self.migrate_slot_meanwhile(slot, from_port, to_port, || async {})
            .await;
    }

    /// [`Cluster::migrate_slot`], awaiting `meanwhile()` twice while the slot is in migration: once marked
    /// migrating with its keys still on the source, and once with its keys moved to the target but the slot not yet
    /// handed over (a command on them gets `ASK`). What a test does concurrently then happens during the move in
    /// every interleaving, however quick the move.
    pub async fn migrate_slot_meanwhile<F: std::future::Future<Output = ()>>(
        &self,
        slot: u16,
        from_port: u16,
        to_port: u16,
        mut meanwhile: impl FnMut() -> F,
    ) {
        let mut from = super::redis_conn(from_port).await;
        let mut to = super::redis_conn(to_port).await;
        let from_id = node_id(&mut from).await;
        let to_id = node_id(&mut to).await;
        setslot(&mut to, slot, "IMPORTING", Some(&from_id)).await;
        setslot(&mut from, slot, "MIGRATING", Some(&to_id)).await;
        meanwhile().await;
        loop {
            let keys: Vec<Vec<u8>> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query_async(&mut from)
                .await
                .unwrap();
            if keys.is_empty() {
                break;
            }
            let _: Value = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(to_port)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(keys)
                .query_async(&mut from)
                .await
                .unwrap();
        }
        meanwhile().await;
        setslot(&mut to, slot, "NODE", Some(&to_id)).await;
        setslot(&mut from, slot, "NODE", Some(&to_id)).await;
        for port in self.primaries().await {
            if port != from_port && port != to_port {
                let mut conn = super::redis_conn(port).await;
                setslot(&mut conn, slot, "NODE", Some(&to_id)).await;
            }
        }
        self.wait_for(
            &format!("every node to see slot {slot} on {to_port}"),
            || async {
                for port in self.running() {
                    let map = self.slot_map_of(port).await?;
                    let range = map.iter().find(|r| r.start <= slot && slot <= r.end)?;
                    if range.primary != to_port {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await;
        self.wait_settled().await;
    }

    /// Starts a new empty node, joins it as a primary without slots (`redis-cli --cluster add-node`), and returns
    /// its port once every node knows it.
    pub async fn add_primary(&mut self) -> u16 {
        let port = free_port();
        self.nodes
            .push(spawn_node(port, free_port(), scratch_dir("cluster")));
        self.wait_ping(port).await;
        let existing = self.running().find(|&p| p != port).expect("a running node");
        self.redis_cli(&[
            "--cluster".into(),
            "add-node".into(),
            format!("127.0.0.1:{port}"),
            format!("127.0.0.1:{existing}"),
        ])
        .await;
        self.wait_settled().await;
        port
    }

    /// Removes the node on `port`, which must serve no slots (a replica, or a primary emptied by
    /// [`Cluster::migrate_slot`]), with `redis-cli --cluster del-node` (which also shuts it down); returns once no
    /// running node knows it.
    pub async fn remove_node(&mut self, port: u16) {
        let mut conn = super::redis_conn(port).await;
        let id = node_id(&mut conn).await;
        drop(conn);
        let other = self.running().find(|&p| p != port).expect("another node");
        self.redis_cli(&[
            "--cluster".into(),
            "del-node".into(),
            format!("127.0.0.1:{other}"),
            id,
        ])
        .await;
        let index = self.index(port);
        let node = self.nodes.remove(index);
        drop(node.proc);
        let _ = std::fs::remove_dir_all(&node.dir);
        self.wait_settled().await;
    }

    /// Loses the primary on `port` with its slots and keys, as when a shard without replicas is gone for good: kills
    /// it, has every other node forget it (`CLUSTER FORGET`: its slots are unassigned there), and gives its slots
    /// afresh to the primary on `heir` (`CLUSTER ADDSLOTSRANGE`), which holds none of their keys. Returns once the
    /// cluster is settled without it. Only the heir is asked about it (the node may be paused, answering no one).
    pub async fn lose_primary(&mut self, port: u16, heir: u16) {
        let mut conn = super::redis_conn(heir).await;
        let id = nodes_of(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("{heir} does not know {port}"))
            .id;
        let slots: Vec<SlotRange> = slots_of(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.primary == port)
            .collect();
        assert!(!slots.is_empty(), "{port} serves no slot");
        self.kill(port);
        for other in self.running().collect::<Vec<_>>() {
            let _: () = redis::cmd("CLUSTER")
                .arg("FORGET")
                .arg(&id)
                .query_async(&mut super::redis_conn(other).await)
                .await
                .unwrap();
        }
        for range in slots {
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(range.start)
                .arg(range.end)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        let index = self.index(port);
        let node = self.nodes.remove(index);
        let _ = std::fs::remove_dir_all(&node.dir);
        self.wait_settled().await;
    }

    /// Leaves `slot` without an owner, as for a while during a failover or a resharding: every running node forgets
    /// who serves it (`CLUSTER DELSLOTS`), and since no node claims it any more, none learns an owner by gossip. The
    /// node that served it keeps its keys. Returns once no running node maps the slot.
    pub async fn unassign_slot(&self, slot: u16) {
        for port in self.running().collect::<Vec<_>>() {
            let _: () = redis::cmd("CLUSTER")
                .arg("DELSLOTS")
                .arg(slot)
                .query_async(&mut super::redis_conn(port).await)
                .await
                .unwrap();
        }
        self.wait_for(&format!("no node to map slot {slot}"), || async {
            for port in self.running() {
                let map = self.slot_map_of(port).await?;
                if map.iter().any(|r| (r.start..=r.end).contains(&slot)) {
                    return None;
                }
            }
            Some(())
        })
        .await;
    }

    /// Gives `slot`, which no node serves ([`Cluster::unassign_slot`]), to the primary on `port`
    /// (`CLUSTER ADDSLOTS`), which holds none of the keys its last owner kept unless it is that node. Returns once
    /// the cluster is settled with it.
    pub async fn assign_slot(&self, slot: u16, port: u16) {
        let _: () = redis::cmd("CLUSTER")
            .arg("ADDSLOTS")
            .arg(slot)
            .query_async(&mut super::redis_conn(port).await)
            .await
            .unwrap();
        self.wait_settled().await;
    }

    /// Kills the node on `port` with SIGKILL; its folder stays for [`Cluster::restart`]. The rest of the cluster
    /// notices after the node timeout (2 s), and a replica of a killed primary takes over after a few more.
    pub fn kill(&mut self, port: u16) {
        let index = self.index(port);
        self.nodes[index].proc = None;
    }

    /// Starts the killed node on `port` again from its folder (same node ID, its `nodes.conf`), and returns once
    /// the cluster is settled with it.
    pub async fn restart(&mut self, port: u16) {
        let index = self.index(port);
        assert!(self.nodes[index].proc.is_none(), "{port} is running");
        let node = spawn_node(
            port,
            self.nodes[index].bus_port,
            self.nodes[index].dir.clone(),
        );
        self.nodes[index].proc = node.proc;
        self.wait_ping(port).await;
        self.wait_settled().await;
    }

    /// Waits until every running node reports `cluster_state:ok` and knows every running node and no other
    /// (none in handshake or failing), they all have the same slot map covering every slot and see the same node
    /// as each replica's primary, and every replica's link to its primary is up.
    pub async fn wait_settled(&self) {
        self.wait_for("the cluster to settle", || async {
            let running: Vec<u16> = self.running().collect();
            let mut first: Option<(Vec<SlotRange>, Roles)> = None;
            for &port in &running {
                let mut conn = try_conn(port).await?;
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut conn)
                    .await
                    .ok()?;
                if !info.lines().any(|l| l.trim() == "cluster_state:ok") {
                    return None;
                }
                let view = nodes_of(&mut conn).await?;
                let mut known: Vec<u16> = view
                    .iter()
                    .filter(|e| !e.failing && !e.handshake)
                    .map(|e| e.port)
                    .collect();
                known.sort_unstable();
                let mut expected = running.clone();
                expected.sort_unstable();
                if known != expected {
                    return None;
                }
                let map = slots_of(&mut conn).await?;
                let covered: u32 = map.iter().map(|r| u32::from(r.end - r.start) + 1).sum();
                if covered != u32::from(SLOTS) {
                    return None;
                }
                let roles = roles_of(&view);
                match &first {
                    None => first = Some((map, roles)),
                    Some(seen) if seen.0 == map && seen.1 == roles => {}
                    Some(_) => return None,
                }
                let me = view.iter().find(|e| e.port == port)?;
                if me.primary_id.is_some()
                    && super::info_field(&mut conn, "replication", "master_link_status").await
                        != "up"
                {
                    return None;
                }
            }
            Some(())
        })
        .await;
    }

    /// The slot map as the first running node that answers sees it, ranges in slot order.
    pub async fn slot_map(&self) -> Vec<SlotRange> {
        for port in self.running() {
            if let Some(map) = self.slot_map_of(port).await {
                return map;
            }
        }
        panic!("no running node answers CLUSTER SLOTS");
    }

    async fn slot_map_of(&self, port: u16) -> Option<Vec<SlotRange>> {
        slots_of(&mut try_conn(port).await?).await
    }

    /// `CLUSTER NODES` as the first running node that answers sees it.
    pub async fn nodes_view(&self) -> Vec<NodeEntry> {
        for port in self.running() {
            if let Some(mut conn) = try_conn(port).await {
                if let Some(view) = nodes_of(&mut conn).await {
                    return view;
                }
            }
        }
        panic!("no running node answers CLUSTER NODES");
    }

    fn running(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes
            .iter()
            .filter(|n| n.proc.is_some())
            .map(|n| n.port)
    }

    fn index(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    async fn wait_ping(&self, port: u16) {
        self.wait_for(&format!("{port} to answer PING"), || async {
            let mut conn = try_conn(port).await?;
            let pong: String = redis::cmd("PING").query_async(&mut conn).await.ok()?;
            (pong == "PONG").then_some(())
        })
        .await;
    }

    /// Polls `check` until it returns `Some`, or panics after [`SETTLE_TIMEOUT`] with every node's log tail.
    async fn wait_for<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<()>>,
    {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if check().await.is_some() {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("timed out waiting for {what}\n{}", self.log_tails());
    }

    /// `redis-cli` with `args`, its output kept for the panic message should it fail.
    async fn redis_cli(&self, args: &[String]) {
        let output = tokio::process::Command::new("redis-cli")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("spawn redis-cli");
        if !output.status.success() {
            panic!(
                "redis-cli {} failed ({}):\n{}{}\n{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                self.log_tails()
            );
        }
    }

    /// The last lines of every node's log, for a failing test's message.
    fn log_tails(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let log = std::fs::read_to_string(node.dir.join("redis.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            out += &format!("--- node {} log, last lines:\n", node.port);
            for line in &lines[lines.len().saturating_sub(15)..] {
                out += line;
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.drain(..) {
            drop(node.proc);
            let _ = std::fs::remove_dir_all(&node.dir);
        }
    }
}

/// A cluster-enabled redis-server on `port`, its cluster bus on `bus_port`, working in `dir` (its `nodes.conf`, its
/// log); running, maybe not yet answering. The bus port is a free port of its own, not the default `port + 10000`,
/// which nothing checked was free.
fn spawn_node(port: u16, bus_port: u16, dir: PathBuf) -> Node {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes", "--cluster-config-file"])
        .arg(dir.join("nodes.conf"))
        .arg("--dir")
        .arg(&dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .args(["--cluster-port", &bus_port.to_string()])
        .args(["--cluster-node-timeout", NODE_TIMEOUT_MS])
        .args(["--save", "", "--appendonly", "no"])
        // A replica's first sync starts at once instead of after the default 5 s wait for more replicas.
        .args(["--repl-diskless-sync-delay", "0"])
        // Replicas stay with the primary they were given, whatever the slots do.
        .args(["--cluster-allow-replica-migration", "no"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    Node {
        port,
        bus_port,
        dir,
        proc: Some(Proc::new(child)),
    }
}

/// A connection to the node on `port`, [`super::patient`], or `None` if it does not take one (killed).
async fn try_conn(port: u16) -> Option<MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    client
        .get_multiplexed_async_connection_with_config(&super::patient())
        .await
        .ok()
}

/// The port a `MOVED` or `ASK` error sends to, `None` for any other error.
fn redirect_port(err: &redis::RedisError) -> Option<u16> {
    let (addr, _slot) = err.redirect_node()?;
    addr.rsplit(':').next()?.parse().ok()
}

async fn node_id(conn: &mut MultiplexedConnection) -> String {
    redis::cmd("CLUSTER")
        .arg("MYID")
        .query_async(conn)
        .await
        .unwrap()
}

async fn setslot(conn: &mut MultiplexedConnection, slot: u16, state: &str, id: Option<&str>) {
    let mut command = redis::cmd("CLUSTER");
    command.arg("SETSLOT").arg(slot).arg(state);
    if let Some(id) = id {
        command.arg(id);
    }
    let _: () = command
        .query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("CLUSTER SETSLOT {slot} {state}: {e}"));
}

/// `CLUSTER NODES`, parsed; `None` if the node does not answer.
async fn nodes_of(conn: &mut MultiplexedConnection) -> Option<Vec<NodeEntry>> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(conn)
        .await
        .ok()?;
    Some(text.lines().filter_map(parse_node_line).collect())
}

/// `<id> <ip:port@cport> <flags> <primary id or -> …`
fn parse_node_line(line: &str) -> Option<NodeEntry> {
    let mut fields = line.split_whitespace();
    let id = fields.next()?.to_string();
    let addr = fields.next()?;
    let port = addr.split('@').next()?.rsplit(':').next()?.parse().ok()?;
    let flags: Vec<&str> = fields.next()?.split(',').collect();
    let primary = fields.next()?;
    Some(NodeEntry {
        id,
        port,
        primary_id: (primary != "-").then(|| primary.to_string()),
        failing: flags.iter().any(|f| *f == "fail" || *f == "fail?"),
        handshake: flags.contains(&"handshake") || flags.contains(&"noaddr"),
    })
}

/// Each node's port and its primary's port, `None` for a primary, by port: what every node must agree on.
type Roles = Vec<(u16, Option<u16>)>;

fn roles_of(view: &[NodeEntry]) -> Roles {
    let mut roles: Roles = view
        .iter()
        .filter(|e| !e.failing)
        .map(|e| {
            let primary = e
                .primary_id
                .as_ref()
                .map(|id| view.iter().find(|p| &p.id == id).map_or(0, |p| p.port));
            (e.port, primary)
        })
        .collect();
    roles.sort_unstable();
    roles
}

/// `CLUSTER SLOTS`, parsed into ranges in slot order; `None` if the node does not answer.
async fn slots_of(conn: &mut MultiplexedConnection) -> Option<Vec<SlotRange>> {
    let value: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(conn)
        .await
        .ok()?;
    let Value::Array(ranges) = value else {
        return None;
    };
    let mut map = BTreeMap::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            return None;
        };
        let start: u16 = redis::from_redis_value_ref(fields.first()?).ok()?;
        let end: u16 = redis::from_redis_value_ref(fields.get(1)?).ok()?;
        let Value::Array(primary) = fields.get(2)? else {
            return None;
        };
        let port: u16 = redis::from_redis_value_ref(primary.get(1)?).ok()?;
        map.insert(
            start,
            SlotRange {
                start,
                end,
                primary: port,
            },
        );
    }
    Some(map.into_values().collect())
}
