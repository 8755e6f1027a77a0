//! The replica link's socket: buffered reads, reply lines of the handshake, and commands written as RESP.
//!
//! The backlog keeps slices of the read buffer itself (`backlog::Batch::read`), so a buffer lives as long as the
//! last batch read into it: reads go into buffers of at most [`BLOCK`] bytes besides a command being read,
//! never into the rest of one grown for a large command, and bytes left behind in a buffer are wiped.
//!
//! The stream's buffers are blocks of one size ([`BLOCK`]), reused once the backlog has let go of every slice of
//! one, rather than one allocated and freed for each read: once the ring has been filled, reads go to memory
//! already faulted in, and the allocator neither grows its heap nor gives it back (docs/BENCHMARKS.md, "Ingest",
//! round seven). The blocks are kept in [`Blocks`], which outlives the link's connections, so a reconnect reads
//! into the memory of the last one. (Writing the ring's worth of them at start-up was tried and not kept: it moved
//! the first pass's page faults to start-up rather than saving them, and gave every link, one a shard, the ring's
//! memory from the start: round nine.)

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::link_error::LinkError;

/// Least room a read is given; a read takes what room its buffer has, at most [`BLOCK`] bytes besides one command.
pub const READ_CHUNK: usize = 64 * 1024;
/// Size of the buffers the stream is read into (but those of a command longer than a read), reused. At full speed
/// the socket holds more than a block, so this is the size of a read: 512 KiB reads take a quarter of the system
/// calls and wakeups of 128 KiB ones and about a fifth less of the relay's CPU on the recorded stream
/// (docs/BENCHMARKS.md, "Ingest", round eight).
pub const BLOCK: usize = 8 * READ_CHUNK;
/// Blocks waiting for reuse beyond what the ring could hold of them (8 MiB): the ring evicts its oldest batches
/// first, so the oldest block is the next free, but a session may hold a batch a little longer.
const SPARE_BLOCKS: usize = 16;
/// Longest handshake reply line (`+FULLRESYNC <40 hex> <offset>` is ~70 bytes; errors are longer, not this long).
const MAX_LINE: usize = 4096;

/// A plain or TLS connection to Redis.
pub trait LinkStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> LinkStream for T {}

/// The blocks the stream is read into, kept for reuse across the link's connections (a reconnect resumes into
/// the same ring, whose batches may still hold slices of them).
pub struct Blocks {
    /// Blocks read into before, oldest first, each reused once no batch holds a slice of it any more; at most
    /// `max_kept`: as many as the ring holds at full speed and [`SPARE_BLOCKS`] more, so that
    /// what this keeps alive besides the ring is at most the ring's capacity and 8 MiB (and is nothing while the
    /// ring holds them, as it does at full speed).
    spent: VecDeque<BytesMut>,
    max_kept: usize,
}

impl Blocks {
    /// Blocks for a ring of `ring_capacity` bytes (what bounds those kept for reuse), allocated as reads need them.
    pub fn new(ring_capacity: usize) -> Self {
        Blocks {
            spent: VecDeque::new(),
            max_kept: ring_capacity / BLOCK + SPARE_BLOCKS,
        }
    }

    /// A block to read into: the oldest spent one if no batch holds a slice of it any more, else a new one.
    fn take(&mut self) -> BytesMut {
        if let Some(oldest) = self.spent.front_mut() {
            // Only the sole handle of a block can take back all of it; the spent handles are empty.
            if oldest.try_reclaim(BLOCK) {
                if let Some(block) = self.spent.pop_front() {
                    return block;
                }
            }
        }
        BytesMut::with_capacity(BLOCK)
    }

    /// A block read into, to be reused once no batch holds a slice of it; the oldest kept goes past the limit.
    fn spend(&mut self, mut block: BytesMut) {
        block.clear();
        self.spent.push_back(block);
        if self.spent.len() > self.max_kept {
            self.spent.pop_front();
        }
    }
}

pub struct LinkIo<'b> {
    reader: ReadHalf<Box<dyn LinkStream>>,
    pub writer: WriteHalf<Box<dyn LinkStream>>,
    /// Bytes read and not yet consumed.
    pub buf: BytesMut,
    /// Longest silence from Redis before the link counts as dead (see [`LinkIo::fill`]).
    timeout: Duration,
    /// When Redis last sent anything (or the link opened): the silence is counted from here, however often a
    /// read is started and cancelled in between (the stream's reads give way to the ack timer every second).
    heard: tokio::time::Instant,
    /// Whether `buf` is a [`BLOCK`], to be given back to `blocks` when it is replaced.
    in_block: bool,
    blocks: &'b mut Blocks,
}

impl<'b> LinkIo<'b> {
    /// A link whose stream is read into `blocks`.
    pub fn new(stream: Box<dyn LinkStream>, timeout: Duration, blocks: &'b mut Blocks) -> Self {
        let (reader, writer) = tokio::io::split(stream);
        LinkIo {
            reader,
            writer,
            buf: BytesMut::with_capacity(READ_CHUNK),
            timeout,
            heard: tokio::time::Instant::now(),
            in_block: false,
            blocks,
        }
    }

    /// Reads more bytes into the buffer; a closed connection is an error, as the link must never end, and so is
    /// silence longer than the timeout. Redis never stays that quiet on a live link: it pings its replicas every
    /// `repl-ping-replica-period` (10 s) and sends a newline each second while it prepares an RDB payload. Without
    /// this, a primary whose host vanished (a partition, a frozen VM) would hold the link until TCP gave up, many
    /// minutes later; a Redis replica gives up after its `repl-timeout` (60 s) in the same way.
    pub async fn fill(&mut self) -> Result<usize, LinkError> {
        self.make_room();
        let deadline = self.heard + self.timeout;
        match tokio::time::timeout_at(deadline, self.reader.read_buf(&mut self.buf)).await {
            Err(_) => Err(LinkError::Silent(self.timeout)),
            Ok(read) => match read? {
                0 => Err(LinkError::Closed),
                n => {
                    self.heard = tokio::time::Instant::now();
                    Ok(n)
                }
            },
        }
    }

    /// Room for a read of at least [`READ_CHUNK`] bytes (a quarter of that in a [`BLOCK`]): the buffer's own, or a
    /// fresh buffer. Batches may share the
    /// buffer, so it is not grown in place (what `BytesMut::reserve` would copy and keep) but replaced, what it
    /// still holds (the start of a command) copied over and wiped from the old one. A fresh buffer has room for a
    /// read besides that, or twice that while a command longer than a read grows (so a command is copied a bounded
    /// number of times). The rest of a buffer grown for a large command is not read into: a small batch there would
    /// keep the whole of it alive.
    fn make_room(&mut self) {
        let (len, spare) = (self.buf.len(), self.buf.capacity() - self.buf.len());
        let oversized = len <= READ_CHUNK && spare > BLOCK;
        // A block is read into up to its last quarter of a read: at full speed it then holds about a block of
        // batches, and the ring as many blocks as its capacity counts (what `spent` keeps for reuse).
        let least = if self.in_block {
            READ_CHUNK / 4
        } else {
            READ_CHUNK
        };
        if oversized || (spare < least && !self.buf.try_reclaim(READ_CHUNK)) {
            self.fresh_buffer();
        }
    }

    /// Moves what the buffer holds to a fresh one (see [`LinkIo::make_room`]), wiping it from the old: the stream's
    /// batches then never share a buffer with the handshake, the RDB payload or a command not yet judged.
    /// A command still being read goes to a [`BLOCK`] (the oldest spent one if nothing holds it any more), or to
    /// a buffer twice its length once it is longer than a read.
    pub fn fresh_buffer(&mut self) {
        let len = self.buf.len();
        let in_block = len <= READ_CHUNK;
        let mut fresh = if in_block {
            self.blocks.take()
        } else {
            BytesMut::with_capacity(2 * len)
        };
        fresh.extend_from_slice(&self.buf);
        self.buf.fill(0);
        let old = std::mem::replace(&mut self.buf, fresh);
        if std::mem::replace(&mut self.in_block, in_block) {
            self.blocks.spend(old);
        }
    }

    /// Writes one command as a RESP array of bulk strings.
    pub async fn send(&mut self, args: &[&str]) -> Result<(), LinkError> {
        self.writer.write_all(&encode_command(args)).await?;
        Ok(())
    }

    /// Sends a command and reads its one-line reply; `-ERR ...` replies become [`LinkError::Refused`].
    pub async fn call(&mut self, args: &[&str]) -> Result<String, LinkError> {
        self.send(args).await?;
        let reply = self.read_line().await?;
        match reply.strip_prefix('-') {
            Some(error) => Err(LinkError::Refused {
                command: args[0].to_string(),
                error: error.to_string(),
            }),
            None => Ok(reply),
        }
    }

    /// The next reply line without its `\r\n`, skipping the bare `\n` keepalives a primary sends while it
    /// prepares the RDB payload.
    pub async fn read_line(&mut self) -> Result<String, LinkError> {
        loop {
            while self.buf.first() == Some(&b'\n') {
                self.buf.advance(1);
            }
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(end + 1);
                let line = line.strip_suffix(b"\r\n").unwrap_or(&line[..end]);
                return Ok(String::from_utf8_lossy(line).into_owned());
            }
            if self.buf.len() > MAX_LINE {
                return Err(LinkError::Protocol(format!(
                    "reply line longer than {MAX_LINE} bytes without a newline"
                )));
            }
            self.fill().await?;
        }
    }
}

pub fn encode_command(args: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    push_command(&mut out, &args);
    out
}

/// Appends one command as a RESP array of bulk strings.
pub fn push_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reply_line_is_at_most_4096_bytes() {
        let (relay, mut redis) = tokio::io::duplex(1 << 16);
        let mut blocks = Blocks::new(1 << 20);
        let mut io = LinkIo::new(Box::new(relay), Duration::from_secs(5), &mut blocks);
        redis.write_all(&[b'+'; 5000]).await.unwrap();
        let err = io.read_line().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "unexpected reply: reply line longer than 4096 bytes without a newline"
        );
    }

    #[tokio::test]
    async fn after_a_large_command_reads_go_to_a_fresh_buffer_and_what_stays_behind_is_wiped() {
        let (relay, mut redis) = tokio::io::duplex(1 << 16);
        let mut blocks = Blocks::new(1 << 20);
        let mut io = LinkIo::new(Box::new(relay), Duration::from_secs(5), &mut blocks);
        let large = 1 << 20;
        let writer = tokio::spawn(async move {
            redis.write_all(&vec![b'x'; large]).await.unwrap();
            redis.write_all(b"*1\r\n$4\r\nPI").await.unwrap();
            redis
        });
        while io.buf.len() < large + 10 {
            io.fill().await.unwrap();
        }
        let mut redis = writer.await.unwrap();
        // The large command goes to the backlog, a slice of this buffer; the start of the next stays.
        let batch = io.buf.split_to(large).freeze();
        let behind = io.buf.as_ptr();
        redis.write_all(b"NG\r\n").await.unwrap();
        io.fill().await.unwrap();
        assert_eq!(&io.buf[..], b"*1\r\n$4\r\nPING\r\n");
        assert!(
            io.buf.capacity() <= BLOCK,
            "{} bytes of room: the rest of the large command's buffer",
            io.buf.capacity()
        );
        assert_eq!(batch.as_ptr_range().end, behind);
        // SAFETY: `batch` keeps its whole buffer alive and nothing writes to it any more; these 10 bytes are inside
        // it, right after the batch's own.
        let left = unsafe { std::slice::from_raw_parts(behind, 10) };
        assert_eq!(
            left, [0; 10],
            "the start of the command left behind is wiped"
        );
    }

    #[tokio::test]
    async fn a_block_is_read_into_again_once_no_batch_holds_a_slice_of_it() {
        let (relay, mut redis) = tokio::io::duplex(1 << 16);
        // A ring of no capacity: only the spare blocks are kept for reuse.
        let mut blocks = Blocks::new(0);
        let mut io = LinkIo::new(Box::new(relay), Duration::from_secs(5), &mut blocks);
        io.fresh_buffer();
        let first = io.buf.as_ptr();
        redis.write_all(&[b'a'; 1000]).await.unwrap();
        io.fill().await.unwrap();
        let batch = io.buf.split_to(1000).freeze();
        // The batch holds the first block: the next buffers are new ones, and what the batch holds stays as read.
        io.fresh_buffer();
        assert_eq!(io.buf.capacity(), BLOCK);
        assert_ne!(io.buf.as_ptr(), first);
        redis.write_all(&[b'b'; 1000]).await.unwrap();
        io.fill().await.unwrap();
        io.buf.clear();
        io.fresh_buffer();
        assert_ne!(io.buf.as_ptr(), first);
        assert_eq!(batch, vec![b'a'; 1000]);
        // Once the ring lets go of it, the oldest block is read into again, whole.
        drop(batch);
        io.fresh_buffer();
        assert_eq!(io.buf.as_ptr(), first);
        assert_eq!(io.buf.capacity(), BLOCK);
        redis.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
        io.fill().await.unwrap();
        assert_eq!(&io.buf[..], b"*1\r\n$4\r\nPING\r\n");
    }

    #[tokio::test]
    async fn a_block_is_read_into_until_less_than_a_quarter_of_a_read_is_left() {
        let (relay, mut redis) = tokio::io::duplex(READ_CHUNK);
        let mut blocks = Blocks::new(0);
        let mut io = LinkIo::new(Box::new(relay), Duration::from_secs(5), &mut blocks);
        io.fresh_buffer();
        let start = io.buf.as_ptr();
        redis.write_all(&[b'a'; 1000]).await.unwrap();
        io.fill().await.unwrap();
        let _batch = io.buf.split_to(1000).freeze();
        let writer = tokio::spawn(async move {
            redis.write_all(&vec![b'b'; BLOCK]).await.unwrap();
            redis
        });
        io.fill().await.unwrap();
        assert_eq!(io.buf.len(), READ_CHUNK);
        // The reads go on into the block, the last with less than a read's room left, more than a quarter of one.
        while io.buf.len() < BLOCK - 1000 {
            io.fill().await.unwrap();
            assert_eq!(io.buf.as_ptr(), start.wrapping_add(1000));
        }
        assert_eq!(io.buf.len(), BLOCK - 1000);
        let _full = io.buf.split().freeze();
        io.fill().await.unwrap();
        assert_ne!(io.buf.as_ptr(), start.wrapping_add(1000));
        assert_eq!(io.buf.len(), 1000);
        drop(writer.await.unwrap());
    }

    #[test]
    fn the_blocks_kept_for_reuse_are_at_most_the_rings_and_16_more() {
        let (relay, _redis) = tokio::io::duplex(64);
        let mut blocks = Blocks::new(10 * BLOCK);
        let mut io = LinkIo::new(Box::new(relay), Duration::from_secs(5), &mut blocks);
        let mut held = Vec::new();
        for _ in 0..200 {
            io.fresh_buffer();
            io.buf.extend_from_slice(b"x");
            held.push(io.buf.split_to(1).freeze());
        }
        // The blocks of the first 173 slices went out of the queue (freed when their slices are): the last of the
        // 200 is being read into, the 26 before it wait.
        assert_eq!(io.blocks.spent.len(), 10 + SPARE_BLOCKS);
        let oldest_kept = held[200 - 1 - (10 + SPARE_BLOCKS)].as_ptr();
        drop(held);
        io.fresh_buffer();
        assert_eq!(io.buf.as_ptr(), oldest_kept);
        assert_eq!(io.blocks.spent.len(), 10 + SPARE_BLOCKS);
    }

    #[test]
    fn the_blocks_read_into_outlive_a_connection_and_the_next_one_reads_into_them_again() {
        let mut blocks = Blocks::new(4 * BLOCK);
        let mut held = Vec::new();
        {
            let (relay, _redis) = tokio::io::duplex(64);
            let mut io = LinkIo::new(Box::new(relay), Duration::from_secs(5), &mut blocks);
            for _ in 0..6 {
                io.fresh_buffer();
                io.buf.extend_from_slice(b"x");
                held.push(io.buf.split_to(1).freeze());
            }
            // The six blocks spent; the one being read into when the connection ends goes with it.
            io.fresh_buffer();
        }
        assert_eq!(blocks.spent.len(), 6);
        // The connection is gone, the blocks stay: once the ring lets go of them, the next connection reads into
        // them again, the oldest first.
        let oldest = held[0].as_ptr();
        drop(held);
        let (relay, _redis) = tokio::io::duplex(64);
        let mut io = LinkIo::new(Box::new(relay), Duration::from_secs(5), &mut blocks);
        io.fresh_buffer();
        assert_eq!(io.buf.as_ptr(), oldest);
        assert_eq!(io.buf.capacity(), BLOCK);
    }

    #[test]
    fn commands_are_resp_arrays() {
        assert_eq!(
            super::encode_command(&["REPLCONF", "ACK", "42"]),
            b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$2\r\n42\r\n"
        );
    }
}
