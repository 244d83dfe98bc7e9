//! A YAML tree that remembers where every node came from.
//!
//! Policy errors must name file, line, column and field, so the checker cannot decode YAML
//! straight into structs: it reads the event stream of `granit-parser` (the parser under
//! `serde-saphyr`) into this small tree of nodes with positions, then decodes the tree
//! field by field (see `decode`), collecting every problem instead of stopping at the first.
//!
//! Aliases share the anchored node (`Rc`), so `&a`/`*a` costs nothing to build. What an
//! alias bomb could still do — expand to billions of nodes when walked — is refused here:
//! every node knows how many nodes it stands for once aliases are expanded, and how deep it
//! is, and a document over either limit is refused with its position.
//!
//! This module knows YAML only; it knows nothing of what the documents mean.

use std::collections::HashMap;
use std::rc::Rc;

use granit_parser::{Event, Parser, ScalarStyle, ScanError};
use serde::Serialize;

/// Nodes a document may stand for once its aliases are expanded.
pub const MAX_EXPANDED_NODES: usize = 100_000;
/// How deeply collections may nest, counting through aliases.
pub const MAX_DEPTH: usize = 128;
/// Syntax errors reported for one source before giving up on the rest of it.
const MAX_SYNTAX_ERRORS: usize = 16;

/// A position in a source text: 1-based line and 1-based column, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1, counted in characters.
    pub column: u32,
}

impl Pos {
    fn from_marker(m: &granit_parser::Marker) -> Self {
        Self {
            line: saturate(m.line()),
            column: saturate(m.col().saturating_add(1)),
        }
    }
}

fn saturate(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The source range of a node: where it starts and where it ends (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Span {
    /// The first character.
    pub start: Pos,
    /// Just past the last character.
    pub end: Pos,
}

/// One YAML node with its source range.
#[derive(Debug)]
pub struct Node {
    /// What the node holds.
    pub value: Value,
    /// Where it was written.
    pub span: Span,
    /// Nodes this one stands for with aliases expanded (itself included).
    weight: usize,
    /// Nesting depth below and including this node.
    depth: usize,
}

/// What a node holds.
#[derive(Debug)]
pub enum Value {
    /// A scalar, unresolved: [`Node::resolve`] applies the YAML 1.2 core schema.
    Scalar(Scalar),
    /// A sequence.
    Seq(Vec<Rc<Node>>),
    /// A mapping, in source order; duplicate keys are kept for the decoder to report.
    Map(Vec<(Rc<Node>, Rc<Node>)>),
}

/// A scalar as written.
#[derive(Debug)]
pub struct Scalar {
    /// The text after escapes and folding.
    pub text: String,
    /// Plain (unquoted) scalars are resolved to null, bool, int or float; quoted and block
    /// scalars are always strings.
    pub plain: bool,
    /// An explicit tag, as `!!int` or `!custom`.
    pub tag: Option<String>,
}

/// A scalar after resolution by the YAML 1.2 core schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved<'a> {
    /// `~`, `null`, or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A decimal, octal (`0o`) or hexadecimal (`0x`) integer.
    Int(i128),
    /// A float, including `.inf` and `.nan`.
    Float(f64),
    /// Anything else, and every quoted scalar.
    Str(&'a str),
    /// A scalar with a tag this reader does not know.
    Tagged(&'a str),
}

impl Resolved<'_> {
    /// How an error message names this kind of value.
    pub fn describe(&self) -> &'static str {
        match self {
            Resolved::Null => "null",
            Resolved::Bool(_) => "a boolean",
            Resolved::Int(_) => "an integer",
            Resolved::Float(_) => "a number",
            Resolved::Str(_) => "a string",
            Resolved::Tagged(_) => "a tagged value",
        }
    }
}

impl Node {
    /// A short description of the node's kind for messages ("a mapping", "a string").
    pub fn describe(&self) -> &'static str {
        match &self.value {
            Value::Scalar(_) => self.resolve().map_or("a scalar", |r| r.describe()),
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// Resolves a scalar by the core schema; `None` for collections.
    pub fn resolve(&self) -> Option<Resolved<'_>> {
        let Value::Scalar(s) = &self.value else {
            return None;
        };
        let text = s.text.as_str();
        Some(match s.tag.as_deref() {
            Some("tag:yaml.org,2002:str") => Resolved::Str(text),
            Some("tag:yaml.org,2002:null") => Resolved::Null,
            Some("tag:yaml.org,2002:bool") => {
                resolve_bool(text).map_or(Resolved::Str(text), Resolved::Bool)
            }
            Some("tag:yaml.org,2002:int") => {
                resolve_int(text).map_or(Resolved::Str(text), Resolved::Int)
            }
            Some("tag:yaml.org,2002:float") => resolve_float(text)
                .or_else(|| resolve_int(text).map(|i| i as f64))
                .map_or(Resolved::Str(text), Resolved::Float),
            Some(_) => Resolved::Tagged(text),
            None if !s.plain => Resolved::Str(text),
            None => resolve_plain(text),
        })
    }

    /// Whether the node is a null scalar (`~`, `null`, or an empty value).
    pub fn is_null(&self) -> bool {
        matches!(self.resolve(), Some(Resolved::Null))
    }

    /// The pairs of a mapping with YAML merge keys (`<<: *defaults`) applied, as
    /// Kubernetes' YAML reader does: keys written in the mapping win over merged ones, and
    /// among merged mappings the earlier wins. Empty for anything but a mapping; a merge
    /// key whose value is not a mapping (or a list of them) is reported and skipped.
    pub fn merged_pairs(&self) -> (Vec<(&Node, &Node)>, Vec<MergeError>) {
        let mut pairs = Vec::new();
        let mut errors = Vec::new();
        merge_into(self, 0, &mut pairs, &mut errors);
        (pairs, errors)
    }
}

/// How deeply merge keys may chain (`<<` inside a merged mapping).
const MAX_MERGE_DEPTH: usize = 8;

/// A merge key that could not be applied.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeError {
    /// The value of the `<<` key.
    pub span: Span,
    /// What is wrong.
    pub message: String,
}

fn is_merge_key(key: &Node) -> bool {
    matches!(&key.value, Value::Scalar(s) if s.plain && s.text == "<<")
}

fn merge_into<'n>(
    node: &'n Node,
    depth: usize,
    out: &mut Vec<(&'n Node, &'n Node)>,
    errors: &mut Vec<MergeError>,
) {
    let Value::Map(pairs) = &node.value else {
        return;
    };
    let start = out.len();
    let taken = |out: &[(&Node, &Node)], key: &Node| {
        let name = key.resolve();
        out[start..].iter().any(|(k, _)| k.resolve() == name)
    };
    for (key, value) in pairs.iter().filter(|(k, _)| !is_merge_key(k)) {
        out.push((key, value));
    }
    for (_, value) in pairs.iter().filter(|(k, _)| is_merge_key(k)) {
        let sources: Vec<&Node> = match &value.value {
            Value::Map(_) => vec![value],
            Value::Seq(items) if items.iter().all(|i| matches!(i.value, Value::Map(_))) => {
                items.iter().map(|i| i.as_ref()).collect()
            }
            _ => {
                errors.push(MergeError {
                    span: value.span,
                    message: format!(
                        "the merge key `<<` needs a mapping or a list of mappings, found {}",
                        value.describe()
                    ),
                });
                continue;
            }
        };
        if depth >= MAX_MERGE_DEPTH {
            errors.push(MergeError {
                span: value.span,
                message: "merge keys nest too deeply".into(),
            });
            continue;
        }
        for source in sources {
            let mut merged = Vec::new();
            merge_into(source, depth + 1, &mut merged, errors);
            for (k, v) in merged {
                if !taken(out, k) {
                    out.push((k, v));
                }
            }
        }
    }
}

fn resolve_plain(text: &str) -> Resolved<'_> {
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Resolved::Null;
    }
    if let Some(b) = resolve_bool(text) {
        return Resolved::Bool(b);
    }
    if let Some(i) = resolve_int(text) {
        return Resolved::Int(i);
    }
    if let Some(f) = resolve_float(text) {
        return Resolved::Float(f);
    }
    Resolved::Str(text)
}

fn resolve_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn resolve_int(text: &str) -> Option<i128> {
    let (digits, radix) = if let Some(rest) = text.strip_prefix("0o") {
        (rest, 8)
    } else if let Some(rest) = text.strip_prefix("0x") {
        (rest, 16)
    } else {
        let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
        if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return text.parse::<i128>().ok();
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    i128::from_str_radix(digits, radix).ok()
}

fn resolve_float(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let negative = text.starts_with('-');
    match unsigned {
        ".inf" | ".Inf" | ".INF" => {
            return Some(if negative {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        ".nan" | ".NaN" | ".NAN" if unsigned.len() == text.len() => return Some(f64::NAN),
        _ => {}
    }
    // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac_part {
        Some(f) => all_digits(int_part) && all_digits(f) && !(int_part.is_empty() && f.is_empty()),
        None => !int_part.is_empty() && all_digits(int_part),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    if mantissa_ok && exponent_ok {
        text.parse::<f64>().ok()
    } else {
        None
    }
}

/// One document of a multi-document stream.
#[derive(Debug)]
pub struct Document {
    /// The root node; `None` for an empty document (a lone `---`, or only comments).
    pub root: Option<Rc<Node>>,
}

/// A syntax error, or a document over the size limits.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// Where the parser stopped.
    pub pos: Pos,
    /// What it found wrong.
    pub message: String,
}

/// Everything read from one source: the documents that parsed, and the errors of those
/// that did not. A syntax error loses only its own document.
#[derive(Debug, Default)]
pub struct Stream {
    /// Documents in source order.
    pub documents: Vec<Document>,
    /// Syntax and limit errors, in source order.
    pub errors: Vec<SyntaxError>,
}

/// Reads every document of `text`.
pub fn parse(text: &str) -> Stream {
    let mut parser = Parser::new_from_str(text);
    let mut stream = Stream::default();
    let mut builder = DocumentBuilder::default();
    loop {
        let outcome = match parser.next_event() {
            None => break,
            Some(Ok((event, span))) => builder.feed(event, &span),
            Some(Err(e)) => Err(syntax_error(&e)),
        };
        match outcome {
            Ok(Some(doc)) => stream.documents.push(doc),
            Ok(None) => {}
            Err(error) => {
                let pos = error.pos;
                stream.errors.push(error);
                builder = DocumentBuilder::default();
                if stream.errors.len() >= MAX_SYNTAX_ERRORS {
                    stream.errors.push(SyntaxError {
                        pos,
                        message: format!(
                            "{MAX_SYNTAX_ERRORS} syntax errors; the rest of this input is not read"
                        ),
                    });
                    break;
                }
                match parser.proceed_next_document() {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        stream.errors.push(syntax_error(&e));
                        break;
                    }
                }
            }
        }
    }
    stream
}

fn syntax_error(e: &ScanError) -> SyntaxError {
    let info = e.info();
    SyntaxError {
        pos: Pos::from_marker(e.marker()),
        message: if info.is_empty() {
            "invalid YAML".to_string()
        } else {
            format!("invalid YAML: {info}")
        },
    }
}

/// A collection being read.
enum Frame {
    Seq {
        items: Vec<Rc<Node>>,
        start: Pos,
        anchor: usize,
    },
    Map {
        entries: Vec<(Rc<Node>, Rc<Node>)>,
        pending_key: Option<Rc<Node>>,
        start: Pos,
        anchor: usize,
    },
}

/// Turns the events of one document into a tree.
#[derive(Default)]
struct DocumentBuilder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Rc<Node>>,
    root: Option<Rc<Node>>,
}

impl DocumentBuilder {
    /// Consumes one event; returns a document when one ends.
    fn feed(
        &mut self,
        event: Event<'_>,
        span: &granit_parser::Span,
    ) -> Result<Option<Document>, SyntaxError> {
        let start = Pos::from_marker(&span.start);
        let end = Pos::from_marker(&span.end);
        match event {
            Event::DocumentStart(..) => {
                self.stack.clear();
                self.anchors.clear();
                self.root = None;
            }
            Event::DocumentEnd => {
                let doc = Document {
                    // A document of only `---`, comments or `~` holds nothing.
                    root: self.root.take().filter(|root| !root.is_null()),
                };
                self.stack.clear();
                self.anchors.clear();
                return Ok(Some(doc));
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().ok_or_else(|| SyntaxError {
                    pos: start,
                    message: "alias refers to an anchor that is not defined before it".into(),
                })?;
                // Collections opened here are bounded by `push`; an alias can graft a
                // deep node anywhere, so its depth is checked where it lands.
                if node.depth + self.stack.len() > MAX_DEPTH {
                    return Err(SyntaxError {
                        pos: start,
                        message: format!(
                            "collections nest deeper than {MAX_DEPTH} levels through aliases"
                        ),
                    });
                }
                self.complete(node, start)?;
            }
            Event::UnresolvedAlias(name) => {
                return Err(SyntaxError {
                    pos: start,
                    message: format!("alias `*{name}` refers to an unknown anchor"),
                });
            }
            Event::Scalar(text, style, anchor, tag) => {
                let node = Node {
                    value: Value::Scalar(Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                        tag: tag.map(|t| format!("{}{}", t.handle(), t.suffix())),
                    }),
                    span: Span { start, end },
                    weight: 1,
                    depth: 1,
                };
                self.finish(node, anchor)?;
            }
            Event::SequenceStart(_, anchor, _) => {
                self.push(Frame::Seq {
                    items: Vec::new(),
                    start,
                    anchor,
                })?;
            }
            Event::MappingStart(_, anchor, _) => {
                self.push(Frame::Map {
                    entries: Vec::new(),
                    pending_key: None,
                    start,
                    anchor,
                })?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return Err(SyntaxError {
                        pos: start,
                        message: "collection ends that never started".into(),
                    });
                };
                let (value, start, anchor) = match frame {
                    Frame::Seq {
                        items,
                        start,
                        anchor,
                    } => (Value::Seq(items), start, anchor),
                    Frame::Map {
                        entries,
                        start,
                        anchor,
                        ..
                    } => (Value::Map(entries), start, anchor),
                };
                let children: Vec<&Rc<Node>> = match &value {
                    Value::Seq(items) => items.iter().collect(),
                    Value::Map(entries) => entries.iter().flat_map(|(k, v)| [k, v]).collect(),
                    Value::Scalar(_) => Vec::new(),
                };
                let weight = children
                    .iter()
                    .fold(1usize, |acc, c| acc.saturating_add(c.weight));
                let depth = 1 + children.iter().map(|c| c.depth).max().unwrap_or(0);
                let node = Node {
                    value,
                    span: Span { start, end },
                    weight,
                    depth,
                };
                self.finish(node, anchor)?;
            }
            // Stream markers, and presentation events (comments, anchor names) that carry
            // no data.
            _ => {}
        }
        Ok(None)
    }

    fn push(&mut self, frame: Frame) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            let pos = match &frame {
                Frame::Seq { start, .. } | Frame::Map { start, .. } => *start,
            };
            return Err(SyntaxError {
                pos,
                message: format!("collections nest deeper than {MAX_DEPTH} levels"),
            });
        }
        self.stack.push(frame);
        Ok(())
    }

    /// A node is complete: record its anchor and attach it to its parent.
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), SyntaxError> {
        let start = node.span.start;
        let node = Rc::new(node);
        if anchor != 0 {
            self.anchors.insert(anchor, Rc::clone(&node));
        }
        self.complete(node, start)
    }

    fn complete(&mut self, node: Rc<Node>, pos: Pos) -> Result<(), SyntaxError> {
        if node.weight > MAX_EXPANDED_NODES {
            return Err(SyntaxError {
                pos,
                message: format!(
                    "this document has more than {MAX_EXPANDED_NODES} nodes once its aliases are expanded"
                ),
            });
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Rc<Node> {
        let stream = parse(text);
        assert_eq!(stream.errors, vec![], "{text}");
        stream.documents[0].root.clone().expect("a root node")
    }

    fn map_get<'a>(node: &'a Node, key: &str) -> &'a Node {
        let Value::Map(entries) = &node.value else {
            panic!("not a map")
        };
        entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Scalar(s) if s.text == key))
            .map(|(_, v)| v.as_ref())
            .expect("key present")
    }

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let doc = root("a: 1\nspec:\n  qps: -5\n");
        let qps = map_get(map_get(&doc, "spec"), "qps");
        assert_eq!(qps.span.start, Pos { line: 3, column: 8 });
        assert_eq!(qps.resolve(), Some(Resolved::Int(-5)));
    }

    #[test]
    fn core_schema_resolution() {
        let doc = root(
            "n: ~\ne:\nb: True\ni: 0x1F\no: 0o17\nf: 1.5e3\ninf: -.inf\ns: \"12\"\nt: !!str 12\nw: 12abc\nd: .5\nx: !custom 1\n",
        );
        let r = |k| map_get(&doc, k).resolve().unwrap();
        assert_eq!(r("n"), Resolved::Null);
        assert_eq!(r("e"), Resolved::Null);
        assert_eq!(r("b"), Resolved::Bool(true));
        assert_eq!(r("i"), Resolved::Int(31));
        assert_eq!(r("o"), Resolved::Int(15));
        assert_eq!(r("f"), Resolved::Float(1500.0));
        assert_eq!(r("inf"), Resolved::Float(f64::NEG_INFINITY));
        assert_eq!(r("s"), Resolved::Str("12"));
        assert_eq!(r("t"), Resolved::Str("12"));
        assert_eq!(r("w"), Resolved::Str("12abc"));
        assert_eq!(r("d"), Resolved::Float(0.5));
        assert_eq!(r("x"), Resolved::Tagged("1"));
    }

    #[test]
    fn several_documents_and_empty_ones() {
        let stream = parse("---\na: 1\n---\n---\n# only a comment\n---\nb: 2\n");
        assert!(stream.errors.is_empty());
        assert_eq!(stream.documents.len(), 4);
        assert!(stream.documents[1].root.is_none());
        let last = stream.documents[3].root.as_ref().expect("a root");
        assert_eq!(last.span.start.line, 7);
    }

    #[test]
    fn a_syntax_error_loses_only_its_document() {
        let stream = parse("a: 1\n---\nb: [1, 2\n---\nc: 3\n");
        assert_eq!(stream.errors.len(), 1, "{:?}", stream.errors);
        assert!(stream.errors[0].message.starts_with("invalid YAML"));
        let roots: Vec<_> = stream
            .documents
            .iter()
            .filter(|d| d.root.is_some())
            .collect();
        assert_eq!(roots.len(), 2, "{:?}", stream.documents);
    }

    #[test]
    fn aliases_share_the_anchored_node() {
        let doc = root("a: &x {q: 1}\nb: *x\n");
        let a = map_get(&doc, "a");
        let b = map_get(&doc, "b");
        assert!(std::ptr::eq(a, b));
    }

    #[test]
    fn alias_bombs_are_refused_with_a_position() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            text.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                [prev.as_str(); 10].join(", ")
            ));
        }
        let stream = parse(&text);
        assert_eq!(stream.errors.len(), 1);
        assert!(
            stream.errors[0]
                .message
                .contains("once its aliases are expanded")
        );
        assert_eq!(stream.errors[0].pos.line, 5);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let stream = parse(&text);
        assert_eq!(stream.errors.len(), 1, "{:?}", stream.errors);
        let text = format!("{}1{}", "- ".repeat(200), "");
        let stream = parse(&text);
        assert_eq!(stream.errors.len(), 1);
        assert!(
            !stream.errors[0].message.contains("alias"),
            "{:?}",
            stream.errors
        );
        // Exactly at the limit is fine.
        let text = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(parse(&text).errors, vec![]);
    }

    #[test]
    fn aliases_cannot_nest_past_the_limit() {
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let text = format!("a: &a {deep}\nb: {}*a{}\n", "[".repeat(40), "]".repeat(40));
        let stream = parse(&text);
        assert_eq!(stream.errors.len(), 1, "{:?}", stream.errors);
        assert!(stream.errors[0].message.contains("through aliases"));
    }

    #[test]
    fn too_many_syntax_errors_stop_with_a_note() {
        let text = "a: [\n---\n".repeat(40);
        let stream = parse(&text);
        assert_eq!(stream.errors.len(), MAX_SYNTAX_ERRORS + 1);
        assert!(
            stream
                .errors
                .last()
                .unwrap()
                .message
                .contains("the rest of this input is not read")
        );
    }
}
