//! Hash commands: `HSET`/`HMSET`/`HSETNX`, `HDEL`, `HINCRBY`. (`HINCRBYFLOAT` arrives as `HSET` of the result.)

use super::args::int;
use crate::keyspace::Applying;
use crate::windows::{Body, HashWindow, Inexact, Kind, Window};

fn hash(window: &mut Window) -> Result<&mut HashWindow, Inexact> {
    match &mut window.body {
        Body::Hash(w) => Ok(w),
        _ => Err(Inexact),
    }
}

/// `HSET key field value …`; `HSETNX` (`only_new`) sets only a field that is not there.
pub(super) fn hset(applying: &mut Applying<'_>, args: &[&[u8]], only_new: bool) {
    let pairs = &args[2..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return applying.bad_arguments("HSET", &args[1..2]);
    }
    applying.update(args[1], Kind::Hash, true, |window, events| {
        let w = hash(window)?;
        for pair in pairs.chunks_exact(2) {
            // Redis propagates HSETNX only when it set the field.
            if only_new && w.get(pair[0]).is_some() {
                continue;
            }
            w.set(pair[0], pair[1].to_vec(), events);
        }
        Ok(())
    });
}

/// `HDEL key field …`.
pub(super) fn hdel(applying: &mut Applying<'_>, args: &[&[u8]]) {
    applying.update(args[1], Kind::Hash, false, |window, events| {
        let w = hash(window)?;
        for field in &args[2..] {
            w.delete(field, events);
        }
        Ok(())
    });
}

/// `HINCRBY key field increment`: exact if the window holds the field, or knows it is absent.
pub(super) fn hincrby(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let (Some(&field), Some(by)) = (args.get(2), args.get(3).and_then(|a| int(a))) else {
        return applying.bad_arguments("HINCRBY", &args[1..2]);
    };
    applying.update(args[1], Kind::Hash, true, |window, events| {
        let w = hash(window)?;
        let old = match w.get(field) {
            Some(v) => int(v).ok_or(Inexact)?,
            None if w.complete() => 0,
            None => return Err(Inexact),
        };
        let new = old.checked_add(by).ok_or(Inexact)?;
        w.set(field, new.to_string().into_bytes(), events);
        Ok(())
    });
}
