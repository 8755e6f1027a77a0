//! A streaming reader for Redis and Valkey RDB files, replication payloads and `DUMP` payloads.
//!
//! It reads every format a user can meet: `REDIS0001` to `REDIS0012` and `VALKEY080`, every opcode (244–255)
//! and value type (0–7, 9–25; Valkey's 22 is its hash with field expiry), the compact encodings (zipmap,
//! ziplist, intset, listpack, quicklist 1 and 2), streams of all three versions with their consumer groups,
//! functions, and module data (skipped, with the module's name). The CRC64 trailer is verified when it is not
//! zero.
//!
//! [`RdbReader`] is push-based: feed it chunks of any size, and it reports [`Event`]s — the header, each key's
//! start, each element as it is complete, each key's end — borrowed from the input where possible. It holds only
//! the bytes of the step it is in, so memory does not grow with the size of a key: a 1 GB list is a series of
//! small quicklist nodes, read one at a time. What it may hold at once is bounded by [`Limits`]: one string
//! (element, key, LZF-decompressed form) and one compact-encoded string (a ziplist, listpack, intset or zipmap,
//! which Redis only uses for small collections or for quicklist and stream nodes of a few KB).
//!
//! [`decode_dump`] decodes a `DUMP` payload with the same code; [`export`] writes what a reader reports as JSON
//! Lines or as a summary (`replicast rdb`).
//!
//! Files by job: [`reader`] (the push parser), `state` (where the reader is), `opcodes` (the header and the opcodes
//! between keys), `value` (the value types), `stream` (streams), `module` (module opcodes), `cursor` (lengths,
//! strings, doubles), `lzf`, `crc` (CRC64), `encodings` (ziplist, listpack, intset, zipmap), [`event`] (what is
//! reported), [`error`] and [`dump`]; [`export`] (JSON Lines and the summary) builds on them.

mod crc;
mod cursor;
pub mod dump;
mod encodings;
pub mod error;
pub mod event;
pub mod export;
mod lzf;
mod module;
mod opcodes;
pub mod reader;
mod state;
mod stream;
mod value;

pub use dump::decode_dump;
pub use error::RdbError;
pub use event::{
    Checksum, Element, Encoding, Event, Flavor, KeyStart, ModuleId, StreamId, StreamMeta, Value,
    ValueType,
};
pub use reader::RdbReader;

/// Newest `REDIS` RDB version known: Redis 7.4 (hash field expiry).
pub const NEWEST_REDIS_VERSION: u32 = 12;
/// Newest `VALKEY` RDB version known: Valkey 9.0.
pub const NEWEST_VALKEY_VERSION: u32 = 80;

/// Longest string held at once (a key, an element, an aux field, or the decompressed form of an LZF string):
/// Redis's default `proto-max-bulk-len`, which bounds what a client could have written.
pub const MAX_STRING_LEN: usize = 512 * 1024 * 1024;
/// Longest compact-encoded string (ziplist, listpack, intset, zipmap, stream node) held at once. Redis keeps them
/// small by configuration (8 KB quicklist nodes, 4 KB stream nodes, 128-entry hashes, sets and sorted sets), but
/// a user may raise those limits, so the cap is generous; it bounds memory all the same.
pub const MAX_ENCODED_LEN: usize = 512 * 1024 * 1024;

/// What a reader may hold in memory at once; lengths past them are refused before anything is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest string (key, element, aux field, decompressed LZF string); default [`MAX_STRING_LEN`].
    pub max_string_len: usize,
    /// Longest compact-encoded string; default [`MAX_ENCODED_LEN`].
    pub max_encoded_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_string_len: MAX_STRING_LEN,
            max_encoded_len: MAX_ENCODED_LEN,
        }
    }
}

/// How a reader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReaderOptions {
    pub limits: Limits,
    /// Try versions newer than [`NEWEST_REDIS_VERSION`] / [`NEWEST_VALKEY_VERSION`] anyway, as if they were the
    /// newest known (an unknown type or opcode in them is still an error).
    pub best_effort: bool,
}

impl ReaderOptions {
    /// Refuses versions this reader does not know, unless the options say to try anyway.
    pub(crate) fn check_version(
        &self,
        flavor: Flavor,
        version: u32,
        offset: u64,
    ) -> Result<(), RdbError> {
        let newest = match flavor {
            Flavor::Redis => NEWEST_REDIS_VERSION,
            Flavor::Valkey => NEWEST_VALKEY_VERSION,
        };
        if version > newest && !self.best_effort {
            return Err(RdbError::UnsupportedVersion {
                offset,
                flavor: flavor.name(),
                version,
                newest,
            });
        }
        Ok(())
    }
}
