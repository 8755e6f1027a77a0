//! The RDB reader against what Redis itself answers: a real `redis-server` (7.0 writes RDB 10) is filled with
//! every encoding it produces — small and large variants of each type so that both compact and plain encodings
//! appear, compressible and integer strings, TTLs, several databases, a stream with consumer groups and pending
//! entries, a function library — then `SAVE`d. The dump, read by `replicast rdb` (JSON Lines), and each key's
//! `DUMP` payload, read by `decode_dump`, must agree with `TYPE`, `PEXPIRETIME`, `GET`, `LRANGE`, `SMEMBERS`,
//! `ZRANGE … WITHSCORES`, `HGETALL`, `XRANGE`, `XINFO` and `XPENDING` for every key.

mod canon;
mod data;
#[path = "../support/ports.rs"]
mod ports;
mod redis_view;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use replicast_rdb::{decode_dump, RdbReader, ReaderOptions};
use serde_json::Value as Json;

use crate::canon::{json_key, sorted, EventModel, KeyCanon};
use crate::data::{fill, keys_by_db, LIBRARY};
use crate::ports::free_port;
use crate::redis_view::{bytes, query, redis_view};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A temporary folder removed when the test ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start_redis(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-server must be installed");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let proc = Proc(child);
    lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("Ready to accept connections"))
        .expect("redis-server did not start");
    std::thread::spawn(move || lines.for_each(drop));
    (proc, port)
}

fn run_rdb_command(file: &Path, extra: &[&str]) -> Vec<Json> {
    run_rdb_output(file, extra)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn run_rdb_output(file: &Path, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_replicast"))
        .arg("rdb")
        .arg(file)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replicast rdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn dumps_and_dump_payloads_agree_with_what_redis_answers() {
    let dir = TempDir(std::env::temp_dir().join(format!("replicast-rdb-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let (_redis, port) = start_redis(&dir.0);
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut con = client.get_connection().unwrap();
    fill(&mut con);
    query(&mut con, &[b"SAVE"]);
    let file = dir.0.join("dump.rdb");

    let keys = keys_by_db(&mut con);
    assert!(keys.len() >= 25, "{} keys", keys.len());
    let mut expected = BTreeMap::new();
    for (db, key) in &keys {
        query(&mut con, &[b"SELECT", db.to_string().as_bytes()]);
        expected.insert((*db, key.clone()), redis_view(&mut con, *db, key));
    }

    // The file, through `replicast rdb`.
    let lines = run_rdb_command(&file, &[]);
    let mut printed = BTreeMap::new();
    for line in &lines {
        let k = json_key(line);
        printed.insert((k.db, k.key.clone()), k);
    }
    assert_eq!(
        printed.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (id, want) in &expected {
        assert_eq!(
            &printed[id],
            want,
            "replicast rdb, key {:?}",
            String::from_utf8_lossy(&id.1)
        );
    }

    // The file, through the library in small chunks; and the function library.
    let rdb = std::fs::read(&file).unwrap();
    let mut model = EventModel::default();
    let mut reader = RdbReader::new();
    for chunk in rdb.chunks(1000) {
        reader.push(chunk, |e| model.on(e)).unwrap();
    }
    reader.finish().unwrap();
    assert_eq!(model.functions, vec![LIBRARY.as_bytes().to_vec()]);
    // Every encoding Redis 7.0 writes appeared (so that none of the comparisons above passed by omission).
    let seen: Vec<&str> = model.encodings.iter().map(String::as_str).collect();
    assert_eq!(
        seen,
        [
            "HashListpack",
            "HashTable",
            "HashTableSet",
            "Intset",
            "Quicklist2",
            "SkipListZSet2",
            "StreamListpacks2",
            "String",
            "ZSetListpack"
        ]
    );
    assert_eq!(model.keys.len(), expected.len());
    for k in &model.keys {
        assert_eq!(
            &expected[&(k.db, k.key.clone())],
            k,
            "library, key {:?}",
            String::from_utf8_lossy(&k.key)
        );
    }

    // Each key's DUMP payload, through the same code.
    for ((db, key), want) in &expected {
        query(&mut con, &[b"SELECT", db.to_string().as_bytes()]);
        let payload = bytes(&query(&mut con, &[b"DUMP", key]));
        let mut model = EventModel::default();
        decode_dump(&payload, ReaderOptions::default(), |e| model.on(e)).unwrap();
        let [got] = &model.keys[..] else {
            panic!("one key per DUMP, got {}", model.keys.len())
        };
        let want = KeyCanon {
            db: 0,
            key: Vec::new(),
            expire_ms: None,
            ..want.clone()
        };
        assert_eq!(got, &want, "DUMP of {:?}", String::from_utf8_lossy(key));
        if payload.len() <= 4096 {
            for cut in 0..payload.len() {
                assert!(
                    decode_dump(&payload[..cut], ReaderOptions::default(), |_| {}).is_err(),
                    "{:?} cut at {cut}",
                    String::from_utf8_lossy(key)
                );
            }
        }
        let mut flipped = payload.clone();
        let at = flipped.len() - 1;
        flipped[at] ^= 0x5a;
        assert!(decode_dump(&flipped, ReaderOptions::default(), |_| {}).is_err());
    }
}

#[test]
fn filters_choose_keys_by_glob_type_and_db() {
    let dir =
        TempDir(std::env::temp_dir().join(format!("replicast-rdb-filter-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let (_redis, port) = start_redis(&dir.0);
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut con = client.get_connection().unwrap();
    fill(&mut con);
    query(&mut con, &[b"SAVE"]);
    let file = dir.0.join("dump.rdb");
    let names = |lines: &[Json]| -> Vec<String> {
        sorted(
            lines
                .iter()
                .map(|l| l["key"].as_str().unwrap().to_string())
                .collect(),
        )
    };
    assert_eq!(
        names(&run_rdb_command(&file, &["--key", "hash:*"])),
        ["hash:big", "hash:longvalue", "hash:small"]
    );
    assert_eq!(
        names(&run_rdb_command(&file, &["--type", "stream"])),
        ["stream:empty", "stream:s"]
    );
    assert_eq!(
        names(&run_rdb_command(&file, &["--db", "3", "--db", "9"])),
        ["db3:hash", "db3:key", "db9:list"]
    );
    assert_eq!(
        names(&run_rdb_command(
            &file,
            &["--db", "0", "--type", "list", "--key", "*:small"]
        )),
        ["list:small"]
    );

    // Standard input gives the same lines as the file.
    let from_stdin = Command::new(env!("CARGO_BIN_EXE_replicast"))
        .args(["rdb", "-"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(from_stdin.status.success());
    assert_eq!(
        String::from_utf8(from_stdin.stdout).unwrap(),
        run_rdb_output(&file, &[])
    );

    // A truncated file is an error that names the offset, after the keys before it.
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.0.join("cut.rdb");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_replicast"))
        .arg("rdb")
        .arg(&cut)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the input ended while expecting"),
        "{stderr}"
    );
    assert!(!out.stdout.is_empty());

    let stats: Json =
        serde_json::from_str(&run_rdb_output(&file, &["--stats", "--top", "3"])).unwrap();
    assert_eq!(stats["rdb_version"], 10);
    assert_eq!(stats["functions"], 1);
    assert_eq!(stats["dbs"]["3"]["hash"]["keys"], 1);
    assert_eq!(stats["biggest_keys"].as_array().unwrap().len(), 3);
    assert_eq!(stats["biggest_keys"][0]["key"], "list:big");
}

#[test]
fn module_values_print_their_module_and_no_value() {
    // Redis 7.0 has no module to write one: a file built byte by byte, with a module value skipped through its
    // opcodes (UINT 5, then EOF).
    let charset = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let id = "mymodule1".bytes().fold(0u64, |id, c| {
        (id << 6) | charset.iter().position(|&x| x == c).unwrap() as u64
    }) << 10
        | 3;
    let mut rdb = b"REDIS0009".to_vec();
    rdb.extend([0xfe, 0x00, 7, 1, b'm', 0x81]);
    rdb.extend(id.to_be_bytes());
    rdb.extend([2, 5, 0, 0xff]);
    rdb.extend([0u8; 8]);
    let dir =
        TempDir(std::env::temp_dir().join(format!("replicast-rdb-module-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("module.rdb");
    std::fs::write(&file, &rdb).unwrap();
    let lines = run_rdb_command(&file, &[]);
    assert_eq!(
        lines,
        [serde_json::json!({
            "db": 0, "key": "m", "type": "module", "expire_ms": null,
            "module": "mymodule1", "module_id": id.to_string(), "value": null
        })]
    );
}
