//! Decoding a located YAML tree against a schema, collecting every problem.
//!
//! A [`Decoder`] walks one document. Each reader (`string`, `integer`, `duration`,
//! `enumeration`, `object`, `items`) either returns the value or records a diagnostic at
//! the node with its field path and returns `None`, so decoding goes on and one pass
//! reports every error in a document. A document with any error is discarded by the
//! caller; what the readers return for it is never used.
//!
//! This module knows the YAML tree and the schema tables; it knows no policy field.

use std::sync::Arc;
use std::time::Duration;

use crate::diag::{Diagnostic, Location, Severity};
use crate::duration;
use crate::schema::{Field, ObjectSchema, Support};
use crate::suggest;
use crate::yaml::{Node, Resolved, Span, Value};

/// A field path as users read it: `spec.retries.retryOn[1]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(String);

impl FieldPath {
    /// The document root.
    pub fn root() -> Self {
        Self::default()
    }

    /// The path of key `name` under this one.
    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_string())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    /// The path of item `index` of the list at this path.
    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A value to decode: the node, its path, and how to describe what it should hold.
#[derive(Debug, Clone)]
pub struct FieldRef<'n> {
    /// The value.
    pub node: &'n Node,
    /// Where it sits in the document.
    pub path: FieldPath,
    /// What it should hold, for messages (`duration > 0`).
    pub expected: &'static str,
}

impl<'n> FieldRef<'n> {
    /// The root of a document.
    pub fn root(node: &'n Node) -> Self {
        Self {
            node,
            path: FieldPath::root(),
            expected: "a Kubernetes object (a mapping with apiVersion, kind and metadata)",
        }
    }

    /// The node's span.
    pub fn span(&self) -> Span {
        self.node.span
    }

    /// A scalar as it was written (for messages: `1e-300`, not its decimal expansion).
    pub fn written(&self) -> &'n str {
        match &self.node.value {
            Value::Scalar(s) => &s.text,
            _ => "",
        }
    }

    /// The span of key `name` if this is a mapping that has it (the key, not its value).
    pub fn key_span(&self, name: &str) -> Option<Span> {
        let Value::Map(entries) = &self.node.value else {
            return None;
        };
        entries
            .iter()
            .find(|(k, _)| matches!(k.resolve(), Some(Resolved::Str(s)) if s == name))
            .map(|(k, _)| k.span)
    }

    /// The value of key `name` if this is a mapping that has it, looked up without any
    /// checks (for cross-field rules that point at an already decoded field).
    pub fn member(&self, name: &str, expected: &'static str) -> Option<FieldRef<'n>> {
        let Value::Map(entries) = &self.node.value else {
            return None;
        };
        entries
            .iter()
            .find(|(k, _)| matches!(k.resolve(), Some(Resolved::Str(s)) if s == name))
            .map(|(_, v)| FieldRef {
                node: v,
                path: self.path.field(name),
                expected,
            })
    }
}

/// A mapping being decoded, checked against its schema.
#[derive(Debug)]
pub struct Object<'n> {
    span: Span,
    path: FieldPath,
    schema: &'static ObjectSchema,
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Object<'n> {
    /// The value of a declared key, unless it is absent or null.
    pub fn get(&self, name: &str) -> Option<FieldRef<'n>> {
        let field = self.declared(name)?;
        self.entries
            .iter()
            .find(|(key, _, value)| *key == name && !value.is_null())
            .map(|(_, _, value)| FieldRef {
                node: value,
                path: self.path.field(name),
                expected: field.expected(),
            })
    }

    /// Whether a declared key has a non-null value.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The mapping's path.
    pub fn path(&self) -> &FieldPath {
        &self.path
    }

    /// The mapping's span.
    pub fn span(&self) -> Span {
        self.span
    }

    fn declared(&self, name: &str) -> Option<&'static Field> {
        let field = self.schema.field(name);
        debug_assert!(
            field.is_some(),
            "decoder reads `{name}`, which schema {} does not declare",
            self.schema.name
        );
        field
    }
}

/// Decodes one document, collecting diagnostics.
#[derive(Debug)]
pub struct Decoder {
    file: Arc<str>,
    diagnostics: Vec<Diagnostic>,
    errors: usize,
}

impl Decoder {
    /// A decoder for a document of `file`.
    pub fn new(file: &Arc<str>) -> Self {
        Self {
            file: Arc::clone(file),
            diagnostics: Vec::new(),
            errors: 0,
        }
    }

    /// Errors recorded so far.
    pub fn error_count(&self) -> usize {
        self.errors
    }

    /// Everything recorded.
    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        self.diagnostics
    }

    /// The location of `span` in this document's file.
    pub fn location(&self, span: Span) -> Location {
        Location::of_span(&self.file, span)
    }

    /// Records a diagnostic; returns it for details to be added.
    pub fn report(
        &mut self,
        severity: Severity,
        span: Span,
        path: &FieldPath,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        if severity == Severity::Error {
            self.errors += 1;
        }
        let diagnostic =
            Diagnostic::new(severity, self.location(span), message).with_path(path.as_str());
        self.diagnostics.push(diagnostic);
        let last = self.diagnostics.len() - 1;
        &mut self.diagnostics[last]
    }

    /// Records an error at `field`.
    pub fn error(&mut self, field: &FieldRef<'_>, message: impl Into<String>) -> &mut Diagnostic {
        self.report(Severity::Error, field.span(), &field.path, message)
    }

    /// Records a warning at `field`.
    pub fn warning(&mut self, field: &FieldRef<'_>, message: impl Into<String>) -> &mut Diagnostic {
        self.report(Severity::Warning, field.span(), &field.path, message)
    }

    /// Records an error for a required key that is absent from `object`.
    pub fn missing(&mut self, object: &Object<'_>, name: &str) {
        let expected = object.schema.field(name).map_or("a value", Field::expected);
        let path = object.path.field(name);
        self.report(
            Severity::Error,
            object.span,
            &path,
            format!("missing required field `{name}`"),
        )
        .expected = Some(expected.to_string());
    }

    /// A required key: its value, or an error naming it.
    pub fn require<'n>(&mut self, object: &Object<'n>, name: &str) -> Option<FieldRef<'n>> {
        let value = object.get(name);
        if value.is_none() {
            self.missing(object, name);
        }
        value
    }

    fn type_error(&mut self, field: &FieldRef<'_>) -> &mut Diagnostic {
        let found = field.node.describe();
        let diagnostic = self.error(field, format!("expected {}, found {found}", field.expected));
        diagnostic.expected = Some(field.expected.to_string());
        diagnostic
    }

    /// A mapping checked against `schema`: keys must be strings, unique and declared.
    /// Declared-but-unsupported keys get a warning; deprecated ones a warning naming the
    /// replacement.
    pub fn object<'n>(
        &mut self,
        field: &FieldRef<'n>,
        schema: &'static ObjectSchema,
    ) -> Option<Object<'n>> {
        let Value::Map(_) = &field.node.value else {
            let found = field.node.describe();
            self.error(field, format!("expected a mapping, found {found}"))
                .expected = Some(format!("a mapping of {} fields", schema.name));
            return None;
        };
        let pairs = self.merged_pairs(field);
        let mut entries: Vec<(&'n str, &'n Node, &'n Node)> = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let key_ref = FieldRef {
                node: key,
                path: field.path.clone(),
                expected: "a field name",
            };
            let name = match key.resolve() {
                Some(Resolved::Str(name)) => name,
                _ => {
                    let found = key.describe();
                    self.error(
                        &key_ref,
                        format!("field names must be strings, found {found}"),
                    );
                    continue;
                }
            };
            let key_ref = FieldRef {
                path: field.path.field(name),
                ..key_ref
            };
            if let Some((_, first, _)) = entries.iter().find(|(n, _, _)| *n == name) {
                let first = self.location(first.span);
                self.error(&key_ref, format!("duplicate field `{name}`"))
                    .related
                    .push(crate::diag::Related {
                        location: first,
                        message: "first written".to_string(),
                    });
                continue;
            }
            match schema.field(name) {
                None => {
                    let suggestion = suggest::closest(name, schema.fields.iter().map(|f| f.name));
                    let message = match suggestion {
                        Some(s) => format!("unknown field `{name}`, did you mean `{s}`?"),
                        None => format!("unknown field `{name}`"),
                    };
                    let known: Vec<String> = schema
                        .fields
                        .iter()
                        .map(|f| format!("`{}`", f.name))
                        .collect();
                    self.error(&key_ref, message).expected =
                        Some(format!("one of {}", known.join(", ")));
                }
                Some(declared) if !value.is_null() => match declared.support {
                    Support::Unsupported(why) => {
                        self.warning(
                            &key_ref,
                            format!("field `{name}` is not supported by Causeway and is ignored"),
                        )
                        .help = Some(why.to_string());
                    }
                    Support::Deprecated(instead) => {
                        self.warning(&key_ref, format!("field `{name}` is deprecated"))
                            .help = Some(format!("use `{instead}` instead"));
                    }
                    Support::Supported | Support::Ignored => {}
                },
                Some(_) => {}
            }
            entries.push((name, key, value));
        }
        Some(Object {
            span: field.node.span,
            path: field.path.clone(),
            schema,
            entries,
        })
    }

    /// The pairs of a mapping with merge keys applied (see [`Node::merged_pairs`]),
    /// reporting merge keys that cannot be applied.
    fn merged_pairs<'n>(&mut self, field: &FieldRef<'n>) -> Vec<(&'n Node, &'n Node)> {
        let (pairs, errors) = field.node.merged_pairs();
        for error in errors {
            self.report(
                Severity::Error,
                error.span,
                &field.path.field("<<"),
                error.message,
            )
            .expected = Some("a mapping or a list of mappings".into());
        }
        pairs
    }

    /// The items of a list, each with its indexed path, described as `item`.
    pub fn items<'n>(
        &mut self,
        field: &FieldRef<'n>,
        item: &'static str,
    ) -> Option<Vec<FieldRef<'n>>> {
        let Value::Seq(items) = &field.node.value else {
            self.type_error(field);
            return None;
        };
        Some(
            items
                .iter()
                .enumerate()
                .map(|(i, node)| FieldRef {
                    node,
                    path: field.path.index(i),
                    expected: item,
                })
                .collect(),
        )
    }

    /// A string.
    pub fn string<'n>(&mut self, field: &FieldRef<'n>) -> Option<&'n str> {
        match field.node.resolve() {
            Some(Resolved::Str(s)) => Some(s),
            Some(Resolved::Int(_) | Resolved::Float(_) | Resolved::Bool(_)) => {
                self.type_error(field).help =
                    Some("put the value in quotes to make it a string".to_string());
                None
            }
            _ => {
                self.type_error(field);
                None
            }
        }
    }

    /// A boolean.
    pub fn boolean(&mut self, field: &FieldRef<'_>) -> Option<bool> {
        match field.node.resolve() {
            Some(Resolved::Bool(b)) => Some(b),
            Some(Resolved::Str(s))
                if ["yes", "no", "on", "off", "y", "n"]
                    .iter()
                    .any(|w| s.eq_ignore_ascii_case(w)) =>
            {
                self.type_error(field).help = Some(format!(
                    "YAML 1.2 reads `{s}` as a string; write `true` or `false`"
                ));
                None
            }
            _ => {
                self.type_error(field);
                None
            }
        }
    }

    /// An integer in `min..=max`.
    pub fn integer(&mut self, field: &FieldRef<'_>, min: i128, max: i128) -> Option<i128> {
        let value = match field.node.resolve() {
            Some(Resolved::Int(i)) => i,
            Some(Resolved::Float(f)) if f.fract() == 0.0 && f.is_finite() => {
                let name = last_segment(&field.path).to_string();
                let written = field.written();
                if f < min as f64 || f > max as f64 {
                    let rule = range_rule(min, max, f > max as f64);
                    self.error(field, format!("{name} must be {rule}, found {written}"))
                        .expected = Some(field.expected.to_string());
                } else {
                    self.error(
                        field,
                        format!("{name} must be written as an integer, found `{written}`"),
                    )
                    .help = Some(format!("write `{}`", f as i128));
                }
                return None;
            }
            _ => {
                self.type_error(field);
                return None;
            }
        };
        if value < min || value > max {
            let rule = range_rule(min, max, value > max);
            self.error(
                field,
                format!(
                    "{} must be {rule}, found {value}",
                    last_segment(&field.path)
                ),
            )
            .expected = Some(field.expected.to_string());
            return None;
        }
        Some(value)
    }

    /// A `u32` in `min..=max`.
    pub fn u32(&mut self, field: &FieldRef<'_>, min: u32, max: u32) -> Option<u32> {
        self.integer(field, i128::from(min), i128::from(max))
            .and_then(|v| u32::try_from(v).ok())
    }

    /// A finite number (integer or float).
    pub fn number(&mut self, field: &FieldRef<'_>) -> Option<f64> {
        let value = match field.node.resolve() {
            Some(Resolved::Int(i)) => i as f64,
            Some(Resolved::Float(f)) => f,
            _ => {
                self.type_error(field);
                return None;
            }
        };
        if !value.is_finite() {
            self.error(
                field,
                format!("{} must be a finite number", last_segment(&field.path)),
            )
            .expected = Some(field.expected.to_string());
            return None;
        }
        Some(value)
    }

    /// A duration in Go syntax (`250ms`, `1m30s`), at least `min`.
    pub fn duration(&mut self, field: &FieldRef<'_>, min: Duration) -> Option<Duration> {
        let text = match field.node.resolve() {
            Some(Resolved::Str(s)) => s,
            Some(Resolved::Int(0)) => "0",
            Some(Resolved::Int(i)) => {
                self.error(field, format!("duration `{i}` has no unit"))
                    .help = Some(format!(
                    "write `{i}s` for seconds or `{i}ms` for milliseconds"
                ));
                return None;
            }
            _ => {
                self.type_error(field);
                return None;
            }
        };
        match duration::parse(text) {
            Ok(d) if d < min => {
                let name = last_segment(&field.path);
                let message = if min == Duration::from_nanos(1) {
                    format!("{name} must be longer than 0s")
                } else {
                    format!("{name} must be at least {}", duration::format(min))
                };
                self.error(field, message).expected = Some(field.expected.to_string());
                None
            }
            Ok(d) if d > MAX_DURATION => {
                let name = last_segment(&field.path);
                self.error(
                    field,
                    format!("{name} must be at most {}", duration::format(MAX_DURATION)),
                )
                .expected = Some(field.expected.to_string());
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(field, format!("invalid duration: {e}")).expected =
                    Some(field.expected.to_string());
                None
            }
        }
    }

    /// One of the names in `variants`, exactly as written there.
    pub fn enumeration<T: Copy>(
        &mut self,
        field: &FieldRef<'_>,
        variants: &[(&'static str, T)],
    ) -> Option<T> {
        let text = self.string(field)?;
        if let Some((_, value)) = variants.iter().find(|(name, _)| *name == text) {
            return Some(*value);
        }
        let names = variants.iter().map(|(name, _)| *name);
        let message = match suggest::closest(text, names.clone()) {
            Some(s) => format!("unknown value `{text}`, did you mean `{s}`?"),
            None => format!("unknown value `{text}`"),
        };
        let listed: Vec<String> = names.map(|n| format!("`{n}`")).collect();
        self.error(field, message).expected = Some(format!("one of {}", listed.join(", ")));
        None
    }
}

/// The longest duration a policy may name: a year. Longer is a mistake, and deadlines
/// computed from it must not overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The last key of a path (`qps` for `spec.rateLimit.qps`), for messages.
pub fn last_segment(path: &FieldPath) -> &str {
    path.as_str().rsplit('.').next().unwrap_or(path.as_str())
}

/// How to state the range a value missed: "between 1 and 100", or, for ranges open at
/// the top (up to `u32::MAX`), "at least 1" below it and "at most 4294967295" above.
fn range_rule(min: i128, max: i128, too_big: bool) -> String {
    let open_top = max >= i128::from(u32::MAX);
    match (open_top, too_big) {
        (true, false) => format!("at least {min}"),
        (true, true) => format!("at most {max}"),
        (false, _) => format!("between {min} and {max}"),
    }
}
