//! `--pause-when-busy PCT`: how much of the machine other programs use, from `/proc/stat`,
//! and when that means the worker should step aside.
//!
//! Every sample compares the machine's CPU counters (the `cpu` line of `/proc/stat`: all
//! cores, in clock ticks) with the previous sample's: the busy share of the machine is
//! everything but idle and iowait; the worker's own part (its `utime + stime` in
//! `/proc/self/stat`, in the same clock ticks) is taken out, since a worker must not pause
//! for its own work. What is left is the other programs' share of the whole machine.
//!
//! [`Busy`] adds hysteresis so that a short burst does not pause the worker and a pause does
//! not flap: it pauses after [`PAUSE_AFTER`] samples in a row above the threshold, and
//! resumes after [`RESUME_AFTER`] samples in a row below the threshold minus [`MARGIN`]
//! points (at most half the threshold).

use std::path::{Path, PathBuf};

/// Samples in a row above the threshold before pausing (about 2 s).
pub const PAUSE_AFTER: u32 = 2;
/// Samples in a row below the resume level before resuming (about 5 s).
pub const RESUME_AFTER: u32 = 5;
/// How far below the threshold, in percentage points, the load must fall to resume.
pub const MARGIN: f64 = 10.0;

/// The machine's cumulative CPU counters, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineTimes {
    /// Every tick counted, all cores.
    pub total: u64,
    /// Ticks idle or waiting for I/O.
    pub idle: u64,
}

/// The machine's counters from the text of `/proc/stat` (its first line,
/// `cpu  user nice system idle iowait irq softirq steal guest guest_nice`); `None` if it
/// has no such line. Guest time is already counted in user and nice, so it is left out.
pub fn parse_proc_stat(text: &str) -> Option<MachineTimes> {
    let line = text
        .lines()
        .find(|line| line.split_whitespace().next() == Some("cpu"))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    if values.len() < 4 {
        return None;
    }
    let total = values.iter().take(8).sum();
    let idle = values[3] + values.get(4).copied().unwrap_or(0);
    Some(MachineTimes { total, idle })
}

/// A process's CPU time in clock ticks (`utime + stime`, fields 14 and 15) from the text
/// of its `/proc/PID/stat`.
pub fn parse_process_stat(text: &str) -> Option<u64> {
    // The name, field 2, is in parentheses and may hold spaces and parentheses itself.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// Measures other programs' share of the machine between successive samples.
#[derive(Debug)]
pub struct LoadSampler {
    proc_stat: PathBuf,
    last: Option<(MachineTimes, u64)>,
}

impl LoadSampler {
    /// A sampler reading `proc_stat` (normally `/proc/stat`).
    pub fn new(proc_stat: impl Into<PathBuf>) -> Self {
        Self {
            proc_stat: proc_stat.into(),
            last: None,
        }
    }

    /// Other programs' share of the whole machine, in percent, since the last sample; `None`
    /// for the first sample, when the counters cannot be read, or when they did not move.
    pub fn sample(&mut self) -> Option<f64> {
        let machine = read(&self.proc_stat, parse_proc_stat)?;
        let own = read(Path::new("/proc/self/stat"), parse_process_stat).unwrap_or(0);
        let (last_machine, last_own) = self.last.replace((machine, own))?;
        let total = machine.total.checked_sub(last_machine.total)?;
        let idle = machine.idle.saturating_sub(last_machine.idle);
        if total == 0 {
            return None;
        }
        let busy = total.saturating_sub(idle);
        let others = busy.saturating_sub(own.saturating_sub(last_own));
        Some((others as f64 * 100.0 / total as f64).clamp(0.0, 100.0))
    }
}

fn read<T>(path: &Path, parse: impl FnOnce(&str) -> Option<T>) -> Option<T> {
    parse(&std::fs::read_to_string(path).ok()?)
}

/// Whether the machine is busy, with hysteresis (see the module's documentation).
#[derive(Debug, Clone)]
pub struct Busy {
    threshold: f64,
    busy: bool,
    /// Samples in a row on the other side of the current state's bound.
    streak: u32,
}

impl Busy {
    /// Busy above `threshold` percent of the machine.
    pub fn new(threshold: u8) -> Self {
        Self {
            threshold: f64::from(threshold),
            busy: false,
            streak: 0,
        }
    }

    /// The level the load must fall below to resume.
    pub fn resume_level(&self) -> f64 {
        self.threshold - MARGIN.min(self.threshold / 2.0)
    }

    /// Takes one sample of other programs' share, in percent; returns whether the machine
    /// counts as busy now.
    pub fn observe(&mut self, share: f64) -> bool {
        let crossing = if self.busy {
            share < self.resume_level()
        } else {
            share > self.threshold
        };
        self.streak = if crossing { self.streak + 1 } else { 0 };
        let needed = if self.busy { RESUME_AFTER } else { PAUSE_AFTER };
        if self.streak >= needed {
            self.busy = !self.busy;
            self.streak = 0;
        }
        self.busy
    }

    /// Whether the machine counts as busy.
    pub fn is_busy(&self) -> bool {
        self.busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  4705 356 584 3699 23 0 15 0 0 0\n\
                        cpu0 1393 280 248 1795 11 0 12 0 0 0\n\
                        intr 114930548 113199788 3 0 5 263 0 4 [...]\n";

    #[test]
    fn proc_stat_gives_the_machine_totals() {
        let times = parse_proc_stat(STAT).unwrap();
        assert_eq!(times.total, 4705 + 356 + 584 + 3699 + 23 + 15);
        assert_eq!(times.idle, 3699 + 23);
        // Old kernels have four fields only.
        let old = parse_proc_stat("cpu 1 2 3 4\n").unwrap();
        assert_eq!((old.total, old.idle), (10, 4));
        assert_eq!(parse_proc_stat("cpu0 1 2 3 4\n"), None);
        assert_eq!(parse_proc_stat("cpu 1 2 x 4\n"), None);
        assert_eq!(parse_proc_stat(""), None);
    }

    #[test]
    fn a_process_stat_gives_its_cpu_ticks_whatever_its_name() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 70 0 0 20 0 3 0 1000 123456 789";
        assert_eq!(parse_process_stat(stat), Some(320));
        assert_eq!(parse_process_stat("1234 (x) S 1"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_process_stat(&own).is_some());
    }

    #[test]
    fn the_sampler_counts_other_programs_share_of_the_machine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        let mut sampler = LoadSampler::new(&path);
        assert_eq!(sampler.sample(), None, "nothing to read");
        std::fs::write(&path, "cpu 1000 0 0 1000 0 0 0 0\n").unwrap();
        assert_eq!(
            sampler.sample(),
            None,
            "a first sample has nothing to compare with"
        );
        assert_eq!(
            sampler.sample(),
            None,
            "counters that did not move say nothing"
        );
        // 1,000,000 ticks, 800,000 busy: this test's own few ticks are a rounding error.
        std::fs::write(&path, "cpu 801000 0 0 201000 0 0 0 0\n").unwrap();
        let share = sampler.sample().unwrap();
        assert!((79.0..=80.0).contains(&share), "{share}");
    }

    #[test]
    fn busy_pauses_after_two_samples_above_and_resumes_after_five_well_below() {
        let mut busy = Busy::new(50);
        assert_eq!(busy.resume_level(), 40.0);
        assert!(!busy.observe(90.0), "one burst is not busy");
        assert!(!busy.observe(10.0));
        assert!(!busy.observe(90.0));
        assert!(busy.observe(60.0), "two in a row are");
        for _ in 0..4 {
            assert!(busy.observe(30.0));
        }
        assert!(
            busy.observe(45.0),
            "below the threshold but within the margin"
        );
        for _ in 0..4 {
            assert!(busy.observe(39.0));
        }
        assert!(!busy.observe(39.0), "five in a row below the resume level");
        assert!(!busy.is_busy());
        // A small threshold keeps a margin of half of it.
        assert_eq!(Busy::new(10).resume_level(), 5.0);
    }
}
