//! Where other nodes' tunnel endpoints are, read from the Node objects of the node's
//! snapshot (the `causeway.dev/tunnel-address` annotation, else InternalIP:7443).
//!
//! It reads the store; it never dials.

use std::net::SocketAddr;

use causeway_edge_core::metamanager::MetaManager;
use causeway_tunnels::{NodeName, PeerDirectory};

/// A tunnel directory backed by the node store.
#[derive(Debug, Clone)]
pub struct SnapshotDirectory {
    store: MetaManager,
}

impl SnapshotDirectory {
    /// Reads `store`'s Node objects.
    pub fn new(store: MetaManager) -> Self {
        Self { store }
    }
}

impl PeerDirectory for SnapshotDirectory {
    fn addresses(&self, node: &NodeName) -> Vec<SocketAddr> {
        self.store
            .snapshot()
            .node(node.as_str())
            .map(|n| n.tunnel_addresses.clone())
            .unwrap_or_default()
    }
}
