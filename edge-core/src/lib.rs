//! The node runtime that runs beside the mesh proxy on every node.
//!
//! - [`metamanager`]: the node's SQLite store and the immutable snapshot the hot path
//!   reads.
//! - [`source`]: where objects come from — a watched manifests directory now, the
//!   control plane's sync later — behind one small trait.
//!
//! Later issues add the other KubeEdge-shaped modules: edgehub (the sync client),
//! edged (pods), devicetwin, eventbus (MQTT) and servicebus.
//!
//! It may import `causeway-yaml`, `causeway-api` and `causeway-tunnels` only (see
//! `docs/architecture.md`).

pub mod metamanager;
pub mod source;
