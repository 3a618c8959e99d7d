//! [`PluginHost`]: loads plugins (manifest → hash check → compile or cache →
//! `InstancePre`) and runs them, each run in a fresh, bounded `Store`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use signalcraft_core::clock::Clock;
use signalcraft_core::remediation::{
    FollowUp, RemediationError, RemediationOutcome, RemediationRequest, RemediationRunner,
};
use wasmtime::{
    Engine, ExternType, InstancePre, Linker, Module, ModuleExport, PoolConcurrencyLimitError,
    Store, Trap, UpdateDeadline,
};

use crate::abi::{self, GuestInput, GuestOutput};
use crate::cache;
use crate::engine::{EpochTicker, HostConfig, build_engine};
use crate::error::PluginError;
use crate::hostcalls::{self, CancelHandle, HOST_FUNCTIONS, Invocation, PluginInfo, Services};
use crate::http::HttpClient;
use crate::kv::{KvStore, MemoryKv};
use crate::limiter::{Limiter, MemoryLimitExceeded};
use crate::manifest::Manifest;

/// Largest output document a guest may return (1 MiB).
pub const MAX_OUTPUT_BYTES: u32 = 1 << 20;

/// The result of one ABI-level call ([`PluginHost::call_raw`]).
#[derive(Debug, Clone)]
pub struct RawRun {
    /// The bytes the guest returned from `remediate`.
    pub output: Vec<u8>,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Peak linear memory in bytes.
    pub memory_peak: u64,
    /// Wall time of the run (instantiation included).
    pub duration: Duration,
    /// Lines the guest logged (at most [`hostcalls::MAX_LOG_LINES`]).
    pub logs: Vec<String>,
}

/// A loaded plugin: its manifest and its pre-linked module.
pub struct LoadedPlugin {
    manifest: Manifest,
    info: Arc<PluginInfo>,
    pre: InstancePre<Invocation>,
    exports: Exports,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// Its manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
}

/// Export handles resolved once at load, so a run does no name lookups.
struct Exports {
    memory: ModuleExport,
    alloc: ModuleExport,
    remediate: ModuleExport,
    initialize: Option<ModuleExport>,
}

struct Inner {
    engine: Engine,
    linker: Linker<Invocation>,
    services: Arc<Services>,
    plugins: RwLock<HashMap<String, Arc<LoadedPlugin>>>,
    config: HostConfig,
    _ticker: EpochTicker,
}

/// The plugin host. Cheap to clone (shared inside); safe to use from many threads.
///
/// Contract: no guest behaviour can panic the host or leave it unusable; every
/// failure of a run is a [`PluginError`], and other plugins keep working.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("config", &self.inner.config)
            .field("plugins", &self.plugins())
            .finish_non_exhaustive()
    }
}

impl PluginHost {
    /// A host with an in-memory plugin key/value store.
    pub fn new(config: HostConfig, clock: Arc<dyn Clock>) -> Result<Self, PluginError> {
        Self::with_kv(config, clock, Arc::new(MemoryKv::default()))
    }

    /// A host whose `kv_get`/`kv_set` go to `kv`. `clock` answers the `now` host call.
    pub fn with_kv(
        config: HostConfig,
        clock: Arc<dyn Clock>,
        kv: Arc<dyn KvStore>,
    ) -> Result<Self, PluginError> {
        let engine = build_engine(&config)?;
        let mut linker = Linker::new(&engine);
        hostcalls::define(&mut linker).map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick)?;
        Ok(PluginHost {
            inner: Arc::new(Inner {
                engine,
                linker,
                services: Arc::new(Services {
                    kv,
                    http: HttpClient::default(),
                    clock,
                }),
                plugins: RwLock::new(HashMap::new()),
                config,
                _ticker: ticker,
            }),
        })
    }

    /// Loads the plugin described by the manifest file at `path` (replacing a loaded
    /// plugin of the same name) and returns its name.
    pub fn load(&self, path: &Path) -> Result<String, PluginError> {
        self.load_manifest(Manifest::from_file(path)?)
    }

    /// Loads a plugin from an already parsed manifest (module path must be absolute
    /// or relative to the working directory).
    pub fn load_manifest(&self, manifest: Manifest) -> Result<String, PluginError> {
        let plugin = Arc::new(self.prepare(manifest)?);
        let name = plugin.manifest.name.clone();
        self.inner.plugins.write().insert(name.clone(), plugin);
        Ok(name)
    }

    /// Removes a plugin; returns whether it was loaded.
    pub fn unload(&self, name: &str) -> bool {
        self.inner.plugins.write().remove(name).is_some()
    }

    /// The loaded plugin called `name`.
    pub fn plugin(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.inner.plugins.read().get(name).cloned()
    }

    /// Names of the loaded plugins, sorted.
    pub fn plugins(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.plugins.read().keys().cloned().collect();
        v.sort();
        v
    }

    fn prepare(&self, manifest: Manifest) -> Result<LoadedPlugin, PluginError> {
        let name = manifest.name.clone();
        if manifest.limits.memory_bytes > self.inner.config.max_memory_bytes {
            return Err(PluginError::Manifest {
                path: manifest.module.clone(),
                field: "limits.memory_bytes".into(),
                reason: format!(
                    "{} exceeds the host's max_memory_bytes {}",
                    manifest.limits.memory_bytes, self.inner.config.max_memory_bytes
                ),
            });
        }
        let wasm = std::fs::read(&manifest.module).map_err(|e| PluginError::Load {
            plugin: name.clone(),
            reason: format!("read {}: {e}", manifest.module.display()),
        })?;
        let actual = hex::encode(Sha256::digest(&wasm));
        if !actual.eq_ignore_ascii_case(&manifest.sha256) {
            return Err(PluginError::HashMismatch {
                plugin: name,
                path: manifest.module.clone(),
                expected: manifest.sha256.clone(),
                actual,
            });
        }
        let module = cache::load_or_compile(
            &self.inner.engine,
            self.inner.config.cache_dir.as_deref(),
            &name,
            &wasm,
            &actual,
        )?;
        self.prepare_module(manifest, &module)
    }

    fn prepare_module(
        &self,
        manifest: Manifest,
        module: &Module,
    ) -> Result<LoadedPlugin, PluginError> {
        let name = manifest.name.clone();
        let abi_err = |reason: String| PluginError::Abi {
            plugin: name.clone(),
            reason,
        };
        for import in module.imports() {
            let known = (import.module() == abi::HOST_MODULE
                && HOST_FUNCTIONS.contains(&import.name()))
                || (import.module() == "env" && import.name() == "abort");
            if !known {
                return Err(PluginError::UnknownImport {
                    plugin: name.clone(),
                    module: import.module().into(),
                    name: import.name().into(),
                });
            }
        }
        let export = |n: &str| {
            module
                .get_export_index(n)
                .ok_or_else(|| abi_err(format!("missing export {n:?}")))
        };
        check_func(module, abi::EXPORT_ALLOC, &["i32"], &["i32"]).map_err(&abi_err)?;
        check_func(module, abi::EXPORT_REMEDIATE, &["i32", "i32"], &["i64"]).map_err(&abi_err)?;
        if !matches!(
            module.get_export(abi::EXPORT_MEMORY),
            Some(ExternType::Memory(_))
        ) {
            return Err(abi_err("missing memory export \"memory\"".into()));
        }
        let initialize = match module.get_export(abi::EXPORT_INITIALIZE) {
            None => None,
            Some(_) => {
                check_func(module, abi::EXPORT_INITIALIZE, &[], &[]).map_err(&abi_err)?;
                module.get_export_index(abi::EXPORT_INITIALIZE)
            }
        };
        let exports = Exports {
            memory: export(abi::EXPORT_MEMORY)?,
            alloc: export(abi::EXPORT_ALLOC)?,
            remediate: export(abi::EXPORT_REMEDIATE)?,
            initialize,
        };
        let pre = self
            .inner
            .linker
            .instantiate_pre(module)
            .map_err(|e| PluginError::Load {
                plugin: name.clone(),
                reason: format!("link: {e:#}"),
            })?;
        let plugin = LoadedPlugin {
            info: Arc::new(PluginInfo {
                name: name.clone(),
                capabilities: manifest.capabilities.clone(),
            }),
            manifest,
            pre,
            exports,
        };
        if module.get_export(abi::EXPORT_ABI_VERSION).is_some() {
            check_func(module, abi::EXPORT_ABI_VERSION, &[], &["i32"]).map_err(&abi_err)?;
            let version = self.abi_version(&plugin)?;
            if version != abi::ABI_VERSION {
                return Err(abi_err(format!(
                    "guest speaks ABI version {version}; this host speaks {}",
                    abi::ABI_VERSION
                )));
            }
        }
        Ok(plugin)
    }

    fn new_store(
        &self,
        p: &LoadedPlugin,
        start: Instant,
        cancel: Option<CancelHandle>,
    ) -> Result<Store<Invocation>, PluginError> {
        let limits = &p.manifest.limits;
        let mut store = Store::new(
            &self.inner.engine,
            Invocation {
                plugin: p.info.clone(),
                services: self.inner.services.clone(),
                limiter: Limiter::new(limits.memory_bytes),
                denials: Vec::new(),
                logs: Vec::new(),
                dropped_logs: 0,
                deadline: start + limits.timeout(),
                cancel,
                cancelled: false,
            },
        );
        store.limiter(|inv| &mut inv.limiter);
        store
            .set_fuel(limits.fuel_budget())
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        // The ticker thread bumps the epoch every tick; at each tick a running guest
        // comes here, and is interrupted once its wall-clock deadline has passed or
        // its run was cancelled. Guests that finish within a tick never get here.
        store.epoch_deadline_callback(|mut ctx| {
            let inv = ctx.data_mut();
            if inv.cancel.as_ref().is_some_and(CancelHandle::is_cancelled) {
                inv.cancelled = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            if Instant::now() >= inv.deadline {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Continue(1))
        });
        store.set_epoch_deadline(1);
        Ok(store)
    }

    fn abi_version(&self, p: &LoadedPlugin) -> Result<i32, PluginError> {
        let mut store = self.new_store(p, Instant::now(), None)?;
        let instance = p
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(e, p, &store))?;
        let f = instance
            .get_typed_func::<(), i32>(&mut store, abi::EXPORT_ABI_VERSION)
            .map_err(|e| classify(e, p, &store))?;
        f.call(&mut store, ()).map_err(|e| classify(e, p, &store))
    }

    /// Calls the plugin's `remediate` with raw `input` bytes in a fresh store and
    /// returns the raw output. No parameter validation and no output parsing: this
    /// is the ABI-level primitive [`PluginHost::invoke`] builds on.
    pub fn call_raw(&self, name: &str, input: &[u8]) -> Result<RawRun, PluginError> {
        let p = self
            .plugin(name)
            .ok_or_else(|| PluginError::UnknownPlugin(name.into()))?;
        self.run(&p, input, None)
    }

    fn run(
        &self,
        p: &LoadedPlugin,
        input: &[u8],
        cancel: Option<CancelHandle>,
    ) -> Result<RawRun, PluginError> {
        let start = Instant::now();
        let budget = p.manifest.limits.fuel_budget();
        let mut store = self.new_store(p, start, cancel)?;
        let result = self.run_in(p, &mut store, input);
        let inv = store.data();
        if !inv.denials.is_empty() {
            return Err(PluginError::Denied {
                plugin: p.manifest.name.clone(),
                reason: inv.denials.join("; "),
            });
        }
        let output = match result {
            Ok(out) => out,
            Err(Failure::Wasm(e)) => return Err(classify(e, p, &store)),
            Err(Failure::Abi(reason)) => {
                return Err(PluginError::Abi {
                    plugin: p.manifest.name.clone(),
                    reason,
                });
            }
        };
        let remaining = store.get_fuel().unwrap_or(0);
        let inv = store.data();
        let mut logs = inv.logs.clone();
        if inv.dropped_logs > 0 {
            logs.push(format!("({} more log lines dropped)", inv.dropped_logs));
        }
        Ok(RawRun {
            output,
            fuel_used: budget.saturating_sub(remaining),
            memory_peak: inv.limiter.memory_peak as u64,
            duration: start.elapsed(),
            logs,
        })
    }

    fn run_in(
        &self,
        p: &LoadedPlugin,
        store: &mut Store<Invocation>,
        input: &[u8],
    ) -> Result<Vec<u8>, Failure> {
        let instance = p.pre.instantiate(&mut *store)?;
        let ex = &p.exports;
        let lookup = |store: &mut Store<Invocation>, e: &ModuleExport| {
            instance
                .get_module_export(&mut *store, e)
                .ok_or_else(|| Failure::Abi("export vanished".into()))
        };
        if let Some(init) = &ex.initialize {
            let f = lookup(store, init)?
                .into_func()
                .ok_or(Failure::abi("_initialize"))?;
            f.typed::<(), ()>(&*store)?.call(&mut *store, ())?;
        }
        let memory = lookup(store, &ex.memory)?
            .into_memory()
            .ok_or(Failure::abi("memory"))?;
        let alloc = lookup(store, &ex.alloc)?
            .into_func()
            .ok_or(Failure::abi("alloc"))?
            .typed::<i32, i32>(&*store)?;
        let remediate = lookup(store, &ex.remediate)?
            .into_func()
            .ok_or(Failure::abi("remediate"))?
            .typed::<(i32, i32), i64>(&*store)?;
        let len = i32::try_from(input.len()).map_err(|_| Failure::Abi("input too large".into()))?;
        let ptr = alloc.call(&mut *store, len)? as u32;
        if ptr == 0 {
            return Err(Failure::Abi(format!("alloc({len}) returned 0")));
        }
        memory
            .write(&mut *store, ptr as usize, input)
            .map_err(|_| {
                Failure::Abi(format!(
                    "alloc({len}) returned {ptr}, outside linear memory"
                ))
            })?;
        let packed = remediate.call(&mut *store, (ptr as i32, len))? as u64;
        let (out_ptr, out_len) = abi::unpack(packed);
        if out_len > MAX_OUTPUT_BYTES {
            return Err(Failure::Abi(format!(
                "output of {out_len} bytes exceeds {MAX_OUTPUT_BYTES}"
            )));
        }
        let (start, end) = (out_ptr as usize, out_ptr as usize + out_len as usize);
        memory
            .data(&*store)
            .get(start..end)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                Failure::Abi(format!(
                    "result pointer {out_ptr} + length {out_len} is outside linear memory ({} bytes)",
                    memory.data_size(&*store)
                ))
            })
    }

    /// Runs a remediation: validates parameters, runs the plugin in a fresh store and
    /// checks its output. Blocks the calling thread for up to the plugin's timeout
    /// (plus HTTP host calls); async callers use the [`RemediationRunner`] impl.
    pub fn invoke(&self, req: &RemediationRequest) -> Result<RemediationOutcome, PluginError> {
        self.invoke_inner(req, None)
    }

    /// [`PluginHost::invoke`] that another thread can stop with
    /// [`CancelHandle::cancel`]: the guest is interrupted at the next epoch tick and
    /// the run ends in [`PluginError::Cancelled`].
    pub fn invoke_cancellable(
        &self,
        req: &RemediationRequest,
        cancel: &CancelHandle,
    ) -> Result<RemediationOutcome, PluginError> {
        self.invoke_inner(req, Some(cancel.clone()))
    }

    fn invoke_inner(
        &self,
        req: &RemediationRequest,
        cancel: Option<CancelHandle>,
    ) -> Result<RemediationOutcome, PluginError> {
        let p = self
            .plugin(&req.plugin)
            .ok_or_else(|| PluginError::UnknownPlugin(req.plugin.clone()))?;
        p.manifest.validate_params(&req.params)?;
        let input = serde_json::to_vec(&GuestInput::new(req)).map_err(|e| PluginError::Abi {
            plugin: req.plugin.clone(),
            reason: format!("input serialisation: {e}"),
        })?;
        let raw = self.run(&p, &input, cancel)?;
        parse_output(&p.manifest.name, req, raw)
    }
}

/// Turns the guest's raw output into an outcome, enforcing that it only acts on
/// its own incident.
fn parse_output(
    plugin: &str,
    req: &RemediationRequest,
    raw: RawRun,
) -> Result<RemediationOutcome, PluginError> {
    let abi = |reason: String| PluginError::Abi {
        plugin: plugin.into(),
        reason,
    };
    let denied = |other: &str| PluginError::Denied {
        plugin: plugin.into(),
        reason: format!(
            "output acts on incident {other:?}, but the run is for incident {:?}",
            req.incident_id
        ),
    };
    let text =
        std::str::from_utf8(&raw.output).map_err(|e| abi(format!("output is not UTF-8: {e}")))?;
    let out: GuestOutput =
        serde_json::from_str(text).map_err(|e| abi(format!("output is not ABI v1 JSON: {e}")))?;
    if let Some(id) = out
        .incident_id
        .as_deref()
        .filter(|id| *id != req.incident_id)
    {
        return Err(denied(id));
    }
    let follow_up = match out.follow_up {
        None | Some(serde_json::Value::Null) => None,
        Some(mut v) => {
            if let Some(obj) = v.as_object_mut()
                && let Some(id) = obj.remove("incident_id")
                && id.as_str() != Some(req.incident_id.as_str())
            {
                return Err(denied(&id.to_string()));
            }
            Some(
                serde_json::from_value::<FollowUp>(v)
                    .map_err(|e| abi(format!("follow_up: {e}")))?,
            )
        }
    };
    Ok(RemediationOutcome {
        status: out.status,
        message: out.message,
        details: out.details,
        follow_up,
        fuel_used: raw.fuel_used,
        memory_peak: raw.memory_peak,
        duration: raw.duration,
        logs: raw.logs,
    })
}

/// Why a run stopped before producing output.
enum Failure {
    Wasm(wasmtime::Error),
    Abi(String),
}

impl Failure {
    fn abi(export: &str) -> Failure {
        Failure::Abi(format!("export {export:?} has the wrong kind"))
    }
}

impl From<wasmtime::Error> for Failure {
    fn from(e: wasmtime::Error) -> Self {
        Failure::Wasm(e)
    }
}

/// Maps a wasmtime error of a run to the typed error.
fn classify(e: wasmtime::Error, p: &LoadedPlugin, store: &Store<Invocation>) -> PluginError {
    let plugin = p.manifest.name.clone();
    if let Some(m) = e.downcast_ref::<MemoryLimitExceeded>() {
        return PluginError::MemoryLimit {
            plugin,
            wanted: m.wanted,
            limit: m.limit,
        };
    }
    if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
        return PluginError::Busy(format!("{e}"));
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => PluginError::OutOfFuel {
            plugin,
            fuel: p.manifest.limits.fuel_budget(),
        },
        Some(Trap::Interrupt) if store.data().cancelled => PluginError::Cancelled { plugin },
        Some(Trap::Interrupt) => PluginError::Timeout {
            plugin,
            timeout: p.manifest.limits.timeout(),
        },
        Some(trap) => PluginError::Trap {
            plugin,
            reason: trap.to_string(),
        },
        None => PluginError::Trap {
            plugin,
            reason: format!("{e:#}"),
        },
    }
}

fn check_func(
    module: &Module,
    name: &str,
    params: &[&str],
    results: &[&str],
) -> Result<(), String> {
    let Some(ExternType::Func(ft)) = module.get_export(name) else {
        return Err(format!("missing function export {name:?}"));
    };
    let ps: Vec<String> = ft.params().map(|t| t.to_string()).collect();
    let rs: Vec<String> = ft.results().map(|t| t.to_string()).collect();
    if ps != params || rs != results {
        return Err(format!(
            "export {name:?} has type ({}) -> ({}), ABI v1 wants ({}) -> ({})",
            ps.join(", "),
            rs.join(", "),
            params.join(", "),
            results.join(", ")
        ));
    }
    Ok(())
}

#[async_trait]
impl RemediationRunner for PluginHost {
    /// Runs on tokio's blocking pool: guest code and HTTP host calls block a thread.
    async fn run(&self, req: RemediationRequest) -> Result<RemediationOutcome, RemediationError> {
        let host = self.clone();
        match tokio::task::spawn_blocking(move || host.invoke(&req)).await {
            Ok(r) => r.map_err(RemediationError::from),
            Err(e) => Err(RemediationError::Trap(format!("plugin task failed: {e}"))),
        }
    }

    fn plugins(&self) -> Vec<String> {
        PluginHost::plugins(self)
    }
}
