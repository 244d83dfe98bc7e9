//! Which endpoint addresses a node will dial for a Service, whoever asks.
//!
//! Endpoints come from EndpointSlices, which in Kubernetes namespace users can write by
//! hand (selectorless Services). Without a check, an EndpointSlice naming
//! `127.0.0.1:15090` would turn the mesh into a way to reach the node's own admin port,
//! or anything else listening on its loopback (the CVE-2021-25740 class). So a node
//! refuses unspecified, multicast, broadcast and link-local addresses, the addresses
//! of its own listeners, and loopback addresses unless it runs pods on loopback (the
//! quick start, tests).
//!
//! This module decides; it dials nothing.

use std::net::{IpAddr, SocketAddr};

/// The rule a node applies to every endpoint before dialling it.
#[derive(Debug, Clone, Default)]
pub struct EndpointGuard {
    allow_loopback: bool,
    own: Vec<SocketAddr>,
}

impl EndpointGuard {
    /// A guard that refuses the node's own listener addresses `own`, and loopback
    /// endpoints unless `allow_loopback`.
    pub fn new(allow_loopback: bool, own: Vec<SocketAddr>) -> Self {
        Self {
            allow_loopback,
            own,
        }
    }

    /// Whether `endpoint` may be dialled; the reason when not.
    pub fn check(&self, endpoint: SocketAddr) -> Result<(), String> {
        let ip = endpoint.ip().to_canonical();
        let bad = match ip {
            IpAddr::V4(v4) => {
                if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() {
                    Some("an unspecified, broadcast or multicast address")
                } else if v4.is_link_local() {
                    Some("a link-local address (cloud metadata services live there)")
                } else {
                    None
                }
            }
            IpAddr::V6(v6) => {
                if v6.is_unspecified() || v6.is_multicast() {
                    Some("an unspecified or multicast address")
                } else if v6.is_unicast_link_local() {
                    Some("a link-local address")
                } else {
                    None
                }
            }
        };
        if let Some(why) = bad {
            return Err(format!(
                "endpoint {endpoint} is {why}; the mesh does not dial it"
            ));
        }
        if ip.is_loopback() && !self.allow_loopback {
            return Err(format!(
                "endpoint {endpoint} is a loopback address; the mesh dials loopback endpoints only on nodes started to run pods on loopback"
            ));
        }
        if self.own.iter().any(|own| {
            own.port() == endpoint.port() && (own.ip() == ip || own.ip().is_unspecified())
        }) {
            return Err(format!(
                "endpoint {endpoint} is one of this node's own listeners; the mesh does not dial it"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn dangerous_addresses_are_refused_with_the_reason() {
        let guard = EndpointGuard::new(false, vec![addr("10.0.0.5:15090")]);
        assert!(guard.check(addr("10.1.2.3:8080")).is_ok());
        assert!(guard.check(addr("[2001:db8::1]:8080")).is_ok());
        for bad in [
            "127.0.0.1:8080",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:8080",
            "0.0.0.0:80",
            "169.254.169.254:80",
            "[fe80::1]:80",
            "224.0.0.1:80",
            "255.255.255.255:80",
            "10.0.0.5:15090",
        ] {
            let error = guard.check(addr(bad)).unwrap_err();
            assert!(
                error.contains("does not dial") || error.contains("loopback"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn loopback_pods_are_allowed_when_the_node_runs_them_but_not_its_listeners() {
        let guard = EndpointGuard::new(true, vec![addr("127.0.0.1:15090"), addr("0.0.0.0:7443")]);
        assert!(guard.check(addr("127.1.1.1:8080")).is_ok());
        assert!(guard.check(addr("127.0.0.1:15090")).is_err());
        assert!(
            guard.check(addr("127.1.1.1:7443")).is_err(),
            "a wildcard listener owns the port on every address"
        );
    }
}
