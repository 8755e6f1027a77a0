//! Applying one replication-stream command to the windows, one file per family. Each command is applied as
//! Redis 7.0 propagates it to replicas: `EXPIRE` arrives as `PEXPIREAT`, `SET … EX` as `SET … PXAT`,
//! `INCRBYFLOAT` and `HINCRBYFLOAT` as `SET`/`HSET` of the result, `BLPOP` as `LPOP`, `BLMOVE` as `LMOVE`,
//! `GETDEL` as `DEL`, `XADD … *` with its id, approximate trims (`~`) as exact ones with the resulting threshold.
//! The original forms are still understood where they can be followed.
//!
//! - `keys.rs`: any type: `DEL`, expiry, `RENAME`, `MOVE`, `COPY`, flushes, `SWAPDB`, `SELECT`.
//! - `zset.rs`, `stream.rs`, `list.rs`, `hash.rs`, `string.rs`: one type each.
//! - `args.rs`: reading numbers, scores and ranges out of arguments; `numbers.rs`: reading numbers exactly as
//!   Redis does (C's `strtod`, `string2ll`).
//!
//! A command the assembler cannot apply exactly, whatever the reason (a command it does not know, arguments Redis
//! would not have propagated, a wrong type, a result that depends on what the window cannot see), never leaves a
//! window that claims to be exact: the windows of the keys it names become stale and their top-ups are
//! requested. The problem is counted in the diagnostics too.

mod args;
pub use args::db_index;
mod hash;
mod keys;
mod list;
pub(crate) mod numbers;
mod stream;
mod string;
mod zset;

use crate::diagnostics::Problem;
use crate::keyspace::Applying;

/// Longest command name looked up (longer ones are unknown).
const MAX_NAME: usize = 24;

/// Declares a group of commands: the list of their names (lowercase) and a function applying one of them by
/// name, returning `false` for a name not in the group. One declaration for both, so that the list read by the
/// differential test (`known_commands`) is always what the assembler applies.
macro_rules! command_group {
    (
        $(#[$meta:meta])*
        $names:ident, fn $apply:ident($applying:ident, $args:ident) {
            $( $($name:literal)|+ => $effect:expr, )*
        }
    ) => {
        const $names: &[&[u8]] = &[$($($name,)+)*];

        $(#[$meta])*
        fn $apply(
            $applying: &mut Applying<'_>,
            name: &[u8],
            $args: &[&[u8]],
        ) -> bool {
            match name {
                $( $($name)|+ => $effect, )*
                _ => return false,
            }
            true
        }
    };
}

command_group! {
    /// Commands that matter whatever the selected database, or change no window.
    ANY_DB, fn apply_any_db(applying, args) {
        b"select" => keys::select(applying, args),
        b"flushall" => applying.clear(true),
        b"swapdb" => keys::swapdb(applying, args),
        b"move" => keys::move_key(applying, args),
        b"copy" => keys::copy(applying, args),
        // Libraries of functions are not keys; their calls arrive as the writes they made.
        b"ping" | b"replconf" | b"multi" | b"exec" | b"publish" | b"spublish" | b"function" => {},
    }
}

command_group! {
    /// Commands of the watched database whose arguments need not name a key.
    WATCHED_DB_KEYLESS, fn apply_keyless(applying, _args) {
        b"flushdb" => applying.clear(true),
    }
}

command_group! {
    /// Commands of the watched database, with at least one argument (`args[1]`, a key for most).
    WATCHED_DB, fn apply_keyed(applying, args) {
        b"zadd" => zset::zadd(applying, args),
        b"zincrby" => zset::zincrby(applying, args),
        b"zrem" => zset::zrem(applying, args),
        b"zremrangebyscore" => zset::zremrangebyscore(applying, args),
        b"zremrangebylex" => zset::zremrangebylex(applying, args),
        b"zremrangebyrank" => zset::zremrangebyrank(applying, args),
        b"zpopmin" => zset::zpop(applying, args, false),
        b"zpopmax" => zset::zpop(applying, args, true),
        b"zunionstore" | b"zinterstore" | b"zdiffstore" | b"zrangestore" | b"geosearchstore" => {
            applying.mark_unknown(args[1])
        },
        b"geoadd" => applying.mark_stale(args[1]),

        b"xadd" => stream::xadd(applying, args),
        b"xdel" => stream::xdel(applying, args),
        b"xtrim" => stream::xtrim(applying, args),
        b"xgroup" => stream::xgroup(applying, args),
        b"xsetid" | b"xack" | b"xclaim" | b"xautoclaim" | b"xreadgroup" => {},

        b"rpush" | b"rpushx" => list::push(applying, args, false),
        b"lpush" | b"lpushx" => list::push(applying, args, true),
        b"lpop" => list::pop(applying, args, true),
        b"rpop" => list::pop(applying, args, false),
        b"ltrim" => list::ltrim(applying, args),
        b"lset" => list::lset(applying, args),
        b"lrem" => list::lrem(applying, args),
        b"linsert" => list::linsert(applying, args),
        b"lmove" | b"blmove" => list::lmove(applying, args, false),
        b"rpoplpush" | b"brpoplpush" => list::lmove(applying, args, true),

        b"hset" | b"hmset" => hash::hset(applying, args, false),
        b"hsetnx" => hash::hset(applying, args, true),
        b"hdel" => hash::hdel(applying, args),
        b"hincrby" => hash::hincrby(applying, args),
        b"hincrbyfloat" => applying.mark_stale(args[1]),

        b"set" => string::set(applying, args),
        b"setnx" | b"getset" => string::set_plain(applying, args[1], args.get(2).copied()),
        b"setex" | b"psetex" => string::set_plain(applying, args[1], args.get(3).copied()),
        b"mset" | b"msetnx" => string::mset(applying, args),
        b"incr" => string::incr(applying, args, b"incr"),
        b"decr" => string::incr(applying, args, b"decr"),
        b"incrby" => string::incr(applying, args, b"incrby"),
        b"decrby" => string::incr(applying, args, b"decrby"),
        b"append" => string::append(applying, args),
        b"setrange" => string::setrange(applying, args),
        // A HyperLogLog's or a bitmap's new bytes are Redis's to compute; PFCOUNT rewrites the cached
        // cardinality inside the HyperLogLog string (Redis propagates it for that).
        b"incrbyfloat" | b"setbit" | b"bitfield" | b"pfadd" => applying.mark_stale(args[1]),
        b"pfcount" => keys::stale(applying, &args[1..]),
        b"pfdebug" => keys::stale(applying, &args[2..]),
        b"pfmerge" | b"restore" | b"restore-asking" => applying.mark_unknown(args[1]),
        b"bitop" => {
            if let Some(dest) = args.get(2) {
                applying.mark_unknown(dest)
            }
        },

        b"del" | b"unlink" | b"getdel" => keys::del(applying, args),
        b"pexpireat" => keys::expire_at(applying, args, false),
        b"expireat" => keys::expire_at(applying, args, true),
        // Relative to a clock the stream does not carry; Redis 7.0 propagates PEXPIREAT instead.
        b"expire" | b"pexpire" => {},
        b"persist" => applying.set_expiry(args[1], None),
        b"rename" | b"renamenx" => keys::rename(applying, args),
        b"sort" | b"sort_ro" | b"georadius" | b"georadiusbymember" => {
            keys::store_option(applying, args)
        },
        b"sadd" | b"srem" | b"spop" => keys::untracked(applying, &args[1..2], "set"),
        b"smove" => keys::untracked(applying, &args[1..args.len().min(3)], "set"),
        b"sinterstore" | b"sunionstore" | b"sdiffstore" => applying.drop_key(args[1]),
        b"zmpop" | b"bzmpop" | b"lmpop" | b"blmpop" | b"blpop" | b"brpop" | b"bzpopmin"
        | b"bzpopmax" => keys::stale_named(applying, &args[1..]),
    }
}

/// Every command the assembler knows, by lowercase name: those it applies to the windows (exactly, or by
/// asking for a top-up of what it cannot compute), and those it knows change no window. Any other command
/// makes the windows of the watched keys it names stale, each with a top-up requested.
pub fn known_commands() -> impl Iterator<Item = &'static str> {
    [ANY_DB, WATCHED_DB_KEYLESS, WATCHED_DB]
        .into_iter()
        .flatten()
        .filter_map(|name| std::str::from_utf8(name).ok())
}

/// Applies one command (`args[0]` its name), from where `applying` says.
pub(crate) fn apply(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let Some(name) = args.first() else {
        return;
    };
    // The hottest command first, without the name buffer or the match below (whose comparisons are library
    // calls, and slow ones, in wasm).
    if is_zadd(name) && args.len() >= 2 {
        if applying.in_watched_db() && !zset::plain_zadd(applying, args) {
            zset::zadd(applying, args);
        }
        return;
    }
    let mut buf = [0u8; MAX_NAME];
    let Some(lower) = buf.get_mut(..name.len()) else {
        if applying.in_watched_db() {
            unknown(applying, args);
        }
        return;
    };
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    let name: &[u8] = lower;

    if apply_any_db(applying, name, args)
        || !applying.in_watched_db()
        || apply_keyless(applying, name, args)
    {
        return;
    }
    if args.len() < 2 || !apply_keyed(applying, name, args) {
        unknown(applying, args);
    }
}

/// Whether `name` is `ZADD` in any case, compared as one word: a byte ORed with 0x20 is a lowercase letter only
/// if it was that letter in either case.
#[inline(always)]
fn is_zadd(name: &[u8]) -> bool {
    name.first_chunk::<4>().is_some_and(|word| {
        name.len() == 4 && u32::from_le_bytes(*word) | 0x2020_2020 == u32::from_le_bytes(*b"zadd")
    })
}

/// A command the assembler does not know (in the watched database): which of its arguments are keys, and what
/// it did to them, is not known, so every watched key it names becomes stale and is topped up.
fn unknown(applying: &mut Applying<'_>, args: &[&[u8]]) {
    let name = String::from_utf8_lossy(args[0]);
    let message = match args.len() {
        1 => format!("unknown command {name} (without arguments: no key to top up)"),
        _ => format!("unknown command {name}: the watched keys it names are topped up"),
    };
    applying.inexact(Problem::UnknownCommand, message, &args[1..]);
}

#[cfg(test)]
mod tests {
    use super::is_zadd;

    #[test]
    fn zadd_is_told_by_one_word_in_any_case_and_nothing_else() {
        for name in ["ZADD", "zadd", "zAdD", "Zadd"] {
            assert!(is_zadd(name.as_bytes()), "{name}");
        }
        // Bytes that OR 0x20 into another letter's neighbours, shorter and longer names.
        for name in [
            &b"ZAD"[..],
            b"ZADDX",
            b"zadd\0",
            b"Z@DD",
            b"ZA\x04D",
            b"zadD ",
            b"",
            b"\x5a\x01\x44\x44",
        ] {
            assert!(!is_zadd(name), "{name:?}");
        }
    }
}
