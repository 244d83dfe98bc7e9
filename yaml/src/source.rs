//! A source text with its name, kept so diagnostics can quote the line they point at.

use std::sync::Arc;

/// One input: a file's contents, or standard input.
#[derive(Debug, Clone)]
pub struct Source {
    name: Arc<str>,
    text: Arc<str>,
    /// Byte offset where each line starts, and where it ends (before its line break).
    lines: Arc<[(usize, usize)]>,
}

impl Source {
    /// A source named `name` (a path as the user gave it, or `<stdin>`).
    pub fn new(name: impl Into<Arc<str>>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let lines = line_spans(&text).collect();
        Self {
            name: name.into(),
            text,
            lines,
        }
    }

    /// The name diagnostics print.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Line `line` (1-based) without its line break. Lines end as YAML ends them: at
    /// `\n`, `\r\n` or a lone `\r`.
    pub fn line(&self, line: u32) -> Option<&str> {
        let index = usize::try_from(line).ok()?.checked_sub(1)?;
        let (start, end) = *self.lines.get(index)?;
        self.text.get(start..end)
    }

    /// How many lines the text has.
    pub fn line_count(&self) -> usize {
        self.lines.len()
    }
}

/// `(start, end)` byte offsets of each line of `text`, split at `\n`, `\r\n` and lone
/// `\r`, as YAML counts lines.
fn line_spans(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let bytes = text.as_bytes();
    let mut start = Some(0usize);
    std::iter::from_fn(move || {
        let from = start?;
        match bytes[from..].iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(i) => {
                let end = from + i;
                let after = if bytes[end] == b'\r' && bytes.get(end + 1) == Some(&b'\n') {
                    end + 2
                } else {
                    end + 1
                };
                start = Some(after);
                Some((from, end))
            }
            None => {
                start = None;
                Some((from, bytes.len()))
            }
        }
    })
}

/// The lines of `text`, as [`Source::line`] counts them.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    line_spans(text).map(move |(start, end)| &text[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_end_where_yaml_ends_them() {
        let text = "a\nb\r\nc\rd";
        assert_eq!(lines(text).collect::<Vec<_>>(), vec!["a", "b", "c", "d"]);
        let source = Source::new("x", text);
        assert_eq!(source.line(3), Some("c"));
        assert_eq!(source.line(4), Some("d"));
        assert_eq!(source.line(5), None);
        assert_eq!(source.line(0), None);
        assert_eq!(lines("a\n").collect::<Vec<_>>(), vec!["a", ""]);
        assert_eq!(Source::new("x", "é\r\n").line(1), Some("é"));
    }
}
