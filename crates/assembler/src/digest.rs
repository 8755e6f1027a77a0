//! Digests of window contents, so that two followers of one stream (the relay's state and a page, or the relay's
//! state and a snapshot read from Redis) can tell whether they hold the same windows without sending them.
//!
//! A digest covers exactly what a window shows: its type and its items with their scores, stream ids and values,
//! newest first, the newest `limit` of them (a page's window may be shallower than the relay's state). A hash's
//! fields are taken in field order and a string's value alone: the order in which a follower learnt them (a
//! snapshot's `HGETALL`, or the stream) is not content. Keys are taken in key order, so the digest of a set of
//! windows does not depend on the order their keys arrived in. Earlier values of a hash field or a string, TTLs and
//! staleness are not content either. The hash is XXH64 (the `xxhash-rust` crate): small in wasm, and a digest only
//! has to tell copies apart, not resist anyone forging one.

use replicast_protocol::wire::WindowsDigest;
use xxhash_rust::xxh64::Xxh64;

use crate::windows::{ItemView, Kind, Window};

/// The digest of one key's window: its type, how many items it covers, and their hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowDigest {
    pub kind: Kind,
    pub items: usize,
    pub hash: u64,
}

/// The digest of the newest `limit` items of `key`'s window (a hash's fields and a string's value whole).
pub fn window_digest(key: &[u8], window: &Window, limit: usize) -> WindowDigest {
    let mut hasher = Xxh64::new(0);
    let items = feed_window(&mut hasher, key, window, limit);
    WindowDigest {
        kind: window.kind(),
        items,
        hash: hasher.digest(),
    }
}

/// The digest of a set of windows, each cut to its newest `limit` items: equal for equal windows whatever order
/// `windows` gives them in, with how many keys and items it covers.
pub fn windows_digest<'a>(
    windows: impl IntoIterator<Item = (&'a [u8], &'a Window)>,
    limit: usize,
) -> WindowsDigest {
    let mut windows: Vec<(&[u8], &Window)> = windows.into_iter().collect();
    crate::sort::sort_by_bytes(&mut windows, |(key, _)| key);
    let mut hasher = Xxh64::new(0);
    let mut items = 0;
    for (key, window) in &windows {
        items += feed_window(&mut hasher, key, window, limit);
    }
    WindowsDigest {
        hash: hasher.digest(),
        keys: u32::try_from(windows.len()).unwrap_or(u32::MAX),
        items: items as u64,
    }
}

/// Feeds `key` and its window's content to `hasher`; how many items it took.
fn feed_window(hasher: &mut Xxh64, key: &[u8], window: &Window, limit: usize) -> usize {
    bytes(hasher, key);
    let kind = window.kind();
    hasher.update(&[kind_tag(kind)]);
    let mut items: Vec<ItemView<'_>> = match kind {
        Kind::Hash | Kind::String => window.items_newest_first().collect(),
        _ => window.items_newest_first().take(limit).collect(),
    };
    if kind == Kind::Hash {
        crate::sort::sort_by_bytes(&mut items, |item| field_of(item));
    }
    hasher.update(&(items.len() as u64).to_le_bytes());
    for item in &items {
        match *item {
            ItemView::Member { member, score, .. } => {
                bytes(hasher, member);
                // -0 and 0 are one score to Redis.
                let score = if score == 0.0 { 0.0f64 } else { score };
                hasher.update(&score.to_bits().to_le_bytes());
            }
            ItemView::Entry { entry, fields, .. } => {
                hasher.update(&entry.ms.to_le_bytes());
                hasher.update(&entry.seq.to_le_bytes());
                hasher.update(&(fields.len() as u64).to_le_bytes());
                for field in fields {
                    bytes(hasher, field);
                }
            }
            ItemView::ListItem { value, .. } => bytes(hasher, value),
            ItemView::Field { field, value, .. } => {
                bytes(hasher, field);
                bytes(hasher, value);
            }
            ItemView::Value { value, .. } => bytes(hasher, value),
        }
    }
    items.len()
}

/// Length-prefixed, so that no two sequences of byte strings feed the hasher the same bytes.
fn bytes(hasher: &mut Xxh64, value: &[u8]) {
    hasher.update(&(value.len() as u64).to_le_bytes());
    hasher.update(value);
}

fn field_of<'a>(item: &ItemView<'a>) -> &'a [u8] {
    match *item {
        ItemView::Field { field, .. } => field,
        _ => &[],
    }
}

fn kind_tag(kind: Kind) -> u8 {
    match kind {
        Kind::Zset => 1,
        Kind::Stream => 2,
        Kind::List => 3,
        Kind::Hash => 4,
        Kind::String => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StreamAssembler, WatchConfig};
    use replicast_protocol::wire;

    fn resp(args: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// An assembler watching `k:*` with windows of `window`, after a snapshot of `commands` at offset 100.
    fn windows_after(commands: &[Vec<u8>], window: usize) -> StreamAssembler {
        let mut assembler = StreamAssembler::new(WatchConfig {
            patterns: vec![b"k:*".to_vec()],
            db: 0,
            window,
        });
        assembler
            .push_message(&wire::encode_hello("e", 100))
            .unwrap();
        assembler
            .push_message(&wire::encode_snapshot(100, &commands.concat()))
            .unwrap();
        assembler
    }

    fn every_type() -> Vec<Vec<u8>> {
        vec![
            resp(&[b"ZADD", b"k:z", b"1", b"a", b"2.5", b"b", b"-0", b"c"]),
            resp(&[b"RPUSH", b"k:l", b"x", b"y", b"z"]),
            resp(&[b"HSET", b"k:h", b"f1", b"v1", b"f2", b"v2"]),
            resp(&[b"SET", b"k:s", b"value"]),
            resp(&[b"XADD", b"k:x", b"1-1", b"cpu", b"12"]),
            resp(&[b"XADD", b"k:x", b"2-0", b"cpu", b"13"]),
        ]
    }

    #[test]
    fn a_digest_does_not_depend_on_the_order_keys_or_hash_fields_arrived_in() {
        let mut reversed = every_type();
        reversed.reverse();
        reversed[3] = resp(&[b"HSET", b"k:h", b"f2", b"v2", b"f1", b"v1"]);
        let a = windows_after(&every_type(), 10);
        let b = windows_after(&reversed, 10);
        let digest_a = windows_digest(a.windows(), 10);
        assert_eq!((digest_a.keys, digest_a.items), (5, 3 + 3 + 2 + 1 + 2));
        assert_eq!(windows_digest(b.windows(), 10), digest_a);
        assert_eq!(
            windows_digest(b.windows().collect::<Vec<_>>().into_iter().rev(), 10),
            digest_a
        );
    }

    #[test]
    fn a_digest_changes_with_any_item_score_value_or_type() {
        let base = windows_digest(windows_after(&every_type(), 10).windows(), 10).hash;
        let changes: [(usize, &[&[u8]]); 6] = [
            (
                0,
                &[b"ZADD", b"k:z", b"1", b"a", b"2.5", b"b", b"0.5", b"c"],
            ),
            (0, &[b"ZADD", b"k:z", b"1", b"a", b"2.5", b"b", b"-0", b"d"]),
            (1, &[b"RPUSH", b"k:l", b"x", b"z", b"y"]),
            (2, &[b"HSET", b"k:h", b"f1", b"v1", b"f2", b"v3"]),
            (3, &[b"RPUSH", b"k:s", b"value"]),
            (4, &[b"XADD", b"k:x", b"1-2", b"cpu", b"12"]),
        ];
        for (at, change) in changes {
            let mut commands = every_type();
            commands[at] = resp(change);
            let changed = windows_digest(windows_after(&commands, 10).windows(), 10).hash;
            assert_ne!(
                changed,
                base,
                "{:?}",
                String::from_utf8_lossy(&commands[at])
            );
        }
    }

    #[test]
    fn a_digest_covers_the_newest_items_up_to_the_limit() {
        let deep = windows_after(&every_type(), 10);
        let shallow = windows_after(&every_type(), 2);
        let z =
            |a: &StreamAssembler, limit| window_digest(b"k:z", a.window(b"k:z").unwrap(), limit);
        assert_eq!(z(&deep, 2), z(&shallow, 2));
        assert_eq!(z(&deep, 2).items, 2);
        assert_ne!(z(&deep, 3), z(&deep, 2));
        assert_eq!(
            windows_digest(deep.windows(), 2),
            windows_digest(shallow.windows(), 2)
        );
    }
}
