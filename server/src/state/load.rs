//! The full-sync RDB turned into snapshot commands for the relay's state, as it streams by: the RDB reader reports
//! each key's elements, and each key of the state's database that `--allow` permits and a window can hold (sorted
//! set, list, hash, string, stream) becomes the commands a Redis snapshot would send for it (`DEL key`, then
//! `ZADD`/`RPUSH`/`HSET`/`SET`/`XADD`) — every element, in pieces of at most [`PIECE_BYTES`], so the windows,
//! which keep the newest items, are what they would be after a snapshot, whatever the size of the key.

use replicast_rdb::{Element, Event, RdbError, RdbReader, ValueType};

use crate::link_io::push_command;
use crate::subscription::Allow;

/// Arguments of one command gathered before it is written out: a large key's elements go as several commands.
const PIECE_ARGS: usize = 2048;
/// Bytes of arguments of one command gathered before it is written out.
const PIECE_BYTES: usize = 256 * 1024;

/// Where the reading of one payload stands: the reader, the key being read, and the commands not applied yet.
pub(super) struct RdbLoad {
    reader: RdbReader,
    db: u32,
    /// When the sync began, in Unix milliseconds: keys whose TTL passed by then are left out (Redis deletes them on
    /// its next look and propagates the `DEL`).
    now_ms: i64,
    key: Option<LoadingKey>,
    /// Commands for keys read so far, not yet applied.
    pub(super) commands: Vec<u8>,
    /// Keys whose commands are in `commands`, or whose last command is being gathered.
    pub(super) keys: Vec<Vec<u8>>,
}

/// A key whose elements are being read.
struct LoadingKey {
    name: Vec<u8>,
    /// The command being gathered (`ZADD key …`, `RPUSH key …`, `HSET key …`), verb and key first.
    args: Vec<Vec<u8>>,
    bytes: usize,
}

impl RdbLoad {
    /// Reads a payload for database `db`.
    pub(super) fn new(db: u32, now_ms: i64) -> Self {
        RdbLoad {
            reader: RdbReader::new(),
            db,
            now_ms,
            key: None,
            commands: Vec::new(),
            keys: Vec::new(),
        }
    }

    /// Reads the next piece of the payload; `full` is called whenever the commands gathered pass [`PIECE_BYTES`],
    /// to apply and take them.
    pub(super) fn push(
        &mut self,
        chunk: &[u8],
        allow: &Allow,
        mut full: impl FnMut(&mut RdbLoad),
    ) -> Result<(), RdbError> {
        let mut reader = std::mem::take(&mut self.reader);
        let read = reader.push(chunk, |event| {
            self.on_event(event, allow);
            if self.commands.len() >= PIECE_BYTES {
                full(self);
            }
        });
        self.reader = reader;
        read.map(|_| ())
    }

    /// Whether the whole payload was read, its checksum too.
    pub(super) fn is_done(&self) -> bool {
        self.reader.is_done()
    }

    fn on_event(&mut self, event: Event<'_>, allow: &Allow) {
        match event {
            Event::KeyStart(start) => {
                self.end_key();
                let windowed = matches!(
                    start.value_type,
                    ValueType::ZSet
                        | ValueType::List
                        | ValueType::Hash
                        | ValueType::String
                        | ValueType::Stream
                );
                let expired = start.expire_ms.is_some_and(|at| at <= self.now_ms);
                if start.db != u64::from(self.db)
                    || !windowed
                    || expired
                    || !allow.allows(start.key)
                {
                    return;
                }
                push_command(&mut self.commands, &[b"DEL", start.key]);
                if start.value_type == ValueType::Stream {
                    // A stream whose entries are all gone still exists.
                    push_command(&mut self.commands, &[b"XTRIM", start.key, b"MAXLEN", b"0"]);
                }
                let verb: &[u8] = match start.value_type {
                    ValueType::ZSet => b"ZADD",
                    ValueType::List => b"RPUSH",
                    ValueType::Hash => b"HSET",
                    _ => b"",
                };
                self.keys.push(start.key.to_vec());
                self.key = Some(LoadingKey {
                    name: start.key.to_vec(),
                    args: vec![verb.to_vec(), start.key.to_vec()],
                    bytes: 0,
                });
            }
            Event::Element(element) => {
                let Some(key) = self.key.as_mut() else {
                    return;
                };
                match element {
                    Element::String(value) => {
                        push_command(&mut self.commands, &[b"SET", &key.name, &value.to_vec()])
                    }
                    Element::ListItem(value) => key.push(&[value.to_vec()]),
                    Element::ZSetMember { member, score } => {
                        key.push(&[score.to_string().into_bytes(), member.to_vec()])
                    }
                    Element::HashField { field, value, .. } => {
                        key.push(&[field.to_vec(), value.to_vec()])
                    }
                    Element::StreamEntry { id, fields } => {
                        let id = id.to_string().into_bytes();
                        let mut xadd: Vec<Vec<u8>> = vec![b"XADD".to_vec(), key.name.clone(), id];
                        for (field, value) in fields {
                            xadd.push(field.to_vec());
                            xadd.push(value.to_vec());
                        }
                        let args: Vec<&[u8]> = xadd.iter().map(Vec::as_slice).collect();
                        push_command(&mut self.commands, &args);
                    }
                    _ => {}
                }
                if key.args.len() >= PIECE_ARGS || key.bytes >= PIECE_BYTES {
                    key.write_out(&mut self.commands);
                }
            }
            Event::KeyEnd { .. } | Event::Eof { .. } => self.end_key(),
            _ => {}
        }
    }

    /// Writes out what is gathered of the key being read.
    fn end_key(&mut self) {
        if let Some(mut key) = self.key.take() {
            key.write_out(&mut self.commands);
        }
    }
}

impl LoadingKey {
    fn push(&mut self, args: &[Vec<u8>]) {
        for arg in args {
            self.bytes += arg.len();
            self.args.push(arg.clone());
        }
    }

    /// Writes the gathered command, if it has any element, and starts the next one.
    fn write_out(&mut self, out: &mut Vec<u8>) {
        if self.args.len() > 2 {
            let args: Vec<&[u8]> = self.args.iter().map(Vec::as_slice).collect();
            push_command(out, &args);
        }
        self.args.truncate(2);
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replicast_protocol::resp::CommandReader;

    fn parse_commands(bytes: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut commands = Vec::new();
        CommandReader::new(0)
            .push(bytes, |command| {
                commands.push(command.args.iter().map(|a| a.to_vec()).collect())
            })
            .unwrap();
        commands
    }

    /// An RDB of version 9 holding, in database 0, `z` (a listpack zset), `l`, `h`, `s` and `other`, and in
    /// database 1 `z1`; written by hand as Redis 7.0 writes them.
    fn rdb() -> Vec<u8> {
        let mut rdb = b"REDIS0009".to_vec();
        rdb.extend([0xFE, 0]);
        // A plain string.
        rdb.extend([0, 1, b's', 3, b'o', b'n', b'e']);
        rdb.extend([0, 5, b'o', b't', b'h', b'e', b'r', 1, b'x']);
        rdb.extend([0xFE, 1]);
        rdb.extend([0, 2, b'z', b'1', 1, b'y']);
        rdb.push(0xFF);
        rdb.extend([0; 8]);
        rdb
    }

    #[test]
    fn allowed_keys_of_the_database_become_snapshot_commands_in_any_split() {
        let rdb = rdb();
        let allow = Allow::new(&["s".into(), "z1".into()]);
        for split in 0..rdb.len() {
            let mut load = RdbLoad::new(0, 0);
            load.push(&rdb[..split], &allow, |_| {}).unwrap();
            load.push(&rdb[split..], &allow, |_| {}).unwrap();
            assert!(load.is_done());
            assert_eq!(
                parse_commands(&load.commands),
                vec![
                    vec![b"DEL".to_vec(), b"s".to_vec()],
                    vec![b"SET".to_vec(), b"s".to_vec(), b"one".to_vec()]
                ],
                "split at {split}"
            );
            assert_eq!(load.keys, vec![b"s".to_vec()]);
        }
    }

    #[test]
    fn a_corrupt_payload_is_an_error_naming_its_offset() {
        let mut rdb = rdb();
        rdb[11] = 0x42; // a value type no RDB has
        let mut load = RdbLoad::new(0, 0);
        let err = load
            .push(&rdb, &Allow::new(&["*".into()]), |_| {})
            .unwrap_err();
        assert!(err.to_string().contains("offset 11"), "{err}");
    }
}
