//! The ingest journal seam: an append-only log that makes ingested events durable
//! before the engine has decided on them.
//!
//! With a journal, an ingest call returns once its record is durable in the journal
//! (one sync shared by every concurrent append), and the engine decides and commits
//! the events to the [`Store`](crate::store::Store) in the background, in journal
//! order, in large batches. Each of those commits also records the highest journal
//! sequence number it covers; at start the engine replays every record after it.
//! Records are released (deleted, whole files at a time) once applied.
//!
//! # Contract
//! * Sequence numbers start at 1, ascend by one per record, and are never reused,
//!   not even after a crash that lost unsynced records: an implementation opened
//!   with the store's applied sequence number continues after the larger of that and
//!   its own last record.
//! * [`Journal::append`] returns only after the record is durable (or an error, in
//!   which case the record may or may not be replayed later: the caller reports a
//!   failure and the sender re-sends, which the engine deduplicates).
//! * A record torn by a crash during its write (never acknowledged) is dropped at
//!   open; damage before the last record is an error, never silently skipped.

use async_trait::async_trait;

use crate::store::StoreError;

/// Sequence number of a journal record (1-based; 0 means "none").
pub type JournalSeq = u64;

/// An append-only, crash-safe log of opaque records (see the module doc).
#[async_trait]
pub trait Journal: Send + Sync + 'static {
    /// Appends one record; returns its sequence number once it is durable.
    /// Concurrent appends share one sync (group commit) and get consecutive numbers.
    async fn append(&self, record: Vec<u8>) -> Result<JournalSeq, StoreError>;

    /// Every record with a sequence number greater than `after`, in order.
    async fn replay(&self, after: JournalSeq) -> Result<Vec<(JournalSeq, Vec<u8>)>, StoreError>;

    /// Records up to and including `through` have been applied and may be deleted.
    /// Implementations may keep some (they delete whole files); replay still skips
    /// them by sequence number.
    async fn release(&self, through: JournalSeq) -> Result<(), StoreError>;

    /// The highest sequence number appended so far (0 when none).
    fn last_seq(&self) -> JournalSeq;
}
