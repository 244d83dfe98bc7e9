//! What a pick chooses from and where the caller is: plain data the proxy builds from
//! the node's snapshot, plus the hook through which outlier ejection will veto endpoints.
//!
//! Nothing here reads the snapshot or the network by itself; [`Candidate::from_endpoint`]
//! only copies fields the caller hands it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use causeway_edge_core::metamanager::Endpoint;

/// Identifies an endpoint of a service port: the pod's IP and the endpoint's port.
pub type EndpointId = SocketAddr;

/// One endpoint a pick may choose, as the caller saw it in the snapshot.
///
/// The caller keeps the list (`&[Candidate]`) per service port and rebuilds it when the
/// snapshot changes; the balancer notices the change itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// The endpoint's address.
    pub id: EndpointId,
    /// The node it runs on, if known.
    pub node: Option<Arc<str>>,
    /// The site of that node, if known.
    pub site: Option<Arc<str>>,
    /// Whether it is ready for traffic; endpoints that are not are never picked.
    pub ready: bool,
}

impl Candidate {
    /// A candidate with no known node or site.
    pub fn new(id: EndpointId, ready: bool) -> Self {
        Self {
            id,
            node: None,
            site: None,
            ready,
        }
    }

    /// The same candidate, running on `node`.
    pub fn on_node(mut self, node: impl Into<Arc<str>>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// The same candidate, in `site`.
    pub fn in_site(mut self, site: impl Into<Arc<str>>) -> Self {
        self.site = Some(site.into());
        self
    }

    /// The candidate for `endpoint` reached on `port` (the endpoint's port for the service
    /// port, from [`Endpoint::port_for`]).
    pub fn from_endpoint(endpoint: &Endpoint, port: u16) -> Self {
        Self {
            id: SocketAddr::new(endpoint.ip, port),
            node: endpoint.node.as_deref().map(Arc::from),
            site: endpoint.site.as_deref().map(Arc::from),
            ready: endpoint.ready,
        }
    }
}

/// Where the caller runs: the node and site of the proxy making the pick. Endpoints on
/// the same node, then the same site, are preferred as the plan's locality says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallerLocation<'a> {
    /// The caller's node name; `None` leaves the node tier empty.
    pub node: Option<&'a str>,
    /// The caller's site; `None` leaves the site tier with only same-node endpoints.
    pub site: Option<&'a str>,
}

impl<'a> CallerLocation<'a> {
    /// A caller on `node` in `site`.
    pub fn new(node: &'a str, site: &'a str) -> Self {
        Self {
            node: Some(node),
            site: Some(site),
        }
    }

    /// A caller whose location is unknown: every endpoint is in the widest tier only.
    pub fn unknown() -> Self {
        Self::default()
    }
}

/// Tells a pick which endpoints are ejected (by outlier detection) right now. Ejected
/// endpoints count as unhealthy for locality and are not picked.
///
/// It is asked up to twice per candidate per pick, so it must be cheap and must not
/// block. Any `Fn(EndpointId) -> bool` is one.
pub trait EjectionView {
    /// Whether `id` is ejected.
    fn is_ejected(&self, id: EndpointId) -> bool;
}

impl<F> EjectionView for F
where
    F: Fn(EndpointId) -> bool,
{
    fn is_ejected(&self, id: EndpointId) -> bool {
        self(id)
    }
}

/// Adapts an optional ejection view for `Debug` output.
pub(crate) struct EjectionDebug<'a>(pub(crate) Option<&'a dyn EjectionView>);

impl fmt::Debug for EjectionDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Some(<ejection view>)"),
            None => f.write_str("None"),
        }
    }
}
