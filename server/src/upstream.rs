//! Where a Redis node is and how to reach it ([`RedisTarget`]: address, credentials, database, TLS), and the node
//! the relay follows *now* ([`Upstream`]): fixed when it comes from `--redis-url`, switched by the replica link or
//! the Sentinel watcher when Sentinel names another primary. The link, the Snapshotter and the metrics poller all
//! read it here, so after a failover snapshots come from the same node as the stream.

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};
use tokio::sync::watch;

use crate::tls::TlsSettings;

/// Where the link connects, from a `redis://[user:password@]host:port` URL (or that URL's credentials and an
/// address from Sentinel, see [`RedisTarget::at`]).
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// The connection as given, for the `redis` crate's connections (command table, snapshots).
    pub info: ConnectionInfo,
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
        let info = url
            .into_connection_info()
            .map_err(|e| anyhow::anyhow!("invalid Redis URL {url:?}: {e}"))?;
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
            info,
        })
    }

    /// The same credentials, database and TLS settings at another address (the primary Sentinel named).
    pub fn at(&self, host: &str, port: u16) -> RedisTarget {
        let addr = match self.info.addr() {
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
            info: self.info.clone().set_addr(addr),
            host: host.to_string(),
            port,
            ..self.clone()
        }
    }

    /// `host:port`, for logs.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// A `redis` crate client for the same server (command table, snapshots), over TLS when the link is.
    pub fn client(&self) -> redis::RedisResult<redis::Client> {
        match &self.tls {
            Some(tls) => tls.client(self.info.clone()),
            None => redis::Client::open(self.info.clone()),
        }
    }
}

pub struct Upstream {
    target: watch::Sender<RedisTarget>,
}

impl Upstream {
    pub fn new(target: RedisTarget) -> Self {
        Upstream {
            target: watch::channel(target).0,
        }
    }

    /// The node followed now.
    pub fn current(&self) -> RedisTarget {
        self.target.borrow().clone()
    }

    /// A `redis` crate client for the node followed now.
    pub fn client(&self) -> redis::RedisResult<redis::Client> {
        self.current().client()
    }

    /// A receiver that wakes when the node followed changes.
    pub fn subscribe(&self) -> watch::Receiver<RedisTarget> {
        self.target.subscribe()
    }

    /// Follows `host:port` from now on, with the same credentials; `true` if that is a change.
    pub fn switch_to(&self, host: &str, port: u16) -> bool {
        self.target.send_if_modified(|target| {
            if target.host == host && target.port == port {
                return false;
            }
            tracing::info!(from = %target.addr(), to = %format!("{host}:{port}"), "following another Redis node");
            *target = target.at(host, port);
            true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(t.info.addr().to_string(), "10.0.0.7:6380");
        assert!(t.tls.is_some());
        assert!(matches!(t.info.addr(), ConnectionAddr::TcpTls { .. }));
        assert_eq!(t.info.redis_settings().db(), 2);
        assert_eq!(t.password.as_deref(), Some("s3cret"));
        assert_eq!(t.info.redis_settings().password(), Some("s3cret"));
    }
}
