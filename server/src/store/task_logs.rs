//! What tasks logged (`dipla_guest::log!`), as workers report it with their results.
//!
//! A log is the worker's word, shown to the user and nothing more: it is not in the receipt,
//! never compared, voted on, journaled or made part of an output, so a hostile worker's log
//! can only be wrong text. The server shows it in two places: with `--log-tasks`, every
//! reported log as it arrives (one log event per line, made printable); and on a failure's
//! result line as `"log"`, the log of the last failed attempt of that task. Failure logs wait
//! here until their line is written, at most [`MAX_KEPT_BYTES`] of them together.

use std::collections::HashMap;

use dipla_protocol::MAX_LOG_BYTES;
use dipla_protocol::text::printable_log;

use dipla_core::TaskRef;

/// The most bytes of failure logs waiting for their result lines; past it, new ones are
/// dropped (their lines carry no log) until lines are written.
pub const MAX_KEPT_BYTES: usize = 16 << 20;

/// The logs of failed attempts, by task, until their result lines are written.
#[derive(Debug, Default)]
pub struct TaskLogs {
    /// Show every reported log on stderr (`run --log-tasks`).
    pub show: bool,
    kept: HashMap<TaskRef, String>,
    bytes: usize,
    dropped: u64,
}

/// Who reported a log, and for which task: for the `--log-tasks` events.
#[derive(Debug, Clone, Copy)]
pub struct Reporter<'a> {
    /// The worker's connection id.
    pub worker: u64,
    /// The stage's name.
    pub stage: &'a str,
    /// The task's index in its stage.
    pub index: u64,
}

impl TaskLogs {
    /// A worker reported `log` for an attempt at `task` that `failed` or not: shows it if
    /// asked to, and keeps a failure's log for its result line.
    pub fn report(&mut self, task: TaskRef, by: Reporter<'_>, log: &str, failed: bool) {
        // The sandbox made it printable already; a hostile worker's may not be.
        let log = printable_log(log, MAX_LOG_BYTES);
        if log.is_empty() {
            return;
        }
        if self.show {
            for line in log.lines() {
                tracing::info!(
                    target: "dipla_server::task_log",
                    worker = by.worker,
                    stage = by.stage,
                    index = by.index,
                    "task log: {line}"
                );
            }
        }
        if failed {
            self.keep(task, log);
        }
    }

    fn keep(&mut self, task: TaskRef, log: String) {
        let replaced = self.kept.remove(&task).map_or(0, |old| old.len());
        self.bytes -= replaced;
        if self.bytes + log.len() > MAX_KEPT_BYTES {
            self.dropped += 1;
            if self.dropped == 1 {
                tracing::warn!(
                    "over {} MiB of failed tasks' logs wait for their result lines: dropping \
                     the logs of further failures",
                    MAX_KEPT_BYTES >> 20
                );
            }
            return;
        }
        self.bytes += log.len();
        self.kept.insert(task, log);
    }

    /// The log kept for `task`'s result line, forgetting it (called for every line written).
    pub fn take(&mut self, task: TaskRef) -> Option<String> {
        let log = self.kept.remove(&task)?;
        self.bytes -= log.len();
        Some(log)
    }

    /// How many failure logs are kept.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether no failure log is kept.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BY: Reporter<'static> = Reporter {
        worker: 1,
        stage: "s",
        index: 0,
    };

    fn task(index: u64) -> TaskRef {
        TaskRef { stage: 0, index }
    }

    #[test]
    fn only_failures_are_kept_and_the_last_one_wins() {
        let mut logs = TaskLogs::default();
        logs.report(task(1), BY, "fine\n", false);
        assert!(logs.is_empty());
        logs.report(task(2), BY, "first try\n", true);
        logs.report(task(2), BY, "second try\n", true);
        logs.report(task(3), BY, "", true);
        assert_eq!(logs.len(), 1, "an empty log is no log");
        assert_eq!(logs.take(task(2)).as_deref(), Some("second try\n"));
        assert_eq!(logs.take(task(2)), None, "taken once");
        assert_eq!(logs.bytes, 0);
    }

    #[test]
    fn a_hostile_log_is_bounded_and_made_printable() {
        let mut logs = TaskLogs::default();
        let hostile = format!("\u{1b}[2J{}", "x".repeat(1 << 20));
        logs.report(task(1), BY, &hostile, true);
        let kept = logs.take(task(1)).unwrap();
        assert_eq!(kept.len(), MAX_LOG_BYTES);
        assert!(kept.starts_with("\u{FFFD}[2J"));
    }

    #[test]
    fn the_logs_kept_are_bounded_in_total() {
        let mut logs = TaskLogs::default();
        let log = "x".repeat(MAX_LOG_BYTES);
        let fit = MAX_KEPT_BYTES / MAX_LOG_BYTES;
        for i in 0..fit as u64 + 10 {
            logs.report(task(i), BY, &log, true);
        }
        assert_eq!(logs.len(), fit);
        assert_eq!(logs.dropped, 10);
        assert!(logs.take(task(fit as u64)).is_none());
        // Writing a line makes room again.
        assert!(logs.take(task(0)).is_some());
        logs.report(task(fit as u64), BY, &log, true);
        assert!(logs.take(task(fit as u64)).is_some());
    }
}
