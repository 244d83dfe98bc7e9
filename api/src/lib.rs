//! The shared vocabulary of Causeway.
//!
//! Every other crate of ours names Kubernetes objects, their versions and the revisions of
//! the node views with the types here, so a key written into a node's SQLite store by the
//! metamanager means the same thing to the control plane that sent it. Later issues add the
//! control-to-node sync protocol here as a sans-IO state machine.
//!
//! This crate does no I/O: no sockets, no files, no tokio. It imports no other crate of ours.

pub mod key;
pub mod labels;
pub mod manifest;
pub mod object;
pub mod resource;
pub mod revision;

pub use key::{KeyError, ObjectKey};
pub use object::{KubeObject, ObjectError, RawObject};
pub use resource::{GroupResource, GroupVersionResource, KubeResource, Scope};
pub use revision::{ResourceVersion, Revision};

/// The Kubernetes object types Causeway reads, re-exported so every crate uses the one
/// `k8s-openapi` version the workspace pins.
pub mod k8s {
    pub use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Node, Pod, Secret, Service};
    pub use k8s_openapi::api::discovery::v1::EndpointSlice;
    pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    pub use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    pub use k8s_openapi::{Metadata, Resource};
}
