use crate::assembled::Harness;

#[test]
fn values_as_redis_computes_them() {
    let mut h = Harness::new(&["*"], 4);
    h.run(&[
        &["SET", "s", "hello"],
        &["APPEND", "s", " world"],
        &["SETRANGE", "s", "0", "J"],
        &["SETRANGE", "pad", "3", "x"],
        &["INCR", "n"],
        &["INCRBY", "n", "41"],
        &["DECRBY", "n", "2"],
        &["MSET", "m1", "a", "m2", "b"],
        &["SET", "f", "1.5", "KEEPTTL"],
        &["GETSET", "m1", "c"],
    ]);
    assert_eq!(h.rows("s"), ["Jello world"]);
    assert_eq!(h.rows("pad"), ["\0\0\0x"]);
    assert_eq!(h.rows("n"), ["40"]);
    assert_eq!(h.rows("m1"), ["c"]);
    let w = h.a.window(b"n").unwrap().as_string().unwrap();
    assert_eq!(
        w.previous()
            .iter()
            .map(|p| p.as_slice())
            .collect::<Vec<_>>(),
        [&b"42"[..], b"1"]
    );
    assert!(h.topups().is_empty());
    h.run(&[&["SETBIT", "s", "1", "1"]]);
    assert_eq!(h.topups(), ["s"]);
    h.run(&[&["SET", "s", "whole again"]]);
    assert!(!h.stale("s"));
}

#[test]
fn ttls_follow_pexpireat_and_expire_on_tick() {
    let mut h = Harness::new(&["*"], 4);
    h.run(&[
        &["SET", "a", "v", "PXAT", "1000"],
        &["SET", "b", "v"],
        &["PEXPIREAT", "b", "2000"],
        &["SET", "c", "v", "PXAT", "1500"],
        &["PERSIST", "c"],
        &["SET", "d", "v", "PXAT", "1200"],
        &["INCR", "e"],
        &["PEXPIREAT", "e", "900"],
        &["INCR", "e"],
        &["SET", "d", "w", "KEEPTTL"],
    ]);
    let at = |k: &str| h.a.window(k.as_bytes()).unwrap().expires_at_ms();
    assert_eq!(
        (at("a"), at("b"), at("c"), at("d"), at("e")),
        (Some(1000), Some(2000), None, Some(1200), Some(900))
    );
    assert_eq!(h.a.tick(1000), 2);
    let keys: Vec<&[u8]> = h.a.keys().collect();
    assert_eq!(keys, [&b"b"[..], b"c", b"d"]);
    assert!(!h.a.observer().live.contains_key(&b"a"[..]));
}

#[test]
fn set_replaces_any_type() {
    let mut h = Harness::new(&["*"], 4);
    h.run(&[&["ZADD", "k", "1", "a"], &["SET", "k", "v"]]);
    assert_eq!(h.a.window(b"k").unwrap().kind().name(), "string");
    h.run(&[&["INCR", "k"]]);
    assert_eq!(
        h.topups(),
        ["k"],
        "INCR of a non-integer is not propagated: a corrupt stream"
    );
}

#[test]
fn integers_are_read_as_string2ll_reads_them() {
    let mut h = Harness::new(&["*"], 4);
    h.run(&[
        &["SET", "n", "10"],
        &["INCRBY", "n", "-3"],
        &["DECRBY", "n", "0"],
    ]);
    assert_eq!(h.rows("n"), ["7"]);
    assert!(h.topups().is_empty());
    // Redis refuses these increments (a sign, a leading zero, `-0`, a space, 2^63): one in the stream means the
    // window is not what Redis holds.
    for by in ["+5", "007", "-0", " 1", "9223372036854775808"] {
        h.run(&[&["INCRBY", "n", by]]);
        assert_eq!(h.topups(), ["n"], "{by:?}");
        h.run(&[&["SET", "n", "7"]]);
    }
    // A value Redis would not count from, and a sum past i64: Redis refused the INCR it did not make.
    h.run(&[&["SET", "m", "007"], &["INCR", "m"]]);
    assert_eq!(h.topups(), ["m"]);
    h.run(&[&["SET", "m", "9223372036854775807"], &["INCR", "m"]]);
    assert_eq!(h.topups(), ["m"]);
}
