//! [`RedbStore`]: the durable [`Store`] on one redb file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;
use redb::{Database, Durability};
use signalcraft_core::store::{Scan, Store, StoreError, Table, WriteBatch, WriteOp};

use crate::error::{from_redb, guard};
use crate::scheduler::{self, RedbScheduler};
use crate::schema::{self, MIGRATIONS, SCHEMA_VERSION};
use crate::seal::{self, SealKey};
use crate::snapshot::{ReadCache, Snapshot};
use crate::writer::{Op, Writer};

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 4096;

/// How a [`RedbStore`] is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Seals the `secrets` field of [`Table::Integrations`] records at rest
    /// (see [`crate::seal`]). `None` stores them as given.
    pub encryption_key: Option<SealKey>,
    /// Keys of a rotation in progress: records sealed under any of them are still
    /// opened on read; writes always seal under `encryption_key`.
    /// [`RedbStore::reseal_secrets`] moves every record to `encryption_key`, after
    /// which these can be removed from the configuration.
    pub previous_keys: Vec<SealKey>,
    /// Most requests the writer groups into one transaction (≥ 1).
    pub max_group: usize,
    /// Longest the writer waits for more requests before committing a group, when
    /// more are expected (the callers it just answered plus those already waiting;
    /// it stops as soon as they are in, or when none arrives for 150 µs). Default
    /// 1 ms; `Duration::ZERO` commits whatever is queued at once. See
    /// [`crate::writer`].
    pub group_wait: std::time::Duration,
    /// Largest record accepted, in bytes; a bigger one fails its batch alone.
    pub max_value_bytes: usize,
    /// Verifies every page checksum when the file is opened (default `true`), so a
    /// file damaged in place is refused at start with [`StoreError::Corrupt`] (or
    /// repaired by redb to its last intact commit) instead of failing later on
    /// the first read of a damaged page. Reads the whole file once: on a large
    /// store on slow disks, turning it off shortens start-up; reads of damaged
    /// pages are then still typed errors, never a panic.
    pub verify_on_open: bool,
    /// redb page cache size in bytes (default 256 MiB). The cache holds pages
    /// read or written recently; it counts towards the process's resident memory
    /// once filled, so a small deployment can lower it (e.g. 16 MiB) at the cost of
    /// more reads from the OS page cache for data sets larger than it.
    pub cache_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            encryption_key: None,
            previous_keys: Vec::new(),
            max_group: 1024,
            group_wait: std::time::Duration::from_millis(1),
            max_value_bytes: 16 << 20,
            verify_on_open: true,
            cache_bytes: 256 << 20,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) writer: Writer,
    pub(crate) db: Arc<RwLock<Database>>,
    pub(crate) cache: Arc<ReadCache>,
    pub(crate) opts: StoreOptions,
    /// `encryption_key` (if any) followed by `previous_keys`: the keys reads try.
    read_keys: Vec<SealKey>,
    path: PathBuf,
    released_claims: usize,
}

/// A durable [`Store`] (and, through [`RedbStore::scheduler`], a durable
/// [`Scheduler`](signalcraft_core::scheduler::Scheduler)) in one redb file.
///
/// * Writes go through one writer thread that groups concurrent `commit`s into one
///   fsynced transaction ([`crate::writer`]); `commit` returns once its batch is durable.
/// * Reads run on the caller's thread against the latest committed snapshot; they
///   are short (microseconds) so they are not moved to a blocking pool.
/// * One process at a time: a second open of the same file fails with
///   [`StoreError::Locked`]. Cloning the handle shares the database; it closes when
///   the last clone (and every scheduler handle) is dropped.
#[derive(Clone)]
pub struct RedbStore {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.path)
            .field("encrypted", &self.inner.opts.encryption_key.is_some())
            .finish()
    }
}

impl RedbStore {
    /// Opens (or creates) the store at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, StoreOptions::default())
    }

    /// Opens (or creates) the store at `path`.
    ///
    /// Creates missing tables, migrates an older schema, refuses a newer one
    /// ([`StoreError::SchemaTooNew`]), a locked file ([`StoreError::Locked`]) and a
    /// corrupt one ([`StoreError::Corrupt`]), and releases every scheduler claim left
    /// by a previous process, all in one durable transaction.
    pub fn open_with(path: impl AsRef<Path>, opts: StoreOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let released_claims = guard("open", || {
            let mut db = redb::Builder::new()
                .set_cache_size(opts.cache_bytes)
                .create(&path)
                .map_err(from_redb)?;
            if opts.verify_on_open {
                // `Ok(false)`: redb repaired it (back to its last intact commit).
                db.check_integrity().map_err(from_redb)?;
            }
            let mut txn = db.begin_write().map_err(from_redb)?;
            txn.set_durability(Durability::Immediate)
                .map_err(from_redb)?;
            let prepared = schema::prepare(&txn, MIGRATIONS, SCHEMA_VERSION)
                .and_then(|_| scheduler::release_all(&txn));
            match prepared {
                Ok(n) => {
                    txn.commit().map_err(from_redb)?;
                    Ok((db, n))
                }
                Err(e) => {
                    let _ = txn.abort();
                    Err(e)
                }
            }
        })
        .map_err(|e| with_path(&path, e))?;
        let (db, released_claims) = released_claims;
        let db = Arc::new(RwLock::new(db));
        let cache = Arc::new(ReadCache::default());
        let writer = Writer::start(db.clone(), cache.clone(), opts.max_group, opts.group_wait)?;
        let read_keys = opts
            .encryption_key
            .iter()
            .chain(&opts.previous_keys)
            .cloned()
            .collect();
        Ok(RedbStore {
            inner: Arc::new(Inner {
                writer,
                db,
                cache,
                opts,
                read_keys,
                path,
                released_claims,
            }),
        })
    }

    /// Counters of the group-commit writer (requests vs transactions shows batching).
    pub fn writer_stats(&self) -> crate::writer::WriterStats {
        self.inner.writer.stats()
    }

    /// The durable scheduler stored in the same file.
    pub fn scheduler(&self) -> RedbScheduler {
        RedbScheduler::new(self.clone())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Current size of the database file in bytes.
    pub fn file_size(&self) -> Result<u64, StoreError> {
        std::fs::metadata(&self.inner.path)
            .map(|m| m.len())
            .map_err(|e| crate::error::io_error(&e))
    }

    /// How many scheduler claims the open released (jobs that were running when the
    /// previous process stopped).
    pub fn released_claims(&self) -> usize {
        self.inner.released_claims
    }

    /// Compacts the file (moves pages down and truncates free space at the end).
    /// Runs on the writer thread between transactions. Returns `Ok(false)` when
    /// nothing could be compacted or a read was in progress (try again later).
    pub async fn compact(&self) -> Result<bool, StoreError> {
        match self.inner.writer.compact().await {
            Err(StoreError::Conflict(_)) => Ok(false),
            other => other,
        }
    }

    /// Re-seals the secrets of every integration record under the current
    /// `encryption_key`: records sealed under one of `previous_keys` are opened and
    /// sealed again, records with secrets in clear are sealed, the rest is left
    /// alone. Runs as ONE durable transaction on the writer thread, so it never
    /// races a concurrent write of the same record and is all-or-nothing: a record
    /// that no configured key opens fails the call and nothing is rewritten.
    ///
    /// Key rotation: reopen the store with the new key as `encryption_key` and the
    /// old one in `previous_keys` (reads keep working throughout), call this, then
    /// drop the old key from the configuration.
    pub async fn reseal_secrets(&self) -> Result<seal::ResealReport, crate::Error> {
        let Some(current) = self.inner.opts.encryption_key.clone() else {
            return Err(crate::Error::InvalidOption {
                field: "encryption_key",
                message: "re-sealing secrets needs an encryption key".into(),
            });
        };
        let mut keys = vec![current];
        keys.extend(self.inner.opts.previous_keys.iter().cloned());
        match self.inner.writer.submit(Op::Reseal(keys)).await? {
            crate::writer::Reply::Resealed(r) => Ok(r),
            other => Err(crate::Error::Store(StoreError::Corrupt(format!(
                "writer answered a re-seal with {other:?}"
            )))),
        }
    }

    /// Checks every page checksum. `Ok(false)` means the file is damaged.
    pub async fn check_integrity(&self) -> Result<bool, StoreError> {
        // Needs exclusive access: run it like a compaction, on the writer's turn.
        let db = self.inner.db.clone();
        let cache = self.inner.cache.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = db.write();
            cache.invalidate(); // the shared snapshot would count as a live read
            guard.check_integrity().map_err(from_redb)
        })
        .await
        .map_err(|e| StoreError::Io(format!("integrity check task failed: {e}")))?
    }

    /// Validates and (for integrations) seals a batch before it is queued, so a bad
    /// batch fails alone and never reaches a shared transaction.
    fn prepare(&self, batch: WriteBatch) -> Result<Vec<WriteOp>, StoreError> {
        let max = self.inner.opts.max_value_bytes;
        let key = self.inner.opts.encryption_key.as_ref();
        batch
            .ops
            .into_iter()
            .map(|op| {
                let (table, k) = op.target();
                if k.len() > MAX_KEY_BYTES {
                    return Err(StoreError::Codec(format!(
                        "{}/{}…: key is {} bytes, the limit is {MAX_KEY_BYTES}",
                        table.name(),
                        short(k),
                        k.len()
                    )));
                }
                match op {
                    WriteOp::Put { table, key: k, value } => {
                        if value.len() > max {
                            return Err(StoreError::Codec(format!(
                                "{}/{}: value is {} bytes, the limit is {max} (store option max_value_bytes)",
                                table.name(),
                                short(&k),
                                value.len()
                            )));
                        }
                        let value = match (table, key) {
                            (Table::Integrations, Some(sk)) => seal::seal_record(sk, &k, value)?,
                            _ => value,
                        };
                        Ok(WriteOp::Put { table, key: k, value })
                    }
                    // Sealed records differ from what `get` returns (and from one
                    // sealing to the next): a precondition on one cannot be checked.
                    WriteOp::Expect {
                        table: Table::Integrations,
                        key: k,
                        ..
                    } if key.is_some() => Err(StoreError::Codec(format!(
                        "integrations/{}: a precondition (WriteOp::Expect) on a sealed integration record is not supported",
                        short(&k)
                    ))),
                    other => Ok(other),
                }
            })
            .collect()
    }

    pub(crate) fn unseal(
        &self,
        table: Table,
        key: &str,
        value: Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        if table == Table::Integrations {
            seal::open_record(&self.inner.read_keys, key, value)
        } else {
            Ok(value)
        }
    }

    /// The latest committed snapshot (shared between readers until the next commit).
    pub(crate) fn snapshot(&self) -> Result<Arc<Snapshot>, StoreError> {
        self.inner.cache.get(&self.inner.db)
    }

    /// Queues already-prepared writes (used by import).
    pub(crate) async fn commit_prepared(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        self.inner.writer.submit(Op::Write(ops)).await.map(|_| ())
    }

    pub(crate) fn prepare_batch(&self, batch: WriteBatch) -> Result<Vec<WriteOp>, StoreError> {
        self.prepare(batch)
    }
}

fn short(k: &str) -> &str {
    match k.char_indices().nth(64) {
        Some((i, _)) => &k[..i],
        None => k,
    }
}

fn with_path(path: &Path, e: StoreError) -> StoreError {
    let p = path.display();
    match e {
        StoreError::Corrupt(m) => StoreError::Corrupt(format!("{p}: {m}")),
        StoreError::Locked(m) => StoreError::Locked(format!("{p}: {m}")),
        StoreError::Io(m) => StoreError::Io(format!("{p}: {m}")),
        other => other,
    }
}

#[async_trait]
impl Store for RedbStore {
    async fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let v = guard(table.name(), || self.snapshot()?.records(table)?.get(key))?;
        match v {
            Some(v) => self.unseal(table, key, v).map(Some),
            None => Ok(None),
        }
    }

    async fn scan(&self, table: Table, scan: Scan) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rows = guard(table.name(), || {
            self.snapshot()?.records(table)?.scan(&scan)
        })?;
        if table != Table::Integrations {
            return Ok(rows);
        }
        rows.into_iter()
            .map(|(k, v)| {
                let v = self.unseal(table, &k, v)?;
                Ok((k, v))
            })
            .collect()
    }

    async fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let ops = self.prepare(batch)?;
        self.commit_prepared(ops).await
    }

    async fn count(&self, table: Table) -> Result<u64, StoreError> {
        guard(table.name(), || self.snapshot()?.records(table)?.len())
    }
}
