//! The destination side: streams other nodes open to this node's endpoints.
//!
//! It reads the store and the policies, dials only endpoints the guard allows, and
//! never opens streams of its own.
//!
//! A peer asks, over its authenticated link, for a connection to an endpoint. The
//! endpoint must be one of this node's endpoints of the Service the peer names — a peer
//! cannot use a node to reach anything else. The destination-side QPS limit of the
//! Service's policy is applied here, before the application (new connections, for TCP),
//! then the endpoint is dialled and bridged, half-closes and resets carried across.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use causeway_edge_core::metamanager::{MetaManager, Protocol};
use causeway_policies::plan::EnforcementPoint;
use causeway_tunnels::{Incoming, IncomingStream, ProxyTarget, Request, Status};
use tokio::net::TcpStream;

use crate::endpoint_guard::EndpointGuard;
use crate::metrics::{ConnectionLabels, MeshMetrics};
use crate::policy_view::Policies;
use crate::ratelimit::Limiters;

/// Serves the streams peers open to this node.
#[derive(Debug)]
pub struct Inbound {
    /// This node's name.
    pub node: String,
    /// The node store.
    pub store: MetaManager,
    /// The policies in force.
    pub policies: Arc<Policies>,
    /// QPS limiters.
    pub limiters: Arc<Limiters>,
    /// Counters.
    pub metrics: Arc<MeshMetrics>,
    /// Which endpoint addresses may be dialled.
    pub guard: EndpointGuard,
    /// Bytes copied at a time.
    pub buffer: usize,
    /// How long a UDP flow may be quiet before it is closed.
    pub udp_idle: Duration,
    /// The node's tasks: every stream runs as one of them.
    pub tasks: crate::tasks::NodeTasks,
    /// The destination side of per-request HTTP.
    pub http: crate::http::destination::Destination,
}

/// The service label of what was refused before its Service port was known.
pub const REFUSED_LABEL: &str = "-";

/// `namespace/name:port` → its parts.
pub fn parse_label(label: &str) -> Option<(&str, &str, u16)> {
    let (namespace, rest) = label.split_once('/')?;
    let (name, port) = rest.rsplit_once(':')?;
    Some((namespace, name, port.parse().ok()?))
}

impl Inbound {
    /// Serves `incoming` until the tunnel closes.
    pub async fn serve(self: Arc<Self>, mut incoming: Incoming) {
        while let Some(stream) = incoming.accept().await {
            self.tasks.spawn(Arc::clone(&self).handle(stream));
        }
    }

    async fn handle(self: Arc<Self>, stream: IncomingStream) {
        let peer = stream.peer().node.clone();
        match stream.request().clone() {
            Request::ProxyTcp(target) => self.proxy(stream, target, Protocol::Tcp).await,
            Request::UdpFlow(target) => self.proxy(stream, target, Protocol::Udp).await,
            Request::ProxyHttp(target) => self.proxy_http(stream, target).await,
            other => {
                tracing::debug!(%peer, purpose = other.purpose(), "refused a stream this node does not serve");
                stream
                    .refuse(Status::Refused, "this node serves no such stream")
                    .await;
            }
        }
    }

    /// Checks that `target` is this node's endpoint of the named Service port, named
    /// the one way a Service port is named (`namespace/name:port`, port in plain
    /// decimal: limits and metrics are keyed by it, so no other spelling may pass), and
    /// that it is an address the node may dial. Returns the Service port's parts.
    fn check(
        &self,
        target: &ProxyTarget,
        protocol: Protocol,
    ) -> Result<(String, String, u16), String> {
        let (namespace, name, port) = parse_label(&target.service)
            .ok_or_else(|| format!("`{}` does not name a service port", target.service))?;
        if format!("{namespace}/{name}:{port}") != target.service {
            return Err(format!(
                "`{}` is not written as namespace/name:port with the port in plain decimal",
                target.service
            ));
        }
        let snapshot = self.store.snapshot();
        let service = snapshot
            .service(namespace, name)
            .ok_or_else(|| format!("no service {namespace}/{name} on node {}", self.node))?;
        let service_port = service
            .port(port, protocol)
            .ok_or_else(|| format!("service {namespace}/{name} has no port {port}"))?;
        let ours = service.endpoints.iter().any(|e| {
            e.ip == target.endpoint.ip()
                && e.node.as_deref() == Some(self.node.as_str())
                && e.port_for(service_port) == Some(target.endpoint.port())
        });
        if !ours {
            return Err(format!(
                "{} is not an endpoint of {namespace}/{name}:{port} on node {}",
                target.endpoint, self.node
            ));
        }
        self.guard.check(target.endpoint)?;
        Ok((namespace.to_string(), name.to_string(), port))
    }

    async fn proxy(&self, stream: IncomingStream, target: ProxyTarget, protocol: Protocol) {
        let peer = stream.peer().node.clone();
        let (namespace, name, port) = match self.check(&target, protocol) {
            Ok(checked) => checked,
            Err(message) => {
                tracing::warn!(%peer, endpoint = %target.endpoint, %message, "refused a proxy request");
                // Not labelled by the request's own words: a peer must not be able to
                // mint metric series.
                self.metrics.error(REFUSED_LABEL, "not_an_endpoint");
                stream.refuse(Status::NoEndpoint, &message).await;
                return;
            }
        };
        // From here on `target.service` is the canonical label.
        let label = target.service.as_str();
        let plan = Arc::clone(self.policies.set().lookup(&namespace, &name, port));
        if let Some(limit) = &plan.rate_limit
            && limit.enforce_at == EnforcementPoint::Destination
        {
            let limiter = self.limiters.get(label, limit);
            if let Err(limited) = limiter
                .admit(target.endpoint, target.source.map(|s| s.ip()))
                .await
            {
                self.metrics.error(label, "rate_limited");
                let message = format!("retry in {} ms", limited.retry_after.as_millis().max(1));
                stream.refuse(Status::RateLimited, &message).await;
                return;
            }
        }
        let labels = ConnectionLabels {
            service: label.to_string(),
            endpoint_node: "local".into(),
        };
        if protocol == Protocol::Udp {
            self.serve_udp(stream, target.endpoint, &labels).await;
            return;
        }
        let connect_timeout = plan.timeouts.connect;
        let tcp = match tokio::time::timeout(connect_timeout, TcpStream::connect(target.endpoint))
            .await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(error)) => {
                self.metrics.error(label, "connect");
                stream
                    .refuse(Status::NoEndpoint, &format!("{}: {error}", target.endpoint))
                    .await;
                return;
            }
            Err(_) => {
                self.metrics.error(label, "connect");
                stream
                    .refuse(
                        Status::Unreachable,
                        &format!("{}: no answer within {connect_timeout:?}", target.endpoint),
                    )
                    .await;
                return;
            }
        };
        let _ = tcp.set_nodelay(true);
        let Ok(stream) = stream.accept().await else {
            return;
        };
        self.metrics.inbound.get_or_create(&labels).inc();
        tracing::debug!(%peer, endpoint = %target.endpoint, service = %label, "carrying a connection from a peer");
        let _ = stream.bridge_tcp(tcp, self.buffer).await;
    }

    /// A stream that carries HTTP for one of this node's endpoints: checked like a
    /// TCP one, then served per request (the destination QPS limit applies to each
    /// request there, not to the stream).
    async fn proxy_http(&self, stream: IncomingStream, target: ProxyTarget) {
        let peer = stream.peer().node.clone();
        let (namespace, name, port) = match self.check(&target, Protocol::Tcp) {
            Ok(checked) => checked,
            Err(message) => {
                tracing::warn!(%peer, endpoint = %target.endpoint, %message, "refused an HTTP stream");
                self.metrics.error(REFUSED_LABEL, "not_an_endpoint");
                stream.refuse(Status::NoEndpoint, &message).await;
                return;
            }
        };
        let Ok(stream) = stream.accept().await else {
            return;
        };
        let labels = ConnectionLabels {
            service: target.service.clone(),
            endpoint_node: "local".into(),
        };
        self.metrics.inbound.get_or_create(&labels).inc();
        let stream_target = crate::http::destination::StreamTarget {
            label: target.service.clone(),
            namespace,
            name,
            port,
            endpoint: target.endpoint,
            peer: peer.to_string(),
        };
        self.http.clone().serve(stream, stream_target).await;
    }

    async fn serve_udp(
        &self,
        stream: IncomingStream,
        endpoint: SocketAddr,
        labels: &ConnectionLabels,
    ) {
        let Ok(flow) = stream.accept_udp().await else {
            return;
        };
        self.metrics.inbound.get_or_create(labels).inc();
        let _ = causeway_tunnels::serve_udp_flow(flow, endpoint, self.udp_idle).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse() {
        assert_eq!(parse_label("demo/echo:80"), Some(("demo", "echo", 80)));
        assert_eq!(parse_label("demo/echo"), None);
        assert_eq!(parse_label("echo:80"), None);
        assert_eq!(parse_label("demo/echo:x"), None);
    }

    proptest::proptest! {
        #[test]
        fn labels_round_trip_and_garbage_never_panics(
            namespace in "[a-z0-9-]{1,20}",
            name in "[a-z0-9-]{1,20}",
            port: u16,
            garbage in ".{0,60}",
        ) {
            let label = format!("{namespace}/{name}:{port}");
            proptest::prop_assert_eq!(parse_label(&label), Some((namespace.as_str(), name.as_str(), port)));
            // Other spellings of the port parse, and are then refused by `check` for not
            // being canonical.
            let respelled = format!("{namespace}/{name}:0{port}");
            if let Some((n, m, p)) = parse_label(&respelled) {
                proptest::prop_assert_ne!(format!("{n}/{m}:{p}"), respelled);
            }
            let _ = parse_label(&garbage);
            let _ = garbage.parse::<crate::node::ServiceListener>();
        }
    }
}
