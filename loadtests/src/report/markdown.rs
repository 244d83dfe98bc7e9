//! The markdown summary of a suite run (`report.md`): what ran where and how to run it
//! again, the overall verdict, and per scenario its runs, figures, checks and plots.

use std::fmt::Write as _;

use super::format::{self, NOT_MEASURED};
use super::model::{CheckOutcome, Figure, ScenarioReport, SuiteReport};
use super::plots::PlotFile;
use crate::generator::RunResult;

/// The markdown summary of `report`, linking the plots in `plots` that belong to each
/// scenario (by [`PlotFile::scenario`]) by their relative file names.
pub fn render_markdown(report: &SuiteReport, plots: &[PlotFile]) -> String {
    let mut out = String::new();
    heading(&mut out, report);
    summary(&mut out, report);
    for scenario in &report.scenarios {
        let own: Vec<&PlotFile> = plots
            .iter()
            .filter(|p| p.scenario == scenario.name)
            .collect();
        scenario_section(&mut out, scenario, &own);
    }
    out
}

fn heading(out: &mut String, report: &SuiteReport) {
    let profile = if report.profile.is_empty() {
        String::new()
    } else {
        format!(" — `{}` profile", one_line(&report.profile))
    };
    let _ = writeln!(out, "# Causeway benchmark report{profile}\n");
    let started = or_unknown(&report.started);
    let machine = or_unknown(&report.machine);
    let _ = writeln!(out, "- **Started:** {started}");
    let _ = writeln!(out, "- **Machine:** {machine}");
    if report.command.trim().is_empty() {
        let _ = writeln!(out, "- **Reproduce:** unknown");
    } else {
        let _ = writeln!(out, "- **Reproduce:** {}", code(&report.command));
    }
    out.push('\n');
}

fn summary(out: &mut String, report: &SuiteReport) {
    let total: usize = report.scenarios.iter().map(|s| s.checks.len()).sum();
    let failed: Vec<(&ScenarioReport, &CheckOutcome)> = report
        .scenarios
        .iter()
        .flat_map(|s| s.checks.iter().filter(|c| !c.passed).map(move |c| (s, c)))
        .collect();
    if total == 0 {
        let _ = writeln!(out, "**Verdict: no checks ran.**\n");
    } else if failed.is_empty() {
        let _ = writeln!(
            out,
            "**Verdict: PASS — all {total} {} passed.**\n",
            plural(total, "check", "checks")
        );
    } else {
        let _ = writeln!(
            out,
            "**Verdict: FAIL — {} of {total} {} failed:**\n",
            failed.len(),
            plural(total, "check", "checks")
        );
        for (scenario, check) in &failed {
            let _ = writeln!(
                out,
                "- {} / {}: {}",
                code(&scenario.name),
                one_line(&check.name),
                one_line(&check.measured)
            );
        }
        out.push('\n');
    }
    if report.scenarios.is_empty() {
        let _ = writeln!(out, "No scenario ran.\n");
        return;
    }
    let _ = writeln!(out, "| scenario | runs | checks | verdict |");
    let _ = writeln!(out, "| --- | ---: | ---: | --- |");
    for scenario in &report.scenarios {
        let failed = scenario.checks.iter().filter(|c| !c.passed).count();
        let checks = if failed == 0 {
            scenario.checks.len().to_string()
        } else {
            format!("{} ({failed} failed)", scenario.checks.len())
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            cell(&code(&scenario.name)),
            scenario.runs.len(),
            checks,
            scenario_verdict(scenario)
        );
    }
    out.push('\n');
}

fn scenario_section(out: &mut String, scenario: &ScenarioReport, plots: &[&PlotFile]) {
    let title = if scenario.title.trim().is_empty() {
        one_line(&scenario.name)
    } else {
        one_line(&scenario.title)
    };
    let _ = writeln!(
        out,
        "## {title} ({}) — {}\n",
        code(&scenario.name),
        scenario_verdict(scenario)
    );
    if !scenario.file.is_empty() {
        let _ = writeln!(out, "Scenario file: {}\n", code(&scenario.file));
    }
    for note in &scenario.notes {
        let _ = writeln!(out, "- {}", one_line(note));
    }
    if !scenario.notes.is_empty() {
        out.push('\n');
    }

    let _ = writeln!(out, "### Runs\n");
    if scenario.runs.is_empty() {
        let _ = writeln!(out, "No runs.\n");
    } else {
        runs_table(out, &scenario.runs);
    }

    if !scenario.figures.is_empty() {
        let _ = writeln!(out, "### Figures\n");
        for figure in &scenario.figures {
            let _ = writeln!(
                out,
                "- {}: **{}**",
                one_line(&figure.name),
                figure_value(figure)
            );
        }
        out.push('\n');
    }

    let _ = writeln!(out, "### Checks\n");
    if scenario.checks.is_empty() {
        let _ = writeln!(out, "No checks.\n");
    } else {
        let _ = writeln!(out, "| check | measured | bound | verdict |");
        let _ = writeln!(out, "| --- | --- | --- | --- |");
        for check in &scenario.checks {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                cell(&check.name),
                cell(&check.measured),
                cell(&check.bound),
                verdict(check.passed)
            );
        }
        out.push('\n');
    }

    if !plots.is_empty() {
        let _ = writeln!(out, "### Plots\n");
        for plot in plots {
            let _ = writeln!(
                out,
                "![{}]({})\n",
                alt_text(&plot.title),
                link_target(&plot.file_name)
            );
        }
    }
}

fn runs_table(out: &mut String, runs: &[RunResult]) {
    let _ = writeln!(
        out,
        "| variant | load | conns | ok | limited | errors | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | endpoints |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for run in runs {
        let latency = |us: f64| {
            if run.latency.count == 0 {
                NOT_MEASURED.to_owned()
            } else {
                format::ms(us)
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&run.variant),
            cell(&load(run)),
            run.connections,
            run.ok,
            run.limited,
            run.errors(),
            format::number(run.throughput()),
            latency(run.latency.p50_us),
            latency(run.latency.p90_us),
            latency(run.latency.p99_us),
            latency(run.latency.p999_us),
            cell(&endpoint_shares(run)),
        );
    }
    out.push('\n');
}

/// `open 500/s`, `closed`, or the rate alone when the mode is not named.
fn load(run: &RunResult) -> String {
    let mode = run.mode.trim();
    match run.offered_rate {
        Some(rate) if mode.is_empty() => format!("{}/s", format::rate(rate)),
        Some(rate) => format!("{mode} {}/s", format::rate(rate)),
        None if mode.is_empty() => NOT_MEASURED.to_owned(),
        None => mode.to_owned(),
    }
}

/// `pod-a 25.1%, pod-b 74.9%`.
fn endpoint_shares(run: &RunResult) -> String {
    let shares = run.shares();
    if shares.is_empty() {
        return NOT_MEASURED.to_owned();
    }
    shares
        .iter()
        .map(|(name, share)| format!("{name} {}", format::percent(*share)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn figure_value(figure: &Figure) -> String {
    let value = format::number(figure.value);
    let unit = figure.unit.trim();
    if unit.is_empty() || !figure.value.is_finite() {
        value
    } else if matches!(unit, "%" | "×" | "x") {
        format!("{value}{unit}")
    } else {
        format!("{value} {unit}")
    }
}

fn scenario_verdict(scenario: &ScenarioReport) -> &'static str {
    if scenario.checks.is_empty() {
        "no checks"
    } else {
        verdict(scenario.passed())
    }
}

fn verdict(passed: bool) -> &'static str {
    if passed { "PASS" } else { "**FAIL**" }
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

fn or_unknown(text: &str) -> String {
    if text.trim().is_empty() {
        "unknown".to_owned()
    } else {
        one_line(text)
    }
}

/// Line breaks folded into spaces, so a value stays in its list item or heading.
fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A table cell: on one line, with `|` escaped (GFM honours `\|` inside code spans too).
fn cell(text: &str) -> String {
    let text = one_line(text);
    if text.is_empty() {
        return NOT_MEASURED.to_owned();
    }
    text.replace('|', "\\|")
}

/// `text` as an inline code span, fenced with more backticks than it contains.
fn code(text: &str) -> String {
    let text = one_line(text);
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat(longest + 1);
    if longest > 0 {
        format!("{fence} {text} {fence}")
    } else {
        format!("{fence}{text}{fence}")
    }
}

/// An image's alt text: brackets would end it early.
fn alt_text(text: &str) -> String {
    one_line(text).replace('[', "(").replace(']', ")")
}

/// A relative link target, in angle brackets when it has characters a bare one cannot.
fn link_target(file: &str) -> String {
    let bare = file
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'));
    if bare {
        file.to_owned()
    } else {
        format!("<{}>", file.replace(['<', '>', '\n'], "_"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_escape_pipes_and_fold_lines() {
        assert_eq!(cell("a | b\nc"), "a \\| b c");
        assert_eq!(cell(""), NOT_MEASURED);
    }

    #[test]
    fn code_spans_outfence_backticks() {
        assert_eq!(code("causeway bench"), "`causeway bench`");
        assert_eq!(code("echo `x`"), "`` echo `x` ``");
    }

    #[test]
    fn load_names_mode_and_rate() {
        let mut run = RunResult {
            mode: "open".into(),
            offered_rate: Some(500.0),
            ..RunResult::default()
        };
        assert_eq!(load(&run), "open 500/s");
        run.offered_rate = None;
        run.mode = "closed".into();
        assert_eq!(load(&run), "closed");
        run.mode.clear();
        assert_eq!(load(&run), NOT_MEASURED);
    }

    #[test]
    fn figures_carry_their_units() {
        let figure = |value, unit: &str| Figure {
            name: "f".into(),
            value,
            unit: unit.into(),
        };
        assert_eq!(figure_value(&figure(1.5, "s")), "1.50 s");
        assert_eq!(figure_value(&figure(2.25, "×")), "2.25×");
        assert_eq!(figure_value(&figure(3.0, "")), "3");
        assert_eq!(figure_value(&figure(f64::NAN, "s")), NOT_MEASURED);
    }

    #[test]
    fn link_targets_with_spaces_are_bracketed() {
        assert_eq!(link_target("a-latency.svg"), "a-latency.svg");
        assert_eq!(link_target("a b.svg"), "<a b.svg>");
    }
}
