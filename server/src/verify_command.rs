//! `replicast verify`: checks that a running relay's state equals Redis, on a sample of keys.
//!
//! ```text
//! replicast verify --relay http://127.0.0.1:8080 --redis-url redis://127.0.0.1:6379 [--sample 100] [--match 'perf:*']
//! ```
//!
//! It asks the relay what its state keeps (`GET /verify`: its depth and `--allow`), samples keys from Redis with
//! `SCAN` over those patterns (or `--match`), reads them the way a join does (one `MULTI` with `INFO replication`,
//! so at exactly one offset), and asks the relay for the same keys at that offset (`POST /verify`, which waits
//! for its link to reach it). Each key's window digest is compared (`state::verify`). It prints what it compared
//! and every key that differs; the exit code is 0 when everything compared is equal, 1 when a key differs, 2 when
//! it could not check. The relay answers plain HTTP (put TLS in a proxy in front of it).

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use axum::http::{header, Method, Request, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::snapshot::Snapshotter;
use crate::state::verify::{compare, KeyStates, MAX_VERIFY_KEYS};
use crate::state::STATE_DB;
use crate::state_checks::redis_states;
use crate::tls::TlsSettings;
use crate::upstream::{RedisTarget, Upstream};
use crate::verify_endpoint::{StateAnswer, StateInfo, StateRequest};

/// Keys `SCAN` goes through at most to draw a sample, so that a check of a large dataset stays short.
const MAX_SCANNED: usize = 1_000_000;
/// Times a part is read from Redis again when the relay's state was already past its offset.
const ATTEMPTS: usize = 5;

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The relay to check: its HTTP address, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "REPLICAST_RELAY")]
    relay: String,
    /// The Redis the relay follows, e.g. redis://:password@127.0.0.1:6379 (rediss://… for TLS).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: String,
    /// CA certificates (PEM) that signed the Redis server's TLS certificate; the system's roots by default.
    #[arg(long, env = "REDIS_CA")]
    redis_ca: Option<std::path::PathBuf>,
    /// The relay's token (--token, or a signed token that reads `*`), sent as `Authorization: Bearer`.
    #[arg(long, env = "REPLICAST_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Keys to compare, drawn at random from those `SCAN` finds.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=MAX_VERIFY_KEYS as u64))]
    sample: u64,
    /// Keys to sample from (Redis globs, repeatable); the relay's --allow by default.
    #[arg(long = "match", value_name = "GLOB")]
    patterns: Vec<String>,
}

/// Runs the check and exits with its code: 0 equal, 1 a key differs, 2 no check.
pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    match check(args).await {
        Ok(true) => Ok(()),
        Ok(false) => std::process::exit(1),
        Err(err) => {
            eprintln!("replicast verify: {err:#}");
            std::process::exit(2)
        }
    }
}

/// `Ok(true)`: every key compared is equal.
async fn check(args: VerifyArgs) -> anyhow::Result<bool> {
    let relay = RelayClient::new(&args.relay, args.token.clone())?;
    let (status, body) = relay.request(Method::GET, "/verify", None).await?;
    if status != StatusCode::OK {
        bail!(
            "the relay answered GET /verify with {status}: {}",
            text(&body)
        );
    }
    let info: StateInfo =
        serde_json::from_slice(&body).context("the relay's GET /verify is not its JSON")?;
    let tls = match &args.redis_ca {
        Some(path) => TlsSettings::from_ca_file(path)?,
        None => TlsSettings::default(),
    };
    let upstream = std::sync::Arc::new(Upstream::at(RedisTarget::from_url(&args.redis_url, tls)?));
    let patterns = match args.patterns.is_empty() {
        true => info.allow.clone(),
        false => args.patterns.clone(),
    };
    let keys = sample(&upstream, &patterns, args.sample as usize).await?;
    if keys.is_empty() {
        println!(
            "no key of {} in Redis: nothing to compare",
            patterns.join(", ")
        );
        return Ok(true);
    }
    let snapshots = Snapshotter::new(upstream, None);
    let (mut compared, mut skipped, mut differ) = (0, 0, 0);
    let mut left = keys;
    let mut attempts = 0;
    while !left.is_empty() {
        let snapshot = snapshots
            .take_keys(STATE_DB, info.depth, left.clone())
            .await
            .context("reading the sample from Redis")?;
        let part: Vec<Vec<u8>> = left
            .iter()
            .filter(|k| !snapshot.rest.contains(k))
            .cloned()
            .collect();
        let redis =
            redis_states(&snapshot, &part, &info.allow, info.depth).map_err(anyhow::Error::msg)?;
        let request = StateRequest {
            epoch: snapshot.epoch.clone(),
            offset: snapshot.offset,
            keys: part
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect(),
        };
        let body = serde_json::to_vec(&request)?;
        let (status, body) = relay.request(Method::POST, "/verify", Some(body)).await?;
        if status == StatusCode::CONFLICT && attempts + 1 < ATTEMPTS {
            // Past the offset already (or a failover in between): read the part again.
            attempts += 1;
            continue;
        }
        if status != StatusCode::OK {
            bail!(
                "the relay answered POST /verify at offset {} with {status}: {}",
                snapshot.offset,
                text(&body)
            );
        }
        let answer: StateAnswer =
            serde_json::from_slice(&body).context("the relay's POST /verify is not its JSON")?;
        let ours: KeyStates = answer
            .keys
            .into_iter()
            .map(|k| (k.key.into_bytes(), k.state))
            .collect();
        let found = compare(&ours, &redis);
        for mismatch in &found.mismatches {
            println!(
                "differs at offset {}: {}: relay {:?}, Redis {:?}",
                snapshot.offset,
                String::from_utf8_lossy(&mismatch.key),
                mismatch.relay,
                mismatch.redis
            );
        }
        compared += found.compared;
        skipped += found.skipped;
        differ += found.mismatches.len();
        left = snapshot.rest;
        attempts = 0;
    }
    println!(
        "{compared} keys compared, {differ} differ, {skipped} skipped (not exact on one side) — stream {}",
        info.epoch
    );
    Ok(differ == 0)
}

/// Up to `n` keys of `patterns` in Redis's database [`STATE_DB`], drawn at random from what `SCAN` finds (the
/// `n` smallest hashes under a fresh seed).
async fn sample(
    upstream: &Upstream,
    patterns: &[String],
    n: usize,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut conn = upstream
        .client()?
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis")?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut smallest: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut scanned = 0;
    for pattern in patterns {
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .context("SCAN")?;
            for key in keys {
                // SCAN may give a key twice: it has the same rank both times, so one entry.
                smallest.insert(xxhash_rust::xxh3::xxh3_64_with_seed(&key, seed), key);
                if smallest.len() > n {
                    smallest.pop_last();
                }
            }
            scanned += 1000;
            cursor = next;
            if cursor == 0 || scanned >= MAX_SCANNED {
                break;
            }
        }
    }
    let mut keys: Vec<Vec<u8>> = smallest.into_values().collect();
    keys.sort();
    Ok(keys)
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).trim_end().to_string()
}

/// Plain HTTP/1.1 requests to the relay, one connection each.
struct RelayClient {
    authority: String,
    token: Option<String>,
}

impl RelayClient {
    fn new(url: &str, token: Option<String>) -> anyhow::Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("--relay {url:?} is not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            _ => bail!("--relay takes the relay's plain HTTP address, e.g. http://127.0.0.1:8080"),
        }
        let authority = uri
            .authority()
            .map(|a| a.to_string())
            .context("--relay names no host")?;
        Ok(RelayClient { authority, token })
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("connecting to the relay at {}", self.authority))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.authority)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let response = sender
            .send_request(request)
            .await
            .with_context(|| format!("asking the relay at {}", self.authority))?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}
