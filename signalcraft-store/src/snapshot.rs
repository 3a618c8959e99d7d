//! A shared read snapshot, so reads skip `begin_read` and `open_table`.
//!
//! Readers share one redb read transaction (and its opened tables) until the writer
//! commits: the writer bumps a generation and drops the cached snapshot after every
//! transaction and before answering its callers, so a read that starts after a
//! `commit` returned always gets a snapshot that includes it (read-your-writes). A
//! snapshot opened before a commit is only cached if no commit happened meanwhile.
//! Dropping the cache on every commit also means no old snapshot pins freed pages
//! for long (redb can reuse them once the last reader of that snapshot is done).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use redb::{Database, ReadTransaction, ReadableDatabase};
use signalcraft_core::store::{StoreError, Table};

use crate::error::from_redb;
use crate::indexed::{self, IndexedRead, PlainTable, Records};
use crate::tables;

const N: usize = Table::ALL.len();

/// One read transaction and the data tables opened in it so far.
pub(crate) struct Snapshot {
    txn: ReadTransaction,
    tables: [OnceLock<PlainTable>; N],
    indexed: OnceLock<IndexedRead>,
}

impl Snapshot {
    fn new(txn: ReadTransaction) -> Self {
        Snapshot {
            txn,
            tables: [const { OnceLock::new() }; N],
            indexed: OnceLock::new(),
        }
    }

    /// The read transaction (for internal tables).
    pub(crate) fn txn(&self) -> &ReadTransaction {
        &self.txn
    }

    /// The records of a table in this snapshot, whatever its layout (tables are
    /// opened once per snapshot).
    pub(crate) fn records(&self, table: Table) -> Result<Records<'_>, StoreError> {
        if indexed::is_indexed(table) {
            if let Some(t) = self.indexed.get() {
                return Ok(Records::Indexed(t));
            }
            let t = IndexedRead::open(&self.txn)?;
            return Ok(Records::Indexed(self.indexed.get_or_init(|| t)));
        }
        self.plain(table).map(Records::Plain)
    }

    /// A table in the plain `key → record` layout, opened once.
    fn plain(&self, table: Table) -> Result<&PlainTable, StoreError> {
        let Some(i) = Table::ALL.iter().position(|t| *t == table) else {
            // A table added to core after this build: open it uncached.
            return Err(StoreError::Corrupt(format!(
                "unknown table {}",
                table.name()
            )));
        };
        if let Some(t) = self.tables[i].get() {
            return Ok(t);
        }
        let t = self
            .txn
            .open_table(tables::data(table))
            .map_err(from_redb)?;
        Ok(self.tables[i].get_or_init(|| t))
    }
}

/// The cached snapshot and the commit generation it belongs to.
#[derive(Default)]
pub(crate) struct ReadCache {
    generation: AtomicU64,
    current: RwLock<Option<(u64, Arc<Snapshot>)>>,
}

impl ReadCache {
    /// The latest committed snapshot.
    pub(crate) fn get(&self, db: &RwLock<Database>) -> Result<Arc<Snapshot>, StoreError> {
        let gen_now = self.generation.load(Ordering::Acquire);
        if let Some((g, s)) = self.current.read().as_ref()
            && *g == gen_now
        {
            return Ok(s.clone());
        }
        let txn = db.read().begin_read().map_err(from_redb)?;
        let snap = Arc::new(Snapshot::new(txn));
        let mut cur = self.current.write();
        if self.generation.load(Ordering::Acquire) == gen_now {
            *cur = Some((gen_now, snap.clone()));
        }
        Ok(snap)
    }

    /// Called by the writer after every transaction, before answering callers.
    pub(crate) fn invalidate(&self) {
        let mut cur = self.current.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        cur.take();
    }
}
