//! The wasmtime engine every plugin shares, and the one ticker thread that drives
//! its epochs (the wall-clock deadline of every run).

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::error::PluginError;

/// Host-wide settings (per-plugin limits live in the manifest).
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Concurrent runs the pooling allocator has slots for. A run beyond that gets
    /// `PluginError::Busy`.
    pub max_concurrent_runs: u32,
    /// Ceiling for any manifest's `limits.memory_bytes`; also the pool's slot size.
    pub max_memory_bytes: u64,
    /// Epoch tick: a running guest checks its deadline and cancel flag once per tick,
    /// so timeouts and cancellation take effect within one tick.
    pub epoch_tick: Duration,
    /// Wasm stack limit per run (stack overflow traps beyond it).
    pub max_wasm_stack: usize,
    /// Folder for precompiled modules (`None` = compile on every load).
    pub cache_dir: Option<PathBuf>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            max_concurrent_runs: 32,
            max_memory_bytes: 64 << 20,
            epoch_tick: Duration::from_millis(10),
            max_wasm_stack: 512 << 10,
            cache_dir: None,
        }
    }
}

/// Builds the engine: cranelift, fuel metering, epoch interruption, pooling allocator.
pub(crate) fn build_engine(cfg: &HostConfig) -> Result<Engine, PluginError> {
    if cfg.max_concurrent_runs == 0 {
        return Err(PluginError::Engine(
            "max_concurrent_runs must be positive".into(),
        ));
    }
    if cfg.epoch_tick.is_zero() {
        return Err(PluginError::Engine("epoch_tick must be positive".into()));
    }
    let slot = usize::try_from(cfg.max_memory_bytes)
        .map_err(|_| PluginError::Engine("max_memory_bytes does not fit in usize".into()))?;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(cfg.max_concurrent_runs)
        .total_memories(cfg.max_concurrent_runs)
        .total_tables(cfg.max_concurrent_runs)
        .max_memories_per_module(1)
        .max_memory_size(slot);
    let mut c = Config::new();
    c.consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(cfg.max_wasm_stack)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&c).map_err(|e| PluginError::Engine(format!("{e:#}")))
}

/// The one thread that calls `Engine::increment_epoch` every tick. It stops by
/// itself within one tick after this handle is dropped.
#[derive(Debug)]
pub(crate) struct EpochTicker {
    _stop: mpsc::Sender<()>,
}

impl EpochTicker {
    pub fn start(engine: Engine, tick: Duration) -> Result<Self, PluginError> {
        let (stop, rx) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("signalcraft-plugin-epoch".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })
            .map_err(|e| PluginError::Engine(format!("epoch ticker thread: {e}")))?;
        Ok(EpochTicker { _stop: stop })
    }
}
