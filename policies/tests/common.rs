//! Helpers shared by the integration tests of this crate.
#![allow(dead_code)]

use std::path::PathBuf;

use causeway_policies::{Report, Source};

/// Checks one in-memory file.
pub fn check(text: &str) -> Report {
    Report::check(vec![Source::new("test.yaml", text)], Vec::new())
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
        .to_path_buf()
}

/// A TrafficPolicy for `shop/reviews` with `spec_body` (indented under `spec:`, after the
/// target).
pub fn traffic_policy(spec_body: &str) -> String {
    format!(
        "apiVersion: policy.causeway.dev/v1alpha1\nkind: TrafficPolicy\nmetadata:\n  name: reviews\n  namespace: shop\nspec:\n  targetRef:\n    name: reviews\n{spec_body}"
    )
}

/// Every diagnostic as `severity line:col path: message`, for readable assertions.
pub fn summary(report: &Report) -> Vec<String> {
    report
        .diagnostics
        .iter()
        .map(|d| {
            let at = d
                .location
                .as_ref()
                .map(|l| format!("{}:{}", l.pos.line, l.pos.column))
                .unwrap_or_default();
            format!(
                "{:?} {at} {}: {}",
                d.severity,
                d.path.as_deref().unwrap_or("-"),
                d.message
            )
        })
        .collect()
}
