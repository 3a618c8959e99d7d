//! Escalation policies, per-user notification rules, paging and escalation preview.
//! (Filled in by the on-call work.)
