//! `replicast`: the relay between one Redis and many browsers.
//!
//! ```text
//! replicast serve [--redis-url redis://host:port] [--listen 127.0.0.1:8080] [--demo-hosts 20]
//! replicast serve --sentinel host:26379[,host:26379…] --master-name NAME [--redis-url redis://user:pass@_]
//! replicast collect [--redis-url redis://host:port] [--interval 1s] [--simulate N]
//! replicast sink --relay ws://127.0.0.1:8080/ws --database postgres://… --history 'perf:*' [--mirror 'cfg:*']
//! replicast verify --relay http://127.0.0.1:8080 --redis-url redis://host:port [--sample 100]
//! ```
//!
//! With no Redis URL (flag or `REDIS_URL`) the relay starts an embedded `redis-server` on a free loopback port and
//! stops it on exit, so the demo needs nothing running beforehand; with `--demo-hosts` it also runs the collector
//! in-process against it. With `--sentinel`, the relay follows whichever node Sentinel names the primary, and
//! `--redis-url` (if given) only supplies the data nodes' credentials, database and TLS: its host is ignored.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use replicast_server::access::{self, Access};
use replicast_server::backlog::DEFAULT_BACKLOG_BYTES;
use replicast_server::client_address::{ForwardingHeader, TrustedProxies};
use replicast_server::connections::ConnectionLimits;
use replicast_server::embedded_redis::EmbeddedRedis;
use replicast_server::events::{self, EventLimits, Events, Writable};
use replicast_server::metrics::Metrics;
use replicast_server::profile::{self, ProfileSettings, WriteProfile};
use replicast_server::relay::{Relay, Source};
use replicast_server::replica_link;
use replicast_server::sentinel::Sentinels;
use replicast_server::shard::LinkSettings;
use replicast_server::state::verify::VerifySettings;
use replicast_server::state::{self, StateSettings};
use replicast_server::static_files::{FolderOverride, StaticFiles};
use replicast_server::subscription::Allow;
use replicast_server::tokens::{self, KeySource, TokenChecks, TokenVerifier};
use replicast_server::upstream::{NodeSettings, RedisTarget};
use replicast_server::{
    cluster, collect, connections, http, open_files, rdb_command, record, sink, tls, verify_command,
};

#[derive(Parser)]
#[command(
    name = "replicast",
    version,
    about = "Streams a Redis server's changes, live, to browsers."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to stderr: `text` for people, or `json`, one object a line (timestamp, level,
    /// target, fields with the message) for log collectors. RUST_LOG sets which are written (`info` by default).
    #[arg(
        long,
        global = true,
        env = "REPLICAST_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
// Parsed once at startup: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Follow Redis as a replica and serve the page and its WebSocket stream.
    Serve(Box<ServeArgs>),
    /// Write the raw replication stream of a Redis to a file.
    Record(record::RecordArgs),
    /// Print an RDB file as JSON Lines, one object per key (or a summary with --stats).
    Rdb(rdb_command::RdbArgs),
    /// Sample this machine (and simulated hosts) every interval into Redis sorted sets, `perf:<host>`.
    Collect(collect::CollectArgs),
    /// Keep in PostgreSQL what Redis forgets: the history of sorted sets and streams, and mirrors of other keys.
    Sink(sink::SinkArgs),
    /// Check that a running relay's state equals Redis, on a sample of keys read at one offset.
    Verify(verify_command::VerifyArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Redis to follow, e.g. redis://:password@127.0.0.1:6379 or rediss://… for TLS. Without it (and without
    /// --sentinel), an embedded redis-server is started. With --sentinel, only its credentials, database and
    /// scheme are used, for whichever node Sentinel names (e.g. rediss://relay:s3cret@primary).
    // Secrets (a URL's password, the token) are never shown by --help, though their variables are named.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Sentinels to ask for the current primary, host:port (repeatable, or comma-separated); with --master-name.
    #[arg(
        long = "sentinel",
        env = "REPLICAST_SENTINELS",
        value_delimiter = ',',
        requires = "master_name"
    )]
    sentinels: Vec<String>,
    /// Follow a Redis Cluster: any of its nodes, host:port (repeatable, or comma-separated). The relay reads the
    /// shards from it and follows each with its own replica link. With it, --redis-url gives only the credentials
    /// and scheme for every node (e.g. rediss://relay:s3cret@cluster).
    #[arg(
        long = "cluster",
        env = "REPLICAST_CLUSTER",
        value_delimiter = ',',
        conflicts_with = "sentinels"
    )]
    cluster: Vec<String>,
    /// Which node of each cluster shard the link follows: its primary, or one of its replicas (which keeps the
    /// relay's reads off the primaries; relays on different replicas of a shard serve the same offsets).
    #[arg(
        long,
        env = "REPLICAST_CLUSTER_FOLLOW",
        value_enum,
        default_value = "primary"
    )]
    cluster_follow: cluster::Follow,
    /// The name under which the sentinels monitor the primary to follow.
    #[arg(long, env = "REPLICAST_MASTER_NAME", requires = "sentinels")]
    master_name: Option<String>,
    /// ACL user for the sentinels (their own, not the data nodes').
    #[arg(long, env = "REPLICAST_SENTINEL_USER", requires = "sentinels")]
    sentinel_user: Option<String>,
    /// Password for the sentinels (`requirepass` of sentinel.conf, or the ACL user's).
    #[arg(
        long,
        env = "REPLICAST_SENTINEL_PASSWORD",
        requires = "sentinels",
        hide_env_values = true
    )]
    sentinel_password: Option<String>,
    /// CA certificates (PEM) that signed the Redis server's TLS certificate; the system's roots by default.
    #[arg(long, env = "REDIS_CA")]
    redis_ca: Option<PathBuf>,
    /// Address for the page and the WebSocket endpoint (port 0 picks a free one).
    #[arg(long, env = "REPLICAST_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Folder of the page to serve in place of the one embedded in the binary (read once at startup).
    #[arg(long, env = "REPLICAST_WWW", conflicts_with = "stream_only")]
    www: Option<PathBuf>,
    /// Folder of the built wasm package to serve under /pkg/ in place of the one embedded in the binary (read once
    /// at startup).
    #[arg(long, env = "REPLICAST_PKG", conflicts_with = "stream_only")]
    pkg: Option<PathBuf>,
    /// Serve no page: only the WebSocket stream (/ws), /healthz and /metrics, for pages served elsewhere (the npm
    /// package's client). Without it, the relay will not start without a whole page to serve.
    #[arg(long, env = "REPLICAST_STREAM_ONLY")]
    stream_only: bool,
    /// Seconds Redis may send nothing on the replica link before the relay drops it and re-attaches, like a Redis
    /// replica's `repl-timeout`. Keep it above the primary's `repl-ping-replica-period` (10 s by default).
    #[arg(long, env = "REPLICAST_LINK_TIMEOUT", default_value_t = replica_link::LINK_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    link_timeout: u64,
    /// Bytes of recent stream kept for browsers to read at their own pace and to resume into.
    #[arg(long, env = "REPLICAST_BACKLOG_BYTES", default_value_t = DEFAULT_BACKLOG_BYTES)]
    backlog_bytes: usize,
    /// Items the relay's state keeps of each allowed key (the newest): a session asking for a deeper window reads
    /// its snapshot from Redis.
    #[arg(long, env = "REPLICAST_STATE_DEPTH", default_value_t = state::DEFAULT_STATE_DEPTH as u64, value_parser = clap::value_parser!(u64).range(1..=state::DEFAULT_STATE_DEPTH as u64))]
    state_depth: u64,
    /// Bytes the relay's state may hold; allowed keys past it are not held (sessions watching them read Redis).
    /// Following a cluster, each shard has a state of its own: this and the other --state-* bounds apply per shard.
    #[arg(long, env = "REPLICAST_STATE_BYTES", default_value_t = state::DEFAULT_STATE_BYTES)]
    state_bytes: usize,
    /// Bytes of stream the link may queue to the relay's state, which is applied on a thread of its own and
    /// trails the backlog: past it, the link waits for the state. Default: 4 × --backlog-bytes (a burst that size
    /// goes through without waiting for the state, where a bound of the backlog's size throttles the link to the
    /// state's pace; a join meeting the state further behind than the backlog waits at most 1 s for it to be back
    /// inside, then reads Redis, as top-ups do).
    #[arg(long, env = "REPLICAST_STATE_QUEUE_BYTES")]
    state_queue_bytes: Option<usize>,
    /// Bytes of past writes the relay's state keeps (sorted-set members and stream entries that entered its
    /// windows, with their scores or ids and fields, and offsets), for top-ups asked with `since` (the history
    /// sink): 0 keeps none. Default: --backlog-bytes.
    #[arg(long, env = "REPLICAST_STATE_HISTORY_BYTES")]
    state_history_bytes: Option<usize>,
    /// Keep no state: every join and top-up reads Redis, and a full sync asks Redis for an empty RDB
    /// (`REPLCONF rdb-filter-only ""`, where Redis knows it).
    #[arg(long, env = "REPLICAST_STATELESS")]
    stateless: bool,
    /// Check a sample of the relay's state against Redis this often (e.g. 60s, 5m): keys that differ are logged,
    /// counted in /metrics and read from Redis again. Off by default.
    #[arg(long, env = "REPLICAST_VERIFY_EVERY", value_parser = collect::parse_interval, conflicts_with = "stateless")]
    verify_every: Option<Duration>,
    /// Keys each periodic check compares, drawn at random from those the state holds.
    #[arg(long, env = "REPLICAST_VERIFY_SAMPLE", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=state::verify::MAX_VERIFY_KEYS as u64))]
    verify_sample: u64,
    /// Key patterns (Redis globs) that may be sent to browsers; nothing else ever leaves the relay.
    #[arg(
        long,
        env = "REPLICAST_ALLOW",
        value_delimiter = ',',
        default_value = "perf:*"
    )]
    allow: Vec<String>,
    /// Key prefixes (Redis globs over the prefix, e.g. `session:`) that the write profile (`/profile`) may show for
    /// keys outside --allow, whose names it never shows; none by default.
    #[arg(long, env = "REPLICAST_PROFILE_PREFIXES", value_delimiter = ',')]
    profile_prefixes: Vec<String>,
    /// Seconds of one window of the write profile: `/profile` gives the window being filled and the last whole one.
    #[arg(long, env = "REPLICAST_PROFILE_WINDOW", default_value_t = profile::DEFAULT_WINDOW.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    profile_window: u64,
    /// Keys (Redis globs) browsers may append events to, as streams (`XADD key MAXLEN ~ N * …`); none by default.
    /// Each must be within --allow.
    #[arg(long, env = "REPLICAST_WRITABLE", value_delimiter = ',')]
    writable: Vec<String>,
    /// Keys (Redis globs) browsers may append events to as sorted sets (`ZADD key <relay ms> <json>`); none by
    /// default. Each must be within --allow and not in --writable. Redis trims nothing here: trim these yourself.
    #[arg(long, env = "REPLICAST_WRITABLE_ZSET", value_delimiter = ',')]
    writable_zset: Vec<String>,
    /// Events a second one session may append, on average (a token bucket with --event-burst).
    #[arg(long, env = "REPLICAST_EVENT_RATE", default_value_t = events::DEFAULT_RATE)]
    event_rate: f64,
    /// Events one session may append at once before --event-rate applies.
    #[arg(long, env = "REPLICAST_EVENT_BURST", default_value_t = events::DEFAULT_BURST, value_parser = clap::value_parser!(u32).range(1..))]
    event_burst: u32,
    /// Largest event: bytes of its key, field names and values together.
    #[arg(long, env = "REPLICAST_EVENT_MAX_BYTES", default_value_t = events::DEFAULT_MAX_BYTES)]
    event_max_bytes: usize,
    /// Most fields in one event (besides the relay's own _session, _peer and _time).
    #[arg(long, env = "REPLICAST_EVENT_MAX_FIELDS", default_value_t = events::DEFAULT_MAX_FIELDS)]
    event_max_fields: usize,
    /// A stream sink is trimmed to about this many entries on each append (`MAXLEN ~`).
    #[arg(long, env = "REPLICAST_EVENT_MAXLEN", default_value_t = events::DEFAULT_MAXLEN)]
    event_maxlen: u64,
    /// Token every session must present (`?token=` or `Authorization: Bearer`); none by default.
    #[arg(long, env = "REPLICAST_TOKEN", hide_env_values = true, conflicts_with_all = ["jwt_secret", "jwt_keys"])]
    token: Option<String>,
    /// Secret (at least 32 bytes) that signs per-user tokens (JWT, HS256): every session must then present one,
    /// and sees and writes only what its claims grant, within --allow and --writable.
    #[arg(
        long,
        env = "REPLICAST_JWT_SECRET",
        hide_env_values = true,
        conflicts_with = "jwt_keys"
    )]
    jwt_secret: Option<String>,
    /// File of public keys that verify per-user tokens (JWT): one PEM key (RSA, EC or Ed25519) or a JWKS whose
    /// keys tokens pick by kid. Read again on SIGHUP, so keys rotate without a restart.
    #[arg(long, env = "REPLICAST_JWT_KEYS")]
    jwt_keys: Option<PathBuf>,
    /// Audience (repeatable or comma-separated) a token's aud must name; not checked when none is given.
    #[arg(long, env = "REPLICAST_JWT_AUDIENCE", value_delimiter = ',')]
    jwt_audience: Vec<String>,
    /// Seconds of clock difference tolerated on a token's exp and nbf; a session lives until exp plus this.
    #[arg(long, env = "REPLICAST_JWT_LEEWAY", default_value_t = tokens::DEFAULT_LEEWAY)]
    jwt_leeway: u64,
    /// With signed tokens: most sessions one token subject (sub) may hold at once, from any address; its sessions
    /// also share one event rate limit (--event-rate, --event-burst).
    #[arg(long, env = "REPLICAST_MAX_SESSIONS_PER_SUBJECT", default_value_t = tokens::DEFAULT_MAX_SESSIONS_PER_SUBJECT)]
    max_sessions_per_subject: u64,
    /// Origins whose pages may connect, besides the relay's own (`*` for any).
    #[arg(long = "origin", env = "REPLICAST_ORIGINS", value_delimiter = ',')]
    origins: Vec<String>,
    /// Names (without port) the relay answers to besides IP addresses and localhost, e.g. the name a reverse proxy
    /// passes as Host; `.example.com` allows example.com and every name under it. Requests naming any other host
    /// are refused (403), so that a page's domain rebound to the relay's address (DNS rebinding) cannot reach it.
    #[arg(
        long = "public-host",
        env = "REPLICAST_PUBLIC_HOSTS",
        value_delimiter = ','
    )]
    public_hosts: Vec<String>,
    /// Most browser sessions at once.
    #[arg(long, env = "REPLICAST_MAX_SESSIONS", default_value_t = 10_000)]
    max_sessions: u64,
    /// Most browser sessions one client address may hold at once. Behind a reverse proxy, name it with
    /// --trusted-proxy so that each client is counted at its own address, not the proxy's.
    #[arg(
        long,
        env = "REPLICAST_MAX_SESSIONS_PER_ADDRESS",
        default_value_t = access::DEFAULT_MAX_SESSIONS_PER_ADDRESS
    )]
    max_sessions_per_address: u64,
    /// Reverse proxies (an address or a CIDR, repeatable or comma-separated) whose connections carry the client's
    /// address in X-Forwarded-For (or Forwarded, with --client-address-header): the rightmost address there that is
    /// not a trusted proxy's is the client's, for --max-sessions-per-address and the events' _peer. Any other
    /// peer's forwarding headers are ignored. A trusted proxy's connections are not capped per address.
    #[arg(
        long = "trusted-proxy",
        env = "REPLICAST_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<String>,
    /// The header trusted proxies name the client in.
    #[arg(
        long,
        env = "REPLICAST_CLIENT_ADDRESS_HEADER",
        value_enum,
        default_value = "x-forwarded-for"
    )]
    client_address_header: ForwardingHeader,
    /// Most TCP connections one peer address may hold open at once, WebSocket sessions included; past it a
    /// connection gets a 429 before its request is read. Default: --max-sessions-per-address plus 100.
    #[arg(long, env = "REPLICAST_MAX_CONNECTIONS_PER_ADDRESS")]
    max_connections_per_address: Option<u64>,
    /// Seconds a client has to send a complete request's headers (on a new connection, or after a response on a
    /// kept-alive one) before the connection is closed.
    #[arg(long, env = "REPLICAST_HEADER_READ_TIMEOUT", default_value_t = connections::DEFAULT_HEADER_READ_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout: u64,
    /// redis-server binary for the embedded Redis.
    #[arg(long, env = "REPLICAST_REDIS_SERVER", default_value = "redis-server")]
    redis_server: PathBuf,
    /// With the embedded Redis only: also run the collector in-process, writing this machine and this many
    /// simulated hosts to it every second (`perf:<host>`), so the page has something to show.
    #[arg(long, env = "REPLICAST_DEMO_HOSTS")]
    demo_hosts: Option<usize>,
    /// The history sink's base URL, served to the page as /config.json (`{"history": URL}`), so the host view can
    /// zoom out past the live window; none by default (then /config.json is the --www folder's, if any). Its value
    /// is kept out of --help like every URL's, in case it carries credentials.
    #[arg(long, env = "REPLICAST_HISTORY_URL", hide_env_values = true)]
    history_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One TLS crypto provider for the process, for the `redis` crate's connections too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: a file or a log collector would get the escape codes as text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Record(args) => record::run(args).await,
        Command::Rdb(args) => rdb_command::run(args),
        Command::Collect(args) => collect::run(args).await,
        Command::Sink(args) => sink::run(args).await,
        Command::Verify(args) => verify_command::run(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Every session is a socket: take every file descriptor the hard limit allows.
    match open_files::raise_to_hard_limit() {
        Ok(raised) if raised.after > raised.before => tracing::info!(
            "open-file limit raised from {} to {} (the hard limit)",
            raised.before,
            raised.after
        ),
        Ok(raised) => tracing::debug!("open-file limit {} (the hard limit)", raised.after),
        Err(err) => tracing::warn!("cannot raise the open-file limit: {err}"),
    }
    let files = match args.stream_only {
        true => None,
        false => Some(Arc::new(args.static_files()?)),
    };
    let access = args.access()?;
    let allow = Allow::new(&args.allow);
    let events = args.events(&allow)?;
    let limits = args.connection_limits()?;
    let trusted_proxies = TrustedProxies::new(&args.trusted_proxies, args.client_address_header)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tokens = args.tokens()?;

    let seeds = args
        .cluster
        .iter()
        .map(|node| cluster::parse_node(node))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let tls = match &args.redis_ca {
        Some(path) => tls::TlsSettings::from_ca_file(path)?,
        None => tls::TlsSettings::default(),
    };
    // Kept alive until the end of `serve`: dropping it stops the embedded server.
    let mut embedded = None;
    let source = match (&args.master_name, seeds.is_empty(), &args.redis_url) {
        (Some(name), _, url) => Source::Sentinel {
            sentinels: Arc::new(Sentinels::new(
                &args.sentinels,
                name.clone(),
                args.sentinel_user.clone(),
                args.sentinel_password.clone(),
            )?),
            settings: NodeSettings::from_url(url.as_deref(), tls)?,
        },
        (None, false, url) => Source::Cluster {
            seeds,
            settings: NodeSettings::from_url(url.as_deref(), tls)?,
            follow: args.cluster_follow,
        },
        (None, true, Some(url)) => Source::Redis(RedisTarget::from_url(url, tls)?),
        (None, true, None) => {
            let redis = EmbeddedRedis::start(&args.redis_server).await?;
            let url = redis.url();
            println!("Embedded Redis: {url} (try: redis-cli -u {url} ZADD perf:demo <ms> '{{\"id\":\"a1\",\"cpu\":12.5}}')");
            let target = RedisTarget::from_url(&url, tls)?;
            embedded = Some(redis);
            Source::Redis(target)
        }
    };
    let demo = match (args.demo_hosts, &embedded) {
        (Some(hosts), Some(redis)) => {
            println!("Demo collector: this machine and {hosts} simulated hosts, every second, into perf:<host>");
            Some(collect::spawn_demo(redis.url(), hosts))
        }
        (Some(_), None) => {
            tracing::warn!("--demo-hosts only applies to the embedded Redis: not writing demo data to --redis-url");
            None
        }
        (None, _) => None,
    };

    let listener = connections::listen(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    let allow = Arc::new(allow);
    let profile = WriteProfile::new(
        allow.clone(),
        ProfileSettings {
            window: Duration::from_secs(args.profile_window),
            hidden_prefixes: args.profile_prefixes.clone(),
        },
    );
    let following = source.follow(LinkSettings {
        listening_port: local.port(),
        timeout: Duration::from_secs(args.link_timeout),
        backlog_bytes: args.backlog_bytes,
        profile: Some(profile.clone()),
        allow: Arc::new(Allow::new(&args.allow)),
        state: (!args.stateless).then(|| StateSettings {
            depth: args.state_depth as usize,
            bytes: args.state_bytes,
            allow: args.allow.clone(),
            history_bytes: args.state_history_bytes.unwrap_or(args.backlog_bytes),
        }),
        state_queue_bytes: args
            .state_queue_bytes
            .unwrap_or(args.backlog_bytes.saturating_mul(4)),
        verify: args.verify_every.map(|every| VerifySettings {
            every,
            sample: args.verify_sample as usize,
        }),
    });
    let relay = Relay {
        topology: following.topology.clone(),
        metrics: Arc::new(Metrics::default()),
        shutdown: Arc::new(watch::channel(false).0),
        allow,
        access: Arc::new(access),
        trusted_proxies: Arc::new(trusted_proxies),
        peers: Arc::default(),
        events: Arc::new(Events::new(events.0, events.1, following.topology.clone())),
        tokens,
        profile,
    };
    if let (Some(verifier), Some(_)) = (&relay.tokens, &args.jwt_keys) {
        tokio::spawn(reload_keys_on_hangup(verifier.clone()));
    }
    match files {
        Some(_) => println!("Replicast is live at http://{local}/"),
        None => println!("Replicast's stream is live at ws://{local}/ws (no page: --stream-only)"),
    }
    http::serve(relay, listener, files, args.history_url.as_deref(), limits).await;
    following.stop();
    if let Some(demo) = demo {
        demo.abort();
    }
    drop(embedded);
    Ok(())
}

/// Reads --jwt-keys again on each SIGHUP; a file that does not read keeps the keys loaded before.
async fn reload_keys_on_hangup(verifier: Arc<TokenVerifier>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot listen for SIGHUP: --jwt-keys is read once");
        return;
    };
    while hangups.recv().await.is_some() {
        match verifier.reload() {
            Ok(keys) => tracing::info!(keys, "SIGHUP: --jwt-keys read again"),
            Err(err) => tracing::error!("SIGHUP: {err}; keeping the keys loaded before"),
        }
    }
}

impl ServeArgs {
    /// The page's files: those embedded in the binary, or the --www/--pkg folders. An error names each part of the
    /// page that is missing, and the ways to a whole page or to none.
    fn static_files(&self) -> anyhow::Result<StaticFiles> {
        // The RDB inspector's module is the --pkg folder's sibling `pkg-rdb` (scripts/build.sh builds both), served
        // from there when it exists.
        let inspector = self
            .pkg
            .as_ref()
            .map(|pkg| pkg.with_file_name("pkg-rdb"))
            .filter(|folder| folder.is_dir());
        let overrides: Vec<FolderOverride> = [
            ("--www", "/", &self.www),
            ("--pkg", "/pkg/", &self.pkg),
            ("--pkg", "/pkg-rdb/", &inspector),
        ]
        .into_iter()
        .filter_map(|(flag, prefix, path)| {
            Some(FolderOverride {
                flag,
                prefix,
                path: path.clone()?,
            })
        })
        .collect();
        let files = StaticFiles::load(&overrides)?;
        let missing = files.missing_page_parts();
        if !missing.is_empty() {
            anyhow::bail!(
                "no page to serve: {}.\nBuild it with `npm run build` (scripts/build.sh builds the wasm client and copies d3, then the relay, which embeds them; `cargo install --path server` after it installs that relay), or give the folders with --www and --pkg; or pass --stream-only to serve the WebSocket stream without a page.",
                missing.join("; ")
            );
        }
        Ok(files)
    }

    /// Who may open a session.
    fn access(&self) -> anyhow::Result<Access> {
        if let Some(bad) = self
            .public_hosts
            .iter()
            .find(|h| h.is_empty() || h.contains([':', '/', '@', '*']))
        {
            anyhow::bail!("--public-host takes host names, without scheme, port or wildcard (.example.com for a domain): got {bad:?}");
        }
        Ok(Access {
            token: self.token.clone(),
            origins: self.origins.clone(),
            public_hosts: self
                .public_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            max_sessions: self.max_sessions,
            max_sessions_per_address: self.max_sessions_per_address,
        })
    }

    /// The verifier of per-user tokens, when --jwt-secret or --jwt-keys asks for one.
    fn tokens(&self) -> anyhow::Result<Option<Arc<TokenVerifier>>> {
        let source = match (&self.jwt_secret, &self.jwt_keys) {
            (Some(secret), _) => KeySource::Secret(secret.clone()),
            (None, Some(path)) => KeySource::File(path.clone()),
            (None, None) if self.jwt_audience.is_empty() => return Ok(None),
            (None, None) => anyhow::bail!("--jwt-audience needs --jwt-secret or --jwt-keys"),
        };
        let checks = TokenChecks {
            audience: self.jwt_audience.clone(),
            leeway: self.jwt_leeway,
            max_sessions_per_subject: self.max_sessions_per_subject,
        };
        let verifier = TokenVerifier::new(source, checks).map_err(|e| anyhow::anyhow!("{e}"))?;
        tracing::info!("sessions must present a signed token (JWT); each sees and writes what its claims grant");
        Ok(Some(Arc::new(verifier)))
    }

    /// What browsers may append to Redis, and the limits on it.
    fn events(&self, allow: &Allow) -> anyhow::Result<(Writable, EventLimits)> {
        let writable = Writable::new(&self.writable, &self.writable_zset, allow)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if !self.event_rate.is_finite() || self.event_rate < 0.0 {
            anyhow::bail!("--event-rate must be a number of events a second, 0 or more");
        }
        if !writable.is_empty() {
            tracing::info!(streams = ?self.writable, sorted_sets = ?self.writable_zset, "browsers may append events to these keys");
        }
        let limits = EventLimits {
            rate: self.event_rate,
            burst: self.event_burst,
            max_bytes: self.event_max_bytes,
            max_fields: self.event_max_fields,
            maxlen: self.event_maxlen,
        };
        Ok((writable, limits))
    }

    /// Connections per peer address, and the time a client has for its request's headers.
    fn connection_limits(&self) -> anyhow::Result<ConnectionLimits> {
        let per_address = match self.max_connections_per_address {
            Some(max) if max < self.max_sessions_per_address => anyhow::bail!(
                "--max-connections-per-address ({max}) is below --max-sessions-per-address ({}): every session is a connection; raise it",
                self.max_sessions_per_address
            ),
            Some(max) => max,
            None => self
                .max_sessions_per_address
                .saturating_add(connections::CONNECTIONS_BEYOND_SESSIONS),
        };
        Ok(ConnectionLimits {
            per_address,
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
        })
    }
}
