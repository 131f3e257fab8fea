//! The job a seed runs: its stages (maps over inputs, zips of earlier stages, reduces,
//! explore stages), how each is checked (replication, verifiers), which of its tasks fail
//! and which meet a goal, and what every task computes (the reference an honest worker
//! gives and every accepted output is compared with).

use std::collections::HashSet;

use dipla_core::{Feed, Keep, Replicate, StagePlan};
use dipla_protocol::{FailureKind, TaskFailure};

use crate::rng::{Rng, hash};

/// Outputs are numbers below this (a reduce adds them modulo it).
pub const MODULUS: u64 = 1_000_003;

/// Where the inputs liars make up for explore stages start: above every explore stage's
/// space, so no honest run discovers them.
pub const FORGED: u64 = 1_000_000_000;

/// One stage of a simulated job.
#[derive(Debug, Clone)]
pub struct Stage {
    /// What the core is told.
    pub plan: StagePlan,
    /// What it computes.
    pub kind: Kind,
    /// Whether a (perfect) verifier checks each output.
    pub verifier: bool,
    /// One task in this many fails the same way on every honest worker (0: none).
    pub fail_one_in: u64,
    /// One output in this many meets the stage's goal (0: none).
    pub goal_one_in: u64,
    /// Fuel a task burns, at least.
    pub cost: u64,
}

/// What a stage's tasks do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Task `i` maps input `i` (a number).
    Map,
    /// Task `i` combines output `i` of each of these stages.
    Zip(Vec<usize>),
    /// One result: the sum of a stage's outputs, folded as a tree.
    Reduce(usize),
    /// Task `x` maps `x` and discovers up to two more inputs below `space`.
    Explore {
        /// The inputs it starts with.
        seeds: Vec<u64>,
        /// Discovered inputs are below this.
        space: u64,
    },
}

/// A task's input, as the server hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// One number (a map's or explore's input).
    Value(u64),
    /// One output of each stage a zip reads.
    Items(Vec<u64>),
    /// The values a reduce task folds.
    Group(Vec<u64>),
}

/// What running a task gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computed {
    /// The output's value (for explore, the `output` part), or the failure.
    pub value: Result<u64, TaskFailure>,
    /// Inputs an explore task discovered.
    pub next: Vec<u64>,
    /// Fuel burnt.
    pub fuel: u64,
    /// Whether the output meets the stage's goal.
    pub stop: bool,
}

impl Computed {
    /// The output as the worker sends it.
    pub fn json(&self, explore: bool) -> Option<String> {
        let value = *self.value.as_ref().ok()?;
        Some(if explore {
            let next: Vec<String> = self.next.iter().map(u64::to_string).collect();
            format!("{{\"output\":{value},\"next\":[{}]}}", next.join(","))
        } else {
            value.to_string()
        })
    }
}

/// A simulated job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its stages, in order.
    pub stages: Vec<Stage>,
    /// Whether idle fast workers copy stragglers' tasks.
    pub speculate: bool,
}

impl Job {
    /// Every input explore stage `stage` reaches from its seeds when every task is answered
    /// honestly (whatever its `max_tasks` cuts off).
    pub fn reachable(&self, stage: usize) -> HashSet<u64> {
        let Kind::Explore { seeds, .. } = &self.stages[stage].kind else {
            return HashSet::new();
        };
        let mut reached: HashSet<u64> = seeds.iter().copied().collect();
        let mut frontier: Vec<u64> = seeds.clone();
        while let Some(x) = frontier.pop() {
            for next in self.compute(stage, &Input::Value(x)).next {
                if reached.insert(next) {
                    frontier.push(next);
                }
            }
        }
        reached
    }

    /// The job seed `rng` chooses: one to four stages.
    pub fn random(rng: &mut Rng, big: bool) -> Self {
        let count = rng.range(1, 4) as usize;
        let mut stages: Vec<Stage> = Vec::new();
        for number in 0..count {
            let mut kind = Kind::Map;
            if number > 0 {
                // Stages another stage may read by index: maps and zips.
                let readable: Vec<usize> = (0..number)
                    .filter(|&s| matches!(stages[s].kind, Kind::Map | Kind::Zip(_)))
                    .collect();
                kind = match rng.below(4) {
                    0 if !readable.is_empty() => {
                        let first = readable[rng.below(readable.len() as u64) as usize];
                        let tasks = stages[first].plan.tasks;
                        let mut sources = vec![first];
                        for &other in &readable {
                            if other != first
                                && stages[other].plan.tasks == tasks
                                && rng.chance(0.5)
                            {
                                sources.push(other);
                            }
                        }
                        Kind::Zip(sources)
                    }
                    1 if !readable.is_empty() => {
                        Kind::Reduce(readable[rng.below(readable.len() as u64) as usize])
                    }
                    2 => {
                        let space = rng.range(2, 120);
                        let seeds = (0..rng.range(1, 3)).map(|_| rng.below(space)).collect();
                        let mut seeds: Vec<u64> = seeds;
                        seeds.sort_unstable();
                        seeds.dedup();
                        Kind::Explore { seeds, space }
                    }
                    _ => Kind::Map,
                };
            }
            stages.push(Stage::random(rng, number, kind, &stages, big));
        }
        // A stage nobody reads is written out; one that is read may be too.
        let read: Vec<usize> = stages
            .iter()
            .flat_map(|stage| stage.plan.feed.sources())
            .collect();
        for (number, stage) in stages.iter_mut().enumerate() {
            stage.plan.keep = if !read.contains(&number) || rng.chance(0.5) {
                Keep::Ordered
            } else {
                Keep::Nothing
            };
        }
        Self {
            stages,
            speculate: rng.chance(0.7),
        }
    }

    /// The plans the core is given.
    pub fn plans(&self) -> Vec<StagePlan> {
        self.stages.iter().map(|stage| stage.plan.clone()).collect()
    }

    /// Input `index` of map stage `stage`.
    pub fn input(&self, stage: usize, index: u64) -> u64 {
        hash(&[stage as u64, index, 1]) % MODULUS
    }

    /// What an honest worker computes for a task of `stage` given `input`.
    pub fn compute(&self, stage: usize, input: &Input) -> Computed {
        let spec = &self.stages[stage];
        let (value, next) = match (&spec.kind, input) {
            (Kind::Map, Input::Value(x)) => (hash(&[stage as u64, *x]) % MODULUS, Vec::new()),
            (Kind::Explore { space, .. }, Input::Value(x)) => {
                let value = hash(&[stage as u64, *x]) % MODULUS;
                let next = (0..2)
                    .map(|k| hash(&[stage as u64, *x, k, 7]) % space)
                    .filter(|_| !value.is_multiple_of(5))
                    .collect();
                (value, next)
            }
            (Kind::Zip(_), Input::Items(items)) => {
                let mut words = vec![stage as u64];
                words.extend(items);
                (hash(&words) % MODULUS, Vec::new())
            }
            (Kind::Reduce(_), Input::Group(values)) => {
                (values.iter().sum::<u64>() % MODULUS, Vec::new())
            }
            (kind, input) => unreachable!("stage {stage} ({kind:?}) given {input:?}"),
        };
        let fuel = spec.cost + hash(&[value, 3]) % spec.cost.max(1);
        let fails = spec.fail_one_in > 0
            && !matches!(spec.kind, Kind::Reduce(_))
            && hash(&[value, 99]).is_multiple_of(spec.fail_one_in);
        if fails {
            return Computed {
                value: Err(TaskFailure {
                    kind: FailureKind::Trap,
                    message: format!("wasm trap: unreachable (value {value})"),
                }),
                next: Vec::new(),
                fuel,
                stop: false,
            };
        }
        Computed {
            value: Ok(value),
            next,
            fuel,
            stop: spec.plan.stoppable && spec.goal_one_in > 0 && value % spec.goal_one_in == 0,
        }
    }
}

impl Stage {
    fn random(rng: &mut Rng, number: usize, kind: Kind, earlier: &[Stage], big: bool) -> Self {
        let most = if big { 400 } else { 120 };
        let (tasks, feed) = match &kind {
            Kind::Map => (rng.range(0, most), Feed::Inputs),
            Kind::Zip(sources) => (earlier[sources[0]].plan.tasks, Feed::Items(sources.clone())),
            Kind::Reduce(source) => (
                earlier[*source].plan.tasks,
                Feed::Reduce {
                    stage: *source,
                    fan_in: rng.range(2, 6),
                },
            ),
            Kind::Explore { seeds, .. } => (seeds.len() as u64, Feed::Inputs),
        };
        let explore = match &kind {
            Kind::Explore { space, .. } => Some(rng.range(1, *space + 10)),
            _ => None,
        };
        // Only stages whose tasks all exist up front may stop early, as the manifest says.
        let stoppable = matches!(kind, Kind::Map | Kind::Explore { .. }) && rng.chance(0.25);
        let replicate = match rng.below(5) {
            0 => Replicate::Fraction(1.0),
            1 => Replicate::Fraction(0.1 + rng.unit() * 0.8),
            2 => Replicate::Adaptive,
            _ => Replicate::Off,
        };
        let cost = 10u64.pow(rng.range(5, 8) as u32);
        let plan = StagePlan {
            name: format!("s{number}"),
            tasks,
            max_attempts: rng.range(3, 5) as u32,
            feed,
            stop_after: rng.range(1, 3),
            stoppable,
            explore,
            keep: Keep::Ordered,
            replicate,
            quorum: rng.range(2, 3) as u32,
            deadline: rng.chance(0.2).then(|| rng.range(50_000, 5_000_000)),
            fuel: cost * 4,
            timeout: 30_000_000,
        };
        Self {
            plan,
            verifier: !matches!(kind, Kind::Reduce(_)) && rng.chance(0.25),
            fail_one_in: if rng.chance(0.3) { rng.range(3, 30) } else { 0 },
            goal_one_in: rng.range(5, 60),
            cost,
            kind,
        }
    }

    /// Whether every output of the stage is checked (so no lie may be accepted).
    pub fn fully_checked(&self) -> bool {
        self.verifier || self.plan.replicate == Replicate::Fraction(1.0)
    }

    /// Whether the stage replicates (and so holds its results until complete).
    pub fn replicated(&self) -> bool {
        self.plan.replicate != Replicate::Off
    }
}

/// The stages a feed reads.
trait Sources {
    fn sources(&self) -> Vec<usize>;
}

impl Sources for Feed {
    fn sources(&self) -> Vec<usize> {
        match self {
            Feed::Inputs => Vec::new(),
            Feed::Items(stages) => stages.clone(),
            Feed::Reduce { stage, .. } => vec![*stage],
        }
    }
}
