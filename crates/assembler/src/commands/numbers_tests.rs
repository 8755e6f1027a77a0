//! The number readers against byte literals, and against the C library's own `strtod`.

use super::*;

#[test]
fn string2ll_takes_what_redis_takes() {
    for (text, value) in [
        ("0", 0),
        ("7", 7),
        ("-42", -42),
        ("9223372036854775807", i64::MAX),
        ("-9223372036854775808", i64::MIN),
    ] {
        assert_eq!(string2ll(text.as_bytes()), Some(value), "{text}");
    }
    for text in [
        "",
        "-",
        "+5",
        "007",
        "-0",
        "00",
        " 1",
        "1 ",
        "1e3",
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551616",
        "1\0",
        "0x10",
    ] {
        assert_eq!(string2ll(text.as_bytes()), None, "{text:?}");
    }
}

#[test]
fn stream_ids_read_as_redis_reads_them() {
    for (text, id) in [
        ("1-2", (1, 2)),
        ("5", (5, 0)),
        ("0001-01", (1, 1)),
        ("+3-4", (3, 4)),
        (" 3-4", (3, 4)),
        (
            "18446744073709551615-18446744073709551615",
            (u64::MAX, u64::MAX),
        ),
        ("1-2\0junk", (1, 2)),
    ] {
        assert_eq!(stream_id(text.as_bytes()), Some(id), "{text:?}");
    }
    for text in [
        "-",
        "+",
        "",
        "1-",
        "-1",
        "1-2-3",
        "1-*",
        "*",
        "18446744073709551616-0",
        "1 -2",
    ] {
        assert_eq!(stream_id(text.as_bytes()), None, "{text:?}");
    }
    assert_eq!(stream_id(&[b'1'; 128]), None, "past Redis's buffer");
}

#[test]
fn scores_read_as_string2d_reads_them() {
    for (text, value) in [
        ("0x10", 16.0),
        ("0x1p3", 8.0),
        ("0X1P-2", 0.25),
        ("-0x.8", -0.5),
        ("0x1.8p1", 3.0),
        ("inf", f64::INFINITY),
        ("+Infinity", f64::INFINITY),
        ("-INF", f64::NEG_INFINITY),
        ("5.", 5.0),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("007", 7.0),
        ("4.9e-324", 5e-324),
        ("1.7976931348623157e308", f64::MAX),
    ] {
        assert_eq!(string2d(text.as_bytes()), Some(value), "{text}");
    }
    assert!(string2d(b"-0").unwrap().is_sign_negative());
    for text in [
        "",
        " 5",
        "5 ",
        "nan",
        "-nan",
        "1e400",
        "-1e400",
        "1e-400",
        "0x1p1024",
        "0x1p-1076",
        "0x",
        "0x.",
        "0xp1",
        "0x1p",
        "1e",
        "1e+",
        ".",
        "+",
        "infin",
        "1\0",
        "1_0",
        "0b1",
        "1,5",
    ] {
        assert_eq!(string2d(text.as_bytes()), None, "{text:?}");
    }
}

#[test]
fn range_bounds_read_as_zsl_parse_range_reads_them() {
    for (text, value) in [
        ("", 0.0),
        (" 5", 5.0),
        ("\t0x10", 16.0),
        ("1e400", f64::INFINITY),
        ("-1e400", f64::NEG_INFINITY),
        ("1e-400", 0.0),
        ("5\0junk", 5.0),
        ("\0", 0.0),
    ] {
        assert_eq!(range_double(text.as_bytes()), Some(value), "{text:?}");
    }
    for text in [" ", "5 ", "nan", "x", "1e"] {
        assert_eq!(range_double(text.as_bytes()), None, "{text:?}");
    }
}

#[test]
fn hexadecimal_rounding_at_the_edges() {
    // Ties to even, a carry into the exponent, the smallest subnormal and half of it, the largest double.
    let cases: [(&str, Option<f64>); 9] = [
        ("0x1.00000000000008p0", Some(1.0)),
        ("0x1.00000000000018p0", Some(1.0 + 2.0 * f64::EPSILON)),
        ("0x1.000000000000081p0", Some(1.0 + f64::EPSILON)),
        ("0x1.fffffffffffff8p0", Some(2.0)),
        ("0x1p-1074", Some(5e-324)),
        ("0x1p-1075", None),
        ("0x1.0000000001p-1075", Some(5e-324)),
        ("0x1.fffffffffffffp1023", Some(f64::MAX)),
        ("0x1.fffffffffffff8p1023", None),
    ];
    for (text, value) in cases {
        assert_eq!(string2d(text.as_bytes()), value, "{text}");
    }
    // 70 hex digits: the sticky bit decides a tie.
    let long = format!("0x1.{}1p0", "0".repeat(68));
    assert_eq!(string2d(long.as_bytes()), Some(1.0));
    let over_half = format!("0x1.00000000000008{}1p0", "0".repeat(40));
    assert_eq!(string2d(over_half.as_bytes()), Some(1.0 + f64::EPSILON));
}

/// The C library's own `strtod`, as Redis calls it (glibc, like the Debian build of Redis).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod libc_strtod {
    use std::ffi::{c_char, c_int, CString};

    extern "C" {
        fn strtod(text: *const c_char, end: *mut *mut c_char) -> f64;
        fn __errno_location() -> *mut c_int;
    }
    const ERANGE: c_int = 34;

    /// `strtod` on `text` (without NULs): the value, whether it read all of `text`, and whether it set ERANGE.
    pub fn read(text: &[u8]) -> (f64, bool, bool) {
        let c = CString::new(text).unwrap();
        let mut end: *mut c_char = std::ptr::null_mut();
        // SAFETY: `c` is a NUL-terminated string that outlives the call; `end` points into it or at it.
        unsafe {
            *__errno_location() = 0;
            let value = strtod(c.as_ptr(), &mut end);
            let read = end.offset_from(c.as_ptr()) as usize;
            (value, read == text.len(), *__errno_location() == ERANGE)
        }
    }

    /// Redis's `string2d`, written over the C library's `strtod`.
    pub fn string2d(text: &[u8]) -> Option<f64> {
        if text.is_empty() || text[0].is_ascii_whitespace() || text[0] == 0x0b {
            return None;
        }
        let (value, whole, range) = read(text);
        let refused = !whole || (range && (value.is_infinite() || value == 0.0)) || value.is_nan();
        (!refused).then_some(value)
    }

    /// Redis's `zslParseRange` on one bound (after its `(`), over the C library's `strtod`.
    pub fn range_double(text: &[u8]) -> Option<f64> {
        let (value, whole, _) = read(text);
        (whole && !value.is_nan()).then_some(value)
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod against_libc {
    use super::libc_strtod;
    use super::{range_double, string2d};
    use proptest::prelude::*;

    fn same(a: Option<f64>, b: Option<f64>) -> bool {
        a.map(f64::to_bits) == b.map(f64::to_bits)
    }

    fn check(text: &[u8]) {
        assert!(
            same(string2d(text), libc_strtod::string2d(text)),
            "string2d({:?}): ours {:?}, the C library's {:?}",
            String::from_utf8_lossy(text),
            string2d(text),
            libc_strtod::string2d(text)
        );
        assert!(
            same(range_double(text), libc_strtod::range_double(text)),
            "range bound {:?}: ours {:?}, the C library's {:?}",
            String::from_utf8_lossy(text),
            range_double(text),
            libc_strtod::range_double(text)
        );
    }

    #[test]
    fn edge_literals_read_as_the_c_library_reads_them() {
        let mut texts: Vec<String> = [
            "0x10",
            "0x1p3",
            " 0x1p3",
            "0x1p3 ",
            "inf",
            "INFINITY",
            "-inf",
            "+inf",
            "infinit",
            "nan",
            "nan(1)",
            "-0",
            "+0",
            "0",
            "",
            " ",
            "\t1",
            "\x0b1",
            "1e400",
            "1e-400",
            "4.9e-324",
            "2.4703282292062327e-324",
            "2.4703282292062328e-324",
            "1.7976931348623158e308",
            "1.7976931348623159e308",
            "0x",
            "0x.",
            "0x.p1",
            "0x1p",
            "0x1p+",
            "0x1P-1074",
            "0x1p-1075",
            "0x3p-1076",
            "0x1.fffffffffffff8p1023",
            "0x1.fffffffffffff7ffp1023",
            "0x.000000000001p-1022",
            "0x10000000000000000000000000000000p-128",
            "0x1p99999999999999999999",
            "0x1p-99999999999999999",
            "1e99999999999999999999",
            "1e-99999999999999999999",
            "0e999999",
            "0x0p999999",
            "00000.0000e-5",
            ".",
            "e5",
            "1.2.3",
            "--1",
            "+-1",
            "0x-1",
            "1e+5",
            "1E-5",
            "0x1P+3",
            "5.e3",
            ".e3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Around the subnormal boundary and the largest double, in decimal and hexadecimal.
        for k in 1015..1080 {
            texts.push(format!("0x1.8p-{k}"));
            texts.push(format!("0x1.0000000000001p-{k}"));
            texts.push(format!("1e-{}", k / 3 + 10));
        }
        texts.push(format!("0.{}1e-300", "0".repeat(500)));
        texts.push(format!("{}e-700", "9".repeat(800)));
        for text in &texts {
            check(text.as_bytes());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn random_literals_read_as_the_c_library_reads_them(
            text in "[ +-]?(0[xX])?[0-9a-fA-F]{0,24}(\\.[0-9a-fA-F]{0,24})?([pPeE][+-]?[0-9]{0,4})?"
        ) {
            check(text.as_bytes());
        }

        #[test]
        fn random_bytes_read_as_the_c_library_reads_them(text in "[0-9a-fA-FxXpPeEinfINF. +\\-\t]{0,30}") {
            check(text.as_bytes());
        }
    }
}
