//! The mesh proxy, the centre of Causeway.
//!
//! This crate will hold one module per concern: interception (nftables), DNS, the resolver
//! view over the node's snapshot, load balancing, rate limits, L4 and L7 proxying,
//! cross-node forwarding over the tunnels, and the admin and metrics endpoints. It consults
//! the compiled plans of `causeway-policies` per request.
//!
//! It may import `causeway-edge-core`, `causeway-api`, `causeway-tunnels` and
//! `causeway-policies`; only the binary and `causeway-loadtests` import it.
