//! Streams: their entries, stored as listpack nodes keyed by a master ID, then their metadata, then consumer
//! groups with their pending entries lists (PEL) and consumers, each consumer with the IDs it has pending.
//!
//! A node's listpack starts with a master entry (valid count, deleted count, the master field names, a 0), then
//! each entry: flags, ID deltas from the master ID, either values for the master fields (`SAMEFIELDS`) or a
//! field count and field/value pairs, then the entry's element count. Deleted entries are skipped, as `XRANGE`
//! would.

use super::cursor::Cursor;
use super::encodings::listpack::Listpack;
use super::encodings::EncodingError;
use super::error::{Halt, RdbError};
use super::event::{Element, Encoding, StreamId, StreamMeta, Value};
use super::reader::RdbReader;
use super::state::{KeyCtx, Sink, StreamState, ValueState};

const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;
/// Length of a node's master ID (two big-endian u64).
const MASTER_ID_LEN: usize = 16;

impl RdbReader {
    pub(crate) fn stream_step(
        &mut self,
        encoding: Encoding,
        state: StreamState,
        cur: &mut Cursor<'_>,
        on: Sink<'_>,
    ) -> Result<(), Halt> {
        let version = match encoding {
            Encoding::StreamListpacks => 1,
            Encoding::StreamListpacks2 => 2,
            _ => 3,
        };
        let limits = self.options.limits;
        let [a, b, ..] = &mut self.scratch;
        let next = match state {
            StreamState::Nodes { left } => {
                let at = cur.offset();
                let master = cur.string("a stream node's master ID", &limits, a)?;
                let Value::Bytes(master) = master else {
                    return Err(unexpected(at, "a 16-byte master ID", "an integer"));
                };
                let master: &[u8; MASTER_ID_LEN] = master.try_into().map_err(|_| {
                    unexpected(
                        at,
                        "a 16-byte master ID",
                        &format!("{} bytes", master.len()),
                    )
                })?;
                let master = super::cursor::stream_id_from_bytes(master);
                let lp_at = cur.offset();
                let lp = cur.blob("a stream node listpack", &limits, b)?;
                decode_node(master, lp, &mut self.key, on)
                    .map_err(|e| Halt::Fail(e.at_offset(lp_at, "stream listpack")))?;
                if left > 1 {
                    StreamState::Nodes { left: left - 1 }
                } else {
                    StreamState::Meta
                }
            }
            StreamState::Meta => {
                let length = cur.len("a stream length")?;
                let last_id = id(cur, "a stream's last ID")?;
                let (first_id, max_deleted_id, entries_added) = if version >= 2 {
                    (
                        Some(id(cur, "a stream's first ID")?),
                        Some(id(cur, "a stream's max deleted ID")?),
                        Some(cur.len("a stream's entries added")?),
                    )
                } else {
                    (None, None, None)
                };
                let groups = cur.len("a number of consumer groups")?;
                self.key.element(
                    on,
                    Element::StreamMeta(StreamMeta {
                        length,
                        last_id,
                        first_id,
                        max_deleted_id,
                        entries_added,
                        groups,
                    }),
                );
                match groups {
                    0 => return self.stream_end(cur, on),
                    n => StreamState::Group { left: n },
                }
            }
            StreamState::Group { left } => {
                let name = cur.string("a consumer group name", &limits, a)?;
                let last_id = id(cur, "a group's last ID")?;
                // Version 1 has no count; later versions store -1 when it is unknown (after deletions).
                let entries_read = if version >= 2 {
                    Some(cur.len("a group's entries read")?).filter(|&n| n != u64::MAX)
                } else {
                    None
                };
                let pending = cur.len("a group's number of pending entries")?;
                self.key.element(
                    on,
                    Element::StreamGroup {
                        name,
                        last_id,
                        entries_read,
                        pending,
                    },
                );
                match pending {
                    0 => StreamState::Consumers { groups: left - 1 },
                    n => StreamState::GroupPel {
                        groups: left - 1,
                        left: n,
                    },
                }
            }
            StreamState::GroupPel { groups, left } => {
                let id = cur.raw_stream_id()?;
                let delivery_time_ms = cur.millis()? as u64;
                let delivery_count = cur.len("a pending entry's delivery count")?;
                self.key.element(
                    on,
                    Element::StreamGroupPending {
                        id,
                        delivery_time_ms,
                        delivery_count,
                    },
                );
                match left - 1 {
                    0 => StreamState::Consumers { groups },
                    n => StreamState::GroupPel { groups, left: n },
                }
            }
            StreamState::Consumers { groups } => match cur.len("a number of consumers")? {
                0 => return self.after_group(groups, cur, on),
                n => StreamState::Consumer { groups, left: n },
            },
            StreamState::Consumer { groups, left } => {
                let name = cur.string("a consumer name", &limits, a)?;
                let seen_time_ms = cur.millis()? as u64;
                let active_time_ms = if version >= 3 {
                    Some(cur.millis()? as u64)
                } else {
                    None
                };
                let pending = cur.len("a consumer's number of pending entries")?;
                self.key.element(
                    on,
                    Element::StreamConsumer {
                        name,
                        seen_time_ms,
                        active_time_ms,
                        pending,
                    },
                );
                match pending {
                    0 if left > 1 => StreamState::Consumer {
                        groups,
                        left: left - 1,
                    },
                    0 => return self.after_group(groups, cur, on),
                    n => StreamState::ConsumerPel {
                        groups,
                        consumers: left - 1,
                        left: n,
                    },
                }
            }
            StreamState::ConsumerPel {
                groups,
                consumers,
                left,
            } => {
                let id = cur.raw_stream_id()?;
                self.key.element(on, Element::StreamConsumerPending { id });
                match (left - 1, consumers) {
                    (0, 0) => return self.after_group(groups, cur, on),
                    (0, c) => StreamState::Consumer { groups, left: c },
                    (n, c) => StreamState::ConsumerPel {
                        groups,
                        consumers: c,
                        left: n,
                    },
                }
            }
        };
        self.value = ValueState::Stream(next);
        Ok(())
    }

    fn after_group(&mut self, groups: u64, cur: &mut Cursor<'_>, on: Sink<'_>) -> Result<(), Halt> {
        if groups == 0 {
            return self.stream_end(cur, on);
        }
        self.value = ValueState::Stream(StreamState::Group { left: groups });
        Ok(())
    }

    fn stream_end(&mut self, cur: &mut Cursor<'_>, on: Sink<'_>) -> Result<(), Halt> {
        self.end_key(cur.offset(), on);
        Ok(())
    }
}

fn unexpected(offset: u64, expected: &'static str, found: &str) -> Halt {
    Halt::Fail(RdbError::Unexpected {
        offset,
        expected,
        found: found.to_string(),
    })
}

/// A stream ID as two lengths.
fn id(cur: &mut Cursor<'_>, what: &'static str) -> Result<StreamId, Halt> {
    let ms = cur.len(what)?;
    let seq = cur.len(what)?;
    Ok(StreamId { ms, seq })
}

fn int(lp: &mut Listpack<'_>, what: &'static str) -> Result<i64, EncodingError> {
    let at = lp.position();
    match lp.next_entry()? {
        Some(v) => v
            .as_int()
            .ok_or_else(|| EncodingError::new(at, what, v.to_string())),
        None => Err(EncodingError::new(at, what, "the end byte")),
    }
}

fn entry<'a>(lp: &mut Listpack<'a>, what: &'static str) -> Result<Value<'a>, EncodingError> {
    let at = lp.position();
    lp.next_entry()?
        .ok_or_else(|| EncodingError::new(at, what, "the end byte"))
}

fn count(lp: &mut Listpack<'_>, what: &'static str) -> Result<usize, EncodingError> {
    let at = lp.position();
    let n = int(lp, what)?;
    usize::try_from(n).map_err(|_| EncodingError::new(at, what, n.to_string()))
}

/// Reports the live entries of one node.
fn decode_node(
    master: StreamId,
    blob: &[u8],
    key: &mut KeyCtx,
    on: Sink<'_>,
) -> Result<(), EncodingError> {
    let mut lp = Listpack::new(blob)?;
    if lp.is_empty() {
        return Err(EncodingError::new(
            6,
            "a stream node with a master entry",
            "an empty listpack",
        ));
    }
    count(&mut lp, "the node's entry count")?;
    count(&mut lp, "the node's deleted count")?;
    let master_fields = count(&mut lp, "the number of master fields")?;
    // Field names are borrowed from the listpack; the count is bounded by its size.
    let mut names = Vec::with_capacity(master_fields.min(blob.len()));
    for _ in 0..master_fields {
        names.push(entry(&mut lp, "a master field name")?);
    }
    int(&mut lp, "the master entry's terminating 0")?;
    let mut fields: Vec<(Value<'_>, Value<'_>)> = Vec::with_capacity(names.len());
    loop {
        let at = lp.position();
        let Some(flags) = lp.next_entry()? else { break };
        let flags = flags
            .as_int()
            .ok_or_else(|| EncodingError::new(at, "an entry's flags", flags.to_string()))?;
        let ms_delta = int(&mut lp, "an entry's ID milliseconds delta")?;
        let seq_delta = int(&mut lp, "an entry's ID sequence delta")?;
        fields.clear();
        if flags & FLAG_SAMEFIELDS != 0 {
            for name in &names {
                fields.push((*name, entry(&mut lp, "a value for a master field")?));
            }
        } else {
            let n = count(&mut lp, "an entry's number of fields")?;
            for _ in 0..n {
                let field = entry(&mut lp, "a field name")?;
                let value = entry(&mut lp, "a field value")?;
                fields.push((field, value));
            }
        }
        int(&mut lp, "an entry's element count")?;
        if flags & FLAG_DELETED == 0 {
            let id = StreamId {
                ms: master.ms.wrapping_add(ms_delta as u64),
                seq: master.seq.wrapping_add(seq_delta as u64),
            };
            key.element(
                on,
                Element::StreamEntry {
                    id,
                    fields: &fields,
                },
            );
        }
    }
    Ok(())
}
