//! The backlog keeps what the link read without copying it: a batch of a good part of a read is a slice of the
//! link's read buffer itself, a short one a copy (so a few bytes never keep a whole buffer alive), and what no
//! session may get is wiped from the buffer the kept slices share. Driven through the link's own path
//! (`StreamReader`, `replica_link::apply`, the backlog), with Redis 7.0.15's command table.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use replicast_server::backlog::{Backlog, Read, MIN_SHARED_BATCH};
use replicast_server::command_table::CommandTable;
use replicast_server::link_io::push_command as command;
use replicast_server::metrics::LinkMetrics;
use replicast_server::replica_link::{apply, Sink};
use replicast_server::stream_reader::{StreamReader, MAX_HELD_COMMAND};
use replicast_server::subscription::Allow;

const EPOCH: &str = "0123456789abcdef0123456789abcdef01234567";

/// Collectors' `ZADD perf:hostN <ms> <~130-byte JSON>` of at least `bytes` bytes.
fn samples(out: &mut Vec<u8>, bytes: usize) {
    let until = out.len() + bytes;
    let mut i = 0;
    while out.len() < until {
        let host = format!("perf:host{}", i % 16);
        let ms = (1_700_000_000_000u64 + i * 250).to_string();
        let json =
            format!(r#"{{"id":"s{i}","cpu":{{"user":12.25,"sys":3.5,"idle":80.25}},"load":1.5}}"#);
        command(
            out,
            &[b"ZADD", host.as_bytes(), ms.as_bytes(), json.as_bytes()],
        );
        i += 1;
    }
}

/// The batches the backlog holds after the link, holding commands of up to `max_held` bytes, read `stream` in one
/// read, and where that read's buffer was.
fn ingest(stream: &[u8], max_held: usize) -> (Vec<Bytes>, Range<*const u8>, Backlog) {
    let reply = redis::parse_redis_value(include_bytes!("data/redis-7.0.15-command.resp"))
        .expect("the recorded COMMAND reply");
    let table = Arc::new(CommandTable::from_command_reply(&reply));
    let backlog = Backlog::new(64 << 20);
    backlog.restart(EPOCH, 0);
    let (ring, _, _) = backlog.join(None).expect("restarted");
    let allow = Allow::new(&["perf:*".to_string()]);
    let sink = Sink {
        backlog: &backlog,
        state: None,
        allow: Some(&allow),
    };
    let metrics = LinkMetrics::default();
    let mut reader = StreamReader::new(table, 0, max_held, 512 << 20);
    let mut buf = BytesMut::with_capacity(stream.len());
    buf.extend_from_slice(stream);
    let read = buf.as_ptr_range();
    let mut getacks = Vec::new();
    reader
        .read(&mut buf, &mut |output| {
            apply(output, sink, &metrics, None, &mut getacks)
        })
        .expect("the stream reads");
    assert_eq!(reader.offset(), stream.len() as u64);
    let Read::Batches(batches) = backlog.read(&ring, 0, usize::MAX) else {
        panic!("the batches read")
    };
    let kept = batches
        .iter()
        .map(|b| b.raw())
        .filter(|raw| !raw.is_empty())
        .collect();
    (kept, read, backlog)
}

#[test]
fn a_read_of_allowed_commands_is_kept_as_the_read_buffer_itself() {
    let mut stream = Vec::new();
    command(&mut stream, &[b"SELECT", b"0"]);
    samples(&mut stream, MIN_SHARED_BATCH);
    let (kept, read, _backlog) = ingest(&stream, MAX_HELD_COMMAND);
    assert_eq!(kept.len(), 1, "one batch");
    assert_eq!(&kept[0][..], &stream[..]);
    assert_eq!(
        kept[0].as_ptr_range(),
        read,
        "the batch is the read buffer, not a copy of it"
    );
}

#[test]
fn withheld_commands_are_wiped_from_the_shared_buffer_and_short_pieces_copied() {
    let mut stream = Vec::new();
    command(&mut stream, &[b"SELECT", b"0"]);
    samples(&mut stream, MIN_SHARED_BATCH);
    let secret_at = stream.len();
    command(&mut stream, &[b"SET", b"secret:token", b"hunter2"]);
    command(&mut stream, &[b"PING"]);
    let secret = secret_at..stream.len();
    samples(&mut stream, MIN_SHARED_BATCH);
    command(&mut stream, &[b"SET", b"secret:other", b"x"]);
    let short_at = stream.len();
    command(&mut stream, &[b"ZADD", b"perf:short", b"1", b"m"]);
    let (kept, read, _backlog) = ingest(&stream, MAX_HELD_COMMAND);
    let [first, second, short] = &kept[..] else {
        panic!("three pieces kept: {kept:?}")
    };
    assert_eq!(&short[..], &stream[short_at..]);
    assert!(
        !read.contains(&short.as_ptr()),
        "a piece shorter than {MIN_SHARED_BATCH} bytes is copied"
    );
    for piece in [first, second] {
        assert!(piece.len() >= MIN_SHARED_BATCH);
        assert!(
            read.contains(&piece.as_ptr()),
            "a long piece is a slice of the read buffer"
        );
    }
    assert_eq!(
        first.as_ptr_range().end,
        read.start.wrapping_add(secret.start)
    );
    assert_eq!(second.as_ptr(), read.start.wrapping_add(secret.end));
    // SAFETY: `first` and `second` keep their one buffer alive, and nothing writes to it any more; the bytes
    // between them are inside it.
    let between = unsafe { std::slice::from_raw_parts(first.as_ptr_range().end, secret.len()) };
    assert_eq!(
        between,
        vec![0; secret.len()],
        "the withheld SET and the PING are wiped"
    );
}

#[test]
fn a_command_too_large_to_hold_is_wiped_from_the_buffer_as_it_goes_by() {
    let mut stream = Vec::new();
    command(&mut stream, &[b"SELECT", b"0"]);
    samples(&mut stream, MIN_SHARED_BATCH);
    let large_at = stream.len();
    command(&mut stream, &[b"SET", b"perf:big", &[b'v'; 4096]]);
    let large = large_at..stream.len();
    let (kept, read, _backlog) = ingest(&stream, 1024);
    let [before, names] = &kept[..] else {
        panic!("the batch before it and its key's name: {kept:?}")
    };
    assert_eq!(&names[..], b"perf:big");
    assert_eq!(
        before.as_ptr_range().end,
        read.start.wrapping_add(large.start)
    );
    // SAFETY: `before` keeps its buffer alive, and nothing writes to it any more; the command's bytes follow its
    // own in it.
    let behind = unsafe { std::slice::from_raw_parts(before.as_ptr_range().end, large.len()) };
    assert_eq!(behind, vec![0; large.len()], "never held, and wiped");
}
