//! `dipla-server run`: one job, from its manifest to its summary, journaled so that the
//! same command run again after a crash resumes it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dipla_sandbox::{Sandbox, SandboxError};

use super::{CreateError, results_writer};
use crate::announce::AnnounceOptions;
use crate::journal::Fresh;
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
    let RunCommand {
        manifest: path,
        out,
        journal,
        fresh: discard,
        options,
        announce,
        progress_every,
        summary_json,
    } = command;
    let sandbox = Sandbox::new().map_err(RunError::Sandbox)?;
    let job = manifest::load(&path, &sandbox)?;
    let (state, fresh) = match journal {
        Journal::Off => (None, Fresh::Never),
        Journal::At(state) => (Some(state), Fresh::Never),
        Journal::BesideManifest => (Some(default_state(&path)?), Fresh::IfAnotherJob),
    };
    let fresh = if discard { Fresh::Always } else { fresh };
    let (listen, min_workers) = (options.listen, options.min_workers);
    let options = RunOptions {
        state: state.clone(),
        fresh,
        ..options
    };
    let server = Server::bind(job, options).await.map_err(RunError::Start)?;
    match &state {
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
    if listen.is_some() && url.starts_with("ws://") {
        eprintln!(
            "dipla-server: serving plain text (no --tls-cert): put a TLS reverse proxy \
             in front before exposing it beyond a trusted network"
        );
    }
    eprintln!("dipla-server: workers connect to {url}");
    let job_name = server.handle().lock().job.name.clone();
    let announcer = announce
        .announcer(&job_name, &url)
        .map_err(|error| RunError::Announce(error.into()))?;
    if let Some(announcer) = announcer {
        if listen.is_none() {
            return Err(RunError::AnnounceNeedsListen);
        }
        let handle = server.handle();
        crate::announce::spawn(announcer, Arc::new(move || handle.connected()));
    }
    let writer = results_writer(out.as_deref())?;
    let progress = tokio::spawn(crate::progress::report(server.handle(), progress_every));
    let summary = tokio::select! {
        summary = server.run(writer) => summary.map_err(RunError::Run)?,
        _ = interrupt => {
            eprintln!("dipla-server: interrupted; results written so far are kept");
            return Ok(RunEnd::Interrupted);
        }
    };
    progress.abort();
    eprintln!("dipla-server: {summary}");
    if let Some(path) = summary_json {
        std::fs::write(&path, format!("{:#}\n", summary.to_json()))
            .map_err(|source| RunError::Summary { path, source })?;
    }
    Ok(RunEnd::Finished(summary))
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
