//! The immutable, indexed view of a node's objects that the hot path reads.
//!
//! Built by the metamanager's writer after every committed batch and swapped in whole;
//! readers hold an `Arc<Snapshot>` and never wait. Indices: Service by name and by
//! cluster IP, each Service with its ports and its endpoints (from EndpointSlices, else
//! Endpoints) joined with node, site, zone and readiness; Nodes with their site and
//! tunnel addresses; Pods by IP; policies as written.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use causeway_api::k8s::{EndpointSlice, Endpoints, IntOrString, Node, Pod, Service};
use causeway_api::labels::{
    DEFAULT_TUNNEL_PORT, SERVICE_NAME_LABEL, SITE_LABEL, TUNNEL_ADDRESS_ANNOTATION, ZONE_LABEL,
};
use causeway_api::{KubeObject, ObjectKey, RawObject};

/// A transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Protocol {
    /// TCP (the Kubernetes default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP (stored, not proxied).
    Sctp,
}

impl Protocol {
    fn parse(text: Option<&str>) -> Self {
        match text {
            Some("UDP") => Protocol::Udp,
            Some("SCTP") => Protocol::Sctp,
            _ => Protocol::Tcp,
        }
    }
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServicePort {
    /// The port's name (required by Kubernetes when a Service has several).
    pub name: Option<String>,
    /// The port clients call.
    pub port: u16,
    /// Its protocol.
    pub protocol: Protocol,
    /// `appProtocol`, which says how to proxy it (`http`, `kubernetes.io/h2c`…).
    pub app_protocol: Option<String>,
    /// `targetPort` as a number, when it is one (used for Endpoints without port names).
    pub target_port: Option<u16>,
}

/// One endpoint of a Service: an address with its ports, where it runs, and whether it
/// is ready.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Endpoint {
    /// The pod's IP.
    pub ip: IpAddr,
    /// Ready for traffic.
    pub ready: bool,
    /// The node it runs on.
    pub node: Option<String>,
    /// The node's site.
    pub site: Option<String>,
    /// The zone.
    pub zone: Option<String>,
    /// The pod, as `namespace/name`.
    pub pod: Option<String>,
    /// Its ports: name, number, protocol.
    pub ports: Vec<EndpointPort>,
}

/// A port of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EndpointPort {
    /// The name, matching a Service port's name.
    pub name: Option<String>,
    /// The number.
    pub port: u16,
    /// The protocol.
    pub protocol: Protocol,
}

impl Endpoint {
    /// The endpoint's port for `service_port`: matched by name (as EndpointSlices are),
    /// else the only port of the protocol, else the Service's numeric target port.
    pub fn port_for(&self, service_port: &ServicePort) -> Option<u16> {
        if let Some(p) = self
            .ports
            .iter()
            .find(|p| p.name == service_port.name && p.protocol == service_port.protocol)
        {
            return Some(p.port);
        }
        let same: Vec<&EndpointPort> = self
            .ports
            .iter()
            .filter(|p| p.protocol == service_port.protocol)
            .collect();
        match same.as_slice() {
            [only] => Some(only.port),
            _ => service_port.target_port,
        }
    }
}

/// A Service with its endpoints.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ServiceView {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// Its cluster IPs (one per family); empty for a headless Service.
    pub cluster_ips: Vec<IpAddr>,
    /// Whether it is headless (`clusterIP: None`): DNS answers with endpoint IPs.
    pub headless: bool,
    /// Its ports.
    pub ports: Vec<ServicePort>,
    /// Its endpoints, ready or not.
    pub endpoints: Vec<Endpoint>,
}

impl ServiceView {
    /// The port numbered `port` of `protocol`.
    pub fn port(&self, port: u16, protocol: Protocol) -> Option<&ServicePort> {
        self.ports
            .iter()
            .find(|p| p.port == port && p.protocol == protocol)
    }

    /// The port named `name`.
    pub fn port_named(&self, name: &str) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.name.as_deref() == Some(name))
    }
}

/// A Node as the mesh needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeView {
    /// The node's name.
    pub name: String,
    /// Its site (label `causeway.dev/site`).
    pub site: Option<String>,
    /// Its zone.
    pub zone: Option<String>,
    /// Where its tunnel endpoint listens.
    pub tunnel_addresses: Vec<SocketAddr>,
}

/// A Pod, for telling who a connection comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PodView {
    /// `namespace/name`.
    pub name: String,
    /// Its node.
    pub node: Option<String>,
}

/// Everything a node holds, indexed.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Counts committed batches since the store opened; a new snapshot has a higher one.
    pub version: u64,
    objects: BTreeMap<ObjectKey, Arc<KubeObject>>,
    /// By namespace, then name: looked up with borrowed `&str`s, no key built per call.
    services: HashMap<String, HashMap<String, Arc<ServiceView>>>,
    by_cluster_ip: HashMap<IpAddr, Arc<ServiceView>>,
    nodes: HashMap<String, NodeView>,
    pods: HashMap<IpAddr, PodView>,
    policies: Vec<RawObject>,
}

impl Snapshot {
    /// Indexes `objects`.
    pub fn build(version: u64, objects: BTreeMap<ObjectKey, Arc<KubeObject>>) -> Self {
        let mut nodes = HashMap::new();
        let mut pods_by_name: HashMap<(String, String), &Pod> = HashMap::new();
        let mut pods = HashMap::new();
        let mut policies = Vec::new();
        let mut service_objects = Vec::new();
        let mut slices: HashMap<(String, String), Vec<&EndpointSlice>> = HashMap::new();
        let mut endpoints_objects: HashMap<(String, String), &Endpoints> = HashMap::new();
        for (key, object) in &objects {
            let namespace = key.namespace.clone().unwrap_or_default();
            match &**object {
                KubeObject::Node(node) => {
                    let view = node_view(node);
                    nodes.insert(view.name.clone(), view);
                }
                KubeObject::Pod(pod) => {
                    pods_by_name.insert((namespace.clone(), key.name.clone()), pod);
                    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
                    for ip in pod_ips(pod) {
                        pods.insert(
                            ip,
                            PodView {
                                name: format!("{namespace}/{}", key.name),
                                node: node.clone(),
                            },
                        );
                    }
                }
                KubeObject::Policy(raw) => policies.push(raw.clone()),
                KubeObject::Service(service) => {
                    service_objects.push((namespace, key.name.clone(), service))
                }
                KubeObject::EndpointSlice(slice) => {
                    if let Some(service) = slice
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(SERVICE_NAME_LABEL))
                    {
                        slices
                            .entry((namespace, service.clone()))
                            .or_default()
                            .push(slice);
                    }
                }
                KubeObject::Endpoints(endpoints) => {
                    endpoints_objects.insert((namespace, key.name.clone()), endpoints);
                }
            }
        }
        let mut services: HashMap<String, HashMap<String, Arc<ServiceView>>> = HashMap::new();
        let mut by_cluster_ip = HashMap::new();
        for (namespace, name, service) in service_objects {
            let id = (namespace.clone(), name.clone());
            let joined = Joiner {
                nodes: &nodes,
                pods: &pods_by_name,
            };
            let endpoints = match slices.get(&id) {
                Some(slices) => slices
                    .iter()
                    .flat_map(|s| joined.slice_endpoints(&namespace, s))
                    .collect(),
                None => endpoints_objects
                    .get(&id)
                    .map(|e| joined.legacy_endpoints(&namespace, e))
                    .unwrap_or_default(),
            };
            let view = Arc::new(service_view(namespace, name, service, endpoints));
            for ip in &view.cluster_ips {
                by_cluster_ip.insert(*ip, Arc::clone(&view));
            }
            let (namespace, name) = id;
            services.entry(namespace).or_default().insert(name, view);
        }
        Self {
            version,
            objects,
            services,
            by_cluster_ip,
            nodes,
            pods,
            policies,
        }
    }

    /// The Service `namespace/name`.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&Arc<ServiceView>> {
        self.services.get(namespace)?.get(name)
    }

    /// The Service whose cluster IP is `ip`.
    pub fn service_by_ip(&self, ip: IpAddr) -> Option<&Arc<ServiceView>> {
        self.by_cluster_ip.get(&ip)
    }

    /// Every Service.
    pub fn services(&self) -> impl Iterator<Item = &Arc<ServiceView>> {
        self.services.values().flat_map(HashMap::values)
    }

    /// The Node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeView> {
        self.nodes.get(name)
    }

    /// Every Node.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeView> {
        self.nodes.values()
    }

    /// The Pod with IP `ip`.
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&PodView> {
        self.pods.get(&ip)
    }

    /// The policies, as written.
    pub fn policies(&self) -> &[RawObject] {
        &self.policies
    }

    /// Every object, by key.
    pub fn objects(&self) -> &BTreeMap<ObjectKey, Arc<KubeObject>> {
        &self.objects
    }
}

fn node_view(node: &Node) -> NodeView {
    let labels = node.metadata.labels.as_ref();
    let label = |name: &str| labels.and_then(|l| l.get(name)).cloned();
    let annotated: Vec<SocketAddr> = node
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TUNNEL_ADDRESS_ANNOTATION))
        .map(|text| {
            text.split(',')
                .filter_map(|a| a.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let tunnel_addresses = if annotated.is_empty() {
        node.status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .map(|addresses| {
                addresses
                    .iter()
                    .filter(|a| a.type_ == "InternalIP")
                    .filter_map(|a| a.address.parse::<IpAddr>().ok())
                    .map(|ip| SocketAddr::new(ip, DEFAULT_TUNNEL_PORT))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        annotated
    };
    NodeView {
        name: node.metadata.name.clone().unwrap_or_default(),
        site: label(SITE_LABEL),
        zone: label(ZONE_LABEL),
        tunnel_addresses,
    }
}

fn pod_ips(pod: &Pod) -> Vec<IpAddr> {
    let status = pod.status.as_ref();
    let mut ips: Vec<IpAddr> = status
        .and_then(|s| s.pod_ips.as_ref())
        .map(|ips| ips.iter().filter_map(|p| p.ip.parse().ok()).collect())
        .unwrap_or_default();
    if let Some(ip) = status
        .and_then(|s| s.pod_ip.as_ref())
        .and_then(|ip| ip.parse().ok())
        && !ips.contains(&ip)
    {
        ips.push(ip);
    }
    ips
}

fn service_view(
    namespace: String,
    name: String,
    service: &Service,
    endpoints: Vec<Endpoint>,
) -> ServiceView {
    let spec = service.spec.as_ref();
    let mut texts: Vec<String> = spec.and_then(|s| s.cluster_ips.clone()).unwrap_or_default();
    if let Some(ip) = spec.and_then(|s| s.cluster_ip.clone())
        && !texts.contains(&ip)
    {
        texts.push(ip);
    }
    let headless = texts.iter().any(|t| t == "None");
    let cluster_ips = texts.iter().filter_map(|t| t.parse().ok()).collect();
    let ports = spec
        .and_then(|s| s.ports.as_ref())
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| {
                    Some(ServicePort {
                        name: p.name.clone(),
                        port: u16::try_from(p.port).ok()?,
                        protocol: Protocol::parse(p.protocol.as_deref()),
                        app_protocol: p.app_protocol.clone(),
                        target_port: match &p.target_port {
                            Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
                            Some(IntOrString::String(_)) => None,
                            None => u16::try_from(p.port).ok(),
                        },
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    ServiceView {
        namespace,
        name,
        cluster_ips,
        headless,
        ports,
        endpoints,
    }
}

/// Joins endpoints with their pods and nodes.
struct Joiner<'a> {
    nodes: &'a HashMap<String, NodeView>,
    pods: &'a HashMap<(String, String), &'a Pod>,
}

/// An endpoint as a slice or an Endpoints object writes it, before the join.
struct Written {
    ip: IpAddr,
    ready: bool,
    node: Option<String>,
    zone: Option<String>,
    pod: Option<String>,
}

impl Joiner<'_> {
    fn endpoint(&self, namespace: &str, written: Written, ports: Vec<EndpointPort>) -> Endpoint {
        let Written {
            ip,
            ready,
            node,
            zone,
            pod,
        } = written;
        let node = node.or_else(|| {
            pod.as_ref()
                .and_then(|p| self.pods.get(&(namespace.to_string(), p.clone())))
                .and_then(|p| p.spec.as_ref())
                .and_then(|s| s.node_name.clone())
        });
        let node_view = node.as_ref().and_then(|n| self.nodes.get(n));
        Endpoint {
            ip,
            ready,
            site: node_view.and_then(|n| n.site.clone()),
            zone: zone.or_else(|| node_view.and_then(|n| n.zone.clone())),
            node,
            pod: pod.map(|p| format!("{namespace}/{p}")),
            ports,
        }
    }

    fn slice_endpoints(&self, namespace: &str, slice: &EndpointSlice) -> Vec<Endpoint> {
        let ports: Vec<EndpointPort> = slice
            .ports
            .as_ref()
            .map(|ports| {
                ports
                    .iter()
                    .filter_map(|p| {
                        Some(EndpointPort {
                            name: p.name.clone(),
                            port: u16::try_from(p.port?).ok()?,
                            protocol: Protocol::parse(p.protocol.as_deref()),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        slice
            .endpoints
            .iter()
            .flatten()
            .flat_map(|e| {
                // Kubernetes: a missing `ready` condition means ready.
                let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                let pod = e
                    .target_ref
                    .as_ref()
                    .filter(|t| t.kind.as_deref() == Some("Pod"))
                    .and_then(|t| t.name.clone());
                e.addresses
                    .iter()
                    .filter_map(|a| a.parse::<IpAddr>().ok())
                    .map(|ip| {
                        self.endpoint(
                            namespace,
                            Written {
                                ip,
                                ready,
                                node: e.node_name.clone(),
                                zone: e.zone.clone(),
                                pod: pod.clone(),
                            },
                            ports.clone(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn legacy_endpoints(&self, namespace: &str, endpoints: &Endpoints) -> Vec<Endpoint> {
        let mut out = Vec::new();
        for subset in endpoints.subsets.iter().flatten() {
            let ports: Vec<EndpointPort> = subset
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    Some(EndpointPort {
                        name: p.name.clone(),
                        port: u16::try_from(p.port).ok()?,
                        protocol: Protocol::parse(p.protocol.as_deref()),
                    })
                })
                .collect();
            let groups = [
                (subset.addresses.as_ref(), true),
                (subset.not_ready_addresses.as_ref(), false),
            ];
            for (addresses, ready) in groups {
                for a in addresses.into_iter().flatten() {
                    let Ok(ip) = a.ip.parse::<IpAddr>() else {
                        continue;
                    };
                    let pod = a
                        .target_ref
                        .as_ref()
                        .filter(|t| t.kind.as_deref() == Some("Pod"))
                        .and_then(|t| t.name.clone());
                    out.push(self.endpoint(
                        namespace,
                        Written {
                            ip,
                            ready,
                            node: a.node_name.clone(),
                            zone: None,
                            pod,
                        },
                        ports.clone(),
                    ));
                }
            }
        }
        out
    }
}
