//! Where a Redis node is and how to reach it ([`RedisTarget`]: address, credentials, database, TLS; [`NodeSettings`]:
//! the same without an address, for nodes that Sentinel or a cluster names), and the node the relay follows *now*
//! ([`Upstream`]): fixed when it comes from `--redis-url`, switched by the replica link or the Sentinel watcher when
//! Sentinel names another primary, by the cluster's topology reader after a failover in a shard. The link, the
//! Snapshotter and the metrics poller all read it here, so after a failover snapshots come from the same node as
//! the stream.

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};
use tokio::sync::watch;

use crate::tls::TlsSettings;

/// Where the link connects, from a `redis://[user:password@]host:port` URL (or that URL's credentials and an
/// address from Sentinel or a cluster, see [`NodeSettings::at`]).
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// The address as the `redis` crate takes it (with the URL's TLS options).
    addr: ConnectionAddr,
    /// Credentials and database, for the `redis` crate's connections (command table, snapshots, events).
    settings: RedisConnectionInfo,
    pub host: String,
    /// Set for `rediss://` URLs.
    pub tls: Option<TlsSettings>,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl RedisTarget {
    /// `tls` verifies the server of a `rediss://` URL.
    pub fn from_url(url: &str, tls: TlsSettings) -> anyhow::Result<Self> {
        let info = url.into_connection_info().map_err(|e| {
            anyhow::anyhow!("invalid Redis URL {:?}: {e}", without_credentials(url))
        })?;
        let (host, port, tls) = match info.addr() {
            ConnectionAddr::Tcp(host, port) => (host.clone(), *port, None),
            ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port, Some(tls)),
            other => anyhow::bail!("unsupported Redis address {other}: use redis:// or rediss://"),
        };
        let settings = info.redis_settings();
        Ok(RedisTarget {
            host,
            tls,
            port,
            username: settings.username().map(str::to_string),
            password: settings.password().map(str::to_string),
            settings: settings.clone(),
            addr: info.addr().clone(),
        })
    }

    /// `host:port` with no credentials, database 0 and no TLS: a node named by Sentinel or a cluster when no
    /// `--redis-url` gives credentials.
    fn plain(host: &str, port: u16) -> RedisTarget {
        RedisTarget {
            addr: ConnectionAddr::Tcp(host.to_string(), port),
            settings: RedisConnectionInfo::default(),
            host: host.to_string(),
            tls: None,
            port,
            username: None,
            password: None,
        }
    }

    /// The same credentials, database and TLS settings at another address (the primary Sentinel named).
    pub fn at(&self, host: &str, port: u16) -> RedisTarget {
        let addr = match &self.addr {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.to_string(),
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host.to_string(), port),
        };
        RedisTarget {
            addr,
            host: host.to_string(),
            port,
            ..self.clone()
        }
    }

    /// The same node, in database `db`.
    pub fn in_db(&self, db: u32) -> RedisTarget {
        RedisTarget {
            settings: self.settings.clone().set_db(i64::from(db)),
            ..self.clone()
        }
    }

    /// The connection as the `redis` crate takes it.
    pub fn info(&self) -> redis::RedisResult<ConnectionInfo> {
        Ok(self
            .addr
            .clone()
            .into_connection_info()?
            .set_redis_settings(self.settings.clone()))
    }

    /// `host:port`, for logs.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// A `redis` crate client for the same server (command table, snapshots), over TLS when the link is.
    pub fn client(&self) -> redis::RedisResult<redis::Client> {
        match &self.tls {
            Some(tls) => tls.client(self.info()?),
            None => redis::Client::open(self.info()?),
        }
    }
}

/// How the relay reaches the Redis nodes that Sentinel or a cluster names: the credentials, database and TLS of
/// `--redis-url` (whose own host and port are not used then), or, without one, none: no password, database 0, no
/// TLS.
#[derive(Debug, Clone, Default)]
pub struct NodeSettings {
    url: Option<RedisTarget>,
}

impl NodeSettings {
    /// The settings of `url`, if one is given.
    pub fn from_url(url: Option<&str>, tls: TlsSettings) -> anyhow::Result<Self> {
        Ok(NodeSettings {
            url: url.map(|url| RedisTarget::from_url(url, tls)).transpose()?,
        })
    }

    /// The node at `host:port`, reached with these settings.
    pub fn at(&self, host: &str, port: u16) -> RedisTarget {
        match &self.url {
            Some(url) => url.at(host, port),
            None => RedisTarget::plain(host, port),
        }
    }
}

impl From<RedisTarget> for NodeSettings {
    fn from(target: RedisTarget) -> Self {
        NodeSettings { url: Some(target) }
    }
}

/// The node a replica link follows now: `None` until Sentinel first names one.
pub struct Upstream {
    settings: NodeSettings,
    target: watch::Sender<Option<RedisTarget>>,
}

impl Upstream {
    /// Follows `target` until something switches it (a failover).
    pub fn at(target: RedisTarget) -> Self {
        Upstream {
            settings: NodeSettings::from(target.clone()),
            target: watch::channel(Some(target)).0,
        }
    }

    /// Follows no node until one is named (by Sentinel): then the node there, reached with `settings`.
    pub fn unnamed(settings: NodeSettings) -> Self {
        Upstream {
            settings,
            target: watch::channel(None).0,
        }
    }

    /// The node followed now, if one was named.
    pub fn current(&self) -> Option<RedisTarget> {
        self.target.borrow().clone()
    }

    /// `host:port` of the node followed now, for logs and labels.
    pub fn addr(&self) -> String {
        match &*self.target.borrow() {
            Some(target) => target.addr(),
            None => "(no node named yet)".into(),
        }
    }

    /// A `redis` crate client for the node followed now.
    pub fn client(&self) -> redis::RedisResult<redis::Client> {
        match self.current() {
            Some(target) => target.client(),
            None => Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "no Redis node to read from yet: Sentinel has not named the primary",
            ))),
        }
    }

    /// A receiver that wakes when the node followed changes.
    pub fn subscribe(&self) -> watch::Receiver<Option<RedisTarget>> {
        self.target.subscribe()
    }

    /// Follows `host:port` from now on, with the same credentials; `true` if that is a change.
    pub fn switch_to(&self, host: &str, port: u16) -> bool {
        self.target.send_if_modified(|target| {
            if target
                .as_ref()
                .is_some_and(|t| t.host == host && t.port == port)
            {
                return false;
            }
            let from = target.as_ref().map_or("(none)".into(), RedisTarget::addr);
            tracing::info!(%from, to = %format!("{host}:{port}"), "following another Redis node");
            *target = Some(self.settings.at(host, port));
            true
        })
    }
}

/// `url` with whatever stands between its scheme and its last `@` (a user and password) left out, for errors about
/// a URL that may not parse.
fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_url_is_named_without_its_password() {
        let err =
            RedisTarget::from_url("redis://ana:s3cret@127.0.0.1:port", TlsSettings::default())
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("redis://…@127.0.0.1:port") && !err.contains("s3cret"),
            "{err}"
        );
        assert_eq!(without_credentials("redis://h:1"), "redis://h:1");
        assert_eq!(without_credentials("a@b"), "a@b");
    }

    #[test]
    fn urls_give_host_port_and_credentials() {
        let t = RedisTarget::from_url("redis://ana:s3cret@127.0.0.1:7000", TlsSettings::default())
            .unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 7000));
        assert_eq!(
            (t.username.as_deref(), t.password.as_deref()),
            (Some("ana"), Some("s3cret"))
        );
        assert!(t.tls.is_none());
        assert!(
            RedisTarget::from_url("rediss://h:7000", TlsSettings::default())
                .unwrap()
                .tls
                .is_some()
        );
        assert!(RedisTarget::from_url("not a url", TlsSettings::default()).is_err());
    }

    #[test]
    fn another_address_keeps_the_credentials() {
        let t = RedisTarget::from_url("rediss://ana:s3cret@placeholder/2", TlsSettings::default())
            .unwrap()
            .at("10.0.0.7", 6380);
        assert_eq!(t.addr(), "10.0.0.7:6380");
        let info = t.info().unwrap();
        assert_eq!(info.addr().to_string(), "10.0.0.7:6380");
        assert!(t.tls.is_some());
        assert!(matches!(info.addr(), ConnectionAddr::TcpTls { .. }));
        assert_eq!(info.redis_settings().db(), 2);
        assert_eq!(t.password.as_deref(), Some("s3cret"));
        assert_eq!(info.redis_settings().password(), Some("s3cret"));
    }
}
