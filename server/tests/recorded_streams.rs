//! Recording real replication streams: `replicast record` follows a real `redis-server` while a workload runs,
//! and the parser must find in the file exactly the commands that were sent (as Redis propagates them), with the
//! offsets Redis reports, for any split of the file.
//!
//! The `types-*` workloads (`crates/protocol/tests/recorded/types.rs`) use every command the assembler's windows follow;
//! for them the test also reads Redis's own answers for every watched key at the end (`ZRANGE key -N -1
//! WITHSCORES`, `XREVRANGE key + - COUNT N`, `LRANGE key -N -1`, `HGETALL`, `GET`, written as a snapshot: `DEL
//! key` then `ZADD`/`XADD`/`RPUSH`/`HSET`/`SET`) and replays the recording through a StreamAssembler, whose windows
//! must equal those answers (after the top-ups they asked for).
//!
//! `REPLICAST_UPDATE_TEST_DATA=1 cargo test -p replicast-server --test recorded_streams` also writes the
//! recordings to `crates/protocol/tests/data/` (`<name>.resp`, `<name>.offset`, and `<name>.expected` for the `types-*`
//! ones), where `crates/protocol/tests/recorded_streams.rs` and `crates/assembler/tests/recorded_windows.rs` check them without a
//! Redis, natively and in Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use replicast_protocol::resp::CommandReader;

#[path = "../../crates/protocol/tests/recorded/mod.rs"]
mod recorded;

#[path = "../../crates/assembler/tests/assembled/mod.rs"]
mod assembled;

use recorded::types::{Op, PATTERN, WINDOW};
use recorded::Step;

mod support;

use support::{start_redis, start_until};

fn master_repl_offset(conn: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("replication").query(conn).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("master_repl_offset in INFO")
}

/// What `replicast record` captured: the file's bytes and the replication offset of its first byte.
struct Recording {
    bytes: Vec<u8>,
    start: u64,
}

/// Records the stream of `steps` sent to a fresh Redis, until the file holds everything Redis propagated.
fn record(steps: &[Step], out: &Path) -> Recording {
    record_with(out, |conn| {
        for step in steps {
            send(conn, &step.send);
        }
    })
    .0
}

fn send(conn: &mut redis::Connection, args: &[Vec<u8>]) {
    let mut cmd = redis::cmd(std::str::from_utf8(&args[0]).unwrap());
    for arg in &args[1..] {
        cmd.arg(&arg[..]);
    }
    let _: redis::Value = cmd.query(conn).expect("the workload runs");
}

/// Records what `workload` makes a fresh Redis propagate; returns the recording and what `workload` returned.
fn record_with<T>(
    out: &Path,
    workload: impl FnOnce(&mut redis::Connection) -> T,
) -> (Recording, T) {
    let (_redis, port) = start_redis();
    let url = format!("redis://127.0.0.1:{port}");
    let (mut recorder, line) = start_until(
        Command::new(env!("CARGO_BIN_EXE_replicast"))
            .args(["record", "--redis-url", &url, "--out"])
            .arg(out)
            .env("RUST_LOG", "warn"),
        "recording epoch ",
    );
    let start: u64 = line
        .rsplit(' ')
        .next()
        .and_then(|o| o.parse().ok())
        .expect("the start offset");

    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let result = workload(&mut conn);

    let end = master_repl_offset(&mut conn);
    let deadline = Instant::now() + Duration::from_secs(20);
    while start + std::fs::metadata(out).map_or(0, |m| m.len()) < end {
        assert!(
            Instant::now() < deadline,
            "the recording from offset {start} did not reach offset {end}: {} bytes",
            std::fs::metadata(out).map_or(0, |m| m.len())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGTERM, so that it flushes and exits cleanly.
    // SAFETY: kill only sends a signal to the recorder, a child process of this test.
    unsafe { libc::kill(recorder.0.id() as i32, libc::SIGTERM) };
    assert!(recorder.0.wait().unwrap().success());
    let bytes = std::fs::read(out).unwrap();
    assert_eq!(
        start + bytes.len() as u64,
        end,
        "the file ends at Redis's offset"
    );
    (Recording { bytes, start }, result)
}

type Parsed = Vec<(Vec<Vec<u8>>, u64, u64)>;

fn parse(pieces: &[&[u8]], start: u64) -> Parsed {
    let mut reader = CommandReader::new(start);
    let mut out = Vec::new();
    for piece in pieces {
        reader
            .push(piece, |c| {
                out.push((c.args.iter().map(|a| a.to_vec()).collect(), c.start, c.end))
            })
            .expect("the recorded stream parses");
    }
    assert_eq!(reader.pending_len(), 0, "the recording ends on a command");
    out
}

fn check_recording(name: &str, steps: &[Step]) {
    let dir =
        std::env::temp_dir().join(format!("replicast-recorded-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.resp"));
    let Recording { bytes, start } = record(steps, &file);

    let commands = parse(&[&bytes], start);
    let mut at = start;
    for (_, from, to) in &commands {
        assert_eq!(*from, at, "commands are contiguous");
        at = *to;
    }
    assert_eq!(at, start + bytes.len() as u64);
    for size in [1, 7, 64, 1000, 4096] {
        let pieces: Vec<&[u8]> = bytes.chunks(size).collect();
        assert_eq!(parse(&pieces, start), commands, "chunks of {size} bytes");
    }
    let args: Vec<Vec<Vec<u8>>> = commands.into_iter().map(|(a, _, _)| a).collect();
    if let Err(diff) = recorded::compare(&args, steps) {
        panic!("{name}: {diff}");
    }

    if std::env::var_os("REPLICAST_UPDATE_TEST_DATA").is_some() {
        let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/protocol/tests/data");
        std::fs::write(data.join(format!("{name}.resp")), &bytes).unwrap();
        std::fs::write(data.join(format!("{name}.offset")), format!("{start}\n")).unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_zadd_workload_is_recorded_exactly() {
    check_recording("zadd", &recorded::zadd_workload(250));
}

#[test]
fn a_mixed_workload_is_recorded_as_redis_propagates_it() {
    check_recording("mixed", &recorded::mixed_workload());
}

/// Runs `ops`, then reads Redis's answers for every watched key, as a snapshot (see the header).
fn run_and_read(conn: &mut redis::Connection, ops: &[Op]) -> Vec<u8> {
    for op in ops {
        match op {
            Op::Cmd(args) => send(conn, args),
            Op::Sleep(ms) => std::thread::sleep(Duration::from_millis(*ms)),
        }
    }
    let _: () = redis::cmd("SELECT").arg(0).query(conn).unwrap();
    let mut keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg(PATTERN).query(conn).unwrap();
    keys.sort();
    let n = WINDOW as i64;
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key[..]).query(conn).unwrap();
        let mut command: Vec<Vec<u8>> = Vec::new();
        let mut entries: Vec<Vec<Vec<u8>>> = Vec::new();
        match kind.as_str() {
            "zset" => {
                let flat: Vec<Vec<u8>> = redis::cmd("ZRANGE")
                    .arg(&key[..])
                    .arg(-n)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query(conn)
                    .unwrap();
                command = vec![b"ZADD".to_vec(), key.clone()];
                for pair in flat.chunks_exact(2) {
                    command.extend([pair[1].clone(), pair[0].clone()]);
                }
            }
            "list" => {
                let items: Vec<Vec<u8>> = redis::cmd("LRANGE")
                    .arg(&key[..])
                    .arg(-n)
                    .arg(-1)
                    .query(conn)
                    .unwrap();
                command = vec![b"RPUSH".to_vec(), key.clone()];
                command.extend(items);
            }
            "hash" => {
                let flat: Vec<Vec<u8>> = redis::cmd("HGETALL").arg(&key[..]).query(conn).unwrap();
                command = vec![b"HSET".to_vec(), key.clone()];
                command.extend(flat);
            }
            "string" => {
                let value: Vec<u8> = redis::cmd("GET").arg(&key[..]).query(conn).unwrap();
                command = vec![b"SET".to_vec(), key.clone(), value];
            }
            "stream" => {
                let value: redis::Value = redis::cmd("XREVRANGE")
                    .arg(&key[..])
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(n)
                    .query(conn)
                    .unwrap();
                let redis::Value::Array(list) = value else {
                    panic!("XREVRANGE: {value:?}")
                };
                if list.is_empty() {
                    // An empty stream exists: the relay's snapshots say so this way.
                    command = vec![
                        b"XTRIM".to_vec(),
                        key.clone(),
                        b"MAXLEN".to_vec(),
                        b"0".to_vec(),
                    ];
                }
                for entry in list.into_iter().rev() {
                    let (id, fields): (Vec<u8>, Vec<Vec<u8>>) =
                        redis::from_redis_value(entry).unwrap();
                    let mut xadd = vec![b"XADD".to_vec(), key.clone(), id];
                    xadd.extend(fields);
                    entries.push(xadd);
                }
            }
            other => panic!("no window for type {other}"),
        }
        out.extend(assembled::resp(&[&b"DEL"[..], &key]));
        if command.len() > 2 {
            out.extend(assembled::resp(&command));
        }
        for entry in entries {
            out.extend(assembled::resp(&entry));
        }
    }
    out
}

#[test]
fn every_type_workload_replays_into_windows_equal_to_redis() {
    for (name, ops) in recorded::types::workloads() {
        let dir =
            std::env::temp_dir().join(format!("replicast-recorded-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{name}.resp"));
        let (Recording { bytes, start }, expected) =
            record_with(&file, |conn| run_and_read(conn, &ops));
        for (per_segment, per_message) in [(1, 1), (3, 2), (1000, 1)] {
            assembled::replay::replay(
                &bytes,
                start,
                &expected,
                PATTERN,
                WINDOW,
                per_segment,
                per_message,
            );
        }
        if std::env::var_os("REPLICAST_UPDATE_TEST_DATA").is_some() {
            let data =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/protocol/tests/data");
            std::fs::write(data.join(format!("{name}.resp")), &bytes).unwrap();
            std::fs::write(data.join(format!("{name}.offset")), format!("{start}\n")).unwrap();
            std::fs::write(data.join(format!("{name}.expected")), &expected).unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
