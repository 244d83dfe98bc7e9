//! `causeway policy …`.

use std::process::ExitCode;

use causeway_policies::{Input, check_inputs};

/// Arguments of `causeway policy check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Policy files or directories (read recursively for *.yaml and *.yml); `-` reads
    /// standard input.
    #[arg(required = true, value_name = "FILE|DIR|-")]
    inputs: Vec<String>,

    /// `text` for people, `json` for pipelines (diagnostics and every compiled plan).
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

/// How `policy check` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Compiler-style diagnostics and a summary line.
    Text,
    /// One JSON document.
    Json,
}

/// Checks the inputs; exit code 1 when any error was found.
pub fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let inputs: Vec<Input> = args.inputs.iter().map(|a| Input::from_arg(a)).collect();
    let report = check_inputs(&inputs, &mut std::io::stdin().lock());
    tracing::debug!(
        files = report.sources.len(),
        errors = report.errors(),
        warnings = report.warnings(),
        targets = report.set.len(),
        "policy check finished"
    );
    match args.output {
        OutputFormat::Text => super::write_stdout(&report.render_text())?,
        OutputFormat::Json => super::write_stdout(&report.to_json())?,
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
