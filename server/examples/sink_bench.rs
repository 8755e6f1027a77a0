//! The sink's own work per sample, without sockets or PostgreSQL, for counting its instructions
//! (`valgrind --tool=callgrind`, repeatable on a loaded machine where wall-clock time is not). Driven by
//! `bench/sink-path.sh` (run that):
//!
//! ```text
//! cargo run --release -p replicast-server --example sink_bench -- generate <file> [samples] [hosts]
//! cargo run --release -p replicast-server --example sink_bench -- path <file>
//! ```
//!
//! `generate`: writes the relay messages a sink following `perf:*` receives while `replicast collect --simulate
//! HOSTS --keep 5` writes SAMPLES (200,000) samples of HOSTS (10,000) hosts: a hello, an empty join snapshot, then
//! commands messages of about 1 MiB (the relay's read budget per session) holding the collector's transactions as
//! Redis propagates them (`MULTI`, `ZADD perf:<host> <t> <json>`, `ZREMRANGEBYRANK perf:<host> 0 -6`, `EXEC`),
//! each message a 4-byte length and its bytes. `path`: reads the file whole and does what the sink does with each
//! message — the relay message read into batches of the default 20,000 rows (`Changes::apply`), and each batch's
//! rows encoded as the binary `COPY` the writer sends — then prints the samples and rows, so that the instructions
//! callgrind counts, less those of an empty file, divided by the samples are the sink's cost per sample.

use std::io::Write;

use replicast_protocol::wire;
use replicast_server::collect::simulate::SimHost;
use replicast_server::link_io::push_command as resp;
use replicast_server::sink::changes::{Changes, Modes, Patterns};
use replicast_server::sink::copy::{copy_rows, JsonCheck};
use replicast_server::sink::rows::Batch;

const EPOCH: &str = "1c4f0aa81be1b7e0d1c0ab7f25c3d2c8d2e1f0a9";
/// Bytes of stream per commands message, about: the relay's read budget per session and shard.
const MESSAGE_BYTES: usize = 1 << 20;
/// Rows per batch: `replicast sink`'s default `--batch-rows`.
const BATCH_ROWS: usize = 20_000;
/// Bytes per batch: the sink's `BATCH_BYTES`.
const BATCH_BYTES: usize = 32 << 20;
/// Samples each host keeps in Redis (the collector's `--keep` in bench/sink.sh).
const KEEP: usize = 5;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("generate") => generate(&args[1..]),
        Some("path") => path(&args[1..]),
        _ => Err("usage: sink_bench generate <file> [samples] [hosts] | path <file>".into()),
    };
    if let Err(err) = result {
        eprintln!("sink_bench: {err}");
        std::process::exit(1);
    }
}

fn push_message(out: &mut Vec<u8>, message: &[u8]) {
    out.extend_from_slice(&(message.len() as u32).to_le_bytes());
    out.extend_from_slice(message);
}

fn generate(args: &[String]) -> Result<()> {
    let file = args.first().ok_or("generate <file> [samples] [hosts]")?;
    let samples: usize = args.get(1).map_or(Ok(200_000), |n| n.parse())?;
    let hosts: usize = args.get(2).map_or(Ok(10_000), |n| n.parse())?;
    let mut sims: Vec<SimHost> = (0..hosts).map(|i| SimHost::new(i, 42)).collect();
    let mut out = Vec::new();
    push_message(&mut out, &wire::encode_hello(EPOCH, 0));
    push_message(&mut out, &wire::encode_snapshot(0, b""));
    let mut offset = 0u64;
    let mut stream = Vec::new();
    resp(&mut stream, &[b"SELECT", b"0"]);
    let trim = format!("-{}", KEEP + 1);
    let mut t = 1_700_000_000_000u64;
    for n in 0..samples {
        let host = &mut sims[n % hosts];
        if n % hosts == 0 {
            t += 200;
        }
        let sample = host.sample(t);
        let key = format!("perf:{}", sample.host);
        let score = sample.t.to_string();
        resp(&mut stream, &[b"MULTI"]);
        resp(
            &mut stream,
            &[
                b"ZADD",
                key.as_bytes(),
                score.as_bytes(),
                sample.to_json().as_bytes(),
            ],
        );
        // Redis propagates the trim only once it removes a member.
        if n >= hosts * KEEP {
            resp(
                &mut stream,
                &[b"ZREMRANGEBYRANK", key.as_bytes(), b"0", trim.as_bytes()],
            );
        }
        resp(&mut stream, &[b"EXEC"]);
        if stream.len() >= MESSAGE_BYTES || n + 1 == samples {
            push_message(&mut out, &wire::encode_commands(offset, &stream));
            offset += stream.len() as u64;
            stream.clear();
        }
    }
    std::fs::write(file, &out)?;
    println!(
        "{samples} samples of {hosts} hosts, {} bytes of stream, into {file}",
        offset
    );
    Ok(())
}

fn path(args: &[String]) -> Result<()> {
    let file = args.first().ok_or("path <file>")?;
    let input = std::fs::read(file)?;
    let modes = Modes {
        history: Patterns::new(&["perf:*".to_string()]),
        mirror: Patterns::new(&[]),
        db: 0,
        window: 1000,
    };
    let mut changes = Changes::new(modes, Vec::new(), Vec::new());
    let mut batch = Batch::default();
    let mut copy = bytes::BytesMut::new();
    let (mut rows, mut batches, mut copied) = (0usize, 0usize, 0usize);
    let mut write = |batch: Batch, copy: &mut bytes::BytesMut| {
        copy_rows(&batch, JsonCheck::AsRead, copy);
        rows += batch.zsets.len();
        batches += 1;
        copied += copy.len();
        copy.clear();
    };
    let mut at = 0;
    while at + 4 <= input.len() {
        let len = u32::from_le_bytes(input[at..at + 4].try_into()?) as usize;
        let message = input
            .get(at + 4..at + 4 + len)
            .ok_or("a message past the file's end")?;
        at += 4 + len;
        changes
            .apply(message, &mut batch)
            .map_err(|e| e.to_string())?;
        if batch.len() >= BATCH_ROWS || batch.bytes >= BATCH_BYTES {
            let full = std::mem::take(&mut batch);
            batch.positions = full.positions.clone();
            write(full, &mut copy);
        }
    }
    if !batch.is_empty() {
        write(batch, &mut copy);
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "RESULT {{\"bench\":\"sink-path\",\"rows\":{rows},\"batches\":{batches},\"copy_bytes\":{copied}}}"
    )?;
    Ok(())
}
