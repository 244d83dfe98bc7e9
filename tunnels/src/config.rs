//! How a node's tunnel endpoint is configured: where it listens, who it is, whom it may
//! relay through, and the limits that keep every buffer bounded. Defaults suit an edge
//! node; tests shorten the timeouts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::RwLock;
use std::time::Duration;

use crate::identity::NodeName;

/// Everything a [`crate::Tunnel`] needs besides its identity and directory.
#[derive(Debug, Clone)]
pub struct TunnelConfig {
    /// The UDP address to listen on (`0.0.0.0:7443` in production, `127.0.0.1:0` in tests).
    pub listen: SocketAddr,
    /// Relays this node may go through, and through which it stays reachable.
    pub relays: Vec<RelayPeer>,
    /// Whether this node forwards sessions between other nodes (typically a cloud node
    /// with a public address).
    pub serve_as_relay: bool,
    /// Limits on links, streams and buffers.
    pub limits: Limits,
    /// Timeouts and retry pacing.
    pub timeouts: Timeouts,
    /// How often the identity files are checked for a new certificate; `None` to reload
    /// only when asked.
    pub reload_interval: Option<Duration>,
}

impl TunnelConfig {
    /// Defaults, listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            relays: Vec::new(),
            serve_as_relay: false,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            reload_interval: Some(Duration::from_secs(30)),
        }
    }
}

/// A relay node and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayPeer {
    /// The relay's node name (its certificate must name it).
    pub node: NodeName,
    /// Its addresses, tried in order.
    pub addresses: Vec<SocketAddr>,
}

/// Bounds on what one node holds, so nothing buffers without limit.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Links (QUIC connections) open at once, both directions; more are refused.
    pub max_links: usize,
    /// Streams a peer may have open at once on one link; openers wait for credit.
    pub max_streams_per_link: u32,
    /// Bytes buffered per stream before the sender must wait (flow control).
    pub stream_window: u32,
    /// Bytes buffered per link, all streams together.
    pub link_window: u32,
    /// Datagram bytes buffered per link, each direction.
    pub datagram_buffer: usize,
    /// Packets queued per UDP flow or relay session before more are dropped.
    pub packet_queue: usize,
    /// Accepted streams waiting for the application before more are refused.
    pub incoming_queue: usize,
    /// Bytes copied at a time between a TCP socket and a stream.
    pub copy_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_links: 1024,
            max_streams_per_link: 4096,
            stream_window: 2 * 1024 * 1024,
            link_window: 16 * 1024 * 1024,
            datagram_buffer: 1024 * 1024,
            packet_queue: 256,
            incoming_queue: 1024,
            copy_buffer: 64 * 1024,
        }
    }
}

/// Timeouts and retry pacing.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// One dial attempt to one address, handshake included.
    pub connect: Duration,
    /// Keep-alive probes on an otherwise quiet link.
    pub keep_alive: Duration,
    /// A link that hears nothing for this long is dead.
    pub link_dead: Duration,
    /// A link with no open stream or flow for this long is closed.
    pub link_idle: Duration,
    /// The header and reply of a stream must arrive within this.
    pub header: Duration,
    /// The first retry after a failed dial; each next one doubles, with jitter.
    pub backoff_initial: Duration,
    /// The longest wait between retries.
    pub backoff_max: Duration,
    /// While a peer is reached through a relay, how often a direct dial is tried again.
    pub direct_retry: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            keep_alive: Duration::from_secs(5),
            link_dead: Duration::from_secs(20),
            link_idle: Duration::from_secs(300),
            header: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            direct_retry: Duration::from_secs(60),
        }
    }
}

/// Where nodes can be reached. The mesh answers from its snapshot of Node objects; tests
/// use [`StaticDirectory`].
pub trait PeerDirectory: Send + Sync + std::fmt::Debug + 'static {
    /// The addresses of `node`'s tunnel endpoint, most preferred first; empty when it
    /// cannot be dialled directly (behind NAT, reached through a relay).
    fn addresses(&self, node: &NodeName) -> Vec<SocketAddr>;
}

/// A directory filled by hand.
#[derive(Debug, Default)]
pub struct StaticDirectory {
    entries: RwLock<HashMap<NodeName, Vec<SocketAddr>>>,
}

impl StaticDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the addresses of `node`.
    pub fn set(&self, node: &NodeName, addresses: Vec<SocketAddr>) {
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(node.clone(), addresses);
        }
    }
}

impl PeerDirectory for StaticDirectory {
    fn addresses(&self, node: &NodeName) -> Vec<SocketAddr> {
        self.entries
            .read()
            .ok()
            .and_then(|entries| entries.get(node).cloned())
            .unwrap_or_default()
    }
}
