//! `causeway bench proxy`, `causeway bench memory` and `causeway bench http` in their
//! quick modes, end to end
//! with the real binary: every target answered as the echo app before it was measured,
//! and every figure was produced. No performance ratio is asserted: these are
//! benchmarks, not timed tests. Without haproxy or wrk the proxy test says why it
//! skips, and fails instead when CI=true.

use std::path::PathBuf;

use causeway_loadtests::harness::{BenchError, find_tool};
use causeway_loadtests::http_bench::{self, H2Outcome, HttpBenchConfig};
use causeway_loadtests::memory_bench::{self, MemoryBenchConfig};
use causeway_loadtests::proxy_bench::{self, ProxyBenchConfig, TargetKind};

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_causeway"))
}

/// Whether every tool is installed; when one is not, skip (or fail under CI=true).
fn tools_present(tools: &[(&str, &str)]) -> bool {
    for (tool, package) in tools {
        if let Err(error) = find_tool(tool, package) {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true and a benchmark tool is missing: {error}");
            }
            eprintln!("skipped: {error}");
            return false;
        }
    }
    true
}

#[test]
fn the_quick_proxy_benchmark_verifies_every_target_and_measures_it() {
    if !tools_present(&[("haproxy", "haproxy"), ("wrk", "wrk")]) {
        return;
    }
    let mut config = ProxyBenchConfig::quick(binary());
    config.mesh_threads = vec![1, 0];
    let mut lines = Vec::new();
    let report = proxy_bench::run(&config, &mut |l: &str| lines.push(l.to_string()))
        .unwrap_or_else(|e| panic!("the benchmark failed: {e}\n{}", lines.join("\n")));
    assert_eq!(report.verified.len(), 4, "{:?}", report.verified);
    assert_eq!(report.series.len(), 4);
    for kind in [TargetKind::Direct, TargetKind::Haproxy, TargetKind::Mesh] {
        assert!(report.find(kind, 16).is_some(), "no {kind:?} series");
    }
    for series in &report.series {
        assert_eq!(series.runs.len(), 1, "{}", series.target);
        let run = series.runs[0];
        assert!(run.requests > 0, "{}: no requests", series.target);
        assert!(run.requests_per_sec > 0.0, "{}", series.target);
        assert!(run.p50_us > 0.0 && run.p99_us >= run.p50_us, "{:?}", run);
        assert_eq!(run.non_2xx, 0);
    }
    let table = report.markdown();
    assert!(table.contains("HAProxy (nbthread 1)"), "{table}");
    assert!(table.contains("mesh (1 worker)"), "{table}");
}

#[test]
fn the_quick_http_benchmark_verifies_every_listener_and_measures_every_scenario() {
    if !tools_present(&[("haproxy", "haproxy"), ("wrk", "wrk")]) {
        return;
    }
    let config = HttpBenchConfig::quick(binary());
    let mut lines = Vec::new();
    let report = http_bench::run(&config, &mut |l: &str| lines.push(l.to_string()))
        .unwrap_or_else(|e| panic!("the benchmark failed: {e}\n{}", lines.join("\n")));
    assert_eq!(report.verified.len(), 10, "{:?}", report.verified);
    for series in report.keepalive.iter().chain(&report.cross) {
        assert_eq!(series.runs.len(), 1, "{}", series.target);
        assert!(series.runs[0].requests > 0, "{}", series.target);
    }
    assert_eq!(report.keepalive.len(), 3);
    assert_eq!(report.cross.len(), 3);
    match &report.h2 {
        H2Outcome::Measured { series, .. } => {
            assert_eq!(series.len(), 2);
            assert!(series.iter().all(|s| s.runs.len() == 1 && s.rps() > 0.0));
        }
        H2Outcome::Skipped(reason) => {
            assert!(find_tool("h2load", "nghttp2-client").is_err(), "{reason}");
        }
    }
    // Every offered request is accounted for, once.
    let rate = &report.rate;
    assert_eq!(
        rate.admitted() + rate.limited + rate.other_status + rate.errors,
        rate.offered
    );
    assert_eq!(rate.admitted_per_window.len(), 2);
    assert_eq!(report.slow.len(), 2);
    for run in &report.slow {
        assert!(!run.latencies_us.is_empty(), "{}", run.algorithm);
        assert_eq!(run.wrong, 0, "{}", run.algorithm);
    }
    let table = report.markdown();
    assert!(table.contains("RoundRobin p99"), "{table}");
}

#[test]
fn the_quick_memory_benchmark_loads_every_service_and_reads_rss() {
    let config = MemoryBenchConfig::quick(binary());
    let mut lines = Vec::new();
    let report = memory_bench::run(&config, &mut |l: &str| lines.push(l.to_string()))
        .unwrap_or_else(|e| panic!("the benchmark failed: {e}\n{}", lines.join("\n")));
    let names: Vec<&str> = report.runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "empty",
            "loaded",
            "loaded, DNS on",
            "loaded, from store (no manifests source)"
        ]
    );
    assert_eq!((report.runs[0].services, report.runs[0].endpoints), (0, 0));
    for run in &report.runs[1..] {
        assert_eq!(run.services, config.services, "{}", run.name);
        assert_eq!(
            run.endpoints,
            config.services * config.endpoints_per_service,
            "{}",
            run.name
        );
    }
    for run in &report.runs {
        assert!(run.idle.vm_rss_kib > 0, "{}", run.name);
        assert!(run.idle.vm_hwm_kib >= run.idle.vm_rss_kib, "{}", run.name);
        assert!(run.after_dump.vm_rss_kib > 0, "{}", run.name);
    }
    assert!(report.markdown().contains("KiB per Service"));
}

#[test]
fn bad_options_are_refused_before_anything_starts() {
    let mut config = ProxyBenchConfig::quick(binary());
    config.rounds = 0;
    let error = proxy_bench::run(&config, &mut |_: &str| {}).unwrap_err();
    assert!(matches!(error, BenchError::Options(_)), "{error}");
    let mut config = MemoryBenchConfig::quick(binary());
    config.services = 0;
    let error = memory_bench::run(&config, &mut |_: &str| {}).unwrap_err();
    assert!(matches!(error, BenchError::Options(_)), "{error}");
    let mut config = HttpBenchConfig::quick(binary());
    config.connections = 0;
    let error = http_bench::run(&config, &mut |_: &str| {}).unwrap_err();
    assert!(matches!(error, BenchError::Options(_)), "{error}");
}
