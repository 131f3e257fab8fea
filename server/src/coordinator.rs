//! The scheduling core: which task runs where, what happens when it fails or its worker
//! vanishes, and which results are ready to write. It does no I/O and reads no clock: the
//! transport feeds it events (a worker joined, results arrived, a worker left) and sends what
//! it decides, so it can be tested deterministically.
//!
//! Memory is proportional to the work in flight, not to the size of the job: fresh tasks are
//! a cursor per stage, and a task only gets a record once it is running, has failed, or
//! finished out of order.

use std::collections::{BTreeMap, HashMap, VecDeque};

use dipla_protocol::{FailureKind, RawJson, TaskFailure};

/// A connected worker, as the coordinator knows it.
pub type WorkerId = u64;

/// One attempt at running a task; the id that travels in the protocol.
pub type AttemptId = u64;

/// A task: its stage and its index among the stage's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskRef {
    /// The stage, in manifest order.
    pub stage: usize,
    /// The input's index in the stage.
    pub index: u64,
}

/// In-flight tasks per core before the first result tells how long tasks take.
const START_PER_CORE: usize = 2;
/// Bounds on in-flight tasks per core.
const MIN_PER_CORE: usize = 2;
const MAX_PER_CORE: usize = 512;
/// How much work, in microseconds, to keep queued on each core: enough to hide a round trip,
/// little enough that the end of a job is not stuck behind one worker's backlog.
const TARGET_QUEUED_MICROS: f64 = 20_000.0;
/// How many times a task may be lost with its worker before it is failed (it may be what
/// kills workers).
pub const MAX_LOST: u32 = 3;

/// What the coordinator needs to know of a stage.
#[derive(Debug, Clone, Copy)]
pub struct StagePlan {
    /// How many tasks.
    pub tasks: u64,
    /// Failures before a task is reported as failed.
    pub max_attempts: u32,
}

/// A finished task, ready to be written.
#[derive(Debug)]
pub struct Finished {
    /// Which task.
    pub task: TaskRef,
    /// Its output, or the failure that ended its last attempt.
    pub outcome: Result<Box<RawJson>, TaskFailure>,
    /// How many attempts ran to an answer (successful or not).
    pub attempts: u32,
}

/// Tasks to send to one worker, all from one stage.
#[derive(Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The stage (decides module, export and limits).
    pub stage: usize,
    /// Attempt ids and input indexes.
    pub tasks: Vec<(AttemptId, u64)>,
}

/// A worker broke the protocol with a result.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Violation {
    /// The result names an attempt this worker was not running.
    #[error("result for task {0}, which this worker was not given or already answered")]
    UnknownAttempt(AttemptId),
}

/// Counters of what happened, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Tasks finished with an output.
    pub succeeded: u64,
    /// Tasks finished with a failure.
    pub failed: u64,
    /// Attempts that failed and were retried.
    pub retried: u64,
    /// Attempts lost with their worker and run again.
    pub requeued: u64,
}

#[derive(Debug)]
struct Worker {
    cores: usize,
    in_flight: usize,
    /// Moving average of task time on this worker, in microseconds.
    task_micros: Option<f64>,
}

impl Worker {
    fn window(&self) -> usize {
        let per_core = match self.task_micros {
            None => START_PER_CORE,
            Some(micros) => {
                let fit = TARGET_QUEUED_MICROS / micros.max(1.0);
                (fit as usize).clamp(MIN_PER_CORE, MAX_PER_CORE)
            }
        };
        self.cores * per_core
    }
}

#[derive(Debug, Default)]
struct History {
    failures: u32,
    lost: u32,
    /// Workers whose attempt failed: a retry goes elsewhere when it can.
    failed_on: Vec<WorkerId>,
}

#[derive(Debug)]
struct Attempt {
    task: TaskRef,
    worker: WorkerId,
}

/// The scheduling state of one job.
#[derive(Debug)]
pub struct Coordinator {
    plans: Vec<StagePlan>,
    /// The next never-dispatched index of each stage.
    fresh: Vec<u64>,
    /// Tasks to run again, oldest first.
    retries: VecDeque<TaskRef>,
    attempts: HashMap<AttemptId, Attempt>,
    next_attempt: AttemptId,
    history: HashMap<TaskRef, History>,
    workers: HashMap<WorkerId, Worker>,
    /// Finished tasks not yet taken, per stage, by index.
    finished: Vec<BTreeMap<u64, Finished>>,
    /// How many tasks of each stage have been taken, in order.
    taken: Vec<u64>,
    counts: Counts,
}

impl Coordinator {
    /// A coordinator for stages with these plans.
    pub fn new(plans: Vec<StagePlan>) -> Self {
        let n = plans.len();
        Self {
            plans,
            fresh: vec![0; n],
            retries: VecDeque::new(),
            attempts: HashMap::new(),
            next_attempt: 1,
            history: HashMap::new(),
            workers: HashMap::new(),
            finished: (0..n).map(|_| BTreeMap::new()).collect(),
            taken: vec![0; n],
            counts: Counts::default(),
        }
    }

    /// A worker joined, running `cores` tasks at once.
    pub fn join(&mut self, worker: WorkerId, cores: usize) {
        let state = Worker {
            cores: cores.max(1),
            in_flight: 0,
            task_micros: None,
        };
        self.workers.insert(worker, state);
    }

    /// A worker left (or was disconnected): its tasks go back to the front of the queue.
    pub fn leave(&mut self, worker: WorkerId) {
        self.workers.remove(&worker);
        let mut lost: Vec<(AttemptId, TaskRef)> = self
            .attempts
            .iter()
            .filter(|(_, attempt)| attempt.worker == worker)
            .map(|(&id, attempt)| (id, attempt.task))
            .collect();
        lost.sort_unstable_by_key(|&(_, task)| std::cmp::Reverse(task));
        for (id, task) in lost {
            self.attempts.remove(&id);
            let history = self.history.entry(task).or_default();
            history.lost += 1;
            if history.lost >= MAX_LOST {
                let message = format!("{MAX_LOST} workers were lost while running this task");
                let failure = TaskFailure {
                    kind: FailureKind::Worker,
                    message,
                };
                self.finish(task, Err(failure));
            } else {
                self.counts.requeued += 1;
                self.retries.push_front(task);
            }
        }
    }

    /// Picks tasks for `worker` up to its in-flight window: retries first, then fresh tasks
    /// in stage order.
    pub fn assign(&mut self, worker: WorkerId) -> Vec<Assignment> {
        let Some(state) = self.workers.get(&worker) else {
            return Vec::new();
        };
        let mut room = state.window().saturating_sub(state.in_flight);
        let mut picked: Vec<TaskRef> = Vec::new();

        let mut passed_over = Vec::new();
        while room > 0 {
            let Some(task) = self.retries.pop_front() else {
                break;
            };
            if self.eligible(task, worker) {
                picked.push(task);
                room -= 1;
            } else {
                passed_over.push(task);
            }
        }
        for task in passed_over.into_iter().rev() {
            self.retries.push_front(task);
        }

        for stage in 0..self.plans.len() {
            let take = (self.plans[stage].tasks - self.fresh[stage]).min(room as u64);
            for index in self.fresh[stage]..self.fresh[stage] + take {
                picked.push(TaskRef { stage, index });
            }
            self.fresh[stage] += take;
            room -= take as usize;
        }

        let mut assignments: Vec<Assignment> = Vec::new();
        for task in picked {
            let id = self.next_attempt;
            self.next_attempt += 1;
            self.attempts.insert(id, Attempt { task, worker });
            match assignments.last_mut() {
                Some(last) if last.stage == task.stage => last.tasks.push((id, task.index)),
                _ => assignments.push(Assignment {
                    stage: task.stage,
                    tasks: vec![(id, task.index)],
                }),
            }
        }
        if let Some(state) = self.workers.get_mut(&worker) {
            state.in_flight += assignments.iter().map(|a| a.tasks.len()).sum::<usize>();
        }
        assignments
    }

    /// A task may go to `worker` unless it failed there and some other connected worker has
    /// not tried it yet.
    fn eligible(&self, task: TaskRef, worker: WorkerId) -> bool {
        let Some(history) = self.history.get(&task) else {
            return true;
        };
        !history.failed_on.contains(&worker)
            || self.workers.keys().all(|w| history.failed_on.contains(w))
    }

    /// A worker answered attempt `id` after `micros` of work.
    ///
    /// # Errors
    /// When the worker was not running that attempt.
    pub fn complete(
        &mut self,
        worker: WorkerId,
        id: AttemptId,
        micros: u64,
        outcome: Result<Box<RawJson>, TaskFailure>,
    ) -> Result<(), Violation> {
        match self.attempts.get(&id) {
            Some(attempt) if attempt.worker == worker => {}
            _ => return Err(Violation::UnknownAttempt(id)),
        }
        let Attempt { task, .. } = self.attempts.remove(&id).expect("checked above");
        if let Some(state) = self.workers.get_mut(&worker) {
            state.in_flight -= 1;
            let micros = micros as f64;
            state.task_micros = Some(match state.task_micros {
                None => micros,
                Some(average) => 0.8 * average + 0.2 * micros,
            });
        }
        match outcome {
            Ok(output) => self.finish(task, Ok(output)),
            Err(failure) => {
                let max = self.plans[task.stage].max_attempts;
                let history = self.history.entry(task).or_default();
                history.failures += 1;
                history.failed_on.push(worker);
                if history.failures >= max {
                    self.finish(task, Err(failure));
                } else {
                    self.counts.retried += 1;
                    self.retries.push_back(task);
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, task: TaskRef, outcome: Result<Box<RawJson>, TaskFailure>) {
        let history = self.history.remove(&task).unwrap_or_default();
        match outcome {
            Ok(_) => self.counts.succeeded += 1,
            Err(_) => self.counts.failed += 1,
        }
        let attempts = history.failures + u32::from(outcome.is_ok());
        let finished = Finished {
            task,
            outcome,
            attempts,
        };
        self.finished[task.stage].insert(task.index, finished);
    }

    /// Takes the finished tasks that are next in order: stage by stage, each stage's tasks
    /// in input order, a stage only once every earlier one is complete.
    pub fn take_ready(&mut self) -> Vec<Finished> {
        let mut ready = Vec::new();
        for stage in 0..self.plans.len() {
            while let Some(entry) = self.finished[stage].first_entry() {
                if *entry.key() != self.taken[stage] {
                    break;
                }
                ready.push(entry.remove());
                self.taken[stage] += 1;
            }
            if self.taken[stage] < self.plans[stage].tasks {
                break;
            }
        }
        ready
    }

    /// Whether every task has finished and been taken.
    pub fn is_complete(&self) -> bool {
        self.taken
            .iter()
            .zip(&self.plans)
            .all(|(taken, plan)| *taken == plan.tasks)
    }

    /// How many tasks are running now.
    pub fn running(&self) -> usize {
        self.attempts.len()
    }

    /// How many tasks `worker` is running now.
    pub fn running_on(&self, worker: WorkerId) -> usize {
        self.workers.get(&worker).map_or(0, |w| w.in_flight)
    }

    /// What happened so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(text: &str) -> Result<Box<RawJson>, TaskFailure> {
        Ok(RawJson::from_string(text.to_owned()).unwrap())
    }

    fn panic() -> Result<Box<RawJson>, TaskFailure> {
        Err(TaskFailure {
            kind: FailureKind::Panic,
            message: "boom".into(),
        })
    }

    fn plan(tasks: u64) -> StagePlan {
        StagePlan {
            tasks,
            max_attempts: 3,
        }
    }

    fn ids(assignments: &[Assignment]) -> Vec<(AttemptId, TaskRef)> {
        assignments
            .iter()
            .flat_map(|a| {
                a.tasks.iter().map(|&(id, index)| {
                    (
                        id,
                        TaskRef {
                            stage: a.stage,
                            index,
                        },
                    )
                })
            })
            .collect()
    }

    #[test]
    fn hands_out_tasks_in_order_up_to_the_window() {
        let mut c = Coordinator::new(vec![plan(3), plan(10)]);
        c.join(1, 2);
        let first = c.assign(1);
        assert_eq!(
            first,
            vec![
                Assignment {
                    stage: 0,
                    tasks: vec![(1, 0), (2, 1), (3, 2)]
                },
                Assignment {
                    stage: 1,
                    tasks: vec![(4, 0)]
                },
            ]
        );
        assert!(c.assign(1).is_empty(), "the window of 2 cores x 2 is full");
        assert_eq!(c.running_on(1), 4);
    }

    #[test]
    fn results_come_out_in_input_order_whatever_the_completion_order() {
        let mut c = Coordinator::new(vec![plan(3)]);
        c.join(1, 2);
        let tasks = ids(&c.assign(1));
        c.complete(1, tasks[2].0, 5, output("2")).unwrap();
        c.complete(1, tasks[1].0, 5, output("1")).unwrap();
        assert!(c.take_ready().is_empty(), "task 0 is still running");
        c.complete(1, tasks[0].0, 5, output("0")).unwrap();
        let ready: Vec<u64> = c.take_ready().iter().map(|f| f.task.index).collect();
        assert_eq!(ready, [0, 1, 2]);
        assert!(c.is_complete());
    }

    #[test]
    fn a_later_stage_waits_for_the_earlier_one() {
        let mut c = Coordinator::new(vec![plan(1), plan(1)]);
        c.join(1, 1);
        let tasks = ids(&c.assign(1));
        c.complete(1, tasks[1].0, 5, output("1")).unwrap();
        assert!(c.take_ready().is_empty());
        c.complete(1, tasks[0].0, 5, output("0")).unwrap();
        assert_eq!(c.take_ready().len(), 2);
    }

    #[test]
    fn a_lost_workers_tasks_run_elsewhere() {
        let mut c = Coordinator::new(vec![plan(4)]);
        c.join(1, 1);
        c.join(2, 1);
        let on_one = ids(&c.assign(1));
        assert_eq!(on_one.len(), 2);
        c.leave(1);
        let on_two = ids(&c.assign(2));
        let indexes: Vec<u64> = on_two.iter().map(|(_, t)| t.index).collect();
        assert_eq!(indexes, [0, 1], "lost tasks go first");
        assert_eq!(
            c.complete(1, on_one[0].0, 1, output("0")),
            Err(Violation::UnknownAttempt(on_one[0].0))
        );
        assert_eq!(c.counts().requeued, 2);
    }

    #[test]
    fn a_task_that_keeps_killing_workers_fails() {
        let mut c = Coordinator::new(vec![plan(1)]);
        for worker in 1..=MAX_LOST as u64 {
            c.join(worker, 1);
            assert_eq!(ids(&c.assign(worker)).len(), 1);
            c.leave(worker);
        }
        let finished = c.take_ready();
        assert_eq!(
            finished[0].outcome.as_ref().unwrap_err().kind,
            FailureKind::Worker
        );
    }

    #[test]
    fn failures_retry_on_another_worker_then_give_up() {
        let mut c = Coordinator::new(vec![StagePlan {
            tasks: 1,
            max_attempts: 2,
        }]);
        c.join(1, 1);
        c.join(2, 1);
        let (id, _) = ids(&c.assign(1))[0];
        c.complete(1, id, 1, panic()).unwrap();
        assert!(
            c.assign(1).is_empty(),
            "worker 1 failed it and worker 2 has not tried"
        );
        let (id, _) = ids(&c.assign(2))[0];
        c.complete(2, id, 1, panic()).unwrap();
        let finished = c.take_ready();
        assert_eq!(finished.len(), 1);
        assert_eq!(finished[0].attempts, 2);
        assert_eq!(finished[0].outcome.as_ref().unwrap_err().message, "boom");
        assert_eq!(
            c.counts(),
            Counts {
                succeeded: 0,
                failed: 1,
                retried: 1,
                requeued: 0
            }
        );
    }

    #[test]
    fn a_lone_worker_may_retry_its_own_failure() {
        let mut c = Coordinator::new(vec![plan(1)]);
        c.join(1, 1);
        let (id, _) = ids(&c.assign(1))[0];
        c.complete(1, id, 1, panic()).unwrap();
        let (id, _) = ids(&c.assign(1))[0];
        c.complete(1, id, 1, output("1")).unwrap();
        assert!(c.take_ready()[0].outcome.is_ok());
    }

    #[test]
    fn the_window_grows_for_short_tasks_and_stays_small_for_long_ones() {
        let mut c = Coordinator::new(vec![plan(100_000)]);
        c.join(1, 1);
        c.join(2, 1);
        for (worker, micros) in [(1, 10), (2, 1_000_000)] {
            for (id, _) in ids(&c.assign(worker)) {
                c.complete(worker, id, micros, output("0")).unwrap();
            }
        }
        assert_eq!(ids(&c.assign(1)).len(), MAX_PER_CORE);
        assert_eq!(ids(&c.assign(2)).len(), MIN_PER_CORE);
    }

    #[test]
    fn answers_from_the_wrong_worker_are_violations() {
        let mut c = Coordinator::new(vec![plan(1)]);
        c.join(1, 1);
        c.join(2, 1);
        let (id, _) = ids(&c.assign(1))[0];
        assert_eq!(
            c.complete(2, id, 1, output("0")),
            Err(Violation::UnknownAttempt(id))
        );
        c.complete(1, id, 1, output("0")).unwrap();
        assert_eq!(
            c.complete(1, id, 1, output("0")),
            Err(Violation::UnknownAttempt(id))
        );
    }
}
