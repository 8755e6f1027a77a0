//! Members that are JSON objects with an `"id"` field (a collector's sample that it may re-send with a newer
//! score): finding the id without a JSON library, for the "latest member per id" view of a sorted set.

/// Why a member has no id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoId {
    NotUtf8,
    /// Not a JSON object, or one without a string or number `"id"` at its top level.
    NotJson,
}

/// One entry of [`LatestById`].
#[derive(Debug, Clone, PartialEq)]
pub struct ByIdView<'a> {
    /// The id: a string's contents (escapes decoded), or a number as written.
    pub id: String,
    pub member: &'a [u8],
    pub score: f64,
}

/// The newest member of each id, newest first, and how many members had no id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatestById<'a> {
    pub items: Vec<ByIdView<'a>>,
    pub not_utf8: usize,
    pub not_json: usize,
}

impl LatestById<'_> {
    pub(crate) fn count(&mut self, problem: NoId) {
        match problem {
            NoId::NotUtf8 => self.not_utf8 += 1,
            NoId::NotJson => self.not_json += 1,
        }
    }
}

/// Deepest nesting skipped inside a member before it is declared not JSON.
const MAX_DEPTH: usize = 64;

/// The top-level `"id"` of a JSON object.
pub fn json_id(member: &[u8]) -> Result<String, NoId> {
    let text = std::str::from_utf8(member).map_err(|_| NoId::NotUtf8)?;
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.object_id().ok_or(NoId::NotJson)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|b| b" \t\r\n".contains(b)) {
            self.i += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.ws();
        (self.s.get(self.i) == Some(&byte)).then(|| self.i += 1)
    }

    fn object_id(&mut self) -> Option<String> {
        self.eat(b'{')?;
        let mut id = None;
        self.ws();
        if self.eat(b'}').is_none() {
            loop {
                self.ws();
                let key = self.string()?;
                self.eat(b':')?;
                self.ws();
                if key == "id" && id.is_none() {
                    id = Some(match self.s.get(self.i) {
                        Some(b'"') => self.string()?,
                        _ => {
                            let start = self.i;
                            self.number()?;
                            String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
                        }
                    });
                } else {
                    self.value(0)?;
                }
                if self.eat(b',').is_some() {
                    continue;
                }
                self.eat(b'}')?;
                break;
            }
        }
        self.ws();
        (self.i == self.s.len()).then_some(())?;
        id
    }

    fn string(&mut self) -> Option<String> {
        (self.s.get(self.i) == Some(&b'"')).then_some(())?;
        self.i += 1;
        let mut out = String::new();
        loop {
            let b = *self.s.get(self.i)?;
            self.i += 1;
            match b {
                b'"' => return Some(out),
                b'\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e as char),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hex = std::str::from_utf8(self.s.get(self.i..self.i + 4)?).ok()?;
                            let code = u32::from_str_radix(hex, 16).ok()?;
                            self.i += 4;
                            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => {
                    // Copy the rest of the UTF-8 sequence whole (the input is valid UTF-8).
                    let start = self.i - 1;
                    while self.s.get(self.i).is_some_and(|c| c & 0xc0 == 0x80) {
                        self.i += 1;
                    }
                    out.push_str(std::str::from_utf8(&self.s[start..self.i]).ok()?);
                }
            }
        }
    }

    fn number(&mut self) -> Option<()> {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
        {
            self.i += 1;
        }
        replicast_protocol::decimal::parse_f64(&self.s[start..self.i]).map(drop)
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match *self.s.get(self.i)? {
            b'"' => self.string().map(drop),
            b'{' => {
                self.i += 1;
                if self.eat(b'}').is_some() {
                    return Some(());
                }
                loop {
                    self.ws();
                    self.string()?;
                    self.eat(b':')?;
                    self.value(depth + 1)?;
                    if self.eat(b',').is_none() {
                        return self.eat(b'}');
                    }
                }
            }
            b'[' => {
                self.i += 1;
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    if self.eat(b',').is_none() {
                        return self.eat(b']');
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        (self.s.get(self.i..self.i + word.len()) == Some(word)).then(|| self.i += word.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_top_level_id() {
        assert_eq!(
            json_id(br#"{"host":"a","cpu":{"id":"no"},"id":"s1"}"#),
            Ok("s1".into())
        );
        assert_eq!(
            json_id(br#" { "id" : 42 , "x": [1, {"a": null}] } "#),
            Ok("42".into())
        );
        assert_eq!(json_id(br#"{"id":"\u00e9\"x"}"#), Ok("é\"x".into()));
        assert_eq!(json_id(br#"{"idx":"s1"}"#), Err(NoId::NotJson));
        assert_eq!(json_id(br#"{"id":"s1""#), Err(NoId::NotJson));
        assert_eq!(json_id(br#"{"id":"s1"} trailing"#), Err(NoId::NotJson));
        assert_eq!(json_id(b"plain"), Err(NoId::NotJson));
        assert_eq!(json_id(b"\xff{}"), Err(NoId::NotUtf8));
        let deep = format!(r#"{{"a":{}1{},"id":1}}"#, "[".repeat(100), "]".repeat(100));
        assert_eq!(json_id(deep.as_bytes()), Err(NoId::NotJson));
    }
}
