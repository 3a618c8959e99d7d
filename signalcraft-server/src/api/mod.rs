//! HTTP handlers, one module per protocol or resource.
//!
//! * [`alertmanager`]: Alertmanager v2 compatible `/api/v2/*`.
//! * [`pagerduty`]: PagerDuty Events API v2 `/v2/enqueue`, `/v2/change/enqueue`.
//! * [`integrations`]: provider webhooks `/integrations/{key}`.
//! * [`callbacks`]: Slack and Twilio callbacks.
//! * [`v1`]: the REST API.
//! * [`openapi`]: the OpenAPI document; [`schemas`]: the schemas of the core types it returns.

pub mod alertmanager;
pub mod callbacks;
pub mod integrations;
pub mod openapi;
pub mod pagerduty;
pub mod schemas;
pub mod v1;
