//! ABI v1 constants and wire types shared by the host calls and the invocation path.
//! `plugins/ABI.md` is the human-readable contract; keep them in sync.

use serde::{Deserialize, Serialize};
use signalcraft_core::remediation::{RemediationRequest, RemediationStatus};

/// The ABI version this host speaks.
pub const ABI_VERSION: i32 = 1;
/// Import module of every v1 host function.
pub const HOST_MODULE: &str = "signalcraft:host/v1";
/// Optional export a guest uses to state its ABI version (`() -> i32`).
pub const EXPORT_ABI_VERSION: &str = "signalcraft_abi_version";
/// Exported entry point: `remediate(ptr: i32, len: i32) -> i64`.
pub const EXPORT_REMEDIATE: &str = "remediate";
/// Exported allocator: `alloc(len: i32) -> i32` (0 = failure).
pub const EXPORT_ALLOC: &str = "alloc";
/// Exported linear memory.
pub const EXPORT_MEMORY: &str = "memory";
/// Optional reactor initialiser, called once per instance before anything else.
pub const EXPORT_INITIALIZE: &str = "_initialize";

/// Host-call error codes, returned to the guest as negative numbers.
pub mod code {
    /// The plugin lacks the capability (host not allowlisted, kv not granted).
    pub const DENIED: i64 = -1;
    /// The call's arguments were invalid (bad pointer, UTF-8 or JSON).
    pub const INVALID: i64 = -2;
    /// The call failed (network error, HTTP timeout, store error).
    pub const IO: i64 = -3;
    /// `kv_get`: no such key.
    pub const NOT_FOUND: i64 = -4;
    /// A key, value or request was too large.
    pub const TOO_LARGE: i64 = -5;
    /// The guest's `alloc` failed to provide room for the result.
    pub const NO_MEMORY: i64 = -6;
}

/// Packs a guest pointer and length into the `u64` ABI v1 uses for results.
pub fn pack(ptr: u32, len: u32) -> u64 {
    (u64::from(ptr) << 32) | u64::from(len)
}

/// Splits a packed result into `(ptr, len)`.
pub fn unpack(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

/// The JSON document a guest's `remediate` receives.
#[derive(Debug, Serialize)]
pub(crate) struct GuestInput<'a> {
    pub abi_version: i32,
    pub plugin: &'a str,
    pub incident_id: &'a str,
    pub incident: &'a serde_json::Value,
    pub alerts: &'a [serde_json::Value],
    pub service: &'a Option<serde_json::Value>,
    pub runbooks: &'a [String],
    pub params: &'a serde_json::Value,
    pub dry_run: bool,
}

impl<'a> GuestInput<'a> {
    pub fn new(req: &'a RemediationRequest) -> Self {
        GuestInput {
            abi_version: ABI_VERSION,
            plugin: &req.plugin,
            incident_id: &req.incident_id,
            incident: &req.incident,
            alerts: &req.alerts,
            service: &req.service,
            runbooks: &req.runbooks,
            params: &req.params,
            dry_run: req.dry_run,
        }
    }
}

/// The JSON document a guest's `remediate` returns.
#[derive(Debug, Deserialize)]
pub(crate) struct GuestOutput {
    pub status: RemediationStatus,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub details: serde_json::Value,
    /// `{"type": "resolve" | "acknowledge" | "mitigate" | "note", "text"?, "incident_id"?}`.
    #[serde(default)]
    pub follow_up: Option<serde_json::Value>,
    /// If present it must equal the request's incident id.
    #[serde(default)]
    pub incident_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_roundtrip() {
        assert_eq!(unpack(pack(0x1234, 0xffff_ffff)), (0x1234, 0xffff_ffff));
        assert_eq!(pack(1, 2), (1u64 << 32) | 2);
    }
}
