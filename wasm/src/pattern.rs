//! Redis's glob patterns (`*`, `?`, `[a-z]`, `[^x]`, `\x`), as `KEYS`, `SCAN MATCH` and `PSUBSCRIBE` read them,
//! so that a page watches the same keys a `redis-cli --scan --pattern` would list.

/// Whether `text` matches the glob `pattern`, byte for byte.
///
/// Runs in O(pattern × text) time at worst and never recurses: on a mismatch it returns to the last `*` and lets
/// it swallow one more byte, which is enough for globs (a later `*` makes earlier backtracking needless).
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {
                    if let Some(next) = match_one(pattern, p, text[t]) {
                        p = next;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((after_star, swallowed)) => {
                p = after_star;
                t = swallowed + 1;
                star = Some((after_star, swallowed + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Matches one byte against the literal, escape or class at `pattern[p]`; returns the position after it.
fn match_one(pattern: &[u8], p: usize, byte: u8) -> Option<usize> {
    match pattern[p] {
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == byte).then_some(p + 2),
        b'[' => {
            let mut i = p + 1;
            let negate = pattern.get(i) == Some(&b'^');
            if negate {
                i += 1;
            }
            let mut matched = false;
            while i < pattern.len() && pattern[i] != b']' {
                if pattern[i] == b'\\' && i + 1 < pattern.len() {
                    matched |= pattern[i + 1] == byte;
                    i += 2;
                } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']'
                {
                    let (lo, hi) = (
                        pattern[i].min(pattern[i + 2]),
                        pattern[i].max(pattern[i + 2]),
                    );
                    matched |= (lo..=hi).contains(&byte);
                    i += 3;
                } else {
                    matched |= pattern[i] == byte;
                    i += 1;
                }
            }
            // An unclosed class matches as Redis does: up to the end of the pattern.
            (matched != negate).then_some((i + 1).min(pattern.len()))
        }
        literal => (literal == byte).then_some(p + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_as_redis_does() {
        let cases: &[(&str, &str, bool)] = &[
            ("perf:*", "perf:web-1", true),
            ("perf:*", "perf:", true),
            ("perf:*", "perfx", false),
            ("*", "", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h[ae]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("a*b*c", "a-b-x-c", true),
            ("a*b*c", "a-b-x-d", false),
            ("x\\*", "x*", true),
            ("x\\*", "xy", false),
            ("**a", "bba", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                glob_match(pattern.as_bytes(), text.as_bytes()),
                *want,
                "{pattern} ~ {text}"
            );
        }
    }

    #[test]
    fn pathological_patterns_stay_linear_enough() {
        let pattern = "a*".repeat(50) + "b";
        let text = "a".repeat(5000);
        assert!(!glob_match(pattern.as_bytes(), text.as_bytes()));
    }
}
