//! Resource types named the Kubernetes way: group, version and the plural resource name.
//!
//! A `GroupVersionResource` says where an object is served (`discovery.k8s.io/v1`,
//! `endpointslices`); a `GroupResource` says what the object *is*, whatever version it was
//! read in. Object identity ([`crate::ObjectKey`]) uses the latter, because Kubernetes
//! stores one object per group and resource and serves it in every version: a
//! DestinationRule read as `v1beta1` and as `v1` is one object, not two.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Whether objects of a resource live in a namespace or in the cluster as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Objects live in a namespace (Service, Pod, EndpointSlice, ...).
    Namespaced,
    /// Objects belong to the cluster (Node, ...).
    Cluster,
}

/// A resource independent of its API version: `endpointslices.discovery.k8s.io`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupResource {
    /// The API group; empty for the core group (`v1` Services, Pods, Nodes, ...).
    pub group: Cow<'static, str>,
    /// The plural, lowercase resource name, as in the URL path (`services`).
    pub resource: Cow<'static, str>,
}

impl GroupResource {
    /// A resource known at compile time.
    pub const fn new_static(group: &'static str, resource: &'static str) -> Self {
        Self {
            group: Cow::Borrowed(group),
            resource: Cow::Borrowed(resource),
        }
    }

    /// A resource named at run time (a CRD the control plane discovered, say).
    pub fn new(group: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            group: Cow::Owned(group.into()),
            resource: Cow::Owned(resource.into()),
        }
    }

    /// Whether this is a resource of the core (`v1`) group.
    pub fn is_core(&self) -> bool {
        self.group.is_empty()
    }
}

/// `services` for the core group, `endpointslices.discovery.k8s.io` otherwise, as
/// `kubectl api-resources` spells them.
impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_core() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// A resource in one API version: where a client lists and watches it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupVersionResource {
    /// The API group; empty for the core group.
    pub group: Cow<'static, str>,
    /// The API version within the group (`v1`, `v1beta1`).
    pub version: Cow<'static, str>,
    /// The plural, lowercase resource name.
    pub resource: Cow<'static, str>,
}

impl GroupVersionResource {
    /// A resource version known at compile time.
    pub const fn new_static(
        group: &'static str,
        version: &'static str,
        resource: &'static str,
    ) -> Self {
        Self {
            group: Cow::Borrowed(group),
            version: Cow::Borrowed(version),
            resource: Cow::Borrowed(resource),
        }
    }

    /// The `apiVersion` field of objects of this resource: `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource without its version, which is what identifies objects.
    pub fn group_resource(&self) -> GroupResource {
        GroupResource {
            group: self.group.clone(),
            resource: self.resource.clone(),
        }
    }

    /// The resource of a `k8s-openapi` type.
    pub fn of<K: k8s_openapi::Resource>() -> Self {
        Self::new_static(K::GROUP, K::VERSION, K::URL_PATH_SEGMENT)
    }

    /// Core Services.
    pub const SERVICES: Self = Self::new_static("", "v1", "services");
    /// EndpointSlices, the endpoints the mesh balances over.
    pub const ENDPOINT_SLICES: Self = Self::new_static("discovery.k8s.io", "v1", "endpointslices");
    /// The older Endpoints objects, still accepted from manifests.
    pub const ENDPOINTS: Self = Self::new_static("", "v1", "endpoints");
    /// Pods.
    pub const PODS: Self = Self::new_static("", "v1", "pods");
    /// Nodes (cluster scoped).
    pub const NODES: Self = Self::new_static("", "v1", "nodes");
    /// ConfigMaps referenced by pods on a node.
    pub const CONFIG_MAPS: Self = Self::new_static("", "v1", "configmaps");
    /// Secrets referenced by pods on a node.
    pub const SECRETS: Self = Self::new_static("", "v1", "secrets");
    /// Causeway's own TrafficPolicy.
    pub const TRAFFIC_POLICIES: Self =
        Self::new_static("policy.causeway.dev", "v1alpha1", "trafficpolicies");
    /// Istio DestinationRules, read so existing EdgeMesh/Istio YAML keeps working.
    pub const DESTINATION_RULES: Self =
        Self::new_static("networking.istio.io", "v1", "destinationrules");
}

/// `v1/services`, `discovery.k8s.io/v1/endpointslices`.
impl fmt::Display for GroupVersionResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.api_version(), self.resource)
    }
}

/// A Kubernetes object type Causeway stores, with its resource and scope.
///
/// Implemented for the `k8s-openapi` types in [`crate::k8s`], so generic code (the node
/// store, the control plane's sources) can derive keys from any of them.
pub trait KubeResource: k8s_openapi::Resource {
    /// Whether objects of this type live in a namespace.
    const SCOPE: Scope;
}

macro_rules! kube_resource {
    ($scope:ident: $($ty:ty),+ $(,)?) => {
        $(impl KubeResource for $ty {
            const SCOPE: Scope = Scope::$scope;
        })+
    };
}

kube_resource!(Namespaced:
    crate::k8s::Service,
    crate::k8s::EndpointSlice,
    crate::k8s::Endpoints,
    crate::k8s::Pod,
    crate::k8s::ConfigMap,
    crate::k8s::Secret,
);
kube_resource!(Cluster: crate::k8s::Node);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s;

    #[test]
    fn openapi_types_map_to_their_resources() {
        assert_eq!(
            GroupVersionResource::of::<k8s::Service>(),
            GroupVersionResource::SERVICES
        );
        assert_eq!(
            GroupVersionResource::of::<k8s::EndpointSlice>(),
            GroupVersionResource::ENDPOINT_SLICES
        );
        assert_eq!(
            GroupVersionResource::of::<k8s::Node>(),
            GroupVersionResource::NODES
        );
        assert_eq!(<k8s::Node as KubeResource>::SCOPE, Scope::Cluster);
        assert_eq!(<k8s::Pod as KubeResource>::SCOPE, Scope::Namespaced);
    }

    #[test]
    fn display_follows_kubectl() {
        assert_eq!(GroupVersionResource::SERVICES.to_string(), "v1/services");
        assert_eq!(
            GroupVersionResource::ENDPOINT_SLICES.to_string(),
            "discovery.k8s.io/v1/endpointslices"
        );
        assert_eq!(
            GroupVersionResource::ENDPOINT_SLICES
                .group_resource()
                .to_string(),
            "endpointslices.discovery.k8s.io"
        );
        assert_eq!(
            GroupVersionResource::PODS.group_resource().to_string(),
            "pods"
        );
    }
}
