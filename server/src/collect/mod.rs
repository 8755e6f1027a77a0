//! `replicast collect`: the collector of the monitoring showcase. Every `--interval` it samples this machine from
//! `/proc` (CPU, memory, load, network, disk, TCP states, top processes) and any `--simulate`d hosts, and writes
//! each host's sample with `ZADD perf:<host> <t_ms> <json>`, trimmed to the newest `--keep`, in one transaction
//! per host and one pipeline per interval.
//!
//! ```text
//! replicast collect [--redis-url redis://127.0.0.1:6379] [--interval 1s] [--keep 3600] [--simulate 20]
//! ```
//!
//! `replicast serve --demo-hosts N` runs the same loop in-process against its embedded Redis. The sample format is
//! in docs/COLLECTOR.md.

mod local;
pub mod proc;
pub mod sample;
pub mod simulate;
mod sink;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::upstream::{NodeSettings, RedisTarget};
use local::LocalHost;
use sample::Sample;
use simulate::SimHost;
use sink::{Destination, Entry, Sink};

/// Most simulated hosts: each costs a few hundred bytes per interval in Redis and in the browsers.
const MAX_SIMULATED: usize = 10_000;
/// Shortest interval: below it, CPU percentages are mostly rounding noise.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

#[derive(clap::Args, Debug, Clone)]
pub struct CollectArgs {
    /// Redis to write to, e.g. redis://:password@127.0.0.1:6379 or rediss://… for TLS.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: String,
    /// Write to a Redis Cluster: any of its nodes, host:port (repeatable, or comma-separated). Each sample goes to
    /// the primary owning its key; --redis-url then gives only the nodes' credentials and scheme.
    #[arg(long = "cluster", env = "REPLICAST_CLUSTER", value_delimiter = ',')]
    pub cluster: Vec<String>,
    /// CA certificates (PEM) for a rediss:// URL; the system's roots by default.
    #[arg(long, env = "REDIS_CA")]
    pub redis_ca: Option<PathBuf>,
    /// Time between samples, e.g. 250ms, 1s, 1.5s, 1m.
    #[arg(long, env = "REPLICAST_COLLECT_INTERVAL", default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Newest samples kept per host; older ones are trimmed in the same transaction.
    #[arg(long, env = "REPLICAST_COLLECT_KEEP", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep: u64,
    /// Samples per host kept in memory while Redis is unreachable; past it the oldest are dropped.
    #[arg(long, env = "REPLICAST_COLLECT_BUFFER", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub buffer: u64,
    /// Key prefix: each host writes to <prefix><host>.
    #[arg(long, env = "REPLICAST_COLLECT_PREFIX", default_value = "perf:")]
    pub prefix: String,
    /// Name of this machine in keys and samples (default: /proc/sys/kernel/hostname).
    #[arg(long, env = "REPLICAST_COLLECT_HOST")]
    pub host: Option<String>,
    /// Do not sample this machine (only simulated hosts).
    #[arg(long, env = "REPLICAST_COLLECT_NO_LOCAL")]
    pub no_local: bool,
    /// Also write this many simulated hosts (web-01, db-01, cache-01, …).
    #[arg(long, env = "REPLICAST_COLLECT_SIMULATE", default_value_t = 0)]
    pub simulate: usize,
    /// Seed of the simulated hosts: the same seed gives the same hosts and numbers.
    #[arg(long, env = "REPLICAST_COLLECT_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Take one sample per host, write it, and exit (an error if Redis cannot take it).
    #[arg(long)]
    pub once: bool,
}

impl CollectArgs {
    /// The collector `replicast serve --demo-hosts` runs against its embedded Redis: this machine plus `hosts`
    /// simulated ones, every second.
    pub fn demo(redis_url: String, hosts: usize) -> Self {
        CollectArgs {
            redis_url,
            cluster: Vec::new(),
            redis_ca: None,
            interval: Duration::from_secs(1),
            keep: 3600,
            buffer: 600,
            prefix: "perf:".into(),
            host: None,
            no_local: false,
            simulate: hosts,
            seed: 1,
            once: false,
        }
    }
}

/// `replicast collect`: runs until SIGINT/SIGTERM.
pub async fn run(args: CollectArgs) -> anyhow::Result<()> {
    collect(args, crate::shutdown_signal()).await
}

/// Runs the demo collector ([`CollectArgs::demo`]) in the background, until aborted.
pub fn spawn_demo(redis_url: String, hosts: usize) -> tokio::task::JoinHandle<()> {
    let collector = CollectArgs::demo(redis_url, hosts);
    tokio::spawn(async move {
        if let Err(err) = collect(collector, std::future::pending()).await {
            tracing::error!("demo collector stopped: {err:#}");
        }
    })
}

/// Samples and writes every host each interval until `shutdown` completes (or once, with `--once`).
pub async fn collect(args: CollectArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.simulate <= MAX_SIMULATED,
        "--simulate {} is more than {MAX_SIMULATED} hosts",
        args.simulate
    );
    let tls = match &args.redis_ca {
        Some(path) => crate::tls::TlsSettings::from_ca_file(path)?,
        None => crate::tls::TlsSettings::default(),
    };
    let template = RedisTarget::from_url(&args.redis_url, tls)?;
    let target = match args.cluster.is_empty() {
        true => Destination::Single(template),
        false => Destination::Cluster {
            seeds: args
                .cluster
                .iter()
                .map(|node| crate::cluster::parse_node(node))
                .collect::<anyhow::Result<_>>()?,
            settings: NodeSettings::from(template),
        },
    };
    let mut hosts = Hosts {
        local: (!args.no_local).then(|| {
            let name = args
                .host
                .clone()
                .or_else(LocalHost::hostname)
                .unwrap_or_else(|| "localhost".into());
            LocalHost::new(name, "/proc")
        }),
        simulated: (0..args.simulate)
            .map(|i| SimHost::new(i, args.seed))
            .collect(),
        prefix: args.prefix.clone(),
    };
    anyhow::ensure!(
        hosts.count() > 0,
        "no hosts to sample: --no-local needs --simulate N"
    );
    let keep = usize::try_from(args.keep).unwrap_or(usize::MAX);
    tracing::info!(
        redis = %target.address(),
        local = hosts.local.as_ref().map(LocalHost::name),
        simulated = args.simulate,
        interval = ?args.interval,
        keep,
        "collector: writing {}<host> every interval", args.prefix
    );

    if args.once {
        if hosts.local.is_some() {
            // Rates and CPU need two readings.
            tokio::time::sleep(args.interval).await;
        }
        let entries = hosts.sample(now_ms());
        let started = Instant::now();
        sink::write_now(&target, &entries, keep)
            .await
            // The address only: the URL may carry a password.
            .with_context(|| format!("cannot write to Redis at {}", target.address()))?;
        tracing::info!(samples = entries.len(), took = ?started.elapsed(), "collector: wrote one sample per host");
        return Ok(());
    }

    let bound = usize::try_from(args.buffer)
        .unwrap_or(usize::MAX)
        .saturating_mul(hosts.count());
    let (sink, writer) = Sink::start(target, keep, bound);
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + args.interval, args.interval);
    // A late tick (a busy machine, a suspended laptop) is skipped rather than caught up in a burst.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let started = Instant::now();
                let entries = hosts.sample(now_ms());
                tracing::debug!(samples = entries.len(), took = ?started.elapsed(), queued = sink.queued(), "collector: sampled");
                sink.push(entries);
            }
            _ = &mut shutdown => break,
        }
    }
    writer.abort();
    let queued = sink.queued();
    if queued > 0 {
        tracing::warn!(queued, "collector: exiting with samples not yet written");
    }
    Ok(())
}

/// Every host the collector writes.
struct Hosts {
    local: Option<LocalHost>,
    simulated: Vec<SimHost>,
    prefix: String,
}

impl Hosts {
    fn count(&self) -> usize {
        usize::from(self.local.is_some()) + self.simulated.len()
    }

    /// One sample per host at `t`, as entries for the sink.
    fn sample(&mut self, t: u64) -> Vec<Entry> {
        let local = self.local.as_mut().map(|host| host.sample(t));
        let simulated = self.simulated.iter_mut().map(|host| host.sample(t));
        local
            .into_iter()
            .chain(simulated)
            .map(|sample| entry(&self.prefix, &sample))
            .collect()
    }
}

fn entry(prefix: &str, sample: &Sample) -> Entry {
    Entry {
        key: format!("{prefix}{}", sample.host),
        score: sample.t,
        member: sample.to_json(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `250ms`, `1s`, `1.5s`, `2m`, or a bare number of seconds.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 250ms, 1s or 1m"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        other => return Err(format!("unknown unit {other:?}: use ms, s or m")),
    };
    let interval = Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())?;
    if interval < MIN_INTERVAL {
        return Err(format!("{text:?} is shorter than {MIN_INTERVAL:?}"));
    }
    Ok(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_interval("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("1m"), Ok(Duration::from_secs(60)));
        for bad in ["", "s", "1h", "-1s", "1ms", "abc", "1e9999s"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn entries_key_score_and_member() {
        let mut hosts = Hosts {
            local: None,
            simulated: (0..3).map(|i| SimHost::new(i, 5)).collect(),
            prefix: "perf:".into(),
        };
        let entries = hosts.sample(1_700_000_000_000);
        let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["perf:web-01", "perf:db-01", "perf:cache-01"]);
        for entry in &entries {
            let json: serde_json::Value = serde_json::from_str(&entry.member).unwrap();
            assert_eq!(json["t"], entry.score);
            assert_eq!(
                format!("perf:{}", json["host"].as_str().unwrap()),
                entry.key
            );
        }
    }
}
