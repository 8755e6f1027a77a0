//! The relay's ingest from outside: a fake primary that serves a recorded replication stream as fast as the socket
//! takes it, and a pure reader that only counts the bytes, as the ceiling of the same machine. Driven by
//! `bench/ingest.sh` (run that; it starts the servers):
//!
//! ```text
//! cargo run --release -p replicast-server --example ingest_bench -- generate <file> [commands] [first]
//! cargo run --release -p replicast-server --example ingest_bench -- primary <redis-port> <stream> <rdb> [second]
//! cargo run --release -p replicast-server --example ingest_bench -- reader <primary-port> [streams]
//! cargo run --release -p replicast-server --example ingest_bench -- path <stream> [stateless|state|state-no-history] [fast|general]
//! ```
//!
//! `generate`: writes the stream of `commands` (1,000,000) `ZADD perf:hostN <ms> <~130-byte JSON>` after a
//! `SELECT 0`, as Redis propagates them, from the collectors' sample number `first` (0) on. `primary`: listens on a
//! free loopback port (printed as `port N`) and passes every connection through to the real Redis at `redis-port`
//! (the relay's `COMMAND`, `CONFIG GET`, `INFO`, and the handshake's `PING`/`REPLCONF`) until one sends `PSYNC`:
//! that one gets `+FULLRESYNC <replid> 0`, the RDB file `rdb`, the stream, then `REPLCONF GETACK *`, and is timed
//! from the stream's first byte to the `REPLCONF ACK` that reaches its end (a `RESULT {json}` line each). With a
//! `second` stream (the samples that follow the first's), that one is served next the same way and timed on its
//! own: the replica's buffers, ring and state then start warm, as a long-running relay's are (the first pass pays
//! the first touch of the backlog's ring); the primary then keeps the connection open until the replica leaves.
//! `reader`: a replica that only reads and counts the stream, answering each `GETACK`, and leaves after the
//! `streams`th (1).
//!
//! `path`: the relay's own work on the stream without the socket, for counting its instructions a byte
//! (`valgrind --tool=callgrind`): the stream, read from the file whole, goes through the link's reader,
//! the write profile and the `--allow 'perf:*'` filter into the default 64 MiB backlog (`stateless`, as
//! `serve --stateless`), and into the relay's state with its defaults too (`state`), in the link's reads of a
//! block (`link_io::BLOCK`) each; `state-no-history` is the state without its ring of past writes
//! (`--state-history-bytes 0`; `state` keeps the default, `--backlog-bytes`' 64 MiB);
//! `general` reads every command by the general path, without the link's framing fast path.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use replicast_protocol::resp::{parse_command, Limits};
use replicast_server::link_io::push_command as resp;

const REPLID: &str = "1c4f0aa81be1b7e0d1c0ab7f25c3d2c8d2e1f0a9";
const GETACK: &[u8] = b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n";
/// Bytes per write: large, so that the primary's system calls are never the limit.
const WRITE: usize = 1 << 20;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("generate") => generate(&args[1..]),
        Some("primary") => primary(&args[1..]),
        Some("reader") => reader(&args[1..]),
        Some("path") => path(&args[1..]),
        _ => Err("usage: ingest_bench generate|primary|reader|path … (see bench/ingest.sh)".into()),
    };
    if let Err(err) = result {
        eprintln!("ingest_bench: {err}");
        std::process::exit(1);
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The collectors' samples of bench/resp/record.mjs (same shape and sizes; a deterministic generator).
fn generate(args: &[String]) -> Result<()> {
    let path = args.first().ok_or("generate <file> [commands] [first]")?;
    let commands: u64 = args.get(1).map_or(Ok(1_000_000), |n| n.parse())?;
    let first: u64 = args.get(2).map_or(Ok(0), |n| n.parse())?;
    let hosts = 16;
    let mut seed: u64 = 42;
    let mut rand = move || {
        seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
        seed as f64 / 2_147_483_648.0
    };
    let mut out = Vec::with_capacity(commands as usize * 180);
    resp(&mut out, &[b"SELECT", b"0"]);
    // The generator as it stands after the samples before `first`, so a second stream continues the first.
    for _ in 0..first * 7 {
        rand();
    }
    for i in first..first + commands {
        let host = format!("host{}", i % hosts);
        let ms = 1_700_000_000_000 + i * 250 + (rand() * 100.0) as u64;
        let (user, sys) = (rand() * 60.0, rand() * 20.0);
        let json = format!(
            r#"{{"id":"s{i}","host":"{host}","cpu":{{"user":{user:.2},"sys":{sys:.2},"idle":{:.2}}},"mem":{},"net":{{"rx":{},"tx":{}}},"load":{:.2}}}"#,
            100.0 - user - sys,
            (rand() * 16e9) as u64,
            (rand() * 1e7) as u64,
            (rand() * 1e7) as u64,
            rand() * 8.0
        );
        resp(
            &mut out,
            &[
                b"ZADD",
                format!("perf:{host}").as_bytes(),
                ms.to_string().as_bytes(),
                json.as_bytes(),
            ],
        );
    }
    std::fs::write(path, &out)?;
    println!("{path}: {} bytes, {commands} ZADDs", out.len());
    Ok(())
}

fn primary(args: &[String]) -> Result<()> {
    let (redis_port, streams, rdb) = match args {
        [port, stream, rdb] => (port, vec![stream], rdb),
        [port, stream, rdb, second] => (port, vec![stream, second], rdb),
        _ => return Err("primary <redis-port> <stream> <rdb> [second]".into()),
    };
    let redis = format!("127.0.0.1:{redis_port}");
    let streams: Arc<[Vec<u8>]> = streams
        .into_iter()
        .map(std::fs::read)
        .collect::<std::io::Result<Vec<_>>>()?
        .into();
    let rdb: Arc<[u8]> = std::fs::read(rdb)?.into();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("port {}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    for client in listener.incoming() {
        let (client, redis, streams, rdb) = (client?, redis.clone(), streams.clone(), rdb.clone());
        std::thread::spawn(move || {
            if let Err(err) = pass_through(client, &redis, streams, &rdb) {
                eprintln!("ingest_bench primary: a connection ended: {err}");
            }
        });
    }
    Ok(())
}

/// Passes `client`'s commands to Redis and Redis's replies back, until a `PSYNC`: then serves the streams.
fn pass_through(
    mut client: TcpStream,
    redis: &str,
    streams: Arc<[Vec<u8>]>,
    rdb: &[u8],
) -> Result<()> {
    client.set_nodelay(true)?;
    let upstream = TcpStream::connect(redis)?;
    let replies = {
        let (mut from, mut to) = (upstream.try_clone()?, client.try_clone()?);
        std::thread::spawn(move || std::io::copy(&mut from, &mut to))
    };
    let mut to_redis = upstream.try_clone()?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = client.read(&mut chunk)?;
        if n == 0 {
            let _ = upstream.shutdown(Shutdown::Both);
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        while let Some(command) = parse_command(&buf[used..], 0, &Limits::default())? {
            let len = command.frame_len();
            if command.is("psync") {
                // Every command before it was answered (the link waits for each reply): Redis's side is done.
                let _ = upstream.shutdown(Shutdown::Both);
                let _ = replies.join();
                return serve_streams(client, streams, rdb);
            }
            to_redis.write_all(&buf[used..used + len])?;
            used += len;
        }
        buf.drain(..used);
    }
}

/// Full resync, then each stream at the socket's pace and a `GETACK`, timed until an `ACK` reaches its end (one
/// `RESULT` line for all: the last stream's figures, and each pass's).
fn serve_streams(client: TcpStream, streams: Arc<[Vec<u8>]>, rdb: &[u8]) -> Result<()> {
    let mut acks = BufReader::new(client.try_clone()?);
    let mut out = client;
    out.write_all(format!("+FULLRESYNC {REPLID} 0\r\n${}\r\n", rdb.len()).as_bytes())?;
    out.write_all(rdb)?;
    let (mut offset, mut acked) = (0u64, 0u64);
    let mut passes = Vec::new();
    for pass in 0..streams.len() {
        let end = offset + streams[pass].len() as u64;
        let began = Instant::now();
        let writer = {
            let (mut out, streams) = (out.try_clone()?, streams.clone());
            std::thread::spawn(move || -> std::io::Result<f64> {
                for piece in streams[pass].chunks(WRITE) {
                    out.write_all(piece)?;
                }
                out.write_all(GETACK)?;
                Ok(began.elapsed().as_secs_f64())
            })
        };
        // `REPLCONF ACK <offset>`, as the relay writes it: read until one reaches the end.
        let mut line = Vec::new();
        while acked < end {
            line.clear();
            if acks.read_until(b'\n', &mut line)? == 0 {
                return Err(format!("the replica left at offset {acked} of {end}").into());
            }
            if let Ok(offset) = std::str::from_utf8(&line)
                .unwrap_or("")
                .trim()
                .parse::<u64>()
            {
                acked = acked.max(offset);
            }
        }
        let seconds = began.elapsed().as_secs_f64();
        let written = writer.join().map_err(|_| "the writer panicked")??;
        let bytes = end - offset;
        passes.push(format!(
            "{{\"bytes\":{bytes},\"seconds\":{seconds:.4},\"written_seconds\":{written:.4},\"mb_per_s\":{:.1}}}",
            bytes as f64 / seconds / 1e6
        ));
        // The GETACK counts in the offsets.
        offset = end + GETACK.len() as u64;
    }
    let last = passes.last().ok_or("no stream")?;
    println!(
        "RESULT {{\"bench\":\"ingest\",{},\"passes\":[{}]}}",
        &last[1..last.len() - 1],
        passes.join(",")
    );
    std::io::stdout().flush()?;
    // The link stays open until the replica leaves, reading its ACKs: closed, the relay would sync again and be
    // served the streams again, while its state may still be applying the last pass (bench/ingest.sh waits for it).
    std::io::copy(&mut acks, &mut std::io::sink())?;
    Ok(())
}

/// A replica that only reads: the handshake, the RDB skipped, the stream counted; the final `GETACK` answered with
/// the count. What the machine allows a reader of this socket, with the primary beside it.
fn reader(args: &[String]) -> Result<()> {
    let port = args.first().ok_or("reader <primary-port> [streams]")?;
    let streams: usize = args.get(1).map_or(Ok(1), |n| n.parse())?;
    let mut socket = TcpStream::connect(format!("127.0.0.1:{port}"))?;
    socket.set_nodelay(true)?;
    let mut input = BufReader::with_capacity(256 * 1024, socket.try_clone()?);
    let mut line = String::new();
    for command in [
        &["PING"][..],
        &["REPLCONF", "capa", "eof", "capa", "psync2"],
        &["PSYNC", "?", "-1"],
    ] {
        let mut out = Vec::new();
        resp(
            &mut out,
            &command.iter().map(|a| a.as_bytes()).collect::<Vec<_>>(),
        );
        socket.write_all(&out)?;
        line.clear();
        input.read_line(&mut line)?;
        if line.starts_with('-') {
            return Err(format!("{command:?}: {line}").into());
        }
    }
    line.clear();
    input.read_line(&mut line)?;
    let rdb_len: u64 = line.trim().trim_start_matches('$').parse()?;
    std::io::copy(&mut (&mut input).take(rdb_len), &mut std::io::sink())?;
    // Counts every byte; each GETACK ends a stream (found across reads by keeping its length of tail) and is
    // answered with the count before it; the reader leaves after the last.
    let mut count: u64 = 0;
    let mut answered = 0;
    let mut tail = Vec::with_capacity(2 * GETACK.len());
    loop {
        let read = input.fill_buf()?;
        if read.is_empty() {
            return Err(format!(
                "the primary closed after {count} bytes and {answered} of {streams} streams"
            )
            .into());
        }
        let n = read.len();
        count += n as u64;
        tail.extend_from_slice(&read[n.saturating_sub(GETACK.len())..]);
        input.consume(n);
        if tail.ends_with(GETACK) {
            let mut out = Vec::new();
            let offset = (count - GETACK.len() as u64).to_string();
            resp(&mut out, &[b"REPLCONF", b"ACK", offset.as_bytes()]);
            socket.write_all(&out)?;
            answered += 1;
            if answered == streams {
                return Ok(());
            }
        }
        tail.drain(..tail.len().saturating_sub(GETACK.len()));
    }
}

/// The link's path in-process: reader, `--allow`, backlog, and the state if asked for.
fn path(args: &[String]) -> Result<()> {
    use bytes::BytesMut;
    use replicast_server::backlog::{Backlog, DEFAULT_BACKLOG_BYTES};
    use replicast_server::command_table::CommandTable;
    use replicast_server::link_io::BLOCK;
    use replicast_server::metrics::LinkMetrics;
    use replicast_server::profile::{ProfileSettings, WriteProfile, DEFAULT_WINDOW};
    use replicast_server::replica_link::{apply, Sink};
    use replicast_server::state::feed::StateFeed;
    use replicast_server::state::{
        RelayState, StateSettings, DEFAULT_STATE_BYTES, DEFAULT_STATE_DEPTH,
    };
    use replicast_server::stream_reader::{StreamReader, MAX_HELD_COMMAND};
    use replicast_server::subscription::Allow;

    let stream = args
        .first()
        .ok_or("path <stream> [stateless|state|state-no-history] [fast|general]")?;
    let (with_state, history_bytes) = match args.get(1).map(String::as_str) {
        None | Some("stateless") => (false, 0),
        Some("state") => (true, DEFAULT_BACKLOG_BYTES),
        Some("state-no-history") => (true, 0),
        Some(other) => {
            return Err(
                format!("path: {other:?} is not stateless, state or state-no-history").into(),
            )
        }
    };
    let fast = match args.get(2).map(String::as_str) {
        None | Some("fast") => true,
        Some("general") => false,
        Some(other) => return Err(format!("path: {other:?} is neither fast nor general").into()),
    };
    let stream = std::fs::read(stream)?;
    let reply =
        redis::parse_redis_value(include_bytes!("../tests/data/redis-7.0.15-command.resp"))?;
    let table = Arc::new(CommandTable::from_command_reply(&reply));
    let state = with_state.then(|| {
        let state = RelayState::new(StateSettings {
            depth: DEFAULT_STATE_DEPTH,
            bytes: DEFAULT_STATE_BYTES,
            allow: vec!["perf:*".to_string()],
            history_bytes,
        });
        state.begin_full_sync(REPLID, 0);
        // The empty dataset's RDB: version 9, end of file, no checksum.
        let mut rdb = b"REDIS0009".to_vec();
        rdb.push(0xFF);
        rdb.extend([0; 8]);
        state.load(&rdb);
        state.finish_full_sync();
        // Applied on its thread as the relay does; unbounded here (the stream is in memory already), and waited
        // for before the time is taken.
        StateFeed::start(Arc::new(state), usize::MAX)
    });
    let state = state.transpose()?;
    let backlog = Backlog::new(DEFAULT_BACKLOG_BYTES);
    backlog.restart(REPLID, 0);
    let allow = Allow::new(&["perf:*".to_string()]);
    let sink = Sink {
        backlog: &backlog,
        state: state.as_ref(),
        allow: Some(&allow),
    };
    let metrics = LinkMetrics::default();
    // The write profile (`/profile`), which `serve` always keeps.
    let profile = WriteProfile::new(
        Arc::new(Allow::new(&["perf:*".to_string()])),
        ProfileSettings {
            window: DEFAULT_WINDOW,
            hidden_prefixes: Vec::new(),
        },
    );
    let mut profile = profile.link();
    let mut reader = StreamReader::new(table, 0, MAX_HELD_COMMAND, 512 << 20);
    if !fast {
        reader = reader.without_fast_path();
    }
    let mut buf = BytesMut::with_capacity(BLOCK);
    let mut getacks = Vec::new();
    let began = Instant::now();
    for read in stream.chunks(BLOCK) {
        buf.extend_from_slice(read);
        reader.read(&mut buf, &mut |output| {
            apply(output, sink, &metrics, Some(&mut profile), &mut getacks)
        })?;
    }
    if let Some(state) = state {
        state.finish();
    }
    let seconds = began.elapsed().as_secs_f64();
    println!(
        "RESULT {{\"bench\":\"ingest path\",\"state\":{with_state},\"bytes\":{},\"seconds\":{seconds:.4},\"mb_per_s\":{:.1}}}",
        reader.offset(),
        reader.offset() as f64 / seconds / 1e6
    );
    Ok(())
}
