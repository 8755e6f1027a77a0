//! String commands: the value is known after `SET`, `MSET`, `INCR`…, `APPEND`, `SETRANGE`, computed as Redis
//! does. (`INCRBYFLOAT` arrives as `SET … KEEPTTL` of the result, `GETSET` as `SET`, `SET … EX` as `SET … PXAT`.)

use super::args::{int, is};
use crate::keyspace::Applying;
use crate::windows::{Body, Inexact, Kind, StringWindow, Window};

/// Largest string `SETRANGE` may build here; past it the window asks for a top-up instead.
const MAX_SETRANGE: usize = 1 << 20;

fn string(window: &mut Window) -> Result<&mut StringWindow, Inexact> {
    match &mut window.body {
        Body::String(w) => Ok(w),
        _ => Err(Inexact),
    }
}

/// Sets `key`'s value, whatever type it had. `ttl`: `None` keeps the TTL (`KEEPTTL`), `Some(t)` sets it.
fn assign(applying: &mut Applying<'_>, key: &[u8], value: &[u8], ttl: Option<Option<u64>>) {
    if applying
        .keyspace
        .windows
        .get(key)
        .is_some_and(|w| w.kind() != Kind::String)
    {
        applying.drop_key(key);
    }
    applying.update(key, Kind::String, true, |window, events| {
        if let Some(ttl) = ttl {
            window.expires_at_ms = ttl;
        }
        // A string's value is whole in itself: whatever was unknown about the key is replaced.
        window.stale = false;
        string(window)?.set(value.to_vec(), events);
        Ok(())
    });
    applying.drop_unknown(key);
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`.
pub(super) fn set(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let Some(&value) = args.get(2) else {
        return applying.bad_arguments("SET", &args[1..2]);
    };
    let mut ttl = Some(None);
    let mut rest = args[3..].iter();
    while let Some(option) = rest.next() {
        if is(option, "keepttl") {
            ttl = None;
        } else if is(option, "pxat") || is(option, "exat") {
            let scale = if is(option, "exat") { 1000 } else { 1 };
            match rest.next().and_then(|t| int(t)).filter(|&t| t >= 0) {
                Some(t) => ttl = Some(Some(t as u64 * scale)),
                None => return applying.bad_arguments("SET", &args[1..2]),
            }
        } else if is(option, "ex") || is(option, "px") {
            // Relative to a clock the stream does not carry; Redis 7.0 propagates PXAT instead.
            rest.next();
        }
    }
    assign(applying, args[1], value, ttl);
}

/// `SETNX`, `GETSET`, `SETEX`, `PSETEX`: the value, no TTL the stream can place.
pub(super) fn set_plain(applying: &mut Applying<'_>, key: &[u8], value: Option<&[u8]>) {
    match value {
        Some(value) => assign(applying, key, value, Some(None)),
        None => applying.bad_arguments("SETNX/GETSET/SETEX", &[key]),
    }
}

/// `MSET key value …`.
pub(super) fn mset(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let pairs = &args[1..];
    if !pairs.len().is_multiple_of(2) {
        return applying.bad_arguments("MSET", pairs);
    }
    for pair in pairs.chunks_exact(2) {
        assign(applying, pair[0], pair[1], Some(None));
    }
}

/// The current value, if known: `Some(None)` when the key is known not to exist.
fn current(applying: &mut Applying<'_>, key: &[u8]) -> Result<Option<Vec<u8>>, Inexact> {
    match applying.keyspace.windows.get(key) {
        Some(w) => match w.as_string() {
            Some(s) if !w.stale() => Ok(Some(s.value().to_vec())),
            _ => Err(Inexact),
        },
        None if applying.known(key) => Ok(None),
        None => Err(Inexact),
    }
}

/// Writes a value computed from the current one (TTL kept), or marks the key stale if it is unknown.
fn modify(
    applying: &mut Applying<'_>,
    key: &[u8],
    compute: impl FnOnce(Option<Vec<u8>>) -> Option<Vec<u8>>,
) {
    if !applying.keyspace.is_watched(key) {
        return;
    }
    if applying
        .keyspace
        .windows
        .get(key)
        .is_some_and(|w| w.kind() != Kind::String)
    {
        // Redis refuses with WRONGTYPE and propagates nothing: the stream is corrupt.
        applying.update(key, Kind::String, false, |_, _| Ok(()));
        return;
    }
    match current(applying, key).ok().and_then(compute) {
        Some(value) => assign(applying, key, &value, None),
        None => applying.mark_stale(key),
    }
}

/// `INCR`, `DECR`, `INCRBY`, `DECRBY`.
pub(super) fn incr(applying: &mut Applying<'_>, args: &[&[u8]], name: &[u8]) {
    let by = match name {
        b"incr" => Some(1),
        b"decr" => Some(-1),
        b"incrby" => args.get(2).and_then(|a| int(a)),
        _ => args.get(2).and_then(|a| int(a)).and_then(i64::checked_neg),
    };
    let Some(by) = by else {
        return applying.bad_arguments("INCRBY/DECRBY", &args[1..2]);
    };
    modify(applying, args[1], |old| {
        let old = match old {
            Some(v) => int(&v)?,
            None => 0,
        };
        Some(old.checked_add(by)?.to_string().into_bytes())
    });
}

/// `APPEND key value`.
pub(super) fn append(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let Some(&tail) = args.get(2) else {
        return applying.bad_arguments("APPEND", &args[1..2]);
    };
    modify(applying, args[1], |old| {
        let mut value = old.unwrap_or_default();
        value.extend_from_slice(tail);
        Some(value)
    });
}

/// `SETRANGE key offset value`: zero-padded as Redis pads it.
pub(super) fn setrange(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let (Some(offset), Some(&patch)) = (
        args.get(2).and_then(|a| int(a)).filter(|&o| o >= 0),
        args.get(3),
    ) else {
        return applying.bad_arguments("SETRANGE", &args[1..2]);
    };
    modify(applying, args[1], |old| {
        // An offset past `usize` (on wasm32, 4 GiB) is past the limit too, not cut to its low bits.
        let offset = usize::try_from(offset).ok()?;
        let end = offset.checked_add(patch.len())?;
        if end > MAX_SETRANGE {
            return None;
        }
        let mut value = old.unwrap_or_default();
        if value.len() < end {
            value.resize(end, 0);
        }
        value[offset..end].copy_from_slice(patch);
        Some(value)
    });
}
