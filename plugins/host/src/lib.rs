//! # signalcraft-plugins
//!
//! The WASM remediation host: runs sandboxed plugins (fuel, epoch deadline, memory
//! limit, capability allowlist) behind `signalcraft_core::remediation::RemediationRunner`.
//! (Filled in by the plugins work.)
