//! The server's live integrations: URL key → configured provider.
//!
//! Integrations come from `[[integrations]]` in the config and from the store
//! (`Table::Integrations`, created through `POST /api/v1/integrations`). Each is built
//! once into a `Provider` by the providers [`Registry`]; requests to
//! `POST /integrations/{key}` look the key up here (a hash map keyed by the SHA-256
//! of the key, so the lookup does not compare key bytes one by one).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jiff::Timestamp;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use signalcraft_core::provider::Provider;
use signalcraft_providers::sources::{Integration, Registry};

use crate::auth::hash_token;
use crate::config::{IntegrationConfig, ResolvedSecrets};
use crate::error::ApiError;

/// One live integration.
pub struct LiveIntegration {
    /// Name (unique).
    pub name: String,
    /// Provider type.
    pub provider_type: String,
    /// Requests per minute before 429 (0 = unlimited).
    pub rate_limit_per_minute: u32,
    /// The built provider (verify + parse).
    pub provider: Box<dyn Provider>,
    /// Where it was defined: `config` or `api`.
    pub origin: &'static str,
}

impl std::fmt::Debug for LiveIntegration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveIntegration")
            .field("name", &self.name)
            .field("provider_type", &self.provider_type)
            .finish_non_exhaustive()
    }
}

/// The stored form of an API-created integration (`Table::Integrations`, key: name).
/// Secrets are sealed at rest by the store when an encryption key is configured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredIntegration {
    /// Name.
    pub name: String,
    /// Provider type.
    #[serde(rename = "type")]
    pub provider_type: String,
    /// The URL key.
    pub key: String,
    /// Named secrets.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Provider options.
    #[serde(default)]
    pub options: serde_json::Value,
    /// Rate limit per minute.
    #[serde(default)]
    pub rate_limit_per_minute: u32,
    /// Created.
    pub created_at: Timestamp,
}

/// What the API shows about an integration (never the key or secrets).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IntegrationView {
    /// Name.
    pub name: String,
    /// Provider type.
    #[serde(rename = "type")]
    pub provider_type: String,
    /// Requests per minute before 429 (0 = unlimited).
    pub rate_limit_per_minute: u32,
    /// `config` or `api`.
    pub origin: String,
}

/// Live integrations by key hash.
#[derive(Default, Clone)]
pub struct Integrations {
    by_key_hash: Arc<RwLock<HashMap<String, Arc<LiveIntegration>>>>,
}

impl std::fmt::Debug for Integrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Integrations")
            .field("count", &self.by_key_hash.read().len())
            .finish()
    }
}

/// Builds the providers-crate [`Integration`] for a config entry.
///
/// The integration's `key` (which providers stamp on events as the source and scope
/// dedup keys with) is the integration *name*, so the URL key never appears in alert
/// data; PagerDuty integrations use the routing key, which PagerDuty payloads carry
/// and the provider checks.
pub fn provider_integration(
    provider_type: &str,
    name: &str,
    url_key: &str,
    secrets: &BTreeMap<String, String>,
    options: serde_json::Value,
) -> Integration {
    let key = if provider_type == "pagerduty" {
        url_key
    } else {
        name
    };
    let mut i = Integration::new(provider_type, key).with_options(options);
    for (k, v) in secrets {
        i = i.with_secret(k.clone(), v.clone());
    }
    if provider_type == "pagerduty" && !secrets.contains_key("routing_key") {
        // The routing key is the URL key: PagerDuty clients send it in every event.
        i = i.with_secret("routing_key", url_key);
    }
    i
}

impl Integrations {
    /// Builds every configured integration, collecting errors with their config path.
    pub fn from_config(
        registry: &Registry,
        configs: &[IntegrationConfig],
        secrets: &ResolvedSecrets,
        body_limit: usize,
    ) -> Result<Self, Vec<crate::config::ConfigError>> {
        let me = Integrations::default();
        let mut errors = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let Some(key) = secrets.integration_keys.get(&c.name) else {
                continue;
            };
            let named: BTreeMap<String, String> = secrets
                .integration_secrets
                .get(&c.name)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.expose().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let options = serde_json::to_value(&c.options).unwrap_or(serde_json::Value::Null);
            let options = if c.options.is_empty() {
                serde_json::Value::Null
            } else {
                options
            };
            let integ = provider_integration(&c.provider, &c.name, key.expose(), &named, options)
                .with_max_body_bytes(body_limit);
            match registry.build(&integ) {
                Ok(provider) => me.insert(
                    key.expose(),
                    LiveIntegration {
                        name: c.name.clone(),
                        provider_type: c.provider.clone(),
                        rate_limit_per_minute: c.rate_limit_per_minute,
                        provider,
                        origin: "config",
                    },
                ),
                Err(e) => errors.push(crate::config::ConfigError {
                    path: format!("integrations[{i}]"),
                    message: e.to_string(),
                }),
            }
        }
        if errors.is_empty() {
            Ok(me)
        } else {
            Err(errors)
        }
    }

    /// Adds (or replaces) an integration under its URL key.
    pub fn insert(&self, url_key: &str, live: LiveIntegration) {
        let mut map = self.by_key_hash.write();
        map.retain(|_, v| v.name != live.name);
        map.insert(hash_token(url_key), Arc::new(live));
    }

    /// Removes an integration by name; returns whether it existed.
    pub fn remove(&self, name: &str) -> bool {
        let mut map = self.by_key_hash.write();
        let before = map.len();
        map.retain(|_, v| v.name != name);
        map.len() != before
    }

    /// The integration for a URL key.
    pub fn by_key(&self, url_key: &str) -> Option<Arc<LiveIntegration>> {
        self.by_key_hash.read().get(&hash_token(url_key)).cloned()
    }

    /// The integration with a name.
    pub fn by_name(&self, name: &str) -> Option<Arc<LiveIntegration>> {
        self.by_key_hash
            .read()
            .values()
            .find(|v| v.name == name)
            .cloned()
    }

    /// Every integration, by name.
    pub fn list(&self) -> Vec<IntegrationView> {
        let mut v: Vec<IntegrationView> = self
            .by_key_hash
            .read()
            .values()
            .map(|l| IntegrationView {
                name: l.name.clone(),
                provider_type: l.provider_type.clone(),
                rate_limit_per_minute: l.rate_limit_per_minute,
                origin: l.origin.to_string(),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

/// Maps a provider error to the HTTP problem it answers with.
pub fn provider_problem(e: &signalcraft_core::provider::ProviderError) -> ApiError {
    use axum::http::StatusCode;
    use signalcraft_core::provider::ProviderError as P;
    match e {
        P::Unauthorized { .. } => ApiError::new(StatusCode::FORBIDDEN, "forbidden", e.to_string()),
        e if e.is_auth_failure() => ApiError::bad_signature(e.to_string()),
        P::TooLarge { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            e.to_string(),
        ),
        P::Malformed { field, .. } => ApiError::invalid(field.clone(), e.to_string()),
        P::InvalidConfig { .. } | P::UnknownProvider(_) => ApiError::internal(e.to_string()),
        _ => ApiError::bad_body(e.to_string()),
    }
}
