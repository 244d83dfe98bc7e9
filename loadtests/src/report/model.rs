//! What a benchmark suite run hands to the report: the machine and the command, each
//! scenario's runs and the verdicts of its checks. Stored whole as `results.json`.

use serde::{Deserialize, Serialize};

use crate::generator::RunResult;

/// A whole `causeway bench --profile …` run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SuiteReport {
    /// `ci` or `full`.
    pub profile: String,
    /// When it started, RFC 3339 UTC.
    pub started: String,
    /// The machine: cores, memory, kernel, load average.
    pub machine: String,
    /// The command that reproduces the run.
    pub command: String,
    /// Every scenario, in the order run.
    pub scenarios: Vec<ScenarioReport>,
}

impl SuiteReport {
    /// Whether every check of every scenario held.
    pub fn passed(&self) -> bool {
        self.scenarios.iter().all(ScenarioReport::passed)
    }
}

/// One scenario's runs and checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    /// The scenario's name (its file's `metadata.name`), usable in file names.
    pub name: String,
    /// What it measures, one sentence.
    pub title: String,
    /// The scenario file it came from.
    pub file: String,
    /// Every run, in order: one per variant and load step.
    pub runs: Vec<RunResult>,
    /// Derived figures worth a line each (`time to recover: 1.2 s`).
    pub figures: Vec<Figure>,
    /// The checks and their verdicts.
    pub checks: Vec<CheckOutcome>,
    /// Anything a reader should know: skipped variants and why, the topology.
    pub notes: Vec<String>,
}

impl ScenarioReport {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// A derived figure: a name, a value and its unit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// What it is (`p99 RoundRobin ÷ PeakEwma`).
    pub name: String,
    /// Its value.
    pub value: f64,
    /// Its unit (`×`, `s`, `%`, `req/s`), empty for a plain number.
    pub unit: String,
}

/// The verdict of one check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// The check (`round-robin share`).
    pub name: String,
    /// What was measured, in words with its number (`worst share 24.1% of a fair 25%`).
    pub measured: String,
    /// The bound, in words, and the threshold's name in `thresholds.yaml`.
    pub bound: String,
    /// Whether it held.
    pub passed: bool,
}
