//! The audit log: one entry per write, by whom, on what.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::Actor;

/// One audited write. Stored in `Table::Audit` under [`AuditEntry::key`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Unique id (monotonic within a process: `<nanos>-<counter>`).
    pub id: String,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: Actor,
    /// What, e.g. `incident.acknowledge`, `silence.create`, `service.put`.
    pub action: String,
    /// On what, `kind/id`, e.g. `incident/inc-0000000001`.
    pub target: String,
    /// Extra details (JSON).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

impl AuditEntry {
    /// Store key: `<unix nanos, 20 digits>/<id>`, so keys sort by time.
    pub fn key(&self) -> String {
        format!("{}/{}", time_key(self.at), self.id)
    }
}

/// A zero-padded, bytewise-sortable form of a timestamp (unix nanoseconds, 20 digits;
/// instants before 1970 sort first as 0).
pub fn time_key(t: Timestamp) -> String {
    let n = t.as_nanosecond().max(0);
    format!("{n:020}")
}

/// Filters for audit queries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Only entries whose target is this (e.g. `incident/inc-0000000001`).
    #[serde(default)]
    pub target: Option<String>,
    /// Only entries by or about this user id: the actor, or the user an entry concerns
    /// (`details.user`, or one of `details.targets`, as paging entries record them).
    #[serde(default)]
    pub user: Option<String>,
    /// At most this many (0 = 100).
    #[serde(default)]
    pub limit: usize,
}

impl AuditQuery {
    /// Whether an entry passes the filter.
    pub fn matches(&self, e: &AuditEntry) -> bool {
        self.target.as_ref().is_none_or(|t| *t == e.target)
            && self.user.as_ref().is_none_or(|u| {
                e.actor.user_id() == Some(u.as_str()) || concerns_user(&e.details, u)
            })
    }
}

/// Whether audit details name `user` as the subject (`user`) or among `targets`.
fn concerns_user(details: &serde_json::Value, user: &str) -> bool {
    details.get("user").and_then(|v| v.as_str()) == Some(user)
        || details
            .get("targets")
            .and_then(|v| v.as_array())
            .is_some_and(|t| t.iter().any(|v| v.as_str() == Some(user)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_time() {
        let a: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let b: Timestamp = "2026-01-01T00:00:01Z".parse().unwrap();
        assert!(time_key(a) < time_key(b));
        assert_eq!(time_key(a).len(), 20);
    }

    #[test]
    fn query_by_user_finds_entries_about_that_user() {
        let mut e = AuditEntry {
            id: "1".into(),
            at: "2026-01-01T00:00:00Z".parse().unwrap(),
            actor: Actor::System,
            action: "incident.paged".into(),
            target: "incident/x".into(),
            details: serde_json::json!({"type": "paged", "user": "bob"}),
        };
        let q = |u: &str| AuditQuery {
            user: Some(u.into()),
            ..Default::default()
        };
        assert!(q("bob").matches(&e));
        assert!(!q("ann").matches(&e));
        e.details = serde_json::json!({"type": "escalated", "level": 2, "targets": ["ann", "cy"]});
        assert!(q("ann").matches(&e));
        assert!(!q("bob").matches(&e));
    }

    #[test]
    fn query_filters_by_user_and_target() {
        let e = AuditEntry {
            id: "1".into(),
            at: "2026-01-01T00:00:00Z".parse().unwrap(),
            actor: Actor::user("ann"),
            action: "incident.acknowledge".into(),
            target: "incident/x".into(),
            details: serde_json::Value::Null,
        };
        let mut q = AuditQuery {
            user: Some("ann".into()),
            ..Default::default()
        };
        assert!(q.matches(&e));
        q.user = Some("bob".into());
        assert!(!q.matches(&e));
        q.user = None;
        q.target = Some("incident/x".into());
        assert!(q.matches(&e));
        q.target = Some("incident/y".into());
        assert!(!q.matches(&e));
    }
}
