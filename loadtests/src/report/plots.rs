//! SVG plots of a scenario's runs, drawn with plotters into strings: latency percentiles
//! per variant, each endpoint's share over time, and admitted against offered rate. The
//! plots that apply to a scenario come from [`plots_for`]; odd data (NaN, zeros, empty
//! windows, a single run) leaves a series or a plot out, never panics.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::format;
use super::model::ScenarioReport;
use crate::generator::RunResult;

/// A plot written beside the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotFile {
    /// The name of the scenario it belongs to ([`ScenarioReport::name`]).
    pub scenario: String,
    /// What it shows, as its title reads.
    pub title: String,
    /// Its file name, relative to the report's directory (`{scenario}-latency.svg`).
    pub file_name: String,
}

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Plotters refused to draw (an SVG string backend has no I/O, so this is a bug).
    #[error("cannot draw the {plot} plot of scenario `{scenario}`: {message}")]
    Draw {
        /// Which plot (`latency`, `share`, `rate`).
        plot: &'static str,
        /// The scenario's name.
        scenario: String,
        /// What plotters said.
        message: String,
    },
}

/// Every plot that applies to `scenario`, with its SVG document: latency percentiles
/// when a run measured latency, endpoint shares over time when a run has several
/// endpoints and windows, admitted against offered rate when runs have an offered rate.
/// A plot plotters cannot draw is left out with a warning.
pub fn plots_for(scenario: &ScenarioReport) -> Vec<(PlotFile, String)> {
    let stem = file_stem(&scenario.name);
    let candidates = [
        ("latency", latency_title(scenario), latency_plot(scenario)),
        ("share", share_title(scenario), share_plot(scenario)),
        ("rate", rate_title(scenario), rate_plot(scenario)),
    ];
    let mut plots = Vec::new();
    for (kind, title, result) in candidates {
        match result {
            Ok(Some(svg)) => plots.push((
                PlotFile {
                    scenario: scenario.name.clone(),
                    title,
                    file_name: format!("{stem}-{kind}.svg"),
                },
                svg,
            )),
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "plot left out of the report"),
        }
    }
    plots
}

/// The title of [`latency_plot`]'s chart.
pub fn latency_title(scenario: &ScenarioReport) -> String {
    format!("{}: latency percentiles", display_name(scenario))
}

/// The title of [`share_plot`]'s charts.
pub fn share_title(scenario: &ScenarioReport) -> String {
    format!(
        "{}: share of answers per endpoint over time",
        display_name(scenario)
    )
}

/// The title of [`rate_plot`]'s charts.
pub fn rate_title(scenario: &ScenarioReport) -> String {
    format!("{}: admitted vs offered rate", display_name(scenario))
}

/// Latency percentiles per run: a line over p50, p90, p99, p99.9 and max, in ms on a
/// log scale. `None` when no run measured a latency.
pub fn latency_plot(scenario: &ScenarioReport) -> Result<Option<String>, PlotError> {
    let several = several_rates(scenario);
    let series: Vec<Series> = scenario
        .runs
        .iter()
        .enumerate()
        .filter_map(|(i, run)| {
            if run.latency.count == 0 {
                return None;
            }
            let l = &run.latency;
            let points: Vec<(f64, f64)> = [l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us]
                .iter()
                .enumerate()
                .filter_map(|(x, &us)| {
                    let ms = us / 1000.0;
                    (ms.is_finite() && ms > 0.0).then_some((x as f64, ms))
                })
                .collect();
            (!points.is_empty()).then(|| Series {
                label: run_label(run, i, several),
                color: color(i),
                points,
            })
        })
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    let title = latency_title(scenario);
    let legend_w = legend_width(series.iter().map(|s| s.label.as_str()));
    let svg = render((960, 560), |root| {
        let area = root.titled(&title, title_style())?;
        let (plot, legend) = area.split_horizontally(960 - legend_w);
        let (lo, hi) = bounds(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
        let axis = LogAxis::around(lo, hi);
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .margin_right(24)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(-0.3f64..4.3f64, axis)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .x_labels(PERCENTILES.len())
            .y_desc("latency, ms (log scale)")
            .y_labels(12)
            .x_label_formatter(&|x| percentile_name(*x).to_owned())
            .y_label_formatter(&|y| format::tick(*y))
            .label_style(label_style())
            .axis_desc_style(desc_style())
            .x_max_light_lines(0)
            .light_line_style(BLACK.mix(0.04))
            .draw()?;
        for s in &series {
            chart.draw_series(
                LineSeries::new(s.points.iter().copied(), s.color.stroke_width(2)).point_size(3),
            )?;
        }
        let entries: Vec<LegendEntry> = series
            .iter()
            .map(|s| LegendEntry::solid(&s.label, s.color))
            .collect();
        draw_legend(&legend, &entries)
    })
    .map_err(|e| draw_error("latency", scenario, e))?;
    Ok(Some(svg))
}

/// Each endpoint's share of the successful answers, window by window, for every run with
/// at least two endpoints and two windows that answered: one panel per run in a grid,
/// the fair share dashed. `None` when no run qualifies.
pub fn share_plot(scenario: &ScenarioReport) -> Result<Option<String>, PlotError> {
    let several = several_rates(scenario);
    let panels: Vec<SharePanel> = scenario
        .runs
        .iter()
        .enumerate()
        .filter_map(|(i, run)| SharePanel::of(run, run_label(run, i, several)))
        .collect();
    if panels.is_empty() {
        return Ok(None);
    }
    // One colour per endpoint name across the panels.
    let names: BTreeSet<&str> = panels
        .iter()
        .flat_map(|p| p.lines.iter().map(|(name, _)| name.as_str()))
        .collect();
    let colors: BTreeMap<&str, RGBColor> = names
        .iter()
        .enumerate()
        .map(|(i, name)| (*name, color(i)))
        .collect();

    let cols = match panels.len() {
        1 => 1,
        2..=6 => 2,
        _ => 3,
    };
    let rows = panels.len().div_ceil(cols);
    let (panel_w, panel_h) = if cols == 1 { (960, 460) } else { (620, 380) };
    let width = panel_w * cols as u32;
    let height = 44 + panel_h * rows as u32;
    let title = share_title(scenario);
    let svg = render((width, height), |root| {
        let area = root.titled(&title, title_style())?;
        for (panel, cell) in panels.iter().zip(area.split_evenly((rows, cols))) {
            panel.draw(&cell, &colors)?;
        }
        Ok(())
    })
    .map_err(|e| draw_error("share", scenario, e))?;
    Ok(Some(svg))
}

/// Admitted (successful) calls per second against the offered rate, per variant, with
/// the ideal `admitted = offered` in grey; below it, for runs with windows, admitted and
/// offered per window over time, so a rate limit's accuracy over the run shows. `None`
/// when no run has an offered rate.
pub fn rate_plot(scenario: &ScenarioReport) -> Result<Option<String>, PlotError> {
    let several = several_rates(scenario);
    let open: Vec<(usize, &RunResult, f64)> = scenario
        .runs
        .iter()
        .enumerate()
        .filter_map(|(i, run)| {
            let rate = run.offered_rate?;
            (rate.is_finite() && rate >= 0.0).then_some((i, run, rate))
        })
        .collect();

    // Admitted against offered, one line per variant in the order first run.
    let mut variants: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for &(_, run, rate) in &open {
        let admitted = run.throughput();
        if !admitted.is_finite() {
            continue;
        }
        match variants.iter_mut().find(|(v, _)| *v == run.variant) {
            Some((_, points)) => points.push((rate, admitted)),
            None => variants.push((run.variant.clone(), vec![(rate, admitted)])),
        }
    }
    let variants: Vec<Series> = variants
        .into_iter()
        .enumerate()
        .map(|(i, (variant, mut points))| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                label: if variant.trim().is_empty() {
                    "(unnamed)".to_owned()
                } else {
                    variant
                },
                color: color(i),
                points,
            }
        })
        .collect();

    // Admitted and offered per window, one pair of lines per run.
    let timelines: Vec<Timeline> = open
        .iter()
        .filter_map(|&(i, run, _)| {
            let mut admitted = Vec::new();
            let mut offered = Vec::new();
            let mut end = 0.0f64;
            for window in &run.windows {
                let Some((mid, len)) = window_span(run, window.start_s) else {
                    continue;
                };
                admitted.push((mid, window.ok as f64 / len));
                offered.push((mid, window.offered as f64 / len));
                end = end.max(mid + len / 2.0);
            }
            (!admitted.is_empty()).then(|| Timeline {
                admitted: Series {
                    label: run_label(run, i, several),
                    color: color(i),
                    points: admitted,
                },
                offered,
                end,
            })
        })
        .collect();

    if variants.is_empty() && timelines.is_empty() {
        return Ok(None);
    }
    let title = rate_title(scenario);
    let half = 440;
    let charts = usize::from(!variants.is_empty()) + usize::from(!timelines.is_empty());
    let svg = render((960, 44 + half * charts as u32), |root| {
        let area = root.titled(&title, title_style())?;
        let (first, second) = if charts == 2 {
            let (a, b) = area.split_vertically(half);
            (a, Some(b))
        } else {
            (area, None)
        };
        if variants.is_empty() {
            draw_timelines(&first, &timelines)
        } else {
            draw_admitted(&first, &variants)?;
            match second {
                Some(area) => draw_timelines(&area, &timelines),
                None => Ok(()),
            }
        }
    })
    .map_err(|e| draw_error("rate", scenario, e))?;
    Ok(Some(svg))
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawError = DrawingAreaErrorKind<std::io::Error>;
type LinearChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The grid, ticks and axis names of a chart with two linear axes, as every linear
/// chart of the report draws them; `labels` is (x, y) tick counts.
fn draw_linear_mesh(
    chart: &mut LinearChart<'_, '_>,
    x_desc: &str,
    y_desc: &str,
    labels: (usize, usize),
) -> Result<(), DrawError> {
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(labels.0)
        .y_labels(labels.1)
        .x_label_formatter(&|x| format::tick(*x))
        .y_label_formatter(&|y| format::tick(*y))
        .label_style(label_style())
        .axis_desc_style(desc_style())
        .light_line_style(WHITE.mix(0.0))
        .draw()
}

/// One line of a chart.
struct Series {
    label: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// One run's panel of the share plot.
struct SharePanel {
    label: String,
    /// Per endpoint: (time s, share %).
    lines: Vec<(String, Vec<(f64, f64)>)>,
    /// The share every endpoint would have if balanced, %.
    fair: f64,
    time: (f64, f64),
}

impl SharePanel {
    fn of(run: &RunResult, label: String) -> Option<Self> {
        let names: BTreeSet<&String> = run
            .endpoints
            .keys()
            .chain(run.windows.iter().flat_map(|w| w.endpoints.keys()))
            .collect();
        if names.len() < 2 {
            return None;
        }
        let mut lines: Vec<(String, Vec<(f64, f64)>)> =
            names.iter().map(|n| ((*n).clone(), Vec::new())).collect();
        let mut answered = 0;
        for window in &run.windows {
            let total: u64 = window.endpoints.values().sum();
            let t = match window_span(run, window.start_s) {
                Some((mid, _)) => mid,
                None => window.start_s,
            };
            if total == 0 || !t.is_finite() {
                continue;
            }
            answered += 1;
            for (name, points) in &mut lines {
                let n = window.endpoints.get(name).copied().unwrap_or(0);
                points.push((t, 100.0 * n as f64 / total as f64));
            }
        }
        if answered < 2 {
            return None;
        }
        let time = bounds(lines.iter().flat_map(|(_, p)| p.iter().map(|p| p.0)));
        Some(Self {
            label,
            fair: 100.0 / names.len() as f64,
            lines,
            time,
        })
    }

    fn draw(&self, area: &Area<'_>, colors: &BTreeMap<&str, RGBColor>) -> Result<(), DrawError> {
        let (w, _) = area.dim_in_pixel();
        let legend_w = legend_width(
            self.lines
                .iter()
                .map(|(n, _)| n.as_str())
                .chain(["fair share"]),
        )
        .min(w / 3);
        let (plot, legend) = area.split_horizontally(w.saturating_sub(legend_w));
        let top = self
            .lines
            .iter()
            .flat_map(|(_, p)| p.iter().map(|p| p.1))
            .fold(self.fair, f64::max);
        // Headroom above the highest share, in steps of 10%, at most 100%.
        let top = ((top * 1.15 / 10.0).ceil() * 10.0).clamp(10.0, 100.0);
        let (t0, t1) = self.time;
        let t0 = t0.min(0.0);
        let t1 = if t1 > t0 { t1 } else { t0 + 1.0 };
        let mut chart = ChartBuilder::on(&plot)
            .caption(truncate(&self.label, 60), caption_style())
            .margin(10)
            .margin_right(20)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(t0..t1, 0.0..top)?;
        draw_linear_mesh(&mut chart, "time, s", "share of answers, %", (8, 6))?;
        chart.draw_series(DashedLineSeries::new(
            [(t0, self.fair), (t1, self.fair)],
            8,
            5,
            GREY.stroke_width(1),
        ))?;
        let mut entries = Vec::new();
        for (name, points) in &self.lines {
            let color = colors.get(name.as_str()).copied().unwrap_or(BLACK);
            chart.draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?;
            entries.push(LegendEntry::solid(name, color));
        }
        entries.push(LegendEntry::dashed("fair share", GREY));
        draw_legend(&legend, &entries)
    }
}

fn draw_admitted(area: &Area<'_>, variants: &[Series]) -> Result<(), DrawError> {
    let mut labels: Vec<&str> = variants.iter().map(|s| s.label.as_str()).collect();
    labels.push("ideal: admitted = offered");
    let legend_w = legend_width(labels.iter().copied());
    let (w, _) = area.dim_in_pixel();
    let (plot, legend) = area.split_horizontally(w.saturating_sub(legend_w));
    let x_max = upper(variants.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let y_max = upper(
        variants
            .iter()
            .flat_map(|s| s.points.iter().flat_map(|p| [p.0, p.1])),
    );
    let mut chart = ChartBuilder::on(&plot)
        .caption("admitted per second by offered rate", caption_style())
        .margin(10)
        .margin_right(24)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    draw_linear_mesh(
        &mut chart,
        "offered rate, calls/s",
        "admitted (ok), calls/s",
        (8, 8),
    )?;
    let ideal = x_max.min(y_max);
    chart.draw_series(LineSeries::new(
        [(0.0, 0.0), (ideal, ideal)],
        GREY.stroke_width(1),
    ))?;
    let mut entries = Vec::new();
    for s in variants {
        chart.draw_series(
            LineSeries::new(s.points.iter().copied(), s.color.stroke_width(2)).point_size(4),
        )?;
        entries.push(LegendEntry::solid(&s.label, s.color));
    }
    entries.push(LegendEntry::solid("ideal: admitted = offered", GREY));
    draw_legend(&legend, &entries)
}

/// One run's admitted and offered calls per second, window by window.
struct Timeline {
    admitted: Series,
    offered: Vec<(f64, f64)>,
    /// The end of its last window, s.
    end: f64,
}

fn draw_timelines(area: &Area<'_>, timelines: &[Timeline]) -> Result<(), DrawError> {
    let labels = timelines
        .iter()
        .map(|t| t.admitted.label.as_str())
        .chain([OFFERED]);
    let legend_w = legend_width(labels);
    let (w, _) = area.dim_in_pixel();
    let (plot, legend) = area.split_horizontally(w.saturating_sub(legend_w));
    let t_max = timelines.iter().map(|t| t.end).fold(0.0, f64::max);
    let t_max = if t_max.is_finite() && t_max > 0.0 {
        t_max
    } else {
        1.0
    };
    let y_max = upper(
        timelines
            .iter()
            .flat_map(|t| t.admitted.points.iter().chain(&t.offered).map(|p| p.1)),
    );
    let mut chart = ChartBuilder::on(&plot)
        .caption(
            "admitted (solid) and offered (dashed) per window",
            caption_style(),
        )
        .margin(10)
        .margin_right(24)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)?;
    draw_linear_mesh(&mut chart, "time, s", "calls/s in the window", (10, 8))?;
    let mut entries = Vec::new();
    for t in timelines {
        let marker = if t.admitted.points.len() < 2 { 3 } else { 0 };
        chart.draw_series(
            LineSeries::new(
                t.admitted.points.iter().copied(),
                t.admitted.color.stroke_width(2),
            )
            .point_size(marker),
        )?;
        entries.push(LegendEntry::solid(&t.admitted.label, t.admitted.color));
    }
    // Runs at one rate were offered the same: each distinct offered line once, dashed
    // black on top, so neither an admitted line on its level nor another run's offered
    // line hides it.
    let mut drawn: Vec<&[(f64, f64)]> = Vec::new();
    for t in timelines {
        if drawn.contains(&t.offered.as_slice()) {
            continue;
        }
        drawn.push(&t.offered);
        chart.draw_series(DashedLineSeries::new(
            t.offered.iter().copied(),
            6,
            5,
            BLACK.stroke_width(1),
        ))?;
    }
    entries.push(LegendEntry::dashed(OFFERED, BLACK));
    draw_legend(&legend, &entries)
}

const OFFERED: &str = "offered";

/// A legend line: a sample of the stroke and its label.
struct LegendEntry {
    label: String,
    color: RGBColor,
    dashed: bool,
}

impl LegendEntry {
    fn solid(label: &str, color: RGBColor) -> Self {
        Self {
            label: truncate(label, LEGEND_CHARS),
            color,
            dashed: false,
        }
    }

    fn dashed(label: &str, color: RGBColor) -> Self {
        Self {
            dashed: true,
            ..Self::solid(label, color)
        }
    }
}

/// The longest legend label shown whole.
const LEGEND_CHARS: usize = 36;
const LEGEND_ROW: i32 = 20;

/// The legend, in its own area right of the chart so it never covers the data.
fn draw_legend(area: &Area<'_>, entries: &[LegendEntry]) -> Result<(), DrawError> {
    let (_, h) = area.dim_in_pixel();
    let rows = ((h as i32 - 40) / LEGEND_ROW).max(1) as usize;
    let shown = if entries.len() > rows {
        rows.saturating_sub(1)
    } else {
        entries.len()
    };
    let text = label_style().pos(Pos::new(HPos::Left, VPos::Center));
    let mut y = 30;
    for entry in entries.iter().take(shown) {
        let style = entry.color.stroke_width(2);
        if entry.dashed {
            for x in [4, 14] {
                area.draw(&PathElement::new(vec![(x, y), (x + 7, y)], style))?;
            }
            area.draw(&PathElement::new(vec![(24, y), (28, y)], style))?;
        } else {
            area.draw(&PathElement::new(vec![(4, y), (28, y)], style))?;
        }
        area.draw(&Text::new(entry.label.clone(), (36, y), text.clone()))?;
        y += LEGEND_ROW;
    }
    if shown < entries.len() {
        let more = format!("… {} more", entries.len() - shown);
        area.draw(&Text::new(more, (36, y), text))?;
    }
    Ok(())
}

/// Room for the widest label (SVG text is not measured: about 7 px a character at the
/// label size), a stroke sample and padding.
fn legend_width<'a>(labels: impl Iterator<Item = &'a str>) -> u32 {
    let chars = labels
        .map(|l| l.chars().count().min(LEGEND_CHARS + 1))
        .max()
        .unwrap_or(0);
    (chars as u32 * 7 + 48).clamp(120, 320)
}

/// Draws onto a white SVG canvas of `size` and returns the document.
fn render(
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Result<(), DrawError>,
) -> Result<String, DrawError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(svg)
}

fn draw_error(plot: &'static str, scenario: &ScenarioReport, error: DrawError) -> PlotError {
    PlotError::Draw {
        plot,
        scenario: scenario.name.clone(),
        message: error.to_string(),
    }
}

fn title_style() -> TextStyle<'static> {
    ("sans-serif", 24).into_font().color(&BLACK)
}

fn caption_style() -> TextStyle<'static> {
    ("sans-serif", 19).into_font().color(&BLACK)
}

fn label_style() -> TextStyle<'static> {
    ("sans-serif", 15).into_font().color(&BLACK)
}

fn desc_style() -> TextStyle<'static> {
    ("sans-serif", 16).into_font().color(&BLACK)
}

const GREY: RGBColor = RGBColor(150, 150, 150);

/// Plotters' 99%-accessibility palette without its pale colours, which vanish on white.
const PALETTE: [usize; 12] = [3, 0, 1, 4, 5, 10, 14, 7, 18, 12, 16, 20];

fn color(i: usize) -> RGBColor {
    let index = PALETTE[i % PALETTE.len()];
    let (r, g, b) = Palette99::COLORS.get(index).copied().unwrap_or((0, 0, 0));
    RGBColor(r, g, b)
}

const PERCENTILES: [&str; 5] = ["p50", "p90", "p99", "p99.9", "max"];

fn percentile_name(x: f64) -> &'static str {
    let i = x.round();
    if (x - i).abs() > 0.01 || i < 0.0 {
        return "";
    }
    PERCENTILES.get(i as usize).copied().unwrap_or("")
}

/// Whether the scenario's runs were offered more than one rate (so labels name it).
fn several_rates(scenario: &ScenarioReport) -> bool {
    let rates: BTreeSet<u64> = scenario
        .runs
        .iter()
        .filter_map(|r| r.offered_rate)
        .filter(|r| r.is_finite())
        .map(|r| r.to_bits())
        .collect();
    rates.len() > 1
}

/// `variant`, and ` @ N/s` when the scenario offered several rates.
fn run_label(run: &RunResult, index: usize, several_rates: bool) -> String {
    let variant = if run.variant.trim().is_empty() {
        format!("run {}", index + 1)
    } else {
        run.variant.clone()
    };
    match run.offered_rate {
        Some(rate) if several_rates => format!("{variant} @ {}/s", format::rate(rate)),
        _ => variant,
    }
}

fn display_name(scenario: &ScenarioReport) -> &str {
    if scenario.name.trim().is_empty() {
        "scenario"
    } else {
        &scenario.name
    }
}

/// The scenario's name as a file name: only `[A-Za-z0-9._-]`, never empty or hidden.
pub(crate) fn file_stem(name: &str) -> String {
    let stem: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let stem = stem.trim_start_matches('.');
    if stem.is_empty() {
        "scenario".to_owned()
    } else {
        stem.to_owned()
    }
}

/// A window's middle and length in seconds, the last window cut at the run's end;
/// `None` when the run has no usable window length.
fn window_span(run: &RunResult, start_s: f64) -> Option<(f64, f64)> {
    let len = run.window_s;
    if !(len.is_finite() && len > 0.0 && start_s.is_finite()) {
        return None;
    }
    let len = if run.duration_s.is_finite() && run.duration_s > start_s {
        len.min(run.duration_s - start_s)
    } else {
        len
    };
    // A sliver of a window at the end says little about a rate.
    (len >= run.window_s * 0.1).then_some((start_s + len / 2.0, len))
}

/// The smallest and largest finite value, `(1, 1)` when there is none.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo.is_finite() { (lo, hi) } else { (1.0, 1.0) }
}

/// A linear axis's top: the largest value with 10% headroom, positive.
fn upper(values: impl Iterator<Item = f64>) -> f64 {
    let (_, hi) = bounds(values);
    if hi > 0.0 { hi * 1.1 } else { 1.0 }
}

/// A logarithmic axis over whole decades, labelled at 1-2-5 (or sparser, as the decades
/// it spans need) and with faint lines at every digit. Plotters' own log axis loses the
/// first decade's label to rounding and cannot be given its key points.
#[derive(Debug, Clone, Copy)]
struct LogAxis {
    /// log10 of the bottom and the top, whole numbers, `lo < hi`.
    lo: f64,
    hi: f64,
}

impl LogAxis {
    /// The whole decades around the positive values `lo..=hi`, at least one.
    fn around(lo: f64, hi: f64) -> Self {
        let lo = if lo.is_finite() && lo > 0.0 { lo } else { 1.0 };
        let hi = if hi.is_finite() { hi.max(lo) } else { lo };
        let bottom = lo.log10().floor();
        // Nudged down so a value that is exactly a decade does not open another.
        let top = (hi.log10() - 1e-9).ceil().max(bottom + 1.0);
        Self {
            lo: bottom,
            hi: top,
        }
    }

    fn decades(&self) -> usize {
        (self.hi - self.lo).round().max(1.0) as usize
    }
}

impl Ranged for LogAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let v = if value.is_finite() && *value > 0.0 {
            value.log10().clamp(self.lo - 1.0, self.hi + 1.0)
        } else {
            self.lo - 1.0
        };
        let t = (v - self.lo) / (self.hi - self.lo);
        let pixel = f64::from(limit.0) + t * (f64::from(limit.1) - f64::from(limit.0));
        pixel.round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        let decades = self.decades();
        let light: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let digits = if hint.weight().allow_light_points() {
            light
        } else {
            // The richest labelling that fits the hint.
            let max = hint.max_num_points().max(1);
            [&[1.0, 2.0, 5.0][..], &[1.0, 3.0][..], &[1.0][..]]
                .into_iter()
                .find(|d| d.len() * decades < max)
                .unwrap_or(&[1.0])
        };
        let mut points = Vec::new();
        for decade in 0..=decades {
            let base = 10f64.powf(self.lo + decade as f64);
            for digit in digits {
                if decade == decades && *digit > 1.0 {
                    break;
                }
                points.push(base * digit);
            }
        }
        points
    }

    fn range(&self) -> Range<f64> {
        10f64.powf(self.lo)..10f64.powf(self.hi)
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use plotters::coord::ranged1d::BoldPoints;

    use super::*;

    #[test]
    fn log_axis_spans_whole_decades_and_labels_1_2_5() {
        let axis = LogAxis::around(0.3, 4.8);
        assert_eq!(axis.range(), 0.1..10.0);
        assert_eq!(
            axis.key_points(BoldPoints(12)),
            [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]
        );
        // A single value, exactly a decade: one decade above it, not two.
        assert_eq!(LogAxis::around(1.0, 1.0).range(), 1.0..10.0);
        assert_eq!(LogAxis::around(1.0, 10.0).range(), 1.0..10.0);
        // Many decades: only the decades are labelled.
        let wide = LogAxis::around(0.01, 5000.0);
        assert_eq!(wide.key_points(BoldPoints(8)).len(), 7);
        // Nothing usable: a default decade, and odd values map somewhere finite.
        let odd = LogAxis::around(f64::NAN, f64::INFINITY);
        assert_eq!(odd.range(), 1.0..10.0);
        let _ = odd.map(&f64::NAN, (0, 100));
        assert_eq!(odd.map(&1.0, (100, 0)), 100);
        assert_eq!(odd.map(&10.0, (100, 0)), 0);
    }

    #[test]
    fn file_stems_stay_inside_the_directory() {
        assert_eq!(file_stem("balance"), "balance");
        assert_eq!(file_stem("../a b/c"), "-a-b-c");
        assert_eq!(file_stem(".hidden"), "hidden");
        assert_eq!(file_stem(""), "scenario");
    }

    #[test]
    fn the_last_window_is_cut_at_the_run_end() {
        let run = RunResult {
            duration_s: 2.5,
            window_s: 1.0,
            ..RunResult::default()
        };
        assert_eq!(window_span(&run, 0.0), Some((0.5, 1.0)));
        assert_eq!(window_span(&run, 2.0), Some((2.25, 0.5)));
        assert_eq!(window_span(&run, 2.45), None);
        let no_length = RunResult::default();
        assert_eq!(window_span(&no_length, 0.0), None);
    }
}
