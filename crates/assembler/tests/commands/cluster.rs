//! A relay following a Redis Cluster: one stream per shard in shard envelopes, each with its own epoch and
//! offsets, and windows that only their home shard's stream changes (slot migrations converge through top-ups).

use replicast_assembler::assembler::AssemblerError;
use replicast_assembler::{Outcome, StreamAssembler, WatchConfig};
use replicast_protocol::wire::{
    encode_commands, encode_hello, encode_hello_continuing, encode_shard, encode_snapshot,
    push_segment,
};

use crate::assembled::{canon, check_mirror, stream, Mirror};

/// An assembler fed shard envelopes, with each shard's next offset.
struct Cluster {
    a: StreamAssembler<Mirror>,
    offsets: Vec<u64>,
}

impl Cluster {
    /// Watching `*`, window 5; shards `0..epochs.len()` say hello with `epochs[i]` at offset `1000 * (i + 1)`.
    fn new(epochs: &[&str]) -> Cluster {
        let a = StreamAssembler::with_observer(
            WatchConfig {
                patterns: vec![b"*".to_vec()],
                db: 0,
                window: 5,
            },
            Mirror::default(),
        );
        let mut c = Cluster {
            a,
            offsets: Vec::new(),
        };
        for (shard, epoch) in epochs.iter().enumerate() {
            let offset = 1000 * (shard as u64 + 1);
            c.hello(shard as u16, &encode_hello(epoch, offset));
            c.offsets.push(offset);
        }
        c
    }

    fn hello(&mut self, shard: u16, hello: &[u8]) -> Outcome {
        let outcome = self.a.push_message(&encode_shard(shard, hello)).unwrap();
        check_mirror(&self.a);
        outcome
    }

    /// Applies commands as one message of `shard`'s stream, at its next offset.
    fn run(&mut self, shard: u16, commands: &[&[&str]]) -> Outcome {
        let bytes = stream(commands);
        let at = &mut self.offsets[usize::from(shard)];
        let message = encode_shard(shard, &encode_commands(*at, &bytes));
        *at += bytes.len() as u64;
        let outcome = self.a.push_message(&message).unwrap();
        check_mirror(&self.a);
        outcome
    }

    /// A snapshot in `shard`'s stream at its current offset.
    fn snapshot(&mut self, shard: u16, commands: &[&[&str]]) {
        let at = self.offsets[usize::from(shard)];
        let message = encode_shard(shard, &encode_snapshot(at, &stream(commands)));
        self.a.push_message(&message).unwrap();
        check_mirror(&self.a);
    }

    fn rows(&self, key: &str) -> Vec<String> {
        self.a
            .window(key.as_bytes())
            .map(|w| canon(w)[1..].to_vec())
            .unwrap_or_default()
    }

    fn home(&self, key: &str) -> Option<u16> {
        self.a.window(key.as_bytes()).map(|w| w.shard())
    }

    fn stale(&self, key: &str) -> bool {
        self.a.window(key.as_bytes()).is_some_and(|w| w.stale())
    }

    fn topups(&mut self) -> Vec<String> {
        self.a
            .take_topups()
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    }
}

#[test]
fn two_shards_interleave_each_with_its_own_epoch_and_offsets() {
    let mut c = Cluster::new(&["a", "b"]);
    c.run(0, &[&["ZADD", "z0", "1", "x"]]);
    c.run(1, &[&["ZADD", "z1", "1", "y"]]);
    c.run(0, &[&["ZADD", "z0", "2", "xx"]]);
    c.run(1, &[&["SELECT", "3"], &["ZADD", "z1", "5", "not-db0"]]);
    // Each shard's SELECT is its own.
    c.run(0, &[&["ZADD", "z0", "3", "xxx"]]);
    c.run(1, &[&["ZADD", "z1", "6", "still-db3"], &["SELECT", "0"]]);
    assert_eq!(c.rows("z0"), ["xxx 3", "xx 2", "x 1"]);
    assert_eq!(c.rows("z1"), ["y 1"]);
    assert_eq!((c.home("z0"), c.home("z1")), (Some(0), Some(1)));
    assert_eq!(
        c.a.epoch(),
        Some("a"),
        "shard 0's, for single-stream callers"
    );
    assert_eq!(c.a.offset(), c.offsets[0]);
    assert_eq!(
        c.a.positions(),
        [
            (0, "a".to_string(), c.offsets[0]),
            (1, "b".to_string(), c.offsets[1])
        ]
    );
}

#[test]
fn duplicates_and_overlaps_are_per_shard() {
    let mut c = Cluster::new(&["a", "b"]);
    let s = stream(&[&["ZADD", "z1", "1", "y"]]);
    let first = encode_shard(1, &encode_commands(2000, &s));
    c.a.push_message(&first).unwrap();
    assert_eq!(
        c.a.push_message(&first).unwrap(),
        Outcome::Applied {
            commands: 0,
            changed: false
        },
        "seen twice: skipped"
    );
    // Offset 2000 is far ahead in shard 0's stream, which is at 1000: no duplicate there.
    let zero = encode_shard(
        0,
        &encode_commands(1000, &stream(&[&["ZADD", "z0", "1", "x"]])),
    );
    assert!(matches!(
        c.a.push_message(&zero).unwrap(),
        Outcome::Applied { commands: 1, .. }
    ));
    let overlap = encode_shard(1, &encode_commands(2001, &s));
    let applied = 2000 + s.len() as u64;
    assert!(matches!(
        c.a.push_message(&overlap),
        Err(AssemblerError::Overlap { start: 2001, applied: a, .. }) if a == applied
    ));
    assert_eq!(c.a.diagnostics().overlaps, 1);
    assert_eq!(c.rows("z1"), ["y 1"]);
    assert_eq!(c.rows("z0"), ["x 1"]);
}

#[test]
fn a_shard_without_its_hello_is_refused_and_unwrapped_messages_are_shard_0() {
    let mut c = Cluster::new(&["a"]);
    let s = stream(&[&["ZADD", "z", "1", "x"]]);
    assert!(matches!(
        c.a.push_message(&encode_shard(1, &encode_commands(0, &s))),
        Err(AssemblerError::NoHello { shard: 1 })
    ));
    assert!(matches!(
        c.a.push_message(&encode_shard(7, &encode_snapshot(0, &s))),
        Err(AssemblerError::NoHello { shard: 7 })
    ));
    assert_eq!(
        AssemblerError::NoHello { shard: 7 }.to_string(),
        "commands or snapshot message for shard 7 before its hello"
    );
    c.a.push_message(&encode_commands(1000, &s)).unwrap();
    assert_eq!(c.rows("z"), ["x 1"]);
    assert_eq!(c.home("z"), Some(0));
    assert_eq!(
        c.a.positions(),
        [(0, "a".to_string(), 1000 + s.len() as u64)]
    );
}

#[test]
fn a_discontinuous_hello_clears_only_its_shards_windows() {
    let mut c = Cluster::new(&["a", "b"]);
    c.run(0, &[&["ZADD", "z0", "1", "x"]]);
    c.run(
        1,
        &[
            &["ZADD", "z1", "1", "y"],
            &["MULTI"],
            &["ZADD", "z1", "2", "lost"],
        ],
    );
    let outcome = c.hello(1, &encode_hello("b", 999_999));
    assert_eq!(
        outcome,
        Outcome::Joined {
            shard: 1,
            epoch: "b".to_string(),
            offset: 999_999,
            continuous: false
        }
    );
    assert!(c.rows("z1").is_empty());
    assert_eq!(c.rows("z0"), ["x 1"]);
    c.offsets[1] = 999_999;
    // The open MULTI went with the old stream: this applies at once.
    c.run(1, &[&["ZADD", "z1", "3", "new"]]);
    assert_eq!(c.rows("z1"), ["new 3"]);
    // A new epoch that does not continue the old one: the same.
    c.hello(0, &encode_hello_continuing("a2", "zzz", c.offsets[0]));
    assert!(c.rows("z0").is_empty());
    assert_eq!(c.rows("z1"), ["new 3"]);
}

#[test]
fn a_hello_continuing_the_previous_epoch_keeps_the_windows() {
    let mut c = Cluster::new(&["a", "b"]);
    c.run(1, &[&["ZADD", "z1", "1", "y"]]);
    c.run(0, &[&["ZADD", "z0", "1", "x"]]);
    // Same epoch, same offset: nothing missed.
    c.hello(1, &encode_hello("b", c.offsets[1]));
    // A failover: the promoted replica continues "b" as "b2".
    let outcome = c.hello(1, &encode_hello_continuing("b2", "b", c.offsets[1]));
    assert!(matches!(
        outcome,
        Outcome::Joined {
            shard: 1,
            continuous: true,
            ..
        }
    ));
    assert_eq!(c.rows("z1"), ["y 1"]);
    c.run(1, &[&["ZADD", "z1", "2", "yy"]]);
    assert_eq!(c.rows("z1"), ["yy 2", "y 1"]);
    assert_eq!(c.a.positions()[1], (1, "b2".to_string(), c.offsets[1]));
    // Continuing an epoch at another offset still misses something.
    c.hello(1, &encode_hello_continuing("b3", "b2", c.offsets[1] + 1));
    assert!(c.rows("z1").is_empty());
    assert_eq!(c.rows("z0"), ["x 1"]);
}

#[test]
fn a_mid_stream_hello_after_an_empty_last_segment_continues() {
    let mut c = Cluster::new(&["a", "b"]);
    let s = stream(&[&["ZADD", "z1", "1", "y"]]);
    // The relay filtered out frames up to 5000 and ended the batch with an empty segment there.
    let mut batch = encode_commands(2000, &s);
    push_segment(&mut batch, 5000, b"");
    c.a.push_message(&encode_shard(1, &batch)).unwrap();
    assert_eq!(c.a.positions()[1].2, 5000);
    c.hello(1, &encode_hello_continuing("b2", "b", 5000));
    assert_eq!(c.rows("z1"), ["y 1"]);
    c.offsets[1] = 5000;
    c.run(1, &[&["ZADD", "z1", "2", "yy"]]);
    assert_eq!(c.rows("z1"), ["yy 2", "y 1"]);
    // The same, unwrapped, on a relay following one Redis.
    let mut one = Cluster::new(&[]);
    one.a.push_message(&encode_hello("e", 0)).unwrap();
    let mut batch = encode_commands(0, &stream(&[&["ZADD", "z", "1", "x"]]));
    push_segment(&mut batch, 700, b"");
    one.a.push_message(&batch).unwrap();
    one.a
        .push_message(&encode_hello_continuing("e2", "e", 700))
        .unwrap();
    assert_eq!(one.rows("z"), ["x 1"]);
    assert_eq!(one.a.epoch(), Some("e2"));
}

#[test]
fn a_key_migrating_with_its_new_owners_frames_first_converges() {
    let mut c = Cluster::new(&["a", "b"]);
    c.snapshot(0, &[&["DEL", "k"], &["ZADD", "k", "1", "x", "2", "y"]]);
    assert_eq!(c.home("k"), Some(0));
    // Shard 1 imports the key (MIGRATE writes RESTORE-ASKING), before shard 0's DEL arrives.
    c.run(1, &[&["RESTORE-ASKING", "k", "0", "payload"]]);
    assert_eq!(c.rows("k"), ["y 2", "x 1"], "not applied");
    assert!(c.stale("k"));
    assert_eq!(c.topups(), ["k"]);
    // The top-up: the relay read k from shard 1 and put the snapshot in its stream.
    c.snapshot(
        1,
        &[&["DEL", "k"], &["ZADD", "k", "1", "x", "2", "y", "3", "z"]],
    );
    assert_eq!(c.rows("k"), ["z 3", "y 2", "x 1"]);
    assert_eq!(c.home("k"), Some(1));
    assert!(!c.stale("k"));
    // The old owner's late DEL does not remove it, but asks again.
    c.run(0, &[&["DEL", "k"]]);
    assert_eq!(c.rows("k"), ["z 3", "y 2", "x 1"]);
    assert!(c.stale("k"));
    assert_eq!(c.topups(), ["k"]);
    c.snapshot(
        1,
        &[&["DEL", "k"], &["ZADD", "k", "1", "x", "2", "y", "3", "z"]],
    );
    c.run(1, &[&["ZADD", "k", "4", "w"]]);
    assert_eq!(c.rows("k"), ["w 4", "z 3", "y 2", "x 1"]);
    assert!(!c.stale("k"));
    assert!(c.topups().is_empty());
}

#[test]
fn a_key_deleted_by_its_old_owner_before_the_top_up_stays_unknown() {
    let mut c = Cluster::new(&["a", "b"]);
    c.snapshot(0, &[&["DEL", "k"], &["ZADD", "k", "1", "x"]]);
    c.run(1, &[&["RESTORE-ASKING", "k", "0", "payload"]]);
    // Shard 0's DEL before the client took the top-up: the key lives on shard 1 now, state unknown.
    c.run(0, &[&["DEL", "k"]]);
    assert!(c.rows("k").is_empty());
    assert_eq!(c.topups(), ["k"]);
    c.run(1, &[&["ZADD", "k", "2", "y"]]);
    assert!(c.stale("k"), "a window that is not known complete");
    assert_eq!(c.home("k"), Some(1));
    c.snapshot(1, &[&["DEL", "k"], &["ZADD", "k", "1", "x", "2", "y"]]);
    assert_eq!(c.rows("k"), ["y 2", "x 1"]);
    assert!(!c.stale("k"));
}

#[test]
fn a_key_migrating_with_its_old_owners_del_first_converges() {
    let mut c = Cluster::new(&["a", "b"]);
    c.snapshot(0, &[&["DEL", "k"], &["ZADD", "k", "1", "x"]]);
    c.run(0, &[&["DEL", "k"]]);
    assert!(c.rows("k").is_empty());
    assert!(c.topups().is_empty());
    c.run(1, &[&["RESTORE-ASKING", "k", "0", "payload"]]);
    assert!(c.rows("k").is_empty());
    assert_eq!(c.topups(), ["k"], "unknown: a top-up is due");
    c.snapshot(1, &[&["DEL", "k"], &["ZADD", "k", "1", "x"]]);
    assert_eq!(c.rows("k"), ["x 1"]);
    assert_eq!(c.home("k"), Some(1));
    // A late DEL from the old owner does not remove it, but asks again.
    c.run(0, &[&["DEL", "k"]]);
    assert_eq!(c.rows("k"), ["x 1"]);
    assert!(c.stale("k"));
    assert_eq!(c.topups(), ["k"]);
    c.snapshot(1, &[&["DEL", "k"], &["ZADD", "k", "1", "x"]]);
    assert!(!c.stale("k"));
    assert_eq!(c.rows("k"), ["x 1"]);
}

#[test]
fn no_command_of_another_shard_changes_a_window() {
    let mut c = Cluster::new(&["a", "b"]);
    c.snapshot(
        0,
        &[
            &["DEL", "z", "s", "h"],
            &["ZADD", "z", "1", "x"],
            &["SET", "s", "v"],
            &["HSET", "h", "f", "1"],
        ],
    );
    let before: Vec<_> = ["z", "s", "h"].iter().map(|k| c.rows(k)).collect();
    c.run(
        1,
        &[
            &["ZADD", "z", "2", "y"],
            &["SET", "s", "other"],
            &["HINCRBY", "h", "f", "5"],
            &["PEXPIREAT", "z", "1"],
            &["UNLINK", "h"],
            &["ZUNIONSTORE", "z", "1", "q"],
            &["RENAME", "s", "s2"],
            &["COPY", "z", "z2"],
            &["RENAME", "fresh", "h"],
        ],
    );
    let after: Vec<_> = ["z", "s", "h"].iter().map(|k| c.rows(k)).collect();
    assert_eq!(after, before);
    assert!(c.a.window(b"z").unwrap().expires_at_ms().is_none());
    assert!(["z", "s", "h"].iter().all(|k| c.stale(k)));
    assert!(c.rows("s2").is_empty() && c.rows("z2").is_empty());
    assert_eq!(c.topups(), ["h", "s", "s2", "z", "z2"]);
    // Expiry by the clock is not a shard's: it drops the window wherever it lives.
    c.run(0, &[&["PEXPIREAT", "z", "10"]]);
    assert_eq!(c.a.tick(10), 1);
    assert!(c.rows("z").is_empty());
}

#[test]
fn a_flush_on_one_shard_leaves_the_others_windows() {
    let mut c = Cluster::new(&["a", "b"]);
    c.run(0, &[&["ZADD", "z0", "1", "x"]]);
    c.run(1, &[&["ZADD", "z1", "1", "y"], &["ZADD", "w1", "1", "y"]]);
    c.run(1, &[&["FLUSHALL"]]);
    assert!(c.rows("z1").is_empty() && c.rows("w1").is_empty());
    assert_eq!(c.rows("z0"), ["x 1"]);
    c.run(1, &[&["ZADD", "z1", "2", "yy"]]);
    c.run(0, &[&["FLUSHDB"]]);
    assert!(c.rows("z0").is_empty());
    assert_eq!(c.rows("z1"), ["yy 2"]);
}

#[test]
fn a_swapdb_on_one_shard_leaves_the_others_windows() {
    let mut c = Cluster::new(&["a", "b"]);
    c.run(0, &[&["ZADD", "z0", "1", "x"]]);
    c.run(1, &[&["ZADD", "z1", "1", "y"]]);
    c.run(1, &[&["SWAPDB", "0", "1"]]);
    assert!(c.a.needs_resnapshot());
    assert!(c.rows("z1").is_empty());
    assert_eq!(c.rows("z0"), ["x 1"]);
    c.run(0, &[&["ZADD", "z0", "2", "xx"]]);
    assert!(!c.stale("z0"), "shard 0's keys are still known");
    c.snapshot(1, &[&["DEL", "z1"], &["ZADD", "z1", "3", "swapped"]]);
    assert!(!c.a.needs_resnapshot());
    assert_eq!(c.rows("z1"), ["swapped 3"]);
    assert_eq!(c.rows("z0"), ["xx 2", "x 1"]);
}

#[test]
fn bad_envelopes_are_counted_never_a_panic() {
    let mut c = Cluster::new(&["a"]);
    c.run(0, &[&["ZADD", "z", "1", "x"]]);
    let inner = encode_commands(0, &stream(&[&["ZADD", "z", "2", "y"]]));
    let bad: [&[u8]; 5] = [
        &encode_shard(1024, &inner),
        &encode_shard(u16::MAX, &encode_hello("b", 0)),
        &encode_shard(1, &encode_shard(2, &inner)),
        b"\x07\x01",
        &encode_shard(3, b""),
    ];
    for (n, message) in bad.iter().enumerate() {
        assert!(c.a.push_message(message).is_err(), "message {n}");
        assert_eq!(c.a.diagnostics().bad_messages, n as u64 + 1);
    }
    assert_eq!(c.rows("z"), ["x 1"]);
    assert_eq!(c.a.positions().len(), 1);
    // Notices, acks and resyncs concern no stream: wrapped, they count as unwrapped.
    assert_eq!(
        c.a.push_message(&encode_shard(
            5,
            &replicast_protocol::wire::encode_notice("hi")
        ))
        .unwrap(),
        Outcome::Notice {
            text: "hi".to_string()
        }
    );
}
