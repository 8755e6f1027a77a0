//! The replica link's path from the socket's bytes to the backlog allocates nothing per command: the stream reader
//! cuts the reads into batches, the filter keeps what `--allow` lets out, the backlog stores each batch, and every
//! allocation on the way is per batch (its index, its message, its place in the ring), never per command. A
//! counting global allocator (this test binary's own) proves it: ten times the commands in the same number of
//! reads allocate the same, give or take the few times a batch's lists grow to the larger batches.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use replicast_server::backlog::Backlog;
use replicast_server::command_table::CommandTable;
use replicast_server::link_io::push_command as command;
use replicast_server::metrics::LinkMetrics;
use replicast_server::replica_link::{apply, Sink};
use replicast_server::stream_reader::{StreamReader, MAX_HELD_COMMAND};
use replicast_server::subscription::Allow;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller keeps `GlobalAlloc`'s contract, which `System` has too.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller keeps `GlobalAlloc`'s contract, which `System` has too.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller keeps `GlobalAlloc`'s contract, which `System` has too.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller keeps `GlobalAlloc`'s contract, which `System` has too.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The reads the link gets, whatever the number of commands: more commands make each read longer.
const READS: usize = 16;

/// `SELECT 0` and `commands` collectors' `ZADD perf:hostN <ms> <~130-byte JSON>`, as Redis propagates them.
fn stream(commands: usize) -> Vec<u8> {
    let mut out = Vec::new();
    command(&mut out, &[b"SELECT", b"0"]);
    for i in 0..commands {
        let host = format!("perf:host{}", i % 16);
        let ms = (1_700_000_000_000 + i * 250).to_string();
        let json = format!(
            r#"{{"id":"s{i}","host":"host{}","cpu":{{"user":{}.25,"sys":3.5,"idle":80.25}},"mem":{},"net":{{"rx":{},"tx":4096}},"load":1.5}}"#,
            i % 16,
            i % 60,
            i * 7919,
            i * 31
        );
        command(
            &mut out,
            &[b"ZADD", host.as_bytes(), ms.as_bytes(), json.as_bytes()],
        );
    }
    out
}

/// Redis 7.0.15's own command table.
fn table() -> Arc<CommandTable> {
    let reply = redis::parse_redis_value(include_bytes!("data/redis-7.0.15-command.resp"))
        .expect("the recorded COMMAND reply");
    Arc::new(CommandTable::from_command_reply(&reply))
}

/// Allocations while `stream` goes, in [`READS`] reads, through the link's reader, filter and backlog.
fn allocations(table: &Arc<CommandTable>, stream: &[u8]) -> u64 {
    let backlog = Backlog::new(1 << 30);
    backlog.restart("0123456789abcdef0123456789abcdef01234567", 0);
    let allow = Allow::new(&["perf:*".to_string()]);
    let sink = Sink {
        backlog: &backlog,
        state: None,
        allow: Some(&allow),
    };
    let metrics = LinkMetrics::default();
    let mut reader = StreamReader::new(table.clone(), 0, MAX_HELD_COMMAND, 512 << 20);
    let mut buf = BytesMut::with_capacity(stream.len() / READS + 1);
    let mut getacks = Vec::new();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for read in stream.chunks(stream.len().div_ceil(READS)) {
        buf.extend_from_slice(read);
        reader
            .read(&mut buf, &mut |output| {
                apply(output, sink, &metrics, None, &mut getacks)
            })
            .expect("the stream reads");
    }
    let allocated = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(reader.offset(), stream.len() as u64, "all of it was read");
    assert_eq!(
        *backlog.changed().borrow(),
        stream.len() as u64,
        "all of it is in the backlog"
    );
    allocated
}

#[test]
fn ten_times_the_commands_in_the_same_reads_allocate_the_same() {
    let table = table();
    let (small, large) = (stream(10_000), stream(100_000));
    // Once first: whatever is set up on first use is not the path's.
    allocations(&table, &small);
    let at_10k = allocations(&table, &small);
    let at_100k = allocations(&table, &large);
    // A batch's lists (its frames, its keys) are sized like the batch before, so only the first read's grow step by
    // step: at most a few dozen more steps for ten times its commands.
    assert!(
        at_100k <= at_10k + 64,
        "10,000 commands allocated {at_10k} times, 100,000 allocated {at_100k} times, in {READS} reads"
    );
}
