//! Redis's glob patterns (`*`, `?`, `[a-z]`, `[^x]`, `\x`), as `KEYS` and `SCAN MATCH` read them, so that a page
//! watches the same keys a `redis-cli --scan --pattern` would list, in time linear in the pattern and the key.
//!
//! The semantics are those of Redis's `stringmatchlen`, byte for byte: `?` is any one byte; a class `[…]` may be
//! negated with `^`, holds bytes, escapes (`\]`) and ranges (`a-z`, either way round, compared as signed chars as
//! Redis built for x86-64 compares them, and `a-]` is a range too); a class left open runs to the end of the
//! pattern; `\` escapes the next byte, and is itself when last. An empty key matches only the empty pattern, except
//! that `*` alone matches every key, the empty one too, as `KEYS *` and `SCAN` special-case it.
//!
//! Why linear: the browser chooses both a session's patterns and, through events, the length of keys that reach
//! the relay, so a matcher that backtracks (Redis's own costs pattern × key at worst) hands it the relay's CPU.
//! Every part of a pattern between two `*` matches a fixed number of bytes, so the leftmost place of each part,
//! taken in order, decides the match: the first part is checked at the key's start, the last at its end, and each
//! part between is searched for once, left to right, from where the previous one ended. A part of plain bytes is
//! found with memchr's Two-Way search (linear in what it scans); a part holding `?`, `[…]` or `\` with a bit-parallel
//! scan (Shift-And: one table lookup and a shift per key byte for each 64 positions of the part). So a match costs
//! O(pattern + key × ⌈wildcard positions / 64⌉); the relay keeps the second factor at 1 for browsers' patterns
//! ([`Glob::wildcard_positions`]).
//!
//! Most patterns are simpler than that, and the relay matches every key the stream writes against `--allow` (and
//! the state's view against its own patterns), so the shapes operators and pages write most are decided by
//! comparing bytes at once, found when the pattern is read ([`Fast`]): a literal key, a plain prefix and `*`
//! (`perf:*`: one compare of five bytes), a plain prefix and suffix around stars.

use crate::short_bytes::same_bytes;

/// Where `needle` first occurs in `haystack`, in time linear in both. Natively memchr's `memmem` (a SIMD prefilter
/// before its Two-Way search: the relay matches every key the stream writes); in wasm its Two-Way search alone,
/// the same worst case without the prefilter's 2 KB gzipped of the browser's `.wasm` (a page matches the keys of
/// its own subscription).
fn find_plain(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "wasm32")]
    return memchr::arch::all::twoway::Finder::new(needle).find(haystack, needle);
    #[cfg(not(target_arch = "wasm32"))]
    return memchr::memmem::find(haystack, needle);
}

/// A pattern read once, to be matched against many keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: Vec<u8>,
    shape: Shape,
    /// For each byte value, `words` words: the positions of the searched wildcard parts that accept it, numbered
    /// in pattern order (the Shift-And table). Empty when no such part exists.
    table: Vec<u64>,
    words: usize,
    /// Whether the part before the first `*` (the whole pattern without one), and the part after the last, are
    /// plain bytes (no `?`, `[` or `\`): then they match a key's bytes as they are, compared at once rather than
    /// token by token. The relay asks this of every key the stream writes (`--allow 'perf:*'`).
    plain_ends: (bool, bool),
    /// How [`Glob::matches`] decides.
    fast: Fast,
}

/// A pattern whose parts are all plain bytes and stars, in the form that decides a key with byte compares alone,
/// or `General` for the walk of [`Glob::matches_counting`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fast {
    /// Exactly `*`: every key, the empty one included.
    Everything,
    /// No `*` and nothing but plain bytes (the empty pattern too): the key is the pattern.
    Literal,
    /// Plain bytes, then only stars (`perf:*`): a key, not empty, that starts with `pattern[..prefix]`.
    Prefix { prefix: usize },
    /// Plain bytes, only stars, plain bytes (`perf:*:cpu`): a key, not empty, at least as long as both, that starts
    /// with `pattern[..prefix]` and ends with `pattern[suffix_from..]`.
    PrefixSuffix { prefix: usize, suffix_from: usize },
    /// Anything else: a `?`, a class or an escape anywhere, or a part between two stars.
    General,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Exactly `*`: every key, the empty one included.
    Everything,
    /// No `*`: the key must have exactly this many bytes, each matching its position.
    Exact { positions: usize },
    /// `prefix-part * … * suffix-part`: the parts before the first `*` and after the last, in pattern bytes and in
    /// positions.
    Stars {
        first_star: usize,
        after_last_star: usize,
        prefix: usize,
        suffix: usize,
    },
}

/// What `stringmatchlen` does at one place of the pattern: a `*`, or one byte of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Star,
    /// `?`, a literal, an escape or a class, spanning the pattern's bytes up to `end`.
    One {
        end: usize,
    },
}

impl Glob {
    /// Reads `pattern`. Every byte string is a pattern (as for Redis, which refuses none).
    pub fn new(pattern: &[u8]) -> Glob {
        let mut glob = Glob::shape_of(pattern);
        glob.build_table();
        glob
    }

    /// Reads `pattern` if its [`Glob::wildcard_positions`] are at most `limit`; else says how many it has. The
    /// check comes before the table is built, so a refused pattern costs only a pass over its bytes.
    pub fn within(pattern: &[u8], limit: usize) -> Result<Glob, usize> {
        let mut glob = Glob::shape_of(pattern);
        match glob.wildcard_positions() {
            n if n > limit => Err(n),
            _ => {
                glob.build_table();
                Ok(glob)
            }
        }
    }

    /// The pattern's shape, without the table.
    fn shape_of(pattern: &[u8]) -> Glob {
        let mut glob = Glob {
            pattern: pattern.to_vec(),
            shape: Shape::Exact { positions: 0 },
            table: Vec::new(),
            words: 0,
            plain_ends: (false, false),
            fast: Fast::General,
        };
        if pattern == b"*" {
            glob.shape = Shape::Everything;
            glob.fast = Fast::Everything;
            return glob;
        }
        let mut first_star = None;
        let mut after_last_star = 0;
        let (mut before, mut after) = (0, 0);
        let mut at = 0;
        while at < pattern.len() {
            let (token, next) = token_at(pattern, at);
            match token {
                Token::Star => {
                    first_star.get_or_insert(at);
                    after_last_star = next;
                    after = 0;
                }
                Token::One { .. } if first_star.is_none() => before += 1,
                Token::One { .. } => after += 1,
            }
            at = next;
        }
        let plain = |part: &[u8]| !part.iter().any(|b| matches!(b, b'?' | b'[' | b'\\'));
        glob.plain_ends = match first_star {
            None => (plain(pattern), true),
            Some(first_star) => (
                plain(&pattern[..first_star]),
                plain(&pattern[after_last_star..]),
            ),
        };
        glob.shape = match first_star {
            None => Shape::Exact { positions: before },
            Some(first_star) => Shape::Stars {
                first_star,
                after_last_star,
                prefix: before,
                suffix: after,
            },
        };
        glob.fast = match (glob.shape, glob.plain_ends) {
            (Shape::Exact { .. }, (true, _)) => Fast::Literal,
            (
                Shape::Stars {
                    first_star,
                    after_last_star,
                    ..
                },
                (true, true),
            ) if pattern[first_star..after_last_star]
                .iter()
                .all(|&b| b == b'*') =>
            {
                if after_last_star == pattern.len() {
                    Fast::Prefix { prefix: first_star }
                } else {
                    Fast::PrefixSuffix {
                        prefix: first_star,
                        suffix_from: after_last_star,
                    }
                }
            }
            _ => Fast::General,
        };
        glob
    }

    /// The pattern as given.
    pub fn as_bytes(&self) -> &[u8] {
        &self.pattern
    }

    /// Whether `key` matches, as `KEYS` would list it.
    #[inline]
    pub fn matches(&self, key: &[u8]) -> bool {
        let pattern = self.pattern.as_slice();
        match self.fast {
            Fast::Everything => true,
            Fast::Literal => same_bytes(key, pattern),
            // `stringmatchlen` matches no pattern but `*` (and the empty one) with an empty key, `**` included.
            Fast::Prefix { prefix } => !key.is_empty() && starts_with(key, &pattern[..prefix]),
            Fast::PrefixSuffix {
                prefix,
                suffix_from,
            } => {
                let (prefix, suffix) = (&pattern[..prefix], &pattern[suffix_from..]);
                !key.is_empty()
                    && key.len() >= prefix.len() + suffix.len()
                    && starts_with(key, prefix)
                    && key
                        .get(key.len() - suffix.len()..)
                        .is_some_and(|end| same_bytes(end, suffix))
            }
            Fast::General => self.run(key, &mut 0),
        }
    }

    /// [`Glob::matches`] by the general walk, which every pattern can take (the [`Fast`] forms decide as it does),
    /// with the work it took: pattern bytes read plus key bytes scanned, a key byte counting
    /// once per 64-bit word of the wildcard part scanning it. Within the relay's limit on
    /// [`Glob::wildcard_positions`] it is at most `3 × (pattern + key) + 8`; tests and the fuzzer check it.
    pub fn matches_counting(&self, key: &[u8]) -> (bool, usize) {
        let mut work = 0;
        (self.run(key, &mut work), work)
    }

    /// Positions (bytes of the key) in the parts between two `*` that hold `?`, `[…]` or `\`: the parts searched
    /// for with the bit-parallel scan, whose cost per key byte grows by one word every 64 positions, and whose
    /// table takes 2 KiB per word.
    pub fn wildcard_positions(&self) -> usize {
        self.searched_parts()
            .filter(|part| !part.plain)
            .map(|part| part.positions)
            .sum()
    }

    fn run(&self, key: &[u8], work: &mut usize) -> bool {
        *work += 1;
        let (first_star, after_last_star, prefix, suffix) = match self.shape {
            Shape::Everything => return true,
            // `stringmatchlen` reads nothing of the pattern when the key is empty.
            _ if key.is_empty() => return self.pattern.is_empty(),
            Shape::Exact { positions } => {
                return positions == key.len()
                    && self.anchored(0, self.pattern.len(), key, self.plain_ends.0, work);
            }
            Shape::Stars {
                first_star,
                after_last_star,
                prefix,
                suffix,
            } => (first_star, after_last_star, prefix, suffix),
        };
        if prefix + suffix > key.len()
            || !self.anchored(0, first_star, &key[..prefix], self.plain_ends.0, work)
            || !self.anchored(
                after_last_star,
                self.pattern.len(),
                &key[key.len() - suffix..],
                self.plain_ends.1,
                work,
            )
        {
            return false;
        }
        let (mut from, end) = (prefix, key.len() - suffix);
        let mut bit = 0;
        for part in self.searched_parts() {
            *work += part.end - part.start;
            let haystack = &key[from..end];
            let found = if part.plain {
                let needle = &self.pattern[part.start..part.end];
                let found = find_plain(haystack, needle);
                *work += found.map_or(haystack.len(), |at| at + needle.len()) + needle.len();
                found
            } else {
                let found = self.scan(bit, part.positions, haystack, work);
                bit += part.positions;
                found
            };
            match found {
                Some(at) => from += at + part.positions,
                None => return false,
            }
        }
        true
    }

    /// Whether the tokens of `pattern[start..end]` match `key` one to one (the caller checked the length); `plain`:
    /// they are plain bytes, each its own token.
    fn anchored(
        &self,
        start: usize,
        end: usize,
        key: &[u8],
        plain: bool,
        work: &mut usize,
    ) -> bool {
        if plain {
            *work += key.len();
            return self.pattern[start..end] == *key;
        }
        let mut at = start;
        for &byte in key {
            if at >= end {
                return false;
            }
            let (Token::One { end: next }, _) = token_at(&self.pattern, at) else {
                return false;
            };
            *work += next - at;
            if !one_matches(&self.pattern, at, byte) {
                return false;
            }
            at = next;
        }
        at == end
    }

    /// The parts between the first and the last `*`, in order, skipping the empty ones between adjacent stars.
    fn searched_parts(&self) -> impl Iterator<Item = Part> + '_ {
        let (mut at, end) = match self.shape {
            Shape::Stars {
                first_star,
                after_last_star,
                ..
            } => (first_star, after_last_star),
            _ => (0, 0),
        };
        std::iter::from_fn(move || {
            while at < end && token_at(&self.pattern, at).0 == Token::Star {
                at += 1;
            }
            if at >= end {
                return None;
            }
            let mut part = Part {
                start: at,
                end: at,
                positions: 0,
                plain: true,
            };
            while at < end {
                let (token, next) = token_at(&self.pattern, at);
                if token == Token::Star {
                    break;
                }
                part.plain &= !matches!(self.pattern[at], b'?' | b'[' | b'\\');
                part.positions += 1;
                at = next;
            }
            part.end = at;
            Some(part)
        })
    }

    /// Fills the Shift-And table: bit `b` of byte value `c` is set when the `b`-th position of the wildcard parts
    /// accepts `c`.
    fn build_table(&mut self) {
        let positions = self.wildcard_positions();
        if positions == 0 {
            return;
        }
        self.words = positions.div_ceil(64);
        let mut table = vec![0u64; 256 * self.words];
        let mut bit = 0;
        let parts: Vec<Part> = self.searched_parts().filter(|p| !p.plain).collect();
        for part in parts {
            let mut at = part.start;
            while at < part.end {
                let (_, next) = token_at(&self.pattern, at);
                let mut set = |byte: u8| {
                    table[usize::from(byte) * self.words + bit / 64] |= 1 << (bit % 64);
                };
                match self.pattern[at] {
                    b'?' => (0..=255).for_each(&mut set),
                    b'[' => class_bytes(&self.pattern, at, &mut set),
                    _ => (0..=255)
                        .filter(|&byte| one_matches(&self.pattern, at, byte))
                        .for_each(&mut set),
                }
                bit += 1;
                at = next;
            }
        }
        self.table = table;
    }

    /// The leftmost place in `haystack` where the wildcard part of `positions` positions, numbered from `first` in
    /// the table, matches: a Shift-And scan over the words holding its bits.
    fn scan(
        &self,
        first: usize,
        positions: usize,
        haystack: &[u8],
        work: &mut usize,
    ) -> Option<usize> {
        let last = first + positions - 1;
        let (low_word, high_word) = (first / 64, last / 64);
        let start_bit = 1u64 << (first % 64);
        let end_bit = 1u64 << (last % 64);
        // Bits past the part's last position belong to the next part: a shift must not carry into them.
        let keep_high = u64::MAX >> (63 - last % 64);
        if low_word == high_word {
            // The common case, and the only one for browsers' patterns that fit a word: one word of state.
            let column = &self.table[low_word..];
            let mut state = 0u64;
            for (i, &byte) in haystack.iter().enumerate() {
                state =
                    ((state << 1) | start_bit) & column[usize::from(byte) * self.words] & keep_high;
                if state & end_bit != 0 {
                    *work += i + 1;
                    return Some(i + 1 - positions);
                }
            }
            *work += haystack.len();
            return None;
        }
        let mut state = vec![0u64; high_word - low_word + 1];
        for (i, &byte) in haystack.iter().enumerate() {
            *work += state.len();
            let row = &self.table[usize::from(byte) * self.words..][low_word..=high_word];
            let mut carry = start_bit;
            for (word, accepts) in state.iter_mut().zip(row) {
                let next_carry = *word >> 63;
                *word = ((*word << 1) | carry) & accepts;
                carry = next_carry;
            }
            let top = state.len() - 1;
            state[top] &= keep_high;
            if state[top] & end_bit != 0 {
                return Some(i + 1 - positions);
            }
        }
        None
    }
}

/// Whether `key` starts with the bytes of `prefix`.
#[inline(always)]
fn starts_with(key: &[u8], prefix: &[u8]) -> bool {
    key.get(..prefix.len())
        .is_some_and(|head| same_bytes(head, prefix))
}

/// A part between two `*`: `pattern[start..end]`, matching `positions` bytes; plain when it holds no `?`, `[` or
/// `\`, so that its bytes are the bytes it matches.
struct Part {
    start: usize,
    end: usize,
    positions: usize,
    plain: bool,
}

/// Whether `text` matches the glob `pattern`: [`Glob::new`] then [`Glob::matches`], for one-off checks. Code that
/// matches many keys against one pattern keeps the [`Glob`].
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    Glob::new(pattern).matches(text)
}

/// The token at `pattern[at]` and where the next one starts. Runs of `*` are one star each here; they are
/// skipped together by the callers.
fn token_at(pattern: &[u8], at: usize) -> (Token, usize) {
    let end = match pattern[at] {
        b'*' => return (Token::Star, at + 1),
        b'[' => class_end(pattern, at),
        // An escape needs a byte after it; a `\` that ends the pattern is a literal `\`.
        b'\\' if at + 1 < pattern.len() => at + 2,
        _ => at + 1,
    };
    (Token::One { end }, end)
}

/// Where the class opened at `pattern[at]` ends: after its `]`, or at the end of the pattern if it is never
/// closed. Its items are read as [`class_matches`] reads them: an escape takes two bytes, a range three (its
/// last byte may be `]`), a byte one.
fn class_end(pattern: &[u8], at: usize) -> usize {
    let n = pattern.len();
    let mut i = at + 1;
    if pattern.get(i) == Some(&b'^') {
        i += 1;
    }
    loop {
        match pattern.get(i) {
            None => return n,
            Some(b'\\') if n - i >= 2 => i += 2,
            Some(b']') => return i + 1,
            Some(_) if n - i >= 3 && pattern[i + 1] == b'-' => i += 3,
            Some(_) => i += 1,
        }
    }
}

/// Whether `byte` matches the one-byte token at `pattern[at]`.
fn one_matches(pattern: &[u8], at: usize, byte: u8) -> bool {
    match pattern[at] {
        b'?' => true,
        b'[' => class_matches(pattern, at, byte),
        b'\\' if at + 1 < pattern.len() => pattern[at + 1] == byte,
        literal => literal == byte,
    }
}

/// Calls `add` with every byte in the class opened at `pattern[at]`, in one pass over its items (for the table;
/// [`class_matches`] answers for one byte).
fn class_bytes(pattern: &[u8], at: usize, add: &mut impl FnMut(u8)) {
    let n = pattern.len();
    let mut i = at + 1;
    let negated = pattern.get(i) == Some(&b'^');
    if negated {
        i += 1;
    }
    let mut members = [false; 256];
    while let Some(&item) = pattern.get(i) {
        match item {
            b'\\' if n - i >= 2 => {
                members[usize::from(pattern[i + 1])] = true;
                i += 2;
            }
            b']' => break,
            first if n - i >= 3 && pattern[i + 1] == b'-' => {
                let (a, b) = (first as i8, pattern[i + 2] as i8);
                for byte in a.min(b)..=a.max(b) {
                    members[usize::from(byte as u8)] = true;
                }
                i += 3;
            }
            literal => {
                members[usize::from(literal)] = true;
                i += 1;
            }
        }
    }
    for byte in 0..=255u8 {
        if members[usize::from(byte)] != negated {
            add(byte);
        }
    }
}

/// Whether `byte` is in the class opened at `pattern[at]`.
fn class_matches(pattern: &[u8], at: usize, byte: u8) -> bool {
    let n = pattern.len();
    let mut i = at + 1;
    let negated = pattern.get(i) == Some(&b'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    while let Some(&item) = pattern.get(i) {
        match item {
            b'\\' if n - i >= 2 => {
                matched |= pattern[i + 1] == byte;
                i += 2;
            }
            b']' => break,
            first if n - i >= 3 && pattern[i + 1] == b'-' => {
                // Redis compares `char`s, signed on x86-64: bytes from 0x80 sort below 0.
                let (a, b) = (first as i8, pattern[i + 2] as i8);
                matched |= (a.min(b)..=a.max(b)).contains(&(byte as i8));
                i += 3;
            }
            literal => {
                matched |= literal == byte;
                i += 1;
            }
        }
    }
    matched != negated
}

#[cfg(test)]
mod tests {
    use super::{glob_match, Fast, Glob};

    /// `stringmatchlen` as plainly as it can be written: recursive, trying every length for each `*`. The
    /// reference the matcher is compared with, on inputs small enough for its exponential worst case.
    fn reference(pattern: &[u8], text: &[u8]) -> bool {
        if pattern == b"*" {
            return true;
        }
        if text.is_empty() {
            return pattern.is_empty();
        }
        fn from(p: &[u8], t: &[u8], pi: usize, ti: usize) -> bool {
            if pi == p.len() {
                return ti == t.len();
            }
            if p[pi] == b'*' {
                let rest = pi + p[pi..].iter().take_while(|&&b| b == b'*').count();
                return (ti..=t.len()).any(|k| from(p, t, rest, k));
            }
            if ti == t.len() {
                return false;
            }
            let byte = t[ti];
            let (matched, next) = match p[pi] {
                b'?' => (true, pi + 1),
                b'\\' if pi + 1 < p.len() => (p[pi + 1] == byte, pi + 2),
                b'[' => {
                    let mut i = pi + 1;
                    let negated = p.get(i) == Some(&b'^');
                    if negated {
                        i += 1;
                    }
                    let mut matched = false;
                    loop {
                        if i >= p.len() {
                            break;
                        }
                        if p[i] == b'\\' && p.len() - i >= 2 {
                            matched |= p[i + 1] == byte;
                            i += 2;
                        } else if p[i] == b']' {
                            i += 1;
                            break;
                        } else if p.len() - i >= 3 && p[i + 1] == b'-' {
                            let (a, b) = (p[i] as i8 as i32, p[i + 2] as i8 as i32);
                            let c = byte as i8 as i32;
                            matched |= a.min(b) <= c && c <= a.max(b);
                            i += 3;
                        } else {
                            matched |= p[i] == byte;
                            i += 1;
                        }
                    }
                    (matched != negated, i)
                }
                literal => (literal == byte, pi + 1),
            };
            matched && from(p, t, next, ti + 1)
        }
        from(pattern, text, 0, 0)
    }

    // Run in Chromium too (`wasm-pack test`): there a plain part between stars is found by another searcher.
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn globs_match_as_redis_does() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"perf:*", b"perf:web-1", true),
            (b"perf:*", b"perf:", true),
            (b"perf:*", b"perfx", false),
            (b"*", b"", true),
            (b"**", b"", false),
            (b"", b"", true),
            (b"", b"a", false),
            (b"h?llo", b"hello", true),
            (b"h?llo", b"hllo", false),
            (b"h[ae]llo", b"hallo", true),
            (b"h[^e]llo", b"hello", false),
            (b"h[a-b]llo", b"hbllo", true),
            (b"h[b-a]llo", b"hbllo", true),
            (b"a*b*c", b"a-b-x-c", true),
            (b"a*b*c", b"a-b-x-d", false),
            (b"x\\*", b"x*", true),
            (b"x\\*", b"xy", false),
            (b"x\\", b"x\\", true),
            (b"**a", b"bba", true),
            (b"[", b"a", false),
            (b"[^", b"a", true),
            (b"[a-]", b"]", true),
            (b"[a-]", b"-", false),
            (b"[]", b"]", false),
            (b"[^]", b"x", true),
            (b"[\\]]", b"]", true),
            (b"[a-\xff]", b"\x80", false),
            (b"[\x80-a]", b"\xff", true),
            (b"[\x80-a]", b"b", false),
            (b"*[*]*", b"a*b", true),
            (b"*a?c*", b"xxabcxx", true),
            (b"*a?c*", b"xxabxcx", false),
            (b"*abc*def*", b"xxabcyydefzz", true),
            (b"*abc*def*", b"xxdefyyabczz", false),
            (b"*abc*def*", b"abcdef", true),
            (b"*abc*abc*", b"abcab", false),
            (b"k:*:cpu:*:x", b"k:web-1:cpu:total:x", true),
            (b"k:*:cpu:*:x", b"k:web-1:cpx:total:x", false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                glob_match(pattern, text),
                *want,
                "{} ~ {}",
                pattern.escape_ascii(),
                text.escape_ascii()
            );
            assert_eq!(reference(pattern, text), *want, "the reference itself");
        }
    }

    // proptest is a native-only dev-dependency: the wasm32 build of these tests runs the rest.
    #[cfg(not(target_arch = "wasm32"))]
    mod properties {
        use super::{reference, Glob};
        use proptest::prelude::*;

        fn bytes_from(alphabet: &'static [u8], max: usize) -> impl Strategy<Value = Vec<u8>> {
            prop::collection::vec(prop::sample::select(alphabet), 0..=max)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(20_000))]

            /// The matcher agrees with the plain reference on every small pattern and key over the bytes that mean
            /// something in a glob, and its work stays within its bound.
            #[test]
            fn agrees_with_the_reference(
                pattern in bytes_from(b"ab*?[]^-\\\x80\xff", 10),
                text in bytes_from(b"ab]-^\\[*\x80\xff", 10),
            ) {
                let glob = Glob::new(&pattern);
                let (matched, work) = glob.matches_counting(&text);
                prop_assert_eq!(matched, reference(&pattern, &text));
                prop_assert!(work <= 3 * (pattern.len() + text.len()) + 8, "work {}", work);
            }


            /// The fast forms decide as the general walk and the reference do: patterns of plain bytes and stars
            /// (with, now and then, a `?`, a class or an escape that sends them to the general walk), against
            /// keys made of their own parts, so that they match as often as not.
            #[test]
            fn the_fast_forms_agree_with_the_general_walk(
                prefix in bytes_from(b"ab:-]^\x80", 6),
                stars in 0..3usize,
                suffix in bytes_from(b"ab:-]^\x80", 6),
                wildcard in prop::option::weighted(0.2, (bytes_from(b"?[\\*a", 2), any::<bool>())),
                key in bytes_from(b"ab:\x80", 8),
                shape in 0..4usize,
            ) {
                let mut pattern = [prefix.clone(), vec![b'*'; stars], suffix.clone()].concat();
                if let Some((wildcard, at_end)) = wildcard {
                    pattern = if at_end { [pattern, wildcard].concat() } else { [wildcard, pattern].concat() };
                }
                // The key: random, or the pattern's own ends around part of it, so that the fast forms match.
                let key = match shape {
                    0 => key,
                    1 => [prefix.as_slice(), &key, &suffix].concat(),
                    2 => [prefix.as_slice(), &suffix].concat(),
                    _ => [prefix.as_slice(), &key].concat(),
                };
                let glob = Glob::new(&pattern);
                let general = glob.matches_counting(&key).0;
                prop_assert_eq!(glob.matches(&key), general, "{:?}", glob.fast);
                prop_assert_eq!(general, reference(&pattern, &key));
            }
        }

        proptest! {
            /// Parts with wildcards longer than a word (the relay refuses them from browsers, not from its operator)
            /// still match exactly.
            #[test]
            fn wide_wildcard_parts_agree_with_the_reference(
                head in bytes_from(b"ab?", 45),
                tail in bytes_from(b"ab?", 45),
                text in bytes_from(b"ab", 100),
            ) {
                let pattern = [b"*".as_slice(), &head, b"?*", &tail, b"*"].concat();
                prop_assert_eq!(Glob::new(&pattern).matches(&text), reference(&pattern, &text));
            }
        }
    }

    /// The attack of issue 16.5: a pattern of `*`, 998 `a` and `b`, against a 4,070-byte key of `a`, and the
    /// patterns worst for this matcher, each within the relay's limits; the work is counted, not timed.
    #[test]
    fn the_worst_patterns_cost_linear_work() {
        let key = [b"notes:".as_slice(), &[b'a'; 4064]].concat();
        let mut patterns = vec![
            [b"*".as_slice(), &[b'a'; 998], b"b"].concat(),
            [b"*".as_slice(), &[b'a'; 998], b"b*"].concat(),
            [b"*".as_slice(), &[b'a'; 62], b"?b*"].concat(),
            b"*a".repeat(500),
            b"*?".repeat(32),
            [b"*".as_slice(), &b"[a]".repeat(63), b"b*"].concat(),
        ];
        patterns.push([b"*".as_slice(), &[b'a'; 1000], b"*"].concat());
        for pattern in &patterns {
            let glob = Glob::new(pattern);
            assert!(glob.wildcard_positions() <= 64);
            let (_, work) = glob.matches_counting(&key);
            let bound = 3 * (pattern.len() + key.len()) + 8;
            assert!(
                work <= bound,
                "{} bytes of pattern: work {work} > {bound}",
                pattern.len()
            );
        }
        // What the backtracking matcher did for the first one: about 998 × 4,064 comparisons.
        let (matched, work) = Glob::new(&patterns[0]).matches_counting(&key);
        assert!(
            !matched && work < 2 * (patterns[0].len() + key.len()),
            "{work}"
        );
    }

    /// The shapes the relay matches every key of the stream against are decided by compares alone.
    #[test]
    fn plain_patterns_take_a_fast_form() {
        let fast = |p: &[u8]| Glob::new(p).fast;
        assert_eq!(fast(b"*"), Fast::Everything);
        assert_eq!(fast(b"perf:*"), Fast::Prefix { prefix: 5 });
        assert_eq!(fast(b"perf:**"), Fast::Prefix { prefix: 5 });
        assert_eq!(fast(b"**"), Fast::Prefix { prefix: 0 });
        assert_eq!(fast(b"cfg"), Fast::Literal);
        assert_eq!(fast(b""), Fast::Literal);
        assert_eq!(
            fast(b"a]-^:"),
            Fast::Literal,
            "bytes special only inside a class"
        );
        assert_eq!(
            fast(b"perf:*:cpu"),
            Fast::PrefixSuffix {
                prefix: 5,
                suffix_from: 6
            }
        );
        assert_eq!(
            fast(b"*:cpu"),
            Fast::PrefixSuffix {
                prefix: 0,
                suffix_from: 1
            }
        );
        for general in [
            &b"perf:?"[..],
            b"perf:*:*",
            b"perf:\\*",
            b"perf:[ab]*",
            b"*a*",
            b"a\\",
        ] {
            assert_eq!(fast(general), Fast::General, "{}", general.escape_ascii());
        }
        let glob = Glob::new(b"perf:*");
        assert!(glob.matches(b"perf:host1") && glob.matches(b"perf:"));
        assert!(!glob.matches(b"perf") && !glob.matches(b"perx:host1") && !glob.matches(b""));
        assert!(!Glob::new(b"**").matches(b"") && Glob::new(b"**").matches(b"x"));
        let glob = Glob::new(b"perf:*:cpu");
        assert!(glob.matches(b"perf::cpu") && glob.matches(b"perf:host1:cpu"));
        assert!(!glob.matches(b"perf:cpu") && !glob.matches(b"perf:host1:cpv"));
    }

    #[test]
    fn wildcard_positions_count_only_searched_parts_with_wildcards() {
        let positions = |p: &[u8]| Glob::new(p).wildcard_positions();
        assert_eq!(positions(b"perf:*"), 0);
        assert_eq!(positions(b"perf:web-??"), 0, "no star: checked in place");
        assert_eq!(
            positions(b"a?*b?"),
            0,
            "prefix and suffix: checked in place"
        );
        assert_eq!(positions(b"*plain*"), 0, "found with memmem");
        assert_eq!(positions(b"*-??-*"), 4);
        assert_eq!(
            positions(b"*[abc]x*\\**"),
            3,
            "a class is one position, an escape too"
        );
        assert_eq!(positions(&b"*?".repeat(100)), 99);
    }
}
