//! The replica link against real Redis setups: disk-based sync, an ACL user, a chained replica, and a primary
//! restarted empty (a new replication ID), after which every browser re-snapshots.

mod support;

use replicast_protocol::wire::{self, Message};
use support::*;

/// Joins, writes one ZADD through `writer`, and checks the browser gets it; `reader` is the node the relay follows.
async fn stream_one_zadd(
    ws_url: &str,
    writer: &mut redis::aio::MultiplexedConnection,
    mut reader: redis::aio::MultiplexedConnection,
) {
    let mut socket = connect(ws_url, &subscribe_message(&["perf:*"], 10)).await;
    let (_, joined, snapshot) = join(&mut socket).await;
    assert!(
        snapshot.contains(&args(&["ZADD", "perf:h", "1", "before"])),
        "{snapshot:?}"
    );
    zadd(writer, "perf:h", 2, "after").await;
    // On a replica, wait until it applied the write before asking its offset.
    let until = loop {
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg("perf:h")
            .arg(0)
            .arg(-1)
            .query_async(&mut reader)
            .await
            .unwrap();
        if members.iter().any(|m| m == "after") {
            break master_repl_offset(&mut reader).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let commands = read_commands_until(&mut socket, joined, until).await;
    assert!(
        commands.contains(&args(&["ZADD", "perf:h", "2", "after"])),
        "{commands:?}"
    );
}

#[tokio::test]
async fn disk_based_full_sync() {
    let (_redis, port) = start_redis_with(&["--repl-diskless-sync", "no"]);
    let mut conn = redis_conn(port).await;
    zadd(&mut conn, "perf:h", 1, "before").await;
    let (_relay, ws_url) = start_relay(port, "perf:*");
    stream_one_zadd(&ws_url, &mut conn.clone(), conn).await;
}

#[tokio::test]
async fn an_acl_user_with_a_password() {
    let (_redis, port) = start_redis_with(&[
        "--user", "relay", "on", ">s3cret", "~*", "&*", "+@all", "--user", "default", "off",
    ]);
    let url = format!("redis://relay:s3cret@127.0.0.1:{port}");
    let mut conn = redis_conn_url(&url).await;
    zadd(&mut conn, "perf:h", 1, "before").await;
    let (_relay, ws_url) = start_relay_with(&url, &["--allow", "perf:*"]);
    stream_one_zadd(&ws_url, &mut conn.clone(), conn).await;
    // The test's own reads above authenticated too; the relay's link, snapshots and command table all did.
}

/// The ACL rules of the least-privileged user the relay needs (docs/SECURITY.md), for `--allow perf:*`: the
/// replication handshake, `COMMAND` for routing, `INFO` for offsets and lag, and the snapshot reads, on `perf:*`
/// keys only and read-only.
const RELAY_ACL: &[&str] = &[
    "on",
    ">s3cret",
    "resetkeys",
    "%R~perf:*",
    "resetchannels",
    "-@all",
    "+psync",
    "+replconf",
    "+ping",
    "+command",
    "+info",
    "+select",
    "+scan",
    "+type",
    "+multi",
    "+exec",
    "+zrange",
    "+lrange",
    "+xrevrange",
    "+hgetall",
    "+get",
];

#[tokio::test]
async fn the_least_acl_user_the_relay_needs_syncs_snapshots_and_tops_up() {
    use futures_util::SinkExt;
    use replicast_assembler::{StreamAssembler, WatchConfig};
    use replicast_protocol::client_message::Topup;

    let mut config = vec!["--user", "replicast"];
    config.extend(RELAY_ACL);
    let (_redis, port) = start_redis_with(&config);
    // The test writes as the default user; the relay only reads.
    let mut conn = redis_conn(port).await;
    let whoami: String = redis::cmd("ACL")
        .arg("WHOAMI")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(whoami, "default");
    for i in 1..=5 {
        zadd(&mut conn, "perf:z", i, &format!("m{i}")).await;
    }
    let _: () = redis::pipe()
        .cmd("RPUSH")
        .arg("perf:l")
        .arg(&["a", "b"][..])
        .cmd("HSET")
        .arg("perf:h")
        .arg(&["f", "v"][..])
        .cmd("SET")
        .arg("perf:s")
        .arg("v")
        .cmd("XADD")
        .arg("perf:x")
        .arg("1-1")
        .arg(&["f", "v"][..])
        .cmd("SADD")
        .arg("perf:set")
        .arg("m")
        .cmd("SET")
        .arg("secret:s")
        .arg("hidden")
        .query_async(&mut conn)
        .await
        .unwrap();

    let url = format!("redis://replicast:s3cret@127.0.0.1:{port}");
    // Without a state, so that the join and the top-up read Redis with the user's rights.
    let (_relay, ws_url) = start_relay_with(&url, &["--allow", "perf:*", "--stateless"]);
    let mut socket = connect(&ws_url, &subscribe_message(&["*"], 3)).await;
    let mut assembler = StreamAssembler::new(WatchConfig {
        patterns: vec![b"*".to_vec()],
        db: 0,
        window: 3,
    });
    let hello = next_binary(&mut socket).await;
    assembler.push_message(&hello).unwrap();
    let snapshot = next_binary(&mut socket).await;
    let Ok(Message::Snapshot { commands, .. }) = wire::decode(&snapshot) else {
        panic!("expected a snapshot");
    };
    // Every read the snapshot makes, each allowed by the ACL.
    let commands = parse_all(commands);
    for want in [
        args(&["ZADD", "perf:z", "3", "m3", "4", "m4", "5", "m5"]),
        args(&["RPUSH", "perf:l", "a", "b"]),
        args(&["HSET", "perf:h", "f", "v"]),
        args(&["SET", "perf:s", "v"]),
        args(&["XADD", "perf:x", "1-1", "f", "v"]),
        args(&["DEL", "perf:set"]),
    ] {
        assert!(commands.contains(&want), "no {want:?} in {commands:?}");
    }
    assert!(!commands.iter().flatten().any(|a| a.starts_with(b"secret")));
    assembler.push_message(&snapshot).unwrap();

    // The stream, routed by the COMMAND table (without it, MSET's first key would let the secret one through).
    zadd(&mut conn, "perf:z", 6, "m6").await;
    let _: () = redis::cmd("MSET")
        .arg(&["perf:m", "1", "secret:m", "2"][..])
        .query_async(&mut conn)
        .await
        .unwrap();
    // Removals leave the window shorter than Redis's set: the browser asks for a top-up, read as the ACL user.
    let _: i64 = redis::cmd("ZREM")
        .arg("perf:z")
        .arg(&["m6", "m5"][..])
        .query_async(&mut conn)
        .await
        .unwrap();
    let offset = master_repl_offset(&mut conn).await;
    let mut applied = Vec::new();
    while assembler.offset() < offset {
        let message = next_binary(&mut socket).await;
        applied.extend_from_slice(&message);
        assembler.push_message(&message).unwrap();
    }
    assert!(
        !applied.windows(6).any(|w| w == b"secret"),
        "a multi-key command with a disallowed key left the relay"
    );
    let topups = assembler.take_topups();
    // perf:m: written by the withheld MSET, which reached the browser as a stale message; perf:z: the removals.
    assert_eq!(topups, vec![b"perf:m".to_vec(), b"perf:z".to_vec()]);
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            Topup::requests(topups.iter().map(Vec::as_slice)).remove(0),
        ))
        .await
        .unwrap();
    loop {
        let message = next_binary(&mut socket).await;
        let is_snapshot = matches!(wire::decode(&message), Ok(Message::Snapshot { .. }));
        assembler.push_message(&message).unwrap();
        if is_snapshot {
            break;
        }
    }
    let want: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg("perf:z")
        .arg(-3)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut got = zset_newest_first(&assembler, "perf:z");
    got.reverse();
    assert_eq!(got, want, "the window equals Redis after the top-up");
    assert_eq!(
        assembler
            .window(b"perf:m")
            .and_then(|w| w.as_string())
            .map(|s| s.value()),
        Some(&b"1"[..]),
        "read by the top-up, as the ACL user"
    );

    // The lag gauge: INFO replication, polled as the ACL user.
    for _ in 0..100 {
        let (_, metrics) = http_get(&ws_url, "/metrics").await;
        if metrics.lines().any(|l| {
            l.starts_with("replicast_upstream_offset ") && l != "replicast_upstream_offset 0"
        }) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the followed node's offset was never polled as the ACL user");
}

#[tokio::test]
async fn without_command_the_relay_streams_nothing_and_says_why() {
    // Routing needs COMMAND: without it the link fails closed rather than judge MSET by its first key.
    let mut config = vec!["--user", "replicast"];
    config.extend(RELAY_ACL.iter().filter(|rule| **rule != "+command"));
    let (_redis, port) = start_redis_with(&config);
    let log = scratch_dir("no-command").join("relay.log");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_replicast"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--allow",
            "perf:*",
            "--redis-url",
        ])
        .arg(format!("redis://replicast:s3cret@127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stderr(std::fs::File::create(&log).unwrap());
    let (_relay, line) = start_until(&mut command, "Replicast is live at ");
    let http = line.rsplit(' ').next().unwrap().trim_end_matches('/');
    let ws_url = http.replace("http://", "ws://") + "/ws";
    let want =
        "Redis refused COMMAND: NOPERM this user has no permissions to run the 'command' command";
    for _ in 0..100 {
        if std::fs::read_to_string(&log).unwrap().contains(want) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(want), "{text}");
    assert!(text.contains("docs/SECURITY.md"), "{text}");
    let (status, body) = http_get(&ws_url, "/healthz").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "unavailable: the replica link is not streaming\n")
    );
    let _ = std::fs::remove_dir_all(log.parent().unwrap());
}

#[tokio::test]
async fn following_a_replica_of_the_primary() {
    let (_primary, primary_port) = start_redis();
    let replica_of = format!("127.0.0.1 {primary_port}");
    let (_replica, replica_port) = start_redis_with(&["--replicaof", &replica_of]);
    let mut primary = redis_conn(primary_port).await;
    zadd(&mut primary, "perf:h", 1, "before").await;
    let mut replica = redis_conn(replica_port).await;
    for _ in 0..400 {
        let n: i64 = redis::cmd("ZCARD")
            .arg("perf:h")
            .query_async(&mut replica)
            .await
            .unwrap();
        if n == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (_relay, ws_url) = start_relay(replica_port, "perf:*");
    stream_one_zadd(&ws_url, &mut primary, replica).await;
}

#[tokio::test]
async fn a_primary_restarted_empty_makes_every_browser_resnapshot() {
    let (redis, port) = start_redis();
    let mut conn = redis_conn(port).await;
    zadd(&mut conn, "perf:h", 1, "old-life").await;
    let (_relay, ws_url) = start_relay(port, "perf:*");
    let mut socket = connect(&ws_url, &subscribe_message(&["perf:*"], 10)).await;
    let (old_epoch, _, snapshot) = join(&mut socket).await;
    assert!(
        snapshot.contains(&args(&["ZADD", "perf:h", "1", "old-life"])),
        "{snapshot:?}"
    );

    drop(redis);
    let _redis = start_redis_on(port, &[]);
    let mut conn = redis_conn(port).await;
    zadd(&mut conn, "perf:h", 7, "new-life").await;

    // The same socket gets a hello of the new epoch and a snapshot of the new data (perhaps after one of the
    // empty new server, if the relay resynced before the write).
    let (epoch, offset) = loop {
        if let Message::Hello { epoch, offset, .. } =
            wire::decode(&next_binary(&mut socket).await).unwrap()
        {
            break (epoch.to_string(), offset);
        }
    };
    assert_ne!(epoch, old_epoch, "a restarted primary is a new epoch");
    let mut seen = false;
    let mut applied = offset;
    while !seen {
        let message = next_binary(&mut socket).await;
        match wire::decode(&message).unwrap() {
            Message::Snapshot { commands, .. } => {
                let commands = parse_all(commands);
                assert!(
                    !commands.iter().any(|c| c.contains(&b"old-life".to_vec())),
                    "{commands:?}"
                );
                seen = commands.contains(&args(&["ZADD", "perf:h", "7", "new-life"]));
            }
            Message::Commands(segments) => {
                for segment in segments {
                    let segment = segment.unwrap();
                    seen |= segment.bytes.windows(8).any(|w| w == b"new-life");
                    applied = segment.end();
                }
            }
            Message::Hello { .. } => {}
            Message::Resync { reason } => panic!("unexpected resync: {reason}"),
            Message::Notice { text } => panic!("unexpected notice: {text}"),
            Message::Ack { request, .. } => panic!("unexpected ack of {request}"),
            Message::Stale { offset, .. } => panic!("unexpected stale keys at {offset}"),
            Message::Expiring { expires } => panic!("unexpected token expiry {expires}"),
            Message::Digest { request, .. } => panic!("unexpected digest of {request}"),
            Message::Shard { index, .. } => {
                panic!("a shard envelope ({index}) from a single Redis")
            }
        }
    }
    assert!(applied >= offset);
}

/// A CA and a server certificate for 127.0.0.1, made with the `openssl` command in `dir`.
fn make_certificates(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=Replicast Test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "ext",
    ]);
}

fn tls_cli(dir: &std::path::Path, port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(dir.join("ca.crt"))
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn a_tls_redis_over_rediss_with_a_private_ca() {
    let certs = scratch_dir("tls");
    make_certificates(&certs);
    let port = free_port();
    let file = |name: &str| certs.join(name).to_string_lossy().into_owned();
    let (cert, key, ca) = (file("server.crt"), file("server.key"), file("ca.crt"));
    let tls_port = port.to_string();
    let _redis = start_redis_on(
        free_port(),
        &[
            "--port",
            "0",
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
            "--tls-replication",
            "yes",
        ],
    );
    tls_cli(&certs, port, &["ZADD", "perf:tls", "1", "before"]);
    let url = format!("rediss://127.0.0.1:{port}");

    // Without the CA the certificate cannot be verified: the link never comes up.
    let (_untrusting, untrusting_url) = start_relay_with(&url, &["--allow", "perf:*"]);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(http_get(&untrusting_url, "/healthz").await.0, 503);

    let (_relay, ws_url) = start_relay_with(&url, &["--allow", "perf:*", "--redis-ca", &ca]);
    let mut socket = connect(&ws_url, &subscribe_message(&["perf:*"], 10)).await;
    let (_, joined, snapshot) = join(&mut socket).await;
    assert!(
        snapshot.contains(&args(&["ZADD", "perf:tls", "1", "before"])),
        "snapshot over TLS: {snapshot:?}"
    );
    tls_cli(&certs, port, &["ZADD", "perf:tls", "2", "after"]);
    let offset: u64 = tls_cli(&certs, port, &["INFO", "replication"])
        .lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    let commands = read_commands_until(&mut socket, joined, offset).await;
    assert!(
        commands.contains(&args(&["ZADD", "perf:tls", "2", "after"])),
        "{commands:?}"
    );
    let _ = std::fs::remove_dir_all(certs);
}
