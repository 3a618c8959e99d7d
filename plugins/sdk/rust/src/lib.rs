//! # signalcraft-plugin-sdk
//!
//! Write SignalCraft remediation plugins in Rust: implement [`Remediation`], call
//! [`register_remediation!`], build for `wasm32-unknown-unknown`. The SDK mirrors the
//! host: the same JSON documents and host calls as `plugins/ABI.md`.
//!
//! ```
//! use signalcraft_plugin_sdk::{Host, Input, Output, Remediation, Status};
//!
//! struct Restart;
//! impl Remediation for Restart {
//!     fn remediate(&self, input: &Input, host: &dyn Host) -> Output {
//!         let Some(service) = input.param_str("service") else {
//!             return Output::new(Status::Failure, "params.service missing");
//!         };
//!         host.log(1, &format!("restarting {service}"));
//!         Output::new(Status::Success, "restarted").mitigate()
//!     }
//! }
//! signalcraft_plugin_sdk::register_remediation!(Restart);
//! ```
//!
//! **Verification status:** the wasm32 Rust target cannot be installed on the machines
//! this project is built on, so the wasm build (the `wasm` module and the exports
//! [`register_remediation!`] generates under `target_arch = "wasm32"`) is
//! **unverified here**. Everything else — input parsing, output building, the
//! dispatch in [`run_json`] — is plain Rust, unit-tested on the host against
//! [`StubHost`].
//!
//! # Layout
//!
//! * [`Input`], [`Output`], [`Status`], [`FollowUp`]: the ABI v1 documents.
//! * [`Host`]: the host calls; `wasm::WasmHost` (wasm32 only) and [`StubHost`] (tests).
//! * [`run_json`]: bytes in → bytes out, what the generated `remediate` export calls.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Host-call error codes (ABI v1 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// -1: capability not granted (the run will end in `Denied`).
    Denied,
    /// -2: invalid arguments.
    Invalid,
    /// -3: network or store error, timeout.
    Io,
    /// -4: no such key.
    NotFound,
    /// -5: too large.
    TooLarge,
    /// -6: the guest's allocator failed.
    NoMemory,
    /// Any other negative code.
    Other(i64),
}

impl HostError {
    /// The error for a negative host result.
    pub fn from_code(code: i64) -> HostError {
        match code {
            -1 => HostError::Denied,
            -2 => HostError::Invalid,
            -3 => HostError::Io,
            -4 => HostError::NotFound,
            -5 => HostError::TooLarge,
            -6 => HostError::NoMemory,
            c => HostError::Other(c),
        }
    }
}

/// An HTTP request for [`Host::http`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// Method.
    pub method: String,
    /// Absolute URL (its host must be in the manifest's `allowed_hosts`).
    pub url: String,
    /// Headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body text.
    #[serde(default)]
    pub body: String,
}

/// An HTTP response from [`Host::http`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body text.
    #[serde(default)]
    pub body: String,
}

/// The host functions of `signalcraft:host/v1`.
pub trait Host {
    /// Logs a line (level 0 debug … 3 error).
    fn log(&self, level: i32, message: &str);
    /// Unix milliseconds from the host clock.
    fn now_ms(&self) -> i64;
    /// Sends an HTTP request through the host.
    fn http(&self, req: &HttpRequest) -> Result<HttpResponse, HostError>;
    /// Reads a plugin-scoped key.
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError>;
    /// Writes a plugin-scoped key.
    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), HostError>;
}

/// The input document (ABI v1 §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// ABI version (1).
    #[serde(default)]
    pub abi_version: i32,
    /// Plugin name.
    pub plugin: String,
    /// The incident this run may act on.
    pub incident_id: String,
    /// Incident snapshot.
    #[serde(default)]
    pub incident: serde_json::Value,
    /// Its alerts.
    #[serde(default)]
    pub alerts: Vec<serde_json::Value>,
    /// Its service.
    #[serde(default)]
    pub service: Option<serde_json::Value>,
    /// Runbook URLs.
    #[serde(default)]
    pub runbooks: Vec<String>,
    /// Validated parameters.
    #[serde(default)]
    pub params: serde_json::Value,
    /// Plan only.
    #[serde(default)]
    pub dry_run: bool,
}

impl Input {
    /// A string parameter.
    pub fn param_str(&self, name: &str) -> Option<&str> {
        self.params.get(name).and_then(serde_json::Value::as_str)
    }

    /// An integer parameter.
    pub fn param_i64(&self, name: &str) -> Option<i64> {
        self.params.get(name).and_then(serde_json::Value::as_i64)
    }
}

/// Outcome status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It worked.
    Success,
    /// It ran and did not work.
    Failure,
    /// Nothing to do (or a dry run).
    Noop,
}

/// A follow-up on the run's own incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FollowUp {
    /// Resolve it.
    Resolve,
    /// Acknowledge it.
    Acknowledge,
    /// Mark it mitigated.
    Mitigate,
    /// Add a timeline note.
    Note {
        /// Text.
        text: String,
    },
}

/// The output document (ABI v1 §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// Status.
    pub status: Status,
    /// One line for humans.
    pub message: String,
    /// Structured details.
    #[serde(default)]
    pub details: serde_json::Value,
    /// Optional follow-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<FollowUp>,
}

impl Output {
    /// An output with no details and no follow-up.
    pub fn new(status: Status, message: impl Into<String>) -> Output {
        Output {
            status,
            message: message.into(),
            details: serde_json::Value::Null,
            follow_up: None,
        }
    }

    /// Sets `details`.
    pub fn details(mut self, details: serde_json::Value) -> Output {
        self.details = details;
        self
    }

    /// Asks the engine to mark the incident mitigated.
    pub fn mitigate(mut self) -> Output {
        self.follow_up = Some(FollowUp::Mitigate);
        self
    }

    /// Adds a timeline note.
    pub fn note(mut self, text: impl Into<String>) -> Output {
        self.follow_up = Some(FollowUp::Note { text: text.into() });
        self
    }
}

/// A remediation.
pub trait Remediation {
    /// Runs once per invocation, in a fresh instance.
    fn remediate(&self, input: &Input, host: &dyn Host) -> Output;
}

/// Parses the input document, runs `r`, serialises the output. Invalid input becomes
/// a `failure` output (never a panic).
pub fn run_json(r: &dyn Remediation, input: &[u8], host: &dyn Host) -> Vec<u8> {
    let out = match serde_json::from_slice::<Input>(input) {
        Ok(input) => r.remediate(&input, host),
        Err(e) => Output::new(Status::Failure, format!("invalid input document: {e}")),
    };
    serde_json::to_vec(&out).unwrap_or_else(|_| {
        br#"{"status":"failure","message":"output serialisation failed"}"#.to_vec()
    })
}

/// A [`Host`] for native tests: canned HTTP answers, an in-memory kv, a fixed clock,
/// and a record of every call.
#[derive(Debug, Default)]
pub struct StubHost {
    /// The clock's value.
    pub now_ms: i64,
    /// Answers by `"METHOD url"`; a missing entry answers `Err(HostError::Denied)`.
    pub http_answers: BTreeMap<String, HttpResponse>,
    /// Requests made.
    pub requests: RefCell<Vec<HttpRequest>>,
    /// Lines logged.
    pub logs: RefCell<Vec<String>>,
    /// The kv store.
    pub kv: RefCell<BTreeMap<String, Vec<u8>>>,
}

impl Host for StubHost {
    fn log(&self, _level: i32, message: &str) {
        self.logs.borrow_mut().push(message.into());
    }
    fn now_ms(&self) -> i64 {
        self.now_ms
    }
    fn http(&self, req: &HttpRequest) -> Result<HttpResponse, HostError> {
        self.requests.borrow_mut().push(req.clone());
        self.http_answers
            .get(&format!("{} {}", req.method, req.url))
            .cloned()
            .ok_or(HostError::Denied)
    }
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        Ok(self.kv.borrow().get(key).cloned())
    }
    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), HostError> {
        self.kv.borrow_mut().insert(key.into(), value.into());
        Ok(())
    }
}

/// The wasm32 side: imports, allocator and [`wasm::WasmHost`]. **Unverified here**
/// (no wasm32 Rust target on the build machines).
#[cfg(target_arch = "wasm32")]
pub mod wasm {
    use super::*;

    #[link(wasm_import_module = "signalcraft:host/v1")]
    unsafe extern "C" {
        fn log(level: i32, ptr: *const u8, len: u32);
        fn now() -> i64;
        fn http_request(ptr: *const u8, len: u32) -> i64;
        fn kv_get(ptr: *const u8, len: u32) -> i64;
        fn kv_set(kp: *const u8, kl: u32, vp: *const u8, vl: u32) -> i32;
    }

    /// Takes ownership of a host-written buffer (allocated through `alloc`).
    fn take(packed: i64) -> Vec<u8> {
        let (ptr, len) = (
            (packed as u64 >> 32) as usize,
            (packed as u64 & 0xffff_ffff) as usize,
        );
        // SAFETY: the host wrote `len` bytes at `ptr`, which our `alloc` returned.
        unsafe { std::slice::from_raw_parts(ptr as *const u8, len) }.to_vec()
    }

    /// [`Host`] over the real imports.
    pub struct WasmHost;

    impl Host for WasmHost {
        fn log(&self, level: i32, message: &str) {
            unsafe { log(level, message.as_ptr(), message.len() as u32) }
        }
        fn now_ms(&self) -> i64 {
            unsafe { now() }
        }
        fn http(&self, req: &HttpRequest) -> Result<HttpResponse, HostError> {
            let doc = serde_json::to_vec(req).map_err(|_| HostError::Invalid)?;
            let r = unsafe { http_request(doc.as_ptr(), doc.len() as u32) };
            if r < 0 {
                return Err(HostError::from_code(r));
            }
            serde_json::from_slice(&take(r)).map_err(|_| HostError::Invalid)
        }
        fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
            match unsafe { kv_get(key.as_ptr(), key.len() as u32) } {
                -4 => Ok(None),
                r if r < 0 => Err(HostError::from_code(r)),
                r => Ok(Some(take(r))),
            }
        }
        fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), HostError> {
            match unsafe {
                kv_set(
                    key.as_ptr(),
                    key.len() as u32,
                    value.as_ptr(),
                    value.len() as u32,
                )
            } {
                0 => Ok(()),
                r => Err(HostError::from_code(i64::from(r))),
            }
        }
    }

    /// ABI `alloc`: leaks a boxed slice (the instance is discarded after the run).
    pub fn alloc(len: u32) -> u32 {
        let b = vec![0u8; len as usize].into_boxed_slice();
        Box::leak(b).as_mut_ptr() as u32
    }

    /// ABI `remediate` body.
    pub fn remediate(r: &dyn Remediation, ptr: u32, len: u32) -> u64 {
        // SAFETY: the host wrote `len` bytes at `ptr` (returned by `alloc`).
        let input = unsafe { std::slice::from_raw_parts(ptr as *const u8, len as usize) };
        let out = Box::leak(run_json(r, input, &WasmHost).into_boxed_slice());
        ((out.as_ptr() as u64) << 32) | out.len() as u64
    }
}

/// Defines the ABI v1 exports for a [`Remediation`] value (wasm32 only; a no-op on
/// other targets so the same crate builds and tests natively).
#[macro_export]
macro_rules! register_remediation {
    ($value:expr) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[unsafe(no_mangle)]
            pub extern "C" fn alloc(len: u32) -> u32 {
                $crate::wasm::alloc(len)
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn dealloc(_ptr: u32, _len: u32) {}
            #[unsafe(no_mangle)]
            pub extern "C" fn signalcraft_abi_version() -> i32 {
                1
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn remediate(ptr: u32, len: u32) -> u64 {
                $crate::wasm::remediate(&$value, ptr, len)
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scale-up logic of the AssemblyScript example, in Rust.
    struct ScaleUp;

    impl Remediation for ScaleUp {
        fn remediate(&self, input: &Input, host: &dyn Host) -> Output {
            let (Some(endpoint), Some(service)) =
                (input.param_str("endpoint"), input.param_str("service"))
            else {
                return Output::new(
                    Status::Failure,
                    "params.endpoint and params.service are required",
                );
            };
            let base = format!("{endpoint}/v1/services/{service}");
            let get = HttpRequest {
                method: "GET".into(),
                url: base.clone(),
                headers: BTreeMap::new(),
                body: String::new(),
            };
            let from = match host.http(&get) {
                Ok(r) if r.status == 200 => serde_json::from_str::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|v| v["replicas"].as_i64()),
                Ok(_) => None,
                Err(e) => return Output::new(Status::Failure, format!("deploy API: {e:?}")),
            };
            let Some(from) = from else {
                return Output::new(Status::Failure, "no replica count");
            };
            let to = (from + input.param_i64("step").unwrap_or(1))
                .min(input.param_i64("max_replicas").unwrap_or(10));
            let plan = serde_json::json!({"from": from, "to": to});
            if to <= from || input.dry_run {
                return Output::new(Status::Noop, "nothing done").details(plan);
            }
            let post = HttpRequest {
                method: "POST".into(),
                url: format!("{base}/scale"),
                headers: BTreeMap::new(),
                body: serde_json::json!({"replicas": to}).to_string(),
            };
            match host.http(&post) {
                Ok(r) if (200..300).contains(&r.status) => {
                    let _ = host.kv_set("last_scale_ms", host.now_ms().to_string().as_bytes());
                    Output::new(Status::Success, "scaled")
                        .details(plan)
                        .note(format!("{service}: {from} → {to}"))
                }
                _ => Output::new(Status::Failure, "scale refused").details(plan),
            }
        }
    }

    register_remediation!(ScaleUp);

    fn input(params: serde_json::Value, dry_run: bool) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "abi_version": 1, "plugin": "scale-up", "incident_id": "inc-1",
            "incident": {}, "alerts": [], "service": null, "runbooks": [],
            "params": params, "dry_run": dry_run,
        }))
        .unwrap()
    }

    fn host() -> StubHost {
        let mut h = StubHost {
            now_ms: 1_700_000_000_000,
            ..StubHost::default()
        };
        let ok = |body: &str| HttpResponse {
            status: 200,
            headers: BTreeMap::new(),
            body: body.into(),
        };
        h.http_answers.insert(
            "GET http://api/v1/services/web".into(),
            ok(r#"{"replicas":2}"#),
        );
        h.http_answers
            .insert("POST http://api/v1/services/web/scale".into(), ok("{}"));
        h
    }

    #[test]
    fn scales_and_records_in_kv() {
        let h = host();
        let params = serde_json::json!({"endpoint": "http://api", "service": "web", "step": 3});
        let out: Output =
            serde_json::from_slice(&run_json(&ScaleUp, &input(params, false), &h)).unwrap();
        assert_eq!(out.status, Status::Success);
        assert_eq!(out.details, serde_json::json!({"from": 2, "to": 5}));
        assert_eq!(
            out.follow_up,
            Some(FollowUp::Note {
                text: "web: 2 → 5".into()
            })
        );
        let reqs = h.requests.borrow();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[1].body, r#"{"replicas":5}"#);
        assert_eq!(h.kv.borrow()["last_scale_ms"], b"1700000000000");
    }

    #[test]
    fn dry_run_only_reads() {
        let h = host();
        let params = serde_json::json!({"endpoint": "http://api", "service": "web"});
        let out: Output =
            serde_json::from_slice(&run_json(&ScaleUp, &input(params, true), &h)).unwrap();
        assert_eq!(out.status, Status::Noop);
        assert_eq!(h.requests.borrow().len(), 1);
    }

    #[test]
    fn denied_host_and_bad_input_are_failures_not_panics() {
        let h = host();
        let params = serde_json::json!({"endpoint": "http://evil", "service": "web"});
        let out: Output =
            serde_json::from_slice(&run_json(&ScaleUp, &input(params, false), &h)).unwrap();
        assert_eq!(out.status, Status::Failure);
        assert!(out.message.contains("Denied"), "{}", out.message);
        let out: Output = serde_json::from_slice(&run_json(&ScaleUp, b"not json", &h)).unwrap();
        assert_eq!(out.status, Status::Failure);
        assert!(out.message.contains("invalid input"));
    }

    #[test]
    fn error_codes_map() {
        assert_eq!(HostError::from_code(-1), HostError::Denied);
        assert_eq!(HostError::from_code(-4), HostError::NotFound);
        assert_eq!(HostError::from_code(-99), HostError::Other(-99));
    }
}
