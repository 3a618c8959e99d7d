//! The incident state machine: open → acknowledged → mitigated → resolved → closed.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentState {
    /// Triggered; someone is being paged.
    Open,
    /// Someone is on it; escalation stops.
    Acknowledged,
    /// Impact is over, root cause may remain.
    Mitigated,
    /// Over. Re-opens on a new firing alert.
    Resolved,
    /// Archived after review; terminal.
    Closed,
}

impl IncidentState {
    /// Lowercase name as in the JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Acknowledged => "acknowledged",
            IncidentState::Mitigated => "mitigated",
            IncidentState::Resolved => "resolved",
            IncidentState::Closed => "closed",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(IncidentState::Open),
            "acknowledged" => Some(IncidentState::Acknowledged),
            "mitigated" => Some(IncidentState::Mitigated),
            "resolved" => Some(IncidentState::Resolved),
            "closed" => Some(IncidentState::Closed),
            _ => None,
        }
    }

    /// `true` while the incident still needs attention (open, acknowledged, mitigated).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            IncidentState::Open | IncidentState::Acknowledged | IncidentState::Mitigated
        )
    }

    /// Whether the state machine allows `self → to`.
    ///
    /// Forward moves may skip states (an unacknowledged incident can resolve on its
    /// own), except that only a resolved incident can be closed; `resolved → open` is
    /// the re-open. Staying in the same state is not a transition.
    pub fn can_transition(self, to: IncidentState) -> bool {
        use IncidentState::*;
        matches!(
            (self, to),
            (Open, Acknowledged | Mitigated | Resolved)
                | (Acknowledged, Mitigated | Resolved)
                | (Mitigated, Resolved)
                | (Resolved, Closed | Open)
        )
    }

    /// Checks `self → to`, returning [`CoreError::InvalidTransition`] naming both states.
    pub fn transition(self, to: IncidentState) -> Result<IncidentState, CoreError> {
        if self.can_transition(to) {
            Ok(to)
        } else {
            Err(CoreError::InvalidTransition {
                from: self.as_str().into(),
                to: to.as_str().into(),
            })
        }
    }
}

impl fmt::Display for IncidentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::IncidentState::*;
    use super::*;

    #[test]
    fn allowed_transitions() {
        assert!(Open.can_transition(Acknowledged));
        assert!(Open.can_transition(Resolved));
        assert!(Acknowledged.can_transition(Mitigated));
        assert!(Mitigated.can_transition(Resolved));
        assert!(Resolved.can_transition(Closed));
        assert!(Resolved.can_transition(Open));
    }

    #[test]
    fn invalid_transition_names_both_states() {
        let e = Closed.transition(Acknowledged).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid incident transition from closed to acknowledged"
        );
        assert!(Open.transition(Closed).is_err());
        assert!(Acknowledged.transition(Acknowledged).is_err());
        assert!(Resolved.transition(Mitigated).is_err());
        assert!(Mitigated.transition(Acknowledged).is_err());
    }

    #[test]
    fn names_round_trip() {
        for s in [Open, Acknowledged, Mitigated, Resolved, Closed] {
            assert_eq!(IncidentState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
