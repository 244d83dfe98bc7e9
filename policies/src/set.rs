//! The set of compiled policies a node enforces, and how it is built from objects.
//!
//! A [`PolicySet`] maps each Service port to its plan: a port-specific policy wins over a
//! Service-wide one, which wins over the default. It is immutable; the mesh swaps whole
//! sets. [`PolicySetBuilder`] refuses a second policy for a target that already has one,
//! naming both places, and keeps the first — so adding a conflicting object never changes
//! what is enforced.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Arc;

use serde::Serialize;

use crate::compile::compile;
use crate::diag::{Diagnostic, Location, Severity};
use crate::object::{Attachment, PolicyObject, PolicyOrigin, PolicyTarget};
use crate::plan::ServicePolicy;

/// A compiled policy bound to its target.
#[derive(Debug, Clone, Serialize)]
pub struct BoundPolicy {
    /// The object it came from.
    pub origin: PolicyOrigin,
    /// The plan.
    pub plan: Arc<ServicePolicy>,
}

/// Policies of one Service.
#[derive(Debug, Clone, Default)]
struct ServicePolicies {
    all_ports: Option<BoundPolicy>,
    ports: BTreeMap<u16, BoundPolicy>,
}

/// Every compiled policy, looked up by Service and port.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    /// namespace → service name → policies.
    services: BTreeMap<String, BTreeMap<String, ServicePolicies>>,
    default: Arc<ServicePolicy>,
    len: usize,
    objects: usize,
}

impl PolicySet {
    /// The plan for a Service port: the port's own policy, else the Service's, else the
    /// default.
    pub fn lookup(&self, namespace: &str, service: &str, port: u16) -> &Arc<ServicePolicy> {
        self.bound(namespace, service, port)
            .map_or(&self.default, |bound| &bound.plan)
    }

    /// The policy bound for a Service port, if any object names it.
    pub fn bound(&self, namespace: &str, service: &str, port: u16) -> Option<&BoundPolicy> {
        let policies = self.services.get(namespace)?.get(service)?;
        policies.ports.get(&port).or(policies.all_ports.as_ref())
    }

    /// The plan of services no policy names.
    pub fn default_plan(&self) -> &Arc<ServicePolicy> {
        &self.default
    }

    /// Every bound policy with its target, ordered by namespace, service and port.
    pub fn iter(&self) -> impl Iterator<Item = (PolicyTarget, &BoundPolicy)> {
        self.services.iter().flat_map(|(namespace, services)| {
            services.iter().flat_map(move |(name, policies)| {
                let target = move |port| PolicyTarget {
                    service: crate::ServiceRef {
                        namespace: namespace.clone(),
                        name: name.clone(),
                    },
                    port,
                };
                policies
                    .all_ports
                    .iter()
                    .map(move |b| (target(None), b))
                    .chain(
                        policies
                            .ports
                            .iter()
                            .map(move |(p, b)| (target(Some(*p)), b)),
                    )
            })
        })
    }

    /// The number of bound targets.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The number of objects with at least one bound target.
    pub fn objects(&self) -> usize {
        self.objects
    }

    /// Whether no policy is bound.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Who claimed a target first.
#[derive(Debug, Clone)]
struct Claim {
    origin: PolicyOrigin,
    location: Location,
    valid: bool,
}

/// Builds a [`PolicySet`], refusing conflicts.
#[derive(Debug, Default)]
pub struct PolicySetBuilder {
    set: PolicySet,
    /// Where each claimed target was written, by which object, and whether that object
    /// is valid — for conflict messages.
    written_at: BTreeMap<PolicyTarget, Claim>,
    /// Where each object was written, to catch the same object twice.
    objects: BTreeMap<PolicyOrigin, Location>,
    diagnostics: Vec<Diagnostic>,
}

impl PolicySetBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every attachment of `object`, or reports why one cannot be added. An object
    /// defined twice is refused whole.
    pub fn add(&mut self, object: PolicyObject) {
        if !self.register(&object) {
            return;
        }
        let mut bound_any = false;
        for attachment in object.attachments {
            if !self.claim(&object.origin, &attachment, true) {
                continue;
            }
            bound_any = true;
            let bound = BoundPolicy {
                origin: object.origin.clone(),
                plan: Arc::new(compile(&attachment.spec)),
            };
            let service = self
                .set
                .services
                .entry(attachment.target.service.namespace.clone())
                .or_default()
                .entry(attachment.target.service.name.clone())
                .or_default();
            match attachment.target.port {
                Some(port) => {
                    service.ports.insert(port, bound);
                }
                None => service.all_ports = Some(bound),
            }
            self.set.len += 1;
        }
        if bound_any {
            self.set.objects += 1;
        }
    }

    /// Records the targets of an object that has errors, binding nothing, so that another
    /// policy for the same target is still reported as a conflict in the same pass.
    pub fn claim_invalid(&mut self, object: &PolicyObject) {
        if !self.register(object) {
            return;
        }
        for attachment in &object.attachments {
            self.claim(&object.origin, attachment, false);
        }
    }

    /// Records an object's identity; `false` (with an error) when it was seen before.
    fn register(&mut self, object: &PolicyObject) -> bool {
        match self.objects.entry(object.origin.clone()) {
            Entry::Occupied(first) => {
                self.diagnostics.push(
                    Diagnostic::new(
                        Severity::Error,
                        object.location.clone(),
                        format!("{} is defined twice", object.origin),
                    )
                    .with_path(object.name_path.clone())
                    .with_related(first.get().clone(), "first defined")
                    .with_help("rename one of them, or remove the copy"),
                );
                false
            }
            Entry::Vacant(slot) => {
                slot.insert(object.location.clone());
                true
            }
        }
    }

    /// Claims a target; `false` (with an error naming both places) when another object
    /// claimed it first.
    fn claim(&mut self, origin: &PolicyOrigin, attachment: &Attachment, valid: bool) -> bool {
        let target = &attachment.target;
        if let Some(first) = self.written_at.get(target) {
            let first_origin = &first.origin;
            let (message, help) = if first.valid {
                (
                    format!("{target} already has a policy from {first_origin}"),
                    "merge the two into one policy; until then the first one applies",
                )
            } else {
                (
                    format!("{target} already has a policy from {first_origin}, which has errors"),
                    "merge the two into one policy; neither applies until the errors are fixed",
                )
            };
            self.diagnostics.push(
                Diagnostic::new(Severity::Error, attachment.location.clone(), message)
                    .with_path(attachment.path.clone())
                    .with_related(first.location.clone(), format!("{first_origin} targets it"))
                    .with_help(help),
            );
            return false;
        }
        self.written_at.insert(
            target.clone(),
            Claim {
                origin: origin.clone(),
                location: attachment.location.clone(),
                valid,
            },
        );
        true
    }

    /// The set, and the conflicts found while building it.
    pub fn build(self) -> (PolicySet, Vec<Diagnostic>) {
        (self.set, self.diagnostics)
    }
}
