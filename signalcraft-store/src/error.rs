//! The crate's error type and the mapping from redb's errors to the core
//! [`StoreError`] that the `Store` and `Scheduler` traits return.

use signalcraft_core::store::StoreError;
use thiserror::Error;

/// Errors of the operations this crate adds beyond the core traits (opening with
/// options, backup/restore, retention, sealing). Trait methods return
/// [`StoreError`]; every [`StoreError`] converts into [`Error::Store`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `import` refuses to write into a store that already holds records.
    #[error("cannot import into a non-empty store: table {table} has {count} records")]
    NotEmpty {
        /// The first non-empty table found.
        table: String,
        /// How many records it holds.
        count: u64,
    },
    /// A backup line could not be parsed.
    #[error("backup line {line}: {message}")]
    BadBackup {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A configuration value is invalid (`field` names the option, e.g. `encryption_key`).
    #[error("invalid store option {field}: {message}")]
    InvalidOption {
        /// The option at fault.
        field: &'static str,
        /// What is wrong with it (never contains key material).
        message: String,
    },
    /// Reading or writing a backup/archive file failed.
    #[error("{path}: {source}")]
    File {
        /// The file (or stream description).
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Maps any redb error to the core [`StoreError`].
///
/// Lock conflicts become [`StoreError::Locked`], corruption [`StoreError::Corrupt`],
/// I/O (disk full, permission denied, a previous I/O failure) [`StoreError::Io`].
pub(crate) fn from_redb(e: impl Into<redb::Error>) -> StoreError {
    use redb::Error as E;
    let e: redb::Error = e.into();
    match e {
        E::DatabaseAlreadyOpen => StoreError::Locked(
            "the database file is open in another process or handle (redb DatabaseAlreadyOpen)"
                .into(),
        ),
        E::LockProtocolMismatch => StoreError::Locked(
            "the database file is open by a redb version with another lock protocol".into(),
        ),
        E::Corrupted(msg) => StoreError::Corrupt(msg),
        E::UpgradeRequired(v) => StoreError::Corrupt(format!(
            "file format version {v} is not supported by this redb build"
        )),
        E::RepairAborted => StoreError::Corrupt("repair of the database file was aborted".into()),
        E::Io(io) => io_error(&io),
        E::PreviousIo => StoreError::Io(
            "an earlier I/O error left the database unusable; reopen it to recover".into(),
        ),
        E::DatabaseClosed => StoreError::Closed,
        E::TransactionInProgress => StoreError::Conflict(
            "a transaction is still in progress; try again when it has finished".into(),
        ),
        E::ValueTooLarge(n) => StoreError::Codec(format!("value of {n} bytes is too large")),
        other => StoreError::Io(other.to_string()),
    }
}

/// Maps an I/O error, naming the common operator-visible causes.
pub(crate) fn io_error(e: &std::io::Error) -> StoreError {
    // EFBIG (27): file size limit exceeded; ENOSPC (28): disk full.
    match e.raw_os_error() {
        Some(28) => StoreError::Io(format!("disk full (ENOSPC): {e}")),
        Some(27) => StoreError::Io(format!("file size limit exceeded (EFBIG): {e}")),
        _ => StoreError::Io(e.to_string()),
    }
}

/// Runs `f`, turning a panic inside it into [`StoreError::Corrupt`] naming `what`.
///
/// redb trusts the bytes of the pages it reads: a page damaged in place (a bad disk,
/// a stray write by another program) can make it index out of bounds and panic.
/// Every read and write of this crate goes through here, so a damaged file is a
/// typed error for the caller, never a crashed process or a dead writer thread.
/// (The panic message is still printed by the panic hook.)
pub(crate) fn guard<R>(
    what: &str,
    f: impl FnOnce() -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|p| Err(damaged(what, p.as_ref())))
}

/// The error for a panic of redb while it read the file.
pub(crate) fn damaged(what: &str, panic: &(dyn std::any::Any + Send)) -> StoreError {
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown failure".into());
    StoreError::Corrupt(format!(
        "{what}: the database file is damaged (redb failed while reading it: {msg}); \
         restore it from a backup"
    ))
}
