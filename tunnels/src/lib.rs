//! QUIC links between Causeway nodes and to the cloud: the transport under the mesh's
//! cross-node calls and the control plane's sync.
//!
//! - [`identity`]: the node CA and node certificates (a DNS SAN naming the node, a URI SAN
//!   with its site); who a peer is.
//! - [`tls`]: TLS 1.3 only, ALPN `causeway/1`, mutual authentication against the node CA,
//!   material that reloads without dropping links; refused certificates logged and
//!   counted.
//! - [`header`] and [`datagram`]: sans-IO codecs for the stream header and reply, and for
//!   datagram and stream-framed packets.
//! - [`Tunnel`]: a node's endpoint — links made on demand and shared, backoff, health,
//!   idle close, relays (`relay`), UDP flows ([`UdpFlow`]), limits everywhere.
//!
//! It imports no other crate of ours (see `docs/architecture.md`).

mod channel;
pub mod config;
pub mod datagram;
pub mod error;
pub mod header;
pub mod identity;
mod incoming;
pub mod link;
pub mod metrics;
mod peers;
mod relay;
mod socket;
pub mod stream;
pub mod tls;
mod tunnel;
pub mod udp;

pub use channel::PacketDrop;
pub use config::{Limits, PeerDirectory, RelayPeer, StaticDirectory, Timeouts, TunnelConfig};
pub use error::{OpenError, TunnelError};
pub use header::{ProxyTarget, Reply, Request, Status};
pub use identity::{
    CertificateAuthority, IdentityFiles, LoadedIdentity, NodeName, PeerIdentity, Validity,
};
pub use incoming::{Incoming, IncomingStream};
pub use link::{Link, LinkHealth, LinkPath};
pub use metrics::MetricsSnapshot;
pub use peers::Reachability;
pub use stream::{BridgeOutcome, TunnelStream};
pub use tunnel::{IdentitySource, Tunnel};
pub use udp::{UdpFlow, serve_udp_flow};
