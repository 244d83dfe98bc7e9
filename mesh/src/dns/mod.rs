//! The mesh's embedded DNS server.
//!
//! Names in the cluster domain (`svc.ns.svc.cluster.local`, SRV names of named ports,
//! headless endpoints' names, PTR of cluster IPs) are answered from the node's store
//! snapshot, read once per question, and never forwarded: an unknown cluster name gets
//! NXDOMAIN with the zone's SOA at once, which also ends the search-path expansions
//! Kubernetes clients make. Everything else goes to the upstream resolvers, cached, with
//! a timeout and a bound on queries in flight (past it: SERVFAIL at once). UDP and TCP;
//! answers too large for a datagram are sent with TC set.
//!
//! Pieces: [`config`] (settings, resolv.conf), `cluster` (the authoritative zone over a
//! snapshot), `forward` (upstreams and cache), [`handler`] (bytes in, bytes out),
//! `answers` (encoded cluster answers by question: the fast path), `server` (sockets),
//! `batch` (Linux `recvmmsg`/`sendmmsg`) and [`stats`] (counters). Messages are decoded
//! and encoded with hickory-proto and hickory-server's request and response types.
//!
//! This module reads the store and never writes to it; it binds only the addresses it
//! is given and sends only to the configured (or resolv.conf's) upstreams.

mod answers;
#[cfg(target_os = "linux")]
mod batch;
mod cluster;
pub mod config;
mod forward;
pub mod handler;
mod server;
pub mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use causeway_edge_core::metamanager::MetaManager;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use config::{DEFAULT_CLUSTER_DOMAIN, DnsConfig, SYSTEM_RESOLV_CONF, parse_resolv_conf};
pub use handler::{DnsHandler, Transport, UDP_PAYLOAD_LIMIT};
pub use stats::DnsStats;

/// How long [`DnsServer::shutdown`] waits for listeners before it aborts them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Why the DNS server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A listen address could not be bound.
    #[error("cannot bind DNS over {transport} on {addr}: {source}")]
    Bind {
        /// `UDP` or `TCP`.
        transport: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The cluster domain is not a domain name.
    #[error("invalid cluster domain {domain:?}: {reason}")]
    ClusterDomain {
        /// The domain as configured.
        domain: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another setting is out of range.
    #[error("invalid DNS settings: {0}")]
    Config(String),
}

/// What the admin endpoint shows of the DNS server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DnsStatus {
    /// The bound UDP addresses.
    pub udp: Vec<SocketAddr>,
    /// The bound TCP addresses.
    pub tcp: Vec<SocketAddr>,
    /// The upstreams in use, in order.
    pub upstreams: Vec<SocketAddr>,
    /// The counters.
    pub stats: DnsStats,
}

/// A running DNS server. It serves until [`DnsServer::shutdown`] or until dropped
/// (dropping aborts its tasks and closes its sockets at once).
#[derive(Debug)]
pub struct DnsServer {
    handler: Arc<DnsHandler>,
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl DnsServer {
    /// Binds every listen address of `config` and starts answering from `store`.
    ///
    /// When `config.upstreams` is empty the nameservers of `config.resolv_conf` are
    /// used; upstreams that are this server's own addresses are left out, so a node
    /// whose resolv.conf names the mesh does not forward to itself.
    pub async fn start(mut config: DnsConfig, store: MetaManager) -> Result<Self, DnsError> {
        if config.udp.is_empty() && config.tcp.is_empty() {
            return Err(DnsError::Config("no UDP or TCP listen address".to_string()));
        }
        if config.upstreams.is_empty()
            && let Some(path) = &config.resolv_conf
        {
            match tokio::fs::read_to_string(path).await {
                Ok(text) => config.upstreams = parse_resolv_conf(&text),
                Err(error) => tracing::warn!(
                    path = %path.display(),
                    %error,
                    "cannot read resolv.conf; names outside the cluster will get SERVFAIL"
                ),
            }
        }
        // Validate before binding anything.
        DnsHandler::new(&config, store.clone())?;

        let mut udp_sockets = Vec::new();
        let mut tcp_listeners = Vec::new();
        let mut tcp_pending = config.tcp.clone();
        for addr in &config.udp {
            let paired = (addr.port() == 0)
                .then(|| tcp_pending.iter().position(|t| t == addr))
                .flatten();
            match paired {
                Some(index) => {
                    tcp_pending.remove(index);
                    let (udp, tcp) = server::bind_pair(*addr).await?;
                    udp_sockets.push(udp);
                    tcp_listeners.push(tcp);
                }
                None => udp_sockets.push(server::bind_udp(*addr).await?),
            }
        }
        for addr in tcp_pending {
            tcp_listeners.push(server::bind_tcp(addr).await?);
        }
        let udp: Vec<SocketAddr> = udp_sockets
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect();
        let tcp: Vec<SocketAddr> = tcp_listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();

        let own = |upstream: &SocketAddr| {
            udp.iter().any(|bound| {
                bound == upstream
                    || (bound.ip().is_unspecified()
                        && bound.port() == upstream.port()
                        && upstream.ip().is_loopback())
            })
        };
        let (kept, dropped): (Vec<SocketAddr>, Vec<SocketAddr>) =
            config.upstreams.iter().copied().partition(|u| !own(u));
        if !dropped.is_empty() {
            tracing::warn!(upstreams = ?dropped, "upstreams that are this DNS server left out");
        }
        config.upstreams = kept;
        let handler = Arc::new(DnsHandler::new(&config, store)?);

        let (stop, stopped) = watch::channel(false);
        let limits = server::Limits::new();
        let mut tasks = JoinSet::new();
        for socket in udp_sockets {
            tasks.spawn(server::serve_udp(
                socket,
                Arc::clone(&handler),
                limits.clone(),
                stopped.clone(),
            ));
        }
        for listener in tcp_listeners {
            tasks.spawn(server::serve_tcp(
                listener,
                Arc::clone(&handler),
                limits.clone(),
                stopped.clone(),
            ));
        }
        tracing::info!(
            udp = ?udp,
            tcp = ?tcp,
            upstreams = ?handler.upstreams(),
            cluster_domain = %config.cluster_domain,
            "DNS server listening"
        );
        if handler.upstreams().is_empty() {
            tracing::warn!("no DNS upstreams: names outside the cluster will get SERVFAIL");
        }
        Ok(Self {
            handler,
            udp,
            tcp,
            stop,
            tasks,
        })
    }

    /// The bound UDP addresses (with the ports picked for port 0).
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp
    }

    /// The bound TCP addresses.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }

    /// The upstreams in use, in the order they are tried.
    pub fn upstreams(&self) -> &[SocketAddr] {
        self.handler.upstreams()
    }

    /// The counters so far.
    pub fn stats(&self) -> DnsStats {
        self.handler.stats()
    }

    /// Addresses, upstreams and counters, for the admin endpoint.
    pub fn status(&self) -> DnsStatus {
        DnsStatus {
            udp: self.udp.clone(),
            tcp: self.tcp.clone(),
            upstreams: self.upstreams().to_vec(),
            stats: self.stats(),
        }
    }

    /// The handler the listeners use, to answer messages that arrive some other way.
    pub fn handler(&self) -> Arc<DnsHandler> {
        Arc::clone(&self.handler)
    }

    /// Stops listening, lets answers in progress finish for a moment, and closes every
    /// socket.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let tasks = &mut self.tasks;
        let finished = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tracing::warn!("DNS listeners did not stop in time; aborting them");
        }
        self.tasks.abort_all();
        tracing::info!(udp = ?self.udp, tcp = ?self.tcp, "DNS server stopped");
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.tasks.abort_all();
    }
}
