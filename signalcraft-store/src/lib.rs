//! # signalcraft-store
//!
//! Durable implementations of [`Store`](signalcraft_core::store::Store) and
//! [`Scheduler`](signalcraft_core::scheduler::Scheduler) on redb, the embedded
//! default. Nothing here is redb-specific at the trait level, so a PostgreSQL
//! implementation can sit beside it later.
//!
//! ```no_run
//! # async fn demo() -> Result<(), signalcraft_core::store::StoreError> {
//! use signalcraft_core::store::{Store, Table, WriteBatch};
//! let store = signalcraft_store::RedbStore::open("/var/lib/signalcraft/store.redb")?;
//! let scheduler = store.scheduler();
//! let mut batch = WriteBatch::new();
//! batch.put_raw(Table::Alerts, "fp1", br#"{"status":"firing"}"#.to_vec());
//! store.commit(batch).await?; // durable when this returns
//! # drop(scheduler); Ok(()) }
//! ```
//!
//! # Layout
//!
//! * [`store`]: [`RedbStore`], [`StoreOptions`] (open, read, commit).
//! * [`scheduler`]: [`RedbScheduler`], durable jobs in the same file.
//! * [`writer`]: the group-commit writer thread.
//! * [`journal`]: [`FileJournal`], the durable ingest journal (segment files, group commit).
//! * [`tables`]: the on-disk layout.
//! * [`indexed`]: the alerts' layout (records appended by sequence number, a key index).
//! * [`schema`]: schema version and migrations.
//! * [`seal`]: encryption at rest of integration secrets.
//! * [`retention`]: removing closed incidents (and their alerts, timeline) by age.
//! * [`backup`]: consistent JSON Lines export and import.
//! * [`copy`]: consistent backup as a redb file, taken while running.
//! * [`error`]: this crate's [`Error`], and the redb → `StoreError` mapping.
#![deny(missing_docs)]

pub mod backup;
pub mod copy;
pub mod error;
pub mod indexed;
pub mod journal;
pub mod retention;
pub mod scheduler;
pub mod schema;
pub mod seal;
mod snapshot;
pub mod store;
pub mod tables;
pub mod writer;

pub use error::Error;
pub use journal::FileJournal;
pub use retention::{RetentionPolicy, RetentionReport};
pub use scheduler::RedbScheduler;
pub use schema::SCHEMA_VERSION;
pub use seal::{ResealReport, SealKey};
pub use store::{RedbStore, StoreOptions};
pub use writer::WriterStats;
