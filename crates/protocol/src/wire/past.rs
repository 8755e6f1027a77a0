//! The **past** message (tag 11, docs/PROTOCOL.md): the items that entered the windows of a top-up's keys before its
//! snapshot, for a client that asked with `since` (the history sink). A browser never gets it, so this module is
//! compiled only with the crate's feature `past` (the relay's and the sink's build), and [`super::decode`] refuses
//! its tag. Its error texts are plain literals, not `text!`: the client's table of texts (`scripts/wasm-texts.mjs`)
//! need not carry them.

use crate::client_message::MAX_NAME_LEN;

use super::{read_u32, read_u64, WireError, MAX_SHARDS, TAG_PAST, TAG_SHARD};

/// Most keys one [`Past`] message lists: the most one top-up reads (the relay's `MAX_SNAPSHOT_KEYS`).
pub const MAX_PAST_KEYS: usize = 10_000;
/// Most field names and values one stream entry of a [`Past`] message carries.
pub const MAX_PAST_FIELDS: usize = 1 << 20;

/// The items that entered the windows of a top-up's keys before its snapshot, from the relay's state, for a client
/// that asked with `since` (the history sink; browsers never do): sent right before the top-up's snapshot, at the
/// same `offset`, in the same shard's stream. Decoded by [`decode_past`], encoded by [`encode_past`].
#[derive(Debug, Clone, PartialEq)]
pub struct Past<'a> {
    /// Where the top-up's snapshot sits in the stream (the snapshot's own offset).
    pub offset: u64,
    /// Every key of the top-up, in the relay's order, at most [`MAX_PAST_KEYS`].
    pub keys: Vec<PastKey<'a>>,
}

/// One key of a [`Past`] message.
#[derive(Debug, Clone, PartialEq)]
pub struct PastKey<'a> {
    /// At most [`MAX_NAME_LEN`] bytes.
    pub key: &'a [u8],
    /// From what offset the list of items that entered the key's window is complete: every item that entered it in
    /// `(covered_from, offset]` is listed if it entered after the request's `since`. `covered_from` equal to the
    /// message's `offset` says nothing is covered (no state, the key's window not exact, the ring off).
    pub covered_from: u64,
    /// The items that entered the window in `(max(since, covered_from), offset]`, in the order they were applied.
    pub items: Vec<PastItem<'a>>,
}

/// One item that entered a key's window, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct PastItem<'a> {
    /// The end offset of the command that wrote it (or of its batch: a later offset, never an earlier one).
    pub offset: u64,
    pub value: PastValue<'a>,
}

/// What entered a window.
#[derive(Debug, Clone, PartialEq)]
pub enum PastValue<'a> {
    /// A sorted-set member with the score it had then.
    Member { score: f64, member: &'a [u8] },
    /// A stream entry: its id `ms-seq`, and its field names and values, alternating.
    Entry {
        ms: u64,
        seq: u64,
        fields: Vec<&'a [u8]>,
    },
}

/// A past message (`11`, see [`Past`]), alone (shard 0) or in a shard's envelope: the shard and what it holds.
/// Layout: `offset: u64`, then per key `len: u32` (≤ 1024), the key, `covered_from: u64` (≤ `offset`), `items: u32`,
/// and each item: `offset: u64` (after `covered_from`, at most the message's, never before the item before it),
/// `kind: u8`, then for a member (0) `score: f64` (IEEE 754, not NaN), `len: u32` and the member; for a stream entry
/// (1) `ms: u64`, `seq: u64`, `count: u32` (even, at most 2^20), then `count` times `len: u32` and the bytes (field
/// names and values, alternating).
pub fn decode_past(message: &[u8]) -> Result<(u16, Past<'_>), WireError> {
    let (shard, at) = match message {
        [TAG_PAST, ..] => (0, 0),
        [TAG_SHARD, lo, hi, TAG_PAST, ..] => {
            let index = u16::from_le_bytes([*lo, *hi]);
            if usize::from(index) >= MAX_SHARDS {
                return Err(WireError {
                    at: 1,
                    expected: "a shard index below 1024",
                });
            }
            (index, 3)
        }
        _ => {
            return Err(WireError {
                at: 0,
                expected: "a past message (tag 11), alone or in a shard envelope",
            })
        }
    };
    let mut reader = PastReader {
        message,
        at: at + 1,
    };
    let offset = reader.u64("the past message's offset (8 bytes)")?;
    let mut keys = Vec::new();
    while reader.at < message.len() {
        if keys.len() == MAX_PAST_KEYS {
            return Err(reader.error("at most 10000 keys in a past message"));
        }
        keys.push(reader.key(offset)?);
    }
    Ok((shard, Past { offset, keys }))
}

/// Reads a past message's parts, checking each length against what is left.
struct PastReader<'a> {
    message: &'a [u8],
    at: usize,
}

impl<'a> PastReader<'a> {
    fn error(&self, expected: &'static str) -> WireError {
        WireError {
            at: self.at,
            expected,
        }
    }

    fn u64(&mut self, expected: &'static str) -> Result<u64, WireError> {
        let value = read_u64(self.message, self.at, expected)?;
        self.at += 8;
        Ok(value)
    }

    fn u32(&mut self, expected: &'static str) -> Result<u32, WireError> {
        let value = read_u32(self.message, self.at, expected)?;
        self.at += 4;
        Ok(value)
    }

    /// `len: u32` and as many bytes, at most `most`.
    fn bytes(&mut self, most: usize, expected: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.u32("a length (4 bytes)")? as usize;
        if len > most {
            self.at -= 4;
            return Err(self.error(expected));
        }
        let bytes = self
            .message
            .get(self.at..self.at.saturating_add(len))
            .ok_or(self.error("as many bytes as their length says"))?;
        self.at += len;
        Ok(bytes)
    }

    fn key(&mut self, offset: u64) -> Result<PastKey<'a>, WireError> {
        let key = self.bytes(MAX_NAME_LEN, "a key of at most 1024 bytes")?;
        let at = self.at;
        let covered_from = self.u64("the key's covered_from (8 bytes)")?;
        if covered_from > offset {
            return Err(WireError {
                at,
                expected: "a covered_from at most the message's offset",
            });
        }
        let count = self.u32("the key's item count (4 bytes)")?;
        let mut items = Vec::new();
        let mut before = covered_from;
        for _ in 0..count {
            let at = self.at;
            let item = self.u64("an item's offset (8 bytes)")?;
            if item <= covered_from || item < before || item > offset {
                return Err(WireError {
                    at,
                    expected: "an item's offset after covered_from, not before the item before it, at most the message's",
                });
            }
            before = item;
            let value = match self.message.get(self.at) {
                Some(0) => {
                    self.at += 1;
                    let at = self.at;
                    let score = f64::from_bits(self.u64("a member's score (8 bytes)")?);
                    if score.is_nan() {
                        return Err(WireError {
                            at,
                            expected: "a score that is a number",
                        });
                    }
                    let member = self.bytes(usize::MAX, "a member")?;
                    PastValue::Member { score, member }
                }
                Some(1) => {
                    self.at += 1;
                    let ms = self.u64("an entry id's milliseconds (8 bytes)")?;
                    let seq = self.u64("an entry id's sequence (8 bytes)")?;
                    let at = self.at;
                    let count = self.u32("an entry's field count (4 bytes)")? as usize;
                    if count % 2 == 1 || count > MAX_PAST_FIELDS {
                        return Err(WireError {
                            at,
                            expected: "an even count of field names and values, at most 2^20",
                        });
                    }
                    let mut fields = Vec::new();
                    for _ in 0..count {
                        fields.push(self.bytes(usize::MAX, "a field")?);
                    }
                    PastValue::Entry { ms, seq, fields }
                }
                _ => return Err(self.error("an item kind of 0 (member) or 1 (stream entry)")),
            };
            items.push(PastItem {
                offset: item,
                value,
            });
        }
        Ok(PastKey {
            key,
            covered_from,
            items,
        })
    }
}

/// Whether `message` is a past message (alone or in a shard's envelope), without decoding it.
pub fn is_past(message: &[u8]) -> bool {
    matches!(message, [TAG_PAST, ..] | [TAG_SHARD, _, _, TAG_PAST, ..])
}

/// The past message for `past` (see [`decode_past`] for the layout). The relay lists at most [`MAX_PAST_KEYS`]
/// keys a top-up can name, with items whose offsets follow the rules [`decode_past`] checks.
pub fn encode_past(past: &Past<'_>) -> Vec<u8> {
    let mut out = vec![TAG_PAST];
    out.extend_from_slice(&past.offset.to_le_bytes());
    for key in &past.keys {
        push_past_key(&mut out, key.key, key.covered_from, key.items.len());
        for item in &key.items {
            push_past_item(&mut out, item);
        }
    }
    out
}

/// Appends a key's header to a past message: its items follow ([`push_past_item`], `items` of them).
pub fn push_past_key(out: &mut Vec<u8>, key: &[u8], covered_from: u64, items: usize) {
    // Keys a top-up can name: at most 1024 bytes; items: bounded by the relay's send budget, far below 2^32.
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&covered_from.to_le_bytes());
    out.extend_from_slice(&(items as u32).to_le_bytes());
}

/// Appends one item to a past message, after its key's header.
pub fn push_past_item(out: &mut Vec<u8>, item: &PastItem<'_>) {
    out.extend_from_slice(&item.offset.to_le_bytes());
    match &item.value {
        PastValue::Member { score, member } => {
            out.push(0);
            out.extend_from_slice(&score.to_bits().to_le_bytes());
            out.extend_from_slice(&(member.len() as u32).to_le_bytes());
            out.extend_from_slice(member);
        }
        PastValue::Entry { ms, seq, fields } => {
            out.push(1);
            out.extend_from_slice(&ms.to_le_bytes());
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&(fields.len() as u32).to_le_bytes());
            for field in fields {
                out.extend_from_slice(&(field.len() as u32).to_le_bytes());
                out.extend_from_slice(field);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode, encode_shard, is_shard_stream};

    #[test]
    fn past_messages_list_each_keys_items_with_their_offsets() {
        let past = Past {
            offset: 90,
            keys: vec![
                PastKey {
                    key: b"k",
                    covered_from: 10,
                    items: vec![
                        PastItem {
                            offset: 40,
                            value: PastValue::Member {
                                score: 5.0,
                                member: b"m",
                            },
                        },
                        PastItem {
                            offset: 40,
                            value: PastValue::Entry {
                                ms: 7,
                                seq: 1,
                                fields: vec![b"f", b"v"],
                            },
                        },
                    ],
                },
                PastKey {
                    key: b"s",
                    covered_from: 90,
                    items: Vec::new(),
                },
            ],
        };
        let message = encode_past(&past);
        assert_eq!(
            message,
            [
                &b"\x0b\x5a\0\0\0\0\0\0\0"[..],
                b"\x01\0\0\0k\x0a\0\0\0\0\0\0\0\x02\0\0\0",
                b"\x28\0\0\0\0\0\0\0\x00\0\0\0\0\0\0\x14\x40\x01\0\0\0m",
                b"\x28\0\0\0\0\0\0\0\x01\x07\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\x02\0\0\0\x01\0\0\0f\x01\0\0\0v",
                b"\x01\0\0\0s\x5a\0\0\0\0\0\0\0\0\0\0\0",
            ]
            .concat()
        );
        assert_eq!(decode_past(&message), Ok((0, past.clone())));
        assert!(is_past(&message) && is_shard_stream(&message));
        let wrapped = encode_shard(3, &message);
        assert!(is_past(&wrapped));
        assert_eq!(decode_past(&wrapped), Ok((3, past)));
        // The browser's decoder does not take it.
        assert_eq!(decode(&message).unwrap_err().at, 0);
        assert_eq!(
            decode_past(&encode_past(&Past {
                offset: 5,
                keys: Vec::new()
            })),
            Ok((
                0,
                Past {
                    offset: 5,
                    keys: Vec::new()
                }
            ))
        );
    }

    #[test]
    fn bad_past_messages_say_what_was_expected() {
        let expected = |message: &[u8]| decode_past(message).unwrap_err();
        let head = b"\x0b\x5a\0\0\0\0\0\0\0";
        let key = |covered: u64, items: u32| {
            let mut out = head.to_vec();
            push_past_key(&mut out, b"k", covered, items as usize);
            out
        };
        let member = |offset: u64, score: f64| {
            let mut out = Vec::new();
            push_past_item(
                &mut out,
                &PastItem {
                    offset,
                    value: PastValue::Member {
                        score,
                        member: b"m",
                    },
                },
            );
            out
        };
        assert_eq!(expected(b"\x04").at, 0);
        assert_eq!(expected(b"\x0b\x01").at, 1);
        assert_eq!(expected(&encode_shard(1024, head)).at, 1);
        assert_eq!(expected(&[&head[..], b"\x05\0\0\0ab"].concat()).at, 13);
        let long = [&head[..], &1025u32.to_le_bytes(), &[b'k'; 1025]].concat();
        assert_eq!(expected(&long).expected, "a key of at most 1024 bytes");
        assert_eq!(
            expected(&key(91, 0)).expected,
            "a covered_from at most the message's offset"
        );
        assert_eq!(expected(&key(10, 1)).at, 26);
        let at_covered = [key(10, 1), member(10, 1.0)].concat();
        assert_eq!(expected(&at_covered).at, 26);
        let past_offset = [key(10, 1), member(91, 1.0)].concat();
        assert_eq!(expected(&past_offset).at, 26);
        let backwards = [key(10, 2), member(50, 1.0), member(40, 1.0)].concat();
        assert_eq!(expected(&backwards).at, 26 + 22);
        let nan = [key(10, 1), member(50, f64::NAN)].concat();
        assert_eq!(expected(&nan).expected, "a score that is a number");
        let mut kind = [key(10, 1), member(50, 1.0)].concat();
        kind[34] = 2;
        assert_eq!(expected(&kind).at, 34);
        let mut odd = key(10, 1);
        push_past_item(
            &mut odd,
            &PastItem {
                offset: 50,
                value: PastValue::Entry {
                    ms: 1,
                    seq: 0,
                    fields: vec![b"f"],
                },
            },
        );
        assert_eq!(
            expected(&odd).expected,
            "an even count of field names and values, at most 2^20"
        );
        let short = [key(10, 1), member(50, 1.0)].concat();
        assert_eq!(
            expected(&short[..short.len() - 1]).to_string(),
            "relay message byte 47: expected as many bytes as their length says"
        );
        let many: Vec<PastKey<'_>> = (0..=MAX_PAST_KEYS)
            .map(|_| PastKey {
                key: b"",
                covered_from: 0,
                items: Vec::new(),
            })
            .collect();
        let too_many = encode_past(&Past {
            offset: 0,
            keys: many,
        });
        assert_eq!(
            expected(&too_many).expected,
            "at most 10000 keys in a past message"
        );
    }
}
