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

/// Called with a record's sequence number once it is durable (see
/// [`Journal::append_then`]).
pub type OnDurable = Box<dyn FnOnce(JournalSeq) + Send + 'static>;

/// An append-only, crash-safe log of opaque records (see the module doc).
#[async_trait]
pub trait Journal: Send + Sync + 'static {
    /// Appends one record; returns its sequence number once it is durable.
    /// Concurrent appends share one sync (group commit) and get consecutive numbers.
    async fn append(&self, record: Vec<u8>) -> Result<JournalSeq, StoreError>;

    /// [`Journal::append`], and `on_durable` runs with the record's sequence number
    /// once the record is durable, before this returns `Ok`. Across all appends the
    /// callbacks run one at a time in sequence-number order, and a callback runs even
    /// when the caller's future was dropped after the record was handed over, so a
    /// consumer fed by the callbacks sees every durable record exactly once, in
    /// journal order. The callback runs on the journal's writer (possibly a plain
    /// thread): it must be short and must not block (send to a channel). It does not
    /// run for a record whose append fails.
    async fn append_then(
        &self,
        record: Vec<u8>,
        on_durable: OnDurable,
    ) -> Result<JournalSeq, StoreError>;

    /// Every record with a sequence number greater than `after`, in order.
    async fn replay(&self, after: JournalSeq) -> Result<Vec<(JournalSeq, Vec<u8>)>, StoreError>;

    /// Records up to and including `through` have been applied and may be deleted.
    /// Implementations may keep some (they delete whole files); replay still skips
    /// them by sequence number.
    async fn release(&self, through: JournalSeq) -> Result<(), StoreError>;

    /// The highest sequence number appended so far (0 when none).
    fn last_seq(&self) -> JournalSeq;
}
