use std::sync::Arc;

use dipla_protocol::{ModuleHash, TaskLimits};
use dipla_sandbox::{Guest, Sandbox};

use crate::Inputs;

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
    /// The module compiled by the server's sandbox when it was admitted (local workers use
    /// it rather than compiling it again).
    pub guest: Guest,
}

/// One stage: a task applied to each of its inputs.
#[derive(Debug)]
pub struct Stage {
    /// The stage's name (the `"stage"` field of each result line).
    pub name: String,
    /// The module to run.
    pub module: ModuleHash,
    /// The task export.
    pub export: String,
    /// The inputs, one per task.
    pub inputs: Inputs,
    /// Sandbox limits for each task.
    pub limits: TaskLimits,
    /// How many times a task may fail before it is reported as failed.
    pub max_attempts: u32,
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
    /// How many tasks the job has in all.
    pub fn task_count(&self) -> u64 {
        self.stages.iter().map(|stage| stage.inputs.len()).sum()
    }

    /// The bytes of module `hash`, if the job has it.
    pub fn module_bytes(&self, hash: &ModuleHash) -> Option<&Arc<[u8]>> {
        self.modules
            .iter()
            .find(|module| module.hash == *hash)
            .map(|module| &module.bytes)
    }
}
