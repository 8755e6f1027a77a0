use crate::assembled::Harness;

#[test]
fn fields_values_and_history() {
    let mut h = Harness::new(&["*"], 10);
    h.run(&[
        &["HSET", "h", "a", "1", "b", "2"],
        &["HMSET", "h", "a", "3"],
        &["HSETNX", "h", "c", "4"],
        &["HINCRBY", "h", "b", "5"],
        &["HINCRBY", "h", "n", "-2"],
        &["HDEL", "h", "c"],
    ]);
    assert_eq!(h.rows("h"), ["a=3", "b=7", "n=-2"]);
    let w = h.a.window(b"h").unwrap().as_hash().unwrap();
    let order: Vec<String> = w
        .newest_first()
        .map(|(f, v, prev)| {
            let prev: Vec<String> = prev
                .iter()
                .map(|p| String::from_utf8_lossy(p).into())
                .collect();
            format!(
                "{}={} {prev:?}",
                String::from_utf8_lossy(f),
                String::from_utf8_lossy(v)
            )
        })
        .collect();
    assert_eq!(order, [r#"n=-2 []"#, r#"b=7 ["2"]"#, r#"a=3 ["1"]"#]);
    h.run(&[&["HDEL", "h", "a", "b", "n"]]);
    assert!(h.a.window(b"h").is_none());
}

#[test]
fn a_hash_over_the_window_drops_its_least_recently_changed_fields() {
    let mut h = Harness::new(&["*"], 2);
    h.run(&[&["HSET", "h", "a", "1", "b", "2", "c", "3"]]);
    let w = h.a.window(b"h").unwrap().as_hash().unwrap();
    assert_eq!((w.len(), w.dropped(), w.complete()), (2, 1, false));
    assert_eq!(h.rows("h"), ["b=2", "c=3"]);
    h.run(&[&["HINCRBY", "h", "a", "1"]]);
    assert_eq!(h.topups(), ["h"], "a dropped field's value is unknown");
}
