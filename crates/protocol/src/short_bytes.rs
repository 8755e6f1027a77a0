//! Equality of two byte strings, inline for the short ones: the relay compares keys with a pattern's prefix, and
//! the write profile a command's name line and its key with the ones it remembers, on every command the link reads;
//! they are mostly a few bytes long, where a call to `memcmp` (what `==` on slices becomes) costs more than the
//! comparison itself. Up to 16 bytes, two overlapping loads from each side cover every byte, the trick fast hashes
//! use to read short keys.

/// Whether `a` and `b` hold the same bytes.
#[inline(always)]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    if len != b.len() {
        return false;
    }
    if len > 16 {
        return a == b;
    }
    if len >= 8 {
        let (a, b) = (ends_u64(a), ends_u64(b));
        return (a.0 ^ b.0) | (a.1 ^ b.1) == 0;
    }
    if len >= 4 {
        let (a, b) = (ends_u32(a), ends_u32(b));
        return (a.0 ^ b.0) | (a.1 ^ b.1) == 0;
    }
    if len == 0 {
        return true;
    }
    // One to three bytes: the first, the middle and the last are all of them.
    a[0] == b[0] && a[len / 2] == b[len / 2] && a[len - 1] == b[len - 1]
}

/// The first and the last 8 bytes of `s` (overlapping when it is shorter than 16), each as one load; zero for a
/// side `s` is too short to have, which the caller's length check rules out.
#[inline(always)]
fn ends_u64(s: &[u8]) -> (u64, u64) {
    (
        s.first_chunk().map_or(0, |c| u64::from_ne_bytes(*c)),
        s.last_chunk().map_or(0, |c| u64::from_ne_bytes(*c)),
    )
}

/// The first and the last 4 bytes of `s`, as [`ends_u64`] reads 8.
#[inline(always)]
fn ends_u32(s: &[u8]) -> (u32, u32) {
    (
        s.first_chunk().map_or(0, |c| u32::from_ne_bytes(*c)),
        s.last_chunk().map_or(0, |c| u32::from_ne_bytes(*c)),
    )
}

// proptest is a native-only dev-dependency.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn each_length_up_to_past_the_inline_ones_tells_every_byte() {
        for len in 0..=20usize {
            let a: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
            assert!(same_bytes(&a, &a.clone()), "{len} bytes");
            for at in 0..len {
                let mut b = a.clone();
                b[at] ^= 0x80;
                assert!(!same_bytes(&a, &b), "{len} bytes, byte {at} differs");
            }
            let mut longer = a.clone();
            longer.push(0);
            assert!(!same_bytes(&a, &longer), "{len} bytes and one more");
        }
    }

    proptest! {
        #[test]
        fn it_agrees_with_slice_equality(a in prop::collection::vec(0u8..3, 0..24), b in prop::collection::vec(0u8..3, 0..24)) {
            prop_assert_eq!(same_bytes(&a, &b), a == b);
            prop_assert!(same_bytes(&a, &a.clone()));
        }
    }
}
