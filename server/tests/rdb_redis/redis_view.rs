//! What Redis answers for a key: `TYPE`, `PEXPIRETIME`, then the reads of its type.

use std::collections::BTreeMap;

use redis::Value as Reply;

use crate::canon::{sorted, sorted_groups, Canon, GroupCanon, KeyCanon, StreamCanon};

pub fn bytes(r: &Reply) -> Vec<u8> {
    match r {
        Reply::BulkString(b) => b.clone(),
        Reply::SimpleString(s) => s.as_bytes().to_vec(),
        Reply::Int(i) => i.to_string().into_bytes(),
        other => panic!("expected a string, got {other:?}"),
    }
}

pub fn text(r: &Reply) -> String {
    String::from_utf8(bytes(r)).unwrap()
}

pub fn array(r: &Reply) -> &[Reply] {
    match r {
        Reply::Array(a) => a,
        other => panic!("expected an array, got {other:?}"),
    }
}

/// A flat `[name, value, …]` reply as a map by name.
pub fn fields(r: &Reply) -> BTreeMap<String, Reply> {
    array(r)
        .chunks(2)
        .map(|p| (text(&p[0]), p[1].clone()))
        .collect()
}

pub fn int(r: &Reply) -> i64 {
    match r {
        Reply::Int(i) => *i,
        other => text(other).parse().unwrap(),
    }
}

pub fn query(con: &mut redis::Connection, args: &[&[u8]]) -> Reply {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap());
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(con)
        .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(args[0])))
}

pub fn redis_view(con: &mut redis::Connection, db: u64, key: &[u8]) -> KeyCanon {
    let kind = text(&query(con, &[b"TYPE", key]));
    let expire = int(&query(con, &[b"PEXPIRETIME", key]));
    let value = match kind.as_str() {
        "string" => Canon::String(bytes(&query(con, &[b"GET", key]))),
        "list" => Canon::List(
            array(&query(con, &[b"LRANGE", key, b"0", b"-1"]))
                .iter()
                .map(bytes)
                .collect(),
        ),
        "set" => Canon::Set(sorted(
            array(&query(con, &[b"SMEMBERS", key]))
                .iter()
                .map(bytes)
                .collect(),
        )),
        "zset" => {
            let reply = query(con, &[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"]);
            let pairs = array(&reply)
                .chunks(2)
                .map(|p| (bytes(&p[0]), text(&p[1]).parse::<f64>().unwrap().to_bits()))
                .collect();
            Canon::ZSet(sorted(pairs))
        }
        "hash" => {
            let reply = query(con, &[b"HGETALL", key]);
            Canon::Hash(
                array(&reply)
                    .chunks(2)
                    .map(|p| (bytes(&p[0]), bytes(&p[1])))
                    .collect(),
            )
        }
        "stream" => Canon::Stream(redis_stream(con, key)),
        other => panic!("unexpected type {other}"),
    };
    KeyCanon {
        db,
        key: key.to_vec(),
        kind,
        expire_ms: (expire >= 0).then_some(expire),
        value,
    }
}

pub fn redis_stream(con: &mut redis::Connection, key: &[u8]) -> StreamCanon {
    let entries = array(&query(con, &[b"XRANGE", key, b"-", b"+"]))
        .iter()
        .map(|e| {
            let e = array(e);
            let f = array(&e[1])
                .chunks(2)
                .map(|p| (bytes(&p[0]), bytes(&p[1])))
                .collect();
            (text(&e[0]), f)
        })
        .collect();
    let info = fields(&query(con, &[b"XINFO", b"STREAM", key]));
    let mut groups = Vec::new();
    for g in array(&query(con, &[b"XINFO", b"GROUPS", key])) {
        let g = fields(g);
        let name = bytes(&g["name"]);
        let pending = array(&query(
            con,
            &[b"XPENDING", key, &name, b"-", b"+", b"100000"],
        ))
        .iter()
        .map(|p| {
            let p = array(p);
            (text(&p[0]), bytes(&p[1]), int(&p[3]) as u64)
        })
        .collect();
        let consumers = array(&query(con, &[b"XINFO", b"CONSUMERS", key, &name]))
            .iter()
            .map(|c| bytes(&fields(c)["name"]))
            .collect();
        groups.push(GroupCanon {
            name,
            last_id: text(&g["last-delivered-id"]),
            entries_read: match &g["entries-read"] {
                Reply::Nil => None,
                r => Some(int(r) as u64),
            },
            pending,
            consumers: sorted(consumers),
        });
    }
    StreamCanon {
        entries,
        length: int(&info["length"]) as u64,
        last_id: text(&info["last-generated-id"]),
        max_deleted_id: text(&info["max-deleted-entry-id"]),
        entries_added: int(&info["entries-added"]) as u64,
        groups: sorted_groups(groups),
    }
}
