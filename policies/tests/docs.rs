//! `docs/policies.md` is checked against the schema the decoder reads, so the reference
//! cannot drift: every field documented exists with the type and default written there,
//! every field read is documented, and the sample output is what the checker prints.

mod common;

use std::collections::BTreeMap;

use causeway_policies::schema::{Field, ObjectSchema, Support, Ty};
use causeway_policies::{destination_rule, traffic_policy};
use common::repo_root;

fn reference() -> String {
    std::fs::read_to_string(repo_root().join("docs/policies.md")).expect("docs/policies.md")
}

/// The text between heading `## {title}` and the next `## ` heading.
fn section<'a>(doc: &'a str, title: &str) -> &'a str {
    let start = doc
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("docs/policies.md has no `## {title}` section"));
    let rest = &doc[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

/// Table rows whose first cell is a backticked name: name → the other cells.
fn rows(text: &str) -> BTreeMap<String, Vec<String>> {
    text.lines()
        .filter_map(|line| {
            let cells: Vec<String> = line
                .trim()
                .strip_prefix('|')?
                .strip_suffix('|')?
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect();
            let name = cells
                .first()?
                .strip_prefix('`')?
                .strip_suffix('`')?
                .to_string();
            Some((name, cells[1..].to_vec()))
        })
        .collect()
}

fn type_cell(field: &Field) -> &'static str {
    match field.ty {
        Ty::Object(_) => "object",
        Ty::ObjectList(_) => "list of objects",
        Ty::Value(_) | Ty::Any => field.expected(),
    }
}

#[test]
fn traffic_policy_table_matches_the_schema() {
    let doc = reference();
    let documented = rows(section(&doc, "TrafficPolicy fields"));
    let schema: BTreeMap<String, &Field> = traffic_policy::SPEC.paths("spec").into_iter().collect();
    let mut expected_rows = String::new();
    let mut problems = Vec::new();
    for (path, field) in &schema {
        let default = field.default.unwrap_or("—");
        expected_rows.push_str(&format!(
            "| `{path}` | {} | {default} | … |\n",
            type_cell(field)
        ));
        match documented.get(path) {
            None => problems.push(format!("{path} is read but not documented")),
            Some(cells) => {
                if cells.first().map(String::as_str) != Some(type_cell(field)) {
                    problems.push(format!(
                        "{path}: type documented as {:?}, schema says {:?}",
                        cells.first(),
                        type_cell(field)
                    ));
                }
                if cells.get(1).map(String::as_str) != Some(default) {
                    problems.push(format!(
                        "{path}: default documented as {:?}, schema says {default:?}",
                        cells.get(1)
                    ));
                }
                if cells.get(2).is_none_or(|m| m.is_empty()) {
                    problems.push(format!("{path}: no meaning written"));
                }
            }
        }
    }
    for path in documented.keys() {
        if !schema.contains_key(path) {
            problems.push(format!(
                "{path} is documented but the decoder does not read it"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/policies.md drifted from the schema:\n{}\n\nrows the schema implies:\n{expected_rows}",
        problems.join("\n")
    );
}

/// Every schema type reachable from `schema`, by name.
fn schema_types(
    schema: &'static ObjectSchema,
    out: &mut BTreeMap<&'static str, &'static ObjectSchema>,
) {
    out.insert(schema.name, schema);
    for field in schema.fields {
        if let Ty::Object(inner) | Ty::ObjectList(inner) = field.ty {
            schema_types(inner, out);
        }
    }
}

#[test]
fn destination_rule_tables_match_the_schema() {
    let doc = reference();
    let text = section(&doc, "DestinationRule fields");
    let mut types = BTreeMap::new();
    schema_types(&destination_rule::SPEC, &mut types);
    let mut problems = Vec::new();
    for (name, schema) in &types {
        let heading = format!("### `{name}`");
        let Some(start) = text.find(&heading) else {
            problems.push(format!("no `{heading}` table"));
            continue;
        };
        let body = &text[start + heading.len()..];
        let body = &body[..body.find("\n### ").unwrap_or(body.len())];
        let documented = rows(body);
        for field in schema.fields {
            let Some(cells) = documented.get(field.name) else {
                problems.push(format!("{name}.{} is read but not documented", field.name));
                continue;
            };
            if cells.first().map(String::as_str) != Some(type_cell(field)) {
                problems.push(format!(
                    "{name}.{}: type documented as {:?}, schema says {:?}",
                    field.name,
                    cells.first(),
                    type_cell(field)
                ));
            }
            let effect = cells.get(1).cloned().unwrap_or_default();
            let ok = match field.support {
                Support::Unsupported(why) => effect == format!("Ignored, with a warning: {why}."),
                Support::Deprecated(_) => {
                    effect.contains("Deprecated") && effect.contains("warning")
                }
                Support::Supported | Support::Ignored => {
                    !effect.is_empty() && !effect.starts_with("Ignored")
                }
            };
            if !ok {
                problems.push(format!(
                    "{name}.{}: effect {effect:?} does not say what the code does ({:?})",
                    field.name, field.support
                ));
            }
        }
        for documented_name in documented.keys() {
            if schema.field(documented_name).is_none() {
                problems.push(format!(
                    "{name}.{documented_name} is documented but not in the schema"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/policies.md drifted:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_sample_output_is_what_the_checker_prints() {
    let doc = reference();
    let command = "$ causeway policy check tests/fixtures/policies/three-errors.yaml\n";
    let start = doc.find(command).expect("the sample command") + command.len();
    let sample = &doc[start..start + doc[start..].find("```").expect("end of the sample")];
    // Diagnostics name a file as it was given; the sample gives it relative to the root.
    let name = "tests/fixtures/policies/three-errors.yaml";
    let text = std::fs::read_to_string(repo_root().join(name)).expect("the fixture");
    let report = causeway_policies::Report::check(
        vec![causeway_policies::Source::new(name, text)],
        Vec::new(),
    );
    assert_eq!(sample, report.render_text());
}
