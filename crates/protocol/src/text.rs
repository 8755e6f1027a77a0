//! Texts of errors that the npm package's client ships as short codes, the words in its JavaScript.
//!
//! [`text!`](crate::text) gives a static text as it is written, except in a build with the feature `short-texts`
//! (the npm package's client turns it on: `scripts/lib.sh`'s `build_wasm_client`), where it gives a marker and a code
//! of 4 characters (U+FDD0, a noncharacter Unicode keeps for a program's internal use, then the text's FNV-1a hash in
//! base 32): the client's `.wasm` then carries 7 bytes for a text instead of its words.
//! `scripts/wasm-texts.mjs` finds every `text!("…")` in the sources, makes the table of codes and words with the
//! same hash, and puts it in the package's glue, which gives the codes back their words where a string from the
//! `.wasm` becomes a message (an `Error`'s, the console's, the diagnostics' last error), and nowhere else: a page and
//! a Node program read the same messages either way, and data that holds the marker reaches them untouched. Native
//! builds (the relay, the sink, `replicast rdb`) and the tests never turn the feature on.

/// The marker before a code, as UTF-8: U+FDD0.
pub const MARKER: [u8; 3] = [0xEF, 0xB7, 0x90];
/// The code's digits: base 32, four of them (20 bits of the hash).
const DIGITS: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// The marker and code of `text`: U+FDD0, then the low 20 bits of the text's 32-bit FNV-1a hash in base 32, most
/// significant digit first (`scripts/wasm-texts.mjs` computes the same).
pub const fn short(text: &str) -> [u8; 7] {
    let bytes = text.as_bytes();
    let mut hash: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u32;
        hash = hash.wrapping_mul(0x0100_0193);
        i += 1;
    }
    let mut out = [MARKER[0], MARKER[1], MARKER[2], 0, 0, 0, 0];
    let mut d = 0;
    while d < 4 {
        out[3 + d] = DIGITS[((hash >> (5 * (3 - d))) & 31) as usize];
        d += 1;
    }
    out
}

/// A static text of an error: as written, or with the feature `short-texts`, its marker and code (see the module).
#[cfg(not(feature = "short-texts"))]
#[macro_export]
macro_rules! text {
    ($text:literal) => {
        $text
    };
}

/// A static text of an error: as written, or with the feature `short-texts`, its marker and code (see the module).
#[cfg(feature = "short-texts")]
#[macro_export]
macro_rules! text {
    ($text:literal) => {{
        const CODE: [u8; 7] = $crate::text::short($text);
        const TEXT: &str = match ::core::str::from_utf8(&CODE) {
            Ok(text) => text,
            Err(_) => panic!("a text's code is UTF-8"),
        };
        TEXT
    }};
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn a_code_is_the_marker_and_four_digits_of_the_texts_hash() {
        // FNV-1a of "a" is 0xe40c292c; its low 20 bits are 0xc292c: digits 24, 10, 9, 12 in base 32.
        assert_eq!(&short("a"), "\u{FDD0}oa9c".as_bytes());
        assert_ne!(short("a segment's length"), short("a segment's length "));
    }
}
