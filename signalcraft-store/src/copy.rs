//! Backup as a redb file: a consistent copy of the whole store, taken while running.
//!
//! [`RedbStore::backup_to_file`] reads ONE read transaction (the latest committed
//! snapshot; writers keep committing meanwhile and nothing they commit later leaks
//! in) and writes every table, the schema version and the scheduler's jobs into a
//! new redb file. The copy is written as `<path>.partial`, made durable, then renamed
//! to `<path>`, so `<path>` is either absent or a complete backup.
//!
//! Restoring is opening the copy: stop the server, put the copy in place of the
//! store file, start. Opening it releases every job lease it holds (those jobs were
//! running when the copy was taken, so they run again, like after a crash).
//! Secrets stay sealed as stored: reading them needs the same key.
//!
//! Copying the live file byte by byte would NOT be consistent: redb rewrites its
//! header and reuses free pages while the copy runs.

use std::path::Path;

use redb::{Database, Durability, Key, ReadableTable, TableDefinition, Value};
use signalcraft_core::store::{StoreError, Table};

use crate::RedbStore;
use crate::backup::BackupReport;
use crate::error::{Error, from_redb};
use crate::indexed::{self, Records};
use crate::tables::{self, JOB_QUEUE, JOBS, SCHEMA};

/// Records copied per write transaction of the copy (non-durable until the last).
const CHUNK: usize = 20_000;

impl RedbStore {
    /// Writes a consistent copy of the store to a new redb file at `path` (see the
    /// [module docs](self)); `path` must not exist. Blocking: call it from a
    /// blocking task. The copy is compact (no free pages).
    pub fn backup_to_file(&self, path: impl AsRef<Path>) -> Result<BackupReport, Error> {
        let path = path.as_ref();
        let file_err = |source: std::io::Error| Error::File {
            path: path.display().to_string(),
            source,
        };
        if path.exists() {
            return Err(file_err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "backup file already exists",
            )));
        }
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = std::path::PathBuf::from(partial);
        // A leftover from an interrupted backup is ours to replace.
        match std::fs::remove_file(&partial) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(file_err(e)),
            _ => {}
        }
        let report = self.copy_into(&partial).inspect_err(|_| {
            let _ = std::fs::remove_file(&partial);
        })?;
        std::fs::rename(&partial, path).map_err(file_err)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename itself durable.
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(file_err)?;
        }
        Ok(report)
    }

    fn copy_into(&self, dst_path: &Path) -> Result<BackupReport, Error> {
        let snap = self.snapshot()?;
        let src = snap.txn();
        let dst = Database::create(dst_path).map_err(|e| match from_redb(e) {
            StoreError::Io(m) => {
                Error::Store(StoreError::Io(format!("{}: {m}", dst_path.display())))
            }
            other => Error::Store(other),
        })?;
        let mut copier = Copier {
            db: &dst,
            txn: None,
            pending: 0,
        };
        let mut report = BackupReport::default();
        copier.with_txn(|txn| tables::create_all(txn).map_err(Error::Store))?;
        for table in Table::ALL {
            match snap.records(table)? {
                Records::Plain(t) => {
                    report.records += copy_table(&mut copier, t, tables::data(table))?;
                }
                Records::Indexed(t) => {
                    // Copied as stored: records by sequence number, then both indexes.
                    copy_table(&mut copier, t.records(), indexed::RECORDS)?;
                    report.records += copy_table(&mut copier, t.index(), indexed::INDEX)?;
                    report.records += copy_table(&mut copier, t.recent(), indexed::RECENT)?;
                }
            }
        }
        let jobs = src.open_table(JOBS).map_err(from_redb)?;
        report.jobs = copy_table(&mut copier, &jobs, JOBS)?;
        let queue = src.open_table(JOB_QUEUE).map_err(from_redb)?;
        for e in queue.iter().map_err(from_redb)? {
            let (k, _) = e.map_err(from_redb)?;
            let (due, id) = k.value();
            copier.with_txn(|txn| {
                txn.open_table(JOB_QUEUE)
                    .map_err(from_redb)?
                    .insert((due, id), ())
                    .map_err(from_redb)?;
                Ok(())
            })?;
            copier.count(1)?;
        }
        let schema = src.open_table(SCHEMA).map_err(from_redb)?;
        for e in schema.iter().map_err(from_redb)? {
            let (k, v) = e.map_err(from_redb)?;
            let (k, v) = (k.value(), v.value());
            copier.with_txn(|txn| {
                txn.open_table(SCHEMA)
                    .map_err(from_redb)?
                    .insert(k, v)
                    .map_err(from_redb)?;
                Ok(())
            })?;
        }
        drop(snap);
        copier.finish()?;
        Ok(report)
    }
}

/// Copies one table; returns the number of entries.
fn copy_table<K: Key + 'static, V: Value + 'static>(
    copier: &mut Copier<'_>,
    src: &impl ReadableTable<K, V>,
    def: TableDefinition<'static, K, V>,
) -> Result<u64, Error> {
    let total = src.len().map_err(from_redb)?;
    let mut rows = src.iter().map_err(from_redb)?;
    let mut copied = 0u64;
    loop {
        // Fill the current transaction up to the chunk size.
        let room = copier.room();
        let n = copier.with_txn(|txn| {
            let mut t = txn.open_table(def).map_err(from_redb)?;
            let mut n = 0;
            for e in rows.by_ref().take(room) {
                let (k, v) = e.map_err(from_redb)?;
                t.insert(k.value(), v.value()).map_err(from_redb)?;
                n += 1;
            }
            Ok(n)
        })?;
        copied += n as u64;
        copier.count(n)?;
        if n < room || copied >= total {
            return Ok(copied);
        }
    }
}

/// Writes into the copy in chunks: intermediate commits are non-durable (fast), the
/// last one is durable and makes everything before it durable too.
struct Copier<'a> {
    db: &'a Database,
    txn: Option<redb::WriteTransaction>,
    pending: usize,
}

impl Copier<'_> {
    fn with_txn<T>(
        &mut self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let txn = match self.txn.take() {
            Some(t) => t,
            None => self.db.begin_write().map_err(from_redb)?,
        };
        let out = f(&txn);
        self.txn = Some(txn);
        out
    }

    fn room(&self) -> usize {
        CHUNK.saturating_sub(self.pending).max(1)
    }

    fn count(&mut self, n: usize) -> Result<(), Error> {
        self.pending += n;
        if self.pending >= CHUNK
            && let Some(mut txn) = self.txn.take()
        {
            txn.set_durability(Durability::None).map_err(from_redb)?;
            txn.commit().map_err(from_redb)?;
            self.pending = 0;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), Error> {
        let mut txn = match self.txn.take() {
            Some(t) => t,
            None => self.db.begin_write().map_err(from_redb)?,
        };
        txn.set_durability(Durability::Immediate)
            .map_err(from_redb)?;
        txn.commit().map_err(from_redb)?;
        Ok(())
    }
}
