use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use parking_lot::RwLock;

use crate::store::{Scan, Store, StoreError, Table, WriteBatch, WriteOp};

/// A [`Store`] kept in process memory. Batches apply atomically under one lock.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: RwLock<HashMap<Table, BTreeMap<String, Vec<u8>>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Applies a scan to one ordered map; shared by in-memory implementations.
pub(crate) fn scan_map(map: &BTreeMap<String, Vec<u8>>, scan: &Scan) -> Vec<(String, Vec<u8>)> {
    let limit = if scan.limit == 0 {
        usize::MAX
    } else {
        scan.limit
    };
    let in_range = |k: &String| {
        k.starts_with(&scan.prefix)
            && match (&scan.after, scan.reverse) {
                (Some(a), false) => k > a,
                (Some(a), true) => k < a,
                (None, _) => true,
            }
    };
    let range = map.range(scan.prefix.clone()..);
    if scan.reverse {
        let mut rows: Vec<_> = range
            .take_while(|(k, _)| k.starts_with(&scan.prefix))
            .filter(|(k, _)| in_range(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        rows.reverse();
        rows.truncate(limit);
        rows
    } else {
        range
            .take_while(|(k, _)| k.starts_with(&scan.prefix))
            .filter(|(k, _)| in_range(k))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Checks a batch's [`WriteOp::Expect`] preconditions against `tables` as the batch's
/// earlier ops would leave them, before anything is applied (so a failed one leaves
/// the store untouched).
fn check_expected(
    tables: &HashMap<Table, BTreeMap<String, Vec<u8>>>,
    batch: &WriteBatch,
) -> Result<(), StoreError> {
    if !batch
        .ops
        .iter()
        .any(|op| matches!(op, WriteOp::Expect { .. }))
    {
        return Ok(());
    }
    // What the batch's ops so far wrote, over the stored tables.
    let mut staged: HashMap<(Table, &str), Option<&[u8]>> = HashMap::new();
    for op in &batch.ops {
        match op {
            WriteOp::Put { table, key, value } => {
                staged.insert((*table, key), Some(value));
            }
            WriteOp::Delete { table, key } => {
                staged.insert((*table, key), None);
            }
            WriteOp::Expect { table, key, value } => {
                let current = match staged.get(&(*table, key.as_str())) {
                    Some(v) => *v,
                    None => tables
                        .get(table)
                        .and_then(|t| t.get(key))
                        .map(Vec::as_slice),
                };
                if current != value.as_deref() {
                    return Err(StoreError::expectation_failed(*table, key));
                }
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tables
            .read()
            .get(&table)
            .and_then(|t| t.get(key).cloned()))
    }

    async fn scan(&self, table: Table, scan: Scan) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .tables
            .read()
            .get(&table)
            .map(|t| scan_map(t, &scan))
            .unwrap_or_default())
    }

    async fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut tables = self.tables.write();
        check_expected(&tables, &batch)?;
        for op in batch.ops {
            match op {
                WriteOp::Put { table, key, value } => {
                    tables.entry(table).or_default().insert(key, value);
                }
                WriteOp::Delete { table, key } => {
                    if let Some(t) = tables.get_mut(&table) {
                        t.remove(&key);
                    }
                }
                WriteOp::Expect { .. } => {}
            }
        }
        Ok(())
    }

    async fn count(&self, table: Table) -> Result<u64, StoreError> {
        Ok(self
            .tables
            .read()
            .get(&table)
            .map(|t| t.len() as u64)
            .unwrap_or(0))
    }
}
