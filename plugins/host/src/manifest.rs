//! The plugin manifest (`plugin.toml`): identity, module and its SHA-256, capabilities,
//! limits, parameter schema and the role required to approve a run.
//!
//! ```toml
//! name = "http-restart"
//! version = "1.0.0"
//! module = "http-restart.wasm"       # relative to the manifest's folder
//! sha256 = "<64 hex digits>"         # the module is refused if it does not match
//! approval_role = "responder"        # role needed to approve a run
//!
//! [capabilities]
//! allowed_hosts = ["127.0.0.1:8080"] # "host" (any port) or "host:port"; empty = no HTTP
//! kv = true                          # plugin-scoped key/value store
//! http_timeout_ms = 2000
//!
//! [limits]
//! fuel = 50_000_000                  # default 100M; 0 = unlimited (the timeout still applies)
//! memory_bytes = 4_194_304
//! timeout_ms = 1000
//!
//! [params.service]
//! type = "string"
//! required = true
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use signalcraft_core::remediation::gate::AccessRole;

use crate::error::PluginError;

/// Default fuel budget when the manifest does not set one: generous for JSON work,
/// small enough to stop a runaway loop in a few milliseconds.
pub const DEFAULT_FUEL: u64 = 100_000_000;
/// Default memory limit (16 MiB).
pub const DEFAULT_MEMORY_BYTES: u64 = 16 << 20;
/// Default wall-clock timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
/// Default timeout for one `http_request` host call.
pub const DEFAULT_HTTP_TIMEOUT_MS: u64 = 5_000;

/// A parsed and validated plugin manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Plugin name, unique per host (`[a-z0-9_-]+`).
    pub name: String,
    /// Plugin version (free form, semver recommended).
    pub version: String,
    /// Optional one-line description.
    #[serde(default)]
    pub description: String,
    /// Module path; relative paths are relative to the manifest's folder.
    pub module: PathBuf,
    /// Lower-case hex SHA-256 of the module file.
    pub sha256: String,
    /// Role a user needs to approve a run (`viewer`, `responder`, `manager`, `admin`).
    #[serde(default = "default_role")]
    pub approval_role: String,
    /// What the plugin may do besides computing.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Resource limits for one run.
    #[serde(default)]
    pub limits: Limits,
    /// Parameter schema: parameter name → its type and whether it is required.
    /// Parameters not listed here are refused.
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
}

fn default_role() -> String {
    "responder".to_string()
}

/// Capabilities granted to a plugin. Everything is denied by default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Hosts `http_request` may reach: `"host"` (any port) or `"host:port"`.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Whether `kv_get`/`kv_set` are available (scoped to this plugin).
    #[serde(default)]
    pub kv: bool,
    /// Timeout of one `http_request` call in milliseconds.
    #[serde(default)]
    pub http_timeout_ms: Option<u64>,
}

impl Capabilities {
    /// Whether `http_request` may reach `host` on `port`.
    pub fn allows_host(&self, host: &str, port: u16) -> bool {
        self.allowed_hosts
            .iter()
            .any(|entry| match entry.rsplit_once(':') {
                Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => {
                    h.eq_ignore_ascii_case(host) && p.parse::<u16>().ok() == Some(port)
                }
                _ => entry.eq_ignore_ascii_case(host),
            })
    }

    /// The timeout of one HTTP host call.
    pub fn http_timeout(&self) -> Duration {
        Duration::from_millis(self.http_timeout_ms.unwrap_or(DEFAULT_HTTP_TIMEOUT_MS))
    }
}

/// Resource limits of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Fuel budget (≈ wasm instructions); `0` = unlimited (the timeout still applies).
    #[serde(default = "default_fuel")]
    pub fuel: u64,
    /// Linear memory limit in bytes.
    #[serde(default = "default_memory")]
    pub memory_bytes: u64,
    /// Wall-clock timeout in milliseconds, enforced by epoch interruption.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_fuel() -> u64 {
    DEFAULT_FUEL
}
fn default_memory() -> u64 {
    DEFAULT_MEMORY_BYTES
}
fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: default_fuel(),
            memory_bytes: DEFAULT_MEMORY_BYTES,
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }
}

impl Limits {
    /// The fuel budget to give a store (`u64::MAX` when unlimited).
    pub fn fuel_budget(&self) -> u64 {
        if self.fuel == 0 { u64::MAX } else { self.fuel }
    }

    /// The timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// The type of one parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// A JSON string.
    String,
    /// A JSON integer.
    Integer,
    /// Any JSON number.
    Number,
    /// `true` / `false`.
    Boolean,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
}

impl ParamType {
    fn matches(self, v: &serde_json::Value) -> bool {
        match self {
            ParamType::String => v.is_string(),
            ParamType::Integer => v.is_i64() || v.is_u64(),
            ParamType::Number => v.is_number(),
            ParamType::Boolean => v.is_boolean(),
            ParamType::Object => v.is_object(),
            ParamType::Array => v.is_array(),
        }
    }
}

/// One parameter of the schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// Its JSON type.
    #[serde(rename = "type")]
    pub ty: ParamType,
    /// Whether the action must supply it.
    #[serde(default)]
    pub required: bool,
    /// What it means (shown to approvers).
    #[serde(default)]
    pub description: String,
}

/// Lower-case hex SHA-256 of `bytes`, the form the manifest's `sha256` takes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

impl Manifest {
    /// Reads and validates a manifest file. The module path is resolved against the
    /// manifest's folder.
    pub fn from_file(path: &Path) -> Result<Manifest, PluginError> {
        let text = std::fs::read_to_string(path).map_err(|e| PluginError::Manifest {
            path: path.to_path_buf(),
            field: "(file)".into(),
            reason: e.to_string(),
        })?;
        let mut m = Manifest::from_toml(&text, path)?;
        if m.module.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            m.module = base.join(&m.module);
        }
        Ok(m)
    }

    /// Parses and validates manifest text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Manifest, PluginError> {
        let m: Manifest = toml::from_str(text).map_err(|e| PluginError::Manifest {
            path: origin.to_path_buf(),
            field: e
                .span()
                .map(|s| format!("(bytes {}..{})", s.start, s.end))
                .unwrap_or_else(|| "(document)".into()),
            reason: e.message().to_string(),
        })?;
        m.validate(origin)?;
        Ok(m)
    }

    fn validate(&self, origin: &Path) -> Result<(), PluginError> {
        let bad = |field: &str, reason: &str| PluginError::Manifest {
            path: origin.to_path_buf(),
            field: field.into(),
            reason: reason.into(),
        };
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(bad("name", "must be non-empty [a-z0-9_-]"));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("sha256", "must be 64 hex digits"));
        }
        if AccessRole::parse(&self.approval_role).is_none() {
            return Err(bad(
                "approval_role",
                "must be one of viewer, responder, manager, admin",
            ));
        }
        if self.limits.memory_bytes < 65_536 {
            return Err(bad(
                "limits.memory_bytes",
                "must be at least one wasm page (65536)",
            ));
        }
        if self.limits.timeout_ms == 0 {
            return Err(bad("limits.timeout_ms", "must be positive"));
        }
        if self.capabilities.http_timeout_ms == Some(0) {
            return Err(bad("capabilities.http_timeout_ms", "must be positive"));
        }
        for (i, h) in self.capabilities.allowed_hosts.iter().enumerate() {
            if h.is_empty() || h.contains('/') || h.contains('*') {
                return Err(bad(
                    &format!("capabilities.allowed_hosts[{i}]"),
                    "must be \"host\" or \"host:port\" (no scheme, path or wildcard)",
                ));
            }
        }
        Ok(())
    }

    /// The least role that may approve a run (validated at parse time).
    pub fn approval_role(&self) -> AccessRole {
        AccessRole::parse(&self.approval_role).unwrap_or(AccessRole::Admin)
    }

    /// Validates action parameters against the schema: every required key present,
    /// every key known, every value of its declared type. `null` means "no parameters".
    pub fn validate_params(&self, params: &serde_json::Value) -> Result<(), PluginError> {
        let err = |field: &str, reason: String| PluginError::InvalidParams {
            plugin: self.name.clone(),
            field: field.to_string(),
            reason,
        };
        let empty = serde_json::Map::new();
        let obj = match params {
            serde_json::Value::Null => &empty,
            serde_json::Value::Object(o) => o,
            _ => return Err(err("", "parameters must be a JSON object".into())),
        };
        for (key, spec) in &self.params {
            match obj.get(key) {
                None if spec.required => return Err(err(key, "required".into())),
                None => {}
                Some(v) if !spec.ty.matches(v) => {
                    return Err(err(key, format!("expected {:?}", spec.ty).to_lowercase()));
                }
                Some(_) => {}
            }
        }
        if let Some(unknown) = obj.keys().find(|k| !self.params.contains_key(*k)) {
            return Err(err(unknown, "not in the plugin's parameter schema".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "scale-up"
version = "1.0.0"
module = "scale-up.wasm"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
approval_role = "manager"
[capabilities]
allowed_hosts = ["127.0.0.1:8080", "deploy.internal"]
[limits]
fuel = 1000
memory_bytes = 1048576
timeout_ms = 50
[params.service]
type = "string"
required = true
[params.replicas]
type = "integer"
"#;

    fn good() -> Manifest {
        Manifest::from_toml(GOOD, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn parses_and_validates_params() {
        let m = good();
        assert_eq!(m.approval_role, "manager");
        assert_eq!(m.limits.fuel_budget(), 1000);
        m.validate_params(&serde_json::json!({"service": "api", "replicas": 3}))
            .unwrap();
        let e = m
            .validate_params(&serde_json::json!({"replicas": 3}))
            .unwrap_err();
        assert!(e.to_string().contains("params.service"), "{e}");
        let e = m
            .validate_params(&serde_json::json!({"service": "api", "replicas": "3"}))
            .unwrap_err();
        assert!(e.to_string().contains("params.replicas"), "{e}");
        let e = m
            .validate_params(&serde_json::json!({"service": "api", "extra": 1}))
            .unwrap_err();
        assert!(e.to_string().contains("params.extra"), "{e}");
    }

    #[test]
    fn host_allowlist_matches_host_and_port() {
        let m = good();
        assert!(m.capabilities.allows_host("127.0.0.1", 8080));
        assert!(!m.capabilities.allows_host("127.0.0.1", 8081));
        assert!(m.capabilities.allows_host("deploy.internal", 443));
        assert!(!m.capabilities.allows_host("evil.example", 80));
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = GOOD.replace("timeout_ms = 50", "timeout_ms = 0");
        let e = Manifest::from_toml(&bad, Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("limits.timeout_ms"), "{e}");
        let unlimited = GOOD.replace("fuel = 1000", "fuel = 0");
        let m = Manifest::from_toml(&unlimited, Path::new("t.toml")).unwrap();
        assert_eq!(m.limits.fuel_budget(), u64::MAX);
        let bad = GOOD.replace("\"deploy.internal\"", "\"http://x/\"");
        let e = Manifest::from_toml(&bad, Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("allowed_hosts[1]"), "{e}");
        let bad = GOOD.replace("\"manager\"", "\"root\"");
        let e = Manifest::from_toml(&bad, Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("approval_role"), "{e}");
        assert_eq!(good().approval_role(), AccessRole::Manager);
        let bad = GOOD.replace("version = ", "colour = \"red\"\nversion = ");
        let e = Manifest::from_toml(&bad, Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }
}
