//! Reading command arguments as Redis 7.0 reads them: integers, scores and ranges (through [`super::numbers`]),
//! and option words.

use std::cmp::Ordering;
use std::ops::Bound;

use super::numbers::{c_str, range_double, string2d, string2ll};

/// Only for `MOVE`/`COPY … DB`, which read their database as before.
pub(crate) fn parse_ascii<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// An integer argument, as `string2ll` reads it.
pub(crate) fn int(bytes: &[u8]) -> Option<i64> {
    string2ll(bytes)
}

/// A database index (`SELECT`, `SWAPDB`), as `getIntFromObject` reads it; negative ones Redis refuses.
pub fn db_index(bytes: &[u8]) -> Option<u32> {
    string2ll(bytes).and_then(|db| u32::try_from(db).ok())
}

/// Most digits of an integer score read without the float parser: below 2^53, so exactly a float.
const EXACT_DIGITS: usize = 15;
/// A byte of 1 in each of a word's 8 bytes.
const ONES: u64 = 0x0101_0101_0101_0101;
/// Eight ASCII '0's, the first in the lowest byte.
const ZEROS: u64 = ONES * b'0' as u64;

/// A score or an increment, as `string2d` reads it (see [`super::numbers`]); never NaN.
#[inline]
pub(crate) fn score(bytes: &[u8]) -> Option<f64> {
    // Collectors score by Unix milliseconds: plain integers, read here as integers (exactly as the float parser
    // would read them, `-0` included). Anything else takes the float parser.
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    if !digits.is_empty() && digits.len() <= EXACT_DIGITS {
        if let Some(n) = integer(digits) {
            let n = n as f64;
            return Some(if negative { -n } else { n });
        }
    }
    string2d(bytes)
}

/// The number 1 to [`EXACT_DIGITS`] ASCII digits write, or `None` if a byte is not a digit.
#[inline(always)]
fn integer(digits: &[u8]) -> Option<u64> {
    let Some((first, rest)) = digits.split_first_chunk::<8>() else {
        // Fewer than 8: one by one, checked as they are added up.
        let mut n = 0;
        let mut all_digits = true;
        for &b in digits {
            let digit = b.wrapping_sub(b'0');
            all_digits &= digit <= 9;
            n = n * 10 + u64::from(digit);
        }
        return all_digits.then_some(n);
    };
    // 8 to 15 (a millisecond time has 13): the first 8 at once, then the last 8 at once, a fixed cost where a loop
    // over the rest cost a round per digit at the client's opt-level "z". The last 8 overlap the first by
    // `8 - rest.len()` bytes (all 8 for 8 digits), which are set to '0' so that they add nothing.
    const POWERS: [u64; 8] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];
    let power = *POWERS.get(rest.len())?;
    let last = digits.get(digits.len() - 8..)?.first_chunk::<8>()?;
    let overlap = u64::MAX >> (8 * rest.len());
    let last = (u64::from_le_bytes(*last) & !overlap) | (ZEROS & overlap);
    Some(eight_digits(u64::from_le_bytes(*first))? * power + eight_digits(last)?)
}

/// The number 8 ASCII digits write (the first in the lowest byte of `word`), or `None` if a byte is not a digit.
#[inline(always)]
fn eight_digits(word: u64) -> Option<u64> {
    // Each byte less '0': a digit leaves 0..=9. A byte below '0' wraps to 0xd0 or more (and borrows from the
    // bytes above, whose values no longer matter then).
    let v = word.wrapping_sub(ZEROS);
    // A high bit set for any byte not in 0..=9: adding 0x76 sets it for 10 and more.
    if (v.wrapping_add(ONES * 0x76) | v) & (ONES * 0x80) != 0 {
        return None;
    }
    // Pairs, then quads, then all eight: each step multiplies the higher-order half by a power of ten.
    let v = (v.wrapping_mul(10 << 8 | 1) >> 8) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100 << 16 | 1) >> 16) & 0x0000_FFFF_0000_FFFF;
    Some(v.wrapping_mul(10_000 << 32 | 1) >> 32)
}

/// A score bound of `ZREMRANGEBYSCORE`, as `zslParseRange` reads it: `1.5`, `(1.5` (exclusive), `-inf`, `0x10`,
/// ` 5`, `1e400` (infinite), and the empty string (0).
pub(crate) fn score_bound(bytes: &[u8]) -> Option<Bound<f64>> {
    match bytes.strip_prefix(b"(") {
        Some(rest) => range_double(rest).map(Bound::Excluded),
        None => range_double(bytes).map(Bound::Included),
    }
}

/// A member bound of `ZREMRANGEBYLEX`, as `zslParseLexRangeItem` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LexBound<'a> {
    /// `-`: below every member.
    Min,
    /// `+`: above every member.
    Max,
    /// `[member`.
    Included(&'a [u8]),
    /// `(member`.
    Excluded(&'a [u8]),
}

impl<'a> LexBound<'a> {
    /// `[a`, `(a`, or `-`/`+` as C strings (what follows a NUL is not read).
    pub(crate) fn parse(bytes: &'a [u8]) -> Option<Self> {
        match bytes.split_first()? {
            (b'[', rest) => Some(LexBound::Included(rest)),
            (b'(', rest) => Some(LexBound::Excluded(rest)),
            (b'-', _) if c_str(bytes).len() == 1 => Some(LexBound::Min),
            (b'+', _) if c_str(bytes).len() == 1 => Some(LexBound::Max),
            _ => None,
        }
    }

    /// How `member` compares with the bound's value (`-` and `+` are below and above everything).
    fn compare(self, member: &[u8]) -> (Ordering, bool) {
        match self {
            LexBound::Min => (Ordering::Greater, true),
            LexBound::Max => (Ordering::Less, true),
            LexBound::Included(v) => (member.cmp(v), false),
            LexBound::Excluded(v) => (member.cmp(v), true),
        }
    }
}

/// Whether `member` is within `min..max`, as `zslLexValueGteMin` and `zslLexValueLteMax` decide.
pub(crate) fn within_lex(member: &[u8], min: LexBound<'_>, max: LexBound<'_>) -> bool {
    let (above, exclusive) = min.compare(member);
    let gte_min = above == Ordering::Greater || (above == Ordering::Equal && !exclusive);
    let (below, exclusive) = max.compare(member);
    let lte_max = below == Ordering::Less || (below == Ordering::Equal && !exclusive);
    gte_min && lte_max
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

/// Whether option `arg` is `word`, ignoring ASCII case, as `strcasecmp` compares a C string (up to a NUL).
pub(crate) fn is(arg: &[u8], word: &str) -> bool {
    c_str(arg).eq_ignore_ascii_case(word.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_scores_read_as_string2d_reads_them() {
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
            "0x10",
            "0x1p3",
        ] {
            let expected = string2d(text.as_bytes()).unwrap();
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
            " 5",
            "1e400",
            "12345678\0",
        ] {
            assert_eq!(score(text.as_bytes()), None, "{text}");
        }
    }

    /// [`integer`] reads 8 digits and then the last 8 at once: the same numbers as the plain loop over every digit,
    /// at every length it takes, with a byte that is not a digit at every place.
    #[test]
    fn integers_read_by_words_as_digit_by_digit() {
        fn digit_by_digit(digits: &[u8]) -> Option<u64> {
            digits.iter().try_fold(0u64, |n, &b| {
                b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
            })
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 1..=EXACT_DIGITS {
            for _ in 0..200 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let digits: Vec<u8> = (0..len)
                    .map(|i| b'0' + ((seed >> (i * 4)) % 10) as u8)
                    .collect();
                assert_eq!(integer(&digits), digit_by_digit(&digits), "{digits:?}");
                for at in 0..len {
                    for bad in [b'/', b':', 0, 0xff, b'-'] {
                        let mut text = digits.clone();
                        text[at] = bad;
                        assert_eq!(integer(&text), None, "{text:?}");
                    }
                }
            }
            for digit in b'0'..=b'9' {
                let same = vec![digit; len];
                assert_eq!(integer(&same), digit_by_digit(&same), "{same:?}");
            }
        }
    }
}
