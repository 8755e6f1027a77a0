//! The two limits on snapshots that the documentation promises, against the relay binary and a real
//! `redis-server`: at most 8 snapshots are read from Redis at once (the others wait for a turn), and the snapshot
//! messages being sent to all sessions together hold at most 256 MiB (a session whose snapshot does not fit waits,
//! with no hello, until another has sent its own or gone).

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use replicast_protocol::wire::{self, Message};
use support::*;
use tokio_tungstenite::tungstenite;

/// The relay's established TCP connections to `port` on loopback, by socket inode: its sockets
/// (`/proc/<pid>/fd`) that `/proc/net/tcp` lists with that remote port.
fn connections_to(pid: u32, port: u16) -> HashSet<String> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter_map(|link| {
                    let link = link.to_string_lossy().into_owned();
                    Some(
                        link.strip_prefix("socket:[")?
                            .strip_suffix(']')?
                            .to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let remote = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address rem_address st … inode: ESTABLISHED is 01.
            (fields.len() > 9
                && fields[2].ends_with(&remote)
                && fields[3] == "01"
                && inodes.contains(fields[9]))
            .then(|| fields[9].to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_8_snapshots_are_read_from_redis_at_once() {
    const JOINING: usize = 12;
    let (_redis, port) = start_redis();
    // Without a state every join reads its snapshot from Redis, each on a connection of its own.
    let (relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "perf:*", "--stateless"],
    );
    wait_healthy(&ws_url).await;
    let pid = relay.0.id();
    let mut conn = redis_conn(port).await;
    zadd(&mut conn, "perf:a", 1, "a").await;
    // The link's connection and the one polling INFO every second.
    let before = connections_to(pid, port);

    // Redis answers nobody for 15 s: every snapshot read started holds its connection (and its turn) until then.
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(15_000)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    // The INFO poller's connection times out meanwhile (redis-rs's defaults: 500 ms a reply, 1 s to connect) and
    // is opened again each second: a connection counts as a snapshot's once it has lived 3 s.
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let (most, done) = (most.clone(), done.clone());
        async move {
            let mut seen: HashMap<String, Instant> = HashMap::new();
            while !done.load(Ordering::Relaxed) {
                let now = connections_to(pid, port);
                seen.retain(|inode, _| now.contains(inode));
                for inode in now.difference(&before) {
                    seen.entry(inode.clone()).or_insert_with(Instant::now);
                }
                let reading = seen
                    .values()
                    .filter(|since| since.elapsed() >= Duration::from_secs(3))
                    .count();
                most.fetch_max(reading, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let mut sockets = Vec::new();
    for _ in 0..JOINING {
        sockets.push(connect(&ws_url, &subscribe_message(&["perf:*"], 5)).await);
    }
    within("8 snapshot reads waiting on the paused Redis", async {
        while most.load(Ordering::Relaxed) < 8 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // Every session joins once Redis answers again, the last four after a turn came free; never more than 8
    // connections read at once meanwhile.
    for socket in &mut sockets {
        let (_, _, snapshot) = join(socket).await;
        assert_eq!(
            snapshot,
            vec![
                args(&["DEL", "perf:a"]),
                args(&["ZADD", "perf:a", "1", "a"])
            ]
        );
    }
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    assert_eq!(
        most.load(Ordering::Relaxed),
        8,
        "snapshot connections to Redis at once, {JOINING} sessions joining"
    );
    assert_eq!(
        metric(&ws_url, "replicast_snapshots_total").await,
        JOINING as u64
    );
}

/// A session at `url` subscribed with `subscribe`, taking messages of any size (a snapshot of 60 MiB).
async fn connect_unbounded(url: &str, subscribe: &str) -> Socket {
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    connect_with_config(url, subscribe, Some(config)).await
}

/// The next message on `socket` if one comes within `wait`; `None` if none did (the socket stays usable).
async fn message_within(socket: &mut Socket, wait: Duration) -> Option<Vec<u8>> {
    match tokio::time::timeout(wait, socket.next()).await {
        Ok(Some(Ok(tungstenite::Message::Binary(bytes)))) => Some(bytes.to_vec()),
        Ok(other) => panic!("expected a binary message, got {other:?}"),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_messages_being_sent_hold_at_most_256_mib_in_all() {
    const JOINING: usize = 6;
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    wait_healthy(&ws_url).await;
    let mut conn = redis_conn(port).await;
    // 60 strings of 1 MiB: a snapshot message of just over 60 MiB from the relay's state (more than loopback's
    // socket buffers take unread: tcp_rmem's most is 32 MiB on Debian), so that 4 fit in the budget of 256 MiB
    // and a 5th does not.
    let value = vec![b'v'; 1 << 20];
    let mut fill = redis::pipe();
    for k in 0..60 {
        fill.cmd("SET")
            .arg(format!("perf:s{k:02}"))
            .arg(&value)
            .ignore();
    }
    let () = fill.query_async(&mut conn).await.unwrap();
    link_reaches(&ws_url, master_repl_offset(&mut conn).await).await;

    // Sessions that read their hello and then nothing: a turn is given back only once the snapshot is sent, which
    // their full sockets hold up (until the send timeout, 30 s, closes them).
    let mut sockets = Vec::new();
    for _ in 0..JOINING {
        sockets.push(connect_unbounded(&ws_url, &subscribe_message(&["perf:*"], 5)).await);
    }
    let mut greeted = vec![false; JOINING];
    within("hellos for 4 sessions", async {
        while greeted.iter().filter(|g| **g).count() < 4 {
            for (socket, greeted) in sockets.iter_mut().zip(&mut greeted) {
                if *greeted {
                    continue;
                }
                if let Some(message) = message_within(socket, Duration::from_millis(50)).await {
                    assert!(matches!(wire::decode(&message), Ok(Message::Hello { .. })));
                    *greeted = true;
                }
            }
        }
    })
    .await;
    assert_eq!(
        greeted.iter().filter(|g| **g).count(),
        4,
        "sessions sent a hello, and so a turn to send their 60 MiB snapshot"
    );

    // The other two wait for a turn, with nothing sent to them. (Without the budget they are greeted at once; the
    // 2 s are how long their silence is watched, far less than the send timeout that would free a turn.)
    for (socket, _) in sockets.iter_mut().zip(&greeted).filter(|(_, g)| !**g) {
        assert!(
            message_within(socket, Duration::from_secs(2))
                .await
                .is_none(),
            "a fifth 60 MiB snapshot was sent while four were"
        );
    }

    // One greeted session goes: its turn passes to one that waited, which gets its hello and its snapshot.
    let gone = greeted.iter().position(|g| *g).unwrap();
    drop(sockets.remove(gone));
    greeted.remove(gone);
    let (mut waiting, _): (Vec<Socket>, Vec<bool>) = sockets
        .into_iter()
        .zip(greeted)
        .filter(|(_, g)| !*g)
        .unzip();
    let next = within("a hello for a session that waited its turn", async {
        loop {
            for (i, socket) in waiting.iter_mut().enumerate() {
                if let Some(message) = message_within(socket, Duration::from_millis(50)).await {
                    assert!(matches!(wire::decode(&message), Ok(Message::Hello { .. })));
                    return i;
                }
            }
        }
    })
    .await;
    let socket = &mut waiting[next];
    let message = next_binary(socket).await;
    let Ok(Message::Snapshot { commands, .. }) = wire::decode(&message) else {
        panic!("expected the snapshot after the hello");
    };
    assert_eq!(parse_all(commands).len(), 120, "a DEL and a SET a key");
}
