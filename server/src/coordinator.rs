//! The scheduling core: which task runs where, what happens when it fails or its worker
//! vanishes, which tasks a finished one makes ready, and which results are ready to write. It
//! does no I/O and reads no clock: the transport feeds it events (a worker joined, results
//! arrived, a worker left) and sends what it decides, so it can be tested deterministically.
//!
//! Stages form a graph. A stage fed by inputs known up front ([`Feed::Inputs`]) hands out
//! tasks from a cursor. A stage fed by other stages' outputs ([`Feed::Items`]: a map over a
//! promise, or a zip) gets task `i` as soon as item `i` of every stage it reads exists, so
//! downstream work starts while upstream work is still running (pipelining). A reduce stage
//! ([`Feed::Reduce`]) folds another stage's outputs as a tree of fixed shape: groups of
//! `fan_in` consecutive items, level by level, so the result never depends on completion
//! order. A failed item fails whatever needed it, naming it.
//!
//! Memory is proportional to the work in flight plus the outputs other stages still read.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use dipla_protocol::{FailureKind, RawJson, TaskFailure};

/// A connected worker, as the coordinator knows it.
pub type WorkerId = u64;

/// One attempt at running a task; the id that travels in the protocol.
pub type AttemptId = u64;

/// A task: its stage and its index in the stage (for a reduce stage, its node in the tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskRef {
    /// The stage, in manifest order.
    pub stage: usize,
    /// The task's index in the stage.
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

/// Where a stage's task inputs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// Known up front: every task can run at once.
    Inputs,
    /// Task `i` needs output `i` of each of these stages.
    Items(Vec<usize>),
    /// One result: the outputs of `stage` folded as a tree of groups of `fan_in`.
    Reduce {
        /// The stage whose outputs are folded.
        stage: usize,
        /// Items per group (at least 2).
        fan_in: u64,
    },
}

/// What the coordinator needs to know of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePlan {
    /// The stage's name, for messages.
    pub name: String,
    /// How many tasks (for a reduce stage: how many items it folds).
    pub tasks: u64,
    /// Failures before a task is reported as failed.
    pub max_attempts: u32,
    /// Where its inputs come from.
    pub feed: Feed,
    /// How many outputs that meet the goal (`Flow::Stop`) end the stage early.
    pub stop_after: u64,
    /// For an explore stage, the most tasks it may grow to.
    pub explore: Option<u64>,
}

/// A finished task, ready to be written.
#[derive(Debug)]
pub struct Finished {
    /// Which task (a reduce stage's one result has index 0).
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
    /// Attempt ids and task indexes.
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
    /// Results finished with an output.
    pub succeeded: u64,
    /// Results finished with a failure.
    pub failed: u64,
    /// Attempts that failed and were retried.
    pub retried: u64,
    /// Attempts lost with their worker and run again.
    pub requeued: u64,
    /// Tasks never run, or cancelled, because their stage met its goal.
    pub stopped: u64,
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

type Outcome = Result<Box<RawJson>, TaskFailure>;

/// The shape of a reduce tree: level 0 is the folded stage's items, each higher level has one
/// node per group of `fan_in` nodes below, up to a single root.
#[derive(Debug)]
struct Tree {
    fan_in: u64,
    /// Nodes per level; `sizes[0]` is the number of items.
    sizes: Vec<u64>,
    /// Task index of the first node of each level (level 0 has none).
    offsets: Vec<u64>,
    /// Known values, by (level, position).
    values: HashMap<(usize, u64), Outcome>,
}

impl Tree {
    fn new(items: u64, fan_in: u64) -> Self {
        let mut sizes = vec![items];
        while *sizes.last().expect("never empty") > 1 {
            let below = *sizes.last().expect("never empty");
            sizes.push(below.div_ceil(fan_in));
        }
        let mut offsets = vec![0; sizes.len()];
        for level in 2..sizes.len() {
            offsets[level] = offsets[level - 1] + sizes[level - 1];
        }
        Self {
            fan_in,
            sizes,
            offsets,
            values: HashMap::new(),
        }
    }

    /// The (level, position) of a task index.
    fn node(&self, index: u64) -> (usize, u64) {
        let level = (1..self.sizes.len())
            .rev()
            .find(|&level| index >= self.offsets[level])
            .expect("index within the tree");
        (level, index - self.offsets[level])
    }

    /// The children of node (level, position): positions at `level - 1`.
    fn children(&self, level: usize, position: u64) -> std::ops::Range<u64> {
        let start = position * self.fan_in;
        start..(start + self.fan_in).min(self.sizes[level - 1])
    }

    fn top(&self) -> usize {
        self.sizes.len() - 1
    }
}

/// The scheduling state of one job.
#[derive(Debug)]
pub struct Coordinator {
    plans: Vec<StagePlan>,
    /// The next never-dispatched index of each [`Feed::Inputs`] stage.
    fresh: Vec<u64>,
    /// Tasks whose inputs have just become available, oldest first.
    ready: VecDeque<TaskRef>,
    /// Tasks to run again, oldest first.
    retries: VecDeque<TaskRef>,
    attempts: HashMap<AttemptId, Attempt>,
    next_attempt: AttemptId,
    history: HashMap<TaskRef, History>,
    workers: HashMap<WorkerId, Worker>,
    /// The stages reading each stage's outputs.
    dependents: Vec<Vec<usize>>,
    /// Outputs kept for the stages that read them.
    items: Vec<HashMap<u64, Outcome>>,
    trees: Vec<Option<Tree>>,
    /// Finished tasks not yet taken, per stage, by index.
    finished: Vec<BTreeMap<u64, Finished>>,
    /// How many results of each stage have been taken, in order.
    taken: Vec<u64>,
    /// How many results of each stage are final.
    done: Vec<u64>,
    /// Outputs that met their stage's goal, per stage.
    goals: Vec<u64>,
    /// Why each stage stopped early, if it did.
    stopped: Vec<Option<String>>,
    /// Attempts cancelled by a stop: their late results are ignored.
    cancelled: HashSet<AttemptId>,
    /// Cancellations not yet sent, per worker.
    cancels: HashMap<WorkerId, Vec<AttemptId>>,
    /// Inputs explore stages discovered, after their initial ones.
    discovered: Vec<Vec<Box<RawJson>>>,
    /// Every input an explore stage has had, as JSON text.
    seen: Vec<HashSet<String>>,
    /// Inputs explore stages dropped at their `max_tasks`.
    dropped: Vec<u64>,
    counts: Counts,
}

impl Coordinator {
    /// A coordinator for stages with these plans. Plans must only refer to other stages
    /// (and not form a cycle), as the manifest guarantees.
    pub fn new(plans: Vec<StagePlan>) -> Self {
        let n = plans.len();
        let mut dependents = vec![Vec::new(); n];
        let mut trees: Vec<Option<Tree>> = (0..n).map(|_| None).collect();
        for (stage, plan) in plans.iter().enumerate() {
            match &plan.feed {
                Feed::Inputs => {}
                Feed::Items(sources) => {
                    for &source in sources {
                        if !dependents[source].contains(&stage) {
                            dependents[source].push(stage);
                        }
                    }
                }
                Feed::Reduce {
                    stage: source,
                    fan_in,
                } => {
                    dependents[*source].push(stage);
                    trees[stage] = Some(Tree::new(plan.tasks, (*fan_in).max(2)));
                }
            }
        }
        Self {
            fresh: vec![0; n],
            ready: VecDeque::new(),
            retries: VecDeque::new(),
            attempts: HashMap::new(),
            next_attempt: 1,
            history: HashMap::new(),
            workers: HashMap::new(),
            dependents,
            items: (0..n).map(|_| HashMap::new()).collect(),
            trees,
            finished: (0..n).map(|_| BTreeMap::new()).collect(),
            taken: vec![0; n],
            done: vec![0; n],
            goals: vec![0; n],
            stopped: vec![None; n],
            cancelled: HashSet::new(),
            cancels: HashMap::new(),
            discovered: vec![Vec::new(); n],
            seen: vec![HashSet::new(); n],
            dropped: vec![0; n],
            counts: Counts::default(),
            plans,
        }
    }

    /// How many result lines stage `stage` has (one for a reduce stage; for a stage that
    /// stopped early, those of the tasks that finished).
    pub fn lines(&self, stage: usize) -> u64 {
        if self.stopped[stage].is_some() {
            return self.done[stage];
        }
        match self.plans[stage].feed {
            Feed::Reduce { .. } => 1,
            _ => self.plans[stage].tasks,
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

    /// Picks tasks for `worker` up to its in-flight window: retries first, then tasks whose
    /// inputs just became available, then fresh tasks in stage order.
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
        while room > 0 {
            let Some(task) = self.ready.pop_front() else {
                break;
            };
            picked.push(task);
            room -= 1;
        }
        for stage in 0..self.plans.len() {
            if self.plans[stage].feed != Feed::Inputs {
                continue;
            }
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
        outcome: Outcome,
    ) -> Result<(), Violation> {
        self.complete_with(worker, id, micros, outcome, false)
    }

    /// Like [`Coordinator::complete`], for a result that may meet its stage's goal (`stop`).
    ///
    /// # Errors
    /// When the worker was not running that attempt.
    pub fn complete_with(
        &mut self,
        worker: WorkerId,
        id: AttemptId,
        micros: u64,
        outcome: Outcome,
        stop: bool,
    ) -> Result<(), Violation> {
        if self.cancelled.remove(&id) {
            return Ok(());
        }
        let outcome = match (outcome, self.attempts.get(&id)) {
            (Ok(output), Some(attempt)) if attempt.worker == worker => {
                let stage = attempt.task.stage;
                match self.plans[stage].explore {
                    Some(max) => self.explored(stage, &output, max),
                    None => Ok(output),
                }
            }
            (outcome, _) => outcome,
        };
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
            Ok(output) => {
                self.finish(task, Ok(output));
                let reduces = matches!(self.plans[task.stage].feed, Feed::Reduce { .. });
                if stop && !reduces && self.stopped[task.stage].is_none() {
                    self.goals[task.stage] += 1;
                    if self.goals[task.stage] >= self.plans[task.stage].stop_after {
                        self.stop_stage(task);
                    }
                }
            }
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

    /// Stage `task.stage` met its goal with `task`: hand out none of its tasks any more and
    /// cancel those running. Tasks that never ran get no result line.
    fn stop_stage(&mut self, task: TaskRef) {
        let stage = task.stage;
        let plan = &self.plans[stage];
        self.stopped[stage] = Some(format!(
            "stage {:?} met its goal ({} output(s), the last from task {})",
            plan.name, self.goals[stage], task.index
        ));
        let mut never_run = plan.tasks.saturating_sub(self.fresh[stage]);
        if plan.feed == Feed::Inputs {
            self.fresh[stage] = plan.tasks;
        }
        let before = self.retries.len() + self.ready.len();
        self.retries.retain(|t| t.stage != stage);
        self.ready.retain(|t| t.stage != stage);
        never_run += (before - self.retries.len() - self.ready.len()) as u64;
        let mut running: Vec<(AttemptId, WorkerId)> = self
            .attempts
            .iter()
            .filter(|(_, attempt)| attempt.task.stage == stage)
            .map(|(&id, attempt)| (id, attempt.worker))
            .collect();
        running.sort_unstable();
        for (id, worker) in running {
            let attempt = self.attempts.remove(&id).expect("listed above");
            self.history.remove(&attempt.task);
            self.cancelled.insert(id);
            self.cancels.entry(worker).or_default().push(id);
            if let Some(state) = self.workers.get_mut(&worker) {
                state.in_flight -= 1;
            }
            never_run += 1;
        }
        self.counts.stopped += never_run;
    }

    /// Splits an explore task's output `{"output": O, "next": [T, ...]}`, queues the new
    /// inputs not seen before (up to `max` tasks in the stage) and returns `O`.
    fn explored(&mut self, stage: usize, output: &RawJson, max: u64) -> Outcome {
        #[derive(serde::Deserialize)]
        struct Explored {
            output: Box<RawJson>,
            next: Vec<Box<RawJson>>,
        }
        let Explored { output, next } =
            serde_json::from_str(output.get()).map_err(|e| TaskFailure {
                kind: FailureKind::BadOutput,
                message: format!(
                    "an explore task must return {{\"output\": .., \"next\": [..]}}: {e}"
                ),
            })?;
        if self.stopped[stage].is_none() {
            for input in next {
                if !self.seen[stage].insert(input.get().to_owned()) {
                    continue;
                }
                if self.plans[stage].tasks >= max {
                    self.dropped[stage] += 1;
                    continue;
                }
                self.discovered[stage].push(input);
                self.plans[stage].tasks += 1;
            }
        }
        Ok(output)
    }

    /// Records the inputs an explore stage starts with, so they are not run again.
    pub fn seed(&mut self, stage: usize, inputs: impl IntoIterator<Item = String>) {
        self.seen[stage].extend(inputs);
    }

    /// Input `n` (counting from 0) that explore stage `stage` discovered.
    pub fn discovered(&self, stage: usize, n: u64) -> Option<&RawJson> {
        self.discovered[stage].get(n as usize).map(|input| &**input)
    }

    /// How many new inputs explore stage `stage` dropped at its `max_tasks`.
    pub fn dropped(&self, stage: usize) -> u64 {
        self.dropped[stage]
    }

    /// How many result lines the job has now (explore stages grow).
    pub fn total_lines(&self) -> u64 {
        (0..self.plans.len()).map(|stage| self.lines(stage)).sum()
    }

    /// Why `stage` stopped early, if it did.
    pub fn stopped(&self, stage: usize) -> Option<&str> {
        self.stopped[stage].as_deref()
    }

    /// Attempts `worker` should stop running, to send it in a `cancel` message.
    pub fn take_cancels(&mut self, worker: WorkerId) -> Vec<AttemptId> {
        self.cancels.remove(&worker).unwrap_or_default()
    }

    /// A task has its final outcome: record it and make ready what was waiting for it.
    fn finish(&mut self, task: TaskRef, outcome: Outcome) {
        let history = self.history.remove(&task).unwrap_or_default();
        let attempts = history.failures + u32::from(outcome.is_ok());
        if let Some(tree) = &self.trees[task.stage] {
            let (level, position) = tree.node(task.index);
            self.tree_value(task.stage, level, position, outcome, attempts);
        } else {
            self.result(task, outcome, attempts);
        }
    }

    /// A stage's result `task` is final: count it, keep it for the writer and for the stages
    /// that read it, and feed them.
    fn result(&mut self, task: TaskRef, outcome: Outcome, attempts: u32) {
        match outcome {
            Ok(_) => self.counts.succeeded += 1,
            Err(_) => self.counts.failed += 1,
        }
        self.done[task.stage] += 1;
        let dependents = self.dependents[task.stage].clone();
        if !dependents.is_empty() {
            self.items[task.stage].insert(task.index, outcome.clone());
        }
        self.finished[task.stage].insert(
            task.index,
            Finished {
                task,
                outcome,
                attempts,
            },
        );
        for dependent in dependents {
            match self.plans[dependent].feed.clone() {
                Feed::Items(sources) => self.feed_item(dependent, &sources, task.index),
                Feed::Reduce { .. } => {
                    let outcome = self.items[task.stage][&task.index].clone();
                    self.tree_value(dependent, 0, task.index, outcome, 0);
                }
                Feed::Inputs => {}
            }
        }
    }

    /// Item `index` of one of `stage`'s sources exists: run task `index` once all do.
    fn feed_item(&mut self, stage: usize, sources: &[usize], index: u64) {
        let mut failures = Vec::new();
        for &source in sources {
            match self.items[source].get(&index) {
                None => return,
                Some(Ok(_)) => {}
                Some(Err(failure)) => failures.push((source, failure.clone())),
            }
        }
        match failures.into_iter().next() {
            None => self.ready.push_back(TaskRef { stage, index }),
            Some((source, failure)) => {
                let failure = upstream(&self.plans[source].name, index, &failure);
                self.result(TaskRef { stage, index }, Err(failure), 0);
            }
        }
    }

    /// A value of a reduce tree is known: pass it up, run the group above once complete.
    fn tree_value(
        &mut self,
        stage: usize,
        level: usize,
        position: u64,
        outcome: Outcome,
        attempts: u32,
    ) {
        let source = match self.plans[stage].feed {
            Feed::Reduce { stage: source, .. } => source,
            _ => unreachable!("only reduce stages have trees"),
        };
        let tree = self.trees[stage]
            .as_mut()
            .expect("a reduce stage has a tree");
        if level == tree.top() {
            self.result(TaskRef { stage, index: 0 }, outcome, attempts);
            return;
        }
        tree.values.insert((level, position), outcome);
        let parent = position / tree.fan_in;
        let children = tree.children(level + 1, parent);
        let mut values = Vec::new();
        for child in children.clone() {
            match tree.values.get(&(level, child)) {
                None => return,
                Some(value) => values.push((child, value)),
            }
        }
        if let Some((child, Err(failure))) = values.iter().find(|(_, v)| v.is_err()) {
            let failure = if level == 0 {
                upstream(&self.plans[source].name, *child, failure)
            } else {
                (*failure).clone()
            };
            self.tree_value(stage, level + 1, parent, Err(failure), 0);
        } else if children.end - children.start == 1 {
            let value = values[0].1.clone();
            self.tree_value(stage, level + 1, parent, value, 0);
        } else {
            let index = tree.offsets[level + 1] + parent;
            self.ready.push_back(TaskRef { stage, index });
        }
    }

    /// The output of item `index` of `stage`, if it succeeded and a later stage reads it.
    pub fn item(&self, stage: usize, index: u64) -> Option<&RawJson> {
        match self.items[stage].get(&index) {
            Some(Ok(output)) => Some(output),
            _ => None,
        }
    }

    /// The values a reduce task folds, in order.
    ///
    /// # Panics
    /// When `task` is not a ready reduce task (a bug in the caller).
    pub fn group(&self, task: TaskRef) -> Vec<&RawJson> {
        let tree = self.trees[task.stage].as_ref().expect("a reduce stage");
        let (level, position) = tree.node(task.index);
        tree.children(level, position)
            .map(|child| match &tree.values[&(level - 1, child)] {
                Ok(value) => &**value,
                Err(_) => unreachable!("a group with a failure is never run"),
            })
            .collect()
    }

    /// Takes the finished results that are next in order: stage by stage, each stage's in
    /// input order, a stage only once every earlier one is complete.
    pub fn take_ready(&mut self) -> Vec<Finished> {
        let mut ready = Vec::new();
        for stage in 0..self.plans.len() {
            let gaps_allowed = self.stopped[stage].is_some();
            while let Some(entry) = self.finished[stage].first_entry() {
                if *entry.key() != self.taken[stage] && !gaps_allowed {
                    break;
                }
                ready.push(entry.remove());
                self.taken[stage] += 1;
            }
            if self.taken[stage] < self.lines(stage) {
                break;
            }
        }
        ready
    }

    /// Whether every result has been taken.
    pub fn is_complete(&self) -> bool {
        (0..self.plans.len()).all(|stage| self.taken[stage] == self.lines(stage))
    }

    /// How many of `stage`'s results are final.
    pub fn done(&self, stage: usize) -> u64 {
        self.done[stage]
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

/// The failure of a task whose input `index` of stage `source` failed.
fn upstream(source: &str, index: u64, failure: &TaskFailure) -> TaskFailure {
    let message = format!("its input, task {index} of stage {source:?}, failed ({failure})");
    TaskFailure {
        kind: FailureKind::Upstream,
        message,
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
            name: "s".into(),
            tasks,
            max_attempts: 3,
            feed: Feed::Inputs,
            stop_after: 1,
            explore: None,
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
            max_attempts: 2,
            ..plan(1)
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
                requeued: 0,
                stopped: 0
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

    fn fed(tasks: u64, feed: Feed) -> StagePlan {
        StagePlan {
            name: "d".into(),
            tasks,
            max_attempts: 1,
            feed,
            stop_after: 1,
            explore: None,
        }
    }

    /// Runs every assignable task on worker 1, answering with `answer(task, input values)`.
    fn run_all(c: &mut Coordinator, answer: impl Fn(TaskRef, &Coordinator) -> Outcome) {
        loop {
            let tasks = ids(&c.assign(1));
            if tasks.is_empty() {
                return;
            }
            for (id, task) in tasks {
                let outcome = answer(task, c);
                c.complete(1, id, 5, outcome).unwrap();
            }
        }
    }

    #[test]
    fn a_mapped_stage_starts_as_soon_as_its_item_exists() {
        let mut c = Coordinator::new(vec![plan(3), fed(3, Feed::Items(vec![0]))]);
        c.join(1, 1);
        let first = ids(&c.assign(1));
        assert!(
            first.iter().all(|(_, t)| t.stage == 0),
            "nothing downstream is ready yet"
        );
        c.complete(1, first[0].0, 5, output("10")).unwrap();
        let next = ids(&c.assign(1));
        assert_eq!(
            next[0].1,
            TaskRef { stage: 1, index: 0 },
            "downstream task 0 goes first"
        );
        assert_eq!(c.item(0, 0).unwrap().get(), "10");
        assert!(c.item(0, 1).is_none());
    }

    #[test]
    fn a_zip_waits_for_every_part_and_a_failed_part_fails_the_task() {
        let once = StagePlan {
            max_attempts: 1,
            ..plan(2)
        };
        let mut c = Coordinator::new(vec![once, plan(2), fed(2, Feed::Items(vec![0, 1]))]);
        c.join(1, 8);
        let tasks = ids(&c.assign(1));
        assert_eq!(tasks.len(), 4);
        c.complete(1, tasks[0].0, 5, output("1")).unwrap();
        assert!(c.assign(1).is_empty(), "item 0 of stage 1 is missing");
        c.complete(1, tasks[2].0, 5, output("2")).unwrap();
        assert_eq!(ids(&c.assign(1))[0].1, TaskRef { stage: 2, index: 0 });
        c.complete(1, tasks[1].0, 5, panic()).unwrap();
        c.complete(1, tasks[3].0, 5, output("3")).unwrap();
        assert!(c.assign(1).is_empty(), "task 1 of the zip cannot run");
        let failed = c.finished[2].get(&1).unwrap().outcome.as_ref().unwrap_err();
        assert_eq!(failed.kind, FailureKind::Upstream);
        assert!(
            failed.message.contains("task 1 of stage \"s\""),
            "{}",
            failed.message
        );
    }

    #[test]
    fn a_reduce_tree_has_a_fixed_shape() {
        // 7 items, fan-in 2: level 1 has 4 nodes (the last passes item 6 through), level 2
        // has 2, level 3 is the root: 3 + 1 + 1 = 5 tasks... with the pass-through, 6 - 1.
        let tree = Tree::new(7, 2);
        assert_eq!(tree.sizes, [7, 4, 2, 1]);
        assert_eq!(tree.offsets, [0, 0, 4, 6]);
        assert_eq!(tree.node(5), (2, 1));
        assert_eq!(tree.children(1, 3), 6..7);

        for fan_in in [2, 3, 5] {
            let mut c = Coordinator::new(vec![plan(7), fed(7, Feed::Reduce { stage: 0, fan_in })]);
            c.join(1, 4);
            run_all(&mut c, |task, c| {
                if task.stage == 0 {
                    return output(&(task.index + 1).to_string());
                }
                let values: Vec<u64> = c
                    .group(task)
                    .iter()
                    .map(|v| v.get().parse().unwrap())
                    .collect();
                output(&values.iter().sum::<u64>().to_string())
            });
            let ready = c.take_ready();
            let total = ready.iter().find(|f| f.task.stage == 1).unwrap();
            assert_eq!(
                total.outcome.as_ref().unwrap().get(),
                "28",
                "fan-in {fan_in}"
            );
            assert!(c.is_complete());
        }
    }

    #[test]
    fn a_reduce_of_one_item_needs_no_task_and_a_failed_item_fails_it() {
        let mut c = Coordinator::new(vec![
            plan(1),
            fed(
                1,
                Feed::Reduce {
                    stage: 0,
                    fan_in: 2,
                },
            ),
        ]);
        c.join(1, 1);
        run_all(&mut c, |_, _| output("5"));
        assert_eq!(c.take_ready()[1].outcome.as_ref().unwrap().get(), "5");

        let mut c = Coordinator::new(vec![
            StagePlan {
                max_attempts: 1,
                ..plan(4)
            },
            fed(
                4,
                Feed::Reduce {
                    stage: 0,
                    fan_in: 2,
                },
            ),
        ]);
        c.join(1, 4);
        run_all(&mut c, |task, _| {
            if task == (TaskRef { stage: 0, index: 2 }) {
                panic()
            } else {
                output("1")
            }
        });
        let ready = c.take_ready();
        let total = ready[4].outcome.as_ref().unwrap_err();
        assert_eq!(total.kind, FailureKind::Upstream);
        assert!(c.is_complete());
    }

    #[test]
    fn a_goal_met_stops_the_stage_and_cancels_what_runs() {
        let mut c = Coordinator::new(vec![
            StagePlan {
                stop_after: 2,
                ..plan(1000)
            },
            plan(3),
        ]);
        c.join(1, 2);
        c.join(2, 2);
        let on_one = ids(&c.assign(1));
        let on_two = ids(&c.assign(2));
        c.complete_with(1, on_one[0].0, 5, output("\"a\""), true)
            .unwrap();
        assert!(c.stopped(0).is_none(), "two goals are needed");
        c.complete_with(1, on_one[1].0, 5, output("1"), false)
            .unwrap();
        c.complete_with(2, on_two[2].0, 5, output("\"b\""), true)
            .unwrap();
        assert!(
            c.stopped(0)
                .unwrap()
                .contains("2 output(s), the last from task 6")
        );
        // Worker 2's other stage-0 task is cancelled; its late answer is ignored.
        let cancelled: Vec<AttemptId> = on_two
            .iter()
            .filter(|(_, t)| t.stage == 0 && t.index != 6)
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(c.take_cancels(2), cancelled);
        assert!(c.take_cancels(2).is_empty());
        c.complete(2, cancelled[0], 5, output("9")).unwrap();
        // Only stage 1 is handed out now.
        run_all(&mut c, |_, _| output("0"));
        let lines: Vec<(usize, u64)> = c
            .take_ready()
            .iter()
            .map(|f| (f.task.stage, f.task.index))
            .collect();
        assert_eq!(lines, [(0, 0), (0, 1), (0, 6), (1, 0), (1, 1), (1, 2)]);
        assert!(c.is_complete());
        assert_eq!(c.counts().stopped, 1000 - 3);
    }

    #[test]
    fn an_explore_stage_grows_until_nothing_is_pending_and_runs_each_input_once() {
        let mut c = Coordinator::new(vec![StagePlan {
            explore: Some(6),
            ..plan(1)
        }]);
        c.seed(0, ["1".to_owned()]);
        c.join(1, 1);
        // Each n discovers n + 1 and n + 2 (and 1 again, which was seen).
        run_all(&mut c, |task, c| {
            let n = if task.index == 0 {
                1
            } else {
                c.discovered(0, task.index - 1)
                    .unwrap()
                    .get()
                    .parse()
                    .unwrap()
            };
            output(&format!(
                r#"{{"output":{},"next":[1,{},{}]}}"#,
                n * 10,
                n + 1,
                n + 2
            ))
        });
        let outputs: Vec<String> = c
            .take_ready()
            .iter()
            .map(|f| f.outcome.as_ref().unwrap().get().to_owned())
            .collect();
        assert_eq!(outputs, ["10", "20", "30", "40", "50", "60"]);
        assert!(c.is_complete());
        assert!(c.dropped(0) > 0, "the bound of 6 tasks was reached");
        assert_eq!(c.total_lines(), 6);
    }
}
