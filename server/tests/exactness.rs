//! The ways a window once differed from Redis for good (issue #17), each against a real redis-server 7.0 and the
//! relay binary, followed by the native assembler: numbers Redis reads with `strtod` (hexadecimal scores,
//! increments and bounds), `-0` as a score, `PFCOUNT` rewriting a HyperLogLog, and `ZREMRANGEBYLEX` over members
//! of different scores. Each ends with every watched key equal to what Redis answers, after the page's top-ups.

mod support;

use support::exact::{redis_db, Page};
use support::*;

/// Runs each command on `conn`; Redis must accept it.
async fn write(conn: &mut redis::aio::MultiplexedConnection, commands: &[&[&str]]) {
    for command in commands {
        let mut cmd = redis::cmd(command[0]);
        cmd.arg(&command[1..]);
        let _: redis::Value = cmd
            .query_async(conn)
            .await
            .unwrap_or_else(|err| panic!("{command:?}: {err}"));
    }
}

/// A page on a fresh Redis and relay, watching `w:*` in database 0 at `window`, joined.
async fn follow(window: usize) -> (Proc, Proc, redis::aio::MultiplexedConnection, Page) {
    let (redis, port) = start_redis();
    let (relay, url) = start_relay(port, "w:*");
    wait_healthy(&url).await;
    let mut conn = redis_db(port, 0).await;
    let mut page = Page::open(&url, "w:*", 0, window).await;
    page.settle(&mut conn).await;
    (redis, relay, conn, page)
}

#[tokio::test]
async fn hexadecimal_scores_increments_and_bounds_are_applied_as_redis_read_them() {
    let (_redis, _relay, mut conn, mut page) = follow(10).await;
    write(
        &mut conn,
        &[
            &["ZADD", "w:hex", "0x10", "a"],
            &["ZADD", "w:hex", "1", "b"],
            &["ZADD", "w:hex", "0x1p3", "c", "+inf", "d", "-0x.8p1", "e"],
            &["ZINCRBY", "w:zi", "0x10", "a"],
            &["ZADD", "w:zi", "INCR", "0x1p-1", "a"],
            &["ZADD", "w:zr", "1", "a", "16", "b", "20", "c"],
            &["ZREMRANGEBYSCORE", "w:zr", "0x0", "0x10"],
            // A bound may start with spaces (strtod skips them), a score may not.
            &["ZADD", "w:sp", "17", "a", "18", "b", "19", "c"],
            &["ZREMRANGEBYSCORE", "w:sp", " 17", "(0x13"],
            &["SET", "w:f", "1.5"],
            &["INCRBYFLOAT", "w:f", "0x10"],
            &["HINCRBYFLOAT", "w:h", "f", "0x1p1"],
        ],
    )
    .await;
    page.settle(&mut conn).await;
    assert_eq!(page.differences(&mut conn).await, Vec::<String>::new());
    assert_eq!(page.topups, 0, "each applied exactly, without a top-up");
    let d = page.assembler.diagnostics();
    assert_eq!((d.bad_arguments, d.unknown_commands), (0, 0));
}

#[tokio::test]
async fn minus_zero_ties_with_zero_and_orders_by_member() {
    // At a window of 1 the member Redis ranks highest is the only one shown.
    let (_redis, _relay, mut conn, mut page) = follow(1).await;
    write(
        &mut conn,
        &[
            &["ZADD", "w:nz", "0", "a", "-0", "b"],
            &["ZADD", "w:zn", "-0", "b", "0", "a"],
            &["ZADD", "w:z", "-0", "a"],
        ],
    )
    .await;
    page.settle(&mut conn).await;
    assert_eq!(page.differences(&mut conn).await, Vec::<String>::new());
    let top = zset_newest_first(&page.assembler, "w:nz");
    assert_eq!(top, [("b".to_string(), 0.0)]);
    assert!(top[0].1.is_sign_positive(), "Redis prints it 0");
}

#[tokio::test]
async fn pfcount_rewriting_a_hyperloglog_is_followed() {
    let (_redis, _relay, mut conn, mut page) = follow(10).await;
    write(&mut conn, &[&["PFADD", "w:hll", "a", "b", "c"]]).await;
    page.settle(&mut conn).await;
    assert_eq!(page.differences(&mut conn).await, Vec::<String>::new());
    // PFCOUNT caches the cardinality inside the string, and Redis propagates it for that.
    let before = page.topups;
    write(&mut conn, &[&["PFCOUNT", "w:hll"]]).await;
    page.settle(&mut conn).await;
    assert_eq!(page.differences(&mut conn).await, Vec::<String>::new());
    assert_eq!(page.topups, before + 1, "the new bytes come in a top-up");
}

#[tokio::test]
async fn zremrangebylex_over_different_scores_removes_what_redis_removed() {
    let (_redis, _relay, mut conn, mut page) = follow(10).await;
    write(
        &mut conn,
        &[
            &["ZADD", "w:lex", "1", "a", "2", "c", "3", "b"],
            &["ZADD", "w:one", "0", "a", "0", "b", "0", "c", "0", "d"],
        ],
    )
    .await;
    page.settle(&mut conn).await;
    // Redis walks `a, c, b` in score order and stops at `c`: only `a` goes, `b` stays.
    write(
        &mut conn,
        &[
            &["ZREMRANGEBYLEX", "w:lex", "[a", "[b"],
            &["ZREMRANGEBYLEX", "w:one", "(a", "[c"],
        ],
    )
    .await;
    page.settle(&mut conn).await;
    assert_eq!(page.differences(&mut conn).await, Vec::<String>::new());
    assert_eq!(
        zset_newest_first(&page.assembler, "w:lex"),
        [("b".to_string(), 3.0), ("c".to_string(), 2.0)]
    );
    assert_eq!(
        page.topups, 1,
        "one score, a complete window: applied exactly"
    );
}
