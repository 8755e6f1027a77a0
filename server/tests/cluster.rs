//! The relay following a Redis Cluster: a local cluster of 3 primaries and 3 replicas started by each test
//! (`redis-server --cluster-enabled yes`, `redis-cli --cluster create`), real relays, and a browser's
//! StreamAssembler fed by the relay's WebSocket, asking for top-ups as a page does. Each test ends with every window
//! equal to what Redis holds: streaming from all shards, a `CLUSTER FAILOVER`, a slot migrating under load, and two
//! relays (on the primaries, on the replicas) behind which a browser switches and resumes without a snapshot. Each
//! shard keeps a state of its own: joins are answered from it, and a top-up asked with `since` gets each shard's
//! past message, in its envelope, listing the scores `ZINCRBY`s gave its keys.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::SinkExt;
use replicast_assembler::{StreamAssembler, WatchConfig};
use replicast_protocol::client_message::{ClientMessage, Event, Topup};
use replicast_protocol::wire::{self, Message};
use support::cluster::Cluster;
use support::*;

const WINDOW: usize = 20;
/// How long a browser may take to converge after the writes stop.
const CONVERGE: Duration = Duration::from_secs(30);

fn assembler() -> StreamAssembler {
    StreamAssembler::new(WatchConfig {
        patterns: vec![b"perf:*".to_vec()],
        db: 0,
        window: WINDOW,
    })
}

/// A relay following `cluster` through its first node, with `flags`.
fn cluster_relay(cluster: &Cluster, flags: &[&str]) -> (Proc, String) {
    let seed = format!("127.0.0.1:{}", cluster.ports()[0]);
    let mut args = vec!["--cluster", &seed, "--allow", "perf:*"];
    args.extend(flags);
    start_relay_args(&args)
}

/// What a browser's relay messages held, counted.
#[derive(Default, Debug)]
struct Seen {
    hellos: usize,
    snapshots: usize,
}

/// Whether `message` (or the one in its envelope) is a snapshot or a hello.
fn count(seen: &mut Seen, message: &[u8]) {
    let decoded = wire::decode(message).unwrap();
    let inner = match &decoded {
        Message::Shard { message, .. } => message.as_ref(),
        other => other,
    };
    match inner {
        Message::Snapshot { .. } => seen.snapshots += 1,
        Message::Hello { .. } => seen.hellos += 1,
        _ => {}
    }
}

/// A page's side of a session: its socket, its assembler, and what it received.
struct Browser {
    socket: Socket,
    assembler: StreamAssembler,
    seen: Seen,
}

impl Browser {
    /// Joins the relay at `ws` with a fresh assembler watching `perf:*`.
    async fn join(ws: &str) -> Browser {
        Browser {
            socket: connect(ws, &subscribe_message(&["perf:*"], WINDOW)).await,
            assembler: assembler(),
            seen: Seen::default(),
        }
    }

    /// Comes back to the relay at `ws` with the windows it has, resuming every shard (`at=`).
    async fn resume(self, ws: &str) -> Browser {
        let url = format!("{ws}?at={}", at(&self.assembler));
        Browser {
            socket: connect(&url, &subscribe_message(&["perf:*"], WINDOW)).await,
            assembler: self.assembler,
            seen: Seen::default(),
        }
    }

    /// Applies one message from the relay, counting snapshots and hellos; returns what it did.
    fn apply(&mut self, message: &[u8]) -> replicast_assembler::Outcome {
        count(&mut self.seen, message);
        self.assembler.push_message(message).unwrap()
    }

    /// Feeds the relay's messages to the assembler, sending its top-ups as a page does, until every window of
    /// `keys` equals Redis; panics after [`CONVERGE`] with the difference.
    async fn converge(&mut self, cluster: &Cluster, keys: &[String]) {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        let mut messages = 0;
        loop {
            let idle = match tokio::time::timeout(
                Duration::from_millis(100),
                next_binary(&mut self.socket),
            )
            .await
            {
                Ok(message) => {
                    self.apply(&message);
                    messages += 1;
                    false
                }
                Err(_) => true,
            };
            let topups = self.assembler.take_topups();
            for request in Topup::requests(topups.iter().map(Vec::as_slice)) {
                self.socket
                    .send(tokio_tungstenite::tungstenite::Message::text(request))
                    .await
                    .unwrap();
            }
            if idle || messages % 200 == 0 {
                let mut differ = None;
                for key in keys {
                    let redis = cluster.zrange_withscores_newest(key, WINDOW).await;
                    let window = zset_newest_first(&self.assembler, key);
                    if redis != window {
                        differ = Some((key.clone(), redis, window));
                        break;
                    }
                }
                let Some((key, redis, window)) = differ else {
                    return;
                };
                if tokio::time::Instant::now() > deadline {
                    panic!(
                        "{key}: the window never equalled Redis.\nRedis:  {redis:?}\nwindow: {window:?}\n{:?}, diagnostics {:?}",
                        self.seen,
                        self.assembler.diagnostics()
                    );
                }
            }
        }
    }
}

/// Keys spread over every shard: `perf:h0` … `perf:h{n-1}`.
async fn keys_on_every_shard(cluster: &Cluster, n: usize) -> Vec<String> {
    let keys: Vec<String> = (0..n).map(|i| format!("perf:h{i}")).collect();
    let mut owners = std::collections::BTreeSet::new();
    for key in &keys {
        owners.insert(cluster.owner(cluster.slot(key.as_bytes())).await);
    }
    assert_eq!(owners.len(), 3, "the keys cover every primary");
    keys
}

async fn write(cluster: &Cluster, keys: &[String], from: usize, to: usize) {
    for i in from..to {
        for key in keys {
            cluster.zadd(key, i as f64, &format!("m{i}")).await;
        }
    }
}

/// The `at=` a page resumes with: every shard's epoch and offset.
fn at(assembler: &StreamAssembler) -> String {
    assembler
        .positions()
        .iter()
        .map(|(_, epoch, offset)| format!("{epoch}:{offset}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A local cluster (3 primaries, 3 replicas) with `n` keys over every shard holding `samples` members each, a relay
/// following it with `flags`, and a browser joined to it whose windows equal Redis.
struct Streaming {
    cluster: Cluster,
    keys: Vec<String>,
    ws: String,
    browser: Browser,
    _relay: Proc,
}

async fn streaming(n: usize, samples: usize, flags: &[&str]) -> Streaming {
    let cluster = Cluster::start(3, 1).await;
    let keys = keys_on_every_shard(&cluster, n).await;
    write(&cluster, &keys, 0, samples).await;
    let (relay, ws) = cluster_relay(&cluster, flags);
    wait_healthy(&ws).await;
    let mut browser = Browser::join(&ws).await;
    browser.converge(&cluster, &keys).await;
    Streaming {
        cluster,
        keys,
        ws,
        browser,
        _relay: relay,
    }
}

async fn master_replid(port: u16) -> String {
    info_field(&mut redis_conn(port).await, "replication", "master_replid").await
}

#[tokio::test]
async fn a_browser_streams_from_every_shard_and_its_windows_equal_redis() {
    let Streaming {
        cluster,
        keys,
        mut browser,
        _relay,
        ..
    } = streaming(12, 30, &[]).await;
    assert_eq!(
        (browser.seen.hellos, browser.seen.snapshots),
        (3, 3),
        "a hello and a snapshot per shard"
    );

    // Live writes, on every shard, go on reaching the windows.
    write(&cluster, &keys, 30, 60).await;
    browser.converge(&cluster, &keys).await;

    // Each shard's stream is its primary's: its replication ID.
    let mut epochs: Vec<String> = browser
        .assembler
        .positions()
        .into_iter()
        .map(|(_, e, _)| e)
        .collect();
    let mut primaries = Vec::new();
    for port in cluster.primaries().await {
        primaries.push(master_replid(port).await);
    }
    epochs.sort();
    primaries.sort();
    assert_eq!(epochs, primaries);
}

#[tokio::test]
async fn after_a_cluster_failover_the_relay_follows_the_new_primary_and_browsers_resume() {
    let Streaming {
        cluster,
        keys,
        ws,
        mut browser,
        _relay,
    } = streaming(9, 20, &[]).await;

    let old = cluster.owner(cluster.slot(b"perf:h0")).await;
    let promoted = cluster.replicas_of(old).await[0];
    cluster.failover(promoted).await;
    write(&cluster, &keys, 20, 40).await;
    browser.converge(&cluster, &keys).await;
    assert_eq!(
        browser.seen.snapshots, 3,
        "no shard re-snapshotted: {:?}",
        browser.seen
    );

    // The relay follows the promoted node, which continued the offsets under a new replication ID; the browser
    // was told (a hello that continues the old epoch) and holds the new one.
    let epoch = master_replid(promoted).await;
    assert!(
        browser
            .assembler
            .positions()
            .iter()
            .any(|(_, e, _)| *e == epoch),
        "{:?} lacks {epoch}",
        browser.assembler.positions()
    );
    // The link moves to the promoted node at the relay's next read of the topology (every second). The stream may
    // reach the browser sooner, through the old primary: a replica of the promoted node now, it continues the
    // stream under the new replication ID, and the relay's link to it follows.
    let node = format!("node=\"127.0.0.1:{promoted}\"");
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let metrics = http_get(&ws, "/metrics").await.1;
        if metrics.contains(&node) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never followed {promoted}: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A browser that comes back resumes every shard where it was: no snapshot.
    write(&cluster, &keys, 40, 45).await;
    let mut browser = browser.resume(&ws).await;
    browser.converge(&cluster, &keys).await;
    assert_eq!(
        (browser.seen.hellos, browser.seen.snapshots),
        (3, 0),
        "resumed: {:?}",
        browser.seen
    );

    // The failed-over shard's state was kept through the partial resync (renamed with the stream): a new
    // browser's join is answered by every shard's state, with no read of Redis.
    states_ready(&ws).await;
    join_from_the_states(&ws, &cluster, &keys, "kept through the failover").await;
}

#[tokio::test]
async fn a_slot_migrating_under_load_ends_with_every_window_equal_to_redis() {
    let cluster = Cluster::start(3, 1).await;
    // Four keys in one slot (a hash tag), and keys elsewhere.
    let moving: Vec<String> = (0..4).map(|i| format!("perf:{{mig}}{i}")).collect();
    let mut keys = keys_on_every_shard(&cluster, 6).await;
    keys.extend(moving.iter().cloned());
    write(&cluster, &keys, 0, 25).await;
    let (_relay, ws) = cluster_relay(&cluster, &[]);
    wait_healthy(&ws).await;
    let mut browser = Browser::join(&ws).await;
    browser.converge(&cluster, &keys).await;

    let slot = cluster.slot(b"{mig}");
    let from = cluster.owner(slot).await;
    let to = cluster
        .primaries()
        .await
        .into_iter()
        .find(|&p| p != from)
        .unwrap();
    // Writes go on, to the moving keys and the others, while the slot moves, and the browser keeps reading: a round
    // of writes before the move, one while the slot is marked migrating, one once its keys moved but before the
    // slot is handed over (the moving keys' writes follow `ASK`), and two after. Counted, not timed: a loaded
    // machine may make a round of writes take longer than the whole move.
    let stop = AtomicBool::new(false);
    let zadds = AtomicUsize::new(0);
    let writes = async {
        let mut i = 25;
        while !stop.load(Ordering::Relaxed) {
            for key in &keys {
                cluster.zadd(key, i as f64, &format!("m{i}")).await;
                zadds.fetch_add(1, Ordering::Relaxed);
            }
            i += 1;
        }
        i
    };
    let zadds_reach = |n: usize| {
        let zadds = &zadds;
        async move {
            let deadline = tokio::time::Instant::now() + CONVERGE;
            while zadds.load(Ordering::Relaxed) < n {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the writes stalled at {} of {n}",
                    zadds.load(Ordering::Relaxed)
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let migrate = async {
        zadds_reach(keys.len()).await;
        cluster
            .migrate_slot_meanwhile(slot, from, to, || {
                zadds_reach(zadds.load(Ordering::Relaxed) + keys.len())
            })
            .await;
        zadds_reach(zadds.load(Ordering::Relaxed) + 2 * keys.len()).await;
        stop.store(true, Ordering::Relaxed);
    };
    let read = async {
        while !stop.load(Ordering::Relaxed) {
            if let Ok(message) =
                tokio::time::timeout(Duration::from_millis(50), next_binary(&mut browser.socket))
                    .await
            {
                browser.apply(&message);
            }
        }
    };
    let (written, (), ()) = tokio::join!(writes, migrate, read);
    assert_eq!(cluster.owner(slot).await, to);
    browser.converge(&cluster, &keys).await;
    // And the keys keep following their new shard.
    write(&cluster, &keys, written, written + 10).await;
    browser.converge(&cluster, &keys).await;
}

#[tokio::test]
async fn a_browser_switches_from_a_relay_on_the_primaries_to_one_on_the_replicas_without_a_snapshot(
) {
    let cluster = Cluster::start(3, 1).await;
    let keys = keys_on_every_shard(&cluster, 9).await;
    write(&cluster, &keys, 0, 20).await;
    let (relay_a, ws_a) = cluster_relay(&cluster, &["--cluster-follow", "primary"]);
    let (_relay_b, ws_b) = cluster_relay(&cluster, &["--cluster-follow", "replica"]);
    wait_healthy(&ws_a).await;
    wait_healthy(&ws_b).await;
    // Relay B follows a replica of each shard (once the replicas report healthy; until then, the primary).
    let primaries = cluster.primaries().await;
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = http_get(&ws_b, "/metrics").await.1;
        let on_replicas = metrics.matches("replicast_shard_link_up{").count() == 3
            && !primaries
                .iter()
                .any(|p| metrics.contains(&format!("node=\"127.0.0.1:{p}\"")));
        if on_replicas {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for primary in &primaries {
        assert!(
            !metrics.contains(&format!("node=\"127.0.0.1:{primary}\"")),
            "relay B follows replicas only, not {primaries:?}: {metrics}"
        );
    }
    wait_healthy(&ws_b).await;

    let mut browser = Browser::join(&ws_a).await;
    browser.converge(&cluster, &keys).await;
    write(&cluster, &keys, 20, 30).await;
    browser.converge(&cluster, &keys).await;

    // Relay A goes away; the browser resumes on B from the same epochs and offsets.
    drop(relay_a);
    write(&cluster, &keys, 30, 40).await;
    let mut browser = browser.resume(&ws_b).await;
    browser.converge(&cluster, &keys).await;
    write(&cluster, &keys, 40, 50).await;
    browser.converge(&cluster, &keys).await;
    assert_eq!(
        (browser.seen.hellos, browser.seen.snapshots),
        (3, 0),
        "resumed on B: {:?}",
        browser.seen
    );
}

#[tokio::test]
async fn an_acl_user_without_eval_still_gets_exact_snapshots_one_slot_at_a_time() {
    let cluster = Cluster::start(3, 1).await;
    // The least user a cluster relay needs, on every node, but without EVAL: snapshots then read each slot's keys
    // in a MULTI of their own.
    for port in cluster.ports() {
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg("relay")
            .arg("on")
            .arg(">s3cret")
            .arg("resetkeys")
            .arg("%R~perf:*")
            .arg("resetchannels")
            .arg("-@all")
            .arg(
                "+psync +replconf +ping +command +info +select +scan +type +multi +exec \
                 +zrange +lrange +xrevrange +hgetall +get +cluster|shards +cluster|slots +readonly"
                    .split(' ')
                    .collect::<Vec<_>>(),
            )
            .query_async::<()>(&mut redis_conn(port).await)
            .await
            .unwrap();
    }
    let keys = keys_on_every_shard(&cluster, 12).await;
    write(&cluster, &keys, 0, 25).await;
    let seed = format!("127.0.0.1:{}", cluster.ports()[0]);
    let (_relay, ws) = start_relay_args(&[
        "--cluster",
        &seed,
        "--redis-url",
        "redis://relay:s3cret@cluster",
        "--allow",
        "perf:*",
        // The shards' states would answer the join: these snapshots are read from Redis.
        "--stateless",
    ]);
    wait_healthy(&ws).await;
    let mut browser = Browser::join(&ws).await;
    browser.converge(&cluster, &keys).await;
    assert!(
        browser.seen.snapshots > 3,
        "the keys' slots came in parts of their own: {:?}",
        browser.seen
    );
    write(&cluster, &keys, 25, 40).await;
    browser.converge(&cluster, &keys).await;
}

#[tokio::test]
async fn a_primary_added_then_removed_is_followed_then_let_go() {
    let mut cluster = Cluster::start(3, 1).await;
    let moving: Vec<String> = (0..3).map(|i| format!("perf:{{new}}{i}")).collect();
    let mut keys = keys_on_every_shard(&cluster, 6).await;
    keys.extend(moving.iter().cloned());
    write(&cluster, &keys, 0, 20).await;
    let (_relay, ws) = cluster_relay(&cluster, &[]);
    wait_healthy(&ws).await;
    let mut browser = Browser::join(&ws).await;
    browser.converge(&cluster, &keys).await;

    // A new primary gets the slot of the {new} keys: the relay follows it, and the browser gets its keys from it.
    let added = cluster.add_primary().await;
    let slot = cluster.slot(b"{new}");
    let from = cluster.owner(slot).await;
    cluster.migrate_slot(slot, from, added).await;
    write(&cluster, &keys, 20, 30).await;
    browser.converge(&cluster, &keys).await;
    let metrics = http_get(&ws, "/metrics").await.1;
    assert!(
        metrics.contains(&format!("node=\"127.0.0.1:{added}\"")),
        "{metrics}"
    );
    assert_eq!(browser.assembler.positions().len(), 4, "a fourth shard");
    // Each shard keeps a state, applied on a thread of its own.
    assert_eq!(state_threads(_relay.0.id()), 4, "a state thread per shard");

    // The slot goes back and the node leaves the cluster: the relay stops following it; the keys follow their
    // owner again.
    cluster.migrate_slot(slot, added, from).await;
    cluster.remove_node(added).await;
    write(&cluster, &keys, 30, 40).await;
    browser.converge(&cluster, &keys).await;
    // The relay reads the topology every second; a loaded machine may take some of them to see the node gone.
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while http_get(&ws, "/metrics")
        .await
        .1
        .contains(&format!("node=\"127.0.0.1:{added}\""))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay still follows the removed node"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The shard let go, its state and its thread go with it.
    while state_threads(_relay.0.id()) != 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the removed shard's state thread is still running: {}",
            state_threads(_relay.0.id())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    write(&cluster, &keys, 40, 50).await;
    browser.converge(&cluster, &keys).await;
}

/// A shard lost with its slots: its primary, without replicas, killed and forgotten by every other node, its slots
/// given afresh to another primary (which holds none of their keys). A session that asked for it (`ended=1`, as the
/// history sink does) gets, after the last message of that shard's stream, an ended message in the shard's
/// envelope (its reason names no node: the relay logs it), and nothing of that stream after it; a browser's session (without `ended=1`), whose
/// assembler would refuse the message, gets none, and its windows of the other shards' keys go on equal to Redis.
#[tokio::test]
async fn a_shard_lost_with_its_slots_ends_its_stream_with_an_ended_message_to_clients_that_ask() {
    let mut cluster = Cluster::start(3, 0).await;
    let keys = keys_on_every_shard(&cluster, 6).await;
    write(&cluster, &keys, 0, 10).await;
    let (_relay, ws) = cluster_relay(&cluster, &[]);
    wait_healthy(&ws).await;
    let mut browser = Browser::join(&ws).await;
    // The client that reads ended messages, read all along (a session that reads nothing for 30 s is closed).
    let mut reader = connect(
        &format!("{ws}?ended=1"),
        &subscribe_message(&["perf:*"], WINDOW),
    )
    .await;
    let (read, mut messages) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            if read.send(next_binary(&mut reader).await).is_err() {
                return;
            }
        }
    });
    browser.converge(&cluster, &keys).await;

    // Not the node the relay was started on (its seed), nor the heir.
    let seed = cluster.ports()[0];
    let primaries = cluster.primaries().await;
    let lost = *primaries.iter().find(|&&p| p != seed).unwrap();
    let epoch = info_field(&mut redis_conn(lost).await, "replication", "master_replid").await;
    let mut kept = Vec::new();
    for key in &keys {
        if cluster.owner(cluster.slot(key.as_bytes())).await != lost {
            kept.push(key.clone());
        }
    }
    cluster.lose_primary(lost, seed).await;
    write(&cluster, &kept, 10, 20).await;
    browser.converge(&cluster, &kept).await;

    let mut epochs = std::collections::HashMap::new();
    let deadline = tokio::time::Instant::now() + CONVERGE;
    let (index, reason) = loop {
        let message = tokio::time::timeout_at(deadline, messages.recv())
            .await
            .expect("the lost shard's stream ends with an ended message")
            .unwrap();
        if wire::is_ended(&message) {
            let (index, reason) = wire::decode_ended(&message).unwrap();
            break (index, reason.to_string());
        }
        if let Ok(Message::Shard { index, message }) = wire::decode(&message) {
            if let Message::Hello { epoch, .. } = *message {
                epochs.insert(index, epoch.to_string());
            }
        }
    };
    assert_eq!(epochs.get(&index), Some(&epoch), "{epochs:?}");
    // The node's address is the relay's log's, not any client's to read.
    assert_eq!(reason, "the shard left the cluster");
    assert!(!reason.contains(&lost.to_string()), "{reason}");
    // The other shards go on; the ended stream sends nothing more.
    write(&cluster, &kept, 20, 25).await;
    browser.converge(&cluster, &kept).await;
    let mut after = 0;
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_secs(2), messages.recv()).await
    {
        assert!(!wire::is_ended(&message), "a second ended message");
        if let Ok(Message::Shard { index: i, .. }) = wire::decode(&message) {
            assert_ne!(i, index, "a message of the ended stream after its end");
        }
        after += 1;
    }
    assert!(after > 0, "the other shards' streams go on");
}

#[tokio::test]
async fn browser_events_are_appended_on_the_shard_that_owns_the_key() {
    let cluster = Cluster::start(3, 1).await;
    let keys: Vec<String> = (0..9).map(|i| format!("perf:notes:{i}")).collect();
    let mut owners = std::collections::BTreeSet::new();
    for key in &keys {
        owners.insert(cluster.owner(cluster.slot(key.as_bytes())).await);
    }
    assert_eq!(owners.len(), 3, "the keys cover every primary");
    let (_relay, ws) = cluster_relay(
        &cluster,
        &["--writable", "perf:notes:*", "--event-burst", "20"],
    );
    wait_healthy(&ws).await;
    let mut browser = Browser::join(&ws).await;
    for (i, key) in keys.iter().enumerate() {
        let fields = [("text".to_string(), format!("note {i}"))];
        browser
            .socket
            .send(tokio_tungstenite::tungstenite::Message::text(
                ClientMessage::Event(Event {
                    id: i.to_string(),
                    key: key.to_string(),
                    fields: fields.to_vec(),
                })
                .to_json(),
            ))
            .await
            .unwrap();
    }
    // Every event acked with the entry id its owner chose, and every entry streamed back into its window.
    let mut acked = std::collections::BTreeMap::new();
    while acked.len() < keys.len()
        || keys.iter().any(|k| {
            browser
                .assembler
                .window(k.as_bytes())
                .is_none_or(|w| w.len() != 1)
        })
    {
        let message = next_binary(&mut browser.socket).await;
        if let replicast_assembler::Outcome::Ack { request, entry } = browser.apply(&message) {
            let entry = entry.unwrap_or_else(|reason| panic!("event {request} refused: {reason}"));
            acked.insert(request.parse::<usize>().unwrap(), entry);
        }
    }
    for (i, key) in keys.iter().enumerate() {
        let mut conn = cluster.conn_for(key.as_bytes()).await;
        let len: usize = redis::cmd("XLEN")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let ids: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!((len, ids[0].0.as_str()), (1, acked[&i].as_str()), "{key}");
    }
}

#[tokio::test]
async fn a_primary_killed_is_replaced_by_its_replica_and_the_relay_follows_it() {
    let Streaming {
        mut cluster,
        keys,
        ws,
        mut browser,
        _relay,
    } = streaming(9, 20, &[]).await;

    // SIGKILL a primary: after the node timeout (2 s) its replica is elected, and the relay's next topology read
    // moves the shard's link there, which continues the stream (PSYNC with the old replication ID).
    let dead = cluster.owner(cluster.slot(b"perf:h0")).await;
    let heir = cluster.replicas_of(dead).await[0];
    // Replication is asynchronous: writes the heir never got are lost in a failover, and a relay that got them is
    // ahead of the new primary, which then gives it a full resync (a new epoch, a snapshot). Here the heir has
    // everything first, so the stream continues.
    replica_at(heir, master_repl_offset(&mut redis_conn(dead).await).await).await;
    cluster.kill(dead);
    // Promoted, and every node that runs says the cluster is whole again.
    let mut promoted = false;
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while tokio::time::Instant::now() < deadline {
        let mut ok = cluster.primaries().await.contains(&heir);
        for port in cluster.ports() {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut redis_conn(port).await)
                .await
                .unwrap_or_default();
            ok &= info.lines().any(|l| l.trim() == "cluster_state:ok");
        }
        if ok {
            promoted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(promoted, "the cluster never promoted {heir}");
    write(&cluster, &keys, 20, 40).await;
    browser.converge(&cluster, &keys).await;
    assert_eq!(
        browser.seen.snapshots, 3,
        "no shard re-snapshotted: {:?}",
        browser.seen
    );
    let metrics = http_get(&ws, "/metrics").await.1;
    assert!(
        metrics.contains(&format!("node=\"127.0.0.1:{heir}\"")),
        "{metrics}"
    );
}

/// Every `perf:*` key of the cluster and its number of members, read on each primary.
async fn perf_keys(cluster: &Cluster) -> std::collections::BTreeMap<String, usize> {
    let mut keys = std::collections::BTreeMap::new();
    for primary in cluster.primaries().await {
        let mut conn = redis_conn(primary).await;
        let found: Vec<String> = redis::cmd("KEYS")
            .arg("perf:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        for key in found {
            let n: usize = redis::cmd("ZCARD")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            keys.insert(key, n);
        }
    }
    keys
}

#[tokio::test]
async fn the_collector_writes_each_host_to_its_shard_and_carries_on_through_a_failover() {
    let cluster = Cluster::start(3, 1).await;
    let seed = format!("127.0.0.1:{}", cluster.ports()[0]);
    let once = std::process::Command::new(env!("CARGO_BIN_EXE_replicast"))
        .args([
            "collect",
            "--cluster",
            &seed,
            "--simulate",
            "12",
            "--no-local",
            "--once",
        ])
        .output()
        .unwrap();
    assert!(
        once.status.success(),
        "{}",
        String::from_utf8_lossy(&once.stderr)
    );
    let keys = perf_keys(&cluster).await;
    assert_eq!(keys.len(), 12, "{keys:?}");
    assert!(keys.values().all(|&n| n == 1), "{keys:?}");
    let mut owners = std::collections::BTreeSet::new();
    for key in keys.keys() {
        owners.insert(cluster.owner(cluster.slot(key.as_bytes())).await);
    }
    assert_eq!(owners.len(), 3, "the hosts' keys are on every shard");

    // Running: a failover moves a shard's primary; the collector follows the redirection and goes on.
    let _collector = Proc::new(
        std::process::Command::new(env!("CARGO_BIN_EXE_replicast"))
            .args([
                "collect",
                "--cluster",
                &seed,
                "--simulate",
                "12",
                "--no-local",
                "--interval",
                "200ms",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let grown = |before: &std::collections::BTreeMap<String, usize>,
                 now: &std::collections::BTreeMap<String, usize>,
                 by: usize| {
        before
            .iter()
            .all(|(k, n)| now.get(k).is_some_and(|m| *m >= n + by))
    };
    let mut now = perf_keys(&cluster).await;
    for _ in 0..100 {
        if grown(&keys, &now, 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = perf_keys(&cluster).await;
    }
    assert!(grown(&keys, &now, 3), "{keys:?} → {now:?}");
    let primary = cluster.primaries().await[0];
    cluster
        .failover(cluster.replicas_of(primary).await[0])
        .await;
    let before = perf_keys(&cluster).await;
    let mut after = before.clone();
    for _ in 0..100 {
        if grown(&before, &after, 5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = perf_keys(&cluster).await;
    }
    assert!(
        grown(&before, &after, 5),
        "every host kept being written: {before:?} → {after:?}"
    );
}

/// Each shard's value of the labelled row `name` on the relay's `/metrics`, by the relay's shard number.
async fn shard_rows(ws: &str, name: &str) -> std::collections::BTreeMap<u32, u64> {
    let (_, body) = http_get(ws, "/metrics").await;
    let prefix = format!("{name}{{shard=\"");
    body.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (shard, _) = rest.split_once('"')?;
            let (_, value) = line.rsplit_once(' ')?;
            Some((shard.parse().ok()?, value.parse().ok()?))
        })
        .collect()
}

/// Waits until every one of the three shards' states is ready (its row of `/metrics`).
async fn states_ready(ws: &str) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let ready = shard_rows(ws, "replicast_state_ready").await;
        if ready.len() == 3 && ready.values().all(|&r| r == 1) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the shards' states never all got ready: {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A browser that joins once every shard's state is ready and converges on `keys`: each shard answers its join
/// from its state (one more on `replicast_shard_state_snapshots_total` for each of the three), with no read of
/// Redis; `why` says what the test expects of the states.
async fn join_from_the_states(ws: &str, cluster: &Cluster, keys: &[String], why: &str) -> Browser {
    let before = shard_rows(ws, "replicast_shard_state_snapshots_total").await;
    let read_before = shard_rows(ws, "replicast_shard_snapshots_total").await;
    let mut browser = Browser::join(ws).await;
    browser.converge(cluster, keys).await;
    let after = shard_rows(ws, "replicast_shard_state_snapshots_total").await;
    assert_eq!(after.len(), 3, "a row per shard ({why}): {after:?}");
    for (shard, answered) in &after {
        assert_eq!(
            answered - before.get(shard).copied().unwrap_or(0),
            1,
            "shard {shard}'s join from its state ({why}): {before:?} → {after:?}"
        );
    }
    assert_eq!(
        read_before,
        shard_rows(ws, "replicast_shard_snapshots_total").await,
        "no read of Redis ({why})"
    );
    browser
}

/// With the state on (the default), each shard keeps one: a browser joining once they are ready has each shard's
/// snapshot from that shard's state, with no read of Redis, and its windows equal Redis.
#[tokio::test]
async fn joins_are_answered_from_each_shards_state() {
    let Streaming {
        cluster,
        keys,
        ws,
        _relay,
        ..
    } = streaming(12, 30, &[]).await;
    states_ready(&ws).await;
    let browser = join_from_the_states(&ws, &cluster, &keys, "ready").await;
    assert_eq!(browser.seen.snapshots, 3, "a snapshot per shard");
    // Each shard's state rows are labelled with it, every key held by one of them; the whole text passes promtool.
    let held = shard_rows(&ws, "replicast_state_keys").await;
    assert_eq!(held.values().sum::<u64>(), keys.len() as u64, "{held:?}");
    let (_, metrics) = http_get(&ws, "/metrics").await;
    promtool_check(&metrics);
}

/// A session on `perf:*` (a window of [`WINDOW`]) that joined every shard: each shard's hello, its epoch and
/// offset (where `since` starts), by the shard's index, read until the three shards' snapshots came.
async fn session(ws: &str) -> (Socket, std::collections::BTreeMap<u16, (String, u64)>) {
    let mut socket = connect(ws, &subscribe_message(&["perf:*"], WINDOW)).await;
    let mut hellos: std::collections::BTreeMap<u16, (String, u64)> = Default::default();
    let mut snapshots = 0;
    while snapshots < 3 {
        let message = next_binary(&mut socket).await;
        let Ok(Message::Shard { index, message }) = wire::decode(&message) else {
            continue;
        };
        match *message {
            Message::Hello { epoch, offset, .. } => {
                hellos.insert(index, (epoch.to_string(), offset));
            }
            Message::Snapshot { .. } => snapshots += 1,
            _ => {}
        }
    }
    (socket, hellos)
}

/// Increments member `hits` of each of `keys` by 1.5 twice, on the node that owns it: its scores 1.5 then 3, the
/// first overwritten by the second.
async fn incremented_twice(cluster: &Cluster, keys: impl IntoIterator<Item = &String>) {
    for key in keys {
        let mut conn = cluster.conn_for(key.as_bytes()).await;
        for _ in 0..2 {
            let _: f64 = redis::cmd("ZINCRBY")
                .arg(key)
                .arg(1.5)
                .arg("hits")
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// A top-up asked with `since` in a cluster is answered by each shard from its state, in its envelope and right
/// before its snapshot: the past message lists the two scores two `ZINCRBY`s gave a member of a key on each of two
/// shards (the first overwritten before the answer), covered from before `since`.
#[tokio::test]
async fn a_topup_with_since_gets_each_shards_past_writes_from_its_state() {
    let Streaming {
        cluster,
        keys,
        ws,
        _relay,
        ..
    } = streaming(6, 5, &[]).await;
    states_ready(&ws).await;
    let (mut socket, hellos) = session(&ws).await;
    // A key on each of two shards, by the shard's index in this session (its epoch is its primary's ID).
    let mut chosen: Vec<(u16, String)> = Vec::new();
    for key in &keys {
        let owner = cluster.owner(cluster.slot(key.as_bytes())).await;
        let epoch = master_replid(owner).await;
        let (index, _) = hellos.iter().find(|(_, (e, _))| *e == epoch).unwrap();
        if chosen.len() < 2 && chosen.iter().all(|(i, _)| i != index) {
            chosen.push((*index, key.clone()));
        }
    }
    assert_eq!(chosen.len(), 2);
    incremented_twice(&cluster, chosen.iter().map(|(_, key)| key)).await;
    for (index, key) in &chosen {
        let since = hellos[index].1;
        ask_topup_since(&mut socket, [key.as_bytes()], since).await;
        let deadline = tokio::time::Instant::now() + CONVERGE;
        let past = loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no past message from shard {index} within {CONVERGE:?}"
            );
            let message = next_binary(&mut socket).await;
            if wire::is_past(&message) {
                break message;
            }
        };
        assert!(past.starts_with(&[7]), "in its shard's envelope");
        let (shard, decoded) = wire::decode_past(&past).unwrap();
        assert_eq!(shard, *index, "from the shard that owns {key}");
        assert_eq!(decoded.keys.len(), 1);
        let listed = &decoded.keys[0];
        assert_eq!(listed.key, key.as_bytes());
        assert!(
            listed.covered_from <= since,
            "{key} covered from {}, after since {since}",
            listed.covered_from
        );
        let items: Vec<(f64, &[u8])> = listed
            .items
            .iter()
            .map(|item| match item.value {
                wire::PastValue::Member { score, member } => (score, member),
                ref other => panic!("not a member: {other:?}"),
            })
            .collect();
        assert_eq!(items, [(1.5, &b"hits"[..]), (3.0, &b"hits"[..])], "{key}");
        assert!(listed.items.iter().all(|item| item.offset > since));
        // Its shard's next message: the snapshot, at the past message's offset.
        loop {
            let message = next_binary(&mut socket).await;
            let Ok(Message::Shard { index: i, message }) = wire::decode(&message) else {
                continue;
            };
            if i == *index {
                let Message::Snapshot { offset, .. } = *message else {
                    panic!(
                        "shard {index}'s past message is not followed by its snapshot: {message:?}"
                    )
                };
                assert_eq!(offset, decoded.offset, "at the snapshot's offset");
                break;
            }
        }
    }
}

/// The threads of process `pid` that apply a relay state (`relay-state`, one per shard's state).
fn state_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter(|task| {
            let comm = task.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|name| name.trim() == "relay-state")
        })
        .count()
}

/// The relay's number for the shard whose link follows the node on `port`.
async fn shard_of(ws: &str, port: u16) -> u32 {
    let (_, body) = http_get(ws, "/metrics").await;
    let node = format!("node=\"127.0.0.1:{port}\"");
    body.lines()
        .filter(|line| line.starts_with("replicast_shard_link_up{") && line.contains(&node))
        .find_map(|line| line.split('"').nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("no shard follows {port}:\n{body}"))
}

/// After a slot moves, its new owner's state answers none of its keys: a top-up with `since` of a key that came
/// with the slot (`RESTORE-ASKING`) and of one created after the move, each incremented twice by `ZINCRBY`, is read
/// from the node, its past message saying them not covered, while a key the shard always owned is answered from its
/// state with its scores; the browser's windows equal Redis throughout.
#[tokio::test]
async fn after_a_slot_moves_the_new_owners_state_does_not_answer_for_its_keys() {
    let cluster = Cluster::start(3, 1).await;
    let moving: Vec<String> = (0..3).map(|i| format!("perf:{{mig}}{i}")).collect();
    let mut keys = keys_on_every_shard(&cluster, 6).await;
    keys.extend(moving.iter().cloned());
    write(&cluster, &keys, 0, 10).await;
    let (_relay, ws) = cluster_relay(&cluster, &[]);
    wait_healthy(&ws).await;
    states_ready(&ws).await;
    let mut browser = Browser::join(&ws).await;
    browser.converge(&cluster, &keys).await;
    let (mut socket, hellos) = session(&ws).await;

    let slot = cluster.slot(b"{mig}");
    let from = cluster.owner(slot).await;
    let to = cluster
        .primaries()
        .await
        .into_iter()
        .find(|&p| p != from)
        .unwrap();
    cluster.migrate_slot(slot, from, to).await;
    let epoch = master_replid(to).await;
    let (&index, (_, since)) = hellos.iter().find(|(_, (e, _))| *e == epoch).unwrap();
    let since = *since;
    // A key `to` always owned, one that came with the slot, one created in it after the move.
    let mut stayed = None;
    for key in &keys {
        if !moving.contains(key) && cluster.owner(cluster.slot(key.as_bytes())).await == to {
            stayed = Some(key.clone());
        }
    }
    let stayed = stayed.expect("a key on the target shard");
    let created = "perf:{mig}new".to_string();
    let asked = [stayed.clone(), moving[0].clone(), created.clone()];
    incremented_twice(&cluster, &asked).await;
    let shard = shard_of(&ws, to).await;
    // Asked again until the relay's view has the slot on `to` (it reads the topology every second): before that
    // the moved keys' top-up goes to the old owner; and the sessions' own top-ups of the slot, when the view moves
    // it, are done before the round counted.
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while !ask_since(&mut socket, &asked, since)
        .await
        .iter()
        .all(|answer| answer.shard == index)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the moved keys' top-up never came from shard {index}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let state_before = shard_rows(&ws, "replicast_shard_state_snapshots_total").await[&shard];
    let redis_before = shard_rows(&ws, "replicast_shard_snapshots_total").await[&shard];
    for answer in ask_since(&mut socket, &asked, since).await {
        let key = String::from_utf8_lossy(&answer.key);
        assert_eq!(answer.shard, index, "{key} from its owner");
        if key == stayed {
            assert!(
                answer.covered_from <= since,
                "{key} covered from before since"
            );
            assert_eq!(
                answer.scores,
                [1.5, 3.0],
                "{key}: both scores, from the state"
            );
        } else {
            assert_eq!(
                answer.covered_from, answer.offset,
                "{key}, in the moved slot, is not covered"
            );
            assert!(answer.scores.is_empty(), "{key}: {:?}", answer.scores);
        }
    }
    let answered_by_state =
        shard_rows(&ws, "replicast_shard_state_snapshots_total").await[&shard] - state_before;
    let read_from_redis =
        shard_rows(&ws, "replicast_shard_snapshots_total").await[&shard] - redis_before;
    // The key that stayed from the state; the two in the moved slot each read from the node.
    assert_eq!((answered_by_state, read_from_redis), (1, 2));
    keys.push(created);
    write(&cluster, &keys, 10, 20).await;
    browser.converge(&cluster, &keys).await;
}

/// What a past message said of one key.
struct PastAnswer {
    shard: u16,
    key: Vec<u8>,
    offset: u64,
    covered_from: u64,
    scores: Vec<f64>,
}

/// Asks a top-up of each of `keys` in turn with `since`, and reads each one's past message.
async fn ask_since(socket: &mut Socket, keys: &[String], since: u64) -> Vec<PastAnswer> {
    let mut answers = Vec::new();
    for key in keys {
        ask_topup_since(socket, [key.as_bytes()], since).await;
        let past = loop {
            let message = next_binary(socket).await;
            if wire::is_past(&message) {
                break message;
            }
        };
        let (shard, decoded) = wire::decode_past(&past).unwrap();
        let listed = &decoded.keys[0];
        answers.push(PastAnswer {
            shard,
            key: listed.key.to_vec(),
            offset: decoded.offset,
            covered_from: listed.covered_from,
            scores: listed
                .items
                .iter()
                .filter_map(|item| match item.value {
                    wire::PastValue::Member { score, .. } => Some(score),
                    _ => None,
                })
                .collect(),
        });
    }
    answers
}

/// A relay on the replicas (`--cluster-follow replica`): a key a shard's state loses track of (a `ZUNIONSTORE`
/// destination, which the assembler cannot follow) is read again from that shard's replica, with `READONLY` and only
/// if the shard owns it (`replicast_state_refreshed_keys_total` for that shard); then a join is answered by every
/// shard's state, that key included, with no read of Redis, and its windows equal Redis.
#[tokio::test]
async fn a_key_a_shards_state_lost_track_of_is_read_again_from_its_replica() {
    let cluster = Cluster::start(3, 1).await;
    let mut keys = keys_on_every_shard(&cluster, 6).await;
    let union: Vec<String> = ["a", "b", "dst"]
        .iter()
        .map(|k| format!("perf:{{u}}{k}"))
        .collect();
    keys.extend(union.iter().cloned());
    write(&cluster, &keys, 0, 10).await;
    let (_relay, ws) = cluster_relay(&cluster, &["--cluster-follow", "replica"]);
    wait_healthy(&ws).await;
    let owner = cluster.owner(cluster.slot(b"{u}")).await;
    let replica = cluster.replicas_of(owner).await[0];
    // Every shard's link on a replica, and every state ready.
    let deadline = tokio::time::Instant::now() + CONVERGE;
    let shard = loop {
        let (_, body) = http_get(&ws, "/metrics").await;
        if body.contains(&format!("node=\"127.0.0.1:{replica}\"")) {
            break shard_of(&ws, replica).await;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never followed {replica}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    states_ready(&ws).await;
    let refreshed = shard_rows(&ws, "replicast_state_refreshed_keys_total").await[&shard];
    let mut conn = cluster.conn_for(b"{u}").await;
    let _: i64 = redis::cmd("ZUNIONSTORE")
        .arg(&union[2])
        .arg(2)
        .arg(&union[0])
        .arg(&union[1])
        .query_async(&mut conn)
        .await
        .unwrap();
    // The state reads it again within a second or so.
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while shard_rows(&ws, "replicast_state_refreshed_keys_total").await[&shard] == refreshed {
        assert!(
            tokio::time::Instant::now() < deadline,
            "shard {shard}'s state never read {} again",
            union[2]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let why = format!("the state holds {} again", union[2]);
    join_from_the_states(&ws, &cluster, &keys, &why).await;
}

/// `--verify-every` checks each shard's state against the node it follows, here a replica (`READONLY`, the
/// shard's keys only): every shard counts keys compared, and none differs.
#[tokio::test]
async fn each_shards_state_is_checked_against_its_node() {
    let cluster = Cluster::start(3, 1).await;
    let keys = keys_on_every_shard(&cluster, 12).await;
    write(&cluster, &keys, 0, 20).await;
    let (_relay, ws) = cluster_relay(
        &cluster,
        &["--verify-every", "1s", "--cluster-follow", "replica"],
    );
    wait_healthy(&ws).await;
    // Every link on a replica.
    let primaries = cluster.primaries().await;
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let (_, body) = http_get(&ws, "/metrics").await;
        let on_replicas = body.matches("replicast_shard_link_up{").count() == 3
            && !primaries
                .iter()
                .any(|p| body.contains(&format!("node=\"127.0.0.1:{p}\"")));
        if on_replicas {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never on the replicas: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    states_ready(&ws).await;
    let before = shard_rows(&ws, "replicast_verify_keys_compared_total").await;
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let compared = shard_rows(&ws, "replicast_verify_keys_compared_total").await;
        if compared.len() == 3
            && compared
                .iter()
                .all(|(s, &n)| n > before.get(s).copied().unwrap_or(0))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every shard's state was compared with its node: {compared:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mismatches = shard_rows(&ws, "replicast_verify_mismatches_total").await;
    assert!(mismatches.values().all(|&n| n == 0), "{mismatches:?}");
}
