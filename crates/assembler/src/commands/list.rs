//! List commands. Redis 7.0 propagates `BLPOP`/`BRPOP`/`LMPOP` as `LPOP`/`RPOP` (with a count), `BLMOVE` as
//! `LMOVE` and `BRPOPLPUSH` as `RPOPLPUSH`.

use super::args::{int, is};
use crate::keyspace::Applying;
use crate::windows::{Body, Inexact, Kind, ListWindow, Window};

fn list(window: &mut Window) -> Result<&mut ListWindow, Inexact> {
    match &mut window.body {
        Body::List(w) => Ok(w),
        _ => Err(Inexact),
    }
}

/// `RPUSH`/`RPUSHX`, or `LPUSH`/`LPUSHX` (`front`), `key item …`.
pub(super) fn push(applying: &mut Applying<'_>, args: &[&[u8]], front: bool) {
    if args.len() < 3 {
        return applying.bad_arguments("RPUSH/LPUSH", &args[1..2]);
    }
    applying.update(args[1], Kind::List, true, |window, events| {
        let w = list(window)?;
        for item in &args[2..] {
            if front {
                w.push_front(item, events);
            } else {
                w.push_back(item, events);
            }
        }
        Ok(())
    });
}

/// `LPOP`/`RPOP key [count]`.
pub(super) fn pop(applying: &mut Applying<'_>, args: &[&[u8]], front: bool) {
    let count = match args.get(2) {
        Some(c) => match int(c) {
            Some(c) if c >= 0 => c as u64,
            _ => return applying.bad_arguments("LPOP/RPOP", &args[1..2]),
        },
        None => 1,
    };
    applying.update(args[1], Kind::List, false, |window, events| {
        let w = list(window)?;
        if front {
            w.pop_front(count, events)?;
        } else {
            w.pop_back(count, events);
        }
        Ok(())
    });
}

/// `LTRIM key start stop`.
pub(super) fn ltrim(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let (Some(start), Some(stop)) = (
        args.get(2).and_then(|a| int(a)),
        args.get(3).and_then(|a| int(a)),
    ) else {
        return applying.bad_arguments("LTRIM", &args[1..2]);
    };
    applying.update(args[1], Kind::List, false, |window, events| {
        list(window)?.trim(start, stop, events)
    });
}

/// `LSET key index value`.
pub(super) fn lset(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let (Some(index), Some(&value)) = (args.get(2).and_then(|a| int(a)), args.get(3)) else {
        return applying.bad_arguments("LSET", &args[1..2]);
    };
    applying.update(args[1], Kind::List, false, |window, events| {
        list(window)?.set(index, value, events)
    });
}

/// `LREM key count value`.
pub(super) fn lrem(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let (Some(count), Some(&value)) = (args.get(2).and_then(|a| int(a)), args.get(3)) else {
        return applying.bad_arguments("LREM", &args[1..2]);
    };
    applying.update(args[1], Kind::List, false, |window, events| {
        list(window)?.remove(count, value, events)
    });
}

/// `LINSERT key BEFORE|AFTER pivot value`.
pub(super) fn linsert(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let (Some(&side), Some(&pivot), Some(&value)) = (args.get(2), args.get(3), args.get(4)) else {
        return applying.bad_arguments("LINSERT", &args[1..2]);
    };
    let before = is(side, "before");
    if !before && !is(side, "after") {
        return applying.bad_arguments("LINSERT", &args[1..2]);
    }
    applying.update(args[1], Kind::List, false, |window, events| {
        list(window)?.insert(before, pivot, value, events)
    });
}

/// `LMOVE src dst LEFT|RIGHT LEFT|RIGHT` (and `BLMOVE`), or `RPOPLPUSH src dst` (`rpoplpush`): the item moves
/// only as far as the windows know it. An item popped from outside the source's window, or from a stale window
/// (whose items may not be Redis's), is unknown, so the destination needs a top-up.
pub(super) fn lmove(applying: &mut Applying<'_>, args: &[&[u8]], rpoplpush: bool) {
    let (Some(&src), Some(&dst)) = (args.get(1), args.get(2)) else {
        return applying.bad_arguments("LMOVE", &args[1..args.len().min(3)]);
    };
    let (from_left, to_left) = if rpoplpush {
        (false, true)
    } else {
        let side = |arg: Option<&&[u8]>| match arg {
            Some(a) if is(a, "left") => Some(true),
            Some(a) if is(a, "right") => Some(false),
            _ => None,
        };
        let (Some(from_left), Some(to_left)) = (side(args.get(3)), side(args.get(4))) else {
            return applying.bad_arguments("LMOVE", &args[1..args.len().min(3)]);
        };
        (from_left, to_left)
    };
    let mut item: Option<Vec<u8>> = None;
    applying.update(src, Kind::List, false, |window, events| {
        let trusted = !window.stale;
        let w = list(window)?;
        let popped = if from_left {
            let known = w.first_of_list().is_some();
            w.pop_front(1, events)?.pop().filter(|_| known)
        } else {
            w.pop_back(1, events).pop()
        };
        if trusted {
            item = popped;
        }
        Ok(())
    });
    match item {
        Some(item) => applying.update(dst, Kind::List, true, |window, events| {
            let w = list(window)?;
            if to_left {
                w.push_front(&item, events);
            } else {
                w.push_back(&item, events);
            }
            Ok(())
        }),
        None => {
            if applying.keyspace.is_watched(dst) {
                applying.mark_stale(dst);
            }
        }
    }
}
