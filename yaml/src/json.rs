//! A located tree as JSON, for typed decoding with serde.
//!
//! Kubernetes objects are decoded into their `k8s-openapi` types through serde; serde
//! knows field paths, not lines. [`to_json`] converts a document to a JSON value and
//! remembers where each field path (`spec.ports[0].port`) was written, so the path of a
//! serde error (from `serde_path_to_error`) finds its line and column again.

use std::collections::HashMap;

use serde_json::{Map, Number, Value as Json};

use crate::tree::{Node, Resolved, Span, Value};

/// A document as JSON, with the position of every field path.
#[derive(Debug, Clone)]
pub struct Located {
    /// The document.
    pub value: Json,
    spans: HashMap<String, Span>,
    root: Span,
}

impl Located {
    /// Where `path` (as `spec.ports[0].port`) was written; for a path that was not
    /// written (a missing field), where its nearest written parent was.
    pub fn span_of(&self, path: &str) -> Span {
        let mut path = path;
        loop {
            if let Some(span) = self.spans.get(path) {
                return *span;
            }
            match path.rfind(['.', '[']) {
                Some(i) => path = &path[..i],
                None => return self.root,
            }
        }
    }
}

/// Why a document cannot be JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonError {
    /// Where.
    pub span: Span,
    /// The field path.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Converts a document; every problem is reported, not just the first.
pub fn to_json(node: &Node) -> Result<Located, Vec<JsonError>> {
    let mut spans = HashMap::new();
    let mut errors = Vec::new();
    let value = convert(node, String::new(), &mut spans, &mut errors);
    if errors.is_empty() {
        Ok(Located {
            value,
            spans,
            root: node.span,
        })
    } else {
        Err(errors)
    }
}

fn convert(
    node: &Node,
    path: String,
    spans: &mut HashMap<String, Span>,
    errors: &mut Vec<JsonError>,
) -> Json {
    spans.insert(path.clone(), node.span);
    match &node.value {
        Value::Scalar(_) => match node.resolve() {
            Some(Resolved::Null) | None => Json::Null,
            Some(Resolved::Bool(b)) => Json::Bool(b),
            Some(Resolved::Int(i)) => {
                if let Ok(i) = i64::try_from(i) {
                    Json::Number(Number::from(i))
                } else if let Ok(u) = u64::try_from(i) {
                    Json::Number(Number::from(u))
                } else {
                    float(i as f64, node, &path, errors)
                }
            }
            Some(Resolved::Float(f)) => float(f, node, &path, errors),
            Some(Resolved::Str(s) | Resolved::Tagged(s)) => Json::String(s.to_string()),
        },
        Value::Seq(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| convert(item, format!("{path}[{i}]"), spans, errors))
                .collect(),
        ),
        Value::Map(_) => {
            let (pairs, merge_errors) = node.merged_pairs();
            for e in merge_errors {
                errors.push(JsonError {
                    span: e.span,
                    path: join(&path, "<<"),
                    message: e.message,
                });
            }
            let mut object = Map::new();
            for (key, value) in pairs {
                let name = match key.resolve() {
                    Some(Resolved::Str(s) | Resolved::Tagged(s)) => s.to_string(),
                    Some(Resolved::Int(i)) => i.to_string(),
                    Some(Resolved::Bool(b)) => b.to_string(),
                    _ => {
                        errors.push(JsonError {
                            span: key.span,
                            path: path.clone(),
                            message: format!("keys must be strings, found {}", key.describe()),
                        });
                        continue;
                    }
                };
                let child = join(&path, &name);
                if object.contains_key(&name) {
                    errors.push(JsonError {
                        span: key.span,
                        path: child,
                        message: format!("duplicate key `{name}`"),
                    });
                    continue;
                }
                let converted = convert(value, child, spans, errors);
                object.insert(name, converted);
            }
            Json::Object(object)
        }
    }
}

fn float(f: f64, node: &Node, path: &str, errors: &mut Vec<JsonError>) -> Json {
    match Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None => {
            errors.push(JsonError {
                span: node.span,
                path: path.to_string(),
                message: format!("`{f}` cannot be represented (Kubernetes objects are JSON)"),
            });
            Json::Null
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::parse;

    fn located(text: &str) -> Located {
        let stream = parse(text);
        assert!(stream.errors.is_empty(), "{:?}", stream.errors);
        to_json(stream.documents[0].root.as_ref().unwrap()).unwrap()
    }

    #[test]
    fn values_become_json_and_paths_find_their_lines() {
        let doc = located(
            "kind: Service\nspec:\n  ports:\n  - port: 80\n    name: http\n  - port: 8080\n  x: [1, 2.5, true, null, \"s\"]\n",
        );
        assert_eq!(doc.value["spec"]["ports"][1]["port"], 8080);
        assert_eq!(
            doc.value["spec"]["x"],
            serde_json::json!([1, 2.5, true, null, "s"])
        );
        assert_eq!(doc.span_of("spec.ports[1].port").start.line, 6);
        assert_eq!(doc.span_of("spec.ports[0].name").start.line, 5);
        // A field that is not there maps to its nearest parent.
        assert_eq!(doc.span_of("spec.ports[1].targetPort").start.line, 6);
        assert_eq!(doc.span_of("nothing.here").start.line, 1);
    }

    #[test]
    fn merge_keys_and_numeric_keys_work() {
        let doc = located("base: &b {a: 1, b: 2}\nthing:\n  <<: *b\n  b: 3\nlabels:\n  80: http\n");
        assert_eq!(doc.value["thing"], serde_json::json!({"b": 3, "a": 1}));
        assert_eq!(doc.value["labels"]["80"], "http");
    }

    #[test]
    fn what_json_cannot_hold_is_reported() {
        let stream = parse("a: .nan\n? [x]\n: 1\nb: 1\nb: 2\n");
        let errors = to_json(stream.documents[0].root.as_ref().unwrap()).unwrap_err();
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0].contains("cannot be represented"));
        assert!(messages[1].contains("keys must be strings"));
        assert_eq!(messages[2], "duplicate key `b`");
    }
}
