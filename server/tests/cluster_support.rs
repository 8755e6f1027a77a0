//! The local Redis Cluster the cluster tests run on (support/cluster.rs), proven against real redis-servers: the
//! slot function against `CLUSTER KEYSLOT`, writes and reads routed to a key's primary, a slot migrated with keys
//! in it (and a read routed by `ASK` while it is mid-migration), and a manual failover.

mod support;

use support::cluster::{key_slot, Cluster};
use support::*;

#[tokio::test]
async fn a_local_cluster_routes_migrates_and_fails_over() {
    let started = std::time::Instant::now();
    let cluster = Cluster::start(3, 1).await;
    eprintln!(
        "3 primaries + 3 replicas settled in {:?}",
        started.elapsed()
    );

    let primaries = cluster.primaries().await;
    assert_eq!(primaries.len(), 3);
    for &primary in &primaries {
        assert_eq!(cluster.replicas_of(primary).await.len(), 1);
    }

    // The slot function agrees with Redis, hash tags included.
    let mut conn = redis_conn(primaries[0]).await;
    for key in [
        "foo",
        "perf:host-1",
        "{user1000}.following",
        "foo{}{bar}",
        "foo{{bar}}zap",
        "foo{bar}{zap}",
        "{}",
        "",
        "é{ü}",
    ] {
        let expected: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(key_slot(key.as_bytes()), expected, "slot of {key:?}");
    }
    assert_eq!(cluster.slot(b"{user1000}.a"), cluster.slot(b"user1000"));

    // Writes and reads go to the key's primary; the keys land on every shard.
    let keys: Vec<String> = (0..12).map(|i| format!("perf:host-{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        for t in 0..5 {
            cluster
                .zadd(key, (t * 10 + i) as f64, &format!("m{t}"))
                .await;
        }
    }
    let mut owners = std::collections::BTreeSet::new();
    for (i, key) in keys.iter().enumerate() {
        let owner = cluster.owner(cluster.slot(key.as_bytes())).await;
        owners.insert(owner);
        let mut direct = cluster.conn_for(key.as_bytes()).await;
        let card: u64 = redis::cmd("ZCARD")
            .arg(key)
            .query_async(&mut direct)
            .await
            .unwrap();
        assert_eq!(card, 5, "{key} on its owner {owner}");
        let newest = cluster.zrange_withscores_newest(key, 2).await;
        assert_eq!(
            newest,
            vec![
                ("m4".to_string(), (40 + i) as f64),
                ("m3".to_string(), (30 + i) as f64)
            ]
        );
    }
    assert_eq!(owners.len(), 3, "12 keys over 3 shards");

    // A slot with keys in it moves to another primary, keys and all.
    let key = &keys[0];
    let slot = cluster.slot(key.as_bytes());
    let from = cluster.owner(slot).await;
    let to = *primaries.iter().find(|&&p| p != from).unwrap();
    let tagged: Vec<String> = (0..150).map(|i| format!("{{{key}}}:{i}")).collect();
    for (i, k) in tagged.iter().enumerate() {
        cluster.zadd(k, i as f64, "m").await;
    }
    cluster.migrate_slot(slot, from, to).await;
    assert_eq!(cluster.owner(slot).await, to);
    assert_eq!(cluster.zrange_withscores_newest(key, 1).await[0].0, "m4");
    let mut target = redis_conn(to).await;
    let count: u64 = redis::cmd("CLUSTER")
        .arg("COUNTKEYSINSLOT")
        .arg(slot)
        .query_async(&mut target)
        .await
        .unwrap();
    assert_eq!(count, 151);

    // Mid-migration (IMPORTING/MIGRATING set by hand, the key already moved), the source answers ASK and the read
    // follows it.
    let mut source = redis_conn(to).await;
    let mut dest = redis_conn(from).await;
    let source_id: String = redis::cmd("CLUSTER")
        .arg("MYID")
        .query_async(&mut source)
        .await
        .unwrap();
    let dest_id: String = redis::cmd("CLUSTER")
        .arg("MYID")
        .query_async(&mut dest)
        .await
        .unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("IMPORTING")
        .arg(&source_id)
        .query_async(&mut dest)
        .await
        .unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("MIGRATING")
        .arg(&dest_id)
        .query_async(&mut source)
        .await
        .unwrap();
    let _: () = redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(from)
        .arg(key)
        .arg(0)
        .arg(5000)
        .query_async(&mut source)
        .await
        .unwrap();
    assert_eq!(cluster.zrange_withscores_newest(key, 1).await[0].0, "m4");
    cluster.zadd(key, 99.0, "m5").await;
    cluster.migrate_slot(slot, to, from).await;
    assert_eq!(cluster.owner(slot).await, from);
    assert_eq!(
        cluster.zrange_withscores_newest(key, 1).await,
        vec![("m5".to_string(), 99.0)]
    );

    // A manual failover: the replica serves the slots, the old primary follows it.
    let primary = cluster.owner(slot).await;
    let replica = cluster.replicas_of(primary).await[0];
    let failover = std::time::Instant::now();
    cluster.failover(replica).await;
    eprintln!("failover settled in {:?}", failover.elapsed());
    assert_eq!(cluster.owner(slot).await, replica);
    assert_eq!(cluster.replicas_of(replica).await, vec![primary]);
    assert_eq!(
        cluster.zrange_withscores_newest(key, 1).await,
        vec![("m5".to_string(), 99.0)]
    );
    eprintln!("whole test {:?}", started.elapsed());
}

/// One shard (which `redis-cli --cluster create` refuses), a replica killed and restarted, a primary added, given
/// a slot with a key, emptied again and removed.
#[tokio::test]
async fn one_shard_grows_and_shrinks() {
    let started = std::time::Instant::now();
    let mut cluster = Cluster::start(1, 1).await;
    eprintln!("1 primary + 1 replica settled in {:?}", started.elapsed());
    let primary = cluster.primaries().await[0];
    let replica = cluster.replicas_of(primary).await[0];
    assert_eq!(cluster.owner(0).await, primary);
    assert_eq!(cluster.owner(16383).await, primary);

    cluster.kill(replica);
    cluster.zadd("perf:a", 1.0, "while-down").await;
    cluster.restart(replica).await;
    assert_eq!(cluster.replicas_of(primary).await, vec![replica]);

    let added = cluster.add_primary().await;
    assert_eq!(cluster.primaries().await, vec![primary, added]);
    let slot = cluster.slot(b"perf:a");
    cluster.migrate_slot(slot, primary, added).await;
    assert_eq!(cluster.owner(slot).await, added);
    assert_eq!(
        cluster.zrange_withscores_newest("perf:a", 5).await,
        vec![("while-down".to_string(), 1.0)]
    );
    cluster.migrate_slot(slot, added, primary).await;
    cluster.remove_node(added).await;
    assert_eq!(cluster.primaries().await, vec![primary]);
    eprintln!("whole test {:?}", started.elapsed());
}
