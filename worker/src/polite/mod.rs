//! Being polite on a volunteer's machine: the volunteer's own programs come first.
//!
//! - [`priority`]: task threads (and module compiles) at idle priority (`--priority`).
//! - [`pace`]: each task thread within a share of the wall clock (`--cpu-percent`).
//! - [`monitor`]: pausing while other programs are busy ([`load`]), on battery
//!   ([`battery`]) or outside the volunteer's hours ([`hours`]); a paused worker stops its
//!   tasks and tells the server, which gives them to other workers at once.

pub mod battery;
pub mod hours;
pub mod load;
pub mod monitor;
pub mod pace;
pub mod priority;

pub use battery::OnBattery;
pub use hours::{Hours, HoursError};
pub use monitor::{PauseRules, PauseState, Reason};
pub use pace::Pacer;
pub use priority::{Lowered, Priority};

/// How politely a worker runs (see [`crate::WorkerConfig::polite`]). The default is a
/// worker library's: normal priority, no cap, never paused; `dipla-worker` runs at idle
/// priority and pauses on battery unless told otherwise.
#[derive(Debug, Clone, Default)]
pub struct Polite {
    /// The task threads' priority.
    pub priority: Priority,
    /// The share of the wall clock, in percent (1 to 100), each task thread may use.
    pub cpu_percent: Option<u8>,
    /// The pause monitor's state ([`monitor::start`]), if one runs.
    pub pauses: Option<tokio::sync::watch::Receiver<PauseState>>,
}
