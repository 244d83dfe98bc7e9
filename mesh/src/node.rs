//! One mesh node: the store, its source, the tunnel endpoint, the policies, the inbound
//! and outbound proxy, the access listeners and the admin endpoint, wired together and
//! stopped together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use causeway_edge_core::metamanager::{MetaManager, StoreError};
use causeway_edge_core::source::{ManifestDirectory, ManifestStatus, ObjectSource};
use causeway_tunnels::{IdentitySource, NodeName, Tunnel, TunnelConfig, TunnelError};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::access::{self, Access};
use crate::admin::{self, AdminView};
use crate::directory::SnapshotDirectory;
use crate::dns::{DnsConfig, DnsError, DnsHandler, DnsServer};
use crate::inbound::Inbound;
use crate::metrics::{self, DnsAnswers, MeshMetrics, ReadAtScrape};
use crate::outbound::Outbound;
use crate::policy_view::{Policies, PolicyCheck};
use crate::ratelimit::Limiters;
use crate::resolve::NameRules;
use crate::tasks::NodeTasks;

/// Everything a node needs to start.
#[derive(Debug)]
pub struct NodeConfig {
    /// The node's name (its certificate must name it too).
    pub name: String,
    /// Its site.
    pub site: Option<String>,
    /// Where the node keeps its store (`node.db`).
    pub state_dir: PathBuf,
    /// Its identity.
    pub identity: IdentitySource,
    /// A manifests directory to load and watch, for a node without a control plane.
    pub manifests: Option<PathBuf>,
    /// How often the manifests directory is checked for changes.
    pub manifests_interval: Duration,
    /// The tunnel endpoint.
    pub tunnel: TunnelConfig,
    /// The HTTP proxy listener (loopback).
    pub http_proxy: Option<SocketAddr>,
    /// The SOCKS5 listener (loopback).
    pub socks: Option<SocketAddr>,
    /// The admin listener (loopback).
    pub admin: Option<SocketAddr>,
    /// Per-Service listeners: plain TCP in, carried to the named Service port.
    pub service_listeners: Vec<ServiceListener>,
    /// The embedded DNS server, if the node runs one.
    pub dns: Option<DnsConfig>,
    /// How names resolve.
    pub rules: NameRules,
    /// Bytes copied at a time per connection.
    pub buffer: usize,
}

impl NodeConfig {
    /// A node named `name` keeping its store in `state_dir`, with `identity`, its tunnel
    /// on `tunnel_listen`, and nothing else listening.
    pub fn new(
        name: &str,
        state_dir: PathBuf,
        identity: IdentitySource,
        tunnel_listen: SocketAddr,
    ) -> Self {
        Self {
            name: name.to_string(),
            site: None,
            state_dir,
            identity,
            manifests: None,
            manifests_interval: Duration::from_secs(2),
            tunnel: TunnelConfig::new(tunnel_listen),
            http_proxy: None,
            socks: None,
            admin: None,
            service_listeners: Vec::new(),
            dns: None,
            rules: NameRules::default(),
            buffer: DEFAULT_BUFFER,
        }
    }
}

/// Bytes copied at a time per connection and direction: large enough for bulk transfer
/// on loopback, allocated once per connection.
pub const DEFAULT_BUFFER: usize = 64 * 1024;

/// A listener for one Service port: every connection to `listen` is carried to it, as
/// a connection to its ClusterIP would be once captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceListener {
    /// `namespace/name`.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The Service port.
    pub port: u16,
    /// Where to listen.
    pub listen: SocketAddr,
}

impl std::str::FromStr for ServiceListener {
    type Err = String;

    /// `namespace/name:port=address:port`, e.g. `demo/echo:80=127.0.0.1:18080`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (service, listen) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}`: expected namespace/name:port=listen-address:port"))?;
        let (namespace, name, port) = crate::inbound::parse_label(service)
            .ok_or_else(|| format!("`{service}`: expected namespace/name:port"))?;
        let listen = listen
            .parse()
            .map_err(|e| format!("`{listen}`: not an address:port ({e})"))?;
        Ok(Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            port,
            listen,
        })
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tunnel endpoint failed.
    #[error(transparent)]
    Tunnel(#[from] TunnelError),
    /// The DNS server failed to start.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// The node name is not valid.
    #[error("{0}")]
    Name(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} for {what}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Which listener.
        what: &'static str,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The state directory could not be made.
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Where a running node listens.
#[derive(Debug, Clone, Default)]
pub struct NodeAddresses {
    /// The tunnel endpoint (UDP).
    pub tunnel: Option<SocketAddr>,
    /// The HTTP proxy.
    pub http_proxy: Option<SocketAddr>,
    /// SOCKS5.
    pub socks: Option<SocketAddr>,
    /// The admin endpoint.
    pub admin: Option<SocketAddr>,
    /// The DNS server (UDP and TCP).
    pub dns: Option<SocketAddr>,
    /// Per-Service listeners, in the order configured.
    pub services: Vec<SocketAddr>,
}

/// A running node.
#[derive(Debug)]
pub struct MeshNode {
    name: String,
    store: MetaManager,
    tunnel: Tunnel,
    addresses: NodeAddresses,
    dns: Option<DnsServer>,
    shutdown: watch::Sender<bool>,
    tasks: NodeTasks,
}

async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Listen { addr, what, source })
}

impl MeshNode {
    /// Starts a node.
    pub async fn start(config: NodeConfig) -> Result<Self, NodeError> {
        let node = NodeName::new(&config.name).map_err(|e| NodeError::Name(e.to_string()))?;
        std::fs::create_dir_all(&config.state_dir).map_err(|source| NodeError::StateDir {
            path: config.state_dir.clone(),
            source,
        })?;
        let store = MetaManager::open(&config.state_dir.join("node.db"))?;
        let (shutdown, stopped) = watch::channel(false);
        let tasks = NodeTasks::default();

        let mut manifest_status = None;
        if let Some(dir) = &config.manifests {
            let source = ManifestDirectory::new(dir, config.manifests_interval)
                .with_check(Arc::new(PolicyCheck));
            manifest_status = Some(source.status());
            tasks.spawn(source.run(store.clone(), stopped.clone()));
        }

        let policies = Arc::new(Policies::default());
        policies.update(&store.snapshot());
        {
            let policies = Arc::clone(&policies);
            let mut snapshots = store.watch();
            tasks.spawn(async move {
                while snapshots.changed().await.is_ok() {
                    let snapshot = snapshots.borrow_and_update().clone();
                    policies.update(&snapshot);
                }
            });
        }

        let directory = Arc::new(SnapshotDirectory::new(store.clone()));
        let (tunnel, incoming) =
            Tunnel::bind(config.tunnel.clone(), config.identity, directory).await?;
        let metrics = Arc::new(MeshMetrics::default());
        let limiters = Arc::new(Limiters::default());
        let connect_timeout = config.tunnel.timeouts.connect;
        let inbound = Arc::new(Inbound {
            node: config.name.clone(),
            store: store.clone(),
            policies: Arc::clone(&policies),
            limiters: Arc::clone(&limiters),
            metrics: Arc::clone(&metrics),
            connect_timeout,
            buffer: config.buffer,
            udp_idle: Duration::from_secs(60),
            tasks: tasks.clone(),
        });
        tasks.spawn(inbound.serve(incoming));

        let outbound = Arc::new(Outbound::new(
            node,
            config.site.clone(),
            Arc::clone(&policies),
            limiters,
            tunnel.clone(),
            Arc::clone(&metrics),
        ));
        let access = Arc::new(Access {
            rules: config.rules.clone(),
            store: store.clone(),
            outbound,
            metrics: Arc::clone(&metrics),
            buffer: config.buffer,
            tasks: tasks.clone(),
        });
        let mut addresses = NodeAddresses {
            tunnel: Some(tunnel.local_addr()),
            ..NodeAddresses::default()
        };
        for service in &config.service_listeners {
            let listener = bind(service.listen, "a service listener").await?;
            addresses
                .services
                .push(listener.local_addr().unwrap_or(service.listen));
            tasks.spawn(access::serve_service(
                listener,
                Arc::clone(&access),
                service.clone(),
            ));
        }
        let dns = match config.dns {
            Some(dns) => Some(DnsServer::start(dns, store.clone()).await?),
            None => None,
        };
        addresses.dns = dns.as_ref().and_then(|d| d.udp_addrs().first().copied());
        if let Some(addr) = config.http_proxy {
            let listener = bind(addr, "the HTTP proxy").await?;
            addresses.http_proxy = listener.local_addr().ok();
            tasks.spawn(access::http::serve(listener, Arc::clone(&access)));
        }
        if let Some(addr) = config.socks {
            let listener = bind(addr, "SOCKS5").await?;
            addresses.socks = listener.local_addr().ok();
            tasks.spawn(access::serve_socks(listener, Arc::clone(&access)));
        }
        if let Some(addr) = config.admin {
            let listener = bind(addr, "the admin endpoint").await?;
            addresses.admin = listener.local_addr().ok();
            let mut registry = metrics::registry(&metrics);
            let tunnel_for_metrics = tunnel.clone();
            registry.register_collector(Box::new(ReadAtScrape::new("tunnel", move || {
                let m = tunnel_for_metrics.metrics();
                vec![
                    (
                        "links_established",
                        "Tunnel links established",
                        m.links_established,
                    ),
                    ("links_closed", "Tunnel links closed", m.links_closed),
                    ("dial_failures", "Tunnel dials that failed", m.dial_failures),
                    ("streams_opened", "Tunnel streams opened", m.streams_opened),
                    (
                        "streams_accepted",
                        "Tunnel streams accepted",
                        m.streams_accepted,
                    ),
                    (
                        "rejected_certificates",
                        "Peer certificates refused",
                        m.rejected_expired
                            + m.rejected_unknown_ca
                            + m.rejected_wrong_node
                            + m.rejected_bad_certificate,
                    ),
                    (
                        "rejected_headers",
                        "Streams refused for a bad header",
                        m.rejected_headers,
                    ),
                    (
                        "relay_sessions",
                        "Sessions relayed by this node",
                        m.relay_sessions,
                    ),
                ]
            })));
            if let Some(dns) = &dns {
                let handler = dns.handler();
                registry.register_collector(Box::new(DnsAnswers::new(move || handler.stats())));
            }
            let view = Arc::new(View {
                dns: dns
                    .as_ref()
                    .map(|d| (d.handler(), d.udp_addrs().to_vec(), d.tcp_addrs().to_vec())),
                name: config.name.clone(),
                site: config.site.clone(),
                store: store.clone(),
                tunnel: tunnel.clone(),
                policies,
                registry,
                manifests: manifest_status,
            });
            tasks.spawn(admin::serve(listener, view, tasks.clone()));
        }
        tracing::info!(node = %config.name, site = ?config.site, tunnel = ?addresses.tunnel, http_proxy = ?addresses.http_proxy, socks = ?addresses.socks, admin = ?addresses.admin, "node up");
        Ok(Self {
            name: config.name,
            store,
            tunnel,
            addresses,
            dns,
            shutdown,
            tasks,
        })
    }

    /// Where the node listens.
    pub fn addresses(&self) -> &NodeAddresses {
        &self.addresses
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's store.
    pub fn store(&self) -> &MetaManager {
        &self.store
    }

    /// The node's tunnel endpoint.
    pub fn tunnel(&self) -> &Tunnel {
        &self.tunnel
    }

    /// Stops every task, closes the links and the listeners.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        self.tasks.stop().await;
        if let Some(dns) = self.dns {
            dns.shutdown().await;
        }
        self.tunnel.close().await;
        tracing::info!(node = %self.name, "node stopped");
    }
}

/// What the admin endpoint reads.
struct View {
    name: String,
    site: Option<String>,
    store: MetaManager,
    tunnel: Tunnel,
    policies: Arc<Policies>,
    registry: Registry,
    manifests: Option<Arc<std::sync::Mutex<ManifestStatus>>>,
    dns: Option<(Arc<DnsHandler>, Vec<SocketAddr>, Vec<SocketAddr>)>,
}

impl AdminView for View {
    fn ready(&self) -> bool {
        true
    }

    fn metrics(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    fn config_dump(&self) -> serde_json::Value {
        let snapshot = self.store.snapshot();
        let services: Vec<_> = snapshot.services().map(|s| s.as_ref()).collect();
        let nodes: Vec<_> = snapshot.nodes().collect();
        let policies: Vec<serde_json::Value> = self
            .policies
            .set()
            .iter()
            .map(|(target, bound)| {
                serde_json::json!({
                    "service": target.service.to_string(),
                    "port": target.port,
                    "origin": bound.origin,
                    "plan": bound.plan.as_ref(),
                })
            })
            .collect();
        let links: Vec<serde_json::Value> = self
            .tunnel
            .links()
            .into_iter()
            .map(|h| {
                serde_json::json!({
                    "peer": h.peer.to_string(),
                    "path": h.path.to_string(),
                    "up": h.up,
                    "rttMicros": h.rtt.as_micros() as u64,
                    "lossPercent": h.loss * 100.0,
                    "openStreams": h.open_streams,
                    "secondsSinceSeen": h.last_seen.elapsed().as_secs(),
                })
            })
            .collect();
        let manifests = self.manifests.as_ref().and_then(|m| m.lock().ok()).map(|m| {
            serde_json::json!({"files": m.files, "objects": m.objects, "reads": m.reads, "problems": m.problems})
        });
        serde_json::json!({
            "node": self.name,
            "site": self.site,
            "snapshotVersion": snapshot.version,
            "services": services,
            "nodes": nodes,
            "policies": policies,
            "policyProblems": self.policies.problems(),
            "links": links,
            "manifests": manifests,
            "dns": self.dns.as_ref().map(|(handler, udp, tcp)| serde_json::json!({
                "udp": udp, "tcp": tcp, "upstreams": handler.upstreams(), "stats": handler.stats(),
            })),
        })
    }
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
