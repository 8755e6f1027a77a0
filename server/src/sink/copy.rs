//! History rows as a binary `COPY` (PostgreSQL's format: a header, then each row as a count of fields and each
//! field as a length and its bytes, then a trailer), written straight into one buffer a batch.
//!
//! `tokio_postgres::binary_copy::BinaryCopyInWriter` writes the same bytes, but through `ToSql` field by field
//! (a type check and a dynamic call each) into a buffer it hands over every 4 KiB, and only into a live `COPY`.
//! Here the columns' types are fixed, each value's bytes are copied once, and the encoding is a function of the
//! batch, so `examples/sink_bench.rs` counts it with the rest of the sink's work per sample.

use bytes::{BufMut, BytesMut};

use super::rows::{json_text_into, json_text_strict, Batch, StreamRow, ZsetRow};
use super::schema::time_us;

/// The binary `COPY` signature, then flags and the header extension's length (both 0).
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch for `timestamptz`.
const POSTGRES_EPOCH_US: i64 = 946_684_800_000_000;

/// How the sorted-set values of a batch are sent: each step is taken when PostgreSQL refused the batch's data
/// (SQLSTATE class 22) at the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonCheck {
    /// As the batch holds them: members that look like JSON as they came, checked by PostgreSQL's `json` input.
    AsRead,
    /// Those members parsed by the sink first; the ones that are not JSON go as JSON strings.
    Parsed,
    /// Every value re-encoded ([`json_text_strict`]).
    Strict,
}

impl JsonCheck {
    /// The step after this one, if any.
    pub fn next(self) -> Option<JsonCheck> {
        match self {
            JsonCheck::AsRead => Some(JsonCheck::Parsed),
            JsonCheck::Parsed => Some(JsonCheck::Strict),
            JsonCheck::Strict => None,
        }
    }
}

/// The columns of [`copy_rows`], in order.
pub const ZSET_COLUMNS: &str = "key, time, score, value, digest";
/// The columns of [`copy_stream_rows`], in order.
pub const STREAM_COLUMNS: &str = "key, time, id, fields, digest";

/// A row being written into `out`.
struct Row<'a>(&'a mut BytesMut);

impl Row<'_> {
    fn start(out: &mut BytesMut, fields: i16) -> Row<'_> {
        out.put_i16(fields);
        Row(out)
    }

    /// `text`, `json` and `bytea`: the bytes themselves.
    fn bytes(&mut self, value: &[u8]) -> &mut Self {
        // Every value comes from a batch limited to 32 MiB of rows (and a relay message to 80 MiB).
        self.0.put_i32(value.len() as i32);
        self.0.put_slice(value);
        self
    }

    /// `jsonb`: a version byte, then the text.
    fn jsonb(&mut self, value: &[u8]) -> &mut Self {
        self.0.put_i32(value.len() as i32 + 1);
        self.0.put_u8(1);
        self.0.put_slice(value);
        self
    }

    fn float8(&mut self, value: f64) -> &mut Self {
        self.0.put_i32(8);
        self.0.put_f64(value);
        self
    }

    /// `timestamptz` from a time in Unix ms (within `0..MAX_TIME_MS`), to the microsecond as PostgreSQL keeps it.
    fn time_ms(&mut self, ms: f64) -> &mut Self {
        self.0.put_i32(8);
        self.0.put_i64(time_us(ms) - POSTGRES_EPOCH_US);
        self
    }
}

/// The start of binary `COPY` data: [`copy_zset_rows`] or [`copy_stream_entries`] follow, then [`copy_end`].
pub fn copy_start(out: &mut BytesMut) {
    out.put_slice(HEADER);
}

/// The end of binary `COPY` data.
pub fn copy_end(out: &mut BytesMut) {
    out.put_i16(-1);
}

/// Sorted-set rows of `batch` as rows of `COPY … (`[`ZSET_COLUMNS`]`) FROM STDIN BINARY`, appended to `out`,
/// their values as `check` says.
pub fn copy_zset_rows<'a>(
    batch: &'a Batch,
    rows: impl IntoIterator<Item = &'a ZsetRow>,
    check: JsonCheck,
    out: &mut BytesMut,
) {
    let mut converted = Vec::new();
    for row in rows {
        let value = match check {
            JsonCheck::AsRead => batch.zset_value(row),
            JsonCheck::Parsed if row.parsed => batch.zset_value(row),
            JsonCheck::Parsed => {
                // An unparsed value is the member's bytes as they came.
                converted.clear();
                json_text_into(batch.zset_value(row), &mut converted, true);
                &converted
            }
            JsonCheck::Strict => {
                converted = json_text_strict(batch.zset_value(row));
                &converted
            }
        };
        Row::start(out, 5)
            .bytes(batch.zset_key(row))
            .time_ms(row.score)
            .float8(row.score)
            .bytes(value)
            .bytes(&row.digest);
    }
}

/// Stream entries as rows of `COPY … (`[`STREAM_COLUMNS`]`) FROM STDIN BINARY`, appended to `out`.
pub fn copy_stream_entries<'a>(rows: impl IntoIterator<Item = &'a StreamRow>, out: &mut BytesMut) {
    for row in rows {
        Row::start(out, 5)
            .bytes(row.key.as_bytes())
            .time_ms(row.ms as f64)
            .bytes(row.id.as_bytes())
            .jsonb(&row.fields)
            .bytes(&row.digest);
    }
}

/// All the batch's sorted-set rows as one `COPY … (`[`ZSET_COLUMNS`]`) FROM STDIN BINARY`, appended to `out`.
pub fn copy_rows(batch: &Batch, check: JsonCheck, out: &mut BytesMut) {
    // Rows are about the size of their key and value plus 60 bytes of lengths, time, score and digest.
    out.reserve(HEADER.len() + batch.zset_text_len() + batch.zsets.len() * 60 + 2);
    copy_start(out);
    copy_zset_rows(batch, &batch.zsets, check, out);
    copy_end(out);
}

/// All the batch's stream entries as one `COPY … (`[`STREAM_COLUMNS`]`) FROM STDIN BINARY`, appended to `out`.
pub fn copy_stream_rows(batch: &Batch, out: &mut BytesMut) {
    copy_start(out);
    copy_stream_entries(&batch.streams, out);
    copy_end(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values of a binary `COPY` of sorted-set rows (the fourth field of each row).
    fn values(copy: &[u8]) -> Vec<Vec<u8>> {
        let mut at = HEADER.len();
        let mut values = Vec::new();
        loop {
            let fields = i16::from_be_bytes([copy[at], copy[at + 1]]);
            at += 2;
            if fields == -1 {
                return values;
            }
            for field in 0..fields {
                let len = i32::from_be_bytes(copy[at..at + 4].try_into().unwrap()) as usize;
                if field == 3 {
                    values.push(copy[at + 4..at + 4 + len].to_vec());
                }
                at += 4 + len;
            }
        }
    }

    #[test]
    fn members_left_unparsed_are_parsed_when_postgresql_refuses_them() {
        let mut batch = Batch::default();
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for member in [
            &br#"{"cpu":{"total":12.5}}"#[..],
            b"{not json",
            b"12abc",
            b"web-01",
            br#"{"n":1e-20000}"#,
            deep.as_bytes(),
        ] {
            batch.push_zset(b"perf:a", 1.7e12, member).unwrap();
        }
        let parsed: Vec<bool> = batch.zsets.iter().map(|r| r.parsed).collect();
        assert_eq!(
            parsed,
            [false, false, false, true, true, true],
            "what looks like JSON is left to PostgreSQL, but for a suspect number and deep nesting (too deep for serde_json: a string)"
        );
        let copy = |check| {
            let mut out = BytesMut::new();
            copy_rows(&batch, check, &mut out);
            values(&out)
        };
        let as_read = copy(JsonCheck::AsRead);
        assert_eq!(as_read[1], b"{not json", "as it came");
        let strings = [
            br#"{"cpu":{"total":12.5}}"#.to_vec(),
            br#""{not json""#.to_vec(),
            br#""12abc""#.to_vec(),
            br#""web-01""#.to_vec(),
            br#"{"n":0.0}"#.to_vec(),
            format!("\"{deep}\"").into_bytes(),
        ];
        assert_eq!(
            copy(JsonCheck::Parsed),
            strings,
            "as a sink parsing every member stores them"
        );
        assert_eq!(copy(JsonCheck::Strict), strings);
        assert_eq!(JsonCheck::AsRead.next(), Some(JsonCheck::Parsed));
        assert_eq!(JsonCheck::Strict.next(), None);
    }

    #[test]
    fn rows_are_written_in_the_binary_copy_format() {
        let mut batch = Batch::default();
        batch
            .push_zset(b"perf:a", 1_700_000_000_123.0, b"{}")
            .unwrap();
        batch
            .push_stream(b"ev", b"946684800001-7", &[b"f", b"v"])
            .unwrap();
        let mut out = BytesMut::new();
        copy_rows(&batch, JsonCheck::AsRead, &mut out);
        let mut expected = HEADER.to_vec();
        expected.extend_from_slice(&5i16.to_be_bytes());
        expected.extend_from_slice(&6i32.to_be_bytes());
        expected.extend_from_slice(b"perf:a");
        expected.extend_from_slice(&8i32.to_be_bytes());
        // 2023-11-14 22:13:20.123 UTC in microseconds after 2000-01-01.
        expected.extend_from_slice(&753_315_200_123_000i64.to_be_bytes());
        expected.extend_from_slice(&8i32.to_be_bytes());
        expected.extend_from_slice(&1_700_000_000_123.0f64.to_be_bytes());
        expected.extend_from_slice(&2i32.to_be_bytes());
        expected.extend_from_slice(b"{}");
        expected.extend_from_slice(&16i32.to_be_bytes());
        expected.extend_from_slice(&batch.zsets[0].digest);
        expected.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(&out[..], &expected[..]);

        let mut out = BytesMut::new();
        copy_stream_rows(&batch, &mut out);
        let mut expected = HEADER.to_vec();
        expected.extend_from_slice(&5i16.to_be_bytes());
        expected.extend_from_slice(&2i32.to_be_bytes());
        expected.extend_from_slice(b"ev");
        expected.extend_from_slice(&8i32.to_be_bytes());
        expected.extend_from_slice(&1_000i64.to_be_bytes());
        expected.extend_from_slice(&14i32.to_be_bytes());
        expected.extend_from_slice(b"946684800001-7");
        expected.extend_from_slice(&10i32.to_be_bytes());
        expected.push(1);
        expected.extend_from_slice(br#"{"f":"v"}"#);
        expected.extend_from_slice(&16i32.to_be_bytes());
        expected.extend_from_slice(&batch.streams[0].digest);
        expected.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(&out[..], &expected[..]);
    }
}
