//! Property tests of the windows: random command sequences for each type go both to a StreamAssembler and to a
//! reference model that holds the whole Redis value; after every command (and the top-ups the windows asked for,
//! answered from the model as the relay would), each window must equal the model's newest N. Every key starts
//! from a snapshot of a random larger value, so windows begin incomplete, as after a page joins.
#![cfg(not(target_arch = "wasm32"))]

mod assembled;

use std::collections::{BTreeMap, VecDeque};

use assembled::{canon, check_mirror, resp, Mirror};
use proptest::collection::vec;
use proptest::prelude::*;
use replicast_assembler::{StreamAssembler, WatchConfig};
use replicast_protocol::wire::{encode_commands, encode_hello, encode_snapshot};

const N: usize = 3;

type Cmd = Vec<String>;

/// The whole value of every key, as Redis holds it.
#[derive(Debug, Clone, Default)]
struct Model {
    zsets: BTreeMap<String, BTreeMap<String, f64>>,
    lists: BTreeMap<String, VecDeque<String>>,
    hashes: BTreeMap<String, BTreeMap<String, String>>,
    strings: BTreeMap<String, String>,
    streams: BTreeMap<String, BTreeMap<(u64, u64), String>>,
    next_ms: u64,
}

fn fmt_score(s: f64) -> String {
    format!("{s}")
}

impl Model {
    fn zset_sorted(z: &BTreeMap<String, f64>) -> Vec<(f64, String)> {
        let mut v: Vec<(f64, String)> = z.iter().map(|(m, s)| (*s, m.clone())).collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        v
    }

    /// The snapshot the relay would send for `key`: `DEL`, then its newest N.
    fn snapshot(&self, key: &str) -> Vec<u8> {
        let mut out = resp(&["DEL", key]);
        let mut cmd: Vec<String> = Vec::new();
        if let Some(z) = self.zsets.get(key) {
            let all = Self::zset_sorted(z);
            cmd = vec!["ZADD".into(), key.into()];
            for (s, m) in &all[all.len().saturating_sub(N)..] {
                cmd.extend([fmt_score(*s), m.clone()]);
            }
        } else if let Some(l) = self.lists.get(key) {
            cmd = vec!["RPUSH".into(), key.into()];
            cmd.extend(l.iter().skip(l.len().saturating_sub(N)).cloned());
        } else if let Some(h) = self.hashes.get(key) {
            cmd = vec!["HSET".into(), key.into()];
            for (f, v) in h {
                cmd.extend([f.clone(), v.clone()]);
            }
        } else if let Some(s) = self.strings.get(key) {
            cmd = vec!["SET".into(), key.into(), s.clone()];
        } else if let Some(x) = self.streams.get(key) {
            for ((ms, seq), v) in x.iter().skip(x.len().saturating_sub(N)) {
                out.extend(resp(&["XADD", key, &format!("{ms}-{seq}"), "f", v]));
            }
        }
        if cmd.len() > 2 {
            out.extend(resp(&cmd));
        }
        out
    }

    /// The window the model says `key` should have, in the form of [`canon`] (None: no window).
    fn expected(&self, key: &str) -> Option<Vec<String>> {
        let mut a = StreamAssembler::new(watch());
        a.push_message(&encode_hello("m", 0)).unwrap();
        a.push_message(&encode_snapshot(0, &self.snapshot(key)))
            .unwrap();
        a.window(key.as_bytes()).map(canon)
    }
}

fn watch() -> WatchConfig {
    WatchConfig {
        patterns: vec![b"*".to_vec()],
        db: 0,
        window: N,
    }
}

/// Applies one random command to the model: returns what Redis propagates (nothing if it changed nothing).
type Apply<T> = fn(&mut Model, T) -> Option<Cmd>;

fn c(words: &[&str]) -> Option<Cmd> {
    Some(words.iter().map(|w| w.to_string()).collect())
}

fn zset_op() -> impl Strategy<Value = (u8, i8, u8, i8)> {
    (0u8..9, -4i8..5, 0u8..6, -4i8..4)
}

fn apply_zset(m: &mut Model, (kind, score, member, n): (u8, i8, u8, i8)) -> Option<Cmd> {
    let key = "z";
    let member = format!("m{member}");
    let s = f64::from(score);
    let z = m.zsets.entry(key.into()).or_default();
    let old = z.get(&member).copied();
    let out = match kind {
        0 => {
            z.insert(member.clone(), s);
            c(&["ZADD", key, &fmt_score(s), &member])
        }
        1 if old.is_none() => {
            z.insert(member.clone(), s);
            c(&["ZADD", key, "NX", &fmt_score(s), &member])
        }
        2 if old.is_some() => {
            z.insert(member.clone(), s);
            c(&["ZADD", key, "XX", &fmt_score(s), &member])
        }
        3 if old.is_none_or(|o| s > o) => {
            z.insert(member.clone(), s);
            c(&["ZADD", key, "GT", &fmt_score(s), &member])
        }
        4 if old.is_none_or(|o| s < o) => {
            z.insert(member.clone(), s);
            c(&["ZADD", key, "LT", &fmt_score(s), &member])
        }
        5 => {
            z.insert(member.clone(), old.unwrap_or(0.0) + s);
            c(&["ZINCRBY", key, &fmt_score(s), &member])
        }
        6 if old.is_some() => {
            z.remove(&member);
            c(&["ZREM", key, &member])
        }
        7 => {
            let sorted = Model::zset_sorted(z);
            let len = sorted.len() as i64;
            let (start, stop) = (i64::from(n), i64::from(score));
            let st = if start < 0 { len + start } else { start }.max(0);
            let en = if stop < 0 { len + stop } else { stop }.min(len - 1);
            if st > en || len == 0 {
                None
            } else {
                for (_, mm) in &sorted[st as usize..=en as usize] {
                    z.remove(mm);
                }
                c(&[
                    "ZREMRANGEBYRANK",
                    key,
                    &start.to_string(),
                    &stop.to_string(),
                ])
            }
        }
        8 if !z.is_empty() => {
            let count = (n.unsigned_abs() % 3 + 1) as usize;
            let sorted = Model::zset_sorted(z);
            let max = score > 0;
            let doomed: Vec<&(f64, String)> = if max {
                sorted.iter().rev().take(count).collect()
            } else {
                sorted.iter().take(count).collect()
            };
            for (_, mm) in doomed {
                z.remove(mm);
            }
            c(&[
                if max { "ZPOPMAX" } else { "ZPOPMIN" },
                key,
                &count.to_string(),
            ])
        }
        _ => None,
    };
    if m.zsets.get(key).is_some_and(|z| z.is_empty()) {
        m.zsets.remove(key);
    }
    out
}

fn apply_list(m: &mut Model, (kind, a, b, v): (u8, i8, i8, u8)) -> Option<Cmd> {
    let key = if a % 2 == 0 { "l" } else { "l2" };
    let value = format!("v{v}");
    let l = m.lists.entry(key.into()).or_default();
    let len = l.len() as i64;
    let norm = |i: i64| if i < 0 { len + i } else { i };
    let out = match kind {
        0 => {
            l.push_back(value.clone());
            c(&["RPUSH", key, &value])
        }
        1 => {
            l.push_front(value.clone());
            c(&["LPUSH", key, &value])
        }
        2 | 3 if len > 0 => {
            let count = (b.unsigned_abs() % 3 + 1) as usize;
            for _ in 0..count {
                if kind == 2 {
                    l.pop_front();
                } else {
                    l.pop_back();
                }
            }
            c(&[
                if kind == 2 { "LPOP" } else { "RPOP" },
                key,
                &count.to_string(),
            ])
        }
        4 if len > 0 => {
            let (s, e) = (norm(i64::from(a)).max(0), norm(i64::from(b)).min(len - 1));
            let kept: VecDeque<String> = if s > e || s >= len {
                VecDeque::new()
            } else {
                l.range(s as usize..=e as usize).cloned().collect()
            };
            *l = kept;
            c(&["LTRIM", key, &a.to_string(), &b.to_string()])
        }
        5 if (0..len).contains(&norm(i64::from(b))) => {
            l[norm(i64::from(b)) as usize] = value.clone();
            c(&["LSET", key, &b.to_string(), &value])
        }
        6 if l.contains(&value) => {
            let count = i64::from(b % 3);
            let mut removed = 0;
            let limit = if count == 0 {
                usize::MAX
            } else {
                count.unsigned_abs() as usize
            };
            if count >= 0 {
                l.retain(|x| {
                    !(x == &value && {
                        removed += 1;
                        removed <= limit
                    })
                });
            } else {
                let mut rev: Vec<String> = l.iter().rev().cloned().collect();
                rev.retain(|x| {
                    !(x == &value && {
                        removed += 1;
                        removed <= limit
                    })
                });
                *l = rev.into_iter().rev().collect();
            }
            c(&["LREM", key, &count.to_string(), &value])
        }
        7 if len > 0 => {
            let pivot = l[(b.unsigned_abs() as usize) % l.len()].clone();
            let at = l.iter().position(|x| x == &pivot).unwrap();
            let before = a > 0;
            l.insert(if before { at } else { at + 1 }, value.clone());
            c(&[
                "LINSERT",
                key,
                if before { "BEFORE" } else { "AFTER" },
                &pivot,
                &value,
            ])
        }
        8 if len > 0 => {
            let (from_left, to_left) = (a > 0, b > 0);
            let item = if from_left {
                l.pop_front()
            } else {
                l.pop_back()
            }
            .unwrap();
            let dst = if key == "l" { "l2" } else { "l" };
            let d = m.lists.entry(dst.into()).or_default();
            if to_left {
                d.push_front(item);
            } else {
                d.push_back(item);
            }
            let side = |left: bool| if left { "LEFT" } else { "RIGHT" };
            c(&["LMOVE", key, dst, side(from_left), side(to_left)])
        }
        _ => None,
    };
    m.lists.retain(|_, l| !l.is_empty());
    out
}

fn apply_hash(m: &mut Model, (kind, f, n): (u8, u8, i8)) -> Option<Cmd> {
    let key = "h";
    let field = format!("f{f}");
    let h = m.hashes.entry(key.into()).or_default();
    let out = match kind {
        0 | 1 => {
            h.insert(field.clone(), n.to_string());
            c(&["HSET", key, &field, &n.to_string()])
        }
        2 if h.contains_key(&field) => {
            h.remove(&field);
            c(&["HDEL", key, &field])
        }
        3 => {
            let old: i64 = h.get(&field).map_or(0, |v| v.parse().unwrap());
            h.insert(field.clone(), (old + i64::from(n)).to_string());
            c(&["HINCRBY", key, &field, &n.to_string()])
        }
        _ => None,
    };
    m.hashes.retain(|_, h| !h.is_empty());
    out
}

fn apply_string(m: &mut Model, (kind, off, n): (u8, u8, i8)) -> Option<Cmd> {
    let key = "s";
    let old = m.strings.get(key).cloned();
    let numeric = old.as_deref().is_none_or(|v| v.parse::<i64>().is_ok());
    let (value, cmd) = match kind {
        0 => (n.to_string(), c(&["SET", key, &n.to_string()])),
        1 => (
            format!("{}{n}", old.unwrap_or_default()),
            c(&["APPEND", key, &n.to_string()]),
        ),
        2 if numeric => {
            let v: i64 = old.map_or(0, |v| v.parse().unwrap());
            (
                (v + i64::from(n)).to_string(),
                c(&["INCRBY", key, &n.to_string()]),
            )
        }
        3 => {
            let mut bytes = old.unwrap_or_default().into_bytes();
            let off = usize::from(off % 5);
            let patch = b"xy";
            if bytes.len() < off + 2 {
                bytes.resize(off + 2, b'0');
            }
            // Zero bytes would not survive `String`; pad with '0' in both the model and Redis's place.
            bytes[off..off + 2].copy_from_slice(patch);
            let v = String::from_utf8(bytes).unwrap();
            return Some(vec!["SET".into(), key.into(), v.clone()]).inspect(|_| {
                m.strings.insert(key.into(), v);
            });
        }
        4 if old.is_some() => {
            m.strings.remove(key);
            return c(&["DEL", key]);
        }
        _ => return None,
    };
    m.strings.insert(key.into(), value);
    cmd
}

fn apply_stream(m: &mut Model, (kind, a, n): (u8, u8, i8)) -> Option<Cmd> {
    let key = "x";
    m.next_ms += 1;
    let ms = m.next_ms;
    let x = m.streams.entry(key.into()).or_default();
    match kind {
        0 | 1 => {
            x.insert((ms, 0), n.to_string());
            c(&["XADD", key, &format!("{ms}-0"), "f", &n.to_string()])
        }
        2 => {
            x.insert((ms, 0), n.to_string());
            let max = u64::from(a % 5);
            while x.len() as u64 > max {
                x.pop_first();
            }
            c(&[
                "XADD",
                key,
                "MAXLEN",
                "=",
                &max.to_string(),
                &format!("{ms}-0"),
                "f",
                &n.to_string(),
            ])
        }
        3 => {
            let id = ms.saturating_sub(u64::from(a % 8));
            if x.remove(&(id, 0)).is_some() {
                c(&["XDEL", key, &format!("{id}-0")])
            } else {
                None
            }
        }
        4 => {
            let min = ms.saturating_sub(u64::from(a % 8));
            let before = x.len();
            x.retain(|id, _| *id >= (min, 0));
            (x.len() < before).then(|| {
                vec![
                    "XTRIM".into(),
                    key.into(),
                    "MINID".into(),
                    format!("{min}-0"),
                ]
            })
        }
        _ => None,
    }
}

/// Runs `initial` silently on the model (Redis's state before the page joined), snapshots every key, then runs
/// `ops`, checking the windows after each.
fn check<T: Copy>(apply: Apply<T>, initial: Vec<T>, ops: Vec<T>) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    for op in &initial {
        apply(&mut model, *op);
    }
    let mut a = StreamAssembler::with_observer(watch(), Mirror::default());
    a.push_message(&encode_hello("p", 0)).unwrap();
    let keys = ["z", "l", "l2", "h", "s", "x"];
    let snapshot: Vec<u8> = keys.iter().flat_map(|k| model.snapshot(k)).collect();
    a.push_message(&encode_snapshot(0, &snapshot)).unwrap();
    let mut offset = 0;
    for (step, op) in ops.iter().enumerate() {
        if let Some(cmd) = apply(&mut model, *op) {
            let bytes = resp(&cmd);
            a.push_message(&encode_commands(offset, &bytes)).unwrap();
            offset += bytes.len() as u64;
        }
        let topups = a.take_topups();
        if !topups.is_empty() {
            let snap: Vec<u8> = topups
                .iter()
                .flat_map(|k| model.snapshot(std::str::from_utf8(k).unwrap()))
                .collect();
            a.push_message(&encode_snapshot(offset, &snap)).unwrap();
        }
        check_mirror(&a);
        for key in keys {
            let got = a.window(key.as_bytes());
            prop_assert!(got.is_none_or(|w| !w.stale()), "step {step}: {key} stale");
            // An empty stream still exists in Redis, but a snapshot of it has nothing to rebuild.
            let got = got.filter(|w| !(w.as_stream().is_some() && w.is_empty()));
            if let (Some(w), Some(all)) = (got.and_then(|w| w.as_hash()), model.hashes.get(key)) {
                // Past N fields the window keeps the most recently changed ones.
                prop_assert_eq!(w.len(), all.len().min(N), "step {} hash size", step);
                for (field, value, _) in w.newest_first() {
                    let field = std::str::from_utf8(field).unwrap();
                    prop_assert_eq!(all.get(field).map(String::as_bytes), Some(value));
                }
                continue;
            }
            let got = got.map(canon);
            let want = model.expected(key);
            prop_assert_eq!(got, want, "step {} key {}", step, key);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn sorted_set_windows_equal_the_newest_n(
        initial in vec(zset_op(), 0..10),
        ops in vec(zset_op(), 0..30),
    ) {
        check(apply_zset, initial, ops)?;
    }

    #[test]
    fn list_windows_equal_the_last_n(
        initial in vec((0u8..2, -5i8..5, -5i8..5, 0u8..5), 0..10),
        ops in vec((0u8..9, -5i8..5, -5i8..5, 0u8..5), 0..30),
    ) {
        check(apply_list, initial, ops)?;
    }

    #[test]
    fn hash_windows_hold_the_fields(
        initial in vec((0u8..4, 0u8..5, -3i8..3), 0..8),
        ops in vec((0u8..4, 0u8..5, -3i8..3), 0..30),
    ) {
        check(apply_hash, initial, ops)?;
    }

    #[test]
    fn string_windows_hold_the_value(
        initial in vec((0u8..4, 0u8..6, -3i8..3), 0..4),
        ops in vec((0u8..5, 0u8..6, -3i8..3), 0..20),
    ) {
        check(apply_string, initial, ops)?;
    }

    #[test]
    fn stream_windows_equal_the_newest_n(
        initial in vec((0u8..2, 0u8..8, -3i8..3), 0..10),
        ops in vec((0u8..5, 0u8..8, -3i8..3), 0..30),
    ) {
        check(apply_stream, initial, ops)?;
    }
}
