//! The saved-view reader (`StreamAssembler::restore_view`) over arbitrary bytes: the records a page reads back from
//! IndexedDB, which any script of the page's origin can write. Half the inputs are taken as the whole record; the
//! other half are bodies after the watch the restoring assembler has, sealed with their checksum right, so that the
//! reading gets past the checksum to every count, length, key and window.
//!
//! Besides never panicking or hanging: a refused record leaves the assembler as it was (no window, no stream
//! position); an accepted one holds only keys its patterns match, no window past its length, and saves to a record
//! that restores into a fresh assembler and saves again to the same bytes; and what a restore allocates stays within
//! 1 MiB (the streams of up to 1,024 shards) plus 512 bytes a byte of the record (a count read from the record never
//! sizes an allocation by itself).
//!
//! Run: `cargo +nightly fuzz run saved_view -- -max_total_time=600` from the repository root.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hash::Hasher;
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use replicast_assembler::{StreamAssembler, WatchConfig};

/// Counts the bytes held, and their peak since the last reset, so that a restore's allocations can be bounded.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let held = HELD.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(held, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            let grown = new_size - layout.size();
            let held = HELD.fetch_add(grown, Ordering::Relaxed) + grown;
            PEAK.fetch_max(held, Ordering::Relaxed);
        } else {
            HELD.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The restoring assembler's watch: `w:*` in database 0, windows of 4.
const WINDOW: usize = 4;

fn watch() -> WatchConfig {
    WatchConfig {
        patterns: vec![b"w:*".to_vec()],
        db: 0,
        window: WINDOW,
    }
}

/// A record of format 1 with the assembler's watch, `body` after it, and its checksum right.
fn sealed(body: &[u8]) -> Vec<u8> {
    let mut record = b"RCVW\x01".to_vec();
    record.extend_from_slice(&[0, WINDOW as u8, 1, 3]);
    record.extend_from_slice(b"w:*");
    record.extend_from_slice(body);
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(&record);
    record.extend_from_slice(&hasher.finish().to_le_bytes());
    record
}

/// Restores `record` into a fresh assembler, with the bytes it allocated at most at once.
fn restore(record: &[u8]) -> (StreamAssembler, Result<(), String>, usize) {
    let mut assembler = StreamAssembler::new(watch());
    let before = HELD.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let restored = assembler.restore_view(record).map_err(|e| e.to_string());
    let allocated = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    (assembler, restored, allocated)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let record = match mode % 2 {
        0 => rest.to_vec(),
        _ => sealed(rest),
    };
    let (assembler, restored, allocated) = restore(&record);
    // A stream's shard may be up to 1,023, and the shards' streams below it are made too (a few hundred bytes
    // each): a constant; each window costs its map entry and its items' containers besides the bytes it borrows
    // from the record.
    let bound = 1024 * 1024 + 512 * record.len();
    assert!(
        allocated <= bound,
        "restoring a {}-byte record allocated {allocated} bytes (bound {bound})",
        record.len()
    );
    if let Err(why) = restored {
        assert!(!why.is_empty());
        assert_eq!(
            assembler.windows().count(),
            0,
            "refused ({why}), yet windows were applied"
        );
        assert!(
            assembler.positions().is_empty(),
            "refused ({why}), yet positions were applied"
        );
        return;
    }
    for (key, window) in assembler.windows() {
        assert!(
            key.starts_with(b"w:"),
            "a key outside the patterns: {}",
            key.escape_ascii()
        );
        assert!(
            window.len() <= WINDOW,
            "a window of {} items past its {WINDOW}",
            window.len()
        );
    }
    let Some(saved) = assembler.save_view() else {
        panic!("a restored view does not save");
    };
    let (again, restored, _) = restore(&saved);
    assert_eq!(restored, Ok(()), "a restored view's own record is refused");
    assert_eq!(
        again.save_view().as_deref(),
        Some(saved.as_slice()),
        "a second round trip changed the record"
    );
});
