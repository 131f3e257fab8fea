//! The job's journal: a SQLite database (WAL mode) holding the job's identity, its modules
//! by content hash, and, in the order they happened, every final result, every goal met,
//! every input an explore stage discovered and every result revoked, plus the records of the
//! workers that served it. A server killed at any point and started again on the same file
//! replays it ([`dipla_core::Coordinator::restore`]) and carries on: results
//! accepted before are not computed again, and the output is the same as an uninterrupted
//! run's.
//!
//! The coordinator sends [`Record`]s down a channel under its lock (no I/O there); a writer
//! thread commits them in batches, one transaction per batch, so the journal costs the hot
//! path one channel send and one atomic count. A crash loses at most the batch being
//! written: those tasks simply run again. The counts of records sent and committed
//! ([`Backlog`]) tell when what happened so far is durable.
//!
//! ```sql
//! meta    (key PRIMARY KEY, value)                -- schema, job name, fingerprint, description
//! modules (hash PRIMARY KEY, name, bytes)         -- content-addressed (sha256)
//! runs    (run PRIMARY KEY, started, finished, summary)
//! events  (seq PRIMARY KEY, run, kind, stage, idx, output, failure, verdict, input, identity)
//!         -- kind: result | goal | discovered | revoked
//! workers (seq PRIMARY KEY, run, name, record)    -- a worker's record when it left (JSON)
//! identities (key PRIMARY KEY, record)            -- trust records by public key (JSON)
//! receipts (receipt PRIMARY KEY, run, identity, signature, body)  -- as signed
//! receipted (stage, idx, receipt, entry)          -- which receipt entry answered a task
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;

use dipla_protocol::{RawJson, TaskFailure};
use rusqlite::{Connection, OptionalExtension, params};

use dipla_core::{Record, TaskRef};

use crate::{Inputs, Job, Part, Source};

/// The schema this server writes; a journal with another one is refused.
const SCHEMA: &str = "2";

/// The tables, made if missing.
const TABLES: &str = "
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS modules (
        hash TEXT PRIMARY KEY, name TEXT NOT NULL, bytes BLOB NOT NULL);
    CREATE TABLE IF NOT EXISTS runs (
        run INTEGER PRIMARY KEY, started TEXT NOT NULL, finished TEXT, summary TEXT);
    CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY, run INTEGER NOT NULL, kind TEXT NOT NULL,
        stage INTEGER NOT NULL, idx INTEGER, output TEXT, failure TEXT, verdict TEXT,
        input TEXT, identity TEXT);
    CREATE TABLE IF NOT EXISTS workers (
        seq INTEGER PRIMARY KEY, run INTEGER NOT NULL, name TEXT NOT NULL,
        record TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS identities (key TEXT PRIMARY KEY, record TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS receipts (
        receipt INTEGER PRIMARY KEY, run INTEGER NOT NULL, identity TEXT NOT NULL,
        signature TEXT NOT NULL, body BLOB NOT NULL);
    CREATE TABLE IF NOT EXISTS receipted (
        stage INTEGER NOT NULL, idx INTEGER NOT NULL, receipt INTEGER NOT NULL,
        entry INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS receipted_task ON receipted (stage, idx);";

/// The most records committed in one transaction.
const BATCH: u64 = 8192;

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite refused to open or read it.
    #[error("cannot use the state file {path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// Another server has it open.
    #[error("the state file {path} is in use by another dipla-server")]
    Busy {
        /// The file.
        path: PathBuf,
    },
    /// It journals a different job.
    #[error(
        "the state file {path} holds another job ({theirs}); this manifest is job {ours}: \
         give --fresh to discard that journal and start over, or another --state"
    )]
    OtherJob {
        /// The file.
        path: PathBuf,
        /// The journaled job's name and fingerprint.
        theirs: String,
        /// This job's.
        ours: String,
    },
    /// Its contents make no sense for this job.
    #[error("the state file {path} is damaged: {why}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// When to discard what a state file holds and start the job over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fresh {
    /// Never: resume this job, refuse another job's journal.
    #[default]
    Never,
    /// When it journals another job (the manifest, its inputs or a module changed): that
    /// job can no longer be resumed from this manifest.
    IfAnotherJob,
    /// Always.
    Always,
}

/// An open journal: its writer thread commits what the coordinator sends.
pub struct Journal {
    path: PathBuf,
    run: i64,
    writer: JoinHandle<Result<Connection, JournalError>>,
}

/// A journal just opened: what it held, to replay, and where to send what happens next.
pub struct Opened {
    /// The journal.
    pub journal: Journal,
    /// The records of earlier runs, in order (empty for a new job).
    pub records: Vec<Record>,
    /// The runs before this one.
    pub earlier_runs: i64,
    /// Where the coordinator sends records; the writer stops once every clone is dropped.
    pub sink: Sink,
}

/// Where records go to be journaled: a channel to the writer thread, which counts what it
/// has committed, so that anyone can tell whether what happened so far is durable.
#[derive(Debug, Clone)]
pub struct Sink {
    sender: Sender<Record>,
    tally: Arc<Tally>,
}

/// Records handed to the journal and records committed, each counted from the run's start.
#[derive(Debug, Default)]
struct Tally {
    sent: AtomicU64,
    committed: AtomicU64,
}

/// How far the journal's writer has got: everything sent is durable once `committed`
/// reaches `sent` (a crash loses the records in between, whose tasks then run again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Backlog {
    /// Records handed to the journal in this run.
    pub sent: u64,
    /// Of those, the records committed to the file.
    pub committed: u64,
}

impl Backlog {
    /// Records sent and not yet committed: what a crash now would lose.
    #[must_use]
    pub fn pending(&self) -> u64 {
        self.sent.saturating_sub(self.committed)
    }
}

impl Sink {
    /// A sink and the receiving end of its channel, for a writer of one's own, which
    /// reports what it made durable with [`Drain::committed`].
    #[must_use]
    pub fn channel() -> (Self, Drain) {
        let (sender, receiver) = std::sync::mpsc::channel();
        let tally = Arc::<Tally>::default();
        let drain = Drain {
            receiver,
            tally: tally.clone(),
        };
        (Self { sender, tally }, drain)
    }

    /// Hands `record` to the journal. Counted even when the writer has stopped (after a
    /// write failed), so the backlog then shows that nothing more becomes durable.
    pub fn send(&self, record: Record) {
        self.tally.sent.fetch_add(1, Ordering::AcqRel);
        let _ = self.sender.send(record);
    }

    /// How far the writer has got.
    #[must_use]
    pub fn backlog(&self) -> Backlog {
        // Committed first: it never passes sent, so the pair read is consistent.
        let committed = self.tally.committed.load(Ordering::Acquire);
        Backlog {
            sent: self.tally.sent.load(Ordering::Acquire),
            committed,
        }
    }
}

/// The writer's end of a [`Sink`]: the records sent, in order, until every sink is dropped.
#[derive(Debug)]
pub struct Drain {
    receiver: Receiver<Record>,
    tally: Arc<Tally>,
}

impl Drain {
    /// The next record, waiting for it; `None` once every sink is gone.
    pub fn recv(&self) -> Option<Record> {
        self.receiver.recv().ok()
    }

    /// The next record if one waits.
    pub fn try_recv(&self) -> Option<Record> {
        self.receiver.try_recv().ok()
    }

    /// The records waiting now.
    pub fn try_iter(&self) -> impl Iterator<Item = Record> + '_ {
        self.receiver.try_iter()
    }

    /// Reports `records` more of those received as durable.
    pub fn committed(&self, records: u64) {
        self.tally.committed.fetch_add(records, Ordering::AcqRel);
    }
}

impl Journal {
    /// Opens (or creates) the journal at `path` for `job`, locked for this process;
    /// `fresh` says when to discard what it held.
    ///
    /// # Errors
    /// When the file cannot be opened or is in use, holds another job (and `fresh` says to
    /// refuse it), or is damaged.
    pub fn open(path: &Path, job: &Job, fresh: Fresh) -> Result<Opened, JournalError> {
        let sqlite = |source| JournalError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let busy = |error: rusqlite::Error| match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                JournalError::Busy {
                    path: path.to_owned(),
                }
            }
            _ => sqlite(error),
        };
        let mut db = Connection::open(path).map_err(sqlite)?;
        // The first write takes the lock and this connection keeps it: a second server on the
        // same file fails at once rather than interleaving with this one.
        db.execute_batch(
            "PRAGMA locking_mode = EXCLUSIVE;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;",
        )
        .map_err(busy)?;
        db.execute_batch(&format!("BEGIN IMMEDIATE; {TABLES} COMMIT;"))
            .map_err(busy)?;
        let fingerprint = fingerprint(job);
        let ours = format!("{:?} {}", job.name, &fingerprint[..16]);
        let meta = |db: &Connection, key: &str| {
            db.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get::<_, String>(0)
            })
            .optional()
        };
        let theirs = meta(&db, "fingerprint").map_err(sqlite)?;
        let another = theirs
            .as_deref()
            .is_some_and(|theirs| theirs != fingerprint);
        if another {
            let name = meta(&db, "job").map_err(sqlite)?.unwrap_or_default();
            let theirs = theirs.clone().unwrap_or_default();
            let theirs = format!("{name:?} {}", &theirs[..16.min(theirs.len())]);
            match fresh {
                Fresh::Never => {
                    return Err(JournalError::OtherJob {
                        path: path.to_owned(),
                        theirs,
                        ours,
                    });
                }
                Fresh::IfAnotherJob => tracing::warn!(
                    state = %path.display(),
                    %theirs,
                    "the state file journals an earlier version of this job (its manifest, \
                     inputs or modules changed): starting afresh"
                ),
                Fresh::Always => {}
            }
        }
        if fresh == Fresh::Always || another || theirs.is_none() {
            let tx = db.transaction().map_err(sqlite)?;
            tx.execute_batch(
                "DELETE FROM meta; DELETE FROM modules; DELETE FROM runs;
                 DELETE FROM events; DELETE FROM workers;",
            )
            .map_err(sqlite)?;
            for (key, value) in [
                ("schema", SCHEMA.to_owned()),
                ("job", job.name.clone()),
                ("fingerprint", fingerprint),
                ("description", describe(job)),
                ("stages", stage_records(job)),
            ] {
                tx.execute("INSERT INTO meta VALUES (?1, ?2)", params![key, value])
                    .map_err(sqlite)?;
            }
            for module in &job.modules {
                tx.execute(
                    "INSERT OR IGNORE INTO modules VALUES (?1, ?2, ?3)",
                    params![module.hash.to_string(), module.name, &module.bytes[..]],
                )
                .map_err(sqlite)?;
            }
            tx.commit().map_err(sqlite)?;
        }
        let schema = meta(&db, "schema").map_err(sqlite)?;
        if schema.as_deref() != Some(SCHEMA) {
            return Err(JournalError::Damaged {
                path: path.to_owned(),
                why: format!("its schema is {schema:?}; this server reads schema {SCHEMA:?}"),
            });
        }
        let records = read_records(&db, job.stages.len()).map_err(|error| match error {
            ReadError::Sqlite(source) => sqlite(source),
            ReadError::Bad(why) => JournalError::Damaged {
                path: path.to_owned(),
                why,
            },
        })?;
        let earlier_runs: i64 = db
            .query_row("SELECT COUNT(*) FROM runs", [], |row| row.get(0))
            .map_err(sqlite)?;
        db.execute("INSERT INTO runs (started) VALUES (datetime('now'))", [])
            .map_err(sqlite)?;
        let run = db.last_insert_rowid();
        let (sink, drain) = Sink::channel();
        let owned = path.to_owned();
        let writer = std::thread::Builder::new()
            .name("dipla-journal".into())
            .spawn(move || {
                write(db, run, &drain).map_err(|source| {
                    tracing::error!(
                        state = %owned.display(),
                        %source,
                        "cannot write the job's journal; results from now on are not journaled"
                    );
                    JournalError::Sqlite {
                        path: owned,
                        source,
                    }
                })
            })
            .map_err(|error| JournalError::Damaged {
                path: path.to_owned(),
                why: format!("cannot start its writer thread: {error}"),
            })?;
        Ok(Opened {
            journal: Self {
                path: path.to_owned(),
                run,
                writer,
            },
            records,
            earlier_runs,
            sink,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the writer to commit everything sent (every sink must have been dropped),
    /// then records that this run ended, with its summary.
    ///
    /// # Errors
    /// When a write failed.
    pub fn close(self, summary: &str) -> Result<(), JournalError> {
        let db = self.writer.join().map_err(|_| JournalError::Damaged {
            path: self.path.clone(),
            why: "its writer thread panicked".into(),
        })??;
        db.execute(
            "UPDATE runs SET finished = datetime('now'), summary = ?1 WHERE run = ?2",
            params![summary, self.run],
        )
        .map_err(|source| JournalError::Sqlite {
            path: self.path.clone(),
            source,
        })?;
        Ok(())
    }
}

/// Commits what arrives, a batch per transaction, until every sink is gone.
fn write(mut db: Connection, run: i64, records: &Drain) -> rusqlite::Result<Connection> {
    while let Some(first) = records.recv() {
        let tx = db.transaction()?;
        let mut written: u64 = 0;
        {
            let mut event = tx.prepare_cached(
                "INSERT INTO events (run, kind, stage, idx, output, failure, verdict, input, identity)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut next = Some(first);
            while let Some(record) = next.take() {
                insert(&tx, &mut event, run, record)?;
                written += 1;
                if written < BATCH {
                    next = records.try_recv();
                }
            }
        }
        tx.commit()?;
        records.committed(written);
    }
    Ok(db)
}

fn insert(
    tx: &rusqlite::Transaction<'_>,
    event: &mut rusqlite::CachedStatement<'_>,
    run: i64,
    record: Record,
) -> rusqlite::Result<()> {
    let index = |task: TaskRef| i64::try_from(task.index).unwrap_or(i64::MAX);
    match record {
        Record::Result {
            task,
            outcome,
            check,
            by,
        } => {
            let (output, failure) = match outcome {
                Ok(output) => (Some(output.get().to_owned()), None),
                Err(failure) => (
                    None,
                    Some(serde_json::to_string(&failure).expect("a failure serialises")),
                ),
            };
            event.execute(params![
                run,
                "result",
                task.stage,
                index(task),
                output,
                failure,
                check.to_string(),
                None::<String>,
                by
            ])?;
        }
        Record::Goal(task) | Record::Revoked(task) => {
            let kind = if matches!(record, Record::Goal(_)) {
                "goal"
            } else {
                "revoked"
            };
            event.execute(params![
                run,
                kind,
                task.stage,
                index(task),
                None::<String>,
                None::<String>,
                None::<String>,
                None::<String>,
                None::<String>
            ])?;
        }
        Record::Discovered { stage, input } => {
            event.execute(params![
                run,
                "discovered",
                stage,
                None::<i64>,
                None::<String>,
                None::<String>,
                None::<String>,
                input.get(),
                None::<String>
            ])?;
        }
        Record::Worker { name, record } => {
            let record = serde_json::to_string(&record).expect("a record serialises");
            tx.prepare_cached("INSERT INTO workers (run, name, record) VALUES (?1, ?2, ?3)")?
                .execute(params![run, name, record])?;
        }
        Record::Identity { key, credibility } => {
            let record = serde_json::to_string(&credibility).expect("a record serialises");
            tx.prepare_cached("INSERT OR REPLACE INTO identities (key, record) VALUES (?1, ?2)")?
                .execute(params![key, record])?;
        }
        Record::Receipt {
            identity,
            signature,
            body,
            tasks,
        } => {
            tx.prepare_cached(
                "INSERT INTO receipts (run, identity, signature, body) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![run, identity, signature, body])?;
            let receipt = tx.last_insert_rowid();
            let mut answered = tx.prepare_cached(
                "INSERT INTO receipted (stage, idx, receipt, entry) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (task, entry) in tasks {
                answered.execute(params![
                    task.stage,
                    i64::try_from(task.index).unwrap_or(i64::MAX),
                    receipt,
                    entry
                ])?;
            }
        }
    }
    Ok(())
}

enum ReadError {
    Sqlite(rusqlite::Error),
    Bad(String),
}

impl From<rusqlite::Error> for ReadError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Sqlite(error)
    }
}

/// The events of earlier runs, in order, checked against the job's number of stages.
fn read_records(db: &Connection, stages: usize) -> Result<Vec<Record>, ReadError> {
    let mut records = Vec::new();
    let mut identities = db.prepare("SELECT key, record FROM identities")?;
    let mut rows = identities.query([])?;
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        let record: String = row.get(1)?;
        let credibility = serde_json::from_str(&record)
            .map_err(|e| ReadError::Bad(format!("identity {key}: {e}")))?;
        records.push(Record::Identity { key, credibility });
    }
    let mut query = db.prepare(
        "SELECT seq, kind, stage, idx, output, failure, verdict, input, identity FROM events \
         ORDER BY seq",
    )?;
    let mut rows = query.query([])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let kind: String = row.get(1)?;
        let stage: i64 = row.get(2)?;
        let bad = |why: String| ReadError::Bad(format!("event {seq} ({kind}): {why}"));
        let stage = usize::try_from(stage)
            .ok()
            .filter(|&stage| stage < stages)
            .ok_or_else(|| bad(format!("stage {stage} does not exist")))?;
        let task = || -> Result<TaskRef, ReadError> {
            let index: Option<i64> = row.get(3)?;
            let index = index
                .and_then(|index| u64::try_from(index).ok())
                .ok_or_else(|| bad("no task index".into()))?;
            Ok(TaskRef { stage, index })
        };
        let json =
            |text: String| RawJson::from_string(text).map_err(|e| bad(format!("bad JSON: {e}")));
        let record = match kind.as_str() {
            "result" => {
                let output: Option<String> = row.get(4)?;
                let failure: Option<String> = row.get(5)?;
                let verdict: String = row.get(6)?;
                let outcome = match (output, failure) {
                    (Some(output), None) => Ok(json(output)?),
                    (None, Some(failure)) => Err(serde_json::from_str::<TaskFailure>(&failure)
                        .map_err(|e| bad(format!("bad failure: {e}")))?),
                    _ => return Err(bad("a result needs an output or a failure".into())),
                };
                Record::Result {
                    task: task()?,
                    outcome,
                    check: verdict.parse().map_err(bad)?,
                    by: row.get(8)?,
                }
            }
            "goal" => Record::Goal(task()?),
            "revoked" => Record::Revoked(task()?),
            "discovered" => {
                let input: Option<String> = row.get(7)?;
                let input = input.ok_or_else(|| bad("no input".into()))?;
                Record::Discovered {
                    stage,
                    input: json(input)?,
                }
            }
            _ => return Err(bad("unknown kind".into())),
        };
        records.push(record);
    }
    Ok(records)
}

/// The sha256 of everything that decides a job's results: its stages, their tasks and
/// options, their inputs, and the modules' hashes. Another manifest for the same job has the
/// same fingerprint; any change that could change a result changes it.
pub fn fingerprint(job: &Job) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(describe(job));
    let mut values = |inputs: &Inputs| {
        if let Inputs::Values(values) = inputs {
            for value in values {
                hasher.update(value.get());
                hasher.update(b"\n");
            }
        }
    };
    for stage in &job.stages {
        match &stage.source {
            Source::List(inputs) => values(inputs),
            Source::Zip(parts) => {
                for part in parts {
                    if let Part::List(inputs) = part {
                        values(inputs);
                    }
                }
            }
            Source::Scatter { value, .. } => values(&Inputs::Values(vec![value.clone()])),
            Source::Stage(_) | Source::Reduce { .. } => {}
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// What an audit needs of each stage, as JSON.
fn stage_records(job: &Job) -> String {
    let records: Vec<crate::store::audit::StageRecord> = job
        .stages
        .iter()
        .map(|stage| crate::store::audit::StageRecord {
            name: stage.name.clone(),
            module: stage.module,
            export: stage.export.clone(),
            limits: stage.limits,
            reduce: matches!(stage.source, Source::Reduce { .. }),
            explore: stage.explore.is_some(),
        })
        .collect();
    serde_json::to_string(&records).expect("records serialise")
}

/// The job in words: each stage's task, module, source and options (listed inputs counted;
/// the fingerprint hashes them).
fn describe(job: &Job) -> String {
    use std::fmt::Write;
    let inputs = |inputs: &Inputs| match inputs {
        Inputs::Range { start, end } => format!("{start}..{end}"),
        Inputs::Values(values) => format!("{} values", values.len()),
    };
    let mut text = format!("job {:?}\n", job.name);
    for stage in &job.stages {
        let source = match &stage.source {
            Source::List(list) => inputs(list),
            Source::Stage(source) => format!("stage #{source}"),
            Source::Zip(parts) => {
                let parts: Vec<String> = parts
                    .iter()
                    .map(|part| match part {
                        Part::List(list) => inputs(list),
                        Part::Stage(source) => format!("stage #{source}"),
                    })
                    .collect();
                format!("zip [{}]", parts.join(", "))
            }
            Source::Scatter { count, .. } => format!("a value scattered {count} ways"),
            Source::Reduce { stage, fan_in } => format!("reduce of stage #{stage} by {fan_in}"),
        };
        let _ = writeln!(
            text,
            "stage {:?}: {}.{} over {source} ({} tasks); limits {:?}; max_attempts {}; \
             stop_after {} (stoppable {}); explore {:?}; replicate {:?}; quorum {}; \
             verify {:?}; deadline {:?}",
            stage.name,
            stage.module,
            stage.export,
            stage.tasks,
            stage.limits,
            stage.max_attempts,
            stage.stop_after,
            stage.stoppable,
            stage.explore,
            stage.replicate,
            stage.quorum,
            stage.verify.as_ref().map(|(m, e)| format!("{m}.{e}")),
            stage.deadline,
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use dipla_core::Check;
    use dipla_protocol::FailureKind;

    use super::*;

    fn json(text: &str) -> Box<RawJson> {
        RawJson::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn records_read_back_as_written_and_bad_ones_are_named() {
        let mut db = Connection::open_in_memory().unwrap();
        db.execute_batch(TABLES).unwrap();
        let task = |stage, index| TaskRef { stage, index };
        let records = vec![
            Record::Result {
                task: task(0, 3),
                outcome: Ok(json(r#"{"a":[1,2]}"#)),
                check: Check::Replicated(2),
                by: None,
            },
            // A task that returned `null` has an output like any other.
            Record::Result {
                task: task(0, 4),
                outcome: Ok(json("null")),
                check: Check::Verified,
                by: None,
            },
            Record::Result {
                task: task(1, 0),
                outcome: Err(TaskFailure {
                    kind: FailureKind::Panic,
                    message: "boom".into(),
                }),
                check: Check::Unchecked,
                by: Some("ab".repeat(32)),
            },
            Record::Discovered {
                stage: 1,
                input: json("[4, 5]"),
            },
            Record::Goal(task(1, 7)),
            Record::Worker {
                name: "w".into(),
                record: dipla_core::WorkerRecord {
                    identity: "ab".repeat(32),
                    cores: 2,
                    running: 0,
                    claimed: None,
                    measured: Some(3.5),
                    speed: 3.5,
                    results: 9,
                    note: None,
                    trusted: false,
                    paused: false,
                    agreed: 1,
                    rejected: 0,
                },
            },
            Record::Revoked(task(0, 3)),
            Record::Identity {
                key: "cd".repeat(32),
                credibility: dipla_core::Credibility {
                    agreed: 3,
                    rejected: 1,
                    untrusted: Some("lied".into()),
                    speed: Some(2.5),
                    accepted: 40,
                    strikes: 2,
                },
            },
        ];
        let (sink, drain) = Sink::channel();
        for record in records.clone() {
            sink.send(record);
        }
        let backlog = sink.backlog();
        drop(sink);
        db = write(db, 1, &drain).unwrap();
        let sent = records.len() as u64;
        assert_eq!(backlog, Backlog { sent, committed: 0 });
        assert_eq!(drain.tally.committed.load(Ordering::Acquire), sent);
        let read = read_records(&db, 2).map_err(|_| "unreadable").unwrap();
        // Identities come first (their latest records), then events in order.
        let expected: Vec<String> = records
            .iter()
            .filter(|r| matches!(r, Record::Identity { .. }))
            .chain(
                records
                    .iter()
                    .filter(|r| !matches!(r, Record::Worker { .. } | Record::Identity { .. })),
            )
            .map(|r| format!("{r:?}"))
            .collect();
        let read: Vec<String> = read.iter().map(|r| format!("{r:?}")).collect();
        assert_eq!(read, expected);
        let workers: String = db
            .query_row("SELECT record FROM workers", [], |row| row.get(0))
            .unwrap();
        assert!(workers.contains(r#""trusted":false"#), "{workers}");

        // A journal of a job with fewer stages is refused, naming the event.
        match read_records(&db, 1) {
            Err(ReadError::Bad(why)) => assert!(why.contains("stage 1 does not exist"), "{why}"),
            _ => panic!("a stage out of range must be refused"),
        }
        db.execute("UPDATE events SET verdict = 'trusted' WHERE seq = 1", [])
            .unwrap();
        match read_records(&db, 2) {
            Err(ReadError::Bad(why)) => assert!(why.contains("not a check"), "{why}"),
            _ => panic!("a bad verdict must be refused"),
        }
    }
}
