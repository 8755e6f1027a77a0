//! Which address a request comes from, for the per-address limits and the `_peer` stamp of browser events: the
//! TCP peer's, or, when that peer is a reverse proxy the operator trusts (`--trusted-proxy CIDR`), the client's that
//! the proxy forwarded in `X-Forwarded-For` (or `Forwarded`, with `--client-address-header forwarded`).
//!
//! The header is read from the right: each trusted proxy appends the address it got the request from, so the
//! rightmost address that is not a trusted proxy's is the client's; everything to its left is the client's own
//! say, and may be forged. A peer outside every trusted CIDR is the client, whatever headers it sends.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// Most hops of a forwarding header read from the right: past them the address to the right of the last one read
/// is taken. A chain of proxies is a handful; this bounds the work a request with a long header costs.
pub const MAX_FORWARDED_HOPS: usize = 32;

/// Which header a trusted proxy names the client in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ForwardingHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx's `$proxy_add_x_forwarded_for`).
    #[default]
    XForwardedFor,
    /// RFC 7239's `Forwarded: for=client, for=proxy1, …`.
    Forwarded,
}

/// The reverse proxies whose forwarding header the relay believes.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ForwardingHeader,
}

/// The address a request is from: its TCP peer's, or the one a trusted proxy forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddress {
    Peer(SocketAddr),
    Forwarded(IpAddr),
}

impl ClientAddress {
    pub fn ip(self) -> IpAddr {
        match self {
            ClientAddress::Peer(peer) => peer.ip().to_canonical(),
            ClientAddress::Forwarded(ip) => ip.to_canonical(),
        }
    }
}

impl std::fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAddress::Peer(peer) => write!(f, "{peer}"),
            ClientAddress::Forwarded(ip) => write!(f, "{}", ip.to_canonical()),
        }
    }
}

impl TrustedProxies {
    /// Parses `--trusted-proxy` values: CIDRs (`10.0.0.0/8`, `::1/128`) or single addresses.
    pub fn new(cidrs: &[String], header: ForwardingHeader) -> Result<Self, String> {
        let nets = cidrs
            .iter()
            .map(|cidr| {
                cidr.parse::<IpNet>()
                    .or_else(|_| cidr.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "--trusted-proxy takes an address or a CIDR like 10.0.0.0/8: got {cidr:?}"
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { nets, header })
    }

    /// Whether connections from `ip` come through a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// Who sent a request that came from `peer` with `headers`.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> ClientAddress {
        if !self.trusts(peer.ip()) {
            return ClientAddress::Peer(peer);
        }
        let name = match self.header {
            ForwardingHeader::XForwardedFor => HeaderName::from_static("x-forwarded-for"),
            ForwardingHeader::Forwarded => HeaderName::from_static("forwarded"),
        };
        // Repeated headers are one list, in order.
        let values: Vec<&[u8]> = headers
            .get_all(&name)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        let hops = values
            .iter()
            .rev()
            .flat_map(|value| value.rsplit(|&b| b == b','))
            .take(MAX_FORWARDED_HOPS);
        let mut client = ClientAddress::Peer(peer);
        for hop in hops {
            let parsed = match self.header {
                ForwardingHeader::XForwardedFor => forwarded_for_address(hop),
                ForwardingHeader::Forwarded => forwarded_element_address(hop),
            };
            // A hop that is not an address (`unknown`, an obfuscated name, garbage) ends the walk: the client is
            // the last address known, a trusted proxy's at worst.
            let Some(ip) = parsed else { break };
            client = ClientAddress::Forwarded(ip);
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, maybe with a port (`1.2.3.4:5`, `[::1]:5`).
fn forwarded_for_address(hop: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(hop).ok()?.trim();
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// The `for=` of one `Forwarded` element (`for=1.2.3.4;proto=https`, `for="[2001:db8::1]:4711"`).
fn forwarded_element_address(element: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(element).ok()?;
    let value = text.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.eq_ignore_ascii_case("for").then_some(value)
    })?;
    let value = value.trim().trim_matches('"');
    let unbracketed = value
        .strip_prefix('[')
        .and_then(|v| v.split_once(']'))
        .map(|(ip, _)| ip);
    match unbracketed {
        Some(ip) => ip.parse().ok(),
        None => forwarded_for_address(value.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(name: &'static str, values: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(name, HeaderValue::from_static(value));
        }
        map
    }

    fn proxies(header: ForwardingHeader) -> TrustedProxies {
        TrustedProxies::new(&["10.0.0.0/8".into(), "::1".into()], header).unwrap()
    }

    #[test]
    fn the_client_is_the_rightmost_address_no_trusted_proxy_owns() {
        let trusted = proxies(ForwardingHeader::XForwardedFor);
        let proxy: SocketAddr = "10.0.0.2:40000".parse().unwrap();
        let client = |values: &[&'static str]| {
            trusted
                .client(proxy, &headers("x-forwarded-for", values))
                .to_string()
        };
        assert_eq!(client(&["203.0.113.7"]), "203.0.113.7");
        // The client's own forged entry is left of what the proxies appended.
        assert_eq!(client(&["6.6.6.6, 203.0.113.7"]), "203.0.113.7");
        assert_eq!(client(&["6.6.6.6, 203.0.113.7, 10.1.2.3"]), "203.0.113.7");
        assert_eq!(client(&["6.6.6.6", "203.0.113.7, 10.1.2.3"]), "203.0.113.7");
        assert_eq!(client(&["[2001:db8::7]:5000"]), "2001:db8::7");
        // Every hop trusted: the leftmost; no header, or nothing usable: the proxy itself.
        assert_eq!(client(&["10.9.9.9, 10.1.2.3"]), "10.9.9.9");
        assert_eq!(client(&[]), "10.0.0.2:40000");
        assert_eq!(client(&["unknown"]), "10.0.0.2:40000");
        assert_eq!(client(&["6.6.6.6, unknown, 10.1.2.3"]), "10.1.2.3");
        // A long header costs at most MAX_FORWARDED_HOPS hops.
        let long: &'static str = Box::leak(vec!["10.1.1.1"; 1000].join(",").into_boxed_str());
        assert_eq!(client(&["6.6.6.6", long]), "10.1.1.1");
    }

    #[test]
    fn an_untrusted_peers_headers_are_ignored() {
        let trusted = proxies(ForwardingHeader::XForwardedFor);
        let peer: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        let spoofed = headers("x-forwarded-for", &["203.0.113.7"]);
        assert_eq!(trusted.client(peer, &spoofed), ClientAddress::Peer(peer));
        assert_eq!(
            TrustedProxies::default().client("10.0.0.2:1".parse().unwrap(), &spoofed),
            ClientAddress::Peer("10.0.0.2:1".parse().unwrap())
        );
        // A mapped IPv4 peer is the IPv4 address its CIDR names.
        assert!(trusted.trusts("::ffff:10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn forwarded_names_the_client_in_for() {
        let trusted = proxies(ForwardingHeader::Forwarded);
        let proxy: SocketAddr = "[::1]:40000".parse().unwrap();
        let client = |values: &[&'static str]| {
            trusted
                .client(proxy, &headers("forwarded", values))
                .to_string()
        };
        assert_eq!(client(&["for=203.0.113.7;proto=https"]), "203.0.113.7");
        assert_eq!(
            client(&["for=6.6.6.6, for=\"[2001:db8::7]:4711\";by=10.0.0.2"]),
            "2001:db8::7"
        );
        assert_eq!(client(&["For=203.0.113.7:80, for=10.1.2.3"]), "203.0.113.7");
        assert_eq!(client(&["for=_hidden"]), "[::1]:40000");
        // In this mode X-Forwarded-For is the client's own say.
        let xff = headers("x-forwarded-for", &["6.6.6.6"]);
        assert_eq!(trusted.client(proxy, &xff), ClientAddress::Peer(proxy));
    }

    #[test]
    fn a_trusted_proxy_is_an_address_or_a_cidr() {
        assert!(
            TrustedProxies::new(&["192.168.0.0/16".into()], ForwardingHeader::default()).is_ok()
        );
        assert!(TrustedProxies::new(&["127.0.0.1".into()], ForwardingHeader::default()).is_ok());
        let err = TrustedProxies::new(&["nginx".into()], ForwardingHeader::default()).unwrap_err();
        assert!(
            err.contains("--trusted-proxy") && err.contains("nginx"),
            "{err}"
        );
    }
}
