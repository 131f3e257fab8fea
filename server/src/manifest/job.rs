use std::sync::Arc;

use dipla_protocol::{ModuleHash, TaskLimits};
use dipla_sandbox::{LazyGuest, Sandbox};

use dipla_protocol::RawJson;

use crate::Inputs;
use dipla_core::{Coordinator, Feed, Finished, Keep, Replicate, StagePlan, TaskRef};

/// A validated job, ready to run: every module checked, every stage resolved.
pub struct Job {
    /// The job's name.
    pub name: String,
    /// The modules, by the names the manifest gives them.
    pub modules: Vec<Module>,
    /// The stages, in manifest order.
    pub stages: Vec<Stage>,
    /// The sandbox the modules were compiled with (local workers run them in it).
    pub sandbox: Sandbox,
}

/// A guest module, identified by content.
#[derive(Debug, Clone)]
pub struct Module {
    /// The manifest's name for it.
    pub name: String,
    /// The sha256 of its bytes.
    pub hash: ModuleHash,
    /// The bytes, shipped to workers that ask.
    pub bytes: Arc<[u8]>,
    /// The module as the server's sandbox admitted it: checked, and compiled only when the
    /// server runs it (a verifier) or its local workers do, who then share that compilation.
    pub guest: LazyGuest,
}

/// One stage: a task applied to each of its inputs.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Stage {
    /// The stage's name (the `"stage"` field of each result line).
    pub name: String,
    /// The module to run.
    pub module: ModuleHash,
    /// The task export.
    pub export: String,
    /// Where each task's input comes from.
    pub source: Source,
    /// How many tasks (for a reduce stage: how many values it folds).
    pub tasks: u64,
    /// Sandbox limits for each task.
    pub limits: TaskLimits,
    /// How many times a task may fail before it is reported as failed.
    pub max_attempts: u32,
    /// How many outputs that meet the goal (`Flow::Stop`) end the stage early.
    pub stop_after: u64,
    /// Whether its task may meet the goal and end the stage early (it returns `Flow`, or
    /// its module does not say what it returns).
    pub stoppable: bool,
    /// For an explore stage, the most tasks it may grow to.
    pub explore: Option<u64>,
    /// How its tasks are replicated to check them.
    pub replicate: Replicate,
    /// Agreeing answers a replicated task needs.
    pub quorum: u32,
    /// The verifier every output is checked with: a module and its `#[verifier]` export.
    pub verify: Option<(ModuleHash, String)>,
    /// How long a task may run on a worker before it is given to another one too (`None`:
    /// from its limits and the worker's measured speed).
    pub deadline: Option<std::time::Duration>,
    /// Whether its inputs and the outputs it reads are checked against the types its module
    /// records when it is added (`check_types = false` in a manifest turns it off).
    #[serde(default = "checked")]
    pub check_types: bool,
}

/// By default a stage's types are checked.
fn checked() -> bool {
    true
}

/// Where a stage's task inputs come from.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Values known up front.
    List(Inputs),
    /// The outputs of another stage, one task per output (a map over a promise).
    Stage(usize),
    /// One argument from each part, matched by index: the task's input is an array.
    Zip(Vec<Part>),
    /// One value split into `count` tasks, each given `[value, index, count]`.
    Scatter {
        /// The value.
        value: Box<RawJson>,
        /// How many tasks.
        count: u64,
    },
    /// The outputs of another stage folded as a tree of groups of `fan_in`.
    Reduce {
        /// The stage folded.
        stage: usize,
        /// Values per group.
        fan_in: u64,
    },
}

/// One part of a zip.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Values known up front.
    List(Inputs),
    /// Another stage's outputs.
    Stage(usize),
}

impl Stage {
    /// What the coordinator needs to know of this stage, whose results `keep` says who keeps.
    pub fn plan(&self, keep: Keep) -> StagePlan {
        let feed = match &self.source {
            Source::List(_) | Source::Scatter { .. } => Feed::Inputs,
            Source::Stage(stage) => Feed::Items(vec![*stage]),
            Source::Zip(_) => {
                let stages = self.stages_read();
                if stages.is_empty() {
                    Feed::Inputs
                } else {
                    Feed::Items(stages)
                }
            }
            Source::Reduce { stage, fan_in } => Feed::Reduce {
                stage: *stage,
                fan_in: *fan_in,
            },
        };
        StagePlan {
            name: self.name.clone(),
            tasks: self.tasks,
            max_attempts: self.max_attempts,
            feed,
            stop_after: self.stop_after,
            stoppable: self.stoppable,
            explore: self.explore,
            keep,
            replicate: self.replicate,
            quorum: self.quorum,
            deadline: self
                .deadline
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            fuel: self.limits.fuel,
            timeout: self.limits.timeout_ms.saturating_mul(1000),
        }
    }

    /// The distinct stages this stage reads, in the order its source names them.
    pub fn stages_read(&self) -> Vec<usize> {
        let mut stages = Vec::new();
        match &self.source {
            Source::Stage(stage) | Source::Reduce { stage, .. } => stages.push(*stage),
            Source::Zip(parts) => {
                for part in parts {
                    if let Part::Stage(stage) = part
                        && !stages.contains(stage)
                    {
                        stages.push(*stage);
                    }
                }
            }
            Source::List(_) | Source::Scatter { .. } => {}
        }
        stages
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("modules", &self.modules)
            .field("stages", &self.stages)
            .finish_non_exhaustive()
    }
}

impl Job {
    /// How many result lines the job writes (a reduce stage writes one).
    pub fn task_count(&self) -> u64 {
        self.stages
            .iter()
            .map(|stage| match stage.source {
                Source::Reduce { .. } => 1,
                _ => stage.tasks,
            })
            .sum()
    }

    /// The JSON input of `task`, which the coordinator has made ready.
    ///
    /// # Panics
    /// When an input it needs does not exist (a bug: the coordinator only hands out tasks
    /// whose inputs exist).
    pub fn input(&self, task: TaskRef, coordinator: &Coordinator) -> Box<RawJson> {
        let item = |stage: usize| -> Box<RawJson> {
            coordinator
                .item(stage, task.index)
                .expect("a ready task's inputs exist")
                .to_owned()
        };
        let text = match &self.stages[task.stage].source {
            Source::List(inputs) if task.index < inputs.len() => return inputs.get(task.index),
            Source::List(inputs) => {
                let n = task.index - inputs.len();
                let input = coordinator
                    .discovered(task.stage, n)
                    .expect("a discovered input");
                return input.to_owned();
            }
            Source::Stage(stage) => return item(*stage),
            Source::Zip(parts) => {
                let parts: Vec<Box<RawJson>> = parts
                    .iter()
                    .map(|part| match part {
                        Part::List(inputs) => inputs.get(task.index),
                        Part::Stage(stage) => item(*stage),
                    })
                    .collect();
                array(parts.iter().map(|part| part.get()))
            }
            Source::Scatter { value, count } => format!("[{},{},{count}]", value.get(), task.index),
            Source::Reduce { .. } => array(coordinator.group(task).into_iter().map(RawJson::get)),
        };
        RawJson::from_string(text).expect("composed from valid JSON")
    }

    /// The `"input"` of the result line of `finished`: the task's input (`null` when an
    /// input failed upstream and the task never ran), or for a reduce stage
    /// `{"reduce":"<stage>","items":N}`.
    pub fn line_input(&self, finished: &Finished, coordinator: &Coordinator) -> Box<RawJson> {
        let task = finished.task;
        let stage = &self.stages[task.stage];
        let null = || RawJson::from_string("null".to_owned()).expect("valid JSON");
        let read = stage.stages_read();
        let item = |source: usize| {
            let position = read.iter().position(|&s| s == source).expect("a source");
            finished.items.get(position).and_then(Option::as_ref)
        };
        match &stage.source {
            Source::Reduce { stage: folded, .. } => {
                let items = coordinator.tasks(task.stage);
                let text =
                    serde_json::json!({ "reduce": self.stages[*folded].name, "items": items });
                RawJson::from_string(text.to_string()).expect("valid JSON")
            }
            Source::Stage(source) => item(*source).cloned().unwrap_or_else(null),
            Source::Zip(parts) => {
                let mut texts = Vec::new();
                for part in parts {
                    match part {
                        Part::List(inputs) => texts.push(inputs.get(task.index)),
                        Part::Stage(source) => match item(*source) {
                            Some(value) => texts.push(value.clone()),
                            None => return null(),
                        },
                    }
                }
                let text = array(texts.iter().map(|text| text.get()));
                RawJson::from_string(text).expect("composed from valid JSON")
            }
            Source::List(_) | Source::Scatter { .. } => self.input(task, coordinator),
        }
    }

    /// The module `hash`, if the job has it.
    pub fn guest(&self, hash: &ModuleHash) -> Option<&LazyGuest> {
        self.modules
            .iter()
            .find(|module| module.hash == *hash)
            .map(|module| &module.guest)
    }

    /// Module `hash`, if the job has it.
    pub fn module(&self, hash: &ModuleHash) -> Option<&Module> {
        self.modules.iter().find(|module| module.hash == *hash)
    }

    /// The bytes of module `hash`, if the job has it.
    pub fn module_bytes(&self, hash: &ModuleHash) -> Option<&Arc<[u8]>> {
        self.module(hash).map(|module| &module.bytes)
    }

    /// Checks that no module is larger than `limit_mb` MiB, the largest the server serves
    /// (`--max-module-mb`).
    ///
    /// # Errors
    /// [`ModuleTooLarge`] naming the first module over the limit.
    pub fn check_module_sizes(&self, limit_mb: u32) -> Result<(), ModuleTooLarge> {
        let limit = dipla_protocol::module_limit_bytes(limit_mb);
        match self
            .modules
            .iter()
            .find(|module| module.bytes.len() > limit)
        {
            Some(module) => Err(ModuleTooLarge {
                name: module.name.clone(),
                bytes: module.bytes.len(),
                limit_mb,
            }),
            None => Ok(()),
        }
    }
}

/// A job's module is larger than the server serves.
#[derive(Debug, thiserror::Error)]
#[error(
    "module {name} is {:.1} MiB, over this server's limit of {limit_mb} MiB (--max-module-mb)",
    *.bytes as f64 / f64::from(1 << 20)
)]
pub struct ModuleTooLarge {
    /// The module's name in the job.
    pub name: String,
    /// Its size in bytes.
    pub bytes: usize,
    /// The server's limit, in MiB.
    pub limit_mb: u32,
}

/// `[a,b,...]` from JSON texts.
fn array<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    let mut text = String::from("[");
    for (i, part) in parts.enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(part);
    }
    text.push(']');
    text
}
