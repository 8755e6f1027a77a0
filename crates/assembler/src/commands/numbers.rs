//! Numbers read out of command arguments exactly as Redis 7.0 reads them, so that the assembler accepts what Redis
//! accepted (and propagated), with the same value, and refuses the rest.
//!
//! Redis reads them with C's library: `strtod` (scores, increments, range bounds) and its own `string2ll`
//! (integers) and `string2ull` (stream ids). What each accepts differs in small ways that change a window: `strtod`
//! reads hexadecimal (`0x10` is 16, `0x1p3` is 8), `inf` and `infinity`; `string2d` (a score) refuses leading spaces,
//! overflow and underflow to zero, where `zslParseRange` (a `ZREMRANGEBYSCORE` bound) takes them as they come;
//! `string2ll` refuses `+5`, `007` and `-0`, which `strtoull` takes. Options and ids are C strings to Redis: they
//! end at the first NUL byte.
//!
//! No crate reads C's `strtod` grammar, hexadecimal included, with its rounding and its range errors, so it is
//! written here: decimal literals go to Rust's own parser (correctly rounded, as glibc's is), hexadecimal ones are
//! rounded here to nearest, ties to even. The tests check both against the C library's `strtod` itself.

use memchr::memchr;

/// Longest integer `string2ll` reads, sign included (Redis's `LONG_STR_SIZE` less one).
const MAX_INTEGER_LEN: usize = 20;
/// Longest stream id Redis reads (its parse buffer is 128 bytes with the NUL).
const MAX_STREAM_ID_LEN: usize = 127;
/// A binary exponent past which every hexadecimal literal is infinite or zero; exponents are clamped to it, so
/// that adding them up never overflows.
const EXPONENT_CLAMP: i64 = 1 << 40;

/// What a C string function sees of `bytes`: everything before the first NUL.
pub(crate) fn c_str(bytes: &[u8]) -> &[u8] {
    match memchr(0, bytes) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

/// C's `isspace` in the "C" locale, which Redis runs in.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// An integer as Redis's `string2ll` reads it: an optional `-`, then `0` alone or digits not starting with 0, at
/// most 20 bytes, within `i64`. (`getLongLongFromObject`, `getLongFromObject` and `getIntFromObject` all read
/// arguments this way.)
pub(crate) fn string2ll(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > MAX_INTEGER_LEN {
        return None;
    }
    if bytes == b"0" {
        return Some(0);
    }
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut magnitude: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(b - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// An unsigned integer as Redis's `string2ull` reads a C string: `string2ll`'s form when that is not negative,
/// else C's `strtoull` in base 10 (leading spaces, a `+`, leading zeros; a `-` negates modulo 2^64, as C does),
/// whole, without overflow.
fn string2ull(text: &[u8]) -> Option<u64> {
    if let Some(n) = string2ll(text) {
        return u64::try_from(n).ok();
    }
    let start = text.iter().position(|&b| !is_c_space(b))?;
    let (negative, digits) = match text[start..].split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, &text[start..]),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(if negative { n.wrapping_neg() } else { n })
}

/// A stream id as `streamParseStrictIDOrReply` reads it (`XADD`, `XDEL`, `MINID`): `ms-seq` or `ms` (seq 0),
/// each part by `string2ull`; `-` and `+` alone are refused. Returns `(ms, seq)`.
pub(crate) fn stream_id(bytes: &[u8]) -> Option<(u64, u64)> {
    if bytes.len() > MAX_STREAM_ID_LEN {
        return None;
    }
    let text = c_str(bytes);
    if text == b"-" || text == b"+" {
        return None;
    }
    match memchr(b'-', text) {
        Some(dash) => Some((string2ull(&text[..dash])?, string2ull(&text[dash + 1..])?)),
        None => Some((string2ull(text)?, 0)),
    }
}

/// A score or an increment as Redis's `string2d` reads it (`ZADD`, `ZINCRBY`): one whole `strtod` literal, no
/// leading space, no NUL, not NaN, and neither overflowing to infinity nor underflowing to zero (`1e400` and
/// `1e-400` are refused; `inf` is not an overflow).
pub(crate) fn string2d(bytes: &[u8]) -> Option<f64> {
    match bytes.first() {
        Some(&b) if !is_c_space(b) => {}
        _ => return None,
    }
    let literal = strtod_whole(bytes)?;
    (!literal.out_of_range).then_some(literal.value)
}

/// A score bound as `zslParseRange` reads one (`ZREMRANGEBYSCORE`), after its `(`: C's `strtod` on a C string,
/// which must end where the literal does. Leading spaces are skipped, overflow gives an infinity and underflow
/// zero, and an empty string is 0; only NaN is refused.
pub(crate) fn range_double(bytes: &[u8]) -> Option<f64> {
    let text = c_str(bytes);
    if text.is_empty() {
        // strtod converts nothing and stops at the terminating NUL, which is all Redis checks.
        return Some(0.0);
    }
    let start = text.iter().position(|&b| !is_c_space(b))?;
    strtod_whole(&text[start..]).map(|literal| literal.value)
}

/// A number as `strtod` reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Literal {
    value: f64,
    /// Whether `strtod` sets `ERANGE`: a finite literal overflowed to an infinity, or one with a non-zero digit
    /// underflowed to zero.
    out_of_range: bool,
}

/// `text` read by `strtod` if all of it is one literal (no leading space): an optional sign, then `inf` or
/// `infinity` (any case), a hexadecimal literal (`0x` digits, optional `.` and `p` exponent) or a decimal one
/// (digits, optional `.` and `e` exponent). `None` for anything else, and for NaN, which every caller refuses.
fn strtod_whole(text: &[u8]) -> Option<Literal> {
    let (negative, unsigned) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let magnitude =
        if unsigned.eq_ignore_ascii_case(b"inf") || unsigned.eq_ignore_ascii_case(b"infinity") {
            Literal {
                value: f64::INFINITY,
                out_of_range: false,
            }
        } else if let Some(hex) = unsigned
            .strip_prefix(b"0x")
            .or_else(|| unsigned.strip_prefix(b"0X"))
        {
            hexadecimal(hex)?
        } else {
            decimal(unsigned)?
        };
    Some(Literal {
        value: if negative {
            -magnitude.value
        } else {
            magnitude.value
        },
        ..magnitude
    })
}

/// The digits, point and exponent of a decimal literal, all of `text`: `Digit* [. Digit*] [(e|E) [+|-] Digit+]`
/// with at least one mantissa digit. Rust's parser reads exactly this form, correctly rounded.
fn decimal(text: &[u8]) -> Option<Literal> {
    let mut i = 0;
    let mut digits = 0;
    let mut nonzero = false;
    let mut point = false;
    while let Some(&b) = text.get(i) {
        match b {
            b'0'..=b'9' => {
                digits += 1;
                nonzero |= b != b'0';
            }
            b'.' if !point => point = true,
            _ => break,
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    if let Some(exponent) = text.get(i..).filter(|rest| !rest.is_empty()) {
        let (e, rest) = exponent.split_first()?;
        if !matches!(e, b'e' | b'E') {
            return None;
        }
        let rest = match rest.split_first() {
            Some((b'+' | b'-', tail)) => tail,
            _ => rest,
        };
        if rest.is_empty() || !rest.iter().all(u8::is_ascii_digit) {
            return None;
        }
    }
    // ASCII digits, point, `e` and sign only: valid UTF-8, in the grammar Rust's parser accepts.
    let value = replicast_protocol::decimal::parse_f64(text)?;
    Some(Literal {
        value,
        out_of_range: value.is_infinite() || (value == 0.0 && nonzero),
    })
}

/// A hexadecimal literal after its `0x`, all of `text`: `HexDigit* [. HexDigit*] [(p|P) [+|-] Digit+]` with at
/// least one mantissa digit, rounded to the nearest double (ties to even), as glibc rounds it.
fn hexadecimal(text: &[u8]) -> Option<Literal> {
    // The mantissa's first 60 to 64 significant bits, whether any bit after them is set, and the power of two
    // the kept bits are scaled by.
    let mut mantissa: u64 = 0;
    let mut sticky = false;
    let mut exponent: i64 = 0;
    let mut digits = 0usize;
    let mut point = false;
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        let digit = match b {
            b'.' if !point => {
                point = true;
                i += 1;
                continue;
            }
            _ => match (b as char).to_digit(16) {
                Some(d) => u64::from(d),
                None => break,
            },
        };
        digits += 1;
        if mantissa >> 60 == 0 {
            mantissa = mantissa << 4 | digit;
            if point {
                exponent -= 4;
            }
        } else {
            sticky |= digit != 0;
            if !point {
                exponent += 4;
            }
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    if let Some(rest) = text.get(i..).filter(|rest| !rest.is_empty()) {
        let (p, rest) = rest.split_first()?;
        if !matches!(p, b'p' | b'P') {
            return None;
        }
        let (negative, rest) = match rest.split_first() {
            Some((b'-', tail)) => (true, tail),
            Some((b'+', tail)) => (false, tail),
            _ => (false, rest),
        };
        if rest.is_empty() {
            return None;
        }
        let mut power: i64 = 0;
        for &b in rest {
            if !b.is_ascii_digit() {
                return None;
            }
            power = (power * 10 + i64::from(b - b'0')).min(EXPONENT_CLAMP);
        }
        exponent =
            exponent.clamp(-EXPONENT_CLAMP, EXPONENT_CLAMP) + if negative { -power } else { power };
    }
    if mantissa == 0 {
        return Some(Literal {
            value: 0.0,
            out_of_range: false,
        });
    }
    let value = round_to_double(mantissa, sticky, exponent);
    Some(Literal {
        value,
        out_of_range: value == 0.0 || value.is_infinite(),
    })
}

/// The double nearest to `mantissa × 2^exponent` (ties to even), where `sticky` says whether the exact value
/// is a little more than that; `mantissa` is not zero.
fn round_to_double(mantissa: u64, sticky: bool, exponent: i64) -> f64 {
    const FRACTION_BITS: i64 = 52;
    const MIN_EXPONENT: i64 = -1022;
    const MAX_EXPONENT: i64 = 1023;
    let shift = mantissa.leading_zeros();
    let mantissa = mantissa << shift;
    // The value is 1.f × 2^top, f the 63 bits below the leading one.
    let top = exponent + 63 - i64::from(shift);
    if top > MAX_EXPONENT {
        return f64::INFINITY;
    }
    // Bits dropped from the 64 to fit 53 (a normal number) or fewer (a subnormal one).
    let dropped = 63 - FRACTION_BITS + (MIN_EXPONENT - top).max(0);
    let (kept, half, rest) = match dropped {
        0..=63 => (
            mantissa >> dropped,
            (mantissa >> (dropped - 1)) & 1 == 1,
            (mantissa & ((1u64 << (dropped - 1)) - 1)) != 0 || sticky,
        ),
        64 => (0, true, (mantissa << 1) != 0 || sticky),
        _ => (0, false, true),
    };
    let rounded = kept + u64::from(half && (rest || (kept & 1) == 1));
    let bits = if top >= MIN_EXPONENT {
        // A normal number: the leading one, kept at bit 52, adds one to the biased exponent placed above it, and
        // a rounding carry out of the fraction moves on into the exponent, as it should.
        (((top - MIN_EXPONENT) as u64) << FRACTION_BITS) + rounded
    } else {
        // A subnormal one; a carry makes it the smallest normal number.
        rounded
    };
    f64::from_bits(bits)
}

#[cfg(test)]
#[path = "numbers_tests.rs"]
mod tests;
