//! Kubernetes manifests — YAML as `kubectl apply` takes it — decoded into the objects a
//! node stores, with every problem located at file, line and column.
//!
//! A document that fails is reported and left out; the others are kept. Kinds Causeway
//! does not store (Deployments, ConfigMaps for now…) are skipped and counted. `kind:
//! List` is unpacked.

use causeway_yaml::json::to_json;
use causeway_yaml::tree::{self, Node, Span};
use causeway_yaml::{Diagnostic, Location, Severity, Source};
use serde_json::Value as Json;

use crate::object::{KubeObject, ObjectError, POLICY_KINDS};

/// What a manifest source holds.
#[derive(Debug, Default)]
pub struct Manifests {
    /// The objects, in source order, each with where it starts.
    pub objects: Vec<(KubeObject, Location)>,
    /// Problems, located.
    pub diagnostics: Vec<Diagnostic>,
    /// Objects of kinds Causeway does not store.
    pub skipped: usize,
}

impl Manifests {
    /// Whether any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Decodes every document of `source`.
pub fn decode(source: &Source) -> Manifests {
    let mut out = Manifests::default();
    let stream = tree::parse(source.text());
    for error in &stream.errors {
        out.diagnostics.push(Diagnostic::new(
            Severity::Error,
            Location::at(source.name(), error.pos),
            error.message.clone(),
        ));
    }
    for document in &stream.documents {
        if let Some(root) = &document.root {
            decode_document(source, root, &mut out);
        }
    }
    out
}

fn error(source: &Source, span: Span, path: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic::new(
        Severity::Error,
        Location::of_span(source.name(), span),
        message,
    )
    .with_path(path)
}

fn decode_document(source: &Source, root: &Node, out: &mut Manifests) {
    let located = match to_json(root) {
        Ok(located) => located,
        Err(errors) => {
            for e in errors {
                out.diagnostics
                    .push(error(source, e.span, &e.path, e.message));
            }
            return;
        }
    };
    decode_value(source, &located, &located.value, "", root.span, out);
}

fn decode_value(
    source: &Source,
    located: &causeway_yaml::json::Located,
    value: &Json,
    prefix: &str,
    span: Span,
    out: &mut Manifests,
) {
    let join = |path: &str| {
        if prefix.is_empty() {
            path.to_string()
        } else if path.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{path}")
        }
    };
    let Some(object) = value.as_object() else {
        out.diagnostics.push(error(
            source,
            span,
            prefix,
            "expected a Kubernetes object (a mapping with apiVersion and kind)",
        ));
        return;
    };
    let text = |key: &str| object.get(key).and_then(Json::as_str);
    let (Some(api_version), Some(kind)) = (text("apiVersion"), text("kind")) else {
        let missing = if text("apiVersion").is_none() {
            "apiVersion"
        } else {
            "kind"
        };
        out.diagnostics.push(error(
            source,
            span,
            prefix,
            format!("not a Kubernetes object: missing `{missing}`"),
        ));
        return;
    };
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    if group.is_empty() && kind == "List" {
        let items = object
            .get("items")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, item) in items.iter().enumerate() {
            let path = join(&format!("items[{i}]"));
            let item_span = located.span_of(&path);
            decode_value(source, located, item, &path, item_span, out);
        }
        return;
    }
    let stored = matches!(
        (group, version, kind),
        ("", "v1", "Service" | "Endpoints" | "Pod" | "Node")
            | ("discovery.k8s.io", "v1", "EndpointSlice")
    ) || POLICY_KINDS
        .iter()
        .any(|(g, k, _)| *g == group && *k == kind);
    if !stored {
        out.skipped += 1;
        return;
    }
    match KubeObject::from_json(group, kind, value.clone()) {
        Ok(object) => out
            .objects
            .push((object, Location::of_span(source.name(), span))),
        Err(ObjectError::Field { path, message }) => {
            let full = join(&path);
            out.diagnostics.push(error(
                source,
                located.span_of(&full),
                &full,
                format!("{kind}: {message}"),
            ));
        }
        Err(other) => {
            let path = join("metadata.name");
            out.diagnostics.push(error(
                source,
                located.span_of(&path),
                &path,
                format!("{kind}: {other}"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(text: &str) -> Manifests {
        decode(&Source::new("m.yaml", text))
    }

    #[test]
    fn every_stored_kind_decodes_and_others_are_skipped() {
        let m = decoded(
            "apiVersion: v1\nkind: Service\nmetadata: {name: echo, namespace: demo}\nspec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80}]}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: echo-1, namespace: demo, labels: {kubernetes.io/service-name: echo}}\naddressType: IPv4\nendpoints: [{addresses: [127.0.1.1], nodeName: edge-1}]\nports: [{name: http, port: 8080}]\n---\napiVersion: v1\nkind: Node\nmetadata: {name: edge-1, labels: {causeway.dev/site: factory}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n---\napiVersion: policy.causeway.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: echo, namespace: demo}\nspec: {targetRef: {name: echo}}\n",
        );
        assert!(m.diagnostics.is_empty(), "{:?}", m.diagnostics);
        let keys: Vec<String> = m
            .objects
            .iter()
            .map(|(o, _)| o.key().unwrap().to_string())
            .collect();
        assert_eq!(
            keys,
            vec![
                "services/demo/echo",
                "endpointslices.discovery.k8s.io/demo/echo-1",
                "nodes/edge-1",
                "trafficpolicies.policy.causeway.dev/demo/echo",
            ]
        );
        assert_eq!(m.skipped, 1);
        assert_eq!(m.objects[2].1.pos.line, 13);
    }

    #[test]
    fn a_malformed_object_is_located_and_the_rest_kept() {
        let m = decoded(
            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - port: eighty\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\n",
        );
        assert_eq!(m.objects.len(), 1);
        assert_eq!(m.diagnostics.len(), 1);
        let d = &m.diagnostics[0];
        assert_eq!(d.path.as_deref(), Some("spec.ports[0].port"));
        assert_eq!(d.location.as_ref().unwrap().pos.line, 6);
        assert!(
            d.message.starts_with("Service: invalid type"),
            "{}",
            d.message
        );
    }

    #[test]
    fn lists_unpack_with_item_paths() {
        let m = decoded(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p}\n  spec: {nodeName: 7}\n",
        );
        assert_eq!(m.diagnostics.len(), 1, "{:?}", m.diagnostics);
        assert_eq!(
            m.diagnostics[0].path.as_deref(),
            Some("items[0].spec.nodeName")
        );
        assert_eq!(m.diagnostics[0].location.as_ref().unwrap().pos.line, 7);
    }

    #[test]
    fn objects_without_a_name_or_kind_are_refused() {
        let m = decoded("apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\n---\nfoo: bar\n");
        assert_eq!(m.objects.len(), 0);
        assert_eq!(m.diagnostics.len(), 2);
        assert!(
            m.diagnostics[0].message.contains("no metadata.name"),
            "{}",
            m.diagnostics[0].message
        );
        assert!(m.diagnostics[1].message.contains("missing `apiVersion`"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    const PIECES: &[&str] = &[
        "apiVersion: v1\n",
        "kind: Service\n",
        "kind: Pod\n",
        "kind: List\n",
        "items:\n",
        "- ",
        "metadata: {name: a}\n",
        "spec:\n",
        "  ports: [{port: 80}]\n",
        "  ports: [{port: x}]\n",
        "---\n",
        "{",
        "}",
        "[",
        "]",
        ": ",
        "&a ",
        "*a",
        "<<: ",
        "\"",
        "  ",
        "\n",
        "~",
        "1e999",
        "apiVersion: discovery.k8s.io/v1\n",
        "kind: EndpointSlice\n",
        "endpoints: [{addresses: [1]}]\n",
    ];

    proptest! {
        #[test]
        fn arbitrary_manifests_never_panic(pieces in proptest::collection::vec(0..PIECES.len(), 0..40)) {
            let text: String = pieces.iter().map(|&i| PIECES[i]).collect();
            let m = decode(&Source::new("p.yaml", text.as_str()));
            for d in &m.diagnostics {
                prop_assert!(d.location.is_some());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&Source::new("p.yaml", String::from_utf8_lossy(&bytes).as_ref()));
        }
    }
}
