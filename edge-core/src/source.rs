//! Where a node's objects come from, behind one small trait: a watched manifests
//! directory now (`causeway node --manifests DIR`), the control plane's sync later. Both
//! feed the same [`MetaManager`].
//!
//! The manifests source reads `*.yaml`/`*.yml` files (recursively, hidden names skipped),
//! and reads them again when they change. A file with an error is reported with
//! file:line:column and keeps the objects it held when it was last good; the other files
//! are applied. A directory that cannot be read leaves the store as it is, so a node whose
//! source is gone serves from what it stored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use causeway_api::KubeObject;
use causeway_api::manifest;
use causeway_yaml::{Diagnostic, Source, render_text};
use tokio::sync::watch;

use crate::metamanager::MetaManager;

/// Extra checks a source runs on a file before accepting it (the mesh checks policies
/// with `causeway-policies`, which edge-core cannot import).
pub trait ManifestCheck: Send + Sync + std::fmt::Debug + 'static {
    /// Problems in `source`, located; any error refuses the file.
    fn check(&self, source: &Source) -> Vec<Diagnostic>;
}

/// A source of objects for the node store.
pub trait ObjectSource: Send + 'static {
    /// How the store names what this source wrote.
    fn name(&self) -> String;

    /// Feeds `store` until `shutdown` turns true.
    fn run(
        self,
        store: MetaManager,
        shutdown: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> + Send;
}

/// The state of the last read of a manifests directory, for `/config_dump` and tests.
#[derive(Debug, Clone, Default)]
pub struct ManifestStatus {
    /// Files read.
    pub files: usize,
    /// Objects applied.
    pub objects: usize,
    /// Problems found in the last read, rendered.
    pub problems: Vec<String>,
    /// Reads done.
    pub reads: u64,
}

/// A watched directory of Kubernetes manifests.
#[derive(Debug)]
pub struct ManifestDirectory {
    dir: PathBuf,
    interval: Duration,
    check: Option<Arc<dyn ManifestCheck>>,
    status: Arc<Mutex<ManifestStatus>>,
}

impl ManifestDirectory {
    /// Watches `dir`, looking for changes every `interval`.
    pub fn new(dir: impl Into<PathBuf>, interval: Duration) -> Self {
        Self {
            dir: dir.into(),
            interval,
            check: None,
            status: Arc::default(),
        }
    }

    /// Runs `check` on every file too.
    pub fn with_check(mut self, check: Arc<dyn ManifestCheck>) -> Self {
        self.check = Some(check);
        self
    }

    /// The status of the last read, shared.
    pub fn status(&self) -> Arc<Mutex<ManifestStatus>> {
        Arc::clone(&self.status)
    }
}

/// Per file: when it was read, and the objects it held when last good.
type Files = BTreeMap<PathBuf, (Option<SystemTime>, u64, Vec<Arc<KubeObject>>)>;

impl ObjectSource for ManifestDirectory {
    fn name(&self) -> String {
        format!("manifests:{}", self.dir.display())
    }

    async fn run(self, store: MetaManager, mut shutdown: watch::Receiver<bool>) {
        let name = self.name();
        let mut files: Files = BTreeMap::new();
        let mut first = true;
        loop {
            // Listing, stat-ing, reading and parsing are blocking file work: off the
            // async threads, which carry traffic.
            let dir = self.dir.clone();
            let check = self.check.clone();
            let mut owned = std::mem::take(&mut files);
            let was_first = first;
            let scanned = tokio::task::spawn_blocking(move || {
                let result = scan(&dir, &mut owned, check.as_deref(), was_first);
                (owned, result)
            })
            .await;
            let Ok((owned, result)) = scanned else {
                tracing::error!(source = %name, "the manifests scan stopped unexpectedly");
                return;
            };
            files = owned;
            match result {
                Ok(None) => {}
                Ok(Some(problems)) => {
                    first = false;
                    // The store shares these objects with the source: one copy each.
                    let objects: Vec<Arc<KubeObject>> =
                        files.values().flat_map(|f| f.2.iter().cloned()).collect();
                    let count = objects.len();
                    match store.replace_source(&name, objects).await {
                        Ok(stats) => {
                            tracing::info!(source = %name, files = files.len(), objects = count, written = stats.written, deleted = stats.deleted, problems = problems.len(), "manifests applied")
                        }
                        Err(error) => {
                            tracing::error!(source = %name, %error, "could not store the manifests")
                        }
                    }
                    if let Ok(mut status) = self.status.lock() {
                        status.files = files.len();
                        status.objects = count;
                        status.problems = problems;
                        status.reads += 1;
                    }
                }
                Err(error) => {
                    if first {
                        tracing::error!(dir = %self.dir.display(), %error, "cannot read the manifests directory; serving what the node stored");
                        first = false;
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

/// `*.yaml` and `*.yml` files below `dir`, sorted; hidden names and directory links are
/// passed over (a mounted ConfigMap's `..data` would read everything twice).
/// Looks at `dir` and, when anything changed since `files` (or on the `first` look),
/// rereads it: `Some(problems)` after a reread, `None` when nothing changed.
fn scan(
    dir: &Path,
    files: &mut Files,
    check: Option<&dyn ManifestCheck>,
    first: bool,
) -> std::io::Result<Option<Vec<String>>> {
    let paths = list(dir)?;
    let changed = first
        || paths.len() != files.len()
        || paths
            .iter()
            .any(|p| stamp(p) != files.get(p).map(|f| (f.0, f.1)));
    if !changed {
        return Ok(None);
    }
    Ok(Some(reread(&paths, files, check)))
}

fn list(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            out.extend(list(&path)?);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml")
        {
            out.push(path);
        }
    }
    Ok(out)
}

fn stamp(path: &Path) -> Option<(Option<SystemTime>, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok(), meta.len()))
}

/// Reads changed files again; returns the problems found, rendered.
fn reread(paths: &[PathBuf], files: &mut Files, check: Option<&dyn ManifestCheck>) -> Vec<String> {
    let mut problems = Vec::new();
    files.retain(|p, _| paths.contains(p));
    for path in paths {
        let Some(now) = stamp(path) else {
            continue;
        };
        if files.get(path).is_some_and(|f| (f.0, f.1) == now) {
            continue;
        }
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                problems.push(format!("error: cannot read {}: {error}", path.display()));
                continue;
            }
        };
        let source = Source::new(path.display().to_string(), text);
        let decoded = manifest::decode(&source);
        let mut diagnostics = decoded.diagnostics;
        if let Some(check) = check {
            diagnostics.extend(check.check(&source));
        }
        for diagnostic in &diagnostics {
            let rendered = render_text(diagnostic, std::slice::from_ref(&source));
            tracing::warn!(file = %path.display(), "{}", rendered.trim_end());
            problems.push(rendered);
        }
        let previous = files.remove(path).map(|f| f.2);
        let objects = if diagnostics.iter().any(Diagnostic::is_error) {
            // Keep what the file held when it was last good.
            previous.unwrap_or_default()
        } else {
            decoded
                .objects
                .into_iter()
                .map(|(o, _)| Arc::new(o))
                .collect()
        };
        files.insert(path.clone(), (now.0, now.1, objects));
    }
    problems
}
