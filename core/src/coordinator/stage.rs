//! The stage graph: what the coordinator keeps of each stage, how a stage is wired to the
//! stages it reads (also when one is added while the job runs), and when a stage is dense or
//! complete.

use std::collections::{BTreeMap, HashMap, HashSet};

use dipla_protocol::RawJson;

use super::Coordinator;
use super::results::{Entry, Proof};
use crate::effect::Wake;
use crate::plan::{Feed, Replicate, StagePlan};
use crate::tree::Tree;
use crate::types::StageProgress;

/// Everything the coordinator knows of one stage.
#[derive(Debug)]
pub(super) struct StageState {
    pub(super) plan: StagePlan,
    /// The next never-dispatched index of a [`Feed::Inputs`] stage.
    pub(super) fresh: u64,
    /// The stages reading its outputs.
    pub(super) dependents: Vec<usize>,
    /// Final results still kept, by index.
    pub(super) results: BTreeMap<u64, Entry>,
    /// Indexes in completion order, while a promise holds the stage.
    pub(super) log: Vec<u64>,
    /// The writer has taken every result below this index.
    pub(super) cursor: u64,
    /// How many results the writer has taken.
    pub(super) taken: u64,
    /// How many results are final.
    pub(super) done: u64,
    /// Outputs that met the goal.
    pub(super) goals: u64,
    /// Why the stage stopped early, if it did.
    pub(super) stopped: Option<String>,
    /// A reduce stage's tree, once its shape is known.
    pub(super) tree: Option<Tree>,
    /// Inputs an explore stage discovered, after its initial ones.
    pub(super) discovered: Vec<Box<RawJson>>,
    /// Every input an explore stage has had, as JSON text.
    pub(super) seen: HashSet<String>,
    /// Inputs an explore stage dropped at its `max_tasks`.
    pub(super) dropped: u64,
    /// Moving average of how long its successful tasks took, in microseconds.
    pub(super) task_micros: Option<f64>,
    /// Its results by how they ended and were checked.
    pub(super) progress: StageProgress,
    /// For a replicated stage: whether its results have been released to the stages
    /// reading them and the writer (once it is complete, so that a worker caught lying in
    /// it has its unchecked results re-run first).
    pub(super) released: bool,
    /// For a stage reading several stages: how many of them have item `index` so far (its
    /// task is fed once, when the last arrives, however the sources depend on each other).
    pub(super) arrivals: HashMap<u64, usize>,
    /// For a stage reading others: how many of its tasks were fed (ran, or failed for an
    /// input that failed).
    pub(super) fed: u64,
}

impl StageState {
    pub(super) fn new(plan: StagePlan) -> Self {
        Self {
            plan,
            fresh: 0,
            dependents: Vec::new(),
            results: BTreeMap::new(),
            log: Vec::new(),
            cursor: 0,
            taken: 0,
            done: 0,
            goals: 0,
            stopped: None,
            tree: None,
            discovered: Vec::new(),
            seen: HashSet::new(),
            dropped: 0,
            task_micros: None,
            progress: StageProgress::default(),
            released: false,
            arrivals: HashMap::new(),
            fed: 0,
        }
    }

    /// Whether its results wait for the stage to complete before anyone reads them.
    pub(super) fn held(&self) -> bool {
        self.plan.replicate != Replicate::Off && !self.released
    }
}

impl Coordinator {
    /// Adds a stage while the job runs and returns its number. The stages it reads must exist
    /// and still keep their results (they are held by a promise, [`Keep::All`]): what they
    /// already finished feeds it at once.
    ///
    /// # Panics
    /// When the plan reads a stage that does not exist (a bug in the caller).
    ///
    /// [`Keep::All`]: crate::Keep::All
    pub fn add_stage(&mut self, plan: StagePlan) -> usize {
        let stage = self.stages.len();
        let sources = match &plan.feed {
            Feed::Inputs => Vec::new(),
            Feed::Items(sources) => sources.clone(),
            Feed::Reduce { stage, .. } => vec![*stage],
        };
        assert!(
            sources.iter().all(|&source| source < stage),
            "a new stage reads existing stages"
        );
        self.stages.push(StageState::new(plan));
        self.wire(stage);
        self.wake(Wake::All);
        // What the stages it reads already have: count the new reader, then feed it.
        for &source in &sources {
            for entry in self.stages[source].results.values_mut() {
                entry.readers += 1;
            }
        }
        match self.stages[stage].plan.feed.clone() {
            Feed::Items(sources) => {
                // Each source's items arrive, as they would have one by one.
                for &source in &sources {
                    let indexes: Vec<u64> = self.stages[source].results.keys().copied().collect();
                    for index in indexes {
                        self.feed_item(stage, &sources, index, source);
                    }
                }
            }
            Feed::Reduce { stage: source, .. } if self.stages[stage].tree.is_some() => {
                let indexes: Vec<u64> = self.stages[source].results.keys().copied().collect();
                for index in indexes {
                    let outcome = self.stages[source].results[&index].outcome.clone();
                    self.release(source, index);
                    self.tree_value(stage, 0, index, outcome, 0, Proof::NONE);
                }
            }
            Feed::Reduce { .. } | Feed::Inputs => {}
        }
        self.settle();
        stage
    }

    /// Registers `stage` with the stages it reads, and shapes its tree if it reduces a dense
    /// stage.
    pub(super) fn wire(&mut self, stage: usize) {
        match self.stages[stage].plan.feed.clone() {
            Feed::Inputs => {}
            Feed::Items(sources) => {
                for source in sources {
                    if !self.stages[source].dependents.contains(&stage) {
                        self.stages[source].dependents.push(stage);
                    }
                }
            }
            Feed::Reduce {
                stage: source,
                fan_in,
            } => {
                self.stages[source].dependents.push(stage);
                // A dense source's tree is known now (an empty one's waits, and fails for
                // want of outputs, in `settle`).
                if self.is_dense(source) && self.stages[stage].plan.tasks > 0 {
                    let items = self.stages[stage].plan.tasks;
                    self.stages[stage].tree = Some(Tree::new(items, fan_in.max(2)));
                }
            }
        }
    }

    /// Whether every index below a stage's task count will have a result.
    pub fn is_dense(&self, stage: usize) -> bool {
        let plan = &self.stages[stage].plan;
        match &plan.feed {
            Feed::Inputs => plan.explore.is_none() && !plan.stoppable,
            Feed::Items(sources) => {
                !plan.stoppable && sources.iter().all(|&source| self.is_dense(source))
            }
            Feed::Reduce { .. } => true,
        }
    }

    /// How many stages there are.
    pub fn stage_count(&self) -> usize {
        self.stages.len()
    }

    /// Whether every result of `stage` is final.
    pub fn is_stage_complete(&self, stage: usize) -> bool {
        let state = &self.stages[stage];
        if state.stopped.is_some() {
            return true;
        }
        match &state.plan.feed {
            Feed::Inputs => state.done == state.plan.tasks,
            Feed::Reduce { .. } => state.done == 1,
            Feed::Items(_) if self.is_dense(stage) => state.done == state.plan.tasks,
            // Every source is complete, so every task that will ever be fed was, and each
            // has its result.
            Feed::Items(sources) => {
                sources.iter().all(|&source| self.is_stage_complete(source))
                    && state.done == state.fed
            }
        }
    }
}
