//! Decimal text to a double, as Rust's `str::parse::<f64>` reads it: the same grammar (digits with an optional
//! point and exponent, `inf`, `infinity`, `nan` in any case, an optional sign) and the same correctly rounded
//! value. Every reader of numbers (RESP3 doubles, `ZADD` scores, JSON samples) goes through here so that the
//! browser's `.wasm` carries one parser: core's needs a 10 KB table of powers of five (Eisel-Lemire's), about a
//! fifteenth of the client gzipped, which `lexical-parse-float`'s `compact` algorithms compute instead. The relay
//! keeps core's, the faster one.

/// The double `text` spells, or `None` when it is not a number in `str::parse::<f64>`'s grammar.
pub fn parse_f64(text: &[u8]) -> Option<f64> {
    #[cfg(target_arch = "wasm32")]
    return compact(text);
    #[cfg(not(target_arch = "wasm32"))]
    return std::str::from_utf8(text).ok()?.parse().ok();
}

#[cfg(any(target_arch = "wasm32", test))]
fn compact(text: &[u8]) -> Option<f64> {
    use lexical_parse_float::FromLexical;
    f64::from_lexical(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The edge cases run in Chromium too (`wasm-pack test`): there the compared parser is the one the client ships.
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

    fn same_as_core(text: &str) {
        let core: Option<f64> = text.parse().ok();
        let ours = compact(text.as_bytes());
        match (core, ours) {
            (Some(a), Some(b)) => assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{text:?}: core reads {a:e}, compact {b:e}"
            ),
            (None, None) => {}
            _ => panic!("{text:?}: core reads {core:?}, compact {ours:?}"),
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
