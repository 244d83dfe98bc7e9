//! Tests of the whole report on a synthetic suite: the markdown, every plot, the files
//! written, and odd data that must not panic.

use std::collections::BTreeMap;

use super::*;
use crate::generator::{Latency, RunResult, Window};

fn latency(p50_ms: f64) -> Latency {
    Latency {
        count: 1000,
        mean_us: p50_ms * 1100.0,
        p50_us: p50_ms * 1000.0,
        p90_us: p50_ms * 1800.0,
        p99_us: p50_ms * 4000.0,
        p999_us: p50_ms * 9000.0,
        max_us: p50_ms * 20_000.0,
    }
}

fn endpoints(counts: &[(&str, u64)]) -> BTreeMap<String, u64> {
    counts.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
}

/// A closed-loop run over four pods, ten one-second windows; `skew` moves answers from
/// pod-d to pod-a as the run goes on.
fn balanced_run(variant: &str, skew: u64, p50_ms: f64) -> RunResult {
    let windows: Vec<Window> = (0..10u64)
        .map(|i| Window {
            start_s: i as f64,
            offered: 400,
            ok: 400,
            limited: 0,
            errors: 0,
            endpoints: endpoints(&[
                ("pod-a", 100 + skew * i),
                ("pod-b", 100),
                ("pod-c", 100),
                ("pod-d", 100 - skew * i),
            ]),
        })
        .collect();
    let mut total = BTreeMap::new();
    for w in &windows {
        for (name, n) in &w.endpoints {
            *total.entry(name.clone()).or_insert(0) += n;
        }
    }
    RunResult {
        variant: variant.to_owned(),
        mode: "closed".into(),
        connections: 16,
        duration_s: 10.0,
        offered: 4000,
        ok: 4000,
        latency: latency(p50_ms),
        endpoints: total,
        window_s: 1.0,
        windows,
        ..RunResult::default()
    }
}

/// An open-loop run at `rate` against a limit of `limit` per second.
fn limited_run(variant: &str, rate: f64, limit: f64) -> RunResult {
    let per_window = rate as u64 / 2;
    let windows: Vec<Window> = (0..20u64)
        .map(|i| {
            // A burst is let through at the start, then the limit holds.
            let allowed = if i == 0 { limit * 0.8 } else { limit * 0.5 };
            let ok = per_window.min(allowed as u64);
            Window {
                start_s: i as f64 * 0.5,
                offered: per_window,
                ok,
                limited: per_window - ok,
                errors: 0,
                endpoints: endpoints(&[("pod-a", ok)]),
            }
        })
        .collect();
    let ok: u64 = windows.iter().map(|w| w.ok).sum();
    RunResult {
        variant: variant.to_owned(),
        mode: "open".into(),
        offered_rate: Some(rate),
        connections: 8,
        duration_s: 10.0,
        offered: per_window * 20,
        ok,
        limited: per_window * 20 - ok,
        latency: latency(0.2 + rate / 1000.0 * if limit < rate { 3.0 } else { 1.0 }),
        endpoints: endpoints(&[("pod-a", ok)]),
        window_s: 0.5,
        windows,
        ..RunResult::default()
    }
}

fn suite() -> SuiteReport {
    let balance = ScenarioReport {
        name: "balance".into(),
        title: "Round robin spreads evenly | PeakEwma avoids the slow pod".into(),
        file: "loadtests/scenarios/balance.yaml".into(),
        runs: vec![
            balanced_run("mesh RoundRobin", 0, 1.2),
            balanced_run("mesh PeakEwma", 5, 0.8),
        ],
        figures: vec![Figure {
            name: "p99 RoundRobin ÷ PeakEwma".into(),
            value: 1.5,
            unit: "×".into(),
        }],
        checks: vec![
            CheckOutcome {
                name: "round-robin share".into(),
                measured: "worst share 24.9% of a fair 25%".into(),
                bound: "≥ 22% (balance.rr_min_share)".into(),
                passed: true,
            },
            CheckOutcome {
                name: "peak-ewma p99".into(),
                measured: "p99 4.8 ms".into(),
                bound: "≤ 3 ms (balance.ewma_p99_ms)".into(),
                passed: false,
            },
        ],
        notes: vec!["two nodes, four pods; pod-d is slowed by 5 ms".into()],
    };
    let mut rate_runs = Vec::new();
    for rate in [100.0, 200.0, 400.0] {
        rate_runs.push(limited_run("mesh", rate, 150.0));
        rate_runs.push(limited_run("direct", rate, 1e9));
    }
    let ratelimit = ScenarioReport {
        name: "ratelimit".into(),
        title: "A 150/s QPS limit admits 150/s".into(),
        file: "loadtests/scenarios/ratelimit.yaml".into(),
        runs: rate_runs,
        figures: vec![],
        checks: vec![CheckOutcome {
            name: "admitted rate".into(),
            measured: "151/s at 400/s offered".into(),
            bound: "within 5% of 150/s".into(),
            passed: true,
        }],
        notes: vec![],
    };
    SuiteReport {
        profile: "ci".into(),
        started: "2026-05-01T12:00:00Z".into(),
        machine: "8 cores, 16 GiB, Linux 6.8, load 0.4".into(),
        command: "causeway bench --profile ci".into(),
        scenarios: vec![balance, ratelimit],
    }
}

/// A unique scratch directory under the system's temp dir, removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "causeway-report-{tag}-{}-{nanos}",
            std::process::id()
        ));
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn assert_svg(svg: &str, title: &str, series: usize) {
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(title), "title {title:?} missing");
    let lines = svg.matches("<polyline").count() + svg.matches("<path").count();
    assert!(lines >= series, "{lines} lines for {series} series");
    assert!(!svg.contains("NaN"), "a NaN coordinate");
}

#[test]
fn markdown_has_the_verdict_runs_checks_and_links() {
    let report = suite();
    let plots: Vec<PlotFile> = report
        .scenarios
        .iter()
        .flat_map(plots_for)
        .map(|(file, _)| file)
        .collect();
    let md = render_markdown(&report, &plots);

    assert!(md.starts_with("# Causeway benchmark report — `ci` profile"));
    assert!(md.contains("`causeway bench --profile ci`"));
    assert!(md.contains("8 cores, 16 GiB"));
    assert!(
        md.contains("**Verdict: FAIL — 1 of 3 checks failed:**"),
        "{md}"
    );
    assert!(md.contains("- `balance` / peak-ewma p99: p99 4.8 ms"));
    for variant in ["mesh RoundRobin", "mesh PeakEwma"] {
        assert!(
            md.contains(&format!("| {variant} | closed | 16 | 4000 |")),
            "{md}"
        );
    }
    assert!(md.contains("| mesh | open 100/s | 8 |"), "{md}");
    assert!(md.contains("| direct | open 400/s | 8 |"), "{md}");
    // Latencies in ms with three digits, shares as a compact list.
    assert!(md.contains("| 1.20 | 2.16 | 4.80 | 10.8 |"), "{md}");
    assert!(md.contains("pod-a 25.0%, pod-b 25.0%, pod-c 25.0%, pod-d 25.0%"));
    // The check table, with the pipe in the title escaped where it sits in a heading.
    assert!(
        md.contains("| peak-ewma p99 | p99 4.8 ms | ≤ 3 ms (balance.ewma_p99_ms) | **FAIL** |")
    );
    assert!(md.contains("| round-robin share | worst share 24.9% of a fair 25% |"));
    assert!(md.contains("- p99 RoundRobin ÷ PeakEwma: **1.50×**"));
    assert!(md.contains("- two nodes, four pods"));
    for link in [
        "(balance-latency.svg)",
        "(balance-share.svg)",
        "(ratelimit-latency.svg)",
        "(ratelimit-rate.svg)",
    ] {
        assert!(md.contains(link), "{link} missing");
    }
    // The ratelimit runs each have one endpoint: no share plot.
    assert!(!md.contains("ratelimit-share.svg"));
    // The balance runs have no offered rate: no rate plot.
    assert!(!md.contains("balance-rate.svg"));
}

#[test]
fn markdown_escapes_pipes_in_cells() {
    let mut report = suite();
    report.scenarios[0].checks[0].measured = "a | b".into();
    report.scenarios[0].runs[0].variant = "x|y".into();
    let md = render_markdown(&report, &[]);
    assert!(md.contains("| a \\| b |"));
    assert!(md.contains("| x\\|y | closed |"));
}

#[test]
fn all_passing_suite_says_so() {
    let mut report = suite();
    report.scenarios[0].checks.retain(|c| c.passed);
    let md = render_markdown(&report, &[]);
    assert!(
        md.contains("**Verdict: PASS — all 2 checks passed.**"),
        "{md}"
    );
    assert!(!md.contains("FAIL"));
}

#[test]
fn every_plot_is_an_svg_with_its_title_and_series() {
    let report = suite();
    let balance = plots_for(&report.scenarios[0]);
    let names: Vec<&str> = balance.iter().map(|(f, _)| f.file_name.as_str()).collect();
    assert_eq!(names, ["balance-latency.svg", "balance-share.svg"]);
    let (file, svg) = &balance[0];
    assert_eq!(file.scenario, "balance");
    assert_svg(svg, &file.title, 2);
    // Two panels of four endpoints each.
    assert_svg(&balance[1].1, &balance[1].0.title, 8);
    assert!(balance[1].1.contains("mesh PeakEwma"));

    let ratelimit = plots_for(&report.scenarios[1]);
    let names: Vec<&str> = ratelimit
        .iter()
        .map(|(f, _)| f.file_name.as_str())
        .collect();
    assert_eq!(names, ["ratelimit-latency.svg", "ratelimit-rate.svg"]);
    // Six runs at three rates: labels name the rate.
    assert_svg(&ratelimit[0].1, &ratelimit[0].0.title, 6);
    assert!(ratelimit[0].1.contains("mesh @ 400/s"));
    // Two variants and the ideal, then six admitted lines (the offered ones are dashed).
    let (file, svg) = &ratelimit[1];
    assert_svg(svg, &file.title, 3 + 6);
    assert!(svg.contains("ideal: admitted = offered"));
    assert!(svg.contains("per window"));
}

#[test]
fn write_report_writes_every_file() {
    let scratch = Scratch::new("write");
    let dir = scratch.0.join("nested");
    let report = suite();
    let written = write_report(&report, &dir).expect("written");

    assert_eq!(written.markdown, dir.join("report.md"));
    assert_eq!(written.json, dir.join("results.json"));
    assert_eq!(written.plots.len(), 4);
    for path in written
        .plots
        .iter()
        .chain([&written.markdown, &written.json])
    {
        assert!(path.is_file(), "{} missing", path.display());
    }
    let md = std::fs::read_to_string(&written.markdown).expect("markdown");
    for plot in &written.plots {
        let name = plot.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(md.contains(&format!("]({name})")), "{name} not linked");
        let svg = std::fs::read_to_string(plot).expect("svg");
        assert!(svg.starts_with("<svg"));
    }
    let json = std::fs::read_to_string(&written.json).expect("json");
    let back: SuiteReport = serde_json::from_str(&json).expect("parses");
    assert_eq!(back, report);

    // Written again over itself: replaced, not refused.
    write_report(&report, &dir).expect("rewritten");
}

#[test]
fn write_report_names_the_path_it_could_not_create() {
    let scratch = Scratch::new("blocked");
    std::fs::create_dir_all(&scratch.0).expect("scratch");
    let file = scratch.0.join("a-file");
    std::fs::write(&file, "not a directory").expect("file");
    let error = write_report(&suite(), &file.join("report")).expect_err("refused");
    assert!(matches!(error, ReportError::Io { .. }));
    assert!(error.to_string().contains("a-file"), "{error}");
}

#[test]
fn scenarios_of_the_same_name_do_not_overwrite_each_other() {
    let scratch = Scratch::new("twins");
    let mut report = suite();
    let twin = report.scenarios[0].clone();
    report.scenarios.push(twin);
    let written = write_report(&report, &scratch.0).expect("written");
    let names: Vec<String> = written
        .plots
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    assert!(names.contains(&"balance-latency.svg".to_owned()));
    assert!(names.contains(&"balance-latency-2.svg".to_owned()));
}

#[test]
fn odd_data_draws_what_it_can_and_never_panics() {
    let empty_windows = RunResult {
        variant: "empty".into(),
        offered_rate: Some(0.0),
        window_s: 1.0,
        windows: vec![Window::default(), Window::default()],
        endpoints: endpoints(&[("a", 0), ("b", 0)]),
        ..RunResult::default()
    };
    let nan = RunResult {
        variant: "nan".into(),
        mode: "open".into(),
        offered_rate: Some(f64::NAN),
        duration_s: f64::NAN,
        window_s: f64::NAN,
        latency: Latency {
            count: 3,
            p50_us: f64::NAN,
            p90_us: 0.0,
            p99_us: -1.0,
            p999_us: f64::INFINITY,
            max_us: f64::NAN,
            ..Latency::default()
        },
        windows: vec![Window {
            start_s: f64::NAN,
            offered: 3,
            ok: 3,
            endpoints: endpoints(&[("a", 1), ("b", 2)]),
            ..Window::default()
        }],
        ..RunResult::default()
    };
    // One window and a constant latency: a single point, a one-decade axis.
    let single = RunResult {
        variant: String::new(),
        offered_rate: Some(50.0),
        duration_s: 0.2,
        ok: 10,
        latency: Latency {
            count: 10,
            p50_us: 1000.0,
            p90_us: 1000.0,
            p99_us: 1000.0,
            p999_us: 1000.0,
            max_us: 1000.0,
            mean_us: 1000.0,
        },
        window_s: 1.0,
        windows: vec![Window {
            start_s: 0.0,
            offered: 10,
            ok: 10,
            ..Window::default()
        }],
        ..RunResult::default()
    };
    let cases = vec![
        ScenarioReport::default(),
        ScenarioReport {
            name: "../we ird/name".into(),
            runs: vec![RunResult::default()],
            ..ScenarioReport::default()
        },
        ScenarioReport {
            name: "odd".into(),
            runs: vec![empty_windows, nan.clone(), single.clone()],
            ..ScenarioReport::default()
        },
        ScenarioReport {
            name: "one".into(),
            runs: vec![single],
            ..ScenarioReport::default()
        },
        ScenarioReport {
            name: "nan".into(),
            runs: vec![nan],
            figures: vec![Figure {
                name: "nothing".into(),
                value: f64::NAN,
                unit: "s".into(),
            }],
            ..ScenarioReport::default()
        },
    ];
    for scenario in &cases {
        for (file, svg) in plots_for(scenario) {
            assert!(svg.starts_with("<svg"), "{}", file.file_name);
            assert!(!svg.contains("NaN"), "{}", file.file_name);
            assert!(
                !file.file_name.contains('/') && !file.file_name.starts_with('.'),
                "{}",
                file.file_name
            );
        }
    }
    // Nothing to draw for an empty scenario or a run that measured nothing.
    assert!(plots_for(&cases[0]).is_empty());
    assert!(plots_for(&cases[1]).is_empty());
    let one: Vec<String> = plots_for(&cases[3])
        .into_iter()
        .map(|(f, _)| f.file_name)
        .collect();
    assert_eq!(one, ["one-latency.svg", "one-rate.svg"]);

    let report = SuiteReport {
        scenarios: cases,
        ..SuiteReport::default()
    };
    let md = render_markdown(&report, &[]);
    assert!(md.contains("Verdict: no checks ran"));
    assert!(md.contains("No runs."));
    let scratch = Scratch::new("odd");
    // NaN is not JSON: serde_json writes it as null, and the report is still written.
    let written = write_report(&report, &scratch.0).expect("written");
    assert!(written.json.is_file());
}

/// Writes the synthetic suite's report where `CAUSEWAY_REPORT_SAMPLE` says (default: the
/// temp dir), to look at: `cargo test -p causeway-loadtests --lib sample -- --ignored`.
#[test]
#[ignore = "writes a sample report to look at"]
fn sample_report() {
    let dir = std::env::var_os("CAUSEWAY_REPORT_SAMPLE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("causeway-report-sample"));
    let mut report = suite();
    // Many panels, and a run with one window and a wide latency spread.
    let runs = (0..7)
        .map(|i| {
            balanced_run(
                &format!("mesh variant number {i} with a long name"),
                i,
                0.05,
            )
        })
        .collect();
    report.scenarios.push(ScenarioReport {
        name: "many".into(),
        title: "Seven runs".into(),
        runs,
        ..ScenarioReport::default()
    });
    let mut single = limited_run("single", 50.0, 1e9);
    single.windows.truncate(1);
    single.latency.max_us = 2_000_000.0;
    report.scenarios.push(ScenarioReport {
        name: "single".into(),
        runs: vec![single],
        ..ScenarioReport::default()
    });
    let written = write_report(&report, &dir).expect("written");
    println!("{}", written.markdown.display());
}
