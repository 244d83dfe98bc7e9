//! The crate arrows of `docs/architecture.md` hold: each crate imports only the crates of
//! ours it is allowed to. A new arrow is a design change — change the page and this table
//! together.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Crate → the crates of ours it may import.
const ALLOWED: &[(&str, &[&str])] = &[
    ("yaml", &[]),
    ("api", &["yaml"]),
    ("tunnels", &[]),
    ("policies", &["yaml"]),
    ("edge-core", &["yaml", "api", "tunnels"]),
    ("mesh", &["yaml", "edge-core", "api", "tunnels", "policies"]),
    ("control", &["yaml", "api", "tunnels", "policies"]),
    (
        "loadtests",
        &[
            "yaml",
            "api",
            "tunnels",
            "policies",
            "edge-core",
            "mesh",
            "control",
        ],
    ),
];

/// The `causeway-*` crates a manifest depends on, in any dependency table.
fn our_dependencies(manifest: &str) -> BTreeSet<String> {
    let mut deps = BTreeSet::new();
    let mut in_dependencies = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line.contains("dependencies");
            continue;
        }
        if in_dependencies && let Some(name) = line.strip_prefix("causeway-") {
            let name: String = name
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            deps.insert(name);
        }
    }
    deps
}

#[test]
fn crates_import_only_along_the_arrows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut violations = Vec::new();
    for (krate, may_import) in &allowed {
        let manifest = std::fs::read_to_string(root.join(krate).join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("{krate}/Cargo.toml: {e}"));
        for dep in our_dependencies(&manifest) {
            if !may_import.contains(&dep.as_str()) {
                violations.push(format!("{krate} imports {dep}"));
            }
        }
    }
    assert!(violations.is_empty(), "against the arrows: {violations:?}");
}

#[test]
fn every_workspace_crate_is_in_the_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let members_line = workspace
        .lines()
        .find(|l| l.starts_with("members"))
        .expect("a members list");
    let listed: BTreeSet<&str> = ALLOWED.iter().map(|(k, _)| *k).collect();
    for member in members_line.split('"').skip(1).step_by(2) {
        assert!(
            listed.contains(member),
            "{member} has no arrows in this test"
        );
    }
}

#[test]
fn the_manifest_reader_sees_dependencies() {
    let manifest = "[dependencies]\ncauseway-api.workspace = true\nserde = \"1\"\n[dev-dependencies]\ncauseway-mesh = { path = \"../mesh\" }\n[features]\ncauseway-x = []\n";
    let deps: Vec<String> = our_dependencies(manifest).into_iter().collect();
    assert_eq!(deps, vec!["api", "mesh"]);
}
