//! The pause monitor: a thread that samples what the pause rules read about once a second
//! and keeps one shared state, running or paused with the reasons, which each connection
//! watches.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use super::battery::{OnBattery, on_battery};
use super::hours::Hours;
use super::load::{Busy, LoadSampler};

/// How often the monitor samples.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// When the volunteer wants the machine back.
#[derive(Debug, Clone)]
pub struct PauseRules {
    /// Pause while other programs use more than this percentage of the whole machine.
    pub when_busy: Option<u8>,
    /// What to do on battery.
    pub on_battery: OnBattery,
    /// Run only within these local hours.
    pub hours: Option<Hours>,
    /// Where the machine's CPU counters are read (`/proc/stat`; tests give a file of theirs).
    pub proc_stat: PathBuf,
    /// Where the power supplies are listed (`/sys/class/power_supply`; tests give a folder
    /// of theirs).
    pub power_supply: PathBuf,
    /// How often to sample ([`SAMPLE_EVERY`]; tests sample faster).
    pub every: Duration,
}

impl Default for PauseRules {
    fn default() -> Self {
        Self {
            when_busy: None,
            on_battery: OnBattery::Pause,
            hours: None,
            proc_stat: PathBuf::from("/proc/stat"),
            power_supply: PathBuf::from("/sys/class/power_supply"),
            every: SAMPLE_EVERY,
        }
    }
}

/// Why the worker is paused.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// Other programs use more than the threshold (the last sample's share, in percent).
    Busy {
        /// Other programs' share of the machine at the last sample.
        percent: f64,
        /// The `--pause-when-busy` threshold.
        threshold: u8,
    },
    /// The machine runs on battery.
    OnBattery,
    /// The local time is outside `--hours`.
    OutsideHours(Hours),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Busy { percent, threshold } => write!(
                f,
                "other programs use {percent:.0}% of the CPU (over {threshold}%)"
            ),
            Self::OnBattery => f.write_str("on battery"),
            Self::OutsideHours(hours) => write!(f, "outside the hours {hours}"),
        }
    }
}

/// Running, or paused for these reasons.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PauseState {
    /// Why the worker is paused; empty while it runs.
    pub reasons: Vec<Reason>,
}

impl PauseState {
    /// Whether the worker is paused.
    pub fn is_paused(&self) -> bool {
        !self.reasons.is_empty()
    }

    /// The reasons in one line, such as `on battery; outside the hours 22:00-07:00`.
    pub fn reason(&self) -> String {
        self.reasons
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What the monitor keeps between samples.
struct Monitor {
    rules: PauseRules,
    load: LoadSampler,
    busy: Option<Busy>,
    /// The last share sampled, for the reason.
    share: f64,
}

impl Monitor {
    fn new(rules: PauseRules) -> Self {
        Self {
            load: LoadSampler::new(rules.proc_stat.clone()),
            busy: rules.when_busy.map(Busy::new),
            share: 0.0,
            rules,
        }
    }

    /// Samples everything once and says what state that makes.
    fn sample(&mut self) -> PauseState {
        let mut reasons = Vec::new();
        if let Some(busy) = &mut self.busy {
            if let Some(share) = self.load.sample() {
                self.share = share;
                busy.observe(share);
            }
            if busy.is_busy() {
                reasons.push(Reason::Busy {
                    percent: self.share,
                    threshold: self.rules.when_busy.unwrap_or(100),
                });
            }
        }
        if self.rules.on_battery == OnBattery::Pause && on_battery(&self.rules.power_supply) {
            reasons.push(Reason::OnBattery);
        }
        if let Some(hours) = self.rules.hours
            && !hours.now()
        {
            reasons.push(Reason::OutsideHours(hours));
        }
        PauseState { reasons }
    }
}

/// Starts the monitor thread under `rules`; the state it keeps, already sampled once.
/// The thread stops when every receiver is dropped.
///
/// # Errors
/// When the thread cannot be started.
pub fn start(rules: PauseRules) -> std::io::Result<watch::Receiver<PauseState>> {
    let every = rules.every;
    let mut monitor = Monitor::new(rules);
    let first = monitor.sample();
    if first.is_paused() {
        tracing::info!(reason = %first.reason(), "paused from the start");
    }
    let (state, watched) = watch::channel(first);
    std::thread::Builder::new()
        .name("dipla-pause-monitor".into())
        .spawn(move || {
            while !state.is_closed() {
                std::thread::sleep(every);
                let now = monitor.sample();
                state.send_if_modified(|was| {
                    // A changing load figure alone is not a change of state.
                    let changed =
                        was.is_paused() != now.is_paused()
                            || was.reasons.len() != now.reasons.len()
                            || was.reasons.iter().zip(&now.reasons).any(|(a, b)| {
                                std::mem::discriminant(a) != std::mem::discriminant(b)
                            });
                    if changed {
                        if now.is_paused() {
                            tracing::info!(reason = %now.reason(), "pausing");
                        } else {
                            tracing::info!("resuming");
                        }
                        *was = now;
                    }
                    changed
                });
            }
        })?;
    Ok(watched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_names_every_reason() {
        let state = PauseState {
            reasons: vec![
                Reason::Busy {
                    percent: 72.4,
                    threshold: 50,
                },
                Reason::OnBattery,
                Reason::OutsideHours("22-07".parse().unwrap()),
            ],
        };
        assert!(state.is_paused());
        assert_eq!(
            state.reason(),
            "other programs use 72% of the CPU (over 50%); on battery; outside the hours \
             22:00-07:00"
        );
        assert!(!PauseState::default().is_paused());
    }

    #[test]
    fn the_monitor_pauses_on_battery_and_resumes_on_mains() {
        let dir = tempfile::tempdir().unwrap();
        let ac = dir.path().join("AC");
        std::fs::create_dir(&ac).unwrap();
        std::fs::write(ac.join("type"), "Mains\n").unwrap();
        std::fs::write(ac.join("online"), "0\n").unwrap();
        let rules = PauseRules {
            power_supply: dir.path().to_owned(),
            ..PauseRules::default()
        };
        let mut monitor = Monitor::new(rules.clone());
        assert_eq!(monitor.sample().reasons, [Reason::OnBattery]);
        std::fs::write(ac.join("online"), "1\n").unwrap();
        assert!(!monitor.sample().is_paused());
        let mut runs = Monitor::new(PauseRules {
            on_battery: OnBattery::Run,
            ..rules
        });
        std::fs::write(ac.join("online"), "0\n").unwrap();
        assert!(!runs.sample().is_paused(), "--on-battery run");
    }
}
