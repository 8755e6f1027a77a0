//! The Redis node the relay follows *now*: fixed when it comes from `--redis-url`, switched by the replica link or
//! the Sentinel watcher when Sentinel names another primary. The link, the Snapshotter and the metrics poller all
//! read it here, so after a failover snapshots come from the same node as the stream.

use tokio::sync::watch;

use crate::replica_link::RedisTarget;

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
