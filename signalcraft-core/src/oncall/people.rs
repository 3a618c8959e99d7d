//! People: [`User`]s with their contact methods and notification rules, and [`Team`]s.

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::incident::Urgency;

/// How a contact method reaches a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    /// An email address.
    Email,
    /// A text message to an E.164 phone number.
    Sms,
    /// A voice call to an E.164 phone number.
    Voice,
    /// A Slack direct message to a Slack member id.
    SlackDm,
    /// A push notification to a device token.
    Push,
    /// An HTTPS webhook URL.
    Webhook,
}

impl ContactKind {
    /// The snake_case name (`email`, `sms`, `voice`, `slack_dm`, `push`, `webhook`).
    pub fn as_str(self) -> &'static str {
        match self {
            ContactKind::Email => "email",
            ContactKind::Sms => "sms",
            ContactKind::Voice => "voice",
            ContactKind::SlackDm => "slack_dm",
            ContactKind::Push => "push",
            ContactKind::Webhook => "webhook",
        }
    }
}

/// One way to reach a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactMethod {
    /// Id, unique within the user; notification rules refer to it.
    pub id: String,
    /// How.
    pub kind: ContactKind,
    /// Where: email address, E.164 number (`+4930…`), Slack member id, device token, URL.
    pub address: String,
}

/// One step of a user's notification rules: after `delay_minutes` (counted from the
/// moment the user is paged), notify through `contact_method` unless the incident is
/// acknowledged by then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationRule {
    /// Minutes after the page (0 = at once). Must be ≥ 0.
    #[serde(default)]
    pub delay_minutes: i64,
    /// Id of one of the user's contact methods.
    pub contact_method: String,
}

/// A user's notification rules per urgency. An empty list for an urgency means "the
/// user's first contact method at once".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationRules {
    /// Rules for high-urgency incidents.
    #[serde(default)]
    pub high: Vec<NotificationRule>,
    /// Rules for low-urgency incidents.
    #[serde(default)]
    pub low: Vec<NotificationRule>,
}

impl NotificationRules {
    /// The configured rules for an urgency (possibly empty).
    pub fn for_urgency(&self, urgency: Urgency) -> &[NotificationRule] {
        match urgency {
            Urgency::High => &self.high,
            Urgency::Low => &self.low,
        }
    }
}

/// A person who can be on call and be paged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Stable id (letters, digits, `-`, `_`, `.`, `@`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Email address, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// E.164 phone number, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Slack member id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_id: Option<String>,
    /// The user's IANA time zone (for display and their own calendar), e.g. `Europe/Berlin`.
    #[serde(default = "default_tz")]
    pub time_zone: String,
    /// Ways to reach the user, in order of preference.
    #[serde(default)]
    pub contact_methods: Vec<ContactMethod>,
    /// Paging policy per urgency.
    #[serde(default)]
    pub notification_rules: NotificationRules,
}

fn default_tz() -> String {
    "UTC".into()
}

impl User {
    /// A user with an id and name, UTC, no contact methods.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        User {
            id: id.into(),
            name: name.into(),
            email: None,
            phone: None,
            slack_id: None,
            time_zone: default_tz(),
            contact_methods: Vec::new(),
            notification_rules: NotificationRules::default(),
        }
    }

    /// The contact method with this id.
    pub fn contact(&self, id: &str) -> Option<&ContactMethod> {
        self.contact_methods.iter().find(|c| c.id == id)
    }

    /// The effective rules for an urgency: the configured ones, or the first contact
    /// method at minute 0 when none are configured (empty if the user has no contact
    /// method at all).
    pub fn effective_rules(&self, urgency: Urgency) -> Vec<NotificationRule> {
        let rules = self.notification_rules.for_urgency(urgency);
        if !rules.is_empty() {
            return rules.to_vec();
        }
        self.contact_methods
            .first()
            .map(|c| {
                vec![NotificationRule {
                    delay_minutes: 0,
                    contact_method: c.id.clone(),
                }]
            })
            .unwrap_or_default()
    }

    /// Checks the user; `path` is its config path (e.g. `users[3]`).
    pub fn validate_at(&self, path: &str) -> Result<(), CoreError> {
        check_id(&self.id, &format!("{path}.id"))?;
        if self.name.trim().is_empty() {
            return Err(CoreError::config(
                format!("{path}.name"),
                "must not be empty",
            ));
        }
        jiff::tz::TimeZone::get(&self.time_zone).map_err(|_| {
            CoreError::config(
                format!("{path}.time_zone"),
                format!("unknown IANA time zone {:?}", self.time_zone),
            )
        })?;
        if let Some(e) = &self.email
            && !looks_like_email(e)
        {
            return Err(CoreError::config(
                format!("{path}.email"),
                "not an email address",
            ));
        }
        if let Some(p) = &self.phone
            && !is_e164(p)
        {
            return Err(CoreError::config(
                format!("{path}.phone"),
                "not an E.164 phone number (+ and 8-15 digits)",
            ));
        }
        for (i, c) in self.contact_methods.iter().enumerate() {
            let cp = format!("{path}.contact_methods[{i}]");
            check_id(&c.id, &format!("{cp}.id"))?;
            if self.contact_methods[..i].iter().any(|o| o.id == c.id) {
                return Err(CoreError::config(
                    format!("{cp}.id"),
                    format!("duplicate contact method id {:?}", c.id),
                ));
            }
            let ok = match c.kind {
                ContactKind::Email => looks_like_email(&c.address),
                ContactKind::Sms | ContactKind::Voice => is_e164(&c.address),
                ContactKind::Webhook => {
                    c.address.starts_with("https://") || c.address.starts_with("http://")
                }
                ContactKind::SlackDm | ContactKind::Push => !c.address.trim().is_empty(),
            };
            if !ok {
                return Err(CoreError::config(
                    format!("{cp}.address"),
                    format!("not a valid {} address", c.kind.as_str()),
                ));
            }
        }
        for (name, rules) in [
            ("high", &self.notification_rules.high),
            ("low", &self.notification_rules.low),
        ] {
            for (i, r) in rules.iter().enumerate() {
                let rp = format!("{path}.notification_rules.{name}[{i}]");
                if r.delay_minutes < 0 {
                    return Err(CoreError::config(
                        format!("{rp}.delay_minutes"),
                        "must not be negative",
                    ));
                }
                if self.contact(&r.contact_method).is_none() {
                    return Err(CoreError::config(
                        format!("{rp}.contact_method"),
                        format!("no contact method with id {:?}", r.contact_method),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A member's role in a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamRole {
    /// Manages the team; paged when the team is targeted.
    Manager,
    /// Responds to pages; paged when the team is targeted.
    Responder,
    /// Sees the team's incidents; never paged through the team.
    Observer,
}

/// A team member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamMember {
    /// User id.
    pub user: String,
    /// Role (default `responder`).
    #[serde(default = "default_role")]
    pub role: TeamRole,
}

fn default_role() -> TeamRole {
    TeamRole::Responder
}

/// A team of users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Members in order; an escalation level targeting the team pages managers and
    /// responders in this order.
    #[serde(default)]
    pub members: Vec<TeamMember>,
}

impl Team {
    /// Members who are paged when the team is targeted (not observers).
    pub fn pageable(&self) -> impl Iterator<Item = &str> {
        self.members
            .iter()
            .filter(|m| m.role != TeamRole::Observer)
            .map(|m| m.user.as_str())
    }

    /// Checks the team; `path` is its config path. `user_exists` answers whether a
    /// user id is known.
    pub fn validate_at(
        &self,
        path: &str,
        user_exists: &dyn Fn(&str) -> bool,
    ) -> Result<(), CoreError> {
        check_id(&self.id, &format!("{path}.id"))?;
        for (i, m) in self.members.iter().enumerate() {
            if !user_exists(&m.user) {
                return Err(CoreError::config(
                    format!("{path}.members[{i}].user"),
                    format!("unknown user {:?}", m.user),
                ));
            }
        }
        Ok(())
    }
}

/// Checks an id: non-empty, at most 128 characters of letters, digits, `-_.@:`.
/// (No `/`: ids are embedded in job ids and store keys.)
pub fn check_id(id: &str, path: &str) -> Result<(), CoreError> {
    if id.is_empty() || id.len() > 128 {
        return Err(CoreError::config(path, "must be 1 to 128 characters"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':'))
    {
        return Err(CoreError::config(
            path,
            format!("{id:?} may only contain letters, digits and - _ . @ :"),
        ));
    }
    Ok(())
}

fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}
