//! The benchmark report: a markdown summary and SVG plots of a [`SuiteReport`].
//!
//! [`write_report`] puts into one directory `report.md` ([`render_markdown`]), one SVG
//! per plot that applies to a scenario ([`plots_for`]) and `results.json`, the whole
//! [`SuiteReport`] for later comparison.

mod format;
mod markdown;
mod model;
mod plots;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub use markdown::render_markdown;
pub use model::{CheckOutcome, Figure, ScenarioReport, SuiteReport};
pub use plots::{
    PlotError, PlotFile, latency_plot, latency_title, plots_for, rate_plot, rate_title, share_plot,
    share_title,
};

/// The markdown summary's file name inside the report directory.
pub const MARKDOWN_FILE: &str = "report.md";
/// The raw results' file name inside the report directory.
pub const JSON_FILE: &str = "results.json";

/// Why the report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A directory or file could not be created or written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The results could not be serialised.
    #[error("cannot serialise the results for {}: {source}", path.display())]
    Json {
        /// The file they were for.
        path: PathBuf,
        /// What serde_json said.
        source: serde_json::Error,
    },
}

/// The files [`write_report`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The markdown summary, `report.md`.
    pub markdown: PathBuf,
    /// The results as JSON, `results.json`.
    pub json: PathBuf,
    /// Every plot, in the order the summary links them.
    pub plots: Vec<PathBuf>,
}

/// Writes the report of `report` into `dir`, creating it: every plot's SVG, `report.md`
/// linking them by relative name, and `results.json`. Existing files of the same names
/// are replaced.
pub fn write_report(report: &SuiteReport, dir: &Path) -> Result<Written, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.to_path_buf(),
        source,
    })?;

    let mut files = Vec::new();
    let mut paths = Vec::new();
    let mut taken: HashSet<String> = [MARKDOWN_FILE, JSON_FILE]
        .into_iter()
        .map(str::to_owned)
        .collect();
    for scenario in &report.scenarios {
        for (mut file, svg) in plots_for(scenario) {
            // Two scenarios of the same name must not overwrite each other's plots.
            file.file_name = unique_name(&file.file_name, &mut taken);
            let path = dir.join(&file.file_name);
            write(&path, svg.as_bytes())?;
            paths.push(path);
            files.push(file);
        }
    }

    let markdown = dir.join(MARKDOWN_FILE);
    write(&markdown, render_markdown(report, &files).as_bytes())?;

    let json = dir.join(JSON_FILE);
    let mut text = serde_json::to_string_pretty(report).map_err(|source| ReportError::Json {
        path: json.clone(),
        source,
    })?;
    text.push('\n');
    write(&json, text.as_bytes())?;

    Ok(Written {
        markdown,
        json,
        plots: paths,
    })
}

fn write(path: &Path, contents: &[u8]) -> Result<(), ReportError> {
    std::fs::write(path, contents).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `name`, or `stem-2.ext`, `stem-3.ext`… when it is taken; the result is taken too.
fn unique_name(name: &str, taken: &mut HashSet<String>) -> String {
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) => (stem, format!(".{ext}")),
        None => (name, String::new()),
    };
    let mut candidate = name.to_owned();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{stem}-{n}{ext}");
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}
