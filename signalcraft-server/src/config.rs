//! The server config file (TOML): [`ServerConfig`], loaded and checked by [`load`] /
//! [`check`], which report every problem with its config path ([`ConfigError`]).
//!
//! Every section uses `deny_unknown_fields`, so a typo is an error, not a silently
//! ignored setting. Sections are deserialized one by one (and arrays element by
//! element) so one mistake does not hide the next. Secrets are `env:NAME` /
//! `file:PATH` references ([`crate::secret`]) resolved at load time; the resolved
//! values live only in [`ResolvedSecrets`].
//!
//! Sections that describe engine objects (`route`, `services`, `users`, `teams`,
//! `schedules`, `escalation_policies`, `inhibit_rules`) are kept as TOML values here
//! and handed to the engine, which validates them with its own types.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use signalcraft_core::CoreError;
use signalcraft_core::delivery::DeliveryConfig;
use signalcraft_core::engine::EngineConfig;

use crate::auth::{Permission, Role};
use crate::secret::{Secret, SecretError};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Config path, e.g. `integrations[2].key`.
    pub path: String,
    /// What is wrong (never contains a secret value).
    pub message: String,
}

impl ConfigError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// `[server]`: where and how the HTTP server runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Listen address.
    pub listen: SocketAddr,
    /// Directory of the embedded store and the admin token file.
    pub data_dir: PathBuf,
    /// URL users reach this server at (links in notifications, Slack buttons).
    pub external_url: Option<String>,
    /// Largest request body accepted, in bytes (larger → 413).
    pub body_limit_bytes: usize,
    /// Per-request deadline (exceeded → 408).
    #[serde(with = "signalcraft_core::duration::serde_str")]
    pub request_timeout: Duration,
    /// Requests handled concurrently before new ones get 503.
    pub max_in_flight: usize,
    /// How long a graceful shutdown may take before in-flight requests are dropped.
    #[serde(with = "signalcraft_core::duration::serde_str")]
    pub shutdown_timeout: Duration,
    /// `text` (default) or `json` logs.
    pub log_format: LogFormat,
    /// Longest a re-notification (a group already notified that changed) is held back
    /// while alerts keep arriving, so ingest bursts are folded into fewer notifications
    /// and keep the CPU; a group's first notification is never held. `0s` turns it
    /// off (re-notify at every group_interval tick, as Alertmanager does when idle).
    /// At most 30 s.
    #[serde(with = "signalcraft_core::duration::serde_str")]
    pub renotify_yield: Duration,
    /// While more notifications than this are being handed over, an ingest request
    /// waits (at most 250 ms) so a burst of new groups' first notifications goes out
    /// before more alerts are taken in. `0` (the default) turns it off: in the
    /// side-by-side benchmark 256 did not notify groups measurably sooner and raised
    /// the POST p99.
    pub ingest_backlog_limit: usize,
    /// Journaled ingest (on by default, with the embedded store): an ingest request
    /// is answered once its events are durable in an append-only journal under
    /// `<data_dir>/journal`; the engine decides on them and commits the outcome to the
    /// store in the background, in large batches, and replays the journal at start.
    /// Every other request first waits until every ingest answered before it is
    /// applied, so reads still see acknowledged writes. `false`: each ingest request
    /// waits for the store commit of its batch.
    pub journal: bool,
    /// With `journal`: most events accepted but not yet applied before ingest
    /// requests wait for the engine (bounds memory when the store falls behind).
    pub journal_max_lag: usize,
    /// With `journal`: most events the engine decides on and commits together.
    pub journal_apply_batch: usize,
    /// With `journal`: most bytes of accepted-but-unapplied journal records (the
    /// memory the engine's queue holds) before ingest requests wait for the engine.
    pub journal_max_lag_bytes: usize,
    /// Page cache of the embedded store (redb), in bytes. The engine keeps every
    /// active record in memory and reads the store only at start, for history and to
    /// update records, so a small cache suffices.
    pub store_cache_bytes: usize,
    /// Key that seals integration secrets at rest in the embedded store (a secret
    /// reference, `env:NAME` or `file:PATH`, to 64 hex digits or base64 of 32 bytes).
    /// Without it secrets are stored in clear.
    pub encryption_key: Option<String>,
    /// Keys from before a rotation (secret references): still accepted for reading;
    /// at start every sealed secret is re-sealed under `encryption_key`, after which
    /// they can be removed.
    pub previous_encryption_keys: Vec<String>,
}

/// Default of `[server] journal_max_lag_bytes`.
pub const DEFAULT_JOURNAL_MAX_LAG_BYTES: usize = 64 << 20;

/// Default of `[server] store_cache_bytes`.
pub const DEFAULT_STORE_CACHE_BYTES: usize = 4 << 20;

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 9093)),
            data_dir: PathBuf::from("./signalcraft-data"),
            external_url: None,
            body_limit_bytes: 5 << 20,
            request_timeout: Duration::from_secs(30),
            max_in_flight: 1024,
            shutdown_timeout: Duration::from_secs(10),
            log_format: LogFormat::Text,
            renotify_yield: Duration::from_secs(5),
            ingest_backlog_limit: 0,
            journal: true,
            journal_max_lag: 100_000,
            journal_apply_batch: 20_000,
            journal_max_lag_bytes: DEFAULT_JOURNAL_MAX_LAG_BYTES,
            store_cache_bytes: DEFAULT_STORE_CACHE_BYTES,
            encryption_key: None,
            previous_encryption_keys: Vec::new(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[alertmanager_api]`: the Alertmanager-compatible `POST /api/v2/alerts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerApiSection {
    /// Require `Authorization: Bearer <token>` (a secret reference). Prometheus sends
    /// it with `authorization: { credentials_file: ... }`.
    pub bearer_token: Option<String>,
    /// Require HTTP basic auth.
    pub basic_auth: Option<BasicAuth>,
    /// Integration name the alerts are attributed to (default `alertmanager-api`).
    pub integration: Option<String>,
}

/// HTTP basic auth credentials (password is a secret reference).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Secret reference to the password.
    pub password: String,
}

/// `[pagerduty_api]`: the PagerDuty Events API v2 endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagerDutyApiSection {
    /// Events accepted per routing key per minute before 429 (PagerDuty's own limit is 120).
    pub rate_limit_per_minute: u32,
}

impl Default for PagerDutyApiSection {
    fn default() -> Self {
        PagerDutyApiSection {
            rate_limit_per_minute: 1200,
        }
    }
}

/// `[features]`: switch modules on or off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeaturesSection {
    /// On-call schedules and escalation policies.
    pub oncall: bool,
    /// WASM remediation (needs the `remediation` cargo feature).
    pub remediation: bool,
    /// Provider types that are refused even if an integration is configured.
    pub disabled_providers: Vec<String>,
    /// The Alertmanager-compatible API (`/api/v2/*`).
    pub alertmanager_api: bool,
    /// The PagerDuty Events API v2 endpoints.
    pub pagerduty_api: bool,
}

impl Default for FeaturesSection {
    fn default() -> Self {
        FeaturesSection {
            oncall: true,
            remediation: false,
            disabled_providers: Vec::new(),
            alertmanager_api: true,
            pagerduty_api: true,
        }
    }
}

/// `[[integrations]]`: one configured inbound source, reachable at
/// `POST /integrations/{key}` (and, for `pagerduty`, as a routing key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationConfig {
    /// Unique name (shown as the alert source).
    pub name: String,
    /// Provider type: alertmanager, grafana, cloudwatch, github, gitlab, sentry, datadog, pagerduty, generic.
    #[serde(rename = "type")]
    pub provider: String,
    /// Secret reference to the URL key (the `{key}` in `/integrations/{key}`).
    pub key: String,
    /// The provider's named secrets (`webhook_secret`, `token`, …; see each provider),
    /// each a secret reference.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Requests per minute accepted for this integration before 429 (0 = unlimited).
    #[serde(default)]
    pub rate_limit_per_minute: u32,
    /// Service hint applied to alerts that carry none.
    #[serde(default)]
    pub service: Option<String>,
    /// Provider-specific options.
    #[serde(default)]
    pub options: toml::Table,
}

/// `[[tokens]]`: an API token defined in config (the value is a secret reference).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Token name, also its principal in the audit log (`token:<name>`) unless `user` is set.
    pub name: String,
    /// Secret reference to the token value.
    pub token: String,
    /// Role.
    pub role: Role,
    /// Extra permissions beyond the role.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// The user this token acts as (audit principal `user:<id>`).
    #[serde(default)]
    pub user: Option<String>,
}

/// `[[channels]]`: one outbound channel instance (Slack app, SMTP relay, Twilio account, webhook).
/// Unknown settings are caught when the channel is built (the channel's own config
/// rejects unknown fields), so `check-config` still reports them with their path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelConfig {
    /// Unique name routes refer to.
    pub name: String,
    /// Channel type: slack, email, twilio_sms, twilio_voice, webhook, teams.
    #[serde(rename = "type")]
    pub kind: String,
    /// Type-specific settings; values named `*token*`, `*password*`, `*secret*` or
    /// `auth_*` must be secret references.
    #[serde(flatten)]
    pub settings: toml::Table,
}

/// `[slack]`: Slack interactivity callbacks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackSection {
    /// Secret reference to the Slack app's signing secret (checks `/callbacks/slack`).
    pub signing_secret: Option<String>,
    /// Slack user id → SignalCraft user id, for actions clicked in Slack.
    pub users: BTreeMap<String, String>,
}

/// `[twilio]`: Twilio callbacks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwilioSection {
    /// Secret reference to the Twilio auth token (checks `X-Twilio-Signature`).
    pub auth_token: Option<String>,
    /// Public base URL Twilio calls (signatures cover the full URL); default `external_url`.
    pub callback_base_url: Option<String>,
    /// Phone number (E.164) → SignalCraft user id, for SMS/voice replies.
    pub users: BTreeMap<String, String>,
}

/// `[retention]`: removing closed incidents (with their alerts and timeline) from the
/// embedded store once they are older than `closed_incident_age`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSection {
    /// How long after it closed an incident is removed from the store: a duration
    /// (`90d`, `1y`), or `off` to keep every incident forever. At least
    /// `closed_incident_memory_age` (an incident leaves memory before the store).
    /// Only `closed` incidents are removed (a `resolved` one can still re-open).
    pub closed_incident_age: String,
    /// Directory the removed incidents' timelines are appended to as JSON Lines, one
    /// file per UTC day (`timeline-YYYY-MM-DD.jsonl`). Unset: `<data_dir>/archive`, so
    /// a default install loses no timeline (see `archive`).
    pub archive_dir: Option<PathBuf>,
    /// Archive the timelines before removing them (default `true`); `false` removes
    /// them without a copy and ignores `archive_dir`.
    pub archive: bool,
    /// How often the sweep runs.
    #[serde(with = "signalcraft_core::duration::serde_str")]
    pub interval: Duration,
    /// Compact the store file after a sweep that removed something (gives the freed
    /// pages back to the file system). Off by default: freed pages are reused anyway,
    /// and compacting pauses every store read and write until it is done.
    pub compact: bool,
    /// How old an audit entry gets before it is removed: a duration (default `1y`,
    /// longer than `closed_incident_age`'s default: the audit log answers "who did
    /// what" for reviews that look back further than incident follow-ups, and its
    /// entries are small), or `off` to keep the audit log forever. Not archived.
    pub audit_age: String,
    /// How old a change event (deploys, config changes, `/v2/change/enqueue`) gets,
    /// by its own timestamp, before it is removed from the store: a duration, or
    /// `off` to keep them forever. At least the engine's `change_window` (the engine
    /// reads the last `change_window` of them at start). Unset: 30 days, or
    /// `change_window` when that is longer. Not archived.
    pub change_age: Option<String>,
}

/// Default of `[retention] closed_incident_age`.
pub const DEFAULT_RETENTION_AGE: &str = "90d";
/// Default archive directory of `[retention]`, under the data directory.
pub const DEFAULT_ARCHIVE_DIR: &str = "archive";
/// Default of `[retention] audit_age`.
pub const DEFAULT_AUDIT_AGE: &str = "1y";
/// Default of `[retention] change_age` (when `change_window` is not longer).
pub const DEFAULT_CHANGE_AGE: Duration = Duration::from_secs(30 * 86_400);
/// Default of `[retention] interval`.
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

impl Default for RetentionSection {
    fn default() -> Self {
        RetentionSection {
            closed_incident_age: DEFAULT_RETENTION_AGE.into(),
            archive_dir: None,
            archive: true,
            interval: DEFAULT_RETENTION_INTERVAL,
            compact: false,
            audit_age: DEFAULT_AUDIT_AGE.into(),
            change_age: None,
        }
    }
}

impl RetentionSection {
    /// Where the sweep archives timelines: `archive_dir`, else `<data_dir>/archive`;
    /// `None` when `archive` is off.
    pub fn archive_dir_in(&self, data_dir: &std::path::Path) -> Option<PathBuf> {
        self.archive.then(|| {
            self.archive_dir
                .clone()
                .unwrap_or_else(|| data_dir.join(DEFAULT_ARCHIVE_DIR))
        })
    }

    /// The age after which closed incidents are removed; `Ok(None)` for `off`. The
    /// error says what is wrong (the caller adds the config path).
    pub fn max_age(&self) -> Result<Option<Duration>, String> {
        age_or_off(&self.closed_incident_age, "every incident")
    }

    /// The age after which audit entries are removed (`audit_age`); `Ok(None)` for
    /// `off`. The error says what is wrong (the caller adds the config path).
    pub fn audit_max_age(&self) -> Result<Option<Duration>, String> {
        age_or_off(&self.audit_age, "the audit log forever")
    }

    /// The age after which change events are removed (`change_age`), given the
    /// engine's `change_window`: unset, [`DEFAULT_CHANGE_AGE`] or `change_window`,
    /// whichever is longer; `Ok(None)` for `off`. An age shorter than
    /// `change_window` is an error (the engine reads that far back at start). The
    /// error says what is wrong (the caller adds the config path).
    pub fn change_max_age(&self, change_window: Duration) -> Result<Option<Duration>, String> {
        let Some(text) = &self.change_age else {
            return Ok(Some(DEFAULT_CHANGE_AGE.max(change_window)));
        };
        match age_or_off(text, "every change event")? {
            Some(age) if age < change_window => Err(format!(
                "{} is shorter than change_window ({}): the engine reads the last change_window of change events at start",
                text.trim(),
                signalcraft_core::duration::format_duration(change_window)
            )),
            age => Ok(age),
        }
    }
}

/// A positive duration, or `off` (`None`).
fn age_or_off(text: &str, kept: &str) -> Result<Option<Duration>, String> {
    match text.trim() {
        "off" => Ok(None),
        s => match signalcraft_core::duration::parse_duration(s)? {
            d if d.is_zero() => Err(format!(
                "must be greater than 0 (or \"off\" to keep {kept})"
            )),
            d => Ok(Some(d)),
        },
    }
}

/// The whole config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerConfig {
    /// `[server]`.
    pub server: ServerSection,
    /// `[alertmanager_api]`.
    pub alertmanager_api: AlertmanagerApiSection,
    /// `[pagerduty_api]`.
    pub pagerduty_api: PagerDutyApiSection,
    /// `[features]`.
    pub features: FeaturesSection,
    /// `[slack]`.
    pub slack: SlackSection,
    /// `[twilio]`.
    pub twilio: TwilioSection,
    /// `[[integrations]]`.
    pub integrations: Vec<IntegrationConfig>,
    /// `[[channels]]`.
    pub channels: Vec<ChannelConfig>,
    /// `[[tokens]]`.
    pub tokens: Vec<TokenConfig>,
    /// `[delivery]`: retry, failover chains, throttles, health (the core's policy).
    pub delivery: DeliveryConfig,
    /// `[remediation]`: plugin manifests and actions.
    pub remediation: crate::remediation::RemediationSection,
    /// `[retention]`: removing old closed incidents from the store.
    pub retention: RetentionSection,
    /// The engine's configuration (`route`, `time_intervals`, `inhibit_rules`,
    /// `services`, `change_window`, `closed_incident_memory_age`,
    /// `expired_silence_age`), validated by the engine.
    pub engine: EngineConfig,
    /// Config-as-code sections (`users`, `teams`, `schedules`, `escalation_policies`)
    /// as written; `signalcraft apply` validates and stores them.
    pub oncall: toml::Table,
}

/// Top-level keys handed to the engine as-is.
pub const ENGINE_SECTIONS: &[&str] = &[
    "route",
    "time_intervals",
    "inhibit_rules",
    "services",
    "change_window",
    "closed_incident_memory_age",
    "expired_silence_age",
];

/// Top-level keys of config-as-code (`signalcraft apply`); `serve` ignores them.
pub const ONCALL_SECTIONS: &[&str] = &["users", "teams", "schedules", "escalation_policies"];

/// Secrets resolved from a config (never serialized, never printed).
#[derive(Debug, Clone, Default)]
pub struct ResolvedSecrets {
    /// Integration name → URL key.
    pub integration_keys: BTreeMap<String, Secret>,
    /// Integration name → secret name → value.
    pub integration_secrets: BTreeMap<String, BTreeMap<String, Secret>>,
    /// `[alertmanager_api].bearer_token`.
    pub am_bearer: Option<Secret>,
    /// `[alertmanager_api].basic_auth.password`.
    pub am_basic_password: Option<Secret>,
    /// Config tokens by name.
    pub tokens: BTreeMap<String, Secret>,
    /// Slack signing secret.
    pub slack_signing_secret: Option<Secret>,
    /// Twilio auth token.
    pub twilio_auth_token: Option<Secret>,
    /// Channel name → setting name → value, for settings that are secret references.
    pub channel_secrets: BTreeMap<String, BTreeMap<String, Secret>>,
    /// `[server].encryption_key`, checked to be a well-formed key.
    pub store_key: Option<signalcraft_store::SealKey>,
    /// `[server].previous_encryption_keys`, checked to be well-formed keys.
    pub previous_store_keys: Vec<signalcraft_store::SealKey>,
}

fn section<T: DeserializeOwned + Default>(
    table: &toml::Table,
    name: &str,
    errors: &mut Vec<ConfigError>,
) -> T {
    match table.get(name) {
        None => T::default(),
        Some(v) => match v.clone().try_into::<T>() {
            Ok(t) => t,
            Err(e) => {
                errors.push(ConfigError::new(name, clean_serde_message(&e.to_string())));
                T::default()
            }
        },
    }
}

fn array<T: DeserializeOwned>(
    table: &toml::Table,
    name: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<T> {
    let Some(v) = table.get(name) else {
        return Vec::new();
    };
    let Some(items) = v.as_array() else {
        errors.push(ConfigError::new(
            name,
            "must be an array of tables ([[".to_string() + name + "]])",
        ));
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.clone().try_into::<T>() {
            Ok(t) => out.push(t),
            Err(e) => errors.push(ConfigError::new(
                format!("{name}[{i}]"),
                clean_serde_message(&e.to_string()),
            )),
        }
    }
    out
}

/// toml's messages for value deserialization are multi-line with an empty span; keep the text.
fn clean_serde_message(m: &str) -> String {
    m.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.starts_with("-->"))
        .filter(|l| !l.starts_with("TOML parse error"))
        .collect::<Vec<_>>()
        .join(" ")
}

const KNOWN_SECTIONS: &[&str] = &[
    "server",
    "alertmanager_api",
    "pagerduty_api",
    "features",
    "slack",
    "twilio",
    "integrations",
    "channels",
    "tokens",
    "delivery",
    "remediation",
    "retention",
];

/// Known provider types (the providers registry is authoritative at startup; this
/// list lets `check-config` catch typos without building one).
pub const PROVIDER_TYPES: &[&str] = &[
    "alertmanager",
    "grafana",
    "cloudwatch",
    "github",
    "gitlab",
    "sentry",
    "datadog",
    "pagerduty",
    "generic",
];

/// The language a config (or `signalcraft apply`) file is written in. Both map to the
/// same structure: YAML mappings are TOML tables, sequences of mappings are `[[arrays]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConfigFormat {
    /// TOML (the default).
    Toml,
    /// YAML 1.2 (`.yaml` / `.yml`).
    Yaml,
}

impl ConfigFormat {
    /// YAML for `.yaml` / `.yml` files (any case), TOML otherwise.
    pub fn from_path(path: &Path) -> Self {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("yaml" | "yml") => ConfigFormat::Yaml,
            _ => ConfigFormat::Toml,
        }
    }

    /// Parses `text` into the document's top-level table. A syntax error is named by
    /// its line (`line 7`); a YAML value TOML cannot hold (`null`, a non-string key) is
    /// named by its path (`users[0].name`).
    pub fn parse_table(self, text: &str) -> Result<toml::Table, ConfigError> {
        match self {
            ConfigFormat::Toml => text.parse().map_err(|e: toml::de::Error| {
                let path = match e.span() {
                    Some(span) => {
                        let line = text[..span.start.min(text.len())].lines().count().max(1);
                        format!("line {line}")
                    }
                    None => "(file)".into(),
                };
                ConfigError::new(path, e.message().to_string())
            }),
            ConfigFormat::Yaml => {
                if text.trim().is_empty() {
                    return Ok(toml::Table::new());
                }
                // Syntax first (named by line), then the shape (named by path).
                let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| {
                    let path = e
                        .location()
                        .map_or_else(|| "(file)".to_string(), |l| format!("line {}", l.line()));
                    ConfigError::new(path, strip_location(&e.to_string()))
                })?;
                serde_path_to_error::deserialize::<_, toml::Table>(value).map_err(|e| {
                    let path = match e.path().to_string() {
                        p if p == "." => "(file)".to_string(),
                        p => p,
                    };
                    ConfigError::new(
                        path,
                        yaml_message(&strip_location(&e.into_inner().to_string())),
                    )
                })
            }
        }
    }
}

/// serde_yaml_ng appends " at line L column C"; the error's path says where.
fn strip_location(m: &str) -> String {
    m.split(" at line ").next().unwrap_or(m).to_string()
}

/// serde's messages for YAML values TOML has no type for, in config words.
fn yaml_message(m: &str) -> String {
    if m.contains("unit value") || m.contains("invalid type: null") {
        "null is not allowed here: give a value or leave the key out".into()
    } else {
        m.to_string()
    }
}

/// Parses a config from TOML text, collecting every structural error. Secrets are
/// not resolved here (see [`resolve_secrets`]).
pub fn parse(text: &str) -> Result<ServerConfig, Vec<ConfigError>> {
    parse_as(text, ConfigFormat::Toml)
}

/// Parses a config written in `format`, collecting every structural error with its
/// path (the same paths for TOML and YAML).
pub fn parse_as(text: &str, format: ConfigFormat) -> Result<ServerConfig, Vec<ConfigError>> {
    let table = format.parse_table(text).map_err(|e| vec![e])?;
    parse_table(table)
}

/// Checks a parsed document and builds the config, collecting every error.
pub fn parse_table(table: toml::Table) -> Result<ServerConfig, Vec<ConfigError>> {
    let mut errors = Vec::new();
    for key in table.keys() {
        if !KNOWN_SECTIONS.contains(&key.as_str())
            && !ENGINE_SECTIONS.contains(&key.as_str())
            && !ONCALL_SECTIONS.contains(&key.as_str())
        {
            errors.push(ConfigError::new(
                key.clone(),
                format!(
                    "unknown section; expected one of {}",
                    KNOWN_SECTIONS
                        .iter()
                        .chain(ENGINE_SECTIONS)
                        .chain(ONCALL_SECTIONS)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    let cfg = ServerConfig {
        server: section(&table, "server", &mut errors),
        alertmanager_api: section(&table, "alertmanager_api", &mut errors),
        pagerduty_api: section(&table, "pagerduty_api", &mut errors),
        features: section(&table, "features", &mut errors),
        slack: section(&table, "slack", &mut errors),
        twilio: section(&table, "twilio", &mut errors),
        integrations: array(&table, "integrations", &mut errors),
        channels: array(&table, "channels", &mut errors),
        tokens: array(&table, "tokens", &mut errors),
        delivery: section(&table, "delivery", &mut errors),
        remediation: section(&table, "remediation", &mut errors),
        retention: section(&table, "retention", &mut errors),
        engine: engine_config(&table, &mut errors),
        oncall: table
            .iter()
            .filter(|(k, _)| ONCALL_SECTIONS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    errors.extend(validate(&cfg));
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(errors)
    }
}

fn engine_config(table: &toml::Table, errors: &mut Vec<ConfigError>) -> EngineConfig {
    let sub: toml::Table = table
        .iter()
        .filter(|(k, _)| ENGINE_SECTIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let cfg: EngineConfig = match toml::Value::Table(sub).try_into() {
        Ok(c) => c,
        Err(e) => {
            errors.push(ConfigError::new(
                "route",
                clean_serde_message(&e.to_string()),
            ));
            return EngineConfig::default();
        }
    };
    if let Err(e) = cfg.validate() {
        errors.push(match e {
            CoreError::InvalidConfig { path, message } => ConfigError::new(path, message),
            other => ConfigError::new("route", other.to_string()),
        });
    }
    cfg
}

/// Semantic checks that need no secrets: names unique, types known, values in range.
pub fn validate(cfg: &ServerConfig) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let s = &cfg.server;
    for (path, zero) in [
        ("server.body_limit_bytes", s.body_limit_bytes == 0),
        ("server.max_in_flight", s.max_in_flight == 0),
        ("server.request_timeout", s.request_timeout.is_zero()),
        ("server.journal_apply_batch", s.journal_apply_batch == 0),
        ("server.journal_max_lag_bytes", s.journal_max_lag_bytes == 0),
        ("server.journal_max_lag", s.journal_max_lag == 0),
    ] {
        if zero {
            errors.push(ConfigError::new(path, "must be greater than 0"));
        }
    }
    if s.renotify_yield > Duration::from_secs(30) {
        errors.push(ConfigError::new(
            "server.renotify_yield",
            "must be at most 30s",
        ));
    }
    if let Some(u) = &s.external_url
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        errors.push(ConfigError::new(
            "server.external_url",
            "must start with http:// or https://",
        ));
    }
    errors.extend(validate_retention(cfg));
    check_ref(
        &mut errors,
        "alertmanager_api.bearer_token",
        cfg.alertmanager_api.bearer_token.as_deref(),
    );
    if let Some(b) = &cfg.alertmanager_api.basic_auth {
        check_ref(
            &mut errors,
            "alertmanager_api.basic_auth.password",
            Some(&b.password),
        );
    }
    check_ref(
        &mut errors,
        "slack.signing_secret",
        cfg.slack.signing_secret.as_deref(),
    );
    check_ref(
        &mut errors,
        "twilio.auth_token",
        cfg.twilio.auth_token.as_deref(),
    );
    let mut names = HashSet::new();
    for (i, integ) in cfg.integrations.iter().enumerate() {
        let p = format!("integrations[{i}]");
        if !valid_name(&integ.name) {
            errors.push(ConfigError::new(
                format!("{p}.name"),
                "must be 1-64 characters of a-z, 0-9, '-', '_' or '.'",
            ));
        }
        if !names.insert(integ.name.clone()) {
            errors.push(ConfigError::new(
                format!("{p}.name"),
                format!("duplicate integration name {:?}", integ.name),
            ));
        }
        if !PROVIDER_TYPES.contains(&integ.provider.as_str()) {
            errors.push(ConfigError::new(
                format!("{p}.type"),
                format!(
                    "unknown provider type {:?}; expected one of {}",
                    integ.provider,
                    PROVIDER_TYPES.join(", ")
                ),
            ));
        }
        check_ref(&mut errors, &format!("{p}.key"), Some(&integ.key));
        for (name, r) in &integ.secrets {
            check_ref(&mut errors, &format!("{p}.secrets.{name}"), Some(r));
        }
    }
    let mut names = HashSet::new();
    for (i, ch) in cfg.channels.iter().enumerate() {
        let p = format!("channels[{i}]");
        if !names.insert(ch.name.clone()) {
            errors.push(ConfigError::new(
                format!("{p}.name"),
                format!("duplicate channel name {:?}", ch.name),
            ));
        }
        for (k, v) in &ch.settings {
            if is_secret_setting(k) {
                match v.as_str() {
                    Some(r) => check_ref(&mut errors, &format!("{p}.{k}"), Some(r)),
                    None => errors.push(ConfigError::new(
                        format!("{p}.{k}"),
                        "must be a secret reference string",
                    )),
                }
            }
        }
    }
    let mut names = HashSet::new();
    for (i, t) in cfg.tokens.iter().enumerate() {
        let p = format!("tokens[{i}]");
        if !names.insert(t.name.clone()) {
            errors.push(ConfigError::new(
                format!("{p}.name"),
                format!("duplicate token name {:?}", t.name),
            ));
        }
        check_ref(&mut errors, &format!("{p}.token"), Some(&t.token));
    }
    errors
}

/// `[retention]`: the age parses and is not below the engine's memory age (an
/// incident must leave memory before the store), the interval is positive, the audit
/// age parses, the change age parses and is not below the engine's `change_window`.
fn validate_retention(cfg: &ServerConfig) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let r = &cfg.retention;
    if r.interval.is_zero() {
        errors.push(ConfigError::new(
            "retention.interval",
            "must be greater than 0",
        ));
    }
    let age = match r.max_age() {
        Ok(age) => age,
        Err(e) => {
            errors.push(ConfigError::new("retention.closed_incident_age", e));
            None
        }
    };
    if let Err(e) = r.audit_max_age() {
        errors.push(ConfigError::new("retention.audit_age", e));
    }
    // An unparsable change window is reported with its own path by the engine.
    let change_window = match &cfg.engine.change_window {
        None => Some(signalcraft_core::engine::config::DEFAULT_CHANGE_WINDOW),
        Some(s) => signalcraft_core::duration::parse_duration(s).ok(),
    };
    if let Some(window) = change_window
        && let Err(e) = r.change_max_age(window)
    {
        errors.push(ConfigError::new("retention.change_age", e));
    }
    // An unparsable memory age is reported with its own path by the engine.
    let memory_age = match &cfg.engine.closed_incident_memory_age {
        None => Some(signalcraft_core::engine::config::DEFAULT_CLOSED_INCIDENT_MEMORY_AGE),
        Some(s) => signalcraft_core::duration::parse_duration(s).ok(),
    };
    if let (Some(age), Some(mem)) = (age, memory_age)
        && age < mem
    {
        errors.push(ConfigError::new(
            "retention.closed_incident_age",
            format!(
                "{} is shorter than closed_incident_memory_age ({}): a closed incident leaves the engine's memory before it may leave the store",
                r.closed_incident_age.trim(),
                signalcraft_core::duration::format_duration(mem)
            ),
        ));
    }
    errors
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

/// Settings whose values must be secret references.
pub fn is_secret_setting(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("token") || k.contains("password") || k.contains("secret") || k.starts_with("auth_")
}

fn check_ref(errors: &mut Vec<ConfigError>, path: &str, value: Option<&str>) {
    if let Some(v) = value
        && !(v.starts_with("env:") || v.starts_with("file:"))
    {
        errors.push(ConfigError::new(
            path,
            SecretError::NotAReference.to_string(),
        ));
    }
}

/// Resolves every secret reference, collecting every failure with its path.
pub fn resolve_secrets(
    cfg: &ServerConfig,
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> Result<ResolvedSecrets, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut out = ResolvedSecrets::default();
    let mut res = |path: String, r: &str| -> Option<Secret> {
        match crate::secret::resolve_with(r, lookup_env) {
            Ok(s) => Some(s),
            Err(e) => {
                errors.push(ConfigError::new(path, e.to_string()));
                None
            }
        }
    };
    if let Some(r) = &cfg.alertmanager_api.bearer_token {
        out.am_bearer = res("alertmanager_api.bearer_token".into(), r);
    }
    let mut seal_keys = Vec::new();
    if let Some(r) = &cfg.server.encryption_key {
        seal_keys.push((
            "server.encryption_key".to_string(),
            res("server.encryption_key".into(), r),
        ));
    } else if !cfg.server.previous_encryption_keys.is_empty() {
        seal_keys.push(("server.previous_encryption_keys".to_string(), None));
    }
    for (i, r) in cfg.server.previous_encryption_keys.iter().enumerate() {
        let path = format!("server.previous_encryption_keys[{i}]");
        seal_keys.push((path.clone(), res(path, r)));
    }
    if let Some(b) = &cfg.alertmanager_api.basic_auth {
        out.am_basic_password = res("alertmanager_api.basic_auth.password".into(), &b.password);
    }
    if let Some(r) = &cfg.slack.signing_secret {
        out.slack_signing_secret = res("slack.signing_secret".into(), r);
    }
    if let Some(r) = &cfg.twilio.auth_token {
        out.twilio_auth_token = res("twilio.auth_token".into(), r);
    }
    for (i, integ) in cfg.integrations.iter().enumerate() {
        if let Some(k) = res(format!("integrations[{i}].key"), &integ.key) {
            out.integration_keys.insert(integ.name.clone(), k);
        }
        for (name, r) in &integ.secrets {
            if let Some(s) = res(format!("integrations[{i}].secrets.{name}"), r) {
                out.integration_secrets
                    .entry(integ.name.clone())
                    .or_default()
                    .insert(name.clone(), s);
            }
        }
    }
    for (i, t) in cfg.tokens.iter().enumerate() {
        if let Some(s) = res(format!("tokens[{i}].token"), &t.token) {
            out.tokens.insert(t.name.clone(), s);
        }
    }
    for (i, ch) in cfg.channels.iter().enumerate() {
        for (k, v) in &ch.settings {
            if is_secret_setting(k)
                && let Some(r) = v.as_str()
                && let Some(s) = res(format!("channels[{i}].{k}"), r)
            {
                out.channel_secrets
                    .entry(ch.name.clone())
                    .or_default()
                    .insert(k.clone(), s);
            }
        }
    }
    for (i, (path, secret)) in seal_keys.into_iter().enumerate() {
        let Some(secret) = secret else {
            if i == 0 && cfg.server.encryption_key.is_none() {
                errors.push(ConfigError::new(
                    path,
                    "previous keys are only read during a rotation to server.encryption_key; set it",
                ));
            }
            continue;
        };
        match signalcraft_store::SealKey::parse(secret.expose()) {
            Ok(k) if i == 0 && cfg.server.encryption_key.is_some() => out.store_key = Some(k),
            Ok(k) => out.previous_store_keys.push(k),
            // The store's message names the expected form, never the value.
            Err(e) => errors.push(ConfigError::new(path, e.to_string())),
        }
    }
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, key) in &out.integration_keys {
        if let Some(other) = seen.insert(key.expose(), name) {
            errors.push(ConfigError::new(
                format!("integrations.{name}.key"),
                format!("same key as integration {other:?}; keys must be unique"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Reads, parses and resolves a config file (YAML for `.yaml`/`.yml`, else TOML).
pub fn load(path: &Path) -> Result<(ServerConfig, ResolvedSecrets), Vec<ConfigError>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![ConfigError::new(path.display().to_string(), e.to_string())])?;
    let cfg = parse_as(&text, ConfigFormat::from_path(path))?;
    let secrets = resolve_secrets(&cfg, &|n| std::env::var(n).ok())?;
    Ok((cfg, secrets))
}

/// The commented default config `signalcraft serve` writes on first start.
pub fn default_config_text(listen: SocketAddr, data_dir: &Path) -> String {
    DEFAULT_CONFIG
        .replace("{listen}", &listen.to_string())
        .replace("{data_dir}", &data_dir.display().to_string())
}

const DEFAULT_CONFIG: &str = include_str!("../signalcraft.default.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_default() {
        let c = parse("").unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:9093");
        assert!(c.features.alertmanager_api);
    }

    #[test]
    fn example_config_parses_and_resolves() {
        let text = include_str!("../signalcraft.example.toml");
        let cfg = parse(text).unwrap_or_else(|e| panic!("{e:#?}"));
        assert_eq!(cfg.integrations.len(), 3);
        assert_eq!(cfg.engine.route.routes.len(), 1);
        // Every secret is a reference; resolve them with a fake environment.
        let s = resolve_secrets(&cfg, &|n| Some(format!("value-of-{n}"))).unwrap();
        assert_eq!(
            s.integration_keys["grafana"].expose(),
            "value-of-SIGNALCRAFT_GRAFANA_KEY"
        );
        assert!(s.slack_signing_secret.is_some());
    }

    #[test]
    fn yaml_config_is_the_same_config_as_its_toml() {
        let text = include_str!("../signalcraft.example.toml");
        let table: toml::Table = text.parse().unwrap();
        let yaml = serde_yaml_ng::to_string(&table).unwrap();
        assert!(yaml.contains("integrations:"), "{yaml}");
        let from_yaml = parse_as(&yaml, ConfigFormat::Yaml).unwrap_or_else(|e| panic!("{e:#?}"));
        assert_eq!(from_yaml, parse(text).unwrap());
        assert_eq!(
            ConfigFormat::from_path(Path::new("a/b.YML")),
            ConfigFormat::Yaml
        );
        assert_eq!(
            ConfigFormat::from_path(Path::new("b.toml")),
            ConfigFormat::Toml
        );
        assert_eq!(
            parse_as("", ConfigFormat::Yaml).unwrap(),
            parse("").unwrap()
        );
    }

    #[test]
    fn yaml_errors_carry_paths_and_lines() {
        let yaml = "server:\n  listen: \"127.0.0.1:1\"\n  lisen: typo\nintegrations:\n  - name: a\n    type: prometheus\n    key: literal\n";
        let errs = parse_as(yaml, ConfigFormat::Yaml).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for p in ["server", "integrations[0].type", "integrations[0].key"] {
            assert!(paths.contains(&p), "{p} missing in {errs:#?}");
        }
        let e = parse_as("route:\n  group_wait: 5s\n   bad: [", ConfigFormat::Yaml).unwrap_err();
        assert!(e[0].path.starts_with("line "), "{e:#?}");
        let e = parse_as("server:\n  external_url: ~\n", ConfigFormat::Yaml).unwrap_err();
        assert_eq!(e[0].path, "server.external_url", "{e:#?}");
        assert!(e[0].message.contains("null"), "{e:#?}");
        let e = parse_as("- just\n- a list\n", ConfigFormat::Yaml).unwrap_err();
        assert_eq!(e.len(), 1, "{e:#?}");
    }

    #[test]
    fn closed_incident_memory_age_is_an_engine_option_checked_with_its_path() {
        let c = parse("closed_incident_memory_age = \"30m\"\n[server]\n").unwrap();
        assert_eq!(c.engine.closed_incident_memory_age.as_deref(), Some("30m"));
        assert_eq!(
            c.engine.compile().unwrap().closed_incident_memory_age,
            Duration::from_secs(1800)
        );
        let c = parse("closed_incident_memory_age = \"0s\"\n").unwrap();
        assert!(
            c.engine
                .compile()
                .unwrap()
                .closed_incident_memory_age
                .is_zero()
        );
        let errs = parse("closed_incident_memory_age = \"soon\"\n").unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].path, "closed_incident_memory_age");
        // The default config leaves it commented: the engine's default (1h).
        let t = default_config_text("127.0.0.1:1234".parse().unwrap(), Path::new("/tmp/x"));
        assert!(t.contains("# closed_incident_memory_age = \"1h\""));
        let c = parse(&t).unwrap();
        assert_eq!(
            c.engine.compile().unwrap().closed_incident_memory_age,
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn expired_silence_age_is_an_engine_option_checked_with_its_path() {
        let c = parse("expired_silence_age = \"24h\"\n[server]\n").unwrap();
        assert_eq!(c.engine.expired_silence_age.as_deref(), Some("24h"));
        assert_eq!(
            c.engine.compile().unwrap().expired_silence_age,
            Duration::from_secs(86_400)
        );
        let c = parse("expired_silence_age = \"0s\"\n").unwrap();
        assert!(c.engine.compile().unwrap().expired_silence_age.is_zero());
        let errs = parse("expired_silence_age = \"soon\"\n").unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].path, "expired_silence_age");
        // The default config leaves it commented: the engine's default (120h).
        let t = default_config_text("127.0.0.1:1234".parse().unwrap(), Path::new("/tmp/x"));
        assert!(t.contains("# expired_silence_age = \"120h\""));
        let c = parse(&t).unwrap();
        assert_eq!(
            c.engine.compile().unwrap().expired_silence_age,
            Duration::from_secs(120 * 3600)
        );
    }

    /// The `(path, message)` of every error `parse` reports for `text`.
    fn paths(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap_err()
            .into_iter()
            .map(|e| (e.path, e.message))
            .collect()
    }

    #[test]
    fn retention_section_defaults_and_errors_carry_paths() {
        let c = parse("").unwrap();
        assert_eq!(
            c.retention.max_age().unwrap(),
            Some(Duration::from_secs(90 * 86400))
        );
        assert_eq!(c.retention.interval, Duration::from_secs(3600));
        assert!(c.retention.archive_dir.is_none() && !c.retention.compact);
        assert_eq!(
            c.retention.audit_max_age().unwrap(),
            Some(Duration::from_secs(365 * 86400)),
            "the audit log is kept a year by default"
        );
        let c = parse("[retention]\naudit_age = \"off\"\n").unwrap();
        assert_eq!(c.retention.audit_max_age().unwrap(), None);
        let c = parse("[retention]\naudit_age = \"30d\"\n").unwrap();
        assert_eq!(
            c.retention.audit_max_age().unwrap(),
            Some(Duration::from_secs(30 * 86400))
        );
        // Timelines are archived by default, under the data directory.
        assert_eq!(
            c.retention.archive_dir_in(Path::new("/data")),
            Some(PathBuf::from("/data/archive"))
        );
        let c = parse("[retention]\narchive_dir = \"/a\"\n").unwrap();
        assert_eq!(
            c.retention.archive_dir_in(Path::new("/data")),
            Some(PathBuf::from("/a"))
        );
        let c = parse("[retention]\narchive = false\narchive_dir = \"/a\"\n").unwrap();
        assert_eq!(c.retention.archive_dir_in(Path::new("/data")), None);
        let c = parse("[retention]\nclosed_incident_age = \"off\"\n").unwrap();
        assert_eq!(c.retention.max_age().unwrap(), None);
        let c = parse(
            "[retention]\nclosed_incident_age = \"1y\"\narchive_dir = \"/tmp/a\"\ninterval = \"10m\"\ncompact = true\n",
        )
        .unwrap();
        assert_eq!(
            c.retention.max_age().unwrap(),
            Some(Duration::from_secs(365 * 86400))
        );
        assert_eq!(c.retention.interval, Duration::from_secs(600));
        assert!(c.retention.compact);

        let e = paths("[retention]\nclosed_incident_age = \"soon\"\ninterval = \"0s\"\n");
        assert_eq!(e.len(), 2, "{e:#?}");
        assert_eq!(e[0].0, "retention.interval");
        assert_eq!(e[1].0, "retention.closed_incident_age");
        let e = paths("[retention]\nclosed_incident_age = \"0s\"\n");
        assert_eq!(e[0].0, "retention.closed_incident_age");
        assert!(e[0].1.contains("off"), "{e:#?}");
        let e = paths("[retention]\naudit_age = \"forever\"\n");
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!(e[0].0, "retention.audit_age");
        let e = paths("[retention]\naudit_age = \"0d\"\n");
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!(e[0].0, "retention.audit_age");
        assert!(e[0].1.contains("keep the audit log forever"), "{e:#?}");
        let e = paths("[retention]\naudit_age = 30\n");
        assert_eq!(
            e[0].0, "retention",
            "a wrong type names the section: {e:#?}"
        );
        // Shorter than the memory age (default 1h, or the configured one).
        let e = paths("[retention]\nclosed_incident_age = \"30m\"\n");
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!(e[0].0, "retention.closed_incident_age");
        assert!(e[0].1.contains("closed_incident_memory_age (1h)"), "{e:#?}");
        assert!(
            parse(
                "closed_incident_memory_age = \"10m\"\n[retention]\nclosed_incident_age = \"30m\"\n"
            )
            .is_ok()
        );
        let e = paths(
            "closed_incident_memory_age = \"2d\"\n[retention]\nclosed_incident_age = \"1d\"\n",
        );
        assert!(e[0].1.contains("(2d)"), "{e:#?}");
        // Unknown keys and wrong types name the section.
        let e = paths("[retention]\nage = \"1d\"\n");
        assert_eq!(e[0].0, "retention");
        assert!(e[0].1.contains("age"), "{e:#?}");
        // The default config shows the section, commented, with the defaults.
        let t = default_config_text("127.0.0.1:1234".parse().unwrap(), Path::new("/tmp/x"));
        assert!(t.contains("# [retention]"));
        assert!(t.contains("# closed_incident_age = \"90d\""));
        assert!(t.contains("# interval = \"1h\""));
        assert!(t.contains("# audit_age = \"1y\""));
        assert!(t.contains("# change_age = \"30d\""));
        assert_eq!(parse(&t).unwrap().retention, RetentionSection::default());
    }

    #[test]
    fn retention_change_age_defaults_off_and_is_never_shorter_than_change_window() {
        let window = |c: &ServerConfig| {
            c.engine.change_window.as_deref().map_or(
                signalcraft_core::engine::config::DEFAULT_CHANGE_WINDOW,
                |s| signalcraft_core::duration::parse_duration(s).unwrap(),
            )
        };
        // Unset: 30 days, or the change window when that is longer.
        let c = parse("").unwrap();
        assert_eq!(
            c.retention.change_max_age(window(&c)).unwrap(),
            Some(Duration::from_secs(30 * 86400))
        );
        let c = parse("change_window = \"60d\"\n").unwrap();
        assert_eq!(
            c.retention.change_max_age(window(&c)).unwrap(),
            Some(Duration::from_secs(60 * 86400))
        );
        let c = parse("[retention]\nchange_age = \"off\"\n").unwrap();
        assert_eq!(c.retention.change_max_age(window(&c)).unwrap(), None);
        let c = parse("change_window = \"1d\"\n[retention]\nchange_age = \"1d\"\n").unwrap();
        assert_eq!(
            c.retention.change_max_age(window(&c)).unwrap(),
            Some(Duration::from_secs(86400))
        );
        // Shorter than the default window (2h), or than the configured one.
        let e = paths("[retention]\nchange_age = \"1h\"\n");
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!(e[0].0, "retention.change_age");
        assert!(e[0].1.contains("shorter than change_window (2h)"), "{e:#?}");
        let e = paths("change_window = \"3d\"\n[retention]\nchange_age = \"2d\"\n");
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!(e[0].0, "retention.change_age");
        assert!(e[0].1.contains("(3d)"), "{e:#?}");
        for bad in ["\"soon\"", "\"0s\""] {
            let e = paths(&format!("[retention]\nchange_age = {bad}\n"));
            assert_eq!(e.len(), 1, "{bad}: {e:#?}");
            assert_eq!(e[0].0, "retention.change_age", "{bad}");
        }
        let e = paths("[retention]\nchange_age = 30\n");
        assert_eq!(
            e[0].0, "retention",
            "a wrong type names the section: {e:#?}"
        );
    }

    #[test]
    fn default_config_text_parses() {
        let t = default_config_text("127.0.0.1:1234".parse().unwrap(), Path::new("/tmp/x"));
        let c = parse(&t).unwrap();
        assert_eq!(c.server.listen.port(), 1234);
        assert_eq!(c.server.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let text = r#"
[server]
listen = "127.0.0.1:1"
lisen = "typo"

[features]
oncal = true

[[integrations]]
name = "prom"
type = "prometheus"
key = "plain-text-key"

[[integrations]]
name = "prom"
type = "grafana"
key = "env:K"
extra = 1

[[tokens]]
name = "ci"
token = "env:T"
role = "superuser"

[bogus]
x = 1
"#;
        let errs = parse(text).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "server",
            "features",
            "integrations[1]",
            "tokens[0]",
            "bogus",
            "integrations[0].type",
            "integrations[0].key",
        ] {
            assert!(paths.contains(&want), "missing {want} in {errs:#?}");
        }
        let server = errs.iter().find(|e| e.path == "server").unwrap();
        assert!(server.message.contains("lisen"), "{server:?}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let errs = parse("[server]\nlisten = \n").unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].path.starts_with("line "), "{errs:?}");
    }

    #[test]
    fn secrets_resolve_and_failures_name_the_path_not_the_value() {
        let text = r#"
[alertmanager_api]
bearer_token = "env:AM_TOKEN"

[[integrations]]
name = "prom"
type = "alertmanager"
key = "env:PROM_KEY"

[[integrations]]
name = "graf"
type = "grafana"
key = "env:MISSING"
"#;
        let cfg = parse(text).unwrap();
        let env = |n: &str| match n {
            "AM_TOKEN" => Some("tok-value".to_string()),
            "PROM_KEY" => Some("key-value".to_string()),
            _ => None,
        };
        let errs = resolve_secrets(&cfg, &env).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "integrations[1].key");
        assert!(errs[0].message.contains("MISSING"));
        let env2 = |n: &str| env(n).or_else(|| Some("other".to_string()));
        let s = resolve_secrets(&cfg, &env2).unwrap();
        assert_eq!(s.am_bearer.unwrap().expose(), "tok-value");
        assert_eq!(s.integration_keys["prom"].expose(), "key-value");
    }

    #[test]
    fn channel_secret_settings_must_be_references() {
        let text = r#"
[[channels]]
name = "slack"
type = "slack"
bot_token = "xoxb-literal"
"#;
        let errs = parse(text).unwrap_err();
        assert_eq!(errs[0].path, "channels[0].bot_token");
        assert!(!errs[0].message.contains("xoxb"));
    }
}
