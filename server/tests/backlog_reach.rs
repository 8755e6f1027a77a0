//! The backlog keeps only what some session could be sent (issue 21): with redis-server and the relay binary, a
//! megabyte of writes to keys outside `--allow` passes through a 64 KiB backlog without pushing out the browser's
//! resume point, and leaves nothing of those keys in relay memory; what the browser missed of its allowed keys
//! comes to it on resume, exactly.

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_outside_allow_keep_only_their_offsets_so_a_resume_outlives_them() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "perf:*", "--backlog-bytes", "65536"],
    );
    let mut conn = redis_conn(port).await;
    let subscribe = subscribe_message(&["perf:*"], 10);
    let mut socket = connect(&ws_url, &subscribe).await;
    let (epoch, joined, _) = join(&mut socket).await;
    zadd(&mut conn, "perf:a", 1, "before").await;
    let left_at = master_repl_offset(&mut conn).await;
    read_commands_until(&mut socket, joined, left_at).await;
    drop(socket);

    // 1 MiB of writes no session may see: 16 times the backlog.
    let mut pipe = redis::pipe();
    for i in 0..1024 {
        pipe.cmd("SET")
            .arg(format!("secret:{i}"))
            .arg("x".repeat(1024))
            .ignore();
    }
    let () = pipe.query_async(&mut conn).await.unwrap();
    zadd(&mut conn, "perf:a", 2, "while-away").await;
    let now = master_repl_offset(&mut conn).await;
    link_reaches(&ws_url, now).await;
    assert!(
        metric(&ws_url, "replicast_backlog_start_offset").await <= left_at,
        "the secret writes pushed the resume point out of the backlog"
    );
    assert!(metric(&ws_url, "replicast_backlog_bytes").await < 65536);

    let mut socket = connect(
        &format!("{ws_url}?epoch={epoch}&offset={left_at}"),
        &subscribe,
    )
    .await;
    assert_eq!(
        hello(&mut socket).await,
        (epoch, left_at),
        "resumed at its own offset, no snapshot"
    );
    let missed = read_commands_until(&mut socket, left_at, now).await;
    assert_eq!(missed, vec![args(&["ZADD", "perf:a", "2", "while-away"])]);
}
