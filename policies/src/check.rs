//! Checking a set of sources: parse every document, decode every object, build the policy
//! set, and report — what `causeway policy check` prints, and what a node runs on the
//! policies it receives.

use std::fmt::Write as _;

use serde::Serialize;

use crate::decode::Decoder;
use crate::diag::{Diagnostic, Location, Severity, render_text};
use crate::object::{Decoded, PolicyObject, PolicyOrigin, SkippedObject, decode_document};
use crate::plan::ServicePolicy;
use crate::set::{PolicySet, PolicySetBuilder};
use crate::source::Source;
use crate::yaml;

/// What one source holds.
#[derive(Debug, Default)]
pub struct ParsedSource {
    /// The valid policy objects, in source order.
    pub objects: Vec<PolicyObject>,
    /// What decoded of invalid policy objects, for conflict reports only.
    pub invalid: Vec<PolicyObject>,
    /// Objects that are not policies.
    pub skipped: Vec<SkippedObject>,
    /// Errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses and decodes every document of `source`. Invalid objects are left out; the rest
/// of the source is still read.
pub fn parse_source(source: &Source) -> ParsedSource {
    let mut parsed = ParsedSource::default();
    let stream = yaml::parse(source.text());
    for error in &stream.errors {
        parsed.diagnostics.push(Diagnostic::new(
            Severity::Error,
            Location::at(source.name(), error.pos),
            error.message.clone(),
        ));
    }
    for document in &stream.documents {
        let Some(root) = &document.root else {
            continue;
        };
        let mut decoder = Decoder::new(source.name());
        for decoded in decode_document(&mut decoder, root) {
            match decoded {
                Decoded::Policy(object) => parsed.objects.push(object),
                Decoded::Skipped(object) => parsed.skipped.push(object),
                Decoded::Invalid(partial) => parsed.invalid.extend(partial),
            }
        }
        parsed.diagnostics.extend(decoder.into_diagnostics());
    }
    cap(&mut parsed.diagnostics, source);
    parsed
}

/// The most diagnostics reported for one source; the rest are summed up in one line, so
/// a file of garbage cannot flood a terminal or a log.
pub const MAX_DIAGNOSTICS_PER_SOURCE: usize = 100;

fn cap(diagnostics: &mut Vec<Diagnostic>, source: &Source) {
    if diagnostics.len() <= MAX_DIAGNOSTICS_PER_SOURCE {
        return;
    }
    let hidden = diagnostics.split_off(MAX_DIAGNOSTICS_PER_SOURCE);
    let errors = hidden.iter().filter(|d| d.is_error()).count();
    let severity = if errors > 0 {
        Severity::Error
    } else {
        Severity::Warning
    };
    let last = diagnostics
        .last()
        .and_then(|d| d.location.clone())
        .unwrap_or_else(|| Location::at(source.name(), crate::yaml::Pos { line: 1, column: 1 }));
    diagnostics.push(Diagnostic::new(
        severity,
        last,
        format!(
            "{} more problems in this file are not shown ({errors} errors, {} warnings)",
            hidden.len(),
            hidden.len() - errors
        ),
    ));
}

/// The outcome of checking a set of inputs.
#[derive(Debug)]
pub struct Report {
    /// The sources read, in order.
    pub sources: Vec<Source>,
    /// Every diagnostic, ordered by source, line and column.
    pub diagnostics: Vec<Diagnostic>,
    /// The compiled policies.
    pub set: PolicySet,
    /// Valid policy objects found (some may not be applied, for conflicts).
    pub valid_objects: usize,
    /// Objects that are not policies.
    pub skipped: Vec<SkippedObject>,
}

impl Report {
    /// Checks `sources`, with `input_diagnostics` from reading them.
    pub fn check(sources: Vec<Source>, input_diagnostics: Vec<Diagnostic>) -> Self {
        let mut diagnostics = input_diagnostics;
        let mut builder = PolicySetBuilder::new();
        let mut valid_objects = 0;
        let mut skipped = Vec::new();
        for source in &sources {
            let parsed = parse_source(source);
            diagnostics.extend(parsed.diagnostics);
            skipped.extend(parsed.skipped);
            valid_objects += parsed.objects.len();
            // In document order, so "first" in a conflict means first in the file.
            let mut all: Vec<(PolicyObject, bool)> = parsed
                .objects
                .into_iter()
                .map(|o| (o, true))
                .chain(parsed.invalid.into_iter().map(|o| (o, false)))
                .collect();
            all.sort_by_key(|(o, _)| o.location.pos);
            for (object, valid) in all {
                if valid {
                    builder.add(object);
                } else {
                    builder.claim_invalid(&object);
                }
            }
        }
        let (set, conflicts) = builder.build();
        diagnostics.extend(conflicts);
        let order = |d: &Diagnostic| {
            let file = d.location.as_ref().map(|l| &l.file).or(d.file.as_ref());
            let index = file
                .and_then(|f| sources.iter().position(|s| s.name() == f))
                .unwrap_or(usize::MAX);
            let pos = d.location.as_ref().map(|l| l.pos);
            (index, pos)
        };
        diagnostics.sort_by_cached_key(order);
        Self {
            sources,
            diagnostics,
            set,
            valid_objects,
            skipped,
        }
    }

    /// Errors found.
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    /// Warnings found.
    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }

    /// Whether the inputs are free of errors.
    pub fn is_ok(&self) -> bool {
        self.errors() == 0
    }

    /// Every diagnostic as a compiler prints it, then a summary line.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for diagnostic in &self.diagnostics {
            out.push_str(&render_text(diagnostic, &self.sources));
            out.push('\n');
        }
        let plural = |n: usize, word: &str| match (n, word) {
            (1, _) => format!("{n} {word}"),
            (_, "policy") => format!("{n} policies"),
            _ => format!("{n} {word}s"),
        };
        let _ = write!(
            out,
            "{}: {} attached to {}",
            plural(self.sources.len(), "file"),
            plural(self.set.objects(), "policy"),
            plural(self.set.len(), "target"),
        );
        if !self.skipped.is_empty() {
            let _ = write!(
                out,
                ", {} that {} not policies skipped",
                plural(self.skipped.len(), "object"),
                if self.skipped.len() == 1 { "is" } else { "are" }
            );
        }
        let _ = writeln!(
            out,
            "; {}, {}",
            plural(self.errors(), "error"),
            plural(self.warnings(), "warning")
        );
        out
    }

    /// The report for pipelines, as pretty JSON: counts, diagnostics, and every compiled
    /// plan.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Json<'a> {
            ok: bool,
            errors: usize,
            warnings: usize,
            files: Vec<&'a str>,
            diagnostics: &'a [Diagnostic],
            policies: Vec<PolicyEntry<'a>>,
            skipped: &'a [SkippedObject],
            default_plan: &'a ServicePolicy,
        }
        #[derive(Serialize)]
        struct PolicyEntry<'a> {
            service: String,
            port: Option<u16>,
            origin: &'a PolicyOrigin,
            plan: &'a ServicePolicy,
        }
        let report = Json {
            ok: self.is_ok(),
            errors: self.errors(),
            warnings: self.warnings(),
            files: self.sources.iter().map(|s| s.name().as_ref()).collect(),
            diagnostics: &self.diagnostics,
            policies: self
                .set
                .iter()
                .map(|(target, bound)| PolicyEntry {
                    service: target.service.to_string(),
                    port: target.port,
                    origin: &bound.origin,
                    plan: &bound.plan,
                })
                .collect(),
            skipped: &self.skipped,
            default_plan: self.set.default_plan(),
        };
        // Serializing plain structs of strings and numbers cannot fail.
        let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
        text.push('\n');
        text
    }
}
