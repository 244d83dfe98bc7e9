//! The source side: carrying a client's connection to an endpoint of a Service port.
//!
//! For each connection: the Service port's plan (from the policies in force), the
//! source-side QPS limit if the plan puts it here, then an endpoint chosen by the
//! balancer among ready endpoints, nearest first. An endpoint on this node is dialled
//! directly; one on another node is reached through a stream on the tunnel link to that
//! node, whose mesh applies the destination-side policy and dials it. A failed connect is
//! retried on the next endpoint — never after bytes have flowed. Connect attempts are
//! bounded by the plan's connect timeout.
//!
//! It reads the store, the policies and the tunnel's view of peers; it never writes to the
//! store, and dials only endpoints the node's `EndpointGuard` allows.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use causeway_edge_core::metamanager::{MetaManager, ServiceView, Snapshot};
use causeway_policies::ServicePolicy;
use causeway_policies::plan::{EnforcementPoint, HashKey, LoadBalancer};
use causeway_tunnels::{
    NodeName, OpenError, ProxyTarget, Reachability, Request, Status, Tunnel, TunnelStream,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::balance::{self, CallerLocation, Candidate, PickContext, ServiceBalancer};
use crate::endpoint_guard::EndpointGuard;
use crate::metrics::{ConnectionLabels, MeshMetrics};
use crate::outlier::OutlierDetector;
use crate::policy_view::Policies;
use crate::ratelimit::Limiters;
use crate::resolve::ServiceTarget;

/// Why one endpoint could not be reached.
enum DialFailure {
    /// The destination node refused for its rate limit.
    RateLimited(String),
    /// Anything else: try the next endpoint.
    Failed(String),
}

/// The wait a destination's refusal names (`retry in 120 ms`), or 1 ms.
fn retry_after_ms(message: &str) -> u128 {
    message
        .split_whitespace()
        .find_map(|w| w.parse::<u128>().ok())
        .unwrap_or(1)
}

/// How long a stream to a remote endpoint may take to be accepted: the connect
/// timeout, plus the queue wait when the destination queues over its QPS limit (else
/// the source would give up on a connection the destination is about to admit).
fn remote_budget(plan: &ServicePolicy) -> std::time::Duration {
    match &plan.rate_limit {
        Some(limit) if limit.enforce_at == EnforcementPoint::Destination => match limit.on_limit {
            causeway_policies::plan::OnLimit::Queue { max_wait } => {
                plan.timeouts.connect + max_wait
            }
            causeway_policies::plan::OnLimit::Reject => plan.timeouts.connect,
        },
        _ => plan.timeouts.connect,
    }
}

/// The most endpoints one connection tries.
const MAX_ATTEMPTS: usize = 3;

/// Why a connection could not be carried.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The host is not a Service port of the mesh.
    #[error("{host} is not a service of this mesh")]
    NotAService {
        /// What was asked for.
        host: String,
    },
    /// The Service exists but has no such port.
    #[error("{service} has no port {port}; its ports: {ports}")]
    NoSuchPort {
        /// `namespace/name`.
        service: String,
        /// The port asked for.
        port: u16,
        /// The ports it has.
        ports: String,
    },
    /// The Service has no ready endpoint (answered at once, not after a wait).
    #[error(
        "{service} has no ready endpoints ({endpoints} listed); check that its pods are running and ready and that its EndpointSlices reached this node"
    )]
    NoReadyEndpoints {
        /// `namespace/name:port`.
        service: String,
        /// Endpoints listed, ready or not.
        endpoints: usize,
    },
    /// Over the Service's QPS limit.
    #[error("{service} is over its rate limit; retry in {retry_after_ms} ms")]
    RateLimited {
        /// `namespace/name:port`.
        service: String,
        /// When a slot frees.
        retry_after_ms: u128,
    },
    /// Every endpoint tried failed to connect.
    #[error("{service}: no endpoint could be reached ({})", attempts.join("; "))]
    AllFailed {
        /// `namespace/name:port`.
        service: String,
        /// What each attempt said.
        attempts: Vec<String>,
    },
}

/// A connection to an endpoint: direct, or a tunnel stream to its node.
#[derive(Debug)]
pub enum Upstream {
    /// An endpoint on this node.
    Local(TcpStream),
    /// An endpoint on another node.
    Tunnel(TunnelStream),
}

impl AsyncRead for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Local(s) => Pin::new(s).poll_read(cx, buf),
            Upstream::Tunnel(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Local(s) => Pin::new(s).poll_write(cx, buf),
            Upstream::Tunnel(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Local(s) => Pin::new(s).poll_flush(cx),
            Upstream::Tunnel(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Local(s) => Pin::new(s).poll_shutdown(cx),
            Upstream::Tunnel(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Keeps a connection counted (in flight for the balancer, open in the metrics) until
/// dropped.
#[derive(Debug)]
pub struct ConnectionGuard {
    _pick: balance::Pick,
    active: Option<(Arc<MeshMetrics>, ConnectionLabels)>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some((metrics, labels)) = &self.active {
            metrics.active.get_or_create(labels).dec();
        }
    }
}

/// A carried connection.
#[derive(Debug)]
pub struct Connection {
    /// The stream to the endpoint.
    pub upstream: Upstream,
    /// The endpoint.
    pub endpoint: SocketAddr,
    /// The endpoint's node, or `None` for this node.
    pub remote_node: Option<String>,
    /// `namespace/name:port`.
    pub label: String,
    /// Close after this long with no bytes either way (the plan's idle timeout).
    pub idle: Option<std::time::Duration>,
    /// How long a whole request may take (the plan's request timeout), for L7 paths.
    pub request_timeout: Option<std::time::Duration>,
    /// Hold for as long as the connection is in use.
    pub guard: ConnectionGuard,
}

/// What the connector keeps per Service port: the candidates of the Service as last
/// seen, the nodes they live on, and the balancer and outlier detector of the plan.
#[derive(Debug)]
struct PortState {
    service: Arc<ServiceView>,
    plan: Arc<ServicePolicy>,
    candidates: Vec<Candidate>,
    remote_nodes: Vec<NodeName>,
    balancer: Arc<ServiceBalancer>,
    outliers: Option<Arc<OutlierDetector>>,
}

/// A Service port as one connection or request sees it (see [`Outbound::route`]).
#[derive(Debug)]
pub struct Route {
    /// `namespace/name:port`.
    pub label: String,
    /// The plan in force.
    pub plan: Arc<ServicePolicy>,
    state: Arc<PortState>,
    masked: Option<Vec<Candidate>>,
    ejections: Option<crate::outlier::Ejections>,
    site: Option<Arc<str>>,
    ready: usize,
}

impl Route {
    fn candidates(&self) -> &[Candidate] {
        self.masked.as_deref().unwrap_or(&self.state.candidates)
    }

    /// Ready endpoints the Service lists.
    pub fn ready(&self) -> usize {
        self.ready
    }
}

/// An endpoint chosen for one connection or request.
#[derive(Debug)]
pub struct Chosen {
    /// The endpoint.
    pub endpoint: SocketAddr,
    /// Its node, or `None` for this node.
    pub remote_node: Option<String>,
    /// Counts the work as in flight on the endpoint until dropped; records latency.
    pub pick: balance::Pick,
}

/// What an [`Outbound`] needs from its node.
#[derive(Debug)]
pub struct OutboundConfig {
    /// This node.
    pub node: NodeName,
    /// This node's site as configured; `None` reads it from the node's own Node object
    /// (label `causeway.dev/site`) in the store, at every connection.
    pub site: Option<String>,
    /// The node store.
    pub store: MetaManager,
    /// The policies in force.
    pub policies: Arc<Policies>,
    /// QPS limiters, shared with the inbound side (a destination limit counts callers on
    /// this node and on others alike).
    pub limiters: Arc<Limiters>,
    /// The tunnel endpoint.
    pub tunnel: Tunnel,
    /// Counters.
    pub metrics: Arc<MeshMetrics>,
    /// Which endpoint addresses may be dialled.
    pub guard: EndpointGuard,
}

/// The connector shared by every listener of a node.
#[derive(Debug)]
pub struct Outbound {
    config: OutboundConfig,
    ports: Mutex<HashMap<String, Arc<PortState>>>,
}

impl Outbound {
    /// A connector for a node.
    pub fn new(config: OutboundConfig) -> Self {
        Self {
            config,
            ports: Mutex::new(HashMap::new()),
        }
    }

    /// The plan in force for `target`.
    pub fn plan(&self, target: &ServiceTarget) -> Arc<ServicePolicy> {
        let service = &target.service;
        Arc::clone(self.config.policies.set().lookup(
            &service.namespace,
            &service.name,
            target.port.port,
        ))
    }

    /// Forgets the state of Service ports the store no longer has, and the limiters'
    /// buckets nobody used lately. Run now and then by the node.
    pub fn prune(&self, snapshot: &Snapshot) {
        if let Ok(mut ports) = self.ports.lock() {
            ports.retain(|_, state| {
                snapshot
                    .service(&state.service.namespace, &state.service.name)
                    .is_some()
            });
        }
    }

    /// This node's site: as configured, else its Node object's label.
    fn site(&self) -> Option<Arc<str>> {
        if let Some(site) = &self.config.site {
            return Some(Arc::from(site.as_str()));
        }
        self.config
            .store
            .snapshot()
            .node(self.config.node.as_str())
            .and_then(|n| n.site.as_deref())
            .map(Arc::from)
    }

    /// The state of a Service port: kept while the Service and the plan are the same
    /// objects, rebuilt when either changes (the balancer keeps its per-endpoint load).
    fn port_state(
        &self,
        target: &ServiceTarget,
        label: &str,
        plan: &Arc<ServicePolicy>,
    ) -> Arc<PortState> {
        let Ok(mut ports) = self.ports.lock() else {
            return Arc::new(self.build_port(target, plan, None));
        };
        if let Some(current) = ports.get(label)
            && Arc::ptr_eq(&current.service, &target.service)
            && Arc::ptr_eq(&current.plan, plan)
        {
            return Arc::clone(current);
        }
        let state = Arc::new(self.build_port(target, plan, ports.get(label).map(|s| s.as_ref())));
        ports.insert(label.to_string(), Arc::clone(&state));
        state
    }

    fn build_port(
        &self,
        target: &ServiceTarget,
        plan: &Arc<ServicePolicy>,
        previous: Option<&PortState>,
    ) -> PortState {
        let candidates: Vec<Candidate> = target
            .service
            .endpoints
            .iter()
            .filter_map(|e| Some(Candidate::from_endpoint(e, e.port_for(&target.port)?)))
            .collect();
        let mut remote_nodes: Vec<NodeName> = Vec::new();
        for candidate in &candidates {
            if let Some(node) = candidate.node.as_deref()
                && node != self.config.node.as_str()
                && !remote_nodes.iter().any(|n| n.as_str() == node)
                && let Ok(name) = NodeName::new(node)
            {
                remote_nodes.push(name);
            }
        }
        let same_plan = previous.is_some_and(|p| Arc::ptr_eq(&p.plan, plan));
        let balancer = match previous {
            Some(p) if same_plan => Arc::clone(&p.balancer),
            Some(p) => Arc::new(p.balancer.replan(&plan.load_balancer, &plan.locality)),
            None => Arc::new(ServiceBalancer::for_policy(plan)),
        };
        let outliers = match (previous, &plan.outlier_detection) {
            (Some(p), Some(detection))
                if p.outliers.as_ref().is_some_and(|o| o.plan() == detection) =>
            {
                let ids: Vec<SocketAddr> = candidates.iter().map(|c| c.id).collect();
                if let Some(outliers) = &p.outliers {
                    outliers.retain(&ids);
                }
                p.outliers.clone()
            }
            (_, Some(detection)) => Some(Arc::new(OutlierDetector::new(detection))),
            (_, None) => None,
        };
        PortState {
            service: Arc::clone(&target.service),
            plan: Arc::clone(plan),
            candidates,
            remote_nodes,
            balancer,
            outliers,
        }
    }

    /// The candidates to pick from: endpoints on nodes the tunnel lost or is failing to
    /// reach count as not ready until the node's next dial is due, and while a dial to it
    /// is under way (one caller probes, the others go elsewhere) — unless that leaves
    /// none, when trying beats refusing.
    fn reachable_candidates<'s>(&self, state: &'s PortState) -> std::borrow::Cow<'s, [Candidate]> {
        let failing: Vec<&NodeName> = state
            .remote_nodes
            .iter()
            .filter(|node| {
                matches!(
                    self.config.tunnel.reachability(node),
                    Reachability::Failing { retry_in, dialling, .. } if dialling || !retry_in.is_zero()
                )
            })
            .collect();
        if failing.is_empty() {
            return std::borrow::Cow::Borrowed(&state.candidates);
        }
        let masked: Vec<Candidate> = state
            .candidates
            .iter()
            .map(|c| {
                let mut c = c.clone();
                if c.node
                    .as_deref()
                    .is_some_and(|n| failing.iter().any(|f| f.as_str() == n))
                {
                    c.ready = false;
                }
                c
            })
            .collect();
        if masked.iter().any(|c| c.ready) {
            std::borrow::Cow::Owned(masked)
        } else {
            std::borrow::Cow::Borrowed(&state.candidates)
        }
    }

    /// The Service port `target` as one connection or request sees it now: its plan,
    /// its candidates with failing nodes masked, who is ejected, and where the caller
    /// is. Refused at once when the Service has no ready endpoint.
    pub fn route(&self, target: &ServiceTarget) -> Result<Route, ConnectError> {
        let label = target.label();
        let plan = self.plan(target);
        let state = self.port_state(target, &label, &plan);
        let ready = state.candidates.iter().filter(|c| c.ready).count();
        if ready == 0 {
            self.config.metrics.error(&label, "no_ready_endpoints");
            return Err(ConnectError::NoReadyEndpoints {
                service: label,
                endpoints: state.candidates.len(),
            });
        }
        let masked = match self.reachable_candidates(&state) {
            std::borrow::Cow::Borrowed(_) => None,
            std::borrow::Cow::Owned(masked) => Some(masked),
        };
        let ejections = state.outliers.as_ref().map(|o| o.view());
        Ok(Route {
            label,
            plan,
            state,
            masked,
            ejections,
            site: self.site(),
            ready,
        })
    }

    /// Chooses an endpoint of `route` not in `excluded`; `hash` is the request's
    /// consistent-hash key when the plan hashes (the client's address when it hashes on
    /// the source IP). `None` when no endpoint is left.
    pub fn choose(
        &self,
        route: &Route,
        client: Option<SocketAddr>,
        hash: Option<u64>,
        excluded: &[SocketAddr],
    ) -> Option<Chosen> {
        let hash = match &route.plan.load_balancer {
            LoadBalancer::ConsistentHash {
                key: HashKey::SourceIp,
                ..
            } => client.map(|c| balance::hash_ip(c.ip())),
            LoadBalancer::ConsistentHash { .. } => hash,
            _ => None,
        };
        let caller = CallerLocation {
            node: Some(self.config.node.as_str()),
            site: route.site.as_deref(),
        };
        let candidates = route.candidates();
        let mut context = PickContext::new(caller).excluding(excluded);
        if let Some(key) = hash {
            context = context.with_hash(key);
        }
        let with_ejections = match &route.ejections {
            Some(ejections) => route
                .state
                .balancer
                .pick(candidates, &context.with_ejections(ejections)),
            None => None,
        };
        // With every healthy endpoint ejected, ejection would take the Service down:
        // ignore it ("panic mode"), as Envoy does.
        let pick = with_ejections.or_else(|| route.state.balancer.pick(candidates, &context))?;
        let remote_node = candidates[pick.index()]
            .node
            .as_deref()
            .filter(|n| *n != self.config.node.as_str())
            .map(str::to_string);
        Some(Chosen {
            endpoint: pick.id(),
            remote_node,
            pick,
        })
    }

    /// Applies the plan's QPS limit to one connection or request about to go to
    /// `chosen`, when this node is where the limit is enforced for it: a source limit
    /// always (callers count it once per request: `first` is whether this is the
    /// request's first try), a destination limit only for endpoints on this node —
    /// callers on other nodes are counted at the destination.
    pub async fn admit(
        &self,
        route: &Route,
        chosen: &Chosen,
        client: Option<SocketAddr>,
        first: bool,
    ) -> Result<(), ConnectError> {
        let Some(limit) = &route.plan.rate_limit else {
            return Ok(());
        };
        let applies = match limit.enforce_at {
            EnforcementPoint::Source => first,
            EnforcementPoint::Destination => chosen.remote_node.is_none(),
        };
        if !applies {
            return Ok(());
        }
        let limiter = self.config.limiters.get(&route.label, limit);
        match limiter.admit(chosen.endpoint, client.map(|c| c.ip())).await {
            Ok(()) => Ok(()),
            Err(limited) => {
                self.config.metrics.error(&route.label, "rate_limited");
                Err(ConnectError::RateLimited {
                    service: route.label.clone(),
                    retry_after_ms: limited.retry_after.as_millis().max(1),
                })
            }
        }
    }

    /// Records how a try to `endpoint` ended, for outlier ejection.
    pub fn record_outcome(&self, route: &Route, endpoint: SocketAddr, failed: bool) {
        if let Some(outliers) = &route.state.outliers {
            if failed {
                if outliers.failure(endpoint, route.ready) {
                    self.config.metrics.error(&route.label, "ejected");
                    tracing::info!(service = %route.label, %endpoint, "ejected an endpoint after consecutive failures");
                }
            } else {
                outliers.success(endpoint);
            }
        }
    }

    /// Whether this node may dial `endpoint` (see [`EndpointGuard`]).
    pub fn check_endpoint(&self, endpoint: SocketAddr) -> Result<(), String> {
        self.config.guard.check(endpoint)
    }

    /// The tunnel endpoint.
    pub fn tunnel(&self) -> &Tunnel {
        &self.config.tunnel
    }

    /// Counters.
    pub fn metrics(&self) -> &Arc<MeshMetrics> {
        &self.config.metrics
    }

    /// Connects a client to an endpoint of `target`; `hash` is the consistent-hash key
    /// of the request (header, cookie or query value) when the plan hashes on one.
    pub async fn connect(
        &self,
        target: &ServiceTarget,
        client: Option<SocketAddr>,
        hash: Option<u64>,
    ) -> Result<Connection, ConnectError> {
        let route = self.route(target)?;
        let label = route.label.clone();
        let plan = Arc::clone(&route.plan);
        let mut excluded: Vec<SocketAddr> = Vec::new();
        let mut attempts = Vec::new();
        while attempts.len() < MAX_ATTEMPTS {
            let Some(mut chosen) = self.choose(&route, client, hash, &excluded) else {
                break;
            };
            self.admit(&route, &chosen, client, attempts.is_empty())
                .await?;
            let endpoint = chosen.endpoint;
            let started = Instant::now();
            let result = match &chosen.remote_node {
                None => self.dial_local(endpoint, &plan).await,
                Some(node) => {
                    let request = Request::ProxyTcp(ProxyTarget {
                        endpoint,
                        service: label.clone(),
                        source: client,
                        source_workload: String::new(),
                    });
                    self.dial_remote(node, request, &plan).await
                }
            };
            match result {
                Ok(upstream) => {
                    chosen.pick.record_success(started.elapsed());
                    self.record_outcome(&route, endpoint, false);
                    let labels = ConnectionLabels {
                        service: label.clone(),
                        endpoint_node: chosen.remote_node.clone().unwrap_or_else(|| "local".into()),
                    };
                    self.config.metrics.connections.get_or_create(&labels).inc();
                    self.config.metrics.active.get_or_create(&labels).inc();
                    return Ok(Connection {
                        upstream,
                        endpoint,
                        remote_node: chosen.remote_node,
                        label,
                        idle: plan.timeouts.idle,
                        request_timeout: plan.timeouts.request,
                        guard: ConnectionGuard {
                            _pick: chosen.pick,
                            active: Some((Arc::clone(&self.config.metrics), labels)),
                        },
                    });
                }
                Err(DialFailure::RateLimited(message)) => {
                    // The destination's limit holds for the Service there; trying
                    // another endpoint would only spread the excess.
                    self.config.metrics.error(&label, "rate_limited");
                    tracing::debug!(service = %label, %endpoint, %message, "rate limited at the destination");
                    return Err(ConnectError::RateLimited {
                        service: label,
                        retry_after_ms: retry_after_ms(&message),
                    });
                }
                Err(DialFailure::Failed(reason)) => {
                    chosen.pick.record_failure();
                    self.record_outcome(&route, endpoint, true);
                    tracing::debug!(service = %label, %endpoint, %reason, "endpoint failed to connect; trying the next");
                    self.config.metrics.error(&label, "connect");
                    attempts.push(format!("{endpoint}: {reason}"));
                    excluded.push(endpoint);
                }
            }
        }
        if attempts.is_empty() {
            self.config.metrics.error(&label, "no_ready_endpoints");
            return Err(ConnectError::NoReadyEndpoints {
                service: label,
                endpoints: route.state.candidates.len(),
            });
        }
        Err(ConnectError::AllFailed {
            service: label,
            attempts,
        })
    }

    async fn dial_local(
        &self,
        endpoint: SocketAddr,
        plan: &ServicePolicy,
    ) -> Result<Upstream, DialFailure> {
        self.config
            .guard
            .check(endpoint)
            .map_err(DialFailure::Failed)?;
        match tokio::time::timeout(plan.timeouts.connect, TcpStream::connect(endpoint)).await {
            Ok(Ok(tcp)) => {
                let _ = tcp.set_nodelay(true);
                Ok(Upstream::Local(tcp))
            }
            Ok(Err(error)) => Err(DialFailure::Failed(error.to_string())),
            Err(_) => Err(DialFailure::Failed(format!(
                "no answer within {:?}",
                plan.timeouts.connect
            ))),
        }
    }

    /// Opens a connection that carries HTTP to `endpoint` of the Service port `label`:
    /// a TCP connection when the endpoint is on this node, else a stream to its node
    /// whose mesh serves HTTP on it and forwards each request (see
    /// [`Request::ProxyHttp`]).
    pub(crate) async fn dial_http(
        &self,
        endpoint: SocketAddr,
        remote_node: Option<&str>,
        label: &str,
        plan: &ServicePolicy,
    ) -> Result<Upstream, String> {
        let result = match remote_node {
            None => self.dial_local(endpoint, plan).await,
            Some(node) => {
                let request = Request::ProxyHttp(ProxyTarget {
                    endpoint,
                    service: label.to_string(),
                    source: None,
                    source_workload: String::new(),
                });
                self.dial_remote(node, request, plan).await
            }
        };
        result.map_err(|failure| match failure {
            DialFailure::RateLimited(message) | DialFailure::Failed(message) => message,
        })
    }

    async fn dial_remote(
        &self,
        node: &str,
        request: Request,
        plan: &ServicePolicy,
    ) -> Result<Upstream, DialFailure> {
        let peer = NodeName::new(node).map_err(|e| DialFailure::Failed(e.to_string()))?;
        let opened =
            tokio::time::timeout(remote_budget(plan), self.config.tunnel.open(&peer, request))
                .await;
        match opened {
            Ok(Ok(stream)) => Ok(Upstream::Tunnel(stream)),
            Ok(Err(OpenError::Refused {
                status: Status::RateLimited,
                message,
                ..
            })) => Err(DialFailure::RateLimited(message)),
            Ok(Err(error)) => Err(DialFailure::Failed(error.to_string())),
            Err(_) => Err(DialFailure::Failed(format!(
                "no answer from node {node} within {:?}",
                remote_budget(plan)
            ))),
        }
    }
}
