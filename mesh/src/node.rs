//! One mesh node: the store, its source, the tunnel endpoint, the policies, the inbound
//! and outbound proxy, the access listeners and the admin endpoint, wired together and
//! stopped together.
//!
//! The only place that wires the parts; the parts do not know of each other beyond the
//! handles given here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use causeway_edge_core::metamanager::{MetaManager, Snapshot, StoreError};
use causeway_edge_core::source::{ManifestDirectory, ManifestStatus, ObjectSource};
use causeway_tunnels::{IdentitySource, NodeName, Tunnel, TunnelConfig, TunnelError};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::access::{self, Access};
use crate::admin::{self, AdminView};
use crate::directory::SnapshotDirectory;
use crate::dns::{DnsConfig, DnsError, DnsHandler, DnsServer};
use crate::endpoint_guard::EndpointGuard;
use crate::http::destination::Destination;
use crate::http::proxy::HttpProxy;
use crate::inbound::Inbound;
use crate::metrics::{self, DnsAnswers, MeshMetrics, ReadAtScrape};
use crate::outbound::{Outbound, OutboundConfig};
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
    /// Let the HTTP proxy, SOCKS5, per-Service listeners and admin listen on addresses
    /// other than loopback. They authenticate nobody: anyone who reaches them reaches
    /// every Service of the mesh (and the admin endpoint, the whole snapshot).
    pub allow_remote_clients: bool,
    /// Dial endpoints on loopback addresses: for pods that run on loopback (the quick
    /// start, tests). Off, an EndpointSlice cannot point the mesh at the node's own
    /// loopback services.
    pub allow_loopback_endpoints: bool,
    /// The header that tells an HTTP application who called it.
    pub forwarded: crate::http::headers::ForwardedHeader,
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
            allow_remote_clients: false,
            allow_loopback_endpoints: false,
            forwarded: crate::http::headers::ForwardedHeader::default(),
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
    /// A client listener would listen beyond loopback without being allowed to.
    #[error(
        "{what} would listen on {addr}, which is not loopback: it authenticates nobody, so anyone who reaches it reaches every Service of the mesh; listen on 127.0.0.1, or allow it explicitly (--allow-remote-clients)"
    )]
    NotLoopback {
        /// The address.
        addr: SocketAddr,
        /// Which listener.
        what: &'static str,
    },
    /// The store could not be opened on a blocking thread.
    #[error("cannot open the node store: {0}")]
    Blocking(String),
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

/// A running node. Dropping it without [`MeshNode::stop`] aborts its tasks.
#[derive(Debug)]
pub struct MeshNode {
    name: String,
    store: MetaManager,
    tunnel: Tunnel,
    addresses: NodeAddresses,
    dns: Option<DnsServer>,
    shutdown: watch::Sender<bool>,
    tasks: NodeTasks,
    manifests: Option<Arc<std::sync::Mutex<ManifestStatus>>>,
}

impl Drop for MeshNode {
    fn drop(&mut self) {
        // The tasks hold the node's parts (and through them the task set itself):
        // aborting them breaks that cycle and lets every socket go.
        let _ = self.shutdown.send(true);
        self.tasks.abort();
    }
}

async fn bind(
    addr: SocketAddr,
    what: &'static str,
    allow_remote: bool,
) -> Result<TcpListener, NodeError> {
    if !allow_remote && !addr.ip().is_loopback() {
        return Err(NodeError::NotLoopback { addr, what });
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Listen { addr, what, source })
}

async fn bind_optional(
    addr: Option<SocketAddr>,
    what: &'static str,
    allow_remote: bool,
) -> Result<Option<TcpListener>, NodeError> {
    match addr {
        Some(addr) => Ok(Some(bind(addr, what, allow_remote).await?)),
        None => Ok(None),
    }
}

/// How often the node forgets state of Services that are gone and rate-limit buckets
/// nobody used lately.
const HOUSEKEEPING: Duration = Duration::from_secs(30);

impl MeshNode {
    /// Starts a node. Every socket is bound before anything runs; when one cannot be,
    /// the node lets go of what it had and says which.
    pub async fn start(config: NodeConfig) -> Result<Self, NodeError> {
        let node = NodeName::new(&config.name).map_err(|e| NodeError::Name(e.to_string()))?;
        tokio::fs::create_dir_all(&config.state_dir)
            .await
            .map_err(|source| NodeError::StateDir {
                path: config.state_dir.clone(),
                source,
            })?;
        let db = config.state_dir.join("node.db");
        let store = tokio::task::spawn_blocking(move || MetaManager::open(&db))
            .await
            .map_err(|e| NodeError::Blocking(e.to_string()))??;

        // Client listeners first: nothing runs until all are bound.
        let remote = config.allow_remote_clients;
        let mut service_listeners = Vec::new();
        for service in &config.service_listeners {
            let listener = bind(service.listen, "a service listener", remote).await?;
            service_listeners.push((listener, service.clone()));
        }
        let http_proxy = bind_optional(config.http_proxy, "the HTTP proxy", remote).await?;
        let socks = bind_optional(config.socks, "SOCKS5", remote).await?;
        let admin = bind_optional(config.admin, "the admin endpoint", remote).await?;
        if let Some(dns) = &config.dns
            && !remote
            && let Some(addr) = dns
                .udp
                .iter()
                .chain(&dns.tcp)
                .find(|a| !a.ip().is_loopback())
        {
            return Err(NodeError::NotLoopback {
                addr: *addr,
                what: "the DNS server",
            });
        }
        let directory = Arc::new(SnapshotDirectory::new(store.clone()));
        let (tunnel, incoming) =
            Tunnel::bind(config.tunnel.clone(), config.identity, directory).await?;
        let dns = match config.dns {
            Some(dns) => match DnsServer::start(dns, store.clone()).await {
                Ok(server) => Some(server),
                Err(error) => {
                    tunnel.close().await;
                    return Err(error.into());
                }
            },
            None => None,
        };
        let local = |l: &Option<TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
        let addresses = NodeAddresses {
            tunnel: Some(tunnel.local_addr()),
            http_proxy: local(&http_proxy),
            socks: local(&socks),
            admin: local(&admin),
            dns: dns.as_ref().and_then(|d| d.udp_addrs().first().copied()),
            services: service_listeners
                .iter()
                .filter_map(|(l, _)| l.local_addr().ok())
                .collect(),
        };
        let mut own = vec![tunnel.local_addr()];
        own.extend(addresses.http_proxy);
        own.extend(addresses.socks);
        own.extend(addresses.admin);
        own.extend(addresses.services.iter().copied());
        if let Some(dns) = &dns {
            own.extend(dns.udp_addrs().iter().chain(dns.tcp_addrs()).copied());
        }
        let guard = EndpointGuard::new(config.allow_loopback_endpoints, own);

        // Everything is bound: from here on nothing fails, and everything runs as one
        // of the node's tasks.
        let (shutdown, stopped) = watch::channel(false);
        let tasks = NodeTasks::default();
        let mut manifest_status = None;
        if let Some(dir) = &config.manifests {
            let source = ManifestDirectory::new(dir, config.manifests_interval)
                .with_check(Arc::new(PolicyCheck));
            manifest_status = Some(source.status());
            tasks.spawn(source.run(store.clone(), stopped.clone()));
        }
        // Compiling policies is CPU work: off the async threads. The first set is in
        // force before any listener serves.
        let policies = Arc::new(Policies::default());
        let compile = |policies: &Arc<Policies>, snapshot: Arc<Snapshot>| {
            let policies = Arc::clone(policies);
            tokio::task::spawn_blocking(move || policies.update(&snapshot))
        };
        let mut snapshots = store.watch();
        let _ = compile(&policies, store.snapshot()).await;
        {
            let policies = Arc::clone(&policies);
            tasks.spawn(async move {
                while snapshots.changed().await.is_ok() {
                    let snapshot = snapshots.borrow_and_update().clone();
                    let _ = compile(&policies, snapshot).await;
                }
            });
        }
        let metrics = Arc::new(MeshMetrics::default());
        let limiters = Arc::new(Limiters::default());
        let outbound = Arc::new(Outbound::new(OutboundConfig {
            node,
            site: config.site.clone(),
            store: store.clone(),
            policies: Arc::clone(&policies),
            limiters: Arc::clone(&limiters),
            tunnel: tunnel.clone(),
            metrics: Arc::clone(&metrics),
            guard: guard.clone(),
        }));
        let http = Arc::new(HttpProxy::new(
            Arc::clone(&outbound),
            config.forwarded,
            tasks.clone(),
        ));
        let inbound = Arc::new(Inbound {
            node: config.name.clone(),
            store: store.clone(),
            policies: Arc::clone(&policies),
            limiters: Arc::clone(&limiters),
            metrics: Arc::clone(&metrics),
            guard,
            buffer: config.buffer,
            udp_idle: Duration::from_secs(60),
            tasks: tasks.clone(),
            http: Destination {
                proxy: Arc::clone(&http),
                policies: Arc::clone(&policies),
                limiters: Arc::clone(&limiters),
            },
        });
        tasks.spawn(inbound.serve(incoming));
        tasks.spawn(housekeeping(
            config.name.clone(),
            config.site.clone(),
            store.clone(),
            Arc::clone(&outbound),
            Arc::clone(&http),
            limiters,
        ));
        let access = Arc::new(Access {
            rules: config.rules.clone(),
            store: store.clone(),
            outbound,
            metrics: Arc::clone(&metrics),
            buffer: config.buffer,
            tasks: tasks.clone(),
            http,
        });
        for (listener, service) in service_listeners {
            tasks.spawn(access::serve_service(
                listener,
                Arc::clone(&access),
                service,
            ));
        }
        if let Some(listener) = http_proxy {
            tasks.spawn(access::http::serve(listener, Arc::clone(&access)));
        }
        if let Some(listener) = socks {
            tasks.spawn(access::serve_socks(listener, Arc::clone(&access)));
        }
        if let Some(listener) = admin {
            let registry = admin_registry(&metrics, &tunnel, dns.as_ref());
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
                manifests: manifest_status.clone(),
            });
            tasks.spawn(admin::serve(listener, view, tasks.clone()));
        }
        tracing::info!(node = %config.name, site = ?config.site, tunnel = ?addresses.tunnel, http_proxy = ?addresses.http_proxy, socks = ?addresses.socks, admin = ?addresses.admin, dns = ?addresses.dns, "node up");
        Ok(Self {
            name: config.name,
            store,
            tunnel,
            addresses,
            dns,
            shutdown,
            tasks,
            manifests: manifest_status,
        })
    }

    /// Whether the node has its objects: its manifests source was read at least once,
    /// or it has no source and serves from its store.
    pub fn is_ready(&self) -> bool {
        is_ready(self.manifests.as_ref())
    }

    /// Waits until [`MeshNode::is_ready`], at most `limit`; returns whether it is.
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.is_ready() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
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
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        self.tasks.stop().await;
        if let Some(dns) = self.dns.take() {
            dns.shutdown().await;
        }
        self.tunnel.close().await;
        tracing::info!(node = %self.name, "node stopped");
    }
}

fn is_ready(manifests: Option<&Arc<std::sync::Mutex<ManifestStatus>>>) -> bool {
    match manifests {
        Some(status) => status.lock().is_ok_and(|s| s.reads > 0),
        None => true,
    }
}

/// The admin endpoint's metrics: the proxy's own, the tunnel's and the DNS server's
/// counters read at scrape time.
fn admin_registry(
    metrics: &Arc<MeshMetrics>,
    tunnel: &Tunnel,
    dns: Option<&DnsServer>,
) -> Registry {
    let mut registry = metrics::registry(metrics);
    let tunnel = tunnel.clone();
    registry.register_collector(Box::new(ReadAtScrape::new("tunnel", move || {
        let m = tunnel.metrics();
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
    if let Some(dns) = dns {
        let handler = dns.handler();
        registry.register_collector(Box::new(DnsAnswers::new(move || handler.stats())));
    }
    registry
}

/// Now and then: forget the state of Service ports that are gone and rate-limit
/// buckets nobody used lately; say once when the configured site disagrees with the
/// node's own Node object.
async fn housekeeping(
    name: String,
    site: Option<String>,
    store: MetaManager,
    outbound: Arc<Outbound>,
    http: Arc<HttpProxy>,
    limiters: Arc<Limiters>,
) {
    let mut warned = false;
    let mut tick = tokio::time::interval(HOUSEKEEPING);
    loop {
        tick.tick().await;
        let snapshot = store.snapshot();
        outbound.prune(&snapshot);
        let live = |label: &str| {
            crate::inbound::parse_label(label).is_some_and(|(namespace, service, _)| {
                snapshot.service(namespace, service).is_some()
            })
        };
        limiters.prune(live);
        http.prune(live);
        let labelled = snapshot.node(&name).and_then(|n| n.site.clone());
        if !warned
            && let (Some(configured), Some(labelled)) = (&site, &labelled)
            && configured != labelled
        {
            tracing::warn!(node = %name, configured = %configured, node_label = %labelled, "the configured site differs from the node's causeway.dev/site label; locality uses the configured one");
            warned = true;
        }
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
    /// Ready once the node has its objects: read from its manifests source at least
    /// once, or — without a source — from its store.
    fn ready(&self) -> bool {
        is_ready(self.manifests.as_ref())
    }

    fn metrics(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    fn config_dump(&self) -> String {
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
        // Serialized straight from the snapshot's views: no JSON tree of the whole
        // snapshot is built (for thousands of Services that tree, once built, stays
        // resident in the allocator).
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Dump<'a> {
            node: &'a str,
            site: &'a Option<String>,
            snapshot_version: u64,
            ready: bool,
            services: Vec<&'a causeway_edge_core::metamanager::ServiceView>,
            nodes: Vec<&'a causeway_edge_core::metamanager::NodeView>,
            policies: Vec<serde_json::Value>,
            policy_problems: Vec<String>,
            links: Vec<serde_json::Value>,
            manifests: Option<serde_json::Value>,
            dns: Option<serde_json::Value>,
        }
        let dump = Dump {
            node: &self.name,
            site: &self.site,
            snapshot_version: snapshot.version,
            ready: self.ready(),
            services,
            nodes,
            policies,
            policy_problems: self.policies.problems(),
            links,
            manifests,
            dns: self.dns.as_ref().map(|(handler, udp, tcp)| serde_json::json!({
                "udp": udp, "tcp": tcp, "upstreams": handler.upstreams(), "stats": handler.stats(),
            })),
        };
        serde_json::to_string_pretty(&dump).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
