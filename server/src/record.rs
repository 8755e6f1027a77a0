//! `replicast record`: writes the raw replication stream of a Redis (the commands after the RDB payload) to a
//! file, exactly as a replica receives it, for tests, benchmarks and bug reports.
//!
//! It prints `recording epoch <replid> from offset <offset>` on stdout once streaming, so whoever drives it knows
//! that byte `i` of the file is replication offset `offset + i`. It stops on Ctrl-C/SIGTERM, after `--max-bytes`,
//! or with an error if the stream restarts (a new full resync would make the file discontinuous).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::io::AsyncWriteExt;

use crate::backlog::{Backlog, Read, DEFAULT_BACKLOG_BYTES};
use crate::replica_link::{self, ReplicaLink};
use crate::upstream::{RedisTarget, Upstream};

#[derive(clap::Args)]
pub struct RecordArgs {
    /// Redis to record, e.g. redis://127.0.0.1:6379.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: String,
    /// CA certificates (PEM) for a rediss:// URL; the system's roots by default.
    #[arg(long, env = "REDIS_CA")]
    redis_ca: Option<PathBuf>,
    /// File to write the stream to (`-` for stdout is not supported: stdout carries the start line).
    #[arg(long)]
    out: PathBuf,
    /// Stop after this many bytes of stream (whole commands; the last may go past it).
    #[arg(long)]
    max_bytes: Option<u64>,
}

pub async fn run(args: RecordArgs) -> anyhow::Result<()> {
    let tls = match &args.redis_ca {
        Some(path) => crate::tls::TlsSettings::from_ca_file(path)?,
        None => crate::tls::TlsSettings::default(),
    };
    let target = RedisTarget::from_url(&args.redis_url, tls)?;
    let backlog = Arc::new(Backlog::new(DEFAULT_BACKLOG_BYTES));
    let link = tokio::spawn(
        ReplicaLink {
            upstream: Arc::new(Upstream::at(target)),
            sentinels: None,
            backlog: backlog.clone(),
            // The stream only: a full sync's RDB is not recorded.
            state: None,
            // Every frame: the recording is the raw stream.
            allow: None,
            metrics: Arc::default(),
            listening_port: 0,
            timeout: replica_link::LINK_TIMEOUT,
            profile: None,
        }
        .follow(),
    );
    let mut file = tokio::fs::File::create(&args.out)
        .await
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let result = tokio::select! {
        result = copy_stream(&backlog, &mut file, args.max_bytes) => result,
        _ = crate::shutdown_signal() => Ok(()),
    };
    link.abort();
    file.flush().await?;
    result
}

/// Writes the stream to `file` as the link receives it; returns when `max_bytes` are written.
async fn copy_stream(
    backlog: &Backlog,
    file: &mut tokio::fs::File,
    max_bytes: Option<u64>,
) -> anyhow::Result<()> {
    let mut changed = backlog.changed();
    let (stream, start) = loop {
        changed.borrow_and_update();
        if let Some((stream, at, _)) = backlog.join(None) {
            break (stream, at);
        }
        changed.changed().await?;
    };
    println!("recording epoch {} from offset {start}", stream.epoch);
    let mut cursor = start;
    loop {
        changed.borrow_and_update();
        match backlog.read(&stream, cursor, 1 << 20) {
            Read::Batches(batches) => {
                for batch in batches {
                    if !batch.held {
                        bail!(
                            "a command of {} bytes at offset {} is larger than the relay holds, so it cannot be \
                             recorded; the recording stops before it",
                            batch.end - batch.start,
                            batch.start
                        );
                    }
                    file.write_all(&batch.raw_from(cursor)).await?;
                    cursor = batch.end;
                }
                file.flush().await?;
                if max_bytes.is_some_and(|max| cursor - start >= max) {
                    eprintln!("recorded {} bytes", cursor - start);
                    return Ok(());
                }
            }
            Read::Wait => changed.changed().await?,
            Read::Behind { .. } => bail!("the file could not keep up with the stream"),
            Read::Restarted { .. } => {
                bail!("the stream restarted with a full resync; the recording stops here")
            }
        }
    }
}
