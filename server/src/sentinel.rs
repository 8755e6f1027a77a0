//! Finding the current primary through Redis Sentinel, and learning of failovers.
//!
//! The replica link asks the sentinels in turn `SENTINEL get-master-addr-by-name NAME` before every connection
//! attempt, so it always connects to the primary Sentinel names now. Between attempts, [`watch_switches`] keeps a
//! connection to one sentinel subscribed to `+switch-master` and switches the [`Upstream`] the moment a failover
//! ends, which makes the link drop its connection and re-attach at once. A message lost while no sentinel was
//! reachable costs only a reconnect: the next attempt asks again.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Value};
use thiserror::Error;

use crate::backoff::jitter;
use crate::upstream::Upstream;

/// Sentinel's default port, for addresses given without one.
pub const DEFAULT_PORT: u16 = 26379;
/// How long one sentinel gets to answer before the next is asked.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum SentinelError {
    #[error(
        "invalid sentinel address {0:?}: expected host:port, e.g. 10.0.0.5:26379 or [::1]:26379"
    )]
    Address(String),
    #[error("no sentinel knows the primary {name:?}: {errors}")]
    NoPrimary { name: String, errors: String },
    #[error("unexpected reply to SENTINEL get-master-addr-by-name: {0}")]
    Reply(String),
}

/// The sentinels to ask, the name of the primary they watch, and the credentials they want.
#[derive(Debug, Clone)]
pub struct Sentinels {
    pub addrs: Vec<(String, u16)>,
    pub master_name: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl Sentinels {
    /// From `host:port` strings (a missing port is Sentinel's default, 26379).
    pub fn new(
        addrs: &[String],
        master_name: String,
        username: Option<String>,
        password: Option<String>,
    ) -> Result<Self, SentinelError> {
        let addrs = addrs
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
            .map(parse_addr)
            .collect::<Result<Vec<_>, _>>()?;
        if addrs.is_empty() {
            return Err(SentinelError::Address(String::new()));
        }
        Ok(Sentinels {
            addrs,
            master_name,
            username,
            password,
        })
    }

    fn client(&self, (host, port): &(String, u16)) -> redis::RedisResult<redis::Client> {
        let mut settings = RedisConnectionInfo::default();
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        let info = ConnectionAddr::Tcp(host.clone(), *port)
            .into_connection_info()?
            .set_redis_settings(settings);
        redis::Client::open(info)
    }

    /// The current primary's address, from the first sentinel that knows it.
    pub async fn primary(&self) -> Result<(String, u16), SentinelError> {
        let mut errors = Vec::new();
        for addr in &self.addrs {
            let asked = tokio::time::timeout(ASK_TIMEOUT, self.ask(addr)).await;
            match asked {
                Ok(Ok(Some(primary))) => return Ok(primary),
                Ok(Ok(None)) => errors.push(format!(
                    "{}:{} does not monitor {:?}",
                    addr.0, addr.1, self.master_name
                )),
                Ok(Err(err)) => errors.push(format!("{}:{}: {err}", addr.0, addr.1)),
                Err(_) => errors.push(format!(
                    "{}:{}: no answer within {ASK_TIMEOUT:?}",
                    addr.0, addr.1
                )),
            }
        }
        Err(SentinelError::NoPrimary {
            name: self.master_name.clone(),
            errors: errors.join("; "),
        })
    }

    async fn ask(&self, addr: &(String, u16)) -> anyhow::Result<Option<(String, u16)>> {
        let mut conn = self
            .client(addr)?
            .get_multiplexed_async_connection()
            .await?;
        let reply: Value = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.master_name)
            .query_async(&mut conn)
            .await?;
        Ok(parse_master_addr(reply)?)
    }
}

/// `host:port`, `[v6]:port`, or a bare host (port 26379).
pub fn parse_addr(addr: &str) -> Result<(String, u16), SentinelError> {
    let bad = || SentinelError::Address(addr.to_string());
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(bad()),
        }
    } else {
        match addr.split_once(':') {
            Some((host, port)) if !port.contains(':') => (host, Some(port)),
            Some(_) => return Err(bad()),
            None => (addr, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
        return Err(bad());
    }
    let port = match port {
        Some(port) => port.parse().ok().filter(|&p| p != 0).ok_or_else(bad)?,
        None => DEFAULT_PORT,
    };
    Ok((host.to_string(), port))
}

/// The reply to `SENTINEL get-master-addr-by-name`: `[host, port]`, or nil when the name is not monitored.
fn parse_master_addr(reply: Value) -> Result<Option<(String, u16)>, SentinelError> {
    let text = |v: &Value| match v {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    match &reply {
        Value::Nil => Ok(None),
        Value::Array(items) if items.len() == 2 => {
            let host = text(&items[0]);
            let port = text(&items[1]).and_then(|p| p.parse::<u16>().ok());
            match (host, port) {
                (Some(host), Some(port)) => Ok(Some((host, port))),
                _ => Err(SentinelError::Reply(format!("{reply:?}"))),
            }
        }
        _ => Err(SentinelError::Reply(format!("{reply:?}"))),
    }
}

/// A `+switch-master` message, `<name> <old ip> <old port> <new ip> <new port>`: the new address if it is about
/// `name`.
fn parse_switch_master(payload: &str, name: &str) -> Option<(String, u16)> {
    let words: Vec<&str> = payload.split(' ').collect();
    match words[..] {
        [n, _, _, host, port] if n == name => Some((host.to_string(), port.parse().ok()?)),
        _ => None,
    }
}

/// Listens to the sentinels' `+switch-master` announcements, one sentinel at a time, and switches `upstream` to
/// each new primary of `sentinels.master_name`. Runs forever.
pub async fn watch_switches(sentinels: Arc<Sentinels>, upstream: Arc<Upstream>) {
    let mut backoff = BACKOFF_FIRST;
    for addr in sentinels.addrs.iter().cycle() {
        let err = match listen(&sentinels, addr, &upstream, &mut backoff).await {
            Ok(()) => "the subscription ended".to_string(),
            Err(err) => err.to_string(),
        };
        let delay = jitter(backoff);
        tracing::warn!(sentinel = %format!("{}:{}", addr.0, addr.1), retry_in = ?delay, "sentinel subscription: {err}");
        tokio::time::sleep(delay).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn listen(
    sentinels: &Sentinels,
    addr: &(String, u16),
    upstream: &Upstream,
    backoff: &mut Duration,
) -> redis::RedisResult<()> {
    let mut pubsub = sentinels.client(addr)?.get_async_pubsub().await?;
    pubsub.subscribe("+switch-master").await?;
    *backoff = BACKOFF_FIRST;
    tracing::debug!(sentinel = %format!("{}:{}", addr.0, addr.1), "listening for +switch-master");
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let payload: String = message.get_payload()?;
        if let Some((host, port)) = parse_switch_master(&payload, &sentinels.master_name) {
            tracing::info!(primary = %format!("{host}:{port}"), "Sentinel announced a failover (+switch-master)");
            upstream.switch_to(&host, port);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            parse_addr("10.0.0.5:26380").unwrap(),
            ("10.0.0.5".into(), 26380)
        );
        assert_eq!(
            parse_addr("sentinel-a").unwrap(),
            ("sentinel-a".into(), 26379)
        );
        assert_eq!(parse_addr("[::1]:5000").unwrap(), ("::1".into(), 5000));
        assert_eq!(parse_addr("[::1]").unwrap(), ("::1".into(), 26379));
        for bad in [
            "", ":26379", "h:0", "h:port", "h:99999", "::1", "[::1", "[::1]x", "a b:1",
        ] {
            assert!(parse_addr(bad).is_err(), "{bad:?}");
        }
        let list = ["a:1".to_string(), " b:2 ".to_string(), String::new()];
        let sentinels = Sentinels::new(&list, "m".into(), None, None).unwrap();
        assert_eq!(sentinels.addrs, [("a".into(), 1), ("b".into(), 2)]);
        assert!(Sentinels::new(&[], "m".into(), None, None).is_err());
    }

    #[test]
    fn master_addr_replies_are_understood() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        assert_eq!(
            parse_master_addr(Value::Array(vec![bulk("127.0.0.1"), bulk("6380")])).unwrap(),
            Some(("127.0.0.1".into(), 6380))
        );
        assert_eq!(parse_master_addr(Value::Nil).unwrap(), None);
        assert!(parse_master_addr(Value::Array(vec![bulk("h"), bulk("x")])).is_err());
        assert!(parse_master_addr(Value::Int(1)).is_err());
    }

    #[test]
    fn switch_master_messages_are_understood() {
        assert_eq!(
            parse_switch_master("mymaster 127.0.0.1 6379 127.0.0.1 6380", "mymaster"),
            Some(("127.0.0.1".into(), 6380))
        );
        assert_eq!(
            parse_switch_master("other 127.0.0.1 6379 127.0.0.1 6380", "mymaster"),
            None
        );
        assert_eq!(parse_switch_master("mymaster 1 2", "mymaster"), None);
    }
}
