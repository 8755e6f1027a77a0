//! The CRC64 that closes an RDB (version 5 and later) and every `DUMP` payload: CRC-64/REDIS (Jones polynomial
//! `0xad93d23594c935a9`, reflected, initial value 0, no final xor), stored little-endian.
//!
//! It runs over every byte of the stream, so it must keep up with the parser: `crc-fast` folds the input with
//! carry-less multiplication where the CPU has it (PCLMULQDQ on x86-64, PMULL on AArch64), several bytes a cycle,
//! and falls back to tables elsewhere (the inspector's wasm).

use crc_fast::{CrcAlgorithm, Digest};

/// A running CRC64 over the bytes seen so far.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Crc64(Digest);

impl Default for Crc64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc64 {
    pub(crate) fn new() -> Self {
        Crc64(Digest::new(CrcAlgorithm::Crc64Redis))
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The checksum of everything so far.
    pub(crate) fn value(&self) -> u64 {
        self.0.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_redis_test_vector() {
        // Redis's crc64.c self-test: crc64(0, "123456789", 9) == 0xe9c6d914c4b8d9ca.
        let mut crc = Crc64::new();
        crc.update(b"1234");
        crc.update(b"56789");
        assert_eq!(crc.value(), 0xe9c6d914c4b8d9ca);
    }

    /// CRC-64/REDIS one bit at a time, as its definition reads: the reference the fast paths are checked against.
    fn bitwise(bytes: &[u8]) -> u64 {
        const POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;
        let mut crc = 0u64;
        for &b in bytes {
            crc ^= u64::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ POLY_REFLECTED
                } else {
                    crc >> 1
                };
            }
        }
        crc
    }

    #[test]
    fn every_length_and_split_matches_the_bitwise_definition() {
        // Lengths around the folding blocks (16, 64, 128, 256 bytes) and well past them, split at every kind of
        // boundary, so both the short-input and the carry-less-multiply paths are compared with the definition.
        let data: Vec<u8> = (0..4099u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in (0..300).chain([511, 512, 513, 1023, 1024, 4095, 4099]) {
            let want = bitwise(&data[..len]);
            let mut whole = Crc64::new();
            whole.update(&data[..len]);
            assert_eq!(whole.value(), want, "length {len}");
            for cut in [1, 7, 15, 16, 17, 63, 64, 127, 128, 129] {
                let cut = cut.min(len);
                let mut split = Crc64::new();
                split.update(&data[..cut]);
                split.update(&data[cut..len]);
                assert_eq!(split.value(), want, "length {len} cut at {cut}");
            }
        }
    }

    #[test]
    fn any_split_gives_the_same_checksum() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let mut whole = Crc64::new();
        whole.update(&data);
        let mut bytewise = Crc64::new();
        for b in &data {
            bytewise.update(std::slice::from_ref(b));
        }
        assert_eq!(whole.value(), bytewise.value());
        let mut split = Crc64::new();
        split.update(&data[..333]);
        split.update(&data[333..]);
        assert_eq!(whole.value(), split.value());
    }
}
