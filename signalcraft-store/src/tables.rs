//! On-disk layout: one redb table per [`Table`] (named [`Table::name`], `&str` key →
//! JSON bytes), except [`Table::Alerts`], which is three tables (`alerts.records`:
//! sequence number → JSON bytes; `alerts.index` and `alerts.index.recent`: key →
//! sequence number; see [`crate::indexed`]), plus internal tables whose names start
//! with `__`:
//!
//! * `__schema`: `"version"` → schema version (`u64`), see [`crate::schema`].
//! * `__jobs`: job id → JSON `JobRecord` (the job, its lease), see [`crate::scheduler`].
//! * `__job_queue`: `(effective time in ns since the epoch, job id)` → `()`, where the
//!   effective time is the lease expiry of a claimed job and the due time otherwise.

use std::ops::Bound;

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use signalcraft_core::store::{Scan, StoreError, Table, WriteOp};

use crate::error::from_redb;
use crate::indexed::{self, IndexedMut};

/// The redb definition of a data table in the plain `key → record` layout, i.e. any
/// table but those [`indexed::is_indexed`] names (their data is elsewhere).
pub(crate) fn data(table: Table) -> TableDefinition<'static, &'static str, &'static [u8]> {
    debug_assert!(!indexed::is_indexed(table), "{} is indexed", table.name());
    TableDefinition::new(table.name())
}

/// Schema version bookkeeping.
pub(crate) const SCHEMA: TableDefinition<&str, u64> = TableDefinition::new("__schema");
/// Scheduler jobs by id.
pub(crate) const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("__jobs");
/// Scheduler queue ordered by (effective time, id).
pub(crate) const JOB_QUEUE: TableDefinition<(i128, &str), ()> = TableDefinition::new("__job_queue");

/// Creates every table that does not exist yet.
pub(crate) fn create_all(txn: &WriteTransaction) -> Result<(), StoreError> {
    for t in Table::ALL {
        if indexed::is_indexed(t) {
            indexed::create(txn)?;
        } else {
            txn.open_table(data(t)).map_err(from_redb)?;
        }
    }
    txn.open_table(SCHEMA).map_err(from_redb)?;
    txn.open_table(JOBS).map_err(from_redb)?;
    txn.open_table(JOB_QUEUE).map_err(from_redb)?;
    Ok(())
}

/// Applies validated writes in order; a [`WriteOp::Expect`] that does not hold fails
/// the call with [`StoreError::Conflict`] (the caller aborts the transaction). Each table is opened once per call and kept
/// open for the later writes (also across the batches of a group).
pub(crate) fn apply_writes<'a>(
    txn: &WriteTransaction,
    ops: impl IntoIterator<Item = &'a WriteOp>,
) -> Result<(), StoreError> {
    let mut open = OpenTables::new(txn);
    for op in ops {
        match op {
            WriteOp::Put { table, key, value } => open.put(*table, key, value)?,
            WriteOp::Delete { table, key } => open.delete(*table, key)?,
            WriteOp::Expect { table, key, value } => {
                if open.get(*table, key)?.as_deref() != value.as_deref() {
                    return Err(StoreError::expectation_failed(*table, key));
                }
            }
        }
    }
    open.finish()
}

const N: usize = Table::ALL.len();

/// The tables of one transaction opened so far.
struct OpenTables<'txn> {
    txn: &'txn WriteTransaction,
    plain: [Option<redb::Table<'txn, &'static str, &'static [u8]>>; N],
    indexed: Option<IndexedMut<'txn>>,
}

impl<'txn> OpenTables<'txn> {
    fn new(txn: &'txn WriteTransaction) -> Self {
        OpenTables {
            txn,
            plain: [const { None }; N],
            indexed: None,
        }
    }

    fn put(&mut self, table: Table, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if indexed::is_indexed(table) {
            return self.indexed()?.put(key, value);
        }
        self.plain(table)?.insert(key, value).map_err(from_redb)?;
        Ok(())
    }

    /// The stored bytes of `key` as the transaction's writes so far leave them.
    fn get(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if indexed::is_indexed(table) {
            return self.indexed()?.get(key);
        }
        Ok(self
            .plain(table)?
            .get(key)
            .map_err(from_redb)?
            .map(|g| g.value().to_vec()))
    }

    fn delete(&mut self, table: Table, key: &str) -> Result<(), StoreError> {
        if indexed::is_indexed(table) {
            return self.indexed()?.delete(key);
        }
        self.plain(table)?.remove(key).map_err(from_redb)?;
        Ok(())
    }

    /// Completes the writes of the indexed layout (see [`IndexedMut::finish`]).
    fn finish(mut self) -> Result<(), StoreError> {
        match self.indexed.take() {
            Some(t) => t.finish(self.txn),
            None => Ok(()),
        }
    }

    fn indexed(&mut self) -> Result<&mut IndexedMut<'txn>, StoreError> {
        if self.indexed.is_none() {
            self.indexed = Some(IndexedMut::open(self.txn)?);
        }
        self.indexed
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("indexed tables not open".into()))
    }

    fn plain(
        &mut self,
        table: Table,
    ) -> Result<&mut redb::Table<'txn, &'static str, &'static [u8]>, StoreError> {
        let i = Table::ALL
            .iter()
            .position(|t| *t == table)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown table {}", table.name())))?;
        if self.plain[i].is_none() {
            self.plain[i] = Some(self.txn.open_table(data(table)).map_err(from_redb)?);
        }
        self.plain[i]
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt(format!("{} not open", table.name())))
    }
}

/// The smallest string greater than every string starting with `prefix`
/// (`None` when there is none, i.e. the prefix is empty or all `char::MAX`).
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        let mut next = c as u32 + 1;
        if next == 0xD800 {
            next = 0xE000; // skip the surrogate range
        }
        if let Some(n) = char::from_u32(next) {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Runs a [`Scan`] over a table keyed by the store's keys; `record` turns each
/// selected entry's value into what is returned beside its key. `after` is a cursor in iteration order: keys
/// strictly greater than it (forward) or strictly smaller (reverse).
pub(crate) fn scan_table<V, T, R>(
    t: &T,
    scan: &Scan,
    mut record: impl FnMut(&str, V::SelfType<'_>) -> Result<R, StoreError>,
) -> Result<Vec<(String, R)>, StoreError>
where
    V: redb::Value + 'static,
    T: ReadableTable<&'static str, V>,
{
    let end = prefix_end(&scan.prefix);
    let mut lower: Bound<&str> = Bound::Included(scan.prefix.as_str());
    let mut upper: Bound<&str> = match &end {
        Some(e) => Bound::Excluded(e.as_str()),
        None => Bound::Unbounded,
    };
    if let Some(after) = scan.after.as_deref() {
        if !scan.reverse {
            if after >= scan.prefix.as_str() {
                if end.as_deref().is_some_and(|e| after >= e) {
                    return Ok(Vec::new());
                }
                lower = Bound::Excluded(after);
            }
        } else {
            if after <= scan.prefix.as_str() {
                return Ok(Vec::new());
            }
            if end.as_deref().is_none_or(|e| after < e) {
                upper = Bound::Excluded(after);
            }
        }
    }
    let limit = if scan.limit == 0 {
        usize::MAX
    } else {
        scan.limit
    };
    let range = t.range::<&str>((lower, upper)).map_err(from_redb)?;
    let mut out = Vec::new();
    let mut push = |entry: Result<
        (
            redb::AccessGuard<'_, &'static str>,
            redb::AccessGuard<'_, V>,
        ),
        redb::StorageError,
    >|
     -> Result<bool, StoreError> {
        let (k, v) = entry.map_err(from_redb)?;
        let key = k.value();
        let value = record(key, v.value())?;
        out.push((key.to_owned(), value));
        Ok(out.len() < limit)
    };
    if scan.reverse {
        for entry in range.rev() {
            if !push(entry)? {
                break;
            }
        }
    } else {
        for entry in range {
            if !push(entry)? {
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_bounds_every_extension() {
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("inc-1/").as_deref(), Some("inc-10"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        let end = prefix_end("ab").expect("end");
        for s in ["ab", "ab\u{10FFFF}\u{10FFFF}", "ab~", "abz"] {
            assert!(s < end.as_str(), "{s}");
        }
        assert!("ac" >= end.as_str());
    }
}
