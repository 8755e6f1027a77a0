//! One generator for every command the assembler knows (`replicast_assembler::known_commands`; the differential test
//! fails if one is missing), plus scripts and reads that expire keys lazily: each draws its arguments from the
//! [`Workload`]'s pools, and has a weight among the random draws.

use crate::cmd;
use crate::workload::{command, now_ms, Step, Workload};

/// Commands the assembler knows that no generator sends by name, and how the workload has them in the stream.
pub const ALONG_WITH: &[(&str, &str)] = &[
    (
        "ping",
        "Redis pings its replicas every repl-ping-replica-period (1 s for this test)",
    ),
    (
        "exec",
        "every MULTI block ends with it (multi, select, eval, function)",
    ),
];

/// `ZREMRANGEBYSCORE` bounds as `zslParseRange` accepts them (an empty one is 0, spaces lead, overflow is inf).
const SCORE_BOUNDS: &[&str] = &[
    "-inf", "+inf", "0", "(0", "5", "(5", "0x10", " 3", "(1e400", "-1e400", "2.5", "(-0", "",
    "1e-400", "(inf", "10",
];

/// `ZREMRANGEBYLEX` bounds: `-`, `+`, members with `[` or `(`, and the odd ones (`[` alone).
const LEX_BOUNDS: &[&str] = &[
    "-", "+", "[m1", "(m3", "[m2", "(m5", "[m", "[", "(m10", "[n",
];

/// Integers Redis's `string2ll` reads (and, last, two it refuses: they make Redis answer with an error).
const INCREMENTS: &[&str] = &["1", "-1", "2", "10", "-7", "0", "100", "+5", "007"];

const FLOAT_INCREMENTS: &[&str] = &["0.5", "-1.5", "0x10", "1e2", "2", "-0", "3.25"];

type Generate = fn(&mut Workload) -> Step;

/// Every generator: the command (or what it stands for) it produces, its weight, and how.
pub const GENERATORS: &[(&str, u32, Generate)] = &[
    // Any database, or no window.
    ("select", 80, |w| {
        let other = w.other_db();
        let back = w.db.to_string().into_bytes();
        w.db = 1 - w.db;
        let mut block = vec![cmd!(b"SELECT", other)];
        block.extend(w.write());
        w.db = 1 - w.db;
        block.push(cmd!(b"SELECT", back));
        Step::Transaction(block)
    }),
    ("flushall", 1, |w| {
        Step::Command(cmd!(b"FLUSHALL", w.rng.pick(&["SYNC", "ASYNC"])))
    }),
    ("swapdb", 1, |_| Step::Command(cmd!(b"SWAPDB", b"0", b"1"))),
    ("move", 150, |w| {
        let key = w.any_key('z');
        Step::Command(cmd!(b"MOVE", key, w.other_db()))
    }),
    ("copy", 150, |w| {
        let (src, dst) = (w.any_key('l'), w.key('l'));
        let mut c = cmd!(b"COPY", src, dst);
        if w.rng.chance(50) {
            let db = w.copy_db();
            c.extend([b"DB".to_vec(), db]);
        }
        if w.rng.chance(60) {
            c.push(b"REPLACE".to_vec());
        }
        Step::Command(c)
    }),
    // WAIT has Redis ask its replicas (the relay) where they are: REPLCONF GETACK in the stream.
    ("replconf", 20, |_| {
        Step::Command(cmd!(b"WAIT", b"1", b"20"))
    }),
    ("multi", 150, |w| {
        let mut block = Vec::new();
        for _ in 0..w.rng.between(2, 5) {
            block.extend(w.write());
        }
        Step::Transaction(block)
    }),
    ("publish", 20, |w| {
        Step::Command(cmd!(b"PUBLISH", w.key('z'), w.value()))
    }),
    ("spublish", 20, |w| {
        Step::Command(cmd!(b"SPUBLISH", w.key('z'), w.value()))
    }),
    ("function", 30, |w| {
        let library = "#!lua name=difflib\nredis.register_function('dz', function(keys, args) \
                       redis.call('ZADD', keys[1], args[1], args[2]); return redis.call('RPUSH', keys[2], args[2]) end)";
        let (z, l, score, member) = (w.key('z'), w.key('l'), w.score(), w.member());
        Step::Sequence(vec![
            cmd!(b"FUNCTION", b"LOAD", b"REPLACE", library),
            cmd!(b"FCALL", b"dz", b"2", z, l, score, member),
        ])
    }),
    ("flushdb", 1, |w| {
        Step::Command(cmd!(b"FLUSHDB", w.rng.pick(&["SYNC", "ASYNC"])))
    }),
    // Sorted sets.
    ("zadd", 600, |w| {
        let key = w.key('z');
        const FLAGS: &[&[&str]] = &[
            &[],
            &[],
            &["NX"],
            &["XX"],
            &["GT"],
            &["LT"],
            &["CH"],
            &["XX", "GT"],
            &["NX", "CH"],
            &["GT", "CH"],
            &["INCR"],
        ];
        let flags = *w.rng.pick(FLAGS);
        let mut c = cmd!(b"ZADD", key);
        c.extend(flags.iter().map(|f| f.as_bytes().to_vec()));
        let pairs = if flags.contains(&"INCR") {
            1
        } else {
            w.batch()
        };
        for _ in 0..pairs {
            c.extend([w.score(), w.member()]);
        }
        Step::Command(c)
    }),
    ("zincrby", 150, |w| {
        let key = w.key('z');
        let by = w.rng.pick(FLOAT_INCREMENTS).as_bytes().to_vec();
        Step::Command(cmd!(b"ZINCRBY", key, by, w.member()))
    }),
    ("zrem", 100, |w| {
        let key = w.key('z');
        let mut c = cmd!(b"ZREM", key);
        for _ in 0..w.rng.between(1, 3) {
            c.push(w.member());
        }
        Step::Command(c)
    }),
    ("zremrangebyscore", 60, |w| {
        let key = w.key('z');
        let (min, max) = (*w.rng.pick(SCORE_BOUNDS), *w.rng.pick(SCORE_BOUNDS));
        Step::Command(cmd!(b"ZREMRANGEBYSCORE", key, min, max))
    }),
    ("zremrangebylex", 60, |w| {
        let key = w.key('z');
        let (min, max) = (*w.rng.pick(LEX_BOUNDS), *w.rng.pick(LEX_BOUNDS));
        Step::Command(cmd!(b"ZREMRANGEBYLEX", key, min, max))
    }),
    ("zremrangebyrank", 50, |w| {
        let key = w.key('z');
        Step::Command(cmd!(
            b"ZREMRANGEBYRANK",
            key,
            w.small(-5, 5),
            w.small(-5, 5)
        ))
    }),
    ("zpopmin", 50, |w| {
        let key = w.key('z');
        Step::Command(cmd!(b"ZPOPMIN", key, w.small(1, 3)))
    }),
    ("zpopmax", 50, |w| {
        let key = w.key('z');
        Step::Command(cmd!(b"ZPOPMAX", key, w.small(1, 3)))
    }),
    ("zunionstore", 30, |w| {
        let (dst, a, b) = (w.key('z'), w.any_key('z'), w.any_key('z'));
        Step::Command(cmd!(b"ZUNIONSTORE", dst, b"2", a, b))
    }),
    ("zinterstore", 30, |w| {
        let (dst, a, b) = (w.key('z'), w.any_key('z'), w.any_key('z'));
        Step::Command(cmd!(b"ZINTERSTORE", dst, b"2", a, b, b"AGGREGATE", b"MAX"))
    }),
    ("zdiffstore", 30, |w| {
        let (dst, a, b) = (w.key('z'), w.any_key('z'), w.any_key('z'));
        Step::Command(cmd!(b"ZDIFFSTORE", dst, b"2", a, b))
    }),
    ("zrangestore", 30, |w| {
        let (dst, src) = (w.key('z'), w.any_key('z'));
        Step::Command(cmd!(b"ZRANGESTORE", dst, src, b"0", w.small(-3, 20)))
    }),
    ("geoadd", 40, |w| {
        let key = w.key('z');
        let (lon, lat) = (w.rng.between(-170, 170), w.rng.between(-80, 80));
        Step::Command(cmd!(
            b"GEOADD",
            key,
            lon.to_string(),
            lat.to_string(),
            w.member()
        ))
    }),
    ("geosearchstore", 30, |w| {
        let (dst, src) = (w.key('z'), w.any_key('z'));
        Step::Command(cmd!(
            b"GEOSEARCHSTORE",
            dst,
            src,
            b"FROMLONLAT",
            b"0",
            b"0",
            b"BYRADIUS",
            b"20000",
            b"km"
        ))
    }),
    ("georadius", 20, |w| {
        let (src, dst) = (w.any_key('z'), w.key('z'));
        let store = *w.rng.pick(&["STORE", "STOREDIST"]);
        Step::Command(cmd!(
            b"GEORADIUS",
            src,
            b"0",
            b"0",
            b"20000",
            b"km",
            store,
            dst
        ))
    }),
    ("georadiusbymember", 20, |w| {
        let (src, dst) = (w.any_key('z'), w.key('z'));
        let store = *w.rng.pick(&["STORE", "STOREDIST"]);
        Step::Command(cmd!(
            b"GEORADIUSBYMEMBER",
            src,
            w.member(),
            b"20000",
            b"km",
            store,
            dst
        ))
    }),
    // Streams.
    ("xadd", 300, |w| {
        let key = w.key('x');
        let mut c = cmd!(b"XADD", key);
        if w.rng.chance(10) {
            c.push(b"NOMKSTREAM".to_vec());
        }
        if w.rng.chance(30) {
            let trim = w.trim(&key);
            c.extend(trim);
        }
        let id = if w.rng.chance(15) {
            b"*".to_vec()
        } else {
            w.stream_id(&key)
        };
        c.push(id);
        for _ in 0..w.rng.between(1, 3) {
            c.extend([w.field(), w.value()]);
        }
        Step::Command(c)
    }),
    ("xdel", 60, |w| {
        let key = w.key('x');
        let mut c = cmd!(b"XDEL", key);
        for _ in 0..w.rng.between(1, 3) {
            c.push(w.old_stream_id(&key));
        }
        Step::Command(c)
    }),
    ("xtrim", 50, |w| {
        let key = w.key('x');
        let mut c = cmd!(b"XTRIM", key);
        c.extend(w.trim(&key));
        Step::Command(c)
    }),
    ("xsetid", 20, |w| {
        let key = w.key('x');
        let id = w.stream_id(&key);
        Step::Command(cmd!(b"XSETID", key, id))
    }),
    ("xgroup", 40, |w| {
        let key = w.key('x');
        Step::Command(match w.rng.below(4) {
            0 => cmd!(b"XGROUP", b"CREATE", key, b"g", b"0", b"MKSTREAM"),
            1 => cmd!(b"XGROUP", b"DESTROY", key, b"g"),
            2 => cmd!(b"XGROUP", b"CREATECONSUMER", key, b"g", b"c1"),
            _ => cmd!(b"XGROUP", b"SETID", key, b"g", b"0"),
        })
    }),
    ("xreadgroup", 30, |w| {
        let key = w.key('x');
        Step::Command(cmd!(
            b"XREADGROUP",
            b"GROUP",
            b"g",
            b"c1",
            b"COUNT",
            b"2",
            b"STREAMS",
            key,
            b">"
        ))
    }),
    ("xack", 20, |w| {
        let key = w.key('x');
        let id = w.old_stream_id(&key);
        Step::Command(cmd!(b"XACK", key, b"g", id))
    }),
    ("xclaim", 20, |w| {
        let key = w.key('x');
        let id = w.old_stream_id(&key);
        Step::Command(cmd!(b"XCLAIM", key, b"g", b"c2", b"0", id))
    }),
    ("xautoclaim", 20, |w| {
        let key = w.key('x');
        Step::Command(cmd!(
            b"XAUTOCLAIM",
            key,
            b"g",
            b"c3",
            b"0",
            b"0-0",
            b"COUNT",
            b"3"
        ))
    }),
    // Lists.
    ("rpush", 250, |w| {
        let key = w.key('l');
        let mut c = cmd!(b"RPUSH", key);
        for _ in 0..w.batch() {
            c.push(w.value());
        }
        Step::Command(c)
    }),
    ("lpush", 150, |w| {
        let key = w.key('l');
        let mut c = cmd!(b"LPUSH", key);
        for _ in 0..w.batch() {
            c.push(w.value());
        }
        Step::Command(c)
    }),
    ("rpushx", 40, |w| {
        let key = w.key('l');
        Step::Command(cmd!(b"RPUSHX", key, w.value()))
    }),
    ("lpushx", 40, |w| {
        let key = w.key('l');
        Step::Command(cmd!(b"LPUSHX", key, w.value()))
    }),
    ("lpop", 80, |w| {
        let key = w.key('l');
        let mut c = cmd!(b"LPOP", key);
        if w.rng.chance(50) {
            c.push(w.small(0, 4));
        }
        Step::Command(c)
    }),
    ("rpop", 80, |w| {
        let key = w.key('l');
        let mut c = cmd!(b"RPOP", key);
        if w.rng.chance(50) {
            c.push(w.small(0, 4));
        }
        Step::Command(c)
    }),
    ("ltrim", 40, |w| {
        let key = w.key('l');
        Step::Command(cmd!(b"LTRIM", key, w.small(-20, 5), w.small(-5, 50)))
    }),
    ("lset", 50, |w| {
        let key = w.key('l');
        Step::Command(cmd!(b"LSET", key, w.small(-6, 6), w.value()))
    }),
    ("lrem", 40, |w| {
        let key = w.key('l');
        Step::Command(cmd!(b"LREM", key, w.small(-2, 2), w.value()))
    }),
    ("linsert", 40, |w| {
        let key = w.key('l');
        let side = *w.rng.pick(&["BEFORE", "AFTER"]);
        Step::Command(cmd!(b"LINSERT", key, side, w.value(), w.value()))
    }),
    ("lmove", 50, |w| {
        let (src, dst) = (w.any_key('l'), w.key('l'));
        Step::Command(cmd!(b"LMOVE", src, dst, w.side(), w.side()))
    }),
    ("blmove", 20, |w| {
        let (src, dst) = (w.any_key('l'), w.key('l'));
        Step::Command(cmd!(b"BLMOVE", src, dst, w.side(), w.side(), b"0.01"))
    }),
    ("rpoplpush", 30, |w| {
        let (src, dst) = (w.any_key('l'), w.key('l'));
        Step::Command(cmd!(b"RPOPLPUSH", src, dst))
    }),
    ("brpoplpush", 20, |w| {
        let (src, dst) = (w.any_key('l'), w.key('l'));
        Step::Command(cmd!(b"BRPOPLPUSH", src, dst, b"0.01"))
    }),
    // Hashes.
    ("hset", 200, |w| {
        let key = w.key('h');
        let mut c = cmd!(b"HSET", key);
        for _ in 0..w.rng.between(1, 4) {
            c.extend([w.field(), w.value()]);
        }
        Step::Command(c)
    }),
    ("hmset", 40, |w| {
        let key = w.key('h');
        Step::Command(cmd!(b"HMSET", key, w.field(), w.value()))
    }),
    ("hsetnx", 40, |w| {
        let key = w.key('h');
        Step::Command(cmd!(b"HSETNX", key, w.field(), w.value()))
    }),
    ("hdel", 60, |w| {
        let key = w.key('h');
        Step::Command(cmd!(b"HDEL", key, w.field(), w.field()))
    }),
    ("hincrby", 50, |w| {
        let key = w.key('h');
        let by = w.rng.pick(INCREMENTS).as_bytes().to_vec();
        Step::Command(cmd!(b"HINCRBY", key, w.field(), by))
    }),
    ("hincrbyfloat", 40, |w| {
        let key = w.key('h');
        let by = w.rng.pick(FLOAT_INCREMENTS).as_bytes().to_vec();
        Step::Command(cmd!(b"HINCRBYFLOAT", key, w.field(), by))
    }),
    // Strings, bitmaps, HyperLogLogs.
    ("set", 200, |w| {
        let key = w.key('s');
        let mut c = cmd!(b"SET", key, w.value());
        match w.rng.below(8) {
            0 => c.extend([b"PX".to_vec(), w.small(1, 200)]),
            1 => c.extend([b"EX".to_vec(), w.small(86_400, 90_000)]),
            2 => c.push(b"KEEPTTL".to_vec()),
            3 => c.push(b"NX".to_vec()),
            4 => c.extend([b"XX".to_vec(), b"GET".to_vec()]),
            _ => {}
        }
        Step::Command(c)
    }),
    ("setnx", 30, |w| {
        let key = w.key('s');
        Step::Command(cmd!(b"SETNX", key, w.value()))
    }),
    ("getset", 30, |w| {
        let key = w.key('s');
        Step::Command(cmd!(b"GETSET", key, w.value()))
    }),
    ("setex", 30, |w| {
        let key = w.key('s');
        Step::Command(cmd!(b"SETEX", key, w.small(86_400, 90_000), w.value()))
    }),
    ("psetex", 30, |w| {
        let key = w.key('s');
        Step::Command(cmd!(b"PSETEX", key, w.small(1, 150), w.value()))
    }),
    ("mset", 40, |w| {
        let (a, b) = (w.key('s'), w.key('s'));
        Step::Command(cmd!(b"MSET", a, w.value(), b, w.value()))
    }),
    ("msetnx", 30, |w| {
        let (a, b) = (w.key('s'), w.key('s'));
        Step::Command(cmd!(b"MSETNX", a, w.value(), b, w.value()))
    }),
    ("incr", 50, |w| Step::Command(cmd!(b"INCR", w.key('s')))),
    ("decr", 30, |w| Step::Command(cmd!(b"DECR", w.key('s')))),
    ("incrby", 40, |w| {
        let key = w.key('s');
        let by = w.rng.pick(INCREMENTS).as_bytes().to_vec();
        Step::Command(cmd!(b"INCRBY", key, by))
    }),
    ("decrby", 30, |w| {
        let key = w.key('s');
        let by = w.rng.pick(INCREMENTS).as_bytes().to_vec();
        Step::Command(cmd!(b"DECRBY", key, by))
    }),
    ("append", 40, |w| {
        let key = w.key('s');
        Step::Command(cmd!(b"APPEND", key, w.value()))
    }),
    ("setrange", 30, |w| {
        let key = w.key('s');
        Step::Command(cmd!(b"SETRANGE", key, w.small(0, 12), w.value()))
    }),
    ("incrbyfloat", 40, |w| {
        let key = w.key('s');
        let by = w.rng.pick(FLOAT_INCREMENTS).as_bytes().to_vec();
        Step::Command(cmd!(b"INCRBYFLOAT", key, by))
    }),
    ("setbit", 30, |w| {
        let key = w.key('s');
        Step::Command(cmd!(b"SETBIT", key, w.small(0, 40), w.small(0, 1)))
    }),
    ("bitfield", 30, |w| {
        let key = w.key('s');
        Step::Command(cmd!(
            b"BITFIELD",
            key,
            b"INCRBY",
            b"u8",
            w.small(0, 16),
            w.small(-3, 300)
        ))
    }),
    ("bitop", 20, |w| {
        let (dst, a, b) = (w.key('s'), w.any_key('s'), w.any_key('s'));
        let op = *w.rng.pick(&["AND", "OR", "XOR"]);
        Step::Command(cmd!(b"BITOP", op, dst, a, b))
    }),
    ("pfadd", 50, |w| {
        let key = w.key('p');
        Step::Command(cmd!(b"PFADD", key, w.value(), w.member()))
    }),
    ("pfcount", 40, |w| {
        Step::Command(cmd!(b"PFCOUNT", w.key('p')))
    }),
    ("pfdebug", 10, |w| {
        Step::Command(cmd!(b"PFDEBUG", b"TODENSE", w.key('p')))
    }),
    ("pfmerge", 20, |w| {
        let (dst, src) = (w.key('p'), w.any_key('p'));
        Step::Command(cmd!(b"PFMERGE", dst, src))
    }),
    ("restore", 30, |w| {
        let (src, dst) = (w.any_key('z'), w.key('z'));
        Step::Restore {
            src,
            dst,
            restore: "RESTORE",
        }
    }),
    ("restore-asking", 10, |w| {
        let (src, dst) = (w.any_key('l'), w.key('l'));
        Step::Restore {
            src,
            dst,
            restore: "RESTORE-ASKING",
        }
    }),
    // Any type.
    ("del", 60, |w| {
        let (a, b) = (w.key('z'), w.key('l'));
        Step::Command(cmd!(b"DEL", a, b))
    }),
    ("unlink", 30, |w| Step::Command(cmd!(b"UNLINK", w.key('h')))),
    ("getdel", 30, |w| Step::Command(cmd!(b"GETDEL", w.key('s')))),
    ("pexpireat", 40, |w| {
        let key = w.key('z');
        let at = now_ms() as i64 + w.rng.between(-100, 300);
        Step::Command(cmd!(b"PEXPIREAT", key, at.to_string()))
    }),
    ("expireat", 20, |w| {
        let key = w.key('l');
        let at = now_ms() as i64 / 1000 + *w.rng.pick(&[-1, 86_400]);
        Step::Command(cmd!(b"EXPIREAT", key, at.to_string()))
    }),
    ("expire", 40, |w| {
        let key = w.key('h');
        let seconds = *w.rng.pick(&["0", "86400", "90000"]);
        Step::Command(cmd!(b"EXPIRE", key, seconds))
    }),
    ("pexpire", 40, |w| {
        let key = w.key('x');
        Step::Command(cmd!(b"PEXPIRE", key, w.small(1, 250)))
    }),
    ("persist", 40, |w| {
        Step::Command(cmd!(b"PERSIST", w.key('s')))
    }),
    ("rename", 40, |w| {
        let (src, dst) = (w.any_key('z'), w.key('z'));
        Step::Command(cmd!(b"RENAME", src, dst))
    }),
    ("renamenx", 30, |w| {
        let (src, dst) = (w.any_key('l'), w.key('l'));
        Step::Command(cmd!(b"RENAMENX", src, dst))
    }),
    // `BY` names keys derived from the values sorted, which the relay cannot judge: it withholds the command, and
    // pages top the destination up. `GET #` is the value itself.
    ("sort", 60, |w| {
        let src = if w.rng.chance(50) {
            w.unwatched('l')
        } else {
            w.key('l')
        };
        let dst = w.key('l');
        Step::Command(match w.rng.below(4) {
            0 => cmd!(b"SORT", src, b"BY", b"s:w_*", b"STORE", dst),
            1 => cmd!(b"SORT", src, b"ALPHA", b"GET", b"#", b"STORE", dst),
            _ => cmd!(b"SORT", src, b"ALPHA", b"STORE", dst),
        })
    }),
    ("sort_ro", 10, |w| {
        Step::Command(cmd!(b"SORT_RO", w.key('l'), b"ALPHA"))
    }),
    // Sets: no windows, but keys of their own type.
    ("sadd", 50, |w| {
        let key = w.key('t');
        Step::Command(cmd!(b"SADD", key, w.value(), w.member()))
    }),
    ("srem", 30, |w| {
        let key = w.key('t');
        Step::Command(cmd!(b"SREM", key, w.value()))
    }),
    ("spop", 20, |w| Step::Command(cmd!(b"SPOP", w.key('t')))),
    ("smove", 20, |w| {
        let (src, dst) = (w.key('t'), w.key('t'));
        Step::Command(cmd!(b"SMOVE", src, dst, w.value()))
    }),
    ("sinterstore", 20, |w| {
        let (dst, a, b) = (w.key('t'), w.key('t'), w.key('t'));
        Step::Command(cmd!(b"SINTERSTORE", dst, a, b))
    }),
    ("sunionstore", 20, |w| {
        let (dst, a, b) = (w.key('t'), w.key('t'), w.key('t'));
        Step::Command(cmd!(b"SUNIONSTORE", dst, a, b))
    }),
    ("sdiffstore", 20, |w| {
        let (dst, a, b) = (w.key('t'), w.key('t'), w.key('t'));
        Step::Command(cmd!(b"SDIFFSTORE", dst, a, b))
    }),
    // Pops over several keys, blocking or not: Redis propagates the pop it made.
    ("zmpop", 20, |w| {
        let (a, b) = (w.key('z'), w.key('z'));
        Step::Command(cmd!(b"ZMPOP", b"2", a, b, b"MIN", b"COUNT", b"2"))
    }),
    ("bzmpop", 10, |w| {
        let (a, b) = (w.key('z'), w.key('z'));
        Step::Command(cmd!(b"BZMPOP", b"0.01", b"2", a, b, b"MAX"))
    }),
    ("lmpop", 20, |w| {
        let (a, b) = (w.key('l'), w.key('l'));
        Step::Command(cmd!(b"LMPOP", b"2", a, b, b"RIGHT", b"COUNT", b"2"))
    }),
    ("blmpop", 10, |w| {
        let (a, b) = (w.key('l'), w.key('l'));
        Step::Command(cmd!(b"BLMPOP", b"0.01", b"2", a, b, b"LEFT"))
    }),
    ("blpop", 10, |w| {
        Step::Command(cmd!(b"BLPOP", w.key('l'), b"0.01"))
    }),
    ("brpop", 10, |w| {
        Step::Command(cmd!(b"BRPOP", w.key('l'), b"0.01"))
    }),
    ("bzpopmin", 10, |w| {
        Step::Command(cmd!(b"BZPOPMIN", w.key('z'), b"0.01"))
    }),
    ("bzpopmax", 10, |w| {
        Step::Command(cmd!(b"BZPOPMAX", w.key('z'), b"0.01"))
    }),
    // Not commands of the stream, but what the workload must have too: scripts (Redis 7 replicates their
    // writes), and reads of keys that may have expired (Redis then propagates a DEL).
    ("eval", 60, |w| {
        let script = "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]); \
                      redis.call('HINCRBY', KEYS[2], ARGV[2], 1); \
                      redis.call('INCRBYFLOAT', KEYS[3], ARGV[1]); \
                      return redis.call('LPUSH', KEYS[4], ARGV[2])";
        let (z, h, s, l) = (w.key('z'), w.key('h'), w.key('s'), w.key('l'));
        let (score, member) = (
            w.rng.pick(&["1", "2.5", "0x10", "-0"]).to_string(),
            w.member(),
        );
        Step::Command(cmd!(b"EVAL", script, b"4", z, h, s, l, score, member))
    }),
    ("read", 60, |w| {
        let kind = *w.rng.pick(&['z', 'l', 'h', 'x', 's']);
        let key = w.key(kind);
        Step::Command(cmd!(w.rng.pick(&["EXISTS", "TYPE", "GET", "TTL"]), key))
    }),
];
