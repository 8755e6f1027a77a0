//! `replicast rdb`'s JSON Lines: one object per key, written element by element as the reader reports them.

use std::io::{self, Write};

use crate::{Element, Event, StreamId, Value, ValueType};
use base64::Engine;

use super::filter::Filter;

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
        out: &mut impl Write,
    ) -> io::Result<()> {
        match event {
            Event::KeyStart(key) => {
                self.printing = filter.accepts(key);
                if !self.printing {
                    return Ok(());
                }
                self.value_type = Some(key.value_type);
                self.first = true;
                write!(out, "{{\"db\":{},\"key\":", key.db)?;
                write_bytes(out, key.key)?;
                write!(
                    out,
                    ",\"type\":\"{}\",\"expire_ms\":",
                    key.value_type.name()
                )?;
                match key.expire_ms {
                    Some(ms) => write!(out, "{ms}")?,
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
    fn separator(&mut self, out: &mut impl Write) -> io::Result<()> {
        if !std::mem::replace(&mut self.first, false) {
            out.write_all(b",")?;
        }
        Ok(())
    }

    fn element(&mut self, element: &Element<'_>, out: &mut impl Write) -> io::Result<()> {
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
                    write!(out, ",{ms}")?;
                }
                out.write_all(b"]")?;
            }
            Element::StreamEntry { id, fields } => {
                self.separator(out)?;
                write!(out, "{{\"id\":\"{id}\",\"fields\":[")?;
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
                write!(
                    out,
                    "{{\"id\":\"{id}\",\"delivery_time_ms\":{delivery_time_ms},\"delivery_count\":{delivery_count}}}"
                )?;
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
                write!(out, "\"{id}\"")?;
            }
        }
        Ok(())
    }
}

pub(super) fn write_opt(out: &mut impl Write, v: Option<u64>) -> io::Result<()> {
    match v {
        Some(v) => write!(out, "{v}"),
        None => out.write_all(b"null"),
    }
}

pub(super) fn write_opt_id(out: &mut impl Write, id: Option<StreamId>) -> io::Result<()> {
    match id {
        Some(id) => write!(out, "\"{id}\""),
        None => out.write_all(b"null"),
    }
}

/// A score as a JSON number; the infinities and NaN, which JSON lacks, as the strings Redis prints.
pub(super) fn write_score(out: &mut impl Write, score: f64) -> io::Result<()> {
    if score.is_nan() {
        out.write_all(b"\"nan\"")
    } else if score.is_infinite() {
        out.write_all(if score > 0.0 { b"\"inf\"" } else { b"\"-inf\"" })
    } else {
        serde_json::to_writer(&mut *out, &score).map_err(io::Error::other)
    }
}

pub(super) fn write_value(out: &mut impl Write, v: &Value<'_>) -> io::Result<()> {
    match v {
        Value::Bytes(b) => write_bytes(out, b),
        Value::Int(i) => write!(out, "\"{i}\""),
    }
}

/// A JSON string if the bytes are UTF-8, else `{"base64":"..."}`.
pub(super) fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::to_writer(&mut *out, text).map_err(io::Error::other),
        Err(_) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            write!(out, "{{\"base64\":\"{encoded}\"}}")
        }
    }
}
