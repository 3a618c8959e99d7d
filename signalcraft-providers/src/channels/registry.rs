//! The channel registry: every channel type, listed once. A config entry
//! (`{"type": "slack", "name": …, …}`) becomes an `Arc<dyn Channel>`; embedders
//! add their own channels with [`ChannelRegistry::register`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use signalcraft_core::channel::Channel;

#[cfg(feature = "channel-email")]
use super::email::{EmailChannel, EmailConfig};
use super::error::ChannelError;
#[cfg(feature = "channel-slack")]
use super::slack::{SlackChannel, SlackConfig};
#[cfg(feature = "channel-teams")]
use super::teams::{TeamsChannel, TeamsConfig};
#[cfg(feature = "channel-twilio")]
use super::twilio::{TwilioChannel, TwilioConfig, TwilioMode};
#[cfg(feature = "channel-webhook")]
use super::webhook::{WebhookChannel, WebhookConfig};

/// Every channel `type` and the cargo feature that compiles it in.
pub const ALL_TYPES: [(&str, &str); 6] = [
    ("slack", "channel-slack"),
    ("email", "channel-email"),
    ("twilio_sms", "channel-twilio"),
    ("twilio_voice", "channel-twilio"),
    ("webhook", "channel-webhook"),
    ("teams", "channel-teams"),
];

/// The channel `type`s compiled into this build.
pub fn known_types() -> Vec<&'static str> {
    #[allow(unused_mut)] // empty when no channel feature is enabled
    let mut v = Vec::new();
    #[cfg(feature = "channel-slack")]
    v.push("slack");
    #[cfg(feature = "channel-email")]
    v.push("email");
    #[cfg(feature = "channel-twilio")]
    v.extend(["twilio_sms", "twilio_voice"]);
    #[cfg(feature = "channel-webhook")]
    v.push("webhook");
    #[cfg(feature = "channel-teams")]
    v.push("teams");
    v
}

/// One configured channel instance, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelConfig {
    /// Slack (webhook or Web API).
    #[cfg(feature = "channel-slack")]
    Slack(SlackConfig),
    /// SMTP email.
    #[cfg(feature = "channel-email")]
    Email(EmailConfig),
    /// Twilio SMS.
    #[cfg(feature = "channel-twilio")]
    TwilioSms(TwilioConfig),
    /// Twilio voice call.
    #[cfg(feature = "channel-twilio")]
    TwilioVoice(TwilioConfig),
    /// Alertmanager-compatible webhook.
    #[cfg(feature = "channel-webhook")]
    Webhook(WebhookConfig),
    /// Microsoft Teams.
    #[cfg(feature = "channel-teams")]
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
        let known = known_types();
        if !known.contains(&kind) {
            if let Some((_, feature)) = ALL_TYPES.iter().find(|(t, _)| *t == kind) {
                return Err(ChannelError::config(
                    format!("{path}.type"),
                    format!("channel type `{kind}` is not compiled in (cargo feature `{feature}`)"),
                ));
            }
            return Err(ChannelError::UnknownType {
                path: format!("{path}.type"),
                kind: kind.chars().take(40).collect(),
                known: known.join(", "),
            });
        }
        serde_json::from_value(v.clone()).map_err(|e| ChannelError::config(path, e.to_string()))
    }

    /// The instance name.
    pub fn name(&self) -> &str {
        match self {
            #[cfg(feature = "channel-slack")]
            ChannelConfig::Slack(c) => &c.name,
            #[cfg(feature = "channel-email")]
            ChannelConfig::Email(c) => &c.name,
            #[cfg(feature = "channel-twilio")]
            ChannelConfig::TwilioSms(c) | ChannelConfig::TwilioVoice(c) => &c.name,
            #[cfg(feature = "channel-webhook")]
            ChannelConfig::Webhook(c) => &c.name,
            #[cfg(feature = "channel-teams")]
            ChannelConfig::Teams(c) => &c.name,
            #[allow(unreachable_patterns)]
            _ => "",
        }
    }

    /// Builds the channel.
    pub fn build(&self, path: &str) -> Result<Arc<dyn Channel>, ChannelError> {
        self.build_with_store(path, None)
    }

    /// Builds the channel; channels that keep state beyond the notification log
    /// use `store` (today: email thread roots, see
    /// [`EmailChannel::with_thread_store`](super::email::EmailChannel::with_thread_store)).
    #[allow(unreachable_code)] // with no channel feature the enum is empty
    pub fn build_with_store(
        &self,
        path: &str,
        store: Option<Arc<dyn signalcraft_core::store::Store>>,
    ) -> Result<Arc<dyn Channel>, ChannelError> {
        let _ = &store; // unused without the email feature
        if self.name().trim().is_empty() {
            return Err(ChannelError::config(
                format!("{path}.name"),
                "must not be empty",
            ));
        }
        Ok(match self {
            #[cfg(feature = "channel-slack")]
            ChannelConfig::Slack(c) => Arc::new(SlackChannel::new(c, path)?),
            #[cfg(feature = "channel-email")]
            ChannelConfig::Email(c) => {
                let ch = EmailChannel::new(c, path)?;
                Arc::new(match store {
                    Some(s) => ch.with_thread_store(s),
                    None => ch,
                })
            }
            #[cfg(feature = "channel-twilio")]
            ChannelConfig::TwilioSms(c) => Arc::new(TwilioChannel::new(c, TwilioMode::Sms, path)?),
            #[cfg(feature = "channel-twilio")]
            ChannelConfig::TwilioVoice(c) => {
                Arc::new(TwilioChannel::new(c, TwilioMode::Voice, path)?)
            }
            #[cfg(feature = "channel-webhook")]
            ChannelConfig::Webhook(c) => Arc::new(WebhookChannel::new(c, path)?),
            #[cfg(feature = "channel-teams")]
            ChannelConfig::Teams(c) => Arc::new(TeamsChannel::new(c, path)?),
            #[allow(unreachable_patterns)]
            _ => {
                return Err(ChannelError::config(
                    path,
                    "no channel types are compiled in",
                ));
            }
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
