//! [`Directory`]: users, teams, schedules and escalation policies, validated together
//! (references resolve, no escalation loops) and queryable by id.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::policy::{EscalationPolicy, EscalationTarget};
use crate::CoreError;
use crate::oncall::{CompiledSchedule, Schedule, Team, User};

/// The on-call part of a configuration file, as the server loads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// People.
    #[serde(default)]
    pub users: Vec<User>,
    /// Teams.
    #[serde(default)]
    pub teams: Vec<Team>,
    /// On-call schedules.
    #[serde(default)]
    pub schedules: Vec<Schedule>,
    /// Escalation policies.
    #[serde(default)]
    pub escalation_policies: Vec<EscalationPolicy>,
}

impl DirectoryConfig {
    /// Validates everything; errors name the path (`schedules[0].layers[1].rotation.participants`).
    pub fn validate(&self) -> Result<(), CoreError> {
        Directory::new(self.clone()).map(|_| ())
    }
}

/// Validated, compiled on-call data.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    users: BTreeMap<String, User>,
    teams: BTreeMap<String, Team>,
    schedules: BTreeMap<String, CompiledSchedule>,
    policies: BTreeMap<String, EscalationPolicy>,
}

fn dup(path: String, kind: &str, id: &str) -> CoreError {
    CoreError::config(path, format!("duplicate {kind} id {id:?}"))
}

impl Directory {
    /// Validates and compiles a configuration.
    pub fn new(cfg: DirectoryConfig) -> Result<Self, CoreError> {
        let mut users = BTreeMap::new();
        for (i, u) in cfg.users.into_iter().enumerate() {
            let p = format!("users[{i}]");
            u.validate_at(&p)?;
            if users.contains_key(&u.id) {
                return Err(dup(format!("{p}.id"), "user", &u.id));
            }
            users.insert(u.id.clone(), u);
        }
        let known = |id: &str| users.contains_key(id);
        let mut teams = BTreeMap::new();
        for (i, t) in cfg.teams.into_iter().enumerate() {
            let p = format!("teams[{i}]");
            t.validate_at(&p, &known)?;
            if teams.contains_key(&t.id) {
                return Err(dup(format!("{p}.id"), "team", &t.id));
            }
            teams.insert(t.id.clone(), t);
        }
        let mut schedules = BTreeMap::new();
        for (i, s) in cfg.schedules.into_iter().enumerate() {
            let p = format!("schedules[{i}]");
            let id = s.id.clone();
            let c = CompiledSchedule::compile(s, &p, &known)?;
            if schedules.contains_key(&id) {
                return Err(dup(format!("{p}.id"), "schedule", &id));
            }
            schedules.insert(id, c);
        }
        let mut policies = BTreeMap::new();
        let mut paths = BTreeMap::new();
        for (i, pol) in cfg.escalation_policies.into_iter().enumerate() {
            let p = format!("escalation_policies[{i}]");
            pol.validate_at(&p)?;
            if policies.contains_key(&pol.id) {
                return Err(dup(format!("{p}.id"), "escalation policy", &pol.id));
            }
            paths.insert(pol.id.clone(), p);
            policies.insert(pol.id.clone(), pol);
        }
        let dir = Directory {
            users,
            teams,
            schedules,
            policies,
        };
        for (id, pol) in &dir.policies {
            let p = &paths[id];
            for (li, l) in pol.levels.iter().enumerate() {
                for (ti, t) in l.targets.iter().enumerate() {
                    let tp = format!("{p}.levels[{li}].targets[{ti}]");
                    let ok = match t {
                        EscalationTarget::User(u) => dir.users.contains_key(u),
                        EscalationTarget::Schedule(s) => dir.schedules.contains_key(s),
                        EscalationTarget::Team(t) => dir.teams.contains_key(t),
                        EscalationTarget::Policy(q) => dir.policies.contains_key(q),
                    };
                    if !ok {
                        return Err(CoreError::config(tp, format!("unknown {}", t.label())));
                    }
                }
            }
        }
        // Loops: follow policy → policy references from each policy's first level
        // (the only level a `policy` target expands) and from any level that names one.
        for (id, pol) in &dir.policies {
            for (li, l) in pol.levels.iter().enumerate() {
                for (ti, t) in l.targets.iter().enumerate() {
                    if let EscalationTarget::Policy(q) = t {
                        let mut seen = BTreeSet::from([id.clone()]);
                        if let Some(chain) = dir.find_cycle(q, &mut seen, id) {
                            return Err(CoreError::config(
                                format!("{}.levels[{li}].targets[{ti}]", paths[id]),
                                format!("escalation loop: {id} -> {}", chain.join(" -> ")),
                            ));
                        }
                    }
                }
            }
        }
        Ok(dir)
    }

    /// Depth-first search from `at` through first-level policy targets; returns the
    /// chain back to `origin` if one exists.
    fn find_cycle(
        &self,
        at: &str,
        seen: &mut BTreeSet<String>,
        origin: &str,
    ) -> Option<Vec<String>> {
        if at == origin {
            return Some(vec![at.to_string()]);
        }
        if !seen.insert(at.to_string()) {
            return None;
        }
        let pol = self.policies.get(at)?;
        for t in pol.levels.first()?.targets.iter() {
            if let EscalationTarget::Policy(q) = t
                && let Some(mut chain) = self.find_cycle(q, seen, origin)
            {
                chain.insert(0, at.to_string());
                return Some(chain);
            }
        }
        None
    }

    /// A user by id.
    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.get(id)
    }

    /// A team by id.
    pub fn team(&self, id: &str) -> Option<&Team> {
        self.teams.get(id)
    }

    /// A schedule by id.
    pub fn schedule(&self, id: &str) -> Option<&CompiledSchedule> {
        self.schedules.get(id)
    }

    /// A policy by id.
    pub fn policy(&self, id: &str) -> Option<&EscalationPolicy> {
        self.policies.get(id)
    }

    /// All users.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// All teams.
    pub fn teams(&self) -> impl Iterator<Item = &Team> {
        self.teams.values()
    }

    /// All schedules.
    pub fn schedules(&self) -> impl Iterator<Item = &CompiledSchedule> {
        self.schedules.values()
    }

    /// All policies.
    pub fn policies(&self) -> impl Iterator<Item = &EscalationPolicy> {
        self.policies.values()
    }

    /// The users a target stands for at `at`, in order, without duplicates. Also
    /// returns the ids of schedules that had nobody on call.
    pub fn resolve_target(&self, target: &EscalationTarget, at: Timestamp) -> Resolved {
        let mut r = Resolved::default();
        self.resolve_into(target, at, &mut r, 0);
        r
    }

    fn resolve_into(
        &self,
        target: &EscalationTarget,
        at: Timestamp,
        r: &mut Resolved,
        depth: usize,
    ) {
        match target {
            EscalationTarget::User(u) => r.push(u),
            EscalationTarget::Schedule(s) => {
                match self.schedules.get(s).and_then(|c| c.who_is_on_call(at)) {
                    Some(oc) => r.push(oc.user),
                    None => r.empty_schedules.push(s.clone()),
                }
            }
            EscalationTarget::Team(t) => {
                if let Some(team) = self.teams.get(t) {
                    for u in team.pageable() {
                        r.push(u);
                    }
                }
            }
            EscalationTarget::Policy(p) => {
                // Validation rejects loops; the depth bound is a second guard.
                if depth < 16
                    && let Some(first) = self.policies.get(p).and_then(|p| p.levels.first())
                {
                    for t in &first.targets {
                        self.resolve_into(t, at, r, depth + 1);
                    }
                }
            }
        }
    }
}

/// Users a target resolved to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// User ids, in order, deduplicated.
    pub users: Vec<String>,
    /// Schedules that had nobody on call.
    pub empty_schedules: Vec<String>,
}

impl Resolved {
    fn push(&mut self, u: &str) {
        if !self.users.iter().any(|x| x == u) {
            self.users.push(u.to_string());
        }
    }
}
