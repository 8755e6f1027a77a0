//! LZF decompression, the format Redis uses for compressed strings (`rdbcompression yes`).
//!
//! A compressed block is a sequence of runs: a control byte below 32 starts a literal run of `ctrl + 1` bytes; any
//! other control byte is a back reference of `(ctrl >> 5) + 2` bytes (with an extra length byte when the 3-bit
//! length is 7) copied from `((ctrl & 0x1f) << 8) + next + 1` bytes back in the output. Written from that
//! description of the format; every read and copy is bounds-checked.

/// Most output bytes per input byte: the longest back reference, 3 bytes (control, length, offset), copies
/// 7 + 255 + 2 = 264 bytes, and nothing expands more. A block claiming more is refused before its output is
/// allocated, so a few bytes of a file cannot make the reader allocate the largest string allowed.
pub const MAX_EXPANSION: usize = 264 / 3;

/// Why a compressed block could not be decompressed; `at` is the position in the compressed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LzfError {
    pub at: usize,
    pub expected: &'static str,
}

/// Decompresses `input`, which must come to exactly `expected_len` bytes, into the start of `out`, and returns
/// them. `out` is a scratch buffer kept from one call to the next: its length is how much of it has been zeroed so
/// far, which only grows (up to the longest block seen, as its capacity would anyway), so a block is not zeroed
/// again because a shorter one came before it.
pub fn decompress<'o>(
    input: &[u8],
    expected_len: usize,
    out: &'o mut Vec<u8>,
) -> Result<&'o [u8], LzfError> {
    // The output is sized once and written by index: runs are short (up to 32 literal bytes, 264 copied ones),
    // so copying them in place beats growing a vector run by run. Only the part beyond what `out` held before is
    // zeroed: every byte up to `expected_len` is written below before it is read, or the block is refused.
    if expected_len > input.len().saturating_mul(MAX_EXPANSION) {
        return Err(LzfError {
            at: 0,
            expected:
                "an uncompressed length at most 88 times the compressed one (LZF expands no more)",
        });
    }
    if out.len() < expected_len {
        out.resize(expected_len, 0);
    }
    let out = &mut out[..expected_len];
    let mut op = 0;
    let mut ip = 0;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            // Away from both ends, a literal run is copied as a fixed 32 bytes (two vector moves instead of a
            // loop or a `memcpy` call): the bytes past the run are overwritten by what comes next.
            if let (Some(literal), Some(dest)) = (input.get(ip..ip + 32), out.get_mut(op..op + 32))
            {
                dest.copy_from_slice(literal);
                op += run;
                ip += run;
                continue;
            }
            let literal = input.get(ip..ip + run).ok_or(LzfError {
                at: ip,
                expected: "the literal bytes its control byte announces",
            })?;
            let dest = out.get_mut(op..op + run).ok_or(LzfError {
                at: ip,
                expected: "no more output than the uncompressed length",
            })?;
            copy_short(dest, literal);
            op += run;
            ip += run;
            continue;
        }
        let mut len = ctrl >> 5;
        if len == 7 {
            len += *input.get(ip).ok_or(LzfError {
                at: ip,
                expected: "a back reference's length byte",
            })? as usize;
            ip += 1;
        }
        len += 2;
        let low = *input.get(ip).ok_or(LzfError {
            at: ip,
            expected: "a back reference's offset byte",
        })? as usize;
        ip += 1;
        let distance = ((ctrl & 0x1f) << 8) + low + 1;
        if distance > op {
            return Err(LzfError {
                at: ip - 1,
                expected: "a back reference inside the output so far",
            });
        }
        if op + len > expected_len {
            return Err(LzfError {
                at: ip - 1,
                expected: "no more output than the uncompressed length",
            });
        }
        let from = op - distance;
        if distance >= len {
            let (done, rest) = out.split_at_mut(op);
            copy_short(&mut rest[..len], &done[from..from + len]);
        } else {
            // Overlapping copy: each byte may be one this copy just wrote (a run of a repeated pattern).
            for i in 0..len {
                out[op + i] = out[from + i];
            }
        }
        op += len;
    }
    if op != expected_len {
        return Err(LzfError {
            at: input.len(),
            expected: "as many output bytes as the uncompressed length",
        });
    }
    Ok(out)
}

/// Copies `src` into `dest` (same length): a plain loop for the short runs LZF is made of, `memcpy` beyond.
#[inline(always)]
fn copy_short(dest: &mut [u8], src: &[u8]) {
    if src.len() <= 16 {
        for (d, s) in dest.iter_mut().zip(src) {
            *d = *s;
        }
    } else {
        dest.copy_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_back_references() {
        // "abc" literal, then a back reference of 6 bytes at distance 3 (overlapping): "abcabcabc".
        let input = [2, b'a', b'b', b'c', (4 << 5), 2];
        let mut out = Vec::new();
        assert_eq!(decompress(&input, 9, &mut out).unwrap(), b"abcabcabc");
    }

    #[test]
    fn long_back_reference_uses_the_extra_length_byte() {
        // "a", then 7+3+2 = 12 copies of distance 1.
        let input = [0, b'a', 7 << 5, 3, 0];
        let mut out = Vec::new();
        assert_eq!(decompress(&input, 13, &mut out).unwrap(), [b'a'; 13]);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        assert!(decompress(&[5, b'a'], 6, &mut out).is_err());
        assert!(decompress(&[0, b'a', 1 << 5, 9], 4, &mut out).is_err());
        assert!(decompress(&[0, b'a'], 2, &mut out).is_err());
        assert!(decompress(&[0, b'a', 7 << 5], 40, &mut out).is_err());
        assert!(decompress(&[1, b'a', b'b'], 1, &mut out).is_err());
    }

    /// A valid block and what it decompresses to: literal runs of every length (1 to 32) and back references of
    /// every length class at short and long distances, chosen by a small generator.
    fn block(seed: u32, runs: usize) -> (Vec<u8>, Vec<u8>) {
        let mut state = seed | 1;
        let mut next = move |below: usize| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as usize % below
        };
        let (mut input, mut output) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            if output.is_empty() || next(2) == 0 {
                let run = 1 + next(32);
                input.push((run - 1) as u8);
                for _ in 0..run {
                    let byte = next(256) as u8;
                    input.push(byte);
                    output.push(byte);
                }
            } else {
                let distance = 1 + next(output.len().min(8192));
                let len = 3 + next(262);
                let short = len - 2;
                if short < 7 {
                    input.push(((short << 5) | ((distance - 1) >> 8)) as u8);
                } else {
                    input.push(((7 << 5) | ((distance - 1) >> 8)) as u8);
                    input.push((short - 7) as u8);
                }
                input.push(((distance - 1) & 0xff) as u8);
                for _ in 0..len {
                    output.push(output[output.len() - distance]);
                }
            }
        }
        (input, output)
    }

    #[test]
    fn runs_at_every_place_decompress_as_defined_into_a_reused_buffer() {
        // One scratch vector for all, as the reader uses it: a block after a longer one must not show the
        // longer one's bytes, and literal runs near either end of the input or the output must not overrun them.
        let mut out = Vec::new();
        for seed in 1..200u32 {
            let (input, expected) = block(seed, 1 + (seed as usize * 7) % 60);
            let got = decompress(&input, expected.len(), &mut out).unwrap();
            assert_eq!(got, expected, "seed {seed}");
            // Kept zeroed for the next block: what the longest block so far needed, no more.
            assert!(out.len() >= expected.len());
        }
    }

    #[test]
    fn the_longest_expansion_is_accepted_and_a_larger_claim_refused_before_allocating() {
        // "a", then a back reference of 7 + 255 + 2 = 264 bytes at distance 1: 265 bytes from 5.
        let input = [0, b'a', 7 << 5, 255, 0];
        let mut out = Vec::new();
        assert_eq!(decompress(&input, 265, &mut out).unwrap(), [b'a'; 265]);
        // Two bytes claiming 512 MiB: refused without sizing the output for it.
        let mut out = Vec::new();
        let err = decompress(&[0, b'a'], 512 << 20, &mut out).unwrap_err();
        assert_eq!(err.at, 0);
        assert!(err.expected.contains("88 times"), "{}", err.expected);
        assert!(out.capacity() < 1024, "{} bytes allocated", out.capacity());
    }
}
