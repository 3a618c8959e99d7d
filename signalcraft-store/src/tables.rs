//! On-disk layout: one redb table per [`Table`] (named [`Table::name`], `&str` key →
//! JSON bytes), plus internal tables whose names start with `__`:
//!
//! * `__schema`: `"version"` → schema version (`u64`), see [`crate::schema`].
//! * `__jobs`: job id → JSON `JobRecord` (the job, its lease), see [`crate::scheduler`].
//! * `__job_queue`: `(effective time in ns since the epoch, job id)` → `()`, where the
//!   effective time is the lease expiry of a claimed job and the due time otherwise.

use std::ops::Bound;

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use signalcraft_core::store::{Scan, StoreError, Table, WriteOp};

use crate::error::from_redb;

/// The redb definition of a data table.
pub(crate) fn data(table: Table) -> TableDefinition<'static, &'static str, &'static [u8]> {
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
        txn.open_table(data(t)).map_err(from_redb)?;
    }
    txn.open_table(SCHEMA).map_err(from_redb)?;
    txn.open_table(JOBS).map_err(from_redb)?;
    txn.open_table(JOB_QUEUE).map_err(from_redb)?;
    Ok(())
}

/// Applies validated writes in order, reusing the open table across consecutive
/// writes to the same table (also across the batches of a group).
pub(crate) fn apply_writes<'a>(
    txn: &WriteTransaction,
    ops: impl IntoIterator<Item = &'a WriteOp>,
) -> Result<(), StoreError> {
    let mut ops = ops.into_iter().peekable();
    while let Some(first) = ops.peek() {
        let table = op_table(first);
        let mut t = txn.open_table(data(table)).map_err(from_redb)?;
        while let Some(op) = ops.next_if(|op| op_table(op) == table) {
            match op {
                WriteOp::Put { key, value, .. } => {
                    t.insert(key.as_str(), value.as_slice())
                        .map_err(from_redb)?;
                }
                WriteOp::Delete { key, .. } => {
                    t.remove(key.as_str()).map_err(from_redb)?;
                }
            }
        }
    }
    Ok(())
}

fn op_table(op: &WriteOp) -> Table {
    match op {
        WriteOp::Put { table, .. } | WriteOp::Delete { table, .. } => *table,
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

/// Runs a [`Scan`] over one table. `after` is a cursor in iteration order: keys
/// strictly greater than it (forward) or strictly smaller (reverse).
pub(crate) fn scan_table<T>(t: &T, scan: &Scan) -> Result<Vec<(String, Vec<u8>)>, StoreError>
where
    T: ReadableTable<&'static str, &'static [u8]>,
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
            redb::AccessGuard<'_, &'static [u8]>,
        ),
        redb::StorageError,
    >|
     -> Result<bool, StoreError> {
        let (k, v) = entry.map_err(from_redb)?;
        out.push((k.value().to_owned(), v.value().to_vec()));
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
