//! Schema versioning and migrations.
//!
//! The version lives in the internal `__schema` table under `"version"`. On open,
//! inside one write transaction (so a migration is all-or-nothing):
//! * a database with no tables at all is new: every table is created and stamped
//!   with [`SCHEMA_VERSION`];
//! * an older version is migrated step by step with [`MIGRATIONS`] (each step moves
//!   from version `from` to `from + 1`), then stamped;
//! * a newer version is refused with [`StoreError::SchemaTooNew`] and left untouched;
//! * a database that has tables but no version is not a SignalCraft store:
//!   [`StoreError::Corrupt`].
//!
//! Version history:
//! * **1** — the first layout: one `key → record` table per [`Table`](signalcraft_core::store::Table).
//! * **2** — the alerts move to the indexed layout of [`crate::indexed`]
//!   (`alerts.records`, `alerts.index`, `alerts.index.recent` instead of `alerts`),
//!   so new alerts are appended instead of rewriting the table's pages. Migration:
//!   every record of `alerts` is copied in key order (into `alerts.index`), then
//!   `alerts` is deleted.

use redb::{ReadableTable, TableHandle, WriteTransaction};
use signalcraft_core::store::StoreError;

use crate::error::from_redb;
use crate::tables::{self, SCHEMA};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 2;

const VERSION_KEY: &str = "version";

/// One migration step from `from` to `from + 1`, applied inside the open transaction.
#[derive(Clone, Copy)]
pub(crate) struct Migration {
    /// The version it migrates from.
    pub from: u32,
    /// What it changes (for logs and docs).
    #[allow(dead_code)]
    pub description: &'static str,
    /// The change.
    pub apply: fn(&WriteTransaction) -> Result<(), StoreError>,
}

/// Every migration of this build, in order.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    from: 1,
    description: "alerts move to the indexed layout (alerts.records + alerts.index)",
    apply: crate::indexed::migrate_from_plain,
}];

/// Brings the database to `target`, creating or migrating it. Returns the version
/// found on disk (`None` for a new database).
pub(crate) fn prepare(
    txn: &WriteTransaction,
    migrations: &[Migration],
    target: u32,
) -> Result<Option<u32>, StoreError> {
    let found = read_version(txn)?;
    match found {
        None => {
            let foreign: Vec<String> = txn
                .list_tables()
                .map_err(from_redb)?
                .map(|h| h.name().to_owned())
                .filter(|n| n != SCHEMA.name())
                .collect();
            if !foreign.is_empty() {
                return Err(StoreError::Corrupt(format!(
                    "database has tables ({}) but no schema version: not a SignalCraft store",
                    foreign.join(", ")
                )));
            }
        }
        Some(v) if v > target => {
            return Err(StoreError::SchemaTooNew {
                found: v,
                supported: target,
            });
        }
        Some(mut v) => {
            while v < target {
                let step = migrations.iter().find(|m| m.from == v).ok_or_else(|| {
                    StoreError::Corrupt(format!("no migration from schema version {v}"))
                })?;
                (step.apply)(txn)?;
                v += 1;
            }
        }
    }
    tables::create_all(txn)?;
    txn.open_table(SCHEMA)
        .map_err(from_redb)?
        .insert(VERSION_KEY, u64::from(target))
        .map_err(from_redb)?;
    Ok(found)
}

/// The version stamped in the database, if any.
pub(crate) fn read_version(txn: &WriteTransaction) -> Result<Option<u32>, StoreError> {
    let t = txn.open_table(SCHEMA).map_err(from_redb)?;
    let v = t.get(VERSION_KEY).map_err(from_redb)?.map(|g| g.value());
    match v {
        None => Ok(None),
        Some(v) => u32::try_from(v)
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("schema version {v} out of range"))),
    }
}

#[cfg(test)]
mod tests {
    use redb::{Database, ReadableDatabase};
    use signalcraft_core::store::Table;

    use super::*;

    /// The version after this build's, for a test-only migration.
    const NEXT: u32 = SCHEMA_VERSION + 1;

    /// A test-only migration to [`NEXT`]: every incident record gains a `schema` field.
    fn add_schema_field(txn: &WriteTransaction) -> Result<(), StoreError> {
        let mut t = txn
            .open_table(tables::data(Table::Incidents))
            .map_err(from_redb)?;
        let mut rows = Vec::new();
        for e in t.iter().map_err(from_redb)? {
            let (k, v) = e.map_err(from_redb)?;
            let mut json: serde_json::Value =
                serde_json::from_slice(v.value()).map_err(|e| StoreError::Codec(e.to_string()))?;
            json["schema"] = NEXT.into();
            rows.push((
                k.value().to_owned(),
                serde_json::to_vec(&json).unwrap_or_default(),
            ));
        }
        for (k, v) in rows {
            t.insert(k.as_str(), v.as_slice()).map_err(from_redb)?;
        }
        Ok(())
    }

    /// This build's migrations plus the test-only step to [`NEXT`].
    fn to_next() -> Vec<Migration> {
        let mut m = MIGRATIONS.to_vec();
        m.push(Migration {
            from: SCHEMA_VERSION,
            description: "incidents gain a schema field",
            apply: add_schema_field,
        });
        m
    }

    fn in_txn<R>(db: &Database, f: impl FnOnce(&WriteTransaction) -> R) -> R {
        let txn = db.begin_write().expect("begin");
        let r = f(&txn);
        txn.commit().expect("commit");
        r
    }

    #[test]
    fn every_step_from_one_to_this_version_exists() {
        for v in 1..SCHEMA_VERSION {
            assert_eq!(
                MIGRATIONS.iter().filter(|m| m.from == v).count(),
                1,
                "migration from {v}"
            );
        }
        assert!(MIGRATIONS.iter().all(|m| m.from < SCHEMA_VERSION));
    }

    #[test]
    fn new_database_is_stamped_and_migrations_run_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::create(dir.path().join("fixture.redb")).expect("create");
        // A database of this version with one incident.
        assert_eq!(
            in_txn(&db, |t| prepare(t, MIGRATIONS, SCHEMA_VERSION)).expect("prepare"),
            None
        );
        in_txn(&db, |t| {
            t.open_table(tables::data(Table::Incidents))
                .expect("table")
                .insert("inc-1", br#"{"state":"open"}"#.as_slice())
                .expect("insert");
        });
        // Opening with a build that knows the next version migrates it.
        let next = to_next();
        assert_eq!(
            in_txn(&db, |t| prepare(t, &next, NEXT)).expect("migrate"),
            Some(SCHEMA_VERSION)
        );
        let r = db.begin_read().expect("read");
        let t = r.open_table(tables::data(Table::Incidents)).expect("table");
        let v: serde_json::Value =
            serde_json::from_slice(t.get("inc-1").expect("get").expect("row").value())
                .expect("json");
        assert_eq!(v["schema"], NEXT);
        assert_eq!(v["state"], "open");
        drop((t, r));
        // Re-opening at the next version runs nothing again.
        assert_eq!(
            in_txn(&db, |t| prepare(t, &next, NEXT)).expect("reopen"),
            Some(NEXT)
        );
        // This build refuses the newer database.
        let e = in_txn(&db, |t| prepare(t, MIGRATIONS, SCHEMA_VERSION)).expect_err("too new");
        assert_eq!(
            e,
            StoreError::SchemaTooNew {
                found: NEXT,
                supported: SCHEMA_VERSION
            }
        );
    }

    #[test]
    fn missing_migration_step_and_foreign_database_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::create(dir.path().join("a.redb")).expect("create");
        in_txn(&db, |t| prepare(t, MIGRATIONS, SCHEMA_VERSION)).expect("current");
        let e = in_txn(&db, |t| prepare(t, MIGRATIONS, SCHEMA_VERSION + 2)).expect_err("gap");
        let want = format!("no migration from schema version {SCHEMA_VERSION}");
        assert!(
            matches!(e, StoreError::Corrupt(ref m) if m.contains(&want)),
            "{e}"
        );

        let db2 = Database::create(dir.path().join("b.redb")).expect("create");
        in_txn(&db2, |t| {
            let def: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("other_app");
            t.open_table(def)
                .expect("t")
                .insert("x", 1)
                .expect("insert");
        });
        let e = in_txn(&db2, |t| prepare(t, MIGRATIONS, SCHEMA_VERSION)).expect_err("foreign");
        assert!(e.to_string().contains("not a SignalCraft store"), "{e}");
    }
}
