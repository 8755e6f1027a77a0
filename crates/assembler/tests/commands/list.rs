use crate::assembled::Harness;

#[test]
fn pushes_keep_the_tail() {
    let mut h = Harness::new(&["*"], 3);
    h.run(&[&["RPUSH", "l", "a", "b"], &["LPUSH", "l", "y", "z"]]);
    // The list is z y a b; the window holds its last 3.
    assert_eq!(h.rows("l"), ["b", "a", "y"]);
    let w = h.a.window(b"l").unwrap().as_list().unwrap();
    assert_eq!(w.total(), Some(4));
    h.run(&[&["LPOP", "l"], &["RPOP", "l", "2"]]);
    assert_eq!(h.rows("l"), ["y"]);
    assert!(h.topups().is_empty(), "the length was known throughout");
    h.run(&[&["RPOPLPUSH", "l", "m"]]);
    assert!(h.a.window(b"l").is_none(), "an empty list is deleted");
    assert_eq!(h.rows("m"), ["y"]);
}

#[test]
fn index_operations() {
    let mut h = Harness::new(&["*"], 10);
    h.run(&[
        &["RPUSH", "l", "a", "b", "c", "b", "d"],
        &["LSET", "l", "0", "A"],
        &["LSET", "l", "-1", "D"],
        &["LREM", "l", "1", "b"],
        &["LINSERT", "l", "BEFORE", "c", "x"],
        &["LTRIM", "l", "1", "-1"],
    ]);
    assert_eq!(h.rows("l"), ["D", "b", "c", "x"]);
    assert!(h.topups().is_empty());
}

#[test]
fn head_operations_on_a_list_of_unknown_length_ask_for_a_top_up() {
    let mut h = Harness::new(&["*"], 2);
    h.snapshot(&[&["DEL", "l"], &["RPUSH", "l", "c", "d"]]);
    // Tail operations and end-relative ranges stay exact.
    h.run(&[
        &["RPUSH", "l", "e"],
        &["LSET", "l", "-1", "E"],
        &["LTRIM", "l", "-5", "-1"],
        &["LPUSH", "l", "z"],
    ]);
    assert_eq!(h.rows("l"), ["E", "d"]);
    assert!(h.topups().is_empty());
    h.run(&[&["LPOP", "l"]]);
    assert_eq!(h.topups(), ["l"]);
    h.snapshot(&[&["DEL", "l"], &["RPUSH", "l", "d", "E"]]);
    h.run(&[&["LINSERT", "l", "AFTER", "nowhere-in-window", "q"]]);
    assert!(h.topups().is_empty(), "the pivot is before the window");
    h.run(&[&["LREM", "l", "1", "d"]]);
    assert_eq!(h.topups(), ["l"]);
}

#[test]
fn lmove_carries_known_items_and_tops_up_unknown_ones() {
    let mut h = Harness::new(&["w:*"], 5);
    h.run(&[
        &["RPUSH", "w:a", "1", "2", "3"],
        &["LMOVE", "w:a", "w:b", "LEFT", "RIGHT"],
        &["LMOVE", "w:a", "w:b", "RIGHT", "LEFT"],
    ]);
    assert_eq!(h.rows("w:a"), ["2"]);
    assert_eq!(h.rows("w:b"), ["1", "3"]);
    h.run(&[&["LMOVE", "queue", "w:b", "LEFT", "LEFT"]]);
    assert_eq!(
        h.topups(),
        ["w:b"],
        "what came from an unwatched list is unknown"
    );
}

#[test]
fn lmove_with_a_side_redis_refuses_tops_up_both_lists() {
    let mut h = Harness::new(&["*"], 5);
    h.run(&[&["RPUSH", "a", "1", "2"], &["RPUSH", "b", "3"]]);
    // Redis refuses a side that is neither LEFT nor RIGHT and propagates nothing: the windows are not Redis's.
    h.run(&[&["LMOVE", "a", "b", "UP", "LEFT"]]);
    assert_eq!(h.topups(), ["a", "b"]);
    assert_eq!(
        h.rows("a"),
        ["2", "1"],
        "kept, best effort, until the top-up"
    );
}

#[test]
fn lmove_from_a_stale_list_tops_up_the_destination_instead_of_trusting_the_item() {
    let mut h = Harness::new(&["w:*"], 5);
    h.run(&[&["RPUSH", "w:src", "a", "b"], &["RPUSH", "w:dst", "x"]]);
    // The relay withheld `COPY s:l0 w:src REPLACE` (s:* is outside --allow): w:src's items are no longer Redis's.
    let withheld_end = h.offset + 40;
    h.a.push_message(&replicast_protocol::wire::encode_stale(
        withheld_end,
        [&b"w:src"[..]],
    ))
    .unwrap();
    h.offset = withheld_end;
    assert_eq!(h.topups(), ["w:src"]);
    h.run(&[
        &["RPOPLPUSH", "w:src", "w:dst"],
        &["LMOVE", "w:src", "w:other", "LEFT", "LEFT"],
    ]);
    assert!(
        h.stale("w:dst"),
        "the item moved is Redis's, not the window's b"
    );
    assert!(h.a.window(b"w:other").is_none());
    assert_eq!(h.topups(), ["w:dst", "w:other"]);
}
