//! The indexed layout of [`Table::Alerts`]: records in insertion order, keys in an index.
//!
//! Alert keys are fingerprints (hashes), so they arrive in random order. Stored in one
//! `key → record` B-tree, every big batch of new alerts lands on nearly every leaf and
//! copy-on-write rewrites almost the whole table per commit (a 20,000-alert batch
//! rewrote ~all of a 60 MB table). So the alerts live in three tables instead:
//!
//! * `alerts.records`: sequence number (`u64`) → record bytes. A new key gets the
//!   next sequence number (the largest in the table + 1), so new records are appended
//!   at the right edge of the B-tree and a batch writes only new pages there (redb
//!   packs ascending appends into full pages).
//! * `alerts.index`: key → sequence number. Entries are ~30 bytes, so a batch touches
//!   about 1/20 of the pages it would touch in a `key → record` table.
//! * `alerts.index.recent`: the same for keys added since the last merge, at most
//!   max(256, 1/8 of `alerts.index`) entries. Random keys still land on most leaves of
//!   the index they go to; sending them to this small one first means a small commit
//!   rewrites a few of its pages instead of most of `alerts.index`. The keys a run of
//!   writes adds are collected and written at its end, in key order: into the recent
//!   index while it stays within its bound, else, together with the recent index's
//!   entries, into `alerts.index` (rewriting it about once per 1/8 of its size in new
//!   keys; a big batch goes there directly), after which the recent index is emptied.
//!   A key is in one of the two indexes, never both.
//!
//! A put of an existing key overwrites the record at its sequence number in place:
//! the indexes are only read, and one record page is rewritten (moving it to a new
//! number would rewrite that same page to delete it, plus an index page and the
//! right edge). A delete removes the index entry and the record. `get` and `scan` go
//! through the indexes (so scans are in key order, as the
//! [`Store`](signalcraft_core::store::Store) contract requires), `count` adds up their
//! lengths. Sequence numbers are private to this module: nothing outside it sees
//! them, and one freed by deleting the newest record may be handed out again.

use std::collections::HashMap;

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
/// Key → sequence number for keys added since the last merge into [`INDEX`].
pub(crate) const RECENT: TableDefinition<&str, u64> = TableDefinition::new("alerts.index.recent");

/// [`RECENT`] is merged into [`INDEX`] once it holds more than this many entries…
pub(crate) const RECENT_MIN: u64 = 256;
/// … and more than [`INDEX`]'s length divided by this.
const RECENT_SHARE: u64 = 8;

/// Whether a recent index of `recent` entries beside a main index of `main` entries
/// is due to be merged.
fn merge_due(recent: u64, main: u64) -> bool {
    recent > RECENT_MIN.max(main / RECENT_SHARE)
}

/// Whether `table` is stored in the indexed layout (else as one `key → record` table).
pub(crate) fn is_indexed(table: Table) -> bool {
    table == Table::Alerts
}

/// Creates the tables if they do not exist.
pub(crate) fn create(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(INDEX).map_err(from_redb)?;
    txn.open_table(RECENT).map_err(from_redb)?;
    txn.open_table(RECORDS).map_err(from_redb)?;
    Ok(())
}

/// The indexed tables opened for writing, with the next free sequence number and
/// the keys added so far (indexed by [`IndexedMut::finish`]).
pub(crate) struct IndexedMut<'txn> {
    index: redb::Table<'txn, &'static str, u64>,
    recent: redb::Table<'txn, &'static str, u64>,
    records: redb::Table<'txn, u64, &'static [u8]>,
    next: u64,
    added: HashMap<String, u64>,
}

impl<'txn> IndexedMut<'txn> {
    /// Opens the tables in `txn`. Call [`IndexedMut::finish`] after the last write.
    pub(crate) fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        let index = txn.open_table(INDEX).map_err(from_redb)?;
        let recent = txn.open_table(RECENT).map_err(from_redb)?;
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
            recent,
            records,
            next,
            added: HashMap::new(),
        })
    }

    /// Writes the index entries of the keys added: into [`RECENT`], or, once that
    /// would outgrow its bound, with [`RECENT`]'s entries into [`INDEX`] (then
    /// [`RECENT`] is emptied). Without it the added keys are not indexed.
    pub(crate) fn finish(self, txn: &WriteTransaction) -> Result<(), StoreError> {
        let IndexedMut {
            mut index,
            mut recent,
            added,
            ..
        } = self;
        if added.is_empty() {
            return Ok(());
        }
        let mut added: Vec<(String, u64)> = added.into_iter().collect();
        added.sort_unstable();
        let recent_len = recent.len().map_err(from_redb)?;
        if !merge_due(
            recent_len + added.len() as u64,
            index.len().map_err(from_redb)?,
        ) {
            for (k, seq) in &added {
                recent.insert(k.as_str(), *seq).map_err(from_redb)?;
            }
            return Ok(());
        }
        for e in recent.iter().map_err(from_redb)? {
            let (k, seq) = e.map_err(from_redb)?;
            index.insert(k.value(), seq.value()).map_err(from_redb)?;
        }
        for (k, seq) in &added {
            index.insert(k.as_str(), *seq).map_err(from_redb)?;
        }
        drop(recent);
        // Deleting the table frees its pages at once; readers expect it, so it is
        // created again, empty.
        txn.delete_table(RECENT).map_err(from_redb)?;
        txn.open_table(RECENT).map_err(from_redb)?;
        Ok(())
    }

    /// The sequence number of `key`, if it is stored.
    fn seq(&self, key: &str) -> Result<Option<u64>, StoreError> {
        if let Some(&seq) = self.added.get(key) {
            return Ok(Some(seq));
        }
        if let Some(g) = self.recent.get(key).map_err(from_redb)? {
            return Ok(Some(g.value()));
        }
        Ok(self.index.get(key).map_err(from_redb)?.map(|g| g.value()))
    }

    /// The record of `key` as this transaction's writes so far leave it.
    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(seq) = self.seq(key)? else {
            return Ok(None);
        };
        Ok(self
            .records
            .get(seq)
            .map_err(from_redb)?
            .map(|g| g.value().to_vec()))
    }

    /// Inserts or replaces `key` (in place when it exists, appended when it is new).
    pub(crate) fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let seq = match self.seq(key)? {
            Some(seq) => seq,
            None => {
                let seq = self.next;
                self.added.insert(key.to_owned(), seq);
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
        let mut removed = self.added.remove(key);
        if removed.is_none() {
            removed = self
                .recent
                .remove(key)
                .map_err(from_redb)?
                .map(|g| g.value());
        }
        if removed.is_none() {
            removed = self
                .index
                .remove(key)
                .map_err(from_redb)?
                .map(|g| g.value());
        }
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
    recent: ReadOnlyTable<&'static str, u64>,
    records: ReadOnlyTable<u64, &'static [u8]>,
}

impl IndexedRead {
    /// Opens the tables in `txn`.
    pub(crate) fn open(txn: &ReadTransaction) -> Result<Self, StoreError> {
        Ok(IndexedRead {
            index: txn.open_table(INDEX).map_err(from_redb)?,
            recent: txn.open_table(RECENT).map_err(from_redb)?,
            records: txn.open_table(RECORDS).map_err(from_redb)?,
        })
    }

    /// The index (for copying the file as is).
    pub(crate) fn index(&self) -> &ReadOnlyTable<&'static str, u64> {
        &self.index
    }

    /// The recent index (for copying the file as is).
    pub(crate) fn recent(&self) -> &ReadOnlyTable<&'static str, u64> {
        &self.recent
    }

    /// The sequence number of `key`, if it is stored.
    fn seq(&self, key: &str) -> Result<Option<u64>, StoreError> {
        if let Some(g) = self.recent.get(key).map_err(from_redb)? {
            return Ok(Some(g.value()));
        }
        Ok(self.index.get(key).map_err(from_redb)?.map(|g| g.value()))
    }

    /// The index entries a [`Scan`] selects from both indexes, in scan order.
    fn scan_entries(&self, scan: &Scan) -> Result<Vec<(String, u64)>, StoreError> {
        let main = tables::scan_table(&self.index, scan, |_, seq| Ok(seq))?;
        let recent = tables::scan_table(&self.recent, scan, |_, seq| Ok(seq))?;
        if recent.is_empty() {
            return Ok(main);
        }
        // Each list holds the first `limit` of its own keys, so the first `limit` of
        // their merge are the first `limit` of all.
        let limit = if scan.limit == 0 {
            usize::MAX
        } else {
            scan.limit
        };
        let mut out = Vec::with_capacity((main.len() + recent.len()).min(limit));
        let (mut a, mut b) = (main.into_iter().peekable(), recent.into_iter().peekable());
        while out.len() < limit {
            let take_a = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => (x.0 < y.0) != scan.reverse,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            out.extend(if take_a { a.next() } else { b.next() });
        }
        Ok(out)
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
            Records::Indexed(t) => t.seq(key)?.map(|seq| t.record(key, seq)).transpose(),
        }
    }

    /// The records a [`Scan`] selects, in key order (see [`tables::scan_table`]).
    pub(crate) fn scan(&self, scan: &Scan) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        match self {
            Records::Plain(t) => tables::scan_table(*t, scan, |_, v: &[u8]| Ok(v.to_vec())),
            Records::Indexed(t) => t.records_of(t.scan_entries(scan)?),
        }
    }

    /// Number of records.
    pub(crate) fn len(&self) -> Result<u64, StoreError> {
        match self {
            Records::Plain(t) => t.len().map_err(from_redb),
            Records::Indexed(t) => {
                Ok(t.index.len().map_err(from_redb)? + t.recent.len().map_err(from_redb)?)
            }
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
                // The recent index is small (about 1/8 of the main one): hold its
                // entries and interleave them with the main index as it streams by.
                let recent = tables::scan_table(&t.recent, &Scan::all(), |_, seq| Ok(seq))?;
                let mut recent = recent.into_iter().peekable();
                for e in t.index.iter().map_err(from_redb)? {
                    let (k, seq) = e.map_err(from_redb)?;
                    let key = k.value();
                    while let Some((rk, rseq)) = recent.next_if(|(rk, _)| rk.as_str() < key) {
                        f(&rk, &t.record(&rk, rseq)?)?;
                    }
                    f(key, &t.record(key, seq.value())?)?;
                }
                for (rk, rseq) in recent {
                    f(&rk, &t.record(&rk, rseq)?)?;
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
        let mut t = IndexedMut::open(&txn).expect("open");
        f(&mut t);
        t.finish(&txn).expect("finish");
        txn.commit().expect("commit");
    }

    fn entries(t: &ReadOnlyTable<&'static str, u64>) -> Vec<(String, u64)> {
        t.iter()
            .expect("iter")
            .map(|e| {
                let (k, v) = e.expect("entry");
                (k.value().to_owned(), v.value())
            })
            .collect()
    }

    /// `(key, sequence number)` of every entry of both indexes (sorted), and the
    /// sequence numbers held.
    fn layout(db: &Database) -> (Vec<(String, u64)>, Vec<u64>) {
        let r = db.begin_read().expect("read");
        let t = IndexedRead::open(&r).expect("open");
        let mut index = entries(t.index());
        let recent = entries(t.recent());
        assert!(
            recent
                .iter()
                .all(|(k, _)| index.iter().all(|(i, _)| i != k)),
            "a key in both indexes"
        );
        index.extend(recent);
        index.sort();
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

    /// New keys go to the recent index until it would outgrow its bound; then its
    /// entries and the new ones go to the main index. Reads see both.
    #[test]
    fn the_recent_index_is_merged_once_it_outgrows_its_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::create(dir.path().join("i.redb")).expect("create");
        let n = RECENT_MIN;
        let key = |i: u64| format!("{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        write(&db, |t| {
            for i in 0..n {
                t.put(&key(i), &i.to_be_bytes()).expect("put");
            }
            // Added and removed in the same run: never indexed.
            t.put("gone", b"x").expect("put");
            t.delete("gone").expect("delete");
        });
        let sizes = |db: &Database| {
            let r = db.begin_read().expect("read");
            let t = IndexedRead::open(&r).expect("open");
            (
                t.index().len().expect("len"),
                t.recent().len().expect("len"),
            )
        };
        assert_eq!(sizes(&db), (0, n), "new keys wait in the recent index");
        // Deleting and updating reach keys in the recent index; ten more keys make
        // it outgrow its bound.
        write(&db, |t| {
            t.delete(&key(0)).expect("delete");
            t.put(&key(1), b"updated").expect("put");
            for i in n..n + 10 {
                t.put(&key(i), &i.to_be_bytes()).expect("put");
                t.put(&key(i), &i.to_be_bytes()).expect("put twice");
            }
        });
        let total = n + 10 - 1;
        assert_eq!(sizes(&db), (total, 0), "merged into the main index");
        write(&db, |t| {
            t.put("new", b"new").expect("put");
            t.delete(&key(2)).expect("delete");
        });
        assert_eq!(sizes(&db), (total - 1, 1));
        let r = db.begin_read().expect("read");
        let t = IndexedRead::open(&r).expect("open");
        let records = Records::Indexed(&t);
        assert_eq!(records.len().expect("len"), total);
        assert_eq!(records.get(&key(0)).expect("get"), None);
        assert_eq!(records.get(&key(2)).expect("get"), None);
        assert_eq!(records.get("gone").expect("get"), None);
        assert_eq!(
            records.get(&key(1)).expect("get").as_deref(),
            Some(&b"updated"[..])
        );
        assert_eq!(
            records.get("new").expect("get").as_deref(),
            Some(&b"new"[..])
        );
        let all = records.scan(&Scan::all()).expect("scan");
        let mut keys: Vec<String> = (3..n + 10).map(key).chain([key(1), "new".into()]).collect();
        keys.sort();
        assert_eq!(all.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), keys);
        let mut streamed = Vec::new();
        records
            .for_each(|k, v| {
                streamed.push((k.to_owned(), v.to_vec()));
                Ok::<(), StoreError>(())
            })
            .expect("for_each");
        assert_eq!(streamed, all);
        // Every record is reachable and no sequence number is used twice.
        let (index, seqs) = layout(&db);
        assert_eq!(index.len() as u64, total);
        assert_eq!(seqs.len() as u64, total);
    }

    #[test]
    fn merge_is_due_past_the_minimum_and_an_eighth_of_the_index() {
        assert!(!merge_due(RECENT_MIN, 0));
        assert!(merge_due(RECENT_MIN + 1, 0));
        assert!(!merge_due(RECENT_MIN + 1, 8 * (RECENT_MIN + 1)));
        assert!(merge_due(12_501, 100_000));
        assert!(!merge_due(12_500, 100_000));
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
