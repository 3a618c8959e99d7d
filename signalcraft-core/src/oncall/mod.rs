//! On-call: people, teams, rotations, layered schedules with restrictions, overrides,
//! handoffs, and who is on call at an instant. (Filled in by the on-call work.)
