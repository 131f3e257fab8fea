//! The threads that run tasks: one per core, pulling from one queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use dipla_protocol::{TaskItem, TaskResult};
use dipla_sandbox::{Guest, Limits};
use tokio::sync::mpsc::UnboundedSender;

/// One task to run.
pub(crate) struct Work {
    pub(crate) guest: Guest,
    pub(crate) export: Arc<str>,
    pub(crate) limits: Limits,
    pub(crate) item: TaskItem,
}

/// Cancellation flags of the tasks queued or running, by task id.
type Flags = Arc<Mutex<HashMap<u64, Arc<AtomicBool>>>>;

/// A pool of task threads. Dropping it lets each thread finish its current task and exit.
pub(crate) struct Executor {
    queue: crossbeam_channel::Sender<(Work, Arc<AtomicBool>)>,
    // Held only to insert, remove or look up one flag at a time.
    flags: Flags,
}

impl Executor {
    /// Starts `cores` threads sending each result to `results`.
    pub(crate) fn start(
        cores: usize,
        results: UnboundedSender<TaskResult>,
    ) -> std::io::Result<Self> {
        let (queue, work) = crossbeam_channel::unbounded::<(Work, Arc<AtomicBool>)>();
        let flags = Flags::default();
        for i in 0..cores.max(1) {
            let (work, results, flags) = (work.clone(), results.clone(), flags.clone());
            std::thread::Builder::new()
                .name(format!("dipla-task-{i}"))
                .spawn(move || {
                    for (
                        Work {
                            guest,
                            export,
                            limits,
                            item,
                        },
                        cancel,
                    ) in work
                    {
                        let result = run(&guest, &export, &limits, &item, &cancel);
                        lock(&flags).remove(&item.id);
                        if let Some(result) = result
                            && results.send(result).is_err()
                        {
                            break;
                        }
                    }
                })?;
        }
        Ok(Self { queue, flags })
    }

    /// Queues a task. The queue is bounded by the server's in-flight window.
    pub(crate) fn submit(&self, work: Work) {
        let cancel = Arc::new(AtomicBool::new(false));
        lock(&self.flags).insert(work.item.id, cancel.clone());
        // The threads only stop when this sender is dropped, so sending cannot fail.
        let _ = self.queue.send((work, cancel));
    }

    /// Drops the tasks `ids` if queued and interrupts them if running; no result is sent
    /// for them.
    pub(crate) fn cancel(&self, ids: &[u64]) {
        let flags = lock(&self.flags);
        for id in ids {
            if let Some(flag) = flags.get(id) {
                flag.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// Runs one task; `None` when it was cancelled.
fn run(
    guest: &Guest,
    export: &str,
    limits: &Limits,
    item: &TaskItem,
    cancel: &Arc<AtomicBool>,
) -> Option<TaskResult> {
    if cancel.load(Ordering::Relaxed) {
        return None;
    }
    let input = item.input.get().as_bytes();
    let run = guest.run_cancellable(export, input, limits, cancel.clone());
    if cancel.load(Ordering::Relaxed) {
        return None;
    }
    let mut result = match run.outcome {
        Ok(output) => TaskResult::success(item.id, run.fuel, run.micros, output),
        Err(failure) => TaskResult::failure(item.id, run.fuel, run.micros, failure),
    };
    result.stop = run.stop;
    Some(result)
}

fn lock(flags: &Flags) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<AtomicBool>>> {
    // The map stays consistent whatever panics: every operation is one insert or remove.
    flags.lock().unwrap_or_else(PoisonError::into_inner)
}
