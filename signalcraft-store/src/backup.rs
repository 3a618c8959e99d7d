//! Backup and restore as JSON Lines.
//!
//! [`RedbStore::export`] writes a consistent snapshot (one read transaction, so
//! writers keep running and nothing committed later leaks in) as:
//!
//! ```text
//! {"signalcraft_backup":1,"schema":2}
//! {"table":"alerts","key":"fp1","value":{...}}         one line per record
//! {"table":"blobs","key":"x","bytes":"<base64>"}        a record that is not JSON
//! {"job":{"id":"esc/inc-1/0","due":"…","kind":{…},"attempts":0}}   pending jobs
//! ```
//!
//! Values are exported as stored: sealed integration secrets stay sealed, so a
//! backup holds no cleartext secret when a key is configured (restore needs the same
//! key to read them). Leases are not exported; restored jobs are unclaimed.
//!
//! [`RedbStore::import`] loads such a file into an EMPTY store (any record or job
//! present → [`Error::NotEmpty`]); it commits in batches of [`IMPORT_BATCH`] lines,
//! so an import that fails part-way leaves a partial store: delete the file and
//! import again.

use std::io::{BufRead, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use redb::{ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use signalcraft_core::scheduler::Job;
use signalcraft_core::store::{StoreError, Table, WriteBatch};

use crate::RedbStore;
use crate::error::{Error, from_redb};
use crate::scheduler::{SchedOp, decode};
use crate::schema::SCHEMA_VERSION;
use crate::tables::JOBS;
use crate::writer::Op;

/// Lines committed per import transaction.
pub const IMPORT_BATCH: usize = 5_000;

/// Format version of the backup file.
pub const BACKUP_FORMAT: u32 = 1;

/// What an export or import covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// Records written or read.
    pub records: u64,
    /// Scheduler jobs written or read.
    pub jobs: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    signalcraft_backup: u32,
    schema: u32,
}

#[derive(Serialize, Deserialize)]
struct RecordLine {
    table: String,
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct JobLine {
    job: Job,
}

fn file_err(e: std::io::Error) -> Error {
    Error::File {
        path: "backup stream".into(),
        source: e,
    }
}

impl RedbStore {
    /// Writes a consistent snapshot of every table and pending job to `out` as JSON
    /// Lines (see the [module docs](self)). Blocking: call it from a blocking task.
    pub fn export(&self, mut out: impl Write) -> Result<BackupReport, Error> {
        let r = self.snapshot()?;
        let mut report = BackupReport::default();
        let header = Header {
            signalcraft_backup: BACKUP_FORMAT,
            schema: SCHEMA_VERSION,
        };
        write_line(&mut out, &header)?;
        for table in Table::ALL {
            r.records(table)?.for_each(|key, bytes| {
                let line = match serde_json::from_slice::<serde_json::Value>(bytes) {
                    Ok(value) => RecordLine {
                        table: table.name().into(),
                        key: key.into(),
                        value: Some(value),
                        bytes: None,
                    },
                    Err(_) => RecordLine {
                        table: table.name().into(),
                        key: key.into(),
                        value: None,
                        bytes: Some(B64.encode(bytes)),
                    },
                };
                write_line(&mut out, &line)?;
                report.records += 1;
                Ok::<(), Error>(())
            })?;
        }
        let jobs = r.txn().open_table(JOBS).map_err(from_redb)?;
        for e in jobs.iter().map_err(from_redb)? {
            let (k, v) = e.map_err(from_redb)?;
            let rec = decode(k.value(), v.value())?;
            write_line(&mut out, &JobLine { job: rec.job })?;
            report.jobs += 1;
        }
        out.flush().map_err(file_err)?;
        Ok(report)
    }

    /// Restores a backup written by [`RedbStore::export`] into this store, which must
    /// be empty ([`Error::NotEmpty`] otherwise). Integration secrets that are in
    /// clear in the backup are sealed if this store has a key.
    pub async fn import(&self, input: impl BufRead) -> Result<BackupReport, Error> {
        self.ensure_empty()?;
        let mut report = BackupReport::default();
        let mut batch = WriteBatch::new();
        let mut jobs = Vec::new();
        let mut saw_header = false;
        for (i, line) in input.lines().enumerate() {
            let n = i + 1;
            let line = line.map_err(file_err)?;
            if line.trim().is_empty() {
                continue;
            }
            let bad = |message: String| Error::BadBackup { line: n, message };
            if !saw_header {
                let h: Header = serde_json::from_str(&line)
                    .map_err(|e| bad(format!("expected the backup header: {e}")))?;
                if h.signalcraft_backup != BACKUP_FORMAT {
                    return Err(bad(format!(
                        "unknown backup format {}",
                        h.signalcraft_backup
                    )));
                }
                if h.schema > SCHEMA_VERSION {
                    return Err(Error::Store(StoreError::SchemaTooNew {
                        found: h.schema,
                        supported: SCHEMA_VERSION,
                    }));
                }
                saw_header = true;
                continue;
            }
            let v: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| bad(format!("invalid JSON: {e}")))?;
            if v.get("job").is_some() {
                let j: JobLine =
                    serde_json::from_value(v).map_err(|e| bad(format!("invalid job: {e}")))?;
                jobs.push(j.job);
                report.jobs += 1;
            } else {
                let rec: RecordLine =
                    serde_json::from_value(v).map_err(|e| bad(format!("invalid record: {e}")))?;
                let table = Table::from_name(&rec.table)
                    .ok_or_else(|| bad(format!("unknown table {:?}", rec.table)))?;
                let bytes = match (rec.value, rec.bytes) {
                    (Some(v), None) => serde_json::to_vec(&v).map_err(|e| bad(e.to_string()))?,
                    (None, Some(b)) => B64
                        .decode(b)
                        .map_err(|e| bad(format!("invalid base64 in bytes: {e}")))?,
                    _ => return Err(bad("a record needs exactly one of value or bytes".into())),
                };
                batch.put_raw(table, rec.key, bytes);
                report.records += 1;
            }
            if batch.len() >= IMPORT_BATCH {
                self.import_batch(std::mem::take(&mut batch)).await?;
            }
            if jobs.len() >= IMPORT_BATCH {
                self.import_jobs(std::mem::take(&mut jobs)).await?;
            }
        }
        if !saw_header {
            return Err(Error::BadBackup {
                line: 1,
                message: "empty backup: no header line".into(),
            });
        }
        self.import_batch(batch).await?;
        self.import_jobs(jobs).await?;
        Ok(report)
    }

    async fn import_batch(&self, batch: WriteBatch) -> Result<(), Error> {
        let ops = self.prepare_batch(batch)?;
        Ok(self.commit_prepared(ops).await?)
    }

    async fn import_jobs(&self, jobs: Vec<Job>) -> Result<(), Error> {
        if jobs.is_empty() {
            return Ok(());
        }
        self.inner
            .writer
            .submit(Op::Sched(SchedOp::Import(jobs)))
            .await?;
        Ok(())
    }

    fn ensure_empty(&self) -> Result<(), Error> {
        let r = self.snapshot()?;
        for table in Table::ALL {
            let count = r.records(table)?.len()?;
            if count > 0 {
                return Err(Error::NotEmpty {
                    table: table.name().into(),
                    count,
                });
            }
        }
        let jobs = r.txn().open_table(JOBS).map_err(from_redb)?;
        let count = jobs.len().map_err(from_redb)?;
        if count > 0 {
            return Err(Error::NotEmpty {
                table: "scheduler jobs".into(),
                count,
            });
        }
        Ok(())
    }
}

fn write_line(out: &mut impl Write, v: &impl Serialize) -> Result<(), Error> {
    serde_json::to_writer(&mut *out, v).map_err(|e| Error::File {
        path: "backup stream".into(),
        source: std::io::Error::other(e),
    })?;
    out.write_all(b"\n").map_err(file_err)
}
