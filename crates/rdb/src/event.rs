//! What the reader reports: [`Event`]s, borrowed from the input where they can be, in the order of the stream.
//!
//! A key is reported as [`Event::KeyStart`], then one [`Event::Element`] per element as each becomes complete (so
//! a 1 GB list arrives as millions of small events, never as one value), then [`Event::KeyEnd`].

use std::fmt;

/// A string as RDB stores it: bytes, or an integer that Redis would print in decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Bytes, borrowed from the input or from the reader's decompression buffer.
    Bytes(&'a [u8]),
    /// An integer-encoded string (`INT8/16/32` in RDB, or an integer entry of a compact encoding).
    Int(i64),
}

impl Value<'_> {
    /// Appends the string's bytes (the decimal form of an integer) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Value::Bytes(b) => out.extend_from_slice(b),
            Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        }
    }

    /// The string's bytes, owned.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }

    /// Length of the string in bytes.
    pub fn len(&self) -> usize {
        match self {
            Value::Bytes(b) => b.len(),
            Value::Int(i) => i.to_string().len(),
        }
    }

    /// Whether the string is empty (an integer never is).
    pub fn is_empty(&self) -> bool {
        matches!(self, Value::Bytes(b) if b.is_empty())
    }

    /// The value as an integer, if it is one or its bytes are a decimal integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        }
    }
}

impl fmt::Display for Value<'_> {
    /// Lossy for bytes that are not UTF-8.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bytes(b) => f.write_str(&String::from_utf8_lossy(b)),
            Value::Int(i) => write!(f, "{i}"),
        }
    }
}

/// Who wrote the file: the header's `REDIS` or `VALKEY` magic decides how some type ids read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Redis,
    Valkey,
}

impl Flavor {
    /// `Redis` or `Valkey`.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Redis => "Redis",
            Flavor::Valkey => "Valkey",
        }
    }
}

/// The data type of a key, as `TYPE` answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueType {
    String,
    List,
    Set,
    ZSet,
    Hash,
    Stream,
    Module,
}

impl ValueType {
    /// The name `TYPE` answers (`module` for module values, whose `TYPE` is the module's own name).
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::List => "list",
            ValueType::Set => "set",
            ValueType::ZSet => "zset",
            ValueType::Hash => "hash",
            ValueType::Stream => "stream",
            ValueType::Module => "module",
        }
    }

    /// The type named `name`, as [`ValueType::name`] spells it.
    pub fn from_name(name: &str) -> Option<ValueType> {
        [
            ValueType::String,
            ValueType::List,
            ValueType::Set,
            ValueType::ZSet,
            ValueType::Hash,
            ValueType::Stream,
            ValueType::Module,
        ]
        .into_iter()
        .find(|t| t.name() == name)
    }
}

/// How a value is stored in the RDB: the type byte before its key, as `rdb.h` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    String,
    LinkedList,
    HashTableSet,
    SkipListZSet,
    HashTable,
    /// `ZSET_2`: scores as binary doubles.
    SkipListZSet2,
    ModulePreGa,
    Module2,
    Zipmap,
    ListZiplist,
    Intset,
    ZSetZiplist,
    HashZiplist,
    Quicklist,
    StreamListpacks,
    HashListpack,
    ZSetListpack,
    Quicklist2,
    StreamListpacks2,
    SetListpack,
    StreamListpacks3,
    /// Redis 7.4 release candidates' hash with field expiry (absolute TTLs).
    HashMetadataPreGa,
    HashListpackExPreGa,
    /// Redis 7.4's hash with field expiry: a minimum expiry, then TTLs relative to it.
    HashMetadata,
    HashListpackEx,
    /// Valkey 9's hash with field expiry (type 22 in `VALKEY` files).
    ValkeyHash2,
}

impl Encoding {
    /// The encoding of type byte `id` in a file of this flavor, if there is one.
    pub fn from_id(id: u8, flavor: Flavor) -> Option<Encoding> {
        use Encoding::*;
        Some(match (id, flavor) {
            (0, _) => String,
            (1, _) => LinkedList,
            (2, _) => HashTableSet,
            (3, _) => SkipListZSet,
            (4, _) => HashTable,
            (5, _) => SkipListZSet2,
            (6, _) => ModulePreGa,
            (7, _) => Module2,
            (9, _) => Zipmap,
            (10, _) => ListZiplist,
            (11, _) => Intset,
            (12, _) => ZSetZiplist,
            (13, _) => HashZiplist,
            (14, _) => Quicklist,
            (15, _) => StreamListpacks,
            (16, _) => HashListpack,
            (17, _) => ZSetListpack,
            (18, _) => Quicklist2,
            (19, _) => StreamListpacks2,
            (20, _) => SetListpack,
            (21, _) => StreamListpacks3,
            (22, Flavor::Redis) => HashMetadataPreGa,
            (23, Flavor::Redis) => HashListpackExPreGa,
            (24, Flavor::Redis) => HashMetadata,
            (25, Flavor::Redis) => HashListpackEx,
            (22, Flavor::Valkey) => ValkeyHash2,
            _ => return None,
        })
    }

    /// The data type this encoding stores.
    pub fn value_type(self) -> ValueType {
        use Encoding::*;
        match self {
            String => ValueType::String,
            LinkedList | ListZiplist | Quicklist | Quicklist2 => ValueType::List,
            HashTableSet | Intset | SetListpack => ValueType::Set,
            SkipListZSet | SkipListZSet2 | ZSetZiplist | ZSetListpack => ValueType::ZSet,
            HashTable | Zipmap | HashZiplist | HashListpack | HashMetadataPreGa
            | HashListpackExPreGa | HashMetadata | HashListpackEx | ValkeyHash2 => ValueType::Hash,
            StreamListpacks | StreamListpacks2 | StreamListpacks3 => ValueType::Stream,
            ModulePreGa | Module2 => ValueType::Module,
        }
    }

    /// A short name for the encoding, for reports.
    pub fn name(self) -> &'static str {
        use Encoding::*;
        match self {
            String => "string",
            LinkedList => "linkedlist",
            HashTableSet => "hashtable",
            SkipListZSet => "skiplist",
            HashTable => "hashtable",
            SkipListZSet2 => "skiplist",
            ModulePreGa => "module-pre-ga",
            Module2 => "module",
            Zipmap => "zipmap",
            ListZiplist => "ziplist",
            Intset => "intset",
            ZSetZiplist => "ziplist",
            HashZiplist => "ziplist",
            Quicklist => "quicklist",
            StreamListpacks | StreamListpacks2 | StreamListpacks3 => "listpacks",
            HashListpack | ZSetListpack | SetListpack => "listpack",
            Quicklist2 => "quicklist",
            HashMetadataPreGa | HashMetadata | ValkeyHash2 => "hashtable-ex",
            HashListpackExPreGa | HashListpackEx => "listpack-ex",
        }
    }
}

/// A stream entry ID, `<ms>-<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A module type: its 64-bit id packs a 9-character name and a 10-bit encoding version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleId(pub u64);

impl ModuleId {
    const CHARSET: &'static [u8; 64] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    /// The module type's name, as the module registered it (`RedisModule_CreateDataType`).
    pub fn name(self) -> String {
        let mut id = self.0 >> 10;
        let mut name = [0u8; 9];
        for slot in name.iter_mut().rev() {
            *slot = Self::CHARSET[(id & 63) as usize];
            id >>= 6;
        }
        name.iter().map(|&b| b as char).collect()
    }

    /// The encoding version the module saved with.
    pub fn encoding_version(self) -> u16 {
        (self.0 & 1023) as u16
    }
}

/// What the reader knows of the CRC64 trailer once the stream has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// The trailer matched the bytes.
    Verified(u64),
    /// The trailer was zero: the writer had `rdbchecksum no`.
    Disabled,
    /// Versions before 5 have no trailer.
    Absent,
}

/// How a key begins, reported just before its first element (and only once the reader knows it is not an empty
/// collection, which Redis would skip).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyStart<'a> {
    pub db: u64,
    pub key: &'a [u8],
    pub value_type: ValueType,
    pub encoding: Encoding,
    /// Absolute expiry in Unix milliseconds.
    pub expire_ms: Option<i64>,
    /// LRU idle time in seconds, when the writer used an LRU eviction policy.
    pub idle_secs: Option<u64>,
    /// LFU frequency counter, when the writer used an LFU eviction policy.
    pub lfu_freq: Option<u8>,
    /// Stream offset of the key's type byte.
    pub offset: u64,
    /// The module type, for module values.
    pub module: Option<ModuleId>,
}

/// A stream's metadata, which follows its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamMeta {
    /// Number of entries (`XLEN`).
    pub length: u64,
    pub last_id: StreamId,
    /// Version 2 and later only.
    pub first_id: Option<StreamId>,
    pub max_deleted_id: Option<StreamId>,
    pub entries_added: Option<u64>,
    /// Number of consumer groups that follow.
    pub groups: u64,
}

/// One piece of a key's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Element<'a> {
    /// The value of a string key.
    String(Value<'a>),
    ListItem(Value<'a>),
    SetMember(Value<'a>),
    ZSetMember {
        member: Value<'a>,
        score: f64,
    },
    /// A hash field; `expire_ms` is the field's absolute expiry (hash field expiry, RDB 12 and Valkey).
    HashField {
        field: Value<'a>,
        value: Value<'a>,
        expire_ms: Option<i64>,
    },
    /// A stream entry (deleted entries are not reported).
    StreamEntry {
        id: StreamId,
        fields: &'a [(Value<'a>, Value<'a>)],
    },
    StreamMeta(StreamMeta),
    /// A consumer group; its pending entries, then its consumers, follow.
    StreamGroup {
        name: Value<'a>,
        last_id: StreamId,
        /// Entries the group has read, when known (streams of version 2 and later).
        entries_read: Option<u64>,
        pending: u64,
    },
    /// An entry of the current group's pending entries list.
    StreamGroupPending {
        id: StreamId,
        delivery_time_ms: u64,
        delivery_count: u64,
    },
    /// A consumer of the current group; the IDs of its pending entries follow.
    StreamConsumer {
        name: Value<'a>,
        seen_time_ms: u64,
        /// Version 3 streams only.
        active_time_ms: Option<u64>,
        pending: u64,
    },
    StreamConsumerPending {
        id: StreamId,
    },
}

/// Everything the reader reports, in stream order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event<'a> {
    /// The header: who wrote it and the RDB version. A `DUMP` payload reports its trailer's version here.
    Header {
        flavor: Flavor,
        version: u32,
    },
    /// An auxiliary field (`redis-ver`, `ctime`, `used-mem`, `lua` scripts of old versions…).
    Aux {
        key: Value<'a>,
        value: Value<'a>,
    },
    SelectDb {
        db: u64,
    },
    /// How many keys and keys with expiry the database holds.
    ResizeDb {
        keys: u64,
        expires: u64,
    },
    /// Cluster slot information (Redis 7.4+ `SLOT_INFO`).
    SlotInfo {
        slot: u64,
        size: u64,
        expires: u64,
    },
    /// Auxiliary data of a module, skipped through its opcodes.
    ModuleAux {
        module: ModuleId,
        when: u64,
    },
    /// A function library (Redis 7.0+): the code with its `#!lua name=...` shebang.
    Function {
        code: Value<'a>,
    },
    /// A function of the Redis 7.0 release candidates' format.
    FunctionPreGa {
        name: Value<'a>,
        engine: Value<'a>,
        description: Option<Value<'a>>,
        code: Value<'a>,
    },
    KeyStart(KeyStart<'a>),
    Element(Element<'a>),
    /// The end of the current key's value; `offset` is just past its last byte.
    KeyEnd {
        offset: u64,
    },
    /// A collection with no element, which Redis skips on load (as `corrupt-empty-keys` files hold).
    SkippedEmptyKey {
        key: &'a [u8],
    },
    /// The end of the RDB.
    Eof {
        checksum: Checksum,
    },
}
