//! Object keys: which object, named the way Kubernetes names it.
//!
//! A key is the resource (group and plural name, without version), the namespace for
//! namespaced resources, and the name. Its text form is the one `kubectl` users read —
//! `services/shop/reviews`, `endpointslices.discovery.k8s.io/shop/reviews-x7k2p`,
//! `nodes/edge-1` — and it parses back, so the node store can use it as a primary key.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::resource::{GroupResource, KubeResource, Scope};

/// The longest object name Kubernetes accepts (a DNS-1123 subdomain).
pub const MAX_NAME_LEN: usize = 253;

/// The identity of one Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectKey {
    /// What kind of object, independent of the API version it was read in.
    pub resource: GroupResource,
    /// The namespace; `None` for cluster-scoped objects such as Nodes.
    pub namespace: Option<String>,
    /// The object's `metadata.name`.
    pub name: String,
}

/// Why a key could not be made or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The object has no `metadata.name`.
    #[error("{kind} object has no metadata.name")]
    MissingName {
        /// The object's kind, for the message.
        kind: &'static str,
    },
    /// A namespaced object has no `metadata.namespace`.
    #[error("{kind} `{name}` is namespaced but has no metadata.namespace")]
    MissingNamespace {
        /// The object's kind, for the message.
        kind: &'static str,
        /// The object's name.
        name: String,
    },
    /// The text is not `resource[.group]/[namespace/]name`.
    #[error(
        "object key `{text}` is not of the form `resource[.group]/namespace/name` or `resource[.group]/name`"
    )]
    Malformed {
        /// The text that failed to parse.
        text: String,
    },
    /// A part of the key holds characters Kubernetes does not allow there.
    #[error("object key `{text}`: {part} `{value}` is not a valid Kubernetes {part}")]
    InvalidPart {
        /// The text that failed to parse.
        text: String,
        /// Which part: `resource`, `namespace` or `name`.
        part: &'static str,
        /// The offending value.
        value: String,
    },
}

impl ObjectKey {
    /// The key of a namespaced object.
    pub fn namespaced(
        resource: GroupResource,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            resource,
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }

    /// The key of a cluster-scoped object.
    pub fn cluster(resource: GroupResource, name: impl Into<String>) -> Self {
        Self {
            resource,
            namespace: None,
            name: name.into(),
        }
    }

    /// The key of a `k8s-openapi` object, from its type and metadata.
    pub fn for_object<K>(object: &K) -> Result<Self, KeyError>
    where
        K: KubeResource
            + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    {
        let meta = object.metadata();
        let resource = GroupResource {
            group: Cow::Borrowed(K::GROUP),
            resource: Cow::Borrowed(K::URL_PATH_SEGMENT),
        };
        let name = meta
            .name
            .clone()
            .ok_or(KeyError::MissingName { kind: K::KIND })?;
        match K::SCOPE {
            Scope::Cluster => Ok(Self::cluster(resource, name)),
            Scope::Namespaced => match &meta.namespace {
                Some(ns) => Ok(Self::namespaced(resource, ns.clone(), name)),
                None => Err(KeyError::MissingNamespace {
                    kind: K::KIND,
                    name,
                }),
            },
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.resource, ns, self.name),
            None => write!(f, "{}/{}", self.resource, self.name),
        }
    }
}

impl FromStr for ObjectKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || KeyError::Malformed {
            text: text.to_string(),
        };
        let invalid = |part: &'static str, value: &str| KeyError::InvalidPart {
            text: text.to_string(),
            part,
            value: value.to_string(),
        };
        let parts: Vec<&str> = text.split('/').collect();
        let (resource_part, namespace, name) = match parts.as_slice() {
            [resource, name] => (*resource, None, *name),
            [resource, namespace, name] => (*resource, Some(*namespace), *name),
            _ => return Err(malformed()),
        };
        let (resource, group) = resource_part.split_once('.').unwrap_or((resource_part, ""));
        if !is_dns_label(resource) {
            return Err(invalid("resource", resource_part));
        }
        if !group.is_empty() && !is_dns_subdomain(group) {
            return Err(invalid("resource", resource_part));
        }
        if let Some(ns) = namespace
            && !is_dns_label(ns)
        {
            return Err(invalid("namespace", ns));
        }
        if !is_object_name(name) {
            return Err(invalid("name", name));
        }
        Ok(Self {
            resource: GroupResource::new(group, resource),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        })
    }
}

/// A DNS-1123 label: lowercase letters, digits and `-`, starting and ending alphanumeric,
/// at most 63 characters (which is also the longest namespace name).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= MAX_NAME_LEN && s.split('.').all(is_dns_label)
}

/// What Kubernetes accepts as an object name for the resources we store: non-empty, at most
/// 253 characters, no `/`, no `%`, not `.` or `..`, printable. (Most resources are stricter —
/// a DNS subdomain — which the API server enforces; we only refuse what would break keys.)
pub fn is_object_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s != "."
        && s != ".."
        && !s
            .chars()
            .any(|c| c == '/' || c == '%' || c.is_control() || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s;
    use crate::resource::GroupVersionResource;
    use proptest::prelude::*;

    #[test]
    fn keys_print_the_way_kubectl_users_read_them() {
        let svc = ObjectKey::namespaced(
            GroupVersionResource::SERVICES.group_resource(),
            "shop",
            "reviews",
        );
        assert_eq!(svc.to_string(), "services/shop/reviews");
        let node = ObjectKey::cluster(GroupVersionResource::NODES.group_resource(), "edge-1");
        assert_eq!(node.to_string(), "nodes/edge-1");
        let slice = ObjectKey::namespaced(
            GroupVersionResource::ENDPOINT_SLICES.group_resource(),
            "shop",
            "reviews-x7k2p",
        );
        assert_eq!(
            slice.to_string(),
            "endpointslices.discovery.k8s.io/shop/reviews-x7k2p"
        );
        assert_eq!(slice.to_string().parse::<ObjectKey>(), Ok(slice));
    }

    #[test]
    fn keys_come_from_object_metadata() {
        let mut svc = k8s::Service::default();
        assert_eq!(
            ObjectKey::for_object(&svc),
            Err(KeyError::MissingName { kind: "Service" })
        );
        svc.metadata.name = Some("reviews".into());
        assert!(matches!(
            ObjectKey::for_object(&svc),
            Err(KeyError::MissingNamespace { .. })
        ));
        svc.metadata.namespace = Some("shop".into());
        assert_eq!(
            ObjectKey::for_object(&svc).map(|k| k.to_string()),
            Ok("services/shop/reviews".to_string())
        );
        let mut node = k8s::Node::default();
        node.metadata.name = Some("edge-1".into());
        node.metadata.namespace = Some("ignored".into());
        assert_eq!(
            ObjectKey::for_object(&node).map(|k| k.to_string()),
            Ok("nodes/edge-1".to_string())
        );
    }

    #[test]
    fn malformed_keys_are_refused_with_the_part_named() {
        assert!(matches!(
            "services".parse::<ObjectKey>(),
            Err(KeyError::Malformed { .. })
        ));
        assert!(matches!(
            "a/b/c/d".parse::<ObjectKey>(),
            Err(KeyError::Malformed { .. })
        ));
        let err = "services/Shop/reviews".parse::<ObjectKey>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "object key `services/Shop/reviews`: namespace `Shop` is not a valid Kubernetes namespace"
        );
        assert!(matches!(
            "services/shop/".parse::<ObjectKey>(),
            Err(KeyError::InvalidPart { part: "name", .. })
        ));
        assert!(matches!(
            "Services/shop/x".parse::<ObjectKey>(),
            Err(KeyError::InvalidPart {
                part: "resource",
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn text_form_round_trips(
            resource in "[a-z][a-z0-9]{0,20}",
            group in proptest::option::of("[a-z]{1,10}(\\.[a-z]{1,10}){0,3}"),
            namespace in proptest::option::of("[a-z]([a-z0-9-]{0,30}[a-z0-9])?"),
            name in "[a-z0-9]([a-z0-9.-]{0,60}[a-z0-9])?",
        ) {
            let key = ObjectKey {
                resource: GroupResource::new(group.unwrap_or_default(), resource),
                namespace,
                name,
            };
            prop_assert_eq!(key.to_string().parse::<ObjectKey>(), Ok(key));
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in ".{0,80}") {
            let _ = text.parse::<ObjectKey>();
        }
    }
}
