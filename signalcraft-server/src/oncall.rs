//! On-call data held by the server: users, teams, schedules and escalation policies,
//! stored one record per object (`Table::Users`, `Teams`, `Schedules`, `Policies`,
//! key = id) and kept compiled in memory as a [`Directory`].
//!
//! Every change builds the whole new [`DirectoryConfig`] and validates it with
//! `Directory::new` (references between objects, escalation loops, schedule rules)
//! before anything is written, so a rejected change leaves store and memory as they
//! were. The REST API and `signalcraft apply` both go through [`OnCall::apply`].

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::Serialize;
use signalcraft_core::CoreError;
use signalcraft_core::escalation::{Directory, DirectoryConfig};
use signalcraft_core::store::{Scan, Store, StoreError, StoreExt, Table, WriteBatch};

/// The four kinds of on-call object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `users`.
    Users,
    /// `teams`.
    Teams,
    /// `schedules`.
    Schedules,
    /// `escalation_policies`.
    EscalationPolicies,
}

impl Kind {
    /// All kinds, in dependency order (users before the teams that list them, …).
    pub const ALL: [Kind; 4] = [
        Kind::Users,
        Kind::Teams,
        Kind::Schedules,
        Kind::EscalationPolicies,
    ];

    /// The config/JSON section name.
    pub fn section(self) -> &'static str {
        match self {
            Kind::Users => "users",
            Kind::Teams => "teams",
            Kind::Schedules => "schedules",
            Kind::EscalationPolicies => "escalation_policies",
        }
    }

    /// Singular noun for messages and audit actions.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Users => "user",
            Kind::Teams => "team",
            Kind::Schedules => "schedule",
            Kind::EscalationPolicies => "escalation_policy",
        }
    }

    /// The store table.
    pub fn table(self) -> Table {
        match self {
            Kind::Users => Table::Users,
            Kind::Teams => Table::Teams,
            Kind::Schedules => Table::Schedules,
            Kind::EscalationPolicies => Table::Policies,
        }
    }
}

/// Objects of every kind as JSON, by kind and id (the form diffs and the API use).
pub type Objects = BTreeMap<Kind, BTreeMap<String, serde_json::Value>>;

/// One change in a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// A new object.
    Create {
        /// Kind.
        kind: Kind,
        /// Id.
        id: String,
    },
    /// A changed object; `fields` are the top-level fields that differ.
    Update {
        /// Kind.
        kind: Kind,
        /// Id.
        id: String,
        /// Changed fields.
        fields: Vec<String>,
    },
    /// An object to remove.
    Delete {
        /// Kind.
        kind: Kind,
        /// Id.
        id: String,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Create { kind, id } => write!(f, "+ create {} {id}", kind.noun()),
            Change::Update { kind, id, fields } => {
                write!(f, "~ update {} {id} ({})", kind.noun(), fields.join(", "))
            }
            Change::Delete { kind, id } => write!(f, "- delete {} {id}", kind.noun()),
        }
    }
}

/// Splits a [`DirectoryConfig`] into JSON objects by kind and id.
pub fn objects_of(cfg: &DirectoryConfig) -> Result<Objects, CoreError> {
    let v = serde_json::to_value(cfg).map_err(|e| CoreError::input("oncall", e.to_string()))?;
    let mut out = Objects::new();
    for k in Kind::ALL {
        let mut m = BTreeMap::new();
        if let Some(items) = v.get(k.section()).and_then(|x| x.as_array()) {
            for item in items {
                let id = item
                    .get("id")
                    .and_then(|x| x.as_str())
                    .unwrap_or_default()
                    .to_string();
                m.insert(id, item.clone());
            }
        }
        out.insert(k, m);
    }
    Ok(out)
}

/// Joins objects back into a [`DirectoryConfig`] (validated by the caller).
pub fn config_of(objs: &Objects) -> Result<DirectoryConfig, CoreError> {
    let mut root = serde_json::Map::new();
    for k in Kind::ALL {
        let items: Vec<serde_json::Value> = objs
            .get(&k)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        root.insert(k.section().into(), items.into());
    }
    let de = serde_json::Value::Object(root);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        CoreError::input(path, e.into_inner().to_string())
    })
}

/// The diff from `current` to `desired`; deletes only when `prune`.
pub fn plan(current: &Objects, desired: &Objects, prune: bool) -> Vec<Change> {
    let empty = BTreeMap::new();
    let mut out = Vec::new();
    for k in Kind::ALL {
        let cur = current.get(&k).unwrap_or(&empty);
        let want = desired.get(&k).unwrap_or(&empty);
        for (id, v) in want {
            match cur.get(id) {
                None => out.push(Change::Create {
                    kind: k,
                    id: id.clone(),
                }),
                Some(old) if old != v => out.push(Change::Update {
                    kind: k,
                    id: id.clone(),
                    fields: changed_fields(old, v),
                }),
                Some(_) => {}
            }
        }
        if prune {
            for id in cur.keys().filter(|id| !want.contains_key(*id)) {
                out.push(Change::Delete {
                    kind: k,
                    id: id.clone(),
                });
            }
        }
    }
    out
}

fn changed_fields(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    let (Some(a), Some(b)) = (old.as_object(), new.as_object()) else {
        return vec!["(value)".into()];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// On-call state: stored objects and the compiled directory. The directory handle is
/// shared with the paging hook, which reads the current directory on every call.
#[derive(Clone, Default)]
pub struct OnCall {
    objects: Arc<RwLock<Objects>>,
    directory: Arc<RwLock<Arc<Directory>>>,
    write: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for OnCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnCall").finish_non_exhaustive()
    }
}

/// Why an on-call change was refused.
#[derive(Debug, thiserror::Error)]
pub enum OnCallError {
    /// The result would be invalid (path names the object and field).
    #[error(transparent)]
    Invalid(#[from] CoreError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<OnCallError> for crate::error::ApiError {
    fn from(e: OnCallError) -> Self {
        match e {
            OnCallError::Invalid(c) => c.into(),
            OnCallError::Store(s) => s.into(),
        }
    }
}

impl OnCall {
    /// Loads every stored object and compiles the directory.
    pub async fn load(store: &dyn Store) -> Result<Self, OnCallError> {
        let mut objs = Objects::new();
        for k in Kind::ALL {
            let rows: Vec<(String, serde_json::Value)> =
                store.scan_json(k.table(), Scan::all()).await?;
            objs.insert(k, rows.into_iter().collect());
        }
        let dir = Directory::new(config_of(&objs)?)?;
        Ok(OnCall {
            objects: Arc::new(RwLock::new(objs)),
            directory: Arc::new(RwLock::new(Arc::new(dir))),
            write: Arc::default(),
        })
    }

    /// The compiled directory (a snapshot).
    pub fn directory(&self) -> Arc<Directory> {
        self.directory.read().clone()
    }

    /// The shared directory handle (for the paging hook).
    pub fn directory_handle(&self) -> Arc<RwLock<Arc<Directory>>> {
        self.directory.clone()
    }

    /// Every stored object.
    pub fn objects(&self) -> Objects {
        self.objects.read().clone()
    }

    /// Objects of one kind.
    pub fn list(&self, kind: Kind) -> Vec<serde_json::Value> {
        self.objects
            .read()
            .get(&kind)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// One object.
    pub fn get(&self, kind: Kind, id: &str) -> Option<serde_json::Value> {
        self.objects.read().get(&kind)?.get(id).cloned()
    }

    /// Applies a set of changes atomically: validate the result, write, swap.
    /// `put` objects are created or replaced; `delete` ids removed.
    pub async fn apply(
        &self,
        store: &dyn Store,
        put: Vec<(Kind, serde_json::Value)>,
        delete: Vec<(Kind, String)>,
    ) -> Result<Vec<Change>, OnCallError> {
        let _w = self.write.lock().await;
        let current = self.objects();
        let mut next = current.clone();
        for (k, v) in put {
            let id = v
                .get("id")
                .and_then(|x| x.as_str())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| CoreError::input("id", format!("a {} needs an id", k.noun())))?
                .to_string();
            next.entry(k).or_default().insert(id, v);
        }
        for (k, id) in delete {
            if next.entry(k).or_default().remove(&id).is_none() {
                return Err(CoreError::NotFound { kind: k.noun(), id }.into());
            }
        }
        // Normalize through the typed form so stored JSON is canonical.
        let cfg = config_of(&next)?;
        let dir = Directory::new(cfg.clone())?;
        let next = objects_of(&cfg)?;
        let changes = plan(&current, &next, true);
        let mut batch = WriteBatch::new();
        for c in &changes {
            match c {
                Change::Create { kind, id } | Change::Update { kind, id, .. } => {
                    batch.put(kind.table(), id.clone(), &next[kind][id])?;
                }
                Change::Delete { kind, id } => {
                    batch.delete(kind.table(), id.clone());
                }
            }
        }
        if !batch.is_empty() {
            store.commit(batch).await?;
        }
        *self.objects.write() = next;
        *self.directory.write() = Arc::new(dir);
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use signalcraft_core::memory::MemoryStore;

    #[tokio::test]
    async fn invalid_changes_leave_everything_unchanged() {
        let store = MemoryStore::new();
        let oc = OnCall::load(&store).await.unwrap();
        let changes = oc
            .apply(
                &store,
                vec![(Kind::Users, json!({"id": "ann", "name": "Ann"}))],
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            changes,
            vec![Change::Create {
                kind: Kind::Users,
                id: "ann".into()
            }]
        );
        assert_eq!(store.count(Table::Users).await.unwrap(), 1);
        // A user with an unknown field is refused, naming the path.
        let e = oc
            .apply(
                &store,
                vec![(Kind::Users, json!({"id": "bob", "name": "Bob", "nmae": 1}))],
                vec![],
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("users[1]"), "{e}");
        assert_eq!(store.count(Table::Users).await.unwrap(), 1);
        assert!(oc.get(Kind::Users, "bob").is_none());
        // Reloading from the store gives the same objects.
        let oc2 = OnCall::load(&store).await.unwrap();
        assert_eq!(oc2.objects(), oc.objects());
    }

    #[test]
    fn plan_names_changed_fields() {
        let mut cur = Objects::new();
        cur.entry(Kind::Users)
            .or_default()
            .insert("ann".into(), json!({"id":"ann","name":"Ann"}));
        cur.entry(Kind::Users)
            .or_default()
            .insert("old".into(), json!({"id":"old","name":"Old"}));
        let mut want = Objects::new();
        want.entry(Kind::Users)
            .or_default()
            .insert("ann".into(), json!({"id":"ann","name":"Ann B"}));
        want.entry(Kind::Teams)
            .or_default()
            .insert("ops".into(), json!({"id":"ops"}));
        let p = plan(&cur, &want, false);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].to_string(), "~ update user ann (name)");
        assert_eq!(p[1].to_string(), "+ create team ops");
        let p = plan(&cur, &want, true);
        assert!(p.iter().any(|c| c.to_string() == "- delete user old"));
    }
}
