//! `--cpu-percent N`: each task thread uses at most N% of the wall-clock time, averaged
//! over a few seconds, by sleeping when it is over that budget.
//!
//! A [`Pacer`] belongs to one thread: it compares the thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`) with the wall-clock time since it began, and sleeps the
//! thread until the two agree with the share again. It is asked at every epoch tick of a
//! running task (every 10 ms: the sandbox's pacing hook) and between tasks (tasks shorter
//! than a tick never see one). Time spent under the budget (idle, waiting for work) earns at
//! most [`MAX_CREDIT`] of running ahead: a thread never runs flat out after a quiet spell,
//! and over any few seconds it uses at most its share (plus that credit's worth).
//!
//! Pacing only sleeps: it never changes what a task computes, its fuel or its output. The
//! sandbox's wall-clock backstop counts the epoch ticks at which the task was running (one
//! per callback), not the time the callback slept, so a paced task is never timed out for
//! the sleeps its volunteer asked for: it gets the same running time as an unpaced one, and
//! an honest, paced worker never times out a task it would otherwise finish. The `micros` it
//! reports do include the sleeps (the task took that long on this worker), so the server
//! ranks a paced worker by the speed it really gives.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The most wall-clock time a thread under its budget may bank, to run ahead later.
pub const MAX_CREDIT: Duration = Duration::from_millis(100);

/// The longest single sleep, so that a cancelled or paused task stops within about a tick.
const SLICE: Duration = Duration::from_millis(10);

/// Keeps one thread's CPU time within a share of the wall-clock time.
#[derive(Debug)]
pub struct Pacer {
    share: f64,
    window: Mutex<Window>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    wall: Instant,
    cpu: Duration,
}

impl Pacer {
    /// A pacer for the calling thread, keeping it at `percent` (1 to 100) of the wall clock.
    pub fn new(percent: u8) -> Self {
        Self {
            share: f64::from(percent.clamp(1, 100)) / 100.0,
            window: Mutex::new(Window {
                wall: Instant::now(),
                cpu: thread_cpu_time(),
            }),
        }
    }

    /// Sleeps the calling thread (the one that made the pacer) while it is over its
    /// budget, stopping early once `cancel` is set. Returns how long it slept.
    pub fn pace(&self, cancel: &AtomicBool) -> Duration {
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let due = (thread_cpu_time().saturating_sub(window.cpu)).div_f64(self.share);
        let started = Instant::now();
        let until = window.wall + due;
        let mut slept = false;
        while !cancel.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= until {
                break;
            }
            std::thread::sleep((until - now).min(SLICE));
            slept = true;
        }
        let now = Instant::now();
        if let Some(credit) = now.checked_duration_since(until + MAX_CREDIT) {
            // Under budget by more than the credit allows: forget the rest.
            window.wall += credit;
        }
        if slept { now - started } else { Duration::ZERO }
    }
}

/// The CPU time the calling thread has used.
#[cfg(unix)]
pub fn thread_cpu_time() -> Duration {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid timespec to write to; the clock id is a constant.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(time.tv_sec).unwrap_or(0),
        u32::try_from(time.tv_nsec).unwrap_or(0),
    )
}

/// The CPU time the calling thread has used: unknown here, so nothing is paced.
#[cfg(not(unix))]
pub fn thread_cpu_time() -> Duration {
    Duration::ZERO
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burns CPU for `wall` of wall-clock time, pacing at every 10 ms as the sandbox does,
    /// and returns the thread's share of CPU time.
    fn burn_paced(percent: u8, wall: Duration) -> f64 {
        let never = AtomicBool::new(false);
        let pacer = Pacer::new(percent);
        let (started, cpu) = (Instant::now(), thread_cpu_time());
        while started.elapsed() < wall {
            let tick = Instant::now();
            while tick.elapsed() < Duration::from_millis(10) {
                std::hint::black_box(tick.elapsed());
            }
            pacer.pace(&never);
        }
        (thread_cpu_time() - cpu).as_secs_f64() / started.elapsed().as_secs_f64()
    }

    #[test]
    fn a_paced_thread_stays_within_its_share() {
        // A busy machine can only lower the share; it can never raise it.
        let share = burn_paced(30, Duration::from_millis(1500));
        assert!(share <= 0.40, "{share}");
        assert!(share > 0.0);
    }

    #[test]
    fn a_quiet_spell_earns_little_credit() {
        let pacer = Pacer::new(50);
        let never = AtomicBool::new(false);
        // A second idle, then flat out: at 50% it may run ahead by the credit only.
        std::thread::sleep(Duration::from_millis(1000));
        pacer.pace(&never);
        let started = Instant::now();
        let (cpu, mut slept) = (thread_cpu_time(), Duration::ZERO);
        while thread_cpu_time() - cpu < Duration::from_millis(300) {
            slept += pacer.pace(&never);
        }
        // 300 ms of CPU at 50% takes 600 ms, less at most 100 ms of credit.
        assert!(started.elapsed() >= Duration::from_millis(450), "{slept:?}");
    }

    #[test]
    fn a_thread_under_its_budget_never_sleeps() {
        let pacer = Pacer::new(50);
        let never = AtomicBool::new(false);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(pacer.pace(&never), Duration::ZERO);
    }

    #[test]
    fn a_cancelled_task_is_not_kept_asleep() {
        let pacer = Pacer::new(1);
        let tick = Instant::now();
        while tick.elapsed() < Duration::from_millis(20) {
            std::hint::black_box(tick.elapsed());
        }
        // 20 ms of CPU at 1% is owed two seconds of sleep; cancelled, it sleeps none.
        assert!(pacer.pace(&AtomicBool::new(true)) < Duration::from_millis(5));
    }

    #[test]
    fn the_thread_cpu_clock_counts_this_threads_work_only() {
        let before = thread_cpu_time();
        std::thread::sleep(Duration::from_millis(30));
        assert!(thread_cpu_time() - before < Duration::from_millis(20));
    }
}
