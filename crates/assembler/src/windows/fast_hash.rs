//! A fast, non-cryptographic hasher for the windows' byte-string maps (members, fields, keys): the FxHash
//! mixing step over 8-byte words. The bytes come from the Redis the relay follows, not from an adversary that
//! could aim for collisions, and the default SipHash costs more than the rest of a `ZADD` on 130-byte members.

use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`FastHasher`]: hashbrown's own, which the windows' tables use too, so the browser's `.wasm`
/// carries one copy of its code rather than std's copy beside it.
pub type FastMap<K, V> = hashbrown::HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// A `HashSet` with [`FastHasher`], hashbrown's as [`FastMap`].
pub type FastSet<K> = hashbrown::HashSet<K, BuildHasherDefault<FastHasher>>;

/// The [`FastHasher`] hash of `bytes` alone (no length prefix), for tables that store hashes themselves.
#[inline]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hasher = FastHasher::default();
    hasher.write(bytes);
    hasher.finish()
}

/// A hash of `bytes` that reads at most 32 of them: the first 16, the last 16 and the length ([`hash_bytes`] of
/// shorter ones). A quarter of [`hash_bytes`]'s work on a 130-byte sample, and as good where strings differ near
/// either end, as a collector's samples do (an id or a time at the front, values at the back). Where they do not,
/// many strings share a hash: a table keyed by it must notice (its lookups compare many strings) and turn to
/// [`hash_bytes`].
#[inline(always)]
pub fn sampled_hash(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    if len <= 32 {
        return hash_bytes(bytes);
    }
    // Two lanes of two words each, as `write` mixes its 16-byte blocks.
    let (head_a, head_b) = block(bytes.first_chunk());
    let (tail_a, tail_b) = block(bytes.get(len - 16..).and_then(<[u8]>::first_chunk));
    let a = ((len as u64) ^ head_a).wrapping_mul(SEED);
    let b = (SEED ^ head_b).wrapping_mul(SEED);
    let a = (a.rotate_left(5) ^ tail_a).wrapping_mul(SEED);
    let b = (b.rotate_left(5) ^ tail_b).wrapping_mul(SEED);
    FastHasher {
        hash: a ^ b.rotate_left(32),
    }
    .finish()
}

/// Whether `a` and `b` hold the same bytes, compared a word at a time. `==` on slices calls `memcmp`, which
/// wasm's runtime library implements byte by byte, through a call.
#[inline]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    if len != b.len() {
        return false;
    }
    if len < 8 {
        return if len >= 4 {
            // Two (possibly overlapping) halves cover it.
            half(a) == half(b) && last_half(a) == last_half(b)
        } else {
            a.iter().zip(b).all(|(x, y)| x == y)
        };
    }
    // Whole words as arrays (`as_chunks`): at the client's opt-level `"z"`, `chunks_exact` zipped is calls per word.
    let (a_words, _) = a.as_chunks::<8>();
    let mut b_words = b.as_chunks::<8>().0.iter();
    for x in a_words {
        match b_words.next() {
            Some(y) if u64::from_ne_bytes(*x) == u64::from_ne_bytes(*y) => {}
            _ => return false,
        }
    }
    // The last 8 bytes, overlapping ones already compared.
    last_word(a) == last_word(b)
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher {
    hash: u64,
}

impl FastHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

/// The first 8 bytes of `bytes` as a little-endian word (fewer read as 0; no caller passes fewer). Every read of
/// words here takes a fixed-size array (`first_chunk`, `as_chunks`), a single load at every opt-level, from a
/// slice cut by `get`: a slice copied into a zeroed word (`copy_from_slice`), cut by a range index or read by
/// `last_chunk` is, at the client's opt-level `"z"`, a call into core, and the copy a `memcpy` (in the browser a
/// `memory.copy`), about a dozen times a `ZADD`.
#[inline(always)]
fn word(bytes: &[u8]) -> u64 {
    match bytes.first_chunk() {
        Some(&word) => u64::from_le_bytes(word),
        None => 0,
    }
}

/// The last 8 bytes of `bytes`, read as [`word`] reads the first.
#[inline(always)]
fn last_word(bytes: &[u8]) -> u64 {
    match bytes.get(bytes.len().wrapping_sub(8)..) {
        Some(last) => word(last),
        None => 0,
    }
}

/// The two words of a 16-byte block, first and second, read as [`word`] reads one (`None` reads as zeros).
#[inline(always)]
fn block(bytes: Option<&[u8; 16]>) -> (u64, u64) {
    let both = match bytes {
        Some(&both) => u128::from_le_bytes(both),
        None => 0,
    };
    (both as u64, (both >> 64) as u64)
}

/// The first 4 bytes of `bytes` as a little-endian half word, read as [`word`] reads 8.
#[inline(always)]
fn half(bytes: &[u8]) -> u32 {
    match bytes.first_chunk() {
        Some(&half) => u32::from_le_bytes(half),
        None => 0,
    }
}

/// The last 4 bytes of `bytes`, read as [`half`] reads the first.
#[inline(always)]
fn last_half(bytes: &[u8]) -> u32 {
    match bytes.get(bytes.len().wrapping_sub(4)..) {
        Some(last) => half(last),
        None => 0,
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let len = bytes.len();
        if len < 8 {
            // Short: one word from (possibly overlapping) pieces, with the length in its top bits.
            let word = if len >= 4 {
                u64::from(half(bytes)) | u64::from(last_half(bytes)) << 32
            } else if len > 0 {
                u64::from(bytes[0])
                    | u64::from(bytes[len / 2]) << 8
                    | u64::from(bytes[len - 1]) << 16
            } else {
                0
            };
            self.mix(word ^ (len as u64) << 61);
            return;
        }
        // Two independent lanes over 16-byte blocks: the multiplications of one do not wait for the other's.
        // (Blocks and words as arrays, `as_chunks`: at the client's opt-level `"z"`, `chunks_exact` is calls.)
        let (blocks, rest) = bytes.as_chunks::<16>();
        let (mut a, mut b) = (self.hash, self.hash ^ SEED);
        for each in blocks {
            let (x, y) = block(Some(each));
            a = (a.rotate_left(5) ^ x).wrapping_mul(SEED);
            b = (b.rotate_left(5) ^ y).wrapping_mul(SEED);
        }
        self.hash = a ^ b.rotate_left(32);
        let (words, rest) = rest.as_chunks::<8>();
        for &each in words {
            self.mix(u64::from_le_bytes(each));
        }
        if !rest.is_empty() {
            // The last 8 bytes, overlapping ones already mixed: one load, where copying the few left into a
            // zeroed word would cost a library call and a stalled load.
            self.mix(last_word(bytes));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The multiplications leave the low bits, which pick a bucket, depending only on low input bits: fold
        // the high ones down.
        let h = self.hash;
        (h ^ (h >> 32)).wrapping_mul(SEED) ^ (h >> 29)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_hash_reads_both_ends_and_the_length() {
        let base: Vec<u8> = (0..100u8).collect();
        // Up to 32 bytes: the whole hash.
        for len in 0..=32 {
            assert_eq!(sampled_hash(&base[..len]), hash_bytes(&base[..len]));
        }
        let hash = sampled_hash(&base);
        for at in (0..16).chain(84..100) {
            let mut other = base.clone();
            other[at] ^= 1;
            assert_ne!(sampled_hash(&other), hash, "differing at {at}");
        }
        // The middle is not read.
        let mut other = base.clone();
        other[50] ^= 1;
        assert_eq!(sampled_hash(&other), hash);
        assert_ne!(sampled_hash(&base[..99]), sampled_hash(&base[1..]));
    }

    /// The words as a slice gives them, for the reference hashes below.
    fn slice_word(bytes: &[u8]) -> u64 {
        u64::from_le_bytes(bytes.try_into().unwrap())
    }

    /// [`FastHasher::write`]'s hash written with slices and ranges.
    fn reference_hash(bytes: &[u8]) -> u64 {
        let len = bytes.len();
        let mut hasher = FastHasher::default();
        if len < 8 {
            let word = if len >= 4 {
                let half = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
                u64::from(half(0)) | u64::from(half(len - 4)) << 32
            } else if len > 0 {
                u64::from(bytes[0])
                    | u64::from(bytes[len / 2]) << 8
                    | u64::from(bytes[len - 1]) << 16
            } else {
                0
            };
            hasher.mix(word ^ (len as u64) << 61);
            return hasher.finish();
        }
        let blocks = len / 16;
        let (mut a, mut b) = (0u64, SEED);
        for at in (0..blocks * 16).step_by(16) {
            a = (a.rotate_left(5) ^ slice_word(&bytes[at..at + 8])).wrapping_mul(SEED);
            b = (b.rotate_left(5) ^ slice_word(&bytes[at + 8..at + 16])).wrapping_mul(SEED);
        }
        hasher.hash = a ^ b.rotate_left(32);
        let mut at = blocks * 16;
        while at + 8 <= len {
            hasher.mix(slice_word(&bytes[at..at + 8]));
            at += 8;
        }
        if at < len {
            hasher.mix(slice_word(&bytes[len - 8..]));
        }
        hasher.finish()
    }

    /// [`sampled_hash`] written with slices and ranges.
    fn reference_sampled_hash(bytes: &[u8]) -> u64 {
        let len = bytes.len();
        if len <= 32 {
            return reference_hash(bytes);
        }
        let a = ((len as u64) ^ slice_word(&bytes[..8])).wrapping_mul(SEED);
        let b = (SEED ^ slice_word(&bytes[8..16])).wrapping_mul(SEED);
        let a = (a.rotate_left(5) ^ slice_word(&bytes[len - 16..len - 8])).wrapping_mul(SEED);
        let b = (b.rotate_left(5) ^ slice_word(&bytes[len - 8..])).wrapping_mul(SEED);
        FastHasher {
            hash: a ^ b.rotate_left(32),
        }
        .finish()
    }

    #[test]
    fn hashes_read_every_word_where_slices_and_ranges_would() {
        // Distinct bytes in every place, so that a word read from the wrong place, or in the wrong order, shows.
        let base: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in 0..base.len() {
            let bytes = &base[..len];
            assert_eq!(hash_bytes(bytes), reference_hash(bytes), "len {len}");
            assert_eq!(
                sampled_hash(bytes),
                reference_sampled_hash(bytes),
                "len {len}"
            );
        }
    }

    #[test]
    fn same_bytes_is_slice_equality() {
        let base: Vec<u8> = (0..40u8).collect();
        for len in 0..base.len() {
            let a = &base[..len];
            assert!(same_bytes(a, a));
            assert!(!same_bytes(a, &base[..len + 1]));
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same_bytes(a, &b), "len {len}, differing at {at}");
            }
        }
    }
}
