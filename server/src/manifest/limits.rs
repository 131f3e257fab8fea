//! The `[limits]` table: the sandbox limits every task gets.

use dipla_protocol::TaskLimits;

use super::schema::LimitsFile;
use super::{DEFAULT_LIMITS, Fault};

/// The limits `file` sets, the rest at [`DEFAULT_LIMITS`].
pub(super) fn limits(file: &LimitsFile) -> Result<TaskLimits, Fault> {
    let fuel = file.fuel.unwrap_or(DEFAULT_LIMITS.fuel);
    if fuel == 0 {
        return Err(Fault::new("limits.fuel", "must be positive"));
    }
    let memory_mb = file.memory_mb.unwrap_or(DEFAULT_LIMITS.memory_mb);
    if !(1..=4096).contains(&memory_mb) {
        return Err(Fault::new(
            "limits.memory_mb",
            "must be between 1 and 4096 (wasm32 addresses 4 GiB)",
        ));
    }
    let timeout_ms = match file.timeout_secs {
        Some(0) => return Err(Fault::new("limits.timeout_secs", "must be positive")),
        Some(secs) => secs.saturating_mul(1000),
        None => DEFAULT_LIMITS.timeout_ms,
    };
    Ok(TaskLimits {
        fuel,
        memory_mb,
        timeout_ms,
    })
}
