//! # signalcraft-plugins
//!
//! The WASM remediation host: runs sandboxed plugins behind
//! [`signalcraft_core::remediation::RemediationRunner`]. Each run gets a fresh
//! wasmtime `Store` from a pre-linked `InstancePre` (pooling allocator), a fuel budget,
//! an epoch deadline driven by one ticker thread, a memory limit, and host functions
//! that deny by default: HTTP only to the manifest's allowed hosts, a key/value store
//! only when granted and scoped to the plugin. No WASI at all: ABI v1 does not need it.
//!
//! The guest contract is `plugins/ABI.md`; plugin authors start at `docs/plugins.md`.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use signalcraft_core::clock::SystemClock;
//! # use signalcraft_plugins::{HostConfig, PluginHost};
//! let host = PluginHost::new(HostConfig::default(), Arc::new(SystemClock))?;
//! host.load(std::path::Path::new("plugins/http-restart/plugin.toml"))?;
//! # Ok::<(), signalcraft_plugins::PluginError>(())
//! ```
//!
//! # Layout
//!
//! * [`host`]: [`PluginHost`] — load (hash check, compile or cache, link) and run.
//! * [`manifest`]: the `plugin.toml` format and the parameter schema.
//! * [`abi`]: ABI v1 constants, error codes and wire types.
//! * [`hostcalls`]: the `signalcraft:host/v1` functions, one permission check before dispatch.
//! * [`engine`]: engine settings ([`HostConfig`]) and the epoch ticker thread.
//! * [`cache`]: the precompiled, SHA-256-checked module cache (and why its `unsafe` is sound).
//! * [`http`], [`kv`]: the services behind the host calls.
//! * [`error`]: [`PluginError`], mapped onto core's `RemediationError`.
#![deny(missing_docs)]

pub mod abi;
pub mod cache;
pub mod engine;
pub mod error;
pub mod host;
pub mod hostcalls;
pub mod http;
pub mod kv;
mod limiter;
pub mod manifest;

pub use engine::HostConfig;
pub use error::PluginError;
pub use host::{LoadedPlugin, PluginHost, RawRun};
pub use hostcalls::CancelHandle;
pub use kv::{KvStore, MemoryKv};
pub use manifest::Manifest;
