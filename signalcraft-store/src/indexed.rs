//! The indexed layout of [`Table::Alerts`]: records in insertion order, keys in an index.
//!
//! Alert keys are fingerprints (hashes), so they arrive in random order. Stored in one
//! `key → record` B-tree, every big batch of new alerts lands on nearly every leaf and
//! copy-on-write rewrites almost the whole table per commit (a 20,000-alert batch
//! rewrote ~all of a 60 MB table). So the alerts live in two tables instead:
//!
//! * [`RECORDS`] (`alerts.records`): sequence number (`u64`) → record bytes. A new
//!   key gets the next sequence number (the largest in the table + 1), so new records
//!   are appended at the right edge of the B-tree and a batch writes only new pages
//!   there (redb packs ascending appends into full pages).
//! * [`INDEX`] (`alerts.index`): key → sequence number. Entries are ~30 bytes, so a
//!   batch touches about 1/20 of the pages it would touch in a `key → record` table.
//!
//! A put of an existing key overwrites the record at its sequence number in place:
//! the index is only read, and one record page is rewritten (moving it to a new
//! number would rewrite that same page to delete it, plus an index page and the
//! right edge). A delete removes both entries. `get` and `scan` go through the
//! index (so scans are in key order, as the [`Store`](signalcraft_core::store::Store)
//! contract requires), `count` is the index's length. Sequence numbers are private
//! to this module: nothing outside it sees them, and one freed by deleting the
//! newest record may be handed out again.

use redb::{
    ReadOnlyTable, ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition,
    TableHandle, WriteTransaction,
};
use signalcraft_core::store::{Scan, StoreError, Table};

use crate::error::from_redb;
use crate::tables;

/// Key → sequence number of its record in [`RECORDS`].
pub(crate) const INDEX: TableDefinition<&str, u64> = TableDefinition::new("alerts.index");
/// Sequence number → record bytes.
pub(crate) const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("alerts.records");

/// Whether `table` is stored in the indexed layout (else as one `key → record` table).
pub(crate) fn is_indexed(table: Table) -> bool {
    table == Table::Alerts
}

/// Creates both tables if they do not exist.
pub(crate) fn create(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(INDEX).map_err(from_redb)?;
    txn.open_table(RECORDS).map_err(from_redb)?;
    Ok(())
}

/// The indexed tables opened for writing, with the next free sequence number.
pub(crate) struct IndexedMut<'txn> {
    index: redb::Table<'txn, &'static str, u64>,
    records: redb::Table<'txn, u64, &'static [u8]>,
    next: u64,
}

impl<'txn> IndexedMut<'txn> {
    /// Opens both tables in `txn`.
    pub(crate) fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        let index = txn.open_table(INDEX).map_err(from_redb)?;
        let records = txn.open_table(RECORDS).map_err(from_redb)?;
        let last = records.last().map_err(from_redb)?.map(|(k, _)| k.value());
        let next = match last {
            None => 0,
            Some(n) => n.checked_add(1).ok_or_else(|| {
                StoreError::Corrupt(format!("{}: sequence numbers exhausted", RECORDS.name()))
            })?,
        };
        Ok(IndexedMut {
            index,
            records,
            next,
        })
    }

    /// Inserts or replaces `key` (in place when it exists, appended when it is new).
    pub(crate) fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let existing = self.index.get(key).map_err(from_redb)?.map(|g| g.value());
        let seq = match existing {
            Some(seq) => seq,
            None => {
                let seq = self.next;
                self.index.insert(key, seq).map_err(from_redb)?;
                self.next = seq.checked_add(1).ok_or_else(|| {
                    StoreError::Corrupt(format!("{}: sequence numbers exhausted", RECORDS.name()))
                })?;
                seq
            }
        };
        self.records.insert(seq, value).map_err(from_redb)?;
        Ok(())
    }

    /// Removes `key` if present.
    pub(crate) fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        let removed = self
            .index
            .remove(key)
            .map_err(from_redb)?
            .map(|g| g.value());
        if let Some(seq) = removed {
            self.records.remove(seq).map_err(from_redb)?;
        }
        Ok(())
    }
}

/// A read-only `key → record` table.
pub(crate) type PlainTable = ReadOnlyTable<&'static str, &'static [u8]>;

/// The indexed tables opened in a read transaction.
pub(crate) struct IndexedRead {
    index: ReadOnlyTable<&'static str, u64>,
    records: ReadOnlyTable<u64, &'static [u8]>,
}

impl IndexedRead {
    /// Opens both tables in `txn`.
    pub(crate) fn open(txn: &ReadTransaction) -> Result<Self, StoreError> {
        Ok(IndexedRead {
            index: txn.open_table(INDEX).map_err(from_redb)?,
            records: txn.open_table(RECORDS).map_err(from_redb)?,
        })
    }

    /// The index (for copying the file as is).
    pub(crate) fn index(&self) -> &ReadOnlyTable<&'static str, u64> {
        &self.index
    }

    /// The records by sequence number (for copying the file as is).
    pub(crate) fn records(&self) -> &ReadOnlyTable<u64, &'static [u8]> {
        &self.records
    }

    /// The record the index entry `key → seq` points to.
    fn record(&self, key: &str, seq: u64) -> Result<Vec<u8>, StoreError> {
        match self.records.get(seq).map_err(from_redb)? {
            Some(v) => Ok(v.value().to_vec()),
            None => Err(missing(key, seq)),
        }
    }

    /// The records of index entries (in the order given). Many entries over a dense
    /// range of sequence numbers (a scan of most of the table) are read in one pass
    /// over that range instead of one B-tree descent each.
    fn records_of(
        &self,
        entries: Vec<(String, u64)>,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let (Some(lo), Some(hi)) = (
            entries.iter().map(|e| e.1).min(),
            entries.iter().map(|e| e.1).max(),
        ) else {
            return Ok(Vec::new());
        };
        let n = entries.len();
        if n < RANGE_READ_MIN || (hi - lo) / 4 > n as u64 {
            return entries
                .into_iter()
                .map(|(k, seq)| {
                    let v = self.record(&k, seq)?;
                    Ok((k, v))
                })
                .collect();
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_unstable_by_key(|&i| entries[i].1);
        let mut values: Vec<Option<Vec<u8>>> = vec![None; n];
        let mut j = 0;
        for e in self.records.range(lo..=hi).map_err(from_redb)? {
            let (k, v) = e.map_err(from_redb)?;
            let seq = k.value();
            while let Some(&i) = order.get(j) {
                match entries[i].1.cmp(&seq) {
                    std::cmp::Ordering::Greater => break,
                    std::cmp::Ordering::Equal => values[i] = Some(v.value().to_vec()),
                    std::cmp::Ordering::Less => {} // missing: reported below
                }
                j += 1;
            }
            if j == n {
                break;
            }
        }
        entries
            .into_iter()
            .zip(values)
            .map(|((k, seq), v)| match v {
                Some(v) => Ok((k, v)),
                None => Err(missing(&k, seq)),
            })
            .collect()
    }
}

/// Scans selecting at least this many records read them in one range pass when
/// their sequence numbers are dense (see [`IndexedRead::records_of`]).
const RANGE_READ_MIN: usize = 64;

fn missing(key: &str, seq: u64) -> StoreError {
    StoreError::Corrupt(format!(
        "{}: key {key} names record {seq}, which {} does not hold",
        INDEX.name(),
        RECORDS.name()
    ))
}

/// The records of one table in a read snapshot, whatever its layout.
#[derive(Clone, Copy)]
pub(crate) enum Records<'a> {
    /// One `key → record` table.
    Plain(&'a PlainTable),
    /// The indexed layout.
    Indexed(&'a IndexedRead),
}

impl Records<'_> {
    /// One record.
    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Records::Plain(t) => Ok(t.get(key).map_err(from_redb)?.map(|g| g.value().to_vec())),
            Records::Indexed(t) => {
                let seq = t.index.get(key).map_err(from_redb)?.map(|g| g.value());
                seq.map(|seq| t.record(key, seq)).transpose()
            }
        }
    }

    /// The records a [`Scan`] selects, in key order (see [`tables::scan_table`]).
    pub(crate) fn scan(&self, scan: &Scan) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        match self {
            Records::Plain(t) => tables::scan_table(*t, scan, |_, v: &[u8]| Ok(v.to_vec())),
            Records::Indexed(t) => {
                t.records_of(tables::scan_table(&t.index, scan, |_, seq| Ok(seq))?)
            }
        }
    }

    /// Number of records.
    pub(crate) fn len(&self) -> Result<u64, StoreError> {
        match self {
            Records::Plain(t) => t.len().map_err(from_redb),
            Records::Indexed(t) => t.index.len().map_err(from_redb),
        }
    }

    /// Calls `f` with every record in key order (without holding them all in memory).
    pub(crate) fn for_each<E: From<StoreError>>(
        &self,
        mut f: impl FnMut(&str, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Records::Plain(t) => {
                for e in t.iter().map_err(from_redb)? {
                    let (k, v) = e.map_err(from_redb)?;
                    f(k.value(), v.value())?;
                }
            }
            Records::Indexed(t) => {
                for e in t.index.iter().map_err(from_redb)? {
                    let (k, seq) = e.map_err(from_redb)?;
                    let key = k.value();
                    f(key, &t.record(key, seq.value())?)?;
                }
            }
        }
        Ok(())
    }
}

/// The schema 1 layout of [`Table::Alerts`]: one `key → record` table.
pub(crate) const LEGACY: TableDefinition<&str, &[u8]> = TableDefinition::new("alerts");

/// Migration 1 → 2: moves the records of the `alerts` table into the indexed layout
/// (sequence numbers in key order) and deletes the old table.
pub(crate) fn migrate_from_plain(txn: &WriteTransaction) -> Result<(), StoreError> {
    {
        let old = txn.open_table(LEGACY).map_err(from_redb)?;
        let mut index = txn.open_table(INDEX).map_err(from_redb)?;
        let mut records = txn.open_table(RECORDS).map_err(from_redb)?;
        if !index.is_empty().map_err(from_redb)? || !records.is_empty().map_err(from_redb)? {
            return Err(StoreError::Corrupt(format!(
                "schema 1 database already holds {} or {}",
                INDEX.name(),
                RECORDS.name()
            )));
        }
        for (seq, e) in (0u64..).zip(old.iter().map_err(from_redb)?) {
            let (k, v) = e.map_err(from_redb)?;
            index.insert(k.value(), seq).map_err(from_redb)?;
            records.insert(seq, v.value()).map_err(from_redb)?;
        }
    }
    txn.delete_table(LEGACY).map_err(from_redb)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use redb::{Database, ReadableDatabase};

    use super::*;

    fn write(db: &Database, f: impl FnOnce(&mut IndexedMut<'_>)) {
        let txn = db.begin_write().expect("begin");
        f(&mut IndexedMut::open(&txn).expect("open"));
        txn.commit().expect("commit");
    }

    /// `(key, sequence number)` of every index entry, and the sequence numbers held.
    fn layout(db: &Database) -> (Vec<(String, u64)>, Vec<u64>) {
        let r = db.begin_read().expect("read");
        let t = IndexedRead::open(&r).expect("open");
        let index = t
            .index()
            .iter()
            .expect("iter")
            .map(|e| {
                let (k, v) = e.expect("entry");
                (k.value().to_owned(), v.value())
            })
            .collect();
        let seqs = t
            .records()
            .iter()
            .expect("iter")
            .map(|e| e.expect("entry").0.value())
            .collect();
        (index, seqs)
    }

    fn pairs(p: &[(&str, u64)]) -> Vec<(String, u64)> {
        p.iter().map(|(k, s)| (k.to_string(), *s)).collect()
    }

    #[test]
    fn new_keys_append_updates_stay_in_place_deletes_remove_both() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::create(dir.path().join("i.redb")).expect("create");
        write(&db, |t| {
            for k in ["c", "a", "b"] {
                t.put(k, k.as_bytes()).expect("put");
            }
        });
        assert_eq!(
            layout(&db),
            (pairs(&[("a", 1), ("b", 2), ("c", 0)]), vec![0, 1, 2])
        );
        // An update keeps its number; the next transaction continues after the last.
        write(&db, |t| {
            t.put("a", b"a2").expect("put");
            t.put("d", b"d").expect("put");
            t.delete("c").expect("delete");
            t.delete("never").expect("delete");
        });
        assert_eq!(
            layout(&db),
            (pairs(&[("a", 1), ("b", 2), ("d", 3)]), vec![1, 2, 3])
        );
        // Deleting the newest record frees its number for the next new key.
        write(&db, |t| t.delete("d").expect("delete"));
        write(&db, |t| t.put("e", b"e").expect("put"));
        assert_eq!(
            layout(&db),
            (pairs(&[("a", 1), ("b", 2), ("e", 3)]), vec![1, 2, 3])
        );
        let r = db.begin_read().expect("read");
        let t = IndexedRead::open(&r).expect("open");
        let records = Records::Indexed(&t);
        assert_eq!(records.get("a").expect("get").as_deref(), Some(&b"a2"[..]));
        assert_eq!(records.get("c").expect("get"), None);
        assert_eq!(records.len().expect("len"), 3);
        let mut seen = Vec::new();
        records
            .for_each(|k, v| {
                seen.push((k.to_owned(), v.to_vec()));
                Ok::<(), StoreError>(())
            })
            .expect("for_each");
        assert_eq!(
            seen,
            [("a", "a2"), ("b", "b"), ("e", "e")]
                .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
        );
    }

    /// Big scans read records in one pass over their sequence numbers; the result
    /// is the same as one lookup per key, and a missing record is still named.
    #[test]
    fn big_scans_read_records_in_one_pass_with_the_same_result() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::create(dir.path().join("i.redb")).expect("create");
        // Keys in an order unrelated to their sequence numbers.
        let key = |i: u64| format!("{:04}", (i * 7919) % 1000);
        write(&db, |t| {
            for i in 0..1000 {
                t.put(&key(i), format!("v{i}").as_bytes()).expect("put");
            }
        });
        let r = db.begin_read().expect("read");
        let t = IndexedRead::open(&r).expect("open");
        let records = Records::Indexed(&t);
        let mut want: Vec<(String, Vec<u8>)> = (0..1000)
            .map(|i| (key(i), format!("v{i}").into_bytes()))
            .collect();
        want.sort();
        assert_eq!(records.scan(&Scan::all()).expect("scan"), want);
        let rev = Scan {
            prefix: "0".into(),
            after: Some("0900".into()),
            limit: 300,
            reverse: true,
        };
        let got = records.scan(&rev).expect("scan");
        let expected: Vec<_> = want
            .iter()
            .rev()
            .filter(|(k, _)| k.as_str() < "0900")
            .take(300)
            .cloned()
            .collect();
        assert_eq!(got, expected);
        // The same answer one lookup at a time.
        let one_by_one: Vec<_> = want
            .iter()
            .map(|(k, _)| (k.clone(), records.get(k).expect("get").expect("row")))
            .collect();
        assert_eq!(one_by_one, want);
        drop(t);
        drop(r);

        // Record 500 disappears: a big scan over it names its key.
        let txn = db.begin_write().expect("begin");
        txn.open_table(RECORDS)
            .expect("records")
            .remove(500)
            .expect("remove");
        txn.commit().expect("commit");
        let r = db.begin_read().expect("read");
        let t = IndexedRead::open(&r).expect("open");
        let e = Records::Indexed(&t)
            .scan(&Scan::all())
            .expect_err("corrupt");
        let named = format!("key {} names record 500", key(500));
        assert!(
            matches!(&e, StoreError::Corrupt(m) if m.contains(&named)),
            "{e}"
        );
    }

    #[test]
    fn an_index_entry_without_its_record_is_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::create(dir.path().join("i.redb")).expect("create");
        write(&db, |t| t.put("fp1", b"{}").expect("put"));
        let txn = db.begin_write().expect("begin");
        txn.open_table(RECORDS)
            .expect("records")
            .remove(0)
            .expect("remove");
        txn.commit().expect("commit");
        let r = db.begin_read().expect("read");
        let t = IndexedRead::open(&r).expect("open");
        let records = Records::Indexed(&t);
        for e in [
            records.get("fp1").expect_err("get"),
            records.scan(&Scan::all()).expect_err("scan"),
        ] {
            assert!(
                matches!(&e, StoreError::Corrupt(m) if m.contains("key fp1 names record 0")),
                "{e}"
            );
        }
    }
}
