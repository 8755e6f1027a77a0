//! Pulls the values at a few paths out of a JSON document in one pass, without allocating: the numbers to
//! aggregate (`cpu.total`, `net.eth0.rx`, `load.0`) and the field to group by (`host`).
//!
//! The scanner validates the whole document (a sample that is not JSON is counted as such, not half-read) with an
//! explicit stack of at most [`MAX_DEPTH`] levels, so hostile input (a megabyte of `[[[[`) costs one linear pass
//! and a typed error, never a stack overflow. It tracks which of the wanted paths still match the current
//! position as a bitmask per level, so subtrees no path reaches are skimmed at the cost of validating them.
//!
//! A path is dot-separated: object member names, and array indexes written as decimal numbers (`load.0`, which
//! also matches a member named `"0"`). The empty path names the whole document (a bare number pushed to a list).
//! Member names are compared as raw bytes, escapes undecoded; paths cannot name members containing dots. When a
//! member repeats, the last one wins, as in `JSON.parse`.

use std::ops::Range;

use replicast_protocol::quote::quoted;
use replicast_protocol::text;
use thiserror::Error;

use crate::windows::fast_hash::same_bytes;

/// How deeply objects and arrays may nest.
pub const MAX_DEPTH: usize = 64;
/// How many paths one [`PathSet`] can look for (a bit each in a `u64`).
pub const MAX_PATHS: usize = 64;

/// Why a document could not be scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum JsonError {
    #[error("not UTF-8 at byte {offset}")]
    NotUtf8 { offset: usize },
    #[error("invalid JSON at byte {offset}: expected {expected}")]
    Invalid {
        offset: usize,
        expected: &'static str,
    },
    #[error("JSON nested deeper than {MAX_DEPTH} levels at byte {offset}")]
    TooDeep { offset: usize },
}

/// Why a set of paths cannot be looked for.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("{0} paths, at most {MAX_PATHS} can be looked for at once")]
    TooMany(usize),
    #[error("path {} is deeper than {MAX_DEPTH} levels", quoted(.0))]
    TooDeep(String),
}

/// What a document holds at a path: byte ranges into the document, so nothing is copied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Found {
    /// Nothing at that path.
    #[default]
    Missing,
    /// A number; the range covers its text (e.g. `-1.5e3`), already checked against JSON's grammar.
    Number(Range<usize>),
    /// A string; the range covers its raw bytes between the quotes, escapes undecoded.
    String(Range<usize>),
    /// `true`, `false`, `null`, an object or an array.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    name: Box<[u8]>,
    index: Option<usize>,
}

/// A set of paths looked for together in each document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathSet {
    paths: Vec<Vec<Segment>>,
    /// Bit `i` of `ends_at[d]` is set when path `i` has exactly `d` segments.
    ends_at: [u64; MAX_DEPTH + 1],
}

impl PathSet {
    /// Compiles `paths` (see the module docs for the syntax).
    pub fn new<S: AsRef<str>>(paths: &[S]) -> Result<Self, PathError> {
        if paths.len() > MAX_PATHS {
            return Err(PathError::TooMany(paths.len()));
        }
        let mut ends_at = [0u64; MAX_DEPTH + 1];
        let mut compiled = Vec::with_capacity(paths.len());
        for (i, text) in paths.iter().enumerate() {
            let segments = split_path(text.as_ref());
            if segments.len() > MAX_DEPTH {
                return Err(PathError::TooDeep(text.as_ref().to_owned()));
            }
            ends_at[segments.len()] |= 1 << i;
            compiled.push(segments);
        }
        Ok(PathSet {
            paths: compiled,
            ends_at,
        })
    }

    /// How many paths.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// No paths.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Scans `doc`, writing what it holds at path `i` into `out[i]` (`out` must be at least [`len`](Self::len)
    /// long). On error `out` is unspecified.
    pub fn extract(&self, doc: &[u8], out: &mut [Found]) -> Result<(), JsonError> {
        let out = &mut out[..self.paths.len()];
        out.fill(Found::Missing);
        if let Err(err) = std::str::from_utf8(doc) {
            return Err(JsonError::NotUtf8 {
                offset: err.valid_up_to(),
            });
        }
        let mut s = Scanner { doc, pos: 0 };
        let mut is_object = [false; MAX_DEPTH];
        let mut child_mask = [0u64; MAX_DEPTH];
        let mut index = [0usize; MAX_DEPTH];
        let mut depth = 0;
        // The paths that match the position of the value about to be read.
        let mut mask = if self.paths.is_empty() {
            0
        } else {
            u64::MAX >> (64 - self.paths.len())
        };
        'value: loop {
            s.skip_ws();
            let start = s.pos;
            let ending = mask & self.ends_at[depth];
            match s.peek() {
                Some(open @ (b'{' | b'[')) => {
                    if depth == MAX_DEPTH {
                        return Err(JsonError::TooDeep { offset: start });
                    }
                    self.set(out, ending, Found::Other);
                    s.pos += 1;
                    let d = depth;
                    is_object[d] = open == b'{';
                    child_mask[d] = mask & !ending;
                    index[d] = 0;
                    depth += 1;
                    s.skip_ws();
                    if is_object[d] {
                        if !s.eat(b'}') {
                            mask = self.member(&mut s, child_mask[d], d)?;
                            continue 'value;
                        }
                    } else if !s.eat(b']') {
                        mask = self.element(child_mask[d], d, 0);
                        continue 'value;
                    }
                    depth -= 1;
                }
                Some(b'"') => {
                    let range = s.string()?;
                    self.set(out, ending, Found::String(range));
                }
                Some(b'-' | b'0'..=b'9') => {
                    let range = s.number()?;
                    self.set(out, ending, Found::Number(range));
                }
                Some(b't') => {
                    s.literal(b"true")?;
                    self.set(out, ending, Found::Other);
                }
                Some(b'f') => {
                    s.literal(b"false")?;
                    self.set(out, ending, Found::Other);
                }
                Some(b'n') => {
                    s.literal(b"null")?;
                    self.set(out, ending, Found::Other);
                }
                _ => return Err(s.invalid("a value")),
            }
            // A value is complete: close containers until one continues with another member or element.
            loop {
                s.skip_ws();
                if depth == 0 {
                    return if s.pos == doc.len() {
                        Ok(())
                    } else {
                        Err(s.invalid(text!("the end of the document")))
                    };
                }
                let d = depth - 1;
                if is_object[d] {
                    if s.eat(b',') {
                        s.skip_ws();
                        mask = self.member(&mut s, child_mask[d], d)?;
                        continue 'value;
                    } else if s.eat(b'}') {
                        depth -= 1;
                    } else {
                        return Err(s.invalid("',' or '}'"));
                    }
                } else if s.eat(b',') {
                    index[d] += 1;
                    mask = self.element(child_mask[d], d, index[d]);
                    continue 'value;
                } else if s.eat(b']') {
                    depth -= 1;
                } else {
                    return Err(s.invalid("',' or ']'"));
                }
            }
        }
    }

    fn set(&self, out: &mut [Found], mut bits: u64, found: Found) {
        while bits != 0 {
            out[bits.trailing_zeros() as usize] = found.clone();
            bits &= bits - 1;
        }
    }

    /// Reads `"name":` and returns which of the `mask` paths continue into that member at depth `d + 1`.
    fn member(&self, s: &mut Scanner<'_>, mask: u64, d: usize) -> Result<u64, JsonError> {
        if s.peek() != Some(b'"') {
            return Err(s.invalid(text!("a member name")));
        }
        let name = s.string()?;
        s.skip_ws();
        if !s.eat(b':') {
            return Err(s.invalid("':'"));
        }
        let name = &s.doc[name];
        Ok(self.matching(mask, |segment| same_bytes(&segment.name, name), d))
    }

    fn element(&self, mask: u64, d: usize, i: usize) -> u64 {
        self.matching(mask, |segment| segment.index == Some(i), d)
    }

    fn matching(&self, mut bits: u64, matches: impl Fn(&Segment) -> bool, d: usize) -> u64 {
        let mut out = 0;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if matches(&self.paths[i][d]) {
                out |= 1 << i;
            }
        }
        out
    }
}

/// The value of `text` if it is exactly one finite JSON number (`12`, `-0.5`, `1e3`; not ` 1`, `0x1`, `inf`).
pub fn parse_number(text: &[u8]) -> Option<f64> {
    let mut s = Scanner { doc: text, pos: 0 };
    let range = s.number().ok()?;
    if range.end != text.len() {
        return None;
    }
    let value = replicast_protocol::decimal::parse_f64(text)?;
    value.is_finite().then_some(value)
}

fn split_path(text: &str) -> Vec<Segment> {
    if text.is_empty() {
        return Vec::new();
    }
    text.split('.')
        .map(|part| Segment {
            name: part.as_bytes().into(),
            index: (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse().ok())
                .flatten(),
        })
        .collect()
}

struct Scanner<'a> {
    doc: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.doc.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        self.pos += usize::from(hit);
        hit
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn invalid(&self, expected: &'static str) -> JsonError {
        JsonError::Invalid {
            offset: self.pos,
            expected,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), JsonError> {
        if self.doc[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.invalid(text!("true, false or null")))
        }
    }

    /// At an opening quote; returns the range of the string's raw bytes.
    fn string(&mut self) -> Result<Range<usize>, JsonError> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.invalid("'\"'")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(start..self.pos - 1);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            self.pos += 1;
                            for _ in 0..4 {
                                if !self.peek().is_some_and(|b| b.is_ascii_hexdigit()) {
                                    return Err(self.invalid(text!("4 hex digits")));
                                }
                                self.pos += 1;
                            }
                        }
                        _ => return Err(self.invalid("an escape")),
                    }
                }
                Some(0..=0x1f) => {
                    return Err(self.invalid(text!("no control character in a string")))
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<Range<usize>, JsonError> {
        let start = self.pos;
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.invalid("a digit")),
        }
        if self.eat(b'.') && self.digits() == 0 {
            return Err(self.invalid(text!("a digit after '.'")));
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return Err(self.invalid(text!("a digit in the exponent")));
            }
        }
        Ok(start..self.pos)
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
