//! Outbound channels: one file per channel, each with its config beside it, listed
//! in one [`registry`]. Channels render, send once and *classify* failures
//! (`DeliveryError::Retryable` / `Permanent`); retries, failover and the
//! notification log live in `signalcraft_core::delivery`.
//!
//! Inbound callbacks (Slack buttons, Twilio SMS replies, DTMF digits and status
//! callbacks) are verified and parsed by plain functions over
//! `(headers, body, url, now, secret)` that return typed requests
//! ([`IncidentActionRequest`], [`twilio::StatusCallback`]) for the server's HTTP handlers.
//!
//! Each channel sits behind a cargo feature (`channel-slack`, `channel-email`,
//! `channel-twilio`, `channel-webhook`, `channel-teams`; all on by default).
//!
//! # Layout
//!
//! * [`slack`] — incoming webhooks and the Web API (`chat.postMessage` /
//!   `chat.update`), Block Kit with Acknowledge/Resolve buttons, v0 request signing.
//! * [`email`] — SMTP via lettre, minijinja HTML + text bodies, threading headers.
//! * [`twilio`] — SMS (Messages) and voice (Calls + TwiML `<Gather>`), inbound
//!   replies, DTMF, status callbacks, `X-Twilio-Signature`.
//! * [`webhook`] — Alertmanager-compatible webhook v4 JSON with a `signalcraft`
//!   extension, HMAC-SHA256 signature with timestamp.
//! * [`teams`] — Microsoft Teams Workflows / incoming webhook (Adaptive Card).
//! * [`registry`] — `ChannelConfig` (tagged by `type`) → `Arc<dyn Channel>`.
//! * [`action`] — the typed incident action a callback produces.
//! * [`http`] — shared reqwest client, status classification, redaction.
//! * [`error`] — [`ChannelError`] and [`CallbackError`].

pub mod action;
#[cfg(feature = "channel-email")]
pub mod email;
pub mod error;
pub mod http;
pub mod registry;
#[cfg(feature = "channel-slack")]
pub mod slack;
#[cfg(feature = "channel-teams")]
pub mod teams;
#[cfg(feature = "channel-twilio")]
pub mod twilio;
#[cfg(feature = "channel-webhook")]
pub mod webhook;

pub use action::{ExternalActor, IncidentAction, IncidentActionRequest, IncidentSelector};
pub use error::{CallbackError, ChannelError};
pub use registry::{ChannelConfig, ChannelRegistry};
