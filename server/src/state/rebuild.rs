//! A window of the relay's state written as the commands a Redis snapshot sends for its key (`snapshot.rs`), so a
//! page applies a snapshot from the state with the same code, to the same windows: `DEL key`, then the newest
//! `window` items oldest first (`ZADD key score member …`, `RPUSH`, `XADD` one entry each, or `XTRIM key MAXLEN 0`
//! for a stream without entries), every field of a hash (`HSET`, as `HGETALL` gives them), a string's value (`SET`).
//! A window counts its bytes here too, for the state's budget.

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

/// About the bytes `key`'s window holds in the relay, for `--state-bytes`.
pub(super) fn window_bytes(key: &[u8], window: &Window) -> usize {
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
                    } => field.len() + value.len() + previous.iter().map(Vec::len).sum::<usize>(),
                    ItemView::Value {
                        value, previous, ..
                    } => value.len() + previous.iter().map(Vec::len).sum::<usize>(),
                }
        })
        .sum();
    WINDOW_OVERHEAD + key.len() + items
}
