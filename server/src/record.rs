//! `replicast record`: writes the raw replication stream of a Redis (the commands after the RDB payload) to a
//! file, exactly as a replica receives it, for tests, benchmarks and bug reports.
//!
//! It prints `recording epoch <replid> from offset <offset>` on stdout once streaming, so whoever drives it knows
//! that byte `i` of the file is replication offset `offset + i`. It stops on Ctrl-C/SIGTERM, after `--max-bytes`,
//! or with an error if the stream restarts (a new full resync would make the file discontinuous).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use replicast_wasm::wire::{self, Message};
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast::error::RecvError;

use crate::hub::Hub;
use crate::replica_link::{self, RedisTarget};

#[derive(clap::Args)]
pub struct RecordArgs {
    /// Redis to record, e.g. redis://127.0.0.1:6379.
    #[arg(long, env = "REDIS_URL")]
    redis_url: String,
    /// File to write the stream to (`-` for stdout is not supported: stdout carries the start line).
    #[arg(long)]
    out: PathBuf,
    /// Stop after this many bytes of stream (whole commands; the last may go past it).
    #[arg(long)]
    max_bytes: Option<u64>,
}

pub async fn run(args: RecordArgs) -> anyhow::Result<()> {
    let target = RedisTarget::from_url(&args.redis_url)?;
    let hub = Arc::new(Hub::new());
    let mut messages = hub.subscribe();
    let link = tokio::spawn(replica_link::follow(target, hub.clone(), 0));
    let mut file = tokio::fs::File::create(&args.out)
        .await
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    let mut started = false;
    let mut written = 0u64;
    let result = loop {
        let message = tokio::select! {
            message = messages.recv() => message,
            _ = crate::shutdown_signal() => break Ok(()),
        };
        let message = match message {
            Ok(message) => message,
            Err(RecvError::Lagged(n)) => {
                break Err(anyhow::anyhow!(
                    "the file could not keep up ({n} batches lost)"
                ))
            }
            Err(RecvError::Closed) => break Ok(()),
        };
        match wire::decode(&message)? {
            Message::Hello { epoch, offset, .. } if !started => {
                started = true;
                println!("recording epoch {epoch} from offset {offset}");
            }
            Message::Hello { .. } => {
                break Err(anyhow::anyhow!("the stream restarted with a full resync"))
            }
            Message::Commands(segments) => {
                for segment in segments {
                    let bytes = segment?.bytes;
                    file.write_all(bytes).await?;
                    written += bytes.len() as u64;
                }
                file.flush().await?;
                if args.max_bytes.is_some_and(|max| written >= max) {
                    break Ok(());
                }
            }
            Message::Resync { reason } => bail!("unexpected resync: {reason}"),
        }
    };
    link.abort();
    file.flush().await?;
    eprintln!("recorded {written} bytes to {}", args.out.display());
    result
}
