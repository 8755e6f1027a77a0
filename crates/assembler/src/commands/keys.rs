//! Commands on keys of any type: deletion, expiry, renaming, moving and copying between databases, flushes,
//! `SWAPDB` and `SELECT`.

use super::args::{db_index, int, is, parse_ascii};
use crate::diagnostics::Problem;
use crate::keyspace::Keyspace;
use crate::observe::WindowObserver;

/// `SELECT db`. Redis never propagates one it cannot read; if one came, the database of what follows would be
/// unknown, so nothing of the shard's keys is known until a full snapshot (as after `SWAPDB`), and what follows is
/// taken as the watched database's, whose windows then stay stale until that snapshot.
pub(super) fn select(ks: &mut Keyspace, observer: &mut dyn WindowObserver, args: &[&[u8]]) {
    match args.get(1).and_then(|d| db_index(d)) {
        Some(db) => ks.selected_db = Some(db),
        None => {
            ks.problem(
                Problem::BadArguments,
                "SELECT: a database Redis would not select; every window waits for a full snapshot",
            );
            ks.selected_db = Some(ks.watch.db);
            ks.clear(observer, false);
        }
    }
}

/// `SWAPDB a b`: if the watched database is one of them, the state of every key of the shard (all of them, with
/// one Redis) is unknown until a full snapshot. (Redis Cluster has only database 0 and refuses `SWAPDB`.)
pub(super) fn swapdb(ks: &mut Keyspace, observer: &mut dyn WindowObserver, args: &[&[u8]]) {
    let (Some(a), Some(b)) = (
        args.get(1).and_then(|d| db_index(d)),
        args.get(2).and_then(|d| db_index(d)),
    ) else {
        // Which databases were swapped is not known: the watched one may be either.
        ks.problem(
            Problem::BadArguments,
            "SWAPDB: databases Redis would not swap; every window waits for a full snapshot",
        );
        return ks.clear(observer, false);
    };
    if a != b && (a == ks.watch.db || b == ks.watch.db) {
        ks.clear(observer, false);
    }
}

/// `DEL`/`UNLINK key …` (and `GETDEL key`, should it arrive unrewritten).
pub(super) fn del(ks: &mut Keyspace, observer: &mut dyn WindowObserver, args: &[&[u8]]) {
    for key in &args[1..] {
        ks.drop_key(observer, key);
    }
}

/// `PEXPIREAT key ms [NX|XX|GT|LT]` (how Redis propagates every expiry), or `EXPIREAT key s`.
pub(super) fn expire_at(
    ks: &mut Keyspace,
    observer: &mut dyn WindowObserver,
    args: &[&[u8]],
    seconds: bool,
) {
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
        Some(at) => ks.set_expiry(args[1], Some(at)),
        None => ks.bad_arguments(observer, "PEXPIREAT", &args[1..2]),
    }
}

/// `RENAME src dst` / `RENAMENX`: the window moves with the value.
pub(super) fn rename(ks: &mut Keyspace, observer: &mut dyn WindowObserver, args: &[&[u8]]) {
    let (Some(&src), Some(&dst)) = (args.get(1), args.get(2)) else {
        return ks.bad_arguments(observer, "RENAME", &args[1..]);
    };
    if src == dst {
        return;
    }
    let src_known = ks.is_watched(src) && ks.known(src);
    match ks.take(observer, src) {
        Some(window) => ks.put(observer, dst, window),
        // `src`'s window has another home shard: it stays (stale), and what `dst` holds now is unknown.
        None if ks.windows.contains_key(src) => ks.mark_unknown(observer, dst),
        // A watched key known to have no window holds a type without windows (a set): so does `dst` now.
        None if src_known => ks.drop_key(observer, dst),
        None => ks.mark_unknown(observer, dst),
    }
    ks.drop_key(observer, src);
}

/// `MOVE key db`: a key leaves the watched database, or arrives in it with a value the stream does not show.
/// Redis refuses a move into the database the key is in, so one into the watched database came from another,
/// whether or not the stream's `SELECT` is known.
pub(super) fn move_key(ks: &mut Keyspace, observer: &mut dyn WindowObserver, args: &[&[u8]]) {
    let (Some(&key), Some(db)) = (args.get(1), args.get(2).and_then(|d| parse_ascii::<u32>(d)))
    else {
        return ks.bad_arguments(observer, "MOVE", args.get(1..2).unwrap_or_default());
    };
    if ks.selected_db == Some(db) {
        return;
    }
    if db == ks.watch.db {
        ks.mark_unknown(observer, key);
    } else if ks.in_watched_db() {
        ks.drop_key(observer, key);
    }
}

/// `COPY src dst [DB db] [REPLACE]`. Into the watched database from a database not known (no `SELECT` since the
/// join, and a `DB` naming the watched one), `dst`'s value is not known either.
pub(super) fn copy(ks: &mut Keyspace, observer: &mut dyn WindowObserver, args: &[&[u8]]) {
    let (Some(&src), Some(&dst)) = (args.get(1), args.get(2)) else {
        return ks.bad_arguments(observer, "COPY", &args[1..]);
    };
    let mut target = None;
    let mut rest = args[3..].iter();
    while let Some(arg) = rest.next() {
        if is(arg, "db") {
            match rest.next().and_then(|d| parse_ascii::<u32>(d)) {
                Some(d) => target = Some(d),
                None => return ks.bad_arguments(observer, "COPY", &args[1..3]),
            }
        }
    }
    // Without `DB`, the copy stays in the database it was written in: the watched one, when the relay sent it.
    if target.is_some_and(|db| db != ks.watch.db) || !ks.is_watched(dst) {
        return;
    }
    let same_db = match ks.selected_db {
        Some(db) => db == ks.watch.db,
        None => target.is_none(),
    };
    let shard = ks.shard;
    let copied = same_db.then(|| ks.windows.get(src).cloned()).flatten();
    match copied {
        Some(window) if window.shard == shard => ks.put(observer, dst, window),
        // A window of another home shard may be behind this shard's stream: `dst`'s value is unknown.
        Some(_) => ks.mark_unknown(observer, dst),
        None if same_db && ks.is_watched(src) && ks.known(src) => ks.drop_key(observer, dst),
        None => ks.mark_unknown(observer, dst),
    }
}

/// `SORT … STORE dst`, `GEORADIUS … STORE|STOREDIST dst`: the destination's value is computed by Redis.
pub(super) fn store_option(ks: &mut Keyspace, observer: &mut dyn WindowObserver, args: &[&[u8]]) {
    let mut rest = args[2..].iter();
    while let Some(arg) = rest.next() {
        if is(arg, "store") || is(arg, "storedist") {
            if let Some(dst) = rest.next() {
                ks.mark_unknown(observer, dst);
            }
        }
    }
}

/// A command of a type without windows (sets) on `keys`: one with a window is of another type for Redis, which
/// would have refused the command, so that window is wrong and topped up.
pub(super) fn untracked(
    ks: &mut Keyspace,
    observer: &mut dyn WindowObserver,
    keys: &[&[u8]],
    kind: &str,
) {
    for &key in keys {
        if let Some(window) = ks.windows.get(key) {
            let message = format!(
                "a {kind} command on {:?}, a {}: topped up",
                String::from_utf8_lossy(key),
                window.kind().name()
            );
            ks.inexact(observer, Problem::WrongType, message, &[key]);
        }
    }
}

/// A command that changed `keys` in a way only Redis computes (a HyperLogLog's cached count): each watched one
/// becomes stale and is topped up.
pub(super) fn stale(ks: &mut Keyspace, observer: &mut dyn WindowObserver, keys: &[&[u8]]) {
    for key in keys {
        ks.mark_stale(observer, key);
    }
}

/// A command that Redis 7.0 would have rewritten (a blocking or multi-key pop): which key it changed and how is
/// not known, so every window it names is stale.
pub(super) fn stale_named(ks: &mut Keyspace, observer: &mut dyn WindowObserver, args: &[&[u8]]) {
    for arg in args {
        if ks.windows.contains_key(*arg) {
            ks.mark_stale(observer, arg);
        }
    }
}
