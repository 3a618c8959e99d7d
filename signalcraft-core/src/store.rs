//! The persistence seam: a transactional store of typed tables.
//!
//! The engine keeps its working state in memory and writes every change through a
//! [`Store`] before acknowledging it. The store is a set of named [`Table`]s, each an
//! ordered map from string keys to JSON-encoded records, plus atomic [`WriteBatch`]es.
//! This keeps implementations (in-memory, redb, PostgreSQL) free of domain types and
//! of each other's types: a PostgreSQL store is one `(table, key, value jsonb)` relation.

use async_trait::async_trait;
use serde::{Serialize, de::DeserializeOwned};
use thiserror::Error;

/// The tables every store provides. Keys are UTF-8 and ordered bytewise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Table {
    /// Alerts by fingerprint.
    Alerts,
    /// Aggregation groups by group key (flush bookkeeping).
    Groups,
    /// Incidents by id.
    Incidents,
    /// Timeline entries by `incident_id/sequence` (zero-padded).
    Timeline,
    /// Silences by id.
    Silences,
    /// Services by id.
    Services,
    /// Users by id.
    Users,
    /// Teams by id.
    Teams,
    /// Rotations, schedules, layers and overrides by id.
    Schedules,
    /// Escalation policies by id.
    Policies,
    /// Integrations by key (secrets encrypted or referenced).
    Integrations,
    /// Notification log entries by `notification_id/attempt`.
    NotificationLog,
    /// Change events by `timestamp/id`.
    Changes,
    /// Audit log entries by `timestamp/id`.
    Audit,
    /// Remediation runs and approvals by id.
    Remediations,
    /// API tokens by SHA-256 hash.
    Tokens,
    /// Miscellaneous metadata (counters, schema version).
    Meta,
}

impl Table {
    /// Every table, in a fixed order.
    pub const ALL: [Table; 17] = [
        Table::Alerts,
        Table::Groups,
        Table::Incidents,
        Table::Timeline,
        Table::Silences,
        Table::Services,
        Table::Users,
        Table::Teams,
        Table::Schedules,
        Table::Policies,
        Table::Integrations,
        Table::NotificationLog,
        Table::Changes,
        Table::Audit,
        Table::Remediations,
        Table::Tokens,
        Table::Meta,
    ];

    /// Stable snake_case name (used as the on-disk table name).
    pub fn name(self) -> &'static str {
        match self {
            Table::Alerts => "alerts",
            Table::Groups => "groups",
            Table::Incidents => "incidents",
            Table::Timeline => "timeline",
            Table::Silences => "silences",
            Table::Services => "services",
            Table::Users => "users",
            Table::Teams => "teams",
            Table::Schedules => "schedules",
            Table::Policies => "policies",
            Table::Integrations => "integrations",
            Table::NotificationLog => "notification_log",
            Table::Changes => "changes",
            Table::Audit => "audit",
            Table::Remediations => "remediations",
            Table::Tokens => "tokens",
            Table::Meta => "meta",
        }
    }

    /// Inverse of [`Table::name`].
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// One write in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Insert or replace `key` with `value` (JSON bytes).
    Put {
        /// Table.
        table: Table,
        /// Key.
        key: String,
        /// JSON-encoded record.
        value: Vec<u8>,
    },
    /// Remove `key` if present.
    Delete {
        /// Table.
        table: Table,
        /// Key.
        key: String,
    },
    /// A precondition, writing nothing: `key` holds exactly `value` (`None`: `key` is
    /// absent), as the store and the batch's earlier ops leave it. If it does not, the
    /// whole batch fails with [`StoreError::Conflict`] and writes nothing. Checked
    /// inside the batch's atomic apply, so no other write can come between the check
    /// and the batch's later ops (a compare-and-delete with
    /// [`WriteBatch::delete_if_unchanged`]). Used by store retention; a batch without
    /// one behaves exactly as before.
    Expect {
        /// Table.
        table: Table,
        /// Key.
        key: String,
        /// The record bytes `key` must hold (as [`Store::get`] returns them), or
        /// `None` for "absent".
        value: Option<Vec<u8>>,
    },
}

impl WriteOp {
    /// The table and key the op is about.
    pub fn target(&self) -> (Table, &str) {
        match self {
            WriteOp::Put { table, key, .. }
            | WriteOp::Delete { table, key }
            | WriteOp::Expect { table, key, .. } => (*table, key),
        }
    }
}

/// An atomic group of writes: all are applied or none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// The writes, applied in order.
    pub ops: Vec<WriteOp>,
}

/// `value`'s JSON, written into a buffer of `capacity` bytes to start with (for
/// records whose usual size is known: fewer reallocations than growing from empty).
pub(crate) fn json_sized<T: Serialize + ?Sized>(
    value: &T,
    capacity: usize,
) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut out, value)?;
    Ok(out)
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put of a serializable record.
    pub fn put<T: Serialize + ?Sized>(
        &mut self,
        table: Table,
        key: impl Into<String>,
        value: &T,
    ) -> Result<&mut Self, StoreError> {
        let value = serde_json::to_vec(value).map_err(|e| StoreError::Codec(e.to_string()))?;
        self.ops.push(WriteOp::Put {
            table,
            key: key.into(),
            value,
        });
        Ok(self)
    }

    /// Adds a put of raw JSON bytes.
    pub fn put_raw(&mut self, table: Table, key: impl Into<String>, value: Vec<u8>) -> &mut Self {
        self.ops.push(WriteOp::Put {
            table,
            key: key.into(),
            value,
        });
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, table: Table, key: impl Into<String>) -> &mut Self {
        self.ops.push(WriteOp::Delete {
            table,
            key: key.into(),
        });
        self
    }

    /// Adds a precondition ([`WriteOp::Expect`]): the batch applies only if `key`
    /// then holds exactly `value` (`None`: absent), else it fails whole with
    /// [`StoreError::Conflict`].
    pub fn expect(
        &mut self,
        table: Table,
        key: impl Into<String>,
        value: Option<Vec<u8>>,
    ) -> &mut Self {
        self.ops.push(WriteOp::Expect {
            table,
            key: key.into(),
            value,
        });
        self
    }

    /// Adds a delete of `key` that applies only while `key` still holds `value` (the
    /// bytes read before): an [`WriteOp::Expect`] then a [`WriteOp::Delete`]. If the
    /// record changed (or went) meanwhile, the whole batch fails with
    /// [`StoreError::Conflict`] and writes nothing.
    pub fn delete_if_unchanged(
        &mut self,
        table: Table,
        key: impl Into<String>,
        value: Vec<u8>,
    ) -> &mut Self {
        let key = key.into();
        self.expect(table, key.clone(), Some(value));
        self.delete(table, key)
    }

    /// Number of ops (writes and preconditions).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// `true` when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Persistence failures.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The record does not exist.
    #[error("{table} {key} not found")]
    NotFound {
        /// Table name.
        table: &'static str,
        /// Key.
        key: String,
    },
    /// A concurrent write conflicted, or a [`WriteOp::Expect`] precondition did not
    /// hold (the batch wrote nothing).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A record could not be encoded or decoded.
    #[error("codec error: {0}")]
    Codec(String),
    /// The database file is corrupt, truncated or from an unknown format.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The database was written by a newer schema version than this build understands.
    #[error("store schema version {found} is newer than supported version {supported}")]
    SchemaTooNew {
        /// Version found on disk.
        found: u32,
        /// Newest version this build supports.
        supported: u32,
    },
    /// The database is locked by another process.
    #[error("store is locked by another process: {0}")]
    Locked(String),
    /// I/O failure (disk full, permission denied, …).
    #[error("store I/O error: {0}")]
    Io(String),
    /// The store has been closed.
    #[error("store is closed")]
    Closed,
}

impl StoreError {
    /// The [`StoreError::Conflict`] of a [`WriteOp::Expect`] that did not hold (one
    /// message for every store).
    pub fn expectation_failed(table: Table, key: &str) -> Self {
        StoreError::Conflict(format!(
            "{}/{key} changed since it was read (the batch wrote nothing)",
            table.name()
        ))
    }
}

/// A key range scan request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Only keys starting with this prefix.
    pub prefix: String,
    /// Cursor pagination: only keys strictly after this one in scan order, i.e. strictly
    /// greater when scanning forward and strictly smaller when `reverse` is set.
    pub after: Option<String>,
    /// At most this many records (`0` = no limit).
    pub limit: usize,
    /// Newest (largest key) first.
    pub reverse: bool,
}

impl Scan {
    /// All keys with a prefix.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Scan {
            prefix: prefix.into(),
            ..Default::default()
        }
    }

    /// Everything in the table.
    pub fn all() -> Self {
        Scan::default()
    }
}

/// Transactional persistence.
///
/// Contract:
/// * `commit` applies a [`WriteBatch`] atomically (all or nothing) and returns only
///   once the batch is durable (for a durable implementation: fsynced). A batch that
///   returned `Ok` survives a crash; one that returned `Err` left nothing behind.
/// * Concurrent `commit`s may be grouped into one underlying transaction (group commit);
///   each caller still gets its own result.
/// * Reads observe every batch whose `commit` has returned (read-your-writes).
/// * A batch's [`WriteOp::Expect`] preconditions are checked inside its atomic apply;
///   one that fails fails the batch alone with [`StoreError::Conflict`] (it writes
///   nothing; batches grouped with it are unaffected).
/// * Keys are ordered bytewise; `scan` returns keys in that order (or reversed).
/// * No method panics on any input, including corrupt data on disk: it returns
///   [`StoreError::Corrupt`] or [`StoreError::Codec`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads one record.
    async fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Reads records in key order.
    async fn scan(&self, table: Table, scan: Scan) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Applies a batch atomically and durably.
    async fn commit(&self, batch: WriteBatch) -> Result<(), StoreError>;

    /// Number of records in a table.
    async fn count(&self, table: Table) -> Result<u64, StoreError>;
}

/// Typed helpers over any [`Store`].
#[async_trait]
pub trait StoreExt: Store {
    /// Reads and decodes one record.
    async fn get_json<T: DeserializeOwned>(
        &self,
        table: Table,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.get(table, key).await? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Codec(format!("{}/{key}: {e}", table.name()))),
            None => Ok(None),
        }
    }

    /// Scans and decodes records.
    async fn scan_json<T: DeserializeOwned>(
        &self,
        table: Table,
        scan: Scan,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let rows = self.scan(table, scan).await?;
        rows.into_iter()
            .map(|(k, v)| {
                serde_json::from_slice(&v)
                    .map(|t| (k.clone(), t))
                    .map_err(|e| StoreError::Codec(format!("{}/{k}: {e}", table.name())))
            })
            .collect()
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

#[async_trait]
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    async fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(table, key).await
    }
    async fn scan(&self, table: Table, scan: Scan) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        (**self).scan(table, scan).await
    }
    async fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        (**self).commit(batch).await
    }
    async fn count(&self, table: Table) -> Result<u64, StoreError> {
        (**self).count(table).await
    }
}
