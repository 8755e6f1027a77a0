use super::*;

const SAMPLE: &[u8] =
    br#"{"id":"a1","t":1700000000123,"host":"h1","cpu":{"total":12.5,"cores":[10,15]},
  "mem":{"used":1024,"available":2048},"load":[0.5,0.4,0.3],"net":{"eth0":{"rx":123456789,"tx":42}},
  "tags":["x","y"],"ok":true,"none":null,"s":"12","nested":{"cpu":{"total":99}}}"#;

fn extract(doc: &[u8], paths: &[&str]) -> Result<Vec<Found>, JsonError> {
    let set = PathSet::new(paths).unwrap();
    let mut out = vec![Found::Missing; paths.len()];
    set.extract(doc, &mut out).map(|()| out)
}

fn numbers(doc: &[u8], paths: &[&str]) -> Vec<Option<f64>> {
    extract(doc, paths)
        .unwrap()
        .into_iter()
        .map(|f| match f {
            Found::Number(r) => parse_number(&doc[r]),
            _ => None,
        })
        .collect()
}

#[test]
fn finds_top_level_nested_and_indexed_numbers() {
    let got = numbers(
        SAMPLE,
        &[
            "t",
            "cpu.total",
            "net.eth0.rx",
            "load.0",
            "load.2",
            "cpu.cores.1",
            "mem.used",
        ],
    );
    let want = [1700000000123.0, 12.5, 123456789.0, 0.5, 0.3, 15.0, 1024.0];
    assert_eq!(got, want.map(Some));
}

#[test]
fn strings_booleans_containers_and_absent_paths_are_not_numbers() {
    let got = extract(
        SAMPLE,
        &[
            "s",
            "host",
            "ok",
            "none",
            "cpu",
            "load.3",
            "nope",
            "cpu.total.x",
            "tags.0",
        ],
    )
    .unwrap();
    let host = SAMPLE.windows(4).position(|w| w == b"\"h1\"").unwrap() + 1;
    assert_eq!(got[1], Found::String(host..host + 2));
    assert!(matches!(got[0], Found::String(_)));
    assert_eq!(&got[2..5], &[Found::Other, Found::Other, Found::Other]);
    assert_eq!(
        &got[5..8],
        &[Found::Missing, Found::Missing, Found::Missing]
    );
    assert!(matches!(got[8], Found::String(_)));
}

#[test]
fn the_empty_path_is_the_whole_document() {
    assert_eq!(numbers(b" 42.5 ", &[""]), [Some(42.5)]);
    assert_eq!(numbers(b"-0", &["", "x"]), [Some(0.0), None]);
}

#[test]
fn the_last_of_repeated_members_wins() {
    assert_eq!(numbers(br#"{"a":1,"a":2}"#, &["a"]), [Some(2.0)]);
}

#[test]
fn an_index_also_matches_a_member_named_by_digits() {
    assert_eq!(numbers(br#"{"load":{"0":7}}"#, &["load.0"]), [Some(7.0)]);
}

#[test]
fn invalid_documents_are_typed_errors_with_offsets() {
    let cases: &[(&[u8], JsonError)] = &[
        (
            b"",
            JsonError::Invalid {
                offset: 0,
                expected: "a value",
            },
        ),
        (
            b"{\"a\":1",
            JsonError::Invalid {
                offset: 6,
                expected: "',' or '}'",
            },
        ),
        (
            b"{\"a\" 1}",
            JsonError::Invalid {
                offset: 5,
                expected: "':'",
            },
        ),
        (
            b"{a:1}",
            JsonError::Invalid {
                offset: 1,
                expected: "a member name",
            },
        ),
        (
            b"[1,]",
            JsonError::Invalid {
                offset: 3,
                expected: "a value",
            },
        ),
        (
            b"01",
            JsonError::Invalid {
                offset: 1,
                expected: "the end of the document",
            },
        ),
        (
            b"1.",
            JsonError::Invalid {
                offset: 2,
                expected: "a digit after '.'",
            },
        ),
        (
            b"1e+",
            JsonError::Invalid {
                offset: 3,
                expected: "a digit in the exponent",
            },
        ),
        (
            b"tru",
            JsonError::Invalid {
                offset: 0,
                expected: "true, false or null",
            },
        ),
        (
            b"\"a\\x\"",
            JsonError::Invalid {
                offset: 3,
                expected: "an escape",
            },
        ),
        (
            b"\"\\u12g4\"",
            JsonError::Invalid {
                offset: 5,
                expected: "4 hex digits",
            },
        ),
        (
            b"\"a\nb\"",
            JsonError::Invalid {
                offset: 2,
                expected: "no control character in a string",
            },
        ),
        (
            b"{} {}",
            JsonError::Invalid {
                offset: 3,
                expected: "the end of the document",
            },
        ),
        (b"{\"a\":\xff}", JsonError::NotUtf8 { offset: 5 }),
        (
            b"perf sample",
            JsonError::Invalid {
                offset: 0,
                expected: "a value",
            },
        ),
    ];
    for (doc, want) in cases {
        assert_eq!(
            extract(doc, &["a"]).unwrap_err(),
            *want,
            "{:?}",
            String::from_utf8_lossy(doc)
        );
    }
}

#[test]
fn nesting_is_bounded_without_recursion() {
    let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert!(extract(ok.as_bytes(), &["0"]).is_ok());
    let deep = "[".repeat(1 << 20);
    assert_eq!(
        extract(deep.as_bytes(), &["0"]).unwrap_err(),
        JsonError::TooDeep { offset: MAX_DEPTH }
    );
    let deep_objects = "{\"a\":".repeat(MAX_DEPTH + 1);
    assert!(matches!(
        extract(deep_objects.as_bytes(), &["a.a"]),
        Err(JsonError::TooDeep { .. })
    ));
}

#[test]
fn parse_number_takes_exactly_one_finite_json_number() {
    assert_eq!(parse_number(b"12"), Some(12.0));
    assert_eq!(parse_number(b"-1.5E+3"), Some(-1500.0));
    for bad in [
        &b""[..],
        b" 1",
        b"1 ",
        b"+1",
        b"0x10",
        b"inf",
        b"NaN",
        b".5",
        b"1e999",
        b"00",
    ] {
        assert_eq!(
            parse_number(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn too_many_or_too_deep_paths_are_refused() {
    let many: Vec<String> = (0..=MAX_PATHS).map(|i| i.to_string()).collect();
    assert_eq!(
        PathSet::new(&many).unwrap_err(),
        PathError::TooMany(MAX_PATHS + 1)
    );
    let deep = vec!["a"; MAX_DEPTH + 1].join(".");
    assert!(matches!(PathSet::new(&[deep]), Err(PathError::TooDeep(_))));
}

#[cfg(not(target_arch = "wasm32"))]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i32>().prop_map(serde_json::Value::from),
            (-1e9..1e9f64).prop_map(serde_json::Value::from),
            "[a-c]{0,3}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(5, 40, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[a-c0-2]{1,2}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn lookup<'a>(mut v: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
        if path.is_empty() {
            return Some(v);
        }
        for part in path.split('.') {
            v = match v {
                serde_json::Value::Object(m) => m.get(part)?,
                serde_json::Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(v)
    }

    proptest! {
        #[test]
        fn agrees_with_serde_json(doc in json(), paths in prop::collection::vec("[a-c0-2]{1,2}(\\.[a-c0-2]{1,2}){0,2}", 1..6), pretty in any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&doc) } else { serde_json::to_string(&doc) }.unwrap();
            let bytes = text.as_bytes();
            let found = extract(bytes, &paths.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
            for (path, found) in paths.iter().zip(found) {
                let want = lookup(&doc, path);
                match (want, found) {
                    (None, Found::Missing) => {}
                    (Some(serde_json::Value::Number(n)), Found::Number(r)) => {
                        prop_assert_eq!(parse_number(&bytes[r]), n.as_f64());
                    }
                    (Some(serde_json::Value::String(s)), Found::String(r)) => {
                        prop_assert_eq!(&bytes[r], s.as_bytes());
                    }
                    (Some(serde_json::Value::Bool(_) | serde_json::Value::Null | serde_json::Value::Array(_) | serde_json::Value::Object(_)), Found::Other) => {}
                    (want, found) => prop_assert!(false, "{path}: {want:?} vs {found:?} in {text}"),
                }
            }
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(prop_oneof![Just(b'{'), Just(b'}'), Just(b'['), Just(b']'), Just(b'"'), Just(b':'), Just(b','), Just(b'1'), Just(b'a'), any::<u8>()], 0..64)) {
            let _ = extract(&bytes, &["a", "0", "a.0", ""]);
            let valid = serde_json::from_slice::<serde_json::Value>(&bytes).is_ok();
            prop_assert_eq!(extract(&bytes, &["a"]).is_ok(), valid, "{:?}", String::from_utf8_lossy(&bytes));
        }
    }
}
