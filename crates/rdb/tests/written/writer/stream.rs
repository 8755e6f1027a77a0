//! Streams as `rdb.c` writes them, in the three versions of their type (15, 19, 21): nodes of entries, each a
//! 16-byte master ID and a listpack (a master entry of field names, then each entry's flags, ID deltas and values),
//! then the stream's metadata and its consumer groups with their pending entries and consumers.

use super::encodings::listpack;

const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;

pub type Id = (u64, u64);
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    pub id: Id,
    pub fields: Fields,
    /// Deleted with `XDEL` but still in its node, flagged.
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Consumer {
    pub name: Vec<u8>,
    pub seen_ms: u64,
    /// Written by version 3 only.
    pub active_ms: u64,
    pub pending: Vec<Id>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: Vec<u8>,
    pub last_id: Id,
    /// Written from version 2.
    pub entries_read: u64,
    /// Each pending entry: its ID, delivery time and count.
    pub pending: Vec<(Id, u64, u64)>,
    pub consumers: Vec<Consumer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub entries: Vec<StreamEntry>,
    /// Entries a node holds at most.
    pub per_node: usize,
    pub last_id: Id,
    /// Version 2 on: the first ID, the largest deleted one, and how many entries were ever added.
    pub first_id: Id,
    pub max_deleted_id: Id,
    pub entries_added: u64,
    pub groups: Vec<Group>,
}

/// What a reader reports of a stream, in order, owned: the entries that are not deleted, the metadata, then each
/// group with its pending entries and consumers.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamPart {
    Entry(Id, Fields),
    Meta {
        length: u64,
        last_id: Id,
        first_id: Option<Id>,
        max_deleted_id: Option<Id>,
        entries_added: Option<u64>,
        groups: u64,
    },
    Group {
        name: Vec<u8>,
        last_id: Id,
        entries_read: Option<u64>,
        pending: u64,
    },
    GroupPending(Id, u64, u64),
    Consumer {
        name: Vec<u8>,
        seen_ms: u64,
        active_ms: Option<u64>,
        pending: u64,
    },
    ConsumerPending(Id),
}

impl Stream {
    /// What reading it back in `version` (1 to 3) must report.
    pub fn parts(&self, version: u8) -> Vec<StreamPart> {
        let mut parts: Vec<StreamPart> = self
            .entries
            .iter()
            .filter(|e| !e.deleted)
            .map(|e| StreamPart::Entry(e.id, e.fields.clone()))
            .collect();
        let v2 = version >= 2;
        parts.push(StreamPart::Meta {
            length: self.entries.iter().filter(|e| !e.deleted).count() as u64,
            last_id: self.last_id,
            first_id: v2.then_some(self.first_id),
            max_deleted_id: v2.then_some(self.max_deleted_id),
            entries_added: v2.then_some(self.entries_added),
            groups: self.groups.len() as u64,
        });
        for group in &self.groups {
            parts.push(StreamPart::Group {
                name: group.name.clone(),
                last_id: group.last_id,
                entries_read: v2.then_some(group.entries_read),
                pending: group.pending.len() as u64,
            });
            parts.extend(
                group
                    .pending
                    .iter()
                    .map(|&(id, time, count)| StreamPart::GroupPending(id, time, count)),
            );
            for consumer in &group.consumers {
                parts.push(StreamPart::Consumer {
                    name: consumer.name.clone(),
                    seen_ms: consumer.seen_ms,
                    active_ms: (version >= 3).then_some(consumer.active_ms),
                    pending: consumer.pending.len() as u64,
                });
                parts.extend(
                    consumer
                        .pending
                        .iter()
                        .map(|&id| StreamPart::ConsumerPending(id)),
                );
            }
        }
        parts
    }

    /// The nodes: each one's master ID (its first entry's, 16 bytes big-endian) and listpack.
    pub fn nodes(&self) -> Vec<([u8; 16], Vec<u8>)> {
        self.entries
            .chunks(self.per_node.max(1))
            .map(|node| {
                let master = node[0].id;
                let names: Vec<&[u8]> = node[0].fields.iter().map(|(f, _)| f.as_slice()).collect();
                let int = |n: i64| n.to_string().into_bytes();
                let mut lp: Vec<Vec<u8>> = vec![
                    int(node.iter().filter(|e| !e.deleted).count() as i64),
                    int(node.iter().filter(|e| e.deleted).count() as i64),
                    int(names.len() as i64),
                ];
                lp.extend(names.iter().map(|n| n.to_vec()));
                lp.push(int(0));
                for entry in node {
                    let same = entry
                        .fields
                        .iter()
                        .map(|(f, _)| f.as_slice())
                        .eq(names.iter().copied());
                    let flags = match (entry.deleted, same) {
                        (true, true) => FLAG_DELETED | FLAG_SAMEFIELDS,
                        (true, false) => FLAG_DELETED,
                        (false, true) => FLAG_SAMEFIELDS,
                        (false, false) => 0,
                    };
                    lp.push(int(flags));
                    lp.push(int(entry.id.0.wrapping_sub(master.0) as i64));
                    lp.push(int(entry.id.1.wrapping_sub(master.1) as i64));
                    if same {
                        lp.extend(entry.fields.iter().map(|(_, v)| v.clone()));
                        lp.push(int(entry.fields.len() as i64 + 3));
                    } else {
                        lp.push(int(entry.fields.len() as i64));
                        for (field, value) in &entry.fields {
                            lp.push(field.clone());
                            lp.push(value.clone());
                        }
                        lp.push(int(entry.fields.len() as i64 * 2 + 4));
                    }
                }
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&master.0.to_be_bytes());
                id[8..].copy_from_slice(&master.1.to_be_bytes());
                let slices: Vec<&[u8]> = lp.iter().map(Vec::as_slice).collect();
                (id, listpack(&slices))
            })
            .collect()
    }
}
