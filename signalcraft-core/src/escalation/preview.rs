//! Escalation preview: who would be paged, when and how, if nobody acknowledges.

use jiff::Timestamp;
use serde::Serialize;

use super::directory::Directory;
use super::planner::add_minutes;
use super::policy::NotifyMode;
use crate::CoreError;
use crate::incident::Urgency;
use crate::oncall::ContactMethod;

/// One page the policy would send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreviewEntry {
    /// Minutes after the start.
    pub minute: i64,
    /// The instant.
    pub at: Timestamp,
    /// Level, 1-based.
    pub level: u32,
    /// Pass, 0-based.
    pub repeat: u32,
    /// User id.
    pub user: String,
    /// Contact method used.
    pub contact_method: ContactMethod,
}

/// The pages policy `policy_id` would send for an incident opened at `start` with
/// `urgency` and round-robin cursor `cursor`, if nobody acknowledged: every level of
/// every pass, each paged user's notification-rule steps. Sorted by minute, then
/// level, then user. Schedule targets are resolved at the instant their level is
/// reached.
pub fn preview(
    dir: &Directory,
    policy_id: &str,
    start: Timestamp,
    urgency: Urgency,
    cursor: u64,
) -> Result<Vec<PreviewEntry>, CoreError> {
    let pol = dir.policy(policy_id).ok_or_else(|| CoreError::NotFound {
        kind: "escalation policy",
        id: policy_id.to_string(),
    })?;
    let mut out = Vec::new();
    let mut offset = 0i64;
    for repeat in 0..pol.repeat {
        for (li, lvl) in pol.levels.iter().enumerate() {
            let at = add_minutes(start, offset);
            let targets: Vec<_> = match lvl.mode {
                NotifyMode::All => lvl.targets.iter().collect(),
                NotifyMode::RoundRobin => {
                    let n = lvl.targets.len() as u64;
                    let i = cursor.wrapping_add(u64::from(repeat)) % n.max(1);
                    lvl.targets.get(i as usize).into_iter().collect()
                }
            };
            let mut users: Vec<String> = Vec::new();
            for t in targets {
                for u in dir.resolve_target(t, at).users {
                    if !users.contains(&u) {
                        users.push(u);
                    }
                }
            }
            for uid in users {
                let Some(user) = dir.user(&uid) else { continue };
                for r in user.effective_rules(urgency) {
                    if let Some(c) = user.contact(&r.contact_method) {
                        let minute = offset + r.delay_minutes;
                        out.push(PreviewEntry {
                            minute,
                            at: add_minutes(start, minute),
                            level: li as u32 + 1,
                            repeat,
                            user: uid.clone(),
                            contact_method: c.clone(),
                        });
                    }
                }
            }
            offset += lvl.delay_minutes;
        }
    }
    out.sort_by(|a, b| (a.minute, a.level, &a.user).cmp(&(b.minute, b.level, &b.user)));
    Ok(out)
}
