//! Engine configuration: the route tree, time intervals, inhibit rules and services.
//!
//! [`EngineConfig`] is the serde form (JSON/TOML/YAML; unknown fields rejected;
//! durations and matchers as strings). [`EngineConfig::compile`] validates everything and
//! returns [`CoreError::InvalidConfig`] whose path names the offending value, e.g.
//! `route.routes[2].matchers[0]` or `time_intervals[1].time_intervals[0].location`.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::duration::parse_duration;
use crate::inhibit::{InhibitRule, InhibitRuleConfig};
use crate::routing::{RouteConfig, RouteTree, TimeInterval, TimeIntervalConfig};
use crate::service::Service;

/// Default window of change events shown with incidents and notifications.
pub const DEFAULT_CHANGE_WINDOW: Duration = Duration::from_secs(2 * 3600);

/// Default of [`EngineConfig::closed_incident_memory_age`]: one hour.
pub const DEFAULT_CLOSED_INCIDENT_MEMORY_AGE: Duration = Duration::from_secs(3600);

/// Default of [`EngineConfig::expired_silence_age`]: 120 hours (Alertmanager's
/// `--data.retention` default).
pub const DEFAULT_EXPIRED_SILENCE_AGE: Duration = Duration::from_secs(120 * 3600);

/// The engine's configuration as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// The root route.
    #[serde(default)]
    pub route: RouteConfig,
    /// Named time intervals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub time_intervals: Vec<TimeIntervalConfig>,
    /// Inhibit rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// Services seeded into the catalog at startup (upserted; API changes persist).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    /// The server's external URL (links in notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_url: Option<String>,
    /// How far back change events count as "recent" (default `2h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_window: Option<String>,
    /// How long a closed incident stays in the engine's memory after it closed
    /// (default `1h`; `0s`: evicted at the next sweep). An evicted incident stays in
    /// the Store (until store retention removes it) and is read from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_incident_memory_age: Option<String>,
    /// How long an expired silence stays listed after its `ends_at` (default `120h`,
    /// Alertmanager's `--data.retention`; `0s`: removed at the next sweep). A silence
    /// that ended longer ago than this is removed from the engine's memory and its
    /// stored record is deleted (durably, through the engine's commit path); at
    /// start-up such silences are not loaded and their records are deleted by the
    /// first sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_silence_age: Option<String>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct CompiledConfig {
    /// The route tree.
    pub routes: RouteTree,
    /// Time intervals, indexed as the routes refer to them.
    pub intervals: Vec<TimeInterval>,
    /// Inhibit rules.
    pub inhibit_rules: Vec<InhibitRule>,
    /// Seed services.
    pub services: Vec<Service>,
    /// External URL.
    pub external_url: Option<String>,
    /// Change window.
    pub change_window: Duration,
    /// How long a closed incident stays in memory after it closed.
    pub closed_incident_memory_age: Duration,
    /// How long an expired silence stays after it ended.
    pub expired_silence_age: Duration,
}

impl EngineConfig {
    /// A configuration with just a root route.
    pub fn with_route(route: RouteConfig) -> Self {
        EngineConfig {
            route,
            ..Default::default()
        }
    }

    /// Validates and compiles.
    pub fn compile(&self) -> Result<CompiledConfig, CoreError> {
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut intervals = Vec::with_capacity(self.time_intervals.len());
        for (i, t) in self.time_intervals.iter().enumerate() {
            let path = format!("time_intervals[{i}]");
            if names.insert(t.name.as_str(), i).is_some() {
                return Err(CoreError::config(
                    format!("{path}.name"),
                    format!("duplicate time interval {:?}", t.name),
                ));
            }
            intervals.push(t.compile(&path)?);
        }
        let routes = RouteTree::compile(&self.route, &|n| names.get(n).copied())?;
        let inhibit_rules = self
            .inhibit_rules
            .iter()
            .enumerate()
            .map(|(i, r)| r.compile(&format!("inhibit_rules[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut seen = HashMap::new();
        for (i, s) in self.services.iter().enumerate() {
            let path = format!("services[{i}]");
            s.validate(&path).map_err(|e| match e {
                CoreError::InvalidInput { field, message } => CoreError::config(field, message),
                other => other,
            })?;
            if seen.insert(s.id.as_str(), i).is_some() {
                return Err(CoreError::config(
                    format!("{path}.id"),
                    format!("duplicate service id {:?}", s.id),
                ));
            }
        }
        let change_window = match &self.change_window {
            None => DEFAULT_CHANGE_WINDOW,
            Some(s) => parse_duration(s).map_err(|e| CoreError::config("change_window", e))?,
        };
        let closed_incident_memory_age = match &self.closed_incident_memory_age {
            None => DEFAULT_CLOSED_INCIDENT_MEMORY_AGE,
            Some(s) => {
                parse_duration(s).map_err(|e| CoreError::config("closed_incident_memory_age", e))?
            }
        };
        let expired_silence_age = match &self.expired_silence_age {
            None => DEFAULT_EXPIRED_SILENCE_AGE,
            Some(s) => {
                parse_duration(s).map_err(|e| CoreError::config("expired_silence_age", e))?
            }
        };
        Ok(CompiledConfig {
            routes,
            intervals,
            inhibit_rules,
            services: self.services.clone(),
            external_url: self.external_url.clone(),
            change_window,
            closed_incident_memory_age,
            expired_silence_age,
        })
    }

    /// Validates without keeping the result.
    pub fn validate(&self) -> Result<(), CoreError> {
        self.compile().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(v: serde_json::Value) -> String {
        let c: EngineConfig = serde_json::from_value(v).unwrap();
        c.compile().unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_path() {
        let e = err(serde_json::json!({
            "route": {"routes": [{}, {}, {"matchers": ["foo=~\"a|(\""]}]}
        }));
        assert!(e.contains("route.routes[2].matchers[0]"), "{e}");
        let e = err(serde_json::json!({
            "time_intervals": [{"name": "n", "time_intervals": [{"location": "Nowhere/City"}]}]
        }));
        assert!(
            e.contains("time_intervals[0].time_intervals[0].location"),
            "{e}"
        );
        let e = err(
            serde_json::json!({"inhibit_rules": [{"source_matchers": ["a"], "target_matchers": ["b=c"]}]}),
        );
        assert!(e.contains("inhibit_rules[0].source_matchers[0]"), "{e}");
        let e = err(
            serde_json::json!({"services": [{"id": "a", "name": "A", "slos": [{"name": "x", "objective": 0, "window": "1d"}]}]}),
        );
        assert!(e.contains("services[0].slos[0].objective"), "{e}");
        let e = err(serde_json::json!({"change_window": "soon"}));
        assert!(e.contains("change_window"), "{e}");
        let e = err(serde_json::json!({"closed_incident_memory_age": "-1h"}));
        assert!(e.contains("closed_incident_memory_age"), "{e}");
        let e = err(serde_json::json!({"expired_silence_age": "soon"}));
        assert!(e.contains("expired_silence_age"), "{e}");
        let e = err(serde_json::json!({"time_intervals": [{"name": "a"}, {"name": "a"}]}));
        assert!(e.contains("time_intervals[1].name"), "{e}");
    }

    #[test]
    fn closed_incident_memory_age_defaults_to_an_hour_and_takes_zero() {
        let c = EngineConfig::default().compile().unwrap();
        assert_eq!(c.closed_incident_memory_age, Duration::from_secs(3600));
        let c: EngineConfig =
            serde_json::from_value(serde_json::json!({"closed_incident_memory_age": "0s"}))
                .unwrap();
        assert_eq!(
            c.compile().unwrap().closed_incident_memory_age,
            Duration::ZERO
        );
        let c: EngineConfig =
            serde_json::from_value(serde_json::json!({"closed_incident_memory_age": "15m"}))
                .unwrap();
        assert_eq!(
            c.compile().unwrap().closed_incident_memory_age,
            Duration::from_secs(900)
        );
    }

    #[test]
    fn expired_silence_age_defaults_to_120h_and_takes_zero() {
        let c = EngineConfig::default().compile().unwrap();
        assert_eq!(c.expired_silence_age, Duration::from_secs(120 * 3600));
        for (v, want) in [("0s", Duration::ZERO), ("24h", Duration::from_secs(86_400))] {
            let c: EngineConfig =
                serde_json::from_value(serde_json::json!({"expired_silence_age": v})).unwrap();
            assert_eq!(c.compile().unwrap().expired_silence_age, want, "{v}");
        }
    }

    #[test]
    fn unknown_fields_rejected() {
        assert!(serde_json::from_value::<EngineConfig>(serde_json::json!({"routes": []})).is_err());
    }

    #[test]
    fn interval_names_resolve() {
        let c: EngineConfig = serde_json::from_value(serde_json::json!({
            "time_intervals": [{"name": "a"}, {"name": "b"}],
            "route": {"routes": [{"matchers": ["x=y"], "mute_time_intervals": ["b"]}]}
        }))
        .unwrap();
        let cc = c.compile().unwrap();
        assert_eq!(cc.routes.get(1).unwrap().mute_time_intervals, vec![1]);
    }
}
