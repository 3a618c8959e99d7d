//! The host functions of ABI v1 (`signalcraft:host/v1`).
//!
//! Every import decodes its arguments into one [`HostCall`], which goes through
//! [`check_permission`] before [`dispatch`] (Zellij's shape: one command enum, one
//! permission check, then the work). A denied call returns [`code::DENIED`] to the
//! guest *and* is recorded; the run then ends in `PluginError::Denied`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use signalcraft_core::clock::Clock;
use wasmtime::{Caller, Extern, Linker};

use crate::abi::{self, HOST_MODULE, code};
use crate::http::{GuestRequest, HttpClient};
use crate::kv::{KvStore, MAX_KEY_BYTES, MAX_VALUE_BYTES};
use crate::limiter::Limiter;
use crate::manifest::Capabilities;

/// Most log lines kept per run; later lines are dropped (and counted).
pub const MAX_LOG_LINES: usize = 64;
/// Longest log line kept, in bytes.
pub const MAX_LOG_LINE_BYTES: usize = 1024;
/// Denials recorded per run (the run fails on the first; the rest add no information).
const MAX_DENIALS_KEPT: usize = 8;
/// Largest `http_request` document a guest may send.
const MAX_HTTP_REQUEST_BYTES: usize = 1 << 20;

/// Names of the v1 host functions; anything else in [`HOST_MODULE`] is an unknown import.
pub const HOST_FUNCTIONS: [&str; 5] = ["log", "now", "http_request", "kv_get", "kv_set"];

/// Services shared by every run of a host.
pub(crate) struct Services {
    pub kv: Arc<dyn KvStore>,
    pub http: HttpClient,
    pub clock: Arc<dyn Clock>,
}

/// What the host calls need to know about the running plugin.
#[derive(Debug)]
pub(crate) struct PluginInfo {
    pub name: String,
    pub capabilities: Capabilities,
}

/// Store data of one run.
pub(crate) struct Invocation {
    pub plugin: Arc<PluginInfo>,
    pub services: Arc<Services>,
    pub limiter: Limiter,
    pub denials: Vec<String>,
    pub logs: Vec<String>,
    pub dropped_logs: usize,
    pub deadline: Instant,
    pub cancel: Option<CancelHandle>,
    pub cancelled: bool,
}

/// Stops a run from another thread ([`crate::PluginHost::invoke_cancellable`]).
/// Cloning shares the flag.
#[derive(Debug, Clone, Default)]
pub struct CancelHandle(Arc<AtomicBool>);

impl CancelHandle {
    /// A handle that has not been cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run to stop; it is interrupted at the next epoch tick.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`CancelHandle::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// One decoded host call.
#[derive(Debug)]
pub(crate) enum HostCall {
    Log { level: i32, message: String },
    Now,
    Http(GuestRequest),
    KvGet { key: Vec<u8> },
    KvSet { key: Vec<u8>, value: Vec<u8> },
}

/// Decides whether `plugin` may make `call`. `Err` says why not.
pub(crate) fn check_permission(plugin: &PluginInfo, call: &HostCall) -> Result<(), String> {
    match call {
        HostCall::Log { .. } | HostCall::Now => Ok(()),
        HostCall::KvGet { .. } | HostCall::KvSet { .. } if plugin.capabilities.kv => Ok(()),
        HostCall::KvGet { .. } | HostCall::KvSet { .. } => {
            Err("kv is not granted (capabilities.kv)".into())
        }
        HostCall::Http(req) => {
            let url = reqwest::Url::parse(&req.url)
                .map_err(|e| format!("http_request: invalid url: {e}"))?;
            if url.scheme() != "http" && url.scheme() != "https" {
                return Err(format!(
                    "http_request: scheme {:?} not allowed",
                    url.scheme()
                ));
            }
            let host = url.host_str().unwrap_or("");
            let port = url.port_or_known_default().unwrap_or(0);
            if plugin.capabilities.allows_host(host, port) {
                Ok(())
            } else {
                Err(format!(
                    "http_request to {host}:{port} not in capabilities.allowed_hosts"
                ))
            }
        }
    }
}

/// What a dispatched call gives back.
enum Reply {
    Code(i64),
    Bytes(Vec<u8>),
}

/// Executes a permitted call.
fn dispatch(inv: &mut Invocation, call: HostCall) -> Reply {
    match call {
        HostCall::Log { level, message } => {
            // Bounded: a guest logging in a loop cannot flood the host's logs or memory.
            if inv.logs.len() >= MAX_LOG_LINES {
                inv.dropped_logs += 1;
                return Reply::Code(0);
            }
            let name = &inv.plugin.name;
            match level {
                0 => tracing::debug!(plugin = %name, "{message}"),
                1 => tracing::info!(plugin = %name, "{message}"),
                2 => tracing::warn!(plugin = %name, "{message}"),
                _ => tracing::error!(plugin = %name, "{message}"),
            }
            inv.logs.push(message);
            Reply::Code(0)
        }
        HostCall::Now => {
            let ms = inv.services.clock.now().as_millisecond();
            Reply::Code(ms)
        }
        HostCall::KvGet { key } => match inv.services.kv.get(&inv.plugin.name, &key) {
            Some(v) => Reply::Bytes(v),
            None => Reply::Code(code::NOT_FOUND),
        },
        HostCall::KvSet { key, value } => {
            match inv.services.kv.set(&inv.plugin.name, &key, &value) {
                Ok(()) => Reply::Code(0),
                Err(e) => {
                    tracing::warn!(plugin = %inv.plugin.name, error = %e, "kv_set failed");
                    Reply::Code(code::IO)
                }
            }
        }
        HostCall::Http(req) => {
            let remaining = inv.deadline.saturating_duration_since(Instant::now());
            let timeout = inv.plugin.capabilities.http_timeout().min(remaining);
            match inv.services.http.execute(&req, timeout) {
                Ok(resp) => match serde_json::to_vec(&resp) {
                    Ok(bytes) => Reply::Bytes(bytes),
                    Err(_) => Reply::Code(code::IO),
                },
                Err(e) => {
                    tracing::info!(plugin = %inv.plugin.name, error = %e, "http_request failed");
                    Reply::Code(code::IO)
                }
            }
        }
    }
}

/// Copies `len` bytes at `ptr` out of the guest's memory.
fn read_guest(
    caller: &mut Caller<'_, Invocation>,
    ptr: i32,
    len: i32,
    max: usize,
) -> Result<Vec<u8>, i64> {
    let Some(Extern::Memory(mem)) = caller.get_export(abi::EXPORT_MEMORY) else {
        return Err(code::INVALID);
    };
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    if len > max {
        return Err(code::TOO_LARGE);
    }
    mem.data(&caller)
        .get(ptr..ptr.saturating_add(len))
        .map(<[u8]>::to_vec)
        .ok_or(code::INVALID)
}

/// Allocates room in the guest with its `alloc` export and copies `bytes` there.
/// Returns the packed pointer/length, or a negative code.
fn write_guest(caller: &mut Caller<'_, Invocation>, bytes: &[u8]) -> wasmtime::Result<i64> {
    let Ok(len) = u32::try_from(bytes.len()) else {
        return Ok(code::TOO_LARGE);
    };
    let Some(Extern::Func(alloc)) = caller.get_export(abi::EXPORT_ALLOC) else {
        return Ok(code::NO_MEMORY);
    };
    let Ok(alloc) = alloc.typed::<i32, i32>(&caller) else {
        return Ok(code::NO_MEMORY);
    };
    // A trap inside the guest's allocator propagates (it ends the run).
    let ptr = alloc.call(&mut *caller, len as i32)? as u32;
    if ptr == 0 {
        return Ok(code::NO_MEMORY);
    }
    let Some(Extern::Memory(mem)) = caller.get_export(abi::EXPORT_MEMORY) else {
        return Ok(code::NO_MEMORY);
    };
    match mem
        .data_mut(&mut *caller)
        .get_mut(ptr as usize..ptr as usize + bytes.len())
    {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            Ok(abi::pack(ptr, len) as i64)
        }
        None => Ok(code::NO_MEMORY),
    }
}

/// Checks permission, dispatches, and turns the reply into the import's result.
fn run_call(caller: &mut Caller<'_, Invocation>, call: HostCall) -> wasmtime::Result<i64> {
    if let Err(reason) = check_permission(&caller.data().plugin, &call) {
        // Kept bounded: a guest retrying a denied call in a loop gains nothing.
        let inv = caller.data_mut();
        if inv.denials.len() < MAX_DENIALS_KEPT {
            tracing::warn!(plugin = %inv.plugin.name, %reason, "host call denied");
            inv.denials.push(reason);
        }
        return Ok(code::DENIED);
    }
    match dispatch(caller.data_mut(), call) {
        Reply::Code(c) => Ok(c),
        Reply::Bytes(b) => write_guest(caller, &b),
    }
}

/// Defines every v1 host function (and AssemblyScript's `env.abort`) in `linker`.
pub(crate) fn define(linker: &mut Linker<Invocation>) -> wasmtime::Result<()> {
    linker.func_wrap(
        HOST_MODULE,
        "log",
        |mut caller: Caller<'_, Invocation>,
         level: i32,
         ptr: i32,
         len: i32|
         -> wasmtime::Result<()> {
            // Only the first MAX_LOG_LINE_BYTES are copied out of the guest.
            let len = (len as u32).min(MAX_LOG_LINE_BYTES as u32) as i32;
            let bytes = match read_guest(&mut caller, ptr, len, MAX_LOG_LINE_BYTES) {
                Ok(b) => b,
                Err(_) => return Ok(()),
            };
            let message = String::from_utf8_lossy(&bytes).into_owned();
            run_call(&mut caller, HostCall::Log { level, message }).map(|_| ())
        },
    )?;
    linker.func_wrap(HOST_MODULE, "now", |mut caller: Caller<'_, Invocation>| {
        run_call(&mut caller, HostCall::Now)
    })?;
    linker.func_wrap(
        HOST_MODULE,
        "http_request",
        |mut caller: Caller<'_, Invocation>, ptr: i32, len: i32| -> wasmtime::Result<i64> {
            let bytes = match read_guest(&mut caller, ptr, len, MAX_HTTP_REQUEST_BYTES) {
                Ok(b) => b,
                Err(c) => return Ok(c),
            };
            let Ok(req) = serde_json::from_slice::<GuestRequest>(&bytes) else {
                return Ok(code::INVALID);
            };
            run_call(&mut caller, HostCall::Http(req))
        },
    )?;
    linker.func_wrap(
        HOST_MODULE,
        "kv_get",
        |mut caller: Caller<'_, Invocation>, ptr: i32, len: i32| -> wasmtime::Result<i64> {
            match read_guest(&mut caller, ptr, len, MAX_KEY_BYTES) {
                Ok(key) => run_call(&mut caller, HostCall::KvGet { key }),
                Err(c) => Ok(c),
            }
        },
    )?;
    linker.func_wrap(
        HOST_MODULE,
        "kv_set",
        |mut caller: Caller<'_, Invocation>,
         kp: i32,
         kl: i32,
         vp: i32,
         vl: i32|
         -> wasmtime::Result<i32> {
            let key = match read_guest(&mut caller, kp, kl, MAX_KEY_BYTES) {
                Ok(k) => k,
                Err(c) => return Ok(c as i32),
            };
            let value = match read_guest(&mut caller, vp, vl, MAX_VALUE_BYTES) {
                Ok(v) => v,
                Err(c) => return Ok(c as i32),
            };
            run_call(&mut caller, HostCall::KvSet { key, value }).map(|c| c as i32)
        },
    )?;
    // AssemblyScript's default abort handler: end the run with a trap that says where.
    linker.func_wrap(
        "env",
        "abort",
        |_caller: Caller<'_, Invocation>,
         _msg: i32,
         _file: i32,
         line: i32,
         col: i32|
         -> wasmtime::Result<()> {
            Err(wasmtime::Error::msg(format!(
                "guest called abort at line {line}, column {col}"
            )))
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(caps: Capabilities) -> PluginInfo {
        PluginInfo {
            name: "p".into(),
            capabilities: caps,
        }
    }

    #[test]
    fn permissions_deny_by_default() {
        let p = info(Capabilities::default());
        assert!(check_permission(&p, &HostCall::Now).is_ok());
        assert!(check_permission(&p, &HostCall::KvGet { key: vec![] }).is_err());
        let req = |url: &str| {
            HostCall::Http(GuestRequest {
                method: "GET".into(),
                url: url.into(),
                headers: Default::default(),
                body: String::new(),
            })
        };
        assert!(check_permission(&p, &req("http://127.0.0.1:9/")).is_err());
        let p = info(Capabilities {
            allowed_hosts: vec!["127.0.0.1:9".into()],
            kv: true,
            http_timeout_ms: None,
        });
        assert!(check_permission(&p, &req("http://127.0.0.1:9/x")).is_ok());
        assert!(check_permission(&p, &req("http://127.0.0.1:10/x")).is_err());
        assert!(check_permission(&p, &req("file:///etc/passwd")).is_err());
        assert!(check_permission(&p, &HostCall::KvGet { key: vec![] }).is_ok());
    }
}
