//! The project's own RDB files: `writer/` writes every RDB version (`REDIS0001` to `REDIS0012`, and `VALKEY080`)
//! with every string, list, set, sorted set and hash encoding each version's Redis wrote (hashes with field expiry
//! in version 12 and Valkey's), streams of versions 1 to 3, module values and aux data, aux fields, expiries in
//! seconds and milliseconds, several databases with their sizes, function libraries, and the checksum on and off.
//! The files are committed under `tests/fixtures/` and must be what the writer writes today
//! (`REPLICAST_WRITE_RDB_FIXTURES=1 cargo test -p replicast-rdb --test written` writes them again); each must read
//! back, pushed whole and in chunks of 1 and 7 bytes, as exactly what was written; and random values in random
//! layouts must too (proptest). Real dumps of Redis 7.0 are read in `server/tests/rdb_redis`.
#![cfg(not(target_arch = "wasm32"))]

mod samples;
mod spec;
mod strategies;
mod writer;

use std::path::PathBuf;

use proptest::prelude::*;
use replicast_rdb::{Checksum, Flavor, RdbReader};

use samples::fixture;
use spec::{as_read, read_back, Expiry, KeySpec, Spec};
use strategies::{data, LAYOUTS};
use writer::{Layout, VALKEY_VERSION};

/// Every committed fixture: its file name and what it holds.
fn fixtures() -> Vec<(String, Spec)> {
    let mut all: Vec<(String, Spec)> = (1..=12)
        .map(|v| {
            (
                format!("redis-v{v:02}.rdb"),
                fixture(Flavor::Redis, v, true),
            )
        })
        .collect();
    all.push((
        "redis-v12-checksum-off.rdb".to_string(),
        fixture(Flavor::Redis, 12, false),
    ));
    all.push((
        format!("valkey-v{VALKEY_VERSION}.rdb"),
        fixture(Flavor::Valkey, VALKEY_VERSION, true),
    ));
    all
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn committed_fixtures_are_what_the_writer_writes() {
    let dir = fixtures_dir();
    let rewrite = std::env::var_os("REPLICAST_WRITE_RDB_FIXTURES").is_some();
    let mut names = Vec::new();
    for (name, spec) in fixtures() {
        let written = spec.write();
        if rewrite {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(&name), &written).unwrap();
        }
        let committed = std::fs::read(dir.join(&name)).unwrap_or_else(|e| {
            panic!("tests/fixtures/{name}: {e} (REPLICAST_WRITE_RDB_FIXTURES=1 writes it)")
        });
        assert!(
            committed == written,
            "tests/fixtures/{name} is not what the writer writes now (REPLICAST_WRITE_RDB_FIXTURES=1 writes it again)"
        );
        names.push(name);
    }
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    names.sort();
    assert_eq!(
        present, names,
        "tests/fixtures holds exactly the writer's files"
    );
}

#[test]
fn every_fixture_reads_back_as_written() {
    for (name, spec) in fixtures() {
        let file = std::fs::read(fixtures_dir().join(&name)).unwrap();
        let expected = as_read(spec).expected(&file);
        assert!(
            expected.keys.len() >= 8,
            "{name}: {} keys",
            expected.keys.len()
        );
        for chunk in [file.len(), 1, 7] {
            assert_eq!(
                read_back(&file, chunk),
                expected,
                "{name} in chunks of {chunk}"
            );
        }
    }
}

#[test]
fn a_flipped_byte_in_a_checksummed_fixture_is_a_checksum_error() {
    let mut file = std::fs::read(fixtures_dir().join("redis-v12.rdb")).unwrap();
    // The first aux value's last byte: the file still parses, and only the checksum can tell.
    let at = file.windows(11).position(|w| w == b"255.255.255").unwrap() + 10;
    file[at] = b'6';
    let mut reader = RdbReader::new();
    let error = reader.push(&file, |_| {}).unwrap_err().to_string();
    assert!(error.contains("checksum mismatch"), "{error}");
    let mut off = std::fs::read(fixtures_dir().join("redis-v12-checksum-off.rdb")).unwrap();
    let at = off.windows(11).position(|w| w == b"255.255.255").unwrap() + 10;
    off[at] = b'6';
    let read = read_back(&off, off.len());
    assert_eq!(read.checksum, Some(Checksum::Disabled));
    assert_eq!(read.aux[0].1, b"255.255.256");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random values in random layouts of a random version read back as written, whatever the chunking.
    #[test]
    fn random_values_read_back_as_written(
        (flavor, version) in prop_oneof![
            (1u32..=12).prop_map(|v| (Flavor::Redis, v)),
            Just((Flavor::Valkey, VALKEY_VERSION)),
        ],
        checksum in any::<bool>(),
        values in proptest::collection::vec((data(), any::<prop::sample::Index>(), any::<Option<i64>>()), 1..8),
        chunk in 1usize..64,
    ) {
        // A value with no layout in the version (a stream before 9) is left out.
        let keys: Vec<KeySpec> = values
            .into_iter()
            .enumerate()
            .filter_map(|(i, (data, pick, expire))| {
                let fitting: Vec<Layout> = LAYOUTS
                    .into_iter()
                    .filter(|l| l.written_by(flavor, version) && l.fits(&data))
                    .collect();
                (!fitting.is_empty()).then(|| KeySpec {
                    name: format!("key:{i}").into_bytes(),
                    layout: *pick.get(&fitting),
                    data,
                    expiry: expire.map(Expiry::Millis),
                })
            })
            .collect();
        let spec = as_read(Spec { flavor, version, checksum, aux: Vec::new(), functions: Vec::new(), module_aux: Vec::new(), dbs: vec![(0, true, keys)] });
        let file = spec.write();
        prop_assert_eq!(read_back(&file, chunk), spec.expected(&file));
    }
}
