//! The mesh proxy, the centre of Causeway: one node's DNS, resolution, balancing,
//! policies, proxying within the node and across nodes, and its admin endpoint.
//!
//! One module per concern: [`resolve`] (names and ClusterIPs to Service ports),
//! [`balance`] (choosing endpoints), [`outlier`] and [`ratelimit`] (policy enforcement),
//! [`outbound`] (the source side), [`inbound`] (the destination side), [`splice`]
//! (copying bytes), [`http`] (per-request HTTP/1.1, HTTP/2 and gRPC with the whole
//! traffic policy), [`access`] (HTTP proxy, SOCKS5, per-Service listeners), [`dns`]
//! (the embedded server), [`admin`] and [`metrics`], and [`node`], which wires them into
//! one running node. Capture with nftables comes with the interception work.
//!
//! It may import `causeway-yaml`, `causeway-edge-core`, `causeway-api`,
//! `causeway-tunnels` and `causeway-policies`; only the binary and `causeway-loadtests`
//! import it.

pub mod access;
pub mod admin;
pub mod balance;
pub mod directory;
pub mod dns;
pub mod endpoint_guard;
pub mod http;
pub mod inbound;
pub mod metrics;
pub mod node;
pub mod outbound;
pub mod outlier;
pub mod policy_view;
pub mod ratelimit;
pub mod resolve;
pub mod splice;
pub mod tasks;
