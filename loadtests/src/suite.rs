//! A benchmark suite run (`causeway bench --profile ci|full`): every scenario of the
//! profile in turn, then the report — `report.md`, `results.json` and the SVG plots —
//! and the verdict: passed only when every check of every scenario held.
//!
//! A scenario that cannot run (a tool missing, a process that died) is a failed
//! scenario with its reason, not a lost suite: the others still run and report.

use std::path::PathBuf;

use crate::harness::{BenchError, load_average, machine_summary};
use crate::report::{self, CheckOutcome, Figure, ScenarioReport, SuiteReport, Written};
use crate::scenario::runner::{RunOptions, run_scenario};
use crate::scenario::{Scenario, Thresholds, catalogue};

/// What to run.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// The `causeway` binary.
    pub binary: PathBuf,
    /// `ci` or `full`.
    pub profile: String,
    /// Where the report goes.
    pub out_dir: PathBuf,
    /// Scenarios from this directory instead of the built-in ones.
    pub scenarios_dir: Option<PathBuf>,
    /// Only the scenarios with these names (all when empty).
    pub only: Vec<String>,
    /// Thresholds from this file instead of the built-in `thresholds.yaml`.
    pub thresholds_file: Option<PathBuf>,
    /// Keep every scenario's scratch files under this directory.
    pub work_dir: Option<PathBuf>,
    /// The command line that reproduces the run (for the report).
    pub command: String,
}

/// The DNS comparison (dnsperf against the mesh's DNS and dnsmasq, `crate::dns`): part of
/// the full profile, run by code rather than declared, since its load is dnsperf's.
pub const DNS_SCENARIO: &str = "dns";

/// Whether the suite runs the DNS comparison.
pub fn runs_dns(options: &SuiteOptions) -> bool {
    options.profile == "full"
        && (options.only.is_empty() || options.only.iter().any(|n| n == DNS_SCENARIO))
}

/// The scenarios a suite would run, checked, before anything starts.
pub fn plan(options: &SuiteOptions) -> Result<Vec<Scenario>, BenchError> {
    if !crate::scenario::spec::PROFILES.contains(&options.profile.as_str()) {
        return Err(BenchError::Options(format!(
            "unknown profile `{}`; expected `ci` or `full`",
            options.profile
        )));
    }
    let all = match &options.scenarios_dir {
        Some(dir) => catalogue::from_dir(dir),
        None => catalogue::builtin(),
    }
    .map_err(|e| BenchError::Scenario(e.to_string()))?;
    for name in &options.only {
        if name != DNS_SCENARIO && !all.iter().any(|s| &s.name == name) {
            return Err(BenchError::Options(format!(
                "no scenario `{name}`; there are: {}",
                all.iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(all
        .into_iter()
        .filter(|s| s.runs_in(&options.profile))
        .filter(|s| options.only.is_empty() || options.only.contains(&s.name))
        .collect())
}

fn thresholds(options: &SuiteOptions) -> Result<Thresholds, BenchError> {
    match &options.thresholds_file {
        None => Thresholds::builtin(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| BenchError::Options(format!("cannot read {}: {e}", path.display())))?;
            Thresholds::parse(&causeway_yaml::Source::new(
                path.display().to_string(),
                text,
            ))
        }
    }
    .map_err(BenchError::Scenario)
}

/// Runs the suite and writes its report; `progress` hears what happens.
pub fn run(
    options: &SuiteOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<(SuiteReport, Written), BenchError> {
    let scenarios = plan(options)?;
    let thresholds = thresholds(options)?;
    // Every threshold a check names must exist before minutes of load are spent.
    for scenario in &scenarios {
        for check in &scenario.spec.checks {
            let settle = (check.kind == crate::scenario::spec::CheckKind::ErrorsAfterFailover)
                .then_some("failoverSettle");
            for name in check.threshold.as_deref().into_iter().chain(settle) {
                thresholds
                    .get(name)
                    .map_err(|e| BenchError::Scenario(format!("{}: {e}", scenario.file)))?;
            }
        }
    }
    let mut suite = SuiteReport {
        profile: options.profile.clone(),
        started: utc_now(),
        machine: format!(
            "{} (load average {} at the start)",
            machine_summary(),
            load_average()
        ),
        command: options.command.clone(),
        scenarios: Vec::new(),
    };
    for scenario in &scenarios {
        progress(&format!(
            "scenario {}: {}",
            scenario.name, scenario.spec.title
        ));
        let run_options = RunOptions {
            binary: options.binary.clone(),
            profile: options.profile.clone(),
            work_dir: options.work_dir.as_ref().map(|d| d.join(&scenario.name)),
            thresholds: thresholds.clone(),
        };
        let report = match run_scenario(scenario, &run_options, progress) {
            Ok(report) => report,
            Err(error) => ScenarioReport {
                name: scenario.name.clone(),
                title: scenario.spec.title.clone(),
                file: scenario.file.clone(),
                checks: vec![CheckOutcome {
                    name: "the scenario ran".into(),
                    measured: error.to_string(),
                    bound: "runs to the end".into(),
                    passed: false,
                }],
                ..ScenarioReport::default()
            },
        };
        for check in &report.checks {
            progress(&format!(
                "  {} {}: {} [{}]",
                if check.passed { "PASS" } else { "FAIL" },
                check.name,
                check.measured,
                check.bound
            ));
        }
        suite.scenarios.push(report);
    }
    if runs_dns(options) {
        progress("scenario dns: DNS queries/s against dnsmasq (dnsperf)");
        let report = dns_scenario();
        for check in &report.checks {
            progress(&format!("  FAIL {}: {}", check.name, check.measured));
        }
        suite.scenarios.push(report);
    }
    let written = report::write_report(&suite, &options.out_dir)
        .map_err(|e| BenchError::Report(e.to_string()))?;
    Ok((suite, written))
}

/// The DNS benchmark with its default options, as a scenario of the report.
fn dns_scenario() -> ScenarioReport {
    let mut report = ScenarioReport {
        name: DNS_SCENARIO.into(),
        title: "DNS queries/s, the mesh's DNS server against dnsmasq".into(),
        file: "loadtests/src/dns.rs (run by code: the load is dnsperf's)".into(),
        ..ScenarioReport::default()
    };
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| {
            runtime
                .block_on(crate::dns::run(crate::dns::DnsBenchOptions::default()))
                .map_err(|e| e.to_string())
        });
    match outcome {
        Ok(dns) => {
            let figure = |name: &str, value: f64, unit: &str| Figure {
                name: name.into(),
                value,
                unit: unit.into(),
            };
            report
                .figures
                .push(figure("mesh DNS, median", dns.mesh.median_qps(), "q/s"));
            report
                .figures
                .push(figure("dnsmasq, median", dns.dnsmasq.median_qps(), "q/s"));
            report
                .figures
                .push(figure("mesh ÷ dnsmasq", dns.ratio(), "×"));
            if let Some(cpu) = dns.mesh.median_cpu_per_query() {
                report
                    .figures
                    .push(figure("mesh CPU per query", cpu.as_secs_f64() * 1e6, "µs"));
            }
            if let Some(cpu) = dns.dnsmasq.median_cpu_per_query() {
                report.figures.push(figure(
                    "dnsmasq CPU per query",
                    cpu.as_secs_f64() * 1e6,
                    "µs",
                ));
            }
            report
                .notes
                .push(format!("dnsperf {}", dns.dnsperf_command));
        }
        Err(error) => report.checks.push(CheckOutcome {
            name: "the scenario ran".into(),
            measured: error,
            bound: "runs to the end".into(),
            passed: false,
        }),
    }
    report
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(profile: &str) -> SuiteOptions {
        SuiteOptions {
            binary: PathBuf::from("causeway"),
            profile: profile.into(),
            out_dir: PathBuf::from("unused"),
            scenarios_dir: None,
            only: Vec::new(),
            thresholds_file: None,
            work_dir: None,
            command: String::new(),
        }
    }

    #[test]
    fn the_ci_profile_runs_the_gated_scenarios_and_the_full_one_all() {
        let ci: Vec<String> = plan(&options("ci"))
            .expect("plan")
            .into_iter()
            .map(|s| s.name)
            .collect();
        for gated in [
            "lb-fairness",
            "slow-endpoint",
            "endpoint-failover",
            "rate-limit",
            "consistent-hash",
        ] {
            assert!(ci.contains(&gated.to_string()), "{gated} not in {ci:?}");
        }
        let full = plan(&options("full")).expect("plan");
        assert_eq!(full.len(), catalogue::BUILTIN.len());
    }

    #[test]
    fn unknown_profiles_and_scenarios_are_refused_with_the_choices() {
        let error = plan(&options("nightly")).expect_err("refused").to_string();
        assert!(error.contains("`ci` or `full`"), "{error}");
        let mut only = options("ci");
        only.only = vec!["lb-fairnes".into()];
        let error = plan(&only).expect_err("refused").to_string();
        assert!(error.contains("lb-fairness"), "{error}");
    }

    #[test]
    fn every_threshold_a_builtin_check_names_exists() {
        let thresholds = Thresholds::builtin().expect("thresholds parse");
        for scenario in catalogue::builtin().expect("scenarios") {
            for check in &scenario.spec.checks {
                if let Some(name) = &check.threshold {
                    thresholds.get(name).expect("threshold exists");
                }
            }
        }
        thresholds.get("failoverSettle").expect("settle exists");
    }

    #[test]
    fn dates_are_civil() {
        let now = utc_now();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20"), "{now}");
    }
}
