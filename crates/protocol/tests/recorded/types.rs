//! Workloads that use every command the windows follow, one per type plus one for whole-key commands, recorded
//! from a real `redis-server` together with Redis's own answers for every watched key at the end (see
//! `server/tests/recorded_streams.rs`). The keys are `t:*`, larger than the window of [`WINDOW`] items.

/// Window of the assemblers that replay these recordings.
pub const WINDOW: usize = 4;
/// The watched keys.
pub const PATTERN: &str = "t:*";

/// One step of a workload.
#[derive(Debug, Clone)]
pub enum Op {
    /// A command, sent as is on one connection (so `SELECT` and `MULTI` hold until changed).
    Cmd(Vec<Vec<u8>>),
    /// Wait, so that short TTLs expire and Redis propagates their `DEL`.
    Sleep(u64),
}

fn c(words: &[&str]) -> Op {
    Op::Cmd(words.iter().map(|w| w.as_bytes().to_vec()).collect())
}

fn many(prefix: &[&str], items: impl Iterator<Item = String>) -> Op {
    let mut words: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
    words.extend(items);
    Op::Cmd(words.into_iter().map(String::into_bytes).collect())
}

fn block(ops: Vec<Op>) -> Vec<Op> {
    let mut out = vec![c(&["MULTI"])];
    out.extend(ops);
    out.push(c(&["EXEC"]));
    out
}

/// Sorted sets: every write, the blocking and multi-key pops, the `*STORE` destinations, JSON members.
pub fn zset_workload() -> Vec<Op> {
    let mut ops = vec![
        many(
            &["ZADD", "t:z1"],
            (1..=12).flat_map(|i| [i.to_string(), format!("m{i}")]),
        ),
        many(
            &["ZADD", "t:z2"],
            (0..8).flat_map(|i| ["0".to_string(), format!("{}", (b'a' + i) as char)]),
        ),
        c(&["ZADD", "t:z1", "NX", "100", "m1", "13", "m13"]),
        c(&["ZADD", "t:z1", "XX", "CH", "50", "m2", "51", "nobody"]),
        c(&["ZADD", "t:z1", "GT", "14", "m12", "1", "m11"]),
        c(&["ZADD", "t:z1", "LT", "0.5", "m3"]),
        c(&["ZADD", "t:z1", "INCR", "2", "m4"]),
        c(&["ZINCRBY", "t:z1", "7.5", "m5"]),
        c(&["ZREM", "t:z1", "m2", "absent"]),
        c(&["ZREMRANGEBYSCORE", "t:z1", "(6", "9"]),
        c(&["ZREMRANGEBYRANK", "t:z1", "0", "1"]),
        c(&["ZREMRANGEBYRANK", "t:z1", "-1", "-1"]),
        c(&["ZREMRANGEBYLEX", "t:z2", "[b", "(d"]),
        c(&["ZPOPMIN", "t:z2"]),
        c(&["ZPOPMAX", "t:z2", "2"]),
        c(&["BZPOPMIN", "t:z1", "1"]),
        c(&["BZPOPMAX", "t:z1", "1"]),
        c(&["ZMPOP", "1", "t:z2", "MIN", "COUNT", "1"]),
        many(
            &["ZADD", "t:z1"],
            (20..30).flat_map(|i| [i.to_string(), format!(r#"{{"id":"s{}","v":{i}}}"#, i % 3)]),
        ),
        c(&["ZUNIONSTORE", "t:z3", "2", "t:z1", "t:z2"]),
        c(&["ZINTERSTORE", "t:z4", "2", "t:z1", "t:z3"]),
        c(&["ZDIFFSTORE", "t:z5", "2", "t:z1", "t:z2"]),
        c(&["ZRANGESTORE", "t:z6", "t:z1", "0", "2"]),
        c(&["ZADD", "t:z3", "99", "after-store"]),
    ];
    ops.extend(block(vec![
        c(&["ZADD", "t:z1", "40", "tx1", "41", "tx2"]),
        c(&["ZREM", "t:z1", "tx1"]),
        c(&["ZINCRBY", "t:z6", "1", "m13"]),
    ]));
    ops.push(c(&["ZREM", "t:z6", "m13", "m4", "m5", "m1"]));
    ops
}

/// Streams: `XADD` with ids Redis picks and every trimming form, `XDEL`, `XTRIM`, consumer groups.
pub fn stream_workload() -> Vec<Op> {
    let mut ops: Vec<Op> = (0..8)
        .map(|i| c(&["XADD", "t:s1", "*", "n", &i.to_string()]))
        .collect();
    ops.extend([
        c(&["XADD", "t:s1", "MAXLEN", "~", "3", "*", "n", "8"]),
        c(&["XADD", "t:s1", "MAXLEN", "=", "6", "*", "n", "9"]),
        c(&["XADD", "t:s2", "1-1", "a", "1"]),
        c(&["XADD", "t:s2", "1-2", "a", "2", "b", "3"]),
        c(&["XADD", "t:s2", "2-*", "a", "4"]),
        c(&[
            "XADD",
            "t:s2",
            "NOMKSTREAM",
            "MINID",
            "1-2",
            "3-0",
            "a",
            "5",
        ]),
        c(&["XADD", "t:s3", "NOMKSTREAM", "*", "a", "1"]),
        c(&["XDEL", "t:s2", "2-0", "9-9"]),
        c(&["XTRIM", "t:s1", "MAXLEN", "5"]),
        c(&["XGROUP", "CREATE", "t:s1", "g", "0"]),
        c(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "COUNT",
            "2",
            "STREAMS",
            "t:s1",
            ">",
        ]),
        c(&["XGROUP", "CREATE", "t:s4", "g", "$", "MKSTREAM"]),
    ]);
    for i in 10..16 {
        ops.push(c(&["XADD", "t:s1", "*", "n", &i.to_string()]));
    }
    ops.push(c(&["XTRIM", "t:s1", "MAXLEN", "~", "2"]));
    ops.extend(block(vec![
        c(&["XADD", "t:s2", "5-0", "tx", "1"]),
        c(&["XDEL", "t:s2", "5-0"]),
        c(&["XADD", "t:s2", "6-0", "tx", "2"]),
    ]));
    ops
}

/// Lists: pushes at both ends, pops with counts and blocking ones, index operations, moves between lists.
pub fn list_workload() -> Vec<Op> {
    let mut ops = vec![
        many(&["RPUSH", "t:l1"], (1..=12).map(|i| format!("i{i}"))),
        c(&["LPUSH", "t:l1", "h1", "h2"]),
        c(&["RPUSHX", "t:l1", "i13"]),
        c(&["LPUSHX", "t:l1", "h3"]),
        c(&["LPOP", "t:l1"]),
        c(&["LPOP", "t:l1", "2"]),
        c(&["RPOP", "t:l1"]),
        c(&["RPOP", "t:l1", "2"]),
        c(&["BLPOP", "t:l1", "1"]),
        c(&["BRPOP", "t:l1", "1"]),
        c(&["LMPOP", "1", "t:l1", "RIGHT", "COUNT", "2"]),
        c(&["LSET", "t:l1", "-1", "last"]),
        c(&["LSET", "t:l1", "0", "first"]),
        c(&["LINSERT", "t:l1", "BEFORE", "last", "before-last"]),
        c(&["LINSERT", "t:l1", "AFTER", "i4", "after-i4"]),
        c(&["LTRIM", "t:l1", "-6", "-1"]),
        many(&["RPUSH", "t:l2"], (1..=3).map(|i| format!("j{i}"))),
        c(&["LMOVE", "t:l1", "t:l2", "RIGHT", "LEFT"]),
        c(&["LMOVE", "t:l1", "t:l2", "LEFT", "RIGHT"]),
        c(&["RPOPLPUSH", "t:l2", "t:l3"]),
        c(&["BLMOVE", "t:l2", "t:l3", "LEFT", "LEFT", "1"]),
        c(&["BRPOPLPUSH", "t:l1", "t:l3", "1"]),
        many(
            &["RPUSH", "t:l4"],
            ["x", "y", "x", "z", "x"].iter().map(|s| s.to_string()),
        ),
        c(&["LREM", "t:l4", "-1", "x"]),
        c(&["LREM", "t:l4", "0", "y"]),
        c(&["LTRIM", "t:l4", "0", "1"]),
    ];
    ops.extend(block(vec![
        c(&["RPUSH", "t:l2", "tx1", "tx2"]),
        c(&["LPOP", "t:l2"]),
        c(&["LREM", "t:l2", "1", "tx2"]),
    ]));
    ops
}

/// Hashes: small ones within the window, a large one over it, every write.
pub fn hash_workload() -> Vec<Op> {
    let mut ops = vec![
        c(&["HSET", "t:h1", "a", "1", "b", "2"]),
        c(&["HMSET", "t:h1", "c", "3"]),
        c(&["HSETNX", "t:h1", "a", "no"]),
        c(&["HSETNX", "t:h1", "d", "4"]),
        c(&["HINCRBY", "t:h1", "a", "10"]),
        c(&["HINCRBYFLOAT", "t:h1", "b", "0.25"]),
        c(&["HDEL", "t:h1", "c", "nothing"]),
        many(
            &["HSET", "t:h2"],
            (1..=7).flat_map(|i| [format!("f{i}"), format!("v{i}")]),
        ),
        c(&["HSET", "t:h2", "f7", "again"]),
        c(&["HINCRBY", "t:h2", "f8", "5"]),
        c(&["HDEL", "t:h2", "f8"]),
        c(&["HSET", "t:h3", "only", "one"]),
        c(&["HDEL", "t:h3", "only"]),
    ];
    ops.extend(block(vec![
        c(&["HSET", "t:h1", "tx", "1"]),
        c(&["HINCRBY", "t:h1", "tx", "1"]),
    ]));
    ops
}

/// Strings: every way to set, compute and expire a value.
pub fn string_workload() -> Vec<Op> {
    let mut ops = vec![
        c(&["SET", "t:s", "hello"]),
        c(&["SET", "t:s", "hi", "XX", "GET"]),
        c(&["SET", "t:s", "no", "NX"]),
        c(&["SET", "t:ex", "v", "EX", "1000"]),
        c(&["SET", "t:px", "v", "PX", "100000"]),
        c(&["SET", "t:keep", "v2", "KEEPTTL"]),
        c(&["SETEX", "t:setex", "1000", "v"]),
        c(&["PSETEX", "t:psetex", "100000", "v"]),
        c(&["SETNX", "t:nx", "v"]),
        c(&["INCR", "t:n"]),
        c(&["INCRBY", "t:n", "41"]),
        c(&["DECR", "t:n"]),
        c(&["DECRBY", "t:n", "10"]),
        c(&["INCRBYFLOAT", "t:f", "1.25"]),
        c(&["INCRBYFLOAT", "t:f", "2"]),
        c(&["APPEND", "t:s", " there"]),
        c(&["SETRANGE", "t:s", "1", "EY"]),
        c(&["SETRANGE", "t:pad", "4", "x"]),
        c(&["GETSET", "t:gs", "one"]),
        c(&["GETSET", "t:gs", "two"]),
        c(&["MSET", "t:m1", "a", "t:m2", "b"]),
        c(&["MSETNX", "t:m3", "c", "t:m4", "d"]),
        c(&["GETDEL", "t:m2"]),
        c(&["GETEX", "t:m1", "EX", "1000"]),
        c(&["GETEX", "t:m1", "PERSIST"]),
        c(&["SET", "t:short", "v", "PX", "30"]),
        c(&["SETBIT", "t:bits", "3", "1"]),
    ];
    ops.extend(block(vec![c(&["INCR", "t:n"]), c(&["APPEND", "t:s", "!"])]));
    ops.push(Op::Sleep(300));
    ops.push(c(&["GET", "t:short"]));
    ops
}

/// Whole keys: deletes, expiry (some TTLs short enough to pass), renames, moves and copies between databases,
/// flushes and swaps.
pub fn keys_workload() -> Vec<Op> {
    let mut ops = vec![
        many(
            &["ZADD", "t:a"],
            (1..=6).flat_map(|i| [i.to_string(), format!("a{i}")]),
        ),
        many(&["RPUSH", "t:b"], (1..=6).map(|i| format!("b{i}"))),
        c(&["SET", "t:c", "c"]),
        c(&["HSET", "t:d", "f", "v"]),
        c(&["XADD", "t:e", "1-0", "f", "v"]),
        c(&["SET", "t:gone", "x"]),
        c(&["DEL", "t:gone", "t:never"]),
        c(&["UNLINK", "t:c"]),
        c(&["EXPIRE", "t:a", "1000"]),
        c(&["PEXPIRE", "t:b", "1000000"]),
        c(&["PERSIST", "t:b"]),
        c(&["PEXPIRE", "t:d", "40"]),
        c(&["RENAME", "t:a", "t:a2"]),
        c(&["RENAMENX", "t:b", "t:b2"]),
        c(&["RENAME", "t:e", "u:not-watched"]),
        c(&["COPY", "t:a2", "t:a3"]),
        c(&["COPY", "t:b2", "t:b3", "DB", "1"]),
        c(&["SELECT", "1"]),
        c(&["SET", "t:from1", "v1"]),
        c(&["MOVE", "t:from1", "0"]),
        c(&["COPY", "t:b3", "t:b4", "DB", "0"]),
        c(&["FLUSHDB"]),
        c(&["SELECT", "0"]),
        c(&["MOVE", "t:a3", "2"]),
        c(&["COPY", "t:b2", "t:b4", "REPLACE"]),
        c(&["RPUSH", "t:b4", "more"]),
        Op::Sleep(300),
        c(&["EXISTS", "t:d"]),
    ];
    ops.extend(block(vec![
        c(&["RENAME", "t:b4", "t:b5"]),
        c(&["ZADD", "t:a2", "10", "a10"]),
    ]));
    ops.extend([
        c(&["SELECT", "1"]),
        c(&["SET", "t:in-db1", "v"]),
        c(&["SWAPDB", "0", "1"]),
        c(&["SELECT", "0"]),
        c(&["RPUSH", "t:after-swap", "v"]),
        c(&["SELECT", "3"]),
        c(&["SET", "t:db3", "v"]),
        c(&["FLUSHDB", "ASYNC"]),
        c(&["SELECT", "0"]),
        c(&["SET", "t:last", "v"]),
    ]);
    ops
}

/// Every workload, by the name of its recording.
pub fn workloads() -> Vec<(&'static str, Vec<Op>)> {
    vec![
        ("types-zset", zset_workload()),
        ("types-stream", stream_workload()),
        ("types-list", list_workload()),
        ("types-hash", hash_workload()),
        ("types-string", string_workload()),
        ("types-keys", keys_workload()),
    ]
}
