//! The notification log entry of an aggregation group and the `needs_update` decision
//! (Alertmanager's `DedupStage.needsUpdate`, plus SignalCraft's quiet repeats).

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::Fingerprint;

/// What the group's receiver was last told: the firing and resolved alert sets (by
/// fingerprint, sorted) and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NflogEntry {
    /// Firing alerts notified, sorted.
    pub firing: Vec<Fingerprint>,
    /// Resolved alerts notified, sorted.
    pub resolved: Vec<Fingerprint>,
    /// When.
    pub at: Timestamp,
}

/// Whether `sub ⊆ sup`, both sorted.
fn is_subset(sub: &[Fingerprint], sup: &[Fingerprint]) -> bool {
    let mut j = 0;
    for x in sub {
        while j < sup.len() && sup[j] < *x {
            j += 1;
        }
        if j == sup.len() || sup[j] != *x {
            return false;
        }
    }
    true
}

/// Why a flush notifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateReason {
    /// Never notified and something fires.
    First,
    /// A firing alert the receiver has not been told about.
    NewFiring,
    /// Every alert resolved (after something was notified firing).
    AllResolved,
    /// Some alerts resolved, others still fire.
    NewResolved,
    /// Nothing changed, but `repeat_interval` passed.
    Repeat,
}

/// Decides whether a flush with these (sorted) sets must notify.
///
/// Alertmanager's rules: never notified → notify iff something fires; a firing alert
/// not in the last notification → notify; nothing firing → notify iff the last
/// notification had firing alerts (the all-resolved message; alerts that fired and
/// resolved unseen are not worth a message); a newly resolved alert → notify; otherwise
/// only once `repeat` has passed since the last notification (`at + repeat <= now`).
pub fn needs_update(
    entry: Option<&NflogEntry>,
    firing: &[Fingerprint],
    resolved: &[Fingerprint],
    repeat: Duration,
    now: Timestamp,
) -> Option<UpdateReason> {
    let Some(e) = entry else {
        return (!firing.is_empty()).then_some(UpdateReason::First);
    };
    if !is_subset(firing, &e.firing) {
        return Some(UpdateReason::NewFiring);
    }
    if firing.is_empty() {
        return (!e.firing.is_empty()).then_some(UpdateReason::AllResolved);
    }
    if !is_subset(resolved, &e.resolved) {
        return Some(UpdateReason::NewResolved);
    }
    (crate::duration::add(e.at, repeat) <= now).then_some(UpdateReason::Repeat)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fps(v: &[u64]) -> Vec<Fingerprint> {
        v.iter().map(|x| Fingerprint(*x)).collect()
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    const REPEAT: Duration = Duration::from_secs(3600);

    #[test]
    fn first_notification_needs_firing() {
        assert_eq!(
            needs_update(None, &fps(&[1]), &[], REPEAT, t(0)),
            Some(UpdateReason::First)
        );
        assert_eq!(
            needs_update(None, &[], &fps(&[1]), REPEAT, t(0)),
            None,
            "fired and resolved unseen"
        );
    }

    #[test]
    fn changes_and_repeats() {
        let e = NflogEntry {
            firing: fps(&[1, 2]),
            resolved: vec![],
            at: t(0),
        };
        assert_eq!(
            needs_update(Some(&e), &fps(&[1, 2]), &[], REPEAT, t(60)),
            None
        );
        assert_eq!(
            needs_update(Some(&e), &fps(&[1]), &[], REPEAT, t(60)),
            None,
            "subset, nothing resolved"
        );
        assert_eq!(
            needs_update(Some(&e), &fps(&[1, 3]), &[], REPEAT, t(60)),
            Some(UpdateReason::NewFiring)
        );
        assert_eq!(
            needs_update(Some(&e), &fps(&[1]), &fps(&[2]), REPEAT, t(60)),
            Some(UpdateReason::NewResolved)
        );
        assert_eq!(
            needs_update(Some(&e), &[], &fps(&[1, 2]), REPEAT, t(60)),
            Some(UpdateReason::AllResolved)
        );
        assert_eq!(
            needs_update(Some(&e), &fps(&[1, 2]), &[], REPEAT, t(3600)),
            Some(UpdateReason::Repeat)
        );
        let quiet = NflogEntry {
            firing: vec![],
            resolved: fps(&[1]),
            at: t(0),
        };
        assert_eq!(
            needs_update(Some(&quiet), &[], &fps(&[1]), REPEAT, t(60)),
            None,
            "all-resolved sent once"
        );
    }

    #[test]
    fn subset_on_sorted_slices() {
        assert!(is_subset(&fps(&[]), &fps(&[1])));
        assert!(is_subset(&fps(&[2, 5]), &fps(&[1, 2, 3, 5])));
        assert!(!is_subset(&fps(&[2, 4]), &fps(&[1, 2, 3, 5])));
        assert!(!is_subset(&fps(&[9]), &fps(&[])));
    }
}
