//! `dipla-server try`: one task run on this machine in the sandbox configuration workers
//! use (the same engine, limits and ABI), to see what it returns or why it fails, the fuel
//! it burns, and what it logged.

use std::io::Write;
use std::path::{Path, PathBuf};

use dipla_protocol::{RawJson, TaskFailure, TaskLimits};
use dipla_sandbox::abi::AbiError;
use dipla_sandbox::{Limits, Sandbox};
use serde::Serialize;

use crate::manifest::DEFAULT_LIMITS;

/// The largest `memory_mb` a task may have, as in a manifest.
const MAX_MEMORY_MB: u32 = 4096;

/// Why a task could not be tried (its own failure is a [`Trial`]).
#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    /// The module file cannot be read.
    #[error("cannot read {}: {why}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why not.
        why: std::io::Error,
    },
    /// The file is not a runnable Dipla guest.
    #[error("{} is not a runnable Dipla guest: {why}", path.display())]
    Module {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: AbiError,
    },
    /// The module has no such task.
    #[error("{}: {why}", path.display())]
    Task {
        /// The module's file.
        path: PathBuf,
        /// Which task was asked for, and the tasks there are.
        why: AbiError,
    },
    /// The input is not JSON.
    #[error(
        "the input is not valid JSON ({why}): give the task's input as JSON, such as 12, \
         '\"text\"' (quoted for the shell) or '[1, 2]' for a task of two parameters"
    )]
    Input {
        /// The parser's complaint.
        why: serde_json::Error,
    },
    /// A limit is out of range.
    #[error("{0}")]
    Limit(String),
}

/// What trying a task gave.
#[derive(Debug)]
pub struct Trial {
    /// The output, or why the task failed.
    pub outcome: Result<Box<RawJson>, TaskFailure>,
    /// Whether the output asks to stop its stage (`Flow::Stop`).
    pub stop: bool,
    /// Fuel the task burned.
    pub fuel: u64,
    /// The limits it ran under.
    pub limits: TaskLimits,
    /// Wall-clock time, in microseconds.
    pub micros: u64,
    /// What it logged.
    pub log: Option<String>,
}

/// The limits of a try: a manifest's defaults, with `fuel` and `memory_mb` when given.
///
/// # Errors
/// [`TrialError::Limit`] for zero fuel, or memory outside 1..=4096 MiB.
pub fn limits(fuel: Option<u64>, memory_mb: Option<u32>) -> Result<TaskLimits, TrialError> {
    let fuel = fuel.unwrap_or(DEFAULT_LIMITS.fuel);
    if fuel == 0 {
        return Err(TrialError::Limit("--fuel must be positive".into()));
    }
    let memory_mb = memory_mb.unwrap_or(DEFAULT_LIMITS.memory_mb);
    if !(1..=MAX_MEMORY_MB).contains(&memory_mb) {
        return Err(TrialError::Limit(format!(
            "--memory-mb must be between 1 and {MAX_MEMORY_MB}; it is {memory_mb}"
        )));
    }
    Ok(TaskLimits {
        fuel,
        memory_mb,
        ..DEFAULT_LIMITS
    })
}

/// Runs task `task` of the module at `module` on the JSON `input` under `limits`, as a
/// worker would.
///
/// # Errors
/// When the module cannot be read or run, has no such task, or the input is not JSON; the
/// task's own failure is the [`Trial`]'s outcome.
pub fn try_task(
    sandbox: &Sandbox,
    module: &Path,
    task: &str,
    input: &str,
    limits: TaskLimits,
) -> Result<Trial, TrialError> {
    let bytes = std::fs::read(module).map_err(|why| TrialError::Read {
        path: module.to_owned(),
        why,
    })?;
    let guest = sandbox.compile(&bytes).map_err(|why| TrialError::Module {
        path: module.to_owned(),
        why,
    })?;
    guest.check_task(task).map_err(|why| TrialError::Task {
        path: module.to_owned(),
        why,
    })?;
    let input =
        RawJson::from_string(input.trim().to_owned()).map_err(|why| TrialError::Input { why })?;
    let run = guest.run(task, input.get().as_bytes(), &Limits::from_task(&limits));
    Ok(Trial {
        outcome: run.outcome,
        stop: run.stop,
        fuel: run.fuel,
        limits,
        micros: run.micros,
        log: run.log,
    })
}

#[derive(Serialize)]
struct Json<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a RawJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<dipla_protocol::FailureKind>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stop: bool,
    fuel: u64,
    fuel_limit: u64,
    micros: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<&'a str>,
}

impl Trial {
    /// Whether the task succeeded.
    pub fn succeeded(&self) -> bool {
        self.outcome.is_ok()
    }

    /// Writes the trial for a person: the output's JSON alone on `out` (so it can be piped);
    /// the log, the failure and the fuel on `err`.
    ///
    /// # Errors
    /// When writing fails.
    pub fn write_text(&self, out: &mut impl Write, err: &mut impl Write) -> std::io::Result<()> {
        if let Some(log) = &self.log {
            writeln!(err, "the task logged:")?;
            for line in log.lines() {
                writeln!(err, "  | {line}")?;
            }
        }
        match &self.outcome {
            Ok(output) => {
                writeln!(out, "{}", output.get())?;
                if self.stop {
                    writeln!(err, "the output stops its stage (Flow::Stop)")?;
                }
            }
            Err(failure) => writeln!(err, "the task failed: {failure}")?,
        }
        writeln!(
            err,
            "fuel: {} of {} ({:.1} ms)",
            self.fuel,
            self.limits.fuel,
            self.micros as f64 / 1000.0
        )
    }

    /// Writes the trial as one JSON object: `output` or `error` and `kind` (as in result
    /// lines), `stop` when set, `fuel`, `fuel_limit`, `micros` and `log` when there is one.
    ///
    /// # Errors
    /// When writing fails.
    pub fn write_json(&self, out: &mut impl Write) -> std::io::Result<()> {
        let json = Json {
            output: self.outcome.as_ref().ok().map(|output| &**output),
            error: self.outcome.as_ref().err().map(ToString::to_string),
            kind: self.outcome.as_ref().err().map(|failure| failure.kind),
            stop: self.stop,
            fuel: self.fuel,
            fuel_limit: self.limits.fuel,
            micros: self.micros,
            log: self.log.as_deref(),
        };
        serde_json::to_writer(&mut *out, &json)?;
        writeln!(out)
    }
}

#[cfg(test)]
mod tests {
    use dipla_protocol::FailureKind;

    use super::*;

    /// `double` doubles a number; `fail` fails with a log.
    const GUEST: &str = r#"(module
        (memory (export "memory") 1)
        (data (i32.const 16) "\01odd")
        (data (i32.const 32) "looking\nat it")
        (global $log (mut i64) (i64.const 0))
        (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
        (func (export "dipla_log") (result i64) (global.get $log))
        (func (export "fail") (param i32 i32) (result i64)
            (global.set $log (i64.const 137438953485)) ;; 32 << 32 | 13
            (i64.const 68719476740)) ;; 16 << 32 | 4
        (func (export "two") (param i32 i32) (result i64)
            (i32.store16 (i32.const 0) (i32.const 0x3200)) ;; status 0, then "2"
            (i64.const 2))
        (@custom "dipla" "{\"abi\":1,\"task\":\"fail\"}\n{\"abi\":1,\"task\":\"two\"}\n"))"#;

    fn module() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("guest.wasm");
        std::fs::write(&path, wat::parse_str(GUEST).unwrap()).unwrap();
        (dir, path)
    }

    fn text(trial: &Trial) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        trial.write_text(&mut out, &mut err).unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn a_success_prints_its_output_alone_on_stdout() {
        let (_dir, path) = module();
        let sandbox = Sandbox::new().unwrap();
        let trial = try_task(&sandbox, &path, "two", "0", limits(None, None).unwrap()).unwrap();
        assert!(trial.succeeded());
        let (out, err) = text(&trial);
        assert_eq!(out, "2\n");
        assert!(
            err.starts_with(&format!("fuel: {} of 10000000000 (", trial.fuel)),
            "{err}"
        );
        assert!(trial.fuel > 0);
    }

    #[test]
    fn a_failure_prints_its_kind_message_and_log() {
        let (_dir, path) = module();
        let sandbox = Sandbox::new().unwrap();
        let trial = try_task(
            &sandbox,
            &path,
            "fail",
            "[1]",
            limits(Some(500), None).unwrap(),
        )
        .unwrap();
        assert_eq!(trial.outcome.as_ref().unwrap_err().kind, FailureKind::Guest);
        let (out, err) = text(&trial);
        assert_eq!(out, "");
        assert!(
            err.starts_with(
                "the task logged:\n  | looking\n  | at it\nthe task failed: task error: odd\nfuel: "
            ),
            "{err}"
        );
        assert!(err.contains(" of 500 ("), "{err}");
        let mut json = Vec::new();
        trial.write_json(&mut json).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(json["error"], "task error: odd");
        assert_eq!(json["kind"], "guest");
        assert_eq!(json["log"], "looking\nat it");
        assert_eq!(json["fuel_limit"], 500);
    }

    #[test]
    fn bad_usage_names_what_is_wrong() {
        let (dir, path) = module();
        let sandbox = Sandbox::new().unwrap();
        let limits = limits(None, None).unwrap();
        let error = try_task(&sandbox, &path, "three", "0", limits).unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("`three` is not a task of this module (its tasks: fail, two)"),
            "{error}"
        );
        let error = try_task(&sandbox, &path, "two", "[1,", limits).unwrap_err();
        assert!(matches!(error, TrialError::Input { .. }), "{error}");
        let missing = dir.path().join("missing.wasm");
        let error = try_task(&sandbox, &missing, "two", "0", limits).unwrap_err();
        assert!(error.to_string().starts_with("cannot read "), "{error}");
        let text = dir.path().join("text.wasm");
        std::fs::write(&text, "hello").unwrap();
        let error = try_task(&sandbox, &text, "two", "0", limits).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("is not a runnable Dipla guest: not a wasm module: it is text"),
            "{error}"
        );
        assert!(super::limits(Some(0), None).is_err());
        assert!(super::limits(None, Some(0)).is_err());
        assert!(super::limits(None, Some(5000)).is_err());
    }
}
