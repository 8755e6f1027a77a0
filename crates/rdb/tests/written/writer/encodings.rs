//! The compact encodings a writer puts inside RDB strings — ziplist, listpack, intset, zipmap — and LZF and the
//! CRC64 trailer, written from their definitions in Redis's `ziplist.c`, `listpack.c`, `intset.c`, `zipmap.c`,
//! `lzf_c.c` and `crc64.c`, independently of the reader's code.

/// The integer an entry holds when its bytes are one as Redis would print it (`-5`, `300`; not `05` or `+5`):
/// compact encodings store those as integers, as Redis does.
pub fn canonical_int(bytes: &[u8]) -> Option<i64> {
    let n: i64 = std::str::from_utf8(bytes).ok()?.parse().ok()?;
    (n.to_string().as_bytes() == bytes).then_some(n)
}

/// A ziplist of `entries`: `zlbytes`, `zltail`, `zllen`, then each entry after its previous entry's length.
pub fn ziplist(entries: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut previous = 0usize;
    let mut tail = 10;
    for entry in entries {
        let start = body.len();
        tail = 10 + start;
        if previous < 254 {
            body.push(previous as u8);
        } else {
            body.push(0xfe);
            body.extend((previous as u32).to_le_bytes());
        }
        match canonical_int(entry) {
            Some(n @ 0..=12) => body.push(0xf1 + n as u8),
            Some(n) if i8::try_from(n).is_ok() => body.extend([0xfe, n as i8 as u8]),
            Some(n) if i16::try_from(n).is_ok() => {
                body.push(0xc0);
                body.extend((n as i16).to_le_bytes());
            }
            Some(n) if (-(1 << 23)..(1 << 23)).contains(&n) => {
                body.push(0xf0);
                body.extend(&(n as i32).to_le_bytes()[..3]);
            }
            Some(n) if i32::try_from(n).is_ok() => {
                body.push(0xd0);
                body.extend((n as i32).to_le_bytes());
            }
            Some(n) => {
                body.push(0xe0);
                body.extend(n.to_le_bytes());
            }
            None => {
                let len = entry.len();
                if len < 64 {
                    body.push(len as u8);
                } else if len < 16384 {
                    body.extend([0x40 | (len >> 8) as u8, len as u8]);
                } else {
                    body.push(0x80);
                    body.extend((len as u32).to_be_bytes());
                }
                body.extend_from_slice(entry);
            }
        }
        previous = body.len() - start;
    }
    let mut zl = Vec::with_capacity(body.len() + 11);
    zl.extend(((11 + body.len()) as u32).to_le_bytes());
    zl.extend((tail as u32).to_le_bytes());
    zl.extend((entries.len().min(65535) as u16).to_le_bytes());
    zl.extend(body);
    zl.push(0xff);
    zl
}

/// A listpack of `entries`: total bytes, count, then each entry's encoding, data and back-length.
pub fn listpack(entries: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    for entry in entries {
        let start = body.len();
        match canonical_int(entry) {
            Some(n @ 0..=127) => body.push(n as u8),
            Some(n) if (-4096..4096).contains(&n) => {
                let u = (n as u16) & 0x1fff;
                body.extend([0xc0 | (u >> 8) as u8, u as u8]);
            }
            Some(n) if i16::try_from(n).is_ok() => {
                body.push(0xf1);
                body.extend((n as i16).to_le_bytes());
            }
            Some(n) if (-(1 << 23)..(1 << 23)).contains(&n) => {
                body.push(0xf2);
                body.extend(&(n as i32).to_le_bytes()[..3]);
            }
            Some(n) if i32::try_from(n).is_ok() => {
                body.push(0xf3);
                body.extend((n as i32).to_le_bytes());
            }
            Some(n) => {
                body.push(0xf4);
                body.extend(n.to_le_bytes());
            }
            None => {
                let len = entry.len();
                if len < 64 {
                    body.push(0x80 | len as u8);
                } else if len < 4096 {
                    body.extend([0xe0 | (len >> 8) as u8, len as u8]);
                } else {
                    body.push(0xf0);
                    body.extend((len as u32).to_le_bytes());
                }
                body.extend_from_slice(entry);
            }
        }
        let size = body.len() - start;
        body.extend(backlen(size));
    }
    let mut lp = Vec::with_capacity(body.len() + 7);
    lp.extend(((7 + body.len()) as u32).to_le_bytes());
    lp.extend((entries.len().min(65535) as u16).to_le_bytes());
    lp.extend(body);
    lp.push(0xff);
    lp
}

/// A listpack entry's length, read right to left: 7 bits a byte, the high bit set on all but the leftmost.
fn backlen(size: usize) -> Vec<u8> {
    let mut out = vec![(size & 127) as u8];
    let mut rest = size >> 7;
    while rest > 0 {
        out.insert(0, (rest & 127) as u8);
        rest >>= 7;
    }
    for byte in &mut out[1..] {
        *byte |= 128;
    }
    out
}

/// An intset of `members`, sorted, at the narrowest width that holds them all.
pub fn intset(members: &[i64]) -> Vec<u8> {
    let mut sorted = members.to_vec();
    sorted.sort_unstable();
    let width: usize = if sorted.iter().all(|&n| i16::try_from(n).is_ok()) {
        2
    } else if sorted.iter().all(|&n| i32::try_from(n).is_ok()) {
        4
    } else {
        8
    };
    let mut out = Vec::new();
    out.extend((width as u32).to_le_bytes());
    out.extend((sorted.len() as u32).to_le_bytes());
    for n in sorted {
        out.extend(&n.to_le_bytes()[..width]);
    }
    out
}

/// A zipmap of `pairs`: a count byte, then each key and value after its length (values with no free bytes).
pub fn zipmap(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    fn len(out: &mut Vec<u8>, n: usize) {
        if n < 254 {
            out.push(n as u8);
        } else {
            out.push(254);
            out.extend((n as u32).to_le_bytes());
        }
    }
    let mut out = vec![pairs.len().min(254) as u8];
    for (key, value) in pairs {
        len(&mut out, key.len());
        out.extend_from_slice(key);
        len(&mut out, value.len());
        out.push(0);
        out.extend_from_slice(value);
    }
    out.push(0xff);
    out
}

/// `input` LZF-compressed as `lzf_c.c` does it: literal runs of up to 32 bytes, and back-references of 3 to 264
/// bytes up to 8 KiB back, each found through a table of where each 3-byte sequence was last seen.
pub fn lzf(input: &[u8]) -> Vec<u8> {
    const MAX_OFF: usize = 8192;
    const MAX_REF: usize = 264;
    let mut out = Vec::new();
    let mut literal: Vec<u8> = Vec::new();
    let flush = |out: &mut Vec<u8>, literal: &mut Vec<u8>| {
        for run in literal.chunks(32) {
            out.push((run.len() - 1) as u8);
            out.extend_from_slice(run);
        }
        literal.clear();
    };
    let mut last_seen = std::collections::HashMap::new();
    let mut i = 0;
    while i < input.len() {
        let candidate = input
            .get(i..i + 3)
            .and_then(|three| last_seen.insert([three[0], three[1], three[2]], i))
            .filter(|&from| i - from <= MAX_OFF);
        let len = candidate.map_or(0, |from| {
            (0..MAX_REF.min(input.len() - i))
                .take_while(|&k| input[from + k] == input[i + k])
                .count()
        });
        match candidate {
            Some(from) if len >= 3 => {
                flush(&mut out, &mut literal);
                let (l, off) = (len - 2, i - from - 1);
                if l < 7 {
                    out.push(((l as u8) << 5) | (off >> 8) as u8);
                } else {
                    out.push((7 << 5) | (off >> 8) as u8);
                    out.push((l - 7) as u8);
                }
                out.push(off as u8);
                i += len;
            }
            _ => {
                literal.push(input[i]);
                i += 1;
            }
        }
    }
    flush(&mut out, &mut literal);
    out
}

/// Redis's CRC64 (reflected Jones polynomial), bit by bit.
pub fn crc64(bytes: &[u8]) -> u64 {
    let mut crc = 0u64;
    for &b in bytes {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x95ac_9329_ac4b_c9b5
            } else {
                crc >> 1
            };
        }
    }
    crc
}
