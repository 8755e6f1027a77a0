//! Decimal text to a double, as Rust's `str::parse::<f64>` reads it: the same grammar (digits with an optional
//! point and exponent, `inf`, `infinity`, `nan` in any case, an optional sign) and the same correctly rounded
//! value. Every reader of numbers (RESP3 doubles, `ZADD` scores, JSON samples) goes through here so that the
//! browser's `.wasm` carries one small parser: core's needs a 10 KB table of powers of five (Eisel-Lemire's), about
//! a fifteenth of the client gzipped. In wasm the grammar is checked here, then Clinger's fast path reads the
//! numbers pages see (scores, samples: at most 19 significant digits, the mantissa within 2^53 and the power of ten
//! within ±22, where one multiplication or division of exact doubles is correctly rounded), and the rare rest goes
//! to the JavaScript engine's own `parseFloat`, given only text this grammar accepted (the
//! ECMAScript decimal grammar accepts all of it and reads it the same). ECMAScript lets an engine round past 20
//! significant digits; V8 rounds correctly, which the Chromium tests check on halfway cases of 800 digits. The relay
//! keeps core's, the faster one.

/// The double `text` spells, or `None` when it is not a number in `str::parse::<f64>`'s grammar.
pub fn parse_f64(text: &[u8]) -> Option<f64> {
    #[cfg(target_arch = "wasm32")]
    return match read(text) {
        Read::Invalid => None,
        Read::Exact(value) => Some(value),
        // `read` accepted only ASCII, so the text is UTF-8.
        Read::Hard => std::str::from_utf8(text)
            .ok()
            .map(js_sys::Number::parse_float),
    };
    #[cfg(not(target_arch = "wasm32"))]
    return std::str::from_utf8(text).ok()?.parse().ok();
}

/// What [`read`] made of a text.
#[cfg(any(target_arch = "wasm32", test))]
#[derive(Debug)]
enum Read {
    /// Not a number in `str::parse::<f64>`'s grammar.
    Invalid,
    /// The correctly rounded value.
    Exact(f64),
    /// A number in the grammar that the fast path cannot round: more than 19 significant digits, a mantissa above
    /// 2^53, or a power of ten beyond ±22.
    Hard,
}

/// The powers of ten a double holds exactly: 10^22 is the last (5^22 < 2^53).
#[cfg(any(target_arch = "wasm32", test))]
const POWERS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Checks `text` against `str::parse::<f64>`'s grammar and reads it with Clinger's fast path where that is exact.
#[cfg(any(target_arch = "wasm32", test))]
fn read(text: &[u8]) -> Read {
    let (negative, rest) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let signed = |value: f64| Read::Exact(if negative { -value } else { value });
    if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
        return signed(f64::INFINITY);
    }
    if rest.eq_ignore_ascii_case(b"nan") {
        return signed(f64::NAN);
    }
    // The significant digits (from the first that is not a leading zero), at most 19 of them in `mantissa`.
    let mut mantissa = 0u64;
    let mut significant = 0usize;
    let mut digits = 0usize;
    // The power of ten the mantissa's last digit stands for, before the exponent: minus the fraction's digits.
    let mut scale = 0i64;
    let mut i = 0;
    let mut point = false;
    while let Some(&byte) = rest.get(i) {
        match byte {
            b'0'..=b'9' => {
                digits += 1;
                if significant > 0 || byte != b'0' {
                    significant += 1;
                    // Past 19 the text is `Hard` and the mantissa no longer read.
                    if significant <= 19 {
                        mantissa = mantissa * 10 + u64::from(byte - b'0');
                    }
                }
                if point {
                    scale -= 1;
                }
            }
            b'.' if !point => point = true,
            _ => break,
        }
        i += 1;
    }
    if digits == 0 {
        return Read::Invalid;
    }
    let mut exponent = 0i64;
    if let Some(b'e' | b'E') = rest.get(i) {
        i += 1;
        let negative_exponent = match rest.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while let Some(&byte @ b'0'..=b'9') = rest.get(i) {
            // Saturated well past any double's range: the value is then 0 or infinite, and the slow path says which.
            exponent = (exponent * 10 + i64::from(byte - b'0')).min(1 << 40);
            i += 1;
        }
        if i == start {
            return Read::Invalid;
        }
        if negative_exponent {
            exponent = -exponent;
        }
    }
    if i != rest.len() {
        return Read::Invalid;
    }
    if significant == 0 {
        return signed(0.0);
    }
    let power = scale + exponent;
    if significant > 19 || mantissa > 1 << 53 {
        return Read::Hard;
    }
    // The mantissa and the power of ten are exact doubles: their product or quotient is correctly rounded.
    let value = mantissa as f64;
    match usize::try_from(power.unsigned_abs())
        .ok()
        .and_then(|n| POWERS.get(n))
    {
        Some(&ten) if power >= 0 => signed(value * ten),
        Some(&ten) => signed(value / ten),
        None => Read::Hard,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The edge cases run in Chromium too (`wasm-pack test`): there the compared parser is the one the client ships.
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

    fn same_bits(text: &str, core: f64, ours: f64, by: &str) {
        assert!(
            core.to_bits() == ours.to_bits() || (core.is_nan() && ours.is_nan()),
            "{text:?}: core reads {core:e}, {by} {ours:e}"
        );
    }

    /// `text` is refused or read exactly as core does, both by the fast path (or it says `Hard`) and by the parser
    /// the client ships (in Chromium the fast path and the engine's `parseFloat`; natively core's own).
    fn same_as_core(text: &str) {
        let core: Option<f64> = text.parse().ok();
        match (core, read(text.as_bytes())) {
            (Some(a), Read::Exact(b)) => same_bits(text, a, b, "the fast path"),
            (None, Read::Invalid) | (Some(_), Read::Hard) => {}
            (core, fast) => panic!("{text:?}: core reads {core:?}, the fast path {fast:?}"),
        }
        match (core, parse_f64(text.as_bytes())) {
            (Some(a), Some(b)) => same_bits(text, a, b, "parse_f64"),
            (None, None) => {}
            (core, ours) => panic!("{text:?}: core reads {core:?}, parse_f64 {ours:?}"),
        }
    }

    /// The hot paths (`ZADD` scores, JSON samples, RESP3 doubles) never leave Rust in wasm.
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn short_numbers_take_the_fast_path() {
        for text in [
            "0",
            "-0",
            "1",
            "1.5",
            "-3.25e2",
            "0.1",
            "1699999999.123",
            "42",
            "+7",
            "1e22",
            "1e-22",
            "123456.987654321",
            "9007199254740992",
            "-9.5E+10",
            "0.000001",
            "3.141592653589793",
            ".5",
            "5.",
            "inf",
            "-Infinity",
            "nan",
            "0e999999999999999999999",
        ] {
            assert!(
                matches!(read(text.as_bytes()), Read::Exact(_)),
                "{text:?} leaves the fast path"
            );
            same_as_core(text);
        }
        for text in [
            "1e23",
            "9007199254740993",
            "12345678901234567890",
            "1e-23",
            "4.9e-324",
            "1e308",
        ] {
            assert!(
                matches!(read(text.as_bytes()), Read::Hard),
                "{text:?} is not for the fast path"
            );
        }
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn edges_read_as_core_reads_them() {
        for text in [
            "",
            ".",
            "+",
            "-",
            "e5",
            "1e",
            "1e+",
            "1.",
            ".5",
            "+1",
            "-0",
            "0x10",
            "1_0",
            " 1",
            "1 ",
            "1..2",
            "1e5.5",
            "inf",
            "-inf",
            "+inf",
            "INF",
            "Infinity",
            "-infinity",
            "infinit",
            "infinityy",
            "nan",
            "NaN",
            "-nan",
            "+NAN",
            "nana",
            "1e+5",
            "1e-5",
            "1E5",
            "9007199254740993",
            "2.2250738585072011e-308",
            "2.2250738585072014e-308",
            "4.9e-324",
            "2.4703282292062327e-324",
            "2.4703282292062328e-324",
            "1.7976931348623157e308",
            "1.7976931348623158e308",
            "1.7976931348623159e308",
            "1e400",
            "-1e400",
            "1e-400",
            "123456789012345678901234567890e-20",
            "00000000000000000000000001.5",
            // Signs and spellings.
            "iNfInItY",
            "+Infinity",
            "-INF",
            "nAn",
            "-NaN",
            "in",
            "na",
            "infinityinfinity",
            "+-1",
            "--1",
            "-+1",
            "1e+-5",
            "1e--5",
            "-.",
            "+.e1",
            ".e1",
            "1.e1",
            "-.5e-3",
            "1ee5",
            "1e5e5",
            "0.0.0",
            "é",
            "1\u{0}",
            // Exponents past every double, with and without a mantissa that matters.
            "1e99999999999999999999999",
            "1e-99999999999999999999999",
            "0e99999999999999999999999",
            "-0.0e-999999999999",
            "0.00000000000000000000000000000000000000000000000000000001e99999999999999999",
            // The ends of the range, subnormals, and Clinger's bounds (10^22 exact, 10^23 not; 2^53 and 2^53 + 1).
            "1e308",
            "1e309",
            "-1e308",
            "1e-324",
            "-1e-324",
            "5e-324",
            "3e-324",
            "2e-324",
            "1e-323",
            "2.225073858507201e-308",
            "4.940656458412465441765687928682213723651e-324",
            "1e22",
            "1e23",
            "-1e-22",
            "1e-23",
            "9007199254740992",
            "9007199254740992e22",
            "9007199254740992e-22",
            "9007199254740993e-22",
            "9007199254740994",
            "9007199254740995",
            "18014398509481985",
            "8.98846567431158e307",
            // 19, 20 and more significant digits, and halfway cases between two doubles.
            "1234567890123456789",
            "9999999999999999999",
            "12345678901234567890",
            "99999999999999999999e-20",
            "0.1000000000000000055511151231257827021181583404541015625",
            "0.10000000000000000555111512312578270211815834045410156250000001",
            "0.1000000000000000055511151231257827021181583404541015624",
            "9007199254740993.0000000000000000000001",
            "9007199254740993.0000000000000000000000",
            "1.00000000000000011102230246251565404236316680908203125",
            "1.00000000000000011102230246251565404236316680908203124",
            "1.00000000000000011102230246251565404236316680908203126",
            "7.2057594037927933e16",
            "123456789012345678901234567890e-400",
        ] {
            same_as_core(text);
        }
        // Halfway cases that only the exact (big-integer) path decides: a 1 hundreds of digits after the point.
        same_as_core(&format!("1.{}1", "0".repeat(800)));
        same_as_core(&format!("9007199254740993.{}1", "0".repeat(700)));
        // Half the smallest subnormal (2^-1075) in full: a tie, then just above it.
        let half_smallest = "2.4703282292062327208828439643411068618252990130716238221279284125033775363510437593264991818081799618989828234772285886546332835517796989819938739800539093906315035659515570226392290858392449105184435931802849936536152500319370457678249219365623669863658480757001585769269903706311928279558551332927834338409351978015531246597263579574622766465272827220056374006485499977096599470454020828166226237857393450736339007967761930577506740176324673600968951340535537458516661134223766678604162159680461914467291840300530057530849048765391711386591646239524912623653881879636239373280423891018672348497668235089863388587925628302755995657524455507255189313690836254779186948667994968324049705821028513185451396213837722826145437693412532098591327667236328125";
        same_as_core(&format!("{half_smallest}e-324"));
        same_as_core(&format!("{half_smallest}{}1e-324", "0".repeat(300)));
    }

    // proptest is a native-only dev-dependency: the wasm32 build of these tests runs the one above.
    #[cfg(not(target_arch = "wasm32"))]
    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(20_000))]

            /// Any text of a number's characters: accepted and refused alike, and the same value.
            #[test]
            fn number_characters(text in "[0-9.eE+-infatyINFATY]{0,24}") {
                same_as_core(&text);
            }

            /// Well-formed decimals with long mantissas and exponents near the ends of the double range.
            #[test]
            fn decimals(text in "[+-]?[0-9]{0,40}(\\.[0-9]{0,40})?([eE][+-]?[0-9]{1,3})?") {
                same_as_core(&text);
            }

            /// Clinger's fast path: a mantissa of at most 2^53 and a power of ten within ±22, written with the point
            /// anywhere and leading zeros, is read here (never `Hard`) and exactly as core reads it.
            #[test]
            fn fast_path(
                mantissa in 0u64..=1 << 53,
                power in -22i32..=22,
                zeros in 0usize..4,
                negative: bool,
            ) {
                let digits = mantissa.to_string();
                let sign = if negative { "-" } else { "" };
                let lead = "0".repeat(zeros);
                for text in [
                    format!("{sign}{lead}{digits}e{power}"),
                    format!("{sign}{lead}{digits}.e{power}"),
                    // The point inside the digits, the exponent making up for it.
                    format!("{sign}{lead}{}.{}E{:+}", &digits[..1], &digits[1..], power + digits.len() as i32 - 1),
                ] {
                    prop_assert!(matches!(read(text.as_bytes()), Read::Exact(_)), "{text:?} left the fast path");
                    same_as_core(&text);
                }
            }

            /// Every double, in the texts Rust writes for it (shortest, scientific, and 30 digits that are not
            /// the shortest and so round through the slow path).
            #[test]
            fn written_doubles(x in any::<f64>()) {
                same_as_core(&format!("{x}"));
                same_as_core(&format!("{x:e}"));
                same_as_core(&format!("{x:.30e}"));
            }
        }
    }
}
