//! A window of the relay's state written as the commands a Redis snapshot sends for its key (`snapshot.rs`), so a
//! page applies a snapshot from the state with the same code, to the same windows: `DEL key`, then the newest
//! `window` items oldest first (`ZADD key score member …`, `RPUSH`, `XADD` one entry each, or `XTRIM key MAXLEN 0`
//! for a stream without entries), every field of a hash (`HSET`, as `HGETALL` gives them), a string's value (`SET`).
//! A window's bytes are reckoned here too, for the state's budget.

use replicast_assembler::{ItemView, Kind, Window};

use crate::link_io::push_command;

/// Bytes a window item costs besides its own (its id, its place in the window's structures).
const ITEM_OVERHEAD: usize = 48;
/// Bytes a window costs besides its items (the map entry, the window itself).
const WINDOW_OVERHEAD: usize = 128;

/// Whether the state can answer a snapshot of `window` items of this key: it is exact, and holds whatever Redis
/// would give (a hash whole, since `HGETALL` gives every field).
pub(super) fn answers(window: &Window) -> bool {
    !window.stale() && (window.kind() != Kind::Hash || window.complete())
}

/// Appends the commands that rebuild `key`'s newest `window` items to `out` (`window` must not exceed the
/// state's depth).
pub(super) fn rebuild(out: &mut Vec<u8>, key: &[u8], state: Option<&Window>, window: usize) {
    push_command(out, &[b"DEL", key]);
    let Some(state) = state else {
        return;
    };
    let mut newest: Vec<ItemView<'_>> = match state.kind() {
        Kind::Hash | Kind::String => state.items_newest_first().collect(),
        _ => state.items_newest_first().take(window).collect(),
    };
    newest.reverse();
    let mut command: Vec<Vec<u8>> = Vec::new();
    match state.kind() {
        Kind::Zset => command.extend([b"ZADD".to_vec(), key.to_vec()]),
        Kind::List => command.extend([b"RPUSH".to_vec(), key.to_vec()]),
        Kind::Hash => command.extend([b"HSET".to_vec(), key.to_vec()]),
        Kind::String | Kind::Stream => {}
    }
    if state.kind() == Kind::Stream && newest.is_empty() {
        push_command(out, &[b"XTRIM", key, b"MAXLEN", b"0"]);
    }
    for item in newest {
        match item {
            ItemView::Member { member, score, .. } => {
                command.push(score.to_string().into_bytes());
                command.push(member.to_vec());
            }
            ItemView::ListItem { value, .. } => command.push(value.to_vec()),
            ItemView::Field { field, value, .. } => {
                command.push(field.to_vec());
                command.push(value.to_vec());
            }
            ItemView::Value { value, .. } => push_command(out, &[b"SET", key, value]),
            ItemView::Entry { entry, fields, .. } => {
                let id = entry.to_string().into_bytes();
                let mut xadd: Vec<&[u8]> = vec![b"XADD", key, &id];
                xadd.extend(fields.iter().map(Vec::as_slice));
                push_command(out, &xadd);
            }
        }
    }
    if command.len() > 2 {
        let args: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
        push_command(out, &args);
    }
}

/// About the bytes `key`'s window holds in the relay, for `--state-bytes`: its items' contents (which the window
/// keeps count of as they change, so this costs the same whatever the window's depth) and a fixed cost per item.
pub(super) fn window_bytes(key: &[u8], window: &Window) -> usize {
    WINDOW_OVERHEAD + key.len() + window.len() * ITEM_OVERHEAD + window.payload_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use replicast_assembler::{StreamAssembler, WatchConfig};
    use replicast_protocol::wire;

    /// The bytes of a window counted by walking its items: what [`window_bytes`] reads from the window's own count.
    fn walked_window_bytes(key: &[u8], window: &Window) -> usize {
        let history = |previous: &std::collections::VecDeque<Vec<u8>>| -> usize {
            previous.iter().map(Vec::len).sum()
        };
        let items: usize = window
            .items_newest_first()
            .map(|item| {
                ITEM_OVERHEAD
                    + match item {
                        ItemView::Member { member, .. } => member.len(),
                        ItemView::ListItem { value, .. } => value.len(),
                        ItemView::Entry { fields, .. } => fields.iter().map(Vec::len).sum(),
                        ItemView::Field {
                            field,
                            value,
                            previous,
                            ..
                        } => field.len() + value.len() + history(previous),
                        ItemView::Value {
                            value, previous, ..
                        } => value.len() + history(previous),
                    }
            })
            .sum();
        WINDOW_OVERHEAD + key.len() + items
    }

    #[test]
    fn a_window_of_every_type_costs_what_walking_it_counts() {
        let mut commands = Vec::new();
        for args in [
            &[&b"ZADD"[..], b"z", b"1", b"a", b"2", b"bb", b"3", b"ccc"][..],
            &[b"ZADD", b"z", b"4", b"dddd"],
            &[b"RPUSH", b"l", b"x", b"yy", b"zzz", b"wwww"],
            &[b"LPOP", b"l"],
            &[b"HSET", b"h", b"f", b"1", b"g", b"22"],
            &[b"HSET", b"h", b"f", b"333"],
            &[b"SET", b"s", b"one"],
            &[b"SET", b"s", b"three"],
            &[b"XADD", b"x", b"1-1", b"cpu", b"12"],
            &[b"XADD", b"x", b"2-1", b"cpu", b"13", b"mem", b"4"],
        ] {
            push_command(&mut commands, args);
        }
        let mut assembler = StreamAssembler::new(WatchConfig {
            patterns: vec![b"*".to_vec()],
            db: 0,
            window: 3,
        });
        assembler.push_message(&wire::encode_hello("e", 0)).unwrap();
        assembler
            .push_message(&wire::encode_commands(0, &commands))
            .unwrap();
        assert_eq!(assembler.windows().count(), 5);
        for (key, window) in assembler.windows() {
            assert_eq!(
                window_bytes(key, window),
                walked_window_bytes(key, window),
                "{}",
                String::from_utf8_lossy(key)
            );
        }
    }
}
