//! The RDB payload of a full resynchronisation, consumed as it streams by, never held whole.
//!
//! A primary sends it either as `$<length>\r\n` and that many bytes (disk-backed sync), or, to replicas that said
//! `capa eof`, as `$EOF:<40-byte mark>\r\n`, the bytes, then the mark again (diskless sync). The stream of commands
//! starts right after it. Each piece of the payload is handed on as it arrives (to the relay's state, which reads
//! it with the RDB reader, or to nothing), so only one read's worth of it is ever in memory.

use std::future::Future;

use bytes::Buf;

use crate::link_error::LinkError;
use crate::link_io::LinkIo;

/// Length of the diskless end mark (Redis's `RDB_EOF_MARK_SIZE`).
const EOF_MARK_LEN: usize = 40;

/// Consumes the payload, handing each piece of it to `on_chunk` in order, and awaiting `room()` before each read
/// (where whoever takes the pieces holds the link back); returns its size in bytes.
pub async fn read_rdb_payload<F: Future<Output = ()>>(
    io: &mut LinkIo<'_>,
    mut on_chunk: impl FnMut(&[u8]),
    mut room: impl FnMut() -> F,
) -> Result<u64, LinkError> {
    let header = io.read_line().await?;
    if let Some(mark) = header.strip_prefix("$EOF:") {
        let mark = mark.as_bytes();
        if mark.len() != EOF_MARK_LEN {
            return Err(LinkError::Protocol(format!(
                "diskless payload mark of {} bytes, expected {EOF_MARK_LEN}",
                mark.len()
            )));
        }
        return read_until_mark(io, mark, on_chunk, room).await;
    }
    let len = header
        .strip_prefix('$')
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| {
            LinkError::Protocol(format!(
                "expected the RDB payload ($<length> or $EOF:<mark>), got {header:?}"
            ))
        })?;
    let mut left = len;
    while left > 0 {
        if io.buf.is_empty() {
            room().await;
            io.fill().await?;
        }
        let take = left.min(io.buf.len() as u64) as usize;
        on_chunk(&io.buf[..take]);
        io.buf.advance(take);
        left -= take as u64;
    }
    Ok(len)
}

async fn read_until_mark<F: Future<Output = ()>>(
    io: &mut LinkIo<'_>,
    mark: &[u8],
    mut on_chunk: impl FnMut(&[u8]),
    mut room: impl FnMut() -> F,
) -> Result<u64, LinkError> {
    let mut skipped = 0u64;
    loop {
        if let Some(at) = io.buf.windows(mark.len()).position(|w| w == mark) {
            on_chunk(&io.buf[..at]);
            io.buf.advance(at + mark.len());
            return Ok(skipped + at as u64);
        }
        // Keep the tail that could be the start of the mark; hand on the rest.
        let keep = io.buf.len().min(mark.len() - 1);
        let drop = io.buf.len() - keep;
        on_chunk(&io.buf[..drop]);
        io.buf.advance(drop);
        skipped += drop as u64;
        room().await;
        io.fill().await?;
    }
}
