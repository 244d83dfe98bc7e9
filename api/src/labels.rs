//! The labels and annotations Causeway reads, named once.

/// Node label: the edge site a node belongs to (`factory-a`, `store-17`). Locality-aware
/// balancing prefers endpoints on the caller's node, then its site.
pub const SITE_LABEL: &str = "causeway.dev/site";

/// Node annotation: where the node's tunnel endpoint listens, as `host:port` (several
/// comma-separated). Without it, the node's InternalIP addresses with
/// [`DEFAULT_TUNNEL_PORT`].
pub const TUNNEL_ADDRESS_ANNOTATION: &str = "causeway.dev/tunnel-address";

/// The UDP port of a node's tunnel endpoint when its Node object names none.
pub const DEFAULT_TUNNEL_PORT: u16 = 7443;

/// EndpointSlice label naming the Service the slice belongs to (Kubernetes').
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Node label with the node's zone (Kubernetes').
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
