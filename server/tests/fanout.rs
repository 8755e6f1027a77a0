//! Many browsers on one replication link: 200 sessions at once, and a browser that stops reading, which is told
//! to resync without slowing anyone else.

mod support;

use replicast_protocol::wire::{self, Message};
use support::*;
use tokio_tungstenite::tungstenite;

#[tokio::test]
async fn two_hundred_sessions_each_get_every_write() {
    let (_redis, port) = start_redis();
    let (_relay, ws_url) = start_relay(port, "perf:*");
    let mut sockets = Vec::new();
    for _ in 0..200 {
        sockets.push(connect(&ws_url, &subscribe_message(&["perf:*"], 10)).await);
    }
    let mut joined = Vec::new();
    for socket in &mut sockets {
        joined.push(join(socket).await.1);
    }
    let (_, metrics) = http_get(&ws_url, "/metrics").await;
    assert!(
        metrics.lines().any(|l| l == "replicast_sessions 200"),
        "{metrics}"
    );

    let mut conn = redis_conn(port).await;
    let _: i64 = redis::cmd("ZADD")
        .arg("perf:fan")
        .arg(1)
        .arg("out")
        .query_async(&mut conn)
        .await
        .unwrap();
    let now = master_repl_offset(&mut conn).await;
    for (socket, from) in sockets.iter_mut().zip(joined) {
        let commands = read_commands_until(socket, from, now).await;
        assert!(commands.contains(&args(&["ZADD", "perf:fan", "1", "out"])));
    }
}

/// A session whose socket receive buffer is tiny, so that not reading stalls the relay's sends quickly.
async fn connect_with_small_buffer(url: &str, subscribe: &str) -> Socket {
    use futures_util::SinkExt;
    let addr: std::net::SocketAddr = url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .parse()
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut ws, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    ws.send(tungstenite::Message::text(subscribe))
        .await
        .unwrap();
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_that_stops_reading_is_told_to_resync_and_others_get_everything() {
    let (_redis, port) = start_redis();
    // A small backlog, so the stalled browser falls out of it quickly.
    let (_relay, ws_url) = start_relay_with(
        &format!("redis://127.0.0.1:{port}"),
        &["--allow", "perf:*", "--backlog-bytes", "1048576"],
    );
    let mut stalled = connect_with_small_buffer(&ws_url, &subscribe_message(&["perf:*"], 10)).await;
    join(&mut stalled).await;
    let mut reader = connect(&ws_url, &subscribe_message(&["perf:*"], 10)).await;
    let (_, from, _) = join(&mut reader).await;

    // ~8 MB through the relay: past the 1 MB backlog plus whatever the stalled socket buffers. The writer waits
    // for the reading browser every 512 KB, so that one never lags by more than the backlog, however slow this
    // machine is today.
    let reader_at = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(from));
    let progress = reader_at.clone();
    let reading = tokio::spawn(async move {
        loop {
            let message = next_binary(&mut reader).await;
            match wire::decode(&message).unwrap() {
                Message::Commands(segments) => {
                    for segment in segments {
                        progress
                            .store(segment.unwrap().end(), std::sync::atomic::Ordering::Release);
                    }
                }
                other => panic!("the reading browser got {other:?}"),
            }
        }
    });
    let caught_up = |offset: u64| {
        let reader_at = reader_at.clone();
        async move {
            for _ in 0..10_000 {
                if reader_at.load(std::sync::atomic::Ordering::Acquire) >= offset {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            panic!("the reading browser did not reach offset {offset}");
        }
    };
    let mut conn = redis_conn(port).await;
    let value = "x".repeat(16 * 1024);
    for i in 0..512 {
        let _: () = redis::cmd("SET")
            .arg(format!("perf:big:{}", i % 10))
            .arg(&value)
            .query_async(&mut conn)
            .await
            .unwrap();
        if i % 32 == 31 {
            caught_up(master_repl_offset(&mut conn).await).await;
        }
    }
    // The reading browser got every write, without a resync (its task would have panicked and stopped).
    caught_up(master_repl_offset(&mut conn).await).await;
    assert!(!reading.is_finished());
    reading.abort();

    // The stalled browser, reading at last, finds a resync and a 1013 close after what was in flight.
    loop {
        match next_message(&mut stalled).await {
            tungstenite::Message::Binary(bytes) => {
                if let Ok(Message::Resync { reason }) = wire::decode(&bytes) {
                    assert!(reason.contains("fell behind"), "{reason}");
                    break;
                }
            }
            other => panic!("expected a resync before anything else, got {other:?}"),
        }
    }
    match next_message(&mut stalled).await {
        tungstenite::Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1013),
        other => panic!("expected a close, got {other:?}"),
    }
    let (_, metrics) = http_get(&ws_url, "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "replicast_session_resyncs_total 1"),
        "{metrics}"
    );
}
