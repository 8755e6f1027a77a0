//! Redis Cluster's hash slots: the slot a key lives in, as Redis computes it, for routing a key to the shard that
//! owns it (snapshots, top-ups, browser events, the collector's writes).

use std::sync::atomic::{AtomicU64, Ordering};

/// Hash slots of a Redis Cluster.
pub const SLOTS: usize = 16384;

/// The hash slot of `key`: CRC16 (XMODEM) of the key, or of its `{hash tag}` when it has a non-empty one, mod 16384.
pub fn slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) % SLOTS as u16
}

/// A set of hash slots, shared without a lock (2 KiB): the slots a shard gained while the relay followed it.
pub struct SlotSet([AtomicU64; SLOTS / 64]);

impl Default for SlotSet {
    fn default() -> Self {
        SlotSet(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl SlotSet {
    pub fn insert(&self, slot: u16) {
        let slot = usize::from(slot);
        self.0[slot / 64].fetch_or(1 << (slot % 64), Ordering::SeqCst);
    }

    pub fn contains(&self, slot: u16) -> bool {
        let slot = usize::from(slot);
        self.0[slot / 64].load(Ordering::SeqCst) & (1 << (slot % 64)) != 0
    }
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_redis_including_hash_tags() {
        // From CLUSTER KEYSLOT on redis-server 7.0.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"perf:web-1"), slot(b"perf:web-1"));
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
        assert_eq!(slot(b""), 0);
        assert_eq!(crc16(b"123456789"), 0x31c3);
    }
}
