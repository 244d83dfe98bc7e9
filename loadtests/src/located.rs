//! Decoding one operator-written YAML document (a topology, a scenario) into a type,
//! with every error naming its line, column and field path.

use causeway_yaml::{Source, json, tree};
use serde::de::DeserializeOwned;

/// Decodes the one document of `source` as `T`; `what` names the expected document in
/// errors (`a \`kind: Topology\` document`). Errors are `line:column: path: problem`.
pub fn decode_one<T: DeserializeOwned>(source: &Source, what: &str) -> Result<T, String> {
    let stream = tree::parse(source.text());
    if let Some(error) = stream.errors.first() {
        return Err(format!(
            "{}:{}: {}",
            error.pos.line, error.pos.column, error.message
        ));
    }
    let mut roots = stream.documents.iter().filter_map(|d| d.root.as_ref());
    let root = roots
        .next()
        .ok_or_else(|| format!("the file is empty; expected {what}"))?;
    if roots.next().is_some() {
        return Err("expected one document, found several".into());
    }
    let located = json::to_json(root).map_err(|errors| match errors.first() {
        Some(e) => format!(
            "{}:{}: {}: {}",
            e.span.start.line, e.span.start.column, e.path, e.message
        ),
        None => "cannot read the document".into(),
    })?;
    serde_path_to_error::deserialize(located.value.clone()).map_err(|e| {
        let path = e.path().to_string();
        let span = located.span_of(&path);
        format!(
            "{}:{}: {path}: {}",
            span.start.line,
            span.start.column,
            e.inner()
        )
    })
}

/// Checks a document's `apiVersion` and `kind` against the ones expected.
pub fn check_kind(api_version: &str, kind: &str, expected_kind: &str) -> Result<(), String> {
    if kind == expected_kind && api_version == API_VERSION {
        Ok(())
    } else {
        Err(format!(
            "expected apiVersion {API_VERSION}, kind {expected_kind}; found {api_version} {kind}"
        ))
    }
}

/// The apiVersion of Causeway's own operator files (topologies, scenarios).
pub const API_VERSION: &str = "causeway.dev/v1alpha1";
