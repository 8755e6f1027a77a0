use crate::assembled::Harness;

#[test]
fn xadd_appends_and_trims() {
    let mut h = Harness::new(&["*"], 3);
    h.run(&[
        &["XADD", "s", "1-1", "f", "a"],
        &["XADD", "s", "1-2", "f", "b"],
        &["XADD", "s", "2-0", "f", "c", "g", "d"],
    ]);
    assert_eq!(h.rows("s"), ["2-0 f c g d", "1-2 f b", "1-1 f a"]);
    // Redis propagates `MAXLEN ~ 1000` as the exact length it trimmed to.
    h.run(&[&["XADD", "s", "MAXLEN", "=", "2", "3-0", "f", "e"]]);
    assert_eq!(h.rows("s"), ["3-0 f e", "2-0 f c g d"]);
    h.run(&[&["XDEL", "s", "3-0"], &["XTRIM", "s", "MINID", "2-1"]]);
    assert!(h.a.window(b"s").is_some(), "an empty stream still exists");
    assert!(h.rows("s").is_empty());
    assert!(h.topups().is_empty());
    h.run(&[
        &["XGROUP", "CREATE", "s", "g", "$"],
        &["XSETID", "s", "9-9"],
    ]);
    assert_eq!(h.a.diagnostics().unknown_commands, 0);
}

#[test]
fn a_full_snapshot_of_a_stream_tops_up_after_deletes() {
    let mut h = Harness::new(&["*"], 2);
    h.snapshot(&[
        &["DEL", "s"],
        &["XADD", "s", "5-0", "f", "a"],
        &["XADD", "s", "6-0", "f", "b"],
    ]);
    h.run(&[&["XADD", "s", "7-0", "f", "c"], &["XDEL", "s", "1-0"]]);
    assert_eq!(h.rows("s"), ["7-0 f c", "6-0 f b"]);
    assert!(h.topups().is_empty());
    h.run(&[&["XDEL", "s", "7-0"]]);
    assert_eq!(h.topups(), ["s"]);
    // MINID past the window's oldest drops every unseen entry too: the window is whole again.
    let mut h = Harness::new(&["*"], 2);
    h.snapshot(&[
        &["DEL", "s"],
        &["XADD", "s", "5-0", "f", "a"],
        &["XADD", "s", "6-0", "f", "b"],
    ]);
    h.run(&[&["XTRIM", "s", "MINID", "6-0"]]);
    assert!(h.a.window(b"s").unwrap().complete());
    assert!(h.topups().is_empty());
    h.run(&[&["XADD", "s", "*", "f", "x"]]);
    assert_eq!(
        h.topups(),
        ["s"],
        "an id Redis did not propagate is unknown"
    );
}

#[test]
fn ids_are_read_as_redis_reads_them() {
    let mut h = Harness::new(&["*"], 5);
    // Redis propagates an explicit id as it was written; it reads each part with `strtoull` when `string2ll`
    // will not: leading zeros, a `+`, leading spaces.
    h.run(&[
        &["XADD", "s", "007-1", "f", "a"],
        &["XADD", "s", "+8-01", "f", "b"],
        &["XADD", "s", " 9", "f", "c"],
        &["XDEL", "s", "0008-1"],
    ]);
    assert_eq!(h.rows("s"), ["9-0 f c", "7-1 f a"]);
    assert!(h.topups().is_empty());
    h.run(&[&["XADD", "s", "10-*", "f", "d"]]);
    assert_eq!(h.topups(), ["s"], "an id Redis would have chosen itself");
}

#[test]
fn a_stream_trimmed_to_nothing_still_exists() {
    let mut h = Harness::new(&["*"], 3);
    // How a snapshot gives an empty stream, and what `XTRIM … MAXLEN 0` leaves in any case.
    h.snapshot(&[&["DEL", "e"], &["XTRIM", "e", "MAXLEN", "0"]]);
    let w = h.a.window(b"e").expect("an empty stream has a window");
    assert!(w.is_empty() && w.complete() && !w.stale());
    h.run(&[
        &["XADD", "s", "1-1", "f", "a"],
        &["XTRIM", "s", "MAXLEN", "0"],
    ]);
    assert!(h.a.window(b"s").unwrap().is_empty());
    // Any other trim of a stream the page has no window of says nothing of what is left.
    h.run(&[&["XTRIM", "t", "MAXLEN", "5"]]);
    assert!(h.a.window(b"t").is_none());
    assert!(h.topups().is_empty());
}

#[test]
fn xgroup_create_with_mkstream_creates_an_empty_stream() {
    let mut h = Harness::new(&["*"], 3);
    h.run(&[
        &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"],
        &["XADD", "t", "1-1", "f", "a"],
        &[
            "XGROUP",
            "CREATE",
            "t",
            "g",
            "0",
            "MKSTREAM",
            "ENTRIESREAD",
            "1",
        ],
        &["XGROUP", "DESTROY", "t", "g"],
    ]);
    let s = h.a.window(b"s").expect("an empty stream");
    assert!(s.is_empty() && s.complete());
    assert_eq!(h.rows("t"), ["1-1 f a"]);
    assert!(h.topups().is_empty());
}
