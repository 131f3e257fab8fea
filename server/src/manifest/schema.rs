//! The manifest's TOML as written: its keys and their types, before anything is checked.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The whole manifest.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub name: String,
    pub modules: BTreeMap<String, PathBuf>,
    pub stages: Vec<StageFile>,
    #[serde(default)]
    pub limits: LimitsFile,
}

/// One `[[stages]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StageFile {
    pub name: String,
    pub task: String,
    pub inputs: Option<InputsFile>,
    pub reduce: Option<ReduceFile>,
    pub max_attempts: Option<u32>,
    pub stop_after: Option<u64>,
    pub explore: Option<ExploreFile>,
    pub replicate: Option<toml::Value>,
    pub quorum: Option<u32>,
    pub verify: Option<String>,
    pub deadline_secs: Option<f64>,
    pub check_types: Option<bool>,
}

/// A stage's `explore = { ... }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExploreFile {
    pub max_tasks: Option<u64>,
}

/// A stage's `inputs = { ... }` (or one part of a zip).
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum InputsFile {
    Range {
        start: toml::Value,
        end: toml::Value,
    },
    Values(Vec<toml::Value>),
    File(PathBuf),
    Stage(String),
    Zip(Vec<InputsFile>),
    Scatter {
        value: toml::Value,
        count: u64,
    },
}

/// A stage's `reduce = { ... }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReduceFile {
    pub stage: String,
    pub fan_in: Option<u64>,
}

/// The `[limits]` table.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsFile {
    pub fuel: Option<u64>,
    pub memory_mb: Option<u32>,
    pub timeout_secs: Option<u64>,
}

impl InputsFile {
    /// Calls `note` with the name of every stage these inputs read.
    pub fn stage_refs(&self, note: &mut impl FnMut(&str)) {
        match self {
            Self::Stage(name) => note(name),
            Self::Zip(parts) => parts.iter().for_each(|part| part.stage_refs(note)),
            _ => {}
        }
    }

    /// Appends the input files these inputs name to `files`.
    pub fn files(&self, files: &mut Vec<PathBuf>) {
        match self {
            Self::File(path) => files.push(path.clone()),
            Self::Zip(parts) => parts.iter().for_each(|part| part.files(files)),
            _ => {}
        }
    }
}
