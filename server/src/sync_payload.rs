//! The RDB payload of a full resynchronisation, consumed as it streams by, never held whole.
//!
//! A primary sends it either as `$<length>\r\n` and that many bytes (disk-backed sync), or, to replicas that said
//! `capa eof`, as `$EOF:<40-byte mark>\r\n`, the bytes, then the mark again (diskless sync). The stream of commands
//! starts right after it. This skeleton discards the snapshot; parsing it is the RDB reader's job.

use bytes::Buf;

use crate::link_error::LinkError;
use crate::link_io::LinkIo;

/// Length of the diskless end mark (Redis's `RDB_EOF_MARK_SIZE`).
const EOF_MARK_LEN: usize = 40;

/// Consumes the payload; returns its size in bytes.
pub async fn skip_rdb_payload(io: &mut LinkIo) -> Result<u64, LinkError> {
    let header = io.read_line().await?;
    if let Some(mark) = header.strip_prefix("$EOF:") {
        let mark = mark.as_bytes();
        if mark.len() != EOF_MARK_LEN {
            return Err(LinkError::Protocol(format!(
                "diskless payload mark of {} bytes, expected {EOF_MARK_LEN}",
                mark.len()
            )));
        }
        return skip_until_mark(io, mark).await;
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
            io.fill().await?;
        }
        let take = left.min(io.buf.len() as u64) as usize;
        io.buf.advance(take);
        left -= take as u64;
    }
    Ok(len)
}

async fn skip_until_mark(io: &mut LinkIo, mark: &[u8]) -> Result<u64, LinkError> {
    let mut skipped = 0u64;
    loop {
        if let Some(at) = io.buf.windows(mark.len()).position(|w| w == mark) {
            io.buf.advance(at + mark.len());
            return Ok(skipped + at as u64);
        }
        // Keep the tail that could be the start of the mark; drop the rest.
        let keep = io.buf.len().min(mark.len() - 1);
        let drop = io.buf.len() - keep;
        io.buf.advance(drop);
        skipped += drop as u64;
        io.fill().await?;
    }
}
