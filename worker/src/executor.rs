//! The threads that run tasks: one per core, pulling from one queue.

use std::sync::Arc;

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

/// A pool of task threads. Dropping it lets each thread finish its current task and exit.
pub(crate) struct Executor {
    queue: crossbeam_channel::Sender<Work>,
}

impl Executor {
    /// Starts `cores` threads sending each result to `results`.
    pub(crate) fn start(
        cores: usize,
        results: UnboundedSender<TaskResult>,
    ) -> std::io::Result<Self> {
        let (queue, work) = crossbeam_channel::unbounded::<Work>();
        for i in 0..cores.max(1) {
            let (work, results) = (work.clone(), results.clone());
            std::thread::Builder::new()
                .name(format!("dipla-task-{i}"))
                .spawn(move || {
                    for Work {
                        guest,
                        export,
                        limits,
                        item,
                    } in work
                    {
                        let run = guest.run(&export, item.input.get().as_bytes(), &limits);
                        let result = match run.outcome {
                            Ok(output) => {
                                TaskResult::success(item.id, run.fuel, run.micros, output)
                            }
                            Err(failure) => {
                                TaskResult::failure(item.id, run.fuel, run.micros, failure)
                            }
                        };
                        if results.send(result).is_err() {
                            break;
                        }
                    }
                })?;
        }
        Ok(Self { queue })
    }

    /// Queues a task. The queue is bounded by the server's in-flight window.
    pub(crate) fn submit(&self, work: Work) {
        // The threads only stop when this sender is dropped, so sending cannot fail.
        let _ = self.queue.send(work);
    }
}
