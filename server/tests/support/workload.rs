//! Writes over every windowed type for the tests of the relay's state and of its checks: a dataset written before
//! the relay attaches (it reaches the state in the full sync's RDB), and a seeded random workload after.

use redis::aio::MultiplexedConnection;

/// SplitMix64: the workload is the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// `count` random writes over the windowed types (sorted sets, lists, hashes, strings, streams) of keys `w:<type><n>`,
/// with removals, trims and deletions.
pub async fn workload(conn: &mut MultiplexedConnection, seed: u64, count: usize) {
    let mut rng = Rng(seed);
    let mut pipe = redis::pipe();
    for i in 0..count {
        let n = rng.below(4);
        let value = format!(
            "v{}-{}",
            rng.below(1000),
            "x".repeat(rng.below(40) as usize)
        );
        match rng.below(12) {
            0 | 1 => pipe
                .cmd("ZADD")
                .arg(format!("w:z{n}"))
                .arg(rng.below(10_000))
                .arg(format!("m{}", rng.below(200))),
            2 => pipe
                .cmd("ZREM")
                .arg(format!("w:z{n}"))
                .arg(format!("m{}", rng.below(200))),
            3 => pipe.cmd("RPUSH").arg(format!("w:l{n}")).arg(&value),
            4 => pipe.cmd("LPOP").arg(format!("w:l{n}")),
            5 => pipe
                .cmd("HSET")
                .arg(format!("w:h{n}"))
                .arg(format!("f{}", rng.below(8)))
                .arg(&value),
            6 => pipe
                .cmd("HDEL")
                .arg(format!("w:h{n}"))
                .arg(format!("f{}", rng.below(8))),
            7 => pipe.cmd("SET").arg(format!("w:s{n}")).arg(&value),
            8 | 9 => pipe
                .cmd("XADD")
                .arg(format!("w:x{n}"))
                .arg("*")
                .arg("i")
                .arg(i)
                .arg("v")
                .arg(&value),
            10 => pipe
                .cmd("XTRIM")
                .arg(format!("w:x{n}"))
                .arg("MAXLEN")
                .arg(rng.below(50)),
            _ => pipe.cmd("DEL").arg(format!(
                "w:{}{n}",
                ["z", "l", "h", "s", "x"][rng.below(5) as usize]
            )),
        };
        pipe.ignore();
    }
    let () = pipe.query_async(conn).await.unwrap();
}

/// A dataset of every windowed type, written before the relay attaches so that it reaches the state in the RDB:
/// sorted sets and lists longer than any window, a hash, strings, streams (one emptied), and keys outside `--allow`.
pub async fn dataset(conn: &mut MultiplexedConnection) {
    let mut pipe = redis::pipe();
    for n in 0..4 {
        for i in 0..300 {
            pipe.cmd("ZADD")
                .arg(format!("w:z{n}"))
                .arg(i * 7 % 1000)
                .arg(format!("m{i}"))
                .ignore();
            pipe.cmd("RPUSH")
                .arg(format!("w:l{n}"))
                .arg(format!("item {i}"))
                .ignore();
            pipe.cmd("XADD")
                .arg(format!("w:x{n}"))
                .arg(format!("{}-1", i + 1))
                .arg("i")
                .arg(i)
                .ignore();
        }
        pipe.cmd("HSET")
            .arg(format!("w:h{n}"))
            .arg("f0")
            .arg("a")
            .arg("f1")
            .arg(n)
            .ignore();
        pipe.cmd("SET").arg(format!("w:s{n}")).arg(n).ignore();
        pipe.cmd("SET")
            .arg(format!("secret:{n}"))
            .arg("no")
            .ignore();
    }
    pipe.cmd("XTRIM").arg("w:x3").arg("MAXLEN").arg(0).ignore();
    let () = pipe.query_async(conn).await.unwrap();
}
