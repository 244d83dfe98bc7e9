//! `causeway bench --profile ci|full`: the declared scenarios of `loadtests/scenarios/`
//! run as a suite; the report (`report.md`, `results.json`, SVG plots) written to
//! `--out`; exit 1 when a check failed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use causeway_loadtests::suite::{self, SuiteOptions};

/// Arguments of `causeway bench` without a subcommand.
#[derive(Debug, clap::Args)]
pub struct SuiteArgs {
    /// `ci`: the gated properties, short (a few minutes); `full`: every scenario, with
    /// the comparisons, at full length.
    #[arg(long, value_name = "PROFILE", value_parser = ["ci", "full"])]
    profile: Option<String>,
    /// Where to write report.md, results.json and the plots.
    #[arg(long, value_name = "DIR", default_value = "target/bench-report")]
    out: PathBuf,
    /// Run only these scenarios (by metadata.name; repeatable).
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// Read the scenarios from this directory instead of the built-in ones.
    #[arg(long, value_name = "DIR")]
    scenarios_dir: Option<PathBuf>,
    /// Read the thresholds from this file instead of the built-in thresholds.yaml.
    #[arg(long, value_name = "FILE")]
    thresholds: Option<PathBuf>,
    /// Keep every scenario's files (manifests, configs, stores) under this directory.
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// List the scenarios of the profile and exit.
    #[arg(long)]
    list: bool,
}

impl SuiteArgs {
    /// Whether a profile was asked for (otherwise `causeway bench` prints its help).
    pub fn given(&self) -> bool {
        self.profile.is_some() || self.list
    }
}

/// Runs the suite and prints where the report is.
pub fn run(args: &SuiteArgs) -> anyhow::Result<ExitCode> {
    let profile = args.profile.clone().unwrap_or_else(|| "ci".into());
    let mut command = format!("causeway bench --profile {profile}");
    for name in &args.scenarios {
        command.push_str(&format!(" --scenario {name}"));
    }
    let options = SuiteOptions {
        binary: std::env::current_exe()
            .context("cannot find the causeway executable to start nodes from")?,
        profile,
        out_dir: args.out.clone(),
        scenarios_dir: args.scenarios_dir.clone(),
        only: args.scenarios.clone(),
        thresholds_file: args.thresholds.clone(),
        work_dir: args.work_dir.clone(),
        command,
    };
    if args.list {
        let mut text = String::new();
        for scenario in suite::plan(&options)? {
            text.push_str(&format!("{:24} {}\n", scenario.name, scenario.spec.title));
        }
        if suite::runs_dns(&options) {
            text.push_str(&format!(
                "{:24} DNS queries/s against dnsmasq (dnsperf)\n",
                suite::DNS_SCENARIO
            ));
        }
        super::write_stdout(&text)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (report, written) = suite::run(&options, &mut |line: &str| eprintln!("bench: {line}"))?;
    let failed: Vec<String> = report
        .scenarios
        .iter()
        .flat_map(|s| {
            s.checks
                .iter()
                .filter(|c| !c.passed)
                .map(move |c| format!("{}: {}", s.name, c.name))
        })
        .collect();
    let checks: usize = report.scenarios.iter().map(|s| s.checks.len()).sum();
    let mut text = format!(
        "report: {}\nresults: {}\nplots: {}\n",
        written.markdown.display(),
        written.json.display(),
        written.plots.len()
    );
    if failed.is_empty() {
        text.push_str(&format!(
            "{} scenarios, {checks} checks, none failed\n",
            report.scenarios.len()
        ));
        super::write_stdout(&text)?;
        Ok(ExitCode::SUCCESS)
    } else {
        text.push_str(&format!("{} of {checks} checks failed:\n", failed.len()));
        for line in failed {
            text.push_str(&format!("  {line}\n"));
        }
        super::write_stdout(&text)?;
        Ok(ExitCode::from(1))
    }
}
