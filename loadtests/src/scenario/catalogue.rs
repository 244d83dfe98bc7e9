//! The scenarios the binary carries (`loadtests/scenarios/*.yaml`, compiled in so
//! `causeway bench` runs from anywhere), or the ones of a directory given instead.

use std::path::Path;

use causeway_yaml::Source;

use super::{Scenario, ScenarioError};

/// Every file of `loadtests/scenarios/`, in the order a suite runs them: the gated
/// properties first, the comparisons after.
pub const BUILTIN: [(&str, &str); 9] = [
    (
        "lb-fairness.yaml",
        include_str!("../../scenarios/lb-fairness.yaml"),
    ),
    (
        "slow-endpoint.yaml",
        include_str!("../../scenarios/slow-endpoint.yaml"),
    ),
    (
        "endpoint-failover.yaml",
        include_str!("../../scenarios/endpoint-failover.yaml"),
    ),
    (
        "rate-limit.yaml",
        include_str!("../../scenarios/rate-limit.yaml"),
    ),
    (
        "consistent-hash.yaml",
        include_str!("../../scenarios/consistent-hash.yaml"),
    ),
    (
        "cross-node.yaml",
        include_str!("../../scenarios/cross-node.yaml"),
    ),
    (
        "proxy-overhead.yaml",
        include_str!("../../scenarios/proxy-overhead.yaml"),
    ),
    (
        "latency-under-load.yaml",
        include_str!("../../scenarios/latency-under-load.yaml"),
    ),
    (
        "protocols.yaml",
        include_str!("../../scenarios/protocols.yaml"),
    ),
];

/// The built-in scenarios, parsed.
pub fn builtin() -> Result<Vec<Scenario>, ScenarioError> {
    BUILTIN
        .iter()
        .map(|(file, text)| {
            Scenario::parse(&Source::new(format!("loadtests/scenarios/{file}"), *text))
        })
        .collect()
}

/// The `*.yaml` scenarios of `dir`, by file name.
pub fn from_dir(dir: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let fail = |message: String| ScenarioError {
        file: dir.display().to_string(),
        message,
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| fail(format!("cannot read the directory: {e}")))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(fail("no *.yaml scenario in it".into()));
    }
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
                file: path.display().to_string(),
                message: format!("cannot read it: {e}"),
            })?;
            Scenario::parse(&Source::new(path.display().to_string(), text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_scenario_parses_and_every_file_is_built_in() {
        let scenarios = builtin().expect("built-in scenarios parse");
        assert_eq!(scenarios.len(), BUILTIN.len());
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let on_disk = from_dir(&dir).expect("the directory parses");
        let mut names: Vec<_> = scenarios.iter().map(|s| s.name.clone()).collect();
        let mut disk_names: Vec<_> = on_disk.iter().map(|s| s.name.clone()).collect();
        names.sort();
        disk_names.sort();
        assert_eq!(
            names, disk_names,
            "a file in loadtests/scenarios/ is not in BUILTIN"
        );
        assert!(scenarios.iter().any(|s| s.runs_in("ci")));
        assert!(scenarios.iter().all(|s| s.runs_in("full")));
    }
}
