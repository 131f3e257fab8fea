//! `dipla-server serve`: a long-running server that takes jobs over its HTTP API and runs
//! them side by side on one pool of workers ([`crate::net::hub`]).
//!
//! A submitted job is a manifest with the files it names (modules, input files), kept in
//! the data folder under `jobs/ID/`: `manifest.toml`, `files/SHA256` with `files.json`
//! mapping each path as written to its content, the journal `job.state`, the results
//! `results.jsonl`, and `ended.json` once it ended. A server started again on the same
//! folder lists every job, and resumes those that had not ended from their journals.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use dipla_protocol::ModuleHash;
use dipla_sandbox::Sandbox;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::net::gate::Gate;
use crate::net::hub::Hub;
use crate::net::state::Handle;
use crate::net::transport::Venue;
use crate::run::engine::{Engine, LocalWorkers};
use crate::run::server::{close_journal, open_journal, restore, summarize, write_results};
use crate::store::journal::Fresh;
use crate::web::health::HealthInfo;
use crate::{Job, RunOptions, Summary, manifest};
use dipla_core::Keep;

/// The largest submission accepted (a manifest with its modules and input files).
pub const MAX_SUBMISSION_BYTES: usize = 512 << 20;

/// The name a job's manifest is stored under in its folder.
const STORED_MANIFEST: &str = "manifest.toml";

/// How long a driver's job lives without word from its driver (`--driver-timeout-secs`):
/// then the driver is taken as gone (it ended without closing the job, was killed, or lost
/// its connection) and the job is cancelled.
pub const DEFAULT_DRIVER_TIMEOUT: Duration = Duration::from_secs(60);

/// A job as submitted: the manifest's text and the files it names, by path as written.
#[derive(Debug, Serialize, Deserialize)]
pub struct Submission {
    /// The manifest (TOML).
    pub manifest: String,
    /// Each file the manifest names, base64-encoded, by its path as the manifest writes it.
    pub files: BTreeMap<String, String>,
    /// The manifest's file name on the submitter's machine (`job.toml`), so that errors name
    /// the file the user wrote; `manifest.toml` when absent. Only its printable first 128
    /// characters are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_name: Option<String>,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Running, or waiting for workers.
    Running,
    /// Every task ended and none failed.
    Succeeded,
    /// Every task ended and some failed.
    Failed,
    /// Cancelled through the API.
    Cancelled,
    /// The server could not run it (its journal or results could not be written).
    Broken,
}

impl JobState {
    /// Whether the job has ended.
    pub fn ended(self) -> bool {
        self != Self::Running
    }
}

/// What is known of a job once it ended (`ended.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ended {
    state: JobState,
    summary: String,
    tasks: u64,
    succeeded: u64,
    failed: u64,
}

/// What `meta.json` keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    id: String,
    name: String,
    /// Seconds since the Unix epoch.
    submitted: u64,
    /// Nanoseconds since the Unix epoch, to list jobs in the order they came.
    #[serde(default)]
    submitted_nanos: u128,
    /// A job a remote driver builds as it runs ([`crate::web::mirror`]).
    #[serde(default)]
    driver: bool,
}

/// One job of the server.
pub(crate) struct Entry {
    meta: Meta,
    dir: PathBuf,
    /// The running job (`None` once it ended and was loaded from disk).
    handle: Option<Handle>,
    state: watch::Sender<JobState>,
    ended: Mutex<Option<Ended>>,
    /// For a driver's job: set when the driver closes it.
    closed: watch::Sender<bool>,
    /// For a driver's job: when its driver was last heard from.
    heard: Mutex<Instant>,
}

impl Entry {
    /// Where a driver's job writes what its coordinator decides ([`crate::web::mirror::Event`]s).
    pub(crate) fn events(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }

    /// Whether a remote driver builds this job.
    pub(crate) fn is_driver(&self) -> bool {
        self.meta.driver
    }

    /// Notes how the job ended, on disk and for whoever follows it.
    fn end(&self, ended: Ended) {
        tracing::info!(id = %self.meta.id, state = ?ended.state, summary = %ended.summary, "job ended");
        let path = self.dir.join("ended.json");
        if let Err(error) = std::fs::write(&path, serde_json::to_vec(&ended).unwrap_or_default()) {
            tracing::warn!(path = %path.display(), %error, "cannot note that the job ended");
        }
        let state = ended.state;
        *lock(&self.ended) = Some(ended);
        self.state.send_replace(state);
    }

    /// Ends a driver's job (its driver is done with it).
    pub(crate) fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Notes that the driver of this job is alive.
    pub(crate) fn hear(&self) {
        *lock(&self.heard) = Instant::now();
    }

    /// Returns once the driver has not been heard from for `timeout`.
    async fn silent_for(&self, timeout: Duration) {
        loop {
            let deadline = *lock(&self.heard) + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }

    /// Where the job's results are written.
    pub(crate) fn results(&self) -> PathBuf {
        self.dir.join("results.jsonl")
    }

    /// The job's state now.
    pub(crate) fn state(&self) -> JobState {
        *self.state.borrow()
    }

    /// Notice of state changes.
    pub(crate) fn watch(&self) -> watch::Receiver<JobState> {
        self.state.subscribe()
    }

    /// The running job.
    pub(crate) fn handle(&self) -> Option<&Handle> {
        self.handle.as_ref()
    }

    /// The job's id.
    pub(crate) fn id(&self) -> &str {
        &self.meta.id
    }

    /// A line about the job for lists.
    pub(crate) fn brief(&self) -> JobBrief {
        let state = self.state();
        let ended = lock(&self.ended).clone();
        let (tasks, done, failed, workers) = match (&self.handle, &ended) {
            (_, Some(ended)) => (ended.tasks, ended.succeeded, ended.failed, 0),
            (Some(handle), None) => {
                let core = handle.lock();
                let counts = core.coordinator.counts();
                (
                    core.coordinator.total_lines(),
                    counts.succeeded,
                    counts.failed,
                    0,
                )
            }
            (None, None) => (0, 0, 0, 0),
        };
        let workers = match &self.handle {
            Some(handle) if !state.ended() => handle.workers().len(),
            _ => workers,
        };
        JobBrief {
            id: self.meta.id.clone(),
            name: self.meta.name.clone(),
            state,
            submitted: self.meta.submitted,
            tasks,
            done,
            failed,
            workers,
            summary: ended.map(|ended| ended.summary),
        }
    }
}

/// A job in the list (`GET /api/jobs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobBrief {
    /// The job's id.
    pub id: String,
    /// The manifest's name.
    pub name: String,
    /// Where it is.
    pub state: JobState,
    /// When it was submitted (seconds since the Unix epoch).
    pub submitted: u64,
    /// Tasks in the job (known so far).
    pub tasks: u64,
    /// Tasks that succeeded.
    pub done: u64,
    /// Tasks that failed.
    pub failed: u64,
    /// Workers seated in it now.
    pub workers: usize,
    /// How it went, once it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The request is malformed or the manifest is wrong; the message says what.
    #[error("{0}")]
    Invalid(String),
    /// The server could not store the job.
    #[error("cannot store the job: {0}")]
    Io(#[from] std::io::Error),
}

/// A long-running server's jobs and the hub they share.
pub(crate) struct Service {
    pub(crate) hub: Arc<Hub>,
    dir: PathBuf,
    sandbox: Sandbox,
    options: RunOptions,
    jobs: Mutex<BTreeMap<String, Arc<Entry>>>,
    /// The local workers' engine, to seed with each job's modules.
    engine: Mutex<Option<Engine>>,
    /// How long a driver's job lives without word from its driver.
    pub(crate) driver_timeout: Duration,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl Service {
    /// Every job, oldest first.
    pub(crate) fn jobs(&self) -> Vec<Arc<Entry>> {
        let mut jobs: Vec<_> = lock(&self.jobs).values().cloned().collect();
        jobs.sort_by_key(|entry| {
            (
                entry.meta.submitted,
                entry.meta.submitted_nanos,
                entry.meta.id.clone(),
            )
        });
        jobs
    }

    /// Job `id`.
    pub(crate) fn job(&self, id: &str) -> Option<Arc<Entry>> {
        lock(&self.jobs).get(id).cloned()
    }

    /// Who may come in.
    pub(crate) fn gate(&self) -> &Arc<Gate> {
        self.hub.gate()
    }

    /// Stores a submitted job and starts it; returns its id.
    pub(crate) async fn submit(
        self: &Arc<Self>,
        submission: Submission,
    ) -> Result<Arc<Entry>, SubmitError> {
        let mut files = HashMap::new();
        for (path, encoded) in &submission.files {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| SubmitError::Invalid(format!("files.{path}: not base64: {e}")))?;
            files.insert(path.clone(), bytes);
        }
        // Check the manifest before storing anything.
        let service = self.clone();
        let manifest = submission.manifest.clone();
        let name = submission
            .manifest_name
            .as_deref()
            .map(|name| dipla_protocol::text::printable(name, 128))
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| STORED_MANIFEST.to_owned());
        let limit = self.options.max_module_mb;
        let (job, files) = tokio::task::spawn_blocking(move || {
            let job = service.parse(&manifest, &files, &name)?;
            job.check_module_sizes(limit)
                .map_err(|e| SubmitError::Invalid(e.to_string()))?;
            Ok::<_, SubmitError>((job, files))
        })
        .await
        .map_err(std::io::Error::other)??;
        let id = self.new_id(&job.name);
        let dir = self.dir.join("jobs").join(&id);
        let meta = Meta {
            id: id.clone(),
            name: job.name.clone(),
            submitted: now_secs(),
            submitted_nanos: now_nanos(),
            driver: false,
        };
        let store = {
            let (dir, meta, text) = (dir.clone(), meta.clone(), submission.manifest);
            move || store(&dir, &meta, &text, &files)
        };
        if let Err(error) = tokio::task::spawn_blocking(store)
            .await
            .map_err(std::io::Error::other)?
        {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(error.into());
        }
        tracing::info!(%id, name = %meta.name, "job submitted");
        Ok(self.start(meta, dir, job).await?)
    }

    /// Parses a manifest whose files are `files`, by path as written; errors name it `name`.
    fn parse(
        &self,
        text: &str,
        files: &HashMap<String, Vec<u8>>,
        name: &str,
    ) -> Result<Job, SubmitError> {
        let read = |path: &Path| {
            files
                .get(&path.to_string_lossy().into_owned())
                .cloned()
                .ok_or_else(|| manifest::ReadError::NotSent {
                    path: path.to_owned(),
                })
        };
        manifest::parse_with(text, Path::new(name), &self.sandbox, &read)
            .map_err(|e| SubmitError::Invalid(e.to_string()))
    }

    /// A handle for `job` behind the server's gate, scheduled as the server's options say.
    fn handle(&self, job: Job, keep: Keep) -> Handle {
        let handle = Handle::new(job, move |_| keep, self.gate().clone());
        let mut core = handle.lock();
        core.coordinator.set_speculation(self.options.speculate);
        core.coordinator.set_max_lost(self.options.max_lost);
        drop(core);
        handle
    }

    /// A new job id: the job's name made safe, and random digits.
    fn new_id(&self, name: &str) -> String {
        let slug: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(32)
            .collect();
        let slug = slug.trim_matches('-');
        loop {
            let mut bytes = [0u8; 3];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
            let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let id = if slug.is_empty() {
                format!("job-{suffix}")
            } else {
                format!("{slug}-{suffix}")
            };
            if !lock(&self.jobs).contains_key(&id) {
                return id;
            }
        }
    }

    /// Opens the job's journal, puts it on the hub and runs it to its end in the
    /// background.
    async fn start(
        self: &Arc<Self>,
        meta: Meta,
        dir: PathBuf,
        job: Job,
    ) -> std::io::Result<Arc<Entry>> {
        let (job, opened) = open_journal(job, Some(dir.join("job.state")), Fresh::Never).await?;
        if let Some(engine) = lock(&self.engine).as_ref() {
            for module in &job.modules {
                engine.seed(module);
            }
        }
        let handle = self.handle(job, Keep::Ordered);
        handle.set_job_id(format!(
            "{}/{}",
            crate::store::journal::fingerprint(&handle.lock().job),
            meta.id
        ));
        let journal = opened.map(|opened| restore(&handle, opened));
        let entry = Arc::new(Entry {
            meta,
            dir,
            handle: Some(handle.clone()),
            state: watch::channel(JobState::Running).0,
            ended: Mutex::new(None),
            closed: watch::channel(false).0,
            heard: Mutex::new(Instant::now()),
        });
        lock(&self.jobs).insert(entry.meta.id.clone(), entry.clone());
        self.hub.open(&entry.meta.id, handle.clone());
        let (service, running) = (self.clone(), entry.clone());
        tokio::spawn(async move {
            let ended = service.run(&running, &handle, journal).await;
            let ended = match ended {
                Ok(ended) => ended,
                Err(error) => {
                    tracing::error!(id = %running.meta.id, %error, "the job broke");
                    Ended {
                        state: JobState::Broken,
                        summary: error.to_string(),
                        tasks: 0,
                        succeeded: 0,
                        failed: 0,
                    }
                }
            };
            running.end(ended);
            service.forget_unused_modules();
        });
        Ok(entry)
    }

    /// Forgets the modules instrumented for browsers that no running job uses any more.
    fn forget_unused_modules(&self) {
        let live: std::collections::HashSet<_> = self
            .jobs()
            .iter()
            .filter(|entry| !entry.state().ended())
            .filter_map(|entry| entry.handle())
            .flat_map(|handle| {
                let core = handle.lock();
                core.job
                    .modules
                    .iter()
                    .map(|module| module.hash)
                    .collect::<Vec<_>>()
            })
            .collect();
        self.gate().browser.retain(&live);
    }

    /// Runs a job to its end: results written in order, then off the hub.
    async fn run(
        &self,
        entry: &Entry,
        handle: &Handle,
        journal: Option<crate::store::journal::Journal>,
    ) -> std::io::Result<Ended> {
        let started = Instant::now();
        let mut first_result = None;
        let written = async {
            let file = std::fs::File::create(entry.results())?;
            let mut out = std::io::BufWriter::new(file);
            write_results(handle, &mut out, || {
                first_result.get_or_insert_with(|| started.elapsed());
            })
            .await
        }
        .await;
        let elapsed = started.elapsed();
        // Its workers go back to the hub.
        self.hub.close(&entry.meta.id);
        handle.shared.done.send_replace(true);
        let leaving = async {
            while handle.connected() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), leaving).await;
        close_journal(handle, journal).await?;
        written?;
        let summary = summarize(handle, elapsed, first_result);
        Ok(ended(&summary))
    }

    /// Loads the jobs in the data folder: ended ones as they ended, the others resumed.
    async fn load(self: &Arc<Self>) -> std::io::Result<()> {
        let jobs = self.dir.join("jobs");
        std::fs::create_dir_all(&jobs)?;
        for dir in std::fs::read_dir(&jobs)? {
            let dir = dir?.path();
            let loaded = self.load_one(&dir).await;
            if let Err(error) = loaded {
                tracing::warn!(dir = %dir.display(), %error, "cannot load a job; skipped");
            }
        }
        Ok(())
    }

    async fn load_one(self: &Arc<Self>, dir: &Path) -> Result<(), SubmitError> {
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| SubmitError::Invalid(format!("{name}: {e}")))
        };
        let meta: Meta = serde_json::from_slice(&read("meta.json")?)
            .map_err(|e| SubmitError::Invalid(format!("meta.json: {e}")))?;
        if let Ok(bytes) = std::fs::read(dir.join("ended.json")) {
            let ended: Ended = serde_json::from_slice(&bytes)
                .map_err(|e| SubmitError::Invalid(format!("ended.json: {e}")))?;
            let entry = Entry {
                meta,
                dir: dir.to_owned(),
                handle: None,
                state: watch::channel(ended.state).0,
                ended: Mutex::new(Some(ended)),
                closed: watch::channel(true).0,
                heard: Mutex::new(Instant::now()),
            };
            lock(&self.jobs).insert(entry.meta.id.clone(), Arc::new(entry));
            return Ok(());
        }
        if meta.driver {
            // Its driver is gone with the server that ran it.
            let ended = Ended {
                state: JobState::Cancelled,
                summary: "the server stopped while the driver was running it".into(),
                tasks: 0,
                succeeded: 0,
                failed: 0,
            };
            std::fs::write(
                dir.join("ended.json"),
                serde_json::to_vec(&ended).unwrap_or_default(),
            )?;
            return Box::pin(self.load_one(dir)).await;
        }
        let text = String::from_utf8(read(STORED_MANIFEST)?)
            .map_err(|_| SubmitError::Invalid("manifest.toml is not UTF-8".into()))?;
        let index: BTreeMap<String, ModuleHash> = serde_json::from_slice(&read("files.json")?)
            .map_err(|e| SubmitError::Invalid(format!("files.json: {e}")))?;
        let mut files = HashMap::new();
        for (path, hash) in index {
            files.insert(path, read(&format!("files/{hash}"))?);
        }
        let job = self.parse(&text, &files, STORED_MANIFEST)?;
        tracing::info!(id = %meta.id, "resuming a job");
        self.start(meta, dir.to_owned(), job).await?;
        Ok(())
    }
}

impl Service {
    /// Opens an empty job for a remote driver, which adds modules and stages as it runs;
    /// what its coordinator decides is written to the job's events file.
    pub(crate) async fn open_driver(self: &Arc<Self>, name: &str) -> std::io::Result<Arc<Entry>> {
        let name = if name.trim().is_empty() {
            "driver"
        } else {
            name.trim()
        };
        let id = self.new_id(name);
        let dir = self.dir.join("jobs").join(&id);
        let meta = Meta {
            id: id.clone(),
            name: name.to_owned(),
            submitted: now_secs(),
            submitted_nanos: now_nanos(),
            driver: true,
        };
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("meta.json"),
            serde_json::to_vec_pretty(&meta).map_err(std::io::Error::other)?,
        )?;
        let job = Job {
            name: name.to_owned(),
            modules: Vec::new(),
            stages: Vec::new(),
            sandbox: self.sandbox.clone(),
        };
        let handle = self.handle(job, Keep::All);
        handle.set_job_id(format!("driver-{id}"));
        let entry = Arc::new(Entry {
            meta,
            dir,
            handle: Some(handle.clone()),
            state: watch::channel(JobState::Running).0,
            ended: Mutex::new(None),
            closed: watch::channel(false).0,
            heard: Mutex::new(Instant::now()),
        });
        let (records, received) = crate::store::journal::Sink::channel();
        handle.lock().set_journal(Some(records));
        let events = std::fs::File::create(entry.events())?;
        let notify = handle.clone();
        std::thread::spawn(move || write_events(&received, events, &notify));
        lock(&self.jobs).insert(id.clone(), entry.clone());
        self.hub.open(&id, handle.clone());
        tracing::info!(%id, %name, "a driver opened a job");
        let (service, running) = (self.clone(), entry.clone());
        let timeout = self.driver_timeout;
        tokio::spawn(async move {
            let mut closed = running.closed.subscribe();
            let mut cancelled = handle.shared.cancelled.subscribe();
            let mut vanished = None;
            tokio::select! {
                _ = closed.wait_for(|closed| *closed) => {}
                _ = cancelled.wait_for(|cancelled| *cancelled) => {}
                () = running.silent_for(timeout) => {
                    let reason = format!(
                        "cancelled: its driver was not heard from for {:.1}s (the program ended without closing the job, was killed, or lost its connection)",
                        timeout.as_secs_f64()
                    );
                    tracing::warn!(id = %running.meta.id, "{reason}");
                    handle.cancel();
                    vanished = Some(reason);
                }
            }
            service.hub.close(&running.meta.id);
            handle.shared.done.send_replace(true);
            // The events writer ends with the journal sender.
            handle.lock().set_journal(None);
            let summary = summarize(&handle, Duration::ZERO, None);
            let mut ended = ended(&summary);
            if !handle.is_cancelled() {
                ended.state = JobState::Succeeded;
            }
            if let Some(reason) = vanished {
                ended.summary = format!("{reason}; {}", ended.summary);
            }
            running.end(ended);
            service.forget_unused_modules();
        });
        Ok(entry)
    }

    /// Adds a module a driver sent to its job; returns its hash.
    pub(crate) fn driver_module(
        &self,
        entry: &Entry,
        bytes: &[u8],
    ) -> Result<ModuleHash, SubmitError> {
        let handle = driver_handle(entry)?;
        entry.hear();
        let guest = self.sandbox.admit(bytes).map_err(|e| {
            SubmitError::Invalid(format!("the module is not a runnable guest: {e}"))
        })?;
        let module = crate::Module {
            name: ModuleHash::of(bytes).to_string(),
            hash: ModuleHash::of(bytes),
            bytes: guest.bytes().clone(),
            guest,
        };
        if let Some(engine) = lock(&self.engine).as_ref() {
            engine.seed(&module);
        }
        let hash = module.hash;
        handle.lock().add_module(module);
        Ok(hash)
    }

    /// Adds a stage a driver sent to its job, after checking what it names exists; returns
    /// its number.
    pub(crate) fn driver_stage(
        &self,
        entry: &Entry,
        stage: crate::Stage,
    ) -> Result<usize, SubmitError> {
        let handle = driver_handle(entry)?;
        let name = stage.name.clone();
        let invalid = |message: String| SubmitError::Invalid(format!("stage {name}: {message}"));
        entry.hear();
        let mut stage = stage;
        let number = {
            let mut core = handle.lock();
            let info = core
                .job
                .guest(&stage.module)
                .ok_or_else(|| invalid(format!("module {} was not sent", stage.module)))?
                .check_task(&stage.export)
                .cloned()
                .map_err(|e| invalid(e.to_string()))?;
            if let Some((module, export)) = &stage.verify {
                let verifier = core
                    .job
                    .guest(module)
                    .ok_or_else(|| invalid(format!("verifier module {module} was not sent")))?;
                match verifier.check_task(export) {
                    Ok(info) if info.verifier => {}
                    Ok(info) => return Err(invalid(format!("{info} is not a #[verifier]"))),
                    Err(e) => return Err(invalid(e.to_string())),
                }
            }
            crate::run::stage_check::resolve(&core, &mut stage, &info)
                .map_err(|e| invalid(e.to_string()))?;
            core.add_stage(stage, Keep::All)
        };
        handle.wake_all();
        handle.progressed();
        Ok(number)
    }
}

/// The running job of a driver's entry.
fn driver_handle(entry: &Entry) -> Result<&Handle, SubmitError> {
    match entry.handle() {
        Some(handle) if entry.is_driver() && !entry.state().ended() => Ok(handle),
        _ => Err(SubmitError::Invalid(format!(
            "job {} is not a running driver's job",
            entry.id()
        ))),
    }
}

/// Writes each record a driver needs as an event line, then the stages that became complete
/// with them, flushing whenever none waits, and tells followers.
fn write_events(records: &crate::store::journal::Drain, file: std::fs::File, handle: &Handle) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(file);
    let write = |out: &mut std::io::BufWriter<std::fs::File>, event: &crate::web::mirror::Event| {
        let mut line = serde_json::to_vec(event).unwrap_or_default();
        line.push(b'\n');
        out.write_all(&line)
    };
    // Which stages the driver was last told are complete.
    let mut complete: Vec<bool> = Vec::new();
    let mut next = records.recv();
    let mut written = 0;
    while next.is_some() {
        while let Some(record) = next {
            written += 1;
            let event = crate::web::mirror::Event::of(&record);
            if let Some(event) = &event
                && write(&mut out, event).is_err()
            {
                tracing::error!("cannot write a driver job's events");
                return;
            }
            if let dipla_core::Record::Revoked(task) = &record
                && let Some(told) = complete.get_mut(task.stage)
            {
                *told = false;
            }
            next = records.try_recv();
        }
        // Under the lock, no record is sent: with none waiting, the coordinator's state is
        // the one the events written say.
        let finished = {
            let core = handle.lock();
            next = records.try_recv();
            let mut finished = Vec::new();
            if next.is_none() {
                let stages = core.coordinator.stage_count();
                complete.resize(stages, false);
                for (stage, told) in complete.iter_mut().enumerate() {
                    if !*told && core.coordinator.is_stage_complete(stage) {
                        *told = true;
                        finished.push(crate::web::mirror::Event::Complete {
                            stage,
                            stopped: core.coordinator.stopped(stage).map(str::to_owned),
                        });
                    }
                }
            }
            finished
        };
        for event in &finished {
            if write(&mut out, event).is_err() {
                tracing::error!("cannot write a driver job's events");
                return;
            }
        }
        if next.is_none() {
            if out.flush().is_ok() {
                records.committed(written);
            }
            written = 0;
            handle.progressed();
            next = records.recv();
        }
    }
}

/// What a summary says of how the job ended.
fn ended(summary: &Summary) -> Ended {
    let state = if summary.cancelled {
        JobState::Cancelled
    } else if summary.success() {
        JobState::Succeeded
    } else {
        JobState::Failed
    };
    Ended {
        state,
        summary: summary.to_string(),
        tasks: summary.tasks,
        succeeded: summary.counts.succeeded,
        failed: summary.counts.failed,
    }
}

/// Writes a submitted job's manifest, files and meta into `dir`.
fn store(
    dir: &Path,
    meta: &Meta,
    manifest: &str,
    files: &HashMap<String, Vec<u8>>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("files"))?;
    let mut index = BTreeMap::new();
    for (path, bytes) in files {
        let hash = ModuleHash::of(bytes);
        std::fs::write(dir.join("files").join(hash.to_string()), bytes)?;
        index.insert(path.clone(), hash);
    }
    std::fs::write(dir.join(STORED_MANIFEST), manifest)?;
    std::fs::write(
        dir.join("files.json"),
        serde_json::to_vec_pretty(&index).map_err(std::io::Error::other)?,
    )?;
    // Last: a folder without meta.json is an unfinished submission, skipped on load.
    std::fs::write(
        dir.join("meta.json"),
        serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?,
    )
}

/// How `serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to accept workers and API calls.
    pub listen: SocketAddr,
    /// Where jobs are kept.
    pub data_dir: PathBuf,
    /// The server's name (the health check, the directory).
    pub name: String,
    /// Admission, local workers and scheduling, as for `run` (its `state`, `fresh`,
    /// `only_stage` and `listen` do not apply).
    pub run: RunOptions,
    /// How long a driver's job lives without word from its driver
    /// ([`DEFAULT_DRIVER_TIMEOUT`]).
    pub driver_timeout: Duration,
}

/// A long-running server, bound and serving.
pub struct Serve {
    service: Arc<Service>,
    addr: SocketAddr,
    tls: bool,
}

impl Serve {
    /// Loads the jobs in the data folder (resuming those that had not ended) and serves
    /// workers, the API, the dashboard and `/metrics` on `options.listen`.
    ///
    /// # Errors
    /// When the address cannot be bound, or the data folder or TLS files cannot be used.
    pub async fn start(options: ServeOptions) -> std::io::Result<Self> {
        let ServeOptions {
            listen,
            data_dir,
            name,
            run,
            driver_timeout,
        } = options;
        let tls = match &run.tls {
            None => None,
            Some(files) => Some(files.config().map_err(std::io::Error::other)?),
        };
        let listener = TcpListener::bind(listen).await.map_err(|error| {
            std::io::Error::new(error.kind(), format!("cannot listen on {listen}: {error}"))
        })?;
        let addr = listener.local_addr()?;
        let sandbox = Sandbox::new().map_err(std::io::Error::other)?;
        let gate = Arc::new(run.gate());
        gate.set_volunteer(crate::net::gate::Volunteer {
            name: Some(name.clone()),
            ..gate.volunteer()
        });
        std::fs::create_dir_all(&data_dir)?;
        let trust =
            crate::store::trust::TrustStore::open(&data_dir.join("trust.state")).map_err(|e| {
                std::io::Error::other(format!(
                    "cannot open the trust records {}: {e}",
                    data_dir.join("trust.state").display()
                ))
            })?;
        gate.share_trust(trust);
        let hub = Hub::start(gate.clone());
        let service = Arc::new(Service {
            hub: hub.clone(),
            dir: data_dir,
            sandbox: sandbox.clone(),
            options: run.clone(),
            jobs: Mutex::default(),
            engine: Mutex::new(None),
            driver_timeout,
        });
        let health = {
            let gate = gate.clone();
            HealthInfo::new(name, Arc::new(move || gate.joined()))
        };
        let app = crate::net::transport::router(Venue::Hub(hub.clone()))
            .merge(crate::run::jobs_api::router(service.clone()))
            .merge(crate::run::dashboard::service_router(service.clone()))
            .merge(crate::web::health::router(health))
            .merge(crate::run::volunteer::router(
                crate::run::volunteer::of_service(&service, &gate),
            ));
        let local = LocalWorkers {
            count: run.local_workers,
            cache_dir: run.cache_dir.clone(),
            caps: run.local_caps,
            token: run.worker_tokens.first().cloned(),
        };
        let has_tls = tls.is_some();
        let engine = Engine::start(listener, tls, Venue::Hub(hub), app, &[], &sandbox, &local)?;
        *lock(&service.engine) = Some(engine);
        service.load().await?;
        Ok(Self {
            service,
            addr,
            tls: has_tls,
        })
    }

    /// The address served.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL workers connect to.
    pub fn worker_url(&self) -> String {
        crate::run::engine::worker_url(self.addr, self.tls)
    }

    /// How many workers are connected now, as a function to call later.
    pub fn worker_count(&self) -> crate::directory::announce::WorkerCount {
        let gate = self.service.gate().clone();
        Arc::new(move || gate.joined())
    }

    /// Stops serving: workers are told goodbye; running jobs stay journaled and resume
    /// when a server starts on the same folder.
    pub async fn shutdown(self) {
        let engine = lock(&self.service.engine).take();
        if let Some(engine) = engine {
            engine.shutdown().await;
        }
    }
}
