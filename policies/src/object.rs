//! Kubernetes objects in a document: the envelope (`apiVersion`, `kind`, `metadata`),
//! dispatch to the policy kinds, and what a decoded policy attaches to.
//!
//! Objects that are not policies (a Service, a Deployment) are skipped, so a directory of
//! mixed manifests can be checked as it is; `kind: List` is unpacked. A policy kind with a
//! wrong version, or a misspelt kind in a policy group, is an error — that is a policy the
//! author expected to take effect.

use std::fmt;

use serde::Serialize;

use crate::decode::{Decoder, FieldRef};
use crate::diag::Location;
use crate::schema::{Field, ObjectSchema, Ty};
use crate::spec::TrafficPolicySpec;
use crate::suggest;
use crate::yaml::{Node, Resolved, Value};
use crate::{destination_rule, traffic_policy, validate};

/// The namespace of an object that names none, as `kubectl` assumes.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A Service, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ServiceRef {
    /// The namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
}

impl fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What one policy attaches to: a Service, or one port of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PolicyTarget {
    /// The Service.
    pub service: ServiceRef,
    /// The port, or `None` for every port without a policy of its own.
    pub port: Option<u16>,
}

impl fmt::Display for PolicyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "service `{}` port {port}", self.service),
            None => write!(f, "service `{}` (all ports)", self.service),
        }
    }
}

/// The kinds of policy object read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum PolicyKind {
    /// `policy.causeway.dev/v1alpha1` TrafficPolicy.
    TrafficPolicy,
    /// `networking.istio.io` DestinationRule.
    DestinationRule,
}

/// Which object a plan came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PolicyOrigin {
    /// Its kind.
    pub kind: PolicyKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl fmt::Display for PolicyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} `{}/{}`", self.kind, self.namespace, self.name)
    }
}

/// One policy for one target, as decoded.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// What it applies to.
    pub target: PolicyTarget,
    /// What it says.
    pub spec: TrafficPolicySpec,
    /// Where it is written (the target reference, or the port-level setting).
    pub location: Location,
    /// The field path of that place, for conflict messages.
    pub path: String,
}

/// A valid policy object.
#[derive(Debug, Clone)]
pub struct PolicyObject {
    /// Kind, namespace, name.
    pub origin: PolicyOrigin,
    /// Where the object starts.
    pub location: Location,
    /// The field path of its name (`metadata.name`, or `items[2].metadata.name` in a
    /// list), for messages about the object as a whole.
    pub name_path: String,
    /// What it attaches: one target for a TrafficPolicy; the Service and each listed port
    /// for a DestinationRule.
    pub attachments: Vec<Attachment>,
}

/// An object that is not a policy, passed over.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedObject {
    /// Its `apiVersion`.
    pub api_version: String,
    /// Its `kind`.
    pub kind: String,
    /// Its `metadata.name`, when it has one.
    pub name: Option<String>,
    /// Where it starts.
    pub location: Location,
}

/// What one object in a document turned out to be.
#[derive(Debug)]
pub enum Decoded {
    /// A valid policy.
    Policy(PolicyObject),
    /// Not a policy, or a policy Causeway cannot attach (with a warning saying why).
    Skipped(SkippedObject),
    /// A policy with errors (recorded in the decoder), with whatever of its identity and
    /// targets decoded — enough to report a second policy for the same target in the same
    /// pass, instead of only after the first is fixed. Never to be enforced.
    Invalid(Option<PolicyObject>),
}

/// The top level of a policy object.
pub static ENVELOPE: ObjectSchema = ObjectSchema {
    name: "Object",
    fields: &[
        Field::value("apiVersion", "`group/version`"),
        Field::value("kind", "an object kind"),
        Field::object("metadata", &METADATA),
        Field::value("spec", "the policy, a mapping"),
        Field::ignored("status"),
    ],
};

/// `metadata`, as Kubernetes writes it.
pub static METADATA: ObjectSchema = ObjectSchema {
    name: "ObjectMeta",
    fields: &[
        Field::value("name", "an object name (DNS-1123 subdomain)"),
        Field::value("namespace", "a namespace name (DNS-1123 label)").default("default"),
        Field::new("labels", Ty::Any),
        Field::new("annotations", Ty::Any),
        Field::unsupported(
            "generateName",
            "policies are matched by name; set metadata.name",
        ),
        Field::ignored("uid"),
        Field::ignored("resourceVersion"),
        Field::ignored("generation"),
        Field::ignored("creationTimestamp"),
        Field::ignored("deletionTimestamp"),
        Field::ignored("deletionGracePeriodSeconds"),
        Field::ignored("managedFields"),
        Field::ignored("finalizers"),
        Field::ignored("ownerReferences"),
        Field::ignored("selfLink"),
    ],
};

/// Decodes every object of one document (several for a `kind: List`).
pub fn decode_document(d: &mut Decoder, root: &Node) -> Vec<Decoded> {
    decode_object(d, &FieldRef::root(root))
}

/// Decodes the object at `field`: the document root, or an item of a `kind: List`.
fn decode_object(d: &mut Decoder, field: &FieldRef<'_>) -> Vec<Decoded> {
    let Value::Map(_) = &field.node.value else {
        let found = field.node.describe();
        d.error(
            field,
            format!("expected a Kubernetes object, found {found}"),
        )
        .expected = Some(field.expected.into());
        return vec![Decoded::Invalid(None)];
    };
    let api_version = field.member("apiVersion", "`group/version`");
    let kind = field.member("kind", "an object kind");
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        let missing = if field.member("apiVersion", "").is_none() {
            "apiVersion"
        } else {
            "kind"
        };
        d.error(
            field,
            format!("not a Kubernetes object: missing `{missing}`"),
        )
        .expected = Some(field.expected.into());
        return vec![Decoded::Invalid(None)];
    };
    let (Some(api_version_text), Some(kind_text)) = (d.string(&api_version), d.string(&kind))
    else {
        return vec![Decoded::Invalid(None)];
    };
    let (group, version) = api_version_text
        .split_once('/')
        .unwrap_or(("", api_version_text));
    match (group, kind_text) {
        ("", "List") if version == "v1" => {
            let Some(items) = field.member("items", "a list of objects") else {
                return Vec::new();
            };
            let Some(items) = d.items(&items, "a Kubernetes object") else {
                return vec![Decoded::Invalid(None)];
            };
            items
                .iter()
                .flat_map(|item| decode_object(d, item))
                .collect()
        }
        (traffic_policy::GROUP, _) => {
            if kind_text != traffic_policy::KIND {
                unknown_kind(d, &kind, kind_text, &[traffic_policy::KIND]);
                return vec![Decoded::Invalid(None)];
            }
            if version != traffic_policy::VERSION {
                unknown_version(d, &api_version, version, &[traffic_policy::VERSION]);
                return vec![Decoded::Invalid(None)];
            }
            vec![decode_policy(
                d,
                field,
                PolicyKind::TrafficPolicy,
                api_version_text,
            )]
        }
        (destination_rule::GROUP, destination_rule::KIND) => {
            if !destination_rule::VERSIONS.contains(&version) {
                unknown_version(d, &api_version, version, destination_rule::VERSIONS);
                return vec![Decoded::Invalid(None)];
            }
            vec![decode_policy(
                d,
                field,
                PolicyKind::DestinationRule,
                api_version_text,
            )]
        }
        (destination_rule::GROUP, other) => {
            if suggest::closest(other, [destination_rule::KIND]).is_some() {
                unknown_kind(d, &kind, other, &[destination_rule::KIND]);
                return vec![Decoded::Invalid(None)];
            }
            d.warning(
                &kind,
                format!("Istio {other} is not read by Causeway; it has no effect"),
            )
            .help = Some("Causeway reads DestinationRule from Istio; write retries and timeouts in a TrafficPolicy".into());
            vec![Decoded::Skipped(skipped(d, field, api_version_text, other))]
        }
        (_, traffic_policy::KIND) => {
            d.error(
                &api_version,
                format!(
                    "TrafficPolicy is served as `{}/{}`, not `{api_version_text}`",
                    traffic_policy::GROUP,
                    traffic_policy::VERSION
                ),
            )
            .expected = Some(format!(
                "{}/{}",
                traffic_policy::GROUP,
                traffic_policy::VERSION
            ));
            vec![Decoded::Invalid(None)]
        }
        (_, destination_rule::KIND) => {
            d.error(
                &api_version,
                format!(
                    "DestinationRule is served by `{}`, not `{api_version_text}`",
                    destination_rule::GROUP
                ),
            )
            .expected = Some(format!("{}/v1", destination_rule::GROUP));
            vec![Decoded::Invalid(None)]
        }
        _ => {
            let policy_kinds = [traffic_policy::KIND, destination_rule::KIND];
            let policy_groups = [traffic_policy::GROUP, destination_rule::GROUP];
            let near_kind = suggest::closest(kind_text, policy_kinds);
            let near_group = suggest::closest(group, policy_groups);
            if let Some(meant) = near_kind.or(near_group.map(|g| {
                if g == traffic_policy::GROUP {
                    traffic_policy::KIND
                } else {
                    destination_rule::KIND
                }
            })) {
                let served = if meant == traffic_policy::KIND {
                    format!("{}/{}", traffic_policy::GROUP, traffic_policy::VERSION)
                } else {
                    format!("{}/v1", destination_rule::GROUP)
                };
                d.warning(
                    &kind,
                    format!("`{kind_text}` of `{api_version_text}` is not a policy Causeway reads, so it is skipped"),
                )
                .help = Some(format!("did you mean kind `{meant}` of `{served}`?"));
            }
            vec![Decoded::Skipped(skipped(
                d,
                field,
                api_version_text,
                kind_text,
            ))]
        }
    }
}

fn unknown_kind(d: &mut Decoder, field: &FieldRef<'_>, kind: &str, known: &[&str]) {
    let message = match suggest::closest(kind, known.iter().copied()) {
        Some(s) => format!("unknown kind `{kind}`, did you mean `{s}`?"),
        None => format!("unknown kind `{kind}`"),
    };
    d.error(field, message).expected = Some(format!("one of {}", quoted(known)));
}

fn unknown_version(d: &mut Decoder, field: &FieldRef<'_>, version: &str, known: &[&str]) {
    d.error(field, format!("unsupported API version `{version}`"))
        .expected = Some(format!("one of {}", quoted(known)));
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn skipped(d: &Decoder, field: &FieldRef<'_>, api_version: &str, kind: &str) -> SkippedObject {
    let name = field
        .member("metadata", "")
        .and_then(|m| m.member("name", ""))
        .and_then(|n| match n.node.resolve() {
            Some(Resolved::Str(s)) => Some(s.to_string()),
            _ => None,
        });
    SkippedObject {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name,
        location: d.location(field.span()),
    }
}

/// The envelope and spec of a policy object.
fn decode_policy(
    d: &mut Decoder,
    field: &FieldRef<'_>,
    kind: PolicyKind,
    api_version: &str,
) -> Decoded {
    let errors_before = d.error_count();
    let Some(object) = d.object(field, &ENVELOPE) else {
        return Decoded::Invalid(None);
    };
    let meta = d.require(&object, "metadata").and_then(|f| metadata(d, &f));
    let spec = d.require(&object, "spec");
    let location = d.location(field.span());
    let name_path = field
        .path
        .field("metadata")
        .field("name")
        .as_str()
        .to_string();
    let decoded = match (kind, spec) {
        (PolicyKind::TrafficPolicy, Some(spec)) => {
            traffic_policy_object(d, &spec, meta, location, name_path)
        }
        (PolicyKind::DestinationRule, Some(spec)) => {
            destination_rule_object(d, &spec, meta, location, name_path, api_version)
        }
        (_, None) => Decoded::Invalid(None),
    };
    match decoded {
        Decoded::Policy(object) if d.error_count() > errors_before => {
            Decoded::Invalid(Some(object))
        }
        decoded => decoded,
    }
}

fn traffic_policy_object(
    d: &mut Decoder,
    spec: &FieldRef<'_>,
    meta: Option<(String, String)>,
    location: Location,
    name_path: String,
) -> Decoded {
    let (target, policy) = traffic_policy::decode_spec(d, spec);
    let (Some((namespace, name)), Some(target)) = (meta, target) else {
        return Decoded::Invalid(None);
    };
    let target_location = spec
        .key_span("targetRef")
        .map_or_else(|| location.clone(), |span| d.location(span));
    Decoded::Policy(PolicyObject {
        origin: PolicyOrigin {
            kind: PolicyKind::TrafficPolicy,
            namespace: namespace.clone(),
            name,
        },
        location,
        name_path,
        attachments: vec![Attachment {
            target: PolicyTarget {
                service: ServiceRef {
                    namespace,
                    name: target.name,
                },
                port: target.port,
            },
            spec: policy,
            location: target_location,
            path: spec.path.field("targetRef").as_str().to_string(),
        }],
    })
}

fn destination_rule_object(
    d: &mut Decoder,
    spec: &FieldRef<'_>,
    meta: Option<(String, String)>,
    location: Location,
    name_path: String,
    api_version: &str,
) -> Decoded {
    let decoded = destination_rule::decode_spec(d, spec);
    let (Some((namespace, name)), Some(rule)) = (meta, decoded) else {
        return Decoded::Invalid(None);
    };
    let service = match resolve_host(&rule.host, &namespace) {
        HostTarget::Service(service) => {
            if let Some(host) = spec.member("host", "a Service host") {
                let name_ok = validate::service_name(d, &host, &service.name).is_some();
                let namespace_ok = validate::namespace(d, &host, &service.namespace).is_some();
                if !(name_ok && namespace_ok) {
                    return Decoded::Invalid(None);
                }
            }
            service
        }
        HostTarget::NotAService(why) => {
            d.report(
                crate::Severity::Warning,
                rule.host_span,
                &spec.path.field("host"),
                format!("host `{}` {why}; Causeway attaches policies to one Service each, so this rule has no effect", rule.host),
            );
            return Decoded::Skipped(SkippedObject {
                api_version: api_version.to_string(),
                kind: destination_rule::KIND.to_string(),
                name: Some(name),
                location,
            });
        }
    };
    let attachments = rule
        .attachments
        .into_iter()
        .map(|a| Attachment {
            target: PolicyTarget {
                service: service.clone(),
                port: a.port,
            },
            spec: a.spec,
            location: d.location(a.span),
            path: a.path,
        })
        .collect();
    Decoded::Policy(PolicyObject {
        origin: PolicyOrigin {
            kind: PolicyKind::DestinationRule,
            namespace,
            name,
        },
        location,
        name_path,
        attachments,
    })
}

/// `(namespace, name)` from `metadata`.
fn metadata(d: &mut Decoder, field: &FieldRef<'_>) -> Option<(String, String)> {
    let meta = d.object(field, &METADATA)?;
    let name = d.require(&meta, "name").and_then(|f| {
        let name = d.string(&f)?;
        validate::object_name(d, &f, name).map(str::to_string)
    });
    let namespace = match meta.get("namespace") {
        Some(f) => d
            .string(&f)
            .and_then(|ns| validate::namespace(d, &f, ns).map(str::to_string)),
        None => Some(DEFAULT_NAMESPACE.to_string()),
    };
    for free_form in ["labels", "annotations"] {
        if let Some(f) = meta.get(free_form)
            && !matches!(f.node.value, Value::Map(_))
        {
            let found = f.node.describe();
            d.error(&f, format!("expected a mapping of strings, found {found}"));
        }
    }
    Some((namespace?, name?))
}

/// What a DestinationRule host names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostTarget {
    /// A Service of the cluster.
    Service(ServiceRef),
    /// Not one Service of the cluster, and why.
    NotAService(&'static str),
}

/// Resolves a host as Istio does: a name without dots is a Service in the rule's own
/// namespace; `name.namespace.svc.<cluster domain>` is a Service; anything else is not.
pub fn resolve_host(host: &str, rule_namespace: &str) -> HostTarget {
    if host.contains('*') {
        return HostTarget::NotAService("is a wildcard");
    }
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        [name] => HostTarget::Service(ServiceRef {
            namespace: rule_namespace.to_string(),
            name: (*name).to_string(),
        }),
        [name, namespace, "svc", domain @ ..] if !domain.is_empty() => {
            HostTarget::Service(ServiceRef {
                namespace: (*namespace).to_string(),
                name: (*name).to_string(),
            })
        }
        _ => HostTarget::NotAService(
            "is not a Kubernetes Service (`name` or `name.namespace.svc.<domain>`)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_resolve_like_istio() {
        let svc = |ns: &str, name: &str| {
            HostTarget::Service(ServiceRef {
                namespace: ns.into(),
                name: name.into(),
            })
        };
        assert_eq!(resolve_host("reviews", "shop"), svc("shop", "reviews"));
        assert_eq!(
            resolve_host("reviews.prod.svc.cluster.local", "shop"),
            svc("prod", "reviews")
        );
        assert_eq!(
            resolve_host("reviews.prod.svc.edge.example", "shop"),
            svc("prod", "reviews")
        );
        assert!(matches!(
            resolve_host("reviews.prod", "shop"),
            HostTarget::NotAService(_)
        ));
        assert!(matches!(
            resolve_host("api.example.com", "shop"),
            HostTarget::NotAService(_)
        ));
        assert_eq!(
            resolve_host("*.shop.svc.cluster.local", "shop"),
            HostTarget::NotAService("is a wildcard")
        );
    }
}
