//! `dipla-server audit RESULTS.jsonl --state FILE`: checks a results file against what the
//! workers signed, and re-runs a sample of its tasks in this machine's sandbox.
//!
//! Each result line with an output must match a receipt in the job's journal: an entry,
//! under a valid signature of the identity that sent it, naming the line's task, the stage's
//! module, and the sha256 of the line's input and output. An edited output (or input) matches
//! no receipt. A reduce stage's line is matched by its output among that stage's receipts
//! (its input is a summary); an explore stage's lines carry only part of what the worker
//! returned, so they are checked by re-running. A line with an error a worker reported (its
//! `kind` is one workers report) must match a receipt the same way, by the digest of the
//! failure ([`ReceiptEntry::failure_digest`]): workers sign failures like outputs. Failures
//! the server decided (an upstream failure, a stopped stage, an unverified output, workers
//! lost) are counted, not matched. Then `sample` lines chosen at random are run again from
//! the journaled module bytes, and their outputs must be identical.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use dipla_protocol::identity::ReceiptEntry;
use dipla_protocol::{
    FailureKind, ModuleHash, PublicKey, RawJson, Signature, TaskFailure, TaskLimits,
};
use dipla_sandbox::abi::AbiError;
use dipla_sandbox::{Limits, Sandbox};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// What the journal records of each stage, for the audit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord {
    /// The stage's name.
    pub name: String,
    /// Its module.
    pub module: ModuleHash,
    /// Its task export.
    pub export: String,
    /// Its tasks' limits.
    pub limits: TaskLimits,
    /// Whether its line is a reduce's (one line, input summarised).
    pub reduce: bool,
    /// Whether it explores (its lines hold part of what the task returned).
    pub explore: bool,
}

/// Why an audit could not run.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The journal cannot be read.
    #[error("cannot read the state file {path}: {problem}")]
    State {
        /// The file.
        path: PathBuf,
        /// What in it cannot be read.
        problem: JournalProblem,
    },
    /// The results file cannot be read.
    #[error("cannot read the results file {path}: {source}")]
    Results {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What in a journal an audit cannot read.
#[derive(Debug, thiserror::Error)]
pub enum JournalProblem {
    /// The database cannot be opened or queried.
    #[error("{0}")]
    Database(rusqlite::Error),
    /// A key the journal's `meta` table always has is missing.
    #[error("it has no {0} (not a Dipla journal?)")]
    NoMeta(&'static str),
    /// The stages it records are not readable.
    #[error("stages: {0}")]
    Stages(serde_json::Error),
    /// A receipt cannot be read.
    #[error("receipt {id}: {error}")]
    Receipt {
        /// The receipt's row.
        id: i64,
        /// Why.
        error: rusqlite::Error,
    },
    /// A module's bytes cannot be read.
    #[error("module {module}: {error}")]
    Module {
        /// The module.
        module: ModuleHash,
        /// Why.
        error: rusqlite::Error,
    },
    /// A module cannot be compiled to run again.
    #[error("module {module}: {error}")]
    Compile {
        /// The module.
        module: ModuleHash,
        /// Why.
        error: AbiError,
    },
}

/// What an audit found.
#[derive(Debug, Default)]
pub struct AuditReport {
    /// Result lines read.
    pub lines: u64,
    /// Lines whose output matched a valid receipt.
    pub receipted: u64,
    /// Lines with an error.
    pub failures: u64,
    /// ...of which matched a valid receipt (the rest the server decided).
    pub failures_receipted: u64,
    /// Explore lines, checked by re-running only if sampled.
    pub unreceiptable: u64,
    /// Lines run again in the sandbox.
    pub rerun: u64,
    /// What is wrong, one line each (`line N: ...`).
    pub problems: Vec<String>,
}

impl AuditReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

impl std::fmt::Display for AuditReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} lines: {} match a signed receipt, {} failures ({} signed by the worker that \
             reported them, the rest decided by the server), {} explore lines (checked by \
             re-running); {} re-run in the sandbox; {} problems",
            self.lines,
            self.receipted,
            self.failures,
            self.failures_receipted,
            self.unreceiptable,
            self.rerun,
            self.problems.len()
        )
    }
}

#[derive(Deserialize)]
struct Line {
    stage: String,
    index: u64,
    input: Box<RawJson>,
    #[serde(default, deserialize_with = "dipla_protocol::present::deserialize")]
    output: Option<Box<RawJson>>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    kind: Option<FailureKind>,
}

impl Line {
    /// The failure a worker reported, as it signed it, if the line holds one (its kind is
    /// one workers report, and it is not the server's "workers lost").
    fn reported_failure(&self) -> Option<TaskFailure> {
        let kind = self.kind?;
        let error = self.error.as_deref()?;
        let message = error.strip_prefix(&format!("{kind}: "))?;
        let lost = kind == FailureKind::Worker && message.contains("were lost while running");
        (!kind.is_server_only() && !lost).then(|| TaskFailure {
            kind,
            message: message.to_owned(),
        })
    }
}

/// Audits `results` against the journal `state`, re-running `sample` lines.
///
/// # Errors
/// When either file cannot be read (a failed check is a problem in the report, not an error).
pub fn audit(
    results: &Path,
    state: &Path,
    sample: usize,
    sandbox: &Sandbox,
) -> Result<AuditReport, AuditError> {
    let fail = |problem: JournalProblem| AuditError::State {
        path: state.to_owned(),
        problem,
    };
    let db = Connection::open_with_flags(state, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| fail(JournalProblem::Database(e)))?;
    let meta = |key: &'static str| -> Result<String, AuditError> {
        db.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()
        .map_err(|e| fail(JournalProblem::Database(e)))?
        .ok_or_else(|| fail(JournalProblem::NoMeta(key)))
    };
    let job = meta("fingerprint")?;
    let stages: Vec<StageRecord> =
        serde_json::from_str(&meta("stages")?).map_err(|e| fail(JournalProblem::Stages(e)))?;
    let mut checker = Checker {
        db: &db,
        job,
        receipts: HashMap::new(),
    };
    let file = std::fs::File::open(results).map_err(|source| AuditError::Results {
        path: results.to_owned(),
        source,
    })?;
    let mut report = AuditReport::default();
    let mut rerunnable = Vec::new();
    for (number, text) in std::io::BufReader::new(file).lines().enumerate() {
        let text = text.map_err(|source| AuditError::Results {
            path: results.to_owned(),
            source,
        })?;
        let number = number + 1;
        report.lines += 1;
        let problem = |report: &mut AuditReport, what: String| {
            report.problems.push(format!("line {number}: {what}"));
        };
        let line: Line = match serde_json::from_str(&text) {
            Ok(line) => line,
            Err(error) => {
                problem(&mut report, format!("not a result line: {error}"));
                continue;
            }
        };
        let Some(stage) = stages.iter().position(|s| s.name == line.stage) else {
            problem(
                &mut report,
                format!("the job has no stage {:?}", line.stage),
            );
            continue;
        };
        let record = &stages[stage];
        let Some(output) = &line.output else {
            report.failures += 1;
            let Some(failure) = line.reported_failure() else {
                continue;
            };
            let digest = ReceiptEntry::failure_digest(&failure);
            match checker.receipted_digest(stage, line.index, record.module, &line.input, digest) {
                Ok(true) => report.failures_receipted += 1,
                Ok(false) => problem(
                    &mut report,
                    format!(
                        "task {} of stage {:?}: no worker signed this failure for this input",
                        line.index, line.stage
                    ),
                ),
                Err(error) => return Err(fail(error)),
            }
            continue;
        };
        if record.explore {
            report.unreceiptable += 1;
            rerunnable.push((number, stage, line));
            continue;
        }
        let found = if record.reduce {
            checker.reduce_receipted(stage, output)
        } else {
            let digest = ReceiptEntry::digest(output.get());
            checker.receipted_digest(stage, line.index, record.module, &line.input, digest)
        };
        match found {
            Ok(true) => report.receipted += 1,
            Ok(false) => problem(
                &mut report,
                format!(
                    "task {} of stage {:?}: no worker signed this output for this input",
                    line.index, line.stage
                ),
            ),
            Err(error) => return Err(fail(error)),
        }
        if !record.reduce {
            rerunnable.push((number, stage, line));
        }
    }
    // A sample, spread at random over the lines.
    let mut seed = {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(0x5eed_u64) | 1
    };
    let chosen = sample.min(rerunnable.len());
    for i in 0..chosen {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let j = i + (seed % (rerunnable.len() - i) as u64) as usize;
        rerunnable.swap(i, j);
    }
    let mut guests = HashMap::new();
    for (number, stage, line) in rerunnable.into_iter().take(chosen) {
        let record = &stages[stage];
        let guest = match guests.get(&record.module) {
            Some(guest) => guest,
            None => {
                let bytes: Vec<u8> = db
                    .query_row(
                        "SELECT bytes FROM modules WHERE hash = ?1",
                        [record.module.to_string()],
                        |row| row.get(0),
                    )
                    .map_err(|error| {
                        fail(JournalProblem::Module {
                            module: record.module,
                            error,
                        })
                    })?;
                let guest = sandbox.compile(&bytes).map_err(|error| {
                    fail(JournalProblem::Compile {
                        module: record.module,
                        error,
                    })
                })?;
                guests.entry(record.module).or_insert(guest)
            }
        };
        let run = guest.run(
            &record.export,
            line.input.get().as_bytes(),
            &Limits::from_task(&record.limits),
        );
        report.rerun += 1;
        let expected = line.output.as_ref().map(|o| o.get().to_owned());
        let got = run.outcome.as_ref().ok().map(|output| {
            if record.explore {
                serde_json::from_str::<serde_json::Value>(output.get())
                    .ok()
                    .and_then(|v| v.get("output").map(ToString::to_string))
                    .unwrap_or_default()
            } else {
                output.get().to_owned()
            }
        });
        let same = match (&expected, &got) {
            (Some(expected), Some(got)) if record.explore => {
                serde_json::from_str::<serde_json::Value>(expected).ok()
                    == serde_json::from_str::<serde_json::Value>(got).ok()
            }
            (expected, got) => expected == got,
        };
        if !same {
            report.problems.push(format!(
                "line {number}: task {} of stage {:?} run again gives {} instead",
                line.index,
                line.stage,
                match (&got, &run.outcome) {
                    (Some(got), _) => got.clone(),
                    (None, Err(failure)) => format!("a failure ({failure})"),
                    (None, Ok(_)) => "nothing".into(),
                }
            ));
        }
    }
    Ok(report)
}

/// Looks up receipts, checking each one's signature once.
struct Checker<'a> {
    db: &'a Connection,
    job: String,
    /// Receipt id → its entries if its signature checks.
    receipts: HashMap<i64, Option<Vec<ReceiptEntry>>>,
}

impl Checker<'_> {
    /// The entries of receipt `id`, if its signature checks.
    fn entries(&mut self, id: i64) -> Result<Option<&Vec<ReceiptEntry>>, JournalProblem> {
        if !self.receipts.contains_key(&id) {
            let (identity, signature, body): (String, String, Vec<u8>) = self
                .db
                .query_row(
                    "SELECT identity, signature, body FROM receipts WHERE receipt = ?1",
                    [id],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .map_err(|error| JournalProblem::Receipt { id, error })?;
            let valid = match (
                identity.parse::<PublicKey>(),
                signature.parse::<Signature>(),
            ) {
                (Ok(key), Ok(signature)) => key.verifies(&body, &signature),
                _ => false,
            };
            let entries = valid
                .then(|| ReceiptEntry::parse(&self.job, &body))
                .flatten();
            self.receipts.insert(id, entries);
        }
        Ok(self.receipts[&id].as_ref())
    }

    /// Whether a valid receipt names task `index` of `stage` with this module, input and
    /// outcome digest.
    fn receipted_digest(
        &mut self,
        stage: usize,
        index: u64,
        module: ModuleHash,
        input: &RawJson,
        output: [u8; 32],
    ) -> Result<bool, JournalProblem> {
        let input = ReceiptEntry::digest(input.get());
        let rows = self.rows(
            "SELECT receipt, entry FROM receipted WHERE stage = ?1 AND idx = ?2",
            stage,
            Some(index),
        )?;
        for (receipt, entry) in rows {
            if let Some(entries) = self.entries(receipt)?
                && let Some(entry) = entries.get(entry)
                && entry.module == module
                && entry.input == input
                && entry.output == output
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether a valid receipt of one of `stage`'s tasks gave `output`.
    fn reduce_receipted(&mut self, stage: usize, output: &RawJson) -> Result<bool, JournalProblem> {
        let output = ReceiptEntry::digest(output.get());
        let rows = self.rows(
            "SELECT receipt, entry FROM receipted WHERE stage = ?1",
            stage,
            None,
        )?;
        for (receipt, entry) in rows {
            if let Some(entries) = self.entries(receipt)?
                && entries.get(entry).is_some_and(|e| e.output == output)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn rows(
        &self,
        query: &str,
        stage: usize,
        index: Option<u64>,
    ) -> Result<Vec<(i64, usize)>, JournalProblem> {
        let mut statement = self
            .db
            .prepare_cached(query)
            .map_err(JournalProblem::Database)?;
        let map = |row: &rusqlite::Row<'_>| {
            Ok((
                row.get::<_, i64>(0)?,
                usize::try_from(row.get::<_, i64>(1)?).unwrap_or(usize::MAX),
            ))
        };
        let rows = match index {
            Some(index) => statement.query_map(
                params![stage, i64::try_from(index).unwrap_or(i64::MAX)],
                map,
            ),
            None => statement.query_map(params![stage], map),
        }
        .map_err(JournalProblem::Database)?;
        rows.collect::<Result<_, _>>()
            .map_err(JournalProblem::Database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_null_output_line_holds_an_output() {
        let line: Line = serde_json::from_str(
            r#"{"stage":"s","index":0,"input":1,"output":null,"check":"unchecked"}"#,
        )
        .unwrap();
        assert_eq!(line.output.unwrap().get(), "null");
        let line: Line = serde_json::from_str(
            r#"{"stage":"s","index":0,"input":1,"error":"panic: x","kind":"panic","check":"unchecked"}"#,
        )
        .unwrap();
        assert!(line.output.is_none());
        assert_eq!(line.reported_failure().unwrap().message, "x");
    }
}
