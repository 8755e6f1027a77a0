use crate::assembled::Harness;
use replicast_assembler::Outcome;

#[test]
fn zadd_fills_the_window_of_watched_keys_only() {
    let mut h = Harness::new(&["perf:*"], 2);
    let outcome = h.run(&[
        &["SELECT", "0"],
        &["ZADD", "perf:a", "1", "x", "2", "y", "3", "z"],
        &["ZADD", "other", "1", "x"],
    ]);
    assert_eq!(
        outcome,
        Outcome::Applied {
            commands: 3,
            changed: true
        }
    );
    assert_eq!(h.rows("perf:a"), ["z 3", "y 2"]);
    assert!(h.a.window(b"other").is_none());
    assert!(!h.a.window(b"perf:a").unwrap().complete());
}

#[test]
fn zadd_flags_follow_redis() {
    let mut h = Harness::new(&["*"], 10);
    h.run(&[
        &["ZADD", "z", "5", "m"],
        &["ZADD", "z", "NX", "9", "m", "1", "n"],
        &["ZADD", "z", "XX", "7", "q"],
        &["ZADD", "z", "GT", "CH", "4", "m"],
        &["ZADD", "z", "LT", "6", "n"],
        &["ZADD", "z", "INCR", "2.5", "n"],
        &["ZINCRBY", "z", "-1", "m"],
    ]);
    assert_eq!(h.rows("z"), ["m 4", "n 3.5"]);
    assert!(h.topups().is_empty());
}

#[test]
fn a_complete_window_needs_no_top_up_but_a_full_snapshot_does() {
    let mut h = Harness::new(&["*"], 3);
    h.run(&[&["ZADD", "z", "1", "a", "2", "b"], &["ZREM", "z", "b"]]);
    assert_eq!(h.rows("z"), ["a 1"]);
    assert!(h.topups().is_empty(), "created in the stream: complete");

    // A snapshot with fewer members than the window is everything Redis has.
    h.snapshot(&[&["DEL", "s"], &["ZADD", "s", "1", "a", "2", "b"]]);
    h.run(&[&["ZREM", "s", "b"]]);
    assert!(h.topups().is_empty());

    // A full one may hide more below: removing the newest leaves a gap only Redis can fill.
    h.snapshot(&[&["DEL", "f"], &["ZADD", "f", "1", "a", "2", "b", "3", "c"]]);
    h.run(&[&["ZREM", "f", "c"]]);
    assert_eq!(h.topups(), ["f"]);
    assert!(h.stale("f"));
    h.snapshot(&[&["DEL", "f"], &["ZADD", "f", "0", "z", "1", "a", "2", "b"]]);
    assert!(!h.stale("f"));
    assert_eq!(h.rows("f"), ["b 2", "a 1", "z 0"]);
}

#[test]
fn an_incomplete_window_follows_only_what_it_can_know() {
    let mut h = Harness::new(&["*"], 2);
    h.snapshot(&[&["DEL", "z"], &["ZADD", "z", "5", "a", "6", "b"]]);
    // Below the floor: no effect whatever it was; above it: exact.
    h.run(&[&["ZADD", "z", "1", "low"], &["ZADD", "z", "GT", "7", "c"]]);
    assert_eq!(h.rows("z"), ["c 7", "b 6"]);
    assert!(h.topups().is_empty());
    // NX of a member that may exist below with another score: unknown.
    h.run(&[&["ZADD", "z", "NX", "8", "low"]]);
    assert_eq!(h.topups(), ["z"]);
}

#[test]
fn a_plain_zadd_settles_as_any_command() {
    // `ZADD key score member`, the path most of a stream takes, into a window of another type: Redis refuses it,
    // so the list's window is no longer what Redis holds.
    let mut h = Harness::new(&["*"], 2);
    h.run(&[&["RPUSH", "l", "x"], &["ZADD", "l", "1", "m"]]);
    assert_eq!(h.a.diagnostics().wrong_type, 1);
    assert_eq!(h.topups(), ["l"]);
    assert!(h.stale("l"));
    assert_eq!(h.rows("l"), ["x"]);
    // A member rescored below the floor of an incomplete window leaves it lacking a member Redis holds above the
    // floor's old place: topped up. Rescored within it, or a new member above the floor: exact.
    h.snapshot(&[&["DEL", "z"], &["ZADD", "z", "5", "a", "6", "b"]]);
    h.run(&[&["ZADD", "z", "7", "a"], &["ZADD", "z", "8", "c"]]);
    assert_eq!(h.rows("z"), ["c 8", "a 7"]);
    assert!(h.topups().is_empty());
    h.run(&[&["ZADD", "z", "1", "c"]]);
    assert_eq!(h.rows("z"), ["a 7"]);
    assert_eq!(h.topups(), ["z"]);
    assert!(h.stale("z"));
}

#[test]
fn range_removals() {
    let mut h = Harness::new(&["*"], 10);
    h.run(&[
        &[
            "ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e",
        ],
        &["ZREMRANGEBYSCORE", "z", "(1", "2"],
        &["ZREMRANGEBYRANK", "z", "-1", "-1"],
    ]);
    assert_eq!(h.rows("z"), ["d 4", "c 3", "a 1"]);
    h.run(&[
        &["ZADD", "l", "0", "a", "0", "b", "0", "c", "0", "d"],
        &["ZREMRANGEBYLEX", "l", "[b", "(d"],
    ]);
    assert_eq!(h.rows("l"), ["d 0", "a 0"]);
    assert!(h.topups().is_empty());

    // On a window that may lack low members: ranks from the top are exact, ranks from the bottom are not.
    let mut h = Harness::new(&["*"], 3);
    h.snapshot(&[&["DEL", "z"], &["ZADD", "z", "3", "c", "4", "d", "5", "e"]]);
    h.run(&[&["ZREMRANGEBYRANK", "z", "0", "-4"]]);
    assert_eq!(h.rows("z"), ["e 5", "d 4", "c 3"]);
    assert!(h.topups().is_empty());
    h.run(&[&["ZREMRANGEBYRANK", "z", "2", "5"]]);
    assert_eq!(h.topups(), ["z"]);
}

#[test]
fn pops_and_store_destinations() {
    let mut h = Harness::new(&["*"], 10);
    h.run(&[
        &["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"],
        &["ZPOPMAX", "z"],
        &["ZPOPMIN", "z", "2"],
    ]);
    assert_eq!(h.rows("z"), ["c 3"]);
    h.run(&[&["ZUNIONSTORE", "z", "2", "x", "y"]]);
    assert!(h.a.window(b"z").is_none(), "dropped");
    assert_eq!(h.topups(), ["z"]);
    // Until the top-up, a new window for it is stale.
    h.run(&[&["ZADD", "z", "9", "q"]]);
    assert!(h.stale("z"));

    let mut h = Harness::new(&["*"], 2);
    h.snapshot(&[&["DEL", "z"], &["ZADD", "z", "1", "a", "2", "b"]]);
    h.run(&[&["ZPOPMIN", "z"]]);
    assert_eq!(h.topups(), ["z"], "the lowest may be below the window");
}

#[test]
fn latest_member_per_json_id() {
    let mut h = Harness::new(&["*"], 10);
    h.run(&[
        &["ZADD", "z", "1", r#"{"id":"a","v":1}"#],
        &["ZADD", "z", "2", r#"{"id":"b","v":1}"#],
        &["ZADD", "z", "3", r#"{"id":"a","v":2}"#],
        &["ZADD", "z", "4", "not json"],
    ]);
    let w = h.a.window(b"z").unwrap().as_zset().unwrap();
    let view = w.latest_by_id();
    let ids: Vec<(&str, f64)> = view
        .items
        .iter()
        .map(|i| (i.id.as_str(), i.score))
        .collect();
    assert_eq!(ids, [("a", 3.0), ("b", 2.0)]);
    assert_eq!((view.not_json, view.not_utf8), (1, 0));
    assert_eq!(w.len(), 4, "the window itself keeps every member");
}

#[test]
fn scores_increments_and_bounds_are_read_as_redis_reads_them() {
    let mut h = Harness::new(&["*"], 10);
    h.run(&[
        &[
            "ZADD",
            "z",
            "0x10",
            "a",
            "0x1p3",
            "b",
            "inf",
            "c",
            "-Infinity",
            "d",
            "1e-310",
            "e",
        ],
        &["ZINCRBY", "z", "0x10", "a"],
        &["ZADD", "z", "INCR", "0x.8", "b"],
        // A bound may have leading spaces, and is read past an overflow; a score may not.
        &["ZREMRANGEBYSCORE", "z", "(0x1.1p3", " 0x20"],
        &["ZREMRANGEBYSCORE", "z", "-1e400", "(-1e308"],
    ]);
    let subnormal = format!("e {}", 1e-310);
    assert_eq!(h.rows("z"), ["c inf", "b 8.5", subnormal.as_str()]);
    assert!(h.topups().is_empty());
    // What Redis refuses, it does not propagate: one in the stream means the window is not Redis's.
    for score in [" 5", "5 ", "1e400", "1e-400", "nan", "0x", "5\0"] {
        h.run(&[&["ZADD", "z", score, "x"]]);
        assert_eq!(h.topups(), ["z"], "{score:?}");
        h.snapshot(&[&["DEL", "z"], &["ZADD", "z", "1", "a"]]);
    }
}

#[test]
fn minus_zero_and_zero_are_one_score_ordered_by_member() {
    let mut h = Harness::new(&["*"], 1);
    h.run(&[
        &["ZADD", "z", "0", "a", "-0", "b"],
        &["ZADD", "y", "-0", "b", "0", "a"],
        &["ZADD", "x", "-0.0", "a"],
    ]);
    // Redis compares scores with `<` and `==`: tied, the greater member ranks higher. It prints them as 0.
    assert_eq!(h.rows("z"), ["b 0"]);
    assert_eq!(h.rows("y"), ["b 0"]);
    assert_eq!(h.rows("x"), ["a 0"]);
    let mut h = Harness::new(&["*"], 3);
    h.run(&[
        &["ZADD", "z", "0", "b", "-0", "a", "0", "c"],
        // Not a change of score for Redis (`-0 == 0`): nothing moves.
        &["ZADD", "z", "XX", "GT", "-0", "c"],
        &["ZADD", "z", "LT", "-0", "b"],
    ]);
    assert_eq!(h.rows("z"), ["c 0", "b 0", "a 0"]);
    assert!(h.topups().is_empty());
}

#[test]
fn zremrangebylex_over_mixed_scores_asks_for_a_top_up() {
    // Redis walks `1 a, 2 c, 3 b` in score order from `a` and stops at `c`: only `a` goes. The lexical range
    // `[a [b` would take `b` too; what Redis removes depends on its walk, which the window does not follow.
    let mut h = Harness::new(&["*"], 10);
    h.run(&[
        &["ZADD", "w", "1", "a", "2", "c", "3", "b"],
        &["ZREMRANGEBYLEX", "w", "[a", "[b"],
    ]);
    assert_eq!(h.topups(), ["w"]);
    assert!(h.stale("w"));
    // One score, a complete window: lexical order is the set's, and the window follows it exactly.
    h.run(&[
        &["ZADD", "v", "5", "a", "5", "c", "5", "b", "5", "d"],
        &["ZREMRANGEBYLEX", "v", "(a", "[c"],
        &["ZREMRANGEBYLEX", "v", "-", "(b"],
    ]);
    assert_eq!(h.rows("v"), ["d 5"]);
    assert!(h.topups().is_empty());
    // One score, but members may hide below the window: unknown.
    let mut h = Harness::new(&["*"], 2);
    h.snapshot(&[&["DEL", "u"], &["ZADD", "u", "5", "x", "5", "y"]]);
    h.run(&[&["ZREMRANGEBYLEX", "u", "-", "+"]]);
    assert_eq!(h.topups(), ["u"]);
}

#[test]
fn a_hyperloglog_counted_or_written_is_topped_up() {
    let mut h = Harness::new(&["w:*"], 5);
    h.snapshot(&[&["DEL", "w:hll"], &["SET", "w:hll", "HYLL..."]]);
    // PFCOUNT caches the cardinality inside the string, and Redis propagates it for that.
    h.run(&[&["PFCOUNT", "w:hll"]]);
    assert_eq!(h.topups(), ["w:hll"]);
    h.snapshot(&[&["DEL", "w:hll"], &["SET", "w:hll", "HYLL...."]]);
    h.run(&[&["PFADD", "w:hll", "x"], &["PFDEBUG", "TODENSE", "w:hll"]]);
    assert_eq!(h.topups(), ["w:hll"]);
    assert_eq!(h.a.diagnostics().unknown_commands, 0);
}

#[test]
fn a_window_left_short_inside_one_zadd_places_no_more_members() {
    // Window 1: m47 tops it, m20 ties below it (unseen), then m47 falls to -inf and leaves the window short. Redis's
    // top is then m20; m16 and m17 must not pass for it.
    let mut h = Harness::new(&["*"], 1);
    h.run(&[&[
        "ZADD", "z", "1885", "x", "+inf", "m47", "+inf", "m20", "-inf", "m47", "1513", "m16",
        "+inf", "m17",
    ]]);
    assert_eq!(h.topups(), ["z"]);
    assert!(h.stale("z"));
    h.snapshot(&[&["DEL", "z"], &["ZADD", "z", "inf", "m20"]]);
    assert_eq!(h.rows("z"), ["m20 inf"]);
}

#[test]
fn a_full_windows_eviction_is_one_replacement_for_the_observer() {
    let mut h = Harness::new(&["*"], 2);
    h.run(&[&["ZADD", "z", "1", "a", "2", "b"]]);
    assert_eq!(h.a.observer().replacements, 0, "a window with room adds");
    // Above the floor of a full window: the floor leaves for the new member, one call for both.
    h.run(&[&["ZADD", "z", "3", "c"], &["ZADD", "z", "4", "d", "5", "e"]]);
    assert_eq!(h.rows("z"), ["e 5", "d 4"]);
    assert_eq!(h.a.observer().replacements, 3);
    // A member held, rescored, and one below the floor: no replacement.
    h.run(&[&["ZADD", "z", "6", "d"], &["ZADD", "z", "0", "f"]]);
    assert_eq!(h.rows("z"), ["d 6", "e 5"]);
    assert_eq!(h.a.observer().replacements, 3);
}
