//! metamanager: the node's store of every object it holds, in SQLite, and the immutable
//! snapshot the hot path reads.
//!
//! One writer thread owns the database (SQLite calls block; they never run on the async
//! threads). Sources send it whole desired states ([`MetaManager::replace_source`]) or
//! single changes ([`MetaManager::apply`]); it folds whatever is queued into one
//! transaction, then publishes a new [`Snapshot`]. Readers load the current snapshot
//! without locks and never wait for a write. A node restarted with no source at all
//! serves what the file holds: offline autonomy.
//!
//! This module stores and indexes; it does not decide what objects mean for traffic.

mod database;
mod snapshot;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use causeway_api::{KubeObject, ObjectKey};
use tokio::sync::{mpsc, oneshot, watch};

pub use database::{Change, Row, StoreError};
pub use snapshot::{
    Endpoint, EndpointPort, NodeView, PodView, Protocol, ServicePort, ServiceView, Snapshot,
};

use database::Database;

/// Commands queued for the writer before it stops taking more into one transaction.
const MAX_BATCH: usize = 256;

/// A change a source reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// The object exists as given.
    Put(KubeObject),
    /// The object is gone.
    Delete(ObjectKey),
}

/// What one write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyStats {
    /// Objects written (new or changed).
    pub written: usize,
    /// Objects deleted.
    pub deleted: usize,
    /// Objects sent that were already stored as they are.
    pub unchanged: usize,
    /// The snapshot version that includes this write.
    pub version: u64,
}

enum Command {
    Replace {
        source: String,
        objects: Vec<Arc<KubeObject>>,
        reply: oneshot::Sender<Result<ApplyStats, StoreError>>,
    },
    Apply {
        source: String,
        updates: Vec<Update>,
        reply: oneshot::Sender<Result<ApplyStats, StoreError>>,
    },
}

/// The node's store. Clones share it; the writer stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct MetaManager {
    commands: mpsc::Sender<Command>,
    current: Arc<ArcSwap<Snapshot>>,
    updates: watch::Receiver<Arc<Snapshot>>,
}

impl MetaManager {
    /// Opens the store at `path` (creating it), loads what it holds, and starts the
    /// writer.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let database = Database::open(path)?;
        let mut state = BTreeMap::new();
        for row in database.load()? {
            state.insert(
                row.key.clone(),
                (Arc::from(row.source.as_str()), row.object),
            );
        }
        let first = Arc::new(Snapshot::build(1, objects_of(&state)));
        tracing::info!(store = %path.display(), objects = state.len(), "node store opened");
        let current = Arc::new(ArcSwap::new(Arc::clone(&first)));
        let (publish, updates) = watch::channel(first);
        let (commands, receiver) = mpsc::channel(1024);
        let writer = Writer {
            database,
            state,
            version: 1,
            current: Arc::clone(&current),
            publish,
        };
        std::thread::Builder::new()
            .name("causeway-metamanager".into())
            .spawn(move || writer.run(receiver))
            .map_err(|e| StoreError::Sqlite {
                path: path.to_path_buf(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        Ok(Self {
            commands,
            current,
            updates,
        })
    }

    /// The current snapshot; never waits.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// A receiver that sees every new snapshot.
    pub fn watch(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.updates.clone()
    }

    /// Makes `objects` the whole of what `source` holds: new and changed objects are
    /// written, objects of that source not in `objects` are deleted. Objects of other
    /// sources are untouched.
    /// The objects are shared, not copied: a source that keeps them (to keep a file's
    /// last good objects) and the store hold one copy between them.
    pub async fn replace_source<O: Into<Arc<KubeObject>>>(
        &self,
        source: &str,
        objects: Vec<O>,
    ) -> Result<ApplyStats, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Replace {
                source: source.to_string(),
                objects: objects.into_iter().map(Into::into).collect(),
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Applies single changes reported by `source`.
    pub async fn apply(
        &self,
        source: &str,
        updates: Vec<Update>,
    ) -> Result<ApplyStats, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Apply {
                source: source.to_string(),
                updates,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// Every object with the source that owns it. Objects are shared (`Arc`) with the
/// sources, the database rows being written and the snapshots: cloning the state for a
/// batch, or building a snapshot, copies pointers, not objects.
type State = BTreeMap<ObjectKey, (Arc<str>, Arc<KubeObject>)>;

fn objects_of(state: &State) -> BTreeMap<ObjectKey, Arc<KubeObject>> {
    state
        .iter()
        .map(|(k, (_, o))| (k.clone(), o.clone()))
        .collect()
}

struct Writer {
    database: Database,
    state: State,
    version: u64,
    current: Arc<ArcSwap<Snapshot>>,
    publish: watch::Sender<Arc<Snapshot>>,
}

impl Writer {
    fn run(mut self, mut receiver: mpsc::Receiver<Command>) {
        while let Some(first) = receiver.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
        tracing::debug!("node store writer stopped");
    }

    /// Folds every command into one transaction against a working copy of the state.
    fn commit(&mut self, batch: Vec<Command>) {
        let mut working = self.state.clone();
        let mut changes = Vec::new();
        let mut replies = Vec::with_capacity(batch.len());
        for command in batch {
            let (stats, reply) = match command {
                Command::Replace {
                    source,
                    objects,
                    reply,
                } => (replace(&mut working, &mut changes, &source, objects), reply),
                Command::Apply {
                    source,
                    updates,
                    reply,
                } => (apply(&mut working, &mut changes, &source, updates), reply),
            };
            replies.push((stats, reply));
        }
        if changes.is_empty() {
            for (stats, reply) in replies {
                let _ = reply.send(Ok(ApplyStats {
                    version: self.version,
                    ..stats
                }));
            }
            return;
        }
        match self.database.apply(&changes) {
            Ok(()) => {
                self.state = working;
                self.version += 1;
                let snapshot = Arc::new(Snapshot::build(self.version, objects_of(&self.state)));
                self.current.store(Arc::clone(&snapshot));
                self.publish.send_replace(snapshot);
                tracing::debug!(
                    version = self.version,
                    changes = changes.len(),
                    "node store committed"
                );
                for (stats, reply) in replies {
                    let _ = reply.send(Ok(ApplyStats {
                        version: self.version,
                        ..stats
                    }));
                }
            }
            Err(error) => {
                tracing::error!(%error, "node store write failed; nothing of the batch was applied");
                let message = error.to_string();
                for (_, reply) in replies {
                    let _ = reply.send(Err(StoreError::Sqlite {
                        path: Default::default(),
                        source: rusqlite::Error::InvalidParameterName(message.clone()),
                    }));
                }
            }
        }
    }
}

fn put(
    working: &mut State,
    changes: &mut Vec<Change>,
    stats: &mut ApplyStats,
    source: &str,
    object: Arc<KubeObject>,
) {
    let Ok(key) = object.key() else {
        return;
    };
    match working.get(&key) {
        Some((s, existing)) if &**s == source && **existing == *object => stats.unchanged += 1,
        _ => {
            stats.written += 1;
            changes.push(Change::Put(Row {
                key: key.clone(),
                source: source.to_string(),
                object: Arc::clone(&object),
            }));
            working.insert(key, (Arc::from(source), object));
        }
    }
}

fn replace(
    working: &mut State,
    changes: &mut Vec<Change>,
    source: &str,
    objects: Vec<Arc<KubeObject>>,
) -> ApplyStats {
    let mut stats = ApplyStats::default();
    let mut keep = std::collections::BTreeSet::new();
    for object in objects {
        if let Ok(key) = object.key() {
            keep.insert(key);
        }
        put(working, changes, &mut stats, source, object);
    }
    let gone: Vec<ObjectKey> = working
        .iter()
        .filter(|(k, (s, _))| &**s == source && !keep.contains(*k))
        .map(|(k, _)| k.clone())
        .collect();
    for key in gone {
        working.remove(&key);
        changes.push(Change::Delete(key));
        stats.deleted += 1;
    }
    stats
}

fn apply(
    working: &mut State,
    changes: &mut Vec<Change>,
    source: &str,
    updates: Vec<Update>,
) -> ApplyStats {
    let mut stats = ApplyStats::default();
    for update in updates {
        match update {
            Update::Put(object) => put(working, changes, &mut stats, source, Arc::new(object)),
            Update::Delete(key) => {
                if working.remove(&key).is_some() {
                    changes.push(Change::Delete(key));
                    stats.deleted += 1;
                }
            }
        }
    }
    stats
}
