//! Located YAML for every Causeway input people write: policies, manifests, scenarios.
//!
//! - [`tree`]: the documents of a YAML stream as a tree whose every node knows its line
//!   and column, with alias bombs and deep nesting refused.
//! - [`source`]: a named input text, able to quote any of its lines.
//! - [`diag`]: diagnostics with file, line, column and field path, rendered as a
//!   compiler renders them, or serialized as JSON.
//!
//! A leaf crate: it imports no other crate of ours, and any crate may import it.

pub mod diag;
pub mod json;
pub mod source;
pub mod tree;

pub use diag::{Diagnostic, Location, Related, Severity, render_text};
pub use source::Source;
pub use tree::{Node, Pos, Resolved, Span, Value};
