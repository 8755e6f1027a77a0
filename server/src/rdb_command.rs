//! `replicast rdb FILE|-`: prints an RDB file (or a full-resync payload saved to a file) as JSON Lines, one object
//! per key, streaming: a key's value is written element by element as the reader reports it, so memory stays
//! bounded whatever the size of the file or of its biggest key. `--stats` prints a summary instead.
//!
//! ```text
//! replicast rdb dump.rdb --key 'perf:*' --type zset --db 0
//! {"db":0,"key":"perf:h1","type":"zset","expire_ms":null,"value":[["member",1.5]]}
//! replicast rdb dump.rdb --stats
//! ```
//!
//! The format is documented in docs/RDB.md.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use replicast_protocol::pattern::Glob;
use replicast_rdb::export::{Filter, JsonLines, JsonOutput, Stats};
use replicast_rdb::{RdbReader, ReaderOptions, ValueType};

/// Bytes read from the file at a time.
const READ_CHUNK: usize = 256 * 1024;
/// Size of the output buffer.
const WRITE_BUFFER: usize = 256 * 1024;

#[derive(clap::Args)]
pub struct RdbArgs {
    /// The RDB file, or `-` for standard input.
    file: PathBuf,
    /// Only keys matching this Redis glob (repeatable: any of them).
    #[arg(long = "key", value_name = "GLOB")]
    keys: Vec<String>,
    /// Only keys of this type: string, list, set, zset, hash, stream or module (repeatable).
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
    types: Vec<ValueType>,
    /// Only keys of this database (repeatable).
    #[arg(long = "db", value_name = "N")]
    dbs: Vec<u64>,
    /// Print a summary (keys and bytes per database, type, encoding, key prefix and time to expiry, the biggest
    /// keys, functions, modules, version and checksum: docs/RDB.md) instead of the keys.
    #[arg(long)]
    stats: bool,
    /// How many of the biggest keys `--stats` lists.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Read RDB versions newer than this build knows, as if they were the newest known.
    #[arg(long)]
    best_effort: bool,
}

fn parse_type(name: &str) -> Result<ValueType, String> {
    ValueType::from_name(name).ok_or_else(|| {
        format!("unknown type {name:?}: expected string, list, set, zset, hash, stream or module")
    })
}

pub fn run(args: RdbArgs) -> anyhow::Result<()> {
    let mut input: Box<dyn Read> = if args.file.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(&args.file)
                .with_context(|| format!("cannot open {}", args.file.display()))?,
        )
    };
    let mut out = JsonOutput::with_capacity(WRITE_BUFFER, standard_output()?);
    let filter = Filter {
        keys: args.keys.iter().map(|k| Glob::new(k.as_bytes())).collect(),
        types: args.types.clone(),
        dbs: args.dbs.clone(),
    };
    let started = Instant::now();
    let mut reader = RdbReader::with_options(ReaderOptions {
        best_effort: args.best_effort,
        ..ReaderOptions::default()
    });
    // Expiries are measured from the file's ctime; a file without one, from now.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut stats = Stats::with_clock(args.top, now_ms);
    let mut lines = JsonLines::default();
    let mut write_error: Option<io::Error> = None;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("cannot read the RDB"),
        };
        total += n as u64;
        let result = reader.push(&buf[..n], |event| {
            if args.stats {
                stats.on_event(&event, &filter);
            } else if write_error.is_none() {
                if let Err(e) = lines.on_event(&event, &filter, &mut out) {
                    write_error = Some(e);
                }
            }
        });
        if let Some(e) = write_error.take() {
            return finish_output(Err(e));
        }
        let used = result.context("cannot parse the RDB")?;
        if used < n || reader.is_done() {
            break;
        }
    }
    reader.finish().context("cannot parse the RDB")?;
    if args.stats {
        let elapsed = started.elapsed().as_secs_f64();
        stats
            .write(&mut out, total)
            .context("cannot write the summary")?;
        eprintln!(
            "parsed {total} bytes, {} keys in {elapsed:.3} s: {:.1} MB/s, {:.0} keys/s",
            stats.all_keys,
            total as f64 / 1e6 / elapsed.max(1e-9),
            stats.all_keys as f64 / elapsed.max(1e-9),
        );
    }
    finish_output(out.flush())
}

/// Standard output without std's line buffering: the output is buffered here already, and a line-buffered stdout
/// searched every 256 KiB block for its last newline and copied the part after it, for nothing (see the JSON Lines
/// section of docs/BENCHMARKS.md).
#[cfg(unix)]
fn standard_output() -> anyhow::Result<impl Write> {
    use std::os::fd::AsFd;
    let fd = io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .context("cannot open the standard output")?;
    Ok(std::fs::File::from(fd))
}

#[cfg(not(unix))]
fn standard_output() -> anyhow::Result<impl Write> {
    Ok(io::stdout().lock())
}

/// A closed pipe (`| head`) ends the output quietly, as for any Unix filter.
fn finish_output(result: io::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write the output"),
    }
}
