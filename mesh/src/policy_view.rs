//! The policies a node enforces, compiled from its snapshot with `causeway-policies`.
//!
//! Each policy object is checked on its own; a valid one becomes that object's last good
//! version, an invalid one is reported and its last good version (if any) stays in force.
//! The set is rebuilt from the last good versions and swapped in whole, so a request sees
//! either the old set or the new one, never a mix.
//!
//! It compiles and holds policies; it does not apply them to traffic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use causeway_api::ObjectKey;
use causeway_edge_core::metamanager::Snapshot;
use causeway_edge_core::source::ManifestCheck;
use causeway_policies::diag::render_text;
use causeway_policies::{Diagnostic, PolicySet, Report, Source};

/// The compiled policies of a node, and what was wrong with the ones refused.
#[derive(Debug, Default)]
pub struct Policies {
    current: ArcSwap<PolicySet>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    version: u64,
    last_good: BTreeMap<ObjectKey, String>,
    problems: Vec<String>,
}

impl Policies {
    /// The set in force.
    pub fn set(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// What was wrong with the policies refused at the last update, rendered.
    pub fn problems(&self) -> Vec<String> {
        self.state
            .lock()
            .map(|s| s.problems.clone())
            .unwrap_or_default()
    }

    /// Recompiles from `snapshot` if it is newer than the last one seen.
    pub fn update(&self, snapshot: &Snapshot) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.version == snapshot.version {
            return;
        }
        state.version = snapshot.version;
        let mut last_good = BTreeMap::new();
        let mut problems = Vec::new();
        for raw in snapshot.policies() {
            let text = raw.body.to_string();
            let source = Source::new(raw.key.to_string(), text.as_str());
            let report = Report::check(vec![source], Vec::new());
            if report.is_ok() {
                last_good.insert(raw.key.clone(), text);
            } else {
                for d in report.diagnostics.iter().filter(|d| d.is_error()) {
                    let rendered = render_text(d, &report.sources);
                    tracing::warn!(policy = %raw.key, diagnostic = %rendered.trim_end(), "refused a policy");
                    problems.push(rendered);
                }
                if let Some(previous) = state.last_good.get(&raw.key) {
                    tracing::warn!(policy = %raw.key, "keeping the last good version of the policy");
                    last_good.insert(raw.key.clone(), previous.clone());
                }
            }
        }
        let sources = last_good
            .iter()
            .map(|(key, text)| Source::new(key.to_string(), text.as_str()))
            .collect();
        let report = Report::check(sources, Vec::new());
        for d in report.diagnostics.iter().filter(|d| d.is_error()) {
            // Conflicts between policies that are each valid.
            let rendered = render_text(d, &report.sources);
            tracing::warn!(diagnostic = %rendered.trim_end(), "two policies conflict");
            problems.push(rendered);
        }
        tracing::info!(
            policies = report.set.objects(),
            targets = report.set.len(),
            problems = problems.len(),
            "policies compiled"
        );
        self.current.store(Arc::new(report.set));
        state.last_good = last_good;
        state.problems = problems;
    }
}

/// Checks the policies in a manifest file with `causeway-policies`, so a node fed from
/// manifests refuses a bad policy with its file, line and column.
#[derive(Debug, Default)]
pub struct PolicyCheck;

impl ManifestCheck for PolicyCheck {
    fn check(&self, source: &Source) -> Vec<Diagnostic> {
        // Envelope and syntax problems have no field path and are the manifest reader's
        // to report; everything about a policy's content has one.
        causeway_policies::parse_source(source)
            .diagnostics
            .into_iter()
            .filter(|d| d.path.is_some())
            .collect()
    }
}
