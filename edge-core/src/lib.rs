//! The node runtime that runs beside the mesh proxy on every node.
//!
//! This crate will hold the KubeEdge-shaped modules: the module bus (Beehive), metamanager
//! (the node's SQLite store and the immutable snapshot the hot path reads), edgehub (the sync
//! client of the control plane), edged (pods), devicetwin, eventbus (MQTT) and servicebus.
//!
//! It may import `causeway-api` and `causeway-tunnels` only (see `docs/architecture.md`).
