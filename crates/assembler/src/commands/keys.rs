//! Commands on keys of any type: deletion, expiry, renaming, moving and copying between databases, flushes,
//! `SWAPDB` and `SELECT`.

use super::args::{db_index, int, is, parse_ascii};
use crate::diagnostics::Problem;
use crate::keyspace::Applying;
use replicast_protocol::quote::quoted_lossy;
use replicast_protocol::text;

/// `SELECT db`. Redis never propagates one it cannot read; if one came, the database of what follows would be
/// unknown, so nothing of the shard's keys is known until a full snapshot (as after `SWAPDB`), and what follows is
/// taken as the watched database's, whose windows then stay stale until that snapshot.
pub(super) fn select(applying: &mut Applying<'_>, args: &[&[u8]]) {
    match args.get(1).and_then(|d| db_index(d)) {
        Some(db) => *applying.selected_db = Some(db),
        None => {
            applying.problem(
                Problem::BadArguments,
                text!("SELECT: a database Redis would not select; every window waits for a full snapshot"),
            );
            *applying.selected_db = Some(applying.keyspace.watch.db);
            applying.clear(false);
        }
    }
}

/// `SWAPDB a b`: if the watched database is one of them, the state of every key of the shard (all of them, with
/// one Redis) is unknown until a full snapshot. (Redis Cluster has only database 0 and refuses `SWAPDB`.)
pub(super) fn swapdb(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let (Some(a), Some(b)) = (
        args.get(1).and_then(|d| db_index(d)),
        args.get(2).and_then(|d| db_index(d)),
    ) else {
        // Which databases were swapped is not known: the watched one may be either.
        applying.problem(
            Problem::BadArguments,
            text!("SWAPDB: databases Redis would not swap; every window waits for a full snapshot"),
        );
        return applying.clear(false);
    };
    if a != b && (a == applying.keyspace.watch.db || b == applying.keyspace.watch.db) {
        applying.clear(false);
    }
}

/// `DEL`/`UNLINK key …` (and `GETDEL key`, should it arrive unrewritten).
pub(super) fn del(applying: &mut Applying<'_>, args: &[&[u8]]) {
    for key in &args[1..] {
        applying.drop_key(key);
    }
}

/// `PEXPIREAT key ms [NX|XX|GT|LT]` (how Redis propagates every expiry), or `EXPIREAT key s`.
pub(super) fn expire_at(applying: &mut Applying<'_>, args: &[&[u8]], seconds: bool) {
    let at = args
        .get(2)
        .and_then(|t| int(t))
        .and_then(|t| u64::try_from(t).ok())
        .and_then(|t| {
            if seconds {
                t.checked_mul(1000)
            } else {
                Some(t)
            }
        });
    match at {
        Some(at) => applying.set_expiry(args[1], Some(at)),
        None => applying.bad_arguments("PEXPIREAT", &args[1..2]),
    }
}

/// `RENAME src dst` / `RENAMENX`: the window moves with the value.
pub(super) fn rename(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let (Some(&src), Some(&dst)) = (args.get(1), args.get(2)) else {
        return applying.bad_arguments("RENAME", &args[1..]);
    };
    if src == dst {
        return;
    }
    let src_known = applying.keyspace.is_watched(src) && applying.known(src);
    match applying.take(src) {
        Some(window) => applying.put(dst, window),
        // `src`'s window has another home shard: it stays (stale), and what `dst` holds now is unknown.
        None if applying.keyspace.windows.contains_key(src) => applying.mark_unknown(dst),
        // A watched key known to have no window holds a type without windows (a set): so does `dst` now.
        None if src_known => applying.drop_key(dst),
        None => applying.mark_unknown(dst),
    }
    applying.drop_key(src);
}

/// `MOVE key db`: a key leaves the watched database, or arrives in it with a value the stream does not show.
/// Redis refuses a move into the database the key is in, so one into the watched database came from another,
/// whether or not the stream's `SELECT` is known.
pub(super) fn move_key(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let (Some(&key), Some(db)) = (args.get(1), args.get(2).and_then(|d| parse_ascii::<u32>(d)))
    else {
        return applying.bad_arguments("MOVE", args.get(1..2).unwrap_or_default());
    };
    if *applying.selected_db == Some(db) {
        return;
    }
    if db == applying.keyspace.watch.db {
        applying.mark_unknown(key);
    } else if applying.in_watched_db() {
        applying.drop_key(key);
    }
}

/// `COPY src dst [DB db] [REPLACE]`. Into the watched database from a database not known (no `SELECT` since the
/// join, and a `DB` naming the watched one), `dst`'s value is not known either.
pub(super) fn copy(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let (Some(&src), Some(&dst)) = (args.get(1), args.get(2)) else {
        return applying.bad_arguments("COPY", &args[1..]);
    };
    let mut target = None;
    let mut rest = args[3..].iter();
    while let Some(arg) = rest.next() {
        if is(arg, "db") {
            match rest.next().and_then(|d| parse_ascii::<u32>(d)) {
                Some(d) => target = Some(d),
                None => return applying.bad_arguments("COPY", &args[1..3]),
            }
        }
    }
    // Without `DB`, the copy stays in the database it was written in: the watched one, when the relay sent it.
    if target.is_some_and(|db| db != applying.keyspace.watch.db)
        || !applying.keyspace.is_watched(dst)
    {
        return;
    }
    let same_db = match *applying.selected_db {
        Some(db) => db == applying.keyspace.watch.db,
        None => target.is_none(),
    };
    let shard = applying.origin.shard;
    let copied = same_db
        .then(|| applying.keyspace.windows.get(src).cloned())
        .flatten();
    match copied {
        Some(window) if window.shard == shard => applying.put(dst, window),
        // A window of another home shard may be behind this shard's stream: `dst`'s value is unknown.
        Some(_) => applying.mark_unknown(dst),
        None if same_db && applying.keyspace.is_watched(src) && applying.known(src) => {
            applying.drop_key(dst)
        }
        None => applying.mark_unknown(dst),
    }
}

/// `SORT … STORE dst`, `GEORADIUS … STORE|STOREDIST dst`: the destination's value is computed by Redis.
pub(super) fn store_option(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let mut rest = args[2..].iter();
    while let Some(arg) = rest.next() {
        if is(arg, "store") || is(arg, "storedist") {
            if let Some(dst) = rest.next() {
                applying.mark_unknown(dst);
            }
        }
    }
}

/// A command of a type without windows (sets) on `keys`: one with a window is of another type for Redis, which
/// would have refused the command, so that window is wrong and topped up.
pub(super) fn untracked(applying: &mut Applying<'_>, keys: &[&[u8]], kind: &str) {
    for &key in keys {
        if let Some(window) = applying.keyspace.windows.get(key) {
            let message = format!(
                "a {kind} command on {}, a {}: topped up",
                quoted_lossy(key),
                window.kind().name()
            );
            applying.inexact(Problem::WrongType, message, &[key]);
        }
    }
}

/// A command that changed `keys` in a way only Redis computes (a HyperLogLog's cached count): each watched one
/// becomes stale and is topped up.
pub(super) fn stale(applying: &mut Applying<'_>, keys: &[&[u8]]) {
    for key in keys {
        applying.mark_stale(key);
    }
}

/// A command that Redis 7.0 would have rewritten (a blocking or multi-key pop): which key it changed and how is
/// not known, so every window it names is stale.
pub(super) fn stale_named(applying: &mut Applying<'_>, args: &[&[u8]]) {
    for arg in args {
        if applying.keyspace.windows.contains_key(*arg) {
            applying.mark_stale(arg);
        }
    }
}
