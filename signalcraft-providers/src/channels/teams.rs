//! Microsoft Teams via a Workflows (or legacy incoming) webhook: one Adaptive
//! Card per notification. A thin variant of [`super::webhook`]: same HTTP
//! classification, no callbacks.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use signalcraft_core::channel::{Channel, Delivered, DeliveryError, Notification};
use signalcraft_core::model::{AlertStatus, Severity};

use super::error::ChannelError;
use super::http;

/// Configuration of one Teams webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    /// Channel instance name.
    pub name: String,
    /// Workflows webhook URL (a secret).
    pub url: String,
    /// Per-request timeout in milliseconds (default 10 000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    10_000
}

/// The Adaptive Card message.
pub fn render(n: &Notification) -> Value {
    let severity = n
        .incident
        .as_ref()
        .map(|i| i.severity)
        .or_else(|| n.alerts.iter().map(|a| a.severity).min())
        .unwrap_or(Severity::Info);
    let title = match &n.incident {
        Some(i) => format!("#{} {}", i.number, i.title),
        None => n.group_key.clone(),
    };
    let word = if n.status == AlertStatus::Resolved {
        "RESOLVED".to_string()
    } else {
        severity.as_str().to_uppercase()
    };
    let color = match (n.status, severity) {
        (AlertStatus::Resolved, _) => "Good",
        (_, Severity::Critical | Severity::Error) => "Attention",
        (_, Severity::Warning) => "Warning",
        _ => "Default",
    };
    let mut body = vec![
        json!({"type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": true,
        "color": color, "text": format!("[{word}] {title}")}),
    ];
    for a in n.alerts.iter().take(5) {
        body.push(json!({"type": "TextBlock", "wrap": true, "text": format!("- {}", a.summary)}));
    }
    let mut actions: Vec<Value> = n
        .runbooks
        .iter()
        .map(|r| json!({"type": "Action.OpenUrl", "title": r.text.clone().unwrap_or_else(|| "Runbook".into()), "url": r.href}))
        .collect();
    if let Some(url) = n.incident.as_ref().and_then(|i| i.url.clone()) {
        actions.push(json!({"type": "Action.OpenUrl", "title": "Open incident", "url": url}));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard", "version": "1.4", "body": body, "actions": actions
            }
        }]
    })
}

/// The Teams channel.
pub struct TeamsChannel {
    name: String,
    url: url::Url,
    shown: String,
    client: reqwest::Client,
}

impl TeamsChannel {
    /// Validates the config and builds the channel.
    pub fn new(c: &TeamsConfig, path: &str) -> Result<Self, ChannelError> {
        let url = http::parse_url(&c.url, &format!("{path}.url"))?;
        if c.timeout_ms == 0 {
            return Err(ChannelError::config(
                format!("{path}.timeout_ms"),
                "must be greater than 0",
            ));
        }
        Ok(TeamsChannel {
            name: c.name.clone(),
            shown: http::redact_url(&url),
            url,
            client: http::client(Duration::from_millis(c.timeout_ms), path)?,
        })
    }
}

#[async_trait]
impl Channel for TeamsChannel {
    fn kind(&self) -> &str {
        "teams"
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, n: &Notification) -> Result<Delivered, DeliveryError> {
        let what = format!("teams {}", self.shown);
        let resp = self
            .client
            .post(self.url.clone())
            .json(&render(n))
            .send()
            .await
            .map_err(|e| http::classify_send_error(e, &what))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let _ = resp.bytes().await;
        match http::classify_status(status, &headers, &what, None) {
            Some(e) => Err(e),
            None => Ok(Delivered::default()),
        }
    }
}
