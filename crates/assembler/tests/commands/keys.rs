use crate::assembled::{stream, Harness};
use replicast_assembler::Outcome;
use replicast_protocol::wire::{
    encode_commands, encode_shard, encode_stale, encode_stale_all, push_segment,
};

#[test]
fn del_rename_move_copy() {
    let mut h = Harness::new(&["w:*"], 5);
    h.run(&[
        &["ZADD", "w:a", "1", "x", "2", "y"],
        &["RPUSH", "w:l", "1", "2"],
        &["RENAME", "w:a", "w:b"],
        &["COPY", "w:b", "w:c"],
        &["COPY", "w:l", "w:other-db", "DB", "3"],
        &["RENAMENX", "w:l", "unwatched"],
    ]);
    assert!(h.a.window(b"w:a").is_none());
    assert_eq!(h.rows("w:b"), ["y 2", "x 1"]);
    assert_eq!(h.rows("w:c"), ["y 2", "x 1"]);
    assert!(h.a.window(b"w:l").is_none() && h.a.window(b"unwatched").is_none());
    h.run(&[&["RENAME", "elsewhere", "w:d"]]);
    assert_eq!(
        h.topups(),
        ["w:d"],
        "renamed from a key the page does not see"
    );
    h.run(&[
        &["MOVE", "w:b", "2"],
        &["SELECT", "2"],
        &["MOVE", "w:e", "0"],
        &["COPY", "w:f", "w:g", "DB", "0"],
        &["SELECT", "0"],
        &["DEL", "w:c", "w:nothing"],
    ]);
    assert_eq!(h.a.keys().count(), 0);
    assert_eq!(h.topups(), ["w:e", "w:g"]);
}

#[test]
fn move_and_copy_from_another_database_follow_the_streams_select_not_a_snapshot() {
    // A page on database 1. The relay sends it every SELECT, database 1's frames, and the MOVE and COPY … DB 1
    // frames written in another database.
    let mut h = Harness::in_db(&["w:*"], 5, 1);
    // It joined while the stream was in database 0, whose SELECT came before the join.
    h.snapshot(&[
        &["DEL", "w:src"],
        &["RPUSH", "w:src", "db1"],
        &["DEL", "w:dst"],
    ]);
    h.run(&[
        &["COPY", "w:src", "w:dst", "DB", "1", "REPLACE"],
        &["MOVE", "w:in", "1"],
    ]);
    assert!(
        h.a.window(b"w:dst").is_none(),
        "the copy's source may be another database's w:src"
    );
    assert_eq!(h.topups(), ["w:dst", "w:in"]);
    // Once a SELECT says where the stream is, a copy inside the database is followed.
    h.run(&[&["SELECT", "1"], &["COPY", "w:src", "w:same", "DB", "1"]]);
    assert_eq!(h.rows("w:same"), ["db1"]);
    // A top-up is a snapshot in the middle of the stream: the stream is still in database 0 after it.
    h.run(&[&["SELECT", "0"]]);
    h.snapshot(&[&["DEL", "w:dst"], &["RPUSH", "w:dst", "x"]]);
    h.run(&[
        &["COPY", "w:src", "w:dst", "DB", "1", "REPLACE"],
        &["MOVE", "w:in2", "1"],
    ]);
    assert!(h.a.window(b"w:dst").is_none());
    assert_eq!(h.topups(), ["w:dst", "w:in2"]);
    assert_eq!(h.rows("w:src"), ["db1"], "another database's w:src");
}

#[test]
fn flushes_and_swapdb() {
    let mut h = Harness::new(&["*"], 5);
    h.run(&[&["SET", "a", "1"], &["SELECT", "3"], &["FLUSHDB", "ASYNC"]]);
    assert_eq!(h.a.keys().count(), 1, "another database's flush");
    h.run(&[
        &["FLUSHALL", "SYNC"],
        &["SELECT", "0"],
        &["SET", "b", "1"],
        &["FLUSHDB"],
    ]);
    assert_eq!(h.a.keys().count(), 0);
    h.run(&[&["SET", "c", "1"], &["SWAPDB", "0", "1"]]);
    assert_eq!(h.a.keys().count(), 0);
    assert!(h.a.needs_resnapshot());
    h.run(&[&["RPUSH", "l", "x"]]);
    assert!(h.stale("l"), "nothing is known after a swap");
    h.snapshot(&[&["DEL", "d"], &["SET", "d", "from db 1"]]);
    assert!(!h.a.needs_resnapshot());
    let keys: Vec<&[u8]> = h.a.keys().collect();
    assert_eq!(
        keys,
        [&b"d"[..]],
        "a snapshot after a swap replaces every window"
    );
}

#[test]
fn a_multi_block_applies_at_exec_even_across_messages() {
    let mut h = Harness::new(&["*"], 5);
    let outcome = h.run(&[&["MULTI"], &["ZADD", "z", "1", "a"], &["DEL", "s"]]);
    assert_eq!(
        outcome,
        Outcome::Applied {
            commands: 3,
            changed: false
        }
    );
    assert!(
        h.a.window(b"z").is_none(),
        "half a transaction is never visible"
    );
    h.run(&[&["ZADD", "z", "2", "b"], &["EXEC"]]);
    assert_eq!(h.rows("z"), ["b 2", "a 1"]);
}

#[test]
fn multi_and_exec_are_told_in_any_case_and_by_their_whole_name() {
    let mut h = Harness::new(&["*"], 5);
    h.run(&[&["mUlTi"], &["ZADD", "z", "1", "a"]]);
    assert!(h.a.window(b"z").is_none(), "a block opened in any case");
    h.run(&[&["EXE"], &["EXECS"], &["exeC"]]);
    assert_eq!(
        h.rows("z"),
        ["a 1"],
        "closed by EXEC in any case, not by a name that starts or ends like it"
    );
    h.run(&[
        &["MULT"],
        &["MULTIX"],
        &["MULT\u{9}"],
        &["ZADD", "y", "1", "b"],
    ]);
    assert_eq!(h.rows("y"), ["b 1"], "no other name opens a block");
    assert_eq!(h.a.diagnostics().unknown_commands, 5);
    // A first letter in upper case, the others mixed: the letter's case is not what tells the name.
    h.run(&[&["MuLtI"], &["ZADD", "x", "1", "c"]]);
    assert!(h.a.window(b"x").is_none(), "a block opened by MuLtI");
    h.run(&[&["ExEc"]]);
    assert_eq!(h.rows("x"), ["c 1"], "closed by ExEc");
}

#[test]
fn a_bad_segment_costs_its_own_commands_and_every_window_waits_for_a_full_snapshot() {
    let mut h = Harness::new(&["*"], 5);
    h.run(&[&["ZADD", "z", "1", "a"]]);
    let good = stream(&[&["ZADD", "z", "2", "b"]]);
    let mut message = encode_commands(h.offset, b"*2\r\n:1\r\n");
    push_segment(&mut message, h.offset + 100, &good);
    h.a.push_message(&message).unwrap();
    h.offset += 100 + good.len() as u64;
    let d = h.a.diagnostics();
    assert_eq!(d.bad_segments, 1);
    let last = d.last_error.clone().unwrap();
    assert!(last.message.contains("expected '$'"), "{last:?}");
    // What the rest of the bad segment wrote is unknown: nothing is exact until a full snapshot.
    assert!(h.a.needs_resnapshot());
    assert!(
        h.stale("z"),
        "the next segment applies, to a window that waits"
    );
    h.snapshot(&[&["DEL", "z"], &["ZADD", "z", "1", "a", "2", "b"]]);
    assert!(!h.a.needs_resnapshot() && !h.stale("z"));
    assert_eq!(h.rows("z"), ["b 2", "a 1"]);

    assert!(h.a.push_message(b"\x0a").is_err());
    assert_eq!(h.a.diagnostics().bad_messages, 1);
    // Binary members are fine.
    h.raw(&crate::assembled::resp(&[
        &b"ZADD"[..],
        b"z",
        b"3",
        b"\xff\x00\r\n",
    ]));
    assert_eq!(h.a.window(b"z").unwrap().len(), 3);
}

#[test]
fn a_command_that_cannot_be_applied_exactly_tops_up_what_it_names() {
    let mut h = Harness::new(&["*"], 5);
    h.run(&[
        &["ZADD", "z", "1", "a", "2", "b"],
        &["SET", "s", "v"],
        &["RPUSH", "l", "x"],
    ]);
    assert!(h.topups().is_empty());
    // Unknown, with arguments Redis refuses, of the wrong type (a list command on a sorted set, a set command
    // on a string): Redis would not have propagated the last three, so the windows are not what Redis holds.
    h.run(&[
        &["FROB", "z", "nokey"],
        &["ZADD", "s2", "notanumber", "c"],
        &["LPUSH", "z", "x"],
        &["SADD", "s", "m"],
        &["LTRIM", "l", "0", "+1"],
    ]);
    let d = h.a.diagnostics();
    assert_eq!(
        (d.unknown_commands, d.bad_arguments, d.wrong_type),
        (1, 2, 2)
    );
    assert_eq!(h.topups(), ["l", "nokey", "s", "s2", "z"]);
    assert!(h.stale("z") && h.stale("s") && h.stale("l"));
    assert_eq!(
        h.rows("z"),
        ["b 2", "a 1"],
        "kept, best effort, until the top-up"
    );
    // A command without a key names nothing to top up, but is counted; so is a MOVE without its arguments.
    h.run(&[&["FROB"], &["MOVE"]]);
    let d = h.a.diagnostics();
    assert_eq!((d.unknown_commands, d.bad_arguments), (2, 3));
    assert!(h.topups().is_empty());
}

#[test]
fn segments_already_applied_are_skipped_and_a_gap_clears_windows() {
    use replicast_protocol::wire::encode_hello;
    let mut h = Harness::new(&["*"], 5);
    let s = stream(&[&["ZADD", "z", "1", "x"]]);
    h.raw(&s);
    let again = h.a.push_message(&encode_commands(0, &s)).unwrap();
    assert_eq!(
        again,
        Outcome::Applied {
            commands: 0,
            changed: false
        }
    );
    h.a.push_message(&encode_hello("e1", s.len() as u64))
        .unwrap();
    assert_eq!(
        h.rows("z").len(),
        1,
        "same epoch and offset: nothing missed"
    );
    h.a.push_message(&encode_hello("e1", 999)).unwrap();
    assert!(h.rows("z").is_empty());
    assert!(
        h.a.push_message(&encode_commands(990, &s)).is_err(),
        "overlap"
    );
}

#[test]
fn stale_messages_make_windows_stale_where_the_withheld_command_was() {
    let mut h = Harness::new(&["w:*"], 5);
    h.run(&[&["ZADD", "w:a", "1", "x"], &["RPUSH", "w:l", "1"]]);
    // The relay withheld a 40-byte command (`RENAME secret:x w:a`, say) that may have written w:a and w:new.
    let withheld_end = h.offset + 40;
    let outcome =
        h.a.push_message(&encode_stale(
            withheld_end,
            [&b"w:a"[..], b"w:new", b"other"],
        ))
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Applied {
            commands: 0,
            changed: true
        }
    );
    assert!(h.stale("w:a") && !h.stale("w:l"));
    assert_eq!(h.topups(), ["w:a", "w:new"], "watched keys only");
    assert_eq!(h.a.offset(), withheld_end, "the stream goes on after it");
    h.offset = withheld_end;
    h.run(&[&["ZADD", "w:a", "2", "y"]]);
    assert!(h.stale("w:a"), "stale until the top-up");
    h.snapshot(&[&["DEL", "w:a"], &["ZADD", "w:a", "9", "z"]]);
    assert!(!h.stale("w:a"));
    assert_eq!(h.rows("w:a"), ["z 9"]);
    // In a shard's envelope, as a relay following a cluster sends it.
    let at = h.offset + 5;
    h.a.push_message(&encode_shard(0, &encode_stale(at, [&b"w:l"[..]])))
        .unwrap();
    assert!(h.stale("w:l") && h.a.offset() == at);
    assert_eq!(h.topups(), ["w:l"]);
    h.offset = at;
    // A stale message for commands already applied past is a duplicate.
    h.a.push_message(&encode_stale(withheld_end - 1, [&b"w:a"[..]]))
        .unwrap();
    assert!(!h.stale("w:a") && h.topups().is_empty());
    // Too many keys for one top-up, or a script: every window, until a fresh snapshot.
    h.a.push_message(&encode_stale(h.offset + 10, [])).unwrap();
    assert!(!h.a.needs_resnapshot());
    h.a.push_message(&encode_stale_all(h.offset + 20)).unwrap();
    assert!(h.a.needs_resnapshot());
    assert_eq!(h.a.keys().count(), 0);
}

/// A complete window a withheld write made stale (`ZUNIONSTORE w:z 2 secret:a w:z` under `--allow w:*`, a command
/// too large to hold), then emptied of every item it knows: Redis may still hold what the withheld write put there,
/// so the key is not deleted. Its window stays, empty and stale, until the top-up says what the key holds.
#[test]
fn a_stale_window_emptied_stays_until_its_top_up() {
    let mut h = Harness::new(&["w:*"], 5);
    h.run(&[
        &["ZADD", "w:z", "1", "a", "2", "b"],
        &["RPUSH", "w:l", "x", "y"],
        &["HSET", "w:h", "f", "1"],
    ]);
    assert!(["w:z", "w:l", "w:h"]
        .iter()
        .all(|k| h.a.window(k.as_bytes()).unwrap().complete()));
    let withheld_end = h.offset + 40;
    h.a.push_message(&encode_stale(withheld_end, [&b"w:z"[..], b"w:l", b"w:h"]))
        .unwrap();
    h.offset = withheld_end;
    h.run(&[
        &["ZREM", "w:z", "a", "b"],
        &["LPOP", "w:l", "2"],
        &["HDEL", "w:h", "f"],
    ]);
    for key in ["w:z", "w:l", "w:h"] {
        let window = h.a.window(key.as_bytes());
        assert!(
            window.is_some_and(|w| w.is_empty() && w.stale()),
            "{key}: kept, empty and stale, not taken for deleted"
        );
    }
    assert_eq!(
        h.topups(),
        ["w:h", "w:l", "w:z"],
        "their top-ups still asked"
    );
    // The top-up: what Redis holds.
    h.snapshot(&[
        &["DEL", "w:z"],
        &["ZADD", "w:z", "7", "secret"],
        &["DEL", "w:l"],
        &["RPUSH", "w:l", "s"],
        &["DEL", "w:h"],
        &["HSET", "w:h", "g", "2"],
    ]);
    assert_eq!(h.rows("w:z"), ["secret 7"]);
    assert_eq!(h.rows("w:l"), ["s"]);
    assert!(!h.stale("w:z") && !h.stale("w:l") && !h.stale("w:h"));
    // Emptied again, not stale: Redis deleted the key.
    h.run(&[&["ZREM", "w:z", "secret"]]);
    assert!(h.a.window(b"w:z").is_none());
}

#[test]
fn a_problem_names_the_offset_where_its_command_ends_in_any_place_of_a_segment() {
    let mut h = Harness::new(&["*"], 5);
    h.run(&[&["ZADD", "z", "1", "a"]]);
    let start = h.offset;
    let first = stream(&[&["NOSUCHCOMMAND", "z"]]).len() as u64;
    let second = stream(&[&["ZADD", "z", "2", "b"]]).len() as u64;
    let third = stream(&[&["ZADD", "y", "x", "c"]]).len() as u64;
    // One segment: an unknown command first, a good one, then a score Redis would refuse.
    h.run(&[
        &["NOSUCHCOMMAND", "z"],
        &["ZADD", "z", "2", "b"],
        &["ZADD", "y", "x", "c"],
    ]);
    let d = h.a.diagnostics();
    assert_eq!((d.unknown_commands, d.bad_arguments), (1, 1));
    let last = d.last_error.clone().unwrap();
    assert!(last.message.contains("ZADD"), "{last:?}");
    assert_eq!(last.offset, start + first + second + third);
    // The first command's problem, alone in its segment's first place.
    let mut h = Harness::new(&["*"], 5);
    h.run(&[&["NOSUCHCOMMAND", "z"], &["ZADD", "z", "2", "b"]]);
    assert_eq!(h.a.diagnostics().last_error.clone().unwrap().offset, first);
}
