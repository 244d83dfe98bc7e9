//! The DNS benchmark end to end in its quick mode: both servers start, answer the checks
//! rightly, and are measured. No performance is asserted here — a shared machine's
//! numbers belong in a report, not in a test.
//!
//! Needs dnsperf and dnsmasq; without them the test says so and passes, except under
//! `CI=true`, where the set-up step installs them and their absence is a failure.
#![allow(clippy::unwrap_used)] // A test that unwraps fails where the assumption broke.

use std::time::Duration;

use causeway_loadtests::dns::{self, DnsBenchOptions};

/// The whole test finishes within this, whatever happens.
const TEST_LIMIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn the_quick_dns_benchmark_measures_both_servers_after_checking_their_answers() {
    if let Err(missing) = dns::tools_installed() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must have the DNS benchmark's tools: {missing}"
        );
        eprintln!("skipped: {missing}");
        return;
    }
    let options = DnsBenchOptions {
        services: 50,
        duration: Duration::from_secs(1),
        runs: 1,
        quick: true,
        ..DnsBenchOptions::default()
    };
    let report = tokio::time::timeout(TEST_LIMIT, dns::run(options))
        .await
        .expect("the benchmark ran over its time limit")
        .expect("the benchmark ran");

    for (server, result) in [("mesh", &report.mesh), ("dnsmasq", &report.dnsmasq)] {
        assert_eq!(result.runs.len(), 1, "{server}");
        assert!(result.median_qps() > 0.0, "{server}: {report}");
        assert!(
            result.runs.iter().all(|r| r.completed > 0),
            "{server}: {report}"
        );
        assert_eq!(
            result.verified,
            [
                "svc-0.bench.svc.cluster.local",
                "svc-25.bench.svc.cluster.local",
                "svc-49.bench.svc.cluster.local"
            ],
            "{server}"
        );
    }
    assert!(report.mesh_stats.cluster > 0, "{report}");
    let text = report.to_string();
    assert!(text.contains("ratio mesh/dnsmasq"), "{text}");
    assert!(text.contains("--quick"), "{text}");
    eprintln!("{text}");
}
