//! The objects a node stores, typed where Causeway reads them.
//!
//! Services, EndpointSlices, Endpoints, Pods and Nodes are decoded into their
//! `k8s-openapi` types. Policies (TrafficPolicy, DestinationRule) are kept as written —
//! JSON — and compiled by the mesh with `causeway-policies`, which owns their schema.

use serde_json::Value as Json;

use crate::k8s::{EndpointSlice, Endpoints, Node, Pod, Service};
use crate::key::{KeyError, ObjectKey};
use crate::resource::{GroupResource, GroupVersionResource, KubeResource, Scope};

/// An object, typed where Causeway reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum KubeObject {
    /// A Service.
    Service(Box<Service>),
    /// An EndpointSlice.
    EndpointSlice(Box<EndpointSlice>),
    /// The older Endpoints.
    Endpoints(Box<Endpoints>),
    /// A Pod.
    Pod(Box<Pod>),
    /// A Node.
    Node(Box<Node>),
    /// A policy, kept as written.
    Policy(RawObject),
}

/// An object kept as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct RawObject {
    /// Its identity.
    pub key: ObjectKey,
    /// Its `kind`.
    pub kind: String,
    /// The whole object.
    pub body: Json,
}

/// The policy kinds kept raw, with their resources.
pub const POLICY_KINDS: &[(&str, &str, &str)] = &[
    ("policy.causeway.dev", "TrafficPolicy", "trafficpolicies"),
    ("networking.istio.io", "DestinationRule", "destinationrules"),
];

/// Why an object could not be decoded or keyed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// A field has the wrong shape; `path` names it.
    #[error("{path}: {message}")]
    Field {
        /// The field path, as `spec.ports[0].port`.
        path: String,
        /// What serde said.
        message: String,
    },
    /// The object has no usable name.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A resource this store does not hold.
    #[error("resource `{0}` is not stored by Causeway")]
    UnknownResource(String),
}

fn typed<K>(json: Json) -> Result<K, ObjectError>
where
    K: serde::de::DeserializeOwned,
{
    serde_path_to_error::deserialize(json).map_err(|e| ObjectError::Field {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

impl KubeObject {
    /// Decodes an object of `kind` in group `group` from JSON. Namespaced objects without
    /// a namespace get `default`, as `kubectl` gives them.
    pub fn from_json(group: &str, kind: &str, mut json: Json) -> Result<Self, ObjectError> {
        let namespaced = kind != "Node";
        if namespaced
            && let Some(meta) = json.get_mut("metadata").and_then(Json::as_object_mut)
            && !meta.contains_key("namespace")
        {
            meta.insert("namespace".into(), Json::String("default".into()));
        }
        let object = match (group, kind) {
            ("", "Service") => KubeObject::Service(Box::new(typed(json)?)),
            ("discovery.k8s.io", "EndpointSlice") => {
                KubeObject::EndpointSlice(Box::new(typed(json)?))
            }
            ("", "Endpoints") => KubeObject::Endpoints(Box::new(typed(json)?)),
            ("", "Pod") => KubeObject::Pod(Box::new(typed(json)?)),
            ("", "Node") => KubeObject::Node(Box::new(typed(json)?)),
            _ => {
                let resource = POLICY_KINDS
                    .iter()
                    .find(|(g, k, _)| *g == group && *k == kind)
                    .map(|(g, _, r)| GroupResource::new(*g, *r))
                    .ok_or_else(|| ObjectError::UnknownResource(format!("{kind}.{group}")))?;
                let meta = json.get("metadata");
                let name = meta
                    .and_then(|m| m.get("name"))
                    .and_then(Json::as_str)
                    .ok_or(KeyError::MissingName { kind: "policy" })?
                    .to_string();
                let namespace = meta
                    .and_then(|m| m.get("namespace"))
                    .and_then(Json::as_str)
                    .unwrap_or("default")
                    .to_string();
                KubeObject::Policy(RawObject {
                    key: ObjectKey::namespaced(resource, namespace, name),
                    kind: kind.to_string(),
                    body: json,
                })
            }
        };
        object.key()?;
        Ok(object)
    }

    /// Decodes a stored object of `resource`.
    pub fn from_stored(resource: &GroupResource, json: Json) -> Result<Self, ObjectError> {
        let kind = |gvr: GroupVersionResource| gvr.group_resource() == *resource;
        if kind(GroupVersionResource::SERVICES) {
            return Self::from_json("", "Service", json);
        }
        if kind(GroupVersionResource::ENDPOINT_SLICES) {
            return Self::from_json("discovery.k8s.io", "EndpointSlice", json);
        }
        if kind(GroupVersionResource::ENDPOINTS) {
            return Self::from_json("", "Endpoints", json);
        }
        if kind(GroupVersionResource::PODS) {
            return Self::from_json("", "Pod", json);
        }
        if kind(GroupVersionResource::NODES) {
            return Self::from_json("", "Node", json);
        }
        match POLICY_KINDS
            .iter()
            .find(|(g, _, r)| resource.group == *g && resource.resource == *r)
        {
            Some((group, kind, _)) => Self::from_json(group, kind, json),
            None => Err(ObjectError::UnknownResource(resource.to_string())),
        }
    }

    /// The object's identity.
    pub fn key(&self) -> Result<ObjectKey, KeyError> {
        match self {
            KubeObject::Service(o) => ObjectKey::for_object(o.as_ref()),
            KubeObject::EndpointSlice(o) => ObjectKey::for_object(o.as_ref()),
            KubeObject::Endpoints(o) => ObjectKey::for_object(o.as_ref()),
            KubeObject::Pod(o) => ObjectKey::for_object(o.as_ref()),
            KubeObject::Node(o) => ObjectKey::for_object(o.as_ref()),
            KubeObject::Policy(raw) => Ok(raw.key.clone()),
        }
    }

    /// The object's `metadata.resourceVersion`, when it has one.
    pub fn resource_version(&self) -> Option<String> {
        fn of<
            K: k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
        >(
            o: &K,
        ) -> Option<String> {
            o.metadata().resource_version.clone()
        }
        match self {
            KubeObject::Service(o) => of(o.as_ref()),
            KubeObject::EndpointSlice(o) => of(o.as_ref()),
            KubeObject::Endpoints(o) => of(o.as_ref()),
            KubeObject::Pod(o) => of(o.as_ref()),
            KubeObject::Node(o) => of(o.as_ref()),
            KubeObject::Policy(raw) => raw
                .body
                .pointer("/metadata/resourceVersion")
                .and_then(Json::as_str)
                .map(str::to_string),
        }
    }

    /// The object as JSON, as stored.
    pub fn to_json(&self) -> Json {
        let json = match self {
            KubeObject::Service(o) => serde_json::to_value(o.as_ref()),
            KubeObject::EndpointSlice(o) => serde_json::to_value(o.as_ref()),
            KubeObject::Endpoints(o) => serde_json::to_value(o.as_ref()),
            KubeObject::Pod(o) => serde_json::to_value(o.as_ref()),
            KubeObject::Node(o) => serde_json::to_value(o.as_ref()),
            KubeObject::Policy(raw) => Ok(raw.body.clone()),
        };
        // Serializing plain data into JSON cannot fail.
        json.unwrap_or(Json::Null)
    }

    /// The object's scope.
    pub fn scope(&self) -> Scope {
        match self {
            KubeObject::Node(_) => <Node as KubeResource>::SCOPE,
            _ => Scope::Namespaced,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_objects_round_trip_through_json() {
        let service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "reviews"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}
        });
        let object = KubeObject::from_json("", "Service", service).unwrap();
        assert_eq!(
            object.key().unwrap().to_string(),
            "services/default/reviews"
        );
        let stored = KubeObject::from_stored(
            &GroupVersionResource::SERVICES.group_resource(),
            object.to_json(),
        )
        .unwrap();
        assert_eq!(stored, object);
    }

    #[test]
    fn field_errors_name_their_path() {
        let bad = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "reviews"},
            "spec": {"ports": [{"port": "eighty"}]}
        });
        let error = KubeObject::from_json("", "Service", bad).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("spec.ports[0].port: invalid type"),
            "{error}"
        );
    }

    #[test]
    fn policies_are_kept_raw_with_their_key() {
        let policy = json!({
            "apiVersion": "policy.causeway.dev/v1alpha1", "kind": "TrafficPolicy",
            "metadata": {"name": "r", "namespace": "shop"}, "spec": {"x": 1}
        });
        let object =
            KubeObject::from_json("policy.causeway.dev", "TrafficPolicy", policy.clone()).unwrap();
        assert_eq!(
            object.key().unwrap().to_string(),
            "trafficpolicies.policy.causeway.dev/shop/r"
        );
        assert_eq!(object.to_json(), policy);
        assert!(KubeObject::from_json("apps", "Deployment", json!({})).is_err());
    }
}
