//! Text from Redis or a browser quoted inside an error message: between double quotes, with the characters that
//! would hide or break the message escaped (`\"`, `\\`, `\n`, `\r`, `\t`, `\0`, other control characters as
//! `\u{…}`), as Rust's `{:?}` writes them. Written out here because `{:?}` on a string pulls core's Debug
//! escaping and its Unicode printability tables into the browser's `.wasm` (a few KB of every page's download);
//! unlike `{:?}`, printable non-ASCII characters that are not control characters (a zero-width space, say) are
//! kept as they are.

use std::fmt::Write;

/// `text` quoted for an error message.
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `bytes` read as UTF-8 (an invalid sequence as U+FFFD), quoted for an error message.
pub fn quoted_lossy(bytes: &[u8]) -> String {
    quoted(&String::from_utf8_lossy(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_debug_escapes() {
        assert_eq!(quoted("cpu"), "\"cpu\"");
        assert_eq!(quoted("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(
            quoted("\r\n\t\0\x1b\x7f\u{85}"),
            r#""\r\n\t\0\u{1b}\u{7f}\u{85}""#
        );
        assert_eq!(quoted_lossy(b"k\xff:1"), "\"k\u{fffd}:1\"");
    }

    // proptest is a native-only dev-dependency: the wasm32 build of these tests runs the one above.
    #[cfg(not(target_arch = "wasm32"))]
    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Over control characters, ASCII and common non-ASCII text (Debug also escapes some characters
            /// that are not control characters, such as unassigned code points, which this leaves out), the
            /// quote is `{:?}`'s.
            #[test]
            fn quotes_as_debug_does(text in "[ -~\\x00-\\x1f\\x7f-\\u{9f}é€😀\u{fffd}]{0,40}") {
                prop_assert_eq!(quoted(&text), format!("{text:?}"));
            }
        }
    }
}
