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
    let a = ((len as u64) ^ word(&bytes[..8])).wrapping_mul(SEED);
    let b = (SEED ^ word(&bytes[8..16])).wrapping_mul(SEED);
    let a = (a.rotate_left(5) ^ word(&bytes[len - 16..len - 8])).wrapping_mul(SEED);
    let b = (b.rotate_left(5) ^ word(&bytes[len - 8..])).wrapping_mul(SEED);
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
            half(&a[..4]) == half(&b[..4]) && half(&a[len - 4..]) == half(&b[len - 4..])
        } else {
            a.iter().zip(b).all(|(x, y)| x == y)
        };
    }
    let mut words = a.chunks_exact(8).zip(b.chunks_exact(8));
    if !words.all(|(x, y)| word(x) == word(y)) {
        return false;
    }
    // The last 8 bytes, overlapping ones already compared.
    word(&a[len - 8..]) == word(&b[len - 8..])
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

#[inline]
fn word(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

#[inline]
fn half(bytes: &[u8]) -> u32 {
    let mut half = [0u8; 4];
    half.copy_from_slice(bytes);
    u32::from_le_bytes(half)
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let len = bytes.len();
        if len < 8 {
            // Short: one word from (possibly overlapping) pieces, with the length in its top bits.
            let word = if len >= 4 {
                u64::from(half(&bytes[..4])) | u64::from(half(&bytes[len - 4..])) << 32
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
        let mut blocks = bytes.chunks_exact(16);
        let (mut a, mut b) = (self.hash, self.hash ^ SEED);
        for block in &mut blocks {
            a = (a.rotate_left(5) ^ word(&block[..8])).wrapping_mul(SEED);
            b = (b.rotate_left(5) ^ word(&block[8..])).wrapping_mul(SEED);
        }
        self.hash = a ^ b.rotate_left(32);
        let mut chunks = blocks.remainder().chunks_exact(8);
        for chunk in &mut chunks {
            self.mix(word(chunk));
        }
        if !chunks.remainder().is_empty() {
            // The last 8 bytes, overlapping ones already mixed: one load, where copying the few left into a
            // zeroed word would cost a library call and a stalled load.
            self.mix(word(&bytes[len - 8..]));
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
