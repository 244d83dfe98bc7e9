//! Reading policy inputs: files, directories (recursively) and standard input.
//!
//! Directories yield their `*.yaml` and `*.yml` files in name order, recursively. Names
//! starting with `.` are passed over — that skips editor droppings and the `..data`
//! links of a mounted ConfigMap, whose files are also linked at the top and would
//! otherwise be read twice. Symbolic links to files are followed; links to directories are
//! not, so a link cycle cannot trap the walk. A file named explicitly is read whatever its
//! extension.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{Diagnostic, Location, Severity};
use crate::source::Source;
use crate::yaml::Pos;

/// The largest input read, so a mistaken path (a log file, a disk image) fails fast.
pub const MAX_INPUT_BYTES: u64 = 8 * 1024 * 1024;

/// The name standard input goes by in diagnostics.
pub const STDIN_NAME: &str = "<stdin>";

/// One thing to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file or a directory.
    Path(PathBuf),
    /// Standard input.
    Stdin,
}

impl Input {
    /// `-` is standard input; anything else a path.
    pub fn from_arg(arg: &str) -> Self {
        if arg == "-" {
            Input::Stdin
        } else {
            Input::Path(PathBuf::from(arg))
        }
    }
}

/// Reads every input; a problem with one input is a diagnostic, never a lost rest.
pub fn read_inputs(inputs: &[Input], stdin: &mut dyn Read) -> (Vec<Source>, Vec<Diagnostic>) {
    let mut sources = Vec::new();
    let mut diagnostics = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for input in inputs {
        match input {
            Input::Stdin => {
                let name: Arc<str> = Arc::from(STDIN_NAME);
                let mut bytes = Vec::new();
                match stdin.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes) {
                    Ok(_) => push_bytes(&name, bytes, &mut sources, &mut diagnostics),
                    Err(e) => diagnostics.push(Diagnostic::for_file(
                        Severity::Error,
                        &name,
                        format!("cannot read standard input: {e}"),
                    )),
                }
            }
            Input::Path(path) => read_path(path, &mut seen, &mut sources, &mut diagnostics),
        }
    }
    (sources, diagnostics)
}

/// Files already read, by canonical path: a file named twice (`dir dir/a.yaml`) is read
/// once, so its policies are not reported as defined twice.
type Seen = std::collections::HashSet<PathBuf>;

fn read_path(
    path: &Path,
    seen: &mut Seen,
    sources: &mut Vec<Source>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let name: Arc<str> = Arc::from(path.display().to_string());
    let metadata = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            diagnostics.push(Diagnostic::for_file(
                Severity::Error,
                &name,
                format!("cannot read `{name}`: {e}"),
            ));
            return;
        }
    };
    if metadata.is_dir() {
        let mut files = Vec::new();
        walk(path, &mut files, diagnostics);
        if files.is_empty() {
            diagnostics.push(
                Diagnostic::for_file(
                    Severity::Warning,
                    &name,
                    format!("directory `{name}` holds no *.yaml or *.yml files"),
                )
                .with_help("policy files must end in .yaml or .yml"),
            );
        }
        for file in files {
            read_file(&file, seen, sources, diagnostics);
        }
    } else {
        read_file(path, seen, sources, diagnostics);
    }
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, diagnostics: &mut Vec<Diagnostic>) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            let name: Arc<str> = Arc::from(dir.display().to_string());
            diagnostics.push(Diagnostic::for_file(
                Severity::Error,
                &name,
                format!("cannot list `{name}`: {e}"),
            ));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        let Ok(link) = fs::symlink_metadata(&path) else {
            continue;
        };
        if link.is_dir() {
            walk(&path, files, diagnostics);
        } else if has_yaml_extension(&path) && fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            files.push(path);
        }
    }
}

fn has_yaml_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

fn read_file(
    path: &Path,
    seen: &mut Seen,
    sources: &mut Vec<Source>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    if let Ok(canonical) = fs::canonicalize(path)
        && !seen.insert(canonical)
    {
        return;
    }
    let name: Arc<str> = Arc::from(path.display().to_string());
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            diagnostics.push(Diagnostic::for_file(
                Severity::Error,
                &name,
                format!("cannot read `{name}`: {e}"),
            ));
            return;
        }
    };
    let mut bytes = Vec::new();
    match file.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes) {
        Ok(_) => push_bytes(&name, bytes, sources, diagnostics),
        Err(e) => diagnostics.push(Diagnostic::for_file(
            Severity::Error,
            &name,
            format!("cannot read `{name}`: {e}"),
        )),
    }
}

fn push_bytes(
    name: &Arc<str>,
    bytes: Vec<u8>,
    sources: &mut Vec<Source>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        diagnostics.push(
            Diagnostic::for_file(
                Severity::Error,
                name,
                format!(
                    "`{name}` is larger than {} MiB; it is not read",
                    MAX_INPUT_BYTES / (1024 * 1024)
                ),
            )
            .with_help("policy files are small; check that this is the file you meant"),
        );
        return;
    }
    match String::from_utf8(bytes) {
        Ok(text) => sources.push(Source::new(Arc::clone(name), text)),
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let prefix = String::from_utf8_lossy(valid);
            let line = crate::source::lines(&prefix).count();
            let column = crate::source::lines(&prefix)
                .last()
                .map_or(0, |l| l.chars().count())
                + 1;
            let pos = Pos {
                line: u32::try_from(line).unwrap_or(u32::MAX),
                column: u32::try_from(column).unwrap_or(u32::MAX),
            };
            diagnostics.push(
                Diagnostic::new(
                    Severity::Error,
                    Location::at(name, pos),
                    "the file is not valid UTF-8",
                )
                .with_help("YAML must be UTF-8 text"),
            );
        }
    }
}
