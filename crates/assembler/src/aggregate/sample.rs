//! Reads one item's numbers, group and time out of its payload: a JSON value, or a stream entry's or hash's
//! field/value pairs.
//!
//! For field/value pairs, a path first names a field exactly (`"cpu.total"` can be a hash field); otherwise its
//! first segment names the field and the rest looks into the field's value as JSON (`"stats.cpu"` reads `cpu`
//! from a field `stats` holding `{"cpu":12}`). A field's whole value counts as a number when it is exactly a JSON
//! number (`12.5`; Redis writes `INCRBYFLOAT` results that way), and as the group's name whatever it holds.

use super::json::{parse_number, Found, JsonError, PathSet};
use super::spec::MAX_FIELDS;
use crate::observe::Payload;

/// The most paths an aggregator reads: every field of its spec, its group's and its time's.
pub const MAX_PATHS: usize = MAX_FIELDS + 2;

/// What an item holds at one path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Read<'a> {
    /// Nothing there.
    Missing,
    /// A finite number, with its text.
    Number(f64, &'a [u8]),
    /// Text that is not a number: a JSON string's raw bytes, or a field's value.
    Text(&'a [u8]),
    /// Something else: `true`, `null`, an object, a JSON number out of `f64`'s range.
    Other,
}

/// A path split for field/value pairs.
#[derive(Debug, Clone)]
struct FieldPath {
    whole: Box<[u8]>,
    first: Box<[u8]>,
    /// The path after the first segment, to look into the first segment's value as JSON.
    rest: PathSet,
}

/// Reads a fixed list of paths from items.
#[derive(Debug, Clone)]
pub struct SampleReader {
    paths: PathSet,
    /// Per path, the same path for field/value pairs.
    by_field: Vec<FieldPath>,
    found: Vec<Found>,
}

impl SampleReader {
    pub fn new(paths: &[&str]) -> Result<Self, super::json::PathError> {
        let by_field = paths
            .iter()
            .map(|path| {
                let (first, rest) = path.split_once('.').unwrap_or((path, ""));
                Ok(FieldPath {
                    whole: path.as_bytes().into(),
                    first: first.as_bytes().into(),
                    rest: PathSet::new(&[rest])?,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(SampleReader {
            paths: PathSet::new(paths)?,
            by_field,
            found: vec![Found::Missing; paths.len()],
        })
    }

    /// How many paths it reads.
    pub fn len(&self) -> usize {
        self.by_field.len()
    }

    /// It reads no path.
    pub fn is_empty(&self) -> bool {
        self.by_field.is_empty()
    }

    /// Reads every path into `out` (its first [`len`](Self::len) entries, at most [`MAX_PATHS`]), for followers
    /// of the same paths to share: the aggregators and the series cache of a page each read every sample, and one
    /// pass over its JSON serves them all. Fails when a JSON value is not valid JSON.
    pub fn read_into<'a>(
        &mut self,
        payload: Payload<'a>,
        out: &mut [Read<'a>; MAX_PATHS],
    ) -> Result<(), JsonError> {
        self.read(payload, |i, read| {
            if let Some(slot) = out.get_mut(i) {
                *slot = read;
            }
        })
    }

    /// Calls `each(i, what)` for every path `i`; fails when a JSON value is not valid JSON.
    pub fn read<'a>(
        &mut self,
        payload: Payload<'a>,
        mut each: impl FnMut(usize, Read<'a>),
    ) -> Result<(), JsonError> {
        match payload {
            Payload::Value(doc) => {
                self.paths.extract(doc, &mut self.found)?;
                for (i, found) in self.found.iter().enumerate() {
                    each(i, from_json(doc, found));
                }
            }
            Payload::Fields(pairs) => {
                for (i, path) in self.by_field.iter().enumerate() {
                    each(i, from_fields(pairs, path, &mut self.found));
                }
            }
        }
        Ok(())
    }
}

fn from_json<'a>(doc: &'a [u8], found: &Found) -> Read<'a> {
    match found {
        Found::Missing => Read::Missing,
        Found::Number(range) => {
            let text = &doc[range.clone()];
            parse_number(text).map_or(Read::Other, |v| Read::Number(v, text))
        }
        Found::String(range) => Read::Text(&doc[range.clone()]),
        Found::Other => Read::Other,
    }
}

/// The value of the last field named `name` (stream entries may repeat a field; the last wins, as in JSON).
fn field<'a>(pairs: &'a [Vec<u8>], name: &[u8]) -> Option<&'a [u8]> {
    pairs
        .chunks_exact(2)
        .rev()
        .find(|pair| pair[0] == name)
        .map(|pair| &pair[1][..])
}

fn from_fields<'a>(pairs: &'a [Vec<u8>], path: &FieldPath, found: &mut [Found]) -> Read<'a> {
    if let Some(value) = field(pairs, &path.whole) {
        return match parse_number(value) {
            Some(v) => Read::Number(v, value),
            None => Read::Text(value),
        };
    }
    if path.first.len() == path.whole.len() {
        return Read::Missing;
    }
    let Some(value) = field(pairs, &path.first) else {
        return Read::Missing;
    };
    match path.rest.extract(value, found) {
        Ok(()) => from_json(value, &found[0]),
        // The field exists but is not JSON, so there is nothing inside it to look into.
        Err(_) => Read::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all<'a>(reader: &mut SampleReader, payload: Payload<'a>) -> Vec<Read<'a>> {
        let mut out = Vec::new();
        reader.read(payload, |_, r| out.push(r)).unwrap();
        out
    }

    #[test]
    fn reads_json_values() {
        let mut reader = SampleReader::new(&["cpu.total", "host", "t", "ok", "big"]).unwrap();
        let doc = br#"{"host":"h1","t":1000,"cpu":{"total":12.5},"ok":true,"big":1e999}"#;
        assert_eq!(
            read_all(&mut reader, Payload::Value(doc)),
            [
                Read::Number(12.5, b"12.5"),
                Read::Text(b"h1"),
                Read::Number(1000.0, b"1000"),
                Read::Other,
                Read::Other
            ]
        );
        assert!(reader.read(Payload::Value(b"{oops"), |_, _| {}).is_err());
    }

    #[test]
    fn reads_fields_whole_or_as_json() {
        let mut reader =
            SampleReader::new(&["cpu", "host", "stats.rx", "cpu.total", "x.y", "stats"]).unwrap();
        let pairs: Vec<Vec<u8>> = [
            &b"cpu"[..],
            b"7",
            b"host",
            b"h2",
            b"stats",
            br#"{"rx":5}"#,
            b"cpu.total",
            b"9.5",
            b"x",
            b"not json",
            b"cpu",
            b"8",
        ]
        .iter()
        .map(|b| b.to_vec())
        .collect();
        assert_eq!(
            read_all(&mut reader, Payload::Fields(&pairs)),
            [
                Read::Number(8.0, b"8"),
                Read::Text(b"h2"),
                Read::Number(5.0, b"5"),
                Read::Number(9.5, b"9.5"),
                Read::Other,
                Read::Text(br#"{"rx":5}"#),
            ]
        );
        assert_eq!(
            read_all(&mut reader, Payload::Fields(&[]))[0],
            Read::Missing
        );
    }
}
