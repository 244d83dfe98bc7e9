//! The mesh proxy, the centre of Causeway.
//!
//! One module per concern: [`balance`] (choosing endpoints), [`dns`] (the embedded
//! server), and — as this crate grows — the resolver view over the node's snapshot, L4
//! proxying, cross-node forwarding over the tunnels, access without root, and admin.
//!
//! It may import `causeway-yaml`, `causeway-edge-core`, `causeway-api`,
//! `causeway-tunnels` and `causeway-policies`; only the binary and `causeway-loadtests`
//! import it.

pub mod access;
pub mod admin;
pub mod balance;
pub mod directory;
pub mod dns;
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
