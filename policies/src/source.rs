//! A source text with its name, kept so diagnostics can quote the line they point at.

use std::sync::Arc;

/// One input: a file's contents, or standard input.
#[derive(Debug, Clone)]
pub struct Source {
    name: Arc<str>,
    text: Arc<str>,
}

impl Source {
    /// A source named `name` (a path as the user gave it, or `<stdin>`).
    pub fn new(name: impl Into<Arc<str>>, text: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
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
        lines(&self.text).nth(index)
    }
}

/// The lines of `text`, split at `\n`, `\r\n` and lone `\r`, as YAML counts them.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\n', '\r']) {
            Some(i) => {
                let after = if current[i..].starts_with("\r\n") {
                    i + 2
                } else {
                    i + 1
                };
                rest = Some(&current[after..]);
                Some(&current[..i])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
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
        assert_eq!(source.line(5), None);
        assert_eq!(lines("a\n").collect::<Vec<_>>(), vec!["a", ""]);
    }
}
