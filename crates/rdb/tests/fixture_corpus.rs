//! Every RDB file of the RDB fixture corpus (the folder `$RDB_FIXTURES` names; run with
//! `cargo test -p replicast-rdb --features fixture-corpus --test fixture_corpus`) parses, in one piece and in many chunkings alike, and what it holds agrees with the golden `.json` beside it: keys, types,
//! databases, expiries and values. The two deliberately corrupt files give clear errors.
//!
//! Deliberate differences from the golden files (see docs/RDB.md): they print non-UTF-8 bytes lossily (we compare
//! against the lossy form); they list deleted stream entries (we skip them, as `XRANGE` does); a hash field with no
//! expiry is `0` there and `None` here; `memory_regex.json` is a filtered view of `memory.rdb` and is not compared.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use replicast_rdb::{Checksum, Element, Event, RdbError, RdbReader, ReaderOptions, Value};
use serde_json::{json, Value as Json};

/// The corpus's folder, from `$RDB_FIXTURES`: it is not part of the repository, so this test is built only with
/// the `fixture-corpus` feature and told where the corpus is.
fn fixtures() -> PathBuf {
    let Some(dir) = std::env::var_os("RDB_FIXTURES").map(PathBuf::from) else {
        panic!("RDB_FIXTURES is not set: point it at the RDB fixture corpus (the folder holding hdt3213/ and redis-assets/)");
    };
    assert!(
        dir.join("hdt3213").is_dir() && dir.join("redis-assets").is_dir(),
        "the RDB fixture corpus is missing from RDB_FIXTURES={}: expected its hdt3213/ and redis-assets/ folders there",
        dir.display()
    );
    dir
}

fn rdb_files(sub: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rdb"))
        .collect();
    files.sort();
    files
}

fn lossy(v: &Value<'_>) -> String {
    String::from_utf8_lossy(&v.to_vec()).into_owned()
}

/// A key as the golden files describe it.
#[derive(Debug, Default)]
struct Key {
    db: u64,
    name: String,
    kind: String,
    expire_ms: Option<i64>,
    value: Json,
}

#[derive(Debug, Default)]
struct Parsed {
    keys: Vec<Key>,
    aux: Vec<(String, String)>,
    functions: Vec<String>,
    skipped_empty: usize,
    checksum: Option<Checksum>,
    log: Vec<String>,
}

/// Builds the golden-file view of a file from the reader's events.
fn parse_chunked(bytes: &[u8], chunk: usize) -> Result<Parsed, RdbError> {
    let mut reader = RdbReader::new();
    let mut out = Parsed::default();
    let mut group: Option<Json> = None;
    for piece in bytes.chunks(chunk.max(1)) {
        reader.push(piece, |event| {
            out.log.push(format!("{event:?}"));
            match event {
                Event::Aux { key, value } => out.aux.push((lossy(&key), lossy(&value))),
                Event::Function { code } => out.functions.push(lossy(&code)),
                Event::SkippedEmptyKey { .. } => out.skipped_empty += 1,
                Event::Eof { checksum } => out.checksum = Some(checksum),
                Event::KeyStart(k) => {
                    let kind = k.value_type.name().to_string();
                    let value = match kind.as_str() {
                        "string" => Json::Null,
                        "hash" => json!({"hash": {}, "expire": {}}),
                        "stream" => json!({"msgs": [], "groups": []}),
                        _ => json!([]),
                    };
                    out.keys.push(Key {
                        db: k.db,
                        name: String::from_utf8_lossy(k.key).into_owned(),
                        kind,
                        expire_ms: k.expire_ms,
                        value,
                    });
                }
                Event::Element(e) => {
                    let key = out.keys.last_mut().expect("an element after a key start");
                    let v = &mut key.value;
                    match e {
                        Element::String(s) => *v = json!(lossy(&s)),
                        Element::ListItem(s) | Element::SetMember(s) => {
                            v.as_array_mut().unwrap().push(json!(lossy(&s)))
                        }
                        Element::ZSetMember { member, score } => {
                            v.as_array_mut().unwrap().push(json!([lossy(&member), score]))
                        }
                        Element::HashField { field, value, expire_ms } => {
                            v["hash"][lossy(&field)] = json!(lossy(&value));
                            v["expire"][lossy(&field)] = json!(expire_ms.unwrap_or(0));
                        }
                        Element::StreamEntry { id, fields } => {
                            let map: serde_json::Map<String, Json> =
                                fields.iter().map(|(f, x)| (lossy(f), json!(lossy(x)))).collect();
                            v["msgs"].as_array_mut().unwrap().push(json!({"id": id.to_string(), "fields": map}));
                        }
                        Element::StreamMeta(m) => {
                            v["len"] = json!(m.length);
                            v["lastId"] = json!(m.last_id.to_string());
                            if let Some(id) = m.first_id {
                                v["firstId"] = json!(id.to_string());
                            }
                            if let Some(id) = m.max_deleted_id {
                                v["maxDeletedId"] = json!(id.to_string());
                            }
                            if let Some(n) = m.entries_added {
                                v["addedEntriesCount"] = json!(n);
                            }
                        }
                        Element::StreamGroup { name, last_id, entries_read, .. } => {
                            if let Some(g) = group.take() {
                                v["groups"].as_array_mut().unwrap().push(g);
                            }
                            let mut g = json!({"name": lossy(&name), "lastId": last_id.to_string(), "pending": [], "consumers": []});
                            if let Some(n) = entries_read {
                                g["entriesRead"] = json!(n);
                            }
                            group = Some(g);
                        }
                        Element::StreamGroupPending { id, delivery_time_ms, delivery_count } => {
                            let g = group.as_mut().unwrap();
                            g["pending"].as_array_mut().unwrap().push(json!({"id": id.to_string(), "deliveryTime": delivery_time_ms, "deliveryCount": delivery_count}));
                        }
                        Element::StreamConsumer { name, seen_time_ms, active_time_ms, .. } => {
                            let g = group.as_mut().unwrap();
                            let mut c = json!({"name": lossy(&name), "seenTime": seen_time_ms, "pending": []});
                            // The golden files give the seen time as the active time of streams before v3.
                            c["activeTime"] = json!(active_time_ms.unwrap_or(seen_time_ms));
                            g["consumers"].as_array_mut().unwrap().push(c);
                        }
                        Element::StreamConsumerPending { id } => {
                            let g = group.as_mut().unwrap();
                            let c = g["consumers"].as_array_mut().unwrap().last_mut().unwrap();
                            c["pending"].as_array_mut().unwrap().push(json!(id.to_string()));
                        }
                    }
                }
                Event::KeyEnd { .. } => {
                    if let Some(g) = group.take() {
                        let key = out.keys.last_mut().unwrap();
                        key.value["groups"].as_array_mut().unwrap().push(g);
                    }
                }
                _ => {}
            }
        })?;
    }
    reader.finish()?;
    Ok(out)
}

fn parse(bytes: &[u8]) -> Result<Parsed, RdbError> {
    parse_chunked(bytes, bytes.len())
}

/// `2022-12-25T18:11:12.573+08:00` as Unix milliseconds.
fn rfc3339_ms(text: &str) -> i64 {
    let (date, rest) = text.split_once('T').unwrap();
    let mut d = date.split('-').map(|p| p.parse::<i64>().unwrap());
    let (y, m, day) = (d.next().unwrap(), d.next().unwrap(), d.next().unwrap());
    let tz_at = rest.rfind(['+', '-']).filter(|&i| i > 0);
    let (time, tz) = match (rest.strip_suffix('Z'), tz_at) {
        (Some(t), _) => (t, "+00:00"),
        (None, Some(i)) => (&rest[..i], &rest[i..]),
        (None, None) => (rest, "+00:00"),
    };
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next().unwrap().parse::<i64>().unwrap(),
        t.next().unwrap().parse::<i64>().unwrap(),
    );
    let secs: f64 = t.next().unwrap().parse().unwrap();
    let sign = if tz.starts_with('-') { -1 } else { 1 };
    let (th, tm) = tz[1..].split_once(':').unwrap();
    let offset_min = sign * (th.parse::<i64>().unwrap() * 60 + tm.parse::<i64>().unwrap());
    // Days from the civil date (proleptic Gregorian).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    ((days * 24 + hh) * 60 + mm - offset_min) * 60_000 + (secs * 1000.0).round() as i64
}

fn as_str(j: &Json) -> String {
    match j {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn sorted(values: &[Json]) -> Vec<String> {
    let mut v: Vec<String> = values.iter().map(as_str).collect();
    v.sort();
    v
}

fn compare_key(file: &str, golden: &Json, ours: &Key) {
    let name = &ours.name;
    let ctx = format!("{file}: key {name:?}");
    assert_eq!(golden["type"].as_str().unwrap(), ours.kind, "{ctx}: type");
    assert_eq!(golden["db"].as_u64().unwrap(), ours.db, "{ctx}: db");
    let expire = golden
        .get("expiration")
        .and_then(Json::as_str)
        .map(rfc3339_ms);
    assert_eq!(expire, ours.expire_ms, "{ctx}: expiry");
    let v = &ours.value;
    match ours.kind.as_str() {
        "string" => assert_eq!(golden["value"], *v, "{ctx}"),
        "list" => assert_eq!(golden["values"], *v, "{ctx}"),
        "set" => assert_eq!(
            sorted(golden["members"].as_array().unwrap()),
            sorted(v.as_array().unwrap()),
            "{ctx}"
        ),
        "zset" => {
            let mut g: Vec<(String, f64)> = golden["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (as_str(&e["member"]), e["score"].as_f64().unwrap()))
                .collect();
            let mut o: Vec<(String, f64)> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (as_str(&e[0]), e[1].as_f64().unwrap()))
                .collect();
            g.sort_by(|a, b| a.partial_cmp(b).unwrap());
            o.sort_by(|a, b| a.partial_cmp(b).unwrap());
            assert_eq!(g, o, "{ctx}");
        }
        "hash" => {
            assert_eq!(golden["hash"], v["hash"], "{ctx}: fields");
            if let Some(expire) = golden.get("expire") {
                assert_eq!(*expire, v["expire"], "{ctx}: field expiries");
            }
        }
        "stream" => {
            let golden_msgs: Vec<Json> = golden["entries"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|node| node["msgs"].as_array().unwrap().iter())
                .filter(|m| m["deleted"] != json!(true))
                .map(|m| json!({"id": m["id"], "fields": m["fields"]}))
                .collect();
            assert_eq!(Json::Array(golden_msgs), v["msgs"], "{ctx}: entries");
            for field in [
                "len",
                "lastId",
                "firstId",
                "maxDeletedId",
                "addedEntriesCount",
            ] {
                if let Some(g) = golden.get(field) {
                    assert_eq!(*g, v[field], "{ctx}: {field}");
                }
            }
            let mut golden_groups = golden.get("groups").cloned().unwrap_or(json!([]));
            // The golden files leave out empty lists.
            for g in golden_groups.as_array_mut().unwrap() {
                for list in ["pending", "consumers"] {
                    if g.get(list).is_none() {
                        g[list] = json!([]);
                    }
                }
                for c in g["consumers"].as_array_mut().unwrap() {
                    if c.get("pending").is_none() {
                        c["pending"] = json!([]);
                    }
                }
            }
            assert_eq!(golden_groups, v["groups"], "{ctx}: groups");
        }
        other => panic!("{ctx}: unexpected type {other}"),
    }
}

fn compare_with_golden(path: &Path, parsed: &Parsed) {
    let golden_path = path.with_extension("json");
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let Ok(text) = std::fs::read_to_string(&golden_path) else {
        return;
    };
    let golden: Json = serde_json::from_str(&text).unwrap();
    let golden = golden.as_array().cloned().unwrap_or_default();
    let mut by_key: BTreeMap<(u64, String), &Key> = BTreeMap::new();
    for k in &parsed.keys {
        by_key.insert((k.db, k.name.clone()), k);
    }
    let mut golden_keys = 0;
    for g in &golden {
        match g["type"].as_str().unwrap() {
            "aux" => {
                let pair = (as_str(&g["key"]), as_str(&g["value"]));
                assert!(
                    parsed.aux.contains(&pair),
                    "{file}: aux {pair:?} in {:?}",
                    parsed.aux
                );
            }
            "functions" => {
                let code = g["functionsLua"].as_str().unwrap().to_string();
                assert!(
                    parsed.functions.contains(&code),
                    "{file}: function {code:?}"
                );
            }
            _ => {
                golden_keys += 1;
                let db = g["db"].as_u64().unwrap();
                let name = as_str(&g["key"]);
                let ours = by_key
                    .get(&(db, name.clone()))
                    .unwrap_or_else(|| panic!("{file}: key {name:?} of db {db} not found"));
                compare_key(&file, g, ours);
            }
        }
    }
    assert_eq!(golden_keys, parsed.keys.len(), "{file}: number of keys");
}

#[test]
fn every_fixture_parses_and_agrees_with_its_golden_file() {
    let mut checked = 0;
    for sub in ["hdt3213", "redis-assets"] {
        for path in rdb_files(sub) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("corrupt_") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let parsed = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(parsed.checksum.is_some(), "{name}: no EOF");
            compare_with_golden(&path, &parsed);
            checked += 1;
        }
    }
    assert!(checked >= 45, "only {checked} fixtures found");
}

#[test]
fn every_chunking_gives_the_same_events() {
    for sub in ["hdt3213", "redis-assets"] {
        for path in rdb_files(sub) {
            let bytes = std::fs::read(&path).unwrap();
            let whole = parse(&bytes);
            for chunk in [1, 2, 3, 7, 64, 1000] {
                let split = parse_chunked(&bytes, chunk);
                match (&whole, &split) {
                    (Ok(a), Ok(b)) => {
                        assert_eq!(a.log, b.log, "{} in chunks of {chunk}", path.display())
                    }
                    (Err(a), Err(b)) => assert_eq!(a, b, "{} in chunks of {chunk}", path.display()),
                    _ => panic!(
                        "{}: whole {:?} vs chunks of {chunk}: {:?}",
                        path.display(),
                        whole.is_ok(),
                        split.is_ok()
                    ),
                }
            }
        }
    }
}

#[test]
fn checksums_are_verified() {
    let path = fixtures().join("hdt3213/rdb_version_5_with_checksum.rdb");
    let mut bytes = std::fs::read(path).unwrap();
    assert!(matches!(
        parse(&bytes).unwrap().checksum,
        Some(Checksum::Verified(_))
    ));
    // A flipped bit in a value is caught by the trailer.
    let at = bytes.len() - 12;
    bytes[at] ^= 0x01;
    match parse(&bytes) {
        Err(RdbError::Checksum { .. }) => {}
        Err(RdbError::Encoding { .. } | RdbError::Unexpected { .. }) => {}
        other => panic!("expected an error, got {:?}", other.map(|p| p.checksum)),
    }
    let file = std::fs::read(fixtures().join("hdt3213/rdb_version_5_with_checksum.rdb")).unwrap();
    let mut wrong = file.clone();
    let last = wrong.len() - 1;
    wrong[last] ^= 0xff;
    let err = parse(&wrong).unwrap_err();
    assert!(matches!(err, RdbError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
}

#[test]
fn the_corrupt_ziplist_is_a_clear_error() {
    let bytes = std::fs::read(fixtures().join("redis-assets/corrupt_ziplist.rdb")).unwrap();
    let err = parse(&bytes).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("RDB offset "), "{text}");
    assert!(text.contains("expected"), "{text}");
}

#[test]
fn empty_keys_are_skipped_as_redis_does() {
    let bytes = std::fs::read(fixtures().join("redis-assets/corrupt_empty_keys.rdb")).unwrap();
    let parsed = parse(&bytes).unwrap();
    assert!(parsed.keys.is_empty(), "{:?}", parsed.keys);
    assert_eq!(parsed.skipped_empty, 9);
}

#[test]
fn functions_modules_and_versions() {
    let parsed = parse(&std::fs::read(fixtures().join("hdt3213/function.rdb")).unwrap()).unwrap();
    assert_eq!(parsed.functions.len(), 1);
    let parsed =
        parse(&std::fs::read(fixtures().join("redis-assets/scriptbackup.rdb")).unwrap()).unwrap();
    assert!(
        parsed.aux.iter().any(|(k, _)| k == "lua"),
        "{:?}",
        parsed.aux
    );
    let mut newer = std::fs::read(fixtures().join("hdt3213/set_listpack.rdb")).unwrap();
    newer[5..9].copy_from_slice(b"0013");
    let err = parse(&newer).unwrap_err();
    assert!(err.to_string().contains("RDB version 13 is newer"), "{err}");
    // Best effort reads it as the newest known version (the checksum covers the header, so it is off here).
    let last = newer.len() - 8;
    newer[last..].fill(0);
    let mut reader = RdbReader::with_options(ReaderOptions {
        best_effort: true,
        ..ReaderOptions::default()
    });
    let mut members = 0;
    reader
        .push(&newer, |e| {
            if let Event::Element(Element::SetMember(_)) = e {
                members += 1;
            }
        })
        .unwrap();
    reader.finish().unwrap();
    assert_eq!(members, 4);
}

#[test]
fn truncation_at_every_byte_is_an_error_not_a_panic() {
    for name in [
        "hdt3213/stream_listoacks_3.rdb",
        "hdt3213/listpack.rdb",
        "redis-assets/encodings.rdb",
    ] {
        let bytes = std::fs::read(fixtures().join(name)).unwrap();
        for cut in 0..bytes.len() {
            match parse(&bytes[..cut]) {
                Err(err @ RdbError::Truncated { offset, .. }) => {
                    let text = err.to_string();
                    assert_eq!(offset, cut as u64, "{name} cut at {cut}: {text}");
                    assert!(
                        text.starts_with(&format!(
                            "RDB offset {cut}: the input ended while expecting "
                        )),
                        "{name} cut at {cut}: {text}"
                    );
                }
                Err(other) => panic!("{name} cut at {cut}: {other}"),
                Ok(_) => panic!("{name} cut at {cut} parsed"),
            }
        }
    }
}

#[test]
fn every_single_bit_flip_is_an_error_naming_its_offset() {
    // Files with a checksum, so that a flip inside a value is caught even where the value still parses.
    for name in [
        "hdt3213/rdb_version_5_with_checksum.rdb",
        "hdt3213/listpack.rdb",
    ] {
        let bytes = std::fs::read(fixtures().join(name)).unwrap();
        let original = parse(&bytes).unwrap();
        assert!(
            matches!(original.checksum, Some(Checksum::Verified(_))),
            "{name}"
        );
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[at] ^= 1 << bit;
                match parse(&flipped) {
                    Err(err) => {
                        let text = err.to_string();
                        let offset: u64 = text
                            .strip_prefix("RDB offset ")
                            .and_then(|t| t.split(':').next())
                            .and_then(|n| n.parse().ok())
                            .unwrap_or_else(|| panic!("{name}, byte {at} bit {bit}: {text}"));
                        assert!(offset <= bytes.len() as u64, "{name}: {text}");
                    }
                    // Only a version digit turned older than RDB 5, which has no checksum: the same keys, and the
                    // 8 bytes that were the checksum left after the end, for the caller.
                    Ok(parsed) => {
                        assert!(
                            (5..9).contains(&at),
                            "{name}: byte {at} bit {bit} went unnoticed"
                        );
                        assert!(
                            matches!(parsed.checksum, Some(Checksum::Absent)),
                            "{name}: byte {at} bit {bit}"
                        );
                        assert_eq!(
                            format!("{:?}", parsed.keys),
                            format!("{:?}", original.keys),
                            "{name}: byte {at} bit {bit}"
                        );
                    }
                }
            }
        }
    }
}
