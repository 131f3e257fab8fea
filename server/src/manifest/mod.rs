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
//! # integers above i64::MAX (TOML's largest) as decimal strings, where the task takes an
//! # integer: { values = ["18446744073709551615"] }, { range = { start = "…", end = "…" } }
//! max_attempts = 3                                # optional: failures before giving up
//! [limits]                                        # optional; defaults are safe for volunteers
//! fuel = 10_000_000_000
//! memory_mb = 256
//! timeout_secs = 300
//! ```
//!
//! [`load`] checks everything before a worker is accepted: each module is read, hashed and
//! validated against the guest ABI (compiled only if the server runs it), each stage's task
//! must be a task export of its module, and each input file must be valid JSON Lines. Where
//! the modules record their tasks' types, every input value and every edge between stages is
//! type-checked ([`crate::types`]); `check_types = false` on a stage turns that off. Errors
//! name the key, file and line at fault.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use dipla_protocol::{ModuleHash, RawJson, TaskLimits};
use dipla_sandbox::Sandbox;
use serde::Deserialize;

use dipla_sandbox::abi::TaskInfo;

use crate::job::{check_arity, check_reducer};
use crate::types::{self, Shape, Signature, Upstream};
use crate::{Inputs, Job, ManifestError, Module, Part, Source, Stage};
use dipla_core::Replicate;

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
    inputs: Option<InputsFile>,
    reduce: Option<ReduceFile>,
    max_attempts: Option<u32>,
    stop_after: Option<u64>,
    explore: Option<ExploreFile>,
    replicate: Option<toml::Value>,
    quorum: Option<u32>,
    verify: Option<String>,
    deadline_secs: Option<f64>,
    check_types: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExploreFile {
    max_tasks: Option<u64>,
}

/// The most tasks an explore stage grows to unless it says otherwise.
pub const DEFAULT_MAX_EXPLORE_TASKS: u64 = 1_000_000;

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum InputsFile {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReduceFile {
    stage: String,
    fan_in: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    fuel: Option<u64>,
    memory_mb: Option<u32>,
    timeout_secs: Option<u64>,
}

/// The files the manifest `text` names (modules, then input files), as written, to send
/// with it when submitting it to a server.
///
/// # Errors
/// When the text is not a manifest.
pub fn named_files(text: &str) -> Result<Vec<PathBuf>, String> {
    fn walk(inputs: &InputsFile, files: &mut Vec<PathBuf>) {
        match inputs {
            InputsFile::File(path) => files.push(path.clone()),
            InputsFile::Zip(parts) => parts.iter().for_each(|part| walk(part, files)),
            _ => {}
        }
    }
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut files: Vec<PathBuf> = file.modules.into_values().collect();
    for stage in &file.stages {
        if let Some(inputs) = &stage.inputs {
            walk(inputs, &mut files);
        }
    }
    files.dedup();
    Ok(files)
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
    let base = path.parent().unwrap_or(Path::new("."));
    let read = |file: &Path| {
        let full = base.join(file);
        std::fs::read(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))
    };
    parse_with(text, path, sandbox, &read)
}

/// Reads the files a manifest names (modules, input files), given their paths as written.
pub type ReadFile<'a> = dyn Fn(&Path) -> Result<Vec<u8>, String> + 'a;

/// Like [`parse`], with the files the manifest names read by `read` (for a job submitted
/// with its files, [`crate::serve`]); `path` names the manifest in messages.
///
/// # Errors
/// [`ManifestError`], naming the key, file and line at fault.
pub fn parse_with(
    text: &str,
    path: &Path,
    sandbox: &Sandbox,
    read: &ReadFile<'_>,
) -> Result<Job, ManifestError> {
    let file: File = toml::from_str(text).map_err(|e| ManifestError::Syntax {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let base = read;
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
        let bytes = read(module_path).map_err(|e| invalid(key.clone(), e))?;
        let hash = ModuleHash::of(&bytes);
        let guest = sandbox
            .admit(bytes)
            .map_err(|e| invalid(key.clone(), format!("{}: {e}", module_path.display())))?;
        guest.info().check_memory(limits.memory_mb).map_err(|e| {
            invalid(
                "limits.memory_mb".into(),
                format!("module {name} ({}): {e}", module_path.display()),
            )
        })?;
        if let Some(warning) = guest.info().debug_warning() {
            tracing::warn!(
                "{}: module {name} ({}): {warning}",
                path.display(),
                module_path.display()
            );
        }
        modules.push(Module {
            name: name.clone(),
            hash,
            bytes: guest.bytes().clone(),
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
    let names: Vec<String> = file.stages.iter().map(|stage| stage.name.clone()).collect();
    let find = |name: &str| names.iter().position(|n| n == name);

    // First pass: each stage's task and the stages it reads.
    let mut tasks = Vec::new();
    let mut reads: Vec<Vec<usize>> = Vec::new();
    for (i, stage) in file.stages.iter().enumerate() {
        let key = |field: &str| format!("stages[{i}].{field}");
        if stage.name.trim().is_empty() {
            return Err(invalid(key("name"), "a stage needs a name".into()));
        }
        if names[..i].contains(&stage.name) {
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
        let info = guest
            .check_task(export)
            .map_err(|e| invalid(key("task"), format!("module {module_name}: {e}")))?
            .clone();
        tasks.push((*hash, export.to_owned(), info));
        let mut referenced = Vec::new();
        let mut unknown = None;
        let mut note = |name: &str| match find(name) {
            Some(index) => referenced.push(index),
            None => unknown = Some(name.to_owned()),
        };
        match (&stage.inputs, &stage.reduce) {
            (Some(inputs), None) => stage_refs(inputs, &mut note),
            (None, Some(reduce)) => note(&reduce.stage),
            (Some(_), Some(_)) => {
                return Err(invalid(
                    key("reduce"),
                    "give either inputs or reduce, not both".into(),
                ));
            }
            (None, None) => {
                return Err(invalid(
                    key("inputs"),
                    "give the stage inputs (or a reduce)".into(),
                ));
            }
        }
        if let Some(name) = unknown {
            let field = if stage.reduce.is_some() {
                "reduce"
            } else {
                "inputs"
            };
            return Err(invalid(
                key(field),
                format!("no stage named {name:?} (stages: {})", names.join(", ")),
            ));
        }
        reads.push(referenced);
    }
    // A zip matches its parts by index, so each part must have a known length.
    for (i, stage) in file.stages.iter().enumerate() {
        let Some(InputsFile::Zip(parts)) = &stage.inputs else {
            continue;
        };
        for part in parts {
            let InputsFile::Stage(name) = part else {
                continue;
            };
            let source = find(name).expect("checked");
            let why = if file.stages[source].explore.is_some() {
                Some("explores")
            } else if may_stop(&tasks[source].2) {
                Some("can stop early")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(invalid(
                    format!("stages[{i}].inputs"),
                    format!(
                        "stage {name:?} {why}, so its number of outputs is known only at the end and a zip cannot match it by index (map over it, or reduce it)"
                    ),
                ));
            }
        }
    }
    let order = topological_order(&reads).map_err(|cycle| {
        let path: Vec<&str> = cycle.iter().map(|&i| names[i].as_str()).collect();
        invalid(
            "stages".into(),
            format!(
                "the stages read each other in a cycle: {}",
                path.join(" -> ")
            ),
        )
    })?;

    // What each stage outputs, for the type check of the stages that read it.
    let outputs: Vec<Upstream> = file
        .stages
        .iter()
        .zip(&tasks)
        .map(|(stage, (_, _, info))| Upstream {
            name: stage.name.clone(),
            output: Signature::of(info).output(stage.explore.is_some()),
        })
        .collect();

    // Second pass, upstream first: sources and task counts.
    let mut resolved: Vec<Option<(Source, u64)>> = (0..file.stages.len()).map(|_| None).collect();
    let mut stages_file: Vec<Option<StageFile>> = file.stages.into_iter().map(Some).collect();
    for &i in &order {
        let stage = stages_file[i].as_ref().expect("visited once");
        let key = |field: &str| format!("stages[{i}].{field}");
        // How many outputs a stage has: one for a reduce, one per task otherwise.
        let count = |index: usize| match resolved[index].as_ref().expect("upstream first") {
            (Source::Reduce { .. }, _) => 1,
            (_, tasks) => *tasks,
        };
        let info = &tasks[i].2;
        let check = stage.check_types.unwrap_or(true);
        let (source, count) = match (&stage.inputs, &stage.reduce) {
            (_, Some(reduce)) => {
                let fan_in = reduce.fan_in.unwrap_or(2);
                check_reducer(info, fan_in).map_err(|message| {
                    let field = if fan_in < 2 { "reduce.fan_in" } else { "task" };
                    invalid(key(field), message)
                })?;
                let folded = find(&reduce.stage).expect("checked");
                (
                    Source::Reduce {
                        stage: folded,
                        fan_in,
                    },
                    count(folded),
                )
            }
            (Some(inputs), None) => source(inputs, base, info, check, &find, &count)
                .map_err(|message| invalid(key("inputs"), message))?,
            (None, None) => unreachable!("checked in the first pass"),
        };
        if check {
            types::check_source(info, &source, stage.explore.is_some(), true, &|stage| {
                outputs[stage].clone()
            })
            .map_err(|message| invalid(format!("stages[{i}] {:?}", stage.name), message))?;
        }
        resolved[i] = Some((source, count));
    }

    let mut stages = Vec::new();
    for (i, stage) in stages_file.iter_mut().enumerate() {
        let stage = stage.take().expect("each stage once");
        let (source, count) = resolved[i].take().expect("resolved");
        let max_attempts = stage.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if max_attempts == 0 {
            return Err(invalid(
                format!("stages[{i}].max_attempts"),
                "must be at least 1".into(),
            ));
        }
        let explore = match &stage.explore {
            None => None,
            Some(explore) => {
                if !matches!(source, Source::List(_)) {
                    return Err(invalid(
                        format!("stages[{i}].explore"),
                        "an explore stage starts from a list of inputs (range, values or file)"
                            .into(),
                    ));
                }
                let max = explore.max_tasks.unwrap_or(DEFAULT_MAX_EXPLORE_TASKS);
                if max < count {
                    return Err(invalid(
                        format!("stages[{i}].explore.max_tasks"),
                        format!("{max} is less than the {count} inputs the stage starts with"),
                    ));
                }
                Some(max)
            }
        };
        let stop_after = stage.stop_after.unwrap_or(1);
        if stop_after == 0 {
            return Err(invalid(
                format!("stages[{i}].stop_after"),
                "must be at least 1".into(),
            ));
        }
        let key = |field: &str| format!("stages[{i}].{field}");
        let replicate = match &stage.replicate {
            None => Replicate::Off,
            Some(toml::Value::String(text)) if text == "adaptive" => Replicate::Adaptive,
            Some(toml::Value::Float(fraction)) if *fraction > 0.0 && *fraction <= 1.0 => {
                Replicate::Fraction(*fraction)
            }
            Some(toml::Value::Integer(1)) => Replicate::Fraction(1.0),
            Some(other) => {
                return Err(invalid(
                    key("replicate"),
                    format!(
                        "{other} should be a fraction of tasks above 0 and at most 1 (such as 0.1), or \"adaptive\""
                    ),
                ));
            }
        };
        let quorum = stage.quorum.unwrap_or(2);
        if !(2..=9).contains(&quorum) {
            return Err(invalid(
                key("quorum"),
                format!("{quorum} agreeing workers: give 2 to 9"),
            ));
        }
        let verify = match &stage.verify {
            None => None,
            Some(name) => {
                let Some((module_name, export)) = name.split_once('.') else {
                    return Err(invalid(
                        key("verify"),
                        format!("{name:?} should be \"module.verifier\", such as \"factor.check\""),
                    ));
                };
                let Some((hash, guest)) = guests.get(module_name) else {
                    return Err(invalid(
                        key("verify"),
                        format!("no module named {module_name:?} in [modules]"),
                    ));
                };
                let info = guest
                    .check_task(export)
                    .map_err(|e| invalid(key("verify"), format!("module {module_name}: {e}")))?;
                if !info.verifier {
                    return Err(invalid(
                        key("verify"),
                        format!(
                            "{info} is not a #[verifier]: a verifier is fn(input: &In, output: &Out) -> bool"
                        ),
                    ));
                }
                Some((*hash, export.to_owned()))
            }
        };
        let deadline = match stage.deadline_secs {
            None => None,
            Some(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => {
                Some(std::time::Duration::from_secs_f64(secs))
            }
            Some(secs) => {
                return Err(invalid(
                    key("deadline_secs"),
                    format!("{secs} should be a positive number of seconds"),
                ));
            }
        };
        let (module, export, info) = tasks[i].clone();
        stages.push(Stage {
            deadline,
            replicate,
            quorum,
            verify,
            stoppable: may_stop(&info),
            name: stage.name,
            module,
            export,
            source,
            tasks: count,
            limits,
            max_attempts,
            stop_after,
            explore,
            check_types: stage.check_types.unwrap_or(true),
        });
    }
    Ok(Job {
        name: file.name,
        modules,
        stages,
        sandbox: sandbox.clone(),
    })
}

/// Whether a task may meet its stage's goal and stop it early: it returns `Flow`, or its
/// module does not say what it returns.
pub fn may_stop(info: &TaskInfo) -> bool {
    info.returns.as_deref().is_none_or(|returns| {
        returns.starts_with("Flow<") || returns.starts_with("dipla_guest::Flow<")
    })
}

/// Calls `note` with the name of every stage `inputs` reads.
fn stage_refs(inputs: &InputsFile, note: &mut impl FnMut(&str)) {
    match inputs {
        InputsFile::Stage(name) => note(name),
        InputsFile::Zip(parts) => parts.iter().for_each(|part| stage_refs(part, note)),
        _ => {}
    }
}

/// The stages in an order where every stage comes after those it reads, or a cycle.
fn topological_order(reads: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    fn visit(
        stage: usize,
        reads: &[Vec<usize>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        match marks[stage] {
            Mark::Done => return Ok(()),
            Mark::Visiting => {
                let start = path.iter().position(|&s| s == stage).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(stage);
                return Err(cycle);
            }
            Mark::New => {}
        }
        marks[stage] = Mark::Visiting;
        path.push(stage);
        for &upstream in &reads[stage] {
            visit(upstream, reads, marks, path, order)?;
        }
        path.pop();
        marks[stage] = Mark::Done;
        order.push(stage);
        Ok(())
    }
    let mut marks = vec![Mark::New; reads.len()];
    let mut order = Vec::new();
    for stage in 0..reads.len() {
        visit(stage, reads, &mut marks, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

/// Resolves a stage's `inputs` to a source and its number of tasks.
fn source(
    inputs: &InputsFile,
    base: &ReadFile<'_>,
    info: &TaskInfo,
    check: bool,
    find: &impl Fn(&str) -> Option<usize>,
    count: &impl Fn(usize) -> u64,
) -> Result<(Source, u64), String> {
    let arity = |want: usize, what: &str| check_arity(info, want, what);
    let sig = Signature::of(info);
    // What a zip's part `j` is checked against: that one parameter.
    let part_sig = |j: usize| {
        let param = match sig.params.as_deref() {
            Some([_]) => sig.input(),
            Some(params) => params.get(j).cloned(),
            None => None,
        };
        Signature {
            display: sig.display.clone(),
            params: param.map(|param| vec![param]),
            returns: Shape::Any,
        }
    };
    match inputs {
        InputsFile::Stage(name) => {
            let stage = find(name).expect("checked");
            Ok((Source::Stage(stage), count(stage)))
        }
        InputsFile::Zip(parts) => {
            if parts.is_empty() {
                return Err("a zip needs at least one part".into());
            }
            arity(parts.len(), "the zip")?;
            let mut resolved = Vec::new();
            let mut lengths = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                let (part, length) = match part {
                    InputsFile::Stage(name) => {
                        let stage = find(name).expect("checked");
                        (Part::Stage(stage), count(stage))
                    }
                    InputsFile::Zip(_) | InputsFile::Scatter { .. } => {
                        return Err(format!("zip[{j}]: a zip part is a list or a stage"));
                    }
                    list => {
                        let list = list_inputs(list, base, &part_sig(j), check)
                            .map_err(|e| format!("zip[{j}]: {e}"))?;
                        let length = list.len();
                        (Part::List(list), length)
                    }
                };
                resolved.push(part);
                lengths.push(length);
            }
            if lengths.iter().any(|&length| length != lengths[0]) {
                let lengths: Vec<String> = lengths.iter().map(u64::to_string).collect();
                return Err(format!(
                    "the zip's parts differ in length ({})",
                    lengths.join(", ")
                ));
            }
            Ok((Source::Zip(resolved), lengths[0]))
        }
        InputsFile::Scatter { value, count } => {
            arity(3, "scatter")?;
            if *count == 0 {
                return Err("scatter needs a count of at least 1".into());
            }
            let json = serde_json::to_value(value).map_err(|e| format!("scatter.value: {e}"))?;
            let json = match sig.params.as_deref() {
                Some([first, ..]) => first.coerce(json),
                _ => json,
            };
            let value = RawJson::from_string(json.to_string())
                .map_err(|e| format!("scatter.value: {e}"))?;
            Ok((
                Source::Scatter {
                    value,
                    count: *count,
                },
                *count,
            ))
        }
        list => {
            let list = list_inputs(list, base, &sig, check)?;
            let length = list.len();
            Ok((Source::List(list), length))
        }
    }
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

/// A range bound: a non-negative TOML integer, or a decimal string for one above `i64::MAX`.
fn bound(value: &toml::Value, what: &str) -> Result<u64, String> {
    let parsed = match value {
        toml::Value::Integer(int) => u64::try_from(*int).ok(),
        toml::Value::String(text) => text.trim().parse::<u64>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        format!(
            "range.{what}: {value} should be an integer from 0 to {} (write one above {} as a string, such as \"18446744073709551615\")",
            u64::MAX,
            i64::MAX
        )
    })
}

/// Reads a list of inputs; when `check`, each value is checked against the input of `sig`
/// (its decimal strings read as integers where it takes integers, as TOML stops at
/// `i64::MAX`).
fn list_inputs(
    file: &InputsFile,
    read: &ReadFile<'_>,
    sig: &Signature,
    check: bool,
) -> Result<Inputs, String> {
    let input = sig.input();
    let inputs = match file {
        InputsFile::Range { start, end } => {
            let (start, end) = (bound(start, "start")?, bound(end, "end")?);
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
                        serde_json::to_value(value).map_err(|e| format!("values[{i}]: {e}"))?;
                    let json = match &input {
                        Some(input) => {
                            let json = input.coerce(json);
                            if check {
                                types::check_value(&json, input, sig)
                                    .map_err(|e| format!("values[{i}]: {e}"))?;
                            }
                            json
                        }
                        None => json,
                    };
                    RawJson::from_string(json.to_string()).map_err(|e| format!("values[{i}]: {e}"))
                })
                .collect::<Result<_, _>>()?,
        ),
        InputsFile::File(path) => {
            let full = path;
            let text = String::from_utf8(read(path)?)
                .map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
            let mut values = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let value = RawJson::from_string(line.trim().to_owned())
                    .map_err(|e| format!("{}:{}: not JSON: {e}", full.display(), i + 1))?;
                if let (Some(input), true) = (&input, check) {
                    let json: serde_json::Value = serde_json::from_str(value.get())
                        .map_err(|e| format!("{}:{}: not JSON: {e}", full.display(), i + 1))?;
                    types::check_value(&json, input, sig)
                        .map_err(|e| format!("{}:{}: {e}", full.display(), i + 1))?;
                }
                values.push(value);
            }
            Inputs::Values(values)
        }
        InputsFile::Stage(_) | InputsFile::Zip(_) | InputsFile::Scatter { .. } => {
            unreachable!("handled by the caller")
        }
    };
    if inputs.is_empty() {
        return Err("there are no inputs".into());
    }
    Ok(inputs)
}
