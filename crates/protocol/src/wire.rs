//! The relay → browser message format, specified in `docs/PROTOCOL.md`.
//!
//! Every message is one binary WebSocket frame starting with a tag byte. The relay encodes each batch of the
//! replication stream once and sends the same bytes to every browser; the browser decodes it here, in wasm, so both
//! sides share this one definition. All integers are little-endian. Tags and header sizes live only in this file:
//! the relay asks it what a message is ([`is_shard_stream`], [`snapshot_shard`]) and where a batch's commands
//! start ([`COMMANDS_HEADER`]). What the browser sends back is in [`crate::client_message`].
//!
//! Two messages are for non-browser clients only (the history sink): **past** ([`Past`]), the items that entered the
//! windows of a top-up's keys before its snapshot, in `wire/past.rs`, and **ended** ([`encode_ended`]), a shard's
//! stream that ended because the shard left the cluster, in `wire/ended.rs`; both compiled only with the crate's
//! feature `past` (the relay's and the sink's builds): [`decode`] does not take them, since a browser never asks
//! for them, and the past message's code in this crate grew the browser's `.wasm` (by 27 bytes, through how the
//! functions it shares are inlined).

use thiserror::Error;

use crate::client_message::{MAX_NAME_LEN, MAX_REQUEST_ID_LEN, MAX_TOPUP_KEYS};
use crate::text;

/// Version of this format, sent in [`Message::Hello`].
pub const PROTOCOL_VERSION: u8 = 5;

const TAG_HELLO: u8 = 1;
const TAG_COMMANDS: u8 = 2;
const TAG_RESYNC: u8 = 3;
const TAG_SNAPSHOT: u8 = 4;
const TAG_NOTICE: u8 = 5;
const TAG_ACK: u8 = 6;
const TAG_SHARD: u8 = 7;
const TAG_STALE: u8 = 8;
const TAG_EXPIRING: u8 = 9;
const TAG_DIGEST: u8 = 10;
const TAG_PAST: u8 = 11;
const TAG_ENDED: u8 = 12;
/// Bytes of a [`WindowsDigest`] on the wire: its hash (8), keys (4) and items (8).
const DIGEST_LEN: usize = 20;
/// Most shards one session may address (a Redis Cluster has at most a few hundred primaries in practice).
pub const MAX_SHARDS: usize = 1024;
/// Longest epoch (a Redis replication ID is 40 hex characters).
const MAX_EPOCH_LEN: usize = 64;
/// Bytes in front of each segment of a commands message: its start offset (8) and length (4).
const SEGMENT_HEADER: usize = 12;
// The past message, for the history sink only: not compiled into the browser's client (see the module's
// documentation).
#[cfg(any(test, feature = "past"))]
mod past;
#[cfg(any(test, feature = "past"))]
pub use past::*;
// The ended message, for the history sink only as well.
#[cfg(any(test, feature = "past"))]
mod ended;
#[cfg(any(test, feature = "past"))]
pub use ended::*;

/// Bytes in front of the commands of a one-segment commands message ([`encode_commands`]): the tag and the
/// segment's header. The relay keeps each batch encoded once and slices its raw commands out at this offset.
pub const COMMANDS_HEADER: usize = 1 + SEGMENT_HEADER;

/// One decoded relay message, borrowing from the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// First message of a session, and again whenever the stream the relay follows changes: what follows are the
    /// commands of `epoch` after replication offset `offset`. `previous`, when not empty, is an epoch that `epoch`
    /// continues (a failover promoted a replica, which kept the offsets under a new replication ID): a browser at
    /// `offset` in `previous` has missed nothing.
    Hello {
        version: u8,
        epoch: &'a str,
        offset: u64,
        previous: &'a str,
    },
    /// A message of one shard's stream, from a relay following a Redis Cluster: `message` (a hello, commands or
    /// snapshot; any message but another envelope) concerns the stream of shard `index`, numbered by the relay
    /// for this session, below [`MAX_SHARDS`]. A relay following one Redis sends no envelopes: its stream is
    /// shard 0.
    Shard {
        index: u16,
        message: Box<Message<'a>>,
    },
    /// Whole commands of the replication stream, raw, as one or more segments.
    Commands(Segments<'a>),
    /// The session fell out of the relay's backlog; the relay closes it after this.
    Resync { reason: &'a str },
    /// The windows of the subscribed keys as Redis held them at replication offset `offset`, as RESP commands
    /// (`DEL key`, then `ZADD`/`RPUSH`/`HSET`/`SET`/`XADD`) to apply in order; commands after `offset` follow.
    Snapshot { offset: u64, commands: &'a [u8] },
    /// Something the relay refused or could not do for this session, which goes on: e.g. a top-up for a key it
    /// does not subscribe to.
    Notice { text: &'a str },
    /// The answer to the browser's event `request`: the new entry's id (`Ok`, e.g. a stream entry id
    /// `1700000000000-0`), or why the relay refused or could not append it (`Err`). The entry itself comes, like
    /// every write, through the stream.
    Ack {
        request: &'a str,
        entry: Result<&'a str, &'a str>,
    },
    /// The command ending at `offset` was withheld from this session (its keys could not all be judged, or one is
    /// outside the relay's `--allow`), and may have written these keys of the watched database: their windows can
    /// no longer be trusted until a top-up. What follows starts at `offset`.
    Stale { offset: u64, keys: StaleKeys<'a> },
    /// The signed token the session opened with expires at `expires` (Unix seconds, its `exp`): the relay closes
    /// the session then unless the page sends a fresh token first (a `token` message).
    Expiring { expires: u64 },
    /// The answer to the browser's digest request `request`: the digest of the windows the relay's state holds for
    /// this session at `offset`, placed in the stream exactly there (the browser compares its own windows when it
    /// reads it), or why the relay cannot give one (`Err`, `offset` 0).
    Digest {
        request: &'a str,
        offset: u64,
        digest: Result<WindowsDigest, &'a str>,
    },
}

/// A digest of a set of windows (`replicast_assembler::digest`): the hash, and how many keys and items it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowsDigest {
    pub hash: u64,
    pub keys: u32,
    pub items: u64,
}

/// The keys of a [`Message::Stale`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaleKeys<'a> {
    /// At most [`MAX_TOPUP_KEYS`] keys, each at most [`MAX_NAME_LEN`] bytes.
    Keys(KeyList<'a>),
    /// Every window of the watched database: more keys than one top-up can read, or keys it cannot name, or a
    /// write that could have touched any key (a script). Only a fresh snapshot can tell.
    All,
}

/// Keys as a stale message carries them (`len: u32`, then the key, repeated), checked when decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyList<'a> {
    bytes: &'a [u8],
}

impl<'a> Iterator for KeyList<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // `decode` checked every length: what remains is whole keys.
        let len = u32::from_le_bytes(self.bytes.get(..4)?.try_into().ok()?) as usize;
        let key = self.bytes.get(4..4 + len)?;
        self.bytes = &self.bytes[4 + len..];
        Some(key)
    }
}

/// A run of whole commands that occupied `start..start + bytes.len()` of the replication stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    pub start: u64,
    pub bytes: &'a [u8],
}

impl Segment<'_> {
    /// Offset just past the segment's last command.
    pub fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

/// Why a message could not be decoded; `at` is the byte position in the message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("relay message byte {at}: expected {expected}")]
pub struct WireError {
    pub at: usize,
    pub expected: &'static str,
}

/// The segments of a [`Message::Commands`], decoded as they are iterated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments<'a> {
    message: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Segments<'a> {
    type Item = Result<Segment<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.message.len() {
            return None;
        }
        let segment = (|| {
            let start = read_u64(
                self.message,
                self.pos,
                text!("a segment's start offset (8 bytes)"),
            )?;
            let len = read_u32(
                self.message,
                self.pos + 8,
                text!("a segment's length (4 bytes)"),
            )? as usize;
            // Offsets count bytes of a stream: one that would end past 2^64 is no stream's.
            if start.checked_add(len as u64).is_none() {
                return Err(WireError {
                    at: self.pos,
                    expected: text!("a segment that ends below 2^64"),
                });
            }
            let data = self.pos + SEGMENT_HEADER;
            let bytes = self
                .message
                .get(data..data.saturating_add(len))
                .ok_or(WireError {
                    at: data,
                    expected: text!("as many segment bytes as its length says"),
                })?;
            self.pos = data + len;
            Ok(Segment { start, bytes })
        })();
        if segment.is_err() {
            self.pos = self.message.len();
        }
        Some(segment)
    }
}

/// Decodes one relay message.
pub fn decode(message: &[u8]) -> Result<Message<'_>, WireError> {
    match message.first() {
        Some(&TAG_HELLO) => {
            let version = *message.get(1).ok_or(WireError {
                at: 1,
                expected: text!("a protocol version byte"),
            })?;
            let offset = read_u64(message, 2, text!("the hello's offset (8 bytes)"))?;
            let len = usize::from(*message.get(10).ok_or(WireError {
                at: 10,
                expected: text!("the hello's epoch length (1 byte)"),
            })?);
            if len > MAX_EPOCH_LEN {
                return Err(WireError {
                    at: 10,
                    expected: text!("an epoch of at most 64 bytes"),
                });
            }
            let epoch = message
                .get(11..11 + len)
                .and_then(|e| std::str::from_utf8(e).ok())
                .ok_or(WireError {
                    at: 11,
                    expected: text!("as many UTF-8 epoch bytes as its length says"),
                })?;
            let previous = std::str::from_utf8(&message[11 + len..]).map_err(|_| WireError {
                at: 11 + len,
                expected: text!("a UTF-8 previous epoch"),
            })?;
            if previous.len() > MAX_EPOCH_LEN {
                return Err(WireError {
                    at: 11 + len,
                    expected: text!("a previous epoch of at most 64 bytes"),
                });
            }
            Ok(Message::Hello {
                version,
                epoch,
                offset,
                previous,
            })
        }
        Some(&TAG_COMMANDS) => Ok(Message::Commands(Segments { message, pos: 1 })),
        Some(&TAG_SNAPSHOT) => Ok(Message::Snapshot {
            offset: read_u64(message, 1, text!("the snapshot's offset (8 bytes)"))?,
            commands: &message[9..],
        }),
        Some(&TAG_RESYNC) => Ok(Message::Resync {
            reason: std::str::from_utf8(&message[1..]).unwrap_or("(reason not UTF-8)"),
        }),
        Some(&TAG_NOTICE) => Ok(Message::Notice {
            text: std::str::from_utf8(&message[1..]).unwrap_or("(notice not UTF-8)"),
        }),
        Some(&TAG_ACK) => decode_ack(message),
        Some(&TAG_STALE) => decode_stale(message),
        Some(&TAG_EXPIRING) if message.len() == 9 => Ok(Message::Expiring {
            expires: read_u64(message, 1, text!("the token's expiry (8 bytes)"))?,
        }),
        Some(&TAG_EXPIRING) => Err(WireError {
            at: 1,
            expected: text!("an expiring message of exactly 8 bytes after its tag"),
        }),
        Some(&TAG_SHARD) => {
            let index = message
                .get(1..3)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .ok_or(WireError {
                    at: 1,
                    expected: text!("a shard index (2 bytes)"),
                })?;
            if usize::from(index) >= MAX_SHARDS {
                return Err(WireError {
                    at: 1,
                    expected: text!("a shard index below 1024"),
                });
            }
            if message.get(3) == Some(&TAG_SHARD) {
                return Err(WireError {
                    at: 3,
                    expected: text!("a message that is not another shard envelope"),
                });
            }
            let inner = decode(&message[3..]).map_err(|err| WireError {
                at: err.at + 3,
                ..err
            })?;
            Ok(Message::Shard {
                index,
                message: Box::new(inner),
            })
        }
        Some(&TAG_DIGEST) => decode_digest(message),
        _ => Err(WireError {
            at: 0,
            expected: text!("a message tag (1 hello, 2 commands, 3 resync, 4 snapshot, 5 notice, 6 ack, 7 shard, 8 stale, 9 expiring, 10 digest)"),
        }),
    }
}

/// `6`, `status: u8` (0 appended, 1 refused), `id_len: u8`, the request id, then the entry id or the reason.
fn decode_ack(message: &[u8]) -> Result<Message<'_>, WireError> {
    let status = *message.get(1).ok_or(WireError {
        at: 1,
        expected: text!("an ack's status byte"),
    })?;
    let len = usize::from(*message.get(2).ok_or(WireError {
        at: 2,
        expected: text!("an ack's request id length (1 byte)"),
    })?);
    let request = message
        .get(3..3 + len)
        .and_then(|id| std::str::from_utf8(id).ok())
        .ok_or(WireError {
            at: 3,
            expected: text!("as many UTF-8 request id bytes as its length says"),
        })?;
    let text = std::str::from_utf8(&message[3 + len..]).map_err(|_| WireError {
        at: 3 + len,
        expected: text!("a UTF-8 entry id or reason"),
    })?;
    let entry = match status {
        0 => Ok(text),
        1 => Err(text),
        _ => {
            return Err(WireError {
                at: 1,
                expected: text!("an ack status of 0 (appended) or 1 (refused)"),
            })
        }
    };
    Ok(Message::Ack { request, entry })
}

/// `10`, `offset: u64`, `status: u8` (0 digest, 1 refused), `id_len: u8`, the request id, then the digest (`hash:
/// u64`, `keys: u32`, `items: u64`) or the reason.
fn decode_digest(message: &[u8]) -> Result<Message<'_>, WireError> {
    let offset = read_u64(message, 1, text!("the digest's offset (8 bytes)"))?;
    let status = *message.get(9).ok_or(WireError {
        at: 9,
        expected: text!("a digest's status byte"),
    })?;
    let len = usize::from(*message.get(10).ok_or(WireError {
        at: 10,
        expected: text!("a digest's request id length (1 byte)"),
    })?);
    let request = message
        .get(11..11 + len)
        .and_then(|id| std::str::from_utf8(id).ok())
        .ok_or(WireError {
            at: 11,
            expected: text!("as many UTF-8 request id bytes as its length says"),
        })?;
    let rest = 11 + len;
    let digest = match status {
        0 if message.len() == rest + DIGEST_LEN => Ok(WindowsDigest {
            hash: read_u64(message, rest, text!("the digest's hash (8 bytes)"))?,
            keys: read_u32(message, rest + 8, text!("the digest's keys (4 bytes)"))?,
            items: read_u64(message, rest + 12, text!("the digest's items (8 bytes)"))?,
        }),
        0 => {
            return Err(WireError {
                at: rest,
                expected: text!("exactly 20 bytes of digest: hash (8), keys (4), items (8)"),
            })
        }
        1 => Err(
            std::str::from_utf8(&message[rest..]).map_err(|_| WireError {
                at: rest,
                expected: text!("a UTF-8 reason"),
            })?,
        ),
        _ => {
            return Err(WireError {
                at: 9,
                expected: text!("a digest status of 0 (digest) or 1 (refused)"),
            })
        }
    };
    Ok(Message::Digest {
        request,
        offset,
        digest,
    })
}

/// `8`, `offset: u64`, `scope: u8` (0: the keys that follow, 1: every window), then for each key `len: u32` and
/// its bytes.
fn decode_stale(message: &[u8]) -> Result<Message<'_>, WireError> {
    let offset = read_u64(message, 1, text!("the stale message's offset (8 bytes)"))?;
    let keys = match message.get(9) {
        Some(0) => {
            let (mut at, mut count) = (10, 0);
            while at < message.len() {
                let len = read_u32(message, at, text!("a stale key's length (4 bytes)"))? as usize;
                if len > MAX_NAME_LEN {
                    return Err(WireError {
                        at,
                        expected: text!("a stale key of at most 1024 bytes"),
                    });
                }
                if message.len() - (at + 4) < len {
                    return Err(WireError {
                        at: at + 4,
                        expected: text!("as many key bytes as its length says"),
                    });
                }
                count += 1;
                if count > MAX_TOPUP_KEYS {
                    return Err(WireError {
                        at,
                        expected: text!("at most 1024 stale keys"),
                    });
                }
                at += 4 + len;
            }
            StaleKeys::Keys(KeyList {
                bytes: &message[10..],
            })
        }
        Some(1) if message.len() == 10 => StaleKeys::All,
        Some(1) => {
            return Err(WireError {
                at: 10,
                expected: text!("nothing after a stale message for every window"),
            })
        }
        _ => {
            return Err(WireError {
                at: 9,
                expected: text!("a stale scope of 0 (keys) or 1 (every window)"),
            })
        }
    };
    Ok(Message::Stale { offset, keys })
}

/// Whether `message` is a snapshot, without decoding it.
pub fn is_snapshot(message: &[u8]) -> bool {
    snapshot_shard(message).is_some()
}

/// Whether `message` belongs to one shard's stream (a hello, commands, a snapshot, a stale, past or ended message),
/// which a relay following a Redis Cluster sends in that shard's envelope ([`encode_shard`]); notices, acks and
/// resyncs concern the whole session and go as they are. Without decoding it.
pub fn is_shard_stream(message: &[u8]) -> bool {
    matches!(
        message.first(),
        Some(&(TAG_HELLO | TAG_COMMANDS | TAG_SNAPSHOT | TAG_STALE | TAG_PAST | TAG_ENDED))
    )
}

/// The shard whose snapshot `message` is (0 for a snapshot outside an envelope), without decoding it.
pub fn snapshot_shard(message: &[u8]) -> Option<u16> {
    match message {
        [TAG_SNAPSHOT, ..] => Some(0),
        [TAG_SHARD, lo, hi, TAG_SNAPSHOT, ..] => Some(u16::from_le_bytes([*lo, *hi])),
        _ => None,
    }
}

pub fn encode_hello(epoch: &str, offset: u64) -> Vec<u8> {
    encode_hello_continuing(epoch, "", offset)
}

/// A hello for `epoch` that continues `previous` (see [`Message::Hello`]). Epochs are replication IDs (40 bytes);
/// one over 64 bytes is cut, as [`decode`] would refuse it.
pub fn encode_hello_continuing(epoch: &str, previous: &str, offset: u64) -> Vec<u8> {
    let cut = |text: &str| {
        let mut end = text.len().min(MAX_EPOCH_LEN);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_string()
    };
    let (epoch, previous) = (cut(epoch), cut(previous));
    let mut out = Vec::with_capacity(11 + epoch.len() + previous.len());
    out.extend_from_slice(&[TAG_HELLO, PROTOCOL_VERSION]);
    out.extend_from_slice(&offset.to_le_bytes());
    // At most 64: it fits the length byte.
    out.push(epoch.len() as u8);
    out.extend_from_slice(epoch.as_bytes());
    out.extend_from_slice(previous.as_bytes());
    out
}

/// `message` (an encoded hello, commands or snapshot) as a message of shard `index`'s stream.
pub fn encode_shard(index: u16, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + message.len());
    out.push(TAG_SHARD);
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(message);
    out
}

/// The start of a commands message; append segments with [`push_segment`].
pub fn begin_commands() -> Vec<u8> {
    vec![TAG_COMMANDS]
}

/// A commands message of one segment: `bytes` must be whole commands that started at offset `start`.
pub fn encode_commands(start: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(COMMANDS_HEADER + bytes.len());
    out.push(TAG_COMMANDS);
    push_segment(&mut out, start, bytes);
    out
}

/// Appends one segment to a commands message.
pub fn push_segment(out: &mut Vec<u8>, start: u64, bytes: &[u8]) {
    // Segments come from the relay's read buffer, far below 4 GiB; a longer one would be a relay bug.
    let len = u32::try_from(bytes.len()).expect("segment under 4 GiB");
    out.extend_from_slice(&start.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

pub fn encode_snapshot(offset: u64, commands: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + commands.len());
    out.push(TAG_SNAPSHOT);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(commands);
    out
}

pub fn encode_resync(reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + reason.len());
    out.push(TAG_RESYNC);
    out.extend_from_slice(reason.as_bytes());
    out
}

pub fn encode_notice(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + text.len());
    out.push(TAG_NOTICE);
    out.extend_from_slice(text.as_bytes());
    out
}

/// The relay's answer to event `request`: the entry id it appended, or the reason it did not. The request id was
/// checked by the relay (at most [`MAX_REQUEST_ID_LEN`] bytes); a longer one is cut at a character boundary.
pub fn encode_ack(request: &str, entry: Result<&str, &str>) -> Vec<u8> {
    let mut cut = request.len().min(MAX_REQUEST_ID_LEN);
    while !request.is_char_boundary(cut) {
        cut -= 1;
    }
    let (status, text) = match entry {
        Ok(id) => (0, id),
        Err(reason) => (1, reason),
    };
    let mut out = Vec::with_capacity(3 + cut + text.len());
    // `cut` is at most 64: it fits the length byte.
    out.extend_from_slice(&[TAG_ACK, status, cut as u8]);
    out.extend_from_slice(&request.as_bytes()[..cut]);
    out.extend_from_slice(text.as_bytes());
    out
}

/// The stale message for `keys`, which the command ending at `offset` may have written; the relay sends at most
/// [`MAX_TOPUP_KEYS`] keys that a top-up can name ([`Topup::can_name`](crate::client_message::Topup::can_name)),
/// else [`encode_stale_all`].
pub fn encode_stale<'k>(offset: u64, keys: impl IntoIterator<Item = &'k [u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(TAG_STALE);
    out.extend_from_slice(&offset.to_le_bytes());
    out.push(0);
    for key in keys {
        // Keys a top-up can name: at most 1024 bytes.
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
    }
    out
}

/// The answer to digest request `request`: the digest of the session's windows at `offset`, or why there is none
/// (`offset` 0). The request id was checked by the relay; a longer one is cut at a character boundary.
pub fn encode_digest(request: &str, offset: u64, digest: Result<WindowsDigest, &str>) -> Vec<u8> {
    let mut cut = request.len().min(MAX_REQUEST_ID_LEN);
    while !request.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = Vec::with_capacity(11 + cut + DIGEST_LEN);
    out.push(TAG_DIGEST);
    out.extend_from_slice(&offset.to_le_bytes());
    out.push(u8::from(digest.is_err()));
    // `cut` is at most 64: it fits the length byte.
    out.push(cut as u8);
    out.extend_from_slice(&request.as_bytes()[..cut]);
    match digest {
        Ok(digest) => {
            out.extend_from_slice(&digest.hash.to_le_bytes());
            out.extend_from_slice(&digest.keys.to_le_bytes());
            out.extend_from_slice(&digest.items.to_le_bytes());
        }
        Err(reason) => out.extend_from_slice(reason.as_bytes()),
    }
    out
}

/// The notice that the session's token expires at `expires` (Unix seconds).
pub fn encode_expiring(expires: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(TAG_EXPIRING);
    out.extend_from_slice(&expires.to_le_bytes());
    out
}

/// The stale message for every window of the watched database, after the command ending at `offset`.
pub fn encode_stale_all(offset: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    out.push(TAG_STALE);
    out.extend_from_slice(&offset.to_le_bytes());
    out.push(1);
    out
}

fn read_u64(buf: &[u8], at: usize, expected: &'static str) -> Result<u64, WireError> {
    buf.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or(WireError { at, expected })
}

fn read_u32(buf: &[u8], at: usize, expected: &'static str) -> Result<u32, WireError> {
    buf.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(WireError { at, expected })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips() {
        let msg = encode_hello("8f3a", 42);
        assert_eq!(msg, b"\x01\x05\x2a\0\0\0\0\0\0\0\x048f3a");
        assert_eq!(
            decode(&msg),
            Ok(Message::Hello {
                version: PROTOCOL_VERSION,
                epoch: "8f3a",
                offset: 42,
                previous: "",
            })
        );
        assert_eq!(
            decode(&encode_hello_continuing("new", "old", 7)),
            Ok(Message::Hello {
                version: PROTOCOL_VERSION,
                epoch: "new",
                offset: 7,
                previous: "old",
            })
        );
    }

    #[test]
    fn shard_envelopes_wrap_one_message() {
        let inner = encode_snapshot(9, b"*1\r\n$4\r\nPING\r\n");
        let msg = encode_shard(3, &inner);
        assert_eq!(&msg[..3], b"\x07\x03\x00");
        assert_eq!(
            decode(&msg),
            Ok(Message::Shard {
                index: 3,
                message: Box::new(Message::Snapshot {
                    offset: 9,
                    commands: b"*1\r\n$4\r\nPING\r\n"
                })
            })
        );
        assert_eq!(
            decode(&encode_shard(1, &encode_shard(2, &inner))).unwrap_err(),
            WireError {
                at: 3,
                expected: "a message that is not another shard envelope"
            }
        );
        assert_eq!(decode(&encode_shard(1024, &inner)).unwrap_err().at, 1);
        assert_eq!(snapshot_shard(&msg), Some(3));
        assert_eq!(snapshot_shard(&inner), Some(0));
        assert_eq!(
            snapshot_shard(&encode_shard(3, &encode_hello("e", 1))),
            None
        );
        assert_eq!(decode(b"\x07\x01").unwrap_err().at, 1);
        // An error inside says where in the whole message.
        assert_eq!(decode(&encode_shard(0, b"\x04\x01")).unwrap_err().at, 4);
    }

    #[test]
    fn the_relay_finds_a_batchs_commands_and_a_shards_messages_without_decoding() {
        let stream = b"*1\r\n$4\r\nPING\r\n";
        assert_eq!(&encode_commands(10, stream)[COMMANDS_HEADER..], stream);
        for message in [
            encode_hello("e", 1),
            encode_commands(10, stream),
            encode_snapshot(9, stream),
            encode_stale_all(9),
        ] {
            assert!(is_shard_stream(&message), "{message:?}");
        }
        for message in [
            encode_resync("slow"),
            encode_notice("no"),
            encode_ack("r1", Ok("1-0")),
            encode_shard(1, &encode_hello("e", 1)),
            Vec::new(),
        ] {
            assert!(!is_shard_stream(&message), "{message:?}");
        }
    }

    #[test]
    fn commands_carry_segments_with_offsets() {
        let mut msg = encode_commands(10, b"*1\r\n$4\r\nPING\r\n");
        push_segment(&mut msg, 100, b"\n");
        let Ok(Message::Commands(segments)) = decode(&msg) else {
            panic!("not commands")
        };
        let segments: Vec<_> = segments.collect::<Result<_, _>>().unwrap();
        assert_eq!(segments.len(), 2);
        assert_eq!((segments[0].start, segments[0].end()), (10, 24));
        assert_eq!((segments[1].start, segments[1].bytes), (100, &b"\n"[..]));
    }

    #[test]
    fn stale_messages_carry_an_offset_and_keys_or_every_window() {
        let msg = encode_stale(77, [&b"perf:a"[..], b""]);
        assert_eq!(msg, b"\x08\x4d\0\0\0\0\0\0\0\x00\x06\0\0\0perf:a\0\0\0\0");
        let Ok(Message::Stale {
            offset,
            keys: StaleKeys::Keys(keys),
        }) = decode(&msg)
        else {
            panic!("not stale keys")
        };
        assert_eq!(offset, 77);
        assert_eq!(keys.collect::<Vec<_>>(), [&b"perf:a"[..], b""]);
        // PROTOCOL.md's example.
        assert_eq!(
            encode_stale(120, [&b"perf:y"[..]]),
            b"\x08\x78\0\0\0\0\0\0\0\x00\x06\0\0\0perf:y"
        );
        assert_eq!(
            decode(&encode_stale_all(9)),
            Ok(Message::Stale {
                offset: 9,
                keys: StaleKeys::All
            })
        );
        let most: Vec<Vec<u8>> = (0..MAX_TOPUP_KEYS)
            .map(|i| vec![b'k'; MAX_NAME_LEN - i % 2])
            .collect();
        let msg = encode_stale(1, most.iter().map(Vec::as_slice));
        let Ok(Message::Stale {
            keys: StaleKeys::Keys(keys),
            ..
        }) = decode(&msg)
        else {
            panic!("not stale keys")
        };
        assert_eq!(keys.count(), MAX_TOPUP_KEYS);
    }

    #[test]
    fn bad_stale_messages_say_what_was_expected() {
        let expected = |message: &[u8]| decode(message).unwrap_err();
        assert_eq!(expected(b"\x08\x01").at, 1);
        assert_eq!(expected(b"\x08\0\0\0\0\0\0\0\0").at, 9);
        assert_eq!(expected(b"\x08\0\0\0\0\0\0\0\0\x02").at, 9);
        assert_eq!(
            expected(b"\x08\0\0\0\0\0\0\0\0\x01k").expected,
            "nothing after a stale message for every window"
        );
        assert_eq!(expected(b"\x08\0\0\0\0\0\0\0\0\x00\x01\0").at, 10);
        assert_eq!(
            expected(b"\x08\0\0\0\0\0\0\0\0\x00\x05\0\0\0abc").to_string(),
            "relay message byte 14: expected as many key bytes as its length says"
        );
        let long = encode_stale(0, [&[b'k'; MAX_NAME_LEN + 1][..]]);
        assert_eq!(
            expected(&long).expected,
            "a stale key of at most 1024 bytes"
        );
        let many = vec![&b"k"[..]; MAX_TOPUP_KEYS + 1];
        assert_eq!(
            expected(&encode_stale(0, many)).expected,
            "at most 1024 stale keys"
        );
    }

    #[test]
    fn digests_round_trip_with_their_request_id_and_refuse_a_wrong_length() {
        let digest = WindowsDigest {
            hash: 0x0102_0304_0506_0708,
            keys: 3,
            items: 250,
        };
        let message = encode_digest("d1", 77, Ok(digest));
        assert_eq!(
            message,
            b"\x0a\x4d\0\0\0\0\0\0\0\x00\x02d1\x08\x07\x06\x05\x04\x03\x02\x01\x03\0\0\0\xfa\0\0\0\0\0\0\0"
        );
        assert_eq!(
            decode(&message),
            Ok(Message::Digest {
                request: "d1",
                offset: 77,
                digest: Ok(digest)
            })
        );
        let refused = encode_digest("d2", 0, Err("no state"));
        assert_eq!(
            decode(&refused),
            Ok(Message::Digest {
                request: "d2",
                offset: 0,
                digest: Err("no state")
            })
        );
        let short = &message[..message.len() - 1];
        assert_eq!(
            decode(short).unwrap_err().expected,
            "exactly 20 bytes of digest: hash (8), keys (4), items (8)"
        );
        let mut bad_status = message.clone();
        bad_status[9] = 2;
        assert_eq!(decode(&bad_status).unwrap_err().at, 9);
        assert_eq!(decode(&message[..10]).unwrap_err().at, 10);
    }

    #[test]
    fn acks_round_trip_with_their_request_id() {
        let ok = encode_ack("r1", Ok("1700000000000-0"));
        assert_eq!(ok, b"\x06\x00\x02r11700000000000-0");
        assert_eq!(
            decode(&ok),
            Ok(Message::Ack {
                request: "r1",
                entry: Ok("1700000000000-0")
            })
        );
        let refused = encode_ack("é", Err("no"));
        assert_eq!(
            decode(&refused),
            Ok(Message::Ack {
                request: "é",
                entry: Err("no")
            })
        );
        let long = "é".repeat(MAX_REQUEST_ID_LEN);
        let message = encode_ack(&long, Ok("1-0"));
        let Ok(Message::Ack { request, .. }) = decode(&message) else {
            panic!("not an ack")
        };
        assert_eq!(
            request.len(),
            MAX_REQUEST_ID_LEN,
            "cut at a character boundary"
        );
    }

    #[test]
    fn bad_acks_say_what_was_expected() {
        assert_eq!(decode(b"\x06").unwrap_err().at, 1);
        assert_eq!(decode(b"\x06\x00").unwrap_err().at, 2);
        assert_eq!(decode(b"\x06\x00\x05ab").unwrap_err().at, 3);
        assert_eq!(decode(b"\x06\x02\x00x").unwrap_err().at, 1);
        assert_eq!(decode(b"\x06\x00\x01a\xff").unwrap_err().at, 4);
    }

    #[test]
    fn bad_messages_say_what_was_expected() {
        assert_eq!(decode(b"").unwrap_err().at, 0);
        // Tag 10 is the last the wire has (a digest's answer); 11 is no message.
        assert_eq!(decode(b"\x0b").unwrap_err().at, 0);
        assert_eq!(decode(b"\x0a").unwrap_err().at, 1);
        assert_eq!(decode(b"\x01\x01\x00").unwrap_err().at, 2);
        assert_eq!(decode(b"\x01\x02\0\0\0\0\0\0\0\0").unwrap_err().at, 10);
        assert_eq!(
            decode(b"\x01\x02\0\0\0\0\0\0\0\0\x05ab").unwrap_err().at,
            11
        );
        let Ok(Message::Commands(mut segments)) = decode(b"\x02\x01\0\0\0\0\0\0\0\xff\0\0\0ab")
        else {
            panic!("not commands")
        };
        let err = segments.next().unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            "relay message byte 13: expected as many segment bytes as its length says"
        );
        assert!(segments.next().is_none());
        // Found by the assembler fuzz target: a segment ending past 2^64 overflowed the assembler's arithmetic.
        let Ok(Message::Commands(mut segments)) =
            decode(b"\x02\xfe\xff\xff\xff\xff\xff\xff\xff\x06\0\0\0\x015\x005\0'")
        else {
            panic!("not commands")
        };
        assert_eq!(
            segments.next().unwrap().unwrap_err().expected,
            "a segment that ends below 2^64"
        );
        assert_eq!(
            decode(b"\x03slow").unwrap(),
            Message::Resync { reason: "slow" }
        );
        assert_eq!(
            decode(&encode_notice("no")).unwrap(),
            Message::Notice { text: "no" }
        );
    }

    #[test]
    fn expiring_messages_carry_the_tokens_exp_and_nothing_else() {
        let message = encode_expiring(1_700_000_000);
        assert_eq!(message, b"\x09\x00\xf1\x53\x65\x00\x00\x00\x00");
        assert_eq!(
            decode(&message).unwrap(),
            Message::Expiring {
                expires: 1_700_000_000
            }
        );
        for bad in [&message[..8], &[&message[..], b"x"].concat()[..]] {
            assert_eq!(
                decode(bad).unwrap_err().expected,
                "an expiring message of exactly 8 bytes after its tag"
            );
        }
    }
}
