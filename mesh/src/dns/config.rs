//! The DNS server's settings and where its upstreams come from.
//!
//! Plain data and one pure parser: nothing here binds a socket or reads a file on an
//! async thread (the server reads `resolv.conf` through `tokio::fs`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The default cluster domain, as Kubernetes uses it.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// Where the system's resolvers are listed.
pub const SYSTEM_RESOLV_CONF: &str = "/etc/resolv.conf";

/// How the embedded DNS server listens, answers and forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// UDP listen addresses. Port 0 picks a free port; [`super::DnsServer::udp_addrs`]
    /// reports the bound ones. A TCP address equal to a UDP address with port 0 is bound
    /// on the same port as that UDP socket, so a client can retry a truncated answer over
    /// TCP at the address it asked.
    pub udp: Vec<SocketAddr>,
    /// TCP listen addresses (port 0 allowed, as for `udp`).
    pub tcp: Vec<SocketAddr>,
    /// The cluster domain whose names are answered from the node's snapshot and never
    /// forwarded.
    pub cluster_domain: String,
    /// Where names outside the cluster go. When empty, the nameservers of `resolv_conf`
    /// are read at start; when that names none either, forwarded queries get SERVFAIL.
    pub upstreams: Vec<SocketAddr>,
    /// The resolv.conf to read when `upstreams` is empty; `None` reads nothing.
    pub resolv_conf: Option<PathBuf>,
    /// How long one upstream gets to answer one query before the next is tried.
    pub upstream_timeout: Duration,
    /// Upstream queries in flight at once; past this, a query that would be forwarded
    /// gets SERVFAIL at once rather than a place in a queue.
    pub max_upstream_in_flight: usize,
    /// Upstream answers kept (0 turns the cache off).
    pub cache_size: usize,
    /// The TTL, in seconds, of answers from the cluster (and of their negative answers).
    pub cluster_ttl: u32,
}

impl DnsConfig {
    /// The defaults, forwarding to `upstreams` (empty: read `/etc/resolv.conf` at start).
    pub fn with_upstreams(upstreams: Vec<SocketAddr>) -> Self {
        let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53);
        Self {
            udp: vec![local],
            tcp: vec![local],
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_string(),
            upstreams,
            resolv_conf: Some(PathBuf::from(SYSTEM_RESOLV_CONF)),
            upstream_timeout: Duration::from_secs(2),
            max_upstream_in_flight: 256,
            cache_size: 10_000,
            cluster_ttl: 5,
        }
    }
}

impl Default for DnsConfig {
    /// Listens on 127.0.0.1:53 (UDP and TCP), answers `cluster.local`, and forwards to
    /// the nameservers in `/etc/resolv.conf` (read when the server starts).
    fn default() -> Self {
        Self::with_upstreams(Vec::new())
    }
}

/// The nameservers a resolv.conf lists, on port 53, in order. Lines that do not parse
/// (scoped IPv6 addresses, typos) are skipped.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(address) = words.next() else {
            continue;
        };
        let address = address
            .split_once(['#', ';'])
            .map_or(address, |(before, _)| before);
        if let Ok(ip) = address.parse::<IpAddr>() {
            let upstream = SocketAddr::new(ip, 53);
            if !out.contains(&upstream) {
                out.push(upstream);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_in_order() {
        let text = "\
# generated
search default.svc.cluster.local svc.cluster.local
nameserver 192.0.2.53
;nameserver 192.0.2.54
nameserver   2001:db8::53
nameserver fe80::1%eth0
nameserver not-an-ip
nameserver 192.0.2.53
options ndots:5
";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:53".parse().unwrap(),
            ]
        );
        assert!(parse_resolv_conf("").is_empty());
    }
}
