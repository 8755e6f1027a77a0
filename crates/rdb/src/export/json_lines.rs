//! `replicast rdb`'s JSON Lines: one object per key, written element by element as the reader reports them.

use std::io::{self, Write};

use crate::{Element, Event, StreamId, Value, ValueType};

use super::filter::Filter;
use super::json_output::JsonOutput;
use super::json_scalar::{
    is_plain_text, is_utf8, write_base64, write_finite_f64, write_i64, write_plain_text, write_str,
    write_u64,
};

/// Where the writer is inside a stream's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StreamAt {
    Entries,
    Groups,
    GroupPending,
    ConsumerPending,
}

/// Writes one JSON object per key, as its events arrive.
#[derive(Default)]
pub struct JsonLines {
    /// Inside a key that is being printed.
    printing: bool,
    value_type: Option<ValueType>,
    /// No element written yet in the innermost open list.
    first: bool,
    stream: Option<StreamAt>,
}

impl JsonLines {
    pub fn on_event(
        &mut self,
        event: &Event<'_>,
        filter: &Filter,
        out: &mut JsonOutput<impl Write>,
    ) -> io::Result<()> {
        match event {
            Event::KeyStart(key) => {
                self.printing = filter.accepts(key);
                if !self.printing {
                    return Ok(());
                }
                self.value_type = Some(key.value_type);
                self.first = true;
                out.write_all(b"{\"db\":")?;
                write_u64(out, key.db)?;
                out.write_all(b",\"key\":")?;
                write_bytes(out, key.key)?;
                out.write_all(b",\"type\":\"")?;
                out.write_all(key.value_type.name().as_bytes())?;
                out.write_all(b"\",\"expire_ms\":")?;
                match key.expire_ms {
                    Some(ms) => write_i64(out, ms)?,
                    None => out.write_all(b"null")?,
                }
                if let Some(module) = key.module {
                    write!(
                        out,
                        ",\"module\":\"{}\",\"module_id\":\"{}\"",
                        module.name(),
                        module.0
                    )?;
                }
                out.write_all(b",\"value\":")?;
                match key.value_type {
                    ValueType::List | ValueType::Set | ValueType::ZSet | ValueType::Hash => {
                        out.write_all(b"[")?
                    }
                    ValueType::Stream => {
                        out.write_all(b"{\"entries\":[")?;
                        self.stream = Some(StreamAt::Entries);
                    }
                    ValueType::String | ValueType::Module => {}
                }
            }
            Event::Element(element) if self.printing => self.element(element, out)?,
            Event::KeyEnd { .. } if self.printing => {
                self.printing = false;
                match self.value_type {
                    Some(ValueType::List | ValueType::Set | ValueType::ZSet | ValueType::Hash) => {
                        out.write_all(b"]")?
                    }
                    Some(ValueType::Stream) => {
                        let close: &[u8] = match self.stream.take() {
                            Some(StreamAt::Entries) => b"]",
                            Some(StreamAt::Groups) | None => b"]",
                            Some(StreamAt::GroupPending) => b"],\"consumers\":[]}]",
                            Some(StreamAt::ConsumerPending) => b"]}]}]",
                        };
                        out.write_all(close)?;
                        out.write_all(b"}")?;
                    }
                    Some(ValueType::Module) => out.write_all(b"null")?,
                    Some(ValueType::String) | None => {}
                }
                out.write_all(b"}\n")?;
            }
            _ => {}
        }
        Ok(())
    }

    /// A comma before every element of a list but the first.
    fn separator(&mut self, out: &mut JsonOutput<impl Write>) -> io::Result<()> {
        if !std::mem::replace(&mut self.first, false) {
            out.write_all(b",")?;
        }
        Ok(())
    }

    fn element(
        &mut self,
        element: &Element<'_>,
        out: &mut JsonOutput<impl Write>,
    ) -> io::Result<()> {
        match element {
            Element::String(v) => write_value(out, v)?,
            Element::ListItem(v) | Element::SetMember(v) => {
                self.separator(out)?;
                write_value(out, v)?;
            }
            Element::ZSetMember { member, score } => {
                self.separator(out)?;
                out.write_all(b"[")?;
                write_value(out, member)?;
                out.write_all(b",")?;
                write_score(out, *score)?;
                out.write_all(b"]")?;
            }
            Element::HashField {
                field,
                value,
                expire_ms,
            } => {
                self.separator(out)?;
                out.write_all(b"[")?;
                write_value(out, field)?;
                out.write_all(b",")?;
                write_value(out, value)?;
                if let Some(ms) = expire_ms {
                    out.write_all(b",")?;
                    write_i64(out, *ms)?;
                }
                out.write_all(b"]")?;
            }
            Element::StreamEntry { id, fields } => {
                self.separator(out)?;
                out.write_all(b"{\"id\":")?;
                write_id(out, *id)?;
                out.write_all(b",\"fields\":[")?;
                for (i, (f, v)) in fields.iter().enumerate() {
                    out.write_all(if i == 0 { b"[" } else { b",[" })?;
                    write_value(out, f)?;
                    out.write_all(b",")?;
                    write_value(out, v)?;
                    out.write_all(b"]")?;
                }
                out.write_all(b"]}")?;
            }
            Element::StreamMeta(meta) => {
                write!(
                    out,
                    "],\"length\":{},\"last_id\":\"{}\"",
                    meta.length, meta.last_id
                )?;
                out.write_all(b",\"first_id\":")?;
                write_opt_id(out, meta.first_id)?;
                out.write_all(b",\"max_deleted_id\":")?;
                write_opt_id(out, meta.max_deleted_id)?;
                out.write_all(b",\"entries_added\":")?;
                write_opt(out, meta.entries_added)?;
                out.write_all(b",\"groups\":[")?;
                self.stream = Some(StreamAt::Groups);
                self.first = true;
            }
            Element::StreamGroup {
                name,
                last_id,
                entries_read,
                ..
            } => {
                match self.stream {
                    Some(StreamAt::GroupPending) => out.write_all(b"],\"consumers\":[]},")?,
                    Some(StreamAt::ConsumerPending) => out.write_all(b"]}]},")?,
                    _ => {}
                }
                out.write_all(b"{\"name\":")?;
                write_value(out, name)?;
                write!(out, ",\"last_id\":\"{last_id}\",\"entries_read\":")?;
                write_opt(out, *entries_read)?;
                out.write_all(b",\"pending\":[")?;
                self.stream = Some(StreamAt::GroupPending);
                self.first = true;
            }
            Element::StreamGroupPending {
                id,
                delivery_time_ms,
                delivery_count,
            } => {
                self.separator(out)?;
                out.write_all(b"{\"id\":")?;
                write_id(out, *id)?;
                out.write_all(b",\"delivery_time_ms\":")?;
                write_u64(out, *delivery_time_ms)?;
                out.write_all(b",\"delivery_count\":")?;
                write_u64(out, *delivery_count)?;
                out.write_all(b"}")?;
            }
            Element::StreamConsumer {
                name,
                seen_time_ms,
                active_time_ms,
                ..
            } => {
                match self.stream {
                    Some(StreamAt::GroupPending) => out.write_all(b"],\"consumers\":[")?,
                    Some(StreamAt::ConsumerPending) => out.write_all(b"]},")?,
                    _ => {}
                }
                out.write_all(b"{\"name\":")?;
                write_value(out, name)?;
                write!(out, ",\"seen_time_ms\":{seen_time_ms},\"active_time_ms\":")?;
                write_opt(out, *active_time_ms)?;
                out.write_all(b",\"pending\":[")?;
                self.stream = Some(StreamAt::ConsumerPending);
                self.first = true;
            }
            Element::StreamConsumerPending { id } => {
                self.separator(out)?;
                write_id(out, *id)?;
            }
        }
        Ok(())
    }
}

pub(super) fn write_opt(out: &mut JsonOutput<impl Write>, v: Option<u64>) -> io::Result<()> {
    match v {
        Some(v) => write_u64(out, v),
        None => out.write_all(b"null"),
    }
}

/// A stream ID as the JSON string `"<ms>-<seq>"`.
fn write_id(out: &mut JsonOutput<impl Write>, id: StreamId) -> io::Result<()> {
    out.write_all(b"\"")?;
    write_u64(out, id.ms)?;
    out.write_all(b"-")?;
    write_u64(out, id.seq)?;
    out.write_all(b"\"")
}

pub(super) fn write_opt_id(
    out: &mut JsonOutput<impl Write>,
    id: Option<StreamId>,
) -> io::Result<()> {
    match id {
        Some(id) => write_id(out, id),
        None => out.write_all(b"null"),
    }
}

/// A score as a JSON number; the infinities and NaN, which JSON lacks, as the strings Redis prints.
pub(super) fn write_score(out: &mut JsonOutput<impl Write>, score: f64) -> io::Result<()> {
    if score.is_nan() {
        out.write_all(b"\"nan\"")
    } else if score.is_infinite() {
        out.write_all(if score > 0.0 { b"\"inf\"" } else { b"\"-inf\"" })
    } else {
        write_finite_f64(out, score)
    }
}

pub(super) fn write_value(out: &mut JsonOutput<impl Write>, v: &Value<'_>) -> io::Result<()> {
    match v {
        Value::Bytes(b) => write_bytes(out, b),
        Value::Int(i) => {
            out.write_all(b"\"")?;
            write_i64(out, *i)?;
            out.write_all(b"\"")
        }
    }
}

/// A JSON string if the bytes are UTF-8, else `{"base64":"..."}`. Plain text, which needs neither a UTF-8 check
/// nor an escape, is told in one pass and copied whole.
pub(super) fn write_bytes(out: &mut JsonOutput<impl Write>, bytes: &[u8]) -> io::Result<()> {
    if is_plain_text(bytes) {
        write_plain_text(out, bytes)
    } else if is_utf8(bytes) {
        write_str(out, bytes)
    } else {
        write_base64(out, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Encoding, KeyStart, ModuleId, StreamMeta};

    fn key(db: u64, name: &[u8], value_type: ValueType, expire_ms: Option<i64>) -> KeyStart<'_> {
        KeyStart {
            db,
            key: name,
            value_type,
            encoding: Encoding::String,
            expire_ms,
            idle_secs: None,
            lfu_freq: None,
            offset: 0,
            module: None,
        }
    }

    fn lines(events: &[Event<'_>]) -> String {
        let mut writer = JsonLines::default();
        let mut written = Vec::new();
        let mut out = JsonOutput::with_capacity(0, &mut written);
        for event in events {
            writer
                .on_event(event, &Filter::default(), &mut out)
                .unwrap();
        }
        out.flush().unwrap();
        drop(out);
        String::from_utf8(written).unwrap()
    }

    fn one_key<'a>(start: KeyStart<'a>, elements: &[Element<'a>]) -> String {
        let mut events = vec![Event::KeyStart(start)];
        events.extend(elements.iter().map(|e| Event::Element(*e)));
        events.push(Event::KeyEnd { offset: 0 });
        lines(&events)
    }

    #[test]
    fn every_type_is_written_byte_for_byte_as_before() {
        let b = Value::Bytes;
        let id = |ms, seq| StreamId { ms, seq };
        let fields = [(b(b"host"), b(b"h1")), (b(b"cpu"), Value::Int(-42))];
        let mut output = String::new();
        output += &one_key(
            key(
                0,
                b"s\"q\\\n\x01",
                ValueType::String,
                Some(1_700_000_000_123),
            ),
            &[Element::String(b(b"caf\xc3\xa9 \xe2\x80\xa8\x7f\t"))],
        );
        output += &one_key(
            key(3, b"bin\xff", ValueType::String, Some(-5)),
            &[Element::String(b(b"\xff\x00\x80abc"))],
        );
        output += &one_key(
            key(0, b"int", ValueType::String, None),
            &[Element::String(Value::Int(i64::MIN))],
        );
        output += &one_key(
            key(1, b"list", ValueType::List, None),
            &[
                Element::ListItem(b(b"a")),
                Element::ListItem(Value::Int(7)),
                Element::ListItem(b(b"\xc3")),
            ],
        );
        output += &one_key(
            key(0, b"set", ValueType::Set, None),
            &[
                Element::SetMember(Value::Int(0)),
                Element::SetMember(b(b"")),
            ],
        );
        output += &one_key(
            key(0, b"zset", ValueType::ZSet, None),
            &[
                Element::ZSetMember {
                    member: b(b"m"),
                    score: 1.5,
                },
                Element::ZSetMember {
                    member: b(b"n"),
                    score: -0.0,
                },
                Element::ZSetMember {
                    member: b(b"o"),
                    score: 1e21,
                },
                Element::ZSetMember {
                    member: b(b"p"),
                    score: 0.1,
                },
                Element::ZSetMember {
                    member: b(b"q"),
                    score: 5e-324,
                },
                Element::ZSetMember {
                    member: b(b"r"),
                    score: f64::INFINITY,
                },
                Element::ZSetMember {
                    member: b(b"s"),
                    score: f64::NEG_INFINITY,
                },
                Element::ZSetMember {
                    member: b(b"t"),
                    score: f64::NAN,
                },
                Element::ZSetMember {
                    member: Value::Int(9),
                    score: 123456789.0,
                },
            ],
        );
        output += &one_key(
            key(0, b"hash", ValueType::Hash, None),
            &[
                Element::HashField {
                    field: b(b"f"),
                    value: b(b"v"),
                    expire_ms: None,
                },
                Element::HashField {
                    field: Value::Int(1),
                    value: b(b"\xfe"),
                    expire_ms: Some(1_800_000_000_000),
                },
            ],
        );
        output += &one_key(
            key(0, b"stream", ValueType::Stream, None),
            &[
                Element::StreamEntry {
                    id: id(1, 0),
                    fields: &fields,
                },
                Element::StreamEntry {
                    id: id(u64::MAX, 7),
                    fields: &[],
                },
                Element::StreamMeta(StreamMeta {
                    length: 2,
                    last_id: id(u64::MAX, 7),
                    first_id: Some(id(1, 0)),
                    max_deleted_id: None,
                    entries_added: Some(3),
                    groups: 2,
                }),
                Element::StreamGroup {
                    name: b(b"g1"),
                    last_id: id(1, 0),
                    entries_read: Some(1),
                    pending: 1,
                },
                Element::StreamGroupPending {
                    id: id(1, 0),
                    delivery_time_ms: 1_700_000_000_000,
                    delivery_count: 2,
                },
                Element::StreamConsumer {
                    name: b(b"c1"),
                    seen_time_ms: 10,
                    active_time_ms: None,
                    pending: 1,
                },
                Element::StreamConsumerPending { id: id(1, 0) },
                Element::StreamGroup {
                    name: b(b"g2"),
                    last_id: id(0, 0),
                    entries_read: None,
                    pending: 0,
                },
            ],
        );
        output += &one_key(
            key(0, b"stream2", ValueType::Stream, None),
            &[
                Element::StreamMeta(StreamMeta {
                    length: 0,
                    last_id: id(5, 5),
                    first_id: None,
                    max_deleted_id: Some(id(4, 1)),
                    entries_added: None,
                    groups: 1,
                }),
                Element::StreamGroup {
                    name: b(b"g"),
                    last_id: id(5, 5),
                    entries_read: None,
                    pending: 0,
                },
                Element::StreamConsumer {
                    name: b(b"c"),
                    seen_time_ms: 1,
                    active_time_ms: Some(2),
                    pending: 0,
                },
            ],
        );
        let mut module = key(0, b"mod", ValueType::Module, None);
        module.module = Some(ModuleId(0x1234_5678_9abc_def0));
        output += &one_key(module, &[]);
        assert_eq!(output, GOLDEN);
    }

    /// Written by the code before the fast scalars (serde_json strings and floats, `write!` numbers).
    const GOLDEN: &str = concat!(
        "{\"db\":0,\"key\":\"s\\\"q\\\\\\n\\u0001\",\"type\":\"string\",\"expire_ms\":1700000000123,\"value\":\"caf\u{e9} \u{2028}\u{7f}\\t\"}\n",
        r#"{"db":3,"key":{"base64":"Ymlu/w=="},"type":"string","expire_ms":-5,"value":{"base64":"/wCAYWJj"}}"#,
        "\n",
        r#"{"db":0,"key":"int","type":"string","expire_ms":null,"value":"-9223372036854775808"}"#,
        "\n",
        r#"{"db":1,"key":"list","type":"list","expire_ms":null,"value":["a","7",{"base64":"ww=="}]}"#,
        "\n",
        r#"{"db":0,"key":"set","type":"set","expire_ms":null,"value":["0",""]}"#,
        "\n",
        r#"{"db":0,"key":"zset","type":"zset","expire_ms":null,"value":[["m",1.5],["n",-0.0],["o",1e+21],["p",0.1],["q",5e-324],["r","inf"],["s","-inf"],["t","nan"],["9",123456789.0]]}"#,
        "\n",
        r#"{"db":0,"key":"hash","type":"hash","expire_ms":null,"value":[["f","v"],["1",{"base64":"/g=="},1800000000000]]}"#,
        "\n",
        r#"{"db":0,"key":"stream","type":"stream","expire_ms":null,"value":{"entries":[{"id":"1-0","fields":[["host","h1"],["cpu","-42"]]},{"id":"18446744073709551615-7","fields":[]}],"length":2,"last_id":"18446744073709551615-7","first_id":"1-0","max_deleted_id":null,"entries_added":3,"groups":[{"name":"g1","last_id":"1-0","entries_read":1,"pending":[{"id":"1-0","delivery_time_ms":1700000000000,"delivery_count":2}],"consumers":[{"name":"c1","seen_time_ms":10,"active_time_ms":null,"pending":["1-0"]}]},{"name":"g2","last_id":"0-0","entries_read":null,"pending":[],"consumers":[]}]}}"#,
        "\n",
        r#"{"db":0,"key":"stream2","type":"stream","expire_ms":null,"value":{"entries":[],"length":0,"last_id":"5-5","first_id":null,"max_deleted_id":"4-1","entries_added":null,"groups":[{"name":"g","last_id":"5-5","entries_read":null,"pending":[],"consumers":[{"name":"c","seen_time_ms":1,"active_time_ms":2,"pending":[]}]}]}}"#,
        "\n",
        r#"{"db":0,"key":"mod","type":"module","expire_ms":null,"module":"EjRWeJq83","module_id":"1311768467463790320","value":null}"#,
        "\n",
    );
}
