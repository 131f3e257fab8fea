//! The job manifest (TOML): what to run, on what, under which limits.
//!
//! ```toml
//! name = "factorise"
//! [modules]
//! factor = "../../target/wasm32-unknown-unknown/release/factorise.wasm"  # relative to this file
//! [[stages]]
//! name = "factors"
//! task = "factor.factorise"                       # module.export
//! inputs = { range = { start = 1000000000000, end = 1000000002000 } }   # end exclusive
//! # or: inputs = { values = [12, 97, 1001] }
//! # or: inputs = { file = "numbers.jsonl" }       # one JSON value per line
//! max_attempts = 3                                # optional: failures before giving up
//! [limits]                                        # optional; defaults are safe for volunteers
//! fuel = 10_000_000_000
//! memory_mb = 256
//! timeout_secs = 300
//! ```
//!
//! [`load`] checks everything before a worker is accepted: each module is read, hashed and
//! compiled, each stage's task must be a task export of its module, and each input file must
//! be valid JSON Lines. Errors name the key, file and line at fault.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dipla_protocol::{ModuleHash, RawJson, TaskLimits};
use dipla_sandbox::Sandbox;
use serde::Deserialize;

use crate::{Inputs, Job, ManifestError, Module, Stage};

/// Failures a task may have before it is reported as failed, unless a stage says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// The limits a task gets unless the manifest says otherwise.
pub const DEFAULT_LIMITS: TaskLimits = TaskLimits {
    fuel: 10_000_000_000,
    memory_mb: 256,
    timeout_ms: 300_000,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    modules: BTreeMap<String, PathBuf>,
    stages: Vec<StageFile>,
    #[serde(default)]
    limits: LimitsFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageFile {
    name: String,
    task: String,
    inputs: InputsFile,
    max_attempts: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum InputsFile {
    Range { start: u64, end: u64 },
    Values(Vec<toml::Value>),
    File(PathBuf),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    fuel: Option<u64>,
    memory_mb: Option<u32>,
    timeout_secs: Option<u64>,
}

/// Reads, checks and resolves the manifest at `path`, compiling its modules with `sandbox`.
///
/// # Errors
/// [`ManifestError`], naming the key, file and line at fault.
pub fn load(path: &Path, sandbox: &Sandbox) -> Result<Job, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path, sandbox)
}

/// Like [`load`], with the manifest's text given; relative paths are resolved against
/// `path`'s folder.
///
/// # Errors
/// [`ManifestError`], naming the key, file and line at fault.
pub fn parse(text: &str, path: &Path, sandbox: &Sandbox) -> Result<Job, ManifestError> {
    let file: File = toml::from_str(text).map_err(|e| ManifestError::Syntax {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let invalid = |key: String, message: String| ManifestError::Invalid {
        path: path.to_owned(),
        key,
        message,
    };

    if file.name.trim().is_empty() {
        return Err(invalid("name".into(), "the job needs a name".into()));
    }
    let limits = limits(&file.limits).map_err(|(key, message)| invalid(key, message))?;
    if file.modules.is_empty() {
        return Err(invalid(
            "modules".into(),
            "declare at least one module".into(),
        ));
    }

    let mut modules = Vec::new();
    let mut guests = HashMap::new();
    for (name, module_path) in &file.modules {
        let key = format!("modules.{name}");
        let full = base.join(module_path);
        let bytes = std::fs::read(&full)
            .map_err(|e| invalid(key.clone(), format!("cannot read {}: {e}", full.display())))?;
        let guest = sandbox
            .compile(&bytes)
            .map_err(|e| invalid(key.clone(), format!("{}: {e}", full.display())))?;
        let hash = ModuleHash::of(&bytes);
        modules.push(Module {
            name: name.clone(),
            hash,
            bytes: Arc::from(bytes),
            guest: guest.clone(),
        });
        guests.insert(name.as_str(), (hash, guest));
    }

    if file.stages.is_empty() {
        return Err(invalid(
            "stages".into(),
            "declare at least one [[stages]]".into(),
        ));
    }
    let mut stages: Vec<Stage> = Vec::new();
    for (i, stage) in file.stages.into_iter().enumerate() {
        let key = |field: &str| format!("stages[{i}].{field}");
        if stage.name.trim().is_empty() {
            return Err(invalid(key("name"), "a stage needs a name".into()));
        }
        if stages.iter().any(|s| s.name == stage.name) {
            return Err(invalid(
                key("name"),
                format!("another stage is named {:?}", stage.name),
            ));
        }
        let Some((module_name, export)) = stage.task.split_once('.') else {
            return Err(invalid(
                key("task"),
                format!(
                    "{:?} should be \"module.export\", such as \"factor.factorise\"",
                    stage.task
                ),
            ));
        };
        let Some((hash, guest)) = guests.get(module_name) else {
            let known: Vec<_> = guests.keys().copied().collect();
            return Err(invalid(
                key("task"),
                format!(
                    "no module named {module_name:?} in [modules] (there is: {})",
                    known.join(", ")
                ),
            ));
        };
        guest
            .check_task(export)
            .map_err(|e| invalid(key("task"), format!("module {module_name}: {e}")))?;
        let inputs =
            inputs(stage.inputs, base).map_err(|message| invalid(key("inputs"), message))?;
        let max_attempts = stage.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if max_attempts == 0 {
            return Err(invalid(key("max_attempts"), "must be at least 1".into()));
        }
        stages.push(Stage {
            name: stage.name,
            module: *hash,
            export: export.to_owned(),
            inputs,
            limits,
            max_attempts,
        });
    }
    Ok(Job {
        name: file.name,
        modules,
        stages,
        sandbox: sandbox.clone(),
    })
}

fn limits(file: &LimitsFile) -> Result<TaskLimits, (String, String)> {
    let fuel = file.fuel.unwrap_or(DEFAULT_LIMITS.fuel);
    if fuel == 0 {
        return Err(("limits.fuel".into(), "must be positive".into()));
    }
    let memory_mb = file.memory_mb.unwrap_or(DEFAULT_LIMITS.memory_mb);
    if !(1..=4096).contains(&memory_mb) {
        return Err((
            "limits.memory_mb".into(),
            "must be between 1 and 4096 (wasm32 addresses 4 GiB)".into(),
        ));
    }
    let timeout_ms = match file.timeout_secs {
        Some(0) => return Err(("limits.timeout_secs".into(), "must be positive".into())),
        Some(secs) => secs.saturating_mul(1000),
        None => DEFAULT_LIMITS.timeout_ms,
    };
    Ok(TaskLimits {
        fuel,
        memory_mb,
        timeout_ms,
    })
}

fn inputs(file: InputsFile, base: &Path) -> Result<Inputs, String> {
    let inputs = match file {
        InputsFile::Range { start, end } => {
            if start >= end {
                return Err(format!(
                    "the range {start}..{end} is empty (end is exclusive)"
                ));
            }
            Inputs::Range { start, end }
        }
        InputsFile::Values(values) => Inputs::Values(
            values
                .iter()
                .enumerate()
                .map(|(i, value)| {
                    let json =
                        serde_json::to_string(value).map_err(|e| format!("values[{i}]: {e}"))?;
                    RawJson::from_string(json).map_err(|e| format!("values[{i}]: {e}"))
                })
                .collect::<Result<_, _>>()?,
        ),
        InputsFile::File(path) => {
            let full = base.join(&path);
            let text = std::fs::read_to_string(&full)
                .map_err(|e| format!("cannot read {}: {e}", full.display()))?;
            let mut values = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let value = RawJson::from_string(line.trim().to_owned())
                    .map_err(|e| format!("{}:{}: not JSON: {e}", full.display(), i + 1))?;
                values.push(value);
            }
            Inputs::Values(values)
        }
    };
    if inputs.is_empty() {
        return Err("there are no inputs".into());
    }
    Ok(inputs)
}
