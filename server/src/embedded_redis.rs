//! An embedded `redis-server` for when no Redis URL is given: on a free loopback port, with persistence off, and
//! stopped when the relay exits (even if the relay is killed, through the parent-death signal).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, Context};
use tokio::process::{Child, Command};

/// How long a fresh redis-server may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct EmbeddedRedis {
    child: Child,
    port: u16,
    /// Its working folder: a sync to a disk-based replica writes an RDB file there, which must not outlive it.
    dir: PathBuf,
}

impl EmbeddedRedis {
    /// Starts redis-server on a free port; on another port if it could not bind the first (another process took the
    /// port between the check and the bind), up to three times.
    pub async fn start(binary: &Path) -> anyhow::Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::start_on(binary, free_port()?).await {
                Err(StartError::Exited(error)) if attempt < 3 => {
                    tracing::warn!("{error:#}; trying another port");
                    attempt += 1;
                }
                Err(StartError::Exited(error) | StartError::Other(error)) => return Err(error),
                Ok(redis) => return Ok(redis),
            }
        }
    }

    async fn start_on(binary: &Path, port: u16) -> Result<Self, StartError> {
        let dir =
            std::env::temp_dir().join(format!("replicast-embedded-redis-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut command = Command::new(binary);
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&dir)
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            // Start a replica's sync at once instead of waiting 5 s for others to share a diskless transfer.
            .args(["--repl-diskless-sync-delay", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe and touches only the child being set up.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = command.spawn().with_context(|| {
            format!(
                "cannot start {} (is redis-server installed?)",
                binary.display()
            )
        })?;
        let mut redis = EmbeddedRedis { child, port, dir };
        redis.wait_ready().await?;
        tracing::info!(port, "embedded redis-server started");
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&mut self) -> Result<(), StartError> {
        let client = redis::Client::open(self.url()).map_err(anyhow::Error::from)?;
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().map_err(anyhow::Error::from)? {
                return Err(StartError::Exited(anyhow!(
                    "embedded redis-server on port {} exited at startup ({status})",
                    self.port
                )));
            }
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                if redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
                {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(StartError::Other(anyhow!(
                    "embedded redis-server on port {} not ready after {STARTUP_TIMEOUT:?}",
                    self.port
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for EmbeddedRedis {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Why a start failed: the server exited (most likely its port was taken: worth another port), or anything else.
enum StartError {
    Exited(anyhow::Error),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(error: anyhow::Error) -> Self {
        StartError::Other(error)
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}
