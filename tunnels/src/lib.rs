//! QUIC links between Causeway nodes and to the cloud.
//!
//! This crate will hold, as the tunnels issue fills it:
//! - node identities: a node CA and per-node certificates (rcgen), loaded from PEM and
//!   reloaded without dropping links; mutual TLS 1.3 with ALPN `causeway/1`;
//! - links: one quinn connection per peer, dialled on demand, shared, kept alive, re-dialled
//!   with backoff, with per-link health (RTT, loss, state) for the balancer;
//! - the stream header as a sans-IO codec (purpose, endpoint, reply status);
//! - UDP flows over datagrams, relays and NAT traversal.
//!
//! It imports no other crate of ours (see `docs/architecture.md`).
