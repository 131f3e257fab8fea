//! `dipla-server run`: one job, from its manifest to its summary, journaled so that the
//! same command run again after a crash resumes it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dipla_sandbox::{Sandbox, SandboxError};

use super::{CreateError, results_writer};
use crate::directory::announce::AnnounceOptions;
use crate::store::journal::Fresh;
use crate::{ManifestError, RunOptions, Server, Summary, manifest};

/// A job to run, as the flags of `run` describe it.
#[derive(Debug, Clone)]
pub struct RunCommand {
    /// The job manifest.
    pub manifest: PathBuf,
    /// Where to write results (`None`: stdout).
    pub out: Option<PathBuf>,
    /// Where to journal the job.
    pub journal: Journal,
    /// Discard what the journal holds and run the whole job again.
    pub fresh: bool,
    /// How to run it; its `state` and `fresh` are set from `journal` and `fresh`.
    pub options: RunOptions,
    /// Whether and how to announce the project to a directory (it needs
    /// `options.listen`).
    pub announce: AnnounceOptions,
    /// How often to write a progress line when stderr is not a terminal.
    pub progress_every: Duration,
    /// Where to write the run's summary as JSON when it ends.
    pub summary_json: Option<PathBuf>,
}

/// Where a run is journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Journal {
    /// Nowhere: a crash loses its progress.
    Off,
    /// In this SQLite file, which must hold this job if it holds one.
    At(PathBuf),
    /// In `.dipla/STEM.state` beside the manifest, started afresh if it holds another job.
    BesideManifest,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Every task ended (or the job was cancelled through the API): what it did.
    Finished(Summary),
    /// It was interrupted; results written so far are kept.
    Interrupted,
}

/// Why a job could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The sandbox cannot start.
    #[error("cannot start the sandbox")]
    Sandbox(#[source] SandboxError),
    /// The manifest cannot run.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The folder of the default journal cannot be made.
    #[error(
        "cannot make {} for the job's journal (give --state FILE or --no-state)",
        dir.display()
    )]
    JournalDir {
        /// The folder.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server cannot start (its address, its journal, its TLS files...).
    #[error("cannot start the server")]
    Start(#[source] std::io::Error),
    /// The server's address cannot be read.
    #[error(transparent)]
    Address(std::io::Error),
    /// The announcement is not one a directory would take.
    #[error(transparent)]
    Announce(Box<dyn std::error::Error + Send + Sync>),
    /// An announced project must accept remote workers.
    #[error("--announce needs --listen")]
    AnnounceNeedsListen,
    /// The results file cannot be created.
    #[error(transparent)]
    Output(#[from] CreateError),
    /// The run broke off (results or the journal could not be written).
    #[error("the run failed")]
    Run(#[source] std::io::Error),
    /// The summary cannot be written.
    #[error("cannot write {}", path.display())]
    Summary {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Runs the job `command` describes until it ends or `interrupt` completes (Ctrl-C), saying
/// on stderr where it is journaled, where workers connect and, at the end, its summary.
///
/// # Errors
/// [`RunError`]: the job could not run, or its results could not be written.
pub async fn run(
    command: RunCommand,
    interrupt: impl Future<Output = std::io::Result<()>>,
) -> Result<RunEnd, RunError> {
    let sandbox = Sandbox::new().map_err(RunError::Sandbox)?;
    let job = manifest::load(&command.manifest, &sandbox)?;
    let (state, fresh) = journal(&command)?;
    let (listen, min_workers) = (command.options.listen, command.options.min_workers);
    let options = RunOptions {
        state: state.clone(),
        fresh,
        ..command.options
    };
    let server = Server::bind(job, options).await.map_err(RunError::Start)?;
    let url = say_started(&server, state.as_deref(), listen.is_some(), min_workers)?;
    announce(&server, &command.announce, &url, listen.is_some())?;
    let writer = results_writer(command.out.as_deref())?;
    let progress = tokio::spawn(crate::web::progress::report(
        server.handle(),
        command.progress_every,
    ));
    let summary = tokio::select! {
        summary = server.run(writer) => summary.map_err(RunError::Run)?,
        _ = interrupt => {
            eprintln!("dipla-server: interrupted; results written so far are kept");
            return Ok(RunEnd::Interrupted);
        }
    };
    progress.abort();
    eprintln!("dipla-server: {summary}");
    if let Some(path) = command.summary_json {
        std::fs::write(&path, format!("{:#}\n", summary.to_json()))
            .map_err(|source| RunError::Summary { path, source })?;
    }
    Ok(RunEnd::Finished(summary))
}

/// Where the run is journaled, and when what the journal holds is discarded.
fn journal(command: &RunCommand) -> Result<(Option<PathBuf>, Fresh), RunError> {
    let (state, fresh) = match &command.journal {
        Journal::Off => (None, Fresh::Never),
        Journal::At(state) => (Some(state.clone()), Fresh::Never),
        Journal::BesideManifest => (Some(default_state(&command.manifest)?), Fresh::IfAnotherJob),
    };
    Ok((state, if command.fresh { Fresh::Always } else { fresh }))
}

/// Says on stderr where the run is journaled, what it waits for, what it resumes and where
/// workers connect, which it returns.
fn say_started(
    server: &Server,
    state: Option<&Path>,
    listens: bool,
    min_workers: usize,
) -> Result<String, RunError> {
    match state {
        Some(state) => eprintln!("dipla-server: journaling the job in {}", state.display()),
        None => eprintln!("dipla-server: not journaling the job (--no-state)"),
    }
    if min_workers > 1 {
        eprintln!("dipla-server: giving out tasks once {min_workers} workers have joined");
    }
    let restored = server.handle().counts().restored;
    if restored > 0 {
        eprintln!(
            "dipla-server: resuming: {restored} results restored from the journal \
             (--fresh runs the job again from the start)"
        );
    }
    let url = server.worker_url().map_err(RunError::Address)?;
    if listens && url.starts_with("ws://") {
        eprintln!(
            "dipla-server: serving plain text (no --tls-cert): put a TLS reverse proxy \
             in front before exposing it beyond a trusted network"
        );
    }
    eprintln!("dipla-server: workers connect to {url}");
    Ok(url)
}

/// Starts announcing the project, if `announce` says so, with `url` for its workers (which
/// must be remote: the server `listens`).
fn announce(
    server: &Server,
    announce: &AnnounceOptions,
    url: &str,
    listens: bool,
) -> Result<(), RunError> {
    let job_name = server.handle().lock().job.name.clone();
    let announcer = announce
        .announcer(&job_name, url)
        .map_err(|error| RunError::Announce(error.into()))?;
    if let Some(announcer) = announcer {
        if !listens {
            return Err(RunError::AnnounceNeedsListen);
        }
        let handle = server.handle();
        crate::directory::announce::spawn(announcer, Arc::new(move || handle.connected()));
    }
    Ok(())
}

/// `.dipla/STEM.state` beside the manifest (the folder is made if need be).
///
/// # Errors
/// When the folder cannot be made.
pub fn default_state(manifest: &Path) -> Result<PathBuf, RunError> {
    let dir = manifest.parent().unwrap_or(Path::new(".")).join(".dipla");
    std::fs::create_dir_all(&dir).map_err(|source| RunError::JournalDir {
        dir: dir.clone(),
        source,
    })?;
    let stem = manifest
        .file_stem()
        .map_or("job".into(), |stem| stem.to_string_lossy());
    Ok(dir.join(format!("{stem}.state")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest whose one task, `id`, answers nothing (each task fails, quickly).
    const GUEST: &str = r#"(module
        (memory (export "memory") 1)
        (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 64))
        (func (export "id") (param i32 i32) (result i64) (i64.const 0))
        (@custom "dipla" "{\"abi\":1,\"task\":\"id\"}\n"))"#;

    /// A folder with the guest and a manifest of three tasks, `job.toml`.
    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.wasm"), wat::parse_str(GUEST).unwrap()).unwrap();
        std::fs::write(
            dir.path().join("job.toml"),
            "name = \"j\"\n[modules]\nm = \"m.wasm\"\n[[stages]]\nname = \"s\"\n\
             task = \"m.id\"\ninputs = { values = [1, 2, 3] }\n",
        )
        .unwrap();
        dir
    }

    fn command(dir: &Path, journal: Journal) -> RunCommand {
        RunCommand {
            manifest: dir.join("job.toml"),
            out: Some(dir.join("out.jsonl")),
            journal,
            fresh: false,
            options: RunOptions {
                local_workers: 1,
                ..RunOptions::default()
            },
            announce: AnnounceOptions::default(),
            progress_every: crate::web::progress::PLAIN_EVERY,
            summary_json: Some(dir.join("summary.json")),
        }
    }

    #[test]
    fn the_default_journal_sits_beside_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let state = default_state(&dir.path().join("squares.toml")).unwrap();
        assert_eq!(state, dir.path().join(".dipla").join("squares.state"));
        assert!(dir.path().join(".dipla").is_dir());

        let mut run = command(dir.path(), Journal::BesideManifest);
        assert_eq!(
            journal(&run).unwrap(),
            (
                Some(dir.path().join(".dipla").join("job.state")),
                Fresh::IfAnotherJob
            )
        );
        run.fresh = true;
        assert_eq!(journal(&run).unwrap().1, Fresh::Always);
        run.journal = Journal::Off;
        run.fresh = false;
        assert_eq!(journal(&run).unwrap(), (None, Fresh::Never));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_run_writes_its_results_and_summary_and_resumes() {
        let dir = folder();
        let run = command(dir.path(), Journal::BesideManifest);
        let end = super::run(run.clone(), std::future::pending())
            .await
            .unwrap();
        let RunEnd::Finished(summary) = end else {
            panic!("{end:?}")
        };
        assert_eq!((summary.tasks, summary.counts.failed), (3, 3));
        let results = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
        assert_eq!(results.lines().count(), 3);
        let json = std::fs::read_to_string(dir.path().join("summary.json")).unwrap();
        assert!(json.contains("\"failed\": 3"), "{json}");

        let RunEnd::Finished(again) = super::run(run, std::future::pending()).await.unwrap() else {
            panic!("not finished")
        };
        assert_eq!(again.counts.restored, 3);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_announced_run_needs_to_listen() {
        let dir = folder();
        let mut run = command(dir.path(), Journal::Off);
        run.announce.announce = Some("http://127.0.0.1:9".parse().unwrap());
        let error = super::run(run, std::future::pending()).await.unwrap_err();
        assert!(matches!(error, RunError::AnnounceNeedsListen), "{error}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_missing_manifest_is_a_manifest_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = super::run(command(dir.path(), Journal::Off), std::future::pending())
            .await
            .unwrap_err();
        assert!(matches!(error, RunError::Manifest(_)), "{error}");
    }
}
