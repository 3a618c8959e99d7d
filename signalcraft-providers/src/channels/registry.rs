//! The channel registry: every channel type, listed once. A config entry
//! (`{"type": "slack", "name": …, …}`) becomes an `Arc<dyn Channel>`; embedders
//! add their own channels with [`ChannelRegistry::register`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use signalcraft_core::channel::Channel;

use super::email::{EmailChannel, EmailConfig};
use super::error::ChannelError;
use super::slack::{SlackChannel, SlackConfig};
use super::teams::{TeamsChannel, TeamsConfig};
use super::twilio::{TwilioChannel, TwilioConfig, TwilioMode};
use super::webhook::{WebhookChannel, WebhookConfig};

/// Every channel `type` this build knows.
pub const KNOWN_TYPES: [&str; 6] = [
    "slack",
    "email",
    "twilio_sms",
    "twilio_voice",
    "webhook",
    "teams",
];

/// One configured channel instance, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelConfig {
    /// Slack (webhook or Web API).
    Slack(SlackConfig),
    /// SMTP email.
    Email(EmailConfig),
    /// Twilio SMS.
    TwilioSms(TwilioConfig),
    /// Twilio voice call.
    TwilioVoice(TwilioConfig),
    /// Alertmanager-compatible webhook.
    Webhook(WebhookConfig),
    /// Microsoft Teams.
    Teams(TeamsConfig),
}

impl ChannelConfig {
    /// Parses one entry, with a typed error for an unknown `type` and the config
    /// path in every message.
    pub fn from_json(v: &serde_json::Value, path: &str) -> Result<Self, ChannelError> {
        let kind = v
            .get("type")
            .and_then(|t| t.as_str())
            .ok_or_else(|| ChannelError::config(format!("{path}.type"), "missing channel type"))?;
        if !KNOWN_TYPES.contains(&kind) {
            return Err(ChannelError::UnknownType {
                path: format!("{path}.type"),
                kind: kind.chars().take(40).collect(),
                known: KNOWN_TYPES.join(", "),
            });
        }
        serde_json::from_value(v.clone()).map_err(|e| ChannelError::config(path, e.to_string()))
    }

    /// The instance name.
    pub fn name(&self) -> &str {
        match self {
            ChannelConfig::Slack(c) => &c.name,
            ChannelConfig::Email(c) => &c.name,
            ChannelConfig::TwilioSms(c) | ChannelConfig::TwilioVoice(c) => &c.name,
            ChannelConfig::Webhook(c) => &c.name,
            ChannelConfig::Teams(c) => &c.name,
        }
    }

    /// Builds the channel.
    pub fn build(&self, path: &str) -> Result<Arc<dyn Channel>, ChannelError> {
        if self.name().trim().is_empty() {
            return Err(ChannelError::config(
                format!("{path}.name"),
                "must not be empty",
            ));
        }
        Ok(match self {
            ChannelConfig::Slack(c) => Arc::new(SlackChannel::new(c, path)?),
            ChannelConfig::Email(c) => Arc::new(EmailChannel::new(c, path)?),
            ChannelConfig::TwilioSms(c) => Arc::new(TwilioChannel::new(c, TwilioMode::Sms, path)?),
            ChannelConfig::TwilioVoice(c) => {
                Arc::new(TwilioChannel::new(c, TwilioMode::Voice, path)?)
            }
            ChannelConfig::Webhook(c) => Arc::new(WebhookChannel::new(c, path)?),
            ChannelConfig::Teams(c) => Arc::new(TeamsChannel::new(c, path)?),
        })
    }
}

/// Named channel instances.
#[derive(Default, Clone)]
pub struct ChannelRegistry {
    channels: BTreeMap<String, Arc<dyn Channel>>,
}

impl ChannelRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds every configured channel; paths are `channels[i]`.
    pub fn from_configs(configs: &[ChannelConfig]) -> Result<Self, ChannelError> {
        let mut r = ChannelRegistry::new();
        for (i, c) in configs.iter().enumerate() {
            let path = format!("channels[{i}]");
            let ch = c.build(&path)?;
            r.register(ch).map_err(|_| {
                ChannelError::config(
                    format!("{path}.name"),
                    format!("duplicate channel name `{}`", c.name()),
                )
            })?;
        }
        Ok(r)
    }

    /// Adds a channel (an embedder's own, or a built one). Names must be unique.
    pub fn register(&mut self, ch: Arc<dyn Channel>) -> Result<(), ChannelError> {
        let name = ch.name().to_string();
        if self.channels.contains_key(&name) {
            return Err(ChannelError::config(
                "channels",
                format!("duplicate channel name `{name}`"),
            ));
        }
        self.channels.insert(name, ch);
        Ok(())
    }

    /// The channel called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Channel>> {
        self.channels.get(name).cloned()
    }

    /// Every channel, by name (what `DeliveryPipeline::new` takes).
    pub fn channels(&self) -> Vec<Arc<dyn Channel>> {
        self.channels.values().cloned().collect()
    }
}
