//! Reading a saved view back: the whole record is read and checked before anything is applied, so that a refused
//! record leaves the assembler as it was. What each check refuses is named in the error, with the byte offset.

use super::bytes::Cursor;
use super::{
    checksum, SavedBody, SavedStream, SavedView, SavedViewError, SavedWindow, CHECKSUM_BYTES,
    COMPLETE, HAS_TTL, MAGIC, MAX_EPOCH_LEN, MAX_PATTERNS, SAVED_VIEW_VERSION, STALE,
};
use crate::keyspace::Keyspace;
use crate::windows::fast_hash::FastSet;
use crate::windows::{StreamId, FIELD_HISTORY, STRING_HISTORY};
use replicast_protocol::text;
use replicast_protocol::wire::MAX_SHARDS;

/// Reads and checks a whole saved view for `keyspace`'s watch, without changing anything but its cache of
/// watched keys.
pub(super) fn read_view<'a>(
    bytes: &'a [u8],
    keyspace: &mut Keyspace,
) -> Result<SavedView<'a>, SavedViewError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(SavedViewError::NotASavedView);
    }
    match bytes.get(MAGIC.len()) {
        Some(&SAVED_VIEW_VERSION) => {}
        Some(&other) => return Err(SavedViewError::Version(other)),
        None => {
            return Err(SavedViewError::Malformed {
                at: MAGIC.len(),
                expected: text!("the format version"),
            })
        }
    }
    let Some(body_len) = bytes
        .len()
        .checked_sub(CHECKSUM_BYTES)
        .filter(|&n| n > MAGIC.len())
    else {
        return Err(SavedViewError::Malformed {
            at: bytes.len(),
            expected: text!("the checksum's 8 bytes"),
        });
    };
    let (body, sum) = bytes.split_at(body_len);
    let mut expected = [0u8; CHECKSUM_BYTES];
    expected.copy_from_slice(sum);
    if checksum(body) != u64::from_le_bytes(expected) {
        return Err(SavedViewError::Checksum);
    }
    let mut cursor = Cursor::new(body);
    cursor.take(MAGIC.len() + 1, text!("the magic and the version"))?;

    let watch = &keyspace.watch;
    let db = cursor.varint(text!("the watched database"))?;
    let window = cursor.varint(text!("the window length"))?;
    let patterns = cursor.count(MAX_PATTERNS, text!("the number of patterns (at most 64)"))?;
    let mut same = db == u64::from(watch.db)
        && window == watch.window as u64
        && patterns == watch.patterns.len();
    for i in 0..patterns {
        let pattern = cursor.bytes("a pattern")?;
        same &= watch
            .patterns
            .get(i)
            .is_some_and(|p| p.as_slice() == pattern);
    }
    if !same {
        return Err(SavedViewError::OtherWatch);
    }
    let capacity = watch.window;

    let count = cursor.count(MAX_SHARDS, text!("the number of streams (at most 1024)"))?;
    let mut streams: Vec<SavedStream<'a>> = Vec::with_capacity(count);
    for _ in 0..count {
        let shard = shard_index(&mut cursor)?;
        if streams.iter().any(|s| s.shard == shard) {
            return Err(cursor.malformed(text!("each stream's shard once")));
        }
        let epoch = cursor.bytes("an epoch")?;
        let epoch = std::str::from_utf8(epoch)
            .ok()
            .filter(|e| !e.is_empty() && e.len() <= MAX_EPOCH_LEN)
            .ok_or_else(|| cursor.malformed(text!("an epoch of 1 to 64 UTF-8 bytes")))?;
        let offset = cursor.varint(text!("a stream offset"))?;
        let selected_db = match cursor.varint(text!("the SELECTed database"))? {
            0 => None,
            db => Some(
                u32::try_from(db - 1).map_err(|_| cursor.malformed(text!("a database number")))?,
            ),
        };
        streams.push(SavedStream {
            shard,
            epoch,
            offset,
            selected_db,
        });
    }
    if streams.is_empty() {
        return Err(cursor.malformed(text!("at least one stream")));
    }
    let joined = |shard: u16| streams.iter().any(|s| s.shard == shard);
    let mut seen: FastSet<&[u8]> = FastSet::default();

    let count = cursor.count(usize::MAX, text!("the number of unknown keys"))?;
    let mut unknown = Vec::new();
    for _ in 0..count {
        let key = watched_key(&mut cursor, keyspace, &mut seen)?;
        let shard = shard_index(&mut cursor)?;
        if !joined(shard) {
            return Err(cursor.malformed(text!("the shard of a stream the view holds")));
        }
        unknown.push((key, shard));
    }

    let count = cursor.count(usize::MAX, text!("the number of windows"))?;
    let mut windows = Vec::new();
    for _ in 0..count {
        let key = watched_key(&mut cursor, keyspace, &mut seen)?;
        let kind = cursor.byte(text!("a window's type (0 to 4)"))?;
        let flags = cursor.byte(text!("a window's flags"))?;
        if flags & !(STALE | COMPLETE | HAS_TTL) != 0 {
            return Err(cursor.malformed(text!("window flags 1, 2 and 4 only")));
        }
        let expires_at_ms = match flags & HAS_TTL {
            0 => None,
            _ => Some(cursor.varint(text!("a window's expiry time"))?),
        };
        let shard = shard_index(&mut cursor)?;
        if !joined(shard) {
            return Err(cursor.malformed(text!("the shard of a stream the view holds")));
        }
        let complete = flags & COMPLETE != 0;
        let body = match kind {
            0 => read_zset(&mut cursor, capacity, complete)?,
            1 => read_stream(&mut cursor, capacity)?,
            2 => read_list(&mut cursor, capacity)?,
            3 => read_hash(&mut cursor, capacity, complete)?,
            4 => read_string(&mut cursor, capacity)?,
            _ => return Err(cursor.malformed(text!("a window's type (0 to 4)"))),
        };
        windows.push(SavedWindow {
            key,
            stale: flags & STALE != 0,
            expires_at_ms,
            shard,
            body,
        });
    }
    if !cursor.is_empty() {
        return Err(cursor.malformed(text!("the checksum after the last window")));
    }
    Ok(SavedView {
        streams,
        unknown,
        windows,
    })
}

fn shard_index(cursor: &mut Cursor<'_>) -> Result<u16, SavedViewError> {
    let shard = cursor.varint(text!("a shard index"))?;
    u16::try_from(shard)
        .ok()
        .filter(|&s| usize::from(s) < MAX_SHARDS)
        .ok_or_else(|| cursor.malformed(text!("a shard index below 1024")))
}

/// A key the assembler watches, named once in the whole view.
fn watched_key<'a>(
    cursor: &mut Cursor<'a>,
    keyspace: &mut Keyspace,
    seen: &mut FastSet<&'a [u8]>,
) -> Result<&'a [u8], SavedViewError> {
    let at = cursor.at();
    let key = cursor.bytes("a key")?;
    if !keyspace.is_watched(key) {
        return Err(SavedViewError::Malformed {
            at,
            expected: text!("a key the watched patterns match"),
        });
    }
    if !seen.insert(key) {
        return Err(SavedViewError::Malformed {
            at,
            expected: text!("each key once"),
        });
    }
    Ok(key)
}

/// A length Redis holds, saved plus one (0: unknown), no less than the `held` items the window holds.
fn read_total(cursor: &mut Cursor<'_>) -> Result<Option<u64>, SavedViewError> {
    Ok(cursor.varint(text!("a length in Redis"))?.checked_sub(1))
}

fn check_total(cursor: &Cursor<'_>, total: Option<u64>, held: usize) -> Result<(), SavedViewError> {
    if total.is_some_and(|t| t < held as u64) {
        return Err(cursor.malformed(text!("a length in Redis no shorter than the window")));
    }
    Ok(())
}

fn read_zset<'a>(
    cursor: &mut Cursor<'a>,
    capacity: usize,
    complete: bool,
) -> Result<SavedBody<'a>, SavedViewError> {
    let count = cursor.count(
        capacity,
        text!("the number of members (at most the window)"),
    )?;
    let mut members = Vec::with_capacity(count);
    let mut seen = FastSet::with_capacity_and_hasher(count, Default::default());
    for _ in 0..count {
        let score = cursor.f64("a score")?;
        if score.is_nan() {
            return Err(cursor.malformed(text!("a score that is a number")));
        }
        let member = cursor.bytes("a member")?;
        if !seen.insert(member) {
            return Err(cursor.malformed(text!("each member once")));
        }
        members.push((score, member));
    }
    Ok(SavedBody::Zset { complete, members })
}

fn read_stream<'a>(
    cursor: &mut Cursor<'a>,
    capacity: usize,
) -> Result<SavedBody<'a>, SavedViewError> {
    let total = read_total(cursor)?;
    let count = cursor.count(
        capacity,
        text!("the number of entries (at most the window)"),
    )?;
    check_total(cursor, total, count)?;
    let mut entries: Vec<(StreamId, Vec<&'a [u8]>)> = Vec::with_capacity(count);
    for _ in 0..count {
        let id = StreamId {
            ms: cursor.varint(text!("an entry id's milliseconds"))?,
            seq: cursor.varint(text!("an entry id's sequence"))?,
        };
        if entries.last().is_some_and(|(last, _)| *last >= id) {
            return Err(cursor.malformed(text!("entry ids in increasing order")));
        }
        let fields = cursor.count(
            usize::MAX,
            text!("the number of an entry's fields and values"),
        )?;
        if fields % 2 != 0 {
            return Err(cursor.malformed(text!("fields and values in pairs")));
        }
        let fields = (0..fields)
            .map(|_| cursor.bytes(text!("an entry's field or value")))
            .collect::<Result<_, _>>()?;
        entries.push((id, fields));
    }
    Ok(SavedBody::Stream { total, entries })
}

fn read_list<'a>(
    cursor: &mut Cursor<'a>,
    capacity: usize,
) -> Result<SavedBody<'a>, SavedViewError> {
    let total = read_total(cursor)?;
    let count = cursor.count(capacity, text!("the number of items (at most the window)"))?;
    check_total(cursor, total, count)?;
    let items = (0..count)
        .map(|_| cursor.bytes(text!("a list item")))
        .collect::<Result<_, _>>()?;
    Ok(SavedBody::List { total, items })
}

fn read_hash<'a>(
    cursor: &mut Cursor<'a>,
    capacity: usize,
    complete: bool,
) -> Result<SavedBody<'a>, SavedViewError> {
    let dropped = cursor.varint(text!("the number of fields dropped"))?;
    let count = cursor.count(capacity, text!("the number of fields (at most the window)"))?;
    let mut fields = Vec::with_capacity(count);
    let mut seen = FastSet::with_capacity_and_hasher(count, Default::default());
    for _ in 0..count {
        let field = cursor.bytes(text!("a hash field"))?;
        if !seen.insert(field) {
            return Err(cursor.malformed(text!("each field once")));
        }
        let value = cursor.bytes(text!("a hash value"))?;
        let previous = history(cursor, FIELD_HISTORY)?;
        fields.push((field, value, previous));
    }
    Ok(SavedBody::Hash {
        complete,
        dropped,
        fields,
    })
}

fn read_string<'a>(
    cursor: &mut Cursor<'a>,
    capacity: usize,
) -> Result<SavedBody<'a>, SavedViewError> {
    let value = cursor.bytes(text!("a string's value"))?;
    let previous = history(cursor, capacity.saturating_sub(1).min(STRING_HISTORY))?;
    Ok(SavedBody::String { value, previous })
}

/// Earlier values, newest first, at most `limit`.
fn history<'a>(cursor: &mut Cursor<'a>, limit: usize) -> Result<Vec<&'a [u8]>, SavedViewError> {
    let count = cursor.count(
        limit,
        text!("the number of earlier values (at most the history kept)"),
    )?;
    (0..count)
        .map(|_| cursor.bytes(text!("an earlier value")))
        .collect()
}
