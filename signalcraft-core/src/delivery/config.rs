//! Delivery configuration: attempt timeout, retry policy, failover chains,
//! throttles and health thresholds. Loaded by the server from its config file
//! (`delivery:` section); every type rejects unknown fields and
//! [`DeliveryConfig::validate`] names the config path at fault.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::model::Severity;

/// The whole delivery policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Upper bound for one `Channel::deliver` call, in milliseconds (default 10 000).
    #[serde(default = "default_attempt_timeout_ms")]
    pub attempt_timeout_ms: u64,
    /// Retry policy applied to every step of a chain.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Per-contact-method throttles.
    #[serde(default)]
    pub throttle: ThrottleConfig,
    /// Health thresholds.
    #[serde(default)]
    pub health: HealthConfig,
    /// Failover chains. A notification whose `receiver` (and severity) matches no
    /// chain is delivered by the channel named `receiver` alone.
    #[serde(default)]
    pub chains: Vec<FailoverChain>,
}

fn default_attempt_timeout_ms() -> u64 {
    10_000
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            attempt_timeout_ms: default_attempt_timeout_ms(),
            retry: RetryConfig::default(),
            throttle: ThrottleConfig::default(),
            health: HealthConfig::default(),
            chains: Vec::new(),
        }
    }
}

/// Retry with exponential backoff and full jitter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Tries per chain step, including the first (default 4; 1 = no retries).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Cap of the first retry's delay, in milliseconds (default 1 000).
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Largest delay cap, in milliseconds (default 60 000).
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Growth factor of the cap per retry (default 2.0, must be ≥ 1).
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
    /// A `Retry-After` longer than this (milliseconds, default 300 000) is treated
    /// as "give up on this step" and fails over instead of waiting.
    #[serde(default = "default_max_retry_after_ms")]
    pub max_retry_after_ms: u64,
}

fn default_max_attempts() -> u32 {
    4
}
fn default_initial_backoff_ms() -> u64 {
    1_000
}
fn default_max_backoff_ms() -> u64 {
    60_000
}
fn default_multiplier() -> f64 {
    2.0
}
fn default_max_retry_after_ms() -> u64 {
    300_000
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            multiplier: default_multiplier(),
            max_retry_after_ms: default_max_retry_after_ms(),
        }
    }
}

/// Per-contact-method throttles: at most one message per `min_interval` to one
/// address of one channel kind. A throttled send is delayed to the next free slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Minimum seconds between two sends to the same address, by channel kind.
    /// Default: `sms` and `voice` 60 s (GoAlert's defaults); other kinds unthrottled.
    #[serde(default = "default_min_interval_secs")]
    pub min_interval_secs: BTreeMap<String, u64>,
    /// A *resolved* notification that hits a throttled contact method is dropped
    /// (logged as `suppressed`) instead of delayed (default `true`): during a storm
    /// "all clear" texts are noise, while firing pages are never dropped.
    #[serde(default = "default_true")]
    pub suppress_resolved: bool,
}

fn default_true() -> bool {
    true
}

fn default_min_interval_secs() -> BTreeMap<String, u64> {
    BTreeMap::from([("sms".to_string(), 60), ("voice".to_string(), 60)])
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            min_interval_secs: default_min_interval_secs(),
            suppress_resolved: true,
        }
    }
}

/// When a channel or target counts as unhealthy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Sliding window length in seconds (default 300).
    #[serde(default = "default_window_secs")]
    pub window_secs: u64,
    /// Fewer samples than this never make a target unhealthy (default 3).
    #[serde(default = "default_min_samples")]
    pub min_samples: u32,
    /// Success rate below which a target is unhealthy (default 0.5).
    #[serde(default = "default_unhealthy_below")]
    pub unhealthy_below: f64,
    /// How long a failed health check keeps a channel unhealthy, in seconds (default 120).
    #[serde(default = "default_check_ttl_secs")]
    pub check_ttl_secs: u64,
    /// Seconds between two rounds of periodic health checks (default 60; 0 turns
    /// them off). They run as a durable scheduler job once
    /// [`DeliveryPipeline::start_health_checks`](super::DeliveryPipeline::start_health_checks)
    /// was called; the first round one interval after that call.
    #[serde(default = "default_check_interval_secs")]
    pub check_interval_secs: u64,
}

fn default_window_secs() -> u64 {
    300
}
fn default_min_samples() -> u32 {
    3
}
fn default_unhealthy_below() -> f64 {
    0.5
}
fn default_check_ttl_secs() -> u64 {
    120
}
fn default_check_interval_secs() -> u64 {
    60
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            window_secs: default_window_secs(),
            min_samples: default_min_samples(),
            unhealthy_below: default_unhealthy_below(),
            check_ttl_secs: default_check_ttl_secs(),
            check_interval_secs: default_check_interval_secs(),
        }
    }
}

/// An ordered list of channels to try for one receiver (and optionally only for
/// some severities), e.g. Slack → email → SMS (provider A) → SMS (provider B) → voice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverChain {
    /// The `Notification::receiver` this chain applies to.
    pub receiver: String,
    /// Severities it applies to; empty means every severity. The first matching
    /// chain wins.
    #[serde(default)]
    pub severities: Vec<Severity>,
    /// The steps, tried in order.
    pub steps: Vec<ChainStep>,
}

/// One step of a failover chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainStep {
    /// Channel instance name (a configured channel's `name`).
    pub channel: String,
    /// Address for this channel (email address, phone, Slack channel id); when
    /// absent, the notification's own `target.address` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// If set, a send that is not confirmed `delivered` (e.g. by a Twilio status
    /// callback) within this many seconds fails over to the next step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_within_secs: Option<u64>,
}

impl DeliveryConfig {
    /// Checks the values that serde cannot: ranges and non-empty lists.
    /// Errors are [`CoreError::InvalidConfig`] with a path below `delivery`.
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.attempt_timeout_ms == 0 {
            return Err(CoreError::config(
                "delivery.attempt_timeout_ms",
                "must be greater than 0",
            ));
        }
        let r = &self.retry;
        if r.max_attempts == 0 {
            return Err(CoreError::config(
                "delivery.retry.max_attempts",
                "must be at least 1",
            ));
        }
        if r.initial_backoff_ms == 0 {
            return Err(CoreError::config(
                "delivery.retry.initial_backoff_ms",
                "must be greater than 0",
            ));
        }
        if r.max_backoff_ms < r.initial_backoff_ms {
            return Err(CoreError::config(
                "delivery.retry.max_backoff_ms",
                "must be at least initial_backoff_ms",
            ));
        }
        if !r.multiplier.is_finite() || r.multiplier < 1.0 {
            return Err(CoreError::config(
                "delivery.retry.multiplier",
                "must be a finite number ≥ 1",
            ));
        }
        let h = &self.health;
        if h.window_secs == 0 {
            return Err(CoreError::config(
                "delivery.health.window_secs",
                "must be greater than 0",
            ));
        }
        if !(0.0..=1.0).contains(&h.unhealthy_below) {
            return Err(CoreError::config(
                "delivery.health.unhealthy_below",
                "must be between 0 and 1",
            ));
        }
        for (i, c) in self.chains.iter().enumerate() {
            if c.receiver.trim().is_empty() {
                return Err(CoreError::config(
                    format!("delivery.chains[{i}].receiver"),
                    "must not be empty",
                ));
            }
            if c.steps.is_empty() {
                return Err(CoreError::config(
                    format!("delivery.chains[{i}].steps"),
                    "must list at least one channel",
                ));
            }
            for (j, s) in c.steps.iter().enumerate() {
                if s.channel.trim().is_empty() {
                    return Err(CoreError::config(
                        format!("delivery.chains[{i}].steps[{j}].channel"),
                        "must not be empty",
                    ));
                }
                if s.confirm_within_secs == Some(0) {
                    return Err(CoreError::config(
                        format!("delivery.chains[{i}].steps[{j}].confirm_within_secs"),
                        "must be greater than 0",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks that every chain step names a known channel instance.
    pub fn validate_channels<'a>(
        &self,
        known: impl Fn(&str) -> bool + 'a,
    ) -> Result<(), CoreError> {
        for (i, c) in self.chains.iter().enumerate() {
            for (j, s) in c.steps.iter().enumerate() {
                if !known(&s.channel) {
                    return Err(CoreError::config(
                        format!("delivery.chains[{i}].steps[{j}].channel"),
                        format!("unknown channel `{}`", s.channel),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The chain for a receiver and severity: the first configured chain that
    /// matches, else a one-step chain using the channel named `receiver`.
    pub fn chain_for(&self, receiver: &str, severity: Option<Severity>) -> Vec<ChainStep> {
        self.chains
            .iter()
            .find(|c| {
                c.receiver == receiver
                    && (c.severities.is_empty()
                        || severity.is_some_and(|s| c.severities.contains(&s)))
            })
            .map(|c| c.steps.clone())
            .unwrap_or_else(|| {
                vec![ChainStep {
                    channel: receiver.to_string(),
                    target: None,
                    confirm_within_secs: None,
                }]
            })
    }

    /// The per-attempt timeout.
    pub fn attempt_timeout(&self) -> Duration {
        Duration::from_millis(self.attempt_timeout_ms)
    }

    /// An annotated example, re-parsed by a test so the docs cannot rot.
    pub fn example_json() -> &'static str {
        r#"{
  "attempt_timeout_ms": 10000,
  "retry": { "max_attempts": 4, "initial_backoff_ms": 1000, "max_backoff_ms": 60000, "multiplier": 2.0 },
  "throttle": { "min_interval_secs": { "sms": 60, "voice": 60 } },
  "health": { "window_secs": 300, "min_samples": 3, "unhealthy_below": 0.5 },
  "chains": [
    { "receiver": "ops-slack", "severities": ["critical"],
      "steps": [
        { "channel": "ops-slack" },
        { "channel": "smtp", "target": "oncall@example.com" },
        { "channel": "twilio-sms", "target": "+15551230000", "confirm_within_secs": 120 },
        { "channel": "backup-sms", "target": "+15551230000" },
        { "channel": "twilio-voice", "target": "+15551230000" }
      ] }
  ]
}"#
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_and_validates() {
        let c: DeliveryConfig = serde_json::from_str(DeliveryConfig::example_json()).unwrap();
        c.validate().unwrap();
        assert_eq!(c.chains[0].steps.len(), 5);
        let steps = c.chain_for("ops-slack", Some(Severity::Critical));
        assert_eq!(steps[2].channel, "twilio-sms");
        // Other severities fall back to the receiver's own channel.
        let steps = c.chain_for("ops-slack", Some(Severity::Warning));
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].channel, "ops-slack");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_rejected_with_paths() {
        let e = serde_json::from_str::<DeliveryConfig>(r#"{"retries": 3}"#).unwrap_err();
        assert!(e.to_string().contains("retries"), "{e}");
        let mut c = DeliveryConfig::default();
        c.retry.multiplier = 0.5;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("delivery.retry.multiplier"), "{e}");
        let c: DeliveryConfig =
            serde_json::from_str(r#"{"chains":[{"receiver":"a","steps":[]}]}"#).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("delivery.chains[0].steps"), "{e}");
        let c: DeliveryConfig =
            serde_json::from_str(r#"{"chains":[{"receiver":"a","steps":[{"channel":"x"}]}]}"#)
                .unwrap();
        let e = c.validate_channels(|n| n == "a").unwrap_err().to_string();
        assert!(e.contains("delivery.chains[0].steps[0].channel"), "{e}");
        assert!(e.contains("unknown channel `x`"), "{e}");
    }
}
