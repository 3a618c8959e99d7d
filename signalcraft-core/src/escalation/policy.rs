//! Escalation policy configuration and its validation.

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::oncall::people::check_id;

/// An escalation policy: levels paged one after another until someone acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicy {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Levels in order (level 1 first).
    pub levels: Vec<EscalationLevel>,
    /// How many times the whole policy runs before it is exhausted (1 = once, no
    /// repetition; at most 10).
    #[serde(default = "one")]
    pub repeat: u32,
}

fn one() -> u32 {
    1
}

/// One level of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationLevel {
    /// Who is paged at this level.
    pub targets: Vec<EscalationTarget>,
    /// Minutes to wait for an acknowledgement before the next level (≥ 1).
    pub delay_minutes: i64,
    /// Page every target, or one per incident in turn.
    #[serde(default)]
    pub mode: NotifyMode,
}

/// Page all of a level's targets, or rotate among them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyMode {
    /// Every target is paged.
    #[default]
    All,
    /// One target per incident: the incident's round-robin cursor (plus the pass
    /// number) picks which, so consecutive incidents go to consecutive targets.
    RoundRobin,
}

/// A target of an escalation level.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum EscalationTarget {
    /// A user.
    User(String),
    /// Whoever is on call on the schedule at the moment the level is reached.
    Schedule(String),
    /// Every manager and responder of the team.
    Team(String),
    /// Whoever the first level of another policy would page (its targets, expanded
    /// the same way). Cycles between policies are rejected at validation.
    Policy(String),
}

impl EscalationTarget {
    /// `kind:id`, for events.
    pub fn label(&self) -> String {
        match self {
            EscalationTarget::User(id) => format!("user:{id}"),
            EscalationTarget::Schedule(id) => format!("schedule:{id}"),
            EscalationTarget::Team(id) => format!("team:{id}"),
            EscalationTarget::Policy(id) => format!("policy:{id}"),
        }
    }
}

/// The most passes a policy may make.
pub const MAX_REPEAT: u32 = 10;

impl EscalationPolicy {
    /// Local checks (ids, delays, non-empty levels). References and loops are checked
    /// by [`Directory`](super::Directory). `path` is e.g. `escalation_policies[0]`.
    pub fn validate_at(&self, path: &str) -> Result<(), CoreError> {
        check_id(&self.id, &format!("{path}.id"))?;
        if self.levels.is_empty() {
            return Err(CoreError::config(
                format!("{path}.levels"),
                "needs at least one level",
            ));
        }
        if !(1..=MAX_REPEAT).contains(&self.repeat) {
            return Err(CoreError::config(
                format!("{path}.repeat"),
                format!("must be between 1 and {MAX_REPEAT}"),
            ));
        }
        for (i, l) in self.levels.iter().enumerate() {
            let lp = format!("{path}.levels[{i}]");
            if l.targets.is_empty() {
                return Err(CoreError::config(
                    format!("{lp}.targets"),
                    "a level needs at least one target",
                ));
            }
            if !(1..=7 * 24 * 60).contains(&l.delay_minutes) {
                return Err(CoreError::config(
                    format!("{lp}.delay_minutes"),
                    "must be between 1 minute and 7 days",
                ));
            }
        }
        Ok(())
    }

    /// Validates with the path prefix `escalation_policy`.
    pub fn validate(&self) -> Result<(), CoreError> {
        self.validate_at("escalation_policy")
    }
}
