use serde::{Deserialize, Serialize};

/// The sandbox limits a server asks for a batch of tasks.
///
/// A worker applies the smaller of each of these and its volunteer's own caps.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskLimits {
    /// Fuel (roughly, wasm instructions) one task may burn.
    pub fuel: u64,
    /// Linear memory one task may grow to, in MiB.
    pub memory_mb: u32,
    /// Wall-clock backstop for one task, in milliseconds. Fuel is the real limit; this only
    /// catches a worker that is far slower than expected.
    pub timeout_ms: u64,
}
