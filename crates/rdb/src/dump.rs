//! `DUMP` payloads: a value type byte, the value in RDB form, the 2-byte RDB version and a CRC64 of everything
//! before it. They are read by the same [`RdbReader`] as files, started at the value instead of the header.

use super::error::RdbError;
use super::event::{Event, Flavor};
use super::reader::RdbReader;
use super::{ReaderOptions, NEWEST_VALKEY_VERSION};

/// The version and checksum after the value.
const TRAILER_LEN: usize = 10;

/// Decodes one `DUMP` payload, reporting the [`Event::Header`] (with the payload's version), the value as a key
/// with an empty name, and [`Event::Eof`] with the verified checksum.
///
/// Versions from 80 on are read as Valkey's (Valkey 9 dumps carry version 80); below, as Redis's.
pub fn decode_dump(
    payload: &[u8],
    options: ReaderOptions,
    mut on_event: impl FnMut(Event<'_>),
) -> Result<(), RdbError> {
    let Some(trailer) = payload
        .len()
        .checked_sub(TRAILER_LEN)
        .map(|at| &payload[at..])
    else {
        return Err(RdbError::Truncated {
            offset: payload.len() as u64,
            expected: "a DUMP payload of at least 10 bytes (type, version and CRC64)",
        });
    };
    let version = u32::from(u16::from_le_bytes([trailer[0], trailer[1]]));
    let flavor = if version >= NEWEST_VALKEY_VERSION {
        Flavor::Valkey
    } else {
        Flavor::Redis
    };
    let mut reader = RdbReader::for_dump(flavor, version, options)?;
    on_event(Event::Header { flavor, version });
    let used = reader.push(payload, &mut on_event)?;
    reader.finish()?;
    if used != payload.len() {
        return Err(RdbError::Trailing {
            offset: used as u64,
            extra: (payload.len() - used) as u64,
        });
    }
    Ok(())
}
