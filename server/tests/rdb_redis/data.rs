//! The data set: every encoding Redis 7.0 writes, in small and large variants, over three databases.

use crate::redis_view::{array, bytes, query};

pub const LIBRARY: &str =
    "#!lua name=rdbtest\nredis.register_function('hello', function(keys, args) return 'hi' end)";

pub fn fill(con: &mut redis::Connection) {
    let run = |con: &mut redis::Connection, args: Vec<Vec<u8>>| {
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        query(con, &args);
    };
    let s = |x: &str| x.as_bytes().to_vec();
    let binary: Vec<u8> = (0..=255u8).collect();
    let mut noise = Vec::new();
    let mut state = 0x2545f4914f6cdd1du64;
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        noise.push(state as u8);
    }
    // Strings: short, integers of every width, compressible (LZF), binary, big and incompressible.
    for (k, v) in [
        ("str:short", s("hello")),
        ("str:int8", s("-7")),
        ("str:int16", s("12345")),
        ("str:int32", s("-2000000000")),
        ("str:int64", s("123456789012345")),
        ("str:compressible", s(&"abcd".repeat(500))),
        ("str:empty", Vec::new()),
        ("str:binary", binary.clone()),
        ("str:noise", noise.clone()),
        ("12345", s("an integer key")),
    ] {
        run(con, vec![s("SET"), s(k), v]);
    }
    // Keys that are not UTF-8 (printed as base64) and a key a megabyte long: carried byte for byte.
    let megabyte_key = [s("key:"), vec![b'k'; 1 << 20]].concat();
    for k in [b"key:\xff\xfe\x00".to_vec(), megabyte_key] {
        run(con, vec![s("SET"), k, s("v")]);
    }
    run(
        con,
        vec![s("SET"), s("ttl:str"), s("v"), s("PX"), s("86400000")],
    );
    // Lists: one listpack node, many nodes, a plain node for a big element, integers.
    run(
        con,
        [
            s("RPUSH"),
            s("list:small"),
            s("a"),
            s("b"),
            s("12"),
            s("-5000"),
            binary.clone(),
        ]
        .to_vec(),
    );
    let mut big = vec![s("RPUSH"), s("list:big")];
    big.extend((0..3000).map(|i| format!("element-{i}-{}", "x".repeat(i % 50)).into_bytes()));
    run(con, big);
    run(
        con,
        vec![
            s("RPUSH"),
            s("list:plain"),
            s("before"),
            noise[..12_000].to_vec(),
            s("after"),
        ],
    );
    run(con, vec![s("RPUSH"), s("ttl:list"), s("a")]);
    run(con, vec![s("PEXPIRE"), s("ttl:list"), s("99999999")]);
    // Sets: intset, listpack, hashtable of strings and of integers.
    run(
        con,
        vec![
            s("SADD"),
            s("set:ints"),
            s("1"),
            s("-40000"),
            s("3000000000"),
            s("7"),
        ],
    );
    run(
        con,
        vec![
            s("SADD"),
            s("set:small"),
            s("x"),
            s("y"),
            s("z"),
            binary.clone(),
        ],
    );
    let mut big = vec![s("SADD"), s("set:big")];
    big.extend((0..600).map(|i| format!("member-{i}").into_bytes()));
    run(con, big);
    let mut big = vec![s("SADD"), s("set:bigints")];
    big.extend((0..700).map(|i| (i * 1000).to_string().into_bytes()));
    run(con, big);
    // Sorted sets: listpack and skiplist, with special scores.
    run(
        con,
        vec![
            s("ZADD"),
            s("zset:small"),
            s("1.5"),
            s("a"),
            s("-inf"),
            s("b"),
            s("inf"),
            s("c"),
            s("0.1"),
            s("d"),
            s("42"),
            s("e"),
        ],
    );
    let mut big = vec![s("ZADD"), s("zset:big")];
    for i in 0..300 {
        big.push(format!("{}", f64::from(i) / 7.0).into_bytes());
        big.push(format!("m{i}").into_bytes());
    }
    big.extend([s("inf"), s("top")]);
    run(con, big);
    // Hashes: listpack, hashtable by count, hashtable by value size.
    run(
        con,
        vec![
            s("HSET"),
            s("hash:small"),
            s("f1"),
            s("v1"),
            s("n"),
            s("100"),
            s("bin"),
            binary[..40].to_vec(),
        ],
    );
    let mut big = vec![s("HSET"), s("hash:big")];
    for i in 0..300 {
        big.push(format!("field{i}").into_bytes());
        big.push(format!("value{i}").into_bytes());
    }
    run(con, big);
    run(
        con,
        vec![
            s("HSET"),
            s("hash:longvalue"),
            s("f"),
            s(&"long".repeat(40)),
        ],
    );
    // A stream with deleted entries, two groups, consumers and pending entries.
    for i in 0..120 {
        let mut add = vec![
            s("XADD"),
            s("stream:s"),
            format!("{}-{}", 1_700_000_000_000u64 + i / 3, i % 3).into_bytes(),
        ];
        add.extend([
            s("sensor"),
            format!("t{}", i % 4).into_bytes(),
            s("value"),
            (i * 10).to_string().into_bytes(),
        ]);
        if i % 10 == 0 {
            add.extend([s("extra"), s("yes")]);
        }
        run(con, add);
    }
    run(
        con,
        vec![
            s("XDEL"),
            s("stream:s"),
            s("1700000000005-0"),
            s("1700000000039-2"),
        ],
    );
    run(
        con,
        vec![s("XGROUP"), s("CREATE"), s("stream:s"), s("g1"), s("0")],
    );
    run(
        con,
        vec![s("XGROUP"), s("CREATE"), s("stream:s"), s("g2"), s("$")],
    );
    run(
        con,
        vec![
            s("XREADGROUP"),
            s("GROUP"),
            s("g1"),
            s("alice"),
            s("COUNT"),
            s("5"),
            s("STREAMS"),
            s("stream:s"),
            s(">"),
        ],
    );
    run(
        con,
        vec![
            s("XREADGROUP"),
            s("GROUP"),
            s("g1"),
            s("bob"),
            s("COUNT"),
            s("3"),
            s("STREAMS"),
            s("stream:s"),
            s(">"),
        ],
    );
    run(
        con,
        vec![s("XACK"), s("stream:s"), s("g1"), s("1700000000000-0")],
    );
    run(
        con,
        vec![
            s("XGROUP"),
            s("CREATECONSUMER"),
            s("stream:s"),
            s("g2"),
            s("idle"),
        ],
    );
    run(
        con,
        vec![s("XADD"), s("stream:empty"), s("1-1"), s("f"), s("v")],
    );
    run(con, vec![s("XDEL"), s("stream:empty"), s("1-1")]);
    // Other databases.
    run(con, vec![s("SELECT"), s("3")]);
    run(con, vec![s("SET"), s("db3:key"), s("three")]);
    run(con, vec![s("HSET"), s("db3:hash"), s("a"), s("b")]);
    run(con, vec![s("SELECT"), s("9")]);
    run(con, vec![s("RPUSH"), s("db9:list"), s("nine")]);
    run(con, vec![s("SELECT"), s("0")]);
    run(con, vec![s("FUNCTION"), s("LOAD"), s(LIBRARY)]);
}

pub fn keys_by_db(con: &mut redis::Connection) -> Vec<(u64, Vec<u8>)> {
    let mut all = Vec::new();
    for db in [0u64, 3, 9] {
        query(con, &[b"SELECT", db.to_string().as_bytes()]);
        for k in array(&query(con, &[b"KEYS", b"*"])) {
            all.push((db, bytes(k)));
        }
    }
    query(con, &[b"SELECT", b"0"]);
    all.sort();
    all
}
