//! The node's SQLite file: every object it holds, with the source that wrote it.
//!
//! Only the metamanager's writer thread touches it (SQLite calls block). WAL journaling,
//! so a crash loses at most the batch in flight and never leaves half a batch.

use std::path::{Path, PathBuf};

use causeway_api::{GroupResource, KubeObject, ObjectKey};
use rusqlite::{Connection, OptionalExtension, params};

/// The schema this code writes; a newer file is refused rather than misread.
const SCHEMA_VERSION: i64 = 1;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("node store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file was written by a newer Causeway.
    #[error(
        "node store {path} has schema version {found}; this causeway reads version {SCHEMA_VERSION} (upgrade causeway, or move the file away)"
    )]
    Schema {
        /// The database file.
        path: PathBuf,
        /// The version found.
        found: i64,
    },
    /// The store's writer is gone (the node is shutting down).
    #[error("the node store is closed")]
    Closed,
}

/// One stored object: its key, the source that wrote it, and the object.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Identity.
    pub key: ObjectKey,
    /// Which source wrote it (`manifests:/etc/causeway/manifests`, `control`).
    pub source: String,
    /// The object (shared with the store's state).
    pub object: std::sync::Arc<KubeObject>,
}

/// A change in one batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Insert or replace.
    Put(Row),
    /// Remove.
    Delete(ObjectKey),
}

/// The open database.
#[derive(Debug)]
pub struct Database {
    connection: Connection,
    path: PathBuf,
}

impl Database {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let fail = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let connection = Connection::open(path).map_err(fail)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 PRAGMA cache_size = -256;
                 CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS objects (
                     resource TEXT NOT NULL,
                     namespace TEXT NOT NULL,
                     name TEXT NOT NULL,
                     resource_version TEXT,
                     source TEXT NOT NULL,
                     body TEXT NOT NULL,
                     PRIMARY KEY (resource, namespace, name)
                 );",
            )
            .map_err(fail)?;
        let found: Option<String> = connection
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(fail)?;
        match found.and_then(|v| v.parse::<i64>().ok()) {
            None => {
                connection
                    .execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?1)",
                        params![SCHEMA_VERSION.to_string()],
                    )
                    .map_err(fail)?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(found) => {
                return Err(StoreError::Schema {
                    path: path.to_path_buf(),
                    found,
                });
            }
        }
        Ok(Self {
            connection,
            path: path.to_path_buf(),
        })
    }

    fn fail(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Every stored object. Rows that no longer decode (hand-edited, or from a bug) are
    /// skipped with a warning rather than failing the node.
    pub fn load(&self) -> Result<Vec<Row>, StoreError> {
        let mut statement = self
            .connection
            .prepare("SELECT resource, namespace, name, source, body FROM objects")
            .map_err(|e| self.fail(e))?;
        let rows = statement
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (resource, namespace, name, source, body) = row.map_err(|e| self.fail(e))?;
            let group_resource = match resource.split_once('.') {
                Some((resource, group)) => GroupResource::new(group, resource),
                None => GroupResource::new("", resource.as_str()),
            };
            let decoded = serde_json::from_str(&body)
                .map_err(|e| e.to_string())
                .and_then(|json| {
                    KubeObject::from_stored(&group_resource, json).map_err(|e| e.to_string())
                });
            match decoded {
                Ok(object) => {
                    let key = ObjectKey {
                        resource: group_resource,
                        namespace: (!namespace.is_empty()).then_some(namespace),
                        name,
                    };
                    out.push(Row {
                        key,
                        source,
                        object: std::sync::Arc::new(object),
                    });
                }
                Err(error) => {
                    tracing::warn!(store = %self.path.display(), %resource, %namespace, %name, %error, "skipping a stored object that does not decode");
                }
            }
        }
        Ok(out)
    }

    /// Applies a batch in one transaction: all of it, or (on error) none of it.
    pub fn apply(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let fail = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let transaction = self.connection.transaction().map_err(fail)?;
        {
            let mut put = transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO objects (resource, namespace, name, resource_version, source, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(fail)?;
            let mut delete = transaction
                .prepare_cached(
                    "DELETE FROM objects WHERE resource = ?1 AND namespace = ?2 AND name = ?3",
                )
                .map_err(fail)?;
            for change in changes {
                match change {
                    Change::Put(row) => {
                        put.execute(params![
                            row.key.resource.to_string(),
                            row.key.namespace.clone().unwrap_or_default(),
                            row.key.name,
                            row.object.resource_version(),
                            row.source,
                            row.object.to_json().to_string(),
                        ])
                        .map_err(fail)?;
                    }
                    Change::Delete(key) => {
                        delete
                            .execute(params![
                                key.resource.to_string(),
                                key.namespace.clone().unwrap_or_default(),
                                key.name
                            ])
                            .map_err(fail)?;
                    }
                }
            }
        }
        transaction.commit().map_err(fail)
    }
}
