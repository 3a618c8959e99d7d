//! A redb file's layout read with redb directly, below the store.

use std::path::Path;

use redb::{ReadableDatabase, TableDefinition, TableHandle};

/// The file's table names and its stamped schema version.
pub fn raw_layout(path: &Path) -> (Vec<String>, u64) {
    let db = redb::Database::open(path).expect("raw open");
    let r = db.begin_read().expect("read");
    let names = r
        .list_tables()
        .expect("list")
        .map(|h| h.name().to_owned())
        .collect();
    let schema: TableDefinition<&str, u64> = TableDefinition::new("__schema");
    let version = r
        .open_table(schema)
        .expect("schema")
        .get("version")
        .expect("get")
        .expect("version")
        .value();
    (names, version)
}
