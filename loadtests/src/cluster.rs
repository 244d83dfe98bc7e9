//! A whole Causeway cluster on loopback, from a [`Topology`]: a node CA and one identity
//! per node, the Kubernetes manifests every node loads (Nodes with their site and tunnel
//! address, a Service, an EndpointSlice and Pods per app, the policies), the echo pods,
//! and one full mesh node per topology node, each with its own store, tunnel endpoint,
//! DNS server, HTTP proxy, SOCKS5 listener and admin endpoint.
//!
//! Nodes can be stopped (with their pods, as a machine that goes down) and started
//! again from their state directory, with or without the manifests source. Everything
//! listens on loopback; nothing is sent anywhere else.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use causeway_mesh::dns::DnsConfig;
use causeway_mesh::node::{MeshNode, NodeAddresses, NodeConfig, NodeError};
use causeway_tunnels::{
    CertificateAuthority, IdentityFiles, IdentitySource, NodeName, RelayPeer, Validity,
};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::echo;
use crate::topology::{
    ADMIN_OFFSET, DNS_OFFSET, HTTP_PROXY_OFFSET, PlannedNode, SOCKS_OFFSET, TUNNEL_OFFSET, Topology,
};

/// Why the cluster could not start or change.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Certificates could not be made.
    #[error("cannot issue the identity of {node}: {message}")]
    Identity {
        /// The node.
        node: String,
        /// What failed.
        message: String,
    },
    /// A pod could not listen.
    #[error("cannot start pod {pod} on {addr}: {source}")]
    Pod {
        /// The pod.
        pod: String,
        /// Its address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A node failed to start.
    #[error("node {node} failed to start: {source}")]
    Node {
        /// The node.
        node: String,
        /// Why.
        source: NodeError,
    },
    /// No such node in the topology.
    #[error("no node named {0} in the topology")]
    UnknownNode(String),
    /// A port of the plan is taken.
    #[error("cannot reserve a free UDP port on loopback: {0}")]
    Port(std::io::Error),
}

/// How the cluster's tunnels and policies pace themselves: short enough that a node
/// going down is noticed within a second or two on loopback.
fn tunnel_config(listen: SocketAddr) -> causeway_tunnels::TunnelConfig {
    let mut config = causeway_tunnels::TunnelConfig::new(listen);
    config.timeouts.connect = Duration::from_secs(2);
    config.timeouts.keep_alive = Duration::from_millis(500);
    config.timeouts.link_dead = Duration::from_secs(3);
    config.timeouts.backoff_max = Duration::from_secs(2);
    config
}

/// One node of the cluster: its plan, its addresses, and whether it runs.
#[derive(Debug)]
pub struct ClusterNode {
    /// Its place in the topology.
    pub plan: PlannedNode,
    /// Where it listens (fixed at the first start, kept across restarts).
    pub addresses: NodeAddresses,
    state_dir: PathBuf,
    identity: IdentityFiles,
    running: Option<MeshNode>,
    pods: Vec<JoinHandle<()>>,
}

impl ClusterNode {
    /// Whether it runs.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The running mesh node.
    pub fn mesh(&self) -> Option<&MeshNode> {
        self.running.as_ref()
    }

    /// The HTTP proxy's address.
    pub fn http_proxy(&self) -> SocketAddr {
        self.addresses
            .http_proxy
            .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    }
}

/// A pod of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPlan {
    /// `app-node`.
    pub name: String,
    /// Its app.
    pub app: String,
    /// Its namespace.
    pub namespace: String,
    /// Its node.
    pub node: String,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// A running cluster.
#[derive(Debug)]
pub struct LoopbackCluster {
    topology: Topology,
    root: PathBuf,
    manifests: PathBuf,
    nodes: BTreeMap<String, ClusterNode>,
    order: Vec<String>,
    pods: Vec<PodPlan>,
}

impl LoopbackCluster {
    /// Writes identities and manifests under `root` and starts every node and pod.
    pub async fn start(topology: Topology, root: &Path) -> Result<Self, ClusterError> {
        let planned = topology.nodes();
        let write = |path: &Path, text: &str| {
            std::fs::write(path, text).map_err(|source| ClusterError::Write {
                path: path.to_path_buf(),
                source,
            })
        };
        let mkdir = |path: &Path| {
            std::fs::create_dir_all(path).map_err(|source| ClusterError::Write {
                path: path.to_path_buf(),
                source,
            })
        };
        mkdir(root)?;
        let ca = CertificateAuthority::generate().map_err(|e| ClusterError::Identity {
            node: "the CA".into(),
            message: e.to_string(),
        })?;
        let tunnel_ports = reserve_udp_ports(&topology, &planned)?;
        let mut nodes = BTreeMap::new();
        for node in &planned {
            let dir = root.join(&node.name);
            let identity_dir = dir.join("identity");
            mkdir(&identity_dir)?;
            let issue_error =
                |e: causeway_tunnels::identity::IdentityError| ClusterError::Identity {
                    node: node.name.clone(),
                    message: e.to_string(),
                };
            let name = NodeName::new(&node.name).map_err(issue_error)?;
            let credentials = ca
                .issue(
                    &name,
                    &node.site,
                    Validity::starting_now(Duration::from_secs(30 * 24 * 3600)),
                )
                .map_err(issue_error)?;
            let files = IdentityFiles::in_dir(&identity_dir);
            credentials.write(&files).map_err(issue_error)?;
            let addresses = NodeAddresses {
                tunnel: Some(tunnel_ports[node.index]),
                http_proxy: Some(topology.port(HTTP_PROXY_OFFSET, node.index)),
                socks: Some(topology.port(SOCKS_OFFSET, node.index)),
                admin: Some(topology.port(ADMIN_OFFSET, node.index)),
                dns: Some(topology.port(DNS_OFFSET, node.index)),
                services: Vec::new(),
            };
            nodes.insert(
                node.name.clone(),
                ClusterNode {
                    plan: node.clone(),
                    addresses,
                    state_dir: dir.join("state"),
                    identity: files,
                    running: None,
                    pods: Vec::new(),
                },
            );
        }
        let pods = pod_plan(&topology, &planned, topology.pod_network());
        let manifests = root.join("manifests");
        mkdir(&manifests)?;
        write(
            &manifests.join("cluster.yaml"),
            &render_manifests(&topology, &planned, &pods, &nodes),
        )?;
        let mut cluster = Self {
            topology,
            root: root.to_path_buf(),
            manifests,
            order: planned.iter().map(|n| n.name.clone()).collect(),
            nodes,
            pods,
        };
        for name in cluster.order.clone() {
            cluster.start_node(&name, true).await?;
        }
        Ok(cluster)
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Where the cluster keeps its files.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The manifests directory every node loads.
    pub fn manifests_dir(&self) -> &Path {
        &self.manifests
    }

    /// The nodes, in topology order.
    pub fn nodes(&self) -> impl Iterator<Item = &ClusterNode> {
        self.order.iter().filter_map(|n| self.nodes.get(n))
    }

    /// One node.
    pub fn node(&self, name: &str) -> Result<&ClusterNode, ClusterError> {
        self.nodes
            .get(name)
            .ok_or_else(|| ClusterError::UnknownNode(name.to_string()))
    }

    /// The pods.
    pub fn pods(&self) -> &[PodPlan] {
        &self.pods
    }

    /// Starts `name` and its pods; with `with_manifests` false the node has no source
    /// and serves from what its store kept.
    pub async fn start_node(
        &mut self,
        name: &str,
        with_manifests: bool,
    ) -> Result<(), ClusterError> {
        let relays: Vec<RelayPeer> = self
            .nodes()
            .filter(|n| n.plan.relay && n.plan.name != name)
            .filter_map(|n| {
                Some(RelayPeer {
                    node: NodeName::new(&n.plan.name).ok()?,
                    addresses: n.addresses.tunnel.into_iter().collect(),
                })
            })
            .collect();
        let domain = self.topology.cluster_domain.clone();
        let manifests = self.manifests.clone();
        let pods: Vec<PodPlan> = self
            .pods
            .iter()
            .filter(|p| p.node == name)
            .cloned()
            .collect();
        let node = self
            .nodes
            .get_mut(name)
            .ok_or_else(|| ClusterError::UnknownNode(name.to_string()))?;
        if node.running.is_some() {
            return Ok(());
        }
        for pod in &pods {
            let identity = echo::Identity {
                pod: pod.name.clone(),
                node: node.plan.name.clone(),
                site: node.plan.site.clone(),
            };
            let (_, task) =
                echo::spawn(pod.addr, identity)
                    .await
                    .map_err(|source| ClusterError::Pod {
                        pod: pod.name.clone(),
                        addr: pod.addr,
                        source,
                    })?;
            node.pods.push(task);
        }
        let tunnel_addr = node
            .addresses
            .tunnel
            .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let node_ref = &*node;
        let build = || {
            let mut config = NodeConfig::new(
                &node_ref.plan.name,
                node_ref.state_dir.clone(),
                IdentitySource::Files(node_ref.identity.clone()),
                tunnel_addr,
            );
            config.site = Some(node_ref.plan.site.clone());
            config.manifests = with_manifests.then(|| manifests.clone());
            config.manifests_interval = Duration::from_secs(1);
            config.tunnel = tunnel_config(tunnel_addr);
            config.tunnel.relays = relays.clone();
            config.tunnel.serve_as_relay = node_ref.plan.relay;
            config.http_proxy = node_ref.addresses.http_proxy;
            config.socks = node_ref.addresses.socks;
            config.admin = node_ref.addresses.admin;
            config.rules.cluster_domain = domain.clone();
            // The quick start's pods live on loopback addresses.
            config.allow_loopback_endpoints = true;
            if let Some(dns) = node_ref.addresses.dns {
                config.dns = Some(DnsConfig {
                    udp: vec![dns],
                    tcp: vec![dns],
                    cluster_domain: domain.clone(),
                    // The quick start answers cluster names only: nothing leaves loopback.
                    upstreams: Vec::new(),
                    resolv_conf: None,
                    ..DnsConfig::default()
                });
            }
            config
        };
        let started = match start_when_ports_free(build, name).await {
            Ok(started) => started,
            Err(error) => {
                // A node that did not start takes its pods down with it.
                for pod in node.pods.drain(..) {
                    pod.abort();
                }
                return Err(error);
            }
        };
        if !started.wait_ready(Duration::from_secs(10)).await {
            tracing::warn!(node = %name, "the node has not read its manifests within 10 s");
        }
        // Keep the ports the node got for its next start.
        node.addresses = started.addresses().clone();
        node.running = Some(started);
        Ok(())
    }

    /// Stops `name` and its pods, as a machine that goes down.
    pub async fn stop_node(&mut self, name: &str) -> Result<(), ClusterError> {
        let node = self
            .nodes
            .get_mut(name)
            .ok_or_else(|| ClusterError::UnknownNode(name.to_string()))?;
        for pod in node.pods.drain(..) {
            pod.abort();
            let _ = pod.await;
        }
        if let Some(mesh) = node.running.take() {
            mesh.stop().await;
        }
        Ok(())
    }

    /// Stops everything, every node at once.
    pub async fn shutdown(mut self) {
        let mut stopping = tokio::task::JoinSet::new();
        for node in self.nodes.values_mut() {
            for pod in node.pods.drain(..) {
                pod.abort();
            }
            if let Some(mesh) = node.running.take() {
                stopping.spawn(mesh.stop());
            }
        }
        while stopping.join_next().await.is_some() {}
    }

    /// What runs where and how to call it, for people.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<10} {:<10} {:<16} {:<16} {:<16} ADMIN",
            "NODE", "SITE", "HTTP PROXY", "SOCKS5", "DNS"
        );
        let show = |a: Option<SocketAddr>| a.map_or("-".to_string(), |a| a.to_string());
        for node in self.nodes() {
            let _ = writeln!(
                out,
                "{:<10} {:<10} {:<16} {:<16} {:<16} {}{}",
                node.plan.name,
                node.plan.site,
                show(node.addresses.http_proxy),
                show(node.addresses.socks),
                show(node.addresses.dns),
                show(node.addresses.admin),
                if node.is_running() { "" } else { "  (stopped)" }
            );
        }
        let _ = writeln!(
            out,
            "\nServices (each pod answers with its pod, node and site):"
        );
        for app in &self.topology.apps {
            let service = format!("{}.{}:{}", app.name, app.namespace, app.port);
            let _ = writeln!(out, "  {service:<24} pods on {}", app.nodes.join(", "));
        }
        if let (Some(first), Some(app)) = (self.nodes().next(), self.topology.apps.first()) {
            let port = if app.port == 80 {
                String::new()
            } else {
                format!(":{}", app.port)
            };
            let _ = writeln!(out, "\nTry:");
            let _ = writeln!(
                out,
                "  curl -x http://{} http://{}.{}{port}/",
                show(first.addresses.http_proxy),
                app.name,
                app.namespace
            );
            let _ = writeln!(
                out,
                "  curl --socks5-hostname {} http://{}.{}{port}/",
                show(first.addresses.socks),
                app.name,
                app.namespace
            );
            if let Some(dns) = first.addresses.dns {
                let _ = writeln!(
                    out,
                    "  dig @{} -p {} {}.{}.svc.{}",
                    dns.ip(),
                    dns.port(),
                    app.name,
                    app.namespace,
                    self.topology.cluster_domain
                );
            }
            let _ = writeln!(
                out,
                "  curl http://{}/config_dump    curl http://{}/metrics",
                show(first.addresses.admin),
                show(first.addresses.admin)
            );
        }
        let _ = writeln!(
            out,
            "\nState, identities and manifests: {}",
            self.root.display()
        );
        out
    }
}

/// Starts a node; a restart in this process may find its UDP port still held for a
/// moment by the stopped node's closing connections (they drain for a few round trips),
/// so a port in use is waited for, up to five seconds. A node in its own process never
/// meets this: the old process is gone.
async fn start_when_ports_free(
    build: impl Fn() -> NodeConfig,
    name: &str,
) -> Result<MeshNode, ClusterError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match MeshNode::start(build()).await {
            Ok(node) => return Ok(node),
            Err(NodeError::Tunnel(causeway_tunnels::TunnelError::Bind { source, .. }))
                if source.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(source) => {
                return Err(ClusterError::Node {
                    node: name.to_string(),
                    source,
                });
            }
        }
    }
}

/// Tunnel ports, fixed before anything starts because every Node object names its
/// node's. With basePort 0, free ports are found by binding and releasing them.
fn reserve_udp_ports(
    topology: &Topology,
    planned: &[PlannedNode],
) -> Result<Vec<SocketAddr>, ClusterError> {
    if topology.base_port != 0 {
        return Ok(planned
            .iter()
            .map(|n| topology.port(TUNNEL_OFFSET, n.index))
            .collect());
    }
    let sockets = planned
        .iter()
        .map(|_| std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ClusterError::Port)?;
    sockets
        .iter()
        .map(|s| s.local_addr().map_err(ClusterError::Port))
        .collect()
}

fn pod_plan(topology: &Topology, planned: &[PlannedNode], network: u8) -> Vec<PodPlan> {
    let mut pods = Vec::new();
    for (a, app) in topology.apps.iter().enumerate() {
        for node in planned.iter().filter(|n| app.nodes.contains(&n.name)) {
            pods.push(PodPlan {
                name: format!("{}-{}", app.name, node.name),
                app: app.name.clone(),
                namespace: app.namespace.clone(),
                node: node.name.clone(),
                addr: SocketAddr::from((Topology::pod_ip(network, a, node.index), app.target_port)),
            });
        }
    }
    pods
}

/// The manifests as JSON documents (JSON is YAML), one per object.
fn render_manifests(
    topology: &Topology,
    planned: &[PlannedNode],
    pods: &[PodPlan],
    nodes: &BTreeMap<String, ClusterNode>,
) -> String {
    let mut objects = Vec::new();
    for node in planned {
        let tunnel = nodes
            .get(&node.name)
            .and_then(|n| n.addresses.tunnel)
            .map(|a| a.to_string())
            .unwrap_or_default();
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": node.name,
                "labels": {causeway_api::labels::SITE_LABEL: node.site},
                "annotations": {causeway_api::labels::TUNNEL_ADDRESS_ANNOTATION: tunnel},
            },
        }));
    }
    for (a, app) in topology.apps.iter().enumerate() {
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": app.name, "namespace": app.namespace},
            "spec": {
                "clusterIP": Topology::cluster_ip(a).to_string(),
                "ports": [{"name": "http", "port": app.port, "targetPort": app.target_port, "protocol": "TCP", "appProtocol": "http"}],
            },
        }));
        let app_pods: Vec<&PodPlan> = pods
            .iter()
            .filter(|p| p.app == app.name && p.namespace == app.namespace)
            .collect();
        let endpoints: Vec<serde_json::Value> = app_pods
            .iter()
            .map(|p| {
                json!({
                    "addresses": [p.addr.ip().to_string()],
                    "nodeName": p.node,
                    "conditions": {"ready": true},
                    "targetRef": {"kind": "Pod", "name": p.name, "namespace": p.namespace},
                })
            })
            .collect();
        objects.push(json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": format!("{}-pods", app.name),
                "namespace": app.namespace,
                "labels": {causeway_api::labels::SERVICE_NAME_LABEL: app.name},
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "http", "port": app.target_port, "protocol": "TCP"}],
        }));
        for pod in app_pods {
            objects.push(json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": {"app": app.name}},
                "spec": {"nodeName": pod.node, "containers": [{"name": "echo", "image": "causeway app echo"}]},
                "status": {"podIP": pod.addr.ip().to_string(), "phase": "Running"},
            }));
        }
    }
    objects.extend(topology.policies.iter().cloned());
    let mut out = String::from(
        "# Written by `causeway up` from the topology; every node loads this directory.\n",
    );
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_json::to_string_pretty(&object).unwrap_or_default());
        out.push('\n');
    }
    out
}
