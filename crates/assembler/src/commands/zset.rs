//! Sorted-set commands. A window that is not complete holds the top of the set: a command whose effect depends
//! on members below it (`ZPOPMIN`, a rank counted from the bottom, `NX`/`XX`/`LT`/`INCR` on a member the window
//! does not hold but that might rank into it) is inexact and asks for a top-up. So is `ZREMRANGEBYLEX` unless all
//! the set's members share one score: Redis walks the set in score order and stops at the first member past the
//! range, so with mixed scores what it removes depends on members' places (and, in a skiplist, on its levels).
//!
//! Scores are read as Redis reads them ([`super::numbers`]) and ordered as its skiplist orders them (`-0` is
//! `0`; see [`crate::windows::zset`]).

use super::args::{int, is, score, score_bound, within, within_lex, LexBound};
use crate::keyspace::Applying;
use crate::windows::{Body, Events, Inexact, Kind, Window, ZsetWindow};

fn zset(window: &mut Window) -> Result<&mut ZsetWindow, Inexact> {
    match &mut window.body {
        Body::Zset(w) => Ok(w),
        _ => Err(Inexact),
    }
}

#[derive(Default, Clone, Copy)]
struct Flags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    incr: bool,
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`.
/// (A plain `ZADD key score member` is applied before this, by [`plain_zadd`].)
pub(super) fn zadd(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let mut flags = Flags::default();
    let mut rest = &args[2..];
    while let Some((flag, tail)) = rest.split_first() {
        match flag.first().map(u8::to_ascii_lowercase) {
            Some(b'n') if is(flag, "nx") => flags.nx = true,
            Some(b'x') if is(flag, "xx") => flags.xx = true,
            Some(b'g') if is(flag, "gt") => flags.gt = true,
            Some(b'l') if is(flag, "lt") => flags.lt = true,
            Some(b'c') if is(flag, "ch") => {}
            Some(b'i') if is(flag, "incr") => flags.incr = true,
            _ => break,
        }
        rest = tail;
    }
    add(applying, args[1], flags, rest, "ZADD");
}

/// Applies `ZADD key score member`, what collectors send, nearly every command of the stream: one pair and no
/// flag (an argument that reads as a score is no flag, and a flag would leave an odd pair), as [`zadd`] would,
/// with less on the way; returns `false` (nothing done) for any other `ZADD`. Inlined into the dispatch.
#[inline(always)]
pub(super) fn plain_zadd(applying: &mut Applying<'_>, args: &[&[u8]]) -> bool {
    if let [_, key, score_arg, member] = args {
        if let Some(s) = score(score_arg) {
            applying.zset_insert(key, member, s);
            return true;
        }
    }
    false
}

/// `ZINCRBY key increment member`.
pub(super) fn zincrby(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let flags = Flags {
        incr: true,
        ..Flags::default()
    };
    add(applying, args[1], flags, &args[2..], "ZINCRBY");
}

fn add(applying: &mut Applying<'_>, key: &[u8], flags: Flags, pairs: &[&[u8]], command: &str) {
    // Redis refuses a malformed command whole before replicating it (a score it cannot read, an odd pair): one in
    // the stream says the window and Redis disagree.
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return applying.bad_arguments(command, &[key]);
    }
    let mut bad_score = false;
    applying.update(key, Kind::Zset, true, |window, events| {
        let w = zset(window)?;
        let mut result = Ok(());
        for pair in pairs.chunks_exact(2) {
            let Some(s) = score(pair[0]) else {
                bad_score = true;
                return Err(Inexact);
            };
            if add_one(w, pair[1], s, flags, events).is_err() {
                result = Err(Inexact);
            }
            if !w.complete() && w.len() < w.capacity() {
                // A member rescored below the window left it short of members Redis may hold above the rest
                // of the pairs: placing those would pass for the top of the set without being it.
                return Err(Inexact);
            }
        }
        result
    });
    if bad_score {
        applying.bad_arguments(command, &[key]);
    }
}

fn add_one(
    w: &mut ZsetWindow,
    member: &[u8],
    s: f64,
    f: Flags,
    events: &mut Events<'_>,
) -> Result<(), Inexact> {
    if !(f.nx || f.xx || f.gt || f.lt || f.incr) {
        // The hot path: whether the member is new or not, and whether the window is complete or not, the
        // window's own insert knows what Redis did.
        w.insert(member, s, events);
        return Ok(());
    }
    let old = w.score(member);
    if old.is_none() && !w.complete() {
        // The member may exist below the window, with a lower score.
        if f.incr {
            return Err(Inexact);
        }
        if w.below_full_window(member, s) {
            // Wherever it was, it ends below the window.
            return Ok(());
        }
        if f.nx || f.xx || f.lt {
            return Err(Inexact);
        }
        // Plain or GT: it ends at `s` (GT: any old score was lower).
        w.insert(member, s, events);
        return Ok(());
    }
    if (f.nx && old.is_some()) || (f.xx && old.is_none()) {
        return Ok(());
    }
    let new = match (f.incr, old) {
        (true, Some(old)) => old + s,
        _ => s,
    };
    if new.is_nan() {
        // Redis refuses an increment that makes NaN (`inf` plus `-inf`) and propagates nothing.
        return Err(Inexact);
    }
    if let Some(old) = old {
        if (f.gt && new <= old) || (f.lt && new >= old) {
            return Ok(());
        }
    }
    w.insert(member, new, events);
    Ok(())
}

/// `ZREM key member …`.
pub(super) fn zrem(applying: &mut Applying<'_>, args: &[&[u8]]) {
    applying.update(args[1], Kind::Zset, false, |window, events| {
        let w = zset(window)?;
        for member in &args[2..] {
            w.remove(member, events);
        }
        Ok(())
    });
}

/// `ZREMRANGEBYSCORE key min max`: exact on the window; unseen members are all lower anyway.
pub(super) fn zremrangebyscore(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let (Some(low), Some(high)) = (
        args.get(2).and_then(|a| score_bound(a)),
        args.get(3).and_then(|a| score_bound(a)),
    ) else {
        return applying.bad_arguments("ZREMRANGEBYSCORE", &args[1..2]);
    };
    applying.update(args[1], Kind::Zset, false, |window, events| {
        let (low, high) = (low.as_ref(), high.as_ref());
        zset(window)?.remove_where(|_, _, s| within(&s, low, high), events);
        Ok(())
    });
}

/// `ZREMRANGEBYLEX key min max`: exact on a complete window whose members all have one score (then lexical order
/// is the set's order); otherwise Redis's result depends on how it walks the set, and the window is topped up.
pub(super) fn zremrangebylex(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let (Some(min), Some(max)) = (
        args.get(2).and_then(|a| LexBound::parse(a)),
        args.get(3).and_then(|a| LexBound::parse(a)),
    ) else {
        return applying.bad_arguments("ZREMRANGEBYLEX", &args[1..2]);
    };
    applying.update(args[1], Kind::Zset, false, |window, events| {
        let w = zset(window)?;
        let one_score = {
            let mut scores = w.newest_first().map(|(_, score)| score);
            let first = scores.next();
            scores.all(|score| Some(score) == first)
        };
        if !(w.complete() && one_score) {
            return Err(Inexact);
        }
        w.remove_where(|_, m, _| within_lex(m, min, max), events);
        Ok(())
    });
}

/// `ZREMRANGEBYRANK key start stop`. Ranks count from the lowest member; the window knows only the top, so
/// without the set's size a rank is exact only when negative (counted from the top) or 0 (the very bottom).
pub(super) fn zremrangebyrank(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let (Some(start), Some(stop)) = (
        args.get(2).and_then(|a| int(a)),
        args.get(3).and_then(|a| int(a)),
    ) else {
        return applying.bad_arguments("ZREMRANGEBYRANK", &args[1..2]);
    };
    applying.update(args[1], Kind::Zset, false, |window, events| {
        let w = zset(window)?;
        let len = w.len() as i64;
        // The doomed members as ranks from the top (0 = highest): `top_low..=top_high`.
        let (top_low, top_high) = if w.complete() {
            let s = if start < 0 { len + start } else { start }.max(0);
            let e = if stop < 0 { len + stop } else { stop }.min(len - 1);
            if s > e {
                return Ok(());
            }
            (len - 1 - e, len - 1 - s)
        } else {
            let Some(top_low) = (stop < 0).then(|| -stop - 1) else {
                return Err(Inexact);
            };
            let top_high = match start {
                s if s < 0 => -s - 1,
                0 => i64::MAX,
                _ if top_low >= len => return Ok(()),
                _ => return Err(Inexact),
            };
            (top_low, top_high)
        };
        w.remove_where(
            |rank, _, _| (top_low..=top_high).contains(&(rank as i64)),
            events,
        );
        Ok(())
    });
}

/// `ZPOPMIN`/`ZPOPMAX key [count]` (how Redis 7.0 propagates `BZPOP*` and `ZMPOP` too).
pub(super) fn zpop(applying: &mut Applying<'_>, args: &[&[u8]], max: bool) {
    let count = match args.get(2) {
        Some(c) => match int(c) {
            // Past `usize` (on wasm32, 4 Gi), more than any window holds: every member goes.
            Some(c) if c >= 0 => usize::try_from(c).unwrap_or(usize::MAX),
            _ => return applying.bad_arguments("ZPOPMIN/ZPOPMAX", &args[1..2]),
        },
        None => 1,
    };
    applying.update(args[1], Kind::Zset, false, |window, events| {
        let w = zset(window)?;
        if max {
            w.pop(count, true, events);
        } else if w.complete() {
            w.pop(count, false, events);
        } else {
            // The lowest members are below the window; whether the pops reach it is unknown.
            return Err(Inexact);
        }
        Ok(())
    });
}
