//! `StreamAssembler::push_commands` (whole commands of the stream, without a message around them, as the relay's
//! own state applies the link's batches) does what a commands message of the same segment does: the same outcome,
//! windows, top-ups and diagnostics, whatever the stream holds and however it is cut into segments.
#![cfg(not(target_arch = "wasm32"))]

mod assembled;

use assembled::{canon, resp, stream};
use proptest::prelude::*;
use replicast_assembler::assembler::AssemblerError;
use replicast_assembler::{StreamAssembler, WatchConfig};
use replicast_protocol::wire::{encode_commands, encode_hello};

fn assembler() -> StreamAssembler {
    let mut a = StreamAssembler::new(WatchConfig {
        patterns: vec![b"perf:*".to_vec(), b"cfg".to_vec()],
        db: 0,
        window: 3,
    });
    a.push_message(&encode_hello("p", 100)).unwrap();
    a
}

/// Everything a follower can read of an assembler: its offset, windows, top-ups due and diagnostics.
fn state(a: &mut StreamAssembler) -> String {
    let windows: Vec<String> = a
        .windows()
        .map(|(key, w)| {
            format!(
                "{} {:?} {}",
                String::from_utf8_lossy(key),
                canon(w),
                w.stale()
            )
        })
        .collect();
    let unknown: Vec<Vec<u8>> = a.unknown_keys().map(<[u8]>::to_vec).collect();
    format!(
        "offset {} windows {windows:?} unknown {unknown:?} topups {:?} diagnostics {:?} resnapshot {}",
        a.offset(),
        a.take_topups(),
        a.diagnostics(),
        a.needs_resnapshot()
    )
}

/// The commands the stream is drawn from: writes of watched and unwatched keys, other databases, a block.
fn command() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0..4u8, 0..50u32).prop_map(|(host, ms)| resp(&[
            "ZADD".to_string(),
            format!("perf:host{host}"),
            ms.to_string(),
            format!("{{\"ms\":{ms}}}")
        ])),
        (0..50u32).prop_map(|v| resp(&["SET", "cfg", &v.to_string()])),
        (0..50u32).prop_map(|v| resp(&["SET", "other", &v.to_string()])),
        (0..4u8).prop_map(|host| resp(&["DEL".to_string(), format!("perf:host{host}")])),
        (0..4u8).prop_map(|host| resp(&[
            "RPUSH".to_string(),
            format!("perf:list{host}"),
            "x".into()
        ])),
        (0..2u8).prop_map(|db| resp(&["SELECT", &db.to_string()])),
        Just(stream(&[
            &["MULTI"],
            &["ZADD", "perf:host0", "7", "in a block"],
            &["EXEC"]
        ])),
        Just(resp(&["PING"])),
    ]
}

proptest! {
    #[test]
    fn whole_commands_apply_as_their_message_does(
        commands in proptest::collection::vec(command(), 1..60),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let bytes: Vec<u8> = commands.concat();
        // Segments end at command boundaries.
        let ends: Vec<usize> = commands
            .iter()
            .scan(0, |at, c| {
                *at += c.len();
                Some(*at)
            })
            .collect();
        let mut cut: Vec<usize> = cuts.iter().map(|i| ends[i.index(ends.len())]).collect();
        cut.push(bytes.len());
        cut.sort_unstable();
        cut.dedup();
        let (mut by_message, mut by_commands) = (assembler(), assembler());
        let mut from = 0;
        for to in cut {
            let start = 100 + from as u64;
            let message = by_message.push_message(&encode_commands(start, &bytes[from..to])).unwrap();
            let commands = by_commands.push_commands(start, &bytes[from..to]).unwrap();
            prop_assert_eq!(message, commands);
            prop_assert_eq!(state(&mut by_message), state(&mut by_commands));
            from = to;
        }
    }
}

#[test]
fn errors_are_those_of_a_commands_message() {
    let mut fresh = StreamAssembler::new(WatchConfig {
        patterns: vec![b"*".to_vec()],
        db: 0,
        window: 3,
    });
    let zadd = resp(&["ZADD", "perf:a", "1", "x"]);
    assert!(matches!(
        fresh.push_commands(0, &zadd),
        Err(AssemblerError::NoHello { shard: 0 })
    ));
    let mut a = assembler();
    a.push_commands(100, &zadd).unwrap();
    // What was applied already is skipped; what overlaps it is refused.
    assert_eq!(
        a.push_commands(100, &zadd).unwrap(),
        replicast_assembler::Outcome::Applied {
            commands: 0,
            changed: false
        }
    );
    assert!(matches!(
        a.push_commands(101, &zadd),
        Err(AssemblerError::Overlap { .. })
    ));
    // A segment that is not RESP loses what it may have written, as a message's would.
    let mut by_message = assembler();
    let mut by_commands = assembler();
    for a in [&mut by_message, &mut by_commands] {
        a.push_commands(100, &zadd).unwrap();
    }
    let end = 100 + zadd.len() as u64;
    by_message
        .push_message(&encode_commands(end, b"*1\r\n$x\r\n"))
        .unwrap();
    by_commands.push_commands(end, b"*1\r\n$x\r\n").unwrap();
    assert_eq!(state(&mut by_message), state(&mut by_commands));
}
