//! [`Integration`]: one configured instance of a source — provider type, integration
//! key, secrets and options — and the envelope every source shares.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use signalcraft_core::model::Source;
use signalcraft_core::provider::ProviderError;

use super::secret::Secret;

/// The default body size limit: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// A configured inbound integration.
///
/// The envelope (`type`, `key`, `max_body_bytes`, `keep_raw`) is shared by every
/// source; `secrets` and `options` are the source's own and are checked by its
/// `validate()` (see [`super::SourceType`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Integration {
    /// Provider type, e.g. `alertmanager` (see [`super::Registry::types`]).
    #[serde(rename = "type")]
    pub provider_type: String,
    /// The integration key: names this integration in URLs and scopes dedup keys.
    pub key: String,
    /// Named secrets (`webhook_secret`, `token`, `basic_auth`, …; see each source).
    #[serde(default)]
    pub secrets: BTreeMap<String, Secret>,
    /// Source-specific options (see each source's `*Config`); `null` means defaults.
    #[serde(default)]
    pub options: serde_json::Value,
    /// Bodies larger than this are refused with `ProviderError::TooLarge` (default 1 MiB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Keep the raw provider payload in each event's `raw` field (default true).
    #[serde(default = "default_true")]
    pub keep_raw: bool,
}

fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

fn default_true() -> bool {
    true
}

impl Integration {
    /// An integration with no secrets and default options.
    pub fn new(provider_type: impl Into<String>, key: impl Into<String>) -> Self {
        Integration {
            provider_type: provider_type.into(),
            key: key.into(),
            secrets: BTreeMap::new(),
            options: serde_json::Value::Null,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            keep_raw: true,
        }
    }

    /// Adds a secret.
    pub fn with_secret(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.secrets.insert(name.into(), Secret::new(value));
        self
    }

    /// Sets the options.
    pub fn with_options(mut self, options: serde_json::Value) -> Self {
        self.options = options;
        self
    }

    /// Sets the body size limit.
    pub fn with_max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// The named secret, if configured.
    pub fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets.get(name)
    }

    /// The [`Source`] stamped on every event of this integration.
    pub fn source(&self) -> Source {
        Source {
            provider: self.provider_type.as_str().into(),
            integration: self.key.as_str().into(),
        }
    }

    /// Decodes `options` into a source's config (`null` → `Default`); errors name
    /// the path under `options`.
    pub fn options_as<T: DeserializeOwned + Default>(
        &self,
        provider: &str,
    ) -> Result<T, ProviderError> {
        if self.options.is_null() {
            return Ok(T::default());
        }
        serde_path_to_error::deserialize(&self.options).map_err(|e| {
            let path = e.path().to_string();
            ProviderError::InvalidConfig {
                provider: provider.to_string(),
                field: if path == "." {
                    "options".into()
                } else {
                    format!("options.{path}")
                },
                message: e.into_inner().to_string(),
            }
        })
    }

    /// Checks the secrets: every `required` one is present, no name outside
    /// `required` + `optional` is configured (typos), and each value is non-empty
    /// without surrounding whitespace.
    pub fn check_secrets(
        &self,
        provider: &str,
        required: &[&str],
        optional: &[&str],
    ) -> Result<(), ProviderError> {
        let invalid = |field: String, message: String| ProviderError::InvalidConfig {
            provider: provider.to_string(),
            field,
            message,
        };
        for name in required {
            if !self.secrets.contains_key(*name) {
                return Err(invalid(
                    format!("secrets.{name}"),
                    "required secret is missing".into(),
                ));
            }
        }
        for (name, value) in &self.secrets {
            if !required.contains(&name.as_str()) && !optional.contains(&name.as_str()) {
                let mut known: Vec<&str> = required.iter().chain(optional).copied().collect();
                known.sort_unstable();
                return Err(invalid(
                    format!("secrets.{name}"),
                    format!("unknown secret; this source takes {known:?}"),
                ));
            }
            let v = value.expose();
            if v.is_empty() {
                return Err(invalid(
                    format!("secrets.{name}"),
                    "must not be empty".into(),
                ));
            }
            if v.trim() != v {
                return Err(invalid(
                    format!("secrets.{name}"),
                    "has leading or trailing whitespace (a stray newline from a file?)".into(),
                ));
            }
        }
        if self.max_body_bytes == 0 {
            return Err(invalid("max_body_bytes".into(), "must be positive".into()));
        }
        if self.key.is_empty() {
            return Err(invalid("key".into(), "must not be empty".into()));
        }
        Ok(())
    }
}
