//! Inbound sources: one file per monitoring tool, each with its config struct beside
//! it, listed in one explicit [`Registry`] and each behind a cargo feature
//! (`source-<type>`, all on by default).
//!
//! An [`Integration`] is one configured instance: provider type, integration key,
//! [`Secret`]s and options. [`Registry::build`] validates it and returns a
//! `Box<dyn Provider>` whose `verify` checks authenticity and whose `parse` yields
//! normalized [`signalcraft_core::model::Event`]s.
//!
//! # Layout
//!
//! * [`registry`]: [`Registry`], [`SourceType`], [`Verification`].
//! * [`integration`]: [`Integration`] (the shared envelope) and secret checks.
//! * [`secret`]: [`Secret`], which never prints.
//! * [`signature`]: HMAC, constant-time compare, replay windows, token/basic auth.
//! * [`decode`]: size limit, typed JSON decoding with field paths, vendor timestamps.
//! * [`sns`]: SNS message signatures (RSA SHA1/SHA256, certificate cache, host checks).
//! * [`fast_json`]: one-pass JSON readers for hot paths (Alertmanager, Grafana,
//!   Datadog and PagerDuty payloads, the SNS envelope and the CloudWatch alarm still escaped inside it),
//!   declining to `serde_json` for anything unusual.
//! * one module per source: [`alertmanager`], [`grafana`], [`cloudwatch`], [`github`],
//!   [`gitlab`], [`sentry`], [`datadog`], [`pagerduty`], [`generic`].

pub mod decode;
#[cfg(any(
    feature = "source-alertmanager",
    feature = "source-cloudwatch",
    feature = "source-datadog",
    feature = "source-grafana",
    feature = "source-pagerduty"
))]
pub mod fast_json;
pub mod integration;
pub mod registry;
#[cfg(all(
    test,
    any(
        feature = "source-alertmanager",
        feature = "source-cloudwatch",
        feature = "source-datadog",
        feature = "source-grafana",
        feature = "source-pagerduty"
    )
))]
mod route_check;
pub mod secret;
pub mod signature;
#[cfg(feature = "source-cloudwatch")]
pub mod sns;

#[cfg(feature = "source-alertmanager")]
pub mod alertmanager;
#[cfg(feature = "source-cloudwatch")]
pub mod cloudwatch;
#[cfg(feature = "source-datadog")]
pub mod datadog;
#[cfg(feature = "source-generic")]
pub mod generic;
#[cfg(feature = "source-github")]
pub mod github;
#[cfg(feature = "source-gitlab")]
pub mod gitlab;
#[cfg(feature = "source-grafana")]
pub mod grafana;
#[cfg(feature = "source-pagerduty")]
pub mod pagerduty;
#[cfg(feature = "source-sentry")]
pub mod sentry;

pub use integration::{DEFAULT_MAX_BODY_BYTES, Integration};
pub use registry::{Registry, SourceType, Verification};
pub use secret::Secret;
