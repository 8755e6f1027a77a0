//! The saved view (`StreamAssembler::save_view` / `restore_view`): windows of every type survive the round trip
//! exactly (and go on following the stream the same), and a record that is truncated, corrupted, hostile or made for
//! another subscription is refused with an error, never a panic, leaving the assembler fresh.

use replicast_assembler::assembler::SavedViewError;
use replicast_assembler::{ItemView, Outcome, StreamAssembler, WatchConfig};
use replicast_protocol::wire;

const EPOCH: &str = "8f3a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f70";

fn resp(commands: &[&[&str]]) -> Vec<u8> {
    let mut out = Vec::new();
    for args in commands {
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in *args {
            out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
    }
    out
}

fn watch(window: usize) -> WatchConfig {
    WatchConfig {
        patterns: vec![b"w:*".to_vec()],
        db: 0,
        window,
    }
}

/// An assembler that joined at offset 100 with a snapshot, then applied `commands` from there; returns it and
/// the offset its stream reached.
fn following(window: usize, snapshot: &[&[&str]], commands: &[&[&str]]) -> (StreamAssembler, u64) {
    let mut a = StreamAssembler::new(watch(window));
    a.push_message(&wire::encode_hello(EPOCH, 100)).unwrap();
    a.push_message(&wire::encode_snapshot(100, &resp(snapshot)))
        .unwrap();
    let bytes = resp(commands);
    a.push_message(&wire::encode_commands(100, &bytes)).unwrap();
    let offset = 100 + bytes.len() as u64;
    (a, offset)
}

/// Everything a page can read of the windows, item ids left out (a restored window numbers its items anew).
fn view(a: &StreamAssembler) -> Vec<String> {
    a.windows()
        .map(|(key, w)| {
            let items: Vec<String> = w
                .items_newest_first()
                .map(|item| match item {
                    ItemView::Member { member, score, .. } => format!("{member:?}={score}"),
                    ItemView::Entry { entry, fields, .. } => format!("{entry} {fields:?}"),
                    ItemView::ListItem { value, .. } => format!("{value:?}"),
                    ItemView::Field {
                        field,
                        value,
                        previous,
                        ..
                    } => format!("{field:?}={value:?} {previous:?}"),
                    ItemView::Value {
                        value, previous, ..
                    } => format!("{value:?} {previous:?}"),
                })
                .collect();
            format!(
                "{} {:?} complete={} stale={} ttl={:?} shard={} {items:?}",
                String::from_utf8_lossy(key),
                w.kind(),
                w.complete(),
                w.stale(),
                w.expires_at_ms(),
                w.shard()
            )
        })
        .collect()
}

fn every_type() -> (StreamAssembler, u64) {
    following(
        4,
        &[
            &["DEL", "w:z"],
            &["ZADD", "w:z", "1", "a", "2", "b", "3", "c", "4", "d"],
            &["DEL", "w:s"],
            &["XADD", "w:s", "5-1", "cpu", "3"],
        ],
        &[
            &["SELECT", "0"],
            &["ZADD", "w:z", "5", "e", "-inf", "f"],
            &["XADD", "w:s", "6-0", "cpu", "4", "mem", "9"],
            &["RPUSH", "w:l", "x", "y", "z"],
            &["LPUSH", "w:l", "w"],
            &["HSET", "w:h", "f1", "1", "f2", "2"],
            &["HSET", "w:h", "f1", "11"],
            &["HSET", "w:h", "f1", "111", "f3", "3"],
            &["SET", "w:str", "one"],
            &["SET", "w:str", "two"],
            &["SET", "w:str", "three"],
            &["PEXPIREAT", "w:str", "4102444800000"],
            &["ZADD", "other", "1", "unwatched"],
        ],
    )
}

#[test]
fn every_type_survives_the_round_trip_and_follows_the_stream_the_same_afterwards() {
    let (a, offset) = every_type();
    let saved = a
        .save_view()
        .expect("a joined assembler has a view to save");
    let mut b = StreamAssembler::new(watch(4));
    b.restore_view(&saved).unwrap();
    assert_eq!(view(&b), view(&a));
    assert_eq!(b.positions(), vec![(0, EPOCH.to_string(), offset)]);
    assert_eq!(
        b.save_view().as_deref(),
        Some(saved.as_slice()),
        "saved again, the same bytes"
    );

    // The relay resumes at the saved offset: the windows stay, and the same commands change both alike.
    let mut a = a;
    for x in [&mut a, &mut b] {
        let joined = x.push_message(&wire::encode_hello(EPOCH, offset)).unwrap();
        assert!(matches!(
            joined,
            Outcome::Joined {
                continuous: true,
                ..
            }
        ));
    }
    let more = resp(&[
        &["ZREM", "w:z", "e"],
        &["XADD", "w:s", "7-0", "cpu", "5"],
        &["LPOP", "w:l"],
        &["HDEL", "w:h", "f2"],
        &["SET", "w:str", "four"],
    ]);
    for x in [&mut a, &mut b] {
        x.push_message(&wire::encode_commands(offset, &more))
            .unwrap();
    }
    assert_eq!(view(&b), view(&a));
    assert_eq!(b.take_topups(), a.take_topups());
}

#[test]
fn stale_windows_and_unknown_keys_ask_for_their_top_ups_again() {
    let (mut a, offset) = following(
        3,
        &[
            &["DEL", "w:z"],
            &["ZADD", "w:z", "1", "a", "2", "b", "3", "c"],
        ],
        &[&["ZREM", "w:z", "c"], &["ZUNIONSTORE", "w:u", "1", "w:z"]],
    );
    let mut topups = a.take_topups();
    topups.sort();
    assert_eq!(topups, [b"w:u".to_vec(), b"w:z".to_vec()]);
    let mut b = StreamAssembler::new(watch(3));
    b.restore_view(&a.save_view().unwrap()).unwrap();
    assert_eq!(view(&b), view(&a));
    assert!(b.window(b"w:z").unwrap().stale());
    let mut again = b.take_topups();
    again.sort();
    assert_eq!(again, topups);
    assert_eq!(b.unknown_keys().collect::<Vec<_>>(), [b"w:u"]);
    assert_eq!(b.offset(), offset);
}

#[test]
fn a_relay_that_cannot_continue_clears_the_restored_windows() {
    let (a, offset) = every_type();
    let mut b = StreamAssembler::new(watch(4));
    b.restore_view(&a.save_view().unwrap()).unwrap();
    let joined = b
        .push_message(&wire::encode_hello("another-epoch-after-a-restart", 7))
        .unwrap();
    assert!(matches!(
        joined,
        Outcome::Joined {
            continuous: false,
            ..
        }
    ));
    assert_eq!(b.windows().count(), 0);
    // Same epoch, but the backlog moved past the saved offset: a fresh snapshot too.
    let mut c = StreamAssembler::new(watch(4));
    c.restore_view(&a.save_view().unwrap()).unwrap();
    let joined = c
        .push_message(&wire::encode_hello(EPOCH, offset + 1000))
        .unwrap();
    assert!(matches!(
        joined,
        Outcome::Joined {
            continuous: false,
            ..
        }
    ));
    assert_eq!(c.windows().count(), 0);
}

#[test]
fn nothing_to_save_before_a_hello() {
    assert_eq!(StreamAssembler::new(watch(4)).save_view(), None);
}

#[test]
fn a_view_of_another_subscription_or_into_a_used_assembler_is_refused() {
    let (a, _) = every_type();
    let saved = a.save_view().unwrap();
    for other in [
        watch(5),
        WatchConfig { db: 1, ..watch(4) },
        WatchConfig {
            patterns: vec![b"w:*".to_vec(), b"x".to_vec()],
            ..watch(4)
        },
    ] {
        let mut b = StreamAssembler::new(other);
        assert_eq!(b.restore_view(&saved), Err(SavedViewError::OtherWatch));
        assert_eq!(b.windows().count(), 0);
        assert!(b.positions().is_empty());
    }
    let (mut used, _) = every_type();
    assert_eq!(used.restore_view(&saved), Err(SavedViewError::NotFresh));
}

/// Refused, and the assembler left fresh: no windows, no positions, no top-ups.
fn refused(saved: &[u8]) -> SavedViewError {
    let mut b = StreamAssembler::new(watch(4));
    let err = b.restore_view(saved).expect_err("a bad record is refused");
    assert_eq!(b.windows().count(), 0);
    assert!(b.positions().is_empty());
    assert!(b.take_topups().is_empty());
    err
}

#[test]
fn every_truncation_and_every_flipped_byte_is_refused() {
    let (a, _) = every_type();
    let saved = a.save_view().unwrap();
    for len in 0..saved.len() {
        refused(&saved[..len]);
    }
    for at in 0..saved.len() {
        let mut bad = saved.clone();
        bad[at] ^= 0x20;
        let err = refused(&bad);
        if at >= 5 {
            assert_eq!(err, SavedViewError::Checksum, "byte {at}");
        }
    }
    assert_eq!(refused(b"{\"json\":1}"), SavedViewError::NotASavedView);
    let mut future = saved.clone();
    future[4] = 2;
    assert_eq!(refused(&future), SavedViewError::Version(2));
}

/// A record as a hostile page could write it: any body, with its checksum right.
fn sealed(body: &[u8]) -> Vec<u8> {
    use std::hash::Hasher;
    let mut record = b"RCVW\x01".to_vec();
    record.extend_from_slice(body);
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(&record);
    record.extend_from_slice(&hasher.finish().to_le_bytes());
    record
}

/// The watch (db 0, window 4, `w:*`) and one stream at offset 9, as the start of a hostile body.
fn head() -> Vec<u8> {
    let mut body = vec![0, 4, 1, 3];
    body.extend_from_slice(b"w:*");
    body.extend_from_slice(&[1, 0, 2]);
    body.extend_from_slice(b"ep");
    body.extend_from_slice(&[9, 0]);
    body
}

fn expected(err: SavedViewError) -> &'static str {
    match err {
        SavedViewError::Malformed { expected, .. } => expected,
        other => panic!("not a malformed record: {other}"),
    }
}

#[test]
fn hostile_records_with_a_right_checksum_are_refused_by_what_they_break() {
    let with = |tail: &[u8]| {
        let mut body = head();
        body.extend_from_slice(tail);
        sealed(&body)
    };
    // No unknown keys, one zset window `w:a`, then its members.
    let zset = |members: &[u8]| {
        let mut tail = vec![0, 1, 3];
        tail.extend_from_slice(b"w:a");
        tail.extend_from_slice(&[0, 0, 0]);
        tail.extend_from_slice(members);
        with(&tail)
    };
    let member = |score: f64, name: &[u8]| {
        let mut m = score.to_le_bytes().to_vec();
        m.push(name.len() as u8);
        m.extend_from_slice(name);
        m
    };
    let valid = zset(&[&[1u8][..], &member(1.0, b"m")].concat());
    StreamAssembler::new(watch(4)).restore_view(&valid).unwrap();

    let five: Vec<u8> = std::iter::once(5u8)
        .chain((0..5u8).flat_map(|i| member(f64::from(i), &[b'a' + i])))
        .collect();
    assert_eq!(
        expected(refused(&zset(&five))),
        "the number of members (at most the window)"
    );
    let twice = [&[2u8][..], &member(1.0, b"m"), &member(2.0, b"m")].concat();
    assert_eq!(expected(refused(&zset(&twice))), "each member once");
    let nan = [&[1u8][..], &member(f64::NAN, b"m")].concat();
    assert_eq!(expected(refused(&zset(&nan))), "a score that is a number");
    let past_the_end = [&[1u8][..], &1f64.to_le_bytes(), &[200]].concat();
    assert_eq!(expected(refused(&zset(&past_the_end))), "a member");

    let mut unwatched = vec![0, 1, 5];
    unwatched.extend_from_slice(b"other");
    assert_eq!(
        expected(refused(&with(&unwatched))),
        "a key the watched patterns match"
    );
    let mut foreign_shard = vec![0, 1, 3];
    foreign_shard.extend_from_slice(b"w:a");
    foreign_shard.extend_from_slice(&[0, 0, 3, 0]);
    assert_eq!(
        expected(refused(&with(&foreign_shard))),
        "the shard of a stream the view holds"
    );
    let mut bad_kind = vec![0, 1, 3];
    bad_kind.extend_from_slice(b"w:a");
    bad_kind.extend_from_slice(&[9, 0, 0]);
    assert_eq!(
        expected(refused(&with(&bad_kind))),
        "a window's type (0 to 4)"
    );
    // A stream whose ids go back, a list longer in the window than in Redis.
    let mut backwards = vec![0, 1, 3];
    backwards.extend_from_slice(b"w:a");
    backwards.extend_from_slice(&[1, 0, 0, 0, 2, 5, 0, 0, 4, 0, 0]);
    assert_eq!(
        expected(refused(&with(&backwards))),
        "entry ids in increasing order"
    );
    let mut short = vec![0, 1, 3];
    short.extend_from_slice(b"w:a");
    short.extend_from_slice(&[2, 0, 0, 2, 2, 1, b'x', 1, b'y']);
    assert_eq!(
        expected(refused(&with(&short))),
        "a length in Redis no shorter than the window"
    );
    // Counts that promise more than the record holds are refused before anything is allocated for them.
    assert_eq!(
        expected(refused(&with(&[0xff, 0xff, 0xff, 0xff, 0x0f]))),
        "the number of unknown keys"
    );
    let mut trailing = vec![0, 0];
    trailing.push(0);
    assert_eq!(
        expected(refused(&with(&trailing))),
        "the checksum after the last window"
    );
}

#[test]
fn random_bodies_with_a_right_checksum_never_panic() {
    // A fixed xorshift, so that a failure reproduces.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut body = head();
        let len = (next() % 64) as usize;
        body.extend((0..len).map(|_| {
            // Mostly small numbers, as counts and lengths are.
            let r = next();
            if r % 4 == 0 {
                r as u8
            } else {
                (r % 6) as u8
            }
        }));
        let mut b = StreamAssembler::new(watch(4));
        if b.restore_view(&sealed(&body)).is_err() {
            assert_eq!(b.windows().count(), 0);
        }
    }
}
