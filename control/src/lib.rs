//! The thin control plane on the cloud side.
//!
//! This crate will hold the sources (a Kubernetes watch, or a watched manifests directory)
//! behind one small trait, the per-node views with their authorization, the sync server
//! that drives `causeway-api`'s sync state machine over tunnel streams, and the certificate
//! authority with node bootstrap.
//!
//! It may import `causeway-api`, `causeway-tunnels` and `causeway-policies` only.
