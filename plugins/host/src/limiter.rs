//! Per-run resource limiter: enforces the manifest's memory limit and records the
//! peak linear memory for the outcome.

use wasmtime::ResourceLimiter;

/// Raised (as a trap) when a guest grows its memory past the limit. Growth past the
/// limit ends the run with `PluginError::MemoryLimit` instead of returning -1 from
/// `memory.grow`, so a hostile guest cannot spin on failed growth.
#[derive(Debug, thiserror::Error)]
#[error("memory limit exceeded: wanted {wanted} bytes, limit {limit}")]
pub(crate) struct MemoryLimitExceeded {
    pub wanted: u64,
    pub limit: u64,
}

/// Tables are small in C and AssemblyScript guests; this bounds hostile ones.
const MAX_TABLE_ELEMENTS: usize = 100_000;

#[derive(Debug)]
pub(crate) struct Limiter {
    pub memory_limit: usize,
    pub memory_peak: usize,
}

impl Limiter {
    pub fn new(memory_limit: u64) -> Self {
        Limiter {
            memory_limit: usize::try_from(memory_limit).unwrap_or(usize::MAX),
            memory_peak: 0,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                wanted: desired as u64,
                limit: self.memory_limit as u64,
            }));
        }
        self.memory_peak = self.memory_peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }

    fn memories(&self) -> usize {
        1
    }
}
