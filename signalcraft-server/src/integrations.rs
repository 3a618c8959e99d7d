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

/// The name under which an integration record keeps its URL key inside `secrets`
/// (reserved: secret names starting with `$` are refused by the API).
pub const KEY_SECRET: &str = "$integration_key";

/// An API-created integration (`Table::Integrations`, key: name).
///
/// Stored form (JSON): `name`, `type`, `key_sha256` (hex SHA-256 of the URL key),
/// `secrets` (the named provider secrets plus the URL key under [`KEY_SECRET`]),
/// `options`, `rate_limit_per_minute`, `created_at`. The store seals the whole
/// `secrets` field at rest when `[server] encryption_key` is set, so the URL key is
/// never in the database file in clear then; without a key it is stored in clear like
/// the other secrets.
///
/// Older records kept the URL key in clear in a top-level `key` field; they still
/// load, and [`load_stored`](crate::api::v1::integrations::load_stored) re-writes
/// every record in the current form at start.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "IntegrationRecord", into = "IntegrationRecord")]
pub struct StoredIntegration {
    /// Name.
    pub name: String,
    /// Provider type.
    pub provider_type: String,
    /// The URL key (the `{key}` in `/integrations/{key}`).
    pub key: String,
    /// Named provider secrets (without the URL key).
    pub secrets: BTreeMap<String, String>,
    /// Provider options.
    pub options: serde_json::Value,
    /// Rate limit per minute.
    pub rate_limit_per_minute: u32,
    /// Created.
    pub created_at: Timestamp,
}

impl std::fmt::Debug for StoredIntegration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredIntegration")
            .field("name", &self.name)
            .field("provider_type", &self.provider_type)
            .field("secret_names", &self.secrets.keys().collect::<Vec<_>>())
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// The JSON form of a [`StoredIntegration`] (both the current and the old form).
#[derive(Serialize, Deserialize)]
struct IntegrationRecord {
    name: String,
    #[serde(rename = "type")]
    provider_type: String,
    /// Old form only: the URL key in clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    /// Current form: hex SHA-256 of the URL key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_sha256: Option<String>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    #[serde(default)]
    options: serde_json::Value,
    #[serde(default)]
    rate_limit_per_minute: u32,
    created_at: Timestamp,
}

impl From<StoredIntegration> for IntegrationRecord {
    fn from(s: StoredIntegration) -> Self {
        let key_sha256 = Some(hash_token(&s.key));
        let mut secrets = s.secrets;
        secrets.insert(KEY_SECRET.to_string(), s.key);
        IntegrationRecord {
            name: s.name,
            provider_type: s.provider_type,
            key: None,
            key_sha256,
            secrets,
            options: s.options,
            rate_limit_per_minute: s.rate_limit_per_minute,
            created_at: s.created_at,
        }
    }
}

impl TryFrom<IntegrationRecord> for StoredIntegration {
    type Error = String;

    /// Errors never contain the key or a secret.
    fn try_from(mut r: IntegrationRecord) -> Result<Self, String> {
        let key = match (r.secrets.remove(KEY_SECRET), r.key) {
            (Some(k), _) | (None, Some(k)) => k,
            (None, None) => {
                return Err(format!(
                    "integration record {:?} has no key (neither secrets.{KEY_SECRET} nor key)",
                    r.name
                ));
            }
        };
        if let Some(h) = &r.key_sha256
            && !h.eq_ignore_ascii_case(&hash_token(&key))
        {
            return Err(format!(
                "integration record {:?}: key_sha256 does not match its key",
                r.name
            ));
        }
        Ok(StoredIntegration {
            name: r.name,
            provider_type: r.provider_type,
            key,
            secrets: r.secrets,
            options: r.options,
            rate_limit_per_minute: r.rate_limit_per_minute,
            created_at: r.created_at,
        })
    }
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

/// Live integrations by key hash, and the SNS signing-certificate fetcher they share.
#[derive(Clone)]
pub struct Integrations {
    by_key_hash: Arc<RwLock<HashMap<String, Arc<LiveIntegration>>>>,
    certificate_fetcher: Arc<RwLock<Arc<dyn CertificateFetcher>>>,
    certificate_fetches: Arc<CertificateFetches>,
}

impl Default for Integrations {
    fn default() -> Self {
        Integrations {
            by_key_hash: Arc::default(),
            certificate_fetcher: Arc::new(RwLock::new(Arc::new(HttpsCertificateFetcher::new()))),
            certificate_fetches: Arc::default(),
        }
    }
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

    /// The fetcher used when a `cloudwatch` request names a signing certificate that
    /// is neither configured nor cached (default: [`HttpsCertificateFetcher`]).
    pub fn certificate_fetcher(&self) -> Arc<dyn CertificateFetcher> {
        self.certificate_fetcher.read().clone()
    }

    /// Replaces the certificate fetcher (embedders with their own HTTP stack; tests).
    pub fn set_certificate_fetcher(&self, fetcher: Arc<dyn CertificateFetcher>) {
        *self.certificate_fetcher.write() = fetcher;
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

/// Why an SNS signing certificate could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateFetchError {
    /// The URL is not an SNS certificate URL (`https://sns.<region>.amazonaws.com/….pem`);
    /// nothing was fetched.
    #[error("signing certificate URL refused: {0}")]
    Refused(String),
    /// The certificate is larger than the limit.
    #[error("signing certificate is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The host did not answer in time.
    #[error("fetching the signing certificate timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// Any other failure (connection, HTTP status, not a PEM certificate).
    #[error("fetching the signing certificate failed: {0}")]
    Failed(String),
}

/// Fetches SNS signing certificates. Injected (see
/// [`Integrations::set_certificate_fetcher`]) so the server's tests never reach AWS.
///
/// Contract: an implementation fetches only URLs that pass
/// [`signalcraft_providers::sources::sns::check_signing_cert_url`] and answers
/// [`CertificateFetchError::Refused`] for any other without any network traffic; it
/// bounds the time and size of a fetch.
#[async_trait::async_trait]
pub trait CertificateFetcher: Send + Sync {
    /// The PEM text served at `url`.
    async fn fetch(&self, url: &str) -> Result<String, CertificateFetchError>;
}

/// The default fetcher: one HTTPS GET with a timeout (default 5 s), a size limit
/// (default 64 KiB; SNS certificates are about 2 KiB), no redirects.
pub struct HttpsCertificateFetcher {
    client: Option<reqwest::Client>,
    timeout: std::time::Duration,
    max_bytes: usize,
    /// Tests only: where the checked URL's path is fetched instead (an
    /// `http://127.0.0.1:port` base), after the host check.
    #[cfg(test)]
    pub(crate) redirect_base: Option<String>,
}

impl std::fmt::Debug for HttpsCertificateFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsCertificateFetcher")
            .field("timeout", &self.timeout)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl Default for HttpsCertificateFetcher {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpsCertificateFetcher {
    /// A fetcher with the default limits (5 s, 64 KiB).
    pub fn new() -> Self {
        Self::with_limits(std::time::Duration::from_secs(5), 64 * 1024)
    }

    /// A fetcher bounded by `timeout` per fetch and `max_bytes` per certificate.
    pub fn with_limits(timeout: std::time::Duration, max_bytes: usize) -> Self {
        crate::server::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("signalcraft/", env!("CARGO_PKG_VERSION")))
            .build()
            .ok();
        HttpsCertificateFetcher {
            client,
            timeout,
            max_bytes,
            #[cfg(test)]
            redirect_base: None,
        }
    }

    fn target(&self, url: &str) -> String {
        #[cfg(test)]
        if let Some(base) = &self.redirect_base {
            // `https://host/path` → `{base}/path` (the URL already passed the host check).
            let path = url.splitn(4, '/').nth(3).unwrap_or("");
            return format!("{base}/{path}");
        }
        url.to_string()
    }
}

#[async_trait::async_trait]
impl CertificateFetcher for HttpsCertificateFetcher {
    async fn fetch(&self, url: &str) -> Result<String, CertificateFetchError> {
        signalcraft_providers::sources::sns::check_signing_cert_url(url)
            .map_err(CertificateFetchError::Refused)?;
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| CertificateFetchError::Failed("no HTTP client".into()))?;
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                CertificateFetchError::Timeout(self.timeout)
            } else {
                CertificateFetchError::Failed(e.without_url().to_string())
            }
        };
        let mut resp = client.get(self.target(url)).send().await.map_err(failed)?;
        if !resp.status().is_success() {
            return Err(CertificateFetchError::Failed(format!(
                "HTTP status {}",
                resp.status().as_u16()
            )));
        }
        let too_large = CertificateFetchError::TooLarge {
            limit: self.max_bytes,
        };
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(too_large);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body)
            .map_err(|_| CertificateFetchError::Failed("certificate is not UTF-8 text".into()))
    }
}

/// How long a failed certificate fetch is answered from memory before the URL is
/// fetched again.
pub const CERTIFICATE_FAILURE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// Failed fetches remembered at most (older ones are forgotten first).
const MAX_REMEMBERED_FAILURES: usize = 1024;

/// Single flight and a negative cache for signing-certificate fetches: a burst of
/// SNS requests naming one uncached certificate makes one fetch, and a URL whose
/// fetch failed is not fetched again for [`CERTIFICATE_FAILURE_TTL`] (each request
/// gets the same error meanwhile), so a bad or unreachable URL cannot turn every
/// request into an outbound HTTPS call.
#[derive(Default)]
struct CertificateFetches {
    /// One lock per URL being fetched; requests for it wait on the same lock.
    in_flight: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Recent failures by URL.
    failed: parking_lot::Mutex<HashMap<String, (std::time::Instant, CertificateFetchError)>>,
}

impl CertificateFetches {
    fn recent_failure(&self, url: &str) -> Option<CertificateFetchError> {
        let failed = self.failed.lock();
        let (at, e) = failed.get(url)?;
        (at.elapsed() < CERTIFICATE_FAILURE_TTL).then(|| e.clone())
    }

    fn remember_failure(&self, url: &str, e: &CertificateFetchError) {
        let mut failed = self.failed.lock();
        failed.retain(|_, (at, _)| at.elapsed() < CERTIFICATE_FAILURE_TTL);
        if failed.len() >= MAX_REMEMBERED_FAILURES
            && let Some(oldest) = failed
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
        {
            failed.remove(&oldest);
        }
        failed.insert(url.to_string(), (std::time::Instant::now(), e.clone()));
    }

    /// Fetches `url` unless it failed recently or another request fetched it into
    /// `registry`'s cache while this one waited; `Ok(None)` when it is cached now.
    async fn fetch(
        &self,
        url: &str,
        registry: &Registry,
        fetcher: &dyn CertificateFetcher,
    ) -> Result<Option<String>, CertificateFetchError> {
        if let Some(e) = self.recent_failure(url) {
            return Err(e);
        }
        let lock = self
            .in_flight
            .lock()
            .entry(url.to_string())
            .or_default()
            .clone();
        let _turn = lock.lock().await;
        if registry.certificate_cache().get(url).is_some() {
            return Ok(None);
        }
        if let Some(e) = self.recent_failure(url) {
            return Err(e);
        }
        let result = fetcher.fetch(url).await;
        if let Err(e) = &result {
            self.remember_failure(url, e);
        }
        let mut in_flight = self.in_flight.lock();
        if in_flight.get(url).is_some_and(|l| Arc::ptr_eq(l, &lock)) {
            in_flight.remove(url);
        }
        result.map(Some)
    }
}

/// Fetches the signing certificate `url` through the integrations' fetcher and puts
/// it in `registry`'s cache; concurrent requests for one URL share one fetch, and a
/// failed fetch is answered from memory for [`CERTIFICATE_FAILURE_TTL`]. Maps
/// failures to the HTTP problem the webhook answers: a refused URL → 403, a
/// certificate over the size limit → 413, anything else → 502.
pub async fn fetch_signing_certificate(
    integrations: &Integrations,
    registry: &Registry,
    url: &str,
) -> Result<(), ApiError> {
    use axum::http::StatusCode;
    let fetcher = integrations.certificate_fetcher();
    let fetched = integrations
        .certificate_fetches
        .fetch(url, registry, fetcher.as_ref())
        .await
        .map_err(|e| match e {
            CertificateFetchError::Refused(_) => ApiError::forbidden(e.to_string()),
            CertificateFetchError::TooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                e.to_string(),
            ),
            _ => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "certificate-unavailable",
                e.to_string(),
            ),
        })?;
    let Some(pem) = fetched else {
        return Ok(()); // fetched by a concurrent request
    };
    registry
        .certificate_cache()
        .insert_pem(url, &pem)
        .map_err(|m| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "certificate-unavailable",
                format!("signing certificate {url}: {m}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "url-key-0123456789abcdef";

    fn record() -> StoredIntegration {
        StoredIntegration {
            name: "gh".into(),
            provider_type: "github".into(),
            key: KEY.into(),
            secrets: BTreeMap::from([("webhook_secret".to_string(), "s3cret".to_string())]),
            options: serde_json::Value::Null,
            rate_limit_per_minute: 5,
            created_at: Timestamp::from_second(1_700_000_000).expect("timestamp"),
        }
    }

    #[test]
    fn the_key_is_stored_inside_secrets_with_its_hash_beside_it() {
        let v = serde_json::to_value(record()).expect("serialize");
        assert!(v.get("key").is_none(), "no top-level key: {v}");
        assert_eq!(v["key_sha256"], hash_token(KEY));
        assert_eq!(v["secrets"][KEY_SECRET], KEY);
        assert_eq!(v["secrets"]["webhook_secret"], "s3cret");
        // Everything outside `secrets` (what the store leaves unsealed) lacks the key.
        let mut outside = v.clone();
        outside["secrets"] = serde_json::Value::Null;
        assert!(!outside.to_string().contains(KEY), "{outside}");

        let back: StoredIntegration = serde_json::from_value(v).expect("deserialize");
        assert_eq!(back.key, KEY);
        assert_eq!(back.secrets.len(), 1, "the key is not a provider secret");
        assert_eq!(back.rate_limit_per_minute, 5);
    }

    #[test]
    fn old_form_records_with_a_clear_key_still_load() {
        let old = serde_json::json!({
            "name": "gh", "type": "github", "key": KEY,
            "secrets": {"webhook_secret": "s3cret"}, "options": null,
            "rate_limit_per_minute": 0, "created_at": "2026-01-01T00:00:00Z"
        });
        let rec: StoredIntegration = serde_json::from_value(old).expect("old form");
        assert_eq!(rec.key, KEY);
        assert_eq!(rec.secrets["webhook_secret"], "s3cret");
        let rewritten = serde_json::to_value(&rec).expect("serialize");
        assert!(rewritten.get("key").is_none());
        assert_eq!(rewritten["secrets"][KEY_SECRET], KEY);
    }

    #[test]
    fn records_without_a_key_or_with_a_wrong_hash_are_errors_without_the_key() {
        let none = serde_json::json!({
            "name": "gh", "type": "github", "created_at": "2026-01-01T00:00:00Z"
        });
        let e = serde_json::from_value::<StoredIntegration>(none).expect_err("no key");
        assert!(e.to_string().contains("has no key"), "{e}");

        let mut v = serde_json::to_value(record()).expect("serialize");
        v["key_sha256"] = serde_json::Value::String(hash_token("another key"));
        let e = serde_json::from_value::<StoredIntegration>(v).expect_err("hash mismatch");
        assert!(e.to_string().contains("key_sha256 does not match"), "{e}");
        assert!(!e.to_string().contains(KEY), "the key is not in the error");
    }

    #[test]
    fn debug_shows_neither_key_nor_secrets() {
        let d = format!("{:?}", record());
        assert!(!d.contains(KEY) && !d.contains("s3cret"), "{d}");
        assert!(d.contains("webhook_secret"), "{d}");
    }
}
