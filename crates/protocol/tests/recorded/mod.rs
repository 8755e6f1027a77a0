//! The workloads behind the recorded streams in `crates/protocol/tests/data/`, and what Redis propagates to its replicas
//! for each command sent: verbatim where Redis propagates verbatim, otherwise the command it rewrites it to
//! (`EXPIRE` → `PEXPIREAT`, `SET … EX` → `SET … PXAT`, `INCRBYFLOAT` → `SET … KEEPTTL`, `SPOP` → `SREM`,
//! `XADD *` → a concrete id).
//!
//! Shared by `crates/protocol/tests/recorded_streams.rs` (the committed recordings, natively and in wasm), the
//! assembler's replay of the `types-*` recordings, and `server/tests/recorded_streams.rs` (recording afresh from a
//! live `redis-server`), so all compare what was recorded with what was sent in the same way.
#![allow(dead_code)]

/// One argument of an expected propagated command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// Exactly these bytes.
    Lit(Vec<u8>),
    /// A Unix time in milliseconds, which Redis computes when it rewrites a relative expiry.
    Millis,
    /// A stream entry id, `<ms>-<seq>`, which Redis picks for `XADD … *`.
    StreamId,
    /// Whatever Redis chose (e.g. the member `SPOP` removed).
    Any,
}

/// One command sent to the primary, in database `db`, and the commands Redis propagates for it.
#[derive(Debug, Clone)]
pub struct Step {
    pub db: u32,
    pub send: Vec<Vec<u8>>,
    pub propagated: Vec<Vec<Arg>>,
}

fn args(words: &[&[u8]]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.to_vec()).collect()
}

fn lits(words: &[Vec<u8>]) -> Vec<Arg> {
    words.iter().cloned().map(Arg::Lit).collect()
}

/// Sent and propagated verbatim.
fn same(db: u32, words: &[&[u8]]) -> Step {
    let send = args(words);
    Step {
        db,
        propagated: vec![lits(&send)],
        send,
    }
}

/// Sent, but not propagated (a read, a `SELECT`, or a write that changed nothing).
fn unpropagated(db: u32, words: &[&[u8]]) -> Step {
    Step {
        db,
        send: args(words),
        propagated: Vec::new(),
    }
}

/// Sent, and propagated as `propagated`.
fn rewritten(db: u32, words: &[&[u8]], propagated: Vec<Arg>) -> Step {
    Step {
        db,
        send: args(words),
        propagated: vec![propagated],
    }
}

fn lit(word: &[u8]) -> Arg {
    Arg::Lit(word.to_vec())
}

/// A collector's sample, ~130 bytes of JSON, as the monitoring example writes them (deterministic).
pub fn sample_json(i: u64) -> String {
    let mix = i.wrapping_mul(2_654_435_761) % 10_000;
    format!(
        r#"{{"id":"s{i}","host":"host{}","cpu":{{"user":{}.{:02},"sys":{}.{:02}}},"mem":{},"net":{{"rx":{},"tx":{}}},"load":{}.{:02}}}"#,
        i % 8,
        mix % 60,
        mix % 100,
        mix % 20,
        (mix / 7) % 100,
        4_000_000_000 + mix * 1_000_003,
        mix * 977,
        mix * 613,
        mix % 8,
        mix % 97,
    )
}

/// `count` ZADDs from 8 hosts, as the monitoring example's collectors send them.
pub fn zadd_workload(count: u64) -> Vec<Step> {
    (0..count)
        .map(|i| {
            let key = format!("perf:host{}", i % 8);
            let ms = (1_700_000_000_000 + i * 250).to_string();
            same(
                0,
                &[
                    b"ZADD",
                    key.as_bytes(),
                    ms.as_bytes(),
                    sample_json(i).as_bytes(),
                ],
            )
        })
        .collect()
}

/// Strings, hashes, lists, sets, sorted sets and streams, `MULTI`/`EXEC`, expiries, deletes, and other
/// databases.
pub fn mixed_workload() -> Vec<Step> {
    let binary: &[u8] = b"bin\r\n\x00\xff*1\r\n$3\r\n";
    vec![
        same(0, &[b"SET", b"str:1", b"hello"]),
        same(0, &[b"SET", b"str:bin", binary]),
        same(0, &[b"APPEND", b"str:1", b" world"]),
        unpropagated(0, &[b"GET", b"str:1"]),
        same(0, &[b"INCR", b"counter"]),
        same(0, &[b"INCRBY", b"counter", b"41"]),
        rewritten(
            0,
            &[b"INCRBYFLOAT", b"float", b"1.5"],
            vec![lit(b"SET"), lit(b"float"), lit(b"1.5"), lit(b"KEEPTTL")],
        ),
        same(0, &[b"MSET", b"m:a", b"1", b"m:b", b"2"]),
        rewritten(
            0,
            &[b"SET", b"str:ttl", b"v", b"EX", b"1000"],
            vec![
                lit(b"SET"),
                lit(b"str:ttl"),
                lit(b"v"),
                lit(b"PXAT"),
                Arg::Millis,
            ],
        ),
        rewritten(
            0,
            &[b"EXPIRE", b"str:1", b"1000"],
            vec![lit(b"PEXPIREAT"), lit(b"str:1"), Arg::Millis],
        ),
        same(0, &[b"PERSIST", b"str:1"]),
        same(0, &[b"HSET", b"h", b"f1", b"v1", b"f2", b"v2"]),
        same(0, &[b"HINCRBY", b"h", b"n", b"3"]),
        same(0, &[b"HDEL", b"h", b"f1"]),
        same(0, &[b"LPUSH", b"l", b"a", b"b", b"c"]),
        same(0, &[b"RPUSH", b"l", b"d\r\ne"]),
        same(0, &[b"LPOP", b"l"]),
        same(0, &[b"LTRIM", b"l", b"0", b"1"]),
        same(0, &[b"SADD", b"s", b"a", b"b", b"c"]),
        same(0, &[b"SREM", b"s", b"a"]),
        rewritten(0, &[b"SPOP", b"s"], vec![lit(b"SREM"), lit(b"s"), Arg::Any]),
        same(0, &[b"ZADD", b"z", b"1", b"a", b"2", b"b"]),
        same(0, &[b"ZINCRBY", b"z", b"5", b"a"]),
        same(0, &[b"ZREM", b"z", b"b"]),
        same(0, &[b"XADD", b"st", b"1-1", b"f", b"v"]),
        rewritten(
            0,
            &[b"XADD", b"st", b"*", b"cpu", b"12.5"],
            vec![
                lit(b"XADD"),
                lit(b"st"),
                Arg::StreamId,
                lit(b"cpu"),
                lit(b"12.5"),
            ],
        ),
        same(0, &[b"XDEL", b"st", b"1-1"]),
        Step {
            db: 0,
            send: args(&[b"MULTI"]),
            propagated: vec![lits(&args(&[b"MULTI"]))],
        },
        unpropagated(0, &[b"SET", b"tx:1", b"a"]),
        unpropagated(0, &[b"INCR", b"counter"]),
        Step {
            db: 0,
            send: args(&[b"EXEC"]),
            propagated: vec![
                lits(&args(&[b"SET", b"tx:1", b"a"])),
                lits(&args(&[b"INCR", b"counter"])),
                lits(&args(&[b"EXEC"])),
            ],
        },
        unpropagated(0, &[b"SELECT", b"2"]),
        same(2, &[b"SET", b"db2:k", b"v"]),
        same(2, &[b"HSET", b"db2:h", b"f", b"v"]),
        unpropagated(2, &[b"SELECT", b"9"]),
        same(9, &[b"ZADD", b"perf:db9", b"1", b"x"]),
        unpropagated(9, &[b"SELECT", b"0"]),
        same(0, &[b"DEL", b"str:1", b"l"]),
        unpropagated(0, &[b"DEL", b"no-such-key"]),
        same(0, &[b"UNLINK", b"h"]),
    ]
}

/// Whether `recorded` (the stream's commands, in order) is what `steps` propagate: after dropping `PING`s and
/// `REPLCONF`s, and taking each `SELECT` as the database of the commands after it. `Err` says where it differs.
pub fn compare(recorded: &[Vec<Vec<u8>>], steps: &[Step]) -> Result<(), String> {
    let expected: Vec<(u32, &Vec<Arg>)> = steps
        .iter()
        .flat_map(|s| s.propagated.iter().map(move |p| (s.db, p)))
        .collect();
    let mut db: Option<u32> = None;
    let mut next = 0;
    for (i, command) in recorded.iter().enumerate() {
        let name = command.first().map(|n| n.to_ascii_uppercase());
        match name.as_deref() {
            Some(b"PING") | Some(b"REPLCONF") => continue,
            Some(b"SELECT") => {
                db = command
                    .get(1)
                    .and_then(|d| std::str::from_utf8(d).ok())
                    .and_then(|d| d.parse().ok());
                continue;
            }
            _ => {}
        }
        let shown = || {
            format!(
                "{:?}",
                command
                    .iter()
                    .map(|a| String::from_utf8_lossy(a))
                    .collect::<Vec<_>>()
            )
        };
        let Some((want_db, want)) = expected.get(next) else {
            return Err(format!("recorded command {i} {} was never sent", shown()));
        };
        if db != Some(*want_db) {
            return Err(format!(
                "recorded command {i} {} ran in db {db:?}, sent to db {want_db}",
                shown()
            ));
        }
        if !matches(command, want) {
            return Err(format!(
                "recorded command {i} {} is not the expected {want:?}",
                shown()
            ));
        }
        next += 1;
    }
    if next < expected.len() {
        return Err(format!(
            "{} propagated commands missing, first {:?}",
            expected.len() - next,
            expected[next]
        ));
    }
    Ok(())
}

fn matches(command: &[Vec<u8>], want: &[Arg]) -> bool {
    let number = |a: &[u8]| !a.is_empty() && a.iter().all(u8::is_ascii_digit);
    command.len() == want.len()
        && command.iter().zip(want).all(|(arg, want)| match want {
            Arg::Lit(bytes) => arg == bytes,
            Arg::Millis => number(arg) && arg.len() == 13,
            Arg::StreamId => arg.split(|&b| b == b'-').map(number).eq([true, true]),
            Arg::Any => true,
        })
}
pub mod types;
