//! Diagnostics: what is wrong, where, and what to do about it.
//!
//! Every problem the checker finds becomes a [`Diagnostic`] with the file, line and column,
//! the field path (`spec.rateLimit.qps`), what was expected and, where we can tell, a
//! suggestion. They render as text for people ([`render_text`]) and serialize as JSON for
//! pipelines.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use crate::source::Source;
use crate::tree::{Pos, Span};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The object is refused; `policy check` exits 1.
    Error,
    /// The object is accepted, but something in it has no effect or is deprecated.
    Warning,
}

/// A place in a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The source's name (a path, or `<stdin>`).
    pub file: Arc<str>,
    /// Line and column where the problem starts.
    #[serde(flatten)]
    pub pos: Pos,
    /// Where it ends, when it is on the same line (for underlining).
    #[serde(skip)]
    pub end_column: Option<u32>,
}

impl Location {
    /// The location of a node's span in `file`.
    pub fn of_span(file: &Arc<str>, span: Span) -> Self {
        Self {
            file: Arc::clone(file),
            pos: span.start,
            end_column: (span.end.line == span.start.line && span.end.column > span.start.column)
                .then_some(span.end.column),
        }
    }

    /// A location known only by its start.
    pub fn at(file: &Arc<str>, pos: Pos) -> Self {
        Self {
            file: Arc::clone(file),
            pos,
            end_column: None,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.pos.line, self.pos.column)
    }
}

/// A second place a diagnostic refers to, such as the first of two conflicting policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Related {
    /// Where.
    pub location: Location,
    /// What is there.
    pub message: String,
}

/// One problem found in the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where; `None` only for problems of a whole input (a file that cannot be read).
    pub location: Option<Location>,
    /// The source name when there is no location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<Arc<str>>,
    /// The field path, as `spec.rateLimit.qps` or `spec.retries.retryOn[1]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What would have been right.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Other places involved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
}

impl Diagnostic {
    /// A diagnostic at `location`.
    pub fn new(severity: Severity, location: Location, message: impl Into<String>) -> Self {
        Self {
            severity,
            location: Some(location),
            file: None,
            path: None,
            message: message.into(),
            expected: None,
            help: None,
            related: Vec::new(),
        }
    }

    /// A diagnostic about a whole input.
    pub fn for_file(severity: Severity, file: &Arc<str>, message: impl Into<String>) -> Self {
        Self {
            severity,
            location: None,
            file: Some(Arc::clone(file)),
            path: None,
            message: message.into(),
            expected: None,
            help: None,
            related: Vec::new(),
        }
    }

    /// Adds the field path.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.path = (!path.is_empty()).then_some(path);
        self
    }

    /// Adds what was expected.
    pub fn with_expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    /// Adds advice.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a related place.
    pub fn with_related(mut self, location: Location, message: impl Into<String>) -> Self {
        self.related.push(Related {
            location,
            message: message.into(),
        });
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Renders diagnostics the way compilers do, quoting the source line:
///
/// ```text
/// error: unknown field `burts`, did you mean `burst`?
///   --> policies/bad.yaml:12:5
///    |
/// 12 |     burts: 10
///    |     ^^^^^ spec.rateLimit.burts
///    = expected: one of `qps`, `burst`, `scope`, `enforceAt`, `onLimit`, `maxQueueWait`
/// ```
pub fn render_text(diagnostic: &Diagnostic, sources: &[Source]) -> String {
    let mut out = String::new();
    let label = match diagnostic.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let _ = writeln!(out, "{label}: {}", diagnostic.message);
    match &diagnostic.location {
        Some(location) => {
            let line_text = sources
                .iter()
                .find(|s| s.name() == &location.file)
                .and_then(|s| s.line(location.pos.line));
            let number = location.pos.line.to_string();
            let gutter = " ".repeat(number.len());
            let _ = writeln!(out, "{gutter}--> {location}");
            if let Some(text) = line_text {
                let column = location.pos.column.saturating_sub(1) as usize;
                let width = location
                    .end_column
                    .map_or(1, |end| end.saturating_sub(location.pos.column) as usize)
                    .max(1);
                let (shown, caret_at, width) = window(text, column, width);
                let lead: String = shown
                    .chars()
                    .take(caret_at)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let _ = writeln!(out, "{gutter} |");
                let _ = writeln!(out, "{number} | {shown}");
                let path = diagnostic.path.as_deref().unwrap_or("");
                let _ = writeln!(out, "{gutter} | {lead}{} {path}", "^".repeat(width));
                trim_trailing_space(&mut out);
            } else if let Some(path) = &diagnostic.path {
                let _ = writeln!(out, "{gutter} = at: {path}");
            }
            append_notes(&mut out, diagnostic, &gutter);
        }
        None => {
            if let Some(file) = &diagnostic.file {
                let _ = writeln!(out, " --> {file}");
            }
            append_notes(&mut out, diagnostic, " ");
        }
    }
    out
}

/// The part of a long line worth quoting: at most [`QUOTE_WIDTH`] characters around
/// `column`, with `…` where it was cut. Returns the text, the caret's character offset in
/// it, and the caret width, clipped to the window.
fn window(line: &str, column: usize, width: usize) -> (String, usize, usize) {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= QUOTE_WIDTH {
        return (line.to_string(), column.min(chars.len()), width);
    }
    let start = column.saturating_sub(QUOTE_WIDTH / 3).min(chars.len());
    let end = (start + QUOTE_WIDTH).min(chars.len());
    let mut shown = String::new();
    let mut caret_at = column.saturating_sub(start);
    if start > 0 {
        shown.push('…');
        caret_at += 1;
    }
    shown.extend(&chars[start..end]);
    if end < chars.len() {
        shown.push('…');
    }
    let width = width.min(end.saturating_sub(column)).max(1);
    (shown, caret_at, width)
}

/// The most characters of a source line a diagnostic quotes.
const QUOTE_WIDTH: usize = 100;

fn append_notes(out: &mut String, diagnostic: &Diagnostic, gutter: &str) {
    if let Some(expected) = &diagnostic.expected {
        let _ = writeln!(out, "{gutter} = expected: {expected}");
    }
    if let Some(help) = &diagnostic.help {
        let _ = writeln!(out, "{gutter} = help: {help}");
    }
    for related in &diagnostic.related {
        let _ = writeln!(
            out,
            "{gutter} = note: {} at {}",
            related.message, related.location
        );
    }
}

fn trim_trailing_space(out: &mut String) {
    let trimmed_len = out.trim_end().len();
    out.truncate(trimmed_len);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_quoted_around_the_column() {
        let line = format!("{}burts: 1{}", "a".repeat(500), "b".repeat(500));
        let (shown, caret_at, width) = window(&line, 500, 5);
        assert!(shown.chars().count() <= QUOTE_WIDTH + 2);
        assert!(shown.starts_with('…') && shown.ends_with('…'));
        let caret: String = shown.chars().skip(caret_at).take(width).collect();
        assert_eq!(caret, "burts");
        let (short, at, w) = window("qps: -5", 5, 2);
        assert_eq!((short.as_str(), at, w), ("qps: -5", 5, 2));
    }

    #[test]
    fn a_location_past_its_line_does_not_underflow() {
        let file: Arc<str> = Arc::from("f.yaml");
        let mut location = Location::at(
            &file,
            Pos {
                line: 1,
                column: 40,
            },
        );
        location.end_column = Some(3);
        let d = Diagnostic::new(Severity::Error, location, "m");
        let text = render_text(&d, &[Source::new("f.yaml", "short\n")]);
        assert!(text.contains("--> f.yaml:1:40"), "{text}");
    }
}
