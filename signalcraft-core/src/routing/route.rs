//! The routing tree (Alertmanager semantics).
//!
//! The root route matches every alert. Children are tried in order; an alert descends
//! into the first matching child and stops there unless that child sets `continue`,
//! in which case later siblings are tried too. A route whose children all fail to match
//! handles the alert itself. Unset options are inherited from the parent.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::matcher::{Matcher, MatcherSpec, compile_all};
use crate::CoreError;
use crate::duration::parse_duration;
use crate::incident::Urgency;
use crate::model::{Labels, Link};

/// Default `group_wait`.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
/// Default `group_interval`.
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(300);
/// Default `repeat_interval`.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);

/// Where a route sends notifications: a channel (instance name) and a channel-specific
/// address (Slack channel, email, phone, URL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    /// Channel instance name, e.g. `slack`, `ops-email`.
    pub channel: String,
    /// Address for that channel.
    pub target: String,
}

/// A route as configured. Durations are Alertmanager strings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Receiver name (inherited; the root defaults to `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    /// Notification targets (inherited when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Vec<NotifyTarget>>,
    /// Matchers, string (`foo=~"a|b"`) or structured form. Must be empty on the root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matchers: Vec<MatcherSpec>,
    /// Keep trying later siblings after this route matched.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Service id (inherited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Escalation policy id (inherited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_policy: Option<String>,
    /// Runbook links; appended to the parent's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runbooks: Vec<Link>,
    /// Labels to group by; `["..."]` groups by all labels (inherited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Vec<String>>,
    /// Wait before the first notification of a new group (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_wait: Option<String>,
    /// Minimum time between notifications of a group (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_interval: Option<String>,
    /// Re-notify an unchanged firing group after this long (default 4h), rounded up to a
    /// multiple of `group_interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_interval: Option<String>,
    /// Delay before notifying that every alert of a group resolved (default 0: promptly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_wait: Option<String>,
    /// Notify only while inside one of these named time intervals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_time_intervals: Vec<String>,
    /// Do not notify (firing) while inside one of these named time intervals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mute_time_intervals: Vec<String>,
    /// Urgency override for incidents from this route (default: from severity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Urgency>,
    /// Child routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteConfig>,
}

/// Which labels form the group key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// `...`: every label (one group per alert label set).
    All,
    /// These labels (sorted, unique; empty = one group per route).
    Labels(Vec<String>),
}

/// A compiled route: its own options already merged with the inherited ones.
#[derive(Debug, Clone)]
pub struct Route {
    /// Index in [`RouteTree::routes`].
    pub index: usize,
    /// Stable id: the config path, e.g. `route.routes[1]`.
    pub id: String,
    /// Matchers of this route only.
    pub matchers: Vec<Matcher>,
    /// `continue`.
    pub continue_matching: bool,
    /// Receiver name.
    pub receiver: String,
    /// Notification targets.
    pub notify: Vec<NotifyTarget>,
    /// Service id.
    pub service: Option<String>,
    /// Escalation policy id.
    pub escalation_policy: Option<String>,
    /// Runbooks (ancestors' first).
    pub runbooks: Vec<Link>,
    /// Group-by.
    pub group_by: GroupBy,
    /// group_wait.
    pub group_wait: Duration,
    /// group_interval (> 0).
    pub group_interval: Duration,
    /// repeat_interval, a multiple of group_interval.
    pub repeat_interval: Duration,
    /// resolve_wait.
    pub resolve_wait: Duration,
    /// Indexes into the engine's time intervals.
    pub active_time_intervals: Vec<usize>,
    /// Indexes into the engine's time intervals.
    pub mute_time_intervals: Vec<usize>,
    /// Urgency override.
    pub urgency: Option<Urgency>,
    /// Child indexes.
    pub children: Vec<usize>,
}

/// The compiled routing tree, stored flat (index 0 is the root).
#[derive(Debug, Clone)]
pub struct RouteTree {
    routes: Vec<Route>,
}

/// Rounds `repeat` up to a multiple of `interval` (Alertmanager does the same so repeats
/// land on group_interval ticks).
pub fn round_up(repeat: Duration, interval: Duration) -> Duration {
    let (r, i) = (repeat.as_millis(), interval.as_millis());
    if i == 0 {
        return repeat;
    }
    let n = r.div_ceil(i).max(1);
    Duration::from_millis(u64::try_from(n * i).unwrap_or(u64::MAX))
}

fn dur(
    v: &Option<String>,
    inherited: Duration,
    path: &str,
    field: &str,
) -> Result<Duration, CoreError> {
    match v {
        None => Ok(inherited),
        Some(s) => parse_duration(s).map_err(|e| CoreError::config(format!("{path}.{field}"), e)),
    }
}

impl RouteTree {
    /// Compiles the tree rooted at `root` (config path `route`). `interval_index` maps a
    /// time interval name to its index; unknown names are errors.
    pub fn compile(
        root: &RouteConfig,
        interval_index: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<Self, CoreError> {
        if !root.matchers.is_empty() {
            return Err(CoreError::config(
                "route.matchers",
                "the root route must not have matchers",
            ));
        }
        if root.continue_matching {
            return Err(CoreError::config(
                "route.continue",
                "the root route cannot continue",
            ));
        }
        let defaults = Route {
            index: 0,
            id: String::new(),
            matchers: Vec::new(),
            continue_matching: false,
            receiver: "default".into(),
            notify: Vec::new(),
            service: None,
            escalation_policy: None,
            runbooks: Vec::new(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait: DEFAULT_GROUP_WAIT,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            resolve_wait: Duration::ZERO,
            active_time_intervals: Vec::new(),
            mute_time_intervals: Vec::new(),
            urgency: None,
            children: Vec::new(),
        };
        let mut tree = RouteTree { routes: Vec::new() };
        tree.add(root, &defaults, "route".into(), interval_index)?;
        Ok(tree)
    }

    fn add(
        &mut self,
        cfg: &RouteConfig,
        parent: &Route,
        path: String,
        interval_index: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<usize, CoreError> {
        let matchers = compile_all(&cfg.matchers, &format!("{path}.matchers"))?;
        let receiver = cfg
            .receiver
            .clone()
            .unwrap_or_else(|| parent.receiver.clone());
        if receiver.trim().is_empty() {
            return Err(CoreError::config(
                format!("{path}.receiver"),
                "must not be empty",
            ));
        }
        let notify = cfg.notify.clone().unwrap_or_else(|| parent.notify.clone());
        if let Some(n) = &cfg.notify {
            for (i, t) in n.iter().enumerate() {
                if t.channel.is_empty() || t.channel.contains('/') {
                    return Err(CoreError::config(
                        format!("{path}.notify[{i}].channel"),
                        "must be a non-empty name without '/'",
                    ));
                }
                if t.target.is_empty() {
                    return Err(CoreError::config(
                        format!("{path}.notify[{i}].target"),
                        "must not be empty",
                    ));
                }
            }
        }
        let group_by = match &cfg.group_by {
            None => parent.group_by.clone(),
            Some(g) if g.iter().any(|l| l == "...") => {
                if g.len() != 1 {
                    return Err(CoreError::config(
                        format!("{path}.group_by"),
                        "'...' must be the only entry when present",
                    ));
                }
                GroupBy::All
            }
            Some(g) => {
                for (i, l) in g.iter().enumerate() {
                    if l.is_empty() {
                        return Err(CoreError::config(
                            format!("{path}.group_by[{i}]"),
                            "empty label name",
                        ));
                    }
                }
                let mut v = g.clone();
                v.sort();
                v.dedup();
                GroupBy::Labels(v)
            }
        };
        let group_wait = dur(&cfg.group_wait, parent.group_wait, &path, "group_wait")?;
        let group_interval = dur(
            &cfg.group_interval,
            parent.group_interval,
            &path,
            "group_interval",
        )?;
        if group_interval.is_zero() {
            return Err(CoreError::config(
                format!("{path}.group_interval"),
                "must be greater than 0",
            ));
        }
        let repeat = dur(
            &cfg.repeat_interval,
            parent.repeat_interval,
            &path,
            "repeat_interval",
        )?;
        if cfg.repeat_interval.is_some() && repeat.is_zero() {
            return Err(CoreError::config(
                format!("{path}.repeat_interval"),
                "must be greater than 0",
            ));
        }
        let resolve_wait = dur(
            &cfg.resolve_wait,
            parent.resolve_wait,
            &path,
            "resolve_wait",
        )?;
        let lookup =
            |names: &[String], field: &str, inherited: &[usize]| -> Result<Vec<usize>, CoreError> {
                if names.is_empty() {
                    return Ok(inherited.to_vec());
                }
                names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        interval_index(n).ok_or_else(|| {
                            CoreError::config(
                                format!("{path}.{field}[{i}]"),
                                format!("unknown time interval {n:?}"),
                            )
                        })
                    })
                    .collect()
            };
        let active = lookup(
            &cfg.active_time_intervals,
            "active_time_intervals",
            &parent.active_time_intervals,
        )?;
        let mute = lookup(
            &cfg.mute_time_intervals,
            "mute_time_intervals",
            &parent.mute_time_intervals,
        )?;
        let mut runbooks = parent.runbooks.clone();
        for (i, r) in cfg.runbooks.iter().enumerate() {
            if r.href.trim().is_empty() {
                return Err(CoreError::config(
                    format!("{path}.runbooks[{i}].href"),
                    "must not be empty",
                ));
            }
            runbooks.push(r.clone());
        }
        let index = self.routes.len();
        let route = Route {
            index,
            id: path.clone(),
            matchers,
            continue_matching: cfg.continue_matching,
            receiver,
            notify,
            service: cfg.service.clone().or_else(|| parent.service.clone()),
            escalation_policy: cfg
                .escalation_policy
                .clone()
                .or_else(|| parent.escalation_policy.clone()),
            runbooks,
            group_by,
            group_wait,
            group_interval,
            repeat_interval: round_up(repeat, group_interval),
            resolve_wait,
            active_time_intervals: active,
            mute_time_intervals: mute,
            urgency: cfg.urgency.or(parent.urgency),
            children: Vec::new(),
        };
        self.routes.push(route);
        let mut children = Vec::with_capacity(cfg.routes.len());
        for (i, child) in cfg.routes.iter().enumerate() {
            let parent_now = self.routes[index].clone();
            children.push(self.add(
                child,
                &parent_now,
                format!("{path}.routes[{i}]"),
                interval_index,
            )?);
        }
        self.routes[index].children = children;
        Ok(index)
    }

    /// All routes; index 0 is the root.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// A route by index.
    pub fn get(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
    }

    /// A route by id (config path).
    pub fn by_id(&self, id: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.id == id)
    }

    /// Appends the indexes of the routes that handle `labels` to `out` (cleared first).
    /// Never empty: the root matches everything. Deterministic.
    pub fn match_into(&self, labels: &Labels, out: &mut Vec<usize>) {
        out.clear();
        self.match_rec(0, labels, out);
    }

    /// Convenience wrapper over [`RouteTree::match_into`].
    pub fn match_labels(&self, labels: &Labels) -> Vec<usize> {
        let mut v = Vec::new();
        self.match_into(labels, &mut v);
        v
    }

    fn match_rec(&self, idx: usize, labels: &Labels, out: &mut Vec<usize>) -> bool {
        let r = &self.routes[idx];
        if !super::matcher::matches_all(&r.matchers, labels) {
            return false;
        }
        let before = out.len();
        for &c in &r.children {
            if self.match_rec(c, labels, out) && !self.routes[c].continue_matching {
                break;
            }
        }
        if out.len() == before {
            out.push(idx);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(p: &[(&str, &str)]) -> Labels {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn tree(json: &str) -> Result<RouteTree, CoreError> {
        let cfg: RouteConfig = serde_json::from_str(json).unwrap();
        RouteTree::compile(&cfg, &|n| (n == "night").then_some(0))
    }

    const CFG: &str = r#"{
        "receiver": "default", "group_by": ["alertname"], "group_interval": "2m",
        "repeat_interval": "5m",
        "runbooks": [{"href": "https://wiki/root"}],
        "routes": [
          {"matchers": ["team=db"], "receiver": "db", "service": "postgres", "continue": true,
           "runbooks": [{"href": "https://wiki/db"}]},
          {"matchers": ["severity=~\"critical|error\""], "receiver": "pager",
           "escalation_policy": "p1", "group_by": ["..."],
           "routes": [{"matchers": ["env=staging"], "receiver": "staging"}]},
          {"matchers": ["team=db"], "receiver": "db-late"}
        ]}"#;

    #[test]
    fn first_match_wins_continue_goes_on() {
        let t = tree(CFG).unwrap();
        let ids = |l: &Labels| -> Vec<String> {
            t.match_labels(l)
                .into_iter()
                .map(|i| t.get(i).unwrap().receiver.clone())
                .collect()
        };
        assert_eq!(ids(&labels(&[("team", "web")])), vec!["default"]);
        assert_eq!(ids(&labels(&[("team", "db")])), vec!["db", "db-late"]);
        assert_eq!(
            ids(&labels(&[("team", "db"), ("severity", "critical")])),
            vec!["db", "pager"]
        );
        assert_eq!(
            ids(&labels(&[("severity", "error"), ("env", "staging")])),
            vec!["staging"]
        );
    }

    #[test]
    fn options_inherit_and_repeat_rounds_up() {
        let t = tree(CFG).unwrap();
        let db = t.by_id("route.routes[0]").unwrap();
        assert_eq!(db.group_interval, Duration::from_secs(120));
        assert_eq!(
            db.repeat_interval,
            Duration::from_secs(360),
            "5m rounded up to 3×2m"
        );
        assert_eq!(db.group_by, GroupBy::Labels(vec!["alertname".into()]));
        assert_eq!(db.runbooks.len(), 2);
        let staging = t.by_id("route.routes[1].routes[0]").unwrap();
        assert_eq!(staging.group_by, GroupBy::All);
        assert_eq!(staging.escalation_policy.as_deref(), Some("p1"));
        assert_eq!(staging.resolve_wait, Duration::ZERO);
        assert_eq!(staging.group_wait, DEFAULT_GROUP_WAIT);
    }

    #[test]
    fn bad_config_names_the_path() {
        let e = tree(r#"{"routes":[{},{},{"matchers":["a=b","c=~\"(\""]}]}"#).unwrap_err();
        assert!(e.to_string().contains("route.routes[2].matchers[1]"), "{e}");
        let e = tree(r#"{"routes":[{"group_wait":"5 minutes"}]}"#).unwrap_err();
        assert!(e.to_string().contains("route.routes[0].group_wait"), "{e}");
        let e = tree(r#"{"routes":[{"mute_time_intervals":["day"]}]}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("route.routes[0].mute_time_intervals[0]"),
            "{e}"
        );
        let e = tree(r#"{"matchers":["a=b"]}"#).unwrap_err();
        assert!(e.to_string().contains("route.matchers"), "{e}");
        let e = tree(r#"{"group_interval":"0s"}"#).unwrap_err();
        assert!(e.to_string().contains("route.group_interval"), "{e}");
        let e = tree(r#"{"group_by":["...","x"]}"#).unwrap_err();
        assert!(e.to_string().contains("route.group_by"), "{e}");
        assert!(serde_json::from_str::<RouteConfig>(r#"{"recevier":"x"}"#).is_err());
    }

    #[test]
    fn round_up_rule() {
        let m = Duration::from_secs(60);
        assert_eq!(
            round_up(Duration::from_secs(150), m),
            Duration::from_secs(180)
        );
        assert_eq!(
            round_up(Duration::from_secs(180), m),
            Duration::from_secs(180)
        );
        assert_eq!(round_up(Duration::from_secs(1), m), m);
    }
}
