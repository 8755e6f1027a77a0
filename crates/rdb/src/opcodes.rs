//! The top level of an RDB: the header (`REDIS0012`, `VALKEY080`) and the opcodes between keys (auxiliary fields,
//! database selection and sizes, slot info, functions, module aux data, a key's expiry, LRU and LFU), up to the
//! type byte and name that start each key.

use super::cursor::Cursor;
use super::error::{Halt, RdbError};
use super::event::{Checksum, Encoding, Event, Flavor, ModuleId};
use super::reader::RdbReader;
use super::state::State;
use super::Limits;

const OP_SLOT_INFO: u8 = 244;
const OP_FUNCTION2: u8 = 245;
const OP_FUNCTION_PRE_GA: u8 = 246;
const OP_MODULE_AUX: u8 = 247;
const OP_IDLE: u8 = 248;
const OP_FREQ: u8 = 249;
const OP_AUX: u8 = 250;
const OP_RESIZEDB: u8 = 251;
const OP_EXPIRETIME_MS: u8 = 252;
const OP_EXPIRETIME: u8 = 253;
const OP_SELECTDB: u8 = 254;
const OP_EOF: u8 = 255;

/// The first version with a CRC64 trailer.
const FIRST_CHECKSUM_VERSION: u32 = 5;
/// Length of the `REDIS0012` / `VALKEY080` magic.
const MAGIC_LEN: usize = 9;

impl RdbReader {
    pub(crate) fn magic_step(
        &mut self,
        cur: &mut Cursor<'_>,
        on: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), Halt> {
        let magic = cur.take(MAGIC_LEN)?;
        let (flavor, digits) = if let Some(d) = magic.strip_prefix(b"REDIS") {
            (Flavor::Redis, d)
        } else if let Some(d) = magic.strip_prefix(b"VALKEY") {
            (Flavor::Valkey, d)
        } else {
            return Err(RdbError::Unexpected {
                offset: 0,
                expected: "the magic \"REDIS\" or \"VALKEY\"",
                found: format!("{:?}", String::from_utf8_lossy(magic)),
            }
            .into());
        };
        let version = std::str::from_utf8(digits)
            .ok()
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u32>().ok())
            .filter(|&v| v > 0)
            .ok_or_else(|| RdbError::Unexpected {
                offset: (MAGIC_LEN - digits.len()) as u64,
                expected: "an RDB version in decimal digits",
                found: format!("{:?}", String::from_utf8_lossy(digits)),
            })?;
        self.options
            .check_version(flavor, version, (MAGIC_LEN - digits.len()) as u64)?;
        self.flavor = flavor;
        self.version = version;
        self.state = State::Top;
        on(Event::Header { flavor, version });
        Ok(())
    }

    pub(crate) fn encoding_of(&self, id: u8, at: u64) -> Result<Encoding, RdbError> {
        Encoding::from_id(id, self.flavor).ok_or_else(|| RdbError::Unexpected {
            offset: at,
            expected: "an opcode (244 to 255) or a value type (0 to 7, 9 to 25)",
            found: format!(
                "{} for {} RDB version {}",
                id,
                self.flavor.name(),
                self.version
            ),
        })
    }

    pub(crate) fn top_step(
        &mut self,
        cur: &mut Cursor<'_>,
        on: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), Halt> {
        let limits: &Limits = &self.options.limits;
        let at = cur.offset();
        let op = cur.u8()?;
        match op {
            OP_EOF => {
                if self.version >= FIRST_CHECKSUM_VERSION {
                    self.state = State::Checksum;
                } else {
                    self.state = State::Done;
                    on(Event::Eof {
                        checksum: Checksum::Absent,
                    });
                }
            }
            OP_SELECTDB => {
                let db = cur.len("a database number")?;
                self.key.db = db;
                on(Event::SelectDb { db });
            }
            OP_EXPIRETIME => {
                let secs = cur.u32_le()? as i32;
                self.key.expire_ms = Some(i64::from(secs) * 1000);
            }
            OP_EXPIRETIME_MS => self.key.expire_ms = Some(cur.millis()?),
            OP_RESIZEDB => {
                let keys = cur.len("a database size")?;
                let expires = cur.len("a number of keys with expiry")?;
                on(Event::ResizeDb { keys, expires });
            }
            OP_AUX => {
                let [a, b, ..] = &mut self.scratch;
                let key = cur.raw_string("an aux field name", limits)?;
                let value = cur.raw_string("an aux field value", limits)?;
                let (key, value) = (key.decode(a)?, value.decode(b)?);
                on(Event::Aux { key, value });
            }
            OP_FREQ => self.key.lfu_freq = Some(cur.u8()?),
            OP_IDLE => self.key.idle_secs = Some(cur.len("an LRU idle time")?),
            OP_MODULE_AUX => {
                let module = ModuleId(cur.len("a module id")?);
                let when_at = cur.offset();
                let when_op = cur.len("a module opcode")?;
                if when_op != super::module::MODULE_OP_UINT {
                    return Err(RdbError::Unexpected {
                        offset: when_at,
                        expected: "the UINT opcode (2) of a module aux's `when`",
                        found: when_op.to_string(),
                    }
                    .into());
                }
                let when = cur.len("a module aux's `when`")?;
                self.state = State::ModuleAux;
                on(Event::ModuleAux { module, when });
            }
            OP_FUNCTION_PRE_GA => {
                let [a, b, c, d] = &mut self.scratch;
                let name = cur.raw_string("a function name", limits)?;
                let engine = cur.raw_string("a function engine name", limits)?;
                let has_description = cur.len("a function description flag")?;
                let description = if has_description != 0 {
                    Some(cur.raw_string("a function description", limits)?)
                } else {
                    None
                };
                let code = cur.raw_string("a function's code", limits)?;
                let (name, engine, code) = (name.decode(a)?, engine.decode(b)?, code.decode(d)?);
                let description = match description {
                    Some(raw) => Some(raw.decode(c)?),
                    None => None,
                };
                on(Event::FunctionPreGa {
                    name,
                    engine,
                    description,
                    code,
                });
            }
            OP_FUNCTION2 => {
                let code = cur.string("a function library's code", limits, &mut self.scratch[0])?;
                on(Event::Function { code });
            }
            OP_SLOT_INFO => {
                let slot = cur.len("a slot number")?;
                let size = cur.len("a slot size")?;
                let expires = cur.len("a slot's number of keys with expiry")?;
                on(Event::SlotInfo {
                    slot,
                    size,
                    expires,
                });
            }
            id => {
                let encoding = self.encoding_of(id, at)?;
                let key = cur.string("a key", limits, &mut self.scratch[0])?;
                self.key.key.clear();
                key.write_to(&mut self.key.key);
                self.begin_key(encoding, at);
            }
        }
        Ok(())
    }
}
