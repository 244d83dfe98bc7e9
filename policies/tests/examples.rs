//! Every example under `examples/policies/` is valid, warning-free, and together they
//! write every field Causeway acts on — so the examples teach the whole schema.

mod common;

use std::collections::BTreeSet;

use causeway_policies::schema::{ObjectSchema, Support, Ty};
use causeway_policies::yaml::{self, Node, Resolved, Value};
use causeway_policies::{Input, check_inputs, destination_rule, traffic_policy};
use common::{repo_root, summary};

fn example_dir() -> std::path::PathBuf {
    repo_root().join("examples/policies")
}

#[test]
fn every_example_is_valid_and_warning_free() {
    let report = check_inputs(&[Input::Path(example_dir())], &mut std::io::empty());
    assert!(
        report.sources.len() >= 5,
        "examples found: {}",
        report.sources.len()
    );
    assert_eq!(summary(&report), Vec::<String>::new());
    assert!(report.set.len() >= 10);
}

/// Fields written under `spec` of documents of `kind`, as `Schema.field` — each schema
/// type once, so a section shared by the top level and port-level settings counts once.
fn written_fields(kind: &str, spec_schema: &'static ObjectSchema) -> BTreeSet<String> {
    let mut written = BTreeSet::new();
    for entry in std::fs::read_dir(example_dir()).expect("examples directory") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("example text");
        for document in yaml::parse(&text).documents {
            let Some(root) = document.root else { continue };
            if get(&root, "kind").and_then(scalar) != Some(kind) {
                continue;
            }
            if let Some(spec) = get(&root, "spec") {
                collect(spec, spec_schema, &mut written);
            }
        }
    }
    written
}

fn get<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    let Value::Map(entries) = &node.value else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| scalar(k) == Some(key))
        .map(|(_, v)| v.as_ref())
}

fn scalar(node: &Node) -> Option<&str> {
    match node.resolve() {
        Some(Resolved::Str(s)) => Some(s),
        _ => None,
    }
}

fn collect(node: &Node, schema: &'static ObjectSchema, out: &mut BTreeSet<String>) {
    let Value::Map(entries) = &node.value else {
        return;
    };
    for (key, value) in entries {
        let Some(field) = scalar(key).and_then(|k| schema.field(k)) else {
            continue;
        };
        out.insert(format!("{}.{}", schema.name, field.name));
        match field.ty {
            Ty::Object(inner) => collect(value, inner, out),
            Ty::ObjectList(inner) => {
                if let Value::Seq(items) = &value.value {
                    for item in items {
                        collect(item, inner, out);
                    }
                }
            }
            Ty::Value(_) | Ty::Any => {}
        }
    }
}

/// Every supported `Schema.field` reachable from `schema`.
fn supported_fields(schema: &'static ObjectSchema, out: &mut BTreeSet<String>) {
    for field in schema.fields {
        if field.support != Support::Supported {
            continue;
        }
        out.insert(format!("{}.{}", schema.name, field.name));
        if let Ty::Object(inner) | Ty::ObjectList(inner) = field.ty {
            supported_fields(inner, out);
        }
    }
}

fn missing_from_examples(kind: &str, schema: &'static ObjectSchema) -> Vec<String> {
    let written = written_fields(kind, schema);
    let mut all = BTreeSet::new();
    supported_fields(schema, &mut all);
    all.difference(&written).cloned().collect()
}

#[test]
fn examples_cover_every_traffic_policy_field() {
    let missing = missing_from_examples(traffic_policy::KIND, &traffic_policy::SPEC);
    assert!(missing.is_empty(), "no example writes {missing:#?}");
}

#[test]
fn examples_cover_every_supported_destination_rule_field() {
    let missing = missing_from_examples(destination_rule::KIND, &destination_rule::SPEC);
    assert!(missing.is_empty(), "no example writes {missing:#?}");
}
