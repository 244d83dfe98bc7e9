//! Operator policy for Causeway: the YAML people write, checked with errors they can act
//! on, and compiled into the immutable plans the mesh consults per request.
//!
//! Two object kinds are read: Causeway's own `TrafficPolicy`
//! (`policy.causeway.dev/v1alpha1`) and Istio's `DestinationRule`, whose load balancing,
//! connection pool and outlier detection map onto the same plan. The path through the
//! crate:
//!
//! ```text
//! files / stdin ──load──▶ Source ──yaml──▶ located tree ──decode (schema)──▶ spec
//!       ──compile──▶ ServicePolicy (plan) ──set──▶ PolicySet (lookup by service, port)
//! ```
//!
//! Every problem becomes a [`Diagnostic`] with file, line, column and field path; an
//! invalid object is left out whole and never half-applied. Nothing here panics on input
//! (property-tested over arbitrary bytes and mutated documents).
//!
//! It imports only `causeway-yaml` of ours (located YAML and diagnostics), and does no
//! I/O beyond reading the files it is asked to read ([`load`]).

pub mod check;
pub mod compile;
pub mod decode;
pub mod destination_rule;
pub mod duration;
pub mod load;
pub mod object;
pub mod plan;
pub mod schema;
pub mod set;
pub mod spec;
pub mod suggest;
pub mod traffic_policy;
mod validate;

pub use causeway_yaml::tree as yaml;
pub use causeway_yaml::{diag, source};

pub use check::{ParsedSource, Report, parse_source};
pub use diag::{Diagnostic, Location, Severity};
pub use load::{Input, read_inputs};
pub use object::{PolicyKind, PolicyOrigin, PolicyTarget, ServiceRef};
pub use plan::ServicePolicy;
pub use set::{BoundPolicy, PolicySet, PolicySetBuilder};
pub use source::Source;

/// Reads and checks `inputs` (`-` is standard input): the whole of `policy check`.
pub fn check_inputs(inputs: &[Input], stdin: &mut dyn std::io::Read) -> Report {
    let (sources, diagnostics) = read_inputs(inputs, stdin);
    Report::check(sources, diagnostics)
}
