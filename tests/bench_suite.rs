//! `causeway bench --profile …` as CI runs it, on a scenario whose property is broken on
//! purpose: round robin where consistent hashing is expected. The gate must fail (exit
//! 1, the failed checks named, the report written), or CI's bench would prove nothing.
//! Real processes on 127.0.0.1: echo apps and a mesh node, a few seconds of load.

use std::path::PathBuf;
use std::process::Command;

const BROKEN: &str = "apiVersion: causeway.dev/v1alpha1
kind: Scenario
metadata: {name: not-sticky}
spec:
  title: Round robin posing as consistent hashing
  profiles: [ci]
  services:
  - name: sticky
    protocol: http1
    endpoints:
    - {node: node-a, replicas: 4}
  load:
    mode: closed
    connections: 1
    duration: 2s
    warmup: 0s
    keys: {header: x-user, count: 50}
  variants:
  - name: hashed
    via: mesh
    policy: {loadBalancer: {algorithm: RoundRobin}}
  - name: one removed
    via: mesh
    endpoints: [0, 1, 2]
    policy: {loadBalancer: {algorithm: RoundRobin}}
  checks:
  - {kind: stickiness, variant: hashed, threshold: hashStickiness}
  - {kind: churn, before: hashed, after: one removed, threshold: hashChurnExcess}
";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("causeway-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn a_broken_property_fails_the_suite_and_says_which() {
    let dir = scratch("bench-suite");
    let scenarios = dir.join("scenarios");
    std::fs::create_dir_all(&scenarios).expect("scenarios dir");
    std::fs::write(scenarios.join("not-sticky.yaml"), BROKEN).expect("write scenario");
    let out = dir.join("report");
    let output = Command::new(env!("CARGO_BIN_EXE_causeway"))
        .args(["bench", "--profile", "ci", "--scenarios-dir"])
        .arg(&scenarios)
        .arg("--out")
        .arg(&out)
        .env("RUST_LOG", "warn")
        .output()
        .expect("causeway runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("2 of 2 checks failed"),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("not-sticky: hashed stickiness"), "{stdout}");
    let report = std::fs::read_to_string(out.join("report.md")).expect("report written");
    assert!(report.contains("**Verdict: FAIL"), "{report}");
    let results = std::fs::read_to_string(out.join("results.json")).expect("results written");
    let json: serde_json::Value = serde_json::from_str(&results).expect("results are JSON");
    assert_eq!(
        json["scenarios"][0]["runs"].as_array().map(Vec::len),
        Some(2)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_malformed_scenario_is_refused_before_anything_starts() {
    let dir = scratch("bench-suite-bad");
    std::fs::write(
        dir.join("bad.yaml"),
        BROKEN.replace("replicas: 4", "replicaz: 4"),
    )
    .expect("write scenario");
    let output = Command::new(env!("CARGO_BIN_EXE_causeway"))
        .args(["bench", "--profile", "ci", "--scenarios-dir"])
        .arg(&dir)
        .arg("--out")
        .arg(dir.join("report"))
        .output()
        .expect("causeway runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.yaml") && stderr.contains("replicaz"),
        "{stderr}"
    );
    assert!(!dir.join("report").exists(), "nothing ran");
    let _ = std::fs::remove_dir_all(&dir);
}
