//! Running at idle priority: the volunteer's own programs always come first.
//!
//! A task thread lowers itself as it starts: Linux's `SCHED_IDLE` (it runs only when a core
//! would otherwise be idle), or, where that is refused, nice 19 (the lowest ordinary
//! priority). A thread that lowered itself cannot raise itself again without privileges, so
//! only threads that do nothing else are lowered: task threads, the threads that compile
//! modules, and the compiler's worker pool.

use std::sync::Once;

/// How the worker's task threads are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Priority {
    /// The lowest: `SCHED_IDLE`, or nice 19 where that is refused.
    Idle,
    /// As any other program (the worker library's default; `dipla-worker` defaults to idle).
    #[default]
    Normal,
}

/// What lowering a thread achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lowered {
    /// The thread runs under `SCHED_IDLE`.
    SchedIdle,
    /// `SCHED_IDLE` was refused; the thread runs at nice 19.
    Nice19,
    /// Both were refused (or this is not Linux): the thread runs as it was.
    Unchanged,
}

impl Priority {
    /// Applies this priority to the calling thread (nothing for [`Priority::Normal`]), and
    /// logs once per process which scheduling the worker's threads got.
    pub fn apply_to_this_thread(self) -> Option<Lowered> {
        match self {
            Self::Normal => None,
            Self::Idle => {
                let lowered = lower_this_thread();
                static LOGGED: Once = Once::new();
                LOGGED.call_once(|| match lowered {
                    Lowered::SchedIdle => {
                        tracing::info!("task threads run at idle priority (SCHED_IDLE)");
                    }
                    Lowered::Nice19 => {
                        tracing::info!("task threads run at nice 19 (SCHED_IDLE was refused)")
                    }
                    Lowered::Unchanged => tracing::warn!(
                        "task threads could not be given a lower priority; they run as \
                         normal programs do"
                    ),
                });
                Some(lowered)
            }
        }
    }

    /// Runs `work` on a new thread at this priority and returns what it returns: for
    /// CPU-heavy work (compiling a module) asked for from a thread that must keep its own
    /// priority (the async runtime's blocking pool).
    pub fn run<T: Send>(self, work: impl FnOnce() -> T + Send) -> T {
        if self == Self::Normal {
            return work();
        }
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name("dipla-compile".into())
                .spawn_scoped(scope, move || {
                    self.apply_to_this_thread();
                    work()
                });
            // The system cannot make a thread at all: the worker cannot go on anyway.
            thread
                .expect("cannot start a thread to compile a module")
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Makes the threads of the compiler's worker pool (Cranelift compiles a module's
    /// functions in parallel on rayon's global pool) run at this priority. Call it before
    /// anything compiles; later calls, or a pool already built, change nothing.
    pub fn apply_to_compiler_pool(self) {
        if self == Self::Normal {
            return;
        }
        let built = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("dipla-cranelift-{i}"))
            .start_handler(move |_| {
                lower_this_thread();
            })
            .build_global();
        if let Err(error) = built {
            tracing::debug!(%error, "the compiler's pool was already built");
        }
    }
}

/// Lowers the calling thread: `SCHED_IDLE`, or nice 19 where that is refused.
#[cfg(target_os = "linux")]
pub fn lower_this_thread() -> Lowered {
    // Zeroed: musl's sched_param has more fields than glibc's, all zero here.
    // SAFETY: sched_param is plain integers, for which all zeroes is a valid value.
    let param: libc::sched_param = unsafe { std::mem::zeroed() };
    // The system call itself, not libc's wrapper: musl's (the static build's) refuses with
    // ENOSYS, as POSIX gives the call a whole process's meaning.
    // SAFETY: `param` is a valid sched_param that outlives the call; pid 0 is the calling
    // thread on Linux.
    let set = unsafe {
        libc::syscall(
            libc::SYS_sched_setscheduler,
            0,
            libc::SCHED_IDLE,
            &raw const param,
        )
    };
    if set == 0 {
        return Lowered::SchedIdle;
    }
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    // SAFETY: PRIO_PROCESS with a thread id sets that thread's nice value on Linux.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) } == 0 {
        return Lowered::Nice19;
    }
    Lowered::Unchanged
}

/// Lowers the calling thread: nice 19 where the system allows it.
#[cfg(all(unix, not(target_os = "linux")))]
pub fn lower_this_thread() -> Lowered {
    // SAFETY: nice only changes the calling process's priority.
    if unsafe { libc::nice(19) } != -1 {
        return Lowered::Nice19;
    }
    Lowered::Unchanged
}

/// Lowers the calling thread: not done on this system.
#[cfg(not(unix))]
pub fn lower_this_thread() -> Lowered {
    Lowered::Unchanged
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's policy and nice value, from /proc.
    #[cfg(target_os = "linux")]
    fn policy_and_nice() -> (u32, i32) {
        // SAFETY: gettid cannot fail.
        let tid = unsafe { libc::gettid() };
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        // Fields 19 (nice) and 41 (policy), counting from 1; the slice starts at field 3.
        (
            fields[41 - 3].parse().unwrap(),
            fields[19 - 3].parse().unwrap(),
        )
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_idle_thread_runs_under_sched_idle_or_at_nice_19() {
        let (lowered, (policy, nice)) = std::thread::spawn(|| {
            let lowered = Priority::Idle.apply_to_this_thread().unwrap();
            (lowered, policy_and_nice())
        })
        .join()
        .unwrap();
        match lowered {
            Lowered::SchedIdle => assert_eq!(policy, libc::SCHED_IDLE as u32),
            Lowered::Nice19 => assert_eq!(nice, 19),
            Lowered::Unchanged => panic!("neither SCHED_IDLE nor nice 19 was allowed"),
        }
        // Other threads keep theirs.
        assert_eq!(policy_and_nice().0, libc::SCHED_OTHER as u32);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn work_run_at_idle_priority_leaves_the_caller_as_it_was() {
        let (policy, _) = Priority::Idle.run(policy_and_nice);
        assert!(policy == libc::SCHED_IDLE as u32 || policy == libc::SCHED_OTHER as u32);
        assert_eq!(policy_and_nice().0, libc::SCHED_OTHER as u32);
        assert_eq!(Priority::Normal.run(|| 7), 7);
    }
}
