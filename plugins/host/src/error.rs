//! The crate's one error type, [`PluginError`], and its mapping onto core's
//! [`RemediationError`].

use std::path::PathBuf;
use std::time::Duration;

use signalcraft_core::remediation::RemediationError;
use thiserror::Error;

/// Everything that can go wrong loading or running a plugin.
///
/// Every guest misbehaviour ends in one of these variants; none of them leaves the
/// host unusable. Messages name the plugin and, where there is one, the manifest
/// field at fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PluginError {
    /// No plugin of that name is loaded.
    #[error("unknown plugin {0:?}")]
    UnknownPlugin(String),
    /// The guest trapped (unreachable, out-of-bounds access, stack overflow, `abort`, …).
    #[error("plugin {plugin:?} trapped: {reason}")]
    Trap {
        /// Plugin name.
        plugin: String,
        /// The trap, as wasmtime describes it.
        reason: String,
    },
    /// The fuel budget (`limits.fuel`) ran out.
    #[error("plugin {plugin:?} ran out of fuel (limits.fuel = {fuel})")]
    OutOfFuel {
        /// Plugin name.
        plugin: String,
        /// The budget that ran out.
        fuel: u64,
    },
    /// The wall-clock deadline (`limits.timeout_ms`) passed.
    #[error("plugin {plugin:?} timed out after {timeout:?} (limits.timeout_ms)")]
    Timeout {
        /// Plugin name.
        plugin: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The run was cancelled through its `CancelHandle`.
    #[error("plugin {plugin:?} was cancelled")]
    Cancelled {
        /// Plugin name.
        plugin: String,
    },
    /// The guest tried to grow its memory past `limits.memory_bytes`.
    #[error(
        "plugin {plugin:?} exceeded its memory limit: wanted {wanted} bytes, limits.memory_bytes = {limit}"
    )]
    MemoryLimit {
        /// Plugin name.
        plugin: String,
        /// Bytes the guest asked for.
        wanted: u64,
        /// The limit.
        limit: u64,
    },
    /// The guest used a capability it was not granted, or tried to act on another
    /// incident. The guest saw an error code; the run is failed and the denial recorded.
    #[error("plugin {plugin:?} denied: {reason}")]
    Denied {
        /// Plugin name.
        plugin: String,
        /// What was denied.
        reason: String,
    },
    /// The guest broke ABI v1 (missing export, bad result pointer, invalid UTF-8 or JSON).
    #[error("plugin {plugin:?} broke ABI v1: {reason}")]
    Abi {
        /// Plugin name.
        plugin: String,
        /// What was wrong.
        reason: String,
    },
    /// The module imports something the host does not provide.
    #[error("plugin {plugin:?} imports unknown host function {module}::{name}")]
    UnknownImport {
        /// Plugin name.
        plugin: String,
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// The module's SHA-256 does not match the manifest's `sha256`.
    #[error("plugin {plugin:?}: module {path} has sha256 {actual}, manifest says {expected}")]
    HashMismatch {
        /// Plugin name.
        plugin: String,
        /// Module path.
        path: PathBuf,
        /// `sha256` from the manifest.
        expected: String,
        /// Digest of the file.
        actual: String,
    },
    /// The module could not be read, compiled or instantiated.
    #[error("plugin {plugin:?} could not be loaded: {reason}")]
    Load {
        /// Plugin name (or manifest path when the name is not known yet).
        plugin: String,
        /// Why.
        reason: String,
    },
    /// The manifest is invalid.
    #[error("manifest {path}: {field}: {reason}")]
    Manifest {
        /// Manifest path.
        path: PathBuf,
        /// The field at fault (`limits.fuel`, `sha256`, …).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The action's parameters do not match the plugin's parameter schema.
    #[error("plugin {plugin:?}: invalid parameter params.{field}: {reason}")]
    InvalidParams {
        /// Plugin name.
        plugin: String,
        /// The parameter at fault.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Every instance slot of the pooling allocator is in use.
    #[error("plugin host is at capacity: {0}")]
    Busy(String),
    /// The precompiled-module cache could not be used.
    #[error("precompiled cache {path}: {reason}")]
    Cache {
        /// Cache file or directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Engine setup failed (invalid host configuration).
    #[error("plugin engine: {0}")]
    Engine(String),
}

impl PluginError {
    /// A stable short name for metrics and audit records (`out_of_fuel`, `denied`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::UnknownPlugin(_) => "unknown_plugin",
            PluginError::Trap { .. } => "trap",
            PluginError::OutOfFuel { .. } => "out_of_fuel",
            PluginError::Timeout { .. } => "timeout",
            PluginError::Cancelled { .. } => "cancelled",
            PluginError::MemoryLimit { .. } => "memory_limit",
            PluginError::Denied { .. } => "denied",
            PluginError::Abi { .. } => "abi",
            PluginError::UnknownImport { .. } => "unknown_import",
            PluginError::HashMismatch { .. } => "hash_mismatch",
            PluginError::Load { .. } => "load",
            PluginError::Manifest { .. } => "manifest",
            PluginError::InvalidParams { .. } => "invalid_params",
            PluginError::Busy(_) => "busy",
            PluginError::Cache { .. } => "cache",
            PluginError::Engine(_) => "engine",
        }
    }
}

impl From<PluginError> for RemediationError {
    fn from(e: PluginError) -> Self {
        let msg = e.to_string();
        match e {
            PluginError::UnknownPlugin(name) => RemediationError::UnknownPlugin(name),
            PluginError::Trap { .. } => RemediationError::Trap(msg),
            PluginError::OutOfFuel { .. } => RemediationError::OutOfFuel,
            PluginError::Timeout { timeout, .. } => RemediationError::Timeout(timeout),
            PluginError::Cancelled { .. } => RemediationError::Cancelled,
            PluginError::MemoryLimit { .. } => RemediationError::MemoryLimit,
            PluginError::Denied { .. } => RemediationError::Denied(msg),
            PluginError::Abi { .. } => RemediationError::Abi(msg),
            PluginError::InvalidParams { .. } => RemediationError::InvalidParams(msg),
            PluginError::Busy(_) => RemediationError::Busy(msg),
            PluginError::UnknownImport { .. }
            | PluginError::HashMismatch { .. }
            | PluginError::Load { .. }
            | PluginError::Manifest { .. }
            | PluginError::Cache { .. }
            | PluginError::Engine(_) => RemediationError::Load(msg),
        }
    }
}
