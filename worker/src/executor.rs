//! The threads that run tasks: one per core, pulling from one queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dipla_protocol::{TaskItem, TaskResult};
use dipla_sandbox::{Guest, Limits, Pace};
use tokio::sync::mpsc::UnboundedSender;

use crate::polite::{Pacer, Priority};

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
    /// Starts `cores` threads sending each result to `results`; with a `throttle` above 1,
    /// each task takes that many times as long (a slow machine, for tests and benchmarks).
    /// Each thread runs at `priority` and, with a `cpu_percent`, paces itself to that share
    /// of the wall clock (see [`crate::polite`]).
    pub(crate) fn start(
        cores: usize,
        throttle: u32,
        priority: Priority,
        cpu_percent: Option<u8>,
        results: UnboundedSender<TaskResult>,
        status: crate::Status,
    ) -> std::io::Result<Self> {
        let (queue, work) = crossbeam_channel::unbounded::<(Work, Arc<AtomicBool>)>();
        let flags = Flags::default();
        for i in 0..cores.max(1) {
            let (work, results, flags) = (work.clone(), results.clone(), flags.clone());
            let status = status.clone();
            std::thread::Builder::new()
                .name(format!("dipla-task-{i}"))
                .spawn(move || {
                    priority.apply_to_this_thread();
                    // Made on this thread: it measures this thread's CPU time.
                    let pacer = cpu_percent.map(|percent| Arc::new(Pacer::new(percent)));
                    let pace = pacer.clone().map(|pacer| {
                        Arc::new(move |cancel: &AtomicBool| {
                            pacer.pace(cancel);
                        }) as Pace
                    });
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
                        let task = Task {
                            guest: &guest,
                            export: &export,
                            limits: &limits,
                            item: &item,
                            cancel: &cancel,
                            pace: pace.clone(),
                        };
                        let running = status.task_running();
                        let result = run(task, throttle);
                        drop(running);
                        lock(&flags).remove(&item.id);
                        // Tasks shorter than a tick are paced between them.
                        if let Some(pacer) = &pacer {
                            pacer.pace(&cancel);
                        }
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

    /// Drops every task queued and interrupts every task running (a pause); no result is
    /// sent for them.
    pub(crate) fn cancel_all(&self) {
        for flag in lock(&self.flags).values() {
            flag.store(true, Ordering::Relaxed);
        }
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

/// One task as a thread runs it.
struct Task<'a> {
    guest: &'a Guest,
    export: &'a str,
    limits: &'a Limits,
    item: &'a TaskItem,
    cancel: &'a Arc<AtomicBool>,
    pace: Option<Pace>,
}

/// Runs one task; `None` when it was cancelled.
fn run(task: Task<'_>, throttle: u32) -> Option<TaskResult> {
    let Task {
        guest,
        export,
        limits,
        item,
        cancel,
        pace,
    } = task;
    if cancel.load(Ordering::Relaxed) {
        return None;
    }
    let input = item.input.get().as_bytes();
    let mut run = guest.run_paced(export, input, limits, cancel.clone(), pace);
    if throttle > 1 {
        let extra = Duration::from_micros(run.micros.saturating_mul(u64::from(throttle - 1)));
        let until = Instant::now() + extra;
        while !cancel.load(Ordering::Relaxed) && Instant::now() < until {
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(5)));
        }
        run.micros = run.micros.saturating_mul(u64::from(throttle));
    }
    if cancel.load(Ordering::Relaxed) {
        return None;
    }
    let mut result = match run.outcome {
        Ok(output) => TaskResult::success(item.id, run.fuel, run.micros, output),
        Err(failure) => TaskResult::failure(item.id, run.fuel, run.micros, failure),
    };
    result.stop = run.stop;
    result.log = run.log;
    Some(result)
}

fn lock(flags: &Flags) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<AtomicBool>>> {
    // The map stays consistent whatever panics: every operation is one insert or remove.
    flags.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use dipla_protocol::RawJson;
    use dipla_sandbox::Sandbox;

    use super::*;

    /// `spin` never returns; `one` returns 1.
    const GUEST: &str = r#"(module
        (memory (export "memory") 1)
        (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 64))
        (func (export "spin") (param i32 i32) (result i64) (loop $l (br $l)) (i64.const 0))
        (func (export "one") (param i32 i32) (result i64)
            (i32.store16 (i32.const 0) (i32.const 0x3100)) ;; status 0, then "1"
            (i64.const 2))
        (@custom "dipla" "{\"abi\":1,\"task\":\"spin\"}\n{\"abi\":1,\"task\":\"one\"}\n"))"#;

    fn work(guest: &Guest, export: &str, id: u64) -> Work {
        let limits = Limits {
            fuel: u64::MAX / 2,
            ..Limits::default()
        };
        let input = RawJson::from_string("0".to_owned()).unwrap();
        Work {
            guest: guest.clone(),
            export: export.into(),
            limits,
            item: TaskItem { id, input },
        }
    }

    #[tokio::test]
    async fn cancelling_interrupts_the_running_task_and_drops_the_queued_ones() {
        let guest = Sandbox::new()
            .unwrap()
            .compile(&wat::parse_str(GUEST).unwrap())
            .unwrap();
        let (results, mut received) = tokio::sync::mpsc::unbounded_channel();
        let executor = Executor::start(
            1,
            1,
            Priority::Normal,
            None,
            results,
            crate::Status::default(),
        )
        .unwrap();
        executor.submit(work(&guest, "spin", 1));
        executor.submit(work(&guest, "one", 2));
        tokio::time::sleep(Duration::from_millis(50)).await;
        executor.cancel(&[1, 2]);
        // The only core was stuck in `spin`: a result for task 3 proves it is free again, and
        // nothing came for the cancelled tasks.
        executor.submit(work(&guest, "one", 3));
        let result = tokio::time::timeout(Duration::from_secs(10), received.recv())
            .await
            .expect("the core stayed busy")
            .unwrap();
        assert_eq!(result.id, 3);
        assert_eq!(result.output.unwrap().get(), "1");
        assert!(received.try_recv().is_err());
    }
}
