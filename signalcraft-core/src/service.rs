//! The service catalog: what an alert is about, who owns it, and how to fix it.
//!
//! Store key: `Table::Services` by [`Service::id`].

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::duration::parse_duration;
use crate::model::{ChangeEvent, Link};

/// A service level objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Name, e.g. `availability`.
    pub name: String,
    /// Target in percent, `0 < objective <= 100`, e.g. `99.9`.
    pub objective: f64,
    /// Window as a duration string, e.g. `30d`.
    pub window: String,
}

/// A service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Id (routes refer to it), `[A-Za-z0-9._-]+`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Owning team id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_team: Option<String>,
    /// Slack channel for the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_channel: Option<String>,
    /// Source repository URL (links change events from forges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_url: Option<String>,
    /// Runbook links.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runbooks: Vec<Link>,
    /// SLOs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slos: Vec<Slo>,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl Service {
    /// Validates; errors name the field (prefixed by `path`).
    pub fn validate(&self, path: &str) -> Result<(), CoreError> {
        let f = |field: &str| {
            if path.is_empty() {
                field.to_string()
            } else {
                format!("{path}.{field}")
            }
        };
        if self.id.is_empty()
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(CoreError::input(
                f("id"),
                "must be non-empty [A-Za-z0-9._-]",
            ));
        }
        if self.name.trim().is_empty() {
            return Err(CoreError::input(f("name"), "must not be empty"));
        }
        for (i, r) in self.runbooks.iter().enumerate() {
            if r.href.trim().is_empty() {
                return Err(CoreError::input(
                    f(&format!("runbooks[{i}].href")),
                    "must not be empty",
                ));
            }
        }
        for (i, s) in self.slos.iter().enumerate() {
            if !(s.objective > 0.0 && s.objective <= 100.0) {
                return Err(CoreError::input(
                    f(&format!("slos[{i}].objective")),
                    "must be in (0, 100]",
                ));
            }
            parse_duration(&s.window)
                .map_err(|e| CoreError::input(f(&format!("slos[{i}].window")), e))?;
        }
        Ok(())
    }

    /// Whether a change event concerns this service: its service hint equals the id or
    /// name (case-insensitive), or its repository equals the repository URL (ignoring a
    /// trailing `/` or `.git`).
    pub fn owns_change(&self, c: &ChangeEvent) -> bool {
        let hint = c.service.as_deref().map(str::trim);
        if hint
            .is_some_and(|h| h.eq_ignore_ascii_case(&self.id) || h.eq_ignore_ascii_case(&self.name))
        {
            return true;
        }
        let norm = |u: &str| {
            u.trim()
                .trim_end_matches('/')
                .trim_end_matches(".git")
                .to_ascii_lowercase()
        };
        match (&self.repository_url, c.repository.as_deref().or(hint)) {
            (Some(mine), Some(theirs)) => norm(mine) == norm(theirs),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Source;

    fn svc() -> Service {
        serde_json::from_value(serde_json::json!({
            "id": "api", "name": "Public API", "owner_team": "platform",
            "repository_url": "https://github.com/acme/api",
            "runbooks": [{"href": "https://wiki/api"}],
            "slos": [{"name": "availability", "objective": 99.9, "window": "30d"}],
            "tags": ["tier1"]
        }))
        .unwrap()
    }

    fn change(service: Option<&str>, repo: Option<&str>) -> ChangeEvent {
        ChangeEvent {
            source: Source {
                provider: "github".into(),
                integration: "gh".into(),
            },
            summary: "deploy".into(),
            timestamp: "2026-01-01T00:00:00Z".parse().unwrap(),
            service: service.map(Into::into),
            repository: repo.map(Into::into),
            labels: Default::default(),
            links: vec![],
            details: serde_json::Value::Null,
            raw: Default::default(),
        }
    }

    #[test]
    fn validates_and_rejects_naming_fields() {
        assert!(svc().validate("").is_ok());
        let mut s = svc();
        s.slos[0].objective = 120.0;
        assert!(
            s.validate("services[0]")
                .unwrap_err()
                .to_string()
                .contains("services[0].slos[0].objective")
        );
        let mut s = svc();
        s.slos[0].window = "month".into();
        assert!(
            s.validate("")
                .unwrap_err()
                .to_string()
                .contains("slos[0].window")
        );
        let mut s = svc();
        s.id = "a b".into();
        assert!(s.validate("").is_err());
        assert!(
            serde_json::from_value::<Service>(serde_json::json!({"id":"a","name":"b","owner":"x"}))
                .is_err()
        );
    }

    #[test]
    fn change_matching_by_name_or_repository() {
        let s = svc();
        assert!(s.owns_change(&change(Some("public api"), None)));
        assert!(s.owns_change(&change(Some("api"), None)));
        assert!(s.owns_change(&change(None, Some("https://github.com/acme/api.git"))));
        assert!(s.owns_change(&change(Some("https://github.com/acme/api/"), None)));
        assert!(!s.owns_change(&change(Some("web"), Some("https://github.com/acme/web"))));
    }
}
