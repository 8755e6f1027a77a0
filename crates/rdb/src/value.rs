//! Reading a key's value, one step at a time: the plain encodings element by element, the compact encodings one
//! encoded string at a time (a quicklist node, a whole small hash…), each reported element by element.

use super::cursor::{parse_double, Cursor};
use super::encodings::intset::Intset as IntsetReader;
use super::encodings::listpack::Listpack;
use super::encodings::ziplist::Ziplist;
use super::encodings::zipmap::Zipmap;
use super::encodings::EncodingError;
use super::error::{Halt, RdbError};
use super::event::{Element, Encoding, ModuleId, Value};
use super::module::skip_module_op;
use super::reader::RdbReader;
use super::state::{KeyCtx, Sink, StreamState, ValueState};

/// A quicklist 2 node holding one big element as-is.
const QUICKLIST_NODE_PLAIN: u64 = 1;
/// A quicklist 2 node holding a listpack.
const QUICKLIST_NODE_PACKED: u64 = 2;

impl RdbReader {
    pub(crate) fn value_step(&mut self, cur: &mut Cursor<'_>, on: Sink<'_>) -> Result<(), Halt> {
        let Some(encoding) = self.key.encoding else {
            // Unreachable by construction (a value always follows its type); an error rather than a loop.
            return Err(RdbError::Unexpected {
                offset: cur.offset(),
                expected: "a value type before a value",
                found: "none".to_string(),
            }
            .into());
        };
        match self.value {
            ValueState::Start => self.value_start(encoding, cur, on),
            ValueState::Items { left } => {
                self.item(encoding, cur, on)?;
                self.next_or_end(
                    ValueState::Items { left: left - 1 },
                    left - 1,
                    cur.offset(),
                    on,
                );
                Ok(())
            }
            ValueState::QuicklistNodes { left } => {
                self.quicklist_node(encoding, cur, on)?;
                let state = ValueState::QuicklistNodes { left: left - 1 };
                self.next_or_end(state, left - 1, cur.offset(), on);
                Ok(())
            }
            ValueState::Stream(state) => self.stream_step(encoding, state, cur, on),
            ValueState::ModuleOps => {
                if skip_module_op(cur, &self.options.limits, &mut self.scratch[0])? {
                    self.end_key(cur.offset(), on);
                }
                Ok(())
            }
        }
    }

    /// Moves to `next` if `left` elements remain, else ends the key.
    fn next_or_end(&mut self, next: ValueState, left: u64, end: u64, on: Sink<'_>) {
        if left == 0 {
            self.end_key(end, on);
        } else {
            self.value = next;
        }
    }

    fn value_start(
        &mut self,
        encoding: Encoding,
        cur: &mut Cursor<'_>,
        on: Sink<'_>,
    ) -> Result<(), Halt> {
        use Encoding::*;
        let limits = self.options.limits;
        match encoding {
            String => {
                let value = cur.string("a string value", &limits, &mut self.scratch[0])?;
                self.key.element(on, Element::String(value));
                self.end_key(cur.offset(), on);
            }
            LinkedList | HashTableSet | SkipListZSet | SkipListZSet2 | HashTable | HashMetadataPreGa
            | ValkeyHash2 => {
                let n = cur.len("a number of elements")?;
                self.next_or_end(ValueState::Items { left: n }, n, cur.offset(), on);
            }
            HashMetadata => {
                let min = cur.millis()?;
                let n = cur.len("a number of hash fields")?;
                self.min_expire = min;
                self.next_or_end(ValueState::Items { left: n }, n, cur.offset(), on);
            }
            Quicklist | Quicklist2 => {
                let n = cur.len("a number of quicklist nodes")?;
                self.next_or_end(ValueState::QuicklistNodes { left: n }, n, cur.offset(), on);
            }
            StreamListpacks | StreamListpacks2 | StreamListpacks3 => {
                let n = cur.len("a number of stream nodes")?;
                self.value = ValueState::Stream(if n == 0 {
                    StreamState::Meta
                } else {
                    StreamState::Nodes { left: n }
                });
            }
            Module2 => {
                let id = cur.len("a module id")?;
                self.key.module = Some(ModuleId(id));
                self.key.start(on);
                self.value = ValueState::ModuleOps;
            }
            ModulePreGa => {
                return Err(RdbError::Unexpected {
                    offset: self.key.offset,
                    expected: "a module value in the MODULE_2 format (the pre-GA format needs the module to skip)",
                    found: "type 6".to_string(),
                }
                .into())
            }
            HashListpackEx => {
                // The minimum expiry is only a scheduling hint: the listpack holds absolute expiries.
                cur.millis()?;
                self.compact(encoding, cur, on)?;
                self.end_key(cur.offset(), on);
            }
            Zipmap | ListZiplist | Intset | ZSetZiplist | HashZiplist | HashListpack | ZSetListpack
            | SetListpack | HashListpackExPreGa => {
                self.compact(encoding, cur, on)?;
                self.end_key(cur.offset(), on);
            }
        }
        Ok(())
    }

    /// One element of a plain encoding.
    fn item(&mut self, encoding: Encoding, cur: &mut Cursor<'_>, on: Sink<'_>) -> Result<(), Halt> {
        use Encoding::*;
        let limits = self.options.limits;
        let [a, b, ..] = &mut self.scratch;
        let key = &mut self.key;
        match encoding {
            LinkedList => {
                let item = cur.string("a list element", &limits, a)?;
                key.element(on, Element::ListItem(item));
            }
            HashTableSet => {
                let member = cur.string("a set member", &limits, a)?;
                key.element(on, Element::SetMember(member));
            }
            SkipListZSet | SkipListZSet2 => {
                let member = cur.raw_string("a sorted set member", &limits)?;
                let score = if encoding == SkipListZSet {
                    cur.text_double()?
                } else {
                    cur.binary_double()?
                };
                let member = member.decode(a)?;
                key.element(on, Element::ZSetMember { member, score });
            }
            HashTable => {
                // Both strings are read before either is decompressed (see `RawString`).
                let field = cur.raw_string("a hash field", &limits)?;
                let value = cur.raw_string("a hash value", &limits)?;
                let (field, value) = (field.decode(a)?, value.decode(b)?);
                key.element(
                    on,
                    Element::HashField {
                        field,
                        value,
                        expire_ms: None,
                    },
                );
            }
            HashMetadataPreGa | HashMetadata => {
                let ttl = cur.len("a hash field's expiry")?;
                let field = cur.raw_string("a hash field", &limits)?;
                let value = cur.raw_string("a hash value", &limits)?;
                let (field, value) = (field.decode(a)?, value.decode(b)?);
                let expire_ms = match (ttl, encoding) {
                    (0, _) => None,
                    (abs, HashMetadataPreGa) => Some(abs as i64),
                    (rel, _) => Some(self.min_expire.wrapping_add((rel as i64).wrapping_sub(1))),
                };
                key.element(
                    on,
                    Element::HashField {
                        field,
                        value,
                        expire_ms,
                    },
                );
            }
            ValkeyHash2 => {
                let field = cur.raw_string("a hash field", &limits)?;
                let value = cur.raw_string("a hash value", &limits)?;
                let expire = cur.millis()?;
                let (field, value) = (field.decode(a)?, value.decode(b)?);
                let expire_ms = (expire != -1).then_some(expire);
                key.element(
                    on,
                    Element::HashField {
                        field,
                        value,
                        expire_ms,
                    },
                );
            }
            _ => {}
        }
        Ok(())
    }

    fn quicklist_node(
        &mut self,
        encoding: Encoding,
        cur: &mut Cursor<'_>,
        on: Sink<'_>,
    ) -> Result<(), Halt> {
        let limits = self.options.limits;
        let at = cur.offset();
        if encoding == Encoding::Quicklist {
            let blob = cur.blob("a quicklist ziplist", &limits, &mut self.scratch[0])?;
            let blob_at = at;
            return emit_ziplist_items(blob, &mut self.key, on)
                .map_err(|e| e.at_offset(blob_at, "ziplist").into());
        }
        let container = cur.len("a quicklist node container")?;
        let blob_at = cur.offset();
        match container {
            QUICKLIST_NODE_PLAIN => {
                let item =
                    cur.string("a plain quicklist element", &limits, &mut self.scratch[0])?;
                self.key.element(on, Element::ListItem(item));
                Ok(())
            }
            QUICKLIST_NODE_PACKED => {
                let blob = cur.blob("a quicklist listpack", &limits, &mut self.scratch[0])?;
                emit_listpack(blob, &mut self.key, on, |key, on, v| {
                    key.element(on, Element::ListItem(v));
                    Ok(())
                })
                .map_err(|e| e.at_offset(blob_at, "listpack").into())
            }
            other => Err(RdbError::Unexpected {
                offset: at,
                expected: "a quicklist node container (1 plain or 2 packed)",
                found: other.to_string(),
            }
            .into()),
        }
    }

    /// A whole compact-encoded value, reported element by element.
    fn compact(
        &mut self,
        encoding: Encoding,
        cur: &mut Cursor<'_>,
        on: Sink<'_>,
    ) -> Result<(), Halt> {
        use Encoding::*;
        let limits = self.options.limits;
        let at = cur.offset();
        let (what, name) = match encoding {
            Zipmap => ("a zipmap", "zipmap"),
            ListZiplist | ZSetZiplist | HashZiplist => ("a ziplist", "ziplist"),
            Intset => ("an intset", "intset"),
            _ => ("a listpack", "listpack"),
        };
        let blob = cur.blob(what, &limits, &mut self.scratch[0])?;
        decode_compact(encoding, blob, &mut self.key, on).map_err(|e| e.at_offset(at, name).into())
    }
}

/// Reports the elements of a compact-encoded value.
fn decode_compact(
    encoding: Encoding,
    blob: &[u8],
    key: &mut KeyCtx,
    on: Sink<'_>,
) -> Result<(), EncodingError> {
    use Encoding::*;
    match encoding {
        Zipmap => emit_zipmap(blob, key, on),
        ListZiplist => emit_ziplist_items(blob, key, on),
        ZSetZiplist | HashZiplist => {
            let mut zl = Ziplist::new(blob)?;
            let zset = encoding == ZSetZiplist;
            loop {
                let Some(first) = zl.next_entry()? else {
                    break Ok(());
                };
                let pos = blob.len();
                let second = zl.next_entry()?.ok_or_else(|| {
                    EncodingError::new(pos - 1, "a value after the last field", "the end byte")
                })?;
                pair_element(zset, first, second, None, key, on)?;
            }
        }
        Intset => {
            let mut set = IntsetReader::new(blob)?;
            while let Some(v) = set.next_int()? {
                key.element(on, Element::SetMember(Value::Int(v)));
            }
            Ok(())
        }
        SetListpack => emit_listpack(blob, key, on, |key, on, v| {
            key.element(on, Element::SetMember(v));
            Ok(())
        }),
        HashListpack | ZSetListpack => {
            let zset = encoding == ZSetListpack;
            let mut lp = Listpack::new(blob)?;
            loop {
                let Some(first) = lp.next_entry()? else {
                    break Ok(());
                };
                let pos = lp.position();
                let second = lp.next_entry()?.ok_or_else(|| {
                    EncodingError::new(pos, "a value after the last field", "the end byte")
                })?;
                pair_element(zset, first, second, None, key, on)?;
            }
        }
        _ => {
            // Hash listpacks with field expiry: field, value, expiry (0: none) triplets.
            let mut lp = Listpack::new(blob)?;
            loop {
                let Some(field) = lp.next_entry()? else {
                    break Ok(());
                };
                let pos = lp.position();
                let missing = || {
                    EncodingError::new(pos, "a value and an expiry after a field", "the end byte")
                };
                let value = lp.next_entry()?.ok_or_else(missing)?;
                let ttl = lp.next_entry()?.ok_or_else(missing)?;
                let ttl = ttl.as_int().ok_or_else(|| {
                    EncodingError::new(pos, "a field expiry as an integer", ttl.to_string())
                })?;
                pair_element(false, field, value, Some(ttl).filter(|&t| t != 0), key, on)?;
            }
        }
    }
}

fn pair_element(
    zset: bool,
    first: Value<'_>,
    second: Value<'_>,
    expire_ms: Option<i64>,
    key: &mut KeyCtx,
    on: Sink<'_>,
) -> Result<(), EncodingError> {
    if zset {
        let score = match second {
            Value::Int(i) => i as f64,
            Value::Bytes(b) => parse_double(b).ok_or_else(|| {
                EncodingError::new(0, "a score", String::from_utf8_lossy(b).into_owned())
            })?,
        };
        key.element(
            on,
            Element::ZSetMember {
                member: first,
                score,
            },
        );
    } else {
        key.element(
            on,
            Element::HashField {
                field: first,
                value: second,
                expire_ms,
            },
        );
    }
    Ok(())
}

fn emit_ziplist_items(blob: &[u8], key: &mut KeyCtx, on: Sink<'_>) -> Result<(), EncodingError> {
    let mut zl = Ziplist::new(blob)?;
    while let Some(v) = zl.next_entry()? {
        key.element(on, Element::ListItem(v));
    }
    Ok(())
}

fn emit_listpack(
    blob: &[u8],
    key: &mut KeyCtx,
    on: Sink<'_>,
    mut each: impl FnMut(&mut KeyCtx, Sink<'_>, Value<'_>) -> Result<(), EncodingError>,
) -> Result<(), EncodingError> {
    let mut lp = Listpack::new(blob)?;
    while let Some(v) = lp.next_entry()? {
        each(key, on, v)?;
    }
    Ok(())
}

fn emit_zipmap(blob: &[u8], key: &mut KeyCtx, on: Sink<'_>) -> Result<(), EncodingError> {
    let mut zm = Zipmap::new(blob)?;
    while let Some((field, value)) = zm.next_pair()? {
        key.element(
            on,
            Element::HashField {
                field: Value::Bytes(field),
                value: Value::Bytes(value),
                expire_ms: None,
            },
        );
    }
    Ok(())
}
