//! Reading numbers, scores and ranges out of command arguments, as Redis writes them.

use std::ops::Bound;

pub(crate) fn parse_ascii<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

pub(crate) fn int(bytes: &[u8]) -> Option<i64> {
    parse_ascii(bytes)
}

/// Most digits of an integer score read without the float parser: below 2^53, so exactly a float.
const EXACT_DIGITS: usize = 15;

/// A score as Redis writes it: a decimal or `inf`/`+inf`/`-inf`; never NaN.
#[inline]
pub(crate) fn score(bytes: &[u8]) -> Option<f64> {
    // Collectors score by Unix milliseconds: plain integers, read here digit by digit (exactly as the float
    // parser would read them, `-0` included). Anything else takes the float parser.
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    if !digits.is_empty() && digits.len() <= EXACT_DIGITS {
        // The first 8 digits at once when there are that many (a millisecond time has 13), the rest one by one;
        // checked as they are added up.
        let (mut n, mut all_digits, rest) = match digits.split_first_chunk::<8>() {
            Some((eight, rest)) => match eight_digits(u64::from_le_bytes(*eight)) {
                Some(n) => (n, true, rest),
                None => (0, false, rest),
            },
            None => (0, true, digits),
        };
        for &b in rest {
            let digit = b.wrapping_sub(b'0');
            all_digits &= digit <= 9;
            n = n * 10 + u64::from(digit);
        }
        if all_digits {
            let n = n as f64;
            return Some(if negative { -n } else { n });
        }
    }
    parse_ascii::<f64>(bytes).filter(|s| !s.is_nan())
}

/// The number 8 ASCII digits write (the first in the lowest byte of `word`), or `None` if a byte is not a digit.
#[inline(always)]
fn eight_digits(word: u64) -> Option<u64> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // Each byte less '0': a digit leaves 0..=9. A byte below '0' wraps to 0xd0 or more (and borrows from the
    // bytes above, whose values no longer matter then).
    let v = word.wrapping_sub(ONES * u64::from(b'0'));
    // A high bit set for any byte not in 0..=9: adding 0x76 sets it for 10 and more.
    if (v.wrapping_add(ONES * 0x76) | v) & (ONES * 0x80) != 0 {
        return None;
    }
    // Pairs, then quads, then all eight: each step multiplies the higher-order half by a power of ten.
    let v = (v.wrapping_mul(10 << 8 | 1) >> 8) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100 << 16 | 1) >> 16) & 0x0000_FFFF_0000_FFFF;
    Some(v.wrapping_mul(10_000 << 32 | 1) >> 32)
}

/// A score bound of `ZREMRANGEBYSCORE`: `1.5`, `(1.5` (exclusive), `-inf`, `+inf`.
pub(crate) fn score_bound(bytes: &[u8]) -> Option<Bound<f64>> {
    match bytes.strip_prefix(b"(") {
        Some(rest) => score(rest).map(Bound::Excluded),
        None => score(bytes).map(Bound::Included),
    }
}

/// A member bound of `ZREMRANGEBYLEX`: `[a` (inclusive), `(a` (exclusive), `-`, `+`.
pub(crate) fn lex_bound(bytes: &[u8], low: bool) -> Option<Bound<&[u8]>> {
    match bytes.split_first()? {
        (b'[', rest) => Some(Bound::Included(rest)),
        (b'(', rest) => Some(Bound::Excluded(rest)),
        (b'-', []) if low => Some(Bound::Unbounded),
        (b'+', []) if !low => Some(Bound::Unbounded),
        // `-` as the high bound or `+` as the low one: an empty range.
        (b'-', []) | (b'+', []) => None,
        _ => None,
    }
}

/// Whether `value` is within `low..high`.
pub(crate) fn within<T: PartialOrd + ?Sized>(value: &T, low: Bound<&T>, high: Bound<&T>) -> bool {
    let above = match low {
        Bound::Included(l) => value >= l,
        Bound::Excluded(l) => value > l,
        Bound::Unbounded => true,
    };
    let below = match high {
        Bound::Included(h) => value <= h,
        Bound::Excluded(h) => value < h,
        Bound::Unbounded => true,
    };
    above && below
}

/// Whether `arg` is `word`, ignoring ASCII case.
pub(crate) fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_scores_read_as_the_float_parser_reads_them() {
        for text in [
            "0",
            "-0",
            "7",
            "007",
            "-42",
            "1700000000000",
            "999999999999999",
            "-999999999999999",
            "9999999999999999",
            "12345678901234567890",
            "12345678",
            "87654321",
            "00000000",
            "99999999",
            "1234567",
            "012345678",
            "-98765432",
            "+5",
            "1e3",
            "1.5",
            "-inf",
            "+inf",
            "inf",
        ] {
            let expected: f64 = text.parse().unwrap();
            let got = score(text.as_bytes()).unwrap();
            assert_eq!(got.to_bits(), expected.to_bits(), "{text}");
        }
        for text in [
            "",
            "-",
            "nan",
            "1-",
            "--1",
            "1 ",
            "x",
            "1234567/",
            "123456:8",
            "/2345678",
            "12345678x",
            "1234\u{7f}678",
        ] {
            assert_eq!(score(text.as_bytes()), None, "{text}");
        }
    }
}
