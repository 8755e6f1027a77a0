//! The scalars of `replicast rdb`'s JSON Lines — strings, base64 of binary values, integers, scores — written
//! straight to the output with no allocation and no formatting machinery, since a dump has one or more per element
//! and their cost is most of the export's. The bytes are exactly those serde_json writes for the same values
//! (short escapes for `\b \t \n \f \r`, `\u00xx` in lowercase hex for the other control characters, nothing else
//! escaped; floats in zmij's shortest form, serde_json's own formatter), so the output did not change when this
//! replaced serde_json here; the unit tests below hold it to serde_json's bytes.

use std::io::{self, Write};

use super::json_output::{JsonOutput, MIN_JSON_BUFFER};

/// The escape of each byte inside a JSON string: 0 for none, `u` for `\u00xx`, else the character after `\`.
static ESCAPE: [u8; 256] = escapes();

const fn escapes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
}

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The bytes of a word that JSON escapes — below 0x20, `"` or `\` — with their high bit set, eight at a time: a
/// borrow only ever reaches a byte above a true match, so the lowest bit set marks the first one, and a word
/// without any gives 0.
#[inline(always)]
fn escape_mask(w: u64) -> u64 {
    let below_space = w.wrapping_sub(LOW_BITS * 0x20) & !w;
    let quote = (w ^ (LOW_BITS * u64::from(b'"'))).wrapping_sub(LOW_BITS)
        & !(w ^ (LOW_BITS * u64::from(b'"')));
    let backslash = (w ^ (LOW_BITS * u64::from(b'\\'))).wrapping_sub(LOW_BITS)
        & !(w ^ (LOW_BITS * u64::from(b'\\')));
    (below_space | quote | backslash) & HIGH_BITS
}

/// The index of the first byte from `from` on that needs an escape: a word at a time, the last few bytes through
/// the table.
fn next_escape(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(word) = bytes.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let found = escape_mask(u64::from_le_bytes(word));
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < bytes.len() && ESCAPE[bytes[i] as usize] == 0 {
        i += 1;
    }
    i
}

/// Whether a word holds a byte that cannot stand as it is in a JSON string of plain text: one JSON escapes, or one
/// above 0x7f (UTF-8 to check, or binary).
#[inline(always)]
fn has_special_byte(w: u64) -> bool {
    (escape_mask(w) | (w & HIGH_BITS)) != 0
}

/// Whether `bytes` are printable ASCII without `"` or `\`, which a JSON string holds as they are: keys, field
/// names and decimal text mostly are. Eight bytes at a time; the last word overlaps the one before it when the
/// length is not a multiple of eight, so only strings shorter than a word are checked byte by byte.
pub(super) fn is_plain_text(bytes: &[u8]) -> bool {
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(w)
    };
    if bytes.len() < 8 {
        return bytes
            .iter()
            .all(|&b| (0x20..0x80).contains(&b) && ESCAPE[b as usize] == 0);
    }
    let mut i = 0;
    while i + 8 < bytes.len() {
        if has_special_byte(word(i)) {
            return false;
        }
        i += 8;
    }
    !has_special_byte(word(bytes.len() - 8))
}

/// Whether `bytes` are UTF-8. Keys and field names are mostly ASCII, checked eight bytes at a time here; only from
/// the first byte above 0x7f on does the standard validation run (an ASCII prefix is valid whatever follows), which
/// spares its per-call cost on the short strings that make up most elements.
pub(super) fn is_utf8(bytes: &[u8]) -> bool {
    let mut i = 0;
    while let Some(word) = bytes.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let high = u64::from_le_bytes(word) & HIGH_BITS;
        if high != 0 {
            // Straight to the first byte above 0x7f (a byte-by-byte search mispredicts on random bytes).
            i += (high.trailing_zeros() / 8) as usize;
            break;
        }
        i += 8;
    }
    while bytes.get(i).is_some_and(u8::is_ascii) {
        i += 1;
    }
    match bytes.get(i..).unwrap_or_default() {
        [] => true,
        // A byte no UTF-8 sequence starts with, or a lead byte without a continuation byte after it: binary, told
        // without the standard validation's call. Random bytes, which most values of a dump are, end here at
        // their first byte above 0x7f nine times in ten.
        [lead, ..] if !(0xc2..=0xf4).contains(lead) => false,
        [_] => false,
        [_, next, ..] if next & 0xc0 != 0x80 => false,
        rest => std::str::from_utf8(rest).is_ok(),
    }
}

/// A JSON string of `text` (UTF-8), escaped as serde_json does: runs needing no escape are copied whole.
pub(super) fn write_str(out: &mut JsonOutput<impl Write>, bytes: &[u8]) -> io::Result<()> {
    out.write_all(b"\"")?;
    let mut run = 0;
    loop {
        let at = next_escape(bytes, run);
        out.write_all(&bytes[run..at])?;
        let Some(&byte) = bytes.get(at) else {
            break;
        };
        match ESCAPE[byte as usize] {
            b'u' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.write_all(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 0xf)],
                ])?
            }
            escape => out.write_all(&[b'\\', escape])?,
        }
        run = at + 1;
    }
    out.write_all(b"\"")
}

/// A JSON string of bytes [`is_plain_text`] accepted, copied whole.
pub(super) fn write_plain_text(out: &mut JsonOutput<impl Write>, bytes: &[u8]) -> io::Result<()> {
    out.write_all(b"\"")?;
    out.write_all(bytes)?;
    out.write_all(b"\"")
}

/// Input bytes encoded per step: a multiple of 3, so that only the last step can carry `=` padding, and at most
/// the room [`JsonOutput`] promises once encoded.
const BASE64_STEP: usize = MIN_JSON_BUFFER / 4 * 3;

/// `{"base64":"..."}` of `bytes`, encoded straight into the output buffer, with SIMD where the CPU has it
/// (base64-simd: about 8% of the export's CPU time less than the base64 crate's scalar encoder on the mixed dump).
pub(super) fn write_base64(out: &mut JsonOutput<impl Write>, bytes: &[u8]) -> io::Result<()> {
    out.write_all(b"{\"base64\":\"")?;
    for step in bytes.chunks(BASE64_STEP) {
        let room = out.room(step.len().div_ceil(3) * 4)?;
        let encoded = base64_simd::STANDARD
            .encode(step, base64_simd::Out::from_slice(room))
            .len();
        out.advance(encoded);
    }
    out.write_all(b"\"}")
}

pub(super) fn write_u64(out: &mut JsonOutput<impl Write>, n: u64) -> io::Result<()> {
    out.write_all(itoa::Buffer::new().format(n).as_bytes())
}

pub(super) fn write_i64(out: &mut JsonOutput<impl Write>, n: i64) -> io::Result<()> {
    out.write_all(itoa::Buffer::new().format(n).as_bytes())
}

/// A finite float in the shortest form that reads back the same, as serde_json writes it.
pub(super) fn write_finite_f64(out: &mut JsonOutput<impl Write>, x: f64) -> io::Result<()> {
    out.write_all(zmij::Buffer::new().format_finite(x).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    /// What `write` puts out, through a buffer of the smallest size.
    fn written(write: impl FnOnce(&mut JsonOutput<&mut Vec<u8>>) -> io::Result<()>) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut out = JsonOutput::with_capacity(0, &mut bytes);
        write(&mut out).unwrap();
        out.flush().unwrap();
        drop(out);
        bytes
    }

    fn string_of(text: &str) -> Vec<u8> {
        written(|out| write_str(out, text.as_bytes()))
    }

    #[test]
    fn utf8_is_told_from_other_bytes_wherever_the_first_non_ascii_byte_is() {
        for text in [
            "",
            "a",
            "ascii only, longer than a word",
            "é",
            "0123456é",
            "01234567€x",
            "\u{10ffff}",
        ] {
            assert!(is_utf8(text.as_bytes()), "{text:?}");
        }
        for bytes in [
            &b"\xff"[..],
            b"0123456\xc3",
            b"01234567\xc3(",
            b"0123456789abcdef\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"caf\xc3\xa9\xff",
        ] {
            assert!(!is_utf8(bytes), "{bytes:?}");
        }
    }

    #[test]
    fn plain_text_is_printable_ascii_without_quote_or_backslash_at_every_length_and_place() {
        let plain = |bytes: &[u8]| {
            bytes
                .iter()
                .all(|&b| (0x20..0x80).contains(&b) && b != b'"' && b != b'\\')
        };
        // Each byte value at each place of strings of 0 to 25 bytes (shorter than a word, whole words, and a last
        // word overlapping the one before), among plain text on either side.
        for len in 0..=25 {
            assert!(is_plain_text(&vec![b'a'; len]), "length {len}");
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut bytes = vec![b'~'; len];
                    bytes[at] = byte;
                    assert_eq!(
                        is_plain_text(&bytes),
                        plain(&bytes),
                        "{byte:#04x} at {at} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn binary_bytes_that_fail_at_their_first_byte_above_ascii_are_not_utf8() {
        // Told without `from_utf8`: a byte no sequence starts with, a lead byte at the end or before a byte that
        // does not continue it; and, through it, sequences whose first two bytes look right.
        for bytes in [
            &b"abc\x80"[..],
            b"abc\xc1\x81",
            b"\xf5\x80\x80\x80",
            b"\xc3",
            b"\xe2\x82",
            b"\xc3A",
            b"\xe0\x80\x80",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
        ] {
            assert!(!is_utf8(bytes), "{bytes:?}");
            assert_eq!(std::str::from_utf8(bytes).is_ok(), is_utf8(bytes));
        }
        for text in [
            "\u{80}",
            "\u{7ff}",
            "\u{800}",
            "\u{fffd}",
            "\u{10000}",
            "\u{10ffff}",
        ] {
            assert!(is_utf8(text.as_bytes()), "{text:?}");
        }
    }

    #[test]
    fn strings_escape_quotes_backslashes_and_control_characters_only() {
        assert_eq!(string_of(""), b"\"\"");
        assert_eq!(string_of("plain text"), b"\"plain text\"");
        assert_eq!(string_of("a\"b\\c"), b"\"a\\\"b\\\\c\"");
        assert_eq!(
            string_of("\u{8}\t\n\u{c}\r"),
            b"\"\\b\\t\\n\\f\\r\"".as_slice()
        );
        assert_eq!(
            string_of("\0\u{1}\u{b}\u{1f}"),
            b"\"\\u0000\\u0001\\u000b\\u001f\"".as_slice()
        );
        // DEL, `/`, U+2028 and U+2029 are valid as they are in JSON, and serde_json leaves them.
        assert_eq!(
            string_of("\u{7f}/\u{2028}\u{2029}é"),
            "\"\u{7f}/\u{2028}\u{2029}é\"".as_bytes()
        );
    }

    #[test]
    fn escapes_are_found_at_every_place_in_a_word_and_in_the_tail() {
        // Each escaped byte at each offset of a 19-byte string: in the first word, the second, and the 3-byte tail.
        for special in ["\"", "\\", "\n", "\u{1}", "\u{1f}"] {
            for at in 0..19 {
                let mut text = "x".repeat(19);
                text.replace_range(at..at + 1, special);
                assert_eq!(
                    string_of(&text),
                    serde_json::to_vec(&text).unwrap(),
                    "{special:?} at {at}"
                );
            }
        }
        // Bytes just outside the escaped ranges, next to ones inside, in one word: borrows must not spill.
        let text = "\u{1f} !\"#[\\]\u{0}";
        assert_eq!(string_of(text), serde_json::to_vec(text).unwrap());
    }

    #[test]
    fn every_character_below_0x800_is_written_as_serde_json_writes_it() {
        let text: String = (0..0x800u32).filter_map(char::from_u32).collect();
        assert_eq!(string_of(&text), serde_json::to_vec(&text).unwrap());
    }

    #[test]
    fn base64_is_padded_only_at_the_end_of_values_longer_than_a_step() {
        let engine = base64::engine::general_purpose::STANDARD;
        for len in [
            0,
            1,
            2,
            3,
            BASE64_STEP - 1,
            BASE64_STEP,
            BASE64_STEP + 1,
            3 * BASE64_STEP + 2,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 131 + 7) as u8).collect();
            let out = written(|out| write_base64(out, &bytes));
            let expected = format!("{{\"base64\":\"{}\"}}", engine.encode(&bytes));
            assert_eq!(out, expected.as_bytes(), "length {len}");
            // The same value starting just before the end of the output buffer.
            let filler = vec![b' '; MIN_JSON_BUFFER - 13];
            let out = written(|out| {
                out.put(&filler)?;
                write_base64(out, &bytes)
            });
            assert_eq!(
                out[filler.len()..],
                *expected.as_bytes(),
                "length {len} at the buffer's end"
            );
        }
        let out = written(|out| write_base64(out, b"\xff\xfe\x00"));
        assert_eq!(out, b"{\"base64\":\"//4A\"}");
    }

    #[test]
    fn numbers_are_written_as_serde_json_writes_them() {
        for n in [0, 1, 9, 10, 1_234_567, u64::MAX] {
            let out = written(|out| write_u64(out, n));
            assert_eq!(out, n.to_string().as_bytes());
        }
        for n in [0, -1, i64::MIN, i64::MAX] {
            let out = written(|out| write_i64(out, n));
            assert_eq!(out, n.to_string().as_bytes());
        }
        for x in [
            0.0,
            -0.0,
            1.5,
            -2.25,
            0.1,
            1e21,
            1e-7,
            123456789.125,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
        ] {
            let out = written(|out| write_finite_f64(out, x));
            assert_eq!(out, serde_json::to_vec(&x).unwrap(), "{x}");
        }
        let out = written(|out| write_finite_f64(out, 1.5));
        assert_eq!(out, b"1.5");
    }
}
