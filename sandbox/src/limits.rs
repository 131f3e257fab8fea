use std::time::Duration;

use dipla_protocol::{FailureKind, TaskLimits};

use crate::config::{
    COMPONENT_CORE_INSTANCES, COMPONENT_MEMORIES, COMPONENT_TABLES, MAX_TABLE_ELEMENTS,
};

/// What one task may consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel (about one unit per wasm instruction).
    pub fuel: u64,
    /// The largest linear memory, in bytes.
    pub memory_bytes: usize,
    /// The wall-clock backstop.
    pub timeout: Duration,
    /// The largest output, in bytes.
    pub max_output_bytes: usize,
}

impl Limits {
    /// The limits a server asks for.
    pub fn from_task(limits: &TaskLimits) -> Self {
        Self {
            fuel: limits.fuel,
            memory_bytes: (limits.memory_mb as usize) << 20,
            timeout: Duration::from_millis(limits.timeout_ms),
            ..Self::default()
        }
    }

    /// The smaller of each limit: a volunteer's caps always win over what a server asks.
    pub fn min(self, other: Self) -> Self {
        Self {
            fuel: self.fuel.min(other.fuel),
            memory_bytes: self.memory_bytes.min(other.memory_bytes),
            timeout: self.timeout.min(other.timeout),
            max_output_bytes: self.max_output_bytes.min(other.max_output_bytes),
        }
    }
}

impl Default for Limits {
    /// Safe for volunteers: 10^10 fuel (seconds of work), 256 MiB, 5 minutes, 16 MiB out.
    fn default() -> Self {
        Self {
            fuel: 10_000_000_000,
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(300),
            max_output_bytes: 16 << 20,
        }
    }
}

/// The guest asked for more memory (or table space) than its limit; raised from the
/// limiter, so the growth traps at once, deterministically.
#[derive(Debug)]
pub(crate) struct LimitExceeded {
    pub(crate) what: &'static str,
    pub(crate) desired: usize,
    pub(crate) limit: usize,
}

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} would grow to {} bytes; the limit is {}",
            self.what, self.desired, self.limit
        )
    }
}

impl std::error::Error for LimitExceeded {}

impl LimitExceeded {
    pub(crate) fn kind(&self) -> FailureKind {
        FailureKind::MemoryLimit
    }
}

/// The store's resource limiter: memory and tables capped, and as many instances, memories
/// and tables as one guest has (a core module: one of each; a component: its core modules').
pub(crate) struct Limiter {
    pub(crate) memory_bytes: usize,
    instances: usize,
    memories: usize,
    tables: usize,
}

impl Limiter {
    /// For a core module's task.
    pub(crate) fn core(memory_bytes: usize) -> Self {
        Self {
            memory_bytes,
            instances: 1,
            memories: 1,
            tables: 1,
        }
    }

    /// For a component's task.
    pub(crate) fn component(memory_bytes: usize) -> Self {
        Self {
            memory_bytes,
            instances: COMPONENT_CORE_INSTANCES as usize,
            memories: COMPONENT_MEMORIES as usize,
            tables: COMPONENT_TABLES as usize,
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            return Err(wasmtime::Error::new(LimitExceeded {
                what: "linear memory",
                desired,
                limit: self.memory_bytes,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Err(wasmtime::Error::new(LimitExceeded {
                what: "a table",
                desired,
                limit: MAX_TABLE_ELEMENTS,
            }));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}
