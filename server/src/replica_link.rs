//! The relay's one replication link: it attaches to Redis as a replica and publishes every command frame, raw and
//! with its offsets, to the [`Hub`].
//!
//! Handshake as a Redis replica does it: `AUTH`, `PING`, `REPLCONF listening-port`, `REPLCONF capa eof capa psync2`,
//! then `PSYNC ? -1`, which here always gets a full resynchronisation (`+FULLRESYNC <replid> <offset>`), its RDB
//! payload, and then the command stream. The link answers `REPLCONF GETACK` and acknowledges its offset every
//! second, as Redis expects of a replica (a diskless primary starts the stream only after the first ack).
//! When the link fails it reconnects with exponential backoff; browsers get a new hello and start over.

use std::sync::Arc;
use std::time::Duration;

use redis::{ConnectionAddr, IntoConnectionInfo};
use replicast_wasm::resp::{parse_command, Limits, RespError};
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::hub::Hub;
use crate::link_io::{encode_command, LinkIo};
use crate::sync_payload::skip_rdb_payload;

/// How often the link tells Redis its offset (Redis replicas send `REPLCONF ACK` once a second).
const ACK_INTERVAL: Duration = Duration::from_secs(1);
/// Backoff between reconnection attempts: doubles from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum LinkError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("Redis closed the connection")]
    Closed,
    #[error("Redis refused {command}: {error}")]
    Refused { command: String, error: String },
    #[error("unexpected reply: {0}")]
    Protocol(String),
    #[error(transparent)]
    Stream(#[from] RespError),
}

/// Where the link connects, from a `redis://[user:password@]host:port` URL.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl RedisTarget {
    pub fn from_url(url: &str) -> anyhow::Result<Self> {
        let info = url
            .into_connection_info()
            .map_err(|e| anyhow::anyhow!("invalid Redis URL {url:?}: {e}"))?;
        let (host, port) = match info.addr() {
            ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
            other => {
                anyhow::bail!("unsupported Redis address {other} (only redis://host:port for now)")
            }
        };
        let settings = info.redis_settings();
        Ok(RedisTarget {
            host,
            port,
            username: settings.username().map(str::to_string),
            password: settings.password().map(str::to_string),
        })
    }
}

/// Follows `target` forever, reconnecting after every failure.
pub async fn follow(target: RedisTarget, hub: Arc<Hub>, listening_port: u16) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        match follow_once(&target, &hub, listening_port).await {
            Ok(never) => match never {},
            Err(err) => {
                if hub.is_live() {
                    backoff = BACKOFF_FIRST;
                }
                hub.set_offline();
                tracing::warn!(redis = %format!("{}:{}", target.host, target.port), retry_in = ?backoff, "replica link: {err}");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn follow_once(
    target: &RedisTarget,
    hub: &Hub,
    listening_port: u16,
) -> Result<std::convert::Infallible, LinkError> {
    let stream = TcpStream::connect((target.host.as_str(), target.port)).await?;
    stream.set_nodelay(true)?;
    let mut io = LinkIo::new(stream);

    if let Some(password) = &target.password {
        match &target.username {
            Some(user) => io.call(&["AUTH", user, password]).await?,
            None => io.call(&["AUTH", password]).await?,
        };
    }
    io.call(&["PING"]).await?;
    io.call(&["REPLCONF", "listening-port", &listening_port.to_string()])
        .await?;
    io.call(&["REPLCONF", "capa", "eof", "capa", "psync2"])
        .await?;
    tracing::info!("replica link: connected, asking for a full resync (Redis may wait repl-diskless-sync-delay)");
    let reply = io.call(&["PSYNC", "?", "-1"]).await?;
    let (epoch, offset) = parse_fullresync(&reply)?;
    let rdb_bytes = skip_rdb_payload(&mut io).await?;
    tracing::info!(%epoch, offset, rdb_bytes, "replica link: full resync done, streaming");

    io.send(&["REPLCONF", "ACK", &offset.to_string()]).await?;
    hub.begin_epoch(&epoch, offset);
    stream_commands(&mut io, hub, offset).await
}

/// `+FULLRESYNC <replid> <offset>` → (replid, offset).
fn parse_fullresync(reply: &str) -> Result<(String, u64), LinkError> {
    let mut words = reply.split(' ');
    match (
        words.next(),
        words.next(),
        words.next().map(str::parse::<u64>),
    ) {
        (Some("+FULLRESYNC"), Some(id), Some(Ok(offset))) if id.len() == 40 => {
            Ok((id.to_string(), offset))
        }
        _ => Err(LinkError::Protocol(format!(
            "expected +FULLRESYNC <replid> <offset> to PSYNC, got {reply:?}"
        ))),
    }
}

/// Cuts the stream into batches of whole commands and publishes them, acknowledging as Redis expects.
async fn stream_commands(
    io: &mut LinkIo,
    hub: &Hub,
    mut offset: u64,
) -> Result<std::convert::Infallible, LinkError> {
    let limits = Limits::default();
    let mut ack = tokio::time::interval(ACK_INTERVAL);
    loop {
        tokio::select! {
            read = io.fill() => { read?; }
            _ = ack.tick() => {
                io.send(&["REPLCONF", "ACK", &offset.to_string()]).await?;
                continue;
            }
        }
        let start = offset;
        let mut used = 0;
        let mut getacks = Vec::new();
        while let Some(command) = parse_command(&io.buf[used..], offset, &limits)? {
            if command.is("replconf")
                && command
                    .args
                    .get(1)
                    .is_some_and(|a| a.eq_ignore_ascii_case(b"getack"))
            {
                // Like Redis, answer with the offset before the GETACK itself.
                getacks.push(command.start);
            }
            used += command.frame_len();
            offset = command.end;
        }
        if io.buf.len() - used > limits.max_command_len {
            return Err(RespError::Limit {
                offset,
                what: "incomplete command length",
                len: (io.buf.len() - used) as u64,
                limit: limits.max_command_len as u64,
            }
            .into());
        }
        if used > 0 {
            hub.publish(start, &io.buf.split_to(used));
        }
        for at in getacks {
            io.writer
                .write_all(&encode_command(&["REPLCONF", "ACK", &at.to_string()]))
                .await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fullresync_reply_gives_epoch_and_offset() {
        let id = "a".repeat(40);
        let (epoch, offset) = parse_fullresync(&format!("+FULLRESYNC {id} 1234")).unwrap();
        assert_eq!((epoch.as_str(), offset), (id.as_str(), 1234));
        assert!(parse_fullresync("+CONTINUE").is_err());
        assert!(parse_fullresync("+FULLRESYNC short 1").is_err());
    }

    #[test]
    fn urls_give_host_port_and_credentials() {
        let t = RedisTarget::from_url("redis://ana:s3cret@127.0.0.1:7000").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 7000));
        assert_eq!(
            (t.username.as_deref(), t.password.as_deref()),
            (Some("ana"), Some("s3cret"))
        );
        assert!(RedisTarget::from_url("not a url").is_err());
    }
}
