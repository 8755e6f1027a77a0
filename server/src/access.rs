//! Who may reach the relay and open a session: the `Host` every route must name, and, for a WebSocket upgrade, the
//! token, the page's `Origin`, the session cap and the sessions each peer address holds.
//!
//! Against DNS rebinding (a page whose domain name comes to resolve to the relay's address, so that its requests
//! are same-origin to the browser), every route answers only requests whose `Host` is one the relay answers to:
//! an IP address, `localhost` (or a name under `.localhost`), or a `--public-host` name, as dev servers' allowed
//! hosts do; a rebinding page's requests carry its own domain name. A WebSocket page's `Origin` must then be the
//! relay's own (`http://` and the `Host`, or `https://` too for a `--public-host`, which a TLS proxy serves) or
//! listed with `--origin`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};

/// Who may open a session.
#[derive(Debug, Default)]
pub struct Access {
    /// A bearer token every session must present (`Authorization: Bearer …`, or `?token=` from browsers, whose
    /// WebSocket API cannot set headers).
    pub token: Option<String>,
    /// Origins a browser page may connect from besides the relay's own (`--origin`). `*` allows any.
    pub origins: Vec<String>,
    /// Names the relay answers to besides IP addresses and `localhost` (`--public-host`), lowercase: exact, or,
    /// starting with a dot, that name and every name under it.
    pub public_hosts: Vec<String>,
    pub max_sessions: u64,
    /// Most sessions one peer address may hold at once (`--max-sessions-per-address`).
    pub max_sessions_per_address: u64,
}

/// Default of `--max-sessions-per-address`: a tenth of the default `--max-sessions`, so that one host cannot take
/// every session, yet a thousand browsers behind one NAT, or a benchmark's thousand clients, fit.
pub const DEFAULT_MAX_SESSIONS_PER_ADDRESS: u64 = 1000;

/// The sessions each peer address holds now, for `--max-sessions-per-address`.
#[derive(Debug, Default)]
pub struct Peers {
    open: Mutex<HashMap<IpAddr, u64>>,
}

/// One session's place in its address's count, given back when dropped (when the session ends, or when the
/// upgrade it was taken for never completes).
#[derive(Debug)]
pub struct PeerSlot {
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl Peers {
    /// A slot for one more session from `ip` if it holds fewer than `limit`; else how many it holds.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, limit: u64) -> Result<PeerSlot, u64> {
        // `::ffff:127.0.0.1` and `127.0.0.1` are one peer.
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        // Only a session admitted makes an entry: a refusal leaves none behind (with a limit of 0 every address
        // is refused, and the map would otherwise grow with every address that tried).
        let held = open.get(&ip).copied().unwrap_or(0);
        if held >= limit {
            return Err(held);
        }
        *open.entry(ip).or_default() += 1;
        Ok(PeerSlot {
            peers: self.clone(),
            ip,
        })
    }

    /// Sessions `ip` holds now.
    pub fn held(&self, ip: IpAddr) -> u64 {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&ip.to_canonical()).copied().unwrap_or(0)
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.peers.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = open.get_mut(&self.ip) {
            *held -= 1;
            if *held == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl Access {
    /// Why the upgrade request must be refused, if it must: the Host, the token, the page's origin, the session cap.
    pub fn check(
        &self,
        headers: &HeaderMap,
        token: Option<&str>,
        sessions: u64,
    ) -> Result<(), (StatusCode, String)> {
        self.check_host(headers)?;
        if let Some(want) = &self.token {
            let given = presented_token(headers, token).unwrap_or("");
            if !constant_time_eq(given.as_bytes(), want.as_bytes()) {
                return Err((StatusCode::UNAUTHORIZED, "missing or wrong token\n".into()));
            }
        }
        // Browsers always send one Origin; a request without is not a browser page's, and the token is its check.
        let mut origins = headers.get_all(header::ORIGIN).iter();
        if let Some(origin) = origins.next() {
            let host = headers.get(header::HOST);
            let allowed = origins.next().is_none()
                && (self.is_own_origin(origin, host)
                    || self
                        .origins
                        .iter()
                        .any(|o| o == "*" || o.as_bytes() == origin.as_bytes()));
            if !allowed {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!(
                        "origin {} is not allowed: not this relay's own, nor listed with --origin\n",
                        origin.as_bytes().escape_ascii()
                    ),
                ));
            }
        }
        if sessions >= self.max_sessions {
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the relay serves at most {} sessions (see --max-sessions)\n",
                    self.max_sessions
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a request whose `Host` the relay does not answer to; a request without one (HTTP/1.0, which no
    /// browser sends) is not a rebinding page's.
    pub fn check_host(&self, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
        let mut hosts = headers.get_all(header::HOST).iter();
        match (hosts.next(), hosts.next()) {
            (None, _) => Ok(()),
            (Some(host), None) if self.answers_to(host) => Ok(()),
            (Some(host), _) => Err((
                StatusCode::FORBIDDEN,
                format!(
                    "host {} is not one this relay answers to: an IP address, localhost, or a --public-host\n",
                    host.as_bytes().escape_ascii()
                ),
            )),
        }
    }

    /// Whether `host` (a `Host` header) names this relay.
    fn answers_to(&self, host: &HeaderValue) -> bool {
        let Some(name) = host_name(host.as_bytes()) else {
            return false;
        };
        is_ip_literal(&name)
            || name == "localhost"
            || name.ends_with(".localhost")
            || self.is_public_host(&name)
    }

    fn is_public_host(&self, name: &str) -> bool {
        self.public_hosts
            .iter()
            .any(|allowed| match allowed.strip_prefix('.') {
                Some(domain) => {
                    name == domain
                        || name
                            .strip_suffix(domain)
                            .is_some_and(|sub| sub.ends_with('.'))
                }
                None => name == allowed,
            })
    }

    /// Whether `origin` is the relay's own for a request with `host`: the same name and port, over `http` (the
    /// relay's own scheme), or `https` for a `--public-host` (a TLS proxy in front).
    fn is_own_origin(&self, origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
        let Some(host) = host.filter(|h| self.answers_to(h)) else {
            return false;
        };
        let Some((scheme, authority)) = origin.to_str().ok().and_then(|o| o.split_once("://"))
        else {
            return false;
        };
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return false,
        };
        let (Some(origin), Some(host)) = (
            authority_of(authority.as_bytes()),
            authority_of(host.as_bytes()),
        ) else {
            return false;
        };
        let name = host.host().to_ascii_lowercase();
        let same_place = origin.host().eq_ignore_ascii_case(&name)
            && origin.port_u16().unwrap_or(default_port) == host.port_u16().unwrap_or(default_port);
        same_place && (scheme == "http" || self.is_public_host(&name))
    }
}

/// The token a client presents: `Authorization: Bearer …`, else `?token=` (browsers' WebSocket API cannot set
/// headers).
pub fn presented_token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or(query)
}

/// A `Host` header's (or an origin's) `host[:port]`, with no user part: `None` if it is not one.
fn authority_of(value: &[u8]) -> Option<Authority> {
    if value.is_empty() || value.contains(&b'@') {
        return None;
    }
    Authority::try_from(value).ok()
}

/// A `Host` header's name, lowercase, without its port: `None` if the header is not a host.
fn host_name(host: &[u8]) -> Option<String> {
    authority_of(host).map(|a| a.host().to_ascii_lowercase())
}

/// Whether a host name is an IP address (`127.0.0.1`, `[::1]`): no DNS answer can make one point elsewhere.
fn is_ip_literal(name: &str) -> bool {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    bare.parse::<IpAddr>().is_ok()
}

/// Compares without stopping at the first difference, so response times do not leak how much of a token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn tokens_origins_and_caps_are_checked() {
        let access = Access {
            token: Some("s3cret".into()),
            origins: vec!["https://dash.example".into()],
            public_hosts: vec!["relay".into()],
            max_sessions: 2,
            max_sessions_per_address: 1,
        };
        let page =
            |origin: &str| headers(&[(header::HOST, "relay:8080"), (header::ORIGIN, origin)]);
        let ok = page("http://relay:8080");
        assert!(access.check(&ok, Some("s3cret"), 0).is_ok());
        assert_eq!(
            access.check(&ok, None, 0).unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            access.check(&ok, Some("s3cre"), 0).unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
        let bearer = headers(&[(header::AUTHORIZATION, "Bearer s3cret")]);
        assert!(
            access.check(&bearer, None, 0).is_ok(),
            "non-browser clients use the header and send no Origin"
        );
        assert!(access
            .check(&page("https://dash.example"), Some("s3cret"), 0)
            .is_ok());
        assert_eq!(
            access
                .check(&page("https://evil.example"), Some("s3cret"), 0)
                .unwrap_err()
                .0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            access.check(&ok, Some("s3cret"), 2).unwrap_err().0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn hosts_and_origins_resist_dns_rebinding() {
        let access = Access {
            token: None,
            origins: vec!["https://dash.example".into()],
            public_hosts: vec!["relay.example".into(), ".corp.example".into()],
            max_sessions: 10,
            max_sessions_per_address: 10,
        };
        let request = |host: Option<&[u8]>, origin: Option<&[u8]>| {
            let mut headers = HeaderMap::new();
            if let Some(host) = host {
                headers.insert(header::HOST, HeaderValue::from_bytes(host).unwrap());
            }
            if let Some(origin) = origin {
                headers.insert(header::ORIGIN, HeaderValue::from_bytes(origin).unwrap());
            }
            access
                .check(&headers, None, 0)
                .map_err(|(status, _)| status)
        };
        let forbidden = Err(StatusCode::FORBIDDEN);
        // The relay's own pages, addressed directly or through a public name.
        assert_eq!(
            request(Some(b"127.0.0.1:8080"), Some(b"http://127.0.0.1:8080")),
            Ok(())
        );
        assert_eq!(
            request(Some(b"[::1]:8080"), Some(b"http://[::1]:8080")),
            Ok(())
        );
        assert_eq!(
            request(Some(b"localhost:8080"), Some(b"http://localhost:8080")),
            Ok(())
        );
        assert_eq!(
            request(Some(b"LocalHost:8080"), Some(b"http://localhost:8080")),
            Ok(())
        );
        assert_eq!(
            request(Some(b"relay.example"), Some(b"https://relay.example")),
            Ok(())
        );
        assert_eq!(
            request(Some(b"relay.example:443"), Some(b"https://relay.example")),
            Ok(())
        );
        assert_eq!(
            request(Some(b"relay.example"), Some(b"http://relay.example")),
            Ok(())
        );
        assert_eq!(
            request(Some(b"a.corp.example"), Some(b"https://a.corp.example")),
            Ok(())
        );
        assert_eq!(
            request(Some(b"corp.example"), Some(b"https://corp.example")),
            Ok(())
        );
        // Listed origins, and clients that send none.
        assert_eq!(
            request(Some(b"127.0.0.1:8080"), Some(b"https://dash.example")),
            Ok(())
        );
        assert_eq!(request(Some(b"127.0.0.1:8080"), None), Ok(()));
        assert_eq!(request(None, None), Ok(()));
        // DNS rebinding: the page's own name as Host, with its origin or any other.
        assert_eq!(
            request(
                Some(b"evil.example:8080"),
                Some(b"http://evil.example:8080")
            ),
            forbidden
        );
        assert_eq!(request(Some(b"evil.example:8080"), None), forbidden);
        assert_eq!(
            request(Some(b"evil.example:8080"), Some(b"https://dash.example")),
            forbidden
        );
        assert_eq!(request(Some(b"xcorp.example"), None), forbidden);
        assert_eq!(request(Some(b"relay.example.evil"), None), forbidden);
        assert_eq!(request(Some(b"user@127.0.0.1"), None), forbidden);
        assert_eq!(request(Some(b""), None), forbidden);
        assert_eq!(request(Some(b"\xffhost"), None), forbidden);
        // Origins that are not the relay's own: another scheme, port or name, or no origin at all.
        assert_eq!(
            request(Some(b"127.0.0.1:8080"), Some(b"https://127.0.0.1:8080")),
            forbidden
        );
        assert_eq!(
            request(Some(b"127.0.0.1:8080"), Some(b"evil://127.0.0.1:8080")),
            forbidden
        );
        assert_eq!(
            request(Some(b"127.0.0.1:8080"), Some(b"http://127.0.0.1:8081")),
            forbidden
        );
        assert_eq!(
            request(Some(b"127.0.0.1:8080"), Some(b"http://127.0.0.1")),
            forbidden
        );
        assert_eq!(
            request(Some(b"127.0.0.1:8080"), Some(b"http://127.0.0.2:8080")),
            forbidden
        );
        assert_eq!(
            request(Some(b"127.0.0.1:8080"), Some(b"http://127.0.0.1:8080/x")),
            forbidden
        );
        assert_eq!(request(Some(b"127.0.0.1:8080"), Some(b"null")), forbidden);
        assert_eq!(request(Some(b"127.0.0.1:8080"), Some(b"")), forbidden);
        assert_eq!(
            request(Some(b"127.0.0.1:8080"), Some(b"http://127.0.0.1:8080\xff")),
            forbidden,
            "an origin that is not ASCII is checked too"
        );
        let mut two = HeaderMap::new();
        two.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        two.append(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        two.append(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert_eq!(
            access.check(&two, None, 0).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn each_address_holds_at_most_its_share_of_sessions() {
        let peers = Arc::new(Peers::default());
        let home: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let first = peers.admit(home, 2).unwrap();
        let second = peers.admit(mapped, 2).unwrap();
        assert_eq!(
            peers.admit(home, 2).unwrap_err(),
            2,
            "one peer, however written"
        );
        let elsewhere = peers.admit(other, 2).unwrap();
        assert_eq!((peers.held(home), peers.held(other)), (2, 1));
        drop(first);
        let third = peers.admit(home, 2).unwrap();
        drop((second, third, elsewhere));
        assert_eq!((peers.held(home), peers.held(other)), (0, 0));
        assert!(
            peers.open.lock().unwrap().is_empty(),
            "no entry outlives its sessions"
        );
    }

    #[test]
    fn refused_addresses_leave_no_entry() {
        let peers = Arc::new(Peers::default());
        for i in 0..100u32 {
            let ip = IpAddr::from(std::net::Ipv6Addr::from(u128::from(i) + 1));
            assert_eq!(peers.admit(ip, 0).unwrap_err(), 0);
        }
        let home: IpAddr = "127.0.0.1".parse().unwrap();
        let held = peers.admit(home, 1).unwrap();
        assert_eq!(peers.admit(home, 1).unwrap_err(), 1);
        assert_eq!(
            peers.open.lock().unwrap().len(),
            1,
            "only the address holding a session has an entry"
        );
        drop(held);
        assert!(peers.open.lock().unwrap().is_empty());
    }
}
