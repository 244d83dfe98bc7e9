//! The mesh proxy, the centre of Causeway.
//!
//! One module per concern: [`balance`] (choosing endpoints), [`dns`] (the embedded
//! server), and — as this crate grows — the resolver view over the node's snapshot, L4
//! proxying, cross-node forwarding over the tunnels, access without root, and admin.
//!
//! It may import `causeway-yaml`, `causeway-edge-core`, `causeway-api`,
//! `causeway-tunnels` and `causeway-policies`; only the binary and `causeway-loadtests`
//! import it.

pub mod balance;
pub mod dns;
