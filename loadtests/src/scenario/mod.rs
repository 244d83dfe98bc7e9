//! Declared benchmark scenarios (`loadtests/scenarios/*.yaml`) and the runner that
//! turns one into measurements on this machine.
//!
//! - [`spec`]: the scenario file, decoded with located errors and checked whole.
//! - [`runner`]: the loopback world a scenario describes — echo endpoints as
//!   processes, mesh nodes fed from manifests, HAProxy — its variants run one after
//!   another with the load generator, events (an endpoint killed, restarted) during a
//!   run.
//! - [`checks`]: the verdicts and derived figures, pure functions of the runs, bounded
//!   by `loadtests/thresholds.yaml`.
//! - [`catalogue`]: the scenarios the binary carries.
//!
//! Everything listens on 127.0.0.1 and is stopped when the run ends.

pub mod catalogue;
pub mod checks;
pub mod runner;
pub mod spec;

pub use checks::Thresholds;
pub use spec::{Scenario, ScenarioError};

/// The pod name of endpoint `index` of Service `service`, as its echo app answers.
pub fn pod_name(service: &str, index: usize) -> String {
    format!("{service}-{index}")
}
