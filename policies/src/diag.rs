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
use crate::yaml::{Pos, Span};

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
                let start = location.pos.column.saturating_sub(1) as usize;
                let width = location
                    .end_column
                    .map_or(1, |end| (end - location.pos.column) as usize)
                    .max(1);
                let lead: String = text
                    .chars()
                    .take(start)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let _ = writeln!(out, "{gutter} |");
                let _ = writeln!(out, "{number} | {text}");
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
