//! The REST API under `/api/v1` (JSON; errors are problem+json; every route needs a
//! bearer token, and every write is audited with the token's principal).
//!
//! Roles needed: reads `viewer`; incident actions, notes and silences `responder`;
//! services, schedules, policies, integrations `manager`; users, teams, tokens
//! `admin`. Paging a user needs the `page_user` permission and approving a
//! remediation `approve_remediation`.
//!
//! * [`incidents`]: list (filters, cursor), get (timeline, alerts, delivery trail,
//!   recent changes, runbooks) and actions.
//! * [`alerts`], [`silences`], [`services`].
//! * [`oncall`]: users, teams, schedules (+ on call now, shifts, iCal), escalation
//!   policies (+ preview).
//! * [`integrations`]: create with validation, rotate key, list, delete.
//! * [`notifications`]: notification log and delivery health.
//! * [`admin`]: API tokens and the audit log.
//! * `remediation` (cargo feature `remediation`): actions, run requests, approvals.

pub mod admin;
pub mod alerts;
pub mod incidents;
pub mod integrations;
pub mod notifications;
pub mod oncall;
#[cfg(feature = "remediation")]
pub mod remediation;
pub mod services;
pub mod silences;

use axum::Router;

use crate::state::AppState;

/// Every `/api/v1` route (mounted under `/api/v1`).
pub fn routes() -> Router<AppState> {
    let r = Router::new();
    #[cfg(feature = "remediation")]
    let r = r.merge(remediation::routes());
    r.merge(incidents::routes())
        .merge(alerts::routes())
        .merge(silences::routes())
        .merge(services::routes())
        .merge(oncall::routes())
        .merge(integrations::routes())
        .merge(notifications::routes())
        .merge(admin::routes())
}

/// Parses an optional numeric query parameter, naming it on failure.
pub fn parse_num<T: std::str::FromStr>(
    name: &str,
    v: Option<&String>,
) -> Result<Option<T>, crate::error::ApiError> {
    match v {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            crate::error::ApiError::invalid(name, format!("{name} must be a number, got {s:?}"))
        }),
    }
}

/// Parses an RFC 3339 timestamp query parameter, naming it on failure.
pub fn parse_time(
    name: &str,
    v: Option<&String>,
) -> Result<Option<jiff::Timestamp>, crate::error::ApiError> {
    match v {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|e| {
            crate::error::ApiError::invalid(
                name,
                format!("{name} must be an RFC 3339 timestamp: {e}"),
            )
        }),
    }
}
