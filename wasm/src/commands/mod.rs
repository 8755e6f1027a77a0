//! Applying one replication-stream command to the windows, one file per family. Each command is applied as
//! Redis 7.0 propagates it to replicas: `EXPIRE` arrives as `PEXPIREAT`, `SET … EX` as `SET … PXAT`,
//! `INCRBYFLOAT` and `HINCRBYFLOAT` as `SET`/`HSET` of the result, `BLPOP` as `LPOP`, `BLMOVE` as `LMOVE`,
//! `GETDEL` as `DEL`, `XADD … *` with its id, approximate trims (`~`) as exact ones with the resulting threshold.
//! The original forms are still understood where they can be followed.
//!
//! - `keys.rs`: any type: `DEL`, expiry, `RENAME`, `MOVE`, `COPY`, flushes, `SWAPDB`, `SELECT`.
//! - `zset.rs`, `stream.rs`, `list.rs`, `hash.rs`, `string.rs`: one type each.
//! - `args.rs`: reading numbers, scores and ranges out of arguments.

mod args;
mod hash;
mod keys;
mod list;
mod stream;
mod string;
mod zset;

use crate::diagnostics::Problem;
use crate::keyspace::Keyspace;
use crate::observe::WindowObserver;

/// Longest command name looked up (longer ones are unknown).
const MAX_NAME: usize = 24;

/// Applies one command (`args[0]` its name) that ends at stream offset `offset`.
pub(crate) fn apply(
    ks: &mut Keyspace,
    observer: &mut dyn WindowObserver,
    args: &[&[u8]],
    offset: u64,
) {
    let Some(name) = args.first() else {
        return;
    };
    // The hottest command first, without the name buffer or the match below (whose comparisons are library
    // calls, and slow ones, in wasm).
    if name.len() == 4 && name.eq_ignore_ascii_case(b"zadd") && args.len() >= 2 {
        ks.offset = offset;
        if ks.in_watched_db() {
            zset::zadd(ks, observer, args);
        }
        return;
    }
    let mut buf = [0u8; MAX_NAME];
    let Some(lower) = buf.get_mut(..name.len()) else {
        ks.offset = offset;
        ks.problem(Problem::UnknownCommand, "a command name over 24 bytes");
        return;
    };
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    let name: &[u8] = lower;
    ks.offset = offset;

    // Commands that matter whatever the selected database.
    match name {
        b"select" => return keys::select(ks, args),
        b"flushall" => return ks.clear(observer, true),
        b"swapdb" => return keys::swapdb(ks, observer, args),
        b"move" => return keys::move_key(ks, observer, args),
        b"copy" => return keys::copy(ks, observer, args),
        b"ping" | b"replconf" | b"multi" | b"exec" | b"publish" | b"spublish" => return,
        _ => {}
    }
    if !ks.in_watched_db() {
        return;
    }
    if args.len() < 2 {
        if name == b"flushdb" {
            ks.clear(observer, true);
        } else {
            ks.problem(
                Problem::UnknownCommand,
                format!("{} without a key", String::from_utf8_lossy(args[0])),
            );
        }
        return;
    }
    match name {
        b"zadd" => zset::zadd(ks, observer, args),
        b"zincrby" => zset::zincrby(ks, observer, args),
        b"zrem" => zset::zrem(ks, observer, args),
        b"zremrangebyscore" => zset::zremrangebyscore(ks, observer, args),
        b"zremrangebylex" => zset::zremrangebylex(ks, observer, args),
        b"zremrangebyrank" => zset::zremrangebyrank(ks, observer, args),
        b"zpopmin" => zset::zpop(ks, observer, args, false),
        b"zpopmax" => zset::zpop(ks, observer, args, true),
        b"zunionstore" | b"zinterstore" | b"zdiffstore" | b"zrangestore" | b"geosearchstore" => {
            ks.mark_unknown(observer, args[1])
        }
        b"geoadd" => ks.mark_stale(observer, args[1]),

        b"xadd" => stream::xadd(ks, observer, args),
        b"xdel" => stream::xdel(ks, observer, args),
        b"xtrim" => stream::xtrim(ks, observer, args),
        b"xsetid" | b"xgroup" | b"xack" | b"xclaim" | b"xautoclaim" | b"xreadgroup" => {}

        b"rpush" | b"rpushx" => list::push(ks, observer, args, false),
        b"lpush" | b"lpushx" => list::push(ks, observer, args, true),
        b"lpop" => list::pop(ks, observer, args, true),
        b"rpop" => list::pop(ks, observer, args, false),
        b"ltrim" => list::ltrim(ks, observer, args),
        b"lset" => list::lset(ks, observer, args),
        b"lrem" => list::lrem(ks, observer, args),
        b"linsert" => list::linsert(ks, observer, args),
        b"lmove" | b"blmove" => list::lmove(ks, observer, args, false),
        b"rpoplpush" | b"brpoplpush" => list::lmove(ks, observer, args, true),

        b"hset" | b"hmset" => hash::hset(ks, observer, args, false),
        b"hsetnx" => hash::hset(ks, observer, args, true),
        b"hdel" => hash::hdel(ks, observer, args),
        b"hincrby" => hash::hincrby(ks, observer, args),
        b"hincrbyfloat" => ks.mark_stale(observer, args[1]),

        b"set" => string::set(ks, observer, args),
        b"setnx" | b"getset" => string::set_plain(ks, observer, args[1], args.get(2).copied()),
        b"setex" | b"psetex" => string::set_plain(ks, observer, args[1], args.get(3).copied()),
        b"mset" | b"msetnx" => string::mset(ks, observer, args),
        b"incr" | b"decr" | b"incrby" | b"decrby" => string::incr(ks, observer, args, name),
        b"append" => string::append(ks, observer, args),
        b"setrange" => string::setrange(ks, observer, args),
        b"incrbyfloat" | b"setbit" | b"bitfield" | b"pfadd" => ks.mark_stale(observer, args[1]),
        b"pfmerge" | b"restore" | b"restore-asking" => ks.mark_unknown(observer, args[1]),
        b"bitop" => {
            if let Some(dest) = args.get(2) {
                ks.mark_unknown(observer, dest)
            }
        }

        b"del" | b"unlink" | b"getdel" => keys::del(ks, observer, args),
        b"pexpireat" | b"expireat" => keys::expire_at(ks, args, name == b"expireat"),
        b"expire" | b"pexpire" => {}
        b"persist" => ks.set_expiry(args[1], None),
        b"rename" | b"renamenx" => keys::rename(ks, observer, args),
        b"flushdb" => ks.clear(observer, true),
        b"sort" | b"sort_ro" | b"georadius" | b"georadiusbymember" => {
            keys::store_option(ks, observer, args)
        }
        b"sadd" | b"srem" | b"spop" | b"smove" => keys::untracked(ks, args[1], "set"),
        b"sinterstore" | b"sunionstore" | b"sdiffstore" => ks.drop_key(observer, args[1]),
        b"zmpop" | b"bzmpop" | b"lmpop" | b"blmpop" | b"blpop" | b"brpop" | b"bzpopmin"
        | b"bzpopmax" => keys::stale_named(ks, observer, &args[1..]),
        _ => ks.problem(
            Problem::UnknownCommand,
            format!("unknown command {}", String::from_utf8_lossy(args[0])),
        ),
    }
}
